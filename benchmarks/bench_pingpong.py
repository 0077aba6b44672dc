"""Pipe ping-pong between two tasks: aiosys.netpoll read/write against asyncio's
``add_reader``-based ping-pong, on the stdlib loop and on uvloop, in one run.

Each variant runs ``--rounds`` times, interleaved (so machine noise hits all of them alike);
the report gives each variant's median round trips per second, its spread (min..max), and the
ratios of medians against the baselines.  Run pinned to one CPU for the figure
(``taskset -c 0``): both tasks share one loop thread anyway.

    .venv/bin/python benchmarks/bench_pingpong.py [--n 20000] [--rounds 7] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import uvloop

import aiosys.netpoll as netpoll


async def _aiosys_pingpong(n: int) -> tuple[float, float]:
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    read, write = netpoll.read, netpoll.write

    async def ping() -> None:
        for _ in range(n):
            await write(a_w, b"x")
            await read(b_r, 64)

    async def pong() -> None:
        for _ in range(n):
            await read(a_r, 64)
            await write(b_w, b"y")

    t, c = time.perf_counter(), time.process_time()
    await asyncio.gather(ping(), pong())
    dt, dc = time.perf_counter() - t, time.process_time() - c
    for fd in (a_r, a_w, b_r, b_w):
        await netpoll.close(fd)
    return n / dt, n / max(dc, 1e-9)


async def _add_reader_pingpong(n: int) -> tuple[float, float]:
    """The idiomatic asyncio way: non-blocking fds, try the read, on EAGAIN wait with
    add_reader (one-shot) and retry."""
    loop = asyncio.get_running_loop()
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    for fd in (a_r, a_w, b_r, b_w):
        os.set_blocking(fd, False)

    async def read(fd: int) -> bytes:
        while True:
            try:
                return os.read(fd, 64)
            except BlockingIOError:
                pass
            fut = loop.create_future()
            loop.add_reader(fd, fut.set_result, None)
            try:
                await fut
            finally:
                loop.remove_reader(fd)

    async def ping() -> None:
        for _ in range(n):
            os.write(a_w, b"x")
            await read(b_r)

    async def pong() -> None:
        for _ in range(n):
            await read(a_r)
            os.write(b_w, b"y")

    t, c = time.perf_counter(), time.process_time()
    await asyncio.gather(ping(), pong())
    dt, dc = time.perf_counter() - t, time.process_time() - c
    for fd in (a_r, a_w, b_r, b_w):
        os.close(fd)
    return n / dt, n / max(dc, 1e-9)


Rates = tuple[float, float]  # round trips per wall second, per CPU second
Body = Callable[[int], Awaitable[Rates]]
Runner = Callable[[Body, int], Rates]


def _on_stdlib(fn: Body, n: int) -> Rates:
    return asyncio.run(fn(n))  # type: ignore[arg-type]


def _on_uvloop(fn: Body, n: int) -> Rates:
    return uvloop.run(fn(n))  # type: ignore[arg-type]


def _on_aiosys(fn: Body, n: int) -> Rates:
    return netpoll.run(fn(n))  # type: ignore[arg-type]


VARIANTS: dict[str, tuple[Runner, Body]] = {
    "asyncio add_reader (stdlib loop)": (_on_stdlib, _add_reader_pingpong),
    "uvloop add_reader": (_on_uvloop, _add_reader_pingpong),
    "aiosys.netpoll (aiosys loop)": (_on_aiosys, _aiosys_pingpong),
    "aiosys.netpoll (stdlib loop, attach)": (_on_stdlib, _aiosys_pingpong),
    "aiosys.netpoll (uvloop, attach)": (_on_uvloop, _aiosys_pingpong),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="round trips per run")
    ap.add_argument("--rounds", type=int, default=7, help="runs per variant (interleaved)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    wall: dict[str, list[float]] = {name: [] for name in VARIANTS}
    cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for runner, fn in VARIANTS.values():  # warm-up
        runner(fn, max(args.n // 10, 100))
    for _ in range(args.rounds):
        for name, (runner, fn) in VARIANTS.items():
            w, c = runner(fn, args.n)
            wall[name].append(w)
            cpu[name].append(c)
    aff = sorted(os.sched_getaffinity(0))
    if args.json:
        print(json.dumps({"cpus": aff, "n": args.n, "rounds": args.rounds, "wall": wall,
                          "cpu": cpu}, indent=1))
        return 0
    print(f"pipe ping-pong, {args.n} round trips x {args.rounds} rounds, CPUs {aff}, "
          f"python {sys.version.split()[0]}")
    for title, results in (("round trips per wall-clock second", wall),
                           ("round trips per CPU second of this process (robust to a "
                            "shared machine)", cpu)):
        med = {name: statistics.median(v) for name, v in results.items()}
        base = med["asyncio add_reader (stdlib loop)"]
        uv = med["uvloop add_reader"]
        print(f"\n{title}")
        print(f"{'variant':40s} {'median':>10s} {'min..max':>21s} {'x stdlib':>9s} "
              f"{'x uvloop':>9s}")
        for name, v in results.items():
            print(f"{name:40s} {med[name]:10,.0f} {min(v):10,.0f}..{max(v):<10,.0f} "
                  f"{med[name] / base:9.2f} {med[name] / uv:9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
