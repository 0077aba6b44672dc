"""Loop integration: the aiosys event loop (its selector *is* the netpoller) and attach mode
for loops aiosys did not create (the stdlib loop, uvloop).

The aiosys loop is ``asyncio.SelectorEventLoop`` with one change: its selector is a
``selectors.BaseSelector`` over the netpoller's epoll fd.  asyncio's readers and writers are
level-triggered entries tagged with the bare fd (what asyncio expects); aiosys PollDescs are
edge-triggered entries tagged ``(seq << 32) | fd``.  One ``epoll_wait`` per loop iteration
serves both, and it is the runtime's privileged syscall: it runs on the loop thread, keeps its
P, and is never handed off.  The select step does no per-iteration Python work beyond what
the stdlib ``EpollSelector`` does, unless the scheduler installed park hooks.

Attach mode: on a foreign running loop the netpoller's epoll fd is watched with
``loop.add_reader`` and drained with ``epoll_wait(timeout=0)`` on the loop thread.  No extra
thread.  The foreign loop's blocking wait is its own, so park hooks are refused there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import selectors
import threading
import weakref
from collections.abc import Coroutine, Iterator, Mapping
from typing import Any, TypeVar

from aiosys.native import _lowlevel as _ll

from . import fdtable
from ._epoll import (
    _ET_EVENTS,
    EVENTS_PER_WAIT,
    Netpoller,
)
from ._leanloop import LeanCallbacks

_T = TypeVar("_T")

_EPOLLIN = _ll.EPOLLIN
_EPOLLOUT = _ll.EPOLLOUT
_EVENT_READ = selectors.EVENT_READ
_EVENT_WRITE = selectors.EVENT_WRITE
_pwait2 = _ll._epoll_pwait2 if _ll.HAVE_EPOLL_PWAIT2 else None
_wait_ms = _ll._epoll_wait


class _KeyMap(Mapping[Any, selectors.SelectorKey]):
    """``get_map()``: fileobj -> key (the stdlib's _SelectorMapping)."""

    def __init__(self, selector: NetpollSelector) -> None:
        self._selector = selector

    def __len__(self) -> int:
        return len(self._selector._fd_to_key)

    def __getitem__(self, fileobj: Any) -> selectors.SelectorKey:
        fd = self._selector._fileobj_lookup(fileobj)
        try:
            return self._selector._fd_to_key[fd]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None

    def __iter__(self) -> Iterator[Any]:
        return iter(self._selector._fd_to_key)


def _fileobj_to_fd(fileobj: Any) -> int:
    if isinstance(fileobj, int):
        fd = int(fileobj)
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


def _epoll_events(events: int) -> int:
    return (_EPOLLIN if events & _EVENT_READ else 0) | (_EPOLLOUT if events & _EVENT_WRITE else 0)


class NetpollSelector(selectors.BaseSelector):
    """A selector whose epoll set is the netpoller's.  asyncio's registrations are
    level-triggered, tagged with the bare fd; everything else in the set belongs to the
    netpoller."""

    def __init__(self, poller: Netpoller) -> None:
        self._fd_to_key: dict[int, selectors.SelectorKey] = {}
        self._map = _KeyMap(self)
        self._poller = poller
        poller.asyncio_fds = self._fd_to_key  # the netpoller refuses these fds

    @property
    def poller(self) -> Netpoller:
        return self._poller

    def _fileobj_lookup(self, fileobj: Any) -> int:
        try:
            return _fileobj_to_fd(fileobj)
        except ValueError:
            # A closed file object: search the map (the stdlib does the same).
            for key in self._fd_to_key.values():
                if key.fileobj is fileobj:
                    return key.fd
            raise

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        if not events or events & ~(_EVENT_READ | _EVENT_WRITE):
            raise ValueError(f"Invalid events: {events!r}")
        key = selectors.SelectorKey(fileobj, self._fileobj_lookup(fileobj), events, data)
        if key.fd in self._fd_to_key:
            raise KeyError(f"{fileobj!r} (FD {key.fd}) is already registered")
        if key.fd in self._poller.pds and not self._evict_if_stale(key.fd):
            raise ValueError(
                f"fd {key.fd} is registered with the aiosys netpoller "
                "(aiosys awaitables use it); asyncio readers/writers cannot share it"
            )
        _ll.epoll_ctl(self._poller.epfd, _ll.EPOLL_CTL_ADD, key.fd, _epoll_events(events), key.fd)
        self._fd_to_key[key.fd] = key
        return key

    def _evict_if_stale(self, fd: int) -> bool:
        """The PollDesc of ``fd`` may belong to a file closed behind aiosys's back (a
        ``sock.close()`` after ``aiosys.accept(sock.fileno())``) whose number was reused, e.g.
        by the scheduler's own wakeup eventfd.  epoll keys its entries by (file, fd) and drops
        them when the file closes, so a MOD of the number answers ENOENT exactly then: evict
        the stale PollDesc (its waiters wake with the closed error) and report True."""
        pd = self._poller.pds[fd]
        try:
            _ll.epoll_ctl(self._poller.epfd, _ll.EPOLL_CTL_MOD, fd, _ET_EVENTS, pd.tag)
        except FileNotFoundError:
            self._poller.evict(fd)
            return True
        return False

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        try:
            key = self._fd_to_key.pop(self._fileobj_lookup(fileobj))
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        # The fd may be closed already (stdlib's EpollSelector ignores this too).
        with contextlib.suppress(OSError):
            _ll.epoll_ctl(self._poller.epfd, _ll.EPOLL_CTL_DEL, key.fd)
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        try:
            key = self._fd_to_key[self._fileobj_lookup(fileobj)]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        if events != key.events:
            if not events or events & ~(_EVENT_READ | _EVENT_WRITE):
                raise ValueError(f"Invalid events: {events!r}")
            _ll.epoll_ctl(
                self._poller.epfd, _ll.EPOLL_CTL_MOD, key.fd, _epoll_events(events), key.fd
            )
            key = key._replace(events=events, data=data)
            self._fd_to_key[key.fd] = key
        elif data != key.data:
            key = key._replace(data=data)
            self._fd_to_key[key.fd] = key
        return key

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._map[fileobj]

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._map

    def select(
        self, timeout: float | None = None
    ) -> list[tuple[selectors.SelectorKey, int]]:
        p = self._poller
        if timeout is None:
            tns = -1
        elif timeout <= 0:
            tns = 0
        else:
            tns = int(timeout * 1e9) + 1  # round up: wait *at least* timeout
        before = p._before_park
        if before and tns:
            # The scheduler's "parked flag" protocol: it may veto a blocking wait.
            for hook in before:
                if not hook():
                    tns = 0
        if _pwait2 is not None:
            n = _pwait2(p.epfd, p.buf._arr, EVENTS_PER_WAIT, tns)
        else:
            tms = tns if tns <= 0 else (tns + 999_999) // 1_000_000
            n = _wait_ms(p.epfd, p.buf._arr, EVENTS_PER_WAIT, tms)
        if before:
            for after in p._after_park:
                after()
        p.polls += 1
        if n <= 0:
            if n < 0:
                raise _ll.oserror(-n)
            return []
        p.events += n
        return p.dispatch(p.buf._view, n, self._fd_to_key)

    def close(self) -> None:
        self._fd_to_key.clear()
        self._poller.close()


class AiosysEventLoop(LeanCallbacks, asyncio.SelectorEventLoop):
    """``asyncio.SelectorEventLoop`` whose selector is the aiosys netpoller.  Everything
    asyncio offers works on it (streams, transports, ``sock_*``, subprocesses, signals)."""

    def __init__(self) -> None:
        poller = Netpoller(attached=False)
        try:
            super().__init__(NetpollSelector(poller))
        except BaseException:
            poller.close()
            raise
        poller.loop = self
        self._netpoller = poller
        _remember(self, poller)
        self._bind_lean()

    @property
    def netpoller(self) -> Netpoller:
        return self._netpoller

    def run_forever(self) -> None:
        # Publish "this thread runs this netpoller" for current_poller(): a dict lookup by
        # thread id instead of asyncio._get_running_loop(), which on CPython 3.11 calls
        # getpid() (a real syscall since glibc 2.25) on every call.
        tid = _get_ident()
        prev = _running.get(tid)  # set only if this call is refused as nested
        _running[tid] = self._netpoller
        try:
            super().run_forever()
        finally:
            if prev is None:
                _running.pop(tid, None)
            else:
                _running[tid] = prev


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new aiosys event loop (the caller closes it)."""
    return AiosysEventLoop()


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """``asyncio.set_event_loop_policy(aiosys.EventLoopPolicy())`` makes every new loop an
    aiosys loop."""

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return AiosysEventLoop()


def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
    """``asyncio.run`` on a new aiosys loop."""
    with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)


# ------------------------------------------------------------------------------------------
# One netpoller per loop
# ------------------------------------------------------------------------------------------

# loop -> poller.  Weak on both sides: a foreign loop that is dropped takes its attached
# poller with it (the poller's fds are closed by a finalizer on the loop), and the registry
# never keeps a loop alive.
_pollers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.ref[Netpoller]] = (
    weakref.WeakKeyDictionary()
)
_all: weakref.WeakSet[Netpoller] = weakref.WeakSet()
# The last (loop, poller) pair looked up: one identity test on the hot path.
_last_poller: weakref.ref[Netpoller] | None = None
_registry_lock = threading.Lock()
# thread id -> the netpoller of the aiosys loop running on that thread (set and cleared by
# AiosysEventLoop.run_forever; asyncio forbids two running loops on one thread).
_running: dict[int, Netpoller] = {}
# thread id -> the attached netpoller of the stdlib loop last seen running there; valid while
# that loop's ``_thread_id`` (set only while it runs) is this thread.  Weak values: never
# keeps a finished loop alive.
_attached_by_thread: dict[int, weakref.ref[Netpoller]] = {}
_get_ident = threading.get_ident


def _remember(loop: asyncio.AbstractEventLoop, poller: Netpoller) -> None:
    with _registry_lock:
        _pollers[loop] = weakref.ref(poller)
        _all.add(poller)


def current_poller() -> Netpoller:
    """The running loop's netpoller, created (and attached, on a foreign loop) on first use.

    :raises RuntimeError: no running event loop.
    """
    global _last_poller
    tid = _get_ident()
    p = _running.get(tid)
    if p is not None:
        return p  # an aiosys loop is running on this thread
    ref = _attached_by_thread.get(tid)
    if ref is not None:
        p = ref()
        if p is not None and getattr(p.loop, "_thread_id", None) == tid and not p.closed:
            return p  # a stdlib loop (it records its thread while it runs) we attached to
    loop = asyncio._get_running_loop()
    lp = _last_poller
    if lp is not None:
        p = lp()
        if p is not None and p.loop is loop and not p.closed:
            return p
    if loop is None:
        raise RuntimeError("aiosys.netpoll: no running event loop")
    ref = _pollers.get(loop)
    p = ref() if ref is not None else None
    if p is None or p.closed:
        p = _attach(loop)
    _last_poller = weakref.ref(p)
    if getattr(loop, "_thread_id", None) == tid:
        _attached_by_thread[tid] = _last_poller
    return p


def running_poller() -> Netpoller | None:
    """The running loop's netpoller if it has one, else None: never creates or attaches."""
    tid = _get_ident()
    p = _running.get(tid)
    if p is not None:
        return p
    ref = _attached_by_thread.get(tid)
    if ref is not None:
        p = ref()
        if p is not None and getattr(p.loop, "_thread_id", None) == tid and not p.closed:
            return p
    loop = asyncio._get_running_loop()
    if loop is None:
        return None
    lp = _last_poller
    if lp is not None:
        p = lp()
        if p is not None and p.loop is loop and not p.closed:
            return p
    ref = _pollers.get(loop)
    p = ref() if ref is not None else None
    return None if p is None or p.closed else p


def _attach(loop: asyncio.AbstractEventLoop) -> Netpoller:
    if isinstance(loop, AiosysEventLoop):
        raise RuntimeError("aiosys loop without a netpoller (closed?)")
    p = Netpoller(attached=True)
    p.loop = loop
    try:
        loop.add_reader(p.epfd, p.poll_attached)
    except BaseException:
        p.close()
        raise
    fds = p._fds
    # When the foreign loop is garbage collected, close our fds (the loop's reader handle
    # holds the poller, the poller holds the loop: a cycle the collector frees).
    weakref.finalize(loop, fds.close)
    # Detach cleanly when the loop closes, where the loop lets us see that: a Python loop
    # (the stdlib's) takes an instance attribute; uvloop's compiled Loop does not, and there
    # the finalizer above is the only teardown.
    orig_close = loop.close

    def close() -> None:
        detach(loop)
        orig_close()

    with contextlib.suppress(AttributeError, TypeError):
        loop.close = close  # type: ignore[method-assign]
    _remember(loop, p)
    return p


def detach(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Tear down the netpoller attached to ``loop`` (default: the running loop): remove its
    reader, wake its waiters with the closed error, close its fds.  Safe to call twice;
    does nothing for an aiosys loop (it closes its netpoller when it closes)."""
    if loop is None:
        loop = asyncio.get_running_loop()
    ref = _pollers.get(loop)
    p = ref() if ref is not None else None
    if p is None or not p.attached or p.closed:
        return
    if not loop.is_closed():
        loop.remove_reader(p.epfd)
    p.close()


def all_pollers() -> list[Netpoller]:
    return [p for p in list(_all) if not p.closed]


def _close_listener(fd: int) -> None:
    # fdtable tells every netpoller before the real close (any thread).
    for p in list(_all):
        if fd in p.pds:
            p.evict(fd)


fdtable.add_close_listener(_close_listener)


def _after_fork_in_child() -> None:
    global _last_poller
    fdtable._reset_after_fork()
    _last_poller = None
    _running.clear()  # asyncio too forgets the running loop across fork
    _attached_by_thread.clear()
    for p in list(_all):
        if p.closed:
            continue
        if p.attached:
            # The foreign loop cannot be fixed from here; drop the poller so the child
            # attaches a fresh one, and close only our copies of its fds.
            p.closed = True
            p._fds.closed = True
            for fd in (p._fds.efd, p._fds.epfd):
                with contextlib.suppress(OSError):
                    os.close(fd)
            _all.discard(p)
        else:
            p.forget_after_fork()
            loop = p.loop
            sel = getattr(loop, "_selector", None)
            if isinstance(sel, NetpollSelector):
                for key in list(sel.get_map().values()):
                    with contextlib.suppress(OSError):
                        _ll.epoll_ctl(
                            p.epfd, _ll.EPOLL_CTL_ADD, key.fd, _epoll_events(key.events), key.fd
                        )


os.register_at_fork(after_in_child=_after_fork_in_child)


def stats() -> dict[str, int]:
    """Counters summed over every live netpoller in the process, plus the fd table."""
    total: dict[str, int] = {}
    for p in all_pollers():
        for k, v in p.stats().items():
            total[k] = total.get(k, 0) + v
    total["pollers"] = len(all_pollers())
    total["fd_table_entries"] = fdtable.table_size()
    return total
