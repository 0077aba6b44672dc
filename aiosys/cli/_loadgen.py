"""Build and drive the native echo load generator (``benchmarks/loadgen.c``).

The C source lives in the source checkout's ``benchmarks/`` folder; it is compiled with the
system ``cc`` into ``benchmarks/_build/`` (git-ignored) the first time it is needed and again
whenever the source is newer than the binary.  The generator is bounded (count and time) and
refuses non-loopback addresses by itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO_ROOT / "benchmarks"
BUILD_DIR = BENCH_DIR / "_build"
SOURCE = BENCH_DIR / "loadgen.c"


class LoadgenError(RuntimeError):
    """The load generator could not be built or run (message says why)."""


def binary_path() -> Path:
    return BUILD_DIR / "loadgen"


def build(*, force: bool = False) -> Path:
    """Compile loadgen.c if needed; return the binary's path.

    :raises LoadgenError: if the source is missing (not a source checkout) or ``cc`` fails.
    """
    out = binary_path()
    if not SOURCE.exists():
        raise LoadgenError(f"{SOURCE} not found: the load generator needs a source checkout")
    if not force and out.exists() and out.stat().st_mtime >= SOURCE.stat().st_mtime:
        return out
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise LoadgenError("no C compiler (cc) found: install gcc to build the load generator")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    # Compile to a temporary name and rename: several tests may build at the same time.
    fd, tmp = tempfile.mkstemp(prefix=".loadgen-", dir=BUILD_DIR)
    os.close(fd)
    try:
        proc = subprocess.run(
            [cc, "-O2", "-Wall", "-o", tmp, str(SOURCE)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            raise LoadgenError(f"cc failed building the load generator:\n{proc.stderr}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def run(
    port: int,
    *,
    host: str = "127.0.0.1",
    conns: int = 10,
    size: int = 64,
    seconds: float = 2.0,
    warmup: float = 0.0,
    max_requests: int = 0,
    seed: int = 0,
    cpu: int | None = None,
    on_mark: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run one load burst against ``host:port`` and return the generator's JSON result.

    ``on_mark("start")`` / ``on_mark("end")`` are called when the measured window (after
    ``warmup`` seconds) begins and ends, so the caller can sample the server's CPU time.
    ``cpu`` pins the generator to that CPU with ``taskset``.  The result has ``rc`` added
    (0 ok, 1 errors or mismatched bytes, 2 usage/connect failure).

    :raises LoadgenError: if the generator cannot be built, or prints no result.
    """
    exe = build()
    cmd = [
        str(exe), "--host", host, "--port", str(port), "--conns", str(conns),
        "--size", str(size), "--seconds", str(seconds), "--warmup", str(warmup),
        "--marks",
    ]  # fmt: skip
    if max_requests:
        cmd += ["--max-requests", str(max_requests)]
    if seed:
        cmd += ["--seed", str(seed)]
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None and proc.stdout is not None
        other: list[str] = []
        for line in proc.stderr:
            line = line.strip()
            if line.startswith("mark "):
                if on_mark is not None:
                    on_mark(line[5:])
            elif line:
                other.append(line)
        out = proc.stdout.read()
        rc = proc.wait(timeout=seconds + warmup + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    try:
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise LoadgenError(f"load generator printed no result (rc={rc}): {other}") from exc
    result["rc"] = rc
    return result


def command(
    port: int, *, host: str = "127.0.0.1", conns: int = 10, size: int = 64,
    seconds: float = 2.0, warmup: float = 0.0, max_requests: int = 0,
) -> list[str]:  # fmt: skip
    cmd = [
        str(build()), "--host", host, "--port", str(port), "--conns", str(conns),
        "--size", str(size), "--seconds", str(seconds), "--warmup", str(warmup),
    ]  # fmt: skip
    if max_requests:
        cmd += ["--max-requests", str(max_requests)]
    return cmd


async def run_async(port: int, **kw: Any) -> dict[str, Any]:
    """:func:`run` for use inside a running event loop (an asyncio subprocess; no thread).

    :raises LoadgenError: if the generator prints no result.
    """
    import asyncio

    seconds = float(kw.get("seconds", 2.0)) + float(kw.get("warmup", 0.0))
    proc = await asyncio.create_subprocess_exec(
        *command(port, **kw), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=seconds + 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    try:
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        msg = f"load generator printed no result (rc={proc.returncode}): {err.decode()[-500:]}"
        raise LoadgenError(msg) from exc
    result["rc"] = proc.returncode
    return result
