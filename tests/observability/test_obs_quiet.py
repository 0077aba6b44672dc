"""A library never prints on its own: with tracing off nothing reaches stdout/stderr or the
log, whatever the scheduler and sysmon do."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from obs_fakes import FakeG
from structlog.testing import capture_logs

from aiosys.sched import sysmon, trace
from aiosys.sched.sysmon import Sysmon, SysmonConfig


def test_nothing_printed_or_logged_when_off(capsys: pytest.CaptureFixture[str]) -> None:
    g = FakeG()
    with capture_logs() as logs:
        # What the scheduler does on its hot path:
        if trace.ENABLED:
            trace.entersyscall(g)
        if trace.ENABLED:
            trace.exitsyscall(g, "fast")
        # sysmon findings while tracing is off are counted, not logged.
        s = Sysmon(SysmonConfig(syscall_ms=0.0), inflight=lambda: [g], procs=list, stats=dict)
        assert s.round(g.t_enter + 5_000_000)
        assert s.counters.long_syscalls == 1
    assert logs == []
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("AIOSYS_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=30
    )


def test_import_is_silent_and_off() -> None:
    r = _run("import aiosys.trace, aiosys.sched.trace as t; print(t.ENABLED)")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "False\n" and r.stderr == ""


_EMIT = (
    "import aiosys.trace, aiosys.sched.trace as t, aiosys.sched.sysmon as s\n"
    "print(t.ENABLED, flush=True)\n"
    "t.m_event('spawn', 1)\n"
    "s.stop()\n"
)


def test_environment_json_turns_tracing_on() -> None:
    r = _run(_EMIT, AIOSYS_TRACE="json")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "True\n"
    assert '"event": "m_spawn"' in r.stderr


def test_environment_schedtrace() -> None:
    code = "import time, aiosys.trace, aiosys.sched.sysmon as s\ntime.sleep(0.3)\ns.stop()\n"
    r = _run(code, AIOSYS_SCHEDTRACE="50")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert r.stderr.startswith("SCHED ")


def test_sysmon_started_by_nobody_is_not_running() -> None:
    assert sysmon.current() is None
