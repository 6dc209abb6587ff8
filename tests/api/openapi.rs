//! The API description: `/openapi.json` is generated from the code, covers
//! every route of the reference 1.24.0 and every route we add, and `/docs`
//! renders it without internet access.

use std::collections::BTreeSet;

use crate::helpers::spawn_app;

/// Every (method, path) of the reference 1.24.0 OpenAPI document.
const REFERENCE: &[(&str, &str)] = &[
    ("GET", "/alive"),
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/server_info"),
    ("GET", "/api/conversations/{conversation_id}/events/search"),
    ("GET", "/api/conversations/{conversation_id}/events/count"),
    (
        "GET",
        "/api/conversations/{conversation_id}/events/{event_id}",
    ),
    ("GET", "/api/conversations/{conversation_id}/events"),
    ("POST", "/api/conversations/{conversation_id}/events"),
    (
        "POST",
        "/api/conversations/{conversation_id}/events/respond_to_confirmation",
    ),
    ("GET", "/api/conversations/search"),
    ("GET", "/api/conversations/count"),
    ("GET", "/api/conversations/{conversation_id}"),
    ("DELETE", "/api/conversations/{conversation_id}"),
    ("PATCH", "/api/conversations/{conversation_id}"),
    (
        "GET",
        "/api/conversations/{conversation_id}/agent_final_response",
    ),
    ("GET", "/api/conversations"),
    ("POST", "/api/conversations"),
    ("POST", "/api/conversations/{conversation_id}/pause"),
    ("POST", "/api/conversations/{conversation_id}/interrupt"),
    ("POST", "/api/conversations/{conversation_id}/run"),
    ("POST", "/api/conversations/{conversation_id}/secrets"),
    (
        "POST",
        "/api/conversations/{conversation_id}/confirmation_policy",
    ),
    (
        "POST",
        "/api/conversations/{conversation_id}/security_analyzer",
    ),
    (
        "POST",
        "/api/conversations/{conversation_id}/switch_profile",
    ),
    ("POST", "/api/conversations/{conversation_id}/switch_llm"),
    (
        "POST",
        "/api/conversations/{conversation_id}/switch_acp_model",
    ),
    ("POST", "/api/conversations/{conversation_id}/ask_agent"),
    ("POST", "/api/conversations/{conversation_id}/condense"),
    ("POST", "/api/conversations/{conversation_id}/fork"),
    ("GET", "/api/acp/conversations/search"),
    ("GET", "/api/acp/conversations/count"),
    ("GET", "/api/acp/conversations/{conversation_id}"),
    ("GET", "/api/acp/conversations"),
    ("POST", "/api/acp/conversations"),
    ("GET", "/api/tools/"),
    ("GET", "/api/bash/bash_events/search"),
    ("GET", "/api/bash/bash_events/{event_id}"),
    ("GET", "/api/bash/bash_events/"),
    ("POST", "/api/bash/start_bash_command"),
    ("POST", "/api/bash/execute_bash_command"),
    ("DELETE", "/api/bash/bash_events"),
    ("GET", "/api/git/changes"),
    ("GET", "/api/git/diff"),
    ("POST", "/api/file/upload"),
    ("GET", "/api/file/download"),
    ("GET", "/api/file/home"),
    ("GET", "/api/file/search_subdirs"),
    ("GET", "/api/file/download-trajectory/{conversation_id}"),
    ("GET", "/api/vscode/url"),
    ("GET", "/api/vscode/status"),
    ("GET", "/api/desktop/url"),
    ("POST", "/api/skills"),
    ("POST", "/api/skills/sync"),
    ("POST", "/api/skills/install"),
    ("GET", "/api/skills/installed"),
    ("GET", "/api/skills/installed/{skill_name}"),
    ("PATCH", "/api/skills/installed/{skill_name}"),
    ("DELETE", "/api/skills/installed/{skill_name}"),
    ("POST", "/api/skills/installed/{skill_name}/refresh"),
    ("GET", "/api/skills/marketplace"),
    ("POST", "/api/hooks"),
    ("GET", "/api/llm/providers"),
    ("GET", "/api/llm/models"),
    ("GET", "/api/llm/models/verified"),
    ("POST", "/api/mcp/test"),
    ("GET", "/api/settings/agent-schema"),
    ("GET", "/api/settings/conversation-schema"),
    ("GET", "/api/settings"),
    ("PATCH", "/api/settings"),
    ("GET", "/api/settings/secrets"),
    ("PUT", "/api/settings/secrets"),
    ("GET", "/api/settings/secrets/{name}"),
    ("DELETE", "/api/settings/secrets/{name}"),
    ("GET", "/api/workspaces"),
    ("POST", "/api/workspaces"),
    ("DELETE", "/api/workspaces"),
    ("POST", "/api/workspaces/parents"),
    ("DELETE", "/api/workspaces/parents"),
    ("GET", "/api/profiles"),
    ("GET", "/api/profiles/{name}"),
    ("POST", "/api/profiles/{name}"),
    ("DELETE", "/api/profiles/{name}"),
    ("POST", "/api/profiles/{name}/rename"),
    ("POST", "/api/profiles/{name}/activate"),
    ("POST", "/api/cloud-proxy"),
    ("POST", "/api/auth/workspace-session"),
    ("DELETE", "/api/auth/workspace-session"),
    ("GET", "/api/conversations/{conversation_id}/workspace"),
    (
        "GET",
        "/api/conversations/{conversation_id}/workspace/{file_path}",
    ),
    ("GET", "/"),
];

#[actix_web::test]
async fn openapi_covers_every_route() {
    let app = spawn_app().await;
    let (status, doc) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut ours = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ours.insert((method.to_uppercase(), path.clone()));
        }
    }
    let missing: Vec<_> = REFERENCE
        .iter()
        .filter(|(m, p)| !ours.contains(&(m.to_string(), p.to_string())))
        .collect();
    assert!(
        missing.is_empty(),
        "reference routes missing from /openapi.json: {missing:?}"
    );
    // Every documented route is really served (the path resolves to a
    // handler: any answer but the router's 404 for unknown paths).
    for (method, path) in &ours {
        let concrete = path
            .replace("{conversation_id}", "11111111-2222-3333-4444-555555555555")
            .replace("{file_path}", "x.txt")
            .replace("{event_id}", "e")
            .replace("{command_id}", "11111111222233334444555555555555")
            .replace("{skill_name}", "s")
            .replace("{name}", "n")
            .replace("{kind}", "stop");
        let url = format!("{}{concrete}", app.address);
        let req = app.client.request(method.parse().unwrap(), &url).body("{}");
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let unrouted = resp
            .headers()
            .contains_key(agent_server::app::UNROUTED_HEADER);
        assert!(!unrouted, "{method} {path} is documented but not served");
        assert_ne!(status, 405, "{method} {path} is documented but answers 405");
    }
}

#[actix_web::test]
async fn docs_page_is_served_offline() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(format!("{}/docs/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("swagger"), "{html}");
    assert!(
        !html.contains("https://"),
        "no asset is loaded from the internet"
    );
    let r = app
        .client
        .get(format!("{}/docs/swagger-ui-bundle.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "the assets are ours");
}
