"""Forced handoff round trip: ``await aiosys.fstat(fd)`` (always handed to an M) and
``await aiosys.pread`` with the RWF_NOWAIT fast path off, against
``await loop.run_in_executor(None, os.fstat, fd)`` on the same loop, in the same run.

Reports medians, p99 and the spread of the per-round medians (noise); then 8 concurrent
callers' throughput.  Run pinned and unpinned::

    .venv/bin/python benchmarks/bench_handoff.py [--loop aiosys|asyncio|uvloop] [--json]
    taskset -c 0 .venv/bin/python benchmarks/bench_handoff.py

Targets (issue 4): median <= 1/3 of run_in_executor, p99 < 150 us; 8 callers >= 2x.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

import aiosys._io as aio
import aiosys.netpoll as netpoll
from aiosys.native import _mpool


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "aiosys":
        return netpoll.new_event_loop()
    if kind == "uvloop":
        return uvloop.new_event_loop()  # type: ignore[no-any-return]
    return asyncio.new_event_loop()


async def lat(fn: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    out = []
    pc = time.perf_counter_ns
    for _ in range(n):
        t0 = pc()
        await fn()
        out.append((pc() - t0) / 1000.0)
    return out


async def throughput(fn: Callable[[], Awaitable[Any]], callers: int, seconds: float) -> float:
    stop = time.perf_counter() + seconds
    count = 0

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < stop:
            await fn()
            count += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(callers)))
    return count / (time.perf_counter() - t0)


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


async def main(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    fd, path = tempfile.mkstemp(dir="/tmp")
    os.write(fd, os.urandom(65536))
    # A second fd on the same file with the fast path forced off (as tmpfs does).
    fd2 = os.open(path, os.O_RDONLY)
    aio._fdinfo[fd2] = aio._RNOWAIT_OFF | aio._WNOWAIT_OFF
    try:
        cases: dict[str, Callable[[], Awaitable[Any]]] = {
            "aiosys.fstat": lambda: aio.fstat(fd),
            "aiosys.pread(nowait off)": lambda: aio.pread(fd2, 4096, 0),
            "run_in_executor(os.fstat)": lambda: loop.run_in_executor(None, os.fstat, fd),
            "run_in_executor(os.pread)": lambda: loop.run_in_executor(
                None, os.pread, fd, 4096, 0
            ),
        }
        for fn in cases.values():  # warm up: threads started, pages cached
            await lat(fn, 200)
        rounds: dict[str, list[list[float]]] = {k: [] for k in cases}
        for _ in range(args.rounds):  # interleaved rounds: drift hits every case alike
            for name, fn in cases.items():
                rounds[name].append(await lat(fn, args.n))
        res: dict[str, Any] = {"loop": args.loop, "cpus": _mpool.usable_cpus(), "latency": {}}
        for name, rs in rounds.items():
            allv = [x for r in rs for x in r]
            meds = [statistics.median(r) for r in rs]
            res["latency"][name] = {
                "median_us": round(statistics.median(allv), 2),
                "p99_us": round(pct(allv, 0.99), 2),
                "round_medians_us": [round(m, 2) for m in meds],
            }
        tp: dict[str, list[float]] = {"aiosys.fstat": [], "run_in_executor(os.fstat)": []}
        for _ in range(3):
            for name in tp:
                tp[name].append(await throughput(cases[name], 8, args.seconds))
        res["throughput_8_callers"] = {k: round(statistics.median(v)) for k, v in tp.items()}
        lat_ = res["latency"]
        res["ratio_fstat_vs_executor"] = round(
            lat_["aiosys.fstat"]["median_us"] / lat_["run_in_executor(os.fstat)"]["median_us"], 3
        )
        res["ratio_pread_vs_executor"] = round(
            lat_["aiosys.pread(nowait off)"]["median_us"]
            / lat_["run_in_executor(os.pread)"]["median_us"],
            3,
        )
        res["throughput_ratio"] = round(
            res["throughput_8_callers"]["aiosys.fstat"]
            / res["throughput_8_callers"]["run_in_executor(os.fstat)"],
            2,
        )
        return res
    finally:
        os.close(fd)
        os.close(fd2)
        os.unlink(path)


def cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loop", default="aiosys", choices=["aiosys", "asyncio", "uvloop"])
    ap.add_argument("--n", type=int, default=2000, help="calls per case per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.5, help="per throughput sample")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    loop = new_loop(args.loop)
    try:
        res = loop.run_until_complete(main(args))
    finally:
        loop.close()
    if args.json:
        json.dump(res, sys.stdout)
        print()
        return
    print(f"loop={res['loop']} usable_cpus={res['cpus']}")
    for name, v in res["latency"].items():
        print(f"  {name:28s} median {v['median_us']:8.2f} us  p99 {v['p99_us']:8.2f} us  "
              f"round medians {v['round_medians_us']}")
    print(f"  fstat ratio vs executor: {res['ratio_fstat_vs_executor']}  (target <= 0.333)")
    print(f"  pread ratio vs executor: {res['ratio_pread_vs_executor']}  (target <= 0.333)")
    t = res["throughput_8_callers"]
    print(f"  8 callers: aiosys {t['aiosys.fstat']}/s, executor "
          f"{t['run_in_executor(os.fstat)']}/s, ratio {res['throughput_ratio']} (target >= 2)")


if __name__ == "__main__":
    cli()
