//! Workspace static files and the workspace cookie: content types,
//! directory indexes, missing things, traversal and symlink escapes
//! refused, inside symlinks allowed, and the header-or-cookie flow.

use serde_json::{Value, json};

use crate::files::raw_http;
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

async fn fetch(app: &TestApp, path: &str) -> (u16, String, String) {
    let r = app
        .client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = header(&r, "content-type");
    (status, ct, r.text().await.unwrap())
}

/// A raw GET (the path is sent exactly as given).
async fn raw_get(app: &TestApp, path: &str) -> (u16, String) {
    raw_http(
        app.port,
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    )
    .await
}

#[actix_web::test]
async fn serves_workspace_files() {
    let app = spawn_app().await;
    let id = app.create_conversation().await;
    let ws = app.path("ws");
    std::fs::write(ws.join("index.html"), "<h1>root</h1>").unwrap();
    std::fs::create_dir_all(ws.join("sub/empty")).unwrap();
    std::fs::write(ws.join("sub/page.html"), "<p>page</p>").unwrap();
    std::fs::write(ws.join("sub/index.html"), "<p>sub index</p>").unwrap();
    std::fs::write(ws.join("data.json"), "{\"a\":1}").unwrap();
    std::fs::write(ws.join("notes"), "plain words").unwrap();
    std::fs::write(ws.join("a b.txt"), "spaced").unwrap();
    let base = format!("/api/conversations/{id}/workspace");

    let (status, ct, body) = fetch(&app, &base).await;
    assert_eq!(
        (status, ct.as_str(), body.as_str()),
        (200, "text/html; charset=utf-8", "<h1>root</h1>")
    );
    let (status, _, body) = fetch(&app, &format!("{base}/")).await;
    assert_eq!((status, body.as_str()), (200, "<h1>root</h1>"));
    let (status, ct, body) = fetch(&app, &format!("{base}/sub/page.html")).await;
    assert_eq!(
        (status, ct.as_str(), body.as_str()),
        (200, "text/html; charset=utf-8", "<p>page</p>")
    );
    let (status, _, body) = fetch(&app, &format!("{base}/sub")).await;
    assert_eq!((status, body.as_str()), (200, "<p>sub index</p>"));
    let (status, ct, _) = fetch(&app, &format!("{base}/data.json")).await;
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    let (status, ct, body) = fetch(&app, &format!("{base}/notes")).await;
    assert_eq!(
        (status, ct.as_str(), body.as_str()),
        (200, "text/plain; charset=utf-8", "plain words")
    );
    let (status, _, body) = fetch(&app, &format!("{base}/a%20b.txt")).await;
    assert_eq!((status, body.as_str()), (200, "spaced"));
    // `..` that stays inside the workspace is fine.
    let (status, body) = raw_get(&app, &format!("{base}/sub/../index.html")).await;
    assert_eq!((status, body.as_str()), (200, "<h1>root</h1>"));

    let (status, _, body) = fetch(&app, &format!("{base}/sub/empty")).await;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body).unwrap()),
        (404, json!({"detail": "No index.html in directory"}))
    );
    let (status, _, body) = fetch(&app, &format!("{base}/missing.txt")).await;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body).unwrap()),
        (404, json!({"detail": "File not found"}))
    );
    let unknown = "11111111-2222-3333-4444-555555555555";
    let (status, body) = app
        .get(&format!("/api/conversations/{unknown}/workspace/x"))
        .await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"detail": format!("Conversation not found: {unknown}")})
        )
    );
    assert_eq!(app.get("/api/conversations/nope/workspace/x").await.0, 422);

    std::fs::remove_dir_all(&ws).unwrap();
    let (status, body) = app.get(&format!("{base}/index.html")).await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "Workspace directory does not exist"}))
    );
}

#[actix_web::test]
async fn traversal_and_symlink_escapes_are_refused() {
    let app = spawn_app().await;
    let id = app.create_conversation().await;
    let ws = app.path("ws");
    std::fs::write(ws.join("index.html"), "inside").unwrap();
    let outside = app.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "TOP-SECRET-CONTENT").unwrap();
    std::os::unix::fs::symlink(&outside, ws.join("escape")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), ws.join("evil.html")).unwrap();
    std::os::unix::fs::symlink(outside.join("nothing"), ws.join("dangling")).unwrap();
    std::os::unix::fs::symlink(ws.join("index.html"), ws.join("alias.html")).unwrap();
    std::fs::create_dir_all(ws.join("trap")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), ws.join("trap/index.html")).unwrap();
    let base = format!("/api/conversations/{id}/workspace");
    let refused = json!({"detail": "Path is outside the workspace"});

    for path in [
        format!("{base}/../../../../../../etc/passwd"),
        format!("{base}/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd"),
        format!("{base}/..%2F..%2F..%2F..%2Fetc%2Fpasswd"),
        format!("{base}/%2E%2E%2Foutside%2Fsecret.txt"),
        format!("{base}//etc/passwd"),
        format!("{base}/%2Fetc%2Fpasswd"),
        format!("{base}/escape/secret.txt"),
        format!("{base}/escape"),
        format!("{base}/evil.html"),
        format!("{base}/dangling"),
        format!("{base}/escape/missing.txt"),
        format!("{base}/trap/"),
    ] {
        let (status, body) = raw_get(&app, &path).await;
        assert!(!body.contains("TOP-SECRET"), "{path} leaked: {body}");
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            refused,
            "{path}"
        );
    }

    let (status, body) = raw_get(&app, &format!("{base}/alias.html")).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "inside"),
        "inside symlinks are served"
    );
}

#[actix_web::test]
async fn cookie_flow() {
    let app = spawn_app_with(|s| s.session_api_keys = vec!["k1".into()]).await;
    let id = app.create_conversation().await;
    assert_eq!(app.api_key.as_deref(), Some("k1"));
    std::fs::write(app.path("ws/index.html"), "cookie page").unwrap();
    let bare = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", app.address);
    let page = format!("/api/conversations/{id}/workspace/index.html");

    let r = bare
        .post(url("/api/auth/workspace-session"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = bare
        .post(url("/api/auth/workspace-session"))
        .header("x-session-api-key", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let r = bare
        .post(url("/api/auth/workspace-session"))
        .header("x-session-api-key", "k1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        header(&r, "set-cookie"),
        "oh_workspace_session_key=k1; HttpOnly; Max-Age=28800; Path=/api/conversations; SameSite=none; Secure; Partitioned"
    );
    let r = bare
        .post(url("/api/auth/workspace-session"))
        .header("x-session-api-key", "k1")
        .header("x-forwarded-host", "example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "set-cookie"),
        "oh_workspace_session_key=k1; HttpOnly; Max-Age=28800; Path=/api/conversations; SameSite=none",
        "plain http on a public host is not a secure context"
    );
    let r = bare
        .post(url("/api/auth/workspace-session"))
        .header("x-session-api-key", "k1")
        .header("x-forwarded-host", "example.com")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert!(header(&r, "set-cookie").ends_with("; Secure; Partitioned"));

    let r = bare.get(url(&page)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = bare
        .get(url(&page))
        .header("cookie", "oh_workspace_session_key=k1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "cookie page");
    let r = bare
        .get(url(&page))
        .header("cookie", "other=1; oh_workspace_session_key=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = bare
        .get(url(&page))
        .header("x-session-api-key", "k1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The cookie opens the workspace routes only.
    let r = bare
        .get(url(&format!("/api/conversations/{id}")))
        .header("cookie", "oh_workspace_session_key=k1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let r = bare
        .delete(url("/api/auth/workspace-session"))
        .header("x-session-api-key", "k1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        header(&r, "set-cookie"),
        "oh_workspace_session_key=\"\"; HttpOnly; Max-Age=0; Path=/api/conversations; SameSite=none; Secure; Partitioned"
    );
}

#[actix_web::test]
async fn open_server_mints_an_empty_cookie() {
    let app = spawn_app().await;
    let r = reqwest::Client::new()
        .post(format!("{}/api/auth/workspace-session", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(header(&r, "set-cookie").starts_with("oh_workspace_session_key=\"\"; HttpOnly"));
}
