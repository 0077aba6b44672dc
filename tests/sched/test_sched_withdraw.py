"""A read cancelled while its call is still queued (no M has it) is withdrawn; a read of the
same fd issued before the cancelled task ran must not wait for it forever.

The interleaving (seen once as a 60 s hang in a loaded CI run):
1. read A is handed off; every M is busy, so its slot waits in the run queue;
2. ``task.cancel()`` cancels A's future at once, before A's task runs;
3. read B of the same fd sees a cancelled call on the fd, treats it as an orphan and waits;
4. A's task runs: the slot is withdrawn (the syscall never happens) and B is woken;
5. B must find no orphan left.  The bug: the withdraw path kept the fd's orphan entry, so B
   parked again on a future nobody would resolve.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import aiosys._io as aio
from aiosys.sched import proc

Run = Callable[[Coroutine[Any, Any, Any]], Any]
GUARD = 10.0  # seconds: turns a hang into a failure; never reached when correct


def _force_handoff(fd: int) -> None:
    # Pipes normally take the netpoller; mark them as files so reads go to an M.
    aio._fdinfo[fd] = aio._KNOWN_FILE | aio._RNOWAIT_OFF


def test_read_after_cancelling_a_queued_read_is_not_stranded(run: Run) -> None:
    async def body() -> None:
        ra, wa = os.pipe()
        rb, wb = os.pipe()
        proc.configure_pool(max_threads=1, full="wait")  # one M: the second call must queue
        try:
            _force_handoff(ra)
            _force_handoff(rb)
            blocker = asyncio.ensure_future(aio.read(ra, 1))  # holds the only M
            queued = asyncio.ensure_future(aio.read(rb, 4))
            while len(proc.inflight()) < 2:
                await asyncio.sleep(0.001)
            loop = asyncio.get_running_loop()
            queued.cancel()
            loop.call_soon(os.write, wa, b"x")  # frees the M once the ready queue runs
            loop.call_soon(os.write, wb, b"abcd")
            # Awaited inline, so this read reaches its wait before the cancelled task runs
            # (step 3 above); asyncio.timeout guards without adding a task in between.
            async with asyncio.timeout(GUARD):
                assert await aio.read(rb, 4) == b"abcd"
            with pytest.raises(asyncio.CancelledError):
                await queued
            assert await asyncio.wait_for(blocker, GUARD) == b"x"
            assert proc.orphan_of(rb) is None
        finally:
            proc.configure_pool(max_threads=128, full="wait")
            for fd in (wa, wb):
                os.close(fd)
            for fd in (ra, rb):
                await aio.close(fd)

    run(body())
