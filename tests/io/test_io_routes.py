"""Every route of aiosys._io: inline NOWAIT hits, handoffs, the netpoller, per-fd fallbacks."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

import aiosys._io as io
from aiosys.sched.stats import counters

Run = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture
def datafile(tmp_path: Path) -> Path:
    p = tmp_path / "data"
    p.write_bytes(bytes(range(256)) * 64)  # 16 KiB, page-cached once written
    return p


def test_cached_pread_is_an_inline_hit_without_handoff(run: Run, datafile: Path) -> None:
    async def body() -> None:
        fd = os.open(datafile, os.O_RDONLY)
        try:
            os.pread(fd, 16384, 0)  # make sure it is cached
            before = counters.handoffs
            hits = counters.nowait_hits
            data = await io.pread(fd, 4096, 100)
            assert data == datafile.read_bytes()[100:4196]
            assert counters.nowait_hits == hits + 1
            assert counters.handoffs == before
        finally:
            await io.close(fd)

    run(body())


def test_read_follows_the_file_position_and_returns_short_reads_at_eof(
    run: Run, datafile: Path
) -> None:
    async def body() -> None:
        fd = await io.open(datafile)
        try:
            want = datafile.read_bytes()
            got = b""
            while chunk := await io.read(fd, 5000):
                got += chunk
            assert got == want
            assert await io.read(fd, 10) == b""
        finally:
            await io.close(fd)

    run(body())


def test_tmpfs_disables_the_fast_path_for_that_fd_only(run: Run, datafile: Path) -> None:
    shm = Path("/dev/shm") / f"aiosys-test-{os.getpid()}"

    async def body() -> None:
        shm.write_bytes(b"x" * 100)
        sfd = os.open(shm, os.O_RDONLY)
        ffd = os.open(datafile, os.O_RDONLY)
        try:
            disabled = counters.nowait_disabled
            assert await io.pread(sfd, 10, 0) == b"x" * 10  # EOPNOTSUPP -> handoff
            assert counters.nowait_disabled == disabled + 1
            handoffs = counters.handoffs
            assert await io.pread(sfd, 10, 0) == b"x" * 10
            assert counters.handoffs == handoffs + 1  # no second inline try
            assert counters.nowait_disabled == disabled + 1
            hits = counters.nowait_hits
            await io.pread(ffd, 10, 0)  # another fd keeps its fast path
            assert counters.nowait_hits == hits + 1
        finally:
            await io.close(sfd)
            await io.close(ffd)
            shm.unlink()

    run(body())


def test_o_direct_skips_the_fast_path(run: Run, datafile: Path) -> None:
    async def body() -> None:
        try:
            fd = os.open(datafile, os.O_RDONLY | os.O_DIRECT)
        except OSError as exc:  # pragma: no cover - filesystem without O_DIRECT
            pytest.skip(f"O_DIRECT unsupported: {exc}")
        try:
            hits, handoffs = counters.nowait_hits, counters.handoffs
            buf = await io.pread(fd, 4096, 0)
            assert buf == datafile.read_bytes()[:4096]
            assert counters.nowait_hits == hits
            assert counters.handoffs == handoffs + 1
        finally:
            await io.close(fd)

    run(body())


def test_pipe_read_parks_and_never_uses_an_m(run: Run) -> None:
    async def body() -> None:
        r, w = os.pipe()
        try:
            handoffs = counters.handoffs

            async def writer() -> None:
                await asyncio.sleep(0.01)
                await io.write(w, b"hello")

            t = asyncio.create_task(writer())
            assert await io.read(r, 100) == b"hello"
            await t
            assert counters.handoffs == handoffs
        finally:
            await io.close(r)
            await io.close(w)

    run(body())


def test_file_write_is_handed_off_and_lands(run: Run, tmp_path: Path) -> None:
    async def body() -> None:
        fd = await io.open(tmp_path / "w", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            handoffs = counters.handoffs
            assert await io.write(fd, b"abc") == 3
            assert await io.pwrite(fd, b"XY", 1) == 2
            assert await io.pwritev(fd, [b"12", bytearray(b"34")], 3) == 4
            assert counters.handoffs >= handoffs + 3
            await io.fsync(fd)
            await io.fdatasync(fd)
            await io.ftruncate(fd, 5)
        finally:
            await io.close(fd)
        assert (tmp_path / "w").read_bytes() == b"aXY12"

    run(body())


def test_open_sets_cloexec_and_reports_the_filename(run: Run, tmp_path: Path) -> None:
    async def body() -> None:
        fd = await io.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            assert not os.get_inheritable(fd)
        finally:
            await io.close(fd)
        with pytest.raises(FileNotFoundError) as info:
            await io.open(tmp_path / "missing")
        assert info.value.filename == tmp_path / "missing"

    run(body())


def test_stat_family_matches_os(run: Run, datafile: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    os.symlink(datafile, link)

    async def body() -> None:
        fd = os.open(datafile, os.O_RDONLY)
        try:
            for mine, ref in (
                (await io.fstat(fd), os.fstat(fd)),
                (await io.stat(link), os.stat(link)),
                (await io.lstat(link), os.lstat(link)),
            ):
                assert mine == ref
                assert mine.st_mtime_ns == ref.st_mtime_ns
                assert mine.st_blocks == ref.st_blocks
        finally:
            await io.close(fd)

    run(body())


def test_path_calls(run: Run, tmp_path: Path) -> None:
    async def body() -> None:
        d = tmp_path / "d"
        await io.mkdir(d, 0o700)
        (d / "a").write_bytes(b"1")
        await io.rename(d / "a", d / "b")
        await io.symlink("b", d / "l")
        assert await io.readlink(d / "l") == "b"
        assert await io.readlink(os.fsencode(d / "l")) == b"b"
        await io.chmod(d / "b", 0o600)
        assert (d / "b").stat().st_mode & 0o777 == 0o600
        assert sorted(await io.listdir(d)) == ["b", "l"]
        entries = {e.name: e for e in await io.scandir(d)}
        assert entries["b"].is_file() and entries["l"].is_symlink()
        assert entries["b"].inode == (d / "b").stat().st_ino
        await io.unlink(d / "l")
        await io.unlink(d / "b")
        await io.rmdir(d)
        assert not d.exists()
        with pytest.raises(FileNotFoundError):
            await io.unlink(d / "nothing")

    run(body())


def test_listdir_of_a_big_directory_needs_several_getdents(run: Run, tmp_path: Path) -> None:
    names = {f"file-with-a-longish-name-{i:05d}" for i in range(1200)}
    for n in names:
        (tmp_path / n).touch()

    async def body() -> None:
        assert set(await io.listdir(tmp_path)) == names

    run(body())


def test_copies_between_fds(run: Run, datafile: Path, tmp_path: Path) -> None:
    async def body() -> None:
        src = os.open(datafile, os.O_RDONLY)
        dst = os.open(tmp_path / "copy", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            assert await io.copy_file_range(src, 0, dst, 0, 1000) == 1000
            os.lseek(dst, 1000, os.SEEK_SET)  # sendfile writes at dst's file position
            assert await io.sendfile(dst, src, 1000, 1000) == 1000
            r, w = os.pipe()
            try:
                assert await io.splice(src, 2000, w, None, 100) == 100
                assert await io.splice(r, None, dst, 2000, 100) == 100
            finally:
                os.close(r)
                os.close(w)
            assert os.pread(dst, 2100, 0) == datafile.read_bytes()[:2100]
        finally:
            await io.close(src)
            await io.close(dst)

    run(body())


def test_preadv_and_readinto(run: Run, datafile: Path) -> None:
    async def body() -> None:
        fd = os.open(datafile, os.O_RDONLY)
        try:
            a, b = bytearray(10), bytearray(5)
            assert await io.preadv(fd, [a, b], 3) == 15
            assert bytes(a + b) == datafile.read_bytes()[3:18]
            buf = bytearray(7)
            assert await io.readinto(fd, buf) == 7
            assert bytes(buf) == datafile.read_bytes()[:7]
        finally:
            await io.close(fd)

    run(body())


def test_flock(run: Run, datafile: Path) -> None:
    import fcntl

    async def body() -> None:
        fd = os.open(datafile, os.O_RDONLY)
        try:
            await io.flock(fd, fcntl.LOCK_EX)
            await io.flock(fd, fcntl.LOCK_UN)
            await io.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            await io.flock(fd, fcntl.LOCK_UN)
        finally:
            await io.close(fd)

    run(body())


def test_syscall_by_name_and_number(run: Run, tmp_path: Path) -> None:
    from aiosys.native import _lowlevel as ll

    (tmp_path / "f").write_bytes(b"12345")

    async def body() -> None:
        inline = counters.inline_calls
        assert await io.syscall("getpid") == os.getpid()
        assert await io.syscall(ll.SYS["getpid"]) == os.getpid()
        assert counters.inline_calls == inline + 2  # sysnb: inline
        handoffs = counters.handoffs
        assert await io.syscall("sync") in (0, None)
        assert counters.handoffs == handoffs + 1
        # By name: the typed wrapper's arguments and result, the call on an M.
        fd = await io.syscall("open", tmp_path / "f", os.O_RDONLY)
        try:
            buf = bytearray(5)
            assert await io.syscall("pread64", fd, buf, 0) == 5
            assert bytes(buf) == b"12345"
        finally:
            await io.close(fd)
        with pytest.raises(OSError) as info:
            await io.syscall(ll.SYS["close"], 2**30)
        assert info.value.errno == errno.EBADF
        with pytest.raises(ValueError):
            await io.syscall("no_such_call")

    run(body())


def test_close_of_a_bad_fd_raises_ebadf(run: Run) -> None:
    async def body() -> None:
        with pytest.raises(OSError) as info:
            await io.close(2**20)
        assert info.value.errno == errno.EBADF

    run(body())
