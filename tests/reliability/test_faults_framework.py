"""The fault-injection module itself: faults fire as specified, reach every reference to the
patched function, are counted, and leave nothing behind (production code never imports it)."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

import aiosys.native as native
from aiosys import _faults
from aiosys.native import _lowlevel as L

ROOT = Path(__file__).resolve().parents[2]


def test_errno_fault_fires_times_then_passes_through() -> None:
    efd = L.eventfd(0)
    try:
        orig = L.eventfd_write
        with _faults.inject(
            "aiosys.native._lowlevel:eventfd_write", errno=errno.EAGAIN, times=2
        ) as f:
            # the re-export in aiosys.native is the same function: patched as well
            assert native.eventfd_write is L.eventfd_write is not orig
            for _ in range(2):
                with pytest.raises(BlockingIOError):
                    native.eventfd_write(efd, 1)
            native.eventfd_write(efd, 5)
        assert L.eventfd_write is orig and native.eventfd_write is orig
        assert (f.calls, f.injected) == (3, 2)
        assert L.eventfd_read(efd) == 5  # the faulted calls never reached the kernel
    finally:
        os.close(efd)


def test_return_style_and_triple_style() -> None:
    getpid = native.SYS["getpid"]
    with _faults.inject("aiosys.native._lowlevel:raw3", errno=errno.EINTR, style="return") as f:
        assert L.raw3(getpid) == -errno.EINTR
    assert L.raw3(getpid) == os.getpid() and f.injected == 1
    with _faults.inject(
        "aiosys.native._lowlevel:RawSyscall", errno=errno.ENOMEM, style="triple"
    ):
        r1, _, err = native.RawSyscall(getpid)
        assert (r1, err, err.name) == (-1, errno.ENOMEM, "ENOMEM")


def test_shrink_forces_a_short_read_and_when_selects_calls() -> None:
    with tempfile.TemporaryFile() as tmp:
        fd = tmp.fileno()
        os.write(fd, b"abcdefghij")
        buf = bytearray(10)
        with _faults.inject(
            "aiosys.native._lowlevel:_preadv2",
            rewrite=_faults.shrink(2, 3),
            when=lambda fd_, *_: fd_ == fd,
        ) as f:
            assert L.preadv2(fd, buf, 0) == 3
            assert bytes(buf[:3]) == b"abc"
        assert f.injected == 1
        assert L.preadv2(fd, buf, 0) == 10


def test_after_skips_calls_and_faults_fire_on_other_threads() -> None:
    seen: list[BaseException] = []

    def worker() -> None:
        try:
            L.epoll_create1()
        except OSError as exc:
            seen.append(exc)

    with _faults.inject(
        "aiosys.native._lowlevel:epoll_create1", errno=errno.EMFILE, after=1, times=1
    ) as f:
        fd = L.epoll_create1()  # the first call passes
        os.close(fd)
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    assert f.injected == 1 and seen and seen[0].errno == errno.EMFILE


def test_originals_restored_when_the_block_raises() -> None:
    orig = L.epoll_ctl
    with pytest.raises(RuntimeError), _faults.inject(
        "aiosys.native._lowlevel:epoll_ctl", errno=errno.EIO
    ):
        raise RuntimeError("boom")
    assert L.epoll_ctl is orig and native.epoll_ctl is orig


def test_bad_specs_are_rejected() -> None:
    with pytest.raises(ValueError), _faults.inject("aiosys.native._lowlevel:epoll_ctl"):
        pass
    with pytest.raises(ValueError), _faults.inject("no_colon", errno=1):
        pass


def test_production_code_never_imports_the_fault_module() -> None:
    """Zero cost: importing every aiosys module does not load aiosys._faults."""
    code = (
        "import importlib, pkgutil, sys, aiosys\n"
        "for m in pkgutil.walk_packages(aiosys.__path__, 'aiosys.'):\n"
        "    if m.name in ('aiosys._faults', 'aiosys.__main__') or '_build' in m.name:\n"
        "        continue\n"
        "    try:\n"
        "        importlib.import_module(m.name)\n"
        "    except Exception:\n"
        "        pass\n"
        "assert 'aiosys._faults' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)
    imports = re.compile(r"^\s*(import\s+[\w.]*_faults|from\s+[\w.]*\s+import\s+.*\b_faults\b"
                         r"|from\s+[\w.]*_faults\s+import)", re.MULTILINE)
    for path in (ROOT / "aiosys").rglob("*.py"):
        if path.name != "_faults.py":
            assert not imports.search(path.read_text()), path
    assert imports.search("from aiosys import _faults") and imports.search("import aiosys._faults")


def test_overlapping_faults_in_any_order_restore_the_original() -> None:
    """Two tasks' ``with inject(...)`` blocks on one function overlap and end out of order
    (A enters, B enters, A leaves, B leaves): both fire while active, and the original is back
    afterwards, not a stale wrapper (found by the soak: wrappers piled up until recursion)."""
    orig = L.eventfd_write
    efd = L.eventfd(0)
    try:
        a = _faults.inject("aiosys.native._lowlevel:eventfd_write", errno=errno.EIO)
        b = _faults.inject("aiosys.native._lowlevel:eventfd_write", errno=errno.EAGAIN,
                           when=lambda fd, v: v == 2)
        fa = a.__enter__()
        fb = b.__enter__()
        with pytest.raises(OSError) as ei:
            L.eventfd_write(efd, 1)  # b does not match: a fires
        assert ei.value.errno == errno.EIO
        with pytest.raises(BlockingIOError):
            L.eventfd_write(efd, 2)  # b matches (the later fault runs first)
        a.__exit__(None, None, None)
        with pytest.raises(BlockingIOError):
            L.eventfd_write(efd, 2)
        L.eventfd_write(efd, 1)  # b does not match: passes through
        b.__exit__(None, None, None)
        assert L.eventfd_write is orig and native.eventfd_write is orig
        assert fa.injected >= 1 and fb.injected >= 1
        for _ in range(200):  # no pile-up
            with _faults.inject("aiosys.native._lowlevel:eventfd_write", errno=errno.EIO):
                pass
        assert L.eventfd_write is orig
    finally:
        os.close(efd)
