"""Awaitable I/O on pollable fds, in Go's ``internal/poll.FD`` shape: try the syscall inline,
park on the netpoller only on EAGAIN, retry on readiness.

Per-call non-blocking: reads and writes go through ``preadv2/pwritev2(offset=-1,
RWF_NOWAIT)``, which this kernel honours per call on pipes and FIFOs (EAGAIN on empty even
when the fd is in blocking mode); on sockets the hot path (csrc/hotpath.c) and the socket
calls (:mod:`._sockops`) use ``recv/send`` with ``MSG_DONTWAIT`` instead.  So an fd whose
``O_NONBLOCK`` was cleared behind our back (through a ``dup`` sharing the open file
description) still never blocks the loop and still honours its deadlines.  Where no per-call
form exists (``accept``, ``connect``, fds that answer EOPNOTSUPP to RWF_NOWAIT such as ttys),
the op checks ``O_NONBLOCK`` first and refuses with :class:`BlockingModeError`.

Every function accepts an int fd or an object with ``fileno()`` (a socket, a file); the object
keeps its ownership (only :func:`close` closes, and it closes through the object).
"""

from __future__ import annotations

import errno
import math
import os
import select
from collections.abc import Callable, Coroutine
from typing import Any, Final

from aiosys._coro import coroutine_function
from aiosys.native import _lowlevel as _ll

from . import fdtable
from ._epoll import _DRAINED, _IDLE, _READY, Netpoller, PollDesc, drop_waiter_ref
from ._errors import BlockingModeError, BusyError, DeadlineExceededError, FDClosedError
from ._loop import _get_ident, _running, current_poller, running_poller

_preadv2 = _ll._preadv2
_hot_read = _ll.hot_read
_hot_write = _ll.hot_write
_pwritev2 = _ll._pwritev2
_from_buffer = _ll.from_buffer
_oserror = _ll.oserror
_NOWAIT: Final = _ll.RWF_NOWAIT
_EAGAIN: Final = -errno.EAGAIN
_MAX_WORD: Final = (1 << 63) - 1  # a size beyond it fits no machine word
_FAR_NS: Final = 1 << 62  # the latest deadline kept (nanotime); later ones are clamped
_EINTR: Final = -errno.EINTR
_EOPNOTSUPP: Final = -errno.EOPNOTSUPP


def _fileno(f: Any) -> int:
    if isinstance(f, int):
        return int(f)
    try:
        fileno = f.fileno
    except AttributeError:
        raise TypeError(f"an fd or an object with fileno() is required, not {f!r}") from None
    fd = fileno()
    if not isinstance(fd, int) or fd < 0:
        raise ValueError(f"{f!r} has no valid fd (closed?)")
    return fd


def _lookup(fd: int) -> tuple[Netpoller, PollDesc]:
    p = current_poller()
    pd = p.pds.get(fd)
    if pd is None:
        pd = p.register(fd)
    return p, pd


# ------------------------------------------------------------------------------------------
# Parking (Go's netpollblock)
#
# A parked wait must keep the fd from being really closed until it has resumed (the fd
# table's contract), but parking and waking are the hot path, so the reference is taken
# lazily: by the close, for the waiters it finds parked (Netpoller.evict ->
# fdtable.hold_for_close), and dropped by each such waiter when it resumes
# (drop_waiter_ref).  The close sets ``pd.closing`` first, then reads the slots under the
# table lock.  The interleavings, with C the closing thread and W the waiter:
#
#   1. W parked, Future pending when C reads the slot: C takes a reference and records the
#      Future in pd.rref; C's wake (or a racing readiness wake) resumes W, W sees closing,
#      finds its Future in pd.rref under the lock and releases: the last release closes.
#   2. W already woken (Future done) but not yet resumed: C takes nothing and may close at
#      once; W resumes, sees closing and raises FDClosedError without touching the fd.
#   3. W checked ``closing`` (False) just before parking, then C ran completely, then W
#      stored its Future: nobody took a reference and the fd may be closed, but C's posted
#      wake still finds W's Future in the slot and wakes it, and W raises without a syscall.
#   4. W cancelled while parked: its finally clears the slot and, if closing, releases what C
#      took for it (or nothing, if C found the Future already cancelled).
# ------------------------------------------------------------------------------------------


async def _park_read(p: Netpoller, pd: PollDesc) -> None:
    """Park until the fd is readable.  :raises DeadlineExceededError, FDClosedError,
    BusyError:"""
    if pd.closing:  # evicted while we were between awaits: never touch the number again
        raise FDClosedError()
    if pd.rg.__class__ is not int:
        raise BusyError(f"another task is already waiting to read fd {pd.fd}")
    if pd.rd < 0:
        raise DeadlineExceededError()
    fut = p.loop.create_future()
    if pd.rg is _DRAINED:
        p.park_drained(pd)
    pd.rg = fut
    p.parks += 1
    try:
        await fut
    finally:
        if pd.rg is fut:  # cancelled: clear the slot, consume nothing
            pd.rg = _IDLE
        if pd.closing:  # a close may have taken a reference for us: drop it
            drop_waiter_ref(pd, fut, True)
    if pd.closing:
        raise FDClosedError()
    if pd.rd < 0:
        raise DeadlineExceededError()


async def _park_write(p: Netpoller, pd: PollDesc) -> None:
    if pd.closing:
        raise FDClosedError()
    if pd.wg.__class__ is not int:
        raise BusyError(f"another task is already waiting to write fd {pd.fd}")
    if pd.wd < 0:
        raise DeadlineExceededError()
    fut = p.loop.create_future()
    pd.wg = fut
    p.parks += 1
    try:
        await fut
    finally:
        if pd.wg is fut:
            pd.wg = _IDLE
        if pd.closing:
            drop_waiter_ref(pd, fut, False)
    if pd.closing:
        raise FDClosedError()
    if pd.wd < 0:
        raise DeadlineExceededError()


def _check_nonblocking(fd: int, what: str) -> None:
    if os.get_blocking(fd):
        raise BlockingModeError(fd, what)


def _read_fallback(fd: int, mv: memoryview, n: int) -> int:
    """A plain read for fds without RWF_NOWAIT (ttys): only on a non-blocking fd."""
    _check_nonblocking(fd, "read on this kind of fd")
    try:
        return os.readv(fd, [mv[:n]])
    except OSError as exc:
        return -(exc.errno or errno.EIO)


def _read_fallback_bytes(fd: int, n: int) -> bytes | int:
    """:func:`_read_fallback` returning the bytes read, or -errno."""
    _check_nonblocking(fd, "read on this kind of fd")
    try:
        return os.read(fd, n)
    except OSError as exc:
        return -(exc.errno or errno.EIO)


def _write_fallback(fd: int, data: Any) -> int:
    _check_nonblocking(fd, "write on this kind of fd")
    try:
        return os.write(fd, data)
    except OSError as exc:
        return -(exc.errno or errno.EIO)


# ------------------------------------------------------------------------------------------
# read / write
# ------------------------------------------------------------------------------------------


# read and write_all are plain functions returning a coroutine: on an fd this loop's poller
# already holds (the steady state of every connection) the lookup is a dict hit done here,
# and the coroutine is the one that does the work, with no frame in between.  Anything else
# (an object with fileno(), a first use, a foreign loop) resolves lazily inside a coroutine,
# so errors are still raised on await, as from an ``async def``.


@coroutine_function
def read(fd: Any, n: int) -> Coroutine[Any, Any, bytes]:
    """Read up to ``n`` bytes; ``b""`` at end of file.  A zero-length read returns at once
    (Go issue 15735).

    :raises DeadlineExceededError: the read deadline passed.
    :raises FDClosedError: the fd was closed through aiosys while waiting.
    :raises BusyError: another task is already reading this fd.
    :raises NotPollableError: a regular file.
    """
    if fd.__class__ is int:
        p = _running.get(_get_ident())
        if p is not None:
            pd = p.pds.get(fd)
            if pd is not None:
                return read_held(p, pd, fd, n)
        else:
            h = held_attached(fd)
            if h is not None:
                return read_held(h[0], h[1], fd, n)
    return _read_lookup(fd, n)


def held_attached(fd: int) -> tuple[Netpoller, PollDesc] | None:
    """Attach mode (a foreign running loop): its poller and ``fd``'s PollDesc, if the fd is
    already registered there.  Never registers or attaches; None otherwise."""
    p = running_poller()
    if p is not None:
        pd = p.pds.get(fd)
        if pd is not None:
            return p, pd
    return None


async def _read_lookup(fd: Any, n: int) -> bytes:
    if fd.__class__ is not int:
        fd = _fileno(fd)
    if n <= 0:  # before any lookup: a zero-length read needs no loop
        if n == 0:
            return b""
        raise ValueError("negative read size")
    p, pd = _lookup(fd)
    return await read_held(p, pd, fd, n)


async def read_held(p: Netpoller, pd: PollDesc, fd: int, n: int) -> bytes:
    """:func:`read` on an fd whose PollDesc the caller looked up in the running poller."""
    if n <= 0:
        if n == 0:
            return b""
        raise ValueError("negative read size")
    if n > _MAX_WORD:
        raise ValueError(f"read size out of range: {n}")
    if pd.rd < 0:
        raise DeadlineExceededError()
    while True:
        if pd.rg is _READY:
            # bytes, or -errno (hotpath.c: preadv2(RWF_NOWAIT) with the GIL held)
            r: Any = _hot_read(fd, n, pd.sock) if pd.nowait_r else _read_fallback_bytes(fd, n)
            if r.__class__ is bytes:
                if pd.stream and 0 < len(r) < n and pd.infer:
                    pd.rg = _DRAINED  # the next read parks without a failing syscall
                return r
            if r == _EAGAIN:
                pd.rg = _IDLE
                pd.infer = True  # empty when asked: the short-read inference holds here
            elif r == _EOPNOTSUPP and pd.nowait_r:
                pd.nowait_r = False
                continue
            elif r != _EINTR:
                raise _oserror(-r)
            else:
                continue
        # Park (Go's netpollblock), inlined: this is the hot path.  _park_read has the same
        # steps with comments.
        if pd.rg.__class__ is not int:
            raise BusyError(f"another task is already waiting to read fd {fd}")
        if pd.closing:
            raise FDClosedError()
        fut = p.loop.create_future()
        if pd.rg is _DRAINED:
            # Parked on an inference: the poller double-checks it (park_drained, inlined).
            pd.rgen = p.drained_gen
            p.drained.add(pd)
            if p.drained_timer is None:
                p.arm_drained_check()
        pd.rg = fut
        p.parks += 1
        try:
            await fut
        finally:
            if pd.rg is fut:
                pd.rg = _IDLE
            if pd.closing:
                drop_waiter_ref(pd, fut, True)
        if pd.closing:
            raise FDClosedError()
        if pd.rd < 0:
            raise DeadlineExceededError()


async def readinto(fd: Any, buf: Any) -> int:
    """Read into a writable bytes-like object; returns the count (0 at end of file)."""
    if fd.__class__ is not int:
        fd = _fileno(fd)
    cbuf = _from_buffer(buf, True)
    n = len(cbuf)
    if n == 0:
        return 0
    p, pd = _lookup(fd)
    if pd.rd < 0:
        raise DeadlineExceededError()
    while True:
        if pd.rg is _READY:
            if pd.nowait_r:
                r = _preadv2(fd, cbuf, n, -1, _NOWAIT)
            else:
                r = _read_fallback(fd, memoryview(buf).cast("B"), n)
            if r >= 0:
                if 0 < r < n and pd.stream and pd.infer:
                    pd.rg = _DRAINED
                return int(r)
            if r == _EAGAIN:
                pd.rg = _IDLE
                pd.infer = True
            elif r == _EOPNOTSUPP and pd.nowait_r:
                pd.nowait_r = False
                continue
            elif r != _EINTR:
                raise _oserror(-r)
            else:
                continue
        await _park_read(p, pd)


async def write(fd: Any, data: Any) -> int:
    """Write some of ``data``; returns the count, like the syscall (at least 1 unless
    ``data`` is empty).  See :func:`write_all` for all of it.

    :raises DeadlineExceededError, FDClosedError, BusyError, NotPollableError: as :func:`read`.
    """
    if fd.__class__ is not int:
        fd = _fileno(fd)
    if data.__class__ is bytes:
        cbuf = data
        n = len(data)
    else:
        cbuf = _from_buffer(data, False)
        n = len(cbuf)
    if n == 0:
        return 0
    p = current_poller()
    pd = p.pds.get(fd)
    if pd is None:
        pd = p.register(fd)
    if pd.wg is _READY and pd.nowait_w and pd.wd >= 0:
        # Fast path, inline (no second coroutine): the kernel takes it now.
        r = _hot_write(fd, data, pd.sock)
        if r > 0:
            return int(r)
        if r == _EAGAIN:
            pd.wg = _IDLE  # full: park without trying again
    return await _write_some(p, pd, fd, cbuf, n, data)


async def _write_some(p: Netpoller, pd: PollDesc, fd: int, cbuf: Any, n: int, data: Any) -> int:
    if pd.closing:  # write_all between two writes: closed meanwhile
        raise FDClosedError()
    if pd.wd < 0:
        raise DeadlineExceededError()
    while True:
        if pd.wg is _READY:
            if pd.nowait_w:
                r = _pwritev2(fd, cbuf, n, -1, _NOWAIT)
            else:
                r = _write_fallback(fd, memoryview(data).cast("B")[:n])
            if r >= 0:
                # A short write is returned as it is; the next write tries again at once
                # (Go's fd.Write): only EAGAIN says the buffer is full.
                return int(r)
            if r == _EAGAIN:
                pd.wg = _IDLE
            elif r == _EOPNOTSUPP and pd.nowait_w:
                pd.nowait_w = False
                continue
            elif r != _EINTR:
                raise _oserror(-r)
            else:
                continue
        if pd.wg.__class__ is not int:
            raise BusyError(f"another task is already waiting to write fd {fd}")
        if pd.closing:
            raise FDClosedError()
        fut = p.loop.create_future()
        pd.wg = fut
        p.parks += 1
        try:
            await fut
        finally:
            if pd.wg is fut:
                pd.wg = _IDLE
            if pd.closing:
                drop_waiter_ref(pd, fut, False)
        if pd.closing:
            raise FDClosedError()
        if pd.wd < 0:
            raise DeadlineExceededError()


@coroutine_function
def write_all(fd: Any, data: Any) -> Coroutine[Any, Any, None]:
    """Write all of ``data``, parking as often as needed.  If it raises (deadline, close,
    cancellation), an unknown prefix may have been written, as with Go's ``Write``."""
    if fd.__class__ is int:
        p = _running.get(_get_ident())
        if p is not None:
            pd = p.pds.get(fd)
            if pd is not None:
                return write_all_held(p, pd, fd, data)
        else:
            h = held_attached(fd)
            if h is not None:
                return write_all_held(h[0], h[1], fd, data)
    return _write_all_lookup(fd, data)


async def _write_all_lookup(fd: Any, data: Any) -> None:
    if fd.__class__ is not int:
        fd = _fileno(fd)
    cbuf = data if data.__class__ is bytes else _from_buffer(data, False)
    if len(cbuf) == 0:  # before any lookup: an empty write registers nothing
        return
    p, pd = _lookup(fd)
    await write_all_held(p, pd, fd, data)


async def write_all_held(p: Netpoller, pd: PollDesc, fd: int, data: Any) -> None:
    """:func:`write_all` on an fd whose PollDesc the caller looked up in the running poller."""
    cbuf: Any = data if data.__class__ is bytes else _from_buffer(data, False)
    n = len(cbuf)
    if n == 0:
        return
    # Fast path, inline (no extra coroutine): the whole buffer fits now.
    if pd.wg is _READY and pd.nowait_w and pd.wd >= 0:
        w = _hot_write(fd, data, pd.sock)
        if w == n:
            return
        if w < 0:
            if w == _EAGAIN:
                pd.wg = _IDLE
            elif w not in (_EINTR, _EOPNOTSUPP):
                raise _oserror(-w)
            w = 0
    else:
        w = 0
    if w == 0:
        w = await _write_some(p, pd, fd, cbuf, n, data)
        if w == n:
            return
    mv = memoryview(data).cast("B")
    off = w
    while off < n:
        rest = mv[off:]
        off += await _write_some(p, pd, fd, _from_buffer(rest, False), n - off, rest)


# ------------------------------------------------------------------------------------------
# Readiness, deadlines, close
# ------------------------------------------------------------------------------------------


def _poll_now(fd: int, mask: int) -> bool:
    po = select.poll()
    po.register(fd, mask)
    return bool(po.poll(0))


async def wait_readable(fd: Any) -> None:
    """Return when ``fd`` is readable (or at end of file, or in error)."""
    fd = _fileno(fd)
    p, pd = _lookup(fd)
    if pd.rd < 0:
        raise DeadlineExceededError()
    if pd.rg is _READY:
        if _poll_now(fd, select.POLLIN | select.POLLRDHUP):
            return
        pd.rg = _IDLE
    await _park_read(p, pd)


async def wait_writable(fd: Any) -> None:
    """Return when ``fd`` is writable (or in error)."""
    fd = _fileno(fd)
    p, pd = _lookup(fd)
    if pd.wd < 0:
        raise DeadlineExceededError()
    if pd.wg is _READY:
        if _poll_now(fd, select.POLLOUT):
            return
        pd.wg = _IDLE
    await _park_write(p, pd)


def _deadline_ns(t: float | None) -> int | None:
    """``time.monotonic()`` seconds -> nanotime, rounded up (never early).  +inf is no
    deadline, -inf one long past; NaN is refused; times beyond 2**62 ns are clamped there
    (the timer is armed in bounded steps anyway)."""
    if t is None:
        return None
    if t != t:
        raise ValueError("deadline is NaN")
    if t == math.inf:
        return None
    try:
        x = t * 1e9
    except OverflowError:  # an int too large for a float
        x = math.inf if t > 0 else -math.inf
    if x >= _FAR_NS:
        return _FAR_NS  # 146 years after boot: never, in practice (Go clamps the same way)
    if x <= 0:
        return 0  # before boot, or -inf: long past
    return math.ceil(x)


def _set(fd: Any, read_: bool, write_: bool, t: float | None) -> None:
    ns = _deadline_ns(t)  # validate before registering anything
    p, pd = _lookup(_fileno(fd))
    p.set_deadline(pd, read_, write_, ns)


def set_deadline(fd: Any, t: float | None) -> None:
    """Read and write deadline: ``t`` is an absolute ``time.monotonic()`` time, or None to
    clear.  A time in the past expires at once (and wakes waiters); an expired deadline stays
    expired until moved.  Needs the running loop (the deadline lives in its netpoller)."""
    _set(fd, True, True, t)


def set_read_deadline(fd: Any, t: float | None) -> None:
    """Like :func:`set_deadline`, reads only."""
    _set(fd, True, False, t)


def set_write_deadline(fd: Any, t: float | None) -> None:
    """Like :func:`set_deadline`, writes only."""
    _set(fd, False, True, t)


async def close(fd: Any) -> None:
    """Close ``fd``: waiters wake with :class:`FDClosedError`, the fd leaves every epoll set,
    and the real close happens when the last in-flight operation drops its reference (at
    once if none).  An object with ``close()`` is closed through it (its ownership)."""
    if isinstance(fd, int):
        if not -0x80000000 <= fd <= 0x7FFFFFFF:  # no such fd (os.close: OverflowError)
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        fdtable.fd_close(int(fd), os.close)
        return
    obj = fd
    num = _fileno(obj)
    closer: Callable[[int], None] = lambda _fd: obj.close()  # noqa: E731
    fdtable.fd_close(num, closer)


def is_registered(fd: int) -> bool:
    """Whether ``fd`` has a PollDesc in the running loop's netpoller (no syscall, no
    registration; False without a running loop or netpoller).  On the public layer's hot
    path: a dict lookup by thread id on the aiosys loop."""
    p = _running.get(_get_ident())
    if p is None:
        p = running_poller()
        if p is None:
            return False
    return fd in p.pds
