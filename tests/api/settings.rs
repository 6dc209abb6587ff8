//! Settings, custom secrets, LLM profiles and saved workspaces: every route
//! with good and bad input, the `X-Expose-Secrets` modes, sealing at rest
//! (the database files never hold a secret in clear), restarts with the
//! same and with a different key, and concurrent updates.

use std::path::Path;

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with, start, test_settings};

const KEY: &str = "test-secret-key-one";

async fn keyed_app() -> TestApp {
    spawn_app_with(|s| s.secret_key = Some(KEY.into())).await
}

async fn get_with(app: &TestApp, path: &str, expose: Option<&str>) -> (u16, Value) {
    let mut req = app.client.get(format!("{}{path}", app.address));
    if let Some(v) = expose {
        req = req.header("X-Expose-Secrets", v);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn put(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    app.call(app.request(reqwest::Method::PUT, path).json(&body))
        .await
}

async fn get_text(app: &TestApp, path: &str) -> (u16, String, String) {
    let r = app
        .client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ct, r.text().await.unwrap_or_default())
}

async fn set_api_key(app: &TestApp, key: &str) {
    let (status, body) = app
        .patch(
            "/api/settings",
            json!({"agent_settings_diff": {"llm": {"model": "openai/gpt-4o", "api_key": key}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Every byte stored under the database directory.
pub(crate) fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut out = vec![];
    let mut stack = vec![dir.join(".openhands")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readable dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.extend(b);
            }
        }
    }
    out
}

pub(crate) fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Copies the data directory of a running server (its writes are flushed
/// before they are acknowledged) and starts a second server on the copy
/// with `key`: a restart without a clean shutdown.
pub(crate) async fn restart_on_copy(app: &TestApp, key: Option<&str>) -> TestApp {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read dir").flatten() {
            let (src, dst) = (e.path(), to.join(e.file_name()));
            if src.is_dir() {
                copy(&src, &dst);
            } else {
                std::fs::copy(&src, &dst).expect("copy");
            }
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    copy(&app.path(".openhands"), &dir.path().join(".openhands"));
    let mut settings = test_settings(dir.path());
    settings.secret_key = key.map(str::to_string);
    start(settings, dir).await
}

#[actix_web::test]
async fn defaults_schemas_and_shapes() {
    let app = spawn_app().await;
    let (status, body) = app.get("/api/settings").await;
    assert_eq!(status, 200);
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "agent_settings",
            "conversation_settings",
            "llm_api_key_is_set"
        ]
    );
    let a = &body["agent_settings"];
    assert_eq!(a["schema_version"], 3);
    assert_eq!(a["agent_kind"], "openhands");
    assert_eq!(a["agent"], "CodeActAgent");
    assert_eq!(a["llm"]["api_key"], Value::Null);
    assert_eq!(a["llm"].as_object().unwrap().len(), 49);
    assert_eq!(a["condenser"], json!({"enabled": true, "max_size": 240}));
    assert_eq!(a["mcp_config"], json!({}));
    assert_eq!(
        body["conversation_settings"],
        json!({"schema_version": 1, "max_iterations": 500, "confirmation_mode": false, "security_analyzer": "llm"})
    );
    assert_eq!(body["llm_api_key_is_set"], false);

    let (status, schema) = app.get("/api/settings/agent-schema").await;
    assert_eq!(status, 200);
    assert_eq!(schema["model_name"], "AgentSettings");
    let sections = schema["sections"].as_array().unwrap();
    let keys: Vec<&str> = sections
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["general", "llm", "condenser", "verification", "acp", "llm"]
    );
    let field = &sections[1]["fields"][1];
    for k in [
        "key",
        "label",
        "description",
        "section",
        "section_label",
        "value_type",
        "default",
        "prominence",
        "depends_on",
        "secret",
        "choices",
        "variant",
    ] {
        assert!(field.get(k).is_some(), "field lacks {k}");
    }
    assert_eq!(field["key"], "llm.api_key");
    assert_eq!(field["secret"], true);
    let (status, schema) = app.get("/api/settings/conversation-schema").await;
    assert_eq!(status, 200);
    assert_eq!(schema["model_name"], "ConversationSettings");
    assert_eq!(schema["sections"][0]["fields"][0]["key"], "max_iterations");

    let (status, body) = app.delete("/api/settings").await;
    assert_eq!(
        (status, body),
        (405, json!({"detail": "Method Not Allowed"}))
    );

    let (_, doc) = app.get("/openapi.json").await;
    for path in [
        "/api/settings",
        "/api/settings/secrets/{name}",
        "/api/profiles/{name}/activate",
        "/api/workspaces/parents",
        "/api/tools/",
        "/api/llm/models",
        "/api/mcp/test",
        "/api/cloud-proxy",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from /openapi.json"
        );
    }
}

#[actix_web::test]
async fn patch_merges_and_validates() {
    let app = spawn_app().await;
    let (status, body) = app.patch("/api/settings", json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["detail"],
        "At least one of agent_settings_diff or conversation_settings_diff must be provided"
    );
    let (status, _) = app
        .patch(
            "/api/settings",
            json!({"agent_settings_diff": null, "conversation_settings_diff": null}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = app
        .patch("/api/settings", json!({"agent_settings_diff": [1]}))
        .await;
    assert_eq!(status, 422);
    let (status, _) = app.post_raw("/api/settings", "{}").await;
    assert_eq!(status, 405);

    let (status, body) = app
        .patch(
            "/api/settings",
            json!({"agent_settings_diff": {"llm": {"model": "anthropic/claude-sonnet-4-5"}, "condenser": {"max_size": 100}},
                   "conversation_settings_diff": {"max_iterations": 42, "ignored_key": 1}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["agent_settings"]["llm"]["model"],
        "anthropic/claude-sonnet-4-5"
    );
    assert_eq!(
        body["agent_settings"]["condenser"],
        json!({"enabled": true, "max_size": 100})
    );
    assert_eq!(body["conversation_settings"]["max_iterations"], 42);
    assert!(body["conversation_settings"].get("ignored_key").is_none());

    // A second diff merges into the first.
    let (_, body) = app
        .patch(
            "/api/settings",
            json!({"agent_settings_diff": {"condenser": {"enabled": false}}}),
        )
        .await;
    assert_eq!(
        body["agent_settings"]["condenser"],
        json!({"enabled": false, "max_size": 100})
    );
    assert_eq!(
        body["agent_settings"]["llm"]["model"],
        "anthropic/claude-sonnet-4-5"
    );

    for bad in [
        json!({"agent_settings_diff": {"condenser": {"max_size": 3}}}),
        json!({"agent_settings_diff": {"llm": {"model": 7}}}),
        json!({"agent_settings_diff": {"agent_kind": "robot"}}),
        json!({"conversation_settings_diff": {"max_iterations": 0}}),
        json!({"conversation_settings_diff": {"security_analyzer": "maybe"}}),
    ] {
        let (status, body) = app.patch("/api/settings", bad.clone()).await;
        assert_eq!(status, 422, "{bad}");
        assert_eq!(body, json!({"detail": "Settings validation failed"}));
    }
    // Nothing of the refused updates was applied.
    let (_, body) = app.get("/api/settings").await;
    assert_eq!(body["conversation_settings"]["max_iterations"], 42);
}

#[actix_web::test]
async fn expose_modes_and_get_llm() {
    let app = keyed_app().await;
    set_api_key(&app, "sk-plain-123").await;

    let (status, body) = get_with(&app, "/api/settings", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["agent_settings"]["llm"]["api_key"], "**********");
    assert_eq!(body["llm_api_key_is_set"], true);

    // What RemoteWorkspace.get_llm() reads.
    let (status, body) = get_with(&app, "/api/settings", Some("plaintext")).await;
    assert_eq!(status, 200);
    let llm = &body["agent_settings"]["llm"];
    assert_eq!(llm["api_key"], "sk-plain-123");
    assert_eq!(llm["model"], "openai/gpt-4o");

    let (status, body) = get_with(&app, "/api/settings", Some("encrypted")).await;
    assert_eq!(status, 200);
    let token = body["agent_settings"]["llm"]["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(token.starts_with("sealed:v1:"), "{token}");
    assert!(!token.contains("sk-plain-123"));
    let (_, legacy) = get_with(&app, "/api/settings", Some("TRUE")).await;
    assert!(
        legacy["agent_settings"]["llm"]["api_key"]
            .as_str()
            .unwrap()
            .starts_with("sealed:v1:")
    );

    let (status, body) = get_with(&app, "/api/settings", Some("yes-please")).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["detail"],
        "Invalid X-Expose-Secrets header value: 'yes-please'. Valid values are: 'encrypted', 'plaintext'."
    );

    // The exported token goes back in through PATCH and is opened.
    let (status, _) = app
        .patch(
            "/api/settings",
            json!({"agent_settings_diff": {"llm": {"api_key": token}}}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, body) = get_with(&app, "/api/settings", Some("plaintext")).await;
    assert_eq!(body["agent_settings"]["llm"]["api_key"], "sk-plain-123");
    // A token this server cannot open is refused.
    let (status, body) = app
        .patch(
            "/api/settings",
            json!({"agent_settings_diff": {"llm": {"api_key": "sealed:v1:AAAA"}}}),
        )
        .await;
    assert_eq!(
        (status, body),
        (422, json!({"detail": "Settings validation failed"}))
    );

    // MCP env values are secrets too.
    app.patch(
        "/api/settings",
        json!({"agent_settings_diff": {"mcp_config": {"mcpServers": {"gh": {"command": "npx", "env": {"GITHUB_TOKEN": "ghp_secret"}}}}}}),
    )
    .await;
    let (_, body) = get_with(&app, "/api/settings", None).await;
    assert_eq!(
        body["agent_settings"]["mcp_config"]["mcpServers"]["gh"]["env"]["GITHUB_TOKEN"],
        "<redacted>"
    );
    let (_, body) = get_with(&app, "/api/settings", Some("plaintext")).await;
    assert_eq!(
        body["agent_settings"]["mcp_config"]["mcpServers"]["gh"]["env"]["GITHUB_TOKEN"],
        "ghp_secret"
    );
}

#[actix_web::test]
async fn encrypted_without_a_key_is_503() {
    let app = spawn_app().await;
    // With no secret to seal, there is nothing to refuse (as in the reference).
    let (status, _) = get_with(&app, "/api/settings", Some("encrypted")).await;
    assert_eq!(status, 200);
    set_api_key(&app, "sk-x").await;
    let (status, body) = get_with(&app, "/api/settings", Some("encrypted")).await;
    assert_eq!(status, 503);
    assert_eq!(body["detail"], "Internal Server Error");
    assert_eq!(
        body["exception"],
        "503: Encryption not available: OH_SECRET_KEY is not configured. Cannot return encrypted secrets."
    );
    // Without a key, plaintext still works (values are stored in clear, as in the reference).
    let (_, body) = get_with(&app, "/api/settings", Some("plaintext")).await;
    assert_eq!(body["agent_settings"]["llm"]["api_key"], "sk-x");
}

#[actix_web::test]
async fn secrets_crud_and_names() {
    let app = keyed_app().await;
    let (status, body) = app.get("/api/settings/secrets").await;
    assert_eq!((status, body), (200, json!({"secrets": []})));

    let (status, body) = put(
        &app,
        "/api/settings/secrets",
        json!({"name": "GITHUB_TOKEN", "value": "ghp_1", "description": "gh"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (200, json!({"name": "GITHUB_TOKEN", "description": "gh"}))
    );
    let (status, body) = put(
        &app,
        "/api/settings/secrets",
        json!({"name": "A1", "value": "v"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (200, json!({"name": "A1", "description": null}))
    );

    let (status, ct, text) = get_text(&app, "/api/settings/secrets/GITHUB_TOKEN").await;
    assert_eq!(
        (status, ct.as_str(), text.as_str()),
        (200, "text/plain; charset=utf-8", "ghp_1")
    );
    // Upsert replaces value and description.
    put(
        &app,
        "/api/settings/secrets",
        json!({"name": "GITHUB_TOKEN", "value": "ghp_2"}),
    )
    .await;
    let (_, _, text) = get_text(&app, "/api/settings/secrets/GITHUB_TOKEN").await;
    assert_eq!(text, "ghp_2");
    let (_, body) = app.get("/api/settings/secrets").await;
    assert_eq!(
        body,
        json!({"secrets": [{"name": "A1", "description": null}, {"name": "GITHUB_TOKEN", "description": null}]})
    );

    let name_error = "Invalid secret name format. Must start with a letter, contain only letters, numbers, and underscores, and be 1-64 characters long.";
    for bad in ["1ABC", "A-B", "has space"] {
        let (status, body) = put(
            &app,
            "/api/settings/secrets",
            json!({"name": bad, "value": "v"}),
        )
        .await;
        assert_eq!(
            (status, body),
            (422, json!({"detail": name_error})),
            "{bad}"
        );
    }
    let long = "A".repeat(65);
    let (status, body) = app.get(&format!("/api/settings/secrets/{long}")).await;
    assert_eq!((status, body), (422, json!({"detail": name_error})));
    let (status, body) = app.delete("/api/settings/secrets/9x").await;
    assert_eq!((status, body), (422, json!({"detail": name_error})));

    let (status, body) = put(&app, "/api/settings/secrets", json!({"name": "X"})).await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "value"]));
    let (status, body) = put(
        &app,
        "/api/settings/secrets",
        json!({"name": "X", "value": 5}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        body["detail"][0]["input"], "<redacted>",
        "secret inputs are not echoed"
    );

    let (status, body) = app.get("/api/settings/secrets/MISSING").await;
    assert_eq!((status, body), (404, json!({"detail": "Secret not found"})));
    let (status, body) = app.delete("/api/settings/secrets/A1").await;
    assert_eq!((status, body), (200, json!({"deleted": true})));
    let (status, body) = app.delete("/api/settings/secrets/A1").await;
    assert_eq!((status, body), (404, json!({"detail": "Secret not found"})));
}

#[actix_web::test]
async fn secrets_are_sealed_at_rest_and_survive_a_restart() {
    let app = keyed_app().await;
    let (secret, api_key, mcp) = (
        "value-ZQ7X-never-in-clear",
        "sk-ABCD-never-in-clear",
        "mcp-TOKEN-never-in-clear",
    );
    put(
        &app,
        "/api/settings/secrets",
        json!({"name": "S1", "value": secret}),
    )
    .await;
    set_api_key(&app, api_key).await;
    app.patch(
        "/api/settings",
        json!({"agent_settings_diff": {"mcp_config": {"mcpServers": {"x": {"url": "http://h", "headers": {"Authorization": mcp}}}}}}),
    )
    .await;
    let (status, _) = app
        .post(
            "/api/profiles/fast",
            json!({"llm": {"model": "openai/gpt-4o-mini", "api_key": "sk-PROFILE-never-in-clear"}}),
        )
        .await;
    assert_eq!(status, 201);

    let bytes = database_bytes(app.dir.path());
    assert!(!bytes.is_empty());
    for plain in [secret, api_key, mcp, "sk-PROFILE-never-in-clear"] {
        assert!(
            !contains(&bytes, plain),
            "{plain} found in the database files"
        );
    }
    assert!(contains(&bytes, "sealed:v1:"), "sealed values are stored");

    let again = restart_on_copy(&app, Some(KEY)).await;
    let (_, _, text) = get_text(&again, "/api/settings/secrets/S1").await;
    assert_eq!(text, secret);
    let (_, body) = get_with(&again, "/api/settings", Some("plaintext")).await;
    assert_eq!(body["agent_settings"]["llm"]["api_key"], api_key);
    let (_, body) = get_with(&again, "/api/profiles/fast", Some("plaintext")).await;
    assert_eq!(body["config"]["api_key"], "sk-PROFILE-never-in-clear");
}

#[actix_web::test]
async fn without_a_key_secrets_are_kept_in_clear() {
    // The grep above can fail: without a key the value is on disk.
    let app = spawn_app().await;
    put(
        &app,
        "/api/settings/secrets",
        json!({"name": "S1", "value": "clear-VALUE-on-disk"}),
    )
    .await;
    assert!(contains(
        &database_bytes(app.dir.path()),
        "clear-VALUE-on-disk"
    ));
}

#[actix_web::test]
async fn a_different_key_is_reported_not_a_crash() {
    let app = keyed_app().await;
    put(
        &app,
        "/api/settings/secrets",
        json!({"name": "S1", "value": "v1"}),
    )
    .await;
    set_api_key(&app, "sk-old").await;
    app.post(
        "/api/profiles/p",
        json!({"llm": {"model": "m", "api_key": "sk-p"}}),
    )
    .await;

    let other = restart_on_copy(&app, Some("a-completely-different-key")).await;
    let (status, body) = other.get("/api/settings/secrets/S1").await;
    assert_eq!(status, 500);
    assert_eq!(
        body["exception"],
        "500: Secrets file is corrupted or encrypted with a different key"
    );
    // Redacted reads still work and show the unreadable key as unset.
    let (status, body) = other.get("/api/settings").await;
    assert_eq!(status, 200);
    assert_eq!(body["agent_settings"]["llm"]["api_key"], Value::Null);
    assert_eq!(body["llm_api_key_is_set"], false);
    let (status, body) = get_with(&other, "/api/settings", Some("plaintext")).await;
    assert_eq!(
        (status, body),
        (
            409,
            json!({"detail": "Settings file is corrupted or encrypted with a different key"})
        )
    );
    // An update that would keep the unreadable value refuses…
    let (status, body) = other
        .patch(
            "/api/settings",
            json!({"conversation_settings_diff": {"max_iterations": 9}}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            409,
            json!({"detail": "Settings file is corrupted or encrypted with a different key"})
        )
    );
    // …one that replaces it goes through.
    let (status, _) = other
        .patch(
            "/api/settings",
            json!({"agent_settings_diff": {"llm": {"api_key": "sk-new"}}}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = get_with(&other, "/api/profiles/p", Some("plaintext")).await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = other.post("/api/profiles/p/activate", json!({})).await;
    assert_eq!(status, 409);
    // Deleting needs no key; the server is still healthy.
    let (status, _) = other.delete("/api/settings/secrets/S1").await;
    assert_eq!(status, 200);
    let (status, _) = other.get("/health").await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn concurrent_patches_keep_every_change() {
    let app = keyed_app().await;
    // Start from a stored record, so every update is a read-modify-write.
    set_api_key(&app, "sk-concurrent").await;
    let n = 12;
    let mut tasks = vec![];
    for i in 0..n {
        let client = app.client.clone();
        let url = format!("{}/api/settings", app.address);
        tasks.push(actix_web::rt::spawn(async move {
            let body = if i % 2 == 0 {
                json!({"agent_settings_diff": {"llm": {"litellm_extra_body": {format!("k{i}"): i}}}})
            } else {
                json!({"agent_settings_diff": {"tools": [{"name": "terminal"}]},
                       "conversation_settings_diff": {"max_iterations": 100 + i},
                       "ignored": i})
            };
            client.patch(url).json(&body).send().await.map(|r| r.status().as_u16())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task").expect("request"), 200);
    }
    let (_, body) = app.get("/api/settings").await;
    let extra = body["agent_settings"]["llm"]["litellm_extra_body"]
        .as_object()
        .unwrap();
    for i in (0..n).step_by(2) {
        assert_eq!(
            extra.get(&format!("k{i}")),
            Some(&json!(i)),
            "change {i} was lost: {extra:?}"
        );
    }
    assert_eq!(
        body["agent_settings"]["tools"],
        json!([{"name": "terminal", "params": {}}])
    );
    assert_eq!(body["llm_api_key_is_set"], true);
}

#[actix_web::test]
async fn profiles_lifecycle() {
    let app = keyed_app().await;
    let (status, body) = app.get("/api/profiles").await;
    assert_eq!(
        (status, body),
        (200, json!({"profiles": [], "active_profile": null}))
    );

    let (status, body) = app
        .post("/api/profiles/gpt", json!({"llm": {"model": "openai/gpt-4o", "api_key": "sk-1", "base_url": "http://h/v1"}}))
        .await;
    assert_eq!(
        (status, body),
        (
            201,
            json!({"name": "gpt", "message": "Profile 'gpt' saved"})
        )
    );
    let (status, body) = app.get("/api/profiles/gpt").await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "gpt");
    assert_eq!(body["api_key_set"], true);
    assert_eq!(body["config"]["api_key"], Value::Null);
    assert_eq!(body["config"]["model"], "openai/gpt-4o");
    assert_eq!(body["config"].as_object().unwrap().len(), 49);
    let (_, body) = get_with(&app, "/api/profiles/gpt", Some("plaintext")).await;
    assert_eq!(body["config"]["api_key"], "sk-1");
    let (_, body) = get_with(&app, "/api/profiles/gpt", Some("encrypted")).await;
    let token = body["config"]["api_key"].as_str().unwrap().to_string();
    assert!(token.starts_with("sealed:v1:"));

    // A sealed token posted back is opened before saving.
    let (status, _) = app
        .post(
            "/api/profiles/copy",
            json!({"llm": {"model": "openai/gpt-4o", "api_key": token}}),
        )
        .await;
    assert_eq!(status, 201);
    let (_, body) = get_with(&app, "/api/profiles/copy", Some("plaintext")).await;
    assert_eq!(body["config"]["api_key"], "sk-1");
    let (status, body) = app
        .post(
            "/api/profiles/bad",
            json!({"llm": {"model": "m", "api_key": "sealed:v1:xyz"}}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "llm", "api_key"]));
    // include_secrets=false drops the key.
    app.post(
        "/api/profiles/nokey",
        json!({"llm": {"model": "m", "api_key": "sk"}, "include_secrets": false}),
    )
    .await;
    let (_, body) = app.get("/api/profiles/nokey").await;
    assert_eq!(body["api_key_set"], false);

    let (_, body) = app.get("/api/profiles").await;
    let names: Vec<&str> = body["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["copy", "gpt", "nokey"]);
    assert_eq!(
        body["profiles"][1],
        json!({"name": "gpt", "model": "openai/gpt-4o", "base_url": "http://h/v1", "api_key_set": true})
    );

    // Activate copies the LLM into the settings.
    let (status, body) = app.post("/api/profiles/gpt/activate", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"name": "gpt", "message": "Profile 'gpt' activated and applied to current settings", "llm_applied": true})
    );
    let (_, settings) = get_with(&app, "/api/settings", Some("plaintext")).await;
    assert_eq!(settings["agent_settings"]["llm"]["api_key"], "sk-1");
    assert_eq!(settings["agent_settings"]["llm"]["base_url"], "http://h/v1");

    // Rename moves the active profile along.
    let (status, body) = app
        .post("/api/profiles/gpt/rename", json!({"new_name": "main"}))
        .await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"name": "main", "message": "Profile 'gpt' renamed to 'main'"})
        )
    );
    let (_, body) = app.get("/api/profiles").await;
    assert_eq!(body["active_profile"], "main");
    let (_, body) = get_with(&app, "/api/profiles/main", Some("plaintext")).await;
    assert_eq!(
        body["config"]["api_key"], "sk-1",
        "re-sealed for the new name"
    );
    let (status, body) = app
        .post("/api/profiles/main/rename", json!({"new_name": "main"}))
        .await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"name": "main", "message": "Profile 'main' unchanged (same name)"})
        )
    );
    let (status, body) = app
        .post("/api/profiles/main/rename", json!({"new_name": "copy"}))
        .await;
    assert_eq!(
        (status, body),
        (409, json!({"detail": "Profile 'copy' already exists"}))
    );
    let (status, body) = app
        .post("/api/profiles/ghost/rename", json!({"new_name": "x"}))
        .await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "Profile 'ghost' not found"}))
    );
    let (status, body) = app
        .post("/api/profiles/main/rename", json!({"new_name": ".bad"}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "new_name"]));
    let (status, _) = app.post("/api/profiles/main/rename", json!({})).await;
    assert_eq!(status, 422);

    let (status, body) = app.get("/api/profiles/ghost").await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "Profile 'ghost' not found"}))
    );
    let (status, body) = app.post("/api/profiles/ghost/activate", json!({})).await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "Profile 'ghost' not found"}))
    );
    let (status, body) = app.get("/api/profiles/-bad").await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["type"], "string_pattern_mismatch");
    assert_eq!(body["detail"][0]["loc"], json!(["path", "name"]));
    let (status, body) = app.get(&format!("/api/profiles/{}", "a".repeat(65))).await;
    assert_eq!(
        (status, body["detail"][0]["type"].as_str()),
        (422, Some("string_too_long"))
    );
    let (status, body) = app
        .post("/api/profiles/x", json!({"include_secrets": true}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "llm"]));
    let (status, body) = app
        .post("/api/profiles/x", json!({"llm": {"model": 3}}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "llm", "model"]));

    let (status, body) = app.delete("/api/profiles/main").await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"name": "main", "message": "Profile 'main' deleted"})
        )
    );
    let (status, _) = app.delete("/api/profiles/main").await;
    assert_eq!(status, 200, "delete is idempotent");
}

#[actix_web::test]
async fn fifty_profiles_at_most() {
    let app = keyed_app().await;
    for i in 0..50 {
        let (status, body) = app
            .post(
                &format!("/api/profiles/p{i}"),
                json!({"llm": {"model": "m"}}),
            )
            .await;
        assert_eq!(status, 201, "{i}: {body}");
    }
    let (status, body) = app
        .post("/api/profiles/p50", json!({"llm": {"model": "m"}}))
        .await;
    assert_eq!(
        (status, body),
        (
            409,
            json!({"detail": "Profile limit reached (50). Delete a profile before saving a new one."})
        )
    );
    // Replacing an existing one is still allowed.
    let (status, _) = app
        .post("/api/profiles/p7", json!({"llm": {"model": "m2"}}))
        .await;
    assert_eq!(status, 201);
    app.delete("/api/profiles/p0").await;
    let (status, _) = app
        .post("/api/profiles/p50", json!({"llm": {"model": "m"}}))
        .await;
    assert_eq!(status, 201);
    let (_, body) = app.get("/api/profiles").await;
    assert_eq!(body["profiles"].as_array().unwrap().len(), 50);
}

#[actix_web::test]
async fn listing_creates_a_profile_from_the_settings() {
    let app = keyed_app().await;
    set_api_key(&app, "sk-auto").await;
    let (status, body) = app.get("/api/profiles").await;
    assert_eq!(status, 200);
    assert_eq!(body["active_profile"], "gpt-4o");
    assert_eq!(
        body["profiles"],
        json!([{"name": "gpt-4o", "model": "openai/gpt-4o", "base_url": null, "api_key_set": true}])
    );
    let (_, body) = get_with(&app, "/api/profiles/gpt-4o", Some("plaintext")).await;
    assert_eq!(body["config"]["api_key"], "sk-auto");
}

#[actix_web::test]
async fn saved_workspaces() {
    let app = spawn_app().await;
    let (status, body) = app.get("/api/workspaces").await;
    assert_eq!(
        (status, body),
        (200, json!({"workspaces": [], "workspaceParents": []}))
    );

    let (status, body) = app
        .post(
            "/api/workspaces",
            json!({"workspaces": [
                {"id": "/srv/a", "name": "a", "path": "/srv/a", "parentPath": "/srv"},
                {"id": "/srv/a", "name": "dup", "path": "/srv/a"},
                {"id": "/srv/b", "name": "b", "path": "/srv/b", "parentPath": null}]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"workspaces": [{"id": "/srv/a", "name": "a", "path": "/srv/a", "parentPath": "/srv"},
                              {"id": "/srv/b", "name": "b", "path": "/srv/b"}],
               "workspaceParents": []})
    );
    let (_, body) = app
        .post(
            "/api/workspaces",
            json!({"workspaces": [{"id": "/srv/a", "name": "again", "path": "/srv/a"}]}),
        )
        .await;
    assert_eq!(
        body["workspaces"].as_array().unwrap().len(),
        2,
        "de-duplicated by path"
    );

    let (status, body) = app
        .post(
            "/api/workspaces/parents",
            json!({"parents": [{"id": "/srv", "name": "srv", "path": "/srv", "parentPath": "/x"}]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["workspaceParents"],
        json!([{"id": "/srv", "name": "srv", "path": "/srv"}])
    );

    for bad in [
        json!({"workspaces": [{"id": "", "name": "a", "path": "/p"}]}),
        json!({"workspaces": [{"id": "i", "name": "n".repeat(257), "path": "/p"}]}),
        json!({"workspaces": [{"id": "i", "name": "n"}]}),
        json!({"workspaces": "nope"}),
        json!({}),
    ] {
        let (status, body) = app.post("/api/workspaces", bad.clone()).await;
        assert_eq!(status, 422, "{bad}");
        assert_eq!(body["detail"][0]["loc"][0], "body");
    }

    let (status, body) = app.delete("/api/workspaces?path=%2Fsrv%2Fa").await;
    assert_eq!((status, body), (200, json!({"deleted": true})));
    let (status, body) = app.delete("/api/workspaces?path=%2Fsrv%2Fa").await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "Workspace not found"}))
    );
    let (status, body) = app.delete("/api/workspaces").await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["query", "path"]));
    let (status, body) = app.delete("/api/workspaces/parents?path=/nope").await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "Workspace parent not found"}))
    );
    let (status, _) = app.delete("/api/workspaces/parents?path=/srv").await;
    assert_eq!(status, 200);
    let (_, body) = app.get("/api/workspaces").await;
    assert_eq!(
        body,
        json!({"workspaces": [{"id": "/srv/b", "name": "b", "path": "/srv/b"}], "workspaceParents": []})
    );
}

#[actix_web::test]
async fn auth_applies_to_settings_routes() {
    let app = spawn_app_with(|s| s.session_api_keys = vec!["k".into()]).await;
    let anonymous = reqwest::Client::new();
    for path in [
        "/api/settings",
        "/api/settings/secrets",
        "/api/profiles",
        "/api/workspaces",
    ] {
        let r = anonymous
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 401, "{path}");
    }
    let (status, _) = app.get("/api/settings").await;
    assert_eq!(status, 200);
}
