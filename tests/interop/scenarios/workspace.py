"""Workspace operations through the official ``RemoteWorkspace`` (issue 4).

Commands (exit code, split stdout/stderr, relative ``cwd``, timeout), a
binary-safe upload/download round trip, git changes and diff in a repository
with an origin, the secrets listing after ``PUT /api/settings/secrets``, and
``get_llm()`` as ``examples/02_remote_agent_server/13_workspace_get_llm.py``
uses it (the settings' LLM, an override, a named profile, a run on it).
Every check names the routes it depends on, so that a failure caused by a
route this build does not have yet is reported as ``missing-route``.

The server runs on this machine, so files are prepared and inspected directly
under ``INTEROP_SERVER_CWD``; everything the checks assert on goes through the
client.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from openhands.sdk import Workspace

import harness as h

BASH = [("POST", "/api/bash/start_bash_command"), ("GET", "/api/bash/bash_events/search")]
UPLOAD = [("POST", "/api/file/upload?path=/tmp/x")]
DOWNLOAD = [("GET", "/api/file/download?path=/")]
GIT = [("GET", "/api/git/changes?path=/"), ("GET", "/api/git/diff?path=/")]
SECRETS = [("PUT", "/api/settings/secrets"), ("GET", "/api/settings/secrets")]
SETTINGS = [("GET", "/api/settings"), ("PATCH", "/api/settings"), ("GET", "/api/profiles/x")]


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=interop", "-c", "user.email=interop@example.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        timeout=30,
    )


def body(checks: h.Checks) -> None:
    root = Path(os.path.realpath(h.SERVER_CWD))
    ws = Workspace(host=h.SERVER, api_key=h.API_KEY, working_dir="workspace/wsproj")
    (root / "workspace" / "wsproj").mkdir(parents=True, exist_ok=True)

    with checks.check("server_info"):
        info = ws.get_server_info()
        for key in ("version", "uptime", "usable_tools"):
            h.expect(key in info, f"/server_info lacks {key}: {sorted(info)}")

    with checks.check("execute_command: exit code, stdout, stderr", routes=BASH):
        r = ws.execute_command("echo hi; echo err >&2; exit 3")
        h.expect(r.exit_code == 3, f"exit_code {r.exit_code}, stderr {r.stderr!r}")
        h.expect(r.stdout == "hi\n", f"stdout {r.stdout!r}")
        h.expect(r.stderr == "err\n", f"stderr {r.stderr!r}")
        h.expect(not r.timeout_occurred, "timeout_occurred")

    with checks.check("execute_command: relative and default cwd", routes=BASH):
        r = ws.execute_command("pwd", cwd="workspace/wsproj")
        h.expect(r.exit_code == 0, f"exit_code {r.exit_code}, stderr {r.stderr!r}")
        h.expect(r.stdout.strip() == str(root / "workspace" / "wsproj"), f"relative cwd gave {r.stdout!r}")
        r = ws.execute_command("pwd")
        h.expect(r.stdout.strip() == str(root), f"no cwd gave {r.stdout!r}, want the server's cwd {root}")

    with checks.check("execute_command: timeout kills the command", routes=BASH):
        marker = root / "workspace" / "wsproj" / "late-marker"
        marker.unlink(missing_ok=True)
        started = time.monotonic()
        r = ws.execute_command(f"echo early; sleep 3; touch {marker}; echo late", timeout=1.0)
        took = time.monotonic() - started
        h.expect("Remote execution error" not in r.stderr, f"the command did not start: {r.stderr!r}")
        h.expect(r.exit_code == -1, f"exit_code {r.exit_code}")
        h.expect("late" not in r.stdout, f"stdout {r.stdout!r}")
        h.expect(took < 8, f"execute_command with timeout=1 took {took:.1f}s")
        time.sleep(max(0.0, 4.5 - took))
        h.expect(not marker.exists(), "the timed-out command kept running")

    with checks.check("file_upload/file_download: 200 KB binary round trip", routes=UPLOAD + DOWNLOAD):
        blob = os.urandom(200 * 1024)
        remote = root / "workspace" / "files" / "nested" / "blob.bin"
        with tempfile.TemporaryDirectory() as tmp:
            src, back = Path(tmp, "blob.bin"), Path(tmp, "out", "blob.bin")
            src.write_bytes(blob)
            up = ws.file_upload(src, remote)
            h.expect(up.success, f"upload failed: {up.error}")
            h.expect(remote.read_bytes() == blob, "the uploaded file differs from the source")
            down = ws.file_download(remote, back)
            h.expect(down.success, f"download failed: {down.error}")
            h.expect(down.file_size == len(blob), f"file_size {down.file_size}")
            h.expect(back.read_bytes() == blob, "the downloaded bytes differ")

    with checks.check("file_upload/file_download: errors", routes=UPLOAD + DOWNLOAD):
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp, "a.txt")
            src.write_text("x")
            up = ws.file_upload(src, "relative/a.txt")
            h.expect(not up.success and "400" in (up.error or ""), f"upload to a relative path: {up}")
            down = ws.file_download(root / "workspace" / "files" / "missing.bin", Path(tmp, "m"))
            h.expect(not down.success, "a download of a missing file succeeded")
            r = h.api("GET", f"/api/file/download?path={root}/workspace/files/missing.bin")
            h.expect(
                r.status == 404 and r.json() == {"detail": "File not found"}, f"{r.status} {r.text()[:200]}"
            )

    with checks.check("git_changes/git_diff in a repository", routes=GIT):
        repo = root / "workspace" / "gitproj"
        origin = root / "workspace" / "gitorigin.git"
        repo.mkdir(parents=True, exist_ok=True)
        git(root / "workspace", "init", "--quiet", "--bare", str(origin))
        git(repo, "init", "--quiet")
        (repo / "README.md").write_text("v1\n")
        (repo / "old.txt").write_text("old\n")
        git(repo, "add", ".")
        git(repo, "commit", "--quiet", "-m", "initial")
        git(repo, "remote", "add", "origin", str(origin))
        git(repo, "push", "--quiet", "-u", "origin", "HEAD")
        (repo / "README.md").write_text("v2\n")
        (repo / "old.txt").unlink()
        (repo / "new.txt").write_text("new\n")
        gws = Workspace(host=h.SERVER, api_key=h.API_KEY, working_dir="workspace/gitproj")
        changes = {(c.status.value, str(c.path)) for c in gws.git_changes(".")}
        want = {("UPDATED", "README.md"), ("DELETED", "old.txt"), ("ADDED", "new.txt")}
        h.expect(changes == want, f"git_changes {sorted(changes)}, want {sorted(want)}")
        diff = gws.git_diff("README.md")
        h.expect((diff.original, diff.modified) == ("v1", "v2"), f"git_diff {diff}")
        h.expect(ws.git_changes(".") == [], "a directory outside any repository has changes")

    with checks.check("get_secrets after PUT /api/settings/secrets", routes=SECRETS):
        r = h.api(
            "PUT",
            "/api/settings/secrets",
            {"name": "INTEROP_TOKEN", "value": "s3cret-v4lue", "description": "interop"},
        )
        h.expect(r.status == 200, f"PUT answered {r.status}: {r.text()[:200]}")
        secrets = ws.get_secrets()
        h.expect("INTEROP_TOKEN" in secrets, f"secrets {sorted(secrets)}")
        ref = secrets["INTEROP_TOKEN"]
        h.expect(ref.url == f"{h.SERVER}/api/settings/secrets/INTEROP_TOKEN", f"lookup url {ref.url}")
        h.expect(ref.description == "interop", f"description {ref.description!r}")
        h.expect(ref.get_value() == "s3cret-v4lue", "the LookupSecret did not resolve to the stored value")
        h.expect(ws.get_secrets(names=["NOT_THERE"]) == {}, "name filter")

    with checks.check("get_llm: the settings' LLM drives a conversation", routes=SETTINGS):
        get_llm_flow(ws)


def get_llm_flow(ws: Workspace) -> None:
    """The example's flow: the LLM saved with PATCH /api/settings comes back from
    ``get_llm()`` with its key, overrides apply, a profile loads by name, and an
    agent built on it runs; the secrets' LookupSecrets carry the session key."""
    from openhands.sdk import Conversation
    from openhands.tools.preset.default import get_default_agent

    key = "sk-interop-get-llm"
    llm_config = {"model": "openai/mock-model", "api_key": key, "base_url": h.MOCK}
    if h.API_KEY:
        r = h.api("GET", "/api/settings", key=False)
        h.expect(r.status == 401, f"GET /api/settings without the session key answered {r.status}")
    r = h.api("PATCH", "/api/settings", {"agent_settings_diff": {"llm": llm_config}})
    h.expect(r.status == 200, f"PATCH /api/settings answered {r.status}: {r.text()[:300]}")
    saved = r.json()
    stored_llm = saved["agent_settings"]["llm"]
    h.expect(stored_llm["model"] == "openai/mock-model", f"model {stored_llm}")
    h.expect(saved["llm_api_key_is_set"] is True, "llm_api_key_is_set")
    h.expect(key not in r.text(), "the PATCH answer shows the API key")

    llm = ws.get_llm()
    h.expect(llm.model == "openai/mock-model", f"get_llm() model {llm.model}")
    h.expect(llm.base_url == h.MOCK, f"get_llm() base_url {llm.base_url}")
    h.expect(llm.api_key is not None and llm.api_key.get_secret_value() == key, "get_llm() lost the API key")
    tuned = ws.get_llm(temperature=0.25)
    h.expect(tuned.temperature == 0.25, f"override {tuned.temperature}")
    h.expect(tuned.api_key.get_secret_value() == key, "the override lost the API key")

    profile = {"model": "openai/mock-fast", "api_key": "sk-interop-profile", "base_url": h.MOCK}
    r = h.api("POST", "/api/profiles/interop-fast", {"llm": profile})
    h.expect(r.status == 201, f"POST /api/profiles answered {r.status}: {r.text()[:300]}")
    fast = ws.get_llm(profile_name="interop-fast")
    h.expect(fast.model == "openai/mock-fast" and fast.usage_id == "profile:interop-fast", f"profile {fast}")
    h.expect(fast.api_key.get_secret_value() == "sk-interop-profile", "the profile lost its API key")
    try:
        ws.get_llm(profile_name="no-such-profile")
        h.expect(False, "a missing profile loaded")
    except FileNotFoundError:
        pass

    h.mock_reset([{"text": "4", "tool_calls": []}])
    conv = Conversation(agent=get_default_agent(llm=llm, cli_mode=True), workspace=ws, visualizer=None)
    try:
        conv.send_message("What is 2 + 2? Just respond with the number.")
        conv.run()
        h.expect(conv.state.execution_status.value == "finished", f"status {conv.state.execution_status}")
    finally:
        conv.close()
    calls = h.agent_calls()
    h.expect(len(calls) == 1, f"{len(calls)} agent turns")
    auth = calls[0]["headers"].get("authorization")
    h.expect(auth == f"Bearer {key}", "the LLM did not get the settings' key")

    secret = {"name": "GET_LLM_SECRET", "value": "v-123", "description": "demo"}
    r = h.api("PUT", "/api/settings/secrets", secret)
    h.expect(r.status == 200, f"PUT secret answered {r.status}")
    refs = ws.get_secrets(names=["GET_LLM_SECRET"])
    if h.API_KEY:
        headers = refs["GET_LLM_SECRET"].headers or {}
        h.expect(headers.get("X-Session-API-Key") == h.API_KEY, f"LookupSecret headers {sorted(headers)}")
    h.expect(refs["GET_LLM_SECRET"].get_value() == "v-123", "the LookupSecret did not resolve")
    h.api("DELETE", "/api/settings/secrets/GET_LLM_SECRET")
    h.api("DELETE", "/api/profiles/interop-fast")


if __name__ == "__main__":
    h.run_scenario("workspace", body)
