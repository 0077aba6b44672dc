"""Fixtures for the example-server tests: start a server subprocess (always reaped)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from aiosys.cli._servers import IMPLS, OTHER, ServerProcess, missing


@pytest.fixture
def start_server() -> Iterator[object]:
    """``start_server(impl_name, *extra_args)`` -> a started :class:`ServerProcess`; every
    server started is stopped (SIGTERM, then kill) when the test ends."""
    started: list[ServerProcess] = []

    def start(name: str, *extra: str) -> ServerProcess:
        impl = IMPLS[name] if name in IMPLS else OTHER[name]
        why = missing(impl)
        if why:
            pytest.skip(why)
        sp = ServerProcess(impl.command(0, tuple(extra)), env={"PYTHONDEVMODE": ""})
        started.append(sp)
        return sp.start()

    yield start
    for sp in started:
        sp.stop()


@pytest.fixture
def randseed() -> int:
    return int.from_bytes(os.urandom(4), "little")
