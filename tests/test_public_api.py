"""The public surface: every name re-exported once, all of them real, and the README's
example runs as written."""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
from pathlib import Path

import aiosys

ROOT = Path(__file__).resolve().parent.parent


def _exported_names() -> list[str]:
    tree = ast.parse((ROOT / "aiosys" / "__init__.py").read_text())
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            names += [alias.asname or alias.name for alias in node.names]
    return names


def test_every_public_name_is_exported_exactly_once() -> None:
    names = _exported_names()
    duplicates = {n for n in names if names.count(n) > 1}
    assert not duplicates
    assert len(names) > 40


def test_every_exported_name_resolves_and_awaitables_are_coroutine_functions() -> None:
    for name in _exported_names():
        obj = getattr(aiosys, name)
        assert obj is not None, name
    for name in ("read", "write", "write_all", "pread", "open", "close", "accept", "fstat"):
        # read/write/write_all are plain functions returning a coroutine (the netpoller's own
        # on a registered fd), marked so asyncio still sees coroutine functions.
        assert asyncio.iscoroutinefunction(getattr(aiosys, name)), name
    assert inspect.iscoroutinefunction(aiosys.syscall)
    assert callable(aiosys.run) and callable(aiosys.new_event_loop)


def test_readme_example_runs() -> None:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S)
    assert block is not None
    import os

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        exec(compile(block.group(1), "README.md", "exec"), {"__name__": "readme"})
    finally:
        os.chdir(cwd)


def test_write_all_reaches_files_and_pipes_alike(tmp_path: Path) -> None:
    import os

    payload = bytes(range(256)) * 300  # larger than a pipe buffer: needs several writes

    async def main() -> tuple[bytes, bytes]:
        path = tmp_path / "f"
        fd = await aiosys.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            await aiosys.write_all(fd, payload)
        finally:
            await aiosys.close(fd)
        r, w = os.pipe()
        try:
            import asyncio

            async def drain() -> bytes:
                chunks = []
                while sum(map(len, chunks)) < len(payload):
                    chunks.append(await aiosys.read(r, 65536))
                return b"".join(chunks)

            reader = asyncio.ensure_future(drain())
            await aiosys.write_all(w, memoryview(payload))
            got = await reader
        finally:
            await aiosys.close(r)
            await aiosys.close(w)
        return path.read_bytes(), got

    in_file, through_pipe = aiosys.run(main())
    assert in_file == payload and through_pipe == payload


def test_write_all_refuses_a_strided_buffer() -> None:
    import os

    import pytest

    async def main() -> None:
        r, w = os.pipe()
        try:
            with pytest.raises(TypeError):
                await aiosys.write_all(w, memoryview(b"abcdef")[::2])
        finally:
            os.close(r)
            os.close(w)

    aiosys.run(main())
