"""Socket calls on the netpoller: recv/send (MSG_DONTWAIT per call), recvfrom/sendto,
accept (accept4 with SOCK_NONBLOCK|SOCK_CLOEXEC) and connect (EINPROGRESS, then SO_ERROR).

Each tries the syscall inline and parks on the netpoller only on EAGAIN, like the fd calls in
:mod:`._ops`, whose helpers (lookup, parking, argument checks) these share.  A socket object
keeps its ownership: its fd is used, and only :func:`._ops.close` closes it.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any, Final

from aiosys.native import _lowlevel as _ll

from ._epoll import _IDLE, _READY, PollDesc
from ._errors import DeadlineExceededError
from ._ops import (
    _EAGAIN,
    _EINTR,
    _MAX_WORD,
    _check_nonblocking,
    _fileno,
    _lookup,
    _oserror,
    _park_read,
    _park_write,
    read,
    readinto,
    write_all,
)

_sys6 = _ll._sys6
_MSG_DONTWAIT: Final = socket.MSG_DONTWAIT
_MSG_NOSIGNAL: Final = socket.MSG_NOSIGNAL
_SYS_RECVFROM: Final = _ll.SYS["recvfrom"]
_SYS_SENDTO: Final = _ll.SYS["sendto"]
_SYS_ACCEPT4: Final = _ll.SYS["accept4"]
_ACCEPT_FLAGS: Final = socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC


def _check_flags(flags: Any) -> int:
    """MSG_* flags are a C int: anything else is refused before it reaches the kernel."""
    if not isinstance(flags, int):
        raise TypeError(f"flags must be an int, not {type(flags).__name__}")
    if not -0x80000000 <= flags <= 0x7FFFFFFF:
        raise ValueError(f"flags out of range for a C int: {flags}")
    return int(flags)


def _check_size(n: Any, what: str) -> int:
    """A byte count: an int in [0, 2**63) (the socket module would raise OverflowError)."""
    if not isinstance(n, int):
        raise TypeError(f"{what} must be an int, not {type(n).__name__}")
    if not 0 <= n <= _MAX_WORD:
        raise ValueError(f"{what} out of range: {n}")
    return int(n)


def _contiguous(data: Any) -> Any:
    """The socket module raises BufferError for a strided view; say TypeError, like
    pin_buffer does for the other calls."""
    if data.__class__ is bytes:
        return data
    mv = memoryview(data)
    if not mv.contiguous:
        raise TypeError("a contiguous bytes-like object is required")
    return data


async def recv(sock: Any, n: int, flags: int = 0) -> bytes:
    """``socket.recv`` on the netpoller (``MSG_DONTWAIT`` per call)."""
    flags = _check_flags(flags)
    if flags == 0:
        return await read(sock, n)
    fd = _fileno(sock)
    if n <= 0:
        if n == 0:
            return b""
        raise ValueError("negative buffersize in recv")
    p, pd = _lookup(fd)
    if pd.rd < 0:
        raise DeadlineExceededError()
    if n > _MAX_WORD:
        raise ValueError(f"recv size out of range: {n}")
    big = bytearray(n)
    pin = _ll.pin_buffer(big, writable=True)
    while True:
        if pd.rg is _READY:
            r = _sys6(_SYS_RECVFROM, fd, pin.addr, n, flags | _MSG_DONTWAIT, 0, 0)
            if r >= 0:
                return bytes(big[:r])
            if r == _EAGAIN:
                pd.rg = _IDLE
            elif r != _EINTR:
                raise _oserror(-r)
            else:
                continue
        await _park_read(p, pd)


async def recv_into(sock: Any, buf: Any, nbytes: int = 0, flags: int = 0) -> int:
    """``socket.recv_into`` on the netpoller."""
    flags = _check_flags(flags)
    nbytes = _check_size(nbytes, "recv_into nbytes")
    if nbytes or flags:
        mv = memoryview(buf).cast("B")
        if nbytes:
            mv = mv[:nbytes]
        if flags == 0:
            return await readinto(sock, mv)
        data = await recv(sock, len(mv), flags)
        mv[: len(data)] = data
        return len(data)
    return await readinto(sock, buf)


async def send(sock: Any, data: Any, flags: int = 0) -> int:
    """``socket.send`` on the netpoller (``MSG_DONTWAIT|MSG_NOSIGNAL`` per call)."""
    flags = _check_flags(flags)
    fd = _fileno(sock)
    pin = _ll.pin_buffer(data, writable=False)
    n = pin.size
    if n == 0:
        return 0
    p, pd = _lookup(fd)
    if pd.wd < 0:
        raise DeadlineExceededError()
    f = flags | _MSG_DONTWAIT | _MSG_NOSIGNAL
    while True:
        if pd.wg is _READY:
            r = _sys6(_SYS_SENDTO, fd, pin.addr, n, f, 0, 0)
            if r >= 0:
                return int(r)
            if r == _EAGAIN:
                pd.wg = _IDLE
            elif r != _EINTR:
                raise _oserror(-r)
            else:
                continue
        await _park_write(p, pd)


async def sendall(sock: Any, data: Any, flags: int = 0) -> None:
    """``socket.sendall`` on the netpoller."""
    flags = _check_flags(flags)
    if flags == 0:
        await write_all(sock, data)
        return
    mv = memoryview(data).cast("B")
    off = 0
    while off < len(mv):
        off += await send(sock, mv[off:], flags)


def _sock_of(pd: PollDesc) -> socket.socket:
    """A temporary socket object over ``pd.fd`` for the calls that need address parsing
    (the caller must ``detach()`` it).  family/type/proto are asked once per fd."""
    info = pd.sockinfo
    if info is None:
        s = socket.socket(fileno=pd.fd)
        info = pd.sockinfo = (s.family, s.type, s.proto)
        return s
    return socket.socket(info[0], info[1], info[2], pd.fd)


async def recvfrom(sock: Any, n: int, flags: int = 0) -> tuple[bytes, Any]:
    """``socket.recvfrom`` on the netpoller."""
    flags = _check_flags(flags)
    n = _check_size(n, "recvfrom size")
    fd = _fileno(sock)
    p, pd = _lookup(fd)
    if pd.rd < 0:
        raise DeadlineExceededError()
    while True:
        if pd.rg is _READY:
            s = _sock_of(pd)
            try:
                return s.recvfrom(n, flags | _MSG_DONTWAIT)
            except BlockingIOError:
                pd.rg = _IDLE
            except InterruptedError:
                continue
            finally:
                s.detach()
        await _park_read(p, pd)


async def sendto(sock: Any, data: Any, address: Any, flags: int = 0) -> int:
    """``socket.sendto`` on the netpoller."""
    flags = _check_flags(flags)
    data = _contiguous(data)
    fd = _fileno(sock)
    _require_numeric(address)
    p, pd = _lookup(fd)
    if pd.wd < 0:
        raise DeadlineExceededError()
    while True:
        if pd.wg is _READY:
            s = _sock_of(pd)
            try:
                return s.sendto(data, flags | _MSG_DONTWAIT | _MSG_NOSIGNAL, address)
            except BlockingIOError:
                pd.wg = _IDLE
            except InterruptedError:
                continue
            finally:
                s.detach()
        await _park_write(p, pd)


def _require_numeric(address: Any) -> None:
    """A host name would make the kernel call path do a blocking DNS lookup on the loop."""
    if (
        isinstance(address, tuple)
        and len(address) >= 2
        and isinstance(address[1], int)
        and not 0 <= address[1] <= 0xFFFF
    ):
        raise ValueError(f"port must be 0-65535, not {address[1]}")  # socket: OverflowError
    if isinstance(address, tuple) and address and isinstance(address[0], str):
        host = address[0]
        for fam in (socket.AF_INET, socket.AF_INET6):
            try:
                socket.inet_pton(fam, host.split("%", 1)[0])
                return
            except OSError:
                pass
        raise ValueError(
            f"address {address!r} needs name resolution; resolve it first "
            "(loop.getaddrinfo) so the event loop never blocks on DNS"
        )


async def accept(sock: Any) -> tuple[int, Any]:
    """Accept a connection: ``accept4(SOCK_NONBLOCK|SOCK_CLOEXEC)``.  Returns the new fd
    (already entered into this loop's netpoller) and the peer address, in ``socket.accept``'s
    address format.  The caller owns the new fd.

    :raises BlockingModeError: the listening fd's O_NONBLOCK was cleared (accept has no
        per-call non-blocking form).
    """
    fd = _fileno(sock)
    p, pd = _lookup(fd)
    if pd.rd < 0:
        raise DeadlineExceededError()
    addrbuf = p.addr_buf
    lenbuf = p.addrlen_buf
    while True:
        if pd.rg is _READY:
            _check_nonblocking(fd, "accept")
            lenbuf[:4] = _SOCKADDR_LEN
            r = _sys6(_SYS_ACCEPT4, fd, p.addr_pin.addr, p.addrlen_pin.addr, _ACCEPT_FLAGS, 0, 0)
            if r >= 0:
                try:
                    p.register_accepted(r, pd)
                except BaseException:
                    os.close(r)
                    raise
                alen = int.from_bytes(lenbuf[:4], "little")
                return r, _parse_sockaddr(bytes(addrbuf[:alen]))
            if r == _EAGAIN:
                pd.rg = _IDLE
            elif r in (_EINTR, -errno.ECONNABORTED):
                continue
            else:
                raise _oserror(-r)
        await _park_read(p, pd)


_SOCKADDR_LEN: Final = (128).to_bytes(4, "little")


def _parse_sockaddr(raw: bytes) -> Any:
    if len(raw) < 2:
        return ""
    family = int.from_bytes(raw[:2], "little")
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), int.from_bytes(raw[2:4], "big")
    if family == socket.AF_INET6:
        return (
            socket.inet_ntop(socket.AF_INET6, raw[8:24]),
            int.from_bytes(raw[2:4], "big"),
            int.from_bytes(raw[4:8], "big"),
            int.from_bytes(raw[24:28], "little"),
        )
    if family == socket.AF_UNIX:
        path = raw[2:]
        if path[:1] == b"\0":
            return path  # abstract namespace: bytes, as socket.accept gives
        return os.fsdecode(path.split(b"\0", 1)[0])
    return raw


async def connect(sock: Any, address: Any) -> None:
    """Connect: start it non-blocking (EINPROGRESS), park until writable, then read
    ``SO_ERROR``.  ``address`` must be numeric (no DNS on the loop).

    :raises BlockingModeError: the fd's O_NONBLOCK was cleared.
    :raises OSError: the connection failed (ECONNREFUSED...).
    """
    fd = _fileno(sock)
    _require_numeric(address)
    p, pd = _lookup(fd)
    if pd.wd < 0:
        raise DeadlineExceededError()
    _check_nonblocking(fd, "connect")
    s = _sock_of(pd)
    try:
        err = s.connect_ex(address)
    finally:
        s.detach()
    if err == 0:
        return
    if err not in (errno.EINPROGRESS, errno.EINTR, errno.EAGAIN):
        raise _oserror(err)
    pd.wg = _IDLE  # not writable until the handshake ends: wait for the edge
    await _park_write(p, pd)
    s = _sock_of(pd)
    try:
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    finally:
        s.detach()
    if err:
        raise _oserror(err)


