//! One HTTP attempt: headers, the POST, the per-request (or per-read, for streams) timeout,
//! status classification, and handing the body or the SSE events to the protocol module.
//! It never retries (that is `retry`) and never logs header values: the API key lives only
//! in a header marked sensitive.

use std::pin::pin;
use std::time::Instant;

use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use serde_json::Value;

use super::anthropic;
use super::config::LlmConfig;
use super::error::{LlmError, from_reqwest, from_status, redact};
use super::openai;
use super::provider::{Auth, Endpoint, Protocol, uses_extended_thinking};
use super::sse::{SseEvent, SseParser};
use super::types::{LlmResponse, StreamDelta};

const AGENT: &str = "openhands-agent-server-rs";

/// Builds the request headers once per call, so a bad header fails before any attempt.
pub fn headers(cfg: &LlmConfig, ep: &Endpoint, stream: bool) -> Result<HeaderMap, LlmError> {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(
        ACCEPT,
        HeaderValue::from_static(if stream {
            "text/event-stream"
        } else {
            "application/json"
        }),
    );
    h.insert(USER_AGENT, HeaderValue::from_static(AGENT));
    if let Some(key) = &cfg.api_key {
        let mut v = HeaderValue::from_str(&match ep.auth {
            Auth::Bearer => format!("Bearer {key}"),
            Auth::XApiKey | Auth::AzureApiKey => key.clone(),
        })
        .map_err(|_| LlmError::Config("llm.api_key is not a valid HTTP header value".into()))?;
        v.set_sensitive(true);
        let name = match ep.auth {
            Auth::Bearer => "authorization",
            Auth::XApiKey => "x-api-key",
            Auth::AzureApiKey => "api-key",
        };
        h.insert(HeaderName::from_static(name), v);
    }
    if ep.protocol == Protocol::Anthropic {
        h.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(anthropic::API_VERSION),
        );
    }
    if uses_extended_thinking(&cfg.model) {
        h.insert(
            HeaderName::from_static("anthropic-beta"),
            HeaderValue::from_static(anthropic::THINKING_BETA),
        );
    }
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if !cfg.openrouter_site_url.is_empty() {
        extra.push(("HTTP-Referer", &cfg.openrouter_site_url));
    }
    if !cfg.openrouter_app_name.is_empty() {
        extra.push(("X-Title", &cfg.openrouter_app_name));
    }
    extra.extend(
        cfg.extra_headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    for (name, value) in extra {
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            LlmError::Config(format!(
                "llm header name `{name}` is not a valid HTTP header"
            ))
        })?;
        let v = HeaderValue::from_str(value).map_err(|_| {
            LlmError::Config(format!(
                "llm header `{name}` has a value that is not valid in HTTP"
            ))
        })?;
        h.insert(n, v);
    }
    Ok(h)
}

fn timed_out(cfg: &LlmConfig, ep: &Endpoint, what: &str) -> LlmError {
    LlmError::Timeout(format!(
        "litellm.Timeout: {}Exception - {what} within {} seconds (llm.timeout)",
        ep.provider,
        cfg.timeout.as_secs_f64()
    ))
}

fn malformed(ep: &Endpoint, err: &serde_json::Error, raw: &str, key: Option<&str>) -> LlmError {
    let shown: String = raw.chars().take(500).collect();
    LlmError::InternalServer(redact(
        &format!(
            "litellm.InternalServerError: {}Exception - the response is not valid JSON ({err}): {shown}",
            ep.provider
        ),
        key,
    ))
}

fn parse_body(ep: &Endpoint, raw: &str, key: Option<&str>) -> Result<LlmResponse, LlmError> {
    let v: Value = serde_json::from_str(raw).map_err(|e| malformed(ep, &e, raw, key))?;
    match ep.protocol {
        Protocol::Anthropic => anthropic::parse_response(&v, raw, ep, key),
        Protocol::OpenAiChat => openai::parse_response(&v, raw, ep, key),
    }
}

/// The stream accumulator of either protocol.
enum StreamState {
    OpenAi(openai::StreamState),
    Anthropic(anthropic::StreamState),
}

impl StreamState {
    fn on_event(
        &mut self,
        ev: &SseEvent,
        ep: &Endpoint,
        key: Option<&str>,
        on_delta: Option<&(dyn Fn(StreamDelta) + Send + Sync)>,
    ) -> Result<bool, LlmError> {
        match self {
            StreamState::OpenAi(s) => s.on_event(ev, ep, key, on_delta),
            StreamState::Anthropic(s) => s.on_event(ev, ep, key, on_delta),
        }
    }

    fn finish(self, ep: &Endpoint) -> Result<LlmResponse, LlmError> {
        match self {
            StreamState::OpenAi(s) => s.finish(ep),
            StreamState::Anthropic(s) => s.finish(ep),
        }
    }
}

/// Sends one request and assembles the response. `timeout` bounds the whole exchange,
/// or for streams the wait for the headers and for each next chunk.
pub async fn attempt(
    client: &reqwest::Client,
    cfg: &LlmConfig,
    ep: &Endpoint,
    headers: &HeaderMap,
    body: &[u8],
    stream: bool,
    on_delta: Option<&(dyn Fn(StreamDelta) + Send + Sync)>,
) -> Result<LlmResponse, LlmError> {
    let key = cfg.api_key.as_deref();
    let started = Instant::now();
    let request = client
        .post(&ep.url)
        .headers(headers.clone())
        .body(body.to_vec());
    let net = |e: reqwest::Error| from_reqwest(&e, ep.provider, key);

    if !stream {
        let exchange = async {
            let resp = request.send().await.map_err(net)?;
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.map_err(net)?;
            Ok::<_, LlmError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(cfg.timeout, exchange)
            .await
            .map_err(|_| timed_out(cfg, ep, "no complete response"))??;
        let raw = String::from_utf8_lossy(&bytes);
        if !(200..300).contains(&status) {
            return Err(from_status(status, &raw, ep.provider, key));
        }
        let mut r = parse_body(ep, &raw, key)?;
        r.latency = started.elapsed();
        return Ok(r);
    }

    let resp = tokio::time::timeout(cfg.timeout, request.send())
        .await
        .map_err(|_| timed_out(cfg, ep, "no response headers"))?
        .map_err(net)?;
    let status = resp.status().as_u16();
    let is_sse = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("text/event-stream"));
    if !(200..300).contains(&status) || !is_sse {
        // Errors, and servers that ignore `stream: true`, answer with a plain body.
        let bytes = tokio::time::timeout(cfg.timeout, resp.bytes())
            .await
            .map_err(|_| timed_out(cfg, ep, "no complete response"))?
            .map_err(net)?;
        let raw = String::from_utf8_lossy(&bytes);
        if !(200..300).contains(&status) {
            return Err(from_status(status, &raw, ep.provider, key));
        }
        let mut r = parse_body(ep, &raw, key)?;
        r.latency = started.elapsed();
        return Ok(r);
    }

    let mut state = match ep.protocol {
        Protocol::OpenAiChat => StreamState::OpenAi(openai::StreamState::default()),
        Protocol::Anthropic => StreamState::Anthropic(anthropic::StreamState::default()),
    };
    let mut parser = SseParser::default();
    let mut chunks = pin!(resp.bytes_stream());
    let mut done = false;
    while !done {
        let next = tokio::time::timeout(cfg.timeout, chunks.next())
            .await
            .map_err(|_| timed_out(cfg, ep, "no stream data"))?;
        let Some(chunk) = next else {
            break;
        };
        let chunk = chunk.map_err(net)?;
        for ev in parser.push(&chunk) {
            if state.on_event(&ev, ep, key, on_delta)? {
                done = true;
                break;
            }
        }
    }
    if !done && let Some(ev) = parser.finish() {
        state.on_event(&ev, ep, key, on_delta)?;
    }
    let mut r = state.finish(ep)?;
    r.latency = started.elapsed();
    Ok(r)
}
