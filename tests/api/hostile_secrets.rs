//! Secret hygiene: distinctive secrets are planted through the API (an
//! LLM api_key, conversation secrets, a LookupSecret's header and the value
//! it fetches, a settings secret, the settings LLM key, a profile key) and
//! through the environment (the session key, OH_SECRET_KEY); a scripted
//! agent step echoes two of them in the terminal, which must show
//! `<secret-hidden>`. Refused requests carrying secrets must not echo them.
//! Then none may appear in plaintext
//! in the data directory (sled files, conversation scratch directories),
//! in the server's debug log, in any answer of a crawl of every GET route
//! (and the trajectory zip, and the socket's full_state and replay) —
//! except where returning it is the route's job
//! (`GET /api/settings/secrets/{name}`, `X-Expose-Secrets: plaintext`),
//! which is checked too, to prove the secrets were really planted.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{ServerProcess, client_with_key};
use crate::hostile::{fill, operations_at};
use crate::llm::{Reply, ScriptedLlm};

const S_LLM: &str = "sk-llm-PLANTED-91f3c2";
const S_CONV: &str = "conv-secret-PLANTED-4b7d1e";
const S_CONV_UPDATE: &str = "conv-update-PLANTED-8e2a55";
const S_LOOKUP: &str = "lookup-header-PLANTED-5c1e7d";
const S_LOOKUP_VALUE: &str = "lookup-value-PLANTED-e61f0a";
const S_SETTING: &str = "settings-secret-PLANTED-c3d9a0";
const S_SETTINGS_LLM: &str = "settings-llm-PLANTED-77aa01";
const S_PROFILE: &str = "profile-key-PLANTED-2f6b90";
const S_SESSION: &str = "session-key-PLANTED-a8e4f2";
const S_OH_KEY: &str = "oh-secret-key-PLANTED-0d93b6";
const S_MCP_ENV: &str = "mcp-env-PLANTED-3a7c19";

/// A stdio MCP server in shell (one tool), for the agent's `mcp_config`.
const MCP_SERVER: &str = r#"while IFS= read -r line; do
  id=$(printf '%s' "$line" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
  case "$line" in
    *'"initialize"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{}}\n' "$id" ;;
    *'"tools/list"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"noop","inputSchema":{"type":"object"}}]}}\n' "$id" ;;
  esac
done"#;

const ALL: [&str; 11] = [
    S_LLM,
    S_CONV,
    S_CONV_UPDATE,
    S_LOOKUP,
    S_LOOKUP_VALUE,
    S_SETTING,
    S_SETTINGS_LLM,
    S_PROFILE,
    S_SESSION,
    S_OH_KEY,
    S_MCP_ENV,
];

fn find_all(haystack: &[u8]) -> Vec<&'static str> {
    ALL.iter()
        .copied()
        .filter(|s| haystack.windows(s.len()).any(|w| w == s.as_bytes()))
        .collect()
}

/// Every regular file under `dir` (bounded), except the server logs.
fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            files_under(&p, out);
        } else if t.is_file()
            && !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("server-"))
        {
            out.push(p);
        }
        assert!(out.len() < 20_000, "unexpectedly many files");
    }
}

/// Answers `S_LOOKUP_VALUE` to a GET carrying the planted header, and
/// counts those answers.
async fn lookup_secret(
    req: actix_web::HttpRequest,
    hits: actix_web::web::Data<AtomicUsize>,
) -> actix_web::HttpResponse {
    let expected = format!("Bearer {S_LOOKUP}");
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    if auth == Some(expected.as_str()) {
        hits.fetch_add(1, Ordering::SeqCst);
        actix_web::HttpResponse::Ok().body(S_LOOKUP_VALUE)
    } else {
        actix_web::HttpResponse::Unauthorized().finish()
    }
}

/// A loopback server for the LookupSecret; returns its URL, its handle and
/// the counter of answers given.
fn start_lookup_server() -> (
    String,
    actix_web::dev::ServerHandle,
    actix_web::web::Data<AtomicUsize>,
) {
    let hits = actix_web::web::Data::new(AtomicUsize::new(0));
    let data = hits.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .route("/secret", actix_web::web::get().to(lookup_secret))
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (format!("http://127.0.0.1:{port}/secret"), handle, hits)
}

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Vec<u8>) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self.client.request(m, format!("{}{path}", self.base));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.bytes().await.unwrap_or_default().to_vec())
    }

    async fn json(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (s, b) = self.send(method, path, body).await;
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    async fn get_with(&self, path: &str, expose: &str) -> Vec<u8> {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("X-Expose-Secrets", expose)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path} ({expose})");
        r.bytes().await.unwrap().to_vec()
    }
}

#[actix_web::test]
async fn planted_secrets_never_appear_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::terminal("echo \"token=$MY_TOKEN lookup=$LOOKUP_TOKEN\""),
        Reply::finish("done"),
    ])
    .await;
    let (lookup_url, lookup_handle, lookup_hits) = start_lookup_server();
    let server = ServerProcess::start(
        dir.path(),
        &[
            ("OH_SESSION_API_KEYS_0", S_SESSION),
            ("OH_SECRET_KEY", S_OH_KEY),
            ("RUST_LOG", "debug"),
        ],
    );
    let api = Api {
        base: server.address.clone(),
        client: client_with_key(Some(S_SESSION)),
    };

    // Plant.
    let (s, b) = api
        .json(
            "PUT",
            "/api/settings/secrets",
            Some(json!({"name": "PLANTED_SETTING", "value": S_SETTING, "description": "d"})),
        )
        .await;
    assert!(s < 300, "{s} {b}");
    let (s, b) = api
        .json(
            "PATCH",
            "/api/settings",
            Some(json!({"agent_settings_diff": {"llm": {"model": "openai/gpt-4o", "api_key": S_SETTINGS_LLM}}})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = api
        .json(
            "POST",
            "/api/profiles/planted",
            Some(json!({"llm": {"model": "openai/gpt-4o", "api_key": S_PROFILE}})),
        )
        .await;
    assert!(s < 300, "{s} {b}");
    let ws = dir.path().join("ws");
    let (s, info) = api
        .json(
            "POST",
            "/api/conversations",
            Some(json!({
                "agent": {"kind": "Agent", "tools": [{"name": "terminal"}],
                          "llm": {"model": "openai/mock-model", "api_key": S_LLM, "base_url": llm.openai_base,
                                  "num_retries": 0, "timeout": 20},
                          "mcp_config": {"mcpServers": {"planted": {
                              "command": "sh", "args": ["-c", MCP_SERVER],
                              "env": {"MCP_TOKEN": S_MCP_ENV}}}}},
                "workspace": {"kind": "LocalWorkspace", "working_dir": ws.to_string_lossy()},
                "secrets": {
                    "MY_TOKEN": S_CONV,
                    "LOOKUP_TOKEN": {"kind": "LookupSecret", "url": lookup_url,
                                     "headers": {"Authorization": format!("Bearer {S_LOOKUP}")}},
                },
            })),
        )
        .await;
    assert_eq!(s, 201, "{info}");
    let id = info["id"].as_str().unwrap().to_string();
    let (s, b) = api
        .json(
            "POST",
            &format!("/api/conversations/{id}/secrets"),
            Some(json!({"secrets": {"UPDATED_TOKEN": S_CONV_UPDATE}})),
        )
        .await;
    assert_eq!(s, 200, "{b}");

    // A socket opened with the key in its URL (which must not be logged).
    let (_, mut sock) = awc::Client::new()
        .ws(format!(
            "ws://127.0.0.1:{}/sockets/events/{id}?session_api_key={S_SESSION}",
            server.port
        ))
        .max_frame_size(16 << 20)
        .connect()
        .await
        .expect("socket");
    let mut socket_bytes: Vec<u8> = vec![];

    // The agent step: the terminal echoes $MY_TOKEN.
    let (s, b) = api
        .json(
            "POST",
            &format!("/api/conversations/{id}/events"),
            Some(json!({"role": "user", "content": [{"type": "text", "text": "show the token"}], "run": true})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, info) = api
            .json("GET", &format!("/api/conversations/{id}"), None)
            .await;
        match info["execution_status"].as_str() {
            Some("finished") => break,
            Some("error") | Some("stuck") => panic!("run ended badly: {info}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "run did not finish: {info}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    // The observation shows the mask, not the value.
    let (_, page) = api
        .json(
            "GET",
            &format!("/api/conversations/{id}/events/search?limit=100"),
            None,
        )
        .await;
    let events = page["items"].as_array().cloned().unwrap_or_default();
    let obs = events
        .iter()
        .find(|e| e["kind"] == "ObservationEvent" && e["tool_name"] == "terminal")
        .unwrap_or_else(|| panic!("no terminal observation in {page}"));
    let obs_text = obs.to_string();
    assert!(
        obs_text.contains("token=<secret-hidden> lookup=<secret-hidden>"),
        "{obs_text}"
    );
    assert!(
        lookup_hits.load(Ordering::SeqCst) > 0,
        "the lookup was not made"
    );
    // What the LLM was sent back is masked too; only its own key reached it.
    let reqs = llm.agent_requests();
    assert_eq!(reqs.len(), 2);
    assert!(
        reqs[0]["tools"].to_string().contains("\"noop\""),
        "the MCP server's tool was not offered"
    );
    assert_eq!(
        reqs[0]["_headers"]["authorization"],
        format!("Bearer {S_LLM}")
    );
    for r in &reqs {
        let mut body = r.clone();
        body.as_object_mut().unwrap().remove("_headers");
        assert_eq!(
            find_all(body.to_string().as_bytes()),
            Vec::<&str>::new(),
            "LLM request"
        );
    }
    assert!(reqs[1].to_string().contains("<secret-hidden>"));

    // Crawl every GET route (the routes whose job is to return a secret
    // are checked separately below).
    let mut crawled: Vec<(String, Vec<u8>)> = vec![];
    let obs_id = obs["id"].as_str().unwrap().to_string();
    let wsdir = ws.to_string_lossy().into_owned();
    for op in operations_at(&api.base, &api.client).await {
        if op.method != "GET" || op.path == "/api/settings/secrets/{name}" {
            continue;
        }
        let path = fill(&op.path, |n| match n {
            "conversation_id" => id.clone(),
            "event_id" => obs_id.clone(),
            "name" => "planted".into(),
            "file_path" => "x".into(),
            _ => "x".into(),
        });
        let query: Vec<String> = op
            .query_params
            .iter()
            .filter_map(|q| match q.as_str() {
                "ids" => Some(format!("ids={id}")),
                "path" => Some(format!("path={wsdir}")),
                _ => None,
            })
            .collect();
        let url = if query.is_empty() {
            path.clone()
        } else {
            format!("{path}?{}", query.join("&"))
        };
        let body = (op.path == "/api/conversations/{conversation_id}/events")
            .then(|| json!([obs_id.clone()]));
        let (_, bytes) = api.send("GET", &url, body).await;
        crawled.push((url, bytes));
    }
    for extra in [
        format!("/api/conversations/{id}/events/search?limit=100&sort_order=TIMESTAMP_DESC"),
        format!("/api/conversations?ids={id}&include_skills=true"),
        format!("/api/file/download-trajectory/{id}"),
        "/api/settings/secrets".to_string(),
        "/api/profiles".to_string(),
        "/api/profiles/planted".to_string(),
        "/api/settings".to_string(),
        "/api/bash/bash_events/search".to_string(),
    ] {
        let (s, bytes) = api.send("GET", &extra, None).await;
        assert_eq!(s, 200, "{extra}");
        crawled.push((extra, bytes));
    }
    for path in ["/api/settings", "/api/profiles/planted"] {
        crawled.push((
            format!("{path} (encrypted)"),
            api.get_with(path, "encrypted").await,
        ));
    }
    let trajectory = &crawled
        .iter()
        .find(|(u, _)| u.starts_with("/api/file/download-trajectory/"))
        .unwrap()
        .1;
    assert!(trajectory.starts_with(b"PK"), "the trajectory is a zip");
    for (url, bytes) in &crawled {
        assert_eq!(find_all(bytes), Vec::<&str>::new(), "GET {url}");
    }

    // The socket: the full_state snapshot and the live events, then a new
    // socket replaying everything.
    for _ in 0..200 {
        match actix_web::rt::time::timeout(Duration::from_millis(500), sock.next()).await {
            Ok(Some(Ok(awc::ws::Frame::Text(t)))) => socket_bytes.extend_from_slice(&t),
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    let (_, mut replay) = awc::Client::new()
        .ws(format!(
            "ws://127.0.0.1:{}/sockets/events/{id}?resend_all=true",
            server.port
        ))
        .set_header("X-Session-API-Key", S_SESSION)
        .max_frame_size(16 << 20)
        .connect()
        .await
        .expect("socket");
    for _ in 0..200 {
        match actix_web::rt::time::timeout(Duration::from_millis(500), replay.next()).await {
            Ok(Some(Ok(awc::ws::Frame::Text(t)))) => socket_bytes.extend_from_slice(&t),
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&socket_bytes);
    assert!(text.contains("full_state"), "no snapshot on the socket");
    assert!(text.contains("<secret-hidden>"), "no replayed observation");
    assert_eq!(find_all(&socket_bytes), Vec::<&str>::new(), "socket frames");

    // Refusals never echo a secret that came with the refused request.
    let refused: Vec<(&str, String, Value)> = vec![
        (
            "POST",
            "/api/conversations".into(),
            json!({"agent": {"kind": "Agent", "llm": {"model": 7, "api_key": S_LLM}}, "workspace": {"working_dir": "w"}}),
        ),
        (
            "POST",
            "/api/conversations".into(),
            json!({"agent": {"kind": "Agent", "llm": {"model": "m", "api_key": S_LLM}}, "workspace": {"working_dir": "w"}, "secrets": {"A": {"kind": "Bogus", "value": S_CONV}}}),
        ),
        (
            "POST",
            "/api/conversations".into(),
            json!({"agent": {"kind": "Agent", "llm": {"model": "m", "api_key": S_LLM}}, "workspace": {"working_dir": "w"}, "max_iterations": -1, "secrets": {"A": S_CONV}}),
        ),
        (
            "POST",
            format!("/api/conversations/{id}/secrets"),
            json!({"secrets": {"A": {"kind": "LookupSecret", "url": 1, "headers": {"Authorization": S_LOOKUP}}}}),
        ),
        (
            "POST",
            format!("/api/conversations/{id}/switch_llm"),
            json!({"llm": {"model": [], "api_key": S_LLM}}),
        ),
        (
            "PUT",
            "/api/settings/secrets".into(),
            json!({"name": "bad name!", "value": S_SETTING}),
        ),
        (
            "PATCH",
            "/api/settings".into(),
            json!({"agent_settings_diff": {"llm": {"model": 5, "api_key": S_SETTINGS_LLM}}}),
        ),
        (
            "POST",
            "/api/profiles/bad%20name".into(),
            json!({"llm": {"model": "m", "api_key": S_PROFILE}}),
        ),
        (
            "POST",
            "/api/profiles/other".into(),
            json!({"llm": {"model": 1, "api_key": S_PROFILE}}),
        ),
        (
            "POST",
            "/api/mcp/test".into(),
            json!({"server": {"type": "stdio", "command": "x", "env": {"TOKEN": S_OH_KEY}}, "timeout": -1}),
        ),
        (
            "POST",
            "/api/mcp/test".into(),
            json!({"server": {"type": "http", "url": "", "api_key": S_OH_KEY}}),
        ),
        (
            "POST",
            "/api/cloud-proxy".into(),
            json!({"host": "https://app.all-hands.dev", "path": "/", "headers": {"bad header": S_SESSION}}),
        ),
    ];
    for (method, path, body) in refused {
        let (s, bytes) = api.send(method, &path, Some(body.clone())).await;
        assert!((400..500).contains(&s), "{method} {path} {body}: {s}");
        assert_eq!(
            find_all(&bytes),
            Vec::<&str>::new(),
            "{method} {path} refusal: {}",
            String::from_utf8_lossy(&bytes)
        );
    }

    // The routes whose job is to return a secret do (the secrets were planted).
    let (_, one) = api
        .send("GET", "/api/settings/secrets/PLANTED_SETTING", None)
        .await;
    assert_eq!(find_all(&one), vec![S_SETTING]);
    let plain = api.get_with("/api/settings", "plaintext").await;
    assert!(find_all(&plain).contains(&S_SETTINGS_LLM));
    let plain = api.get_with("/api/profiles/planted", "plaintext").await;
    assert_eq!(find_all(&plain), vec![S_PROFILE]);

    // Stop the server (flushing the database), then read every file.
    drop(sock);
    drop(replay);
    let log_path = server.log.clone();
    assert_eq!(server.terminate(), Some(0));
    let mut files = vec![];
    files_under(dir.path(), &mut files);
    assert!(
        files.iter().any(|f| f.to_string_lossy().contains(".db")),
        "no database among {files:?}"
    );
    for f in &files {
        let bytes = std::fs::read(f).unwrap_or_default();
        assert_eq!(find_all(&bytes), Vec::<&str>::new(), "{}", f.display());
    }
    let log = std::fs::read(&log_path).unwrap();
    assert!(
        String::from_utf8_lossy(&log).contains("DEBUG"),
        "the log was not at debug level"
    );
    assert_eq!(find_all(&log), Vec::<&str>::new(), "server log");
    lookup_handle.stop(false).await;
}
