"""entersyscall / exitsyscall and the P of each event loop (Go's ``proc.go``).

How a handed-off call travels (DESIGN.md, "Handoff, step by step"):

1. **entersyscall** (loop thread): a G record is made, the fd gets a reference (so a close
   cannot free its number while an M uses it), the buffers are pinned in ``g.keep``, the six
   words go to the C pool (``_mpool.submit``) and the task awaits ``g.future``.  The P keeps
   running other tasks.  ``entersyscallblock`` is the same for calls known to block: the
   caller made no inline attempt first.
2. An **M** (a C pthread, no GIL) runs the syscall, retries EINTR, stamps t_start/t_end and
   publishes the slot on its P's completion list, writing the P's eventfd only if the P is
   parked (park mode) or no wakeup is pending yet (attach mode): at most one write per poll
   cycle.
3. The P **drains** its list in one call (``P.drain``: from the eventfd callback, and in park
   mode after every epoll_wait), and for each completion runs **exitsyscall**:

   - Fast path (**exitsyscallfast**): the G's task still waits: ``_Gsyscall -> _Grunnable``,
     the future gets the raw result, the task resumes (``_Grunnable -> _Grunning``).
   - Slow path (**exitsyscall0**): the task was cancelled (or its P is gone): nothing must be
     lost.  The orphan finalizer undoes or keeps what the syscall did: an fd it returned is
     closed, bytes it read are put back (file offset rewound, or kept for the next
     ``aiosys.read`` of that fd), a write that happened is logged.

4. **handoffp**: a P that goes away (its loop closes) first waits, bounded, for its calls;
   the stragglers are logged and handed to the process-wide orphan list, whose completions
   any other P drains (and the C pool itself closes an fd an orphaned open returned).

Cancellation points, all covered: queued (``withdraw`` takes the slot back, the syscall
never runs), running on an M (orphan: finalizer at completion), completed but not yet resumed
(the task sees ``CancelledError`` with a result present: finalizer runs at once).

Danger window: between ``_mpool.submit`` and ``p.inflight[slot] = g`` an M may already have
finished the slot.  That is safe because only this thread drains this P, and it cannot drain
before this function returns.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Final

from ..native import _lowlevel as ll
from ..native import _mpool
from ..netpoll.fdtable import fd_acquire, fd_release
from . import trace
from .g import (
    G,
    SchedulerError,
    _Gdead,
    _Grunnable,
    _Grunning,
    _Gsyscall,
    _Pdead,
    _Pidle,
    _Prunning,
    _Psyscall,
    casgstatus,
    check_ptransition,
)
from .stats import counters

__all__ = [
    "P",
    "configure_pool",
    "entersyscall",
    "entersyscallblock",
    "exitsyscall",
    "exitsyscall0",
    "exitsyscallfast",
    "getp",
    "grow_pool",
    "handoffp",
    "inflight",
    "allp",
]

log: Final = logging.getLogger("aiosys.sched")

CLOSE_TIMEOUT: float = 2.0
"""Seconds a closing loop waits for its handed-off calls before handing them to the orphan
list (each straggler is logged)."""

_nanotime: Final = ll.nanotime
_SEEK_CUR: Final = os.SEEK_CUR
_SYS_CLOSE: Final = ll.SYS["close"]
_SYS_LSEEK: Final = ll.SYS["lseek"]
_SYS_FLOCK: Final = ll.SYS["flock"]
_LOCK_UN: Final = 8

# ---------------------------------------------------------------------------------------------
# The pool's configuration
# ---------------------------------------------------------------------------------------------


class _PoolConfig:
    max_threads = 128
    eager_threads = _mpool.usable_cpus()  # Ms in syscalls at once; more via the monitor
    grow_after = 200e-6  # seconds with calls queued and none finishing before a new M starts
    idle_timeout = 10.0  # seconds an idle M waits for work before it exits
    full_error = False  # at the cap: False queues (back-pressure by waiting), True raises
    loop_spin_ns = 0
    worker_spin_ns = 0
    applied = False


_config: Final = _PoolConfig()


def configure_pool(
    *,
    max_threads: int | None = None,
    idle_timeout: float | None = None,
    full: str | None = None,
    spin: bool | None = None,
    eager_threads: int | None = None,
    grow_after: float | None = None,
) -> None:
    """Configure the process-wide M pool.

    :param max_threads: cap on Ms (Go grows without bound; aiosys caps, default 128).
    :param eager_threads: Ms started as soon as a call finds none free (default: the usable
        CPUs, at least 2).  Beyond that a call waits for a busy M, and the pool's monitor
        starts a new M only when calls are queued and none finished for ``grow_after``
        seconds (default 200 µs): a burst of short calls is served by a few busy Ms, and a
        pool whose Ms are all blocked (a pipe read waiting for a write queued behind it)
        still grows.
    :param idle_timeout: seconds before an idle M exits (default 10).
    :param full: ``"wait"`` (default): at the cap, calls queue until an M is free;
        ``"error"``: a call that finds every M busy at the cap raises
        :class:`~aiosys.native._mpool.PoolExhaustedError` (EAGAIN).
    :param spin: bounded spinning of the loop and idle Ms (default: on iff this process may
        use more than one CPU, as Go gates spinning on GOMAXPROCS).
    :raises ValueError: for a bad value.
    """
    if max_threads is not None:
        if not 1 <= max_threads <= _mpool.MAX_THREADS:
            raise ValueError(f"max_threads must be in 1..{_mpool.MAX_THREADS}")
        _config.max_threads = max_threads
    if idle_timeout is not None:
        if idle_timeout < 0:
            raise ValueError("idle_timeout must be >= 0")
        _config.idle_timeout = idle_timeout
    if eager_threads is not None:
        if not 1 <= eager_threads <= _mpool.MAX_THREADS:
            raise ValueError(f"eager_threads must be in 1..{_mpool.MAX_THREADS}")
        _config.eager_threads = eager_threads
    if grow_after is not None:
        if grow_after < 0:
            raise ValueError("grow_after must be >= 0")
        _config.grow_after = grow_after
    if full is not None:
        if full not in ("wait", "error"):
            raise ValueError("full must be 'wait' or 'error'")
        _config.full_error = full == "error"
    if spin is None and not _config.applied:
        spin = _mpool.usable_cpus() > 1
    if spin is not None:
        _config.loop_spin_ns = _mpool.LOOP_SPIN_NS if spin else 0
        _config.worker_spin_ns = _mpool.WORKER_SPIN_NS if spin else 0
        for p in list(_allp.values()):
            p.spin_ns = _config.loop_spin_ns
    _mpool.configure(
        max_threads=_config.max_threads,
        idle_timeout=_config.idle_timeout,
        worker_spin_ns=_config.worker_spin_ns,
        full_error=_config.full_error,
    )
    _mpool.configure_growth(eager_threads=_config.eager_threads, grow_after=_config.grow_after)
    _config.applied = True


def grow_pool(n: int = 1) -> int:
    """Start ``n`` more Ms now, up to the cap (sysmon's answer to a queue that does not
    move).  Returns how many started."""
    if not _config.applied:
        configure_pool()
    started = _mpool.grow(n)
    if trace.ENABLED and started:
        trace.m_event("grow", -1, started=started)
    return started


# ---------------------------------------------------------------------------------------------
# P: one per event loop
# ---------------------------------------------------------------------------------------------


class P:
    """The right to run one event loop's callbacks.

    Fields and who writes them: everything is written by the loop thread (``thread_id``)
    only, except ``status``, which the native Syscall hooks also write on that same thread.
    ``last_tick`` is the nanotime of the P's last scheduler pass (a drain or a park), read by
    sysmon from its own thread.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loopref = weakref.ref(loop)
        self.thread_id = threading.get_ident()
        self.native_thread_id = threading.get_native_id()
        self.last_tick = _nanotime()
        self.status: str = _Prunning
        self.inflight: dict[int, G] = {}  # slot -> G, calls handed off and not drained
        self.spin_ns = _config.loop_spin_ns
        self.attach = True
        self.closed = False
        # One usable CPU: submits only queue, and one kick per loop pass wakes an M, so the
        # M does not preempt the loop after every submit (measured: ~3 context switches per
        # call otherwise).  With more CPUs the M starts at once, in parallel.
        self.defer_wake = _mpool.usable_cpus() == 1
        # asyncio's ready queue (None on uvloop): a submit from the last callback of a pass
        # defers nothing, since no other callback of this pass can join its batch.
        ready = getattr(loop, "_ready", None)
        self.ready: collections.deque[Any] | None = (
            ready if isinstance(ready, collections.deque) else None
        )
        self.kick_pending = False
        # Calls that may still complete inline (exitsyscallfast without a loop pass) before
        # the loop must poll again: refilled by every after_park.
        self.inline_budget = INLINE_BUDGET
        self.efd = ll.eventfd()
        try:
            self.id = _mpool.p_register(self.efd, attach=True)
        except BaseException:
            os.close(self.efd)
            raise
        self._buf = _mpool.CompletionBuffer(256)

    # -- scheduler passes -------------------------------------------------------------------

    def on_wakeup(self) -> None:
        """The eventfd is readable: a completion was published while we were parked (or, in
        attach mode, the first since our last drain)."""
        with contextlib.suppress(BlockingIOError):
            ll.eventfd_read(self.efd)
        self.drain()

    def before_park(self) -> bool:
        """The netpoller is about to block in epoll_wait: spin briefly if calls are in
        flight, then publish "parked".  False: completions are waiting, poll instead."""
        if self.status is not _Prunning:
            raise SchedulerError(f"aiosys: before_park on a P in {self.status}")
        if self.kick_pending:
            self.kick()  # the M runs while we block (one CPU: it preempts us right here)
        if _mpool.park(self.id, self.spin_ns):
            self.status = _Pidle
            return True
        return False

    def after_park(self) -> None:
        """After every epoll_wait of the aiosys loop (Go's netpoll(0) in the scheduler
        loop): kick deferred work, drain completions.  Kept cheap: it runs on every pass
        of the loop, handoffs or not."""
        if self.status is _Pidle:  # we parked: publish that we are back
            _mpool.unpark(self.id)
            self.status = _Prunning
        self.inline_budget = INLINE_BUDGET
        if self.kick_pending:
            self.kick()
        if self.inflight:
            self.drain()  # stamps last_tick
        else:
            self.last_tick = _nanotime()

    def drain(self) -> None:
        """Take every completion of this P and run exitsyscall for each (Go: the netpoll(0)
        step of the scheduler, on the loop thread)."""
        self.last_tick = _nanotime()
        inflight = self.inflight
        while True:
            vals = _mpool.drain(self.id, self._buf)
            if not vals:
                break
            counters.drains += 1
            for k in range(0, len(vals), _mpool.COMP_WORDS):
                g = inflight.pop(vals[k], None)
                if g is None:
                    raise SchedulerError(f"aiosys: completion for unknown slot {vals[k]}")
                g.t_start = vals[k + 2]
                g.t_end = vals[k + 3]
                g.m_id = vals[k + 4]
                exitsyscall(g, vals[k + 1])
            if len(vals) < _mpool.COMP_WORDS * self._buf.capacity:
                break
        if _orphans:
            drain_orphans()
        if trace.ENABLED:
            _m_events()

    def kick(self) -> None:
        self.kick_pending = False
        _mpool.kick()

    def set_status(self, new: str) -> None:
        check_ptransition(self.status, new)
        self.status = new

    def close(self) -> None:
        """The loop is closing: handoffp."""
        handoffp(self)

    def __repr__(self) -> str:
        return f"<P {self.id} {self.status} inflight={len(self.inflight)}>"


_m_seen = {"m_spawned": 0, "m_exited": 0, "m_monitor_grows": 0}


def _m_events() -> None:
    """Ms live in C and never run Python: when tracing, each drain compares the pool's
    counters with the last look and reports new spawns/exits as ``m_spawn``/``m_exit``
    events (m = -1: the pool's, not one M's)."""
    st = _mpool.stats()
    for key, kind in (("m_spawned", "spawn"), ("m_exited", "exit"),
                      ("m_monitor_grows", "grow")):
        n = st[key] - _m_seen[key]
        if n > 0:
            _m_seen[key] = st[key]
            if trace.ENABLED:
                trace.m_event(kind, -1, count=n, threads=st["m_threads"],
                              queue_depth=st["queue_depth"])


_allp: dict[int, P] = {}  # P id -> P
_p_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, P] = (
    weakref.WeakKeyDictionary()
)
_p_by_thread: dict[int, P] = {}
_last: tuple[object, P | None] = (None, None)
_plock: Final = threading.Lock()


def allp() -> list[P]:
    """Every live P (sysmon reads ``thread_id`` and ``last_tick``)."""
    return list(_allp.values())


def getp(loop: asyncio.AbstractEventLoop | None = None) -> P:
    """The P of the running loop, made on first use (Go's acquirep)."""
    global _last
    if loop is None:
        loop = asyncio.get_running_loop()
    last_loop, last_p = _last
    if last_loop is loop and last_p is not None and not last_p.closed:
        return last_p
    p = _p_by_loop.get(loop)
    if p is None or p.closed:
        p = _newp(loop)
    _last = (loop, p)
    return p


def _newp(loop: asyncio.AbstractEventLoop) -> P:
    if loop.is_closed():
        raise RuntimeError("aiosys: event loop is closed")
    with _plock:
        if not _config.applied:
            configure_pool()
    p = P(loop)
    try:
        loop.add_reader(p.efd, p.on_wakeup)
    except BaseException:
        handoffp(p)  # the P's eventfd and pool registration must not leak
        raise
    hooked = False
    poller: Any = None
    try:
        from .. import netpoll

        current = getattr(netpoll, "current_poller", None)
        if current is not None:
            poller = current()
    except (ImportError, RuntimeError):  # pragma: no cover - netpoll not available
        poller = None
    if poller is not None:
        add_park = getattr(poller, "add_park_hooks", None)
        if add_park is not None and add_park(p.before_park, p.after_park):
            _mpool.p_set_attach(p.id, False)
            p.attach = False
        add_close = getattr(poller, "add_close_hook", None)
        if add_close is not None:
            add_close(p.close)
            hooked = True
    # Also on close() itself: the close hook of an attached netpoller may run later than the
    # loop's close (handoffp is idempotent).
    _wrap_close(loop, p, hooked)
    with _plock:
        _allp[p.id] = p
        _p_by_loop[loop] = p
        _p_by_thread[p.thread_id] = p
    return p


def _wrap_close(loop: asyncio.AbstractEventLoop, p: P, hooked: bool) -> None:
    """Without a netpoller close hook, run handoffp when the loop's close() is called
    (the instance attribute shadows the class method, for asyncio and uvloop loops), and at
    the latest when the loop is collected."""
    orig: Callable[[], None] = loop.close

    def close() -> None:
        handoffp(p)
        orig()

    with contextlib.suppress(AttributeError):  # a loop without __dict__: finalize only
        loop.close = close  # type: ignore[method-assign]
    if not hooked:
        weakref.finalize(loop, handoffp, p)


# ---------------------------------------------------------------------------------------------
# The native Syscall hooks: a synchronous Syscall on a loop thread marks its P _Psyscall
# ---------------------------------------------------------------------------------------------


def _hook_enter(trap: int) -> object:
    p = _p_by_thread.get(threading.get_ident())
    if p is None or p.status is not _Prunning:
        return None
    p.status = _Psyscall
    counters.psyscall_enters += 1
    return p


def _hook_exit(token: object) -> None:
    if token is not None:
        p: P = token  # type: ignore[assignment]
        if p.status is not _Psyscall:
            raise SchedulerError(f"aiosys: exitsyscall hook on a P in {p.status}")
        p.status = _Prunning


ll.set_syscall_hooks(_hook_enter, _hook_exit)

# ---------------------------------------------------------------------------------------------
# entersyscall / exitsyscall
# ---------------------------------------------------------------------------------------------


# One CPU: handoffs that may complete inside entersyscall between two loop passes.
INLINE_BUDGET: Final = 32


def entersyscall(
    p: P,
    name: str,
    trap: int,
    args: tuple[int, int, int, int, int, int],
    fd: int = -1,
    keep: object = None,
    kind: str = "",
    flags: int = 0,
) -> G:
    """Hand one raw syscall to an M.  Returns the G whose ``future`` gets the raw kernel
    return (value or -errno).  The caller awaits it through :func:`wait`.

    :raises OSError: EBADF if ``fd`` is being closed; ``PoolExhaustedError`` (EAGAIN) at the
        pool's cap in ``full="error"`` mode.
    """
    loop = p.loopref()
    if loop is None or p.closed:
        raise RuntimeError("aiosys: the P's loop is gone")
    g = G(name, trap, fd, p.id, _nanotime())
    if fd >= 0:
        fd_acquire(fd)
    # One CPU: defer the M's wakeup to the end of the loop pass, so that the calls submitted
    # by this pass's callbacks share one wakeup (and the M does not preempt the loop after
    # each submit).  Unless this is the pass's last callback: then there is no batch to wait
    # for, and waking the M now saves the rest of the pass on the critical path (measured
    # on one CPU: the M started 14 us after entersyscall when deferred).
    inline = False
    if p.defer_wake and p.ready is not None and not p.ready:
        flags |= _mpool.F_YIELD  # and let it run now: the loop is about to poll anyway
        inline = not p.attach and p.inline_budget > 0
    elif p.defer_wake:
        flags |= _mpool.F_DEFER_WAKE
        if not p.kick_pending:
            p.kick_pending = True
            if p.attach:  # no park hooks: kick after this pass's callbacks
                loop.call_soon(p.kick)
            # park mode: before_park (about to block) or after_park (busy loop) kicks
    try:
        g.slot = _mpool.submit(p.id, trap, *args, flags)
    except BaseException as exc:
        if fd >= 0:
            fd_release(fd)
        if isinstance(exc, _mpool.PoolExhaustedError):
            counters.pool_rejected += 1
        raise
    g.keep = keep
    g.kind = kind
    g.state = _Gsyscall  # _Grunning -> _Gsyscall (a fresh G is _Grunning)
    g.future = loop.create_future()
    g.queue_depth = len(p.inflight)
    p.inflight[g.slot] = g
    if fd >= 0 and (kind == "read" or kind == "write"):
        _fd_busy[fd] = g
        g.task = asyncio.current_task()
    counters.handoffs += 1
    if trace.ENABLED:
        trace.entersyscall(g)
    if inline:
        # The M ran while we yielded: take its completion now (Go's exitsyscallfast: the
        # goroutine keeps its P), so the caller's await finds the future done and goes on
        # without a loop pass.  Bounded per pass, so a task looping over such calls still
        # lets the loop poll every INLINE_BUDGET calls.
        p.inline_budget -= 1
        p.drain()
    return g


def entersyscallblock(
    p: P,
    name: str,
    trap: int,
    args: tuple[int, int, int, int, int, int],
    fd: int = -1,
    keep: object = None,
    kind: str = "",
    flags: int = 0,
) -> G:
    """entersyscall for a call known to block (no inline attempt was made: the P is handed
    the work straight away, Go's entersyscallblock + handoff)."""
    counters.handoffs_block += 1
    return entersyscall(p, name, trap, args, fd, keep, kind, flags)


def exitsyscall(g: G, r: int) -> None:
    """The M finished ``g`` with raw result ``r``; on the G's P's loop thread."""
    g.result = r
    fut = g.future
    if fut is None or fut.done():
        exitsyscall0(g)  # Slow path: the task is gone (cancelled) or the P is.
    else:
        exitsyscallfast(g)  # Fast path.


def exitsyscallfast(g: G) -> None:
    """Fast path: the G's task still waits on its own P: make it runnable."""
    if g.state is not _Gsyscall:
        casgstatus(g, _Gsyscall, _Grunnable)  # raises: the state machine was broken
    g.state = _Grunnable
    if g.fd >= 0:
        fd_release(g.fd)  # the M is done; the G stays "busy" on its fd until its task resumes
    counters.exits_fast += 1
    if trace.ENABLED:
        trace.exitsyscall(g, "fast")
    g.future.set_result(g.result)


def exitsyscall0(g: G) -> None:
    """Slow path: nobody will take this result.  Run the orphan finalizer, which loses
    nothing and leaks nothing, log what it did, and let calls that queued behind this one on
    the same fd go on."""
    # The fd reference is dropped only after the finalizer ran: it may lseek/flock the fd,
    # and a pending close must not free the number before that.
    release = g.state is _Gsyscall and g.fd >= 0  # else the fast path already dropped it
    if g.state is _Gsyscall:
        casgstatus(g, _Gsyscall, _Gdead)
    else:
        casgstatus(g, _Grunnable, _Gdead)
    counters.exits_slow += 1
    try:
        _finalize_orphan(g)
    finally:
        if release:
            fd_release(g.fd)
        g.keep = None  # the M is done: buffers may go now
        _unbusy(g)
        _wake_waiters(g)
        if trace.ENABLED:
            trace.exitsyscall(g, "slow")


def _finalize_orphan(g: G) -> None:
    r = g.result
    if r is None:
        return
    counters.orphans_finalized += 1
    kind = g.kind
    if r < 0:
        if kind == "prepared":
            g.keep.orphan(r)  # type: ignore[attr-defined]
        log.info("aiosys: cancelled %s on fd %d failed with %s", g.syscall, g.fd,
                 errno.errorcode.get(-r, str(-r)))
        return
    if kind == "prepared":
        # A typed wrapper's call (aiosys.syscall by name): it knows what it created.
        g.keep.orphan(r)  # type: ignore[attr-defined]
        log.info("aiosys: cancelled %s completed with %d: released", g.syscall, r)
        return
    if kind == "open":
        ll.raw3(_SYS_CLOSE, r)
        counters.orphan_fds_closed += 1
        log.info("aiosys: cancelled %s returned fd %d: closed", g.syscall, r)
    elif kind == "read" and r > 0:
        keep = g.keep
        if not isinstance(keep, ReadKeep):
            raise SchedulerError(f"aiosys: read G {g.goid} without its buffer")
        data = keep.data(r)
        # Put the file offset back if the fd has one; otherwise keep the bytes for the
        # next aiosys.read of this fd.
        if ll.raw3(_SYS_LSEEK, g.fd, -r, _SEEK_CUR) < 0:
            _pushback[g.fd] = _pushback.get(g.fd, b"") + data
            log.info("aiosys: cancelled read on fd %d: %d bytes kept for the next read",
                     g.fd, r)
        else:
            log.info("aiosys: cancelled read on fd %d: offset rewound by %d", g.fd, r)
        counters.orphan_bytes_kept += r
    elif kind == "flock" and r == 0:
        ll.raw3(_SYS_FLOCK, g.fd, _LOCK_UN)
        log.info("aiosys: cancelled flock on fd %d was granted: released again", g.fd)
    elif kind == "write":
        counters.orphan_writes_reported += 1
        log.warning("aiosys: cancelled %s on fd %d wrote %d bytes", g.syscall, g.fd, r)
    else:
        log.info("aiosys: cancelled %s completed with %d", g.syscall, r)


def _wake_waiters(g: G) -> None:
    waiters, g.waiters = g.waiters, None
    for fut in waiters or ():
        loop = fut.get_loop()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            if not fut.done():
                fut.set_result(None)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_set_none, fut)


def _set_none(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def wait(p: P, g: G) -> int:
    """Await a handed-off G; returns the raw result.  On cancellation the call is withdrawn
    if no M started it, else it becomes an orphan whose finalizer runs at completion."""
    try:
        r: int = await g.future
    except asyncio.CancelledError:
        cancelsyscall(p, g)
        raise
    resumed(g)
    return r


def resumed(g: G) -> None:
    """The task took its result: ``_Grunnable -> _Grunning``, and the call is over."""
    if g.state is not _Grunnable:
        casgstatus(g, _Grunnable, _Grunning)  # raises: the state machine was broken
    g.state = _Gdead
    if g.task is not None:
        _unbusy(g)


def cancelsyscall(p: P, g: G) -> None:
    """The task awaiting ``g`` was cancelled (or timed out)."""
    if g.state is _Gsyscall:
        if not g.future.done():
            g.future.cancel()
        if not p.closed and _mpool.withdraw(p.id, g.slot):
            # Queued, never started: the syscall will not happen.
            del p.inflight[g.slot]
            _unbusy(g)
            casgstatus(g, _Gsyscall, _Gdead)
            if g.fd >= 0:
                fd_release(g.fd)
            g.keep = None
            counters.withdrawn += 1
            _wake_waiters(g)
            return
        # An M has it: from now on the fd's next read/write waits for this one.
        if g.fd >= 0 and g.kind in ("read", "write"):
            _fd_orphans[g.fd] = g
    elif g.state is _Grunnable:
        # Completed, but the task was cancelled before it resumed: the result would be
        # dropped by asyncio.  Finalize it now.
        exitsyscall0(g)


class ReadKeep:
    """What a handed-off read keeps alive: the buffer the M writes into and its pin."""

    __slots__ = ("buf", "pin", "start")

    def __init__(self, buf: bytearray | None, pin: ll.Pinned, start: int = 0) -> None:
        self.buf = buf  # None: the kernel writes into pinned C memory (``pin``) itself
        self.pin = pin
        self.start = start  # where the kernel writes (an aligned offset for O_DIRECT)

    def data(self, n: int) -> bytes:
        if self.buf is None:
            return ll.read_memory(self.pin, n)
        return bytes(memoryview(self.buf)[self.start : self.start + n])


# ---------------------------------------------------------------------------------------------
# Per-fd state left by cancelled calls
# ---------------------------------------------------------------------------------------------

_pushback: dict[int, bytes] = {}
"""Bytes read by a cancelled read on an fd without a file offset, served by the next read."""
_fd_orphans: dict[int, G] = {}
"""fd -> a cancelled read/write still running on an M: later reads/writes wait for it, so
bytes stay in order."""


_fd_busy: dict[int, G] = {}
"""fd -> the last handed-off read/write on it still in flight.  Its future may be cancelled
before its task gets to run ``cancelsyscall`` (``task.cancel()`` cancels the awaited future at
once): a read issued in between must already treat it as an orphan."""


def orphan_of(fd: int) -> G | None:
    """The cancelled read/write still running on ``fd``, if any."""
    g = _fd_orphans.get(fd)
    if g is not None:
        return g
    b = _fd_busy.get(fd)
    if b is None or b.future is None:
        return None
    if b.future.cancelled() or (
        b.state is _Grunnable and b.task is not None and b.task.cancelling()
    ):
        # Cancelled while on an M, or completed and cancelled before its task resumed:
        # its finalizer has not run yet.
        _fd_orphans[fd] = b
        return b
    return None


def _unbusy(g: G) -> None:
    """``g`` no longer holds its fd: later reads/writes of it need not wait for ``g``.

    Clears the orphan entry too, on every path that ends a G (resumed, withdrawn,
    finalized): ``orphan_of`` may have promoted a busy G to an orphan before its task ran,
    and a withdrawn G that stayed listed stranded the next read (tests/sched/
    test_sched_withdraw.py)."""
    fd = g.fd
    if _fd_busy.get(fd) is g:
        del _fd_busy[fd]
    if _fd_orphans.get(fd) is g:
        del _fd_orphans[fd]


async def wait_orphan(fd: int) -> None:
    """Wait until no cancelled call is running on ``fd`` (ordering after a cancellation)."""
    while True:
        g = orphan_of(fd)
        if g is None:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if g.waiters is None:
            g.waiters = []
        g.waiters.append(fut)
        await fut


def take_pushback(fd: int, n: int) -> bytes | None:
    data = _pushback.pop(fd, None)
    if data is None:
        return None
    if len(data) > n:
        _pushback[fd] = data[n:]
        data = data[:n]
    return data


def forget_fd(fd: int) -> None:
    """The fd was closed: drop what was kept for it."""
    _pushback.pop(fd, None)


# ---------------------------------------------------------------------------------------------
# handoffp and the process-wide orphan list
# ---------------------------------------------------------------------------------------------

_orphans: dict[int, G] = {}
"""slot -> G of calls whose P went away while an M ran them (their buffers stay pinned)."""
_orphan_lock: Final = threading.Lock()
_orphan_buf: Final = _mpool.CompletionBuffer(64)


def handoffp(p: P) -> None:
    """The P goes away (its loop closes): wait up to CLOSE_TIMEOUT for its handed-off calls,
    drain them, and hand the stragglers to the process-wide orphan list, one log line each.
    Idempotent."""
    if p.closed:
        return
    loop = p.loopref()
    if p.inflight:
        left = _mpool.wait_idle(p.id, CLOSE_TIMEOUT)
        with contextlib.suppress(Exception):
            p.drain()
        if left:
            log.warning("aiosys: loop closing with %d handed-off calls still running", left)
    p.closed = True
    with _orphan_lock:
        for slot, g in p.inflight.items():
            log.warning("aiosys: straggler %s on fd %d (G %d) outlives its loop", g.syscall,
                        g.fd, g.goid)
            if g.future is not None and not g.future.done():
                with contextlib.suppress(RuntimeError):
                    g.future.cancel()
            _orphans[slot] = g
        p.inflight.clear()
    with contextlib.suppress(OSError):
        _mpool.p_unregister(p.id)
    if loop is not None and not loop.is_closed():
        with contextlib.suppress(Exception):
            loop.remove_reader(p.efd)
    with contextlib.suppress(OSError):
        os.close(p.efd)
    if p.status is not _Pdead:
        p.status = _Pdead
    with _plock:
        if _allp.get(p.id) is p:
            del _allp[p.id]
        if _p_by_thread.get(p.thread_id) is p:
            del _p_by_thread[p.thread_id]
        if loop is not None and _p_by_loop.get(loop) is p:
            del _p_by_loop[loop]
    global _last
    if _last[1] is p:
        _last = (None, None)


def drain_orphans() -> int:
    """Finalize completions of calls whose P is gone.  Returns how many."""
    n = 0
    with _orphan_lock:
        while True:
            vals = _mpool.drain(-1, _orphan_buf)
            if not vals:
                break
            for k in range(0, len(vals), _mpool.COMP_WORDS):
                g = _orphans.pop(vals[k], None)
                if g is None:
                    continue  # an orphan of a P whose loop was never ours (after fork)
                g.result = vals[k + 1]
                g.t_start = vals[k + 2]
                g.t_end = vals[k + 3]
                g.m_id = vals[k + 4]
                exitsyscall0(g)
                n += 1
    return n


def inflight() -> list[G]:
    """Every G handed off and not finished, across all Ps, plus orphans (for sysmon)."""
    out: list[G] = []
    for p in list(_allp.values()):
        out.extend(list(p.inflight.values()))
    out.extend(list(_orphans.values()))
    return out


# ---------------------------------------------------------------------------------------------
# fork: the child starts with a fresh pool (C resets itself in pthread_atfork) and no P
# ---------------------------------------------------------------------------------------------


def _after_fork_child() -> None:
    global _last
    for p in list(_allp.values()):
        p.closed = True
        p.status = _Pdead
        with contextlib.suppress(OSError):
            os.close(p.efd)
    _allp.clear()
    _p_by_thread.clear()
    _p_by_loop.clear()
    _orphans.clear()
    _fd_orphans.clear()
    _fd_busy.clear()
    _last = (None, None)
    _config.applied = False


os.register_at_fork(after_in_child=_after_fork_child)

