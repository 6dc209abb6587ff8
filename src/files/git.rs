//! Git for the git routes: the list of changed files of a repository and
//! the before/after text of one file, as the reference computes them.
//!
//! `git` runs as a child process (tokio, never a shell) with a timeout,
//! `--no-pager`, prompts disabled, no optional locks, fsmonitor hooks off
//! and bounded output; user input only ever reaches git as separate
//! arguments, and a ref that looks like an option is refused before git
//! sees it. Paths come back NUL-separated (`-z`), so names with spaces,
//! quotes or newlines are reported exactly.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::paths;

/// Git's well-known empty tree: the base when there is no commit to compare to.
pub const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
/// Longest a single git command may run.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Most stdout bytes read from one git command.
const MAX_OUTPUT: u64 = 64 << 20;
/// Most stderr bytes kept (the rest is read and dropped).
const MAX_STDERR: usize = 64 << 10;
/// Largest file the diff route reads (the reference's limit).
pub const MAX_DIFF_FILE: u64 = 1 << 20;

/// Why a git command gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitError {
    /// Non-zero exit (or refused input); the command line as shown to clients.
    Failed(String),
    /// Killed after [`TIMEOUT`].
    TimedOut(String),
    /// Output larger than [`MAX_OUTPUT`].
    TooLarge(String),
    /// The server's user may not enter the directory (its path).
    Denied(String),
    /// No `git` executable.
    Missing,
    /// Spawning or reading failed.
    Io(String),
}

impl std::fmt::Display for GitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitError::Failed(c) => write!(f, "Git command failed: {c}"),
            GitError::TimedOut(c) => write!(f, "Git command timed out: {c}"),
            GitError::TooLarge(c) => write!(f, "Git command output is too large: {c}"),
            GitError::Denied(d) => write!(f, "Permission denied: {d}"),
            GitError::Missing => f.write_str("Git command not found. Is git installed?"),
            GitError::Io(e) => write!(f, "Git command could not run: {e}"),
        }
    }
}

/// Quotes one argument as Python's `shlex.quote` does, so command lines in
/// error messages read like the reference's.
pub fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c);
    if s.is_empty() {
        "''".into()
    } else if s.chars().all(safe) {
        s.into()
    } else {
        format!("'{}'", s.replace('\'', "'\"'\"'"))
    }
}

fn shown(args: &[&str]) -> String {
    let mut out = String::from("git --no-pager");
    for a in args {
        out.push(' ');
        out.push_str(&shell_quote(a));
    }
    out
}

async fn read_capped(mut r: impl AsyncRead + Unpin, keep: usize) -> io::Result<Vec<u8>> {
    let mut kept = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Ok(kept);
        }
        let room = keep.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
}

/// Runs `git --no-pager <args>` in `dir` and returns its stdout.
pub async fn run(dir: &Path, args: &[&str]) -> Result<Vec<u8>, GitError> {
    let line = shown(args);
    let mut cmd = Command::new("git");
    cmd.arg("--no-pager")
        .args(["-c", "core.fsmonitor=false"])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // A vanished working directory also reports NotFound.
            let dir_exists = tokio::fs::metadata(dir).await.is_ok_and(|m| m.is_dir());
            return Err(if dir_exists {
                GitError::Missing
            } else {
                GitError::Failed(line)
            });
        }
        // A directory the server's user cannot enter is the caller's
        // choice of path, not a server failure.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Err(GitError::Denied(dir.display().to_string()));
        }
        Err(e) => return Err(GitError::Io(e.to_string())),
    };
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(GitError::Io("git pipes unavailable".into()));
    };
    let pid = child.id();
    let work = async {
        let read_out = async {
            let mut buf = Vec::new();
            stdout.take(MAX_OUTPUT + 1).read_to_end(&mut buf).await?;
            if buf.len() as u64 > MAX_OUTPUT {
                // Stop git now rather than at the timeout; the child is not
                // reaped yet, so its pid cannot have been reused.
                if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                    // SAFETY: kill(2) with a pid we own and a valid signal.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            Ok::<_, io::Error>(buf)
        };
        let (out, err) = tokio::join!(read_out, read_capped(stderr, MAX_STDERR));
        let status = child.wait().await;
        (out, err, status)
    };
    let (out, err, status) = tokio::time::timeout(TIMEOUT, work)
        .await
        .map_err(|_| GitError::TimedOut(line.clone()))?;
    let out = out.map_err(|e| GitError::Io(e.to_string()))?;
    if out.len() as u64 > MAX_OUTPUT {
        return Err(GitError::TooLarge(line));
    }
    let status = status.map_err(|e| GitError::Io(e.to_string()))?;
    if !status.success() {
        let err = err.unwrap_or_default();
        log::debug!(
            "{line} exited with {status}: {}",
            String::from_utf8_lossy(&err).trim()
        );
        return Err(GitError::Failed(line));
    }
    Ok(out)
}

fn text(out: Vec<u8>) -> String {
    String::from_utf8_lossy(&out).trim().to_string()
}

/// The commit a name resolves to, `None` when it does not.
async fn verify(dir: &Path, name: &str) -> Result<Option<String>, GitError> {
    let spec = format!("{name}^{{commit}}");
    match run(dir, &["rev-parse", "--verify", "--quiet", &spec]).await {
        Ok(out) => Ok(Some(text(out)).filter(|s| !s.is_empty())),
        Err(GitError::Failed(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The remote default branch name (`main`), from local refs only.
async fn default_branch(dir: &Path) -> Result<Option<String>, GitError> {
    match run(
        dir,
        &[
            "symbolic-ref",
            "--quiet",
            "--short",
            "refs/remotes/origin/HEAD",
        ],
    )
    .await
    {
        Ok(out) => {
            let s = text(out);
            if let Some(b) = s.strip_prefix("origin/").filter(|b| !b.is_empty()) {
                return Ok(Some(b.to_string()));
            }
        }
        Err(GitError::Failed(_)) => {}
        Err(e) => return Err(e),
    }
    for b in ["main", "master"] {
        if verify(dir, &format!("refs/remotes/origin/{b}"))
            .await?
            .is_some()
        {
            return Ok(Some(b.to_string()));
        }
    }
    Ok(None)
}

/// The commit (or empty tree) to compare the working tree with.
///
/// An explicit `git_ref` must resolve to a commit, except `HEAD` on a
/// branch without commits, which means the empty tree. Without one: the
/// remote branch of the current branch, else the fork point with (or the
/// tip of) the remote default branch, else `HEAD`, else the empty tree.
pub async fn base_ref(dir: &Path, git_ref: Option<&str>) -> Result<String, GitError> {
    if let Some(r) = git_ref {
        let spec = format!("{r}^{{commit}}");
        let args = ["rev-parse", "--verify", spec.as_str()];
        if r.starts_with('-') {
            return Err(GitError::Failed(shown(&args)));
        }
        return match run(dir, &args).await {
            Ok(out) => Ok(text(out)),
            Err(GitError::Failed(_)) if r == "HEAD" => Ok(EMPTY_TREE.into()),
            Err(e) => Err(e),
        };
    }
    let Some(head) = verify(dir, "HEAD").await? else {
        return Ok(EMPTY_TREE.into());
    };
    if let Ok(out) = run(dir, &["rev-parse", "--abbrev-ref", "HEAD"]).await {
        let branch = text(out);
        if !branch.is_empty()
            && branch != "HEAD"
            && let Some(sha) = verify(dir, &format!("refs/remotes/origin/{branch}")).await?
        {
            return Ok(sha);
        }
    }
    if let Some(default) = default_branch(dir).await? {
        let remote = format!("refs/remotes/origin/{default}");
        if let Ok(out) = run(dir, &["merge-base", "HEAD", &remote]).await {
            let sha = text(out);
            if !sha.is_empty() {
                return Ok(sha);
            }
        }
        if let Some(sha) = verify(dir, &remote).await? {
            return Ok(sha);
        }
    }
    Ok(head)
}

/// One changed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `ADDED`, `DELETED` or `UPDATED` (renames are a deletion plus an
    /// addition, as in the reference).
    pub status: &'static str,
    /// Path relative to the repository root, `/`-separated.
    pub path: String,
}

fn parse_name_status(out: &[u8]) -> Vec<Change> {
    let mut changes = vec![];
    let mut tokens = out
        .split(|b| *b == 0)
        .map(|t| String::from_utf8_lossy(t).into_owned());
    while let Some(status) = tokens.next() {
        if status.is_empty() {
            continue;
        }
        let Some(path) = tokens.next() else { break };
        match status.as_bytes()[0] {
            b'A' => changes.push(Change {
                status: "ADDED",
                path,
            }),
            b'D' => changes.push(Change {
                status: "DELETED",
                path,
            }),
            b'M' | b'T' | b'U' => changes.push(Change {
                status: "UPDATED",
                path,
            }),
            b'R' | b'C' => {
                let Some(new) = tokens.next() else { break };
                if status.starts_with('R') {
                    changes.push(Change {
                        status: "DELETED",
                        path,
                    });
                }
                changes.push(Change {
                    status: "ADDED",
                    path: new,
                });
            }
            _ => log::debug!("git diff: status {status} for {path} ignored"),
        }
    }
    changes
}

async fn repo_changes(dir: &Path, git_ref: Option<&str>) -> Result<Vec<Change>, GitError> {
    let base = base_ref(dir, git_ref).await?;
    let out = run(
        dir,
        &[
            "diff",
            "--name-status",
            "--no-renames",
            "--no-ext-diff",
            "-z",
            &base,
            "--",
        ],
    )
    .await?;
    let mut changes = parse_name_status(&out);
    // As in the reference, a failure to list untracked files only loses them.
    if let Ok(out) = run(
        dir,
        &[
            "ls-files",
            "--others",
            "--exclude-standard",
            "--full-name",
            "-z",
        ],
    )
    .await
    {
        changes.extend(
            out.split(|b| *b == 0)
                .filter(|t| !t.is_empty())
                .map(|t| Change {
                    status: "ADDED",
                    path: String::from_utf8_lossy(t).into_owned(),
                }),
        );
    }
    Ok(changes)
}

async fn is_repo(dir: &Path) -> Result<bool, GitError> {
    match run(dir, &["rev-parse", "--git-dir"]).await {
        Ok(_) => Ok(true),
        Err(GitError::Failed(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Visible subdirectories of `dir` that hold their own `.git`.
async fn nested_repos(dir: &Path) -> Vec<String> {
    let mut found = vec![];
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return found;
    };
    while let Ok(Some(e)) = entries.next_entry().await {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !e.file_type().await.is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if tokio::fs::symlink_metadata(e.path().join(".git"))
            .await
            .is_ok()
        {
            found.push(name);
        }
    }
    found
}

/// Changes of the repository at `raw_path` (relative paths resolve against
/// the server's current directory). A path that is not a directory inside a
/// repository has no changes. Repositories nested one level below report
/// their changes under their directory name.
pub async fn changes(raw_path: &str, git_ref: Option<&str>) -> Result<Vec<Change>, GitError> {
    let Ok(given) = paths::from_cwd(raw_path) else {
        return Ok(vec![]);
    };
    let Ok(dir) = tokio::fs::canonicalize(&given).await else {
        return Ok(vec![]);
    };
    if !tokio::fs::metadata(&dir).await.is_ok_and(|m| m.is_dir()) || !is_repo(&dir).await? {
        return Ok(vec![]);
    }
    let nested = nested_repos(&dir).await;
    let mut all: Vec<Change> = repo_changes(&dir, git_ref)
        .await?
        .into_iter()
        .filter(|c| {
            !nested
                .iter()
                .any(|n| Path::new(&c.path).starts_with(n) || c.path == format!("{n}/"))
        })
        .collect();
    for n in &nested {
        match repo_changes(&dir.join(n), git_ref).await {
            Ok(sub) => all.extend(sub.into_iter().map(|c| Change {
                status: c.status,
                path: format!("{n}/{}", c.path),
            })),
            Err(e) => log::warn!("skipping nested repository {n}: {e}"),
        }
    }
    all.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(all)
}

/// The answer of the diff route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileDiff {
    /// The file is not inside a repository (`{"modified":null,"original":null}`).
    NotInRepo,
    /// The file's text now and at the base.
    Texts {
        /// Current content.
        modified: String,
        /// Content at the base (empty when it did not exist).
        original: String,
    },
}

/// Why the diff route cannot answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffError {
    /// A problem with the given path (message for the client).
    Path(String),
    /// Git failed.
    Git(GitError),
}

impl From<GitError> for DiffError {
    fn from(e: GitError) -> Self {
        DiffError::Git(e)
    }
}

/// Python's `str.isspace`, used by `str.strip`.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Python's `"\n".join(s.splitlines())`.
pub fn join_lines(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    let mut pending_break = false;
    while let Some(c) = chars.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\x0b'
                | '\x0c'
                | '\x1c'
                | '\x1d'
                | '\x1e'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if is_break {
            if c == '\r' && chars.peek() == Some(&'\n') {
                chars.next();
            }
            if pending_break {
                out.push('\n');
            }
            pending_break = true;
        } else {
            if pending_break {
                out.push('\n');
                pending_break = false;
            }
            out.push(c);
        }
    }
    out
}

/// Git output as the reference reads it: universal newlines, stripped.
fn reference_text(out: &[u8]) -> String {
    match std::str::from_utf8(out) {
        Ok(s) => s
            .replace("\r\n", "\n")
            .replace('\r', "\n")
            .trim_matches(py_space)
            .to_string(),
        Err(_) => String::new(),
    }
}

async fn closest_repo(file: &Path) -> Option<PathBuf> {
    for dir in file.ancestors().skip(1) {
        if tokio::fs::symlink_metadata(dir.join(".git")).await.is_ok() {
            return Some(dir.to_path_buf());
        }
    }
    None
}

/// The current and base text of the file at `raw_path` (relative paths
/// resolve against the server's current directory).
pub async fn diff(raw_path: &str, git_ref: Option<&str>) -> Result<FileDiff, DiffError> {
    let given = paths::from_cwd(raw_path)
        .map_err(|_| DiffError::Path(format!("File does not exist: {raw_path}")))?;
    let missing = || DiffError::Path(format!("File does not exist: {}", given.display()));
    let file = tokio::fs::canonicalize(&given)
        .await
        .map_err(|_| missing())?;
    let meta = tokio::fs::metadata(&file).await.map_err(|_| missing())?;
    if !meta.is_file() {
        return Err(DiffError::Path(format!(
            "Path is not a file: {}",
            file.display()
        )));
    }
    if meta.len() > MAX_DIFF_FILE {
        return Err(DiffError::Path(format!(
            "File too large for git diff: {} bytes (max: {MAX_DIFF_FILE} bytes)",
            meta.len()
        )));
    }
    let Some(repo) = closest_repo(&file).await else {
        return Ok(FileDiff::NotInRepo);
    };
    if !is_repo(&repo).await? {
        return Ok(FileDiff::NotInRepo);
    }
    let base = base_ref(&repo, git_ref).await?;
    let rel: Vec<String> = file
        .strip_prefix(&repo)
        .map_err(|_| {
            DiffError::Path(format!(
                "File is not within git repository: {}",
                file.display()
            ))
        })?
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let spec = format!("{base}:{}", rel.join("/"));
    let original = match run(&repo, &["show", &spec]).await {
        Ok(out) => reference_text(&out),
        Err(e) => {
            log::debug!("no base content for {}: {e}", file.display());
            String::new()
        }
    };
    let mut current = Vec::new();
    let read = async {
        let f = tokio::fs::File::open(&file).await?;
        f.take(MAX_DIFF_FILE).read_to_end(&mut current).await
    };
    let modified = match read.await {
        Ok(_) => std::str::from_utf8(&current)
            .map(join_lines)
            .unwrap_or_default(),
        Err(e) => {
            log::warn!("cannot read {}: {e}", file.display());
            String::new()
        }
    };
    Ok(FileDiff::Texts { modified, original })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_like_shlex() {
        assert_eq!(shell_quote("HEAD"), "HEAD");
        assert_eq!(shell_quote("x^{commit}"), "'x^{commit}'");
        assert_eq!(shell_quote("it's"), "'it'\"'\"'s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(
            shown(&["rev-parse", "--verify", "x^{commit}"]),
            "git --no-pager rev-parse --verify 'x^{commit}'"
        );
    }

    #[test]
    fn name_status_parsing() {
        let out = b"M\0a b.txt\0D\0gone\0A\0new\0R100\0old\0moved\0C75\0src\0copy\0T\0link\0";
        let got = parse_name_status(out);
        let pairs: Vec<(&str, &str)> = got.iter().map(|c| (c.status, c.path.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("UPDATED", "a b.txt"),
                ("DELETED", "gone"),
                ("ADDED", "new"),
                ("DELETED", "old"),
                ("ADDED", "moved"),
                ("ADDED", "copy"),
                ("UPDATED", "link")
            ]
        );
    }

    #[test]
    fn python_line_handling() {
        assert_eq!(join_lines("a\n\nb\n"), "a\n\nb");
        assert_eq!(join_lines("a\r\nb\rc"), "a\nb\nc");
        assert_eq!(join_lines(""), "");
        assert_eq!(join_lines("\n"), "");
        assert_eq!(join_lines("x\u{2028}y"), "x\ny");
        assert_eq!(reference_text(b"  a\r\nb \n\n"), "a\nb");
        assert_eq!(reference_text(b"\xff"), "");
    }
}
