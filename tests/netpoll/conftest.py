"""The loop-kind fixture for every test in this folder (see tests/loopkinds.py), and the
netpoller's own leak check: after each test no netpoller is left open with PollDescs in it
and the fd reference table is empty (uvloop's debug-build habit, for PollDescs)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from loopkinds import loop_kind  # noqa: F401

from aiosys.netpoll import _loop, fdtable


@pytest.fixture(autouse=True)
def no_polldesc_leaks() -> Iterator[None]:
    yield
    gc.collect()
    live = [p for p in _loop.all_pollers() if p.pds]
    assert not live, f"netpollers left open with PollDescs: {[list(p.pds) for p in live]}"
    assert fdtable.table_size() == 0, "fd reference table not empty after the test"
