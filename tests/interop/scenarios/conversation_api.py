"""The rest of ``RemoteConversation``'s public API after a real run.

A conversation runs five terminal commands and ``finish``; then:

* ``conversation.state`` properties the client exposes (status, agent, stats,
  policy, analyzer, workspace, persistence dir, skills, hook config, events,
  ``model_dump``) agree with the server and with what happened;
* ``ask_agent`` answers from the LLM with the history plus the question, and
  records nothing;
* ``generate_title`` (client side: the client's own LLM call over the events
  it read from the server) returns the model's title;
* ``fork(title=, tags=)`` gives a new conversation holding the same events,
  idle, with the tags (and the title as a tag, as the reference does); the
  fork runs on its own without touching the original; a fork onto an id that
  exists is refused;
* ``condense()`` (the default agent's ``LLMSummarizingCondenser``) records a
  ``Condensation`` with the summary, and the next agent turn sends a shorter
  history.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from openhands.sdk import Conversation
from openhands.sdk.conversation.conversation_stats import ConversationStats
from openhands.sdk.security.confirmation_policy import NeverConfirm

import harness as h

WORKING_DIR = "workspace/conv-api"
ASK_ANSWER = "You ran five echo commands."
TITLE = "Echo practice"
SUMMARY = "The user asked for echoes; the agent ran five."


def history_len(call: dict[str, Any]) -> int:
    return len(call["body"]["messages"])


def body(checks: h.Checks) -> None:
    steps = [{"tool_calls": [h.terminal_call(f"echo round-{i}")]} for i in range(5)]
    steps.append({"tool_calls": [h.finish_call("five rounds done")]})
    h.mock_reset(steps)
    got: dict[str, Any] = {}

    with checks.check("a run of six agent turns", required=True):
        conv = Conversation(
            agent=h.default_agent(),
            workspace=h.remote_workspace(WORKING_DIR),
            tags={"suite": "interop"},
            visualizer=None,
        )
        got.update(conv=conv, cid=str(conv.id))
        conv.send_message("Echo five rounds.")
        conv.run(timeout=60)
        got["full"] = history_len(h.agent_calls()[-1])
    conv, cid = got["conv"], got["cid"]

    with checks.check("state properties after the run"):
        # The automatic title is made with the agent's LLM and counted in its
        # usage (as the reference counts it) once it is set.
        h.wait_for(lambda: h.conversation_info(cid)["title"], 10, "the automatic title")
        st = conv.state
        # The 1.24.0 client's discriminated-union validation pops "kind" from
        # the dict it caches, so a property is read once per refresh.
        st.refresh_from_server()
        info = h.conversation_info(cid)
        h.expect(st.execution_status.value == "finished", f"execution_status {st.execution_status}")
        h.expect(st.id == conv.id, "state.id")
        agent = st.agent
        h.expect(type(agent).__name__ == "Agent", f"agent {type(agent).__name__}")
        h.expect(agent.llm.model == "openai/mock-model", f"agent.llm.model {agent.llm.model}")
        names = sorted(t.name for t in agent.tools)
        h.expect(names == ["file_editor", "task_tracker", "terminal"], f"agent tools {names}")
        h.expect(agent.condenser is not None, "the condenser was lost")
        stats = st.stats
        h.expect(isinstance(stats, ConversationStats), f"stats {type(stats)}")
        usage_id = conv.agent.llm.usage_id
        metrics = stats.usage_to_metrics.get(usage_id)
        h.expect(metrics is not None, f"usage_to_metrics {list(stats.usage_to_metrics)}, want {usage_id}")
        usage = metrics.accumulated_token_usage
        # Six agent turns and the title, 120 prompt and 30 completion tokens each.
        h.expect(usage is not None and usage.prompt_tokens == 7 * 120, f"prompt tokens {usage}")
        h.expect(usage.completion_tokens == 7 * 30, f"completion tokens {usage}")
        h.expect(conv.conversation_stats.usage_to_metrics.keys() == stats.usage_to_metrics.keys(), "stats")
        policy = st.confirmation_policy
        h.expect(isinstance(policy, NeverConfirm), f"policy {policy}")
        analyzer = st.security_analyzer
        h.expect(analyzer is None, f"security_analyzer {analyzer}")
        ws = st.workspace
        h.expect(ws.get("working_dir") == WORKING_DIR, f"workspace {ws}")
        h.expect(st.persistence_dir == info["persistence_dir"] and st.persistence_dir, "persistence_dir")
        h.expect(st.activated_knowledge_skills == [], f"skills {st.activated_knowledge_skills}")
        h.expect(st.invoked_skills == [], f"invoked {st.invoked_skills}")
        h.expect(st.hook_config is None, f"hook_config {st.hook_config}")
        dump = st.model_dump()
        h.expect(dump.get("id") == cid and dump.get("tags") == {"suite": "interop"}, f"model_dump {dump}")
        json.loads(st.model_dump_json())
        want = h.ids_without_state(h.search_events(cid))
        h.expect(h.ids_without_state(list(st.events)) == want, "client events != REST events")
        h.fresh_state(conv)
        h.expect(not conv.confirmation_policy_active, "confirmation mode reported active")

    with checks.check("ask_agent answers and records nothing"):
        h.mock_reset([{"text": ASK_ANSWER}], plain=ASK_ANSWER)
        before = h.search_events(cid)
        answer = conv.ask_agent("What did you do?")
        h.expect(answer == ASK_ANSWER, f"ask_agent answered {answer!r}")
        after = h.search_events(cid)
        h.expect(len(after) == len(before), f"{len(after) - len(before)} events recorded by ask_agent")
        h.expect(h.conversation_info(cid)["execution_status"] == "finished", "status changed")
        reqs = h.mock_log()["requests"]
        h.expect(len(reqs) == 1, f"{len(reqs)} LLM requests for one question")
        text = json.dumps(reqs[0]["body"]["messages"])
        h.expect("What did you do?" in text, "the question is not in the LLM request")
        h.expect("round-4" in text, "the history is not in the LLM request")

    with checks.check("generate_title (client side) uses the conversation's first message"):
        h.mock_reset(plain=TITLE)
        title = conv.generate_title()
        h.expect(title == TITLE, f"title {title!r}")
        reqs = h.mock_log()["requests"]
        h.expect(len(reqs) == 1 and "Echo five rounds." in json.dumps(reqs[0]["body"]), "title request")
        short = conv.generate_title(max_length=5)
        h.expect(len(short) <= 5, f"max_length ignored: {short!r}")

    forked: dict[str, Any] = {}
    with checks.check("fork(title=, tags=) copies the events", required=True):
        fork = conv.fork(title="Forked run", tags={"team": "interop"})
        forked["fork"] = fork
        fid = str(fork.id)
        h.expect(fid != cid, "fork has the same id")
        finfo = h.conversation_info(fid)
        h.expect(finfo["execution_status"] == "idle", f"fork status {finfo['execution_status']}")
        h.expect(finfo["tags"].get("team") == "interop", f"fork tags {finfo['tags']}")
        h.expect(finfo["tags"].get("title") == "Forked run", f"the title is not a tag: {finfo['tags']}")
        h.expect(fork.state.execution_status.value == "idle", "client fork status")
        src = h.kinds(h.search_events(cid))
        dst = h.kinds(h.search_events(fid))
        h.expect(dst == src, f"fork events {dst} != source {src}")
        h.expect(h.kinds(list(fork.state.events)) == src, "client's fork events differ")
        stats = fork.state.stats.usage_to_metrics.get(conv.agent.llm.usage_id)
        h.expect(
            stats is None
            or not stats.accumulated_token_usage
            or stats.accumulated_token_usage.prompt_tokens == 0,
            f"reset_metrics ignored: {stats}",
        )
    fork = forked["fork"]

    with checks.check("the fork runs on its own"):
        src_before = len(h.search_events(cid))
        h.mock_reset([{"tool_calls": [h.finish_call("fork done")]}])
        fork.send_message("Finish the fork.")
        fork.run(timeout=60)
        h.expect(h.conversation_info(str(fork.id))["execution_status"] == "finished", "fork status")
        h.expect(len(h.search_events(cid)) == src_before, "the source conversation changed")
        reqs = h.agent_calls()
        h.expect(len(reqs) == 1 and "round-4" in json.dumps(reqs[0]["body"]), "fork's LLM lacks the history")

    with checks.check("fork onto an existing id is refused"):
        try:
            conv.fork(conversation_id=fork.id)
        except httpx.HTTPStatusError as e:
            h.expect(e.response.status_code == 409, f"status {e.response.status_code}")
        else:
            raise AssertionError("fork onto an existing id succeeded")
        fixed = uuid.uuid4()
        other = conv.fork(conversation_id=fixed, reset_metrics=False)
        h.expect(other.id == fixed, f"fork id {other.id} != requested {fixed}")
        other.close()
        h.api("DELETE", f"/api/conversations/{fixed}")

    with checks.check("condense() records a Condensation and shortens the history"):
        full = got["full"]
        h.mock_reset([{"tool_calls": [h.finish_call("after condense")]}], plain=SUMMARY)
        conv.condense()
        events = h.search_events(cid)
        cond = h.of_kind(events, "Condensation")
        h.expect(len(cond) == 1, f"{len(cond)} Condensation events in {h.kinds(events)[-6:]}")
        h.expect(cond[0]["summary"] == SUMMARY, f"summary {cond[0].get('summary')!r}")
        h.expect(cond[0]["forgotten_event_ids"], "nothing forgotten")
        reqs = h.mock_log()["requests"]
        h.expect(reqs and not reqs[0]["body"].get("tools"), "the condenser's request offered tools")
        conv.send_message("One more thing.")
        conv.run(timeout=60)
        calls = h.agent_calls()
        h.expect(calls, "no agent turn after condense")
        text = json.dumps(calls[0]["body"]["messages"])
        h.expect(SUMMARY in text, "the summary is not in the next request")
        h.expect(history_len(calls[0]) < full, f"history {history_len(calls[0])} >= {full} before condense")
    fork.close()
    conv.close()

    with checks.check("ask_agent after tool use on an Anthropic model"):
        # The Messages API refuses tool blocks without tool definitions (the
        # mock does too), so the question must carry the agent's tools.
        h.mock_reset(
            [{"tool_calls": [h.terminal_call("echo anthropic-round")]}, {"tool_calls": [h.finish_call("ok")]}]
        )
        conv = Conversation(
            agent=h.default_agent(model="anthropic/claude-sonnet-4-5-20250929"),
            workspace=h.remote_workspace(WORKING_DIR),
            visualizer=None,
        )
        conv.send_message("Echo once.")
        conv.run(timeout=60)
        h.mock_reset([{"text": ASK_ANSWER}], plain=ASK_ANSWER)
        answer = conv.ask_agent("What did you run?")
        h.expect(answer == ASK_ANSWER, f"ask_agent answered {answer!r}")
        reqs = h.mock_log()["requests"]
        h.expect(len(reqs) == 1 and "anthropic-round" in json.dumps(reqs[0]["body"]), "history missing")
        conv.close()


if __name__ == "__main__":
    h.run_scenario("conversation-api", body)
