//! The MCP client: one connection ([`Session`]) to one MCP server, over
//! `stdio` (a child process speaking JSON-RPC on its stdin/stdout),
//! streamable HTTP (`http`, `shttp`, `streamable-http`) or the older
//! HTTP+SSE transport (`sse`). A session runs the `initialize` handshake,
//! lists tools (`tools/list`, every page) and sends further requests
//! (`tools/call`) for as long as it lives; [`probe`] is the short-lived use
//! behind `POST /api/mcp/test`.
//!
//! A session is a driver task that owns the transport: callers send it
//! requests over a bounded channel and wait for the answer on their own
//! channel, so a slow or dead server never blocks a caller beyond the
//! caller's own timeout. Server requests (`ping`) are answered,
//! notifications ignored. A caller that gives up (timeout, cancellation)
//! has the request cancelled (`notifications/cancelled`).
//!
//! Stdio servers are started with a minimal environment — never this
//! server's own variables, which hold keys — plus the configured `env`, in
//! a process group of their own; closing a session closes the server's
//! stdin, then signals the whole group (TERM, then KILL), and dropping a
//! session kills the group at once.
//!
//! Everything is bounded: line and body sizes, messages read while waiting,
//! pages, requests in flight. Error texts never include header values,
//! keys or URLs' query strings; a stdio server's stderr is kept only as a
//! short tail, for the caller to show when the server fails to start.

use std::collections::{HashMap, VecDeque};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use crate::bash::process::{has_controlling_terminal, signal_group};
use crate::llm::sse::{SseEvent, SseParser};

/// Largest line, body or event accepted from a server.
pub const MAX_MESSAGE_BYTES: usize = 8 << 20;
/// Most `tools/list` pages followed.
const MAX_PAGES: usize = 50;
/// Most requests in flight on one session.
const MAX_IN_FLIGHT: usize = 64;
/// Protocol version offered in `initialize`.
const PROTOCOL_VERSION: &str = "2025-06-18";
/// Variables passed on to a stdio server from this process's environment.
const INHERITED_ENV: [&str; 8] = [
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "TMPDIR",
];
/// Bytes of a stdio server's stderr kept for error messages.
const STDERR_TAIL: usize = 2048;
/// How long a write to a stdio server may take before it counts as hung.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A remote transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Streamable HTTP.
    Http,
    /// HTTP with a server-sent event stream.
    Sse,
}

/// The server to connect to.
#[derive(Debug, Clone)]
pub enum McpServer {
    /// A subprocess speaking JSON-RPC over stdin/stdout.
    Stdio {
        /// Executable.
        command: String,
        /// Arguments.
        args: Vec<String>,
        /// Extra environment.
        env: Vec<(String, String)>,
        /// Working directory.
        cwd: Option<String>,
    },
    /// A server reached over HTTP.
    Remote {
        /// Which HTTP transport.
        transport: Transport,
        /// Endpoint URL.
        url: String,
        /// Request headers (an API key is already folded in as `Authorization`).
        headers: Vec<(String, String)>,
    },
}

/// Coarse failure class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The deadline passed.
    Timeout,
    /// The server could not be started or reached, or refused the handshake.
    Connection,
    /// Anything else (e.g. a malformed answer).
    Unknown,
}

impl FailureKind {
    /// The API spelling (`timeout`, `connection`, `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Timeout => "timeout",
            FailureKind::Connection => "connection",
            FailureKind::Unknown => "unknown",
        }
    }
}

/// A failed connection or request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Human-readable reason.
    pub error: String,
    /// Class.
    pub kind: FailureKind,
}

fn connection(error: impl Into<String>) -> Failure {
    Failure {
        error: error.into(),
        kind: FailureKind::Connection,
    }
}

fn unknown(error: impl Into<String>) -> Failure {
    Failure {
        error: error.into(),
        kind: FailureKind::Unknown,
    }
}

/// Why a request got no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The server answered with a JSON-RPC error; its message.
    Rpc(String),
    /// The connection failed, or the session is closed.
    Lost(Failure),
}

impl RequestError {
    /// As a [`Failure`], naming the method for server errors.
    fn into_failure(self, method: &str) -> Failure {
        match self {
            RequestError::Rpc(m) => connection(format!("{method} failed: {m}")),
            RequestError::Lost(f) => f,
        }
    }

    /// The reason alone: the server's message, or the connection's failure.
    pub fn message(&self) -> &str {
        match self {
            RequestError::Rpc(m) => m,
            RequestError::Lost(f) => &f.error,
        }
    }
}

/// The outcome as the API answers it: `{"ok":true,"tools":[…]}` or
/// `{"ok":false,"error":…,"error_kind":…}`.
pub fn outcome_value(outcome: &Result<Vec<String>, Failure>) -> Value {
    match outcome {
        Ok(tools) => json!({"ok": true, "tools": tools}),
        Err(f) => json!({"ok": false, "error": f.error, "error_kind": f.kind.as_str()}),
    }
}

/// A message from the server, or why the link failed (`Some(id)`: only
/// that request's exchange failed).
type Incoming = Result<Value, (Option<u64>, Failure)>;

/// Work for a session's driver.
enum Command {
    Request {
        id: u64,
        method: String,
        params: Value,
        reply: oneshot::Sender<Result<Value, RequestError>>,
    },
    Notify {
        method: String,
        params: Value,
    },
    Cancel {
        id: u64,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// State a session shares with its driver and reader tasks.
#[derive(Default)]
struct Shared {
    /// Why the connection is gone, once it is.
    dead: Mutex<Option<Failure>>,
    /// The end of a stdio server's stderr.
    stderr: Mutex<Vec<u8>>,
    /// The stderr reader reached the end of the stream.
    stderr_done: AtomicBool,
}

impl Shared {
    fn death(&self) -> Option<Failure> {
        self.dead.lock().ok().and_then(|d| d.clone())
    }

    fn set_dead(&self, f: Failure) {
        if let Ok(mut d) = self.dead.lock()
            && d.is_none()
        {
            *d = Some(f);
        }
    }
}

/// A live connection to one MCP server. Dropping it kills the server (a
/// stdio server's whole process group); [`Session::shutdown`] closes it
/// politely first.
pub struct Session {
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        // Dropping the driver drops the transport, whose guard kills the
        // server's process group.
        self.driver.abort();
    }
}

/// Sends `notifications/cancelled` for a request whose caller stopped
/// waiting (timeout, cancelled future), unless disarmed.
struct CancelOnDrop<'a> {
    commands: &'a mpsc::Sender<Command>,
    id: u64,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.commands.try_send(Command::Cancel { id: self.id });
        }
    }
}

impl Session {
    /// Connects to `server` and completes the `initialize` handshake. The
    /// caller bounds the time (dropping the future kills the server).
    pub async fn start(server: &McpServer, http: &reqwest::Client) -> Result<Session, Failure> {
        Session::connect(server, http, false).await
    }

    /// [`Session::start`], with the end of a stdio server's stderr added to
    /// a connection failure (see [`Session::explain`]).
    pub async fn start_explained(
        server: &McpServer,
        http: &reqwest::Client,
    ) -> Result<Session, Failure> {
        Session::connect(server, http, true).await
    }

    async fn connect(
        server: &McpServer,
        http: &reqwest::Client,
        explained: bool,
    ) -> Result<Session, Failure> {
        let (inbox_tx, inbox_rx) = mpsc::channel::<Incoming>(64);
        let shared = Arc::new(Shared::default());
        let link = Link::open(server, http, inbox_tx.clone(), &shared).await?;
        let (commands, command_rx) = mpsc::channel(MAX_IN_FLIGHT);
        let driver = tokio::spawn(drive(link, command_rx, inbox_rx, shared.clone()));
        let session = Session {
            commands,
            shared,
            next_id: AtomicU64::new(1),
            driver,
        };
        let init = session
            .request(
                "initialize",
                json!({"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                       "clientInfo": {"name": "agent-server", "version": env!("CARGO_PKG_VERSION")}}),
            )
            .await;
        let init = match init {
            Ok(v) => v,
            Err(e) if explained => return Err(session.explain(e.into_failure("initialize")).await),
            Err(e) => return Err(e.into_failure("initialize")),
        };
        if !init.is_object() {
            return Err(unknown("initialize: malformed answer"));
        }
        session
            .notify("notifications/initialized", Value::Null)
            .await;
        Ok(session)
    }

    /// Every tool the server lists (all pages, at most [`MAX_PAGES`]), as
    /// the raw MCP `Tool` objects; each has a string `name`.
    pub async fn list_tools(&self) -> Result<Vec<Value>, Failure> {
        let mut tools = vec![];
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let result = self
                .request("tools/list", params)
                .await
                .map_err(|e| e.into_failure("tools/list"))?;
            let Some(Value::Array(list)) = result.get("tools").cloned() else {
                return Err(unknown("tools/list: answer without a tool list"));
            };
            for t in list {
                if !t.get("name").is_some_and(Value::is_string) {
                    return Err(unknown("tools/list: a tool without a name"));
                }
                tools.push(t);
            }
            cursor = result["nextCursor"]
                .as_str()
                .filter(|c| !c.is_empty())
                .map(str::to_string);
            if cursor.is_none() {
                break;
            }
        }
        Ok(tools)
    }

    /// Sends a request and waits for its result. Dropping the future (or a
    /// timeout around it) cancels the request on the server.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, RequestError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let command = Command::Request {
            id,
            method: method.to_string(),
            params,
            reply,
        };
        if self.commands.send(command).await.is_err() {
            return Err(RequestError::Lost(self.closed()));
        }
        let mut guard = CancelOnDrop {
            commands: &self.commands,
            id,
            armed: true,
        };
        let result = answer.await;
        guard.armed = false;
        result.unwrap_or_else(|_| Err(RequestError::Lost(self.closed())))
    }

    /// Sends a notification (best effort).
    pub async fn notify(&self, method: &str, params: Value) {
        let _ = self
            .commands
            .send(Command::Notify {
                method: method.to_string(),
                params,
            })
            .await;
    }

    /// Whether the connection still works as far as is known.
    pub fn is_alive(&self) -> bool {
        self.shared.death().is_none() && !self.driver.is_finished()
    }

    /// Closes the session politely (a stdio server's stdin first, then its
    /// process group is signalled), within about three seconds.
    pub async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self.commands.send(Command::Shutdown { done }).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(3), finished).await;
        }
        self.driver.abort();
    }

    fn closed(&self) -> Failure {
        self.shared
            .death()
            .unwrap_or_else(|| connection("the MCP session is closed"))
    }

    /// Adds the end of a stdio server's stderr to a connection failure
    /// (waiting briefly for the stream to end), so that a server that
    /// died at start says why.
    pub async fn explain(&self, mut f: Failure) -> Failure {
        if f.kind != FailureKind::Connection {
            return f;
        }
        for _ in 0..20 {
            if self.shared.stderr_done.load(Ordering::Acquire) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let tail = self.stderr_tail();
        if !tail.is_empty() {
            f.error = format!("{}: {tail}", f.error);
        }
        f
    }

    /// The last bytes a stdio server wrote to stderr, trimmed.
    pub fn stderr_tail(&self) -> String {
        let bytes = self
            .shared
            .stderr
            .lock()
            .map(|b| b.clone())
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).trim().to_string()
    }
}

/// The driver: sends requests, routes answers to their callers, answers
/// server requests, and closes the link at the end.
async fn drive(
    mut link: Link,
    mut commands: mpsc::Receiver<Command>,
    mut inbox: mpsc::Receiver<Incoming>,
    shared: Arc<Shared>,
) {
    let mut pending: HashMap<u64, oneshot::Sender<Result<Value, RequestError>>> = HashMap::new();
    let mut done = None;
    let fail_all = |pending: &mut HashMap<u64, oneshot::Sender<Result<Value, RequestError>>>,
                    f: &Failure| {
        for (_, reply) in pending.drain() {
            let _ = reply.send(Err(RequestError::Lost(f.clone())));
        }
    };
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                None => break,
                Some(Command::Shutdown { done: d }) => {
                    done = Some(d);
                    break;
                }
                Some(Command::Request { id, method, params, reply }) => {
                    if let Some(f) = shared.death() {
                        let _ = reply.send(Err(RequestError::Lost(f)));
                        continue;
                    }
                    if pending.len() >= MAX_IN_FLIGHT {
                        let _ = reply.send(Err(RequestError::Lost(unknown(
                            "too many requests in flight on this MCP session",
                        ))));
                        continue;
                    }
                    let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
                    pending.insert(id, reply);
                    if let Err(f) = link.send(&msg, Some(id)).await {
                        shared.set_dead(f.clone());
                        fail_all(&mut pending, &f);
                    }
                }
                Some(Command::Notify { method, params }) => {
                    if shared.death().is_none() {
                        let msg = if params.is_null() {
                            json!({"jsonrpc": "2.0", "method": method})
                        } else {
                            json!({"jsonrpc": "2.0", "method": method, "params": params})
                        };
                        if let Err(f) = link.send(&msg, None).await {
                            shared.set_dead(f.clone());
                            fail_all(&mut pending, &f);
                        }
                    }
                }
                Some(Command::Cancel { id }) => {
                    if pending.remove(&id).is_some() && shared.death().is_none() {
                        let msg = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                         "params": {"requestId": id, "reason": "the caller stopped waiting"}});
                        let _ = link.send(&msg, None).await;
                    }
                }
            },
            incoming = inbox.recv() => match incoming {
                // The link holds a sender: this only happens if it is gone.
                None => {
                    let f = connection("the MCP server closed the connection");
                    shared.set_dead(f.clone());
                    fail_all(&mut pending, &f);
                    break;
                }
                Some(Err((Some(id), f))) => {
                    if let Some(reply) = pending.remove(&id) {
                        let _ = reply.send(Err(RequestError::Lost(f)));
                    }
                }
                Some(Err((None, f))) => {
                    shared.set_dead(f.clone());
                    fail_all(&mut pending, &f);
                }
                Some(Ok(msg)) => {
                    let has_method = msg.get("method").is_some();
                    match msg.get("id") {
                        Some(mid) if !has_method => {
                            let Some(reply) = mid.as_u64().and_then(|id| pending.remove(&id)) else {
                                continue;
                            };
                            let result = match (msg.get("error"), msg.get("result")) {
                                (Some(err), _) => Err(RequestError::Rpc(
                                    err.get("message").and_then(Value::as_str).unwrap_or("unknown error").to_string(),
                                )),
                                (None, Some(result)) => Ok(result.clone()),
                                (None, None) => Err(RequestError::Lost(unknown("an answer without a result"))),
                            };
                            let _ = reply.send(result);
                        }
                        Some(mid) => {
                            let answer = if msg["method"] == "ping" {
                                json!({"jsonrpc": "2.0", "id": mid, "result": {}})
                            } else {
                                json!({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "Method not found"}})
                            };
                            let _ = link.send(&answer, None).await;
                        }
                        None => {}
                    }
                }
            },
        }
    }
    let f = shared
        .death()
        .unwrap_or_else(|| connection("the MCP session was closed"));
    fail_all(&mut pending, &f);
    link.close().await;
    if let Some(d) = done {
        let _ = d.send(());
    }
}

/// A stdio server's process: its group is killed when this is dropped.
struct ChildGuard {
    child: tokio::process::Child,
    pgid: i32,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        signal_group(self.pgid, libc::SIGKILL);
    }
}

impl ChildGuard {
    /// Waits up to `limit` for the leader to exit.
    async fn exited_within(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.child.wait()).await.is_ok()
    }
}

/// The transport under a session.
enum Link {
    Stdio {
        stdin: Option<tokio::process::ChildStdin>,
        guard: ChildGuard,
        readers: Vec<tokio::task::JoinHandle<()>>,
    },
    Http(HttpLink),
    Sse {
        post: PostLink,
        reader: tokio::task::JoinHandle<()>,
    },
}

/// POSTs of one remote session, each in its own task.
struct PostLink {
    http: reqwest::Client,
    url: reqwest::Url,
    headers: Arc<Vec<(String, String)>>,
    inbox: mpsc::Sender<Incoming>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl PostLink {
    /// Runs one exchange; refused when too many are still running (a server
    /// that never answers), which ends the session.
    fn spawn(&mut self, fut: impl Future<Output = ()> + Send + 'static) -> Result<(), Failure> {
        self.tasks.retain(|t| !t.is_finished());
        if self.tasks.len() >= 2 * MAX_IN_FLIGHT {
            return Err(connection(
                "the MCP server has left too many requests unanswered",
            ));
        }
        self.tasks.push(tokio::spawn(fut));
        Ok(())
    }

    fn abort_all(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

/// Streamable HTTP: every message is a POST whose answer carries the replies.
struct HttpLink {
    post: PostLink,
    session: Arc<Mutex<Option<String>>>,
}

impl Link {
    async fn open(
        server: &McpServer,
        http: &reqwest::Client,
        inbox: mpsc::Sender<Incoming>,
        shared: &Arc<Shared>,
    ) -> Result<Link, Failure> {
        match server {
            McpServer::Stdio {
                command,
                args,
                env,
                cwd,
            } => open_stdio(command, args, env, cwd.as_deref(), inbox, shared),
            McpServer::Remote {
                transport,
                url,
                headers,
            } => {
                let parsed = reqwest::Url::parse(url)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| connection("the server URL must be an http(s) URL"))?;
                let post = PostLink {
                    http: http.clone(),
                    url: parsed.clone(),
                    headers: Arc::new(headers.clone()),
                    inbox: inbox.clone(),
                    tasks: vec![],
                };
                match transport {
                    Transport::Http => Ok(Link::Http(HttpLink {
                        post,
                        session: Arc::new(Mutex::new(None)),
                    })),
                    Transport::Sse => open_sse(post, parsed, inbox).await,
                }
            }
        }
    }

    async fn send(&mut self, msg: &Value, id: Option<u64>) -> Result<(), Failure> {
        match self {
            Link::Stdio { stdin, .. } => {
                let Some(stdin) = stdin.as_mut() else {
                    return Err(connection("the MCP session is closing"));
                };
                let mut line = msg.to_string().into_bytes();
                line.push(b'\n');
                let write = async {
                    stdin.write_all(&line).await?;
                    stdin.flush().await
                };
                match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(connection(format!("cannot write to the server: {e}"))),
                    Err(_) => Err(connection("the server stopped reading its input")),
                }
            }
            Link::Http(h) => h.send(msg, id),
            Link::Sse { post, .. } => post_sse(post, msg, id),
        }
    }

    /// Ends the transport: a stdio server gets EOF on stdin, then TERM and
    /// KILL for its group; a streamable HTTP session is deleted.
    async fn close(self) {
        match self {
            Link::Stdio {
                stdin,
                mut guard,
                readers,
            } => {
                drop(stdin);
                if !guard.exited_within(Duration::from_millis(500)).await {
                    signal_group(guard.pgid, libc::SIGTERM);
                    if !guard.exited_within(Duration::from_millis(500)).await {
                        signal_group(guard.pgid, libc::SIGKILL);
                        let _ = guard.exited_within(Duration::from_secs(1)).await;
                    }
                }
                // Children of the server may outlive it; `guard` kills the
                // rest of the group when dropped here.
                drop(guard);
                for r in readers {
                    let _ = tokio::time::timeout(Duration::from_millis(200), r).await;
                }
            }
            Link::Http(mut h) => {
                h.post.abort_all();
                let session = h.session.lock().ok().and_then(|s| s.clone());
                if let Some(s) = session {
                    // Ending the session is a courtesy; its failure changes nothing.
                    let mut req = h
                        .post
                        .http
                        .delete(h.post.url.clone())
                        .header("mcp-session-id", s);
                    for (k, v) in h.post.headers.iter() {
                        req = req.header(k.as_str(), v.as_str());
                    }
                    let _ = tokio::time::timeout(Duration::from_secs(2), req.send()).await;
                }
            }
            Link::Sse { mut post, reader } => {
                post.abort_all();
                reader.abort();
            }
        }
    }
}

fn open_stdio(
    command: &str,
    args: &[String],
    env: &[(String, String)],
    cwd: Option<&str>,
    inbox: mpsc::Sender<Incoming>,
    shared: &Arc<Shared>,
) -> Result<Link, Failure> {
    let mut cmd = tokio::process::Command::new(command);
    cmd.args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for k in INHERITED_ENV {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    if has_controlling_terminal() {
        // A session of its own: a server that opens /dev/tty fails instead
        // of stopping on SIGTTIN, and its group can be signalled as a whole.
        // SAFETY: the closure runs between fork and exec and only calls
        // setsid(2), which is async-signal-safe.
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
    let mut child = cmd
        .spawn()
        .map_err(|e| connection(format!("cannot start '{command}': {e}")))?;
    let pgid = child.id().map(|p| p as i32).unwrap_or(0);
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(unknown("the server's pipes are unavailable"));
    };
    let guard = ChildGuard { child, pgid };
    let out = tokio::spawn(read_stdout(BufReader::new(stdout), inbox));
    let err = tokio::spawn(read_stderr(stderr, shared.clone()));
    Ok(Link::Stdio {
        stdin: Some(stdin),
        guard,
        readers: vec![out, err],
    })
}

/// Reads one line of at most [`MAX_MESSAGE_BYTES`]; `None` at the end of
/// the stream.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> Result<Option<Vec<u8>>, Failure> {
    let mut line = Vec::new();
    loop {
        let buf = r
            .fill_buf()
            .await
            .map_err(|e| connection(format!("cannot read from the server: {e}")))?;
        if buf.is_empty() {
            return Ok((!line.is_empty()).then_some(line));
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if line.len() > MAX_MESSAGE_BYTES {
            return Err(unknown("the server sent an oversized message"));
        }
        if done {
            return Ok(Some(line));
        }
    }
}

/// Forwards the JSON-RPC messages a stdio server prints; lines that are
/// not JSON objects (banners) are skipped.
async fn read_stdout<R: tokio::io::AsyncBufRead + Unpin>(mut r: R, inbox: mpsc::Sender<Incoming>) {
    loop {
        let item = match read_line(&mut r).await {
            Ok(Some(line)) => match serde_json::from_slice::<Value>(&line) {
                Ok(v @ Value::Object(_)) => Ok(v),
                Ok(Value::Array(batch)) => {
                    for v in batch.into_iter().filter(Value::is_object) {
                        if inbox.send(Ok(v)).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
                _ => continue,
            },
            Ok(None) => Err((None, connection("the server closed its output"))),
            Err(f) => Err((None, f)),
        };
        let end = item.is_err();
        if inbox.send(item).await.is_err() || end {
            return;
        }
    }
}

/// Keeps the last [`STDERR_TAIL`] bytes of a stdio server's stderr and
/// discards the rest, so that the server never blocks on a full pipe.
async fn read_stderr<R: tokio::io::AsyncRead + Unpin>(mut r: R, shared: Arc<Shared>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if let Ok(mut tail) = shared.stderr.lock() {
            tail.extend_from_slice(&buf[..n]);
            let excess = tail.len().saturating_sub(STDERR_TAIL);
            tail.drain(..excess);
        }
    }
    shared.stderr_done.store(true, Ordering::Release);
}

fn http_error(e: reqwest::Error) -> Failure {
    let e = e.without_url();
    if e.is_timeout() {
        Failure {
            error: format!("request timed out: {e}"),
            kind: FailureKind::Timeout,
        }
    } else {
        connection(format!("cannot reach the MCP server: {e}"))
    }
}

/// Reads a response body up to [`MAX_MESSAGE_BYTES`].
async fn capped_body(resp: reqwest::Response) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(http_error)?;
        if body.len() + chunk.len() > MAX_MESSAGE_BYTES {
            return Err(unknown("the server sent an oversized response"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn push_messages(into: &mut VecDeque<Value>, v: Value) {
    match v {
        Value::Array(items) => into.extend(items.into_iter().filter(Value::is_object)),
        v @ Value::Object(_) => into.push_back(v),
        _ => {}
    }
}

impl HttpLink {
    fn send(&mut self, msg: &Value, id: Option<u64>) -> Result<(), Failure> {
        let post = &self.post;
        let mut req = post
            .http
            .post(post.url.clone())
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", PROTOCOL_VERSION)
            .body(msg.to_string());
        for (k, v) in post.headers.iter() {
            req = req.header(k.as_str(), v.as_str());
        }
        let session = self.session.clone();
        let current = session.lock().ok().and_then(|s| s.clone());
        let had_session = current.is_some();
        if let Some(s) = current {
            req = req.header("mcp-session-id", s);
        }
        let inbox = post.inbox.clone();
        self.post.spawn(async move {
            let result = exchange(req, &session, &inbox, id).await;
            match result {
                Ok(true) => {}
                Ok(false) => {
                    if let Some(id) = id {
                        let _ = inbox
                            .send(Err((Some(id), connection("the MCP server sent no answer"))))
                            .await;
                    }
                }
                // A session the server no longer knows is over (the next
                // use starts a new one).
                Err(f) if had_session && f.error.ends_with("HTTP 404") => {
                    let _ = inbox.send(Err((None, f))).await;
                }
                Err(f) => {
                    if id.is_some() {
                        let _ = inbox.send(Err((id, f))).await;
                    }
                }
            }
        })
    }
}

/// Whether `m` answers request `id`.
fn answers(m: &Value, id: Option<u64>) -> bool {
    id.is_some() && m.get("method").is_none() && m.get("id").and_then(Value::as_u64) == id
}

/// One streamable-HTTP POST: forwards the messages of its answer (a JSON
/// body, or an event stream read as it arrives, until the answer to `id`)
/// and returns whether that answer came.
async fn exchange(
    req: reqwest::RequestBuilder,
    session: &Mutex<Option<String>>,
    inbox: &mpsc::Sender<Incoming>,
    id: Option<u64>,
) -> Result<bool, Failure> {
    let resp = req.send().await.map_err(http_error)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(connection(format!(
            "the MCP server answered HTTP {}",
            status.as_u16()
        )));
    }
    if let Some(s) = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        && let Ok(mut slot) = session.lock()
    {
        *slot = Some(s.to_string());
    }
    let is_sse = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut answered = false;
    if is_sse {
        // A server may keep the stream open after the answer (or send
        // progress first): messages go on as they arrive.
        let mut events = SseStream::new(Box::pin(resp.bytes_stream()));
        while !answered {
            let ev = match events.next_event().await {
                Ok(ev) => ev,
                Err(_) if events.ended => break,
                Err(f) => return Err(f),
            };
            let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
                continue;
            };
            let mut messages = VecDeque::new();
            push_messages(&mut messages, v);
            for m in messages {
                answered |= answers(&m, id);
                if inbox.send(Ok(m)).await.is_err() {
                    return Ok(true);
                }
            }
        }
    } else {
        let body = capped_body(resp).await?;
        if !body.iter().all(u8::is_ascii_whitespace) {
            let v = serde_json::from_slice::<Value>(&body)
                .map_err(|_| unknown("the MCP server sent a response that is not JSON"))?;
            let mut messages = VecDeque::new();
            push_messages(&mut messages, v);
            for m in messages {
                answered |= answers(&m, id);
                if inbox.send(Ok(m)).await.is_err() {
                    return Ok(true);
                }
            }
        }
    }
    Ok(answered || id.is_none())
}

/// Opens the event stream of the HTTP+SSE transport and waits for the
/// `endpoint` event that names where to POST; the caller bounds the wait.
async fn open_sse(
    mut post: PostLink,
    url: reqwest::Url,
    inbox: mpsc::Sender<Incoming>,
) -> Result<Link, Failure> {
    let mut req = post
        .http
        .get(url.clone())
        .header("accept", "text/event-stream");
    for (k, v) in post.headers.iter() {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req.send().await.map_err(http_error)?;
    if !resp.status().is_success() {
        return Err(connection(format!(
            "the MCP server answered HTTP {}",
            resp.status().as_u16()
        )));
    }
    let mut events = SseStream::new(Box::pin(resp.bytes_stream()));
    let endpoint = loop {
        let ev = events.next_event().await?;
        if ev.event.as_deref() == Some("endpoint") {
            break ev.data;
        }
    };
    let endpoint = url
        .join(endpoint.trim())
        .map_err(|_| unknown("the MCP server announced an invalid endpoint"))?;
    if endpoint.origin() != url.origin() {
        return Err(connection(
            "the MCP server announced an endpoint on another origin",
        ));
    }
    post.url = endpoint;
    let reader = tokio::spawn(async move {
        loop {
            let item = match events.next_event().await {
                Ok(ev) => {
                    if ev.event.as_deref().is_some_and(|e| e != "message") {
                        continue;
                    }
                    match serde_json::from_str::<Value>(&ev.data) {
                        Ok(v @ Value::Object(_)) => Ok(v),
                        _ => continue,
                    }
                }
                Err(f) => Err((None, f)),
            };
            let end = item.is_err();
            if inbox.send(item).await.is_err() || end {
                return;
            }
        }
    });
    Ok(Link::Sse { post, reader })
}

fn post_sse(post: &mut PostLink, msg: &Value, id: Option<u64>) -> Result<(), Failure> {
    let mut req = post
        .http
        .post(post.url.clone())
        .header("content-type", "application/json")
        .body(msg.to_string());
    for (k, v) in post.headers.iter() {
        req = req.header(k.as_str(), v.as_str());
    }
    let inbox = post.inbox.clone();
    post.spawn(async move {
        let failure = match req.send().await {
            Ok(resp) if resp.status().is_success() => return,
            Ok(resp) => connection(format!(
                "the MCP server answered HTTP {}",
                resp.status().as_u16()
            )),
            Err(e) => http_error(e),
        };
        if id.is_some() {
            let _ = inbox.send(Err((id, failure))).await;
        }
    })
}

/// Server-sent events from a byte stream, each at most
/// [`MAX_MESSAGE_BYTES`] of stream.
struct SseStream<S> {
    stream: S,
    parser: SseParser,
    pending: VecDeque<SseEvent>,
    since_event: usize,
    /// The stream ended (its last event, if unterminated, was delivered).
    ended: bool,
}

impl<S, B> SseStream<S>
where
    S: futures_util::Stream<Item = reqwest::Result<B>> + Unpin,
    B: AsRef<[u8]>,
{
    fn new(stream: S) -> Self {
        SseStream {
            stream,
            parser: SseParser::default(),
            pending: VecDeque::new(),
            since_event: 0,
            ended: false,
        }
    }

    async fn next_event(&mut self) -> Result<SseEvent, Failure> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Ok(ev);
            }
            if self.ended {
                return Err(connection("the MCP server closed its event stream"));
            }
            match self.stream.next().await {
                None => {
                    self.ended = true;
                    self.pending.extend(self.parser.finish());
                }
                Some(Err(e)) => return Err(http_error(e)),
                Some(Ok(chunk)) => {
                    let chunk = chunk.as_ref();
                    self.since_event += chunk.len();
                    let events = self.parser.push(chunk);
                    if !events.is_empty() {
                        self.since_event = 0;
                    } else if self.since_event > MAX_MESSAGE_BYTES {
                        return Err(unknown("the MCP server sent an oversized event"));
                    }
                    self.pending.extend(events);
                }
            }
        }
    }
}

fn timeout_failure(deadline: Duration) -> Failure {
    Failure {
        error: format!(
            "the MCP server did not complete the handshake and tools/list within {}s",
            deadline.as_secs_f64()
        ),
        kind: FailureKind::Timeout,
    }
}

/// Connects to one server, lists its tool names and disconnects, all within
/// `deadline`.
pub async fn probe(
    server: &McpServer,
    deadline: Duration,
    http: &reqwest::Client,
) -> Result<Vec<String>, Failure> {
    let run = async {
        let session = Session::start_explained(server, http).await?;
        let tools = match session.list_tools().await {
            Ok(t) => Ok(t),
            Err(f) => Err(session.explain(f).await),
        };
        session.shutdown().await;
        tools.map(|list| {
            list.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect()
        })
    };
    match tokio::time::timeout(deadline, run).await {
        Ok(r) => r,
        Err(_) => Err(timeout_failure(deadline)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny MCP server in shell: answers initialize and tools/list by id.
    const FAKE_SERVER: &str = r#"
echo 'banner line'
while IFS= read -r line; do
  id=$(printf '%s' "$line" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
  case "$line" in
    *'"initialize"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"fake","version":"1"}}}\n' "$id" ;;
    *'"tools/list"'*) printf '{"jsonrpc":"2.0","method":"notifications/message","params":{}}\n{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"echo","inputSchema":{}},{"name":"%s","inputSchema":{}}]}}\n' "$id" "$TOOL_NAME" ;;
    *'"tools/call"'*) printf '{"jsonrpc":"2.0","id":"ping-1","method":"ping"}\n{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"called"}]}}\n' "$id" ;;
  esac
done
"#;

    fn client() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
    }

    fn stdio(script: &str, env: Vec<(String, String)>) -> McpServer {
        McpServer::Stdio {
            command: "sh".into(),
            args: vec!["-c".into(), script.into()],
            env,
            cwd: None,
        }
    }

    #[actix_rt::test]
    async fn stdio_handshake_lists_tools() {
        let http = client();
        let server = stdio(FAKE_SERVER, vec![("TOOL_NAME".into(), "from_env".into())]);
        let r = probe(&server, Duration::from_secs(10), &http).await;
        assert_eq!(r, Ok(vec!["echo".to_string(), "from_env".to_string()]));
    }

    #[actix_rt::test]
    async fn stdio_failures_are_classified() {
        let http = client();
        let missing = McpServer::Stdio {
            command: "/nonexistent/mcp-server".into(),
            args: vec![],
            env: vec![],
            cwd: None,
        };
        let r = probe(&missing, Duration::from_secs(5), &http)
            .await
            .unwrap_err();
        assert_eq!(r.kind, FailureKind::Connection);
        let dies = stdio("echo 'fatal: no token' >&2; exit 3", vec![]);
        let r = probe(&dies, Duration::from_secs(5), &http)
            .await
            .unwrap_err();
        assert_eq!(r.kind, FailureKind::Connection);
        assert!(r.error.contains("fatal: no token"), "{}", r.error);
        let silent = stdio("sleep 30", vec![]);
        let started = std::time::Instant::now();
        let r = probe(&silent, Duration::from_millis(300), &http)
            .await
            .unwrap_err();
        assert_eq!(r.kind, FailureKind::Timeout);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[actix_rt::test]
    async fn own_environment_is_not_inherited() {
        // Any variable of this process outside INHERITED_ENV must be invisible.
        let probe_var = std::env::vars()
            .map(|(k, _)| k)
            .find(|k| {
                !INHERITED_ENV.contains(&k.as_str())
                    // Variables a shell sets by itself.
                    && !["PWD", "OLDPWD", "SHLVL", "IFS", "PPID", "OPTIND", "PS1", "PS2", "PS4", "_"]
                        .contains(&k.as_str())
                    && !k.is_empty()
                    && k.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
            })
            .unwrap_or_else(|| "AGENT_SERVER_NOT_SET".into());
        let http = client();
        let script =
            FAKE_SERVER.replace("\"$TOOL_NAME\"", &format!("\"${{{probe_var}:-absent}}\""));
        let r = probe(&stdio(&script, vec![]), Duration::from_secs(10), &http).await;
        assert_eq!(r, Ok(vec!["echo".to_string(), "absent".to_string()]));
    }

    #[actix_rt::test]
    async fn a_session_calls_answers_pings_and_dies_cleanly() {
        let http = client();
        let server = stdio(FAKE_SERVER, vec![("TOOL_NAME".into(), "x".into())]);
        let s = Session::start(&server, &http).await.expect("starts");
        let r = s
            .request("tools/call", json!({"name": "echo", "arguments": {}}))
            .await
            .expect("answer");
        assert_eq!(r["content"][0]["text"], "called");
        assert!(s.is_alive());
        s.shutdown().await;
        let r = s.request("tools/list", json!({})).await;
        assert!(matches!(r, Err(RequestError::Lost(_))), "{r:?}");
    }

    #[actix_rt::test]
    async fn a_dead_server_fails_pending_and_later_requests() {
        let http = client();
        // Answers the handshake, then exits on the first tools/call.
        let script = r#"
while IFS= read -r line; do
  id=$(printf '%s' "$line" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
  case "$line" in
    *'"initialize"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{}}\n' "$id" ;;
    *'"tools/call"'*) exit 1 ;;
  esac
done
"#;
        let s = Session::start(&stdio(script, vec![]), &http)
            .await
            .expect("starts");
        let r = s.request("tools/call", json!({"name": "x"})).await;
        assert!(
            matches!(&r, Err(RequestError::Lost(f)) if f.error.contains("closed its output")),
            "{r:?}"
        );
        assert!(!s.is_alive());
        let again = s.request("tools/call", json!({"name": "x"})).await;
        assert!(matches!(again, Err(RequestError::Lost(_))));
    }

    /// A streamable-HTTP server on loopback whose answers are event streams
    /// that stay open after the answer (as a server may, to send more).
    async fn open_stream_server() -> u16 {
        use tokio::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let body = loop {
                        let Ok(n) = sock.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        if let Some(i) = text.find("\r\n\r\n") {
                            let head = text[..i].to_ascii_lowercase();
                            let len: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                            if buf.len() >= i + 4 + len {
                                break buf[i + 4..i + 4 + len].to_vec();
                            }
                        }
                    };
                    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let Some(id) = msg.get("id").cloned() else {
                        let _ = sock
                            .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                            .await;
                        return;
                    };
                    let result = match msg["method"].as_str() {
                        Some("initialize") => json!({}),
                        Some("tools/call") => {
                            json!({"content": [{"type": "text", "text": "streamed"}]})
                        }
                        _ => json!({"tools": []}),
                    };
                    let answer = json!({"jsonrpc": "2.0", "id": id, "result": result});
                    let progress =
                        json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}});
                    let out = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nmcp-session-id: s\r\n\r\n\
                         event: message\ndata: {progress}\n\nevent: message\ndata: {answer}\n\n"
                    );
                    let _ = sock.write_all(out.as_bytes()).await;
                    // Keep the stream open well past the test.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                });
            }
        });
        port
    }

    #[actix_rt::test]
    async fn streamed_http_answers_arrive_before_the_stream_ends() {
        let http = client();
        let port = open_stream_server().await;
        let server = McpServer::Remote {
            transport: Transport::Http,
            url: format!("http://127.0.0.1:{port}/mcp"),
            headers: vec![],
        };
        let started = std::time::Instant::now();
        let s = tokio::time::timeout(Duration::from_secs(5), Session::start(&server, &http))
            .await
            .expect("in time")
            .expect("starts");
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            s.request("tools/call", json!({"name": "x"})),
        )
        .await
        .expect("in time")
        .expect("answer");
        assert_eq!(r["content"][0]["text"], "streamed");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[actix_rt::test]
    async fn dropping_a_session_kills_its_process_group() {
        let http = client();
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        // The server starts a grandchild in its group, then answers.
        let script = format!(
            r#"sleep 300 & echo $! > {}
while IFS= read -r line; do
  id=$(printf '%s' "$line" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
  case "$line" in *'"initialize"'*) printf '{{"jsonrpc":"2.0","id":%s,"result":{{}}}}\n' "$id" ;; esac
done"#,
            pidfile.display()
        );
        let s = Session::start(&stdio(&script, vec![]), &http)
            .await
            .expect("starts");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        drop(s);
        let mut gone = false;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Gone, or a zombie waiting for its parent.
            if stat.is_empty() || stat.contains(") Z ") {
                gone = true;
                break;
            }
        }
        assert!(gone, "the server's child {pid} outlived the session");
    }
}
