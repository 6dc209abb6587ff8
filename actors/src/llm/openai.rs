//! The OpenAI Chat Completions wire format (also spoken by LiteLLM proxies, Azure and the
//! OpenAI-compatible providers): the request body LiteLLM sends (contract §4.5/§4.6), the
//! response parser and the SSE stream accumulator. No I/O here; `transport` moves bytes.

use std::collections::BTreeMap;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value, json};

use super::config::LlmConfig;
use super::error::{LlmError, from_stream_error};
use super::prompt::Shape;
use super::provider::{
    Endpoint, is_claude_4, is_reasoning_model, takes_prompt_cache_retention, wants_string_content,
};
use super::sse::SseEvent;
use super::types::{
    ChatMessage, ContentPart, LlmResponse, Role, StreamDelta, ToolCall, ToolSpec, Usage,
    generated_id,
};

const EPHEMERAL: &str = "ephemeral";

/// The JSON body of one chat completion request, as bytes. The messages,
/// which carry the whole history, are written straight from the chat
/// messages (no `Value` tree per step); the few other fields are small.
pub fn request_bytes(
    cfg: &LlmConfig,
    ep: &Endpoint,
    messages: &[ChatMessage],
    tools: &[ToolSpec],
    stream: bool,
) -> Vec<u8> {
    let shape = Shape::new(cfg, messages, false);
    let strings = cfg
        .force_string_serializer
        .unwrap_or_else(|| wants_string_content(&cfg.model));
    let official = ep.provider == "OpenAI" && ep.url.starts_with("https://api.openai.com/");
    let body = Body {
        messages: Messages {
            all: messages,
            ctx: WireCtx {
                shape: &shape,
                strings,
                proxy: ep.proxy,
                // OpenAI itself rejects reasoning fields on assistant turns.
                reasoning: !(official || ep.azure),
            },
        },
        rest: other_fields(cfg, ep, &shape, tools, stream, official),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// [`request_bytes`] as a `Value` (tests and logs).
pub fn request_body(
    cfg: &LlmConfig,
    ep: &Endpoint,
    messages: &[ChatMessage],
    tools: &[ToolSpec],
    stream: bool,
) -> Value {
    serde_json::from_slice(&request_bytes(cfg, ep, messages, tools, stream)).unwrap_or(Value::Null)
}

/// Everything of the body after `messages`, in the order LiteLLM sends it.
fn other_fields(
    cfg: &LlmConfig,
    ep: &Endpoint,
    shape: &Shape,
    tools: &[ToolSpec],
    stream: bool,
    official: bool,
) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("model".into(), json!(ep.model));
    if let Some(n) = shape.max_output {
        let key = if ep.azure {
            "max_tokens"
        } else {
            "max_completion_tokens"
        };
        body.insert(key.into(), json!(n));
        if shape.thinking_model && ep.proxy {
            // Claude-style parameters go through a LiteLLM proxy as-is (contract §4.6).
            body.insert("max_tokens".into(), json!(n));
        }
    }
    if !tools.is_empty() {
        let t: Vec<Value> = tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters}})
            })
            .collect();
        body.insert("tools".into(), Value::Array(t));
    }
    if shape.sampling {
        if let Some(t) = cfg.temperature {
            body.insert("temperature".into(), json!(t));
        }
        if let Some(p) = cfg.top_p {
            body.insert("top_p".into(), json!(p));
        }
        if let (Some(k), false) = (cfg.top_k, official || ep.azure) {
            body.insert("top_k".into(), json!(k.round() as i64));
        }
    }
    if let Some(seed) = cfg.seed {
        body.insert("seed".into(), json!(seed));
    }
    let claude4 = ep.proxy && is_claude_4(&cfg.model);
    if let Some(effort) = &cfg.reasoning_effort
        && (is_reasoning_model(&cfg.model) || claude4)
    {
        body.insert("reasoning_effort".into(), json!(effort));
    }
    if let (Some(budget), true) = (shape.thinking_budget, ep.proxy) {
        body.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": budget}),
        );
    }
    if let Some(r) = &cfg.prompt_cache_retention
        && takes_prompt_cache_retention(&cfg.model, ep.azure)
    {
        body.insert("prompt_cache_retention".into(), json!(r));
    }
    if let Some(k) = &cfg.prompt_cache_key {
        body.insert("prompt_cache_key".into(), json!(k));
    }
    if stream {
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    for (k, v) in &cfg.litellm_extra_body {
        body.insert(k.clone(), v.clone());
    }
    body
}

/// Per-request facts every message's wire form depends on.
#[derive(Clone, Copy)]
struct WireCtx<'a> {
    shape: &'a Shape,
    /// Content as one string (models that take no content parts).
    strings: bool,
    /// A LiteLLM proxy (thinking blocks are replayed to it).
    proxy: bool,
    /// `reasoning_content` is sent back on assistant turns.
    reasoning: bool,
}

/// The request body: `messages` first, then the other fields.
struct Body<'a> {
    messages: Messages<'a>,
    rest: Map<String, Value>,
}

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1 + self.rest.len()))?;
        m.serialize_entry("messages", &self.messages)?;
        for (k, v) in &self.rest {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

struct Messages<'a> {
    all: &'a [ChatMessage],
    ctx: WireCtx<'a>,
}

impl Serialize for Messages<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.all.len()))?;
        for i in 0..self.all.len() {
            seq.serialize_element(&WireMessage {
                all: self.all,
                i,
                ctx: self.ctx,
            })?;
        }
        seq.end()
    }
}

/// Message `i` of `all` on the wire.
struct WireMessage<'a> {
    all: &'a [ChatMessage],
    i: usize,
    ctx: WireCtx<'a>,
}

/// `{"type": "ephemeral"}`, the cache breakpoint marker.
struct Ephemeral;

impl Serialize for Ephemeral {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("type", EPHEMERAL)?;
        m.end()
    }
}

impl WireMessage<'_> {
    fn msg(&self) -> &ChatMessage {
        &self.all[self.i]
    }

    fn with_calls(&self) -> bool {
        let m = self.msg();
        m.role == Role::Assistant && !m.tool_calls.is_empty()
    }

    /// Whether content part `p` goes on the wire.
    fn keeps(&self, part: &ContentPart) -> bool {
        match part {
            // An assistant turn with tool calls drops empty text (SDK serializer).
            ContentPart::Text { text, .. } => !(self.with_calls() && text.is_empty()),
            ContentPart::Image { .. } => !self.ctx.shape.no_images,
        }
    }
}

/// The content parts of a message.
struct Parts<'a>(&'a WireMessage<'a>);

impl Serialize for Parts<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let w = self.0;
        let m = w.msg();
        let is_tool = m.role == Role::Tool;
        let mut seq = s.serialize_seq(None)?;
        for (p, part) in m.content.iter().enumerate() {
            if !w.keeps(part) {
                continue;
            }
            match part {
                ContentPart::Text { text, .. } => {
                    let cached = !is_tool && w.ctx.shape.cached(w.all, w.i, p);
                    seq.serialize_element(&TextPart { text, cached })?;
                }
                ContentPart::Image { url } => seq.serialize_element(&ImagePart { url })?,
            }
        }
        seq.end()
    }
}

struct TextPart<'a> {
    text: &'a str,
    cached: bool,
}

impl Serialize for TextPart<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", "text")?;
        m.serialize_entry("text", self.text)?;
        if self.cached {
            m.serialize_entry("cache_control", &Ephemeral)?;
        }
        m.end()
    }
}

struct ImagePart<'a> {
    url: &'a str,
}

impl Serialize for ImagePart<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Url<'a>(&'a str);
        impl Serialize for Url<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("url", self.0)?;
                m.end()
            }
        }
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("type", "image_url")?;
        m.serialize_entry("image_url", &Url(self.url))?;
        m.end()
    }
}

struct WireCall<'a>(&'a ToolCall);

impl Serialize for WireCall<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Function<'a>(&'a ToolCall);
        impl Serialize for Function<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("name", &self.0.name)?;
                m.serialize_entry("arguments", &self.0.arguments)?;
                m.end()
            }
        }
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("id", &self.0.id)?;
        m.serialize_entry("type", "function")?;
        m.serialize_entry("function", &Function(self.0))?;
        m.end()
    }
}

impl Serialize for WireMessage<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.msg();
        let ctx = &self.ctx;
        let is_tool = m.role == Role::Tool;
        let with_calls = self.with_calls();
        let mut out = s.serialize_map(None)?;
        if ctx.strings {
            let text = m
                .content
                .iter()
                .filter_map(ContentPart::as_text)
                .filter(|t| !(with_calls && t.is_empty()))
                .collect::<Vec<_>>()
                .join("\n");
            if !(with_calls && text.is_empty()) {
                out.serialize_entry("content", &text)?;
            }
        } else if !with_calls || m.content.iter().any(|p| self.keeps(p)) {
            out.serialize_entry("content", &Parts(self))?;
        }
        out.serialize_entry("role", m.role.as_str())?;
        if with_calls {
            let calls: Vec<WireCall<'_>> = m.tool_calls.iter().map(WireCall).collect();
            out.serialize_entry("tool_calls", &calls)?;
        }
        if is_tool {
            if let Some(id) = &m.tool_call_id {
                out.serialize_entry("tool_call_id", id)?;
            }
            if let Some(name) = &m.name {
                out.serialize_entry("name", name)?;
            }
            // LiteLLM wants a tool message's breakpoint on the message, not on its parts.
            if !ctx.strings && ctx.shape.message_cached(self.all, self.i) {
                out.serialize_entry("cache_control", &Ephemeral)?;
            }
        }
        if m.role == Role::Assistant {
            if let (Some(r), true) = (&m.reasoning_content, ctx.reasoning) {
                out.serialize_entry("reasoning_content", r)?;
            }
            if ctx.proxy && !m.thinking_blocks.is_empty() {
                out.serialize_entry("thinking_blocks", &m.thinking_blocks)?;
            }
        }
        out.end()
    }
}

fn u(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for k in path {
        match cur.get(k) {
            Some(x) => cur = x,
            None => return 0,
        }
    }
    cur.as_u64()
        .or_else(|| cur.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        .unwrap_or(0)
}

/// Token counts from an OpenAI-style `usage` object (proxies may add Anthropic's cache
/// counters, which we take when the OpenAI ones are absent).
pub fn parse_usage(usage: &Value) -> Usage {
    let cache_read = match u(usage, &["prompt_tokens_details", "cached_tokens"]) {
        0 => u(usage, &["cache_read_input_tokens"]),
        n => n,
    };
    let cache_write = match u(usage, &["cache_creation_input_tokens"]) {
        0 => u(usage, &["prompt_tokens_details", "cache_creation_tokens"]),
        n => n,
    };
    Usage {
        prompt_tokens: u(usage, &["prompt_tokens"]),
        completion_tokens: u(usage, &["completion_tokens"]),
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
        reasoning_tokens: u(usage, &["completion_tokens_details", "reasoning_tokens"]),
    }
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

fn arguments_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn non_empty(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn error_in_body(v: &Value, raw: &str, ep: &Endpoint, key: Option<&str>) -> Option<LlmError> {
    let err = v.get("error").filter(|e| !e.is_null())?;
    let kind = [err.get("type"), err.get("code")]
        .iter()
        .filter_map(|x| x.and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    Some(from_stream_error(&kind, raw, ep.provider, key))
}

/// Parses a non-streamed `chat.completion` body.
pub fn parse_response(
    v: &Value,
    raw: &str,
    ep: &Endpoint,
    key: Option<&str>,
) -> Result<LlmResponse, LlmError> {
    let choice = match v
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
    {
        Some(first) => first,
        None => {
            if let Some(e) = error_in_body(v, raw, ep, key) {
                return Err(e);
            }
            return Err(LlmError::NoResponse(format!(
                "{}Exception - the response has no choices",
                ep.provider
            )));
        }
    };
    let msg = choice.get("message").unwrap_or(&Value::Null);
    let tool_calls = msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|calls| {
            calls
                .iter()
                .map(|c| ToolCall {
                    id: non_empty(c.get("id")).unwrap_or_else(|| generated_id("call_")),
                    name: c
                        .pointer("/function/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    arguments: arguments_of(c.pointer("/function/arguments")),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(LlmResponse {
        id: non_empty(v.get("id")).unwrap_or_else(|| generated_id("chatcmpl-")),
        content: text_of(msg.get("content").unwrap_or(&Value::Null)),
        tool_calls,
        reasoning_content: non_empty(msg.get("reasoning_content"))
            .or_else(|| non_empty(msg.get("reasoning"))),
        thinking_blocks: msg
            .get("thinking_blocks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        usage: v.get("usage").map(parse_usage).unwrap_or_default(),
        cost: 0.0,
        latency: std::time::Duration::ZERO,
        model: non_empty(v.get("model")).unwrap_or_else(|| ep.model.clone()),
        stop_reason: non_empty(choice.get("finish_reason")),
    })
}

#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// Assembles a streamed completion from its `chat.completion.chunk` events.
#[derive(Debug, Default)]
pub struct StreamState {
    id: String,
    model: String,
    content: String,
    reasoning: String,
    calls: BTreeMap<u64, PartialCall>,
    usage: Option<Usage>,
    stop: Option<String>,
    saw_choice: bool,
}

impl StreamState {
    /// Takes one SSE event; returns true at `[DONE]`.
    pub fn on_event(
        &mut self,
        ev: &SseEvent,
        ep: &Endpoint,
        key: Option<&str>,
        on_delta: Option<&(dyn Fn(StreamDelta) + Send + Sync)>,
    ) -> Result<bool, LlmError> {
        let data = ev.data.trim();
        if data == "[DONE]" {
            return Ok(true);
        }
        if data.is_empty() {
            return Ok(false);
        }
        let v: Value = serde_json::from_str(data).map_err(|e| {
            LlmError::InternalServer(format!(
                "litellm.InternalServerError: {}Exception - unreadable stream chunk ({e})",
                ep.provider
            ))
        })?;
        if let Some(e) = error_in_body(&v, data, ep, key) {
            return Err(e);
        }
        if let Some(id) = non_empty(v.get("id")) {
            self.id = id;
        }
        if let Some(m) = non_empty(v.get("model")) {
            self.model = m;
        }
        if let Some(usage) = v.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(parse_usage(usage));
        }
        let Some(choice) = v
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            return Ok(false);
        };
        self.saw_choice = true;
        if let Some(r) = non_empty(choice.get("finish_reason")) {
            self.stop = Some(r);
        }
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        if let Some(t) = non_empty(delta.get("content")) {
            self.content.push_str(&t);
            if let Some(f) = on_delta {
                f(StreamDelta::Content(t));
            }
        }
        if let Some(t) = non_empty(delta.get("reasoning_content")) {
            self.reasoning.push_str(&t);
            if let Some(f) = on_delta {
                f(StreamDelta::Reasoning(t));
            }
        }
        if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
            for (pos, c) in calls.iter().enumerate() {
                let index = c.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
                let slot = self.calls.entry(index).or_default();
                if let Some(id) = non_empty(c.get("id")) {
                    slot.id = id;
                }
                if let Some(name) = non_empty(c.pointer("/function/name")) {
                    slot.name = name;
                }
                slot.arguments
                    .push_str(&arguments_of(c.pointer("/function/arguments")));
            }
        }
        Ok(false)
    }

    /// The assembled response; `NoResponse` when no choice ever arrived.
    pub fn finish(self, ep: &Endpoint) -> Result<LlmResponse, LlmError> {
        if !self.saw_choice {
            return Err(LlmError::NoResponse(format!(
                "{}Exception - the stream ended without any choice",
                ep.provider
            )));
        }
        let tool_calls = self
            .calls
            .into_values()
            .map(|c| ToolCall {
                id: if c.id.is_empty() {
                    generated_id("call_")
                } else {
                    c.id
                },
                name: c.name,
                arguments: c.arguments,
            })
            .collect();
        Ok(LlmResponse {
            id: if self.id.is_empty() {
                generated_id("chatcmpl-")
            } else {
                self.id
            },
            content: self.content,
            tool_calls,
            reasoning_content: (!self.reasoning.is_empty()).then_some(self.reasoning),
            thinking_blocks: Vec::new(),
            usage: self.usage.unwrap_or_default(),
            cost: 0.0,
            latency: std::time::Duration::ZERO,
            model: if self.model.is_empty() {
                ep.model.clone()
            } else {
                self.model
            },
            stop_reason: self.stop,
        })
    }
}
