"""aiosys.netpoll: the runtime's edge-triggered epoll netpoller (Go's ``netpoll.go``).

The process-wide fd reference table lives in :mod:`aiosys.netpoll.fdtable`.
"""

from __future__ import annotations

from .fdtable import fd_acquire, fd_close, fd_refs, fd_release

__all__ = ["fd_acquire", "fd_close", "fd_refs", "fd_release"]
