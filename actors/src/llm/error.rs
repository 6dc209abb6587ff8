//! `LlmError`: every way an LLM call fails, named by the reference SDK exception class that
//! becomes `ConversationErrorEvent.code`, plus the classification of HTTP statuses, provider
//! error bodies and transport errors into it. Error text must never carry the API key:
//! every message built here goes through `redact`.

use std::fmt;

/// Longest provider error text kept in a detail.
const MAX_BODY_CHARS: usize = 4000;

/// Wording that means the prompt no longer fits (LiteLLM's and the SDK's checks, lowercase).
const CONTEXT_PATTERNS: &[&str] = &[
    "contextwindowexceedederror",
    "context_length_exceeded",
    "maximum context length",
    "context length exceeded",
    "prompt is too long",
    "input is too long",
    "input length and `max_tokens` exceed context limit",
    "please reduce the length of",
    "exceeds the available context size",
    "input exceeds the context window",
    "context window exceeds limit",
    "exceeds the context window",
    "exceeds the maximum number of tokens",
];

/// Wording of providers rejecting a tool-use/tool-result history (lowercase).
const MALFORMED_HISTORY_PATTERNS: &[&str] = &[
    "tool_use ids were found without `tool_result` blocks immediately after",
    "`tool_use` ids were found without `tool_result` blocks immediately after",
    "each `tool_use` block must have a corresponding `tool_result` block in the next message",
    "each tool_use must have a single result",
    "found multiple `tool_result` blocks with id:",
    "unexpected `tool_use_id` found in `tool_result` blocks",
    "each `tool_result` block must have a corresponding `tool_use` block in the previous message",
    "must be followed by tool messages responding to each 'tool_call_id'",
    "failed to parse tool call arguments as json",
];

/// Wording of auth failures that some providers send as 400 (lowercase).
const AUTH_PATTERNS: &[&str] = &[
    "invalid api key",
    "invalid x-api-key",
    "incorrect api key",
    "missing api key",
    "invalid authentication",
    "unauthorized",
    "access denied",
];

/// Why an LLM call failed. Each variant holds the readable detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LlmError {
    /// 401/403 or an auth-worded rejection (`LLMAuthenticationError`). Not retried.
    Authentication(String),
    /// A 4xx the provider will keep rejecting (`LLMBadRequestError`). Not retried.
    BadRequest(String),
    /// The prompt exceeds the context window (`LLMContextWindowExceedError`). Not retried.
    ContextWindowExceeded(String),
    /// The provider rejects the tool-call history (`LLMMalformedConversationHistoryError`).
    MalformedHistory(String),
    /// 429 (`LLMRateLimitError`). Retried.
    RateLimit(String),
    /// 408 or no bytes within `timeout` (`LLMTimeoutError`). Retried.
    Timeout(String),
    /// 502/503/504/529 (`LLMServiceUnavailableError`). Retried.
    ServiceUnavailable(String),
    /// 500 and other 5xx, or an unreadable success body (`LLMServiceUnavailableError`, as the
    /// SDK maps LiteLLM's `InternalServerError`). Retried.
    InternalServer(String),
    /// Could not connect or the connection broke (`LLMServiceUnavailableError`, as the SDK
    /// maps `APIConnectionError`). Retried.
    Connection(String),
    /// A success without any choice / any stream data (`LLMNoResponseError`). Retried.
    NoResponse(String),
    /// The settings cannot make a request: unknown provider, missing or bad base URL, bad
    /// header (`LLMBadRequestError`, as LiteLLM raises `BadRequestError`). Not retried.
    Config(String),
}

impl LlmError {
    /// The reference SDK exception class name, used as `ConversationErrorEvent.code`.
    pub fn code(&self) -> &'static str {
        match self {
            LlmError::Authentication(_) => "LLMAuthenticationError",
            LlmError::BadRequest(_) | LlmError::Config(_) => "LLMBadRequestError",
            LlmError::ContextWindowExceeded(_) => "LLMContextWindowExceedError",
            LlmError::MalformedHistory(_) => "LLMMalformedConversationHistoryError",
            LlmError::RateLimit(_) => "LLMRateLimitError",
            LlmError::Timeout(_) => "LLMTimeoutError",
            LlmError::ServiceUnavailable(_)
            | LlmError::InternalServer(_)
            | LlmError::Connection(_) => "LLMServiceUnavailableError",
            LlmError::NoResponse(_) => "LLMNoResponseError",
        }
    }

    /// A readable message with the provider's error text (never the API key).
    pub fn detail(&self) -> String {
        self.message().to_owned()
    }

    /// Whether another attempt may succeed: connection errors, timeouts, 429, 5xx and
    /// empty responses. Never 400/401/403/404.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LlmError::RateLimit(_)
                | LlmError::Timeout(_)
                | LlmError::ServiceUnavailable(_)
                | LlmError::InternalServer(_)
                | LlmError::Connection(_)
                | LlmError::NoResponse(_)
        )
    }

    fn message(&self) -> &str {
        match self {
            LlmError::Authentication(m)
            | LlmError::BadRequest(m)
            | LlmError::ContextWindowExceeded(m)
            | LlmError::MalformedHistory(m)
            | LlmError::RateLimit(m)
            | LlmError::Timeout(m)
            | LlmError::ServiceUnavailable(m)
            | LlmError::InternalServer(m)
            | LlmError::Connection(m)
            | LlmError::NoResponse(m)
            | LlmError::Config(m) => m,
        }
    }
}

impl fmt::Display for LlmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for LlmError {}

/// Replaces every occurrence of the key in `text`; keys shorter than 8 chars are left
/// alone because replacing them would mangle ordinary words.
pub(crate) fn redact(text: &str, api_key: Option<&str>) -> String {
    match api_key {
        Some(k) if k.len() >= 8 && text.contains(k) => text.replace(k, "**********"),
        _ => text.to_owned(),
    }
}

fn clip(text: &str) -> String {
    let t = text.trim();
    match t.char_indices().nth(MAX_BODY_CHARS) {
        Some((cut, _)) => format!("{}… [truncated]", &t[..cut]),
        None => t.to_owned(),
    }
}

fn contains_any(haystack: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| haystack.contains(n))
}

/// Classifies a non-success HTTP status with the provider's body text.
/// `provider` is the LiteLLM exception prefix (`Anthropic`, `OpenAI`, `Azure`).
pub(crate) fn from_status(status: u16, body: &str, provider: &str, key: Option<&str>) -> LlmError {
    let lower = body.to_lowercase();
    let text = |class: &str| {
        let body = if body.trim().is_empty() {
            format!("HTTP {status} with an empty body")
        } else {
            clip(body)
        };
        redact(
            &format!("litellm.{class}: {provider}Exception - {body}"),
            key,
        )
    };
    let client_or_server = status == 400 || status == 413 || status == 422 || status >= 500;
    if status == 413 || (client_or_server && contains_any(&lower, CONTEXT_PATTERNS)) {
        return LlmError::ContextWindowExceeded(text("ContextWindowExceededError"));
    }
    if client_or_server && contains_any(&lower, MALFORMED_HISTORY_PATTERNS) {
        return LlmError::MalformedHistory(text("BadRequestError"));
    }
    match status {
        401 => LlmError::Authentication(text("AuthenticationError")),
        403 => LlmError::Authentication(text("PermissionDeniedError")),
        400 | 422 if contains_any(&lower, AUTH_PATTERNS) => {
            LlmError::Authentication(text("AuthenticationError"))
        }
        404 => LlmError::BadRequest(text("NotFoundError")),
        408 => LlmError::Timeout(text("Timeout")),
        429 => LlmError::RateLimit(text("RateLimitError")),
        500 => LlmError::InternalServer(text("InternalServerError")),
        502 => LlmError::ServiceUnavailable(text("BadGatewayError")),
        503 | 504 | 529 => LlmError::ServiceUnavailable(text("ServiceUnavailableError")),
        s if s >= 500 => LlmError::InternalServer(text("InternalServerError")),
        _ => LlmError::BadRequest(text("BadRequestError")),
    }
}

/// Classifies an error object that arrives inside a 200 stream (OpenAI `{"error":…}`,
/// Anthropic `event: error`) by the status it would have had.
pub(crate) fn from_stream_error(
    kind: &str,
    raw: &str,
    provider: &str,
    key: Option<&str>,
) -> LlmError {
    let kind = kind.to_lowercase();
    let status = if kind.contains("overloaded") {
        529
    } else if kind.contains("rate_limit") {
        429
    } else if kind.contains("authentication") {
        401
    } else if kind.contains("permission") {
        403
    } else if kind.contains("not_found") {
        404
    } else if kind.contains("request_too_large") {
        413
    } else if kind.contains("timeout") {
        408
    } else if kind.contains("invalid_request") || kind.contains("context_length") {
        400
    } else {
        500
    };
    from_status(status, raw, provider, key)
}

/// Classifies a transport error from reqwest (the message names the URL, never headers).
pub(crate) fn from_reqwest(e: &reqwest::Error, provider: &str, key: Option<&str>) -> LlmError {
    let mut chain = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        src = s.source();
    }
    let chain = redact(&chain, key);
    if e.is_timeout() {
        LlmError::Timeout(format!(
            "litellm.Timeout: {provider}Exception - request timed out: {chain}"
        ))
    } else if e.is_builder() {
        LlmError::Config(format!("invalid LLM request: {chain}"))
    } else {
        LlmError::Connection(format!(
            "litellm.APIConnectionError: {provider}Exception - {chain}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_sdk_classes() {
        let c = |s: u16, b: &str| from_status(s, b, "OpenAI", None).code();
        assert_eq!(c(401, "nope"), "LLMAuthenticationError");
        assert_eq!(c(403, "nope"), "LLMAuthenticationError");
        assert_eq!(c(400, "bad field"), "LLMBadRequestError");
        assert_eq!(
            c(400, "This model's maximum context length is 8192 tokens"),
            "LLMContextWindowExceedError"
        );
        assert_eq!(
            c(400, "prompt is too long: 210000 tokens"),
            "LLMContextWindowExceedError"
        );
        assert_eq!(
            c(
                400,
                "messages.2: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1"
            ),
            "LLMMalformedConversationHistoryError"
        );
        assert_eq!(c(404, "no such model"), "LLMBadRequestError");
        assert_eq!(c(408, ""), "LLMTimeoutError");
        assert_eq!(c(429, "slow down"), "LLMRateLimitError");
        assert_eq!(c(500, "boom"), "LLMServiceUnavailableError");
        assert_eq!(c(503, "down"), "LLMServiceUnavailableError");
        assert!(!from_status(404, "", "OpenAI", None).is_retryable());
        assert!(!from_status(400, "", "OpenAI", None).is_retryable());
        assert!(from_status(502, "", "OpenAI", None).is_retryable());
        assert!(from_status(504, "", "OpenAI", None).is_retryable());
        assert!(from_status(429, "", "OpenAI", None).is_retryable());
    }

    #[test]
    fn detail_has_provider_text_and_never_the_key() {
        let e = from_status(
            401,
            r#"{"error":{"message":"Incorrect API key provided: sk-secret-123456"}}"#,
            "OpenAI",
            Some("sk-secret-123456"),
        );
        let d = e.detail();
        assert!(d.starts_with("litellm.AuthenticationError: OpenAIException - "));
        assert!(d.contains("Incorrect API key provided"));
        assert!(!d.contains("sk-secret-123456"));
    }
}
