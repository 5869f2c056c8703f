#!/usr/bin/env bash
# Session forwarding benchmark: a local port forwarded onto an upstream
# exporter session's tcp driver by jumpwire (jw_listen onto a jumpstarter:
# network) and by upstream's TcpPortforwardAdapter on the same session, for
# a local session and for a lease through a lab (controller, jumpwire router,
# upstream Exporter): 64-byte round trips, echo throughput, ratios. See
# bench/session.rs. Environment: COUNT (default 2000), MIB (64), JW_PYTHON
# (default: scripts/venv.sh's), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
JW_PYTHON="${JW_PYTHON:-$(scripts/venv.sh)}"
export JW_PYTHON
. bench/exe.sh
BIN=$(bench_exe session)
[ -x "$BIN" ] || { echo "bench/session.sh: bench/session.rs was not built" >&2; exit 1; }
"$BIN" --bench
