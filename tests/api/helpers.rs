//! Test harness: `spawn_app()` starts the server exactly as `main` does
//! (port 0, temporary data directory) and returns typed helpers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use agent_server::app::Application;
use agent_server::settings::{Cli, Settings};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

/// A running server.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// The port.
    pub port: u16,
    /// HTTP client (sends the API key when one is configured).
    pub client: reqwest::Client,
    /// Data directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// The session key, when auth is on.
    pub api_key: Option<String>,
    handle: ServerHandle,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let h = self.handle.clone();
        actix_web::rt::spawn(async move { h.stop(false).await });
    }
}

/// Settings for a test server in `dir`.
pub fn test_settings(dir: &std::path::Path) -> Settings {
    let mut s = Settings::load(&Cli::default(), &HashMap::new()).expect("default settings");
    s.port = 0;
    s.conversations_path = dir.join("conversations").to_string_lossy().into_owned();
    s.persistence_dir = Some(dir.join(".openhands").to_string_lossy().into_owned());
    s.http.workers = Some(1);
    s
}

/// Starts a server with default test settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server after `tweak` adjusted its settings.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let _ = env_logger::builder().is_test(true).try_init();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(dir.path());
    tweak(&mut settings);
    start(settings, dir).await
}

/// Starts a server with the given settings and data directory.
pub async fn start(settings: Settings, dir: tempfile::TempDir) -> TestApp {
    let api_key = settings.session_api_keys.first().cloned();
    let app = Application::build(settings).await.expect("server builds");
    let port = app.port();
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(k) = &api_key {
        headers.insert("x-session-api-key", k.parse().expect("header"));
    }
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client,
        dir,
        api_key,
        handle,
    }
}

impl TestApp {
    /// Absolute path inside the data directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A request to `path` on this server, with the app's client (and key).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.address))
    }

    /// Sends a request; returns the status and the JSON body (Null when
    /// the body is not JSON).
    pub async fn call(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// GET.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(self.request(reqwest::Method::GET, path)).await
    }

    /// POST JSON.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(self.request(reqwest::Method::POST, path).json(&body))
            .await
    }

    /// POST a raw body.
    pub async fn post_raw(&self, path: &str, body: &'static str) -> (u16, Value) {
        self.call(self.request(reqwest::Method::POST, path).body(body))
            .await
    }

    /// PATCH JSON.
    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(self.request(reqwest::Method::PATCH, path).json(&body))
            .await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(self.request(reqwest::Method::DELETE, path)).await
    }

    /// A start-conversation body with a workspace inside the data directory.
    pub fn conversation_body(&self, llm_base: Option<&str>) -> Value {
        let ws = self.path("ws");
        json!({
            // Without a scripted LLM, point at a closed loopback port: a run
            // then fails at once instead of looking up a public host.
            "agent": {"llm": {"model": "openai/test-model", "api_key": "sk-test-secret",
                               "base_url": llm_base.unwrap_or("http://127.0.0.1:9/v1"),
                               "num_retries": 1, "retry_min_wait": 0, "retry_max_wait": 0, "timeout": 10},
                      "tools": [{"name": "terminal"}, {"name": "file_editor"}, {"name": "task_tracker"}],
                      "kind": "Agent"},
            "workspace": {"working_dir": ws.to_string_lossy(), "kind": "LocalWorkspace"},
        })
    }

    /// Creates a conversation and returns its id.
    pub async fn create_conversation(&self) -> String {
        let (status, body) = self
            .post("/api/conversations", self.conversation_body(None))
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("id").to_string()
    }

    /// Sends a user message.
    pub async fn send_message(&self, id: &str, text: &str, run: bool) {
        let (status, body) = self
            .post(
                &format!("/api/conversations/{id}/events"),
                json!({"role": "user", "content": [{"type": "text", "text": text}], "run": run}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Every event of a conversation, paging through search.
    pub async fn all_events(&self, id: &str) -> Vec<Value> {
        let mut out = vec![];
        let mut page: Option<String> = None;
        loop {
            let q = match &page {
                Some(p) => format!("?limit=100&page_id={p}"),
                None => "?limit=100".into(),
            };
            let (status, body) = self
                .get(&format!("/api/conversations/{id}/events/search{q}"))
                .await;
            assert_eq!(status, 200, "{body}");
            out.extend(body["items"].as_array().expect("items").iter().cloned());
            match body["next_page_id"].as_str() {
                Some(p) => page = Some(p.to_string()),
                None => return out,
            }
        }
    }

    /// Polls the conversation until its status is one of `want`.
    pub async fn wait_status(&self, id: &str, want: &[&str]) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (_, info) = self.get(&format!("/api/conversations/{id}")).await;
            if want.contains(&info["execution_status"].as_str().unwrap_or("")) {
                return info;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {want:?}; last: {info}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Opens a WebSocket (path with query), with optional extra headers.
    pub async fn ws(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Ws {
        let mut req = awc::Client::new()
            .ws(format!("ws://127.0.0.1:{}{path_and_query}", self.port))
            .max_frame_size(16 << 20);
        for (k, v) in headers {
            req = req.set_header(*k, *v);
        }
        let (_resp, framed) = req.connect().await.expect("websocket connects");
        Ws { framed }
    }

    /// Tries to open a WebSocket; returns the HTTP status on a refused handshake.
    pub async fn ws_status(&self, path_and_query: &str) -> Result<Ws, u16> {
        match awc::Client::new()
            .ws(format!("ws://127.0.0.1:{}{path_and_query}", self.port))
            .connect()
            .await
        {
            Ok((_, framed)) => Ok(Ws { framed }),
            Err(awc::error::WsClientError::InvalidResponseStatus(s)) => Err(s.as_u16()),
            Err(e) => panic!("unexpected websocket error: {e}"),
        }
    }
}

/// A WebSocket client.
pub struct Ws {
    framed: actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>,
}

/// What a socket produced next.
#[derive(Debug)]
pub enum WsItem {
    /// A JSON text frame.
    Json(Value),
    /// The server closed with this code and reason.
    Closed(Option<u16>, String),
}

impl Ws {
    /// The next text frame or close (pings are answered), within `secs`.
    pub async fn next(&mut self, secs: u64) -> Option<WsItem> {
        let deadline = Duration::from_secs(secs);
        loop {
            let frame = actix_web::rt::time::timeout(deadline, self.framed.next())
                .await
                .ok()??;
            match frame.expect("websocket frame decodes") {
                awc::ws::Frame::Text(t) => {
                    return Some(WsItem::Json(
                        serde_json::from_slice(&t).expect("JSON frame"),
                    ));
                }
                awc::ws::Frame::Ping(p) => {
                    let _ = self.framed.send(awc::ws::Message::Pong(p)).await;
                }
                awc::ws::Frame::Close(reason) => {
                    return Some(WsItem::Closed(
                        reason.as_ref().map(|r| u16::from(r.code)),
                        reason.and_then(|r| r.description).unwrap_or_default(),
                    ));
                }
                _ => {}
            }
        }
    }

    /// The next JSON frame (panics on close or timeout).
    pub async fn json(&mut self, secs: u64) -> Value {
        match self.next(secs).await {
            Some(WsItem::Json(v)) => v,
            other => panic!("expected a JSON frame, got {other:?}"),
        }
    }

    /// Sends a text frame.
    pub async fn send(&mut self, v: &Value) {
        self.framed
            .send(awc::ws::Message::Text(v.to_string().into()))
            .await
            .expect("send");
    }

    /// Sends a text frame with `text` as it is (not JSON-encoded).
    pub async fn send_raw(&mut self, text: &str) {
        self.framed
            .send(awc::ws::Message::Text(text.to_string().into()))
            .await
            .expect("send");
    }

    /// Collects JSON frames until `n` were received or `secs` of silence.
    pub async fn collect(&mut self, n: usize, secs: u64) -> Vec<Value> {
        let mut out = vec![];
        while out.len() < n {
            match self.next(secs).await {
                Some(WsItem::Json(v)) => out.push(v),
                _ => break,
            }
        }
        out
    }
}

/// The real binary, started as a child process (for restart and kill -9 tests).
pub struct ServerProcess {
    child: std::process::Child,
    /// Bound port.
    pub port: u16,
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// Log file of this process.
    pub log: PathBuf,
}

impl ServerProcess {
    /// Starts `agent-server --port 0` in `dir` with `env`; waits until it listens.
    pub fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> ServerProcess {
        ServerProcess::start_with_args(dir, &[], env)
    }

    /// Like [`ServerProcess::start`], with extra command-line arguments.
    pub fn start_with_args(
        dir: &std::path::Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        use std::io::BufRead;
        let log = dir.join(format!(
            "server-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_agent-server"));
        cmd.args(["--host", "127.0.0.1", "--port", "0"])
            .args(args)
            .current_dir(dir)
            .env_remove("SESSION_API_KEY")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(log_file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("server starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        let mut port = 0;
        for _ in 0..10 {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            if let Some(rest) = line
                .trim()
                .strip_prefix("Starting OpenHands Agent Server on ")
            {
                port = rest
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                break;
            }
        }
        assert!(
            port > 0,
            "server did not report its port; log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).unwrap_or(0) > 0 {
                sink.clear();
            }
        });
        ServerProcess {
            child,
            port,
            address: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and wait (bounded) for a clean exit; returns the exit status code.
    pub fn terminate(mut self) -> Option<i32> {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("server did not stop within 20 s after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits up to `limit` for the process to exit; its exit code, or
    /// `None` if it still runs (or died from a signal).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking-free HTTP client for a child-process server.
pub fn client_with_key(key: Option<&str>) -> reqwest::Client {
    agent_server::app::install_crypto_provider();
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(k) = key {
        headers.insert("x-session-api-key", k.parse().expect("header"));
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}
