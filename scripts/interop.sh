#!/usr/bin/env bash
# Interop tests: the official Python client (openhands-sdk 1.24.0) against our
# agent-server, with a scripted mock LLM. Loopback only.
#
#   scripts/interop.sh [SCENARIO ...]      (names: tests/interop/run.py --list)
#
# Builds the server binary if needed (a no-op after `cargo test`, which builds
# the same debug binary), creates the client venv (scripts/python-env.sh),
# starts the mock LLM and the server (free port, temp working directory,
# OH_SESSION_API_KEYS_0 and OH_SECRET_KEY set), runs the scenarios and always
# kills both processes. Exits non-zero on any failure, after a summary.
#
# Environment: AGENT_SERVER_BIN (use this binary, skip the build),
# AGENT_SERVER_PYTHON_VENV (venv directory), INTEROP_LOG_DIR (default
# target/interop-logs), INTEROP_KEEP=1 (keep the server's temp directory),
# INTEROP_ALLOW_MISSING_ROUTES=1 (routes absent from this build do not fail).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

for tool in cargo curl openssl git; do
  command -v "$tool" >/dev/null 2>&1 || { echo "interop: '$tool' is required but not on PATH" >&2; exit 1; }
done

target_dir() {
  cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4
}

# stop PID: SIGTERM, up to 10 s to exit, then SIGKILL; never blocks longer.
stop() {
  kill "$1" 2>/dev/null || return 0
  local _
  for _ in $(seq 1 100); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}

bin="${AGENT_SERVER_BIN:-}"
if [ -z "$bin" ]; then
  echo "interop: building agent-server (debug)" >&2
  cargo build --quiet --bin agent-server
  bin="$(target_dir)/debug/agent-server"
fi
[ -x "$bin" ] || { echo "interop: no server binary at $bin" >&2; exit 1; }
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

py="$(scripts/python-env.sh "${AGENT_SERVER_PYTHON_VENV:-}")"

logs="${INTEROP_LOG_DIR:-$(target_dir)/interop-logs}"
rm -f "$logs"/*.log "$logs"/results.jsonl
mkdir -p "$logs"
work="$(mktemp -d "${TMPDIR:-/tmp}/agent-server-interop.XXXXXX")"
server_cwd="$work/server"
mkdir -p "$server_cwd"

mock_pid=""
server_pid=""
runner_pid=""
cleanup() {
  local rc=$?
  set +e
  [ -n "$runner_pid" ] && stop "$runner_pid"
  [ -n "$server_pid" ] && stop "$server_pid"
  [ -n "$mock_pid" ] && stop "$mock_pid"
  if [ "${INTEROP_KEEP:-}" = 1 ]; then echo "interop: kept $work" >&2; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Loopback traffic must never go through a proxy configured for the machine.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"

"$py" tests/interop/mock_llm.py --port 0 --port-file "$work/mock.port" >"$logs/mock-llm.log" 2>&1 &
mock_pid=$!

port="$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
api_key="$("$py" -c 'import secrets; print(secrets.token_hex(32))')"
secret_key="$("$py" -c 'import secrets; print(secrets.token_hex(32))')"
(
  cd "$server_cwd"
  # Only the variables this run sets: a key left in the caller's shell would change auth.
  for v in $(env | grep -oE '^(OH_SESSION_API_KEYS_[0-9]+|SESSION_API_KEY|OH_ALLOW_CORS_ORIGINS_[0-9]+)='); do
    unset "${v%=}"
  done
  OH_SESSION_API_KEYS_0="$api_key" OH_SECRET_KEY="$secret_key"
  export OH_SESSION_API_KEYS_0 OH_SECRET_KEY
  exec "$bin" --host 127.0.0.1 --port "$port"
) >"$logs/server.log" 2>&1 &
server_pid=$!

up=""
for _ in $(seq 1 300); do
  if [ -f "$work/mock.port" ] && curl -s -o /dev/null "http://127.0.0.1:$port/health"; then up=1; break; fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$up" ]; then
  echo "interop: server or mock LLM did not come up within 30s" >&2
  tail -20 "$logs/server.log" "$logs/mock-llm.log" >&2
  exit 1
fi

export INTEROP_SERVER_URL="http://127.0.0.1:$port" INTEROP_API_KEY="$api_key"
export INTEROP_SERVER_CWD="$server_cwd" INTEROP_MOCK_URL="http://127.0.0.1:$(cat "$work/mock.port")"
export INTEROP_LOG_DIR="$logs" AGENT_SERVER_BIN="$bin" INTEROP_PYTHON="$py"
export PYTHONPATH="$here/tests/interop" PYTHONDONTWRITEBYTECODE=1
# The client must not fetch LiteLLM's price list from the internet at import.
export LITELLM_LOCAL_MODEL_COST_MAP=True OPENHANDS_SUPPRESS_BANNER=1 COLUMNS=120

echo "interop: server $INTEROP_SERVER_URL (cwd $server_cwd), mock LLM $INTEROP_MOCK_URL, python $py" >&2
status=0
# In the background so that a signal to this script is handled at once
# (cleanup stops the runner, which stops its running scenario).
"$py" tests/interop/run.py "$@" &
runner_pid=$!
wait "$runner_pid" || status=$?
runner_pid=""

# No key or secret the scenarios used may ever reach the server's log.
for secret in "$api_key" sk-interop-seed-key sk-interop-mock s3cret-v4lue; do
  if grep -qF -- "$secret" "$logs/server.log"; then
    echo "interop: FAIL a key or secret value used by the scenarios appears in $logs/server.log" >&2
    status=1
  fi
done

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "interop: the server process died during the run; last log lines:" >&2
  tail -30 "$logs/server.log" >&2
  status=1
elif [ "$status" -ne 0 ]; then
  echo "interop: last server log lines:" >&2
  tail -15 "$logs/server.log" >&2
fi
exit "$status"
