//! Operations: `GET /metrics` (format, exposure, counters that move),
//! restarts counted, idle eviction and revival (never while running or
//! subscribed; the terminal's shell is closed), and, against the real
//! binary, SIGHUP key rotation and graceful SIGTERM shutdown.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{ServerProcess, TestApp, client_with_key, spawn_app, spawn_app_with};
use crate::llm::{Reply, ScriptedLlm};

/// One sample of a scrape.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_labels(raw: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    let mut rest = raw;
    while !rest.is_empty() {
        let (k, after) = rest.split_once("=\"").expect("label =\"");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next().expect("closing quote");
            match c {
                '\\' => match chars.next().expect("escape").1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                other => value.push(other),
            }
        };
        assert!(valid_name(k), "label name {k}");
        out.push((k.to_string(), value));
        rest = after[end + 1..].trim_start_matches(',');
    }
    out
}

/// Parses the text format strictly: every sample belongs to a family whose
/// HELP and TYPE came first, names are valid, values are numbers, and no
/// series appears twice.
fn parse(text: &str) -> Vec<Sample> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps: HashMap<String, String> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    let mut out = vec![];
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP text");
            assert!(!help.is_empty(), "{line}");
            assert!(helps.insert(name.into(), help.into()).is_none(), "{line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(helps.contains_key(name), "TYPE before HELP: {line}");
            assert!(types.insert(name.into(), kind.into()).is_none(), "{line}");
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.trim().is_empty(),
            "{line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect("value");
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, parse_labels(l.strip_suffix('}').expect("}"))),
            None => (series, vec![]),
        };
        assert!(valid_name(name), "{line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        let kind = types
            .get(family)
            .unwrap_or_else(|| panic!("sample before its TYPE: {line}"));
        if kind == "counter" {
            assert!(name.ends_with("_total"), "counter name: {line}");
        }
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value: {line}")),
        };
        assert!(seen.insert(series.to_string()), "duplicate series: {line}");
        out.push(Sample {
            name: name.into(),
            labels,
            value,
        });
    }
    out
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
        })
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
        .value
}

async fn scrape_text(app: &TestApp) -> String {
    let r = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("scrape");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    r.text().await.expect("text")
}

async fn scrape(app: &TestApp) -> Vec<Sample> {
    parse(&scrape_text(app).await)
}

/// Scrapes until `ok` holds (at most `secs`); the last scrape.
async fn scrape_until(app: &TestApp, secs: u64, ok: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = scrape(app).await;
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "condition not met in {secs}s");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

fn body_with_llm(app: &TestApp, llm: &ScriptedLlm) -> Value {
    app.conversation_body(Some(&llm.openai_base))
}

async fn create(app: &TestApp, body: Value) -> String {
    let (status, info) = app.post("/api/conversations", body).await;
    assert_eq!(status, 201, "{info}");
    info["id"].as_str().expect("id").to_string()
}

/// A live process (a zombie counts as gone: it has exited).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

async fn wait_gone(pid: i32, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    !alive(pid)
}

/// Reads a pid a command wrote, waiting up to `secs` for the file.
async fn read_pid(path: &std::path::Path, secs: u64) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn metrics_are_valid_and_counters_move() {
    let app = spawn_app().await;
    let s0 = scrape(&app).await;
    let build = s0
        .iter()
        .find(|s| s.name == "agent_server_build_info")
        .expect("build info");
    assert_eq!(build.value, 1.0);
    assert!(
        build
            .labels
            .iter()
            .any(|(k, v)| k == "api_version" && v == "1.24.0")
    );
    assert!(value(&s0, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(value(&s0, "process_open_fds", &[]) > 0.0);
    assert!(value(&s0, "agent_server_uptime_seconds", &[]) >= 0.0);
    for status in ["idle", "running", "finished", "error"] {
        assert_eq!(
            value(&s0, "agent_server_conversations", &[("status", status)]),
            0.0
        );
    }
    assert_eq!(value(&s0, "agent_server_conversation_actors", &[]), 0.0);
    assert!(value(&s0, "agent_server_http_requests_in_flight", &[]) >= 1.0);

    let llm = ScriptedLlm::start(vec![Reply::terminal("echo hi"), Reply::finish("done")]).await;
    let id = create(&app, body_with_llm(&app, &llm)).await;
    let s1 = scrape(&app).await;
    assert_eq!(
        value(&s1, "agent_server_conversations", &[("status", "idle")]),
        1.0
    );
    assert_eq!(value(&s1, "agent_server_conversation_actors", &[]), 1.0);

    let mut sock = app.ws(&format!("/sockets/events/{id}"), &[]).await;
    assert_eq!(sock.json(5).await["key"], "full_state");
    let s2 = scrape(&app).await;
    assert_eq!(
        value(
            &s2,
            "agent_server_websocket_connections",
            &[("socket", "events")]
        ),
        1.0
    );

    app.send_message(&id, "say hi", true).await;
    app.wait_status(&id, &["finished"]).await;
    let s3 = scrape(&app).await;
    assert_eq!(value(&s3, "agent_server_runs_started_total", &[]), 1.0);
    assert_eq!(value(&s3, "agent_server_runs_active", &[]), 0.0);
    let calls = value(&s3, "agent_server_llm_calls_total", &[]);
    assert!(calls >= 2.0, "{calls}");
    assert_eq!(value(&s3, "agent_server_llm_errors_total", &[]), 0.0);
    assert_eq!(
        value(&s3, "agent_server_llm_call_duration_seconds_count", &[]),
        calls
    );
    assert_eq!(
        value(
            &s3,
            "agent_server_llm_call_duration_seconds_bucket",
            &[("le", "+Inf")]
        ),
        calls
    );
    assert_eq!(
        value(&s3, "agent_server_llm_tokens_total", &[("type", "prompt")]),
        100.0 * calls
    );
    assert_eq!(
        value(
            &s3,
            "agent_server_llm_tokens_total",
            &[("type", "completion")]
        ),
        10.0 * calls
    );
    let events = app.all_events(&id).await.len() as f64;
    assert_eq!(
        value(&s3, "agent_server_events_appended_total", &[]),
        events
    );
    assert_eq!(
        value(&s3, "agent_server_conversations", &[("status", "finished")]),
        1.0
    );
    assert_eq!(
        value(&s3, "agent_server_conversations", &[("status", "idle")]),
        0.0
    );

    let (status, out) = app
        .post(
            "/api/bash/execute_bash_command",
            json!({"command": "echo x", "timeout": 10}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    drop(sock);
    let s4 = scrape_until(&app, 10, |s| {
        value(
            s,
            "agent_server_websocket_connections",
            &[("socket", "events")],
        ) == 0.0
    })
    .await;
    assert_eq!(
        value(&s4, "agent_server_bash_commands_started_total", &[]),
        1.0
    );
    assert_eq!(value(&s4, "agent_server_bash_commands_running", &[]), 0.0);
    assert!(value(&s4, "agent_server_http_requests_total", &[]) > 5.0);

    let (status, _) = app.delete(&format!("/api/conversations/{id}")).await;
    assert_eq!(status, 200);
    let s5 = scrape(&app).await;
    assert_eq!(
        value(&s5, "agent_server_conversations", &[("status", "finished")]),
        0.0
    );

    let text = scrape_text(&app).await;
    assert!(!text.contains(&id), "no conversation id in metrics");
    assert!(!text.contains("sk-test-secret"));
}

#[actix_web::test]
async fn metrics_exposure_is_configurable() {
    let open = spawn_app_with(|s| s.session_api_keys = vec!["k-1".into()]).await;
    let anon = reqwest::Client::new();
    let r = anon
        .get(format!("{}/metrics", open.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "unauthenticated by default, like /health");
    let r = anon
        .post(format!("{}/metrics", open.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);

    let guarded = spawn_app_with(|s| {
        s.session_api_keys = vec!["k-1".into()];
        s.metrics.require_key = true;
    })
    .await;
    let url = format!("{}/metrics", guarded.address);
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(status(anon.get(&url).send().await.unwrap()), 401);
    assert_eq!(
        status(
            anon.get(&url)
                .header("x-session-api-key", "wrong")
                .send()
                .await
                .unwrap()
        ),
        401
    );
    assert_eq!(
        status(
            anon.get(&url)
                .header("x-session-api-key", "k-1")
                .send()
                .await
                .unwrap()
        ),
        200
    );
    assert_eq!(
        status(anon.get(&url).bearer_auth("k-1").send().await.unwrap()),
        200
    );

    let off = spawn_app_with(|s| s.metrics.enabled = false).await;
    let (status, body) = off.get("/metrics").await;
    assert_eq!((status, body), (404, json!({"detail": "Not Found"})));
}

#[actix_web::test]
async fn restarts_are_counted() {
    let app = spawn_app_with(|s| s.testing.fault_injection = true).await;
    let id = app.create_conversation().await;
    let (status, _) = app
        .post(
            &format!("/api/_test/fault/conversations/{id}/stop"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    scrape_until(&app, 10, |s| {
        value(
            s,
            "agent_server_actor_restarts_total",
            &[("actor", "conversation")],
        ) == 1.0
    })
    .await;

    let (status, _) = app
        .post(
            &format!("/api/_test/fault/conversations/{id}/panic"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    // The next request finds the dead mailbox and the registry respawns it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = app
            .patch(
                &format!("/api/conversations/{id}"),
                json!({"title": "after the panic"}),
            )
            .await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "{status} {body}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let s = scrape(&app).await;
    assert_eq!(
        value(
            &s,
            "agent_server_actor_restarts_total",
            &[("actor", "conversation_respawn")]
        ),
        1.0
    );
    let (_, info) = app.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(info["title"], "after the panic");
}

#[actix_web::test]
async fn idle_conversations_are_evicted_and_revived_with_their_shell_closed() {
    let app = spawn_app_with(|s| s.conversations.idle_eviction_seconds = Some(1)).await;
    let pid_file = app.path("ws").join("shell.pid");
    let llm = ScriptedLlm::start(vec![
        Reply::terminal(&format!("echo $$ > {}", pid_file.display())),
        Reply::finish("done"),
    ])
    .await;
    let id = create(&app, body_with_llm(&app, &llm)).await;
    app.send_message(&id, "write your pid", true).await;
    app.wait_status(&id, &["finished"]).await;
    let shell = read_pid(&pid_file, 5).await;
    let before = app.all_events(&id).await;

    let s = scrape_until(&app, 15, |s| {
        value(s, "agent_server_conversation_evictions_total", &[]) == 1.0
            && value(s, "agent_server_conversation_actors", &[]) == 0.0
    })
    .await;
    assert_eq!(
        value(&s, "agent_server_conversations", &[("status", "finished")]),
        1.0,
        "an evicted conversation is still counted"
    );
    assert!(
        wait_gone(shell, 5).await,
        "the terminal's shell {shell} survived the eviction"
    );

    // Reads come from the store; a write revives the actor.
    assert_eq!(app.all_events(&id).await, before);
    let (status, info) = app.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(
        (status, info["execution_status"].clone()),
        (200, json!("finished"))
    );
    app.send_message(&id, "still there?", false).await;
    let s = scrape(&app).await;
    assert_eq!(value(&s, "agent_server_conversation_actors", &[]), 1.0);
    let after = app.all_events(&id).await;
    assert_eq!(after[..before.len()], before[..], "history unchanged");
    assert!(after.len() > before.len());
}

#[actix_web::test]
async fn no_eviction_while_running_or_subscribed() {
    let app = spawn_app_with(|s| s.conversations.idle_eviction_seconds = Some(1)).await;
    let watched = app.create_conversation().await;
    let mut sock = app.ws(&format!("/sockets/events/{watched}"), &[]).await;
    assert_eq!(sock.json(5).await["key"], "full_state");

    let llm = ScriptedLlm::start(vec![Reply::Delay(3000, Box::new(Reply::finish("slow")))]).await;
    let busy = create(&app, body_with_llm(&app, &llm)).await;
    app.send_message(&busy, "take your time", true).await;
    app.wait_status(&busy, &["running"]).await;

    actix_web::rt::time::sleep(Duration::from_millis(2500)).await;
    let s = scrape(&app).await;
    assert_eq!(
        value(&s, "agent_server_conversation_evictions_total", &[]),
        0.0,
        "neither a subscribed nor a running conversation is evicted"
    );
    assert_eq!(value(&s, "agent_server_conversation_actors", &[]), 2.0);
    let (_, info) = app.get(&format!("/api/conversations/{busy}")).await;
    assert_eq!(info["execution_status"], "running");

    app.wait_status(&busy, &["finished"]).await;
    drop(sock);
    scrape_until(&app, 15, |s| {
        value(s, "agent_server_conversation_evictions_total", &[]) == 2.0
            && value(s, "agent_server_conversation_actors", &[]) == 0.0
    })
    .await;
}

async fn status_with(client: &reqwest::Client, base: &str) -> u16 {
    client
        .get(format!("{base}/api/conversations/count"))
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

#[actix_web::test]
async fn sighup_rotates_keys_and_keeps_them_on_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent-server.toml");
    std::fs::write(&config, "session_api_keys = [\"old-key-1\"]\n").unwrap();
    let server = ServerProcess::start_with_args(
        dir.path(),
        &["--config", config.to_str().unwrap()],
        &[("OH_SECRET_KEY", "a-stable-secret")],
    );
    let old = client_with_key(Some("old-key-1"));
    let new = client_with_key(Some("new-key-2"));
    assert_eq!(status_with(&old, &server.address).await, 200);
    assert_eq!(status_with(&new, &server.address).await, 401);

    // Rotation: both keys for a while, then only the new one.
    std::fs::write(
        &config,
        "session_api_keys = [\"old-key-1\", \"new-key-2\"]\nmax_concurrent_runs = 3\n",
    )
    .unwrap();
    server.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_with(&new, &server.address).await != 200 {
        assert!(Instant::now() < deadline, "new key never accepted");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status_with(&old, &server.address).await, 200);
    std::fs::write(&config, "session_api_keys = [\"new-key-2\"]\n").unwrap();
    server.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_with(&old, &server.address).await != 401 {
        assert!(Instant::now() < deadline, "old key still accepted");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status_with(&new, &server.address).await, 200);

    // A broken file changes nothing.
    std::fs::write(&config, "session_api_keys = [\"half\n").unwrap();
    server.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server
        .log_text()
        .contains("failed, keeping the current settings")
    {
        assert!(Instant::now() < deadline, "{}", server.log_text());
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status_with(&new, &server.address).await, 200);
    assert_eq!(status_with(&old, &server.address).await, 401);
    let health = reqwest::get(format!("{}/health", server.address))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let log = server.log_text();
    assert!(
        log.contains("not applied until a restart: max_concurrent_runs"),
        "{log}"
    );
    let failure_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("failed, keeping the current settings"))
        .collect();
    assert_eq!(failure_lines.len(), 1, "{log}");
    for secret in ["old-key-1", "new-key-2", "a-stable-secret"] {
        assert!(!log.contains(secret), "{secret} leaked into the log");
    }
    assert_eq!(server.terminate(), Some(0));
}

#[actix_web::test]
async fn sigterm_shuts_down_in_order_and_leaves_recoverable_data() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let (shell_pid, term_pid, bash_pid) = (
        ws.join("shell.pid"),
        ws.join("term-sleep.pid"),
        ws.join("bash-sleep.pid"),
    );
    let llm = ScriptedLlm::start(vec![Reply::terminal(&format!(
        "echo $$ > {}; sleep 300 & echo $! > {}; wait",
        shell_pid.display(),
        term_pid.display()
    ))])
    .await;
    let env = [
        ("OH_CONVERSATIONS_TERMINAL_NO_CHANGE_TIMEOUT_SECONDS", "120"),
        ("OH_SHUTDOWN_TIMEOUT_SECONDS", "5"),
    ];
    let mut server = ServerProcess::start(dir.path(), &env);
    let client = client_with_key(None);
    let base = server.address.clone();
    let body = json!({
        "agent": {"llm": {"model": "openai/m", "api_key": "sk-x", "base_url": llm.openai_base,
                           "num_retries": 0, "timeout": 10},
                  "tools": [{"name": "terminal"}]},
        "workspace": {"working_dir": ws.to_string_lossy()},
        "initial_message": {"role": "user", "content": [{"type": "text", "text": "sleep"}]},
    });
    let info: Value = client
        .post(format!("{base}/api/conversations"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = info["id"].as_str().expect("id").to_string();
    let cmd: Value = client
        .post(format!("{base}/api/bash/start_bash_command"))
        .json(&json!({"command": format!("sleep 300 & echo $! > {}; wait", bash_pid.display()), "timeout": 600}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let command_id = cmd["id"].as_str().expect("command id").to_string();
    let pids = [
        read_pid(&shell_pid, 20).await,
        read_pid(&term_pid, 20).await,
        read_pid(&bash_pid, 20).await,
    ];
    assert!(pids.iter().all(|p| alive(*p)));
    let status: Value = client
        .get(format!("{base}/api/conversations/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["execution_status"], "running");
    drop(client);

    let t0 = Instant::now();
    server.signal(libc::SIGTERM);
    let exit = server
        .wait_exit(Duration::from_secs(15))
        .expect("the server exits within the deadline");
    assert_eq!(exit.code(), Some(0), "{}", server.log_text());
    assert!(t0.elapsed() < Duration::from_secs(12), "{:?}", t0.elapsed());
    let log = server.log_text();
    assert!(log.contains("SIGTERM received: shutting down"), "{log}");
    assert!(log.contains("shutdown complete in"), "{log}");
    assert!(!log.contains("cut short"), "{log}");
    for pid in pids {
        assert!(
            wait_gone(pid, 5).await,
            "process {pid} survived the shutdown"
        );
    }
    drop(server);

    let server = ServerProcess::start(dir.path(), &env);
    let client = client_with_key(None);
    let base = server.address.clone();
    let info: Value = client
        .get(format!("{base}/api/conversations/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["execution_status"], "error", "{info}");
    let events: Value = client
        .get(format!(
            "{base}/api/conversations/{id}/events/search?limit=100"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = events["items"].as_array().expect("items");
    assert!(
        items
            .iter()
            .any(|e| e["kind"] == "ConversationErrorEvent" && e["code"] == "ServerRestarted"),
        "{items:?}"
    );
    assert!(
        items
            .iter()
            .any(|e| e["kind"] == "AgentErrorEvent" && e["tool_name"] == "terminal"),
        "the interrupted terminal call is answered"
    );
    let outputs: Value = client
        .get(format!(
            "{base}/api/bash/bash_events/search?command_id__eq={command_id}&kind__eq=BashOutput"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let last = outputs["items"]
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .expect("a final output");
    assert!(!last["exit_code"].is_null(), "{last}");
    assert!(
        last["stderr"]
            .as_str()
            .is_some_and(|s| s.contains("shutting down")),
        "{last}"
    );
    assert_eq!(server.terminate(), Some(0));
}

/// `LOG_JSON=true` (what the SDK examples' server launcher sets): every log
/// line on stderr is one JSON object with the reference's fields, the access
/// log included.
#[actix_web::test]
async fn log_json_writes_one_json_object_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[("LOG_JSON", "true")]);
    let client = client_with_key(None);
    let r = client
        .get(format!("{}/api/conversations/count", server.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log_text().contains("/api/conversations/count") {
        assert!(
            Instant::now() < deadline,
            "no access log line: {}",
            server.log_text()
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let text = server.log_text();
    server.terminate();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "{text}");
    for line in lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for field in [
            "asctime",
            "levelname",
            "name",
            "filename",
            "lineno",
            "message",
        ] {
            assert!(v.get(field).is_some(), "{field} missing in {line}");
        }
    }
    assert!(text.contains("\"levelname\":\"INFO\""), "{text}");
}
