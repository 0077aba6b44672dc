"""Shared plumbing for the example servers: command line, trace switch, the "listening on"
line, signal handling and an fd-leak check at exit.  Not part of aiosys's API: the servers
import it as a sibling module (``python examples/servers/echo_goroutine.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

LISTEN_PREFIX = "listening on "


def make_parser(description: str | None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(description or "").strip().splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port and prints it")
    ap.add_argument(
        "--trace",
        choices=["console", "json"],
        default=None,
        help="log every handoff (entersyscall/exitsyscall, M events) as console or JSON lines",
    )
    ap.add_argument(
        "--max-conns",
        type=int,
        default=1000,
        help="connection limit: connections beyond it are closed at once (default 1000)",
    )
    return ap


def enable_trace(mode: str | None) -> None:
    """Turn on aiosys's structured handoff events, rendered to stderr (console or JSON)."""
    if not mode:
        return
    try:
        from aiosys import trace
    except ImportError:
        print(f"note: aiosys.trace is not available yet; --trace {mode} ignored", file=sys.stderr)
        return
    enable: Callable[..., Any] = trace.enable
    try:
        enable(renderer=mode)
    except TypeError:
        enable()


def announce(sockname: tuple[Any, ...]) -> None:
    """Print the parseable ``listening on HOST:PORT`` line (tests and the CLI wait for it)."""
    host, port = sockname[0], sockname[1]
    print(f"{LISTEN_PREFIX}{host}:{port}", flush=True)


def open_fds() -> set[int]:
    try:
        return {int(n) for n in os.listdir("/proc/self/fd")}
    except OSError:
        return set()


def report_leaks(before: set[int]) -> int:
    """Compare the open fds with ``before`` (taken at start); print and return 3 if any leaked.

    Only sockets, epoll fds and eventfds count: libuv keeps a process-wide signal pipe open
    after its loop closes, which is not the server's to close.
    """
    names = []
    for fd in sorted(open_fds() - before):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the listdir's own fd, closed by now
        if target.startswith(("socket:", "anon_inode:")):
            names.append(f"{fd}->{target}")
    if names:
        print(f"leaked fds at exit: {names}", file=sys.stderr)
        return 3
    return 0


def on_stop_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> None:
    """SIGINT and SIGTERM call ``stop()`` on the loop (no KeyboardInterrupt traceback)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)


def remove_stop_signals(loop: asyncio.AbstractEventLoop) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(sig)


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """``aiosys`` (the aiosys event loop), ``uvloop`` or ``stdlib``."""
    if name == "aiosys":
        import aiosys

        factory = getattr(aiosys, "new_event_loop", None)
        if factory is None:
            from aiosys import netpoll

            factory = netpoll.new_event_loop
        return factory  # type: ignore[no-any-return]
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop  # type: ignore[no-any-return]
    if name == "stdlib":
        return asyncio.new_event_loop
    raise ValueError(f"unknown loop {name!r}")


def aiosys_io() -> Any:
    """The namespace with the awaitables: ``aiosys`` once the lead re-exports them, else
    ``aiosys.netpoll`` (pollable fds only, which is all an echo server needs)."""
    import aiosys

    if hasattr(aiosys, "accept") and hasattr(aiosys, "write_all"):
        return aiosys
    from aiosys import netpoll

    return netpoll


async def maybe_await(x: Any) -> Any:
    if asyncio.iscoroutine(x) or isinstance(x, asyncio.Future):
        return await x
    return x
