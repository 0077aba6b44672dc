"""Figures the reliability suite accumulates during a run (printed in the session summary)."""

from __future__ import annotations

import os
from collections import Counter

FIGURES: Counter[str] = Counter()


def budget(default: int, env: str = "AIOSYS_REL_EXAMPLES") -> int:
    """A count bounded by default, scaled up for local runs through ``env``."""
    value = os.environ.get(env)
    return int(value) if value else default


def record(key: str, n: int = 1) -> None:
    FIGURES[key] += n
