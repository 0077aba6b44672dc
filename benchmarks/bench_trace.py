"""What observability costs (issue 5).

1. ``handoff``: the forced-handoff round trip with tracing *off* against the same code with the
   tracing hooks *removed* (the scheduler's ``if trace.ENABLED: trace.x(...)`` statements are
   stripped from its functions' bytecode by an AST pass, then swapped in and out between
   runs).  Runs interleave (off, stripped, off, stripped...); the figure is the ratio of the
   medians.  Goal: at most 3% apart.
2. ``json``: the same round trip with JSON events on (written to /dev/null through the private
   JSON renderer): cost per handoff in µs over tracing off.
3. ``sysmon``: sysmon's own CPU time (its thread's CLOCK_THREAD_CPUTIME) while watching one
   idle loop, plus the extra CPU of the loop thread over the same idle loop without sysmon
   (probes), over an idle period (default 20 s, extrapolated to a minute and labelled so), on
   the aiosys loop, the stdlib loop and uvloop.  Goal: under 0.5% of one core.

Run:  .venv/bin/python benchmarks/bench_trace.py [handoff|json|sysmon|all] [--idle 20]
Pinned: taskset -c 0 .venv/bin/python benchmarks/bench_trace.py all
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import importlib
import inspect
import os
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# ---------------------------------------------------------------------------------------------
# Stripping the hooks: a build path with no tracing hooks at all


def _is_trace_check(test: ast.expr) -> bool:
    """``trace.ENABLED`` (any module alias), or an ``and`` whose first operand is one."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return _is_trace_check(test.values[0])
    return (
        isinstance(test, ast.Attribute)
        and test.attr == "ENABLED"
        and isinstance(test.value, ast.Name)
        and "trace" in test.value.id
    )


class _StripHooks(ast.NodeTransformer):
    def __init__(self) -> None:
        self.removed = 0

    def visit_If(self, node: ast.If) -> Any:
        self.generic_visit(node)
        if _is_trace_check(node.test):
            self.removed += 1
            return node.orelse or None
        return node

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        for name in ("body", "orelse", "finalbody"):
            block = getattr(node, name, None)
            if isinstance(block, list) and not block and name == "body":
                setattr(node, name, [ast.Pass()])
        return node


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from _codes(c)


def _functions(mod: types.ModuleType) -> Iterator[types.FunctionType]:
    seen: set[int] = set()

    def walk(obj: Any, depth: int) -> Iterator[types.FunctionType]:
        if id(obj) in seen or depth > 3:
            return
        seen.add(id(obj))
        if isinstance(obj, types.FunctionType) and obj.__module__ == mod.__name__:
            yield obj
        elif isinstance(obj, (staticmethod, classmethod)):
            yield from walk(obj.__func__, depth + 1)
        elif isinstance(obj, property):
            for f in (obj.fget, obj.fset, obj.fdel):
                if f is not None:
                    yield from walk(f, depth + 1)
        elif isinstance(obj, type) and obj.__module__ == mod.__name__:
            for v in vars(obj).values():
                yield from walk(v, depth + 1)

    for v in list(vars(mod).values()):
        yield from walk(v, 0)


class HookStripper:
    """Swap the scheduler's functions between their real bytecode (hooks present, tracing
    off) and a copy compiled without the hook statements."""

    def __init__(self, module_names: list[str]) -> None:
        self.swaps: list[tuple[types.FunctionType, types.CodeType, types.CodeType]] = []
        self.removed = 0
        for name in module_names:
            mod = importlib.import_module(name)
            src = inspect.getsource(mod)
            tree = ast.parse(src)
            stripper = _StripHooks()
            tree = ast.fix_missing_locations(stripper.visit(tree))
            if not stripper.removed:
                continue
            self.removed += stripper.removed
            compiled = compile(tree, inspect.getfile(mod), "exec")
            by_qualname = {c.co_qualname: c for c in _codes(compiled)}
            for fn in _functions(mod):
                new = by_qualname.get(fn.__code__.co_qualname)
                if new is None or new.co_code == fn.__code__.co_code:
                    continue
                if new.co_freevars != fn.__code__.co_freevars:
                    continue
                self.swaps.append((fn, fn.__code__, new))

    @contextmanager
    def stripped(self) -> Iterator[None]:
        for fn, _, new in self.swaps:
            fn.__code__ = new
        try:
            yield
        finally:
            for fn, old, _ in self.swaps:
                fn.__code__ = old


def scheduler_modules() -> list[str]:
    import aiosys.sched

    pkg_dir = os.path.dirname(aiosys.sched.__file__ or "")
    mine = {"trace", "sysmon", "schedtrace"}
    names = ["aiosys._io"] if importlib.util.find_spec("aiosys._io") else []
    for f in sorted(os.listdir(pkg_dir)):
        if f.endswith(".py") and f[:-3] not in mine and f != "__init__.py":
            names.append(f"aiosys.sched.{f[:-3]}")
    names.append("aiosys.sched")
    return names


# ---------------------------------------------------------------------------------------------
# The handoff round trip


def _handoff_call() -> tuple[Callable[[int], Any], str]:
    """An awaitable that always hands off to an M (no inline fast path)."""
    import aiosys

    for name in ("fstat", "fsync"):
        fn = getattr(aiosys, name, None)
        if fn is not None:
            return fn, f"aiosys.{name}(fd)"
    import aiosys._io as io_mod

    fn = io_mod.fstat
    return fn, "aiosys._io.fstat(fd)"


async def _round_trips(call: Callable[[int], Any], fd: int, n: int) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(n):
        await call(fd)
    return (time.perf_counter_ns() - t0) / n / 1000.0


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()  # type: ignore[no-any-return]
    if kind == "asyncio":
        return asyncio.new_event_loop()
    from aiosys import netpoll

    loop: asyncio.AbstractEventLoop = netpoll.new_event_loop()
    return loop


def _iqr(xs: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


def bench_handoff(
    rounds: int, n: int, *, with_json: bool, with_sysmon: bool, loop_kind: str = "aiosys"
) -> dict[str, Any]:
    """Interleave the variants (their order rotates every round, so drift favours none) and
    compare medians and per-round ratios."""
    import aiosys.trace
    from aiosys.sched import sysmon

    stripper = HookStripper(scheduler_modules())
    call, label = _handoff_call()
    fd_, path = tempfile.mkstemp(dir="/tmp")
    loop = _new_loop(loop_kind)
    devnull = open(os.devnull, "w")  # noqa: SIM115

    @contextmanager
    def off() -> Iterator[None]:
        yield

    @contextmanager
    def json_on() -> Iterator[None]:
        aiosys.trace.enable(renderer="json", file=devnull, sysmon=False)
        try:
            yield
        finally:
            aiosys.trace.disable()

    @contextmanager
    def sysmon_on() -> Iterator[None]:
        s = sysmon.require("bench")
        s.watch_loop(loop)
        try:
            yield
        finally:
            sysmon.release("bench")

    variants: dict[str, Callable[[], Any]] = {"off": off, "stripped": stripper.stripped}
    if with_json:
        variants["json"] = json_on
    if with_sysmon:
        variants["sysmon"] = sysmon_on
    names = list(variants)
    runs: dict[str, list[float]] = {k: [] for k in names}
    try:
        loop.run_until_complete(_round_trips(call, fd_, n))  # warm up (Ms spawned)
        for i in range(rounds):
            order = names[i % len(names) :] + names[: i % len(names)]
            for name in order:
                with variants[name]():
                    runs[name].append(loop.run_until_complete(_round_trips(call, fd_, n)))
    finally:
        sysmon.stop()
        if loop_kind != "aiosys":
            from aiosys import netpoll

            detach = getattr(netpoll, "detach", None)
            if detach is not None:

                async def _detach() -> None:
                    detach()

                loop.run_until_complete(_detach())
        loop.close()
        os.close(fd_)
        os.unlink(path)
        devnull.close()
    med = {k: statistics.median(v) for k, v in runs.items()}

    def paired(a: str, b: str) -> tuple[float, tuple[float, float]]:
        ratios = [x / y for x, y in zip(runs[a], runs[b], strict=True)]
        return statistics.median(ratios), _iqr(ratios)

    out: dict[str, Any] = {
        "call": label,
        "loop": loop_kind,
        "hooks_removed": stripper.removed,
        "functions_swapped": len(stripper.swaps),
        "rounds": rounds,
        "n_per_round": n,
        "median_us": med,
        "noise_pct": {k: 100 * statistics.pstdev(v) / med[k] for k, v in runs.items()},
        "off_over_stripped": med["off"] / med["stripped"],
        "paired_off_stripped": paired("off", "stripped"),
    }
    if with_json:
        out["json_cost_us_per_handoff"] = med["json"] - med["off"]
        out["paired_json_off"] = paired("json", "off")
    if with_sysmon:
        out["paired_sysmon_off"] = paired("sysmon", "off")
    return out


def bench_check(loops: int = 2_000_000) -> float:
    """ns per ``if trace.ENABLED:`` check that is false (what each hook costs when off), net
    of an empty loop of the same length."""
    import timeit

    from aiosys.sched import trace

    assert not trace.ENABLED
    env = {"trace": trace}
    stmt = "if trace.ENABLED:\n    trace.entersyscall(None)"
    with_check = min(timeit.repeat(stmt, globals=env, number=loops, repeat=5))
    empty = min(timeit.repeat("pass", number=loops, repeat=5))
    return max(with_check - empty, 0.0) / loops * 1e9


def bench_json_events(number: int = 5000) -> float:
    """µs for the two JSON events of one handoff (entersyscall + exitsyscall of a finished G,
    JSON-rendered to /dev/null), measured alone."""
    import timeit

    import aiosys.trace
    from aiosys.native import nanotime
    from aiosys.sched import trace
    from aiosys.sched.g import G

    g = G("statx", 0, 5, 1, nanotime())
    g.t_start, g.t_end, g.m_id = g.t_enter + 3_000, g.t_enter + 9_000, 2
    with open(os.devnull, "w") as devnull:
        aiosys.trace.enable(renderer="json", file=devnull, sysmon=False)
        try:

            def pair() -> None:
                trace.entersyscall(g)
                trace.exitsyscall(g, "fast")

            best = min(timeit.repeat(pair, number=number, repeat=5))
        finally:
            aiosys.trace.disable()
    return best / number * 1e6


# ---------------------------------------------------------------------------------------------
# sysmon's idle CPU


def bench_sysmon(idle_s: float) -> dict[str, Any]:
    import uvloop

    from aiosys.sched.sysmon import Sysmon, SysmonConfig

    results: dict[str, Any] = {"idle_s": idle_s}
    from aiosys import netpoll

    kinds: tuple[tuple[str, Callable[[], asyncio.AbstractEventLoop]], ...] = (
        ("aiosys", netpoll.new_event_loop),
        ("asyncio", asyncio.new_event_loop),
        ("uvloop", uvloop.new_event_loop),
    )
    for name, factory in kinds:
        # Baseline: the same idle loop, no sysmon.
        loop = factory()
        t0 = time.thread_time_ns()
        loop.run_until_complete(asyncio.sleep(min(idle_s, 5.0)))
        base_loop_ns = (time.thread_time_ns() - t0) / min(idle_s, 5.0)
        loop.close()

        s = Sysmon(SysmonConfig())  # the real scheduler's sources, default thresholds
        loop = factory()
        s.start()
        s.watch_loop(loop)
        t0 = time.thread_time_ns()
        loop.run_until_complete(asyncio.sleep(idle_s))
        loop_ns = (time.thread_time_ns() - t0) / idle_s
        s.stop()
        loop.close()
        sysmon_ns = s.cpu_ns / idle_s
        probe_ns = max(loop_ns - base_loop_ns, 0.0)
        results[name] = {
            "sysmon_cpu_pct_of_core": 100 * sysmon_ns / 1e9,
            "loop_cpu_pct_of_core": 100 * probe_ns / 1e9,
            "total_pct_of_core": 100 * (sysmon_ns + probe_ns) / 1e9,
            "sysmon_rounds_per_s": s.counters.rounds / idle_s,
            "extrapolated_cpu_ms_per_minute": 60 * (sysmon_ns + probe_ns) / 1e6,
        }
    # Reference: the floor of any thread that wakes 20 times a second on this machine.
    import threading

    out: list[int] = []
    ref_s = min(idle_s, 5.0)

    def sleeper() -> None:
        end = time.monotonic() + ref_s
        while time.monotonic() < end:
            time.sleep(0.05)
        out.append(time.thread_time_ns())

    t = threading.Thread(target=sleeper)
    t.start()
    t.join()
    results["bare_thread_20hz_pct_of_core"] = 100 * out[0] / ref_s / 1e9
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    ap.add_argument("what", nargs="?", default="all", choices=["handoff", "json", "sysmon", "all"])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("-n", type=int, default=2000, help="round trips per run")
    ap.add_argument("--idle", type=float, default=20.0, help="idle seconds for sysmon")
    ap.add_argument("--loop", default="aiosys", choices=["aiosys", "asyncio", "uvloop"])
    args = ap.parse_args(argv)
    affinity = sorted(os.sched_getaffinity(0))
    print(f"# python {sys.version.split()[0]}, cpus {affinity}")
    if args.what in ("handoff", "json", "all"):
        r = bench_handoff(
            args.rounds,
            args.n,
            with_json=args.what != "handoff",
            with_sysmon=args.what != "handoff",
            loop_kind=args.loop,
        )
        med, noise = r["median_us"], r["noise_pct"]
        print(
            f"handoff round trip, {r['call']} on the {r['loop']} loop; {r['hooks_removed']} "
            f"hook statements stripped from {r['functions_swapped']} functions; "
            f"{r['rounds']} rounds x {r['n_per_round']} calls, variants interleaved"
        )
        for k in med:
            print(f"  {k:9s}: median {med[k]:8.2f} us/round trip (noise {noise[k]:.1f}%)")
        ratio, (q1, q3) = r["paired_off_stripped"]
        print(
            f"  tracing off / no hooks: {r['off_over_stripped']:.3f} (ratio of medians); "
            f"per-round ratio median {ratio:.3f}, IQR {q1:.3f}..{q3:.3f}"
        )
        check_ns = bench_check()
        per_handoff = 2 * check_ns  # entersyscall + exitsyscall
        print(
            f"  the hook itself: {check_ns:.1f} ns per false `if trace.ENABLED:` check, "
            f"{per_handoff:.0f} ns per handoff = "
            f"{100 * per_handoff / 1000 / med['stripped']:.3f}% of the no-hooks median"
        )
        if "json_cost_us_per_handoff" in r:
            ratio, (q1, q3) = r["paired_json_off"]
            print(
                f"  JSON events on: +{r['json_cost_us_per_handoff']:.2f} us per handoff "
                f"(2 events); per-round ratio to off {ratio:.3f}, IQR {q1:.3f}..{q3:.3f}"
            )
            print(f"  the two JSON events alone (timeit, best of 5): {bench_json_events():.2f} us")
        if "paired_sysmon_off" in r:
            ratio, (q1, q3) = r["paired_sysmon_off"]
            print(
                f"  sysmon watching this busy loop: per-round ratio to off {ratio:.3f}, "
                f"IQR {q1:.3f}..{q3:.3f}"
            )
    if args.what in ("sysmon", "all"):
        r = bench_sysmon(args.idle)
        for name in ("aiosys", "asyncio", "uvloop"):
            x = r[name]
            print(f"sysmon idle {r['idle_s']:.0f}s watching one idle {name} loop: "
                  f"sysmon thread {x['sysmon_cpu_pct_of_core']:.3f}% + loop thread (probes) "
                  f"{x['loop_cpu_pct_of_core']:.3f}% = {x['total_pct_of_core']:.3f}% of one "
                  f"core ({x['sysmon_rounds_per_s']:.0f} rounds/s; extrapolated "
                  f"{x['extrapolated_cpu_ms_per_minute']:.0f} ms CPU per idle minute)")
        print(f"reference: a bare Python thread doing time.sleep(0.05) in a loop: "
              f"{r['bare_thread_20hz_pct_of_core']:.3f}% of one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
