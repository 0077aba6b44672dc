"""sysmon: stalled loops (stdlib asyncio, uvloop, the aiosys loop), long handed-off calls, pool
growth, back-off.  Thresholds are low and the blocking generous; the tests wait for the alarm
(bounded) and never assert how fast it came."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
import uvloop
from obs_fakes import FakeG, FakeP
from obs_loops import LOOP_KINDS, new_loop
from structlog.testing import capture_logs

import aiosys.trace
from aiosys.native import nanotime
from aiosys.sched import sysmon
from aiosys.sched.sysmon import Sysmon, SysmonConfig

BLOCK_S = 0.3
STALL_MS = 50.0


def _wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


def _kinds(s: Sysmon) -> list[str]:
    return [k for k, _ in s.counters.recent]


def _block_the_loop() -> None:
    time.sleep(BLOCK_S)  # the blocking line sysmon must name


async def _stall_once(s: Sysmon, *, watch: bool = True) -> None:
    loop = asyncio.get_running_loop()
    if watch:
        s.watch_loop(loop)
    else:  # sysmon finds the loop itself (through the scheduler's P list)
        for _ in range(500):
            if loop in s.watched():
                break
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.06)  # sysmon sees the loop idle, then busy for a moment
    assert "loop_stalled" not in _kinds(s)
    loop.call_soon(_block_the_loop)
    await asyncio.sleep(0)
    # Back after the block; give sysmon a bounded moment to see it resume.
    for _ in range(200):
        if "loop_resumed" in _kinds(s):
            break
        await asyncio.sleep(0.01)


def _check_stall_alarm(s: Sysmon) -> dict[str, Any]:
    stalls = [f for k, f in s.counters.recent if k == "loop_stalled"]
    assert len(stalls) == 1, s.counters.recent
    alarm = stalls[0]
    assert alarm["blocking_line"] is not None
    assert "test_obs_sysmon.py" in alarm["blocking_line"]
    assert "time.sleep(BLOCK_S)" in alarm["blocking_line"]
    assert "_block_the_loop" in alarm["blocking_line"]
    assert alarm["stack"][-1] == alarm["blocking_line"]
    assert alarm["stalled_ms"] >= STALL_MS
    resumed = [f for k, f in s.counters.recent if k == "loop_resumed"]
    assert len(resumed) == 1
    assert resumed[0]["stalled_ms"] >= alarm["stalled_ms"]
    return alarm


def _run_on(kind: str, s: Sysmon) -> None:
    loop = new_loop(kind)
    try:
        loop.run_until_complete(_stall_once(s))
    finally:
        loop.close()


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_stalled_loop_is_reported_with_the_blocking_line(
    kind: str,
) -> None:
    s = Sysmon(SysmonConfig(stall_ms=STALL_MS), inflight=list, procs=list, stats=dict)
    s.start()
    try:
        _run_on(kind, s)
    finally:
        s.stop()
    _check_stall_alarm(s)


def test_stall_alarm_is_a_structlog_warning_when_tracing() -> None:
    loop = uvloop.new_event_loop()
    with capture_logs() as logs:
        aiosys.trace.enable(stall_ms=STALL_MS)
        s = sysmon.current()
        assert s is not None
        try:
            loop.run_until_complete(_stall_once(s))
        finally:
            loop.close()
            aiosys.trace.disable()
    alarms = [e for e in logs if e["event"] == "sysmon_alarm"]
    kinds = [e["kind"] for e in alarms]
    assert "loop_stalled" in kinds and "loop_resumed" in kinds
    stalled = alarms[kinds.index("loop_stalled")]
    assert stalled["log_level"] == "warning"
    assert "time.sleep(BLOCK_S)" in stalled["blocking_line"]


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_idle_and_stopped_loops_are_not_stalls_and_not_probed(
    kind: str,
) -> None:
    s = Sysmon(SysmonConfig(stall_ms=STALL_MS), inflight=list, procs=list, stats=dict)
    s.start()
    loop = new_loop(kind)
    try:
        s.watch_loop(loop)
        loop.run_until_complete(asyncio.sleep(0.15))
        time.sleep(0.15)  # loop not running: the thread's business, not a stall
        rounds = s.counters.rounds
        loop.run_until_complete(asyncio.sleep(0.6))  # idle, parked in the selector
        rounds = s.counters.rounds - rounds
        (w,) = s._watches.values()
        # An idle loop is not woken: the first probe (to learn the thread), one or two when
        # sysmon catches the loop between run_until_complete calls, nothing per round.
        assert w.probes <= 5 < rounds, (w.probes, rounds)
    finally:
        loop.close()
        s.stop()
    assert "loop_stalled" not in _kinds(s)


async def _busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.001)  # short callbacks, each well under the threshold
        await asyncio.sleep(0)


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_busy_loop_of_short_callbacks_is_probed_not_stalled(
    kind: str,
) -> None:
    s = Sysmon(SysmonConfig(stall_ms=150.0), inflight=list, procs=list, stats=dict)
    s.start()
    loop = new_loop(kind)
    try:
        s.watch_loop(loop)
        loop.run_until_complete(_busy(0.3))
        (w,) = s._watches.values()
        assert w.probes >= 2
    finally:
        loop.close()
        s.stop()
    assert "loop_stalled" not in _kinds(s)


def test_closed_loops_are_forgotten() -> None:
    s = Sysmon(SysmonConfig(stall_ms=STALL_MS), inflight=list, procs=list, stats=dict)
    s.start()
    try:
        loop = asyncio.new_event_loop()
        s.watch_loop(loop)
        loop.run_until_complete(asyncio.sleep(0.01))
        loop.close()
        assert _wait_for(lambda: s.watched() == [])
    finally:
        s.stop()


def test_loops_of_the_schedulers_ps_are_watched() -> None:
    loop = asyncio.new_event_loop()
    ps = [FakeP(id=4, loop=loop)]
    s = Sysmon(SysmonConfig(stall_ms=STALL_MS), inflight=list, procs=lambda: ps, stats=dict)
    s.start()
    try:
        loop.run_until_complete(_stall_once(s, watch=False))
    finally:
        loop.close()
        s.stop()
    assert _check_stall_alarm(s)["p"] == 4


def test_long_syscall_reported_once_per_g() -> None:
    slow = FakeG(syscall="fsync", fd=11)
    slow.t_start = slow.t_enter + 1000
    quick = FakeG()
    quick.t_start = quick.t_enter + 1000
    inflight = [slow, quick]
    s = Sysmon(SysmonConfig(syscall_ms=1000.0), inflight=lambda: inflight, procs=list, stats=dict)
    now = slow.t_enter + 10_000_000  # 10 ms later: nothing to say
    assert s.round(now) is False
    quick.t_end = now  # finished calls are never "long"
    now = slow.t_enter + 1_500_000_000
    assert s.round(now) is True
    assert s.round(now + 1) is False  # once per G
    (alarm,) = [f for k, f in s.counters.recent if k == "long_syscall"]
    assert alarm["goid"] == slow.goid and alarm["syscall"] == "fsync" and alarm["fd"] == 11
    assert alarm["state"] == "_Gsyscall" and alarm["elapsed_ms"] == pytest.approx(1500.0)
    inflight.clear()
    s.round(now + 2)
    assert not s._reported  # forgotten once the G is gone


def test_grow_pool_when_calls_wait_and_no_m_is_idle() -> None:
    started: list[int] = [1]
    grown: list[int] = []
    waiting = FakeG()
    pool = {"m_busy": 2, "m_idle": 0, "queue_depth": 3, "m_threads": 2, "m_max": 2}

    def grow() -> int:
        grown.append(1)
        return started[0]

    s = Sysmon(
        SysmonConfig(grow_wait_ms=1.0),
        inflight=lambda: [waiting],
        procs=list,
        grow_pool=grow,
        stats=lambda: pool,
    )
    t0 = waiting.t_enter
    assert s.round(t0 + 100_000) is False  # first sight of the queue: give the pool a chance
    assert s.round(t0 + 600_000) is False  # queued 0.5 ms
    assert s.round(t0 + 1_200_000) is True  # queued 1.1 ms, no M idle: grow
    assert grown == [1]
    assert s.round(t0 + 1_500_000) is False  # not again before grow_wait_ms passed
    started[0] = 0  # at the cap: grow_pool starts nothing
    assert s.round(t0 + 3_000_000) is True
    assert s.round(t0 + 5_000_000) is False  # "capped" is said once per episode
    assert len(grown) == 3
    pool["m_idle"] = 1
    assert s.round(t0 + 10_000_000) is False  # an idle M exists: not sysmon's business
    assert len(grown) == 3
    kinds = _kinds(s)
    assert kinds == ["grow_pool", "pool_capped"]
    grow_alarm = s.counters.recent[0][1]
    assert grow_alarm["queued"] == 3 and grow_alarm["m_busy"] == 2 and grow_alarm["started"] == 1
    assert s.counters.recent[1][1]["m_max"] == 2


def test_real_thread_slow_handed_off_call_alarm() -> None:
    """A G that stays in flight (a fake slow call) is reported by the running thread."""
    g = FakeG(syscall="read", fd=3)
    g.t_start = nanotime()
    s = Sysmon(SysmonConfig(syscall_ms=50.0), inflight=lambda: [g], procs=list, stats=dict)
    s.start()
    try:
        assert _wait_for(lambda: "long_syscall" in _kinds(s))
    finally:
        s.stop()


def test_backoff_follows_go() -> None:
    d = sysmon.backoff(0, 10_000)
    assert d == 20
    for idle in range(1, 51):
        d = sysmon.backoff(idle, d)
    assert d == 20  # 50 idle rounds at 20 µs first
    seen = []
    for idle in range(51, 70):
        d = sysmon.backoff(idle, d)
        seen.append(d)
    assert seen[:3] == [40, 80, 160]
    assert max(seen) == seen[-1] == 10_000


def test_require_release_share_one_thread() -> None:
    a = sysmon.require("a")
    b = sysmon.require("b", stall_ms=70.0)
    assert a is b and a.running and a.config.stall_ms == 70.0
    sysmon.release("a")
    assert a.running
    sysmon.release("b")
    assert not a.running and sysmon.current() is None
    with pytest.raises(TypeError):
        sysmon.require("c", no_such_setting=1)
    sysmon.stop()


def test_a_bad_source_does_not_kill_sysmon() -> None:
    def broken() -> list[Any]:
        raise RuntimeError("boom")

    s = Sysmon(SysmonConfig(), inflight=broken, procs=list, stats=dict)
    s.start()
    try:
        assert _wait_for(lambda: "sysmon_error" in _kinds(s))
        assert s.running
    finally:
        s.stop()
    assert _kinds(s).count("sysmon_error") == 1


def test_m_events_are_sampled_from_the_pool_while_tracing() -> None:
    tids = [101, 102]
    pool = {"m_idle": 1}
    s = Sysmon(
        SysmonConfig(), inflight=list, procs=list, stats=lambda: pool, mthreads=lambda: tids
    )
    with capture_logs() as logs:
        s.round(nanotime())  # tracing off: nothing sampled
        aiosys.trace.enable(sysmon=False)
        s.round(nanotime())  # baseline: the Ms that already exist are not "spawned"
        tids.append(103)
        pool["m_idle"] = 3
        s.round(nanotime())
        tids.remove(101)
        pool["m_idle"] = 2
        s.round(nanotime())
        aiosys.trace.disable()
    events = [(e["event"], e["m"], e.get("count")) for e in logs]
    assert events == [
        ("m_spawn", 103, None),
        ("m_park", -1, 2),
        ("m_exit", 101, None),
        ("m_unpark", -1, 1),
    ]
    assert logs[0]["m_threads"] == 3


def _thread_blocked_in(caller_file: str) -> tuple[list[str], str | None]:
    """A thread whose innermost frame is a (fake) aiosys wrapper sleeping, called from code
    compiled under ``caller_file``; returns what sysmon would name."""
    import os
    import threading

    wrapper_ns: dict[str, Any] = {"time": time}
    aiosys_file = os.path.join(sysmon._AIOSYS_DIR, "fake_wrapper.py")
    exec(compile("def wrapper():\n    time.sleep(0.3)\n", aiosys_file, "exec"), wrapper_ns)
    caller_ns: dict[str, Any] = {"wrapper": wrapper_ns["wrapper"]}
    exec(compile("def caller():\n    wrapper()\n", caller_file, "exec"), caller_ns)
    t = threading.Thread(target=caller_ns["caller"])
    t.start()
    try:
        assert t.ident is not None
        for _ in range(200):
            stack, line = sysmon.blocking_frame(t.ident)
            if stack and "in wrapper" in stack[-1]:
                return stack, line
            time.sleep(0.001)
        raise AssertionError("thread never reached the wrapper")
    finally:
        t.join()


def test_blocking_line_names_the_caller_of_an_aiosys_wrapper() -> None:
    stack, line = _thread_blocked_in("/somewhere/user_code.py")
    assert line is not None and line.startswith("/somewhere/user_code.py:2 in caller")


def test_blocking_line_is_aiosys_itself_when_the_loop_called_it() -> None:
    stack, line = _thread_blocked_in("/usr/lib/python3.11/asyncio/events.py")
    assert line == stack[-1] and "fake_wrapper.py:2 in wrapper" in line
