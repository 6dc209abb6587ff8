"""Conversation secrets through the official client.

Secrets reach the server four ways: ``Conversation(..., secrets=...)`` at
creation, and ``update_secrets`` with a plain string, a ``StaticSecret`` and a
``LookupSecret`` (served by the mock, behind a bearer key sent as a header).
The agent then uses them in terminal commands. Asserted:

* the commands see the real values (the shell prints a digest of them);
* every place the value could leak shows ``<secret-hidden>`` or nothing:
  terminal observations (REST, the client's events), the next LLM request,
  the conversation info, the client's ``state``;
* the lookup URL was really fetched with the header.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from openhands.sdk import Conversation
from openhands.sdk.secret import LookupSecret, StaticSecret
from pydantic import SecretStr

import harness as h

TOKEN = "tok-123"
STATIC = "st4tic-s3cret-456"
CREATED = "cr3ated-s3cret-321"
LOOKUP = "lk-from-lookup-789"  # mock_llm.LOOKUP_SECRET_VALUE
LOOKUP_KEY = "lookup-bearer-key"  # mock_llm.LOOKUP_SECRET_KEY
VALUES = [TOKEN, STATIC, CREATED, LOOKUP, LOOKUP_KEY]


def leaks(text: str) -> list[str]:
    return [v for v in VALUES if v in text]


def body(checks: h.Checks) -> None:
    steps = [
        {"tool_calls": [h.terminal_call("echo $MY_TOKEN")]},
        # A digest proves the shell saw the values without the command naming them.
        {"tool_calls": [h.terminal_call('printf %s "$MY_TOKEN:$STATIC_TOKEN:$CREATED_TOKEN" | sha256sum')]},
        {"tool_calls": [h.terminal_call("echo $STATIC_TOKEN $CREATED_TOKEN")]},
        {"tool_calls": [h.terminal_call('echo "lookup=$LOOKUP_TOKEN"')]},
        {"tool_calls": [h.finish_call("secrets used")]},
    ]
    h.mock_reset(steps)
    got: dict[str, Any] = {}

    with checks.check(
        "secrets at creation and update_secrets (str, StaticSecret, LookupSecret)", required=True
    ):
        conv = Conversation(
            agent=h.default_agent(),
            workspace=h.remote_workspace("workspace/secrets"),
            secrets={"CREATED_TOKEN": CREATED},
            visualizer=None,
        )
        cid = str(conv.id)
        got.update(conv=conv, cid=cid)
        conv.update_secrets({"MY_TOKEN": TOKEN})
        conv.update_secrets(
            {
                "STATIC_TOKEN": StaticSecret(value=SecretStr(STATIC), description="a static one"),
                "LOOKUP_TOKEN": LookupSecret(
                    url=f"{h.MOCK}/_mock/secret", headers={"Authorization": f"Bearer {LOOKUP_KEY}"}
                ),
            }
        )
        info = h.conversation_info(cid)
        sources = (info.get("secret_registry") or {}).get("secret_sources") or {}
        want = {"CREATED_TOKEN", "MY_TOKEN", "STATIC_TOKEN", "LOOKUP_TOKEN"}
        h.expect(want <= set(sources), f"secret_sources {sorted(sources)}")
        h.expect(sources["LOOKUP_TOKEN"].get("kind") == "LookupSecret", f"{sources['LOOKUP_TOKEN']}")
        h.expect(sources["STATIC_TOKEN"].get("description") == "a static one", f"{sources['STATIC_TOKEN']}")
        h.expect(not leaks(json.dumps(info)), f"conversation info shows {leaks(json.dumps(info))}")
    conv, cid = got["conv"], got["cid"]

    with checks.check("the agent's commands see the secrets", required=True):
        conv.send_message("Use the tokens.")
        conv.run(timeout=60)
        h.expect(h.conversation_info(cid)["execution_status"] == "finished", "status after run()")
        obs = h.of_kind(h.search_events(cid), "ObservationEvent", "terminal")
        h.expect(len(obs) == 4, f"{len(obs)} terminal observations")
        digest = hashlib.sha256(f"{TOKEN}:{STATIC}:{CREATED}".encode()).hexdigest()
        h.expect(digest in json.dumps(obs[1]), f"the shell did not see the values: {obs[1]['observation']}")
        h.expect(h.mock_log()["secret_lookups"] >= 1, "the LookupSecret URL was never fetched")

    with checks.check("terminal observations show <secret-hidden>, never the value"):
        obs = h.of_kind(h.search_events(cid), "ObservationEvent", "terminal")
        for i, o in enumerate(obs):
            text = json.dumps(o)
            h.expect(not leaks(text), f"observation {i} shows {leaks(text)}: {o['observation']}")
        h.expect("<secret-hidden>" in json.dumps(obs[0]), f"echo $MY_TOKEN gave {obs[0]['observation']}")
        h.expect(json.dumps(obs[2]).count("<secret-hidden>") >= 2, f"static/created: {obs[2]['observation']}")
        h.expect("lookup=<secret-hidden>" in json.dumps(obs[3]), f"lookup: {obs[3]['observation']}")
        client_side = json.dumps([e.model_dump(mode="json") for e in conv.state.events])
        h.expect(not leaks(client_side), f"the client's events show {leaks(client_side)}")

    with checks.check("no secret reaches the LLM or the client's state"):
        for i, r in enumerate(h.mock_log()["requests"]):
            text = json.dumps(r["body"])
            h.expect(not leaks(text), f"LLM request {i} contains {leaks(text)}")
        h.expect(not leaks(json.dumps(conv.state.model_dump())), "the client's state shows a secret")
        all_events = json.dumps(h.search_events(cid))
        h.expect(not leaks(all_events), f"events show {leaks(all_events)}")
    conv.close()


if __name__ == "__main__":
    h.run_scenario("secrets", body)
