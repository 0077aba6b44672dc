"""Load and soak, bounded for CI (marked ``slow``, still run):

* load: the goroutine-style echo server (examples/servers/echo_goroutine.py: one task per
  connection, aiosys.accept/read/write_all, the aiosys loop) holds ``AIOSYS_REL_CONNS``
  concurrent loopback connections (1,000 in CI, 10,000 locally), every byte echoed and
  verified, twice; server memory per connection and fds reported; after the clients leave
  the server's fds return exactly to the starting count and a second full round does not
  grow its memory (no leak per connection).
* soak: ``AIOSYS_REL_SOAK_S`` seconds (12 in CI) of mixed traffic in this process on the
  aiosys loop: echo pairs, file reads handed off to Ms, cancellations of both; RSS, open fds
  and OS threads are sampled and must stay flat.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from _relapi import aio
from _relcounters import budget, record
from loopkinds import run_in

from aiosys import _faults

# A page-cache miss: the inline RWF_NOWAIT read says EAGAIN, so the call is handed off.
MISS = "aiosys.native._lowlevel:hot_pread"

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "examples" / "servers" / "echo_goroutine.py"
GUARD = 120.0


def _proc_status(pid: int | str) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "Threads"):
            out[k] = int(v.split()[0])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def _raise_nofile(n: int) -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return soft, hard


class Server:
    def __init__(self, conns: int) -> None:
        boot = (
            "import resource, runpy, sys\n"
            "s, h = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
            f"resource.setrlimit(resource.RLIMIT_NOFILE, (min(h, {conns * 2 + 256}), h))\n"
            f"sys.argv = [{str(SERVER)!r}, '--port', '0', '--max-conns', '{conns + 16}',"
            " '--idle-timeout', '900']\n"
            f"sys.path.insert(0, {str(SERVER.parent)!r})\n"
            f"runpy.run_path({str(SERVER)!r}, run_name='__main__')\n"
        )
        self.proc = subprocess.Popen([sys.executable, "-c", boot], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        line = ""
        for _ in range(300):
            if sel.select(0.1):
                line = self.proc.stdout.readline()
                break
            if self.proc.poll() is not None:
                break
        sel.close()
        if not line.startswith("listening on "):
            self.stop()
            raise AssertionError(f"server did not start: {line!r} {self.stderr[-2000:]}")
        host, _, port = line.split()[-1].rpartition(":")
        self.addr = (host, int(port))
        self.stderr = ""

    def stats(self) -> dict[str, int]:
        return _proc_status(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _, self.stderr = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, self.stderr = self.proc.communicate(timeout=30)


async def _open_all(addr: tuple[str, int], n: int) -> list[socket.socket]:
    loop = asyncio.get_running_loop()
    socks: list[socket.socket] = []
    for start in range(0, n, 256):  # batches: the listen backlog is 1024
        batch = []
        for _ in range(min(256, n - start)):
            s = socket.socket()
            s.setblocking(False)
            batch.append(s)
        await asyncio.gather(*(loop.sock_connect(s, addr) for s in batch))
        socks += batch
    return socks


async def _echo_round(socks: list[socket.socket], size: int, tag: int) -> int:
    """Every connection sends ``size`` bytes unique to it and reads them back verified."""
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(512)

    async def one(i: int, s: socket.socket) -> int:
        msg = (tag.to_bytes(2, "little") + i.to_bytes(4, "little")) * (size // 6 + 1)
        msg = msg[:size]
        async with sem:
            await loop.sock_sendall(s, msg)
            got = b""
            while len(got) < size:
                chunk = await loop.sock_recv(s, size - len(got))
                assert chunk, "server closed a held connection"
                got += chunk
        assert got == msg, f"connection {i}: echo differs"
        return size

    return sum(await asyncio.gather(*(one(i, s) for i, s in enumerate(socks))))


async def _wait_fds(server: Server, target: int) -> int:
    fds = server.stats()["fds"]
    for _ in range(600):
        fds = server.stats()["fds"]
        if fds <= target:
            break
        await asyncio.sleep(0.05)
    return fds


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_echo_server_holds_many_connections_every_byte_verified() -> None:
    n = budget(1000, "AIOSYS_REL_CONNS")
    old = _raise_nofile(n + 512)
    server = Server(n)
    try:
        base = server.stats()

        async def body() -> dict[str, Any]:
            out: dict[str, Any] = {}
            for rnd in (1, 2, 3):
                socks = await _open_all(server.addr, n)
                try:
                    verified = await _echo_round(socks, 64, rnd)
                    verified += await _echo_round(socks, 1500, rnd + 10)
                    held = server.stats()
                    out[f"held{rnd}"] = held
                    out[f"bytes{rnd}"] = verified
                finally:
                    for s in socks:
                        s.close()
                out[f"after{rnd}"] = await _wait_fds(server, base["fds"])
                out[f"rss_after{rnd}"] = server.stats()["VmRSS"]
            return out

        out = asyncio.run(asyncio.wait_for(body(), GUARD * 4))
    finally:
        server.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, old)
    held = out["held1"]
    assert held["fds"] >= base["fds"] + n  # every connection was held at once
    per_conn_kib = (held["VmRSS"] - base["VmRSS"]) / n
    record("load: connections held at once", n)
    record("load: bytes echoed and verified",
           2 * (out["bytes1"] + out["bytes2"] + out["bytes3"]))
    record("load: server fds held (baseline)", held["fds"])
    record("load: server RSS KiB per connection", round(per_conn_kib))
    print(f"\nload: n={n} base={base} held={held} per_conn={per_conn_kib:.1f} KiB "
          f"after={out['after1']},{out['after2']},{out['after3']} "
          f"rss held={out['held1']['VmRSS']},{out['held2']['VmRSS']},{out['held3']['VmRSS']} "
          f"rss_after={out['rss_after1']},{out['rss_after2']},{out['rss_after3']} KiB")
    # fds back to the starting level, exactly, after each round
    assert out["after1"] == out["after2"] == out["after3"] == base["fds"]
    # later rounds reuse the memory of the first (the allocator keeps its arenas, so the
    # level after round 1 is the new floor): no per-connection leak
    slack = max(4096, held["VmRSS"] // 10)  # KiB: allocator noise, not per-connection state
    assert out["held3"]["VmRSS"] <= out["held1"]["VmRSS"] + slack
    assert out["rss_after3"] <= out["held1"]["VmRSS"] + slack
    assert "leaked" not in server.stderr, server.stderr[-2000:]


# ------------------------------------------------------------------------------------- soak


def _self_stats() -> dict[str, int]:
    st = _proc_status("self")
    st["fds"] -= 1  # listdir's own fd
    return st


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("kind", ["aiosys"])
def test_soak_mixed_traffic_stays_flat(kind: str) -> None:
    seconds = budget(12, "AIOSYS_REL_SOAK_S")
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    with tempfile.TemporaryFile() as tmp:
        file_data = os.urandom(1 << 20)
        tmp.write(file_data)
        tmp.flush()
        ffd = tmp.fileno()
        samples: list[dict[str, int]] = []
        totals = {"echo_bytes": 0, "file_reads": 0, "cancels": 0, "handoffs": 0}

        async def echo_worker(stop: float) -> None:
            while time.monotonic() < stop:
                a, b = socket.socketpair()
                a.setblocking(False)
                b.setblocking(False)
                fa, fb = a.detach(), b.detach()
                try:
                    for _ in range(rng.randint(1, 40)):
                        msg = os.urandom(rng.randint(1, 8192))
                        rd = asyncio.ensure_future(_read_exact(fb, len(msg)))
                        await aio.write_all(fa, msg)
                        assert await asyncio.wait_for(rd, 30) == msg
                        totals["echo_bytes"] += len(msg)
                        if rng.random() < 0.1:  # a parked read, cancelled
                            t = asyncio.ensure_future(aio.read(fb, 100))
                            await asyncio.sleep(0)
                            t.cancel()
                            with contextlib.suppress(asyncio.CancelledError):
                                await t
                            totals["cancels"] += 1
                finally:
                    await aio.close(fa)
                    await aio.close(fb)

        async def file_worker(stop: float) -> None:
            while time.monotonic() < stop:
                off = rng.randrange(0, len(file_data) - 65536)
                n = rng.randint(1, 65536)
                handoff = rng.random() < 0.5
                ctx: Any = (_faults.inject(MISS, errno=11, style="return",
                                           when=lambda f, *_: f == ffd)
                            if handoff else contextlib.nullcontext())
                with ctx:
                    t = asyncio.ensure_future(aio.pread(ffd, n, off))
                    if rng.random() < 0.2:
                        await asyncio.sleep(0)
                        t.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await t
                        totals["cancels"] += 1
                        continue
                    got = await asyncio.wait_for(t, 30)
                assert got == file_data[off:off + n]
                totals["file_reads"] += 1
                totals["handoffs"] += handoff

        async def sampler(stop: float) -> None:
            while time.monotonic() < stop:
                samples.append(_self_stats())
                await asyncio.sleep(0.5)

        async def body() -> None:
            stop = time.monotonic() + seconds
            await asyncio.gather(sampler(stop), *(echo_worker(stop) for _ in range(8)),
                                 *(file_worker(stop) for _ in range(4)))

        start = _self_stats()
        run_in(kind, body, timeout=seconds + 120)
        end = _self_stats()
    warm = samples[len(samples) // 4:]
    rss = [s["VmRSS"] for s in warm]
    print(f"\nsoak {seconds}s: {totals} start={start} end={end} "
          f"rss(KiB) min={min(rss)} max={max(rss)} "
          f"threads max={max(s['Threads'] for s in samples)} "
          f"fds max={max(s['fds'] for s in samples)}")
    record("soak: seconds", seconds)
    record("soak: echo bytes verified", totals["echo_bytes"])
    record("soak: file reads verified", totals["file_reads"])
    record("soak: cancellations", totals["cancels"])
    assert totals["echo_bytes"] and totals["file_reads"] and totals["cancels"]
    assert max(rss) - min(rss) <= 16 * 1024, "RSS grew during the soak"
    assert max(s["fds"] for s in samples) <= start["fds"] + 8 * 2 + 8
    assert end["fds"] <= start["fds"] + 1
    assert max(s["Threads"] for s in samples) <= start["Threads"] + 64


async def _read_exact(fd: int, n: int) -> bytes:
    got = b""
    while len(got) < n:
        chunk = await aio.read(fd, n - len(got))
        assert chunk
        got += chunk
    return got
