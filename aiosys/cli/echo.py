"""``python -m aiosys echo [--impl NAME] [server args]``: run an example echo server in the
foreground (it prints ``listening on HOST:PORT``; Ctrl-C stops it cleanly)."""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from ._servers import IMPLS, missing


def main(args: Any, out: TextIO = sys.stdout) -> int:
    if args.list:
        for name, each in IMPLS.items():
            why = missing(each)
            out.write(f"{name:18} {each.label}{'' if why is None else f'  [unavailable: {why}]'}\n")
        return 0
    impl = IMPLS.get(args.impl)
    if impl is None:
        out.write(f"unknown --impl {args.impl!r}; choose from: {', '.join(IMPLS)}\n")
        return 2
    why = missing(impl)
    if why:
        out.write(f"{args.impl}: unavailable: {why}\n")
        return 2
    rest = [a for a in args.rest if a != "--"]
    port = "0"
    if "--port" in rest:
        i = rest.index("--port")
        port = rest[i + 1]
        del rest[i : i + 2]
    cmd = impl.command(int(port), tuple(rest))
    out.flush()
    os.execv(cmd[0], cmd)  # the server replaces this process: signals reach it directly
