#!/usr/bin/env bash
# Port forwarding as users measure it (issue 16): iperf3 and a Python
# ping-pong client through a `jw_listen` TCP forward (the anchors' `jumpwire`
# mode: jw_portforward.py over this checkout's target/release/libjumpwire.so)
# against `socat` (8 KiB buffer) and `socat -b 262144`, side by side in one run
# of the shared anchors scripts, then each figure as a ratio to socat's with
# the issue's target. Only ratios from one run mean anything on a shared
# machine; repeat to see the noise (REPS).
#
#   bench/forward_anchors.sh              # about 2 minutes after the build
#
# Environment: ANCHORS (the anchors directory, default ../shared/anchors beside
# the checkout), REPS (default 3), ANCHOR_GROUPS (default iperf,latency), OUT (results
# directory, default /tmp/anchors-results/forward-TIMESTAMP). The anchors run
# under the venv run_all.sh sets up when it exists; otherwise under python3
# without setup (these modes need only the standard library, iperf3, socat).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
ANCHORS=${ANCHORS:-$ROOT/../shared/anchors}
REPS=${REPS:-3}
ANCHOR_GROUPS=${ANCHOR_GROUPS:-iperf,latency}
OUT=${OUT:-/tmp/anchors-results/forward-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$(dirname "$OUT")"
[ -f "$ANCHORS/run_all.sh" ] || { echo "bench/forward_anchors.sh: no anchors in $ANCHORS (set ANCHORS)" >&2; exit 1; }

echo "== building (release)" >&2
cargo build --release --lib --quiet

args=(--groups "$ANCHOR_GROUPS" --modes socat,socat256k,jumpwire --reps "$REPS" --out "$OUT")
venv=${ANCHORS_VENV:-/tmp/anchors-venv}
if [ -x "$venv/bin/python" ]; then
    ANCHORS_SKIP_SETUP=${ANCHORS_SKIP_SETUP:-1} JW_CHECKOUT="$ROOT" bash "$ANCHORS/run_all.sh" "${args[@]}" >"$OUT.log" 2>&1
else
    for t in iperf3 socat; do
        command -v "$t" >/dev/null || { echo "bench/forward_anchors.sh: $t is missing (apt-get install iperf3 socat)" >&2; exit 1; }
    done
    ANCHORS_SKIP_SETUP=1 JW_CHECKOUT="$ROOT" bash "$ANCHORS/run_all.sh" --python python3 "${args[@]}" >"$OUT.log" 2>&1
fi || { echo "bench/forward_anchors.sh: the anchors failed; see $OUT.log" >&2; exit 1; }

python3 - "$OUT/results.json" <<'EOF'
import json, statistics, sys

res = json.load(open(sys.argv[1]))
runs = res["runs"]

def med(group, variant, mode, metric):
    v = [r[metric] for r in runs
         if (r["group"], r["variant"], r["mode"]) == (group, variant, mode)
         and r.get(metric) is not None and "error" not in r]
    # An iperf3 --bidir run that stalled (its two connections reached the
    # server swapped) moved nothing: no figure.
    v = [x for x in v if group != "iperf" or x > 0]
    return (statistics.median(v), len(v)) if v else (None, 0)

# (label, group, variant, metric, unit, [(against, op, bound)])
rows = [
    ("iperf3 one way", "iperf", "uni", "fwd_gbps", "Gbit/s",
     [("socat256k", ">=", 1.0), ("socat", ">=", 2.0)]),
    ("iperf3 --bidir, total", "iperf", "bidir", "total_gbps", "Gbit/s", [("socat256k", ">=", 1.0)]),
    ("forwarder CPU, one way", "iperf", "uni", "cpu_pct_forwarder", "% of a core", []),
    ("64 B round trip p50", "latency", "rtt", "p50_us", "µs", [("socat", "<=", 0.9)]),
    ("64 B round trip p99", "latency", "rtt", "p99_us", "µs", []),
    ("forwarder CPU per round trip", "latency", "rtt", "forwarder_cpu_us_per_op", "µs", []),
    ("new connection to first echo p50", "latency", "connect", "p50_us", "µs", [("socat", "<=", 0.5)]),
]
fmt = lambda x: "-" if x is None else f"{x:.3g}"
print(f"forward vs socat, anchors (median of reps), {res.get('versions', {}).get('nproc', '?')} CPUs")
print()
print("| measure | jumpwire | socat | socat -b 262144 | ratio | target | met |")
print("|---|--:|--:|--:|--:|---|---|")
for label, g, v, m, unit, goals in rows:
    (j, n), (s, _), (t, _) = (med(g, v, x, m) for x in ("jumpwire", "socat", "socat256k"))
    if j is None and s is None:
        continue
    ratios, targets, met = [], [], []
    for against, op, bound in goals or [("socat", None, None)]:
        b = {"socat": s, "socat256k": t}[against]
        r = j / b if j is not None and b else None
        ratios.append(f"{'-' if r is None else format(r, '.2f')} of {against}")
        if op:
            targets.append(f"{op} {bound}")
            met.append("?" if r is None else ("yes" if (r >= bound if op == ">=" else r <= bound) else "NO"))
    print(f"| {label} ({unit}) | {fmt(j)} | {fmt(s)} | {fmt(t)} | {', '.join(ratios)} | "
          f"{', '.join(targets) or '-'} | {', '.join(met) or '-'} |")
print()
stalled = sum(1 for r in runs if r["group"] == "iperf" and r["variant"] == "bidir"
              and "error" not in r and not r.get("total_gbps"))
if stalled:
    print(f"{stalled} iperf3 --bidir run(s) stalled (connections swapped at the server) and are left out.")
print(f"load average: start {res.get('loadavg_start', '?')}, end {res.get('loadavg_end', '?')}")
EOF
echo "results: $OUT/results.json, summary: $OUT/summary.md"
