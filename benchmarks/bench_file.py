"""Cached 4 KiB reads: ``await aiosys.pread`` against synchronous ``os.pread``, aiofiles and
``await loop.run_in_executor(None, os.pread, ...)``, ratios from one run; then reads/s with
16 tasks on one loop.

    .venv/bin/python benchmarks/bench_file.py [--loop aiosys|asyncio|uvloop] [--json]
    taskset -c 0 .venv/bin/python benchmarks/bench_file.py

Targets (issue 4): median <= 4x os.pread, >= 25x faster than aiofiles, >= 15x faster than
run_in_executor; >= 250,000 reads/s with 16 tasks.
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
from typing import Any

import aiofiles
import uvloop

import aiosys._io as aio
import aiosys.netpoll as netpoll
from aiosys.native import _mpool
from aiosys.sched.stats import counters

SIZE = 4096
FILE_SIZE = 1 << 20


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "aiosys":
        return netpoll.new_event_loop()
    if kind == "uvloop":
        return uvloop.new_event_loop()  # type: ignore[no-any-return]
    return asyncio.new_event_loop()


def per_call_us(total_s: float, n: int) -> float:
    return total_s / n * 1e6


async def main(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    fd, path = tempfile.mkstemp(dir="/tmp")
    os.write(fd, os.urandom(FILE_SIZE))
    os.pread(fd, FILE_SIZE, 0)
    nblocks = FILE_SIZE // SIZE
    pc = time.perf_counter
    try:
        af = await aiofiles.open(path, "rb", buffering=0)

        def sync_pread(n: int) -> float:
            t0 = pc()
            for i in range(n):
                os.pread(fd, SIZE, (i % nblocks) * SIZE)
            return pc() - t0

        async def aiosys_pread(n: int) -> float:
            t0 = pc()
            for i in range(n):
                await aio.pread(fd, SIZE, (i % nblocks) * SIZE)
            return pc() - t0

        async def executor(n: int) -> float:
            t0 = pc()
            for i in range(n):
                await loop.run_in_executor(None, os.pread, fd, SIZE, (i % nblocks) * SIZE)
            return pc() - t0

        async def aiofiles_read(n: int) -> float:
            await af.seek(0)
            t0 = pc()
            for i in range(n):
                if i % nblocks == 0:
                    await af.seek(0)
                await af.read(SIZE)
            return pc() - t0

        # Warm-up (threads started, code paths hot).
        sync_pread(1000)
        await aiosys_pread(1000)
        await executor(200)
        await aiofiles_read(200)
        per: dict[str, list[float]] = {k: [] for k in ("os.pread", "aiosys.pread",
                                                        "run_in_executor", "aiofiles")}
        n_fast, n_slow = args.n, max(200, args.n // 50)
        for _ in range(args.rounds):  # interleaved rounds
            per["os.pread"].append(per_call_us(sync_pread(n_fast), n_fast))
            per["aiosys.pread"].append(per_call_us(await aiosys_pread(n_fast), n_fast))
            per["run_in_executor"].append(per_call_us(await executor(n_slow), n_slow))
            per["aiofiles"].append(per_call_us(await aiofiles_read(n_slow), n_slow))
        med = {k: statistics.median(v) for k, v in per.items()}
        hits0, handoffs0 = counters.nowait_hits, counters.handoffs

        async def reader(stop: float, box: list[int]) -> None:
            i = 0
            while pc() < stop:
                for _ in range(64):
                    await aio.pread(fd, SIZE, (i % nblocks) * SIZE)
                    i += 1
                box[0] += 64

        rates = []
        for _ in range(3):
            box = [0]
            t0 = pc()
            stop = t0 + args.seconds
            await asyncio.gather(*(reader(stop, box) for _ in range(16)))
            rates.append(box[0] / (pc() - t0))
        await af.close()
        return {
            "loop": args.loop,
            "usable_cpus": _mpool.usable_cpus(),
            "per_call_us_median": {k: round(v, 3) for k, v in med.items()},
            "per_call_us_rounds": {k: [round(x, 3) for x in v] for k, v in per.items()},
            "ratio_vs_os_pread": round(med["aiosys.pread"] / med["os.pread"], 2),
            "faster_than_executor": round(med["run_in_executor"] / med["aiosys.pread"], 1),
            "faster_than_aiofiles": round(med["aiofiles"] / med["aiosys.pread"], 1),
            "reads_per_s_16_tasks": round(statistics.median(rates)),
            "reads_per_s_rounds": [round(r) for r in rates],
            "handoffs_during_16_tasks": counters.handoffs - handoffs0,
            "nowait_hits_during_16_tasks": counters.nowait_hits - hits0,
        }
    finally:
        os.close(fd)
        os.unlink(path)


def cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loop", default="aiosys", choices=["aiosys", "asyncio", "uvloop"])
    ap.add_argument("--n", type=int, default=20000, help="fast calls per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0)
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
    print(f"loop={res['loop']} usable_cpus={res['usable_cpus']}")
    for k, v in res["per_call_us_median"].items():
        print(f"  {k:16s} {v:9.3f} us/call  rounds {res['per_call_us_rounds'][k]}")
    print(f"  aiosys.pread / os.pread      = {res['ratio_vs_os_pread']}x   (target <= 4)")
    print(f"  run_in_executor / aiosys     = {res['faster_than_executor']}x  (target >= 15)")
    print(f"  aiofiles / aiosys            = {res['faster_than_aiofiles']}x  (target >= 25)")
    print(f"  16 tasks: {res['reads_per_s_16_tasks']} reads/s {res['reads_per_s_rounds']} "
          f"(target >= 250000); handoffs {res['handoffs_during_16_tasks']}, "
          f"nowait hits {res['nowait_hits_during_16_tasks']}")


if __name__ == "__main__":
    cli()
