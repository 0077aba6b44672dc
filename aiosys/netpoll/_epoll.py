"""The epoll netpoller: poll descriptors, sequence tags, deadlines, the coalesced wakeup.

Some facts about epoll (what the kernel does, whatever we would like it to do)
==============================================================================

* epoll does not watch file *descriptors*; it watches (fd number, open file description)
  pairs, and it keeps the entry alive for as long as the *description* is alive.  ``dup()``
  makes a second fd for the same description, so after ``close(fd)`` the entry for ``fd``
  survives if a dup (or a forked child, or a passed SCM_RIGHTS copy) still holds the
  description: events keep arriving, tagged with whatever ``epoll_data`` we gave when ``fd``
  was added, long after the number ``fd`` was reused for something else.  Worse, we can no
  longer ``EPOLL_CTL_DEL`` it: the kernel looks the entry up by the *current* file behind
  ``fd``, and that is the new file.  The only robust rule is: remove an fd from epoll *before*
  ``close(2)``, never after.
* Even with that rule, an event can already be in flight: ``epoll_wait`` copied it out,
  then the fd was closed and its number reused before we looked at it (Go issue 59545, where
  a second thread did the close).  epoll cannot tell us; we must tag each registration.
* Edge-triggered (``EPOLLET``) entries report a *change*: new bytes arriving, buffer space
  freed, a hang-up.  Nothing is reported again for readiness that already existed and was
  not consumed.  Level-triggered entries report every wait for as long as the condition
  holds, which is what asyncio's ``add_reader`` expects.  Both kinds can live in one epoll
  set, entry by entry.
* ``EPOLLONESHOT`` disables an entry after one event; re-arming costs an ``epoll_ctl`` per
  wait.  ``EPOLLERR`` and ``EPOLLHUP`` are always reported, asked for or not.
* Adding an fd reports its current readiness at once (as if an edge had just happened).
* A regular file or a directory cannot be added: ``EPOLL_CTL_ADD`` fails with EPERM.
* ``epoll_wait`` takes milliseconds; a timeout of 0.3 ms rounds to 0 (a busy loop) or 1
  (late).  ``epoll_pwait2`` (Linux 5.11) takes a timespec.  Both fail with EINTR when a
  signal arrives; the stub turns that into "0 events" and the caller recomputes its timeout,
  so a signal never shortens or lengthens a wait by more than the handler's run.
* A thread blocked in ``epoll_wait`` wakes only for one of its fds, so waking it from
  another thread needs an fd of its own: an eventfd (one fd, an 8-byte counter; writes add,
  a read resets) costs one syscall per wake and one per drain.

What this means for aiosys
==========================

* Each aiosys fd enters the netpoller once, ``EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET``, and stays
  until it is closed through :func:`aiosys.netpoll.close` (or ``fdtable.fd_close``), which
  removes it from epoll before the real close.  No per-wait ``epoll_ctl``: trio uses
  ``EPOLLONESHOT`` and pays a re-arm syscall per wait; Go and aiosys use edge triggering and
  remember readiness in the poll descriptor instead (a ready edge that arrives with nobody
  waiting is kept as READY, so it is never lost).
* ``epoll_data`` carries a tag: ``(seq << 32) | fd``, with ``seq`` unique per registration in
  this netpoller (Go's ``fdseq`` in a tagged pointer).  Events are looked up by the whole tag,
  so an event for an old registration of a reused number simply finds nothing and is
  counted in ``stale_dropped``.  asyncio's own level-triggered entries use the bare fd as tag
  (``seq == 0``), so the two kinds never collide.
* Close while waiting (``fdtable.fd_close``): the fd leaves the tables and epoll at once,
  its waiters wake with :class:`FDClosedError`, and the real ``close(2)`` waits until each
  woken waiter has dropped the fd-table reference the close took for it (taken lazily, so
  parking never touches the table's lock; interleavings in ``_ops.py``).
* A stream fd (pipe, FIFO, SOCK_STREAM socket) that returned less than asked was drained at
  that moment, and any later byte brings a new edge: the next read parks at once instead of
  failing with EAGAIN first (libuv's ``uv__read`` makes the same inference).  A hang-up or
  error event ends this for the fd, since no edge may follow the FIN that came with the
  last bytes.  Never for datagrams, ttys, eventfd.
* Per-call non-blocking I/O (``RWF_NOWAIT``, ``MSG_DONTWAIT``) where the kernel has it, so an
  fd whose ``O_NONBLOCK`` was cleared through a dup still never blocks the loop.
* One waiter per direction.  A second task that waits to read the same fd gets
  :class:`BusyError` at once (Go throws "double wait"; asyncio's ``add_reader`` silently
  replaces the first callback).
* ``EPOLLERR``/``EPOLLHUP`` wake both directions: the retried syscall reports the error (EPIPE,
  ECONNRESET, EOF).  If it says EAGAIN the error was consumed (e.g. an ICMP error on a UDP
  socket) and the waiter parks again, as it should.
* Cross-thread wakeups go through one eventfd, guarded by a "wakeup pending" flag (Go's
  ``netpollWakeSig``): the first waker of a poll cycle writes, the others see the flag and
  do nothing; the loop reads the eventfd, *then* clears the flag, *then* runs what was posted.
  Any wake that lands after the clear writes again, so none is lost, and a thousand wakes in
  one cycle cost one write.
* Deadlines (Go's ``SetReadDeadline``) are per direction: ``rd``/``wd`` are 0 (none), a
  nanotime, or -1 (expired: sticky until moved).  Each change bumps ``rseq``/``wseq`` and
  the timer carries the seq it was armed with, so a timer that fires after its deadline was
  moved does nothing.  A timer that fires before its nanotime (a loop with a coarser clock,
  such as uvloop's millisecond ``uv_now``) re-arms for the remainder: never early.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Final

# Besides its public functions, the netpoller uses these _lowlevel names on its hot path
# (the raw cffi stubs, returning -errno instead of raising): _preadv2, _pwritev2, _sys6,
# _epoll_wait, _epoll_pwait2, EventBuffer._arr/_view, Pinned._cdata.
from aiosys.native import _lowlevel as _ll

from . import fdtable
from ._errors import BusyError, FDClosedError, NotPollableError

# pollDesc direction states (Go: pdNil, pdReady, or the waiting G):
#
#   state      meaning                                          who sets it
#   _IDLE      not known to be ready: the next op parks          an op after EAGAIN or a
#              without trying the syscall                        short stream read/write;
#                                                                a deadline or close wake
#   _READY     an edge arrived (or nothing is known yet, at      the poll loop on an event;
#              registration): the next op tries the syscall      registration
#   a Future   WAITING: exactly one task is parked on it         the op that parks
#
# Invariant: a Future in rg/wg is not done, or its task has not resumed yet (the waker
# replaces it with _IDLE/_READY before resolving it, so a state is never a done Future for
# longer than the hop to the task).  All PollDesc fields are owned by the loop thread, except
# ``closing`` (set by a closing thread before it posts the wake to the loop thread).
_IDLE: Final = 0
_READY: Final = 1
# _DRAINED (read side only): like _IDLE, but inferred from a short read on a stream fd rather
# than from EAGAIN.  Linux never returns less than is buffered on a non-blocking pipe or
# stream-socket read, so the next read parks without trying; POSIX would allow it, though
# (and fault injection does it), so a reader parked on this inference with no edge for a
# whole DRAINED_CHECK interval is woken once to try the syscall (Netpoller._check_drained):
# never a hang, and no cost while edges keep coming.
_DRAINED: Final = 2
DRAINED_CHECK: Final = 0.02  # seconds

_ET_EVENTS: Final = _ll.EPOLLIN | _ll.EPOLLOUT | _ll.EPOLLRDHUP | _ll.EPOLLET
# Which events wake which side is decided in csrc/hotpoll.c (Netpoller.dispatch): read waiters
# on IN, RDHUP, HUP or ERR; write waiters on OUT, HUP or ERR.  After a hang-up or an error no
# further edge may come, so "a short read means drained, park at once" would park forever on
# data that came with the FIN: RDHUP, HUP and ERR clear pd.stream, which ends the skip.
# The eventfd's own tag: no aiosys tag has bit 63 set (seq < 2**31) and no fd is that large.
WAKE_TAG: Final = 1 << 63  # hotpoll.c's HOT_WAKE_TAG
# Events copied out per epoll_wait.  More ready fds than this are simply left for the next
# wait (epoll round-robins its ready list), so this bounds latency, not correctness.
EVENTS_PER_WAIT: Final = 256
# Netpoller.dispatch's default: no asyncio keys (attach mode).  Read, never written.
_NO_KEYS: Final[dict[int, Any]] = {}
_hot_dispatch: Final = _ll.HOT["hot_dispatch"]

# Longest single timer a deadline arms (one day); a later deadline re-arms when it fires.
MAX_TIMER_NS: Final = 86_400 * 1_000_000_000
_SOCK_STREAM: Final = 1  # socket.SOCK_STREAM without importing socket here


class PollDesc:
    """One fd's state in one netpoller (Go's ``pollDesc``).  Owned by the loop thread."""

    __slots__ = (
        "closing",
        "fd",
        "infer",
        "nowait_r",
        "nowait_w",
        "rd",
        "rg",
        "rgen",
        "rref",
        "rseq",
        "rtimer",
        "sock",
        "sockinfo",
        "stream",
        "stream_kind",
        "tag",
        "wd",
        "wg",
        "wref",
        "wseq",
        "wtimer",
    )

    def __init__(self, fd: int, tag: int, *, sock: bool, stream: bool) -> None:
        self.fd = fd
        self.tag = tag  # (seq << 32) | fd, as given to epoll
        self.rg: int | asyncio.Future[None] = _READY  # unknown at registration: try first
        self.rgen = 0  # the poller's check generation when this fd last parked _DRAINED
        self.wg: int | asyncio.Future[None] = _READY
        self.rd = 0  # read deadline: 0 none, > 0 nanotime, -1 expired (Go's pd.rd)
        self.wd = 0
        self.rseq = 0  # bumped on every read-deadline change (Go's pd.rseq)
        self.wseq = 0
        self.rtimer: asyncio.TimerHandle | None = None
        self.wtimer: asyncio.TimerHandle | None = None
        self.closing = False  # set once; the pd is out of the poller's tables by then
        # The parked Future a close took an fd-table reference for (see hold_for_close); the
        # waiter releases it when it resumes.  Written under fdtable's lock.
        self.rref: asyncio.Future[None] | None = None
        self.wref: asyncio.Future[None] | None = None
        self.sock = sock
        self.sockinfo: tuple[int, int, int] | None = None  # (family, type, proto), lazily
        # A stream (pipe, FIFO, SOCK_STREAM socket): a read shorter than asked means the
        # kernel buffer was empty at that moment, and any later byte brings a new edge, so
        # the next read can park at once instead of failing with EAGAIN first.  Never for
        # datagrams, ttys (one line per read), eventfd, timerfd...
        self.stream = stream
        self.stream_kind = stream  # what the fd is; ``stream`` may be cleared by a hang-up
        # False after the drained check found a reader parked on the short-read inference
        # with no edge for a whole interval; True again at the next EAGAIN (the inference
        # held).  On Linux it stays True.
        self.infer = True
        # preadv2/pwritev2(RWF_NOWAIT) work per call (so an fd whose O_NONBLOCK was cleared
        # through a dup still never blocks); cleared on EOPNOTSUPP (ttys, eventfd writes).
        self.nowait_r = True
        self.nowait_w = True

    def __repr__(self) -> str:
        return (
            f"<PollDesc fd={self.fd} seq={self.tag >> 32} rg={_state_name(self.rg)} "
            f"wg={_state_name(self.wg)} rd={self.rd} wd={self.wd}"
            f"{' closing' if self.closing else ''}>"
        )


def _state_name(g: object) -> str:
    if g.__class__ is int:
        return {_IDLE: "IDLE", _READY: "READY", _DRAINED: "DRAINED"}[g]
    return "WAITING"


def _wake(g: int | asyncio.Future[None]) -> int:
    """Resolve a waiting Future (already replaced in its slot); 1 if a task was woken."""
    if g.__class__ is not int and not g.done():  # type: ignore[union-attr]
        g.set_result(None)  # type: ignore[union-attr]
        return 1
    return 0


class _Fds:
    """The fds a netpoller owns, closed by whoever comes first: ``Netpoller.close`` or the
    foreign loop's garbage collection (attach mode).  Holds no reference to the poller or
    the loop, so a ``weakref.finalize`` over it does not keep them alive."""

    __slots__ = ("closed", "efd", "epfd")

    def __init__(self) -> None:
        self.closed = False
        self.epfd = _ll.epoll_create1()
        try:
            self.efd = _ll.eventfd(0)
        except BaseException:
            os.close(self.epfd)
            raise

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.efd)
            os.close(self.epfd)


class Netpoller:
    """One loop's epoll set: aiosys PollDescs (edge-triggered) and, on the aiosys loop,
    asyncio's own readers and writers (level-triggered).  All methods run on the loop
    thread unless they say otherwise."""

    def __init__(self, *, attached: bool) -> None:
        self._fds = _Fds()
        self.epfd = self._fds.epfd
        self.attached = attached  # True: a foreign loop runs us (no park hooks)
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set by owner
        self.closed = False
        # Invariant: tags[pd.tag] is pds[pd.fd] is pd for every registered pd.
        self.pds: dict[int, PollDesc] = {}
        self.tags: dict[int, PollDesc] = {}
        # fds asyncio registered level-triggered in the same epoll set (aiosys loop only):
        # an aiosys op on one of them is refused (one epoll entry per fd).
        self.asyncio_fds: set[int] | dict[int, Any] = set()
        self._seq = 0
        self.buf = _ll.EventBuffer(EVENTS_PER_WAIT)
        # accept4's sockaddr_storage and socklen_t, pinned once.
        self.addr_buf = bytearray(128)
        self.addr_pin = _ll.pin_buffer(self.addr_buf, writable=True)
        self.addrlen_buf = bytearray(4)
        self.addrlen_pin = _ll.pin_buffer(self.addrlen_buf, writable=True)
        # The "wakeup pending" flag: a Lock used as an atomic test-and-set (Go's
        # netpollWakeSig CAS).  Held from the first wake of a cycle until the loop drains.
        self._wake_flag = threading.Lock()
        self._posted: deque[Callable[[], object]] = deque()
        self._before_park: list[Callable[[], bool]] = []
        self._after_park: list[Callable[[], None]] = []
        self._close_hooks: list[Callable[[], None]] = []
        # Readers parked on the short-read inference, and the timer that double-checks them.
        self.drained: set[PollDesc] = set()
        self.drained_gen = 0
        self.drained_timer: asyncio.TimerHandle | None = None
        self.drained_rechecks = 0  # such readers woken to try again (0 on a real kernel)
        # Counters (plain ints: cheap, always on; read by stats()).
        self.polls = 0
        self.events = 0
        self.stale_dropped = 0
        self.parks = 0  # netpoll_waits: a task parked on a PollDesc
        self.wakeups = 0  # netpoll_wakeups: a parked task woken by readiness
        self.wake_writes = 0  # eventfd writes (at most one per poll cycle)
        self.wake_coalesced = 0  # wakes that found the flag already set
        self.deadline_fired = 0
        self.registered_total = 0
        _ll.epoll_ctl(self.epfd, _ll.EPOLL_CTL_ADD, self._fds.efd, _ll.EPOLLIN, WAKE_TAG)

    # ----------------------------------------------------------------------------------
    # Registration
    # ----------------------------------------------------------------------------------

    def register(self, fd: int) -> PollDesc:
        """Enter ``fd`` into the netpoller (once): non-blocking, edge-triggered, tagged.

        :raises NotPollableError: regular file or directory (epoll says EPERM).
        :raises FDClosedError: a close of ``fd`` is pending.
        :raises BusyError: the loop's ``add_reader``/``add_writer`` already watches ``fd``.
        """
        pd = self.pds.get(fd)
        if pd is not None:
            return pd
        if self.closed:
            raise RuntimeError("aiosys netpoller is closed")
        if fd in fdtable.closing_fds:
            raise FDClosedError()
        if fd in self.asyncio_fds:
            raise BusyError(
                f"fd {fd} is watched by this loop's add_reader/add_writer; "
                "aiosys awaitables cannot share it"
            )
        try:
            mode = os.fstat(fd).st_mode
        except OverflowError:  # no fd has this number: what the kernel says for a bad fd
            raise OSError(errno.EBADF, os.strerror(errno.EBADF)) from None
        if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
            raise NotPollableError(fd)
        sock = stat.S_ISSOCK(mode)
        stream = stat.S_ISFIFO(mode) or (sock and _socket_type(fd) == _SOCK_STREAM)
        self._seq = seq = (self._seq + 1) & 0x7FFFFFFF or 1
        tag = (seq << 32) | fd
        try:
            _ll.epoll_ctl(self.epfd, _ll.EPOLL_CTL_ADD, fd, _ET_EVENTS, tag)
        except PermissionError:
            raise NotPollableError(fd) from None
        except FileExistsError:
            raise BusyError(f"fd {fd} is already in this loop's epoll set") from None
        try:
            os.set_blocking(fd, False)  # Go's newFD: the netpoller needs O_NONBLOCK
        except BaseException:
            _ll.epoll_ctl(self.epfd, _ll.EPOLL_CTL_DEL, fd)
            raise
        pd = PollDesc(fd, tag, sock=sock, stream=stream)
        self.pds[fd] = pd
        self.tags[tag] = pd
        self.registered_total += 1
        return pd

    def register_accepted(self, fd: int, listener: PollDesc) -> PollDesc:
        """Enter a socket fresh from ``accept4(SOCK_NONBLOCK)``: its kind is the listener's
        and it is already non-blocking, so one ``epoll_ctl`` is all it costs."""
        self._seq = seq = (self._seq + 1) & 0x7FFFFFFF or 1
        tag = (seq << 32) | fd
        _ll.epoll_ctl(self.epfd, _ll.EPOLL_CTL_ADD, fd, _ET_EVENTS, tag)
        pd = PollDesc(fd, tag, sock=True, stream=listener.stream_kind)
        old = self.pds.get(fd)
        if old is not None:  # a stale PollDesc: its fd was closed behind our back
            self.tags.pop(old.tag, None)
            old.closing = True
            self._wake_closed(old)
        self.pds[fd] = pd
        self.tags[tag] = pd
        self.registered_total += 1
        return pd

    def evict(self, fd: int) -> None:
        """Take ``fd`` out of this netpoller before it is closed.  Any thread.

        The PollDesc leaves the tables and epoll at once (so the number is free for a new
        registration, and no event for it is delivered again); its waiters wake with the
        closed error on the loop thread.
        """
        pd = self.pds.pop(fd, None)
        if pd is None:
            return
        self.tags.pop(pd.tag, None)
        # Order matters: ``closing`` first, then the slots are read under the table lock.  A
        # waiter that already resumed (its Future done) sees ``closing`` and holds nothing;
        # one still parked gets a reference it releases when it resumes (numbered
        # interleavings in _ops.py, "Parking").
        pd.closing = True
        fdtable.hold_for_close(fd, lambda: _take_waiters(pd))
        if not self._fds.closed:
            with contextlib.suppress(OSError):  # already gone with its file: fine
                _ll.epoll_ctl(self.epfd, _ll.EPOLL_CTL_DEL, fd)
        if self.on_loop_thread():
            self._wake_closed(pd)
        else:
            self.post(lambda: self._wake_closed(pd))

    def _wake_closed(self, pd: PollDesc) -> None:
        for t in (pd.rtimer, pd.wtimer):
            if t is not None:
                t.cancel()
        pd.rtimer = pd.wtimer = None
        rg, wg = pd.rg, pd.wg
        pd.rg = pd.wg = _IDLE
        _wake(rg)
        _wake(wg)

    def on_loop_thread(self) -> bool:
        return asyncio._get_running_loop() is self.loop

    # ----------------------------------------------------------------------------------
    # The poll step
    # ----------------------------------------------------------------------------------

    def dispatch(
        self, pairs: Any, n: int, fd_to_key: dict[int, Any] = _NO_KEYS
    ) -> list[tuple[Any, int]]:
        """Deliver ``n`` (events, tag) pairs from ``pairs``, a buffer of uint64 as the epoll
        stubs fill it (csrc/hotpoll.c states the rules): PollDescs are woken
        (edge-triggered); asyncio's keys in ``fd_to_key`` (the aiosys loop's own readers
        and writers, level-triggered) are returned as a selector returns them; the wakeup
        eventfd is drained; tags of PollDescs that have gone are counted and dropped."""
        ready, woke, stale, wake_seen = _hot_dispatch(pairs, n, self.tags, fd_to_key)
        self.wakeups += woke
        if stale:
            self.stale_dropped += stale
        if wake_seen:
            self.drain_wakeups()
        return ready  # type: ignore[no-any-return]

    def poll_attached(self) -> None:
        """Drain ready events without blocking (the foreign loop saw the epoll fd readable)."""
        if self._fds.closed:
            return
        n = _ll.epoll_wait(self.epfd, self.buf, 0)
        self.polls += 1
        if n:
            self.events += n
            self.dispatch(self.buf._view, n)

    # ----------------------------------------------------------------------------------
    # Cross-thread wakeup (Go's netpollBreak)
    # ----------------------------------------------------------------------------------

    def wakeup(self) -> None:
        """Make the current or next poll return.  Any thread; at most one eventfd write per
        poll cycle however many threads call it."""
        if self._wake_flag.acquire(False):
            self.wake_writes += 1
            if not self._fds.closed:
                with contextlib.suppress(BlockingIOError):  # counter full: already due
                    _ll.eventfd_write(self._fds.efd, 1)
        else:
            self.wake_coalesced += 1

    def post(self, cb: Callable[[], object]) -> None:
        """Run ``cb()`` on the loop thread during the next poll step.  Any thread; never
        lost, and coalesced like :meth:`wakeup`."""
        self._posted.append(cb)
        self.wakeup()

    def drain_wakeups(self) -> None:
        # Order matters (see the module notes): read the counter, then clear the flag, then
        # run what was posted.  A post that lands after the clear writes again.
        with contextlib.suppress(BlockingIOError):
            _ll.eventfd_read(self._fds.efd)
        if self._wake_flag.locked():
            self._wake_flag.release()
        posted = self._posted
        while posted:
            posted.popleft()()

    @property
    def wakeup_fd(self) -> int:
        """The eventfd (for tests and diagnostics; write through :meth:`wakeup`)."""
        return self._fds.efd

    # ----------------------------------------------------------------------------------
    # The short-read inference's safety net
    # ----------------------------------------------------------------------------------

    def park_drained(self, pd: PollDesc) -> None:
        """A reader parks on _DRAINED (no syscall tried): remember it, and make sure a check
        runs within DRAINED_CHECK.  One set insert on the hot path; at most one timer.
        (netpoll's read inlines the first two lines and calls :meth:`arm_drained_check`.)"""
        pd.rgen = self.drained_gen
        self.drained.add(pd)
        if self.drained_timer is None:
            self.arm_drained_check()

    def arm_drained_check(self) -> None:
        if self.drained_timer is None and not self.closed:
            self.drained_timer = self.loop.call_later(DRAINED_CHECK, self._check_drained)

    def _check_drained(self) -> None:
        # Readers parked on the inference since before the previous check, still waiting:
        # no edge came for a whole interval, so let them try the syscall once.  A reader
        # that gets EAGAIN parks as _IDLE and is not checked again.
        self.drained_timer = None
        gen = self.drained_gen
        self.drained_gen = gen + 1
        keep: set[PollDesc] = set()
        for pd in self.drained:
            g = pd.rg
            if g.__class__ is int or pd.closing:
                continue  # woken meanwhile
            if pd.rgen < gen:
                pd.rg = _READY
                pd.infer = False  # until a read says EAGAIN: then the inference held
                self.drained_rechecks += _wake(g)
            else:
                keep.add(pd)
        self.drained = keep
        if keep and not self.closed:
            self.drained_timer = self.loop.call_later(DRAINED_CHECK, self._check_drained)

    # ----------------------------------------------------------------------------------
    # Deadlines (Go's poll_runtime_pollSetDeadline / netpolldeadlineimpl)
    # ----------------------------------------------------------------------------------

    def set_deadline(self, pd: PollDesc, read: bool, write: bool, t_ns: int | None) -> None:
        """Set (``t_ns`` nanotime), clear (None) or expire (a past time) deadlines."""
        now = _ll.nanotime()
        d = 0 if t_ns is None else (-1 if t_ns <= now else t_ns)
        if read:
            pd.rseq += 1
            if pd.rtimer is not None:
                pd.rtimer.cancel()
                pd.rtimer = None
            pd.rd = d
            if d > 0:
                pd.rtimer = self._arm(pd, True, pd.rseq, d, now)
            elif d < 0:
                self._expire(pd, True)
        if write:
            pd.wseq += 1
            if pd.wtimer is not None:
                pd.wtimer.cancel()
                pd.wtimer = None
            pd.wd = d
            if d > 0:
                pd.wtimer = self._arm(pd, False, pd.wseq, d, now)
            elif d < 0:
                self._expire(pd, False)

    def _arm(self, pd: PollDesc, read: bool, seq: int, d: int, now: int) -> asyncio.TimerHandle:
        # A far deadline is armed in steps of at most MAX_TIMER_NS (a loop's timer may not
        # take 1e300 seconds: uvloop converts to a 64-bit millisecond count); each early
        # firing re-arms for the remainder (_deadline_fired).
        delay = min(d - now, MAX_TIMER_NS)
        return self.loop.call_later(delay / 1e9, self._deadline_fired, pd, read, seq)

    def _deadline_fired(self, pd: PollDesc, read: bool, seq: int) -> None:
        if pd.closing or seq != (pd.rseq if read else pd.wseq):
            return  # moved or cleared after this timer was armed: ignore it
        d = pd.rd if read else pd.wd
        now = _ll.nanotime()
        if now < d:  # the loop's clock is coarser than ours: never fire early
            timer = self._arm(pd, read, seq, d, now)
            if read:
                pd.rtimer = timer
            else:
                pd.wtimer = timer
            return
        if read:
            pd.rd = -1
            pd.rtimer = None
        else:
            pd.wd = -1
            pd.wtimer = None
        self.deadline_fired += 1
        self._expire(pd, read)

    def _expire(self, pd: PollDesc, read: bool) -> None:
        # Go's netpollunblock(pd, mode, ioready=false): the waiter wakes to see rd/wd < 0.
        if read:
            g, pd.rg = pd.rg, (pd.rg if pd.rg.__class__ is int else _IDLE)
        else:
            g, pd.wg = pd.wg, (pd.wg if pd.wg.__class__ is int else _IDLE)
        _wake(g)

    # ----------------------------------------------------------------------------------
    # Hooks and teardown
    # ----------------------------------------------------------------------------------

    def add_park_hooks(
        self, before_park: Callable[[], bool], after_park: Callable[[], None]
    ) -> bool:
        """Install the scheduler's park hooks (see the module docstring of
        :mod:`aiosys.netpoll`).  Returns False in attach mode: a foreign loop blocks where we
        cannot see it, so the caller must always wake the loop through its own fd."""
        if self.attached:
            return False
        self._before_park.append(before_park)
        self._after_park.append(after_park)
        return True

    def add_close_hook(self, cb: Callable[[], None]) -> None:
        """Run ``cb()`` when this netpoller is torn down (its loop closes)."""
        self._close_hooks.append(cb)

    def waiters(self) -> tuple[int, int]:
        """(readers, writers) parked right now."""
        r = w = 0
        for pd in list(self.pds.values()):
            r += pd.rg.__class__ is not int
            w += pd.wg.__class__ is not int
        return r, w

    def close(self) -> None:
        """Tear down: run close hooks, wake every waiter with the closed error, close the
        epoll fd and the eventfd.  Registered fds are not closed (they are not ours)."""
        if self.closed:
            return
        self.closed = True
        hooks, self._close_hooks = self._close_hooks, []
        try:
            for cb in hooks:
                cb()
        finally:
            pds = list(self.pds.values())
            self.pds.clear()
            self.tags.clear()
            for pd in pds:
                pd.closing = True
                with contextlib.suppress(RuntimeError):  # the loop may be closed already
                    self._wake_closed(pd)
            self._posted.clear()
            self.drained.clear()
            if self.drained_timer is not None:
                with contextlib.suppress(RuntimeError):
                    self.drained_timer.cancel()
                self.drained_timer = None
            self._fds.close()

    def forget_after_fork(self) -> None:
        """In a forked child: the epoll set is shared with the parent, so never touch it
        (an EPOLL_CTL_DEL here would remove the parent's entries).  Close our copies of the
        fds and start a fresh epoll set with the same registrations."""
        old = self._fds
        if old.closed:
            return
        old.closed = True
        for fd in (old.efd, old.epfd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = _Fds()
        self.epfd = self._fds.epfd
        self._wake_flag = threading.Lock()
        _ll.epoll_ctl(self.epfd, _ll.EPOLL_CTL_ADD, self._fds.efd, _ll.EPOLLIN, WAKE_TAG)
        for fd, pd in list(self.pds.items()):
            try:
                _ll.epoll_ctl(self.epfd, _ll.EPOLL_CTL_ADD, fd, _ET_EVENTS, pd.tag)
            except OSError:
                self.pds.pop(fd, None)
                self.tags.pop(pd.tag, None)
            else:
                pd.rg = pd.rg if pd.rg.__class__ is not int else _READY
                pd.wg = pd.wg if pd.wg.__class__ is not int else _READY

    def stats(self) -> dict[str, int]:
        r, w = self.waiters()
        return {
            "registered_fds": len(self.pds),
            "registered_total": self.registered_total,
            "waiters_read": r,
            "waiters_write": w,
            "polls": self.polls,
            "events": self.events,
            "stale_dropped": self.stale_dropped,
            "netpoll_waits": self.parks,
            "netpoll_wakeups": self.wakeups,
            "wakeup_writes": self.wake_writes,
            "wakeups_coalesced": self.wake_coalesced,
            "deadlines_fired": self.deadline_fired,
            "drained_rechecks": self.drained_rechecks,
        }


def _take_waiters(pd: PollDesc) -> int:
    # Under fdtable's lock, after pd.closing was set.
    k = 0
    g = pd.rg
    if g.__class__ is not int and not g.done():  # type: ignore[union-attr]
        pd.rref = g  # type: ignore[assignment]
        k += 1
    g = pd.wg
    if g.__class__ is not int and not g.done():  # type: ignore[union-attr]
        pd.wref = g  # type: ignore[assignment]
        k += 1
    return k


def drop_waiter_ref(pd: PollDesc, fut: asyncio.Future[None], read: bool) -> None:
    """A waiter resumed on a closing PollDesc: release the reference the close took for it,
    if it took one (the last release runs the real close)."""
    with fdtable._lock:
        if read:
            held = pd.rref is fut
            if held:
                pd.rref = None
        else:
            held = pd.wref is fut
            if held:
                pd.wref = None
    if held:
        fdtable.fd_release(pd.fd)


def _socket_type(fd: int) -> int:
    """getsockopt(SO_TYPE) without building a socket object (once per registration)."""
    val = bytearray(4)
    ln = bytearray((4).to_bytes(4, "little"))
    pv = _ll.pin_buffer(val, writable=True)
    pl = _ll.pin_buffer(ln, writable=True)
    _ll.check(_ll.raw6(_ll.SYS["getsockopt"], fd, _SOL_SOCKET, _SO_TYPE, pv.addr, pl.addr))
    del pv, pl
    return int.from_bytes(val, "little")


_SOL_SOCKET: Final = 1
_SO_TYPE: Final = 3
