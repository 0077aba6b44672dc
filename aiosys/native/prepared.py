"""A system call split in two halves, so the scheduler can run the middle on another thread.

Every exposed entry of the syscall table has a generated ``prepare_NAME(*args)`` in
:mod:`aiosys.native.zsyscall` that returns a :class:`Prepared`:

* **prepare** (caller's thread, holds the GIL): validate and marshal the Python arguments into
  six machine words (``args``), pin every buffer and path the kernel will touch (``keep``),
  allocate the memory it will write results into.  No syscall is made.
* **the trap** (any thread, no Python objects): ``raw(trap, *args)`` -> value or -errno.  The
  scheduler hands ``trap`` + ``args`` to a C worker (an M); the synchronous wrapper makes it
  right here through :func:`call_sys` / :func:`call_raw` / :func:`call_noerror`.
* **finish** (caller's thread again, possibly much later): ``finish(r)`` decodes the raw return:
  -errno becomes the matching ``OSError`` subclass (with the filename where the call had one),
  struct results are copied out, counts are checked against what was given (Go issue 61060).

Invariant: ``keep`` stays referenced by the :class:`Prepared` until the kernel is done with the
memory; whoever runs the trap on another thread must keep the :class:`Prepared` alive until the
trap has returned, then call exactly one of ``finish(r)`` or, if nobody wants the result any
more (the awaiting task was cancelled), ``orphan(r)``, which releases what the call created
(closes a returned fd, unmaps a mapping).  Both unpin ``keep`` first: a Prepared is trapped
once (EINTR retries aside, which happen before ``finish``).
"""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Callable
from typing import Any, Final, Generic, NamedTuple, TypeVar

from . import _lowlevel

__all__ = [
    "EINTR_EMPTY",
    "EINTR_RAISE",
    "EINTR_RETRY",
    "Entry",
    "Prepared",
    "call_noerror",
    "call_raw",
    "call_sys",
]

T = TypeVar("T")

_MAX_ERRNO: Final = 4095
_U64_MASK: Final = (1 << 64) - 1
_NEG_EINTR: Final = -_errno.EINTR

# What a syscall interrupted by a signal handler (EINTR) means for an entry:
EINTR_RETRY: Final = "retry"  # PEP 475: run the handlers, then make the call again
EINTR_RAISE: Final = "raise"  # close(2): Linux has already released the fd, a retry is unsafe
EINTR_EMPTY: Final = "empty"  # epoll waits: report "no events"; the caller recomputes its timeout

Words = tuple[int, int, int, int, int, int]


def _no_orphan(r: int, ctx: Any) -> None:
    return None


class Prepared(Generic[T]):
    """One marshalled system call (see the module docstring for the protocol).

    ``trap``: the syscall number; ``args``: six signed machine words; ``keep``: the pinned
    memory the kernel reads or writes (hold it until the trap returns); ``fd``: the fd the call
    operates on, -1 if none (for the fd reference table and traces); ``name``: the table entry
    (a wrapper's name when made through one); ``klass``: the class of the trap actually made
    (``sys``, ``sysblock``, ``sysnb`` or ``noerror``; a ``wrap`` resolves to its target's);
    ``eintr``: one of :data:`EINTR_RETRY`, :data:`EINTR_RAISE`, :data:`EINTR_EMPTY`.
    """

    __slots__ = (
        "_ctx",
        "_decode",
        "_orphan",
        "args",
        "eintr",
        "fd",
        "filename",
        "filename2",
        "keep",
        "klass",
        "name",
        "trap",
    )

    def __init__(
        self,
        name: str,
        klass: str,
        trap: int,
        args: Words,
        keep: object,
        fd: int,
        decode: Callable[[int, Any], T],
        ctx: Any = None,
        *,
        filename: object = None,
        filename2: object = None,
        eintr: str = EINTR_RETRY,
        orphan: Callable[[int, Any], None] = _no_orphan,
    ) -> None:
        self.name = name
        self.klass = klass
        self.trap = trap
        self.args = args
        self.keep = keep
        self.fd = fd
        self.filename = filename
        self.filename2 = filename2
        self.eintr = eintr
        self._decode = decode
        self._ctx = ctx
        self._orphan = orphan

    def finish(self, r: int) -> T:
        """Decode the kernel's raw return ``r`` (value, or -errno in [-4095, -1]).

        :raises OSError: the matching subclass for -errno (``filename``/``filename2`` set
            where the call took paths), or ``OSError(EIO)`` for a result outside the valid
            range (a read or write reporting more bytes than the buffer held).
        """
        self.release()
        if self.klass == "noerror":
            return self._decode(r & _U64_MASK, self._ctx)
        if -_MAX_ERRNO <= r < 0:
            if r == _NEG_EINTR and self.eintr == EINTR_EMPTY:
                return self._decode(0, self._ctx)
            raise self.error(-r)
        return self._decode(r, self._ctx)

    def release(self) -> None:
        """Unpin ``keep`` now (a bytearray can be resized again) rather than when the Prepared
        is collected, which an exception's traceback can delay.  :meth:`finish` and
        :meth:`orphan` call it: the kernel is done with the memory by then, so a Prepared is
        made (trapped) once."""
        keep = self.keep
        if isinstance(keep, tuple):
            for k in keep:
                rel = getattr(k, "release", None)
                if rel is not None:
                    rel()

    def error(self, err: int) -> OSError:
        """The ``OSError`` for errno ``err``, carrying this call's filename(s)."""
        msg = os.strerror(err)
        if self.filename2 is not None:
            return OSError(err, msg, self.filename, None, self.filename2)
        if self.filename is not None:
            return OSError(err, msg, self.filename)
        return OSError(err, msg)

    def orphan(self, r: int) -> None:
        """Nobody will call :meth:`finish`: release what a successful call created (a returned
        fd is closed, a new mapping unmapped).  Never raises for a failed call."""
        self.release()
        if not -_MAX_ERRNO <= r < 0:
            self._orphan(r, self._ctx)

    def __repr__(self) -> str:
        return f"<Prepared {self.name} trap={self.trap} fd={self.fd} args={self.args}>"


class Entry(NamedTuple):
    """One exposed row of the syscall table.

    ``klass``: ``sys``, ``sysblock``, ``sysnb``, ``noerror`` or ``wrap``; ``trap``: the
    syscall number on this architecture (a wrapper's: its target's), -1 if the kernel headers
    lack it; ``nargs``: machine words the trap takes (0..6); ``prepare``: the entry's
    ``prepare_NAME``; ``target``: the entry a ``wrap`` calls (``""`` otherwise); ``base``: the
    class of the trap actually made (a wrap resolves to its target's class); ``params``: the
    Python parameter names.
    """

    name: str
    klass: str
    trap: int
    nargs: int
    prepare: Callable[..., Prepared[Any]]
    target: str = ""
    base: str = ""
    params: tuple[str, ...] = ()

    @property
    def blocking(self) -> bool:
        """True when the call may block (``sys``/``sysblock``): hand it off when awaited."""
        return (self.base or self.klass) in ("sys", "sysblock")


# --------------------------------------------------------------------------------------------
# Running a Prepared synchronously on this thread (what the generated NAME() wrappers do)
# --------------------------------------------------------------------------------------------

_syscall_word6 = _lowlevel.syscall_word6
_raw_word6 = _lowlevel.raw_word6


def call_sys(p: Prepared[T]) -> T:
    """Go's ``Syscall6``: entersyscall/exitsyscall hooks around the trap; EINTR per
    ``p.eintr`` (a signal handler that raises stops the retry with its exception)."""
    a1, a2, a3, a4, a5, a6 = p.args
    while True:
        r = _syscall_word6(p.trap, a1, a2, a3, a4, a5, a6)
        if r != _NEG_EINTR or p.eintr != EINTR_RETRY:
            return p.finish(r)


def call_raw(p: Prepared[T]) -> T:
    """Go's ``RawSyscall6``: the trap alone, no scheduler notification."""
    a1, a2, a3, a4, a5, a6 = p.args
    while True:
        r = int(_raw_word6(p.trap, a1, a2, a3, a4, a5, a6))
        if r != _NEG_EINTR or p.eintr != EINTR_RETRY:
            return p.finish(r)


def call_noerror(p: Prepared[T]) -> T:
    """Go's ``RawSyscallNoError``: the result is a value, never an errno."""
    return p.finish(int(_raw_word6(p.trap, *p.args)))


def enosys(name: str) -> OSError:
    """The error for an entry whose trap this architecture's headers do not define."""
    return OSError(_errno.ENOSYS, f"{os.strerror(_errno.ENOSYS)}: {name} on this architecture")


def noerror_fn0(name: str, trap: int) -> Callable[[], int]:
    """The synchronous wrapper of a zero-argument ``noerror`` entry (getpid, getuid ...): the C
    fast path bound to its trap (:func:`aiosys.native._lowlevel.bind_noerror0`), so a call is
    one C call, no Python frame, and the GIL kept (the speed target is ``os.getpid()``).  The
    result is the unsigned word the kernel returned: RawSyscallNoError."""
    if trap < 0:

        def missing() -> int:
            raise enosys(name)

        return missing
    return _lowlevel.bind_noerror0(trap)
