#!/usr/bin/env bash
# Router benchmark: the whole routed path on 127.0.0.1 (client -> router ->
# exporter -> TCP echo): throughput, 64-byte round-trip latency, and 500
# concurrent pairs with the router's threads and resident memory. See
# examples/bench_router.rs. Environment: MIB (default 1024), COUNT (10000),
# PAIRS (500), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n 65536 2>/dev/null || true
cargo run --release --quiet --example bench_router
