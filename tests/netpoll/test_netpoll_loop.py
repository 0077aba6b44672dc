"""The aiosys loop is a full asyncio loop: the same bodies run on it, on the stdlib loop and
on uvloop.  Plus what only the aiosys loop has: park hooks, close hooks, one epoll set shared
with asyncio's own readers; and anyio, policy, run(), fork."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
import time

import anyio
import pytest
from loopkinds import LOOP_KINDS, anyio_run, new_loop, run_in

import aiosys.netpoll as netpoll

# -------------------------------------------------------------------------------------------
# asyncio features, shared bodies
# -------------------------------------------------------------------------------------------


def test_streams_echo(loop_kind: str) -> None:
    async def body() -> None:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            while line := await r.readline():
                w.write(line.upper())
                await w.drain()
            w.close()
            await w.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        for i in range(50):
            w.write(b"line %d\n" % i)
            await w.drain()
            assert await r.readline() == b"LINE %d\n" % i
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()

    run_in(loop_kind, body)


def test_protocol_and_datagram_transport(loop_kind: str) -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        got: asyncio.Future[bytes] = loop.create_future()

        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                self.transport.sendto(data[::-1], addr)  # type: ignore[attr-defined]

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                got.set_result(data)

        st, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        addr = st.get_extra_info("sockname")
        ct, _ = await loop.create_datagram_endpoint(Client, remote_addr=addr)
        ct.sendto(b"abc")
        assert await got == b"cba"
        ct.close()
        st.close()

    run_in(loop_kind, body)


def test_sock_calls(loop_kind: str) -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen()
        ls.setblocking(False)
        c = socket.socket()
        c.setblocking(False)
        acc = asyncio.ensure_future(loop.sock_accept(ls))
        await loop.sock_connect(c, ls.getsockname())
        s, _ = await acc
        s.setblocking(False)
        await loop.sock_sendall(c, b"hello")
        assert await loop.sock_recv(s, 10) == b"hello"
        for x in (s, c, ls):
            x.close()

    run_in(loop_kind, body)


def test_subprocess(loop_kind: str) -> None:
    async def body() -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; sys.stdout.write(sys.stdin.read().upper())",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate(b"shout")
        assert out == b"SHOUT" and proc.returncode == 0

    run_in(loop_kind, body)


def test_signal_handler(loop_kind: str) -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        got = asyncio.Event()
        loop.add_signal_handler(signal.SIGUSR1, got.set)
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            await asyncio.wait_for(got.wait(), 10)
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)

    run_in(loop_kind, body)


def test_call_soon_threadsafe_timers_and_executor(loop_kind: str) -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        th = threading.Thread(target=lambda: loop.call_soon_threadsafe(fut.set_result, 7))
        th.start()
        assert await fut == 7
        th.join()
        t0 = loop.time()
        fired: asyncio.Future[float] = loop.create_future()
        loop.call_later(0.02, lambda: fired.set_result(loop.time()))
        assert await fired >= t0 + 0.02 - 0.001  # uvloop's clock is in whole milliseconds
        assert await loop.run_in_executor(None, sum, [1, 2, 3]) == 6

    run_in(loop_kind, body)


def test_aiosys_awaitables_and_asyncio_readers_share_one_loop(loop_kind: str) -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        os.set_blocking(r1, False)
        seen: asyncio.Future[bytes] = loop.create_future()
        loop.add_reader(r1, lambda: seen.done() or seen.set_result(os.read(r1, 10)))
        try:
            t = asyncio.ensure_future(netpoll.read(r2, 10))
            os.write(w1, b"asyncio")
            os.write(w2, b"aiosys")
            assert await seen == b"asyncio"
            assert await t == b"aiosys"
        finally:
            loop.remove_reader(r1)
            os.close(r1)
            os.close(w1)
            await netpoll.close(r2)
            await netpoll.close(w2)

    run_in(loop_kind, body)


# -------------------------------------------------------------------------------------------
# aiosys loop only
# -------------------------------------------------------------------------------------------


def test_one_epoll_entry_per_fd_conflicts_are_clear() -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        r, w = os.pipe()
        try:
            await netpoll.write(w, b"x")  # w now has a PollDesc
            with pytest.raises(ValueError, match="aiosys netpoller"):
                loop.add_writer(w, lambda: None)
            loop.add_reader(r, lambda: None)
            with pytest.raises(netpoll.BusyError, match="add_reader"):
                await netpoll.read(r, 1)
            loop.remove_reader(r)
            assert await netpoll.read(r, 1) == b"x"
        finally:
            await netpoll.close(r)
            await netpoll.close(w)

    run_in("aiosys", body)


def test_park_hooks_veto_and_pair() -> None:
    calls: list[str] = []
    veto = [True]

    def before() -> bool:
        calls.append("before")
        return not veto[0]

    def after() -> None:
        calls.append("after")

    async def body() -> None:
        p = netpoll.current_poller()
        assert p.add_park_hooks(before, after) is True
        polls0 = p.polls
        await asyncio.sleep(0.01)  # a blocking wait: vetoed -> timeout 0 polls, still paired
        assert p.polls > polls0
        veto[0] = False
        await asyncio.sleep(0.01)

    run_in("aiosys", body)
    # Every before_park is followed by its after_park before the next before_park; after_park
    # also runs after non-blocking polls (the per-iteration drain point, Go's netpoll(0)).
    assert "before" in calls
    assert all(
        not (calls[i] == "before" and calls[i + 1] == "before") for i in range(len(calls) - 1)
    )
    assert calls[-1] == "after"


def test_park_hooks_refused_in_attach_mode() -> None:
    async def body() -> None:
        assert netpoll.current_poller().add_park_hooks(lambda: True, lambda: None) is False

    run_in("asyncio", body)


def test_close_hook_runs_when_the_loop_closes(loop_kind: str) -> None:
    ran: list[str] = []

    async def body() -> None:
        netpoll.current_poller().add_close_hook(lambda: ran.append("closed"))

    run_in(loop_kind, body)
    assert ran == ["closed"]


def test_policy_and_run() -> None:
    async def kind() -> str:
        return type(asyncio.get_running_loop()).__name__

    assert netpoll.run(kind()) == "AiosysEventLoop"
    policy = netpoll.EventLoopPolicy()
    loop = policy.new_event_loop()
    try:
        assert isinstance(loop, netpoll.AiosysEventLoop)
    finally:
        loop.close()


def test_stats_count_stale_and_waiters() -> None:
    async def body() -> None:
        s = netpoll.stats()
        for key in ("registered_fds", "waiters_read", "waiters_write", "netpoll_wakeups",
                    "stale_dropped", "wakeup_writes", "pollers"):
            assert key in s

    run_in("aiosys", body)


def test_new_loop_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError):
        new_loop("tornado")


# -------------------------------------------------------------------------------------------
# anyio
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_anyio_backends(kind: str) -> None:
    async def body() -> bytes:
        r, w = os.pipe()
        try:
            async with anyio.create_task_group() as tg:
                got: list[bytes] = []

                async def reader() -> None:
                    got.append(await netpoll.read(r, 10))

                tg.start_soon(reader)
                await anyio.sleep(0.01)
                await netpoll.write(w, b"anyio")
            return got[0]
        finally:
            await netpoll.close(r)
            await netpoll.close(w)

    assert anyio_run(kind, body) == b"anyio"


# -------------------------------------------------------------------------------------------
# fork
# -------------------------------------------------------------------------------------------


def test_forked_child_gets_a_fresh_netpoller() -> None:
    async def body() -> None:
        p = netpoll.current_poller()
        r, w = os.pipe()
        await netpoll.write(w, b"a")
        assert await netpoll.read(r, 1) == b"a"
        pid = os.fork()
        if pid == 0:  # child: asyncio forgets the running loop across fork; a new one
            code = 1  # must get a new netpoller, sharing no epoll set with the parent
            try:

                async def child() -> bool:
                    q = netpoll.current_poller()
                    cr, cw = os.pipe()
                    await netpoll.write(cw, b"c")
                    ok = await netpoll.read(cr, 1) == b"c"
                    await netpoll.close(cr)
                    await netpoll.close(cw)
                    return ok and q is not p and p.epfd != q.epfd

                code = 0 if netpoll.run(child()) else 1
            finally:
                os._exit(code)
        # parent: its own netpoller keeps working while the child uses its copy
        deadline = time.monotonic() + 30
        while True:
            wpid, status = os.waitpid(pid, os.WNOHANG)
            if wpid:
                break
            assert time.monotonic() < deadline, "child hung"
            await asyncio.sleep(0.01)
        assert os.waitstatus_to_exitcode(status) == 0
        await netpoll.write(w, b"p")
        assert await netpoll.read(r, 1) == b"p"
        await netpoll.close(r)
        await netpoll.close(w)

    with pytest.warns(DeprecationWarning) if sys.version_info >= (3, 12) else _nullctx():
        run_in("aiosys", body)


class _nullctx:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None


def test_attached_poller_is_torn_down_when_a_stdlib_loop_closes() -> None:
    ran: list[str] = []
    pollers: list[netpoll.Netpoller] = []

    async def body() -> None:
        p = netpoll.current_poller()
        p.add_close_hook(lambda: ran.append("closed"))
        pollers.append(p)
        r, w = os.pipe()
        await netpoll.write(w, b"x")
        assert await netpoll.read(r, 1) == b"x"
        await netpoll.close(r)
        await netpoll.close(w)

    asyncio.run(body())  # plain asyncio.run: no detach by the caller
    assert ran == ["closed"] and pollers[0].closed


def test_refused_nested_run_keeps_the_running_netpoller() -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        p = netpoll.current_poller()
        with pytest.raises(RuntimeError):
            loop.run_forever()  # nested: refused by asyncio inside our override
        assert netpoll.current_poller() is p
        from aiosys.netpoll import _loop

        assert _loop._running.get(threading.get_ident()) is p

    run_in("aiosys", body)
