"""The aiosys loop's per-wakeup path, without the Python frames asyncio spends on it.

Every netpoll wakeup on a pure-Python asyncio loop runs, besides the task step itself:
``create_future`` (a Python method), ``Future.__init__`` calling ``loop.get_debug()`` (a
Python method), and on ``set_result`` ``call_soon`` -> ``_check_closed`` -> ``_call_soon`` ->
``Handle.__init__`` (which calls ``get_debug()`` again).  On a 64-byte echo that was six of the
nineteen Python frames per request.  uvloop spends none of them: its loop is C.

:class:`LeanCallbacks` removes what it can while keeping asyncio's behaviour exactly:

* ``get_debug`` and ``create_future`` are bound per instance to C callables (an
  ``itertools.repeat(flag).__next__``, and ``Future(loop=self)`` from ``csrc/hotpath.c``).  The C
  Future looks ``get_debug`` up on the instance, where an instance attribute wins over the
  class's method, so neither call enters the interpreter.  ``set_debug`` rebinds the flag.
* ``call_soon`` is C (``csrc/hotpath.c``, bound per instance like the two above) when the
  loop is open and not in debug mode: it builds a genuine asyncio ``Handle`` without running
  ``Handle.__init__``.  Closed or debug loops take asyncio's own path (the same errors and
  the same checks).  Where the C side refuses this Python's ``Handle`` layout, the Python
  ``call_soon`` below (one frame instead of three) is used instead.

Nothing else changes: handles are asyncio ``Handle`` objects, ``_ready`` is asyncio's deque.
"""

from __future__ import annotations

import asyncio
import itertools
from asyncio import format_helpers
from collections.abc import Callable
from contextvars import Context
from typing import Any, TypeVarTuple

from aiosys.native import _lowlevel as _ll

_Handle = asyncio.Handle
_Ts = TypeVarTuple("_Ts")


class Handle(asyncio.Handle):
    """The aiosys loop's ``call_soon`` handles: an ``asyncio.Handle`` whose ``_run`` is C
    (``hotpath.c``), installed by :func:`_c_call_soon_binder`."""

    __slots__ = ()


def _report(handle: asyncio.Handle, exc: BaseException) -> None:
    """A callback run by C ``Handle._run`` raised: what ``asyncio.Handle._run`` does then."""
    h: Any = handle
    cb = format_helpers._format_callback_source(h._callback, h._args)
    context: dict[str, Any] = {
        "message": f"Exception in callback {cb}",
        "exception": exc,
        "handle": handle,
    }
    if h._source_traceback:
        context["source_traceback"] = h._source_traceback
    h._loop.call_exception_handler(context)


def _c_call_soon_binder() -> Callable[..., Any] | None:
    try:
        _ll.HOT["hot_init"](Handle, _report)
    except TypeError:  # a Handle whose slots hotpath.c does not know
        return None
    return _ll.HOT["hot_bind_call_soon"]


_bind_c_call_soon = _c_call_soon_binder()


class LeanCallbacks(asyncio.BaseEventLoop):
    """Mixin for a ``BaseEventLoop`` subclass: cheap ``create_future``/``get_debug``/
    ``call_soon``.  Call :meth:`_bind_lean` at the end of ``__init__``."""

    _debug: bool
    _closed: bool
    _ready: Any

    def _bind_lean(self) -> None:
        # Instance attributes on purpose (see the module docstring).  The C callables hold
        # the loop: a cycle the garbage collector breaks once the loop is dropped.
        self.create_future = _ll.HOT["hot_bind_create_future"](asyncio.Future, self)  # type: ignore[method-assign]
        self._bind_debug_flag()
        self._bind_call_soon()

    def _bind_debug_flag(self) -> None:
        self.get_debug = itertools.repeat(bool(self._debug)).__next__  # type: ignore[method-assign]

    def _bind_call_soon(self) -> None:
        # The C call_soon does not check the loop's state: it is bound only while the loop
        # is open and not in debug mode.  Otherwise the class's call_soon (below) runs.
        if _bind_c_call_soon is not None and not self._closed and not self._debug:
            slow = super().call_soon  # asyncio's, for calls the C side does not take
            self.call_soon = _bind_c_call_soon(self, self._ready.append, slow)  # type: ignore[method-assign]
        else:
            self.__dict__.pop("call_soon", None)

    def set_debug(self, enabled: bool) -> None:
        super().set_debug(enabled)
        self._bind_debug_flag()
        if hasattr(self, "_ready"):  # BaseEventLoop.__init__ calls this too
            self._bind_call_soon()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._closed:
                self.__dict__.pop("call_soon", None)

    def call_soon(
        self,
        callback: Callable[[*_Ts], object],
        *args: *_Ts,
        context: Context | None = None,
    ) -> asyncio.Handle:
        if self._closed or self._debug:
            handle = super().call_soon(callback, *args, context=context)
            tb = handle._source_traceback  # type: ignore[attr-defined]
            if tb:
                del tb[-1]  # this frame, as asyncio drops its own _call_soon
            return handle
        handle = _Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

