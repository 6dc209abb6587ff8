//! The built-in `switch_llm` tool (the reference's `SwitchLLMTool`): its description,
//! which lists the profile names it can switch to, its parameters, and the
//! `SwitchLLMObservation` it answers with, for success and for every failure.
//!
//! The names, parameter schema, observation fields and observation texts match the
//! reference, because agents and clients read them; the description is our own wording.
//! Loading the profile and installing its LLM belong to the settings store and the
//! conversation actor: this module builds JSON and text only.

use serde_json::{Map, Value, json};

use crate::tools::content::Content;

/// The tool's name, as the LLM calls it.
pub const NAME: &str = "switch_llm";

/// The class name clients list in `include_default_tools`.
pub const CLASS: &str = "SwitchLLMTool";

/// The prefix of the usage id a profile's LLM is accounted under (`profile:<name>`, as
/// the reference registers it).
pub const USAGE_PREFIX: &str = "profile:";

/// The description shown to the LLM, naming every profile in `profiles` (sorted).
pub fn description(profiles: &[String]) -> String {
    let mut names: Vec<&str> = profiles.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    let list = if names.is_empty() {
        "- No saved LLM profiles are available yet.".to_string()
    } else {
        names
            .iter()
            .map(|n| format!("- {n}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "Move this conversation onto another saved LLM profile.\n\n\
         Call it when a different profile suits the coming work better (cheaper, faster, \
         stronger at the task at hand). This call is still answered by the current model; \
         the change applies from the next LLM call on.\n\n\
         Available LLM profiles:\n{list}\n\n\
         Give profile_name exactly as it appears above, and a short reason for the change."
    )
}

/// The tool's own parameters (before `security_risk` and `summary` are added).
pub fn properties() -> Value {
    json!({
        "profile_name": {
            "type": "string",
            "description": "The saved LLM profile to use for the following agent steps."
        },
        "reason": {
            "type": "string",
            "description": "In a few words, why that profile fits the next step better."
        }
    })
}

/// The required parameters.
pub const REQUIRED: [&str; 2] = ["profile_name", "reason"];

/// A `SwitchLLMObservation`: `content`, `is_error`, `profile_name`, `reason`,
/// `active_model`, `kind`, in the reference's field order.
pub fn observation(
    text: &str,
    is_error: bool,
    profile_name: &str,
    reason: Option<&str>,
    active_model: Option<&str>,
) -> Value {
    let mut obs = Map::new();
    obs.insert("content".into(), json!([Content::text(text).to_json()]));
    obs.insert("is_error".into(), Value::Bool(is_error));
    obs.insert("profile_name".into(), Value::String(profile_name.into()));
    obs.insert("reason".into(), json!(reason));
    obs.insert("active_model".into(), json!(active_model));
    obs.insert("kind".into(), Value::String("SwitchLLMObservation".into()));
    Value::Object(obs)
}

/// The text of a successful switch.
pub fn success_text(profile_name: &str, active_model: &str, reason: &str) -> String {
    format!(
        "Switched LLM profile to '{profile_name}' with active model '{active_model}'. \
         Reason: {reason} Future agent steps will use this profile."
    )
}

/// The text when no profile of that name is stored.
pub fn not_found_text(profile_name: &str) -> String {
    format!("LLM profile '{profile_name}' was not found.")
}

/// The text of an unexpected failure; `kind` names the error's class as the reference
/// does (`<Type>: <message>`).
pub fn failure_text(profile_name: &str, kind: &str, message: &str) -> String {
    format!("Failed to switch LLM profile '{profile_name}': {kind}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_lists_the_profiles_sorted() {
        let d = description(&["slow".into(), "fast".into()]);
        let list = d.split("Available LLM profiles:\n").nth(1).unwrap();
        assert!(list.starts_with("- fast\n- slow\n\n"), "{d}");
        assert!(description(&[]).contains("- No saved LLM profiles"));
    }

    #[test]
    fn observation_shape() {
        let ok = observation("t", false, "fast", Some("r"), Some("openai/m"));
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"{"content":[{"cache_prompt":false,"type":"text","text":"t"}],"is_error":false,"profile_name":"fast","reason":"r","active_model":"openai/m","kind":"SwitchLLMObservation"}"#
        );
        let err = observation("t", true, "x", Some("r"), None);
        assert_eq!(err["active_model"], Value::Null);
        assert_eq!(err["is_error"], true);
    }

    #[test]
    fn texts() {
        assert_eq!(
            success_text("fast", "openai/m", "Cheaper."),
            "Switched LLM profile to 'fast' with active model 'openai/m'. Reason: Cheaper. \
             Future agent steps will use this profile."
        );
        assert_eq!(not_found_text("x"), "LLM profile 'x' was not found.");
        assert_eq!(
            failure_text("x", "PermissionError", "no"),
            "Failed to switch LLM profile 'x': PermissionError: no"
        );
    }
}
