//! The `task` tool (the reference's `TaskToolSet`): what the LLM is told about it, its
//! parameters, and its `TaskObservation`. The description is our own wording; the
//! parameter names, the observation's fields and the texts the LLM reads in results
//! are the reference's. Running a task is the conversation's (`conversation/subagent.rs`).

use serde_json::{Map, Value, json};

use crate::tools::agent_types::AgentTypes;
use crate::tools::content::Content;

/// The `kind` of the task tool's observations.
pub const OBSERVATION_KIND: &str = "TaskObservation";
/// `status` of a task whose sub-agent came to an end.
pub const COMPLETED: &str = "completed";
/// `status` of a task that failed (or could not start).
pub const ERROR: &str = "error";
/// The text of a completed task whose sub-agent gave no final answer.
pub const NO_RESULT: &str = "Task completed with no result.";

/// Worked examples the description shows for the built-in types that are registered
/// (the reference's list, in its order; its examples for two more types are keyed by
/// names no type has, so they never show).
fn examples(types: &AgentTypes) -> String {
    let all = [
        (
            "code-explorer",
            "
Example: a search across several places (a good fit for code-explorer):
    subagent_type=\"code-explorer\"
    prompt=\"Find where the retry policy of the HTTP client is configured: the type that
    holds it, where its defaults are set, and every caller that overrides them. List
    file paths, line numbers and short excerpts.\"
",
        ),
        (
            "bash-runner",
            "
Example: running a test suite (a good fit for bash-runner):
    subagent_type=\"bash-runner\"
    prompt=\"Run `cargo test -p parser` in /workspace/project. Report how many tests
    passed and failed, and for each failure its name and the assertion that failed,
    without the full output.\"
",
        ),
    ];
    all.iter()
        .filter(|(name, _)| types.has(name))
        .map(|(_, text)| *text)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The tool's description, listing the conversation's sub-agent types.
pub fn description(types: &AgentTypes) -> String {
    format!(
        "Hand a self-contained piece of work to a sub-agent, which carries it out on its own \
and answers with its result.

A sub-agent starts with a fresh context, works in the same workspace as you and has its own \
tools. It is the right choice for exploring an unfamiliar code base or running a test suite, \
but every task costs a separate agent run: do not use it for what one command would answer.

Sub-agent types and their tools:
{info}

Do the work yourself instead when:
- one grep, find or cat would answer the question;
- you are about to edit a file (edit it directly);
- you already know what you need.

When you do hand work over:
- write a complete prompt: what to find or do, with the paths, names and error messages you \
already know;
- say what the answer must contain (paths, line numbers, excerpts, counts);
- trust the result; check it only when the task called for judgement;
- to continue an earlier task with its history, pass its task ID as `resume`.
{examples}",
        info = types.info(),
        examples = examples(types),
    )
}

/// The parameters besides `security_risk` and `summary` (`prompt` is required;
/// `max_turns`, which the reference still accepts, is not shown).
pub fn properties() -> Value {
    json!({
        "description": {
            "type": "string",
            "description": "A short label for the task, three to five words."
        },
        "prompt": {
            "type": "string",
            "description": "The work the sub-agent is to do, described completely."
        },
        "subagent_type": {
            "type": "string",
            "description": "Which type of sub-agent does the work (`general-purpose` when left \
    out)."
        },
        "resume": {
            "type": "string",
            "description": "The ID of an earlier task to continue, with its history."
        }
    })
}

/// A `TaskObservation`: `{"content","is_error","task_id","subagent","status","kind"}`.
pub fn observation(text: &str, task_id: &str, subagent: &str, status: &str, error: bool) -> Value {
    let mut obs = Map::new();
    obs.insert("content".into(), json!([Content::text(text).to_json()]));
    obs.insert("is_error".into(), Value::Bool(error));
    obs.insert("task_id".into(), Value::String(task_id.into()));
    obs.insert("subagent".into(), Value::String(subagent.into()));
    obs.insert("status".into(), Value::String(status.into()));
    obs.insert("kind".into(), Value::String(OBSERVATION_KIND.into()));
    Value::Object(obs)
}

/// The first block the LLM reads of a `TaskObservation` (before the error header).
pub fn info_text(obs: &Value) -> String {
    let s = |k: &str| obs.get(k).and_then(Value::as_str).unwrap_or_default();
    format!(
        "Task ID: {}\nSubagent: {}\nStatus: {}",
        s("task_id"),
        s("subagent"),
        s("status")
    )
}

/// The id of the `n`-th task of a conversation (1-based), as the reference numbers them.
pub fn task_id(n: usize) -> String {
    format!("task_{n:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observation_shape_and_info() {
        let obs = observation("done", &task_id(1), "general-purpose", COMPLETED, false);
        assert_eq!(
            obs,
            json!({"content": [{"cache_prompt": false, "type": "text", "text": "done"}],
                   "is_error": false, "task_id": "task_00000001",
                   "subagent": "general-purpose", "status": "completed",
                   "kind": "TaskObservation"})
        );
        assert_eq!(
            info_text(&obs),
            "Task ID: task_00000001\nSubagent: general-purpose\nStatus: completed"
        );
        assert_eq!(task_id(26), "task_0000001a");
    }

    #[test]
    fn description_lists_types_and_their_examples() {
        let d = description(&AgentTypes::builtins());
        assert!(d.contains("- **bash-runner**: "), "{d}");
        assert!(d.contains("subagent_type=\"code-explorer\""), "{d}");
        assert!(d.contains("subagent_type=\"bash-runner\""), "{d}");
    }
}
