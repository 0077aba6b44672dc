"""The syscall table and its generator (Go's mksyscall.pl + zsyscall_linux_amd64.go)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aiosys.native import mksyscall, zsyscall
from aiosys.native._lowlevel import SYS

ROOT = Path(__file__).resolve().parents[2]

# The seed article's list of the Go runtime's own syscalls (runtime/sys_linux_amd64.s).


def _names(text: str) -> list[str]:
    return text.split()


SEED_RUNTIME_SYSCALLS = _names("""
read write open close mmap munmap brk rt_sigaction rt_sigprocmask rt_sigreturn access
sched_yield mincore madvise setitimer getpid socket connect clone exit kill fcntl getrlimit
sigaltstack arch_prctl gettid tkill futex sched_getaffinity epoll_create exit_group epoll_wait
epoll_ctl pselect6 epoll_create1
""")

ISSUE_SYSCALLS = _names("""
openat read write pread64 pwrite64 readv writev preadv2 pwritev2 close fsync fdatasync
ftruncate fallocate statx getdents64 unlinkat renameat2 mkdirat readlinkat fchmod dup3 fcntl
pipe2 eventfd2 socket bind listen accept4 connect recvfrom sendto shutdown getsockopt
setsockopt epoll_create1 epoll_ctl epoll_wait getpid gettid kill clock_gettime nanosleep mmap
munmap madvise
""")


def test_checked_in_zsyscall_is_what_the_generator_produces() -> None:
    assert (ROOT / "aiosys/native/zsyscall.py").read_text() == mksyscall.render(), (
        "zsyscall.py is stale: run python -m aiosys.native.mksyscall"
    )


def test_generator_check_mode_runs_without_the_package() -> None:
    # Run as a plain script: the generator must not need the compiled module.
    script = ROOT / "aiosys/native/mksyscall.py"
    r = subprocess.run(
        [sys.executable, "-S", "-I", str(script), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr


def test_generator_check_mode_detects_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "zsyscall.py"
    stale.write_text(mksyscall.render() + "# edited by hand\n")
    assert mksyscall.main(["--check", "-o", str(stale)]) == 1
    assert mksyscall.main(["-o", str(stale)]) == 0
    assert mksyscall.main(["--check", "-o", str(stale)]) == 0


def test_table_has_forty_exposed_entries_and_every_class() -> None:
    rows = mksyscall.parse(mksyscall.TABLE_PATH.read_text())
    exposed = [r for r in rows if r.klass != "none"]
    assert len(exposed) >= 40
    assert {r.klass for r in rows} == set(mksyscall.CLASSES)
    assert set(zsyscall.TABLE) == {r.name for r in exposed}
    assert set(zsyscall.NOT_EXPOSED) == {r.name for r in rows if r.klass == "none"}


def test_issue_syscalls_are_exposed() -> None:
    assert [n for n in ISSUE_SYSCALLS if n not in zsyscall.TABLE] == []


def test_seed_runtime_syscalls_are_exposed_or_explained() -> None:
    # getrlimit is typed over prlimit64, setitimer declined; either way it is accounted for.
    missing = [
        n
        for n in SEED_RUNTIME_SYSCALLS
        if n not in zsyscall.TABLE and not zsyscall.NOT_EXPOSED.get(n, "").strip()
    ]
    assert missing == []
    assert not set(zsyscall.TABLE) & set(zsyscall.NOT_EXPOSED)


def test_fs_calls_that_may_block_are_never_sysnb() -> None:
    # Go issue 10202: dup/close/stat can block on FUSE or NFS.
    for name in ("close", "dup3", "dup", "fcntl", "statx", "stat", "lstat", "fstat", "fsync"):
        assert zsyscall.TABLE[name].blocking, name
        assert zsyscall.TABLE[name].base != "sysnb", name


def test_entries_agree_with_the_headers() -> None:
    for e in zsyscall.TABLE.values():
        assert 0 <= e.nargs <= 6
        if e.klass == "wrap":
            target = zsyscall.TABLE[e.target]
            assert (e.trap, e.nargs, e.base) == (target.trap, target.nargs, target.klass)
        else:
            assert e.base == e.klass
        assert e.trap == -1 or e.trap in SYS.values()


def test_by_trap_finds_the_entry_named_after_the_trap() -> None:
    assert zsyscall.by_trap(SYS["fcntl"]) is zsyscall.TABLE["fcntl"]
    assert zsyscall.by_trap(SYS["read"]) is zsyscall.TABLE["read"]
    assert zsyscall.by_trap(SYS["getrlimit"]) is None  # typed over prlimit64 instead
    assert zsyscall.by_trap(-1) is None


TABLE_ERRORS = [
    ("bogus read(fd: fd) -> none", "unknown class"),
    ("sys read(fd: nope) -> none", "unknown kind"),
    ("sys read(fd: fd) -> nothing", "unknown result"),
    ("sys read(fd: fd) none", "expected '-> RESULT'"),
    ("none brk", "needs '! reason'"),
    ("wrap x(fd: fd) -> none", "wrap"),
    ("wrap x(fd: fd) -> none = missing(fd)", "bad wrap target"),
    ("noerror x() -> int", "noerror"),
    ("sys x(fd: fd) -> none {eintr=sometimes}", "bad option"),
    ("sys x(a: rbuf, b: rbuf, c: rbuf, d: rbuf) -> none", "six machine words"),
]


def test_table_errors_are_reported_with_the_line() -> None:
    for line, message in TABLE_ERRORS:
        with pytest.raises(mksyscall.TableError, match=message):
            mksyscall.parse("# comment\n\n" + line + "\n")
        with pytest.raises(mksyscall.TableError, match="line 3"):
            mksyscall.parse("# comment\n\n" + line + "\n")


def test_duplicate_entries_are_rejected() -> None:
    with pytest.raises(mksyscall.TableError, match="duplicate"):
        mksyscall.parse("sysnb getpid2() -> int @getpid()\nsysnb getpid2() -> int\n")
