//! Supervision, proven with configuration-gated fault injection: a bash
//! command's actor and an event socket's session fail on purpose; what
//! they owned comes back from the store, subscribers resume, nothing is
//! lost or repeated, and the server stays usable.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{WsItem, spawn_app_with};

#[actix_web::test]
async fn a_failed_bash_actor_leaves_a_complete_record_and_a_usable_server() {
    let app = spawn_app_with(|s| s.testing.fault_injection = true).await;
    let mut sock = app.ws("/sockets/bash-events", &[]).await;
    let (status, cmd) = app
        .post(
            "/api/bash/start_bash_command",
            json!({"command": "for i in $(seq 1 100); do echo line$i; sleep 0.05; done", "timeout": 30}),
        )
        .await;
    assert_eq!(status, 200, "{cmd}");
    let id = cmd["id"].as_str().unwrap().to_string();
    actix_web::rt::time::sleep(Duration::from_millis(600)).await;
    let (status, body) = app
        .post(&format!("/api/_test/fault/bash/{id}"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    // The restarted actor records the command as ended, with the output it had.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let outputs = loop {
        let (_, page) = app
            .get(&format!(
                "/api/bash/bash_events/search?command_id__eq={id}&kind__eq=BashOutput&limit=100"
            ))
            .await;
        let items = page["items"].as_array().unwrap().clone();
        if items.iter().any(|o| !o["exit_code"].is_null()) {
            break items;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no final output after the fault"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    };
    let finals: Vec<&Value> = outputs
        .iter()
        .filter(|o| !o["exit_code"].is_null())
        .collect();
    assert_eq!(finals.len(), 1, "exactly one final output");
    assert_eq!(finals[0]["exit_code"], -1);
    let orders: Vec<u64> = outputs
        .iter()
        .map(|o| o["order"].as_u64().unwrap())
        .collect();
    assert_eq!(
        orders,
        (0..orders.len() as u64).collect::<Vec<_>>(),
        "orders are gap-free"
    );
    let text: String = outputs
        .iter()
        .filter_map(|o| o["stdout"].as_str())
        .collect();
    assert!(text.starts_with("line1\n"), "{text}");
    // The socket saw every event once.
    let mut seen = vec![];
    while let Some(WsItem::Json(v)) = sock.next(2).await {
        seen.push(v["id"].as_str().unwrap().to_string());
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no event twice on the socket");
    assert_eq!(seen.len(), 1 + outputs.len(), "the command and each output");
    // And the next command runs normally.
    let (status, out) = app
        .post(
            "/api/bash/execute_bash_command",
            json!({"command": "echo after", "timeout": 10}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(out["stdout"], "after\n");
    assert_eq!(out["exit_code"], 0);
    let (status, _) = app
        .post(
            "/api/_test/fault/bash/11111111222233334444555555555555",
            json!({}),
        )
        .await;
    assert_eq!(status, 404);
}

#[actix_web::test]
async fn a_crashed_socket_session_resumes_without_loss_or_duplicates() {
    let app = spawn_app_with(|s| s.testing.fault_injection = true).await;
    let id = app.create_conversation().await;
    let mut watcher = app.ws(&format!("/sockets/events/{id}"), &[]).await;
    watcher.json(5).await;
    let mut sock = app.ws(&format!("/sockets/events/{id}"), &[]).await;
    sock.json(5).await;
    app.send_message(&id, "one", false).await;
    let mut got: Vec<String> = sock
        .collect(3, 5)
        .await
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    sock.send(&json!({"type": "_test_fault"})).await;
    // The session dies without a close frame (as a crash would).
    assert!(matches!(
        sock.next(5).await,
        None | Some(WsItem::Closed(..))
    ));
    // Events keep coming meanwhile.
    app.send_message(&id, "two", false).await;
    let mut resumed = app
        .ws(
            &format!("/sockets/events/{id}?after_seq={}", got.len()),
            &[],
        )
        .await;
    assert_eq!(resumed.json(5).await["key"], "full_state");
    app.send_message(&id, "three", false).await;
    while let Some(WsItem::Json(v)) = resumed.next(2).await {
        got.push(v["id"].as_str().unwrap().to_string());
    }
    let stored: Vec<String> = app
        .all_events(&id)
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, stored, "resumed with no gap and no duplicate");
    // The other subscriber was not disturbed.
    let other: Vec<String> = watcher
        .collect(stored.len(), 3)
        .await
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(other, stored);
    // Off by default.
    let plain = crate::helpers::spawn_app().await;
    let cid = plain.create_conversation().await;
    let mut s = plain.ws(&format!("/sockets/events/{cid}"), &[]).await;
    s.json(5).await;
    s.send(&json!({"type": "_test_fault"})).await;
    let mut error_seen = false;
    while let Some(item) = s.next(2).await {
        match item {
            WsItem::Json(v) if v["kind"] == "ServerErrorEvent" => error_seen = true,
            WsItem::Json(_) => {}
            WsItem::Closed(..) => panic!("the socket must stay open when fault injection is off"),
        }
    }
    assert!(
        error_seen,
        "without fault injection the frame is just an invalid message"
    );
}
