"""Echo server in Go's shape: one task per connection, plain fds, aiosys awaitables.

    lfd = listening socket fd
    loop:  fd, addr = await aiosys.accept(lfd)      # parks on the netpoller, never a thread
           spawn serve_conn(fd)
    serve_conn:  set_read_deadline(fd, now + idle)   # Go's SetReadDeadline: idle timeout
                 data = await aiosys.read(fd, 64 KiB); await aiosys.write_all(fd, data)

It runs on the aiosys event loop, whose selector *is* the netpoller: one epoll_wait per loop
iteration serves these fds and anything asyncio itself watches.  ``echo_uvloop.py`` runs this
same code on uvloop with the netpoller attached.

    python examples/servers/echo_goroutine.py --port 0 [--idle-timeout 30] [--trace console]
"""

from __future__ import annotations

import asyncio
import errno
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import _common

READ_SIZE = 65536
# The read deadline is moved at most this often (seconds), not before every read: the idle
# timeout then fires between idle_timeout - DEADLINE_REFRESH and idle_timeout after the last
# byte, and a busy connection pays for one timer update per second, not one per request.
DEADLINE_REFRESH = 1.0
QUIET_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.EBADF, errno.ENOTCONN, errno.ETIMEDOUT}
# accept errors that mean "not now" (Go's Temporary()): back off and retry.
ACCEPT_BACKOFF_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class GoroutineEchoServer:
    def __init__(self, io: Any, *, max_conns: int, idle_timeout: float) -> None:
        self.io = io
        self.max_conns = max_conns
        self.idle_timeout = idle_timeout
        self.conns: set[asyncio.Task[None]] = set()
        self.accepted = 0
        self.idle_closed = 0

    async def close_fd(self, fd: int) -> None:
        await _common.maybe_await(self.io.close(fd))

    async def serve_conn(self, fd: int) -> None:
        io = self.io
        read, write_all = io.read, io.write_all
        set_read_deadline: Callable[[int, float | None], Any] = io.set_read_deadline
        idle = self.idle_timeout
        moved_at = 0.0
        try:
            while True:
                now = time.monotonic()
                if now - moved_at >= DEADLINE_REFRESH:
                    await _common.maybe_await(set_read_deadline(fd, now + idle))
                    moved_at = now
                data = await read(fd, READ_SIZE)
                if not data:
                    break  # EOF: the peer closed
                await write_all(fd, data)
        except TimeoutError:
            self.idle_closed += 1  # read deadline expired: idle connection
        except OSError as exc:
            if exc.errno not in QUIET_ERRNOS:
                raise
        finally:
            await self.close_fd(fd)

    async def accept_loop(self, lfd: int) -> None:
        delay = 0.0
        while True:
            try:
                fd, _addr = await self.io.accept(lfd)
            except OSError as exc:
                if exc.errno not in ACCEPT_BACKOFF_ERRNOS:
                    raise
                # Out of fds or memory while a connection waits: the listener stays readable,
                # so retrying at once spins the loop at 100% CPU, and giving up stops the
                # server.  Back off 5 ms .. 1 s like Go's net/http Serve, then retry.
                delay = min(max(delay * 2, 0.005), 1.0)
                await asyncio.sleep(delay)
                continue
            delay = 0.0
            self.accepted += 1
            if len(self.conns) >= self.max_conns:
                await self.close_fd(fd)  # over the connection limit
                continue
            task = asyncio.create_task(self.serve_conn(fd))
            self.conns.add(task)
            task.add_done_callback(self.conns.discard)

    async def serve(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        _common.on_stop_signals(loop, stop.set)
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((host, port))
        lsock.listen(1024)
        lsock.setblocking(False)
        sockname = lsock.getsockname()
        lfd = lsock.detach()  # from here on aiosys owns the fd: aiosys.close() it
        acceptor = asyncio.create_task(self.accept_loop(lfd))
        _common.announce(sockname)
        try:
            done, _ = await asyncio.wait(
                [acceptor, asyncio.create_task(stop.wait())],
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            _common.remove_stop_signals(loop)
            tasks = [acceptor, *self.conns]
            for t in tasks:
                t.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            await self.close_fd(lfd)
            for t in asyncio.all_tasks() - {asyncio.current_task()}:
                t.cancel()  # the stop.wait() helper
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                raise r


def run(loop: str, argv: list[str] | None = None, doc: str | None = __doc__) -> int:
    ap = _common.make_parser(doc)
    ap.add_argument(
        "--idle-timeout",
        type=float,
        default=30.0,
        help="close a connection that sends nothing for this many seconds (read deadline)",
    )
    ap.add_argument(
        "--io",
        choices=["aiosys", "netpoll"],
        default="aiosys",
        help="aiosys: the public awaitables (default); netpoll: aiosys.netpoll's directly "
        "(pollable fds only: skips the public layer's file/pipe dispatch)",
    )
    args = ap.parse_args(argv)
    fds = _common.open_fds()
    _common.enable_trace(args.trace)
    if args.io == "netpoll":
        import aiosys.netpoll as io
    else:
        io = _common.aiosys_io()
    server = GoroutineEchoServer(io, max_conns=args.max_conns, idle_timeout=args.idle_timeout)
    with asyncio.Runner(loop_factory=_common.loop_factory(loop)) as runner:
        runner.run(server.serve(args.host, args.port))
    return _common.report_leaks(fds)


if __name__ == "__main__":
    sys.exit(run("aiosys"))
