"""Turn aiosys's structured events, sysmon and schedtrace on and off.

aiosys never configures logging and never prints on its own.  Everything here is opt-in:

>>> import aiosys.trace
>>> aiosys.trace.enable()                  # events through structlog's current configuration
>>> aiosys.trace.enable(renderer="json")   # or a private JSON-lines logger (stderr by default)
>>> aiosys.trace.schedtrace(1000)          # SCHED ... line every second, like GODEBUG
>>> aiosys.trace.disable()

Environment variables, read once when this module is imported (``import aiosys`` imports it):

* ``AIOSYS_TRACE=1`` (or ``on``/``true``): ``enable()``; ``AIOSYS_TRACE=json`` or ``console``:
  ``enable(renderer=...)`` writing to stderr.
* ``AIOSYS_SCHEDTRACE=1000``: ``schedtrace(1000)`` to stderr.

Events: ``entersyscall``, ``exitsyscall`` (path fast|slow, wait_us, run_us), ``m_spawn`` /
``m_park`` / ``m_exit``, ``sysmon_alarm`` (kind loop_stalled with the loop thread's stack,
long_syscall, grow_pool, ...).  Fields are listed in ``aiosys/sched/trace.py``.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any, Literal, TextIO

import structlog

from aiosys.sched import schedtrace as _schedtrace
from aiosys.sched import sysmon as _sysmon
from aiosys.sched import trace as _trace

__all__ = [
    "enable",
    "disable",
    "enabled",
    "schedtrace",
    "watch_loop",
    "stats",
    "make_logger",
]

Renderer = Literal["console", "json"]

_SYSMON_REASON = "trace"


def make_logger(renderer: Renderer, file: TextIO | None = None) -> Any:
    """A private structlog logger rendering to ``file`` (default stderr): it does not touch
    structlog's global configuration."""
    out = file if file is not None else sys.stderr
    processors: list[Any] = [structlog.processors.add_log_level]
    if renderer == "json":
        processors += [
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ]
    elif renderer == "console":
        isatty = getattr(out, "isatty", None)
        colors = bool(isatty()) if callable(isatty) else False
        processors += [
            structlog.processors.TimeStamper(fmt="%H:%M:%S.%f", utc=False),
            structlog.dev.ConsoleRenderer(colors=colors),
        ]
    else:
        raise ValueError(f"renderer must be 'console', 'json' or None, not {renderer!r}")
    # A concrete bound logger, not a lazy proxy: no per-event configuration lookup.
    # WriteLogger: structlog's faster sibling of PrintLogger (one write + flush per event).
    return structlog.wrap_logger(
        structlog.WriteLogger(out),
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(0),
    ).bind()


def enable(
    renderer: Renderer | None = None,
    *,
    file: TextIO | None = None,
    logger: Any = None,
    sysmon: bool = True,
    stall_ms: float = 100.0,
    syscall_ms: float = 1000.0,
) -> None:
    """Turn the scheduler's structured events on.

    ``renderer=None`` (default) emits through structlog's current configuration: the
    application decides where events go.  ``"console"`` / ``"json"`` use a private logger
    writing to ``file`` (default stderr); ``logger`` passes any structlog logger instead.
    ``sysmon`` starts the monitor thread: loops stalled longer than ``stall_ms`` and handed-off
    calls in flight longer than ``syscall_ms`` are reported as ``sysmon_alarm`` events.
    If called from a running loop, that loop is watched for stalls at once (loops the scheduler
    knows are watched as sysmon finds them).
    """
    if logger is None and renderer is not None:
        logger = make_logger(renderer, file)
    _trace.set_logger(logger)
    _trace.ENABLED = True
    if sysmon:
        s = _sysmon.require(_SYSMON_REASON, stall_ms=float(stall_ms), syscall_ms=float(syscall_ms))
        loop = _sysmon._running_loop_or_none()
        if loop is not None:
            s.watch_loop(loop)
    else:
        _sysmon.release(_SYSMON_REASON)


def disable() -> None:
    """Turn events off (the hot path is back to one bool check) and stop sysmon unless
    schedtrace still needs it."""
    _trace.ENABLED = False
    _trace.set_logger(None)
    _sysmon.release(_SYSMON_REASON)


def enabled() -> bool:
    return _trace.ENABLED


def schedtrace(ms: float | None, file: IO[str] | None = None) -> None:
    """Write a ``SCHED ...`` summary line every ``ms`` milliseconds to ``file`` (default
    stderr), like ``GODEBUG=schedtrace=ms``; ``schedtrace(None)`` or ``0`` stops it."""
    if not ms:
        _schedtrace.stop()
    else:
        _schedtrace.start(ms, file)


def watch_loop(loop: Any = None) -> None:
    """Watch ``loop`` (default: the running one) for stalls; needs ``enable()`` first (sysmon
    running).  Loops the scheduler knows are watched without this."""
    _sysmon.watch_loop(loop)


def stats() -> dict[str, int]:
    """The scheduler's counters merged with the netpoller's (``aiosys.stats()``)."""
    return _schedtrace.merged_stats()


def _from_environment() -> None:
    mode = os.environ.get("AIOSYS_TRACE", "").strip().lower()
    if mode in ("1", "on", "true", "yes"):
        enable()
    elif mode in ("json", "console"):
        enable(renderer=mode)  # type: ignore[arg-type]
    ms = os.environ.get("AIOSYS_SCHEDTRACE", "").strip()
    if ms:
        try:
            value = float(ms)
        except ValueError:
            value = 0.0
        if value > 0:
            schedtrace(value)


_from_environment()
