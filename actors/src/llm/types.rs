//! The provider-neutral values the agent loop exchanges with the LLM client: chat messages,
//! tool specs, and the assembled response with its usage. Each wire module translates to and
//! from these. This file must not know any provider's wire format, and holds no I/O.

use std::time::Duration;

/// Who wrote a chat message, in the OpenAI chat vocabulary the SDK uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The system prompt; Anthropic lifts it out of the message list.
    System,
    /// A user turn (including the agent loop's corrective messages).
    User,
    /// An assistant turn, possibly with tool calls.
    Assistant,
    /// The result of one tool call.
    Tool,
}

impl Role {
    /// The role name on the OpenAI wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One part of a message's content.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentPart {
    /// Text. `cache_prompt` asks for a prompt-cache breakpoint on this part; it is honoured
    /// only when prompt caching is active for the model (see `LlmConfig::caching_prompt`).
    Text {
        /// The text itself.
        text: String,
        /// Put a `cache_control: {"type": "ephemeral"}` marker here.
        cache_prompt: bool,
    },
    /// An image, as an `http(s)` URL or a `data:<media type>;base64,<data>` URL.
    Image {
        /// The image URL.
        url: String,
    },
}

impl ContentPart {
    /// A text part without a cache marker.
    pub fn text(text: impl Into<String>) -> ContentPart {
        ContentPart::Text {
            text: text.into(),
            cache_prompt: false,
        }
    }

    /// The text of a text part, `None` for images.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            ContentPart::Text { text, .. } => Some(text),
            ContentPart::Image { .. } => None,
        }
    }
}

/// A tool call made by the assistant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The provider's call id (`call_…`, `toolu_…`), echoed back in the tool result.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as JSON text, exactly as the provider sent them (OpenAI) or as the
    /// input object re-serialized the way LiteLLM does (Anthropic).
    pub arguments: String,
}

/// A tool the LLM may call, in OpenAI function terms.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// The function name.
    pub name: String,
    /// What the tool does, shown to the model.
    pub description: String,
    /// The JSON schema of the arguments object.
    pub parameters: serde_json::Value,
}

/// One chat message in the SDK's OpenAI-style shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// Text and image parts, in order.
    pub content: Vec<ContentPart>,
    /// Tool calls of an assistant message.
    pub tool_calls: Vec<ToolCall>,
    /// For a tool message: the call it answers.
    pub tool_call_id: Option<String>,
    /// For a tool message: the tool's name.
    pub name: Option<String>,
    /// Reasoning text of an assistant message, replayed to providers that want it back.
    pub reasoning_content: Option<String>,
    /// Anthropic thinking blocks of an assistant message, replayed verbatim (they are signed).
    pub thinking_blocks: Vec<serde_json::Value>,
}

impl ChatMessage {
    /// A message with the given role and content and nothing else.
    pub fn new(role: Role, content: Vec<ContentPart>) -> ChatMessage {
        ChatMessage {
            role,
            content,
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
            reasoning_content: None,
            thinking_blocks: Vec::new(),
        }
    }

    /// A system message with one text part.
    pub fn system(text: impl Into<String>) -> ChatMessage {
        ChatMessage::new(Role::System, vec![ContentPart::text(text)])
    }

    /// A user message with one text part.
    pub fn user(text: impl Into<String>) -> ChatMessage {
        ChatMessage::new(Role::User, vec![ContentPart::text(text)])
    }

    /// An assistant message with optional text and the given tool calls.
    pub fn assistant(text: impl Into<String>, tool_calls: Vec<ToolCall>) -> ChatMessage {
        let mut m = ChatMessage::new(Role::Assistant, vec![ContentPart::text(text)]);
        m.tool_calls = tool_calls;
        m
    }

    /// A tool result answering `tool_call_id` of tool `name`.
    pub fn tool_result(
        tool_call_id: impl Into<String>,
        name: impl Into<String>,
        text: impl Into<String>,
    ) -> ChatMessage {
        let mut m = ChatMessage::new(Role::Tool, vec![ContentPart::text(text)]);
        m.tool_call_id = Some(tool_call_id.into());
        m.name = Some(name.into());
        m
    }

    /// The text parts joined with newlines (the SDK's plain-string rendering).
    pub fn joined_text(&self) -> String {
        let texts: Vec<&str> = self
            .content
            .iter()
            .filter_map(ContentPart::as_text)
            .collect();
        texts.join("\n")
    }
}

/// Token counts of one completion, as the SDK's metrics record them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input tokens, including cached ones (Anthropic: input + cache read + cache write).
    pub prompt_tokens: u64,
    /// Output tokens.
    pub completion_tokens: u64,
    /// Input tokens served from the prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_tokens: u64,
    /// Output tokens spent on reasoning, when the provider reports them.
    pub reasoning_tokens: u64,
}

/// One assembled completion.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmResponse {
    /// The completion id used as `llm_response_id`: the provider's `chatcmpl-…` id for
    /// OpenAI-style APIs, a generated `chatcmpl-<uuid>` for Anthropic (as LiteLLM does).
    pub id: String,
    /// The text parts joined; may be empty.
    pub content: String,
    /// Tool calls in the order the model made them.
    pub tool_calls: Vec<ToolCall>,
    /// Reasoning text (`reasoning_content`, or Anthropic thinking text).
    pub reasoning_content: Option<String>,
    /// Anthropic `thinking` / `redacted_thinking` blocks, to replay on the next turn.
    pub thinking_blocks: Vec<serde_json::Value>,
    /// Token counts.
    pub usage: Usage,
    /// Cost from `input_cost_per_token` / `output_cost_per_token`, 0.0 when neither is set.
    pub cost: f64,
    /// Wall time of the successful attempt, until the last byte.
    pub latency: Duration,
    /// The model the provider reports, or the model sent when it reports none.
    pub model: String,
    /// The provider's finish/stop reason (`stop`, `tool_calls`, `end_turn`, `max_tokens`, …).
    pub stop_reason: Option<String>,
}

/// An incremental piece of a streamed completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamDelta {
    /// Visible text.
    Content(String),
    /// Reasoning / thinking text.
    Reasoning(String),
}

/// A fresh `<prefix><uuid v4>` id, e.g. `chatcmpl-1b4e28ba-2fa1-4c2a-…`.
pub fn generated_id(prefix: &str) -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        // Uniqueness is all that matters here; the clock is a fine fallback.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        b = nanos.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{prefix}{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
