"""Test-only fault injection: make chosen syscalls fail, come up short or stall.

Nothing in aiosys imports this module, and it adds no check to any production path: it
works by *replacing module-level function references* for the duration of a ``with`` block,
then putting the originals back.  Outside a ``with`` block aiosys runs exactly the code it
always runs, at the same speed.

A target is named by where it lives, ``"aiosys.native._lowlevel:epoll_wait"`` or
``"os:read"``.  Python code often binds a function under another name at import time
(``from ._lowlevel import raw3`` or ``_wait = lib.aiosys_epoll_wait``), so the patch is
applied to *every* global of every loaded ``aiosys.*`` module that holds the same object,
not only to the home module.  (A reference cached on an instance is not reached; such a
path needs a hook from its owner.)

What a fault does, per call that matches ``when`` (default: every call), after ``after``
matching calls have passed untouched and until ``times`` faults were injected:

* ``errno=E``: fail with E without making the call.  ``style="raise"`` raises the matching
  ``OSError`` (for functions that raise, like ``epoll_wait``); ``style="return"`` returns
  ``-E`` (for the raw forms that return the kernel's value, like ``raw3`` or
  ``preadv2_into``); ``style="triple"`` returns Go's ``(-1, 0, Errno(E))``.
* ``returns=V``: return ``V`` without making the call (e.g. 0 from a raw epoll wait: what
  the C stub reports for EINTR, nothing consumed).
* ``rewrite=fn``: call the original with ``fn(args) -> args`` (e.g. shrink a length
  argument to force a short read or write: :func:`shrink`).
* ``stall=seconds``: sleep before the call (a slow disk, a stuck worker).
* ``result=fn``: post-process the original's result (e.g. report a bogus count);
  ``post=fn(r, args)`` the same with the call's arguments (e.g. add events to the buffer an
  ``epoll_wait`` filled: :func:`extra_events`).

Counters on the returned :class:`Fault`: ``calls`` (matching calls seen) and ``injected``.
They are updated under a lock, since faults may fire on worker threads.

Example::

    with inject("aiosys.native._lowlevel:epoll_wait", errno=errno.EINTR, times=5) as f:
        ...
    assert f.injected == 5
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any, Literal

__all__ = ["Fault", "extra_events", "inject", "inject_many", "shrink", "targets_of"]

Style = Literal["raise", "return", "triple"]
_UNSET: Any = object()
Args = tuple[Any, ...]


class Fault:
    """One installed fault and its counters (thread-safe)."""

    def __init__(
        self,
        target: str,
        *,
        errno: int | None = None,
        style: Style = "raise",
        when: Callable[..., bool] | None = None,
        after: int = 0,
        times: int | None = None,
        rewrite: Callable[[Args], Args] | None = None,
        result: Callable[[Any], Any] | None = None,
        post: Callable[[Any, Args], Any] | None = None,
        stall: float = 0.0,
        returns: Any = _UNSET,
    ) -> None:
        if (errno is None and rewrite is None and result is None and post is None
                and not stall and returns is _UNSET):
            raise ValueError("a fault needs errno, returns, rewrite, result, post or stall")
        self.target = target
        self.errno = errno
        self.style: Style = style
        self.when = when
        self.after = after
        self.times = times
        self.rewrite = rewrite
        self.result = result
        self.post = post
        self.returns = returns
        self.stall = stall
        self.calls = 0
        self.injected = 0
        self._lock = threading.Lock()

    def _take(self, args: Args, kwargs: dict[str, Any]) -> bool:
        """Whether this call gets the fault (counts it)."""
        if self.when is not None and not self.when(*args, **kwargs):
            return False
        with self._lock:
            self.calls += 1
            if self.calls <= self.after:
                return False
            if self.times is not None and self.injected >= self.times:
                return False
            self.injected += 1
            return True

    def wrap(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def faulty(*args: Any, **kwargs: Any) -> Any:
            if not self._take(args, kwargs):
                return original(*args, **kwargs)
            if self.stall:
                time.sleep(self.stall)
            if self.errno is not None:
                if self.style == "return":
                    return -self.errno
                if self.style == "triple":
                    from aiosys.native._lowlevel import errno_of

                    return -1, 0, errno_of(self.errno)
                raise OSError(self.errno, os.strerror(self.errno))
            if self.returns is not _UNSET:
                return self.returns
            if self.rewrite is not None:
                args = self.rewrite(args)
            r = original(*args, **kwargs)
            if self.post is not None:
                r = self.post(r, args)
            return self.result(r) if self.result is not None else r

        faulty.__wrapped__ = original  # type: ignore[attr-defined]
        faulty.__name__ = getattr(original, "__name__", "faulty")
        return faulty


def _resolve(target: str) -> tuple[ModuleType, str, Any]:
    modname, sep, attr = target.partition(":")
    if not sep or not attr:
        raise ValueError(f"target must be 'module:attribute', not {target!r}")
    mod = importlib.import_module(modname)
    return mod, attr, getattr(mod, attr)


def targets_of(original: object, home: ModuleType, attr: str) -> list[tuple[ModuleType, str]]:
    """Every (module, global name) in loaded aiosys modules that holds ``original``."""
    found = [(home, attr)]
    for name, mod in list(sys.modules.items()):
        if type(mod) is not ModuleType or not (name == "aiosys" or name.startswith("aiosys.")):
            continue  # cffi registers its read-only ``lib`` (a module subclass) there too
        if name == __name__:
            continue
        for key, value in list(vars(mod).items()):
            if value is original and (mod, key) not in found:
                found.append((mod, key))
    return found


@contextlib.contextmanager
def inject(target: str, **spec: Any) -> Iterator[Fault]:
    """Install one fault on ``target`` (``"module:attr"``) for the ``with`` block.

    Keyword arguments are those of :class:`Fault`.  The originals are restored on exit,
    even if the block raises.
    """
    with inject_many([(target, spec)]) as faults:
        yield faults[0]


class _Site:
    """One patched function: every place that held it now holds ``dispatcher``, which runs
    the call through the faults active on it.  Faults may come and go in any order (several
    tasks each inside their own ``with inject(...)``): the original is put back when the last
    one leaves, never a stale wrapper."""

    def __init__(self, original: Any, places: list[tuple[ModuleType, str]]) -> None:
        self.original = original
        self.places = places
        self.faults: list[Fault] = []
        site = self

        def dispatcher(*args: Any, **kwargs: Any) -> Any:
            call = site.original
            for f in list(site.faults):
                call = f.wrap(call)
            return call(*args, **kwargs)

        dispatcher.__wrapped__ = original  # type: ignore[attr-defined]
        dispatcher.__name__ = getattr(original, "__name__", "faulty")
        self.dispatcher = dispatcher


_sites_lock = threading.Lock()
_sites: dict[int, _Site] = {}  # id(dispatcher) -> its site


def _install(target: str, fault: Fault) -> _Site:
    with _sites_lock:
        mod, attr, current = _resolve(target)
        site = _sites.get(id(current))
        if site is None:
            site = _Site(current, targets_of(current, mod, attr))
            for m, key in site.places:
                setattr(m, key, site.dispatcher)
            _sites[id(site.dispatcher)] = site
        site.faults.append(fault)
        return site


def _uninstall(site: _Site, fault: Fault) -> None:
    with _sites_lock:
        site.faults.remove(fault)
        if site.faults:
            return
        for m, key in site.places:
            if getattr(m, key) is site.dispatcher:
                setattr(m, key, site.original)
        _sites.pop(id(site.dispatcher), None)


@contextlib.contextmanager
def inject_many(specs: Sequence[tuple[str, dict[str, Any]]]) -> Iterator[list[Fault]]:
    """Install several faults at once (removed on exit, even if the block raises)."""
    installed: list[tuple[_Site, Fault]] = []
    faults: list[Fault] = []
    try:
        for target, spec in specs:
            fault = Fault(target, **spec)
            installed.append((_install(target, fault), fault))
            faults.append(fault)
        yield faults
    finally:
        for site, fault in reversed(installed):
            _uninstall(site, fault)


def shrink(index: int, limit: int) -> Callable[[Args], Args]:
    """A ``rewrite`` that caps positional argument ``index`` at ``limit`` (a length), so a
    read or write transfers at most ``limit`` bytes: a short read/write, as the kernel may
    legally return."""

    def rewrite(args: Args) -> Args:
        a = list(args)
        a[index] = min(a[index], limit)
        return tuple(a)

    return rewrite


def extra_events(pairs: Sequence[tuple[int, int]]) -> Callable[[Any, Args], Any]:
    """A ``post`` for the raw epoll waits (``aiosys_epoll_wait``/``aiosys_epoll_pwait2``:
    ``(epfd, out, maxevents, timeout) -> n``): append ``(events, data)`` pairs the kernel did
    not report (unexpected event bits, unknown tags) after the real ones, as if epoll had."""

    def post(r: Any, args: Args) -> Any:
        n = int(r)
        if n < 0:
            return r
        out, maxevents = args[1], int(args[2])
        for events, data in pairs:
            if n >= maxevents:
                break
            out[2 * n] = events
            out[2 * n + 1] = data
            n += 1
        return n

    return post
