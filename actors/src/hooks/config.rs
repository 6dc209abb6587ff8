//! The `HookConfig` a conversation is created with (or a project's
//! `hooks.json` holds): parsing with the reference's rules and error kinds,
//! its normalized JSON form, and which hooks match an event.
//!
//! Accepted input, as the reference's pydantic model accepts it: event keys
//! in snake_case (`pre_tool_use`) or PascalCase/camelCase (`PreToolUse`,
//! `preToolUse`), optionally wrapped in `{"hooks": {…}}`; each event a list
//! of `{"matcher", "hooks": [{"type", "command", "prompt", "timeout",
//! "async"}]}`. Errors carry a location below `hook_config`, a message and
//! the pydantic error type, so the HTTP layer can answer a 422. Pure: no
//! I/O, nothing is run here.

use serde_json::{Map, Value, json};

/// The six hook points, in the reference's field order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookEventType {
    /// Before a tool runs; may block it.
    PreToolUse,
    /// After a tool produced an observation.
    PostToolUse,
    /// When a user message arrives; may block it or add context.
    UserPromptSubmit,
    /// When the conversation's session starts.
    SessionStart,
    /// When the conversation's session ends.
    SessionEnd,
    /// When the agent is about to finish; may send it back to work.
    Stop,
}

impl HookEventType {
    /// Every hook point, in field order.
    pub const ALL: [HookEventType; 6] = [
        HookEventType::PreToolUse,
        HookEventType::PostToolUse,
        HookEventType::UserPromptSubmit,
        HookEventType::SessionStart,
        HookEventType::SessionEnd,
        HookEventType::Stop,
    ];

    /// The wire name (`hook_event_type`, `OPENHANDS_EVENT_TYPE`).
    pub fn as_str(self) -> &'static str {
        match self {
            HookEventType::PreToolUse => "PreToolUse",
            HookEventType::PostToolUse => "PostToolUse",
            HookEventType::UserPromptSubmit => "UserPromptSubmit",
            HookEventType::SessionStart => "SessionStart",
            HookEventType::SessionEnd => "SessionEnd",
            HookEventType::Stop => "Stop",
        }
    }

    /// The `HookConfig` field holding this point's matchers.
    pub fn field(self) -> &'static str {
        match self {
            HookEventType::PreToolUse => "pre_tool_use",
            HookEventType::PostToolUse => "post_tool_use",
            HookEventType::UserPromptSubmit => "user_prompt_submit",
            HookEventType::SessionStart => "session_start",
            HookEventType::SessionEnd => "session_end",
            HookEventType::Stop => "stop",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn from_field(field: &str) -> Option<HookEventType> {
        HookEventType::ALL.into_iter().find(|e| e.field() == field)
    }
}

/// What a hook definition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookType {
    /// A shell command.
    Command,
    /// An LLM prompt (accepted; like the reference, it runs its empty command).
    Prompt,
}

impl HookType {
    fn as_str(self) -> &'static str {
        match self {
            HookType::Command => "command",
            HookType::Prompt => "prompt",
        }
    }
}

/// One hook.
#[derive(Debug, Clone, PartialEq)]
pub struct HookDefinition {
    /// `command` or `prompt`.
    pub kind: HookType,
    /// Shell command (empty for prompt hooks).
    pub command: String,
    /// Prompt of a prompt hook.
    pub prompt: Option<String>,
    /// Seconds before the command is killed.
    pub timeout: i64,
    /// Fire and forget: the command is started and not waited for.
    pub is_async: bool,
}

/// A pattern and the hooks that run when it matches.
#[derive(Debug, Clone)]
pub struct HookMatcher {
    /// `*`/empty (everything), `/regex/`, a pattern with regex
    /// metacharacters, or an exact tool name.
    pub matcher: String,
    /// The hooks, run in order.
    pub hooks: Vec<HookDefinition>,
    regex: Option<regex::Regex>,
}

const REGEX_CHARS: &str = "|.*+?[]()^$\\";

fn full_match(pattern: &str) -> Option<regex::Regex> {
    regex::RegexBuilder::new(&format!(r"\A(?:{pattern})\z"))
        .size_limit(1 << 20)
        .build()
        .ok()
}

impl HookMatcher {
    fn new(matcher: String, hooks: Vec<HookDefinition>) -> HookMatcher {
        let explicit = matcher.len() > 2 && matcher.starts_with('/') && matcher.ends_with('/');
        let regex = if explicit {
            full_match(&matcher[1..matcher.len() - 1])
        } else if matcher.chars().any(|c| REGEX_CHARS.contains(c)) {
            full_match(&matcher)
        } else {
            None
        };
        HookMatcher {
            matcher,
            hooks,
            regex,
        }
    }

    /// Whether this matcher applies to `tool_name` (`None` for the hook
    /// points that have no tool: only `*` and the empty matcher apply).
    pub fn matches(&self, tool_name: Option<&str>) -> bool {
        if self.matcher == "*" || self.matcher.is_empty() {
            return true;
        }
        let Some(tool) = tool_name else {
            return false;
        };
        let explicit =
            self.matcher.len() > 2 && self.matcher.starts_with('/') && self.matcher.ends_with('/');
        if let Some(re) = &self.regex {
            return re.is_match(tool);
        }
        // An explicit `/…/` that does not compile matches nothing; any
        // other pattern that does not compile is compared as plain text.
        !explicit && self.matcher == tool
    }
}

/// Hooks of a conversation, by hook point.
#[derive(Debug, Clone, Default)]
pub struct HookConfig {
    events: [Vec<HookMatcher>; 6],
}

/// Why a hook configuration was refused: where (below `hook_config`), what,
/// and the pydantic error type.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// Path below the configuration, e.g. `["stop", "0", "hooks", "0", "command"]`.
    pub loc: Vec<String>,
    /// Message.
    pub msg: String,
    /// pydantic error type (`value_error`, `missing`, `list_type`, …).
    pub kind: &'static str,
}

impl ConfigError {
    fn new(loc: &[String], msg: impl Into<String>, kind: &'static str) -> ConfigError {
        ConfigError {
            loc: loc.to_vec(),
            msg: msg.into(),
            kind,
        }
    }
}

fn push(loc: &[String], seg: impl ToString) -> Vec<String> {
    let mut l = loc.to_vec();
    l.push(seg.to_string());
    l
}

/// `PreToolUse` → `pre_tool_use`: an underscore before every ASCII capital
/// but a leading one, then lower case (the reference's conversion).
fn pascal_to_snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c);
    }
    out.to_lowercase()
}

fn valid_types() -> String {
    let mut names: Vec<&str> = HookEventType::ALL.iter().map(|e| e.field()).collect();
    names.sort_unstable();
    names.join(", ")
}

fn int_value(v: &Value, loc: &[String]) -> Result<i64, ConfigError> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Ok(i);
            }
            match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
                Some(f) if f.is_finite() && f.fract() != 0.0 => Err(ConfigError::new(
                    loc,
                    "Input should be a valid integer, got a number with a fractional part",
                    "int_from_float",
                )),
                _ => Err(ConfigError::new(
                    loc,
                    "Input should be a valid integer",
                    "int_type",
                )),
            }
        }
        Value::String(s) => s.trim().parse::<i64>().map_err(|_| {
            ConfigError::new(
                loc,
                "Input should be a valid integer, unable to parse string as an integer",
                "int_parsing",
            )
        }),
        _ => Err(ConfigError::new(
            loc,
            "Input should be a valid integer",
            "int_type",
        )),
    }
}

fn bool_value(v: &Value, loc: &[String]) -> Result<bool, ConfigError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "1" | "on" | "t" | "true" | "y" | "yes" => Ok(true),
            "0" | "off" | "f" | "false" | "n" | "no" => Ok(false),
            _ => Err(ConfigError::new(
                loc,
                "Input should be a valid boolean, unable to interpret input",
                "bool_parsing",
            )),
        },
        _ => Err(ConfigError::new(
            loc,
            "Input should be a valid boolean",
            "bool_type",
        )),
    }
}

fn parse_definition(v: &Value, loc: &[String]) -> Result<HookDefinition, ConfigError> {
    let Value::Object(obj) = v else {
        return Err(ConfigError::new(
            loc,
            "Input should be a valid dictionary or instance of HookDefinition",
            "model_type",
        ));
    };
    let kind = match obj.get("type") {
        None => HookType::Command,
        Some(Value::String(s)) if s == "command" => HookType::Command,
        Some(Value::String(s)) if s == "prompt" => HookType::Prompt,
        Some(_) => {
            return Err(ConfigError::new(
                &push(loc, "type"),
                "Input should be 'command' or 'prompt'",
                "enum",
            ));
        }
    };
    let command = match obj.get("command") {
        // A prompt hook may leave the command out (it is then empty).
        None if kind == HookType::Prompt => String::new(),
        None => {
            return Err(ConfigError::new(
                &push(loc, "command"),
                "Field required",
                "missing",
            ));
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(ConfigError::new(
                &push(loc, "command"),
                "Input should be a valid string",
                "string_type",
            ));
        }
    };
    let prompt = match obj.get("prompt") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(ConfigError::new(
                &push(loc, "prompt"),
                "Input should be a valid string",
                "string_type",
            ));
        }
    };
    let timeout = match obj.get("timeout") {
        None => 60,
        Some(t) => int_value(t, &push(loc, "timeout"))?,
    };
    // The reference's field is `async_` with the alias `async`; both are read.
    let is_async = match (obj.get("async"), obj.get("async_")) {
        (Some(b), _) => bool_value(b, &push(loc, "async"))?,
        (None, Some(b)) => bool_value(b, &push(loc, "async_"))?,
        (None, None) => false,
    };
    if kind == HookType::Command && command.is_empty() {
        return Err(ConfigError::new(
            loc,
            "Value error, a command hook needs a non-empty 'command'",
            "value_error",
        ));
    }
    if kind == HookType::Prompt && prompt.as_deref().is_none_or(str::is_empty) {
        return Err(ConfigError::new(
            loc,
            "Value error, a prompt hook needs a non-empty 'prompt'",
            "value_error",
        ));
    }
    Ok(HookDefinition {
        kind,
        command,
        prompt,
        timeout,
        is_async,
    })
}

fn parse_matcher(v: &Value, loc: &[String]) -> Result<HookMatcher, ConfigError> {
    let Value::Object(obj) = v else {
        return Err(ConfigError::new(
            loc,
            "Input should be a valid dictionary or instance of HookMatcher",
            "model_type",
        ));
    };
    let matcher = match obj.get("matcher") {
        None => "*".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(ConfigError::new(
                &push(loc, "matcher"),
                "Input should be a valid string",
                "string_type",
            ));
        }
    };
    let hooks = match obj.get("hooks") {
        None => vec![],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, h)| parse_definition(h, &push(&push(loc, "hooks"), i)))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => {
            return Err(ConfigError::new(
                &push(loc, "hooks"),
                "Input should be a valid list",
                "list_type",
            ));
        }
    };
    Ok(HookMatcher::new(matcher, hooks))
}

impl HookConfig {
    /// Parses a configuration document.
    pub fn parse(doc: &Value) -> Result<HookConfig, ConfigError> {
        let root: Vec<String> = vec![];
        let Value::Object(top) = doc else {
            return Err(ConfigError::new(
                &root,
                "Input should be a valid dictionary or instance of HookConfig",
                "model_type",
            ));
        };
        // The legacy wrapper `{"hooks": {...}}`; other top-level keys are
        // then ignored, as in the reference.
        let (data, base) = match top.get("hooks") {
            Some(Value::Object(inner)) => (inner, vec!["hooks".to_string()]),
            Some(_) => {
                return Err(ConfigError::new(
                    &["hooks".to_string()],
                    "Input should be a valid dictionary",
                    "dict_type",
                ));
            }
            None => (top, root.clone()),
        };
        let mut seen: Vec<(String, &str, &Value)> = vec![];
        for (key, value) in data {
            let snake = pascal_to_snake(key);
            if snake != *key && HookEventType::from_field(&snake).is_none() {
                return Err(ConfigError::new(
                    &root,
                    format!(
                        "Value error, unknown hook event type '{key}'; the valid types are {}",
                        valid_types()
                    ),
                    "value_error",
                ));
            }
            if seen.iter().any(|(s, _, _)| *s == snake) {
                return Err(ConfigError::new(
                    &root,
                    format!(
                        "Value error, hook event '{snake}' is given twice (as '{key}' and in another spelling)"
                    ),
                    "value_error",
                ));
            }
            seen.push((snake, key.as_str(), value));
        }
        let mut cfg = HookConfig::default();
        for (snake, key, value) in seen {
            let loc = push(&base, key);
            let Some(event) = HookEventType::from_field(&snake) else {
                return Err(ConfigError::new(
                    &loc,
                    "Extra inputs are not permitted",
                    "extra_forbidden",
                ));
            };
            let Value::Array(items) = value else {
                return Err(ConfigError::new(
                    &loc,
                    "Input should be a valid list",
                    "list_type",
                ));
            };
            cfg.events[event.index()] = items
                .iter()
                .enumerate()
                .map(|(i, m)| parse_matcher(m, &push(&loc, i)))
                .collect::<Result<Vec<_>, _>>()?;
        }
        Ok(cfg)
    }

    /// Parses the `hook_config` member of a request: `None` when absent or null.
    pub fn from_request(v: Option<&Value>) -> Result<Option<HookConfig>, ConfigError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(doc) => HookConfig::parse(doc).map(Some),
        }
    }

    /// Whether no hook point has a matcher.
    pub fn is_empty(&self) -> bool {
        self.events.iter().all(Vec::is_empty)
    }

    /// Whether `event` has any matcher (the reference's `has_hooks`).
    pub fn has(&self, event: HookEventType) -> bool {
        !self.events[event.index()].is_empty()
    }

    /// The hooks to run for `event`, in order, over every matching matcher.
    pub fn hooks_for(&self, event: HookEventType, tool_name: Option<&str>) -> Vec<HookDefinition> {
        self.events[event.index()]
            .iter()
            .filter(|m| m.matches(tool_name))
            .flat_map(|m| m.hooks.iter().cloned())
            .collect()
    }

    /// The normalized JSON: every hook point in field order, every hook
    /// with all its fields (`async` under its alias).
    pub fn to_value(&self) -> Value {
        let mut out = Map::new();
        for event in HookEventType::ALL {
            let matchers: Vec<Value> = self.events[event.index()]
                .iter()
                .map(|m| {
                    let hooks: Vec<Value> = m
                        .hooks
                        .iter()
                        .map(|h| {
                            json!({"type": h.kind.as_str(), "command": h.command, "prompt": h.prompt,
                                   "timeout": h.timeout, "async": h.is_async})
                        })
                        .collect();
                    json!({"matcher": m.matcher, "hooks": hooks})
                })
                .collect();
            out.insert(event.field().into(), Value::Array(matchers));
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(doc: Value) -> ConfigError {
        HookConfig::parse(&doc).expect_err("refused")
    }

    #[test]
    fn spellings_and_wrapper_normalize_alike() {
        let snake = HookConfig::parse(&json!({"pre_tool_use": [{"matcher": "terminal",
            "hooks": [{"command": "a.sh", "timeout": 5, "async_": true}]}]}))
        .unwrap();
        let pascal = HookConfig::parse(&json!({"hooks": {"PreToolUse": [{"matcher": "terminal",
            "hooks": [{"type": "command", "command": "a.sh", "timeout": "5", "async": true}]}]}}))
        .unwrap();
        let camel = HookConfig::parse(&json!({"preToolUse": [{"matcher": "terminal",
            "hooks": [{"command": "a.sh", "timeout": 5.0, "async": "yes"}]}]}))
        .unwrap();
        let v = snake.to_value();
        assert_eq!(v, pascal.to_value());
        assert_eq!(v, camel.to_value());
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "pre_tool_use",
                "post_tool_use",
                "user_prompt_submit",
                "session_start",
                "session_end",
                "stop"
            ]
        );
        assert_eq!(
            v["pre_tool_use"][0]["hooks"][0],
            json!({"type": "command", "command": "a.sh", "prompt": null, "timeout": 5, "async": true})
        );
        let prompt = HookConfig::parse(
            &json!({"Stop": [{"hooks": [{"type": "prompt", "prompt": "done?"}]}]}),
        )
        .unwrap();
        assert_eq!(prompt.to_value()["stop"][0]["matcher"], "*");
        assert_eq!(prompt.to_value()["stop"][0]["hooks"][0]["command"], "");
        assert!(HookConfig::parse(&json!({})).unwrap().is_empty());
    }

    #[test]
    fn bad_configs_name_the_problem() {
        let e = err(json!({"OnBoot": []}));
        assert_eq!((e.kind, e.loc.len()), ("value_error", 0));
        assert!(
            e.msg.contains("'OnBoot'") && e.msg.contains("pre_tool_use"),
            "{}",
            e.msg
        );
        assert_eq!(err(json!({"stop": [], "Stop": []})).kind, "value_error");
        let e = err(json!({"on_boot": []}));
        assert_eq!(
            (e.kind, e.loc),
            ("extra_forbidden", vec!["on_boot".to_string()])
        );
        let e = err(json!({"stop": {"matcher": "*"}}));
        assert_eq!((e.kind, e.loc), ("list_type", vec!["stop".to_string()]));
        let e = err(json!({"stop": [{"hooks": [{"timeout": 3}]}]}));
        assert_eq!(e.kind, "missing");
        assert_eq!(e.loc, ["stop", "0", "hooks", "0", "command"]);
        let e = err(json!({"stop": [{"hooks": [{"command": ""}]}]}));
        assert_eq!((e.kind, e.loc.len()), ("value_error", 4));
        assert_eq!(
            err(json!({"stop": [{"hooks": [{"command": "x", "type": "shell"}]}]})).kind,
            "enum"
        );
        assert_eq!(
            err(json!({"stop": [{"hooks": [{"command": "x", "timeout": 1.5}]}]})).kind,
            "int_from_float"
        );
        assert_eq!(
            err(json!({"stop": [{"hooks": [{"command": "x", "timeout": "soon"}]}]})).kind,
            "int_parsing"
        );
        assert_eq!(
            err(json!({"stop": [{"hooks": [{"type": "prompt"}]}]})).kind,
            "value_error"
        );
        assert_eq!(err(json!({"stop": [{"matcher": 3}]})).kind, "string_type");
        assert_eq!(err(json!({"stop": [7]})).kind, "model_type");
        assert_eq!(err(json!([1])).kind, "model_type");
        assert_eq!(err(json!({"hooks": [1]})).kind, "dict_type");
        assert_eq!(
            HookConfig::from_request(Some(&Value::Null))
                .unwrap()
                .map(|c| c.is_empty()),
            None
        );
    }

    fn matcher(p: &str) -> HookMatcher {
        HookMatcher::new(p.into(), vec![])
    }

    #[test]
    fn matchers() {
        assert!(matcher("*").matches(Some("terminal")) && matcher("*").matches(None));
        assert!(matcher("").matches(None));
        assert!(!matcher("terminal").matches(None));
        assert!(matcher("terminal").matches(Some("terminal")));
        assert!(!matcher("terminal").matches(Some("terminal2")));
        assert!(matcher("terminal|file_editor").matches(Some("file_editor")));
        assert!(!matcher("term").matches(Some("terminal")));
        assert!(matcher("term.*").matches(Some("terminal")));
        assert!(
            !matcher("erm.*").matches(Some("terminal")),
            "a full match is required"
        );
        assert!(matcher("/file_.*/").matches(Some("file_editor")));
        assert!(
            !matcher("/[/").matches(Some("[")),
            "a broken explicit regex matches nothing"
        );
        assert!(
            matcher("a[").matches(Some("a[")),
            "a broken pattern falls back to text"
        );
        let cfg = HookConfig::parse(&json!({"pre_tool_use": [
            {"matcher": "terminal", "hooks": [{"command": "one"}]},
            {"matcher": "*", "hooks": [{"command": "two"}, {"command": "three"}]},
            {"matcher": "finish", "hooks": [{"command": "four"}]}]}))
        .unwrap();
        let names: Vec<String> = cfg
            .hooks_for(HookEventType::PreToolUse, Some("terminal"))
            .into_iter()
            .map(|h| h.command)
            .collect();
        assert_eq!(names, ["one", "two", "three"]);
        assert!(cfg.has(HookEventType::PreToolUse) && !cfg.has(HookEventType::Stop));
    }
}
