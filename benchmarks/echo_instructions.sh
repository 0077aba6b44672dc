#!/bin/bash
# User-space instructions per request of an echo server, counted by callgrind: a noise-free
# companion to the echo matrix's CPU time (which swings 20-50% on this shared machine).
# Kernel time is not counted: compare servers whose syscalls per request are the same
# (strace -c shows one read, one write and ~0.01 epoll_wait per request for the 64-byte echo
# of both echo_goroutine.py and asyncio streams on uvloop).
#
#   [SIZE=64] benchmarks/echo_instructions.sh [REQUESTS] [server command...]
#   benchmarks/echo_instructions.sh 10000 .venv/bin/python examples/servers/echo_goroutine.py
#   benchmarks/echo_instructions.sh 10000 .venv/bin/python examples/servers/echo_asyncio.py --loop uvloop
#
# Instrumentation is switched on only while the load generator runs (100 connections, SIZE B,
# each server's connection setup included), so interpreter start-up and imports are not
# counted.  Needs valgrind (apt-get install valgrind); runs ~50x slower than native.
set -euo pipefail
cd "$(dirname "$0")/.."
REQS=${1:-10000}
shift || true
if [ $# -eq 0 ]; then set -- .venv/bin/python examples/servers/echo_goroutine.py; fi
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/cg.%p" "$@" --port 0 \
    > "$OUT/port" 2> "$OUT/valgrind.err" &
SPID=$!
for _ in $(seq 600); do grep -q ':[0-9]' "$OUT/port" && break; sleep 0.1; done
PORT=$(grep -o ':[0-9]\+' "$OUT/port" | tail -1 | tr -d :)
callgrind_control -i on "$SPID" > /dev/null
.venv/bin/python benchmarks/loadgen.py --port "$PORT" --conns 100 --size "${SIZE:-64}" --seconds 300 \
    --max-requests "$REQS" > "$OUT/load.json"
callgrind_control -i off "$SPID" > /dev/null
kill -TERM "$SPID"
wait "$SPID" || true
TOTAL=$(grep -h '^totals:' "$OUT"/cg.* | awk '{print $2}')
DONE=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['requests'])" "$OUT/load.json")
echo "$*: $((TOTAL / DONE)) instructions/request ($DONE requests)"
