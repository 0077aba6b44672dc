"""Scheduler counters: plain integers on one module-level object, always on.

Incrementing one costs an attribute load and store on the loop thread (no lock: each counter
is written by loop threads only, and a lost increment under two loops in two threads is an
accepted inaccuracy of a statistic, never of behaviour).  The pool's own counters (M counts
by state, queue depth, spawned/exited) are read from C at :func:`snapshot` time.
"""

from __future__ import annotations

from ..native import _mpool

__all__ = ["Stats", "counters", "snapshot"]


class Stats:
    """One field per route and path.  Invariant (when no call is in flight):
    ``handoffs == exits_fast + exits_slow + withdrawn``."""

    inline_hits: int
    inline_calls: int
    handoffs: int
    handoffs_block: int
    exits_fast: int
    exits_slow: int
    withdrawn: int
    nowait_hits: int
    nowait_misses: int
    nowait_disabled: int
    orphans_finalized: int
    orphan_fds_closed: int
    orphan_bytes_kept: int
    orphan_writes_reported: int
    netpoll_waits: int
    netpoll_wakeups: int
    drains: int
    psyscall_enters: int
    pool_rejected: int

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        for name in _NAMES:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in _NAMES}


_NAMES = tuple(Stats.__annotations__)
counters = Stats()


def snapshot() -> dict[str, int]:
    """Every scheduler counter plus the pool's (``m_busy``, ``m_idle``, ``queue_depth``...)."""
    out = counters.as_dict()
    pool = _mpool.stats()
    out.update(pool)
    return out
