"""MCP tools inside conversations, through the official client.

The MCP server is a real one: a stdio server written here with the venv's
``fastmcp`` (``add``, ``check_token``, ``refuse``), started by our server
from the agent's ``mcp_config``.

* ``Agent(llm, tools=[Tool(name=TerminalTool.name)], mcp_config={"mcpServers":
  {"calc": {"command": <python>, "args": [<server>], "env": {"CALC_TOKEN":
  "${CALC_TOKEN}"}}}})`` with ``secrets={"CALC_TOKEN": ...}``: the LLM request
  offers ``add``/``check_token``/``refuse`` (between ``terminal`` and
  ``finish``) with the schema derived from the server's input schema; the mock
  calls them; the client's callbacks get ``ActionEvent`` with an
  ``MCPToolAction`` and ``ObservationEvent`` with an ``MCPToolObservation``
  (the result, the expanded secret seen by the server, a tool error as
  ``is_error``); the LLM sees the results; the client's ``SystemPromptEvent``
  holds ``MCPToolDefinition`` objects; no WebSocket frame is dropped.
* A server that cannot start: ``send_message`` fails with the server's 500
  (``MCP Connection Failure``) and nothing is recorded.
* ``RemoteWorkspace.get_mcp_config()`` returns the MCP servers saved in the
  server's settings, and an agent built with it runs the same tools.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from typing import Any

from openhands.sdk import Agent, Conversation, Tool
from openhands.sdk.event import ActionEvent, ObservationEvent, SystemPromptEvent
from openhands.sdk.mcp import MCPToolAction, MCPToolDefinition, MCPToolObservation
from openhands.tools.terminal import TerminalTool

import harness as h

TOKEN = "calc-token-5e1d"

SERVER = '''
import os
from fastmcp import FastMCP
from fastmcp.exceptions import ToolError

server = FastMCP("interop-calc")


@server.tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool
def check_token() -> str:
    """Says whether the configured token arrived."""
    return "token ok" if os.environ.get("CALC_TOKEN") == %r else "token missing"


@server.tool
def refuse(reason: str = "no") -> str:
    """Always fails."""
    raise ToolError("refused: " + reason)


if __name__ == "__main__":
    server.run(show_banner=False)
''' % TOKEN


class Recorder:
    """A thread-safe ``callbacks=`` entry."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self.lock:
            self.events.append(event)

    def of(self, cls: type) -> list[Any]:
        with self.lock:
            return [e for e in self.events if isinstance(e, cls)]


def write_server() -> str:
    directory = tempfile.mkdtemp(prefix="mcp_interop_")
    path = os.path.join(directory, "calc_server.py")
    with open(path, "w") as f:
        f.write(SERVER)
    return path


def tool_names(body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools", [])]


def wait_settled(recorder: Recorder, want: int) -> None:
    h.wait_for(lambda: len(recorder.of(ObservationEvent)) >= want, 20, f"{want} observations via callbacks")


def tools_flow(checks: h.Checks, server: str, spy: h.WsSpy) -> None:
    with checks.check("Agent(mcp_config=...): MCP tools offered, called, observed by the client"):
        h.mock_reset(
            [
                {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]},
                {"tool_calls": [{"name": "check_token", "arguments": {"security_risk": "LOW"}}]},
                {"tool_calls": [{"name": "refuse", "arguments": {"reason": "test"}}]},
                {"tool_calls": [h.finish_call("2 + 3 = 5")]},
            ]
        )
        mcp_config = {
            "mcpServers": {
                "calc": {"command": sys.executable, "args": [server], "env": {"CALC_TOKEN": "${CALC_TOKEN}"}}
            }
        }
        agent = Agent(llm=h.client_llm(), tools=[Tool(name=TerminalTool.name)], mcp_config=mcp_config)
        recorder = Recorder()
        conv = Conversation(
            agent=agent,
            workspace=h.remote_workspace("workspace/mcp"),
            callbacks=[recorder],
            secrets={"CALC_TOKEN": TOKEN},
            visualizer=None,
        )
        cid = str(conv.id)
        conv.send_message("Add 2 and 3 with the calculator.")
        conv.run(timeout=90)
        h.expect(h.conversation_info(cid)["execution_status"] == "finished", "status")
        wait_settled(recorder, 4)

        calls = h.agent_calls()
        h.expect(len(calls) == 4, f"{len(calls)} agent turns, want 4")
        names = tool_names(calls[0]["body"])
        h.expect(
            names == ["terminal", "add", "check_token", "refuse", "finish", "think"],
            f"tools offered to the LLM: {names}",
        )
        add = next(t["function"] for t in calls[0]["body"]["tools"] if t["function"]["name"] == "add")
        h.expect(add["description"] == "Add two integers.", f"description {add['description']!r}")
        params = add["parameters"]
        h.expect(list(params["properties"]) == ["security_risk", "summary", "a", "b"], f"params {params}")
        h.expect(params["properties"]["a"] == {"type": "integer"}, f"a: {params['properties']['a']}")
        h.expect(params.get("required") == ["a", "b"], f"required {params.get('required')}")

        actions = [e for e in recorder.of(ActionEvent) if e.tool_name != "finish"]
        h.expect(len(actions) == 3, f"actions {[a.tool_name for a in actions]}")
        h.expect(all(isinstance(a.action, MCPToolAction) for a in actions), f"{[type(a.action) for a in actions]}")
        h.expect(actions[0].action.data == {"a": 2, "b": 3}, f"data {actions[0].action.data}")
        observations = [e for e in recorder.of(ObservationEvent) if e.tool_name != "finish"]
        h.expect(
            all(isinstance(o.observation, MCPToolObservation) for o in observations),
            f"{[type(o.observation) for o in observations]}",
        )
        added, token, refused = (o.observation for o in observations)
        h.expect(added.tool_name == "add" and not added.is_error, f"{added!r}")
        h.expect(added.text == "[Tool 'add' executed.]5", f"text {added.text!r}")
        h.expect(token.text.endswith("token ok"), f"the server did not get the secret: {token.text!r}")
        h.expect(refused.is_error and "refused: test" in refused.text, f"{refused!r}")

        # What the LLM was shown of the results.
        results = h.tool_results("openai", calls[1]["body"])
        shown = results.get(actions[0].tool_call_id, "")
        h.expect("[Tool 'add' executed.]" in shown and '"5"' in shown, f"LLM saw {shown}")
        errors = h.tool_results("openai", calls[3]["body"])
        h.expect("An error occurred during execution" in errors.get(actions[2].tool_call_id, ""), "error header")
        h.expect(TOKEN not in json.dumps([c["body"] for c in calls]), "the secret reached the LLM")

        # The client's own view of the conversation holds the definitions.
        prompts = [e for e in conv.state.events if isinstance(e, SystemPromptEvent)]
        h.expect(len(prompts) == 1, f"{len(prompts)} SystemPromptEvents")
        defs = [t for t in prompts[0].tools if isinstance(t, MCPToolDefinition)]
        h.expect([d.name for d in defs] == ["add", "check_token", "refuse"], f"definitions {[d.name for d in defs]}")
        h.expect(defs[0].mcp_tool.name == "add", "mcp_tool")
        info = h.conversation_info(cid)
        h.expect("mcp_config" not in info["agent"], "mcp_config shown in the conversation info")
        h.expect(TOKEN not in json.dumps(info), "the secret is in the conversation info")
        spy.assert_no_dropped_frames()
        conv.close()


def failure_flow(checks: h.Checks) -> None:
    with checks.check("a server that cannot start: send_message fails with 500, nothing recorded"):
        h.mock_reset([{"tool_calls": [h.finish_call("never")]}])
        agent = Agent(
            llm=h.client_llm(),
            tools=[Tool(name=TerminalTool.name)],
            mcp_config={"mcpServers": {"broken": {"command": "/nonexistent/mcp-server"}}},
        )
        conv = Conversation(agent=agent, workspace=h.remote_workspace("workspace/mcp"), visualizer=None)
        cid = str(conv.id)
        try:
            conv.send_message("Hello.")
        except Exception as e:  # noqa: BLE001 - whatever the client raises for a 500
            response = getattr(e, "response", None)
            status = getattr(response, "status_code", None)
            text = getattr(response, "text", str(e))
            h.expect(status == 500, f"status {status}: {e!r}")
            h.expect("MCP Connection Failure" in text, f"answer {text[:300]}")
        else:
            raise AssertionError("send_message succeeded")
        kinds = h.kinds(h.search_events(cid))
        h.expect("SystemPromptEvent" not in kinds and "MessageEvent" not in kinds, f"recorded {kinds}")
        h.expect(not h.agent_calls(), "the LLM was called")
        conv.close()


def settings_flow(checks: h.Checks, server: str) -> None:
    with checks.check("RemoteWorkspace.get_mcp_config() feeds an agent", routes=[("PATCH", "/api/settings")]):
        config = {"mcpServers": {"calc": {"command": sys.executable, "args": [server]}}}
        r = h.api("PATCH", "/api/settings", {"agent_settings_diff": {"mcp_config": config}})
        h.expect(r.status == 200, f"PATCH /api/settings answered {r.status}: {r.text()[:300]}")
        try:
            workspace = h.remote_workspace("workspace/mcp")
            got = workspace.get_mcp_config()
            calc = got.get("mcpServers", {}).get("calc", {})
            h.expect(calc.get("command") == sys.executable and calc.get("args") == [server], f"got {got}")
            h.mock_reset(
                [
                    {"tool_calls": [{"name": "add", "arguments": {"a": 40, "b": 2}}]},
                    {"tool_calls": [h.finish_call("42")]},
                ]
            )
            recorder = Recorder()
            agent = Agent(llm=h.client_llm(), tools=[Tool(name=TerminalTool.name)], mcp_config=got)
            conv = Conversation(agent=agent, workspace=workspace, callbacks=[recorder], visualizer=None)
            started = time.monotonic()
            conv.send_message("Add 40 and 2.")
            conv.run(timeout=90)
            h.expect(time.monotonic() - started < 60, "too slow")
            wait_settled(recorder, 2)
            obs = [e.observation for e in recorder.of(ObservationEvent) if e.tool_name == "add"]
            h.expect(len(obs) == 1 and obs[0].text.endswith("42"), f"observations {obs}")
            conv.close()
        finally:
            h.api("PATCH", "/api/settings", {"agent_settings_diff": {"mcp_config": {}}})


def body(checks: h.Checks) -> None:
    spy = h.WsSpy()
    server = write_server()
    tools_flow(checks, server, spy)
    failure_flow(checks)
    settings_flow(checks, server)


if __name__ == "__main__":
    h.run_scenario("mcp", body)
