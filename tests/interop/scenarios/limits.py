"""Run limits and failures through the official client.

* ``Conversation(..., max_iteration_per_run=2)`` with a mock that never
  finishes: ``run()`` raises ``ConversationRunError`` naming
  ``MaxIterationsReached``; exactly two agent turns were asked for.
* the stuck detector: the same command four times ends the run in ``stuck``
  and ``run()`` raises the client's "got stuck" error; the fifth scripted turn
  is never asked for. With ``stuck_detection=False`` (stored on the server)
  the same repetition runs on to ``finish``.
* an LLM answering 500: with ``num_retries=2`` the server tries twice, then
  ``run()`` raises ``ConversationRunError`` naming the service error; a single
  500 followed by a good answer is retried transparently.
"""

from __future__ import annotations

from openhands.sdk import Conversation
from openhands.sdk.conversation.exceptions import ConversationRunError

import harness as h


def expect_run_error(conv: object, *needles: str) -> str:
    try:
        conv.run(timeout=60)  # type: ignore[attr-defined]
    except ConversationRunError as e:
        text = str(e)
        for n in needles:
            h.expect(n in text, f"ConversationRunError lacks {n!r}: {text}")
        return text
    raise AssertionError("run() returned normally")


def body(checks: h.Checks) -> None:
    with checks.check("max_iteration_per_run=2 ends in MaxIterationsReached"):
        h.mock_reset([{"tool_calls": [h.terminal_call(f"echo loop-{i}")]} for i in range(6)])
        conv = Conversation(
            agent=h.default_agent(),
            workspace=h.remote_workspace("workspace/limits"),
            max_iteration_per_run=2,
            visualizer=None,
        )
        cid = str(conv.id)
        info = h.conversation_info(cid)
        h.expect(info.get("max_iterations") == 2, f"max_iterations {info.get('max_iterations')}")
        conv.send_message("Loop forever.")
        expect_run_error(conv, "MaxIterationsReached")
        info = h.conversation_info(cid)
        h.expect(info["execution_status"] == "error", f"status {info['execution_status']}")
        h.expect(len(h.agent_calls()) == 2, f"{len(h.agent_calls())} agent turns, want 2")
        errors = h.of_kind(h.search_events(cid), "ConversationErrorEvent")
        h.expect(errors and errors[-1]["code"] == "MaxIterationsReached", f"errors {errors}")
        h.expect("2" in errors[-1]["detail"], f"detail {errors[-1]['detail']!r}")
        conv.close()

    with checks.check("the same action four times: stuck"):
        h.mock_reset([{"tool_calls": [h.terminal_call("echo same")]} for _ in range(6)])
        conv = Conversation(
            agent=h.default_agent(), workspace=h.remote_workspace("workspace/limits"), visualizer=None
        )
        cid = str(conv.id)
        conv.send_message("Repeat yourself.")
        expect_run_error(conv, "stuck")
        info = h.conversation_info(cid)
        h.expect(info["execution_status"] == "stuck", f"status {info['execution_status']}")
        h.expect(len(h.agent_calls()) == 4, f"{len(h.agent_calls())} agent turns, want 4")
        conv.close()

    with checks.check("stuck_detection=False lets the same action repeat"):
        h.mock_reset(
            [{"tool_calls": [h.terminal_call("echo same")]} for _ in range(5)]
            + [{"tool_calls": [h.finish_call("done repeating")]}]
        )
        conv = Conversation(
            agent=h.default_agent(),
            workspace=h.remote_workspace("workspace/limits"),
            stuck_detection=False,
            visualizer=None,
        )
        cid = str(conv.id)
        h.expect(h.conversation_info(cid).get("stuck_detection") is False, "stuck_detection not stored")
        conv.send_message("Repeat yourself.")
        conv.run(timeout=60)
        h.expect(h.conversation_info(cid)["execution_status"] == "finished", "status")
        conv.close()

    with checks.check("LLM 500: retried num_retries times, then ConversationRunError"):
        h.mock_reset([{"tool_calls": [h.finish_call("never reached")]}], fail={"status": 500})
        agent = h.default_agent(num_retries=2, retry_min_wait=1, retry_max_wait=1)
        conv = Conversation(agent=agent, workspace=h.remote_workspace("workspace/limits"), visualizer=None)
        cid = str(conv.id)
        conv.send_message("Hello.")
        expect_run_error(conv, "LLMServiceUnavailableError")
        calls = h.agent_calls()
        h.expect(len(calls) == 2, f"{len(calls)} agent LLM attempts, want 2 (num_retries=2)")
        gap = calls[1]["time"] - calls[0]["time"]
        h.expect(gap >= 0.8, f"retried after {gap:.2f}s, retry_min_wait is 1s")
        errors = h.of_kind(h.search_events(cid), "ConversationErrorEvent")
        h.expect(errors and errors[-1]["code"] == "LLMServiceUnavailableError", f"errors {errors}")
        conv.close()

    with checks.check("LLM 500 once: the retry succeeds and the run finishes"):
        h.mock_reset([{"fail": 500}, {"tool_calls": [h.finish_call("after one failure")]}])
        agent = h.default_agent(num_retries=3, retry_min_wait=1, retry_max_wait=1)
        conv = Conversation(agent=agent, workspace=h.remote_workspace("workspace/limits"), visualizer=None)
        cid = str(conv.id)
        conv.send_message("Hello.")
        conv.run(timeout=60)
        h.expect(h.conversation_info(cid)["execution_status"] == "finished", "status")
        h.expect(len(h.agent_calls()) == 2, f"{len(h.agent_calls())} agent LLM attempts, want 2")
        h.expect(not h.of_kind(h.search_events(cid), "ConversationErrorEvent"), "an error was recorded")
        conv.close()


if __name__ == "__main__":
    h.run_scenario("limits", body)
