"""A small TCP file server that reads files with aiosys, so P handoffs happen and show up in
the structured logs.

Protocol (one request per line, many per connection)::

    GET <path>\\n       ->  OK <size>\\n<size bytes>     (path relative to --root)
                        or  ERR <reason>\\n

Where each call goes (see DESIGN.md, "Where each call goes"):
- ``aiosys.open`` (openat) and ``aiosys.fstat`` may block on any filesystem: handed off to an
  M (entersyscall -> M -> exitsyscall), logged when ``--trace`` is on;
- ``aiosys.pread`` tries ``preadv2(RWF_NOWAIT)`` inline first: a page-cache hit returns on
  the loop thread with no handoff; a miss (EAGAIN) is handed off.  ``--drop-cache`` evicts
  each file from the page cache after serving it, so the next request misses;
- ``--sendfile`` sends with ``aiosys.sendfile`` (handed off: it may read the disk) instead of
  pread + write_all;
- the socket side (``aiosys.accept/read/write_all``) parks on the netpoller, never a thread.

    python examples/servers/file_server.py --root DIR --port 0 [--trace json] [--drop-cache]
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import sys
from typing import Any

import _common

CHUNK = 256 * 1024
MAX_LINE = 4096
QUIET_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.EBADF, errno.ENOTCONN}


class FileIO:
    """The aiosys calls this server uses (public names once the lead re-exports them)."""

    def __init__(self) -> None:
        import aiosys

        def pick(name: str) -> Any:
            for mod in ("aiosys", "aiosys._io"):
                try:
                    m = __import__(mod, fromlist=["_"])
                except ImportError:
                    continue
                if hasattr(m, name):
                    return getattr(m, name)
            raise RuntimeError(f"aiosys.{name} is not available (the scheduler has not landed)")

        self.aiosys = aiosys
        self.net = _common.aiosys_io()
        self.open = pick("open")
        self.pread = pick("pread")
        self.fstat = pick("fstat")
        self.close = pick("close")
        self.sendfile = pick("sendfile")


class FileServer:
    def __init__(self, io: FileIO, root: str, *, max_conns: int, drop_cache: bool,
                 use_sendfile: bool) -> None:  # fmt: skip
        self.io = io
        self.root = os.path.realpath(root)
        self.max_conns = max_conns
        self.drop_cache = drop_cache
        self.use_sendfile = use_sendfile
        self.conns: set[asyncio.Task[None]] = set()

    def resolve(self, rel: str) -> str | None:
        path = os.path.realpath(os.path.join(self.root, rel.lstrip("/")))
        if path != self.root and not path.startswith(self.root + os.sep):
            return None  # escapes --root
        return path

    async def send_file(self, conn: int, path: str) -> None:
        io = self.io
        try:
            fd = await io.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            await io.net.write_all(conn, f"ERR {exc.strerror}\n".encode())
            return
        try:
            st = await io.fstat(fd)
            size = st.st_size
            await io.net.write_all(conn, f"OK {size}\n".encode())
            off = 0
            while off < size:
                if self.use_sendfile:
                    try:
                        n = await io.sendfile(conn, fd, off, min(CHUNK, size - off))
                    except BlockingIOError:
                        # The socket is non-blocking and its buffer is full: wait on the
                        # netpoller for room, then hand the sendfile off again.
                        await io.net.wait_writable(conn)
                        continue
                else:
                    data = await io.pread(fd, min(CHUNK, size - off), off)
                    n = len(data)
                    if n:
                        await io.net.write_all(conn, data)
                if n == 0:
                    break  # the file shrank under us: the client sees a short body
                off += n
            if self.drop_cache:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            await _common.maybe_await(io.close(fd))

    async def serve_conn(self, conn: int) -> None:
        net = self.io.net
        buf = b""
        try:
            while True:
                while b"\n" not in buf:
                    if len(buf) > MAX_LINE:
                        await net.write_all(conn, b"ERR request line too long\n")
                        return
                    data = await net.read(conn, 65536)
                    if not data:
                        return
                    buf += data
                line, buf = buf.split(b"\n", 1)
                verb, _, arg = line.decode("utf-8", "replace").strip().partition(" ")
                path = self.resolve(arg) if verb == "GET" and arg else None
                if path is None:
                    await net.write_all(conn, b"ERR bad request: GET <path under root>\n")
                    continue
                await self.send_file(conn, path)
        except OSError as exc:
            if exc.errno not in QUIET_ERRNOS:
                raise
        finally:
            await _common.maybe_await(net.close(conn))

    async def accept_loop(self, lfd: int) -> None:
        while True:
            fd, _ = await self.io.net.accept(lfd)
            if len(self.conns) >= self.max_conns:
                await _common.maybe_await(self.io.net.close(fd))
                continue
            t = asyncio.create_task(self.serve_conn(fd))
            self.conns.add(t)
            t.add_done_callback(self.conns.discard)

    async def serve(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        _common.on_stop_signals(loop, stop.set)
        lsock = socket.socket()
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((host, port))
        lsock.listen(128)
        lsock.setblocking(False)
        name = lsock.getsockname()
        lfd = lsock.detach()
        acceptor = asyncio.create_task(self.accept_loop(lfd))
        _common.announce(name)
        try:
            waiter = asyncio.create_task(stop.wait())
            await asyncio.wait([acceptor, waiter], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        finally:
            _common.remove_stop_signals(loop)
            tasks = [acceptor, *self.conns]
            for t in tasks:
                t.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            await _common.maybe_await(self.io.net.close(lfd))
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                raise r


def main() -> int:
    ap = _common.make_parser(__doc__)
    ap.add_argument("--root", default=".", help="directory to serve (default: current)")
    ap.add_argument("--drop-cache", action="store_true",
                    help="evict each file from the page cache after serving it")  # fmt: skip
    ap.add_argument("--sendfile", action="store_true", help="send with aiosys.sendfile")
    args = ap.parse_args()
    fds = _common.open_fds()
    _common.enable_trace(args.trace)
    server = FileServer(FileIO(), args.root, max_conns=args.max_conns,
                        drop_cache=args.drop_cache, use_sendfile=args.sendfile)  # fmt: skip
    with asyncio.Runner(loop_factory=_common.loop_factory("aiosys")) as runner:
        runner.run(server.serve(args.host, args.port))
    return _common.report_leaks(fds)


if __name__ == "__main__":
    sys.exit(main())
