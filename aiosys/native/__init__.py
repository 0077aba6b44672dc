"""aiosys.native: Go's raw syscall entry points, epoll/eventfd stubs and vDSO clocks.

The bottom layer.  ``Syscall``/``Syscall6`` notify the scheduler (entersyscall/exitsyscall
hooks) and release the GIL around the trap; ``RawSyscall``/``RawSyscall6`` never notify and
keep the GIL (Go's RawSyscall keeps its P), so they must only be used for calls that cannot
block.  The raw forms take integers: passing a pointer is the caller's responsibility.  The
typed wrappers in :mod:`aiosys.native.zsyscall` (generated from ``syscalls.tbl`` by
``python -m aiosys.native.mksyscall``) are the safe API; each has a ``prepare_NAME`` returning
a :class:`Prepared` (trap, six words, pinned memory, ``finish``) for running the trap on
another thread.
"""

from __future__ import annotations

from . import zsyscall as zsyscall
from ._lowlevel import (
    HAVE_EPOLL_PWAIT2 as HAVE_EPOLL_PWAIT2,
)
from ._lowlevel import (
    SYS as SYS,
)
from ._lowlevel import (
    Errno as Errno,
)
from ._lowlevel import (
    EventBuffer as EventBuffer,
)
from ._lowlevel import (
    RawSyscall as RawSyscall,
)
from ._lowlevel import (
    RawSyscall6 as RawSyscall6,
)
from ._lowlevel import (
    RawSyscallNoError as RawSyscallNoError,
)
from ._lowlevel import (
    Syscall as Syscall,
)
from ._lowlevel import (
    Syscall6 as Syscall6,
)
from ._lowlevel import (
    epoll_create1 as epoll_create1,
)
from ._lowlevel import (
    epoll_ctl as epoll_ctl,
)
from ._lowlevel import (
    epoll_pwait2 as epoll_pwait2,
)
from ._lowlevel import (
    epoll_wait as epoll_wait,
)
from ._lowlevel import (
    eventfd as eventfd,
)
from ._lowlevel import (
    eventfd_read as eventfd_read,
)
from ._lowlevel import (
    eventfd_write as eventfd_write,
)
from ._lowlevel import (
    nanotime as nanotime,
)
from ._lowlevel import (
    preadv2 as preadv2,
)
from ._lowlevel import (
    pwritev2 as pwritev2,
)
from ._lowlevel import (
    walltime as walltime,
)
from .prepared import (
    Entry as Entry,
)
from .prepared import (
    Prepared as Prepared,
)
