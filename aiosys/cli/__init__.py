"""``python -m aiosys``: the command line (demo, echo, bench, doctor, trace).

Not part of the library's API: the CLI configures logging and prints; the library never does.
"""

from __future__ import annotations
