#!/usr/bin/env bash
# Installs what building and testing jumpwire needs on a fresh Debian machine:
# a C compiler for the C examples, D-Bus for its tests, valgrind for
# scripts/sanitize.sh, and the Rust components for the checks, nightly and
# cargo-fuzz for scripts/fuzz.sh and the AddressSanitizer build.
# Safe to run again: it installs only what is missing.
set -euo pipefail

# The D-Bus tests talk to a private dbus-daemon (through the `dbus` crate,
# whose libdbus is built from vendored sources) and use dbus-send.
need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
command -v c++ >/dev/null 2>&1 || need_apt+=(g++)
command -v dbus-daemon >/dev/null 2>&1 || need_apt+=(dbus-daemon)
command -v dbus-send >/dev/null 2>&1 || need_apt+=(dbus-bin)
# scripts/install.sh and its test: strip/objcopy/readelf/nm, and pkg-config.
command -v objcopy >/dev/null 2>&1 || need_apt+=(binutils)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v valgrind >/dev/null 2>&1 || need_apt+=(valgrind)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    echo "setup: missing ${need_apt[*]}; install them (sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
fi

rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
# scripts/fuzz.sh and scripts/sanitize.sh: nightly (-Zsanitizer=address,
# libFuzzer) and cargo-fuzz, built from crates.io.
cargo +nightly --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
