//! The bash API and `WS /sockets/bash-events`: commands, exit codes, working
//! directories, the Python client's polling protocol with output arriving
//! while a command runs, big outputs, timeouts that kill whole process
//! groups, termination, search/get/batch/clear, retention, crash recovery,
//! the socket, and the server's keys staying out of commands' environments.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use agent_actors::bash::event_log::{BashLog, Running};
use agent_actors::bash::model::{ExecuteBashRequest, OutputEvent, RecordHeader, command_json};
use agent_actors::ids::Uuid;
use agent_actors::store::Store;
use serde_json::{Value, json};

use crate::helpers::{
    ServerProcess, TestApp, WsItem, spawn_app, spawn_app_with, start, test_settings,
};

async fn sleep_ms(ms: u64) {
    actix_web::rt::time::sleep(Duration::from_millis(ms)).await;
}

/// Starts a command and returns its `BashCommand`.
async fn start_command(app: &TestApp, body: Value) -> Value {
    let (status, cmd) = app.post("/api/bash/start_bash_command", body).await;
    assert_eq!(status, 200, "{cmd}");
    cmd
}

/// What `RemoteWorkspace.execute_command` ends up with.
struct ClientResult {
    exit_code: i64,
    stdout: String,
    stderr: String,
    /// Chunks (exit_code null) seen before the final output arrived.
    chunks_before_exit: usize,
    outputs: Vec<Value>,
}

/// Runs a command exactly as the Python client does: start, then poll the
/// search every 100 ms with `command_id__eq`, `kind__eq=BashOutput`,
/// `sort_order=TIMESTAMP`, `limit=100` and `order__gt` once an output was
/// seen, failing on a repeated id, until an exit code arrives.
async fn run_like_client(app: &TestApp, command: &str, timeout: u64) -> ClientResult {
    let cmd = start_command(app, json!({"command": command, "timeout": timeout})).await;
    let id = cmd["id"].as_str().unwrap().to_string();
    let mut seen = HashSet::new();
    let mut max_order: Option<i64> = None;
    let mut result = ClientResult {
        exit_code: -1,
        stdout: String::new(),
        stderr: String::new(),
        chunks_before_exit: 0,
        outputs: vec![],
    };
    let deadline = Instant::now() + Duration::from_secs(timeout + 10);
    loop {
        assert!(
            Instant::now() < deadline,
            "no exit code before the deadline"
        );
        let mut q = format!(
            "/api/bash/bash_events/search?command_id__eq={id}&sort_order=TIMESTAMP&limit=100&kind__eq=BashOutput"
        );
        if let Some(o) = max_order {
            q.push_str(&format!("&order__gt={o}"));
        }
        let (status, page) = app.get(&q).await;
        assert_eq!(status, 200, "{page}");
        let mut exit = None;
        for item in page["items"].as_array().unwrap() {
            assert_eq!(item["kind"], "BashOutput");
            let eid = item["id"].as_str().unwrap().to_string();
            assert!(seen.insert(eid), "output {item} was returned twice");
            let order = item["order"].as_i64().unwrap();
            max_order = Some(max_order.map_or(order, |m| m.max(order)));
            if let Some(s) = item["stdout"].as_str() {
                result.stdout.push_str(s);
            }
            if let Some(s) = item["stderr"].as_str() {
                result.stderr.push_str(s);
            }
            match item["exit_code"].as_i64() {
                Some(c) => exit = Some(c),
                None => result.chunks_before_exit += 1,
            }
            result.outputs.push(item.clone());
        }
        if let Some(c) = exit {
            result.exit_code = c;
            return result;
        }
        sleep_ms(100).await;
    }
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

/// Whether a process is gone (a zombie waiting for an init that does not
/// reap counts as gone: it no longer runs).
fn process_gone(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

async fn wait_gone(pid: i64) -> bool {
    for _ in 0..40 {
        if process_gone(pid) {
            return true;
        }
        sleep_ms(50).await;
    }
    false
}

#[actix_web::test]
async fn execute_reports_output_and_exit_code() {
    let app = spawn_app().await;
    let (status, out) = app
        .post(
            "/api/bash/execute_bash_command",
            json!({"command": "echo hello; echo err >&2; exit 3"}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        keys(&out),
        [
            "id",
            "timestamp",
            "command_id",
            "order",
            "exit_code",
            "stdout",
            "stderr",
            "kind"
        ]
    );
    assert_eq!(out["exit_code"], 3);
    assert_eq!(out["stdout"], "hello\n");
    assert_eq!(out["stderr"], "err\n");
    assert_eq!(out["order"], 0);
    assert_eq!(out["id"].as_str().unwrap().len(), 32, "hex id");
    assert!(out["timestamp"].as_str().unwrap().ends_with('Z'));

    let cmd = start_command(&app, json!({"command": "true", "ignored": 1})).await;
    assert_eq!(
        keys(&cmd),
        ["command", "cwd", "timeout", "id", "timestamp", "kind"]
    );
    assert_eq!(cmd["cwd"], Value::Null);
    assert_eq!(cmd["timeout"], 300);
    assert_eq!(cmd["kind"], "BashCommand");

    // No output at all: both streams are null.
    let (_, out) = app
        .post(
            "/api/bash/execute_bash_command",
            json!({"command": "exit 0"}),
        )
        .await;
    assert_eq!(
        (out["stdout"].clone(), out["stderr"].clone()),
        (Value::Null, Value::Null)
    );

    for (body, loc) in [
        (json!({}), "command"),
        (json!({"command": 5}), "command"),
        (json!({"command": "x", "timeout": "soon"}), "timeout"),
        (json!({"command": "x", "cwd": []}), "cwd"),
    ] {
        let (status, err) = app.post("/api/bash/start_bash_command", body).await;
        assert_eq!(status, 422, "{err}");
        assert_eq!(err["detail"][0]["loc"], json!(["body", loc]));
    }
    let (status, _) = app.post_raw("/api/bash/execute_bash_command", "{").await;
    assert_eq!(status, 422);
}

#[actix_web::test]
async fn working_directories() {
    let app = spawn_app().await;
    let here = std::env::current_dir().unwrap();
    let (_, out) = app
        .post("/api/bash/execute_bash_command", json!({"command": "pwd"}))
        .await;
    assert_eq!(out["stdout"], format!("{}\n", here.display()));
    let (_, out) = app
        .post(
            "/api/bash/execute_bash_command",
            json!({"command": "pwd", "cwd": "tests/api"}),
        )
        .await;
    assert_eq!(
        out["stdout"],
        format!("{}\n", here.join("tests/api").display()),
        "a relative cwd is resolved against the server's working directory"
    );
    let abs = app.path("");
    let (_, out) = app
        .post(
            "/api/bash/execute_bash_command",
            json!({"command": "pwd", "cwd": abs}),
        )
        .await;
    assert_eq!(
        out["stdout"].as_str().unwrap().trim_end(),
        abs.canonicalize()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
    );
    let (status, out) = app
        .post(
            "/api/bash/execute_bash_command",
            json!({"command": "pwd", "cwd": "/no/such/dir"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(out["exit_code"], -1);
    assert_eq!(out["order"], 0);
    let stderr = out["stderr"].as_str().unwrap();
    assert!(stderr.starts_with("Error executing command:"), "{stderr}");
    assert!(stderr.contains("/no/such/dir"), "{stderr}");
}

#[actix_web::test]
async fn client_polling_sees_output_while_the_command_runs() {
    let app = spawn_app().await;
    let r = run_like_client(
        &app,
        "for i in 1 2 3 4 5; do echo line$i; echo e$i >&2; sleep 0.3; done; exit 7",
        20,
    )
    .await;
    assert_eq!(r.exit_code, 7);
    assert_eq!(r.stdout, "line1\nline2\nline3\nline4\nline5\n");
    assert_eq!(r.stderr, "e1\ne2\ne3\ne4\ne5\n");
    assert!(
        r.chunks_before_exit >= 2,
        "output must be recorded while the command runs ({} chunks)",
        r.chunks_before_exit
    );
    let orders: Vec<i64> = r
        .outputs
        .iter()
        .map(|o| o["order"].as_i64().unwrap())
        .collect();
    let expected: Vec<i64> = (0..orders.len() as i64).collect();
    assert_eq!(orders, expected, "orders are 0, 1, 2, …");
}

#[actix_web::test]
async fn big_output_is_chunked_and_complete() {
    let app = spawn_app().await;
    let r = run_like_client(&app, "seq 1 400000; echo done >&2", 60).await;
    assert_eq!(r.exit_code, 0);
    let expected: String = (1..=400_000).map(|i| format!("{i}\n")).collect();
    assert!(expected.len() > 2 << 20, "a few MiB");
    assert_eq!(r.stdout.len(), expected.len());
    assert!(r.stdout == expected, "output lost, duplicated or reordered");
    assert_eq!(r.stderr, "done\n");
    assert!(r.outputs.len() >= 3, "{} outputs", r.outputs.len());
    for o in &r.outputs {
        let n = o["stdout"].as_str().map_or(0, str::len) + o["stderr"].as_str().map_or(0, str::len);
        assert!(n <= 1 << 20, "a chunk of {n} bytes");
    }
    // execute_bash_command answers as the reference's final output would:
    // what follows the last full MiB.
    let (_, out) = app
        .post(
            "/api/bash/execute_bash_command",
            json!({"command": "seq 1 400000"}),
        )
        .await;
    let mib = 1 << 20;
    let kept = expected.len() - (expected.len() - 1) / mib * mib;
    assert_eq!(
        out["stdout"].as_str().unwrap(),
        &expected[expected.len() - kept..]
    );
}

#[actix_web::test]
async fn timeout_kills_the_command_and_its_children() {
    let app = spawn_app().await;
    let started = Instant::now();
    let (status, out) = app
        .post(
            "/api/bash/execute_bash_command",
            json!({"command": "sleep 100 & echo $!; sleep 100; wait", "timeout": 1}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out["exit_code"], -1);
    // The background child's pid came in an earlier chunk.
    let id = out["command_id"].as_str().unwrap();
    let (_, page) = app
        .get(&format!(
            "/api/bash/bash_events/search?command_id__eq={id}&kind__eq=BashOutput"
        ))
        .await;
    let stdout: String = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["stdout"].as_str())
        .collect();
    let child: i64 = stdout.trim().parse().expect("the child's pid");
    assert!(
        wait_gone(child).await,
        "the background child {child} survived"
    );

    // A command that ignores SIGTERM is killed a second later.
    let (_, out) = app
        .post(
            "/api/bash/execute_bash_command",
            json!({"command": "trap '' TERM; sleep 100", "timeout": 1}),
        )
        .await;
    assert_eq!(out["exit_code"], -1);

    // The server is still fine.
    let (_, out) = app
        .post(
            "/api/bash/execute_bash_command",
            json!({"command": "echo ok"}),
        )
        .await;
    assert_eq!(
        (out["exit_code"].clone(), out["stdout"].clone()),
        (json!(0), json!("ok\n"))
    );
}

#[actix_web::test]
async fn terminate_route() {
    let app = spawn_app().await;
    let cmd = start_command(&app, json!({"command": "echo $$; sleep 100"})).await;
    let id = cmd["id"].as_str().unwrap();
    let mut pid = None;
    for _ in 0..50 {
        let (_, page) = app
            .get(&format!(
                "/api/bash/bash_events/search?command_id__eq={id}&kind__eq=BashOutput"
            ))
            .await;
        if let Some(s) = page["items"][0]["stdout"].as_str() {
            pid = s.trim().parse::<i64>().ok();
            break;
        }
        sleep_ms(50).await;
    }
    let pid = pid.expect("the command printed its pid");
    let (status, out) = app
        .post(&format!("/api/bash/commands/{id}/terminate"), json!({}))
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["exit_code"], -1);
    assert_eq!(out["command_id"], id);
    assert!(wait_gone(pid).await);
    let (status, out) = app
        .post(&format!("/api/bash/commands/{id}/terminate"), json!({}))
        .await;
    assert_eq!(status, 409, "{out}");
    let (status, _) = app
        .post(
            &format!("/api/bash/commands/{}/terminate", Uuid::new_v4().simple()),
            json!({}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post("/api/bash/commands/not-an-id/terminate", json!({}))
        .await;
    assert_eq!(status, 422);
}

#[actix_web::test]
async fn search_filters_paging_sorting_and_validation() {
    let app = spawn_app().await;
    let mut ids = vec![];
    for i in 0..3 {
        let (_, out) = app
            .post(
                "/api/bash/execute_bash_command",
                json!({"command": format!("echo {i}")}),
            )
            .await;
        ids.push(out["command_id"].as_str().unwrap().to_string());
    }
    let (status, all) = app.get("/api/bash/bash_events/search").await;
    assert_eq!(status, 200, "{all}");
    let all = all["items"].as_array().unwrap().clone();
    let kinds: Vec<&str> = all.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "BashCommand",
            "BashOutput",
            "BashCommand",
            "BashOutput",
            "BashCommand",
            "BashOutput"
        ]
    );

    let (_, p) = app
        .get("/api/bash/bash_events/search?kind__eq=BashCommand")
        .await;
    assert_eq!(p["items"].as_array().unwrap().len(), 3);
    let hyphenated = Uuid::parse(&ids[1]).unwrap().hyphenated();
    for form in [ids[1].clone(), hyphenated] {
        let (_, p) = app
            .get(&format!(
                "/api/bash/bash_events/search?command_id__eq={form}"
            ))
            .await;
        let items = p["items"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["id"], ids[1].as_str());
        assert_eq!(items[1]["command_id"], ids[1].as_str());
    }
    // order__gt drops outputs with order ≤ value, never commands.
    let (_, p) = app.get("/api/bash/bash_events/search?order__gt=0").await;
    let kinds: Vec<&str> = p["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["BashCommand"; 3]);
    let (_, p) = app
        .get("/api/bash/bash_events/search?order__gt=-1&kind__eq=BashOutput")
        .await;
    assert_eq!(p["items"].as_array().unwrap().len(), 3);

    let (_, desc) = app
        .get("/api/bash/bash_events/search?sort_order=TIMESTAMP_DESC")
        .await;
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(desc["items"].as_array().unwrap(), &reversed);

    for sort in ["TIMESTAMP", "TIMESTAMP_DESC"] {
        let mut paged = vec![];
        let mut page_id: Option<String> = None;
        for _ in 0..10 {
            let mut q = format!("/api/bash/bash_events/search?limit=4&sort_order={sort}");
            if let Some(p) = &page_id {
                q.push_str(&format!("&page_id={p}"));
            }
            let (status, p) = app.get(&q).await;
            assert_eq!(status, 200, "{p}");
            paged.extend(p["items"].as_array().unwrap().iter().cloned());
            match p["next_page_id"].as_str() {
                Some(n) => page_id = Some(n.to_string()),
                None => break,
            }
        }
        let want = if sort == "TIMESTAMP" { &all } else { &reversed };
        assert_eq!(&paged, want, "paging with {sort}");
    }

    let first = all[0]["timestamp"].as_str().unwrap();
    let (_, p) = app
        .get(&format!(
            "/api/bash/bash_events/search?timestamp__gte={first}"
        ))
        .await;
    assert_eq!(p["items"].as_array().unwrap().len(), 6);
    let (_, p) = app
        .get(&format!(
            "/api/bash/bash_events/search?timestamp__lt={first}"
        ))
        .await;
    assert!(p["items"].as_array().unwrap().is_empty());
    let (_, p) = app
        .get("/api/bash/bash_events/search?timestamp__gte=2999-01-01T00:00:00")
        .await;
    assert!(p["items"].as_array().unwrap().is_empty());

    for (q, loc) in [
        ("kind__eq=BashError", "kind__eq"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("command_id__eq=nope", "command_id__eq"),
        ("order__gt=x", "order__gt"),
        ("sort_order=NEWEST", "sort_order"),
        ("page_id=abc", "page_id"),
        ("timestamp__gte=yesterday", "timestamp__gte"),
    ] {
        let (status, err) = app.get(&format!("/api/bash/bash_events/search?{q}")).await;
        assert_eq!(status, 422, "{q}: {err}");
        assert_eq!(err["detail"][0]["loc"], json!(["query", loc]), "{q}");
    }
}

#[actix_web::test]
async fn get_batch_and_clear() {
    let app = spawn_app().await;
    let (_, out) = app
        .post(
            "/api/bash/execute_bash_command",
            json!({"command": "echo x"}),
        )
        .await;
    let out_id = out["id"].as_str().unwrap();
    let cmd_id = out["command_id"].as_str().unwrap();
    let (status, got) = app.get(&format!("/api/bash/bash_events/{out_id}")).await;
    assert_eq!((status, &got), (200, &out));
    let (status, got) = app.get(&format!("/api/bash/bash_events/{cmd_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got["kind"], "BashCommand");
    for missing in [Uuid::new_v4().simple(), "not-hex".to_string()] {
        let (status, body) = app.get(&format!("/api/bash/bash_events/{missing}")).await;
        assert_eq!(status, 404);
        assert_eq!(body, json!({"detail": "Not Found"}));
    }

    let batch = |body: Value| {
        let client = app.client.clone();
        let url = format!("{}/api/bash/bash_events/", app.address);
        async move {
            let r = client.get(url).json(&body).send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let unknown = Uuid::new_v4().simple();
    let (status, got) = batch(json!([out_id, unknown, "junk", cmd_id])).await;
    assert_eq!(status, 200);
    assert_eq!(got[0], out);
    assert_eq!((got[1].clone(), got[2].clone()), (Value::Null, Value::Null));
    assert_eq!(got[3]["id"], cmd_id);
    assert_eq!(batch(json!({"ids": []})).await.0, 422);
    assert_eq!(batch(json!([1])).await.0, 422);
    let (status, _) = app.get("/api/bash/bash_events").await;
    assert_eq!(status, 405);

    // Clearing leaves a running command running; its output is recorded.
    let running = start_command(&app, json!({"command": "sleep 0.5; echo after"})).await;
    let (status, cleared) = app.delete("/api/bash/bash_events").await;
    assert_eq!(status, 200);
    assert_eq!(cleared, json!({"cleared_count": 3}));
    let (_, p) = app.get("/api/bash/bash_events/search").await;
    assert!(p["items"].as_array().unwrap().is_empty(), "{p}");
    let rid = running["id"].as_str().unwrap();
    let mut outputs = vec![];
    for _ in 0..60 {
        let (_, p) = app
            .get(&format!(
                "/api/bash/bash_events/search?command_id__eq={rid}"
            ))
            .await;
        outputs = p["items"].as_array().unwrap().clone();
        if outputs.iter().any(|o| !o["exit_code"].is_null()) {
            break;
        }
        sleep_ms(50).await;
    }
    let last = outputs.last().expect("outputs after the clear");
    assert_eq!(last["exit_code"], 0, "{outputs:?}");
    let stdout: String = outputs
        .iter()
        .filter_map(|o| o["stdout"].as_str())
        .collect();
    assert_eq!(stdout, "after\n");
    let (_, cleared) = app.delete("/api/bash/bash_events").await;
    assert_eq!(cleared["cleared_count"], outputs.len());
    let (_, cleared) = app.delete("/api/bash/bash_events").await;
    assert_eq!(cleared["cleared_count"], 0);
}

#[actix_web::test]
async fn start_up_sweeps_old_events_and_finishes_interrupted_commands() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    settings.bash_events_retention_seconds = Some(3600);
    let now = agent_actors::time::now_micros();
    let old_micros = now - 2 * 3600 * 1_000_000;
    let request = ExecuteBashRequest {
        command: "echo old".into(),
        cwd: None,
        timeout: 30,
    };
    let (old, fresh, interrupted) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    {
        std::fs::create_dir_all(settings.storage_path().parent().unwrap()).unwrap();
        let store = Store::open(&settings.storage_path(), 1 << 20).unwrap();
        let log = BashLog::open(&store, 50).unwrap();
        for (id, micros, finished) in [
            (old, old_micros, true),
            (fresh, now, true),
            (interrupted, now, false),
        ] {
            log.append(
                &RecordHeader::command(id, micros),
                &command_json(&id, &request, micros),
                Running::Start,
            )
            .unwrap();
            let out = OutputEvent {
                id: Uuid::new_v4(),
                micros,
                command_id: id,
                order: 0,
                exit_code: finished.then_some(0),
                stdout: Some("partial\n".into()),
                stderr: None,
            };
            let running = if finished {
                Running::Finish
            } else {
                Running::Keep
            };
            log.append(&out.header(), &out.to_json(), running).unwrap();
        }
        store.flush_blocking().unwrap();
    }
    // sled's flusher thread lets go of the database shortly after the last
    // handle is dropped.
    let lock = settings.storage_path().join("db");
    for _ in 0..100 {
        if std::fs::File::open(&lock).unwrap().try_lock().is_ok() {
            break;
        }
        sleep_ms(50).await;
    }
    let app = start(settings, dir).await;
    let (_, p) = app.get("/api/bash/bash_events/search").await;
    let items = p["items"].as_array().unwrap();
    let commands: Vec<&str> = items
        .iter()
        .filter(|e| e["kind"] == "BashCommand")
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        commands,
        [fresh.simple(), interrupted.simple()],
        "old events are swept"
    );
    let (_, p) = app
        .get(&format!(
            "/api/bash/bash_events/search?command_id__eq={}&kind__eq=BashOutput",
            interrupted.simple()
        ))
        .await;
    let outs = p["items"].as_array().unwrap();
    assert_eq!(outs.len(), 2, "{p}");
    assert_eq!(outs[1]["order"], 1);
    assert_eq!(outs[1]["exit_code"], -1);
    assert!(outs[1]["stderr"].as_str().unwrap().contains("interrupted"));
    let (status, _) = app
        .post(
            &format!("/api/bash/commands/{}/terminate", interrupted.simple()),
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "a recovered command is finished");
    let (_, cleared) = app.delete("/api/bash/bash_events").await;
    assert_eq!(
        cleared["cleared_count"], 5,
        "swept events are deleted, not hidden"
    );
}

#[actix_web::test]
async fn socket_replays_streams_and_reports_errors() {
    let app = spawn_app_with(|s| s.websocket.max_subscribers = 2).await;
    let (_, first) = app
        .post(
            "/api/bash/execute_bash_command",
            json!({"command": "echo before"}),
        )
        .await;
    assert_eq!(
        app.ws_status("/sockets/bash-events?resend_mode=since")
            .await
            .err(),
        Some(403)
    );

    let mut ws = app.ws("/sockets/bash-events?resend_mode=all", &[]).await;
    let replay = ws.collect(2, 5).await;
    assert_eq!(replay[0]["kind"], "BashCommand");
    assert_eq!(replay[0]["id"], first["command_id"]);
    assert_eq!(replay[1], first);

    let mut live = app.ws("/sockets/bash-events", &[]).await;
    let mut third = app.ws("/sockets/bash-events", &[]).await;
    match third.next(5).await {
        Some(WsItem::Closed(code, reason)) => {
            assert_eq!(code, Some(1013));
            assert_eq!(reason, "Too many bash event connections");
        }
        other => panic!("expected a 1013 close, got {other:?}"),
    }

    ws.send(&json!({"command": "for i in 1 2 3; do echo n$i; sleep 0.3; done", "timeout": 10}))
        .await;
    let mut frames = vec![];
    for _ in 0..20 {
        let f = ws.json(10).await;
        let done = f["kind"] == "BashOutput" && !f["exit_code"].is_null();
        frames.push(f);
        if done {
            break;
        }
    }
    assert_eq!(frames[0]["kind"], "BashCommand");
    let outputs = &frames[1..];
    assert!(
        outputs.iter().filter(|f| f["exit_code"].is_null()).count() >= 2,
        "chunks stream while the command runs: {outputs:?}"
    );
    let text: String = outputs
        .iter()
        .filter_map(|f| f["stdout"].as_str())
        .collect();
    assert_eq!(text, "n1\nn2\nn3\n");
    // Another socket sees the same frames, in the same order, once.
    let seen = live.collect(frames.len(), 5).await;
    assert_eq!(seen, frames);

    ws.send(&json!({"cwd": 1})).await;
    let err = ws.json(5).await;
    assert_eq!(keys(&err), ["id", "timestamp", "code", "detail", "kind"]);
    assert_eq!(err["kind"], "BashError");
    assert_eq!(err["code"], "ValidationError");
    assert!(err["detail"].as_str().unwrap().contains("command"), "{err}");
    ws.send(&json!({"type": "auth", "session_api_key": "x"}))
        .await;
    assert_eq!(ws.json(5).await["kind"], "BashError");
}

#[actix_web::test]
async fn socket_authentication() {
    let app = spawn_app_with(|s| s.session_api_keys = vec!["bash-key".into()]).await;
    let anonymous = reqwest::Client::new()
        .post(format!("{}/api/bash/start_bash_command", app.address))
        .json(&json!({"command": "true"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    assert_eq!(
        app.ws_status("/sockets/bash-events?session_api_key=wrong")
            .await
            .err(),
        Some(403)
    );

    let mut ws = app.ws("/sockets/bash-events", &[]).await;
    ws.send(&json!({"type": "auth", "session_api_key": "wrong"}))
        .await;
    match ws.next(5).await {
        Some(WsItem::Closed(code, _)) => assert_eq!(code, Some(4001)),
        other => panic!("expected a 4001 close, got {other:?}"),
    }

    let mut ws = app.ws("/sockets/bash-events", &[]).await;
    ws.send(&json!({"type": "auth", "session_api_key": "bash-key"}))
        .await;
    ws.send(&json!({"command": "echo authed"})).await;
    assert_eq!(ws.json(5).await["kind"], "BashCommand");

    let mut ws = app
        .ws("/sockets/bash-events?session_api_key=bash-key", &[])
        .await;
    ws.send(&json!({"command": "echo by-query"})).await;
    // The socket sees every command's events, so late output of the
    // previous command may come first.
    let mut commands = vec![];
    for _ in 0..10 {
        let e = ws.json(5).await;
        if e["kind"] == "BashCommand" {
            commands.push(e["command"].clone());
            if e["command"] == "echo by-query" {
                break;
            }
        }
    }
    assert_eq!(
        commands.last(),
        Some(&json!("echo by-query")),
        "{commands:?}"
    );
}

/// The server binary in `dir`, with session keys, a secret key and one
/// ordinary variable that commands must see.
fn run_server_binary(dir: &std::path::Path) -> ServerProcess {
    let conversations = dir.join("conversations");
    let persistence = dir.join(".openhands");
    ServerProcess::start(
        dir,
        &[
            ("OH_CONVERSATIONS_PATH", conversations.to_str().unwrap()),
            ("OH_PERSISTENCE_DIR", persistence.to_str().unwrap()),
            ("OH_SESSION_API_KEYS_0", "bin-session-key"),
            ("SESSION_API_KEY", "bin-legacy-key"),
            ("OH_SECRET_KEY", "bin-secret-key"),
            ("BASH_API_TEST_VISIBLE", "inherited"),
        ],
    )
}

#[actix_web::test]
async fn commands_never_see_server_keys_and_survive_a_server_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-session-api-key", "bin-session-key".parse().unwrap());
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let post = |address: &str, path: &str, body: Value| {
        let req = client.post(format!("{address}{path}")).json(&body);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let get = |address: &str, path: &str| {
        let req = client.get(format!("{address}{path}"));
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };

    let server = run_server_binary(dir.path());
    let out = post(
        &server.address,
        "/api/bash/execute_bash_command",
        json!({"command": "env"}),
    )
    .await;
    let env = out["stdout"].as_str().expect("env output");
    assert!(env.contains("BASH_API_TEST_VISIBLE=inherited"), "{env}");
    for secret in [
        "SESSION_API_KEY",
        "OH_SECRET_KEY",
        "bin-session-key",
        "bin-legacy-key",
        "bin-secret-key",
    ] {
        assert!(
            !env.contains(secret),
            "{secret} leaked into a command's environment"
        );
    }

    let cmd = post(
        &server.address,
        "/api/bash/start_bash_command",
        json!({"command": "echo $$; sleep 100", "timeout": 300}),
    )
    .await;
    let id = cmd["id"].as_str().unwrap().to_string();
    let search = format!("/api/bash/bash_events/search?command_id__eq={id}&kind__eq=BashOutput");
    let mut pid = None;
    for _ in 0..50 {
        let p = get(&server.address, &search).await;
        if let Some(s) = p["items"][0]["stdout"].as_str() {
            pid = s.trim().parse::<i64>().ok();
            break;
        }
        sleep_ms(50).await;
    }
    let pid = pid.expect("the command printed its pid");
    // Let the periodic flush pass too, then crash the server.
    sleep_ms(700).await;
    server.kill9();
    assert!(
        !process_gone(pid),
        "the command outlives the crashed server"
    );

    let server = run_server_binary(dir.path());
    let p = get(&server.address, &search).await;
    let items = p["items"].as_array().unwrap();
    let last = items.last().expect("outputs");
    assert_eq!(last["exit_code"], -1, "{p}");
    assert!(last["stderr"].as_str().unwrap().contains("interrupted"));
    assert!(
        wait_gone(pid).await,
        "the orphaned command is killed at start-up"
    );
}
