"""The shared three-loop runner (tests/loop_runner.py)."""

from loop_runner import run as run  # noqa: F401  (a fixture, re-exported for this folder)
