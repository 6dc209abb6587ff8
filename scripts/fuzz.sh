#!/usr/bin/env bash
# Property-based fuzzing of every route of our own /openapi.json with
# schemathesis: the real server binary runs on a free loopback port in a
# temporary directory (session keys and OH_SECRET_KEY set), a conversation,
# a settings secret, a profile, a saved workspace and a bash command are
# seeded so that generated requests reach real resources, and every answer
# must be free of 5xx (check `not_a_server_error`). Bounded: a few examples
# per operation and a hard time limit (FUZZ_SECONDS, default 150).
#
# Safety: the server executes commands and touches files by design (bash,
# MCP stdio probes, uploads). When run as root with `unshare`, the server
# and schemathesis run in a private network namespace that has only
# loopback (no generated URL can reach another host) with a private /tmp,
# and the server runs as `nobody` (no generated path or command can change
# the system).
# Without them, the routes that open outgoing connections are left out.
#
# Usage: scripts/fuzz.sh [--release]
# Env: AGENT_SERVER_BIN (binary to fuzz), FUZZ_SECONDS, FUZZ_EXAMPLES
# (examples per operation and round, default 25), FUZZ_SEED,
# AGENT_SERVER_FUZZ_VENV (venv directory), FUZZ_REPORT_DIR (keep reports).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
schemathesis_version="4.32.5"
seconds="${FUZZ_SECONDS:-150}"
examples="${FUZZ_EXAMPLES:-25}"

# ---------------------------------------------------------------- inside
# Second stage: runs in the private network namespace when there is one.
if [ "${1:-}" = "--inside" ]; then
  bin="$2"; st="$3"; sandboxed="$4"
  if [ "$sandboxed" = 1 ]; then
    ip link set lo up 2>/dev/null || { echo "fuzz: cannot bring up loopback" >&2; exit 1; }
    # A private /tmp: whatever generated requests create there vanishes.
    mount --make-rprivate / && mount -t tmpfs -o size=2g,mode=1777 tmpfs /tmp \
      || { echo "fuzz: cannot mount a private /tmp" >&2; exit 1; }
    export TMPDIR=/tmp
  fi
  work="$(mktemp -d "${TMPDIR:-/tmp}/agent-server-fuzz.XXXXXX")"
  server_pid=""
  cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    if [ -n "${FUZZ_REPORT_DIR:-}" ]; then mkdir -p "$FUZZ_REPORT_DIR" && cp -r "$work/report" "$work/server.log" "$FUZZ_REPORT_DIR/" 2>/dev/null || true; fi
    rm -rf "$work"
  }
  trap cleanup EXIT
  mkdir -p "$work/data" "$work/home" "$work/report"
  chmod 755 "$work"
  key="fuzz-session-key-$RANDOM$RANDOM"
  run_as=()
  if [ "$sandboxed" = 1 ] && [ "$(id -u)" = 0 ]; then
    chown -R nobody:nogroup "$work/data" "$work/home"
    run_as=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
  fi
  (
    cd "$work/data"
    exec env -i PATH="/usr/local/bin:/usr/bin:/bin" HOME="$work/home" RUST_LOG=info \
      OH_SESSION_API_KEYS_0="$key" OH_SECRET_KEY="fuzz-secret-key" \
      "${run_as[@]}" "$bin" --host 127.0.0.1 --port 0
  ) >"$work/server.out" 2>"$work/server.log" &
  server_pid=$!
  port=""
  for _ in $(seq 1 100); do
    port="$(sed -n 's/^Starting OpenHands Agent Server on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/server.out")"
    [ -n "$port" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$port" ]; then echo "fuzz: the server did not start:" >&2; cat "$work/server.log" >&2; exit 1; fi
  base="http://127.0.0.1:$port"
  echo "fuzz: server on $base (data in $work/data)" >&2

  # Seed resources and write the schemathesis configuration.
  python="$(dirname "$st")/python"
  FUZZ_BASE="$base" FUZZ_KEY="$key" FUZZ_WORK="$work" FUZZ_SANDBOXED="$sandboxed" "$python" - <<'PY'
import json, os, urllib.request

base, key, work = os.environ["FUZZ_BASE"], os.environ["FUZZ_KEY"], os.environ["FUZZ_WORK"]

def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"X-Session-API-Key": key, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")

ws = os.path.join(work, "data", "ws")
conv = call("POST", "/api/conversations", {
    "agent": {"kind": "Agent", "tools": [{"name": "terminal"}],
              # Port 9 on loopback: nothing listens, runs fail at once.
              "llm": {"model": "openai/fuzz", "api_key": "sk-fuzz", "base_url": "http://127.0.0.1:9/v1",
                      "num_retries": 0, "timeout": 2}},
    "workspace": {"kind": "LocalWorkspace", "working_dir": ws},
})
cid = conv["id"]
call("POST", f"/api/conversations/{cid}/events", {"role": "user", "content": [{"type": "text", "text": "hello"}]})
events = call("GET", f"/api/conversations/{cid}/events/search?limit=5")["items"]
call("PUT", "/api/settings/secrets", {"name": "FUZZ_SECRET", "value": "fuzz-value"})
call("POST", "/api/profiles/fuzz-profile", {"llm": {"model": "openai/fuzz", "api_key": "sk-profile"}})
call("POST", "/api/workspaces", {"workspaces": [{"id": "w1", "name": "ws", "path": ws}]})
cmd = call("POST", "/api/bash/execute_bash_command", {"command": "echo seeded", "cwd": ws})
bash_events = call("GET", "/api/bash/bash_events/search?limit=5")["items"]

def values(*xs):
    return {"values": [x for x in xs if x]}

conv_hex = cid.replace("-", "")
dictionaries = {
    "conversation": values(cid, conv_hex),
    "event": values(*[e["id"] for e in events]),
    "name": values("FUZZ_SECRET", "fuzz-profile"),
    "bash_command": values(cmd.get("command_id")),
    "bash_event": values(*[e["id"] for e in bash_events]),
    # Places the server's user may not enter or read, when it runs as nobody.
    "path": values(ws, os.path.join(ws, "hello.txt"), os.path.join(work, "data"),
                   os.path.join(work, "locked"), os.path.join(work, "locked", "f.txt"),
                   "/root", "/etc/shadow", "/proc/self/environ", "/dev/zero", "relative/dir"),
}
os.makedirs(os.path.join(work, "locked"), exist_ok=True)
with open(os.path.join(work, "locked", "f.txt"), "w") as f:
    f.write("locked\n")
os.chmod(os.path.join(work, "locked"), 0o000)
with open(os.path.join(ws, "hello.txt"), "w") as f:
    f.write("hello\n")
os.chmod(os.path.join(ws, "hello.txt"), 0o666)

def bind(name, probability=0.6):
    return {"dictionary": name, "probability": probability}

lines = []
def table(name, entries):
    lines.append(f"[{name}]")
    for k, v in entries.items():
        lines.append(f"{json.dumps(k)} = {toml(v)}")
    lines.append("")

def toml(v):
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(toml(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v)

for name, d in dictionaries.items():
    table(f"dictionaries.{name}", d)
table("parameters", {
    "path.conversation_id": bind("conversation"),
    "path.event_id": bind("event", 0.4),
    "path.name": bind("name"),
    "path.command_id": bind("bash_command"),
    "query.path": bind("path", 0.4),
    "body.cwd": bind("path", 0.3),
    "body.project_dir": bind("path", 0.3),
    "body.workspace.working_dir": bind("path", 0.3),
})
# Answers that are 5xx by the reference's contract, not client mistakes:
# VS Code and the desktop are not bundled (503, as the reference when
# they are disabled), and a side question to an LLM that cannot be reached
# is an upstream failure (502).
for path, statuses in [("/api/vscode/url", ["503"]), ("/api/desktop/url", ["503"]),
                       ("/api/conversations/{conversation_id}/ask_agent", ["502"]),
                       ("/api/cloud-proxy", ["502"])]:
    lines.append("[[operations]]")
    lines.append(f"include-path = {json.dumps(path)}")
    lines.append(f"checks.not_a_server_error.expected-statuses = {toml(['1xx', '2xx', '3xx', '4xx'] + statuses)}")
    lines.append("")
with open(os.path.join(work, "schemathesis.toml"), "w") as f:
    f.write("\n".join(lines))
PY

  excluded=(--exclude-path-regex '^/api/_test/')
  if [ "$sandboxed" != 1 ]; then
    echo "fuzz: no private network namespace: /api/cloud-proxy and /api/mcp/test are left out" >&2
    excluded=(--exclude-path-regex '^/api/(_test/|cloud-proxy|mcp/test)')
  fi
  seed_args=()
  [ -n "${FUZZ_SEED:-}" ] && seed_args=(--seed "$FUZZ_SEED")
  set +e
  (cd "$work" && timeout -k 10 "$((seconds + 120))" "$st" --config-file "$work/schemathesis.toml" run "$base/openapi.json" \
    -H "X-Session-API-Key: $key" \
    --checks not_a_server_error \
    --phases examples,coverage,fuzzing \
    --max-examples "$examples" \
    --max-time "$seconds" \
    --request-timeout 30 \
    --workers 2 \
    --suppress-health-check all \
    --report junit --report-dir "$work/report" \
    "${seed_args[@]}" "${excluded[@]}")
  st_rc=$?
  set -e
  alive=1
  "$python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' "$base/health" 2>/dev/null || alive=0
  if grep -q "panicked" "$work/server.log"; then
    echo "fuzz: the server panicked:" >&2; grep -A5 "panicked" "$work/server.log" | head -40 >&2; exit 1
  fi
  if [ "$alive" != 1 ]; then echo "fuzz: the server stopped answering" >&2; tail -40 "$work/server.log" >&2; exit 1; fi
  exit "$st_rc"
fi

# ---------------------------------------------------------------- outside
profile=debug
[ "${1:-}" = "--release" ] && profile=release
target="${CARGO_TARGET_DIR:-$here/target}"
bin="${AGENT_SERVER_BIN:-$target/$profile/agent-server}"
if [ -z "${AGENT_SERVER_BIN:-}" ]; then
  flags=(); [ "$profile" = release ] && flags=(--release)
  (cd "$here" && cargo build --bin agent-server "${flags[@]}" >&2)
fi
[ -x "$bin" ] || { echo "fuzz: no server binary at $bin" >&2; exit 1; }
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

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
venv="${AGENT_SERVER_FUZZ_VENV:-$target/fuzz-venv}"
if ! [ -x "$venv/bin/schemathesis" ] || ! [ -f "$venv/.complete-$schemathesis_version" ]; then
  py=$(find_python) || { echo "fuzz: no Python >= 3.12 found (PATH or pyenv)" >&2; exit 1; }
  echo "fuzz: creating $venv with $py" >&2
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version" >&2
  touch "$venv/.complete-$schemathesis_version"
fi

self="$here/scripts/fuzz.sh"
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && command -v setpriv >/dev/null \
   && command -v ip >/dev/null && command -v mount >/dev/null && unshare -n -m true 2>/dev/null; then
  exec unshare -n -m bash "$self" --inside "$bin" "$venv/bin/schemathesis" 1
fi
exec bash "$self" --inside "$bin" "$venv/bin/schemathesis" 0
