#!/usr/bin/env bash
# The user document's shell commands, with our binary in place of
# `python -m openhands.agent_server` (issue: the seed document must work as written).
#
# Starts its own short-lived servers (loopback only, free ports, temp working
# directories) for the document's four set-ups: open local server; session key
# plus secret key; key rotation with _0/_1; CORS origin. Checks each command's
# answer with curl exactly as the document shows it. It only reads the server;
# it must never leave a process behind (every server is killed on exit).
#
# Environment: AGENT_SERVER_BIN (our binary), INTEROP_RESULT_FILE (optional,
# one JSON result per line).
set -uo pipefail

bin="${AGENT_SERVER_BIN:?AGENT_SERVER_BIN must point at the agent-server binary}"
py="${INTEROP_PYTHON:-python3}"
scenario="seed-docs"
failures=0
pids=()
tmp="$(mktemp -d "${TMPDIR:-/tmp}/interop-seed-docs.XXXXXX")"

cleanup() {
  local p _
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

record() { # name status detail
  local name="$1" status="$2" detail="${3:-}"
  echo "--- ${status^^} $scenario/$name $detail"
  if [ -n "${INTEROP_RESULT_FILE:-}" ]; then
    "$py" -c 'import json,sys; print(json.dumps({"scenario":sys.argv[1],"check":sys.argv[2],"status":sys.argv[3],"detail":sys.argv[4],"seconds":0}))' \
      "$scenario" "$name" "$status" "$detail" >>"$INTEROP_RESULT_FILE"
  fi
  [ "$status" = pass ] || failures=$((failures + 1))
}

free_port() {
  "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start NAME [VAR=value ...]: runs the server with only the given session/CORS
# variables (the document says pre-set keys change behaviour, so clear them),
# waits for /health, sets $port.
start() {
  local name="$1"; shift
  local dir="$tmp/$name"
  mkdir -p "$dir"
  port="$(free_port)"
  (
    cd "$dir" || exit 1
    for v in $(env | grep -oE '^(OH_SESSION_API_KEYS_[0-9]+|SESSION_API_KEY|OH_ALLOW_CORS_ORIGINS_[0-9]+|OH_SECRET_KEY)='); do
      unset "${v%=}"
    done
    exec env "$@" "$bin" --host 127.0.0.1 --port "$port"
  ) >"$dir/server.log" 2>&1 &
  pids+=("$!")
  local i
  for i in $(seq 1 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/health"; then return 0; fi
    sleep 0.1
  done
  record "$name: server starts" fail "no /health answer within 10s; log: $(tail -5 "$dir/server.log")"
  return 1
}

# expect NAME WANT_STATUS BODY_REGEX curl-args...: one curl, checked.
expect() {
  local name="$1" want="$2" regex="$3"; shift 3
  local out status body
  out="$(curl -s -m 10 -w '\n%{http_code}' "$@")" || { record "$name" fail "curl failed: $*"; return; }
  status="${out##*$'\n'}"
  body="${out%$'\n'*}"
  if [ "$status" != "$want" ]; then
    record "$name" fail "status $status (want $want), body ${body:0:200}"
  elif ! [[ "$body" =~ $regex ]]; then
    record "$name" fail "body ${body:0:200} does not match /$regex/"
  else
    record "$name" pass
  fi
}

# header_of NAME HEADER WANT curl-args...: a response header must equal WANT.
header_of() {
  local name="$1" header="$2" want="$3"; shift 3
  local got
  got="$(curl -s -m 10 -o /dev/null -D - "$@" | tr -d '\r' | awk -v h="$(echo "$header" | tr 'A-Z' 'a-z')" -F': ' 'tolower($1)==h {print $2}')"
  if [ "$got" = "$want" ]; then record "$name" pass; else record "$name" fail "$header is '$got', want '$want'"; fi
}

# 1. Start a Local Server (no keys): health, docs, open /api.
if start local; then
  expect "local: curl /health" 200 '^\{"status":"ok"\}$' "http://127.0.0.1:$port/health"
  # A browser follows redirects; so does -L (the reference answers 200 directly).
  expect "local: /docs reachable" 200 '[Ss]wagger' -L "http://127.0.0.1:$port/docs"
  expect "local: /openapi.json" 200 '"openapi"' "http://127.0.0.1:$port/openapi.json"
  expect "local: /ready" 200 '"ready"' "http://127.0.0.1:$port/ready"
  expect "local: /server_info" 200 '"version"' "http://127.0.0.1:$port/server_info"
  expect "local: /api open without keys" 200 '^[0-9]+$' "http://127.0.0.1:$port/api/conversations/count"
fi

# 2. Secure the Server: OH_SESSION_API_KEYS_0 + OH_SECRET_KEY, plus the CORS
#    origin of "Expose It Safely" (bound to loopback here, never 0.0.0.0).
key0="$(openssl rand -hex 32)"
secret="$(openssl rand -hex 32)"
origin="https://your-frontend.example.com"
if start secured OH_SESSION_API_KEYS_0="$key0" OH_SECRET_KEY="$secret" OH_ALLOW_CORS_ORIGINS_0="$origin"; then
  expect "secured: count with X-Session-API-Key" 200 '^[0-9]+$' \
    -H "X-Session-API-Key: $key0" "http://127.0.0.1:$port/api/conversations/count"
  expect "secured: 401 without the key" 401 '^\{"detail":"Unauthorized"\}$' \
    "http://127.0.0.1:$port/api/conversations/count"
  expect "secured: 401 with a wrong key" 401 'Unauthorized' \
    -H "X-Session-API-Key: not-$key0" "http://127.0.0.1:$port/api/conversations/count"
  expect "secured: 401 for a key in the query" 401 'Unauthorized' \
    "http://127.0.0.1:$port/api/conversations/count?session_api_key=$key0"
  expect "secured: /health needs no key" 200 '"ok"' "http://127.0.0.1:$port/health"
  expect "secured: CORS preflight allowed" 200 '' -X OPTIONS \
    -H "Origin: $origin" -H "Access-Control-Request-Method: GET" \
    -H "Access-Control-Request-Headers: X-Session-API-Key" \
    "http://127.0.0.1:$port/api/conversations/count"
  header_of "secured: preflight allow-origin" access-control-allow-origin "$origin" -X OPTIONS \
    -H "Origin: $origin" -H "Access-Control-Request-Method: GET" \
    "http://127.0.0.1:$port/api/conversations/count"
  header_of "secured: preflight allow-credentials" access-control-allow-credentials "true" -X OPTIONS \
    -H "Origin: $origin" -H "Access-Control-Request-Method: GET" \
    "http://127.0.0.1:$port/api/conversations/count"
  expect "secured: CORS preflight from another origin refused" 400 'Disallowed CORS origin' -X OPTIONS \
    -H "Origin: https://elsewhere.example.com" -H "Access-Control-Request-Method: GET" \
    "http://127.0.0.1:$port/api/conversations/count"
  header_of "secured: simple request gets allow-origin" access-control-allow-origin "$origin" \
    -H "Origin: $origin" -H "X-Session-API-Key: $key0" "http://127.0.0.1:$port/api/conversations/count"
fi

# 3. Key rotation: both indexed keys are accepted.
if start rotation OH_SESSION_API_KEYS_0="current-key" OH_SESSION_API_KEYS_1="next-key"; then
  expect "rotation: _0 key accepted" 200 '^[0-9]+$' \
    -H "X-Session-API-Key: current-key" "http://127.0.0.1:$port/api/conversations/count"
  expect "rotation: _1 key accepted" 200 '^[0-9]+$' \
    -H "X-Session-API-Key: next-key" "http://127.0.0.1:$port/api/conversations/count"
  expect "rotation: other key refused" 401 'Unauthorized' \
    -H "X-Session-API-Key: old-key" "http://127.0.0.1:$port/api/conversations/count"
fi

# 4. "If SESSION_API_KEY ... is already set in your shell, the server will require that key".
if start legacy SESSION_API_KEY="legacy-key"; then
  expect "legacy: SESSION_API_KEY required" 401 'Unauthorized' "http://127.0.0.1:$port/api/conversations/count"
  expect "legacy: SESSION_API_KEY accepted" 200 '^[0-9]+$' \
    -H "X-Session-API-Key: legacy-key" "http://127.0.0.1:$port/api/conversations/count"
fi

# 5. "Port already in use: Change the port with --port": a second server on a
#    taken port must fail fast with a message, not hang.
if start busy; then
  busy_out="$(cd "$tmp" && timeout 10 "$bin" --host 127.0.0.1 --port "$port" 2>&1)"
  rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; then
    record "port in use: exits with an error" pass
  else
    record "port in use: exits with an error" fail "rc=$rc output: ${busy_out:0:200}"
  fi
fi

[ "$failures" -eq 0 ]
