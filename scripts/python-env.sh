#!/usr/bin/env bash
# Creates (once) the Python venv used by the interop tests: the official client
# openhands-sdk/-tools/-workspace 1.24.0, which needs Python >= 3.12.
# Prints the venv's python path on stdout. Usage: scripts/python-env.sh [venv-dir]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-${AGENT_SERVER_PYTHON_VENV:-$here/target/interop-venv}}"
want="openhands-sdk==1.24.0 openhands-tools==1.24.0 openhands-workspace==1.24.0 websockets"
# Every transitive version pinned, so that CI installs the set the tests were run with.
constraints="$here/tests/interop/constraints.txt"
# The venv is reused only if it was built from this exact specification.
spec="$want $(cksum <"$constraints")"

ok_python() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; }

# Prefers 3.12 (the version the reference captures were made with), then
# 3.13, then any other Python >= 3.12; looks on PATH first, then in pyenv.
find_python() {
  local minor c p v
  for minor in 3.12 3.13 ""; do
    c="python${minor:-3}"
    if p=$(command -v "$c" 2>/dev/null) && ok_python "$p"; then echo "$p"; return 0; fi
    if command -v pyenv >/dev/null 2>&1; then
      for v in $(pyenv versions --bare 2>/dev/null | sort -rV); do
        case "$v" in "$minor"*) ;; *) continue ;; esac
        p="$(pyenv root)/versions/$v/bin/python"
        if [ -x "$p" ] && ok_python "$p"; then echo "$p"; return 0; fi
      done
    fi
  done
  return 1
}

if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.complete" 2>/dev/null)" = "$spec" ]; then
  echo "$venv/bin/python"; exit 0
fi
py=$(find_python) || { echo "no Python >= 3.12 found (PATH or pyenv)" >&2; exit 1; }
echo "creating $venv with $py" >&2
rm -rf "$venv"
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c "$constraints" $want >&2
echo "$spec" >"$venv/.complete"
echo "$venv/bin/python"
