"""Conversation hooks through the official client, run on our server.

* The reference's remote example (``01_convo_with_local_agent_server.py``)
  adapted: ``Conversation(agent=get_default_agent(llm, cli_mode=True),
  workspace=Workspace(host=..., working_dir=tmp), callbacks=[...],
  hook_config=HookConfig(stop=[HookMatcher(matcher="*",
  hooks=[HookDefinition(command=<stop hook>, timeout=60)])]))``, with a
  Stop hook (written here) that denies finishing while a ``.py`` file in the
  workspace does not compile. The mock writes a broken file and finishes,
  is denied, fixes the file and finishes again; ``run()`` is called in the
  example's loop until the status stays ``finished``. The client's
  callbacks receive ``HookExecutionEvent`` objects (Stop: blocked, then
  success), the LLM sees the hook's feedback, and ``state.hook_config``
  is ``None`` before the first message and the configuration after it.
* PreToolUse blocking: a hook exiting 2 for a terminal command naming a
  forbidden file; the command never runs, the client receives the blocked
  ``HookExecutionEvent`` and a ``UserRejectObservation`` with
  ``rejection_source="hook"``, the LLM sees the rejection, the run finishes.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
import threading
import time
from typing import Any

from openhands.sdk import Conversation
from openhands.sdk.event import HookExecutionEvent, UserRejectObservation
from openhands.sdk.hooks import HookConfig, HookDefinition, HookMatcher

import harness as h

STOP_HOOK = """#!/bin/sh
# Stop hook: refuse to finish while a Python file here does not compile;
# the compiler's complaints go back to the agent as additionalContext.
problems=$("{py}" - <<'PY'
import pathlib
found = []
for path in sorted(pathlib.Path(".").rglob("*.py")):
    try:
        compile(path.read_text(), str(path), "exec")
    except SyntaxError as e:
        found.append(f"{{path}}:{{e.lineno}}: {{e.msg}}")
print("\\n".join(found))
PY
)
if [ -n "$problems" ]; then
  "{py}" -c 'import json, sys; print(json.dumps({{"decision": "deny", "additionalContext": sys.argv[1]}}))' "$problems"
  exit 2
fi
exit 0
"""

PRE_HOOK = """#!/bin/sh
# PreToolUse hook: block any command that mentions forbidden.txt.
if grep -q forbidden.txt; then
  echo "commands may not touch forbidden.txt" >&2
  exit 2
fi
exit 0
"""


def write_script(directory: str, name: str, text: str) -> str:
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IRUSR)
    return path


class Recorder:
    """A thread-safe ``callbacks=`` entry."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.lock = threading.Lock()
        self.last = time.monotonic()

    def __call__(self, event: Any) -> None:
        with self.lock:
            self.events.append(event)
            self.last = time.monotonic()

    def of(self, cls: type) -> list[Any]:
        with self.lock:
            return [e for e in self.events if isinstance(e, cls)]

    def settle(self, quiet: float = 1.0, limit: float = 15.0) -> None:
        """Waits (bounded) until no event arrived for ``quiet`` seconds."""
        deadline = time.monotonic() + limit
        while time.monotonic() - self.last < quiet and time.monotonic() < deadline:
            time.sleep(0.1)


def mock_saw(needle: str) -> bool:
    return any(needle in str(r["body"]) for r in h.agent_calls())


def stop_hook_flow(checks: h.Checks, scripts: str, spy: h.WsSpy) -> None:
    with checks.check("Stop hook denies a broken .py, the agent fixes it and finishes"):
        h.mock_reset(
            [
                {"tool_calls": [h.terminal_call("printf 'def broken(:\\n    pass\\n' > test_broken.py")]},
                {"tool_calls": [h.finish_call("Created the broken file.")]},
                # Slow to answer, so that the example's loop usually sees
                # "running" after the denial and calls run() again.
                {"delay": 2, "tool_calls": [h.terminal_call("printf 'def fixed():\\n    pass\\n' > test_broken.py")]},
                {"tool_calls": [h.finish_call("Fixed the syntax error.")]},
            ]
        )
        hook_config = HookConfig(
            stop=[
                HookMatcher(
                    matcher="*",
                    hooks=[
                        HookDefinition(
                            command=write_script(scripts, "stop_check.sh", STOP_HOOK.format(py=sys.executable)),
                            timeout=60,
                        )
                    ],
                )
            ]
        )
        tmp = tempfile.mkdtemp(prefix="hooks_demo_", dir=os.path.join(h.SERVER_CWD, "workspace"))
        recorder = Recorder()
        from openhands.sdk import Workspace

        conversation = Conversation(
            agent=h.default_agent(),
            workspace=Workspace(host=h.SERVER, api_key=h.API_KEY, working_dir=tmp),
            callbacks=[recorder],
            hook_config=hook_config,
            visualizer=None,
        )
        cid = str(conversation.id)
        h.expect(conversation.state.hook_config is None, "hook_config shown before the session started")
        conversation.send_message(
            "Create test_broken.py with a syntax error, then finish. If you get feedback, fix it and finish again."
        )
        got = conversation.state.hook_config
        h.expect(got is not None and got.stop == hook_config.stop, f"state.hook_config {got!r}")
        # The example's loop: run until the status stays finished.
        statuses = []
        for _ in range(10):
            conversation.run(timeout=90)
            time.sleep(0.5)
            status = conversation.state.execution_status.value
            statuses.append(status)
            if status == "finished":
                break
            if status != "running":
                raise AssertionError(f"unexpected status {status}; seen {statuses}")
        print(f"statuses after each run(): {statuses}", flush=True)
        # The loop may stop on the transient "finished" the denial follows: wait for the end.
        h.wait_for(
            lambda: len(h.of_kind(h.search_events(cid), "HookExecutionEvent")) >= 2
            and h.conversation_info(cid)["execution_status"] == "finished",
            60,
            "the second Stop hook run and the final finished status",
        )
        recorder.settle()
        stops = [e for e in recorder.of(HookExecutionEvent) if e.hook_event_type == "Stop"]
        # Two runs of the Stop hook (a third, allowing one if the loop's run()
        # came after the end, as it would on the reference).
        h.expect(len(stops) >= 2, f"{len(stops)} Stop HookExecutionEvents via callbacks: {stops}")
        h.expect([e.blocked for e in stops].count(True) == 1, f"blocked flags {[e.blocked for e in stops]}")
        h.expect(stops[0].blocked and not stops[0].success and stops[0].exit_code == 2, f"first {stops[0]!r}")
        h.expect("test_broken.py" in (stops[0].additional_context or ""), f"feedback {stops[0].additional_context!r}")
        h.expect(stops[0].source == "hook" and stops[0].hook_input == {"reason": "agent_finished"}, "source/input")
        h.expect(stops[-1].success and not stops[-1].blocked, f"last {stops[-1]!r}")
        h.expect(mock_saw("[Stop hook feedback]"), "the LLM never saw the Stop hook's feedback")
        h.expect(len(h.agent_calls()) == 4, f"{len(h.agent_calls())} agent turns, want 4")
        with open(os.path.join(tmp, "test_broken.py")) as f:
            h.expect("def fixed()" in f.read(), "the file was not fixed")
        # The client's own event list (REST) parses every hook event too.
        listed = [e for e in conversation.state.events if isinstance(e, HookExecutionEvent)]
        h.expect(len(listed) == len(stops), f"state.events has {len(listed)} HookExecutionEvents")
        h.expect(conversation.state.execution_status.value == "finished", "final status")
        spy.assert_no_dropped_frames()
        conversation.close()


def pre_tool_use_flow(checks: h.Checks, scripts: str, spy: h.WsSpy) -> None:
    with checks.check("PreToolUse exit 2 blocks the command; the LLM sees the rejection"):
        h.mock_reset(
            [
                {"tool_calls": [h.terminal_call("touch forbidden.txt")]},
                {"tool_calls": [h.finish_call("Could not do it.")]},
            ]
        )
        hook_config = HookConfig(
            pre_tool_use=[
                HookMatcher(
                    matcher="terminal",
                    hooks=[HookDefinition(command=write_script(scripts, "guard.sh", PRE_HOOK), timeout=30)],
                )
            ]
        )
        recorder = Recorder()
        workspace = h.remote_workspace("workspace/hooks-pre")
        conversation = Conversation(
            agent=h.default_agent(),
            workspace=workspace,
            callbacks=[recorder],
            hook_config=hook_config,
            visualizer=None,
        )
        cid = str(conversation.id)
        conversation.send_message("Touch forbidden.txt.")
        conversation.run(timeout=60)
        recorder.settle()
        h.expect(h.conversation_info(cid)["execution_status"] == "finished", "status")
        h.expect(
            not os.path.exists(os.path.join(h.SERVER_CWD, "workspace/hooks-pre/forbidden.txt")),
            "the blocked command ran",
        )
        pre = [e for e in recorder.of(HookExecutionEvent) if e.hook_event_type == "PreToolUse"]
        h.expect(len(pre) == 1 and pre[0].blocked and pre[0].exit_code == 2, f"PreToolUse events {pre}")
        h.expect(pre[0].tool_name == "terminal" and pre[0].action_id, f"{pre[0]!r}")
        h.expect("forbidden.txt" in pre[0].stderr, f"stderr {pre[0].stderr!r}")
        rejects = recorder.of(UserRejectObservation)
        h.expect(len(rejects) == 1 and rejects[0].rejection_source == "hook", f"rejections {rejects}")
        h.expect(rejects[0].action_id == pre[0].action_id, "rejection and hook name different actions")
        h.expect(mock_saw("Action rejected: commands may not touch forbidden.txt"), "the LLM did not see the rejection")
        spy.assert_no_dropped_frames()
        conversation.close()


def body(checks: h.Checks) -> None:
    spy = h.WsSpy()
    os.makedirs(os.path.join(h.SERVER_CWD, "workspace"), exist_ok=True)
    scripts = tempfile.mkdtemp(prefix="hook_scripts_")
    stop_hook_flow(checks, scripts, spy)
    pre_tool_use_flow(checks, scripts, spy)


if __name__ == "__main__":
    h.run_scenario("hooks", body)
