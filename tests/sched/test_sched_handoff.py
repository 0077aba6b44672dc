"""The handoff: pool growth and cap, EINTR in an M, cancellation at every point, close
during a handed-off call, loop close with calls in flight, fork, counters."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

import aiosys._io as aio
from aiosys.native import _lowlevel as ll
from aiosys.native import _mpool
from aiosys.sched import proc
from aiosys.sched.stats import counters

Run = Callable[[Coroutine[Any, Any, Any]], Any]


def force_handoff(fd: int) -> None:
    """Make aio.read of ``fd`` hand off like a slow file (no inline try, no netpoller)."""
    aio._fdinfo[fd] = aio._KNOWN_FILE | aio._RNOWAIT_OFF | aio._WNOWAIT_OFF


@pytest.fixture
def pool_config() -> Iterator[None]:
    yield
    proc.configure_pool(max_threads=128, full="wait")


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """Bounded wait for a condition (not a timing assertion: fails only if never true)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.002)


def test_pool_capped_at_n_with_n_blocked_reads_still_completes_their_writes(
    run: Run, pool_config: None
) -> None:
    n = 3

    async def body() -> None:
        proc.configure_pool(max_threads=n)
        pipes = [os.pipe() for _ in range(n)]
        bufs = [ll.alloc(16) for _ in range(n)]
        try:
            reads = [
                asyncio.ensure_future(aio.syscall(ll.SYS["read"], r, b.addr, 16))
                for (r, _), b in zip(pipes, bufs, strict=True)
            ]
            await until(lambda: _mpool.stats()["m_busy"] >= n)
            # Every M is blocked; the writes they wait for go through the netpoller.
            for _, w in pipes:
                assert await aio.write(w, b"go") == 2
            assert await asyncio.gather(*reads) == [2] * n
            assert all(ll.read_memory(b, 2) == b"go" for b in bufs)
        finally:
            for r, w in pipes:
                os.close(r)
                os.close(w)

    run(body())


def test_pool_at_its_cap_in_error_mode_raises_a_clear_error(
    run: Run, pool_config: None
) -> None:
    async def body() -> None:
        proc.configure_pool(max_threads=1, full="error")
        await until(lambda: _mpool.stats()["m_threads"] <= 1)  # surplus idle Ms leave
        r, w = os.pipe()
        buf = ll.alloc(8)
        try:
            blocked = asyncio.ensure_future(aio.syscall(ll.SYS["read"], r, buf.addr, 8))
            await until(lambda: _mpool.stats()["m_busy"] >= 1)
            with pytest.raises(aio.PoolExhaustedError) as info:
                await aio.fstat(r)
            assert info.value.errno == errno.EAGAIN
            os.write(w, b"x")
            assert await blocked == 1
        finally:
            os.close(r)
            os.close(w)

    run(body())


def test_queued_call_waits_for_a_free_m_in_wait_mode(run: Run, pool_config: None) -> None:
    async def body() -> None:
        proc.configure_pool(max_threads=1, full="wait")
        await until(lambda: _mpool.stats()["m_threads"] <= 1)
        r, w = os.pipe()
        buf = ll.alloc(8)
        try:
            blocked = asyncio.ensure_future(aio.syscall(ll.SYS["read"], r, buf.addr, 8))
            await until(lambda: _mpool.stats()["m_busy"] >= 1)
            queued = asyncio.ensure_future(aio.fstat(r))
            await until(lambda: _mpool.stats()["queue_depth"] >= 1)
            assert not queued.done()
            os.write(w, b"x")
            assert await blocked == 1
            assert (await queued).st_ino == os.fstat(r).st_ino
        finally:
            os.close(r)
            os.close(w)

    run(body())


def test_eintr_in_a_worker_is_retried(run: Run) -> None:
    async def body() -> None:
        r, w = os.pipe()
        buf = ll.alloc(8)
        old = signal.signal(signal.SIGURG, lambda *a: None)
        try:
            before = _mpool.stats()["m_eintr_retries"]
            task = asyncio.ensure_future(aio.syscall(ll.SYS["read"], r, buf.addr, 8))
            await until(lambda: _mpool.stats()["m_busy"] >= 1)
            deadline = time.monotonic() + 5
            while _mpool.stats()["m_eintr_retries"] == before:
                assert time.monotonic() < deadline
                for tid in _mpool.tids():  # only Ms of this process: tgkill checks the pid
                    ll.RawSyscall(ll.SYS["tgkill"], os.getpid(), tid, signal.SIGURG)
                await asyncio.sleep(0.005)
            assert not task.done()  # the read went back into the kernel
            os.write(w, b"abc")
            assert await task == 3
            assert ll.read_memory(buf, 3) == b"abc"
        finally:
            signal.signal(signal.SIGURG, old)
            os.close(r)
            os.close(w)

    run(body())


def test_cancel_while_queued_withdraws_the_call(run: Run, pool_config: None) -> None:
    async def body() -> None:
        proc.configure_pool(max_threads=1)
        await until(lambda: _mpool.stats()["m_threads"] <= 1)
        r, w = os.pipe()
        buf = ll.alloc(8)
        try:
            blocked = asyncio.ensure_future(aio.syscall(ll.SYS["read"], r, buf.addr, 8))
            await until(lambda: _mpool.stats()["m_busy"] >= 1)
            withdrawn = counters.withdrawn
            queued = asyncio.ensure_future(aio.fstat(r))
            await until(lambda: _mpool.stats()["queue_depth"] >= 1)
            queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
            assert counters.withdrawn == withdrawn + 1
            assert _mpool.stats()["queue_depth"] == 0
            os.write(w, b"x")
            assert await blocked == 1
        finally:
            os.close(r)
            os.close(w)

    run(body())


def test_cancelled_read_on_an_m_keeps_its_bytes_for_the_next_read(run: Run) -> None:
    async def body() -> None:
        r, w = os.pipe()
        force_handoff(r)
        try:
            task = asyncio.ensure_future(aio.read(r, 100))
            await until(lambda: _mpool.stats()["m_busy"] >= 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            kept = counters.orphan_bytes_kept
            os.write(w, b"hello")
            # The next read waits for the orphan, then gets its bytes.
            assert await aio.read(r, 3) == b"hel"
            assert counters.orphan_bytes_kept == kept + 5
            assert await aio.read(r, 100) == b"lo"
        finally:
            await aio.close(r)
            os.close(w)

    run(body())


def test_cancelled_file_read_rewinds_the_offset_whatever_the_timing(
    run: Run, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 16
    (tmp_path / "f").write_bytes(data)

    async def body() -> None:
        fd = os.open(tmp_path / "f", os.O_RDONLY)
        force_handoff(fd)
        try:
            got = b""
            for i in range(40):
                task = asyncio.ensure_future(aio.read(fd, 100))
                for _ in range(i % 4):
                    await asyncio.sleep(0)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    got += await task  # it may have finished before the cancel
                got += await aio.read(fd, 7)
            rest = b""
            while chunk := await aio.read(fd, 4096):
                rest += chunk
            assert got + rest == data
        finally:
            await aio.close(fd)

    run(body())


def test_cancelled_open_never_leaks_its_fd(run: Run, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")

    async def body() -> None:
        for i in range(30):
            task = asyncio.ensure_future(aio.open(tmp_path / "f"))
            for _ in range(i % 3):
                await asyncio.sleep(0)
            task.cancel()
            try:
                fd = await task
            except asyncio.CancelledError:
                continue
            await aio.close(fd)
        await until(lambda: not proc.inflight())

    run(body())  # the leak fixture checks every fd is closed


def test_cancel_after_completion_before_resume_runs_the_finalizer(run: Run) -> None:
    async def body() -> None:
        r, w = os.pipe()
        try:
            p = proc.getp()
            buf = bytearray(8)
            pin = ll.pin_buffer(buf, writable=True)
            g = proc.entersyscall(
                p, "read", ll.SYS["read"], (r, pin.addr, 8, 0, 0, 0), r,
                proc.ReadKeep(buf, pin), "read",
            )
            holder: list[asyncio.Future[int]] = []
            # Registered before the task awaits: runs right after set_result and before the
            # task resumes, so the task is cancelled with the result already present.
            g.future.add_done_callback(lambda f: holder[0].cancel())
            holder.append(asyncio.ensure_future(proc.wait(p, g)))
            for _ in range(3):
                await asyncio.sleep(0)
            assert g.state == "_Gsyscall"
            slow = counters.exits_slow
            os.write(w, b"xyz")
            with pytest.raises(asyncio.CancelledError):
                await holder[0]
            assert counters.exits_slow == slow + 1
            assert g.state == "_Gdead"
            assert await aio.read(r, 10) == b"xyz"  # the bytes were kept
        finally:
            await aio.close(r)
            os.close(w)

    run(body())


def test_close_during_a_handed_off_read_keeps_the_number_until_it_returns(
    run: Run, tmp_path: Path
) -> None:
    async def body() -> None:
        r, w = os.pipe()
        force_handoff(r)
        task = asyncio.ensure_future(aio.read(r, 10))
        await until(lambda: _mpool.stats()["m_busy"] >= 1)
        await aio.close(r)  # deferred: the M still reads from r
        fd = await aio.open(tmp_path / "new", os.O_CREAT | os.O_RDWR, 0o600)
        assert fd != r  # the number is not free yet
        os.write(w, b"late")
        assert await task == b"late"
        with pytest.raises(OSError) as info:
            os.fstat(r)  # closed once the read returned
        assert info.value.errno == errno.EBADF
        await aio.close(fd)
        os.close(w)

    run(body())


def test_read_on_an_fd_being_closed_fails_with_ebadf(run: Run) -> None:
    async def body() -> None:
        r, w = os.pipe()
        force_handoff(r)
        task = asyncio.ensure_future(aio.read(r, 10))
        await until(lambda: _mpool.stats()["m_busy"] >= 1)
        await aio.close(r)
        with pytest.raises(OSError) as info:
            await aio.fstat(r)
        assert info.value.errno == errno.EBADF
        os.write(w, b"x")
        assert await task == b"x"
        os.close(w)

    run(body())


def test_loop_close_with_a_call_in_flight_logs_the_straggler_and_loses_nothing(
    run: Run, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(proc, "CLOSE_TIMEOUT", 0.05)
    r, w = os.pipe()
    force_handoff(r)

    async def body() -> None:
        asyncio.ensure_future(aio.read(r, 10))
        await until(lambda: _mpool.stats()["m_busy"] >= 1)

    with caplog.at_level(logging.WARNING, logger="aiosys.sched"):
        run(body())  # returns with the read still on an M; the loop closes
    assert any("straggler" in rec.getMessage() for rec in caplog.records)
    assert proc._orphans
    os.write(w, b"kept")
    deadline = time.monotonic() + 5
    while proc._orphans:
        assert time.monotonic() < deadline
        proc.drain_orphans()
        time.sleep(0.002)

    async def after() -> bytes:
        return await aio.read(r, 10)

    assert run(after()) == b"kept"
    os.close(r)
    os.close(w)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_fork_child_gets_a_fresh_pool(run: Run, tmp_path: Path) -> None:
    async def warm() -> None:
        await aio.fstat(0)

    run(warm())  # Ms exist in the parent

    pid = os.fork()
    if pid == 0:  # child: only this thread exists
        code = 1
        try:
            async def child() -> bool:
                st = await aio.fstat(0)
                return st.st_ino == os.fstat(0).st_ino

            ok = asyncio.run(child())
            code = 0 if ok and _mpool.stats()["m_spawned"] >= 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_counters_balance_when_nothing_is_in_flight(run: Run, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")

    async def body() -> None:
        await until(lambda: not proc.inflight())
        c0 = counters.as_dict()
        for _ in range(10):
            fd = await aio.open(tmp_path / "f")
            await aio.fstat(fd)
            t = asyncio.ensure_future(aio.fstat(fd))
            await asyncio.sleep(0)
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
            await aio.close(fd)
        await until(lambda: not proc.inflight())
        c1 = counters.as_dict()
        d = {k: c1[k] - c0[k] for k in c0}
        assert d["handoffs"] == d["exits_fast"] + d["exits_slow"] + d["withdrawn"]
        assert d["handoffs"] >= 20

    run(body())


def test_synchronous_syscall_marks_the_p_psyscall(run: Run) -> None:
    async def body() -> None:
        p = proc.getp()
        seen: list[str] = []
        before = counters.psyscall_enters
        orig = proc._hook_enter

        def spy(trap: int) -> object:
            tok = orig(trap)
            seen.append(p.status)
            return tok

        ll.set_syscall_hooks(spy, proc._hook_exit)
        try:
            ll.Syscall(ll.SYS["getpid"])
        finally:
            ll.set_syscall_hooks(proc._hook_enter, proc._hook_exit)
        assert seen == ["_Psyscall"]
        assert p.status == "_Prunning"
        assert counters.psyscall_enters == before + 1

    run(body())


def test_grow_pool_and_inflight_and_allp(run: Run) -> None:
    async def body() -> None:
        p = proc.getp()
        assert p in proc.allp()
        assert p.thread_id and p.last_tick > 0
        assert proc.grow_pool(1) in (0, 1)
        r, w = os.pipe()
        buf = ll.alloc(4)
        try:
            t = asyncio.ensure_future(aio.syscall(ll.SYS["read"], r, buf.addr, 4))
            await until(lambda: bool(proc.inflight()))
            (g,) = proc.inflight()
            assert g.syscall == "read" and g.p_id == p.id and g.state == "_Gsyscall"
            os.write(w, b"1")
            assert await t == 1
        finally:
            os.close(r)
            os.close(w)

    run(body())


def test_cancelled_write_that_happened_is_reported(
    run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        r, w = os.pipe()
        force_handoff(w)  # a blocking write on an M, like a slow file
        try:
            filled = 0
            os.set_blocking(w, False)
            with contextlib.suppress(BlockingIOError):
                while True:
                    filled += os.write(w, b"x" * 65536)
            os.set_blocking(w, True)
            reported = counters.orphan_writes_reported
            task = asyncio.ensure_future(aio.write(w, b"tail"))
            await until(lambda: _mpool.stats()["m_busy"] >= 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            got = 0
            while got < filled + 4:  # drain: the write completes on its M
                got += len(os.read(r, 1 << 20))
            await until(lambda: counters.orphan_writes_reported == reported + 1)
        finally:
            os.close(r)
            await aio.close(w)

    with caplog.at_level(logging.WARNING, logger="aiosys.sched"):
        run(body())
    assert any("wrote 4 bytes" in rec.getMessage() for rec in caplog.records)
