#!/usr/bin/env bash
# Builds jumpwire in release mode and installs it like a C library:
#
#   PREFIX/include/jumpwire.h
#   PREFIX/lib/libjumpwire.so.V.W.X      (SONAME libjumpwire.so.SOVER)
#   PREFIX/lib/libjumpwire.so.SOVER -> libjumpwire.so.V.W.X
#   PREFIX/lib/libjumpwire.so       -> libjumpwire.so.SOVER
#   PREFIX/lib/libjumpwire.a
#   PREFIX/lib/pkgconfig/jumpwire.pc
#   PREFIX/lib/.debug/libjumpwire.so.V.W.X.debug   (split debug info; gdb finds it)
#   PREFIX/bin/jumpwire                  (the command: forward, cat, router, ws)
#
# SOVER follows cargo-c: MAJOR, or 0.MINOR while MAJOR is 0 (a 0.x minor
# release may break the ABI). Installed libraries carry no debug info.
#
# Usage: scripts/install.sh PREFIX
#   JW_LIBRARY_TYPE=cdylib|staticlib|both (default both) installs only the
#   shared or only the static library, as cargo-c's --library-type does; with
#   only the static one, `pkg-config --static --libs jumpwire` links it.
#   JW_INSTALL_CLI=0 leaves the `jumpwire` command out.
set -euo pipefail

prefix=${1:-}
if [ -z "$prefix" ] || [ "$#" -ne 1 ]; then
  echo "usage: scripts/install.sh PREFIX" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
kind=${JW_LIBRARY_TYPE:-both}
case "$kind" in cdylib|staticlib|both) ;; *)
  echo "install.sh: JW_LIBRARY_TYPE must be cdylib, staticlib or both, not '$kind'" >&2
  exit 2
esac

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
major=${version%%.*}
minor=${version#*.}
minor=${minor%%.*}
if [ "$major" = 0 ]; then sover="0.$minor"; else sover="$major"; fi
soname="libjumpwire.so.$sover"
real="libjumpwire.so.$version"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
target=${CARGO_TARGET_DIR:-target}/release
cli=${JW_INSTALL_CLI:-1}

# What a program linking libjumpwire.a also needs (Libs.private): what rustc
# says when it builds the static library (cargo replays the note when the
# build is fresh). tests/suite/install.rs compares it with the list the
# tests and the README pin.
cargo rustc --locked --release --lib --crate-type cdylib,staticlib \
  -- -C "link-arg=-Wl,-soname,$soname" --print native-static-libs 2>&1 |
  tee "$tmp/build.log" >&2
native_static_libs=$(sed -n 's/^note: native-static-libs: //p' "$tmp/build.log" | tail -n 1)
if [ -z "$native_static_libs" ]; then
  echo "install.sh: rustc printed no native-static-libs note" >&2
  exit 1
fi
cp "$target/libjumpwire.so" "$tmp/libjumpwire.so"
cp "$target/libjumpwire.a" "$tmp/libjumpwire.a"

# The command: cargo builds the library for it again, without the SONAME
# flag and over the same files (hence the copies above).
if [ "$cli" = 1 ]; then
  cargo build --locked --release --bin jumpwire
  cp "$target/jumpwire" "$tmp/jumpwire"
fi

lib="$prefix/lib"
install -d "$prefix/include" "$lib/pkgconfig"
install -m 0644 include/jumpwire.h "$prefix/include/jumpwire.h"

if [ "$kind" != staticlib ]; then
  install -d "$lib/.debug"
  mv "$tmp/libjumpwire.so" "$tmp/$real"
  objcopy --only-keep-debug "$tmp/$real" "$tmp/$real.debug"
  strip --strip-unneeded "$tmp/$real"
  (cd "$tmp" && objcopy --add-gnu-debuglink="$real.debug" "$real")
  install -m 0755 "$tmp/$real" "$lib/$real"
  install -m 0644 "$tmp/$real.debug" "$lib/.debug/$real.debug"
  ln -sfn "$real" "$lib/$soname"
  ln -sfn "$soname" "$lib/libjumpwire.so"
else
  rm -f "$lib/$real" "$lib/$soname" "$lib/libjumpwire.so" "$lib/.debug/$real.debug"
fi

if [ "$kind" != cdylib ]; then
  install -m 0644 "$tmp/libjumpwire.a" "$lib/libjumpwire.a"
  strip --strip-debug "$lib/libjumpwire.a"
else
  rm -f "$lib/libjumpwire.a"
fi

if [ "$cli" = 1 ]; then
  strip "$tmp/jumpwire"
  install -d "$prefix/bin"
  install -m 0755 "$tmp/jumpwire" "$prefix/bin/jumpwire"
fi

cat >"$lib/pkgconfig/jumpwire.pc" <<EOF
prefix=$prefix
exec_prefix=\${prefix}
libdir=\${exec_prefix}/lib
includedir=\${prefix}/include

Name: jumpwire
Description: The network-stream layer of a hardware-in-the-loop lab (TCP, UDP, Unix, vsock, D-Bus, websocket and Jumpstarter router streams)
Version: $version
Libs: -L\${libdir} -ljumpwire
Libs.private: $native_static_libs
Cflags: -I\${includedir}
EOF

echo "installed jumpwire $version into $prefix ($kind)"
for f in "$lib/$real" "$lib/libjumpwire.a" "$prefix/bin/jumpwire"; do
  if [ -f "$f" ]; then echo "  $(du -h "$f" | cut -f1)  ${f#"$prefix"/}"; fi
done
