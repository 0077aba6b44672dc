"""The public aiosys surface as the reliability tests use it.

The lead re-exports the layers from ``aiosys/__init__.py``; until a name is there, the same
function is taken from the layer that defines it (``aiosys._io`` for the dispatching
awaitables, then ``aiosys.netpoll`` for the pollable-fd ones).  Tests written against this
keep working, unchanged, once the re-exports land.
"""

from __future__ import annotations

import contextlib
import importlib
from types import ModuleType
from typing import Any


def _modules() -> list[ModuleType]:
    mods = []
    for name in ("aiosys", "aiosys._io", "aiosys.netpoll"):
        with contextlib.suppress(ImportError):
            mods.append(importlib.import_module(name))
    return mods


class _Api:
    def __getattr__(self, name: str) -> Any:
        for mod in _modules():
            if hasattr(mod, name):
                return getattr(mod, name)
        raise AttributeError(f"aiosys has no {name!r} in this tree")

    def has(self, *names: str) -> bool:
        return all(any(hasattr(m, n) for m in _modules()) for n in names)


aio: Any = _Api()
