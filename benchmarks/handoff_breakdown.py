"""Where a forced handoff's time goes, and how many context switches it costs.

    [taskset -c 0] .venv/bin/python benchmarks/handoff_breakdown.py [--calls 4000]

Runs ``await aiosys.fstat(fd)`` (always handed to an M) back to back on the aiosys loop and
prints medians of: the call reaching entersyscall, entersyscall to the M starting the
syscall, the syscall, the M's end to exitsyscall on the loop, exitsyscall to the task
resuming, and the rest (statx decode).  The M-side stamps are the pool's own (t_start,
t_end); the loop-side ones wrap proc.exitsyscall and proc.resumed, which adds well under a
microsecond.  Then the voluntary and involuntary context switches per call of every thread
of the process (/proc/self/task/*/status): 2 per call is the floor for a handoff on one CPU
(loop to M, M back).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import statistics
import sys
import time

import aiosys
from aiosys.native import _lowlevel as ll
from aiosys.sched import proc

_nanotime = ll.nanotime
_exit_at: dict[int, int] = {}
_resumed_at: dict[int, int] = {}
_gs: list[proc.G] = []


def _instrument() -> None:
    exitsyscall, resumed, entersyscall = proc.exitsyscall, proc.resumed, proc.entersyscall

    def timed_exitsyscall(g: proc.G, r: int) -> None:
        _exit_at[id(g)] = _nanotime()
        exitsyscall(g, r)

    def timed_resumed(g: proc.G) -> None:
        _resumed_at[id(g)] = _nanotime()
        resumed(g)

    def recording_entersyscall(*a: object, **k: object) -> proc.G:
        g = entersyscall(*a, **k)  # type: ignore[arg-type]
        _gs.append(g)
        return g

    proc.exitsyscall = timed_exitsyscall  # type: ignore[assignment]
    proc.resumed = timed_resumed  # type: ignore[assignment]
    proc.entersyscall = recording_entersyscall  # type: ignore[assignment]


def _switches() -> dict[str, tuple[int, int]]:
    out = {}
    for task in glob.glob("/proc/self/task/*"):
        vol = non = 0
        with open(f"{task}/status") as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches"):
                    vol = int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches"):
                    non = int(line.split()[1])
        out[os.path.basename(task)] = (vol, non)
    return out


async def main(calls: int) -> None:
    fd = os.open(sys.executable, os.O_RDONLY | os.O_CLOEXEC)
    try:
        for _ in range(300):  # warm-up: Ms started, buffers pooled
            await aiosys.fstat(fd)
        _instrument()
        _gs.clear()
        rows = []
        for _ in range(calls):
            t0 = _nanotime()
            await aiosys.fstat(fd)
            t1 = _nanotime()
            g = _gs[-1]
            ex, rs = _exit_at.pop(id(g)), _resumed_at.pop(id(g))
            rows.append((g.t_enter - t0, g.t_start - g.t_enter, g.t_end - g.t_start,
                         ex - g.t_end, rs - ex, t1 - rs, t1 - t0))
        names = ["call -> entersyscall", "entersyscall -> M starts", "syscall on the M",
                 "M done -> exitsyscall", "exitsyscall -> task resumes", "resume -> caller",
                 "total"]
        print(f"usable CPUs: {len(os.sched_getaffinity(0))}; {calls} fstat handoffs, medians:")
        for i, name in enumerate(names):
            print(f"  {name:30s} {statistics.median(r[i] for r in rows) / 1000:7.2f} us")
        before = _switches()
        t = time.perf_counter()
        for _ in range(calls):
            await aiosys.fstat(fd)
        per_call = (time.perf_counter() - t) / calls * 1e6
        after = _switches()
        print(f"context switches per call ({per_call:.1f} us/call, uninstrumented timing):")
        for tid, (vol, non) in sorted(after.items()):
            if tid in before:
                dv, dn = vol - before[tid][0], non - before[tid][1]
                role = "loop thread" if int(tid) == os.getpid() else "other thread"
                if dv or dn:
                    print(f"  {role} {tid}: voluntary {dv / calls:.2f}, involuntary {dn / calls:.2f}")
    finally:
        os.close(fd)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=4000)
    aiosys.run(main(ap.parse_args().calls))
