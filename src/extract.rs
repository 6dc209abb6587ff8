//! Request parsing with the reference's validation errors: query strings
//! (repeated keys allowed), JSON bodies (accepted whatever the content type,
//! as FastAPI does for JSON-declared bodies), and UUID path segments.
//!
//! Every failure is a 422 naming the parameter; nothing here panics.

use actix_web::HttpRequest;
use agent_actors::ids::Uuid;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// Decoded query parameters, in order, duplicates kept.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Query {
    /// Parses the request's query string.
    pub fn from_request(req: &HttpRequest) -> Query {
        Query::parse(req.query_string())
    }

    /// Parses a query string.
    pub fn parse(qs: &str) -> Query {
        let pairs = qs
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (percent_decode(k), percent_decode(v)),
                None => (percent_decode(p), String::new()),
            })
            .collect();
        Query { pairs }
    }

    /// The first value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated parameter.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// An optional string.
    pub fn opt_str(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }

    /// An optional integer within bounds.
    pub fn opt_int(
        &self,
        name: &str,
        min: Option<i64>,
        max: Option<i64>,
    ) -> ApiResult<Option<i64>> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        let n: i64 = raw.trim().parse().map_err(|_| {
            ApiError::invalid(
                "int_parsing",
                &["query", name],
                "Input should be a valid integer, unable to parse string as an integer",
                Value::String(raw.into()),
            )
        })?;
        if let Some(lo) = min
            && n < lo
        {
            return Err(ApiError::invalid(
                if lo == 1 {
                    "greater_than"
                } else {
                    "greater_than_equal"
                },
                &["query", name],
                if lo == 1 {
                    "Input should be greater than 0".to_string()
                } else {
                    format!("Input should be greater than or equal to {lo}")
                },
                Value::String(raw.into()),
            ));
        }
        if let Some(hi) = max
            && n > hi
        {
            return Err(ApiError::invalid(
                "less_than_equal",
                &["query", name],
                format!("Input should be less than or equal to {hi}"),
                Value::String(raw.into()),
            ));
        }
        Ok(Some(n))
    }

    /// A page size: default 100, between 1 and 100.
    pub fn limit(&self) -> ApiResult<usize> {
        Ok(self.opt_int("limit", Some(1), Some(100))?.unwrap_or(100) as usize)
    }

    /// An optional boolean (pydantic's accepted spellings).
    pub fn opt_bool(&self, name: &str) -> ApiResult<Option<bool>> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => Ok(Some(true)),
            "false" | "0" | "no" | "off" | "f" | "n" => Ok(Some(false)),
            _ => Err(ApiError::invalid(
                "bool_parsing",
                &["query", name],
                "Input should be a valid boolean, unable to interpret input",
                Value::String(raw.into()),
            )),
        }
    }

    /// An optional value from a fixed set.
    pub fn opt_enum(&self, name: &str, allowed: &[&str]) -> ApiResult<Option<String>> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        if allowed.contains(&raw) {
            return Ok(Some(raw.to_string()));
        }
        let list = match allowed.len() {
            0 => String::new(),
            1 => format!("'{}'", allowed[0]),
            n => {
                let head: Vec<String> = allowed[..n - 1].iter().map(|a| format!("'{a}'")).collect();
                format!("{} or '{}'", head.join(", "), allowed[n - 1])
            }
        };
        Err(ApiError::invalid(
            "enum",
            &["query", name],
            format!("Input should be {list}"),
            Value::String(raw.into()),
        ))
    }

    /// An optional ISO date-time.
    pub fn opt_datetime(
        &self,
        name: &str,
    ) -> ApiResult<Option<agent_actors::time::ParsedDateTime>> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        agent_actors::time::ParsedDateTime::parse(raw)
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid(
                    "datetime_from_date_parsing",
                    &["query", name],
                    "Input should be a valid datetime or date",
                    Value::String(raw.into()),
                )
            })
    }

    /// An optional UUID.
    pub fn opt_uuid(&self, name: &str) -> ApiResult<Option<Uuid>> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) => parse_uuid(raw, &["query", name]).map(Some),
        }
    }
}

/// Parses a UUID (any accepted form) or answers 422 at `loc`.
pub fn parse_uuid(raw: &str, loc: &[&str]) -> ApiResult<Uuid> {
    Uuid::parse(raw).ok_or_else(|| {
        ApiError::invalid(
            "uuid_parsing",
            loc,
            "Input should be a valid UUID, invalid character or length",
            Value::String(raw.into()),
        )
    })
}

/// Parses a conversation id path segment.
pub fn conversation_id(raw: &str) -> ApiResult<Uuid> {
    parse_uuid(raw, &["path", "conversation_id"])
}

/// Parses a JSON body; empty bodies count as missing.
pub fn json_body(body: &[u8]) -> ApiResult<Value> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::invalid(
            "missing",
            &["body"],
            "Field required",
            Value::Null,
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::Validation(vec![crate::error::Invalid {
            kind: "json_invalid".into(),
            loc: vec![Value::String("body".into()), Value::from(e.column() as u64)],
            msg: "JSON decode error".into(),
            input: Value::Object(Default::default()),
        }])
    })
}

/// Parses an optional JSON body (empty → `None`).
pub fn opt_json_body(body: &[u8]) -> ApiResult<Option<Value>> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    json_body(body).map(Some)
}

/// A required object member of a JSON body.
pub fn required<'a>(body: &'a Value, key: &str) -> ApiResult<&'a Value> {
    match body {
        Value::Object(m) => m.get(key).ok_or_else(|| {
            ApiError::invalid("missing", &["body", key], "Field required", body.clone())
        }),
        _ => Err(ApiError::invalid(
            "model_attributes_type",
            &["body"],
            "Input should be a valid dictionary or object to extract fields from",
            body.clone(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let q = Query::parse("ids=a&ids=b%20c&limit=5&x&flag=true&p=%zz");
        assert_eq!(q.all("ids"), vec!["a", "b c"]);
        assert_eq!(q.limit().unwrap(), 5);
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(q.opt_bool("flag").unwrap(), Some(true));
        assert_eq!(q.get("p"), Some("%zz"));
        assert!(Query::parse("limit=101").limit().is_err());
        assert!(Query::parse("limit=0").limit().is_err());
        assert!(Query::parse("limit=abc").limit().is_err());
        assert_eq!(Query::parse("").limit().unwrap(), 100);
        assert_eq!(Query::parse("a=%").get("a"), Some("%"));
        assert_eq!(Query::parse("a=%4").get("a"), Some("%4"));
    }

    #[test]
    fn bodies() {
        assert!(json_body(b"").is_err());
        assert!(json_body(b"{").is_err());
        assert_eq!(json_body(b"{\"a\":1}").unwrap()["a"], 1);
    }
}
