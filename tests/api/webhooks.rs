//! Webhooks: a loopback receiver records what the server POSTs to
//! `{base_url}/events/{hex id}` and `{base_url}/conversations`, and can
//! answer with an error or never answer. Delays in the specs are short so
//! that the tests stay fast; nothing asserts how fast anything is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use agent_actors::webhook::WebhookSpec;
use serde_json::{Value, json};

use crate::helpers::{ServerProcess, TestApp, client_with_key, spawn_app_with};
use crate::llm::{Reply, ScriptedLlm};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    /// Header names lower-cased.
    headers: HashMap<String, String>,
    raw: String,
    body: Value,
    /// What it was answered; `None` while stalled.
    status: Option<u16>,
    /// When it arrived.
    at: Instant,
}

#[derive(Default)]
struct Control {
    /// Answer this many of the next `/events` requests with 503.
    fail_events_next: u32,
    /// Answer every `/events` request with 503.
    fail_events_always: bool,
    /// Never answer anything.
    stall: bool,
}

#[derive(Default)]
struct Shared {
    control: Control,
    received: Vec<Received>,
}

/// A webhook service on a loopback port.
struct Receiver {
    /// `http://127.0.0.1:<port>/hooks/` (the trailing slash is the server's to trim).
    base: String,
    shared: Arc<Mutex<Shared>>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let h = self.handle.clone();
        actix_web::rt::spawn(async move { h.stop(false).await });
    }
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Mutex<Shared>>>,
) -> HttpResponse {
    let raw = String::from_utf8_lossy(&body).into_owned();
    let path = req.path().to_string();
    let (status, stall) = {
        let mut s = shared.lock().unwrap();
        let is_events = path.starts_with("/hooks/events/");
        let stall = s.control.stall;
        let status = if stall {
            None
        } else if is_events && s.control.fail_events_always {
            Some(503)
        } else if is_events && s.control.fail_events_next > 0 {
            s.control.fail_events_next -= 1;
            Some(503)
        } else {
            Some(200)
        };
        s.received.push(Received {
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
            body: serde_json::from_str(&raw).unwrap_or(Value::Null),
            raw,
            path,
            status,
            at: Instant::now(),
        });
        (status, stall)
    };
    if stall {
        // Longer than the server's 30 s request timeout and than any test here.
        actix_web::rt::time::sleep(Duration::from_secs(120)).await;
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status.unwrap_or(200)).unwrap())
        .finish()
}

impl Receiver {
    async fn start() -> Receiver {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let data = web::Data::new(shared.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(64 << 20))
                .default_service(web::to(receive))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Receiver {
            base: format!("http://127.0.0.1:{port}/hooks/"),
            shared,
            handle,
        }
    }

    fn control(&self, f: impl FnOnce(&mut Control)) {
        f(&mut self.shared.lock().unwrap().control);
    }

    fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().received.clone()
    }

    /// Requests to the events URL of conversation `id`.
    fn event_posts(&self, id: &str) -> Vec<Received> {
        let path = format!("/hooks/events/{}", id.replace('-', ""));
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Events of conversation `id` in the requests that were answered 2xx, in order.
    fn delivered(&self, id: &str) -> Vec<Value> {
        self.event_posts(id)
            .into_iter()
            .filter(|r| r.status == Some(200))
            .flat_map(|r| r.body.as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Bodies of the `/conversations` requests, in arrival order.
    fn conversation_posts(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == "/hooks/conversations")
            .collect()
    }

    /// Waits (at most `secs`) until `done` holds; panics with `what` otherwise.
    async fn wait(&self, secs: u64, what: &str, done: impl Fn(&Receiver) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; received: {:#?}",
                self.received()
                    .iter()
                    .map(|r| (&r.path, r.status, r.body.as_array().map(|a| a.len())))
                    .collect::<Vec<_>>()
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A spec for `rx` with quick timings (tests change what they exercise).
fn spec(rx: &Receiver) -> WebhookSpec {
    let mut s = WebhookSpec::new(&rx.base);
    s.flush_delay = 0.2;
    s.retry_delay = 0;
    s
}

fn is_full_state(e: &Value) -> bool {
    e["kind"] == "ConversationStateUpdateEvent" && e["key"] == "full_state"
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap_or("").to_string())
        .collect()
}

async fn create_with_llm(app: &TestApp, llm: &ScriptedLlm) -> String {
    let (status, body) = app
        .post(
            "/api/conversations",
            app.conversation_body(Some(&llm.openai_base)),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_string()
}

#[actix_web::test]
async fn webhook_events_are_batched_full_state_first_with_key_and_headers() {
    let rx = Receiver::start().await;
    let mut hook = spec(&rx);
    hook.event_buffer_size = 3;
    // Long enough that only full buffers leave during the test.
    hook.flush_delay = 600.0;
    hook.headers
        .insert("X-Custom-Token".into(), "custom-value".into());
    let app = spawn_app_with(|s| {
        s.session_api_keys = vec!["first-key".into(), "second-key".into()];
        s.webhooks = vec![hook];
    })
    .await;
    let id = app.create_conversation().await;
    // full_state + system prompt + message + last_user_message_id = 4.
    app.send_message(&id, "one", false).await;
    rx.wait(20, "the first batch", |r| !r.event_posts(&id).is_empty())
        .await;
    // message + last_user_message_id: 4 + 2 = 6, a second full buffer.
    app.send_message(&id, "two", false).await;
    rx.wait(20, "the second batch", |r| r.event_posts(&id).len() >= 2)
        .await;

    let posts = rx.event_posts(&id);
    assert_eq!(posts.len(), 2, "only full buffers leave: {posts:#?}");
    for p in &posts {
        assert_eq!(p.body.as_array().map(Vec::len), Some(3), "{}", p.raw);
        assert_eq!(p.headers["x-session-api-key"], "first-key");
        assert_eq!(p.headers["x-custom-token"], "custom-value");
        assert!(
            p.headers["content-type"].starts_with("application/json"),
            "{:?}",
            p.headers
        );
    }
    let delivered = rx.delivered(&id);
    assert!(is_full_state(&delivered[0]), "{}", delivered[0]);
    assert_eq!(delivered[0]["value"]["execution_status"], "idle");
    assert_eq!(
        delivered[0]["value"]["agent"]["llm"]["api_key"], "**********",
        "snapshots are redacted as on the socket"
    );
    // Everything after the snapshot is the REST log, in order, unchanged.
    let log = app.all_events(&id).await;
    assert_eq!(ids(&delivered[1..]), ids(&log));
    assert_eq!(delivered[1..], log[..]);
}

#[actix_web::test]
async fn webhook_flushes_a_partial_batch_after_flush_delay_not_reset_by_new_events() {
    let rx = Receiver::start().await;
    let mut hook = spec(&rx);
    hook.event_buffer_size = 1000;
    hook.flush_delay = 1.0;
    let app = spawn_app_with(|s| s.webhooks = vec![hook]).await;
    let started = Instant::now();
    let id = app.create_conversation().await;
    // Keep events coming more often than flush_delay, for longer than it:
    // a deadline pushed back by each event would never pass meanwhile.
    for i in 0..15 {
        app.send_message(&id, &format!("m{i}"), false).await;
        actix_web::rt::time::sleep(Duration::from_millis(150)).await;
    }
    let first = rx.event_posts(&id);
    assert!(
        !first.is_empty(),
        "no flush while events kept coming for {:?}",
        started.elapsed()
    );
    let first = &first[0];
    assert!(
        first.at.duration_since(started) >= Duration::from_secs(1),
        "a partial batch waits for flush_delay"
    );
    let batch = first.body.as_array().unwrap();
    assert!(is_full_state(&batch[0]));
    assert!(batch.len() < 1000, "{}", batch.len());
    // The rest leaves a flush_delay later; nothing is lost or repeated.
    let total = app.all_events(&id).await.len() + 1;
    rx.wait(20, "every event", |r| r.delivered(&id).len() >= total)
        .await;
    let delivered = rx.delivered(&id);
    assert_eq!(delivered.len(), total);
    assert_eq!(ids(&delivered[1..]), ids(&app.all_events(&id).await));
}

#[actix_web::test]
async fn conversation_webhooks_after_create_pause_patch_interrupt_and_delete() {
    let rx = Receiver::start().await;
    let mut hook = spec(&rx);
    // Events only leave when the conversation is closed (the delete).
    hook.event_buffer_size = 1000;
    hook.flush_delay = 600.0;
    hook.headers.insert("X-Custom".into(), "c".into());
    let app = spawn_app_with(|s| {
        s.session_api_keys = vec!["k1".into()];
        s.webhooks = vec![hook];
    })
    .await;
    let llm = ScriptedLlm::start(vec![Reply::finish("done")]).await;
    let id = create_with_llm(&app, &llm).await;
    let expect = |n: usize| move |r: &Receiver| r.conversation_posts().len() >= n;
    rx.wait(20, "the create notification", expect(1)).await;

    let (status, _) = app
        .post(&format!("/api/conversations/{id}/pause"), json!({}))
        .await;
    assert_eq!(status, 200);
    rx.wait(20, "the pause notification", expect(2)).await;
    let (status, _) = app
        .patch(
            &format!("/api/conversations/{id}"),
            json!({"title": "Renamed"}),
        )
        .await;
    assert_eq!(status, 200);
    rx.wait(20, "the update notification", expect(3)).await;

    // A run starting and finishing notifies nobody.
    app.send_message(&id, "go", true).await;
    app.wait_status(&id, &["finished"]).await;
    let (status, _) = app
        .post(&format!("/api/conversations/{id}/interrupt"), json!({}))
        .await;
    assert_eq!(status, 200);
    rx.wait(20, "the interrupt notification", expect(4)).await;
    let (_, before_delete) = app.get(&format!("/api/conversations/{id}")).await;
    let events = app.all_events(&id).await;
    let (status, _) = app.delete(&format!("/api/conversations/{id}")).await;
    assert_eq!(status, 200);
    rx.wait(20, "the delete notification", expect(5)).await;

    let posts = rx.conversation_posts();
    // One conversation's notifications arrive in order, so a run's would
    // have come before the delete's.
    assert_eq!(posts.len(), 5, "{posts:#?}");
    let statuses: Vec<&str> = posts
        .iter()
        .map(|p| p.body["execution_status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        statuses,
        ["idle", "paused", "paused", "finished", "deleting"]
    );
    for p in &posts {
        assert_eq!(p.body["id"], id.as_str());
        assert_eq!(p.headers["x-session-api-key"], "k1");
        assert_eq!(p.headers["x-custom"], "c");
    }
    assert_eq!(posts[0].body["title"], Value::Null);
    assert_eq!(posts[2].body["title"], "Renamed");
    assert!(
        posts[0].body["agent"]["llm"]["api_key"].is_null(),
        "secrets are null as in REST"
    );
    // The delete's info is the conversation as it was, only marked deleting.
    let mut deleted = posts[4].body.clone();
    deleted["execution_status"] = before_delete["execution_status"].clone();
    assert_eq!(deleted, before_delete);

    // Closing the conversation sent the events it still held.
    rx.wait(20, "the events held at delete", |r| {
        r.delivered(&id).len() > events.len()
    })
    .await;
    let delivered = rx.delivered(&id);
    assert!(is_full_state(&delivered[0]));
    let persisted: Vec<Value> = delivered
        .iter()
        .filter(|e| !is_full_state(e) && e["kind"] != "StreamingDeltaEvent")
        .cloned()
        .collect();
    assert_eq!(ids(&persisted), ids(&events));
}

#[actix_web::test]
async fn webhook_retries_then_requeues_until_the_downstream_recovers() {
    let rx = Receiver::start().await;
    // 2 attempts per cycle; the third failure ends the first cycle, the
    // batch goes back to the queue, and the next cycle (after flush_delay)
    // delivers it.
    rx.control(|c| c.fail_events_next = 3);
    let mut hook = spec(&rx);
    hook.event_buffer_size = 1;
    hook.num_retries = 1;
    let app = spawn_app_with(|s| s.webhooks = vec![hook]).await;
    let id = app.create_conversation().await;
    rx.wait(20, "a successful delivery", |r| {
        !r.delivered(&id).is_empty()
    })
    .await;
    let posts = rx.event_posts(&id);
    let statuses: Vec<Option<u16>> = posts.iter().map(|p| p.status).collect();
    assert_eq!(
        statuses[..4],
        [Some(503), Some(503), Some(503), Some(200)],
        "{statuses:?}"
    );
    assert!(
        posts[..4].iter().all(|p| p.raw == posts[0].raw),
        "every attempt carries the same batch"
    );
    assert!(is_full_state(&posts[0].body[0]));
    assert_eq!(rx.delivered(&id).len(), 1, "delivered once");

    app.send_message(&id, "after recovery", false).await;
    let total = app.all_events(&id).await.len() + 1;
    rx.wait(20, "the later events", |r| r.delivered(&id).len() >= total)
        .await;
    assert_eq!(
        ids(&rx.delivered(&id)[1..]),
        ids(&app.all_events(&id).await)
    );
}

#[actix_web::test]
async fn a_failing_downstream_keeps_the_newest_events_within_the_bounds() {
    let rx = Receiver::start().await;
    rx.control(|c| c.fail_events_always = true);
    let mut hook = spec(&rx);
    hook.event_buffer_size = 2;
    hook.num_retries = 0;
    hook.max_queue_size = 5;
    let app = spawn_app_with(|s| s.webhooks = vec![hook]).await;
    let llm = ScriptedLlm::start(vec![
        Reply::terminal("echo one"),
        Reply::terminal("echo two"),
        Reply::finish("done"),
    ])
    .await;
    let id = create_with_llm(&app, &llm).await;
    for i in 0..5 {
        app.send_message(&id, &format!("m{i}"), false).await;
    }
    // The conversation runs to its end while every delivery fails.
    app.send_message(&id, "go", true).await;
    app.wait_status(&id, &["finished"]).await;
    let (status, _) = app.get("/health").await;
    assert_eq!(status, 200);
    let log = app.all_events(&id).await;
    assert!(log.len() > 10, "{}", log.len());

    // Two more failed cycles after the last event, then the service recovers.
    let failed = rx.event_posts(&id).len();
    rx.wait(20, "two more failed attempts", |r| {
        r.event_posts(&id).len() >= failed + 2
    })
    .await;
    rx.control(|c| c.fail_events_always = false);
    // The last frame of the stream is the snapshot published when the run ended.
    rx.wait(20, "the held events", |r| {
        r.delivered(&id).last().is_some_and(is_full_state)
    })
    .await;

    let delivered = rx.delivered(&id);
    assert!(
        !delivered.is_empty() && delivered.len() <= 5,
        "at most max_queue_size events survive: {}",
        delivered.len()
    );
    // They are the newest: the persisted ones are the tail of the log, in order.
    let persisted: Vec<Value> = delivered
        .iter()
        .filter(|e| !is_full_state(e))
        .cloned()
        .collect();
    assert_eq!(ids(&persisted), ids(&log[log.len() - persisted.len()..]));
    assert!(
        !delivered.iter().any(|e| e["id"] == log[0]["id"]),
        "the oldest were dropped"
    );
    // Operators see it in /metrics.
    let text = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sample = |name: &str| -> u64 {
        let prefix = format!("{name}{{kind=\"events\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in {text}"))
    };
    assert!(sample("agent_server_webhook_dropped_total") >= (log.len() - 5) as u64);
    assert!(sample("agent_server_webhook_failures_total") >= 2);
    assert!(sample("agent_server_webhook_deliveries_total") >= 1);
}

#[actix_web::test]
async fn a_failing_downstream_is_bounded_by_bytes_too() {
    let rx = Receiver::start().await;
    rx.control(|c| c.fail_events_always = true);
    let mut hook = spec(&rx);
    hook.event_buffer_size = 3;
    hook.num_retries = 0;
    hook.max_queue_bytes = 6_000;
    let app = spawn_app_with(|s| s.webhooks = vec![hook]).await;
    let id = app.create_conversation().await;
    for i in 0..30 {
        app.send_message(
            &id,
            &format!("message number {i} {}", "x".repeat(300)),
            false,
        )
        .await;
    }
    let failed = rx.event_posts(&id).len();
    rx.wait(20, "two more failed attempts", |r| {
        r.event_posts(&id).len() >= failed + 2
    })
    .await;
    rx.control(|c| c.fail_events_always = false);
    let log = app.all_events(&id).await;
    let last = log.last().unwrap()["id"].clone();
    rx.wait(20, "the held events", |r| {
        r.delivered(&id).last().is_some_and(|e| e["id"] == last)
    })
    .await;
    // Bytes of the events themselves: each body minus its brackets and commas.
    let held: usize = rx
        .event_posts(&id)
        .iter()
        .filter(|p| p.status == Some(200))
        .map(|p| p.raw.len() - 2 - (p.body.as_array().unwrap().len() - 1))
        .sum();
    assert!(held <= 6_000, "{held} bytes survived");
    let delivered = rx.delivered(&id);
    assert!(delivered.len() < log.len() / 2, "{}", delivered.len());
    assert_eq!(ids(&delivered), ids(&log[log.len() - delivered.len()..]));
}

#[actix_web::test]
async fn a_stalled_downstream_does_not_delay_the_conversation() {
    let rx = Receiver::start().await;
    rx.control(|c| c.stall = true);
    let mut hook = spec(&rx);
    hook.event_buffer_size = 1;
    let app = spawn_app_with(|s| s.webhooks = vec![hook]).await;
    let llm = ScriptedLlm::start(vec![
        Reply::terminal("echo one"),
        Reply::terminal("echo two"),
        Reply::finish("done"),
    ])
    .await;
    let started = Instant::now();
    let id = create_with_llm(&app, &llm).await;
    rx.wait(20, "a stalled delivery", |r| !r.event_posts(&id).is_empty())
        .await;
    // With the request stalled, the run goes on; each of its events would
    // otherwise wait for 4 attempts of 30 s.
    app.send_message(&id, "go", true).await;
    app.wait_status(&id, &["finished"]).await;
    let (status, _) = app
        .patch(&format!("/api/conversations/{id}"), json!({"title": "t"}))
        .await;
    assert_eq!(status, 200, "answers do not wait for webhooks");
    let (status, _) = app.get("/health").await;
    assert_eq!(status, 200);
    if started.elapsed() < Duration::from_secs(25) {
        assert_eq!(
            rx.event_posts(&id).len(),
            1,
            "one request in flight per conversation feed"
        );
    }
}

#[actix_web::test]
async fn an_evicted_conversation_flushes_its_feed_and_starts_a_new_one_when_revived() {
    let rx = Receiver::start().await;
    let mut hook = spec(&rx);
    hook.event_buffer_size = 1000;
    hook.flush_delay = 600.0;
    let app = spawn_app_with(|s| {
        s.conversations.idle_eviction_seconds = Some(1);
        s.webhooks = vec![hook];
    })
    .await;
    let id = app.create_conversation().await;
    app.send_message(&id, "before eviction", false).await;
    rx.wait(30, "the events held at eviction", |r| {
        !r.event_posts(&id).is_empty()
    })
    .await;
    let first = rx.event_posts(&id)[0].body.clone();
    assert!(is_full_state(&first[0]));
    assert_eq!(first.as_array().unwrap().len(), 4, "{first}");

    app.send_message(&id, "after revival", false).await;
    rx.wait(30, "the revived feed, at its eviction", |r| {
        r.event_posts(&id).len() >= 2
    })
    .await;
    let second = rx.event_posts(&id)[1].body.clone();
    assert!(
        is_full_state(&second[0]),
        "a new feed starts with a snapshot"
    );
    assert_eq!(second.as_array().unwrap().len(), 3, "{second}");
    assert_eq!(second[0]["value"]["last_user_message_id"], first[2]["id"]);
}

#[actix_web::test]
async fn webhooks_from_the_environment_reach_the_service_and_are_flushed_at_shutdown() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("OH_SESSION_API_KEYS_0", "env-key"),
        ("OH_WEBHOOKS_0_BASE_URL", rx.base.as_str()),
        ("OH_WEBHOOKS_0_EVENT_BUFFER_SIZE", "100"),
        ("OH_WEBHOOKS_0_FLUSH_DELAY", "600"),
        ("OH_WEBHOOKS_0_HEADERS", r#"{"X-From-Env": "yes"}"#),
    ];
    let server = ServerProcess::start(dir.path(), &env);
    let client = client_with_key(Some("env-key"));
    let ws = dir.path().join("ws");
    let created: Value = client
        .post(format!("{}/api/conversations", server.address))
        .json(&json!({
            "agent": {"llm": {"model": "openai/test-model", "api_key": "sk-x",
                              "base_url": "http://127.0.0.1:9/v1"},
                      "tools": [{"name": "terminal"}], "kind": "Agent"},
            "workspace": {"working_dir": ws.to_string_lossy(), "kind": "LocalWorkspace"},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    rx.wait(20, "the create notification", |r| {
        !r.conversation_posts().is_empty()
    })
    .await;
    let post = &rx.conversation_posts()[0];
    assert_eq!(post.headers["x-from-env"], "yes");
    assert_eq!(post.headers["x-session-api-key"], "env-key");
    assert!(
        rx.event_posts(&id).is_empty(),
        "held: the buffer is not full"
    );

    // A graceful shutdown sends what the feed holds before exiting.
    assert_eq!(server.terminate(), Some(0));
    let posts = rx.event_posts(&id);
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert!(is_full_state(&posts[0].body[0]));

    // After a restart the conversation is loaded on its next use, and that
    // feed starts with a snapshot of its own.
    let server = ServerProcess::start(dir.path(), &env);
    let status = client
        .post(format!("{}/api/conversations/{id}/events", server.address))
        .json(&json!({"role": "user", "content": [{"type": "text", "text": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    assert_eq!(server.terminate(), Some(0));
    let posts = rx.event_posts(&id);
    assert_eq!(posts.len(), 2, "{posts:#?}");
    let second = posts[1].body.as_array().unwrap();
    assert!(is_full_state(&second[0]));
    assert!(second.iter().any(|e| e["kind"] == "MessageEvent"));
}

#[actix_web::test]
async fn a_restarted_actor_keeps_its_feed_and_a_respawned_one_starts_a_new_one() {
    let rx = Receiver::start().await;
    let mut hook = spec(&rx);
    hook.event_buffer_size = 1;
    let app = spawn_app_with(|s| {
        s.testing.fault_injection = true;
        s.webhooks = vec![hook];
    })
    .await;
    let id = app.create_conversation().await;
    let fault = |kind: &'static str| {
        let path = format!("/api/_test/fault/conversations/{id}/{kind}");
        let app = &app;
        async move {
            let (status, body) = app.post(&path, json!({})).await;
            assert_eq!(status, 200, "{body}");
        }
    };
    let snapshots = |r: &Receiver| r.delivered(&id).iter().filter(|e| is_full_state(e)).count();

    // A supervised restart keeps the publisher, and with it the feed.
    fault("stop").await;
    app.send_message(&id, "after a restart", false).await;
    let total = app.all_events(&id).await.len() + 1;
    rx.wait(20, "the events after the restart", |r| {
        r.delivered(&id).len() >= total
    })
    .await;
    assert_eq!(snapshots(&rx), 1, "no second snapshot after a restart");

    // A panic loses the actor; the respawned one starts a new feed.
    fault("panic").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = app
            .post(
                &format!("/api/conversations/{id}/events"),
                json!({"role": "user", "content": [{"type": "text", "text": "after a panic"}]}),
            )
            .await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the conversation did not come back"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let log = app.all_events(&id).await;
    let last = log.last().unwrap()["id"].clone();
    rx.wait(20, "the events after the respawn", |r| {
        r.delivered(&id).last().is_some_and(|e| e["id"] == last)
    })
    .await;
    let delivered = rx.delivered(&id);
    assert_eq!(
        snapshots(&rx),
        2,
        "a respawned actor sends its own snapshot"
    );
    let second = delivered.iter().rposition(is_full_state).unwrap();
    assert_eq!(
        delivered[second]["value"]["last_user_message_id"],
        log[log.len() - 4]["id"],
        "the new snapshot is the state before the next message"
    );
    let persisted: Vec<Value> = delivered
        .iter()
        .filter(|e| !is_full_state(e))
        .cloned()
        .collect();
    assert_eq!(ids(&persisted), ids(&log), "nothing lost or repeated");
}
