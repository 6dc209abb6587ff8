//! The agent definition a conversation is started with (the reference's
//! `Agent`), normalized to the shape the reference dumps: every field present,
//! defaults filled, `kind` last, the LLM (and the condenser's LLM) complete.
//!
//! Only data lives here. What the agent *does* is in `crate::agent`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::llm::Llm;

fn d_default_tools() -> Vec<String> {
    vec!["FinishTool".into(), "ThinkTool".into()]
}
fn d_prompt_file() -> String {
    "system_prompt.j2".into()
}
fn d_policy_file() -> String {
    "security_policy.j2".into()
}
fn d_concurrency() -> u32 {
    1
}
fn d_kind() -> String {
    "Agent".into()
}

/// One tool the agent may use: a registered tool name and its factory parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolRef {
    /// Registered tool name, e.g. `terminal`.
    pub name: String,
    /// Keyword arguments for the tool (`null` is taken as `{}`).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub params: Map<String, Value>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    Ok(Option::<Map<String, Value>>::deserialize(d)?.unwrap_or_default())
}

fn security_policy<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// The agent of a conversation (`kind: "Agent"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// The model the agent talks to.
    pub llm: Llm,
    /// Tools beyond the built-in ones.
    #[serde(default)]
    pub tools: Vec<ToolRef>,
    /// MCP servers; never shown in redacted output, sealed at rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_config: Option<Map<String, Value>>,
    /// Regex limiting which tools are exposed.
    #[serde(default)]
    pub filter_tools_regex: Option<String>,
    /// Built-in tools by class name (`FinishTool`, `ThinkTool`, `SwitchLLMTool`).
    #[serde(default = "d_default_tools")]
    pub include_default_tools: Vec<String>,
    /// Skills, secrets and prompt suffixes.
    #[serde(default)]
    pub agent_context: Option<Value>,
    /// Inline system prompt replacing the built-in one.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Template name of the system prompt (kept for compatibility).
    #[serde(default = "d_prompt_file")]
    pub system_prompt_filename: String,
    /// Template name of the security policy; empty disables it.
    #[serde(default = "d_policy_file", deserialize_with = "security_policy")]
    pub security_policy_filename: String,
    /// Variables for the system prompt.
    #[serde(default)]
    pub system_prompt_kwargs: Map<String, Value>,
    /// Context condenser.
    #[serde(default)]
    pub condenser: Option<Value>,
    /// Critic.
    #[serde(default)]
    pub critic: Option<Value>,
    /// How many tool calls may run at once.
    #[serde(default = "d_concurrency")]
    pub tool_concurrency_limit: u32,
    /// Always `Agent`.
    #[serde(default = "d_kind")]
    pub kind: String,
}

/// Why an agent definition was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentError {
    /// JSON path below the agent object.
    pub loc: Vec<String>,
    /// What is wrong.
    pub msg: String,
}

impl Agent {
    /// Validates and normalizes an agent object as a client posts it.
    pub fn from_input(mut input: Value) -> Result<Agent, AgentError> {
        let obj = input.as_object_mut().ok_or_else(|| AgentError {
            loc: vec![],
            msg: "Input should be a valid dictionary or object".into(),
        })?;
        match obj.get("kind").and_then(Value::as_str) {
            None | Some("Agent") => {}
            Some("ACPAgent") => {
                return Err(AgentError {
                    loc: vec!["kind".into()],
                    msg: "ACPAgent is not supported by this server; use kind 'Agent'".into(),
                });
            }
            Some(other) => {
                return Err(AgentError {
                    loc: vec!["kind".into()],
                    msg: format!("Unknown kind '{other}' for AgentBase; expected 'Agent'"),
                });
            }
        }
        if obj.get("kind").is_some_and(|k| !k.is_string()) {
            return Err(AgentError {
                loc: vec!["kind".into()],
                msg: "Input should be a valid string".into(),
            });
        }
        if !obj.contains_key("llm") {
            return Err(AgentError {
                loc: vec!["llm".into()],
                msg: "Field required".into(),
            });
        }
        // The reference's validator: an inline prompt excludes a template other than the
        // default one.
        let inline = obj.get("system_prompt").is_some_and(|p| !p.is_null());
        let template = obj
            .get("system_prompt_filename")
            .is_some_and(|f| f.as_str() != Some("system_prompt.j2"));
        if inline && template {
            return Err(AgentError {
                loc: vec![],
                msg: "Value error, Cannot set both 'system_prompt' and a non-default \
                      'system_prompt_filename'. Use one or the other."
                    .into(),
            });
        }
        if let Some(Value::Object(c)) = obj.get_mut("condenser") {
            normalize_condenser(c)?;
        }
        let mut agent: Agent = serde_path_to_error::deserialize(input).map_err(|e| {
            let loc = path_segments(e.path());
            AgentError {
                loc,
                msg: clean_serde_message(&e.inner().to_string()),
            }
        })?;
        agent.kind = "Agent".into();
        // The reference's validator always records whether the LLM security
        // analyzer prompt section is on.
        agent
            .system_prompt_kwargs
            .entry("llm_security_analyzer")
            .or_insert(Value::Bool(true));
        if agent.mcp_config.as_ref().is_some_and(Map::is_empty) {
            agent.mcp_config = None;
        }
        if agent.tool_concurrency_limit == 0 {
            return Err(AgentError {
                loc: vec!["tool_concurrency_limit".into()],
                msg: "Input should be greater than or equal to 1".into(),
            });
        }
        Ok(agent)
    }

    /// The agent as JSON in the reference's field order (secrets in clear:
    /// callers redact or seal the result).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Names of the tools the LLM may call, in the order they are offered.
    pub fn tool_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tools.iter().map(|t| t.name.clone()).collect();
        for class in &self.include_default_tools {
            let name = match class.as_str() {
                "FinishTool" => "finish",
                "ThinkTool" => "think",
                crate::tools::switch_llm::CLASS => crate::tools::switch_llm::NAME,
                _ => continue,
            };
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        names
    }
}

fn normalize_condenser(c: &mut Map<String, Value>) -> Result<(), AgentError> {
    if let Some(llm) = c.get("llm").cloned() {
        let llm: Llm = serde_path_to_error::deserialize(llm).map_err(|e| {
            let mut loc = vec!["condenser".to_string(), "llm".to_string()];
            loc.extend(path_segments(e.path()));
            AgentError {
                loc,
                msg: clean_serde_message(&e.inner().to_string()),
            }
        })?;
        c.insert("llm".into(), llm.to_value());
    }
    // `kind` is a computed field in the reference and always comes last.
    if let Some(kind) = c.shift_remove("kind") {
        c.insert("kind".into(), kind);
    }
    Ok(())
}

/// Splits a serde path (`a.b[0].c`) into segments.
pub fn path_segments(path: &serde_path_to_error::Path) -> Vec<String> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect()
}

/// Turns serde's wording into pydantic-like messages clients recognise.
pub fn clean_serde_message(msg: &str) -> String {
    let msg = msg.split(" at line ").next().unwrap_or(msg);
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let _ = rest;
        return "Field required".into();
    }
    if msg.starts_with("invalid type: ")
        && let Some(exp) = msg.split(", expected ").nth(1)
    {
        return format!("Input should be {exp}");
    }
    msg.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn minimal_agent_normalizes() {
        let a = Agent::from_input(json!({"llm": {"model": "openai/m", "api_key": "k"}, "tools": [{"name": "terminal", "params": null}]})).unwrap();
        let v = a.to_value();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.first().unwrap().as_str(), "llm");
        assert_eq!(keys.last().unwrap().as_str(), "kind");
        assert!(!v.as_object().unwrap().contains_key("mcp_config"));
        assert_eq!(v["tools"][0]["params"], json!({}));
        assert_eq!(v["system_prompt_kwargs"]["llm_security_analyzer"], true);
        assert_eq!(a.tool_names(), vec!["terminal", "finish", "think"]);
    }

    #[test]
    fn bad_agents_are_refused_with_location() {
        let e = Agent::from_input(json!({"kind": "Nope", "llm": {}})).unwrap_err();
        assert_eq!(e.loc, vec!["kind"]);
        let e = Agent::from_input(json!({"llm": {"model": 5}})).unwrap_err();
        assert_eq!(e.loc, vec!["llm", "model"]);
        let e = Agent::from_input(json!({"tools": []})).unwrap_err();
        assert_eq!(e.loc, vec!["llm"]);
        assert!(Agent::from_input(json!([1])).is_err());
        let e = Agent::from_input(json!({"llm": {}, "system_prompt": "x",
                                         "system_prompt_filename": "system_prompt_interactive.j2"}))
        .unwrap_err();
        assert!(e.msg.starts_with("Value error, Cannot set both"), "{e:?}");
        assert!(
            Agent::from_input(json!({"llm": {}, "system_prompt": "x",
                                     "system_prompt_filename": "system_prompt.j2"}))
            .is_ok()
        );
    }

    #[test]
    fn condenser_llm_is_completed_and_kind_last() {
        let a = Agent::from_input(json!({"llm": {"model": "m"}, "condenser": {"kind": "LLMSummarizingCondenser", "llm": {"model": "m", "usage_id": "condenser"}, "max_size": 80}})).unwrap();
        let c = a.condenser.unwrap();
        let keys: Vec<&String> = c.as_object().unwrap().keys().collect();
        assert_eq!(keys.last().unwrap().as_str(), "kind");
        assert_eq!(c["llm"]["num_retries"], 5);
    }
}
