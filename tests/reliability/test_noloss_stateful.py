"""No loss, no duplication: hypothesis state machines over pipes, socketpairs, loopback TCP
and regular files, on the aiosys loop and attached to the stdlib loop and uvloop.

Each rule is one step on a live event loop: reads (some cancelled at a random point: parked
on the netpoller, or handed off to an M on a file), writes (some cancelled while parked),
read deadlines in the past or moved away, and loop shutdowns (the loop is closed and a new one
of the same kind takes over the same fds).  The model keeps the bytes the kernel accepted and
the bytes readers got.  Invariants after every step: what was read is a prefix of what was
written, in order, never duplicated.  At the end: a clean drain reads exactly the rest, every
fd is closed exactly once (a second close is EBADF), no fd is left open and no task hangs
(every await is bounded).

Budget: ``AIOSYS_REL_EXAMPLES`` examples per (channel, loop) pair (default 4 in CI) and
``AIOSYS_REL_STEPS`` steps each (default 10).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import tempfile
import time
from typing import Any

import pytest
from _relapi import aio
from _relcounters import budget, record
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from loopkinds import LOOP_KINDS, new_loop

import aiosys.netpoll as netpoll
from aiosys import _faults

# A page-cache miss: the inline RWF_NOWAIT read says EAGAIN, so the call is handed off.
MISS = "aiosys.native._lowlevel:hot_pread"

GUARD = 15.0  # seconds: a hang guard only
CHANNELS = ("pipe", "socketpair", "tcp", "file")


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    try:
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))

        async def detach() -> None:
            netpoll.detach()

        loop.run_until_complete(detach())
    finally:
        loop.close()


def _channel(kind: str, content: bytes) -> tuple[int, int]:
    """(read fd, write fd); for "file", both are the same fd over ``content``."""
    if kind == "pipe":
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        return r, w
    if kind == "socketpair":
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        return a.detach(), b.detach()
    if kind == "tcp":
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(1)
        c = socket.create_connection(ls.getsockname())
        s, _ = ls.accept()
        ls.close()
        for x in (c, s):
            x.setblocking(False)
            x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s.detach(), c.detach()
    fd, path = tempfile.mkstemp(prefix="aiosys-noloss-")
    os.unlink(path)
    os.write(fd, content)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd, fd


class NoLoss(RuleBasedStateMachine):
    loop_kind = "aiosys"
    channel = "pipe"

    def __init__(self) -> None:
        super().__init__()
        self.loop = new_loop(self.loop_kind)
        self.fds_before = set(os.listdir("/proc/self/fd"))
        self.content = os.urandom(64 * 1024) if self.channel == "file" else b""
        self.r, self.w = _channel(self.channel, self.content)
        self.sent = bytearray(self.content)
        self.got = bytearray()
        self.counter = 0
        self.closed = False

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, GUARD))

    # ---------------------------------------------------------------------------- steps

    @initialize()
    def start(self) -> None:
        record(f"no-loss state machines ({self.channel})")

    @rule(n=st.integers(1, 70000))
    def write(self, n: int) -> None:
        if self.channel == "file":
            return
        data = bytes((self.counter + i) & 0xFF for i in range(min(n, 4096))) * (n // 4096 + 1)
        data = data[:n]
        k = self.run(self._write_some(data))
        self.sent += data[:k]
        self.counter += k
        record("bytes written (no-loss)", k)

    async def _write_some(self, data: bytes) -> int:
        try:
            return int(await asyncio.wait_for(aio.write(self.w, data), 0.05))
        except TimeoutError:
            return 0  # parked and cancelled: nothing was written

    @rule(n=st.integers(1, 100000), cancel_after=st.one_of(st.none(), st.integers(0, 5)),
          handoff=st.booleans())
    def read(self, n: int, cancel_after: int | None, handoff: bool) -> None:
        """A read, maybe cancelled after ``cancel_after`` loop iterations; on a file, maybe
        forced off the inline path (RWF_NOWAIT says EAGAIN) so it is handed off to an M."""
        if self.channel == "file" and handoff:
            with _faults.inject(MISS, errno=errno.EAGAIN, style="return",
                                when=lambda fd, *_: fd == self.r) as f:
                self.run(self._read(n, cancel_after))
            record("faults injected and survived", f.injected)
        else:
            self.run(self._read(n, cancel_after))

    async def _read(self, n: int, cancel_after: int | None) -> None:
        t = asyncio.ensure_future(aio.read(self.r, n))
        if cancel_after is None:
            if self.channel != "file" and len(self.got) == len(self.sent):
                await asyncio.sleep(0.005)  # nothing to read: let it park, then cancel
                t.cancel()
        else:
            for _ in range(cancel_after):
                await asyncio.sleep(0)
            t.cancel()
        try:
            data = await t
        except asyncio.CancelledError:
            record("reads cancelled (no-loss)")
            return
        self.got += data
        record("bytes read and verified (no-loss)", len(data))

    @rule()
    def deadline_in_the_past(self) -> None:
        if self.channel == "file":
            return
        self.run(self._deadline())

    async def _deadline(self) -> None:
        netpoll.set_read_deadline(self.r, time.monotonic() - 1)
        with pytest.raises(TimeoutError):
            await aio.read(self.r, 10)
        netpoll.set_read_deadline(self.r, time.monotonic() + 3600)  # moved away
        netpoll.set_read_deadline(self.r, None)
        record("deadline expiries (no-loss)")

    @rule()
    def restart_loop(self) -> None:
        """Loop shutdown with the fds still open: a new loop of the same kind takes over."""
        _close_loop(self.loop)
        self.loop = new_loop(self.loop_kind)
        record("loop shutdowns (no-loss)")

    # ----------------------------------------------------------------------- invariants

    @invariant()
    def read_is_a_prefix_of_written(self) -> None:
        assert self.got == self.sent[: len(self.got)], "lost, reordered or duplicated bytes"

    # ------------------------------------------------------------------------- teardown

    def teardown(self) -> None:
        try:
            if not self.closed:
                self.run(self._drain_and_close())
        finally:
            _close_loop(self.loop)
            leaked = set(os.listdir("/proc/self/fd")) - self.fds_before
            for fd in (self.r, self.w):
                with contextlib.suppress(OSError):
                    os.close(fd)
        assert bytes(self.got) == bytes(self.sent)
        assert len(leaked) <= 1, leaked  # (listdir's own fd may show)

    async def _drain_and_close(self) -> None:
        while len(self.got) < len(self.sent):
            data = await aio.read(self.r, 1 << 20)
            assert data, "EOF before every written byte was read"
            self.got += data
            record("bytes read and verified (no-loss)", len(data))
        await aio.close(self.r)
        if self.w != self.r:
            await aio.close(self.w)
        for fd in {self.r, self.w}:
            with pytest.raises(OSError) as ei:  # closed exactly once
                await aio.close(fd)
            assert ei.value.errno == errno.EBADF
        self.closed = True


@pytest.mark.parametrize("channel", CHANNELS)
def test_no_byte_lost_or_duplicated(loop_kind: str, channel: str) -> None:
    cls = type(f"NoLoss_{channel}_{loop_kind}", (NoLoss,),
               {"loop_kind": loop_kind, "channel": channel})
    cls.TestCase.settings = settings(
        max_examples=budget(4), stateful_step_count=budget(10, "AIOSYS_REL_STEPS"),
        deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(cls, settings=cls.TestCase.settings)


assert set(LOOP_KINDS) == {"aiosys", "asyncio", "uvloop"}


def test_cancelled_file_writes_happen_whole_or_not_and_are_reported(loop_kind: str) -> None:
    """A handed-off write cannot be un-made: cancelled at a random point it either never ran
    (withdrawn from the queue) or ran and is reported (``orphan_writes_reported``).  The file
    then holds exactly the completed writes plus the reported ones, each chunk whole, none
    twice."""
    import random

    from loopkinds import run_in

    from aiosys.sched.stats import counters

    size, rounds = 4096, budget(60, "AIOSYS_REL_WRITES")
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))

    async def body() -> None:
        fd, path = tempfile.mkstemp(prefix="aiosys-wcancel-")
        os.unlink(path)
        reported0 = counters.orphan_writes_reported
        completed = cancelled = 0
        try:
            for i in range(rounds):
                chunk = i.to_bytes(4, "little") * (size // 4)
                t = asyncio.ensure_future(aio.write(fd, chunk))
                for _ in range(rng.randint(0, 3)):
                    await asyncio.sleep(0)
                if rng.random() < 0.5:
                    t.cancel()
                try:
                    n = await asyncio.wait_for(t, GUARD)
                    assert n == size
                    completed += 1
                except asyncio.CancelledError:
                    cancelled += 1
            st = await asyncio.wait_for(aio.fstat(fd), GUARD)  # waits for orphans of fd
            reported = counters.orphan_writes_reported - reported0
            assert st.st_size == size * (completed + reported), (completed, reported)
            data = os.pread(fd, st.st_size, 0)
            seen = set()
            for off in range(0, len(data), size):
                idx = int.from_bytes(data[off:off + 4], "little")
                assert data[off:off + size] == idx.to_bytes(4, "little") * (size // 4)
                assert idx not in seen, f"chunk {idx} written twice"
                seen.add(idx)
            record("handed-off writes cancelled (reported or withdrawn)", cancelled)
            record("... of which ran anyway and were reported", reported)
        finally:
            await aio.close(fd)

    run_in(loop_kind, body)
