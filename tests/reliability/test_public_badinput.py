"""Bad input thrown at every public awaitable (``aiosys._io`` and the netpoller's socket
operations): wrong types, huge and negative sizes and offsets, closed and never-opened fds,
read-only buffers, paths with NUL bytes, odd addresses.  Also buffers resized while a call
that writes into them is in flight on an M.

Allowed outcomes: a return value, ``OSError`` (including the netpoller's own subclasses),
``TypeError``, ``ValueError``, ``BusyError`` (a clear "another waiter"), or still parked
after a short bound (a valid wait with nothing to read).  Never a crash, never
``OverflowError``/``SystemError``/``AttributeError`` leaking out.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import inspect
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import pytest
from _relapi import aio
from _relcounters import budget, record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiosys._io as io
import aiosys.netpoll as netpoll
from aiosys import _faults

# A page-cache miss: the inline RWF_NOWAIT read says EAGAIN, so the call is handed off.
MISS = "aiosys.native._lowlevel:hot_pread"

CLEAN = (OSError, TypeError, ValueError, netpoll.BusyError)
NP_OPS = ["accept", "connect", "read", "readinto", "recv", "recv_into", "recvfrom", "send",
          "sendall", "sendto", "wait_readable", "wait_writable", "write", "write_all", "close",
          "set_deadline", "set_read_deadline", "set_write_deadline"]
# fallocate could reserve real disk for a huge length; syscall() takes raw words (pointers).
IO_OPS = [n for n in io.__all__ if inspect.iscoroutinefunction(getattr(io, n))
          and n not in ("fallocate", "syscall")]
TARGETS = [("io", n) for n in IO_OPS] + [("np", n) for n in NP_OPS]
# Sizes a machine word cannot hold, or negative.  (A valid 2 GiB read would really allocate
# 2 GiB: that tests memory, not input checking.)
HUGE = [2**63, 2**64, 2**100, -1, -(2**31) - 1, -(2**63) - 1, -(2**100)]
WRONG: list[object] = [None, "3", b"3", 3.5, float("nan"), float("inf"), object(), [], True]
ints = st.one_of(st.integers(-3, 5000), st.sampled_from(HUGE), st.sampled_from(WRONG))


class World:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="aiosys-pubfuzz-")
        self.path = os.path.join(self.dir, "f")
        self.file = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        os.write(self.file, b"0123456789" * 100)
        os.mkdir(os.path.join(self.dir, "d"))
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        self.sa, self.sb = a.detach(), b.detach()
        c, d = os.pipe2(os.O_CLOEXEC)
        os.close(c)
        os.close(d)
        self.closed = c
        self.mine = [self.file, self.r, self.w, self.sa, self.sb]
        self.at_start = _open_fds()

    def fds(self) -> list[object]:
        return [*self.mine, self.closed, 1 << 20, -1, 2**31, 2**64, -(2**70), None, "0", 1.5]

    def paths(self) -> list[object]:
        d = self.dir
        return [self.path, os.path.join(d, "d"), os.path.join(d, "new"),
                os.fsencode(os.path.join(d, "b")), Path(d) / "p", self.path + "\0x",
                os.path.join(d, "x" * 300), "", None, 7]

    def close(self) -> None:
        for fd in _open_fds() - self.at_start:
            with contextlib.suppress(OSError):
                os.close(fd)
        for fd in self.mine:
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.dir, ignore_errors=True)


def _open_fds() -> set[int]:
    out = set()
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            os.fstat(int(name))
            out.add(int(name))
    return out


def buffers() -> st.SearchStrategy[object]:
    makers = [lambda: bytearray(16), lambda: b"bytes", lambda: bytearray(), lambda: b"",
              lambda: memoryview(bytearray(32))[3:9], lambda: memoryview(b"ro"),
              lambda: memoryview(bytearray(8))[::2], lambda: "str", lambda: 5, lambda: None]
    return st.sampled_from(makers).map(lambda m: m())


def value_for(name: str, w: World) -> st.SearchStrategy[Any]:
    if name in ("fd", "fd_in", "fd_out", "out_fd", "in_fd", "sock"):
        return st.sampled_from(w.fds())
    if name in ("path", "src", "dst", "target", "linkpath"):
        return st.sampled_from(w.paths())
    if name in ("data", "buf"):
        return buffers()
    if name == "buffers":
        return st.one_of(st.lists(buffers(), max_size=3), st.sampled_from([None, b"x", 3]))
    if name == "address":
        return st.sampled_from([("127.0.0.1", 1), ("127.0.0.1", 70000), ("::1", 1, 0, 0),
                                ("127.0.0.1",), "\0aiosys-fuzz", None, 5, ("x", "y")])
    if name == "t":
        return st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                         st.integers(-(10**9), 10**9), st.sampled_from(HUGE),
                         st.sampled_from(["1", b"1", object()]))
    if name == "flags":
        return st.one_of(ints, st.sampled_from([2**31, 2**32, -(2**31) - 1]))
    if name in ("mode", "operation"):
        return st.one_of(ints, st.sampled_from([2**31, 2**32]))
    if name == "dir_fd":
        return st.one_of(st.none(), st.sampled_from(w.fds()))
    return ints


SETTINGS = settings(deadline=None, database=None, max_examples=budget(250),
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(data=st.data(), target=st.sampled_from(TARGETS))
def test_every_public_awaitable_rejects_bad_input_cleanly(
    data: st.DataObject, target: tuple[str, str]
) -> None:
    mod, name = target
    fn = getattr(io if mod == "io" else netpoll, name)
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    loop = netpoll.new_event_loop()
    w = World()
    try:
        args = [data.draw(value_for(p.name, w), label=p.name) for p in params]
        record("public-API bad inputs tried")

        async def call() -> None:
            try:
                r = fn(*args)
                if inspect.isawaitable(r):
                    await asyncio.wait_for(r, 0.2)
            except TimeoutError:
                pass  # parked on a valid wait: fine
            except CLEAN:
                pass
            except BaseException as exc:
                pytest.fail(f"{mod}.{name}{tuple(args)!r} raised {type(exc).__name__}: {exc}")

        loop.run_until_complete(call())
    finally:
        loop.close()
        w.close()


def test_buffer_resized_while_an_m_reads_into_it_is_refused() -> None:
    """readinto a bytearray on a file, handed off to an M (RWF_NOWAIT forced to EAGAIN): while
    the call is in flight the bytearray cannot be resized (its memory is pinned); after it
    returns, it can."""

    async def body() -> None:
        with tempfile.TemporaryFile() as tmp:
            fd = tmp.fileno()
            os.write(fd, os.urandom(1 << 16))
            os.lseek(fd, 0, os.SEEK_SET)
            buf = bytearray(1 << 16)
            with _faults.inject(MISS, errno=errno.EAGAIN, style="return",
                                when=lambda f, *_: f == fd):
                t = asyncio.ensure_future(aio.readinto(fd, buf))
                await asyncio.sleep(0)
                resized = 0
                while not t.done():
                    try:
                        buf.extend(b"x" * 4096)
                        resized += 1
                    except BufferError:
                        pass
                    await asyncio.sleep(0)
                n = await t
            assert n == 1 << 16 and len(buf) == (1 << 16) + 4096 * resized
            assert resized == 0 or not t.done()
            buf.extend(b"y")  # released now
            record("resize-while-pinned attempts")

    from loopkinds import run_in

    run_in("aiosys", body)


# ----------------------------------------------- regressions: found by the fuzz, fixed in netpoll


def _run(coro_fn: Any) -> Any:
    loop = netpoll.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro_fn(), 5))
    finally:
        loop.close()


def test_known_noncontiguous_buffer_is_a_type_error() -> None:
    a, b = socket.socketpair()
    try:
        async def go() -> None:
            with pytest.raises(TypeError):
                await netpoll.sendto(a.fileno(), memoryview(bytearray(8))[::2],
                                     ("127.0.0.1", 1))

        _run(go)
    finally:
        a.close()
        b.close()


def test_known_huge_send_flags_are_a_value_error() -> None:
    a, b = socket.socketpair()
    try:
        async def go() -> None:
            with pytest.raises(ValueError):
                await netpoll.sendto(a.fileno(), b"x", ("127.0.0.1", 1), 2**31)

        _run(go)
    finally:
        a.close()
        b.close()


def test_known_infinite_deadline_is_a_value_error_or_no_deadline() -> None:
    a, b = socket.socketpair()
    try:
        async def go() -> None:
            netpoll.set_deadline(a.fileno(), float("inf"))

        _run(go)
    finally:
        a.close()
        b.close()
