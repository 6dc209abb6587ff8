//! Where secrets live inside a conversation's JSON, and the four things done
//! to them: seal for storage, open after loading, redact to `null` (REST
//! conversation info) or to `"**********"` (WebSocket snapshots).
//!
//! One walker finds every secret slot, so that sealing and redaction can never
//! disagree about what is secret. Nothing here logs a value.

use serde_json::{Map, Value};

use crate::crypto::{Cipher, is_sealed};
use crate::model::llm::LLM_SECRET_FIELDS;

/// The marker the reference prints in place of a secret.
pub const REDACTED: &str = "**********";

/// Header names whose values are treated as secret (the reference's list).
pub fn header_looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "AUTHORIZATION",
        "COOKIE",
        "CREDENTIAL",
        "KEY",
        "PASSWORD",
        "SECRET",
        "SESSION",
        "TOKEN",
    ]
    .iter()
    .any(|w| upper.contains(w))
}

/// Calls `visit(path, slot)` for every secret string slot below an agent
/// object (`path` is relative to the agent, e.g. `llm.api_key`).
pub fn visit_agent_secrets(agent: &mut Value, visit: &mut dyn FnMut(&str, &mut Value)) {
    let Some(obj) = agent.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(llm)) = obj.get_mut("llm") {
        visit_llm(llm, "llm", visit);
    }
    if let Some(Value::Object(c)) = obj.get_mut("condenser")
        && let Some(Value::Object(llm)) = c.get_mut("llm")
    {
        visit_llm(llm, "condenser.llm", visit);
    }
    if let Some(Value::Object(ctx)) = obj.get_mut("agent_context")
        && let Some(Value::Object(secrets)) = ctx.get_mut("secrets")
    {
        for (name, v) in secrets.iter_mut() {
            let path = format!("agent_context.secrets.{name}");
            match v {
                Value::Object(src) => visit_source(src, &path, visit),
                _ => visit(&path, v),
            }
        }
    }
}

fn visit_llm(llm: &mut Map<String, Value>, prefix: &str, visit: &mut dyn FnMut(&str, &mut Value)) {
    for field in LLM_SECRET_FIELDS {
        if let Some(v) = llm.get_mut(field) {
            visit(&format!("{prefix}.{field}"), v);
        }
    }
}

/// Visits the secret slots of one secret source (`StaticSecret.value`, and
/// `LookupSecret.headers` whose names look secret).
pub fn visit_source(
    src: &mut Map<String, Value>,
    path: &str,
    visit: &mut dyn FnMut(&str, &mut Value),
) {
    if let Some(v) = src.get_mut("value") {
        visit(&format!("{path}.value"), v);
    }
    if let Some(Value::Object(headers)) = src.get_mut("headers") {
        for (name, v) in headers.iter_mut() {
            if header_looks_secret(name) {
                visit(&format!("{path}.headers.{name}"), v);
            }
        }
    }
}

/// Calls `visit` for every secret in a `secret_sources` map.
pub fn visit_registry_secrets(
    sources: &mut Map<String, Value>,
    visit: &mut dyn FnMut(&str, &mut Value),
) {
    for (name, src) in sources.iter_mut() {
        if let Value::Object(src) = src {
            visit_source(src, &format!("secret_sources.{name}"), visit);
        }
    }
}

/// What to do with each secret slot.
pub enum SecretAction<'a> {
    /// Replace plaintext by a sealed value bound to `scope/path`; without a
    /// cipher the value cannot be kept and becomes `null`.
    Seal(Option<&'a Cipher>, &'a str),
    /// Replace sealed values by plaintext; unreadable ones become `null` and
    /// their paths are pushed to the list.
    Open(Option<&'a Cipher>, &'a str, &'a mut Vec<String>),
    /// Replace every secret by `null`.
    RedactNull,
    /// Replace every present secret by `"**********"`.
    RedactStars,
}

impl SecretAction<'_> {
    /// Applies the action to one slot.
    pub fn apply(&mut self, path: &str, slot: &mut Value) {
        match self {
            SecretAction::Seal(cipher, scope) => {
                if let Value::String(s) = slot {
                    if is_sealed(s) {
                        return;
                    }
                    *slot =
                        match cipher.and_then(|c| c.seal_str(&format!("{scope}/{path}"), s).ok()) {
                            Some(sealed) => Value::String(sealed),
                            None => Value::Null,
                        };
                }
            }
            SecretAction::Open(cipher, scope, failures) => {
                if let Value::String(s) = slot {
                    if !is_sealed(s) {
                        return;
                    }
                    *slot =
                        match cipher.and_then(|c| c.open_str(&format!("{scope}/{path}"), s).ok()) {
                            Some(plain) => Value::String(plain),
                            None => {
                                failures.push(path.to_string());
                                Value::Null
                            }
                        };
                }
            }
            SecretAction::RedactNull => {
                if !slot.is_null() {
                    *slot = Value::Null;
                }
            }
            SecretAction::RedactStars => {
                if !slot.is_null() {
                    *slot = Value::String(REDACTED.into());
                }
            }
        }
    }
}

/// Applies `action` to every secret of an agent object, `mcp_config` included
/// (sealed as one JSON text, dropped from redacted output).
pub fn apply_to_agent(agent: &mut Value, action: &mut SecretAction<'_>) {
    visit_agent_secrets(agent, &mut |p, v| action.apply(p, v));
    let Some(obj) = agent.as_object_mut() else {
        return;
    };
    match action {
        SecretAction::RedactNull | SecretAction::RedactStars => {
            obj.shift_remove("mcp_config");
        }
        SecretAction::Seal(cipher, scope) => {
            if let Some(cfg) = obj.get("mcp_config").filter(|v| v.is_object()) {
                let text = cfg.to_string();
                let sealed =
                    cipher.and_then(|c| c.seal_str(&format!("{scope}/mcp_config"), &text).ok());
                match sealed {
                    Some(s) => {
                        obj.insert("mcp_config".into(), Value::String(s));
                    }
                    None => {
                        obj.shift_remove("mcp_config");
                    }
                }
            }
        }
        SecretAction::Open(cipher, scope, failures) => {
            if let Some(Value::String(s)) = obj.get("mcp_config") {
                let opened = cipher
                    .and_then(|c| c.open_str(&format!("{scope}/mcp_config"), s).ok())
                    .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                    .filter(Value::is_object);
                match opened {
                    Some(v) => {
                        obj.insert("mcp_config".into(), v);
                    }
                    None => {
                        failures.push("mcp_config".into());
                        obj.shift_remove("mcp_config");
                    }
                }
            }
        }
    }
}

/// Removes `null` members from every object, recursively (pydantic's
/// `exclude_none`, used for `full_state` snapshots).
pub fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            for x in m.values_mut() {
                strip_nulls(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn agent() -> Value {
        json!({"llm": {"model": "m", "api_key": "sk-1", "aws_secret_access_key": null},
               "mcp_config": {"mcpServers": {"x": {"env": {"T": "v"}}}},
               "condenser": {"llm": {"api_key": "sk-2"}, "kind": "LLMSummarizingCondenser"},
               "agent_context": {"secrets": {"A": "plain", "B": {"kind": "StaticSecret", "value": "v"}}},
               "kind": "Agent"})
    }

    #[test]
    fn seal_open_round_trip() {
        let c = Cipher::from_secret("k");
        let mut a = agent();
        apply_to_agent(&mut a, &mut SecretAction::Seal(Some(&c), "conv1"));
        let text = a.to_string();
        for secret in ["sk-1", "sk-2", "plain", "\"v\"", "mcpServers"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        let mut failures = vec![];
        apply_to_agent(
            &mut a,
            &mut SecretAction::Open(Some(&c), "conv1", &mut failures),
        );
        assert!(failures.is_empty());
        assert_eq!(a, agent());
    }

    #[test]
    fn wrong_key_gives_nulls_and_report() {
        let mut a = agent();
        apply_to_agent(
            &mut a,
            &mut SecretAction::Seal(Some(&Cipher::from_secret("k")), "c"),
        );
        let mut failures = vec![];
        apply_to_agent(
            &mut a,
            &mut SecretAction::Open(Some(&Cipher::from_secret("other")), "c", &mut failures),
        );
        assert_eq!(a["llm"]["api_key"], Value::Null);
        assert!(failures.contains(&"llm.api_key".to_string()));
        assert!(a.get("mcp_config").is_none());
    }

    #[test]
    fn redaction() {
        let mut a = agent();
        apply_to_agent(&mut a, &mut SecretAction::RedactStars);
        assert_eq!(a["llm"]["api_key"], REDACTED);
        assert_eq!(a["llm"]["aws_secret_access_key"], Value::Null);
        assert!(a.get("mcp_config").is_none());
        let mut a = agent();
        apply_to_agent(&mut a, &mut SecretAction::RedactNull);
        assert_eq!(a["condenser"]["llm"]["api_key"], Value::Null);
    }
}
