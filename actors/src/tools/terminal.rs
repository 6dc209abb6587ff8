//! The agent's `terminal` tool: one persistent bash per conversation, owned by the
//! supervised [`TerminalSession`] actor. It runs `TerminalAction`s (contract §3.3) on a real
//! PTY, detects when a command is done through a prompt marker, applies the soft
//! (no-new-output) and hard timeouts, and renders `TerminalObservation`s both as event JSON
//! and as the text the LLM reads. It owns the shell and every process of the shell's
//! session and kills them on `Close`, reset, restart and stop. It must not block the
//! arbiter's thread (all waiting is async, so other conversations keep running), must not
//! persist events or talk to the LLM, and must never pass a server key to the shell.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix::{Actor, Context, Handler, ResponseFuture, Supervised};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::tools::pty::{self, PtyMaster, PtyPair};

/// Terminal size the shell sees; wide enough that ordinary output does not wrap.
const SHELL_COLS: u16 = 160;
const SHELL_ROWS: u16 = 40;
/// How long a new shell may take to print its first prompt marker.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write to the terminal may wait for room in its input queue.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between Ctrl-C, SIGTERM and SIGKILL when a foreground job is interrupted.
const INTERRUPT_GRACE: Duration = Duration::from_secs(1);
/// How long a hard timeout waits for the prompt after interrupting the job.
const KILL_SETTLE: Duration = Duration::from_millis(3500);
/// How long `Close` lets the session's processes handle SIGTERM before SIGKILL.
const CLOSE_GRACE: Duration = Duration::from_millis(500);
/// Canonical-mode terminals keep at most 4095 bytes of one input line; longer commands
/// are written to a script file and sourced instead.
const MAX_LINE_BYTES: usize = 4000;
const MAX_TYPED_BYTES: usize = 256 * 1024;
/// Output kept per command: the first `BUF_HEAD` and the last `BUF_TAIL` bytes; the middle
/// of a flood is dropped (the observation shows at most 30 000 characters anyway).
const BUF_HEAD: usize = 1 << 20;
const BUF_TAIL: usize = 1 << 20;
/// Outputs larger than this are cleaned on the blocking pool.
const OFF_THREAD_BYTES: usize = 64 * 1024;

const PREVIOUS_OUTPUT_PREFIX: &str = "[Below is the output of the previous command.]\n";
const ERROR_PREFIX: &str = "[An error occurred during execution.]\n";
const RESET_TEXT: &str = "Terminal session has been reset. All previous environment variables and session state have been cleared.";
const NO_LOGS: &str = "No previous running command to retrieve logs from.";
const NO_INTERACT: &str = "No previous running command to interact with.";
const SECRET_MASK: &str = "<secret-hidden>";
const WAIT_HINT: &str = "You can wait for more output by sending an empty command '', send input or keys such as C-c, C-z or C-d with is_input=true to interact with the process or stop it, or set the timeout parameter for commands that need longer.";

/// How a conversation's terminal is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct TerminalConfig {
    /// The directory the shell starts in; it must exist.
    pub working_dir: PathBuf,
    /// How long a command may print nothing before the call returns with exit code -1
    /// (the soft timeout, 30 s by default). Not applied when the action sets `timeout`.
    pub no_change_timeout: Duration,
    /// The most characters an observation's content holds, and the length its LLM
    /// rendering is clipped to (30 000 by default).
    pub max_output_chars: usize,
    /// Where clipped outputs are saved in full as `terminal_output_<sha8>.txt`; also
    /// reported as the observation's `full_output_save_dir`. `None` saves nothing.
    pub full_output_save_dir: Option<PathBuf>,
    /// Extra environment variables for the shell, applied over the server's own.
    pub env: Vec<(String, String)>,
    /// The shell to run instead of `bash` from `PATH`; it must accept bash's options.
    pub shell_path: Option<PathBuf>,
}

impl TerminalConfig {
    /// A configuration with the reference defaults (30 s soft timeout, 30 000 characters).
    pub fn new(working_dir: impl Into<PathBuf>) -> Self {
        Self {
            working_dir: working_dir.into(),
            no_change_timeout: Duration::from_secs(30),
            max_output_chars: 30_000,
            full_output_save_dir: None,
            env: Vec::new(),
            shell_path: None,
        }
    }
}

/// Failures that are not a command's own result. The caller turns them into an
/// `AgentErrorEvent` (`Error executing tool 'terminal': <Display>`) or an error observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminalError {
    /// The action JSON is not a valid `TerminalAction`.
    InvalidAction(String),
    /// `reset` and `is_input` were both set; the reference raises a `ValueError` for this.
    ResetWithInput,
    /// The shell process could not be started.
    Spawn(String),
    /// The shell started but never printed its first prompt.
    NotReady,
    /// Writing to the terminal failed or timed out.
    Io(String),
    /// The session was closed while this action was starting a shell.
    Closed,
}

impl fmt::Display for TerminalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidAction(msg) => write!(f, "invalid TerminalAction: {msg}"),
            Self::ResetWithInput => f.write_str("Cannot use reset=True with is_input=True"),
            Self::Spawn(msg) => write!(f, "could not start the shell: {msg}"),
            Self::NotReady => write!(
                f,
                "the shell did not become ready within {} seconds",
                READY_TIMEOUT.as_secs()
            ),
            Self::Io(msg) => write!(f, "terminal I/O failed: {msg}"),
            Self::Closed => f.write_str("the terminal session was closed"),
        }
    }
}

impl std::error::Error for TerminalError {}

/// Run one `TerminalAction` (`{"command","is_input","timeout","reset","kind":"TerminalAction"}`).
/// `secrets` maps names to values: those whose name appears in the command are exported
/// before it runs, and every value found in the output is replaced by `<secret-hidden>`.
#[derive(actix::Message)]
#[rtype(result = "Result<TerminalObservation, TerminalError>")]
pub struct Execute {
    /// The action JSON.
    pub action: Value,
    /// Conversation secrets, name → value.
    pub secrets: Vec<(String, String)>,
}

/// Interrupt whatever runs now: Ctrl-C to the foreground job, then SIGTERM and SIGKILL to
/// its process group after a grace period each. A pending `Execute` then completes.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Interrupt;

/// Stop the shell and every process of its session; the next `Execute` starts a new one.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Close;

/// `CmdOutputMetadata`: what the shell's prompt reported after a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdOutputMetadata {
    /// The command's exit code; -1 while it runs or when unknown.
    pub exit_code: i64,
    /// Always -1, as in the reference.
    pub pid: i64,
    /// The shell's user.
    pub username: Option<String>,
    /// The machine's host name.
    pub hostname: Option<String>,
    /// The shell's working directory after the command.
    pub working_dir: Option<String>,
    /// The `python3` (or `python`) first on the shell's `PATH`.
    pub py_interpreter_path: Option<String>,
    /// Text shown to the LLM before the output.
    pub prefix: String,
    /// Text shown to the LLM after the output.
    pub suffix: String,
}

impl Default for CmdOutputMetadata {
    fn default() -> Self {
        Self {
            exit_code: -1,
            pid: -1,
            username: None,
            hostname: None,
            working_dir: None,
            py_interpreter_path: None,
            prefix: String::new(),
            suffix: String::new(),
        }
    }
}

impl CmdOutputMetadata {
    /// The metadata JSON, in the reference's key order.
    pub fn to_json(&self) -> Value {
        json!({
            "exit_code": self.exit_code,
            "pid": self.pid,
            "username": self.username,
            "hostname": self.hostname,
            "working_dir": self.working_dir,
            "py_interpreter_path": self.py_interpreter_path,
            "prefix": self.prefix,
            "suffix": self.suffix,
        })
    }
}

/// The result of one `TerminalAction`, as the event JSON and as the LLM's text.
#[derive(Debug, Clone, PartialEq)]
pub struct TerminalObservation {
    output: String,
    is_error: bool,
    command: String,
    exit_code: Option<i64>,
    metadata: CmdOutputMetadata,
    full_output_save_dir: Option<PathBuf>,
    max_chars: usize,
    saved_output: Option<PathBuf>,
}

impl TerminalObservation {
    fn new(cfg: &TerminalConfig, command: &str, output: String) -> Self {
        Self {
            output,
            is_error: false,
            command: command.to_owned(),
            exit_code: None,
            metadata: CmdOutputMetadata::default(),
            full_output_save_dir: cfg.full_output_save_dir.clone(),
            max_chars: cfg.max_output_chars,
            saved_output: None,
        }
    }

    fn error(cfg: &TerminalConfig, command: &str, text: &str) -> Self {
        Self {
            is_error: true,
            ..Self::new(cfg, command, text.to_owned())
        }
    }

    /// The command's own output (cleaned and masked, not yet clipped).
    pub fn output(&self) -> &str {
        &self.output
    }

    /// Whether the observation reports an error.
    pub fn is_error(&self) -> bool {
        self.is_error
    }

    /// The `command` field: the action's command, or `[RESET]…` after a reset.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The top-level `exit_code`: the command's code, -1 while it runs, `None` for errors.
    pub fn exit_code(&self) -> Option<i64> {
        self.exit_code
    }

    /// The prompt metadata and the LLM prefix/suffix.
    pub fn metadata(&self) -> &CmdOutputMetadata {
        &self.metadata
    }

    /// Where the full output was saved because it had to be clipped.
    pub fn saved_output(&self) -> Option<&Path> {
        self.saved_output.as_deref()
    }

    /// The observation JSON with `kind` last:
    /// `{"content":[text],"is_error","command","exit_code","timeout":false,"metadata",
    /// "full_output_save_dir","kind":"TerminalObservation"}`. `timeout` stays false even after
    /// a timeout, as the reference does.
    pub fn to_json(&self) -> Value {
        let text = clip(&self.output, self.max_chars, self.saved_output.as_deref());
        json!({
            "content": [{"cache_prompt": false, "type": "text", "text": text}],
            "is_error": self.is_error,
            "command": self.command,
            "exit_code": self.exit_code,
            "timeout": false,
            "metadata": self.metadata.to_json(),
            "full_output_save_dir": self.full_output_save_dir.as_ref().map(|p| p.display().to_string()),
            "kind": "TerminalObservation",
        })
    }

    /// The text the LLM reads (`to_llm_content`): the error line, prefix, output, suffix,
    /// working directory, interpreter and exit code, clipped to the output limit by keeping
    /// the head and the tail of the output around a `<response clipped>` note that names
    /// the saved full output.
    pub fn llm_text(&self) -> String {
        let head = self.llm_head();
        let tail = self.llm_tail();
        let budget = self.llm_output_budget(&head, &tail);
        let body = clip(&self.output, budget, self.saved_output.as_deref());
        let text = format!("{head}{body}{tail}");
        if char_len(&text) > self.max_chars {
            clip(&text, self.max_chars, self.saved_output.as_deref())
        } else {
            text
        }
    }

    fn llm_head(&self) -> String {
        let mut head = String::new();
        if self.is_error {
            head.push_str(ERROR_PREFIX);
        }
        head.push_str(&self.metadata.prefix);
        head
    }

    fn llm_tail(&self) -> String {
        let m = &self.metadata;
        let mut tail = m.suffix.clone();
        if let Some(dir) = &m.working_dir {
            tail.push_str(&format!("\n[Current working directory: {dir}]"));
        }
        if let Some(py) = &m.py_interpreter_path {
            tail.push_str(&format!("\n[Python interpreter: {py}]"));
        }
        if m.exit_code != -1 {
            tail.push_str(&format!(
                "\n[Command finished with exit code {}]",
                m.exit_code
            ));
        }
        tail
    }

    fn llm_output_budget(&self, head: &str, tail: &str) -> usize {
        self.max_chars
            .saturating_sub(char_len(head) + char_len(tail))
    }

    /// Whether either rendering has to clip the output, so the full text must be saved.
    fn needs_saving(&self) -> bool {
        let budget = self.llm_output_budget(&self.llm_head(), &self.llm_tail());
        char_len(&self.output) > budget.min(self.max_chars)
    }

    /// Saves the full output next to the other observation files when it will be clipped.
    async fn save_if_clipped(mut self) -> Self {
        if !self.needs_saving() {
            return self;
        }
        let Some(dir) = self.full_output_save_dir.clone() else {
            return self;
        };
        let output = self.output.clone();
        // Hashing and writing megabytes is blocking work.
        let saved = tokio::task::spawn_blocking(move || {
            let path = dir.join(format!("terminal_output_{}.txt", sha8(&output)));
            std::fs::create_dir_all(&dir)?;
            std::fs::write(&path, output.as_bytes())?;
            Ok::<_, std::io::Error>(path)
        })
        .await;
        match saved {
            Ok(Ok(path)) => self.saved_output = Some(path),
            Ok(Err(e)) => log::warn!("could not save the full terminal output: {e}"),
            Err(e) => log::warn!("saving the full terminal output failed: {e}"),
        }
        self
    }
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

fn sha8(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest
        .as_ref()
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Keeps the head and the tail of `text` around a `<response clipped>` note so that the
/// result has at most `budget` characters.
fn clip(text: &str, budget: usize, saved: Option<&Path>) -> String {
    let total = char_len(text);
    if total <= budget {
        return text.to_owned();
    }
    let where_saved = match saved {
        Some(p) => format!(
            " The complete output is saved in {}; read the part you need from there (for example with sed -n or grep).",
            p.display()
        ),
        None => String::new(),
    };
    let note = format!(
        "\n<response clipped><NOTE>This output has {total} characters, more than can be shown, so its middle part was left out.{where_saved}</NOTE>\n"
    );
    let note_len = char_len(&note);
    if budget <= note_len {
        return text.chars().take(budget).collect();
    }
    let keep = budget - note_len;
    let head = keep / 2;
    let tail = keep - head;
    let head_end = text.char_indices().nth(head).map_or(text.len(), |(i, _)| i);
    let tail_start = text
        .char_indices()
        .nth(total - tail)
        .map_or(text.len(), |(i, _)| i);
    format!("{}{note}{}", &text[..head_end], &text[tail_start..])
}

/// The parsed `TerminalAction`.
#[derive(Debug, Clone, PartialEq)]
struct TerminalAction {
    command: String,
    is_input: bool,
    timeout: Option<f64>,
    reset: bool,
}

impl TerminalAction {
    fn parse(v: &Value) -> Result<Self, TerminalError> {
        let bad = |m: &str| TerminalError::InvalidAction(m.to_owned());
        let obj = v.as_object().ok_or_else(|| bad("expected a JSON object"))?;
        match obj.get("kind") {
            None | Some(Value::Null) => {}
            Some(Value::String(k)) if k == "TerminalAction" => {}
            Some(_) => return Err(bad("kind must be \"TerminalAction\"")),
        }
        let command = match obj.get("command") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(bad("command must be a string")),
            None => return Err(bad("command is required")),
        };
        let flag = |name: &str| match obj.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(bad(&format!("{name} must be a boolean"))),
        };
        let timeout = match obj.get("timeout") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(t) if t.is_finite() && t >= 0.0 => Some(t),
                _ => return Err(bad("timeout must be a number >= 0")),
            },
            Some(_) => return Err(bad("timeout must be a number")),
        };
        Ok(Self {
            command,
            is_input: flag("is_input")?,
            timeout,
            reset: flag("reset")?,
        })
    }
}

/// A key sent with `is_input`: its bytes, and for `C-<letter>` the letter (for the
/// `CTRL+<L> was sent.` suffix).
fn special_key(text: &str) -> Option<(Vec<u8>, Option<char>)> {
    let t = text.trim();
    let b = t.as_bytes();
    if b.len() == 3 && (b[0] == b'C' || b[0] == b'c') && b[1] == b'-' && b[2].is_ascii_alphabetic()
    {
        let letter = b[2].to_ascii_uppercase();
        return Some((vec![letter & 0x1f], Some(char::from(letter))));
    }
    let seq: &[u8] = match t.to_ascii_uppercase().as_str() {
        "UP" => b"\x1b[A",
        "DOWN" => b"\x1b[B",
        "RIGHT" => b"\x1b[C",
        "LEFT" => b"\x1b[D",
        "HOME" => b"\x1b[H",
        "END" => b"\x1b[F",
        "PGUP" => b"\x1b[5~",
        "PGDN" => b"\x1b[6~",
        "TAB" => b"\t",
        "ESC" => b"\x1b",
        "BS" => b"\x7f",
        "ENTER" => b"\r",
        _ => return None,
    };
    Some((seq.to_vec(), None))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Frame {
    Paren,
    Brace,
    If,
    Case,
    Do,
    DQuote,
    Backtick,
}

fn is_word_end(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            ';' | '&' | '|' | '(' | ')' | '<' | '>' | '\'' | '"' | '`' | '\\' | '$'
        )
}

fn is_operator_char(c: char) -> bool {
    matches!(c, ';' | '&' | '|' | '(' | ')' | '<' | '>')
}

/// Index of the next `quote` at or after `from`, or `cs.len()` when it is unterminated.
fn skip_until(cs: &[char], from: usize, quote: char) -> usize {
    cs.iter()
        .skip(from)
        .position(|&c| c == quote)
        .map_or(cs.len(), |p| from + p)
}

/// Index of the closing quote of a `$'…'` string starting at `from`.
fn skip_ansi_c(cs: &[char], mut from: usize) -> usize {
    while from < cs.len() {
        match cs[from] {
            '\\' => from += 2,
            '\'' => return from,
            _ => from += 1,
        }
    }
    cs.len()
}

/// Index of the `}` closing the `{` at `open`.
fn skip_braces(cs: &[char], open: usize) -> usize {
    let mut depth = 0usize;
    for (i, &c) in cs.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    cs.len()
}

/// Reads the delimiter word after `<<` (at `from`), records it, and returns the index of
/// the last character consumed.
fn read_heredoc_word(cs: &[char], from: usize, heredocs: &mut Vec<(String, bool)>) -> usize {
    let mut j = from;
    let strip_tabs = cs.get(j) == Some(&'-');
    if strip_tabs {
        j += 1;
    }
    while matches!(cs.get(j), Some(' ' | '\t')) {
        j += 1;
    }
    let mut word = String::new();
    while let Some(&c) = cs.get(j) {
        if c.is_whitespace() || is_operator_char(c) {
            break;
        }
        match c {
            '\'' | '"' => {
                j += 1;
                while let Some(&q) = cs.get(j) {
                    if q == c {
                        break;
                    }
                    word.push(q);
                    j += 1;
                }
            }
            '\\' => {
                j += 1;
                if let Some(&e) = cs.get(j) {
                    word.push(e);
                }
            }
            _ => word.push(c),
        }
        j += 1;
    }
    if !word.is_empty() {
        heredocs.push((word, strip_tabs));
    }
    j.saturating_sub(1).max(from.saturating_sub(1))
}

/// Skips the bodies of the pending heredocs that start at `from`; returns the index just
/// after the last delimiter line.
fn skip_heredoc_bodies(cs: &[char], from: usize, heredocs: &[(String, bool)]) -> usize {
    let mut j = from;
    for (delim, strip_tabs) in heredocs {
        loop {
            if j >= cs.len() {
                return cs.len();
            }
            let line_end = cs
                .iter()
                .skip(j)
                .position(|&c| c == '\n')
                .map_or(cs.len(), |p| j + p);
            let line: String = cs[j..line_end].iter().collect();
            let line = if *strip_tabs {
                line.trim_start_matches('\t')
            } else {
                line.as_str()
            };
            let done = line == delim;
            j = (line_end + 1).min(cs.len());
            if done {
                break;
            }
        }
    }
    j
}

/// Splits a command into its top-level commands: the pieces separated by newlines that
/// are outside quotes, substitutions, compound commands (`if`/`case`/`do`/`{`/`(`),
/// heredoc bodies, backslash continuations and trailing `&&`/`||`/`|`. Comment-only lines
/// are not commands. When in doubt it keeps text together: bash then sees the whole text
/// as typed, while a wrong split would refuse a valid command.
fn top_level_commands(cmd: &str) -> Vec<String> {
    let cs: Vec<char> = cmd.chars().collect();
    let n = cs.len();
    let mut stack: Vec<Frame> = Vec::new();
    let mut heredocs: Vec<(String, bool)> = Vec::new();
    let mut cmd_start = true;
    let mut continued = false;
    let mut seg_start = 0;
    let mut segments = Vec::new();
    let mut i = 0;
    let pop_if = |stack: &mut Vec<Frame>, f: Frame| {
        if stack.last() == Some(&f) {
            stack.pop();
        }
    };
    while i < n {
        let c = cs[i];
        match stack.last() {
            Some(Frame::DQuote) => {
                match c {
                    '\\' => i += 1,
                    '"' => {
                        stack.pop();
                    }
                    '`' => stack.push(Frame::Backtick),
                    '$' if cs.get(i + 1) == Some(&'(') => {
                        stack.push(Frame::Paren);
                        cmd_start = true;
                        i += 1;
                    }
                    _ => {}
                }
                i += 1;
                continue;
            }
            Some(Frame::Backtick) => {
                match c {
                    '\\' => i += 1,
                    '`' => {
                        stack.pop();
                    }
                    _ => {}
                }
                i += 1;
                continue;
            }
            _ => {}
        }
        match c {
            '\\' => {
                i += 2;
                cmd_start = false;
                continued = false;
                continue;
            }
            '\'' => {
                i = skip_until(&cs, i + 1, '\'');
                cmd_start = false;
                continued = false;
            }
            '"' => {
                stack.push(Frame::DQuote);
                cmd_start = false;
                continued = false;
            }
            '`' => {
                stack.push(Frame::Backtick);
                cmd_start = false;
                continued = false;
            }
            '$' => {
                match cs.get(i + 1) {
                    Some('(') => {
                        stack.push(Frame::Paren);
                        i += 1;
                    }
                    Some('{') => i = skip_braces(&cs, i + 1),
                    Some('\'') => i = skip_ansi_c(&cs, i + 2),
                    _ => {}
                }
                cmd_start = matches!(stack.last(), Some(Frame::Paren)) && cs.get(i) == Some(&'(');
                continued = false;
            }
            '#' if i == 0 || cs[i - 1].is_whitespace() || is_operator_char(cs[i - 1]) => {
                while i + 1 < n && cs[i + 1] != '\n' {
                    i += 1;
                }
            }
            '(' => {
                stack.push(Frame::Paren);
                cmd_start = true;
                continued = false;
            }
            ')' => {
                pop_if(&mut stack, Frame::Paren);
                cmd_start = true;
                continued = false;
            }
            ';' => {
                if cs.get(i + 1) == Some(&';') {
                    i += 1;
                }
                cmd_start = true;
                continued = false;
            }
            '&' => {
                continued = cs.get(i + 1) == Some(&'&');
                if continued {
                    i += 1;
                }
                cmd_start = true;
            }
            '|' => {
                if cs.get(i + 1) == Some(&'|') {
                    i += 1;
                }
                continued = true;
                cmd_start = true;
            }
            '<' | '>' => {
                if c == '<' && cs.get(i + 1) == Some(&'<') && cs.get(i + 2) != Some(&'<') {
                    i = read_heredoc_word(&cs, i + 2, &mut heredocs);
                } else {
                    while matches!(cs.get(i + 1), Some('<' | '>' | '&' | '|')) {
                        i += 1;
                    }
                }
                cmd_start = false;
                continued = false;
            }
            '\n' => {
                let mut end = i;
                let mut next = i + 1;
                if !heredocs.is_empty() {
                    next = skip_heredoc_bodies(&cs, i + 1, &heredocs);
                    heredocs.clear();
                    end = next;
                }
                if stack.is_empty() && !continued {
                    segments.push(cs[seg_start..end].iter().collect::<String>());
                    seg_start = next;
                }
                cmd_start = true;
                i = next;
                continue;
            }
            c if c.is_whitespace() => {}
            _ => {
                let start = i;
                while i + 1 < n && !is_word_end(cs[i + 1]) {
                    i += 1;
                }
                let word: String = cs[start..=i].iter().collect();
                let bounded = cs
                    .get(i + 1)
                    .is_none_or(|&nc| nc.is_whitespace() || is_operator_char(nc));
                if bounded && word == "{" {
                    stack.push(Frame::Brace);
                } else if bounded && cmd_start {
                    match word.as_str() {
                        "if" => stack.push(Frame::If),
                        "fi" => pop_if(&mut stack, Frame::If),
                        "case" => stack.push(Frame::Case),
                        "esac" => pop_if(&mut stack, Frame::Case),
                        "do" => stack.push(Frame::Do),
                        "done" => pop_if(&mut stack, Frame::Do),
                        "}" => pop_if(&mut stack, Frame::Brace),
                        _ => {}
                    }
                }
                cmd_start = bounded
                    && (cmd_start || word == "{")
                    && matches!(
                        word.as_str(),
                        "if" | "then"
                            | "else"
                            | "elif"
                            | "do"
                            | "while"
                            | "until"
                            | "!"
                            | "time"
                            | "{"
                    );
                continued = false;
            }
        }
        i += 1;
    }
    if seg_start < n {
        segments.push(cs[seg_start..].iter().collect());
    }
    segments
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && !s.starts_with('#'))
        .collect()
}

fn multiple_commands_text(cmds: &[String]) -> String {
    let listed: Vec<String> = cmds
        .iter()
        .enumerate()
        .map(|(i, c)| format!("({}) {c}", i + 1))
        .collect();
    format!(
        "Cannot execute multiple commands at once.\nPlease run each command separately OR chain them into a single command via && or ;\nProvided commands:\n{}",
        listed.join("\n")
    )
}

/// Removes ANSI escape sequences and control characters, and renders carriage returns and
/// backspaces the way a terminal would show the line.
fn clean_output(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                Some('[') => {
                    for d in chars.by_ref() {
                        if ('@'..='~').contains(&d) {
                            break;
                        }
                    }
                }
                Some(']' | 'P' | 'X' | '^' | '_') => {
                    while let Some(d) = chars.next() {
                        if d == '\x07' {
                            break;
                        }
                        if d == '\x1b' {
                            chars.next_if_eq(&'\\');
                            break;
                        }
                    }
                }
                Some(d) if (' '..='/').contains(&d) => {
                    while chars.next_if(|e| (' '..='/').contains(e)).is_some() {}
                    chars.next();
                }
                _ => {}
            },
            '\u{9b}' => {
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            }
            '\x08' => {
                if plain.chars().last().is_some_and(|l| l != '\n') {
                    plain.pop();
                }
            }
            '\n' | '\t' | '\r' => plain.push(c),
            c if c.is_control() => {}
            c => plain.push(c),
        }
    }
    let lines: Vec<String> = plain.split('\n').map(overstrike_line).collect();
    lines.join("\n").trim_end().to_owned()
}

/// Renders one line with carriage returns: later text overwrites the start of the line.
fn overstrike_line(line: &str) -> String {
    if !line.contains('\r') {
        return line.to_owned();
    }
    let mut cells: Vec<char> = Vec::new();
    for (n, part) in line.split('\r').enumerate() {
        if n == 0 {
            cells.extend(part.chars());
            continue;
        }
        for (k, ch) in part.chars().enumerate() {
            match cells.get_mut(k) {
                Some(cell) => *cell = ch,
                None => cells.push(ch),
            }
        }
    }
    cells.into_iter().collect()
}

/// Replaces every secret value in `text` with `<secret-hidden>`, longest values first so
/// that a value containing another is hidden whole.
fn mask_secrets(text: String, secrets: &[(String, String)]) -> String {
    let mut values: Vec<&str> = secrets
        .iter()
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
        .collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    values
        .into_iter()
        .fold(text, |acc, v| acc.replace(v, SECRET_MASK))
}

fn is_shell_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Control bytes in a typed command would be line-editing keys to the terminal (erase,
/// kill, EOF, interrupt); a literal-next (`^V`) in front of each makes them plain input.
fn escape_for_tty(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 1);
    for b in text.bytes() {
        if (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f {
            out.push(0x16);
        }
        out.push(b);
    }
    out
}

/// Variables the shell must not inherit: server keys (`SESSION_API_KEY`,
/// `OH_SESSION_API_KEYS*`, `OH_SECRET_KEY`) and prompt settings the marker protocol owns.
fn is_withheld(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    name == "SESSION_API_KEY"
        || name.starts_with("OH_SESSION_API_KEYS")
        || name == "OH_SECRET_KEY"
        || name == "PROMPT_COMMAND"
        || name == "PS1"
}

/// The shell's environment: the server's, minus withheld variables, with pagers off and a
/// terminal type set, then `extra` on top.
fn shell_env(
    base: impl IntoIterator<Item = (OsString, OsString)>,
    extra: &[(String, String)],
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> =
        base.into_iter().filter(|(k, _)| !is_withheld(k)).collect();
    let defaults = [
        ("TERM", "xterm-256color"),
        ("PAGER", "cat"),
        ("GIT_PAGER", "cat"),
    ];
    let overrides = defaults
        .iter()
        .map(|(k, v)| (*k, *v))
        .chain(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    for (k, v) in overrides {
        if is_withheld(OsStr::new(k)) {
            continue;
        }
        env.retain(|(ek, _)| ek != k);
        env.push((k.into(), v.into()));
    }
    env
}

/// Formats seconds the way the reference's messages print a Python float.
fn python_float(t: f64) -> String {
    if t.fract() == 0.0 && t.abs() < 1e16 {
        format!("{t:.1}")
    } else {
        format!("{t}")
    }
}

fn duration_secs(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        python_float(d.as_secs_f64())
    }
}

/// What the prompt marker reports after each command.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PromptInfo {
    exit_code: i64,
    username: Option<String>,
    hostname: Option<String>,
    python: Option<String>,
    cwd: Option<String>,
}

impl PromptInfo {
    /// Parses `exit\x1fuser\x1fhost\x1fpython\x1fcwd` (cwd last: it may contain anything).
    fn parse(fields: &[u8]) -> Self {
        let text = String::from_utf8_lossy(fields);
        let mut parts = text.splitn(5, '\x1f');
        let mut next = || parts.next().map(str::to_owned).filter(|s| !s.is_empty());
        let exit_code = next().and_then(|s| s.trim().parse().ok()).unwrap_or(-1);
        Self {
            exit_code,
            username: next(),
            hostname: next(),
            python: next(),
            cwd: next(),
        }
    }
}

/// Bytes of one command's output; a flood keeps its head and tail only.
#[derive(Debug, Default)]
struct Capped {
    data: Vec<u8>,
    omitted: u64,
}

impl Capped {
    fn from_vec(data: Vec<u8>) -> Self {
        Self { data, omitted: 0 }
    }

    /// Drops the middle once the buffer is well over its budget; `scan_from` is an index
    /// into `data` that must stay meaningful.
    fn compact(&mut self, scan_from: &mut usize) {
        if self.data.len() <= BUF_HEAD + 2 * BUF_TAIL {
            return;
        }
        let cut_end = self.data.len() - BUF_TAIL;
        let removed = cut_end - BUF_HEAD;
        self.data.drain(BUF_HEAD..cut_end);
        self.omitted += removed as u64;
        *scan_from = if *scan_from >= cut_end {
            *scan_from - removed
        } else {
            (*scan_from).min(BUF_HEAD)
        };
    }

    fn into_bytes(mut self) -> Vec<u8> {
        if self.omitted > 0 {
            let at = BUF_HEAD.min(self.data.len());
            let note = format!(
                "\n[... {} bytes of output were not kept ...]\n",
                self.omitted
            );
            self.data.splice(at..at, note.into_bytes());
        }
        self.data
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Everything the terminal printed, cut into per-prompt segments as markers arrive.
#[derive(Debug)]
struct OutputBuf {
    begin: Vec<u8>,
    end: Vec<u8>,
    cur: Capped,
    scan_from: usize,
    done: VecDeque<(Capped, PromptInfo)>,
    received: u64,
}

impl OutputBuf {
    fn new(token: &str) -> Self {
        Self {
            begin: format!("###OH-{token}-BEGIN###").into_bytes(),
            end: format!("###OH-{token}-END###").into_bytes(),
            cur: Capped::default(),
            scan_from: 0,
            done: VecDeque::new(),
            received: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.received += bytes.len() as u64;
        self.cur.data.extend_from_slice(bytes);
        loop {
            let from = self.scan_from.min(self.cur.data.len());
            let Some(p) = find(&self.cur.data[from..], &self.begin) else {
                let tail = self.cur.data.len().saturating_sub(self.begin.len() - 1);
                self.scan_from = tail.max(from);
                break;
            };
            let b = from + p;
            let fields_start = b + self.begin.len();
            let Some(q) = find(&self.cur.data[fields_start..], &self.end) else {
                // The rest of the marker has not arrived yet; a real one is a few hundred
                // bytes, so a longer gap means this was not ours.
                self.scan_from = if self.cur.data.len() - b > 8192 {
                    b + 1
                } else {
                    b
                };
                break;
            };
            let fields_end = fields_start + q;
            let info = PromptInfo::parse(&self.cur.data[fields_start..fields_end]);
            let mut after = fields_end + self.end.len();
            if self.cur.data.get(after) == Some(&b'\r') {
                after += 1;
            }
            if self.cur.data.get(after) == Some(&b'\n') {
                after += 1;
            }
            let rest = self.cur.data.split_off(after);
            self.cur.data.truncate(b);
            let segment = std::mem::replace(&mut self.cur, Capped::from_vec(rest));
            self.done.push_back((segment, info));
            self.scan_from = 0;
        }
        self.cur.compact(&mut self.scan_from);
    }

    /// Start of a marker that may be arriving, so partial output never splits one.
    fn hold_start(&self) -> usize {
        let d = &self.cur.data;
        let from = self.scan_from.min(d.len());
        if let Some(p) = find(&d[from..], &self.begin) {
            return from + p;
        }
        let longest = self.begin.len().saturating_sub(1).min(d.len());
        (1..=longest)
            .rev()
            .find(|&k| d.ends_with(&self.begin[..k]))
            .map_or(d.len(), |k| d.len() - k)
    }

    fn take_partial(&mut self) -> Capped {
        let rest = self.cur.data.split_off(self.hold_start());
        self.scan_from = 0;
        std::mem::replace(&mut self.cur, Capped::from_vec(rest))
    }

    fn take_all(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some((seg, _)) = self.done.pop_front() {
            out.extend(seg.into_bytes());
        }
        out.extend(std::mem::take(&mut self.cur).into_bytes());
        self.scan_from = 0;
        out
    }

    fn clear(&mut self) {
        self.done.clear();
        self.cur = Capped::default();
        self.scan_from = 0;
    }
}

/// The output buffer shared by the reader task and whoever waits for a command.
#[derive(Debug)]
struct Sink {
    buf: Mutex<OutputBuf>,
    notify: Notify,
}

impl Sink {
    fn lock(&self) -> MutexGuard<'_, OutputBuf> {
        self.buf.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, bytes: &[u8]) {
        self.lock().push(bytes);
        self.notify.notify_one();
    }
}

/// How a wait for the prompt ended.
enum Waited {
    Done(Capped, PromptInfo),
    Soft(Capped),
    Hard(Capped),
    Exited(Vec<u8>, i32),
}

/// One running bash on its PTY, with its reader and reaper tasks.
#[derive(Debug)]
struct Shell {
    pid: libc::pid_t,
    token: String,
    master: Arc<PtyMaster>,
    sink: Arc<Sink>,
    exit: watch::Receiver<Option<i32>>,
    _stop_reader: watch::Sender<()>,
    closing: AtomicBool,
    closed: AtomicBool,
    script_seq: AtomicU64,
}

fn random_token() -> Result<String, TerminalError> {
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| TerminalError::Spawn("no randomness for the prompt marker".into()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The first line the shell reads. The prompt function prints the marker with the token
/// passed as an argument, so the complete marker never appears in the shell's own state
/// (`set`, `declare -f` cannot fake a prompt). PS1/PS2 are emptied on every prompt so that
/// virtualenv activation cannot put text after the marker. History is off: commands
/// carry secrets, and `!` must not be expanded.
fn init_line(token: &str) -> String {
    [
        "unset HISTFILE PROMPT_COMMAND",
        "set +o history +H",
        &format!("__oh_k={token}"),
        "__oh_u=$(id -un 2>/dev/null)",
        "__oh_py() { local n d IFS=:; __oh_p=; for n in python3 python; do for d in $PATH; do if [[ -x ${d:-.}/$n && ! -d ${d:-.}/$n ]]; then __oh_p=${d:-.}/$n; return; fi; done; done; }",
        "__oh_prompt() { local e=$?; __oh_py; printf '###OH-%s-BEGIN###%s\\037%s\\037%s\\037%s\\037%s###OH-%s-END###\\n' \"$__oh_k\" \"$e\" \"$__oh_u\" \"$HOSTNAME\" \"$__oh_p\" \"$PWD\" \"$__oh_k\"; PS1=; PS2=; return $e; }",
        "PROMPT_COMMAND=__oh_prompt",
        "PS1=",
        "PS2=",
    ]
    .join("; ")
}

impl Shell {
    async fn start(cfg: &TerminalConfig) -> Result<Arc<Self>, TerminalError> {
        let spawn_err = |e: std::io::Error| TerminalError::Spawn(e.to_string());
        let token = random_token()?;
        let pair = PtyPair::open(SHELL_COLS, SHELL_ROWS).map_err(spawn_err)?;
        let program = cfg
            .shell_path
            .clone()
            .unwrap_or_else(|| PathBuf::from("bash"));
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(["--noprofile", "--norc", "--noediting", "-i"])
            .current_dir(&cfg.working_dir)
            .env_clear()
            .envs(shell_env(std::env::vars_os(), &cfg.env));
        pair.attach(&mut cmd).map_err(spawn_err)?;
        let child = cmd.spawn().map_err(|e| {
            TerminalError::Spawn(format!(
                "{} in {}: {e}",
                program.display(),
                cfg.working_dir.display()
            ))
        })?;
        drop(cmd);
        let PtyPair { master, slave } = pair;
        // The parent's copy of the slave must go, or the master never reports hang-up.
        drop(slave);
        let Some(pid) = child.id().and_then(|p| libc::pid_t::try_from(p).ok()) else {
            return Err(TerminalError::Spawn("the shell exited at once".into()));
        };
        let (exit_tx, exit_rx) = watch::channel(None);
        let (stop_tx, stop_rx) = watch::channel(());
        let sink = Arc::new(Sink {
            buf: Mutex::new(OutputBuf::new(&token)),
            notify: Notify::new(),
        });
        tokio::spawn(reap(child, exit_tx, sink.clone()));
        let master = match PtyMaster::new(master) {
            Ok(m) => Arc::new(m),
            Err(e) => {
                pty::signal_pid(pid, libc::SIGKILL);
                return Err(spawn_err(e));
            }
        };
        // On the arbiter's LocalSet, next to the actors, so a flood shares the thread fairly
        // with them instead of running ahead of the whole set.
        actix::spawn(pump(master.clone(), sink.clone(), stop_rx));
        let shell = Arc::new(Self {
            pid,
            token: token.clone(),
            master,
            sink,
            exit: exit_rx,
            _stop_reader: stop_tx,
            closing: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            script_seq: AtomicU64::new(0),
        });
        let mut line = init_line(&token).into_bytes();
        line.push(b'\n');
        shell.send(&line).await?;
        let deadline = Instant::now() + READY_TIMEOUT;
        match shell.wait_for_prompt(None, Some(deadline)).await {
            Waited::Done(..) => {
                shell.sink.lock().clear();
                Ok(shell)
            }
            _ => {
                shell.shutdown().await;
                Err(TerminalError::NotReady)
            }
        }
    }

    fn exited(&self) -> Option<i32> {
        *self.exit.borrow()
    }

    async fn send(&self, bytes: &[u8]) -> Result<(), TerminalError> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.master.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(TerminalError::Io(e.to_string())),
            Err(_) => Err(TerminalError::Io(
                "the terminal did not accept input in time".into(),
            )),
        }
    }

    fn script_dir(&self) -> PathBuf {
        std::env::temp_dir().join(format!("oh-terminal-{}", self.token))
    }

    /// Types a command at the prompt; one too long for a terminal line is sourced from a
    /// private script file instead.
    async fn type_command(&self, cmd: &str) -> Result<(), TerminalError> {
        let typed = escape_for_tty(cmd);
        let too_long = typed.len() > MAX_TYPED_BYTES
            || typed
                .split(|&b| b == b'\n')
                .any(|l| l.len() > MAX_LINE_BYTES);
        let mut line = if too_long {
            let path = self.write_script(cmd).await?;
            escape_for_tty(&format!(". {}", shell_quote(&path.to_string_lossy())))
        } else {
            typed
        };
        line.push(b'\n');
        self.send(&line).await
    }

    async fn write_script(&self, cmd: &str) -> Result<PathBuf, TerminalError> {
        let io = |e: std::io::Error| TerminalError::Io(format!("command script: {e}"));
        let dir = self.script_dir();
        let mut builder = tokio::fs::DirBuilder::new();
        builder.mode(0o700);
        match builder.create(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
        let seq = self.script_seq.fetch_add(1, Ordering::Relaxed);
        if let Some(prev) = seq.checked_sub(1) {
            let _ = tokio::fs::remove_file(dir.join(format!("cmd-{prev}.sh"))).await;
        }
        let path = dir.join(format!("cmd-{seq}.sh"));
        tokio::fs::write(&path, format!("{cmd}\n"))
            .await
            .map_err(io)?;
        Ok(path)
    }

    /// Waits until the prompt marker arrives, the shell exits, nothing new was printed for
    /// `soft`, or the `hard` deadline passes.
    async fn wait_for_prompt(&self, soft: Option<Duration>, hard: Option<Instant>) -> Waited {
        let mut seen = self.sink.lock().received;
        let mut last_change = Instant::now();
        let mut exit_rx = self.exit.clone();
        let mut reaper_gone = false;
        loop {
            if let Some((seg, info)) = self.sink.lock().done.pop_front() {
                return Waited::Done(seg, info);
            }
            let exited = *exit_rx.borrow();
            if let Some(code) = exited.or(reaper_gone.then_some(-1)) {
                // The reader may still hold the shell's last words.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Waited::Exited(self.sink.lock().take_all(), code);
            }
            let now = Instant::now();
            let received = self.sink.lock().received;
            if received != seen {
                seen = received;
                last_change = now;
            }
            let mut deadline = now + Duration::from_secs(3600);
            if let Some(h) = hard {
                if now >= h {
                    return Waited::Hard(self.sink.lock().take_partial());
                }
                deadline = deadline.min(h);
            }
            if let Some(s) = soft {
                let t = last_change + s;
                if now >= t {
                    return Waited::Soft(self.sink.lock().take_partial());
                }
                deadline = deadline.min(t);
            }
            tokio::select! {
                _ = self.sink.notify.notified() => {}
                _ = tokio::time::sleep_until(deadline) => {}
                r = exit_rx.changed() => reaper_gone = r.is_err(),
            }
        }
    }

    /// Ctrl-C to the terminal, then SIGTERM and SIGKILL to the foreground job's process
    /// group if it is still in the foreground after a grace period each. `running` says a
    /// command is pending even though the shell itself owns the terminal (a builtin such
    /// as `read`, or an unfinished multi-line command), where Ctrl-C alone is right.
    /// Returns whether anything was sent.
    fn interrupt(self: &Arc<Self>, running: bool) -> bool {
        let job = self.master.foreground_pgrp().filter(|&pg| pg != self.pid);
        if job.is_none() && !running {
            return false;
        }
        if self.master.try_write(b"\x03").is_err()
            && let Some(pg) = job
        {
            pty::signal_group(pg, libc::SIGINT);
        }
        if let Some(pg) = job {
            let shell = self.clone();
            tokio::spawn(async move { shell.escalate(pg).await });
        }
        true
    }

    async fn escalate(&self, pgid: libc::pid_t) {
        for sig in [libc::SIGTERM, libc::SIGKILL] {
            tokio::time::sleep(INTERRUPT_GRACE).await;
            // Only the job that was interrupted: a new command has a new group.
            if self.master.foreground_pgrp() != Some(pgid) {
                return;
            }
            log::debug!("terminal job {pgid} ignored the interrupt; sending signal {sig}");
            pty::signal_group(pgid, sig);
            pty::signal_group(pgid, libc::SIGCONT);
        }
    }

    async fn wait_exit(&self, limit: Duration) {
        let mut rx = self.exit.clone();
        let _ = tokio::time::timeout(limit, rx.wait_for(Option::is_some)).await;
    }

    /// Stops every process of the shell's session: SIGTERM to the jobs while bash is still
    /// there to reap them, SIGKILL to what is left, then bash itself.
    async fn shutdown(&self) {
        if self.closing.swap(true, Ordering::SeqCst) {
            return;
        }
        let sid = self.pid;
        let others = || async move {
            tokio::task::spawn_blocking(move || pty::session_members(sid))
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|m| m.pid != sid)
                .collect::<Vec<_>>()
        };
        let members = others().await;
        for m in members.iter().filter(|m| !m.zombie) {
            pty::signal_pid(m.pid, libc::SIGTERM);
            pty::signal_pid(m.pid, libc::SIGCONT);
        }
        let grace_end = Instant::now() + CLOSE_GRACE;
        let mut left = members;
        while !left.is_empty() && Instant::now() < grace_end {
            tokio::time::sleep(Duration::from_millis(25)).await;
            left = others().await;
        }
        for m in left.iter().filter(|m| !m.zombie) {
            pty::signal_pid(m.pid, libc::SIGKILL);
        }
        // Give bash a moment to reap what was just killed; orphaned zombies are not ours
        // to reap.
        let reap_end = Instant::now() + Duration::from_millis(300);
        while !left.is_empty() && Instant::now() < reap_end {
            tokio::time::sleep(Duration::from_millis(25)).await;
            left = others().await;
        }
        if self.exited().is_none() {
            pty::signal_pid(self.pid, libc::SIGKILL);
        }
        self.wait_exit(Duration::from_secs(2)).await;
        let _ = tokio::fs::remove_dir_all(self.script_dir()).await;
        self.closed.store(true, Ordering::SeqCst);
    }
}

impl Drop for Shell {
    /// Last resort when no graceful shutdown ran (runtime shutting down): kill the session.
    fn drop(&mut self) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        for m in pty::session_members(self.pid) {
            if m.pid != self.pid {
                pty::signal_pid(m.pid, libc::SIGKILL);
            }
        }
        // A reaped pid may already belong to someone else; only a live child is killed.
        if self.exited().is_none() {
            pty::signal_pid(self.pid, libc::SIGKILL);
        }
        let _ = std::fs::remove_dir_all(self.script_dir());
    }
}

/// Moves everything the terminal prints into the sink until hang-up or shell drop.
async fn pump(master: Arc<PtyMaster>, sink: Arc<Sink>, mut stop: watch::Receiver<()>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            r = master.read(&mut buf) => match r {
                Ok(0) => break,
                Ok(n) => {
                    sink.push(buf.get(..n).unwrap_or_default());
                    // A flood keeps the descriptor readable, and tokio's budget allows
                    // ~128 reads (megabytes of scanning) before a task yields; yielding per
                    // chunk keeps the other actors on this thread responsive.
                    tokio::task::yield_now().await;
                }
                Err(e) => {
                    log::debug!("terminal read ended: {e}");
                    break;
                }
            },
            _ = stop.changed() => break,
        }
    }
    sink.notify.notify_one();
}

/// Waits for the shell process so it never lingers as a zombie, and publishes its status.
async fn reap(mut child: tokio::process::Child, exit: watch::Sender<Option<i32>>, sink: Arc<Sink>) {
    let code = match child.wait().await {
        Ok(status) => status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(-1),
        Err(e) => {
            log::warn!("waiting for the terminal shell failed: {e}");
            -1
        }
    };
    exit.send_replace(Some(code));
    sink.notify.notify_one();
}

/// Shuts a shell down in the background when possible, else kills it on drop.
fn spawn_shutdown(shell: Arc<Shell>) {
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::spawn(async move { shell.shutdown().await });
    }
}

#[derive(Debug, Default)]
struct State {
    shell: Option<Arc<Shell>>,
    /// The command that has not printed its prompt yet (after a soft timeout).
    running: Option<String>,
    /// Bumped by `Close`, so a shell that finishes starting afterwards is not kept.
    generation: u64,
}

/// The session's state, shared by the actor and its in-flight `Execute` futures.
#[derive(Debug)]
struct Core {
    cfg: TerminalConfig,
    /// Serialises actions: one command at a time, as in a real terminal.
    exec: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

/// How an observation continues a command that was already running.
#[derive(Clone, Copy)]
struct FollowUp {
    continues: bool,
    ctrl_key: Option<char>,
}

impl Core {
    fn new(cfg: TerminalConfig) -> Self {
        Self {
            cfg,
            exec: tokio::sync::Mutex::new(()),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_running(&self, shell: &Arc<Shell>, running: Option<String>) {
        let mut st = self.state();
        if st.shell.as_ref().is_some_and(|s| Arc::ptr_eq(s, shell)) {
            st.running = running;
        }
    }

    fn forget(&self, shell: &Arc<Shell>) {
        let mut st = self.state();
        if st.shell.as_ref().is_some_and(|s| Arc::ptr_eq(s, shell)) {
            st.shell = None;
            st.running = None;
        }
    }

    fn take_shell(&self) -> Option<Arc<Shell>> {
        let mut st = self.state();
        st.generation += 1;
        st.running = None;
        st.shell.take()
    }

    async fn ensure_shell(&self) -> Result<Arc<Shell>, TerminalError> {
        let (current, generation) = {
            let st = self.state();
            (st.shell.clone(), st.generation)
        };
        if let Some(shell) = current {
            if shell.exited().is_none() {
                return Ok(shell);
            }
            self.forget(&shell);
            spawn_shutdown(shell);
        }
        let shell = Shell::start(&self.cfg).await?;
        let mut st = self.state();
        if st.generation != generation {
            drop(st);
            spawn_shutdown(shell);
            return Err(TerminalError::Closed);
        }
        st.shell = Some(shell.clone());
        st.running = None;
        Ok(shell)
    }

    fn interrupt(&self) {
        let (shell, running) = {
            let st = self.state();
            (st.shell.clone(), st.running.is_some())
        };
        if let Some(shell) = shell {
            shell.interrupt(running);
        }
    }

    async fn execute(
        &self,
        action: Value,
        secrets: Vec<(String, String)>,
    ) -> Result<TerminalObservation, TerminalError> {
        let act = TerminalAction::parse(&action)?;
        if act.reset && act.is_input {
            return Err(TerminalError::ResetWithInput);
        }
        let _turn = self.exec.lock().await;
        let obs = if act.reset {
            if let Some(old) = self.take_shell() {
                old.shutdown().await;
            }
            if act.command.trim().is_empty() {
                let mut obs = TerminalObservation::new(&self.cfg, "[RESET]", RESET_TEXT.into());
                obs.exit_code = Some(0);
                obs
            } else {
                let mut obs = self.run(&act, &secrets).await?;
                obs.output = format!("{RESET_TEXT}\n\n{}", obs.output);
                obs.command = format!("[RESET] {}", act.command);
                obs
            }
        } else {
            self.run(&act, &secrets).await?
        };
        Ok(obs.save_if_clipped().await)
    }

    async fn run(
        &self,
        act: &TerminalAction,
        secrets: &[(String, String)],
    ) -> Result<TerminalObservation, TerminalError> {
        let shell = self.ensure_shell().await?;
        let cmd = act.command.trim();
        let running = self.state().running.clone();
        if running.is_some() {
            if cmd.is_empty() {
                let follow = FollowUp {
                    continues: true,
                    ctrl_key: None,
                };
                return Ok(self.follow(&shell, act, secrets, follow).await);
            }
            if act.is_input {
                let (bytes, ctrl_key) = match special_key(&act.command) {
                    Some((bytes, letter)) => (bytes, letter),
                    None => {
                        let mut text = act.command.clone().into_bytes();
                        text.push(b'\r');
                        (text, None)
                    }
                };
                shell.send(&bytes).await?;
                let follow = FollowUp {
                    continues: true,
                    ctrl_key,
                };
                return Ok(self.follow(&shell, act, secrets, follow).await);
            }
            let finished = shell.sink.lock().done.pop_front();
            if finished.is_none() {
                let out = shell.sink.lock().take_partial();
                let mut obs = self.observe(&act.command, out.into_bytes(), secrets).await;
                obs.is_error = true;
                obs.exit_code = Some(-1);
                obs.metadata.prefix = PREVIOUS_OUTPUT_PREFIX.into();
                obs.metadata.suffix = format!(
                    "\n[Your command \"{cmd}\" is NOT executed. The previous command is still running - a new command can only run after it finishes. Send an empty command '' to see more of its output, or use is_input=true to send it input or keys such as C-c to stop it.]"
                );
                return Ok(obs);
            }
            // It finished since the last look; what it printed after that is dropped like
            // idle output, and the new command runs.
            self.set_running(&shell, None);
        }
        if cmd.is_empty() {
            return Ok(TerminalObservation::error(&self.cfg, &act.command, NO_LOGS));
        }
        if act.is_input {
            return Ok(TerminalObservation::error(
                &self.cfg,
                &act.command,
                NO_INTERACT,
            ));
        }
        let commands = top_level_commands(cmd);
        if commands.len() > 1 {
            return Ok(TerminalObservation::error(
                &self.cfg,
                &act.command,
                &multiple_commands_text(&commands),
            ));
        }
        // Output printed while idle (background jobs, a stray prompt) is not this command's.
        shell.sink.lock().clear();
        if let Err(e) = shell.master.reset_modes() {
            log::debug!("could not reset terminal modes: {e}");
        }
        self.export_secrets(&shell, cmd, secrets).await?;
        shell.type_command(cmd).await?;
        self.set_running(&shell, Some(cmd.to_owned()));
        let follow = FollowUp {
            continues: false,
            ctrl_key: None,
        };
        Ok(self.follow(&shell, act, secrets, follow).await)
    }

    /// Exports the secrets the command mentions, as a separate line whose output is dropped.
    async fn export_secrets(
        &self,
        shell: &Arc<Shell>,
        cmd: &str,
        secrets: &[(String, String)],
    ) -> Result<(), TerminalError> {
        let assignments: Vec<String> = secrets
            .iter()
            .filter(|(name, _)| is_shell_identifier(name) && cmd.contains(name.as_str()))
            .map(|(name, value)| format!("{name}={}", shell_quote(value)))
            .collect();
        if assignments.is_empty() {
            return Ok(());
        }
        shell
            .type_command(&format!("export {}", assignments.join(" ")))
            .await?;
        let deadline = Instant::now() + READY_TIMEOUT;
        match shell.wait_for_prompt(None, Some(deadline)).await {
            Waited::Done(..) => Ok(()),
            _ => {
                self.forget(shell);
                spawn_shutdown(shell.clone());
                Err(TerminalError::Io("exporting secrets did not finish".into()))
            }
        }
    }

    async fn follow(
        &self,
        shell: &Arc<Shell>,
        act: &TerminalAction,
        secrets: &[(String, String)],
        follow: FollowUp,
    ) -> TerminalObservation {
        let soft = act.timeout.is_none().then_some(self.cfg.no_change_timeout);
        let hard = act
            .timeout
            .map(|t| Instant::now() + Duration::from_secs_f64(t.min(1e9)));
        let prefix = if follow.continues {
            PREVIOUS_OUTPUT_PREFIX
        } else {
            ""
        };
        match shell.wait_for_prompt(soft, hard).await {
            Waited::Done(seg, info) => {
                self.set_running(shell, None);
                let mut obs = self.observe(&act.command, seg.into_bytes(), secrets).await;
                let suffix = match follow.ctrl_key {
                    Some(k) => format!(
                        "\n[The command completed with exit code {}. CTRL+{k} was sent.]",
                        info.exit_code
                    ),
                    None => format!(
                        "\n[The command completed with exit code {}.]",
                        info.exit_code
                    ),
                };
                obs.exit_code = Some(info.exit_code);
                obs.metadata = CmdOutputMetadata {
                    exit_code: info.exit_code,
                    pid: -1,
                    username: info.username,
                    hostname: info.hostname,
                    working_dir: info.cwd,
                    py_interpreter_path: info.python,
                    prefix: prefix.into(),
                    suffix,
                };
                obs
            }
            Waited::Soft(seg) => {
                let mut obs = self.observe(&act.command, seg.into_bytes(), secrets).await;
                obs.exit_code = Some(-1);
                obs.metadata.prefix = prefix.into();
                obs.metadata.suffix = format!(
                    "\n[The command has no new output after {} seconds. {WAIT_HINT}]",
                    duration_secs(self.cfg.no_change_timeout)
                );
                obs
            }
            Waited::Hard(seg) if follow.continues => {
                // A timeout on a follow-up bounds this wait only: the agent chose to wait
                // for a long job, so it is left running.
                let mut obs = self.observe(&act.command, seg.into_bytes(), secrets).await;
                obs.exit_code = Some(-1);
                obs.metadata.prefix = prefix.into();
                obs.metadata.suffix = format!(
                    "\n[The command timed out after {} seconds. {WAIT_HINT}]",
                    python_float(act.timeout.unwrap_or_default())
                );
                obs
            }
            Waited::Hard(seg) => {
                let mut raw = seg.into_bytes();
                shell.interrupt(true);
                let settle = Instant::now() + KILL_SETTLE;
                let stopped = match shell.wait_for_prompt(None, Some(settle)).await {
                    Waited::Done(rest, _) => {
                        self.set_running(shell, None);
                        raw.extend(rest.into_bytes());
                        true
                    }
                    Waited::Exited(rest, _) => {
                        self.forget(shell);
                        raw.extend(rest);
                        true
                    }
                    Waited::Soft(rest) | Waited::Hard(rest) => {
                        raw.extend(rest.into_bytes());
                        false
                    }
                };
                let mut obs = self.observe(&act.command, raw, secrets).await;
                obs.exit_code = Some(-1);
                obs.metadata.prefix = prefix.into();
                let what_now = if stopped {
                    "It was interrupted (Ctrl-C, then SIGTERM and SIGKILL to its process group as needed), and the terminal is ready for the next command."
                } else {
                    WAIT_HINT
                };
                obs.metadata.suffix = format!(
                    "\n[The command timed out after {} seconds. {what_now}]",
                    python_float(act.timeout.unwrap_or_default())
                );
                obs
            }
            Waited::Exited(raw, code) => {
                self.forget(shell);
                spawn_shutdown(shell.clone());
                let mut obs = self.observe(&act.command, raw, secrets).await;
                obs.exit_code = Some(i64::from(code));
                obs.metadata.exit_code = i64::from(code);
                obs.metadata.prefix = prefix.into();
                obs.metadata.suffix = format!(
                    "\n[The shell exited with code {code}. The next command starts a new shell session.]"
                );
                obs
            }
        }
    }

    async fn observe(
        &self,
        command: &str,
        raw: Vec<u8>,
        secrets: &[(String, String)],
    ) -> TerminalObservation {
        // Cleaning megabytes of output is CPU work that would stall every other actor on
        // this arbiter, so big outputs are cleaned on the blocking pool.
        let output = if raw.len() > OFF_THREAD_BYTES {
            let secrets = secrets.to_vec();
            tokio::task::spawn_blocking(move || mask_secrets(clean_output(&raw), &secrets))
                .await
                .unwrap_or_else(|e| format!("[the output could not be processed: {e}]"))
        } else {
            mask_secrets(clean_output(&raw), secrets)
        };
        TerminalObservation::new(&self.cfg, command, output)
    }
}

/// The persistent shell of one conversation. Supervised (`impl actix::Supervised`): a
/// restart discards the old shell and starts a fresh one.
pub struct TerminalSession {
    cfg: TerminalConfig,
    core: Arc<Core>,
    warm_up: bool,
}

impl TerminalSession {
    /// A session for `cfg`. The shell starts with the first `Execute`, so an idle
    /// conversation costs no process.
    pub fn new(cfg: TerminalConfig) -> Self {
        Self {
            core: Arc::new(Core::new(cfg.clone())),
            cfg,
            warm_up: false,
        }
    }
}

impl Actor for TerminalSession {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        if std::mem::take(&mut self.warm_up) {
            let core = self.core.clone();
            actix::spawn(async move {
                let _turn = core.exec.lock().await;
                if let Err(e) = core.ensure_shell().await {
                    log::warn!("terminal shell did not start after a restart: {e}");
                }
            });
        }
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let Some(shell) = self.core.take_shell() {
            spawn_shutdown(shell);
        }
    }
}

impl Supervised for TerminalSession {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        if let Some(shell) = self.core.take_shell() {
            spawn_shutdown(shell);
        }
        // In-flight futures keep the old core and finish against the killed shell.
        self.core = Arc::new(Core::new(self.cfg.clone()));
        self.warm_up = true;
    }
}

impl Handler<Execute> for TerminalSession {
    type Result = ResponseFuture<Result<TerminalObservation, TerminalError>>;

    /// Run one terminal action; the future does not hold the actor, so `Interrupt` and
    /// `Close` are handled while it waits.
    fn handle(&mut self, msg: Execute, _ctx: &mut Self::Context) -> Self::Result {
        let core = self.core.clone();
        Box::pin(async move { core.execute(msg.action, msg.secrets).await })
    }
}

impl Handler<Interrupt> for TerminalSession {
    type Result = ();

    /// Interrupt the running command.
    fn handle(&mut self, _msg: Interrupt, _ctx: &mut Self::Context) {
        self.core.interrupt();
    }
}

impl Handler<Close> for TerminalSession {
    type Result = ResponseFuture<()>;

    /// Stop the shell and its whole session.
    fn handle(&mut self, _msg: Close, _ctx: &mut Self::Context) -> Self::Result {
        let shell = self.core.take_shell();
        Box::pin(async move {
            if let Some(shell) = shell {
                shell.shutdown().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::Actor;

    fn config(dir: &Path) -> TerminalConfig {
        TerminalConfig {
            no_change_timeout: Duration::from_secs(2),
            full_output_save_dir: Some(dir.join("observations")),
            ..TerminalConfig::new(dir)
        }
    }

    fn action(command: &str) -> Value {
        json!({"command": command, "is_input": false, "timeout": null, "reset": false, "kind": "TerminalAction"})
    }

    async fn exec(addr: &actix::Addr<TerminalSession>, action: Value) -> TerminalObservation {
        exec_with(addr, action, Vec::new()).await
    }

    async fn exec_with(
        addr: &actix::Addr<TerminalSession>,
        action: Value,
        secrets: Vec<(String, String)>,
    ) -> TerminalObservation {
        addr.send(Execute { action, secrets })
            .await
            .expect("mailbox")
            .expect("execute")
    }

    async fn run(addr: &actix::Addr<TerminalSession>, command: &str) -> TerminalObservation {
        exec(addr, action(command)).await
    }

    fn input(command: &str) -> Value {
        json!({"command": command, "is_input": true, "kind": "TerminalAction"})
    }

    fn session(dir: &Path) -> actix::Addr<TerminalSession> {
        TerminalSession::new(config(dir)).start()
    }

    #[actix_rt::test]
    async fn echo_exit_code_and_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let addr = session(dir.path());
        let obs = run(&addr, "echo hello").await;
        assert_eq!(obs.output(), "hello");
        assert_eq!(obs.exit_code(), Some(0));
        assert!(!obs.is_error());
        let m = obs.metadata();
        assert_eq!(m.suffix, "\n[The command completed with exit code 0.]");
        assert_eq!(m.prefix, "");
        let cwd = dir.path().canonicalize().unwrap();
        assert_eq!(m.working_dir.as_deref(), cwd.to_str());
        assert!(m.username.is_some() && m.hostname.is_some());
        let obs = run(&addr, "bash -c 'exit 3'").await;
        assert_eq!(obs.exit_code(), Some(3));
        assert_eq!(obs.metadata().exit_code, 3);
        assert!(
            obs.llm_text()
                .ends_with("\n[Command finished with exit code 3]")
        );
        addr.send(Close).await.unwrap();
    }

    #[actix_rt::test]
    async fn cd_and_export_persist_and_stderr_is_included() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let addr = session(dir.path());
        run(&addr, "cd sub && export GREETING=hi").await;
        let obs = run(&addr, "pwd; echo $GREETING").await;
        let sub = dir.path().join("sub").canonicalize().unwrap();
        assert_eq!(obs.output(), format!("{}\nhi", sub.display()));
        assert_eq!(obs.metadata().working_dir.as_deref(), sub.to_str());
        let obs = run(&addr, "echo out; echo err >&2; ls /definitely-missing").await;
        assert!(obs.output().starts_with("out\nerr\n"), "{obs:?}");
        assert!(obs.output().contains("definitely-missing"));
        assert_eq!(obs.exit_code(), Some(2));
        addr.send(Close).await.unwrap();
    }

    #[actix_rt::test]
    async fn soft_timeout_then_empty_command_fetches_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let addr = session(dir.path());
        let obs = run(&addr, "echo first; sleep 3; echo second").await;
        assert_eq!(obs.output(), "first");
        assert_eq!(obs.exit_code(), Some(-1));
        assert_eq!(obs.metadata().exit_code, -1);
        assert!(
            obs.metadata()
                .suffix
                .starts_with("\n[The command has no new output after 2 seconds. ")
        );
        let obs = run(&addr, "").await;
        assert_eq!(obs.output(), "second");
        assert_eq!(obs.exit_code(), Some(0));
        assert_eq!(obs.metadata().prefix, PREVIOUS_OUTPUT_PREFIX);
        assert!(
            obs.llm_text()
                .starts_with("[Below is the output of the previous command.]\nsecond\n[The command completed with exit code 0.]")
        );
        let obs = run(&addr, "").await;
        assert!(obs.is_error());
        assert_eq!(obs.output(), NO_LOGS);
        assert_eq!(obs.exit_code(), None);
        addr.send(Close).await.unwrap();
    }

    #[actix_rt::test]
    async fn running_command_refuses_new_ones_and_stops_on_ctrl_c() {
        let dir = tempfile::tempdir().unwrap();
        let addr = session(dir.path());
        let obs = run(&addr, "echo start; sleep 100").await;
        assert_eq!((obs.output(), obs.exit_code()), ("start", Some(-1)));
        let obs = run(&addr, "echo other").await;
        assert!(obs.is_error());
        assert!(
            obs.metadata()
                .suffix
                .starts_with("\n[Your command \"echo other\" is NOT executed. The previous command is still running - ")
        );
        // A timeout on a follow-up bounds the wait and leaves the job running.
        let obs = exec(&addr, json!({"command": "", "timeout": 0.5})).await;
        assert_eq!(obs.exit_code(), Some(-1));
        assert!(
            obs.metadata()
                .suffix
                .starts_with("\n[The command timed out after 0.5 seconds. You can wait")
        );
        let obs = exec(&addr, input("C-c")).await;
        assert_eq!(obs.exit_code(), Some(130));
        assert_eq!(
            obs.metadata().suffix,
            "\n[The command completed with exit code 130. CTRL+C was sent.]"
        );
        let obs = run(&addr, "echo after").await;
        assert_eq!((obs.output(), obs.exit_code()), ("after", Some(0)));
        let obs = exec(&addr, input("C-c")).await;
        assert!(obs.is_error());
        assert_eq!(obs.output(), NO_INTERACT);
        addr.send(Close).await.unwrap();
    }

    #[actix_rt::test]
    async fn input_text_reaches_a_waiting_program() {
        let dir = tempfile::tempdir().unwrap();
        let addr = session(dir.path());
        let obs = run(&addr, "read -r name; echo \"hello $name\"").await;
        assert_eq!(obs.exit_code(), Some(-1));
        let obs = exec(&addr, input("world")).await;
        assert_eq!(obs.output(), "hello world");
        assert_eq!(obs.exit_code(), Some(0));
        addr.send(Close).await.unwrap();
    }

    #[actix_rt::test]
    async fn hard_timeout_kills_the_job_and_the_session_stays_usable() {
        let dir = tempfile::tempdir().unwrap();
        let addr = session(dir.path());
        let started = std::time::Instant::now();
        let obs = exec(
            &addr,
            json!({"command": "echo go; sleep 100", "timeout": 1, "kind": "TerminalAction"}),
        )
        .await;
        assert_eq!(obs.output(), "go");
        assert_eq!(obs.exit_code(), Some(-1));
        assert!(
            obs.metadata()
                .suffix
                .starts_with("\n[The command timed out after 1.0 seconds. It was interrupted"),
            "{obs:?}"
        );
        assert_eq!(obs.to_json()["timeout"], json!(false));
        // A job that ignores Ctrl-C gets SIGTERM after the grace period.
        let obs = exec(
            &addr,
            json!({"command": "bash -c \"trap '' INT; sleep 100\"", "timeout": 0.5}),
        )
        .await;
        assert!(
            obs.metadata().suffix.contains("It was interrupted"),
            "{obs:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(8));
        let obs = run(&addr, "echo ok").await;
        assert_eq!((obs.output(), obs.exit_code()), ("ok", Some(0)));
        addr.send(Close).await.unwrap();
    }

    #[actix_rt::test]
    async fn interrupt_message_stops_a_running_command() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = TerminalConfig {
            no_change_timeout: Duration::from_secs(20),
            ..config(dir.path())
        };
        let addr = TerminalSession::new(cfg).start();
        let pending = addr.send(Execute {
            action: action("sleep 100"),
            secrets: Vec::new(),
        });
        let task = actix_rt::spawn(pending);
        actix_rt::time::sleep(Duration::from_millis(700)).await;
        addr.send(Interrupt).await.unwrap();
        let obs = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("interrupt was not effective")
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(obs.exit_code(), Some(130));
        let obs = run(&addr, "echo still-here").await;
        assert_eq!(obs.output(), "still-here");
        addr.send(Close).await.unwrap();
    }

    #[actix_rt::test]
    async fn multiple_commands_are_refused_but_heredocs_are_one() {
        let dir = tempfile::tempdir().unwrap();
        let addr = session(dir.path());
        let obs = run(&addr, "echo a\necho b").await;
        assert!(obs.is_error());
        assert_eq!(obs.exit_code(), None);
        assert_eq!(
            obs.output(),
            "Cannot execute multiple commands at once.\nPlease run each command separately OR chain them into a single command via && or ;\nProvided commands:\n(1) echo a\n(2) echo b"
        );
        let obs = run(&addr, "cat <<'EOF' > note.txt\nline $one\n  two\nEOF").await;
        assert_eq!(obs.exit_code(), Some(0), "{obs:?}");
        let obs = run(&addr, "cat note.txt && echo a \\\n  b").await;
        assert_eq!(obs.output(), "line $one\n  two\na b");
        let obs = run(&addr, "for i in 1 2; do\n  echo n$i\ndone").await;
        assert_eq!(obs.output(), "n1\nn2");
        addr.send(Close).await.unwrap();
    }

    #[actix_rt::test]
    async fn reset_clears_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let addr = session(dir.path());
        run(&addr, "export KEEP=1").await;
        let obs = exec(
            &addr,
            json!({"command": "", "reset": true, "kind": "TerminalAction"}),
        )
        .await;
        assert_eq!(obs.command(), "[RESET]");
        assert_eq!(obs.output(), RESET_TEXT);
        assert_eq!(obs.exit_code(), Some(0));
        let obs = exec(
            &addr,
            json!({"command": "echo ${KEEP:-gone}", "reset": true}),
        )
        .await;
        assert_eq!(obs.command(), "[RESET] echo ${KEEP:-gone}");
        assert_eq!(obs.output(), format!("{RESET_TEXT}\n\ngone"));
        let err = addr
            .send(Execute {
                action: json!({"command": "x", "reset": true, "is_input": true}),
                secrets: Vec::new(),
            })
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err, TerminalError::ResetWithInput);
        addr.send(Close).await.unwrap();
    }

    #[actix_rt::test]
    async fn secrets_are_exported_and_masked() {
        let dir = tempfile::tempdir().unwrap();
        let addr = session(dir.path());
        let secrets = vec![
            ("API_TOKEN".to_owned(), "tok-123-secret".to_owned()),
            ("UNUSED".to_owned(), "never-exported".to_owned()),
        ];
        let obs = exec_with(
            &addr,
            action("echo \"[$API_TOKEN]\" ${#API_TOKEN}; printenv | grep -c '^UNU'"),
            secrets.clone(),
        )
        .await;
        assert_eq!(obs.output(), "[<secret-hidden>] 14\n0");
        let obs = exec_with(&addr, action("echo never-exported"), secrets).await;
        assert_eq!(obs.output(), "<secret-hidden>");
        addr.send(Close).await.unwrap();
    }

    #[actix_rt::test]
    async fn long_output_is_clipped_and_saved() {
        let dir = tempfile::tempdir().unwrap();
        let addr = session(dir.path());
        let obs = run(&addr, "seq 1 20000").await;
        assert_eq!(obs.exit_code(), Some(0));
        let content = obs.to_json()["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(char_len(&content) <= 30_000);
        assert!(content.starts_with("1\n2\n3\n"));
        assert!(content.ends_with("19999\n20000"));
        assert!(content.contains("<response clipped><NOTE>"));
        let llm = obs.llm_text();
        assert!(char_len(&llm) <= 30_000);
        assert!(llm.ends_with("[Command finished with exit code 0]"));
        let saved = obs.saved_output().expect("saved").to_path_buf();
        let name = saved.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(
            name.starts_with("terminal_output_") && name.len() == 28,
            "{name}"
        );
        assert!(llm.contains(saved.to_str().unwrap()));
        let full = std::fs::read_to_string(&saved).unwrap();
        assert_eq!(full.lines().count(), 20000);
        // A long command line goes through a script file, not the terminal's line buffer.
        let long = format!("echo {} | wc -c", "x".repeat(6000));
        assert_eq!(run(&addr, &long).await.output(), "6001");
        addr.send(Close).await.unwrap();
    }

    #[actix_rt::test]
    async fn close_leaves_no_process_and_the_next_command_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let addr = actix::Supervisor::start({
            let cfg = config(dir.path());
            move |_| TerminalSession::new(cfg)
        });
        let obs = run(&addr, "sleep 100 & (sleep 100 &) ; echo \"pids $$ $!\"").await;
        let pids = pids_line(&obs);
        assert!(pids.iter().all(|&p| pty::pid_exists(p)));
        addr.send(Close).await.unwrap();
        for p in pids {
            assert!(!pty::pid_exists(p), "process {p} survived Close");
        }
        let obs = run(&addr, "echo fresh").await;
        assert_eq!(obs.output(), "fresh");
        addr.send(Close).await.unwrap();
    }

    #[actix_rt::test]
    async fn dead_shell_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let addr = session(dir.path());
        let obs = run(&addr, "exit 4").await;
        assert_eq!(obs.exit_code(), Some(4));
        assert!(
            obs.metadata()
                .suffix
                .contains("The shell exited with code 4")
        );
        let obs = run(&addr, "echo again").await;
        assert_eq!((obs.output(), obs.exit_code()), ("again", Some(0)));
        addr.send(Close).await.unwrap();
    }

    /// Makes the actor stop itself, as a handler does on a fatal error.
    #[derive(actix::Message)]
    #[rtype(result = "()")]
    struct Crash;

    impl Handler<Crash> for TerminalSession {
        type Result = ();

        fn handle(&mut self, _msg: Crash, ctx: &mut Self::Context) {
            actix::ActorContext::stop(ctx);
        }
    }

    fn running_not_zombie(pid: libc::pid_t) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().to_owned())
            })
            .is_some_and(|rest| !rest.starts_with('Z'))
    }

    fn pids_line(obs: &TerminalObservation) -> Vec<libc::pid_t> {
        obs.output()
            .lines()
            .find_map(|l| l.strip_prefix("pids "))
            .expect("pids line")
            .split(' ')
            .map(|p| p.parse().expect("pid"))
            .collect()
    }

    #[actix_rt::test]
    async fn supervisor_restart_starts_a_fresh_shell() {
        let dir = tempfile::tempdir().unwrap();
        let addr = actix::Supervisor::start({
            let cfg = config(dir.path());
            move |_| TerminalSession::new(cfg)
        });
        let obs = run(&addr, "export KEEP=1; echo \"pids $$\"").await;
        let old = pids_line(&obs)[0];
        addr.send(Crash).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while running_not_zombie(old) && std::time::Instant::now() < deadline {
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            !running_not_zombie(old),
            "old shell {old} survived the restart"
        );
        let obs = run(&addr, "echo ${KEEP:-fresh}").await;
        assert_eq!(obs.output(), "fresh");
        addr.send(Close).await.unwrap();
    }

    #[actix_rt::test]
    async fn missing_working_dir_is_a_spawn_error() {
        let dir = tempfile::tempdir().unwrap();
        let addr = TerminalSession::new(config(&dir.path().join("nope"))).start();
        let res = addr
            .send(Execute {
                action: action("echo hi"),
                secrets: Vec::new(),
            })
            .await
            .unwrap();
        assert!(matches!(res, Err(TerminalError::Spawn(_))), "{res:?}");
    }

    #[test]
    fn dropping_the_actor_system_kills_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let pids = std::thread::spawn(move || {
            let system = actix_rt::System::new();
            system.block_on(async move {
                let addr = session(&path);
                pids_line(&run(&addr, "sleep 100 & echo \"pids $$ $!\"").await)
            })
        })
        .join()
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while pids.iter().any(|&p| running_not_zombie(p)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        for p in pids {
            assert!(!running_not_zombie(p), "process {p} survived the system");
        }
    }

    #[test]
    fn observation_json_matches_the_reference_fixture() {
        let cfg = TerminalConfig {
            full_output_save_dir: Some(
                "workspace/conversations/3f5ce2aaa17c468c808a84d8f181f350/observations".into(),
            ),
            ..TerminalConfig::new("/srv/agent/workspace/project")
        };
        let mut obs = TerminalObservation::new(
            &cfg,
            "cat TODO.md && pwd",
            "# TODO\n\n- [ ] Install dependencies\n- [ ] Configure environment\n- [ ] Run tests\n/srv/agent/workspace/project".into(),
        );
        obs.exit_code = Some(0);
        obs.metadata = CmdOutputMetadata {
            exit_code: 0,
            username: Some("root".into()),
            hostname: Some("vm".into()),
            working_dir: Some("/srv/agent/workspace/project".into()),
            py_interpreter_path: Some("/usr/bin/python3".into()),
            suffix: "\n[The command completed with exit code 0.]".into(),
            ..CmdOutputMetadata::default()
        };
        let expected = r##"{"content":[{"cache_prompt":false,"type":"text","text":"# TODO\n\n- [ ] Install dependencies\n- [ ] Configure environment\n- [ ] Run tests\n/srv/agent/workspace/project"}],"is_error":false,"command":"cat TODO.md && pwd","exit_code":0,"timeout":false,"metadata":{"exit_code":0,"pid":-1,"username":"root","hostname":"vm","working_dir":"/srv/agent/workspace/project","py_interpreter_path":"/usr/bin/python3","prefix":"","suffix":"\n[The command completed with exit code 0.]"},"full_output_save_dir":"workspace/conversations/3f5ce2aaa17c468c808a84d8f181f350/observations","kind":"TerminalObservation"}"##;
        assert_eq!(obs.to_json().to_string(), expected);
        assert_eq!(
            obs.llm_text(),
            "# TODO\n\n- [ ] Install dependencies\n- [ ] Configure environment\n- [ ] Run tests\n/srv/agent/workspace/project\n[The command completed with exit code 0.]\n[Current working directory: /srv/agent/workspace/project]\n[Python interpreter: /usr/bin/python3]\n[Command finished with exit code 0]"
        );
        let err = TerminalObservation::error(&cfg, "", NO_LOGS);
        assert_eq!(
            err.llm_text(),
            "[An error occurred during execution.]\nNo previous running command to retrieve logs from."
        );
        assert_eq!(err.to_json()["exit_code"], Value::Null);
    }

    #[test]
    fn splits_only_top_level_commands() {
        let one = [
            "ls",
            "cat <<EOF\na\nb\nEOF",
            "cat <<-'END' > f\n\tx $y\n\tEND",
            "echo a \\\n b",
            "for i in 1 2; do\n echo $i\ndone",
            "if true; then\necho y\nelse\necho n\nfi",
            "echo 'a\nb'",
            "echo \"a\nb $(echo 'c\nd')\"",
            "f() {\n echo x\n}",
            "function g {\n echo x\n}",
            "ls &&\npwd",
            "ls |\ngrep x",
            "# comment\nls",
            "python3 -c 'print(1)\nprint(2)'",
            "case $x in\na) echo a;;\nesac",
            "x=$(echo a\necho b)",
            "(cd /tmp\nls)",
            "echo ${x:-a\nb}",
            "echo $'a\\'\nb'",
        ];
        for cmd in one {
            assert_eq!(top_level_commands(cmd).len(), 1, "{cmd:?}");
        }
        assert_eq!(top_level_commands("ls\npwd"), vec!["ls", "pwd"]);
        assert_eq!(
            top_level_commands("cat <<EOF\nx\nEOF\necho done\nls"),
            vec!["cat <<EOF\nx\nEOF", "echo done", "ls"]
        );
        assert_eq!(top_level_commands("echo fi\necho done").len(), 2);
        assert_eq!(top_level_commands("ls # it's\npwd").len(), 2);
    }

    #[test]
    fn parses_keys_and_actions() {
        assert_eq!(special_key("C-c"), Some((vec![3], Some('C'))));
        assert_eq!(special_key("C-D"), Some((vec![4], Some('D'))));
        assert_eq!(special_key("UP"), Some((b"\x1b[A".to_vec(), None)));
        assert_eq!(special_key("ENTER"), Some((b"\r".to_vec(), None)));
        assert_eq!(special_key("C-cc"), None);
        assert_eq!(special_key("hello"), None);
        let act = TerminalAction::parse(&json!({"command": "ls", "timeout": 2})).unwrap();
        assert_eq!(act.timeout, Some(2.0));
        assert!(TerminalAction::parse(&json!({"command": 1})).is_err());
        assert!(TerminalAction::parse(&json!({"command": "ls", "timeout": -1})).is_err());
        assert!(TerminalAction::parse(&json!({"command": "ls", "kind": "Other"})).is_err());
        assert!(TerminalAction::parse(&json!({"is_input": true})).is_err());
    }

    #[test]
    fn cleans_terminal_output() {
        let raw = b"\x1b[01;34mdir\x1b[0m  file\r\n10%\r50%\r100%\r\n\x1b]0;title\x07ok  \r\n\r\n";
        assert_eq!(clean_output(raw), "dir  file\n100%\nok");
        assert_eq!(clean_output(b"abcdef\rXY"), "XYcdef");
        assert_eq!(clean_output(b"ab\x08c"), "ac");
    }

    #[test]
    fn environment_drops_server_keys() {
        let base = [
            ("SESSION_API_KEY", "k"),
            ("OH_SESSION_API_KEYS_0", "k0"),
            ("OH_SECRET_KEY", "s"),
            ("PATH", "/bin"),
            ("PAGER", "less"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env = shell_env(
            base,
            &[
                ("EXTRA".into(), "1".into()),
                ("OH_SECRET_KEY".into(), "x".into()),
            ],
        );
        let get = |k: &str| {
            env.iter()
                .find(|(ek, _)| ek == k)
                .map(|(_, v)| v.to_string_lossy().into_owned())
        };
        assert_eq!(get("SESSION_API_KEY"), None);
        assert_eq!(get("OH_SESSION_API_KEYS_0"), None);
        assert_eq!(get("OH_SECRET_KEY"), None);
        assert_eq!(get("PATH").as_deref(), Some("/bin"));
        assert_eq!(get("PAGER").as_deref(), Some("cat"));
        assert_eq!(get("GIT_PAGER").as_deref(), Some("cat"));
        assert_eq!(get("EXTRA").as_deref(), Some("1"));
    }

    #[test]
    fn output_buffer_finds_split_markers_and_caps_floods() {
        let mut buf = OutputBuf::new("t0k");
        buf.push(b"hello\r\n###OH-t0k-BEG");
        assert!(buf.done.is_empty());
        assert_eq!(buf.take_partial().into_bytes(), b"hello\r\n");
        buf.push(b"IN###0\x1fme\x1fhost\x1f\x1f/x y###OH-t0k-END###\r\nrest");
        let (seg, info) = buf.done.pop_front().unwrap();
        assert!(seg.data.is_empty());
        assert_eq!(info.exit_code, 0);
        assert_eq!(info.python, None);
        assert_eq!(info.cwd.as_deref(), Some("/x y"));
        assert_eq!(buf.take_all(), b"rest");
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..5 {
            buf.push(&chunk);
        }
        assert!(buf.cur.data.len() <= BUF_HEAD + 2 * BUF_TAIL);
        let bytes = buf.take_all();
        assert!(String::from_utf8_lossy(&bytes).contains("bytes of output were not kept"));
    }

    #[test]
    fn clip_keeps_head_and_tail_within_budget() {
        let text: String = (0..5000).map(|i| format!("{i}\n")).collect();
        let clipped = clip(&text, 1000, Some(Path::new("/tmp/x.txt")));
        assert_eq!(char_len(&clipped), 1000);
        assert!(clipped.starts_with("0\n1\n") && clipped.ends_with("4999\n"));
        assert!(clipped.contains("/tmp/x.txt"));
        assert_eq!(clip("short", 10, None), "short");
        assert_eq!(python_float(5.0), "5.0");
        assert_eq!(python_float(2.5), "2.5");
        assert_eq!(duration_secs(Duration::from_secs(30)), "30");
    }
}
