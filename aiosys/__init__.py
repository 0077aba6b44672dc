"""aiosys: Go's syscall machinery for asyncio.

``n = await aiosys.read(fd, 4096)`` never blocks the event loop: pollable fds wait on
aiosys's edge-triggered epoll netpoller, page-cached file reads return inline, and anything
that may block is handed off to a worker thread (an M) while the loop (the P) keeps running.

Layers (imports point down only): this module and :mod:`aiosys._io` (the awaitables) ->
:mod:`aiosys.sched` (G/P/M, entersyscall handoff, sysmon) -> :mod:`aiosys.netpoll` (epoll
netpoller, the aiosys loop, attach mode) -> :mod:`aiosys.native` (raw syscalls, typed wrappers).
Each public name is re-exported here exactly once (a test checks it).
"""

from __future__ import annotations

from . import trace as trace
from ._file import (
    AsyncFile as AsyncFile,
)
from ._file import (
    open_file as open_file,
)
from ._io import (
    DirEntry as DirEntry,
)
from ._io import (
    PoolExhaustedError as PoolExhaustedError,
)
from ._io import (
    chmod as chmod,
)
from ._io import (
    close as close,
)
from ._io import (
    copy_file_range as copy_file_range,
)
from ._io import (
    fallocate as fallocate,
)
from ._io import (
    fdatasync as fdatasync,
)
from ._io import (
    flock as flock,
)
from ._io import (
    fstat as fstat,
)
from ._io import (
    fsync as fsync,
)
from ._io import (
    ftruncate as ftruncate,
)
from ._io import (
    listdir as listdir,
)
from ._io import (
    lstat as lstat,
)
from ._io import (
    mkdir as mkdir,
)
from ._io import (
    open as open,
)
from ._io import (
    pread as pread,
)
from ._io import (
    preadv as preadv,
)
from ._io import (
    pwrite as pwrite,
)
from ._io import (
    pwritev as pwritev,
)
from ._io import (
    read as read,
)
from ._io import (
    readinto as readinto,
)
from ._io import (
    readlink as readlink,
)
from ._io import (
    rename as rename,
)
from ._io import (
    rmdir as rmdir,
)
from ._io import (
    scandir as scandir,
)
from ._io import (
    sendfile as sendfile,
)
from ._io import (
    splice as splice,
)
from ._io import (
    stat as stat,
)
from ._io import (
    symlink as symlink,
)
from ._io import (
    syscall as syscall,
)
from ._io import (
    unlink as unlink,
)
from ._io import (
    write as write,
)
from ._io import (
    write_all as write_all,
)
from .netpoll import (
    BlockingModeError as BlockingModeError,
)
from .netpoll import (
    BusyError as BusyError,
)
from .netpoll import (
    DeadlineExceededError as DeadlineExceededError,
)
from .netpoll import (
    EventLoopPolicy as EventLoopPolicy,
)
from .netpoll import (
    FDClosedError as FDClosedError,
)
from .netpoll import (
    NotPollableError as NotPollableError,
)
from .netpoll import (
    accept as accept,
)
from .netpoll import (
    connect as connect,
)
from .netpoll import (
    new_event_loop as new_event_loop,
)
from .netpoll import (
    recv as recv,
)
from .netpoll import (
    recv_into as recv_into,
)
from .netpoll import (
    recvfrom as recvfrom,
)
from .netpoll import (
    run as run,
)
from .netpoll import (
    send as send,
)
from .netpoll import (
    sendall as sendall,
)
from .netpoll import (
    sendto as sendto,
)
from .netpoll import (
    set_deadline as set_deadline,
)
from .netpoll import (
    set_read_deadline as set_read_deadline,
)
from .netpoll import (
    set_write_deadline as set_write_deadline,
)
from .netpoll import (
    wait_readable as wait_readable,
)
from .netpoll import (
    wait_writable as wait_writable,
)
from .trace import stats as stats

__version__ = "0.1.0"
