"""The scheduler tells aiosys.sched.trace about every handoff (entersyscall, exitsyscall with
its path) and about its Ms, only while tracing is on."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

import aiosys._io as aio
import aiosys.trace
from aiosys.sched import proc

Run = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture
def tracing() -> Iterator[None]:
    aiosys.trace.enable(sysmon=False)
    try:
        yield
    finally:
        aiosys.trace.disable()


def test_handoff_events_fast_and_slow(run: Run, tracing: None) -> None:
    async def body() -> list[dict[str, Any]]:
        r, w = os.pipe()
        try:
            with capture_logs() as logs:
                await aio.fstat(r)
                aio._fdinfo[r] = aio._KNOWN_FILE | aio._RNOWAIT_OFF
                t = asyncio.ensure_future(aio.read(r, 4))
                while not proc.inflight():
                    await asyncio.sleep(0.001)
                t.cancel()
                os.write(w, b"abcd")
                assert await aio.read(r, 4) == b"abcd"
            return logs
        finally:
            await aio.close(r)
            os.close(w)

    logs = run(body())
    events = [(e["event"], e.get("syscall"), e.get("path")) for e in logs
              if e["event"] in ("entersyscall", "exitsyscall")]
    assert events[:2] == [("entersyscall", "statx", None), ("exitsyscall", "statx", "fast")]
    assert ("exitsyscall", "read", "slow") in events
    fast = next(e for e in logs if e["event"] == "exitsyscall")
    assert fast["run_us"] is not None and fast["wait_us"] is not None


def test_no_events_when_tracing_is_off(run: Run) -> None:
    async def body() -> None:
        await aio.fstat(0)

    with capture_logs() as logs:
        run(body())
    assert not [e for e in logs if e["event"] in ("entersyscall", "exitsyscall")]
