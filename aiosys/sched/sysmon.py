"""sysmon: Go's monitor thread, for asyncio loops and the M pool.

Go's ``sysmon`` runs without a P, wakes every 20 µs while it finds work and doubles its sleep
up to 10 ms once it has been idle for 50 rounds; when every P is idle it sleeps longer still
(``sysmonwait``).  Each round it retakes Ps stuck in syscalls and (with
``GODEBUG=schedtrace``) prints a summary.  Here one daemon thread does the same jobs:

* **loop_stalled**: a loop that has not come back to its scheduler for longer than
  ``stall_ms`` (default 100 ms) is reported with the loop thread's Python stack
  (``sys._current_frames()[thread_id]``) and the line it is blocked on.  Each round sysmon
  looks at the loop thread's innermost frame.  Parked in the selector (stdlib and aiosys
  loops: the selector's ``select``; uvloop: the frame that called ``run_*``, since the wait is
  in C) means idle: nothing to do, no cost to the loop.  Anything else means busy: sysmon
  posts a *probe* (``call_soon_threadsafe`` of a callback that stamps the time) at most every
  ``stall_ms / 4``; a probe still unanswered after ``stall_ms`` means the loop has not run its
  ready queue for that long: a stall.  When the probe finally runs, ``loop_resumed`` says how
  long it lasted.  Works on the aiosys loop, the stdlib loop and uvloop alike; an idle loop is
  never woken, a busy one runs at most a few probes a second.
* **long_syscall**: a handed-off call (a G in ``inflight()``) waiting for or running on an M
  for longer than ``syscall_ms``; reported once per G.
* **grow_pool**: calls queued longer than ``grow_wait_ms`` and no M idle: call the
  scheduler's ``grow_pool()`` (a blocked pipe read must never starve the write it waits for).
* **schedtrace**: every N ms write one summary line (``aiosys/sched/schedtrace.py``).

When nothing is in flight and every watched loop is idle, sysmon sleeps ``stall_ms / 2``
(Go's ``sysmonwait``, bounded so that a loop that turns busy and blocks is still caught).

Findings go through ``trace.sysmon_alarm`` (structlog when tracing is on; listeners always).
sysmon itself never prints.  ``require(reason)``/``release(reason)`` share one thread between
its users (tracing, schedtrace, the scheduler); ``stop()`` joins it.
"""

from __future__ import annotations

import atexit
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
from types import CodeType, FrameType
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
    """A loop that has not run its ready queue for this long is reported stalled."""
    syscall_ms: float = 1000.0
    """A handed-off call in flight longer than this is reported (once)."""
    grow_wait_ms: float = 1.0
    """Grow the pool when a call has waited this long for an M and no M is idle."""
    probe_ms: float | None = None
    """Least time between probes of a busy loop; default stall_ms / 4."""
    quiet_sleep_ms: float | None = None
    """sysmon's sleep when nothing is in flight and every loop is idle; default stall_ms / 2
    (at most 50 ms)."""
    schedtrace_ms: float = 0.0
    schedtrace_file: IO[str] | None = None
    stack_limit: int = 30
    """Frames of the stalled loop's stack kept in the alarm (innermost last)."""

    def probe_ns(self) -> int:
        ms = self.stall_ms / 4.0 if self.probe_ms is None else self.probe_ms
        return int(ms * 1e6)

    def quiet_sleep_us(self) -> int:
        ms = min(self.stall_ms / 2.0, 50.0) if self.quiet_sleep_ms is None else self.quiet_sleep_ms
        return max(int(ms * 1000), MAX_DELAY_US)


def backoff(idle: int, delay_us: int) -> int:
    """Go's sysmon sleep: 20 µs while it keeps finding work; after 50 idle rounds double the
    sleep each round, up to 10 ms.  ``idle`` counts rounds in a row that did nothing."""
    if idle == 0:
        return MIN_DELAY_US
    if idle > IDLE_ROUNDS_BEFORE_BACKOFF:
        return min(delay_us * 2, MAX_DELAY_US)
    return delay_us


# ---------------------------------------------------------------------------------------------
# Watching a loop: idle by its thread's innermost frame, alive by probes


def _selector_select_code(loop: Any) -> CodeType | None:
    """The code object a selector loop's thread is in while parked (``selector.select``)."""
    sel = getattr(loop, "_selector", None)
    fn = getattr(type(sel), "select", None) if sel is not None else None
    code = getattr(fn, "__code__", None)
    return code if isinstance(code, CodeType) else None


def _none() -> None:
    return None


class _Watch:
    """One watched loop.  ``beat`` runs on the loop thread; everything else on sysmon's.

    ``last_beat``: nanotime of the last probe the loop ran.  ``probe_at``: when the
    outstanding probe was posted (0: none).  ``base``: (id, code) of the frame the loop thread
    sits in while a C loop (uvloop) waits, taken from the probe's caller."""

    __slots__ = (
        "loop_ref",
        "p_ref",
        "p_id",
        "idle_code",
        "thread_id",
        "base",
        "last_beat",
        "probe_at",
        "stalled_at",
        "stall_since",
        "cancelled",
        "probes",
    )

    def __init__(self, loop: Any, p_id: int | None, p: Any = None) -> None:
        self.loop_ref = weakref.ref(loop)
        self.p_ref: Callable[[], Any] = weakref.ref(p) if p is not None else _none
        self.p_id = p_id
        self.idle_code = _selector_select_code(loop)
        self.thread_id: int | None = None
        self.base: tuple[int, CodeType] | None = None
        self.last_beat = 0
        self.probe_at = 0
        self.stalled_at = 0  # nanotime of the alarm, 0 when not stalled
        self.stall_since = 0
        self.cancelled = False
        self.probes = 0

    def beat(self) -> None:
        # Loop thread: a few stamps, nothing else.
        self.thread_id = threading.get_ident()
        if self.idle_code is None:
            caller = sys._getframe(1)
            self.base = (id(caller), caller.f_code)
        self.last_beat = nanotime()
        self.probe_at = 0

    def is_idle(self, frame: FrameType | None) -> bool:
        """Is the loop thread parked waiting for events (not running a callback)?"""
        if frame is None:
            return True  # thread gone: not a stall of ours
        code = self.idle_code
        if code is not None:
            if frame.f_code is code:
                return True
            # A helper of select's in the same file (e.g. the netpoller's epoll wrapper).
            back = frame.f_back
            return (
                back is not None
                and back.f_code is code
                and frame.f_code.co_filename == code.co_filename
            )
        base = self.base
        return base is not None and id(frame) == base[0] and frame.f_code is base[1]

    def post_probe(self, loop: Any, now: int) -> None:
        # sysmon thread.  Stamp first: the probe may run before call_soon_threadsafe returns.
        self.probe_at = now
        self.probes += 1
        try:
            loop.call_soon_threadsafe(self.beat)
        except RuntimeError:  # closed meanwhile
            self.probe_at = 0


def _running_loop_or_none() -> Any:
    import asyncio

    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


_AIOSYS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_LOOP_INTERNALS = (os.sep + "asyncio" + os.sep, os.sep + "uvloop" + os.sep)


def _frame_stack(frame: FrameType | None, limit: int) -> tuple[list[str], str | None]:
    """The stack (innermost last) and the blocking line: the innermost frame outside aiosys
    itself, so that a user's ``aiosys.native.Syscall(...)`` is named rather than the wrapper
    inside it; if the caller of aiosys's frames is the event loop itself, aiosys is the one
    blocking and its innermost line is named."""
    if frame is None:
        return [], None
    summary = traceback.extract_stack(frame, limit=limit)
    lines = [f"{fs.filename}:{fs.lineno} in {fs.name}: {(fs.line or '').strip()}" for fs in summary]
    if not lines:
        return lines, None
    for fs, text in zip(reversed(summary), reversed(lines), strict=True):
        filename = os.path.abspath(fs.filename)
        if filename.startswith(_AIOSYS_DIR):
            continue
        if text is not lines[-1] and any(part in filename for part in _LOOP_INTERNALS):
            break
        return lines, text
    return lines, lines[-1]


def blocking_frame(thread_id: int, limit: int = 30) -> tuple[list[str], str | None]:
    """The Python stack of ``thread_id`` (innermost last) and the line it is blocked on,
    ``"file:line in func: source"`` (see :func:`_frame_stack`)."""
    return _frame_stack(sys._current_frames().get(thread_id), limit)


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


def _default_grow_pool() -> int | None:
    fn = _sched_attr("grow_pool")
    return fn() if fn is not None else None


def _default_mthreads() -> Iterable[int]:
    try:
        mpool = importlib.import_module("aiosys.native._mpool")
    except ImportError:
        return ()
    tids = getattr(mpool, "tids", None)
    return tids() if tids is not None else ()


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
        grow_pool: Callable[[], int | None] | None = None,
        stats: Callable[[], dict[str, int]] | None = None,
        mthreads: Callable[[], Iterable[int]] | None = None,
    ) -> None:
        self.config = config or SysmonConfig()
        self._inflight = inflight or _default_inflight
        self._procs = procs or _default_procs
        self._grow_pool = grow_pool or _default_grow_pool
        self._stats = stats or _default_stats
        self._mthreads = mthreads or _default_mthreads
        self._m_known: set[int] | None = None  # M tids seen last round (while tracing)
        self._m_idle = 0
        self._watches: dict[int, _Watch] = {}  # id(loop) -> watch
        self._watch_lock = threading.Lock()
        self._reported: set[int] = set()  # goids already reported as long syscalls
        self._last_grow = 0
        self._queue_since = 0  # nanotime since calls have been queued with no M idle
        self._capped_reported = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.counters = _Counters()
        self.cpu_ns = 0  # sysmon thread's CPU time, measured when it exits
        self.started_ns = 0
        self._last_trace = 0
        self._errors_seen: set[str] = set()
        self._quiet = False

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
            w.cancelled = True

    @property
    def running(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()

    @property
    def native_id(self) -> int | None:
        t = self._thread
        return t.native_id if t is not None else None

    # -- loops -------------------------------------------------------------------------------

    def watch_loop(self, loop: Any = None, *, p_id: int | None = None, p: Any = None) -> None:
        """Watch ``loop`` (default: the running loop) for stalls.  Thread-safe; idempotent.
        ``p``: the scheduler's P of that loop, if any (its status goes into the alarm)."""
        if loop is None:
            loop = _running_loop_or_none()
            if loop is None:
                raise RuntimeError("watch_loop() needs a loop (no loop is running here)")
        key = id(loop)
        with self._watch_lock:
            old = self._watches.get(key)
            if old is not None and old.loop_ref() is loop:
                return
            w = _Watch(loop, p_id, p)
            self._watches[key] = w
        # The first probe teaches the watch its thread (and uvloop's base frame).
        w.post_probe(loop, nanotime())

    def unwatch_loop(self, loop: Any) -> None:
        with self._watch_lock:
            w = self._watches.pop(id(loop), None)
        if w is not None:
            w.cancelled = True

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
                # time.sleep: measured here, the cheapest way for a thread to wait (an
                # Event.wait or lock timeout costs 1.5-2x the CPU per wake-up).
                time.sleep(self._sleep_us(delay) / 1e6)
                if self._stopping:
                    break
                try:
                    acted = self.round(nanotime())
                except Exception as exc:  # sysmon must survive a bad source
                    if repr(exc) not in self._errors_seen:  # once each, not 100 times a second
                        self._errors_seen.add(repr(exc))
                        self._alarm("sysmon_error", error=repr(exc))
                    acted = False
                    self._quiet = False
                idle = 0 if acted else idle + 1
        finally:
            self.cpu_ns = time.thread_time_ns()

    def _sleep_us(self, delay: int) -> int:
        if not self._quiet:
            return delay
        sleep = self.config.quiet_sleep_us()
        ms = self.config.schedtrace_ms
        if ms > 0:  # wake for the next schedtrace line
            due_us = (self._last_trace + int(ms * 1e6) - nanotime()) // 1000
            sleep = max(min(sleep, due_us), delay)
        return sleep

    def round(self, now: int) -> bool:
        """One sysmon pass; returns True if it did something (which resets the back-off).
        Sets ``self._quiet`` when nothing is in flight and every loop is idle."""
        self.counters.rounds += 1
        acted = False
        self._adopt_procs()
        loops_quiet = True
        if self._watches:
            acted, loops_quiet = self._check_loops(now)
        calls_acted, busy_calls = self._check_inflight(now)
        acted = acted or calls_acted
        if trace.ENABLED:
            self._check_ms()
        else:
            self._m_known = None
        cfg = self.config
        if cfg.schedtrace_ms > 0 and now - self._last_trace >= cfg.schedtrace_ms * 1e6:
            self._last_trace = now
            self._schedtrace(now)
        self._quiet = loops_quiet and busy_calls == 0 and not acted
        return acted

    def _alarm(self, kind: str, **fields: Any) -> None:
        c = self.counters
        c.alarms += 1
        c.recent.append((kind, fields))
        trace.sysmon_alarm(kind, **fields)

    def _adopt_procs(self) -> None:
        for p in self._procs():
            loop = getattr(p, "loop", None)
            if loop is None:
                ref = getattr(p, "loopref", None)
                loop = ref() if ref is not None else None
            if loop is None or id(loop) in self._watches:
                continue
            with contextlib.suppress(Exception):
                if loop.is_closed():
                    continue
                self.watch_loop(loop, p_id=getattr(p, "id", getattr(p, "p_id", None)), p=p)

    def _check_loops(self, now: int) -> tuple[bool, bool]:
        """Returns (acted, every loop idle or not running)."""
        acted = False
        quiet = True
        stall_ns = int(self.config.stall_ms * 1e6)
        probe_ns = self.config.probe_ns()
        with self._watch_lock:
            watches = list(self._watches.items())
        frames = sys._current_frames()
        try:
            for key, w in watches:
                loop = w.loop_ref()
                if loop is None or loop.is_closed() or w.cancelled:
                    with self._watch_lock:
                        if self._watches.get(key) is w:
                            del self._watches[key]
                    continue
                if w.thread_id is None or not loop.is_running():
                    continue  # not running: the thread's own business, not a stall
                frame = frames.get(w.thread_id)
                if w.stalled_at:
                    if w.last_beat > w.stalled_at or w.is_idle(frame):
                        end = w.last_beat if w.last_beat > w.stalled_at else now
                        self._alarm(
                            "loop_resumed",
                            p=w.p_id,
                            thread_id=w.thread_id,
                            stalled_ms=round((end - w.stall_since) / 1e6, 1),
                        )
                        w.stalled_at = 0
                        acted = True
                    else:
                        quiet = False
                    continue
                if w.is_idle(frame):
                    continue
                quiet = False
                if not w.probe_at:
                    if now - w.last_beat >= probe_ns:
                        w.post_probe(loop, now)
                    continue
                late = now - w.probe_at
                if late > stall_ns:
                    stack, line = _frame_stack(frame, self.config.stack_limit)
                    w.stalled_at = now
                    w.stall_since = w.probe_at
                    self.counters.stalls += 1
                    # p_status _Psyscall: the loop thread is inside a synchronous Syscall (Go's
                    # sysmon would retake this P); otherwise a callback holds the thread.
                    self._alarm(
                        "loop_stalled",
                        p=w.p_id,
                        p_status=getattr(w.p_ref(), "status", None),
                        loop=type(loop).__name__,
                        thread_id=w.thread_id,
                        stalled_ms=round(late / 1e6, 1),
                        threshold_ms=self.config.stall_ms,
                        blocking_line=line,
                        stack=stack,
                    )
                    acted = True
        finally:
            del frames
        return acted, quiet

    def _check_inflight(self, now: int) -> tuple[bool, int]:
        """Long syscalls and pool growth.  Returns (acted, calls still in flight)."""
        gs = list(self._inflight())
        if not gs and not self._reported:
            self._queue_since = 0
            return False, 0
        cfg = self.config
        syscall_ns = int(cfg.syscall_ms * 1e6)
        acted = False
        live: set[int] = set()
        busy = 0
        for g in gs:
            goid = g.goid
            live.add(goid)
            if g.t_end:
                continue
            busy += 1
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
                    state=getattr(g, "state", None),
                    elapsed_ms=round(age / 1e6, 1),
                    threshold_ms=cfg.syscall_ms,
                )
                acted = True
        self._reported &= live
        if busy and self._check_pool(now):
            acted = True
        return acted, busy

    def _check_pool(self, now: int) -> bool:
        """Grow the pool when calls have been queued for ``grow_wait_ms`` with no M idle (the
        C pool starts Ms on submit; this is the backstop, as Go's sysmon retakes Ps)."""
        st = self._stats()
        queued = int(st.get("queue_depth", 0))
        if queued <= 0 or int(st.get("m_idle", 0)) > 0:
            self._queue_since = 0
            self._capped_reported = False
            return False
        if not self._queue_since:
            self._queue_since = now
            return False
        grow_ns = self.config.grow_wait_ms * 1e6
        if now - self._queue_since < grow_ns or now - self._last_grow < grow_ns:
            return False
        self._last_grow = now
        started = self._grow_pool()
        self.counters.grows += 1
        fields: dict[str, Any] = {
            "queued": queued,
            "waited_ms": round((now - self._queue_since) / 1e6, 2),
            "m_busy": st.get("m_busy"),
            "m_threads": st.get("m_threads"),
        }
        if started == 0:  # at the cap: say so once per episode of waiting
            if self._capped_reported:
                return False
            self._capped_reported = True
            self._alarm("pool_capped", m_max=st.get("m_max"), **fields)
            return True
        self._capped_reported = False
        self._alarm("grow_pool", started=started, **fields)
        return True

    def _check_ms(self) -> None:
        """M events, sampled: the Ms are C pthreads that never run Python, so their spawn and
        exit are seen here as changes of the pool's thread list, and parking as changes of
        its idle count (only while tracing is on)."""
        tids = set(self._mthreads())
        m_idle = int(self._stats().get("m_idle", 0))
        known = self._m_known
        self._m_known = tids
        if known is None:  # first round with tracing on: the baseline
            self._m_idle = m_idle
            return
        n = len(tids)
        for tid in sorted(tids - known):
            trace.m_event("spawn", tid, m_threads=n)
        for tid in sorted(known - tids):
            trace.m_event("exit", tid, m_threads=n)
        delta = m_idle - self._m_idle
        self._m_idle = m_idle
        if delta > 0:
            trace.m_event("park", -1, count=delta, m_idle=m_idle)
        elif delta < 0:
            trace.m_event("unpark", -1, count=-delta, m_idle=m_idle)

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
# Stop (and join) before the interpreter tears down the streams a schedtrace may write to.
atexit.register(stop)
