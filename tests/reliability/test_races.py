"""Races Go had to fix, each replayed against aiosys's public API on all three loop kinds.

Each test forces its interleaving with the event loop's own ordering (callbacks, tasks,
blocked workers), never with sleeps that must be "long enough"; bounded waits only guard
against a hang and never decide the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _relapi import aio
from _relcounters import record
from loopkinds import run_in

import aiosys.netpoll as netpoll
from aiosys import _faults

# A page-cache miss: the inline RWF_NOWAIT read says EAGAIN, so the call is handed off.
MISS = "aiosys.native._lowlevel:hot_pread"

GUARD = 10.0  # seconds: a hang guard only, never part of an assertion


def _pair() -> tuple[int, int]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a.detach(), b.detach()


def _closed(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError as exc:
        return exc.errno == errno.EBADF
    return False


# ------------------------------------------------------------------ stale state on reused fds


def test_fd_closed_behind_aiosys_back_then_reused_by_the_runtime(loop_kind: str) -> None:
    """A socket used through aiosys, then closed with ``sock.close()`` (not aiosys.close): the
    number is free for the kernel to reuse, here by the scheduler's own wakeup eventfd on the
    first handoff.  Found by this suite: the netpoller kept the dead PollDesc and refused the
    scheduler's registration (ValueError from the first ``aiosys.open``, and the P's eventfd
    leaked).  Fixed in netpoll/_loop.py (a stale PollDesc is evicted) and sched/proc.py (the
    P is torn down if its registration fails)."""

    async def body() -> None:
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        lsock.setblocking(False)
        csock = socket.create_connection(lsock.getsockname())
        try:
            newfd, _ = await aio.accept(lsock.fileno())
            await aio.close(newfd)
        finally:
            csock.close()
            lsock.close()  # behind aiosys's back: its PollDesc is now stale
        fd = await aio.open(__file__, os.O_RDONLY)  # first handoff: a P and its eventfd
        try:
            assert (await aio.pread(fd, 3, 0)) == b'"""'
        finally:
            await aio.close(fd)

    run_in(loop_kind, body)


def test_stale_readiness_never_reaches_the_fd_that_reuses_the_number(loop_kind: str) -> None:
    """Go #59545: readiness of a closed fd must not be delivered to the new file that got its
    number.  The old socket has unread data (readiness remembered) when aiosys closes it; the
    new socket under the same number must read only its own bytes, in order."""

    async def body() -> None:
        a, b = _pair()
        os.write(a, b"old")
        await aio.wait_readable(b)  # b is registered and ready, nothing consumed
        await aio.close(b)
        c, d = _pair()
        try:
            record("stale-fd reuse interleavings")
            loop = asyncio.get_running_loop()
            loop.call_soon(os.write, d, b"new")
            got = await asyncio.wait_for(aio.read(c, 100), GUARD)
            assert got == b"new"
        finally:
            for fd in (a, c, d):
                os.close(fd)

    run_in(loop_kind, body)


def test_read_parked_on_a_number_whose_file_was_replaced(loop_kind: str) -> None:
    """The number is closed behind aiosys's back and reused by a new socket before aiosys is
    asked again: the next read parks on the new file and sees its bytes."""

    async def body() -> None:
        a, b = _pair()
        os.write(a, b"x")
        assert await aio.read(b, 10) == b"x"
        os.close(b)
        c, d = _pair()
        try:
            asyncio.get_running_loop().call_soon(os.write, d, b"y")
            assert await asyncio.wait_for(aio.read(c, 10), GUARD) == b"y"
        finally:
            for fd in (a, c, d):
                os.close(fd)

    run_in(loop_kind, body)


def test_file_number_reused_by_a_socket_is_not_read_as_a_file(loop_kind: str) -> None:
    """aiosys caches per-fd facts (a regular file: hand reads off).  The file is closed behind
    aiosys's back and a socket gets its number: the first read of the socket, with no data
    yet, must wait for data.  Found here: it was handed off on the stale facts, the M's
    non-blocking read answered EAGAIN, and the caller got BlockingIOError.  Fixed in _io.py
    (EAGAIN from a handoff re-checks the fd and parks on the netpoller)."""

    async def body() -> None:
        with tempfile.TemporaryFile() as tmp:
            tmp.write(b"file bytes")
            tmp.flush()
            num = tmp.fileno()
            os.lseek(num, 0, os.SEEK_SET)
            # RWF_NOWAIT misses, so the read is handed off and "a regular file" is cached
            with _faults.inject(MISS, errno=errno.EAGAIN, style="return",
                                when=lambda f, *_: f == num):
                assert await aio.read(num, 4) == b"file"
        a, b = _pair()  # the lowest free number: the file's
        try:
            assert b == num or a == num
            r, w = (b, a) if b == num else (a, b)
            t = asyncio.ensure_future(aio.read(r, 10))
            # nothing to read yet: the read must end up parked on the netpoller, not done
            await _until(lambda: t.done() or netpoll.is_registered(r), "read parked")
            assert not t.done(), t
            os.write(w, b"sock")
            assert await asyncio.wait_for(t, GUARD) == b"sock"
            asyncio.get_running_loop().call_soon(os.write, w, b"more")
            assert await asyncio.wait_for(aio.write(r, b"x"), GUARD) == 1
        finally:
            os.close(a)
            os.close(b)

    run_in(loop_kind, body)


# ------------------------------------------------------------- handed-off calls and the pool


class _Lock:
    """A file locked by ``holder``; ``aiosys.flock(contender, LOCK_EX)`` blocks on an M until
    :meth:`release`.  A blocked handed-off call whose end the test decides."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="aiosys-lock-")
        self.path = os.path.join(self.dir, "lock")
        self.holder = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        fcntl.flock(self.holder, fcntl.LOCK_EX)
        self.contender = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)

    def release(self) -> None:
        fcntl.flock(self.holder, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self.holder)
        with contextlib.suppress(OSError):
            os.close(self.contender)
        os.unlink(self.path)
        os.rmdir(self.dir)


@contextlib.contextmanager
def _locks(n: int) -> Iterator[list[_Lock]]:
    ls = [_Lock() for _ in range(n)]
    try:
        yield ls
    finally:
        for lk in ls:
            lk.close()


async def _until(pred: Any, what: str) -> None:
    """Yield to the loop until ``pred()`` (bounded in iterations, never in time alone)."""
    for _ in range(20000):
        if pred():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"never happened: {what}")


def _busy_ms() -> int:
    from aiosys.native import _mpool

    return _mpool.stats()["m_busy"]


def test_close_during_a_handed_off_call_defers_the_real_close(loop_kind: str) -> None:
    """Go's fdMutex race: fd X is in a handed-off call (an M is blocked on it) when the task
    closes X and opens a new file.  The new file must not get X's number while the M may
    still use X; X is really closed once the call returns."""

    async def body() -> None:
        with _locks(1) as (lk,):
            x = lk.contender
            t = asyncio.ensure_future(aio.flock(x, fcntl.LOCK_EX))
            await _until(lambda: netpoll.fd_refs(x) > 0, "the handoff holds its fd")
            await aio.close(x)  # deferred: the M still holds X
            assert not _closed(x)
            opened = [await aio.open(lk.path, os.O_RDONLY) for _ in range(3)]
            try:
                assert x not in opened
                record("close-vs-open interleavings")
                lk.release()
                await asyncio.wait_for(t, GUARD)
                await _until(lambda: netpoll.fd_refs(x) == 0, "the reference is dropped")
                assert _closed(x) or x in opened  # closed, or legitimately reused after
            finally:
                for fd in opened:
                    await aio.close(fd)

    run_in(loop_kind, body)


def test_pool_capped_at_n_with_n_blocked_calls_still_makes_progress(loop_kind: str) -> None:
    """Go's starvation case: every M of a pool capped at N is blocked on a call whose
    completion depends on work the loop must still do.  Pollable I/O never needs an M, so the
    loop keeps serving it; a further handed-off call either waits its turn (full="wait") or
    is refused with a clear error (full="error"), never a hang."""
    from aiosys import sched
    from aiosys.native import _mpool

    n = 2

    async def body() -> None:
        with _locks(n) as locks:
            calls = [asyncio.ensure_future(aio.flock(lk.contender, fcntl.LOCK_EX))
                     for lk in locks]
            await _until(lambda: _busy_ms() >= n, "every M blocked")
            a, b = _pair()
            try:
                for i in range(50):  # the netpoller needs no M
                    t = asyncio.ensure_future(aio.read(b, 1))
                    await asyncio.sleep(0)
                    await aio.write(a, bytes([i]))
                    assert await asyncio.wait_for(t, GUARD) == bytes([i])
                sched.configure_pool(full="error")
                with pytest.raises(_mpool.PoolExhaustedError) as ei:
                    await aio.fstat(a)
                assert ei.value.errno == errno.EAGAIN
                sched.configure_pool(full="wait")
                queued = asyncio.ensure_future(aio.fstat(a))
                await asyncio.sleep(0.01)
                assert not queued.done()  # waits for an M, the loop is not blocked
                for lk in locks:
                    lk.release()
                await asyncio.wait_for(asyncio.gather(*calls), GUARD)
                assert (await asyncio.wait_for(queued, GUARD)).st_mode
                record("pool-cap interleavings")
            finally:
                os.close(a)
                os.close(b)

    sched.configure_pool(max_threads=n, full="wait")
    try:
        run_in(loop_kind, body)
    finally:
        sched.configure_pool(max_threads=128, full="wait")


def test_worker_stuck_for_seconds_never_stalls_the_loop(loop_kind: str) -> None:
    """An M stays blocked for over a second: the loop keeps serving hundreds of ping-pongs and
    other handoffs meanwhile (the pool grows), and the stuck call completes afterwards."""

    async def body() -> None:
        with _locks(1) as (lk,):
            stuck = asyncio.ensure_future(aio.flock(lk.contender, fcntl.LOCK_EX))
            await _until(lambda: _busy_ms() >= 1, "the M blocked")
            t0 = time.monotonic()
            a, b = _pair()
            pings = handoffs = 0
            try:
                while pings < 300 or time.monotonic() - t0 < 1.2:
                    t = asyncio.ensure_future(aio.read(b, 1))
                    await asyncio.sleep(0)
                    os.write(a, b"p")
                    assert await asyncio.wait_for(t, GUARD) == b"p"
                    pings += 1
                    if pings % 20 == 0:
                        await asyncio.wait_for(aio.fstat(a), GUARD)
                        handoffs += 1
                assert not stuck.done()
                lk.release()
                await asyncio.wait_for(stuck, GUARD)
                record("loop iterations served while an M was stuck", pings + handoffs)
            finally:
                os.close(a)
                os.close(b)

    run_in(loop_kind, body)


def test_eintr_in_a_worker_is_retried(loop_kind: str) -> None:
    """Signals interrupt an M blocked in a syscall (SIGURG stays deliverable to Ms, as in Go):
    the pool retries EINTR, counts it, and the call's result is the real one."""
    from aiosys.native import _mpool

    old = signal.signal(signal.SIGURG, lambda *_: None)  # a handler: no SA_RESTART

    async def body() -> None:
        with _locks(1) as (lk,):
            before = _mpool.stats()["m_eintr_retries"]
            call = asyncio.ensure_future(aio.flock(lk.contender, fcntl.LOCK_EX))
            await _until(lambda: _busy_ms() >= 1, "the M blocked")
            sent = 0
            for _ in range(200):
                for tid in _mpool.tids():
                    with contextlib.suppress(ProcessLookupError):
                        _tgkill(os.getpid(), tid, signal.SIGURG)
                        sent += 1
                if _mpool.stats()["m_eintr_retries"] > before:
                    break
                await asyncio.sleep(0.005)
            retries = _mpool.stats()["m_eintr_retries"] - before
            lk.release()
            await asyncio.wait_for(call, GUARD)
            assert retries >= 1, f"{sent} signals, no EINTR retry counted"
            record("faults injected and survived", retries)
            record("faults: EINTR in a worker", retries)

    try:
        run_in(loop_kind, body)
    finally:
        signal.signal(signal.SIGURG, old)


def _tgkill(pid: int, tid: int, sig: int) -> None:
    from aiosys.native import zsyscall

    zsyscall.tgkill(pid, tid, sig)


# --------------------------------------------------------------------- netpoll state machine


def test_double_wait_is_a_clear_busy_error(loop_kind: str) -> None:
    """Go's "double wait": a second reader of one fd gets a clear busy error at once; the
    first keeps its place and gets the data."""

    async def body() -> None:
        a, b = _pair()
        try:
            first = asyncio.ensure_future(aio.read(b, 10))
            await asyncio.sleep(0)
            with pytest.raises(netpoll.BusyError):
                await asyncio.wait_for(aio.read(b, 10), GUARD)
            os.write(a, b"data")
            assert await asyncio.wait_for(first, GUARD) == b"data"
            assert netpoll.current_poller().stats()["waiters_read"] == 0
        finally:
            os.close(a)
            await aio.close(b)

    run_in(loop_kind, body)


def test_deadline_moved_while_its_timer_is_in_flight(loop_kind: str) -> None:
    """A read deadline is armed, then moved away before it fires: the old timer must be
    ignored (seq-checked).  Then a deadline moved into the past wakes the parked reader at
    once with the timeout error, and stays expired until moved again."""

    async def body() -> None:
        loop = asyncio.get_running_loop()
        a, b = _pair()
        try:
            # The armed deadline is far enough out (0.2 s) that one loop pass on a loaded
            # machine cannot reach it before it is moved; the wait then passes it.
            for _ in range(3):
                netpoll.set_read_deadline(b, time.monotonic() + 0.2)
                t = asyncio.ensure_future(aio.read(b, 10))
                await asyncio.sleep(0)
                netpoll.set_read_deadline(b, None)  # moved: the armed timer is stale
                await asyncio.sleep(0.3)  # the stale timer's time passes
                assert not t.done()
                os.write(a, b"ok")
                assert await asyncio.wait_for(t, GUARD) == b"ok"
            t = asyncio.ensure_future(aio.read(b, 10))
            await asyncio.sleep(0)
            netpoll.set_read_deadline(b, time.monotonic() - 1)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(t, GUARD)
            with pytest.raises(TimeoutError):  # sticky
                await asyncio.wait_for(aio.read(b, 10), GUARD)
            netpoll.set_read_deadline(b, None)
            loop.call_soon(os.write, a, b"again")
            assert await asyncio.wait_for(aio.read(b, 10), GUARD) == b"again"
            record("deadline races", 4)
        finally:
            os.close(a)
            await aio.close(b)

    run_in(loop_kind, body)


def test_wakeup_storm_loses_nothing_and_coalesces(loop_kind: str) -> None:
    """Eight threads post 2,000 cross-thread wakeups and 400 handed-off calls complete in a
    burst: every callback runs once, every call completes, and the netpoller's eventfd writes
    stay far below the wakeups asked for (coalesced, at most one per poll cycle)."""

    async def body() -> None:
        loop = asyncio.get_running_loop()
        poller = netpoll.current_poller()
        s0 = poller.stats()
        got = [0]
        done = asyncio.Event()
        total = 8 * 250

        def hit() -> None:
            got[0] += 1
            if got[0] == total:
                done.set()

        def storm() -> None:
            for _ in range(250):
                loop.call_soon_threadsafe(hit)
                poller.wakeup()

        threads = [threading.Thread(target=storm) for _ in range(8)]
        for t in threads:
            t.start()
        fd = os.open(__file__, os.O_RDONLY | os.O_CLOEXEC)
        try:
            stats = await asyncio.wait_for(
                asyncio.gather(*(aio.fstat(fd) for _ in range(400))), GUARD)
            assert len(stats) == 400
            await asyncio.wait_for(done.wait(), GUARD)
        finally:
            for t in threads:
                t.join()
            os.close(fd)
        assert got[0] == total
        s1 = poller.stats()
        writes = s1["wakeup_writes"] - s0["wakeup_writes"]
        asked = writes + s1["wakeups_coalesced"] - s0["wakeups_coalesced"]
        assert asked >= total and writes < asked
        record("cross-thread wakeups in storms", asked)

    run_in(loop_kind, body)


def test_close_during_a_handed_off_read_vs_a_new_open(loop_kind: str) -> None:
    """The exact case of Go's fdMutex: a read of a blocking pipe is on an M when the task
    closes the fd and opens files.  None of them gets the fd's number while the read is in
    flight; the read returns the bytes written afterwards; then the fd is really closed."""

    async def body() -> None:
        r, w = os.pipe()  # blocking: the typed read blocks its M
        buf = bytearray(16)
        opened: list[int] = []
        try:
            t = asyncio.ensure_future(aio.syscall("read", r, buf))
            await _until(lambda: netpoll.fd_refs(r) > 0 and _busy_ms() >= 1, "read on an M")
            await aio.close(r)  # deferred until the M returns
            opened = [await aio.open(__file__, os.O_RDONLY) for _ in range(4)]
            assert r not in opened and not _closed(r)
            os.write(w, b"hello")
            assert await asyncio.wait_for(t, GUARD) == 5
            assert bytes(buf[:5]) == b"hello"
            await _until(lambda: netpoll.fd_refs(r) == 0, "the reference is dropped")
            assert _closed(r)
            record("close-vs-open interleavings")
        finally:
            os.close(w)
            for fd in opened:
                await aio.close(fd)

    run_in(loop_kind, body)
