"""One usable CPU: a handoff submitted by the last callback of a loop pass yields the CPU to
the M and takes the completion inside entersyscall (Go's exitsyscallfast), so the caller's
await does not need a loop pass.  The loop must still poll at least every INLINE_BUDGET such
calls: a task looping over them cannot starve timers or I/O.

Run in a child pinned to one CPU (the parent may have two)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import aiosys
    from aiosys.sched import proc

    async def main():
        loop = asyncio.get_running_loop()
        fd = os.open(sys.executable, os.O_RDONLY)
        try:
            st = await aiosys.fstat(fd)  # first call: starts the Ms
            assert st.st_size == os.fstat(fd).st_size
            p = proc.getp()
            assert p.defer_wake and p.ready is not None
            fired = []
            calls = 0
            loop.call_later(0, fired.append, True)  # due at once: runs at the next poll
            while not fired:
                before = calls
                st = await aiosys.fstat(fd)
                assert st.st_ino == os.fstat(fd).st_ino  # every result is right
                calls += 1
                assert calls <= proc.INLINE_BUDGET + 2, "the loop did not poll"
            # Inline completions happen at all: over 200 calls the loop makes fewer passes
            # than calls (each non-inline call costs at least one pass).  Lenient on purpose:
            # a loaded machine may delay the M, never make it complete early.
            passes = 0
            orig = p.after_park
            def counting():
                nonlocal passes
                passes += 1
                orig()
            np = aiosys.netpoll.current_poller()
            np._after_park[np._after_park.index(orig)] = counting
            for _ in range(200):
                await aiosys.fstat(fd)
            np._after_park[np._after_park.index(counting)] = orig
            assert passes < 200, passes
            # And the other way round: results never got lost or crossed.
            sts = await asyncio.gather(*(aiosys.fstat(fd) for _ in range(50)))
            assert {s.st_ino for s in sts} == {os.fstat(fd).st_ino}
            print("calls-before-timer", calls, "passes-for-200", passes)
        finally:
            os.close(fd)

    aiosys.run(main())
    """
)


def test_inline_completions_on_one_cpu_are_bounded_per_loop_pass() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "calls-before-timer" in out.stdout
