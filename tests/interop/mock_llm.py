#!/usr/bin/env python3
"""Scripted LLM endpoint for the interop tests (standard library only).

Speaks the two wire formats the agent server uses, on loopback only:

* OpenAI Chat Completions: ``POST /chat/completions`` and ``POST /v1/chat/completions``;
* Anthropic Messages: ``POST /v1/messages``.

Both answer as JSON, or as a server-sent-event stream when the request body has
``"stream": true``. Agent turns (requests that carry ``tools``) consume the next
step of the current script; a request without tools (title generation,
``ask_agent``) gets a short text answer and leaves the script alone. When the
script is used up the mock answers with a ``finish`` call, so a runaway loop
ends, and counts the overrun so that a test can notice it.

Control routes, used by the scenarios between runs (never by the server):

* ``POST /_mock/reset``  body ``{"steps": [...], "fail": {"status": 401, "times": n}}``:
  installs a script, forgets recorded requests. A step is
  ``{"text": "...", "tool_calls": [{"name": "...", "arguments": {...}}]}``,
  optionally with ``"delay": seconds`` (the answer starts that much later, so a
  test can act while the server waits for the LLM), ``"fail": status`` (this
  one request fails in the provider's error format) or ``"reasoning": "..."``
  (streamed as reasoning deltas before the text, OpenAI streams only) or
  ``"thinking": "..."`` (an Anthropic ``thinking`` block with a signature before
  the text, JSON or streamed).
  ``"plain": "..."`` in the reset body replaces the text answered to requests
  without tools. ``"ask": "..."`` answers that text to ``ask_agent`` questions
  (recognised by the last user message's wording) without using
  a step, so a question asked while a run is in flight leaves its script alone.
  ``fail`` makes the next ``times`` requests (all of them when ``times`` is
  absent) fail with ``status`` in the provider's error format.
* ``GET /_mock/requests``: every request seen since the last reset
  (``api``, ``path``, ``headers``, ``body``, ``answer``), the unused step count
  and the overrun count.
* ``GET /_mock/health``: ``{"ok": true}``.
* ``GET /_mock/secret``: the text ``LOOKUP_SECRET_VALUE`` when the request has
  ``Authorization: Bearer LOOKUP_SECRET_KEY``, else 401 (a ``LookupSecret``
  source for the secrets scenario).

Run: ``python3 mock_llm.py --port 0 --port-file FILE``; the chosen port is
written to FILE once the socket listens. This file must not talk to anything
but its own clients and never needs a network connection.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TITLE_TEXT = "Interop test conversation"
FINISH_ON_OVERRUN = {"name": "finish", "arguments": {"message": "Mock script exhausted."}}
USAGE_IN, USAGE_OUT = 120, 30
LOOKUP_SECRET_VALUE = "lk-from-lookup-789"
LOOKUP_SECRET_KEY = "lookup-bearer-key"


class Script:
    """The scripted answers and the record of requests; shared by all handler threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.steps: list[dict[str, Any]] = []
        self.fail: dict[str, Any] | None = None
        self.requests: list[dict[str, Any]] = []
        self.overruns = 0
        self.serial = 0
        self.plain = TITLE_TEXT
        self.ask: str | None = None
        self.secret_lookups = 0

    def reset(self, spec: dict[str, Any]) -> None:
        with self.lock:
            self.steps = list(spec.get("steps") or [])
            self.fail = spec.get("fail")
            self.requests = []
            self.overruns = 0
            self.plain = str(spec.get("plain") or TITLE_TEXT)
            self.ask = spec.get("ask")
            self.secret_lookups = 0

    def next_id(self) -> int:
        with self.lock:
            self.serial += 1
            return self.serial

    def decide(self, record: dict[str, Any]) -> dict[str, Any]:
        """Picks the answer for one request and records both."""
        body = record["body"]
        with self.lock:
            self.requests.append(record)
            if self.fail is not None:
                times = self.fail.get("times")
                if times is None or times > 0:
                    if times is not None:
                        self.fail["times"] = times - 1
                    answer = {"fail": int(self.fail.get("status", 500))}
                    record["answer"] = answer
                    return answer
            if not body.get("tools"):
                answer = {"text": self.plain, "tool_calls": []}
            elif self.ask is not None and is_question(body):
                answer = {"text": self.ask, "tool_calls": []}
            elif self.steps:
                answer = self.steps.pop(0)
                if "fail" in answer:
                    answer = dict(answer, fail=int(answer["fail"]))
            else:
                self.overruns += 1
                answer = {"text": "", "tool_calls": [FINISH_ON_OVERRUN]}
            record["answer"] = answer
            return answer

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": list(self.requests),
                "remaining": len(self.steps),
                "overruns": self.overruns,
                "secret_lookups": self.secret_lookups,
            }


SCRIPT = Script()


def is_question(body: dict[str, Any]) -> bool:
    """Whether the last user message is an ``ask_agent`` question (either wire format)."""
    users = [m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        return False
    content = users[-1].get("content")
    if isinstance(content, list):
        content = " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    text = str(content)
    # The reference wraps the question in <QUESTION>; our server words its own turn.
    return "<QUESTION>" in text or "A side question about the work" in text


def openai_message(answer: dict[str, Any], serial: int) -> tuple[dict[str, Any], str]:
    calls = [
        {
            "id": f"call_{serial:04d}_{i}",
            "type": "function",
            "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}))},
        }
        for i, c in enumerate(answer.get("tool_calls") or [])
    ]
    msg: dict[str, Any] = {"role": "assistant", "content": answer.get("text") or None}
    if calls:
        msg["tool_calls"] = calls
    return msg, ("tool_calls" if calls else "stop")


def openai_usage() -> dict[str, Any]:
    return {
        "prompt_tokens": USAGE_IN,
        "completion_tokens": USAGE_OUT,
        "total_tokens": USAGE_IN + USAGE_OUT,
    }


def anthropic_blocks(answer: dict[str, Any], serial: int) -> tuple[list[dict[str, Any]], str]:
    blocks: list[dict[str, Any]] = []
    if answer.get("thinking"):
        blocks.append({"type": "thinking", "thinking": answer["thinking"], "signature": f"mock-sig-{serial}"})
    if answer.get("text"):
        blocks.append({"type": "text", "text": answer["text"]})
    for i, c in enumerate(answer.get("tool_calls") or []):
        blocks.append(
            {
                "type": "tool_use",
                "id": f"toolu_{serial:04d}_{i}",
                "name": c["name"],
                "input": c.get("arguments", {}),
            }
        )
    stop = "tool_use" if answer.get("tool_calls") else "end_turn"
    return blocks, stop


def pieces(text: str, n: int = 3) -> list[str]:
    """Splits text into up to n non-empty chunks, the way streams deliver tokens."""
    if not text:
        return []
    size = max(1, -(-len(text) // n))
    return [text[i : i + size] for i in range(0, len(text), size)]


def error_body(api: str, status: int, message: str) -> dict[str, Any]:
    """An error body in the provider's own format for this status."""
    if api == "anthropic":
        kinds = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error"}
        return {"type": "error", "error": {"type": kinds.get(status, "api_error"), "message": message}}
    kind = "invalid_request_error" if status < 500 else "server_error"
    code = "invalid_api_key" if status == 401 else None
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def missing_fields(api: str, body: dict[str, Any]) -> str | None:
    """The first required field the provider would complain about, if any."""
    required = ("model", "max_tokens", "messages") if api == "anthropic" else ("model", "messages")
    for field in required:
        if field not in body:
            return f"{field}: Field required"
    if not isinstance(body["messages"], list) or not body["messages"]:
        return "messages: at least one message is required"
    if api == "anthropic" and not body.get("tools"):
        for m in body["messages"]:
            blocks = m.get("content") if isinstance(m, dict) else None
            if isinstance(blocks, list) and any(
                isinstance(b, dict) and b.get("type") in ("tool_use", "tool_result") for b in blocks
            ):
                # The real Messages API refuses a history with tool blocks and no tool definitions.
                return "Requests which include `tool_use` or `tool_result` blocks must define tools."
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-llm/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        sys.stderr.write("mock-llm: " + (format % args) + "\n")

    # -- plumbing -----------------------------------------------------------------

    def read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw or b"{}")

    def send_json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # -- routes -------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/_mock/requests":
            self.send_json(200, SCRIPT.snapshot())
        elif self.path == "/_mock/health":
            self.send_json(200, {"ok": True})
        elif self.path == "/_mock/secret":
            with SCRIPT.lock:
                SCRIPT.secret_lookups += 1
            if self.headers.get("Authorization") != f"Bearer {LOOKUP_SECRET_KEY}":
                self.send_json(401, {"error": {"message": "bad lookup key"}})
                return
            data = LOOKUP_SECRET_VALUE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self.send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        try:
            body = self.read_json()
        except (ValueError, UnicodeDecodeError) as e:
            self.send_json(400, {"error": {"message": f"body is not JSON: {e}"}})
            return
        if path == "/_mock/reset":
            SCRIPT.reset(body if isinstance(body, dict) else {})
            self.send_json(200, {"ok": True})
        elif path in ("/chat/completions", "/v1/chat/completions"):
            self.completion("openai", path, body)
        elif path == "/v1/messages":
            self.completion("anthropic", path, body)
        else:
            self.send_json(404, {"error": {"message": f"no route {path}"}})

    def completion(self, api: str, path: str, body: Any) -> None:
        if not isinstance(body, dict):
            self.send_json(400, {"error": {"message": "body must be an object"}})
            return
        problem = missing_fields(api, body)
        if problem:
            # The real APIs reject such bodies; so does the mock, so that tests notice.
            self.send_json(400, error_body(api, 400, problem))
            return
        record = {
            "api": api,
            "path": path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
            "time": time.time(),
        }
        answer = SCRIPT.decide(record)
        serial = SCRIPT.next_id()
        # Bounded: a script asks for seconds, never for a hang.
        time.sleep(min(float(answer.get("delay") or 0), 120.0))
        model = str(body.get("model", "mock-model"))
        if "fail" in answer:
            self.failure(api, answer["fail"])
        elif api == "openai":
            if body.get("stream"):
                self.openai_stream(answer, serial, model, body)
            else:
                msg, finish = openai_message(answer, serial)
                self.send_json(
                    200,
                    {
                        "id": f"chatcmpl-mock-{serial}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": model,
                        "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
                        "usage": openai_usage(),
                    },
                )
        elif body.get("stream"):
            self.anthropic_stream(answer, serial, model)
        else:
            blocks, stop = anthropic_blocks(answer, serial)
            self.send_json(
                200,
                {
                    "id": f"msg_mock_{serial}",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": blocks,
                    "stop_reason": stop,
                    "stop_sequence": None,
                    "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT},
                },
            )

    def failure(self, api: str, status: int) -> None:
        message = "Incorrect API key provided (mock)" if status == 401 else f"mock failure {status}"
        self.send_json(status, error_body(api, status, message))

    def openai_stream(self, answer: dict[str, Any], serial: int, model: str, body: dict) -> None:
        base = {
            "id": f"chatcmpl-mock-{serial}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

        def event(delta: dict[str, Any], finish: str | None = None) -> None:
            frame = dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": finish}])
            self.chunk(f"data: {json.dumps(frame)}\n\n")

        msg, finish = openai_message(answer, serial)
        self.start_stream()
        event({"role": "assistant", "content": ""})
        for part in pieces(answer.get("reasoning") or ""):
            event({"reasoning_content": part})
        for part in pieces(answer.get("text") or ""):
            event({"content": part})
        for i, call in enumerate(msg.get("tool_calls") or []):
            head = {"name": call["function"]["name"], "arguments": ""}
            event({"tool_calls": [{"index": i, "id": call["id"], "type": "function", "function": head}]})
            for part in pieces(call["function"]["arguments"]):
                event({"tool_calls": [{"index": i, "function": {"arguments": part}}]})
        event({}, finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            self.chunk(f"data: {json.dumps(dict(base, choices=[], usage=openai_usage()))}\n\n")
        self.chunk("data: [DONE]\n\n")
        self.end_stream()

    def anthropic_stream(self, answer: dict[str, Any], serial: int, model: str) -> None:
        def event(name: str, data: dict[str, Any]) -> None:
            self.chunk(f"event: {name}\ndata: {json.dumps(dict(data, type=name))}\n\n")

        blocks, stop = anthropic_blocks(answer, serial)
        self.start_stream()
        event(
            "message_start",
            {
                "message": {
                    "id": f"msg_mock_{serial}",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": USAGE_IN, "output_tokens": 1},
                }
            },
        )
        event("ping", {})
        for index, block in enumerate(blocks):
            if block["type"] == "thinking":
                start = {"type": "thinking", "thinking": "", "signature": ""}
                event("content_block_start", {"index": index, "content_block": start})
                for part in pieces(block["thinking"]):
                    delta = {"type": "thinking_delta", "thinking": part}
                    event("content_block_delta", {"index": index, "delta": delta})
                delta = {"type": "signature_delta", "signature": block["signature"]}
                event("content_block_delta", {"index": index, "delta": delta})
            elif block["type"] == "text":
                event("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
                for part in pieces(block["text"]):
                    event(
                        "content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": part}}
                    )
            else:
                start = dict(block, input={})
                event("content_block_start", {"index": index, "content_block": start})
                for part in pieces(json.dumps(block["input"])):
                    event(
                        "content_block_delta",
                        {"index": index, "delta": {"type": "input_json_delta", "partial_json": part}},
                    )
            event("content_block_stop", {"index": index})
        event(
            "message_delta",
            {"delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": USAGE_OUT}},
        )
        event("message_stop", {})
        self.end_stream()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the listening port here")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(port))
        # Rename so a reader never sees a half-written file.
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"mock-llm listening on 127.0.0.1:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
