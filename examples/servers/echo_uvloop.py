"""The goroutine-style echo server (``echo_goroutine.py``) on uvloop, aiosys attached.

uvloop knows nothing of aiosys: the first aiosys call finds a foreign running loop and attaches
the netpoller to it (uvloop watches the netpoller's epoll fd; the netpoller drains it with a
zero-timeout epoll_wait on the loop's thread).  No extra thread, same code.

    python examples/servers/echo_uvloop.py --port 0
"""

from __future__ import annotations

import sys

from echo_goroutine import run

if __name__ == "__main__":
    sys.exit(run("uvloop", doc=__doc__))
