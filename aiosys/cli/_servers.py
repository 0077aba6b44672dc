"""The echo servers the CLI and the echo matrix run, and a handle on a running one.

Each implementation is a command line that prints ``listening on HOST:PORT`` once it accepts
connections and exits cleanly (status 0) on SIGTERM.  Servers run as subprocesses so their CPU
time can be read from ``/proc/PID/stat`` and so they can be pinned with ``taskset``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ._loadgen import BENCH_DIR, BUILD_DIR, REPO_ROOT

EXAMPLES = REPO_ROOT / "examples" / "servers"
LISTEN_PREFIX = "listening on "
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Impl:
    """One echo server implementation: how to start it and what it needs."""

    name: str
    label: str
    script: str  # path relative to the repo root, or "go" for the Go server
    args: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()  # "aiosys_loop", "aiosys_io", "go"
    aiosys: bool = False  # counts as an aiosys row in "aiosys / peer" ratios

    def command(self, port: int = 0, extra: tuple[str, ...] = ()) -> list[str]:
        if self.script == "go":
            return [str(go_binary()), "-port", str(port)]
        return [sys.executable, str(REPO_ROOT / self.script), "--port", str(port),
                *self.args, *extra]  # fmt: skip


_S = "examples/servers/"
IMPLS: dict[str, Impl] = {
    i.name: i
    for i in [
        Impl("goroutine", "aiosys goroutine-style (aiosys loop)", _S + "echo_goroutine.py",
             needs=("aiosys_loop", "aiosys_io"), aiosys=True),
        Impl("goroutine-netpoll", "aiosys goroutine-style, aiosys.netpoll awaitables directly",
             _S + "echo_goroutine.py", ("--io", "netpoll"), needs=("aiosys_loop", "aiosys_io"),
             aiosys=True),
        Impl("goroutine-uvloop", "aiosys goroutine-style (uvloop, attached)",
             _S + "echo_uvloop.py", needs=("aiosys_io",), aiosys=True),
        Impl("asyncio-aiosys", "asyncio streams (aiosys loop)", _S + "echo_asyncio.py",
             ("--loop", "aiosys"), needs=("aiosys_loop",), aiosys=True),
        Impl("protocol-aiosys", "asyncio Protocol (aiosys loop)", _S + "echo_asyncio.py",
             ("--loop", "aiosys", "--protocol"), needs=("aiosys_loop",), aiosys=True),
        Impl("anyio-aiosys", "anyio listener (aiosys loop)", _S + "echo_anyio.py",
             needs=("aiosys_loop",), aiosys=True),
        Impl("anyio-uvloop", "anyio listener (uvloop)", _S + "echo_anyio.py", ("--uvloop",)),
        Impl("anyio-stdlib", "anyio listener (stdlib loop)", _S + "echo_anyio.py",
             ("--loop", "stdlib")),
        Impl("asyncio-stdlib", "asyncio streams (stdlib loop)", _S + "echo_asyncio.py",
             ("--loop", "stdlib")),
        Impl("protocol-stdlib", "asyncio Protocol (stdlib loop)", _S + "echo_asyncio.py",
             ("--loop", "stdlib", "--protocol")),
        Impl("asyncio-uvloop", "asyncio streams (uvloop)", _S + "echo_asyncio.py",
             ("--loop", "uvloop")),
        Impl("protocol-uvloop", "asyncio Protocol (uvloop)", _S + "echo_asyncio.py",
             ("--loop", "uvloop", "--protocol")),
        Impl("trio", "trio streams", "benchmarks/servers/echo_trio.py"),
        Impl("go", "Go net (GOMAXPROCS=1 when pinned)", "go", needs=("go",)),
    ]
}  # fmt: skip

# Not echo servers (the echo matrix and ``echo --impl`` do not use these).
OTHER: dict[str, Impl] = {
    i.name: i
    for i in [
        Impl("file", "aiosys file server (GET <path>)", _S + "file_server.py",
             needs=("aiosys_loop", "aiosys_io", "aiosys_files"), aiosys=True),
    ]
}  # fmt: skip


def _have_aiosys_loop() -> bool:
    try:
        import aiosys.netpoll as netpoll
    except ImportError:
        return False
    return hasattr(netpoll, "new_event_loop")


def _have_aiosys_io() -> bool:
    try:
        import aiosys
        import aiosys.netpoll as netpoll
    except ImportError:
        return False
    names = ("accept", "read", "write_all", "set_read_deadline", "close")
    return all(hasattr(aiosys, n) for n in names) or all(hasattr(netpoll, n) for n in names)


def _have_aiosys_files() -> bool:
    try:
        import aiosys
    except ImportError:
        return False
    io = importlib.import_module("aiosys._io") if importlib.util.find_spec("aiosys._io") else None
    names = ("open", "pread", "fstat", "close", "sendfile")
    return all(hasattr(aiosys, n) or hasattr(io, n) for n in names)


def missing(impl: Impl) -> str | None:
    """Why ``impl`` cannot run here (``None`` if it can)."""
    for need in impl.needs:
        if need == "aiosys_loop" and not _have_aiosys_loop():
            return "aiosys.netpoll.new_event_loop has not landed"
        if need == "aiosys_io" and not _have_aiosys_io():
            return "aiosys accept/read/write_all/set_read_deadline have not landed"
        if need == "aiosys_files" and not _have_aiosys_files():
            return "aiosys open/pread/fstat/sendfile have not landed"
        if need == "go":
            try:
                build_go()
            except RuntimeError as exc:
                return str(exc)
    if impl.script != "go" and not (REPO_ROOT / impl.script).exists():
        return f"{impl.script} not found"
    return None


def go_binary() -> Path:
    return BUILD_DIR / "echo_go"


def build_go() -> Path:
    """Build the Go echo server with the system ``go`` (Debian's golang-go is enough).

    :raises RuntimeError: if ``go`` is not installed or the build fails.
    """
    src = BENCH_DIR / "go" / "echo.go"
    out = go_binary()
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        return out
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("go is not installed (apt-get install golang-go): Go row skipped")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOCACHE=str(BUILD_DIR / "gocache"), GO111MODULE="off",
               GOPATH=str(BUILD_DIR / "gopath"))  # fmt: skip
    tmp = out.with_suffix(".tmp")
    proc = subprocess.run([go, "build", "-o", str(tmp), str(src)], capture_output=True,
                          text=True, env=env, timeout=300)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"go build failed: {proc.stderr.strip()}")
    os.replace(tmp, out)
    return out


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (every thread, live or exited), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


@dataclass
class ServerProcess:
    """A running server subprocess.  Use as a context manager: the exit always reaps it."""

    cmd: list[str]
    cpu: int | None = None
    env: dict[str, str] | None = None
    proc: subprocess.Popen[str] | None = None
    host: str = ""
    port: int = 0
    stdout_lines: list[str] = field(default_factory=list)
    stderr_text: str = ""
    returncode: int | None = None

    def start(self, timeout: float = 20.0) -> ServerProcess:
        """Start the server and wait (bounded) for its ``listening on`` line.

        :raises RuntimeError: if it exits or prints nothing parseable within ``timeout``.
        """
        cmd = self.cmd
        if self.cpu is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", str(self.cpu), *cmd]
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(self.env or {}))
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env, cwd=str(REPO_ROOT),
        )  # fmt: skip
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        buf = ""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.stop()
                    tail = self.stderr_text[-2000:]
                    raise RuntimeError(f"{cmd}: no listening line within {timeout}s: {tail}")
                if not sel.select(left):
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 4096).decode()
                if not chunk:
                    self.stop()
                    tail = self.stderr_text[-2000:]
                    raise RuntimeError(f"{cmd}: exited (rc={self.returncode}): {tail}")
                buf += chunk
                while "\n" in buf:
                    line, buf = buf.split("\n", 1)
                    self.stdout_lines.append(line)
                    if line.startswith(LISTEN_PREFIX):
                        hostport = line[len(LISTEN_PREFIX) :].strip()
                        host, _, port = hostport.rpartition(":")
                        self.host, self.port = host.strip("[]"), int(port)
                        self._rest = buf
                        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the server, wait for it (kill after ``timeout``), collect its output."""
        proc = self.proc
        if proc is None:
            return -1
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        rest = getattr(self, "_rest", "") + (out or "")
        self.stdout_lines.extend(rest.splitlines())
        self.stderr_text += err or ""
        self.returncode = proc.returncode
        return proc.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
