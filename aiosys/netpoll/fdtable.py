"""The process-wide fd reference table: Go's ``fdMutex`` idea, one table for every loop.

An operation that spans an ``await`` (a wait parked on the netpoller, a syscall handed off to
an M) holds a *reference* on its fd for that whole time (a parked netpoll wait takes it
lazily: see :func:`hold_for_close`).  ``fd_close`` never closes an fd
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

Thread safety: every table below is written under ``_lock``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from ._errors import FDClosedError

__all__ = [
    "add_close_listener",
    "fd_acquire",
    "fd_close",
    "fd_refs",
    "fd_release",
    "remove_close_listener",
]


# refs[fd]: references held (absent when 0).  closers[fd]: the pending close of fd.
# closing_fds: fds whose close is pending or running, readable without the lock (a set lookup
# is atomic under the GIL): the netpoller refuses to register them.  notified: closes whose
# netpollers were told (the fd is out of every epoll set): the real close must not run before
# that ("unregister before close(2)").  Written only under _lock.
_refs: dict[int, int] = {}
_closers: dict[int, Callable[[int], None]] = {}
closing_fds: set[int] = set()
_notified: set[int] = set()
# A plain Lock, not an RLock: it is taken twice per parked wait, so it must be cheap.  The
# closer runs with it held (so no new reference can slip in between the last release and the
# close); a closer may read fd_refs/fd_closing (lock-free) but must not call fd_acquire,
# fd_release or fd_close.
_lock = threading.Lock()
# Netpollers listening for closes: each is called as ``listener(fd)`` outside the lock, before
# the real close, on the closing thread.  It must be thread-safe and must not block.
_close_listeners: list[Callable[[int], None]] = []


def fd_acquire(fd: int) -> None:
    """Take a reference on ``fd`` for an operation that will span an await.

    :raises FDClosedError: (an OSError, EBADF "use of closed file descriptor") if a close is
        pending.
    """
    with _lock:
        if fd in closing_fds:
            raise FDClosedError()
        _refs[fd] = _refs.get(fd, 0) + 1


def fd_release(fd: int) -> None:
    """Drop a reference taken by :func:`fd_acquire`.  If it was the last one and a close is
    pending, the closer runs now, on this thread (its exception, if any, propagates here).

    :raises RuntimeError: if no reference is held (an internal error: never swallowed).
    """
    with _lock:
        r = _refs.get(fd, 0) - 1
        if r > 0:
            _refs[fd] = r
            return
        if r < 0:
            raise RuntimeError(f"aiosys: fd_release({fd}) without a reference")
        del _refs[fd]
        if fd in _notified:
            _run_closer(fd)
        # else: no close pending, or fd_close is still telling the netpollers and will run
        # the closer itself.


def _run_closer(fd: int) -> None:
    # Called with _lock held.  The state goes first, so that if the closer raises the fd is
    # not stuck "closing" forever (the fd is closed or invalid either way).
    closer = _closers.pop(fd)
    _notified.discard(fd)
    try:
        closer(fd)
    finally:
        closing_fds.discard(fd)


def fd_close(fd: int, closer: Callable[[int], None]) -> bool:
    """Close ``fd`` as soon as no operation holds it.

    Marks the fd closing (new :func:`fd_acquire` calls fail), wakes netpoll waiters with the
    closed error and removes the fd from every epoll set, then runs ``closer(fd)`` now and
    returns True if no reference is held; otherwise the last :func:`fd_release` runs it and
    this returns False.

    :raises FDClosedError: if a close of ``fd`` is already pending.
    """
    with _lock:
        if fd in closing_fds:
            raise FDClosedError()
        closing_fds.add(fd)
        _closers[fd] = closer
        listeners = list(_close_listeners)
    # Outside the lock: a listener may take its own poller's locks or post to its loop, and
    # must never be able to deadlock against fd_release.
    try:
        for listener in listeners:
            listener(fd)
    finally:
        with _lock:
            run_now = fd not in _refs
            if run_now:
                _run_closer(fd)
            else:
                _notified.add(fd)
    return run_now


def hold_for_close(fd: int, take: Callable[[], int]) -> None:
    """For a netpoller's close listener: under the table lock, ``take()`` marks the waiters
    parked on ``fd`` and returns how many; each gets a reference, released by
    :func:`fd_release` when that waiter resumes.

    This is how a *parked* netpoll wait holds its reference: lazily.  Parking and waking are
    the netpoller's hot path and never touch this table; only a close, which must wait for
    the parked waiters, takes their references for them, before it decides whether the real
    close can run now.  (Handed-off syscalls take theirs eagerly with :func:`fd_acquire`.)
    """
    with _lock:
        k = take()
        if k:
            _refs[fd] = _refs.get(fd, 0) + k


def fd_refs(fd: int) -> int:
    """References currently held on ``fd`` (0 if none).  Lock-free."""
    return _refs.get(fd, 0)


def fd_closing(fd: int) -> bool:
    """Whether a close of ``fd`` is pending (no syscall; for diagnostics and tests)."""
    return fd in closing_fds


def add_close_listener(listener: Callable[[int], None]) -> None:
    """Register ``listener(fd)`` to run on every :func:`fd_close`, before the real close."""
    with _lock:
        _close_listeners.append(listener)


def remove_close_listener(listener: Callable[[int], None]) -> None:
    with _lock, contextlib.suppress(ValueError):
        _close_listeners.remove(listener)


def _reset_after_fork() -> None:
    """In a forked child the parent's references mean nothing: start empty."""
    global _lock
    _lock = threading.Lock()  # the parent's lock may have been held by another thread
    _refs.clear()
    _closers.clear()
    closing_fds.clear()
    _notified.clear()


def table_size() -> int:
    """fds with references or a pending close: 0 when idle."""
    with _lock:
        return len(set(_refs) | closing_fds)
