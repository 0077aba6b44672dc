"""The structured events themselves: names, fields, paths, µs figures (structlog's capture)."""

from __future__ import annotations

import io
import json

import pytest
import structlog
from obs_fakes import FakeG
from structlog.testing import capture_logs

import aiosys.trace
from aiosys.sched import trace


def test_off_by_default() -> None:
    assert trace.ENABLED is False
    assert aiosys.trace.enabled() is False


def test_enable_disable_flip_the_module_bool() -> None:
    aiosys.trace.enable(sysmon=False)
    assert trace.ENABLED is True
    aiosys.trace.disable()
    assert trace.ENABLED is False


def test_entersyscall_and_exitsyscall_fields() -> None:
    g = FakeG(syscall="fsync", fd=9, p_id=2, queue_depth=3)
    with capture_logs() as logs:
        aiosys.trace.enable(sysmon=False)
        trace.entersyscall(g)
        g.t_start = g.t_enter + 12_345
        g.t_end = g.t_start + 250_000
        trace.exitsyscall(g, "fast")
    enter, exit_ = logs
    assert enter["event"] == "entersyscall"
    assert {k: enter[k] for k in ("syscall", "fd", "goid", "p", "queue_depth")} == {
        "syscall": "fsync",
        "fd": 9,
        "goid": g.goid,
        "p": 2,
        "queue_depth": 3,
    }
    assert exit_["event"] == "exitsyscall"
    assert exit_["path"] == "fast"
    assert exit_["wait_us"] == pytest.approx(12.3, abs=0.1)
    assert exit_["run_us"] == pytest.approx(250.0)
    assert exit_["total_us"] == pytest.approx(262.3, abs=0.1)


def test_missing_stamps_give_none_never_negative() -> None:
    g = FakeG()
    g.t_start = 0  # cancelled before an M took it
    g.t_end = g.t_enter - 5  # clock oddity must not give a negative figure
    with capture_logs() as logs:
        aiosys.trace.enable(sysmon=False)
        trace.exitsyscall(g, "slow")
    (ev,) = logs
    assert ev["path"] == "slow"
    assert ev["wait_us"] is None and ev["run_us"] is None
    assert ev["total_us"] == 0.0


def test_m_events_and_alarm_levels() -> None:
    with capture_logs() as logs:
        aiosys.trace.enable(sysmon=False)
        trace.m_event("spawn", 3, pool_size=4)
        trace.m_event("park", 3)
        trace.m_event("m_exit", 3, idle_s=30)
        trace.sysmon_alarm("loop_stalled", stalled_ms=120.0)
        trace.sysmon_alarm("grow_pool", waiting=2)
    names = [e["event"] for e in logs]
    assert names == ["m_spawn", "m_park", "m_exit", "sysmon_alarm", "sysmon_alarm"]
    assert logs[0]["m"] == 3 and logs[0]["pool_size"] == 4
    assert logs[3]["log_level"] == "warning" and logs[3]["kind"] == "loop_stalled"
    assert logs[4]["log_level"] == "info" and logs[4]["kind"] == "grow_pool"


def test_alarm_listeners_hear_alarms_even_when_tracing_is_off() -> None:
    heard: list[tuple[str, dict[str, object]]] = []
    trace.alarm_listeners.append(lambda kind, fields: heard.append((kind, fields)))
    with capture_logs() as logs:
        trace.sysmon_alarm("long_syscall", goid=1)
    assert logs == []
    assert heard == [("long_syscall", {"goid": 1})]


def test_json_renderer_writes_one_json_object_per_event() -> None:
    out = io.StringIO()
    aiosys.trace.enable(renderer="json", file=out, sysmon=False)
    g = FakeG(syscall="pread64", fd=5)
    trace.entersyscall(g)
    g.t_start, g.t_end = g.t_enter + 1000, g.t_enter + 3000
    trace.exitsyscall(g, "fast")
    aiosys.trace.disable()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    a, b = (json.loads(x) for x in lines)
    assert a["event"] == "entersyscall" and a["fd"] == 5 and a["level"] == "info"
    assert "timestamp" in a
    assert b["event"] == "exitsyscall" and b["run_us"] == 2.0 and b["wait_us"] == 1.0


def test_console_renderer_writes_text() -> None:
    out = io.StringIO()
    aiosys.trace.enable(renderer="console", file=out, sysmon=False)
    trace.m_event("spawn", 1)
    aiosys.trace.disable()
    assert "m_spawn" in out.getvalue()


def test_private_renderer_leaves_structlog_config_alone() -> None:
    before = structlog.get_config()
    aiosys.trace.enable(renderer="json", file=io.StringIO(), sysmon=False)
    aiosys.trace.disable()
    assert structlog.get_config() == before


def test_bad_renderer_is_refused() -> None:
    with pytest.raises(ValueError):
        aiosys.trace.enable(renderer="xml", sysmon=False)  # type: ignore[arg-type]
    assert not trace.ENABLED
