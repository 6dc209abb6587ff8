//! The planning preset's `planning_file_editor`: the file editor, with every command but
//! `view` limited to the plan file, answering `PlanningFileEditorObservation`s.
//!
//! The plan file is the tool's `plan_path` parameter when given (it must be absolute),
//! else `PLAN.md` in the workspace root when one is already there (the reference's legacy
//! place), else `<workspace root>/.agents_tmp/PLAN.md`. It is created with the plan's
//! section headings when the agent starts (and, as the reference re-creates its tools,
//! when a conversation is loaded again). Blocking I/O: run [`PlanningEditor::execute`] and
//! [`ensure_plan_file`] on a blocking thread.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::tools::content::Content;
use crate::tools::file_editor::{FileEditor, write_atomic};
use crate::tools::paths;

/// Directory of the default plan file, under the workspace root.
pub const PLAN_DIR: &str = ".agents_tmp";
/// File name of the plan.
pub const PLAN_FILE: &str = "PLAN.md";
/// The headings a new plan file starts with: the sections the planning prompt asks for.
pub const PLAN_HEADINGS: &str = "# 1. OBJECTIVE\n\n# 2. CONTEXT SUMMARY\n\n# 3. APPROACH \
OVERVIEW\n\n# 4. IMPLEMENTATION STEPS\n\n# 5. TESTING AND VALIDATION\n";

/// The default plan location shown when nothing has been resolved yet.
pub fn default_plan_display(working_dir: &str) -> String {
    format!(
        "{}/{PLAN_DIR}/{PLAN_FILE}",
        working_dir.trim_end_matches('/')
    )
}

/// Where the plan lives for this agent: `params.plan_path` (absolute, checked when the
/// agent starts), the legacy `<root>/PLAN.md` when it exists, else
/// `<root>/.agents_tmp/PLAN.md`, with `root` the resolved working directory. Blocking
/// (it resolves symlinks and checks for the legacy file).
pub fn plan_path(params: &Map<String, Value>, working_dir: &Path) -> PathBuf {
    if let Some(Value::String(p)) = params.get("plan_path")
        && p.starts_with('/')
    {
        return PathBuf::from(p);
    }
    let root = paths::resolve(Path::new("/"), working_dir).unwrap_or_else(|_| working_dir.into());
    let legacy = root.join(PLAN_FILE);
    if legacy.exists() {
        legacy
    } else {
        root.join(PLAN_DIR).join(PLAN_FILE)
    }
}

/// Creates the plan file with its headings when it does not exist.
pub fn ensure_plan_file(plan: &Path) -> io::Result<()> {
    if fs::symlink_metadata(plan).is_ok() {
        return Ok(());
    }
    if let Some(dir) = plan.parent() {
        fs::create_dir_all(dir)?;
    }
    write_atomic(plan, PLAN_HEADINGS.as_bytes())
}

/// The planning agent's editor: its own undo history, and the one file it may change.
#[derive(Debug)]
pub struct PlanningEditor {
    editor: FileEditor,
    plan: PathBuf,
}

impl PlanningEditor {
    /// An editor limited to `plan`.
    pub fn new(plan: PathBuf) -> Self {
        Self {
            editor: FileEditor::new(),
            plan,
        }
    }

    /// The plan file.
    pub fn plan(&self) -> &Path {
        &self.plan
    }

    /// Executes one validated `PlanningFileEditorAction` and returns the
    /// `PlanningFileEditorObservation` JSON: the file editor's result with only
    /// `command`, `content`, `is_error` and `path` kept (the rest at their defaults), or
    /// the refusal of an edit to any other file. `cwd` is the working directory.
    pub fn execute(&mut self, action: &Value, cwd: &Path) -> Value {
        let command = action
            .get("command")
            .and_then(Value::as_str)
            .unwrap_or("view")
            .to_string();
        let raw = action.get("path").and_then(Value::as_str).unwrap_or("");
        if command != "view" {
            // The reference resolves the given path against the process directory.
            let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
            let target = paths::resolve(&base, Path::new(raw)).unwrap_or_else(|_| raw.into());
            let allowed = paths::resolve(&base, &self.plan).unwrap_or_else(|_| self.plan.clone());
            if target != allowed {
                let text = format!(
                    "Operation '{command}' is not allowed on file '{}'. Only the following \
                     files can be edited: ['{}']",
                    target.display(),
                    allowed.display()
                );
                let content = serde_json::json!([Content::text(text).to_json()]);
                return observation(&command, content, true, Value::Null);
            }
        }
        let inner = self.editor.execute(action, cwd).to_json();
        observation(
            &command,
            inner
                .get("content")
                .cloned()
                .unwrap_or(Value::Array(vec![])),
            inner
                .get("is_error")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            inner.get("path").cloned().unwrap_or(Value::Null),
        )
    }
}

fn observation(command: &str, content: Value, is_error: bool, path: Value) -> Value {
    let mut obs = Map::new();
    obs.insert("content".into(), content);
    obs.insert("is_error".into(), Value::Bool(is_error));
    obs.insert("command".into(), Value::String(command.into()));
    obs.insert("path".into(), path);
    obs.insert("prev_exist".into(), Value::Bool(true));
    obs.insert("old_content".into(), Value::Null);
    obs.insert("new_content".into(), Value::Null);
    obs.insert(
        "kind".into(),
        Value::String("PlanningFileEditorObservation".into()),
    );
    Value::Object(obs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plan_location_and_headings() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        let none = Map::new();
        assert_eq!(plan_path(&none, &root), root.join(".agents_tmp/PLAN.md"));
        let mut given = Map::new();
        given.insert("plan_path".into(), json!("/elsewhere/PLAN.md"));
        assert_eq!(
            plan_path(&given, &root),
            PathBuf::from("/elsewhere/PLAN.md")
        );
        fs::write(root.join("PLAN.md"), "old plan").unwrap();
        assert_eq!(plan_path(&none, &root), root.join("PLAN.md"));
        let plan = root.join(".agents_tmp/PLAN.md");
        ensure_plan_file(&plan).unwrap();
        assert_eq!(fs::read_to_string(&plan).unwrap(), PLAN_HEADINGS);
        fs::write(&plan, "mine").unwrap();
        ensure_plan_file(&plan).unwrap();
        assert_eq!(fs::read_to_string(&plan).unwrap(), "mine");
        assert!(PLAN_HEADINGS.starts_with("# 1. OBJECTIVE\n\n# 2. CONTEXT SUMMARY\n"));
    }

    #[test]
    fn edits_are_limited_to_the_plan() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        let plan = root.join(".agents_tmp/PLAN.md");
        ensure_plan_file(&plan).unwrap();
        fs::write(root.join("code.py"), "x = 1\n").unwrap();
        let mut ed = PlanningEditor::new(plan.clone());
        let code = root.join("code.py").display().to_string();
        let view = ed.execute(&json!({"command": "view", "path": code}), &root);
        assert_eq!(view["is_error"], false);
        assert_eq!(view["kind"], "PlanningFileEditorObservation");
        assert_eq!(view["path"], code);
        assert!(
            view["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("x = 1")
        );
        let refused = ed.execute(
            &json!({"command": "str_replace", "path": code, "old_str": "x", "new_str": "y"}),
            &root,
        );
        assert_eq!(refused["is_error"], true);
        assert_eq!(
            refused["content"][0]["text"],
            format!(
                "Operation 'str_replace' is not allowed on file '{code}'. Only the following \
                 files can be edited: ['{}']",
                plan.display()
            )
        );
        assert_eq!(fs::read_to_string(root.join("code.py")).unwrap(), "x = 1\n");
        let edited = ed.execute(
            &json!({"command": "str_replace", "path": plan.display().to_string(),
                    "old_str": "# 1. OBJECTIVE\n", "new_str": "# 1. OBJECTIVE\nShip it.\n"}),
            &root,
        );
        assert_eq!(edited["is_error"], false, "{edited}");
        assert!(fs::read_to_string(&plan).unwrap().contains("Ship it."));
        // Only command, content, is_error and path come through; the rest are defaults.
        assert_eq!(edited["old_content"], Value::Null);
        assert_eq!(edited["new_content"], Value::Null);
        assert_eq!(edited["prev_exist"], true);
        assert_eq!(
            edited.as_object().unwrap().keys().collect::<Vec<_>>(),
            [
                "content",
                "is_error",
                "command",
                "path",
                "prev_exist",
                "old_content",
                "new_content",
                "kind"
            ]
        );
        let undo = ed.execute(
            &json!({"command": "undo_edit", "path": plan.display().to_string()}),
            &root,
        );
        assert_eq!(undo["is_error"], false);
        assert_eq!(fs::read_to_string(&plan).unwrap(), PLAN_HEADINGS);
    }
}
