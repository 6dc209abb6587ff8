"""Confirmation mode through the official client.

* ``set_confirmation_policy(AlwaysConfirm())``: the run stops at
  ``waiting_for_confirmation`` with the action recorded and not executed. The
  1.24.0 client's blocking ``run()`` waits only for ``finished``/``error``/
  ``stuck``, so it ends with its own timeout there (checked, it is what a user
  sees); the scenario otherwise uses ``run(blocking=False)`` and polls.
* reject: ``reject_pending_actions("no")`` records a ``UserRejectObservation``
  with the reason, the command never runs, and ``run()`` then lets the agent
  see the rejection and finish.
* accept: ``run()`` on a waiting conversation executes the pending action.
* ``ConfirmRisky`` with ``set_security_analyzer(LLMSecurityAnalyzer())``: a
  LOW-risk command runs at once, a HIGH-risk one waits; the client's state
  shows the policy and the analyzer.
"""

from __future__ import annotations

import time
from typing import Any

from openhands.sdk import Conversation
from openhands.sdk.conversation.exceptions import ConversationRunError
from openhands.sdk.security.confirmation_policy import AlwaysConfirm, ConfirmRisky, NeverConfirm
from openhands.sdk.security.llm_analyzer import LLMSecurityAnalyzer

import harness as h


def new_conversation(working_dir: str, steps: list[dict[str, Any]]) -> Any:
    h.mock_reset(steps)
    return Conversation(agent=h.default_agent(), workspace=h.remote_workspace(working_dir), visualizer=None)


def terminal_texts(cid: str) -> str:
    events = h.search_events(cid)
    return " ".join(str(e["observation"]) for e in h.of_kind(events, "ObservationEvent", "terminal"))


def reject_flow(checks: h.Checks) -> None:
    steps = [
        {"tool_calls": [h.terminal_call("echo should-not-run")]},
        {"tool_calls": [h.finish_call("the user said no")]},
    ]
    got: dict[str, Any] = {}
    with checks.check("AlwaysConfirm: the policy reaches the server", required=True):
        conv = new_conversation("workspace/confirm-reject", steps)
        cid = str(conv.id)
        got.update(conv=conv, cid=cid)
        conv.set_confirmation_policy(AlwaysConfirm())
        info = h.conversation_info(cid)
        h.expect(
            info["confirmation_policy"]["kind"] == "AlwaysConfirm", f"policy {info['confirmation_policy']}"
        )
        h.expect(isinstance(h.fresh_state(conv).confirmation_policy, AlwaysConfirm), "the client's policy")
        h.fresh_state(conv)
        h.expect(conv.confirmation_policy_active, "client says confirmation mode is inactive")
    conv, cid = got["conv"], got["cid"]

    with checks.check("AlwaysConfirm: blocking run() stops at waiting_for_confirmation", required=True):
        conv.send_message("Echo something.")
        started = time.monotonic()
        try:
            conv.run(timeout=6, poll_interval=0.5)
        except ConversationRunError as e:
            h.expect("timed out" in str(e), f"run() raised something else: {e}")
        else:
            raise AssertionError("blocking run() returned although the run waits for confirmation")
        h.expect(time.monotonic() - started < 15, "run(timeout=6) overran")
        info = h.conversation_info(cid)
        h.expect(info["execution_status"] == "waiting_for_confirmation", f"status {info['execution_status']}")
        events = h.search_events(cid)
        actions = h.of_kind(events, "ActionEvent", "terminal")
        h.expect(len(actions) == 1, f"{len(actions)} terminal actions")
        h.expect(not h.of_kind(events, "ObservationEvent"), "an action ran without confirmation")
        h.expect(len(h.agent_calls()) == 1, "the agent went on without confirmation")
        h.expect(conv.state.execution_status.value == "waiting_for_confirmation", "client state status")

    with checks.check("reject_pending_actions records a UserRejectObservation", required=True):
        conv.reject_pending_actions("no")
        events = h.search_events(cid)
        rejects = h.of_kind(events, "UserRejectObservation")
        h.expect(len(rejects) == 1, f"{len(rejects)} UserRejectObservations in {h.kinds(events)}")
        r = rejects[0]
        h.expect(r["rejection_reason"] == "no", f"rejection_reason {r['rejection_reason']!r}")
        h.expect(r["tool_name"] == "terminal", f"tool_name {r['tool_name']}")
        action = h.of_kind(events, "ActionEvent", "terminal")[0]
        h.expect(r["action_id"] == action["id"], "the rejection names another action")
        h.expect(r["tool_call_id"] == action["tool_call_id"], "tool_call_id differs from the action's")
        status = h.conversation_info(cid)["execution_status"]
        h.expect(status != "waiting_for_confirmation", f"status after reject {status}")
        h.wait_for(
            lambda: any(type(e).__name__ == "UserRejectObservation" for e in conv.state.events),
            5,
            "the rejection in the client's events",
        )

    with checks.check("after a rejection run() finishes; the command never ran"):
        conv.run(timeout=30)
        h.expect(h.conversation_info(cid)["execution_status"] == "finished", "status after run()")
        h.expect("should-not-run" not in terminal_texts(cid), "the rejected command ran")
        calls = h.agent_calls()
        h.expect(len(calls) == 2, f"{len(calls)} agent turns")
        results = h.tool_results("openai", calls[1]["body"])
        h.expect(any("no" in v for v in results.values()), f"the LLM did not see the rejection: {results}")
    conv.close()


def accept_flow(checks: h.Checks) -> None:
    steps = [
        {"tool_calls": [h.terminal_call("echo accepted-run")]},
        {"tool_calls": [h.finish_call("ran it")]},
    ]
    with checks.check("accept: run() on a waiting conversation executes the action"):
        conv = new_conversation("workspace/confirm-accept", steps)
        cid = str(conv.id)
        conv.set_confirmation_policy(AlwaysConfirm())
        conv.send_message("Echo something.")
        conv.run(blocking=False)
        h.wait_status(cid, "waiting_for_confirmation", 15)
        h.expect("accepted-run" not in terminal_texts(cid), "ran before confirmation")
        conv.run(timeout=30)
        h.expect(h.conversation_info(cid)["execution_status"] == "finished", "status after accept")
        h.expect("accepted-run" in terminal_texts(cid), "the accepted command did not run")
        h.expect(not h.of_kind(h.search_events(cid), "UserRejectObservation"), "a rejection was recorded")
        conv.close()


def risky_flow(checks: h.Checks) -> None:
    steps = [
        {"tool_calls": [h.terminal_call("echo low-risk", risk="LOW")]},
        {"tool_calls": [h.terminal_call("echo high-risk", risk="HIGH")]},
        {"tool_calls": [h.finish_call("risky handled")]},
    ]
    got: dict[str, Any] = {}
    with checks.check("ConfirmRisky + LLMSecurityAnalyzer reach the server", required=True):
        conv = new_conversation("workspace/confirm-risky", steps)
        cid = str(conv.id)
        got.update(conv=conv, cid=cid)
        conv.set_security_analyzer(LLMSecurityAnalyzer())
        conv.set_confirmation_policy(ConfirmRisky())
        info = h.conversation_info(cid)
        h.expect(
            (info.get("security_analyzer") or {}).get("kind") == "LLMSecurityAnalyzer",
            f"security_analyzer {info.get('security_analyzer')}",
        )
        policy = info["confirmation_policy"]
        h.expect(policy.get("kind") == "ConfirmRisky", f"policy {policy}")
        h.expect(policy.get("threshold") == "HIGH", f"threshold {policy.get('threshold')}")
        st = h.fresh_state(conv)
        h.expect(isinstance(st.security_analyzer, LLMSecurityAnalyzer), "the client's analyzer")
        h.expect(isinstance(st.confirmation_policy, ConfirmRisky), "the client's policy")
    conv, cid = got["conv"], got["cid"]

    with checks.check("ConfirmRisky: LOW runs, HIGH waits", required=True):
        conv.send_message("Run two commands.")
        conv.run(blocking=False)
        h.wait_status(cid, "waiting_for_confirmation", 20)
        texts = terminal_texts(cid)
        h.expect("low-risk" in texts, f"the LOW-risk command did not run: {texts[:300]}")
        h.expect("high-risk" not in texts, "the HIGH-risk command ran without confirmation")
        actions = h.of_kind(h.search_events(cid), "ActionEvent", "terminal")
        risks = [a["security_risk"] for a in actions]
        h.expect(risks == ["LOW", "HIGH"], f"security_risk of the actions {risks}")

    with checks.check("ConfirmRisky: reject, policy off, run() finishes"):
        conv.reject_pending_actions("too risky")
        conv.set_confirmation_policy(NeverConfirm())
        conv.run(timeout=30)
        h.expect(h.conversation_info(cid)["execution_status"] == "finished", "status")
        h.expect("high-risk" not in terminal_texts(cid), "the rejected command ran")
        rejects = h.of_kind(h.search_events(cid), "UserRejectObservation")
        h.expect([r["rejection_reason"] for r in rejects] == ["too risky"], f"rejections {rejects}")
        conv.set_security_analyzer(None)
        h.expect(h.conversation_info(cid).get("security_analyzer") is None, "analyzer not cleared")
    conv.close()


def body(checks: h.Checks) -> None:
    reject_flow(checks)
    accept_flow(checks)
    risky_flow(checks)


if __name__ == "__main__":
    h.run_scenario("confirmation", body)
