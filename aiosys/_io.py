"""The public awaitable system calls: where each call goes (DESIGN.md, the heart of it).

Routes, decided per call:

1. **Pollable fd** (pipe, socket, tty, eventfd...): the netpoller.  If the fd already has a
   PollDesc the call goes straight there; otherwise the inline ``RWF_NOWAIT`` try below
   answers EAGAIN and the fd is registered and parked on.  Never a thread.
2. **Regular-file read**: ``preadv2(..., RWF_NOWAIT)`` inline.  A page-cache hit returns with
   no handoff.  EAGAIN hands off to an M.  EOPNOTSUPP / EINVAL / EPERM / ENOSYS (tmpfs here)
   turn the fast path off *for that fd* and hand off from then on.  ``O_DIRECT`` fds skip it
   (a direct read would wait for the device on the loop thread).  A short read is returned
   as POSIX allows; nothing is lost.
3. **Non-blocking calls** (``sysnb``: fcntl F_GETFL, a NOWAIT try): inline.
4. **Everything else** (openat, statx, fsync, getdents64, regular-file writes, which ext4
   refuses under RWF_NOWAIT here): handed off (``entersyscall``), or straight to an M with no
   inline try when the call is known to block (``entersyscallblock``).

The inline fast path uses CPython's ``os.preadv``/``os.pwritev`` (preadv2/pwritev2 with
flags): measured here it costs ~1 µs less per call than a cffi call, which releases and
re-takes the GIL around the trap.

Cancellation: a cancelled call that an M already runs keeps running; its completion goes to
the orphan finalizer (:mod:`aiosys.sched.proc`): an fd it opened is closed, bytes it read are
put back (offset rewound, or kept for the next :func:`read`), a write that happened is
logged.  Later reads/writes of the same fd wait for it, so bytes stay in order.

Per-fd facts (fast path off, O_DIRECT, pollable or not) are cached by fd number and dropped
by :func:`close` and :func:`open`.  An fd closed behind aiosys's back and reused keeps the
old facts: the cost is a needless handoff or one inline try, never a wrong result.
"""

from __future__ import annotations

import asyncio
import errno
import importlib
import os
import stat as _stat
import struct
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, Final, NamedTuple

from . import netpoll
from ._coro import coroutine_function
from .native import _lowlevel as ll
from .native import _mpool
from .netpoll import _loop as _np_loop
from .netpoll import _ops as _np_ops
from .netpoll import fdtable
from .sched import proc
from .sched.stats import counters

__all__ = [
    "DirEntry",
    "PoolExhaustedError",
    "chmod",
    "close",
    "copy_file_range",
    "fallocate",
    "fdatasync",
    "flock",
    "fstat",
    "fsync",
    "ftruncate",
    "listdir",
    "lstat",
    "mkdir",
    "open",
    "pread",
    "preadv",
    "pwrite",
    "pwritev",
    "read",
    "readinto",
    "readlink",
    "rename",
    "rmdir",
    "scandir",
    "sendfile",
    "splice",
    "stat",
    "symlink",
    "syscall",
    "unlink",
    "write",
    "write_all",
]

PoolExhaustedError = _mpool.PoolExhaustedError

_SYS: Final = ll.SYS
_T_READ: Final = _SYS["read"]
_T_WRITE: Final = _SYS["write"]
_T_PREAD: Final = _SYS["pread64"]
_T_PWRITE: Final = _SYS["pwrite64"]
_T_OPENAT: Final = _SYS["openat"]
_T_CLOSE: Final = _SYS["close"]
_T_FCNTL: Final = _SYS["fcntl"]
_T_STATX: Final = _SYS["statx"]
_T_FSYNC: Final = _SYS["fsync"]
_T_FDATASYNC: Final = _SYS["fdatasync"]
_T_FTRUNCATE: Final = _SYS["ftruncate"]
_T_FALLOCATE: Final = _SYS["fallocate"]
_T_GETDENTS64: Final = _SYS["getdents64"]
_T_UNLINKAT: Final = _SYS["unlinkat"]
_T_RENAMEAT2: Final = _SYS.get("renameat2", -1)
_T_RENAMEAT: Final = _SYS.get("renameat", -1)
_T_MKDIRAT: Final = _SYS["mkdirat"]
_T_READLINKAT: Final = _SYS["readlinkat"]
_T_SYMLINKAT: Final = _SYS["symlinkat"]
_T_FCHMODAT: Final = _SYS["fchmodat"]
_T_SENDFILE: Final = _SYS["sendfile"]
_T_SPLICE: Final = _SYS["splice"]
_T_COPY_FILE_RANGE: Final = _SYS["copy_file_range"]
_T_FLOCK: Final = _SYS["flock"]

_AT_FDCWD: Final = -100
_AT_SYMLINK_NOFOLLOW: Final = 0x100
_AT_REMOVEDIR: Final = 0x200
_AT_EMPTY_PATH: Final = 0x1000
_STATX_BASIC_STATS: Final = 0x7FF
_STATX_SIZE_MASK: Final = _STATX_BASIC_STATS
_F_GETFL: Final = 3
_O_DIRECT: Final = os.O_DIRECT
_RWF_NOWAIT: Final = os.RWF_NOWAIT

# Errors that mean "this fd cannot do RWF_NOWAIT": turn the fast path off for it.
_NOWAIT_UNSUPPORTED: Final = frozenset({errno.EOPNOTSUPP, errno.EINVAL, errno.EPERM,
                                        errno.ENOSYS})

# Per-fd facts, bit flags.
_RNOWAIT_OFF: Final = 1  # reads: no inline RWF_NOWAIT try
_WNOWAIT_OFF: Final = 2  # writes: no inline RWF_NOWAIT try
_KNOWN_FILE: Final = 4  # fstat said: not pollable (regular file, directory, block device...)
_KNOWN_POLL: Final = 8  # fstat said: may be pollable (fifo, socket, character device)
_DIRECT: Final = 16  # O_DIRECT: aligned buffers, no inline try

_MAX_WORD: Final = (1 << 63) - 1  # beyond it a count or offset fits no machine word

_fdinfo: dict[int, int] = {}
_preadv: Final = os.preadv
_hot_pread: Final = ll.hot_pread
_NEG_EAGAIN: Final = -errno.EAGAIN
_NEG_EINTR: Final = -errno.EINTR
_pwritev: Final = os.pwritev
_raw3: Final = ll.raw3
_check: Final = ll.check
_pushback: Final = proc._pushback
_fd_orphans: Final = proc._fd_orphans
_fd_busy: Final = proc._fd_busy


def _probe(fd: int) -> int:
    """First sight of ``fd``: O_DIRECT skips the read fast path (fcntl is sysnb)."""
    fl = _raw3(_T_FCNTL, fd, _F_GETFL)
    if fl < 0:
        raise ll.oserror(-fl)
    info = _RNOWAIT_OFF | _WNOWAIT_OFF | _DIRECT if fl & _O_DIRECT else 0
    _fdinfo[fd] = info
    return info


def _classify(fd: int) -> int:
    """Whether ``fd`` may be pollable (fstat, once per fd)."""
    info = _fdinfo.get(fd)
    if info is None:
        info = _probe(fd)
    if info & (_KNOWN_FILE | _KNOWN_POLL):
        return info
    mode = os.fstat(fd).st_mode
    if _stat.S_ISFIFO(mode) or _stat.S_ISSOCK(mode) or _stat.S_ISCHR(mode):
        info |= _KNOWN_POLL
    else:
        info |= _KNOWN_FILE
    _fdinfo[fd] = info
    return info


def _disable_nowait(fd: int, bit: int) -> None:
    _fdinfo[fd] = _fdinfo.get(fd, 0) | bit
    counters.nowait_disabled += 1


def _forget(fd: int) -> None:
    _fdinfo.pop(fd, None)
    proc.forget_fd(fd)


def _stale_file_facts(fd: int) -> bool:
    """A handed-off read or write answered EAGAIN: the fd is non-blocking, so it was judged a
    file on stale facts (its number was closed behind aiosys's back and reused by a socket or
    pipe).  Drop the facts and say whether it is pollable now: then the caller waits on the
    netpoller instead of raising "would block" at its caller (found by tests/reliability)."""
    _forget(fd)
    return bool(_classify(fd) & _KNOWN_POLL)


def _nowait_read(fd: int, n: int, offset: int) -> bytes | None:
    """The inline ``preadv2(RWF_NOWAIT)`` try shared by :func:`read` and :func:`pread`:
    the bytes on a page-cache hit, None on a miss (EAGAIN) or when the filesystem refuses
    the flag (then it is turned off for this fd and the caller hands off)."""
    if n == 0:
        return b""
    while True:
        r = _hot_pread(fd, n, offset)  # bytes, or -errno (csrc/hotpath.c)
        if r.__class__ is bytes:
            counters.nowait_hits += 1
            counters.inline_hits += 1
            return r
        if r == _NEG_EAGAIN:
            counters.nowait_misses += 1
            return None
        if -r in _NOWAIT_UNSUPPORTED:
            _disable_nowait(fd, _RNOWAIT_OFF)
            return None
        if r != _NEG_EINTR:  # EINTR: again, as os.preadv would (PEP 475)
            raise ll.oserror(-r)


def _is_registered(fd: int) -> bool:
    return _np_registered(fd)


# The netpoller's awaitables, bound once.  A registered fd is pollable by definition, so the
# public call goes straight to them: no wrapper coroutine, lookup or NotPollable handler per
# call.  (The echo matrix measured that indirection at ~1.3x server CPU per request.)
_np_registered: Final = netpoll.is_registered
_np_running: Final = _np_loop._running  # thread id -> the aiosys loop's poller running there
_np_read: Final = netpoll.read
_np_read_held: Final = _np_ops.read_held
_np_write_all_held: Final = _np_ops.write_all_held
_np_held_attached: Final = _np_ops.held_attached
_np_readinto: Final = netpoll.readinto
_np_write: Final = netpoll.write
_get_ident: Final = threading.get_ident

# ---------------------------------------------------------------------------------------------
# The handoff
# ---------------------------------------------------------------------------------------------

_Words = tuple[int, int, int, int, int, int]


async def _handoff(
    name: str,
    trap: int,
    args: _Words,
    fd: int = -1,
    keep: object = None,
    kind: str = "",
    *,
    block: bool = False,
    flags: int = 0,
) -> int:
    """entersyscall -> an M -> exitsyscall.  Returns the raw kernel result (or -errno)."""
    p = proc.getp()
    try:
        if block:
            g = proc.entersyscallblock(p, name, trap, args, fd, keep, kind, flags)
        else:
            g = proc.entersyscall(p, name, trap, args, fd, keep, kind, flags)
    except OverflowError as exc:  # a size or offset no machine word holds: a bad value
        raise ll.out_of_range(exc) from None
    # proc.wait, inlined: one coroutine frame less per handoff.
    try:
        r: int = await g.future
    except asyncio.CancelledError:
        proc.cancelsyscall(p, g)
        raise
    proc.resumed(g)
    return r


async def _wait_fd(fd: int, write: bool) -> None:
    """Readiness wait on the running loop (used when the netpoller has no awaitable for
    this operation)."""
    waiter = getattr(netpoll, "wait_writable" if write else "wait_readable", None)
    if waiter is not None:
        counters.netpoll_waits += 1
        await waiter(fd)
        return
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()
    add = loop.add_writer if write else loop.add_reader
    remove = loop.remove_writer if write else loop.remove_reader
    add(fd, proc._set_none, fut)
    counters.netpoll_waits += 1
    try:
        await fut
    finally:
        remove(fd)


async def _settle(fd: int) -> None:
    """Wait until no cancelled read/write of ``fd`` still runs on an M (byte order)."""
    if proc.orphan_of(fd) is not None:
        await proc.wait_orphan(fd)


# ---------------------------------------------------------------------------------------------
# read
# ---------------------------------------------------------------------------------------------


@coroutine_function
def read(fd: int, n: int) -> Coroutine[Any, Any, bytes]:
    """Read up to ``n`` bytes from ``fd`` at its file position (``b""`` at end of file).

    Never blocks the event loop: pollable fds wait on the netpoller, page-cached file data
    is read inline, anything else is handed off to an M.  Returns a coroutine: on an fd the
    netpoller already holds it is the netpoller's own (no extra frame on every park and
    wake: measured 7-13% of a socket round trip).

    :raises OSError: the kernel's error (EBADF for an fd being closed).
    """
    if not (_pushback or _fd_orphans or _fd_busy):
        p = _np_running.get(_get_ident())
        if p is not None:  # the aiosys loop: one dict hit finds a held fd
            if fd.__class__ is int:
                pd = p.pds.get(fd)
                if pd is not None:
                    return _np_read_held(p, pd, fd, n)
        elif fd.__class__ is int:  # a foreign loop the poller may be attached to
            h = _np_held_attached(fd)
            if h is not None:
                return _np_read_held(h[0], h[1], fd, n)
    return _read(fd, n)


async def _read(fd: int, n: int) -> bytes:
    if n < 0 or n > _MAX_WORD:
        raise ValueError("negative count" if n < 0 else f"count out of range: {n}")
    if _pushback and fd in _pushback:
        return proc.take_pushback(fd, n) or b""
    if (_fd_orphans or _fd_busy) and proc.orphan_of(fd) is not None:
        await _settle(fd)
        if fd in _pushback:
            return proc.take_pushback(fd, n) or b""
    if _np_registered(fd):
        return await _np_read(fd, n)
    info = _fdinfo.get(fd)
    if info is None:
        info = _probe(fd)
    if not info & _RNOWAIT_OFF:
        data = _nowait_read(fd, n, -1)
        if data is not None:
            return data
    if _classify(fd) & _KNOWN_POLL:
        data = await _poll_read(fd, n)
        if data is not None:
            return data
    return await _handoff_read(fd, n)


async def _poll_read(fd: int, n: int) -> bytes:
    """Read a (maybe) pollable fd through the netpoller; a fd epoll refuses is marked a file
    and handed off."""
    np_read = getattr(netpoll, "read", None)
    if np_read is not None:
        try:
            data: bytes = await np_read(fd, n)
            return data
        except netpoll_not_pollable():
            _fdinfo[fd] = (_fdinfo.get(fd, 0) & ~_KNOWN_POLL) | _KNOWN_FILE | _RNOWAIT_OFF
            return await _handoff_read(fd, n)
    # No netpoller awaitable: wait for readiness, then try again without blocking.
    while True:
        buf = bytearray(n)
        try:
            r = _preadv(fd, [buf], -1, _RWF_NOWAIT)
        except BlockingIOError:
            try:
                await _wait_fd(fd, write=False)
            except PermissionError:  # epoll refuses it: not pollable after all
                _fdinfo[fd] = _fdinfo.get(fd, 0) | _KNOWN_FILE | _RNOWAIT_OFF
                return await _handoff_read(fd, n)
            counters.netpoll_wakeups += 1
            continue
        except OSError as exc:
            if exc.errno not in _NOWAIT_UNSUPPORTED:
                raise
            _disable_nowait(fd, _RNOWAIT_OFF)
            return await _handoff_read(fd, n)
        del buf[r:]
        return bytes(buf)


def netpoll_not_pollable() -> type[OSError]:
    exc = getattr(netpoll, "NotPollableError", None)
    return exc if exc is not None else _NeverRaised


class _NeverRaised(OSError):
    pass


class _BufferPool:
    """Reusable pinned C buffers of one size (statx results), so a handoff does not pay an
    allocation.  A buffer is taken for one call and given back only after the M is done
    with it; one an orphan still holds is simply dropped."""

    def __init__(self, size: int, keep: int = 32) -> None:
        self.size = size
        self.keep = keep
        self.free: list[ll.Pinned] = []

    def get(self) -> ll.Pinned:
        free = self.free
        return free.pop() if free else ll.alloc(self.size)

    def put(self, p: ll.Pinned) -> None:
        if len(self.free) < self.keep:
            self.free.append(p)


_ALIGN: Final = 4096  # O_DIRECT wants the buffer aligned to the logical block size


async def _handoff_read(fd: int, n: int, offset: int = -1) -> bytes:
    if _fdinfo.get(fd, 0) & _DIRECT:
        buf: bytearray | None = bytearray(n + _ALIGN)
        pin = ll.pin_buffer(buf, writable=True)
        start = (-pin.addr) % _ALIGN
        pool = None
    else:  # pinned C memory from a size-class pool: no allocation per call
        buf, start = None, 0
        pool = _read_pool(n)
        pin = pool.get() if pool is not None else ll.alloc(n)
    addr = pin.addr + start
    keep = proc.ReadKeep(buf, pin, start)
    if offset < 0:
        r = await _handoff("read", _T_READ, (fd, addr, n, 0, 0, 0), fd, keep, "read")
    else:
        r = await _handoff("pread64", _T_PREAD, (fd, addr, n, offset, 0, 0), fd, keep,
                           "pread")
    # The M is done with the memory (an orphan's buffer is never given back).
    if r == -errno.EAGAIN and offset < 0 and _stale_file_facts(fd):
        if pool is not None:
            pool.put(pin)
        return await _poll_read(fd, n)
    if r < 0 or r > n:
        if pool is not None:
            pool.put(pin)
        _check(r)
        raise OSError(errno.EIO, f"read reported {r} bytes of {n}")  # Go issue 61060
    data = keep.data(r)
    if pool is not None:
        pool.put(pin)
    return data


_READ_CLASSES: Final = (4096, 16384, 65536, 262144, 1048576)
_read_pools: Final = {size: _BufferPool(size, keep=8) for size in _READ_CLASSES}


def _read_pool(n: int) -> _BufferPool | None:
    for size in _READ_CLASSES:
        if n <= size:
            return _read_pools[size]
    return None


async def readinto(fd: int, buf: Any) -> int:
    """Read into a writable bytes-like object; returns the count.  A cancelled handed-off
    read never writes into ``buf`` afterwards (the M reads into a private buffer)."""
    if not (_pushback or _fd_orphans or _fd_busy) and _np_registered(fd):
        return await _np_readinto(fd, buf)
    view = memoryview(buf).cast("B")
    if view.readonly:
        raise TypeError("readinto() needs a writable buffer")
    data = await read(fd, len(view))
    view[: len(data)] = data
    return len(data)


@coroutine_function
def write_all(fd: int, data: Any) -> Coroutine[Any, Any, None]:
    """Write all of ``data`` to any fd (pollable or not), as many calls as it takes.

    If it raises (deadline, close, cancellation), an unknown prefix may have been written, as
    with Go's ``Write``; a cancelled handed-off part is reported like :func:`write`'s.
    """
    if not (_fd_orphans or _fd_busy):
        p = _np_running.get(_get_ident())
        if p is not None:
            if fd.__class__ is int:
                pd = p.pds.get(fd)
                if pd is not None:
                    return _np_write_all_held(p, pd, fd, data)
        elif fd.__class__ is int:
            h = _np_held_attached(fd)
            if h is not None:
                return _np_write_all_held(h[0], h[1], fd, data)
    return _write_all(fd, data)


async def _write_all(fd: int, data: Any) -> None:
    view = memoryview(data)
    if not view.contiguous:
        raise TypeError("a contiguous bytes-like object is required")
    view = view.cast("B")
    while view:
        n = await write(fd, view)
        if n <= 0:  # a zero-byte write of a non-empty buffer would loop forever
            raise OSError(errno.EIO, f"write made no progress on fd {fd}")
        view = view[n:]


async def pread(fd: int, n: int, offset: int) -> bytes:
    """Read up to ``n`` bytes at ``offset`` without moving the file position.

    :raises OSError: the kernel's error (ESPIPE for a pipe or socket).
    """
    if n < 0 or offset < 0:
        raise ValueError("negative count or offset")
    if n > _MAX_WORD or offset > _MAX_WORD:
        raise ValueError("count or offset out of range")
    info = _fdinfo.get(fd)
    if info is None:
        info = _probe(fd)
    if not info & _RNOWAIT_OFF:
        data = _nowait_read(fd, n, offset)
        if data is not None:
            return data
    return await _handoff_read(fd, n, offset)


async def preadv(fd: int, buffers: Sequence[Any], offset: int) -> int:
    """Scatter-read into ``buffers`` at ``offset``; returns the total count."""
    views = [memoryview(b).cast("B") for b in buffers]
    if any(v.readonly for v in views):
        raise TypeError("preadv needs writable buffers")
    if offset < -1 or offset > _MAX_WORD:
        raise ValueError(f"offset out of range: {offset}")
    total = sum(len(v) for v in views)
    info = _fdinfo.get(fd)
    if info is None:
        info = _probe(fd)
    if not info & _RNOWAIT_OFF:
        try:
            r: int = _preadv(fd, views, offset, _RWF_NOWAIT)
        except BlockingIOError:
            counters.nowait_misses += 1
        except OSError as exc:
            if exc.errno not in _NOWAIT_UNSUPPORTED:
                raise
            _disable_nowait(fd, _RNOWAIT_OFF)
        else:
            counters.nowait_hits += 1
            counters.inline_hits += 1
            return r
    data = await _handoff_read(fd, total, offset)
    pos = 0
    for v in views:
        chunk = data[pos : pos + len(v)]
        v[: len(chunk)] = chunk
        pos += len(chunk)
        if pos >= len(data):
            break
    return len(data)


# ---------------------------------------------------------------------------------------------
# write
# ---------------------------------------------------------------------------------------------


@coroutine_function
def write(fd: int, data: Any) -> Coroutine[Any, Any, int]:
    """Write ``data`` at the file position; returns the count (maybe short, as POSIX allows).

    Pollable fds wait on the netpoller (its own coroutine for an fd it already holds); a
    regular-file write is handed off.
    """
    if not (_fd_orphans or _fd_busy) and _np_registered(fd):
        return _np_write(fd, data)
    return _write(fd, data)


async def _write(fd: int, data: Any) -> int:
    """Write ``data`` at the file position; returns the count (maybe short, as POSIX allows).

    Pollable fds wait on the netpoller; a regular-file write is handed off (ext4 refuses
    buffered writes under RWF_NOWAIT here).  A cancelled handed-off write may still happen:
    it is then logged (``aiosys.sched`` logger) and counted in ``orphan_writes_reported``.
    """
    if (_fd_orphans or _fd_busy) and proc.orphan_of(fd) is not None:
        await _settle(fd)
    if _np_registered(fd):
        return await _np_write(fd, data)
    info = _fdinfo.get(fd)
    if info is None:
        info = _probe(fd)
    if not info & _WNOWAIT_OFF:
        try:
            r: int = _pwritev(fd, [data], -1, _RWF_NOWAIT)
        except BlockingIOError:
            counters.nowait_misses += 1
        except OSError as exc:
            if exc.errno not in _NOWAIT_UNSUPPORTED:
                raise
            _disable_nowait(fd, _WNOWAIT_OFF)
        except BufferError as exc:  # a strided memoryview: a bad argument, not a buffer state
            raise TypeError(f"a contiguous bytes-like object is required ({exc})") from None
        else:
            counters.inline_hits += 1
            return r
    if _classify(fd) & _KNOWN_POLL:
        return await _poll_write(fd, data)
    return await _handoff_write(fd, data, -1)


async def _poll_write(fd: int, data: Any) -> int:
    np_write = getattr(netpoll, "write", None)
    if np_write is not None:
        try:
            n: int = await np_write(fd, data)
            return n
        except netpoll_not_pollable():
            _fdinfo[fd] = (_fdinfo.get(fd, 0) & ~_KNOWN_POLL) | _KNOWN_FILE | _WNOWAIT_OFF
            return await _handoff_write(fd, data, -1)
    while True:
        try:
            r: int = _pwritev(fd, [data], -1, _RWF_NOWAIT)
            return r
        except BlockingIOError:
            try:
                await _wait_fd(fd, write=True)
            except PermissionError:
                _fdinfo[fd] = _fdinfo.get(fd, 0) | _KNOWN_FILE | _WNOWAIT_OFF
                return await _handoff_write(fd, data, -1)
            counters.netpoll_wakeups += 1
        except OSError as exc:
            if exc.errno not in _NOWAIT_UNSUPPORTED:
                raise
            _disable_nowait(fd, _WNOWAIT_OFF)
            return await _handoff_write(fd, data, -1)


async def _handoff_write(fd: int, data: Any, offset: int) -> int:
    pin = ll.pin_buffer(data, writable=False)
    n = pin.size
    if offset < 0:
        r = await _handoff("write", _T_WRITE, (fd, pin.addr, n, 0, 0, 0), fd, pin, "write")
    else:
        r = await _handoff("pwrite64", _T_PWRITE, (fd, pin.addr, n, offset, 0, 0), fd, pin,
                           "write")
    if r == -errno.EAGAIN and offset < 0 and _stale_file_facts(fd):
        pin.release()
        return await _poll_write(fd, data)
    _check(r)
    if r > n:
        raise OSError(errno.EIO, f"write reported {r} bytes of {n}")
    pin.release()
    return r


async def pwrite(fd: int, data: Any, offset: int) -> int:
    """Write ``data`` at ``offset`` without moving the file position; returns the count."""
    if offset < 0 or offset > _MAX_WORD:
        raise ValueError("negative offset" if offset < 0 else f"offset out of range: {offset}")
    if (_fd_orphans or _fd_busy) and proc.orphan_of(fd) is not None:
        await _settle(fd)
    info = _fdinfo.get(fd)
    if info is None:
        info = _probe(fd)
    if not info & _WNOWAIT_OFF:
        try:
            r: int = _pwritev(fd, [data], offset, _RWF_NOWAIT)
        except BlockingIOError:
            counters.nowait_misses += 1
        except OSError as exc:
            if exc.errno not in _NOWAIT_UNSUPPORTED:
                raise
            _disable_nowait(fd, _WNOWAIT_OFF)
        except BufferError as exc:  # a strided memoryview: a bad argument, not a buffer state
            raise TypeError(f"a contiguous bytes-like object is required ({exc})") from None
        else:
            counters.inline_hits += 1
            return r
    return await _handoff_write(fd, data, offset)


async def pwritev(fd: int, buffers: Sequence[Any], offset: int) -> int:
    """Gather-write ``buffers`` at ``offset``; returns the total count."""
    return await pwrite(fd, b"".join(bytes(memoryview(b)) for b in buffers), offset)


# ---------------------------------------------------------------------------------------------
# open / close
# ---------------------------------------------------------------------------------------------


async def open(  # noqa: A001 - the name mirrors os.open on purpose
    path: Any, flags: int = os.O_RDONLY, mode: int = 0o666, *, dir_fd: int | None = None
) -> int:
    """``openat(2)`` on an M; the fd always has ``O_CLOEXEC``.  If the awaiting task is
    cancelled after the kernel opened the file, the fd is closed (never leaked).

    :raises OSError: the kernel's error, with ``filename``.
    """
    pin = ll.pin_path(path)
    dfd = _AT_FDCWD if dir_fd is None else dir_fd
    r = await _handoff(
        "openat",
        _T_OPENAT,
        (dfd, pin.addr, flags | os.O_CLOEXEC, mode, 0, 0),
        -1,
        pin,
        "open",
        block=True,
        flags=_mpool.F_CLOSE_ORPHAN,
    )
    fd = _check(r, path)
    _forget(fd)
    return fd


async def close(fd: int) -> None:
    """Close ``fd`` through the fd reference table: netpoll waiters wake with the "closed"
    error, and if a handed-off call still uses the fd the real ``close(2)`` happens when it
    returns, so its number cannot be reused under it (the error of such a deferred close is
    logged).  ``close(2)`` itself runs inline: on Linux it only drops a reference.

    :raises OSError: EBADF if ``fd`` is not open or a close of it is already pending.
    """
    _forget(fd)
    errors: list[int] = []
    in_call = [True]

    def closer(fd: int) -> None:
        r = _raw3(_T_CLOSE, fd)
        if r < 0 and r != -errno.EINTR:  # EINTR: Linux released the fd anyway
            if in_call[0]:
                errors.append(-r)
            else:
                proc.log.warning("aiosys: deferred close of fd %d failed: %s", fd,
                                 errno.errorcode.get(-r, str(-r)))

    try:
        fdtable.fd_close(fd, closer)
    finally:
        in_call[0] = False
    if errors:
        raise ll.oserror(errors[0])


# ---------------------------------------------------------------------------------------------
# stat (statx)
# ---------------------------------------------------------------------------------------------

_STATX_SIZE: Final = 256
# struct statx up to stx_dev_minor (0x90 bytes): mask, blksize, attributes, nlink, uid, gid,
# mode, pad, ino, size, blocks, attributes_mask, then atime/btime/ctime/mtime as
# (tv_sec, tv_nsec, pad), then rdev major/minor and dev major/minor.
_statx_struct: Final = struct.Struct("=IIQIIIHHQQQQqIiqIiqIiqIiIIII")
_makedev: Final = os.makedev
_stat_result: Final = os.stat_result


def _statx_result(raw: bytes) -> os.stat_result:
    """An ``os.stat_result`` equal to ``os.stat``'s, from a statx buffer (one unpack and one
    19-field sequence: ~3x cheaper than building it from a dict)."""
    (_mask, blksize, _attrs, nlink, uid, gid, mode, _pad, ino, size, blocks, _amask,
     a_s, a_ns, _p1, _b_s, _b_ns, _p2, c_s, c_ns, _p3, m_s, m_ns, _p4,
     rmaj, rmin, dmaj, dmin) = _statx_struct.unpack_from(raw, 0)
    return _stat_result((
        mode, ino, _makedev(dmaj, dmin), nlink, uid, gid, size, a_s, m_s, c_s,
        a_s + a_ns * 1e-9, m_s + m_ns * 1e-9, c_s + c_ns * 1e-9,
        a_s * 1_000_000_000 + a_ns, m_s * 1_000_000_000 + m_ns, c_s * 1_000_000_000 + c_ns,
        blksize, blocks, _makedev(rmaj, rmin),
    ))


_statx_bufs: Final = _BufferPool(_STATX_SIZE)
_EMPTY_PATH: Final = ll.pin_path(b"")  # read-only for the kernel: one copy serves every call


async def _statx(dirfd: int, path: Any, flags: int, fd: int) -> os.stat_result:
    pin = _EMPTY_PATH if path == b"" else ll.pin_path(path)
    out = _statx_bufs.get()
    r = await _handoff(
        "statx",
        _T_STATX,
        (dirfd, pin.addr, flags, _STATX_SIZE_MASK, out.addr, 0),
        fd,
        (pin, out),
    )
    if r < 0:
        _statx_bufs.put(out)
        _check(r, None if fd >= 0 else path)
    raw = ll.read_memory(out, _statx_struct.size)
    _statx_bufs.put(out)
    return _statx_result(raw)


async def fstat(fd: int) -> os.stat_result:
    """``os.fstat`` on an M (statx with AT_EMPTY_PATH)."""
    return await _statx(fd, b"", _AT_EMPTY_PATH, fd)


async def stat(path: Any, *, dir_fd: int | None = None) -> os.stat_result:
    """``os.stat`` on an M (statx, following symlinks)."""
    return await _statx(_AT_FDCWD if dir_fd is None else dir_fd, path, 0, -1)


async def lstat(path: Any, *, dir_fd: int | None = None) -> os.stat_result:
    """``os.lstat`` on an M (statx, AT_SYMLINK_NOFOLLOW)."""
    return await _statx(_AT_FDCWD if dir_fd is None else dir_fd, path, _AT_SYMLINK_NOFOLLOW,
                        -1)


# ---------------------------------------------------------------------------------------------
# fd calls that may block: always on an M
# ---------------------------------------------------------------------------------------------


async def fsync(fd: int) -> None:
    _check(await _handoff("fsync", _T_FSYNC, (fd, 0, 0, 0, 0, 0), fd, block=True))


async def fdatasync(fd: int) -> None:
    _check(await _handoff("fdatasync", _T_FDATASYNC, (fd, 0, 0, 0, 0, 0), fd, block=True))


async def ftruncate(fd: int, length: int) -> None:
    _check(await _handoff("ftruncate", _T_FTRUNCATE, (fd, length, 0, 0, 0, 0), fd))


async def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    _check(await _handoff("fallocate", _T_FALLOCATE, (fd, mode, offset, length, 0, 0), fd,
                          block=True))


async def flock(fd: int, operation: int) -> None:
    """``flock(2)``.  With ``LOCK_NB`` it is tried inline (it cannot block); otherwise on an
    M.  If the awaiting task is cancelled and the lock is granted afterwards, the orphan
    finalizer... cannot know you still want it, so it is released again (``kind="flock"``
    logs it): a cancelled lock request never leaves the file locked."""
    if operation & 4:  # LOCK_NB: cannot block
        _check(_raw3(_T_FLOCK, fd, operation))
        return
    _check(await _handoff("flock", _T_FLOCK, (fd, operation, 0, 0, 0, 0), fd, None,
                          "flock", block=True))


# ---------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------


def _words6(words: tuple[int, ...]) -> _Words:
    w = tuple(words) + (0,) * (6 - len(words))
    return (w[0], w[1], w[2], w[3], w[4], w[5])


async def _path_call(name: str, trap: int, words: tuple[int, ...], path: Any,
                     keep: object) -> int:
    return _check(await _handoff(name, trap, _words6(words), -1, keep), path)


async def unlink(path: Any, *, dir_fd: int | None = None) -> None:
    pin = ll.pin_path(path)
    dfd = _AT_FDCWD if dir_fd is None else dir_fd
    await _path_call("unlinkat", _T_UNLINKAT, (dfd, pin.addr, 0), path, pin)


async def rmdir(path: Any, *, dir_fd: int | None = None) -> None:
    pin = ll.pin_path(path)
    dfd = _AT_FDCWD if dir_fd is None else dir_fd
    await _path_call("unlinkat", _T_UNLINKAT, (dfd, pin.addr, _AT_REMOVEDIR), path, pin)


async def mkdir(path: Any, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
    pin = ll.pin_path(path)
    dfd = _AT_FDCWD if dir_fd is None else dir_fd
    await _path_call("mkdirat", _T_MKDIRAT, (dfd, pin.addr, mode), path, pin)


async def rename(src: Any, dst: Any) -> None:
    a, b = ll.pin_path(src), ll.pin_path(dst)
    if _T_RENAMEAT2 >= 0:
        words: tuple[int, ...] = (_AT_FDCWD, a.addr, _AT_FDCWD, b.addr, 0)
        trap, name = _T_RENAMEAT2, "renameat2"
    else:  # pragma: no cover - every Linux aiosys builds for has renameat2
        words, trap, name = (_AT_FDCWD, a.addr, _AT_FDCWD, b.addr), _T_RENAMEAT, "renameat"
    try:
        await _path_call(name, trap, words, src, (a, b))
    except OSError as exc:
        exc.filename2 = dst
        raise


async def symlink(target: Any, linkpath: Any) -> None:
    a, b = ll.pin_path(target), ll.pin_path(linkpath)
    await _path_call("symlinkat", _T_SYMLINKAT, (a.addr, _AT_FDCWD, b.addr), linkpath, (a, b))


async def readlink(path: Any) -> str | bytes:
    """The target of a symlink: ``str`` for a ``str`` path, ``bytes`` for ``bytes``."""
    pin = ll.pin_path(path)
    out = ll.alloc(4096)
    r = await _path_call("readlinkat", _T_READLINKAT, (_AT_FDCWD, pin.addr, out.addr, 4096),
                         path, (pin, out))
    raw = ll.read_memory(out, r)
    return raw if isinstance(path, bytes) else os.fsdecode(raw)


async def chmod(path: Any, mode: int) -> None:
    pin = ll.pin_path(path)
    await _path_call("fchmodat", _T_FCHMODAT, (_AT_FDCWD, pin.addr, mode), path, pin)


# ---------------------------------------------------------------------------------------------
# Directories (getdents64)
# ---------------------------------------------------------------------------------------------


class DirEntry(NamedTuple):
    """One directory entry from :func:`scandir` (``d_type`` as getdents64 gave it)."""

    name: str
    path: str
    inode: int
    d_type: int

    def is_dir(self) -> bool:
        return self.d_type == 4  # DT_DIR

    def is_file(self) -> bool:
        return self.d_type == 8  # DT_REG

    def is_symlink(self) -> bool:
        return self.d_type == 10  # DT_LNK


_dirent: Final = struct.Struct("=QqHB")
_DENTS_BUF: Final = 32768


async def scandir(path: Any = ".") -> list[DirEntry]:
    """Every entry of a directory except ``.`` and ``..`` (getdents64 on an M)."""
    base = os.fsdecode(path)
    fd = await open(path, os.O_RDONLY | os.O_DIRECTORY)
    out: list[DirEntry] = []
    try:
        buf = ll.alloc(_DENTS_BUF)
        while True:
            r = _check(await _handoff("getdents64", _T_GETDENTS64,
                                      (fd, buf.addr, _DENTS_BUF, 0, 0, 0), fd, buf), path)
            if r == 0:
                break
            raw = ll.read_memory(buf, r)
            pos = 0
            while pos < r:
                ino, _off, reclen, dtype = _dirent.unpack_from(raw, pos)
                name_raw = raw[pos + 19 : pos + reclen].split(b"\0", 1)[0]
                pos += reclen
                if name_raw in (b".", b".."):
                    continue
                name = os.fsdecode(name_raw)
                out.append(DirEntry(name, os.path.join(base, name), ino, dtype))
    finally:
        await close(fd)
    return out


async def listdir(path: Any = ".") -> list[str]:
    """Names in a directory (``os.listdir`` order is unspecified too)."""
    return [e.name for e in await scandir(path)]


# ---------------------------------------------------------------------------------------------
# Copies between fds
# ---------------------------------------------------------------------------------------------


def _loff(offset: int | None) -> tuple[int, Any]:
    """A ``loff_t *`` argument: NULL for None, else pinned 8 bytes holding ``offset``."""
    if offset is None:
        return 0, None
    if offset.__class__ is not int and not isinstance(offset, int):
        raise TypeError(f"offset must be an int or None, not {type(offset).__name__}")
    if not -(1 << 63) <= offset < 1 << 63:
        raise ValueError(f"offset out of range: {offset}")
    p = ll.pin_buffer(bytearray(struct.pack("=q", offset)), writable=True)
    return p.addr, p


async def sendfile(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
    """``sendfile(2)`` on an M; returns the count."""
    addr, keep = _loff(offset)
    return _check(await _handoff("sendfile", _T_SENDFILE,
                                 (out_fd, in_fd, addr, count, 0, 0), out_fd, keep))


async def splice(fd_in: int, off_in: int | None, fd_out: int, off_out: int | None,
                 length: int, flags: int = 0) -> int:
    """``splice(2)`` on an M; returns the count."""
    a, ka = _loff(off_in)
    b, kb = _loff(off_out)
    return _check(await _handoff("splice", _T_SPLICE, (fd_in, a, fd_out, b, length, flags),
                                 fd_in, (ka, kb)))


async def copy_file_range(fd_in: int, off_in: int | None, fd_out: int, off_out: int | None,
                          length: int, flags: int = 0) -> int:
    """``copy_file_range(2)`` on an M; returns the count."""
    a, ka = _loff(off_in)
    b, kb = _loff(off_out)
    return _check(await _handoff("copy_file_range", _T_COPY_FILE_RANGE,
                                 (fd_in, a, fd_out, b, length, flags), fd_in, (ka, kb)))


# ---------------------------------------------------------------------------------------------
# Any table entry
# ---------------------------------------------------------------------------------------------

_NONBLOCKING: Final = frozenset(
    {"getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "sched_yield",
     "clock_gettime", "clock_getres", "eventfd2", "pipe2", "socket", "socketpair",
     "epoll_create1", "epoll_ctl", "getrandom", "kill", "tgkill", "dup3", "listen",
     "shutdown", "getsockname", "getpeername", "getsockopt", "setsockopt", "bind"}
)


def _table() -> dict[str, Any]:
    """The generated syscall table (``aiosys.native.zsyscall.TABLE``), or {} without it."""
    try:
        zsyscall: Any = importlib.import_module("aiosys.native.zsyscall")
    except ImportError:  # pragma: no cover - generated module not present
        return {}
    table: dict[str, Any] = zsyscall.TABLE
    return table


_trap_names: dict[int, str] = {v: k for k, v in _SYS.items()}


async def syscall(trap: int | str, *args: Any) -> Any:
    """Make any system call without blocking the loop; the entry's class decides the route:
    ``sysnb``/``noerror`` inline, ``sys``/``sysblock`` on an M.

    By **name** of a syscall-table entry (``await aiosys.syscall("fstat", fd)``): the typed
    wrapper's arguments and result (:mod:`aiosys.native.zsyscall`: buffers, paths, a
    ``StatxResult``...); memory is pinned until the M is done, and a result nobody awaits any
    more is released (a returned fd closed).  By **number** (or a name only the kernel headers
    know): up to six machine words, and the raw result; passing addresses is the caller's
    responsibility, and that memory must outlive the call even if the task is cancelled.

    :raises OSError: the kernel's error.
    """
    if isinstance(trap, str):
        entry = _table().get(trap)
        if entry is not None:
            return await _typed(entry, args)
        if trap not in _SYS:
            raise ValueError(f"unknown syscall {trap!r}")
        nr, name = _SYS[trap], trap
    else:
        nr = int(trap)
        name = _trap_names.get(nr, f"syscall_{nr}")
    if len(args) > 6:
        raise TypeError("at most six syscall arguments")
    words = _words6(tuple(ll._as_word(a) for a in args))
    if name in _NONBLOCKING:
        counters.inline_calls += 1
        return _check(ll.raw6(nr, *words))
    return _check(await _handoff(name, nr, words))


async def _typed(entry: Any, args: tuple[Any, ...]) -> Any:
    prep = entry.prepare(*args)
    if not entry.blocking:
        counters.inline_calls += 1
        return prep.finish(ll.raw6(prep.trap, *prep.args))
    r = await _handoff(prep.name, prep.trap, tuple(prep.args), prep.fd, prep, "prepared",
                       block=(entry.base or entry.klass) == "sysblock")
    return prep.finish(r)
