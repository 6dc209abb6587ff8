//! Conversation routes: create, read, list, count, update, delete, with
//! good and bad input, and the JSON shapes the Python client relies on.

use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[actix_web::test]
async fn create_get_and_shapes() {
    let app = spawn_app().await;
    let (status, info) = app
        .post("/api/conversations", app.conversation_body(None))
        .await;
    assert_eq!(status, 201, "{info}");
    let id = info["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "hyphenated id");
    let keys: Vec<&String> = info.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "id",
            "workspace",
            "persistence_dir",
            "max_iterations",
            "stuck_detection",
            "execution_status",
            "confirmation_policy",
            "security_analyzer",
            "activated_knowledge_skills",
            "invoked_skills",
            "blocked_actions",
            "blocked_messages",
            "last_user_message_id",
            "stats",
            "secret_registry",
            "agent_state",
            "hook_config",
            "title",
            "metrics",
            "created_at",
            "updated_at",
            "tags",
            "current_model_id",
            "available_models",
            "supports_runtime_model_switch",
            "agent"
        ]
    );
    assert_eq!(info["execution_status"], "idle");
    assert_eq!(
        info["agent"]["llm"]["api_key"],
        Value::Null,
        "secrets are null in ConversationInfo"
    );
    assert_eq!(info["agent"]["kind"], "Agent");
    assert_eq!(info["agent"]["llm"].as_object().unwrap().len(), 49);
    assert!(info["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(
        info["persistence_dir"]
            .as_str()
            .unwrap()
            .ends_with(&id.replace('-', ""))
    );
    assert!(app.path("ws").is_dir(), "working_dir is created");

    let (status, got) = app.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got["id"], info["id"]);
    // The hex form of the id is accepted too.
    let (status, _) = app
        .get(&format!("/api/conversations/{}", id.replace('-', "")))
        .await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn conversation_id_is_honoured_and_idempotent() {
    let app = spawn_app().await;
    let mut body = app.conversation_body(None);
    body["conversation_id"] = json!("11111111-2222-3333-4444-555555555555");
    let (status, info) = app.post("/api/conversations", body.clone()).await;
    assert_eq!(status, 201);
    assert_eq!(info["id"], "11111111-2222-3333-4444-555555555555");
    let (status, again) = app.post("/api/conversations", body).await;
    assert_eq!(status, 200, "existing id answers 200");
    assert_eq!(again["id"], info["id"]);
    let (_, n) = app.get("/api/conversations/count").await;
    assert_eq!(n, 1);
}

#[actix_web::test]
async fn bad_input_gets_clear_errors() {
    let app = spawn_app().await;
    let (status, _) = app
        .get("/api/conversations/11111111-2222-3333-4444-555555555555")
        .await;
    assert_eq!(status, 404);
    let (status, body) = app.get("/api/conversations/not-a-uuid").await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["path", "conversation_id"]));
    let (status, body) = app.get("/api/conversations/search?limit=101").await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = app.get("/api/conversations/search?limit=0").await;
    assert_eq!(status, 422);
    let (status, _) = app.get("/api/conversations/search?status=bogus").await;
    assert_eq!(status, 422);
    let (status, body) = app
        .post(
            "/api/conversations",
            json!({"agent": {"llm": {"model": "m"}}}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "workspace"]));
    let (status, body) = app
        .post(
            "/api/conversations",
            json!({"workspace": {"working_dir": "/tmp/x"}, "agent": {"kind": "Nope", "llm": {}}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = app.post_raw("/api/conversations", "{not json").await;
    assert_eq!(status, 422);
    // Secrets in a refused body are not echoed back.
    let (status, body) = app
        .post(
            "/api/conversations",
            json!({"workspace": {"working_dir": "/tmp/x"}, "agent": {"llm": {"model": 1, "api_key": "sk-leak-me"}}}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(!body.to_string().contains("sk-leak-me"), "{body}");
    let (status, _) = app.get("/api/conversations").await;
    assert_eq!(status, 422, "ids is required");
    let (status, body) = app.get("/api/nothing-here").await;
    assert_eq!((status, body), (404, json!({"detail": "Not Found"})));
    let r = app
        .client
        .put(format!("{}/api/conversations/count", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
}

#[actix_web::test]
async fn search_paging_sorting_and_batch() {
    let app = spawn_app().await;
    let mut ids = vec![];
    for _ in 0..5 {
        ids.push(app.create_conversation().await);
    }
    let (_, p1) = app
        .get("/api/conversations/search?limit=2&sort_order=CREATED_AT")
        .await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    assert_eq!(p1["items"][0]["id"], ids[0].as_str());
    let next = p1["next_page_id"].as_str().unwrap().to_string();
    assert_eq!(next.len(), 32, "next_page_id is hex");
    let (_, p2) = app
        .get(&format!(
            "/api/conversations/search?limit=2&sort_order=CREATED_AT&page_id={next}"
        ))
        .await;
    assert_eq!(p2["items"][0]["id"], ids[2].as_str());
    let (_, desc) = app.get("/api/conversations/search").await;
    assert_eq!(desc["items"][0]["id"], ids[4].as_str());
    assert_eq!(desc["next_page_id"], Value::Null);
    let (_, idle) = app.get("/api/conversations/count?status=idle").await;
    assert_eq!(idle, 5);
    let (_, running) = app.get("/api/conversations/search?status=running").await;
    assert_eq!(running["items"], json!([]));
    let unknown = "11111111-2222-3333-4444-555555555555";
    let (status, batch) = app
        .get(&format!("/api/conversations?ids={}&ids={unknown}", ids[1]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(batch[0]["id"], ids[1].as_str());
    assert_eq!(batch[1], Value::Null);
}

#[actix_web::test]
async fn patch_and_delete() {
    let app = spawn_app().await;
    let id = app.create_conversation().await;
    let (status, body) = app
        .patch(
            &format!("/api/conversations/{id}"),
            json!({"title": "  My title  ", "tags": {"team": "a"}}),
        )
        .await;
    assert_eq!((status, body), (200, json!({"success": true})));
    let (_, info) = app.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(info["title"], "My title");
    assert_eq!(info["tags"], json!({"team": "a"}));
    let (status, _) = app
        .patch(&format!("/api/conversations/{id}"), json!({"title": ""}))
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .patch(
            &format!("/api/conversations/{id}"),
            json!({"tags": {"Bad": "x"}}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, body) = app
        .patch(
            "/api/conversations/11111111-2222-3333-4444-555555555555",
            json!({"title": "x"}),
        )
        .await;
    assert_eq!((status, body), (200, json!({"success": false})));
    let (status, body) = app.delete(&format!("/api/conversations/{id}")).await;
    assert_eq!((status, body), (200, json!({"success": true})));
    let (status, _) = app.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(status, 404);
    let (status, _) = app.delete(&format!("/api/conversations/{id}")).await;
    assert_eq!(status, 400);
    assert!(app.path("ws").is_dir(), "the workspace is kept");
}

#[actix_web::test]
async fn messages_and_events() {
    let app = spawn_app().await;
    let id = app.create_conversation().await;
    app.send_message(&id, "hello there", false).await;
    let events = app.all_events(&id).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "SystemPromptEvent",
            "MessageEvent",
            "ConversationStateUpdateEvent"
        ]
    );
    for e in &events {
        let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
        assert_eq!(keys[0], "id");
        assert_eq!(keys[1], "timestamp");
        assert_eq!(keys[2], "source");
        assert_eq!(keys.last().unwrap().as_str(), "kind");
        let ts = e["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), 26, "six fractional digits, no zone: {ts}");
    }
    assert_eq!(events[2]["key"], "last_user_message_id");
    assert_eq!(events[2]["value"], events[1]["id"]);
    let tools: Vec<&str> = events[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        tools,
        [
            "TerminalTool",
            "FileEditorTool",
            "TaskTrackerTool",
            "FinishTool",
            "ThinkTool"
        ]
    );
    app.send_message(&id, "second", false).await;
    let (_, n) = app
        .get(&format!("/api/conversations/{id}/events/count"))
        .await;
    assert_eq!(n, 5, "no second system prompt");
    let (_, n) = app
        .get(&format!("/api/conversations/{id}/events/count?kind=openhands.sdk.event.llm_convertible.message.MessageEvent"))
        .await;
    assert_eq!(n, 2);
    let (_, n) = app
        .get(&format!("/api/conversations/{id}/events/count?body=SECOND"))
        .await;
    assert_eq!(n, 1);
    let (_, page) = app
        .get(&format!(
            "/api/conversations/{id}/events/search?limit=2&sort_order=TIMESTAMP_DESC"
        ))
        .await;
    assert_eq!(page["items"][0]["kind"], "ConversationStateUpdateEvent");
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let eid = events[1]["id"].as_str().unwrap();
    let (status, one) = app
        .get(&format!("/api/conversations/{id}/events/{eid}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(one, events[1]);
    let (status, _) = app
        .get(&format!("/api/conversations/{id}/events/nope"))
        .await;
    assert_eq!(status, 404);
    let r = app
        .client
        .get(format!("{}/api/conversations/{id}/events", app.address))
        .json(&json!([eid, "missing"]))
        .send()
        .await
        .unwrap();
    let batch: Value = r.json().await.unwrap();
    assert_eq!(batch[0]["id"], eid);
    assert_eq!(batch[1], Value::Null);
    let (status, body) = app
        .post(
            &format!("/api/conversations/{id}/events"),
            json!({"role": "assistant", "content": []}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app
        .post(
            &format!("/api/conversations/{id}/events"),
            json!({"content": [{"type": "text", "text": "x", "bogus": 1}]}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = app
        .get("/api/conversations/11111111-2222-3333-4444-555555555555/events/search")
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        body["detail"],
        "Conversation not found: 11111111-2222-3333-4444-555555555555"
    );
    let all = app.all_events(&id).await;
    let (_, info) = app.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(
        info["last_user_message_id"], all[3]["id"],
        "the second message is the latest"
    );
}

#[actix_web::test]
async fn fork_copies_events_and_state() {
    let app = spawn_app().await;
    let id = app.create_conversation().await;
    app.send_message(&id, "original", false).await;
    app.patch(
        &format!("/api/conversations/{id}"),
        json!({"tags": {"team": "a"}}),
    )
    .await;
    let source_events = app.all_events(&id).await;
    let (status, fork) = app
        .post(
            &format!("/api/conversations/{id}/fork"),
            json!({"title": "Copy", "tags": {"team": "b"}}),
        )
        .await;
    assert_eq!(status, 201, "{fork}");
    let fid = fork["id"].as_str().unwrap().to_string();
    assert_ne!(fid, id);
    assert_eq!(fork["execution_status"], "idle");
    assert_eq!(fork["title"], Value::Null);
    assert_eq!(fork["tags"], json!({"team": "b", "title": "Copy"}));
    assert_eq!(
        app.all_events(&fid).await,
        source_events,
        "events are copied with their ids"
    );
    // The copy lives on independently.
    app.send_message(&fid, "only in the fork", false).await;
    assert_eq!(app.all_events(&id).await.len(), source_events.len());
    assert_eq!(app.all_events(&fid).await.len(), source_events.len() + 2);
    let (status, _) = app
        .post(&format!("/api/conversations/{id}/fork"), json!({"id": fid}))
        .await;
    assert_eq!(status, 409);
    let (status, body) = app
        .post(
            "/api/conversations/11111111-2222-3333-4444-555555555555/fork",
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "Source conversation not found"}))
    );
    let r = app
        .client
        .post(format!("{}/api/conversations/{id}/fork", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "the body is optional");
}

#[actix_web::test]
async fn acp_aliases_and_switching_the_llm() {
    let app = spawn_app().await;
    let (status, info) = app
        .post("/api/acp/conversations", app.conversation_body(None))
        .await;
    assert_eq!(status, 201);
    let id = info["id"].as_str().unwrap();
    let (_, got) = app.get(&format!("/api/acp/conversations/{id}")).await;
    assert_eq!(got["id"], id);
    let (_, n) = app.get("/api/acp/conversations/count").await;
    assert_eq!(n, 1);
    let (status, _) = app
        .post(
            &format!("/api/conversations/{id}/switch_llm"),
            json!({"llm": {"model": "openai/other", "api_key": "k"}}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, got) = app.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(got["agent"]["llm"]["model"], "openai/other");
    let (status, _) = app
        .post(
            &format!("/api/conversations/{id}/switch_llm"),
            json!({"llm": {"model": 3}}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, body) = app
        .post(
            &format!("/api/conversations/{id}/switch_profile"),
            json!({"profile_name": "missing"}),
        )
        .await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "Profile 'missing' not found"}))
    );
    let (status, _) = app
        .post("/api/profiles/fast", json!({"llm": {"model": "anthropic/claude-x", "api_key": "pk"}, "include_secrets": true}))
        .await;
    assert_eq!(status, 201);
    let (status, _) = app
        .post(
            &format!("/api/conversations/{id}/switch_profile"),
            json!({"profile_name": "fast"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, got) = app.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(got["agent"]["llm"]["model"], "anthropic/claude-x");
}
