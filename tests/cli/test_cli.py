"""``python -m aiosys``: doctor's output parses, the demo runs end to end in a short bounded
mode and prints its sections, echo --list, and a one-cell echo matrix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def aiosys_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiosys", *args],
        capture_output=True, text=True, timeout=timeout, cwd=str(REPO),
        env=dict(os.environ, PYTHONDEVMODE=""),
    )  # fmt: skip


def test_doctor_json_reports_every_probe(tmp_path: Path) -> None:
    p = aiosys_cli("doctor", "--json", str(tmp_path), "/dev/shm")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert isinstance(d["epoll_pwait2"], bool)
    probes = {r["path"]: r for r in d["rwf_nowait"]}
    assert probes[str(tmp_path)]["rwf_nowait"] in {"hit", "eagain", "unsupported"}
    if probes["/dev/shm"]["fs"] == "tmpfs":
        assert probes["/dev/shm"]["rwf_nowait"] == "unsupported"
    assert d["io_uring"]["status"]
    assert isinstance(d["clock"]["vdso_mapped"], bool)
    assert d["fd_limits"]["rlimit_nofile_soft"] > 0
    assert list(tmp_path.iterdir()) == []  # the scratch file is gone


def test_doctor_text_is_one_key_per_line() -> None:
    p = aiosys_cli("doctor")
    assert p.returncode == 0, p.stderr
    keys = [line.split(":", 1)[0] for line in p.stdout.splitlines()]
    for key in ("kernel", "epoll_pwait2", "rwf_nowait", "io_uring", "vdso_clock", "fd_limits"):
        assert key in keys, p.stdout


def test_demo_runs_end_to_end_and_prints_its_sections() -> None:
    p = aiosys_cli("demo", "--seconds", "1", "--conns", "8")
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    assert "Traceback" not in p.stderr, p.stderr
    for section in ("aiosys demo:", "== load (native generator) ==", "requests/s:",
                    "latency: p50", "== handoff events", "== aiosys.stats() =="):  # fmt: skip
        assert section in out, out
    assert " 0 errors, 0 mismatched bytes" in out


def test_echo_list_names_every_implementation() -> None:
    p = aiosys_cli("echo", "--list")
    assert p.returncode == 0
    names = {line.split()[0] for line in p.stdout.splitlines()}
    assert {"goroutine", "asyncio-uvloop", "protocol-uvloop", "trio", "go"} <= names


def test_one_cell_echo_matrix_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    p = aiosys_cli(
        "bench", "echo", "--impls", "asyncio-stdlib", "--seconds", "0.5",
        "--warmup", "0.1", "--reps", "2", "--conns", "4", "--json", str(out),
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    data = json.loads(out.read_text())
    (cell,) = data["cells"]
    assert cell["impl"] == "asyncio-stdlib" and len(cell["reps"]) == 2
    assert all(r["requests"] > 0 and r["cpu_us_per_req"] >= 0 for r in cell["reps"])
    assert "| asyncio-stdlib | 64 | 4 |" in p.stdout


def test_chart_draws_a_png_from_matrix_json(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    cells = [{"impl": name, "size": 64, "conns": 100, "skipped": None,
              "reps": [{"requests": 1000, "seconds": 1.0, "rps": 1000.0, "cpu_s": cpu,
                        "cpu_us_per_req": cpu * 1000, "p50_us": 1.0, "p99_us": 2.0,
                        "max_us": 3.0, "gen_cpu_s": 0.1, "errors": 0, "mismatches": 0}]}
             for name, cpu in [("goroutine", 0.02), ("asyncio-uvloop", 0.03)]]  # fmt: skip
    cfg = {"impls": ["goroutine"], "sizes": [64], "conns": [100], "seconds": 1.0,
           "warmup": 0.1, "reps": 1, "server_cpu": 0, "gen_cpu": 1}  # fmt: skip
    src = tmp_path / "m.json"
    src.write_text(json.dumps({"config": cfg, "machine": {}, "cells": cells}))
    png = tmp_path / "c.png"
    p = aiosys_cli("bench", "chart", "--json", str(src), "--out", str(png))
    assert p.returncode == 0, p.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("cmd", [["bench", "nonsense"], ["nonsense"], []])
def test_bad_usage_exits_2(cmd: list[str]) -> None:
    assert aiosys_cli(*cmd).returncode == 2


def test_trace_prints_schedtrace_lines_during_a_demo() -> None:
    from aiosys.sched import schedtrace

    p = aiosys_cli("trace", "--seconds", "1", "--interval", "100", "--conns", "4")
    assert p.returncode == 0, p.stdout + p.stderr
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("SCHED ")]
    assert lines, p.stdout
    parsed = schedtrace.parse(lines[-1])
    assert parsed["gomaxprocs"] >= 0 and "handoffs" in parsed


def test_echo_runs_the_chosen_server_in_the_foreground() -> None:
    from aiosys.cli._servers import ServerProcess

    cmd = [sys.executable, "-m", "aiosys", "echo", "--impl", "asyncio-stdlib", "--",
           "--max-conns", "5"]  # fmt: skip
    with ServerProcess(cmd) as sp:
        sp.start()
        import socket

        with socket.create_connection(("127.0.0.1", sp.port), timeout=5) as s:
            s.sendall(b"ping")
            assert s.recv(4) == b"ping"
        assert sp.stop() == 0, sp.stderr_text
