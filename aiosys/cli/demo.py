"""``python -m aiosys demo``: the README's "run it".

Starts a goroutine-style echo server (one task per connection, ``aiosys.accept`` /
``aiosys.read`` / ``aiosys.write_all``) on the aiosys event loop, drives a short load burst from
the native load generator (a subprocess: every echoed byte checked), and meanwhile reads a file
through aiosys so the scheduler has something to do: page-cache hits on the RWF_NOWAIT fast
path, and after the cache is dropped, handoffs to an M.  Prints requests/s and latency
percentiles, a few structured handoff events and the ``aiosys.stats()`` counters, with a
progress line while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import socket
import sys
import tempfile
import textwrap
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import structlog

from . import _api, _loadgen

FILE_SIZE = 1 << 20  # 1 MiB scratch file for the read work
READ_SIZE = 4096


@dataclass
class Counters:
    conns: int = 0
    requests_bytes: int = 0
    file_reads: int = 0
    file_bytes: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    events_total: int = 0
    notes: list[str] = field(default_factory=list)


class GoroutineEcho:
    """The echo server of ``examples/servers/echo_goroutine.py``, trimmed, with counters."""

    def __init__(self, c: Counters) -> None:
        self.c = c
        self.io_read = _api.public("read")
        self.io_write_all = _api.public("write_all")
        self.io_accept = _api.public("accept")
        self.io_close = _api.public("close")
        self.tasks: set[asyncio.Task[None]] = set()

    async def conn(self, fd: int) -> None:
        read, write_all, c = self.io_read, self.io_write_all, self.c
        c.conns += 1
        try:
            while data := await read(fd, 65536):
                await write_all(fd, data)
                c.requests_bytes += len(data)
        except OSError as exc:
            if exc.errno not in (errno.ECONNRESET, errno.EPIPE, errno.EBADF):
                raise
        finally:
            c.conns -= 1
            await _api.maybe_await(self.io_close(fd))

    async def serve(self, lfd: int) -> None:
        while True:
            fd, _ = await self.io_accept(lfd)
            t = asyncio.create_task(self.conn(fd))
            self.tasks.add(t)
            t.add_done_callback(self.tasks.discard)

    async def close(self, lfd: int) -> None:
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await _api.maybe_await(self.io_close(lfd))


class StreamsEcho:
    """Fallback while the netpoller's awaitables have not landed: asyncio streams."""

    def __init__(self, c: Counters) -> None:
        self.c = c
        self.server: asyncio.Server | None = None

    async def handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.c.conns += 1
        try:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
                self.c.requests_bytes += len(data)
        except ConnectionError:
            pass
        finally:
            self.c.conns -= 1
            w.transport.abort()


async def file_work(c: Counters, stop: asyncio.Event) -> None:
    """Read a scratch file through aiosys: cached reads take the RWF_NOWAIT fast path; every
    so often the page cache is dropped (fadvise DONTNEED) so the next read misses and is
    handed off to an M, and an fsync (always a handoff) runs."""
    pread = _api.public("pread")
    fsync = _api.public("fsync")
    if pread is None:
        c.notes.append("aiosys.pread has not landed: no file reads, so no handoffs to show")
        await stop.wait()
        return
    fd, path = tempfile.mkstemp(prefix="aiosys-demo-", dir=os.environ.get("TMPDIR", "/var/tmp"))
    try:
        os.write(fd, os.urandom(FILE_SIZE))
        os.fsync(fd)
        off = 0
        n = 0
        while not stop.is_set():
            data = await pread(fd, READ_SIZE, off)
            c.file_reads += 1
            c.file_bytes += len(data)
            off = (off + READ_SIZE) % FILE_SIZE
            n += 1
            if n % 200 == 0:
                # Drop the cache: the next reads miss, RWF_NOWAIT says EAGAIN, and the read is
                # handed off (entersyscall -> M -> exitsyscall).
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                if fsync is not None:
                    await fsync(fd)
                await asyncio.sleep(0.02)
            elif n % 20 == 0:
                await asyncio.sleep(0)  # share the loop fairly with the echo server
    finally:
        os.close(fd)
        os.unlink(path)


def _collect(c: Counters, keep: int) -> Any:
    """A structlog logger that keeps the first ``keep`` events (and counts them all)."""

    def proc(_logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
        c.events_total += 1
        if len(c.events) < keep:
            c.events.append(dict(event_dict, level=method))
        raise structlog.DropEvent

    return structlog.wrap_logger(structlog.ReturnLogger(), processors=[proc])


async def progress(c: Counters, seconds: float, out: TextIO, stop: asyncio.Event) -> None:
    tty = out.isatty()
    t0 = time.monotonic()
    last_line = -1.0
    while not stop.is_set():
        el = time.monotonic() - t0
        frac = min(el / seconds, 1.0)
        bar = "#" * int(frac * 24)
        msg = (f"[{bar:<24}] {el:4.1f}/{seconds:.0f} s  conns {c.conns:4d}  "
               f"echoed {c.requests_bytes / 1e6:7.2f} MB  file reads {c.file_reads:6d}  "
               f"events {c.events_total:5d}")  # fmt: skip
        if tty:
            out.write("\r" + msg)
            out.flush()
        elif el - last_line >= 1.0:
            out.write(msg + "\n")
            out.flush()
            last_line = el
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)
    if tty:
        out.write("\r" + " " * 100 + "\r")
        out.flush()


async def demo_main(args: Any, out: TextIO) -> dict[str, Any]:
    c = Counters()
    goroutine = _api.have_io("accept", "read", "write_all", "close")
    trace = _api.module("aiosys.trace")
    if trace is not None:
        trace.enable(logger=_collect(c, args.events), sysmon=False)
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1024)
    lsock.setblocking(False)
    port = lsock.getsockname()[1]
    stop = asyncio.Event()
    server_task: asyncio.Task[None] | None = None
    streams: asyncio.Server | None = None
    g: GoroutineEcho | None = None
    lfd = -1
    if goroutine:
        g = GoroutineEcho(c)
        lfd = lsock.detach()
        server_task = asyncio.create_task(g.serve(lfd))
        kind = "goroutine-style echo server (aiosys.accept/read/write_all)"
    else:
        s = StreamsEcho(c)
        streams = await asyncio.start_server(s.handle, sock=lsock)
        kind = "asyncio streams echo server (aiosys awaitables have not landed)"
    out.write(f"aiosys demo: {kind} on the {args.loop_name} loop, 127.0.0.1:{port}\n"
              f"load: native generator, {args.conns} connections x {args.size} B ping-pong, "
              f"{args.seconds:g} s, every echoed byte verified\n")  # fmt: skip
    out.flush()
    workers = [
        asyncio.create_task(file_work(c, stop)),
    ]
    if getattr(args, "progress", True):
        workers.append(asyncio.create_task(progress(c, args.seconds, out, stop)))
    try:
        res = await _loadgen.run_async(port, conns=args.conns, size=args.size,
                                       seconds=args.seconds)  # fmt: skip
    finally:
        stop.set()
        await asyncio.gather(*workers, return_exceptions=True)
        if g is not None and server_task is not None:
            server_task.cancel()
            await asyncio.gather(server_task, return_exceptions=True)
            await g.close(lfd)
        if streams is not None:
            streams.close()
            await streams.wait_closed()
        if trace is not None:
            trace.disable()
    return {"load": res, "counters": c, "stats": _api.stats()}


def report(r: dict[str, Any], out: TextIO, nevents: int) -> int:
    res, c = r["load"], r["counters"]
    out.write("\n== load (native generator) ==\n")
    if "error" in res:
        out.write(f"error: {res['error']}\n")
        return 1
    out.write(
        f"requests/s: {res['rps']:,.0f}  ({res['requests']:,} requests in {res['seconds']:.2f} s,"
        f" {res['errors']} errors, {res['mismatches']} mismatched bytes)\n"
        f"latency: p50 {res['p50_us']:.0f} us  p90 {res['p90_us']:.0f} us  "
        f"p99 {res['p99_us']:.0f} us  max {res['max_us']:.0f} us\n"
        f"file reads through aiosys meanwhile: {c.file_reads:,} ({c.file_bytes / 1e6:.1f} MB)\n"
    )
    out.write(f"\n== handoff events (first {min(nevents, len(c.events))} of {c.events_total}) ==\n")
    for ev in c.events[:nevents]:
        ev = dict(ev)
        name = ev.pop("event", "?")
        ev.pop("level", None)
        fields = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in ev.items())
        out.write(f"  {name:<13} {fields}\n")
    if not c.events:
        out.write("(none)\n")
    for note in c.notes:
        out.write(f"note: {note}\n")
    out.write("\n== aiosys.stats() ==\n")
    stats = r["stats"]
    if not stats:
        out.write("(no counters yet)\n")
    nonzero = {k: v for k, v in stats.items() if v}
    width = max((len(k) for k in nonzero), default=0)
    for k, v in sorted(nonzero.items()):
        out.write(f"  {k:<{width}}  {v:,}\n")
    zero = sorted(k for k, v in stats.items() if not v)
    if zero:
        out.write(textwrap.fill("  zero: " + ", ".join(zero), 100, subsequent_indent="    "))
        out.write("\n")
    if "handoffs" in stats:
        out.write(
            f"\nfile reads served inline from the page cache (RWF_NOWAIT): "
            f"{stats.get('nowait_hits', 0):,}; calls handed off to an M (fsync, cache misses): "
            f"{stats.get('handoffs', 0):,}; the echo server's sockets never left the loop thread.\n"
        )
    return 0 if res.get("rc", 1) == 0 else 1


def main(args: Any, out: TextIO = sys.stdout) -> int:
    factory, args.loop_name = _api.loop_factory()
    try:
        _loadgen.build()
    except _loadgen.LoadgenError as exc:
        out.write(f"error: {exc}\n")
        return 2
    with asyncio.Runner(loop_factory=factory) as runner:
        r = runner.run(demo_main(args, out))
    return report(r, out, args.events)
