"""Reliability-suite fixtures and budgets.

Every test here is bounded in count (hypothesis ``max_examples``, connection counts, soak
seconds) and never asserts wall-clock timing.  CI runs the small budgets; a local run scales
them up with environment variables (figures in ``RELIABILITY.md``):

* ``AIOSYS_REL_EXAMPLES``: hypothesis examples per property test (default: small, per test);
* ``AIOSYS_REL_CONNS``: concurrent connections for the load test (default 1000);
* ``AIOSYS_REL_SOAK_S``: soak duration in seconds (default 20).

The session summary prints the figures this run produced (inputs tried, faults injected,
connections, bytes verified), so the numbers in RELIABILITY.md come from a command.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from _pytest.terminal import TerminalReporter
from _relcounters import FIGURES
from loopkinds import loop_kind  # noqa: F401  (the aiosys/stdlib/uvloop fixture)


def pytest_configure(config: pytest.Config) -> None:
    FIGURES.clear()


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("aiosys reliability figures")
    for key, value in sorted(Counter(FIGURES).items()):
        terminalreporter.write_line(f"{key}: {value}")


@pytest.fixture
def rel_examples() -> int:
    return int(os.environ.get("AIOSYS_REL_EXAMPLES", "0"))
