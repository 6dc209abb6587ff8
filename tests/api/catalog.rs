//! Catalogue and peripheral routes: tools (and the 307 redirect), the LLM
//! catalogue, project hooks, local skills, the MCP probe over stdio,
//! streamable HTTP and SSE (against small servers started here, on
//! loopback), VS Code / desktop answers and the cloud proxy's refusals.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::helpers::{spawn_app, spawn_app_with};

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

#[actix_web::test]
async fn tools_and_redirect() {
    let app = spawn_app_with(|s| s.session_api_keys = vec!["key".into()]).await;
    let (status, body) = app.get("/api/tools/").await;
    assert_eq!(status, 200);
    let tools: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        tools,
        [
            "apply_patch",
            "delegate",
            "edit",
            "file_editor",
            "glob",
            "grep",
            "list_directory",
            "planning_file_editor",
            "read_file",
            "task",
            "task_tool_set",
            "task_tracker",
            "terminal",
            "write_file"
        ]
    );

    // The redirect is answered before authentication, as in the reference.
    let r = no_redirects()
        .get(format!("{}/api/tools?x=1", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 307);
    assert_eq!(r.headers()["location"], "/api/tools/?x=1");
    assert!(r.bytes().await.unwrap().is_empty());
    let r = no_redirects()
        .get(format!("{}/api/tools/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // The default client follows the redirect with its key.
    let r = app
        .client
        .get(format!("{}/api/tools", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (status, _) = app.post("/api/tools/", json!({})).await;
    assert_eq!(status, 405);
}

fn sorted(v: &[Value]) -> bool {
    v.windows(2).all(|w| w[0].as_str() < w[1].as_str())
}

#[actix_web::test]
async fn llm_catalogue() {
    let app = spawn_app().await;
    let (status, body) = app.get("/api/llm/providers").await;
    assert_eq!(status, 200);
    let providers = body["providers"].as_array().unwrap();
    assert!(providers.len() > 20 && sorted(providers));
    assert!(providers.contains(&json!("anthropic")) && providers.contains(&json!("openai")));

    let (_, body) = app.get("/api/llm/models").await;
    let all = body["models"].as_array().unwrap();
    assert!(all.len() > 50 && sorted(all));
    let (_, body) = app.get("/api/llm/models?provider=anthropic").await;
    let anthropic = body["models"].as_array().unwrap();
    assert!(!anthropic.is_empty() && sorted(anthropic));
    assert!(
        anthropic
            .iter()
            .all(|m| m.as_str().unwrap().starts_with("anthropic/"))
    );
    let (status, body) = app.get("/api/llm/models?provider=nobody").await;
    assert_eq!((status, body), (200, json!({"models": []})));

    let (status, body) = app.get("/api/llm/models/verified").await;
    assert_eq!(status, 200);
    let verified = body["models"].as_object().unwrap();
    assert!(
        verified["openai"]
            .as_array()
            .unwrap()
            .contains(&json!("gpt-4o"))
    );
    assert!(verified.values().all(|v| sorted(v.as_array().unwrap())));
}

#[actix_web::test]
async fn hooks_from_the_project() {
    let app = spawn_app().await;
    let project = app.path("project");
    std::fs::create_dir_all(project.join(".openhands")).unwrap();
    let (status, body) = app
        .post("/api/hooks", json!({"project_dir": project}))
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"hook_config": null})),
        "no file yet"
    );

    std::fs::write(
        project.join(".openhands/hooks.json"),
        r#"{"PreToolUse": [{"matcher": "terminal", "hooks": [{"command": "./check.sh", "timeout": 5}]}],
            "session_start": [{"hooks": [{"type": "command", "command": "echo hi", "async": true}]}]}"#,
    )
    .unwrap();
    let (status, body) = app
        .post("/api/hooks", json!({"project_dir": project}))
        .await;
    assert_eq!(status, 200);
    let cfg = &body["hook_config"];
    let keys: Vec<&String> = cfg.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "pre_tool_use",
            "post_tool_use",
            "user_prompt_submit",
            "session_start",
            "session_end",
            "stop"
        ]
    );
    assert_eq!(
        cfg["pre_tool_use"],
        json!([{"matcher": "terminal", "hooks": [{"type": "command", "command": "./check.sh", "prompt": null, "timeout": 5, "async": false}]}])
    );
    assert_eq!(cfg["session_start"][0]["matcher"], "*");
    assert_eq!(cfg["session_start"][0]["hooks"][0]["async"], true);
    assert_eq!(cfg["stop"], json!([]));

    std::fs::write(project.join(".openhands/hooks.json"), "{not json").unwrap();
    let (_, body) = app
        .post("/api/hooks", json!({"project_dir": project}))
        .await;
    assert_eq!(body, json!({"hook_config": null}));
    let (_, body) = app.post("/api/hooks", json!({})).await;
    assert_eq!(body, json!({"hook_config": null}));
    let (status, body) = app.post("/api/hooks", json!({"project_dir": 5})).await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "project_dir"]));
    let (status, _) = app.post_raw("/api/hooks", "").await;
    assert_eq!(status, 422);
}

#[actix_web::test]
async fn skills_from_local_folders() {
    let app = spawn_app().await;
    let project = app.path("project");
    let skills = project.join(".agents/skills");
    std::fs::create_dir_all(skills.join("pdf-tools")).unwrap();
    std::fs::write(skills.join("style.md"), "Use four spaces.").unwrap();
    std::fs::write(
        skills.join("deploy.md"),
        "---\nname: deploy\ndescription: How we deploy\ntriggers:\n  - deploy\n  - release\n---\nRun make deploy.",
    )
    .unwrap();
    std::fs::write(
        skills.join("pdf-tools/SKILL.md"),
        "---\nname: pdf-tools\ndescription: Read PDFs\ndisable-model-invocation: true\n---\nUse pdftotext.",
    )
    .unwrap();

    let (status, body) = app
        .post(
            "/api/skills",
            json!({"load_user": false, "project_dir": project,
                   "sandbox_config": {"exposed_urls": [{"name": "WORKER_1", "url": "http://localhost:12000", "port": 12000},
                                                       {"name": "OTHER", "url": "http://x", "port": 1}]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["sources"],
        json!({"sandbox": 1, "sdk_base": 0, "org": 0, "project": 3})
    );
    let list = body["skills"].as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["work_hosts", "style", "deploy", "pdf-tools"]);
    assert!(
        list[0]["content"]
            .as_str()
            .unwrap()
            .contains("http://localhost:12000 (port 12000)")
    );
    assert_eq!(
        list[2],
        json!({"name": "deploy", "type": "knowledge", "content": "Run make deploy.", "triggers": ["deploy", "release"],
               "source": skills.join("deploy.md").to_string_lossy(), "description": "How we deploy",
               "is_agentskills_format": false, "disable_model_invocation": false})
    );
    assert_eq!(list[1]["type"], "repo");
    assert_eq!(list[3]["type"], "agentskills");
    assert_eq!(list[3]["disable_model_invocation"], true);

    let (status, body) = app
        .post(
            "/api/skills",
            json!({"load_project": false, "load_user": false}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"skills": [], "sources": {"sandbox": 0, "sdk_base": 0, "org": 0, "project": 0}})
        )
    );
    let (status, _) = app.post("/api/skills", json!({"load_user": "maybe"})).await;
    assert_eq!(status, 422);
    let (status, body) = app
        .post(
            "/api/skills",
            json!({"org_config": {"repository": "o/r", "provider": "github", "org_name": "o"}}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(
        body["detail"][0]["loc"],
        json!(["body", "org_config", "org_repo_url"])
    );

    let (status, body) = app.post("/api/skills/sync", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "error");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("nothing to sync")
    );
    let (status, body) = app.get("/api/skills/installed").await;
    assert_eq!((status, body), (200, json!({"skills": []})));
    let (status, body) = app.get("/api/skills/marketplace").await;
    assert_eq!((status, body), (200, json!({"skills": []})));
    let (status, body) = app.get("/api/skills/installed/my-skill").await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "Skill 'my-skill' is not installed"}))
    );
    let (status, _) = app.delete("/api/skills/installed/my-skill").await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post("/api/skills/installed/my-skill/refresh", json!({}))
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .patch("/api/skills/installed/my-skill", json!({"enabled": false}))
        .await;
    assert_eq!(status, 404);
    let (status, _) = app.patch("/api/skills/installed/my-skill", json!({})).await;
    assert_eq!(status, 422);
    let (status, body) = app.get("/api/skills/installed/Bad_Name").await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["path", "skill_name"]));
    let (status, _) = app.post("/api/skills/install", json!({"source": ""})).await;
    assert_eq!(status, 422);
    let (status, body) = app
        .post("/api/skills/install", json!({"source": "github:o/r"}))
        .await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("not supported"));
}

/// A shell MCP server answering `initialize` and `tools/list`.
const FAKE_STDIO_SERVER: &str = r#"
while IFS= read -r line; do
  id=$(printf '%s' "$line" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
  case "$line" in
    *'"initialize"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"fake","version":"1"}}}\n' "$id" ;;
    *'"tools/list"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"read_file","inputSchema":{}},{"name":"write_file","inputSchema":{}}]}}\n' "$id" ;;
  esac
done
"#;

fn rpc_answer(msg: &Value) -> Option<Value> {
    let id = msg.get("id")?.clone();
    let result = match msg["method"].as_str()? {
        "initialize" => {
            json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "t", "version": "1"}})
        }
        "tools/list" if msg["params"]["cursor"].is_null() => {
            json!({"tools": [{"name": "alpha", "inputSchema": {}}], "nextCursor": "p2"})
        }
        "tools/list" => json!({"tools": [{"name": "beta", "inputSchema": {}}]}),
        _ => {
            return Some(
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "nope"}}),
            );
        }
    };
    Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

type SseSender = Arc<Mutex<Option<tokio::sync::mpsc::UnboundedSender<String>>>>;

/// Streamable HTTP at `/mcp` (SSE-framed answers, session header checked)
/// and the older SSE transport at `/sse` + `/messages`, on loopback.
fn start_mcp_http_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let sse: SseSender = Arc::new(Mutex::new(None));
    let server = HttpServer::new(move || {
        let sse = sse.clone();
        App::new()
            .app_data(web::Data::new(sse))
            .route(
                "/mcp",
                web::post().to(|req: HttpRequest, body: web::Bytes| async move {
                    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    if req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        != Some("Bearer tok")
                    {
                        return HttpResponse::Unauthorized().finish();
                    }
                    let first = msg["method"] == "initialize";
                    if !first && req.headers().get("mcp-session-id").is_none() {
                        return HttpResponse::BadRequest().finish();
                    }
                    match rpc_answer(&msg) {
                        None => HttpResponse::Accepted().finish(),
                        Some(a) => HttpResponse::Ok()
                            .insert_header(("mcp-session-id", "s-1"))
                            .content_type("text/event-stream")
                            .body(format!("event: message\ndata: {a}\n\n")),
                    }
                }),
            )
            .route(
                "/sse",
                web::get().to(|state: web::Data<SseSender>| async move {
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
                    let _ = tx.send("event: endpoint\ndata: /messages?session_id=1\n\n".into());
                    *state.lock().unwrap() = Some(tx);
                    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                        rx.recv()
                            .await
                            .map(|s| (Ok::<_, actix_web::Error>(web::Bytes::from(s)), rx))
                    });
                    HttpResponse::Ok()
                        .content_type("text/event-stream")
                        .streaming(stream)
                }),
            )
            .route(
                "/messages",
                web::post().to(|state: web::Data<SseSender>, body: web::Bytes| async move {
                    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    if let Some(a) = rpc_answer(&msg)
                        && let Some(tx) = state.lock().unwrap().as_ref()
                    {
                        let _ = tx.send(format!("event: message\ndata: {a}\n\n"));
                    }
                    HttpResponse::Accepted().finish()
                }),
            )
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    actix_web::rt::spawn(server);
    port
}

#[actix_web::test]
async fn mcp_probe() {
    let app = spawn_app().await;
    let (status, body) = app
        .post("/api/mcp/test", json!({"server": {"type": "stdio", "command": "sh", "args": ["-c", FAKE_STDIO_SERVER]}}))
        .await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"ok": true, "tools": ["read_file", "write_file"]})
        )
    );

    let (status, body) = app
        .post(
            "/api/mcp/test",
            json!({"server": {"type": "stdio", "command": "/no/such/mcp-server"}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["ok"].as_bool(), body["error_kind"].as_str()),
        (Some(false), Some("connection"))
    );
    let (_, body) = app
        .post("/api/mcp/test", json!({"timeout": 0.3, "server": {"type": "stdio", "command": "sleep", "args": ["20"]}}))
        .await;
    assert_eq!(body["error_kind"], "timeout");

    let port = start_mcp_http_server();
    for kind in ["http", "shttp", "streamable-http"] {
        let (status, body) = app
            .post(
                "/api/mcp/test",
                json!({"name": "remote", "server": {"type": kind, "url": format!("http://127.0.0.1:{port}/mcp"), "api_key": "tok"}}),
            )
            .await;
        assert_eq!(
            (status, &body),
            (200, &json!({"ok": true, "tools": ["alpha", "beta"]})),
            "{kind}"
        );
    }
    let (_, body) = app
        .post("/api/mcp/test", json!({"server": {"type": "http", "url": format!("http://127.0.0.1:{port}/mcp"), "headers": {"Authorization": "Bearer wrong"}, "api_key": "tok"}}))
        .await;
    assert_eq!(
        body["error_kind"], "connection",
        "a caller's Authorization header wins: {body}"
    );
    assert!(!body.to_string().contains("wrong"));
    let (_, body) = app
        .post(
            "/api/mcp/test",
            json!({"server": {"type": "sse", "url": format!("http://127.0.0.1:{port}/sse")}}),
        )
        .await;
    assert_eq!(body, json!({"ok": true, "tools": ["alpha", "beta"]}));
    let (_, body) = app
        .post(
            "/api/mcp/test",
            json!({"server": {"type": "http", "url": format!("http://127.0.0.1:{port}/missing")}}),
        )
        .await;
    assert_eq!(body["error_kind"], "connection");

    for (bad, loc) in [
        (json!({}), json!(["body", "server"])),
        (
            json!({"server": {"command": "x"}}),
            json!(["body", "server"]),
        ),
        (
            json!({"server": {"type": "ftp", "url": "x"}}),
            json!(["body", "server"]),
        ),
        (
            json!({"server": {"type": "stdio", "command": ""}}),
            json!(["body", "server", "stdio", "command"]),
        ),
        (
            json!({"server": {"type": "http"}}),
            json!(["body", "server", "http", "url"]),
        ),
        (
            json!({"server": {"type": "stdio", "command": "x"}, "timeout": 0}),
            json!(["body", "timeout"]),
        ),
        (
            json!({"server": {"type": "stdio", "command": "x"}, "timeout": 121}),
            json!(["body", "timeout"]),
        ),
        (
            json!({"server": {"type": "stdio", "command": "x"}, "name": ""}),
            json!(["body", "name"]),
        ),
        (
            json!({"server": {"type": "stdio", "command": "x", "env": {"TOKEN": 1}}}),
            json!(["body", "server", "stdio", "env", "TOKEN"]),
        ),
    ] {
        let (status, body) = app.post("/api/mcp/test", bad.clone()).await;
        assert_eq!(status, 422, "{bad}");
        assert_eq!(body["detail"][0]["loc"], loc, "{bad}");
    }
}

#[actix_web::test]
async fn vscode_desktop_and_cloud_proxy() {
    let app = spawn_app().await;
    let (status, body) = app.get("/api/vscode/url").await;
    assert_eq!(status, 503);
    assert_eq!(body["detail"], "Internal Server Error");
    assert!(
        body["exception"]
            .as_str()
            .unwrap()
            .starts_with("503: VSCode is not available")
    );
    let (status, body) = app.get("/api/vscode/status").await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["running"].as_bool(), body["enabled"].as_bool()),
        (Some(false), Some(false))
    );
    assert!(body["message"].is_string());
    let (status, body) = app.get("/api/desktop/url").await;
    assert_eq!(status, 503);
    assert_eq!(
        body["exception"],
        "503: Desktop is disabled in configuration. Set enable_vnc=true to enable."
    );

    let app2 = spawn_app_with(|s| s.enable_vscode = false).await;
    let (_, body) = app2.get("/api/vscode/url").await;
    assert_eq!(
        body["exception"],
        "503: VSCode is disabled in configuration. Set enable_vscode=true to enable."
    );
    let (_, body) = app2.get("/api/vscode/status").await;
    assert_eq!(
        body,
        json!({"running": false, "enabled": false, "message": "VSCode is disabled in configuration"})
    );

    for host in [
        "https://evil.example",
        "http://127.0.0.1:1",
        "http://localhost",
        "http://169.254.169.254",
        "file:///etc",
    ] {
        let (status, body) = app
            .post("/api/cloud-proxy", json!({"host": host, "path": "/api/x"}))
            .await;
        assert_eq!(status, 403, "{host}");
        assert_eq!(
            body["detail"],
            format!("Cloud proxy host not allowed: {host}")
        );
    }
    let (status, body) = app.post("/api/cloud-proxy", json!({"path": "/x"})).await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "host"]));
    let (status, _) = app
        .post(
            "/api/cloud-proxy",
            json!({"host": "https://app.all-hands.dev", "path": "/x", "timeout_seconds": 0.5}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, body) = app
        .post("/api/cloud-proxy", json!({"host": "https://app.all-hands.dev", "path": "/x", "headers": {"Authorization": 1}}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["detail"][0]["input"], "<redacted>");
}
