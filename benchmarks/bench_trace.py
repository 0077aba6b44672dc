"""What observability costs (issue 5).

1. ``handoff``: the forced-handoff round trip with tracing *off* against the same code with the
   tracing hooks *removed* (the scheduler's ``if trace.ENABLED: trace.x(...)`` statements are
   stripped from its functions' bytecode by an AST pass, then swapped in and out between
   runs).  Runs interleave (off, stripped, off, stripped...); the figure is the ratio of the
   medians.  Goal: at most 3% apart.
2. ``json``: the same round trip with JSON events on (written to /dev/null through the private
   JSON renderer): cost per handoff in µs over tracing off.
3. ``sysmon``: sysmon's own CPU time (its thread's CLOCK_THREAD_CPUTIME) while watching one
   idle loop, plus the loop thread's CPU spent running heartbeats, over an idle period (default
   20 s, extrapolated to a minute and labelled so).  Goal: under 0.5% of one core.

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


def _new_loop() -> asyncio.AbstractEventLoop:
    import aiosys

    factory = getattr(aiosys, "new_event_loop", None)
    if factory is None:
        from aiosys import netpoll

        factory = netpoll.new_event_loop
    loop: asyncio.AbstractEventLoop = factory()
    return loop


def _iqr(xs: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


def bench_handoff(rounds: int, n: int, with_json: bool) -> dict[str, Any]:
    import aiosys.trace

    stripper = HookStripper(scheduler_modules())
    call, label = _handoff_call()
    fd_, path = tempfile.mkstemp(dir="/tmp")
    loop = _new_loop()
    off: list[float] = []
    bare: list[float] = []
    json_on: list[float] = []
    devnull = open(os.devnull, "w")  # noqa: SIM115
    try:
        loop.run_until_complete(_round_trips(call, fd_, n))  # warm up (Ms spawned)
        for i in range(rounds):
            # Alternate which variant goes first, so drift does not favour one of them.
            if i % 2 == 0:
                off.append(loop.run_until_complete(_round_trips(call, fd_, n)))
            with stripper.stripped():
                bare.append(loop.run_until_complete(_round_trips(call, fd_, n)))
            if i % 2 == 1:
                off.append(loop.run_until_complete(_round_trips(call, fd_, n)))
            if with_json:
                aiosys.trace.enable(renderer="json", file=devnull, sysmon=False)
                try:
                    json_on.append(loop.run_until_complete(_round_trips(call, fd_, n)))
                finally:
                    aiosys.trace.disable()
    finally:
        loop.close()
        os.close(fd_)
        os.unlink(path)
        devnull.close()
    m_off, m_bare = statistics.median(off), statistics.median(bare)
    out: dict[str, Any] = {
        "call": label,
        "hooks_removed": stripper.removed,
        "functions_swapped": len(stripper.swaps),
        "rounds": rounds,
        "n_per_round": n,
        "off_us": m_off,
        "stripped_us": m_bare,
        "off_over_stripped": m_off / m_bare,
        "paired_ratio_median": statistics.median(a / b for a, b in zip(off, bare, strict=True)),
        "paired_ratio_iqr": _iqr([a / b for a, b in zip(off, bare, strict=True)]),
        "noise_off_pct": 100 * statistics.pstdev(off) / m_off,
        "noise_stripped_pct": 100 * statistics.pstdev(bare) / m_bare,
    }
    if json_on:
        m_json = statistics.median(json_on)
        out["json_us"] = m_json
        out["json_cost_us_per_handoff"] = m_json - m_off
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


# ---------------------------------------------------------------------------------------------
# sysmon's idle CPU


def bench_sysmon(idle_s: float) -> dict[str, Any]:
    import uvloop

    from aiosys.sched.sysmon import Sysmon, SysmonConfig

    results: dict[str, Any] = {"idle_s": idle_s}
    for name, factory in (("asyncio", asyncio.new_event_loop), ("uvloop", uvloop.new_event_loop)):
        # Baseline: the same idle loop, no sysmon.
        loop = factory()
        t0 = time.thread_time_ns()
        loop.run_until_complete(asyncio.sleep(min(idle_s, 5.0)))
        base_loop_ns = (time.thread_time_ns() - t0) / min(idle_s, 5.0)
        loop.close()

        s = Sysmon(SysmonConfig(), inflight=list, procs=list, stats=dict)
        loop = factory()
        s.start()
        s.watch_loop(loop)
        t0 = time.thread_time_ns()
        loop.run_until_complete(asyncio.sleep(idle_s))
        loop_ns = (time.thread_time_ns() - t0) / idle_s
        s.stop()
        loop.close()
        sysmon_ns = s.cpu_ns / idle_s
        heartbeat_ns = max(loop_ns - base_loop_ns, 0.0)
        results[name] = {
            "sysmon_cpu_pct_of_core": 100 * sysmon_ns / 1e9,
            "heartbeat_cpu_pct_of_core": 100 * heartbeat_ns / 1e9,
            "total_pct_of_core": 100 * (sysmon_ns + heartbeat_ns) / 1e9,
            "sysmon_rounds_per_s": s.counters.rounds / idle_s,
            "extrapolated_cpu_ms_per_minute": 60 * (sysmon_ns + heartbeat_ns) / 1e6,
        }
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    ap.add_argument("what", nargs="?", default="all", choices=["handoff", "json", "sysmon", "all"])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("-n", type=int, default=2000, help="round trips per run")
    ap.add_argument("--idle", type=float, default=20.0, help="idle seconds for sysmon")
    args = ap.parse_args(argv)
    affinity = sorted(os.sched_getaffinity(0))
    print(f"# python {sys.version.split()[0]}, cpus {affinity}")
    if args.what in ("handoff", "json", "all"):
        r = bench_handoff(args.rounds, args.n, with_json=args.what != "handoff")
        print(
            f"handoff ({r['call']}; {r['hooks_removed']} hook statements stripped from "
            f"{r['functions_swapped']} functions; {r['rounds']} interleaved runs x "
            f"{r['n_per_round']})\n"
            f"  tracing off : median {r['off_us']:.2f} us/round trip "
            f"(noise {r['noise_off_pct']:.1f}%)\n"
            f"  no hooks    : median {r['stripped_us']:.2f} us/round trip "
            f"(noise {r['noise_stripped_pct']:.1f}%)\n"
            f"  off / no hooks = {r['off_over_stripped']:.3f} (ratio of medians); "
            f"paired runs: median {r['paired_ratio_median']:.3f}, "
            f"IQR {r['paired_ratio_iqr'][0]:.3f}..{r['paired_ratio_iqr'][1]:.3f}"
        )
        check_ns = bench_check()
        per_handoff = 2 * check_ns  # entersyscall + exitsyscall
        print(
            f"  the hook itself: {check_ns:.1f} ns per false `if trace.ENABLED:` check, "
            f"{per_handoff:.0f} ns per handoff = "
            f"{100 * per_handoff / 1000 / r['stripped_us']:.3f}% of the no-hooks median"
        )
        if "json_us" in r:
            print(f"  JSON events on: median {r['json_us']:.2f} us/round trip, "
                  f"+{r['json_cost_us_per_handoff']:.2f} us per handoff")
    if args.what in ("sysmon", "all"):
        r = bench_sysmon(args.idle)
        for name in ("asyncio", "uvloop"):
            x = r[name]
            print(f"sysmon idle {r['idle_s']:.0f}s watching one idle {name} loop: "
                  f"sysmon {x['sysmon_cpu_pct_of_core']:.3f}% + heartbeat "
                  f"{x['heartbeat_cpu_pct_of_core']:.3f}% = {x['total_pct_of_core']:.3f}% of one "
                  f"core ({x['sysmon_rounds_per_s']:.0f} rounds/s; extrapolated "
                  f"{x['extrapolated_cpu_ms_per_minute']:.0f} ms CPU per idle minute)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
