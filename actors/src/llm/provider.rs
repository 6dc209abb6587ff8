//! Model string → provider: which wire protocol, which URL, which auth header and which
//! model name to send (contract §4.7), and the model-family facts LiteLLM would look up
//! (prompt caching, extended thinking, reasoning models, default output limits).
//! This file must not do I/O and must not hold the API key: `Endpoint` is safe to log.

use super::config::LlmConfig;
use super::error::LlmError;

const ANTHROPIC_BASE: &str = "https://api.anthropic.com";
const OPENAI_BASE: &str = "https://api.openai.com/v1";
const OPENHANDS_PROXY_BASE: &str = "https://llm-proxy.app.all-hands.dev/";
const OLLAMA_BASE: &str = "http://localhost:11434";
const AZURE_API_VERSION: &str = "2024-12-01-preview";

/// OpenAI-compatible providers whose public base URL is well known.
const OPENAI_COMPATIBLE: &[(&str, &str)] = &[
    ("openrouter", "https://openrouter.ai/api/v1"),
    ("deepseek", "https://api.deepseek.com/v1"),
    ("groq", "https://api.groq.com/openai/v1"),
    ("mistral", "https://api.mistral.ai/v1"),
    ("xai", "https://api.x.ai/v1"),
    ("together_ai", "https://api.together.xyz/v1"),
    ("fireworks_ai", "https://api.fireworks.ai/inference/v1"),
    (
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta/openai",
    ),
];

/// The wire protocol of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Anthropic Messages API (`POST …/v1/messages`).
    Anthropic,
    /// OpenAI Chat Completions (`POST …/chat/completions`), also used by proxies.
    OpenAiChat,
}

/// How the API key travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// `x-api-key: <key>` (Anthropic).
    XApiKey,
    /// `api-key: <key>` (Azure OpenAI).
    AzureApiKey,
}

/// Where and how one LLM is called. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Wire protocol.
    pub protocol: Protocol,
    /// Full request URL.
    pub url: String,
    /// The `model` value sent in the body (the provider prefix removed).
    pub model: String,
    /// Auth header style.
    pub auth: Auth,
    /// Name used in error texts the way LiteLLM prefixes them (`AnthropicException`, …).
    pub provider: &'static str,
    /// Azure deployments take `max_tokens` instead of `max_completion_tokens`.
    pub azure: bool,
    /// The route is a LiteLLM proxy, which forwards Claude-style parameters as-is.
    pub proxy: bool,
}

/// Resolves the endpoint for `cfg.model` and `cfg.base_url` (contract §4.7).
pub fn endpoint(cfg: &LlmConfig) -> Result<Endpoint, LlmError> {
    let model = cfg.model.trim();
    let base = cfg
        .base_url
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty());
    let (prefix, rest) = match model.split_once('/') {
        Some((p, r)) if !r.is_empty() => (Some(p.to_ascii_lowercase()), r),
        _ => (None, model),
    };
    let ep = match prefix.as_deref() {
        Some("openhands") => proxy(rest, Some(base.unwrap_or(OPENHANDS_PROXY_BASE)))?,
        Some("litellm_proxy") => proxy(rest, base)?,
        Some("anthropic") => anthropic(rest, base),
        Some("openai") => openai(rest, base),
        Some("azure") => azure(rest, base, cfg.api_version.as_deref())?,
        Some("ollama" | "ollama_chat") => {
            let root = base.unwrap_or(OLLAMA_BASE).trim_end_matches('/');
            let root = root.strip_suffix("/v1").unwrap_or(root);
            compatible(rest, &format!("{root}/v1"))
        }
        Some(p) => match OPENAI_COMPATIBLE.iter().find(|(name, _)| *name == p) {
            Some((_, default)) => compatible(rest, base.unwrap_or(default)),
            None => match base {
                Some(b) => compatible(rest, b),
                None => {
                    return Err(LlmError::Config(format!(
                        "LLM provider `{p}` of model `{model}` is not supported without \
                         base_url; set llm.base_url to an OpenAI-compatible endpoint"
                    )));
                }
            },
        },
        None if model.to_ascii_lowercase().starts_with("claude") => anthropic(model, base),
        None if is_openai_family(model) => openai(model, base),
        None => match base {
            Some(b) => compatible(model, b),
            None => {
                return Err(LlmError::Config(format!(
                    "cannot tell the provider of model `{model}`; use a `<provider>/<model>` \
                     name (e.g. `anthropic/…`, `openai/…`, `litellm_proxy/…`) or set base_url"
                )));
            }
        },
    };
    check_url(&ep.url)?;
    Ok(ep)
}

fn check_url(url: &str) -> Result<(), LlmError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(LlmError::Config(format!(
            "llm.base_url does not give a valid http(s) URL: {url}"
        ))),
    }
}

fn join(base: &str, path: &str) -> String {
    format!("{}/{path}", base.trim_end_matches('/'))
}

fn anthropic(model: &str, base: Option<&str>) -> Endpoint {
    let base = base.unwrap_or(ANTHROPIC_BASE).trim_end_matches('/');
    // LiteLLM appends /v1/messages to the host root unless it is already there; a base
    // ending in /v1 therefore gives /v1/v1/messages, as the reference does.
    let url = if base.ends_with("/v1/messages") {
        base.to_owned()
    } else {
        join(base, "v1/messages")
    };
    Endpoint {
        protocol: Protocol::Anthropic,
        url,
        model: model.to_owned(),
        auth: Auth::XApiKey,
        provider: "Anthropic",
        azure: false,
        proxy: false,
    }
}

fn openai(model: &str, base: Option<&str>) -> Endpoint {
    let base = match base {
        Some(b) if b.trim_end_matches('/') != "https://api.openai.com" => b,
        _ => OPENAI_BASE,
    };
    compatible(model, base)
}

fn compatible(model: &str, base: &str) -> Endpoint {
    Endpoint {
        protocol: Protocol::OpenAiChat,
        url: join(base, "chat/completions"),
        model: model.to_owned(),
        auth: Auth::Bearer,
        provider: "OpenAI",
        azure: false,
        proxy: false,
    }
}

fn proxy(model: &str, base: Option<&str>) -> Result<Endpoint, LlmError> {
    let base = base.ok_or_else(|| {
        LlmError::Config(format!(
            "model `litellm_proxy/{model}` needs llm.base_url (the LiteLLM proxy URL)"
        ))
    })?;
    let mut ep = compatible(model, base);
    ep.provider = "Litellm_proxy";
    ep.proxy = true;
    Ok(ep)
}

fn azure(
    deployment: &str,
    base: Option<&str>,
    version: Option<&str>,
) -> Result<Endpoint, LlmError> {
    let base = base.ok_or_else(|| {
        LlmError::Config(format!(
            "model `azure/{deployment}` needs llm.base_url (the Azure resource endpoint)"
        ))
    })?;
    let version = version.unwrap_or(AZURE_API_VERSION);
    Ok(Endpoint {
        protocol: Protocol::OpenAiChat,
        url: format!(
            "{}/openai/deployments/{deployment}/chat/completions?api-version={version}",
            base.trim_end_matches('/')
        ),
        model: deployment.to_owned(),
        auth: Auth::AzureApiKey,
        provider: "Azure",
        azure: true,
        proxy: false,
    })
}

/// Bare model names LiteLLM routes to OpenAI.
fn is_openai_family(model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    m.starts_with("gpt-")
        || m.starts_with("chatgpt-")
        || m.starts_with("codex-")
        || ["o1", "o3", "o4"]
            .iter()
            .any(|p| m == *p || m.starts_with(&format!("{p}-")))
}

/// The model name after its last `/`, lowercased, with `.` read as `-` (so that
/// OpenRouter's `claude-sonnet-4.5` and Anthropic's `claude-sonnet-4-5` match alike).
fn base_name(model: &str) -> String {
    model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase()
        .replace('.', "-")
}

fn normalized(model: &str) -> String {
    model.to_ascii_lowercase().replace('.', "-")
}

/// Whether the model is a Claude whose name carries major version `major` as a token
/// (`claude-3-5-sonnet`, `claude-sonnet-4-5`, `claude-opus-4.1`).
fn is_claude_major(model: &str, major: &str) -> bool {
    let m = normalized(model);
    let Some(pos) = m.find("claude") else {
        return false;
    };
    m[pos + "claude".len()..]
        .split(['-', '/', '_', '@', ':'])
        .take_while(|t| t.len() < 8)
        .any(|t| t == major)
}

/// Claude 3.x / 4.x: prompt-cache breakpoints apply.
pub fn supports_prompt_cache(model: &str) -> bool {
    is_claude_major(model, "3") || is_claude_major(model, "4")
}

/// Claude 4.x, which LiteLLM lists as taking `reasoning_effort`.
pub fn is_claude_4(model: &str) -> bool {
    is_claude_major(model, "4")
}

/// The Claude models that get `thinking` and the interleaved-thinking beta header.
pub fn uses_extended_thinking(model: &str) -> bool {
    let m = normalized(model);
    ["claude-sonnet-4-5", "claude-sonnet-4-6", "claude-haiku-4-5"]
        .iter()
        .any(|p| m.contains(p))
}

/// OpenAI reasoning models: take `reasoning_effort`, reject sampling parameters.
pub fn is_reasoning_model(model: &str) -> bool {
    let b = base_name(model);
    b.starts_with("gpt-5")
        || b.starts_with("codex-mini")
        || ["o1", "o3", "o4"]
            .iter()
            .any(|p| b == *p || b.starts_with(&format!("{p}-")))
}

/// Models whose message content the SDK sends as one string instead of a list of parts.
pub fn wants_string_content(model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    [
        "deepseek",
        "glm",
        "groq/kimi-k2-instruct",
        "openrouter/minimax",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// `prompt_cache_retention` applies to gpt-5* and gpt-4.1, except mini variants and Azure.
pub fn takes_prompt_cache_retention(model: &str, azure: bool) -> bool {
    let b = base_name(model);
    !azure && !b.contains("mini") && (b.starts_with("gpt-5") || b.starts_with("gpt-4-1"))
}

/// The effective output limit: the configured one, else the SDK's fixed values and a small
/// subset of LiteLLM's model table; `None` when unknown (the parameter is then omitted,
/// except for Anthropic, where the caller falls back to 4096).
pub fn max_output_tokens(cfg: &LlmConfig) -> Option<u64> {
    if let Some(n) = cfg.max_output_tokens {
        return Some(n);
    }
    let b = base_name(&cfg.model);
    let has = |p: &str| b.contains(p);
    if has("claude-3-7-sonnet") || has("claude-sonnet-4") || has("kimi-k2-thinking") {
        return Some(64_000);
    }
    if has("claude-haiku-4-5") || has("claude-opus-4-5") || has("claude-opus-4-6") {
        return Some(64_000);
    }
    if has("claude-opus-4") {
        return Some(32_000);
    }
    if has("claude-3-5-sonnet") || has("claude-3-5-haiku") {
        return Some(8_192);
    }
    if has("claude-3") {
        return Some(4_096);
    }
    if b.starts_with("gpt-4o") {
        return Some(16_384);
    }
    if b.starts_with("gpt-4-1") {
        return Some(32_768);
    }
    if b.starts_with("gpt-5") {
        return Some(128_000);
    }
    if b == "o1-mini" || b.starts_with("o1-mini-") {
        return Some(65_536);
    }
    if is_reasoning_model(&b) {
        return Some(100_000);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(model: &str, base: Option<&str>) -> Result<Endpoint, LlmError> {
        let mut c = LlmConfig::new(model);
        c.base_url = base.map(str::to_owned);
        endpoint(&c)
    }

    #[test]
    fn model_strings_map_to_endpoints() {
        let e = ep("anthropic/claude-sonnet-4-5-20250929", None).unwrap();
        assert_eq!(e.protocol, Protocol::Anthropic);
        assert_eq!(e.url, "https://api.anthropic.com/v1/messages");
        assert_eq!(e.model, "claude-sonnet-4-5-20250929");
        assert_eq!(e.auth, Auth::XApiKey);

        let e = ep("claude-3-5-sonnet-20240620", Some("http://h:1/")).unwrap();
        assert_eq!(e.url, "http://h:1/v1/messages");
        assert_eq!(e.model, "claude-3-5-sonnet-20240620");
        assert_eq!(
            ep("anthropic/x", Some("http://h/v1")).unwrap().url,
            "http://h/v1/v1/messages"
        );

        let e = ep("openai/gpt-4o", None).unwrap();
        assert_eq!(
            (e.url.as_str(), e.model.as_str()),
            ("https://api.openai.com/v1/chat/completions", "gpt-4o")
        );
        assert_eq!(e.auth, Auth::Bearer);
        assert_eq!(
            ep("gpt-4o", Some("https://api.openai.com/")).unwrap().url,
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(ep("o3-mini", None).unwrap().protocol, Protocol::OpenAiChat);
        assert_eq!(
            ep("openai/m", Some("http://h/v1/")).unwrap().url,
            "http://h/v1/chat/completions"
        );

        let e = ep(
            "litellm_proxy/anthropic/claude-sonnet-4-5",
            Some("http://proxy:4000"),
        )
        .unwrap();
        assert_eq!(
            (e.url.as_str(), e.model.as_str()),
            (
                "http://proxy:4000/chat/completions",
                "anthropic/claude-sonnet-4-5"
            )
        );
        assert!(e.proxy);
        let err = ep("litellm_proxy/x", None).unwrap_err();
        assert_eq!(err.code(), "LLMBadRequestError");
        assert!(err.detail().contains("base_url"));

        let e = ep("openhands/claude-sonnet-4-5", None).unwrap();
        assert_eq!(
            e.url,
            "https://llm-proxy.app.all-hands.dev/chat/completions"
        );
        assert_eq!(e.model, "claude-sonnet-4-5");

        let e = ep("myprov/some-model", Some("http://h:9/api")).unwrap();
        assert_eq!(
            (e.url.as_str(), e.model.as_str()),
            ("http://h:9/api/chat/completions", "some-model")
        );
        assert!(ep("myprov/some-model", None).is_err());
        assert!(ep("mystery-model", None).is_err());
        assert!(ep("openai/gpt-4o", Some("not a url")).is_err());

        let e = ep("azure/my-deploy", Some("https://r.openai.azure.com/")).unwrap();
        assert_eq!(
            e.url,
            "https://r.openai.azure.com/openai/deployments/my-deploy/chat/completions?api-version=2024-12-01-preview"
        );
        assert_eq!(e.auth, Auth::AzureApiKey);
    }

    #[test]
    fn model_families() {
        assert!(supports_prompt_cache(
            "anthropic/claude-sonnet-4-5-20250929"
        ));
        assert!(supports_prompt_cache("claude-3-5-haiku-latest"));
        assert!(supports_prompt_cache(
            "openrouter/anthropic/claude-opus-4.1"
        ));
        assert!(!supports_prompt_cache("claude-2.1"));
        assert!(!supports_prompt_cache("gpt-4o"));
        assert!(uses_extended_thinking(
            "anthropic/claude-sonnet-4-5-20250929"
        ));
        assert!(uses_extended_thinking("claude-haiku-4-5"));
        assert!(!uses_extended_thinking("claude-opus-4-1"));
        assert!(is_reasoning_model("openai/o3-mini"));
        assert!(is_reasoning_model("gpt-5-mini"));
        assert!(!is_reasoning_model("gpt-4o"));
        assert!(!is_reasoning_model("openai/omni-thing"));
        let m = |s: &str| max_output_tokens(&LlmConfig::new(s));
        assert_eq!(m("anthropic/claude-sonnet-4-5-20250929"), Some(64_000));
        assert_eq!(m("openai/gpt-4o"), Some(16_384));
        assert_eq!(m("openai/mock-model"), None);
        assert!(takes_prompt_cache_retention("openai/gpt-4.1", false));
        assert!(!takes_prompt_cache_retention("gpt-4.1-mini", false));
        assert!(!takes_prompt_cache_retention("gpt-4o", false));
    }
}
