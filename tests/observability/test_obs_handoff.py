"""Events, counters, schedtrace and sysmon against the real scheduler: handed-off calls on
the C M pool, on the aiosys loop, the stdlib loop and uvloop."""

from __future__ import annotations

import asyncio
import fcntl
import io
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from obs_loops import LOOP_KINDS, run_in
from structlog.testing import capture_logs

import aiosys.trace
from aiosys.native import SYS
from aiosys.sched import proc, schedtrace, stats, sysmon
from aiosys.sched.sysmon import Sysmon, SysmonConfig

_GETPPID = SYS["getppid"]
_FLOCK = SYS["flock"]


async def handoff(name: str, trap: int, *args: int, fd: int = -1) -> int:
    """One call through entersyscallblock -> an M -> exitsyscall (what aiosys._io does)."""
    words = (tuple(args) + (0,) * 6)[:6]
    p = proc.getp()
    g = proc.entersyscallblock(p, name, trap, words, fd)  # type: ignore[arg-type]
    return await proc.wait(p, g)


async def _until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


@pytest.fixture
def locked_file() -> Iterator[tuple[int, int]]:
    """Two open file descriptions of one file; the first holds LOCK_EX, so a blocking
    ``flock(second, LOCK_EX)`` stays on its M until the test unlocks the first."""
    fd0, path = tempfile.mkstemp(prefix="aiosys-obs-")
    fd1 = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    fcntl.flock(fd0, fcntl.LOCK_EX)
    try:
        yield fd0, fd1
    finally:
        os.close(fd0)
        os.close(fd1)
        os.unlink(path)


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_every_handoff_logs_enter_and_fast_exit(kind: str) -> None:
    n = 5
    before = stats.snapshot()

    async def body() -> int:
        for _ in range(n):
            assert await handoff("getppid", _GETPPID) == os.getppid()
        return proc.getp().id

    with capture_logs() as logs:
        aiosys.trace.enable(sysmon=False)
        try:
            p_id = run_in(kind, body)
        finally:
            aiosys.trace.disable()
    after = stats.snapshot()
    enters = [e for e in logs if e["event"] == "entersyscall"]
    exits = [e for e in logs if e["event"] == "exitsyscall"]
    assert len(enters) == n and len(exits) == n
    assert [e["goid"] for e in enters] == [e["goid"] for e in exits]
    for e in enters:
        assert e["syscall"] == "getppid" and e["fd"] == -1 and e["p"] == p_id
        assert e["queue_depth"] >= 0
    for e in exits:
        assert e["path"] == "fast" and e["p"] == p_id
        assert isinstance(e["m"], int) and e["m"] >= 0
        assert e["wait_us"] is not None and e["wait_us"] >= 0
        assert e["run_us"] is not None and e["run_us"] >= 0
        assert e["total_us"] >= e["run_us"] and e["total_us"] >= e["wait_us"]
    # Counters consistent with the calls made.
    assert after["handoffs"] - before["handoffs"] == n
    assert after["handoffs_block"] - before["handoffs_block"] == n
    assert after["exits_fast"] - before["exits_fast"] == n
    assert after["exits_slow"] == before["exits_slow"]


def test_nothing_logged_by_handoffs_when_tracing_is_off(capsys: pytest.CaptureFixture[str]) -> None:
    async def body() -> None:
        for _ in range(3):
            await handoff("getppid", _GETPPID)

    with capture_logs() as logs:
        run_in("uvloop", body)
    assert logs == []
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_cancelled_call_on_an_m_takes_the_slow_path(locked_file: tuple[int, int]) -> None:
    fd0, fd1 = locked_file
    before = stats.snapshot()

    async def body() -> None:
        task = asyncio.ensure_future(handoff("flock", _FLOCK, fd1, fcntl.LOCK_EX, fd=fd1))
        # Wait until an M is inside flock (not merely queued: a queued call is withdrawn).
        await _until(lambda: proc.inflight() != [] and stats.snapshot()["queue_depth"] == 0)
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        fcntl.flock(fd0, fcntl.LOCK_UN)  # the M's flock returns; its G is an orphan
        await _until(lambda: stats.snapshot()["exits_slow"] > before["exits_slow"])

    with capture_logs() as logs:
        aiosys.trace.enable(sysmon=False)
        try:
            run_in("uvloop", body)
        finally:
            aiosys.trace.disable()
    exits = [e for e in logs if e["event"] == "exitsyscall"]
    assert [e["path"] for e in exits] == ["slow"]
    assert exits[0]["syscall"] == "flock" and exits[0]["fd"] == fd1
    assert exits[0]["run_us"] is not None and exits[0]["run_us"] > 0
    after = stats.snapshot()
    assert after["exits_slow"] - before["exits_slow"] == 1
    assert after["handoffs"] - before["handoffs"] == 1


@pytest.mark.parametrize("kind", ["aiosys", "uvloop"])
def test_sysmon_reports_a_slow_handed_off_call(kind: str, locked_file: tuple[int, int]) -> None:
    fd0, fd1 = locked_file
    s = Sysmon(SysmonConfig(syscall_ms=50.0))  # the real inflight()/allp()/stats
    s.start()

    def kinds() -> list[str]:
        return [k for k, _ in s.counters.recent]

    async def body() -> None:
        task = asyncio.ensure_future(handoff("flock", _FLOCK, fd1, fcntl.LOCK_EX, fd=fd1))
        try:
            await _until(lambda: "long_syscall" in kinds())
            # The schedtrace line shows the call in flight on this P.
            line = schedtrace.parse(schedtrace.line(0, stats.snapshot(), proc.allp()))
            assert line["threads"] >= 2 and 1 in line["per_p"]  # one call in flight on a P
        finally:
            fcntl.flock(fd0, fcntl.LOCK_UN)
        await task

    try:
        run_in(kind, body)
    finally:
        s.stop()
    (alarm,) = [f for k, f in s.counters.recent if k == "long_syscall"]
    assert alarm["syscall"] == "flock" and alarm["fd"] == fd1
    assert alarm["elapsed_ms"] >= 50.0 and alarm["state"] == "_Gsyscall"


def _block_the_loop() -> None:
    time.sleep(0.3)  # the blocking line sysmon must name


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_sysmon_watches_the_schedulers_loops(kind: str) -> None:
    """No watch_loop() call: sysmon finds the loop through the P the first handoff made."""
    s = Sysmon(SysmonConfig(stall_ms=50.0))
    s.start()

    def kinds() -> list[str]:
        return [k for k, _ in s.counters.recent]

    async def body() -> None:
        loop = asyncio.get_running_loop()
        await handoff("getppid", _GETPPID)
        await _until(lambda: loop in s.watched())
        loop.call_soon(_block_the_loop)
        await asyncio.sleep(0)
        await _until(lambda: "loop_resumed" in kinds())

    try:
        run_in(kind, body)
    finally:
        s.stop()
    (alarm,) = [f for k, f in s.counters.recent if k == "loop_stalled"]
    assert "time.sleep(0.3)" in alarm["blocking_line"]
    assert "_block_the_loop" in alarm["blocking_line"]
    assert isinstance(alarm["p"], int)


def test_schedtrace_line_matches_the_counters() -> None:
    out = io.StringIO()
    n = 4

    async def body() -> dict[str, Any]:
        for _ in range(n):
            await handoff("getppid", _GETPPID)
        snap = stats.snapshot()
        return schedtrace.parse(schedtrace.line(0, snap, proc.allp())) | {"snap": snap}

    got = run_in("uvloop", body)
    snap = got.pop("snap")
    assert got["handoffs"] == snap["handoffs"] and got["fast"] == snap["exits_fast"]
    assert got["gomaxprocs"] >= 1 and len(got["per_p"]) == got["gomaxprocs"]
    assert got["runqueue"] == snap["queue_depth"]
    # And the periodic writer, with the real sources.
    aiosys.trace.schedtrace(10, file=out)
    try:
        deadline = time.monotonic() + 5
        while "\n" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        aiosys.trace.schedtrace(None)
    first = schedtrace.parse(out.getvalue().splitlines()[0])
    assert first["handoffs"] >= snap["handoffs"]
    assert sysmon.current() is None


def test_merged_stats_has_both_layers() -> None:
    async def body() -> None:
        await handoff("getppid", _GETPPID)

    run_in("uvloop", body)
    merged = aiosys.trace.stats()
    for key in ("handoffs", "exits_fast", "exits_slow", "inline_hits", "m_busy", "m_idle",
                "queue_depth", "orphans_finalized", "nowait_hits", "nowait_misses"):
        assert key in merged, key
    assert merged["handoffs"] >= 1
    import aiosys.netpoll as netpoll

    for key in netpoll.stats():  # every netpoller counter is there (prefixed on a clash)
        assert key in merged or f"netpoll_{key}" in merged, key


def test_inline_reads_and_handoffs_add_up_in_counters_and_events() -> None:
    """Cached regular-file preads: each is an RWF_NOWAIT hit (inline, no event) or a miss that
    hands off (one entersyscall/exitsyscall pair).  Counters and events must agree."""
    import aiosys._io as aio

    n = 40
    fd, path = tempfile.mkstemp(prefix="aiosys-obs-", dir="/tmp")
    try:
        os.write(fd, os.urandom(8192))
        # mkstemp may reuse a number an earlier test closed behind aiosys's back; aiosys keeps
        # per-fd facts by number (documented in _io.py), so say this fd is new.
        aio._forget(fd)
        before = stats.snapshot()

        async def body() -> None:
            for i in range(n):
                assert len(await aio.pread(fd, 4096, (i % 2) * 4096)) == 4096

        with capture_logs() as logs:
            aiosys.trace.enable(sysmon=False)
            try:
                run_in("aiosys", body)
            finally:
                aiosys.trace.disable()
        after = stats.snapshot()
    finally:
        os.close(fd)
        os.unlink(path)
    d = {k: after[k] - before[k] for k in after}
    assert d["nowait_hits"] + d["nowait_misses"] == n
    assert d["inline_hits"] == d["nowait_hits"]
    assert d["handoffs"] == d["nowait_misses"]
    assert d["exits_fast"] == d["handoffs"]
    enters = [e for e in logs if e["event"] == "entersyscall"]
    exits = [e for e in logs if e["event"] == "exitsyscall"]
    assert len(enters) == len(exits) == d["handoffs"]
    assert all(e["fd"] == fd for e in enters)


def _read_one_byte_blocking(r: int) -> None:
    from aiosys import native
    from aiosys.native import _lowlevel as ll

    buf = bytearray(1)
    pin = ll.pin_buffer(buf, writable=True)
    try:
        native.Syscall(SYS["read"], r, pin.addr, 1)  # blocks the loop thread: the bug to catch
    finally:
        pin.release()


@pytest.fixture
def scheduler_syscall_hooks() -> Iterator[None]:
    """The scheduler's Syscall hooks, whatever another test left installed (the native tests
    swap them)."""
    from aiosys.native import _lowlevel as ll

    previous = (ll._enter_hook, ll._exit_hook)
    ll.set_syscall_hooks(proc._hook_enter, proc._hook_exit)
    try:
        yield
    finally:
        ll.set_syscall_hooks(*previous)


@pytest.mark.usefixtures("scheduler_syscall_hooks")
@pytest.mark.parametrize("kind", ["aiosys", "uvloop"])
def test_stall_inside_a_synchronous_syscall_says_psyscall(kind: str) -> None:
    import threading

    s = Sysmon(SysmonConfig(stall_ms=50.0))
    s.start()
    r, w = os.pipe()
    writer = threading.Timer(0.3, os.write, (w, b"x"))

    def kinds() -> list[str]:
        return [k for k, _ in s.counters.recent]

    async def body() -> None:
        loop = asyncio.get_running_loop()
        await handoff("getppid", _GETPPID)  # makes the P
        await _until(lambda: loop in s.watched())
        writer.start()
        loop.call_soon(_read_one_byte_blocking, r)
        await asyncio.sleep(0)
        await _until(lambda: "loop_resumed" in kinds())

    try:
        run_in(kind, body)
    finally:
        writer.join()
        s.stop()
        os.close(r)
        os.close(w)
    (alarm,) = [f for k, f in s.counters.recent if k == "loop_stalled"]
    assert alarm["p_status"] == "_Psyscall"
    assert "native.Syscall(SYS[\"read\"]" in alarm["blocking_line"]
    assert "_read_one_byte_blocking" in alarm["blocking_line"]
