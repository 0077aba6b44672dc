"""Argument marshalling and result decoding for the generated wrappers (``zsyscall``).

Each parameter kind of the syscall table (``syscalls.tbl``) has a function here that turns a
Python value into machine words, validating it *before* any pointer can reach the kernel:

* integers go through ``__index__`` (``TypeError`` otherwise) and are range-checked for the C
  type the kernel reads (:class:`OutOfRangeError`, a ``ValueError``: the typed API raises
  only ``TypeError``/``ValueError``/``OSError`` for bad input, never ``OverflowError``), so a
  value is never silently truncated: a fd of
  ``2**32 + 3`` would otherwise reach ``close`` as fd 3;
* a fd outside ``0..INT_MAX`` is ``OSError(EBADF)``, what the kernel says for a bad fd;
* negative lengths and offsets are ``ValueError``; paths with an embedded NUL ``ValueError``;
* buffers the kernel writes into must be writable (``TypeError`` for ``bytes``); every buffer
  and path is pinned (:class:`aiosys.native._lowlevel.Pinned`) and kept alive by the
  :class:`~aiosys.native.prepared.Prepared` until the kernel is done with it.

Results come back through ``r_*`` decoders ``(r, ctx) -> value``; ``orphan_*`` functions
release what a call created when nobody will take its result.
"""

from __future__ import annotations

import array
import contextlib
import errno as _errno
import mmap as _mmap
import operator
import os
import platform
import socket
import stat as _stat
import struct
from collections.abc import Sequence
from typing import Any, Final, TypeAlias

from . import _lowlevel
from ._lowlevel import Pinned, pin_buffer, pin_path

# Python types the wrappers accept.
ReadableBuffer: TypeAlias = "bytes | bytearray | memoryview | array.array[Any] | _mmap.mmap"
WritableBuffer: TypeAlias = "bytearray | memoryview | array.array[Any] | _mmap.mmap"
Path: TypeAlias = "str | bytes | os.PathLike[str] | os.PathLike[bytes]"
SockAddr: TypeAlias = (
    "str | bytes | os.PathLike[str] | os.PathLike[bytes] | tuple[str, int] "
    "| tuple[str, int, int, int]"
)
Address: TypeAlias = "str | bytes | tuple[str, int] | tuple[str, int, int, int] | None"

_C: Final = _lowlevel.HEADER_CONSTANTS
AT_FDCWD: Final = _C["AT_FDCWD"]
AT_EMPTY_PATH: Final = _C["AT_EMPTY_PATH"]
AT_SYMLINK_NOFOLLOW: Final = _C["AT_SYMLINK_NOFOLLOW"]
AT_REMOVEDIR: Final = _C["AT_REMOVEDIR"]
O_CLOEXEC: Final = _C["O_CLOEXEC"]
SOCK_CLOEXEC: Final = _C["SOCK_CLOEXEC"]
F_DUPFD: Final = _C["F_DUPFD"]
F_DUPFD_CLOEXEC: Final = _C["F_DUPFD_CLOEXEC"]
F_GETFD: Final = _C["F_GETFD"]
F_SETFD: Final = _C["F_SETFD"]
F_GETFL: Final = _C["F_GETFL"]
F_SETFL: Final = _C["F_SETFL"]
STATX_BASIC_STATS: Final = _C["STATX_BASIC_STATS"]
STATX_BTIME: Final = _C["STATX_BTIME"]
STATX_DEFAULT: Final = STATX_BASIC_STATS | STATX_BTIME
PROT_READ: Final = _C["PROT_READ"]
PROT_WRITE: Final = _C["PROT_WRITE"]
MAP_FIXED: Final = _C["MAP_FIXED"]
CLOCK_MONOTONIC: Final = _C["CLOCK_MONOTONIC"]
EPOLL_CLOEXEC: Final = _lowlevel.EPOLL_CLOEXEC
EFD_CLOEXEC: Final = _lowlevel.EFD_CLOEXEC
# The Linux ABI defines all three as O_CLOEXEC; oflags() relies on it.
assert O_CLOEXEC == EFD_CLOEXEC == EPOLL_CLOEXEC

INT_MAX: Final = (1 << 31) - 1
INT_MIN: Final = -(1 << 31)
UINT_MAX: Final = (1 << 32) - 1
I64_MAX: Final = (1 << 63) - 1
I64_MIN: Final = -(1 << 63)
U64_MAX: Final = (1 << 64) - 1
# Linux never moves more than this in one read/write (MAX_RW_COUNT); larger requests are short.
MAX_RW_COUNT: Final = 0x7FFFF000
# Result buffers a caller sizes (getdents64) are capped: a clean ValueError, not a MemoryError.
MAX_OUT_BUFFER: Final = 1 << 24
# fcntl commands whose third argument is an integer.  The rest (F_GETLK, F_SETLKW, F_OFD_*,
# F_GETOWN_EX, ...) take a pointer: from an integer that would let the kernel write anywhere.
FCNTL_INT_COMMANDS: Final = frozenset(
    _C[n]
    for n in [
        "F_DUPFD",
        "F_DUPFD_CLOEXEC",
        "F_GETFD",
        "F_SETFD",
        "F_GETFL",
        "F_SETFL",
        "F_GETPIPE_SZ",
        "F_SETPIPE_SZ",
        "F_GET_SEALS",
        "F_ADD_SEALS",
    ]
)

# --------------------------------------------------------------------------------------------
# Integers
# --------------------------------------------------------------------------------------------


class OutOfRangeError(ValueError):
    """A number that does not fit the C type the kernel reads (a bad value: ``ValueError``)."""


def _index(value: object, what: str) -> int:
    if value.__class__ is int:
        return value
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{what} must be an integer, not {type(value).__name__}") from None


def _bad_fd(fd: int) -> OSError:
    return OSError(_errno.EBADF, f"{os.strerror(_errno.EBADF)}: {fd}")


def fd(value: object) -> int:
    """A file descriptor: 0..INT_MAX, else ``OSError(EBADF)``."""
    v = _index(value, "file descriptor")
    if not 0 <= v <= INT_MAX:
        raise _bad_fd(v)
    return v


def dirfd(value: object) -> int:
    """A directory fd for the ``*at`` calls: a fd or ``AT_FDCWD``."""
    v = _index(value, "directory file descriptor")
    if v != AT_FDCWD and not 0 <= v <= INT_MAX:
        raise _bad_fd(v)
    return v


def optfd(value: object) -> int:
    """A fd or -1 (mmap's "no file")."""
    v = _index(value, "file descriptor")
    if not -1 <= v <= INT_MAX:
        raise _bad_fd(v)
    return v


def c_int(value: object) -> int:
    v = _index(value, "argument")
    if not INT_MIN <= v <= INT_MAX:
        raise OutOfRangeError(f"{v} does not fit in a C int")
    return v


def c_uint(value: object) -> int:
    v = _index(value, "argument")
    if not 0 <= v <= UINT_MAX:
        raise OutOfRangeError(f"{v} does not fit in a C unsigned int")
    return v


def c_long(value: object) -> int:
    v = _index(value, "argument")
    if not I64_MIN <= v <= I64_MAX:
        raise OutOfRangeError(f"{v} does not fit in a C long")
    return v


def c_ulong(value: object) -> int:
    """An unsigned 64-bit value, passed as the signed word with the same bits."""
    v = _index(value, "argument")
    if not 0 <= v <= U64_MAX:
        raise OutOfRangeError(f"{v} does not fit in 64 unsigned bits")
    return v - (1 << 64) if v > I64_MAX else v


def size(value: object) -> int:
    v = _index(value, "length")
    if v < 0:
        raise ValueError(f"negative length: {v}")
    if v > I64_MAX:
        raise OutOfRangeError(f"length too large: {v}")
    return v


def off(value: object) -> int:
    v = _index(value, "offset")
    if v < 0:
        raise ValueError(f"negative offset: {v}")
    if v > I64_MAX:
        raise OutOfRangeError(f"offset too large: {v}")
    return v


def offpos(value: object) -> int:
    """An offset, or -1 for "the file position" (preadv2/pwritev2)."""
    v = _index(value, "offset")
    if v < -1:
        raise ValueError(f"offset must be >= 0, or -1 for the file position: {v}")
    if v > I64_MAX:
        raise OutOfRangeError(f"offset too large: {v}")
    return v


def mode(value: object) -> int:
    v = _index(value, "mode")
    if not 0 <= v <= 0o7777:
        raise ValueError(f"mode out of range: {v:#o}" if v >= 0 else f"negative mode: {v}")
    return v


def oflags(value: object) -> int:
    """Flags of a call that creates fds (open, pipe2, dup3, eventfd2, epoll_create1): O_CLOEXEC
    (= EFD_CLOEXEC = EPOLL_CLOEXEC on Linux) is always added (PEP 446: non-inheritable)."""
    return c_int(value) | O_CLOEXEC


def sockflags(value: object) -> int:
    """socket type / accept4 flags; SOCK_CLOEXEC is always added (PEP 446)."""
    return c_int(value) | SOCK_CLOEXEC


def fcntl_cmd(value: object) -> int:
    v = c_int(value)
    if v not in FCNTL_INT_COMMANDS:
        raise ValueError(
            f"fcntl command {v} takes a pointer or is unknown: only integer-argument commands "
            "are exposed (use RawSyscall with memory you own for the others)"
        )
    return v


# --------------------------------------------------------------------------------------------
# Memory: buffers, paths, iovecs
# --------------------------------------------------------------------------------------------


def rbuf(value: object) -> Pinned:
    """A bytes-like object the kernel reads from."""
    return pin_buffer(value, writable=False)


def wbuf(value: object) -> Pinned:
    """A bytes-like object the kernel writes into: ``TypeError`` if read-only."""
    return pin_buffer(value, writable=True)


def path(value: object) -> Pinned:
    return pin_path(value)


class Iovec:
    """A pinned ``struct iovec[]`` over pinned buffers: ``addr``, ``count``, ``size`` (total)."""

    __slots__ = ("_array", "_bufs", "addr", "count", "size")

    def __init__(self, buffers: object, writable: bool) -> None:
        if isinstance(buffers, str | bytes | bytearray | memoryview) or not isinstance(
            buffers, Sequence
        ):
            raise TypeError("a sequence of bytes-like objects is required")
        if len(buffers) > _lowlevel.IOV_MAX:
            raise ValueError(f"at most {_lowlevel.IOV_MAX} buffers per call")
        self._bufs = [pin_buffer(b, writable=writable) for b in buffers]
        total = sum(b.size for b in self._bufs)
        if total > MAX_RW_COUNT:
            raise ValueError(f"buffers too large for one call: {total} bytes")
        raw = bytearray(struct.pack(f"={2 * len(self._bufs)}Q", *_pairs(self._bufs)) or b"\0")
        self._array = pin_buffer(raw, writable=True)
        self.addr = self._array.addr
        self.count = len(self._bufs)
        self.size = total

    def release(self) -> None:
        """Drop the pins (the kernel is done with the memory)."""
        for b in self._bufs:
            b.release()
        self._array.release()


def _pairs(bufs: list[Pinned]) -> list[int]:
    out: list[int] = []
    for b in bufs:
        out += (b.addr, b.size)
    return out


def riov(value: object) -> Iovec:
    return Iovec(value, writable=False)


def wiov(value: object) -> Iovec:
    return Iovec(value, writable=True)


class Out:
    """Zeroed memory the kernel writes a result into: ``buf`` (a bytearray), ``addr``,
    ``size``; ``lenp`` points at a socklen_t/int holding ``size`` for the calls that take a
    value-result length (accept4, recvfrom, getsockopt, getsockname)."""

    __slots__ = ("_len", "_pin", "_pinlen", "addr", "buf", "count", "lenp", "size")

    def __init__(self, nbytes: int, with_len: bool = False, count: int = -1) -> None:
        self.buf = bytearray(max(nbytes, 1))
        self._pin = pin_buffer(self.buf, writable=True)
        self.addr = self._pin.addr
        self.size = nbytes
        self.count = nbytes if count < 0 else count  # elements, where the kernel wants that
        if with_len:
            self._len = bytearray(struct.pack("=I", nbytes))
            self._pinlen: Pinned | None = pin_buffer(self._len, writable=True)
            self.lenp = self._pinlen.addr
        else:
            self._len = bytearray(4)
            self._pinlen = None
            self.lenp = 0

    def release(self) -> None:
        """Drop the pins; ``buf`` stays readable (it is a bytearray)."""
        self._pin.release()
        if self._pinlen is not None:
            self._pinlen.release()

    @property
    def length(self) -> int:
        """The value-result length the kernel wrote back."""
        return int(struct.unpack("=I", self._len)[0])


def out_bytes(nbytes: object) -> Out:
    n = size(nbytes)
    if n > MAX_OUT_BUFFER:
        raise ValueError(f"result buffer too large: {n} bytes (max {MAX_OUT_BUFFER})")
    return Out(n)


def out_sized(nbytes: int) -> Out:
    return Out(nbytes)


_SOCKADDR_STORAGE: Final = 128


def out_sockaddr() -> Out:
    return Out(_SOCKADDR_STORAGE, with_len=True)


def out_int() -> Out:
    return Out(4, with_len=True)


def timespec(ns: object) -> Out:
    """A ``struct timespec`` holding ``ns`` nanoseconds (nanosleep passes it as both req and
    rem, so an EINTR retry sleeps only what remains)."""
    v = _index(ns, "nanoseconds")
    if v < 0:
        raise ValueError(f"negative duration: {v}")
    if v // 1_000_000_000 > I64_MAX:
        raise OutOfRangeError(f"duration too large: {v}")
    o = Out(16)
    o.buf[:] = struct.pack("=qq", *divmod(v, 1_000_000_000))
    return o


# struct epoll_event is packed on x86_64 (12 bytes) and naturally aligned elsewhere (16).
_EPOLL_EVENT: Final = struct.Struct("=IQ" if platform.machine() in ("x86_64", "i686") else "=I4xQ")


def epoll_event(events: int, data: int) -> Out:
    """A ``struct epoll_event`` from validated ``events`` (u32) and ``data`` (u64)."""
    o = Out(_EPOLL_EVENT.size)
    o.buf[:] = _EPOLL_EVENT.pack(events, data)
    return o


def maxevents(value: object) -> int:
    v = c_int(value)
    if not 1 <= v <= _lowlevel.EPOLL_MAXEVENTS:
        raise ValueError(f"maxevents must be in 1..{_lowlevel.EPOLL_MAXEVENTS}: {v}")
    return v


def out_events(n: int) -> Out:
    return Out(n * _EPOLL_EVENT.size, count=n)


def timeout_spec(ns: object) -> Out | Pinned:
    """epoll_pwait2's timeout: ``ns`` < 0 waits forever (a NULL timespec)."""
    v = c_long(ns)
    return _NO_ADDR if v < 0 else timespec(v)


def u64(value: object) -> int:
    """An unsigned 64-bit value kept unsigned (for values packed into a struct)."""
    v = _index(value, "argument")
    if not 0 <= v <= U64_MAX:
        raise OutOfRangeError(f"{v} does not fit in 64 unsigned bits")
    return v


# --------------------------------------------------------------------------------------------
# Socket addresses (AF_UNIX, AF_INET, AF_INET6; numeric hosts only: no DNS in a syscall)
# --------------------------------------------------------------------------------------------

_UNIX_PATH_MAX: Final = 108


def encode_sockaddr(addr: object) -> bytes:
    """str/bytes/PathLike -> AF_UNIX (leading NUL: abstract); ``(host, port)`` -> AF_INET, or
    AF_INET6 when the host contains ':'; ``(host, port, flowinfo, scope_id)`` -> AF_INET6."""
    if isinstance(addr, tuple):
        if len(addr) not in (2, 4):
            raise TypeError("an address tuple is (host, port) or (host, port, flow, scope)")
        host, port = addr[0], addr[1]
        if not isinstance(host, str):
            raise TypeError(f"host must be str, not {type(host).__name__}")
        p = _index(port, "port")
        if not 0 <= p <= 0xFFFF:
            raise OutOfRangeError("port must be 0-65535")
        if len(addr) == 2 and ":" not in host:
            try:
                packed = socket.inet_pton(socket.AF_INET, host or "0.0.0.0")
            except (OSError, ValueError):
                raise ValueError(f"not a numeric IPv4 address: {host!r}") from None
            return struct.pack("=H", socket.AF_INET) + struct.pack("!H", p) + packed + bytes(8)
        flow = c_uint(addr[2]) if len(addr) == 4 else 0
        scope = c_uint(addr[3]) if len(addr) == 4 else 0
        try:
            packed = socket.inet_pton(socket.AF_INET6, host or "::")
        except (OSError, ValueError):
            raise ValueError(f"not a numeric IPv6 address: {host!r}") from None
        return (
            struct.pack("=H", socket.AF_INET6)
            + struct.pack("!HI", p, flow)
            + packed
            + struct.pack("=I", scope)
        )
    if isinstance(addr, str | bytes | os.PathLike):
        raw = os.fsencode(addr)
        abstract = raw.startswith(b"\0")
        if not abstract:
            if b"\0" in raw:
                raise ValueError("embedded null byte")
            raw += b"\0"
        if len(raw) > _UNIX_PATH_MAX:
            raise ValueError(f"AF_UNIX path too long ({len(raw)} > {_UNIX_PATH_MAX} bytes)")
        return struct.pack("=H", socket.AF_UNIX) + raw
    raise TypeError(f"not a socket address: {type(addr).__name__}")


def decode_sockaddr(raw: bytes | bytearray, length: int) -> Address:
    """The inverse of :func:`encode_sockaddr` (``None`` for an unnamed/unknown address)."""
    length = min(length, len(raw))
    if length < 2:
        return None
    (family,) = struct.unpack_from("=H", raw)
    if family == socket.AF_INET and length >= 8:
        (port,) = struct.unpack_from("!H", raw, 2)
        return socket.inet_ntop(socket.AF_INET, bytes(raw[4:8])), port
    if family == socket.AF_INET6 and length >= 28:
        port, flow = struct.unpack_from("!HI", raw, 2)
        (scope,) = struct.unpack_from("=I", raw, 24)
        return socket.inet_ntop(socket.AF_INET6, bytes(raw[8:24])), port, flow, scope
    if family == socket.AF_UNIX:
        p = bytes(raw[2:length])
        if p.startswith(b"\0"):
            return p  # abstract: bytes, as the socket module returns them
        return os.fsdecode(p.split(b"\0", 1)[0])
    return None


def sockaddr(value: object) -> Pinned:
    return pin_buffer(bytearray(encode_sockaddr(value)), writable=False)


_NO_ADDR: Final = Pinned(None, 0, 0)


def optsockaddr(value: object) -> Pinned:
    return _NO_ADDR if value is None else sockaddr(value)


# --------------------------------------------------------------------------------------------
# mmap
# --------------------------------------------------------------------------------------------


class Mapping:
    """Memory from ``mmap`` (Go's ``Mmap`` returns a ``[]byte``; Python gets a guarded view).

    ``read``/``write`` are bounds-checked and refuse a mapping without ``PROT_READ`` /
    ``PROT_WRITE`` (touching one would be SIGSEGV), and any use after ``munmap``.  As with the
    ``mmap`` module, touching a shared file mapping past the file's end raises SIGBUS: keep the
    file at least as long as the mapping.
    """

    __slots__ = ("__weakref__", "addr", "closed", "length", "prot")

    def __init__(self, addr: int, length: int, prot: int) -> None:
        self.addr = addr
        self.length = length
        self.prot = prot
        self.closed = False

    def __len__(self) -> int:
        return self.length

    def _span(self, offset: int, n: int) -> tuple[int, int]:
        if self.closed:
            raise ValueError("mapping is unmapped")
        o = off(offset)
        if n < 0:
            n = max(self.length - o, 0)
        if o + n > self.length:
            raise ValueError(f"range {o}+{n} is outside the {self.length}-byte mapping")
        return o, n

    def read(self, offset: int = 0, n: int = -1) -> bytes:
        """Copy ``n`` bytes (default: to the end) from ``offset``."""
        if not self.prot & PROT_READ:
            raise PermissionError(_errno.EACCES, "mapping is not readable (no PROT_READ)")
        o, n = self._span(offset, _index(n, "length"))
        return _lowlevel.memread(self.addr + o, n)

    def write(self, offset: int, data: ReadableBuffer) -> None:
        """Copy ``data`` into the mapping at ``offset``."""
        if not self.prot & PROT_WRITE:
            raise PermissionError(_errno.EACCES, "mapping is not writable (no PROT_WRITE)")
        with memoryview(data) as view:
            o, _ = self._span(offset, view.nbytes)
            _lowlevel.memwrite(self.addr + o, view)

    def __repr__(self) -> str:
        state = "unmapped" if self.closed else f"{self.addr:#x}"
        return f"<Mapping {state} length={self.length} prot={self.prot}>"


def mapping(value: object) -> Mapping:
    if not isinstance(value, Mapping):
        raise TypeError(f"a Mapping from mmap() is required, not {type(value).__name__}")
    if value.closed:
        raise ValueError("mapping is unmapped")
    return value


def unmapping(value: object) -> Mapping:
    """munmap's argument: marked closed now, so no read/write can touch it while the trap
    runs (possibly on another thread).  A failed munmap leaves it closed: the memory is leaked
    rather than risk touching a range the kernel may have partly unmapped."""
    m = mapping(value)
    m.closed = True
    return m


def map_length(value: object) -> int:
    v = size(value)
    if v == 0:
        raise ValueError("cannot map 0 bytes")
    return v


def map_flags(value: object) -> int:
    v = c_int(value)
    if v & MAP_FIXED:
        raise ValueError("MAP_FIXED could replace memory the interpreter owns: not exposed")
    return v


def prot(value: object) -> int:
    return c_int(value)


# --------------------------------------------------------------------------------------------
# Result decoders: (r, ctx) -> value.  r is a valid (non-error) kernel return here.
# --------------------------------------------------------------------------------------------


def r_none(r: int, ctx: Any) -> None:
    return None


def r_int(r: int, ctx: Any) -> int:
    return r


def r_count(r: int, limit: int) -> int:
    """A byte count, checked against the buffer it describes (Go issue 61060)."""
    if r > limit:
        raise OSError(_errno.EIO, f"kernel reported {r} bytes for a {limit}-byte buffer")
    return r


def r_pipe(r: int, out: Out) -> tuple[int, int]:
    a, b = struct.unpack_from("=ii", out.buf)
    return int(a), int(b)


def orphan_pipe(r: int, out: Out) -> None:
    for f in r_pipe(r, out):
        with contextlib.suppress(OSError):
            os.close(f)


def orphan_fd(r: int, ctx: Any) -> None:
    with contextlib.suppress(OSError):
        os.close(r)


def r_accept(r: int, out: Out) -> tuple[int, Address]:
    return r, decode_sockaddr(out.buf, out.length)


def r_sockname(r: int, out: Out) -> Address:
    return decode_sockaddr(out.buf, out.length)


def r_recvfrom(r: int, ctx: tuple[int, Out]) -> tuple[int, Address]:
    limit, out = ctx
    return r_count(r, limit), decode_sockaddr(out.buf, out.length)


def r_sockopt_int(r: int, out: Out) -> int:
    if out.length != 4:
        raise OSError(_errno.EINVAL, f"option is not an int ({out.length} bytes)")
    return int(struct.unpack_from("=i", out.buf)[0])


def r_timespec(r: int, out: Out) -> int:
    sec, nsec = struct.unpack_from("=qq", out.buf)
    return int(sec) * 1_000_000_000 + int(nsec)


def r_rlimit(r: int, out: Out) -> tuple[int, int]:
    """(soft, hard), with RLIM_INFINITY as -1 like :func:`resource.getrlimit`."""
    soft, hard = struct.unpack_from("=QQ", out.buf)
    inf = _lowlevel.RLIM_INFINITY
    return (-1 if soft == inf else int(soft)), (-1 if hard == inf else int(hard))


def r_cpuset(r: int, out: Out) -> set[int]:
    cpus: set[int] = set()
    for i, byte in enumerate(out.buf[: min(r, out.size)]):
        for bit in range(8):
            if byte >> bit & 1:
                cpus.add(i * 8 + bit)
    return cpus


def r_events(r: int, out: Out) -> list[tuple[int, int]]:
    """epoll events as ``(events, data)`` pairs."""
    n = min(r, out.size // _EPOLL_EVENT.size)
    raw = bytes(out.buf[: n * _EPOLL_EVENT.size])
    return [(int(e), int(d)) for e, d in _EPOLL_EVENT.iter_unpack(raw)]


def r_readlink(r: int, out: Out) -> str:
    if r >= out.size:
        raise OSError(_errno.ENAMETOOLONG, "symbolic link target longer than PATH_MAX")
    return os.fsdecode(bytes(out.buf[:r]))


_DIRENT_HEAD: Final = struct.Struct("=QqHB")  # d_ino, d_off, d_reclen, d_type


def r_dirents(r: int, out: Out) -> list[str]:
    """Names from a getdents64 buffer, "." and ".." included: an empty list must mean the end
    of the directory, and a small buffer can hold nothing but "." (Go's ParseDirent skips
    them, but its callers see the byte count)."""
    names: list[str] = []
    buf = bytes(out.buf[: min(r, out.size)])
    pos = 0
    while pos + _DIRENT_HEAD.size <= len(buf):
        _, _, reclen, _ = _DIRENT_HEAD.unpack_from(buf, pos)
        if reclen < _DIRENT_HEAD.size or pos + reclen > len(buf):
            raise OSError(_errno.EIO, "malformed directory entry")
        name = buf[pos + _DIRENT_HEAD.size : pos + reclen].split(b"\0", 1)[0]
        pos += reclen
        names.append(os.fsdecode(name))
    return names


def r_mapping(r: int, ctx: tuple[int, int]) -> Mapping:
    length, prot_ = ctx
    return Mapping(r, length, prot_)


def orphan_mapping(r: int, ctx: tuple[int, int]) -> None:
    _lowlevel.raw3(_lowlevel.SYS["munmap"], r, ctx[0])


def r_mincore(r: int, out: Out) -> bytes:
    return bytes(out.buf[: out.size])


def out_mincore(m: Mapping) -> Out:
    page = _mmap.PAGESIZE
    return Out((m.length + page - 1) // page)


# --------------------------------------------------------------------------------------------
# statx
# --------------------------------------------------------------------------------------------

_STATX: Final = struct.Struct("=IIQIIIH2xQQQQ" + "qI4x" * 4 + "IIII")
STATX_SIZE: Final = 256


class StatxResult:
    """``statx`` as an ``os.stat_result``-like object: the ``st_*`` fields of ``os.stat``
    (times as float seconds and ``*_ns`` integers), plus ``st_birthtime_ns`` (``None`` when
    the filesystem does not report it), ``stx_mask`` and ``stx_attributes``."""

    __slots__ = (
        "st_atime_ns",
        "st_birthtime_ns",
        "st_blksize",
        "st_blocks",
        "st_ctime_ns",
        "st_dev",
        "st_gid",
        "st_ino",
        "st_mode",
        "st_mtime_ns",
        "st_nlink",
        "st_rdev",
        "st_size",
        "st_uid",
        "stx_attributes",
        "stx_mask",
    )

    st_atime_ns: int
    st_mtime_ns: int
    st_ctime_ns: int

    def __init__(self, raw: bytes | bytearray) -> None:
        f = _STATX.unpack_from(raw)
        (mask, blksize, attrs, nlink, uid, gid, mode_, ino, size_, blocks, _attr_mask) = f[:11]
        times = [f[11 + 2 * i] * 1_000_000_000 + f[12 + 2 * i] for i in range(4)]
        rdev_major, rdev_minor, dev_major, dev_minor = f[19:23]
        self.stx_mask = mask
        self.stx_attributes = attrs
        self.st_mode = mode_
        self.st_ino = ino
        self.st_dev = os.makedev(dev_major, dev_minor)
        self.st_nlink = nlink
        self.st_uid = uid
        self.st_gid = gid
        self.st_size = size_
        self.st_blksize = blksize
        self.st_blocks = blocks
        self.st_rdev = os.makedev(rdev_major, rdev_minor)
        self.st_atime_ns, btime, self.st_ctime_ns, self.st_mtime_ns = times
        self.st_birthtime_ns = btime if mask & STATX_BTIME else None

    @property
    def st_atime(self) -> float:
        return self.st_atime_ns / 1e9

    @property
    def st_mtime(self) -> float:
        return self.st_mtime_ns / 1e9

    @property
    def st_ctime(self) -> float:
        return self.st_ctime_ns / 1e9

    def is_dir(self) -> bool:
        return _stat.S_ISDIR(self.st_mode)

    def is_file(self) -> bool:
        return _stat.S_ISREG(self.st_mode)

    def __repr__(self) -> str:
        return (
            f"StatxResult(st_mode={self.st_mode:#o}, st_ino={self.st_ino}, "
            f"st_size={self.st_size}, st_nlink={self.st_nlink})"
        )


def out_statx() -> Out:
    return Out(STATX_SIZE)


def r_statx(r: int, out: Out) -> StatxResult:
    return StatxResult(out.buf)


# getdents64 default buffer (Go's os package reads directories 8 KiB at a time; more is fewer
# calls for big directories).
DIRENT_BUFSIZE: Final = 32768
CPUSET_BYTES: Final = 128  # 1024 CPUs, glibc's cpu_set_t
PATH_MAX: Final = _lowlevel.PATH_MAX


def c_int_ref(value: int) -> Out:
    """A C int in memory, passed by address (setsockopt's optval)."""
    o = Out(4)
    o.buf[:] = struct.pack("=i", value)
    return o
