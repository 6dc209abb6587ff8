#!/usr/bin/env bash
# The whole test suite in one command (what CI runs through .ci/run):
#   1. cargo fmt --all -- --check
#   2. cargo clippy --all-targets -- -D warnings
#   3. cargo test --workspace          (unit + integration tests)
#   4. scripts/interop.sh              (the official Python client against the built server)
#   5. soak                            (short load soak: every WebSocket subscriber gets every
#                                       event once, in order, while agents run; /health answers)
#   6. scripts/fuzz.sh                 (schemathesis against our own /openapi.json: no 5xx)
# Stops at the first failing step and says which one. Needs a Rust toolchain
# with rustfmt and clippy, git, curl, openssl and a Python >= 3.12 (PATH or
# pyenv); the client venv is created on first use. Extra arguments go to
# scripts/interop.sh (scenario names).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

summary=()
current=""
finish() {
  local rc=$?
  echo
  echo "================ test summary ================"
  local line
  for line in "${summary[@]}"; do echo "$line"; done
  if [ "$rc" -ne 0 ] && [ -n "$current" ]; then
    echo "FAIL  $current"
    echo "test: failed at step '$current' (exit $rc)"
  elif [ "$rc" -eq 0 ]; then
    echo "test: all steps passed"
  fi
}
trap finish EXIT

step() { # name command...
  current="$1"; shift
  echo
  echo "================ $current ================"
  local started=$SECONDS
  "$@"
  summary+=("ok    $current ($((SECONDS - started))s)")
  current=""
}

target_dir() {
  cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4
}

step "cargo fmt" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --all-targets -- -D warnings
step "cargo test" cargo test --workspace
# `cargo test` has just built the server binary (integration tests need it);
# reuse it rather than letting `cargo build` rebuild dependencies with the
# feature set of a non-test build.
step "interop" env AGENT_SERVER_BIN="$(target_dir)/debug/agent-server" scripts/interop.sh "$@"
# The load tool's soak, CI-sized and in the dev profile (the test build's
# artifacts are reused): 20 conversations running scripted agent loops with
# 40 subscribers for 20 s. Fails on any missed, repeated or reordered event
# or failed request; the timing budgets are measured by scripts/bench.sh.
step "soak" cargo bench --profile dev --bench load -- soak --duration 20 --conversations 20 --subscribers 40
# Property-based fuzzing of every route of our /openapi.json (schemathesis):
# zero 5xx answers. CI-sized; FUZZ_SECONDS=600 for a longer run by hand.
step "fuzz" env AGENT_SERVER_BIN="$(target_dir)/debug/agent-server" FUZZ_SECONDS="${FUZZ_SECONDS:-120}" scripts/fuzz.sh
