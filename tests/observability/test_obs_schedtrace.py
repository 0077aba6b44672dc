"""schedtrace lines: format, parse, the periodic writer; aiosys.stats() merging."""

from __future__ import annotations

import io
import time

import pytest
from obs_fakes import FakeP

import aiosys.trace
from aiosys.sched import schedtrace, sysmon


def test_line_round_trips_through_parse() -> None:
    stats = {
        "m_busy": 2,
        "m_idle": 3,
        "m_spinning": 1,
        "queue_depth": 4,
        "inline_hits": 812,
        "handoffs": 190,
        "exits_fast": 188,
        "exits_slow": 2,
        "nowait_hits": 812,
        "nowait_misses": 3,
        "orphans_finalized": 1,
    }
    ps = [FakeP(id=0, status="_Pidle"), FakeP(id=1, completions=[1, 2])]
    text = schedtrace.line(1003, stats, ps)
    assert text.startswith("SCHED 1003ms: gomaxprocs=2 idleprocs=1 threads=7 ")
    got = schedtrace.parse(text)
    assert got == {
        "ms": 1003,
        "gomaxprocs": 2,
        "idleprocs": 1,
        "threads": 7,
        "spinningthreads": 1,
        "idlethreads": 3,
        "runqueue": 4,
        "per_p": [0, 2],
        "inline": 812,
        "handoffs": 190,
        "fast": 188,
        "slow": 2,
        "nowait": (812, 3),
        "orphans": 1,
    }


def test_line_with_nothing_known() -> None:
    got = schedtrace.parse(schedtrace.line(0, {}, [], loops=1))
    assert got["gomaxprocs"] == 1 and got["per_p"] == [] and got["handoffs"] == 0


def test_parse_refuses_other_text() -> None:
    with pytest.raises(ValueError):
        schedtrace.parse("hello")


def test_periodic_lines_are_written_and_parse() -> None:
    out = io.StringIO()
    aiosys.trace.schedtrace(20, file=out)
    s = sysmon.current()
    assert s is not None and s.running
    deadline = time.monotonic() + 5.0
    while out.getvalue().count("\n") < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    aiosys.trace.schedtrace(None)
    assert sysmon.current() is None  # nobody else needed sysmon: it stopped
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3
    parsed = [schedtrace.parse(x) for x in lines]
    ms = [p["ms"] for p in parsed]
    assert ms == sorted(ms) and ms[-1] > ms[0]
    for p in parsed:
        assert p["runqueue"] >= 0 and p["threads"] >= p["idlethreads"]


def test_schedtrace_keeps_sysmon_for_tracing() -> None:
    out = io.StringIO()
    aiosys.trace.enable(sysmon=True)
    aiosys.trace.schedtrace(1000, file=out)
    aiosys.trace.schedtrace(None)
    s = sysmon.current()
    assert s is not None and s.running  # tracing still needs it
    aiosys.trace.disable()
    assert sysmon.current() is None


def test_merged_stats_is_a_dict_of_ints() -> None:
    got = aiosys.trace.stats()
    assert isinstance(got, dict)
    assert all(isinstance(k, str) and isinstance(v, int) for k, v in got.items())
