//! Running hook commands: each is `/bin/sh -c <command>` in the
//! conversation's working directory, leading its own process group, with
//! the server's environment (minus its keys) plus the `OPENHANDS_*`
//! variables, the hook input as JSON on stdin, and its output captured.
//! The timeout kills the whole group, and so does dropping the future (an
//! interrupted step or a stopped actor leaves no hook behind). Async hooks
//! are started and left to a reaper task that enforces their timeout.
//!
//! Exit codes as in the reference: 0 is success (stdout may hold a JSON
//! decision), 2 blocks, anything else is a non-blocking failure. Only
//! processes and pipes here: no actors, no storage.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::config::{HookDefinition, HookEventType};
use crate::bash::process::{has_controlling_terminal, sanitized_env, signal_group};
use crate::tools::catalog::py_repr;

/// Most bytes kept of a hook's stdout and of its stderr; the rest is read
/// and dropped so that a chatty hook never blocks on a full pipe.
pub const MAX_CAPTURE: usize = 4 << 20;
/// Longest hook timeout honoured (a larger one is cut to this).
const MAX_TIMEOUT_SECS: i64 = 7 * 24 * 3600;
/// How long an async hook has to exit after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(1);

/// The JSON a hook reads on stdin (the reference's `HookEvent`).
#[derive(Debug, Clone, PartialEq)]
pub struct HookInput {
    /// Hook point.
    pub event_type: HookEventType,
    /// Tool of a PreToolUse/PostToolUse hook.
    pub tool_name: Option<String>,
    /// The action, for tool hooks.
    pub tool_input: Option<Value>,
    /// The observation, for PostToolUse.
    pub tool_response: Option<Value>,
    /// The user's text, for UserPromptSubmit.
    pub message: Option<String>,
    /// Conversation id (hyphenated).
    pub session_id: String,
    /// The workspace's working directory as configured.
    pub working_dir: String,
    /// Extra data (`{"reason": …}` for Stop).
    pub metadata: Map<String, Value>,
}

impl HookInput {
    /// An input with only the common fields set.
    pub fn new(event_type: HookEventType, env: &HookEnv) -> HookInput {
        HookInput {
            event_type,
            tool_name: None,
            tool_input: None,
            tool_response: None,
            message: None,
            session_id: env.session_id.clone(),
            working_dir: env.project_dir.clone(),
            metadata: Map::new(),
        }
    }

    /// Compact JSON, fields in the reference's order.
    pub fn to_json(&self) -> String {
        json!({
            "event_type": self.event_type.as_str(),
            "tool_name": self.tool_name,
            "tool_input": self.tool_input,
            "tool_response": self.tool_response,
            "message": self.message,
            "session_id": self.session_id,
            "working_dir": self.working_dir,
            "metadata": self.metadata,
        })
        .to_string()
    }
}

/// Where and for whom hooks run.
#[derive(Debug, Clone)]
pub struct HookEnv {
    /// Directory the commands run in (the working directory, resolved).
    pub cwd: PathBuf,
    /// `OPENHANDS_PROJECT_DIR` and the input's `working_dir`: the
    /// workspace's working directory as configured.
    pub project_dir: String,
    /// `OPENHANDS_SESSION_ID`: the conversation id.
    pub session_id: String,
}

/// A hook's own verdict from its JSON output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// `"decision": "allow"`.
    Allow,
    /// `"decision": "deny"`.
    Deny,
}

/// What one hook execution produced.
#[derive(Debug, Clone, PartialEq)]
pub struct HookResult {
    /// Exit code 0 (an async hook that started counts as success).
    pub success: bool,
    /// Exit code 2, a `deny` decision or `"continue": false`.
    pub blocked: bool,
    /// Exit code; the negated signal number when killed by one; -1 when it
    /// did not run to an exit (timeout, could not start).
    pub exit_code: i64,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
    /// The JSON `decision`, if any.
    pub decision: Option<Decision>,
    /// The JSON `reason`, if any.
    pub reason: Option<String>,
    /// The JSON `additionalContext`, if any.
    pub additional_context: Option<String>,
    /// Why the hook could not run to an exit.
    pub error: Option<String>,
    /// An async hook that was started and not waited for.
    pub async_started: bool,
}

impl HookResult {
    fn failed(error: String) -> HookResult {
        HookResult {
            success: false,
            blocked: false,
            exit_code: -1,
            stdout: String::new(),
            stderr: String::new(),
            decision: None,
            reason: None,
            additional_context: None,
            error: Some(error),
            async_started: false,
        }
    }

    /// Whether the operation may go on after this hook.
    pub fn should_continue(&self) -> bool {
        !self.blocked && self.decision != Some(Decision::Deny)
    }
}

/// Why the first blocking hook blocked: its reason, else its stderr, else
/// a fixed text. `None` when none blocked.
pub fn blocking_reason(results: &[HookResult]) -> Option<String> {
    let r = results.iter().find(|r| r.blocked)?;
    if let Some(reason) = &r.reason {
        return Some(reason.clone());
    }
    let stderr = r.stderr.trim();
    Some(if stderr.is_empty() {
        "Blocked by hook".to_string()
    } else {
        stderr.to_string()
    })
}

/// The async hooks of one conversation session: ending the session kills
/// those still running.
#[derive(Debug)]
pub struct AsyncHooks {
    stop: watch::Sender<bool>,
}

impl Default for AsyncHooks {
    fn default() -> Self {
        AsyncHooks {
            stop: watch::channel(false).0,
        }
    }
}

impl AsyncHooks {
    /// A handle the reapers watch.
    pub fn watcher(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Terminates every async hook still running.
    pub fn stop_all(&self) {
        self.stop.send_replace(true);
    }
}

/// Kills a process group when dropped, unless disarmed.
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            signal_group(pgid, libc::SIGKILL);
        }
    }
}

fn environment(input: &HookInput, env: &HookEnv) -> Vec<(OsString, OsString)> {
    let mut vars = sanitized_env(std::env::vars_os());
    // A bundled build may have rewritten the library path; hooks get the
    // original one (the reference's `LD_LIBRARY_PATH_ORIG` rule).
    let orig = vars
        .iter()
        .find(|(k, _)| k == "LD_LIBRARY_PATH_ORIG")
        .map(|(_, v)| v.clone());
    if let Some(orig) = orig {
        vars.retain(|(k, _)| k != "LD_LIBRARY_PATH");
        if !orig.is_empty() {
            vars.push(("LD_LIBRARY_PATH".into(), orig));
        }
    }
    let mut set = |k: &str, v: &str| {
        vars.retain(|(name, _)| name != k);
        vars.push((k.into(), v.into()));
    };
    set("OPENHANDS_PROJECT_DIR", &env.project_dir);
    set("OPENHANDS_SESSION_ID", &env.session_id);
    set("OPENHANDS_EVENT_TYPE", input.event_type.as_str());
    if let Some(tool) = input.tool_name.as_deref().filter(|t| !t.is_empty()) {
        set("OPENHANDS_TOOL_NAME", tool);
    }
    vars
}

fn command(hook: &HookDefinition, input: &HookInput, env: &HookEnv) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(&hook.command)
        .current_dir(&env.cwd)
        .env_clear()
        .envs(environment(input, env))
        .stdin(Stdio::piped());
    if has_controlling_terminal() {
        // A session of its own, so that a hook reading /dev/tty fails at
        // once instead of stopping (SIGTTIN) until its timeout.
        // SAFETY: only setsid(2), async-signal-safe, between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    } else {
        cmd.process_group(0);
    }
    cmd
}

fn timeout_of(hook: &HookDefinition) -> Duration {
    Duration::from_secs(hook.timeout.clamp(0, MAX_TIMEOUT_SECS) as u64)
}

fn spawn_error(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        format!("Hook command not found: cannot start /bin/sh here ({e})")
    } else {
        format!("Hook execution failed: the command could not start ({e})")
    }
}

async fn read_capped<R: tokio::io::AsyncRead + Unpin>(mut r: R) -> Vec<u8> {
    let mut kept = Vec::new();
    let _ = (&mut r)
        .take(MAX_CAPTURE as u64)
        .read_to_end(&mut kept)
        .await;
    let _ = tokio::io::copy(&mut r, &mut tokio::io::sink()).await;
    kept
}

/// Runs one hook to its end (or its timeout).
pub async fn run_hook(
    hook: &HookDefinition,
    input: &HookInput,
    env: &HookEnv,
    reaper: &watch::Receiver<bool>,
) -> HookResult {
    let payload = input.to_json();
    if hook.is_async {
        return start_async(hook, input, env, payload, reaper.clone());
    }
    let mut cmd = command(hook, input, env);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return HookResult::failed(spawn_error(&e)),
    };
    let mut guard = GroupGuard(child.id().map(|p| p as i32));
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let io = async {
        let write = async {
            if let Some(mut w) = stdin {
                // A hook that does not read its input closes the pipe: fine.
                let _ = w.write_all(payload.as_bytes()).await;
                let _ = w.shutdown().await;
            }
        };
        let out = async {
            match stdout {
                Some(r) => read_capped(r).await,
                None => vec![],
            }
        };
        let err = async {
            match stderr {
                Some(r) => read_capped(r).await,
                None => vec![],
            }
        };
        let ((), out, err) = tokio::join!(write, out, err);
        let status = child.wait().await;
        (status, out, err)
    };
    let (status, out, err) = match tokio::time::timeout(timeout_of(hook), io).await {
        Ok(done) => done,
        Err(_) => {
            // Dropping the guard kills the group; the orphaned child is
            // reaped by the runtime.
            drop(guard);
            return HookResult::failed(format!(
                "Hook timed out after {} seconds and was killed",
                hook.timeout
            ));
        }
    };
    guard.disarm();
    let status = match status {
        Ok(s) => s,
        Err(e) => return HookResult::failed(format!("Hook execution failed: {e}")),
    };
    let exit_code = match status.code() {
        Some(c) => c as i64,
        None => {
            use std::os::unix::process::ExitStatusExt;
            -(status.signal().unwrap_or(1) as i64)
        }
    };
    let stdout = String::from_utf8_lossy(&out).into_owned();
    let stderr = String::from_utf8_lossy(&err).into_owned();
    interpret(exit_code, stdout, stderr)
}

/// The result of a hook that exited: exit code semantics, then the JSON
/// decision on stdout, if stdout is a JSON object.
fn interpret(exit_code: i64, stdout: String, stderr: String) -> HookResult {
    let mut r = HookResult {
        success: exit_code == 0,
        blocked: exit_code == 2,
        exit_code,
        stdout,
        stderr,
        decision: None,
        reason: None,
        additional_context: None,
        error: None,
        async_started: false,
    };
    if r.stdout.trim().is_empty() {
        return r;
    }
    let Ok(Value::Object(out)) = serde_json::from_str::<Value>(r.stdout.trim()) else {
        return r;
    };
    if let Some(d) = out.get("decision") {
        // The reference lower-cases the decision; anything but a string
        // makes the whole output unusable (the hook counts as failed).
        let Some(d) = d.as_str() else {
            return HookResult::failed(format!(
                "Hook execution failed: 'decision' must be a string, got {d}"
            ));
        };
        match d.to_lowercase().as_str() {
            "allow" => r.decision = Some(Decision::Allow),
            "deny" => {
                r.decision = Some(Decision::Deny);
                r.blocked = true;
            }
            _ => {}
        }
    }
    if let Some(v) = out.get("reason") {
        r.reason = Some(py_str(v));
    }
    if let Some(v) = out.get("additionalContext") {
        r.additional_context = Some(py_str(v));
    }
    if out.get("continue").is_some_and(|c| !truthy(c)) {
        r.blocked = true;
    }
    r
}

fn start_async(
    hook: &HookDefinition,
    input: &HookInput,
    env: &HookEnv,
    payload: String,
    mut stop: watch::Receiver<bool>,
) -> HookResult {
    let mut cmd = command(hook, input, env);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return HookResult::failed(format!("Failed to start async hook: {e}"));
        }
    };
    let pgid = child.id().map(|p| p as i32).unwrap_or(0);
    let limit = timeout_of(hook);
    let stdin = child.stdin.take();
    tokio::spawn(async move {
        // The input is written while the timeout and the session's end
        // are watched: a hook that never reads a large input must not
        // keep the reaper waiting on a full pipe.
        let run = async {
            if let Some(mut w) = stdin {
                if let Err(e) = w.write_all(payload.as_bytes()).await {
                    log::warn!("async hook: could not write its input: {e}");
                }
                drop(w);
            }
            child.wait().await
        };
        let ended = async {
            loop {
                if *stop.borrow_and_update() {
                    return;
                }
                if stop.changed().await.is_err() {
                    // Nobody can end the session any more: the timeout decides.
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = run => return,
            _ = tokio::time::sleep(limit) => {}
            _ = ended => {}
        }
        signal_group(pgid, libc::SIGTERM);
        if tokio::time::timeout(TERM_GRACE, child.wait())
            .await
            .is_err()
        {
            signal_group(pgid, libc::SIGKILL);
            let _ = child.wait().await;
        }
    });
    HookResult {
        success: true,
        blocked: false,
        exit_code: 0,
        stdout: String::new(),
        stderr: String::new(),
        decision: None,
        reason: None,
        additional_context: None,
        error: None,
        async_started: true,
    }
}

/// Runs hooks one after the other; with `stop_on_block` the first one that
/// blocks ends the sequence. Returns each hook run with its result.
pub async fn run_all(
    hooks: Vec<HookDefinition>,
    input: HookInput,
    env: HookEnv,
    stop_on_block: bool,
    reaper: watch::Receiver<bool>,
) -> Vec<(HookDefinition, HookResult)> {
    let mut out = Vec::with_capacity(hooks.len());
    for hook in hooks {
        let result = run_hook(&hook, &input, &env, &reaper).await;
        let blocked = result.blocked;
        out.push((hook, result));
        if stop_on_block && blocked {
            break;
        }
    }
    out
}

/// Python's truth value of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Python's `str()` of a JSON value (`None`, `True`, `[1, 'a']`, …).
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bash::process::group_alive;
    use crate::hooks::config::HookType;

    fn hook(command: &str, timeout: i64) -> HookDefinition {
        HookDefinition {
            kind: HookType::Command,
            command: command.into(),
            prompt: None,
            timeout,
            is_async: false,
        }
    }

    fn env(dir: &std::path::Path) -> HookEnv {
        HookEnv {
            cwd: dir.to_path_buf(),
            project_dir: dir.to_string_lossy().into_owned(),
            session_id: "11111111-2222-3333-4444-555555555555".into(),
        }
    }

    fn input(e: &HookEnv) -> HookInput {
        let mut i = HookInput::new(HookEventType::PreToolUse, e);
        i.tool_name = Some("terminal".into());
        i.tool_input = Some(json!({"command": "ls", "kind": "TerminalAction"}));
        i
    }

    async fn run(command: &str, timeout: i64) -> HookResult {
        let dir = tempfile::tempdir().unwrap();
        let e = env(dir.path());
        let reaper = AsyncHooks::default();
        run_hook(&hook(command, timeout), &input(&e), &e, &reaper.watcher()).await
    }

    #[actix_rt::test]
    async fn exit_codes_stdin_and_environment() {
        let ok = run(
            "cat; echo \" $OPENHANDS_EVENT_TYPE $OPENHANDS_TOOL_NAME $OPENHANDS_SESSION_ID\"",
            10,
        )
        .await;
        assert!(ok.success && !ok.blocked && ok.exit_code == 0, "{ok:?}");
        let (json_part, vars) = ok.stdout.split_once(" PreToolUse").unwrap();
        let v: Value = serde_json::from_str(json_part).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "event_type",
                "tool_name",
                "tool_input",
                "tool_response",
                "message",
                "session_id",
                "working_dir",
                "metadata"
            ]
        );
        assert_eq!(v["tool_input"]["command"], "ls");
        assert_eq!(vars.trim(), "terminal 11111111-2222-3333-4444-555555555555");
        let blocked = run("echo no way >&2; exit 2", 10).await;
        assert!(!blocked.success && blocked.blocked && blocked.exit_code == 2);
        assert_eq!(blocking_reason(&[blocked]).as_deref(), Some("no way"));
        let one = run("exit 1", 10).await;
        assert!(!one.success && !one.blocked && one.exit_code == 1);
        let killed = run("kill -9 $$", 10).await;
        assert_eq!(killed.exit_code, -9);
    }

    #[actix_rt::test]
    async fn json_decisions() {
        let deny = run(
            r#"echo '{"decision": "DENY", "reason": "not now", "additionalContext": 5}'"#,
            10,
        )
        .await;
        assert!(deny.success && deny.blocked, "{deny:?}");
        assert_eq!(deny.decision, Some(Decision::Deny));
        assert_eq!(deny.reason.as_deref(), Some("not now"));
        assert_eq!(deny.additional_context.as_deref(), Some("5"));
        assert_eq!(blocking_reason(&[deny]).as_deref(), Some("not now"));
        let stop = run(r#"echo '{"continue": false}'"#, 10).await;
        assert!(stop.blocked && stop.success);
        assert_eq!(blocking_reason(&[stop]).as_deref(), Some("Blocked by hook"));
        let allow = run(
            r#"echo '{"decision": "allow", "reason": null}'; exit 2"#,
            10,
        )
        .await;
        assert!(allow.blocked, "exit 2 blocks whatever the decision");
        assert_eq!(allow.reason.as_deref(), Some("None"));
        let odd = run(r#"echo '{"decision": 3}'"#, 10).await;
        assert!(!odd.success && odd.exit_code == -1 && odd.error.is_some());
        let text = run("echo plain text", 10).await;
        assert!(text.success && text.decision.is_none());
    }

    #[actix_rt::test]
    async fn timeout_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("late");
        let started = std::time::Instant::now();
        let r = run(
            &format!("(sleep 3; touch {}) & sleep 30", marker.display()),
            1,
        )
        .await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(!r.success && r.exit_code == -1);
        assert!(r.error.unwrap().contains("timed out"));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            !marker.exists(),
            "the background child was killed with its group"
        );
    }

    #[actix_rt::test]
    async fn async_hooks_start_and_end_with_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let e = env(dir.path());
        let sessions = AsyncHooks::default();
        let mut h = hook("cat > input.json; sleep 30; touch late", 60);
        h.is_async = true;
        let started = std::time::Instant::now();
        let r = run_hook(&h, &input(&e), &e, &sessions.watcher()).await;
        assert!(r.success && r.async_started && r.stdout.is_empty());
        assert!(started.elapsed() < Duration::from_secs(2));
        let input_file = dir.path().join("input.json");
        for _ in 0..50 {
            if std::fs::read_to_string(&input_file).is_ok_and(|s| s.ends_with('}')) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(&input_file).unwrap()).unwrap();
        assert_eq!(v["event_type"], "PreToolUse");
        sessions.stop_all();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!dir.path().join("late").exists());
    }

    #[actix_rt::test]
    async fn async_hooks_that_never_read_a_large_input_still_end() {
        let dir = tempfile::tempdir().unwrap();
        let e = env(dir.path());
        let sessions = AsyncHooks::default();
        // More than a pipe holds, to a hook that never reads its stdin.
        let mut big = input(&e);
        big.tool_response = Some(json!({"text": "x".repeat(1 << 20)}));
        let pid_of = |name: &str| -> i32 {
            let file = dir.path().join(name);
            for _ in 0..100 {
                if let Ok(s) = std::fs::read_to_string(&file)
                    && let Ok(pid) = s.trim().parse()
                {
                    return pid;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("{name} never written");
        };
        let mut timed = hook("echo $$ > timed.pid; exec sleep 30", 1);
        timed.is_async = true;
        let mut ended = hook("echo $$ > ended.pid; exec sleep 30", 60);
        ended.is_async = true;
        assert!(
            run_hook(&timed, &big, &e, &sessions.watcher())
                .await
                .async_started
        );
        assert!(
            run_hook(&ended, &big, &e, &sessions.watcher())
                .await
                .async_started
        );
        let (timed, ended) = (pid_of("timed.pid"), pid_of("ended.pid"));
        sessions.stop_all();
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(!group_alive(timed), "killed at its timeout");
        assert!(!group_alive(ended), "killed when the session ended");
    }

    #[actix_rt::test]
    async fn run_all_stops_on_block() {
        let dir = tempfile::tempdir().unwrap();
        let e = env(dir.path());
        let hooks = vec![
            hook("echo first", 5),
            hook("exit 2", 5),
            hook("echo third", 5),
        ];
        let sessions = AsyncHooks::default();
        let r = run_all(
            hooks.clone(),
            input(&e),
            e.clone(),
            true,
            sessions.watcher(),
        )
        .await;
        assert_eq!(r.len(), 2);
        let r = run_all(hooks, input(&e), e, false, sessions.watcher()).await;
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn python_str() {
        assert_eq!(py_str(&json!(true)), "True");
        assert_eq!(py_str(&json!([1, "a", null, 2.0])), "[1, 'a', None, 2.0]");
        assert_eq!(py_str(&json!({"k": "it's"})), "{'k': \"it's\"}");
    }
}
