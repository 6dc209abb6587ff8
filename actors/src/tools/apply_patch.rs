//! The `apply_patch` tool (GPT-5 preset): parses a `*** Begin Patch` … `*** End Patch`
//! text (the format of OpenAI's GPT-5 prompting guide), applies it inside the workspace
//! and returns the `ApplyPatchObservation` JSON (`message`, `fuzz`, `commit`).
//!
//! Parsing follows the reference parser step by step — its section rules, its three
//! context-matching passes (exact, then ignoring trailing whitespace with fuzz 1, then
//! ignoring surrounding whitespace with fuzz 100; end-of-file hunks add 10000 when they
//! do not sit at the end) and its error texts, which the LLM reads and acts on.
//!
//! Departures from the reference, each where it would crash the run, write outside the
//! workspace or overflow the client's 1 MiB event frame: a patch that does not start with
//! `*** Begin Patch` is an error observation (the reference's assertion kills the run);
//! every path (and `Move to` target) is checked before anything is written, so a bad path
//! changes nothing; the workspace check compares whole path components (the reference's
//! string prefix test lets `/work2` pass for `/work`); non-regular and over-10 MiB files
//! are refused; CRLF line ends of an updated file are kept; the commit's file contents are
//! left out (null) when large. A file that is not UTF-8 gives the reference's
//! `Error executing tool` result ([`PatchError::Decode`]). Blocking I/O: run [`apply`] on
//! a blocking thread.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::tools::content::Content;
use crate::tools::file_editor::write_atomic;
use crate::tools::paths::{self, py_os_error};

/// Files larger than this are not patched.
const MAX_FILE: u64 = 10 * 1024 * 1024;
/// The commit's contents together above this many bytes are left out.
const MAX_COMMIT_CONTENT_BYTES: usize = 256 * 1024;

/// Why a patch was not applied.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchError {
    /// The patch is malformed or does not fit the files (the reference's `DiffError`):
    /// an error observation with this text.
    Diff(String),
    /// A file to patch is not UTF-8: the reference lets Python's `UnicodeDecodeError`
    /// through, which the agent reports as `Error executing tool 'apply_patch': …`.
    Decode(String),
}

fn diff<T>(msg: impl Into<String>) -> Result<T, PatchError> {
    Err(PatchError::Diff(msg.into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Add,
    Delete,
    Update,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Add => "add",
            Kind::Delete => "delete",
            Kind::Update => "update",
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Chunk {
    orig_index: usize,
    del_lines: Vec<String>,
    ins_lines: Vec<String>,
}

#[derive(Debug, Clone)]
struct PatchAction {
    kind: Kind,
    new_file: Option<String>,
    chunks: Vec<Chunk>,
    move_path: Option<String>,
}

/// One change of the commit: `{"type","old_content","new_content","move_path"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct FileChange {
    kind: Kind,
    old_content: Option<String>,
    new_content: Option<String>,
    move_path: Option<String>,
}

/// The applied changes, by path as written in the patch, in patch order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Commit {
    changes: Vec<(String, FileChange)>,
}

impl Commit {
    fn to_json(&self) -> Value {
        let size: usize = self
            .changes
            .iter()
            .map(|(_, c)| {
                c.old_content.as_ref().map_or(0, String::len)
                    + c.new_content.as_ref().map_or(0, String::len)
            })
            .sum();
        let inline = size <= MAX_COMMIT_CONTENT_BYTES;
        let mut changes = Map::new();
        for (path, c) in &self.changes {
            let text = |s: &Option<String>| match s {
                Some(s) if inline => Value::String(s.clone()),
                _ => Value::Null,
            };
            let mut m = Map::new();
            m.insert("type".into(), Value::String(c.kind.as_str().into()));
            m.insert("old_content".into(), text(&c.old_content));
            m.insert("new_content".into(), text(&c.new_content));
            m.insert("move_path".into(), json!(c.move_path));
            changes.insert(path.clone(), Value::Object(m));
        }
        json!({ "changes": changes })
    }
}

const UPDATE: &str = "*** Update File: ";
const DELETE: &str = "*** Delete File: ";
const ADD: &str = "*** Add File: ";
const MOVE: &str = "*** Move to: ";
const END_PATCH: &str = "*** End Patch";
const END_OF_FILE: &str = "*** End of File";

/// The reference's parser state.
struct Parser<'a> {
    current_files: &'a HashMap<String, String>,
    lines: Vec<String>,
    index: usize,
    actions: Vec<(String, PatchAction)>,
    fuzz: u64,
}

impl Parser<'_> {
    fn is_done(&self, prefixes: &[&str]) -> bool {
        self.index >= self.lines.len()
            || prefixes
                .iter()
                .any(|p| self.lines[self.index].starts_with(p))
    }

    fn has_action(&self, path: &str) -> bool {
        self.actions.iter().any(|(p, _)| p == path)
    }

    /// The rest of the current line after `prefix` (consuming the line) when it starts
    /// with it, else `""` (not consuming). Like the reference, a bare prefix is consumed
    /// and yields `""`.
    fn read_str(&mut self, prefix: &str) -> String {
        let line = &self.lines[self.index];
        match line.strip_prefix(prefix) {
            Some(rest) => {
                let rest = rest.to_string();
                self.index += 1;
                rest
            }
            None => String::new(),
        }
    }

    fn parse(&mut self) -> Result<(), PatchError> {
        while !self.is_done(&[END_PATCH]) {
            let path = self.read_str(UPDATE);
            if !path.is_empty() {
                if self.has_action(&path) {
                    return diff(format!("Update File Error: Duplicate Path: {path}"));
                }
                let move_to = if self.index < self.lines.len() {
                    self.read_str(MOVE)
                } else {
                    String::new()
                };
                let Some(text) = self.current_files.get(&path) else {
                    return diff(format!("Update File Error: Missing File: {path}"));
                };
                let text = text.clone();
                let mut action = self.parse_update_file(&text)?;
                // The reference records an absent `Move to` as "" (falsy: no move).
                action.move_path = Some(move_to);
                self.actions.push((path, action));
                continue;
            }
            if self.index >= self.lines.len() {
                break;
            }
            let path = self.read_str(DELETE);
            if !path.is_empty() {
                if self.has_action(&path) {
                    return diff(format!("Delete File Error: Duplicate Path: {path}"));
                }
                if !self.current_files.contains_key(&path) {
                    return diff(format!("Delete File Error: Missing File: {path}"));
                }
                self.actions.push((
                    path,
                    PatchAction {
                        kind: Kind::Delete,
                        new_file: None,
                        chunks: vec![],
                        move_path: None,
                    },
                ));
                continue;
            }
            if self.index >= self.lines.len() {
                break;
            }
            let path = self.read_str(ADD);
            if !path.is_empty() {
                if self.has_action(&path) {
                    return diff(format!("Add File Error: Duplicate Path: {path}"));
                }
                let action = self.parse_add_file()?;
                self.actions.push((path, action));
                continue;
            }
            if self.index >= self.lines.len() {
                break;
            }
            return diff(format!("Unknown Line: {}", self.lines[self.index]));
        }
        if self.index >= self.lines.len() || !self.lines[self.index].starts_with(END_PATCH) {
            return diff("Missing End Patch");
        }
        self.index += 1;
        Ok(())
    }

    fn parse_update_file(&mut self, text: &str) -> Result<PatchAction, PatchError> {
        let mut action = PatchAction {
            kind: Kind::Update,
            new_file: None,
            chunks: vec![],
            move_path: None,
        };
        let lines: Vec<&str> = text.split('\n').collect();
        let mut index = 0usize;
        while !self.is_done(&[
            END_PATCH,
            "*** Update File:",
            "*** Delete File:",
            "*** Add File:",
            END_OF_FILE,
        ]) {
            let def_str = self.read_str("@@ ");
            let mut section_str = "";
            if def_str.is_empty() && self.index < self.lines.len() && self.lines[self.index] == "@@"
            {
                section_str = "@@";
                self.index += 1;
            }
            if def_str.is_empty() && section_str.is_empty() && index != 0 {
                let line = self.lines.get(self.index).cloned().unwrap_or_default();
                return diff(format!("Invalid Line:\n{line}"));
            }
            if !def_str.trim().is_empty() {
                let mut found = false;
                if !lines[..index].iter().any(|s| *s == def_str)
                    && let Some(i) = (index..lines.len()).find(|&i| lines[i] == def_str)
                {
                    index = i + 1;
                    found = true;
                }
                if !found
                    && !lines[..index].iter().any(|s| s.trim() == def_str.trim())
                    && let Some(i) =
                        (index..lines.len()).find(|&i| lines[i].trim() == def_str.trim())
                {
                    index = i + 1;
                    self.fuzz += 1;
                }
            }
            let (context, chunks, end_index, eof) = peek_next_section(&self.lines, self.index)?;
            let context_text = context.join("\n");
            let (new_index, fuzz) = find_context(&lines, &context, index, eof);
            let Some(new_index) = new_index else {
                return if eof {
                    diff(format!("Invalid EOF Context {index}:\n{context_text}"))
                } else {
                    diff(format!("Invalid Context {index}:\n{context_text}"))
                };
            };
            self.fuzz += fuzz;
            for mut ch in chunks {
                ch.orig_index += new_index;
                action.chunks.push(ch);
            }
            index = new_index + context.len();
            self.index = end_index;
        }
        Ok(action)
    }

    fn parse_add_file(&mut self) -> Result<PatchAction, PatchError> {
        let mut lines = Vec::new();
        while !self.is_done(&[
            END_PATCH,
            "*** Update File:",
            "*** Delete File:",
            "*** Add File:",
        ]) {
            let s = self.read_str("");
            let Some(rest) = s.strip_prefix('+') else {
                return diff(format!("Invalid Add File Line: {s}"));
            };
            lines.push(rest.to_string());
        }
        Ok(PatchAction {
            kind: Kind::Add,
            new_file: Some(lines.join("\n")),
            chunks: vec![],
            move_path: None,
        })
    }
}

type Section = (Vec<String>, Vec<Chunk>, usize, bool);

/// The context lines, chunks, next index and end-of-file flag of the section at `index`.
fn peek_next_section(lines: &[String], mut index: usize) -> Result<Section, PatchError> {
    let mut old: Vec<String> = Vec::new();
    let mut del_lines: Vec<String> = Vec::new();
    let mut ins_lines: Vec<String> = Vec::new();
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut mode = 'k';
    let orig_index = index;
    while index < lines.len() {
        let s = lines[index].as_str();
        if [
            "@@",
            END_PATCH,
            "*** Update File:",
            "*** Delete File:",
            "*** Add File:",
            END_OF_FILE,
        ]
        .iter()
        .any(|p| s.starts_with(p))
        {
            break;
        }
        if s == "***" {
            break;
        } else if s.starts_with("***") {
            return diff(format!("Invalid Line: {s}"));
        }
        index += 1;
        let last_mode = mode;
        let s = if s.is_empty() { " " } else { s };
        let mut chars = s.chars();
        mode = match chars.next() {
            Some('+') => 'a',
            Some('-') => 'd',
            Some(' ') => 'k',
            _ => return diff(format!("Invalid Line: {s}")),
        };
        let body = chars.as_str().to_string();
        if mode == 'k' && last_mode != mode {
            if !ins_lines.is_empty() || !del_lines.is_empty() {
                chunks.push(Chunk {
                    orig_index: old.len() - del_lines.len(),
                    del_lines: std::mem::take(&mut del_lines),
                    ins_lines: std::mem::take(&mut ins_lines),
                });
            }
            del_lines.clear();
            ins_lines.clear();
        }
        match mode {
            'd' => {
                del_lines.push(body.clone());
                old.push(body);
            }
            'a' => ins_lines.push(body),
            _ => old.push(body),
        }
    }
    if !ins_lines.is_empty() || !del_lines.is_empty() {
        chunks.push(Chunk {
            orig_index: old.len() - del_lines.len(),
            del_lines,
            ins_lines,
        });
    }
    if index < lines.len() && lines[index] == END_OF_FILE {
        return Ok((old, chunks, index + 1, true));
    }
    if index == orig_index {
        let line = lines.get(index).cloned().unwrap_or_default();
        return diff(format!("Nothing in this section - index={index} {line}"));
    }
    Ok((old, chunks, index, false))
}

/// How lines are compared in one context-matching pass.
type Normalize = fn(&str) -> &str;

fn window_eq(lines: &[&str], i: usize, context: &[String], f: Normalize) -> bool {
    i + context.len() <= lines.len()
        && lines[i..i + context.len()]
            .iter()
            .zip(context)
            .all(|(a, b)| f(a) == f(b))
}

fn find_context_core(lines: &[&str], context: &[String], start: usize) -> (Option<usize>, u64) {
    if context.is_empty() {
        return (Some(start), 0);
    }
    let passes: [(Normalize, u64); 3] = [(|s| s, 0), (|s| s.trim_end(), 1), (|s| s.trim(), 100)];
    for (f, fuzz) in passes {
        if let Some(i) = (start..lines.len()).find(|&i| window_eq(lines, i, context, f)) {
            return (Some(i), fuzz);
        }
    }
    (None, 0)
}

fn find_context(
    lines: &[&str],
    context: &[String],
    start: usize,
    eof: bool,
) -> (Option<usize>, u64) {
    if eof {
        // Negative starts (a context longer than the file) never match in the reference.
        let at_end = lines.len().saturating_sub(context.len());
        if let (Some(i), fuzz) = find_context_core(lines, context, at_end) {
            return (Some(i), fuzz);
        }
        let (i, fuzz) = find_context_core(lines, context, start);
        return (i, fuzz + 10000);
    }
    find_context_core(lines, context, start)
}

fn updated_file(text: &str, action: &PatchAction, path: &str) -> Result<String, PatchError> {
    let orig: Vec<&str> = text.split('\n').collect();
    let mut dest: Vec<&str> = Vec::new();
    let mut orig_index = 0usize;
    for chunk in &action.chunks {
        if chunk.orig_index > orig.len() {
            return diff(format!(
                "_get_updated_file: {path}: chunk.orig_index {} > len(lines) {}",
                chunk.orig_index,
                orig.len()
            ));
        }
        if orig_index > chunk.orig_index {
            return diff(format!(
                "_get_updated_file: {path}: orig_index {orig_index} > chunk.orig_index {}",
                chunk.orig_index
            ));
        }
        dest.extend_from_slice(&orig[orig_index..chunk.orig_index]);
        orig_index = chunk.orig_index;
        dest.extend(chunk.ins_lines.iter().map(String::as_str));
        orig_index += chunk.del_lines.len();
    }
    if orig_index < orig.len() {
        dest.extend_from_slice(&orig[orig_index..]);
    }
    Ok(dest.join("\n"))
}

/// The files an `Update`/`Delete` section names, in first-seen order.
fn files_needed(lines: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in lines {
        for prefix in [UPDATE, DELETE] {
            if let Some(p) = line.strip_prefix(prefix)
                && !out.iter().any(|o| o == p)
            {
                out.push(p.to_string());
            }
        }
    }
    out
}

/// `Add`/`Move to` targets, which must pass the workspace check before anything is written.
fn files_written(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(ADD).or_else(|| l.strip_prefix(MOVE)))
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// The workspace the patch applies to, and how its files are read and written.
struct Workspace {
    root: PathBuf,
    crlf: HashMap<String, bool>,
}

impl Workspace {
    fn resolve(&self, p: &str) -> Result<PathBuf, PatchError> {
        let escaping = || PatchError::Diff("Absolute or escaping paths are not allowed".into());
        let resolved = paths::resolve(&self.root, Path::new(p)).map_err(|_| escaping())?;
        if resolved.starts_with(&self.root) {
            Ok(resolved)
        } else {
            Err(escaping())
        }
    }

    fn read(&mut self, p: &str) -> Result<String, PatchError> {
        let path = self.resolve(p)?;
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return diff(format!("Delete File Error: Missing File: {p}"));
            }
            Err(e) => return diff(py_os_error(&e, &path.to_string_lossy())),
        };
        if meta.is_dir() {
            return diff(format!(
                "[Errno 21] Is a directory: '{}'",
                path.to_string_lossy()
            ));
        }
        if !meta.is_file() {
            return diff(format!("Not a regular file: {p}"));
        }
        if meta.len() > MAX_FILE {
            return diff(format!(
                "File is too large to patch ({:.1}MB, at most {}MB): {p}",
                meta.len() as f64 / 1024.0 / 1024.0,
                MAX_FILE / 1024 / 1024
            ));
        }
        let bytes = fs::read(&path)
            .map_err(|e| PatchError::Diff(py_os_error(&e, &path.to_string_lossy())))?;
        let text = String::from_utf8(bytes).map_err(|e| PatchError::Decode(decode_error(&e)))?;
        let crlf = text.contains("\r\n");
        self.crlf.insert(p.to_string(), crlf);
        // Python's text mode: every line end reads as `\n`.
        Ok(if text.contains('\r') {
            text.replace("\r\n", "\n").replace('\r', "\n")
        } else {
            text
        })
    }

    fn write(&self, p: &str, content: &str, like: Option<&str>) -> Result<(), PatchError> {
        let path = self.resolve(p)?;
        let fail = |e: io::Error| PatchError::Diff(py_os_error(&e, &path.to_string_lossy()));
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(fail)?;
        }
        let crlf = like
            .and_then(|l| self.crlf.get(l))
            .copied()
            .unwrap_or(false);
        let bytes = if crlf {
            content.replace('\n', "\r\n").into_bytes()
        } else {
            content.as_bytes().to_vec()
        };
        write_atomic(&path, &bytes).map_err(fail)
    }

    fn remove(&self, p: &str) -> Result<(), PatchError> {
        let path = self.resolve(p)?;
        fs::remove_file(&path)
            .map_err(|e| PatchError::Diff(py_os_error(&e, &path.to_string_lossy())))
    }
}

/// Python's `UnicodeDecodeError` text for invalid UTF-8.
fn decode_error(e: &std::string::FromUtf8Error) -> String {
    let bytes = e.as_bytes();
    let pos = e.utf8_error().valid_up_to();
    let byte = bytes.get(pos).copied().unwrap_or(0);
    let reason = match e.utf8_error().error_len() {
        None => "unexpected end of data",
        Some(_) if (0x80..0xc2).contains(&byte) || byte >= 0xf5 => "invalid start byte",
        Some(_) => "invalid continuation byte",
    };
    format!("'utf-8' codec can't decode byte 0x{byte:02x} in position {pos}: {reason}")
}

/// The observation of a patch that was not applied.
pub fn error_observation(text: &str) -> Value {
    observation(text, true, "", 0, None)
}

fn observation(
    text: &str,
    is_error: bool,
    message: &str,
    fuzz: u64,
    commit: Option<&Commit>,
) -> Value {
    let mut obs = Map::new();
    obs.insert("content".into(), json!([Content::text(text).to_json()]));
    obs.insert("is_error".into(), Value::Bool(is_error));
    obs.insert("message".into(), Value::String(message.into()));
    obs.insert("fuzz".into(), json!(fuzz));
    obs.insert("commit".into(), commit.map_or(Value::Null, Commit::to_json));
    obs.insert("kind".into(), Value::String("ApplyPatchObservation".into()));
    Value::Object(obs)
}

/// Applies a validated `ApplyPatchAction` (`patch`) inside `working_dir` and returns
/// the `ApplyPatchObservation` JSON, or [`PatchError::Decode`] for a file that is not
/// UTF-8 (which the caller reports as the reference's tool error).
pub fn apply(action: &Value, working_dir: &Path) -> Result<Value, String> {
    let patch = action.get("patch").and_then(Value::as_str).unwrap_or("");
    let root = paths::resolve(Path::new("/"), working_dir).unwrap_or_else(|_| working_dir.into());
    match process(patch, &root) {
        Ok((fuzz, commit)) => Ok(observation("Done!", false, "Done!", fuzz, Some(&commit))),
        Err(PatchError::Diff(text)) => Ok(error_observation(&text)),
        Err(PatchError::Decode(text)) => Err(text),
    }
}

fn process(text: &str, root: &Path) -> Result<(u64, Commit), PatchError> {
    if !text.starts_with("*** Begin Patch") {
        return diff("Invalid patch text");
    }
    let lines: Vec<String> = text.trim().split('\n').map(str::to_string).collect();
    if lines.len() < 2
        || !lines[0].starts_with("*** Begin Patch")
        || lines[lines.len() - 1] != END_PATCH
    {
        return diff("Invalid patch text");
    }
    let mut ws = Workspace {
        root: root.to_path_buf(),
        crlf: HashMap::new(),
    };
    let mut orig: HashMap<String, String> = HashMap::new();
    for p in files_needed(&lines) {
        let content = ws.read(&p)?;
        orig.insert(p, content);
    }
    for p in files_written(&lines) {
        ws.resolve(&p)?;
    }
    let mut parser = Parser {
        current_files: &orig,
        lines,
        index: 1,
        actions: Vec::new(),
        fuzz: 0,
    };
    parser.parse()?;
    let fuzz = parser.fuzz;
    let mut commit = Commit::default();
    for (path, action) in &parser.actions {
        let change = match action.kind {
            Kind::Delete => FileChange {
                kind: Kind::Delete,
                old_content: orig.get(path).cloned(),
                new_content: None,
                move_path: None,
            },
            Kind::Add => FileChange {
                kind: Kind::Add,
                old_content: None,
                new_content: action.new_file.clone(),
                move_path: None,
            },
            Kind::Update => {
                let old = orig.get(path).cloned().unwrap_or_default();
                let new = updated_file(&old, action, path)?;
                FileChange {
                    kind: Kind::Update,
                    old_content: Some(old),
                    new_content: Some(new),
                    move_path: action.move_path.clone(),
                }
            }
        };
        commit.changes.push((path.clone(), change));
    }
    for (path, change) in &commit.changes {
        let content = change.new_content.as_deref().unwrap_or("");
        match change.kind {
            Kind::Delete => ws.remove(path)?,
            Kind::Add => ws.write(path, content, None)?,
            Kind::Update => match change.move_path.as_deref().filter(|m| !m.is_empty()) {
                Some(to) => {
                    ws.write(to, content, Some(path))?;
                    ws.remove(path)?;
                }
                None => ws.write(path, content, Some(path))?,
            },
        }
    }
    Ok((fuzz, commit))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Ws {
        _dir: tempfile::TempDir,
        root: PathBuf,
    }

    impl Ws {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let root = fs::canonicalize(dir.path()).unwrap().join("ws");
            fs::create_dir(&root).unwrap();
            Ws { _dir: dir, root }
        }
        fn write(&self, name: &str, text: &str) {
            let p = self.root.join(name);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        fn read(&self, name: &str) -> String {
            fs::read_to_string(self.root.join(name)).unwrap()
        }
        fn run(&self, patch: &str) -> Value {
            apply(
                &json!({"patch": patch, "kind": "ApplyPatchAction"}),
                &self.root,
            )
            .unwrap()
        }
        fn error(&self, patch: &str) -> String {
            let obs = self.run(patch);
            assert_eq!(obs["is_error"], true, "{obs}");
            assert_eq!(obs["message"], "");
            assert_eq!(obs["commit"], Value::Null);
            obs["content"][0]["text"].as_str().unwrap().to_string()
        }
    }

    #[test]
    fn add_update_delete_as_in_the_reference_tests() {
        let ws = Ws::new();
        let obs = ws.run("*** Begin Patch\n*** Add File: FACTS.txt\n+OpenHands SDK integrates tools.\n*** End Patch");
        assert_eq!(obs["is_error"], false);
        assert_eq!(obs["content"][0]["text"], "Done!");
        assert_eq!(obs["message"], "Done!");
        assert_eq!(ws.read("FACTS.txt"), "OpenHands SDK integrates tools.");
        assert_eq!(
            serde_json::to_string(&obs["commit"]).unwrap(),
            r#"{"changes":{"FACTS.txt":{"type":"add","old_content":null,"new_content":"OpenHands SDK integrates tools.","move_path":null}}}"#
        );
        let obs = ws.run("*** Begin Patch\n*** Update File: FACTS.txt\n@@\n OpenHands SDK integrates tools.\n+ApplyPatch works.\n*** End Patch");
        assert_eq!(obs["fuzz"], 0);
        assert_eq!(
            ws.read("FACTS.txt"),
            "OpenHands SDK integrates tools.\nApplyPatch works."
        );
        // An update without `Move to` records an empty move path, as the reference does.
        assert_eq!(obs["commit"]["changes"]["FACTS.txt"]["move_path"], "");
        assert_eq!(obs["commit"]["changes"]["FACTS.txt"]["type"], "update");
        assert_eq!(
            obs.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["content", "is_error", "message", "fuzz", "commit", "kind"]
        );
        ws.run("*** Begin Patch\n*** Delete File: FACTS.txt\n*** End Patch");
        assert!(!ws.root.join("FACTS.txt").exists());
    }

    #[test]
    fn hunks_files_and_moves() {
        let ws = Ws::new();
        ws.write("m.txt", "a1\na2\na3\na4\na5\n");
        ws.run("*** Begin Patch\n*** Update File: m.txt\n@@\n a1\n-a2\n+A2\n a3\n a4\n-a5\n+A5\n*** End Patch");
        assert_eq!(ws.read("m.txt"), "a1\nA2\na3\na4\nA5\n");
        ws.write("existing.txt", "base\n");
        ws.write("gone.txt", "x\n");
        ws.run("*** Begin Patch\n*** Add File: sub/added.txt\n+new content\n*** Update File: existing.txt\n@@\n base\n+more\n*** Delete File: gone.txt\n*** End Patch");
        assert_eq!(ws.read("sub/added.txt"), "new content");
        assert_eq!(ws.read("existing.txt"), "base\nmore\n");
        assert!(!ws.root.join("gone.txt").exists());
        let obs = ws.run("*** Begin Patch\n*** Update File: existing.txt\n*** Move to: moved/e.txt\n@@ base\n-more\n+MORE\n*** End Patch");
        assert_eq!(ws.read("moved/e.txt"), "base\nMORE\n");
        assert!(!ws.root.join("existing.txt").exists());
        assert_eq!(
            obs["commit"]["changes"]["existing.txt"]["move_path"],
            "moved/e.txt"
        );
    }

    #[test]
    fn fuzz_and_context_errors() {
        let ws = Ws::new();
        ws.write("fuzz.txt", "a\ncontext line   \nend\n");
        let obs = ws.run("*** Begin Patch\n*** Update File: fuzz.txt\n@@\n context line\n-end\n+END\n*** End Patch");
        assert_eq!(obs["fuzz"], 1);
        assert_eq!(ws.read("fuzz.txt"), "a\ncontext line   \nEND\n");
        ws.write("multi.txt", "line1\nline2\nline3\nline4\n");
        let text = ws.error("*** Begin Patch\n*** Update File: multi.txt\n@@\n line1\n-line2\n+line2a\n line3\n@@\n line3\n+line3a\n line4\n*** End Patch");
        assert_eq!(text, "Invalid Context 3:\nline3\nline4");
        assert_eq!(ws.read("multi.txt"), "line1\nline2\nline3\nline4\n");
        let text = ws.error("*** Begin Patch\n*** Update File: multi.txt\n@@\n nope\n-line9\n*** End of File\n*** End Patch");
        assert_eq!(text, "Invalid EOF Context 0:\nnope\nline9");
    }

    #[test]
    fn format_errors_use_the_reference_texts() {
        let ws = Ws::new();
        assert_eq!(
            ws.error("*** Begin Patch\n*** Delete File: missing.txt\n*** End Patch"),
            "Delete File Error: Missing File: missing.txt"
        );
        assert_eq!(ws.error("*** Begin Patch\n*** Add File: d.txt\n+one\n*** Add File: d.txt\n+two\n*** End Patch"), "Add File Error: Duplicate Path: d.txt");
        assert_eq!(
            ws.error("*** Begin Patch\n*** Add File: x\n+a\n"),
            "Invalid patch text"
        );
        // The reference asserts here and ends the run; we answer like a malformed patch.
        assert_eq!(
            ws.error("\n*** Begin Patch\n*** End Patch"),
            "Invalid patch text"
        );
        assert_eq!(
            ws.error("*** Begin Patch\nhello\n*** End Patch"),
            "Unknown Line: hello"
        );
        assert_eq!(
            ws.error("*** Begin Patch\n*** Add File: a\nno plus\n*** End Patch"),
            "Invalid Add File Line: no plus"
        );
        ws.write("u.txt", "x\n");
        assert_eq!(
            ws.error("*** Begin Patch\n*** Update File: u.txt\n@@\n x\n*** bad\n*** End Patch"),
            "Invalid Line: *** bad"
        );
        assert_eq!(
            ws.error("*** Begin Patch\n*** Update File: u.txt\n?x\n*** End Patch"),
            "Invalid Line: ?x"
        );
    }

    #[test]
    fn paths_stay_inside_the_workspace() {
        let ws = Ws::new();
        let escaping = "Absolute or escaping paths are not allowed";
        assert_eq!(
            ws.error("*** Begin Patch\n*** Add File: /etc/passwd\n+x\n*** End Patch"),
            escaping
        );
        assert_eq!(
            ws.error("*** Begin Patch\n*** Add File: ../escape.txt\n+x\n*** End Patch"),
            escaping
        );
        // A sibling sharing the root's name as a prefix is outside too.
        let sibling = format!("{}2/x.txt", ws.root.display());
        assert_eq!(
            ws.error(&format!(
                "*** Begin Patch\n*** Add File: {sibling}\n+x\n*** End Patch"
            )),
            escaping
        );
        std::os::unix::fs::symlink("/tmp", ws.root.join("out")).unwrap();
        assert_eq!(
            ws.error("*** Begin Patch\n*** Add File: out/x.txt\n+x\n*** End Patch"),
            escaping
        );
        // An absolute path inside the workspace is fine.
        let inside = format!("{}/in.txt", ws.root.display());
        ws.run(&format!(
            "*** Begin Patch\n*** Add File: {inside}\n+ok\n*** End Patch"
        ));
        assert_eq!(ws.read("in.txt"), "ok");
        // Nothing is written when a later path is refused.
        assert_eq!(ws.error("*** Begin Patch\n*** Add File: first.txt\n+1\n*** Add File: ../second.txt\n+2\n*** End Patch"), escaping);
        assert!(!ws.root.join("first.txt").exists());
    }

    #[test]
    fn awkward_files() {
        let ws = Ws::new();
        fs::write(ws.root.join("bin.dat"), [0x89u8, b'P', b'N', b'G', 0, 1]).unwrap();
        let err = apply(
            &json!({"patch": "*** Begin Patch\n*** Update File: bin.dat\n@@\n-x\n*** End Patch"}),
            &ws.root,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "'utf-8' codec can't decode byte 0x89 in position 0: invalid start byte"
        );
        fs::create_dir(ws.root.join("dir")).unwrap();
        let text = ws.error("*** Begin Patch\n*** Delete File: dir\n*** End Patch");
        assert!(text.starts_with("[Errno 21] Is a directory:"), "{text}");
        ws.write("crlf.txt", "a\r\nb\r\n");
        ws.run("*** Begin Patch\n*** Update File: crlf.txt\n@@\n a\n-b\n+B\n*** End Patch");
        assert_eq!(ws.read("crlf.txt"), "a\r\nB\r\n");
        let big = "x\n".repeat(200_000);
        ws.write("big.txt", &big);
        let obs = ws.run("*** Begin Patch\n*** Update File: big.txt\n@@\n x\n+y\n*** End Patch");
        assert_eq!(obs["is_error"], false);
        assert_eq!(
            obs["commit"]["changes"]["big.txt"]["old_content"],
            Value::Null
        );
    }
}
