//! The LLM settings object as the reference's `LLM` model dumps it: every
//! field present, in the reference's order, defaults filled in.
//!
//! This is only the data shape (what is stored, echoed back and redacted);
//! calling a provider is the job of `crate::llm`. Secret fields are plain
//! `Option<String>` here; sealing and redaction happen on the JSON form in
//! `crate::model::secrets`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

fn d_model() -> String {
    "gpt-5.5".into()
}
fn d_site() -> String {
    "https://docs.all-hands.dev/".into()
}
fn d_app() -> String {
    "OpenHands".into()
}
fn d_retries() -> i64 {
    5
}
fn d_mult() -> f64 {
    8.0
}
fn d_min_wait() -> i64 {
    8
}
fn d_max_wait() -> i64 {
    64
}
fn d_timeout() -> Option<i64> {
    Some(300)
}
fn d_max_chars() -> i64 {
    30_000
}
fn d_true() -> bool {
    true
}
fn d_some_false() -> Option<bool> {
    Some(false)
}
fn d_folder() -> String {
    "logs/completions".into()
}
fn d_effort() -> Option<String> {
    Some("high".into())
}
fn d_retention() -> Option<String> {
    Some("24h".into())
}
fn d_budget() -> Option<i64> {
    Some(200_000)
}
fn d_usage() -> String {
    "default".into()
}

/// A secret input field: the reference treats `""`, whitespace, `null` and
/// the redaction marker `**********` as "no key".
fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<String> = Option::deserialize(d)?;
    Ok(v.filter(|s| !s.trim().is_empty() && s != crate::model::secrets::REDACTED))
}

/// LLM settings (the reference's `LLM`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Llm {
    /// Provider-prefixed model name, e.g. `openai/gpt-4o` or `anthropic/claude-…`.
    #[serde(default = "d_model")]
    pub model: String,
    /// API key (secret).
    #[serde(default, deserialize_with = "secret")]
    pub api_key: Option<String>,
    /// Provider base URL.
    #[serde(default)]
    pub base_url: Option<String>,
    /// API version (Azure).
    #[serde(default)]
    pub api_version: Option<String>,
    /// AWS access key id (secret).
    #[serde(default, deserialize_with = "secret")]
    pub aws_access_key_id: Option<String>,
    /// AWS secret access key (secret).
    #[serde(default, deserialize_with = "secret")]
    pub aws_secret_access_key: Option<String>,
    /// AWS session token (secret).
    #[serde(default, deserialize_with = "secret")]
    pub aws_session_token: Option<String>,
    /// AWS region.
    #[serde(default)]
    pub aws_region_name: Option<String>,
    /// AWS profile.
    #[serde(default)]
    pub aws_profile_name: Option<String>,
    /// AWS role.
    #[serde(default)]
    pub aws_role_name: Option<String>,
    /// AWS session name.
    #[serde(default)]
    pub aws_session_name: Option<String>,
    /// Bedrock runtime endpoint.
    #[serde(default)]
    pub aws_bedrock_runtime_endpoint: Option<String>,
    /// Sent as `HTTP-Referer` to every provider.
    #[serde(default = "d_site")]
    pub openrouter_site_url: String,
    /// Sent as `X-Title` to every provider.
    #[serde(default = "d_app")]
    pub openrouter_app_name: String,
    /// Total attempts per completion.
    #[serde(default = "d_retries")]
    pub num_retries: i64,
    /// Exponential back-off multiplier, seconds.
    #[serde(default = "d_mult")]
    pub retry_multiplier: f64,
    /// Shortest wait between attempts, seconds.
    #[serde(default = "d_min_wait")]
    pub retry_min_wait: i64,
    /// Longest wait between attempts, seconds.
    #[serde(default = "d_max_wait")]
    pub retry_max_wait: i64,
    /// Request timeout, seconds.
    #[serde(default = "d_timeout")]
    pub timeout: Option<i64>,
    /// Longest message text sent to the model.
    #[serde(default = "d_max_chars")]
    pub max_message_chars: i64,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Top-k sampling.
    #[serde(default)]
    pub top_k: Option<f64>,
    /// Context window override.
    #[serde(default)]
    pub max_input_tokens: Option<i64>,
    /// Output token limit override.
    #[serde(default)]
    pub max_output_tokens: Option<i64>,
    /// Canonical model name for capability lookups.
    #[serde(default)]
    pub model_canonical_name: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub extra_headers: Option<Map<String, Value>>,
    /// Price per input token.
    #[serde(default)]
    pub input_cost_per_token: Option<f64>,
    /// Price per output token.
    #[serde(default)]
    pub output_cost_per_token: Option<f64>,
    /// Ollama base URL.
    #[serde(default)]
    pub ollama_base_url: Option<String>,
    /// Stream tokens (SSE).
    #[serde(default)]
    pub stream: bool,
    /// Drop unsupported parameters.
    #[serde(default = "d_true")]
    pub drop_params: bool,
    /// Let the client adapt parameters.
    #[serde(default = "d_true")]
    pub modify_params: bool,
    /// Disable image input.
    #[serde(default)]
    pub disable_vision: Option<bool>,
    /// Disable stop words.
    #[serde(default = "d_some_false")]
    pub disable_stop_word: Option<bool>,
    /// Use prompt caching where supported.
    #[serde(default = "d_true")]
    pub caching_prompt: bool,
    /// Log completions to files.
    #[serde(default)]
    pub log_completions: bool,
    /// Where completion logs go.
    #[serde(default = "d_folder")]
    pub log_completions_folder: String,
    /// Custom tokenizer.
    #[serde(default)]
    pub custom_tokenizer: Option<String>,
    /// Use the provider's native function calling.
    #[serde(default = "d_true")]
    pub native_tool_calling: bool,
    /// Force string message content.
    #[serde(default)]
    pub force_string_serializer: Option<bool>,
    /// Reasoning effort for reasoning models.
    #[serde(default = "d_effort")]
    pub reasoning_effort: Option<String>,
    /// Reasoning summary mode.
    #[serde(default)]
    pub reasoning_summary: Option<String>,
    /// Ask for encrypted reasoning items.
    #[serde(default = "d_true")]
    pub enable_encrypted_reasoning: bool,
    /// Prompt cache retention hint.
    #[serde(default = "d_retention")]
    pub prompt_cache_retention: Option<String>,
    /// Extended thinking budget.
    #[serde(default = "d_budget")]
    pub extended_thinking_budget: Option<i64>,
    /// Sampling seed.
    #[serde(default)]
    pub seed: Option<i64>,
    /// Name under which usage is accounted (`stats.usage_to_metrics`).
    #[serde(default = "d_usage")]
    pub usage_id: String,
    /// Extra body fields merged into provider requests.
    #[serde(default)]
    pub litellm_extra_body: Map<String, Value>,
    /// Profiles to try when a call fails for a transient reason. The reference never
    /// dumps it (so the official client never sends it); here it is kept with the
    /// conversation, and shown only when a client set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_strategy: Option<FallbackStrategy>,
}

/// The reference's `FallbackStrategy`: LLM profile names, tried in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FallbackStrategy {
    /// Profile names of the server's store.
    pub fallback_llms: Vec<String>,
    /// The reference's profile directory; this server reads its own store.
    #[serde(default)]
    pub profile_store_dir: Option<Value>,
}

/// Names of the LLM fields that hold secrets.
pub const LLM_SECRET_FIELDS: [&str; 4] = [
    "api_key",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
];

impl Llm {
    /// The settings as JSON, every field present, in the reference's order.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_order() {
        let llm: Llm =
            serde_json::from_str(r#"{"model":"openai/x","api_key":"**********"}"#).unwrap();
        assert_eq!(llm.api_key, None);
        let v = llm.to_value();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 49);
        assert_eq!(keys[0], "model");
        assert_eq!(keys[48], "litellm_extra_body");
        assert_eq!(v["retry_multiplier"].to_string(), "8.0");
        assert_eq!(v["timeout"], 300);
        assert_eq!(v["reasoning_effort"], "high");
        let with: Llm = serde_json::from_str(
            r#"{"model":"openai/x","fallback_strategy":{"fallback_llms":["a","b"]}}"#,
        )
        .unwrap();
        let names = &with.fallback_strategy.as_ref().unwrap().fallback_llms;
        assert_eq!(names, &["a", "b"]);
        assert_eq!(
            with.to_value()["fallback_strategy"]["fallback_llms"],
            serde_json::json!(["a", "b"])
        );
        assert!(llm.to_value().get("fallback_strategy").is_none());
        assert!(
            serde_json::from_str::<Llm>(r#"{"fallback_strategy":{"fallback_llms":"a"}}"#).is_err()
        );
    }
}
