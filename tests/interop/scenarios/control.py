"""Run control through the official client: ``run(blocking=False)``, ``pause()``,
``interrupt()`` and resuming with ``run()``.

* pause: the mock LLM answers the first agent turn after a delay; the client
  pauses while that turn is in flight. Like the reference (whose pause waits
  for the state lock the running step holds), ``pause()`` returns once that
  step has ended: its command has run, and the ``PauseEvent`` follows its
  observation. The status must be ``paused``, no further agent turn may be
  asked for, and ``run()`` right after must resume (not meet a run still
  winding down) and finish the script.
* interrupt: the agent runs ``sleep 30`` in the terminal; ``interrupt()`` must
  return at once, the status must be ``paused`` within seconds (not after the
  sleep) with an ``InterruptEvent``, and ``run()`` must resume: the next agent
  turn carries a result for the interrupted call, and the terminal still works.
"""

from __future__ import annotations

import time
from typing import Any

from openhands.sdk import Conversation

import harness as h


def start(working_dir: str, steps: list[dict[str, Any]], message: str) -> tuple[Any, str]:
    h.mock_reset(steps)
    conv = Conversation(agent=h.default_agent(), workspace=h.remote_workspace(working_dir), visualizer=None)
    conv.send_message(message)
    started = time.monotonic()
    conv.run(blocking=False)
    took = time.monotonic() - started
    h.expect(took < 5, f"run(blocking=False) took {took:.1f}s")
    return conv, str(conv.id)


def pause_flow(checks: h.Checks) -> None:
    steps = [
        {"delay": 3, "tool_calls": [h.terminal_call("echo step-one")]},
        {"tool_calls": [h.terminal_call("echo step-two")]},
        {"tool_calls": [h.finish_call("paused and resumed")]},
    ]
    got: dict[str, Any] = {}
    with checks.check("pause: run(blocking=False) starts the run", required=True):
        conv, cid = start("workspace/control-pause", steps, "Run two echo commands.")
        got.update(conv=conv, cid=cid)
        h.wait_for(lambda: len(h.agent_calls()) >= 1, 10, "the first agent turn")
        h.expect(h.conversation_info(cid)["execution_status"] == "running", "status while the LLM answers")
    conv, cid = got["conv"], got["cid"]

    with checks.check("pause: mid-run pause() stops the loop", required=True):
        started = time.monotonic()
        conv.pause()
        took = time.monotonic() - started
        # The reference answers once the current step has finished (about the mock's delay).
        h.expect(took < 15, f"pause() took {took:.1f}s")
        # Read at once: when pause() returns, the step has ended and the pause is recorded.
        status = h.conversation_info(cid)["execution_status"]
        h.expect(status == "paused", f"status {status} right after pause() returned")
        order = h.kinds(h.search_events(cid))
        h.expect("PauseEvent" in order, f"no PauseEvent in {order}")
        h.expect(
            "ObservationEvent" in order and order.index("ObservationEvent") < order.index("PauseEvent"),
            f"pause() returned before the step in flight ended: {order}",
        )
        time.sleep(1.5)
        h.expect(h.conversation_info(cid)["execution_status"] == "paused", "status left paused on its own")
        calls = h.agent_calls()
        h.expect(len(calls) == 1, f"{len(calls)} agent turns after pause, want 1")
        h.expect(conv.state.execution_status.value == "paused", "client state is not paused")

    with checks.check("pause: run() again finishes the script"):
        conv.run(timeout=60)
        h.expect(h.conversation_info(cid)["execution_status"] == "finished", "status after run()")
        events = h.search_events(cid)
        obs = [e for e in h.of_kind(events, "ObservationEvent", "terminal")]
        texts = " ".join(str(e["observation"]) for e in obs)
        h.expect("step-one" in texts and "step-two" in texts, f"terminal observations {texts[:400]}")
        h.expect(h.of_kind(events, "ActionEvent", "finish"), "no finish action")
        log = h.mock_log()
        h.expect(log["remaining"] == 0 and log["overruns"] == 0, f"script misuse {log['remaining']=}")
        h.expect(conv.state.execution_status.value == "finished", "client state is not finished")
    conv.close()


def interrupt_flow(checks: h.Checks) -> None:
    steps = [
        {"tool_calls": [h.terminal_call("sleep 30 && echo slept")]},
        {"tool_calls": [h.terminal_call("echo after-interrupt")]},
        {"tool_calls": [h.finish_call("interrupted and resumed")]},
    ]
    got: dict[str, Any] = {}
    with checks.check("interrupt: the long command starts", required=True):
        conv, cid = start("workspace/control-interrupt", steps, "Sleep for a while.")
        got.update(conv=conv, cid=cid, t0=time.monotonic())
        h.wait_for(
            lambda: h.of_kind(h.search_events(cid), "ActionEvent", "terminal"), 15, "the sleep ActionEvent"
        )
        time.sleep(1.0)  # let the command start in the terminal
        h.expect(h.conversation_info(cid)["execution_status"] == "running", "status during the sleep")
    conv, cid, t0 = got["conv"], got["cid"], got["t0"]

    with checks.check("interrupt: returns fast and pauses", required=True):
        started = time.monotonic()
        conv.interrupt()
        took = time.monotonic() - started
        h.expect(took < 7, f"interrupt() took {took:.1f}s")
        h.wait_status(cid, "paused", 5)
        h.expect(time.monotonic() - t0 < 20, "paused only after the sleep ended")
        events = h.search_events(cid)
        h.expect(h.of_kind(events, "InterruptEvent"), f"no InterruptEvent in {h.kinds(events)}")
        slept = [e for e in h.of_kind(events, "ObservationEvent", "terminal") if "slept" in str(e)]
        h.expect(not slept, "the interrupted command ran to completion")

    with checks.check("interrupt: run() resumes and the terminal still works"):
        conv.run(timeout=60)
        h.expect(time.monotonic() - t0 < 28, "resuming waited for the interrupted sleep")
        h.expect(h.conversation_info(cid)["execution_status"] == "finished", "status after run()")
        events = h.search_events(cid)
        texts = " ".join(str(e["observation"]) for e in h.of_kind(events, "ObservationEvent", "terminal"))
        h.expect("after-interrupt" in texts, f"terminal observations after resume: {texts[:400]}")
        calls = h.agent_calls()
        h.expect(len(calls) == 3, f"{len(calls)} agent turns, want 3")
        # The interrupted call must have a result (an error) in the next request.
        results = h.tool_results("openai", calls[1]["body"])
        h.expect(len(results) == 1, f"turn 2 carries {len(results)} tool results: {results}")
    conv.close()


def body(checks: h.Checks) -> None:
    pause_flow(checks)
    interrupt_flow(checks)


if __name__ == "__main__":
    h.run_scenario("run-control", body)
