"""aiosys.native: Go's raw syscall entry points, epoll/eventfd stubs and vDSO clocks.

The bottom layer.  ``Syscall``/``Syscall6`` notify the scheduler; ``RawSyscall``/
``RawSyscall6`` never do and must only be used for calls that cannot block.  The raw forms
take integers: passing a pointer is the caller's responsibility.  The typed wrappers in
:mod:`aiosys.native.zsyscall` (generated from the syscall table) are the safe API.
"""

from __future__ import annotations

from ._lowlevel import (
    HAVE_EPOLL_PWAIT2 as HAVE_EPOLL_PWAIT2,
    SYS as SYS,
    Errno as Errno,
    EventBuffer as EventBuffer,
    RawSyscall as RawSyscall,
    RawSyscall6 as RawSyscall6,
    RawSyscallNoError as RawSyscallNoError,
    Syscall as Syscall,
    Syscall6 as Syscall6,
    epoll_create1 as epoll_create1,
    epoll_ctl as epoll_ctl,
    epoll_pwait2 as epoll_pwait2,
    epoll_wait as epoll_wait,
    eventfd as eventfd,
    eventfd_read as eventfd_read,
    eventfd_write as eventfd_write,
    nanotime as nanotime,
    preadv2 as preadv2,
    pwritev2 as pwritev2,
    walltime as walltime,
)
