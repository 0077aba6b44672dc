"""Bad input thrown at every typed wrapper of the syscall table (``aiosys.native.zsyscall``).

Two properties, both "a clear Python exception, never a crash":

* ``prepare_NAME(*args)`` (validation and marshalling, no syscall) for *every* exposed entry,
  with values drawn per parameter kind: valid ones, wrong types, huge and negative numbers,
  read-only and non-contiguous buffers, paths with NUL bytes, odd socket addresses.
* the full wrapper ``NAME(*args)`` for every entry whose side effects stay inside what the
  test owns: fds it created (a temp file and directory, a pipe, a socketpair, an eventfd, an
  epoll fd that is always ready so no wait blocks), closed and never-opened fd numbers, paths
  under a fresh temp directory, mappings it made.  Each example makes one call; every fd that
  appeared during it is closed afterwards and every mapping unmapped.

Allowed outcomes: a return value, ``OSError`` (the kernel said no), ``TypeError``,
``ValueError``.  ``OverflowError``, ``SystemError``, ``MemoryError`` and anything else fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _relcounters import budget, record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

z = pytest.importorskip("aiosys.native.zsyscall")
mk = pytest.importorskip("aiosys.native.mksyscall")
from aiosys.native import _lowlevel as L  # noqa: E402

CLEAN = (OSError, TypeError, ValueError)
TBL = Path(z.__file__).with_name("syscalls.tbl")
ROWS = {r.name: r for r in mk.parse(TBL.read_text()) if r.klass != "none"}
KIND = {name: {p.name: p.kind for p in row.params} for name, row in ROWS.items()}
ENTRIES = sorted(n for n in ROWS if n in z.TABLE)

# Full calls: these could act outside what the test owns (signals, sleeping, flushing every
# filesystem, poisoning pages as root, allocating real disk), so only their prepare_ half is
# fuzzed.
NOT_CALLED = {"kill", "tgkill", "nanosleep", "sync", "madvise", "fallocate", "fsync",
              "fdatasync"}
CALLED = [n for n in ENTRIES if n not in NOT_CALLED]

HUGE = [2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**100, -1, -(2**31) - 1,
        -(2**63), -(2**63) - 1, -(2**100)]
WRONG: list[object] = [None, "3", b"3", 3.0, float("inf"), 1j, object(), [], (1,), True]
ints = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from(HUGE), st.integers(-3, 70),
                 st.sampled_from(WRONG))

SETTINGS = settings(deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class World:
    """What one example may touch."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="aiosys-fuzz-")
        self.file_path = os.path.join(self.dir, "f")
        self.file = os.open(self.file_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        os.write(self.file, b"0123456789" * 50)
        os.symlink(self.file_path, os.path.join(self.dir, "link"))
        os.mkdir(os.path.join(self.dir, "sub"))
        self.dirfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.rpipe, self.wpipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        self.sa, self.sb = a.detach(), b.detach()
        self.efd = L.eventfd(0)
        self.ready = L.eventfd(1)
        self.epfd = L.epoll_create1()
        L.epoll_ctl(self.epfd, L.EPOLL_CTL_ADD, self.ready, L.EPOLLIN, 1)
        r, w = os.pipe()
        os.close(r)
        os.close(w)
        self.closed = r
        self.mapping = z.mmap(8192, z_const("PROT_READ") | z_const("PROT_WRITE"),
                              z_const("MAP_PRIVATE") | z_const("MAP_ANONYMOUS"))
        self.fds_at_start = open_fds()

    def fds(self) -> list[object]:
        return [self.file, self.dirfd, self.rpipe, self.wpipe, self.sa, self.sb, self.efd,
                self.epfd, self.closed, 1 << 20, -1, -100, 2**31, 2**64, -(2**70), None, "0",
                1.0]

    def paths(self) -> list[object]:
        d = self.dir
        return [self.file_path, os.path.join(d, "link"), os.path.join(d, "sub"),
                os.path.join(d, "new"), os.path.join(d, "sub", "x"), os.fsencode(self.file_path),
                Path(d) / "new2", self.file_path + "\0x", os.path.join(d, "a" * 300),
                d + "/" + "b/" * 3000, "", b"", None, 5, ["x"]]

    def close(self) -> None:
        for fd in open_fds() - self.fds_at_start:
            with contextlib.suppress(OSError):
                os.close(fd)  # whatever the call created (open, dup3, socket, pipe2 ...)
        for fd in (self.file, self.dirfd, self.rpipe, self.wpipe, self.sa, self.sb, self.efd,
                   self.ready, self.epfd):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(Exception):
            z.munmap(self.mapping)
        shutil.rmtree(self.dir, ignore_errors=True)


def open_fds() -> set[int]:
    """Open fds, without the one ``listdir`` itself used (it is the lowest free number, the
    very number the next call would get)."""
    out = set()
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            os.fstat(int(name))
            out.add(int(name))
    return out


def z_const(name: str) -> int:
    for src in (L.HEADER_CONSTANTS if hasattr(L, "HEADER_CONSTANTS") else {}, vars(os),
                vars(socket)):
        if name in src:
            return int(src[name])
    import mmap

    return int(getattr(mmap, name))


@contextlib.contextmanager
def world() -> Iterator[World]:
    w = World()
    try:
        yield w
    finally:
        w.close()


def buffers(writable: bool) -> st.SearchStrategy[object]:
    makers = [
        lambda: bytearray(64), lambda: bytearray(), lambda: b"payload", lambda: b"",
        lambda: memoryview(bytearray(32))[4:20], lambda: memoryview(bytearray(32))[::2],
        lambda: memoryview(b"ro"), lambda: memoryview(bytearray(16)).toreadonly(),
        lambda: memoryview(bytearray(16)).cast("Q"), lambda: "str", lambda: 7, lambda: None,
        lambda: [b"x"],
    ]
    return st.sampled_from(makers).map(lambda m: m())


def value_for(kind: str, w: World | None) -> st.SearchStrategy[Any]:
    if kind in ("fd", "dirfd", "optfd"):
        return ints if w is None else st.sampled_from(w.fds())
    if kind == "path":
        if w is None:
            return st.one_of(st.text(max_size=8).map(lambda s: "/nonexistent/" + s),
                             st.sampled_from(["a\0b", b"x\0", None, 3, "", "/" + "x" * 5000]))
        return st.sampled_from(w.paths())
    if kind in ("rbuf", "wbuf"):
        return buffers(kind == "wbuf")
    if kind in ("riov", "wiov"):
        return st.one_of(st.lists(buffers(kind == "wiov"), max_size=4),
                         st.sampled_from([None, b"flat", [bytearray(1)] * 2000, 5]))
    if kind in ("sockaddr", "optsockaddr"):
        base: list[object] = [("127.0.0.1", 0), ("127.0.0.1", 65536), ("127.0.0.1", -1),
                              ("127.0.0.1", 2**70), ("::1", 0, 0, 0), ("::1", 0, 2**40, 0),
                              ("host.invalid", 80), ("1.2.3", 1), (1, 2), ("127.0.0.1",),
                              "\0abstract-aiosys-fuzz", b"\0x", "a\0b", "x" * 200, None, 3]
        if w is not None:
            base.append(os.path.join(w.dir, "sock"))
        return st.one_of(st.sampled_from(base),
                         st.tuples(st.sampled_from(["127.0.0.1", "::1"]), ints))
    if kind in ("mapping", "unmapping"):
        if w is None:
            return st.sampled_from([None, 0, b"x", object()])
        return st.sampled_from([w.mapping, None, 0, 4096, b"x"])
    return ints  # every integer kind: int, uint, long, size, off, flags, lengths, timeouts


def _outcome(name: str, fn: Any, args: list[Any]) -> Any:
    record("typed-wrapper bad inputs tried")
    try:
        return fn(*args)
    except CLEAN:
        return None
    except BaseException as exc:
        pytest.fail(f"{name}{tuple(args)!r} raised {type(exc).__name__}: {exc}")


@settings(SETTINGS, max_examples=budget(400))
@given(data=st.data(), name=st.sampled_from(ENTRIES))
def test_every_prepare_rejects_bad_input_cleanly(data: st.DataObject, name: str) -> None:
    kinds = KIND[name]
    args = [data.draw(value_for(k, None), label=p) for p, k in kinds.items()]
    _outcome("prepare_" + name, z.TABLE[name].prepare, args)


@settings(SETTINGS, max_examples=budget(300))
@given(data=st.data(), name=st.sampled_from(CALLED))
def test_every_safe_wrapper_rejects_bad_input_cleanly(data: st.DataObject, name: str) -> None:
    with world() as w:
        kinds = KIND[name]
        args = [data.draw(value_for(k, w), label=p) for p, k in kinds.items()]
        r = _outcome(name, getattr(z, name), args)
        if isinstance(r, z.Mapping):
            z.munmap(r)
