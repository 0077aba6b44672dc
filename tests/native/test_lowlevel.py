"""aiosys.native._lowlevel: raw entry points, Errno, hooks, clocks, epoll/eventfd, pinning."""

from __future__ import annotations

import errno
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from aiosys.native import _lowlevel as L

SYS = L.SYS


class Idx:
    """An object with ``__index__`` (takes the Python fallback of the C fast path)."""

    def __init__(self, v: int) -> None:
        self.v = v

    def __index__(self) -> int:
        return self.v


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    try:
        yield r, w
    finally:
        os.close(r)
        os.close(w)


# --------------------------------------------------------------------------------------------
# Raw calls
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [L.RawSyscall, L.RawSyscall6, L.Syscall, L.Syscall6])
def test_getpid_agrees_with_os(fn: object) -> None:
    assert fn(SYS["getpid"]) == (os.getpid(), 0, 0)  # type: ignore[operator]


def test_gettid_agrees_with_threading() -> None:
    assert L.RawSyscall(SYS["gettid"])[0] == threading.get_native_id()


def test_raw_getppid_getuid_agree_with_os() -> None:
    assert L.RawSyscall(SYS["getppid"])[0] == os.getppid()
    assert L.RawSyscallNoError(SYS["getuid"]) == (os.getuid(), 0)
    assert L.RawSyscallNoError(SYS["geteuid"]) == (os.geteuid(), 0)


def test_errors_come_back_as_minus_one_and_errno() -> None:
    r1, r2, err = L.RawSyscall(SYS["close"], 1 << 20)
    assert (r1, r2, err) == (-1, 0, errno.EBADF)
    assert isinstance(err, L.Errno) and err.name == "EBADF"
    r1, _, err = L.RawSyscall6(SYS["read"], 1 << 20, 0, 0, 0, 0, 0)
    assert (r1, err) == (-1, errno.EBADF)


def test_success_errno_is_falsy_and_shared() -> None:
    _, _, err = L.RawSyscall(SYS["getpid"])
    assert not err and err is L.ERRNO_OK and err.name == "OK"


def test_noerror_never_reads_a_result_as_errno() -> None:
    # Go issue 22924: a uid of 0xfffffffe must come back unchanged.  A failing close returns
    # -EBADF; RawSyscallNoError hands back the same bits as an unsigned word.
    r, r2 = L.RawSyscallNoError(SYS["close"], 1 << 20)
    assert (r, r2) == ((1 << 64) - errno.EBADF, 0)
    assert L._RawSyscallNoError_py(SYS["close"], 1 << 20) == (r, 0)


def test_raw_and_python_paths_agree() -> None:
    for trap, args in [("getpid", ()), ("close", (1 << 20,)), ("fcntl", (1 << 20, 1, 0))]:
        assert L.RawSyscall(SYS[trap], *args) == L._RawSyscall_py(SYS[trap], *args)
        assert L.RawSyscall6(SYS[trap], *args) == L._RawSyscall6_py(SYS[trap], *args)


def test_index_objects_keywords_and_uintptr_words_are_accepted() -> None:
    assert L.RawSyscall(Idx(SYS["getpid"]))[0] == os.getpid()
    assert L.RawSyscall(SYS["close"], a1=Idx(1 << 20))[2] == errno.EBADF
    assert L.RawSyscall6(SYS["close"], a1=1 << 20)[2] == errno.EBADF
    assert L.RawSyscallNoError(trap=SYS["getpid"])[0] == os.getpid()
    # 2**64 - 1 is the uintptr spelling of -1: close(-1) is EBADF, not an overflow.
    assert L.RawSyscall(SYS["close"], (1 << 64) - 1)[2] == errno.EBADF


BAD_RAW_ARGUMENTS = [
    ((-1,), ValueError),
    ((4096,), ValueError),
    ((1 << 70,), ValueError),
    ((1.5,), TypeError),
    (("getpid",), TypeError),
    ((None,), TypeError),
    ((39, 1 << 64), ValueError),
    ((39, -(1 << 63) - 1), ValueError),
    ((39, 2.0), TypeError),
    ((39, b"x"), TypeError),
    ((), TypeError),
]


@pytest.mark.parametrize("fn", [L.RawSyscall, L.RawSyscall6, L.RawSyscallNoError, L.Syscall])
def test_bad_raw_arguments_raise_cleanly(fn: object) -> None:
    for args, exc in BAD_RAW_ARGUMENTS:
        with pytest.raises(exc):
            fn(*args)  # type: ignore[operator]


def test_too_many_arguments_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        L.RawSyscall(39, 0, 0, 0, 0)
    with pytest.raises(TypeError):
        L.RawSyscall6(39, 0, 0, 0, 0, 0, 0, 0)


def test_raw3_raw6_return_the_kernel_value() -> None:
    assert L.raw3(SYS["close"], 1 << 20) == -errno.EBADF
    assert L.raw6(SYS["getpid"]) == os.getpid()
    assert L.raw3(SYS["close"], Idx(1 << 20)) == -errno.EBADF
    assert L.check(5) == 5
    with pytest.raises(OSError) as ei:
        L.check(-errno.ENOENT, "f")
    assert isinstance(ei.value, FileNotFoundError) and ei.value.filename == "f"


def test_noerror0_and_bound_functions() -> None:
    assert L.noerror0(SYS["getpid"]) == os.getpid()
    getpid = L.bind_noerror0(SYS["getpid"])
    assert getpid() == os.getpid()
    for bad in (-1, 4096, "x", 1.0):
        with pytest.raises((ValueError, TypeError)):
            L.noerror0(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            L.bind_noerror0(bad)  # type: ignore[arg-type]


def test_sys_numbers_come_from_the_headers() -> None:
    assert SYS["read"] >= 0 and SYS["getpid"] != SYS["gettid"]
    assert len(SYS) > 300
    assert L.USES_TRAP_INSTRUCTION in (True, False)


# --------------------------------------------------------------------------------------------
# Errno
# --------------------------------------------------------------------------------------------


def test_errno_is_an_int_with_name_strerror_and_exception() -> None:
    e = L.errno_of(errno.ENOENT)
    assert e == errno.ENOENT and isinstance(e, int)
    assert e.name == "ENOENT" and e.strerror == os.strerror(errno.ENOENT)
    exc = e.exception("path")
    assert isinstance(exc, FileNotFoundError) and exc.filename == "path"
    assert isinstance(L.errno_of(errno.EAGAIN).exception(), BlockingIOError)
    assert isinstance(L.errno_of(errno.EINTR).exception(), InterruptedError)
    assert repr(e) == "Errno(2, ENOENT)" and str(e) == repr(e)
    assert L.errno_of(4000).name == "E4000"
    assert L.errno_of(errno.ENOENT) is L.errno_of(errno.ENOENT)
    assert L.oserror(errno.EPERM).errno == errno.EPERM


@pytest.mark.parametrize("bad", [-1, 4096])
def test_errno_of_rejects_out_of_range(bad: int) -> None:
    with pytest.raises(ValueError):
        L.errno_of(bad)


# --------------------------------------------------------------------------------------------
# Syscall hooks (entersyscall/exitsyscall)
# --------------------------------------------------------------------------------------------


@pytest.fixture
def counting_hooks() -> Iterator[object]:
    # Importing the scheduler installs its own entersyscall/exitsyscall; put the counting
    # hooks back for this test only, whatever ran before it.
    previous = (L._enter_hook, L._exit_hook)
    L.set_syscall_hooks(None, None)
    try:
        yield L.counting_hooks
    finally:
        L.set_syscall_hooks(*previous)


@pytest.mark.usefixtures("counting_hooks")
def test_syscall_notifies_the_counting_hooks_raw_does_not() -> None:
    h = L.counting_hooks
    e0, x0 = h.entered, h.exited
    L.Syscall(SYS["getpid"])
    L.Syscall6(SYS["close"], 1 << 20)
    assert (h.entered - e0, h.exited - x0) == (2, 2)
    L.RawSyscall(SYS["getpid"])
    L.RawSyscall6(SYS["getpid"])
    L.RawSyscallNoError(SYS["getpid"])
    assert (h.entered - e0, h.exited - x0) == (2, 2)
    L.syscall_word6(SYS["getpid"], 0, 0, 0, 0, 0, 0)
    assert (h.entered - e0, h.exited - x0) == (3, 3)


@pytest.mark.usefixtures("counting_hooks")
@pytest.mark.usefixtures("counting_hooks")  # restores whatever hooks were installed
def test_installed_hooks_see_every_call_and_exit_runs_on_errors() -> None:
    seen: list[tuple[str, object]] = []

    def enter(trap: int) -> object:
        seen.append(("enter", trap))
        return ("token", trap)

    def exit(token: object) -> None:
        seen.append(("exit", token))

    L.set_syscall_hooks(enter, exit)
    try:
        L.Syscall(SYS["close"], 1 << 20)
        with pytest.raises(TypeError):
            L.Syscall6(SYS["getpid"], "bad")  # type: ignore[arg-type]
    finally:
        L.set_syscall_hooks(None, None)
    trap = SYS["close"]
    assert seen[:2] == [("enter", trap), ("exit", ("token", trap))]
    assert seen[2:] == [("enter", SYS["getpid"]), ("exit", ("token", SYS["getpid"]))]
    before = L.counting_hooks.entered
    L.Syscall(SYS["getpid"])
    assert L.counting_hooks.entered == before + 1  # the counters are back


def test_hooks_are_installed_in_pairs() -> None:
    with pytest.raises(ValueError):
        L.set_syscall_hooks(lambda t: None, None)
    with pytest.raises(ValueError):
        L.set_syscall_hooks(None, lambda t: None)


# --------------------------------------------------------------------------------------------
# Clocks
# --------------------------------------------------------------------------------------------


def test_nanotime_is_clock_monotonic() -> None:
    for _ in range(100):
        a = time.monotonic_ns()
        b = L.nanotime()
        c = time.monotonic_ns()
        assert a <= b <= c
    for _ in range(100):
        a = L.nanotime_cffi()
        b = L.nanotime()
        assert a <= b


def test_walltime_is_clock_realtime() -> None:
    a = time.time_ns()
    b = L.walltime()
    c = time.time_ns()
    # CLOCK_REALTIME may be stepped between the reads; a step is not what this checks.
    assert a <= b <= c or abs(b - a) < 10**9
    assert abs(L.walltime_cffi() - b) < 10**9 * 60


def test_nanotime_never_goes_backwards() -> None:
    last = L.nanotime()
    for _ in range(10000):
        now = L.nanotime()
        assert now >= last
        last = now


def test_vdso_is_mapped() -> None:
    assert L.VDSO_PRESENT


# --------------------------------------------------------------------------------------------
# epoll / eventfd stubs
# --------------------------------------------------------------------------------------------


def test_epoll_reports_readiness_with_data(pipe: tuple[int, int]) -> None:
    r, w = pipe
    ep = L.epoll_create1()
    try:
        buf = L.EventBuffer(4)
        L.epoll_ctl(ep, L.EPOLL_CTL_ADD, r, L.EPOLLIN | L.EPOLLET, (1 << 64) - 1)
        assert L.epoll_wait(ep, buf, 0) == 0
        os.write(w, b"x")
        assert L.epoll_wait(ep, buf, -1) == 1
        events, data = buf.pairs(1)
        assert events & L.EPOLLIN and data == (1 << 64) - 1
        # Edge-triggered: no new edge, no event.
        assert L.epoll_wait(ep, buf, 0) == 0
        L.epoll_ctl(ep, L.EPOLL_CTL_MOD, r, L.EPOLLIN, 7)
        assert L.epoll_wait(ep, buf, 0) == 1 and buf.pairs(1)[1] == 7
        L.epoll_ctl(ep, L.EPOLL_CTL_DEL, r)
        assert L.epoll_wait(ep, buf, 0) == 0
    finally:
        os.close(ep)


@pytest.mark.skipif(not L.HAVE_EPOLL_PWAIT2, reason="kernel without epoll_pwait2")
def test_epoll_pwait2_takes_nanosecond_timeouts(pipe: tuple[int, int]) -> None:
    r, w = pipe
    ep = L.epoll_create1()
    try:
        buf = L.EventBuffer(1)
        L.epoll_ctl(ep, L.EPOLL_CTL_ADD, r, L.EPOLLIN, 3)
        assert L.epoll_pwait2(ep, buf, 0) == 0
        assert L.epoll_pwait2(ep, buf, 50_000) == 0  # 50 µs: no rounding up to a ms needed
        os.write(w, b"x")
        assert L.epoll_pwait2(ep, buf, -1) == 1 and buf.pairs(1) == [L.EPOLLIN, 3]
    finally:
        os.close(ep)


def test_epoll_wait_returns_zero_on_eintr(pipe: tuple[int, int]) -> None:
    r, _ = pipe
    ep = L.epoll_create1()
    calls: list[int] = []
    old = signal.signal(signal.SIGALRM, lambda *_: calls.append(1))
    try:
        L.epoll_ctl(ep, L.EPOLL_CTL_ADD, r, L.EPOLLIN)
        buf = L.EventBuffer(1)
        signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)  # repeats: never missed
        n = L.epoll_wait(ep, buf, 30_000)  # the alarm interrupts it: 0, not InterruptedError
        assert n == 0
        if L.HAVE_EPOLL_PWAIT2:
            signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
            assert L.epoll_pwait2(ep, buf, 30 * 10**9) == 0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        os.close(ep)
    assert calls


def test_epoll_bad_arguments_are_errors_not_crashes(pipe: tuple[int, int]) -> None:
    r, _ = pipe
    buf = L.EventBuffer(2)
    with pytest.raises(OSError) as ei:
        L.epoll_wait(1 << 20, buf, 0)
    assert ei.value.errno == errno.EBADF
    with pytest.raises(OSError) as ei:
        L.epoll_wait(r, buf, 0)  # not an epoll fd
    assert ei.value.errno == errno.EINVAL
    with pytest.raises(OSError) as ei:
        L.epoll_pwait2(r, buf, 0)
    assert ei.value.errno in (errno.EINVAL, errno.ENOSYS)
    with pytest.raises(OSError) as ei:
        L.epoll_create1(-1)
    assert ei.value.errno == errno.EINVAL
    ep = L.epoll_create1()
    try:
        with pytest.raises(OSError) as ei:
            L.epoll_ctl(ep, 99, r, L.EPOLLIN)
        assert ei.value.errno == errno.EINVAL
        with pytest.raises(OSError) as ei:
            L.epoll_ctl(ep, L.EPOLL_CTL_DEL, r)
        assert ei.value.errno == errno.ENOENT
        with pytest.raises(ValueError):
            L.epoll_ctl(ep, L.EPOLL_CTL_ADD, r, L.EPOLLIN, -1)
        with pytest.raises(ValueError):
            L.epoll_wait(ep, buf, 1 << 40)
        with pytest.raises(TypeError):
            L.epoll_wait(ep, "buf", 0)  # type: ignore[arg-type]
    finally:
        os.close(ep)


def test_epoll_on_a_regular_file_is_eperm(tmp_path: object) -> None:
    fd = os.open(os.devnull, os.O_RDONLY)
    ep = L.epoll_create1()
    try:
        path = os.path.join(str(tmp_path), "f")
        with open(path, "wb"):
            pass
        f = os.open(path, os.O_RDONLY)
        try:
            with pytest.raises(PermissionError):
                L.epoll_ctl(ep, L.EPOLL_CTL_ADD, f, L.EPOLLIN)
        finally:
            os.close(f)
    finally:
        os.close(ep)
        os.close(fd)


@pytest.mark.parametrize(
    "cap, exc",
    [(0, ValueError), (L.EPOLL_MAXEVENTS + 1, ValueError), (1.0, TypeError), (True, TypeError)],
)
def test_event_buffer_validates_capacity(cap: object, exc: type) -> None:
    with pytest.raises(exc):
        L.EventBuffer(cap)  # type: ignore[arg-type]


def test_eventfd_counts_and_reports_empty() -> None:
    fd = L.eventfd()
    try:
        with pytest.raises(BlockingIOError):
            L.eventfd_read(fd)
        L.eventfd_write(fd, 2)
        L.eventfd_write(fd)
        assert L.eventfd_read(fd) == 3
        with pytest.raises(BlockingIOError):
            L.eventfd_read(fd)
        L.eventfd_write(fd, (1 << 64) - 2)
        with pytest.raises(BlockingIOError):  # counter full: EAGAIN, harmless for a wakeup
            L.eventfd_write(fd, 1)
    finally:
        os.close(fd)
    with pytest.raises(OSError) as ei:
        L.eventfd_read(1 << 20)
    assert ei.value.errno == errno.EBADF
    with pytest.raises(OSError) as ei:
        L.eventfd(0, -1)
    assert ei.value.errno == errno.EINVAL


def test_eventfd_semaphore_mode() -> None:
    fd = L.eventfd(3, L.EFD_CLOEXEC | L.EFD_NONBLOCK | L.EFD_SEMAPHORE)
    try:
        assert [L.eventfd_read(fd) for _ in range(3)] == [1, 1, 1]
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------
# preadv2 / pwritev2 and pinning
# --------------------------------------------------------------------------------------------


def test_preadv2_pwritev2_round_trip(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "f")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        assert L.pwritev2(fd, b"hello world", 0) == 11
        buf = bytearray(5)
        assert L.preadv2(fd, buf, 6) == 5 and buf == b"world"
        n = L.preadv2(fd, buf, 0, L.RWF_NOWAIT)
        assert n == 5 and buf == b"hello"  # just written: in the page cache
        cbuf = L.from_buffer(bytearray(4), True)
        assert L.preadv2_into(fd, cbuf, 4, 0, 0) == 4
        assert L.preadv2_into(1 << 20, cbuf, 4, 0, 0) == -errno.EBADF
        with pytest.raises(TypeError):
            L.preadv2(fd, b"read-only", 0)
        with pytest.raises(OSError):
            L.preadv2(fd, buf, 0, 1 << 20)  # unknown flag: EOPNOTSUPP
    finally:
        os.close(fd)


def test_pinning_rejects_non_buffers_and_read_only_targets() -> None:
    with pytest.raises(TypeError):
        L.pin_buffer("text", writable=False)
    with pytest.raises(TypeError):
        L.pin_buffer(12, writable=False)
    with pytest.raises(TypeError):
        L.pin_buffer(b"ro", writable=True)
    with pytest.raises(TypeError):
        L.pin_buffer(memoryview(b"ro"), writable=True)
    ba = bytearray(b"abc")
    p = L.pin_buffer(ba, writable=True)
    assert p.size == 3 and p.addr != 0
    with pytest.raises(BufferError):
        ba.extend(b"d")  # pinned: cannot move while the kernel may use it
    p.release()
    p.release()
    ba.extend(b"d")
    with pytest.raises(ValueError):
        L.pin_path("a\0b")
    with pytest.raises(TypeError):
        L.pin_path(3)
    assert L.read_memory(L.pin_path("abc")) == b"abc"
    with pytest.raises(ValueError):
        L.alloc(-1)
    with pytest.raises(ValueError):
        L.read_memory(L.alloc(4), 5)


def test_socket_pair_through_raw_calls() -> None:
    a, b = socket.socketpair()
    try:
        data = b"ping"
        p = L.pin_buffer(data, writable=False)
        r, _, err = L.RawSyscall(SYS["write"], a.fileno(), p.addr, p.size)
        assert (r, err) == (4, 0)
        assert b.recv(10) == data
    finally:
        a.close()
        b.close()
