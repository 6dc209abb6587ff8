//! `LlmConfig`: the settings of one LLM, read leniently from the agent's `llm` JSON object
//! (the reference's `LLM` model, 50 keys). Unknown keys are ignored and `null` means the
//! reference default. This file only parses and holds settings; it must not do I/O, and the
//! API key must never appear in its `Debug` output or its errors.

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use super::error::LlmError;

/// Settings of one LLM, read from the agent's `llm` JSON object.
#[derive(Clone)]
pub struct LlmConfig {
    /// Model string with provider prefix, e.g. `anthropic/claude-sonnet-4-5-20250929`.
    pub model: String,
    /// API key; `None` when absent, blank or the masked `**********`. Never logged.
    pub api_key: Option<String>,
    /// Provider base URL; `None` uses the provider's default.
    pub base_url: Option<String>,
    /// API version (Azure only; default `2024-12-01-preview`).
    pub api_version: Option<String>,
    /// Total number of attempts (not re-tries), at least 1. Default 5.
    pub num_retries: u32,
    /// Exponential backoff multiplier in seconds. Default 8.
    pub retry_multiplier: f64,
    /// Shortest wait between attempts, seconds. Default 8.
    pub retry_min_wait: f64,
    /// Longest wait between attempts, seconds. Default 64.
    pub retry_max_wait: f64,
    /// Per-request timeout; for streams, the longest wait for the next bytes. Default 300 s.
    pub timeout: Duration,
    /// Sampling temperature, sent only when set (and not for reasoning/thinking models).
    pub temperature: Option<f64>,
    /// Nucleus sampling, sent only when set (and not for reasoning/thinking models).
    pub top_p: Option<f64>,
    /// Top-k sampling, sent only when set and the API accepts it.
    pub top_k: Option<f64>,
    /// The model's context window, when configured.
    pub max_input_tokens: Option<u64>,
    /// Output token limit; when unset a small built-in table is used (see `provider`).
    pub max_output_tokens: Option<u64>,
    /// Extra HTTP headers sent with every request (after the built-in ones, so they win).
    pub extra_headers: Vec<(String, String)>,
    /// Stream the completion over SSE and report deltas.
    pub stream: bool,
    /// Use prompt-cache breakpoints on models that support them. Default true.
    pub caching_prompt: bool,
    /// `reasoning_effort` for models that take it. Default `high`.
    pub reasoning_effort: Option<String>,
    /// Extended-thinking budget cap for the Claude models that get thinking. Default 200000.
    pub extended_thinking_budget: Option<u64>,
    /// Extra top-level body fields (LiteLLM's `extra_body`), merged last.
    pub litellm_extra_body: Map<String, Value>,
    /// Sampling seed, sent only when set.
    pub seed: Option<i64>,
    /// Price of one input token in USD, for `LlmResponse::cost`.
    pub input_cost_per_token: Option<f64>,
    /// Price of one output token in USD, for `LlmResponse::cost`.
    pub output_cost_per_token: Option<f64>,
    /// Sent as `HTTP-Referer` to every provider. Default `https://docs.all-hands.dev/`.
    pub openrouter_site_url: String,
    /// Sent as `X-Title` to every provider. Default `OpenHands`.
    pub openrouter_app_name: String,
    /// Which metrics bucket this LLM feeds (`default`, `condenser`, …).
    pub usage_id: String,
    /// Let the client adapt requests the provider would reject (drop `thinking` when the
    /// last tool-call turn has no thinking blocks). Default true.
    pub modify_params: bool,
    /// Drop image parts when true.
    pub disable_vision: Option<bool>,
    /// Force plain-string message content (`Some(true)`) or lists (`Some(false)`); `None`
    /// decides by model name.
    pub force_string_serializer: Option<bool>,
    /// `prompt_cache_retention` for the OpenAI models that take it. Default `24h`.
    pub prompt_cache_retention: Option<String>,
    /// `prompt_cache_key` for OpenAI, sent when set.
    pub prompt_cache_key: Option<String>,
    /// Whether the agent uses native tool calling (informational for the caller).
    pub native_tool_calling: bool,
    /// Character cap of one message the agent loop applies (informational). Default 30000.
    pub max_message_chars: u64,
}

impl fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmConfig")
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "**********"))
            .field("base_url", &self.base_url)
            .field("num_retries", &self.num_retries)
            .field("timeout", &self.timeout)
            .field("stream", &self.stream)
            .field("caching_prompt", &self.caching_prompt)
            .field("usage_id", &self.usage_id)
            .finish_non_exhaustive()
    }
}

impl LlmConfig {
    /// The reference defaults for `model`, with no key and no base URL.
    pub fn new(model: impl Into<String>) -> LlmConfig {
        LlmConfig {
            model: model.into(),
            api_key: None,
            base_url: None,
            api_version: None,
            num_retries: 5,
            retry_multiplier: 8.0,
            retry_min_wait: 8.0,
            retry_max_wait: 64.0,
            timeout: Duration::from_secs(300),
            temperature: None,
            top_p: None,
            top_k: None,
            max_input_tokens: None,
            max_output_tokens: None,
            extra_headers: Vec::new(),
            stream: false,
            caching_prompt: true,
            reasoning_effort: Some("high".to_owned()),
            extended_thinking_budget: Some(200_000),
            litellm_extra_body: Map::new(),
            seed: None,
            input_cost_per_token: None,
            output_cost_per_token: None,
            openrouter_site_url: "https://docs.all-hands.dev/".to_owned(),
            openrouter_app_name: "OpenHands".to_owned(),
            usage_id: "default".to_owned(),
            modify_params: true,
            disable_vision: None,
            force_string_serializer: None,
            prompt_cache_retention: Some("24h".to_owned()),
            prompt_cache_key: None,
            native_tool_calling: true,
            max_message_chars: 30_000,
        }
    }

    /// Reads the agent's `llm` object. Unknown keys are ignored, `null` keeps the default;
    /// a missing/empty `model` or a value of the wrong type is a `LlmError::Config`.
    pub fn from_json(v: &Value) -> Result<LlmConfig, LlmError> {
        let obj = v
            .as_object()
            .ok_or_else(|| LlmError::Config("llm settings must be a JSON object".to_owned()))?;
        let r = Reader(obj);
        let model = r.string("model")?.unwrap_or_default();
        if model.trim().is_empty() {
            return Err(LlmError::Config("llm.model is required".to_owned()));
        }
        let mut c = LlmConfig::new(model.trim());
        c.api_key = r.secret("api_key")?;
        c.base_url = r.string("base_url")?.filter(|s| !s.trim().is_empty());
        c.api_version = r.string("api_version")?.filter(|s| !s.trim().is_empty());
        if let Some(n) = r.f64("num_retries")? {
            c.num_retries = n.clamp(1.0, 1000.0) as u32;
        }
        if let Some(x) = r.f64("retry_multiplier")? {
            c.retry_multiplier = x;
        }
        if let Some(x) = r.f64("retry_min_wait")? {
            c.retry_min_wait = x;
        }
        if let Some(x) = r.f64("retry_max_wait")? {
            c.retry_max_wait = x;
        }
        if let Some(x) = r.f64("timeout")? {
            c.timeout = secs(x).ok_or_else(|| bad_type("timeout", "a positive number"))?;
        }
        c.temperature = r.f64("temperature")?;
        c.top_p = r.f64("top_p")?;
        c.top_k = r.f64("top_k")?;
        c.max_input_tokens = r.u64("max_input_tokens")?;
        c.max_output_tokens = r.u64("max_output_tokens")?;
        c.extra_headers = r.headers("extra_headers")?;
        if let Some(b) = r.bool("stream")? {
            c.stream = b;
        }
        if let Some(b) = r.bool("caching_prompt")? {
            c.caching_prompt = b;
        }
        if let Some(s) = r.string("reasoning_effort")? {
            c.reasoning_effort = Some(s);
        }
        if let Some(n) = r.u64("extended_thinking_budget")? {
            c.extended_thinking_budget = Some(n);
        }
        if let Some(x) = obj.get("litellm_extra_body") {
            match x {
                Value::Null => {}
                Value::Object(m) => c.litellm_extra_body = m.clone(),
                _ => return Err(bad_type("litellm_extra_body", "an object")),
            }
        }
        c.seed = r.f64("seed")?.map(|x| x as i64);
        c.input_cost_per_token = r.f64("input_cost_per_token")?;
        c.output_cost_per_token = r.f64("output_cost_per_token")?;
        if let Some(s) = r.string("openrouter_site_url")? {
            c.openrouter_site_url = s;
        }
        if let Some(s) = r.string("openrouter_app_name")? {
            c.openrouter_app_name = s;
        }
        if let Some(s) = r.string("usage_id")? {
            c.usage_id = s;
        }
        if let Some(b) = r.bool("modify_params")? {
            c.modify_params = b;
        }
        c.disable_vision = r.bool("disable_vision")?;
        c.force_string_serializer = r.bool("force_string_serializer")?;
        if let Some(s) = r.string("prompt_cache_retention")? {
            c.prompt_cache_retention = Some(s);
        }
        c.prompt_cache_key = r.string("prompt_cache_key")?;
        if let Some(b) = r.bool("native_tool_calling")? {
            c.native_tool_calling = b;
        }
        if let Some(n) = r.u64("max_message_chars")? {
            c.max_message_chars = n;
        }
        Ok(c)
    }
}

/// A positive, finite number of seconds as a `Duration`.
pub(crate) fn secs(x: f64) -> Option<Duration> {
    if x.is_finite() && x > 0.0 {
        Duration::try_from_secs_f64(x).ok()
    } else {
        None
    }
}

fn bad_type(key: &str, want: &str) -> LlmError {
    LlmError::Config(format!("llm.{key} must be {want}"))
}

/// Typed, null-tolerant access to the keys of the `llm` object.
struct Reader<'a>(&'a Map<String, Value>);

impl Reader<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn string(&self, key: &str) -> Result<Option<String>, LlmError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad_type(key, "a string")),
        }
    }

    /// The API key; blank and the masked value count as absent (as in the reference).
    fn secret(&self, key: &str) -> Result<Option<String>, LlmError> {
        Ok(self
            .string(key)?
            .filter(|s| !s.trim().is_empty() && s != "**********"))
    }

    fn f64(&self, key: &str) -> Result<Option<f64>, LlmError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| bad_type(key, "a finite number")),
            Some(Value::String(s)) => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| bad_type(key, "a number")),
            Some(_) => Err(bad_type(key, "a number")),
        }
    }

    fn u64(&self, key: &str) -> Result<Option<u64>, LlmError> {
        match self.f64(key)? {
            None => Ok(None),
            Some(x) if x >= 0.0 && x <= u64::MAX as f64 => Ok(Some(x as u64)),
            Some(_) => Err(bad_type(key, "a non-negative integer")),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, LlmError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(bad_type(key, "a boolean")),
        }
    }

    fn headers(&self, key: &str) -> Result<Vec<(String, String)>, LlmError> {
        let Some(v) = self.get(key) else {
            return Ok(Vec::new());
        };
        let m = v
            .as_object()
            .ok_or_else(|| bad_type(key, "an object of header names to values"))?;
        let mut out = Vec::with_capacity(m.len());
        for (name, value) in m {
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => continue,
                _ => return Err(bad_type(key, "an object of header names to strings")),
            };
            out.push((name.clone(), value));
        }
        Ok(out)
    }
}
