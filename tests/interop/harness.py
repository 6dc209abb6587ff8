"""Shared helpers for the interop scenarios: where the server and the mock LLM
are, raw HTTP against both (standard library only), and a small check recorder.

A scenario is a script run by ``run.py`` in its own process, with these
environment variables set by ``scripts/interop.sh``:

* ``INTEROP_SERVER_URL``: ``http://127.0.0.1:<port>`` of our ``agent-server``;
* ``INTEROP_API_KEY``: the session API key it was started with;
* ``INTEROP_SERVER_CWD``: the server's working directory (relative paths resolve there);
* ``INTEROP_MOCK_URL``: ``http://127.0.0.1:<port>`` of ``mock_llm.py``;
* ``INTEROP_RESULT_FILE``: where the checks are written, one JSON object a line.

Scenarios drive the server only through the official client; the raw HTTP
here is for assertions (reading back over REST), for classifying a failure
(does the route exist on this build?) and for controlling the mock. Nothing
here may change server state behind the client's back except where a scenario
says so.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

SERVER = os.environ.get("INTEROP_SERVER_URL", "http://127.0.0.1:8000").rstrip("/")
API_KEY = os.environ.get("INTEROP_API_KEY", "")
SERVER_CWD = os.environ.get("INTEROP_SERVER_CWD", os.getcwd())
MOCK = os.environ.get("INTEROP_MOCK_URL", "http://127.0.0.1:9100").rstrip("/")
RESULT_FILE = os.environ.get("INTEROP_RESULT_FILE")

# The state-update event kind, ignored when comparing event lists.
CSUE = "ConversationStateUpdateEvent"


@dataclass
class Response:
    """A finished HTTP exchange."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Response:
    """One request; never raises for an HTTP status, only for transport errors."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        else:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


def api(method: str, path: str, body: Any = None, key: bool = True, **kw: Any) -> Response:
    """A request to our server, with the session key unless ``key=False``."""
    headers = dict(kw.pop("headers", None) or {})
    if key and API_KEY:
        headers["X-Session-API-Key"] = API_KEY
    return http(method, SERVER + path, body, headers=headers, **kw)


def route_exists(method: str, path: str) -> bool:
    """False when this server build has no handler for ``method path``.

    A missing route answers the framework's bare 404 ``{"detail":"Not Found"}``
    or a 405; a present one answers anything else (even a 4xx about the input).
    """
    r = api(method, path, {} if method in ("POST", "PUT", "PATCH") else None)
    if r.status == 405:
        return False
    if r.status == 404:
        try:
            return r.json() != {"detail": "Not Found"}
        except ValueError:
            return False
    return True


def search_events(conversation_id: str) -> list[dict[str, Any]]:
    """Every persisted event, read over REST the way the client pages."""
    items: list[dict[str, Any]] = []
    page: str | None = None
    for _ in range(1000):
        q = "?limit=100" + (f"&page_id={page}" if page else "")
        r = api("GET", f"/api/conversations/{conversation_id}/events/search{q}")
        expect(r.status == 200, f"events/search answered {r.status}: {r.text()[:300]}")
        body = r.json()
        items.extend(body["items"])
        page = body.get("next_page_id")
        if not page:
            return items
    raise AssertionError("events/search did not stop paging after 1000 pages")


def mock_reset(
    steps: list[dict[str, Any]] | None = None,
    fail: dict[str, Any] | None = None,
    plain: str | None = None,
) -> None:
    """Installs a fresh script in the mock LLM and clears its request log.

    ``plain`` is the text answered to requests without tools (titles, summaries).
    """
    r = http("POST", MOCK + "/_mock/reset", {"steps": steps or [], "fail": fail, "plain": plain})
    expect(r.status == 200, f"mock reset failed: {r.status}")


def mock_log() -> dict[str, Any]:
    """The mock LLM's request log since the last reset."""
    return http("GET", MOCK + "/_mock/requests").json()


def expect(cond: Any, message: str) -> None:
    """Raises AssertionError(message) when cond is false (kept under ``python -O``)."""
    if not cond:
        raise AssertionError(message)


def wait_for(pred: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Polls pred() until it returns a truthy value; bounded by timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def ids_without_state(events: list[Any]) -> list[str]:
    """Event ids in order, leaving out state updates (dicts or client Event objects)."""
    out = []
    for e in events:
        kind = e.get("kind") if isinstance(e, dict) else type(e).__name__
        if kind != CSUE:
            out.append(e["id"] if isinstance(e, dict) else e.id)
    return out


class Abort(Exception):
    """Stops a scenario after a check that later checks depend on has failed."""


class Checks:
    """Records named checks; each is pass, fail or missing-route."""

    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        self.results: list[dict[str, Any]] = []

    @contextmanager
    def check(
        self,
        name: str,
        routes: list[tuple[str, str]] | None = None,
        required: bool = False,
    ) -> Iterator[None]:
        """Runs the block as one check.

        ``routes`` are the (method, path) pairs the check depends on: when the
        check fails and one of them is absent from this build, the failure is
        reported as ``missing-route`` rather than as a server bug.
        ``required`` aborts the scenario when the check fails.
        """
        started = time.monotonic()
        print(f"--- check {self.scenario}/{name}", flush=True)
        try:
            yield
        except Abort:
            raise
        except BaseException as e:  # noqa: BLE001 - every failure is a result
            if isinstance(e, KeyboardInterrupt):
                raise
            missing = [f"{m} {p}" for m, p in (routes or []) if not safe_route_exists(m, p)]
            status = "missing-route" if missing else "fail"
            detail = f"{type(e).__name__}: {e}"
            if missing:
                detail = f"route(s) absent: {', '.join(missing)}; {detail}"
            traceback.print_exc()
            self.record(name, status, detail, started)
            if required:
                raise Abort(name) from e
        else:
            self.record(name, "pass", "", started)

    def record(self, name: str, status: str, detail: str, started: float) -> None:
        row = {
            "scenario": self.scenario,
            "check": name,
            "status": status,
            "detail": detail[:2000],
            "seconds": round(time.monotonic() - started, 2),
        }
        self.results.append(row)
        print(f"--- {status.upper()} {self.scenario}/{name} {detail[:500]}", flush=True)
        if RESULT_FILE:
            with open(RESULT_FILE, "a") as f:
                f.write(json.dumps(row) + "\n")

    def exit(self) -> None:
        """Exits the process: 0 when every check passed."""
        bad = [r for r in self.results if r["status"] != "pass"]
        sys.stdout.flush()
        os._exit(1 if bad or not self.results else 0)


def safe_route_exists(method: str, path: str) -> bool:
    try:
        return route_exists(method, path)
    except Exception:  # noqa: BLE001 - a dead server is not a missing route
        return True


def run_scenario(name: str, body: Any) -> None:
    """Runs ``body(checks)`` and exits with the overall result.

    ``os._exit`` is used so that lingering client threads (the WebSocket
    reader, ``__del__`` closes) cannot keep the process alive or print after
    the verdict.
    """
    checks = Checks(name)
    try:
        body(checks)
    except Abort as e:
        print(f"--- aborting {name}: required check {e} failed", flush=True)
    except BaseException as e:  # noqa: BLE001 - report, then exit non-zero
        traceback.print_exc()
        checks.record("scenario", "fail", f"unexpected {type(e).__name__}: {e}", time.monotonic())
    checks.exit()


class WsSpy:
    """Watches what the official client receives over its own WebSocket.

    Wraps the callback the client hands to its WebSocket reader, so every
    event that arrived over the socket (and only those) is recorded per
    conversation, and catches the client's ``ws_event_processing_error`` log
    line, which is how it reports a frame it could not validate and dropped.
    The client's behaviour is unchanged; this only observes.
    """

    def __init__(self) -> None:
        import logging

        from openhands.sdk.conversation.impl import remote_conversation as rc

        self.events: dict[str, list[Any]] = {}
        self.errors: list[str] = []
        spy = self
        original_init = rc.WebSocketCallbackClient.__init__

        def init(client: Any, host: str, conversation_id: str, callback: Any, api_key: Any = None) -> None:
            seen = spy.events.setdefault(str(conversation_id), [])

            def recording(event: Any) -> None:
                seen.append(event)
                callback(event)

            original_init(client, host, conversation_id, recording, api_key)

        rc.WebSocketCallbackClient.__init__ = init  # type: ignore[method-assign]

        class Catch(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if "ws_event_processing_error" in record.getMessage():
                    text = record.getMessage()
                    if record.exc_info and record.exc_info[1] is not None:
                        text += f": {record.exc_info[1]}"
                    spy.errors.append(text[:1500])

        logging.getLogger(rc.__name__).addHandler(Catch(level=logging.ERROR))

    def received(self, conversation_id: Any) -> list[Any]:
        """Events the client got over the socket for this conversation, in arrival order."""
        return list(self.events.get(str(conversation_id), []))

    def assert_no_dropped_frames(self) -> None:
        expect(
            not self.errors, f"the client dropped WebSocket frames it could not validate: {self.errors[:3]}"
        )


def client_llm(model: str = "openai/mock-model", **kw: Any) -> Any:
    """An SDK ``LLM`` pointed at the mock."""
    from openhands.sdk import LLM
    from pydantic import SecretStr

    return LLM(model=model, api_key=SecretStr("sk-interop-mock"), base_url=MOCK, **kw)


# -- helpers for the agent-run scenarios --------------------------------------------


def agent_calls() -> list[dict[str, Any]]:
    """The mock's recorded agent turns (requests that offered tools)."""
    return [r for r in mock_log()["requests"] if r["body"].get("tools")]


def conversation_info(conversation_id: Any) -> dict[str, Any]:
    """``GET /api/conversations/{id}`` read back over REST."""
    r = api("GET", f"/api/conversations/{conversation_id}")
    expect(r.status == 200, f"GET conversation answered {r.status}: {r.text()[:300]}")
    return r.json()


def wait_status(conversation_id: Any, want: str | set[str], timeout: float) -> str:
    """Polls the REST status until it is ``want`` (one or a set); returns it."""
    wanted = {want} if isinstance(want, str) else set(want)
    seen: list[str] = []

    def reached() -> str | None:
        status = conversation_info(conversation_id)["execution_status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        return status if status in wanted else None

    try:
        return wait_for(reached, timeout, f"execution_status in {sorted(wanted)}", interval=0.1)
    except AssertionError as e:
        raise AssertionError(f"{e}; statuses seen {seen}") from None


def kinds(events: list[Any]) -> list[str]:
    """Event kinds (dicts from REST or client Event objects), state updates left out."""
    out = []
    for e in events:
        kind = e.get("kind") if isinstance(e, dict) else type(e).__name__
        if kind != CSUE:
            out.append(kind)
    return out


def of_kind(events: list[dict[str, Any]], kind: str, tool: str | None = None) -> list[dict[str, Any]]:
    """REST events of one kind, optionally for one tool."""
    return [e for e in events if e["kind"] == kind and (tool is None or e.get("tool_name") == tool)]


def terminal_call(command: str, risk: str = "LOW", **extra: Any) -> dict[str, Any]:
    """A scripted ``terminal`` tool call."""
    return {"name": "terminal", "arguments": {"command": command, "security_risk": risk, **extra}}


def finish_call(message: str = "Done.") -> dict[str, Any]:
    """A scripted ``finish`` tool call."""
    return {"name": "finish", "arguments": {"message": message}}


def default_agent(**llm_kw: Any) -> Any:
    """The client's default agent (CLI mode: no browser) on the mock LLM."""
    from openhands.tools.preset.default import get_default_agent

    return get_default_agent(llm=client_llm(**llm_kw), cli_mode=True)


def remote_workspace(working_dir: str) -> Any:
    """A ``RemoteWorkspace`` on our server; the directory is created on this machine."""
    from openhands.sdk import Workspace

    os.makedirs(os.path.join(SERVER_CWD, working_dir), exist_ok=True)
    return Workspace(host=SERVER, api_key=API_KEY, working_dir=working_dir)


def tool_results(api_kind: str, body: dict[str, Any]) -> dict[str, str]:
    """tool call id -> result text (JSON-encoded content), from one LLM request's history."""
    out: dict[str, str] = {}
    for m in body.get("messages", []):
        if api_kind == "openai" and m.get("role") == "tool":
            out[m["tool_call_id"]] = json.dumps(m.get("content"))
        if api_kind == "anthropic" and isinstance(m.get("content"), list):
            for block in m["content"]:
                if block.get("type") == "tool_result":
                    out[block["tool_use_id"]] = json.dumps(block.get("content"))
    return out


@contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Fails the enclosing check when the block took longer than ``seconds``."""
    started = time.monotonic()
    yield
    took = time.monotonic() - started
    expect(took <= seconds, f"{what} took {took:.1f}s, limit {seconds}s")


def fresh_state(conv: Any) -> Any:
    """``conv.state`` after ``refresh_from_server()``.

    The 1.24.0 client validates ``confirmation_policy``, ``security_analyzer``
    and ``agent`` from its cached state dict with a discriminated-union
    validator that pops ``"kind"`` from that very dict, so a second read of
    the same property fails with "Unknown kind ''" (against any server).
    Refreshing replaces the dict; read each such property once per refresh.
    """
    conv.state.refresh_from_server()
    return conv.state
