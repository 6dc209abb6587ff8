//! The agent's tool catalogue and tool-call parsing: what the LLM is offered (names,
//! descriptions, JSON-schema parameters), the `ToolDefinition` objects recorded in the
//! `SystemPromptEvent`, and the conversion of an LLM tool call into a validated Action
//! (contract §3.1, §3.2, §2.3).
//!
//! The tools are the default agent's (`terminal`, `file_editor`, `task_tracker`, and the
//! built-ins `finish` and `think`, plus `switch_llm` when the agent includes it) and those the openhands-tools presets add
//! (`apply_patch`; `read_file`, `write_file`, `edit`, `list_directory`; `glob`, `grep`,
//! `planning_file_editor`), offered in the order the agent lists them, built-ins last.
//! Descriptions are our own wording; the parameter
//! names, types, enums and `required` sets match the reference exactly, because LLM
//! prompts and clients depend on them. Parsing reproduces the reference's normalization
//! (aliases, typo fixes, `file_editor` command inference, JSON-encoded lists) and its
//! error texts, and re-serializes the arguments the way Python's `json.dumps` does.
//!
//! This module also builds the observations of the two executor-less built-ins,
//! `finish` and `think` ([`finish_observation`], [`think_observation`]).
//! It runs no tool and touches no file: executing actions belongs to the sibling
//! modules (`terminal`, `file_editor`, `task_tracker`) and the agent loop.

use std::fmt::Write as _;

use serde_json::{Map, Number, Value, json};

use crate::tools::content::Content;

/// Every tool this server offers an LLM: the default agent's, then the presets', then the
/// sub-agent tools: `task` (which an agent gets through the `task_tool_set` set) and
/// `delegate` (the reference's until 1.22, kept here as an extension), then the built-ins.
pub const TOOL_NAMES: [&str; 16] = [
    "terminal",
    "file_editor",
    "task_tracker",
    "apply_patch",
    "read_file",
    "write_file",
    "edit",
    "list_directory",
    "glob",
    "grep",
    "planning_file_editor",
    "task",
    "delegate",
    "finish",
    "think",
    "switch_llm",
];

/// Tool sets: the registered name an agent lists, and the tool it stands for.
pub const TOOL_SETS: [(&str, &str); 1] = [("task_tool_set", "task")];

/// The tool an agent's tool name gives the LLM: the name itself for a tool of this
/// server, the tool of a set (`task_tool_set` → `task`), `None` otherwise.
pub fn offered_name(name: &str) -> Option<&'static str> {
    TOOL_SETS
        .iter()
        .find(|(set, _)| *set == name)
        .map(|(_, tool)| *tool)
        .or_else(|| TOOL_NAMES.iter().find(|t| **t == name).copied())
}

/// The built-in tools (`include_default_tools`), which follow the agent's own tools and
/// its MCP tools.
pub fn is_builtin(name: &str) -> bool {
    matches!(name, "finish" | "think" | "switch_llm")
}

/// Whether a `ToolDefinition` kind is one of a built-in tool.
pub fn is_builtin_kind(kind: &str) -> bool {
    matches!(kind, "FinishTool" | "ThinkTool" | "SwitchLLMTool")
}

/// Tools the reference registers that this server does not provide (browser,
/// consultation). An agent naming one gets it silently left out, so agents built with
/// browser-enabled presets keep working; any other unknown name is refused.
pub const UNPROVIDED_TOOLS: [&str; 3] = ["browser_tool_set", "tom_consult", "sleeptime_compute"];

/// The four values of `security_risk`, as the LLM may send them.
pub const SECURITY_RISKS: [&str; 4] = ["UNKNOWN", "LOW", "MEDIUM", "HIGH"];

/// One tool as offered to the LLM: its name, description and JSON-schema parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSchema {
    /// The tool name the LLM calls (`terminal`, …).
    pub name: String,
    /// The tool description shown to the LLM.
    pub description: String,
    /// The JSON schema of the arguments, with `security_risk` and `summary` first.
    pub parameters: Value,
}

impl ToolSchema {
    /// The OpenAI chat-completions shape:
    /// `{"type":"function","function":{"name","description","parameters"}}`.
    pub fn to_openai(&self) -> Value {
        json!({
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            }
        })
    }

    /// The Anthropic messages shape, key order as the reference sends it:
    /// `{"name","input_schema","type":"custom","description"}`.
    pub fn to_anthropic(&self) -> Value {
        json!({
            "name": self.name,
            "input_schema": self.parameters,
            "type": "custom",
            "description": self.description,
        })
    }
}

/// Static facts about one tool (contract §2.3 table, and the presets' definitions).
struct ToolMeta {
    name: &'static str,
    tool_kind: &'static str,
    action_type: &'static str,
    observation_type: &'static str,
    title: Option<&'static str>,
    read_only: bool,
    destructive: bool,
    idempotent: bool,
    open_world: bool,
    /// `meta` is `{"workspace_root": <working dir>}` (the Gemini file tools) rather than null.
    workspace_meta: bool,
}

const fn tool(
    name: &'static str,
    tool_kind: &'static str,
    action_type: &'static str,
    observation_type: &'static str,
    title: Option<&'static str>,
    // read_only, destructive, idempotent, open_world
    hints: [bool; 4],
    workspace_meta: bool,
) -> ToolMeta {
    ToolMeta {
        name,
        tool_kind,
        action_type,
        observation_type,
        title,
        read_only: hints[0],
        destructive: hints[1],
        idempotent: hints[2],
        open_world: hints[3],
        workspace_meta,
    }
}

const TOOLS: [ToolMeta; 16] = [
    ToolMeta {
        name: "terminal",
        tool_kind: "TerminalTool",
        action_type: "TerminalAction",
        observation_type: "TerminalObservation",
        title: Some("terminal"),
        read_only: false,
        destructive: true,
        idempotent: false,
        open_world: true,
        workspace_meta: false,
    },
    ToolMeta {
        name: "file_editor",
        tool_kind: "FileEditorTool",
        action_type: "FileEditorAction",
        observation_type: "FileEditorObservation",
        title: Some("file_editor"),
        read_only: false,
        destructive: true,
        idempotent: false,
        open_world: false,
        workspace_meta: false,
    },
    ToolMeta {
        name: "task_tracker",
        tool_kind: "TaskTrackerTool",
        action_type: "TaskTrackerAction",
        observation_type: "TaskTrackerObservation",
        title: None,
        read_only: false,
        destructive: false,
        idempotent: true,
        open_world: false,
        workspace_meta: false,
    },
    ToolMeta {
        name: "finish",
        tool_kind: "FinishTool",
        action_type: "FinishAction",
        observation_type: "FinishObservation",
        title: Some("finish"),
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: false,
        workspace_meta: false,
    },
    ToolMeta {
        name: "think",
        tool_kind: "ThinkTool",
        action_type: "ThinkAction",
        observation_type: "ThinkObservation",
        title: None,
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: false,
        workspace_meta: false,
    },
    tool(
        "switch_llm",
        "SwitchLLMTool",
        "SwitchLLMAction",
        "SwitchLLMObservation",
        None,
        [false, false, false, false],
        false,
    ),
    tool(
        "apply_patch",
        "ApplyPatchTool",
        "ApplyPatchAction",
        "ApplyPatchObservation",
        Some("apply_patch"),
        [false, true, false, false],
        false,
    ),
    tool(
        "read_file",
        "ReadFileTool",
        "ReadFileAction",
        "ReadFileObservation",
        Some("read_file"),
        [true, false, true, false],
        true,
    ),
    tool(
        "write_file",
        "WriteFileTool",
        "WriteFileAction",
        "WriteFileObservation",
        Some("write_file"),
        [false, true, false, false],
        true,
    ),
    tool(
        "edit",
        "EditTool",
        "EditAction",
        "EditObservation",
        Some("edit"),
        [false, true, false, false],
        true,
    ),
    tool(
        "list_directory",
        "ListDirectoryTool",
        "ListDirectoryAction",
        "ListDirectoryObservation",
        Some("list_directory"),
        [true, false, true, false],
        false,
    ),
    tool(
        "glob",
        "GlobTool",
        "GlobAction",
        "GlobObservation",
        Some("glob"),
        [true, false, true, false],
        false,
    ),
    tool(
        "grep",
        "GrepTool",
        "GrepAction",
        "GrepObservation",
        Some("grep"),
        [true, false, true, false],
        false,
    ),
    tool(
        "planning_file_editor",
        "PlanningFileEditorTool",
        "PlanningFileEditorAction",
        "PlanningFileEditorObservation",
        Some("planning_file_editor"),
        [false, false, false, false],
        false,
    ),
    tool(
        "task",
        "TaskTool",
        "TaskAction",
        "TaskObservation",
        Some("task"),
        [false, true, false, true],
        false,
    ),
    tool(
        "delegate",
        "DelegateTool",
        "DelegateAction",
        "DelegateObservation",
        Some("delegate"),
        [false, false, false, true],
        false,
    ),
];

fn meta(name: &str) -> Option<&'static ToolMeta> {
    TOOLS.iter().find(|t| t.name == name)
}

/// Whether `name` is a read-only tool (`finish`, `think`, `read_file`, `list_directory`,
/// `glob`, `grep`): such tools get no `security_risk` parameter and their actions always
/// record `UNKNOWN` risk.
pub fn is_read_only(name: &str) -> bool {
    meta(name).is_some_and(|m| m.read_only)
}

// ---------------------------------------------------------------------------------------
// Descriptions (our own wording; same guidance as the reference's)
// ---------------------------------------------------------------------------------------

/// The no-output soft timeout the terminal implements, in seconds (contract §3.3).
pub const TERMINAL_SOFT_TIMEOUT_SECS: u32 = 30;

fn terminal_description() -> String {
    format!(
        "Run a shell command in a bash session that stays alive between calls.

### Running commands
* Send one command per call. To run several in sequence, join them with `&&` or `;`.
* The session keeps its state: environment variables, activated virtual environments and
  the current directory carry over to the next call.
* When a command prints nothing new for {t} seconds, control comes back to you while it
  keeps running, unless you pass a larger `timeout`.
* Avoid `set -e`, `set -eu` and `set -euo pipefail`: this session does not cope with them
  reliably.

### Long-running work
* Start servers and other never-ending processes in the background and send their output
  to a file, e.g. `python3 app.py > app.log 2>&1 &`.
* For slow but finite commands (installs, test suites, builds), pass a `timeout` that is
  large enough.
* Exit code `-1` means the command has not finished yet. Call again with `is_input=true`
  and one of:
  - an empty `command`, to read the output produced since;
  - some text, to type it into the process's standard input;
  - a control key such as `C-c`, `C-d` or `C-z`, or any other `C-<letter>` (`C-a`, `C-l`…);
  - a navigation or editing key: `UP`, `DOWN`, `LEFT`, `RIGHT`, `HOME`, `END`, `PGUP`,
    `PGDN`, `TAB`, `ESC`, `BS`.

### Good habits
* Before creating a file or directory, check that the directory it goes into exists.
* Work with absolute paths instead of moving around with `cd`.

### Output
* Very long output is shortened before it reaches you.

### Resetting
* Pass `reset=true` to replace a session that no longer responds with a fresh one.
* A reset loses environment variables, the current directory and every process started in
  the old session.",
        t = TERMINAL_SOFT_TIMEOUT_SECS
    )
}

fn file_editor_description(working_dir: &str, vision: bool) -> String {
    let image_line = if vision {
        "* When `path` is an image (`.png`, `.jpg`, `.jpeg`, `.gif`, `.webp`, `.bmp`), `view` \
         shows the image itself.\n"
    } else {
        ""
    };
    format!(
        "View, create and edit plain-text files.
* The tool keeps its state between calls for the whole conversation.
{image_line}* `view` on a file prints it with line numbers, the way `cat -n` does; `view` on a directory
  lists what it contains, two levels deep, leaving hidden entries out.
* `create` refuses to write over a file that already exists.
* Long results are cut short and marked with `<response clipped>`.
* `undo_edit` puts the file at `path` back the way it was before its last edit.
* Only use it for plain-text files.

Before you edit:
1. `view` the file first, so you know its contents and context.
2. When creating a file, check with `view` that the parent directory exists and is the
   right place.

While editing:
* Leave the code correct, idiomatic and working after every edit.
* Always give absolute paths (starting with `/`).

How `str_replace` matches:
1. `old_str` must be an exact copy of one or more consecutive lines of the file,
   whitespace and indentation included.
2. It must occur exactly once. Take in enough neighbouring lines (3 to 5 usually do) to
   make it unique; when it matches nothing, or more than one place, the file is left as
   it was.
3. `new_str` holds the lines that take the place of `old_str`, and must differ from it.

When you have several edits for the same file, send them together, as several calls in
one message, rather than one message per edit.

Your workspace is: {working_dir}
Start exploring the project from there, not from the filesystem root."
    )
}

const TASK_TRACKER_DESCRIPTION: &str = "Keep a structured plan of the work as a task list and
keep it current as you go; it also shows the user where things stand.

## When to use it
* The work has several steps or phases, sequential or parallel.
* The change touches several components and needs to be coordinated.
* The user asks for a plan, a checklist or progress tracking.
* The user hands you several requirements at once.
* At the start of a larger job: write the requirements down as tasks.
* When you start a task: mark it `in_progress` first (one task at a time).
* When you finish a task: mark it `done` straight away, and add any follow-up work you
  discovered.

## When not to use it
* A single, self-contained change.
* Trivial work that takes a step or two.
* Questions, explanations and other conversation with no work to track.
In those cases just do the work; a list only adds overhead.

## Examples
* \"Add a REST endpoint for orders, with validation, tests and docs\": plan tasks such as
  design the request and response types; implement the handler; add input validation;
  write the tests; update the documentation; run the whole test suite and fix failures.
* \"Rename `loadUser` to `fetchUser` everywhere\": first search the code base, then plan
  one task per file (or group of files) that needs changing.
* \"Set up a small web shop: catalogue, cart, checkout and accounts\": plan one task per
  feature, each broken down into concrete steps.
* \"How do I reverse a list in Python?\": no list; answer directly.
* \"Fix the typo in the README title\": no list; make the edit.

## Statuses
* `todo`: not started yet.
* `in_progress`: being worked on now. Keep exactly one task in this state.
* `done`: finished and verified.

## Rules
* Update statuses as soon as they change; do not batch updates.
* Finish the current task before starting the next one.
* Drop tasks that no longer apply.
* Mark a task `done` only when it is fully achieved: not while tests fail, the
  implementation is partial, errors remain unresolved or something it needs is missing.
  Keep it `in_progress` instead, and add new tasks for the blockers you found.
* Give every task a short, specific, actionable title; put details in `notes`.

If you are unsure whether the work is big enough, use the list: it keeps the work
systematic and makes sure no requirement is forgotten.";

const FINISH_DESCRIPTION: &str =
    "Signal that the task is finished, or that you cannot go any further.

Call it when:
- the user's request has been carried out, or
- a technical limit or missing information stops you from continuing.

In `message`, include:
- what you did and what came of it;
- anything the user should do next;
- why the task could not be completed, if that is the case;
- any questions whose answers you need in order to continue.
";

const THINK_DESCRIPTION: &str =
    "Write down a thought. It fetches no new information and changes nothing; the thought is \
simply recorded. Use it whenever you need room to reason, for example:
1. after locating the cause of a bug, to list several possible fixes and pick the simplest \
sound one;
2. after test results come back, to work out how to fix the failures;
3. before a complex refactoring, to weigh the alternatives against each other;
4. when designing a feature, to settle its architecture and implementation details;
5. when a problem is hard to debug, to organise your hypotheses.

It runs no code and touches no files.";

const SECURITY_RISK_DESCRIPTION: &str = "Your assessment of how risky this action is: LOW, \
MEDIUM or HIGH, or UNKNOWN when you cannot tell.";

const SUMMARY_DESCRIPTION: &str = "A short description (about ten words) of what this \
particular call does, naming the operation and its target, e.g. 'Run the parser unit tests'.";

// ---------------------------------------------------------------------------------------
// Parameter schemas
// ---------------------------------------------------------------------------------------

fn terminal_properties() -> Value {
    json!({
        "command": {
            "type": "string",
            "description": "The shell command to run. Leave it empty to read more output from a \
    command that returned exit code `-1`. With `is_input` true it may instead be a key name: `C-c`, \
    `C-d` (end of input), `C-z`, any other `C-<letter>`, `UP`, `DOWN`, `LEFT`, `RIGHT`, `HOME`, \
    `END`, `PGUP`, `PGDN`, `TAB`, `ESC`, `BS` (backspace) or `ENTER`. One command per call; chain \
    several with the shell syntax given in the tool description."
        },
        "is_input": {
            "type": "boolean",
            "description": "When true, the text goes to the process that is still running \
    instead of being run as a new command. Defaults to false."
        },
        "timeout": {
            "type": "number",
            "description": format!("Optional hard limit in seconds. When it is reached you \
    can choose to keep waiting or to stop the command. Without it, the command pauses once it has \
    produced no new output for {TERMINAL_SOFT_TIMEOUT_SECS} seconds. Give a larger value for \
    commands known to be slow (installs, test runs) or to last a fixed time (sleep).")
        },
        "reset": {
            "type": "boolean",
            "description": "When true, throw the current session away and start a new one. \
    Only for a session that no longer responds: every variable and all state set before is lost. \
    Not allowed together with is_input=true."
        }
    })
}

fn file_editor_properties() -> Value {
    json!({
        "command": {
            "type": "string",
            "description": "The operation to perform: `view`, `create`, `str_replace`, \
    `insert` or `undo_edit`.",
            "enum": ["view", "create", "str_replace", "insert", "undo_edit"]
        },
        "path": {
            "type": "string",
            "description": "Absolute path of the file or directory to act on."
        },
        "file_text": {
            "type": "string",
            "description": "Needed by `create`: the full content of the new file."
        },
        "old_str": {
            "type": "string",
            "description": "Needed by `str_replace`: the exact text in the file that is to \
    be replaced."
        },
        "new_str": {
            "type": "string",
            "description": "Needed by `str_replace` (the text that takes the place of \
    `old_str`) and by `insert` (the text to insert)."
        },
        "insert_line": {
            "type": "integer",
            "description": "Needed by `insert`: `new_str` goes AFTER this line of the file; \
    0 puts it at the very top."
        },
        "view_range": {
            "type": "array",
            "items": {"type": "integer"},
            "description": "Optional for `view` on a file: `[start, end]`, numbered from 1 and \
    inclusive, so `[11, 12]` shows lines 11 and 12; `[start, -1]` shows everything from `start` to \
    the end. Without it the whole file is shown."
        }
    })
}

fn task_tracker_properties() -> Value {
    json!({
        "command": {
            "type": "string",
            "description": "`view` prints the current task list; `plan` replaces it with \
    `task_list`, creating or updating the plan. Check the current list with `view` before \
    changing it.",
            "enum": ["view", "plan"]
        },
        "task_list": {
            "type": "array",
            "description": "The complete task list, which replaces the previous one. Needed \
    by `plan`.",
            "items": {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "description": "A short title for the task."},
                    "notes": {"type": "string", "description": "Optional details about the task."},
                    "status": {
                        "type": "string",
                        "description": "Where the task stands: 'todo', 'in_progress' or 'done'.",
                        "enum": ["todo", "in_progress", "done"]
                    }
                },
                "required": ["title"]
            }
        }
    })
}

fn finish_properties() -> Value {
    json!({"message": {"type": "string", "description": "The final message for the user."}})
}

fn think_properties() -> Value {
    json!({"thought": {"type": "string", "description": "The thought to record."}})
}

/// Puts `security_risk` (unless read-only) and `summary` before the tool's own properties,
/// neither of them required (contract §3.1, "Schema augmentation").
fn augmented_parameters(read_only: bool, own: Value, required: &[&str]) -> Value {
    let mut props = Map::new();
    if !read_only {
        props.insert(
            "security_risk".into(),
            json!({
                "type": "string",
                "description": SECURITY_RISK_DESCRIPTION,
                "enum": SECURITY_RISKS,
            }),
        );
    }
    props.insert(
        "summary".into(),
        json!({"type": "string", "description": SUMMARY_DESCRIPTION}),
    );
    if let Value::Object(own) = own {
        props.extend(own);
    }
    let mut schema = Map::new();
    schema.insert("type".into(), Value::String("object".into()));
    schema.insert("properties".into(), Value::Object(props));
    // The reference omits `required` entirely when nothing is required (task_tracker).
    if !required.is_empty() {
        schema.insert("required".into(), json!(required));
    }
    Value::Object(schema)
}

/// The `security_risk` (none for a read-only tool) and `summary` parameter schemas the
/// default tools get, for tools described elsewhere (MCP tools get the same two).
pub(crate) fn added_parameter_schemas(read_only: bool) -> (Option<Value>, Value) {
    let risk = (!read_only).then(|| {
        json!({"type": "string", "description": SECURITY_RISK_DESCRIPTION, "enum": SECURITY_RISKS})
    });
    (
        risk,
        json!({"type": "string", "description": SUMMARY_DESCRIPTION}),
    )
}

/// Tool-call arguments decoded as for every tool: JSON (retried with raw control
/// characters escaped), a non-object taken as `{}`, nulls dropped, `security_risk`
/// typos fixed. The error is the decoder's message.
pub(crate) fn decode_arguments(raw: &str) -> Result<Map<String, Value>, String> {
    let mut args = match parse_arguments(raw)? {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    normalize_arguments(&mut args);
    Ok(args)
}

/// What a tool's description and definition depend on besides its name.
#[derive(Debug, Clone, Copy, Default)]
pub struct ToolContext<'a> {
    /// The conversation's working directory as the client gave it (e.g.
    /// `workspace/project`); descriptions show it verbatim.
    pub working_dir: &'a str,
    /// Whether the LLM reads images (adds the file editor's image line).
    pub vision: bool,
    /// The planning agent's plan file (absolute); descriptions fall back to
    /// `<working_dir>/.agents_tmp/PLAN.md` when it is not known.
    pub plan_path: Option<&'a str>,
    /// The conversation's sub-agent types, which the `task` tool's description lists
    /// (the built-in ones when not given).
    pub agent_types: Option<&'a crate::tools::agent_types::AgentTypes>,
    /// The saved LLM profile names `switch_llm` offers (none when not known).
    pub profiles: &'a [String],
}

impl<'a> ToolContext<'a> {
    /// A context without a plan path.
    pub fn new(working_dir: &'a str, vision: bool) -> Self {
        Self {
            working_dir,
            vision,
            plan_path: None,
            agent_types: None,
            profiles: &[],
        }
    }
}

/// The file editor's guidance without its working-directory lines, for the planning editor.
fn file_editor_guidance() -> String {
    let full = file_editor_description("", false);
    match full.find("\n\nYour workspace is:") {
        Some(i) => full[..i].to_string(),
        None => full,
    }
}

fn schema_for(name: &str, ctx: &ToolContext<'_>) -> Option<ToolSchema> {
    use crate::tools::preset_schemas as ps;
    let m = meta(name)?;
    let wd = ctx.working_dir;
    let (description, own, required): (String, Value, &[&str]) = match name {
        "terminal" => (terminal_description(), terminal_properties(), &["command"]),
        "file_editor" => (
            file_editor_description(wd, ctx.vision),
            file_editor_properties(),
            &["command", "path"],
        ),
        "task_tracker" => (
            TASK_TRACKER_DESCRIPTION.to_string(),
            task_tracker_properties(),
            &[],
        ),
        "apply_patch" => (
            ps::apply_patch_description(),
            ps::apply_patch_properties(),
            &["patch"],
        ),
        "read_file" => (
            ps::read_file_description(wd),
            ps::read_file_properties(),
            &["file_path"],
        ),
        "write_file" => (
            ps::write_file_description(wd),
            ps::write_file_properties(),
            &["file_path", "content"],
        ),
        "edit" => (
            ps::edit_description(wd),
            ps::edit_properties(),
            &["file_path", "old_string", "new_string"],
        ),
        "list_directory" => (
            ps::list_directory_description(wd),
            ps::list_directory_properties(),
            &[],
        ),
        "glob" => (
            ps::glob_description(wd),
            ps::glob_properties(),
            &["pattern"],
        ),
        "grep" => (
            ps::grep_description(wd),
            ps::grep_properties(),
            &["pattern"],
        ),
        "planning_file_editor" => {
            let plan = ctx
                .plan_path
                .map(str::to_string)
                .unwrap_or_else(|| crate::tools::planning::default_plan_display(wd));
            (
                ps::planning_file_editor_description(&file_editor_guidance(), wd, &plan),
                file_editor_properties(),
                &["command", "path"],
            )
        }
        "task" => {
            let description = match ctx.agent_types {
                Some(types) => crate::tools::task::description(types),
                None => crate::tools::task::description(
                    &crate::tools::agent_types::AgentTypes::builtins(),
                ),
            };
            (description, crate::tools::task::properties(), &["prompt"])
        }
        "delegate" => {
            let builtins = crate::tools::agent_types::AgentTypes::builtins();
            let types = ctx.agent_types.unwrap_or(&builtins);
            (
                crate::tools::delegate::description(types, wd),
                crate::tools::delegate::properties(),
                &["command"],
            )
        }
        "finish" => (
            FINISH_DESCRIPTION.to_string(),
            finish_properties(),
            &["message"],
        ),
        "think" => (
            THINK_DESCRIPTION.to_string(),
            think_properties(),
            &["thought"],
        ),
        "switch_llm" => (
            crate::tools::switch_llm::description(ctx.profiles),
            crate::tools::switch_llm::properties(),
            &crate::tools::switch_llm::REQUIRED,
        ),
        _ => return None,
    };
    Some(ToolSchema {
        name: name.to_string(),
        description,
        parameters: augmented_parameters(m.read_only, own, required),
    })
}

/// The given tool names that this server implements, in the given order (the agent's;
/// the reference offers tools in that order), each once.
fn provided<'n>(names: &[&'n str]) -> Vec<&'n str> {
    let mut out: Vec<&str> = Vec::new();
    for n in names {
        if TOOL_NAMES.contains(n) && !out.contains(n) {
            out.push(n);
        }
    }
    out
}

/// The tools offered to the LLM for the given tool names, in the given order; names
/// that are not tools of this server are skipped. `working_dir` is shown as given (e.g.
/// `workspace/project`) in the descriptions that name it; `vision` adds the file
/// editor's image-viewing line.
pub fn tool_specs(names: &[&str], working_dir: &str, vision: bool) -> Vec<ToolSchema> {
    tool_specs_in(names, &ToolContext::new(working_dir, vision))
}

/// [`tool_specs`] with a full [`ToolContext`].
pub fn tool_specs_in(names: &[&str], ctx: &ToolContext<'_>) -> Vec<ToolSchema> {
    provided(names)
        .into_iter()
        .filter_map(|n| schema_for(n, ctx))
        .collect()
}

/// The `ToolDefinition` object for `SystemPromptEvent.tools` (contract §2.3), keys in the
/// reference's order: `description`, `action_type`, `observation_type`, `annotations`,
/// `meta`, `kind`, `title`. `None` when `name` is not a tool of this server.
pub fn tool_definition_json(name: &str, working_dir: &str, vision: bool) -> Option<Value> {
    tool_definition_in(name, &ToolContext::new(working_dir, vision))
}

/// [`tool_definition_json`] with a full [`ToolContext`].
pub fn tool_definition_in(name: &str, ctx: &ToolContext<'_>) -> Option<Value> {
    let m = meta(name)?;
    let schema = schema_for(name, ctx)?;
    let mut annotations = Map::new();
    annotations.insert("title".into(), json!(m.title));
    annotations.insert("readOnlyHint".into(), Value::Bool(m.read_only));
    annotations.insert("destructiveHint".into(), Value::Bool(m.destructive));
    annotations.insert("idempotentHint".into(), Value::Bool(m.idempotent));
    annotations.insert("openWorldHint".into(), Value::Bool(m.open_world));
    let mut def = Map::new();
    def.insert("description".into(), Value::String(schema.description));
    def.insert("action_type".into(), Value::String(m.action_type.into()));
    def.insert(
        "observation_type".into(),
        Value::String(m.observation_type.into()),
    );
    def.insert("annotations".into(), Value::Object(annotations));
    def.insert(
        "meta".into(),
        if m.workspace_meta {
            json!({"workspace_root": ctx.working_dir})
        } else {
            Value::Null
        },
    );
    def.insert("kind".into(), Value::String(m.tool_kind.into()));
    // The computed top-level title falls back to the tool name.
    def.insert("title".into(), Value::String(m.name.into()));
    Some(Value::Object(def))
}

/// The `ToolDefinition` objects of the given tools, in the given order (see [`tool_specs`]).
pub fn tool_definitions(names: &[&str], working_dir: &str, vision: bool) -> Vec<Value> {
    tool_definitions_in(names, &ToolContext::new(working_dir, vision))
}

/// [`tool_definitions`] with a full [`ToolContext`].
pub fn tool_definitions_in(names: &[&str], ctx: &ToolContext<'_>) -> Vec<Value> {
    provided(names)
        .into_iter()
        .filter_map(|n| tool_definition_in(n, ctx))
        .collect()
}

/// Why the reference's agent would fail to start with these tools (its `init_state`
/// raising, which the server answers with a 500 to the first message): the exception
/// text of the first problem, or `None` when every tool can be set up.
///
/// `tools` are `(name, params)` in the agent's order. Checked, as the reference does:
/// names no tool is registered under (`"ToolDefinition 'x' is not registered"`, a
/// `KeyError`'s rendering, quotes included), a relative `plan_path` of the planning
/// editor, parameters a tool set does not take, `task` named on its own (the reference
/// registers it, but only its set can build it), and the same name given twice. Tools
/// the reference has but this server does not ([`UNPROVIDED_TOOLS`]) pass.
pub fn tool_setup_error(tools: &[(&str, &Map<String, Value>)]) -> Option<String> {
    for (name, params) in tools {
        let set = TOOL_SETS.iter().any(|(s, _)| s == name);
        if !TOOL_NAMES.contains(name) && !set && !UNPROVIDED_TOOLS.contains(name) {
            return Some(format!("\"ToolDefinition '{name}' is not registered\""));
        }
        if *name == "task" {
            return Some(
                "TaskTool.create() got an unexpected keyword argument 'conv_state'".into(),
            );
        }
        if *name == "task_tool_set"
            && let Some(key) = params.keys().find(|k| *k != "confirmation_handler")
        {
            return Some(format!(
                "TaskToolSet.create() got an unexpected keyword argument '{key}'"
            ));
        }
        if *name == "delegate"
            && let Some(key) = params
                .keys()
                .find(|k| !matches!(k.as_str(), "max_children" | "confirmation_handler"))
        {
            return Some(format!(
                "DelegateTool.create() got an unexpected keyword argument '{key}'"
            ));
        }
        if *name == "planning_file_editor"
            && let Some(plan) = params.get("plan_path").filter(|v| !v.is_null())
        {
            let text = match plan {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if !text.starts_with('/') {
                return Some(format!("plan_path must be an absolute path, got: {text}"));
            }
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    let mut dups: Vec<&str> = Vec::new();
    for (name, _) in tools {
        if seen.contains(name) {
            if !dups.contains(name) {
                dups.push(name);
            }
        } else {
            seen.push(name);
        }
    }
    if !dups.is_empty() {
        let set: Vec<String> = dups.iter().map(|d| py_str_repr(d)).collect();
        return Some(format!(
            "Duplicate tool names found: {{{}}}",
            set.join(", ")
        ));
    }
    None
}

// ---------------------------------------------------------------------------------------
// Observations of the built-in tools without an executor
// ---------------------------------------------------------------------------------------

/// The `FinishObservation` for a `FinishAction`: its message as the only text block,
/// `{"content":[…],"is_error":false,"kind":"FinishObservation"}`.
pub fn finish_observation(message: &str) -> Value {
    simple_observation(message, "FinishObservation")
}

/// The text of every `ThinkObservation` (contract §3.5).
pub const THINK_OBSERVATION_TEXT: &str = "Your thought has been logged.";

/// The `ThinkObservation` for a `ThinkAction`:
/// `{"content":[{"…","text":"Your thought has been logged."}],"is_error":false,"kind":"ThinkObservation"}`.
pub fn think_observation() -> Value {
    simple_observation(THINK_OBSERVATION_TEXT, "ThinkObservation")
}

fn simple_observation(text: &str, kind: &str) -> Value {
    let mut obs = Map::new();
    obs.insert("content".into(), json!([Content::text(text).to_json()]));
    obs.insert("is_error".into(), Value::Bool(false));
    obs.insert("kind".into(), Value::String(kind.into()));
    Value::Object(obs)
}

// ---------------------------------------------------------------------------------------
// Tool-call parsing (contract §3.2)
// ---------------------------------------------------------------------------------------

/// The outcome of turning one LLM tool call into an Action.
#[derive(Debug, Clone, PartialEq)]
pub enum ParsedCall {
    /// The call names an available tool and its arguments validate.
    Ok {
        /// The canonical tool name (after aliases), for `ActionEvent.tool_name` and the
        /// normalized `tool_call.name`.
        tool_name: String,
        /// The Action JSON: every field in model order with defaults filled in, `kind` last.
        action: Value,
        /// The normalized arguments for `ActionEvent.tool_call.arguments`: Python
        /// `json.dumps` style, key order kept, `security_risk`/`summary` still included.
        normalized_arguments: String,
        /// The `security_risk` value the LLM sent, if any (non-strings as JSON text).
        security_risk: Option<String>,
        /// The risk to record on the ActionEvent: always `UNKNOWN` unless a security
        /// analyzer is configured and the tool is not read-only.
        event_security_risk: String,
        /// `ActionEvent.summary`: the LLM's summary, or `"<tool>: <json of the arguments>"`.
        summary: String,
    },
    /// The tool is unknown or the arguments do not validate. The reference then emits an
    /// `ActionEvent` with `action:null`, `summary:null` and the tool call exactly as the LLM
    /// sent it, followed by an `AgentErrorEvent` with `tool_name` and `message`.
    Err {
        /// The name for the `AgentErrorEvent` (the requested name; `file_editor` when its
        /// command could not be inferred).
        tool_name: String,
        /// The arguments exactly as the LLM sent them (the reference keeps the raw call on
        /// errors, so there is nothing normalized to record).
        arguments: String,
        /// The `AgentErrorEvent.error` text.
        message: String,
    },
}

/// Parses a tool call with no security analyzer configured (the default agent): see
/// [`parse_tool_call_with_analyzer`].
pub fn parse_tool_call(available: &[&str], name: &str, arguments: &str) -> ParsedCall {
    parse_tool_call_with_analyzer(available, name, arguments, false)
}

/// Parses a tool call the way the reference agent does (contract §3.2): JSON parse (with
/// a control-character escaping retry), nulls dropped, `security_risk` typos fixed, legacy
/// aliases applied when the name itself is not available, `file_editor` command inferred,
/// JSON-string lists decoded, `security_risk` and `summary` popped, then strict validation
/// against the Action model. With `analyzer`, a non-read-only tool's `security_risk` must
/// be one of [`SECURITY_RISKS`] and becomes the event's risk.
pub fn parse_tool_call_with_analyzer(
    available: &[&str],
    name: &str,
    arguments: &str,
    analyzer: bool,
) -> ParsedCall {
    let fail = |tool: &str, message: String| ParsedCall::Err {
        tool_name: tool.to_string(),
        arguments: arguments.to_string(),
        message,
    };

    let mut args = match parse_arguments(arguments) {
        Ok(Value::Object(map)) => map,
        Ok(_) => Map::new(),
        Err(e) => {
            return fail(
                name,
                format!("Error validating tool '{name}': {e}. Arguments: unparseable JSON"),
            );
        }
    };
    normalize_arguments(&mut args);

    let (tool, mut args) = match normalize_tool_call(name, args, available) {
        Ok(pair) => pair,
        Err(Inference { tool, reason, keys }) => {
            return fail(
                &tool,
                format!(
                    "Error validating tool '{tool}': {reason}. Parameters provided: {}",
                    py_str_list(keys.iter().map(String::as_str))
                ),
            );
        }
    };

    // An available tool without an action model here (e.g. an MCP tool) cannot be
    // validated by this module; it is reported like an unknown tool.
    let spec = match action_spec(&tool) {
        Some(spec) if available.contains(&tool.as_str()) => spec,
        _ => {
            return fail(
                &tool,
                format!(
                    "Tool '{tool}' not found. Available: {}",
                    py_str_list(available.iter().copied())
                ),
            );
        }
    };

    fix_malformed_arguments(&mut args, spec);
    let normalized_arguments = py_json_dumps(&Value::Object(args.clone()));

    let raw_risk = args.shift_remove("security_risk");
    let security_risk = raw_risk.as_ref().map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let event_security_risk = if !analyzer || is_read_only(&tool) {
        "UNKNOWN".to_string()
    } else {
        match &raw_risk {
            None => "UNKNOWN".to_string(),
            Some(Value::String(s)) if SECURITY_RISKS.contains(&s.as_str()) => s.clone(),
            Some(other) => {
                return fail(
                    name,
                    format!(
                        "Error validating tool '{name}': {} is not a valid SecurityRisk. \
                         Parameters provided: {}",
                        py_repr(other),
                        py_str_list(args.keys().map(String::as_str))
                    ),
                );
            }
        }
    };

    let summary = match args.shift_remove("summary") {
        Some(Value::String(s)) if !s.trim().is_empty() => s,
        _ => format!("{tool}: {}", py_json_dumps(&Value::Object(args.clone()))),
    };

    match validate_action(spec, &args) {
        Ok(action) => ParsedCall::Ok {
            tool_name: tool,
            action,
            normalized_arguments,
            security_risk,
            event_security_risk,
            summary,
        },
        Err(reason) => fail(
            name,
            format!(
                "Error validating tool '{name}': {reason}. Parameters provided: {}",
                py_str_list(args.keys().map(String::as_str))
            ),
        ),
    }
}

/// `json.loads`, and on failure a retry with raw control characters escaped (some models
/// put literal newlines inside argument strings).
fn parse_arguments(raw: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(raw) {
        Ok(v) => Ok(v),
        Err(_) => serde_json::from_str::<Value>(&escape_all_control_chars(raw))
            .map_err(|e| format!("invalid JSON ({e})")),
    }
}

fn escape_all_control_chars(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        push_control_escape(&mut out, c);
    }
    out
}

fn push_control_escape(out: &mut String, c: char) {
    match c {
        '\u{8}' => out.push_str("\\b"),
        '\t' => out.push_str("\\t"),
        '\n' => out.push_str("\\n"),
        '\u{c}' => out.push_str("\\f"),
        '\r' => out.push_str("\\r"),
        c if (c as u32) < 0x20 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => out.push(c),
    }
}

/// Escapes raw control characters only inside string literals, which is what Python's
/// `json.loads(…, strict=False)` tolerates.
fn escape_control_chars_in_strings(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in raw.chars() {
        if in_string {
            if escaped {
                escaped = false;
                out.push(c);
            } else if c == '\\' {
                escaped = true;
                out.push(c);
            } else if c == '"' {
                in_string = false;
                out.push(c);
            } else {
                push_control_escape(&mut out, c);
            }
        } else {
            if c == '"' {
                in_string = true;
            }
            out.push(c);
        }
    }
    out
}

const SECURITY_RISK_TYPOS: [&str; 3] = ["security_rort", "securtiy_risk", "security_riks"];

fn normalize_arguments(args: &mut Map<String, Value>) {
    for typo in SECURITY_RISK_TYPOS {
        if let Some(v) = args.shift_remove(typo) {
            // An existing `security_risk` keeps its position; otherwise it goes last, as a
            // Python dict assignment does.
            args.insert("security_risk".into(), v);
            break;
        }
    }
    args.retain(|_, v| !v.is_null());
}

struct Inference {
    tool: String,
    reason: String,
    keys: Vec<String>,
}

fn alias_target(name: &str) -> Option<&'static str> {
    match name {
        "bash" | "command" | "execute" | "execute_bash" => Some("terminal"),
        "str_replace" | "str_replace_editor" => Some("file_editor"),
        _ => None,
    }
}

fn normalize_tool_call(
    name: &str,
    args: Map<String, Value>,
    available: &[&str],
) -> Result<(String, Map<String, Value>), Inference> {
    let mut tool = name.to_string();
    let mut args = args;
    // Aliases never hijack a tool that is registered under that very name.
    if !available.contains(&name) {
        match alias_target(name) {
            Some(target) if available.contains(&target) => tool = target.to_string(),
            _ if available.contains(&"terminal") => {
                if let Some(command) = terminal_fallback_command(name, &args) {
                    tool = "terminal".to_string();
                    let mut kept: Map<String, Value> = args
                        .into_iter()
                        .filter(|(k, _)| k == "security_risk" || k == "summary")
                        .collect();
                    kept.insert("command".into(), Value::String(command));
                    args = kept;
                }
            }
            _ => {}
        }
    }
    if tool == "file_editor" {
        if let Some(command) = infer_file_editor_command(&args) {
            let mut with_command = Map::new();
            with_command.insert("command".into(), Value::String(command.into()));
            with_command.extend(args);
            args = with_command;
        } else if args.is_empty() || (!args.contains_key("command") && !has_file_editor_hint(&args))
        {
            return Err(Inference {
                reason: format!(
                    "Cannot infer 'command' for tool 'file_editor' from arguments {}: give \
                     `command`, or one of `old_str` (str_replace), `insert_line` (insert), \
                     `file_text` (create) or `path` (view)",
                    py_repr(&Value::Object(args.clone()))
                ),
                keys: args.keys().cloned().collect(),
                tool,
            });
        }
    }
    Ok((tool, args))
}

fn infer_file_editor_command(args: &Map<String, Value>) -> Option<&'static str> {
    if args.contains_key("command") {
        None
    } else if args.contains_key("old_str") {
        Some("str_replace")
    } else if args.contains_key("insert_line") {
        Some("insert")
    } else if args.contains_key("file_text") {
        Some("create")
    } else if args.contains_key("path") {
        Some("view")
    } else {
        None
    }
}

fn has_file_editor_hint(args: &Map<String, Value>) -> bool {
    [
        "old_str",
        "new_str",
        "insert_line",
        "file_text",
        "path",
        "view_range",
    ]
    .iter()
    .any(|k| args.contains_key(*k))
}

/// Bare `ls`/`pwd`/`find` (no arguments at all) and `grep` with a `pattern` become terminal
/// commands; anything else stays an unknown tool.
fn terminal_fallback_command(name: &str, args: &Map<String, Value>) -> Option<String> {
    if name == "grep" {
        return grep_command(args);
    }
    if args.is_empty() && matches!(name, "find" | "ls" | "pwd") {
        return Some(name.to_string());
    }
    None
}

fn non_blank_str<'a>(args: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    match args.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
        _ => None,
    }
}

fn grep_command(args: &Map<String, Value>) -> Option<String> {
    let pattern = non_blank_str(args, "pattern")?;
    let path = non_blank_str(args, "path").unwrap_or(".");
    let include = non_blank_str(args, "include");
    let parts: Vec<String> = if executable_on_path("rg") {
        let mut p: Vec<String> = ["rg", "-n", "-i", pattern, path, "--sortr=modified"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if let Some(glob) = include {
            p.push("-g".into());
            p.push(glob.into());
        }
        p
    } else {
        // The reference falls back to a Python script when grep is missing too; grep is
        // part of every environment we run in, so it is the last resort here.
        let mut p: Vec<String> = ["grep", "-R", "-I", "-n", "-i", pattern, path]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if let Some(glob) = include {
            p.push(format!("--include={glob}"));
        }
        p
    };
    Some(
        parts
            .iter()
            .map(|p| shell_quote(p))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn executable_on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(program))
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

/// Python's `shlex.quote`.
fn shell_quote(s: &str) -> String {
    if s.is_empty() {
        return "''".to_string();
    }
    let safe = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\"'\"'"))
    }
}

// --- Action models --------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bool,
    Float {
        ge_zero: bool,
    },
    /// An integer, at least `min` when given (pydantic's `ge`).
    Int {
        min: Option<i64>,
    },
    Lit(&'static [&'static str]),
    IntList,
    TaskList,
    /// `list[str]`.
    StrList,
    /// `dict[str, str]`.
    StrMap,
}

#[derive(Clone, Copy)]
enum Fallback {
    Required,
    Null,
    False,
    Str(&'static str),
    Int(i64),
    EmptyList,
}

struct FieldSpec {
    name: &'static str,
    ty: Ty,
    default: Fallback,
}

const fn field(name: &'static str, ty: Ty, default: Fallback) -> FieldSpec {
    FieldSpec { name, ty, default }
}

struct ActionSpec {
    kind: &'static str,
    fields: &'static [FieldSpec],
}

const FILE_EDITOR_COMMANDS: &[&str] = &["view", "create", "str_replace", "insert", "undo_edit"];
const TASK_TRACKER_COMMANDS: &[&str] = &["view", "plan"];
const TASK_STATUSES: &[&str] = &["todo", "in_progress", "done"];

const TERMINAL_ACTION: ActionSpec = ActionSpec {
    kind: "TerminalAction",
    fields: &[
        field("command", Ty::Str, Fallback::Required),
        field("is_input", Ty::Bool, Fallback::False),
        field("timeout", Ty::Float { ge_zero: true }, Fallback::Null),
        field("reset", Ty::Bool, Fallback::False),
    ],
};

const FILE_EDITOR_ACTION: ActionSpec = ActionSpec {
    kind: "FileEditorAction",
    fields: FILE_EDITOR_FIELDS,
};

const TASK_TRACKER_ACTION: ActionSpec = ActionSpec {
    kind: "TaskTrackerAction",
    fields: &[
        field(
            "command",
            Ty::Lit(TASK_TRACKER_COMMANDS),
            Fallback::Str("view"),
        ),
        field("task_list", Ty::TaskList, Fallback::EmptyList),
    ],
};

const FINISH_ACTION: ActionSpec = ActionSpec {
    kind: "FinishAction",
    fields: &[field("message", Ty::Str, Fallback::Required)],
};

const THINK_ACTION: ActionSpec = ActionSpec {
    kind: "ThinkAction",
    fields: &[field("thought", Ty::Str, Fallback::Required)],
};

const SWITCH_LLM_ACTION: ActionSpec = ActionSpec {
    kind: "SwitchLLMAction",
    fields: &[
        field("profile_name", Ty::Str, Fallback::Required),
        field("reason", Ty::Str, Fallback::Required),
    ],
};

const FILE_EDITOR_FIELDS: &[FieldSpec] = &[
    field("command", Ty::Lit(FILE_EDITOR_COMMANDS), Fallback::Required),
    field("path", Ty::Str, Fallback::Required),
    field("file_text", Ty::Str, Fallback::Null),
    field("old_str", Ty::Str, Fallback::Null),
    field("new_str", Ty::Str, Fallback::Null),
    field("insert_line", Ty::Int { min: Some(0) }, Fallback::Null),
    field("view_range", Ty::IntList, Fallback::Null),
];

const PLANNING_FILE_EDITOR_ACTION: ActionSpec = ActionSpec {
    kind: "PlanningFileEditorAction",
    fields: FILE_EDITOR_FIELDS,
};

/// `max_turns` is not offered to the LLM but still accepted, as the reference does.
const TASK_ACTION: ActionSpec = ActionSpec {
    kind: "TaskAction",
    fields: &[
        field("description", Ty::Str, Fallback::Null),
        field("prompt", Ty::Str, Fallback::Required),
        field("subagent_type", Ty::Str, Fallback::Str("general-purpose")),
        field("resume", Ty::Str, Fallback::Null),
        field("max_turns", Ty::Int { min: Some(1) }, Fallback::Null),
    ],
};

const DELEGATE_COMMANDS: &[&str] = &["spawn", "delegate"];

const DELEGATE_ACTION: ActionSpec = ActionSpec {
    kind: "DelegateAction",
    fields: &[
        field("command", Ty::Lit(DELEGATE_COMMANDS), Fallback::Required),
        field("ids", Ty::StrList, Fallback::Null),
        field("agent_types", Ty::StrList, Fallback::Null),
        field("tasks", Ty::StrMap, Fallback::Null),
    ],
};

const APPLY_PATCH_ACTION: ActionSpec = ActionSpec {
    kind: "ApplyPatchAction",
    fields: &[field("patch", Ty::Str, Fallback::Required)],
};

const READ_FILE_ACTION: ActionSpec = ActionSpec {
    kind: "ReadFileAction",
    fields: &[
        field("file_path", Ty::Str, Fallback::Required),
        field("offset", Ty::Int { min: Some(0) }, Fallback::Null),
        field("limit", Ty::Int { min: Some(1) }, Fallback::Null),
    ],
};

const WRITE_FILE_ACTION: ActionSpec = ActionSpec {
    kind: "WriteFileAction",
    fields: &[
        field("file_path", Ty::Str, Fallback::Required),
        field("content", Ty::Str, Fallback::Required),
    ],
};

const EDIT_ACTION: ActionSpec = ActionSpec {
    kind: "EditAction",
    fields: &[
        field("file_path", Ty::Str, Fallback::Required),
        field("old_string", Ty::Str, Fallback::Required),
        field("new_string", Ty::Str, Fallback::Required),
        field(
            "expected_replacements",
            Ty::Int { min: Some(0) },
            Fallback::Int(1),
        ),
    ],
};

const LIST_DIRECTORY_ACTION: ActionSpec = ActionSpec {
    kind: "ListDirectoryAction",
    fields: &[
        field("dir_path", Ty::Str, Fallback::Str(".")),
        field("recursive", Ty::Bool, Fallback::False),
    ],
};

const GLOB_ACTION: ActionSpec = ActionSpec {
    kind: "GlobAction",
    fields: &[
        field("pattern", Ty::Str, Fallback::Required),
        field("path", Ty::Str, Fallback::Null),
    ],
};

const GREP_ACTION: ActionSpec = ActionSpec {
    kind: "GrepAction",
    fields: &[
        field("pattern", Ty::Str, Fallback::Required),
        field("path", Ty::Str, Fallback::Null),
        field("include", Ty::Str, Fallback::Null),
    ],
};

fn action_spec(tool: &str) -> Option<&'static ActionSpec> {
    match tool {
        "terminal" => Some(&TERMINAL_ACTION),
        "file_editor" => Some(&FILE_EDITOR_ACTION),
        "apply_patch" => Some(&APPLY_PATCH_ACTION),
        "read_file" => Some(&READ_FILE_ACTION),
        "write_file" => Some(&WRITE_FILE_ACTION),
        "edit" => Some(&EDIT_ACTION),
        "list_directory" => Some(&LIST_DIRECTORY_ACTION),
        "glob" => Some(&GLOB_ACTION),
        "grep" => Some(&GREP_ACTION),
        "planning_file_editor" => Some(&PLANNING_FILE_EDITOR_ACTION),
        "task" => Some(&TASK_ACTION),
        "delegate" => Some(&DELEGATE_ACTION),
        "task_tracker" => Some(&TASK_TRACKER_ACTION),
        "finish" => Some(&FINISH_ACTION),
        "think" => Some(&THINK_ACTION),
        "switch_llm" => Some(&SWITCH_LLM_ACTION),
        _ => None,
    }
}

/// Decodes list fields that arrived as JSON strings (`"view_range":"[1, 5]"`), tolerating
/// trailing garbage after the last `}` or `]`.
fn fix_malformed_arguments(args: &mut Map<String, Value>, spec: &ActionSpec) {
    for field in spec.fields {
        if !matches!(
            field.ty,
            Ty::IntList | Ty::TaskList | Ty::StrList | Ty::StrMap
        ) {
            continue;
        }
        let Some(Value::String(raw)) = args.get(field.name) else {
            continue;
        };
        let lenient = |s: &str| serde_json::from_str::<Value>(&escape_control_chars_in_strings(s));
        let decoded = match lenient(raw) {
            Ok(v) => Some(v).filter(|v| v.is_array() || v.is_object()),
            Err(_) => ['}', ']'].iter().find_map(|end| {
                let idx = raw.rfind(*end)?;
                lenient(&raw[..=idx])
                    .ok()
                    .filter(|v| v.is_array() || v.is_object())
            }),
        };
        if let Some(v) = decoded {
            args.insert(field.name.to_string(), v);
        }
    }
}

struct FieldError {
    loc: String,
    msg: String,
    kind: &'static str,
    input: Value,
}

fn field_error(
    loc: impl Into<String>,
    msg: impl Into<String>,
    kind: &'static str,
    input: &Value,
) -> FieldError {
    FieldError {
        loc: loc.into(),
        msg: msg.into(),
        kind,
        input: input.clone(),
    }
}

/// Validates the remaining arguments strictly (unknown keys are errors) with the same lax
/// scalar coercions pydantic applies, and builds the Action JSON.
fn validate_action(spec: &ActionSpec, args: &Map<String, Value>) -> Result<Value, String> {
    let mut errors = Vec::new();
    let mut action = Map::new();
    let whole = Value::Object(args.clone());
    for field in spec.fields {
        let value = match args.get(field.name) {
            Some(v) => coerce(field.ty, field.name, v, &mut errors),
            None => match field.default {
                Fallback::Required => {
                    errors.push(field_error(field.name, "Field required", "missing", &whole));
                    None
                }
                Fallback::Null => Some(Value::Null),
                Fallback::False => Some(Value::Bool(false)),
                Fallback::Str(s) => Some(Value::String(s.into())),
                Fallback::Int(i) => Some(Value::from(i)),
                Fallback::EmptyList => Some(Value::Array(Vec::new())),
            },
        };
        if let Some(v) = value {
            action.insert(field.name.into(), v);
        }
    }
    for (key, value) in args {
        if spec.fields.iter().any(|f| f.name == key) {
            continue;
        }
        // A matching discriminator is what the model itself would accept.
        if key == "kind" && value.as_str() == Some(spec.kind) {
            continue;
        }
        errors.push(field_error(
            key.clone(),
            "Extra inputs are not permitted",
            "extra_forbidden",
            value,
        ));
    }
    if !errors.is_empty() {
        return Err(render_errors(spec.kind, &errors));
    }
    action.insert("kind".into(), Value::String(spec.kind.into()));
    Ok(Value::Object(action))
}

fn render_errors(model: &str, errors: &[FieldError]) -> String {
    let mut out = format!(
        "{} validation error{} for {model}",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    for e in errors {
        let _ = write!(
            out,
            "\n{}\n  {} [type={}, input_value={}, input_type={}]",
            e.loc,
            e.msg,
            e.kind,
            clip_repr(py_repr(&e.input)),
            py_type_name(&e.input)
        );
    }
    out
}

fn clip_repr(repr: String) -> String {
    const MAX: usize = 100;
    if repr.chars().count() <= MAX {
        return repr;
    }
    let head: String = repr.chars().take(MAX / 2).collect();
    let tail: String = {
        let mut t: Vec<char> = repr.chars().rev().take(MAX / 2 - 3).collect();
        t.reverse();
        t.into_iter().collect()
    };
    format!("{head}...{tail}")
}

fn coerce(ty: Ty, loc: &str, v: &Value, errors: &mut Vec<FieldError>) -> Option<Value> {
    let result = match ty {
        Ty::Str => match v {
            Value::String(_) => Ok(v.clone()),
            _ => Err(("Input should be a valid string".to_string(), "string_type")),
        },
        Ty::Bool => coerce_bool(v).map(Value::Bool),
        Ty::Int { min } => coerce_int(v).and_then(|i| match min {
            Some(min) if i < min => Err((
                format!("Input should be greater than or equal to {min}"),
                "greater_than_equal",
            )),
            _ => Ok(Value::from(i)),
        }),
        Ty::Float { ge_zero } => coerce_float(v).and_then(|f| {
            if ge_zero && f < 0.0 {
                Err(ge_zero_error())
            } else {
                Number::from_f64(f).map(Value::Number).ok_or_else(|| {
                    (
                        "Input should be a finite number".to_string(),
                        "finite_number",
                    )
                })
            }
        }),
        Ty::Lit(options) => match v {
            Value::String(s) if options.contains(&s.as_str()) => Ok(v.clone()),
            _ => Err((literal_message(options), "literal_error")),
        },
        Ty::StrList => match v {
            Value::Array(items) => {
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    if !item.is_string() {
                        ok = false;
                        errors.push(field_error(
                            format!("{loc}.{i}"),
                            "Input should be a valid string",
                            "string_type",
                            item,
                        ));
                    }
                }
                return ok.then(|| v.clone());
            }
            _ => Err(("Input should be a valid list".to_string(), "list_type")),
        },
        Ty::StrMap => match v {
            Value::Object(items) => {
                let mut ok = true;
                for (key, item) in items {
                    if !item.is_string() {
                        ok = false;
                        errors.push(field_error(
                            format!("{loc}.{key}"),
                            "Input should be a valid string",
                            "string_type",
                            item,
                        ));
                    }
                }
                return ok.then(|| v.clone());
            }
            _ => Err((
                "Input should be a valid dictionary".to_string(),
                "dict_type",
            )),
        },
        Ty::IntList => match v {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match coerce_int(item) {
                        Ok(n) => out.push(Value::from(n)),
                        Err((msg, kind)) => {
                            ok = false;
                            errors.push(field_error(format!("{loc}.{i}"), msg, kind, item));
                        }
                    }
                }
                return ok.then_some(Value::Array(out));
            }
            _ => Err(("Input should be a valid list".to_string(), "list_type")),
        },
        Ty::TaskList => match v {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match task_item(item, &format!("{loc}.{i}"), errors) {
                        Some(t) => out.push(t),
                        None => ok = false,
                    }
                }
                return ok.then_some(Value::Array(out));
            }
            _ => Err(("Input should be a valid list".to_string(), "list_type")),
        },
    };
    match result {
        Ok(value) => Some(value),
        Err((msg, kind)) => {
            errors.push(field_error(loc, msg, kind, v));
            None
        }
    }
}

fn ge_zero_error() -> (String, &'static str) {
    (
        "Input should be greater than or equal to 0".to_string(),
        "greater_than_equal",
    )
}

fn literal_message(options: &[&str]) -> String {
    let quoted: Vec<String> = options.iter().map(|o| format!("'{o}'")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => {
            format!("Input should be {} or {last}", rest.join(", "))
        }
        Some((last, _)) => format!("Input should be {last}"),
        None => "Input should be a valid literal".to_string(),
    }
}

/// One task item: `title` required, `notes` default `""`, `status` default `todo`;
/// unknown keys are ignored (the reference's `TaskItem` does not forbid them).
fn task_item(item: &Value, loc: &str, errors: &mut Vec<FieldError>) -> Option<Value> {
    let Value::Object(map) = item else {
        errors.push(field_error(
            loc,
            "Input should be a valid dictionary or instance of TaskItem",
            "model_type",
            item,
        ));
        return None;
    };
    let before = errors.len();
    let title = match map.get("title") {
        Some(v) => coerce(Ty::Str, &format!("{loc}.title"), v, errors),
        None => {
            errors.push(field_error(
                format!("{loc}.title"),
                "Field required",
                "missing",
                item,
            ));
            None
        }
    };
    let notes = match map.get("notes") {
        Some(v) => coerce(Ty::Str, &format!("{loc}.notes"), v, errors),
        None => Some(Value::String(String::new())),
    };
    let status = match map.get("status") {
        Some(v) => coerce(Ty::Lit(TASK_STATUSES), &format!("{loc}.status"), v, errors),
        None => Some(Value::String("todo".into())),
    };
    if errors.len() != before {
        return None;
    }
    let mut out = Map::new();
    out.insert("title".into(), title?);
    out.insert("notes".into(), notes?);
    out.insert("status".into(), status?);
    Some(Value::Object(out))
}

fn coerce_bool(v: &Value) -> Result<bool, (String, &'static str)> {
    let unable = || {
        (
            "Input should be a valid boolean, unable to interpret input".to_string(),
            "bool_parsing",
        )
    };
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f == 0.0 {
                Ok(false)
            } else if f == 1.0 {
                Ok(true)
            } else {
                Err(unable())
            }
        }
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "0" | "off" | "f" | "false" | "n" | "no" => Ok(false),
            "1" | "on" | "t" | "true" | "y" | "yes" => Ok(true),
            _ => Err(unable()),
        },
        _ => Err(("Input should be a valid boolean".to_string(), "bool_type")),
    }
}

fn coerce_int(v: &Value) -> Result<i64, (String, &'static str)> {
    match v {
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18) {
                Ok(f as i64)
            } else if n.is_u64() {
                Err((
                    "Input should be a valid integer, got a number too large".to_string(),
                    "int_parsing_size",
                ))
            } else {
                Err((
                    "Input should be a valid integer, got a number with a fractional part"
                        .to_string(),
                    "int_from_float",
                ))
            }
        }
        Value::String(s) => s.trim().parse::<i64>().map_err(|_| {
            (
                "Input should be a valid integer, unable to parse string as an integer".to_string(),
                "int_parsing",
            )
        }),
        _ => Err(("Input should be a valid integer".to_string(), "int_type")),
    }
}

fn coerce_float(v: &Value) -> Result<f64, (String, &'static str)> {
    match v {
        Value::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| ("Input should be a valid number".to_string(), "float_type")),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .ok_or_else(|| {
                (
                    "Input should be a valid number, unable to parse string as a number"
                        .to_string(),
                    "float_parsing",
                )
            }),
        _ => Err(("Input should be a valid number".to_string(), "float_type")),
    }
}

// --- Python-compatible rendering ------------------------------------------------------

/// Serializes like Python's `json.dumps(value)`: `", "` and `": "` separators, key order
/// kept, non-ASCII escaped as `\uXXXX`, floats in `repr` form (`30.0`, `1e+20`).
pub fn py_json_dumps(value: &Value) -> String {
    let mut out = String::new();
    write_py_json(value, &mut out);
    out
}

fn write_py_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&py_number(n)),
        Value::String(s) => write_py_json_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py_json_str(k, out);
                out.push_str(": ");
                write_py_json(v, out);
            }
            out.push('}');
        }
    }
}

fn write_py_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

fn py_number(n: &Number) -> String {
    if n.is_f64() {
        n.as_f64().map(py_float).unwrap_or_else(|| n.to_string())
    } else {
        n.to_string()
    }
}

/// Python's `repr(float)`: shortest round-trip digits, scientific outside [1e-4, 1e16).
fn py_float(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let plain = format!("{f}");
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

/// Python's `repr` of a JSON value (`{'a': [1, True, None]}`), for error texts.
pub(crate) fn py_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".to_string(),
        Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        Value::Number(n) => py_number(n),
        Value::String(s) => py_str_repr(s),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(py_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", py_str_repr(k), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `repr` of a Python list of strings: `['terminal', 'file_editor']`.
fn py_str_list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    format!(
        "[{}]",
        items.map(py_str_repr).collect::<Vec<_>>().join(", ")
    )
}

fn py_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = "/work/shared/reference/client-contract-fixtures";
    const ALL: [&str; 5] = ["terminal", "file_editor", "task_tracker", "finish", "think"];

    fn fixture(name: &str) -> Value {
        let text = std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn ok(call: ParsedCall) -> (String, Value, String, Option<String>, String) {
        match call {
            ParsedCall::Ok {
                tool_name,
                action,
                normalized_arguments,
                security_risk,
                summary,
                ..
            } => (
                tool_name,
                action,
                normalized_arguments,
                security_risk,
                summary,
            ),
            ParsedCall::Err { message, .. } => panic!("expected Ok, got error: {message}"),
        }
    }

    fn err(call: ParsedCall) -> (String, String) {
        match call {
            ParsedCall::Err {
                tool_name, message, ..
            } => (tool_name, message),
            other => panic!("expected Err, got {other:?}"),
        }
    }

    /// Drops every `description` of a schema node (recursing into properties and items).
    fn strip_descriptions(schema: &Value) -> Value {
        let Value::Object(map) = schema else {
            return schema.clone();
        };
        let mut out = Map::new();
        for (k, v) in map {
            match k.as_str() {
                "description" => {}
                "properties" => {
                    let props = v
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(name, s)| (name.clone(), strip_descriptions(s)))
                        .collect();
                    out.insert(k.clone(), Value::Object(props));
                }
                "items" => {
                    out.insert(k.clone(), strip_descriptions(v));
                }
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        Value::Object(out)
    }

    #[test]
    fn schemas_match_the_reference_structure() {
        let reference = fixture("llm-tools-openai.json");
        let ours = tool_specs(&ALL, "workspace/project", true);
        let reference = reference.as_array().unwrap();
        assert_eq!(ours.len(), reference.len());
        for (mine, theirs) in ours.iter().zip(reference) {
            let f = &theirs["function"];
            assert_eq!(mine.name, f["name"].as_str().unwrap());
            // Serialized comparison: also checks key order.
            assert_eq!(
                serde_json::to_string(&strip_descriptions(&mine.parameters)).unwrap(),
                serde_json::to_string(&strip_descriptions(&f["parameters"])).unwrap(),
                "schema of {}",
                mine.name
            );
            let openai = mine.to_openai();
            assert_eq!(
                openai.as_object().unwrap().keys().collect::<Vec<_>>(),
                theirs.as_object().unwrap().keys().collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn anthropic_shape_matches_the_reference_keys() {
        let reference = fixture("llm-tools-anthropic.json");
        let ours = tool_specs(&ALL, "workspace/project", true);
        for (mine, theirs) in ours.iter().zip(reference.as_array().unwrap()) {
            let a = mine.to_anthropic();
            assert_eq!(
                a.as_object().unwrap().keys().collect::<Vec<_>>(),
                theirs.as_object().unwrap().keys().collect::<Vec<_>>()
            );
            assert_eq!(a["type"], theirs["type"]);
        }
    }

    #[test]
    fn descriptions_are_our_own_words() {
        let reference = fixture("llm-tools-openai.json");
        let ours = tool_specs(&ALL, "workspace/project", true);
        let mut texts: Vec<(String, String)> = Vec::new();
        for (mine, theirs) in ours.iter().zip(reference.as_array().unwrap()) {
            let f = &theirs["function"];
            texts.push((
                mine.description.clone(),
                f["description"].as_str().unwrap().to_string(),
            ));
            let my_props = mine.parameters["properties"].as_object().unwrap();
            for (name, prop) in f["parameters"]["properties"].as_object().unwrap() {
                texts.push((
                    my_props[name]["description"].as_str().unwrap().to_string(),
                    prop["description"].as_str().unwrap().to_string(),
                ));
            }
        }
        // Code spans are identifiers (key names, commands), not prose.
        let prose = |s: &str| s.split('`').step_by(2).collect::<Vec<_>>().join("");
        for (mine, theirs) in texts {
            let (mine, theirs) = (prose(&mine), prose(&theirs));
            let chars: Vec<char> = mine.chars().collect();
            for window in chars.windows(40) {
                let w: String = window.iter().collect();
                assert!(!theirs.contains(&w), "copied text: {w:?}");
            }
        }
    }

    #[test]
    fn order_and_selection() {
        // The agent's order, as the reference offers tools; unknown names and repeats go.
        let specs = tool_specs(
            &["grep", "think", "terminal", "nope", "grep", "finish"],
            "/w",
            false,
        );
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["grep", "think", "terminal", "finish"]);
    }

    #[test]
    fn file_editor_description_dynamic_parts() {
        let with = schema_for("file_editor", &ToolContext::new("workspace/project", true)).unwrap();
        let without =
            schema_for("file_editor", &ToolContext::new("workspace/project", false)).unwrap();
        let third = with.description.lines().nth(2).unwrap();
        assert!(
            third.contains("`.png`, `.jpg`, `.jpeg`, `.gif`, `.webp`, `.bmp`"),
            "{third}"
        );
        assert!(!without.description.contains(".webp"));
        let last_two: Vec<&str> = with.description.lines().rev().take(3).collect();
        assert_eq!(last_two[1], "Your workspace is: workspace/project");
        assert_eq!(last_two[2], "");
        assert!(with.description.ends_with("not from the filesystem root."));
    }

    #[test]
    fn terminal_soft_timeout_is_30_seconds() {
        let t = schema_for("terminal", &ToolContext::new("", false)).unwrap();
        assert!(t.description.contains("30 seconds"));
        assert!(
            t.parameters["properties"]["timeout"]["description"]
                .as_str()
                .unwrap()
                .contains("30 seconds")
        );
        assert!(!t.description.contains("10 seconds"));
    }

    #[test]
    fn tool_definitions_match_the_transcript() {
        let events = fixture("events-badtool.json");
        let system = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "SystemPromptEvent")
            .unwrap();
        let theirs = system["tools"].as_array().unwrap();
        let ours = tool_definitions(&ALL, "workspace/project", true);
        assert_eq!(ours.len(), theirs.len());
        for (mine, theirs) in ours.iter().zip(theirs) {
            let keys = |v: &Value| {
                v.as_object()
                    .unwrap()
                    .keys()
                    .cloned()
                    .collect::<Vec<String>>()
            };
            assert_eq!(keys(mine), keys(theirs));
            for k in [
                "action_type",
                "observation_type",
                "annotations",
                "meta",
                "kind",
                "title",
            ] {
                assert_eq!(
                    serde_json::to_string(&mine[k]).unwrap(),
                    serde_json::to_string(&theirs[k]).unwrap(),
                    "{k}"
                );
            }
        }
        let fe = tool_definition_json("file_editor", "workspace/project", false).unwrap();
        assert_eq!(
            fe["description"].as_str().unwrap(),
            schema_for("file_editor", &ToolContext::new("workspace/project", false))
                .unwrap()
                .description
        );
        assert!(tool_definition_json("browser", "", false).is_none());
    }

    #[test]
    fn builtin_observations() {
        assert_eq!(
            serde_json::to_string(&finish_observation("done")).unwrap(),
            r#"{"content":[{"cache_prompt":false,"type":"text","text":"done"}],"is_error":false,"kind":"FinishObservation"}"#
        );
        assert_eq!(
            serde_json::to_string(&think_observation()).unwrap(),
            r#"{"content":[{"cache_prompt":false,"type":"text","text":"Your thought has been logged."}],"is_error":false,"kind":"ThinkObservation"}"#
        );
    }

    #[test]
    fn terminal_call_as_in_the_transcript() {
        let (tool, action, args, risk, summary) = ok(parse_tool_call(
            &ALL,
            "terminal",
            r#"{"command":"cat TODO.md && pwd","security_risk":"LOW"}"#,
        ));
        assert_eq!(tool, "terminal");
        assert_eq!(
            serde_json::to_string(&action).unwrap(),
            r#"{"command":"cat TODO.md && pwd","is_input":false,"timeout":null,"reset":false,"kind":"TerminalAction"}"#
        );
        assert_eq!(
            args,
            r#"{"command": "cat TODO.md && pwd", "security_risk": "LOW"}"#
        );
        assert_eq!(risk.as_deref(), Some("LOW"));
        assert_eq!(summary, r#"terminal: {"command": "cat TODO.md && pwd"}"#);
    }

    #[test]
    fn event_risk_is_unknown_without_analyzer() {
        let call = parse_tool_call(
            &ALL,
            "terminal",
            r#"{"command":"ls","security_risk":"HIGH"}"#,
        );
        let ParsedCall::Ok {
            event_security_risk,
            ..
        } = call
        else {
            panic!()
        };
        assert_eq!(event_security_risk, "UNKNOWN");
    }

    #[test]
    fn analyzer_uses_and_checks_the_risk() {
        let call = parse_tool_call_with_analyzer(
            &ALL,
            "terminal",
            r#"{"command":"ls","security_risk":"HIGH"}"#,
            true,
        );
        let ParsedCall::Ok {
            event_security_risk,
            ..
        } = call
        else {
            panic!()
        };
        assert_eq!(event_security_risk, "HIGH");
        let (_, msg) = err(parse_tool_call_with_analyzer(
            &ALL,
            "terminal",
            r#"{"command":"ls","security_risk":"low","summary":"x"}"#,
            true,
        ));
        assert_eq!(
            msg,
            "Error validating tool 'terminal': 'low' is not a valid SecurityRisk. \
             Parameters provided: ['command', 'summary']"
        );
        // Read-only tools ignore it.
        let call = parse_tool_call_with_analyzer(
            &ALL,
            "think",
            r#"{"thought":"x","security_risk":"bogus"}"#,
            true,
        );
        assert!(
            matches!(call, ParsedCall::Ok { ref event_security_risk, .. } if event_security_risk == "UNKNOWN")
        );
    }

    #[test]
    fn file_editor_create_keeps_order_and_escapes_like_python() {
        let raw = r##"{"command": "create", "path": "/p/TODO.md", "file_text": "# TODO\n\n- [ ] caf\u00e9 ☕\n", "security_risk": "LOW"}"##;
        let (tool, action, args, _, summary) = ok(parse_tool_call(&ALL, "file_editor", raw));
        assert_eq!(tool, "file_editor");
        assert_eq!(
            args,
            r##"{"command": "create", "path": "/p/TODO.md", "file_text": "# TODO\n\n- [ ] caf\u00e9 \u2615\n", "security_risk": "LOW"}"##
        );
        assert_eq!(
            summary,
            r##"file_editor: {"command": "create", "path": "/p/TODO.md", "file_text": "# TODO\n\n- [ ] caf\u00e9 \u2615\n"}"##
        );
        assert_eq!(
            serde_json::to_string(&action).unwrap(),
            r##"{"command":"create","path":"/p/TODO.md","file_text":"# TODO\n\n- [ ] café ☕\n","old_str":null,"new_str":null,"insert_line":null,"view_range":null,"kind":"FileEditorAction"}"##
        );
    }

    #[test]
    fn task_tracker_call_fills_item_defaults() {
        let raw = r#"{"command": "plan", "task_list": [{"title": "A", "notes": "", "status": "done"}, {"title": "B", "status": "todo", "extra": 1}]}"#;
        let (_, action, args, _, summary) = ok(parse_tool_call(&ALL, "task_tracker", raw));
        assert_eq!(args, raw);
        assert_eq!(summary, format!("task_tracker: {raw}"));
        assert_eq!(
            serde_json::to_string(&action).unwrap(),
            r#"{"command":"plan","task_list":[{"title":"A","notes":"","status":"done"},{"title":"B","notes":"","status":"todo"}],"kind":"TaskTrackerAction"}"#
        );
        let (_, action, ..) = ok(parse_tool_call(&ALL, "task_tracker", "{}"));
        assert_eq!(
            serde_json::to_string(&action).unwrap(),
            r#"{"command":"view","task_list":[],"kind":"TaskTrackerAction"}"#
        );
    }

    #[test]
    fn finish_and_think() {
        let (_, action, args, _, summary) =
            ok(parse_tool_call(&ALL, "finish", r#"{"message":"done"}"#));
        assert_eq!(
            serde_json::to_string(&action).unwrap(),
            r#"{"message":"done","kind":"FinishAction"}"#
        );
        assert_eq!(args, r#"{"message": "done"}"#);
        assert_eq!(summary, r#"finish: {"message": "done"}"#);
        let (_, action, ..) = ok(parse_tool_call(
            &ALL,
            "think",
            r#"{"thought":"hm","summary":"Think about it"}"#,
        ));
        assert_eq!(
            serde_json::to_string(&action).unwrap(),
            r#"{"thought":"hm","kind":"ThinkAction"}"#
        );
    }

    #[test]
    fn given_summary_is_used_and_blank_one_is_not() {
        let (.., summary) = ok(parse_tool_call(
            &ALL,
            "terminal",
            r#"{"command":"ls","summary":"List files"}"#,
        ));
        assert_eq!(summary, "List files");
        let (_, _, args, _, summary) = ok(parse_tool_call(
            &ALL,
            "terminal",
            r#"{"summary":"  ","command":"ls"}"#,
        ));
        assert_eq!(summary, r#"terminal: {"command": "ls"}"#);
        assert_eq!(args, r#"{"summary": "  ", "command": "ls"}"#);
    }

    #[test]
    fn unknown_tool() {
        let (tool, msg) = err(parse_tool_call(&ALL, "nonexistent_tool", r#"{"x": 1}"#));
        assert_eq!(tool, "nonexistent_tool");
        assert_eq!(
            msg,
            "Tool 'nonexistent_tool' not found. Available: ['terminal', 'file_editor', \
             'task_tracker', 'finish', 'think']"
        );
        let ParsedCall::Err { arguments, .. } =
            parse_tool_call(&ALL, "nonexistent_tool", r#"{"x":1}"#)
        else {
            panic!()
        };
        assert_eq!(arguments, r#"{"x":1}"#);
    }

    #[test]
    fn bad_literal_as_in_the_fixture() {
        let (tool, msg) = err(parse_tool_call(
            &ALL,
            "file_editor",
            r#"{"command": "bogus", "path": "/tmp"}"#,
        ));
        assert_eq!(tool, "file_editor");
        assert!(
            msg.starts_with("Error validating tool 'file_editor': "),
            "{msg}"
        );
        assert!(
            msg.ends_with(". Parameters provided: ['command', 'path']"),
            "{msg}"
        );
        assert!(msg.contains("1 validation error for FileEditorAction\ncommand\n"));
        assert!(
            msg.contains(
                "Input should be 'view', 'create', 'str_replace', 'insert' or 'undo_edit'"
            )
        );
        assert!(msg.contains("input_value='bogus', input_type=str"));
    }

    #[test]
    fn extra_keys_are_forbidden() {
        let (_, msg) = err(parse_tool_call(
            &ALL,
            "terminal",
            r#"{"command":"ls","security_risk":"LOW","summary":"s","foo":1}"#,
        ));
        assert!(
            msg.contains("foo\n  Extra inputs are not permitted"),
            "{msg}"
        );
        assert!(
            msg.ends_with("Parameters provided: ['command', 'foo']"),
            "{msg}"
        );
    }

    #[test]
    fn missing_and_mistyped_fields() {
        let (_, msg) = err(parse_tool_call(&ALL, "finish", r#"{"summary":"x"}"#));
        assert!(
            msg.contains("message\n  Field required [type=missing"),
            "{msg}"
        );
        assert!(msg.ends_with("Parameters provided: []"), "{msg}");
        let (_, msg) = err(parse_tool_call(
            &ALL,
            "terminal",
            r#"{"command":5,"timeout":-1}"#,
        ));
        assert!(
            msg.starts_with(
                "Error validating tool 'terminal': 2 validation errors for TerminalAction"
            ),
            "{msg}"
        );
        assert!(msg.contains("Input should be a valid string"));
        assert!(msg.contains("greater than or equal to 0"));
        let (_, msg) = err(parse_tool_call(
            &ALL,
            "file_editor",
            r#"{"command":"insert","path":"/a","insert_line":1.5}"#,
        ));
        assert!(msg.contains("fractional part"), "{msg}");
    }

    #[test]
    fn lax_coercions_match_pydantic() {
        let (_, action, ..) = ok(parse_tool_call(
            &ALL,
            "terminal",
            r#"{"command":"ls","timeout":30,"is_input":"false","reset":0}"#,
        ));
        assert_eq!(
            serde_json::to_string(&action).unwrap(),
            r#"{"command":"ls","is_input":false,"timeout":30.0,"reset":false,"kind":"TerminalAction"}"#
        );
        let (_, action, ..) = ok(parse_tool_call(
            &ALL,
            "file_editor",
            r#"{"command":"insert","path":"/a","insert_line":"3","new_str":"x"}"#,
        ));
        assert_eq!(action["insert_line"], json!(3));
    }

    #[test]
    fn nulls_are_dropped() {
        let (_, action, args, ..) = ok(parse_tool_call(
            &ALL,
            "file_editor",
            r#"{"command":"view","path":"/a","view_range":null,"old_str":null}"#,
        ));
        assert_eq!(args, r#"{"command": "view", "path": "/a"}"#);
        assert_eq!(action["view_range"], Value::Null);
    }

    #[test]
    fn security_risk_typos_are_renamed() {
        let (_, _, args, risk, _) = ok(parse_tool_call(
            &ALL,
            "terminal",
            r#"{"securtiy_risk":"LOW","command":"ls"}"#,
        ));
        assert_eq!(args, r#"{"command": "ls", "security_risk": "LOW"}"#);
        assert_eq!(risk.as_deref(), Some("LOW"));
        let (_, _, args, ..) = ok(parse_tool_call(
            &ALL,
            "terminal",
            r#"{"security_risk":"HIGH","command":"ls","security_riks":"LOW"}"#,
        ));
        assert_eq!(args, r#"{"security_risk": "LOW", "command": "ls"}"#);
    }

    #[test]
    fn legacy_aliases() {
        for alias in ["bash", "command", "execute", "execute_bash"] {
            let (tool, ..) = ok(parse_tool_call(&ALL, alias, r#"{"command":"ls"}"#));
            assert_eq!(tool, "terminal");
        }
        for alias in ["str_replace", "str_replace_editor"] {
            let (tool, ..) = ok(parse_tool_call(
                &ALL,
                alias,
                r#"{"command":"view","path":"/a"}"#,
            ));
            assert_eq!(tool, "file_editor");
        }
        // An alias target that is not available leaves the name unknown.
        let (tool, msg) = err(parse_tool_call(&["finish"], "bash", r#"{"command":"ls"}"#));
        assert_eq!(tool, "bash");
        assert_eq!(msg, "Tool 'bash' not found. Available: ['finish']");
    }

    #[test]
    fn aliases_never_hijack_a_registered_name() {
        let available = ["terminal", "bash"];
        match parse_tool_call(&available, "bash", r#"{"command":"ls"}"#) {
            // `bash` is available but has no action model here.
            ParsedCall::Err { tool_name, .. } => assert_eq!(tool_name, "bash"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bare_shell_names_become_terminal_commands() {
        for name in ["ls", "pwd", "find"] {
            let (tool, action, args, ..) = ok(parse_tool_call(&ALL, name, "{}"));
            assert_eq!(tool, "terminal");
            assert_eq!(action["command"], json!(name));
            assert_eq!(args, format!(r#"{{"command": "{name}"}}"#));
        }
        // With arguments they stay unknown.
        let (tool, _) = err(parse_tool_call(&ALL, "ls", r#"{"path":"/"}"#));
        assert_eq!(tool, "ls");
        let (tool, _) = err(parse_tool_call(&ALL, "cat", "{}"));
        assert_eq!(tool, "cat");
    }

    #[test]
    fn grep_becomes_a_terminal_search() {
        let (tool, action, args, ..) = ok(parse_tool_call(
            &ALL,
            "grep",
            r#"{"pattern":"fn main","path":"/src","include":"*.rs","security_risk":"LOW"}"#,
        ));
        assert_eq!(tool, "terminal");
        let command = action["command"].as_str().unwrap();
        if executable_on_path("rg") {
            assert_eq!(
                command,
                "rg -n -i 'fn main' /src --sortr=modified -g '*.rs'"
            );
        } else {
            assert_eq!(command, "grep -R -I -n -i 'fn main' /src '--include=*.rs'");
        }
        assert!(
            args.starts_with(r#"{"security_risk": "LOW", "command": "#),
            "{args}"
        );
        let (tool, _) = err(parse_tool_call(&ALL, "grep", r#"{"pattern":"  "}"#));
        assert_eq!(tool, "grep");
    }

    #[test]
    fn file_editor_command_inference() {
        let cases = [
            (
                r#"{"path":"/a","old_str":"x","new_str":"y"}"#,
                "str_replace",
            ),
            (r#"{"path":"/a","insert_line":0,"new_str":"y"}"#, "insert"),
            (r#"{"path":"/a","file_text":"t"}"#, "create"),
            (r#"{"path":"/a"}"#, "view"),
        ];
        for (raw, command) in cases {
            let (_, action, args, ..) = ok(parse_tool_call(&ALL, "str_replace_editor", raw));
            assert_eq!(action["command"], json!(command));
            assert!(args.starts_with(&format!(r#"{{"command": "{command}", "path": "/a""#)));
        }
        let (tool, msg) = err(parse_tool_call(&ALL, "str_replace_editor", "{}"));
        assert_eq!(tool, "file_editor");
        assert!(
            msg.starts_with("Error validating tool 'file_editor': Cannot infer 'command'"),
            "{msg}"
        );
        assert!(msg.ends_with("Parameters provided: []"));
        // A hint without an inferable command falls through to validation.
        let (tool, msg) = err(parse_tool_call(
            &ALL,
            "str_replace_editor",
            r#"{"new_str":"x"}"#,
        ));
        assert_eq!(tool, "str_replace_editor");
        assert!(msg.contains("command\n  Field required"), "{msg}");
    }

    #[test]
    fn string_encoded_lists_are_decoded() {
        let (_, action, args, ..) = ok(parse_tool_call(
            &ALL,
            "file_editor",
            r#"{"command":"view","path":"/a","view_range":"[1, 5]"}"#,
        ));
        assert_eq!(action["view_range"], json!([1, 5]));
        assert_eq!(
            args,
            r#"{"command": "view", "path": "/a", "view_range": [1, 5]}"#
        );
        let (_, action, ..) = ok(parse_tool_call(
            &ALL,
            "file_editor",
            r#"{"command":"view","path":"/a","view_range":"[2, -1]</parameter>"}"#,
        ));
        assert_eq!(action["view_range"], json!([2, -1]));
        let (_, action, ..) = ok(parse_tool_call(
            &ALL,
            "task_tracker",
            r#"{"command":"plan","task_list":"[{\"title\": \"a\nb\"}]"}"#,
        ));
        assert_eq!(action["task_list"][0]["title"], json!("a\nb"));
        // A string that is not a list stays a string and fails validation.
        let (_, msg) = err(parse_tool_call(
            &ALL,
            "file_editor",
            r#"{"command":"view","path":"/a","view_range":"1-5"}"#,
        ));
        assert!(
            msg.contains("view_range\n  Input should be a valid list"),
            "{msg}"
        );
    }

    #[test]
    fn bad_json_and_control_characters() {
        let (tool, msg) = err(parse_tool_call(&ALL, "terminal", "{not json"));
        assert_eq!(tool, "terminal");
        assert!(msg.starts_with("Error validating tool 'terminal': "));
        assert!(msg.ends_with(". Arguments: unparseable JSON"));
        // A raw newline inside a string is escaped and retried.
        let (_, action, args, ..) = ok(parse_tool_call(
            &ALL,
            "terminal",
            "{\"command\":\"echo a\nb\"}",
        ));
        assert_eq!(action["command"], json!("echo a\nb"));
        assert_eq!(args, r#"{"command": "echo a\nb"}"#);
        // Non-objects become {}.
        let (_, msg) = err(parse_tool_call(&ALL, "terminal", "[1]"));
        assert!(msg.contains("command\n  Field required"), "{msg}");
        let (_, action, ..) = ok(parse_tool_call(&ALL, "task_tracker", "\"x\""));
        assert_eq!(action["command"], json!("view"));
    }

    #[test]
    fn python_float_and_string_rendering() {
        assert_eq!(py_float(30.0), "30.0");
        assert_eq!(py_float(0.5), "0.5");
        assert_eq!(py_float(1e20), "1e+20");
        assert_eq!(py_float(1.5e-7), "1.5e-07");
        assert_eq!(py_float(1e16), "1e+16");
        assert_eq!(py_float(123456.789), "123456.789");
        assert_eq!(py_float(0.0001), "0.0001");
        assert_eq!(
            py_json_dumps(&json!({"a": [1, 2.5, null, true], "b": "\u{1F600}\u{7f}"})),
            r#"{"a": [1, 2.5, null, true], "b": "\ud83d\ude00\u007f"}"#
        );
        assert_eq!(py_str_repr("it's"), "\"it's\"");
        assert_eq!(py_str_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(py_repr(&json!({"a": [true, null]})), "{'a': [True, None]}");
    }

    #[test]
    fn shell_quoting_matches_shlex() {
        assert_eq!(shell_quote("abc-1.2/x"), "abc-1.2/x");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\"'\"'s'");
    }

    #[test]
    fn kind_is_last_in_every_action() {
        let calls = [
            ("terminal", r#"{"command":"ls"}"#),
            ("file_editor", r#"{"path":"/a"}"#),
            ("task_tracker", "{}"),
            ("finish", r#"{"message":"m"}"#),
            ("think", r#"{"thought":"t"}"#),
        ];
        for (name, raw) in calls {
            let (_, action, ..) = ok(parse_tool_call(&ALL, name, raw));
            let keys: Vec<&String> = action.as_object().unwrap().keys().collect();
            assert_eq!(keys.last().unwrap().as_str(), "kind");
        }
        for obs in [finish_observation("x"), think_observation()] {
            assert_eq!(
                obs.as_object()
                    .unwrap()
                    .keys()
                    .next_back()
                    .unwrap()
                    .as_str(),
                "kind"
            );
        }
    }

    /// The presets' schemas without descriptions, as the reference 1.24.0 builds them
    /// (`to_openai_tool(add_security_risk_prediction=True)`), key order included.
    const PRESET_SCHEMAS: [(&str, &str); 10] = [
        (
            "apply_patch",
            r#"{"type":"object","properties":{"security_risk":{"type":"string","enum":["UNKNOWN","LOW","MEDIUM","HIGH"]},"summary":{"type":"string"},"patch":{"type":"string"}},"required":["patch"]}"#,
        ),
        (
            "read_file",
            r#"{"type":"object","properties":{"summary":{"type":"string"},"file_path":{"type":"string"},"offset":{"type":"integer"},"limit":{"type":"integer"}},"required":["file_path"]}"#,
        ),
        (
            "write_file",
            r#"{"type":"object","properties":{"security_risk":{"type":"string","enum":["UNKNOWN","LOW","MEDIUM","HIGH"]},"summary":{"type":"string"},"file_path":{"type":"string"},"content":{"type":"string"}},"required":["file_path","content"]}"#,
        ),
        (
            "edit",
            r#"{"type":"object","properties":{"security_risk":{"type":"string","enum":["UNKNOWN","LOW","MEDIUM","HIGH"]},"summary":{"type":"string"},"file_path":{"type":"string"},"old_string":{"type":"string"},"new_string":{"type":"string"},"expected_replacements":{"type":"integer"}},"required":["file_path","old_string","new_string"]}"#,
        ),
        (
            "list_directory",
            r#"{"type":"object","properties":{"summary":{"type":"string"},"dir_path":{"type":"string"},"recursive":{"type":"boolean"}}}"#,
        ),
        (
            "glob",
            r#"{"type":"object","properties":{"summary":{"type":"string"},"pattern":{"type":"string"},"path":{"type":"string"}},"required":["pattern"]}"#,
        ),
        (
            "grep",
            r#"{"type":"object","properties":{"summary":{"type":"string"},"pattern":{"type":"string"},"path":{"type":"string"},"include":{"type":"string"}},"required":["pattern"]}"#,
        ),
        (
            "planning_file_editor",
            r#"{"type":"object","properties":{"security_risk":{"type":"string","enum":["UNKNOWN","LOW","MEDIUM","HIGH"]},"summary":{"type":"string"},"command":{"type":"string","enum":["view","create","str_replace","insert","undo_edit"]},"path":{"type":"string"},"file_text":{"type":"string"},"old_str":{"type":"string"},"new_str":{"type":"string"},"insert_line":{"type":"integer"},"view_range":{"type":"array","items":{"type":"integer"}}},"required":["command","path"]}"#,
        ),
        (
            "task",
            r#"{"type":"object","properties":{"security_risk":{"type":"string","enum":["UNKNOWN","LOW","MEDIUM","HIGH"]},"summary":{"type":"string"},"description":{"type":"string"},"prompt":{"type":"string"},"subagent_type":{"type":"string"},"resume":{"type":"string"}},"required":["prompt"]}"#,
        ),
        (
            "delegate",
            r#"{"type":"object","properties":{"security_risk":{"type":"string","enum":["UNKNOWN","LOW","MEDIUM","HIGH"]},"summary":{"type":"string"},"command":{"type":"string","enum":["spawn","delegate"]},"ids":{"type":"array","items":{"type":"string"}},"agent_types":{"type":"array","items":{"type":"string"}},"tasks":{"type":"object"}},"required":["command"]}"#,
        ),
    ];

    #[test]
    fn preset_schemas_match_the_reference_structure() {
        let names: Vec<&str> = PRESET_SCHEMAS.iter().map(|(n, _)| *n).collect();
        let specs = tool_specs(&names, "workspace/project", true);
        assert_eq!(specs.len(), 10);
        for (spec, (name, schema)) in specs.iter().zip(PRESET_SCHEMAS) {
            assert_eq!(spec.name, name);
            assert_eq!(
                serde_json::to_string(&strip_descriptions(&spec.parameters)).unwrap(),
                schema,
                "{name}"
            );
            assert!(!spec.description.is_empty());
        }
    }

    #[test]
    fn preset_tool_definitions() {
        let ctx = ToolContext {
            working_dir: "workspace/project",
            vision: false,
            plan_path: Some("/abs/ws/.agents_tmp/PLAN.md"),
            agent_types: None,
            profiles: &[],
        };
        let def = |n: &str| tool_definition_in(n, &ctx).unwrap();
        let rf = def("read_file");
        assert_eq!(
            serde_json::to_string(&json!([
                rf["action_type"],
                rf["observation_type"],
                rf["annotations"],
                rf["meta"],
                rf["kind"],
                rf["title"]
            ]))
            .unwrap(),
            r#"["ReadFileAction","ReadFileObservation",{"title":"read_file","readOnlyHint":true,"destructiveHint":false,"idempotentHint":true,"openWorldHint":false},{"workspace_root":"workspace/project"},"ReadFileTool","read_file"]"#
        );
        let ap = def("apply_patch");
        assert_eq!(ap["kind"], "ApplyPatchTool");
        assert_eq!(ap["meta"], Value::Null);
        assert_eq!(ap["annotations"]["destructiveHint"], true);
        let pf = def("planning_file_editor");
        assert_eq!(pf["action_type"], "PlanningFileEditorAction");
        assert_eq!(pf["observation_type"], "PlanningFileEditorObservation");
        assert_eq!(pf["annotations"]["readOnlyHint"], false);
        assert_eq!(pf["annotations"]["destructiveHint"], false);
        let text = pf["description"].as_str().unwrap();
        assert!(
            text.contains("Plan file: /abs/ws/.agents_tmp/PLAN.md"),
            "{text}"
        );
        assert!(text.contains("Working directory: workspace/project"));
        assert!(!text.contains("Your workspace is:"));
        for (n, kind) in [
            ("write_file", "WriteFileTool"),
            ("edit", "EditTool"),
            ("list_directory", "ListDirectoryTool"),
            ("glob", "GlobTool"),
            ("grep", "GrepTool"),
        ] {
            assert_eq!(def(n)["kind"], kind);
        }
        assert_eq!(
            def("edit")["meta"],
            json!({"workspace_root": "workspace/project"})
        );
        assert_eq!(def("glob")["meta"], Value::Null);
        assert!(
            def("grep")["description"]
                .as_str()
                .unwrap()
                .contains("Working directory: workspace/project")
        );
    }

    #[test]
    fn preset_calls_validate_like_the_models() {
        let all = TOOL_NAMES;
        let (tool, action, _, _, summary) = ok(parse_tool_call(
            &all,
            "read_file",
            r#"{"file_path":"a.py","summary":"read it"}"#,
        ));
        assert_eq!(tool, "read_file");
        assert_eq!(summary, "read it");
        assert_eq!(
            serde_json::to_string(&action).unwrap(),
            r#"{"file_path":"a.py","offset":null,"limit":null,"kind":"ReadFileAction"}"#
        );
        let (_, msg) = err(parse_tool_call(
            &all,
            "read_file",
            r#"{"file_path":"a.py","limit":0}"#,
        ));
        assert!(
            msg.contains(
                "limit\n  Input should be greater than or equal to 1 [type=greater_than_equal"
            ),
            "{msg}"
        );
        let (_, action, _, _, _) = ok(parse_tool_call(
            &all,
            "edit",
            r#"{"file_path":"a","old_string":"x","new_string":"y"}"#,
        ));
        assert_eq!(action["expected_replacements"], 1);
        assert_eq!(action["kind"], "EditAction");
        let (_, action, _, _, _) = ok(parse_tool_call(&all, "list_directory", "{}"));
        assert_eq!(
            serde_json::to_string(&action).unwrap(),
            r#"{"dir_path":".","recursive":false,"kind":"ListDirectoryAction"}"#
        );
        let (_, action, _, _, _) = ok(parse_tool_call(
            &all,
            "grep",
            r#"{"pattern":"x","include":"*.rs"}"#,
        ));
        assert_eq!(
            serde_json::to_string(&action).unwrap(),
            r#"{"pattern":"x","path":null,"include":"*.rs","kind":"GrepAction"}"#
        );
        let (_, action, _, _, _) = ok(parse_tool_call(
            &all,
            "planning_file_editor",
            r#"{"command":"view","path":"/p","view_range":"[1, 2]"}"#,
        ));
        assert_eq!(action["kind"], "PlanningFileEditorAction");
        assert_eq!(action["view_range"], json!([1, 2]));
        let (_, msg) = err(parse_tool_call(&all, "apply_patch", r#"{"input":"x"}"#));
        assert!(msg.starts_with("Error validating tool 'apply_patch': 2 validation errors for ApplyPatchAction\npatch\n  Field required"), "{msg}");
        // With `grep` offered, a grep call is the tool itself, not a terminal fallback.
        let (tool, _, _, _, _) = ok(parse_tool_call(
            &["terminal", "grep"],
            "grep",
            r#"{"pattern":"x"}"#,
        ));
        assert_eq!(tool, "grep");
        // Read-only tools get no `security_risk` and always record UNKNOWN.
        for name in ["read_file", "list_directory", "glob", "grep"] {
            assert!(is_read_only(name), "{name}");
        }
        match parse_tool_call_with_analyzer(
            &all,
            "glob",
            r#"{"pattern":"*","security_risk":"HIGH"}"#,
            true,
        ) {
            ParsedCall::Ok {
                event_security_risk,
                ..
            } => assert_eq!(event_security_risk, "UNKNOWN"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tool_setup_errors_as_the_reference_raises_them() {
        let empty = Map::new();
        let mut rel = Map::new();
        rel.insert("plan_path".into(), json!("plans/PLAN.md"));
        let mut abs = Map::new();
        abs.insert("plan_path".into(), json!("/plans/PLAN.md"));
        assert_eq!(
            tool_setup_error(&[("terminal", &empty), ("browser_tool_set", &empty)]),
            None
        );
        assert_eq!(
            tool_setup_error(&[("terminal", &empty), ("no_such_tool", &empty)]).as_deref(),
            Some("\"ToolDefinition 'no_such_tool' is not registered\"")
        );
        assert_eq!(
            tool_setup_error(&[("planning_file_editor", &rel)]).as_deref(),
            Some("plan_path must be an absolute path, got: plans/PLAN.md")
        );
        assert_eq!(tool_setup_error(&[("planning_file_editor", &abs)]), None);
        assert_eq!(
            tool_setup_error(&[("glob", &empty), ("glob", &empty)]).as_deref(),
            Some("Duplicate tool names found: {'glob'}")
        );
        assert_eq!(tool_setup_error(&[("task_tool_set", &empty)]), None);
        let mut odd = Map::new();
        odd.insert("depth".into(), json!(2));
        assert_eq!(
            tool_setup_error(&[("task_tool_set", &odd)]).as_deref(),
            Some("TaskToolSet.create() got an unexpected keyword argument 'depth'")
        );
        let mut children = Map::new();
        children.insert("max_children".into(), json!(2));
        assert_eq!(tool_setup_error(&[("delegate", &children)]), None);
        assert_eq!(
            tool_setup_error(&[("task", &empty)]).as_deref(),
            Some("TaskTool.create() got an unexpected keyword argument 'conv_state'")
        );
    }

    #[test]
    fn sub_agent_tool_calls_validate_as_the_reference() {
        assert_eq!(offered_name("task_tool_set"), Some("task"));
        assert_eq!(offered_name("delegate"), Some("delegate"));
        assert_eq!(offered_name("browser_tool_set"), None);
        match parse_tool_call(&["task"], "task", r#"{"prompt": "p", "max_turns": 3}"#) {
            ParsedCall::Ok { action, .. } => assert_eq!(
                action,
                json!({"description": null, "prompt": "p", "subagent_type": "general-purpose",
                       "resume": null, "max_turns": 3, "kind": "TaskAction"})
            ),
            other => panic!("{other:?}"),
        }
        match parse_tool_call(
            &["delegate"],
            "delegate",
            r#"{"command": "delegate", "tasks": "{\"a\": \"x\"}"}"#,
        ) {
            ParsedCall::Ok { action, .. } => assert_eq!(
                action,
                json!({"command": "delegate", "ids": null, "agent_types": null,
                       "tasks": {"a": "x"}, "kind": "DelegateAction"})
            ),
            other => panic!("{other:?}"),
        }
        match parse_tool_call(&["delegate"], "delegate", r#"{"command": "spawn", "ids": [1]}"#) {
            ParsedCall::Err { message, .. } => assert!(
                message.starts_with(
                    "Error validating tool 'delegate': 1 validation error for DelegateAction\nids.0\n  Input should be a valid string"
                ),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
        let spec = tool_specs(&["delegate", "task"], "/ws", false);
        assert_eq!(spec[0].parameters["required"], json!(["command"]));
        assert_eq!(spec[1].parameters["required"], json!(["prompt"]));
        assert!(spec[0].description.contains("/ws"));
    }
}
