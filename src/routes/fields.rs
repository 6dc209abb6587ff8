//! Typed members of JSON request bodies for the settings, profile,
//! workspace and catalogue routes, with FastAPI's 422 answers (`type`,
//! `loc`, `msg`) when a member is missing or of the wrong type. Values of
//! secret members are never echoed back. Nothing here panics.

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

fn loc<'a>(prefix: &[&'a str], key: &'a str) -> Vec<&'a str> {
    let mut l = prefix.to_vec();
    l.push(key);
    l
}

fn echo(v: &Value, secret: bool) -> Value {
    if secret {
        Value::String("<redacted>".into())
    } else {
        v.clone()
    }
}

/// The body as an object (422 otherwise).
pub fn object<'a>(body: &'a Value, at: &[&str]) -> ApiResult<&'a Map<String, Value>> {
    body.as_object().ok_or_else(|| {
        ApiError::invalid(
            "model_attributes_type",
            at,
            "Input should be a valid dictionary or object to extract fields from",
            body.clone(),
        )
    })
}

/// A required string member.
pub fn req_str(
    obj: &Map<String, Value>,
    at: &[&str],
    key: &str,
    secret: bool,
) -> ApiResult<String> {
    match obj.get(key) {
        None => Err(ApiError::invalid(
            "missing",
            &loc(at, key),
            "Field required",
            Value::Object(obj.clone()),
        )),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(ApiError::invalid(
            "string_type",
            &loc(at, key),
            "Input should be a valid string",
            echo(v, secret),
        )),
    }
}

/// An optional string member (`null` and absent are `None`).
pub fn opt_str(obj: &Map<String, Value>, at: &[&str], key: &str) -> ApiResult<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(ApiError::invalid(
            "string_type",
            &loc(at, key),
            "Input should be a valid string",
            v.clone(),
        )),
    }
}

/// An optional boolean member, read the way pydantic's lax mode does.
pub fn opt_bool(obj: &Map<String, Value>, at: &[&str], key: &str) -> ApiResult<Option<bool>> {
    let v = match obj.get(key) {
        None => return Ok(None),
        Some(v) => v,
    };
    let parsed = match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) if n.as_i64() == Some(1) => Some(true),
        Value::Number(n) if n.as_i64() == Some(0) => Some(false),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
            "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
            _ => None,
        },
        _ => None,
    };
    parsed.map(Some).ok_or_else(|| {
        ApiError::invalid(
            "bool_type",
            &loc(at, key),
            "Input should be a valid boolean",
            v.clone(),
        )
    })
}

/// An optional object member (`null` and absent are `None`).
pub fn opt_object<'a>(
    obj: &'a Map<String, Value>,
    at: &[&str],
    key: &str,
) -> ApiResult<Option<&'a Map<String, Value>>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(v) => Err(ApiError::invalid(
            "dict_type",
            &loc(at, key),
            "Input should be a valid dictionary",
            v.clone(),
        )),
    }
}

/// An optional object of strings (absent: empty).
pub fn str_map(
    obj: &Map<String, Value>,
    at: &[&str],
    key: &str,
    secret: bool,
) -> ApiResult<Vec<(String, String)>> {
    let Some(m) = opt_object(obj, at, key)? else {
        return Ok(vec![]);
    };
    m.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            other => Err(ApiError::invalid(
                "string_type",
                &loc(&loc(at, key), k),
                "Input should be a valid string",
                echo(other, secret),
            )),
        })
        .collect()
}

/// An optional list of strings (absent: empty).
pub fn str_list(obj: &Map<String, Value>, at: &[&str], key: &str) -> ApiResult<Vec<String>> {
    match obj.get(key) {
        None => Ok(vec![]),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => {
                    let idx = i.to_string();
                    Err(ApiError::invalid(
                        "string_type",
                        &loc(&loc(at, key), &idx),
                        "Input should be a valid string",
                        other.clone(),
                    ))
                }
            })
            .collect(),
        Some(v) => Err(ApiError::invalid(
            "list_type",
            &loc(at, key),
            "Input should be a valid list",
            v.clone(),
        )),
    }
}

/// A 422 for a string parameter that does not match its pattern.
pub fn pattern_mismatch(at: &[&str], pattern: &str, input: &str, max_len: usize) -> ApiError {
    if input.chars().count() > max_len {
        return ApiError::invalid(
            "string_too_long",
            at,
            format!("String should have at most {max_len} characters"),
            Value::String(input.into()),
        );
    }
    ApiError::invalid(
        "string_pattern_mismatch",
        at,
        format!("String should match pattern '{pattern}'"),
        Value::String(input.into()),
    )
}
