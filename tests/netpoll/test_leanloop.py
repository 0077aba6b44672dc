"""The aiosys loop's lean callback path (_leanloop.py, csrc/hotpath.c): asyncio's behaviour,
without its Python frames."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from typing import Any

import pytest

import aiosys

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


def test_call_soon_returns_asyncio_handles_that_run_in_order_and_cancel() -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        got: list[Any] = []
        h1 = loop.call_soon(got.append, 1)
        h2 = loop.call_soon(got.append, 2)
        h3 = loop.call_soon(got.append, 3)
        assert all(isinstance(h, asyncio.Handle) for h in (h1, h2, h3))
        assert not isinstance(h1, asyncio.TimerHandle)
        h2.cancel()
        assert h2.cancelled() and not h1.cancelled()
        assert "append" in repr(h1)
        await asyncio.sleep(0)
        return got

    assert aiosys.run(main()) == [1, 3]


def test_callbacks_run_in_the_callers_context_or_the_given_one() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        seen: list[str] = []
        var.set("caller")
        loop.call_soon(lambda: seen.append(var.get()))
        other = contextvars.Context()
        loop.call_soon(lambda: seen.append(var.get()), context=other)
        var.set("later")  # the first callback's context was copied at call_soon time
        await asyncio.sleep(0)
        return seen

    assert aiosys.run(main()) == ["caller", "unset"]


def test_a_raising_callback_goes_to_the_exception_handler_as_in_asyncio() -> None:
    async def main() -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        reports: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, ctx: reports.append(ctx))

        def boom() -> None:
            raise ValueError("boom")

        h = loop.call_soon(boom)
        after: list[int] = []
        loop.call_soon(after.append, 1)  # the next callback still runs
        await asyncio.sleep(0)
        assert after == [1]
        assert reports[0]["handle"] is h
        return reports

    (ctx,) = aiosys.run(main())
    assert isinstance(ctx["exception"], ValueError)
    assert ctx["message"].startswith("Exception in callback ")
    assert "boom" in ctx["message"]
    assert ctx["exception"].__traceback__ is not None


def test_keyboard_interrupt_from_a_callback_propagates() -> None:
    loop = aiosys.new_event_loop()
    try:
        def interrupt() -> None:
            raise KeyboardInterrupt

        loop.call_soon(interrupt)
        loop.call_soon(loop.stop)
        with pytest.raises(KeyboardInterrupt):
            loop.run_forever()
    finally:
        loop.close()


def test_call_soon_on_a_closed_loop_raises_and_bad_calls_are_type_errors() -> None:
    loop = aiosys.new_event_loop()
    with pytest.raises(TypeError):
        loop.call_soon()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        loop.call_soon(print, nope=1)  # type: ignore[call-arg]
    loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_soon(print)


def test_debug_mode_keeps_asyncio_checks_and_tracebacks() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert loop.get_debug()
        h = loop.call_soon(print)
        assert h._source_traceback  # type: ignore[attr-defined]
        h.cancel()
        with pytest.raises(TypeError):
            loop.call_soon(42)  # type: ignore[arg-type]  # debug: callable check
        fut = loop.create_future()
        assert fut._source_traceback  # type: ignore[attr-defined]
        fut.cancel()

    aiosys.run(main(), debug=True)


def test_set_debug_flips_get_debug_and_futures_belong_to_the_loop() -> None:
    loop = aiosys.new_event_loop()
    try:
        for flag in itertools.islice(itertools.cycle([True, False]), 4):
            loop.set_debug(flag)
            assert loop.get_debug() is flag
        fut = loop.create_future()
        assert fut.get_loop() is loop
        fut.cancel()
    finally:
        loop.close()


def test_turning_debug_on_at_run_time_restores_asyncio_checks() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_soon(42)  # type: ignore[arg-type]  # not debug: no check (as asyncio)
        loop.set_debug(True)
        with pytest.raises(TypeError):
            loop.call_soon(42)  # type: ignore[arg-type]
        loop.set_debug(False)
        h = loop.call_soon(print)
        assert isinstance(h, asyncio.Handle)
        h.cancel()

    loop = aiosys.new_event_loop()
    loop.set_exception_handler(lambda _l, _c: None)  # the 42 "callback" fails when run
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()

