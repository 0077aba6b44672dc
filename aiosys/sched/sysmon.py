"""sysmon: Go's monitor thread, for asyncio loops and the M pool.

Go's ``sysmon`` runs without a P, wakes every 20 µs while it finds work and doubles its sleep
up to 10 ms once it has been idle for 50 rounds.  Each round it retakes Ps stuck in syscalls,
polls the network if nobody did, and (with ``GODEBUG=schedtrace``) prints a summary.  Here one
daemon thread does the same jobs, translated:

* **loop_stalled**: a loop that has not come back to its scheduler for longer than
  ``stall_ms`` (default 100 ms) is reported with the loop thread's Python stack
  (``sys._current_frames()[thread_id]``) and the line it is blocked on.  The loop proves it is
  alive with a *heartbeat*: a callback re-armed with ``loop.call_later(interval)`` that stamps
  when the next beat is due.  An idle loop still runs its timers, so "the beat is late by more
  than stall_ms" means exactly "a callback held the loop thread that long"; this works on the
  aiosys loop, the stdlib loop and uvloop alike and costs one timer callback per interval.
  When the beat finally runs, ``loop_resumed`` says how long the stall lasted.
* **long_syscall**: a handed-off call (a G in ``inflight()``) that has been waiting for or
  running on an M for longer than ``syscall_ms``; reported once per G.
* **grow_pool**: calls have been queued longer than ``grow_wait_ms`` and no M is idle: call the
  scheduler's ``grow_pool()`` (a blocked pipe read must never starve the write it waits for).
* **schedtrace**: every N ms write one summary line (``aiosys/sched/schedtrace.py``).

Findings go through ``trace.sysmon_alarm`` (structlog when tracing is on; listeners always).
sysmon itself never prints.  ``require(reason)``/``release(reason)`` share one thread between
the users (tracing, schedtrace, the scheduler); ``stop()`` joins it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from aiosys.native import nanotime

from . import trace

__all__ = [
    "Sysmon",
    "backoff",
    "blocking_frame",
    "SysmonConfig",
    "require",
    "release",
    "current",
    "stop",
    "watch_loop",
    "unwatch_loop",
]

MIN_DELAY_US = 20
MAX_DELAY_US = 10_000
IDLE_ROUNDS_BEFORE_BACKOFF = 50


@dataclass
class SysmonConfig:
    stall_ms: float = 100.0
    """A loop whose heartbeat is later than this is reported stalled."""
    syscall_ms: float = 1000.0
    """A handed-off call in flight longer than this is reported (once)."""
    grow_wait_ms: float = 1.0
    """Grow the pool when a call has waited this long for an M and no M is idle."""
    heartbeat_ms: float | None = None
    """Interval of the loop heartbeat; default min(stall_ms / 2, 50 ms)."""
    schedtrace_ms: float = 0.0
    schedtrace_file: IO[str] | None = None
    stack_limit: int = 30
    """Frames of the stalled loop's stack kept in the alarm (innermost last)."""

    def heartbeat_s(self) -> float:
        if self.heartbeat_ms is not None:
            return max(self.heartbeat_ms, 0.1) / 1000.0
        return min(self.stall_ms / 2.0, 50.0) / 1000.0


def backoff(idle: int, delay_us: int) -> int:
    """Go's sysmon sleep: 20 µs while it keeps finding work; after 50 idle rounds double the
    sleep each round, up to 10 ms.  ``idle`` counts rounds in a row that did nothing."""
    if idle == 0:
        return MIN_DELAY_US
    if idle > IDLE_ROUNDS_BEFORE_BACKOFF:
        return min(delay_us * 2, MAX_DELAY_US)
    return delay_us


# ---------------------------------------------------------------------------------------------
# Loop heartbeat


class _Watch:
    """One watched loop.  ``due`` (nanotime) is when the next heartbeat should run; the
    heartbeat callback runs on the loop thread, everything else on sysmon's."""

    __slots__ = (
        "loop_ref",
        "p_id",
        "interval",
        "interval_ns",
        "thread_id",
        "due",
        "last_beat",
        "running_since",
        "stalled_at",
        "stall_start",
        "handle",
        "cancelled",
    )

    def __init__(self, loop: Any, p_id: int | None, interval: float) -> None:
        self.loop_ref = weakref.ref(loop)
        self.p_id = p_id
        self.interval = interval
        self.interval_ns = int(interval * 1e9)
        self.thread_id: int | None = None
        self.due = 0
        self.last_beat = 0
        self.running_since = 0
        self.stalled_at = 0  # nanotime of the alarm, 0 when not stalled
        self.stall_start = 0
        self.handle: Any = None
        self.cancelled = False

    def beat(self) -> None:
        # Loop thread.  Keep it tiny: two stamps and one timer.
        if self.cancelled:
            return
        loop = self.loop_ref()
        if loop is None:
            return
        now = nanotime()
        self.last_beat = now
        self.due = now + self.interval_ns
        self.handle = loop.call_later(self.interval, self.beat)

    def install(self) -> None:
        # Loop thread.
        self.thread_id = threading.get_ident()
        self.beat()

    def cancel(self) -> None:
        self.cancelled = True
        h = self.handle
        if h is not None:
            with contextlib.suppress(Exception):
                h.cancel()


def _running_loop_or_none() -> Any:
    import asyncio

    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def blocking_frame(thread_id: int, limit: int = 30) -> tuple[list[str], str | None]:
    """The Python stack of ``thread_id`` (innermost last) and its innermost line
    ``"file:line in func: source"`` (the line the thread is blocked on)."""
    frame = sys._current_frames().get(thread_id)
    if frame is None:
        return [], None
    summary = traceback.extract_stack(frame, limit=limit)
    lines = [f"{fs.filename}:{fs.lineno} in {fs.name}: {(fs.line or '').strip()}" for fs in summary]
    return lines, (lines[-1] if lines else None)


# ---------------------------------------------------------------------------------------------
# The scheduler's side, resolved late (the scheduler may not be imported, or not yet built)


def _sched_attr(name: str) -> Any:
    mod = sys.modules.get("aiosys.sched")
    return getattr(mod, name, None) if mod is not None else None


def _default_inflight() -> Iterable[Any]:
    fn = _sched_attr("inflight")
    return fn() if fn is not None else ()


def _default_procs() -> Iterable[Any]:
    fn = _sched_attr("allp")
    return fn() if fn is not None else ()


def _default_grow_pool() -> None:
    fn = _sched_attr("grow_pool")
    if fn is not None:
        fn()


def _default_stats() -> dict[str, int]:
    try:
        stats = importlib.import_module("aiosys.sched.stats")
    except ImportError:  # the scheduler's counters are not built (yet)
        return {}
    snap = getattr(stats, "snapshot", None)
    return dict(snap()) if snap is not None else {}


# ---------------------------------------------------------------------------------------------


@dataclass
class _Counters:
    rounds: int = 0
    alarms: int = 0
    stalls: int = 0
    long_syscalls: int = 0
    grows: int = 0
    schedtraces: int = 0
    recent: deque[tuple[str, dict[str, Any]]] = field(default_factory=lambda: deque(maxlen=64))


class Sysmon:
    """The monitor thread.  Sources are injectable (tests use fakes); by default they are the
    scheduler's ``inflight()``, ``allp()``, ``grow_pool()`` and ``stats.snapshot()``."""

    def __init__(
        self,
        config: SysmonConfig | None = None,
        *,
        inflight: Callable[[], Iterable[Any]] | None = None,
        procs: Callable[[], Iterable[Any]] | None = None,
        grow_pool: Callable[[], Any] | None = None,
        stats: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self.config = config or SysmonConfig()
        self._inflight = inflight or _default_inflight
        self._procs = procs or _default_procs
        self._grow_pool = grow_pool or _default_grow_pool
        self._stats = stats or _default_stats
        self._watches: dict[int, _Watch] = {}  # id(loop) -> watch
        self._watch_lock = threading.Lock()
        self._reported: set[int] = set()  # goids already reported as long syscalls
        self._last_grow = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.counters = _Counters()
        self.cpu_ns = 0  # sysmon thread's CPU time, measured when it exits
        self.started_ns = 0
        self._last_trace = 0
        self._errors_seen: set[str] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self.started_ns = nanotime()
        self._last_trace = self.started_ns
        t = threading.Thread(target=self._run, name="aiosys-sysmon", daemon=True)
        self._thread = t
        t.start()

    def stop(self, timeout: float = 5.0) -> None:
        t = self._thread
        self._stopping = True
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
        self._thread = None
        with self._watch_lock:
            watches = list(self._watches.values())
            self._watches.clear()
        for w in watches:
            self._cancel_watch(w)

    @property
    def running(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()

    @property
    def native_id(self) -> int | None:
        t = self._thread
        return t.native_id if t is not None else None

    # -- loops -------------------------------------------------------------------------------

    def watch_loop(self, loop: Any = None, *, p_id: int | None = None) -> None:
        """Watch ``loop`` (default: the running loop) for stalls.  Thread-safe; idempotent."""
        if loop is None:
            loop = _running_loop_or_none()
            if loop is None:
                raise RuntimeError("watch_loop() needs a loop (no loop is running here)")
        key = id(loop)
        with self._watch_lock:
            old = self._watches.get(key)
            if old is not None and old.loop_ref() is loop:
                return
            w = _Watch(loop, p_id, self.config.heartbeat_s())
            self._watches[key] = w
        if _running_loop_or_none() is loop:
            w.install()
        else:
            with contextlib.suppress(RuntimeError):  # closed loop: nothing to watch
                loop.call_soon_threadsafe(w.install)

    def unwatch_loop(self, loop: Any) -> None:
        with self._watch_lock:
            w = self._watches.pop(id(loop), None)
        if w is not None:
            self._cancel_watch(w)

    @staticmethod
    def _cancel_watch(w: _Watch) -> None:
        w.cancelled = True
        loop = w.loop_ref()
        if loop is None or loop.is_closed():
            return
        if _running_loop_or_none() is loop:
            w.cancel()
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(w.cancel)

    def watched(self) -> list[Any]:
        with self._watch_lock:
            return [w.loop_ref() for w in self._watches.values() if w.loop_ref() is not None]

    # -- the round ---------------------------------------------------------------------------

    def _run(self) -> None:
        idle = 0
        delay = MIN_DELAY_US
        try:
            while not self._stopping:
                delay = backoff(idle, delay)
                time.sleep(delay / 1e6)
                if self._stopping:
                    break
                try:
                    acted = self.round(nanotime())
                except Exception as exc:  # sysmon must survive a bad source
                    if repr(exc) not in self._errors_seen:  # once each, not 100 times a second
                        self._errors_seen.add(repr(exc))
                        self._alarm("sysmon_error", error=repr(exc))
                    acted = False
                idle = 0 if acted else idle + 1
        finally:
            self.cpu_ns = time.thread_time_ns()

    def round(self, now: int) -> bool:
        """One sysmon pass; returns True if it did something (which resets the back-off)."""
        self.counters.rounds += 1
        acted = False
        self._adopt_procs()
        if self._watches and self._check_loops(now):
            acted = True
        if self._check_inflight(now):
            acted = True
        cfg = self.config
        if cfg.schedtrace_ms > 0 and now - self._last_trace >= cfg.schedtrace_ms * 1e6:
            self._last_trace = now
            self._schedtrace(now)
        return acted

    def _alarm(self, kind: str, **fields: Any) -> None:
        c = self.counters
        c.alarms += 1
        c.recent.append((kind, fields))
        trace.sysmon_alarm(kind, **fields)

    def _adopt_procs(self) -> None:
        for p in self._procs():
            loop = getattr(p, "loop", None)
            if loop is None or id(loop) in self._watches:
                continue
            with contextlib.suppress(Exception):
                if loop.is_closed():
                    continue
                self.watch_loop(loop, p_id=getattr(p, "id", getattr(p, "p_id", None)))

    def _check_loops(self, now: int) -> bool:
        acted = False
        stall_ns = int(self.config.stall_ms * 1e6)
        with self._watch_lock:
            watches = list(self._watches.items())
        for key, w in watches:
            loop = w.loop_ref()
            if loop is None or loop.is_closed():
                with self._watch_lock:
                    if self._watches.get(key) is w:
                        del self._watches[key]
                continue
            if w.thread_id is None or not loop.is_running():
                w.running_since = 0
                continue
            if not w.running_since:
                w.running_since = now
            if w.stalled_at:
                if w.last_beat > w.stalled_at:
                    self._alarm(
                        "loop_resumed",
                        p=w.p_id,
                        thread_id=w.thread_id,
                        stalled_ms=round((w.last_beat - w.stall_start) / 1e6, 1),
                    )
                    w.stalled_at = 0
                    acted = True
                continue
            since = max(w.due, w.running_since)
            late = now - since
            if late > stall_ns:
                stack, line = blocking_frame(w.thread_id, self.config.stack_limit)
                w.stalled_at = now
                w.stall_start = since
                self.counters.stalls += 1
                self._alarm(
                    "loop_stalled",
                    p=w.p_id,
                    thread_id=w.thread_id,
                    stalled_ms=round(late / 1e6, 1),
                    threshold_ms=self.config.stall_ms,
                    blocking_line=line,
                    stack=stack,
                )
                acted = True
        return acted

    def _check_inflight(self, now: int) -> bool:
        gs = list(self._inflight())
        if not gs and not self._reported:
            return False
        cfg = self.config
        syscall_ns = int(cfg.syscall_ms * 1e6)
        acted = False
        live: set[int] = set()
        oldest_wait = 0
        waiting = 0
        for g in gs:
            goid = g.goid
            live.add(goid)
            if g.t_end:
                continue
            t_start = g.t_start
            if not t_start:
                waiting += 1
                oldest_wait = max(oldest_wait, now - g.t_enter)
            age = now - g.t_enter
            if age > syscall_ns and goid not in self._reported:
                self._reported.add(goid)
                self.counters.long_syscalls += 1
                self._alarm(
                    "long_syscall",
                    goid=goid,
                    syscall=g.syscall,
                    fd=g.fd,
                    p=g.p_id,
                    on_m=bool(t_start),
                    elapsed_ms=round(age / 1e6, 1),
                    wait_ms=round(((t_start or now) - g.t_enter) / 1e6, 1),
                    threshold_ms=cfg.syscall_ms,
                )
                acted = True
        self._reported &= live
        if waiting and oldest_wait > cfg.grow_wait_ms * 1e6 and now - self._last_grow > (
            cfg.grow_wait_ms * 1e6
        ):
            st = self._stats()
            if st.get("m_idle", 0) == 0:
                self._last_grow = now
                self._grow_pool()
                self.counters.grows += 1
                self._alarm(
                    "grow_pool",
                    waiting=waiting,
                    oldest_wait_ms=round(oldest_wait / 1e6, 2),
                    m_busy=st.get("m_busy"),
                )
                acted = True
        return acted

    def _schedtrace(self, now: int) -> None:
        from . import schedtrace

        out = self.config.schedtrace_file or sys.stderr
        line = schedtrace.line(
            elapsed_ms=(now - self.started_ns) // 1_000_000,
            stats=self._stats(),
            procs=list(self._procs()),
            loops=len(self._watches),
        )
        with contextlib.suppress(Exception):  # a closed file must not kill sysmon
            out.write(line + "\n")
            out.flush()
        self.counters.schedtraces += 1


# ---------------------------------------------------------------------------------------------
# The process-wide sysmon, shared by its users.

_lock = threading.RLock()
_sysmon: Sysmon | None = None
_reasons: set[str] = set()


def require(reason: str, config: SysmonConfig | None = None, **kw: Any) -> Sysmon:
    """Start the process-wide sysmon (or reuse it) on behalf of ``reason``; ``config`` /
    keyword settings update its configuration."""
    global _sysmon
    with _lock:
        if _sysmon is None:
            _sysmon = Sysmon(config)
        elif config is not None:
            _sysmon.config = config
        for k, v in kw.items():
            if not hasattr(_sysmon.config, k):
                raise TypeError(f"unknown sysmon setting {k!r}")
            setattr(_sysmon.config, k, v)
        _reasons.add(reason)
        _sysmon.start()
        return _sysmon


def release(reason: str) -> None:
    """Drop ``reason``; the thread stops (joined) when nobody needs it."""
    global _sysmon
    with _lock:
        _reasons.discard(reason)
        if _reasons or _sysmon is None:
            return
        s, _sysmon = _sysmon, None
    s.stop()


def stop() -> None:
    """Stop sysmon whoever needed it (tests' teardown, interpreter shutdown)."""
    global _sysmon
    with _lock:
        _reasons.clear()
        s, _sysmon = _sysmon, None
    if s is not None:
        s.stop()


def current() -> Sysmon | None:
    return _sysmon


def watch_loop(loop: Any = None, *, p_id: int | None = None) -> None:
    """Watch ``loop`` (default: the running one) with the process-wide sysmon, if running."""
    s = _sysmon
    if s is not None:
        s.watch_loop(loop, p_id=p_id)


def unwatch_loop(loop: Any) -> None:
    s = _sysmon
    if s is not None:
        s.unwatch_loop(loop)


def _after_fork_in_child() -> None:
    # The thread did not survive the fork; forget it (its users may require() again).
    global _sysmon, _lock
    _lock = threading.RLock()
    _sysmon = None
    _reasons.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
