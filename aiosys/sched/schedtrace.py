"""``schedtrace``: a one-line scheduler summary every N ms, like ``GODEBUG=schedtrace=1000``,
and the merged counters behind ``aiosys.stats()``.

Go prints::

    SCHED 1004ms: gomaxprocs=4 idleprocs=4 threads=6 spinningthreads=0 idlethreads=3
      runqueue=0 [0 0 0 0]                              (one line; wrapped here)

aiosys prints the same head, with its own words for the same things, then its own counters::

    SCHED 1003ms: gomaxprocs=1 idleprocs=0 threads=5 spinningthreads=0 idlethreads=3 runqueue=0 [0]
      inline=812 handoffs=190 fast=190 slow=0 nowait=812/3 orphans=0     (one line too)

* gomaxprocs: Ps, one per event loop the scheduler knows (or sysmon watches)
* idleprocs: Ps parked in netpoll (``_Pidle``), when the P says so
* threads: the loop threads (M0, one per P) plus the pool's Ms (``m_threads``, else busy + idle)
* spinningthreads / idlethreads: Ms spinning for work / parked
* runqueue: calls queued for an M (the pool's queue depth); ``[...]`` per P: that P's calls
  in flight (handed off and not yet drained: queued, on an M, or completed and waiting for the
  P's netpoll step)
* then: inline hits, handoffs, exitsyscall fast / slow, RWF_NOWAIT hits/misses, orphans finalized

Like Go's, the line is written by sysmon (``aiosys/sched/sysmon.py``) to a stream of the
caller's choice, turned on by ``aiosys.trace.schedtrace(ms, file=...)`` or the environment
variable ``AIOSYS_SCHEDTRACE=1000``.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import sys
from collections.abc import Iterable, Mapping
from typing import IO, Any

__all__ = ["line", "parse", "merged_stats", "start", "stop"]

_P_IDLE = {"_Pidle", "idle", "Pidle"}


def _int(stats: Mapping[str, Any], *names: str) -> int:
    for n in names:
        v = stats.get(n)
        if isinstance(v, int):
            return v
    return 0


def _p_idle(p: Any) -> bool:
    status = getattr(p, "status", None)
    if status is None:
        status = getattr(p, "state", None)
    name = getattr(status, "name", status)
    return isinstance(name, str) and name in _P_IDLE


def _p_queue(p: Any) -> int:
    for attr in ("runq_len", "completions_pending", "queued"):
        v = getattr(p, attr, None)
        if callable(v):
            v = v()
        if isinstance(v, int):
            return v
    for attr in ("inflight", "completions", "runq"):
        v = getattr(p, attr, None)
        if v is not None:
            try:
                return len(v)
            except TypeError:
                pass
    return 0


def line(
    elapsed_ms: int,
    stats: Mapping[str, Any],
    procs: Iterable[Any] = (),
    loops: int = 0,
) -> str:
    """Format one schedtrace line from a stats snapshot and the P list."""
    ps = list(procs)
    nprocs = len(ps) or loops
    idle = sum(1 for p in ps if _p_idle(p))
    m_busy = _int(stats, "m_busy")
    m_idle = _int(stats, "m_idle")
    m_threads = _int(stats, "m_threads") or m_busy + m_idle
    spinning = _int(stats, "m_spinning", "spinning")
    per_p = " ".join(str(_p_queue(p)) for p in ps)
    return (
        f"SCHED {elapsed_ms}ms: gomaxprocs={nprocs} idleprocs={idle}"
        f" threads={nprocs + m_threads} spinningthreads={spinning}"
        f" idlethreads={m_idle} runqueue={_int(stats, 'queue_depth')} [{per_p}]"
        f" inline={_int(stats, 'inline_hits')} handoffs={_int(stats, 'handoffs')}"
        f" fast={_int(stats, 'exits_fast')} slow={_int(stats, 'exits_slow')}"
        f" nowait={_int(stats, 'nowait_hits')}/{_int(stats, 'nowait_misses')}"
        f" orphans={_int(stats, 'orphans_finalized')}"
    )


_LINE = re.compile(r"^SCHED (?P<ms>\d+)ms: (?P<head>[^\[]*)\[(?P<per_p>[\d ]*)\](?P<tail>.*)$")


def parse(text: str) -> dict[str, Any]:
    """Parse one schedtrace line back into numbers (tests, tools):
    ``{"ms": 1003, "gomaxprocs": 1, ..., "per_p": [0], "nowait": (812, 3)}``."""
    m = _LINE.match(text.strip())
    if m is None:
        raise ValueError(f"not a schedtrace line: {text!r}")
    out: dict[str, Any] = {"ms": int(m["ms"]), "per_p": [int(x) for x in m["per_p"].split()]}
    for part in (m["head"] + " " + m["tail"]).split():
        key, _, value = part.partition("=")
        if "/" in value:
            a, b = value.split("/", 1)
            out[key] = (int(a), int(b))
        else:
            out[key] = int(value)
    return out


def merged_stats() -> dict[str, int]:
    """``aiosys.stats()``: the scheduler's counters merged with the netpoller's.  A netpoll key
    that collides with a scheduler key is kept as ``netpoll_<key>``.  Either side may be absent
    (not built yet, or not imported): the other is returned alone."""
    out: dict[str, int] = {}
    with contextlib.suppress(ImportError, AttributeError):
        out.update(importlib.import_module("aiosys.sched.stats").snapshot())
    try:
        np_stats = dict(importlib.import_module("aiosys.netpoll").stats())
    except (ImportError, AttributeError):
        np_stats = {}
    for key, value in np_stats.items():
        if key in out:
            key = f"netpoll_{key}"
        out[key] = value
    return out


_REASON = "schedtrace"


def start(ms: float, file: IO[str] | None = None) -> None:
    """Write a schedtrace line every ``ms`` milliseconds to ``file`` (default stderr)."""
    from . import sysmon

    if ms <= 0:
        stop()
        return
    sysmon.require(_REASON, schedtrace_ms=float(ms), schedtrace_file=file or sys.stderr)


def stop() -> None:
    from . import sysmon

    s = sysmon.current()
    if s is not None:
        s.config.schedtrace_ms = 0.0
        s.config.schedtrace_file = None
    sysmon.release(_REASON)
