"""Sub-agent tools through the official client; the mock LLM answers the parent's and
the sub-agents' turns in the order the server asks.

* ``Tool(name=TaskToolSet.name)`` with a sub-agent type the client registered as an
  ``AgentDefinition`` (forwarded in ``agent_definitions``): the sub-agent gets its own
  tools and prompt, the client's callbacks get a ``TaskAction`` and a
  ``TaskObservation`` it validated itself, the usage counts under ``task:<id>``, and
  only the parent's events are recorded.
* ``Tool(name="delegate")`` (the reference's until 1.22, kept by this server): ``spawn``
  two sub-agents, ``delegate`` a task to each; one ``DelegateObservation`` brings the
  answers back.
* ``interrupt()`` while a sub-agent waits for its LLM: it returns at once and the run
  ends ``paused`` with the task's call answered.
"""

from __future__ import annotations

import time
from typing import Any

from openhands.sdk import Agent, Conversation, Tool, agent_definition_to_factory, register_agent
from openhands.sdk.subagent import AgentDefinition
from openhands.tools.delegate import DelegateObservation  # noqa: F401 (registers the kinds)
from openhands.tools.task import TaskToolSet

import harness as h


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def of_type(events: list[Any], name: str) -> list[Any]:
    out = []
    for e in events:
        inner = getattr(e, "action", None) or getattr(e, "observation", None)
        if inner is not None and type(inner).__name__ == name:
            out.append(inner)
    return out


def offered(body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in body["tools"]]


def run(agent: Any, working_dir: str, text: str) -> tuple[Any, str, list[Any]]:
    """Runs one message to the end; the caller closes the conversation."""
    got: list[Any] = []
    conv = Conversation(
        agent=agent, workspace=h.remote_workspace(working_dir), callbacks=[got.append], visualizer=None
    )
    cid = str(conv.id)
    conv.send_message(text)
    conv.run(timeout=60)
    status = h.conversation_info(cid)["execution_status"]
    h.expect(status == "finished", f"status {status}")
    return conv, cid, got


def body(checks: h.Checks) -> None:
    with checks.check("TaskToolSet: a registered AgentDefinition does the task"):
        grammar = AgentDefinition(
            name="grammar-checker",
            description="Checks documents for grammatical errors.",
            tools=["file_editor"],
            system_prompt="You are a grammar expert.",
        )
        register_agent(
            name=grammar.name, factory_func=agent_definition_to_factory(grammar), description=grammar
        )
        h.mock_reset(
            [
                call(
                    "task", description="grammar", prompt="Check README.md", subagent_type="grammar-checker"
                ),
                {"text": "No errors found."},
                {"tool_calls": [h.finish_call("checked")]},
            ]
        )
        agent = Agent(llm=h.client_llm(), tools=[Tool(name=TaskToolSet.name)])
        conv, cid, got = run(agent, "workspace/subagents-task", "Check the grammar.")
        actions = of_type(got, "TaskAction")
        h.expect(len(actions) == 1 and actions[0].subagent_type == "grammar-checker", f"actions {actions}")
        obs = of_type(got, "TaskObservation")
        h.expect(len(obs) == 1, f"{len(obs)} TaskObservations")
        o = obs[0]
        h.expect(o.task_id == "task_00000001" and o.status == "completed", f"observation {o}")
        h.expect(o.text == "No errors found." and not o.is_error, f"text {o.text!r}")
        calls = h.agent_calls()
        parent = offered(calls[0]["body"])
        h.expect(parent == ["task", "finish", "think"], f"parent {parent}")
        desc = calls[0]["body"]["tools"][0]["function"]["description"]
        h.expect("**grammar-checker**: Checks documents" in desc, "the type is not listed")
        sub = calls[1]["body"]
        h.expect(offered(sub) == ["file_editor", "finish", "think"], f"sub-agent {offered(sub)}")
        system = sub["messages"][0]["content"]
        system = system if isinstance(system, str) else "".join(p.get("text", "") for p in system)
        h.expect(system.endswith("You are a grammar expert."), "no type prompt")
        usage = h.conversation_info(cid)["stats"]["usage_to_metrics"]
        h.expect("task:task_00000001" in usage, f"usage ids {list(usage)}")
        kinds = [e["kind"] for e in h.search_events(cid) if e["kind"] in ("ActionEvent", "ObservationEvent")]
        h.expect(kinds == ["ActionEvent", "ObservationEvent"] * 2, f"recorded {kinds}")
        conv.close()

    with checks.check("delegate: spawn two sub-agents, delegate a task to each"):
        h.mock_reset(
            [
                call("delegate", command="spawn", ids=["a", "b"]),
                call("delegate", command="delegate", tasks={"a": "first", "b": "second"}),
                {"text": "sub answer"},
                {"text": "sub answer"},
                {"tool_calls": [h.finish_call("delegated")]},
            ]
        )
        agent = Agent(llm=h.client_llm(), tools=[Tool(name="delegate")])
        conv, cid, got = run(agent, "workspace/subagents-delegate", "Split the work.")
        obs = of_type(got, "DelegateObservation")
        h.expect(len(obs) == 2, f"{len(obs)} DelegateObservations")
        h.expect(obs[0].text == "Successfully spawned 2 sub-agents: a (default), b (default)", obs[0].text)
        want = "Completed delegation of 2 tasks\n\nResults:\n1. Agent a: sub answer\n2. Agent b: sub answer"
        h.expect(obs[1].text == want and obs[1].command == "delegate", f"{obs[1].text!r}")
        usage = h.conversation_info(cid)["stats"]["usage_to_metrics"]
        h.expect("delegate:a" in usage and "delegate:b" in usage, f"usage ids {list(usage)}")
        conv.close()

    with checks.check("interrupt() stops a sub-agent at work"):
        h.mock_reset([call("task", prompt="think slowly"), {"delay": 30, "text": "too late"}])
        agent = Agent(llm=h.client_llm(), tools=[Tool(name=TaskToolSet.name)])
        ws = h.remote_workspace("workspace/subagents-stop")
        conv = Conversation(agent=agent, workspace=ws, visualizer=None)
        cid = str(conv.id)
        conv.send_message("Go.")
        conv.run(blocking=False)
        h.wait_for(lambda: len(h.agent_calls()) >= 2, 20, "the sub-agent's LLM call")
        started = time.monotonic()
        conv.interrupt()
        took = time.monotonic() - started
        h.expect(took < 5, f"interrupt() took {took:.1f}s")
        h.wait_status(cid, "paused", 10)
        errors = h.of_kind(h.search_events(cid), "AgentErrorEvent")
        h.expect(len(errors) == 1 and errors[0]["tool_name"] == "task", f"errors {errors}")
        conv.close()


if __name__ == "__main__":
    h.run_scenario("subagents", body)
