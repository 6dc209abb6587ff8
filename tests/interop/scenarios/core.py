"""Core conversation flow through the official client (issue 2).

Creates a conversation with ``Conversation(agent=..., workspace=Workspace(...))``,
sends a message without running, and checks that the events read back over
REST, the events a raw WebSocket sees (live and with ``resend_mode=all``) and
the events in the client's own cache agree; then reattaches with
``conversation_id=`` and checks the same events come back, closes, and checks
the conversation is gone. No agent run happens here: the mock LLM must see no
agent request.
"""

from __future__ import annotations

import json
import time
from typing import Any

import websockets.sync.client as wsc
from openhands.sdk import Conversation, Workspace
from openhands.tools.preset.default import get_default_agent
from websockets.exceptions import InvalidStatus

import harness as h

MESSAGE = "Create a TODO.md file with three setup tasks."
WORKING_DIR = "workspace/core"


def ws_url(cid: str, query: str = "") -> str:
    base = h.SERVER.replace("http://", "ws://", 1)
    url = f"{base}/sockets/events/{cid}?session_api_key={h.API_KEY}"
    return url + (f"&{query}" if query else "")


def read_until(sock: Any, pred: Any, timeout: float, what: str) -> list[dict[str, Any]]:
    """Frames read until pred(frames) is true; bounded by timeout."""
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not pred(frames):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; got {summary(frames)}")
        try:
            raw = sock.recv(timeout=left)
        except TimeoutError:
            continue
        h.expect(isinstance(raw, str), f"binary frame received: {raw[:80]!r}")
        frames.append(json.loads(raw))
    return frames


def summary(frames: list[dict[str, Any]]) -> list[str]:
    return [f"{f.get('kind')}{':' + f['key'] if 'key' in f else ''}" for f in frames]


def is_full_state(frame: dict[str, Any]) -> bool:
    return frame.get("kind") == h.CSUE and frame.get("key") == "full_state"


def body(checks: h.Checks) -> None:
    spy = h.WsSpy()
    agent = get_default_agent(llm=h.client_llm(), cli_mode=True)
    workspace = Workspace(host=h.SERVER, api_key=h.API_KEY, working_dir=WORKING_DIR)
    h.mock_reset()
    state: dict[str, Any] = {}

    with checks.check("create conversation", required=True):
        conv = Conversation(agent=agent, workspace=workspace)
        cid = str(conv.id)
        state["conv"], state["cid"] = conv, cid
        r = h.api("GET", f"/api/conversations/{cid}")
        h.expect(r.status == 200, f"GET conversation answered {r.status}: {r.text()[:300]}")
        info = r.json()
        h.expect(info["id"] == cid, f"id {info['id']} != {cid}")
        h.expect(info["execution_status"] == "idle", f"execution_status {info['execution_status']}")
    conv, cid = state["conv"], state["cid"]

    live = None
    with checks.check("raw websocket: first frame is full_state", required=True):
        live = wsc.connect(ws_url(cid), open_timeout=10)
        first = read_until(live, lambda fs: len(fs) >= 1, 10, "the first frame")[0]
        h.expect(is_full_state(first), f"first frame is {summary([first])}, not full_state")
        value = first["value"]
        h.expect(isinstance(value, dict), "full_state value is not an object")
        h.expect(
            value.get("execution_status") == "idle", f"full_state status {value.get('execution_status')}"
        )
        h.expect(value.get("id") == cid, f"full_state id {value.get('id')} != {cid}")
        h.expect("stats" in value, "full_state has no stats")

    with checks.check("send_message without run", required=True):
        conv.send_message(MESSAGE)
        info = h.api("GET", f"/api/conversations/{cid}").json()
        h.expect(
            info["execution_status"] == "idle", f"status after send_message is {info['execution_status']}"
        )
        agent_calls = [r for r in h.mock_log()["requests"] if r["body"].get("tools")]
        h.expect(not agent_calls, f"the LLM was asked {len(agent_calls)} agent turn(s) without run()")

    rest: list[dict[str, Any]] = []
    with checks.check("REST events/search after send_message", required=True):
        rest[:] = h.search_events(cid)
        kinds = [e["kind"] for e in rest]
        h.expect("SystemPromptEvent" in kinds, f"no SystemPromptEvent in {kinds}")
        msgs = [e for e in rest if e["kind"] == "MessageEvent"]
        h.expect(len(msgs) == 1, f"{len(msgs)} MessageEvents in {kinds}")
        h.expect(msgs[0]["source"] == "user", f"message source {msgs[0]['source']}")
        text = msgs[0]["llm_message"]["content"][0]["text"]
        h.expect(text == MESSAGE, f"message text {text!r}")
        h.expect(
            kinds.index("SystemPromptEvent") < kinds.index("MessageEvent"), "system prompt after message"
        )
        last = [e for e in rest if e["kind"] == h.CSUE and e.get("key") == "last_user_message_id"]
        h.expect(
            last and last[-1]["value"] == msgs[0]["id"], "no last_user_message_id update naming the message"
        )
        info = h.api("GET", f"/api/conversations/{cid}").json()
        h.expect(info.get("last_user_message_id") == msgs[0]["id"], "ConversationInfo.last_user_message_id")

    with checks.check("raw websocket: live events equal REST"):
        rest_by_id = {e["id"]: e for e in rest}
        frames = read_until(
            live,
            lambda fs: (
                any(f.get("kind") == "MessageEvent" for f in fs)
                and any(f.get("key") == "last_user_message_id" for f in fs)
            ),
            10,
            "the MessageEvent and last_user_message_id",
        )
        for f in frames:
            if is_full_state(f):
                continue
            h.expect(f["id"] in rest_by_id, f"live {summary([f])} {f['id']} is not in events/search")
            h.expect(
                f == rest_by_id[f["id"]], f"live frame differs from REST item:\n{f}\n{rest_by_id[f['id']]}"
            )
        live_ids = [f["id"] for f in frames if not is_full_state(f)]
        h.expect(live_ids == [e["id"] for e in rest if e["id"] in set(live_ids)], "live order != REST order")

    with checks.check("client cache equals REST (state updates ignored)"):
        want = h.ids_without_state(rest)
        h.wait_for(lambda: h.ids_without_state(list(conv.state.events)) == want, 10, "the client cache")
        got_ws = h.ids_without_state(spy.received(cid))
        h.expect(set(got_ws) <= set(want), f"client WS delivered unknown events {set(got_ws) - set(want)}")
        h.expect(
            h.ids_without_state(rest)[-1] in got_ws, "the client's socket did not deliver the MessageEvent"
        )
        spy.assert_no_dropped_frames()

    with checks.check("raw websocket: resend_mode=all replays the log"):
        with wsc.connect(ws_url(cid, "resend_mode=all"), open_timeout=10) as replay:
            want_ids = [e["id"] for e in rest]
            frames = read_until(
                replay,
                lambda fs: len([f for f in fs if not is_full_state(f)]) >= len(want_ids),
                10,
                "the replayed events",
            )
            h.expect(is_full_state(frames[0]), f"first frame is {summary(frames[:1])}, not full_state")
            got = [f for f in frames if not is_full_state(f)]
            h.expect([f["id"] for f in got] == want_ids, f"replay {summary(got)} != REST {summary(rest)}")
            h.expect(got == rest, "replayed events differ from REST items")

    with checks.check("raw websocket: wrong key is rejected at the handshake"):
        bad = ws_url(cid).replace(f"session_api_key={h.API_KEY}", "session_api_key=wrong-key")
        try:
            wsc.connect(bad, open_timeout=10).close()
        except InvalidStatus as e:
            h.expect(e.response.status_code == 403, f"handshake status {e.response.status_code}, want 403")
        else:
            raise AssertionError("a socket with a wrong key was accepted")

    with checks.check("raw websocket: unknown conversation closes with 4004"):
        from websockets.exceptions import ConnectionClosed

        with wsc.connect(ws_url("00000000-0000-4000-8000-000000000000"), open_timeout=10) as sock:
            try:
                frame = sock.recv(timeout=10)
                raise AssertionError(f"unknown conversation sent a frame: {frame[:200]}")
            except ConnectionClosed as e:
                code = e.rcvd.code if e.rcvd else None
                h.expect(code == 4004, f"close code {code}, want 4004")

    reattached = None
    with checks.check("reattach with conversation_id= sees the same events"):
        count_before = h.api("GET", "/api/conversations/count").json()
        reattached = Conversation(
            agent=agent,
            workspace=Workspace(host=h.SERVER, api_key=h.API_KEY, working_dir=WORKING_DIR),
            conversation_id=conv.id,
        )
        h.expect(str(reattached.id) == cid, f"reattached id {reattached.id}")
        h.expect(
            h.api("GET", "/api/conversations/count").json() == count_before, "reattach created a conversation"
        )
        want = h.ids_without_state(h.search_events(cid))
        got = h.ids_without_state(list(reattached.state.events))
        h.expect(got == want, f"reattached events {got} != REST {want}")
        h.expect(
            got == h.ids_without_state(list(conv.state.events)), "reattached view != first client's view"
        )
        h.expect(reattached.state.execution_status.value == "idle", "reattached status")
        spy.assert_no_dropped_frames()

    with checks.check("close() deletes the conversation"):
        started = time.monotonic()
        if reattached is not None:
            reattached.close()
        conv.close()
        took = time.monotonic() - started
        h.expect(took < 20, f"close() took {took:.1f}s")
        r = h.api("GET", f"/api/conversations/{cid}")
        h.expect(r.status == 404, f"GET after close answered {r.status}: {r.text()[:200]}")
        r = h.api("GET", f"/api/conversations/{cid}/events/search?limit=100")
        h.expect(r.status == 404, f"events/search after close answered {r.status}")
    if live is not None:
        live.close()


if __name__ == "__main__":
    h.run_scenario("core", body)
