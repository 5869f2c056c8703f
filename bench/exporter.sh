#!/usr/bin/env bash
# Session benchmark: upstream 0.9.0's client (TcpPortforwardAdapter) through
# a jumpwire session and through upstream's own session to TCP targets
# (iperf3 throughput both ways, 64-byte round trips), and jumpwire's client
# through the jumpwire session; ratios. See bench/exporter.rs.
# Environment: SECONDS (5), COUNT (2000), MIB (512), JW_PYTHON (default:
# scripts/venv.sh's), CARGO_TARGET_DIR. Needs iperf3.
set -euo pipefail
cd "$(dirname "$0")/.."
JW_PYTHON="${JW_PYTHON:-$(scripts/venv.sh)}"
export JW_PYTHON
. bench/exe.sh
BIN=$(bench_exe exporter)
[ -x "$BIN" ] || { echo "bench/exporter.sh: bench/exporter.rs was not built" >&2; exit 1; }
"$BIN" --bench
