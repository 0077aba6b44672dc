"""Bad input thrown at the native layer's public functions: wrong types, huge and negative
numbers, closed and never-opened fds, read-only and odd buffers, paths with NUL bytes.

Property: every call either returns or raises ``OSError``/``TypeError``/``ValueError``.
Never a crash (the sanitizer build runs this file too), never ``OverflowError`` or
``SystemError`` leaking out of cffi.

Only fds the test created are ever passed (a random fd could be pytest's capture pipe), and
the raw syscall forms only get traps that ignore their arguments.
"""

from __future__ import annotations

import array
import contextlib
import mmap
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _relcounters import budget, record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiosys.native as native
from aiosys.native import _lowlevel as L

CLEAN = (OSError, TypeError, ValueError)

SETTINGS = settings(
    max_examples=budget(60),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)

HUGE = [2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**100, -1, -(2**31) - 1,
        -(2**63), -(2**63) - 1, -(2**100)]
WRONG_TYPES: list[object] = [None, "3", b"3", 3.0, float("nan"), 1j, object(), [], {}, (1,)]

ints = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from(HUGE), st.integers(-5, 70))
anything = st.one_of(ints, st.sampled_from(WRONG_TYPES))


class _Int:
    """An object with ``__index__`` (accepted where ints are)."""

    def __init__(self, v: int) -> None:
        self.v = v

    def __index__(self) -> int:
        return self.v


def _call(fn: Callable[..., Any], *args: Any, allow: tuple[type[BaseException], ...] = ()) -> Any:
    record("native bad inputs tried")
    try:
        return fn(*args)
    except CLEAN + allow:
        return None
    except BaseException as exc:  # the property: anything else is a bug
        pytest.fail(f"{fn.__name__}{args!r} raised {type(exc).__name__}: {exc}")


class Fds:
    """The only fds these tests pass: a temp file, a pipe, an eventfd, an epoll fd watching
    an always-ready eventfd (so no wait can block), a closed fd and never-opened numbers."""

    def __init__(self) -> None:
        self.tmp = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.file = self.tmp.fileno()
        os.write(self.file, b"0123456789" * 10)
        self.rpipe, self.wpipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.efd = L.eventfd(0)
        self.ready = L.eventfd(1)
        self.epfd = L.epoll_create1()
        L.epoll_ctl(self.epfd, L.EPOLL_CTL_ADD, self.ready, L.EPOLLIN, 7)
        r, w = os.pipe()
        os.close(r)
        os.close(w)
        self.closed = r  # closed now; nothing in this single-threaded test reopens it
        self.never = 1 << 20  # above any RLIMIT_NOFILE here: EBADF

    def real(self) -> list[int]:
        return [self.file, self.rpipe, self.wpipe, self.efd, self.epfd]

    def bad(self) -> list[object]:
        return [self.closed, self.never, -1, -(2**31), 2**31, 2**32 + self.file, 2**64,
                -(2**70), None, "0", 0.0, _Int(self.never)]

    def close(self) -> None:
        for fd in (self.rpipe, self.wpipe, self.efd, self.ready, self.epfd):
            os.close(fd)
        self.tmp.close()


@contextlib.contextmanager
def fds() -> Iterator[Fds]:
    f = Fds()
    try:
        yield f
    finally:
        f.close()


def buffers(writable_ok: bool = True) -> st.SearchStrategy[object]:
    base: list[Callable[[], object]] = [
        lambda: b"abc",
        lambda: b"",
        lambda: bytearray(16),
        lambda: bytearray(),
        lambda: memoryview(b"xyz"),
        lambda: memoryview(bytearray(8))[2:5],
        lambda: memoryview(bytearray(8))[::2],  # not contiguous
        lambda: memoryview(bytearray(8)).cast("I"),
        lambda: array.array("i", [1, 2, 3]),
        lambda: "text",
        lambda: 5,
        lambda: None,
        lambda: [1, 2],
        lambda: mmap.mmap(-1, 4096),
    ]
    return st.sampled_from(base).map(lambda make: make())


def _fd_choice(f: Fds, i: int) -> object:
    pool = f.real() + f.bad()
    return pool[i % len(pool)]


# ---------------------------------------------------------------------------- preadv2/pwritev2


@SETTINGS
@given(fdi=st.integers(0, 100), buf=buffers(), offset=anything, flags=anything)
def test_preadv2_bad_input_is_a_clean_exception(
    fdi: int, buf: object, offset: object, flags: object
) -> None:
    with fds() as f:
        fd = _fd_choice(f, fdi)
        if fd == f.wpipe:
            fd = f.rpipe
        n = _call(L.preadv2, fd, buf, offset, flags)
        if isinstance(n, int):
            assert 0 <= n <= len(memoryview(buf).cast("B")) if n else True  # type: ignore[arg-type]


@SETTINGS
@given(fdi=st.integers(0, 100), buf=buffers(), offset=anything, flags=anything)
def test_pwritev2_bad_input_is_a_clean_exception(
    fdi: int, buf: object, offset: object, flags: object
) -> None:
    with fds() as f:
        fd = _fd_choice(f, fdi)
        if fd == f.rpipe:
            fd = f.wpipe
        n = _call(L.pwritev2, fd, buf, offset, flags)
        if isinstance(n, int):
            assert 0 <= n <= len(memoryview(buf).cast("B"))  # type: ignore[arg-type]


def test_read_into_read_only_buffer_is_type_error() -> None:
    with fds() as f:
        for ro in (b"abcd", memoryview(bytearray(4)).toreadonly()):
            with pytest.raises(TypeError):
                L.preadv2(f.file, ro, 0)


def test_pinned_buffer_cannot_be_resized_until_released() -> None:
    """The kernel writes into a pinned buffer's address: resizing it (which may move it)
    must be refused while the pin is held."""
    buf = bytearray(64)
    pin = L.pin_buffer(buf, writable=True)
    with pytest.raises(BufferError):
        buf.extend(b"x" * 4096)
    with pytest.raises(BufferError):
        del buf[:10]
    pin.release()
    buf.extend(b"x" * 4096)  # released: free to move again
    assert len(buf) == 64 + 4096


# ------------------------------------------------------------------------------ epoll / eventfd


@SETTINGS
@given(flags=anything)
def test_epoll_create1_bad_flags(flags: object) -> None:
    fd = _call(L.epoll_create1, flags)
    if isinstance(fd, int):
        os.close(fd)


@SETTINGS
@given(
    epi=st.integers(0, 100), fdi=st.integers(0, 100), op=anything, events=anything, data=anything
)
def test_epoll_ctl_bad_input(epi: int, fdi: int, op: object, events: object, data: object) -> None:
    with fds() as f:
        epfd = f.epfd if epi % 2 else _fd_choice(f, epi)
        _call(L.epoll_ctl, epfd, op, _fd_choice(f, fdi), events, data)


@SETTINGS
@given(epi=st.integers(0, 100), timeout=anything, cap=st.integers(1, 8), pwait2=st.booleans())
def test_epoll_wait_bad_input_never_blocks(
    epi: int, timeout: object, cap: int, pwait2: bool
) -> None:
    # The epoll fd always has a ready eventfd, so even an infinite timeout returns at once;
    # other fds are not epoll fds (EINVAL) or not fds (EBADF).
    with fds() as f:
        epfd = f.epfd if epi % 2 else _fd_choice(f, epi)
        if epfd in (f.rpipe, f.wpipe, f.efd, f.file) and timeout not in (0,):
            epfd = f.epfd
        buf = L.EventBuffer(cap)
        fn = L.epoll_pwait2 if pwait2 and L.HAVE_EPOLL_PWAIT2 else L.epoll_wait
        n = _call(fn, epfd, buf, timeout)
        if isinstance(n, int):
            assert 0 <= n <= cap


@SETTINGS
@given(cap=anything)
def test_event_buffer_bad_capacity(cap: object) -> None:
    _call(L.EventBuffer, cap)


@SETTINGS
@given(initval=anything, flags=anything)
def test_eventfd_bad_input(initval: object, flags: object) -> None:
    fd = _call(L.eventfd, initval, flags)
    if isinstance(fd, int):
        os.close(fd)


@SETTINGS
@given(fdi=st.integers(0, 100), value=anything, read=st.booleans())
def test_eventfd_read_write_bad_input(fdi: int, value: object, read: bool) -> None:
    with fds() as f:
        fd = _fd_choice(f, fdi)
        if fd == f.file:
            fd = f.efd  # a regular file would accept the 8 bytes: harmless, but not a test
        if read:
            _call(L.eventfd_read, fd)
        else:
            _call(L.eventfd_write, fd, value)


# ---------------------------------------------------------------------------- raw syscall forms

SAFE_TRAPS = [native.SYS["getpid"], native.SYS["gettid"], native.SYS["getuid"],
              native.SYS["sched_yield"], native.SYS["getppid"]]


@SETTINGS
@given(
    trap=st.one_of(st.sampled_from(SAFE_TRAPS), st.sampled_from(HUGE + WRONG_TYPES)),
    args=st.lists(anything, min_size=0, max_size=6),
    which=st.sampled_from(["RawSyscall", "RawSyscall6", "Syscall", "Syscall6",
                           "RawSyscallNoError"]),
)
def test_raw_syscall_forms_with_safe_traps(trap: object, args: list[object], which: str) -> None:
    fn = getattr(native, which)
    nargs = 6 if which.endswith("6") else 3
    r = _call(fn, trap, *args[:nargs])
    if r is not None:
        assert isinstance(r, tuple)
        assert r[0] >= 0 or r[-1]  # a failure always carries an errno


# ------------------------------------------------------------------------------ memory helpers


@SETTINGS
@given(path=st.one_of(st.text(max_size=20), st.binary(max_size=20), st.sampled_from(WRONG_TYPES)))
def test_pin_path_rejects_nul_and_wrong_types(path: object) -> None:
    p = _call(L.pin_path, path)
    raw = path.encode("utf-8", "surrogateescape") if isinstance(path, str) else path
    if isinstance(raw, bytes) and b"\0" in raw:
        assert p is None
    if p is not None:
        p.release()


# Sizes that fail, or small ones: a valid 2 GiB request would really be zeroed, and time
# is the only thing it would test.
alloc_sizes = st.one_of(
    st.integers(-(2**70), -1), st.integers(2**48, 2**70), st.integers(0, 4096),
    st.sampled_from(WRONG_TYPES),
)


@SETTINGS
@given(n=alloc_sizes)
def test_alloc_bad_sizes(n: object) -> None:
    p = _call(L.alloc, n, allow=(MemoryError,))
    if p is not None:
        _call(L.read_memory, p, n)
        p.release()


def test_pinned_memoryview_slice_points_at_its_own_bytes() -> None:
    """A slice ``memoryview(owner)[5:]`` must hand the kernel the slice's address, not the
    owner's first byte (found here: write_all resent already-written bytes after a short
    write, because the pin of the remaining slice started at the owner)."""
    from aiosys.native._native import ffi

    owner = bytearray(range(64))
    for view in (memoryview(owner)[5:], memoryview(owner)[5:9], memoryview(bytes(owner))[60:],
                 memoryview(owner).cast("B")[1:], memoryview(owner)[:0], memoryview(owner)):
        expect = bytes(view)
        p = L.pin_buffer(view, writable=False)
        assert p.size == len(expect)
        assert bytes(ffi.buffer(ffi.cast("char *", p.addr), p.size)) == expect
        cd = L.from_buffer(view, False)
        assert len(cd) == len(expect)
        assert bytes(ffi.buffer(cd, len(cd))) == expect
        p.release()
    with tempfile.TemporaryFile() as tmp:
        data = bytes(range(100))
        assert L.pwritev2(tmp.fileno(), memoryview(data)[10:20], 0) == 10
        assert os.pread(tmp.fileno(), 100, 0) == data[10:20]
        buf = bytearray(30)
        assert L.preadv2(tmp.fileno(), memoryview(buf)[7:12], 0) == 5
        assert bytes(buf[7:12]) == data[10:15] and buf[:7] == bytes(7)
