"""The process-wide fd reference table (Go's fdMutex idea)."""

from __future__ import annotations

import contextlib
import errno
import os
import threading

import pytest

from aiosys.netpoll import fdtable
from aiosys.netpoll.fdtable import fd_acquire, fd_close, fd_refs, fd_release


@pytest.fixture
def pipe() -> tuple[int, int]:
    r, w = os.pipe()
    yield r, w  # type: ignore[misc]
    for fd in (r, w):
        with contextlib.suppress(OSError):
            os.close(fd)


def test_close_without_references_runs_the_closer_now(pipe: tuple[int, int]) -> None:
    r, _ = pipe
    closed: list[int] = []
    assert fd_close(r, lambda fd: (closed.append(fd), os.close(fd))) is True
    assert closed == [r]
    assert fd_refs(r) == 0
    assert fdtable.table_size() == 0


def test_close_is_deferred_until_the_last_release(pipe: tuple[int, int]) -> None:
    r, _ = pipe
    closed: list[int] = []
    fd_acquire(r)
    fd_acquire(r)
    assert fd_refs(r) == 2
    assert fd_close(r, lambda fd: (closed.append(fd), os.close(fd))) is False
    assert fdtable.fd_closing(r)
    fd_release(r)
    assert closed == []
    fd_release(r)
    assert closed == [r]
    assert fdtable.table_size() == 0


def test_acquire_after_close_is_use_of_closed_file(pipe: tuple[int, int]) -> None:
    r, _ = pipe
    fd_acquire(r)
    fd_close(r, os.close)
    with pytest.raises(OSError) as info:
        fd_acquire(r)
    assert info.value.errno == errno.EBADF
    assert "use of closed file descriptor" in str(info.value)
    fd_release(r)
    # The number is free again once the close ran: a new fd with it starts clean.
    fd_acquire(r)
    fd_release(r)
    assert fdtable.table_size() == 0


def test_second_close_is_refused(pipe: tuple[int, int]) -> None:
    r, _ = pipe
    fd_acquire(r)
    fd_close(r, os.close)
    with pytest.raises(OSError) as info:
        fd_close(r, os.close)
    assert info.value.errno == errno.EBADF
    fd_release(r)


def test_release_without_reference_is_an_internal_error() -> None:
    with pytest.raises(RuntimeError):
        fd_release(10**6)


def test_idle_entries_are_dropped(pipe: tuple[int, int]) -> None:
    r, _ = pipe
    fd_acquire(r)
    fd_release(r)
    assert fdtable.table_size() == 0


def test_listeners_run_before_the_real_close(pipe: tuple[int, int]) -> None:
    r, _ = pipe
    order: list[str] = []

    def listener(fd: int) -> None:
        # The fd must still be open while the netpollers remove it from epoll.
        os.fstat(fd)
        order.append("listener")

    fdtable.add_close_listener(listener)
    try:
        fd_close(r, lambda fd: (order.append("close"), os.close(fd)))
    finally:
        fdtable.remove_close_listener(listener)
    assert order == ["listener", "close"]


def test_closer_may_call_back_into_the_table(pipe: tuple[int, int]) -> None:
    r, _ = pipe
    seen: list[int] = []
    fd_close(r, lambda fd: (seen.append(fd_refs(fd)), os.close(fd)))
    assert seen == [0]


def _race_once() -> None:
    r, w = os.pipe()
    closes: list[int] = []
    barrier = threading.Barrier(5)
    violations: list[str] = []

    def user() -> None:
        barrier.wait()
        for _ in range(200):
            try:
                fd_acquire(r)
            except OSError:
                return  # close pending: refused, as it must be
            if closes:  # the close already ran: the number is a new fd now
                fd_release(r)
                return
            try:
                os.fstat(r)  # never closed under a reference
            except OSError as exc:
                violations.append(repr(exc))
            if closes:
                violations.append("closed while a reference was held")
            fd_release(r)

    def closer() -> None:
        barrier.wait()
        fd_close(r, lambda fd: (closes.append(fd), os.close(fd)))

    threads = [threading.Thread(target=user) for _ in range(4)]
    threads.append(threading.Thread(target=closer))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os.close(w)
    assert violations == []
    assert closes == [r]
    assert fdtable.table_size() == 0


def test_threads_race_acquire_release_and_close_exactly_once() -> None:
    for _ in range(20):
        _race_once()
