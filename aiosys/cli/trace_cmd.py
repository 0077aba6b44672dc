"""``python -m aiosys trace``: a demo run with schedtrace lines (``GODEBUG=schedtrace``'s
aiosys twin) printed to stdout every ``--interval`` ms while the load runs."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from . import _api, demo


def main(args: Any, out: TextIO = sys.stdout) -> int:
    trace = _api.module("aiosys.trace")
    if trace is None or not hasattr(trace, "schedtrace"):
        out.write("aiosys.trace.schedtrace is not available\n")
        return 2
    args.events = 3
    args.progress = False
    trace.schedtrace(args.interval, out)
    try:
        return demo.main(args, out)
    finally:
        trace.schedtrace(None)
