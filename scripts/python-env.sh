#!/usr/bin/env bash
# Creates (once) the Python venv used by the interop tests: the official client
# openhands-sdk/-tools/-workspace 1.24.0, which needs Python >= 3.12.
# Prints the venv's python path on stdout. Usage: scripts/python-env.sh [venv-dir]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-${AGENT_SERVER_PYTHON_VENV:-$here/target/interop-venv}}"
want="openhands-sdk==1.24.0 openhands-tools==1.24.0 openhands-workspace==1.24.0 websockets"

ok_python() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; }

find_python() {
  for c in python3.13 python3.12 python3; do
    if p=$(command -v "$c" 2>/dev/null) && ok_python "$p"; then echo "$p"; return 0; fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    for v in $(pyenv versions --bare 2>/dev/null | sort -rV); do
      p="$(pyenv root)/versions/$v/bin/python"
      if [ -x "$p" ] && ok_python "$p"; then echo "$p"; return 0; fi
    done
  fi
  return 1
}

if [ -x "$venv/bin/python" ] && [ -f "$venv/.complete" ]; then
  echo "$venv/bin/python"; exit 0
fi
py=$(find_python) || { echo "no Python >= 3.12 found (PATH or pyenv)" >&2; exit 1; }
echo "creating $venv with $py" >&2
rm -rf "$venv"
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check $want >&2
touch "$venv/.complete"
echo "$venv/bin/python"
