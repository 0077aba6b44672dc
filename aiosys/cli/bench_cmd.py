"""``python -m aiosys bench {echo,all,chart}``."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from . import bench
from ._servers import IMPLS


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x]


def echo(args: Any, out: TextIO) -> int:
    cfg = dataclasses.replace(bench.FULL if args.full else bench.QUICK)
    if args.impls:
        names = [x for x in args.impls.split(",") if x]
        unknown = [n for n in names if n not in IMPLS]
        if unknown:
            out.write(f"unknown implementations {unknown}; choose from {list(IMPLS)}\n")
            return 2
        cfg.impls = names
    if args.sizes:
        cfg.sizes = _ints(args.sizes)
    if args.conns:
        cfg.conns = _ints(args.conns)
    if args.no_pin:
        cfg.server_cpu = cfg.gen_cpu = None
    for attr in ("seconds", "warmup", "reps"):
        if getattr(args, attr) is not None:
            setattr(cfg, attr, getattr(args, attr))

    def progress(msg: str) -> None:
        out.write(msg + "\n")
        out.flush()

    cells = bench.run_matrix(cfg, progress)
    tag = "full" if args.full else "quick"
    json_path = Path(args.json) if args.json else bench.RESULTS_DIR / f"echo_{tag}.json"
    cmd = "python -m aiosys " + " ".join(sys.argv[1:] if sys.argv[1:2] == ["bench"] else [])
    bench.save_json(cells, cfg, json_path, cmd.strip())
    md = bench.markdown(cells, cfg, cmd.strip())
    out.write("\n" + md)
    out.write(f"\nraw results: {json_path}\n")
    if args.results:
        bench.write_results_section(md)
        out.write(f"updated {bench.RESULTS_MD}\n")
    if args.chart:
        png = bench.chart(json_path, bench.BENCH_DIR_CHART, _read_latency())
        out.write(f"chart: {png}\n")
    bad = [c for c in cells for r in c.reps if r.errors or r.mismatches]
    return 1 if bad else 0


READS_JSON = bench.RESULTS_DIR / "cached_read.json"


def _read_latency() -> dict[str, float] | None:
    if READS_JSON.exists():
        data: dict[str, float] = json.loads(READS_JSON.read_text())["median_us"]
        return data
    return None


def reads(args: Any, out: TextIO) -> int:
    from . import readprobe

    res = readprobe.probe(args.n)
    READS_JSON.parent.mkdir(parents=True, exist_ok=True)
    READS_JSON.write_text(json.dumps({"n": args.n, "median_us": res}, indent=1))
    base = res.get("os.pread (sync)")
    out.write("| method | median µs per cached 4 KiB read | x os.pread |\n|---|---:|---:|\n")
    for k, v in sorted(res.items(), key=lambda kv: kv[1]):
        out.write(f"| {k} | {v:.2f} | {v / base:.1f} |\n" if base else f"| {k} | {v:.2f} | |\n")
    out.write(f"\nraw results: {READS_JSON}\n")
    return 0


def report(args: Any, out: TextIO) -> int:
    src = Path(args.json) if args.json else bench.RESULTS_DIR / "echo_full.json"
    if not src.exists():
        out.write(f"{src} not found: run python -m aiosys bench echo --full first\n")
        return 2
    cfg, cells, meta = bench.load_json_meta(src)
    md = bench.markdown(cells, cfg, meta["command"], meta["when"], meta["machine"])
    out.write(md)
    if args.results:
        bench.write_results_section(md)
        out.write(f"updated {bench.RESULTS_MD}\n")
    return 0


def main(args: Any, out: TextIO = sys.stdout) -> int:
    if args.what == "report":
        return report(args, out)
    if args.what == "reads":
        return reads(args, out)
    if args.what == "echo":
        return echo(args, out)
    if args.what == "all":
        return bench.run_all([a for a in args.rest if a != "--"])
    if args.what == "chart":
        src = Path(args.json) if args.json else bench.RESULTS_DIR / "echo_full.json"
        if not src.exists():
            out.write(f"{src} not found: run python -m aiosys bench echo --full first\n")
            return 2
        png = bench.chart(src, Path(args.out) if args.out else bench.BENCH_DIR_CHART,
                          _read_latency())  # fmt: skip
        out.write(f"chart: {png}\n")
        return 0
    return 2
