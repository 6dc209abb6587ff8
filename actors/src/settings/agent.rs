//! The shapes of the persisted agent and conversation settings (the
//! reference's `AgentSettings` union and `ConversationSettings`): defaults,
//! schema migrations, validation, the deep merge used by `PATCH
//! /api/settings`, and the normalization that fixes field order and drops
//! unknown keys (the reference ignores extra keys).
//!
//! Values are handled as JSON; secrets pass through here in whatever form the
//! caller gives them (plaintext or sealed). Sealing, opening and redaction
//! belong to [`super::slots`]; storage to [`super::store`].

use serde_json::{Map, Value, json};

use crate::model::conversation::FieldError;
use crate::model::llm::Llm;

/// Current `AgentSettings.schema_version`.
pub const AGENT_SETTINGS_SCHEMA_VERSION: i64 = 3;
/// Current `ConversationSettings.schema_version`.
pub const CONVERSATION_SETTINGS_SCHEMA_VERSION: i64 = 1;

/// Accepted `acp_server` values.
pub const ACP_SERVERS: [&str; 4] = ["claude-code", "codex", "gemini-cli", "custom"];
/// Accepted `verification.critic_mode` values.
pub const CRITIC_MODES: [&str; 2] = ["finish_and_message", "all_actions"];
/// Accepted `security_analyzer` values (besides `null`).
pub const SECURITY_ANALYZERS: [&str; 2] = ["llm", "none"];
/// Accepted `llm.reasoning_effort` values (besides `null`).
pub const REASONING_EFFORTS: [&str; 5] = ["low", "medium", "high", "xhigh", "none"];
/// Accepted `llm.reasoning_summary` values (besides `null`).
pub const REASONING_SUMMARIES: [&str; 3] = ["auto", "concise", "detailed"];

/// Why a settings payload was refused. The path names the field (never its
/// value), for logs and tests; clients only get a generic answer, as in the
/// reference, because pydantic errors could echo secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted location, e.g. `condenser.max_size`.
    pub path: String,
    /// What is wrong.
    pub why: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.why)
    }
}

fn invalid(path: &str, why: impl Into<String>) -> Invalid {
    Invalid {
        path: path.to_string(),
        why: why.into(),
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Merges `overlay` into `base`: objects merge key by key, recursively; any
/// other value (arrays included) replaces what was there.
pub fn deep_merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        deep_merge(existing, v)
                    }
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Reads typed members of one settings object, recording the first problem.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    prefix: &'a str,
}

impl<'a> Fields<'a> {
    fn new(obj: &'a Map<String, Value>, prefix: &'a str) -> Fields<'a> {
        Fields { obj, prefix }
    }

    fn path(&self, key: &str) -> String {
        join(self.prefix, key)
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key)
    }

    fn bool(&self, key: &str, default: bool) -> Result<Value, Invalid> {
        match self.get(key) {
            None => Ok(Value::Bool(default)),
            Some(Value::Bool(b)) => Ok(Value::Bool(*b)),
            Some(_) => Err(invalid(&self.path(key), "expected a boolean")),
        }
    }

    fn string(&self, key: &str, default: &str) -> Result<Value, Invalid> {
        match self.get(key) {
            None => Ok(Value::String(default.to_string())),
            Some(Value::String(s)) => Ok(Value::String(s.clone())),
            Some(_) => Err(invalid(&self.path(key), "expected a string")),
        }
    }

    fn opt_string(&self, key: &str, default: Option<&str>) -> Result<Value, Invalid> {
        match self.get(key) {
            None => Ok(default.map_or(Value::Null, |d| Value::String(d.into()))),
            Some(Value::Null) => Ok(Value::Null),
            Some(Value::String(s)) => Ok(Value::String(s.clone())),
            Some(_) => Err(invalid(&self.path(key), "expected a string or null")),
        }
    }

    fn choice(&self, key: &str, default: &str, allowed: &[&str]) -> Result<Value, Invalid> {
        match self.get(key) {
            None => Ok(Value::String(default.into())),
            Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(Value::String(s.clone())),
            Some(_) => Err(invalid(
                &self.path(key),
                format!("expected one of {}", allowed.join(", ")),
            )),
        }
    }

    fn int(&self, key: &str, default: i64, min: i64) -> Result<Value, Invalid> {
        let n = match self.get(key) {
            None => return Ok(Value::from(default)),
            Some(v) => as_int(v).ok_or_else(|| invalid(&self.path(key), "expected an integer"))?,
        };
        if n < min {
            return Err(invalid(&self.path(key), format!("must be at least {min}")));
        }
        Ok(Value::from(n))
    }

    fn number(
        &self,
        key: &str,
        default: f64,
        check: impl Fn(f64) -> bool,
    ) -> Result<Value, Invalid> {
        let x = match self.get(key) {
            None => default,
            Some(v) => v
                .as_f64()
                .ok_or_else(|| invalid(&self.path(key), "expected a number"))?,
        };
        if !x.is_finite() || !check(x) {
            return Err(invalid(&self.path(key), "number out of range"));
        }
        Ok(json!(x))
    }

    fn string_list(&self, key: &str) -> Result<Value, Invalid> {
        match self.get(key) {
            None => Ok(json!([])),
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                Ok(Value::Array(items.clone()))
            }
            Some(_) => Err(invalid(&self.path(key), "expected a list of strings")),
        }
    }

    fn string_map(&self, key: &str) -> Result<Value, Invalid> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(json!({})),
            Some(Value::Object(m)) if m.values().all(Value::is_string) => {
                Ok(Value::Object(m.clone()))
            }
            Some(_) => Err(invalid(&self.path(key), "expected an object of strings")),
        }
    }

    fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, Invalid> {
        match self.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(invalid(&self.path(key), "expected an object")),
        }
    }
}

/// An integer the way pydantic's lax mode reads one (`5` or `5.0`, not `true`).
fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        _ => None,
    }
}

/// Reads a `schema_version`: absent or null is version 0.
fn schema_version(obj: &Map<String, Value>, path: &str) -> Result<i64, Invalid> {
    match obj.get("schema_version") {
        None | Some(Value::Null) => Ok(0),
        Some(v @ Value::Number(_)) => {
            as_int(v).ok_or_else(|| invalid(&join(path, "schema_version"), "must be an integer"))
        }
        Some(_) => Err(invalid(&join(path, "schema_version"), "must be an integer")),
    }
}

/// Validates and completes an LLM object (the reference's `LLM`): types,
/// ranges and choices; unknown keys are dropped, defaults filled, field
/// order fixed. Errors are located below the LLM object.
pub fn normalize_llm(input: &Value) -> Result<Value, FieldError> {
    if !input.is_object() {
        return Err(FieldError {
            loc: vec![],
            msg: "Input should be a valid dictionary or instance of LLM".into(),
            kind: "model_type",
        });
    }
    let llm: Llm = serde_path_to_error::deserialize(input.clone()).map_err(|e| FieldError {
        loc: crate::model::agent::path_segments(e.path()),
        msg: crate::model::agent::clean_serde_message(&e.inner().to_string()),
        kind: "value_error",
    })?;
    let v = llm.to_value();
    let range = |key: &str, ok: &dyn Fn(f64) -> bool, msg: &str| -> Result<(), FieldError> {
        match v.get(key).and_then(Value::as_f64) {
            Some(x) if !ok(x) => Err(FieldError {
                loc: vec![key.to_string()],
                msg: msg.to_string(),
                kind: if msg.contains("less") {
                    "less_than_equal"
                } else {
                    "greater_than_equal"
                },
            }),
            _ => Ok(()),
        }
    };
    let ge0 = |x: f64| x >= 0.0;
    let ge1 = |x: f64| x >= 1.0;
    for key in [
        "num_retries",
        "retry_multiplier",
        "retry_min_wait",
        "retry_max_wait",
        "timeout",
        "temperature",
        "top_p",
        "top_k",
        "input_cost_per_token",
        "output_cost_per_token",
    ] {
        range(key, &ge0, "Input should be greater than or equal to 0")?;
    }
    for key in ["max_message_chars", "max_input_tokens", "max_output_tokens"] {
        range(key, &ge1, "Input should be greater than or equal to 1")?;
    }
    range(
        "top_p",
        &|x| x <= 1.0,
        "Input should be less than or equal to 1",
    )?;
    let choice = |key: &str, allowed: &[&str]| -> Result<(), FieldError> {
        match v.get(key) {
            Some(Value::String(s)) if !allowed.contains(&s.as_str()) => Err(FieldError {
                loc: vec![key.to_string()],
                msg: format!(
                    "Input should be {}",
                    allowed
                        .iter()
                        .map(|a| format!("'{a}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                kind: "literal_error",
            }),
            _ => Ok(()),
        }
    };
    choice("reasoning_effort", &REASONING_EFFORTS)?;
    choice("reasoning_summary", &REASONING_SUMMARIES)?;
    if let Some(Value::Object(h)) = v.get("extra_headers")
        && let Some((k, _)) = h.iter().find(|(_, x)| !x.is_string())
    {
        return Err(FieldError {
            loc: vec!["extra_headers".into(), k.clone()],
            msg: "Input should be a valid string".into(),
            kind: "string_type",
        });
    }
    Ok(v)
}

fn llm_field(obj: &Map<String, Value>) -> Result<Value, Invalid> {
    let input = match obj.get("llm") {
        None => json!({}),
        Some(v) => v.clone(),
    };
    normalize_llm(&input).map_err(|e| {
        let mut path = String::from("llm");
        for seg in &e.loc {
            path = join(&path, seg);
        }
        invalid(&path, e.msg)
    })
}

fn tools_field(f: &Fields<'_>) -> Result<Value, Invalid> {
    let Some(v) = f.get("tools") else {
        return Ok(json!([]));
    };
    let Value::Array(items) = v else {
        return Err(invalid(&f.path("tools"), "expected a list"));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("{}.{i}", f.path("tools"));
        let obj = item
            .as_object()
            .ok_or_else(|| invalid(&path, "expected a tool object"))?;
        let name = match obj.get("name") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(invalid(
                    &join(&path, "name"),
                    "a non-empty string is required",
                ));
            }
        };
        let params = match obj.get("params") {
            None | Some(Value::Null) => json!({}),
            Some(p @ Value::Object(_)) => p.clone(),
            Some(_) => return Err(invalid(&join(&path, "params"), "expected an object")),
        };
        out.push(json!({"name": name, "params": params}));
    }
    Ok(Value::Array(out))
}

/// `mcp_config`: `null` and `{}` both mean "none" and are shown as `{}`.
fn mcp_field(f: &Fields<'_>) -> Result<Value, Invalid> {
    let Some(cfg) = f.object("mcp_config")? else {
        return Ok(json!({}));
    };
    if let Some(servers) = cfg.get("mcpServers") {
        let Value::Object(servers) = servers else {
            return Err(invalid("mcp_config.mcpServers", "expected an object"));
        };
        for (name, server) in servers {
            let path = format!("mcp_config.mcpServers.{name}");
            let Value::Object(server) = server else {
                return Err(invalid(&path, "expected a server object"));
            };
            for key in ["env", "headers"] {
                match server.get(key) {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(m)) if m.values().all(Value::is_string) => {}
                    Some(_) => {
                        return Err(invalid(&join(&path, key), "expected an object of strings"));
                    }
                }
            }
        }
    }
    Ok(Value::Object(cfg.clone()))
}

/// `agent_context` with every field of the reference's `AgentContext`.
fn agent_context(input: &Map<String, Value>) -> Result<Value, Invalid> {
    let f = Fields::new(input, "agent_context");
    let skills = match f.get("skills") {
        None | Some(Value::Null) => json!([]),
        Some(Value::Array(a)) if a.iter().all(Value::is_object) => Value::Array(a.clone()),
        Some(_) => return Err(invalid("agent_context.skills", "expected a list of skills")),
    };
    let secrets = match f.get("secrets") {
        None | Some(Value::Null) => Value::Null,
        Some(Value::Object(m)) => {
            for (name, v) in m {
                if !(v.is_string() || v.is_object()) {
                    return Err(invalid(
                        &format!("agent_context.secrets.{name}"),
                        "expected a string or a secret source",
                    ));
                }
            }
            Value::Object(m.clone())
        }
        Some(_) => return Err(invalid("agent_context.secrets", "expected an object")),
    };
    let now = crate::time::format_local(crate::time::now_micros());
    Ok(json!({
        "skills": skills,
        "system_message_suffix": f.opt_string("system_message_suffix", None)?,
        "user_message_suffix": f.opt_string("user_message_suffix", None)?,
        "load_user_skills": f.bool("load_user_skills", false)?,
        "load_public_skills": f.bool("load_public_skills", false)?,
        "marketplace_path": f.opt_string("marketplace_path", Some("marketplaces/default.json"))?,
        "load_project_skills": f.bool("load_project_skills", false)?,
        "secrets": secrets,
        "current_datetime": f.opt_string("current_datetime", Some(&now))?,
    }))
}

fn condenser(f: &Fields<'_>) -> Result<Value, Invalid> {
    let empty = Map::new();
    let c = Fields::new(f.object("condenser")?.unwrap_or(&empty), "condenser");
    Ok(json!({
        "enabled": c.bool("enabled", true)?,
        "max_size": c.int("max_size", 240, 20)?,
    }))
}

fn verification(f: &Fields<'_>) -> Result<Value, Invalid> {
    let empty = Map::new();
    let v = Fields::new(f.object("verification")?.unwrap_or(&empty), "verification");
    Ok(json!({
        "critic_enabled": v.bool("critic_enabled", false)?,
        "critic_mode": v.choice("critic_mode", "finish_and_message", &CRITIC_MODES)?,
        "enable_iterative_refinement": v.bool("enable_iterative_refinement", false)?,
        "critic_threshold": v.number("critic_threshold", 0.6, |x| (0.0..=1.0).contains(&x))?,
        "max_refinement_iterations": v.int("max_refinement_iterations", 3, 1)?,
        "critic_server_url": v.opt_string("critic_server_url", None)?,
        "critic_model_name": v.opt_string("critic_model_name", None)?,
    }))
}

/// Brings an older agent-settings payload to the current schema version.
fn migrate_agent(mut obj: Map<String, Value>) -> Result<Map<String, Value>, Invalid> {
    let version = schema_version(&obj, "")?;
    if version < 0 {
        return Err(invalid("schema_version", "must not be negative"));
    }
    if version > AGENT_SETTINGS_SCHEMA_VERSION {
        return Err(invalid(
            "schema_version",
            format!("is newer than the supported version {AGENT_SETTINGS_SCHEMA_VERSION}"),
        ));
    }
    if version < 1 && !obj.contains_key("agent_kind") {
        obj.insert("agent_kind".into(), json!("openhands"));
    }
    // Before the OpenHandsAgentSettings rename the discriminator was "llm".
    if version < 2 && obj.get("agent_kind") == Some(&json!("llm")) {
        obj.insert("agent_kind".into(), json!("openhands"));
    }
    // Version 3 moved these two to the conversation settings.
    if version < 3
        && let Some(Value::Object(v)) = obj.get_mut("verification")
    {
        v.shift_remove("confirmation_mode");
        v.shift_remove("security_analyzer");
    }
    obj.insert(
        "schema_version".into(),
        Value::from(AGENT_SETTINGS_SCHEMA_VERSION),
    );
    Ok(obj)
}

/// Validates, migrates and normalizes agent settings (either variant).
pub fn normalize_agent_settings(input: &Value) -> Result<Value, Invalid> {
    let Value::Object(obj) = input else {
        return Err(invalid("", "agent settings must be an object"));
    };
    let obj = migrate_agent(obj.clone())?;
    let f = Fields::new(&obj, "");
    let kind = match obj.get("agent_kind") {
        None => "openhands".to_string(),
        Some(Value::String(k)) if matches!(k.as_str(), "openhands" | "llm" | "acp") => k.clone(),
        Some(_) => {
            return Err(invalid(
                "agent_kind",
                "expected 'openhands', 'llm' or 'acp'",
            ));
        }
    };
    if kind == "acp" {
        let ctx = match f.object("agent_context")? {
            None => Value::Null,
            Some(m) => agent_context(m)?,
        };
        return Ok(json!({
            "schema_version": AGENT_SETTINGS_SCHEMA_VERSION,
            "agent_kind": kind,
            "acp_server": f.choice("acp_server", "claude-code", &ACP_SERVERS)?,
            "acp_command": f.string_list("acp_command")?,
            "acp_args": f.string_list("acp_args")?,
            "acp_env": f.string_map("acp_env")?,
            "acp_model": f.opt_string("acp_model", None)?,
            "acp_session_mode": f.opt_string("acp_session_mode", None)?,
            "acp_prompt_timeout": f.number("acp_prompt_timeout", 1800.0, |x| x > 0.0)?,
            "llm": llm_field(&obj)?,
            "agent_context": ctx,
        }));
    }
    let empty = Map::new();
    let ctx = agent_context(f.object("agent_context")?.unwrap_or(&empty))?;
    Ok(json!({
        "schema_version": AGENT_SETTINGS_SCHEMA_VERSION,
        "agent_kind": kind,
        "agent": f.string("agent", "CodeActAgent")?,
        "llm": llm_field(&obj)?,
        "tools": tools_field(&f)?,
        "enable_sub_agents": f.bool("enable_sub_agents", false)?,
        "enable_switch_llm_tool": f.bool("enable_switch_llm_tool", true)?,
        "mcp_config": mcp_field(&f)?,
        "agent_context": ctx,
        "condenser": condenser(&f)?,
        "verification": verification(&f)?,
    }))
}

/// Validates, migrates and normalizes conversation settings. Only the
/// persisted fields are kept (the reference excludes its runtime fields).
pub fn normalize_conversation_settings(input: &Value) -> Result<Value, Invalid> {
    let Value::Object(obj) = input else {
        return Err(invalid("", "conversation settings must be an object"));
    };
    let version = schema_version(obj, "")?;
    if !(0..=CONVERSATION_SETTINGS_SCHEMA_VERSION).contains(&version) {
        return Err(invalid("schema_version", "unsupported version"));
    }
    let f = Fields::new(obj, "");
    let analyzer = match obj.get("security_analyzer") {
        None => json!("llm"),
        Some(Value::Null) => Value::Null,
        Some(Value::String(s)) if SECURITY_ANALYZERS.contains(&s.as_str()) => json!(s),
        Some(_) => {
            return Err(invalid(
                "security_analyzer",
                "expected 'llm', 'none' or null",
            ));
        }
    };
    Ok(json!({
        "schema_version": CONVERSATION_SETTINGS_SCHEMA_VERSION,
        "max_iterations": f.int("max_iterations", 500, 1)?,
        "confirmation_mode": f.bool("confirmation_mode", false)?,
        "security_analyzer": analyzer,
    }))
}

/// The agent settings used when none were saved.
pub fn default_agent_settings() -> Value {
    normalize_agent_settings(&json!({})).unwrap_or(Value::Null)
}

/// The conversation settings used when none were saved.
pub fn default_conversation_settings() -> Value {
    normalize_conversation_settings(&json!({})).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_have_the_reference_shape() {
        let a = default_agent_settings();
        let keys: Vec<&String> = a.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "schema_version",
                "agent_kind",
                "agent",
                "llm",
                "tools",
                "enable_sub_agents",
                "enable_switch_llm_tool",
                "mcp_config",
                "agent_context",
                "condenser",
                "verification"
            ]
        );
        assert_eq!(a["llm"].as_object().unwrap().len(), 49);
        assert_eq!(a["condenser"], json!({"enabled": true, "max_size": 240}));
        assert_eq!(a["mcp_config"], json!({}));
        assert_eq!(a["verification"]["critic_threshold"].to_string(), "0.6");
        assert_eq!(
            default_conversation_settings(),
            json!({"schema_version": 1, "max_iterations": 500, "confirmation_mode": false, "security_analyzer": "llm"})
        );
    }

    #[test]
    fn merge_and_validation() {
        let mut base = default_agent_settings();
        deep_merge(
            &mut base,
            &json!({"llm": {"model": "openai/x"}, "condenser": {"max_size": 100}, "tools": [{"name": "terminal"}]}),
        );
        let a = normalize_agent_settings(&base).unwrap();
        assert_eq!(a["llm"]["model"], "openai/x");
        assert_eq!(a["llm"]["num_retries"], 5);
        assert_eq!(a["condenser"], json!({"enabled": true, "max_size": 100}));
        assert_eq!(a["tools"], json!([{"name": "terminal", "params": {}}]));
        for bad in [
            json!({"condenser": {"max_size": 5}}),
            json!({"llm": {"model": 3}}),
            json!({"llm": {"top_p": 2.0}}),
            json!({"llm": {"reasoning_effort": "extreme"}}),
            json!({"agent_kind": "robot"}),
            json!({"schema_version": 9}),
            json!({"verification": {"critic_threshold": 1.5}}),
            json!({"mcp_config": {"mcpServers": {"x": {"env": {"A": 1}}}}}),
        ] {
            assert!(normalize_agent_settings(&bad).is_err(), "{bad}");
        }
        assert!(normalize_conversation_settings(&json!({"max_iterations": 0})).is_err());
        assert!(normalize_conversation_settings(&json!({"security_analyzer": "x"})).is_err());
    }

    #[test]
    fn migrations_and_variants() {
        let a = normalize_agent_settings(&json!({"schema_version": 1, "agent_kind": "llm",
            "verification": {"confirmation_mode": true, "critic_enabled": true}}))
        .unwrap();
        assert_eq!(a["agent_kind"], "openhands");
        assert_eq!(a["schema_version"], 3);
        assert_eq!(a["verification"]["critic_enabled"], true);
        let acp =
            normalize_agent_settings(&json!({"agent_kind": "acp", "acp_env": {"K": "v"}})).unwrap();
        let keys: Vec<&String> = acp.as_object().unwrap().keys().collect();
        assert_eq!(keys[2], "acp_server");
        assert_eq!(acp["acp_prompt_timeout"].to_string(), "1800.0");
        assert_eq!(acp["agent_context"], Value::Null);
    }
}
