"""What reaches the model: images, agent context, and streamed tokens.

* ``send_message(Message(content=[TextContent, ImageContent(data URL)]))`` on
  a vision model reaches the LLM request as the provider's image block
  (OpenAI ``image_url``, Anthropic base64 ``image``), unchanged; with
  ``disable_vision=True`` the image is left out and the text stays.
* ``Agent(agent_context=AgentContext(skills=[...], system_message_suffix=...,
  user_message_suffix=...))``: the repository skill and the system suffix are
  in the system prompt, the keyword skill is added to the user message that
  names its keyword (and reported in ``activated_knowledge_skills`` and the
  ``MessageEvent``), the user suffix follows the user's text.
* ``LLM(stream=True)``: the 1.24.0 client has no token callback for remote
  conversations (``token_callbacks`` is swallowed by ``RemoteConversation``);
  what it does have is ``callbacks=``, which receives every WebSocket event,
  including the ``StreamingDeltaEvent`` frames the server publishes. They must
  spell the model's text and reasoning, arrive before the final event, and
  never be persisted.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from openhands.sdk import Agent, Conversation, ImageContent, Message, TextContent, Tool
from openhands.sdk.context import AgentContext, KeywordTrigger, Skill

import harness as h

# A 1x1 transparent PNG.
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
PNG_B64 = PNG.split(",", 1)[1]


def image_blocks(api: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for m in body.get("messages", []):
        content = m.get("content")
        if not isinstance(content, list):
            continue
        for block in content:
            if api == "openai" and block.get("type") == "image_url":
                out.append(block)
            if api == "anthropic" and block.get("type") == "image":
                out.append(block)
    return out


def system_text(api: str, body: dict[str, Any]) -> str:
    if api == "anthropic":
        system = body.get("system")
        return system if isinstance(system, str) else json.dumps(system)
    return json.dumps([m.get("content") for m in body["messages"] if m.get("role") == "system"])


def user_texts(body: dict[str, Any]) -> list[str]:
    return [json.dumps(m.get("content")) for m in body["messages"] if m.get("role") == "user"]


def image_flow(checks: h.Checks, model: str, api: str) -> None:
    with checks.check(f"ImageContent data URL reaches the LLM ({api})"):
        h.mock_reset([{"tool_calls": [h.finish_call("seen it")]}])
        conv = Conversation(
            agent=h.default_agent(model=model), workspace=h.remote_workspace("workspace/ctx"), visualizer=None
        )
        msg = Message(
            role="user",
            content=[TextContent(text="What is in this picture?"), ImageContent(image_urls=[PNG])],
        )
        conv.send_message(msg)
        conv.run(timeout=60)
        calls = h.agent_calls()
        h.expect(len(calls) == 1, f"{len(calls)} agent turns")
        blocks = image_blocks(api, calls[0]["body"])
        h.expect(len(blocks) == 1, f"{len(blocks)} image blocks in the request")
        if api == "openai":
            h.expect(blocks[0]["image_url"]["url"] == PNG, f"image_url {str(blocks[0])[:200]}")
        else:
            src = blocks[0]["source"]
            h.expect(src.get("type") == "base64" and src.get("media_type") == "image/png", f"source {src}")
            h.expect(src.get("data") == PNG_B64, "image data changed on the way")
        h.expect(any("What is in this picture?" in t for t in user_texts(calls[0]["body"])), "text lost")
        events = h.of_kind(h.search_events(str(conv.id)), "MessageEvent")
        content = events[0]["llm_message"]["content"]
        h.expect([c["type"] for c in content] == ["text", "image"], f"stored content {content}")
        h.expect(content[1]["image_urls"] == [PNG], "stored image_urls differ")
        conv.close()


def no_vision_flow(checks: h.Checks) -> None:
    with checks.check("disable_vision=True leaves the image out, keeps the text"):
        h.mock_reset([{"tool_calls": [h.finish_call("no eyes")]}])
        agent = h.default_agent(model="openai/gpt-4o", disable_vision=True)
        conv = Conversation(agent=agent, workspace=h.remote_workspace("workspace/ctx"), visualizer=None)
        conv.send_message(
            Message(role="user", content=[TextContent(text="Blind look."), ImageContent(image_urls=[PNG])])
        )
        conv.run(timeout=60)
        body = h.agent_calls()[0]["body"]
        h.expect(not image_blocks("openai", body), "an image was sent although vision is disabled")
        h.expect(PNG_B64 not in json.dumps(body), "the image data was sent")
        h.expect(any("Blind look." in t for t in user_texts(body)), "the text was lost")
        conv.close()


def agent_context_flow(checks: h.Checks) -> None:
    with checks.check("agent_context: skills and suffixes reach the LLM"):
        h.mock_reset([{"tool_calls": [h.finish_call("noted")]}])
        ctx = AgentContext(
            skills=[
                Skill(name="house-rules", content="REPO-RULE-7731: keep commits small.", trigger=None),
                Skill(
                    name="flarglet",
                    content="FLARGLET-KNOWLEDGE-4242: a flarglet has three sides.",
                    trigger=KeywordTrigger(keywords=["flarglet"]),
                ),
                Skill(
                    name="unused",
                    content="UNUSED-KNOWLEDGE-9999",
                    trigger=KeywordTrigger(keywords=["zzzzqqq"]),
                ),
            ],
            system_message_suffix="SYSTEM-SUFFIX-5150",
            user_message_suffix="USER-SUFFIX-8086",
        )
        base = h.default_agent()
        agent = Agent(llm=base.llm, tools=[Tool(name="terminal")], agent_context=ctx)
        conv = Conversation(agent=agent, workspace=h.remote_workspace("workspace/ctx"), visualizer=None)
        cid = str(conv.id)
        conv.send_message("Tell me about the flarglet.")
        conv.run(timeout=60)
        body = h.agent_calls()[0]["body"]
        system = system_text("openai", body)
        h.expect("SYSTEM-SUFFIX-5150" in system, "system_message_suffix is not in the system prompt")
        h.expect("REPO-RULE-7731" in system, "the repository skill is not in the system prompt")
        users = user_texts(body)
        h.expect(
            any("FLARGLET-KNOWLEDGE-4242" in u for u in users), f"keyword skill not in user message {users}"
        )
        h.expect(any("USER-SUFFIX-8086" in u for u in users), "user_message_suffix missing")
        h.expect("UNUSED-KNOWLEDGE-9999" not in json.dumps(body), "an untriggered skill was sent")
        msgs = [e for e in h.of_kind(h.search_events(cid), "MessageEvent") if e["source"] == "user"]
        h.expect(
            msgs[0].get("activated_skills") == ["flarglet"],
            f"activated_skills {msgs[0].get('activated_skills')}",
        )
        h.expect(
            "flarglet" in (h.conversation_info(cid).get("activated_knowledge_skills") or []),
            "activated_knowledge_skills lacks the skill",
        )
        h.wait_for(lambda: "flarglet" in conv.state.activated_knowledge_skills, 5, "the client's skills")
        remote = h.fresh_state(conv).agent
        h.expect(remote.agent_context is not None, "agent_context lost on the server")
        h.expect(remote.agent_context.system_message_suffix == "SYSTEM-SUFFIX-5150", "suffix not kept")
        conv.close()


def streaming_flow(checks: h.Checks, model: str, api: str) -> None:
    with checks.check(f"stream=True: callbacks receive StreamingDeltaEvent deltas ({api})"):
        text = "Streaming reply in several pieces."
        reasoning = "Thinking it over first."
        steps = [{"text": text, "tool_calls": [h.terminal_call("echo streamed")]}]
        if api == "openai":
            steps[0]["reasoning"] = reasoning
        steps.append({"tool_calls": [h.finish_call("stream done")]})
        h.mock_reset(steps)
        seen: list[Any] = []
        lock = threading.Lock()

        def on_event(event: Any) -> None:
            with lock:
                seen.append(event)

        conv = Conversation(
            agent=h.default_agent(model=model, stream=True),
            workspace=h.remote_workspace("workspace/ctx"),
            callbacks=[on_event],
            visualizer=None,
        )
        cid = str(conv.id)
        conv.send_message("Stream please.")
        conv.run(timeout=60)
        with lock:
            events = list(seen)
        deltas = [e for e in events if type(e).__name__ == "StreamingDeltaEvent"]
        h.expect(deltas, f"no StreamingDeltaEvent reached the callback; got {h.kinds(events)}")
        content = "".join(d.content or "" for d in deltas)
        h.expect(content == text, f"content deltas spell {content!r}")
        if api == "openai":
            got = "".join(d.reasoning_content or "" for d in deltas)
            h.expect(got == reasoning, f"reasoning deltas spell {got!r}")
        h.expect(len(deltas) >= 2, f"only {len(deltas)} delta(s): not streamed")
        names = [type(e).__name__ for e in events]
        first_action = next(i for i, e in enumerate(events) if type(e).__name__ == "ActionEvent")
        last_delta = max(i for i, n in enumerate(names) if n == "StreamingDeltaEvent")
        h.expect(last_delta < first_action, "deltas arrived after the ActionEvent they built")
        stored = h.kinds(h.search_events(cid))
        h.expect("StreamingDeltaEvent" not in stored, "deltas were persisted")
        for r in h.agent_calls():
            h.expect(r["body"].get("stream") is True, "the LLM request was not streamed")
        conv.close()


def body(checks: h.Checks) -> None:
    image_flow(checks, "openai/gpt-4o", "openai")
    image_flow(checks, "anthropic/claude-sonnet-4-5-20250929", "anthropic")
    no_vision_flow(checks)
    agent_context_flow(checks)
    streaming_flow(checks, "openai/mock-model", "openai")
    streaming_flow(checks, "anthropic/claude-sonnet-4-5-20250929", "anthropic")


if __name__ == "__main__":
    h.run_scenario("model-input", body)
