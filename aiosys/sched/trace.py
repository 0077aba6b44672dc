"""Structured events of the scheduler: every handoff, every M, every sysmon alarm.

The scheduler calls this module on its hot path, always behind one module-bool check::

    if trace.ENABLED:
        trace.entersyscall(g)

so that tracing costs one attribute load and a branch when it is off (the default).  Nothing
here configures logging or prints on its own: events go to a structlog logger, which is either
structlog's *current* configuration (``aiosys.trace.enable()`` without a renderer: the
application decides) or a private logger the caller asked for (``enable(renderer="json")``,
used by the CLI and the examples).  See ``aiosys/trace.py`` for the public switch.

Events (``event`` key, then fields):

``entersyscall``  syscall, fd, goid, p, queue_depth             (loop thread, G -> _Gsyscall)
``exitsyscall``   syscall, fd, goid, p, path (fast|slow), m (the M that ran it, when known),
                  wait_us (queued, waiting for an M), run_us (inside the syscall on the M),
                  total_us (t_enter -> t_end)
``m_spawn`` / ``m_exit``   m (the M's Linux tid), m_threads: the Ms are C pthreads that never
                  run Python, so sysmon reports them by sampling the pool (each round while
                  tracing is on); ``m_park`` / ``m_unpark``: count (Ms that went idle / woke
                  since the last round), m_idle.  The scheduler's own ``m_<kind>`` events
                  (``m_grow``) go through :func:`m_event` too.
``sysmon_alarm``  kind (loop_stalled, long_syscall, grow_pool, ...), and the alarm's fields

The µs figures come from the G record's nanotime stamps (``t_enter`` on the loop, ``t_start``
and ``t_end`` on the M); a stamp that is missing (0 or None) gives ``None``, never a negative.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Protocol

import structlog

__all__ = [
    "ENABLED",
    "GRecord",
    "entersyscall",
    "exitsyscall",
    "m_event",
    "sysmon_alarm",
    "set_logger",
    "get_logger",
    "alarm_listeners",
]

ENABLED: bool = False
"""Checked by the scheduler before it calls any function below.  Set by ``aiosys.trace``."""

LOGGER_NAME = "aiosys.sched"

# None: resolve structlog's current configuration at each event (a lazy proxy), so whatever
# the application (or ``structlog.testing.capture_logs``) configured is honoured.
_logger: Any = structlog.get_logger(LOGGER_NAME)
_lock = threading.Lock()

alarm_listeners: list[Any] = []
"""Callables ``f(kind, fields)`` told of every sysmon alarm, traced or not (tests, CLI)."""


class GRecord(Protocol):
    """What trace reads from the scheduler's G record (``aiosys/sched/g.py``)."""

    goid: int
    syscall: str
    fd: int
    p_id: int
    t_enter: int
    t_start: int
    t_end: int
    queue_depth: int


def set_logger(logger: Any | None) -> None:
    """Send events to ``logger`` (a structlog bound logger), or back to structlog's current
    configuration with ``None``."""
    global _logger
    with _lock:
        _logger = structlog.get_logger(LOGGER_NAME) if logger is None else logger


def get_logger() -> Any:
    return _logger


def _us(start: int | None, end: int | None) -> float | None:
    if not start or not end:
        return None
    d = end - start
    return round(d / 1000.0, 1) if d > 0 else 0.0


def entersyscall(g: GRecord) -> None:
    """entersyscall: the G left its P and was queued for an M."""
    _logger.info(
        "entersyscall",
        syscall=g.syscall,
        fd=g.fd,
        goid=g.goid,
        p=g.p_id,
        queue_depth=g.queue_depth,
    )


def exitsyscall(g: GRecord, path: str) -> None:
    """exitsyscall: the M finished; ``path`` is ``"fast"`` (completion queued on the G's own
    P) or ``"slow"`` (exitsyscall0: P gone or G cancelled, orphan finalizer ran)."""
    t_enter = g.t_enter
    t_start = g.t_start
    t_end = g.t_end
    _logger.info(
        "exitsyscall",
        syscall=g.syscall,
        fd=g.fd,
        goid=g.goid,
        p=g.p_id,
        path=path,
        m=getattr(g, "m_id", None),
        wait_us=_us(t_enter, t_start),
        run_us=_us(t_start, t_end),
        total_us=_us(t_enter, t_end),
    )


def m_event(kind: str, m_id: int, **fields: Any) -> None:
    """An M changed state: ``kind`` is spawn, park, unpark, exit (event ``m_<kind>``)."""
    event = kind if kind.startswith("m_") else "m_" + kind
    _logger.info(event, m=m_id, **fields)


_WARNING_KINDS = frozenset({"loop_stalled", "long_syscall", "pool_capped"})


def sysmon_alarm(kind: str, **fields: Any) -> None:
    """A sysmon finding.  Listeners always hear it; the log only when tracing is on."""
    for listener in list(alarm_listeners):
        with contextlib.suppress(Exception):  # a listener must never kill sysmon
            listener(kind, fields)
    if not ENABLED:
        return
    if kind in _WARNING_KINDS:
        _logger.warning("sysmon_alarm", kind=kind, **fields)
    else:
        _logger.info("sysmon_alarm", kind=kind, **fields)
