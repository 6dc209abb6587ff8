//! A scripted LLM: a real HTTP server speaking the OpenAI chat-completions
//! and Anthropic messages protocols (plain JSON or SSE streams), answering
//! agent requests from a script and recording every request.
//!
//! Requests without tools (title generation, condensation) get a short text
//! answer and do not consume the script. An exhausted script answers with a
//! `finish` call so that no run can hang on it. Routes answer the requests
//! whose first user message contains a marker from a script of their own
//! (sub-agents working in parallel).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Tool calls (name, arguments) in one response, with optional text.
    Tools(Option<String>, Vec<(String, Value)>),
    /// A text-only answer.
    Text(String),
    /// An HTTP error status with a body.
    Status(u16, String),
    /// Answer after a delay.
    Delay(u64, Box<Reply>),
}

impl Reply {
    /// One tool call.
    pub fn tool(name: &str, args: Value) -> Reply {
        Reply::Tools(None, vec![(name.to_string(), args)])
    }

    /// A `finish` call.
    pub fn finish(message: &str) -> Reply {
        Reply::tool("finish", json!({"message": message}))
    }

    /// A terminal command.
    pub fn terminal(command: &str) -> Reply {
        Reply::tool(
            "terminal",
            json!({"command": command, "security_risk": "LOW"}),
        )
    }
}

#[derive(Default)]
struct Shared {
    script: VecDeque<Reply>,
    routes: Vec<(String, VecDeque<Reply>)>,
    requests: Vec<Value>,
    calls: u64,
}

/// A running scripted LLM.
pub struct ScriptedLlm {
    /// Base URL for OpenAI-style models (`…/v1`).
    pub openai_base: String,
    /// Base URL for Anthropic models (host root).
    pub anthropic_base: String,
    shared: Arc<Mutex<Shared>>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for ScriptedLlm {
    fn drop(&mut self) {
        let h = self.handle.clone();
        actix_web::rt::spawn(async move { h.stop(false).await });
    }
}

impl ScriptedLlm {
    /// Starts the server with a script.
    pub async fn start(script: Vec<Reply>) -> ScriptedLlm {
        let shared = Arc::new(Mutex::new(Shared {
            script: script.into(),
            ..Default::default()
        }));
        let data = web::Data::new(shared.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(64 << 20))
                .route("/v1/chat/completions", web::post().to(openai))
                .route("/chat/completions", web::post().to(openai))
                .route("/v1/messages", web::post().to(anthropic))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        ScriptedLlm {
            openai_base: format!("http://127.0.0.1:{port}/v1"),
            anthropic_base: format!("http://127.0.0.1:{port}"),
            shared,
            handle,
        }
    }

    /// Every request received so far (bodies, with a `_path` and `_headers` member added).
    pub fn requests(&self) -> Vec<Value> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// Agent requests (with tools) received so far.
    pub fn agent_requests(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.get("tools").is_some())
            .collect()
    }

    /// Answers requests whose first user message contains `marker` from `replies`
    /// (then, once they are used up, with a `finish` call).
    pub fn route(&self, marker: &str, replies: Vec<Reply>) {
        self.shared
            .lock()
            .unwrap()
            .routes
            .push((marker.to_string(), replies.into()));
    }

    /// Answers still in the script.
    pub fn remaining(&self) -> usize {
        self.shared.lock().unwrap().script.len()
    }
}

fn record(
    shared: &Arc<Mutex<Shared>>,
    path: &str,
    req: &actix_web::HttpRequest,
    body: &Value,
) -> (Option<Reply>, u64) {
    let mut s = shared.lock().unwrap();
    let mut rec = body.clone();
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                Value::String(v.to_str().unwrap_or("").to_string()),
            )
        })
        .collect();
    rec["_path"] = json!(path);
    rec["_headers"] = Value::Object(headers);
    s.requests.push(rec);
    s.calls += 1;
    let n = s.calls;
    if body.get("tools").is_none() {
        return (Some(Reply::Text("Scripted title".into())), n);
    }
    let first_user = body["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "user"))
        .map(|m| m["content"].to_string())
        .unwrap_or_default();
    if let Some((_, replies)) = s
        .routes
        .iter_mut()
        .find(|(marker, _)| first_user.contains(marker.as_str()))
    {
        let reply = replies
            .pop_front()
            .unwrap_or_else(|| Reply::finish("route exhausted"));
        return (Some(reply), n);
    }
    (
        Some(
            s.script
                .pop_front()
                .unwrap_or_else(|| Reply::finish("script exhausted")),
        ),
        n,
    )
}

async fn resolve(mut reply: Reply) -> Reply {
    while let Reply::Delay(ms, inner) = reply {
        actix_web::rt::time::sleep(Duration::from_millis(ms)).await;
        reply = *inner;
    }
    reply
}

fn sse(events: Vec<String>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .body(events.concat())
}

async fn openai(
    req: actix_web::HttpRequest,
    body: web::Json<Value>,
    shared: web::Data<Arc<Mutex<Shared>>>,
) -> HttpResponse {
    let (reply, n) = record(&shared, req.path(), &req, &body);
    let reply = resolve(reply.unwrap_or(Reply::Text(String::new()))).await;
    let id = format!("chatcmpl-scripted-{n}");
    let usage = json!({"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110});
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let (content, calls) = match reply {
        Reply::Status(code, text) => {
            return HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap())
                .json(json!({"error": {"message": text, "type": "scripted_error"}}));
        }
        Reply::Text(t) => (Some(t), vec![]),
        Reply::Tools(t, calls) => (t, calls),
        Reply::Delay(..) => unreachable!("resolved above"),
    };
    let tool_calls: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(i, (name, args))| {
            json!({"id": format!("call_{n}_{i}"), "type": "function",
                   "function": {"name": name, "arguments": args.to_string()}})
        })
        .collect();
    if !stream {
        let mut message = json!({"role": "assistant", "content": content});
        if !tool_calls.is_empty() {
            message["tool_calls"] = Value::Array(tool_calls);
        }
        return HttpResponse::Ok().json(json!({
            "id": id, "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": usage,
        }));
    }
    let mut events = vec![];
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": id, "object": "chat.completion.chunk", "model": body["model"],
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    if let Some(t) = &content {
        for piece in t.as_bytes().chunks(5) {
            events.push(chunk(
                json!({"content": String::from_utf8_lossy(piece)}),
                Value::Null,
            ));
        }
    }
    for (i, c) in tool_calls.iter().enumerate() {
        let args = c["function"]["arguments"].as_str().unwrap().to_string();
        events.push(chunk(
            json!({"tool_calls": [{"index": i, "id": c["id"], "type": "function", "function": {"name": c["function"]["name"], "arguments": ""}}]}),
            Value::Null,
        ));
        for piece in args.as_bytes().chunks(7) {
            events.push(chunk(
                json!({"tool_calls": [{"index": i, "function": {"arguments": String::from_utf8_lossy(piece)}}]}),
                Value::Null,
            ));
        }
    }
    events.push(chunk(json!({}), json!("stop")));
    events.push(format!(
        "data: {}\n\n",
        json!({"id": id, "object": "chat.completion.chunk", "model": body["model"], "choices": [], "usage": usage})
    ));
    events.push("data: [DONE]\n\n".into());
    sse(events)
}

async fn anthropic(
    req: actix_web::HttpRequest,
    body: web::Json<Value>,
    shared: web::Data<Arc<Mutex<Shared>>>,
) -> HttpResponse {
    let (reply, n) = record(&shared, req.path(), &req, &body);
    let reply = resolve(reply.unwrap_or(Reply::Text(String::new()))).await;
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let (content, calls) = match reply {
        Reply::Status(code, text) => {
            return HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap()).json(
                json!({"type": "error", "error": {"type": "scripted_error", "message": text}}),
            );
        }
        Reply::Text(t) => (Some(t), vec![]),
        Reply::Tools(t, calls) => (t, calls),
        Reply::Delay(..) => unreachable!("resolved above"),
    };
    let mut blocks = vec![];
    if let Some(t) = &content {
        blocks.push(json!({"type": "text", "text": t}));
    }
    for (i, (name, args)) in calls.iter().enumerate() {
        blocks.push(json!({"type": "tool_use", "id": format!("toolu_{n}_{i}"), "name": name, "input": args}));
    }
    let usage = json!({"input_tokens": 100, "output_tokens": 10});
    if !stream {
        return HttpResponse::Ok().json(json!({
            "id": format!("msg_{n}"), "type": "message", "role": "assistant", "model": body["model"],
            "content": blocks, "stop_reason": if calls.is_empty() { "end_turn" } else { "tool_use" },
            "usage": usage,
        }));
    }
    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut events = vec![ev(
        "message_start",
        json!({"type": "message_start", "message": {"id": format!("msg_{n}"), "type": "message", "role": "assistant",
               "model": body["model"], "content": [], "usage": {"input_tokens": 100, "output_tokens": 0}}}),
    )];
    for (i, b) in blocks.iter().enumerate() {
        if b["type"] == "text" {
            events.push(ev("content_block_start", json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})));
            let text = b["text"].as_str().unwrap();
            for piece in text.as_bytes().chunks(5) {
                events.push(ev(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": i,
                    "delta": {"type": "text_delta", "text": String::from_utf8_lossy(piece)}}),
                ));
            }
        } else {
            events.push(ev("content_block_start", json!({"type": "content_block_start", "index": i,
                "content_block": {"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}})));
            let args = b["input"].to_string();
            for piece in args.as_bytes().chunks(7) {
                events.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": i,
                    "delta": {"type": "input_json_delta", "partial_json": String::from_utf8_lossy(piece)}})));
            }
        }
        events.push(ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": i}),
        ));
    }
    events.push(ev("message_delta", json!({"type": "message_delta",
        "delta": {"stop_reason": if calls.is_empty() { "end_turn" } else { "tool_use" }}, "usage": {"output_tokens": 10}})));
    events.push(ev("message_stop", json!({"type": "message_stop"})));
    sse(events)
}
