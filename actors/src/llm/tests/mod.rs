//! End-to-end tests of the LLM client against the scripted local server in `server.rs`:
//! exact request bodies and headers for both protocols, response and stream parsing,
//! retries, timeouts, malformed replies and cancellation. Every test is bounded in time
//! and talks only to 127.0.0.1.

mod server;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;
use server::{Reply, Server};

const KEY: &str = "sk-test-KEY-123456";

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().expect("reqwest client")
}

fn cfg(model: &str, base: &str) -> LlmConfig {
    let mut c = LlmConfig::new(model);
    c.base_url = Some(base.to_owned());
    c.api_key = Some(KEY.to_owned());
    c.num_retries = 3;
    c.retry_multiplier = 0.001;
    c.retry_min_wait = 0.0;
    c.retry_max_wait = 0.01;
    c.timeout = Duration::from_secs(5);
    c
}

async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test exceeded its time bound")
}

fn tool(name: &str, description: &str) -> ToolSpec {
    ToolSpec {
        name: name.into(),
        description: description.into(),
        parameters: json!({"type": "object", "properties": {"command": {"type": "string"}},
                           "required": ["command"]}),
    }
}

fn call(id: &str, name: &str, args: &str) -> ToolCall {
    ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: args.into(),
    }
}

fn sse(v: Value) -> String {
    format!("data: {v}\n\n")
}

fn anthropic_sse(kind: &str, v: Value) -> String {
    format!("event: {kind}\ndata: {v}\n\n")
}

#[tokio::test]
async fn openai_request_and_response_match_the_reference() {
    let reply = json!({
        "id": "chatcmpl-abc", "object": "chat.completion", "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me check.",
            "tool_calls": [{"id": "call_9", "type": "function",
                            "function": {"name": "terminal", "arguments": "{\"command\":\"ls\"}"}}]}}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 30,
                  "prompt_tokens_details": {"cached_tokens": 100},
                  "completion_tokens_details": {"reasoning_tokens": 7}}
    });
    let srv = Server::start(vec![Reply::Json(200, reply.to_string())]);
    let mut c = cfg("openai/gpt-4o", &format!("{}/v1/", srv.base));
    c.extra_headers = vec![("X-Custom".into(), "1".into())];
    c.input_cost_per_token = Some(0.001);
    c.output_cost_per_token = Some(0.002);
    let args1 = r#"{"command": "create", "path": "/w/TODO.md"}"#;
    let args2 = r#"{"command": "cat TODO.md"}"#;
    let messages = vec![
        ChatMessage::system("You are OpenHands agent."),
        ChatMessage::user("Create a TODO.md file."),
        ChatMessage::assistant(
            "I'll create it.",
            vec![call("call_1", "file_editor", args1)],
        ),
        ChatMessage::tool_result("call_1", "file_editor", "File created."),
        ChatMessage::assistant("", vec![call("call_2", "terminal", args2)]),
        ChatMessage::tool_result("call_2", "terminal", "# TODO"),
    ];
    let tools = vec![
        tool("terminal", "Run a command."),
        tool("file_editor", "Edit files."),
    ];

    let r = bounded(complete(&client(), &c, &messages, &tools, None))
        .await
        .expect("completion");

    let reqs = srv.requests();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(
        req.header("authorization"),
        Some("Bearer sk-test-KEY-123456")
    );
    assert_eq!(req.header("x-api-key"), None);
    assert_eq!(
        req.header("http-referer"),
        Some("https://docs.all-hands.dev/")
    );
    assert_eq!(req.header("x-title"), Some("OpenHands"));
    assert_eq!(req.header("x-custom"), Some("1"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    let text = |t: &str| json!([{"type": "text", "text": t}]);
    let wire_call = |id: &str, name: &str, a: &str| json!([{"id": id, "type": "function", "function": {"name": name, "arguments": a}}]);
    let schema = tools[0].parameters.clone();
    let expected = json!({
        "messages": [
            {"content": text("You are OpenHands agent."), "role": "system"},
            {"content": text("Create a TODO.md file."), "role": "user"},
            {"content": text("I'll create it."), "role": "assistant",
             "tool_calls": wire_call("call_1", "file_editor", args1)},
            {"content": text("File created."), "role": "tool", "tool_call_id": "call_1",
             "name": "file_editor"},
            {"role": "assistant", "tool_calls": wire_call("call_2", "terminal", args2)},
            {"content": text("# TODO"), "role": "tool", "tool_call_id": "call_2", "name": "terminal"}
        ],
        "model": "gpt-4o",
        "max_completion_tokens": 16384,
        "tools": [
            {"type": "function", "function": {"name": "terminal", "description": "Run a command.",
                                              "parameters": schema}},
            {"type": "function", "function": {"name": "file_editor", "description": "Edit files.",
                                              "parameters": schema}}
        ]
    });
    assert_eq!(req.body, expected);

    assert_eq!(r.id, "chatcmpl-abc");
    assert_eq!(r.content, "Let me check.");
    assert_eq!(
        r.tool_calls,
        vec![call("call_9", "terminal", "{\"command\":\"ls\"}")]
    );
    assert_eq!(
        r.usage,
        Usage {
            prompt_tokens: 120,
            completion_tokens: 30,
            cache_read_tokens: 100,
            cache_write_tokens: 0,
            reasoning_tokens: 7
        }
    );
    assert!((r.cost - 0.18).abs() < 1e-9);
    assert_eq!(r.model, "gpt-4o-2024-08-06");
    assert_eq!(r.stop_reason.as_deref(), Some("tool_calls"));
    assert!(r.latency > Duration::ZERO);
}

#[tokio::test]
async fn anthropic_request_and_response_match_the_reference() {
    let reply = json!({
        "id": "msg_01", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-5-20250929", "stop_reason": "tool_use",
        "content": [
            {"type": "thinking", "thinking": "Need to list.", "signature": "sig=="},
            {"type": "text", "text": "Checking "},
            {"type": "text", "text": "files."},
            {"type": "tool_use", "id": "toolu_2", "name": "terminal",
             "input": {"command": "ls -la", "note": "é"}}
        ],
        "usage": {"input_tokens": 1001, "output_tokens": 51,
                  "cache_read_input_tokens": 200, "cache_creation_input_tokens": 300}
    });
    let srv = Server::start(vec![Reply::Json(200, reply.to_string())]);
    let c = cfg("anthropic/claude-sonnet-4-5-20250929", &srv.base);
    let args = r#"{"command": "create", "path": "/w/TODO.md", "security_risk": "LOW"}"#;
    let messages = vec![
        ChatMessage::system("You are OpenHands agent."),
        ChatMessage::user("Create a TODO.md file."),
        ChatMessage::assistant(
            "I'll create it.",
            vec![call("toolu_1", "file_editor", args)],
        ),
        ChatMessage::tool_result("toolu_1", "file_editor", "File created."),
    ];
    let tools = vec![tool("terminal", "Run a command.")];

    let r = bounded(complete(&client(), &c, &messages, &tools, None))
        .await
        .expect("completion");

    let reqs = srv.requests();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(req.path, "/v1/messages");
    assert_eq!(req.header("x-api-key"), Some(KEY));
    assert_eq!(req.header("authorization"), None);
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        req.header("anthropic-beta"),
        Some("interleaved-thinking-2025-05-14")
    );
    assert_eq!(
        req.header("http-referer"),
        Some("https://docs.all-hands.dev/")
    );
    assert_eq!(req.header("x-title"), Some("OpenHands"));
    let eph = json!({"type": "ephemeral"});
    // The last assistant tool turn has no thinking blocks, so `thinking` is dropped.
    let expected = json!({
        "model": "claude-sonnet-4-5-20250929",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Create a TODO.md file."}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "I'll create it."},
                {"type": "tool_use", "id": "toolu_1", "name": "file_editor",
                 "input": {"command": "create", "path": "/w/TODO.md", "security_risk": "LOW"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1",
                 "content": [{"type": "text", "text": "File created."}], "cache_control": eph}]}
        ],
        "max_tokens": 64000,
        "tools": [{"name": "terminal", "input_schema": tools[0].parameters, "type": "custom",
                   "description": "Run a command."}],
        "system": [{"type": "text", "text": "You are OpenHands agent.", "cache_control": eph}]
    });
    assert_eq!(req.body, expected);

    assert!(r.id.starts_with("chatcmpl-") && r.id.len() == "chatcmpl-".len() + 36);
    assert_eq!(r.content, "Checking files.");
    assert_eq!(
        r.tool_calls,
        vec![call(
            "toolu_2",
            "terminal",
            r#"{"command": "ls -la", "note": "\u00e9"}"#
        )]
    );
    assert_eq!(r.reasoning_content.as_deref(), Some("Need to list."));
    assert_eq!(
        r.thinking_blocks,
        vec![json!({"type": "thinking", "thinking": "Need to list.", "signature": "sig=="})]
    );
    assert_eq!(
        r.usage,
        Usage {
            prompt_tokens: 1501,
            completion_tokens: 51,
            cache_read_tokens: 200,
            cache_write_tokens: 300,
            reasoning_tokens: 0
        }
    );
    assert_eq!(r.cost, 0.0);
    assert_eq!(r.stop_reason.as_deref(), Some("tool_use"));
}

#[test]
fn anthropic_body_thinking_merging_images_and_cache_marks() {
    let c = cfg("anthropic/claude-sonnet-4-5-20250929", "http://127.0.0.1:1");
    let first = vec![ChatMessage::system("sys"), ChatMessage::user("hi")];
    let (_, body) = request_body(&c, &first, &[], false).expect("body");
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 63999})
    );
    assert_eq!(body["max_tokens"], json!(64000));
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [
            {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}])
    );

    let thinking = json!({"type": "thinking", "thinking": "t", "signature": "s"});
    let mut asst = ChatMessage::assistant(
        "",
        vec![
            call("a", "terminal", r#"{"command":"ls"}"#),
            call("b", "terminal", "not json"),
        ],
    );
    asst.thinking_blocks = vec![thinking.clone()];
    let mut look = ChatMessage::user("look");
    look.content.push(ContentPart::Image {
        url: "data:image/png;base64,AAAA".into(),
    });
    let convo = vec![
        look,
        asst,
        ChatMessage::tool_result("a", "terminal", "out a"),
        ChatMessage::tool_result("b", "terminal", "out b"),
        ChatMessage::user("and now?"),
    ];
    let (_, body) = request_body(&c, &convo, &[], false).expect("body");
    assert_eq!(body["thinking"]["budget_tokens"], json!(63999));
    assert!(body.get("system").is_none());
    let result = |id: &str, t: &str| {
        json!({"type": "tool_result", "tool_use_id": id,
               "content": [{"type": "text", "text": t}]})
    };
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                              "data": "AAAA"}}]},
            {"role": "assistant", "content": [
                thinking,
                {"type": "tool_use", "id": "a", "name": "terminal", "input": {"command": "ls"}},
                {"type": "tool_use", "id": "b", "name": "terminal", "input": {}}]},
            {"role": "user", "content": [
                result("a", "out a"), result("b", "out b"),
                {"type": "text", "text": "and now?", "cache_control": {"type": "ephemeral"}}]}
        ])
    );

    let mut plain = c.clone();
    plain.caching_prompt = false;
    plain.temperature = Some(0.5);
    let (_, body) = request_body(&plain, &first, &[], false).expect("body");
    assert!(!body.to_string().contains("cache_control"));
    // Extended-thinking models never get sampling parameters.
    assert!(body.get("temperature").is_none());

    let mut haiku = cfg("claude-3-5-haiku-20241022", "http://127.0.0.1:1");
    haiku.temperature = Some(0.5);
    let (ep, body) = request_body(&haiku, &first, &[], true).expect("body");
    assert_eq!(ep.url, "http://127.0.0.1:1/v1/messages");
    assert_eq!(body["max_tokens"], json!(8192));
    assert_eq!(body["temperature"], json!(0.5));
    assert_eq!(body["stream"], json!(true));
    assert!(body.get("thinking").is_none());
}

#[test]
fn openai_body_options() {
    let mut c = cfg("openai/o3-mini", "http://127.0.0.1:1/v1");
    c.temperature = Some(0.2);
    c.seed = Some(7);
    c.max_output_tokens = Some(1000);
    c.litellm_extra_body = json!({"user": "u1", "metadata": {"a": 1}})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let msgs = vec![ChatMessage::user("hi")];
    let (_, body) = request_body(&c, &msgs, &[], true).expect("body");
    assert_eq!(body["max_completion_tokens"], json!(1000));
    assert!(
        body.get("temperature").is_none(),
        "reasoning models take no temperature"
    );
    assert_eq!(body["seed"], json!(7));
    assert_eq!(body["reasoning_effort"], json!("high"));
    assert_eq!(body["stream"], json!(true));
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(body["user"], json!("u1"));
    assert_eq!(body["metadata"], json!({"a": 1}));
    assert!(body.get("tools").is_none());

    let mut m = cfg("openai/mock-model", "http://127.0.0.1:1/v1");
    m.temperature = Some(0.2);
    let (_, body) = request_body(&m, &msgs, &[], false).expect("body");
    assert!(body.get("max_completion_tokens").is_none());
    assert_eq!(body["temperature"], json!(0.2));
    assert!(body.get("stream").is_none());

    let p = cfg(
        "litellm_proxy/anthropic/claude-sonnet-4-5",
        "http://127.0.0.1:1",
    );
    let tool_msg = ChatMessage::tool_result("c1", "terminal", "ok");
    let (ep, body) =
        request_body(&p, &[ChatMessage::system("s"), tool_msg], &[], false).expect("body");
    assert_eq!(ep.url, "http://127.0.0.1:1/chat/completions");
    assert_eq!(body["model"], json!("anthropic/claude-sonnet-4-5"));
    assert_eq!(body["max_tokens"], json!(64000));
    assert_eq!(body["thinking"]["budget_tokens"], json!(63999));
    assert_eq!(
        body["messages"][0]["content"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    // A tool message's breakpoint sits on the message, not on its parts.
    assert_eq!(
        body["messages"][1]["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert!(
        body["messages"][1]["content"][0]
            .get("cache_control")
            .is_none()
    );

    let d = cfg("deepseek/deepseek-chat", "http://127.0.0.1:1/v1");
    let (_, body) = request_body(&d, &msgs, &[], false).expect("body");
    assert_eq!(body["messages"][0]["content"], json!("hi"));
}

#[tokio::test]
async fn openai_streaming_delivers_deltas_and_assembles_the_result() {
    let events = vec![
        sse(json!({"id": "chatcmpl-s1", "model": "gpt-4o", "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": ""}}]})),
        sse(json!({"id": "chatcmpl-s1", "choices": [{"index": 0, "delta": {"content": "Hel"}}]})),
        sse(json!({"id": "chatcmpl-s1", "choices": [{"index": 0, "delta": {"content": "lo"}}]})),
        sse(
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_7",
            "type": "function", "function": {"name": "terminal", "arguments": ""}}]}}]}),
        ),
        sse(json!({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": "{\"command\": "}}]}}]})),
        sse(json!({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": "\"ls\"}"}}]}}]})),
        sse(json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})),
        sse(json!({"id": "chatcmpl-s1", "choices": [],
                   "usage": {"prompt_tokens": 50, "completion_tokens": 9}})),
        "data: [DONE]\n\n".to_owned(),
    ];
    let srv = Server::start(vec![Reply::Sse(events)]);
    let mut c = cfg("openai/gpt-4o", &format!("{}/v1", srv.base));
    c.stream = true;
    let seen = Mutex::new(Vec::new());
    let on_delta = |d: StreamDelta| seen.lock().expect("lock").push(d);
    let r = bounded(complete(
        &client(),
        &c,
        &[ChatMessage::user("hi")],
        &[tool("terminal", "Run.")],
        Some(&on_delta),
    ))
    .await
    .expect("streamed completion");

    let req = &srv.requests()[0];
    assert_eq!(req.body["stream"], json!(true));
    assert_eq!(req.body["stream_options"], json!({"include_usage": true}));
    assert_eq!(req.header("accept"), Some("text/event-stream"));
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![
            StreamDelta::Content("Hel".into()),
            StreamDelta::Content("lo".into())
        ]
    );
    assert_eq!(r.id, "chatcmpl-s1");
    assert_eq!(r.content, "Hello");
    assert_eq!(
        r.tool_calls,
        vec![call("call_7", "terminal", r#"{"command": "ls"}"#)]
    );
    assert_eq!((r.usage.prompt_tokens, r.usage.completion_tokens), (50, 9));
    assert_eq!(r.stop_reason.as_deref(), Some("tool_calls"));
}

#[tokio::test]
async fn anthropic_streaming_delivers_deltas_and_assembles_the_result() {
    let block_delta = |i: u64, d: Value| {
        anthropic_sse(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": i, "delta": d}),
        )
    };
    let block_start = |i: u64, b: Value| {
        anthropic_sse(
            "content_block_start",
            json!({"type": "content_block_start", "index": i, "content_block": b}),
        )
    };
    let stop = |i: u64| {
        anthropic_sse(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": i}),
        )
    };
    let events = vec![
        anthropic_sse(
            "message_start",
            json!({"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "content": [],
            "model": "claude-sonnet-4-5-20250929",
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 1}}}),
        ),
        block_start(
            0,
            json!({"type": "thinking", "thinking": "", "signature": ""}),
        ),
        block_delta(0, json!({"type": "thinking_delta", "thinking": "Hmm"})),
        block_delta(0, json!({"type": "signature_delta", "signature": "sig"})),
        stop(0),
        anthropic_sse("ping", json!({"type": "ping"})),
        block_start(1, json!({"type": "text", "text": ""})),
        block_delta(1, json!({"type": "text_delta", "text": "Hi "})),
        block_delta(1, json!({"type": "text_delta", "text": "there"})),
        stop(1),
        block_start(
            2,
            json!({"type": "tool_use", "id": "toolu_9", "name": "terminal", "input": {}}),
        ),
        block_delta(
            2,
            json!({"type": "input_json_delta", "partial_json": "{\"command\""}),
        ),
        block_delta(
            2,
            json!({"type": "input_json_delta", "partial_json": ": \"ls\"}"}),
        ),
        stop(2),
        anthropic_sse(
            "message_delta",
            json!({"type": "message_delta",
            "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 42}}),
        ),
        anthropic_sse("message_stop", json!({"type": "message_stop"})),
    ];
    let srv = Server::start(vec![Reply::Sse(events)]);
    let mut c = cfg("anthropic/claude-sonnet-4-5-20250929", &srv.base);
    c.stream = true;
    let seen = Mutex::new(Vec::new());
    let on_delta = |d: StreamDelta| seen.lock().expect("lock").push(d);
    let r = bounded(complete(
        &client(),
        &c,
        &[ChatMessage::user("hi")],
        &[],
        Some(&on_delta),
    ))
    .await
    .expect("streamed completion");

    assert_eq!(srv.requests()[0].body["stream"], json!(true));
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![
            StreamDelta::Reasoning("Hmm".into()),
            StreamDelta::Content("Hi ".into()),
            StreamDelta::Content("there".into())
        ]
    );
    assert_eq!(r.content, "Hi there");
    assert_eq!(
        r.tool_calls,
        vec![call("toolu_9", "terminal", r#"{"command": "ls"}"#)]
    );
    assert_eq!(r.reasoning_content.as_deref(), Some("Hmm"));
    assert_eq!(
        r.thinking_blocks,
        vec![json!({"type": "thinking", "thinking": "Hmm", "signature": "sig"})]
    );
    assert_eq!(
        (
            r.usage.prompt_tokens,
            r.usage.completion_tokens,
            r.usage.cache_read_tokens
        ),
        (15, 42, 5)
    );
    assert!(r.id.starts_with("chatcmpl-"));
    assert_eq!(r.stop_reason.as_deref(), Some("tool_use"));
}

fn ok_openai() -> Reply {
    Reply::Json(
        200,
        json!({"id": "chatcmpl-ok", "choices": [{"index": 0, "finish_reason": "stop",
               "message": {"role": "assistant", "content": "done"}}],
               "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
        .to_string(),
    )
}

#[tokio::test]
async fn a_503_is_retried_and_then_succeeds() {
    let srv = Server::start(vec![
        Reply::Json(503, r#"{"error":{"message":"overloaded"}}"#.into()),
        Reply::Json(429, r#"{"error":{"message":"slow down"}}"#.into()),
        ok_openai(),
    ]);
    let c = cfg("openai/gpt-4o", &srv.base);
    let r = bounded(complete(
        &client(),
        &c,
        &[ChatMessage::user("hi")],
        &[],
        None,
    ))
    .await
    .expect("third attempt succeeds");
    assert_eq!(r.content, "done");
    assert_eq!(srv.requests().len(), 3);
}

#[tokio::test]
async fn a_401_is_not_retried_and_never_shows_the_key() {
    let body = format!(
        r#"{{"type":"error","error":{{"type":"authentication_error","message":"invalid x-api-key {KEY}"}}}}"#
    );
    let srv = Server::start(vec![Reply::Json(401, body), ok_openai()]);
    let c = cfg("anthropic/claude-sonnet-4-5-20250929", &srv.base);
    let e = bounded(complete(
        &client(),
        &c,
        &[ChatMessage::user("hi")],
        &[],
        None,
    ))
    .await
    .expect_err("401 fails");
    assert_eq!(e.code(), "LLMAuthenticationError");
    assert!(!e.is_retryable());
    assert!(
        e.detail()
            .starts_with("litellm.AuthenticationError: AnthropicException - ")
    );
    assert!(e.detail().contains("invalid x-api-key"));
    assert!(!e.detail().contains(KEY) && !format!("{e:?}").contains(KEY));
    assert!(!format!("{c:?}").contains(KEY));
    assert_eq!(srv.requests().len(), 1);
}

#[tokio::test]
async fn attempts_are_capped_at_num_retries() {
    let srv = Server::start(vec![
        Reply::Json(503, "busy".into()),
        Reply::Json(502, "bad gateway".into()),
        Reply::Json(500, "oops".into()),
        ok_openai(),
    ]);
    let c = cfg("openai/gpt-4o", &srv.base);
    let e = bounded(complete(
        &client(),
        &c,
        &[ChatMessage::user("hi")],
        &[],
        None,
    ))
    .await
    .expect_err("all three attempts fail");
    assert_eq!(e.code(), "LLMServiceUnavailableError");
    assert!(e.detail().contains("oops"));
    assert_eq!(srv.requests().len(), 3);
}

#[tokio::test]
async fn context_window_and_bad_request_are_not_retried() {
    let srv = Server::start(vec![
        Reply::Json(
            400,
            json!({"error": {"message": "This model's maximum context length is 128000 tokens.",
                             "code": "context_length_exceeded"}})
            .to_string(),
        ),
        Reply::Json(404, r#"{"error":{"message":"model not found"}}"#.into()),
        ok_openai(),
    ]);
    let c = cfg("openai/gpt-4o", &srv.base);
    let msgs = [ChatMessage::user("hi")];
    let e = bounded(complete(&client(), &c, &msgs, &[], None))
        .await
        .expect_err("400");
    assert_eq!(e.code(), "LLMContextWindowExceedError");
    let e = bounded(complete(&client(), &c, &msgs, &[], None))
        .await
        .expect_err("404");
    assert_eq!(e.code(), "LLMBadRequestError");
    assert_eq!(srv.requests().len(), 2);
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let srv = Server::start(vec![Reply::Silence(Duration::from_secs(5))]);
    let mut c = cfg("openai/gpt-4o", &srv.base);
    c.timeout = Duration::from_millis(300);
    c.num_retries = 1;
    let t0 = Instant::now();
    let e = bounded(complete(
        &client(),
        &c,
        &[ChatMessage::user("hi")],
        &[],
        None,
    ))
    .await
    .expect_err("timeout");
    assert_eq!(e.code(), "LLMTimeoutError");
    assert!(e.is_retryable());
    assert!(t0.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_stalled_stream_times_out_per_read() {
    let first = sse(json!({"choices": [{"index": 0, "delta": {"content": "partial"}}]}));
    let srv = Server::start(vec![Reply::SseStall(first, Duration::from_secs(5))]);
    let mut c = cfg("openai/gpt-4o", &srv.base);
    c.stream = true;
    c.timeout = Duration::from_millis(400);
    c.num_retries = 1;
    let seen = Mutex::new(Vec::new());
    let on_delta = |d: StreamDelta| seen.lock().expect("lock").push(d);
    let e = bounded(complete(
        &client(),
        &c,
        &[ChatMessage::user("hi")],
        &[],
        Some(&on_delta),
    ))
    .await
    .expect_err("stalled");
    assert_eq!(e.code(), "LLMTimeoutError");
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![StreamDelta::Content("partial".into())]
    );
}

#[tokio::test]
async fn malformed_and_empty_replies_are_errors_not_panics() {
    let srv = Server::start(vec![
        Reply::Json(200, "{not json".into()),
        Reply::Json(200, r#"{"id":"x","choices":[]}"#.into()),
        Reply::Json(200, r#"{"id":"x","choices":[]}"#.into()),
        Reply::Sse(vec!["data: {oops\n\n".into()]),
        Reply::Json(200, "[1,2]".into()),
        Reply::Sse(vec![": keepalive only\n\n".into()]),
    ]);
    let client = client();
    let msgs = [ChatMessage::user("hi")];
    let mut c = cfg("openai/gpt-4o", &srv.base);
    c.num_retries = 1;
    let e = bounded(complete(&client, &c, &msgs, &[], None))
        .await
        .expect_err("bad json");
    assert_eq!(e.code(), "LLMServiceUnavailableError");
    assert!(e.detail().contains("not valid JSON"));

    c.num_retries = 2;
    let e = bounded(complete(&client, &c, &msgs, &[], None))
        .await
        .expect_err("no choices");
    assert_eq!(e.code(), "LLMNoResponseError");
    assert!(e.is_retryable());

    c.num_retries = 1;
    c.stream = true;
    let e = bounded(complete(&client, &c, &msgs, &[], None))
        .await
        .expect_err("bad chunk");
    assert_eq!(e.code(), "LLMServiceUnavailableError");

    let mut a = cfg("anthropic/claude-3-5-haiku-20241022", &srv.base);
    a.num_retries = 1;
    let e = bounded(complete(&client, &a, &msgs, &[], None))
        .await
        .expect_err("not a message");
    assert_eq!(e.code(), "LLMServiceUnavailableError");

    a.stream = true;
    let e = bounded(complete(&client, &a, &msgs, &[], None))
        .await
        .expect_err("empty stream");
    assert_eq!(e.code(), "LLMNoResponseError");
    assert_eq!(srv.requests().len(), 6);
}

#[tokio::test]
async fn dropping_the_future_aborts_the_request() {
    let srv = Server::start(vec![Reply::Silence(Duration::from_secs(10))]);
    let c = cfg("openai/gpt-4o", &srv.base);
    let client = client();
    let msgs = [ChatMessage::user("hi")];
    let cancelled = tokio::time::timeout(
        Duration::from_millis(300),
        complete(&client, &c, &msgs, &[], None),
    )
    .await;
    assert!(
        cancelled.is_err(),
        "the call must still be pending when dropped"
    );
    let t0 = Instant::now();
    while srv.disconnects() == 0 && t0.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(srv.disconnects(), 1, "the connection was not closed");
}

#[tokio::test]
async fn ask_sends_no_tools_and_does_not_stream() {
    let srv = Server::start(vec![ok_openai()]);
    let mut c = cfg("openai/gpt-4o", &srv.base);
    c.stream = true;
    let r = bounded(ask(&client(), &c, &[ChatMessage::user("title?")], &[]))
        .await
        .expect("ask");
    assert_eq!(r.content, "done");
    let body = &srv.requests()[0].body;
    assert!(body.get("tools").is_none() && body.get("stream").is_none());
}

#[tokio::test]
async fn configuration_errors_fail_before_any_request() {
    let c = cfg("litellm_proxy/gpt-4o", "");
    let mut c2 = c.clone();
    c2.base_url = None;
    for c in [c, c2] {
        let e = bounded(complete(
            &client(),
            &c,
            &[ChatMessage::user("hi")],
            &[],
            None,
        ))
        .await
        .expect_err("no base url");
        assert_eq!(e.code(), "LLMBadRequestError");
        assert!(e.detail().contains("base_url"));
        assert!(!e.is_retryable());
    }
    let mut bad = cfg("openai/gpt-4o", "http://127.0.0.1:1");
    bad.extra_headers = vec![("bad header".into(), "x".into())];
    let e = bounded(complete(&client(), &bad, &[], &[], None))
        .await
        .expect_err("header");
    assert_eq!(e.code(), "LLMBadRequestError");
}

#[tokio::test]
async fn a_refused_connection_is_a_retryable_connection_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut c = cfg("openai/gpt-4o", &format!("http://127.0.0.1:{port}"));
    c.num_retries = 2;
    let e = bounded(complete(
        &client(),
        &c,
        &[ChatMessage::user("hi")],
        &[],
        None,
    ))
    .await
    .expect_err("refused");
    assert_eq!(e.code(), "LLMServiceUnavailableError");
    assert!(matches!(e, LlmError::Connection(_)));
    assert!(!e.detail().contains(KEY));
}

#[test]
fn the_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let client = client();
    let c = LlmConfig::new("openai/gpt-4o");
    let f = |_: StreamDelta| {};
    let fut = complete(&client, &c, &[], &[], Some(&f));
    assert_send(&fut);
    let fut = ask(&client, &c, &[], &[]);
    assert_send(&fut);
}

#[test]
fn config_reads_the_reference_llm_object() {
    let v: Value = serde_json::from_str(
        r#"{
         "model": "anthropic/claude-sonnet-4-5-20250929", "api_key": "sk-ant-PLAINTEXT",
         "base_url": null, "api_version": null, "aws_access_key_id": null,
         "openrouter_site_url": "https://docs.all-hands.dev/", "openrouter_app_name": "OpenHands",
         "num_retries": 5, "retry_multiplier": 8.0, "retry_min_wait": 8, "retry_max_wait": 64,
         "timeout": 300, "max_message_chars": 30000, "temperature": null, "top_p": null,
         "top_k": null, "max_input_tokens": null, "max_output_tokens": null,
         "model_canonical_name": null, "extra_headers": null, "input_cost_per_token": null,
         "output_cost_per_token": null, "ollama_base_url": null, "stream": false,
         "drop_params": true, "modify_params": true, "disable_vision": null,
         "disable_stop_word": false, "caching_prompt": true, "log_completions": false,
         "log_completions_folder": "logs/completions", "custom_tokenizer": null,
         "native_tool_calling": true, "force_string_serializer": null,
         "reasoning_effort": "high", "reasoning_summary": null,
         "enable_encrypted_reasoning": true, "prompt_cache_retention": "24h",
         "extended_thinking_budget": 200000, "seed": null, "usage_id": "default",
         "litellm_extra_body": {}
    }"#,
    )
    .expect("valid JSON");
    let c = LlmConfig::from_json(&v).expect("reference llm object");
    assert_eq!(c.model, "anthropic/claude-sonnet-4-5-20250929");
    assert_eq!(c.api_key.as_deref(), Some("sk-ant-PLAINTEXT"));
    assert_eq!(c.num_retries, 5);
    assert_eq!(c.timeout, Duration::from_secs(300));
    assert!(c.caching_prompt && !c.stream);
    assert_eq!(c.reasoning_effort.as_deref(), Some("high"));
    assert!(!format!("{c:?}").contains("PLAINTEXT"));

    let c = LlmConfig::from_json(&json!({"model": "gpt-4o", "api_key": "**********",
        "extra_headers": {"X-A": "b"}, "temperature": "0.3", "unknown": [1]}))
    .expect("lenient");
    assert_eq!(c.api_key, None);
    assert_eq!(c.extra_headers, vec![("X-A".to_owned(), "b".to_owned())]);
    assert_eq!(c.temperature, Some(0.3));
    assert_eq!(c.retry_max_wait, 64.0);

    for bad in [
        json!({"model": ""}),
        json!({"api_key": "k"}),
        json!({"model": "gpt-4o", "num_retries": "many"}),
        json!({"model": "gpt-4o", "stream": "yes"}),
        json!("gpt-4o"),
    ] {
        let e = LlmConfig::from_json(&bad).expect_err("invalid");
        assert_eq!(e.code(), "LLMBadRequestError");
    }
}

/// The reference fixtures, when this checkout has the shared folder beside it.
fn fixtures() -> Option<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    ["../../shared", "../shared", "../../../shared"]
        .iter()
        .map(|p| manifest.join(p).join("reference/client-contract-fixtures"))
        .find(|p| p.is_dir())
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("fixture")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("fixture line"))
        .collect()
}

/// Rebuilds our messages and tools from a request body the reference sent to OpenAI.
fn from_openai_wire(body: &Value) -> (Vec<ChatMessage>, Vec<ToolSpec>) {
    let role = |r: &str| match r {
        "system" => Role::System,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        _ => Role::User,
    };
    let messages = body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            let parts = m["content"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| ContentPart::text(p["text"].as_str().unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default();
            let mut out = ChatMessage::new(role(m["role"].as_str().unwrap_or_default()), parts);
            out.tool_calls = m["tool_calls"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .map(|c| {
                            call(
                                c["id"].as_str().unwrap_or_default(),
                                c["function"]["name"].as_str().unwrap_or_default(),
                                c["function"]["arguments"].as_str().unwrap_or_default(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.tool_call_id = m["tool_call_id"].as_str().map(str::to_owned);
            out.name = m["name"].as_str().map(str::to_owned);
            out
        })
        .collect();
    let tools = body["tools"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| ToolSpec {
                    name: t["function"]["name"].as_str().unwrap_or_default().into(),
                    description: t["function"]["description"]
                        .as_str()
                        .unwrap_or_default()
                        .into(),
                    parameters: t["function"]["parameters"].clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    (messages, tools)
}

fn assert_headers(ours: &reqwest::header::HeaderMap, theirs: &Value, names: &[&str]) {
    for name in names {
        let want = theirs
            .as_object()
            .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
            .and_then(|(_, v)| v.as_str());
        let got = ours.get(*name).and_then(|v| v.to_str().ok());
        assert_eq!(got, want, "header {name}");
    }
}

/// The JSON pointer of the first difference between two values, for readable failures.
fn first_diff(ours: &Value, theirs: &Value, at: &str) -> Option<String> {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            let keys = a.keys().chain(b.keys().filter(|k| !a.contains_key(*k)));
            for k in keys {
                let (x, y) = (
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                );
                if let Some(d) = first_diff(x, y, &format!("{at}/{k}")) {
                    return Some(d);
                }
            }
            None
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_diff(x, y, &format!("{at}/{i}"))),
        _ if ours == theirs => None,
        _ => {
            let short = |v: &Value| v.to_string().chars().take(300).collect::<String>();
            Some(format!(
                "{at}: ours {} vs reference {}",
                short(ours),
                short(theirs)
            ))
        }
    }
}

/// Replays the reference's recorded conversations: our bodies and headers must equal what
/// LiteLLM sent, request by request, for both protocols.
#[test]
fn bodies_equal_the_recorded_reference_requests() {
    let Some(dir) = fixtures() else {
        eprintln!("reference fixtures not found beside this checkout; skipping");
        return;
    };
    let openai_reqs = read_jsonl(&dir.join("run2-llm-requests-openai.jsonl"));
    let anthropic_reqs = read_jsonl(&dir.join("run1-llm-requests-anthropic.jsonl"));
    assert_eq!(openai_reqs.len(), anthropic_reqs.len());

    let mut oc = LlmConfig::new("openai/gpt-4o");
    oc.base_url = Some("http://127.0.0.1:9100/v1".into());
    oc.api_key = Some("sk-ant-TESTKEY".into());
    let mut ac = LlmConfig::new("anthropic/claude-sonnet-4-5-20250929");
    ac.base_url = Some("http://127.0.0.1:9100".into());
    ac.api_key = Some("sk-ant-TESTKEY".into());

    for (i, (o, a)) in openai_reqs.iter().zip(&anthropic_reqs).enumerate() {
        let (messages, tools) = from_openai_wire(&o["body"]);
        let (ep, body) = request_body(&oc, &messages, &tools, false).expect("openai body");
        assert_eq!(ep.url, "http://127.0.0.1:9100/v1/chat/completions");
        assert_eq!(
            first_diff(&body, &o["body"], ""),
            None,
            "openai request {i}"
        );
        let h = transport::headers(&oc, &ep, false).expect("headers");
        let names = [
            "authorization",
            "http-referer",
            "x-title",
            "content-type",
            "accept",
        ];
        assert_headers(&h, &o["headers"], &names);

        // Same conversation through Claude: the reference's ids and system prompt differ.
        let mut messages = messages;
        for m in &mut messages {
            for c in &mut m.tool_calls {
                c.id = c.id.replace("call_", "toolu_");
            }
            m.tool_call_id = m
                .tool_call_id
                .as_ref()
                .map(|id| id.replace("call_", "toolu_"));
            if m.role == Role::System {
                let text = a["body"]["system"][0]["text"].as_str().unwrap_or_default();
                m.content = vec![ContentPart::text(text)];
            }
        }
        let (ep, body) = request_body(&ac, &messages, &tools, false).expect("anthropic body");
        assert_eq!(ep.url, "http://127.0.0.1:9100/v1/messages");
        assert_eq!(
            first_diff(&body, &a["body"], ""),
            None,
            "anthropic request {i}"
        );
        let h = transport::headers(&ac, &ep, false).expect("headers");
        let names = [
            "x-api-key",
            "anthropic-version",
            "anthropic-beta",
            "http-referer",
            "x-title",
            "content-type",
            "accept",
        ];
        assert_headers(&h, &a["headers"], &names);
    }
}
