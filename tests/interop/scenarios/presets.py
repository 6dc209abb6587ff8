"""The openhands-tools presets' agents through the official client.

* ``get_gpt5_agent(llm, cli_mode=True)``: the mock calls ``apply_patch`` to add a
  file and update another, then sends a patch that does not fit; the files on disk
  are right, and the client's callbacks get ``ApplyPatchAction``s and
  ``ApplyPatchObservation``s (with a parsed ``Commit``) it validated itself.
* ``get_gemini_agent(llm, cli_mode=True)``: ``write_file``, ``edit``, ``read_file``
  and ``list_directory`` with relative paths; the file is right and the client gets
  each tool's own Action/Observation classes (``FileEntry`` rows with datetimes).
* ``get_planning_agent(llm)``: the plan file exists with its headings once the first
  message is in; ``glob``, ``grep``, a refused edit of a source file and an edit of
  the plan; the system prompt carries the client's ``plan_structure``.
* an agent naming a tool nobody registered: ``send_message`` fails with the
  reference's 500, and nothing is recorded.
"""

from __future__ import annotations

import os
from typing import Any

from openhands.sdk import Agent, Conversation, Tool

import harness as h


def collect() -> tuple[list[Any], Any]:
    got: list[Any] = []
    return got, got.append


def of_type(events: list[Any], name: str) -> list[Any]:
    """The client-side events whose action/observation class is ``name``."""
    out = []
    for e in events:
        inner = getattr(e, "action", None) or getattr(e, "observation", None)
        if inner is not None and type(inner).__name__ == name:
            out.append(inner)
    return out


def offered_tools(call: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in call["body"]["tools"]]


def run(agent: Any, working_dir: str, text: str) -> tuple[list[dict[str, Any]], list[Any]]:
    """Runs one message to the end; returns the REST events and the client's events."""
    got, callback = collect()
    conv = Conversation(
        agent=agent, workspace=h.remote_workspace(working_dir), callbacks=[callback], visualizer=None
    )
    cid = str(conv.id)
    conv.send_message(text)
    conv.run(timeout=60)
    status = h.conversation_info(cid)["execution_status"]
    h.expect(status == "finished", f"status {status}")
    rest = h.search_events(cid)
    conv.close()
    return rest, got


def call(name: str, **arguments: Any) -> dict[str, Any]:
    """One scripted step: a single call of tool ``name``."""
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def body(checks: h.Checks) -> None:
    with checks.check("get_gpt5_agent: apply_patch adds and updates files"):
        from openhands.tools.preset.gpt5 import get_gpt5_agent

        wd = "workspace/presets-gpt5"
        root = os.path.join(h.SERVER_CWD, wd)
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, "app.py"), "w") as f:
            f.write("def main():\n    return 1\n")
        patch = (
            "*** Begin Patch\n*** Add File: docs/NOTES.md\n+# Notes\n+first\n"
            "*** Update File: app.py\n@@ def main():\n-    return 1\n+    return 2\n*** End Patch"
        )
        bad = "*** Begin Patch\n*** Update File: app.py\n@@\n-    return 7\n+    return 8\n*** End Patch"
        h.mock_reset(
            [
                call("apply_patch", patch=patch, security_risk="LOW"),
                call("apply_patch", patch=bad),
                {"tool_calls": [h.finish_call("patched")]},
            ]
        )
        agent = get_gpt5_agent(h.client_llm(), cli_mode=True)
        _, got = run(agent, wd, "Patch the app.")
        with open(os.path.join(root, "app.py")) as f:
            h.expect(f.read() == "def main():\n    return 2\n", "app.py not updated")
        with open(os.path.join(root, "docs/NOTES.md")) as f:
            h.expect(f.read() == "# Notes\nfirst", "NOTES.md not written")
        actions = of_type(got, "ApplyPatchAction")
        h.expect(len(actions) == 2 and actions[0].patch == patch, f"actions {actions}")
        obs = of_type(got, "ApplyPatchObservation")
        h.expect(len(obs) == 2, f"{len(obs)} ApplyPatchObservations")
        h.expect(not obs[0].is_error and obs[0].message == "Done!", f"first {obs[0]}")
        commit = obs[0].commit
        h.expect(commit is not None and commit.changes["docs/NOTES.md"].type == "add", f"commit {commit}")
        h.expect(obs[1].is_error and obs[1].text.startswith("Invalid Context"), f"second {obs[1].text!r}")
        calls = h.agent_calls()
        h.expect(
            offered_tools(calls[0]) == ["terminal", "apply_patch", "task_tracker", "finish", "think"],
            f"offered {offered_tools(calls[0])}",
        )

    with checks.check("get_gemini_agent: write_file, edit, read_file, list_directory"):
        from openhands.tools.preset.gemini import get_gemini_agent

        wd = "workspace/presets-gemini"
        root = os.path.join(h.SERVER_CWD, wd)
        h.mock_reset(
            [
                call("write_file", file_path="src/lib.py", content="X = 1\nY = 2\n"),
                call("edit", file_path="src/lib.py", old_string="Y = 2", new_string="Y = 3"),
                call("read_file", file_path="src/lib.py"),
                call("list_directory", dir_path="src", recursive=True),
                {"tool_calls": [h.finish_call("files done")]},
            ]
        )
        agent = get_gemini_agent(h.client_llm(), cli_mode=True)
        _, got = run(agent, wd, "Work on the files.")
        with open(os.path.join(root, "src/lib.py")) as f:
            h.expect(f.read() == "X = 1\nY = 3\n", "lib.py not edited")
        write = of_type(got, "WriteFileObservation")
        h.expect(write and write[0].is_new_file, f"write {write}")
        edit = of_type(got, "EditObservation")
        h.expect(edit and edit[0].replacements_made == 1, f"edit {edit}")
        read = of_type(got, "ReadFileObservation")
        h.expect(read and read[0].file_content == "     1  X = 1\n     2  Y = 3\n", f"read {read}")
        listing = of_type(got, "ListDirectoryObservation")
        entries = listing[0].entries if listing else []
        h.expect(entries and entries[0].name == "lib.py", f"list {listing}")
        h.expect(hasattr(listing[0].entries[0].modified_time, "year"), "modified_time is not a datetime")
        h.expect(of_type(got, "ReadFileAction"), "no ReadFileAction reached the client")
        offered = offered_tools(h.agent_calls()[0])
        gemini = ["terminal", "read_file", "write_file", "edit", "list_directory", "task_tracker"]
        h.expect(offered == [*gemini, "finish", "think"], f"offered {offered}")

    with checks.check("get_planning_agent: glob, grep and the plan file"):
        from openhands.tools.preset.planning import get_planning_agent

        wd = "workspace/presets-planning"
        root = os.path.join(h.SERVER_CWD, wd)
        os.makedirs(os.path.join(root, "src"), exist_ok=True)
        with open(os.path.join(root, "src/main.py"), "w") as f:
            f.write("print('TODO')\n")
        plan = os.path.realpath(os.path.join(root, ".agents_tmp/PLAN.md"))
        main = os.path.realpath(os.path.join(root, "src/main.py"))
        h.mock_reset(
            [
                call("glob", pattern="**/*.py"),
                call("grep", pattern="todo", include="*.py"),
                call("planning_file_editor", command="str_replace", path=main, old_str="TODO", new_str="x"),
                call(
                    "planning_file_editor",
                    command="str_replace",
                    path=plan,
                    old_str="# 1. OBJECTIVE\n",
                    new_str="# 1. OBJECTIVE\nRemove the TODO.\n",
                ),
                {"tool_calls": [h.finish_call("planned")]},
            ]
        )
        agent = get_planning_agent(h.client_llm())
        rest, got = run(agent, wd, "Plan removing the TODO.")
        with open(plan) as f:
            text = f.read()
        h.expect(text.startswith("# 1. OBJECTIVE\nRemove the TODO.\n"), f"plan {text!r}")
        h.expect("# 5. TESTING AND VALIDATION" in text, f"plan headings {text!r}")
        with open(main) as f:
            h.expect("TODO" in f.read(), "the planning agent changed a source file")
        globbed = of_type(got, "GlobObservation")
        h.expect(globbed and globbed[0].files == [main], f"glob {globbed}")
        grepped = of_type(got, "GrepObservation")
        h.expect(grepped and grepped[0].matches == [main], f"grep {grepped}")
        edits = of_type(got, "PlanningFileEditorObservation")
        h.expect(len(edits) == 2 and edits[0].is_error and not edits[1].is_error, f"edits {edits}")
        h.expect(of_type(got, "PlanningFileEditorAction"), "no PlanningFileEditorAction")
        system = h.of_kind(rest, "SystemPromptEvent")[0]
        prompt = system["system_prompt"]["text"]
        h.expect("1. OBJECTIVE" in prompt and "<PLAN_STRUCTURE>" in prompt, "no plan_structure in the prompt")
        h.expect(
            offered_tools(h.agent_calls()[0]) == ["glob", "grep", "planning_file_editor", "finish", "think"],
            "offered tools",
        )

    with checks.check("an unregistered tool: send_message fails with the reference's 500"):
        h.mock_reset([{"tool_calls": [h.finish_call("never")]}])
        agent = Agent(llm=h.client_llm(), tools=[Tool(name="terminal"), Tool(name="no_such_tool")])
        ws = h.remote_workspace("workspace/presets-bad")
        conv = Conversation(agent=agent, workspace=ws, visualizer=None)
        cid = str(conv.id)
        try:
            conv.send_message("Hello.")
        except Exception as e:  # the client raises httpx's HTTPStatusError
            status = getattr(getattr(e, "response", None), "status_code", None)
            h.expect(status == 500, f"status {status}: {e}")
            detail = e.response.json()  # type: ignore[attr-defined]
            want = "\"ToolDefinition 'no_such_tool' is not registered\""
            h.expect(detail == {"detail": "Internal Server Error", "exception": want}, f"body {detail}")
        else:
            raise AssertionError("send_message succeeded")
        kinds = h.kinds(h.search_events(cid))
        h.expect(kinds == [], f"events recorded: {kinds}")
        h.expect(not h.agent_calls(), "the LLM was asked")
        conv.close()


if __name__ == "__main__":
    h.run_scenario("presets", body)
