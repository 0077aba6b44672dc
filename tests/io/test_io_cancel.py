"""Property: any mix of reads, writes, cancellations and timeouts on files and pipes delivers
every byte written exactly once, in order, and leaks no fd (DESIGN.md, "Cancellation")."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loop_runner import LOOP_KINDS, run_on

import aiosys._io as aio
from aiosys.sched import proc

Run = Callable[[Coroutine[Any, Any, Any]], Any]

# How a read is abandoned: not at all, before it starts, after 0-2 loop passes, by timeout.
read_op = st.tuples(
    st.integers(1, 700),
    st.sampled_from(["none", "immediate", "yield0", "yield1", "yield2", "timeout",
                     "detach0", "detach1"]),
)
write_op = st.binary(min_size=1, max_size=900)


_detached: list[asyncio.Future[bytes]] = []


async def _read(fd: int, n: int, how: str) -> bytes:
    if how.startswith("detach"):
        # Cancel and move on at once: the next read starts before the cancelled task ran.
        task = asyncio.ensure_future(aio.read(fd, n))
        for _ in range(int(how[-1])):
            await asyncio.sleep(0)
        if task.done() or not task.cancel():
            return task.result()
        _detached.append(task)
        return b""
    if how == "none":
        return await aio.read(fd, n)
    if how == "timeout":
        try:
            return await asyncio.wait_for(aio.read(fd, n), timeout=0.0005)
        except TimeoutError:
            return b""
    task = asyncio.ensure_future(aio.read(fd, n))
    if how != "immediate":
        for _ in range(int(how[-1])):
            await asyncio.sleep(0)
    task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        return b""


async def _exchange(
    kind: str, writes: list[bytes], reads: list[tuple[int, str]], handoff: bool
) -> None:
    if kind == "pipe":
        rfd, wfd = os.pipe()
    else:
        wfd, path = tempfile.mkstemp()
        rfd = os.open(path, os.O_RDONLY)
        os.unlink(path)
    if handoff:  # every read goes to an M, like a slow file
        aio._fdinfo[rfd] = aio._KNOWN_FILE | aio._RNOWAIT_OFF | aio._WNOWAIT_OFF
    written = b"".join(writes)
    done = asyncio.Event()

    async def writer() -> None:
        try:
            for chunk in writes:
                view = memoryview(chunk)
                while view:
                    n = await aio.write(wfd, view)
                    view = view[n:]
                await asyncio.sleep(0)
        finally:
            await aio.close(wfd)
            done.set()

    got = bytearray()
    wt = asyncio.ensure_future(writer())
    try:
        i = 0
        while True:
            n, how = reads[i % len(reads)]
            i += 1
            chunk = await _read(rfd, n, how if i < 200 else "none")
            got += chunk
            if not chunk:
                if done.is_set() and (how == "none" or len(got) >= len(written)):
                    break
                await asyncio.sleep(0)  # a file at EOF answers b"" at once: let the writer run
        await wt
        for t in _detached:
            with contextlib.suppress(asyncio.CancelledError):
                got += await t  # never: a detached read ends cancelled
        _detached.clear()
        # Whatever is still in flight finishes and is kept: drain to EOF.
        while chunk := await aio.read(rfd, 4096):
            got += chunk
        assert bytes(got) == written
    finally:
        await aio.close(rfd)
        if not wt.done():
            wt.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await wt


@pytest.mark.parametrize("loop_kind", LOOP_KINDS)
@pytest.mark.parametrize("kind", ["pipe", "file"])
@pytest.mark.parametrize("handoff", [True, False], ids=["handoff", "inline"])
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(writes=st.lists(write_op, min_size=1, max_size=8),
       reads=st.lists(read_op, min_size=1, max_size=12))
def test_every_byte_exactly_once_in_order(
    loop_kind: str, kind: str, handoff: bool, writes: list[bytes],
    reads: list[tuple[int, str]],
) -> None:
    fds = set(os.listdir("/proc/self/fd"))
    run_on(loop_kind, _exchange(kind, writes, reads, handoff))
    assert not proc._fd_orphans
    assert not proc._pushback
    assert set(os.listdir("/proc/self/fd")) == fds
