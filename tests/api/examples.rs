//! Flows from the SDK's own examples (`examples/01_standalone_sdk`) that a
//! remote client can run against this server: what each one relies on the
//! server for, checked over HTTP with the scripted LLM.

use serde_json::json;

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
