"""The file server example: files come back byte for byte through pread+write_all and through
sendfile, bad paths get an error line, and with --trace json the handoffs (openat, statx,
pread on a page-cache miss) appear as structured events on stderr."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from aiosys.cli._servers import ServerProcess

Start = Callable[..., ServerProcess]


def fetch(port: int, paths: list[str]) -> list[tuple[str, bytes]]:
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s, s.makefile("rb") as f:
        for p in paths:
            s.sendall(f"GET {p}\n".encode())
            head = f.readline().decode().strip()
            body = b""
            if head.startswith("OK "):
                body = f.read(int(head.split()[1]))
            out.append((head, body))
    return out


@pytest.mark.parametrize("mode", [[], ["--sendfile"]], ids=["pread", "sendfile"])
def test_file_server_serves_files_and_logs_handoffs(
    mode: list[str], start_server: Start, tmp_path: Path
) -> None:
    big = os.urandom(700_000)
    (tmp_path / "big.bin").write_bytes(big)
    (tmp_path / "empty").write_bytes(b"")
    sp = start_server("file", "--root", str(tmp_path), "--trace", "json", "--drop-cache", *mode)
    got = fetch(sp.port, ["big.bin", "empty", "missing", "../../etc/passwd", "big.bin"])
    assert got[0] == (f"OK {len(big)}", big)
    assert got[1] == ("OK 0", b"")
    assert got[2][0].startswith("ERR ")
    assert got[3][0].startswith("ERR bad request")
    assert got[4] == (f"OK {len(big)}", big)  # after the cache was dropped
    rc = sp.stop()
    assert rc == 0 and "Traceback" not in sp.stderr_text, sp.stderr_text
    events = [json.loads(line) for line in sp.stderr_text.splitlines() if line.startswith("{")]
    entered = {e["syscall"] for e in events if e.get("event") == "entersyscall"}
    assert "openat" in entered, events[:5]
    exits = [e for e in events if e.get("event") == "exitsyscall"]
    assert exits and all(e["path"] in ("fast", "slow") for e in exits)
