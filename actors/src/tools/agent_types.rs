//! The sub-agent types a conversation's `task` and `delegate` tools can start: the
//! server's built-in types (`general-purpose`, `bash-runner`, `code-explorer`, as the
//! reference registers them at start-up), the `agent_definitions` the client sent
//! with the conversation (what `register_agent(...)` put in its registry), then the
//! file-based ones: Markdown files with a YAML front matter in the workspace's
//! `.agents/agents` and `.openhands/agents`, then in the same directories under the
//! server's home. The first registration of a name wins, as in the reference.
//!
//! Unlike the reference, whose registry is global to the server process (a definition
//! one conversation sent is visible to every later one), the types here belong to one
//! conversation. Only data and texts live here; running a sub-agent is the
//! conversation's (`conversation/subagent.rs`).

use std::path::{Path, PathBuf};

use serde_json::Value;

/// One sub-agent type.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentType {
    /// The name the LLM gives (`subagent_type`, `agent_types`).
    pub name: String,
    /// What the type is for, as listed in the tool descriptions.
    pub description: String,
    /// The tools it gets (registered names), besides `finish` and `think`.
    pub tools: Vec<String>,
    /// Added to the default system prompt (the reference's `system_message_suffix`).
    pub system_prompt: String,
    /// `inherit` (the parent's LLM) or the name of an LLM profile.
    pub model: String,
    /// Its own iteration cap, else the parent conversation's.
    pub max_iteration_per_run: Option<u64>,
}

/// The sub-agent types of one conversation, in registration order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentTypes {
    types: Vec<AgentType>,
}

/// The reference's old names of the built-in types, still accepted.
const RENAMED: [(&str, &str); 4] = [
    ("default", "general-purpose"),
    ("default cli mode", "general-purpose"),
    ("explore", "code-explorer"),
    ("bash", "bash-runner"),
];

fn builtin(name: &str, description: &str, tools: &[&str], prompt: &str) -> AgentType {
    AgentType {
        name: name.into(),
        description: description.into(),
        tools: tools.iter().map(|t| t.to_string()).collect(),
        system_prompt: prompt.into(),
        model: "inherit".into(),
        max_iteration_per_run: None,
    }
}

const GENERAL_PURPOSE_PROMPT: &str = "You work as a general-purpose helper of another agent, \
which handed you one task. Read and change code with `file_editor`, run programs, builds, tests \
and git with `terminal`, and keep a plan with `task_tracker` when the task has several steps.

When you are done, answer with a short report for the agent that asked: what you did, which \
files, tests or errors are involved, and what is still open. Report the outcome, not every \
command you ran.";

const BASH_RUNNER_PROMPT: &str = "You run shell commands for another agent, through `terminal`, \
and report what they did.

Run what you were asked for, no more: add flags or extra steps only when the command needs them \
to be correct. Join dependent commands with `&&`. Never start anything interactive (editors, \
pagers, `git rebase -i`); use non-interactive forms.

The agent that asked never sees the raw output, only your report, so condense it:
- tests: how many passed, failed, were skipped or errored, and for each failure its name, a \
one-line reason and the file and line;
- builds and linters: whether they succeeded, and each error or warning with file, line and \
message;
- git: what changed (branch, commit, files) and any conflict;
- anything else: a non-zero exit code, the lines that answer the question, and errors.
Do not paste whole logs, progress lines or tracebacks.";

const CODE_EXPLORER_PROMPT: &str = "You explore a code base for another agent, through \
`terminal`, and never change anything: no file is created, edited, moved or deleted, nothing is \
installed or built, and no output is redirected into a file.

Use read-only commands only: `ls`, `find`, `tree`, `cat`, `head`, `tail`, `sed -n`, `wc`, \
`grep`, `rg`, `file`, `stat`, `which`, `pwd`, `env`, and `git status`, `log`, `diff`, `show` and \
`blame`. Look at the layout first, then narrow down; search contents with `grep` or `rg` and \
names with `find`.

Answer with a structured summary: the files and line numbers that matter, with short code \
excerpts, so that the agent that asked can act on it at once.";

impl AgentTypes {
    /// The built-in types (the reference's, less its browser-based `web-researcher`:
    /// this server has no browser).
    pub fn builtins() -> AgentTypes {
        AgentTypes {
            types: vec![
                builtin(
                    "bash-runner",
                    "Runs shell commands (tests, builds, linters, git, installs, system \
                     checks) and reports only what matters: counts, failures with their \
                     reasons, actionable errors.",
                    &["terminal"],
                    BASH_RUNNER_PROMPT,
                ),
                builtin(
                    "code-explorer",
                    "Reads unfamiliar code without changing it and reports file paths, line \
                     numbers and excerpts. Use it before making changes.",
                    &["terminal"],
                    CODE_EXPLORER_PROMPT,
                ),
                builtin(
                    "general-purpose",
                    "Reads, writes and edits code, runs shell commands and tracks tasks. Use \
                     it for work that needs several of these or fits no specialised type.",
                    &["terminal", "file_editor", "task_tracker"],
                    GENERAL_PURPOSE_PROMPT,
                ),
            ],
        }
    }

    /// The built-in types, then the client's `agent_definitions` (serialized
    /// `AgentDefinition`s); a definition whose name is taken, or that has no name, is
    /// skipped (logged).
    pub fn with_definitions(definitions: &[Value]) -> AgentTypes {
        let mut types = AgentTypes::builtins();
        for def in definitions {
            match definition(def) {
                Some(t) if types.get(&t.name).is_none() => types.types.push(t),
                Some(t) => log::debug!("agent definition '{}' is already registered", t.name),
                None => log::warn!("agent definition without a name skipped"),
            }
        }
        types
    }

    /// Adds the file-based types found for a workspace (see the module's summary).
    pub fn with_files(mut self, working_dir: &Path) -> AgentTypes {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let mut dirs: Vec<PathBuf> = FILE_DIRS.iter().map(|d| working_dir.join(d)).collect();
        if let Some(home) = home {
            dirs.extend(FILE_DIRS.iter().map(|d| home.join(d)));
        }
        for dir in dirs {
            for t in load_dir(&dir) {
                if self.get(&t.name).is_none() {
                    self.types.push(t);
                }
            }
        }
        self
    }

    fn get(&self, name: &str) -> Option<&AgentType> {
        self.types.iter().find(|t| t.name == name)
    }

    /// The type a name stands for (empty: `general-purpose`; the reference's old names
    /// mapped), or the reference's error text.
    pub fn resolve(&self, name: &str) -> Result<&AgentType, String> {
        let wanted = RENAMED
            .iter()
            .find(|(old, _)| *old == name)
            .map(|(_, new)| *new)
            .unwrap_or(if name.is_empty() {
                "general-purpose"
            } else {
                name
            });
        self.get(wanted).ok_or_else(|| {
            let mut names: Vec<&str> = self.types.iter().map(|t| t.name.as_str()).collect();
            names.sort_unstable();
            let available = if names.is_empty() {
                "none registered".to_string()
            } else {
                names.join(", ")
            };
            format!(
                "Unknown agent '{name}'. Available types: {available}. Use register_agent() \
                 to add custom agent types."
            )
        })
    }

    /// Whether a type of this name is registered.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The types as the tool descriptions list them (the reference's layout), sorted by
    /// name: `- **<name>**: <description> (tools: a, b)`.
    pub fn info(&self) -> String {
        let mut types: Vec<&AgentType> = self.types.iter().collect();
        types.sort_by(|a, b| a.name.cmp(&b.name));
        types
            .iter()
            .map(|t| {
                let tools = if t.tools.is_empty() {
                    String::new()
                } else {
                    format!(" (tools: {})", t.tools.join(", "))
                };
                format!("- **{}**: {}{tools}", t.name, t.description)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Where agent definition files live, under a project or the home directory.
const FILE_DIRS: [&str; 2] = [".agents/agents", ".openhands/agents"];
/// At most this many files are read per directory, each at most this long.
const MAX_FILES: usize = 32;
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// The definitions in one directory: its top-level `*.md` files but `README.md`, in
/// name order; a file that cannot be read or parsed is skipped (logged). Read once per
/// conversation actor, when its tools are first described (like the agent's own
/// security policy file), so kept small: at most 32 files of 64 KiB per directory.
fn load_dir(dir: &Path) -> Vec<AgentType> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    // A directory full of other things is not listed to its end.
    let mut files: Vec<PathBuf> = entries
        .take(1024)
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|x| x.eq_ignore_ascii_case("md"))
                && !p
                    .file_name()
                    .is_some_and(|n| n == "README.md" || n == "readme.md")
        })
        .collect();
    files.sort();
    files.truncate(MAX_FILES);
    let mut out = vec![];
    for path in files {
        let read = std::fs::File::open(&path).and_then(|f| {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::Read::take(f, MAX_FILE_BYTES), &mut text)
                .map(|_| text)
        });
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match read
            .map_err(|e| e.to_string())
            .and_then(|t| parse_file(&t, &stem))
        {
            Ok(t) => out.push(t),
            Err(e) => log::warn!("agent definition {} skipped: {e}", path.display()),
        }
    }
    out
}

/// A value of the front matter: a scalar or a list of scalars (nested mappings are
/// not used by the fields read here).
#[derive(Debug, Clone, PartialEq)]
enum Yaml {
    Scalar(String),
    List(Vec<String>),
    Other,
}

/// One definition file: a `---` front matter (the subset of YAML definition files use:
/// scalars, quoted or plain, folded `>`/literal `|` blocks, lists in either style),
/// then the Markdown body, which is the type's system prompt.
fn parse_file(text: &str, stem: &str) -> Result<AgentType, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (fields, body) = match text.strip_prefix("---") {
        Some(rest) if rest.starts_with('\n') || rest.starts_with("\r\n") => {
            let rest = rest.trim_start_matches(['\r', '\n']);
            let end = rest
                .find("\n---")
                .map(|i| (i, i + 4))
                .or_else(|| rest.starts_with("---").then_some((0, 3)))
                .ok_or("the front matter is not closed")?;
            let body = rest[end.1..].split_once('\n').map(|(_, b)| b).unwrap_or("");
            (front_matter(&rest[..end.0])?, body)
        }
        _ => (vec![], text),
    };
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    let scalar = |k: &str| match get(k) {
        Some(Yaml::Scalar(s)) => Some(s.clone()),
        _ => None,
    };
    if let Some(mode) = scalar("permission_mode") {
        let mode = mode.trim().to_ascii_lowercase();
        if !["always_confirm", "never_confirm", "confirm_risky"].contains(&mode.as_str()) {
            return Err(format!("Invalid permission_mode '{mode}'"));
        }
    }
    let tools = match get("tools") {
        Some(Yaml::List(items)) => items.clone(),
        Some(Yaml::Scalar(s)) if !s.is_empty() => vec![s.clone()],
        _ => vec![],
    };
    let max_iteration_per_run = match scalar("max_iteration_per_run") {
        Some(n) => Some(
            n.trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("max_iteration_per_run '{n}' is not a positive integer"))?,
        ),
        None => None,
    };
    Ok(AgentType {
        name: scalar("name").unwrap_or_else(|| stem.to_string()),
        description: scalar("description").unwrap_or_default(),
        tools,
        system_prompt: body.trim().to_string(),
        model: scalar("model")
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "inherit".into()),
        max_iteration_per_run,
    })
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    let quoted = v.len() >= 2
        && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')));
    if quoted {
        v[1..v.len() - 1].to_string()
    } else {
        v.split(" #").next().unwrap_or(v).trim_end().to_string()
    }
}

/// The top-level keys of a front matter, in order.
fn front_matter(text: &str) -> Result<Vec<(String, Yaml)>, String> {
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mut out = vec![];
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if indent_of(line) > 0 {
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .ok_or_else(|| format!("not a `key: value` line: {line}"))?;
        let key = key.trim().to_string();
        let value = value.trim();
        // The indented lines that belong to this key.
        let start = i;
        while i < lines.len() && (lines[i].trim().is_empty() || indent_of(lines[i]) > 0) {
            i += 1;
        }
        let block = &lines[start..i];
        let parsed = if value.starts_with('>') || value.starts_with('|') {
            let indent = block
                .iter()
                .filter(|l| !l.trim().is_empty())
                .map(|l| indent_of(l))
                .min()
                .unwrap_or(0);
            let mut kept: Vec<&str> = block
                .iter()
                .map(|l| if l.len() >= indent { &l[indent..] } else { "" })
                .collect();
            while kept.last().is_some_and(|l| l.trim().is_empty()) {
                kept.pop();
            }
            let text = if value.starts_with('|') {
                kept.join("\n")
            } else {
                let mut folded = String::new();
                for l in kept {
                    if l.trim().is_empty() {
                        folded.push('\n');
                    } else {
                        if !folded.is_empty() && !folded.ends_with('\n') {
                            folded.push(' ');
                        }
                        folded.push_str(l.trim());
                    }
                }
                folded
            };
            Yaml::Scalar(text)
        } else if value.starts_with('[') && value.ends_with(']') {
            let inner = &value[1..value.len() - 1];
            Yaml::List(
                inner
                    .split(',')
                    .map(unquote)
                    .filter(|s| !s.is_empty())
                    .collect(),
            )
        } else if value.is_empty() {
            let items: Vec<&str> = block
                .iter()
                .map(|l| l.trim())
                .filter(|l| !l.is_empty())
                .collect();
            if !items.is_empty() && items.iter().all(|l| l.starts_with('-')) {
                Yaml::List(
                    items
                        .iter()
                        .map(|l| unquote(l.trim_start_matches('-')))
                        .collect(),
                )
            } else if items.is_empty() {
                Yaml::Scalar(String::new())
            } else {
                Yaml::Other
            }
        } else {
            // A plain scalar may go on over indented lines.
            let mut text = unquote(value);
            for l in block.iter().filter(|l| !l.trim().is_empty()) {
                text.push(' ');
                text.push_str(l.trim());
            }
            Yaml::Scalar(text)
        };
        out.push((key, parsed));
    }
    Ok(out)
}

/// One serialized `AgentDefinition` (`name`, `description`, `model`, `tools`,
/// `system_prompt`, `max_iteration_per_run`; the rest is not used here).
fn definition(def: &Value) -> Option<AgentType> {
    let name = def.get("name").and_then(Value::as_str)?.to_string();
    let text = |k: &str| {
        def.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let tools = match def.get("tools") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| match t {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => vec![],
    };
    let model = match text("model") {
        m if m.is_empty() => "inherit".to_string(),
        m => m,
    };
    Some(AgentType {
        name,
        description: text("description"),
        tools,
        system_prompt: text("system_prompt"),
        model,
        max_iteration_per_run: def
            .get("max_iteration_per_run")
            .and_then(Value::as_u64)
            .filter(|n| *n > 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtins_resolve_by_name_and_old_name() {
        let t = AgentTypes::builtins();
        assert_eq!(t.resolve("").unwrap().name, "general-purpose");
        assert_eq!(t.resolve("default").unwrap().name, "general-purpose");
        assert_eq!(t.resolve("bash").unwrap().name, "bash-runner");
        assert_eq!(t.resolve("explore").unwrap().name, "code-explorer");
        assert_eq!(
            t.resolve("nope").unwrap_err(),
            "Unknown agent 'nope'. Available types: bash-runner, code-explorer, \
             general-purpose. Use register_agent() to add custom agent types."
        );
    }

    #[test]
    fn definition_files_are_read_from_the_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let agents = dir.path().join(".agents/agents");
        std::fs::create_dir_all(&agents).unwrap();
        std::fs::write(
            agents.join("reviewer.md"),
            "---\nname: code-reviewer\ndescription: >-\n    Reviews diffs\n    for bugs.\n\
             tools:\n  - terminal\n  - file_editor\nmax_iteration_per_run: 3\n\
             hooks:\n  stop:\n    - matcher: '*'\n---\n\nYou review code.\n",
        )
        .unwrap();
        std::fs::write(agents.join("README.md"), "not an agent").unwrap();
        std::fs::write(
            agents.join("bad.md"),
            "---\npermission_mode: sometimes\n---\n",
        )
        .unwrap();
        std::fs::write(agents.join("plain.md"), "Just a prompt.").unwrap();
        let types = AgentTypes::builtins().with_files(dir.path());
        let r = types.resolve("code-reviewer").unwrap();
        assert_eq!(r.description, "Reviews diffs for bugs.");
        assert_eq!(r.tools, ["terminal", "file_editor"]);
        assert_eq!(r.max_iteration_per_run, Some(3));
        assert_eq!(r.system_prompt, "You review code.");
        let plain = types.resolve("plain").unwrap();
        assert_eq!(plain.system_prompt, "Just a prompt.");
        assert!(types.resolve("bad").is_err());
        assert!(types.resolve("README").is_err());
    }

    #[test]
    fn definitions_add_types_and_never_replace_one() {
        let t = AgentTypes::with_definitions(&[
            json!({"name": "grammar-checker", "description": "Checks grammar.",
                   "tools": ["file_editor"], "system_prompt": "Be picky.", "model": "inherit",
                   "max_iteration_per_run": 7}),
            json!({"name": "bash-runner", "description": "mine"}),
            json!({"description": "no name"}),
        ]);
        let g = t.resolve("grammar-checker").unwrap();
        assert_eq!(g.tools, ["file_editor"]);
        assert_eq!(g.system_prompt, "Be picky.");
        assert_eq!(g.max_iteration_per_run, Some(7));
        assert_ne!(t.resolve("bash-runner").unwrap().description, "mine");
        let info = t.info();
        assert!(info.starts_with("- **bash-runner**: "), "{info}");
        assert!(
            info.contains("- **grammar-checker**: Checks grammar. (tools: file_editor)"),
            "{info}"
        );
    }
}
