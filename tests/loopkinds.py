"""Run the same test body on the aiosys loop, the stdlib loop and uvloop (uvloop's
``Test_UV_TCP(_TestTCP)`` habit).

    from loopkinds import loop_kind, run_in   # noqa: F401  (loop_kind is a fixture)

    def test_something(loop_kind: str) -> None:
        async def body() -> None:
            ...
        run_in(loop_kind, body)

``run_in`` makes a fresh loop of that kind, runs ``body()`` with a bounded timeout, then
cancels leftover tasks, shuts down async generators and the default executor, detaches the
aiosys netpoller (attach mode), and closes the loop: no fd or thread outlives the call, so
the suite's leak check stays meaningful.  On "asyncio" and "uvloop" the aiosys awaitables
work in attach mode; on "aiosys" the netpoller is the loop's selector.

Stable API: ``LOOP_KINDS``, ``loop_kind`` (fixture), ``new_loop(kind)``, ``run_in(kind, fn,
timeout=)``, ``anyio_run(kind, fn)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

import aiosys.netpoll as netpoll

T = TypeVar("T")

LOOP_KINDS = ("aiosys", "asyncio", "uvloop")


def _warm_up_uvloop() -> None:
    """libuv opens a process-wide signal pipe with its first loop and keeps it for the life of
    the process; open it now, at import, so the per-test leak check does not blame the first
    uvloop test for it."""
    import uvloop

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()


_warm_up_uvloop()


@pytest.fixture(params=LOOP_KINDS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    """Parametrizes a test over the three loop kinds."""
    return str(request.param)


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    """A new, not running, loop of ``kind`` (the caller closes it)."""
    if kind == "aiosys":
        return netpoll.new_event_loop()
    if kind == "asyncio":
        return asyncio.SelectorEventLoop()
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()  # type: ignore[no-any-return]
    raise ValueError(f"unknown loop kind {kind!r}; expected one of {LOOP_KINDS}")


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    if not tasks:
        return
    for t in tasks:
        t.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


async def _detach() -> None:
    netpoll.detach()


def run_in(kind: str, fn: Callable[[], Awaitable[T]], *, timeout: float = 30.0) -> T:
    """Run ``fn()`` to completion on a fresh loop of ``kind`` and clean everything up.

    ``timeout`` bounds the body (``TimeoutError`` past it): a hung test fails, it does not
    hang the suite.  Never a timing assertion.
    """
    loop = new_loop(kind)
    try:

        async def main() -> T:
            return await asyncio.wait_for(fn(), timeout)

        return loop.run_until_complete(main())
    finally:
        try:
            _cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.run_until_complete(_detach())
        finally:
            loop.close()


def anyio_run(kind: str, fn: Callable[[], Awaitable[T]]) -> T:
    """``anyio.run(fn)`` on the asyncio backend with the loop of ``kind``."""
    import anyio

    options: dict[str, Any]
    if kind == "aiosys":
        options = {"loop_factory": netpoll.new_event_loop}
    elif kind == "uvloop":
        options = {"use_uvloop": True}
    else:
        options = {}

    async def main() -> T:
        try:
            return await fn()
        finally:
            netpoll.detach()

    return anyio.run(main, backend="asyncio", backend_options=options)
