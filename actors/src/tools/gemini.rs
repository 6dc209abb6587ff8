//! The Gemini preset's file tools: `read_file`, `write_file`, `edit` and
//! `list_directory`. Each executes one validated Action JSON and returns its Observation
//! JSON (`ReadFileObservation`, `WriteFileObservation`, `EditObservation`,
//! `ListDirectoryObservation`), keys in the client models' order, `kind` last.
//!
//! As in the reference, a relative path is taken from the conversation's working
//! directory as the client gave it and absolute paths are accepted anywhere; result and
//! error texts are the reference's, since LLM prompts rely on them. Departures, each
//! where the reference would hang, corrupt a file or overflow the client's 1 MiB event
//! frame: non-regular files (FIFOs, devices) are refused; `read_file` streams the file
//! and keeps one answer under [`MAX_READ_BYTES`] (it then reports the answer truncated,
//! with the offset to go on from); `edit` refuses binary files and files over 10 MiB
//! and keeps CRLF line ends and single-byte encodings; `old_content`/`new_content` are
//! left out (null) when large; a recursive listing looks at [`MAX_LISTED`] entries at
//! most. Everything here is blocking I/O: run it on a blocking thread.

use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use crate::tools::content::Content;
use crate::tools::file_editor::{starts_binary, write_atomic};
use crate::tools::paths::{is_permission_error, join_lexical, py_os_error};
use crate::tools::preset_schemas::{LIST_DIRECTORY_MAX_ENTRIES, READ_FILE_DEFAULT_LINES};

/// Most bytes of numbered lines one `read_file` answer carries (the text appears twice
/// in the event: in `content` and in `file_content`).
pub const MAX_READ_BYTES: usize = 192 * 1024;
/// `old_content` plus `new_content` above this many bytes are both left out.
const MAX_INLINE_CONTENT_BYTES: usize = 256 * 1024;
/// Files `edit` changes, and old contents `write_file` reports, at most this large.
const MAX_EDIT_FILE: u64 = 10 * 1024 * 1024;
/// Directory entries a recursive listing looks at, at most.
pub const MAX_LISTED: usize = 20_000;

fn text_block(text: &str) -> Value {
    json!([Content::text(text).to_json()])
}

fn opt_str(s: Option<&str>) -> Value {
    s.map_or(Value::Null, |s| Value::String(s.into()))
}

fn arg<'a>(action: &'a Value, key: &str) -> &'a str {
    action.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A path as the reference builds it: absolute as given, relative joined to the working
/// directory (without resolving `..` or symlinks).
fn target(working_dir: &Path, raw: &str) -> (PathBuf, String) {
    let p = join_lexical(working_dir, raw);
    let shown = p.to_string_lossy().into_owned();
    (p, shown)
}

/// Both contents, or neither when together they are too big for an event.
fn inline_contents(old: Option<String>, new: Option<String>) -> (Option<String>, Option<String>) {
    let size = old.as_ref().map_or(0, String::len) + new.as_ref().map_or(0, String::len);
    if size <= MAX_INLINE_CONTENT_BYTES {
        (old, new)
    } else {
        (None, None)
    }
}

/// Reads up to 10 MiB of a regular file as text, replacing invalid UTF-8 (Python's
/// `errors="replace"`) and translating line ends to `\n`; `None` when it cannot.
fn read_lossy(path: &Path) -> Option<String> {
    let meta = fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_EDIT_FILE {
        return None;
    }
    let bytes = fs::read(path).ok()?;
    Some(universal_newlines(
        String::from_utf8_lossy(&bytes).into_owned(),
    ))
}

fn universal_newlines(text: String) -> String {
    if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text
    }
}

fn create_parents(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// read_file
// ---------------------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
fn read_observation(
    text: &str,
    is_error: bool,
    file_path: &str,
    file_content: &str,
    is_truncated: bool,
    lines_shown: Option<(usize, usize)>,
    total_lines: Option<usize>,
) -> Value {
    let mut obs = Map::new();
    obs.insert("content".into(), text_block(text));
    obs.insert("is_error".into(), Value::Bool(is_error));
    obs.insert("file_path".into(), Value::String(file_path.into()));
    obs.insert("file_content".into(), Value::String(file_content.into()));
    obs.insert("is_truncated".into(), Value::Bool(is_truncated));
    obs.insert(
        "lines_shown".into(),
        lines_shown.map_or(Value::Null, |(a, b)| json!([a, b])),
    );
    obs.insert("total_lines".into(), json!(total_lines));
    obs.insert("kind".into(), Value::String("ReadFileObservation".into()));
    Value::Object(obs)
}

/// The lines `[start, start + want)` of a file, split the way Python's text mode does
/// (`\n`, `\r\n` and `\r` each end a line), and the total line count. At most
/// `max_bytes` of numbered lines are kept; `cut` tells whether a line was shortened.
struct Lines {
    shown: Vec<(Vec<u8>, bool)>,
    total: usize,
    cut: bool,
}

fn read_lines(path: &Path, start: usize, want: usize, max_bytes: usize) -> io::Result<Lines> {
    let mut file = fs::File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Lines {
        shown: Vec::new(),
        total: 0,
        cut: false,
    };
    let mut kept_bytes = 0usize;
    let mut current: Vec<u8> = Vec::new();
    let mut has_bytes = false;
    let mut pending_cr = false;
    // Once the byte budget is spent, later lines are only counted.
    let mut full = false;
    let mut end_line = |out: &mut Lines, current: &mut Vec<u8>, eol: bool, full: &mut bool| {
        let idx = out.total;
        out.total += 1;
        if idx >= start && idx < start + want && !*full {
            // The line as shown: `{:6}  ` before it and the line end after it.
            let overhead = (idx + 1).to_string().len().max(6) + 3;
            let room = max_bytes.saturating_sub(kept_bytes);
            if current.len() + overhead > room {
                if out.shown.is_empty() {
                    let mut cut = room.saturating_sub(overhead);
                    while cut > 0 && (current[cut] & 0xC0) == 0x80 {
                        cut -= 1;
                    }
                    current.truncate(cut);
                    out.cut = true;
                    kept_bytes += current.len() + overhead;
                    out.shown.push((std::mem::take(current), eol));
                }
                *full = true;
            } else {
                kept_bytes += current.len() + overhead;
                out.shown.push((std::mem::take(current), eol));
            }
        }
        current.clear();
    };
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for &b in &buf[..n] {
            if pending_cr {
                pending_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => {
                    end_line(&mut out, &mut current, true, &mut full);
                    has_bytes = false;
                }
                b'\r' => {
                    end_line(&mut out, &mut current, true, &mut full);
                    has_bytes = false;
                    pending_cr = true;
                }
                _ => {
                    has_bytes = true;
                    let idx = out.total;
                    // Only lines that may be shown are kept, and never much more than
                    // the byte budget of one of them.
                    if idx >= start && idx < start + want && !full && current.len() <= max_bytes {
                        current.push(b);
                    }
                }
            }
        }
    }
    if has_bytes {
        end_line(&mut out, &mut current, false, &mut full);
    }
    Ok(out)
}

/// Runs a validated `ReadFileAction` (`file_path`, `offset`, `limit`).
pub fn read_file(action: &Value, working_dir: &Path) -> Value {
    let raw = arg(action, "file_path");
    let offset = action.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
    let limit = action
        .get("limit")
        .and_then(Value::as_u64)
        .filter(|l| *l > 0)
        .map(|l| l as usize);
    let (path, shown) = target(working_dir, raw);
    let fail = |text: String| read_observation(&text, true, &shown, "", false, None, None);
    let meta = match fs::metadata(&path) {
        Ok(m) => m,
        Err(_) => return fail(format!("Error: File not found: {shown}")),
    };
    if meta.is_dir() {
        return fail(format!("Error: Path is a directory, not a file: {shown}"));
    }
    if !meta.is_file() {
        // Opening a FIFO or a device would block or never end.
        return fail(format!("Error reading file: {shown} is not a regular file"));
    }
    let want = limit.unwrap_or(READ_FILE_DEFAULT_LINES);
    let lines = match read_lines(&path, offset, want, MAX_READ_BYTES) {
        Ok(l) => l,
        Err(e) if is_permission_error(&e) => {
            return fail(format!("Error: Permission denied: {shown}"));
        }
        Err(e) => return fail(format!("Error reading file: {}", py_os_error(&e, &shown))),
    };
    let total = lines.total;
    if offset >= total {
        return fail(format!(
            "Error: Offset {offset} is beyond file length ({total} lines)"
        ));
    }
    let end = offset + lines.shown.len();
    let mut content = String::new();
    for (i, (bytes, eol)) in lines.shown.iter().enumerate() {
        content.push_str(&format!(
            "{:6}  {}",
            offset + i + 1,
            String::from_utf8_lossy(bytes)
        ));
        if *eol {
            content.push('\n');
        }
    }
    let is_truncated = end < total || lines.cut;
    let lines_shown = is_truncated.then_some((offset + 1, end));
    let mut head = format!("Read file: {shown}");
    if is_truncated {
        head.push_str(&format!(
            " (showing lines {}-{end} of {total}) To read more, use: read_file(file_path='{raw}', \
             offset={end}, limit={})",
            offset + 1,
            limit.unwrap_or(READ_FILE_DEFAULT_LINES)
        ));
    }
    let text = format!("{head}\n\n{content}");
    read_observation(
        &text,
        false,
        &shown,
        &content,
        is_truncated,
        lines_shown,
        Some(total),
    )
}

// ---------------------------------------------------------------------------------------
// write_file
// ---------------------------------------------------------------------------------------

fn write_observation(
    text: &str,
    is_error: bool,
    file_path: Option<&str>,
    is_new_file: bool,
    old: Option<String>,
    new: Option<String>,
) -> Value {
    let (old, new) = inline_contents(old, new);
    let mut obs = Map::new();
    obs.insert("content".into(), text_block(text));
    obs.insert("is_error".into(), Value::Bool(is_error));
    obs.insert("file_path".into(), opt_str(file_path));
    obs.insert("is_new_file".into(), Value::Bool(is_new_file));
    obs.insert("old_content".into(), opt_str(old.as_deref()));
    obs.insert("new_content".into(), opt_str(new.as_deref()));
    obs.insert("kind".into(), Value::String("WriteFileObservation".into()));
    Value::Object(obs)
}

/// Runs a validated `WriteFileAction` (`file_path`, `content`).
pub fn write_file(action: &Value, working_dir: &Path) -> Value {
    let (path, shown) = target(working_dir, arg(action, "file_path"));
    let content = arg(action, "content");
    let fail = |text: String| write_observation(&text, true, None, false, None, None);
    let existing = fs::metadata(&path).ok();
    if existing.as_ref().is_some_and(fs::Metadata::is_dir) {
        return fail(format!("Error: Path is a directory, not a file: {shown}"));
    }
    if existing.as_ref().is_some_and(|m| !m.is_file()) {
        return fail(format!("Error writing file: {shown} is not a regular file"));
    }
    let is_new = existing.is_none();
    let old = if is_new { None } else { read_lossy(&path) };
    let written = create_parents(&path).and_then(|()| write_atomic(&path, content.as_bytes()));
    match written {
        Ok(()) => write_observation(
            &format!(
                "{} file: {shown}",
                if is_new { "Created" } else { "Updated" }
            ),
            false,
            Some(&shown),
            is_new,
            old,
            Some(content.to_string()),
        ),
        Err(e) if is_permission_error(&e) => fail(format!("Error: Permission denied: {shown}")),
        Err(e) => fail(format!("Error writing file: {}", py_os_error(&e, &shown))),
    }
}

// ---------------------------------------------------------------------------------------
// edit
// ---------------------------------------------------------------------------------------

fn edit_observation(
    text: &str,
    is_error: bool,
    file_path: Option<&str>,
    is_new_file: bool,
    replacements: usize,
    old: Option<String>,
    new: Option<String>,
) -> Value {
    let (old, new) = inline_contents(old, new);
    let mut obs = Map::new();
    obs.insert("content".into(), text_block(text));
    obs.insert("is_error".into(), Value::Bool(is_error));
    obs.insert("file_path".into(), opt_str(file_path));
    obs.insert("is_new_file".into(), Value::Bool(is_new_file));
    obs.insert("replacements_made".into(), json!(replacements));
    obs.insert("old_content".into(), opt_str(old.as_deref()));
    obs.insert("new_content".into(), opt_str(new.as_deref()));
    obs.insert("kind".into(), Value::String("EditObservation".into()));
    Value::Object(obs)
}

/// A text file as stored: its text with `\n` line ends, and how to write it back.
struct Stored {
    text: String,
    latin1: bool,
    crlf: bool,
}

fn read_stored(path: &Path, shown: &str) -> Result<Stored, String> {
    let meta = fs::metadata(path).map_err(|e| py_os_error(&e, shown))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    if meta.len() > MAX_EDIT_FILE {
        return Err(format!(
            "{shown} is too large ({:.1}MB); files up to {}MB can be edited",
            meta.len() as f64 / 1024.0 / 1024.0,
            MAX_EDIT_FILE / 1024 / 1024
        ));
    }
    if starts_binary(path).map_err(|e| py_os_error(&e, shown))? {
        return Err(format!("{shown} appears to be a binary file"));
    }
    let bytes = fs::read(path).map_err(|e| py_os_error(&e, shown))?;
    let (raw, latin1) = match String::from_utf8(bytes) {
        Ok(s) => (s, false),
        // Not UTF-8 but not binary: a single-byte encoding that Latin-1 round-trips.
        Err(e) => (
            e.into_bytes().iter().map(|&b| char::from(b)).collect(),
            true,
        ),
    };
    let crlf = raw.contains("\r\n");
    Ok(Stored {
        text: universal_newlines(raw),
        latin1,
        crlf,
    })
}

fn encode_like(text: &str, like: &Stored) -> Result<Vec<u8>, String> {
    let text = if like.crlf {
        text.replace('\n', "\r\n")
    } else {
        text.to_string()
    };
    if !like.latin1 {
        return Ok(text.into_bytes());
    }
    text.chars()
        .map(|c| u8::try_from(u32::from(c)))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| {
            "the new text has characters this file's single-byte encoding cannot store".into()
        })
}

/// Runs a validated `EditAction` (`file_path`, `old_string`, `new_string`,
/// `expected_replacements`).
pub fn edit(action: &Value, working_dir: &Path) -> Value {
    let (path, shown) = target(working_dir, arg(action, "file_path"));
    let old_string = arg(action, "old_string");
    let new_string = arg(action, "new_string");
    let expected = action
        .get("expected_replacements")
        .and_then(Value::as_u64)
        .unwrap_or(1) as usize;
    let fail = |text: String, file: Option<&str>| {
        edit_observation(&text, true, file, false, 0, None, None)
    };
    let exists = fs::metadata(&path).is_ok();
    if old_string.is_empty() {
        if exists {
            return fail(
                format!(
                    "Error: Cannot create file that already exists: {shown}. Use write_file to \
                     overwrite or provide non-empty old_string."
                ),
                None,
            );
        }
        return match create_parents(&path).and_then(|()| write_atomic(&path, new_string.as_bytes()))
        {
            Ok(()) => edit_observation(
                &format!("Created new file: {shown}"),
                false,
                Some(&shown),
                true,
                1,
                None,
                Some(new_string.to_string()),
            ),
            Err(e) if is_permission_error(&e) => {
                fail(format!("Error: Permission denied: {shown}"), None)
            }
            Err(e) => fail(
                format!("Error creating file: {}", py_os_error(&e, &shown)),
                None,
            ),
        };
    }
    if !exists {
        return fail(
            format!("Error: File not found: {shown}. To create a new file, use old_string=''."),
            None,
        );
    }
    if path.is_dir() {
        return fail(
            format!("Error: Path is a directory, not a file: {shown}"),
            None,
        );
    }
    let stored = match read_stored(&path, &shown) {
        Ok(s) => s,
        Err(reason) if reason.contains("Permission denied") => {
            return fail(format!("Error: Permission denied: {shown}"), None);
        }
        Err(reason) => return fail(format!("Error editing file: {reason}"), None),
    };
    if old_string == new_string {
        return fail(
            "Error: No changes to apply. old_string and new_string are identical.".into(),
            None,
        );
    }
    let occurrences = stored.text.matches(old_string).count();
    if occurrences == 0 {
        return fail(
            format!(
                "Error: Could not find the string to replace. 0 occurrences found in {shown}. Use \
                 read_file to verify the exact text."
            ),
            Some(&shown),
        );
    }
    if occurrences != expected {
        let word = if expected == 1 {
            "occurrence"
        } else {
            "occurrences"
        };
        return fail(
            format!("Error: Expected {expected} {word} but found {occurrences} in {shown}."),
            Some(&shown),
        );
    }
    let new_text = stored.text.replace(old_string, new_string);
    if new_text == stored.text {
        return fail(
            "Error: No changes made. The new content is identical to the current content.".into(),
            Some(&shown),
        );
    }
    let bytes = match encode_like(&new_text, &stored) {
        Ok(b) => b,
        Err(reason) => return fail(format!("Error editing file: {reason}"), None),
    };
    match write_atomic(&path, &bytes) {
        Ok(()) => edit_observation(
            &format!("Successfully edited {shown} ({occurrences} replacement(s))"),
            false,
            Some(&shown),
            false,
            occurrences,
            Some(stored.text),
            Some(new_text),
        ),
        Err(e) if is_permission_error(&e) => {
            fail(format!("Error: Permission denied: {shown}"), None)
        }
        Err(e) => fail(
            format!("Error editing file: {}", py_os_error(&e, &shown)),
            None,
        ),
    }
}

// ---------------------------------------------------------------------------------------
// list_directory
// ---------------------------------------------------------------------------------------

/// One `FileEntry`: `{"name","path","is_directory","size","modified_time"}`.
fn entry_json(name: &str, path: &Path, meta: &fs::Metadata) -> Value {
    let is_dir = meta.is_dir();
    let mut e = Map::new();
    e.insert("name".into(), Value::String(name.into()));
    e.insert("path".into(), Value::String(path.to_string_lossy().into()));
    e.insert("is_directory".into(), Value::Bool(is_dir));
    e.insert("size".into(), json!(if is_dir { 0 } else { meta.len() }));
    e.insert(
        "modified_time".into(),
        Value::String(naive_local(
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        )),
    );
    Value::Object(e)
}

/// A naive local timestamp as pydantic writes a `datetime`: no fraction when it is zero.
fn naive_local(t: SystemTime) -> String {
    let micros = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => (d.as_nanos().saturating_add(500) / 1000) as i64,
        Err(e) => -((e.duration().as_nanos() / 1000) as i64),
    };
    let s = crate::time::format_local(micros);
    match s.strip_suffix(".000000") {
        Some(whole) => whole.to_string(),
        None => s,
    }
}

fn list_observation(
    text: &str,
    is_error: bool,
    dir_path: Option<&str>,
    entries: Vec<Value>,
    total: usize,
    truncated: bool,
) -> Value {
    let mut obs = Map::new();
    obs.insert("content".into(), text_block(text));
    obs.insert("is_error".into(), Value::Bool(is_error));
    obs.insert("dir_path".into(), opt_str(dir_path));
    obs.insert("entries".into(), Value::Array(entries));
    obs.insert("total_count".into(), json!(total));
    obs.insert("is_truncated".into(), Value::Bool(truncated));
    obs.insert(
        "kind".into(),
        Value::String("ListDirectoryObservation".into()),
    );
    Value::Object(obs)
}

/// Directory and file names of `dir`, each sorted, as `os.walk` splits them (a symlink
/// to a directory counts as a directory); unreadable directories are empty.
fn split_children(dir: &Path) -> (Vec<String>, Vec<String>) {
    let Ok(rd) = fs::read_dir(dir) else {
        return (vec![], vec![]);
    };
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for entry in rd.filter_map(Result::ok) {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if fs::metadata(entry.path()).is_ok_and(|m| m.is_dir()) {
            dirs.push(name);
        } else {
            files.push(name);
        }
    }
    dirs.sort();
    files.sort();
    (dirs, files)
}

/// Runs a validated `ListDirectoryAction` (`dir_path`, `recursive`). The LLM only reads
/// the one-line summary; the entries are for the client.
pub fn list_directory(action: &Value, working_dir: &Path) -> Value {
    let raw = action
        .get("dir_path")
        .and_then(Value::as_str)
        .unwrap_or(".");
    let recursive = action
        .get("recursive")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let (path, shown) = target(working_dir, raw);
    let fail = |text: String| list_observation(&text, true, None, vec![], 0, false);
    let meta = match fs::metadata(&path) {
        Ok(m) => m,
        Err(_) => return fail(format!("Error: Directory not found: {shown}")),
    };
    if !meta.is_dir() {
        return fail(format!("Error: Path is not a directory: {shown}"));
    }
    let mut entries: Vec<Value> = Vec::new();
    if recursive {
        // `os.walk` order: a directory's subdirectories, then its files, each sorted;
        // then its subdirectories' contents. Links to directories are listed, not
        // entered; two levels are listed.
        let mut stack: Vec<(PathBuf, usize)> = vec![(path.clone(), 0)];
        let mut looked_at = 0usize;
        while let Some((dir, depth)) = stack.pop() {
            if depth >= 2 {
                continue;
            }
            let (dirs, files) = split_children(&dir);
            looked_at += dirs.len() + files.len();
            for d in &dirs {
                let p = dir.join(d);
                if let Ok(m) = fs::metadata(&p) {
                    entries.push(entry_json(d, &p, &m));
                }
            }
            for f in &files {
                let p = dir.join(f);
                if let Ok(m) = fs::metadata(&p) {
                    entries.push(entry_json(f, &p, &m));
                }
            }
            if entries.len() >= LIST_DIRECTORY_MAX_ENTRIES || looked_at >= MAX_LISTED {
                break;
            }
            for d in dirs.iter().rev() {
                let p = dir.join(d);
                let is_link = fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink());
                if !is_link {
                    stack.push((p, depth + 1));
                }
            }
        }
    } else {
        let Ok(rd) = fs::read_dir(&path) else {
            return fail(format!("Error: Permission denied: {shown}"));
        };
        let mut names: Vec<String> = rd
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        for name in names {
            let p = path.join(&name);
            if let Ok(m) = fs::metadata(&p) {
                entries.push(entry_json(&name, &p, &m));
                if entries.len() >= LIST_DIRECTORY_MAX_ENTRIES {
                    break;
                }
            }
        }
    }
    let total = entries.len();
    let truncated = total >= LIST_DIRECTORY_MAX_ENTRIES;
    entries.truncate(LIST_DIRECTORY_MAX_ENTRIES);
    let mut text = format!("Listed directory: {shown} ({total} entries");
    if truncated {
        text.push_str(&format!(", truncated to {LIST_DIRECTORY_MAX_ENTRIES}"));
    }
    text.push(')');
    list_observation(&text, false, Some(&shown), entries, total, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        (dir, root)
    }

    fn text(obs: &Value) -> &str {
        obs["content"][0]["text"].as_str().unwrap()
    }

    fn keys(obs: &Value) -> Vec<&str> {
        obs.as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect()
    }

    #[test]
    fn read_file_numbers_pages_and_fails_like_the_reference() {
        let (_d, root) = ws();
        fs::write(root.join("a.py"), "one\ntwo\r\nthree").unwrap();
        let obs = read_file(&json!({"file_path": "a.py"}), &root);
        let shown = root.join("a.py").display().to_string();
        assert_eq!(
            text(&obs),
            format!("Read file: {shown}\n\n     1  one\n     2  two\n     3  three")
        );
        assert_eq!(obs["total_lines"], 3);
        assert_eq!(obs["lines_shown"], Value::Null);
        assert_eq!(
            keys(&obs),
            [
                "content",
                "is_error",
                "file_path",
                "file_content",
                "is_truncated",
                "lines_shown",
                "total_lines",
                "kind"
            ]
        );
        let obs = read_file(&json!({"file_path": shown, "offset": 1, "limit": 1}), &root);
        assert_eq!(
            text(&obs),
            format!(
                "Read file: {shown} (showing lines 2-2 of 3) To read more, use: read_file(file_path='{shown}', offset=2, limit=1)\n\n     2  two\n"
            )
        );
        assert_eq!(obs["lines_shown"], json!([2, 2]));
        assert_eq!(obs["is_truncated"], true);
        let obs = read_file(&json!({"file_path": "a.py", "offset": 3}), &root);
        assert_eq!(
            text(&obs),
            "Error: Offset 3 is beyond file length (3 lines)"
        );
        assert_eq!(obs["is_error"], true);
        assert_eq!(obs["file_path"], shown);
        let missing = read_file(&json!({"file_path": "nope.txt"}), &root);
        assert_eq!(
            text(&missing),
            format!("Error: File not found: {}/nope.txt", root.display())
        );
        let dir = read_file(&json!({"file_path": "."}), &root);
        assert_eq!(
            text(&dir),
            format!("Error: Path is a directory, not a file: {}", root.display())
        );
        // The default page is 1000 lines.
        let long: String = (1..=1500).map(|i| format!("l{i}\n")).collect();
        fs::write(root.join("long.txt"), long).unwrap();
        let obs = read_file(&json!({"file_path": "long.txt"}), &root);
        assert!(text(&obs).contains("(showing lines 1-1000 of 1500)"));
        assert!(text(&obs).contains("offset=1000, limit=1000)"));
    }

    #[test]
    fn read_file_stays_small_and_safe() {
        let (_d, root) = ws();
        let line = "x".repeat(100_000);
        fs::write(root.join("wide.txt"), format!("{line}\n{line}\n{line}\n")).unwrap();
        let obs = read_file(&json!({"file_path": "wide.txt"}), &root);
        assert!(obs["file_content"].as_str().unwrap().len() <= MAX_READ_BYTES + 100);
        assert_eq!(obs["is_truncated"], true);
        assert_eq!(obs["lines_shown"], json!([1, 1]));
        // Short lines: the line numbers count towards the budget too.
        fs::write(root.join("tall.txt"), "\n".repeat(300_000)).unwrap();
        let obs = read_file(&json!({"file_path": "tall.txt", "limit": 300_000}), &root);
        let shown = obs["file_content"].as_str().unwrap().len();
        assert!(shown <= MAX_READ_BYTES, "{shown} bytes of numbered lines");
        assert_eq!(obs["is_truncated"], true);
        let end = obs["lines_shown"][1].as_u64().unwrap() as usize;
        assert!(text(&obs).contains(&format!("offset={end}, limit=300000)")));
        fs::write(root.join("bin"), [0xffu8, 0, 0xfe, b'\n']).unwrap();
        let obs = read_file(&json!({"file_path": "bin"}), &root);
        assert_eq!(obs["is_error"], false);
        assert!(text(&obs).contains('\u{fffd}'));
        let fifo = root.join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let obs = read_file(&json!({"file_path": "fifo"}), &root);
        assert_eq!(obs["is_error"], true);
    }

    #[test]
    fn write_file_creates_and_replaces() {
        let (_d, root) = ws();
        let obs = write_file(
            &json!({"file_path": "new/dir/f.txt", "content": "hi\n"}),
            &root,
        );
        let shown = format!("{}/new/dir/f.txt", root.display());
        assert_eq!(text(&obs), format!("Created file: {shown}"));
        assert_eq!(obs["is_new_file"], true);
        assert_eq!(obs["old_content"], Value::Null);
        assert_eq!(obs["new_content"], "hi\n");
        assert_eq!(
            keys(&obs),
            [
                "content",
                "is_error",
                "file_path",
                "is_new_file",
                "old_content",
                "new_content",
                "kind"
            ]
        );
        let obs = write_file(&json!({"file_path": shown, "content": "bye"}), &root);
        assert_eq!(text(&obs), format!("Updated file: {shown}"));
        assert_eq!(obs["old_content"], "hi\n");
        assert_eq!(fs::read_to_string(&shown).unwrap(), "bye");
        let obs = write_file(&json!({"file_path": "new", "content": "x"}), &root);
        assert_eq!(
            text(&obs),
            format!(
                "Error: Path is a directory, not a file: {}/new",
                root.display()
            )
        );
        assert_eq!(obs["file_path"], Value::Null);
    }

    #[test]
    fn edit_replaces_exact_counts() {
        let (_d, root) = ws();
        let p = format!("{}/e.py", root.display());
        let obs = edit(
            &json!({"file_path": "e.py", "old_string": "", "new_string": "a = 1\na = 1\n", "expected_replacements": 1}),
            &root,
        );
        assert_eq!(text(&obs), format!("Created new file: {p}"));
        assert_eq!(obs["replacements_made"], 1);
        assert_eq!(obs["is_new_file"], true);
        let again = edit(
            &json!({"file_path": "e.py", "old_string": "", "new_string": "x", "expected_replacements": 1}),
            &root,
        );
        assert_eq!(
            text(&again),
            format!(
                "Error: Cannot create file that already exists: {p}. Use write_file to overwrite or provide non-empty old_string."
            )
        );
        let wrong = edit(
            &json!({"file_path": "e.py", "old_string": "a = 1", "new_string": "b", "expected_replacements": 1}),
            &root,
        );
        assert_eq!(
            text(&wrong),
            format!("Error: Expected 1 occurrence but found 2 in {p}.")
        );
        assert_eq!(wrong["file_path"], p);
        let none = edit(
            &json!({"file_path": "e.py", "old_string": "zzz", "new_string": "b", "expected_replacements": 1}),
            &root,
        );
        assert_eq!(
            text(&none),
            format!(
                "Error: Could not find the string to replace. 0 occurrences found in {p}. Use read_file to verify the exact text."
            )
        );
        let same = edit(
            &json!({"file_path": "e.py", "old_string": "a", "new_string": "a", "expected_replacements": 1}),
            &root,
        );
        assert_eq!(
            text(&same),
            "Error: No changes to apply. old_string and new_string are identical."
        );
        let ok = edit(
            &json!({"file_path": "e.py", "old_string": "a = 1", "new_string": "b = 2", "expected_replacements": 2}),
            &root,
        );
        assert_eq!(
            text(&ok),
            format!("Successfully edited {p} (2 replacement(s))")
        );
        assert_eq!(ok["old_content"], "a = 1\na = 1\n");
        assert_eq!(ok["new_content"], "b = 2\nb = 2\n");
        assert_eq!(
            keys(&ok),
            [
                "content",
                "is_error",
                "file_path",
                "is_new_file",
                "replacements_made",
                "old_content",
                "new_content",
                "kind"
            ]
        );
        let missing = edit(
            &json!({"file_path": "m.py", "old_string": "a", "new_string": "b", "expected_replacements": 1}),
            &root,
        );
        assert_eq!(
            text(&missing),
            format!(
                "Error: File not found: {}/m.py. To create a new file, use old_string=''.",
                root.display()
            )
        );
        // CRLF and Latin-1 files keep their form; binary files are refused.
        fs::write(root.join("w.txt"), b"caf\xe9\r\nend\r\n").unwrap();
        edit(
            &json!({"file_path": "w.txt", "old_string": "end", "new_string": "fin", "expected_replacements": 1}),
            &root,
        );
        assert_eq!(fs::read(root.join("w.txt")).unwrap(), b"caf\xe9\r\nfin\r\n");
        fs::write(root.join("b.bin"), [0u8, 1, 2, b'a']).unwrap();
        let bin = edit(
            &json!({"file_path": "b.bin", "old_string": "a", "new_string": "b", "expected_replacements": 1}),
            &root,
        );
        assert_eq!(bin["is_error"], true);
        assert_eq!(fs::read(root.join("b.bin")).unwrap(), [0u8, 1, 2, b'a']);
    }

    #[test]
    fn list_directory_summarizes_for_the_llm() {
        let (_d, root) = ws();
        fs::create_dir_all(root.join("sub/deeper/deepest")).unwrap();
        fs::write(root.join("b.txt"), "12345").unwrap();
        fs::write(root.join(".hidden"), "").unwrap();
        fs::write(root.join("sub/c.txt"), "").unwrap();
        fs::write(root.join("sub/deeper/d.txt"), "").unwrap();
        fs::write(root.join("sub/deeper/deepest/e.txt"), "").unwrap();
        std::os::unix::fs::symlink(root.join("sub"), root.join("link")).unwrap();
        let obs = list_directory(&json!({"dir_path": ".", "recursive": false}), &root);
        assert_eq!(
            text(&obs),
            format!("Listed directory: {} (4 entries)", root.display())
        );
        let names: Vec<&str> = obs["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, [".hidden", "b.txt", "link", "sub"]);
        let b = &obs["entries"][1];
        assert_eq!(b["size"], 5);
        assert_eq!(b["is_directory"], false);
        let t = b["modified_time"].as_str().unwrap();
        assert!(t.len() == 19 || t.len() == 26, "{t}");
        assert_eq!(obs["entries"][2]["is_directory"], true);
        assert_eq!(obs["dir_path"], root.display().to_string());
        let rec = list_directory(
            &json!({"dir_path": root.display().to_string(), "recursive": true}),
            &root,
        );
        let paths: Vec<String> = rec["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e["path"]
                    .as_str()
                    .unwrap()
                    .strip_prefix(&format!("{}/", root.display()))
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            paths,
            ["link", "sub", ".hidden", "b.txt", "sub/deeper", "sub/c.txt"]
        );
        let none = list_directory(&json!({"dir_path": "missing"}), &root);
        assert_eq!(
            text(&none),
            format!("Error: Directory not found: {}/missing", root.display())
        );
        let file = list_directory(&json!({"dir_path": "b.txt"}), &root);
        assert_eq!(
            text(&file),
            format!("Error: Path is not a directory: {}/b.txt", root.display())
        );
    }

    #[test]
    fn list_directory_caps_at_500() {
        let (_d, root) = ws();
        for i in 0..520 {
            fs::write(root.join(format!("f{i:03}")), "").unwrap();
        }
        let obs = list_directory(&json!({"dir_path": "."}), &root);
        assert_eq!(
            text(&obs),
            format!(
                "Listed directory: {} (500 entries, truncated to 500)",
                root.display()
            )
        );
        assert_eq!(obs["total_count"], 500);
        assert_eq!(obs["is_truncated"], true);
    }
}
