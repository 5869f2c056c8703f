#!/usr/bin/env bash
# Forwarding benchmark: jumpwire's forward::Listener against socat (and, as
# references, two small std relays of bench/forward.rs), measured side
# by side in one run on 127.0.0.1 only. Prints a markdown table; the ratios matter more
# than the absolute figures on a shared, noisy machine.
#
#   bench/forward.sh            # about 1.5 minutes after the build; no arguments
#
# Measures: iperf3 throughput (one way and --bidir, 5 s each), 64-byte round-trip
# latency on one connection (10,000), 64-byte round trips through a
# jumpwire::Stream against a raw TcpStream (10,000), and connect + 1-byte echo +
# close (1,000). Needs iperf3 and socat: installs them with apt-get when missing.
# Environment: CARGO_TARGET_DIR (where to build), IPERF_SECONDS (default 5),
# COUNT (round trips, default 10000), CONNECTS (default 1000), KEEP_WORK=1 (keep
# the servers' logs and iperf3's JSON in the work directory).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
IPERF_SECONDS=${IPERF_SECONDS:-5}
COUNT=${COUNT:-10000}
CONNECTS=${CONNECTS:-1000}

log() { printf '== %s\n' "$*" >&2; }

install_tools() {
    command -v iperf3 >/dev/null && command -v socat >/dev/null && return 0
    log "installing iperf3 and socat"
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y iperf3 socat >/dev/null ||
        { $sudo apt-get update >/dev/null && $sudo apt-get install -y iperf3 socat >/dev/null; }
}
install_tools

log "building (release)"
. bench/exe.sh
BIN=$(bench_exe forward)
[ -x "$BIN" ] || { echo "bench/forward.sh: bench/forward.rs was not built" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/jw-bench.XXXXXX")
PIDS=()          # every background process this script started
SOCAT_PIDS=()    # socat parents, whose forked children are ours too

cleanup() {
    set +e
    local p c
    for p in "${SOCAT_PIDS[@]}"; do
        for c in $(pgrep -P "$p"); do kill "$c" 2>/dev/null; done
    done
    [ ${#SOCAT_PIDS[@]} -eq 0 ] || sleep 0.2 # lets socat reap the children just ended
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    exec 9>&-
    if [ -n "${KEEP_WORK:-}" ]; then echo "bench/forward.sh: work files kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Servers read a FIFO that only this shell holds open: if the script dies
# without its trap (SIGKILL), they see end of input and exit on their own.
mkfifo "$WORK/hold"
exec 9<>"$WORK/hold"

forget() { # PID: drop a reaped process from PIDS so that cleanup never kills a reused pid
    local p keep=()
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# start_server NAME ARGS...: runs "$BIN ARGS" and sets ADDR from its first line.
start_server() {
    local name=$1 out="$WORK/$1.out" i
    shift
    "$BIN" "$@" <"$WORK/hold" >"$out" 2>"$WORK/$name.err" 9>&- &
    PIDS+=($!)
    for i in $(seq 200); do
        ADDR=$(sed -n 's/^ADDR //p' "$out")
        [ -n "$ADDR" ] && return 0
        kill -0 "${PIDS[-1]}" 2>/dev/null || break
        sleep 0.05
    done
    echo "bench/forward.sh: $name did not start: $(cat "$WORK/$name.err")" >&2
    exit 1
}

start_socat() { # LISTEN_PORT TARGET_PORT
    socat "TCP-LISTEN:$1,fork,reuseaddr,bind=127.0.0.1" "TCP:127.0.0.1:$2" <"$WORK/hold" 2>"$WORK/socat-$1.err" 9>&- &
    PIDS+=($!)
    SOCAT_PIDS+=($!)
    "$BIN" wait-listen "$1"
}

cpu_ticks() { # PID: user+system time of the process, its threads and reaped children
    awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$1/stat"
}

RESULTS="$WORK/results" THROUGHPUT="$WORK/throughput" NOTES="$WORK/notes"
: >"$RESULTS"
: >"$THROUGHPUT"
: >"$NOTES"

# Columns of the table after "direct": the forwarders measured side by side.
FORWARDERS=(jumpwire socat relay poll)
declare -A TO_ECHO=() TO_IPERF=() IPERF_FPID=()

# --- servers -----------------------------------------------------------------
start_server echo echo-server
ECHO=$ADDR
IPERF_PORT=$("$BIN" free-port)
for kind in echo iperf; do
    target=$ECHO
    [ "$kind" = iperf ] && target=127.0.0.1:$IPERF_PORT
    for fw in "${FORWARDERS[@]}"; do
        case $fw in
        jumpwire) start_server "jw-$kind" forward-server --target "$target" ;;
        relay) start_server "relay-$kind" relay-server --target "$target" ;;
        poll) start_server "poll-$kind" poll-relay-server --target "$target" ;;
        socat)
            port=$("$BIN" free-port)
            start_socat "$port" "${target##*:}"
            ADDR=127.0.0.1:$port
            ;;
        esac
        if [ "$kind" = echo ]; then TO_ECHO[$fw]=$ADDR; else TO_IPERF[$fw]=$ADDR IPERF_FPID[$fw]=${PIDS[-1]}; fi
    done
done

# row LABEL UNIT GOAL FILE FIELD: one table row from a client's RESULT lines
# (FIELD 2 = p50, 3 = p90, 4 = p99).
row() {
    local line="$1|$2" name v
    for name in direct "${FORWARDERS[@]}"; do
        v=$(awk -v n="$name" -v f="$5" '$1 == "RESULT" && $2 == n { print $(f + 1) }' "$4")
        line+="|${v:--}"
    done
    echo "$line|$3" >>"$RESULTS"
}

targets() { # --target NAME=ADDR for direct and every forwarder, to the echo server
    local fw
    printf -- '--target\0direct=%s\0' "$ECHO"
    for fw in "${FORWARDERS[@]}"; do printf -- '--target\0%s=%s\0' "$fw" "${TO_ECHO[$fw]}"; done
}
mapfile -d '' ECHO_TARGETS < <(targets)

# --- latency -------------------------------------------------------------------
log "64-byte round trips x $COUNT (direct and each forwarder, in turns)"
"$BIN" latency --count "$COUNT" "${ECHO_TARGETS[@]}" >"$WORK/lat"
row "forward RTT 64 B, p50" µs 'js<=0.9' "$WORK/lat" 2
row "forward RTT 64 B, p90" µs - "$WORK/lat" 3
row "forward RTT 64 B, p99" µs - "$WORK/lat" 4

log "64-byte round trips x $COUNT, jumpwire::Stream vs raw TcpStream"
"$BIN" stream-latency --count "$COUNT" --addr "$ECHO" | sed 's/^RESULT raw /RESULT direct /' >"$WORK/slat"
row "Stream RTT 64 B (direct = raw TcpStream), p50" µs 'jd<=1.5' "$WORK/slat" 2
row "Stream RTT 64 B (direct = raw TcpStream), p90" µs - "$WORK/slat" 3
row "Stream RTT 64 B (direct = raw TcpStream), p99" µs - "$WORK/slat" 4

log "connect + 1-byte echo + close x $CONNECTS"
"$BIN" connect-latency --count "$CONNECTS" "${ECHO_TARGETS[@]}" >"$WORK/conn"
row "connect to first byte, p50" µs 'js<=0.5' "$WORK/conn" 2
row "connect to first byte, p99" µs - "$WORK/conn" 4

# --- throughput ----------------------------------------------------------------
# iperf NAME PORT FORWARDER_PID|- MODE: one iperf3 test through PORT; sets GBIT
# (received, both directions added for --bidir) and CPU_MS_PER_GB (CPU time the
# forwarder spent per GB moved, or -).
#
# A --bidir test through any forwarder can stall: iperf3 tells its two data
# connections apart by the order in which the server accepts them, and a
# forwarder that connects to the target on a thread (or process) per connection
# may connect them in the other order; then both ends send and neither reads.
# Such a run (nothing received one way) is repeated, at most 3 times in all.
iperf() {
    local name=$1 port=$2 fpid=$3 mode=$4 out="$WORK/iperf-$1-$4.json" spid cpid t0 t1 try extra=()
    [ "$mode" = bidir ] && extra=(--bidir)
    for try in 1 2 3; do
        iperf3 -s -1 -p "$IPERF_PORT" -B 127.0.0.1 >"$WORK/iperf-server.log" 2>&1 9>&- &
        spid=$!
        PIDS+=("$spid")
        "$BIN" wait-listen "$IPERF_PORT"
        [ "$fpid" = - ] || t0=$(cpu_ticks "$fpid")
        timeout $((IPERF_SECONDS + 30)) iperf3 -c 127.0.0.1 -p "$port" -t "$IPERF_SECONDS" -J "${extra[@]}" \
            >"$out" 2>&1 9>&- &
        cpid=$!
        PIDS+=("$cpid")
        wait "$cpid" || { echo "bench/forward.sh: iperf3 through $name failed: $(head -c 400 "$out")" >&2; exit 1; }
        forget "$cpid"
        wait "$spid" || true
        forget "$spid"
        read -r fwd rev bytes < <("$BIN" iperf-bps "$out")
        if [ "$fwd" != 0.00 ] && { [ "$mode" = uni ] || [ "$rev" != 0.00 ]; }; then
            break
        fi
        echo "- iperf3 $mode through $name stalled (connections swapped, see bench/forward.sh), try $try of 3" >>"$NOTES"
        log "iperf3 $mode through $name stalled, try $try of 3"
    done
    GBIT=$(awk -v a="$fwd" -v b="$rev" 'BEGIN { printf "%.2f", a + b }')
    CPU_MS_PER_GB=-
    if [ "$fpid" != - ] && [ "$fwd" != 0.00 ]; then
        sleep 0.3 # lets socat reap its forked child, whose time then counts
        t1=$(cpu_ticks "$fpid")
        CPU_MS_PER_GB=$(awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v b="$bytes" \
            'BEGIN { printf "%.1f", t / hz * 1000 / (b / 1e9) }')
    fi
}

for mode in uni bidir; do
    log "iperf3 $mode ${IPERF_SECONDS}s: direct"
    iperf direct "$IPERF_PORT" - "$mode"
    gbit="$GBIT" cpu="-"
    for fw in "${FORWARDERS[@]}"; do
        log "iperf3 $mode ${IPERF_SECONDS}s: $fw"
        iperf "$fw" "${TO_IPERF[$fw]##*:}" "${IPERF_FPID[$fw]}" "$mode"
        gbit+="|$GBIT" cpu+="|$CPU_MS_PER_GB"
    done
    label="iperf3 one way"
    [ "$mode" = bidir ] && label="iperf3 --bidir (sum of both ways)"
    echo "$label|Gbit/s|$gbit|js>=2" >>"$THROUGHPUT"
    echo "$label: forwarder CPU per GB|ms|$cpu|-" >>"$THROUGHPUT"
done

echo
echo "jumpwire forward benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
cat "$THROUGHPUT" "$RESULTS" >"$WORK/all"
"$BIN" report "$WORK/all"
echo
echo "std relay: two threads per connection, blocking read/write; poll relay: one thread per"
echo "connection for both directions, like socat (both in bench/forward.rs)."
cat "$NOTES"
