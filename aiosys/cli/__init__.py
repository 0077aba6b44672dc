"""``python -m aiosys``: the command line (demo, echo, bench, doctor, trace).

Not part of the library's API: the CLI configures logging and prints; the library never does.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m aiosys",
        description="aiosys: Go's syscall machinery for asyncio (demo, servers, benchmarks).",
    )
    sub = ap.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("demo", help="echo server + native load burst + handoff events + stats")
    d.add_argument("--seconds", type=float, default=3.0, help="length of the load burst")
    d.add_argument("--conns", type=int, default=50)
    d.add_argument("--size", type=int, default=64, help="message size in bytes")
    d.add_argument("--events", type=int, default=5, help="handoff events to print")

    e = sub.add_parser("echo", help="run one of the example echo servers in the foreground")
    e.add_argument("--impl", default="goroutine", help="server implementation (--list)")
    e.add_argument("--list", action="store_true", help="list implementations and exit")
    e.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the server")

    b = sub.add_parser("bench", help="benchmarks: echo matrix, micro-benchmarks, chart")
    bsub = b.add_subparsers(dest="what")  # none: "bench echo --quick" (make bench)
    be = bsub.add_parser("echo", help="the echo matrix (server CPU per request first)")
    mode = be.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="64 B, 100 conns, 1 s, 1 rep")
    mode.add_argument("--full", action="store_true", help="64 B and 16 KiB, 1/10/100 conns")
    be.add_argument("--impls", help="comma-separated implementations (default: all)")
    be.add_argument("--sizes", help="comma-separated message sizes")
    be.add_argument("--conns", help="comma-separated connection counts")
    be.add_argument("--seconds", type=float)
    be.add_argument("--warmup", type=float)
    be.add_argument("--reps", type=int)
    be.add_argument("--no-pin", action="store_true",
                    help="run server and generator unpinned (default: CPU 0 and CPU 1)")
    be.add_argument("--json", help="write the raw results here (default benchmarks/results/)")
    be.add_argument("--results", action="store_true",
                    help="write the table into benchmarks/RESULTS.md (issue 6 section)")
    be.add_argument("--chart", action="store_true", help="also draw the PNG chart")
    ba = bsub.add_parser("all", help="run every benchmarks/bench_*.py present")
    ba.add_argument("rest", nargs=argparse.REMAINDER, help="arguments passed to each script")
    br = bsub.add_parser("reads", help="quick cached 4 KiB read latency probe (for the chart)")
    br.add_argument("-n", type=int, default=2000, help="reads per method")
    bp = bsub.add_parser("report", help="the markdown table of a saved echo matrix run")
    bp.add_argument("--json", help="echo matrix JSON (default benchmarks/results/echo_full.json)")
    bp.add_argument("--results", action="store_true",
                    help="write it into benchmarks/RESULTS.md (issue 6 section)")
    bc = bsub.add_parser("chart", help="draw the chart from saved echo-matrix JSON")
    bc.add_argument("--json", help="echo matrix JSON (default benchmarks/results/echo_full.json)")
    bc.add_argument("--out", help="PNG path (default benchmarks/echo_cpu.png)")

    dr = sub.add_parser("doctor", help="what this kernel offers aiosys")
    dr.add_argument("paths", nargs="*", help="paths whose filesystem to probe for RWF_NOWAIT")
    dr.add_argument("--json", action="store_true", help="machine-readable output")

    t = sub.add_parser("trace", help="schedtrace lines while a demo runs")
    t.add_argument("--seconds", type=float, default=3.0)
    t.add_argument("--interval", type=float, default=500.0, help="milliseconds between lines")
    t.add_argument("--conns", type=int, default=50)
    t.add_argument("--size", type=int, default=64)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    if args.cmd == "bench" and args.what is None:
        args = _parser().parse_args([*argv, "echo", "--quick"])
    # Imported on demand: ``doctor`` must not pay for the benchmark harness, and so on.
    module = {"demo": "demo", "echo": "echo", "bench": "bench_cmd", "doctor": "doctor",
              "trace": "trace_cmd"}[args.cmd]  # fmt: skip
    mod: Any = importlib.import_module(f"aiosys.cli.{module}")
    return int(mod.main(args))
