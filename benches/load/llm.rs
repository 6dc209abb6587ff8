//! A scripted, instant LLM: an OpenAI-compatible `chat/completions`
//! endpoint on a loopback port, run on its own thread and actix system.
//! It keeps no per-conversation state: it counts the tool results after
//! the last user message of each request and answers with the next tool
//! call of its [`Policy`] (`think`, or `terminal` with `echo`), then with
//! `finish`. Requests without tools (titles) get a short text. It records
//! how many calls it answered and how long its handler took, so that a
//! scenario can subtract the LLM's own time from a run. It never waits,
//! never streams and never fails on purpose.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actix_web::{App, HttpResponse, HttpServer, web};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;

/// Which tool calls the LLM makes before `finish`.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Tool calls per run before `finish`.
    pub steps: usize,
    /// Which of the steps use `terminal` (`echo`) instead of `think`:
    /// every one when `1`, every other when `2`, none when `0`.
    pub terminal_every: usize,
}

/// Counters of a running LLM.
#[derive(Debug, Default)]
pub struct LlmStats {
    /// Agent calls answered (requests with tools).
    pub calls: AtomicU64,
    /// Other calls answered.
    pub other_calls: AtomicU64,
    /// Total handler time, ns (parse + answer, not the HTTP layer).
    pub handler_nanos: AtomicU64,
    /// Requests that could not be parsed.
    pub bad_requests: AtomicU64,
}

/// A running scripted LLM; stopped on drop.
pub struct ScriptedLlm {
    /// Base URL for OpenAI-style models (`http://127.0.0.1:<port>/v1`).
    pub base_url: String,
    /// Counters.
    pub stats: Arc<LlmStats>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    messages: Vec<Msg>,
    tools: Option<IgnoredAny>,
    #[serde(default)]
    model: String,
}

#[derive(Deserialize)]
struct Msg {
    role: String,
}

struct Shared {
    policy: Policy,
    stats: Arc<LlmStats>,
}

impl ScriptedLlm {
    /// Starts the LLM on a free loopback port.
    pub fn start(policy: Policy) -> Result<ScriptedLlm, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("LLM bind: {e}"))?;
        let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
        let stats = Arc::new(LlmStats::default());
        let shared = web::Data::new(Shared {
            policy,
            stats: stats.clone(),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(shared.clone())
                        .app_data(web::PayloadConfig::new(256 << 20))
                        .route("/v1/chat/completions", web::post().to(complete))
                        .route("/chat/completions", web::post().to(complete))
                })
                .workers(1)
                .disable_signals()
                .listen(listener);
                match server {
                    Ok(s) => {
                        let s = s.run();
                        let _ = tx.send(Ok(s.handle()));
                        let _ = s.await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("LLM listen: {e}")));
                    }
                }
            });
        });
        let handle = rx
            .recv()
            .map_err(|_| "the LLM thread ended early".to_string())??;
        Ok(ScriptedLlm {
            base_url: format!("http://{addr}/v1"),
            stats,
            handle,
            thread: Some(thread),
        })
    }

    /// Agent calls answered so far.
    pub fn calls(&self) -> u64 {
        self.stats.calls.load(Ordering::Relaxed)
    }

    /// Handler time so far, seconds.
    pub fn handler_seconds(&self) -> f64 {
        self.stats.handler_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }
}

impl Drop for ScriptedLlm {
    fn drop(&mut self) {
        // `stop` sends the command at once; the server's thread ends when
        // its system has stopped it.
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn complete(body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let start = Instant::now();
    let stats = &shared.stats;
    let req: Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            stats.bad_requests.fetch_add(1, Ordering::Relaxed);
            return HttpResponse::BadRequest()
                .json(json!({"error": {"message": e.to_string(), "type": "invalid_request"}}));
        }
    };
    let usage = json!({"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110});
    if req.tools.is_none() {
        stats.other_calls.fetch_add(1, Ordering::Relaxed);
        return HttpResponse::Ok().json(json!({
            "id": "chatcmpl-load-title", "object": "chat.completion", "model": req.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Load test"}, "finish_reason": "stop"}],
            "usage": usage,
        }));
    }
    let n = stats.calls.fetch_add(1, Ordering::Relaxed) + 1;
    let last_user = req.messages.iter().rposition(|m| m.role == "user");
    let done = match last_user {
        Some(i) => req.messages[i + 1..]
            .iter()
            .filter(|m| m.role == "tool")
            .count(),
        None => 0,
    };
    let policy = shared.policy;
    let (name, args) = if done >= policy.steps {
        (
            "finish",
            json!({"message": format!("done after {done} steps")}),
        )
    } else if policy.terminal_every > 0 && done.is_multiple_of(policy.terminal_every) {
        (
            "terminal",
            json!({"command": format!("echo step-{done}-{n}"), "security_risk": "LOW"}),
        )
    } else {
        // A different thought each time, so stuck detection never fires.
        (
            "think",
            json!({"thought": format!("step {done} of call {n}")}),
        )
    };
    let response = json!({
        "id": format!("chatcmpl-load-{n}"), "object": "chat.completion", "model": req.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": format!("call_{n}"), "type": "function",
                            "function": {"name": name, "arguments": args.to_string()}}]},
            "finish_reason": "tool_calls"}],
        "usage": usage,
    });
    let out = HttpResponse::Ok()
        .content_type("application/json")
        .body(response.to_string());
    stats
        .handler_nanos
        .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    out
}
