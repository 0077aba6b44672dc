"""The generated typed wrappers (aiosys.native.zsyscall) against the os/socket modules, their
error paths, and the Prepared protocol the scheduler relies on."""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import resource
import signal
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiosys.native import _lowlevel as L
from aiosys.native import zsyscall as z
from aiosys.native.prepared import EINTR_EMPTY, EINTR_RAISE, EINTR_RETRY, Prepared


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    try:
        yield r, w
    finally:
        for fd in (r, w):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def tmpfile(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    path = tmp_path / "data"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        yield path, fd
    finally:
        os.close(fd)


def _close(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def test_open_read_write_close_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "f"
    fd = z.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    assert not os.get_inheritable(fd)  # O_CLOEXEC always added (PEP 446)
    assert z.write(fd, b"hello ") == 6
    assert z.write(fd, memoryview(b"world")) == 5
    z.close(fd)
    assert path.read_bytes() == b"hello world"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 & ~_umask()
    fd = z.openat(z._m.AT_FDCWD, str(path).encode(), os.O_RDONLY)
    buf = bytearray(64)
    n = z.read(fd, buf)
    assert buf[:n] == b"hello world"
    assert z.read(fd, buf) == 0  # end of file
    z.close(fd)


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_openat_relative_to_a_directory_fd(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"abc")
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = z.openat(dfd, "x", os.O_RDONLY)
        assert os.read(fd, 10) == b"abc"
        os.close(fd)
    finally:
        os.close(dfd)


def test_open_missing_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError) as ei:
        z.open(missing, os.O_RDONLY)
    assert ei.value.filename == missing and ei.value.errno == errno.ENOENT


def test_pread_pwrite_do_not_move_the_position(tmpfile: tuple[Path, int]) -> None:
    _, fd = tmpfile
    assert z.pwrite64(fd, b"0123456789", 0) == 10
    assert os.lseek(fd, 0, os.SEEK_CUR) == 0
    buf = bytearray(4)
    assert z.pread64(fd, buf, 3) == 4 and buf == b"3456"
    assert os.pread(fd, 4, 3) == bytes(buf)
    assert z.pread64(fd, buf, 100) == 0


def test_readv_writev_preadv2_pwritev2(tmpfile: tuple[Path, int]) -> None:
    _, fd = tmpfile
    assert z.writev(fd, [b"ab", bytearray(b"cd"), memoryview(b"ef")]) == 6
    assert z.pwritev2(fd, [b"XY"], 0) == 2
    assert z.pwritev2(fd, [b"!"], -1, L.RWF_APPEND) == 1  # -1: the file position
    os.lseek(fd, 0, os.SEEK_SET)
    a, b = bytearray(3), bytearray(10)
    assert z.readv(fd, [a, b]) == 7 and a + b[:4] == b"XYcdef!"
    c = bytearray(4)
    assert z.preadv2(fd, [c], 2, L.RWF_NOWAIT) == 4 and c == b"cdef"
    assert z.preadv2(fd, []) == 0
    assert z.pwritev2(fd, [b"Q"], 0, L.RWF_DSYNC) == 1


def test_read_into_a_read_only_buffer_is_a_type_error(tmpfile: tuple[Path, int]) -> None:
    _, fd = tmpfile
    for bad in (b"bytes", memoryview(b"ro"), "text", 5, None):
        with pytest.raises(TypeError):
            z.read(fd, bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            z.readv(fd, [bytearray(1), bad])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        z.readv(fd, bytearray(4))  # a buffer is not a sequence of buffers
    with pytest.raises(TypeError):
        z.write(fd, "text")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        z.readv(fd, [bytearray(1)] * (L.IOV_MAX + 1))


def test_negative_offsets_and_lengths_are_value_errors(tmpfile: tuple[Path, int]) -> None:
    _, fd = tmpfile
    with pytest.raises(ValueError):
        z.pread64(fd, bytearray(1), -1)
    with pytest.raises(ValueError):
        z.pwrite64(fd, b"x", -5)
    with pytest.raises(ValueError):
        z.preadv2(fd, [bytearray(1)], -2)
    with pytest.raises(ValueError):
        z.ftruncate(fd, -1)
    with pytest.raises(ValueError):
        z.getdents64(fd, -1)
    with pytest.raises(ValueError):
        z.getdents64(fd, 1 << 40)  # huge result buffer: a clean error, not a MemoryError
    with pytest.raises(ValueError):
        z.pread64(fd, bytearray(1), 1 << 63)


def test_bad_fds_are_ebadf_and_never_truncated() -> None:
    for fd in (-1, -100, 1 << 31, (1 << 32) + 1, 1 << 70):
        with pytest.raises(OSError) as ei:
            z.close(fd)
        assert ei.value.errno == errno.EBADF
    with pytest.raises(OSError) as ei:
        z.close(1 << 20)  # in range but not open: the kernel's EBADF
    assert ei.value.errno == errno.EBADF
    with pytest.raises(TypeError):
        z.close(3.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        z.close("3")  # type: ignore[arg-type]


def test_fsync_fdatasync_ftruncate_fallocate_fchmod(tmpfile: tuple[Path, int]) -> None:
    path, fd = tmpfile
    z.fsync(fd)
    z.fdatasync(fd)
    z.ftruncate(fd, 100)
    assert os.fstat(fd).st_size == 100
    z.fallocate(fd, 0, 0, 4096)
    assert os.fstat(fd).st_size == 4096
    z.fchmod(fd, 0o600)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(ValueError):
        z.fchmod(fd, 0o10000)
    with pytest.raises(ValueError):
        z.fchmod(fd, -1)
    z.sync()


def test_statx_family_agrees_with_os_stat(tmp_path: Path, tmpfile: tuple[Path, int]) -> None:
    path, fd = tmpfile
    os.write(fd, b"x" * 1234)
    link = tmp_path / "link"
    os.symlink(path, link)
    for ours, theirs in [
        (z.stat(path), os.stat(path)),
        (z.fstat(fd), os.fstat(fd)),
        (z.lstat(link), os.lstat(link)),
        (z.stat(link), os.stat(link)),
        (z.statx(z._m.AT_FDCWD, path), os.stat(path)),
    ]:
        for field in (
            "st_mode",
            "st_ino",
            "st_dev",
            "st_nlink",
            "st_uid",
            "st_gid",
            "st_size",
            "st_mtime_ns",
            "st_ctime_ns",
            "st_blocks",
            "st_blksize",
            "st_rdev",
        ):
            assert getattr(ours, field) == getattr(theirs, field), field
        assert ours.st_mtime == pytest.approx(theirs.st_mtime)
        assert ours.st_atime == pytest.approx(theirs.st_atime, abs=1.0)
        assert ours.st_ctime == pytest.approx(theirs.st_ctime)
    st = z.stat(path)
    assert st.is_file() and not st.is_dir() and z.stat(tmp_path).is_dir()
    assert "st_size=1234" in repr(st)
    assert st.st_birthtime_ns is None or st.st_birthtime_ns > 0
    assert stat.S_ISLNK(z.lstat(link).st_mode)


def test_stat_errors_carry_the_filename(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as ei:
        z.stat(tmp_path / "nope")
    assert ei.value.filename == tmp_path / "nope"
    with pytest.raises(OSError) as ei:
        z.fstat(1 << 20)
    assert ei.value.errno == errno.EBADF and ei.value.filename is None
    with pytest.raises(OSError) as ei:
        z.fstat(z._m.AT_FDCWD)  # not a fd: statx's dirfd would stat the cwd
    assert ei.value.errno == errno.EBADF
    with pytest.raises(ValueError):
        z.stat("a\0b")
    with pytest.raises(TypeError):
        z.stat(12)  # type: ignore[arg-type]
    with pytest.raises(OSError) as ei:
        z.stat("x" * 5000)
    assert ei.value.errno == errno.ENAMETOOLONG


def test_getdents64_lists_like_os_listdir(tmp_path: Path) -> None:
    names = {f"f{i}" for i in range(300)} | {"ünï", "sp ace"}
    for n in names:
        (tmp_path / n).touch()
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        seen: list[str] = []
        while batch := z.getdents64(dfd, 1024):
            seen += batch
        assert sorted(seen) == sorted([*os.listdir(tmp_path), ".", ".."])
        os.lseek(dfd, 0, os.SEEK_SET)
        small: list[str] = []
        while batch := z.getdents64(dfd, 40):  # one short entry per call
            small += batch
        assert sorted(small) == sorted(seen)
        os.lseek(dfd, 0, os.SEEK_SET)
        with pytest.raises(OSError) as ei:
            z.getdents64(dfd, 8)  # too small for one entry
        assert ei.value.errno == errno.EINVAL
    finally:
        os.close(dfd)
    fd = os.open(tmp_path / "f1", os.O_RDONLY)
    try:
        with pytest.raises(NotADirectoryError):
            z.getdents64(fd)
    finally:
        os.close(fd)


def test_unlink_rmdir_mkdir_rename_readlink_access(tmp_path: Path) -> None:
    d = tmp_path / "d"
    z.mkdir(d, 0o700)
    assert d.is_dir()
    with pytest.raises(FileExistsError) as ei:
        z.mkdir(d)
    assert ei.value.filename == d
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        z.mkdirat(dfd, "e")
        z.unlinkat(dfd, "e", z._m.AT_REMOVEDIR)
    finally:
        os.close(dfd)
    f = d / "f"
    f.write_bytes(b"1")
    z.rename(f, d / "g")
    assert (d / "g").read_bytes() == b"1"
    (d / "h").write_bytes(b"2")
    with pytest.raises(FileExistsError) as ei:
        z.renameat2(
            z._m.AT_FDCWD, d / "g", z._m.AT_FDCWD, d / "h", L.HEADER_CONSTANTS["RENAME_NOREPLACE"]
        )
    assert ei.value.filename == d / "g" and ei.value.filename2 == d / "h"
    with pytest.raises(FileNotFoundError) as ei:
        z.rename(d / "missing", d / "other")
    assert ei.value.filename2 == d / "other"
    os.symlink("target/path", d / "ln")
    assert z.readlink(d / "ln") == os.readlink(d / "ln") == "target/path"
    assert z.readlinkat(z._m.AT_FDCWD, d / "ln") == "target/path"
    with pytest.raises(OSError) as ei:
        z.readlink(d / "g")
    assert ei.value.errno == errno.EINVAL
    z.access(d / "g", os.R_OK)
    z.faccessat(z._m.AT_FDCWD, d, os.W_OK)
    with pytest.raises(FileNotFoundError):
        z.access(d / "missing", os.F_OK)
    z.unlink(d / "g")
    z.unlink(d / "h")
    z.unlink(d / "ln")
    with pytest.raises(FileNotFoundError):
        z.unlink(d / "g")
    z.rmdir(d)
    assert not d.exists()


def test_flock(tmpfile: tuple[Path, int]) -> None:
    import fcntl

    path, fd = tmpfile
    z.flock(fd, fcntl.LOCK_EX)
    other = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):
            z.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(other)
    z.flock(fd, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------
# fds
# --------------------------------------------------------------------------------------------


def test_dup_dup3_fcntl(pipe: tuple[int, int]) -> None:
    import fcntl

    r, w = pipe
    d = z.dup(r)
    assert d != r and not os.get_inheritable(d)
    d2 = z.dup3(r, d)
    assert d2 == d
    with pytest.raises(OSError) as ei:
        z.dup3(r, r)
    assert ei.value.errno == errno.EINVAL
    os.close(d)
    fl = z.fcntl_getfl(w)
    assert fl == fcntl.fcntl(w, fcntl.F_GETFL)
    z.fcntl_setfl(w, fl | os.O_NONBLOCK)
    assert not os.get_blocking(w)
    assert z.fcntl(w, fcntl.F_GETFD) & fcntl.FD_CLOEXEC == fcntl.fcntl(w, fcntl.F_GETFD) & 1
    assert z.fcntl(w, fcntl.F_GETPIPE_SZ) > 0
    for cmd in (fcntl.F_GETLK, fcntl.F_SETLKW, 12345):
        with pytest.raises(ValueError):
            z.fcntl(w, cmd, 0x1000)  # pointer-taking or unknown commands are refused


def test_pipe2_and_eventfd2() -> None:
    r, w = z.pipe2()
    try:
        assert not os.get_inheritable(r)
        os.write(w, b"x")
        assert os.read(r, 1) == b"x"
    finally:
        _close(r, w)
    r, w = z.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        assert not os.get_blocking(r)
    finally:
        _close(r, w)
    e = z.eventfd2(5)
    try:
        assert L.eventfd_read(e) == 5
    finally:
        os.close(e)
    with pytest.raises(OSError) as ei:
        z.pipe2(-1)
    assert ei.value.errno == errno.EINVAL


# --------------------------------------------------------------------------------------------
# sockets
# --------------------------------------------------------------------------------------------


def test_tcp_listen_connect_accept_send_recv() -> None:
    srv = z.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        z.setsockopt(srv, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        assert z.getsockopt(srv, socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        assert z.getsockopt(srv, socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM
        z.bind(srv, ("127.0.0.1", 0))
        z.listen(srv, 8)
        host, port = z.getsockname(srv)  # type: ignore[misc]
        assert host == "127.0.0.1" and port > 0
        cli = z.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            z.connect(cli, ("127.0.0.1", port))
            conn, peer = z.accept4(srv)
            try:
                assert not os.get_inheritable(conn)
                assert peer == z.getsockname(cli) == z.getpeername(conn)
                assert z.sendto(cli, b"ping") == 4
                buf = bytearray(16)
                n, addr = z.recvfrom(conn, buf)
                assert buf[:n] == b"ping"
                z.shutdown(cli, socket.SHUT_WR)
                assert z.recvfrom(conn, buf) == (0, None) or z.recvfrom(conn, buf)[0] == 0
            finally:
                os.close(conn)
        finally:
            os.close(cli)
    finally:
        os.close(srv)


def test_udp_ipv6_and_unix_addresses(tmp_path: Path) -> None:
    s = z.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        try:
            z.bind(s, ("::1", 0))
        except OSError as exc:
            pytest.skip(f"no IPv6 loopback: {exc}")
        addr = z.getsockname(s)
        assert isinstance(addr, tuple) and addr[0] == "::1" and len(addr) == 4
        assert z.sendto(s, b"hi", 0, addr) == 2
        buf = bytearray(8)
        n, src = z.recvfrom(s, buf)
        assert (bytes(buf[:n]), src) == (b"hi", addr)
    finally:
        os.close(s)
    a, b = z.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    _close(a, b)
    u = z.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        path = str(tmp_path / "sock")
        z.bind(u, path)
        assert z.getsockname(u) == path
        py = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            py.sendto(b"u", path)
            n, _ = z.recvfrom(u, bytearray(4))
            assert n == 1
        finally:
            py.close()
    finally:
        os.close(u)
    ab = z.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        name = b"\0aiosys-test-%d" % os.getpid()
        z.bind(ab, name)
        assert z.getsockname(ab) == name
    finally:
        os.close(ab)


@pytest.mark.parametrize(
    "addr, exc",
    [
        (("localhost", 80), ValueError),  # numeric hosts only: no DNS inside a syscall
        (("1.2.3.4", 70000), ValueError),
        (("1.2.3.4", -1), ValueError),
        ((1234, 80), TypeError),
        (("1.2.3.4",), TypeError),
        (("::1", 1, 0), TypeError),
        (("::zz", 1, 0, 0), ValueError),
        ("x" * 200, ValueError),
        ("a\0b", ValueError),
        (3.5, TypeError),
        (None, TypeError),
    ],
)
def test_bad_socket_addresses_fail_before_the_kernel(addr: object, exc: type) -> None:
    with pytest.raises(exc):
        z.prepare_connect(0, addr)  # type: ignore[arg-type]


def test_socket_errors() -> None:
    with pytest.raises(OSError) as ei:
        z.socket(12345, socket.SOCK_STREAM)
    assert ei.value.errno == errno.EAFNOSUPPORT
    s = z.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(ConnectionRefusedError):
            # Port 1 on loopback: nobody listens (connect on a blocking socket is immediate).
            z.connect(s, ("127.0.0.1", 1))
        with pytest.raises(OSError) as ei:
            z.getpeername(s)
        assert ei.value.errno == errno.ENOTCONN
    finally:
        os.close(s)
    with pytest.raises(OSError) as ei:
        z.getsockopt(0 if False else 1 << 20, socket.SOL_SOCKET, socket.SO_TYPE)
    assert ei.value.errno == errno.EBADF


# --------------------------------------------------------------------------------------------
# epoll
# --------------------------------------------------------------------------------------------


def test_typed_epoll(pipe: tuple[int, int]) -> None:
    r, w = pipe
    ep = z.epoll_create1()
    try:
        z.epoll_ctl(ep, L.EPOLL_CTL_ADD, r, L.EPOLLIN, (1 << 64) - 1)
        assert z.epoll_wait(ep, 8, 0) == []
        os.write(w, b"x")
        assert z.epoll_wait(ep, 8, -1) == [(L.EPOLLIN, (1 << 64) - 1)]
        if L.HAVE_EPOLL_PWAIT2:
            assert z.epoll_pwait2(ep, 1, 10_000) == [(L.EPOLLIN, (1 << 64) - 1)]
            assert z.epoll_pwait2(ep, 1, -1) == [(L.EPOLLIN, (1 << 64) - 1)]
        for bad in (0, -1, L.EPOLL_MAXEVENTS + 1):
            with pytest.raises(ValueError):
                z.epoll_wait(ep, bad, 0)
        with pytest.raises(ValueError):
            z.epoll_ctl(ep, L.EPOLL_CTL_MOD, r, L.EPOLLIN, 1 << 64)
        with pytest.raises(FileNotFoundError):
            z.epoll_ctl(ep, L.EPOLL_CTL_DEL, w)
    finally:
        os.close(ep)


def test_typed_epoll_wait_returns_nothing_on_eintr(pipe: tuple[int, int]) -> None:
    r, _ = pipe
    ep = z.epoll_create1()
    hits: list[int] = []
    old = signal.signal(signal.SIGALRM, lambda *_: hits.append(1))
    try:
        z.epoll_ctl(ep, L.EPOLL_CTL_ADD, r, L.EPOLLIN)
        signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)  # repeats: never missed
        assert z.epoll_wait(ep, 4, 30_000) == []
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        os.close(ep)
    assert hits


# --------------------------------------------------------------------------------------------
# process, time, memory
# --------------------------------------------------------------------------------------------


def test_identity_calls_agree_with_os() -> None:
    assert z.getpid() == os.getpid()
    assert z.getppid() == os.getppid()
    assert z.gettid() == threading.get_native_id()
    assert (z.getuid(), z.geteuid(), z.getgid(), z.getegid()) == (
        os.getuid(),
        os.geteuid(),
        os.getgid(),
        os.getegid(),
    )
    tids: list[int] = []
    t = threading.Thread(target=lambda: tids.append(z.gettid()))
    t.start()
    t.join()
    assert tids[0] != z.gettid()


def test_kill_tgkill_and_signals() -> None:
    hits: list[int] = []
    old = signal.signal(signal.SIGUSR1, lambda *_: hits.append(1))
    try:
        z.kill(os.getpid(), 0)  # existence check
        z.tgkill(os.getpid(), threading.get_native_id(), signal.SIGUSR1)
        for _ in range(1000):
            if hits:
                break
            time.sleep(0.001)
        assert hits
    finally:
        signal.signal(signal.SIGUSR1, old)
    with pytest.raises(ProcessLookupError):
        z.kill(0x3FFFFFFF, 0)
    with pytest.raises(OSError) as ei:
        z.kill(os.getpid(), 1000)
    assert ei.value.errno == errno.EINVAL


def test_clock_and_scheduler_calls() -> None:
    a = time.monotonic_ns()
    b = z.clock_gettime()
    c = time.monotonic_ns()
    assert a <= b <= c
    assert abs(z.clock_gettime(time.CLOCK_REALTIME) - time.time_ns()) < 10**9
    assert z.clock_getres() == time.clock_getres(time.CLOCK_MONOTONIC) * 1e9
    with pytest.raises(OSError) as ei:
        z.clock_gettime(12345)
    assert ei.value.errno == errno.EINVAL
    z.sched_yield()
    assert z.sched_getaffinity() == os.sched_getaffinity(0)
    assert z.getrlimit(resource.RLIMIT_NOFILE) == resource.getrlimit(resource.RLIMIT_NOFILE)
    assert z.getrlimit(resource.RLIMIT_CPU) == resource.getrlimit(resource.RLIMIT_CPU)
    with pytest.raises(OSError):
        z.getrlimit(9999)


def test_nanosleep_and_getrandom() -> None:
    t0 = time.monotonic_ns()
    z.nanosleep(2_000_000)
    assert time.monotonic_ns() - t0 >= 2_000_000  # a lower bound, not a timing assertion
    z.nanosleep(0)
    with pytest.raises(ValueError):
        z.nanosleep(-1)
    with pytest.raises(ValueError):
        z.nanosleep(1 << 100)
    buf = bytearray(32)
    assert z.getrandom(buf) == 32 and any(buf)


def test_nanosleep_retries_eintr_for_the_remaining_time() -> None:
    hits: list[int] = []
    old = signal.signal(signal.SIGALRM, lambda *_: hits.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        t0 = time.monotonic_ns()
        z.nanosleep(60_000_000)
        assert time.monotonic_ns() - t0 >= 60_000_000  # PEP 475: the whole sleep happens
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert hits


def test_mmap_mapping_read_write_madvise_mincore_munmap(tmpfile: tuple[Path, int]) -> None:
    page = mmap.PAGESIZE
    m = z.mmap(2 * page, z._m.PROT_READ | z._m.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    assert len(m) == 2 * page and m.read(0, 4) == b"\0\0\0\0"
    m.write(page - 2, b"abcd")
    assert m.read(page - 2, 4) == b"abcd"
    assert len(m.read()) == 2 * page
    with pytest.raises(ValueError):
        m.read(2 * page - 1, 2)
    with pytest.raises(ValueError):
        m.write(2 * page, b"x")
    with pytest.raises(ValueError):
        m.read(-1, 1)
    z.madvise(m, mmap.MADV_WILLNEED)
    vec = z.mincore(m)
    assert len(vec) == 2 and vec[0] & 1
    z.madvise(m, mmap.MADV_DONTNEED)
    assert m.read(page - 2, 4) == b"\0\0\0\0"  # private anonymous: zero-filled again
    z.munmap(m)
    assert "unmapped" in repr(m)
    for use in (
        lambda: m.read(),
        lambda: m.write(0, b"x"),
        lambda: z.munmap(m),
        lambda: z.madvise(m, 0),
        lambda: z.mincore(m),
    ):
        with pytest.raises(ValueError):
            use()
    # A file mapping, read-only: writing through it is refused, not a SIGSEGV.
    path, fd = tmpfile
    os.write(fd, b"filedata" * 1000)
    ro = z.mmap(page, z._m.PROT_READ, mmap.MAP_SHARED, fd, 0)
    try:
        assert ro.read(0, 8) == b"filedata"
        with pytest.raises(PermissionError):
            ro.write(0, b"x")
    finally:
        z.munmap(ro)
    none = z.mmap(page, 0, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    with pytest.raises(PermissionError):
        none.read(0, 1)
    z.munmap(none)


def test_mmap_refuses_what_could_corrupt_the_process() -> None:
    page = mmap.PAGESIZE
    with pytest.raises(ValueError):
        z.mmap(page, 3, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | z._m.MAP_FIXED)
    with pytest.raises(ValueError):
        z.mmap(0, 3, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    with pytest.raises(ValueError):
        z.mmap(-1, 3, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    with pytest.raises(OSError) as ei:
        z.mmap(1 << 62, 3, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    assert ei.value.errno == errno.ENOMEM
    with pytest.raises(TypeError):
        z.munmap(bytearray(4))  # type: ignore[arg-type]
    with pytest.raises(OSError) as ei:
        z.mmap(page, 3, mmap.MAP_SHARED, 1 << 20)
    assert ei.value.errno == errno.EBADF


# --------------------------------------------------------------------------------------------
# The Prepared protocol (what the scheduler relies on)
# --------------------------------------------------------------------------------------------


def test_prepare_makes_no_syscall(pipe: tuple[int, int], tmp_path: Path) -> None:
    r, w = pipe
    p = z.prepare_close(w)
    assert (p.trap, p.fd, p.name, p.klass, p.eintr) == (
        L.SYS["close"],
        w,
        "close",
        "sys",
        EINTR_RAISE,
    )
    os.fstat(w)  # still open
    hooks = L.counting_hooks.entered
    z.prepare_unlink(tmp_path / "nothing")  # no FileNotFoundError: nothing was called
    z.prepare_mkdir(tmp_path / "d")
    assert not (tmp_path / "d").exists()
    assert L.counting_hooks.entered == hooks
    assert len(p.args) == 6 and all(isinstance(a, int) for a in p.args)
    assert "close" in repr(p)


def test_finish_decodes_values_errors_and_bad_counts(pipe: tuple[int, int]) -> None:
    r, _ = pipe
    buf = bytearray(8)
    p = z.prepare_read(r, buf)
    assert p.keep is not None and p.fd == r and p.args[2] == 8
    assert p.finish(3) == 3
    with pytest.raises(BlockingIOError):
        p.finish(-errno.EAGAIN)
    with pytest.raises(OSError) as ei:
        p.finish(9)  # Go issue 61060: more bytes than the buffer holds
    assert ei.value.errno == errno.EIO
    pw = z.prepare_write(r, b"abc")
    with pytest.raises(OSError) as ei:
        pw.finish(4)
    assert ei.value.errno == errno.EIO
    ps = z.prepare_stat("/no/such")
    with pytest.raises(FileNotFoundError) as ei2:
        ps.finish(-errno.ENOENT)
    assert ei2.value.filename == "/no/such"
    assert z.prepare_getpid().finish(-1) == (1 << 64) - 1  # noerror: never an errno
    assert z.prepare_getpid().klass == "noerror"
    ew = z.prepare_epoll_wait(r, 1, 0)
    assert ew.eintr == EINTR_EMPTY and ew.finish(-errno.EINTR) == []
    assert z.prepare_read(r, buf).eintr == EINTR_RETRY


def test_trap_on_another_thread_then_finish_on_this_one(tmp_path: Path) -> None:
    # What the scheduler does: prepare here, the raw trap on an M, finish back on the loop.
    path = tmp_path / "f"
    path.write_bytes(b"payload")
    results: list[int] = []
    p_open = z.prepare_open(path, os.O_RDONLY)
    t = threading.Thread(target=lambda: results.append(L.raw6(p_open.trap, *p_open.args)))
    t.start()
    t.join()
    fd = p_open.finish(results.pop())
    try:
        buf = bytearray(16)
        p = z.prepare_pread64(fd, buf, 0)
        del buf  # the Prepared keeps the buffer pinned and alive
        t = threading.Thread(target=lambda: results.append(L.raw6(p.trap, *p.args)))
        t.start()
        t.join()
        assert p.finish(results.pop()) == 7
        st = z.prepare_fstat(fd)
        assert st.finish(L.raw6(st.trap, *st.args)).st_size == 7
    finally:
        os.close(fd)


def test_pins_are_released_when_the_call_is_done(pipe: tuple[int, int]) -> None:
    r, _ = pipe
    buf = bytearray(4)
    try:
        z.read(1 << 20, buf)
    except OSError:
        buf.extend(b"more")  # not "BufferError: Existing exports": the pin is gone
    assert len(buf) == 8
    view = memoryview(bytearray(8))
    p = z.prepare_write(1 << 20, view)
    with pytest.raises(OSError):
        p.finish(-errno.EBADF)
    view.release()  # no export left on the memoryview either


def test_wrap_prepare_reports_its_own_name() -> None:
    p = z.prepare_rename("a", "b")
    assert (p.name, p.trap, p.klass) == ("rename", L.SYS["renameat2"], "sys")
    assert (p.filename, p.filename2) == ("a", "b")
    f = z.prepare_fstat(0)
    assert f.name == "fstat" and f.filename is None
    assert z.prepare_dup(0).name == "dup"


def test_orphan_releases_what_the_call_created(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.touch()
    p = z.prepare_open(path, os.O_RDONLY)
    fd = L.raw6(p.trap, *p.args)
    assert fd >= 0
    p.orphan(fd)
    with pytest.raises(OSError):
        os.fstat(fd)
    pp = z.prepare_pipe2()
    assert L.raw6(pp.trap, *pp.args) == 0
    r, w = pp.finish(0)
    pp.orphan(0)
    for f in (r, w):
        with pytest.raises(OSError):
            os.fstat(f)
    pm = z.prepare_mmap(mmap.PAGESIZE, 3, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    addr = L.raw6(pm.trap, *pm.args)
    pm.orphan(addr)
    z.prepare_close(0).orphan(-errno.EBADF)  # a failed call created nothing
    z.prepare_open(path, 0).orphan(-errno.ENOENT)


def test_blocking_wrappers_notify_the_scheduler_hooks_nonblocking_do_not(tmp_path: Path) -> None:
    seen: list[int] = []
    previous = (L._enter_hook, L._exit_hook)
    L.set_syscall_hooks(lambda trap: seen.append(trap), lambda token: None)
    try:
        z.getpid()
        z.clock_gettime()
        z.sched_yield()
        assert seen == []  # noerror / sysnb: RawSyscall, no entersyscall
        with pytest.raises(OSError):
            z.close(1 << 20)
        z.stat(tmp_path)  # a wrap: the target's class (sys)
        z.nanosleep(0)  # sysblock
        assert seen == [L.SYS["close"], L.SYS["statx"], L.SYS["nanosleep"]]
    finally:
        L.set_syscall_hooks(*previous)


def test_table_prepare_functions_match_the_module() -> None:
    for name, e in z.TABLE.items():
        assert e.prepare is getattr(z, f"prepare_{name}")
        assert callable(getattr(z, name))
        assert e.blocking == (e.base in ("sys", "sysblock"))


# --------------------------------------------------------------------------------------------
# EINTR (PEP 475)
# --------------------------------------------------------------------------------------------


def test_blocking_read_retries_eintr_and_runs_the_handler(pipe: tuple[int, int]) -> None:
    r, w = pipe

    def handler(signum: int, frame: object) -> None:
        os.write(w, b"!")

    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        buf = bytearray(4)
        n = z.read(r, buf)  # interrupted, handler runs, retried: gets the handler's byte
        assert buf[:n] == b"!"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_a_handler_that_raises_stops_the_retry(pipe: tuple[int, int]) -> None:
    r, _ = pipe

    class Stop(Exception):
        pass

    def handler(signum: int, frame: object) -> None:
        raise Stop

    old = signal.signal(signal.SIGALRM, handler)
    try:
        with pytest.raises(Stop):
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            z.read(r, bytearray(4))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_prepared_is_generic_and_typed() -> None:
    p: Prepared[int] = z.prepare_getpid()
    assert isinstance(p, Prepared)
