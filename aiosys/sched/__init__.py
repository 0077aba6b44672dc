"""aiosys.sched: Go's scheduler handoff for system calls (``proc.go``), for asyncio.

Glossary (as at the top of Go's proc.go):

    G - a call made by a task (goroutine).  aiosys keeps a record per handed-off call:
        state, syscall, fd, timings (:class:`aiosys.sched.g.G`).
    M - worker thread.  M0 is the loop's thread; the other Ms are C pthreads of the pool
        (``aiosys/native/csrc/pool.c``) that run handed-off syscalls without the GIL and
        never run Python.
    P - processor: the right to run an event loop's callbacks.  One per loop, owned by the
        loop's thread (:class:`aiosys.sched.proc.P`).

A user syscall that may block never runs on the loop's thread: it goes through
``entersyscall`` to an M, and comes back through ``exitsyscall`` (``exitsyscallfast`` when
its task still waits, ``exitsyscall0`` when it was cancelled or its P is gone).  The
runtime's own calls (epoll_wait, the eventfd) keep their P.  Where each call goes is decided
in :mod:`aiosys._io`.

State machines: :mod:`aiosys.sched.g`.  Counters: :mod:`aiosys.sched.stats`.  Structured
events: :mod:`aiosys.sched.trace`.
"""

from __future__ import annotations

from .g import G as G
from .g import SchedulerError as SchedulerError
from .proc import (
    P as P,
)
from .proc import (
    allp as allp,
)
from .proc import (
    configure_pool as configure_pool,
)
from .proc import (
    drain_orphans as drain_orphans,
)
from .proc import (
    entersyscall as entersyscall,
)
from .proc import (
    entersyscallblock as entersyscallblock,
)
from .proc import (
    exitsyscall as exitsyscall,
)
from .proc import (
    exitsyscall0 as exitsyscall0,
)
from .proc import (
    exitsyscallfast as exitsyscallfast,
)
from .proc import (
    getp as getp,
)
from .proc import (
    grow_pool as grow_pool,
)
from .proc import (
    handoffp as handoffp,
)
from .proc import (
    inflight as inflight,
)
from .stats import counters as counters
from .stats import snapshot as snapshot

__all__ = [
    "G",
    "P",
    "SchedulerError",
    "allp",
    "configure_pool",
    "counters",
    "drain_orphans",
    "entersyscall",
    "entersyscallblock",
    "exitsyscall",
    "exitsyscall0",
    "exitsyscallfast",
    "getp",
    "grow_pool",
    "handoffp",
    "inflight",
    "snapshot",
]
