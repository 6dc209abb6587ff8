//! `GET /metrics`: the process's counters in the Prometheus text exposition
//! format (version 0.0.4), outside `/api` like `/health`.
//!
//! Everything rendered is already counted elsewhere (atomics in
//! [`Counters`], the status index kept by the conversation actors, a few
//! files under `/proc/self`); a scrape never scans the store. Labels carry
//! fixed names only — the one value that comes from data is a conversation's
//! execution status, itself one of a fixed set — so no user input and no
//! conversation id ever reaches a scraper. Exposure is configured by
//! `[metrics]`: `enabled` (else 404) and `require_key`.

use std::fmt::{Display, Write as _};
use std::sync::atomic::AtomicU64;

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use agent_actors::metrics::{Counters, HistogramSnapshot, WsFailure};
use agent_actors::model::conversation::ExecutionStatus;

use crate::error::ApiError;
use crate::state::AppState;

/// Prometheus' content type for the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Statuses a stored conversation can have (`deleting` is never stored).
const STATUSES: [ExecutionStatus; 7] = [
    ExecutionStatus::Idle,
    ExecutionStatus::Running,
    ExecutionStatus::Paused,
    ExecutionStatus::WaitingForConfirmation,
    ExecutionStatus::Finished,
    ExecutionStatus::Error,
    ExecutionStatus::Stuck,
];

/// Registers `GET /metrics`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/metrics")
            .route(web::get().to(metrics))
            .default_service(web::to(crate::routes::method_not_allowed)),
    );
}

/// Whether the request carries a valid session key, in `X-Session-API-Key`
/// or as `Authorization: Bearer <key>` (what Prometheus' `authorization`
/// scrape setting sends).
fn authorized(req: &HttpRequest, state: &AppState) -> bool {
    let access = state.access.get();
    if !access.enabled() {
        return true;
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let from_header = header("x-session-api-key");
    let from_bearer = header("authorization").and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
    });
    [from_header, from_bearer]
        .into_iter()
        .flatten()
        .any(|k| access.accepts(k.trim()))
}

/// Prometheus metrics (text exposition format).
///
/// Counts of conversations by status, live actors, runs, events, sockets,
/// restarts, evictions, LLM calls and latency, tokens, bash commands, HTTP
/// requests, and process memory, file descriptors, CPU and uptime.
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let cfg = &state.settings.metrics;
    if !cfg.enabled {
        return ApiError::not_found().error_response();
    }
    if cfg.require_key && !authorized(&req, &state) {
        return ApiError::unauthorized().error_response();
    }
    // Reads a few /proc files and walks the store's small catalog.
    let rendered = web::block(move || render(&state)).await;
    match rendered {
        Ok(text) => HttpResponse::Ok().content_type(CONTENT_TYPE).body(text),
        Err(e) => {
            log::error!("rendering /metrics failed: {e}");
            ApiError::internal("metrics unavailable").error_response()
        }
    }
}

/// The text of one scrape.
pub fn render(state: &AppState) -> String {
    let c = &state.counters;
    let mut out = Exposition::default();

    out.family(
        "agent_server_build_info",
        "gauge",
        "Always 1; the labels name the server version and the API version it implements.",
    );
    out.sample(
        "agent_server_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("api_version", crate::routes::server::API_VERSION),
        ],
        1,
    );
    let uptime = state.started.elapsed().as_secs_f64();
    out.gauge(
        "agent_server_uptime_seconds",
        "Seconds since the server started.",
        uptime,
    );
    process_metrics(&mut out, uptime);

    out.family(
        "agent_server_conversations",
        "gauge",
        "Stored conversations by execution status.",
    );
    let mut counts: Vec<(String, u64)> = vec![];
    for (_, summary) in state.store.summaries().flatten() {
        match counts.iter_mut().find(|(s, _)| *s == summary.status) {
            Some((_, n)) => *n += 1,
            None => counts.push((summary.status, 1)),
        }
    }
    for status in STATUSES {
        let n = counts
            .iter()
            .find(|(s, _)| s == status.as_str())
            .map_or(0, |(_, n)| *n);
        out.sample(
            "agent_server_conversations",
            &[("status", status.as_str())],
            n,
        );
    }
    out.gauge(
        "agent_server_conversation_actors",
        "Conversation actors in memory (the rest are evicted or never loaded).",
        Counters::get(&c.conversation_actors),
    );
    out.counter(
        "agent_server_conversation_evictions_total",
        "Conversation actors stopped after conversations.idle_eviction_seconds without activity.",
        &c.evictions,
    );
    out.counter(
        "agent_server_events_appended_total",
        "Events appended to conversation logs.",
        &c.events_appended,
    );

    out.counter(
        "agent_server_runs_started_total",
        "Agent runs started.",
        &c.runs_started,
    );
    out.gauge(
        "agent_server_runs_active",
        "Agent runs executing now.",
        Counters::get(&c.runs_active),
    );
    out.gauge(
        "agent_server_runs_waiting",
        "Agent runs waiting for a slot (max_concurrent_runs).",
        Counters::get(&c.runs_waiting),
    );

    out.family(
        "agent_server_actor_restarts_total",
        "counter",
        "Actor failures recovered: supervisor restarts of conversation, bash command and registry actors, and conversation actors respawned by the registry after a panic.",
    );
    for (actor, n) in [
        ("conversation", &c.actor_restarts),
        ("conversation_respawn", &c.conversation_respawns),
        ("bash_command", &c.bash_restarts),
        ("registry", &c.registry_restarts),
    ] {
        out.sample(
            "agent_server_actor_restarts_total",
            &[("actor", actor)],
            Counters::get(n),
        );
    }

    out.family(
        "agent_server_websocket_connections",
        "gauge",
        "WebSocket connections open now, by socket.",
    );
    for (socket, n) in [
        ("events", &c.ws_subscribers),
        ("bash", &c.ws_bash_subscribers),
    ] {
        out.sample(
            "agent_server_websocket_connections",
            &[("socket", socket)],
            Counters::get(n),
        );
    }
    out.family(
        "agent_server_websocket_failures_total",
        "counter",
        "WebSocket sessions ended by a failure, by reason.",
    );
    for why in WsFailure::ALL {
        out.sample(
            "agent_server_websocket_failures_total",
            &[("reason", why.as_str())],
            c.ws_failures(why),
        );
    }

    out.counter(
        "agent_server_llm_calls_total",
        "LLM calls made by agent runs (retries inside one call count once).",
        &c.llm_calls,
    );
    out.counter(
        "agent_server_llm_errors_total",
        "Agent LLM calls that failed after their retries.",
        &c.llm_errors,
    );
    out.histogram(
        "agent_server_llm_call_duration_seconds",
        "Wall time of agent LLM calls, retries included, successful or not.",
        &c.llm_duration.snapshot(),
    );
    out.family(
        "agent_server_llm_tokens_total",
        "counter",
        "Tokens reported by the LLM provider, by type.",
    );
    for (kind, n) in [
        ("prompt", &c.llm_prompt_tokens),
        ("completion", &c.llm_completion_tokens),
    ] {
        out.sample(
            "agent_server_llm_tokens_total",
            &[("type", kind)],
            Counters::get(n),
        );
    }

    for (name, help, events, infos) in [
        (
            "agent_server_webhook_deliveries_total",
            "Webhook requests answered 2xx, by kind (events or conversations).",
            &c.webhook_event_deliveries,
            &c.webhook_info_deliveries,
        ),
        (
            "agent_server_webhook_failures_total",
            "Webhook requests that still failed after their retries, by kind.",
            &c.webhook_event_failures,
            &c.webhook_info_failures,
        ),
        (
            "agent_server_webhook_dropped_total",
            "Events and conversation notifications dropped by the webhook queue bounds (max_queue_size, max_queue_bytes; oldest first), or still held when a closing feed's last flush failed, by kind.",
            &c.webhook_events_dropped,
            &c.webhook_infos_dropped,
        ),
    ] {
        out.family(name, "counter", help);
        out.sample(name, &[("kind", "events")], Counters::get(events));
        out.sample(name, &[("kind", "conversations")], Counters::get(infos));
    }

    out.counter(
        "agent_server_bash_commands_started_total",
        "Commands started through the bash API.",
        &c.bash_commands,
    );
    out.gauge(
        "agent_server_bash_commands_running",
        "Bash API commands running now.",
        Counters::get(&c.bash_running),
    );

    out.counter(
        "agent_server_http_requests_total",
        "HTTP requests received (WebSocket handshakes included).",
        &c.http_requests,
    );
    out.gauge(
        "agent_server_http_requests_in_flight",
        "HTTP requests being handled now.",
        Counters::get(&c.http_in_flight),
    );
    out.text
}

/// Standard `process_*` metrics from `/proc/self` (Linux); left out where
/// the files do not exist.
fn process_metrics(out: &mut Exposition, uptime: f64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    out.gauge(
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch, seconds.",
        (now - uptime).max(0.0).round(),
    );
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let resident = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok());
    if let Some(pages) = resident
        && page > 0
    {
        out.gauge(
            "process_resident_memory_bytes",
            "Resident memory size, bytes.",
            pages.saturating_mul(page as u64),
        );
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        out.gauge(
            "process_open_fds",
            "Open file descriptors.",
            dir.count().saturating_sub(1),
        );
    }
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| cpu_ticks(&s));
    if let Some(t) = cpu
        && ticks > 0
    {
        out.family(
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time, seconds.",
        );
        out.sample("process_cpu_seconds_total", &[], t as f64 / ticks as f64);
    }
}

/// utime + stime from `/proc/<pid>/stat` (fields 14 and 15; the command
/// name in field 2 may contain spaces, so count from its closing paren).
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Text exposition builder.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    fn gauge(&mut self, name: &str, help: &str, value: impl Display) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    fn counter(&mut self, name: &str, help: &str, value: &AtomicU64) {
        self.family(name, "counter", help);
        self.sample(name, &[], Counters::get(value));
    }

    fn histogram(&mut self, name: &str, help: &str, h: &HistogramSnapshot) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (bound, n) in &h.buckets {
            self.sample(&bucket, &[("le", &bound.to_string())], n);
        }
        self.sample(&bucket, &[("le", "+Inf")], h.count);
        self.sample(&format!("{name}_sum"), &[], h.sum_seconds);
        self.sample(&format!("{name}_count"), &[], h.count);
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_and_escaping() {
        let mut e = Exposition::default();
        e.family("x_total", "counter", "Line one\nline two.");
        e.sample("x_total", &[("a", "q\"uo\\te\n")], 3);
        e.sample("x_total", &[], 1.5);
        assert_eq!(
            e.text,
            "# HELP x_total Line one\\nline two.\n# TYPE x_total counter\n\
             x_total{a=\"q\\\"uo\\\\te\\n\"} 3\nx_total 1.5\n"
        );
    }

    #[test]
    fn histogram_lines() {
        let mut e = Exposition::default();
        let h = HistogramSnapshot {
            buckets: vec![(0.5, 1), (1.0, 2)],
            count: 3,
            sum_seconds: 4.25,
        };
        e.histogram("d_seconds", "D.", &h);
        assert!(e.text.contains("d_seconds_bucket{le=\"0.5\"} 1\n"));
        assert!(e.text.contains("d_seconds_bucket{le=\"1\"} 2\n"));
        assert!(e.text.contains("d_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(e.text.ends_with("d_seconds_sum 4.25\nd_seconds_count 3\n"));
    }

    #[test]
    fn cpu_from_stat() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 9 0 0";
        assert_eq!(cpu_ticks(stat), Some(12));
        assert_eq!(cpu_ticks("garbage"), None);
    }
}
