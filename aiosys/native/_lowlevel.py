"""The one Python module that touches the compiled module's ``ffi`` and ``lib`` for syscalls,
epoll, eventfd and clocks.  (The C M pool has its own binding, ``_mpool.py``: one module per C
family keeps both small.)  Everything it hands upward is a Python type; every failure is an
``OSError`` subclass with the kernel's errno, a ``TypeError`` or a ``ValueError``.

Go's conventions are kept where they make sense in Python:

* The raw entry points return Go's triple ``(r1, r2, errno)``.  ``errno`` is an :class:`Errno`
  (falsy when 0, like Go's ``err != 0`` test).  On failure ``r1`` is -1.  Linux returns a
  single value on amd64 and arm64, so ``r2`` is always 0: it is kept for Go's shape only.
* A kernel return in [-4095, -1] is ``-errno`` (Go's ``r1 > -4096`` test).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as _errno_mod
import os
from collections.abc import Callable
from typing import Any, Final

from ._native import ffi, lib

__all__ = [
    "Errno",
    "EventBuffer",
    "Syscall",
    "Syscall6",
    "RawSyscall",
    "RawSyscall6",
    "RawSyscallNoError",
    "SYS",
    "nanotime",
    "walltime",
]

_MAX_ERRNO: Final = 4095
_U64: Final = 1 << 64
_I64_MAX: Final = (1 << 63) - 1


# --------------------------------------------------------------------------------------------
# Errno
# --------------------------------------------------------------------------------------------


class Errno(int):
    """A kernel error number, like Go's ``syscall.Errno``: an ``int`` that is falsy when 0.

    ``Errno(2).name == "ENOENT"``; ``Errno(2).exception()`` is a ``FileNotFoundError``.
    """

    __slots__ = ()

    @property
    def name(self) -> str:
        return _errno_mod.errorcode.get(int(self), f"E{int(self)}") if self else "OK"

    @property
    def strerror(self) -> str:
        return os.strerror(int(self))

    def exception(self, filename: object = None) -> OSError:
        """The matching ``OSError`` subclass (``OSError(ENOENT, ...)`` is FileNotFoundError)."""
        if filename is None:
            return OSError(int(self), self.strerror)
        return OSError(int(self), self.strerror, filename)

    def __repr__(self) -> str:
        return f"Errno({int(self)}, {self.name})"

    __str__ = __repr__


# One shared instance per value: building an int subclass costs more than the syscall.
_ERRNO: Final[tuple[Errno, ...]] = tuple(Errno(i) for i in range(_MAX_ERRNO + 1))
ERRNO_OK: Final = _ERRNO[0]


def errno_of(value: int) -> Errno:
    """The cached :class:`Errno` for ``value`` (0..4095)."""
    if not 0 <= value <= _MAX_ERRNO:
        raise ValueError(f"errno out of range: {value}")
    return _ERRNO[value]


def oserror(err: int, filename: object = None) -> OSError:
    return _ERRNO[err].exception(filename)


def out_of_range(exc: OverflowError) -> ValueError:
    """cffi's ``OverflowError`` for a number that does not fit its C type, as the
    ``ValueError`` the typed API promises (a bad value, not an arithmetic error)."""
    return ValueError(f"argument out of range: {exc}")


def check(r: int, filename: object = None) -> int:
    """Turn a raw kernel return into its value, or raise the matching ``OSError``."""
    if -_MAX_ERRNO <= r < 0:
        raise _ERRNO[-r].exception(filename)
    return r


# --------------------------------------------------------------------------------------------
# Syscall numbers (from <sys/syscall.h> at build time)
# --------------------------------------------------------------------------------------------

SYS: Final[dict[str, int]] = {
    ffi.string(lib.AIOSYS_SYS_NAMES[i]).decode(): getattr(
        lib, "SYS_" + ffi.string(lib.AIOSYS_SYS_NAMES[i]).decode()
    )
    for i in range(lib.AIOSYS_SYS_COUNT)
}
USES_TRAP_INSTRUCTION: Final = bool(lib.aiosys_arch_uses_asm())

# --------------------------------------------------------------------------------------------
# Raw entry points
# --------------------------------------------------------------------------------------------

_sys0 = lib.aiosys_syscall0
_sys3 = lib.aiosys_syscall3
_sys6 = lib.aiosys_syscall6
_sys0u = lib.aiosys_syscall0_u  # unsigned result: RawSyscallNoError
_sys3u = lib.aiosys_syscall3_u


def _as_word(value: object) -> int:
    """One syscall argument as a signed machine word.

    Accepts anything with ``__index__`` in [-2**63, 2**64): values of 2**63 and above are
    uintptr-style and wrap to their two's-complement word, as Go's uintptr does.
    """
    if not isinstance(value, int):
        try:
            value = value.__index__()  # type: ignore[attr-defined]
        except AttributeError:
            raise TypeError(
                f"syscall arguments must be integers, not {type(value).__name__}"
            ) from None
    assert isinstance(value, int)
    if -(1 << 63) <= value <= _I64_MAX:
        return value
    if _I64_MAX < value < _U64:
        return value - _U64
    raise ValueError(f"syscall argument out of range for a machine word: {value}")


def _words(args: tuple[object, ...]) -> list[int]:
    return [_as_word(a) for a in args]


def _trap(trap: object) -> int:
    t = _as_word(trap)
    if not 0 <= t < 4096:
        raise ValueError(f"not a syscall number: {t}")
    return t


def raw3(trap: int, a1: int = 0, a2: int = 0, a3: int = 0) -> int:
    """The kernel's raw return (value or -errno); validates arguments only when cffi balks."""
    try:
        return int(_sys3(trap, a1, a2, a3))
    except (OverflowError, TypeError):
        return int(_sys3(_trap(trap), *_words((a1, a2, a3))))


def raw6(
    trap: int, a1: int = 0, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0, a6: int = 0
) -> int:
    try:
        return int(_sys6(trap, a1, a2, a3, a4, a5, a6))
    except (OverflowError, TypeError):
        return int(_sys6(_trap(trap), *_words((a1, a2, a3, a4, a5, a6))))


def _RawSyscall_py(
    trap: int, a1: int = 0, a2: int = 0, a3: int = 0
) -> tuple[int, int, Errno]:
    """:data:`RawSyscall` in Python: the C fast path falls back here for anything but exact
    ints in range (so ``__index__`` objects and uintptr values >= 2**63 are accepted, and bad
    values raise ``TypeError``/``ValueError``).  The cffi call releases the GIL, so
    :func:`Syscall` uses this form."""
    if trap.__class__ is not int or not 0 <= trap < 4096:
        trap = _trap(trap)
    try:
        r = _sys3(trap, a1, a2, a3)
    except (OverflowError, TypeError):
        r = _sys3(trap, *_words((a1, a2, a3)))
    if -_MAX_ERRNO <= r < 0:
        return -1, 0, _ERRNO[-r]
    return r, 0, ERRNO_OK


def _RawSyscall6_py(
    trap: int, a1: int = 0, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0, a6: int = 0
) -> tuple[int, int, Errno]:
    """Six-argument :func:`_RawSyscall_py`."""
    if trap.__class__ is not int or not 0 <= trap < 4096:
        trap = _trap(trap)
    try:
        r = _sys6(trap, a1, a2, a3, a4, a5, a6)
    except (OverflowError, TypeError):
        r = _sys6(trap, *_words((a1, a2, a3, a4, a5, a6)))
    if -_MAX_ERRNO <= r < 0:
        return -1, 0, _ERRNO[-r]
    return r, 0, ERRNO_OK


def _RawSyscallNoError_py(
    trap: int, a1: int = 0, a2: int = 0, a3: int = 0
) -> tuple[int, int]:
    """:data:`RawSyscallNoError` in Python (the C fast path's fallback)."""
    if trap.__class__ is not int or not 0 <= trap < 4096:
        trap = _trap(trap)
    try:
        return _sys3u(trap, a1, a2, a3), 0
    except (OverflowError, TypeError):
        return _sys3u(trap, *_words((a1, a2, a3))), 0


# Scheduler notification.  The native layer cannot import the scheduler (imports point down),
# so the scheduler installs its entersyscall/exitsyscall here.  Until it does, the hooks only
# count, so the hook point itself is observable and tested.
class _CountingHooks:
    __slots__ = ("entered", "exited")

    def __init__(self) -> None:
        self.entered = 0
        self.exited = 0

    def enter(self, trap: int) -> object:
        self.entered += 1
        return None

    def exit(self, token: object) -> None:
        self.exited += 1


# --------------------------------------------------------------------------------------------
# The C fast paths (csrc/fastpath.c)
# --------------------------------------------------------------------------------------------


_UINTPTR: Final = ffi.typeof("uintptr_t")
_CHARARR: Final = ffi.typeof("char[]")


def _fast_defs(
    def_at: Callable[[int], Any] = lib.aiosys_fast_def,
    name_at: Callable[[int], Any] = lib.aiosys_fast_name,
) -> dict[str, int]:
    """A C file's PyMethodDef addresses by name (fastpath.c's by default)."""
    defs: dict[str, int] = {}
    for i in range(64):
        d = def_at(i)
        if d == ffi.NULL:
            break
        defs[ffi.string(name_at(i)).decode()] = int(ffi.cast(_UINTPTR, d))
    return defs


# Builtin functions from fastpath.c's PyMethodDef table.  cffi cannot return PyObject-level
# functions, so PyCFunction_NewEx (CPython's stable ABI) is called through ctypes.pythonapi,
# which holds the GIL.  Two prototypes: without ``self`` (NULL) and with one.
_FAST_DEFS: Final = _fast_defs()
_new_function = ctypes.PYFUNCTYPE(
    ctypes.py_object, ctypes.c_void_p, ctypes.c_void_p, ctypes.py_object
)(("PyCFunction_NewEx", ctypes.pythonapi))
_new_method = ctypes.PYFUNCTYPE(
    ctypes.py_object, ctypes.c_void_p, ctypes.py_object, ctypes.py_object
)(("PyCFunction_NewEx", ctypes.pythonapi))
_FAST: Final[dict[str, Callable[..., Any]]] = {
    name: _new_function(addr, None, __name__) for name, addr in _FAST_DEFS.items()
}
# hotpath.c: the netpoller's per-request calls (hot_read, hot_write, hot_call_soon).
HOT: Final[dict[str, Callable[..., Any]]] = {
    name: _new_function(addr, None, __name__)
    for name, addr in _fast_defs(lib.aiosys_hot_def, lib.aiosys_hot_name).items()
}
# Module-level names too, so that test fault injection (aiosys._faults) can reach them.
hot_read: Final = HOT["hot_read"]
"""``hot_read(fd, n, sock) -> bytes | -errno``: ``preadv2(fd, n, -1, RWF_NOWAIT)``, or for a
socket ``recv(fd, n, MSG_DONTWAIT)``, holding the GIL (it never blocks)."""
hot_pread: Final = HOT["hot_pread"]
"""``hot_pread(fd, n, offset) -> bytes | -errno``: a page-cache read,
``preadv2(fd, n, offset, RWF_NOWAIT)`` holding the GIL (a miss is EAGAIN, never a wait)."""
hot_write: Final = HOT["hot_write"]
"""``hot_write(fd, data, sock) -> count | -errno``: ``pwritev2(fd, data, -1, RWF_NOWAIT)``, or
for a socket ``send(fd, data, MSG_DONTWAIT | MSG_NOSIGNAL)``."""


def bind_noerror0(trap: int) -> Callable[[], int]:
    """A zero-argument builtin making the cannot-fail syscall ``trap`` (its ``self`` is the
    trap): the generated ``getpid()``, as cheap to call as ``os.getpid()``."""
    if trap.__class__ is not int or not 0 <= trap < 4096:
        raise ValueError(f"not a syscall number: {trap!r}")
    fn: Callable[[], int] = _new_method(_FAST_DEFS["noerror_bound"], trap, __name__)
    return fn


_FAST["init"](_ERRNO, _RawSyscall_py, _RawSyscall6_py, _RawSyscallNoError_py)

RawSyscall: Final[Callable[..., tuple[int, int, Errno]]] = _FAST["RawSyscall"]
"""Make a system call with no scheduler notification (Go's ``syscall.RawSyscall``):
``RawSyscall(trap, a1=0, a2=0, a3=0) -> (r1, r2, errno)``.

It runs on the calling thread, holding the GIL (as Go's RawSyscall keeps its P), and must
never block: use it only for calls that return at once.  Arguments are integers; passing a
pointer (an address from ``ffi``) is the caller's responsibility and unsafe.  The typed
wrappers in :mod:`aiosys.native.zsyscall` are the safe API.  (C in csrc/fastpath.c for exact
ints; anything else goes through the same checks in Python.)"""
RawSyscall6: Final[Callable[..., tuple[int, int, Errno]]] = _FAST["RawSyscall6"]
"""Six-argument :data:`RawSyscall`."""
RawSyscallNoError: Final[Callable[..., tuple[int, int]]] = _FAST["RawSyscallNoError"]
"""For calls that cannot fail (getuid, getpid, gettid): ``(r1, 0)`` with ``r1`` the unsigned
word the kernel gave, never read as an errno (Go issue 22924)."""
noerror0: Final[Callable[[int], int]] = _FAST["noerror0"]
"""``noerror0(trap)``: a zero-argument call that cannot fail, as an unsigned int, holding the
GIL (the generated ``getpid()`` is ``functools.partial(noerror0, SYS_getpid)``)."""

counting_hooks: Final = _CountingHooks()
_enter_hook: Callable[[int], object] = counting_hooks.enter
_exit_hook: Callable[[object], None] = counting_hooks.exit


def set_syscall_hooks(
    enter: Callable[[int], object] | None, exit: Callable[[object], None] | None
) -> None:
    """Install the scheduler's entersyscall/exitsyscall (``None`` restores the counters).

    ``enter(trap)`` runs before the call and returns a token; ``exit(token)`` runs after it,
    even when the call fails.
    """
    global _enter_hook, _exit_hook
    if (enter is None) != (exit is None):
        raise ValueError("install both hooks or neither")
    _enter_hook = enter or counting_hooks.enter
    _exit_hook = exit or counting_hooks.exit


def Syscall(trap: int, a1: int = 0, a2: int = 0, a3: int = 0) -> tuple[int, int, Errno]:
    """A system call the scheduler is told about (Go's ``syscall.Syscall``): entersyscall,
    the call on this thread, exitsyscall.  Same arguments and results as :func:`RawSyscall`.
    To run a blocking call without blocking the event loop, ``await aiosys.syscall(...)``."""
    token = _enter_hook(trap)
    try:
        return _RawSyscall_py(trap, a1, a2, a3)
    finally:
        _exit_hook(token)


def Syscall6(
    trap: int, a1: int = 0, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0, a6: int = 0
) -> tuple[int, int, Errno]:
    """Six-argument :func:`Syscall`."""
    token = _enter_hook(trap)
    try:
        return _RawSyscall6_py(trap, a1, a2, a3, a4, a5, a6)
    finally:
        _exit_hook(token)


# The typed wrappers' hot path (aiosys.native.zsyscall, through aiosys.native.prepared).  Their
# arguments are already validated machine words, so they call the C entry points directly:
#   raw_word6(trap, a1..a6) -> the kernel's raw return, no notification (RawSyscall6);
#   syscall_word6(trap, a1..a6) -> the same between the entersyscall/exitsyscall hooks (Syscall6);
#   noerror_word0(trap) / noerror_word3(trap, a1, a2, a3) -> the unsigned result
#   (RawSyscallNoError).  Passing anything but validated words here is the caller's bug.
raw_word6: Final[Callable[[int, int, int, int, int, int, int], int]] = _sys6
noerror_word0: Final[Callable[[int], int]] = _sys0u
noerror_word3: Final[Callable[[int, int, int, int], int]] = _sys3u


def syscall_word6(trap: int, a1: int, a2: int, a3: int, a4: int, a5: int, a6: int) -> int:
    """:func:`Syscall6` for validated words, returning the kernel's raw value (or -errno)."""
    token = _enter_hook(trap)
    try:
        return int(_sys6(trap, a1, a2, a3, a4, a5, a6))
    finally:
        _exit_hook(token)


# --------------------------------------------------------------------------------------------
# Memory handed to the kernel
# --------------------------------------------------------------------------------------------


class Pinned:
    """A Python buffer or C array pinned for the kernel: ``addr`` stays valid, and the object
    cannot be resized, for as long as this object is alive (``ffi.from_buffer`` holds a buffer
    export, which is what makes a ``bytearray`` refuse to resize)."""

    __slots__ = ("_cdata", "_keep", "addr", "size")

    def __init__(self, cdata: Any, addr: int, size: int, keep: Any = None) -> None:
        self._cdata = cdata  # what C calls get: starts at addr, len() == size
        self._keep = keep  # the export that pins the memory, when _cdata does not own one
        self.addr = addr
        self.size = size

    def release(self) -> None:
        """Drop the buffer export now instead of at garbage collection."""
        cd, self._cdata = self._cdata, None
        keep, self._keep = self._keep, None
        for c in (keep, cd):
            if c is not None:
                # ffi.new() arrays refuse release() on older cffi; they are freed by
                # refcount.  A non-owning view (see _pin_memoryview_base) refuses too.
                with contextlib.suppress(TypeError, ValueError):
                    ffi.release(c)


def pin_buffer(obj: object, *, writable: bool) -> Pinned:
    """Pin a bytes-like object.  ``TypeError`` if it is not one, or is read-only when the
    kernel must write into it."""
    if isinstance(obj, str):
        raise TypeError("a bytes-like object is required, not 'str'")
    try:
        # Positional require_writable: cffi parses keywords slowly (1.3 us vs 0.4 us here).
        cd = ffi.from_buffer(_CHARARR, obj, True) if writable else ffi.from_buffer(obj)
    except BufferError as exc:
        raise TypeError(f"a writable bytes-like object is required ({exc})") from None
    except TypeError:
        raise TypeError(
            f"a bytes-like object is required, not {type(obj).__name__!r}"
        ) from None
    addr, size = int(ffi.cast(_UINTPTR, cd)), len(cd)
    if isinstance(obj, memoryview):
        return _pin_memoryview_base(obj, cd, addr, size)
    return Pinned(cd, addr, size)


def _pin_memoryview_base(view: memoryview, cd: Any, addr: int, size: int) -> Pinned:
    """Hold the export on the memory's owner instead of on the memoryview.

    CPython 3.11's memoryview tp_clear drops its managed buffer even while a buffer it
    exported is still held; when the garbage collector then frees a cycle holding both the
    memoryview and that export (an exception's traceback -> frame -> Prepared -> Pinned is
    such a cycle), releasing the export later dereferences NULL: a segfault found by the
    property tests.  The owner (bytes, bytearray, array, mmap ...) keeps the same memory in
    place while exported, so the address taken from the memoryview stays valid.

    The owner's export starts at the owner's first byte, not the view's: C calls get a
    non-owning ``char[size]`` at the view's address instead (a slice ``memoryview(b)[5:]``
    handed the owner's start to the kernel, so ``write_all`` resent bytes it had written
    after a short write: found by the reliability suite's fault-injection I/O tests).
    """
    try:
        owner = view.obj
        if isinstance(owner, memoryview):
            return Pinned(cd, addr, size)
        base = ffi.from_buffer(owner)
    except (TypeError, ValueError, BufferError):
        return Pinned(cd, addr, size)  # an unusual owner: keep the memoryview's export
    start = addr - int(ffi.cast(_UINTPTR, base))
    if not 0 <= start <= len(base) - size:  # not inside its owner's buffer: keep the view's
        ffi.release(base)
        return Pinned(cd, addr, size)
    ffi.release(cd)
    if start == 0 and size == len(base):
        return Pinned(base, addr, size)
    return Pinned(ffi.cast(f"char(*)[{size}]", addr)[0], addr, size, keep=base)


def pin_path(path: object) -> Pinned:
    """A NUL-terminated copy of a str/bytes/PathLike path.  ``ValueError`` on embedded NUL."""
    raw = os.fsencode(path)  # type: ignore[arg-type]  # TypeError for wrong types
    if b"\0" in raw:
        raise ValueError("embedded null byte")
    cd = ffi.new("char[]", raw)
    return Pinned(cd, int(ffi.cast("uintptr_t", cd)), len(raw))


def alloc(nbytes: int) -> Pinned:
    """Zeroed C memory of ``nbytes`` (for struct results such as statx or pipe fds)."""
    if nbytes < 0:
        raise ValueError("negative size")
    try:
        cd = ffi.new("char[]", max(nbytes, 1))
    except OverflowError as exc:
        raise out_of_range(exc) from None
    return Pinned(cd, int(ffi.cast("uintptr_t", cd)), nbytes)


def memread(addr: int, nbytes: int) -> bytes:
    """Copy ``nbytes`` from a raw address (unsafe: for :class:`zsyscall.Mapping`, which
    bounds-checks against the live mapping and its protection first)."""
    return bytes(ffi.buffer(ffi.cast("char *", addr), nbytes))


def memwrite(addr: int, data: object) -> None:
    """Copy a bytes-like object to a raw address (unsafe, as :func:`memread`)."""
    src = ffi.from_buffer(data)
    ffi.memmove(ffi.cast("char *", addr), src, len(src))


def read_memory(p: Pinned, nbytes: int | None = None) -> bytes:
    """Copy ``nbytes`` (default: all) out of pinned memory."""
    n = p.size if nbytes is None else nbytes
    if not 0 <= n <= p.size:
        raise ValueError("read past the end of pinned memory")
    return bytes(ffi.buffer(p._cdata, n))


# --------------------------------------------------------------------------------------------
# Clocks (vDSO)
# --------------------------------------------------------------------------------------------

nanotime: Final[Callable[[], int]] = _FAST["nanotime"]
"""CLOCK_MONOTONIC in nanoseconds, through the vDSO (Go's ``runtime·nanotime``).  A CPython
builtin from csrc/fastpath.c: the cffi call (``nanotime_cffi``) releases and retakes the GIL,
which costs more than the clock read itself."""
walltime: Final[Callable[[], int]] = _FAST["walltime"]
"""CLOCK_REALTIME in nanoseconds, through the vDSO (Go's ``runtime·walltime``)."""
nanotime_cffi: Final[Callable[[], int]] = lib.aiosys_nanotime
walltime_cffi: Final[Callable[[], int]] = lib.aiosys_walltime
VDSO_PRESENT: Final = bool(lib.aiosys_vdso_present())

# --------------------------------------------------------------------------------------------
# preadv2 / pwritev2
# --------------------------------------------------------------------------------------------

RWF_HIPRI: Final[int] = lib.RWF_HIPRI
RWF_DSYNC: Final[int] = lib.RWF_DSYNC
RWF_SYNC: Final[int] = lib.RWF_SYNC
RWF_NOWAIT: Final[int] = lib.RWF_NOWAIT
RWF_APPEND: Final[int] = lib.RWF_APPEND
IOV_MAX: Final[int] = lib.IOV_MAX

_preadv2 = lib.aiosys_preadv2
_pwritev2 = lib.aiosys_pwritev2


def preadv2_into(fd: int, cbuf: Any, nbytes: int, offset: int, flags: int) -> int:
    """Raw preadv2 into an ``ffi.from_buffer`` object: count or -errno, never raises OSError.
    (The scheduler's RWF_NOWAIT fast path: a miss is a value, not an exception.)"""
    return int(_preadv2(fd, cbuf, nbytes, offset, flags))


def from_buffer(obj: object, writable: bool) -> Any:
    """``ffi.from_buffer`` with aiosys's exceptions (for :func:`preadv2_into`)."""
    return pin_buffer(obj, writable=writable)._cdata


def preadv2(fd: int, buf: object, offset: int = -1, flags: int = 0) -> int:
    """Read into ``buf`` at ``offset`` (-1: the file position).  Returns the count."""
    p = pin_buffer(buf, writable=True)
    try:
        return check(int(_preadv2(fd, p._cdata, p.size, offset, flags)))
    except OverflowError as exc:
        raise out_of_range(exc) from None


def pwritev2(fd: int, data: object, offset: int = -1, flags: int = 0) -> int:
    """Write ``data`` at ``offset`` (-1: the file position).  Returns the count."""
    p = pin_buffer(data, writable=False)
    try:
        n = check(int(_pwritev2(fd, p._cdata, p.size, offset, flags)))
    except OverflowError as exc:
        raise out_of_range(exc) from None
    if n > p.size:  # Go issue 61060: never trust a count larger than what was given
        raise OSError(_errno_mod.EIO, f"write reported {n} bytes of {p.size}")
    return n


# --------------------------------------------------------------------------------------------
# epoll and eventfd
# --------------------------------------------------------------------------------------------

EPOLL_MAXEVENTS: Final[int] = lib.AIOSYS_EPOLL_MAXEVENTS
EPOLL_CLOEXEC: Final[int] = lib.EPOLL_CLOEXEC
EPOLL_CTL_ADD: Final[int] = lib.EPOLL_CTL_ADD
EPOLL_CTL_MOD: Final[int] = lib.EPOLL_CTL_MOD
EPOLL_CTL_DEL: Final[int] = lib.EPOLL_CTL_DEL
EPOLLIN: Final[int] = lib.EPOLLIN
EPOLLPRI: Final[int] = lib.EPOLLPRI
EPOLLOUT: Final[int] = lib.EPOLLOUT
EPOLLERR: Final[int] = lib.EPOLLERR
EPOLLHUP: Final[int] = lib.EPOLLHUP
EPOLLRDHUP: Final[int] = lib.EPOLLRDHUP
EPOLLET: Final[int] = lib.EPOLLET & 0xFFFFFFFF
EPOLLONESHOT: Final[int] = lib.EPOLLONESHOT
EPOLLEXCLUSIVE: Final[int] = lib.EPOLLEXCLUSIVE
EFD_CLOEXEC: Final[int] = lib.EFD_CLOEXEC
EFD_NONBLOCK: Final[int] = lib.EFD_NONBLOCK
EFD_SEMAPHORE: Final[int] = lib.EFD_SEMAPHORE


class EventBuffer:
    """A reusable buffer for ``epoll_wait`` results: ``capacity`` (events, data) pairs.

    After a wait that returned ``n``, ``pairs(n)`` is ``[events0, data0, events1, data1, ...]``.
    """

    __slots__ = ("_arr", "_view", "capacity")

    def __init__(self, capacity: int = 256) -> None:
        if capacity.__class__ is not int:
            raise TypeError("capacity must be an int")
        if not 1 <= capacity <= EPOLL_MAXEVENTS:
            raise ValueError(f"capacity must be in 1..{EPOLL_MAXEVENTS}")
        self.capacity = capacity
        self._arr = ffi.new("uint64_t[]", 2 * capacity)
        self._view = memoryview(ffi.buffer(self._arr)).cast("Q")

    def pairs(self, n: int) -> list[int]:
        return self._view[: 2 * n].tolist()


def epoll_create1(flags: int = EPOLL_CLOEXEC) -> int:
    try:
        return check(int(lib.aiosys_epoll_create1(flags)))
    except OverflowError as exc:
        raise out_of_range(exc) from None


def epoll_ctl(epfd: int, op: int, fd: int, events: int = 0, data: int = 0) -> None:
    if not 0 <= data < _U64:
        raise ValueError("epoll data must fit in 64 bits")
    try:
        check(int(lib.aiosys_epoll_ctl(epfd, op, fd, events & 0xFFFFFFFF, data)))
    except OverflowError as exc:
        raise out_of_range(exc) from None


_epoll_wait = lib.aiosys_epoll_wait
_epoll_pwait2 = lib.aiosys_epoll_pwait2


def epoll_wait(epfd: int, buf: EventBuffer, timeout_ms: int) -> int:
    """Wait for events into ``buf``; returns how many.  EINTR returns 0 (the caller
    recomputes its timeout).  ``timeout_ms`` < 0 waits forever."""
    try:
        n = _epoll_wait(epfd, buf._arr, buf.capacity, timeout_ms)
    except AttributeError:
        raise TypeError(f"an EventBuffer is required, not {type(buf).__name__}") from None
    except OverflowError as exc:  # no cost unless raised (zero-cost try in 3.11)
        raise out_of_range(exc) from None
    if n < 0:
        raise _ERRNO[-n].exception()
    return int(n)


def epoll_pwait2(epfd: int, buf: EventBuffer, timeout_ns: int) -> int:
    """Like :func:`epoll_wait` with a nanosecond timeout (Linux 5.11+; ``OSError(ENOSYS)``
    before).  ``timeout_ns`` < 0 waits forever."""
    try:
        n = _epoll_pwait2(epfd, buf._arr, buf.capacity, timeout_ns)
    except AttributeError:
        raise TypeError(f"an EventBuffer is required, not {type(buf).__name__}") from None
    except OverflowError as exc:
        raise out_of_range(exc) from None
    if n < 0:
        raise _ERRNO[-n].exception()
    return int(n)


def _probe_epoll_pwait2() -> bool:
    fd = epoll_create1()
    try:
        epoll_pwait2(fd, EventBuffer(1), 0)
        return True
    except OSError as exc:
        if exc.errno in (_errno_mod.ENOSYS, _errno_mod.EPERM):  # EPERM: seccomp-filtered
            return False
        raise
    finally:
        os.close(fd)


HAVE_EPOLL_PWAIT2: Final = _probe_epoll_pwait2()


def eventfd(initval: int = 0, flags: int = EFD_CLOEXEC | EFD_NONBLOCK) -> int:
    try:
        return check(int(lib.aiosys_eventfd(initval, flags)))
    except OverflowError as exc:
        raise out_of_range(exc) from None


def eventfd_write(fd: int, value: int = 1) -> None:
    """Add ``value`` to the counter.  EAGAIN (counter full) is harmless for a wakeup fd:
    the reader is already due to wake."""
    try:
        check(int(lib.aiosys_eventfd_write(fd, value)))
    except OverflowError as exc:
        raise out_of_range(exc) from None


def eventfd_read(fd: int) -> int:
    """Read and reset the counter; ``BlockingIOError`` if it is 0 on a non-blocking fd."""
    try:
        return check(int(lib.aiosys_eventfd_read(fd)))
    except OverflowError as exc:
        raise out_of_range(exc) from None


# --------------------------------------------------------------------------------------------
# Constants from the C headers for the typed wrappers (csrc/consts.*)
# --------------------------------------------------------------------------------------------

_HEADER_CONSTANT_NAMES: Final = (
    "AT_FDCWD",
    "AT_EMPTY_PATH",
    "AT_SYMLINK_NOFOLLOW",
    "AT_REMOVEDIR",
    "O_CLOEXEC",
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
    "SOCK_CLOEXEC",
    "STATX_BASIC_STATS",
    "STATX_BTIME",
    "MAP_FIXED",
    "MAP_FIXED_NOREPLACE",
    "PROT_READ",
    "PROT_WRITE",
    "PROT_EXEC",
    "PROT_NONE",
    "CLOCK_MONOTONIC",
    "CLOCK_REALTIME",
    "RENAME_NOREPLACE",
    "RENAME_EXCHANGE",
)
HEADER_CONSTANTS: Final[dict[str, int]] = {
    name: int(getattr(lib, name))
    for name in _HEADER_CONSTANT_NAMES
}
RLIM_INFINITY: Final[int] = int(lib.AIOSYS_RLIM_INFINITY)
PATH_MAX: Final[int] = int(lib.AIOSYS_PATH_MAX)
