//! The MCP server probe behind `POST /api/mcp/test`: connect to one
//! candidate server, run the MCP `initialize` handshake and `tools/list`,
//! and report the tool names, or a classified failure (`timeout`,
//! `connection`, `unknown`). Nothing is persisted and no tool is called.
//!
//! Transports: `stdio` (the command is started with a minimal environment —
//! never this server's own variables, which hold keys — plus the given
//! `env`, and killed afterwards), streamable HTTP (`http`, `shttp`,
//! `streamable-http`) and the older HTTP+SSE transport (`sse`).
//!
//! Everything is bounded: one overall deadline, capped line and body sizes,
//! a capped number of messages and pages. Error texts never include header
//! values, keys or URLs' query strings.

use std::collections::VecDeque;
use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::llm::sse::SseParser;

/// Largest line or body accepted from a server.
const MAX_MESSAGE_BYTES: usize = 8 << 20;
/// Most messages read while waiting for one answer.
const MAX_MESSAGES: usize = 1000;
/// Most `tools/list` pages followed.
const MAX_PAGES: usize = 50;
/// Protocol version offered in `initialize`.
const PROTOCOL_VERSION: &str = "2025-06-18";
/// Variables passed on to a stdio server from this process's environment.
const INHERITED_ENV: [&str; 8] = [
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "TMPDIR",
];

/// A remote transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Streamable HTTP.
    Http,
    /// HTTP with a server-sent event stream.
    Sse,
}

/// The server to probe.
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

/// A failed probe.
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

/// The outcome as the API answers it: `{"ok":true,"tools":[…]}` or
/// `{"ok":false,"error":…,"error_kind":…}`.
pub fn outcome_value(outcome: &Result<Vec<String>, Failure>) -> Value {
    match outcome {
        Ok(tools) => json!({"ok": true, "tools": tools}),
        Err(f) => json!({"ok": false, "error": f.error, "error_kind": f.kind.as_str()}),
    }
}

/// One JSON-RPC connection.
trait Channel {
    async fn send(&mut self, msg: &Value) -> Result<(), Failure>;
    async fn recv(&mut self) -> Result<Value, Failure>;
}

/// Sends a request and waits for its answer, replying to server requests
/// (`ping`) and skipping notifications meanwhile.
async fn request<C: Channel>(
    ch: &mut C,
    id: u64,
    method: &str,
    params: Value,
) -> Result<Value, Failure> {
    ch.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
        .await?;
    for _ in 0..MAX_MESSAGES {
        let msg = ch.recv().await?;
        let has_method = msg.get("method").is_some();
        match msg.get("id") {
            Some(mid) if !has_method && mid.as_u64() == Some(id) => {
                if let Some(err) = msg.get("error") {
                    let text = err["message"].as_str().unwrap_or("unknown error");
                    return Err(connection(format!("{method} failed: {text}")));
                }
                return msg
                    .get("result")
                    .cloned()
                    .ok_or_else(|| unknown(format!("{method}: answer without a result")));
            }
            Some(mid) if has_method => {
                let reply = if msg["method"] == "ping" {
                    json!({"jsonrpc": "2.0", "id": mid, "result": {}})
                } else {
                    json!({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "Method not found"}})
                };
                ch.send(&reply).await?;
            }
            _ => {}
        }
    }
    Err(unknown(format!("no answer to {method}")))
}

/// `initialize`, `notifications/initialized`, then every `tools/list` page.
async fn handshake<C: Channel>(ch: &mut C) -> Result<Vec<String>, Failure> {
    let init = request(
        ch,
        1,
        "initialize",
        json!({"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
               "clientInfo": {"name": "agent-server", "version": env!("CARGO_PKG_VERSION")}}),
    )
    .await?;
    if !init.is_object() {
        return Err(unknown("initialize: malformed answer"));
    }
    ch.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await?;
    let mut tools = vec![];
    let mut cursor: Option<String> = None;
    for page in 0..MAX_PAGES {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let result = request(ch, 2 + page as u64, "tools/list", params).await?;
        let list = result["tools"]
            .as_array()
            .ok_or_else(|| unknown("tools/list: answer without a tool list"))?;
        for t in list {
            let name = t["name"]
                .as_str()
                .ok_or_else(|| unknown("tools/list: a tool without a name"))?;
            tools.push(name.to_string());
        }
        cursor = result["nextCursor"]
            .as_str()
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        if cursor.is_none() {
            return Ok(tools);
        }
    }
    Ok(tools)
}

struct StdioChannel {
    stdin: tokio::process::ChildStdin,
    stdout: BufReader<tokio::process::ChildStdout>,
}

impl Channel for StdioChannel {
    async fn send(&mut self, msg: &Value) -> Result<(), Failure> {
        let mut line = msg.to_string().into_bytes();
        line.push(b'\n');
        self.stdin
            .write_all(&line)
            .await
            .map_err(|e| connection(format!("cannot write to the server: {e}")))?;
        self.stdin
            .flush()
            .await
            .map_err(|e| connection(format!("cannot write to the server: {e}")))
    }

    async fn recv(&mut self) -> Result<Value, Failure> {
        // Servers sometimes print banners on stdout; skip lines that are
        // not JSON objects.
        for _ in 0..MAX_MESSAGES {
            let mut line = Vec::new();
            loop {
                let buf = self
                    .stdout
                    .fill_buf()
                    .await
                    .map_err(|e| connection(format!("cannot read from the server: {e}")))?;
                if buf.is_empty() {
                    return Err(connection("the server closed its output"));
                }
                let (take, done) = match buf.iter().position(|b| *b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (buf.len(), false),
                };
                line.extend_from_slice(&buf[..take]);
                self.stdout.consume(take);
                if line.len() > MAX_MESSAGE_BYTES {
                    return Err(unknown("the server sent an oversized message"));
                }
                if done {
                    break;
                }
            }
            if let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(&line) {
                return Ok(v);
            }
        }
        Err(unknown("the server sent no JSON-RPC message"))
    }
}

/// Reads at most `cap` bytes, then discards the rest.
async fn read_tail<R: tokio::io::AsyncRead + Unpin>(mut r: R, cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    kept
}

async fn probe_stdio(
    command: &str,
    args: &[String],
    env: &[(String, String)],
    cwd: Option<&str>,
    deadline: Duration,
) -> Result<Vec<String>, Failure> {
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
    let mut child = cmd
        .spawn()
        .map_err(|e| connection(format!("cannot start '{command}': {e}")))?;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(unknown("the server's pipes are unavailable"));
    };
    let stderr_task = tokio::spawn(read_tail(stderr, 2048));
    let mut ch = StdioChannel {
        stdin,
        stdout: BufReader::new(stdout),
    };
    let result = match tokio::time::timeout(deadline, handshake(&mut ch)).await {
        Ok(r) => r,
        Err(_) => Err(timeout_failure(deadline)),
    };
    drop(ch);
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
    let stderr = tokio::time::timeout(Duration::from_secs(1), stderr_task)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    result.map_err(|mut f| {
        let tail = String::from_utf8_lossy(&stderr);
        let tail = tail.trim();
        if f.kind == FailureKind::Connection && !tail.is_empty() {
            f.error = format!("{}: {tail}", f.error);
        }
        f
    })
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

struct HttpChannel<'a> {
    http: &'a reqwest::Client,
    url: reqwest::Url,
    headers: &'a [(String, String)],
    session: Option<String>,
    pending: VecDeque<Value>,
}

impl Channel for HttpChannel<'_> {
    async fn send(&mut self, msg: &Value) -> Result<(), Failure> {
        let mut req = self
            .http
            .post(self.url.clone())
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", PROTOCOL_VERSION)
            .body(msg.to_string());
        for (k, v) in self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s.as_str());
        }
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
        {
            self.session = Some(s.to_string());
        }
        let is_sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let body = capped_body(resp).await?;
        if is_sse {
            let mut parser = SseParser::default();
            let mut events = parser.push(&body);
            events.extend(parser.finish());
            for ev in events {
                if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
                    push_messages(&mut self.pending, v);
                }
            }
        } else if !body.iter().all(u8::is_ascii_whitespace) {
            let v = serde_json::from_slice::<Value>(&body)
                .map_err(|_| unknown("the MCP server sent a response that is not JSON"))?;
            push_messages(&mut self.pending, v);
        }
        Ok(())
    }

    async fn recv(&mut self) -> Result<Value, Failure> {
        self.pending
            .pop_front()
            .ok_or_else(|| connection("the MCP server sent no answer"))
    }
}

struct SseChannel<'a, S> {
    http: &'a reqwest::Client,
    headers: &'a [(String, String)],
    endpoint: reqwest::Url,
    stream: S,
    parser: SseParser,
    pending: VecDeque<crate::llm::sse::SseEvent>,
    read: usize,
}

impl<S, B> SseChannel<'_, S>
where
    S: futures_util::Stream<Item = reqwest::Result<B>> + Unpin,
    B: AsRef<[u8]>,
{
    async fn next_event(&mut self) -> Result<crate::llm::sse::SseEvent, Failure> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Ok(ev);
            }
            match self.stream.next().await {
                None => return Err(connection("the MCP server closed its event stream")),
                Some(Err(e)) => return Err(http_error(e)),
                Some(Ok(chunk)) => {
                    let chunk = chunk.as_ref();
                    self.read += chunk.len();
                    if self.read > MAX_MESSAGE_BYTES {
                        return Err(unknown("the MCP server sent too much data"));
                    }
                    self.pending.extend(self.parser.push(chunk));
                }
            }
        }
    }
}

impl<S, B> Channel for SseChannel<'_, S>
where
    S: futures_util::Stream<Item = reqwest::Result<B>> + Unpin,
    B: AsRef<[u8]>,
{
    async fn send(&mut self, msg: &Value) -> Result<(), Failure> {
        let mut req = self
            .http
            .post(self.endpoint.clone())
            .header("content-type", "application/json")
            .body(msg.to_string());
        for (k, v) in self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = req.send().await.map_err(http_error)?;
        if !resp.status().is_success() {
            return Err(connection(format!(
                "the MCP server answered HTTP {}",
                resp.status().as_u16()
            )));
        }
        Ok(())
    }

    async fn recv(&mut self) -> Result<Value, Failure> {
        for _ in 0..MAX_MESSAGES {
            let ev = self.next_event().await?;
            if ev.event.as_deref().is_none_or(|e| e == "message")
                && let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(&ev.data)
            {
                return Ok(v);
            }
        }
        Err(unknown("the MCP server sent no JSON-RPC message"))
    }
}

async fn probe_remote(
    http: &reqwest::Client,
    transport: Transport,
    url: &str,
    headers: &[(String, String)],
) -> Result<Vec<String>, Failure> {
    let parsed = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| connection("the server URL must be an http(s) URL"))?;
    match transport {
        Transport::Http => {
            let mut ch = HttpChannel {
                http,
                url: parsed,
                headers,
                session: None,
                pending: VecDeque::new(),
            };
            let tools = handshake(&mut ch).await;
            if let Some(s) = ch.session.take() {
                // Ending the session is a courtesy; its failure changes nothing.
                let mut req = http.delete(ch.url.clone()).header("mcp-session-id", s);
                for (k, v) in headers {
                    req = req.header(k.as_str(), v.as_str());
                }
                let _ = tokio::time::timeout(Duration::from_secs(2), req.send()).await;
            }
            tools
        }
        Transport::Sse => {
            let mut req = http
                .get(parsed.clone())
                .header("accept", "text/event-stream");
            for (k, v) in headers {
                req = req.header(k.as_str(), v.as_str());
            }
            let resp = req.send().await.map_err(http_error)?;
            if !resp.status().is_success() {
                return Err(connection(format!(
                    "the MCP server answered HTTP {}",
                    resp.status().as_u16()
                )));
            }
            let mut ch = SseChannel {
                http,
                headers,
                endpoint: parsed.clone(),
                stream: Box::pin(resp.bytes_stream()),
                parser: SseParser::default(),
                pending: VecDeque::new(),
                read: 0,
            };
            let endpoint = loop {
                let ev = ch.next_event().await?;
                if ev.event.as_deref() == Some("endpoint") {
                    break ev.data;
                }
            };
            ch.endpoint = parsed
                .join(endpoint.trim())
                .map_err(|_| unknown("the MCP server announced an invalid endpoint"))?;
            if ch.endpoint.origin() != parsed.origin() {
                return Err(connection(
                    "the MCP server announced an endpoint on another origin",
                ));
            }
            handshake(&mut ch).await
        }
    }
}

/// Probes one server within `deadline`.
pub async fn probe(
    server: &McpServer,
    deadline: Duration,
    http: &reqwest::Client,
) -> Result<Vec<String>, Failure> {
    match server {
        McpServer::Stdio {
            command,
            args,
            env,
            cwd,
        } => probe_stdio(command, args, env, cwd.as_deref(), deadline).await,
        McpServer::Remote {
            transport,
            url,
            headers,
        } => match tokio::time::timeout(deadline, probe_remote(http, *transport, url, headers))
            .await
        {
            Ok(r) => r,
            Err(_) => Err(timeout_failure(deadline)),
        },
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
}
