//! The Anthropic Messages wire format as LiteLLM produces it from OpenAI-style messages
//! (contract §4.6): system lifting, tool_use / tool_result blocks, thinking replay, cache
//! breakpoints, the `thinking` parameter; plus the response parser and the SSE stream
//! accumulator. No I/O here; `transport` moves bytes.

use std::collections::BTreeMap;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value, json};

use super::config::LlmConfig;
use super::error::{LlmError, from_stream_error};
use super::prompt::Shape;
use super::provider::Endpoint;
use super::pyjson;
use super::sse::SseEvent;
use super::types::{
    ChatMessage, ContentPart, LlmResponse, Role, StreamDelta, ToolCall, ToolSpec, Usage,
    generated_id,
};

/// The `anthropic-version` header value LiteLLM sends.
pub const API_VERSION: &str = "2023-06-01";
/// The beta header of the extended-thinking models.
pub const THINKING_BETA: &str = "interleaved-thinking-2025-05-14";

/// The JSON body of one Messages API request, as bytes. The turns, which
/// carry the whole history, are written straight from the chat messages
/// (no `Value` tree per step).
pub fn request_bytes(
    cfg: &LlmConfig,
    ep: &Endpoint,
    messages: &[ChatMessage],
    tools: &[ToolSpec],
    stream: bool,
) -> Vec<u8> {
    let shape = Shape::new(cfg, messages, true);
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<WireBlock<'_>>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        match m.role {
            Role::System => {
                for (p, part) in m.content.iter().enumerate() {
                    if let ContentPart::Text { text, .. } = part
                        && !text.is_empty()
                    {
                        system.push(WireBlock::Text {
                            text,
                            cached: shape.cached(messages, i, p),
                        });
                    }
                }
            }
            Role::User => {
                let blocks = content_blocks(messages, i, &shape, true);
                push_turn(&mut turns, "user", blocks);
            }
            Role::Tool => {
                let b = WireBlock::ToolResult {
                    id: m.tool_call_id.as_deref().unwrap_or_default(),
                    content: content_blocks(messages, i, &shape, false),
                    // The tool message's breakpoint moves onto its tool_result block.
                    cached: shape.message_cached(messages, i),
                };
                push_turn(&mut turns, "user", vec![b]);
            }
            Role::Assistant => {
                let mut blocks: Vec<WireBlock<'_>> = m
                    .thinking_blocks
                    .iter()
                    .filter(|b| {
                        matches!(
                            b.get("type").and_then(Value::as_str),
                            Some("thinking" | "redacted_thinking")
                        )
                    })
                    .map(WireBlock::Raw)
                    .collect();
                blocks.extend(content_blocks(messages, i, &shape, true));
                blocks.extend(m.tool_calls.iter().map(WireBlock::ToolUse));
                // Anthropic rejects an assistant turn without content.
                if !blocks.is_empty() {
                    push_turn(&mut turns, "assistant", blocks);
                }
            }
        }
    }

    // `messages` and `system` hold their places (LiteLLM's key order) as
    // `null` and are written from `turns` and `system`, unless the extra
    // body replaced them.
    let mut body = Map::new();
    body.insert("model".into(), json!(ep.model));
    body.insert("messages".into(), Value::Null);
    body.insert("max_tokens".into(), json!(shape.max_output.unwrap_or(4096)));
    if !tools.is_empty() {
        let t: Vec<Value> = tools
            .iter()
            .map(|t| {
                json!({"name": t.name, "input_schema": t.parameters,
                       "type": "custom", "description": t.description})
            })
            .collect();
        body.insert("tools".into(), Value::Array(t));
    }
    if let Some(budget) = shape.thinking_budget {
        body.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": budget}),
        );
    }
    if !system.is_empty() {
        body.insert("system".into(), Value::Null);
    }
    if shape.sampling {
        if let Some(t) = cfg.temperature {
            body.insert("temperature".into(), json!(t));
        }
        if let Some(p) = cfg.top_p {
            body.insert("top_p".into(), json!(p));
        }
        if let Some(k) = cfg.top_k {
            body.insert("top_k".into(), json!(k.round() as i64));
        }
    }
    if stream {
        body.insert("stream".into(), json!(true));
    }
    for (k, v) in &cfg.litellm_extra_body {
        body.insert(k.clone(), v.clone());
    }
    let wire = Body {
        fields: &body,
        turns: &turns,
        system: &system,
    };
    serde_json::to_vec(&wire).unwrap_or_default()
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

/// The body: its fields in order, with the `messages` and `system`
/// placeholders written from the turns and the system blocks.
struct Body<'a> {
    fields: &'a Map<String, Value>,
    turns: &'a [(&'static str, Vec<WireBlock<'a>>)],
    system: &'a [WireBlock<'a>],
}

struct Turns<'a>(&'a [(&'static str, Vec<WireBlock<'a>>)]);

impl Serialize for Turns<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (role, content) in self.0 {
            seq.serialize_element(&Turn { role, content })?;
        }
        seq.end()
    }
}

struct Turn<'a> {
    role: &'a str,
    content: &'a [WireBlock<'a>],
}

impl Serialize for Turn<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("role", self.role)?;
        m.serialize_entry("content", self.content)?;
        m.end()
    }
}

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.fields.len()))?;
        for (k, v) in self.fields {
            match (k.as_str(), v) {
                ("messages", Value::Null) => m.serialize_entry(k, &Turns(self.turns))?,
                ("system", Value::Null) => m.serialize_entry(k, self.system)?,
                _ => m.serialize_entry(k, v)?,
            }
        }
        m.end()
    }
}

/// One content block of a turn, borrowed from the chat messages.
enum WireBlock<'a> {
    Text {
        text: &'a str,
        cached: bool,
    },
    Image {
        url: &'a str,
        cached: bool,
    },
    ToolResult {
        id: &'a str,
        content: Vec<WireBlock<'a>>,
        cached: bool,
    },
    ToolUse(&'a ToolCall),
    /// A thinking block, replayed as it came.
    Raw(&'a Value),
}

/// `{"type": "ephemeral"}`, the cache breakpoint marker.
struct Ephemeral;

impl Serialize for Ephemeral {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("type", "ephemeral")?;
        m.end()
    }
}

impl Serialize for WireBlock<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if let WireBlock::Raw(v) = self {
            return v.serialize(s);
        }
        let mut m = s.serialize_map(None)?;
        let cached = match self {
            WireBlock::Text { text, cached } => {
                m.serialize_entry("type", "text")?;
                m.serialize_entry("text", text)?;
                *cached
            }
            WireBlock::Image { url, cached } => {
                m.serialize_entry("type", "image")?;
                m.serialize_entry("source", &image_source(url))?;
                *cached
            }
            WireBlock::ToolResult {
                id,
                content,
                cached,
            } => {
                m.serialize_entry("type", "tool_result")?;
                m.serialize_entry("tool_use_id", id)?;
                m.serialize_entry("content", content)?;
                *cached
            }
            WireBlock::ToolUse(c) => {
                m.serialize_entry("type", "tool_use")?;
                m.serialize_entry("id", &c.id)?;
                m.serialize_entry("name", &c.name)?;
                m.serialize_entry("input", &tool_input(&c.arguments))?;
                false
            }
            WireBlock::Raw(_) => false,
        };
        if cached {
            m.serialize_entry("cache_control", &Ephemeral)?;
        }
        m.end()
    }
}

/// Consecutive user/tool messages become one user turn, consecutive assistant messages one
/// assistant turn, as LiteLLM merges them.
fn push_turn<'a>(
    turns: &mut Vec<(&'static str, Vec<WireBlock<'a>>)>,
    role: &'static str,
    blocks: Vec<WireBlock<'a>>,
) {
    match turns.last_mut() {
        Some((last, content)) if *last == role => content.extend(blocks),
        _ => turns.push((role, blocks)),
    }
}

/// Text and image blocks of message `i`; empty text is skipped (Anthropic rejects it).
fn content_blocks<'a>(
    messages: &'a [ChatMessage],
    i: usize,
    shape: &Shape,
    marks: bool,
) -> Vec<WireBlock<'a>> {
    let Some(m) = messages.get(i) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (p, part) in m.content.iter().enumerate() {
        let cached = marks && shape.cached(messages, i, p);
        match part {
            ContentPart::Text { text, .. } if text.is_empty() => continue,
            ContentPart::Text { text, .. } => out.push(WireBlock::Text { text, cached }),
            ContentPart::Image { .. } if shape.no_images => continue,
            ContentPart::Image { url } => out.push(WireBlock::Image { url, cached }),
        }
    }
    out
}

/// The `source` of an image block: a data URL becomes base64 data.
fn image_source(url: &str) -> Value {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((meta, data)) = rest.split_once(',')
    {
        let media_type = meta.split(';').next().unwrap_or("image/png");
        return json!({"type": "base64", "media_type": media_type, "data": data});
    }
    json!({"type": "url", "url": url})
}

/// A tool call's arguments as the `input` object (Anthropic requires an object).
fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({}),
    }
}

fn u(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

/// Anthropic usage → SDK usage: prompt tokens include cache reads and writes, as LiteLLM
/// counts them.
fn usage_of(input: u64, output: u64, cache_read: u64, cache_write: u64) -> Usage {
    Usage {
        prompt_tokens: input + cache_read + cache_write,
        completion_tokens: output,
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
        reasoning_tokens: 0,
    }
}

/// Parses a non-streamed Messages API body.
pub fn parse_response(
    v: &Value,
    raw: &str,
    ep: &Endpoint,
    key: Option<&str>,
) -> Result<LlmResponse, LlmError> {
    if v.get("type").and_then(Value::as_str) == Some("error") {
        let kind = v
            .pointer("/error/type")
            .and_then(Value::as_str)
            .unwrap_or("api_error");
        return Err(from_stream_error(kind, raw, ep.provider, key));
    }
    let Some(blocks) = v.get("content").and_then(Value::as_array) else {
        return Err(LlmError::InternalServer(format!(
            "litellm.InternalServerError: {}Exception - the response has no content list",
            ep.provider
        )));
    };
    let mut content = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    let mut thinking_blocks = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => content.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: b
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| generated_id("toolu_")),
                name: b
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                arguments: pyjson::dumps(b.get("input").unwrap_or(&json!({}))),
            }),
            Some("thinking") => {
                reasoning.push_str(b.get("thinking").and_then(Value::as_str).unwrap_or(""));
                thinking_blocks.push(b.clone());
            }
            Some("redacted_thinking") => thinking_blocks.push(b.clone()),
            _ => {}
        }
    }
    let usage = v.get("usage").unwrap_or(&Value::Null);
    Ok(LlmResponse {
        id: generated_id("chatcmpl-"),
        content,
        tool_calls,
        reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
        thinking_blocks,
        usage: usage_of(
            u(usage, "input_tokens").unwrap_or(0),
            u(usage, "output_tokens").unwrap_or(0),
            u(usage, "cache_read_input_tokens").unwrap_or(0),
            u(usage, "cache_creation_input_tokens").unwrap_or(0),
        ),
        cost: 0.0,
        latency: std::time::Duration::ZERO,
        model: v
            .get("model")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map_or_else(|| ep.model.clone(), str::to_owned),
        stop_reason: v
            .get("stop_reason")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

#[derive(Debug)]
enum Block {
    Text(String),
    Tool {
        id: String,
        name: String,
        json: String,
    },
    Thinking {
        thinking: String,
        signature: String,
    },
    Opaque(Value),
}

/// Assembles a streamed message from its SSE events.
#[derive(Debug, Default)]
pub struct StreamState {
    model: String,
    blocks: BTreeMap<u64, Block>,
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    stop: Option<String>,
    started: bool,
}

impl StreamState {
    /// Takes one SSE event; returns true at `message_stop`.
    pub fn on_event(
        &mut self,
        ev: &SseEvent,
        ep: &Endpoint,
        key: Option<&str>,
        on_delta: Option<&(dyn Fn(StreamDelta) + Send + Sync)>,
    ) -> Result<bool, LlmError> {
        if ev.data.trim().is_empty() {
            return Ok(false);
        }
        let v: Value = serde_json::from_str(&ev.data).map_err(|e| {
            LlmError::InternalServer(format!(
                "litellm.InternalServerError: {}Exception - unreadable stream event ({e})",
                ep.provider
            ))
        })?;
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .or(ev.event.as_deref())
            .unwrap_or("");
        match kind {
            "message_start" => {
                self.started = true;
                let msg = v.get("message").unwrap_or(&Value::Null);
                if let Some(m) = msg.get("model").and_then(Value::as_str) {
                    self.model = m.to_owned();
                }
                self.take_usage(msg.get("usage").unwrap_or(&Value::Null));
            }
            "content_block_start" => {
                self.started = true;
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let b = v.get("content_block").unwrap_or(&Value::Null);
                let s = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                let block = match b.get("type").and_then(Value::as_str) {
                    Some("text") => Block::Text(s("text")),
                    Some("tool_use") => Block::Tool {
                        id: s("id"),
                        name: s("name"),
                        json: match b.get("input") {
                            Some(Value::Object(m)) if !m.is_empty() => {
                                Value::Object(m.clone()).to_string()
                            }
                            _ => String::new(),
                        },
                    },
                    Some("thinking") => Block::Thinking {
                        thinking: s("thinking"),
                        signature: s("signature"),
                    },
                    _ => Block::Opaque(b.clone()),
                };
                self.blocks.insert(index, block);
            }
            "content_block_delta" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let d = v.get("delta").unwrap_or(&Value::Null);
                let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                let slot = self
                    .blocks
                    .entry(index)
                    .or_insert_with(|| Block::Text(String::new()));
                match (d.get("type").and_then(Value::as_str), slot) {
                    (Some("text_delta"), Block::Text(t)) => {
                        let piece = s("text");
                        t.push_str(&piece);
                        if let (Some(f), false) = (on_delta, piece.is_empty()) {
                            f(StreamDelta::Content(piece));
                        }
                    }
                    (Some("input_json_delta"), Block::Tool { json, .. }) => {
                        json.push_str(&s("partial_json"));
                    }
                    (Some("thinking_delta"), Block::Thinking { thinking, .. }) => {
                        let piece = s("thinking");
                        thinking.push_str(&piece);
                        if let (Some(f), false) = (on_delta, piece.is_empty()) {
                            f(StreamDelta::Reasoning(piece));
                        }
                    }
                    (Some("signature_delta"), Block::Thinking { signature, .. }) => {
                        signature.push_str(&s("signature"));
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop = Some(r.to_owned());
                }
                self.take_usage(v.get("usage").unwrap_or(&Value::Null));
            }
            "message_stop" => return Ok(true),
            "error" => {
                let kind = v
                    .pointer("/error/type")
                    .and_then(Value::as_str)
                    .unwrap_or("api_error");
                return Err(from_stream_error(kind, &ev.data, ep.provider, key));
            }
            _ => {}
        }
        Ok(false)
    }

    fn take_usage(&mut self, usage: &Value) {
        if let Some(n) = u(usage, "input_tokens") {
            self.input = n;
        }
        if let Some(n) = u(usage, "output_tokens") {
            self.output = n;
        }
        if let Some(n) = u(usage, "cache_read_input_tokens") {
            self.cache_read = n;
        }
        if let Some(n) = u(usage, "cache_creation_input_tokens") {
            self.cache_write = n;
        }
    }

    /// The assembled response; `NoResponse` when the stream carried no message at all.
    pub fn finish(self, ep: &Endpoint) -> Result<LlmResponse, LlmError> {
        if !self.started {
            return Err(LlmError::NoResponse(format!(
                "{}Exception - the stream ended without a message",
                ep.provider
            )));
        }
        let mut content = String::new();
        let mut reasoning = String::new();
        let mut tool_calls = Vec::new();
        let mut thinking_blocks = Vec::new();
        for block in self.blocks.into_values() {
            match block {
                Block::Text(t) => content.push_str(&t),
                Block::Tool { id, name, json } => {
                    let text = if json.trim().is_empty() { "{}" } else { &json };
                    let arguments = match serde_json::from_str::<Value>(text) {
                        Ok(v) => pyjson::dumps(&v),
                        Err(_) => json,
                    };
                    tool_calls.push(ToolCall {
                        id: if id.is_empty() {
                            generated_id("toolu_")
                        } else {
                            id
                        },
                        name,
                        arguments,
                    });
                }
                Block::Thinking {
                    thinking,
                    signature,
                } => {
                    reasoning.push_str(&thinking);
                    thinking_blocks.push(
                        json!({"type": "thinking", "thinking": thinking, "signature": signature}),
                    );
                }
                Block::Opaque(v) => {
                    if v.get("type").and_then(Value::as_str) == Some("redacted_thinking") {
                        thinking_blocks.push(v);
                    }
                }
            }
        }
        Ok(LlmResponse {
            id: generated_id("chatcmpl-"),
            content,
            tool_calls,
            reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
            thinking_blocks,
            usage: usage_of(self.input, self.output, self.cache_read, self.cache_write),
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
