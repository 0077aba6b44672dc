"""``python -m aiosys doctor``: what this kernel and process offer aiosys.

epoll_pwait2 (sub-millisecond netpoll timeouts), RWF_NOWAIT per filesystem (the inline fast
path for cached file reads), io_uring (present / disabled), the vDSO clock (nanotime without a
kernel entry), fd limits and CPU affinity (the handoff spins only with a second CPU).
"""

from __future__ import annotations

import errno
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

from aiosys import native
from aiosys.native import _lowlevel as ll

DEFAULT_PATHS = [".", tempfile.gettempdir(), "/dev/shm"]


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def fs_type(path: str) -> str:
    """The filesystem type of ``path`` (longest mount point prefix in /proc/self/mountinfo)."""
    real = os.path.realpath(path)
    best, kind = "", "?"
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                parts = line.split()
                mnt = parts[4]
                sep = parts.index("-")
                if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(
                    best
                ):
                    best, kind = mnt, parts[sep + 1]
    except (OSError, ValueError, IndexError):
        pass
    return kind


def probe_rwf_nowait(path: str) -> dict[str, Any]:
    """Try one cached ``preadv2(RWF_NOWAIT)`` on ``path``'s filesystem: a scratch file in the
    directory (or, for a file, the file itself read-only).  ``hit`` = fast path works;
    ``eagain`` = supported, page not cached; ``unsupported`` = the fs refuses the flag."""
    out: dict[str, Any] = {"path": path, "fs": fs_type(path)}
    scratch = None
    try:
        if os.path.isdir(path):
            fd, scratch = tempfile.mkstemp(prefix=".aiosys-doctor-", dir=path)
            os.write(fd, b"x" * 4096)
        else:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            os.pread(fd, 4096, 0)  # bring the first page into the cache
    except OSError as exc:
        out["rwf_nowait"] = f"not probed ({exc.strerror})"
        return out
    try:
        buf = bytearray(4096)
        try:
            n = ll.preadv2(fd, buf, 0, ll.RWF_NOWAIT)
            out["rwf_nowait"] = "hit"
            out["bytes"] = n
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                out["rwf_nowait"] = "eagain"
            elif exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS, errno.EPERM):
                out["rwf_nowait"] = "unsupported"
                out["errno"] = errno.errorcode.get(exc.errno or 0, str(exc.errno))
            else:
                out["rwf_nowait"] = f"error {exc.strerror}"
    finally:
        os.close(fd)
        if scratch:
            os.unlink(scratch)
    return out


def probe_io_uring() -> dict[str, Any]:
    """io_uring_setup(1, NULL): EFAULT means the syscall exists and would run; ENOSYS absent;
    EPERM disabled (kernel.io_uring_disabled, seccomp).  Creates nothing."""
    out: dict[str, Any] = {"sysctl_io_uring_disabled": _read("/proc/sys/kernel/io_uring_disabled")}
    nr = native.SYS.get("io_uring_setup")
    if nr is None:
        out["status"] = "unknown (no SYS_io_uring_setup at build time)"
        return out
    r = ll.raw3(nr, 1, 0)
    err = -r if r < 0 else 0
    if r >= 0:
        os.close(r)
        out["status"] = "present"
    elif err == errno.EFAULT:
        out["status"] = "present"
    elif err == errno.ENOSYS:
        out["status"] = "absent (ENOSYS)"
    elif err == errno.EPERM:
        out["status"] = "disabled (EPERM)"
    else:
        out["status"] = f"errno {errno.errorcode.get(err, err)}"
    return out


def probe_clock() -> dict[str, Any]:
    """vDSO mapped? clocksource? and nanotime() next to a raw clock_gettime syscall."""
    maps = _read("/proc/self/maps") or ""
    out: dict[str, Any] = {
        "vdso_mapped": "[vdso]" in maps,
        "clocksource": _read("/sys/devices/system/clocksource/clocksource0/current_clocksource"),
    }
    n = 5000
    t0 = time.perf_counter_ns()
    for _ in range(n):
        native.nanotime()
    out["nanotime_ns"] = round((time.perf_counter_ns() - t0) / n, 1)
    nr = native.SYS.get("clock_gettime")
    if nr is not None:
        raw = ll.raw3
        buf = ll.alloc(16)
        t0 = time.perf_counter_ns()
        for _ in range(n):
            raw(nr, time.CLOCK_MONOTONIC, buf.addr)
        out["raw_syscall_clock_gettime_ns"] = round((time.perf_counter_ns() - t0) / n, 1)
    # vDSO-backed clocksources: tsc, kvm-clock (with a stable TSC), arch_sys_counter, hyperv.
    cs = out["clocksource"] or ""
    out["vdso_fast"] = bool(out["vdso_mapped"]) and cs in (
        "tsc", "kvm-clock", "arch_sys_counter", "hyperv_clocksource_tsc_page",
    )  # fmt: skip
    return out


def collect(paths: list[str]) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "epoll_pwait2": bool(native.HAVE_EPOLL_PWAIT2),
        "rwf_nowait": [probe_rwf_nowait(p) for p in paths],
        "io_uring": probe_io_uring(),
        "clock": probe_clock(),
        "fd_limits": {
            "rlimit_nofile_soft": soft,
            "rlimit_nofile_hard": hard,
            "fs_nr_open": _int(_read("/proc/sys/fs/nr_open")),
            "fs_file_max": _int(_read("/proc/sys/fs/file-max")),
        },
        "cpus": {"online": os.cpu_count(), "affinity": sorted(os.sched_getaffinity(0))},
    }


def _int(s: str | None) -> int | None:
    try:
        return int(s) if s is not None else None
    except ValueError:
        return None


def render(d: dict[str, Any], out: TextIO) -> None:
    w = out.write
    w(f"kernel: Linux {d['kernel']} {d['machine']}, CPython {d['python']}\n")
    w(f"epoll_pwait2: {'yes' if d['epoll_pwait2'] else 'no'} "
      "(netpoll timeouts below 1 ms)\n")  # fmt: skip
    for p in d["rwf_nowait"]:
        extra = f" {p['errno']}" if "errno" in p else ""
        w(f"rwf_nowait: {p['path']} ({p['fs']}): {p['rwf_nowait']}{extra}\n")
    io = d["io_uring"]
    w(f"io_uring: {io['status']} (kernel.io_uring_disabled={io['sysctl_io_uring_disabled']})\n")
    c = d["clock"]
    w(f"vdso_clock: {'yes' if c['vdso_fast'] else 'no'} (clocksource {c['clocksource']}, "
      f"nanotime {c['nanotime_ns']} ns, raw clock_gettime syscall "
      f"{c.get('raw_syscall_clock_gettime_ns', '?')} ns)\n")  # fmt: skip
    f = d["fd_limits"]
    w(f"fd_limits: RLIMIT_NOFILE {f['rlimit_nofile_soft']}/{f['rlimit_nofile_hard']}, "
      f"fs.nr_open {f['fs_nr_open']}, fs.file-max {f['fs_file_max']}\n")  # fmt: skip
    cpus = d["cpus"]
    spin = "yes" if len(cpus["affinity"]) > 1 else "no (one usable CPU: handoff never spins)"
    w(f"cpus: {cpus['online']} online, affinity {cpus['affinity']}; handoff may spin: {spin}\n")


def main(args: Any, out: TextIO = sys.stdout) -> int:
    d = collect(list(args.paths) or DEFAULT_PATHS)
    if args.json:
        out.write(json.dumps(d, indent=1) + "\n")
    else:
        render(d, out)
    return 0
