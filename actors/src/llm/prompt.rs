//! Request-shaping rules both wire formats share, decided once per call: where the
//! prompt-cache breakpoints go, whether extended thinking is on (and LiteLLM's
//! `modify_params` rule that drops it), and which sampling parameters may be sent.
//! It computes decisions only; the wire modules own the JSON.

use super::config::LlmConfig;
use super::provider::{
    is_reasoning_model, max_output_tokens, supports_prompt_cache, uses_extended_thinking,
};
use super::types::{ChatMessage, ContentPart, Role};

/// Output limit Anthropic gets when neither the config nor the model table gives one.
const ANTHROPIC_FALLBACK_MAX_TOKENS: u64 = 4096;

/// Decisions for one request.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    /// Prompt-cache breakpoints are active for this model.
    pub caching: bool,
    /// Index of the first system message (its first part gets a breakpoint).
    first_system: Option<usize>,
    /// Index of the last user or tool message (its last part gets a breakpoint).
    last_turn: Option<usize>,
    /// The model gets the interleaved-thinking beta header.
    pub thinking_model: bool,
    /// `thinking.budget_tokens` when thinking is sent.
    pub thinking_budget: Option<u64>,
    /// The output limit, if known.
    pub max_output: Option<u64>,
    /// Temperature / top_p / top_k may be sent.
    pub sampling: bool,
    /// Image parts are dropped.
    pub no_images: bool,
}

impl Shape {
    /// Decides the shape of a request of `cfg` carrying `messages`.
    pub fn new(cfg: &LlmConfig, messages: &[ChatMessage], anthropic: bool) -> Shape {
        let caching = cfg.caching_prompt && supports_prompt_cache(&cfg.model);
        let thinking_model = uses_extended_thinking(&cfg.model);
        let mut max_output = max_output_tokens(cfg);
        if anthropic && max_output.is_none() {
            max_output = Some(ANTHROPIC_FALLBACK_MAX_TOKENS);
        }
        let thinking_budget =
            if thinking_model && !(cfg.modify_params && must_drop_thinking(messages)) {
                let cap = cfg.extended_thinking_budget.unwrap_or(200_000);
                max_output.map(|m| cap.min(m.saturating_sub(1)))
            } else {
                None
            };
        Shape {
            caching,
            first_system: messages.iter().position(|m| m.role == Role::System),
            last_turn: messages
                .iter()
                .rposition(|m| matches!(m.role, Role::User | Role::Tool)),
            thinking_model,
            thinking_budget,
            max_output,
            sampling: !thinking_model && !is_reasoning_model(&cfg.model),
            no_images: cfg.disable_vision == Some(true),
        }
    }

    /// Whether part `part` of message `msg` carries a cache breakpoint: the caller's own
    /// flag, the first system part, or the last part of the last user/tool message — the
    /// same places the SDK marks when caching is on.
    pub fn cached(&self, messages: &[ChatMessage], msg: usize, part: usize) -> bool {
        if !self.caching {
            return false;
        }
        let Some(m) = messages.get(msg) else {
            return false;
        };
        if matches!(
            m.content.get(part),
            Some(ContentPart::Text {
                cache_prompt: true,
                ..
            })
        ) {
            return true;
        }
        (Some(msg) == self.first_system && part == 0)
            || (Some(msg) == self.last_turn && part + 1 == m.content.len())
    }

    /// Whether any part of message `msg` carries a breakpoint (tool messages carry it at
    /// the message level).
    pub fn message_cached(&self, messages: &[ChatMessage], msg: usize) -> bool {
        messages
            .get(msg)
            .is_some_and(|m| (0..m.content.len()).any(|p| self.cached(messages, msg, p)))
    }
}

/// LiteLLM (`modify_params`) drops `thinking` when the last assistant turn with tool calls
/// has no thinking blocks, because Anthropic would reject the request.
fn must_drop_thinking(messages: &[ChatMessage]) -> bool {
    messages
        .iter()
        .rev()
        .find(|m| m.role == Role::Assistant && !m.tool_calls.is_empty())
        .is_some_and(|m| m.thinking_blocks.is_empty())
}
