//! The one API error type. It renders the reference's (FastAPI's) bodies:
//! `{"detail": "..."}` for HTTP errors, `{"detail": [{type, loc, msg,
//! input}]}` for validation errors (422), and for 5xx
//! `{"detail": "Internal Server Error", "exception": "..."}`.
//!
//! Lower layers convert with `From`. Secret-looking inputs are never echoed
//! back in validation errors.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use agent_actors::conversation::ActorError;
use agent_actors::model::conversation::FieldError;
use serde_json::{Value, json};

/// One validation problem (FastAPI's error item).
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// pydantic error type.
    pub kind: String,
    /// Location, e.g. `["query", "limit"]`.
    pub loc: Vec<Value>,
    /// Message.
    pub msg: String,
    /// The offending input (redacted when it looks secret).
    pub input: Value,
}

/// An error answered to the client.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// A status with a `detail` text.
    Http(StatusCode, String),
    /// 422 with located problems.
    Validation(Vec<Invalid>),
    /// 5xx with the reference's sanitized shape.
    Server(StatusCode, String),
    /// 500 for an unhandled exception: `exception` is its text alone (no status prefix,
    /// unlike an `HTTPException`).
    Unhandled(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Http(s, d) => write!(f, "{s}: {d}"),
            ApiError::Validation(items) => {
                let parts: Vec<String> = items
                    .iter()
                    .map(|i| format!("{}: {}", loc_text(&i.loc), i.msg))
                    .collect();
                write!(f, "422: {}", parts.join("; "))
            }
            ApiError::Server(s, d) => write!(f, "{s}: {d}"),
            ApiError::Unhandled(d) => write!(f, "500 Internal Server Error: {d}"),
        }
    }
}

fn loc_text(loc: &[Value]) -> String {
    loc.iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

impl std::error::Error for ApiError {}

/// Keys whose values are never echoed back.
fn looks_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "key",
        "secret",
        "token",
        "password",
        "credential",
        "authorization",
        "cookie",
        "session",
    ]
    .iter()
    .any(|w| k.contains(w))
        || matches!(k.as_str(), "env" | "environment" | "headers" | "acp_env")
}

/// Redacts secret-looking members of an echoed input.
pub fn redact_input(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    let x = if looks_secret_key(k) {
                        Value::String("<redacted>".into())
                    } else {
                        redact_input(x)
                    };
                    (k.clone(), x)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redact_input).collect()),
        other => other.clone(),
    }
}

impl ApiError {
    /// 404 `Not Found`.
    pub fn not_found() -> ApiError {
        ApiError::Http(StatusCode::NOT_FOUND, "Not Found".into())
    }

    /// 404 with a detail.
    pub fn not_found_msg(detail: impl Into<String>) -> ApiError {
        ApiError::Http(StatusCode::NOT_FOUND, detail.into())
    }

    /// 400 `Bad Request`.
    pub fn bad_request() -> ApiError {
        ApiError::Http(StatusCode::BAD_REQUEST, "Bad Request".into())
    }

    /// 400 with a detail.
    pub fn bad_request_msg(detail: impl Into<String>) -> ApiError {
        ApiError::Http(StatusCode::BAD_REQUEST, detail.into())
    }

    /// 401 `Unauthorized`.
    pub fn unauthorized() -> ApiError {
        ApiError::Http(StatusCode::UNAUTHORIZED, "Unauthorized".into())
    }

    /// 409 with a detail.
    pub fn conflict(detail: impl Into<String>) -> ApiError {
        ApiError::Http(StatusCode::CONFLICT, detail.into())
    }

    /// 500 with an internal message (logged by the caller; shown short).
    pub fn internal(detail: impl Into<String>) -> ApiError {
        ApiError::Server(StatusCode::INTERNAL_SERVER_ERROR, detail.into())
    }

    /// A single 422 problem.
    pub fn invalid(kind: &str, loc: &[&str], msg: impl Into<String>, input: Value) -> ApiError {
        let input = if loc.iter().any(|k| looks_secret_key(k)) {
            Value::String("<redacted>".into())
        } else {
            redact_input(&input)
        };
        ApiError::Validation(vec![Invalid {
            kind: kind.into(),
            loc: loc.iter().map(|s| loc_item(s)).collect(),
            msg: msg.into(),
            input,
        }])
    }

    /// A 422 for a body field problem reported by the models.
    pub fn from_field(e: FieldError, input: &Value) -> ApiError {
        let mut loc = vec![Value::String("body".into())];
        loc.extend(e.loc.iter().map(|s| loc_item(s)));
        // Echo the deepest input we can find at that location.
        let mut at = input;
        for seg in &e.loc {
            let next = match at {
                Value::Object(m) => m.get(seg),
                Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => None,
            };
            match next {
                Some(n) => at = n,
                None => break,
            }
        }
        // Anything inside a secret-looking member is secret, whatever its
        // own name (`secrets.NAME.value`, `llm.api_key`).
        let echoed = if e.loc.iter().any(|k| looks_secret_key(k)) {
            Value::String("<redacted>".into())
        } else {
            redact_input(at)
        };
        ApiError::Validation(vec![Invalid {
            kind: e.kind.into(),
            loc,
            msg: e.msg,
            input: echoed,
        }])
    }
}

fn loc_item(s: &str) -> Value {
    match s.parse::<u64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::String(s.to_string()),
    }
}

impl From<ActorError> for ApiError {
    fn from(e: ActorError) -> Self {
        match e {
            ActorError::NotFound => ApiError::not_found(),
            ActorError::Conflict(m) => ApiError::conflict(m),
            ActorError::BadRequest(m) => ApiError::bad_request_msg(m),
            ActorError::Invalid(f) => ApiError::from_field(f, &Value::Null),
            ActorError::TooManySubscribers => ApiError::Http(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many connections for this conversation".into(),
            ),
            ActorError::Unavailable(m) => {
                log::warn!("conversation unavailable: {m}");
                ApiError::Server(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("Conversation temporarily unavailable: {m}"),
                )
            }
            // `AppState::call` and the event socket retry this one; it only
            // gets here when the retries ran out.
            ActorError::Evicted => ApiError::Server(
                StatusCode::SERVICE_UNAVAILABLE,
                "Conversation temporarily unavailable; retry".into(),
            ),
            ActorError::Storage(m) => {
                log::error!("storage error: {m}");
                ApiError::internal("storage error")
            }
            ActorError::Upstream(m) => ApiError::Server(StatusCode::BAD_GATEWAY, m),
            ActorError::Internal(m) => {
                log::error!("unhandled error: {m}");
                ApiError::Unhandled(m)
            }
        }
    }
}

impl From<agent_actors::store::StoreError> for ApiError {
    fn from(e: agent_actors::store::StoreError) -> Self {
        log::error!("storage error: {e}");
        ApiError::internal("storage error")
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(e: actix::MailboxError) -> Self {
        ApiError::Server(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("service unavailable: {e}"),
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Http(s, _) | ApiError::Server(s, _) => *s,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unhandled(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = match self {
            ApiError::Http(_, d) => json!({ "detail": d }),
            ApiError::Validation(items) => json!({
                "detail": items
                    .iter()
                    .map(|i| json!({"type": i.kind, "loc": i.loc, "msg": i.msg, "input": i.input}))
                    .collect::<Vec<_>>()
            }),
            ApiError::Server(s, d) => json!({
                "detail": "Internal Server Error",
                "exception": format!("{}: {}", s.as_u16(), d),
            }),
            ApiError::Unhandled(d) => json!({
                "detail": "Internal Server Error",
                "exception": d,
            }),
        };
        HttpResponse::build(self.status_code())
            .content_type("application/json")
            .body(body.to_string())
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    fn field(loc: &[&str], kind: &'static str) -> FieldError {
        FieldError {
            loc: loc.iter().map(|s| s.to_string()).collect(),
            msg: "bad".into(),
            kind,
        }
    }

    fn echoed(e: &ApiError) -> Value {
        match e {
            ApiError::Validation(items) => items[0].input.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn inputs_under_secret_members_are_redacted() {
        let body = json!({"secrets": {"A": {"kind": "Bogus", "value": "s3cr3t"}}, "title": "t"});
        let e = ApiError::from_field(field(&["secrets", "A"], "value_error"), &body);
        assert_eq!(echoed(&e), json!("<redacted>"));
        let e = ApiError::invalid(
            "value_error",
            &["body", "secrets", "A"],
            "bad",
            json!({"value": "s3cr3t"}),
        );
        assert_eq!(echoed(&e), json!("<redacted>"));
        // Elsewhere, only secret-looking members are hidden.
        let e = ApiError::from_field(field(&["title"], "string_type"), &body);
        assert_eq!(echoed(&e), json!("t"));
        let e = ApiError::invalid(
            "value_error",
            &["body", "llm"],
            "bad",
            json!({"model": 1, "api_key": "s3cr3t"}),
        );
        assert_eq!(echoed(&e), json!({"model": 1, "api_key": "<redacted>"}));
    }
}
