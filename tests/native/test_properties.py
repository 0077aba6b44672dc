"""Property tests: random types and values thrown at the typed wrappers and the raw calls.

Only clean exceptions may come out (TypeError, ValueError, OSError), never a crash, and no
call may touch anything real: syscalls are made only with safe traps (getpid), on fds that
cannot be open (>= 2**20 with RLIMIT_NOFILE far below), or not at all (``prepare_*`` makes no
syscall, so every table entry, path-taking ones included, is fuzzed through it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiosys.native import _lowlevel as L
from aiosys.native import zsyscall as z
from aiosys.native.prepared import Prepared

CLEAN = (TypeError, ValueError, OSError)
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
pytestmark = pytest.mark.skipif(
    NOFILE != resource.RLIM_INFINITY and NOFILE >= 1 << 20,
    reason="fds >= 2**20 could be open here",
)


class Weird:
    """Neither an int nor a buffer nor a path."""


class BadIndex:
    def __index__(self) -> int:
        raise RuntimeError("never converted: a clean TypeError/ValueError must come first")


ints = st.one_of(
    st.integers(min_value=-(1 << 70), max_value=1 << 70),
    st.sampled_from([0, -1, -100, 1 << 31, 1 << 32, (1 << 63) - 1, 1 << 63, (1 << 64) - 1]),
)
anything = st.one_of(
    ints,
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.binary(max_size=20).map(bytearray),
    st.binary(max_size=20).map(memoryview),
    st.lists(st.binary(max_size=8), max_size=4),
    st.lists(st.binary(max_size=8).map(bytearray), max_size=4),
    st.tuples(st.text(max_size=10), ints),
    st.tuples(st.text(max_size=10), ints, ints, ints),
    st.just(Weird()),
    st.builds(object),
)
bad_fds = st.one_of(
    st.integers(min_value=1 << 20, max_value=(1 << 31) - 1),
    st.integers(max_value=-1),
    st.integers(min_value=1 << 31),
)


@SETTINGS
@given(name=st.sampled_from(sorted(z.TABLE)), data=st.data())
def test_prepare_of_every_entry_takes_anything_cleanly(name: str, data: st.DataObject) -> None:
    e = z.TABLE[name]
    nparams = len(e.params)
    nargs = data.draw(st.integers(min_value=max(nparams - 2, 0), max_value=nparams + 1))
    args = [data.draw(anything) for _ in range(nargs)]
    try:
        p = e.prepare(*args)
    except CLEAN:
        return
    assert isinstance(p, Prepared)
    assert len(p.args) == 6
    assert all(isinstance(a, int) and -(1 << 63) <= a < 1 << 63 for a in p.args)
    assert p.trap == e.trap and p.trap >= 0


@SETTINGS
@given(
    name=st.sampled_from(
        [
            "close",
            "fsync",
            "fdatasync",
            "fstat",
            "getdents64",
            "dup",
            "fcntl_getfl",
            "read",
            "write",
            "pread64",
            "pwrite64",
            "readv",
            "writev",
            "preadv2",
            "pwritev2",
            "ftruncate",
            "flock",
            "fchmod",
            "shutdown",
            "listen",
            "getsockname",
            "getpeername",
            "accept4",
            "recvfrom",
            "sendto",
            "getsockopt",
            "epoll_wait",
        ]
    ),
    fd=st.one_of(bad_fds, st.just(Weird()), st.floats(), st.text(max_size=3)),
    data=st.data(),
)
def test_fd_calls_on_fds_that_cannot_be_open(name: str, fd: Any, data: st.DataObject) -> None:
    e = z.TABLE[name]
    rest = [data.draw(anything) for _ in range(len(e.params) - 1)]
    fn = getattr(z, name)
    try:
        fn(fd, *rest)
    except CLEAN as exc:
        if isinstance(exc, OSError):
            # The fd is bad (checked first), or an argument was refused by the kernel before
            # it looked at the fd.
            assert exc.errno in (errno.EBADF, errno.EINVAL), exc
    else:
        # Linux >= 5.15 answers flock(any fd, LOCK_MAND|...) with 0 before looking at the fd
        # (LOCK_MAND is deprecated and ignored); nothing else may succeed on a closed fd.
        assert name == "flock", name


@SETTINGS
@given(args=st.lists(ints, max_size=3))
def test_raw_getpid_ignores_any_extra_words(args: list[int]) -> None:
    fits = all(-(1 << 63) <= a < 1 << 64 for a in args)
    try:
        r = L.RawSyscall(L.SYS["getpid"], *args)
    except ValueError:
        assert not fits
        return
    assert fits and r == (os.getpid(), 0, 0)
    assert L.RawSyscallNoError(L.SYS["getpid"], *args) == (os.getpid(), 0)


@SETTINGS
@given(fd=st.integers(min_value=1 << 20, max_value=(1 << 31) - 1), words=st.lists(ints, max_size=5))
def test_raw_calls_on_closed_fds_are_ebadf(fd: int, words: list[int]) -> None:
    # The kernel checks the fd before touching any pointer argument: random words are safe.
    words = [w % (1 << 64) for w in words]
    for trap in ("close", "read", "write", "fstat", "fsync"):
        assert L.RawSyscall(L.SYS[trap], fd, *words[:2]) == (-1, 0, errno.EBADF)
    # pread64/pwrite64 check a negative offset (EINVAL) before the fd.
    assert L.RawSyscall6(L.SYS["pread64"], fd, *words)[2] in (errno.EBADF, errno.EINVAL)
    assert L.Syscall6(L.SYS["pwrite64"], fd, *words)[2] in (errno.EBADF, errno.EINVAL)


@SETTINGS
@given(trap=anything, args=st.lists(anything, max_size=7))
def test_raw_calls_reject_non_words_cleanly(trap: Any, args: list[Any]) -> None:
    # Only traps that do nothing harmful may run: getpid, or a close of a closed fd.
    if isinstance(trap, int) and not isinstance(trap, bool):
        trap = L.SYS["getpid"] if trap % 2 else L.SYS["close"]
        args = [1 << 20, *args]
    for fn in (L.RawSyscall, L.RawSyscall6, L.RawSyscallNoError, L.Syscall, L.Syscall6):
        with contextlib.suppress(CLEAN):
            fn(trap, *args)


@SETTINGS
@given(value=anything)
def test_marshallers_reject_cleanly(value: Any) -> None:
    from aiosys.native import _marshal as m

    for fn in (
        m.fd,
        m.dirfd,
        m.c_int,
        m.c_uint,
        m.c_long,
        m.c_ulong,
        m.size,
        m.off,
        m.offpos,
        m.mode,
        m.rbuf,
        m.wbuf,
        m.path,
        m.riov,
        m.wiov,
        m.sockaddr,
        m.timespec,
        m.maxevents,
        m.fcntl_cmd,
        m.map_flags,
        m.mapping,
        m.u64,
        m.timeout_spec,
    ):
        with contextlib.suppress(CLEAN):
            fn(value)


def test_index_objects_that_raise_propagate_without_a_syscall() -> None:
    with pytest.raises(RuntimeError):
        z.close(BadIndex())  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        L.RawSyscall(L.SYS["getpid"], BadIndex())  # type: ignore[arg-type]
