"""Structural guard for "near-free when off": in the scheduler and the public awaitables,
every call into ``aiosys.sched.trace`` sits under an ``if trace.ENABLED:`` check, so with
tracing off a handoff pays one module-attribute load and a branch per hook, nothing more."""

from __future__ import annotations

import ast
import importlib
import inspect

import pytest

HOT_MODULES = ["aiosys.sched.proc", "aiosys._io"]
TRACE_FUNCS = {"entersyscall", "exitsyscall", "m_event", "sysmon_alarm"}


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    cur = node
    while cur in parents:
        parent = parents[cur]
        if isinstance(parent, ast.If) and cur in parent.body:
            test = parent.test
            if isinstance(test, ast.BoolOp):
                test = test.values[0]
            if (
                isinstance(test, ast.Attribute)
                and test.attr == "ENABLED"
                and isinstance(test.value, ast.Name)
                and "trace" in test.value.id
            ):
                return True
        cur = parent
    return False


@pytest.mark.parametrize("name", HOT_MODULES)
def test_every_trace_call_is_behind_the_enabled_check(name: str) -> None:
    try:
        mod = importlib.import_module(name)
    except ImportError:
        pytest.skip(f"{name} has not landed")
    tree = ast.parse(inspect.getsource(mod))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr in TRACE_FUNCS
        and isinstance(n.func.value, ast.Name)
        and "trace" in n.func.value.id
    ]
    unguarded = [f"{name}:{c.lineno}" for c in calls if not _guarded(c, parents)]
    assert not unguarded, f"trace calls not under `if trace.ENABLED:`: {unguarded}"


def test_the_scheduler_traces_enter_and_both_exits() -> None:
    src = inspect.getsource(importlib.import_module("aiosys.sched.proc"))
    assert "trace.entersyscall(g)" in src
    assert 'trace.exitsyscall(g, "fast")' in src
    assert 'trace.exitsyscall(g, "slow")' in src
