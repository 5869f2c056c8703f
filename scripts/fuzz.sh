#!/usr/bin/env bash
# Fuzzes jumpwire's parsers of outside bytes: builds the targets of fuzz/
# (cargo-fuzz, libFuzzer, nightly, AddressSanitizer) and runs each for
# SECONDS (default 60) on its corpus in fuzz/corpus/TARGET/.
#
#   scripts/fuzz.sh [SECONDS]        new inputs join the corpus, which is
#                                    then minimised (cargo fuzz cmin): commit it
#   scripts/fuzz.sh --ci [SECONDS]   the corpus is only read (new inputs go to
#                                    a scratch directory): the CI form
#   scripts/fuzz.sh ... -- TARGET... only these targets
#
# A crash stops the script; libFuzzer saves the input in
# fuzz/artifacts/TARGET/ and `cargo +nightly fuzz run TARGET FILE` replays it.
# Make it a unit test beside the parser.
set -euo pipefail
cd "$(dirname "$0")/.."

ci=0
secs=60
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ci) ci=1 ;;
    --) shift; targets=("$@"); break ;;
    *) secs=$1 ;;
  esac
  shift
done
case "$secs" in
  ''|*[!0-9]*) echo "usage: scripts/fuzz.sh [--ci] [SECONDS] [-- TARGET...]" >&2; exit 2 ;;
esac

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi

echo "== cargo fuzz build (${#targets[@]} targets)"
(cd fuzz && cargo +nightly fuzz build)

scratch=
if [ $ci -eq 1 ]; then
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
fi
for t in "${targets[@]}"; do
  echo "== fuzzing $t for ${secs} s"
  mkdir -p "fuzz/corpus/$t"
  dirs=("corpus/$t")
  if [ -n "$scratch" ]; then
    mkdir -p "$scratch/$t"
    dirs=("$scratch/$t" "corpus/$t")
  fi
  # -timeout: one input running 20 s is a hang; the targets' own waits are
  # 10 s. -rss_limit_mb: a target bounded by its limits stays far below.
  log=fuzz/target/fuzz-$t.log
  if ! (cd fuzz && cargo +nightly fuzz run "$t" "${dirs[@]}" -- \
      -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
      -print_final_stats=1) >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: $t failed (whole log: $log); the input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  grep -E '^(stat::number_of_executed_units|stat::new_units_added|stat::peak_rss_mb)' "$log" |
    tr '\n' ' '
  echo
  if [ $ci -eq 0 ]; then
    (cd fuzz && cargo +nightly fuzz cmin "$t" "corpus/$t" >/dev/null 2>&1)
  fi
done
if [ $ci -eq 0 ]; then
  echo "== corpus: $(du -sh fuzz/corpus | cut -f1) in $(find fuzz/corpus -type f | wc -l) files"
fi
