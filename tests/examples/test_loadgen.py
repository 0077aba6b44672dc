"""The native load generator: builds, counts, verifies every byte, refuses non-loopback."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest

from aiosys.cli import _loadgen


def test_loadgen_refuses_non_loopback_address() -> None:
    exe = _loadgen.build()
    out = subprocess.run(
        [str(exe), "--host", "10.1.2.3", "--port", "9", "--seconds", "0.1"],
        capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    assert out.returncode == 2
    assert "non-loopback" in json.loads(out.stdout)["error"]


def test_loadgen_reports_connect_failure_on_a_closed_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connect is refused
        res = _loadgen.run(port, conns=1, seconds=0.2)
    assert res["rc"] == 2 and "connect" in res["error"]


def _serve_one(lsock: socket.socket, corrupt: bool, limit: int) -> None:
    """Serve one connection: echo (optionally flipping a byte) until EOF or ``limit`` bytes."""
    conn, _ = lsock.accept()
    with conn:
        conn.settimeout(10)
        total = 0
        while total < limit:
            try:
                data = conn.recv(65536)
            except (ConnectionError, TimeoutError):
                return
            if not data:
                return
            if corrupt and total > 1000:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            total += len(data)
            try:
                conn.sendall(data)
            except ConnectionError:
                return


@pytest.mark.parametrize("corrupt", [False, True], ids=["faithful", "corrupting"])
def test_loadgen_verifies_every_echoed_byte(corrupt: bool) -> None:
    exe = _loadgen.build()
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)
        port = lsock.getsockname()[1]
        proc = subprocess.Popen(
            [str(exe), "--port", str(port), "--conns", "1", "--size", "100",
             "--seconds", "5", "--max-requests", "200"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            _serve_one(lsock, corrupt, limit=10**6)
            out, _ = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    res = json.loads(out)
    if corrupt:
        assert proc.returncode == 1 and res["mismatches"] == 1
    else:
        assert proc.returncode == 0 and res["requests"] == 200 and res["mismatches"] == 0
        assert 0 < res["p50_us"] <= res["p99_us"] <= res["max_us"] + 0.1
