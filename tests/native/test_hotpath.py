"""csrc/hotpath.c and hotpoll.c: the netpoller's CPython-level calls, used directly."""

from __future__ import annotations

import array
import asyncio
import errno
import os
import socket

import pytest

from aiosys.native import _lowlevel as L

hot_read = L.hot_read
hot_write = L.hot_write
hot_dispatch = L.HOT["hot_dispatch"]


@pytest.mark.parametrize("sock", [False, True])
def test_read_and_write_round_trip_and_report_eagain(sock: bool) -> None:
    a, b = socket.socketpair() if sock else (None, None)
    if sock:
        assert a is not None and b is not None
        w, r = a.fileno(), b.fileno()
    else:
        r, w = os.pipe()
    try:
        assert hot_read(r, 10, sock) == -errno.EAGAIN  # empty: per-call non-blocking
        assert hot_write(w, b"hello", sock) == 5
        assert hot_write(w, bytearray(b" world"), sock) == 6
        assert hot_write(w, memoryview(b"xyz")[1:], sock) == 2
        assert hot_read(r, 3, sock) == b"hel"
        assert hot_read(r, 100, sock) == b"lo worldyz"
    finally:
        if sock:
            assert a is not None and b is not None
            a.close()
            b.close()
        else:
            os.close(r)
            os.close(w)


def test_a_read_larger_than_the_scratch_buffer_returns_exactly_what_came() -> None:
    r, w = os.pipe()
    try:
        payload = os.urandom(50_000)
        assert os.write(w, payload) == len(payload)
        got = hot_read(r, 200_000, False)  # above the 64 KiB scratch: its own bytes object
        assert got == payload
        os.close(w)
        w = -1
        assert hot_read(r, 200_000, False) == b""  # end of file
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_errors_come_back_as_negative_errno() -> None:
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    assert hot_read(r, 10, False) == -errno.EBADF
    assert hot_write(w, b"x", True) == -errno.EBADF
    a, b = socket.socketpair()
    b.close()
    try:
        assert hot_write(a.fileno(), b"x", True) == -errno.EPIPE  # MSG_NOSIGNAL: no signal
    finally:
        a.close()


@pytest.mark.parametrize(
    ("args", "exc"),
    [
        ((1.5, 10, False), TypeError),
        ((-1, 10, False), ValueError),
        ((1 << 40, 10, False), ValueError),
        ((0, 0, False), ValueError),
        ((0, -5, False), ValueError),
        ((0, "10", False), TypeError),
        ((0, 1 << 70, False), ValueError),
        ((0, 10), TypeError),
    ],
)
def test_bad_read_arguments_raise_clean_exceptions(args: tuple[object, ...], exc: type) -> None:
    with pytest.raises(exc):
        hot_read(*args)


@pytest.mark.parametrize(
    ("args", "exc"),
    [
        ((None, b"x", False), TypeError),
        ((-3, b"x", False), ValueError),
        ((1, "text", False), TypeError),
        ((1, memoryview(bytes(8))[::2], False), (TypeError, BufferError)),  # not contiguous
        ((1, b"x"), TypeError),
    ],
)
def test_bad_write_arguments_raise_clean_exceptions(
    args: tuple[object, ...], exc: type | tuple[type, ...]
) -> None:
    with pytest.raises(exc):
        hot_write(*args)


def test_dispatch_refuses_more_pairs_than_the_buffer_holds() -> None:
    buf = array.array("Q", [1, 2, 3, 4])  # two pairs
    with pytest.raises(ValueError):
        hot_dispatch(buf, 3, {}, {})
    with pytest.raises(ValueError):
        hot_dispatch(buf, -1, {}, {})
    with pytest.raises(TypeError):
        hot_dispatch(buf, 1, [], {})
    with pytest.raises(TypeError):
        hot_dispatch("not a buffer", 1, {}, {})


def test_dispatch_counts_stale_tags_and_the_wakeup_tag() -> None:
    buf = array.array("Q", [L.EPOLLIN, 12345, L.EPOLLIN, 1 << 63])
    ready, woke, stale, wake_seen = hot_dispatch(buf, 2, {}, {})
    assert (ready, woke, stale, wake_seen) == ([], 0, 1, 1)


def test_dispatch_wakes_both_sides_on_a_hangup_and_leaves_done_futures_alone() -> None:
    class PD:
        rg: object = 0
        wg: object = 0
        stream = True

    loop = asyncio.new_event_loop()
    try:
        pd, other = PD(), PD()
        pd.rg, pd.wg = loop.create_future(), loop.create_future()
        cancelled = loop.create_future()
        cancelled.cancel()
        other.rg = cancelled
        buf = array.array("Q", [L.EPOLLHUP, 7, L.EPOLLIN, 8])
        ready, woke, stale, wake_seen = hot_dispatch(buf, 2, {7: pd, 8: other}, {})
        assert (ready, woke, stale, wake_seen) == ([], 2, 0, 0)
        assert pd.rg == 1 and pd.wg == 1 and pd.stream is False  # READY, stream inference off
        assert other.rg == 1 and other.stream is True  # a plain read edge keeps the inference
    finally:
        loop.close()


def test_dispatch_returns_level_triggered_keys_as_a_selector_does() -> None:
    import selectors

    key = selectors.SelectorKey(fileobj=9, fd=9, events=selectors.EVENT_READ, data=None)
    buf = array.array("Q", [L.EPOLLIN | L.EPOLLOUT, 9])
    ready, woke, stale, _ = hot_dispatch(buf, 1, {}, {9: key})
    assert ready == [(key, selectors.EVENT_READ)] and woke == stale == 0


def test_pread_reads_at_an_offset_or_the_position_and_checks_its_arguments() -> None:
    import tempfile

    with tempfile.TemporaryFile() as f:
        fd = f.fileno()
        os.write(fd, b"0123456789")
        os.lseek(fd, 2, os.SEEK_SET)
        assert L.hot_pread(fd, 3, 5) == b"567"
        assert L.hot_pread(fd, 100, 8) == b"89"  # short at end of file
        assert L.hot_pread(fd, 10, 10) == b""
        assert L.hot_pread(fd, 4, -1) == b"2345"  # the position, which moves
        assert L.hot_pread(fd, 2, -1) == b"67"
        big = L.hot_pread(fd, 1 << 20, 0)  # above the scratch buffer
        assert big == b"0123456789"
        for args, exc in [((fd, 3, -2), ValueError), ((fd, 0, 0), ValueError),
                          ((fd, 3, 1.0), TypeError), ((fd, 3), TypeError)]:
            with pytest.raises(exc):
                L.hot_pread(*args)
    r, w = os.pipe()
    try:
        assert L.hot_pread(r, 3, 0) == -errno.ESPIPE  # a pipe has no offsets
    finally:
        os.close(r)
        os.close(w)
