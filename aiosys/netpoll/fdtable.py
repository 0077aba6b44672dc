"""The process-wide fd reference table: Go's ``fdMutex`` idea, one table for every loop.

An operation that spans an ``await`` (a wait parked on the netpoller, a syscall handed off to
an M) holds a *reference* on its fd for that whole time.  ``fd_close`` never closes an fd
under such an operation: it marks the fd closing (new operations fail with EBADF, "use of
closed file descriptor"), tells every netpoller (they wake their waiters with the closed error
and remove the fd from epoll), and leaves the real ``close(2)`` to whoever drops the last
reference.  So a reused fd number can never receive an old event or an old result: the number
is not free until nobody uses the old file.

Inline operations that finish without awaiting take no reference: the loop thread cannot
interleave a close with them.

Two rejected designs:

* one lock per fd (Go's ``fdMutex`` is a per-fd atomic word): in Python a per-fd
  ``threading.Lock`` costs an allocation per fd and still needs a table to find it; one lock
  over one dict is as cheap per operation and is what "process-wide" needs anyway;
* reference counting inside each netpoller: a handed-off syscall has no PollDesc, and an fd
  used from two loops has two, so the count must live above them.

Thread safety: every field below is protected by ``_lock`` (an ``RLock``: a closer may call
back into this module, e.g. ``fd_refs``).
"""

from __future__ import annotations

import contextlib
import errno
import threading
from collections.abc import Callable
from typing import Final

__all__ = [
    "add_close_listener",
    "fd_acquire",
    "fd_close",
    "fd_refs",
    "fd_release",
    "remove_close_listener",
]


class _Entry:
    """One fd with references held or a close pending.

    Invariant: an entry exists only while ``refs > 0`` or ``closing`` (idle fds cost nothing).
    Invariant: ``closer is not None`` iff a close is pending and has not run yet.
    """

    __slots__ = ("closer", "closing", "notified", "refs")

    def __init__(self) -> None:
        self.refs = 0
        self.closing = False
        # True once the netpollers were told (the fd is out of every epoll set).  The real
        # close must not run before that: "unregister before close(2)".
        self.notified = False
        self.closer: Callable[[int], None] | None = None


_lock: Final = threading.RLock()
_table: dict[int, _Entry] = {}
# Netpollers listening for closes: each is called as ``listener(fd)`` outside the lock, before
# the real close, on the closing thread.  It must be thread-safe and must not block.
_close_listeners: list[Callable[[int], None]] = []


def _closed_error() -> OSError:
    return OSError(errno.EBADF, "use of closed file descriptor")


def fd_acquire(fd: int) -> None:
    """Take a reference on ``fd`` for an operation that will span an await.

    :raises OSError: EBADF "use of closed file descriptor" if a close is pending.
    """
    with _lock:
        e = _table.get(fd)
        if e is None:
            e = _table[fd] = _Entry()
        elif e.closing:
            raise _closed_error()
        e.refs += 1


def fd_release(fd: int) -> None:
    """Drop a reference taken by :func:`fd_acquire`.  If it was the last one and a close is
    pending, the closer runs now, on this thread (its exception, if any, propagates here).

    :raises RuntimeError: if no reference is held (an internal error: never swallowed).
    """
    with _lock:
        e = _table.get(fd)
        if e is None or e.refs <= 0:
            raise RuntimeError(f"aiosys: fd_release({fd}) without a reference")
        e.refs -= 1
        if e.refs:
            return
        if not e.closing:
            del _table[fd]
            return
        if not e.notified:
            return  # fd_close is still telling the netpollers; it will run the closer.
        _run_closer(fd, e)


def _run_closer(fd: int, e: _Entry) -> None:
    # Called with _lock held.  The entry goes away first, so that if the closer raises the
    # fd is not stuck "closing" forever (the fd is closed or invalid either way).
    del _table[fd]
    closer, e.closer = e.closer, None
    assert closer is not None, "closer ran twice"
    closer(fd)


def fd_close(fd: int, closer: Callable[[int], None]) -> bool:
    """Close ``fd`` as soon as no operation holds it.

    Marks the fd closing (new :func:`fd_acquire` calls fail), wakes netpoll waiters with the
    closed error and removes the fd from every epoll set, then runs ``closer(fd)`` now and
    returns True if no reference is held; otherwise the last :func:`fd_release` runs it and
    this returns False.

    :raises OSError: EBADF if a close of ``fd`` is already pending.
    """
    with _lock:
        e = _table.get(fd)
        if e is None:
            e = _table[fd] = _Entry()
        elif e.closing:
            raise _closed_error()
        e.closing = True
        e.closer = closer
        listeners = list(_close_listeners)
    # Outside the lock: a listener may take its own poller's lock or call
    # loop.call_soon_threadsafe, and must never be able to deadlock against fd_release.
    try:
        for listener in listeners:
            listener(fd)
    finally:
        with _lock:
            e.notified = True
            run_now = e.refs == 0
            if run_now:
                _run_closer(fd, e)
    return run_now


def fd_refs(fd: int) -> int:
    """References currently held on ``fd`` (0 if none)."""
    with _lock:
        e = _table.get(fd)
        return 0 if e is None else e.refs


def fd_closing(fd: int) -> bool:
    """Whether a close of ``fd`` is pending (no syscall; for diagnostics and tests)."""
    with _lock:
        e = _table.get(fd)
        return e is not None and e.closing


def add_close_listener(listener: Callable[[int], None]) -> None:
    """Register ``listener(fd)`` to run on every :func:`fd_close`, before the real close."""
    with _lock:
        _close_listeners.append(listener)


def remove_close_listener(listener: Callable[[int], None]) -> None:
    with _lock, contextlib.suppress(ValueError):
        _close_listeners.remove(listener)


def table_size() -> int:
    """Entries in the table (fds with references or a pending close): 0 when idle."""
    with _lock:
        return len(_table)
