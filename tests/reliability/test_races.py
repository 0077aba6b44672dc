"""Races Go had to fix, each replayed against aiosys's public API on all three loop kinds.

Each test forces its interleaving with the event loop's own ordering (callbacks, tasks,
blocked workers), never with sleeps that must be "long enough"; bounded waits only guard
against a hang and never decide the outcome.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import socket
import tempfile

from _relapi import aio
from _relcounters import record
from loopkinds import run_in

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
            assert await aio.read(num, 4) == b"file"  # cached: a regular file
        a, b = _pair()  # the lowest free number: the file's
        try:
            assert b == num or a == num
            r, w = (b, a) if b == num else (a, b)
            t = asyncio.ensure_future(aio.read(r, 10))
            await asyncio.sleep(0)
            os.write(w, b"sock")
            assert await asyncio.wait_for(t, GUARD) == b"sock"
            asyncio.get_running_loop().call_soon(os.write, w, b"more")
            assert await asyncio.wait_for(aio.write(r, b"x"), GUARD) == 1
        finally:
            os.close(a)
            os.close(b)

    run_in(loop_kind, body)
