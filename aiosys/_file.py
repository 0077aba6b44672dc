"""``aiosys.open_file``: a small async file object for people coming from aiofiles.

::

    async with aiosys.open_file("data.txt") as f:
        text = await f.read()
    async with aiosys.open_file("log", "ab") as f:
        await f.write(b"line\\n")
    async with aiosys.open_file("data.txt") as f:
        async for line in f:
            ...

Every operation goes through :mod:`aiosys._io`: cached reads are served inline (RWF_NOWAIT),
everything that may block runs on an M, the loop never blocks.  Text mode decodes with an
incremental decoder (``encoding``, ``errors``; ``\r\n`` reads as ``\n``, and lines end at
``\n``); binary mode (``"b"`` in ``mode``) returns ``bytes``.  There is no read-ahead buffer
beyond what line iteration needs: ``read(n)`` is one system call, like ``os.read``.
"""

from __future__ import annotations

import codecs
import os
from types import TracebackType
from typing import Any, Generic, TypeVar

from . import _io

__all__ = ["AsyncFile", "open_file"]

AnyStr = TypeVar("AnyStr", str, bytes)

_CHUNK = 65536  # bytes per system call when reading to the end or scanning for a newline


def _flags(mode: str) -> int:
    if (
        not mode
        or mode[0] not in "rwax"
        or sum(c in "rwax" for c in mode) != 1
        or len(set(mode)) != len(mode)
        or set(mode) - set("rwaxbt+")
    ):
        raise ValueError(f"invalid mode: {mode!r}")
    if "b" in mode and "t" in mode:
        raise ValueError("can't have text and binary mode at once")
    plus = "+" in mode
    kind = mode[0]
    if kind == "r":
        return os.O_RDWR if plus else os.O_RDONLY
    base = os.O_RDWR if plus else os.O_WRONLY
    if kind == "w":
        return base | os.O_CREAT | os.O_TRUNC
    if kind == "a":
        return base | os.O_CREAT | os.O_APPEND
    return base | os.O_CREAT | os.O_EXCL  # "x"


class AsyncFile(Generic[AnyStr]):
    """An open file whose methods are awaitables.  Use as an async context manager and an
    async iterator over lines."""

    def __init__(self, fd: int, name: Any, mode: str, encoding: str, errors: str) -> None:
        self.fd = fd
        self.name = name
        self.mode = mode
        self.binary = "b" in mode
        self.closed = False
        self._encoding = encoding
        self._errors = errors
        self._decoder: codecs.IncrementalDecoder | None = (
            None if self.binary else codecs.getincrementaldecoder(encoding)(errors)
        )
        self._rbuf = b""  # bytes read for line scanning, not yet returned
        self._eof = False

    # -- reading -----------------------------------------------------------------------------

    async def _raw_read(self, n: int) -> bytes:
        if self._rbuf:
            data, self._rbuf = self._rbuf[:n], self._rbuf[n:]
            return data
        if self._eof:
            return b""
        data = await _io.read(self.fd, n)
        if not data:
            self._eof = True
        return data

    def _decode(self, data: bytes, final: bool = False) -> Any:
        if self._decoder is None:
            return data
        text = self._decoder.decode(data, final)
        return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text

    async def read(self, n: int = -1) -> AnyStr:
        """Read up to ``n`` bytes (characters are decoded from them in text mode), or
        everything to the end of the file when ``n`` < 0."""
        self._check_open()
        if n >= 0:
            data = await self._raw_read(n)
            out: AnyStr = self._decode(data, final=not data)
            return out
        parts = []
        while chunk := await self._raw_read(_CHUNK):
            parts.append(chunk)
        whole: AnyStr = self._decode(b"".join(parts), final=True)
        return whole

    async def readline(self) -> AnyStr:
        """One line, with its newline (empty at the end of the file)."""
        self._check_open()
        buf = self._rbuf
        self._rbuf = b""
        while True:
            nl = buf.find(b"\n")
            if nl >= 0:
                self._rbuf = buf[nl + 1 :]
                line: AnyStr = self._decode(buf[: nl + 1])
                return line
            if self._eof:
                last: AnyStr = self._decode(buf, final=True)
                return last
            data = await _io.read(self.fd, _CHUNK)
            if not data:
                self._eof = True
            buf += data

    async def readlines(self) -> list[AnyStr]:
        return [line async for line in self]

    def __aiter__(self) -> AsyncFile[AnyStr]:
        return self

    async def __anext__(self) -> AnyStr:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    # -- writing -----------------------------------------------------------------------------

    async def write(self, data: AnyStr) -> int:
        """Write all of ``data``; returns its length (characters in text mode)."""
        self._check_open()
        if self.binary != isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"write() argument must be {'bytes' if self.binary else 'str'}")
        raw = data.encode(self._encoding, self._errors) if isinstance(data, str) else data
        view = memoryview(raw)
        while view:
            n = await _io.write(self.fd, view)
            view = view[n:]
        return len(data)

    async def flush(self) -> None:
        """Nothing is buffered in user space: a no-op, for aiofiles compatibility."""

    async def fsync(self) -> None:
        await _io.fsync(self.fd)

    async def truncate(self, size: int) -> None:
        await _io.ftruncate(self.fd, size)

    # -- position and metadata ---------------------------------------------------------------

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the file position (lseek cannot block: inline).  Drops read-ahead."""
        self._check_open()
        if whence == os.SEEK_CUR:
            offset -= len(self._rbuf)
        self._rbuf = b""
        self._eof = False
        if self._decoder is not None:
            self._decoder.reset()
        return os.lseek(self.fd, offset, whence)

    async def tell(self) -> int:
        return os.lseek(self.fd, 0, os.SEEK_CUR) - len(self._rbuf)

    async def stat(self) -> os.stat_result:
        return await _io.fstat(self.fd)

    def fileno(self) -> int:
        return self.fd

    # -- closing -----------------------------------------------------------------------------

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await _io.close(self.fd)

    async def __aenter__(self) -> AsyncFile[AnyStr]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def __repr__(self) -> str:
        return f"<aiosys.AsyncFile name={self.name!r} mode={self.mode!r} fd={self.fd}>"


class _Opener:
    """``open_file(...)`` is both awaitable and an async context manager, as in aiofiles."""

    def __init__(self, path: Any, mode: str, encoding: str | None, errors: str | None) -> None:
        self._flags = _flags(mode)
        self._path = path
        self._mode = mode
        self._encoding = encoding or "utf-8"
        self._errors = errors or "strict"
        self._file: AsyncFile[Any] | None = None

    async def _open(self) -> AsyncFile[Any]:
        fd = await _io.open(self._path, self._flags, 0o666)
        return AsyncFile(fd, self._path, self._mode, self._encoding, self._errors)

    def __await__(self) -> Any:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncFile[Any]:
        self._file = await self._open()
        return self._file

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            await self._file.close()


def open_file(
    path: Any, mode: str = "r", *, encoding: str | None = None, errors: str | None = None
) -> _Opener:
    """Open a file for async use: ``async with aiosys.open_file(p) as f`` or
    ``f = await aiosys.open_file(p)``.  ``mode`` as for ``open()`` ("r", "rb", "w", "ab",
    "r+", "x"...); text mode decodes ``encoding`` (default UTF-8).

    :raises ValueError: for an invalid mode.
    :raises OSError: if the file cannot be opened (with ``filename``).
    """
    return _Opener(path, mode, encoding, errors)
