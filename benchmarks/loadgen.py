"""Build the native load generator and run it once: ``python benchmarks/loadgen.py --port P``.

Thin wrapper over :mod:`aiosys.cli._loadgen` (which ``python -m aiosys demo`` and the echo
matrix use); prints the generator's JSON result.
"""

from __future__ import annotations

import argparse
import json
import sys

from aiosys.cli import _loadgen


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=10)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--warmup", type=float, default=0.0)
    ap.add_argument("--max-requests", type=int, default=0)
    ap.add_argument("--build-only", action="store_true", help="compile and print the path")
    a = ap.parse_args()
    if a.build_only:
        print(_loadgen.build(force=True))
        return 0
    res = _loadgen.run(
        a.port, host=a.host, conns=a.conns, size=a.size, seconds=a.seconds,
        warmup=a.warmup, max_requests=a.max_requests,
    )  # fmt: skip
    print(json.dumps(res))
    return int(res["rc"])


if __name__ == "__main__":
    sys.exit(main())
