"""Small stand-ins for the scheduler's records (G, P) used where the real path is not needed."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from aiosys.native import nanotime

_goids = itertools.count(1)


@dataclass
class FakeG:
    syscall: str = "pread64"
    fd: int = 7
    p_id: int = 0
    queue_depth: int = 0
    goid: int = field(default_factory=lambda: next(_goids))
    t_enter: int = field(default_factory=nanotime)
    t_start: int = 0
    t_end: int = 0
    state: str = "_Gsyscall"


@dataclass
class FakeP:
    id: int
    loop: Any = None
    status: str = "_Prunning"
    completions: list[Any] = field(default_factory=list)
