//! Flows from the SDK's own examples (`examples/01_standalone_sdk`) that a
//! remote client can run against this server: what each one relies on the
//! server for, checked over HTTP with the scripted LLM.

use serde_json::{Value, json};

use crate::helpers::spawn_app;
use crate::llm::{Reply, ScriptedLlm};

/// `32_configurable_security_policy.py`: `Agent(security_policy_filename=<absolute
/// path of a file>)` puts that file's text in the system prompt's `<SECURITY>`
/// section instead of the built-in policy, as the reference does.
#[actix_web::test]
async fn a_custom_security_policy_file_replaces_the_built_in_policy() {
    let app = spawn_app().await;
    let llm = ScriptedLlm::start(vec![Reply::finish("done"), Reply::finish("done")]).await;
    let policy = app.path("custom_policy.j2");
    let text = "# Custom Security Risk Policy\n- Escalate to **HIGH** for any external data transmission.\n";
    std::fs::write(&policy, text).unwrap();
    let mut body = app.conversation_body(Some(&llm.openai_base));
    body["agent"]["security_policy_filename"] = json!(policy.to_string_lossy());
    let (status, info) = app.post("/api/conversations", body).await;
    assert_eq!(status, 201, "{info}");
    let id = info["id"].as_str().unwrap().to_string();
    app.send_message(&id, "Create hello.py safely.", true).await;
    app.wait_status(&id, &["finished"]).await;

    let system = app.all_events(&id).await[0]["system_prompt"]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        system.contains(&format!("<SECURITY>\n{}\n</SECURITY>", text.trim())),
        "{system}"
    );
    assert!(
        !system.contains("# Security policy"),
        "built-in policy left in"
    );
    let sent = llm.agent_requests()[0]["messages"][0].to_string();
    assert!(sent.contains("Custom Security Risk Policy"), "{sent}");

    // A path that cannot be read falls back to the built-in policy.
    let mut body = app.conversation_body(Some(&llm.openai_base));
    body["agent"]["security_policy_filename"] = json!("/nonexistent/policy.j2");
    let (_, info) = app.post("/api/conversations", body).await;
    let id = info["id"].as_str().unwrap().to_string();
    app.send_message(&id, "hello", true).await;
    app.wait_status(&id, &["finished"]).await;
    let system = app.all_events(&id).await[0]["system_prompt"]["text"].to_string();
    assert!(system.contains("# Security policy"), "{system}");
}

/// `47_defense_in_depth_security.py` wired into a conversation:
/// `EnsembleSecurityAnalyzer([PolicyRailSecurityAnalyzer(), PatternSecurityAnalyzer()])`
/// with `ConfirmRisky(threshold=HIGH)`. The local analyzers judge the action
/// itself, whatever risk the LLM claimed: a recursive force-delete the LLM
/// called LOW waits for confirmation (and is recorded with the LLM's LOW), a
/// plain `ls` runs.
#[actix_web::test]
async fn local_security_analyzers_judge_the_action_not_the_llm_claim() {
    let app = spawn_app().await;
    let scratch = app.path("ws").join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::write(scratch.join("keep.txt"), "keep\n").unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::terminal("rm -rf ./scratch"),
        Reply::terminal("ls"),
        Reply::finish("done"),
    ])
    .await;
    let mut body = app.conversation_body(Some(&llm.openai_base));
    body["confirmation_policy"] = json!({"kind": "ConfirmRisky", "threshold": "HIGH"});
    body["security_analyzer"] = json!({"kind": "EnsembleSecurityAnalyzer", "analyzers": [
        {"kind": "PolicyRailSecurityAnalyzer"},
        {"kind": "PatternSecurityAnalyzer"}]});
    let (status, info) = app.post("/api/conversations", body).await;
    assert_eq!(status, 201, "{info}");
    let id = info["id"].as_str().unwrap().to_string();

    app.send_message(&id, "Clean up the scratch directory.", true)
        .await;
    app.wait_status(&id, &["waiting_for_confirmation"]).await;
    assert!(
        scratch.join("keep.txt").exists(),
        "the delete ran unconfirmed"
    );
    let events = app.all_events(&id).await;
    let action = events.iter().rfind(|e| e["kind"] == "ActionEvent").unwrap();
    assert_eq!(action["security_risk"], "LOW", "the LLM's own risk is kept");

    let (status, _) = app
        .post(
            &format!("/api/conversations/{id}/events/respond_to_confirmation"),
            json!({"accept": false, "reason": "not that"}),
        )
        .await;
    assert_eq!(status, 200);
    app.wait_status(&id, &["idle"]).await;
    let (status, _) = app
        .post(&format!("/api/conversations/{id}/run"), json!({}))
        .await;
    assert_eq!(status, 200);
    app.wait_status(&id, &["finished"]).await;
    let events = app.all_events(&id).await;
    let observed: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "ObservationEvent")
        .filter_map(|e| e["observation"]["command"].as_str())
        .collect();
    assert_eq!(observed, ["ls"], "only the harmless command ran");
    assert!(scratch.join("keep.txt").exists());
}

/// An analyzer ensemble is checked when it is set: an unknown member kind, an
/// empty member list or a custom pattern the regex engine refuses is a 422
/// naming the field, and the analyzer in place is left unchanged.
#[actix_web::test]
async fn a_malformed_analyzer_ensemble_is_refused_when_set() {
    let app = spawn_app().await;
    let id = app.create_conversation().await;
    let path = format!("/api/conversations/{id}/security_analyzer");
    for bad in [
        json!({"kind": "EnsembleSecurityAnalyzer", "analyzers": [{"kind": "NoSuchAnalyzer"}]}),
        json!({"kind": "EnsembleSecurityAnalyzer", "analyzers": []}),
        json!({"kind": "PatternSecurityAnalyzer", "high_patterns": [["(unclosed", "d", "id"]]}),
    ] {
        let (status, body) = app.post(&path, json!({"security_analyzer": bad})).await;
        assert_eq!(status, 422, "{bad} -> {body}");
        assert_eq!(
            body["detail"][0]["loc"],
            json!(["body", "security_analyzer"])
        );
    }
    let (_, info) = app.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(info["security_analyzer"], Value::Null);
    let good = json!({"kind": "EnsembleSecurityAnalyzer", "analyzers": [{"kind": "PatternSecurityAnalyzer"}]});
    let (status, body) = app.post(&path, json!({"security_analyzer": good})).await;
    assert_eq!(status, 200, "{body}");
}

/// `AlwaysConfirm`, as in `04_confirmation_mode_example.py`: a response that is
/// only a `think` call does not wait for confirmation (the reference exempts a
/// lone think as it does a lone finish).
#[actix_web::test]
async fn a_lone_think_never_waits_for_confirmation() {
    let app = spawn_app().await;
    let llm = ScriptedLlm::start(vec![
        Reply::tool("think", json!({"thought": "plan the work"})),
        Reply::finish("done"),
    ])
    .await;
    let mut body = app.conversation_body(Some(&llm.openai_base));
    body["confirmation_policy"] = json!({"kind": "AlwaysConfirm"});
    let (status, info) = app.post("/api/conversations", body).await;
    assert_eq!(status, 201, "{info}");
    let id = info["id"].as_str().unwrap().to_string();
    app.send_message(&id, "Think first.", true).await;
    app.wait_status(&id, &["finished", "waiting_for_confirmation"])
        .await;
    let (_, info) = app.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(info["execution_status"], "finished");
    let events = app.all_events(&id).await;
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "ObservationEvent" && e["tool_name"] == "think")
    );
}

/// `06_interactive_terminal_w_reasoning.py`:
/// `Tool(name="terminal", params={"no_change_timeout_seconds": 3})` sets how
/// long a command may show no new output before the agent gets control back
/// (the server's default is 30 s); here `python3` waits for input.
#[actix_web::test]
async fn the_terminal_tool_takes_its_no_change_timeout_from_the_agent() {
    let app = spawn_app().await;
    let llm = ScriptedLlm::start(vec![
        Reply::terminal("python3"),
        Reply::Tools(
            None,
            vec![(
                "terminal".into(),
                json!({"command": "print(6 * 7)", "is_input": true, "security_risk": "LOW"}),
            )],
        ),
        Reply::Tools(
            None,
            vec![(
                "terminal".into(),
                json!({"command": "exit()", "is_input": true, "security_risk": "LOW"}),
            )],
        ),
        Reply::finish("done"),
    ])
    .await;
    let mut body = app.conversation_body(Some(&llm.openai_base));
    body["agent"]["tools"] =
        json!([{"name": "terminal", "params": {"no_change_timeout_seconds": 1}}]);
    let (status, info) = app.post("/api/conversations", body).await;
    assert_eq!(status, 201, "{info}");
    let id = info["id"].as_str().unwrap().to_string();
    let started = std::time::Instant::now();
    app.send_message(&id, "Use python3 interactively.", true)
        .await;
    app.wait_status(&id, &["finished", "error"]).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let events = app.all_events(&id).await;
    let obs: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "ObservationEvent" && e["tool_name"] == "terminal")
        .collect();
    assert_eq!(obs.len(), 3);
    let first = obs[0]["observation"].to_string();
    assert!(first.contains("no new output after 1 seconds"), "{first}");
    assert!(
        obs[1]["observation"].to_string().contains("42"),
        "{}",
        obs[1]
    );
}
