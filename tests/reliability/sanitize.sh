#!/usr/bin/env bash
# `make sanitize`: build aiosys's cffi module with AddressSanitizer + UndefinedBehaviorSanitizer
# in a separate copy of the tree (build/sanitize/, never the in-place module other engineers
# are using) and run the native, scheduler, I/O and reliability tests against it.
#
# CPython itself is not instrumented: libasan must be the first library loaded, hence
# LD_PRELOAD; CPython's own allocations at exit are not our leaks, hence detect_leaks=0.
# UBSan normally reports and continues; halt_on_error turns a report into a failed run.
#
#   usage: tests/reliability/sanitize.sh [python] [extra pytest args...]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PY=${1:-$ROOT/.venv/bin/python}
shift || true
case "$PY" in /*) ;; *) PY=$ROOT/$PY ;; esac
OUT=$ROOT/build/sanitize

rm -rf "$OUT"
mkdir -p "$OUT"
# A copy of the sources and tests only (no compiled module, no caches).
tar -C "$ROOT" --exclude='__pycache__' --exclude='*.so' --exclude='*.o' \
    --exclude='aiosys/native/_native.c' -cf - aiosys tests examples pyproject.toml | tar -C "$OUT" -xf -

SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
(cd "$OUT" && AIOSYS_CFLAGS="$SAN -g -O1" AIOSYS_LDFLAGS="-fsanitize=address,undefined" \
    "$PY" aiosys/native/_build_native.py >build.log 2>&1) || { cat "$OUT/build.log"; exit 1; }

LIBASAN=$(gcc -print-file-name=libasan.so)
export LD_PRELOAD=$LIBASAN
# allocator_may_return_null: a huge request is NULL -> MemoryError, as with glibc malloc.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export PYTHONPATH=$OUT
cd "$OUT"
# Prove the run uses the instrumented copy (the editable install would otherwise win).
"$PY" - <<'PYEOF'
import sys
import aiosys.native._native as n
maps = open("/proc/self/maps").read()
assert "/build/sanitize/" in n.__file__, n.__file__
assert "libasan" in maps and "libubsan" in maps, "sanitizer runtimes not loaded"
print("sanitize: instrumented module", n.__file__)
PYEOF
# One pytest run per folder: several folders import their own ``conftest`` by name, which
# only resolves when that folder's conftest is the one loaded.
status=0
# SANITIZE_DIRS narrows the run (CI runs a bounded subset through `make test`).
for d in ${SANITIZE_DIRS:-tests/native tests/sched tests/io tests/netpoll tests/reliability}; do
    [ -d "$d" ] || continue
    echo "== sanitize: $d"
    # Load/soak tests measure memory: meaningless under ASan's shadow memory; skip them here.
    "$PY" -m pytest -q -p no:cacheprovider -m "not slow" "$d" "$@" || status=1
done
exit $status
