//! The `file_editor` tool: executes a validated `FileEditorAction` against the local file
//! system and builds its `FileEditorObservation` (contract §3.4).
//!
//! One [`FileEditor`] lives per conversation and keeps, in memory, an undo history of the
//! last 10 versions of every file it changed. The result and error texts are protocol
//! behaviour that clients and LLM prompts rely on, so they reproduce the reference's
//! exactly (`cat -n` numbering, the `view_range`/`insert_line` checks, the directory
//! listing, the validation errors). Files are written atomically (temp file and rename in
//! the same directory, permissions kept, symlinks followed).
//!
//! Deliberate departures from the reference, each where it would corrupt data, hang or
//! break the client's 1 MiB frame limit: CRLF line ends and single-byte encodings are kept
//! when a file is rewritten; `insert` after a last line without a newline ends that line
//! first; an empty `old_str` on a non-empty file is refused; the line list of a
//! multiple-match error stops after 100 entries; non-regular files (FIFOs, devices) and
//! images over 512 KiB are refused; `old_content`/`new_content` are dropped when large.
//!
//! Everything here is blocking I/O: the caller must run [`FileEditor::execute`] on a
//! blocking thread, never on an async executor thread. This module does not parse tool
//! calls (see `catalog`) and does not emit events.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

use crate::tools::content::Content;

/// Undo entries kept per file.
const MAX_HISTORY_PER_FILE: usize = 10;
/// Files larger than this are refused (the reference's limit).
const MAX_FILE_SIZE: u64 = 10 * 1024 * 1024;
/// Output longer than this (in characters) is clipped in the middle.
const MAX_RESPONSE_LEN_CHAR: usize = 16_000;
/// Lines of context around an edit in the success snippet.
const SNIPPET_CONTEXT_WINDOW: usize = 4;
/// An observation event must stay well below the client's 1 MiB WebSocket frame limit
/// (contract §1.6), but `old_content`/`new_content` carry whole files of up to 10 MB. When
/// the two together exceed this many bytes both are set to null; JSON escaping can at
/// most roughly double them, which still leaves room for the rest of the event.
const MAX_INLINE_CONTENT_BYTES: usize = 256 * 1024;
/// Images are inlined as base64 `data:` URLs (4/3 of their size); above this size the
/// observation event would approach the 1 MiB frame limit, so they are refused.
const MAX_IMAGE_BYTES: u64 = 512 * 1024;

const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "gif", "webp", "bmp"];

const ERROR_HEADER: &str = "[An error occurred during execution.]\n";
const COMMANDS: [&str; 5] = ["view", "create", "str_replace", "insert", "undo_edit"];

const TEXT_FILE_CLIPPED_NOTICE: &str = "<response clipped><NOTE>This file is longer than the \
output limit, so only part of it is shown. Use `grep -n` to find the line numbers you need, \
then view just those lines with `view_range`.</NOTE>";
const DIRECTORY_CLIPPED_NOTICE: &str = "<response clipped><NOTE>This listing is longer than \
the output limit, so only part of it is shown. List big directories a little at a time with \
`ls -la` instead.</NOTE>";

/// The result of one `file_editor` action.
#[derive(Debug, Clone, PartialEq)]
pub struct FileEditorObservation {
    /// Text (and, for images, image) blocks.
    pub content: Vec<Content>,
    /// Whether the action failed.
    pub is_error: bool,
    /// The command that ran (one of the five `FileEditorAction` commands).
    pub command: String,
    /// The path acted on; `None` when the action failed.
    pub path: Option<String>,
    /// Whether the file existed before (false only after `create`).
    pub prev_exist: bool,
    /// The whole file before the edit, when small enough to inline.
    pub old_content: Option<String>,
    /// The whole file after the edit (or created), when small enough to inline.
    pub new_content: Option<String>,
}

impl FileEditorObservation {
    fn success(command: &str, path: &str, text: String) -> Self {
        Self {
            content: vec![Content::text(text)],
            is_error: false,
            command: command.to_string(),
            path: Some(path.to_string()),
            prev_exist: true,
            old_content: None,
            new_content: None,
        }
    }

    /// An error result: like the reference, it carries no path and no file contents.
    fn error(command: &str, message: String) -> Self {
        Self {
            content: vec![Content::text(message)],
            is_error: true,
            command: command.to_string(),
            path: None,
            prev_exist: true,
            old_content: None,
            new_content: None,
        }
    }

    fn with_contents(mut self, old: Option<String>, new: Option<String>) -> Self {
        let size = old.as_ref().map_or(0, String::len) + new.as_ref().map_or(0, String::len);
        if size <= MAX_INLINE_CONTENT_BYTES {
            self.old_content = old;
            self.new_content = new;
        }
        self
    }

    /// The observation JSON, keys in the reference's order with `kind` last:
    /// `{"content","is_error","command","path","prev_exist","old_content","new_content","kind"}`.
    pub fn to_json(&self) -> Value {
        let mut obs = Map::new();
        obs.insert(
            "content".into(),
            Value::Array(self.content.iter().map(Content::to_json).collect()),
        );
        obs.insert("is_error".into(), Value::Bool(self.is_error));
        obs.insert("command".into(), Value::String(self.command.clone()));
        obs.insert("path".into(), opt_string(&self.path));
        obs.insert("prev_exist".into(), Value::Bool(self.prev_exist));
        obs.insert("old_content".into(), opt_string(&self.old_content));
        obs.insert("new_content".into(), opt_string(&self.new_content));
        obs.insert("kind".into(), Value::String("FileEditorObservation".into()));
        Value::Object(obs)
    }

    /// The text the LLM sees: the text blocks, after the error header when `is_error`.
    pub fn llm_text(&self) -> String {
        let mut out = String::new();
        if self.is_error {
            out.push_str(ERROR_HEADER);
        }
        for block in &self.content {
            if let Some(text) = block.as_text() {
                out.push_str(text);
            }
        }
        out
    }

    /// The blocks the LLM sees, images included: the error header as its own text block
    /// first when `is_error`, then `content` (the reference's default `to_llm_content`).
    pub fn llm_content(&self) -> Vec<Content> {
        let mut out = Vec::with_capacity(self.content.len() + 1);
        if self.is_error {
            out.push(Content::text(ERROR_HEADER));
        }
        out.extend(self.content.iter().cloned());
        out
    }
}

fn opt_string(s: &Option<String>) -> Value {
    s.as_ref().map_or(Value::Null, |s| Value::String(s.clone()))
}

/// A failed action; its message is the observation text.
struct ToolError(String);

type ToolResult<T> = Result<T, ToolError>;

fn invalid(parameter: &str, value: &str, hint: &str) -> ToolError {
    ToolError(format!("Invalid `{parameter}` parameter: {value}. {hint}"))
}

fn missing(command: &str, parameter: &str) -> ToolError {
    ToolError(format!(
        "Parameter `{parameter}` is required for command: {command}."
    ))
}

fn validation_failed(path: &str, reason: &str) -> ToolError {
    ToolError(format!("File validation failed for {path}: {reason}"))
}

/// The arguments of a `FileEditorAction`, read from its JSON.
struct Args {
    command: String,
    path: String,
    file_text: Option<String>,
    old_str: Option<String>,
    new_str: Option<String>,
    insert_line: Option<i64>,
    view_range: Option<Vec<i64>>,
}

impl Args {
    fn from_json(action: &Value) -> Result<Self, String> {
        let text = |key: &str| -> Result<Option<String>, String> {
            match action.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(format!("`{key}` must be a string, got {other}")),
            }
        };
        let command = text("command")?.ok_or("`command` is missing")?;
        let path = text("path")?.ok_or("`path` is missing")?;
        let insert_line = match action.get("insert_line") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().ok_or("`insert_line` must be an integer")?),
        };
        let view_range = match action.get("view_range") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|v| v.as_i64().ok_or("`view_range` must hold integers"))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => return Err("`view_range` must be a list of integers".into()),
        };
        Ok(Self {
            command,
            path,
            file_text: text("file_text")?,
            old_str: text("old_str")?,
            new_str: text("new_str")?,
            insert_line,
            view_range,
        })
    }
}

/// The per-conversation file editor: executes `FileEditorAction`s and remembers the
/// previous versions of the files it edited, for `undo_edit`.
#[derive(Debug, Default)]
pub struct FileEditor {
    history: HashMap<String, VecDeque<String>>,
}

impl FileEditor {
    /// An editor with an empty undo history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Executes one `FileEditorAction` (its JSON, as built by `catalog::parse_tool_call`).
    /// `cwd` is the conversation's absolute working directory, used only to suggest an
    /// absolute path when a relative one was given. Blocking: run it off the async threads.
    pub fn execute(&mut self, action: &Value, cwd: &Path) -> FileEditorObservation {
        let args = match Args::from_json(action) {
            Ok(args) => args,
            Err(reason) => {
                let command = action
                    .get("command")
                    .and_then(Value::as_str)
                    .filter(|c| COMMANDS.contains(c))
                    .unwrap_or("view");
                return FileEditorObservation::error(
                    command,
                    format!("Invalid file_editor action: {reason}"),
                );
            }
        };
        if !COMMANDS.contains(&args.command.as_str()) {
            // The observation's `command` must be one of the five literals for the client.
            return FileEditorObservation::error(
                "view",
                format!(
                    "Unrecognized command {}. The allowed commands for the file_editor tool \
                     are: {}",
                    args.command,
                    COMMANDS.join(", ")
                ),
            );
        }
        match self.run(&args, cwd) {
            Ok(obs) => obs,
            Err(ToolError(message)) => FileEditorObservation::error(&args.command, message),
        }
    }

    fn run(&mut self, args: &Args, cwd: &Path) -> ToolResult<FileEditorObservation> {
        let path = normalize_path(&args.path);
        let shown = path.to_string_lossy().into_owned();
        validate_path(&args.command, &path, &shown, cwd)?;
        match args.command.as_str() {
            "view" => view(&path, &shown, args.view_range.as_deref()),
            "create" => {
                let text = args
                    .file_text
                    .as_ref()
                    .ok_or_else(|| missing("create", "file_text"))?;
                write_text(&path, &shown, text, None)?;
                // Quirk kept from the reference: `create` records the new text, so an undo
                // right after it rewrites the same content.
                self.push_history(&shown, text.clone());
                let mut obs = FileEditorObservation::success(
                    "create",
                    &shown,
                    format!("File created successfully at: {shown}"),
                )
                .with_contents(None, Some(text.clone()));
                obs.prev_exist = false;
                Ok(obs)
            }
            "str_replace" => {
                let old_str = args
                    .old_str
                    .as_deref()
                    .ok_or_else(|| missing("str_replace", "old_str"))?;
                let new_str = args
                    .new_str
                    .as_deref()
                    .ok_or_else(|| missing("str_replace", "new_str"))?;
                if old_str == new_str {
                    return Err(invalid(
                        "new_str",
                        new_str,
                        "No replacement was performed. `new_str` and `old_str` must be \
                         different.",
                    ));
                }
                self.str_replace(&path, &shown, old_str, new_str)
            }
            "insert" => {
                let line = args
                    .insert_line
                    .ok_or_else(|| missing("insert", "insert_line"))?;
                let new_str = args
                    .new_str
                    .as_deref()
                    .ok_or_else(|| missing("insert", "new_str"))?;
                self.insert(&path, &shown, line, new_str)
            }
            _ => self.undo_edit(&path, &shown),
        }
    }

    fn push_history(&mut self, key: &str, content: String) {
        let entries = self.history.entry(key.to_string()).or_default();
        entries.push_back(content);
        while entries.len() > MAX_HISTORY_PER_FILE {
            entries.pop_front();
        }
    }

    fn str_replace(
        &mut self,
        path: &Path,
        shown: &str,
        old_str: &str,
        new_str: &str,
    ) -> ToolResult<FileEditorObservation> {
        let file = read_text(path, shown)?;
        let content = &file.text;
        let (mut old_str, mut new_str) = (old_str, new_str);
        let mut matches: Vec<usize> = content.match_indices(old_str).map(|(i, _)| i).collect();
        if matches.is_empty() {
            // Often the only difference is surrounding whitespace: retry without it.
            old_str = old_str.trim();
            new_str = new_str.trim();
            matches = content.match_indices(old_str).map(|(i, _)| i).collect();
            if matches.is_empty() {
                return Err(ToolError(format!(
                    "No replacement was performed, old_str `{old_str}` did not appear \
                     verbatim in {shown}."
                )));
            }
        }
        if old_str.is_empty() && !content.is_empty() {
            // An empty pattern matches between every two characters; the reference would
            // list every line of the file, which can exceed the event size limit.
            return Err(ToolError(format!(
                "No replacement was performed. old_str is empty or only whitespace; give the \
                 exact text to replace in {shown}."
            )));
        }
        let line_of = |idx: usize| content[..idx].matches('\n').count() + 1;
        if matches.len() > 1 {
            let lines = match_lines(content, &matches);
            return Err(ToolError(format!(
                "No replacement was performed. Multiple occurrences of old_str `{old_str}` in \
                 lines {lines}. Please ensure it is unique."
            )));
        }
        let idx = matches[0];
        let new_content = format!(
            "{}{}{}",
            &content[..idx],
            new_str,
            &content[idx + old_str.len()..]
        );
        write_text(path, shown, &new_content, Some(&file))?;
        self.push_history(shown, content.clone());

        let replacement_line = line_of(idx);
        let start = replacement_line.saturating_sub(SNIPPET_CONTEXT_WINDOW);
        let end = replacement_line + SNIPPET_CONTEXT_WINDOW + new_str.matches('\n').count();
        let snippet = line_slice(&new_content, start + 1, end);
        let text = format!(
            "The file {shown} has been edited. {}Review the changes and make sure they are as \
             expected. Edit the file again if necessary.",
            make_output(&snippet, &format!("a snippet of {shown}"), start + 1)
        );
        Ok(FileEditorObservation::success("str_replace", shown, text)
            .with_contents(Some(file.text.clone()), Some(new_content)))
    }

    fn insert(
        &mut self,
        path: &Path,
        shown: &str,
        insert_line: i64,
        new_str: &str,
    ) -> ToolResult<FileEditorObservation> {
        let file = read_text(path, shown)?;
        let num_lines = count_lines(&file.text);
        let line = usize::try_from(insert_line)
            .ok()
            .filter(|&l| l <= num_lines)
            .ok_or_else(|| {
                invalid(
                    "insert_line",
                    &insert_line.to_string(),
                    &format!("It should be within the range of allowed values: [0, {num_lines}]"),
                )
            })?;
        let lines = lines_with_ends(&file.text);
        let new_lines: Vec<&str> = new_str.split('\n').collect();
        let mut new_content = String::with_capacity(file.text.len() + new_str.len() + 1);
        for l in &lines[..line] {
            new_content.push_str(l);
        }
        // The reference glues the insertion onto a last line that has no newline; we end
        // that line first so its text is not merged with the inserted line.
        if line > 0 && line == lines.len() && !new_content.ends_with('\n') {
            new_content.push('\n');
        }
        for l in &new_lines {
            new_content.push_str(l);
            new_content.push('\n');
        }
        for l in &lines[line..] {
            new_content.push_str(l);
        }
        write_text(path, shown, &new_content, Some(&file))?;
        self.push_history(shown, file.text.clone());

        let start = line.saturating_sub(SNIPPET_CONTEXT_WINDOW);
        let end =
            (num_lines + new_lines.len()).min(line + SNIPPET_CONTEXT_WINDOW + new_lines.len());
        let snippet = line_slice(&new_content, start + 1, end);
        let text = format!(
            "The file {shown} has been edited. {}Review the changes and make sure they are as \
             expected (correct indentation, no duplicate lines, etc). Edit the file again if \
             necessary.",
            make_output(&snippet, "a snippet of the edited file", start + 1)
        );
        Ok(FileEditorObservation::success("insert", shown, text)
            .with_contents(Some(file.text.clone()), Some(new_content)))
    }

    fn undo_edit(&mut self, path: &Path, shown: &str) -> ToolResult<FileEditorObservation> {
        let current = read_text(path, shown)?;
        let previous = self
            .history
            .get_mut(shown)
            .and_then(VecDeque::pop_back)
            .ok_or_else(|| ToolError(format!("No edit history found for {shown}.")))?;
        write_text(path, shown, &previous, Some(&current))?;
        let text = format!(
            "Last edit to {shown} undone successfully. {}",
            make_output(&previous, shown, 1)
        );
        Ok(FileEditorObservation::success("undo_edit", shown, text)
            .with_contents(Some(current.text.clone()), Some(previous)))
    }
}

/// `pathlib.Path` normalization: repeated and trailing separators and `.` components go.
fn normalize_path(raw: &str) -> PathBuf {
    let normalized: PathBuf = Path::new(raw)
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    if normalized.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        normalized
    }
}

fn validate_path(command: &str, path: &Path, shown: &str, cwd: &Path) -> ToolResult<()> {
    if !path.is_absolute() {
        let mut hint = "The path should be an absolute path.".to_string();
        let suggested = cwd.join(path);
        if suggested.exists() {
            hint.push_str(&format!(" Maybe you meant {}?", suggested.display()));
        }
        return Err(invalid("path", shown, &hint));
    }
    let exists = path.exists();
    if command == "create" && exists {
        return Err(invalid(
            "path",
            shown,
            &format!(
                "File already exists at: {shown}. Cannot overwrite files using command `create`."
            ),
        ));
    }
    if command != "create" && !exists {
        return Err(invalid(
            "path",
            shown,
            &format!("The path {shown} does not exist. Please provide a valid path."),
        ));
    }
    if command != "view" && path.is_dir() {
        return Err(invalid(
            "path",
            shown,
            &format!(
                "The path {shown} is a directory and only the `view` command can be used on \
                 directories."
            ),
        ));
    }
    Ok(())
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Size, file-type and binary checks before a file is read or edited.
fn validate_file(path: &Path, shown: &str) -> ToolResult<()> {
    let Ok(meta) = fs::metadata(path) else {
        return Ok(());
    };
    if meta.is_dir() {
        return Ok(());
    }
    // Devices and FIFOs would block or never end; the reference would hang on them.
    if !meta.is_file() {
        return Err(validation_failed(
            shown,
            "Not a regular file; only regular files and directories can be viewed or edited.",
        ));
    }
    if meta.len() > MAX_FILE_SIZE {
        return Err(validation_failed(
            shown,
            &format!(
                "File is too large ({:.1}MB). Maximum allowed size is {}MB.",
                meta.len() as f64 / 1024.0 / 1024.0,
                MAX_FILE_SIZE / 1024 / 1024
            ),
        ));
    }
    if !is_image(path) && starts_binary(path).map_err(|e| read_error(&e, shown))? {
        return Err(validation_failed(
            shown,
            "File appears to be binary and this file type cannot be read or edited by this \
             tool.",
        ));
    }
    Ok(())
}

/// Looks at the first KiB, like the reference's `binaryornot`: NUL bytes, or a high share
/// of control bytes, or bytes that are neither UTF-8 nor plausible single-byte text.
pub(crate) fn starts_binary(path: &Path) -> io::Result<bool> {
    let mut chunk = Vec::with_capacity(1024);
    fs::File::open(path)?.take(1024).read_to_end(&mut chunk)?;
    Ok(looks_binary(&chunk))
}

fn looks_binary(chunk: &[u8]) -> bool {
    if chunk.is_empty() {
        return false;
    }
    if chunk.contains(&0) {
        return true;
    }
    let control = chunk
        .iter()
        .filter(|&&b| matches!(b, 0x01..=0x07 | 0x0e..=0x1a | 0x1c..=0x1f | 0x7f))
        .count();
    if control * 10 > chunk.len() * 3 {
        return true;
    }
    let utf8 = match std::str::from_utf8(chunk) {
        Ok(_) => true,
        // The chunk may end in the middle of a multi-byte character.
        Err(e) => e.error_len().is_none(),
    };
    !utf8 && chunk.contains(&0xff)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Latin1,
}

/// A text file as the editor sees it: `\n` line ends, plus what is needed to write it
/// back the way it was stored.
struct TextFile {
    text: String,
    encoding: Encoding,
    crlf: bool,
}

fn read_error(e: &io::Error, shown: &str) -> ToolError {
    ToolError(format!(
        "Ran into {} while trying to read {shown}",
        py_os_error(e, shown)
    ))
}

fn read_text(path: &Path, shown: &str) -> ToolResult<TextFile> {
    validate_file(path, shown)?;
    let bytes = fs::read(path).map_err(|e| read_error(&e, shown))?;
    let (raw, encoding) = match String::from_utf8(bytes) {
        Ok(s) => (s, Encoding::Utf8),
        // Not UTF-8 but not binary either: a legacy single-byte encoding, which Latin-1
        // decodes (and re-encodes) without loss.
        Err(e) => (
            e.into_bytes().iter().map(|&b| char::from(b)).collect(),
            Encoding::Latin1,
        ),
    };
    let crlf = raw.contains("\r\n");
    // Universal newlines, as the reference reads text: CRLF and lone CR become LF.
    let text = if raw.contains('\r') {
        raw.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        raw
    };
    Ok(TextFile {
        text,
        encoding,
        crlf,
    })
}

/// Writes `text` with the line ends and encoding of `like` (the file's previous version),
/// or as UTF-8 with `\n` for a new file.
fn write_text(path: &Path, shown: &str, text: &str, like: Option<&TextFile>) -> ToolResult<()> {
    let write_error = |detail: String| {
        ToolError(format!(
            "Ran into {detail} while trying to write to {shown}"
        ))
    };
    let text = match like {
        Some(f) if f.crlf => text.replace('\n', "\r\n"),
        _ => text.to_string(),
    };
    let bytes = match like.map_or(Encoding::Utf8, |f| f.encoding) {
        Encoding::Utf8 => text.into_bytes(),
        Encoding::Latin1 => text
            .chars()
            .map(|c| u8::try_from(u32::from(c)))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| {
                write_error("a character that this file's single-byte encoding cannot store".into())
            })?,
    };
    write_atomic(path, &bytes).map_err(|e| write_error(py_os_error(&e, shown)))
}

/// Replaces `path` atomically: writes a temporary file in the same directory (with the
/// old file's permissions) and renames it over the target. A symlink is followed, so the
/// link stays a link. Used by the task tracker too.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (target, permissions) = match fs::metadata(path) {
        Ok(meta) => (fs::canonicalize(path)?, Some(meta.permissions())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (path.to_path_buf(), None),
        Err(e) => return Err(e),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        if let Some(permissions) = permissions {
            file.set_permissions(permissions)?;
        }
        file.sync_all()?;
        fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Python's rendering of an `OSError`: `[Errno 2] No such file or directory: '/x'`.
fn py_os_error(e: &io::Error, path: &str) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let text = e.to_string();
            let strerror = text
                .strip_suffix(&format!(" (os error {code})"))
                .unwrap_or(&text);
            format!("[Errno {code}] {strerror}: '{path}'")
        }
        None => e.to_string(),
    }
}

/// Lines as Python counts them when iterating a file.
fn count_lines(text: &str) -> usize {
    let newlines = text.matches('\n').count();
    if text.is_empty() || text.ends_with('\n') {
        newlines
    } else {
        newlines + 1
    }
}

/// The lines of `text`, each with its `\n` if it has one.
fn lines_with_ends(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// Lines `start..=end` (1-based) of `text`, with their line ends.
fn line_slice(text: &str, start: usize, end: usize) -> String {
    lines_with_ends(text)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| (start..=end).contains(&(i + 1)))
        .map(|(_, l)| l)
        .collect()
}

/// Keeps the head and the tail of `content` and puts `notice` in the middle when it is
/// longer than `limit` characters.
fn maybe_truncate(content: &str, limit: usize, notice: &str) -> String {
    let len = content.chars().count();
    if len <= limit {
        return content.to_string();
    }
    let notice_len = notice.chars().count();
    if notice_len >= limit {
        return notice.chars().take(limit).collect();
    }
    let available = limit - notice_len;
    let head = available.div_ceil(2);
    let tail = available - head;
    let head_text: String = content.chars().take(head).collect();
    let tail_text: String = content.chars().skip(len - tail).collect();
    format!("{head_text}{notice}{tail_text}")
}

/// `cat -n` style output: a 6-wide right-aligned number, a TAB, the line.
fn make_output(content: &str, description: &str, start_line: usize) -> String {
    let content = maybe_truncate(content, MAX_RESPONSE_LEN_CHAR, TEXT_FILE_CLIPPED_NOTICE);
    let mut out = format!("Here's the result of running `cat -n` on {description}:\n");
    for (i, line) in content.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("{:6}\t{line}", i + start_line));
    }
    out.push('\n');
    out
}

/// The distinct line numbers of the match offsets (ascending), as a Python list. Past
/// `MAX_LISTED_LINES` the list ends in `...` so the message stays small.
fn match_lines(content: &str, offsets: &[usize]) -> String {
    const MAX_LISTED_LINES: usize = 100;
    let mut lines: Vec<usize> = Vec::new();
    let (mut line, mut scanned, mut clipped) = (1, 0, false);
    for &offset in offsets {
        line += content[scanned..offset].matches('\n').count();
        scanned = offset;
        if lines.last() != Some(&line) {
            if lines.len() == MAX_LISTED_LINES {
                clipped = true;
                break;
            }
            lines.push(line);
        }
    }
    let mut items: Vec<String> = lines.iter().map(usize::to_string).collect();
    if clipped {
        items.push("...".to_string());
    }
    format!("[{}]", items.join(", "))
}

fn py_int_list(items: impl Iterator<Item = i64>) -> String {
    format!(
        "[{}]",
        items.map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
    )
}

fn view(path: &Path, shown: &str, view_range: Option<&[i64]>) -> ToolResult<FileEditorObservation> {
    // An empty list counts as no range, as in the reference.
    let view_range = view_range.filter(|r| !r.is_empty());
    if path.is_dir() {
        if let Some(range) = view_range {
            return Err(invalid(
                "view_range",
                &py_int_list(range.iter().copied()),
                "The `view_range` parameter is not allowed when `path` points to a directory.",
            ));
        }
        return Ok(view_directory(path, shown));
    }
    if is_image(path) {
        return view_image(path, shown);
    }
    let file = read_text(path, shown)?;
    let num_lines = count_lines(&file.text);
    let Some(range) = view_range else {
        return Ok(FileEditorObservation::success(
            "view",
            shown,
            make_output(&file.text, shown, 1),
        ));
    };
    let range_text = py_int_list(range.iter().copied());
    let [start, end] = range else {
        return Err(invalid(
            "view_range",
            &range_text,
            "It should be a list of two integers.",
        ));
    };
    let (start, mut end) = (*start, *end);
    let n = num_lines as i64;
    if start < 1 || start > n {
        return Err(invalid(
            "view_range",
            &range_text,
            &format!(
                "Its first element `{start}` should be within the range of lines of the file: \
                 [1, {n}]."
            ),
        ));
    }
    let mut note = None;
    if end == -1 {
        end = n;
    } else if end > n {
        note = Some(format!(
            "NOTE: We only show up to {n} since there're only {n} lines in this file.\n"
        ));
        end = n;
    }
    if end < start {
        return Err(invalid(
            "view_range",
            &range_text,
            &format!(
                "Its second element `{end}` should be greater than or equal to the first \
                 element `{start}`."
            ),
        ));
    }
    // Both bounds are within 1..=n here, so the casts cannot wrap.
    let slice = line_slice(&file.text, start as usize, end as usize);
    let body = slice.strip_suffix('\n').unwrap_or(&slice);
    let output = make_output(body, shown, start as usize);
    Ok(FileEditorObservation::success(
        "view",
        shown,
        format!("{}{output}", note.unwrap_or_default()),
    ))
}

fn view_image(path: &Path, shown: &str) -> ToolResult<FileEditorObservation> {
    let failed = |detail: String| ToolError(format!("Failed to read image file {shown}: {detail}"));
    let meta = fs::metadata(path).map_err(|e| failed(py_os_error(&e, shown)))?;
    if !meta.is_file() {
        return Err(validation_failed(
            shown,
            "Not a regular file; only regular files and directories can be viewed or edited.",
        ));
    }
    let size = meta.len();
    if size > MAX_IMAGE_BYTES {
        return Err(validation_failed(
            shown,
            &format!(
                "Image is too large to display ({:.1}MB). Maximum allowed size is {:.1}MB.",
                size as f64 / 1024.0 / 1024.0,
                MAX_IMAGE_BYTES as f64 / 1024.0 / 1024.0
            ),
        ));
    }
    let bytes = fs::read(path).map_err(|e| failed(py_os_error(&e, shown)))?;
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mime = match extension.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        _ => "image/png",
    };
    let mut obs = FileEditorObservation::success(
        "view",
        shown,
        format!("Image file {shown} read successfully. Displaying image content."),
    );
    obs.content.push(Content::image(vec![format!(
        "data:{mime};base64,{}",
        base64(&bytes)
    )]));
    Ok(obs)
}

fn view_directory(path: &Path, shown: &str) -> FileEditorObservation {
    let listing = match list_directory(path, shown) {
        Ok(listing) => listing,
        // The one error the reference reports with its path set.
        Err(e) => {
            let mut obs = FileEditorObservation::error("view", py_os_error(&e, shown));
            obs.path = Some(shown.to_string());
            return obs;
        }
    };
    let mut text = format!(
        "Here's the files and directories up to 2 levels deep in {shown}, excluding hidden \
         items:\n{}",
        listing.lines.join("\n")
    );
    if listing.hidden > 0 {
        text.push_str(&format!(
            "\n\n{} hidden files/directories in this directory are excluded. You can use \
             'ls -la {shown}' to see them.",
            listing.hidden
        ));
    }
    FileEditorObservation::success(
        "view",
        shown,
        maybe_truncate(&text, MAX_RESPONSE_LEN_CHAR, DIRECTORY_CLIPPED_NOTICE),
    )
}

struct Listing {
    lines: Vec<String>,
    hidden: usize,
}

/// Children of `dir` as (name, path), sorted by name.
fn sorted_children(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let mut children = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        children.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.path(),
        ));
    }
    children.sort();
    Ok(children)
}

fn list_directory(root: &Path, shown: &str) -> io::Result<Listing> {
    let children = sorted_children(root)?;
    let hidden = children.iter().filter(|(n, _)| n.starts_with('.')).count();
    let base = shown.trim_end_matches('/');
    let mut lines = vec![format!("{base}/")];
    let entry_line = |relative: &str, p: &Path| {
        let slash = if p.is_dir() { "/" } else { "" };
        format!("{base}/{relative}{slash}")
    };
    for (name, child) in children.iter().filter(|(n, _)| !n.starts_with('.')) {
        lines.push(entry_line(name, child));
        if child.is_dir() {
            // An unreadable subdirectory is listed without its children.
            if let Ok(grandchildren) = sorted_children(child) {
                for (grand_name, grand) in grandchildren.iter().filter(|(n, _)| !n.starts_with('.'))
                {
                    lines.push(entry_line(&format!("{name}/{grand_name}"), grand));
                }
            }
        }
    }
    Ok(Listing { lines, hidden })
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    struct Fixture {
        dir: tempfile::TempDir,
        editor: FileEditor,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                dir: tempfile::tempdir().unwrap(),
                editor: FileEditor::new(),
            }
        }

        fn path(&self, name: &str) -> String {
            self.dir.path().join(name).to_string_lossy().into_owned()
        }

        fn write(&self, name: &str, content: &str) -> String {
            let p = self.path(name);
            fs::write(&p, content).unwrap();
            p
        }

        fn run(&mut self, action: Value) -> FileEditorObservation {
            let cwd = self.dir.path().to_path_buf();
            self.editor.execute(&action, &cwd)
        }

        fn text(&mut self, action: Value) -> String {
            let obs = self.run(action);
            assert!(!obs.is_error, "unexpected error: {}", obs.llm_text());
            obs.content[0].as_text().unwrap().to_string()
        }

        fn error(&mut self, action: Value) -> String {
            let obs = self.run(action);
            assert!(obs.is_error, "expected an error: {}", obs.llm_text());
            assert_eq!(obs.path, None);
            obs.content[0].as_text().unwrap().to_string()
        }
    }

    fn act(command: &str, path: &str) -> Value {
        json!({"command": command, "path": path})
    }

    #[test]
    fn create_then_view_as_in_the_transcript() {
        let mut f = Fixture::new();
        let p = f.path("TODO.md");
        let content = "# TODO\n\n- [ ] Install dependencies\n";
        let obs = f.run(json!({"command": "create", "path": p, "file_text": content}));
        assert_eq!(
            serde_json::to_string(&obs.to_json()).unwrap(),
            serde_json::to_string(&json!({
                "content": [{"cache_prompt": false, "type": "text",
                             "text": format!("File created successfully at: {p}")}],
                "is_error": false, "command": "create", "path": p, "prev_exist": false,
                "old_content": null, "new_content": content, "kind": "FileEditorObservation"
            }))
            .unwrap()
        );
        assert_eq!(fs::read_to_string(&p).unwrap(), content);
        assert_eq!(
            f.text(act("view", &p)),
            format!(
                "Here's the result of running `cat -n` on {p}:\n     1\t# TODO\n     2\t\n     3\t- [ ] Install dependencies\n     4\t\n"
            )
        );
    }

    #[test]
    fn create_refuses_existing_and_needs_parent_and_text() {
        let mut f = Fixture::new();
        let p = f.write("a.txt", "x");
        assert_eq!(
            f.error(json!({"command": "create", "path": p, "file_text": "y"})),
            format!(
                "Invalid `path` parameter: {p}. File already exists at: {p}. Cannot overwrite files using command `create`."
            )
        );
        let q = f.path("b.txt");
        assert_eq!(
            f.error(act("create", &q)),
            "Parameter `file_text` is required for command: create."
        );
        let deep = f.path("no/such/dir.txt");
        assert_eq!(
            f.error(json!({"command": "create", "path": deep, "file_text": "y"})),
            format!(
                "Ran into [Errno 2] No such file or directory: '{deep}' while trying to write to {deep}"
            )
        );
    }

    #[test]
    fn view_range_rules() {
        let mut f = Fixture::new();
        let p = f.write("f.txt", "l1\nl2\nl3\nl4\n");
        let range = |r: Value| json!({"command": "view", "path": p, "view_range": r});
        assert_eq!(
            f.text(range(json!([2, 3]))),
            format!("Here's the result of running `cat -n` on {p}:\n     2\tl2\n     3\tl3\n")
        );
        assert_eq!(
            f.text(range(json!([3, -1]))),
            format!("Here's the result of running `cat -n` on {p}:\n     3\tl3\n     4\tl4\n")
        );
        assert_eq!(
            f.text(range(json!([3, 9]))),
            format!(
                "NOTE: We only show up to 4 since there're only 4 lines in this file.\nHere's the result of running `cat -n` on {p}:\n     3\tl3\n     4\tl4\n"
            )
        );
        assert_eq!(
            f.error(range(json!([0, 2]))),
            "Invalid `view_range` parameter: [0, 2]. Its first element `0` should be within the range of lines of the file: [1, 4]."
        );
        assert_eq!(
            f.error(range(json!([5, 6]))),
            "Invalid `view_range` parameter: [5, 6]. Its first element `5` should be within the range of lines of the file: [1, 4]."
        );
        assert_eq!(
            f.error(range(json!([3, 2]))),
            "Invalid `view_range` parameter: [3, 2]. Its second element `2` should be greater than or equal to the first element `3`."
        );
        assert_eq!(
            f.error(range(json!([1]))),
            "Invalid `view_range` parameter: [1]. It should be a list of two integers."
        );
        // An empty range means the whole file.
        assert!(f.text(range(json!([]))).contains("     4\tl4\n     5\t\n"));
    }

    #[test]
    fn view_without_final_newline_and_empty_file() {
        let mut f = Fixture::new();
        let p = f.write("f.txt", "a\nb");
        assert_eq!(
            f.text(act("view", &p)),
            format!("Here's the result of running `cat -n` on {p}:\n     1\ta\n     2\tb\n")
        );
        let e = f.write("e.txt", "");
        assert_eq!(
            f.text(act("view", &e)),
            format!("Here's the result of running `cat -n` on {e}:\n     1\t\n")
        );
    }

    #[test]
    fn long_files_are_clipped_with_a_grep_hint() {
        let mut f = Fixture::new();
        let line = "x".repeat(99);
        let p = f.write("big.txt", &format!("{line}\n").repeat(400));
        let text = f.text(act("view", &p));
        assert!(text.contains("<response clipped><NOTE>"));
        assert!(text.contains("`grep -n`"));
        assert!(text.len() < 16_000 + 400 * 8 + 200);
    }

    #[test]
    fn directory_listing() {
        let mut f = Fixture::new();
        let root = f.dir.path();
        fs::create_dir_all(root.join("src/inner/deep")).unwrap();
        fs::create_dir(root.join(".git")).unwrap();
        fs::write(root.join(".env"), "").unwrap();
        fs::write(root.join("b.txt"), "").unwrap();
        fs::write(root.join("a.txt"), "").unwrap();
        fs::write(root.join("src/main.rs"), "").unwrap();
        fs::write(root.join("src/.hidden"), "").unwrap();
        fs::write(root.join("src/inner/x.rs"), "").unwrap();
        let r = root.to_string_lossy().into_owned();
        assert_eq!(
            f.text(act("view", &r)),
            format!(
                "Here's the files and directories up to 2 levels deep in {r}, excluding hidden items:\n\
                 {r}/\n{r}/a.txt\n{r}/b.txt\n{r}/src/\n{r}/src/inner/\n{r}/src/main.rs\n\n\
                 2 hidden files/directories in this directory are excluded. You can use 'ls -la {r}' to see them."
            )
        );
        assert_eq!(
            f.error(json!({"command": "view", "path": r, "view_range": [1, 2]})),
            format!(
                "Invalid `view_range` parameter: [1, 2]. The `view_range` parameter is not allowed when `path` points to a directory."
            )
        );
        // A trailing slash is normalized away, and no hidden note without hidden entries.
        let src = format!("{r}/src/");
        assert_eq!(
            f.text(act("view", &src)),
            format!(
                "Here's the files and directories up to 2 levels deep in {r}/src, excluding hidden items:\n\
                 {r}/src/\n{r}/src/inner/\n{r}/src/inner/deep/\n{r}/src/inner/x.rs\n{r}/src/main.rs\n\n\
                 1 hidden files/directories in this directory are excluded. You can use 'ls -la {r}/src' to see them."
            )
        );
    }

    #[test]
    fn str_replace_success_snippet_and_contents() {
        let mut f = Fixture::new();
        let body: String = (1..=10).map(|i| format!("line {i}\n")).collect();
        let p = f.write("f.txt", &body);
        let obs = f.run(json!({"command": "str_replace", "path": p,
                               "old_str": "line 6\n", "new_str": "six\nSIX\n"}));
        assert!(!obs.is_error);
        let expected_new = body.replace("line 6\n", "six\nSIX\n");
        assert_eq!(
            obs.content[0].as_text().unwrap(),
            format!(
                "The file {p} has been edited. Here's the result of running `cat -n` on a snippet of {p}:\n\
                 \u{20}    3\tline 3\n     4\tline 4\n     5\tline 5\n     6\tsix\n     7\tSIX\n     8\tline 7\n     9\tline 8\n    10\tline 9\n    11\tline 10\n    12\t\n\
                 Review the changes and make sure they are as expected. Edit the file again if necessary."
            )
        );
        assert_eq!(obs.old_content.as_deref(), Some(body.as_str()));
        assert_eq!(obs.new_content.as_deref(), Some(expected_new.as_str()));
        assert_eq!(obs.path.as_deref(), Some(p.as_str()));
        assert!(obs.prev_exist);
        assert_eq!(fs::read_to_string(&p).unwrap(), expected_new);
    }

    #[test]
    fn str_replace_errors_and_whitespace_retry() {
        let mut f = Fixture::new();
        let p = f.write("f.txt", "foo\nbar\nbaz\nfoo\n");
        assert_eq!(
            f.error(
                json!({"command": "str_replace", "path": p, "old_str": "nope", "new_str": "x"})
            ),
            format!("No replacement was performed, old_str `nope` did not appear verbatim in {p}.")
        );
        assert_eq!(
            f.error(json!({"command": "str_replace", "path": p, "old_str": "foo", "new_str": "x"})),
            "No replacement was performed. Multiple occurrences of old_str `foo` in lines [1, 4]. Please ensure it is unique."
        );
        assert_eq!(
            f.error(
                json!({"command": "str_replace", "path": p, "old_str": "bar", "new_str": "bar"})
            ),
            "Invalid `new_str` parameter: bar. No replacement was performed. `new_str` and `old_str` must be different."
        );
        assert_eq!(
            f.error(json!({"command": "str_replace", "path": p, "new_str": "bar"})),
            "Parameter `old_str` is required for command: str_replace."
        );
        assert_eq!(
            f.error(json!({"command": "str_replace", "path": p, "old_str": "bar"})),
            "Parameter `new_str` is required for command: str_replace."
        );
        // Surrounding whitespace is dropped from both strings on the retry.
        let text = f.text(json!({"command": "str_replace", "path": p,
                                 "old_str": "  baz \n\n", "new_str": " BAZ \n"}));
        assert!(text.contains("     3\tBAZ\n"), "{text}");
        assert_eq!(fs::read_to_string(&p).unwrap(), "foo\nbar\nBAZ\nfoo\n");
    }

    #[test]
    fn str_replace_guards_against_huge_messages() {
        let mut f = Fixture::new();
        let p = f.write("many.txt", &"x\n".repeat(500));
        let msg =
            f.error(json!({"command": "str_replace", "path": p, "old_str": "x", "new_str": "y"}));
        assert!(msg.contains("in lines [1, 2, 3, "), "{msg}");
        assert!(
            msg.ends_with(", 99, 100, ...]. Please ensure it is unique."),
            "{msg}"
        );
        assert_eq!(
            f.error(json!({"command": "str_replace", "path": p, "old_str": "  ", "new_str": "y"})),
            format!(
                "No replacement was performed. old_str is empty or only whitespace; give the exact text to replace in {p}."
            )
        );
        // On an empty file the empty pattern matches once, as in the reference.
        let e = f.write("empty.txt", "");
        f.text(json!({"command": "str_replace", "path": e, "old_str": " ", "new_str": "new"}));
        assert_eq!(fs::read_to_string(&e).unwrap(), "new");
    }

    #[test]
    fn insert_and_range_check() {
        let mut f = Fixture::new();
        let p = f.write("f.txt", "a\nb\nc\nd\n");
        assert_eq!(
            f.error(json!({"command": "insert", "path": p, "insert_line": 99, "new_str": "x"})),
            "Invalid `insert_line` parameter: 99. It should be within the range of allowed values: [0, 4]"
        );
        assert_eq!(
            f.error(json!({"command": "insert", "path": p, "new_str": "x"})),
            "Parameter `insert_line` is required for command: insert."
        );
        assert_eq!(
            f.error(json!({"command": "insert", "path": p, "insert_line": 1})),
            "Parameter `new_str` is required for command: insert."
        );
        let obs =
            f.run(json!({"command": "insert", "path": p, "insert_line": 1, "new_str": "X\nY"}));
        assert_eq!(
            obs.content[0].as_text().unwrap(),
            format!(
                "The file {p} has been edited. Here's the result of running `cat -n` on a snippet of the edited file:\n\
                 \u{20}    1\ta\n     2\tX\n     3\tY\n     4\tb\n     5\tc\n     6\td\n     7\t\n\
                 Review the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). Edit the file again if necessary."
            )
        );
        assert_eq!(fs::read_to_string(&p).unwrap(), "a\nX\nY\nb\nc\nd\n");
        assert_eq!(obs.old_content.as_deref(), Some("a\nb\nc\nd\n"));
        f.text(json!({"command": "insert", "path": p, "insert_line": 0, "new_str": "top"}));
        assert!(fs::read_to_string(&p).unwrap().starts_with("top\na\n"));
    }

    #[test]
    fn insert_after_a_last_line_without_newline() {
        let mut f = Fixture::new();
        let p = f.write("f.txt", "a\nb");
        f.text(json!({"command": "insert", "path": p, "insert_line": 2, "new_str": "c"}));
        assert_eq!(fs::read_to_string(&p).unwrap(), "a\nb\nc\n");
    }

    #[test]
    fn undo_history() {
        let mut f = Fixture::new();
        let p = f.path("u.txt");
        assert_eq!(
            f.error(act("undo_edit", &f.write("other.txt", "z"))),
            format!("No edit history found for {}.", f.path("other.txt"))
        );
        f.text(json!({"command": "create", "path": p, "file_text": "one\n"}));
        f.text(json!({"command": "str_replace", "path": p, "old_str": "one", "new_str": "two"}));
        f.text(json!({"command": "insert", "path": p, "insert_line": 1, "new_str": "three"}));
        assert_eq!(fs::read_to_string(&p).unwrap(), "two\nthree\n");

        let obs = f.run(act("undo_edit", &p));
        assert_eq!(
            obs.content[0].as_text().unwrap(),
            format!(
                "Last edit to {p} undone successfully. Here's the result of running `cat -n` on {p}:\n     1\ttwo\n     2\t\n"
            )
        );
        assert_eq!(obs.old_content.as_deref(), Some("two\nthree\n"));
        assert_eq!(obs.new_content.as_deref(), Some("two\n"));
        f.text(act("undo_edit", &p));
        assert_eq!(fs::read_to_string(&p).unwrap(), "one\n");
        // The quirk: create recorded the created text, so this undo rewrites it.
        f.text(act("undo_edit", &p));
        assert_eq!(fs::read_to_string(&p).unwrap(), "one\n");
        assert_eq!(
            f.error(act("undo_edit", &p)),
            format!("No edit history found for {p}.")
        );
    }

    #[test]
    fn history_keeps_the_last_ten() {
        let mut f = Fixture::new();
        let p = f.write("h.txt", "v0\n");
        for i in 0..12 {
            f.text(json!({"command": "str_replace", "path": p,
                          "old_str": format!("v{i}"), "new_str": format!("v{}", i + 1)}));
        }
        for _ in 0..10 {
            f.text(act("undo_edit", &p));
        }
        assert_eq!(fs::read_to_string(&p).unwrap(), "v2\n");
        assert!(f.run(act("undo_edit", &p)).is_error);
    }

    #[test]
    fn path_validation_errors() {
        let mut f = Fixture::new();
        f.write("rel.txt", "x");
        let cwd = f.dir.path().to_string_lossy().into_owned();
        assert_eq!(
            f.error(act("view", "rel.txt")),
            format!(
                "Invalid `path` parameter: rel.txt. The path should be an absolute path. Maybe you meant {cwd}/rel.txt?"
            )
        );
        assert_eq!(
            f.error(act("view", "nothere.txt")),
            "Invalid `path` parameter: nothere.txt. The path should be an absolute path."
        );
        let gone = f.path("gone.txt");
        assert_eq!(
            f.error(act("view", &gone)),
            format!(
                "Invalid `path` parameter: {gone}. The path {gone} does not exist. Please provide a valid path."
            )
        );
        assert_eq!(
            f.error(json!({"command": "str_replace", "path": cwd, "old_str": "a", "new_str": "b"})),
            format!(
                "Invalid `path` parameter: {cwd}. The path {cwd} is a directory and only the `view` command can be used on directories."
            )
        );
    }

    #[test]
    fn binary_and_oversized_files_are_refused() {
        let mut f = Fixture::new();
        let bin = f.path("blob.dat");
        fs::write(&bin, [0u8, 1, 2, 3, 0xff, 0]).unwrap();
        assert_eq!(
            f.error(act("view", &bin)),
            format!(
                "File validation failed for {bin}: File appears to be binary and this file type cannot be read or edited by this tool."
            )
        );
        let big = f.path("big.txt");
        let file = fs::File::create(&big).unwrap();
        file.set_len(MAX_FILE_SIZE + 1024 * 1024).unwrap();
        assert_eq!(
            f.error(act("view", &big)),
            format!(
                "File validation failed for {big}: File is too large (11.0MB). Maximum allowed size is 10MB."
            )
        );
    }

    #[test]
    fn images_come_back_as_data_urls() {
        let mut f = Fixture::new();
        let p = f.path("pic.PNG");
        fs::write(&p, [0x89, b'P', b'N', b'G', 0, 0]).unwrap();
        let obs = f.run(act("view", &p));
        assert!(!obs.is_error);
        assert_eq!(
            obs.content,
            vec![
                Content::text(format!(
                    "Image file {p} read successfully. Displaying image content."
                )),
                Content::image(vec!["data:image/png;base64,iVBORwAA".into()]),
            ]
        );
    }

    #[test]
    fn crlf_and_latin1_files_keep_their_form() {
        let mut f = Fixture::new();
        let p = f.write("w.txt", "one\r\ntwo\r\n");
        assert!(
            f.text(act("view", &p))
                .contains("     1\tone\n     2\ttwo\n")
        );
        f.text(json!({"command": "str_replace", "path": p, "old_str": "two", "new_str": "2"}));
        assert_eq!(fs::read(&p).unwrap(), b"one\r\n2\r\n");
        let l = f.path("l.txt");
        fs::write(&l, b"caf\xe9\n").unwrap();
        assert!(f.text(act("view", &l)).contains("\tcafé\n"));
        f.text(json!({"command": "str_replace", "path": l, "old_str": "café", "new_str": "thé"}));
        assert_eq!(fs::read(&l).unwrap(), b"th\xe9\n");
    }

    #[test]
    fn writes_keep_permissions_and_symlinks() {
        let mut f = Fixture::new();
        let p = f.write("x.sh", "echo a\n");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o751)).unwrap();
        let link = f.path("link.sh");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        f.text(json!({"command": "str_replace", "path": link, "old_str": "a", "new_str": "b"}));
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&p).unwrap(), "echo b\n");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o751
        );
        let leftovers: Vec<_> = fs::read_dir(f.dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn large_contents_are_not_inlined() {
        let mut f = Fixture::new();
        let p = f.path("large.txt");
        let text = "y".repeat(MAX_INLINE_CONTENT_BYTES + 1);
        let obs = f.run(json!({"command": "create", "path": p, "file_text": text}));
        assert!(!obs.is_error);
        assert_eq!(obs.new_content, None);
        assert_eq!(obs.to_json()["new_content"], Value::Null);
    }

    #[test]
    fn errors_render_for_the_llm_and_json() {
        let mut f = Fixture::new();
        let obs = f.run(act("view", "rel"));
        assert!(
            obs.llm_text().starts_with(
                "[An error occurred during execution.]\nInvalid `path` parameter: rel."
            )
        );
        assert_eq!(obs.llm_content().len(), 2);
        let json = obs.to_json();
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
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
        assert_eq!(json["path"], Value::Null);
        assert_eq!(json["is_error"], json!(true));
        let bad = f.run(json!({"command": "bogus", "path": "/"}));
        assert!(bad.is_error);
        assert_eq!(bad.command, "view");
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn truncation_keeps_head_and_tail() {
        let s = "abcdefghij";
        assert_eq!(maybe_truncate(s, 20, "[x]"), s);
        assert_eq!(maybe_truncate(s, 7, "[x]"), "ab[x]ij");
        assert_eq!(maybe_truncate(s, 2, "[x]"), "[x");
    }
}
