"""cffi builder for ``aiosys.native._native``.

Standalone on purpose (named in ``setup.py``'s ``cffi_modules``): it never imports the
``aiosys`` package, so it can run before the package exists.

Layout it expects, one C family per pair of files in ``csrc/``:

* ``NAME.cdef.h``  -- the declarations cffi exposes to Python (only what is used);
* ``NAME.c``       -- the implementation, compiled into the same extension.

Adding a family means adding a pair of files; this builder picks up every pair.

``SYS_*`` numbers are not typed by hand: the C preprocessor lists every ``SYS_`` macro that
``<sys/syscall.h>`` defines for the architecture being built, and each becomes a cdef
constant whose value the compiler fills in from the same header.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
CSRC = HERE / "csrc"

# Used only if the preprocessor cannot be asked (no `cc -E`): the syscalls the table names on
# every architecture aiosys builds for.  Each is still guarded by #ifdef in the C code.
_FALLBACK_SYS = ["read", "write", "close", "getpid", "gettid"]


def _compiler() -> list[str]:
    return shlex.split(os.environ.get("CC", "cc"))


def syscall_names() -> list[str]:
    """Every ``SYS_xxx`` the C library's <sys/syscall.h> defines here."""
    try:
        out = subprocess.run(
            [*_compiler(), "-dM", "-E", "-x", "c", "-"],
            input="#include <sys/syscall.h>\n",
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return list(_FALLBACK_SYS)
    names = set(re.findall(r"^#define SYS_(\w+)\s", out, re.MULTILINE))
    return sorted(names) or list(_FALLBACK_SYS)


def _families() -> list[str]:
    return sorted(p.name[: -len(".cdef.h")] for p in CSRC.glob("*.cdef.h"))


def build_ffi() -> FFI:
    ffi = FFI()
    families = _families()
    for fam in families:
        ffi.cdef((CSRC / f"{fam}.cdef.h").read_text())

    names = syscall_names()
    # One constant per syscall number; value filled in by the compiler from the header.
    ffi.cdef("\n".join(f"static const long SYS_{n};" for n in names))
    ffi.cdef("static const char *const AIOSYS_SYS_NAMES[];\nstatic const int AIOSYS_SYS_COUNT;")
    table = ",\n".join(f'    "{n}"' for n in names)

    includes = "\n".join(f'#include "{fam}.c"' for fam in families)
    source = f"""
#define _GNU_SOURCE 1
#include <sys/syscall.h>
{includes}
static const char *const AIOSYS_SYS_NAMES[] = {{
{table}
}};
static const int AIOSYS_SYS_COUNT = {len(names)};
"""
    # _CFFI_NO_LIMITED_API: fastpath.c and hotpath.c are CPython-level code (vectorcall,
    # contexts, the buffer protocol); the module is built per CPython version anyway.
    extra = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-strict-aliasing"]
    extra += ["-D_CFFI_NO_LIMITED_API"]
    extra += shlex.split(os.environ.get("AIOSYS_CFLAGS", ""))
    ldflags = shlex.split(os.environ.get("AIOSYS_LDFLAGS", ""))
    ffi.set_source(
        "aiosys.native._native",
        source,
        include_dirs=[str(CSRC)],
        extra_compile_args=extra,
        extra_link_args=ldflags,
        libraries=["pthread"],
        depends=[str(p) for p in sorted(CSRC.iterdir())],
    )
    return ffi


ffibuilder = build_ffi()

if __name__ == "__main__":
    # Developer convenience: build in place (``python aiosys/native/_build_native.py``),
    # leaving ``aiosys/native/_native*.so`` next to the sources.  Several people rebuild while
    # others run tests: compile in a private directory and rename the result into place, so a
    # process importing the module meanwhile finds the old .so or the new one, never none.
    import shutil
    import tempfile

    root = HERE.parent.parent
    build = root / "build"
    build.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="native-", dir=build))
    try:
        built = Path(ffibuilder.compile(tmpdir=str(tmp), verbose="-v" in sys.argv))
        target = HERE / built.name
        os.replace(built, target)  # atomic on one filesystem
        for stale in HERE.glob("_native*.so"):  # another ABI tag would shadow or confuse
            if stale != target:
                stale.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
