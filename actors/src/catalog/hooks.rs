//! Project hooks: `<project_dir>/.openhands/hooks.json` read into the
//! reference's `HookConfig` shape (snake_case event names, every event
//! listed, each hook with `type`, `command`, `prompt`, `timeout`, `async`).
//!
//! Accepted input, as in the reference: snake_case or PascalCase event
//! names (`PreToolUse`), optionally wrapped in `{"hooks": {…}}`. A missing,
//! empty or invalid file gives `None` (invalid ones are logged). Blocking
//! file I/O: call from a blocking thread. Hooks are only read, never run.

use std::path::Path;

use serde_json::{Map, Value, json};

/// Event names, in output order.
pub const HOOK_EVENTS: [&str; 6] = [
    "pre_tool_use",
    "post_tool_use",
    "user_prompt_submit",
    "session_start",
    "session_end",
    "stop",
];

/// Largest hooks file read.
const MAX_FILE_BYTES: u64 = 1 << 20;

fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn hook(v: &Value) -> Result<Value, String> {
    let obj = v.as_object().ok_or("a hook must be an object")?;
    let kind = match obj.get("type") {
        None => "command",
        Some(Value::String(s)) if s == "command" || s == "prompt" => s.as_str(),
        Some(_) => return Err("hook type must be 'command' or 'prompt'".into()),
    };
    let command = match obj.get("command") {
        Some(Value::String(s)) => s.clone(),
        None if kind == "prompt" => String::new(),
        _ => return Err("hook 'command' must be a string".into()),
    };
    let prompt = match obj.get("prompt") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("hook 'prompt' must be a string".into()),
    };
    if kind == "command" && command.is_empty() {
        return Err("'command' is required when type is 'command'".into());
    }
    if kind == "prompt" && prompt.as_deref().is_none_or(str::is_empty) {
        return Err("'prompt' is required when type is 'prompt'".into());
    }
    let timeout = match obj.get("timeout") {
        None => 60,
        Some(t) => t.as_i64().ok_or("hook 'timeout' must be an integer")?,
    };
    let is_async = match obj.get("async").or_else(|| obj.get("async_")) {
        None => false,
        Some(b) => b.as_bool().ok_or("hook 'async' must be a boolean")?,
    };
    Ok(
        json!({"type": kind, "command": command, "prompt": prompt, "timeout": timeout, "async": is_async}),
    )
}

fn matcher(v: &Value) -> Result<Value, String> {
    let obj = v.as_object().ok_or("a matcher must be an object")?;
    let pattern = match obj.get("matcher") {
        None => "*".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("'matcher' must be a string".into()),
    };
    let hooks = match obj.get("hooks") {
        None => vec![],
        Some(Value::Array(a)) => a.iter().map(hook).collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err("'hooks' must be a list".into()),
    };
    Ok(json!({"matcher": pattern, "hooks": hooks}))
}

/// Parses a hooks document; `Ok(None)` when it configures no hook.
pub fn parse_hook_config(doc: &Value) -> Result<Option<Value>, String> {
    let mut data = doc
        .as_object()
        .ok_or("the hooks file must hold an object")?;
    if let Some(inner) = data.get("hooks") {
        data = inner
            .as_object()
            .ok_or("'hooks' must hold an object of events")?;
    }
    let mut by_event: Map<String, Value> = Map::new();
    for (key, value) in data {
        let snake = snake_case(key);
        if !HOOK_EVENTS.contains(&snake.as_str()) {
            return Err(format!(
                "unknown event type '{key}'; valid types: {}",
                HOOK_EVENTS.join(", ")
            ));
        }
        if by_event.contains_key(&snake) {
            return Err(format!("event '{snake}' is given twice"));
        }
        let list = value
            .as_array()
            .ok_or_else(|| format!("'{key}' must be a list of matchers"))?;
        let matchers = list.iter().map(matcher).collect::<Result<Vec<_>, _>>()?;
        by_event.insert(snake, Value::Array(matchers));
    }
    if by_event
        .values()
        .all(|v| v.as_array().is_none_or(Vec::is_empty))
    {
        return Ok(None);
    }
    let mut out = Map::new();
    for event in HOOK_EVENTS {
        out.insert(
            event.to_string(),
            by_event.remove(event).unwrap_or_else(|| json!([])),
        );
    }
    Ok(Some(Value::Object(out)))
}

/// The hook configuration of a project, if it has a usable one.
pub fn load_project_hooks(project_dir: &Path) -> Option<Value> {
    let path = project_dir.join(".openhands").join("hooks.json");
    let meta = std::fs::metadata(&path).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.len() > MAX_FILE_BYTES {
        log::warn!(
            "{}: larger than {MAX_FILE_BYTES} bytes; ignored",
            path.display()
        );
        return None;
    }
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) => {
            log::warn!("{}: cannot be read: {e}", path.display());
            return None;
        }
    };
    let parsed = serde_json::from_slice::<Value>(&text)
        .map_err(|e| e.to_string())
        .and_then(|doc| parse_hook_config(&doc));
    match parsed {
        Ok(cfg) => cfg,
        Err(e) => {
            log::warn!("{}: invalid hooks file: {e}", path.display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pascal_case_and_wrapper() {
        let cfg = parse_hook_config(&json!({"hooks": {"PreToolUse": [
            {"matcher": "terminal", "hooks": [{"command": "check.sh", "async": true}]}
        ], "Stop": [{"hooks": [{"type": "prompt", "prompt": "done?"}]}]}}))
        .unwrap()
        .unwrap();
        let keys: Vec<&String> = cfg.as_object().unwrap().keys().collect();
        assert_eq!(keys, HOOK_EVENTS);
        assert_eq!(
            cfg["pre_tool_use"][0],
            json!({"matcher": "terminal", "hooks": [{"type": "command", "command": "check.sh", "prompt": null, "timeout": 60, "async": true}]})
        );
        assert_eq!(cfg["stop"][0]["matcher"], "*");
        assert_eq!(cfg["stop"][0]["hooks"][0]["command"], "");
    }

    #[test]
    fn empty_and_invalid() {
        assert_eq!(parse_hook_config(&json!({})).unwrap(), None);
        assert_eq!(parse_hook_config(&json!({"stop": []})).unwrap(), None);
        assert!(parse_hook_config(&json!({"OnBoot": []})).is_err());
        assert!(parse_hook_config(&json!({"stop": [], "Stop": []})).is_err());
        assert!(parse_hook_config(&json!({"stop": [{"hooks": [{"type": "command"}]}]})).is_err());
        assert!(parse_hook_config(&json!([1])).is_err());
    }
}
