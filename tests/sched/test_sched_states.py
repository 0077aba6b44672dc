"""The G and P state machines: every legal transition passes, every other one throws."""

from __future__ import annotations

import itertools

import pytest

from aiosys.sched import g as gmod
from aiosys.sched.g import G, SchedulerError, casgstatus, check_ptransition

G_STATES = [gmod._Grunning, gmod._Gsyscall, gmod._Grunnable, gmod._Gwaiting, gmod._Gdead]
P_STATES = [gmod._Prunning, gmod._Psyscall, gmod._Pidle, gmod._Pdead]


@pytest.mark.parametrize(("old", "new"), list(itertools.product(G_STATES, G_STATES)))
def test_g_transition_table(old: str, new: str) -> None:
    g = G("read", 0, 3, 0, 0)
    g.state = old
    if (old, new) in gmod.G_TRANSITIONS:
        casgstatus(g, old, new)
        assert g.state is new
    else:
        with pytest.raises(SchedulerError):
            casgstatus(g, old, new)
        assert g.state is old


@pytest.mark.parametrize(("old", "new"), list(itertools.product(P_STATES, P_STATES)))
def test_p_transition_table(old: str, new: str) -> None:
    if (old, new) in gmod.P_TRANSITIONS:
        check_ptransition(old, new)
    else:
        with pytest.raises(SchedulerError):
            check_ptransition(old, new)


def test_casgstatus_checks_the_current_state_not_only_the_pair() -> None:
    g = G("read", 0, 3, 0, 0)
    with pytest.raises(SchedulerError, match="bad transition"):
        casgstatus(g, gmod._Gsyscall, gmod._Grunnable)  # g is _Grunning


def test_syscall_path_through_the_table() -> None:
    g = G("pread64", 17, 3, 0, 0)
    for new in (gmod._Gsyscall, gmod._Grunnable, gmod._Grunning, gmod._Gdead):
        casgstatus(g, g.state, new)
    assert g.state is gmod._Gdead


def test_g_ids_are_unique_and_fields_exist() -> None:
    a, b = G("x", 0, -1, 0, 1), G("y", 0, -1, 0, 2)
    assert a.goid != b.goid
    for field in ("goid", "syscall", "fd", "p_id", "t_enter", "t_start", "t_end", "state",
                  "queue_depth"):
        assert hasattr(a, field)
