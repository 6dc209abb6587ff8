//! Project hooks: `<project_dir>/.openhands/hooks.json` read into the
//! reference's `HookConfig` shape (snake_case event names, every event
//! listed, each hook with `type`, `command`, `prompt`, `timeout`, `async`).
//!
//! Accepted input, as in the reference: snake_case or PascalCase event
//! names (`PreToolUse`), optionally wrapped in `{"hooks": {…}}`. A missing,
//! empty or invalid file gives `None` (invalid ones are logged). Blocking
//! file I/O: call from a blocking thread. Hooks are only read here, never
//! run; the parsing is `crate::hooks::config`'s, shared with conversations.

use std::path::Path;

use serde_json::Value;

use crate::hooks::HookConfig;

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

/// Parses a hooks document; `Ok(None)` when it configures no hook.
pub fn parse_hook_config(doc: &Value) -> Result<Option<Value>, String> {
    let cfg = HookConfig::parse(doc).map_err(|e| {
        if e.loc.is_empty() {
            e.msg
        } else {
            format!("{}: {}", e.loc.join("."), e.msg)
        }
    })?;
    Ok((!cfg.is_empty()).then(|| cfg.to_value()))
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
    use serde_json::json;

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
