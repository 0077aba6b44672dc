"""Late-bound access to the layers the CLI drives, so that the CLI keeps working (and says
what is missing) while a layer has not landed yet, and mypy does not depend on their names."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from typing import Any


def module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def public(name: str) -> Any:
    """``aiosys.<name>`` if the lead re-exports it, else the owning layer's, else None."""
    for mod in ("aiosys", "aiosys._io", "aiosys.netpoll"):
        m = module(mod)
        if m is not None and hasattr(m, name):
            return getattr(m, name)
    return None


def have_io(*names: str) -> bool:
    return all(public(n) is not None for n in names)


def loop_factory() -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    """The aiosys event loop if it exists, else the stdlib loop (with the name to print)."""
    f = public("new_event_loop")
    if f is not None:
        return f, "aiosys"
    return asyncio.new_event_loop, "stdlib (aiosys.new_event_loop has not landed)"


def stats() -> dict[str, int]:
    """``aiosys.stats()`` (scheduler + netpoller counters), or the merged counters from
    ``aiosys.trace.stats`` until the lead re-exports it, or the netpoller's alone."""
    fns = (
        getattr(module("aiosys"), "stats", None),
        getattr(module("aiosys.trace"), "stats", None),
        getattr(module("aiosys.netpoll"), "stats", None),
    )
    for fn in fns:
        if fn is not None:
            try:
                return dict(fn())
            except Exception:
                continue
    return {}


async def maybe_await(x: Any) -> Any:
    if asyncio.iscoroutine(x) or isinstance(x, asyncio.Future):
        return await x
    return x
