//! The `glob` and `grep` tools (planning preset): find files by path pattern or by
//! content, newest first, at most 100 paths.
//!
//! The reference runs ripgrep (`rg --files -g <glob>` and `rg -l -i <regex>`) when it is
//! installed; this module does the same search in Rust so nothing has to be installed:
//! a walk that never follows symlinks, skips hidden entries and what `.gitignore` (inside
//! a git repository), `.git/info/exclude` and `.ignore` files exclude, with a glob that
//! whitelists what it names (ripgrep's `-g` override: `*.py` also finds `.hidden.py`,
//! `**/*` lists everything), line-by-line case-insensitive matching that skips binary
//! files, then the reference's own post-filtering, sorting and texts. `glob` keeps
//! ripgrep's `--sortr=modified` order (each directory's entries newest first, depth
//! first), `grep` sorts its matches by time as the reference does after ripgrep.
//! Unlike ripgrep under the reference, a glob with a `/` is anchored at the searched
//! directory (ripgrep anchors it at the server's working directory, so `src/*.ts` never
//! matched there unless the two were the same).
//!
//! Every search is bounded: 30 seconds (the reference's subprocess timeout) and at most
//! [`MAX_VISITED`] directory entries; past either it answers with an error observation.
//! All of it is blocking I/O: run [`glob`] and [`grep`] on a blocking thread.

use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use regex::Regex;
use serde_json::{Map, Value, json};

use crate::tools::content::Content;
use crate::tools::paths;

/// Paths a search returns at most.
pub const MAX_RESULTS: usize = 100;
/// How long one search may take (the reference's ripgrep timeout).
const SEARCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Directory entries one search looks at, at most.
pub const MAX_VISITED: usize = 2_000_000;
/// Bytes read from a file at a time while grepping.
const CHUNK: usize = 64 * 1024;
/// Longest line matched as a whole; the rest of a longer line is matched in pieces.
const MAX_LINE: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Glob translation
// ---------------------------------------------------------------------------------------

/// How a glob is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// ripgrep / gitignore globs: `*` and `?` stop at `/`, `**` spans directories,
    /// `{a,b}` alternatives, `\` escapes.
    Git,
    /// Python's `fnmatch` on a file name (`*` matches anything, no escapes), plus
    /// `{a,b}` alternatives.
    Fnmatch,
}

/// Translates a glob into an anchored regular expression.
pub(crate) fn glob_regex(pattern: &str, dialect: Dialect) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::from("(?s)^");
    let mut depth = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' if dialect == Dialect::Git && chars.get(i + 1) == Some(&'*') => {
                let at_start = i == 0 || chars[i - 1] == '/';
                let next = chars.get(i + 2);
                if at_start && next == Some(&'/') {
                    out.push_str("(?:.*/)?");
                    i += 3;
                    continue;
                } else if at_start && next.is_none() {
                    out.push_str(".*");
                    i += 2;
                    continue;
                }
                out.push_str("[^/]*");
                i += 2;
                continue;
            }
            '*' => out.push_str(if dialect == Dialect::Git {
                "[^/]*"
            } else {
                ".*"
            }),
            '?' => out.push_str(if dialect == Dialect::Git { "[^/]" } else { "." }),
            '[' => match class(&chars, i + 1) {
                Some((re, end)) => {
                    out.push_str(&re);
                    i = end + 1;
                    continue;
                }
                None if dialect == Dialect::Fnmatch => out.push_str("\\["),
                None => return Err("unclosed character class; missing ']'".into()),
            },
            '{' => {
                depth += 1;
                out.push_str("(?:");
            }
            ',' if depth > 0 => out.push('|'),
            '}' if depth > 0 => {
                depth -= 1;
                out.push(')');
            }
            '\\' if dialect == Dialect::Git => match chars.get(i + 1) {
                Some(next) => {
                    out.push_str(&regex::escape(&next.to_string()));
                    i += 2;
                    continue;
                }
                None => return Err("dangling '\\'".into()),
            },
            other => out.push_str(&regex::escape(&other.to_string())),
        }
        i += 1;
    }
    if depth > 0 {
        if dialect == Dialect::Fnmatch {
            // fnmatch has no alternatives: an unclosed `{` is just a character.
            return glob_regex(&pattern.replace('{', "[{]"), dialect);
        }
        return Err("unclosed alternate group; missing '}'".into());
    }
    out.push('$');
    Ok(out)
}

/// A `[...]` class starting after the `[` at `start`: its regex and the index of `]`.
fn class(chars: &[char], start: usize) -> Option<(String, usize)> {
    let mut i = start;
    let mut re = String::from("[");
    if matches!(chars.get(i), Some('!') | Some('^')) {
        re.push('^');
        i += 1;
    }
    let first = i;
    while i < chars.len() {
        let c = chars[i];
        if c == ']' && i > first {
            re.push(']');
            return Some((re, i));
        }
        if c == '-' && i > first && chars.get(i + 1).is_some_and(|n| *n != ']') {
            re.push('-');
        } else if "\\[]^-&~".contains(c) {
            re.push('\\');
            re.push(c);
        } else {
            re.push(c);
        }
        i += 1;
    }
    None
}

/// Compiles a glob of the given dialect.
pub(crate) fn compile_glob(pattern: &str, dialect: Dialect) -> Result<Regex, String> {
    let re = glob_regex(pattern, dialect)?;
    Regex::new(&re).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------
// Ignore rules
// ---------------------------------------------------------------------------------------

/// One line of an ignore file (or a `-g` override), as gitignore reads it.
#[derive(Debug)]
struct Rule {
    re: Regex,
    negate: bool,
    dir_only: bool,
}

impl Rule {
    /// `None` for blank lines, comments and globs that do not compile.
    fn parse(line: &str) -> Option<Rule> {
        let mut line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        // Trailing spaces go unless escaped.
        while line.ends_with(' ') && !line.ends_with("\\ ") {
            line = &line[..line.len() - 1];
        }
        let mut negate = false;
        if let Some(rest) = line.strip_prefix('!') {
            negate = true;
            line = rest;
        } else if line.starts_with("\\!") || line.starts_with("\\#") {
            line = &line[1..];
        }
        let mut dir_only = false;
        if let Some(rest) = line.strip_suffix('/') {
            dir_only = true;
            line = rest;
        }
        if line.is_empty() {
            return None;
        }
        // Without a slash the pattern matches a name at any depth; with one it is
        // anchored at the ignore file's directory.
        let glob = if line.contains('/') {
            line.strip_prefix('/').unwrap_or(line).to_string()
        } else {
            format!("**/{line}")
        };
        let re = compile_glob(&glob, Dialect::Git).ok()?;
        Some(Rule {
            re,
            negate,
            dir_only,
        })
    }

    fn matches(&self, rel: &str, is_dir: bool) -> bool {
        (is_dir || !self.dir_only) && self.re.is_match(rel)
    }
}

/// The rules of the ignore files of one directory; later rules win.
struct Level {
    dir: PathBuf,
    rules: Vec<Rule>,
}

impl Level {
    fn load(dir: &Path, files: &[PathBuf]) -> Option<Level> {
        let mut rules = Vec::new();
        for file in files {
            // Ignore files are small; a huge one is not an ignore file worth reading.
            let Ok(meta) = fs::metadata(file) else {
                continue;
            };
            if !meta.is_file() || meta.len() > 1024 * 1024 {
                continue;
            }
            if let Ok(text) = fs::read_to_string(file) {
                rules.extend(text.lines().filter_map(Rule::parse));
            }
        }
        (!rules.is_empty()).then(|| Level {
            dir: dir.to_path_buf(),
            rules,
        })
    }

    /// `Some(true)` ignored, `Some(false)` re-included, `None` no rule matches.
    fn decide(&self, path: &Path, is_dir: bool) -> Option<bool> {
        let rel = path.strip_prefix(&self.dir).ok()?.to_str()?;
        self.rules
            .iter()
            .rev()
            .find(|r| r.matches(rel, is_dir))
            .map(|r| !r.negate)
    }
}

/// The ignore files in force: the git repository's (if the search is inside one) and
/// `.ignore` files, deepest directory first when deciding.
struct Ignores {
    git: bool,
    levels: Vec<Level>,
}

impl Ignores {
    /// Rules from the git root (its `.git/info/exclude` and ignore files) down to, but
    /// not including, `root`, whose own files are read when the walk enters it.
    fn for_root(root: &Path) -> Ignores {
        let git_root = root
            .ancestors()
            .take(256)
            .find(|d| d.join(".git").exists())
            .map(Path::to_path_buf);
        let mut levels = Vec::new();
        if let Some(git_root) = &git_root {
            if let Some(l) = Level::load(git_root, &[git_root.join(".git/info/exclude")]) {
                levels.push(l);
            }
            let mut parents: Vec<&Path> = root
                .ancestors()
                .skip(1)
                .take_while(|d| d.starts_with(git_root))
                .collect();
            parents.reverse();
            for dir in parents {
                if let Some(l) = Level::load(dir, &[dir.join(".gitignore"), dir.join(".ignore")]) {
                    levels.push(l);
                }
            }
        }
        Ignores {
            git: git_root.is_some(),
            levels,
        }
    }

    fn enter(&mut self, dir: &Path) -> bool {
        let mut files = Vec::with_capacity(2);
        if self.git {
            files.push(dir.join(".gitignore"));
        }
        files.push(dir.join(".ignore"));
        match Level::load(dir, &files) {
            Some(level) => {
                self.levels.push(level);
                true
            }
            None => false,
        }
    }

    fn ignored(&self, path: &Path, is_dir: bool) -> bool {
        self.levels
            .iter()
            .rev()
            .find_map(|l| l.decide(path, is_dir))
            .unwrap_or(false)
    }
}

// ---------------------------------------------------------------------------------------
// The walk
// ---------------------------------------------------------------------------------------

/// Why a walk stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The time limit passed.
    Timeout,
    /// Too many directory entries.
    TooLarge,
}

impl Stop {
    fn message(self, search_path: &str) -> String {
        match self {
            Stop::Timeout => format!(
                "The search in '{search_path}' was stopped after {} seconds. Search a narrower \
                 directory or use a more specific pattern.",
                SEARCH_TIMEOUT.as_secs()
            ),
            Stop::TooLarge => format!(
                "The search in '{search_path}' was stopped after looking at {MAX_VISITED} \
                 entries. Search a narrower directory or use a more specific pattern."
            ),
        }
    }
}

/// Bounds of one search.
pub(crate) struct Budget {
    deadline: Instant,
    visited: usize,
    max_visited: usize,
}

impl Budget {
    pub(crate) fn new() -> Self {
        Self::with(SEARCH_TIMEOUT, MAX_VISITED)
    }

    pub(crate) fn with(timeout: Duration, max_visited: usize) -> Self {
        Self {
            deadline: Instant::now() + timeout,
            visited: 0,
            max_visited,
        }
    }

    fn tick(&mut self) -> Result<(), Stop> {
        self.visited += 1;
        if self.visited > self.max_visited {
            return Err(Stop::TooLarge);
        }
        if self.visited.is_multiple_of(256) {
            self.check_time()?;
        }
        Ok(())
    }

    fn check_time(&self) -> Result<(), Stop> {
        if Instant::now() >= self.deadline {
            Err(Stop::Timeout)
        } else {
            Ok(())
        }
    }
}

/// A glob that decides on its own which paths are in (ripgrep's `-g`).
struct Override {
    rule: Rule,
}

impl Override {
    /// `None` when the glob does not compile (ripgrep then fails and finds nothing).
    fn new(glob: &str) -> Option<Override> {
        let (negate, body) = match glob.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, glob),
        };
        let glob = if body.contains('/') {
            body.strip_prefix('/').unwrap_or(body).to_string()
        } else {
            format!("**/{body}")
        };
        let re = compile_glob(&glob, Dialect::Git).ok()?;
        Some(Override {
            rule: Rule {
                re,
                negate,
                dir_only: false,
            },
        })
    }

    /// `Some(true)` whitelisted, `Some(false)` excluded, `None` up to the other rules.
    fn decide(&self, rel: &str, is_dir: bool) -> Option<bool> {
        if self.rule.re.is_match(rel) {
            return Some(!self.rule.negate);
        }
        // With a whitelist glob, files it does not name are out; directories are not.
        (!self.rule.negate && !is_dir).then_some(false)
    }
}

/// The order siblings are visited in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// By name.
    Name,
    /// Most recently modified first (directories by their own time), then by name:
    /// ripgrep's `--sortr=modified`, which sorts each directory's entries, not the
    /// whole result.
    NewestFirst,
}

/// Calls `on_file(path, mtime)` for every regular file the walk admits under `root`,
/// depth first, siblings in `order`. Symlinks are never followed (nor listed).
fn walk(
    root: &Path,
    overrides: Option<&Override>,
    order: Order,
    budget: &mut Budget,
    on_file: &mut dyn FnMut(&Path, SystemTime, &mut Budget) -> Result<(), Stop>,
) -> Result<(), Stop> {
    let mut ignores = Ignores::for_root(root);
    // Each frame: a directory's sorted entries still to visit, its path relative to
    // the root, and whether it pushed an ignore level.
    struct Frame {
        entries: std::vec::IntoIter<(String, fs::FileType)>,
        dir: PathBuf,
        rel: String,
        pushed: bool,
    }
    let read = |dir: &Path| -> Vec<(String, fs::FileType)> {
        let Ok(rd) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut entries: Vec<(String, fs::FileType, SystemTime)> = rd
            .filter_map(Result::ok)
            .filter_map(|e| {
                let mtime = match order {
                    Order::Name => SystemTime::UNIX_EPOCH,
                    Order::NewestFirst => e
                        .metadata()
                        .and_then(|m| m.modified())
                        .unwrap_or(SystemTime::UNIX_EPOCH),
                };
                Some((
                    e.file_name().into_string().ok()?,
                    e.file_type().ok()?,
                    mtime,
                ))
            })
            .collect();
        entries.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        entries.into_iter().map(|(n, t, _)| (n, t)).collect()
    };
    let pushed = ignores.enter(root);
    let mut stack = vec![Frame {
        entries: read(root).into_iter(),
        dir: root.to_path_buf(),
        rel: String::new(),
        pushed,
    }];
    while let Some(frame) = stack.last_mut() {
        let Some((name, file_type)) = frame.entries.next() else {
            let done = stack.pop().expect("non-empty");
            if done.pushed {
                ignores.levels.pop();
            }
            continue;
        };
        budget.tick()?;
        if file_type.is_symlink() {
            continue;
        }
        let is_dir = file_type.is_dir();
        if !is_dir && !file_type.is_file() {
            continue;
        }
        let path = frame.dir.join(&name);
        let rel = if frame.rel.is_empty() {
            name.clone()
        } else {
            format!("{}/{name}", frame.rel)
        };
        let verdict = overrides.and_then(|o| o.decide(&rel, is_dir));
        match verdict {
            Some(false) => continue,
            Some(true) => {}
            None => {
                if name.starts_with('.') || ignores.ignored(&path, is_dir) {
                    continue;
                }
            }
        }
        if is_dir {
            let pushed = ignores.enter(&path);
            let entries = read(&path).into_iter();
            stack.push(Frame {
                entries,
                dir: path,
                rel,
                pushed,
            });
        } else {
            let mtime = fs::symlink_metadata(&path)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            on_file(&path, mtime, budget)?;
        }
    }
    Ok(())
}

/// Newest first; equal times by path, so the order is stable.
fn sort_newest_first(found: &mut [(PathBuf, SystemTime)]) {
    found.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn text_block(text: String) -> Value {
    json!([Content::text(text).to_json()])
}

// ---------------------------------------------------------------------------------------
// glob
// ---------------------------------------------------------------------------------------

/// The `GlobObservation` JSON, keys in the model's order.
fn glob_observation(
    text: String,
    is_error: bool,
    files: &[String],
    pattern: &str,
    search_path: &str,
    truncated: bool,
) -> Value {
    let mut obs = Map::new();
    obs.insert("content".into(), text_block(text));
    obs.insert("is_error".into(), Value::Bool(is_error));
    obs.insert("files".into(), json!(files));
    obs.insert("pattern".into(), Value::String(pattern.into()));
    obs.insert("search_path".into(), Value::String(search_path.into()));
    obs.insert("truncated".into(), Value::Bool(truncated));
    obs.insert("kind".into(), Value::String("GlobObservation".into()));
    Value::Object(obs)
}

/// Whether a path segment holds glob syntax (Python's `glob.has_magic`: `*`, `?`, `[`).
fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The reference's split of an absolute pattern (`/repo/src/**/*.py`) into the
/// directory to search (`/repo/src`) and the rest (`**/*.py`); a relative pattern is
/// kept whole (`None`).
fn split_absolute_pattern(pattern: &str, home: Option<&str>) -> (Option<PathBuf>, String) {
    if pattern.is_empty() {
        return (None, "**/*".into());
    }
    let expanded = match (pattern.strip_prefix('~'), home) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            format!("{home}{rest}")
        }
        _ => pattern.to_string(),
    };
    if !expanded.starts_with('/') {
        return (None, expanded);
    }
    let parts: Vec<&str> = expanded.split('/').filter(|p| !p.is_empty()).collect();
    let fixed = parts.iter().take_while(|p| !has_magic(p)).count();
    if fixed == 0 {
        return (
            Some(PathBuf::from("/")),
            expanded.trim_start_matches('/').to_string(),
        );
    }
    let dir: PathBuf = std::iter::once("/")
        .chain(parts[..fixed].iter().copied())
        .collect();
    let rest = if fixed == parts.len() {
        "**/*".to_string()
    } else {
        parts[fixed..].join("/")
    };
    (Some(dir), rest)
}

/// Runs a validated `GlobAction` (`pattern`, `path`) in `working_dir` and returns the
/// `GlobObservation` JSON. Blocking.
pub fn glob(action: &Value, working_dir: &Path) -> Value {
    glob_with(action, working_dir, &mut Budget::new())
}

pub(crate) fn glob_with(action: &Value, working_dir: &Path, budget: &mut Budget) -> Value {
    let original = action
        .get("pattern")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let path_arg = action
        .get("path")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty());
    let work_root =
        paths::resolve(Path::new("/"), working_dir).unwrap_or_else(|_| working_dir.to_path_buf());
    let resolved = |p: &Path| paths::resolve(&work_root, p).unwrap_or_else(|_| p.to_path_buf());
    let (search_path, pattern) = match path_arg {
        Some(p) => (resolved(Path::new(p)), original.clone()),
        None => {
            let home = std::env::var("HOME").ok();
            match split_absolute_pattern(&original, home.as_deref()) {
                (Some(dir), rest) => (resolved(&dir), rest),
                (None, rest) => (work_root.clone(), rest),
            }
        }
    };
    let shown = path_text(&search_path);
    if !search_path.is_dir() {
        return glob_observation(
            format!("Search path '{shown}' is not a valid directory"),
            true,
            &[],
            &original,
            &shown,
            false,
        );
    }
    let mut found: Vec<(PathBuf, SystemTime)> = Vec::new();
    // A glob ripgrep cannot parse makes it fail without output: no files.
    if let Some(over) = Override::new(&pattern) {
        let mut collect = |p: &Path, t: SystemTime, _: &mut Budget| {
            found.push((p.to_path_buf(), t));
            Ok(())
        };
        if let Err(stop) = walk(
            &search_path,
            Some(&over),
            Order::NewestFirst,
            budget,
            &mut collect,
        ) {
            return glob_observation(stop.message(&shown), true, &[], &original, &shown, false);
        }
    }
    // The walk's order is the answer's (the reference keeps ripgrep's output order).
    let files: Vec<String> = found
        .iter()
        .take(MAX_RESULTS)
        .map(|(p, _)| path_text(p))
        .collect();
    // The reference flags truncation once it holds 100 paths, even if there were no more.
    let truncated = files.len() >= MAX_RESULTS;
    let text = if files.is_empty() {
        format!("No files found matching pattern '{original}' in directory '{shown}'")
    } else {
        let mut t = format!(
            "Found {} file(s) matching pattern '{original}' in '{shown}':\n{}",
            files.len(),
            files.join("\n")
        );
        if truncated {
            t.push_str(
                "\n\n[Results truncated to first 100 files. Consider using a more specific \
                 pattern.]",
            );
        }
        t
    };
    glob_observation(text, false, &files, &original, &shown, truncated)
}

// ---------------------------------------------------------------------------------------
// grep
// ---------------------------------------------------------------------------------------

/// The `GrepObservation` JSON, keys in the model's order.
fn grep_observation(
    text: String,
    is_error: bool,
    matches: &[String],
    pattern: &str,
    search_path: &str,
    include: Option<&str>,
    truncated: bool,
) -> Value {
    let mut obs = Map::new();
    obs.insert("content".into(), text_block(text));
    obs.insert("is_error".into(), Value::Bool(is_error));
    obs.insert("matches".into(), json!(matches));
    obs.insert("pattern".into(), Value::String(pattern.into()));
    obs.insert("search_path".into(), Value::String(search_path.into()));
    obs.insert("include_pattern".into(), json!(include));
    obs.insert("truncated".into(), Value::Bool(truncated));
    obs.insert("kind".into(), Value::String("GrepObservation".into()));
    Value::Object(obs)
}

/// Whether a file's content matches, line by line; a NUL byte ends the search of the
/// file (ripgrep's binary-file rule). I/O errors count as no match.
fn file_matches(path: &Path, re: &regex::bytes::Regex, budget: &mut Budget) -> Result<bool, Stop> {
    let Ok(mut file) = fs::File::open(path) else {
        return Ok(false);
    };
    let mut buf = vec![0u8; CHUNK];
    let mut line: Vec<u8> = Vec::new();
    loop {
        budget.check_time()?;
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Ok(false),
        };
        let chunk = &buf[..n];
        if chunk.contains(&0) {
            return Ok(false);
        }
        for piece in chunk.split_inclusive(|b| *b == b'\n') {
            line.extend_from_slice(piece);
            let complete = line.last() == Some(&b'\n');
            if complete || line.len() >= MAX_LINE {
                if re.is_match(trim_eol(&line)) {
                    return Ok(true);
                }
                line.clear();
            }
        }
    }
    Ok(!line.is_empty() && re.is_match(trim_eol(&line)))
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Runs a validated `GrepAction` (`pattern`, `path`, `include`) in `working_dir` and
/// returns the `GrepObservation` JSON. Blocking.
pub fn grep(action: &Value, working_dir: &Path) -> Value {
    grep_with(action, working_dir, &mut Budget::new())
}

pub(crate) fn grep_with(action: &Value, working_dir: &Path, budget: &mut Budget) -> Value {
    let pattern = action.get("pattern").and_then(Value::as_str).unwrap_or("");
    let include = action.get("include").and_then(Value::as_str);
    let path_arg = action
        .get("path")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty());
    let work_root =
        paths::resolve(Path::new("/"), working_dir).unwrap_or_else(|_| working_dir.to_path_buf());
    let search_path = match path_arg {
        Some(p) => paths::resolve(&work_root, Path::new(p)).unwrap_or_else(|_| p.into()),
        None => work_root.clone(),
    };
    let shown = path_text(&search_path);
    let fail = |text: String| grep_observation(text, true, &[], pattern, &shown, include, false);
    if let Some(p) = path_arg
        && !search_path.is_dir()
    {
        return fail(format!("Search path '{p}' is not a valid directory"));
    }
    let re = match regex::bytes::RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(32 * 1024 * 1024)
        .build()
    {
        Ok(re) => re,
        Err(e) => return fail(format!("Invalid regex pattern: {}", regex_error(&e))),
    };
    // The reference keeps a path when no directory below the search root is hidden and
    // the file name matches `include` (or, without one, is not hidden).
    let name_filter = match include {
        Some(glob) => compile_glob(glob, Dialect::Fnmatch).ok(),
        None => None,
    };
    let over = include.map(Override::new);
    let mut found: Vec<(PathBuf, SystemTime)> = Vec::new();
    if !matches!(over, Some(None)) {
        let mut check = |p: &Path, t: SystemTime, budget: &mut Budget| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let hidden_dir = p
                .strip_prefix(&search_path)
                .ok()
                .and_then(Path::parent)
                .is_some_and(|dir| {
                    dir.components()
                        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
                });
            let keep = !hidden_dir
                && match (&name_filter, include) {
                    (Some(f), _) => f.is_match(name),
                    (None, Some(_)) => false,
                    (None, None) => !name.starts_with('.'),
                };
            if keep && file_matches(p, &re, budget)? {
                found.push((p.to_path_buf(), t));
            }
            Ok(())
        };
        let over = over.flatten();
        if let Err(stop) = walk(&search_path, over.as_ref(), Order::Name, budget, &mut check) {
            return fail(stop.message(&shown));
        }
    }
    sort_newest_first(&mut found);
    let truncated = found.len() > MAX_RESULTS;
    let matches: Vec<String> = found
        .iter()
        .take(MAX_RESULTS)
        .map(|(p, _)| path_text(p))
        .collect();
    let filtered = include
        .map(|i| format!(" (filtered by '{i}')"))
        .unwrap_or_default();
    let text = if matches.is_empty() {
        format!("No files found containing pattern '{pattern}' in directory '{shown}'{filtered}")
    } else {
        let mut t = format!(
            "Found {} file(s) containing pattern '{pattern}' in '{shown}'{filtered}:\n{}",
            matches.len(),
            matches.join("\n")
        );
        if truncated {
            t.push_str(
                "\n\n[Results truncated to first 100 files. Consider using a more specific \
                 pattern.]",
            );
        }
        t
    };
    grep_observation(text, false, &matches, pattern, &shown, include, truncated)
}

/// The regex crate's error, on one line.
fn regex_error(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(s) => s
            .lines()
            .rev()
            .find(|l| l.starts_with("error:"))
            .map(|l| l.trim_start_matches("error:").trim().to_string())
            .unwrap_or_else(|| s.replace('\n', " ")),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[&str]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        for f in files {
            let p = root.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, format!("content of {f}\n")).unwrap();
        }
        (dir, root)
    }

    fn rel(root: &Path, obs: &Value, key: &str) -> Vec<String> {
        let mut v: Vec<String> = obs[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                p.as_str()
                    .unwrap()
                    .strip_prefix(&format!("{}/", root.display()))
                    .unwrap()
                    .to_string()
            })
            .collect();
        v.sort();
        v
    }

    fn set_mtime(p: &Path, secs: u64) {
        let f = fs::File::options().write(true).open(p).unwrap();
        f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
            .unwrap();
    }

    #[test]
    fn glob_translation() {
        let m = |g: &str, p: &str| compile_glob(g, Dialect::Git).unwrap().is_match(p);
        assert!(m("**/*.py", "a.py") && m("**/*.py", "x/y/a.py"));
        assert!(m("src/*.ts", "src/a.ts") && !m("src/*.ts", "src/x/a.ts"));
        assert!(m("src/**/*.ts", "src/a.ts") && m("src/**/*.ts", "src/x/y/a.ts"));
        assert!(m("a/**", "a/b/c") && !m("a/**", "b/c"));
        assert!(m("*.{json,yaml}", "c.yaml") && !m("*.{json,yaml}", "c.toml"));
        assert!(m("[!a]?.txt", "bc.txt") && !m("[!a]?.txt", "ab.txt"));
        assert!(m("\\*.txt", "*.txt") && !m("\\*.txt", "a.txt"));
        assert!(compile_glob("src/{a", Dialect::Git).is_err());
        assert!(compile_glob("[abc", Dialect::Git).is_err());
        let f = |g: &str, p: &str| compile_glob(g, Dialect::Fnmatch).unwrap().is_match(p);
        assert!(f("*.py", "a.py") && f("[abc", "[abc") && f("*.{ts,tsx}", "a.tsx"));
        assert!(!f("*.PY", "a.py"));
    }

    #[test]
    fn glob_finds_files_newest_first_like_ripgrep() {
        let (_d, root) = tree(&[
            "app.py",
            "src/utils.py",
            "src/core/engine.py",
            ".hidden.py",
            ".github/ci.py",
            "readme.md",
        ]);
        set_mtime(&root.join("app.py"), 1000);
        set_mtime(&root.join("src/utils.py"), 3000);
        set_mtime(&root.join("src/core/engine.py"), 2000);
        set_mtime(&root.join(".hidden.py"), 500);
        let obs = glob(&json!({"pattern": "*.py", "path": null}), &root);
        let files: Vec<&str> = obs["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let shown = root.display().to_string();
        // `*.py` names files at any depth, hidden ones too, but not inside hidden dirs;
        // each directory's entries newest first (`src` and `src/core` changed last).
        assert_eq!(
            files,
            [
                format!("{shown}/src/core/engine.py"),
                format!("{shown}/src/utils.py"),
                format!("{shown}/app.py"),
                format!("{shown}/.hidden.py"),
            ]
        );
        assert_eq!(
            rel(&root, &obs, "files"),
            [".hidden.py", "app.py", "src/core/engine.py", "src/utils.py"]
        );
        assert_eq!(
            obs["content"][0]["text"]
                .as_str()
                .unwrap()
                .lines()
                .next()
                .unwrap(),
            format!("Found 4 file(s) matching pattern '*.py' in '{shown}':")
        );
        assert_eq!(obs["search_path"], shown);
        assert_eq!(
            obs.as_object().unwrap().keys().collect::<Vec<_>>(),
            [
                "content",
                "is_error",
                "files",
                "pattern",
                "search_path",
                "truncated",
                "kind"
            ]
        );
        let anchored = glob(&json!({"pattern": "src/*.py"}), &root);
        assert_eq!(rel(&root, &anchored, "files"), ["src/utils.py"]);
        // An absolute pattern is split into the directory and the rest.
        let abs = glob(&json!({"pattern": format!("{shown}/src/**/*.py")}), &root);
        assert_eq!(abs["search_path"], format!("{shown}/src"));
        assert_eq!(abs["pattern"], format!("{shown}/src/**/*.py"));
        assert_eq!(
            rel(&root, &abs, "files"),
            ["src/core/engine.py", "src/utils.py"]
        );
        let none = glob(&json!({"pattern": "*.rs"}), &root);
        assert_eq!(
            none["content"][0]["text"],
            format!("No files found matching pattern '*.rs' in directory '{shown}'")
        );
        assert_eq!(none["is_error"], false);
        let bad = glob(&json!({"pattern": "*", "path": "/nonexistent/dir"}), &root);
        assert_eq!(
            bad["content"][0]["text"],
            "Search path '/nonexistent/dir' is not a valid directory"
        );
        assert_eq!(bad["is_error"], true);
        // A glob ripgrep cannot parse finds nothing.
        let broken = glob(&json!({"pattern": "src/{a"}), &root);
        assert_eq!(broken["files"], json!([]));
    }

    #[test]
    fn glob_respects_ignore_files_and_never_follows_links() {
        let (_d, root) = tree(&[
            "keep.js",
            "node_modules/x/dep.js",
            "build/out.js",
            "sub/.ignore",
        ]);
        fs::create_dir(root.join(".git")).unwrap();
        fs::write(root.join(".gitignore"), "node_modules/\n/build\n").unwrap();
        fs::write(root.join("sub/.ignore"), "*.tmp\n").unwrap();
        fs::write(root.join("sub/a.tmp"), "x").unwrap();
        fs::write(root.join("sub/b.txt"), "").unwrap();
        std::os::unix::fs::symlink("/", root.join("rootlink")).unwrap();
        std::os::unix::fs::symlink(root.join("keep.js"), root.join("link.js")).unwrap();
        let obs = glob(&json!({"pattern": "**/*.js"}), &root);
        assert_eq!(rel(&root, &obs, "files"), ["keep.js"]);
        // What the glob names is in even when an ignore file excludes it (ripgrep's
        // override); without a glob naming it, it stays out.
        let sub = glob(&json!({"pattern": "sub/*"}), &root);
        assert_eq!(
            rel(&root, &sub, "files"),
            ["sub/.ignore", "sub/a.tmp", "sub/b.txt"]
        );
        let txt = glob(&json!({"pattern": "sub/*.t*"}), &root);
        assert_eq!(rel(&root, &txt, "files"), ["sub/a.tmp", "sub/b.txt"]);
        let grep_all = grep(&json!({"pattern": "."}), &root);
        assert!(!rel(&root, &grep_all, "matches").contains(&"sub/a.tmp".to_string()));
        // Outside a git repository .gitignore does not apply (ripgrep's rule).
        fs::remove_dir(root.join(".git")).unwrap();
        let obs = glob(&json!({"pattern": "**/*.js"}), &root);
        assert_eq!(
            rel(&root, &obs, "files"),
            ["build/out.js", "keep.js", "node_modules/x/dep.js"]
        );
    }

    #[test]
    fn glob_truncates_at_100() {
        let names: Vec<String> = (0..120).map(|i| format!("f{i}.txt")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (_d, root) = tree(&refs);
        let obs = glob(&json!({"pattern": "*.txt"}), &root);
        assert_eq!(obs["files"].as_array().unwrap().len(), 100);
        assert_eq!(obs["truncated"], true);
        assert!(obs["content"][0]["text"].as_str().unwrap().ends_with(
            "\n\n[Results truncated to first 100 files. Consider using a more specific pattern.]"
        ));
    }

    #[test]
    fn grep_lists_matching_files() {
        let (_d, root) = tree(&[
            "app.py",
            "util.js",
            ".env",
            ".hidden/secret.py",
            "docs/readme.md",
        ]);
        fs::write(root.join("app.py"), "def main():\n    PRINT('hi')\n").unwrap();
        fs::write(root.join("util.js"), "console.log('print')").unwrap();
        fs::write(root.join(".env"), "print=1\n").unwrap();
        fs::write(root.join(".hidden/secret.py"), "print\n").unwrap();
        fs::write(root.join("bin.dat"), b"print\0\x01").unwrap();
        let shown = root.display().to_string();
        let obs = grep(
            &json!({"pattern": "print", "path": null, "include": null}),
            &root,
        );
        assert_eq!(rel(&root, &obs, "matches"), ["app.py", "util.js"]);
        assert_eq!(obs["include_pattern"], Value::Null);
        assert_eq!(
            obs.as_object().unwrap().keys().collect::<Vec<_>>(),
            [
                "content",
                "is_error",
                "matches",
                "pattern",
                "search_path",
                "include_pattern",
                "truncated",
                "kind"
            ]
        );
        let py = grep(&json!({"pattern": "print", "include": "*.py"}), &root);
        assert_eq!(rel(&root, &py, "matches"), ["app.py"]);
        assert!(py["content"][0]["text"].as_str().unwrap().starts_with(&format!(
            "Found 1 file(s) containing pattern 'print' in '{shown}' (filtered by '*.py'):\n"
        )));
        // A hidden file is found when `include` names it; hidden directories never.
        let env = grep(&json!({"pattern": "print", "include": ".env"}), &root);
        assert_eq!(rel(&root, &env, "matches"), [".env"]);
        let braces = grep(&json!({"pattern": "print", "include": "*.{py,js}"}), &root);
        assert_eq!(rel(&root, &braces, "matches"), ["app.py", "util.js"]);
        let line = grep(&json!({"pattern": "^\\s+print"}), &root);
        assert_eq!(rel(&root, &line, "matches"), ["app.py"]);
        let none = grep(&json!({"pattern": "zzz", "include": "*.py"}), &root);
        assert_eq!(
            none["content"][0]["text"],
            format!(
                "No files found containing pattern 'zzz' in directory '{shown}' (filtered by '*.py')"
            )
        );
        let bad = grep(&json!({"pattern": "[invalid"}), &root);
        assert_eq!(bad["is_error"], true);
        assert!(
            bad["content"][0]["text"]
                .as_str()
                .unwrap()
                .starts_with("Invalid regex pattern: ")
        );
        let nodir = grep(&json!({"pattern": "x", "path": "missing"}), &root);
        assert_eq!(
            nodir["content"][0]["text"],
            "Search path 'missing' is not a valid directory"
        );
        assert_eq!(nodir["search_path"], format!("{shown}/missing"));
    }

    #[test]
    fn grep_truncates_after_100_and_stops_in_time() {
        let names: Vec<String> = (0..101).map(|i| format!("f{i}.py")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (_d, root) = tree(&refs);
        let obs = grep(&json!({"pattern": "content"}), &root);
        assert_eq!(obs["matches"].as_array().unwrap().len(), 100);
        assert_eq!(obs["truncated"], true);
        // Exactly 100 is not truncated for grep (unlike glob).
        fs::remove_file(root.join("f0.py")).unwrap();
        assert_eq!(
            grep(&json!({"pattern": "content"}), &root)["truncated"],
            false
        );
        let stopped = grep_with(
            &json!({"pattern": "content"}),
            &root,
            &mut Budget::with(Duration::from_secs(60), 10),
        );
        assert_eq!(stopped["is_error"], true);
        assert!(
            stopped["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("was stopped after looking at")
        );
        let late = glob_with(
            &json!({"pattern": "*"}),
            &root,
            &mut Budget::with(Duration::ZERO, 1_000_000),
        );
        assert_eq!(
            late["is_error"], false,
            "a small tree finishes before the first time check"
        );
    }
}
