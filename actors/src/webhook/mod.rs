//! Webhooks: the server POSTs conversation events and conversation info to
//! the services configured in `webhooks` (the reference's `WebhookSpec`).
//!
//! Two deliveries per configured spec:
//! - **events** ([`events`]): one feed per conversation and spec, a bounded
//!   subscriber of the conversation actor, batching events into
//!   `POST {base_url}/events/{conversation hex id}`;
//! - **conversation info** ([`conversations`]): one actor for the server,
//!   posting `ConversationInfo` to `POST {base_url}/conversations` after a
//!   create, pause, interrupt, update or delete.
//!
//! Everything here is fire-and-forget for the code that triggers it: nothing
//! waits for a webhook except a graceful shutdown (bounded by its timeout).
//! Every queue is bounded by count and bytes and sheds its oldest items with a
//! warning; each feed has one request in flight at a time. Nothing here logs
//! a header value or a session key.

pub mod conversations;
pub mod events;
pub mod queue;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::Uuid;
use crate::metrics::Counters;

/// Header carrying the server's session key to the webhook service.
pub const SESSION_KEY_HEADER: &str = "X-Session-API-Key";

/// Time limit of one webhook request, as in the reference.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest delay accepted for `flush_delay` and `retry_delay` (a year).
const MAX_DELAY_SECS: f64 = 31_536_000.0;

/// One configured webhook service (an item of `webhooks`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// Events go to `{base_url}/events/{conversation hex id}`, conversation
    /// info to `{base_url}/conversations`. Required; `http` or `https`.
    pub base_url: String,
    /// Events per request: a request leaves as soon as this many are queued.
    #[serde(default = "default_event_buffer_size")]
    pub event_buffer_size: usize,
    /// Extra headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Seconds after the first queued event before a partial batch leaves
    /// (later events do not push the deadline back).
    #[serde(default = "default_flush_delay")]
    pub flush_delay: f64,
    /// Further attempts after a failed request (non-2xx, error, timeout).
    #[serde(default = "default_num_retries")]
    pub num_retries: u32,
    /// Seconds between attempts.
    #[serde(default = "default_retry_delay")]
    pub retry_delay: u64,
    /// Most events (or conversation notifications) queued per conversation
    /// feed (or for the whole server); the oldest are dropped beyond it.
    #[serde(default = "default_max_queue_size")]
    pub max_queue_size: usize,
    /// Most bytes queued, counted as serialized JSON; the oldest items are
    /// dropped beyond it (field of the reference after 1.24.0).
    #[serde(default = "default_max_queue_bytes")]
    pub max_queue_bytes: usize,
    /// Largest request body in bytes; a single larger event is sent on its
    /// own (field of the reference after 1.24.0).
    #[serde(default = "default_max_batch_bytes")]
    pub max_batch_bytes: usize,
}

fn default_event_buffer_size() -> usize {
    5
}
fn default_flush_delay() -> f64 {
    30.0
}
fn default_num_retries() -> u32 {
    3
}
fn default_retry_delay() -> u64 {
    5
}
fn default_max_queue_size() -> usize {
    1000
}
fn default_max_queue_bytes() -> usize {
    50 << 20
}
fn default_max_batch_bytes() -> usize {
    5 << 20
}

impl std::fmt::Debug for WebhookSpec {
    // Header values are often credentials: only their names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSpec")
            .field("base_url", &redacted_url(&self.base_url))
            .field("event_buffer_size", &self.event_buffer_size)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("flush_delay", &self.flush_delay)
            .field("num_retries", &self.num_retries)
            .field("retry_delay", &self.retry_delay)
            .field("max_queue_size", &self.max_queue_size)
            .field("max_queue_bytes", &self.max_queue_bytes)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .finish()
    }
}

impl WebhookSpec {
    /// A spec with the reference's defaults for everything but `base_url`.
    pub fn new(base_url: &str) -> WebhookSpec {
        WebhookSpec {
            base_url: base_url.to_string(),
            event_buffer_size: default_event_buffer_size(),
            headers: BTreeMap::new(),
            flush_delay: default_flush_delay(),
            num_retries: default_num_retries(),
            retry_delay: default_retry_delay(),
            max_queue_size: default_max_queue_size(),
            max_queue_bytes: default_max_queue_bytes(),
            max_batch_bytes: default_max_batch_bytes(),
        }
    }

    /// Reads a spec from JSON, refusing unknown fields; the error names the
    /// field.
    pub fn from_json(value: Value) -> Result<WebhookSpec, String> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.inner().to_string();
            // "unknown field `x`" names the field already.
            if path == "." || path.is_empty() || inner.starts_with("unknown field") {
                inner
            } else {
                format!("{path}: {inner}")
            }
        })
    }

    /// Checks the constraints of every field; the error starts with the
    /// field's name.
    pub fn validate(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.base_url)
            .map_err(|e| format!("base_url: '{}' is not a URL ({e})", self.base_url))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "base_url: '{}' must be an http:// or https:// URL with a host",
                redacted_url(&self.base_url)
            ));
        }
        if self.event_buffer_size == 0 {
            return Err("event_buffer_size: must be at least 1".into());
        }
        if !(self.flush_delay > 0.0 && self.flush_delay <= MAX_DELAY_SECS) {
            return Err(format!(
                "flush_delay: must be greater than 0 and at most {MAX_DELAY_SECS} seconds"
            ));
        }
        if self.retry_delay as f64 > MAX_DELAY_SECS {
            return Err(format!(
                "retry_delay: must be at most {MAX_DELAY_SECS} seconds"
            ));
        }
        if self.max_queue_size == 0 {
            return Err("max_queue_size: must be at least 1".into());
        }
        if self.max_queue_bytes == 0 {
            return Err("max_queue_bytes: must be at least 1".into());
        }
        if self.max_batch_bytes == 0 {
            return Err("max_batch_bytes: must be at least 1".into());
        }
        for (name, value) in &self.headers {
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("headers: '{name}' is not a valid header name"))?;
            HeaderValue::from_str(value).map_err(|_| {
                format!("headers: the value of '{name}' is not a valid header value")
            })?;
        }
        Ok(())
    }

    /// The flush delay as a duration.
    pub fn flush_delay(&self) -> Duration {
        Duration::from_secs_f64(self.flush_delay.clamp(0.001, MAX_DELAY_SECS))
    }
}

/// A URL as it may appear in logs: scheme, host and port only (user info,
/// paths and queries can carry credentials).
pub fn redacted_url(raw: &str) -> String {
    match reqwest::Url::parse(raw) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{}://{h}:{p}", u.scheme()),
            (Some(h), None) => format!("{}://{h}", u.scheme()),
            _ => format!("{}:…", u.scheme()),
        },
        Err(_) => "<invalid URL>".into(),
    }
}

/// Where the session key for the `X-Session-API-Key` header comes from: the
/// first configured key, read at each request so that a key rotation (SIGHUP)
/// reaches webhook requests without a restart.
pub type KeySource = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// One spec, ready to send: its URLs and headers prepared once.
#[derive(Debug)]
pub struct Target {
    /// The configuration.
    pub spec: WebhookSpec,
    /// `base_url` without trailing slashes.
    base: String,
    /// For log lines (no credentials).
    pub label: String,
    headers: HeaderMap,
}

impl Target {
    fn new(spec: WebhookSpec) -> Target {
        let mut headers = HeaderMap::new();
        for (name, value) in &spec.headers {
            // Validated at start-up; an invalid pair is skipped, never sent half-formed.
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(n, v);
            }
        }
        Target {
            base: spec.base_url.trim_end_matches('/').to_string(),
            label: redacted_url(&spec.base_url),
            headers,
            spec,
        }
    }

    /// `{base_url}/events/{conversation hex id}`.
    pub fn events_url(&self, conversation: &Uuid) -> String {
        format!("{}/events/{}", self.base, conversation.simple())
    }

    /// `{base_url}/conversations`.
    pub fn conversations_url(&self) -> String {
        format!("{}/conversations", self.base)
    }
}

/// Sends webhook requests: one JSON POST with the spec's headers and the
/// session key, retried as the spec says.
#[derive(Clone)]
pub struct Poster {
    client: reqwest::Client,
    key: KeySource,
}

impl std::fmt::Debug for Poster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Poster")
    }
}

impl Poster {
    /// A poster using `client` (see [`client`]) and the key from `key`.
    pub fn new(client: reqwest::Client, key: KeySource) -> Poster {
        Poster { client, key }
    }

    async fn attempt(&self, target: &Target, url: &str, body: String) -> Result<(), String> {
        let mut request = self
            .client
            .post(url)
            .timeout(REQUEST_TIMEOUT)
            .headers(target.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = (self.key)() {
            request = request.header(SESSION_KEY_HEADER, key);
        }
        match request.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("answered {}", r.status())),
            Err(e) if e.is_timeout() => {
                Err(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()))
            }
            Err(e) if e.is_connect() => Err("connection failed".into()),
            Err(e) => Err(e.without_url().to_string()),
        }
    }

    /// POSTs `body` to `url`, with `num_retries` further attempts
    /// `retry_delay` apart; `Err` carries the last failure.
    pub async fn post(&self, target: &Target, url: &str, body: &str) -> Result<(), String> {
        let attempts = u64::from(target.spec.num_retries) + 1;
        let mut last = String::new();
        for attempt in 1..=attempts {
            match self.attempt(target, url, body.to_string()).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    log::debug!(
                        "webhook {}: attempt {attempt} of {attempts} failed: {e}",
                        target.label
                    );
                    last = e;
                }
            }
            if attempt < attempts {
                tokio::time::sleep(Duration::from_secs(target.spec.retry_delay)).await;
            }
        }
        Err(format!("{last} (after {attempts} attempt(s))"))
    }
}

/// The HTTP client for webhooks: redirects are not followed (a 3xx is a
/// failed delivery, as in the reference), connections time out after 30 s.
pub fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))
}

/// The webhooks of this server, shared by the registry and the conversation
/// actors. Cheap to clone; empty (and free) when no webhook is configured.
#[derive(Clone, Default)]
pub struct Webhooks {
    inner: Option<Arc<Shared>>,
}

struct Shared {
    targets: Vec<Arc<Target>>,
    poster: Poster,
    notifier: Addr<conversations::ConversationWebhooks>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let labels: Vec<&str> = self
            .inner
            .iter()
            .flat_map(|s| s.targets.iter().map(|t| t.label.as_str()))
            .collect();
        f.debug_struct("Webhooks")
            .field("targets", &labels)
            .finish()
    }
}

impl Webhooks {
    /// No webhooks.
    pub fn none() -> Webhooks {
        Webhooks::default()
    }

    /// Starts the conversation notifier (on the current arbiter) for
    /// `specs`, which must have been validated. Empty `specs`: no webhooks.
    pub fn start(
        specs: &[WebhookSpec],
        client: reqwest::Client,
        key: KeySource,
        counters: Arc<Counters>,
    ) -> Webhooks {
        if specs.is_empty() {
            return Webhooks::none();
        }
        let targets: Vec<Arc<Target>> = specs
            .iter()
            .cloned()
            .map(|s| Arc::new(Target::new(s)))
            .collect();
        let poster = Poster::new(client, key);
        let notifier = {
            let (targets, poster, counters) = (targets.clone(), poster.clone(), counters.clone());
            Supervisor::start(move |_| {
                conversations::ConversationWebhooks::new(targets, poster, counters)
            })
        };
        Webhooks {
            inner: Some(Arc::new(Shared {
                targets,
                poster,
                notifier,
                counters,
            })),
        }
    }

    /// Whether no webhook is configured.
    pub fn is_empty(&self) -> bool {
        self.inner.is_none()
    }

    /// Starts one event feed per spec for a conversation; the caller sends
    /// the initial `full_state` frame first, then registers the feeds with
    /// its publisher. Must run on an arbiter (the feeds are spawned there).
    pub fn event_feeds(&self, conversation: Uuid) -> Vec<events::EventFeed> {
        let Some(shared) = &self.inner else {
            return vec![];
        };
        shared
            .targets
            .iter()
            .map(|t| {
                events::EventFeed::start(
                    t.clone(),
                    shared.poster.clone(),
                    shared.counters.clone(),
                    conversation,
                )
            })
            .collect()
    }

    /// Queues `info` (a `ConversationInfo`) for every spec's
    /// `/conversations`; returns at once.
    pub fn conversation_changed(&self, id: Uuid, info: &Value) {
        if let Some(shared) = &self.inner {
            shared.notifier.do_send(conversations::PostInfo {
                id,
                body: Arc::from(info.to_string()),
            });
        }
    }

    /// Resolves once every queued conversation notification was delivered
    /// or given up (graceful shutdown; the caller bounds the wait).
    pub async fn drain(&self) {
        if let Some(shared) = &self.inner {
            let _ = shared.notifier.send(conversations::Drain).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_the_references() {
        let s = WebhookSpec::from_json(json!({"base_url": "http://127.0.0.1:9/hooks"})).unwrap();
        assert_eq!(s, WebhookSpec::new("http://127.0.0.1:9/hooks"));
        assert_eq!(
            (
                s.event_buffer_size,
                s.flush_delay,
                s.num_retries,
                s.retry_delay,
                s.max_queue_size
            ),
            (5, 30.0, 3, 5, 1000)
        );
        assert_eq!((s.max_queue_bytes, s.max_batch_bytes), (50 << 20, 5 << 20));
        assert!(s.headers.is_empty());
        s.validate().unwrap();
    }

    #[test]
    fn bad_specs_name_the_field() {
        let err = |v: Value| {
            WebhookSpec::from_json(v)
                .and_then(|s| s.validate().map(|()| s))
                .unwrap_err()
        };
        assert!(err(json!({})).contains("base_url"), "{}", err(json!({})));
        let e = err(json!({"base_url": "http://h", "flush_dealy": 1}));
        assert!(e.contains("flush_dealy"), "{e}");
        let e = err(json!({"base_url": "http://h", "num_retries": -1}));
        assert!(e.starts_with("num_retries"), "{e}");
        for (field, value) in [
            ("event_buffer_size", json!(0)),
            ("flush_delay", json!(0)),
            ("flush_delay", json!(-1.5)),
            ("max_queue_size", json!(0)),
            ("max_queue_bytes", json!(0)),
            ("max_batch_bytes", json!(0)),
        ] {
            let mut v = json!({"base_url": "http://h"});
            v[field] = value;
            assert!(err(v).starts_with(field), "{field}");
        }
        assert!(err(json!({"base_url": "ftp://h"})).starts_with("base_url"));
        assert!(err(json!({"base_url": "not a url"})).starts_with("base_url"));
        let e = err(json!({"base_url": "http://h", "headers": {"bad name": "x"}}));
        assert!(e.starts_with("headers"), "{e}");
        let e = err(json!({"base_url": "http://h", "headers": {"X-A": "line\nbreak"}}));
        assert!(e.starts_with("headers") && !e.contains("line"), "{e}");
    }

    #[test]
    fn debug_and_labels_hide_credentials() {
        let mut s = WebhookSpec::new("https://user:pw@hooks.example.com:8443/p?token=t");
        s.headers
            .insert("Authorization".into(), "Bearer sekrit".into());
        let shown = format!("{s:?}");
        assert!(!shown.contains("sekrit") && !shown.contains("pw") && !shown.contains("token"));
        assert!(shown.contains("Authorization"));
        assert_eq!(redacted_url(&s.base_url), "https://hooks.example.com:8443");
    }

    #[test]
    fn urls_are_joined_without_double_slashes() {
        let t = Target::new(WebhookSpec::new("http://h:1/base/"));
        let id = Uuid::parse("0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(
            t.events_url(&id),
            "http://h:1/base/events/0123456789abcdef0123456789abcdef"
        );
        assert_eq!(t.conversations_url(), "http://h:1/base/conversations");
    }
}
