//! Authentication probes on every `/api/*` route of `/openapi.json`, with
//! two keys configured: a missing, empty, wrong or misplaced key (query
//! string, cookie outside the workspace routes, `Authorization`) is 401;
//! the header name in any letter case and either key are accepted; a
//! percent-encoded `/api` prefix does not slip past the check; preflights
//! never need a key. Sockets: the reference's 403 (bad key at the
//! handshake) and 4001 (bad first-frame key), and no key from a cookie.

use serde_json::json;

use crate::helpers::{WsItem, spawn_app_with};
use crate::hostile::{fill, operations};
use crate::rawwire::raw_request;

const KEY_ONE: &str = "auth-probe-key-one";
const KEY_TWO: &str = "auth-probe-key-two";

fn is_workspace_route(path: &str) -> bool {
    path.starts_with("/api/conversations/{conversation_id}/workspace")
}

async fn status_of(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.expect("request").status().as_u16()
}

#[actix_web::test]
async fn every_api_route_needs_the_key_in_the_header() {
    let app = spawn_app_with(|s| s.session_api_keys = vec![KEY_ONE.into(), KEY_TWO.into()]).await;
    // An LLM on a closed loopback port: a run started by a probe ends at once.
    let (status, info) = app
        .post(
            "/api/conversations",
            app.conversation_body(Some("http://127.0.0.1:9/v1")),
        )
        .await;
    assert_eq!(status, 201, "{info}");
    let id = info["id"].as_str().unwrap().to_string();
    let bare = reqwest::Client::new();
    let ops = operations(&app).await;
    let api: Vec<_> = ops.iter().filter(|o| o.path.starts_with("/api/")).collect();
    assert!(api.len() > 60);
    let port = app.port;
    for op in api {
        let path = fill(&op.path, |n| {
            if n == "conversation_id" {
                id.clone()
            } else {
                "x".into()
            }
        });
        let url = format!("{}{path}", app.address);
        let m = reqwest::Method::from_bytes(op.method.as_bytes()).unwrap();
        let req = || bare.request(m.clone(), &url);
        let what = format!("{} {path}", op.method);
        // Refused.
        assert_eq!(status_of(req()).await, 401, "{what}: no key");
        assert_eq!(
            status_of(req().header("X-Session-API-Key", "")).await,
            401,
            "{what}: empty key"
        );
        for wrong in [
            "wrong",
            "auth-probe-key-on",
            "auth-probe-key-one2",
            "AUTH-PROBE-KEY-ONE",
        ] {
            assert_eq!(
                status_of(req().header("X-Session-API-Key", wrong)).await,
                401,
                "{what}: wrong key {wrong}"
            );
        }
        let sep = if url.contains('?') { '&' } else { '?' };
        assert_eq!(
            status_of(bare.request(m.clone(), format!("{url}{sep}session_api_key={KEY_ONE}")))
                .await,
            401,
            "{what}: key in the query string is not honoured on HTTP routes"
        );
        assert_eq!(
            status_of(req().header("Authorization", format!("Bearer {KEY_ONE}"))).await,
            401,
            "{what}: Authorization is not the key header"
        );
        let cookie =
            status_of(req().header("Cookie", format!("oh_workspace_session_key={KEY_ONE}"))).await;
        if is_workspace_route(&op.path) {
            assert_ne!(cookie, 401, "{what}: the workspace cookie is accepted here");
        } else {
            assert_eq!(cookie, 401, "{what}: cookie outside the workspace routes");
        }
        // The `/api` prefix percent-encoded reaches the same handler: it
        // must be guarded the same way.
        for encoded in ["/%61pi/", "/a%70i/", "/%61%70%69/"] {
            let p = path.replacen("/api/", encoded, 1);
            let s = status_of(bare.request(m.clone(), format!("{}{p}", app.address))).await;
            assert_eq!(s, 401, "{} {p}: encoded prefix", op.method);
        }
        // Accepted: either key, the header name in any case (raw request,
        // since client libraries lower-case header names).
        for (name, key) in [
            ("X-Session-API-Key", KEY_ONE),
            ("x-session-api-key", KEY_TWO),
            ("X-SESSION-API-KEY", KEY_ONE),
            ("x-SeSsIoN-aPi-KeY", KEY_TWO),
        ] {
            let raw = format!(
                "{} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{name}: {key}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                op.method
            );
            let (s, text) =
                actix_web::rt::task::spawn_blocking(move || raw_request(port, raw.as_bytes()))
                    .await
                    .unwrap();
            assert!(
                s != 401 && s != 403 && s != 0,
                "{what} with {name}: {s} {text:.200}"
            );
        }
        // A preflight never needs a key.
        let pre = bare
            .request(reqwest::Method::OPTIONS, &url)
            .header("Origin", "http://localhost:3000")
            .header("Access-Control-Request-Method", op.method.as_str())
            .header(
                "Access-Control-Request-Headers",
                "x-session-api-key,content-type",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(pre.status().as_u16(), 200, "{what}: preflight");
        assert_eq!(
            pre.headers()
                .get("access-control-allow-origin")
                .and_then(|v| v.to_str().ok()),
            Some("http://localhost:3000")
        );
    }
    // Routes outside /api stay open.
    for open in [
        "/health",
        "/alive",
        "/ready",
        "/server_info",
        "/openapi.json",
    ] {
        assert_eq!(
            status_of(bare.get(format!("{}{open}", app.address))).await,
            200,
            "{open}"
        );
    }
}

#[actix_web::test]
async fn sockets_take_the_key_from_query_header_or_first_frame_only() {
    let app = spawn_app_with(|s| s.session_api_keys = vec![KEY_ONE.into(), KEY_TWO.into()]).await;
    let id = app.create_conversation().await;
    for path in [
        format!("/sockets/events/{id}"),
        "/sockets/bash-events".to_string(),
    ] {
        let sep = '?';
        // Refused at the handshake: a wrong or empty key in the query or header.
        for q in [
            "session_api_key=wrong",
            "session_api_key=",
            "session_api_key=%FF",
        ] {
            assert_eq!(
                app.ws_status(&format!("{path}{sep}{q}")).await.err(),
                Some(403),
                "{path}?{q}"
            );
        }
        // Either key, in the query or in a header named in any case.
        for q in [
            format!("session_api_key={KEY_ONE}"),
            format!("session_api_key={KEY_TWO}"),
        ] {
            let ws = app.ws(&format!("{path}{sep}{q}"), &[]).await;
            drop(ws);
        }
        for (name, key) in [
            ("X-SESSION-API-KEY", KEY_ONE),
            ("x-session-api-key", KEY_TWO),
        ] {
            let ws = app.ws(&path, &[(name, key)]).await;
            drop(ws);
        }
        // A key in a cookie is not a key: the socket waits for the
        // first-frame auth, and anything else closes it with 4001.
        let mut ws = app
            .ws(
                &path,
                &[("Cookie", &format!("oh_workspace_session_key={KEY_ONE}"))],
            )
            .await;
        ws.send(&json!({"type": "auth", "session_api_key": "wrong"}))
            .await;
        assert!(
            matches!(ws.next(5).await, Some(WsItem::Closed(Some(4001), _))),
            "{path}: cookie"
        );
        let mut ws = app.ws(&path, &[]).await;
        ws.send(&json!({"type": "auth", "session_api_key": KEY_TWO}))
            .await;
        if path.starts_with("/sockets/events/") {
            assert_eq!(ws.json(5).await["key"], "full_state");
        } else {
            // The bash socket sends nothing until there is output: it is
            // still open, and answers a request.
            ws.send(&json!({"command": "echo authed"})).await;
            let frames = ws.collect(3, 5).await;
            assert!(!frames.is_empty(), "{path}: nothing after first-frame auth");
        }
    }
}
