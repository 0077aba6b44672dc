"""Suite-wide fixtures: every test must leave no fd and no thread behind (uvloop's debug-build
habit).  A test that leaks fails in teardown, naming what leaked."""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Iterator

import pytest


def _open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


def _describe(fd: int) -> str:
    try:
        return f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}"
    except OSError:
        return str(fd)


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("allow_leaks"):
        yield
        return
    fds_before = _open_fds()
    threads_before = set(threading.enumerate())
    yield
    # Give exiting workers and finalizers a bounded moment to finish (not a timing
    # assertion: the check only fails if something is still open after the grace period).
    deadline = time.monotonic() + 5.0
    while True:
        gc.collect()
        leaked_fds = _open_fds() - fds_before
        new_threads = [
            t for t in threading.enumerate() if t not in threads_before and t.is_alive()
        ]
        if not leaked_fds and not new_threads or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert not leaked_fds, f"leaked fds: {[_describe(fd) for fd in sorted(leaked_fds)]}"
    assert not new_threads, f"leaked threads: {new_threads}"
