"""Echo server on an anyio TCP listener, on the aiosys loop (or, with --uvloop, on uvloop;
--loop stdlib for the stock asyncio loop).

anyio's asyncio backend takes a loop factory, so the aiosys event loop slots in without a
line of anyio-specific glue.

    python examples/servers/echo_anyio.py --port 0 [--uvloop | --loop stdlib]
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import _common
import anyio
from anyio.abc import SocketStream

READ_SIZE = 65536


async def serve(host: str, port: int, max_conns: int) -> None:
    active = 0

    async def handle(stream: SocketStream) -> None:
        nonlocal active
        async with stream:
            if active >= max_conns:
                return  # over the connection limit: close at once
            active += 1
            try:
                while True:
                    data = await stream.receive(READ_SIZE)
                    await stream.send(data)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass
            except OSError:
                pass  # peer reset
            finally:
                active -= 1

    # The asyncio backend is always used here, so the loop's own signal handling serves
    # (anyio.open_signal_receiver let a SIGTERM through when awaited straight after
    # start_soon(listener.serve) in a quick test: not chased further).
    loop = asyncio.get_running_loop()
    stop = anyio.Event()
    _common.on_stop_signals(loop, stop.set)
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    try:
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handle)
            sock = listener.listeners[0].extra(anyio.abc.SocketAttribute.raw_socket)
            _common.announce(sock.getsockname())
            await stop.wait()
            tg.cancel_scope.cancel()
    finally:
        _common.remove_stop_signals(loop)


def main() -> int:
    ap = _common.make_parser(__doc__)
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop instead of aiosys")
    ap.add_argument("--loop", choices=["aiosys", "uvloop", "stdlib"], default="aiosys")
    args = ap.parse_args()
    if args.uvloop:
        args.loop = "uvloop"
    fds = _common.open_fds()
    _common.enable_trace(args.trace)
    options: dict[str, Any]
    if args.loop == "uvloop":
        options = {"use_uvloop": True}
    else:
        options = {"loop_factory": _common.loop_factory(args.loop)}
    anyio.run(serve, args.host, args.port, args.max_conns, backend="asyncio",
              backend_options=options)  # fmt: skip
    return _common.report_leaks(fds)


if __name__ == "__main__":
    sys.exit(main())
