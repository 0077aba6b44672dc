"""The loop-kind fixture for every test in this folder (see tests/loopkinds.py)."""

from __future__ import annotations

from loopkinds import loop_kind  # noqa: F401
