#!/usr/bin/env bash
# Runs every test of jumpwire: formatting and lint checks, the Rust unit and
# integration tests, the C examples (built against the generated header and
# both the shared and the static library), and the doc examples; then the
# fuzz targets briefly (so that they keep building) and the C programs under
# AddressSanitizer and valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
# The interop tests find the upstream Python packages through JW_PYTHON.
JW_PYTHON=$(scripts/venv.sh)
export JW_PYTHON

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "== cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --quiet
echo "== cargo test"
cargo test --locked --all-targets
cargo test --locked --doc
echo "== Python bindings: pip install ./bindings/python, then pytest against this build"
cargo build --locked --lib --quiet   # target/debug/libjumpwire.so (cargo test leaves its copy in deps/)
"$(dirname "$JW_PYTHON")/pip" install --quiet --disable-pip-version-check ./bindings/python
JUMPWIRE_LIBRARY="$PWD/target/debug/libjumpwire.so" "$JW_PYTHON" -m pytest -q -p no:cacheprovider bindings/python/tests
echo "== scripts/install.sh, then a C program built with pkg-config (and Libs.private, from rustc, is the pinned list)"
cargo test --locked --test suite -- --include-ignored install::
echo "== fuzz targets, 5 s each (scripts/fuzz.sh for longer runs)"
scripts/fuzz.sh --ci 5
echo "== the C tests and examples under AddressSanitizer and valgrind"
scripts/sanitize.sh
