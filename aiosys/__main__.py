"""``python -m aiosys``: the command line (demo, echo, bench, doctor, trace)."""

from __future__ import annotations

import sys

from aiosys.cli import main

if __name__ == "__main__":
    sys.exit(main())
