"""Plain functions that return a coroutine, marked so that they look like ``async def``."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

_C = TypeVar("_C", bound=Callable[..., Any])


def coroutine_function(f: _C) -> _C:
    """Mark a plain function that always returns a coroutine as a coroutine function, for
    ``asyncio.iscoroutinefunction`` (and ``inspect`` on Python 3.12+).

    The hot awaitables are such functions: they look the fd up and return the coroutine that
    does the work, so a call costs one coroutine and no wrapper frame."""
    f._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]
    mark = getattr(inspect, "markcoroutinefunction", None)
    return mark(f) if mark is not None else f
