"""Security defaults: servers bind loopback unless told otherwise, every fd aiosys opens is
close-on-exec (nothing leaks into a child across exec), and the environment variables aiosys
reads are a reviewed list that cannot switch anything unsafe on."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import selectors
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from _relapi import aio
from loopkinds import run_in

from aiosys.native import _lowlevel as L

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (ROOT / "examples" / "servers").glob("*.py")
                  if not p.name.startswith("_"))
LISTEN_PREFIX = "listening on "


# ------------------------------------------------------------------------ loopback by default


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_server_binds_loopback_by_default(script: Path) -> None:
    """Started with no --host, every example server listens on 127.0.0.1 only."""
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    try:
        assert proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        line = ""
        for _ in range(100):  # bounded: up to 100 x 0.2 s for a loaded 2-core machine
            if sel.select(0.2):
                line = proc.stdout.readline()
                if line.startswith(LISTEN_PREFIX) or not line:
                    break
            if proc.poll() is not None:
                break
        sel.close()
        if not line.startswith(LISTEN_PREFIX):
            proc.kill()
            _, err = proc.communicate(timeout=10)
            pytest.skip(f"{script.name} did not start here (a layer it needs is missing?): "
                        f"{err.strip().splitlines()[-1:]}")
        host = line[len(LISTEN_PREFIX):].strip().rpartition(":")[0].strip("[]")
        assert host in ("127.0.0.1", "::1"), f"{script.name} listens on {host!r}"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


# A wildcard address as a default (argparse or a parameter) or as a literal bind address.
WILDCARD = re.compile(
    r"""default\s*=\s*(['"])(0\.0\.0\.0|::|)\1"""
    r"""|host\s*(:\s*str)?\s*=\s*(['"])(0\.0\.0\.0|::)\4"""
    r"""|bind\(\(\s*(['"])(0\.0\.0\.0|::|)\6"""
)


def test_no_wildcard_bind_in_library_examples_or_cli() -> None:
    """No source binds to, or defaults to, a wildcard address (0.0.0.0, ::, "")."""
    offenders = []
    for base in ("aiosys", "examples"):
        for path in (ROOT / base).rglob("*.py"):
            for i, text in enumerate(path.read_text().splitlines(), 1):
                if WILDCARD.search(text):
                    offenders.append(f"{path.relative_to(ROOT)}:{i}: {text.strip()}")
    assert not offenders, offenders
    # the pattern itself works
    assert WILDCARD.search('ap.add_argument("--host", default="0.0.0.0")')
    assert WILDCARD.search("    host: str = '::',")
    assert WILDCARD.search('sock.bind(("", port))')
    assert not WILDCARD.search('ap.add_argument("--host", default="127.0.0.1")')


# --------------------------------------------------------------------------- close-on-exec


def _inheritable_fds() -> set[int]:
    out = set()
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC:
                out.add(fd)
        except OSError:
            pass  # the listdir fd itself, closed by now
    return out


def _child_fds() -> set[int]:
    code = "import os; print(' '.join(os.listdir('/proc/self/fd')))"
    out = subprocess.run([sys.executable, "-c", code], close_fds=False, check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return {int(x) for x in out.split()}


def _exercise_aiosys() -> list[int]:
    """Open fds through every aiosys path that exists in this tree; returns those to close."""
    fds = [L.epoll_create1(), L.eventfd(0), L.eventfd(0, L.EFD_NONBLOCK | L.EFD_CLOEXEC)]
    try:
        import aiosys.native._mpool as mpool  # the C M pool (sched)

        efd = L.eventfd(0)
        fds.append(efd)
        pid = mpool.p_register(efd, False)
        mpool.p_unregister(pid)
    except ImportError:
        pass
    return fds


async def _exercise_public_io() -> None:
    """The public awaitables: accept, open."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen()
    lsock.setblocking(False)
    csock = socket.socket()
    try:
        csock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            csock.connect(lsock.getsockname())
        newfd, _ = await aio.accept(lsock.fileno())
        try:
            assert fcntl.fcntl(newfd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
            assert _child_fds().isdisjoint({newfd})
        finally:
            await aio.close(newfd)
    finally:
        csock.close()
        lsock.close()
    ffd = await aio.open(__file__, os.O_RDONLY)
    try:
        assert fcntl.fcntl(ffd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert _child_fds().isdisjoint({ffd})
    finally:
        await aio.close(ffd)


def test_fds_aiosys_opens_are_not_inherited_across_exec() -> None:
    before = _inheritable_fds()
    fds = _exercise_aiosys()
    try:
        leaked = _inheritable_fds() - before
        assert not leaked, f"aiosys opened inheritable fds: {sorted(leaked)}"
        in_child = _child_fds()
        assert in_child.isdisjoint(fds), sorted(in_child & set(fds))
    finally:
        for fd in fds:
            os.close(fd)


def test_public_io_fds_are_close_on_exec(loop_kind: str) -> None:
    if not aio.has("accept", "open", "close"):
        pytest.skip("the public awaitables have not landed")
    before = _inheritable_fds()
    run_in(loop_kind, _exercise_public_io)
    assert not _inheritable_fds() - before


def test_typed_wrappers_return_close_on_exec_fds_by_default() -> None:
    """Every fd-returning wrapper called with its default flags gives a close-on-exec fd."""
    z = pytest.importorskip("aiosys.native.zsyscall")
    made: list[int] = []
    try:
        made += list(z.pipe2())
        made.append(z.eventfd2())
        made.append(z.epoll_create1())
        made.append(z.socket(socket.AF_INET, socket.SOCK_STREAM))
        made.append(z.openat(-100, __file__, os.O_RDONLY))
        made.append(z.open(__file__, os.O_RDONLY))
        made.append(z.dup(made[0]))
        made += list(z.socketpair(socket.AF_UNIX, socket.SOCK_STREAM))
        for fd in made:
            assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC, fd
        assert _child_fds().isdisjoint(made)
    finally:
        for fd in made:
            os.close(fd)


# ---------------------------------------------------------------------- environment variables

# Every environment variable aiosys reads, and why it is safe.  A new one must be added here
# with its reason (this test is the review).
REVIEWED_ENV = {
    "AIOSYS_TRACE": "turns on structured log events (read-only observation, stderr/handler)",
    "AIOSYS_SCHEDTRACE": "periodic one-line scheduler summary (observation only)",
    "AIOSYS_CFLAGS": "build-time compiler flags for the cffi module (build only)",
    "AIOSYS_LDFLAGS": "build-time linker flags for the cffi module (build only)",
    "CC": "compiler for the cffi module and the CLI's load generator (build only)",
    "TMPDIR": "where the demo writes its temporary file",
}
ENV_READ = re.compile(r"""(?:environ(?:\.get)?\s*[\[(]|getenv\s*\()\s*['"]([A-Z0-9_]+)['"]""")
UNSAFE_WORDS = ("UNSAFE", "INSECURE", "NOCHECK", "NO_CHECK", "DISABLE", "ANY_HOST", "PUBLIC")


def test_environment_variables_are_reviewed_and_none_is_unsafe() -> None:
    seen: dict[str, str] = {}
    for path in (ROOT / "aiosys").rglob("*.py"):
        for name in ENV_READ.findall(path.read_text()):
            seen.setdefault(name, str(path.relative_to(ROOT)))
    unreviewed = {k: v for k, v in seen.items() if k not in REVIEWED_ENV}
    assert not unreviewed, f"environment variables read but not reviewed: {unreviewed}"
    assert not [k for k in seen if any(w in k for w in UNSAFE_WORDS)]


def test_trace_environment_variable_only_observes() -> None:
    """AIOSYS_TRACE set to anything (even garbage) imports cleanly and prints nothing at
    import: the switch turns on logging, nothing else."""
    for value in ("1", "json", "console", "garbage\x01", ""):
        r = subprocess.run(
            [sys.executable, "-c", "import aiosys, aiosys.native; import aiosys.trace"],
            env=dict(os.environ, AIOSYS_TRACE=value, AIOSYS_SCHEDTRACE="nonsense"),
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        assert r.stdout == ""
