//! Persistence across restarts of the real binary: clean (SIGTERM) and
//! `kill -9`, secrets sealed at rest, a changed secret key.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{ServerProcess, client_with_key};

fn body(dir: &std::path::Path) -> Value {
    json!({
        "agent": {"llm": {"model": "openai/m", "api_key": "sk-PLANTED-llm-key-123"}, "tools": [{"name": "terminal"}]},
        "workspace": {"working_dir": dir.join("ws").to_string_lossy()},
        "secrets": {"GH_TOKEN": {"kind": "StaticSecret", "value": "ghp-PLANTED-secret-456"}},
    })
}

async fn events(client: &reqwest::Client, base: &str, id: &str) -> Vec<Value> {
    let mut out = vec![];
    let mut page: Option<String> = None;
    loop {
        let url = match &page {
            Some(p) => format!("{base}/api/conversations/{id}/events/search?page_id={p}"),
            None => format!("{base}/api/conversations/{id}/events/search"),
        };
        let v: Value = client.get(url).send().await.unwrap().json().await.unwrap();
        out.extend(v["items"].as_array().unwrap().iter().cloned());
        match v["next_page_id"].as_str() {
            Some(p) => page = Some(p.into()),
            None => return out,
        }
    }
}

fn grep_dir(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut hits = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_none_or(|x| x != "log")
                && let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

async fn full_state(port: u16, id: &str, key: &str) -> Value {
    let (_, mut framed) = awc::Client::new()
        .ws(format!(
            "ws://127.0.0.1:{port}/sockets/events/{id}?session_api_key={key}"
        ))
        .connect()
        .await
        .expect("ws");
    use futures_util::StreamExt;
    loop {
        match framed.next().await.expect("frame").expect("ok") {
            awc::ws::Frame::Text(t) => return serde_json::from_slice(&t).unwrap(),
            _ => continue,
        }
    }
}

#[actix_web::test]
async fn clean_restart_keeps_everything_and_secrets_stay_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("OH_SESSION_API_KEYS_0", "key-a"),
        ("OH_SECRET_KEY", "secret-one"),
    ];
    let server = ServerProcess::start(dir.path(), &env);
    let client = client_with_key(Some("key-a"));
    let info: Value = client
        .post(format!("{}/api/conversations", server.address))
        .json(&body(dir.path()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = info["id"].as_str().unwrap().to_string();
    for i in 0..3 {
        let r = client
            .post(format!("{}/api/conversations/{id}/events", server.address))
            .json(&json!({"role": "user", "content": [{"type": "text", "text": format!("m{i}")}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let before = events(&client, &server.address, &id).await;
    assert_eq!(
        full_state(server.port, &id, "key-a").await["value"]["agent"]["llm"]["api_key"],
        "**********"
    );
    assert_eq!(server.terminate(), Some(0), "SIGTERM is a clean exit");

    for secret in [
        &b"sk-PLANTED-llm-key-123"[..],
        b"ghp-PLANTED-secret-456",
        b"key-a",
        b"secret-one",
    ] {
        let hits = grep_dir(dir.path(), secret);
        assert!(
            hits.is_empty(),
            "{} found in {hits:?}",
            String::from_utf8_lossy(secret)
        );
    }

    let server = ServerProcess::start(dir.path(), &env);
    let after = events(&client, &server.address, &id).await;
    assert_eq!(after, before, "every event back, in order");
    let state = full_state(server.port, &id, "key-a").await;
    assert_eq!(
        state["value"]["agent"]["llm"]["api_key"], "**********",
        "the sealed key was opened again"
    );
    assert_eq!(
        state["value"]["secret_registry"]["secret_sources"]["GH_TOKEN"]["value"],
        "**********"
    );
    server.terminate();

    // Another OH_SECRET_KEY: a warning, the values unavailable, no crash.
    let server = ServerProcess::start(
        dir.path(),
        &[
            ("OH_SESSION_API_KEYS_0", "key-a"),
            ("OH_SECRET_KEY", "secret-two"),
        ],
    );
    let state = full_state(server.port, &id, "key-a").await;
    assert!(
        state["value"]["agent"]["llm"].get("api_key").is_none(),
        "unreadable secret is unavailable"
    );
    assert_eq!(events(&client, &server.address, &id).await, before);
    assert!(
        server.log_text().contains("OH_SECRET_KEY differs"),
        "{}",
        server.log_text()
    );
    server.terminate();
}

#[actix_web::test]
async fn kill_9_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let client = client_with_key(None);
    let mut acknowledged: Vec<String> = vec![];
    let mut id = String::new();
    for round in 0..3 {
        let server = ServerProcess::start(dir.path(), &[]);
        if round == 0 {
            let info: Value = client
                .post(format!("{}/api/conversations", server.address))
                .json(&body(dir.path()))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            id = info["id"].as_str().unwrap().to_string();
        }
        // Post messages concurrently; kill the server in the middle.
        let addr = server.address.clone();
        let cid = id.clone();
        let c = client.clone();
        let writer = actix_web::rt::spawn(async move {
            let mut ok = vec![];
            for i in 0..400 {
                let text = format!("r{round}-m{i}");
                let r = c
                    .post(format!("{addr}/api/conversations/{cid}/events"))
                    .json(&json!({"role": "user", "content": [{"type": "text", "text": text}]}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => ok.push(text),
                    _ => break,
                }
            }
            ok
        });
        actix_web::rt::time::sleep(Duration::from_millis(400 + 150 * round)).await;
        server.kill9();
        acknowledged.extend(writer.await.unwrap());
    }
    let server = ServerProcess::start(dir.path(), &[]);
    let stored = events(&client, &server.address, &id).await;
    let texts: Vec<String> = stored
        .iter()
        .filter(|e| e["kind"] == "MessageEvent")
        .map(|e| {
            e["llm_message"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        acknowledged.len() > 10,
        "the test posted messages ({})",
        acknowledged.len()
    );
    // Every acknowledged message is there exactly once, in order; at most the
    // in-flight one of each round may be there unacknowledged.
    let positions: Vec<usize> = acknowledged
        .iter()
        .map(|a| {
            let hits: Vec<usize> = texts
                .iter()
                .enumerate()
                .filter(|(_, t)| *t == a)
                .map(|(i, _)| i)
                .collect();
            assert_eq!(hits.len(), 1, "{a} present exactly once");
            hits[0]
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "in order");
    assert!(texts.len() <= acknowledged.len() + 3);
    // Seqs stay gap-free: count equals the number of events.
    let n: u64 = client
        .get(format!(
            "{}/api/conversations/{id}/events/count",
            server.address
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(n as usize, stored.len());
    server.terminate();
}

/// Many `kill -9`s while agents run and messages are posted: every
/// acknowledged message is there exactly once and in order, every event id
/// is unique, every conversation loads and none is left "running".
#[actix_web::test]
async fn repeated_kill_9_during_runs() {
    use crate::llm::{Reply, ScriptedLlm};
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(
        (0..400)
            .map(|i| Reply::Delay(20, Box::new(Reply::terminal(&format!("echo step{i}")))))
            .collect(),
    )
    .await;
    let client = client_with_key(None);
    let mut ids: Vec<String> = vec![];
    let mut acknowledged: Vec<Vec<String>> = vec![vec![]; 3];
    for round in 0..5u64 {
        let server = ServerProcess::start(dir.path(), &[]);
        if round == 0 {
            for _ in 0..3 {
                let mut b = body(dir.path());
                b["agent"]["llm"]["base_url"] = json!(llm.openai_base);
                b["agent"]["llm"]["num_retries"] = json!(1);
                b["stuck_detection"] = json!(false);
                let info: Value = client
                    .post(format!("{}/api/conversations", server.address))
                    .json(&b)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                ids.push(info["id"].as_str().unwrap().to_string());
            }
        }
        let mut writers = vec![];
        for (n, id) in ids.iter().enumerate() {
            let (c, addr, id) = (client.clone(), server.address.clone(), id.clone());
            writers.push(actix_web::rt::spawn(async move {
                let mut ok = vec![];
                for i in 0..200 {
                    let text = format!("c{n}-r{round}-m{i}");
                    let r = c
                        .post(format!("{addr}/api/conversations/{id}/events"))
                        .json(&json!({"role": "user", "content": [{"type": "text", "text": text}], "run": i % 5 == 0}))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 200 => ok.push(text),
                        _ => break,
                    }
                    actix_web::rt::time::sleep(Duration::from_millis(5)).await;
                }
                ok
            }));
        }
        actix_web::rt::time::sleep(Duration::from_millis(300 + 170 * round)).await;
        server.kill9();
        for (n, w) in writers.into_iter().enumerate() {
            acknowledged[n].extend(w.await.unwrap());
        }
    }
    let server = ServerProcess::start(dir.path(), &[]);
    for (n, id) in ids.iter().enumerate() {
        let info: Value = client
            .get(format!("{}/api/conversations/{id}", server.address))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_ne!(info["execution_status"], "running", "{info}");
        let stored = events(&client, &server.address, id).await;
        let unique: std::collections::HashSet<&str> =
            stored.iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert_eq!(unique.len(), stored.len(), "no event is stored twice");
        let texts: Vec<String> = stored
            .iter()
            .filter(|e| e["kind"] == "MessageEvent" && e["source"] == "user")
            .filter_map(|e| {
                e["llm_message"]["content"][0]["text"]
                    .as_str()
                    .map(str::to_string)
            })
            .filter(|t| t.starts_with(&format!("c{n}-")))
            .collect();
        assert!(acknowledged[n].len() > 5, "conversation {n} got messages");
        let mut last = None;
        for a in &acknowledged[n] {
            let hits: Vec<usize> = texts
                .iter()
                .enumerate()
                .filter(|(_, t)| *t == a)
                .map(|(i, _)| i)
                .collect();
            assert_eq!(hits.len(), 1, "{a} is stored exactly once");
            assert!(last.is_none_or(|l| hits[0] > l), "{a} is in order");
            last = Some(hits[0]);
        }
        // Every action has exactly one result (an observation, or the
        // restart error for one interrupted by a kill).
        let calls: Vec<&str> = stored
            .iter()
            .filter(|e| e["kind"] == "ActionEvent")
            .map(|e| e["tool_call_id"].as_str().unwrap())
            .collect();
        for call in calls {
            let results = stored
                .iter()
                .filter(|e| {
                    matches!(
                        e["kind"].as_str(),
                        Some("ObservationEvent" | "AgentErrorEvent" | "UserRejectObservation")
                    ) && e["tool_call_id"] == call
                })
                .count();
            assert!(results <= 1, "tool call {call} has {results} results");
        }
    }
    server.terminate();
}
