//! Flows the official Python client drives, reproduced over raw HTTP: each
//! test pins a server bug the interop scenarios (`tests/interop/`) found,
//! so that it stays fixed without Python. Scripted LLM only; loopback only.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};
use crate::llm::{Reply, ScriptedLlm};

async fn conversation(app: &TestApp, llm: &ScriptedLlm, tweak: impl FnOnce(&mut Value)) -> String {
    let mut body = app.conversation_body(Some(&llm.openai_base));
    body["agent"]["llm"]["model"] = json!("openai/mock-model");
    tweak(&mut body);
    let (status, info) = app.post("/api/conversations", body).await;
    assert_eq!(status, 201, "{info}");
    info["id"].as_str().expect("id").to_string()
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// The client's `pause()` then `run()`: the pause answer must come after the
/// loop stopped, so the `/run` right behind it resumes instead of getting a
/// 409 while the paused step is still winding down.
#[actix_web::test]
async fn run_right_after_pause_resumes() {
    let app = spawn_app().await;
    let llm = ScriptedLlm::start(vec![
        Reply::Delay(1500, Box::new(Reply::terminal("echo step1"))),
        Reply::finish("done"),
    ])
    .await;
    let id = conversation(&app, &llm, |_| {}).await;
    app.send_message(&id, "go", true).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while llm.requests().is_empty() {
        assert!(Instant::now() < deadline, "the LLM was never asked");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = app
        .post(&format!("/api/conversations/{id}/pause"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let events = app.all_events(&id).await;
    assert_eq!(
        of_kind(&events, "ObservationEvent").len(),
        1,
        "pause answered before the step in flight finished"
    );
    let position = |kind: &str| events.iter().position(|e| e["kind"] == kind);
    assert!(
        position("ObservationEvent") < position("PauseEvent"),
        "the PauseEvent must follow the step's observation"
    );
    let (_, info) = app.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(info["execution_status"], "paused", "{info}");
    let (status, body) = app
        .post(&format!("/api/conversations/{id}/run"), json!({}))
        .await;
    assert_eq!(status, 200, "run right after pause: {body}");
    let info = app.wait_status(&id, &["finished", "error", "paused"]).await;
    assert_eq!(info["execution_status"], "finished", "{info}");
    assert_eq!(llm.remaining(), 0);
}

/// The client's `callbacks=` see `StreamingDeltaEvent` frames; every delta of
/// a turn must reach the socket before the events that turn produced.
#[actix_web::test]
async fn streamed_deltas_precede_the_events_they_build() {
    let app = spawn_app().await;
    let text =
        "A fairly long streamed thought, so that it arrives in many small token deltas. ".repeat(4);
    let llm = ScriptedLlm::start(vec![
        Reply::Tools(
            Some(text.clone()),
            vec![(
                "terminal".into(),
                json!({"command": "echo streamed", "security_risk": "LOW"}),
            )],
        ),
        Reply::finish("done"),
    ])
    .await;
    let id = conversation(&app, &llm, |b| b["agent"]["llm"]["stream"] = json!(true)).await;
    let mut sock = app.ws(&format!("/sockets/events/{id}"), &[]).await;
    assert_eq!(sock.json(5).await["key"], "full_state");
    app.send_message(&id, "stream", true).await;
    let mut frames = vec![];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "no end-of-run snapshot");
        let f = sock.json(10).await;
        let done = f["key"] == "full_state" && f["value"]["execution_status"] == "finished";
        frames.push(f);
        if done {
            break;
        }
    }
    let last_delta = frames
        .iter()
        .rposition(|f| f["kind"] == "StreamingDeltaEvent")
        .expect("no StreamingDeltaEvent frame");
    let first_action = frames
        .iter()
        .position(|f| f["kind"] == "ActionEvent")
        .expect("no ActionEvent frame");
    assert!(
        last_delta < first_action,
        "a delta (frame {last_delta}) came after the ActionEvent (frame {first_action})"
    );
    let spelled: String = frames
        .iter()
        .filter(|f| f["kind"] == "StreamingDeltaEvent")
        .filter_map(|f| f["content"].as_str())
        .collect();
    assert_eq!(spelled, text);
}

/// `ask_agent` after tool use: the provider only accepts a history with tool
/// calls when the tools are offered (the Anthropic API refuses otherwise), so
/// the question carries them, and tells the model to answer in text.
#[actix_web::test]
async fn ask_agent_offers_the_tools_and_asks_for_text() {
    let app = spawn_app().await;
    let llm = ScriptedLlm::start(vec![
        Reply::terminal("echo asked"),
        Reply::finish("done"),
        Reply::Text("It echoed once.".into()),
    ])
    .await;
    let id = conversation(&app, &llm, |b| {
        b["agent"]["llm"]["model"] = json!("anthropic/claude-sonnet-4-5-20250929");
        b["agent"]["llm"]["base_url"] = json!(llm.anthropic_base);
    })
    .await;
    app.send_message(&id, "echo", true).await;
    app.wait_status(&id, &["finished"]).await;
    let before = app.all_events(&id).await.len();
    let (status, body) = app
        .post(
            &format!("/api/conversations/{id}/ask_agent"),
            json!({"question": "What ran?"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"response": "It echoed once."}));
    let ask = llm.requests().pop().expect("the question reached the LLM");
    let tools: Vec<&str> = ask["tools"]
        .as_array()
        .expect("tools offered")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(tools.contains(&"terminal"), "{tools:?}");
    let history = ask["messages"].to_string();
    assert!(
        history.contains("tool_use"),
        "the history lost its tool calls"
    );
    let last = ask["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .to_string();
    assert!(last.contains("What ran?"), "{last}");
    assert!(last.contains("do not call any tool"), "{last}");
    assert_eq!(
        app.all_events(&id).await.len(),
        before,
        "ask_agent recorded events"
    );
    // The question is counted under its own LLM, as the reference counts it,
    // and the count survives a reload of the record.
    let (_, info) = app.get(&format!("/api/conversations/{id}")).await;
    let usage = &info["stats"]["usage_to_metrics"];
    assert_eq!(
        usage["ask-agent-llm"]["token_usages"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "{usage}"
    );
    // Two agent steps and the automatic title, all made with the agent's LLM.
    assert_eq!(
        usage["default"]["token_usages"].as_array().map(Vec::len),
        Some(3),
        "{usage}"
    );
}
