"""Loops for the observability tests: the aiosys loop (when the netpoller has landed), the
stdlib loop and uvloop, each closed cleanly (an attached netpoller detached first)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import uvloop

import aiosys.netpoll as netpoll

T = TypeVar("T")

LOOP_KINDS = ["aiosys", "asyncio", "uvloop"]


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "aiosys":
        factory = getattr(netpoll, "new_event_loop", None)
        if factory is None:
            pytest.skip("aiosys.netpoll.new_event_loop has not landed")
        loop: asyncio.AbstractEventLoop = factory()
        return loop
    if kind == "uvloop":
        return uvloop.new_event_loop()  # type: ignore[no-any-return]
    return asyncio.SelectorEventLoop()


async def _detach() -> None:
    detach: Any = getattr(netpoll, "detach", None)
    if detach is not None:
        detach()


def run_in(kind: str, fn: Callable[[], Awaitable[T]], timeout: float = 20.0) -> T:
    loop = new_loop(kind)
    try:

        async def main() -> T:
            return await asyncio.wait_for(fn(), timeout)

        return loop.run_until_complete(main())
    finally:
        try:
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in tasks:
                t.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            if kind != "aiosys":
                loop.run_until_complete(_detach())
        finally:
            loop.close()
