"""Echo server on stock asyncio streams (or, with --protocol, a Protocol), on the aiosys loop.

The drop-in proof: nothing aiosys-specific in the server code; only the loop differs.
``--loop stdlib`` / ``--loop uvloop`` run the very same code on the other loops (the echo
matrix uses them as the peers).

    python examples/servers/echo_asyncio.py --port 0 [--protocol] [--loop aiosys|stdlib|uvloop]
"""

from __future__ import annotations

import asyncio
import sys
from typing import cast

import _common

READ_SIZE = 65536


class EchoProtocol(asyncio.Protocol):
    """Echo every chunk as it arrives; the transport buffers what the socket will not take."""

    def __init__(self, server: EchoServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if len(self.server.transports) >= self.server.max_conns:
            transport.abort()  # over the connection limit
            return
        self.transport = transport
        self.server.transports.add(transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.server.transports.discard(self.transport)


class EchoServer:
    def __init__(self, max_conns: int) -> None:
        self.max_conns = max_conns
        self.transports: set[asyncio.Transport] = set()
        self.writers: set[asyncio.StreamWriter] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self.writers) >= self.max_conns:
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self.writers.add(writer)
        self.tasks.add(task)  # type: ignore[arg-type]
        try:
            while data := await reader.read(READ_SIZE):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass  # peer reset, or shutdown
        finally:
            self.writers.discard(writer)
            self.tasks.discard(task)  # type: ignore[arg-type]
            writer.transport.abort()

    async def serve(self, host: str, port: int, protocol: bool) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        _common.on_stop_signals(loop, stop.set)
        if protocol:
            server = await loop.create_server(lambda: EchoProtocol(self), host, port)
        else:
            server = await asyncio.start_server(self.handle, host, port)
        _common.announce(server.sockets[0].getsockname())
        try:
            await stop.wait()
        finally:
            _common.remove_stop_signals(loop)
            server.close()
            for t in list(self.tasks):
                t.cancel()
            if self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)
            for tr in list(self.transports):
                tr.abort()
            await server.wait_closed()
            await asyncio.sleep(0)  # let aborted transports run connection_lost


def main() -> int:
    ap = _common.make_parser(__doc__)
    ap.add_argument("--protocol", action="store_true", help="serve with a Protocol, not streams")
    ap.add_argument("--loop", choices=["aiosys", "stdlib", "uvloop"], default="aiosys")
    args = ap.parse_args()
    fds = _common.open_fds()
    _common.enable_trace(args.trace)
    server = EchoServer(args.max_conns)
    with asyncio.Runner(loop_factory=_common.loop_factory(args.loop)) as runner:
        runner.run(server.serve(args.host, args.port, args.protocol))
    return _common.report_leaks(fds)


if __name__ == "__main__":
    sys.exit(main())
