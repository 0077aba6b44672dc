"""Raw syscall entry points against their stdlib baselines (issue 2's speed targets).

    .venv/bin/python benchmarks/bench_syscall.py            # unpinned
    taskset -c 0 .venv/bin/python benchmarks/bench_syscall.py

Targets: ``RawSyscall(SYS_getpid)`` within 2x of ``os.getpid()``; the generated
``zsyscall.getpid()`` within 1.5x; ``nanotime()`` no slower than ``time.monotonic_ns()``.

Method: every candidate and its baseline are timed in the same run, interleaved (baseline,
candidates, baseline, ...) so drift and neighbours' load hit them alike.  Each sample is the
mean ns/call over ``--number`` calls through ``timeit`` (which subtracts nothing: the loop
overhead is in every sample equally).  Reported: the median of ``--repeat`` samples, the
spread (min..max), and the ratio of medians.  The machine is shared and noisy: compare
ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiosys.native import _lowlevel, zsyscall  # noqa: E402

SYS_getpid = _lowlevel.SYS["getpid"]
SYS_close = _lowlevel.SYS["close"]

# name -> (statement, baseline name or None, target ratio)
CASES: dict[str, tuple[str, str | None, float | None]] = {
    "os.getpid()": ("getpid()", None, None),
    "RawSyscall(SYS_getpid)": ("RawSyscall(SYS_getpid)", "os.getpid()", 2.0),
    "Syscall(SYS_getpid)": ("Syscall(SYS_getpid)", "os.getpid()", None),
    "RawSyscallNoError(SYS_getpid)": ("RawSyscallNoError(SYS_getpid)", "os.getpid()", None),
    "zsyscall.getpid()": ("zgetpid()", "os.getpid()", 1.5),
    "time.monotonic_ns()": ("monotonic_ns()", None, None),
    "nanotime()": ("nanotime()", "time.monotonic_ns()", 1.0),
    "time.time_ns()": ("time_ns()", None, None),
    "walltime()": ("walltime()", "time.time_ns()", None),
    "zsyscall.clock_gettime()": ("clock_gettime()", "time.monotonic_ns()", None),
    "os.close(bad fd) [OSError]": ("close_os()", None, None),
    "zsyscall.close(bad fd) [OSError]": ("close_z()", "os.close(bad fd) [OSError]", None),
}


def _close_os() -> None:
    try:
        os.close(1 << 20)
    except OSError:
        pass


def _close_z() -> None:
    try:
        zsyscall.close(1 << 20)
    except OSError:
        pass


NAMESPACE = {
    "getpid": os.getpid,
    "RawSyscall": _lowlevel.RawSyscall,
    "Syscall": _lowlevel.Syscall,
    "RawSyscallNoError": _lowlevel.RawSyscallNoError,
    "SYS_getpid": SYS_getpid,
    "zgetpid": zsyscall.getpid,
    "monotonic_ns": time.monotonic_ns,
    "nanotime": _lowlevel.nanotime,
    "time_ns": time.time_ns,
    "walltime": _lowlevel.walltime,
    "clock_gettime": zsyscall.clock_gettime,
    "close_os": _close_os,
    "close_z": _close_z,
}


def run(number: int, repeat: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in CASES}
    timers = {name: timeit.Timer(stmt, globals=NAMESPACE) for name, (stmt, _, _) in CASES.items()}
    for t in timers.values():  # warm up
        t.timeit(number // 10 or 1)
    for _ in range(repeat):
        for name, t in timers.items():  # interleaved: one sample of each per round
            samples[name].append(t.timeit(number) / number * 1e9)
    return samples


def report(samples: dict[str, list[float]]) -> tuple[str, bool]:
    med = {name: statistics.median(v) for name, v in samples.items()}
    lines = [
        f"{'case':36} {'median ns':>10} {'min..max ns':>17} {'ratio':>7} {'target':>8}",
    ]
    ok = True
    for name, (_, base, target) in CASES.items():
        v = samples[name]
        ratio = f"{med[name] / med[base]:.2f}" if base else ""
        tgt = ""
        if target is not None and base is not None:
            passed = med[name] / med[base] <= target
            ok &= passed
            tgt = f"<={target:g} {'ok' if passed else 'MISS'}"
        lines.append(
            f"{name:36} {med[name]:10.1f} {min(v):8.1f}..{max(v):<8.1f} {ratio:>7} {tgt:>8}"
        )
    return "\n".join(lines), ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--number", type=int, default=200_000, help="calls per sample")
    ap.add_argument("--repeat", type=int, default=15, help="interleaved samples per case")
    ns = ap.parse_args()
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        cpus = []
    print(
        f"python {sys.version.split()[0]}, pid {os.getpid()}, cpus {cpus}, "
        f"vdso {_lowlevel.VDSO_PRESENT}, trap instruction {_lowlevel.USES_TRAP_INSTRUCTION}, "
        f"number {ns.number}, repeat {ns.repeat}"
    )
    text, ok = report(run(ns.number, ns.repeat))
    print(text)
    print("all targets met" if ok else "some targets MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
