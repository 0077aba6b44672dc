"""aiosys.netpoll: the runtime's edge-triggered epoll netpoller (Go's ``netpoll.go``).

One netpoller per event loop.  On the aiosys loop (:func:`new_event_loop`, :func:`run`,
:class:`EventLoopPolicy`) its epoll set *is* the loop's selector; on any other running loop
(stdlib, uvloop) it attaches by watching its epoll fd with ``loop.add_reader``.

Awaitables for pollable fds (sockets, pipes, FIFOs, ttys, eventfd, timerfd, signalfd,
inotify): try the syscall inline, park on EAGAIN (Go's ``internal/poll.FD`` flow).  Deadlines
per fd and direction, one waiter per direction, close-while-waiting, stale-event safety.

Scheduler hooks (aiosys loop only; attach mode returns False)::

    p = aiosys.netpoll.current_poller()
    p.add_park_hooks(before_park, after_park)   # before_park() -> False vetoes blocking
    p.add_close_hook(cb)

``before_park()`` runs before an ``epoll_wait`` that would block (timeout != 0); if any returns
False (work is pending) the wait uses timeout 0.  ``after_park()`` runs after *every*
``epoll_wait`` of the loop once hooks are installed, blocking or not: it follows each
``before_park`` (clear the "parked" flag there) and it is also the per-iteration drain point
(Go's ``netpoll(0)``), so completions are drained even on a loop that never blocks.  Both run
on the loop thread.  ``p.post(cb)`` (any thread) runs ``cb`` on the loop thread at the next
poll step through the coalesced eventfd wakeup (at most one eventfd write per poll cycle);
``p.wakeup()`` only wakes.

The process-wide fd reference table is :mod:`aiosys.netpoll.fdtable`.  A parked netpoll wait
holds its reference lazily: ``fd_refs`` does not count it until a close begins, at which
point the close takes one reference per parked waiter and the real close waits for them.
"""

from __future__ import annotations

from ._epoll import Netpoller, PollDesc
from ._errors import (
    BlockingModeError,
    BusyError,
    DeadlineExceededError,
    FDClosedError,
    NotPollableError,
)
from ._loop import (
    AiosysEventLoop,
    EventLoopPolicy,
    NetpollSelector,
    current_poller,
    detach,
    new_event_loop,
    run,
    stats,
)
from ._ops import (
    close,
    is_registered,
    read,
    readinto,
    set_deadline,
    set_read_deadline,
    set_write_deadline,
    wait_readable,
    wait_writable,
    write,
    write_all,
)
from ._sockops import accept, connect, recv, recv_into, recvfrom, send, sendall, sendto
from .fdtable import fd_acquire, fd_close, fd_refs, fd_release

__all__ = [
    "AiosysEventLoop",
    "BlockingModeError",
    "BusyError",
    "DeadlineExceededError",
    "EventLoopPolicy",
    "FDClosedError",
    "NetpollSelector",
    "Netpoller",
    "NotPollableError",
    "PollDesc",
    "accept",
    "close",
    "connect",
    "current_poller",
    "detach",
    "fd_acquire",
    "fd_close",
    "fd_refs",
    "fd_release",
    "is_registered",
    "new_event_loop",
    "read",
    "readinto",
    "recv",
    "recv_into",
    "recvfrom",
    "run",
    "send",
    "sendall",
    "sendto",
    "set_deadline",
    "set_read_deadline",
    "set_write_deadline",
    "stats",
    "wait_readable",
    "wait_writable",
    "write",
    "write_all",
]
