#!/usr/bin/env bash
# Runs the C tests and the C examples (every program tests/suite/c_examples.rs
# runs, and the D-Bus example tests/suite/dbus.rs runs) under AddressSanitizer
# and under valgrind; any report fails the run.
#
#   scripts/sanitize.sh [asan] [valgrind]    (default: both)
#
# One source of truth: the tests themselves, pointed by tests/c/toolchain.rs's
# overrides at other libraries and a run wrapper.
# - asan: the library is built with nightly `-Zsanitizer=address` into
#   target/asan/ (JW_LIB_DIR), the programs with `-fsanitize=address`
#   (CFLAGS; the compiler's libasan serves both). Leak checking (LSan) is on.
# - valgrind: the library `cargo test` builds, each program run under
#   valgrind (JW_C_WRAPPER) with the suppressions of scripts/valgrind.supp.
#   All but tests/c/router_idle_limit.c: its child process lowers
#   RLIMIT_NOFILE, which valgrind (it keeps descriptors of its own at the top
#   of the limit) refuses; it runs in the plain suite and under ASan.
# The test executable (the suite, tests/suite/) is built by cargo and then
# run directly, with a filter per module, so that CFLAGS reaches the C
# programs and not the crates cargo builds with cc.
set -euo pipefail
cd "$(dirname "$0")/.."

modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(asan valgrind)
host=$(rustc -vV | sed -n 's/^host: //p')

# The path of the test executable `cargo test --test NAME` builds.
test_exe() {
  cargo test --locked --no-run --test "$1" --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])'
}

cargo test --locked --no-run --test suite --quiet
suite=$(test_exe suite)
[ -x "$suite" ] || { echo "sanitize: no test executable for tests/suite" >&2; exit 1; }

# Runs the C-program tests: every test of c_examples, the C example of dbus.
run_c_tests() {
  "$suite" --test-threads=2 c_examples:: "$@"
  "$suite" --test-threads=1 dbus::c_example_
}

for mode in "${modes[@]}"; do
  case "$mode" in
    asan)
      echo "== AddressSanitizer: building the library (nightly, -Zsanitizer=address)"
      # --target keeps build scripts and proc macros uninstrumented; the
      # standard library is not rebuilt (not instrumented), which the
      # sanitizer's ABI check must be told about.
      RUSTFLAGS="-Zsanitizer=address -Cforce-frame-pointers=yes -Cunsafe-allow-abi-mismatch=sanitizer" \
        cargo +nightly build --locked --lib --target "$host" --target-dir target/asan --quiet
      echo "== AddressSanitizer: the C tests and examples"
      flags="-fsanitize=address -fno-omit-frame-pointer -g"
      # exitcode: a report must not pass for a program's own exit code 1.
      JW_LIB_DIR="$PWD/target/asan/$host/debug" CFLAGS="$flags" CXXFLAGS="$flags" \
        ASAN_OPTIONS="exitcode=86:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1" \
        LSAN_OPTIONS="exitcode=87" JW_TIMING_SLACK_MS=500 \
        run_c_tests
      ;;
    valgrind)
      command -v valgrind >/dev/null || { echo "sanitize: valgrind is missing: run scripts/setup.sh" >&2; exit 1; }
      echo "== valgrind: the C tests and examples"
      # JW_C_NO_TLS: valgrind cannot follow the writes of ring's assembly
      # (AES-GCM, ChaCha20) and reports every encrypted TLS record as
      # uninitialised; the C programs leave out their TLS cases here (they
      # run in every other mode, AddressSanitizer included).
      JW_C_NO_TLS=1 JW_C_WRAPPER="valgrind -q --fair-sched=yes --error-exitcode=99 --num-callers=50 --leak-check=full --show-leak-kinds=definite,possible --errors-for-leak-kinds=definite,possible --suppressions=$PWD/scripts/valgrind.supp" \
        JW_RUN_TIMEOUT_SECS=600 JW_TIMING_SLACK_MS=2000 \
        run_c_tests --skip a_router_short_of_descriptors
      ;;
    *) echo "usage: scripts/sanitize.sh [asan] [valgrind]" >&2; exit 2 ;;
  esac
done
