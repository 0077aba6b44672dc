"""aiosys: Go's syscall machinery for asyncio.

``n = await aiosys.read(fd, 4096)`` never blocks the event loop: pollable fds wait on
aiosys's edge-triggered epoll netpoller, page-cached file reads return inline, and anything
that may block is handed off to a worker thread (an M) while the loop (the P) keeps running.
"""

from __future__ import annotations

__version__ = "0.1.0"
