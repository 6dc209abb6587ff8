//! The `delegate` tool: spawn named sub-agents, then hand them tasks that run in
//! parallel, with one observation gathering their answers. The reference shipped it
//! (`DelegateTool`, registered as `delegate`) until 1.22 and removed it in 1.23 in favour
//! of `task_tool_set`; its Action and Observation models are still part of 1.24, and this
//! server keeps the tool as an extension. What the LLM is told is our own wording; the
//! parameters, the models' fields and the result texts are the reference's. Running the
//! sub-agents is the conversation's (`conversation/subagent.rs`).

use serde_json::{Map, Value, json};

use crate::tools::agent_types::AgentTypes;
use crate::tools::content::Content;

/// The `kind` of the tool's observations.
pub const OBSERVATION_KIND: &str = "DelegateObservation";
/// How many sub-agents one conversation may spawn, unless the tool's `max_children`
/// parameter says otherwise (the reference's default).
pub const DEFAULT_MAX_CHILDREN: usize = 5;
/// A sub-agent that ended without a final answer.
pub const NO_RESPONSE: &str = "No response from sub-agent";

/// The tool's description: its two commands, the sub-agent types, the workspace.
pub fn description(types: &AgentTypes, working_dir: &str) -> String {
    format!(
        "Start sub-agents and give them work to do in parallel.

Two commands:

`spawn` creates sub-agents under names you choose, each an agent with its own context:
- choose names that say what each one is for, such as `tests`, `docs` or `refactor`;
- `agent_types` gives each name, position by position, the type of agent to create; a name \
without one (or with an empty one) gets the general-purpose type;
- e.g. {{\"command\": \"spawn\", \"ids\": [\"tests\", \"docs\"], \"agent_types\": [\"bash-runner\"]}}

`delegate` sends each named sub-agent its task and waits until all of them are done:
- `tasks` maps a spawned name to the task it is to carry out;
- the sub-agents work at the same time, and one observation brings back all their answers;
- e.g. {{\"command\": \"delegate\", \"tasks\": {{\"tests\": \"Run the unit tests and report \
failures\", \"docs\": \"List the public functions that have no doc comment\"}}}}

Sub-agent types:
{info}

Keep in mind:
- only names created with `spawn` can be given tasks;
- both commands block until they are done;
- a sub-agent keeps its history from one task to the next;
- the sub-agents work in your workspace, {working_dir}.",
        info = types.info(),
    )
}

/// The parameters besides `security_risk` and `summary` (`command` is required).
pub fn properties() -> Value {
    json!({
        "command": {
            "type": "string",
            "description": "What to do: `spawn` sub-agents, or `delegate` tasks to them.",
            "enum": ["spawn", "delegate"]
        },
        "ids": {
            "type": "array",
            "items": {"type": "string"},
            "description": "For `spawn` (required there): the names of the sub-agents to \
    create."
        },
        "agent_types": {
            "type": "array",
            "items": {"type": "string"},
            "description": "For `spawn` (optional): the type of each sub-agent, in the order \
    of `ids`; a missing or empty entry means the general-purpose type."
        },
        "tasks": {
            "type": "object",
            "description": "For `delegate` (required there): each sub-agent's name mapped to \
    the task it is to carry out."
        }
    })
}

/// A `DelegateObservation`: `{"content","is_error","command","kind"}`.
pub fn observation(text: &str, command: &str, error: bool) -> Value {
    let mut obs = Map::new();
    obs.insert("content".into(), json!([Content::text(text).to_json()]));
    obs.insert("is_error".into(), Value::Bool(error));
    obs.insert("command".into(), Value::String(command.into()));
    obs.insert("kind".into(), Value::String(OBSERVATION_KIND.into()));
    Value::Object(obs)
}

/// How `spawn` names a sub-agent in its answer: `<id> (<type>)`.
pub fn label(id: &str, agent_type: &str) -> String {
    format!("{id} ({agent_type})")
}

/// The answer of `delegate`: the count, the errors, and one line per task in the order
/// the tasks were given (`Agent <id>: <answer>`, `Agent <id> ERROR: <error>`).
pub fn delegate_text(results: &[(String, Result<String, String>)]) -> String {
    let errors = results.iter().filter(|(_, r)| r.is_err()).count();
    let mut out = format!("Completed delegation of {} tasks", results.len());
    if errors > 0 {
        out.push_str(&format!(" with {errors} errors"));
    }
    if !results.is_empty() {
        out.push_str("\n\nResults:\n");
        let lines: Vec<String> = results
            .iter()
            .enumerate()
            .map(|(i, (id, r))| match r {
                Ok(text) => format!("{}. Agent {id}: {text}", i + 1),
                Err(e) => format!("{}. Agent {id} ERROR: {e}", i + 1),
            })
            .collect();
        out.push_str(&lines.join("\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delegate_text_numbers_results_in_task_order() {
        let text = delegate_text(&[
            ("a".into(), Ok("fine".into())),
            ("b".into(), Err("Sub-agent b failed: boom".into())),
        ]);
        assert_eq!(
            text,
            "Completed delegation of 2 tasks with 1 errors\n\nResults:\n1. Agent a: fine\n\
             2. Agent b ERROR: Sub-agent b failed: boom"
        );
        assert_eq!(
            observation("x", "spawn", false),
            json!({"content": [{"cache_prompt": false, "type": "text", "text": "x"}],
                   "is_error": false, "command": "spawn", "kind": "DelegateObservation"})
        );
    }
}
