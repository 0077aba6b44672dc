"""Observability tests: every test leaves tracing off and sysmon stopped (joined), so the
suite-wide leak check sees no thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import uvloop

from aiosys.sched import sysmon, trace

# uvloop opens a process-wide pipe pair with its first loop and keeps it; open it here, before
# any test's fd snapshot, so the leak check does not blame whichever test made the first loop.
uvloop.new_event_loop().close()


@pytest.fixture(autouse=True)
def _tracing_off(no_leaks: None) -> Iterator[None]:
    # Depends on no_leaks so that this teardown (stop and join sysmon) runs before the check.
    _reset()  # whatever a test elsewhere in the suite left on
    yield
    _reset()


def _reset() -> None:
    import aiosys.trace

    aiosys.trace.disable()
    aiosys.trace.schedtrace(None)
    sysmon.stop()
    trace.alarm_listeners.clear()
