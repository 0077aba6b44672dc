"""The netpoller's exceptions.  Each says what happened in the words Go uses."""

from __future__ import annotations

import errno


class NotPollableError(OSError):
    """The fd cannot wait on epoll (a regular file or directory: ``epoll_ctl`` gives EPERM).
    Such fds belong to the scheduler's handoff path, not to the netpoller."""

    def __init__(self, fd: int) -> None:
        super().__init__(errno.EPERM, f"fd {fd} is not pollable (regular file or directory)")


class DeadlineExceededError(TimeoutError):
    """The fd's deadline for this direction has passed (Go's ``os.ErrDeadlineExceeded``,
    "i/o timeout").  It stays expired until the deadline is moved or cleared."""

    def __init__(self) -> None:
        super().__init__(errno.ETIMEDOUT, "i/o timeout")


class FDClosedError(OSError):
    """The fd was closed (through :func:`aiosys.netpoll.close` or ``fd_close``) while this
    operation waited on it, or a close of it is pending (Go's "use of closed file")."""

    def __init__(self) -> None:
        super().__init__(errno.EBADF, "use of closed file descriptor")


class BusyError(RuntimeError):
    """Another task is already waiting on this fd in the same direction.  One waiter per
    direction (Go's "runtime: double wait"); ``loop.add_reader`` would silently replace the
    first waiter instead."""


class BlockingModeError(OSError):
    """The fd is in blocking mode (its ``O_NONBLOCK`` was cleared, e.g. through a ``dup`` that
    shares the open file description) and this operation has no per-call non-blocking form,
    so trying it would block the event loop."""

    def __init__(self, fd: int, what: str) -> None:
        super().__init__(
            errno.EINVAL,
            f"fd {fd} is in blocking mode (O_NONBLOCK cleared on its open file description) "
            f"and {what} has no per-call non-blocking form: refusing to block the event loop",
        )
