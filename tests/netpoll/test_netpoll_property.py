"""Nothing lost, nothing duplicated: random reads, writes, cancellations and deadlines on one
pipe; every byte written is read exactly once, in order (DESIGN.md, "Cancellation").  Seeded
and bounded (a few hundred operations per seed), on all three loop kinds."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import struct
import time

import pytest
from loopkinds import run_in

import aiosys.netpoll as netpoll


async def _cancel_soon(
    t: asyncio.Task[int] | asyncio.Task[bytes], fd: int, read: bool, rng: random.Random
) -> None:
    """Cancel ``t``, preferably while it is parked (its Future in the PollDesc slot)."""
    p = netpoll.current_poller()
    for _ in range(rng.randrange(1, 6)):
        pd = p.pds.get(fd)
        if pd is not None and (pd.rg if read else pd.wg).__class__ is not int:
            break
        await asyncio.sleep(0)
    t.cancel()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_cancels_and_deadlines_lose_and_duplicate_nothing(
    loop_kind: str, seed: int
) -> None:
    rng = random.Random(seed)
    source = rng.randbytes(300_000)

    async def body() -> None:
        r, w = os.pipe()
        got = bytearray()
        sent = 0
        seen = {"write_cancelled": 0, "read_cancelled": 0, "deadline": 0}

        async def writer() -> None:
            nonlocal sent
            while sent < len(source):
                slow_writer = (sent // 40_000) % 2 == 0  # phases: who waits for whom
                if slow_writer and rng.random() < 0.35:
                    await asyncio.sleep(rng.random() * 0.004)  # let the reader park
                big = not slow_writer and rng.random() < 0.5  # more than the pipe holds
                chunk = source[sent : sent + rng.randrange(1, 100_000 if big else 3000)]
                t = asyncio.ensure_future(netpoll.write(w, chunk))
                if rng.random() < 0.3:
                    asyncio.ensure_future(_cancel_soon(t, w, False, rng))
                try:
                    n = await t
                except asyncio.CancelledError:
                    if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                        raise
                    n = 0  # cancelled while parked: that call wrote nothing
                    seen["write_cancelled"] += 1
                sent += n
            await netpoll.close(w)

        async def reader() -> None:
            while True:
                slow_reader = (len(got) // 40_000) % 2 == 1
                if slow_reader and rng.random() < 0.35:
                    await asyncio.sleep(rng.random() * 0.004)  # let the writer fill the pipe
                roll = rng.random()
                if roll < 0.2:
                    netpoll.set_read_deadline(r, time.monotonic() + rng.random() * 0.003)
                t = asyncio.ensure_future(netpoll.read(r, rng.randrange(1, 4000)))
                if 0.2 <= roll < 0.6:
                    asyncio.ensure_future(_cancel_soon(t, r, True, rng))
                try:
                    data = await t
                except asyncio.CancelledError:
                    if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                        raise
                    seen["read_cancelled"] += 1
                    continue  # cancelled: consumed nothing
                except netpoll.DeadlineExceededError:
                    seen["deadline"] += 1
                    netpoll.set_read_deadline(r, None)
                    continue
                finally:
                    if roll < 0.2:
                        netpoll.set_read_deadline(r, None)
                if not data:
                    return
                got.extend(data)

        await asyncio.gather(writer(), reader())
        await netpoll.close(r)
        assert sent == len(source)
        assert bytes(got) == source
        # The schedule really interrupted parked calls (not a vacuous run).
        assert sum(seen.values()) >= 3, seen
        p = netpoll.current_poller()
        assert p.waiters() == (0, 0) and not p.pds

    run_in(loop_kind, body, timeout=60)


def test_sub_millisecond_deadline_fires_and_not_early(loop_kind: str) -> None:
    async def body() -> None:
        r, w = os.pipe()
        try:
            for _ in range(5):
                t0 = time.monotonic()
                netpoll.set_read_deadline(r, t0 + 0.0003)  # epoll_pwait2: no rounding to 1 ms
                with pytest.raises(netpoll.DeadlineExceededError):
                    await netpoll.read(r, 1)
                assert time.monotonic() >= t0 + 0.0003
                netpoll.set_read_deadline(r, None)
        finally:
            await netpoll.close(r)
            await netpoll.close(w)

    run_in(loop_kind, body)


def test_connection_reset_wakes_a_parked_reader_with_the_error(loop_kind: str) -> None:
    async def body() -> None:
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen()
        c = socket.create_connection(ls.getsockname())
        s, _ = ls.accept()
        ls.close()
        s.setblocking(False)
        reader = asyncio.ensure_future(netpoll.recv(s, 100))
        await asyncio.sleep(0.01)
        assert not reader.done()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()  # RST: EPOLLERR|EPOLLHUP on s
        with pytest.raises(ConnectionResetError):
            await reader
        await netpoll.close(s)

    run_in(loop_kind, body)
