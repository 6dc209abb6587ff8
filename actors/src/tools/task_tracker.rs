//! The `task_tracker` tool: the agent's task list, its `view`/`plan` commands and the
//! `TaskTrackerObservation` (contract §3.5).
//!
//! One [`TaskTracker`] lives per conversation. `plan` replaces the whole list and writes it
//! to `<persistence_dir>/TASKS.json` (atomically); the list is loaded from there when the
//! tracker is built, so it survives a restart. The result texts are the reference's
//! exactly, because the LLM's prompts depend on them. File I/O is blocking: call
//! [`TaskTracker::new`] and [`TaskTracker::execute`] off the async threads. This module
//! does not parse tool calls (see `catalog`, which also builds the `finish` and `think`
//! observations) and does not emit events.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::tools::content::Content;
use crate::tools::file_editor::write_atomic;

const TASKS_FILE: &str = "TASKS.json";
const ERROR_HEADER: &str = "[An error occurred during execution.]\n";

/// Progress of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Not started.
    #[default]
    Todo,
    /// Being worked on.
    InProgress,
    /// Finished.
    Done,
}

impl TaskStatus {
    fn icon(self) -> &'static str {
        match self {
            Self::Todo => "⏳",
            Self::InProgress => "🔄",
            Self::Done => "✅",
        }
    }
}

/// One task: `{"title","notes","status"}`. Unknown keys are ignored on input, as the
/// reference's `TaskItem` does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskItem {
    /// Short title.
    pub title: String,
    /// Optional details; `""` when absent.
    #[serde(default)]
    pub notes: String,
    /// Progress; `todo` when absent.
    #[serde(default)]
    pub status: TaskStatus,
}

/// The result of one `task_tracker` action.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskTrackerObservation {
    /// The result text.
    pub text: String,
    /// Whether the action failed.
    pub is_error: bool,
    /// `view` or `plan`.
    pub command: String,
    /// The task list after the action.
    pub task_list: Vec<TaskItem>,
}

impl TaskTrackerObservation {
    /// The observation JSON, `kind` last:
    /// `{"content":[…],"is_error":false,"command":"plan","task_list":[…],"kind":"TaskTrackerObservation"}`.
    pub fn to_json(&self) -> Value {
        let mut obs = Map::new();
        obs.insert(
            "content".into(),
            Value::Array(vec![Content::text(self.text.clone()).to_json()]),
        );
        obs.insert("is_error".into(), Value::Bool(self.is_error));
        obs.insert("command".into(), Value::String(self.command.clone()));
        obs.insert(
            "task_list".into(),
            serde_json::to_value(&self.task_list).unwrap_or(Value::Array(Vec::new())),
        );
        obs.insert(
            "kind".into(),
            Value::String("TaskTrackerObservation".into()),
        );
        Value::Object(obs)
    }

    /// The text the LLM sees, after the error header when `is_error`.
    pub fn llm_text(&self) -> String {
        if self.is_error {
            format!("{ERROR_HEADER}{}", self.text)
        } else {
            self.text.clone()
        }
    }
}

/// The per-conversation task list.
#[derive(Debug, Default)]
pub struct TaskTracker {
    persistence_dir: Option<PathBuf>,
    tasks: Vec<TaskItem>,
}

impl TaskTracker {
    /// A tracker persisting to `<persistence_dir>/TASKS.json` (none when `None`), starting
    /// from the list saved there. An unreadable or invalid file is logged and ignored.
    pub fn new(persistence_dir: Option<&Path>) -> Self {
        let persistence_dir = persistence_dir.map(Path::to_path_buf);
        let tasks = persistence_dir
            .as_deref()
            .map(load_tasks)
            .unwrap_or_default();
        Self {
            persistence_dir,
            tasks,
        }
    }

    /// The current task list.
    pub fn tasks(&self) -> &[TaskItem] {
        &self.tasks
    }

    /// Executes one `TaskTrackerAction` (its JSON, as built by `catalog::parse_tool_call`).
    pub fn execute(&mut self, action: &Value) -> TaskTrackerObservation {
        let command = action
            .get("command")
            .and_then(Value::as_str)
            .unwrap_or("view");
        match command {
            "plan" => {
                let items = action
                    .get("task_list")
                    .cloned()
                    .unwrap_or(Value::Array(Vec::new()));
                let tasks: Vec<TaskItem> = match serde_json::from_value(items) {
                    Ok(tasks) => tasks,
                    Err(e) => {
                        return TaskTrackerObservation {
                            text: format!("Invalid task list: {e}"),
                            is_error: true,
                            command: "plan".into(),
                            task_list: self.tasks.clone(),
                        };
                    }
                };
                self.tasks = tasks;
                self.save();
                TaskTrackerObservation {
                    text: format!(
                        "Task list has been updated with {} item(s).",
                        self.tasks.len()
                    ),
                    is_error: false,
                    command: "plan".into(),
                    task_list: self.tasks.clone(),
                }
            }
            "view" if self.tasks.is_empty() => TaskTrackerObservation {
                text: "No task list found. Use the \"plan\" command to create one.".into(),
                is_error: false,
                command: "view".into(),
                task_list: Vec::new(),
            },
            "view" => TaskTrackerObservation {
                text: render(&self.tasks),
                is_error: false,
                command: "view".into(),
                task_list: self.tasks.clone(),
            },
            // The observation's `command` must be `view` or `plan` for the client.
            other => TaskTrackerObservation {
                text: format!(
                    "Unknown command: {other}. Supported commands are \"view\" and \"plan\"."
                ),
                is_error: true,
                command: "view".into(),
                task_list: Vec::new(),
            },
        }
    }

    /// Writes the list; a failure is logged and the in-memory list still counts, as in
    /// the reference.
    fn save(&self) {
        let Some(dir) = &self.persistence_dir else {
            return;
        };
        let file = dir.join(TASKS_FILE);
        let result = std::fs::create_dir_all(dir).and_then(|()| {
            let json = serde_json::to_vec_pretty(&self.tasks).map_err(std::io::Error::other)?;
            write_atomic(&file, &json)
        });
        if let Err(e) = result {
            log::warn!("failed to save tasks to {}: {e}", file.display());
        }
    }
}

fn load_tasks(dir: &Path) -> Vec<TaskItem> {
    let file = dir.join(TASKS_FILE);
    let bytes = match std::fs::read(&file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            log::warn!("failed to read tasks from {}: {e}", file.display());
            return Vec::new();
        }
    };
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        log::warn!(
            "invalid tasks file {}: {e}; starting with an empty task list",
            file.display()
        );
        Vec::new()
    })
}

/// `# Task List\n\n1. ⏳ title\n   notes\n\n2. …`, trailing whitespace trimmed.
fn render(tasks: &[TaskItem]) -> String {
    let mut out = String::from("# Task List\n\n");
    for (i, task) in tasks.iter().enumerate() {
        out.push_str(&format!(
            "{}. {} {}\n",
            i + 1,
            task.status.icon(),
            task.title
        ));
        if !task.notes.is_empty() {
            out.push_str(&format!("   {}\n", task.notes));
        }
        out.push('\n');
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan() -> Value {
        json!({"command": "plan", "task_list": [
            {"title": "Install dependencies", "notes": "", "status": "done"},
            {"title": "Configure environment", "notes": "n", "status": "in_progress"},
            {"title": "Run tests", "notes": "", "status": "todo"}
        ], "kind": "TaskTrackerAction"})
    }

    #[test]
    fn view_without_a_list() {
        let mut t = TaskTracker::new(None);
        let obs = t.execute(&json!({"command": "view", "task_list": []}));
        assert_eq!(
            serde_json::to_string(&obs.to_json()).unwrap(),
            r#"{"content":[{"cache_prompt":false,"type":"text","text":"No task list found. Use the \"plan\" command to create one."}],"is_error":false,"command":"view","task_list":[],"kind":"TaskTrackerObservation"}"#
        );
    }

    #[test]
    fn plan_as_in_the_transcript() {
        let mut t = TaskTracker::new(None);
        let obs = t.execute(&plan());
        assert_eq!(
            serde_json::to_string(&obs.to_json()).unwrap(),
            r#"{"content":[{"cache_prompt":false,"type":"text","text":"Task list has been updated with 3 item(s)."}],"is_error":false,"command":"plan","task_list":[{"title":"Install dependencies","notes":"","status":"done"},{"title":"Configure environment","notes":"n","status":"in_progress"},{"title":"Run tests","notes":"","status":"todo"}],"kind":"TaskTrackerObservation"}"#
        );
        assert_eq!(obs.llm_text(), "Task list has been updated with 3 item(s).");
    }

    #[test]
    fn view_renders_the_list() {
        let mut t = TaskTracker::new(None);
        t.execute(&plan());
        let obs = t.execute(&json!({"command": "view"}));
        assert_eq!(
            obs.text,
            "# Task List\n\n1. ✅ Install dependencies\n\n2. 🔄 Configure environment\n   n\n\n3. ⏳ Run tests"
        );
        assert_eq!(obs.task_list.len(), 3);
        assert_eq!(obs.command, "view");
    }

    #[test]
    fn item_defaults_and_empty_plan() {
        let mut t = TaskTracker::new(None);
        let obs = t.execute(&json!({"command": "plan", "task_list": [{"title": "x", "extra": 1}]}));
        assert_eq!(
            obs.task_list,
            vec![TaskItem {
                title: "x".into(),
                notes: String::new(),
                status: TaskStatus::Todo
            }]
        );
        let obs = t.execute(&json!({"command": "plan", "task_list": []}));
        assert_eq!(obs.text, "Task list has been updated with 0 item(s).");
        assert!(
            t.execute(&json!({"command": "view"}))
                .text
                .starts_with("No task list found.")
        );
    }

    #[test]
    fn persists_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let conv = dir.path().join("conversations/abc");
        let mut t = TaskTracker::new(Some(&conv));
        t.execute(&plan());
        let saved: Value =
            serde_json::from_slice(&std::fs::read(conv.join("TASKS.json")).unwrap()).unwrap();
        assert_eq!(
            saved[1],
            json!({"title": "Configure environment", "notes": "n", "status": "in_progress"})
        );
        let reloaded = TaskTracker::new(Some(&conv));
        assert_eq!(reloaded.tasks(), t.tasks());
    }

    #[test]
    fn a_corrupt_file_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("TASKS.json"), "{not json").unwrap();
        assert!(TaskTracker::new(Some(dir.path())).tasks().is_empty());
        std::fs::write(dir.path().join("TASKS.json"), r#"[{"notes":"no title"}]"#).unwrap();
        assert!(TaskTracker::new(Some(dir.path())).tasks().is_empty());
    }

    #[test]
    fn invalid_input_is_an_error_observation() {
        let mut t = TaskTracker::new(None);
        let obs = t.execute(&json!({"command": "plan", "task_list": [{"title": 1}]}));
        assert!(obs.is_error);
        assert!(
            obs.llm_text()
                .starts_with("[An error occurred during execution.]\nInvalid task list")
        );
        let obs = t.execute(&json!({"command": "erase"}));
        assert!(obs.is_error);
        assert_eq!(obs.command, "view");
        let json = obs.to_json();
        assert_eq!(
            json.as_object().unwrap().keys().next_back().unwrap(),
            "kind"
        );
    }
}
