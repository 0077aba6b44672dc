"""Socket awaitables (accept4, connect, recv/send, datagrams) on all three loop kinds."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile

import pytest
from loopkinds import run_in

import aiosys.netpoll as netpoll


def test_tcp_echo_accept_connect_recv_send(loop_kind: str) -> None:
    async def body() -> None:
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen()
        ls.setblocking(False)
        port = ls.getsockname()[1]

        async def server() -> None:
            fd, addr = await netpoll.accept(ls)
            assert addr[0] == "127.0.0.1" and isinstance(addr[1], int)
            assert netpoll.is_registered(fd)  # entered by accept itself
            assert not os.get_blocking(fd)  # SOCK_NONBLOCK
            assert not os.get_inheritable(fd)  # SOCK_CLOEXEC
            while data := await netpoll.recv(fd, 65536):
                await netpoll.sendall(fd, data)
            await netpoll.close(fd)

        srv = asyncio.ensure_future(server())
        c = socket.socket()
        c.setblocking(False)
        await netpoll.connect(c, ("127.0.0.1", port))
        payload = os.urandom(300_000)
        sender = asyncio.ensure_future(netpoll.sendall(c, payload))
        got = bytearray()
        buf = bytearray(4096)
        while len(got) < len(payload):
            n = await netpoll.recv_into(c, buf)
            assert n > 0
            got += buf[:n]
        await sender
        assert bytes(got) == payload
        assert await netpoll.send(c, b"ping") == 4
        assert await netpoll.recv(c, 10, socket.MSG_PEEK) == b"ping"
        assert await netpoll.recv(c, 10) == b"ping"
        c.shutdown(socket.SHUT_WR)
        await srv
        assert await netpoll.recv(c, 10) == b""
        await netpoll.close(c)
        await netpoll.close(ls)

    run_in(loop_kind, body)


def test_connect_refused_reports_the_error(loop_kind: str) -> None:
    async def body() -> None:
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        port = ls.getsockname()[1]
        ls.close()  # nobody listens there now
        c = socket.socket()
        c.setblocking(False)
        try:
            with pytest.raises(ConnectionRefusedError):
                await netpoll.connect(c, ("127.0.0.1", port))
        finally:
            await netpoll.close(c)

    run_in(loop_kind, body)


def test_connect_refuses_names_that_need_dns(loop_kind: str) -> None:
    async def body() -> None:
        c = socket.socket()
        c.setblocking(False)
        try:
            with pytest.raises(ValueError, match="name resolution"):
                await netpoll.connect(c, ("localhost", 80))
        finally:
            c.close()

    run_in(loop_kind, body)


def test_udp_recvfrom_sendto(loop_kind: str) -> None:
    async def body() -> None:
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        try:
            reader = asyncio.ensure_future(netpoll.recvfrom(a, 100))
            await asyncio.sleep(0.01)
            assert not reader.done()
            assert await netpoll.sendto(b, b"dgram", a.getsockname()) == 5
            data, addr = await reader
            assert data == b"dgram" and addr == b.getsockname()
            # datagrams: two short messages are two reads (no "short read = drained" skip)
            await netpoll.sendto(b, b"one", a.getsockname())
            await netpoll.sendto(b, b"two", a.getsockname())
            assert await netpoll.read(a, 100) == b"one"
            assert await netpoll.read(a, 100) == b"two"
        finally:
            await netpoll.close(a)
            await netpoll.close(b)
        assert a.fileno() == -1 and b.fileno() == -1

    run_in(loop_kind, body)


def test_unix_accept_address_and_wait_readable_writable(loop_kind: str) -> None:
    async def body() -> None:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "s")
            ls = socket.socket(socket.AF_UNIX)
            ls.bind(path)
            ls.listen()
            ls.setblocking(False)
            c = socket.socket(socket.AF_UNIX)
            c.setblocking(False)
            acc = asyncio.ensure_future(netpoll.accept(ls))
            await netpoll.connect(c, path)
            fd, addr = await acc
            assert addr == ""  # unnamed client, as socket.accept reports it
            await netpoll.wait_writable(c)
            waiter = asyncio.ensure_future(netpoll.wait_readable(fd))
            await asyncio.sleep(0.01)
            assert not waiter.done()
            await netpoll.send(c, b"x")
            await waiter
            assert await netpoll.read(fd, 10) == b"x"
            for s in (fd, c, ls):
                await netpoll.close(s)

    run_in(loop_kind, body)


def test_eventfd_and_non_stream_reads(loop_kind: str) -> None:
    async def body() -> None:
        from aiosys.native import _lowlevel as ll

        efd = ll.eventfd(0)
        try:
            reader = asyncio.ensure_future(netpoll.read(efd, 8))
            await asyncio.sleep(0.01)
            assert not reader.done()
            # eventfd answers EOPNOTSUPP to pwritev2(RWF_NOWAIT): the fallback write is used
            assert await netpoll.write(efd, (3).to_bytes(8, "little")) == 8
            assert int.from_bytes(await reader, "little") == 3
        finally:
            await netpoll.close(efd)

    run_in(loop_kind, body)


def test_sizes_and_ports_out_of_range_are_value_errors(loop_kind: str) -> None:
    async def body() -> None:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        try:
            with pytest.raises(ValueError):
                await netpoll.recvfrom(u, 2**63)
            with pytest.raises(ValueError):
                await netpoll.sendto(u, b"x", ("127.0.0.1", 70000))
            with pytest.raises(ValueError):
                await netpoll.connect(u, ("127.0.0.1", -1))
        finally:
            await netpoll.close(u)

    run_in(loop_kind, body)
