"""Trio echo server (a peer row of the echo matrix): ``trio.serve_tcp``, one task per
connection.  Prints ``listening on HOST:PORT``; exits 0 on SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
from functools import partial

import trio


async def handle(stream: trio.SocketStream) -> None:
    try:
        async with stream:
            while data := await stream.receive_some(65536):
                await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def serve(host: str, port: int) -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, port, host=host))
        name = listeners[0].socket.getsockname()
        print(f"listening on {name[0]}:{name[1]}", flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as sigs:
            async for _ in sigs:
                nursery.cancel_scope.cancel()
                break


def main() -> int:
    ap = argparse.ArgumentParser(description="trio echo server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    trio.run(serve, a.host, a.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
