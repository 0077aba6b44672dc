"""G records and the G/P state machines (Go's ``runtime2.go``: ``_Grunning``, ``_Psyscall``...).

A G here is the record of one aiosys call made by a task: Go's goroutine is the task, and the
record is what the scheduler knows about it while the call is in flight.  The observability
layer reads these fields (``aiosys.sched.trace``, ``sysmon``): they are a contract.

G states (one comment per state says who owns the G, as in runtime2.go):

``_Grunning``   the task is running on its P's loop thread; the call is being made inline
                or prepared.  Owned by the loop thread.
``_Gsyscall``   the call was handed off: it is queued for an M or an M is inside the
                syscall.  The G is not running; its buffers are pinned (``keep``) and its fd
                holds a reference.  The loop thread owns the record, the M owns the slot.
``_Grunnable``  the M finished; the completion was drained on the G's P and the task is
                scheduled to resume (its future has a result).  Owned by the loop thread.
``_Gwaiting``   parked on the netpoller for readiness (no M involved).
``_Gdead``      finished: the task took the result, or the orphan finalizer ran
                (exitsyscall0), or the call was withdrawn before an M started it.

P states:

``_Prunning``   the loop thread is running callbacks.
``_Psyscall``   the loop thread itself is inside a synchronous ``Syscall`` (an inline call
                that told the scheduler, through the native layer's hooks).
``_Pidle``      the loop is parked in netpoll (epoll_wait), or not started yet.
``_Pdead``      the loop closed; completions for it take exitsyscall0.

Transitions are checked: an illegal one raises :class:`SchedulerError` (Go's ``throw``),
never passes silently.
"""

from __future__ import annotations

import itertools
from typing import Any, Final

__all__ = [
    "G",
    "SchedulerError",
    "_Gdead",
    "_Grunnable",
    "_Grunning",
    "_Gsyscall",
    "_Gwaiting",
    "_Pdead",
    "_Pidle",
    "_Prunning",
    "_Psyscall",
    "casgstatus",
    "check_ptransition",
]

_Grunning: Final = "_Grunning"
_Gsyscall: Final = "_Gsyscall"
_Grunnable: Final = "_Grunnable"
_Gwaiting: Final = "_Gwaiting"
_Gdead: Final = "_Gdead"

_Prunning: Final = "_Prunning"
_Psyscall: Final = "_Psyscall"
_Pidle: Final = "_Pidle"
_Pdead: Final = "_Pdead"

G_TRANSITIONS: Final[frozenset[tuple[str, str]]] = frozenset(
    {
        (_Grunning, _Gsyscall),  # entersyscall / entersyscallblock
        (_Gsyscall, _Grunnable),  # exitsyscallfast: completion drained on its own P
        (_Grunnable, _Grunning),  # the task resumed and takes the result
        (_Gsyscall, _Gdead),  # exitsyscall0 (orphan) or withdrawn before an M started
        (_Grunnable, _Gdead),  # cancelled after completion, before resuming: finalizer
        (_Grunning, _Gwaiting),  # parked on the netpoller
        (_Gwaiting, _Grunnable),  # netpoll readiness
        (_Gwaiting, _Gdead),  # wait cancelled
        (_Grunning, _Gdead),  # done
    }
)

P_TRANSITIONS: Final[frozenset[tuple[str, str]]] = frozenset(
    {
        (_Prunning, _Psyscall),
        (_Psyscall, _Prunning),
        (_Prunning, _Pidle),
        (_Pidle, _Prunning),
        (_Prunning, _Pdead),
        (_Pidle, _Pdead),
    }
)


class SchedulerError(RuntimeError):
    """A broken scheduler invariant (Go's ``throw``): a bug, never a user error."""


def casgstatus(g: G, old: str, new: str) -> None:
    """Move ``g`` from ``old`` to ``new`` (Go's casgstatus); anything else is a bug."""
    if g.state is not old or (old, new) not in G_TRANSITIONS:
        raise SchedulerError(
            f"aiosys: casgstatus: bad transition {g.state} ({old} expected) -> {new} "
            f"for G {g.goid} ({g.syscall})"
        )
    g.state = new


def check_ptransition(cur: str, new: str) -> None:
    if (cur, new) not in P_TRANSITIONS:
        raise SchedulerError(f"aiosys: bad P transition {cur} -> {new}")


_goids = itertools.count(1)


class G:
    """One in-flight call.  Fields read by observability (a contract): ``goid, syscall, fd,
    p_id, t_enter, t_start, t_end, state, queue_depth``; times are nanotime() ns, 0 when not
    reached yet."""

    __slots__ = (
        "goid",
        "syscall",
        "trap",
        "fd",
        "p_id",
        "t_enter",
        "t_start",
        "t_end",
        "state",
        "queue_depth",
        "slot",
        "m_id",
        "result",
        "future",
        "keep",
        "kind",
        "waiters",
        "task",
    )

    def __init__(self, syscall: str, trap: int, fd: int, p_id: int, t_enter: int) -> None:
        self.goid = next(_goids)
        self.syscall = syscall
        self.trap = trap
        self.fd = fd  # -1: the call has no fd
        self.p_id = p_id
        self.t_enter = t_enter
        self.t_start = 0
        self.t_end = 0
        self.state: str = _Grunning
        self.queue_depth = 0
        self.slot = -1
        self.m_id = -1
        self.result: int | None = None
        # The asyncio future the task awaits (loop-specific); None when not handed off.
        self.future: Any = None
        # Whatever must stay alive until the M is done: pinned buffers, path copies.
        # Invariant: kept while state is _Gsyscall, whatever the task does.
        self.keep: object = None
        # What the orphan finalizer must undo: "open" (close the fd), "read" (keep the
        # bytes), "write" (report), or "" (just log).
        self.kind = ""
        # Futures of calls that must wait for this one to finish (per-fd ordering after
        # a cancellation).
        self.waiters: list[Any] | None = None
        # The awaiting task, for reads/writes (a cancel requested after completion is only
        # visible on the task: Task.cancelling()).
        self.task: Any = None

    def __repr__(self) -> str:
        return f"<G {self.goid} {self.syscall} fd={self.fd} p={self.p_id} {self.state}>"
