#!/usr/bin/env bash
# Creates .venv with the upstream Python packages the interop tests run against
# (jumpstarter's router protocol and streams, grpcio, websockets). Safe to run
# again: it installs only when requirements changed. Prints the venv's python.
set -euo pipefail
cd "$(dirname "$0")/.."

req=scripts/interop-requirements.txt
nodeps=scripts/interop-nodeps.txt
venv=.venv
stamp=$venv/.installed

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2 || {
    echo "venv.sh: python3 -m venv failed; install python3-venv" >&2
    exit 1
  }
fi
if [ ! -f "$stamp" ] || ! cat "$req" "$nodeps" | cmp -s - "$stamp"; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$nodeps" >&2
  cat "$req" "$nodeps" > "$stamp"
fi
echo "$PWD/$venv/bin/python"
