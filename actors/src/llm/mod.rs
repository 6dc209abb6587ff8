//! The LLM client: calls Anthropic's Messages API or an OpenAI-compatible Chat Completions
//! API over reqwest the way the reference's LiteLLM does (same bodies, headers, retries and
//! error classes; contract §4.5–§4.7). The agent loop calls `complete` (with tools,
//! optionally streaming) and `ask` (one-shot, no tools). This module owns no state and
//! spawns nothing: dropping a returned future aborts the request. It must never log or
//! return the API key, and it does not decide what a response means (that is the agent
//! loop's job, contract §4.2).

mod anthropic;
mod config;
mod error;
mod openai;
mod prompt;
mod provider;
mod pyjson;
mod retry;
pub(crate) mod sse;
mod transport;
mod types;

#[cfg(test)]
mod tests;

pub use config::LlmConfig;
pub use error::LlmError;
pub use provider::{
    Auth, Endpoint, Protocol, endpoint, is_reasoning_model, max_output_tokens,
    supports_prompt_cache, uses_extended_thinking,
};
pub use retry::RetryPolicy;
pub use types::{
    ChatMessage, ContentPart, LlmResponse, Role, StreamDelta, ToolCall, ToolSpec, Usage,
    generated_id,
};

/// One completion with retries per `cfg` (`num_retries` total attempts, exponential waits;
/// connection errors, timeouts, 429, 5xx and empty responses are retried, other 4xx never).
/// `cfg.timeout` bounds each request, or for streams each wait for data. When `cfg.stream`
/// is true the completion is streamed and `on_delta` gets each text/reasoning delta; it is
/// called inline on the reading task, so it should only hand the delta on (e.g. to a channel).
/// Deltas of a failed attempt are not withdrawn when a retry starts over.
pub async fn complete(
    client: &reqwest::Client,
    cfg: &LlmConfig,
    messages: &[ChatMessage],
    tools: &[ToolSpec],
    on_delta: Option<&(dyn Fn(StreamDelta) + Send + Sync)>,
) -> Result<LlmResponse, LlmError> {
    call(client, cfg, messages, tools, cfg.stream, on_delta).await
}

/// The same request without streaming, for one-shot questions (title
/// generation, condensation, ask_agent). `tools` is empty except where the
/// history holds tool calls the provider only accepts next to their
/// definitions (ask_agent).
pub async fn ask(
    client: &reqwest::Client,
    cfg: &LlmConfig,
    messages: &[ChatMessage],
    tools: &[ToolSpec],
) -> Result<LlmResponse, LlmError> {
    call(client, cfg, messages, tools, false, None).await
}

/// The endpoint and JSON body `complete` would send (for logs and tests; holds no key).
pub fn request_body(
    cfg: &LlmConfig,
    messages: &[ChatMessage],
    tools: &[ToolSpec],
    stream: bool,
) -> Result<(Endpoint, serde_json::Value), LlmError> {
    let ep = endpoint(cfg)?;
    let body = match ep.protocol {
        Protocol::Anthropic => anthropic::request_body(cfg, &ep, messages, tools, stream),
        Protocol::OpenAiChat => openai::request_body(cfg, &ep, messages, tools, stream),
    };
    Ok((ep, body))
}

async fn call(
    client: &reqwest::Client,
    cfg: &LlmConfig,
    messages: &[ChatMessage],
    tools: &[ToolSpec],
    stream: bool,
    on_delta: Option<&(dyn Fn(StreamDelta) + Send + Sync)>,
) -> Result<LlmResponse, LlmError> {
    let ep = endpoint(cfg)?;
    let body = match ep.protocol {
        Protocol::Anthropic => anthropic::request_bytes(cfg, &ep, messages, tools, stream),
        Protocol::OpenAiChat => openai::request_bytes(cfg, &ep, messages, tools, stream),
    };
    let headers = transport::headers(cfg, &ep, stream)?;
    log::debug!(
        "LLM request {} model={} url={} messages={} tools={} stream={}",
        cfg.usage_id,
        ep.model,
        ep.url,
        messages.len(),
        tools.len(),
        stream
    );
    let policy = RetryPolicy::from_config(cfg);
    let mut response = retry::run(policy, &cfg.usage_id, |_| {
        transport::attempt(client, cfg, &ep, &headers, &body, stream, on_delta)
    })
    .await?;
    response.cost = cost(cfg, &response.usage);
    Ok(response)
}

/// Cost from the configured per-token prices; 0.0 when neither price is set.
fn cost(cfg: &LlmConfig, usage: &Usage) -> f64 {
    let input = cfg.input_cost_per_token.unwrap_or(0.0) * usage.prompt_tokens as f64;
    let output = cfg.output_cost_per_token.unwrap_or(0.0) * usage.completion_tokens as f64;
    input + output
}
