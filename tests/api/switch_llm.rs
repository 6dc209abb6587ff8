//! Switching a conversation's LLM: the built-in `switch_llm` tool against
//! profiles of the server's store (two scripted LLM servers tell the models
//! apart), its error observations, when agents get the tool, the
//! `/switch_profile` route, and the bundled system prompt templates.

use serde_json::{Value, json};

use crate::helpers::{TestApp, WsItem, spawn_app, spawn_app_with};
use crate::llm::{Reply, ScriptedLlm};
use crate::settings::{contains, database_bytes, restart_on_copy};

const KEY: &str = "switch-llm-test-key";

/// A conversation on `llm` whose agent has `finish` and `switch_llm` only.
fn switch_body(app: &TestApp, llm: &ScriptedLlm) -> Value {
    let mut b = app.conversation_body(Some(&llm.openai_base));
    b["agent"]["llm"]["usage_id"] = json!("main");
    b["agent"]["tools"] = json!([]);
    b["agent"]["include_default_tools"] = json!(["FinishTool", "SwitchLLMTool"]);
    b
}

async fn create(app: &TestApp, body: Value) -> String {
    let (status, info) = app.post("/api/conversations", body).await;
    assert_eq!(status, 201, "{info}");
    info["id"].as_str().unwrap().to_string()
}

async fn save_profile(app: &TestApp, name: &str, model: &str, key: &str, base: &str) {
    let (status, body) = app
        .post(
            &format!("/api/profiles/{name}"),
            json!({"llm": {"model": model, "api_key": key, "base_url": base, "usage_id": "ignored",
                           "num_retries": 1, "retry_min_wait": 0, "retry_max_wait": 0, "timeout": 10},
                   "include_secrets": true}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

fn observations(events: &[Value], tool: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["kind"] == "ObservationEvent" && e["tool_name"] == tool)
        .map(|e| e["observation"].clone())
        .collect()
}

fn text(observation: &Value) -> &str {
    observation["content"][0]["text"].as_str().unwrap()
}

fn tool_names(request: &Value) -> Vec<String> {
    request["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| t["function"]["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[actix_web::test]
async fn the_tool_moves_the_conversation_onto_a_stored_profile() {
    let app = spawn_app_with(|s| s.secret_key = Some(KEY.into())).await;
    let main = ScriptedLlm::start(vec![Reply::tool(
        "switch_llm",
        json!({"profile_name": "fast", "reason": "A cheaper model will do.", "security_risk": "LOW"}),
    )])
    .await;
    let fast = ScriptedLlm::start(vec![Reply::finish("Done on the fast model.")]).await;
    save_profile(
        &app,
        "fast",
        "openai/fast-model",
        "sk-FAST-never-in-clear",
        &fast.openai_base,
    )
    .await;
    save_profile(
        &app,
        "slow",
        "openai/slow-model",
        "sk-slow",
        &fast.openai_base,
    )
    .await;
    let id = create(&app, switch_body(&app, &main)).await;
    let mut sock = app.ws(&format!("/sockets/events/{id}"), &[]).await;
    assert_eq!(sock.json(5).await["key"], "full_state");
    app.send_message(&id, "Switch to the fast profile, then finish.", true)
        .await;
    let info = app.wait_status(&id, &["finished", "error"]).await;
    assert_eq!(info["execution_status"], "finished", "{info}");

    // The first call went to the conversation's LLM, offering the tool with the
    // stored profiles; the next one to the profile's server, with its key.
    let first = main.agent_requests();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["model"], "test-model");
    assert_eq!(tool_names(&first[0]), ["finish", "switch_llm"]);
    let tool = &first[0]["tools"][1]["function"];
    assert!(
        tool["description"]
            .as_str()
            .unwrap()
            .contains("Available LLM profiles:\n- fast\n- slow\n"),
        "{tool}"
    );
    assert_eq!(
        tool["parameters"]["required"],
        json!(["profile_name", "reason"])
    );
    let props: Vec<&String> = tool["parameters"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        props,
        ["security_risk", "summary", "profile_name", "reason"]
    );
    let second = fast.agent_requests();
    assert_eq!(
        second.len(),
        1,
        "the next call goes to the profile's server"
    );
    assert_eq!(second[0]["model"], "fast-model");
    assert_eq!(
        second[0]["_headers"]["authorization"],
        "Bearer sk-FAST-never-in-clear"
    );
    let last = second[0]["messages"].as_array().unwrap().last().unwrap();
    assert_eq!(last["role"], "tool");

    // The observation, the agent and the stats.
    let events = app.all_events(&id).await;
    let obs = observations(&events, "switch_llm");
    assert_eq!(obs.len(), 1);
    assert_eq!(
        obs[0],
        json!({"content": [{"cache_prompt": false, "type": "text",
                            "text": "Switched LLM profile to 'fast' with active model 'openai/fast-model'. Reason: A cheaper model will do. Future agent steps will use this profile."}],
               "is_error": false, "profile_name": "fast", "reason": "A cheaper model will do.",
               "active_model": "openai/fast-model", "kind": "SwitchLLMObservation"})
    );
    let action = events
        .iter()
        .find(|e| e["kind"] == "ActionEvent" && e["tool_name"] == "switch_llm")
        .unwrap();
    assert_eq!(
        action["action"],
        json!({"profile_name": "fast", "reason": "A cheaper model will do.", "kind": "SwitchLLMAction"})
    );
    let prompt = events
        .iter()
        .find(|e| e["kind"] == "SystemPromptEvent")
        .unwrap();
    let def = prompt["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "SwitchLLMTool")
        .expect("the tool definition is recorded");
    assert_eq!(def["action_type"], "SwitchLLMAction");
    assert_eq!(def["observation_type"], "SwitchLLMObservation");
    assert_eq!(def["title"], "switch_llm");
    assert_eq!(
        def["annotations"],
        json!({"title": null, "readOnlyHint": false, "destructiveHint": false,
               "idempotentHint": false, "openWorldHint": false})
    );
    assert_eq!(info["agent"]["llm"]["model"], "openai/fast-model");
    assert_eq!(info["agent"]["llm"]["usage_id"], "profile:fast");
    assert_eq!(info["agent"]["llm"]["api_key"], Value::Null);
    let usage = info["stats"]["usage_to_metrics"].as_object().unwrap();
    assert_eq!(usage["main"]["model_name"], "openai/test-model");
    assert_eq!(usage["profile:fast"]["model_name"], "openai/fast-model");
    assert_eq!(
        usage["profile:fast"]["accumulated_token_usage"]["prompt_tokens"],
        100
    );

    // Subscribers saw the new agent before the observation, its key redacted.
    let mut seen = vec![];
    while let Some(WsItem::Json(v)) = sock.next(2).await {
        seen.push(v);
    }
    let at = |pred: &dyn Fn(&Value) -> bool| seen.iter().position(pred).unwrap();
    let update = at(&|e| e["key"] == "agent");
    let observed = at(&|e| e["kind"] == "ObservationEvent");
    assert!(update < observed);
    assert_eq!(seen[update]["value"]["llm"]["model"], "openai/fast-model");
    assert_eq!(seen[update]["value"]["llm"]["api_key"], "**********");
    assert!(
        !seen
            .iter()
            .any(|e| e.to_string().contains("sk-FAST-never-in-clear"))
    );

    // Nothing in clear on disk, and the switched LLM survives a restart.
    assert!(!contains(
        &database_bytes(app.dir.path()),
        "sk-FAST-never-in-clear"
    ));
    let again = restart_on_copy(&app, Some(KEY)).await;
    let (_, info) = again.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(info["agent"]["llm"]["model"], "openai/fast-model");
    again.send_message(&id, "Once more.", true).await;
    again.wait_status(&id, &["finished", "error"]).await;
    let after = fast.agent_requests();
    assert_eq!(
        after.len(),
        2,
        "the restarted server still uses the profile"
    );
    assert_eq!(
        after[1]["_headers"]["authorization"],
        "Bearer sk-FAST-never-in-clear"
    );
}

#[actix_web::test]
async fn failures_are_error_observations_and_keep_the_llm() {
    let app = spawn_app().await;
    let main = ScriptedLlm::start(vec![
        Reply::tool(
            "switch_llm",
            json!({"profile_name": "missing", "reason": "Try another model."}),
        ),
        Reply::tool(
            "switch_llm",
            json!({"profile_name": "../etc", "reason": "Sneaky."}),
        ),
        Reply::tool("switch_llm", json!({"profile_name": "fast"})),
        Reply::finish("Staying put."),
    ])
    .await;
    let id = create(&app, switch_body(&app, &main)).await;
    app.send_message(&id, "Try switching.", true).await;
    let info = app.wait_status(&id, &["finished", "error"]).await;
    assert_eq!(info["execution_status"], "finished", "{info}");
    assert_eq!(info["agent"]["llm"]["model"], "openai/test-model");
    let events = app.all_events(&id).await;
    let obs = observations(&events, "switch_llm");
    assert_eq!(obs.len(), 2, "{events:?}");
    assert_eq!(obs[0]["is_error"], true);
    assert_eq!(obs[0]["profile_name"], "missing");
    assert_eq!(obs[0]["reason"], "Try another model.");
    assert_eq!(obs[0]["active_model"], Value::Null);
    assert_eq!(text(&obs[0]), "LLM profile 'missing' was not found.");
    assert_eq!(
        text(&obs[1]),
        "Invalid profile name: '../etc'. Profile names must be 1-64 characters, start with a \
         letter or digit, and contain only letters, digits, '.', '_', or '-'."
    );
    // A call without a reason does not validate, as in the reference.
    let error = events
        .iter()
        .find(|e| e["kind"] == "AgentErrorEvent")
        .expect("the call without a reason is refused");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .starts_with("Error validating tool 'switch_llm'"),
        "{error}"
    );
    assert!(!events.iter().any(|e| e["key"] == "agent"));
    // The LLM was told of the failure with the error header.
    let reqs = main.agent_requests();
    assert_eq!(reqs.len(), 4, "every call stayed on the conversation's LLM");
    let answer = &reqs[1]["messages"].as_array().unwrap().last().unwrap()["content"];
    assert!(
        answer
            .to_string()
            .contains("[An error occurred during execution.]"),
        "{answer}"
    );
}

#[actix_web::test]
async fn agents_get_the_tool_only_when_asked() {
    let app = spawn_app().await;
    let llm = ScriptedLlm::start(vec![
        Reply::tool("switch_llm", json!({"profile_name": "x", "reason": "r"})),
        Reply::finish("ok"),
    ])
    .await;
    // The default built-ins do not include it; a call is an unknown tool.
    let id = create(&app, app.conversation_body(Some(&llm.openai_base))).await;
    app.send_message(&id, "hi", true).await;
    app.wait_status(&id, &["finished", "error"]).await;
    let reqs = llm.agent_requests();
    assert!(!tool_names(&reqs[0]).contains(&"switch_llm".to_string()));
    let events = app.all_events(&id).await;
    let error = events
        .iter()
        .find(|e| e["kind"] == "AgentErrorEvent")
        .unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .starts_with("Tool 'switch_llm' not found"),
        "{error}"
    );

    // Agents made from settings get it unless `enable_switch_llm_tool` is off.
    for (enabled, expected) in [(None, true), (Some(false), false), (Some(true), true)] {
        let mut settings = json!({"llm": {"model": "openai/test-model", "api_key": "k",
                                          "base_url": llm.openai_base}});
        if let Some(on) = enabled {
            settings["enable_switch_llm_tool"] = json!(on);
        }
        let body = json!({"agent_settings": settings,
                          "workspace": {"working_dir": app.path("ws").to_string_lossy(), "kind": "LocalWorkspace"}});
        let (status, info) = app.post("/api/conversations", body).await;
        assert_eq!(status, 201, "{info}");
        let defaults = info["agent"]["include_default_tools"].clone();
        assert_eq!(
            defaults
                .as_array()
                .unwrap()
                .contains(&json!("SwitchLLMTool")),
            expected,
            "{enabled:?}: {defaults}"
        );
    }
}

#[actix_web::test]
async fn the_switch_profile_route_uses_the_same_store() {
    let app = spawn_app().await;
    let llm = ScriptedLlm::start(vec![]).await;
    let id = create(&app, switch_body(&app, &llm)).await;
    let mut sock = app.ws(&format!("/sockets/events/{id}"), &[]).await;
    assert_eq!(sock.json(5).await["key"], "full_state");
    save_profile(&app, "fast", "openai/fast-model", "sk-f", &llm.openai_base).await;
    let path = format!("/api/conversations/{id}/switch_profile");
    let (status, body) = app.post(&path, json!({"profile_name": "fast"})).await;
    assert_eq!((status, body), (200, json!({"success": true})));
    let update = sock.json(5).await;
    assert_eq!(update["key"], "agent", "{update}");
    assert_eq!(update["value"]["llm"]["usage_id"], "profile:fast");
    let (_, info) = app.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(info["agent"]["llm"]["usage_id"], "profile:fast");
    let (status, body) = app.post(&path, json!({"profile_name": "../x"})).await;
    assert_eq!(status, 400);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("Invalid profile name: '../x'."),
        "{body}"
    );
    let (status, body) = app.post(&path, json!({"profile_name": "gone"})).await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "Profile 'gone' not found"}))
    );
    // The same LLM again changes nothing, so no update is sent.
    let (status, _) = app.post(&path, json!({"profile_name": "fast"})).await;
    assert_eq!(status, 200);
    assert!(
        !matches!(sock.next(1).await, Some(WsItem::Json(v)) if v["key"] == "agent"),
        "an unchanged LLM is not reported"
    );
}

async fn first_prompt(app: &TestApp, filename: &str) -> Result<String, (u16, Value)> {
    let mut body = app.conversation_body(None);
    body["agent"]["system_prompt_filename"] = json!(filename);
    let id = create(app, body).await;
    let (status, err) = app
        .post(
            &format!("/api/conversations/{id}/events"),
            json!({"role": "user", "content": [{"type": "text", "text": "hi"}], "run": false}),
        )
        .await;
    if status != 200 {
        return Err((status, err));
    }
    let events = app.all_events(&id).await;
    let prompt = events
        .iter()
        .find(|e| e["kind"] == "SystemPromptEvent")
        .unwrap();
    Ok(prompt["system_prompt"]["text"]
        .as_str()
        .unwrap()
        .to_string())
}

#[actix_web::test]
async fn bundled_prompt_templates_are_chosen_by_file_name() {
    let app = spawn_app().await;
    let default = first_prompt(&app, "system_prompt.j2").await.unwrap();
    assert!(default.contains("<ROLE>") && default.contains("<PROCESS_MANAGEMENT>"));
    for (file, tag) in [
        ("system_prompt_interactive.j2", "<INTERACTION_RULES>"),
        ("system_prompt_long_horizon.j2", "<TASK_MANAGEMENT>"),
        ("system_prompt_tech_philosophy.j2", "<TECHNICAL_PHILOSOPHY>"),
    ] {
        let text = first_prompt(&app, file).await.unwrap();
        assert!(text.starts_with(&default), "{file}");
        assert!(text.contains(tag), "{file}");
        assert!(!default.contains(tag));
    }
    let planning = first_prompt(&app, "system_prompt_planning.j2")
        .await
        .unwrap();
    assert!(planning.contains("<PLAN_STRUCTURE>"));

    // A name the reference has no template for fails the first message, as there.
    let err = first_prompt(&app, "no_such_prompt.j2").await.unwrap_err();
    assert_eq!(
        err,
        (
            500,
            json!({"detail": "Internal Server Error",
                   "exception": "Prompt file no_such_prompt.j2 not found"})
        )
    );
    let missing = app.path("missing.j2").to_string_lossy().into_owned();
    let err = first_prompt(&app, &missing).await.unwrap_err();
    assert_eq!(
        err.1["exception"],
        format!("Prompt file {missing} not found")
    );

    // A template file of the client's, extending a bundled one.
    let own = app.path("own.j2");
    std::fs::write(
        &own,
        "{% include \"system_prompt_interactive.j2\" %}\n\n<HOUSE_RULES>\nShort answers.\n</HOUSE_RULES>\n",
    )
    .unwrap();
    let text = first_prompt(&app, &own.to_string_lossy()).await.unwrap();
    assert!(text.starts_with(&default));
    assert!(text.contains("<INTERACTION_RULES>"));
    assert!(text.ends_with("<HOUSE_RULES>\nShort answers.\n</HOUSE_RULES>"));

    // An inline prompt excludes any template but the default one.
    let mut body = app.conversation_body(None);
    body["agent"]["system_prompt"] = json!("Be terse.");
    body["agent"]["system_prompt_filename"] = json!("system_prompt_interactive.j2");
    let (status, err) = app.post("/api/conversations", body).await;
    assert_eq!(status, 422, "{err}");
}

#[actix_web::test]
async fn a_router_as_remote_clients_send_it_fails_the_run_like_the_reference() {
    // The 1.24.0 client serializes `Agent(llm=MultimodalRouter(...))` as a
    // plain LLM: its placeholder model `router`, no key, no routed LLMs, and
    // never `fallback_strategy` (excluded from its dumps).
    let app = spawn_app().await;
    let mut body = app.conversation_body(None);
    body["agent"]["llm"] = json!({"model": "router", "usage_id": "multimodal-router",
                                  "num_retries": 1, "retry_min_wait": 0, "retry_max_wait": 0});
    let id = create(&app, body).await;
    app.send_message(&id, "Hi there, who trained you?", true)
        .await;
    let info = app.wait_status(&id, &["error", "finished"]).await;
    assert_eq!(info["execution_status"], "error");
    assert_eq!(info["agent"]["llm"]["model"], "router");
    let events = app.all_events(&id).await;
    let error = events
        .iter()
        .find(|e| e["kind"] == "ConversationErrorEvent")
        .unwrap();
    assert_eq!(error["code"], "LLMBadRequestError");
    assert!(
        error["detail"].as_str().unwrap().contains("`router`"),
        "{error}"
    );
}

#[actix_web::test]
async fn a_raw_clients_fallback_strategy_uses_the_store_on_transient_failures() {
    let app = spawn_app().await;
    let primary = ScriptedLlm::start(vec![
        Reply::Status(503, "overloaded".into()),
        Reply::Status(400, "bad request".into()),
    ])
    .await;
    let backup = ScriptedLlm::start(vec![Reply::finish("answered by the backup")]).await;
    save_profile(
        &app,
        "backup",
        "openai/backup-model",
        "sk-b",
        &backup.openai_base,
    )
    .await;
    let mut body = switch_body(&app, &primary);
    body["agent"]["llm"]["fallback_strategy"] =
        json!({"fallback_llms": ["not-saved", "backup"], "profile_store_dir": "/nowhere"});
    let id = create(&app, body).await;
    app.send_message(&id, "Hi.", true).await;
    let info = app.wait_status(&id, &["finished", "error"]).await;
    assert_eq!(info["execution_status"], "finished", "{info}");
    assert_eq!(
        info["agent"]["llm"]["fallback_strategy"]["fallback_llms"],
        json!(["not-saved", "backup"])
    );
    assert_eq!(primary.agent_requests().len(), 1);
    let answered = backup.agent_requests();
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0]["model"], "backup-model");
    assert_eq!(answered[0]["_headers"]["authorization"], "Bearer sk-b");
    let usage = info["stats"]["usage_to_metrics"].as_object().unwrap();
    assert_eq!(
        usage.keys().collect::<Vec<_>>(),
        ["main"],
        "a fallback counts under the primary's usage id"
    );
    // (The other call under `main` is the title, made with the primary.)
    let calls = usage["main"]["token_usages"].as_array().unwrap();
    let mut models: Vec<&str> = calls.iter().filter_map(|c| c["model"].as_str()).collect();
    models.sort_unstable();
    assert_eq!(models, ["openai/backup-model", "openai/test-model"]);
    // The agent's LLM is unchanged: the next call starts with the primary, and a
    // 400 is not a reason to fall back.
    assert_eq!(info["agent"]["llm"]["model"], "openai/test-model");
    app.send_message(&id, "Again.", true).await;
    let info = app.wait_status(&id, &["finished", "error"]).await;
    assert_eq!(info["execution_status"], "error");
    assert_eq!(primary.agent_requests().len(), 2);
    assert_eq!(backup.agent_requests().len(), 1);
}

#[actix_web::test]
async fn a_switch_to_a_usage_id_already_used_reuses_its_llm() {
    let app = spawn_app().await;
    let llm = ScriptedLlm::start(vec![]).await;
    let id = create(&app, switch_body(&app, &llm)).await;
    // The first message sets the agent up: its LLM is registered as `main`.
    app.send_message(&id, "hi", false).await;
    let switch = |model: &str, usage: &str| json!({"llm": {"model": model, "api_key": "k", "usage_id": usage}});
    let path = format!("/api/conversations/{id}/switch_llm");
    let model = |info: &Value| info["agent"]["llm"]["model"].as_str().unwrap().to_string();
    for (posted, usage, expected) in [
        ("openai/ignored", "main", "openai/test-model"),
        ("openai/other", "other", "openai/other"),
        ("openai/third", "other", "openai/other"),
        ("openai/anything", "main", "openai/test-model"),
    ] {
        let (status, _) = app.post(&path, switch(posted, usage)).await;
        assert_eq!(status, 200);
        let (_, info) = app.get(&format!("/api/conversations/{id}")).await;
        assert_eq!(model(&info), expected, "{posted} as {usage}");
        assert_eq!(info["agent"]["llm"]["usage_id"], usage);
    }
    // A profile is read on its first use only.
    save_profile(&app, "fast", "openai/fast-model", "sk-f", &llm.openai_base).await;
    let profile = format!("/api/conversations/{id}/switch_profile");
    let (status, _) = app.post(&profile, json!({"profile_name": "fast"})).await;
    assert_eq!(status, 200);
    save_profile(&app, "fast", "openai/fast-v2", "sk-f", &llm.openai_base).await;
    app.post(&path, switch("openai/x", "main")).await;
    let (status, _) = app.post(&profile, json!({"profile_name": "fast"})).await;
    assert_eq!(status, 200);
    let (_, info) = app.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(model(&info), "openai/fast-model");
}
