"""The user document's "Connect From Python" script against our server (issue 3).

``tests/interop/seed_connect.py`` is the document's script, byte for byte. This
scenario runs it in-process with exactly two textual changes, applied here so
the copy stays verbatim:

* ``host="http://127.0.0.1:8000"`` becomes the URL of the server under test
  (it listens on a free port, not 8000);
* ``LLM(...)`` gains ``base_url=os.environ["LLM_BASE_URL"]`` (the mock LLM), and
  ``stream=True`` in the streaming variants.

The document's environment variables (``LLM_MODEL``, ``LLM_API_KEY``,
``OH_SESSION_API_KEYS_0``) are set as a user would. The mock answers three agent
turns: ``file_editor create TODO.md``, ``terminal cat TODO.md``, ``finish``.

Usage: ``seed.py VARIANT`` with VARIANT one of ``VARIANTS``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import harness as h

SEED = Path(__file__).resolve().parent.parent / "seed_connect.py"
LLM_KEY = "sk-interop-seed-key"
TODO = "# TODO\n\n- [ ] Install dependencies\n- [ ] Configure environment\n- [ ] Run tests\n"

# variant -> (model, stream, failing status or None)
VARIANTS: dict[str, tuple[str, bool, int | None]] = {
    "openai": ("openai/mock-model", False, None),
    "anthropic": ("anthropic/claude-sonnet-4-5-20250929", False, None),
    "openai-stream": ("openai/mock-model", True, None),
    "anthropic-stream": ("anthropic/claude-sonnet-4-5-20250929", True, None),
    "openai-401": ("openai/mock-model", False, 401),
    "anthropic-401": ("anthropic/claude-sonnet-4-5-20250929", False, 401),
}


def replace_once(text: str, old: str, new: str) -> str:
    h.expect(text.count(old) == 1, f"seed_connect.py no longer contains exactly one {old!r}")
    return text.replace(old, new)


def seed_source(stream: bool) -> str:
    src = SEED.read_text()
    src = replace_once(src, 'host="http://127.0.0.1:8000",', f"host={h.SERVER!r},")
    key_line = '    api_key=SecretStr(os.environ["LLM_API_KEY"]),\n'
    extra = '    base_url=os.environ["LLM_BASE_URL"],\n' + ("    stream=True,\n" if stream else "")
    return replace_once(src, key_line, key_line + extra)


def script(todo_path: str) -> list[dict[str, Any]]:
    return [
        {
            "text": "I'll create the TODO.md file.",
            "tool_calls": [
                {
                    "name": "file_editor",
                    "arguments": {
                        "command": "create",
                        "path": todo_path,
                        "file_text": TODO,
                        "security_risk": "LOW",
                    },
                }
            ],
        },
        {
            "tool_calls": [
                {"name": "terminal", "arguments": {"command": "cat TODO.md", "security_risk": "LOW"}}
            ]
        },
        {
            "tool_calls": [
                {"name": "finish", "arguments": {"message": "Created TODO.md with three setup tasks."}}
            ]
        },
    ]


def dumped(event: Any) -> dict[str, Any]:
    return event.model_dump(mode="json")


def find(events: list[Any], kind: str, tool: str | None = None) -> list[Any]:
    return [
        e
        for e in events
        if type(e).__name__ == kind and (tool is None or getattr(e, "tool_name", None) == tool)
    ]


def tool_result_ids(api: str, body: dict[str, Any]) -> dict[str, str]:
    """tool call id -> result text, from the LLM request's message history."""
    out: dict[str, str] = {}
    for m in body.get("messages", []):
        if api == "openai" and m.get("role") == "tool":
            out[m["tool_call_id"]] = json.dumps(m.get("content"))
        if api == "anthropic" and isinstance(m.get("content"), list):
            for block in m["content"]:
                if block.get("type") == "tool_result":
                    out[block["tool_use_id"]] = json.dumps(block.get("content"))
    return out


def body_for(variant: str) -> Any:
    model, stream, fail = VARIANTS[variant]
    api = "anthropic" if model.startswith("anthropic/") else "openai"

    def body(checks: h.Checks) -> None:
        spy = h.WsSpy()
        project = Path(os.path.realpath(h.SERVER_CWD)) / "workspace" / "project"
        todo = project / "TODO.md"
        todo.unlink(missing_ok=True)
        h.mock_reset(script(str(todo)), fail={"status": fail} if fail else None)
        os.environ.update(
            LLM_MODEL=model,
            LLM_API_KEY=LLM_KEY,
            OH_SESSION_API_KEYS_0=h.API_KEY,
            LLM_BASE_URL=h.MOCK,
        )
        g: dict[str, Any] = {"__name__": "__main__"}
        code = compile(seed_source(stream), str(SEED), "exec")

        if fail:
            with checks.check(f"run() raises ConversationRunError on LLM {fail}", required=True):
                from openhands.sdk.conversation.exceptions import ConversationRunError

                try:
                    exec(code, g)
                except ConversationRunError as e:
                    h.expect("LLMAuthenticationError" in str(e), f"error text lacks the code: {e}")
                else:
                    raise AssertionError("run() returned although the LLM answered 401")
            conv = g["conversation"]
            cid = str(conv.id)
            with checks.check("error is visible over REST and in the client"):
                info = h.api("GET", f"/api/conversations/{cid}").json()
                h.expect(info["execution_status"] == "error", f"status {info['execution_status']}")
                errors = [e for e in h.search_events(cid) if e["kind"] == "ConversationErrorEvent"]
                h.expect(errors and errors[-1]["code"] == "LLMAuthenticationError", f"error events {errors}")
                h.expect(errors[-1]["source"] == "environment", f"error source {errors[-1]['source']}")
                agent_calls = [r for r in h.mock_log()["requests"] if r["body"].get("tools")]
                h.expect(
                    len(agent_calls) == 1, f"{len(agent_calls)} agent LLM calls; a 401 must not be retried"
                )
                h.expect(
                    find(spy.received(cid), "ConversationErrorEvent"),
                    "no ConversationErrorEvent over the socket",
                )
                spy.assert_no_dropped_frames()
            with checks.check("close() after the error deletes the conversation"):
                conv.close()
                r = h.api("GET", f"/api/conversations/{cid}")
                h.expect(r.status == 404, f"GET after close answered {r.status}")
            return

        with checks.check("seed script runs to completion", required=True):
            started = time.monotonic()
            exec(code, g)
            print(f"seed script took {time.monotonic() - started:.1f}s", flush=True)
        conv = g["conversation"]
        cid = str(conv.id)

        with checks.check("TODO.md written in workspace/project"):
            h.expect(todo.is_file(), f"{todo} does not exist")
            h.expect(todo.read_text() == TODO, f"TODO.md content {todo.read_text()!r}")

        with checks.check("run events arrived over the WebSocket"):
            got = spy.received(cid)
            print(f"socket events: {Counter(type(e).__name__ for e in got)}", flush=True)
            cached = list(conv.state.events)
            for events, where in ((got, "socket"), (cached, "client state")):
                for kind, tool in (
                    ("ActionEvent", "file_editor"),
                    ("ObservationEvent", "file_editor"),
                    ("ActionEvent", "terminal"),
                    ("ObservationEvent", "terminal"),
                    ("ActionEvent", "finish"),
                ):
                    h.expect(find(events, kind, tool), f"no {kind}({tool}) in the {where} events")
            obs = find(got, "ObservationEvent", "terminal")[0]
            h.expect(
                "Install dependencies" in json.dumps(dumped(obs)), "terminal observation lacks the file text"
            )
            statuses = [e.value for e in got if type(e).__name__ == h.CSUE and e.key == "execution_status"]
            h.expect(
                "running" in statuses and statuses[-1] == "finished", f"execution_status updates {statuses}"
            )
            ws_ids = {e.id for e in got}
            user = [i for i, e in enumerate(cached) if type(e).__name__ == "MessageEvent"]
            late = [e for e in cached[user[0] + 1 :] if type(e).__name__ != h.CSUE and e.id not in ws_ids]
            h.expect(not late, f"events reached the client only by REST: {[type(e).__name__ for e in late]}")
            spy.assert_no_dropped_frames()

        with checks.check("LLM requests have the provider's shape"):
            log = h.mock_log()
            agent_calls = [r for r in log["requests"] if r["body"].get("tools")]
            h.expect(len(agent_calls) == 3, f"{len(agent_calls)} agent LLM calls, want 3")
            h.expect(log["remaining"] == 0 and log["overruns"] == 0, f"script misuse: {log['remaining']=}")
            for r in log["requests"]:
                h.expect(r["api"] == api, f"{r['api']} request to {r['path']} for model {model}")
                auth = (
                    r["headers"].get("x-api-key") if api == "anthropic" else r["headers"].get("authorization")
                )
                want = LLM_KEY if api == "anthropic" else f"Bearer {LLM_KEY}"
                h.expect(auth == want, "the LLM key did not reach the provider unchanged")
                if api == "anthropic":
                    h.expect(r["headers"].get("anthropic-version"), "no anthropic-version header")
            for r in agent_calls:
                h.expect(
                    bool(r["body"].get("stream")) == stream, f"stream={r['body'].get('stream')} want {stream}"
                )
                names = sorted(
                    t["name"] if api == "anthropic" else t["function"]["name"] for t in r["body"]["tools"]
                )
                h.expect(
                    names == ["file_editor", "finish", "task_tracker", "terminal", "think"],
                    f"tools offered {names}",
                )
            second = tool_result_ids(api, agent_calls[1]["body"])
            h.expect(
                any("File created successfully" in v for v in second.values()), f"turn 2 results {second}"
            )
            third = tool_result_ids(api, agent_calls[2]["body"])
            h.expect(any("Install dependencies" in v for v in third.values()), f"turn 3 results {third}")
            h.expect(len(third) == 2, f"turn 3 carries {len(third)} tool results, want 2")

        with checks.check("close() deleted the conversation"):
            r = h.api("GET", f"/api/conversations/{cid}")
            h.expect(r.status == 404, f"GET after close answered {r.status}")

    return body


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in VARIANTS:
        sys.exit(f"usage: seed.py {{{'|'.join(VARIANTS)}}}")
    h.run_scenario(f"seed:{sys.argv[1]}", body_for(sys.argv[1]))
