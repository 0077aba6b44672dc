"""Run each body on the aiosys loop, the stdlib loop and uvloop (uvloop's habit: one test
body against every loop).  Shared by tests/io and tests/sched: their conftest.py files import
the ``run`` fixture from here, and tests import ``LOOP_KINDS``/``run_on`` by this module's name
(``from conftest import`` would pick whichever conftest pytest imported last)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
import uvloop

import aiosys.netpoll as netpoll

T = TypeVar("T")

# The aiosys loop joins once the netpoller provides it.
LOOP_KINDS = (["aiosys"] if hasattr(netpoll, "new_event_loop") else []) + ["asyncio", "uvloop"]

# libuv opens process-wide fds (its signal pipe) with the first loop: open them now, outside
# any test's leak check.
uvloop.new_event_loop().close()


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "aiosys":
        return netpoll.new_event_loop()
    if kind == "uvloop":
        return uvloop.new_event_loop()  # type: ignore[no-any-return]
    return asyncio.new_event_loop()


def run_on(kind: str, coro: Coroutine[Any, Any, T]) -> T:
    loop = new_loop(kind)
    try:
        return loop.run_until_complete(coro)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            detach = getattr(netpoll, "detach", None)
            if kind != "aiosys" and detach is not None:
                detach(loop)  # an attached netpoller's epoll fd goes with the loop
            loop.close()


@pytest.fixture(params=LOOP_KINDS)
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, T]], T]:
    kind: str = request.param

    def runner(coro: Coroutine[Any, Any, T]) -> T:
        return run_on(kind, coro)

    return runner
