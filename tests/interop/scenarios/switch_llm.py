"""Switching a conversation's LLM through the official client.

* ``49_switch_llm_tool``: ``Agent(include_default_tools=["FinishTool",
  "SwitchLLMTool"])``; the model calls ``switch_llm`` with a profile saved on
  the server (``POST /api/profiles/{name}``, where the example writes
  ``~/.openhands/profiles``), the next request uses the profile's model and
  key, the client's callbacks get ``SwitchLLMAction`` / ``SwitchLLMObservation``
  as its own classes, its cached ``state.agent`` shows the new model, and the
  usage is split per usage id (``profile:<name>``). A missing profile is an
  error observation and changes nothing.
* ``44_model_switching_in_convo``: the 1.24.0 ``RemoteConversation`` has no
  ``switch_profile``; a remote client posts ``/switch_profile`` itself, and the
  next run goes to the profile's model.
* ``39_llm_fallback`` and ``19_llm_routing``: the client drops an LLM's
  ``fallback_strategy`` and sends a router as its placeholder model
  ``router``, so the first runs on its primary and the second fails with
  ``LLMBadRequestError``, as against the reference server.
"""

from __future__ import annotations

from typing import Any

from openhands.sdk import Agent, Conversation

import harness as h

PROFILE = "interop-fast"
PROFILE_MODEL = "openai/mock-fast"
PROFILE_KEY = "sk-interop-profile"


def save_profile(name: str, model: str) -> None:
    llm = {"model": model, "api_key": PROFILE_KEY, "base_url": h.MOCK, "usage_id": "fast"}
    r = h.api("POST", f"/api/profiles/{name}", {"llm": llm, "include_secrets": True})
    h.expect(r.status in (200, 201), f"saving the profile answered {r.status}: {r.text()[:300]}")


def payload_kinds(events: list[Any]) -> list[tuple[str, str]]:
    """(event class, action or observation class) of each event the callbacks got."""
    out = []
    for e in events:
        inner = getattr(e, "observation", None) or getattr(e, "action", None)
        out.append((type(e).__name__, type(inner).__name__))
    return out


def switch_observation(events: list[Any]) -> Any:
    """The first ``SwitchLLMObservation`` among the callbacks' events."""
    for e in events:
        obs = getattr(e, "observation", None)
        if type(obs).__name__ == "SwitchLLMObservation":
            return obs
    raise AssertionError(f"no SwitchLLMObservation among {payload_kinds(events)}")


def switch_agent() -> Any:
    return Agent(
        llm=h.client_llm(usage_id="main"),
        tools=[],
        include_default_tools=["FinishTool", "SwitchLLMTool"],
    )


def tool_flow(checks: h.Checks, spy: h.WsSpy) -> None:
    with checks.check("switch_llm tool: the next request goes to the saved profile", required=True):
        save_profile(PROFILE, PROFILE_MODEL)
        args = {"profile_name": PROFILE, "reason": "Cheaper for the rest."}
        call = {"name": "switch_llm", "arguments": args}
        h.mock_reset([{"tool_calls": [call]}, {"tool_calls": [h.finish_call("done on the profile")]}])
        seen: list[Any] = []
        conv = Conversation(
            agent=switch_agent(),
            workspace=h.remote_workspace("workspace/switch-llm"),
            callbacks=[seen.append],
            visualizer=None,
        )
        conv.send_message(f"Call switch_llm with profile_name={PROFILE!r}, then finish.")
        conv.run()
        calls = h.agent_calls()
        h.expect(len(calls) == 2, f"{len(calls)} agent turns")
        first, second = calls[0]["body"], calls[1]["body"]
        names = [t["function"]["name"] for t in first["tools"]]
        h.expect(names == ["finish", "switch_llm"], f"tools offered {names}")
        description = first["tools"][1]["function"]["description"]
        h.expect(f"- {PROFILE}" in description, f"the profile is not listed: {description}")
        h.expect(first["model"] == "mock-model", f"first model {first['model']}")
        h.expect(second["model"] == "mock-fast", f"second model {second['model']}")
        h.expect(calls[0]["headers"].get("authorization") == "Bearer sk-interop-mock", "first key")
        auth = calls[1]["headers"].get("authorization")
        h.expect(auth == f"Bearer {PROFILE_KEY}", f"second request's key {auth!r}")

        kinds = payload_kinds(seen)
        h.expect(("ActionEvent", "SwitchLLMAction") in kinds, f"callbacks saw {kinds}")
        h.expect(("ObservationEvent", "SwitchLLMObservation") in kinds, f"callbacks saw {kinds}")
        obs = switch_observation(seen)
        h.expect(not obs.is_error, f"error observation {obs.text}")
        h.expect(obs.active_model == PROFILE_MODEL, f"active_model {obs.active_model}")
        h.expect(f"active model '{PROFILE_MODEL}'" in obs.text, obs.text)

        updates = [e for e in spy.received(conv.id) if type(e).__name__ == h.CSUE and e.key == "agent"]
        h.expect(len(updates) == 1, f"{len(updates)} agent state updates over the socket")
        h.expect(updates[0].value["llm"]["model"] == PROFILE_MODEL, "the update names another model")
        h.expect(PROFILE_KEY not in str(updates[0].value), "the profile's key went to the client")
        spy.assert_no_dropped_frames()
        # The client's cached state (WebSocket updates only, no refresh) has the new LLM.
        h.expect(conv.state.agent.llm.model == PROFILE_MODEL, "cached state.agent.llm.model")
        usage = h.fresh_state(conv).stats.usage_to_metrics
        h.expect({"main", f"profile:{PROFILE}"} <= set(usage), f"usage ids {sorted(usage)}")
        conv.close()

    with checks.check("switch_llm tool: a missing profile is an error observation"):
        call = {"name": "switch_llm", "arguments": {"profile_name": "no-such-profile", "reason": "Try it."}}
        h.mock_reset([{"tool_calls": [call]}, {"tool_calls": [h.finish_call("stayed")]}])
        seen = []
        conv = Conversation(
            agent=switch_agent(),
            workspace=h.remote_workspace("workspace/switch-llm-missing"),
            callbacks=[seen.append],
            visualizer=None,
        )
        conv.send_message("Switch to a profile that does not exist.")
        conv.run()
        obs = switch_observation(seen)
        h.expect(obs.is_error, "not an error")
        h.expect(obs.text == "LLM profile 'no-such-profile' was not found.", obs.text)
        h.expect(obs.active_model is None, f"active_model {obs.active_model}")
        models = [c["body"]["model"] for c in h.agent_calls()]
        h.expect(models == ["mock-model", "mock-model"], f"models {models}")
        h.expect(h.fresh_state(conv).agent.llm.model == "openai/mock-model", "the LLM changed")
        conv.close()


def switch_profile_flow(checks: h.Checks) -> None:
    path = "/api/conversations/{conversation_id}/switch_profile"
    with checks.check("44_model_switching_in_convo: /switch_profile between runs", routes=[("POST", path)]):
        h.mock_reset([{"tool_calls": [h.finish_call("hello")]}, {"tool_calls": [h.finish_call("goodbye")]}])
        conv = Conversation(
            agent=h.default_agent(usage_id="main"),
            workspace=h.remote_workspace("workspace/switch-profile"),
            visualizer=None,
        )
        h.expect(not hasattr(conv, "switch_profile"), "the 1.24.0 RemoteConversation has switch_profile now")
        conv.send_message("Say hello in one sentence.")
        conv.run()
        r = h.api("POST", f"/api/conversations/{conv.id}/switch_profile", {"profile_name": PROFILE})
        ok = r.status == 200 and r.json() == {"success": True}
        h.expect(ok, f"switch_profile {r.status}: {r.text()[:300]}")
        conv.send_message("Say goodbye in one sentence.")
        conv.run()
        models = [c["body"]["model"] for c in h.agent_calls()]
        h.expect(models == ["mock-model", "mock-fast"], f"models {models}")
        state = h.fresh_state(conv)
        usage = state.stats.usage_to_metrics
        h.expect({"main", f"profile:{PROFILE}"} <= set(usage), f"usage ids {sorted(usage)}")
        r = h.api("POST", f"/api/conversations/{conv.id}/switch_profile", {"profile_name": "missing"})
        h.expect(r.status == 404 and r.json() == {"detail": "Profile 'missing' not found"}, r.text()[:300])
        conv.close()


def fallback_and_router_flow(checks: h.Checks) -> None:
    with checks.check("39_llm_fallback: the client sends no fallback_strategy; the primary answers"):
        from openhands.sdk.llm import FallbackStrategy

        h.mock_reset([{"tool_calls": [h.finish_call("haiku written")]}])
        strategy = FallbackStrategy(fallback_llms=[PROFILE])
        llm = h.client_llm(usage_id="agent-primary", fallback_strategy=strategy)
        agent = Agent(llm=llm, tools=[])
        conv = Conversation(agent=agent, workspace=h.remote_workspace("workspace/fallback"), visualizer=None)
        conv.send_message("Write a haiku about resilience into HAIKU.txt.")
        conv.run()
        info = h.conversation_info(conv.id)
        h.expect("fallback_strategy" not in info["agent"]["llm"], "the client sent fallback_strategy")
        models = [c["body"]["model"] for c in h.agent_calls()]
        h.expect(models == ["mock-model"], f"models {models}")
        conv.close()

    with checks.check("19_llm_routing: a router arrives as its placeholder model and the run fails"):
        from openhands.sdk.conversation.exceptions import ConversationRunError
        from openhands.sdk.llm.router import MultimodalRouter

        h.mock_reset([{"tool_calls": [h.finish_call("unused")]}])
        routed = {"primary": h.client_llm(usage_id="p"), "secondary": h.client_llm(usage_id="s")}
        router = MultimodalRouter(usage_id="multimodal-router", llms_for_routing=routed)
        workspace = h.remote_workspace("workspace/router")
        conv = Conversation(agent=Agent(llm=router, tools=[]), workspace=workspace, visualizer=None)
        h.expect(h.conversation_info(conv.id)["agent"]["llm"]["model"] == "router", "not the placeholder")
        conv.send_message("Hi there, who trained you?")
        try:
            conv.run(timeout=60)
        except ConversationRunError as e:
            h.expect("LLMBadRequestError" in str(e), f"run error {e}")
        else:
            raise AssertionError("run() returned normally")
        h.expect(not h.agent_calls(), "a request reached the LLM")
        conv.close()


def body(checks: h.Checks) -> None:
    spy = h.WsSpy()
    tool_flow(checks, spy)
    switch_profile_flow(checks)
    fallback_and_router_flow(checks)
    h.api("DELETE", f"/api/profiles/{PROFILE}")


if __name__ == "__main__":
    h.run_scenario("switch-llm", body)
