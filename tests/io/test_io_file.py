"""aiosys.open_file: the aiofiles-like async file object."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from aiosys._file import open_file

Run = Callable[[Coroutine[Any, Any, Any]], Any]


def test_read_write_append_and_iterate_lines(run: Run, tmp_path: Path) -> None:
    p = tmp_path / "t.txt"

    async def body() -> None:
        async with open_file(p, "w") as f:
            assert await f.write("héllo\nworld\n") == 12
        async with open_file(p, "a") as f:
            await f.write("last line without newline")
        async with open_file(p) as f:
            assert await f.read() == "héllo\nworld\nlast line without newline"
        async with open_file(p) as f:
            lines = [line async for line in f]
        assert lines == ["héllo\n", "world\n", "last line without newline"]
        async with open_file(p, "rb") as f:
            assert await f.read(3) == "hé".encode()
            assert await f.readline() == b"llo\n"
            assert await f.tell() == 7
            await f.seek(0)
            assert await f.readlines() == [b"h\xc3\xa9llo\n", b"world\n",
                                           b"last line without newline"]
            st = await f.stat()
            assert st.st_size == p.stat().st_size

    run(body())


def test_await_form_and_errors(run: Run, tmp_path: Path) -> None:
    async def body() -> None:
        f = await open_file(tmp_path / "b", "xb")
        try:
            with pytest.raises(TypeError):
                await f.write("text")  # type: ignore[arg-type]
            await f.write(b"\r\nabc")
            await f.fsync()
            await f.truncate(3)
        finally:
            await f.close()
        with pytest.raises(ValueError, match="closed file"):
            await f.read()
        with pytest.raises(FileExistsError):
            await open_file(tmp_path / "b", "x")
        async with open_file(tmp_path / "b") as g:
            assert await g.read() == "\na"  # \r\n reads as \n in text mode
        with pytest.raises(ValueError):
            open_file(tmp_path / "b", "rw")
        with pytest.raises(FileNotFoundError):
            await open_file(tmp_path / "missing")

    run(body())


def test_large_file_lines(run: Run, tmp_path: Path) -> None:
    p = tmp_path / "big"
    want = [f"line {i}\n" for i in range(20000)]
    p.write_text("".join(want))

    async def body() -> None:
        async with open_file(p) as f:
            got = [line async for line in f]
        assert got == want

    run(body())
