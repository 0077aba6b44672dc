"""The netpoller's behaviour on real fds, each body on the aiosys loop, the stdlib loop
(attach mode) and uvloop (attach mode).  No timing upper bounds anywhere: a deadline test
asserts that the timeout happened and did not happen early."""

from __future__ import annotations

import array
import asyncio
import contextlib
import errno
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest
from loopkinds import run_in

import aiosys.netpoll as netpoll
from aiosys.native import _lowlevel as ll
from aiosys.netpoll import fdtable

# -------------------------------------------------------------------------------------------
# helpers
# -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def pipe() -> Iterator[tuple[int, int]]:
    """A pipe whose ends are closed at the end unless a test closed them through aiosys."""
    r, w = os.pipe()
    try:
        yield r, w
    finally:
        for fd in (r, w):
            if not fdtable.fd_closing(fd):
                with contextlib.suppress(OSError):
                    os.close(fd)


async def _close_all(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            await netpoll.close(fd)


def _fill(fd: int) -> int:
    """Write until the kernel buffer is full (EAGAIN); returns the bytes written."""
    total = 0
    chunk = b"z" * 65536
    while True:
        try:
            total += os.write(fd, chunk)
        except BlockingIOError:
            return total


async def _until(cond: object, what: str) -> None:
    """Poll a condition across loop iterations, bounded (a hang fails, never a timing
    assertion)."""
    for _ in range(2000):
        if cond():  # type: ignore[operator]
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"never happened: {what}")


# -------------------------------------------------------------------------------------------
# basics
# -------------------------------------------------------------------------------------------


def test_pipe_roundtrip_and_inline_first(loop_kind: str) -> None:
    async def body() -> None:
        r, w = os.pipe()
        try:
            assert await netpoll.write(w, b"hello") == 5
            assert await netpoll.read(r, 100) == b"hello"
            # nothing left: the next read parks until the write below
            reader = asyncio.ensure_future(netpoll.read(r, 100))
            await asyncio.sleep(0.01)
            assert not reader.done()
            await netpoll.write_all(w, b"world")
            assert await reader == b"world"
            assert netpoll.is_registered(r) and netpoll.is_registered(w)
        finally:
            await _close_all(r, w)
        assert not netpoll.is_registered(r)

    run_in(loop_kind, body)


def test_zero_length_read_returns_at_once(loop_kind: str) -> None:
    async def body() -> None:
        with pipe() as (r, _):
            assert await netpoll.read(r, 0) == b""  # nothing to read, still no wait
            assert await netpoll.readinto(r, bytearray(0)) == 0
            assert not netpoll.is_registered(r)  # not even a registration

    run_in(loop_kind, body)


def test_regular_file_is_not_pollable(loop_kind: str) -> None:
    async def body() -> None:
        with tempfile.TemporaryFile() as f:
            with pytest.raises(netpoll.NotPollableError) as info:
                await netpoll.read(f.fileno(), 10)
            assert info.value.errno == errno.EPERM
            assert isinstance(info.value, OSError)

    run_in(loop_kind, body)


def test_second_waiter_gets_busy_error(loop_kind: str) -> None:
    async def body() -> None:
        with pipe() as (r, w):
            first = asyncio.ensure_future(netpoll.read(r, 10))
            await asyncio.sleep(0.01)
            with pytest.raises(netpoll.BusyError):
                await netpoll.read(r, 10)
            os.write(w, b"x")
            assert await first == b"x"  # the first waiter was not replaced
            await _close_all(r, w)

    run_in(loop_kind, body)


def test_large_write_all_and_reads_keep_order(loop_kind: str) -> None:
    async def body() -> None:
        r, w = os.pipe()
        data = bytes(range(256)) * 4096  # 1 MiB: many parks on both sides
        got = bytearray()

        async def reader() -> None:
            while True:
                chunk = await netpoll.read(r, 100_000)
                if not chunk:
                    return
                got.extend(chunk)

        t = asyncio.ensure_future(reader())
        await netpoll.write_all(w, memoryview(data))
        await netpoll.close(w)
        await t
        await netpoll.close(r)
        assert bytes(got) == data

    run_in(loop_kind, body)


# -------------------------------------------------------------------------------------------
# stale events, close
# -------------------------------------------------------------------------------------------


def test_stale_event_after_close_and_fd_reuse_is_dropped(loop_kind: str) -> None:
    async def body() -> None:
        p = netpoll.current_poller()
        r, w = os.pipe()
        os.write(w, b"old")  # r is readable: an edge is due
        old = p.register(r)
        old_tag = old.tag
        await netpoll.close(r)
        r2, w2 = os.pipe()  # the lowest free number: usually r again
        try:
            new = p.register(r2)
            assert new is not old and new.tag != old_tag
            reader = asyncio.ensure_future(netpoll.read(r2, 10))
            await asyncio.sleep(0.01)
            assert not reader.done()
            # An event for the old registration, in flight when the close happened (Go issue
            # 59545): delivered through the loop's own dispatch path, it must wake nobody.
            before = p.stale_dropped
            stale = array.array("Q", [ll.EPOLLIN, old_tag])
            if isinstance(p.loop, netpoll.AiosysEventLoop):
                keys = p.loop._selector._fd_to_key  # type: ignore[attr-defined]
                assert p.dispatch(stale, 1, keys) == []
            else:
                assert p.dispatch(stale, 1) == []
            assert p.stale_dropped == before + 1
            await asyncio.sleep(0.01)
            assert not reader.done()
            os.write(w2, b"new")
            assert await reader == b"new"
        finally:
            await _close_all(r2, w2, w)

    run_in(loop_kind, body)


def test_close_while_reader_and_writer_parked(loop_kind: str) -> None:
    async def body() -> None:
        a, b = socket.socketpair()
        fa = a.detach()
        try:
            os.set_blocking(fa, False)
            _fill(fa)
            reader = asyncio.ensure_future(netpoll.read(fa, 10))
            writer = asyncio.ensure_future(netpoll.write_all(fa, b"x" * 65536))
            await asyncio.sleep(0.01)
            p = netpoll.current_poller()
            assert p.waiters() == (1, 1)
            assert fdtable.fd_refs(fa) == 0  # parked waits take their references lazily...
            closed_now = fdtable.fd_close(fa, os.close)
            assert closed_now is False  # ...the close took two for them and waits for both
            assert fdtable.fd_refs(fa) == 2
            for t in (reader, writer):
                with pytest.raises(netpoll.FDClosedError):
                    await t
            assert fdtable.fd_refs(fa) == 0
            with pytest.raises(OSError):
                os.fstat(fa)  # the last release ran the real close
            assert p.waiters() == (0, 0)
            with pytest.raises(OSError):
                await netpoll.read(fa, 1)
        finally:
            b.close()

    run_in(loop_kind, body)


def test_epollerr_wakes_a_parked_writer(loop_kind: str) -> None:
    async def body() -> None:
        r, w = os.pipe()
        os.set_blocking(w, False)
        _fill(w)
        writer = asyncio.ensure_future(netpoll.write(w, b"x" * 1000))
        await asyncio.sleep(0.01)
        assert not writer.done()
        os.close(r)  # the write end now reports EPOLLERR
        with pytest.raises(BrokenPipeError):
            await writer
        await netpoll.close(w)

    run_in(loop_kind, body)


def test_hangup_after_short_read_is_not_lost(loop_kind: str) -> None:
    # Data and EOF arrive together: the short read must not make the next read park for an
    # edge that already came (the readiness skip ends at a hang-up).
    async def body() -> None:
        r, w = os.pipe()
        os.write(w, b"tail")
        os.close(w)
        await asyncio.sleep(0.01)
        assert await netpoll.read(r, 100) == b"tail"
        assert await netpoll.read(r, 100) == b""
        await netpoll.close(r)

    run_in(loop_kind, body)


# -------------------------------------------------------------------------------------------
# deadlines
# -------------------------------------------------------------------------------------------


def test_deadline_expires_not_early_and_stays_expired(loop_kind: str) -> None:
    async def body() -> None:
        with pipe() as (r, w):
            t0 = time.monotonic()
            netpoll.set_read_deadline(r, t0 + 0.05)
            with pytest.raises(netpoll.DeadlineExceededError) as info:
                await netpoll.read(r, 10)
            assert time.monotonic() >= t0 + 0.05
            assert isinstance(info.value, TimeoutError)
            os.write(w, b"x")
            with pytest.raises(netpoll.DeadlineExceededError):
                await netpoll.read(r, 10)  # sticky, even with data there
            netpoll.set_read_deadline(r, None)
            assert await netpoll.read(r, 10) == b"x"
            await netpoll.write(w, b"y")  # the write direction never had a deadline
            await _close_all(r, w)

    run_in(loop_kind, body)


def test_deadline_moved_later_while_parked(loop_kind: str) -> None:
    async def body() -> None:
        with pipe() as (r, w):
            t0 = time.monotonic()
            netpoll.set_read_deadline(r, t0 + 0.03)
            reader = asyncio.ensure_future(netpoll.read(r, 10))
            await asyncio.sleep(0.005)
            later = time.monotonic() + 0.1
            netpoll.set_read_deadline(r, later)  # the first timer must now be ignored
            with pytest.raises(netpoll.DeadlineExceededError):
                await reader
            assert time.monotonic() >= later
            await _close_all(r, w)

    run_in(loop_kind, body)


def test_deadline_moved_into_the_past_wakes_at_once(loop_kind: str) -> None:
    async def body() -> None:
        with pipe() as (r, w):
            netpoll.set_deadline(r, time.monotonic() + 3600)
            reader = asyncio.ensure_future(netpoll.read(r, 10))
            await asyncio.sleep(0.01)
            assert not reader.done()
            netpoll.set_deadline(r, time.monotonic() - 1)
            with pytest.raises(netpoll.DeadlineExceededError):
                await reader
            p = netpoll.current_poller()
            assert p.waiters() == (0, 0)
            await _close_all(r, w)

    run_in(loop_kind, body)


def test_write_deadline(loop_kind: str) -> None:
    async def body() -> None:
        with pipe() as (r, w):
            os.set_blocking(w, False)
            _fill(w)
            t0 = time.monotonic()
            netpoll.set_write_deadline(w, t0 + 0.03)
            with pytest.raises(netpoll.DeadlineExceededError):
                await netpoll.write_all(w, b"x" * 10)
            assert time.monotonic() >= t0 + 0.03
            await _close_all(r, w)

    run_in(loop_kind, body)


def test_timer_armed_while_loop_blocks_in_epoll_wait_fires(loop_kind: str) -> None:
    # The loop blocks with no timer due; another thread posts "arm a deadline" through the
    # netpoller's coalesced wakeup; the deadline must fire, and not before its time.
    async def body() -> None:
        with pipe() as (r, w):
            p = netpoll.current_poller()
            armed_at: list[float] = []

            def arm() -> None:
                t = time.monotonic() + 0.05
                armed_at.append(t)
                netpoll.set_read_deadline(r, t)

            reader = asyncio.ensure_future(netpoll.read(r, 10))
            await asyncio.sleep(0)
            th = threading.Timer(0.05, p.post, (arm,))
            th.start()
            try:
                with pytest.raises(netpoll.DeadlineExceededError):
                    await reader
            finally:
                th.join()
            assert armed_at and time.monotonic() >= armed_at[0]
            await _close_all(r, w)

    run_in(loop_kind, body)


# -------------------------------------------------------------------------------------------
# wakeups
# -------------------------------------------------------------------------------------------


def test_thousand_cross_thread_wakes_cost_one_eventfd_write_and_lose_none(
    loop_kind: str,
) -> None:
    async def body() -> None:
        p = netpoll.current_poller()
        await asyncio.sleep(0)
        writes0 = p.wake_writes
        ran: list[int] = []
        lock = threading.Lock()

        def cb() -> None:
            with lock:
                ran.append(1)

        def waker() -> None:
            for _ in range(250):
                p.post(cb)

        # The loop thread blocks right here (no poll cycle can start) while four threads
        # post 1000 callbacks.
        threads = [threading.Thread(target=waker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert p.wake_writes - writes0 == 1
        await _until(lambda: len(ran) == 1000, "1000 posted callbacks ran")
        # And the next cycle wakes again (the flag was cleared).
        p.post(cb)
        await _until(lambda: len(ran) == 1001, "a post after the drain ran")
        assert p.wake_writes - writes0 == 2

    run_in(loop_kind, body)


# -------------------------------------------------------------------------------------------
# waiter accounting
# -------------------------------------------------------------------------------------------


def test_waiter_counts_return_to_zero_after_data_timeout_close_and_cancel(
    loop_kind: str,
) -> None:
    async def body() -> None:
        p = netpoll.current_poller()
        r, w = os.pipe()
        # data
        t = asyncio.ensure_future(netpoll.read(r, 10))
        await asyncio.sleep(0.01)
        assert p.waiters() == (1, 0)
        os.write(w, b"a")
        assert await t == b"a"
        assert p.waiters() == (0, 0) and fdtable.fd_refs(r) == 0
        # timeout
        netpoll.set_read_deadline(r, time.monotonic() + 0.01)
        with pytest.raises(TimeoutError):
            await netpoll.read(r, 10)
        assert p.waiters() == (0, 0) and fdtable.fd_refs(r) == 0
        netpoll.set_read_deadline(r, None)
        # cancel: the slot is cleared and nothing is consumed
        t = asyncio.ensure_future(netpoll.read(r, 10))
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert p.waiters() == (0, 0) and fdtable.fd_refs(r) == 0
        os.write(w, b"kept")
        assert await netpoll.read(r, 10) == b"kept"
        # close
        t = asyncio.ensure_future(netpoll.read(r, 10))
        await asyncio.sleep(0.01)
        await netpoll.close(r)
        with pytest.raises(netpoll.FDClosedError):
            await t
        assert p.waiters() == (0, 0) and fdtable.fd_refs(r) == 0
        assert fdtable.table_size() == 0
        await netpoll.close(w)
        assert netpoll.stats()["registered_fds"] == 0

    run_in(loop_kind, body)


def test_cancel_while_data_arrives_consumes_nothing(loop_kind: str) -> None:
    async def body() -> None:
        r, w = os.pipe()
        t = asyncio.ensure_future(netpoll.read(r, 10))
        await asyncio.sleep(0.01)
        os.write(w, b"data")  # the event and the cancel land in the same iteration
        t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            got = await t
            assert got == b"data"  # the read won the race: fine, it returned the bytes
            os.write(w, b"data")
        assert await netpoll.read(r, 10) == b"data"
        await _close_all(r, w)

    run_in(loop_kind, body)


# -------------------------------------------------------------------------------------------
# blocking mode cleared behind our back
# -------------------------------------------------------------------------------------------


def test_dup_clearing_nonblock_still_honours_the_deadline(loop_kind: str) -> None:
    async def body() -> None:
        r, w = os.pipe()
        assert await netpoll.write(w, b"1") == 1
        assert await netpoll.read(r, 10) == b"1"  # registered, O_NONBLOCK set
        d = os.dup(r)
        os.set_blocking(d, True)  # clears O_NONBLOCK on the shared open file description
        assert os.get_blocking(r)
        try:
            t0 = time.monotonic()
            netpoll.set_read_deadline(r, t0 + 0.03)
            with pytest.raises(netpoll.DeadlineExceededError):
                await netpoll.read(r, 10)  # RWF_NOWAIT: per call, never blocks the loop
            assert time.monotonic() >= t0 + 0.03
            netpoll.set_read_deadline(r, None)
            os.write(w, b"2")
            assert await netpoll.read(r, 10) == b"2"
        finally:
            os.close(d)
            await _close_all(r, w)

    run_in(loop_kind, body)


def test_accept_on_a_listener_switched_to_blocking_is_refused(loop_kind: str) -> None:
    async def body() -> None:
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen()
        ls.setblocking(False)
        netpoll.current_poller().register(ls.fileno())
        d = os.dup(ls.fileno())
        os.set_blocking(d, True)
        try:
            with pytest.raises(netpoll.BlockingModeError) as info:
                await netpoll.accept(ls)
            assert "O_NONBLOCK" in str(info.value)
        finally:
            os.close(d)
            await netpoll.close(ls)
        assert ls.fileno() == -1  # closed through the object, which owns it

    run_in(loop_kind, body)


def test_write_all_stops_when_closed_between_writes(loop_kind: str) -> None:
    async def body() -> None:
        r, w = os.pipe()
        os.set_blocking(w, False)
        writer = asyncio.ensure_future(netpoll.write_all(w, b"x" * 1_000_000))
        await asyncio.sleep(0.01)  # the pipe is full: write_all parked after a partial write
        assert not writer.done()
        await netpoll.close(w)
        with pytest.raises(netpoll.FDClosedError):
            await writer
        await netpoll.close(r)
        assert fdtable.table_size() == 0

    run_in(loop_kind, body)


def test_close_from_another_thread_wakes_the_parked_reader(loop_kind: str) -> None:
    async def body() -> None:
        r, w = os.pipe()
        reader = asyncio.ensure_future(netpoll.read(r, 10))
        await asyncio.sleep(0.01)
        refs_at_close: list[int] = []

        def closer(fd: int) -> None:
            refs_at_close.append(fdtable.fd_refs(fd))
            os.close(fd)

        th = threading.Thread(target=fdtable.fd_close, args=(r, closer))
        th.start()
        with pytest.raises(netpoll.FDClosedError):
            await reader
        th.join()
        # Whichever thread ran it (the closing thread or the reader's release), the real close
        # happened once, with no reference held.
        assert refs_at_close == [0]
        assert not fdtable.fd_closing(r)
        with pytest.raises(OSError):
            os.fstat(r)
        await netpoll.close(w)

    run_in(loop_kind, body)


def test_file_objects_are_accepted_and_keep_their_ownership(loop_kind: str) -> None:
    async def body() -> None:
        r, w = os.pipe()
        fr = os.fdopen(r, "rb", buffering=0)
        fw = os.fdopen(w, "wb", buffering=0)
        assert await netpoll.write(fw, b"obj") == 3
        assert await netpoll.read(fr, 10) == b"obj"
        await netpoll.close(fr)
        await netpoll.close(fw)
        assert fr.closed and fw.closed  # closed through the objects, not behind their back

    run_in(loop_kind, body)


def test_close_between_wake_and_resume_takes_no_reference(loop_kind: str) -> None:
    # Interleaving 2 of "Parking" in _ops.py: the waiter was woken (its Future done) but has
    # not run yet when the close comes.  The close must not wait for it (it holds nothing),
    # and when it runs it raises the closed error without touching the fd.
    async def body() -> None:
        p = netpoll.current_poller()
        r, w = os.pipe()
        reader = asyncio.ensure_future(netpoll.read(r, 10))
        await asyncio.sleep(0.01)
        pd = p.pds[r]
        fut = pd.rg
        assert isinstance(fut, asyncio.Future)
        pd.rg = 1  # what the poll step does on an EPOLLIN edge: READY...
        fut.set_result(None)  # ...and wake the waiter
        assert fdtable.fd_close(r, os.close) is True  # nothing held: closed at once
        with pytest.raises(netpoll.FDClosedError):
            await reader
        assert fdtable.table_size() == 0
        await netpoll.close(w)

    run_in(loop_kind, body)


def test_infinite_nan_and_far_deadlines(loop_kind: str) -> None:
    async def body() -> None:
        r, w = os.pipe()
        try:
            netpoll.set_read_deadline(r, float("inf"))  # no deadline
            os.write(w, b"a")
            assert await netpoll.read(r, 1) == b"a"
            with pytest.raises(ValueError):
                netpoll.set_read_deadline(r, float("nan"))
            netpoll.set_read_deadline(r, 1e300)  # armed in bounded steps, never fires here
            os.write(w, b"b")
            assert await netpoll.read(r, 1) == b"b"
            netpoll.set_read_deadline(r, float("-inf"))  # long past: expired at once
            with pytest.raises(netpoll.DeadlineExceededError):
                await netpoll.read(r, 1)
        finally:
            await _close_all(r, w)

    run_in(loop_kind, body)


def test_socket_flags_and_strided_buffers_are_refused_cleanly(loop_kind: str) -> None:
    async def body() -> None:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            with pytest.raises(ValueError):
                await netpoll.send(a, b"x", 2**31)
            with pytest.raises(TypeError):
                await netpoll.sendto(a, memoryview(bytearray(8))[::2], "")
        finally:
            await netpoll.close(a)
            await netpoll.close(b)

    run_in(loop_kind, body)


def test_a_wrong_short_read_inference_is_caught_by_the_drained_check(loop_kind: str) -> None:
    # Linux never returns less than is buffered on a pipe, but POSIX allows it: a reader
    # parked on the "short read means drained" inference, with data there and no edge to
    # come, is woken by the drained check, reads, and the fd stops inferring until EAGAIN.
    async def body() -> None:
        from aiosys.netpoll._epoll import _DRAINED

        p = netpoll.current_poller()
        r, w = os.pipe()
        try:
            pd = p.register(r)
            os.write(w, b"abc")
            await asyncio.sleep(0.01)  # the edge for these bytes is consumed now
            pd.rg = _DRAINED  # as if a short read had just returned, leaving "abc"
            assert await netpoll.read(r, 10) == b"abc"
            assert p.drained_rechecks == 1 and not pd.infer
            os.write(w, b"d")
            assert await netpoll.read(r, 10) == b"d"
            reader = asyncio.ensure_future(netpoll.read(r, 10))  # EAGAIN: inference holds
            await asyncio.sleep(0.01)
            assert pd.infer
            os.write(w, b"e")
            assert await reader == b"e"
        finally:
            await _close_all(r, w)

    run_in(loop_kind, body)
