"""A client for the example-server tests that sends random bytes and checks every echoed byte."""

from __future__ import annotations

import random
import socket


def echo_roundtrips(port: int, *, conns: int = 3, rounds: int = 20, seed: int = 0) -> int:
    """Open ``conns`` connections; on each send random payloads of random sizes (1 B to
    256 KiB, so partial writes and reads happen) and check every echoed byte.  Returns the
    number of bytes checked."""
    rng = random.Random(seed)
    checked = 0
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(conns)]
    try:
        for _ in range(rounds):
            for s in socks:
                size = rng.choice([1, 7, 64, 1500, 16384, 65537, 262144])
                payload = rng.randbytes(size)
                s.sendall(payload)
                got = bytearray()
                while len(got) < size:
                    chunk = s.recv(size - len(got))
                    assert chunk, "server closed the connection mid-echo"
                    got += chunk
                assert bytes(got) == payload
                checked += size
    finally:
        for s in socks:
            s.close()
    return checked
