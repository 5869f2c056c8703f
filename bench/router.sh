#!/usr/bin/env bash
# Router benchmark: the whole routed path on 127.0.0.1 (client -> router ->
# exporter -> TCP target) for jumpwire and, in the same run, upstream
# Jumpstarter's paths (a) Python router + connect_router_stream exporter +
# RouterStream client and (b) serve(TcpNetwork) + TcpPortforwardAdapter
# (bench/router_upstream.py, in the venv of scripts/venv.sh): throughput one
# way and echo, 64-byte round-trip latency, ratios; then 500 concurrent pairs
# with the router's threads and resident memory. See bench/router.rs.
# Then the routed path as a user measures it (issue 16): a TCP ping-pong
# through jw_listen -> router -> exporter in a child process, and through
# upstream's in-process path: p50 and the relay process's CPU per round trip,
# ratios, targets met or not.
# Environment: MIB (default 1024), UPSTREAM_MIB (256), COUNT (4000),
# PAIRS (500), ROUTED_COUNT (20000), ROUTED_ONLY=1 (only the routed path),
# PAIRS_ONLY=1 (only the concurrent pairs, through a fresh router),
# JW_PYTHON (default: scripts/venv.sh's), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
JW_PYTHON="${JW_PYTHON:-$(scripts/venv.sh)}"
export JW_PYTHON
. bench/exe.sh
BIN=$(bench_exe router)
[ -x "$BIN" ] || { echo "bench/router.sh: bench/router.rs was not built" >&2; exit 1; }
"$BIN" --bench
