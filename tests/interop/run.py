#!/usr/bin/env python3
"""Runs the interop scenarios, each in its own process (group) with a hard
timeout, and prints one summary table.

Expects the server and the mock LLM to be running already and the
``INTEROP_*`` variables of ``harness.py`` to be set (``scripts/interop.sh``
does all of that). Usage: ``run.py [SCENARIO ...]`` (default: all of
``SCENARIOS``; ``run.py --list`` prints the names).

A scenario passes when every one of its checks passed and it exited 0 within
its time limit. ``missing-route`` results (the check failed and a route it
needs is absent from this build) fail the run too, unless
``INTEROP_ALLOW_MISSING_ROUTES=1``. This file starts and kills only its own
scenario processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED_VARIANTS = ["openai", "anthropic", "openai-stream", "anthropic-stream", "openai-401", "anthropic-401"]

# name -> (script, arguments, hard timeout in seconds); .py scenarios run in a
# fork of this process (the client's imports are paid once), .sh ones via bash.
SCENARIOS: dict[str, tuple[Path, list[str], int]] = {
    "core": (HERE / "scenarios" / "core.py", [], 120),
    **{f"seed:{v}": (HERE / "scenarios" / "seed.py", [v], 90) for v in SEED_VARIANTS},
    "workspace": (HERE / "scenarios" / "workspace.py", [], 120),
    "seed-docs": (HERE / "scenarios" / "seed_docs.sh", [], 90),
    "run-control": (HERE / "scenarios" / "control.py", [], 150),
    "confirmation": (HERE / "scenarios" / "confirmation.py", [], 150),
    "secrets": (HERE / "scenarios" / "secrets.py", [], 90),
    "limits": (HERE / "scenarios" / "limits.py", [], 150),
    "conversation-api": (HERE / "scenarios" / "conversation_api.py", [], 150),
    "model-input": (HERE / "scenarios" / "context.py", [], 150),
    "hooks": (HERE / "scenarios" / "hooks.py", [], 180),
    "mcp": (HERE / "scenarios" / "mcp.py", [], 180),
    "presets": (HERE / "scenarios" / "presets.py", [], 150),
    "subagents": (HERE / "scenarios" / "subagents.py", [], 150),
    "examples": (HERE / "scenarios" / "examples.py", [], 150),
    "switch-llm": (HERE / "scenarios" / "switch_llm.py", [], 150),
}


def preload() -> None:
    """Imports the official client once, before any fork.

    Importing it takes seconds (litellm); the forked children inherit the
    loaded modules. The import starts no threads, which keeps forking safe;
    checked here so that a future client version that does is noticed.
    """
    sys.path.insert(0, str(HERE))
    import openhands.sdk  # noqa: F401
    import openhands.tools.preset.default  # noqa: F401
    import openhands.tools.preset.gemini  # noqa: F401
    import openhands.tools.preset.gpt5  # noqa: F401
    import openhands.tools.preset.planning  # noqa: F401
    import openhands.tools.task  # noqa: F401
    import websockets.sync.client  # noqa: F401
    from openhands.sdk.conversation.impl import remote_conversation  # noqa: F401

    if threading.active_count() != 1:
        raise SystemExit(f"importing the client started threads {threading.enumerate()}; cannot fork safely")


def start(name: str, log_fd: int) -> int:
    """Starts a scenario in its own process group; returns its pid."""
    script, args, _ = SCENARIOS[name]
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    # Child: never returns; harness.run_scenario ends the process with os._exit.
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.setsid()
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        if script.suffix == ".sh":
            os.execvp("bash", ["bash", str(script), *args])
        sys.argv = [str(script), *args]
        runpy.run_path(str(script), run_name="__main__")
        os._exit(1)  # a scenario that did not exit through run_scenario
    except SystemExit as e:
        os._exit(e.code if isinstance(e.code, int) else 1)
    except BaseException:  # noqa: BLE001 - the child must never return into the runner
        traceback.print_exc()
        os._exit(1)


# The scenario running now, so that a signal to the runner also ends it (it
# runs in its own session, out of reach of a signal sent to our group).
RUNNING: list[int] = []


def on_signal(signum: int, _frame: object) -> None:
    for pid in RUNNING:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    os._exit(128 + signum)


def run_one(name: str, logs: Path) -> tuple[str, float]:
    limit = SCENARIOS[name][2]
    started = time.monotonic()
    with open(logs / f"{name.replace(':', '-')}.log", "w") as log:
        pid = start(name, log.fileno())
        RUNNING[:] = [pid]
        deadline = started + limit
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                RUNNING.clear()
                rc = os.waitstatus_to_exitcode(status)
                return ("ok" if rc == 0 else f"exit {rc}"), time.monotonic() - started
            if time.monotonic() > deadline:
                # The whole group: the scenario may have started helpers (git, servers).
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                RUNNING.clear()
                return f"timeout after {limit}s", time.monotonic() - started
            time.sleep(0.05)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def main() -> int:
    args = sys.argv[1:]
    if args == ["--list"]:
        print("\n".join(SCENARIOS))
        return 0
    unknown = [a for a in args if a not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    names = args or list(SCENARIOS)
    logs = Path(os.environ.get("INTEROP_LOG_DIR", HERE / "logs"))
    logs.mkdir(parents=True, exist_ok=True)
    results = logs / "results.jsonl"
    results.unlink(missing_ok=True)
    os.environ["INTEROP_RESULT_FILE"] = str(results)
    if any(SCENARIOS[n][0].suffix == ".py" for n in names):
        preload()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    allow_missing = os.environ.get("INTEROP_ALLOW_MISSING_ROUTES") == "1"

    outcomes: dict[str, tuple[str, float]] = {}
    for name in names:
        print(f"== {name} ...", flush=True)
        outcomes[name] = run_one(name, logs)
        print(f"== {name}: {outcomes[name][0]} ({outcomes[name][1]:.1f}s)", flush=True)

    rows = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    print("\n================ interop summary ================")
    bad_scenarios = []
    for name in names:
        outcome, took = outcomes[name]
        mine = [r for r in rows if r["scenario"] == name]
        fatal = [
            r for r in mine if r["status"] == "fail" or (r["status"] == "missing-route" and not allow_missing)
        ]
        missing = [r for r in mine if r["status"] == "missing-route"]
        passed = sum(r["status"] == "pass" for r in mine)
        ok = not fatal and (outcome == "ok" or (allow_missing and missing and outcome == "exit 1"))
        if not mine:
            ok = False
        # MISS: passed only because routes absent from this build were allowed.
        verdict = ("MISS" if missing else "PASS") if ok else "FAIL"
        print(f"{verdict:4}  {name:24} {passed}/{len(mine)} checks  {outcome}  {took:.1f}s")
        for r in mine:
            if r["status"] != "pass":
                detail = " | ".join(r["detail"].split("\n"))[:400]
                print(f"      {r['status'].upper():13} {r['check']}: {detail}")
        if not ok:
            bad_scenarios.append(name)
    for name in bad_scenarios:
        log_path = logs / f"{name.replace(':', '-')}.log"
        print(f"\n---------------- last lines of {log_path} ----------------")
        print(tail(log_path))
    print(f"\nlogs: {logs}")
    if bad_scenarios:
        print(f"interop: {len(bad_scenarios)} of {len(names)} scenario(s) failed: {', '.join(bad_scenarios)}")
        return 1
    skipped = sum(r["status"] == "missing-route" for r in rows)
    note = f", {skipped} check(s) not run for routes this build lacks" if skipped else ""
    print(f"interop: all {len(names)} scenario(s) passed{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
