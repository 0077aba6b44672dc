"""``python -m aiosys``: the command line (demo, echo, bench, doctor, trace)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] != "demo":
        print("usage: python -m aiosys demo", file=sys.stderr)
        return 2
    import os

    from aiosys import native

    print("RawSyscall(SYS_getpid) ->", native.RawSyscall(native.SYS["getpid"]), os.getpid())
    print("RawSyscall(SYS_close, -1) ->", native.RawSyscall(native.SYS["close"], -1))
    print("nanotime() ->", native.nanotime())
    return 0


if __name__ == "__main__":
    sys.exit(main())
