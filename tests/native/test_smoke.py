from __future__ import annotations

import errno
import os

import aiosys.native as native


def test_raw_getpid_matches_os() -> None:
    r1, r2, err = native.RawSyscall(native.SYS["getpid"])
    assert (r1, r2, err) == (os.getpid(), 0, 0)
    assert not err


def test_raw_close_of_bad_fd_reports_ebadf() -> None:
    r1, _, err = native.RawSyscall(native.SYS["close"], 2**30)
    assert r1 == -1
    assert err == errno.EBADF and err.name == "EBADF"
    assert isinstance(err.exception(), OSError) and err.exception().errno == errno.EBADF
