"""A quick cached 4 KiB read latency probe for the README chart (``bench reads``).

The full benchmark with its targets is the scheduler's ``benchmarks/bench_file.py``; this
probe only gives the chart one comparable median per method, measured in one run:
``os.pread`` (synchronous floor), ``aiosys.pread`` (RWF_NOWAIT inline on the aiosys loop),
``loop.run_in_executor``, ``asyncio.to_thread``, aiofiles, anyio and trio ``to_thread``.
Each: a warm-up, then N sequential awaited reads of one cached page, median of per-call
``perf_counter_ns`` deltas.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from . import _api

SIZE = 4096


def _median_us(samples: list[int]) -> float:
    return round(statistics.median(samples) / 1000.0, 3)


async def _time_async(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    for _ in range(min(200, n)):
        await fn()
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        await fn()
        out.append(clock() - t0)
    return _median_us(out)


def probe(n: int = 2000) -> dict[str, float]:
    """Median µs per cached 4 KiB read, per method (methods whose library is missing are
    left out)."""
    fd, path = tempfile.mkstemp(prefix="aiosys-readprobe-", dir="/var/tmp")
    res: dict[str, float] = {}
    try:
        os.write(fd, os.urandom(SIZE * 4))
        os.pread(fd, SIZE, 0)  # cached
        clock = time.perf_counter_ns
        samples = []
        for _ in range(n):
            t0 = clock()
            os.pread(fd, SIZE, 0)
            samples.append(clock() - t0)
        res["os.pread (sync)"] = _median_us(samples)

        pread = _api.public("pread")
        factory, name = _api.loop_factory()
        if pread is not None and name == "aiosys":
            with asyncio.Runner(loop_factory=factory) as r:
                res["aiosys.pread"] = r.run(_time_async(lambda: pread(fd, SIZE, 0), n))

        async def peers() -> None:
            loop = asyncio.get_running_loop()
            res["run_in_executor"] = await _time_async(
                lambda: loop.run_in_executor(None, os.pread, fd, SIZE, 0), n
            )
            res["asyncio.to_thread"] = await _time_async(
                lambda: asyncio.to_thread(os.pread, fd, SIZE, 0), n
            )
            with contextlib.suppress(ImportError):
                aiofiles: Any = importlib.import_module("aiofiles")
                async with aiofiles.open(path, "rb", buffering=0) as f:

                    async def af() -> bytes:
                        await f.seek(0)
                        data: bytes = await f.read(SIZE)
                        return data

                    res["aiofiles"] = await _time_async(af, n)
            with contextlib.suppress(ImportError):
                anyio: Any = importlib.import_module("anyio")
                res["anyio to_thread"] = await _time_async(
                    lambda: anyio.to_thread.run_sync(os.pread, fd, SIZE, 0), n
                )

        asyncio.run(peers())
        with contextlib.suppress(ImportError):
            trio: Any = importlib.import_module("trio")

            async def trio_main() -> float:
                return await _time_async(
                    lambda: trio.to_thread.run_sync(os.pread, fd, SIZE, 0), n
                )

            res["trio to_thread"] = trio.run(trio_main)
    finally:
        os.close(fd)
        os.unlink(path)
    return res
