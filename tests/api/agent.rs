//! The agent loop end to end, against the scripted LLM: the seed flow over
//! both protocols (plain and streamed), the file editor, pause and
//! interrupt, iteration cap, LLM failures, confirmation, stuck detection,
//! bad tool calls, admission control, and recovery from an actor crash.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, WsItem, spawn_app, spawn_app_with};
use crate::llm::{Reply, ScriptedLlm};

fn body(app: &TestApp, model: &str, base: &str, stream: bool) -> Value {
    let mut b = app.conversation_body(Some(base));
    b["agent"]["llm"]["model"] = json!(model);
    b["agent"]["llm"]["stream"] = json!(stream);
    b
}

async fn create(app: &TestApp, b: Value) -> String {
    let (status, info) = app.post("/api/conversations", b).await;
    assert_eq!(status, 201, "{info}");
    info["id"].as_str().unwrap().to_string()
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e["kind"].as_str().unwrap() {
            "ConversationStateUpdateEvent" => format!("state:{}", e["key"].as_str().unwrap()),
            k => k.to_string(),
        })
        .collect()
}

async fn run_seed(model: &str, stream: bool) {
    let app = spawn_app().await;
    let todo = app
        .path("ws")
        .join("TODO.md")
        .to_string_lossy()
        .into_owned();
    let llm = ScriptedLlm::start(vec![
        Reply::Tools(
            Some("I'll create the file.".into()),
            vec![(
                "file_editor".into(),
                json!({"command": "create", "path": todo, "file_text": "# TODO\n\n- [ ] one\n- [ ] two\n- [ ] three\n", "security_risk": "LOW"}),
            )],
        ),
        Reply::terminal("cat TODO.md && pwd"),
        Reply::finish("Created TODO.md with three setup tasks."),
    ])
    .await;
    let base = if model.starts_with("anthropic/") {
        &llm.anthropic_base
    } else {
        &llm.openai_base
    };
    let id = create(&app, body(&app, model, base, stream)).await;
    let mut sock = app.ws(&format!("/sockets/events/{id}"), &[]).await;
    assert_eq!(sock.json(5).await["key"], "full_state");
    let text = "Create a TODO.md file with three setup tasks.";
    app.send_message(&id, text, false).await;
    let (status, _) = app
        .post(&format!("/api/conversations/{id}/run"), json!({}))
        .await;
    assert_eq!(status, 200);
    let info = app.wait_status(&id, &["finished", "error", "stuck"]).await;
    assert_eq!(info["execution_status"], "finished", "{info}");
    assert_eq!(
        std::fs::read_to_string(app.path("ws").join("TODO.md")).unwrap(),
        "# TODO\n\n- [ ] one\n- [ ] two\n- [ ] three\n"
    );
    let events = app.all_events(&id).await;
    let k = kinds(&events);
    assert_eq!(k[0], "SystemPromptEvent");
    assert_eq!(k[1], "MessageEvent");
    assert!(k.contains(&"ActionEvent".to_string()));
    assert_eq!(
        events
            .iter()
            .filter(|e| e["kind"] == "ObservationEvent")
            .count(),
        3,
        "{k:?}"
    );
    assert_eq!(k.last().map(String::as_str), Some("state:execution_status"));
    let finish = events
        .iter()
        .rev()
        .find(|e| e["kind"] == "ActionEvent")
        .unwrap();
    assert_eq!(finish["tool_name"], "finish");
    assert_eq!(
        finish["action"],
        json!({"message": "Created TODO.md with three setup tasks.", "kind": "FinishAction"})
    );
    let (_, resp) = app
        .get(&format!("/api/conversations/{id}/agent_final_response"))
        .await;
    assert_eq!(resp["response"], "Created TODO.md with three setup tasks.");
    // Socket: the same events, then the end-of-run snapshot.
    let mut seen = vec![];
    while let Some(WsItem::Json(v)) = sock.next(2).await {
        seen.push(v);
    }
    let persisted: Vec<&Value> = seen
        .iter()
        .filter(|e| e["key"] != "full_state" && e["kind"] != "StreamingDeltaEvent")
        .collect();
    assert_eq!(persisted.len(), events.len());
    let deltas: String = seen
        .iter()
        .filter(|e| e["kind"] == "StreamingDeltaEvent")
        .filter_map(|e| e["content"].as_str())
        .collect();
    if stream {
        assert_eq!(
            deltas, "I'll create the file.",
            "token deltas are streamed to subscribers"
        );
    } else {
        assert!(deltas.is_empty());
    }
    assert_eq!(seen.last().unwrap()["key"], "full_state");
    assert_eq!(
        seen.last().unwrap()["value"]["execution_status"],
        "finished"
    );
    // The LLM saw the tools and the tool results.
    let reqs = llm.agent_requests();
    assert_eq!(reqs.len(), 3);
    let first = &reqs[0];
    if model.starts_with("anthropic/") {
        assert_eq!(first["_path"], "/v1/messages");
        assert_eq!(first["_headers"]["x-api-key"], "sk-test-secret");
        assert_eq!(first["tools"][0]["name"], "terminal");
    } else {
        assert_eq!(first["_path"], "/v1/chat/completions");
        assert_eq!(first["_headers"]["authorization"], "Bearer sk-test-secret");
        assert_eq!(first["tools"][0]["function"]["name"], "terminal");
    }
    // Three agent steps and the automatic title (made with the agent's LLM,
    // so counted with it, as the reference counts it), 100 prompt tokens each.
    let mut stats = Value::Null;
    for _ in 0..100 {
        stats = app.get(&format!("/api/conversations/{id}")).await.1;
        if !stats["title"].is_null() {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!stats["title"].is_null(), "no title: {stats}");
    assert_eq!(
        stats["stats"]["usage_to_metrics"]["default"]["accumulated_token_usage"]["prompt_tokens"],
        400
    );
}

#[actix_web::test]
async fn seed_flow_openai() {
    run_seed("openai/mock-model", false).await;
}

#[actix_web::test]
async fn seed_flow_anthropic_streaming() {
    run_seed("anthropic/claude-sonnet-4-5-20250929", true).await;
}

async fn start_run(app: &TestApp, id: &str) {
    let (status, body) = app
        .post(&format!("/api/conversations/{id}/run"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn agent_app(script: Vec<Reply>) -> (TestApp, ScriptedLlm, String) {
    agent_app_with(script, |_| {}, |_| {}).await
}

async fn agent_app_with(
    script: Vec<Reply>,
    settings: impl FnOnce(&mut agent_server::settings::Settings),
    conv: impl FnOnce(&mut Value),
) -> (TestApp, ScriptedLlm, String) {
    let app = spawn_app_with(settings).await;
    let llm = ScriptedLlm::start(script).await;
    let mut b = body(&app, "openai/mock-model", &llm.openai_base, false);
    conv(&mut b);
    let id = create(&app, b).await;
    (app, llm, id)
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

#[actix_web::test]
async fn file_editor_create_replace_undo() {
    let app = spawn_app().await;
    let f = app
        .path("ws")
        .join("notes.txt")
        .to_string_lossy()
        .into_owned();
    let llm = ScriptedLlm::start(vec![
        Reply::tool(
            "file_editor",
            json!({"command": "create", "path": f, "file_text": "alpha\nbeta\n"}),
        ),
        Reply::tool(
            "file_editor",
            json!({"command": "str_replace", "path": f, "old_str": "beta", "new_str": "gamma"}),
        ),
        Reply::tool(
            "file_editor",
            json!({"command": "str_replace", "path": f, "old_str": "nowhere", "new_str": "x"}),
        ),
        Reply::tool("file_editor", json!({"command": "undo_edit", "path": f})),
        Reply::tool("file_editor", json!({"command": "view", "path": f})),
        Reply::finish("done"),
    ])
    .await;
    let id = create(
        &app,
        body(&app, "openai/mock-model", &llm.openai_base, false),
    )
    .await;
    app.send_message(&id, "edit the file", true).await;
    app.wait_status(&id, &["finished"]).await;
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "alpha\nbeta\n",
        "undo restored the file"
    );
    let events = app.all_events(&id).await;
    let obs = of_kind(&events, "ObservationEvent");
    assert_eq!(obs.len(), 6);
    assert_eq!(obs[0]["observation"]["kind"], "FileEditorObservation");
    assert_eq!(
        obs[0]["observation"]["content"][0]["text"],
        format!("File created successfully at: {f}")
    );
    assert_eq!(obs[1]["observation"]["old_content"], "alpha\nbeta\n");
    assert_eq!(obs[1]["observation"]["new_content"], "alpha\ngamma\n");
    assert_eq!(obs[2]["observation"]["is_error"], true);
    assert!(
        obs[4]["observation"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("     1\talpha")
    );
    // The model saw the error observation with the error header.
    let reqs = llm.agent_requests();
    let last_tool = reqs[3]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "tool")
        .unwrap();
    assert!(
        last_tool["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("[An error occurred during execution.]")
    );
}

#[actix_web::test]
async fn interrupt_stops_a_long_command_and_run_resumes() {
    let (app, llm, id) =
        agent_app(vec![Reply::terminal("sleep 30"), Reply::finish("resumed")]).await;
    app.send_message(&id, "sleep", true).await;
    // Wait until the command is running.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let events = app.all_events(&id).await;
        if !of_kind(&events, "ActionEvent").is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no action appeared");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let t0 = std::time::Instant::now();
    let (status, _) = app
        .post(&format!("/api/conversations/{id}/interrupt"), json!({}))
        .await;
    assert_eq!(status, 200);
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "interrupt answers at once"
    );
    let info = app.get(&format!("/api/conversations/{id}")).await.1;
    assert_eq!(info["execution_status"], "paused");
    let events = app.all_events(&id).await;
    let err = of_kind(&events, "AgentErrorEvent");
    assert_eq!(err.len(), 1);
    assert!(err[0]["error"].as_str().unwrap().contains("interrupted"));
    assert_eq!(of_kind(&events, "InterruptEvent")[0]["source"], "user");
    // Resume: the next scripted answer finishes the run.
    start_run(&app, &id).await;
    app.wait_status(&id, &["finished"]).await;
    assert_eq!(llm.remaining(), 0);
}

#[actix_web::test]
async fn pause_takes_effect_between_steps() {
    let (app, llm, id) = agent_app(vec![
        Reply::Delay(800, Box::new(Reply::terminal("echo step1"))),
        Reply::terminal("echo step2"),
        Reply::finish("done"),
    ])
    .await;
    app.send_message(&id, "go", true).await;
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = app
        .post(&format!("/api/conversations/{id}/pause"), json!({}))
        .await;
    assert_eq!(status, 200);
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    let info = app.get(&format!("/api/conversations/{id}")).await.1;
    assert_eq!(info["execution_status"], "paused");
    let events = app.all_events(&id).await;
    assert_eq!(of_kind(&events, "PauseEvent").len(), 1);
    assert_eq!(
        of_kind(&events, "ObservationEvent").len(),
        1,
        "the step in flight completed, no further step"
    );
    assert_eq!(llm.remaining(), 2);
    start_run(&app, &id).await;
    app.wait_status(&id, &["finished"]).await;
}

#[actix_web::test]
async fn run_while_running_is_409() {
    let (app, _llm, id) =
        agent_app(vec![Reply::Delay(1500, Box::new(Reply::finish("slow")))]).await;
    app.send_message(&id, "go", true).await;
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = app
        .post(&format!("/api/conversations/{id}/run"), json!({}))
        .await;
    assert_eq!(status, 409);
    assert_eq!(
        body["detail"],
        "Conversation already running. Wait for completion or pause first."
    );
    app.wait_status(&id, &["finished"]).await;
    let (status, _) = app
        .post(
            "/api/conversations/11111111-2222-3333-4444-555555555555/run",
            json!({}),
        )
        .await;
    assert_eq!(status, 404);
}

#[actix_web::test]
async fn max_iterations_ends_in_error_with_an_explanation() {
    let (app, _llm, id) = agent_app_with(
        (0..5)
            .map(|i| Reply::terminal(&format!("echo {i}")))
            .collect(),
        |_| {},
        |b| b["max_iterations"] = json!(3),
    )
    .await;
    app.send_message(&id, "loop", true).await;
    app.wait_status(&id, &["error"]).await;
    let events = app.all_events(&id).await;
    let errs = of_kind(&events, "ConversationErrorEvent");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0]["code"], "MaxIterationsReached");
    assert_eq!(
        errs[0]["detail"],
        "Agent reached maximum iterations limit (3)."
    );
    let pos_err = events
        .iter()
        .position(|e| e["kind"] == "ConversationErrorEvent")
        .unwrap();
    let pos_status = events
        .iter()
        .rposition(|e| e["key"] == "execution_status" && e["value"] == "error")
        .unwrap();
    assert!(
        pos_err < pos_status,
        "the error event comes before the status change"
    );
}

#[actix_web::test]
async fn llm_failures_end_runs_with_error_events() {
    for (reply, code) in [
        (
            Reply::Status(401, "bad key".into()),
            "LLMAuthenticationError",
        ),
        (
            Reply::Status(400, "bad request".into()),
            "LLMBadRequestError",
        ),
    ] {
        let (app, llm, id) = agent_app(vec![reply]).await;
        app.send_message(&id, "go", true).await;
        app.wait_status(&id, &["error"]).await;
        let events = app.all_events(&id).await;
        let errs = of_kind(&events, "ConversationErrorEvent");
        assert_eq!(errs[0]["code"], code, "{events:?}");
        assert!(
            !errs[0]["detail"]
                .as_str()
                .unwrap()
                .contains("sk-test-secret"),
            "no key in the detail"
        );
        assert_eq!(llm.agent_requests().len(), 1, "4xx is not retried");
    }
    // 500s are retried up to num_retries attempts, then fail.
    let (app, llm, id) = agent_app_with(
        vec![
            Reply::Status(500, "boom".into()),
            Reply::Status(503, "boom".into()),
            Reply::Status(500, "boom".into()),
        ],
        |_| {},
        |b| b["agent"]["llm"]["num_retries"] = json!(2),
    )
    .await;
    app.send_message(&id, "go", true).await;
    app.wait_status(&id, &["error"]).await;
    assert_eq!(llm.agent_requests().len(), 2);
    // A slow LLM times out.
    let (app, _llm, id) = agent_app_with(
        vec![Reply::Delay(5000, Box::new(Reply::finish("late")))],
        |_| {},
        |b| b["agent"]["llm"]["timeout"] = json!(1),
    )
    .await;
    app.send_message(&id, "go", true).await;
    app.wait_status(&id, &["error"]).await;
    let events = app.all_events(&id).await;
    assert_eq!(
        of_kind(&events, "ConversationErrorEvent")[0]["code"],
        "LLMTimeoutError"
    );
}

#[actix_web::test]
async fn confirmation_accept_and_reject() {
    let (app, _llm, id) = agent_app_with(
        vec![
            Reply::terminal("echo approved"),
            Reply::terminal("echo rejected"),
            Reply::finish("ok"),
        ],
        |_| {},
        |b| b["confirmation_policy"] = json!({"kind": "AlwaysConfirm"}),
    )
    .await;
    app.send_message(&id, "go", true).await;
    app.wait_status(&id, &["waiting_for_confirmation"]).await;
    let events = app.all_events(&id).await;
    assert_eq!(of_kind(&events, "ActionEvent").len(), 1);
    assert_eq!(
        of_kind(&events, "ObservationEvent").len(),
        0,
        "nothing runs before confirmation"
    );
    let (status, _) = app
        .post(
            &format!("/api/conversations/{id}/events/respond_to_confirmation"),
            json!({"accept": true}),
        )
        .await;
    assert_eq!(status, 200);
    app.wait_status(&id, &["waiting_for_confirmation"]).await;
    let events = app.all_events(&id).await;
    let obs = of_kind(&events, "ObservationEvent");
    assert_eq!(obs.len(), 1);
    assert!(
        obs[0]["observation"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("approved")
    );
    let (status, _) = app
        .post(
            &format!("/api/conversations/{id}/events/respond_to_confirmation"),
            json!({"accept": false, "reason": "not this one"}),
        )
        .await;
    assert_eq!(status, 200);
    let info = app.wait_status(&id, &["idle"]).await;
    assert_eq!(info["execution_status"], "idle");
    let events = app.all_events(&id).await;
    let rej = of_kind(&events, "UserRejectObservation");
    assert_eq!(rej.len(), 1);
    assert_eq!(rej[0]["rejection_reason"], "not this one");
    assert_eq!(rej[0]["rejection_source"], "user");
    let (status, _) = app
        .post(
            &format!("/api/conversations/{id}/events/respond_to_confirmation"),
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(status, 422, "accept is required");
}

#[actix_web::test]
async fn repeated_actions_are_stuck() {
    let (app, _llm, id) = agent_app((0..6).map(|_| Reply::terminal("echo same")).collect()).await;
    app.send_message(&id, "go", true).await;
    app.wait_status(&id, &["stuck"]).await;
    let events = app.all_events(&id).await;
    assert_eq!(of_kind(&events, "ObservationEvent").len(), 4);
}

#[actix_web::test]
async fn bad_tool_calls_become_errors_the_model_can_recover_from() {
    let (app, llm, id) = agent_app(vec![
        Reply::tool("nonexistent_tool", json!({})),
        Reply::tool("file_editor", json!({"command": "view"})),
        Reply::Tools(
            None,
            vec![(
                "terminal".into(),
                json!({"command": "echo fine", "bogus": 1}),
            )],
        ),
        Reply::finish("recovered"),
    ])
    .await;
    app.send_message(&id, "go", true).await;
    app.wait_status(&id, &["finished"]).await;
    let events = app.all_events(&id).await;
    let errs = of_kind(&events, "AgentErrorEvent");
    assert_eq!(errs.len(), 3);
    assert!(
        errs[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("Tool 'nonexistent_tool' not found. Available: [")
    );
    let actions = of_kind(&events, "ActionEvent");
    assert_eq!(actions[0]["action"], Value::Null);
    assert_eq!(llm.agent_requests().len(), 4);
}

#[actix_web::test]
async fn text_answer_finishes_and_messages_rerun() {
    let (app, _llm, id) = agent_app(vec![
        Reply::Text("Hello!".into()),
        Reply::Text("Again!".into()),
        Reply::Text("Because.".into()),
    ])
    .await;
    app.send_message(&id, "hi", true).await;
    app.wait_status(&id, &["finished"]).await;
    let (_, resp) = app
        .get(&format!("/api/conversations/{id}/agent_final_response"))
        .await;
    assert_eq!(resp["response"], "Hello!");
    app.send_message(&id, "again", true).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, resp) = app
            .get(&format!("/api/conversations/{id}/agent_final_response"))
            .await;
        if resp["response"] == "Again!" {
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    // The title was generated once, from the first message.
    let (_, info) = app.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(info["title"], "Scripted title");
    let (status, ask) = app
        .post(
            &format!("/api/conversations/{id}/ask_agent"),
            json!({"question": "why?"}),
        )
        .await;
    assert_eq!(status, 200, "{ask}");
    // ask_agent offers the agent's tools, so it takes the next scripted answer.
    assert_eq!(ask["response"], "Because.");
}

#[actix_web::test]
async fn actor_failure_mid_run_is_recovered_without_losing_events() {
    let (app, llm, id) = agent_app_with(
        vec![
            Reply::terminal("sleep 3 && echo slept"),
            Reply::finish("after restart"),
        ],
        |s| s.testing.fault_injection = true,
        |_| {},
    )
    .await;
    let mut sock = app.ws(&format!("/sockets/events/{id}"), &[]).await;
    sock.json(5).await;
    app.send_message(&id, "go", true).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while of_kind(&app.all_events(&id).await, "ActionEvent").is_empty() {
        assert!(std::time::Instant::now() < deadline);
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = app
        .post(
            &format!("/api/_test/fault/conversations/{id}/stop"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let info = app.wait_status(&id, &["error"]).await;
    assert_eq!(info["execution_status"], "error");
    let events = app.all_events(&id).await;
    let errs = of_kind(&events, "AgentErrorEvent");
    assert_eq!(errs.len(), 1, "the interrupted action got an error");
    assert_eq!(
        of_kind(&events, "ConversationErrorEvent")[0]["code"],
        "ServerRestarted"
    );
    // Resumable: /run continues with the next scripted step.
    start_run(&app, &id).await;
    app.wait_status(&id, &["finished"]).await;
    assert_eq!(llm.remaining(), 0);
    let all = app.all_events(&id).await;
    let mut seen = vec![];
    while let Some(WsItem::Json(v)) = sock.next(2).await {
        if v["key"] != "full_state" {
            seen.push(v["id"].as_str().unwrap().to_string());
        }
    }
    let stored: Vec<String> = all
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        seen, stored,
        "the socket saw every event exactly once, in order"
    );
}

#[actix_web::test]
async fn concurrent_runs_are_limited() {
    let app = spawn_app_with(|s| s.max_concurrent_runs = 1).await;
    let llm = ScriptedLlm::start(vec![
        Reply::Delay(1000, Box::new(Reply::finish("first"))),
        Reply::finish("second"),
    ])
    .await;
    let a = create(
        &app,
        body(&app, "openai/mock-model", &llm.openai_base, false),
    )
    .await;
    let b = create(
        &app,
        body(&app, "openai/mock-model", &llm.openai_base, false),
    )
    .await;
    app.send_message(&a, "one", true).await;
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    app.send_message(&b, "two", true).await;
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    let (_, info) = app.get(&format!("/api/conversations/{b}")).await;
    assert_eq!(info["execution_status"], "running");
    assert_eq!(
        info["agent_state"]["run_queue"], "waiting_for_slot",
        "{info}"
    );
    app.wait_status(&a, &["finished"]).await;
    let info = app.wait_status(&b, &["finished"]).await;
    assert!(info["agent_state"].get("run_queue").is_none());
}

#[actix_web::test]
async fn long_histories_are_condensed() {
    let (app, llm, id) = agent_app_with(
        (0..10).map(|i| Reply::terminal(&format!("echo step{i}"))).collect(),
        |_| {},
        |b| {
            let llm = b["agent"]["llm"].clone();
            let mut c = llm.clone();
            c["usage_id"] = json!("condenser");
            b["agent"]["condenser"] = json!({"kind": "LLMSummarizingCondenser", "llm": c, "max_size": 12, "keep_first": 2});
            b["stuck_detection"] = json!(false);
        },
    )
    .await;
    app.send_message(&id, "work for a while", true).await;
    app.wait_status(&id, &["finished"]).await;
    let events = app.all_events(&id).await;
    let conds = of_kind(&events, "Condensation");
    assert!(!conds.is_empty(), "a condensation happened");
    let c = conds[0];
    assert_eq!(c["source"], "environment");
    assert_eq!(c["summary"], "Scripted title");
    assert_eq!(c["summary_offset"], 2);
    assert!(c["forgotten_event_ids"].as_array().unwrap().len() >= 2);
    // After it, the model saw a shorter history that starts with the kept
    // events and the summary.
    let reqs = llm.agent_requests();
    let sizes: Vec<usize> = reqs
        .iter()
        .map(|r| r["messages"].as_array().unwrap().len())
        .collect();
    assert!(
        sizes.windows(2).any(|w| w[1] < w[0]),
        "the prompt shrank: {sizes:?}"
    );
    let last = reqs.last().unwrap()["messages"].as_array().unwrap();
    assert!(
        last.iter()
            .any(|m| m["content"].to_string().contains("Scripted title"))
    );
    let (_, info) = app.get(&format!("/api/conversations/{id}")).await;
    assert!(info["stats"]["usage_to_metrics"].get("condenser").is_some());
    // On demand, when idle.
    let before = of_kind(&app.all_events(&id).await, "Condensation").len();
    let (status, answer) = app
        .post(&format!("/api/conversations/{id}/condense"), json!({}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        of_kind(&app.all_events(&id).await, "Condensation").len(),
        before + 1
    );
    // Without a condenser it is refused.
    let plain = create(
        &app,
        body(&app, "openai/mock-model", &llm.openai_base, false),
    )
    .await;
    let (status, _) = app
        .post(&format!("/api/conversations/{plain}/condense"), json!({}))
        .await;
    assert_eq!(status, 400);
}

#[actix_web::test]
async fn agent_context_skills_and_suffixes_reach_the_model() {
    let (app, llm, id) = agent_app_with(
        vec![Reply::Text("ok".into())],
        |_| {},
        |b| {
            b["agent"]["agent_context"] = json!({
                "skills": [
                    {"name": "house-rules", "content": "Always write tests first.", "trigger": null},
                    {"name": "docker", "content": "Use docker compose v2.", "trigger": {"type": "keyword", "keywords": ["docker"]}}
                ],
                "system_message_suffix": "Answer briefly.",
                "user_message_suffix": "Reply in English."
            });
        },
    )
    .await;
    app.send_message(&id, "Please fix the Docker setup", true)
        .await;
    app.wait_status(&id, &["finished"]).await;
    let events = app.all_events(&id).await;
    let system = events[0]["system_prompt"]["text"].as_str().unwrap();
    assert!(system.contains("Always write tests first.") && system.contains("Answer briefly."));
    let msg = of_kind(&events, "MessageEvent")[0];
    assert_eq!(msg["activated_skills"], json!(["docker"]));
    assert_eq!(msg["extended_content"].as_array().unwrap().len(), 2);
    let (_, info) = app.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(info["activated_knowledge_skills"], json!(["docker"]));
    let req = &llm.agent_requests()[0];
    let user = req["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "user")
        .unwrap();
    let text = user["content"].to_string();
    assert!(
        text.contains("Use docker compose v2.") && text.contains("Reply in English."),
        "{text}"
    );
}

#[actix_web::test]
async fn a_fork_keeps_secrets_the_store_could_not_keep() {
    // No OH_SECRET_KEY and no session key: secrets live in memory only.
    let app = spawn_app_with(|s| {
        s.secret_key = None;
        s.session_api_keys.clear();
    })
    .await;
    let llm = ScriptedLlm::start(vec![
        Reply::terminal("echo \"token=$FORK_TOKEN\" > fork-secret.txt"),
        Reply::finish("done"),
    ])
    .await;
    let mut b = body(&app, "openai/m", &llm.openai_base, false);
    b["secrets"] = json!({"FORK_TOKEN": "in-memory-only-value"});
    let id = create(&app, b).await;
    let (status, fork) = app
        .post(&format!("/api/conversations/{id}/fork"), json!({}))
        .await;
    assert_eq!(status, 201, "{fork}");
    let fid = fork["id"].as_str().unwrap().to_string();
    app.send_message(&fid, "write the token", true).await;
    let info = app.wait_status(&fid, &["finished", "error", "stuck"]).await;
    assert_eq!(info["execution_status"], "finished", "{info}");
    let written = std::fs::read_to_string(app.path("ws").join("fork-secret.txt")).unwrap();
    assert_eq!(written.trim(), "token=in-memory-only-value");
}

#[actix_web::test]
async fn a_slow_ask_agent_keeps_its_conversation_from_eviction() {
    let (app, llm, id) = agent_app_with(
        vec![
            Reply::finish("done"),
            Reply::Delay(3000, Box::new(Reply::Text("Because.".into()))),
        ],
        |s| s.conversations.idle_eviction_seconds = Some(1),
        |_| {},
    )
    .await;
    app.send_message(&id, "hi", true).await;
    app.wait_status(&id, &["finished"]).await;
    // Idle for longer than the eviction age before the question.
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    let (status, ask) = app
        .post(
            &format!("/api/conversations/{id}/ask_agent"),
            json!({"question": "why?"}),
        )
        .await;
    assert_eq!(status, 200, "{ask}");
    assert_eq!(ask["response"], "Because.");
    assert_eq!(
        llm.agent_requests().len(),
        2,
        "the question was asked once, not again after an eviction"
    );
}

/// A message sent while a tool runs is recorded at once, but the LLM sees
/// it after the tool's result: providers refuse anything between an
/// assistant turn's tool calls and their results.
#[actix_web::test]
async fn a_message_sent_while_a_tool_runs_reaches_the_llm_after_the_result() {
    let (app, llm, id) = agent_app_with(
        vec![
            Reply::terminal("sleep 2; echo slept"),
            Reply::finish("done"),
        ],
        |_| {},
        |_| {},
    )
    .await;
    app.send_message(&id, "go", true).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while of_kind(&app.all_events(&id).await, "ActionEvent").is_empty() {
        assert!(std::time::Instant::now() < deadline);
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    app.send_message(&id, "also this", true).await;
    app.wait_status(&id, &["finished"]).await;
    let requests = llm.agent_requests();
    let roles: Vec<&str> = requests[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "user"]);
}
