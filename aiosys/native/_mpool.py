"""The one Python module that touches ``ffi``/``lib`` for the C M pool (``csrc/pool.c``).

The pool is process-wide: worker pthreads (Go's Ms) that run handed-off system calls without
the GIL and publish each completion on the list of the P (event loop) that submitted it.  This
module only marshals: the scheduling decisions (when to hand off, what a completion means)
live in :mod:`aiosys.sched`.  Every failure is an ``OSError`` with the kernel's errno.

Spinning is gated on the CPUs this process may use (``os.sched_getaffinity``), as Go gates
spinning Ms on GOMAXPROCS: measured here, spinning with one usable CPU made a handoff 2.6x
slower than ``run_in_executor``, and with two it halved the unpinned latency.
"""

from __future__ import annotations

import errno
import os
from typing import Final

from ._lowlevel import check, oserror
from ._native import ffi, lib

__all__ = [
    "COMP_WORDS",
    "CompletionBuffer",
    "PoolExhaustedError",
    "configure",
    "drain",
    "grow",
    "park",
    "stats",
    "submit",
]

COMP_WORDS: Final[int] = lib.AIOSYS_POOL_COMP_WORDS
"""Words per completion from :func:`drain`: slot, result, t_start, t_end, m_id."""
MAX_P: Final[int] = lib.AIOSYS_POOL_MAX_P
SLOTS: Final[int] = lib.AIOSYS_POOL_SLOTS
MAX_THREADS: Final[int] = lib.AIOSYS_POOL_MAX_THREADS
FULL_WAIT: Final[int] = lib.AIOSYS_POOL_FULL_WAIT
FULL_ERROR: Final[int] = lib.AIOSYS_POOL_FULL_ERROR
F_CLOSE_ORPHAN: Final[int] = lib.AIOSYS_POOL_F_CLOSE_ORPHAN
F_DEFER_WAKE: Final[int] = lib.AIOSYS_POOL_F_DEFER_WAKE
F_YIELD: Final[int] = lib.AIOSYS_POOL_F_YIELD

_STAT_NAMES: Final = (
    "m_threads",
    "m_idle",
    "m_spinning",
    "m_busy",
    "queue_depth",
    "m_spawned",
    "m_exited",
    "m_completed",
    "m_eintr_retries",
    "m_wakeups",
    "m_spawn_failures",
    "m_rejected",
    "m_orphans_pending",
    "m_max",
    "m_monitor_grows",
    "m_epoch",
)


def usable_cpus() -> int:
    """CPUs this process may run on (Go's GOMAXPROCS default)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# Measured on the 2-vCPU guests (DESIGN.md): ~20 us for the loop, ~50 us for an idle M.
LOOP_SPIN_NS: Final = 20_000
WORKER_SPIN_NS: Final = 50_000


class PoolExhaustedError(BlockingIOError):
    """The M pool is at its cap with every M busy (``full="error"``), or no slot is free.
    An ``OSError`` with errno EAGAIN: back-pressure, retry later or raise the cap."""


def configure(
    *,
    max_threads: int,
    idle_timeout: float,
    worker_spin_ns: int,
    full_error: bool,
) -> None:
    """Set the pool's cap, idle exit time (seconds), idle-M spin and behaviour at the cap."""
    check(
        int(
            lib.aiosys_pool_configure(
                max_threads,
                int(idle_timeout * 1e9),
                worker_spin_ns,
                FULL_ERROR if full_error else FULL_WAIT,
            )
        )
    )


def configure_growth(*, eager_threads: int, grow_after: float) -> None:
    """Ms started at once on demand, and how long (seconds) a queued call may wait for a busy
    pool before the pool's monitor starts another M (Go's sysmon retaking a P from an M
    stuck in a syscall)."""
    check(int(lib.aiosys_pool_configure_growth(eager_threads, int(grow_after * 1e9))))


def p_register(efd: int, attach: bool) -> int:
    """Register a P (an event loop) and its wakeup eventfd; returns the P id."""
    return check(int(lib.aiosys_pool_p_register(efd, 1 if attach else 0)))


def p_set_attach(p_id: int, attach: bool) -> None:
    check(int(lib.aiosys_pool_p_set_attach(p_id, 1 if attach else 0)))


def p_unregister(p_id: int) -> int:
    """Forget a P: its unfinished slots complete onto the orphan list (``drain(-1, ...)``).
    Returns how many were still in flight."""
    return check(int(lib.aiosys_pool_p_unregister(p_id)))


_submit = lib.aiosys_pool_submit


def submit(
    p_id: int, trap: int, a1: int, a2: int, a3: int, a4: int, a5: int, a6: int, flags: int = 0
) -> int:
    """Queue one raw syscall for an M; returns its slot.

    :raises PoolExhaustedError: no free slot, or at the cap with ``full="error"``.
    :raises OSError: anything else the pool refused (EINVAL for a dead P).
    """
    r: int = _submit(p_id, trap, a1, a2, a3, a4, a5, a6, flags)
    if r < 0:
        if r == -errno.EAGAIN:
            raise PoolExhaustedError(errno.EAGAIN, "aiosys M pool exhausted (every M busy at "
                                     "the cap, or every slot in use)")
        raise oserror(-r)
    return r


kick = lib.aiosys_pool_kick
"""Wake an M for calls submitted with ``F_DEFER_WAKE`` (once per batch)."""


def withdraw(p_id: int, slot: int) -> bool:
    """Take back a queued slot no M has started: True if the syscall will never run."""
    return check(int(lib.aiosys_pool_withdraw(p_id, slot))) == 1


class CompletionBuffer:
    """Reusable output of :func:`drain`: ``capacity`` completions of ``COMP_WORDS`` words."""

    __slots__ = ("_arr", "_view", "capacity")

    def __init__(self, capacity: int = 256) -> None:
        if not 1 <= capacity <= SLOTS:
            raise ValueError(f"capacity must be in 1..{SLOTS}")
        self.capacity = capacity
        self._arr = ffi.new("int64_t[]", COMP_WORDS * capacity)
        self._view = memoryview(ffi.buffer(self._arr)).cast("q")


_drain = lib.aiosys_pool_drain


def drain(p_id: int, buf: CompletionBuffer) -> list[int]:
    """Completions for P ``p_id`` (-1: the orphan list), flat, COMP_WORDS per completion.
    Empty without taking the pool's lock when there is nothing to drain."""
    n: int = _drain(p_id, buf._arr, buf.capacity)
    if n <= 0:
        if n < 0:
            raise oserror(-n)
        return []
    return buf._view[: COMP_WORDS * n].tolist()


_park = lib.aiosys_pool_park
_unpark = lib.aiosys_pool_unpark
_pending = lib.aiosys_pool_pending


def park(p_id: int, spin_ns: int) -> bool:
    """Before blocking in epoll_wait: True if the P is now parked (the next completion will
    write its eventfd), False if completions are waiting.  Spins up to ``spin_ns`` first
    when calls are in flight (GIL released)."""
    return bool(_park(p_id, spin_ns) == 1)


def unpark(p_id: int) -> None:
    _unpark(p_id)


def pending(p_id: int) -> int:
    """Completions waiting for the P (a lock-free hint)."""
    return int(_pending(p_id))


def wait_idle(p_id: int, timeout: float) -> int:
    """Block (GIL released) until nothing of the P runs or is queued, at most ``timeout``
    seconds.  Returns how many calls are still running or queued."""
    return check(int(lib.aiosys_pool_wait_idle(p_id, int(timeout * 1e9))))


def grow(n: int = 1) -> int:
    """Start ``n`` more Ms now (up to the cap); returns how many started."""
    return check(int(lib.aiosys_pool_grow(n)))


def shutdown(timeout: float) -> int:
    """Ask every M to exit and wait up to ``timeout`` s; returns how many are still alive
    (an M blocked in a syscall leaves when it returns).  The next submit starts Ms again."""
    return check(int(lib.aiosys_pool_shutdown(int(timeout * 1e9))))


def stats() -> dict[str, int]:
    """The pool's own counters: M counts by state, queue depth, spawned/exited, EINTR retries,
    eventfd wakeups, rejected submits, orphans waiting, the cap."""
    arr = ffi.new("int64_t[]", lib.AIOSYS_POOL_STATS)
    check(int(lib.aiosys_pool_stats(arr, lib.AIOSYS_POOL_STATS)))
    return {k: int(arr[i]) for i, k in enumerate(_STAT_NAMES) if not k.startswith("_")}


def tids() -> list[int]:
    """Linux thread ids of the live Ms."""
    arr = ffi.new("int64_t[]", MAX_THREADS)
    n = check(int(lib.aiosys_pool_tids(arr, MAX_THREADS)))
    return [int(arr[i]) for i in range(n)]
