//! Conversation hooks: the configuration a conversation is created with
//! ([`config`]), running the commands ([`exec`]), and the
//! `HookExecutionEvent` recorded for each run (built here). When each hook
//! point fires and what its verdict does to the conversation is the
//! conversation actor's business (`conversation/hooks.rs`), not this
//! module's.

pub mod config;
pub mod exec;

use serde_json::Value;

pub use config::{ConfigError, HookConfig, HookDefinition, HookEventType};
pub use exec::{AsyncHooks, HookEnv, HookInput, HookResult};

use crate::model::event::HookExecutionEvent;

/// Longest text (in characters) kept in an event's output fields.
pub const MAX_LOG_CHARS: usize = 50_000;
/// Appended to a text cut to [`MAX_LOG_CHARS`].
pub const TRUNCATION_MARK: &str = "\n<TRUNCATED>";

/// `text` cut to [`MAX_LOG_CHARS`] characters, the cut marked.
pub fn truncate_log(text: &str) -> String {
    if text.chars().count() <= MAX_LOG_CHARS {
        return text.to_string();
    }
    let keep = MAX_LOG_CHARS - TRUNCATION_MARK.chars().count();
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(TRUNCATION_MARK);
    out
}

/// What a hook ran for, besides its hook point.
#[derive(Debug, Clone, Default)]
pub struct HookSubject {
    /// Tool of a tool hook.
    pub tool_name: Option<String>,
    /// Action event id of a tool hook.
    pub action_id: Option<String>,
    /// Message event id of a UserPromptSubmit hook.
    pub message_id: Option<String>,
    /// The `hook_input` recorded in the event.
    pub hook_input: Option<Value>,
}

/// The event body recording one hook run.
pub fn execution_event(
    event: HookEventType,
    hook: &HookDefinition,
    result: &HookResult,
    subject: &HookSubject,
) -> HookExecutionEvent {
    HookExecutionEvent {
        hook_event_type: event.as_str().into(),
        hook_command: hook.command.clone(),
        tool_name: subject.tool_name.clone(),
        success: result.success,
        blocked: result.blocked,
        exit_code: result.exit_code,
        stdout: truncate_log(&result.stdout),
        stderr: truncate_log(&result.stderr),
        reason: result.reason.as_deref().map(truncate_log),
        additional_context: result.additional_context.as_deref().map(truncate_log),
        error: result.error.as_deref().map(truncate_log),
        action_id: subject.action_id.clone(),
        message_id: subject.message_id.clone(),
        hook_input: subject.hook_input.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_the_limit() {
        assert_eq!(truncate_log("short"), "short");
        let exact = "é".repeat(MAX_LOG_CHARS);
        assert_eq!(truncate_log(&exact), exact);
        let long = "é".repeat(MAX_LOG_CHARS + 1);
        let cut = truncate_log(&long);
        assert_eq!(cut.chars().count(), MAX_LOG_CHARS);
        assert!(cut.ends_with(TRUNCATION_MARK));
    }
}
