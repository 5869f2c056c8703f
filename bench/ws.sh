#!/usr/bin/env bash
# Websocket benchmark: jumpwire's websocket client + server against the Python
# `websockets` client + server (compression off), the raw TCP echo floor, and
# broadcast fan-out to 200 clients, side by side in one run on 127.0.0.1.
# Round trips are interleaved across 16 connections per path in one loop.
# Prints a markdown table. See bench/ws.rs for what is measured.
#
#   bench/ws.sh            # COUNT=N sets the round trips per size (default 5000)
#   ONLY=rtt|pipe|fanout bench/ws.sh    # one part only
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
JW_PYTHON=${JW_PYTHON:-$(scripts/venv.sh)}
export JW_PYTHON
echo "== building (release)" >&2
. bench/exe.sh
BIN=$(bench_exe ws)
[ -x "$BIN" ] || { echo "bench/ws.sh: bench/ws.rs was not built" >&2; exit 1; }
echo "jumpwire websocket benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"$BIN" --bench
