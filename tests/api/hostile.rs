//! Hostile input: every route of our own `/openapi.json` is sent hostile
//! path, query and body values and must answer a 4xx with a JSON body
//! naming the problem, never a 5xx; the size limits (JSON bodies, socket
//! frames, query strings, nesting depth, numbers) hold and answer with the
//! right codes; and path-taking routes refuse escapes where they are
//! confined (workspace files) and fail cleanly where the reference defines
//! them to take any path (upload/download, git, bash `cwd`, hooks and
//! skills `project_dir`, a conversation's `working_dir`).
//!
//! Authentication probes are in `hostile_auth.rs`, secret hygiene in
//! `hostile_secrets.rs`.

use serde_json::{Value, json};

use crate::helpers::{TestApp, WsItem, spawn_app_with};
use crate::rawwire::{RawFrame, RawWs, raw_request};

/// One operation of `/openapi.json`.
#[derive(Debug, Clone)]
pub struct Op {
    /// Upper-case method.
    pub method: String,
    /// Path template.
    pub path: String,
    /// Names of the path parameters.
    pub path_params: Vec<String>,
    /// Names of the query parameters.
    pub query_params: Vec<String>,
    /// Whether a request body is described (and its content type).
    pub body: Option<String>,
}

/// Every operation our server describes.
pub async fn operations(app: &TestApp) -> Vec<Op> {
    operations_at(&app.address, &app.client).await
}

/// Every operation described by the server at `base`.
pub async fn operations_at(base: &str, client: &reqwest::Client) -> Vec<Op> {
    let doc: Value = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("openapi JSON");
    let mut ops = vec![];
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let names = |at: &str| -> Vec<String> {
                params
                    .iter()
                    .filter(|p| p["in"] == at)
                    .filter_map(|p| p["name"].as_str().map(str::to_string))
                    .collect()
            };
            ops.push(Op {
                method: method.to_ascii_uppercase(),
                path: path.clone(),
                path_params: names("path"),
                query_params: names("query"),
                body: op["requestBody"]["content"]
                    .as_object()
                    .and_then(|c| c.keys().next().cloned()),
            });
        }
    }
    assert!(ops.len() > 60, "only {} operations described", ops.len());
    ops
}

/// `template` with every `{param}` replaced by `value(param)`.
pub fn fill(template: &str, value: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closing brace") + start;
        out.push_str(&value(&rest[start + 1..end]));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Routes that answer 503 by the reference's contract (the service is not
/// part of this server), whatever the input.
fn documented_5xx(op: &Op, status: u16) -> bool {
    status == 503 && matches!(op.path.as_str(), "/api/vscode/url" | "/api/desktop/url")
}

/// Sends a request and checks the answer: never 5xx (except the
/// documented ones), and a 4xx carries a JSON `detail`.
async fn probe(app: &TestApp, op: &Op, url_path: &str, body: Option<Vec<u8>>, what: &str) -> u16 {
    let method = reqwest::Method::from_bytes(op.method.as_bytes()).expect("method");
    let mut req = app
        .client
        .request(method, format!("{}{url_path}", app.address));
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert!(
        status < 500 || documented_5xx(op, status),
        "{} {url_path} ({what}) answered {status}: {text}",
        op.method
    );
    if (400..500).contains(&status) && status != 405 {
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| {
            panic!(
                "{} {url_path} ({what}) answered {status} without JSON: {text:.200}",
                op.method
            )
        });
        assert!(v.get("detail").is_some(), "{url_path}: {text:.200}");
    }
    status
}

/// Percent-encodes everything but unreserved characters.
pub fn qenc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn deep_array(depth: usize) -> Vec<u8> {
    let mut v = vec![b'['; depth];
    v.extend(std::iter::repeat_n(b']', depth));
    v
}

fn deep_object(depth: usize) -> Vec<u8> {
    let mut s = String::new();
    for _ in 0..depth {
        s.push_str("{\"a\":");
    }
    s.push('1');
    for _ in 0..depth {
        s.push('}');
    }
    s.into_bytes()
}

const PATH_VALUES: [&str; 9] = [
    "%FF%FE",
    "%00",
    "a%00b",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e",
    "a%2Fb",
    "-1",
    "1e99",
    "%F0%9F%92%A9",
];

const QUERY_VALUES: [&str; 10] = [
    "%FF%FE",
    "%00",
    "1e99",
    "-1",
    "NaN",
    "99999999999999999999999",
    "",
    "..%2F..%2F..%2Fetc",
    "%C0%AF",
    "true%00",
];

#[actix_web::test]
async fn every_route_answers_hostile_values_without_5xx() {
    let app = spawn_app_with(|s| s.session_api_keys = vec!["hostile-key".into()]).await;
    // An LLM on a closed loopback port: nothing here may reach further.
    let (status, info) = app
        .post(
            "/api/conversations",
            app.conversation_body(Some("http://127.0.0.1:9/v1")),
        )
        .await;
    assert_eq!(status, 201, "{info}");
    let id = info["id"].as_str().unwrap().to_string();
    let long = "a".repeat(8000);
    let ops = operations(&app).await;
    let mut requests = 0;
    for op in &ops {
        // Hostile path segments.
        for param in &op.path_params {
            for v in PATH_VALUES.iter().copied().chain([long.as_str()]) {
                let p = fill(&op.path, |name| {
                    if name == param {
                        v.to_string()
                    } else if name == "conversation_id" {
                        id.clone()
                    } else {
                        "x".into()
                    }
                });
                probe(&app, op, &p, None, &format!("path {param}={v:.20}")).await;
                requests += 1;
            }
        }
        // Hostile query values, one parameter at a time.
        let base = fill(&op.path, |name| {
            if name == "conversation_id" {
                id.clone()
            } else {
                "x".into()
            }
        });
        for param in &op.query_params {
            for v in QUERY_VALUES.iter().copied().chain([long.as_str()]) {
                let p = format!("{base}?{param}={v}");
                probe(&app, op, &p, None, &format!("query {param}={v:.20}")).await;
                requests += 1;
            }
            // Repeated, and with a key that is not UTF-8 once decoded.
            let p = format!("{base}?{param}=1&{param}=2&%FF=%FE");
            probe(&app, op, &p, None, "repeated").await;
        }
        // Hostile bodies.
        if op.body.as_deref() == Some("application/json") {
            let bodies: Vec<(&str, Vec<u8>)> = vec![
                ("empty", vec![]),
                ("truncated", b"{\"a\":".to_vec()),
                ("not utf-8", b"{\"a\":\"\xff\xfe\"}".to_vec()),
                ("bare utf-8 junk", b"\xc0\xaf\xed\xa0\x80".to_vec()),
                ("null", b"null".to_vec()),
                ("array", b"[]".to_vec()),
                ("string", b"\"s\"".to_vec()),
                ("huge number", b"1e999".to_vec()),
                ("nan", b"{\"timeout\": NaN}".to_vec()),
                ("nul", b"{\"a\":\"\\u0000\",\"\\u0000\":1}".to_vec()),
                ("lone surrogate", b"{\"a\":\"\\ud800\"}".to_vec()),
                ("deep array", deep_array(100_000)),
                ("deep object", deep_object(100)),
                ("wrong types", br#"{"command":1,"name":[],"path":{},"llm":"x","secrets":[1],"agent":7,"workspace":null,"title":false,"policy":1,"question":{},"project_dir":[],"server":"x","host":1}"#.to_vec()),
            ];
            for (what, b) in bodies {
                probe(&app, op, &base, Some(b), what).await;
                requests += 1;
            }
        }
    }
    assert!(requests > 500, "only {requests} probes");
    // Still serving, and the conversation is intact.
    let (status, info) = app.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(status, 200, "{info}");
}

#[actix_web::test]
async fn json_body_limit_is_413_naming_the_limit() {
    let app = spawn_app_with(|s| s.http.max_json_bytes = 4096).await;
    let id = app.create_conversation().await;
    let big = format!("{{\"title\": \"{}\"}}", "x".repeat(8000));
    for (method, path) in [
        ("POST", "/api/conversations".to_string()),
        ("PATCH", format!("/api/conversations/{id}")),
        ("POST", format!("/api/conversations/{id}/events")),
        ("PATCH", "/api/settings".to_string()),
        ("PUT", "/api/settings/secrets".to_string()),
        ("POST", "/api/bash/execute_bash_command".to_string()),
    ] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        // With a Content-Length, and streamed (chunked, length unknown).
        for chunked in [false, true] {
            let body = if chunked {
                let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
                    .as_bytes()
                    .chunks(1000)
                    .map(|c| Ok(c.to_vec()))
                    .collect();
                reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
            } else {
                reqwest::Body::from(big.clone())
            };
            let r = app
                .client
                .request(m.clone(), format!("{}{path}", app.address))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("request");
            assert_eq!(
                r.status().as_u16(),
                413,
                "{method} {path} chunked={chunked}"
            );
            let v: Value = r.json().await.expect("JSON 413");
            let detail = v["detail"].as_str().unwrap_or("");
            assert!(detail.contains("4096"), "{detail}");
        }
    }
    // Just under the limit is parsed (and judged on its content).
    let (status, body) = app
        .patch(
            &format!("/api/conversations/{id}"),
            json!({"title": "y".repeat(3000)}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(app.get("/health").await.0, 200);
}

fn socket_paths(id: &str) -> [String; 2] {
    [
        format!("/sockets/events/{id}"),
        "/sockets/bash-events".to_string(),
    ]
}

#[actix_web::test]
async fn socket_frames_over_the_limit_close_with_1009() {
    let app = spawn_app_with(|s| {
        s.session_api_keys = vec!["ws-key".into()];
        s.websocket.max_frame_bytes = 1024;
    })
    .await;
    let id = app.create_conversation().await;
    let port = app.port;
    for path in socket_paths(&id) {
        let p = path.clone();
        let codes = actix_web::rt::task::spawn_blocking(move || {
            let key = [("X-Session-API-Key", "ws-key")];
            let mut out = vec![];
            // A whole frame one byte over the limit.
            let mut ws = RawWs::open(port, &p, &key).expect("upgrade");
            ws.send_text(&vec![b'a'; 1025]);
            out.push(("oversized", ws.close_code(20)));
            // A header announcing 1 GiB and no payload at all: the server
            // must answer from the header alone, buffering nothing.
            let mut ws = RawWs::open(port, &p, &key).expect("upgrade");
            ws.send_frame(1, b"", 1 << 30);
            out.push(("announced 1 GiB", ws.close_code(20)));
            // Same for a binary frame announcing 2^63 - 1 bytes.
            let mut ws = RawWs::open(port, &p, &key).expect("upgrade");
            ws.send_frame(2, b"", i64::MAX as u64);
            out.push(("announced 2^63", ws.close_code(20)));
            // Invalid UTF-8 in a text frame.
            let mut ws = RawWs::open(port, &p, &key).expect("upgrade");
            ws.send_text(b"{\"type\":\"\xff\xfe\"}");
            out.push(("not utf-8", ws.close_code(20)));
            // At the limit exactly: accepted (an error event, socket open).
            let mut ws = RawWs::open(port, &p, &key).expect("upgrade");
            ws.send_text(&vec![b' '; 1024]);
            ws.send_frame(8, &1000u16.to_be_bytes(), 2);
            out.push(("at the limit", ws.close_code(20)));
            out
        })
        .await
        .expect("blocking");
        assert_eq!(
            codes,
            vec![
                ("oversized", RawFrame::Close(Some(1009))),
                ("announced 1 GiB", RawFrame::Close(Some(1009))),
                ("announced 2^63", RawFrame::Close(Some(1009))),
                ("not utf-8", RawFrame::Close(Some(1007))),
                ("at the limit", RawFrame::Close(Some(1000))),
            ],
            "{path}"
        );
    }
    // The server is fine and sockets still work.
    assert_eq!(app.get("/health").await.0, 200);
    let mut ws = app
        .ws(
            &format!("/sockets/events/{id}"),
            &[("X-Session-API-Key", "ws-key")],
        )
        .await;
    assert_eq!(ws.json(5).await["key"], "full_state");
}

#[actix_web::test]
async fn fragmented_socket_messages_are_joined_and_misuse_is_closed() {
    let app = spawn_app_with(|s| {
        s.session_api_keys = vec!["ws-key".into()];
        s.websocket.max_frame_bytes = 1024;
    })
    .await;
    let id = app.create_conversation().await;
    let port = app.port;
    let path = format!("/sockets/events/{id}");
    let outcome = actix_web::rt::task::spawn_blocking(move || {
        let key = [("X-Session-API-Key", "ws-key")];
        let mut out = vec![];
        // A message in three fragments, with a ping between two of them.
        let mut ws = RawWs::open(port, &path, &key).expect("upgrade");
        let msg = br#"{"role": "user", "content": "sent in fragments"}"#;
        ws.send_fragment(1, &msg[..10], false);
        ws.send_frame(9, b"p", 1);
        ws.send_fragment(0, &msg[10..30], false);
        ws.send_fragment(0, &msg[30..], true);
        let mut joined = false;
        for _ in 0..20 {
            match ws.next() {
                RawFrame::Text(t) if t.contains("MessageEvent") => {
                    joined = t.contains("sent in fragments");
                    break;
                }
                RawFrame::Text(_) | RawFrame::Other(_) => {}
                other => panic!("socket ended: {other:?}"),
            }
        }
        out.push(("joined", joined));
        // Fragments adding up to more than the limit: 1009.
        let mut ws = RawWs::open(port, &path, &key).expect("upgrade");
        ws.send_fragment(1, &[b' '; 600], false);
        ws.send_fragment(0, &[b' '; 600], true);
        out.push((
            "over the limit",
            ws.close_code(20) == RawFrame::Close(Some(1009)),
        ));
        // A continuation without a first frame: 1002.
        let mut ws = RawWs::open(port, &path, &key).expect("upgrade");
        ws.send_fragment(0, b"{}", true);
        out.push((
            "stray continuation",
            ws.close_code(20) == RawFrame::Close(Some(1002)),
        ));
        out
    })
    .await
    .expect("blocking");
    for (what, ok) in outcome {
        assert!(ok, "{what}");
    }
    let (_, body) = app
        .get(&format!(
            "/api/conversations/{id}/events/search?kind=MessageEvent"
        ))
        .await;
    assert!(body.to_string().contains("sent in fragments"), "{body}");
}

#[actix_web::test]
async fn socket_messages_that_are_not_json_get_error_events() {
    let app = spawn_app_with(|s| s.session_api_keys = vec!["ws-key".into()]).await;
    let id = app.create_conversation().await;
    let mut ws = app
        .ws(
            &format!("/sockets/events/{id}"),
            &[("X-Session-API-Key", "ws-key")],
        )
        .await;
    assert_eq!(ws.json(5).await["key"], "full_state");
    let deep = String::from_utf8(deep_array(50_000)).unwrap();
    for frame in [
        json!(deep),
        json!("{not json"),
        json!(null),
        json!({"role": "user", "content": 1e300}),
        json!({"role": "system", "content": "x"}),
        json!({"role": "user", "content": [{"type": "image", "image_urls": [1]}]}),
    ] {
        // Strings are sent as their raw text, the rest as JSON.
        let text = match &frame {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        ws.send_raw(&text).await;
        let v = ws.json(5).await;
        assert_eq!(v["kind"], "ServerErrorEvent", "{text:.80}: {v}");
    }
    let (status, _) = app.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn nesting_depth_is_bounded_without_stack_overflow() {
    let app = spawn_app_with(|_| {}).await;
    let id = app.create_conversation().await;
    for (what, body) in [
        ("arrays 1e6 deep", deep_array(1_000_000)),
        ("objects 10000 deep", deep_object(10_000)),
        ("objects 129 deep", deep_object(129)),
    ] {
        for path in [
            "/api/conversations".to_string(),
            format!("/api/conversations/{id}/events"),
            "/api/bash/execute_bash_command".to_string(),
        ] {
            let r = app
                .client
                .post(format!("{}{path}", app.address))
                .body(body.clone())
                .send()
                .await
                .expect("request");
            assert_eq!(r.status().as_u16(), 422, "{what} {path}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["detail"][0]["type"], "json_invalid", "{what}: {v}");
        }
    }
    // Within serde_json's depth limit (128) the value is parsed, then
    // judged on its shape: deep settings diffs are merged without trouble.
    let mut diff = json!(1);
    for _ in 0..120 {
        diff = json!({ "a": diff });
    }
    let (status, body) = app
        .patch("/api/settings", json!({"agent_settings_diff": diff}))
        .await;
    assert!(status < 500, "{status} {body}");
    assert_eq!(app.get("/health").await.0, 200);
}

#[actix_web::test]
async fn huge_and_malformed_query_strings() {
    let app = spawn_app_with(|_| {}).await;
    // 60 kB: parsed; unknown parameters are ignored.
    let q = format!("x={}", "a".repeat(60_000));
    let (status, body) = app.get(&format!("/api/conversations/search?{q}")).await;
    assert_eq!(status, 200, "{body}");
    // 1000 ids: refused by the list bound.
    let ids: Vec<String> = (0..1000)
        .map(|_| "ids=00000000000000000000000000000000".to_string())
        .collect();
    let (status, _) = app
        .get(&format!("/api/conversations?{}", ids.join("&")))
        .await;
    assert_eq!(status, 422);
    // Past what the HTTP parser takes: refused before routing, no crash.
    let q = format!("x={}", "a".repeat(300_000));
    let r = app
        .client
        .get(format!("{}/api/conversations/search?{q}", app.address))
        .send()
        .await;
    if let Ok(r) = r {
        assert!(
            [400, 414, 431].contains(&r.status().as_u16()),
            "{}",
            r.status()
        );
    }
    // Raw bytes that are not UTF-8, and NUL, in the request line.
    let port = app.port;
    let answers = actix_web::rt::task::spawn_blocking(move || {
        [
            &b"GET /api/conversations/search?x=\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
            &b"GET /api/conversations/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
            &b"GET /api/conversations/a\x00b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
            &b"GET /api/file/download?path=/etc/\x00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
        ]
        .iter()
        .map(|r| raw_request(port, r).0)
        .collect::<Vec<u16>>()
    })
    .await
    .unwrap();
    for s in answers {
        assert!((400..500).contains(&s), "{s}");
    }
    assert_eq!(app.get("/health").await.0, 200);
}

#[actix_web::test]
async fn broken_framing_and_oversized_headers_fail_cleanly() {
    let app = spawn_app_with(|_| {}).await;
    let port = app.port;
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let big = format!("X-Big: {}\r\n", "a".repeat(200_000));
    let answers = actix_web::rt::task::spawn_blocking(move || {
        let req = |head: &str, body: &str| {
            raw_request(
                port,
                format!("{head}Host: x\r\nConnection: close\r\n\r\n{body}").as_bytes(),
            )
        };
        vec![
            (
                "bad chunk size",
                req(
                    "POST /api/conversations HTTP/1.1\r\nTransfer-Encoding: chunked\r\n",
                    "zz\r\nabc\r\n0\r\n\r\n",
                ),
            ),
            (
                "negative length",
                req("POST /api/conversations HTTP/1.1\r\nContent-Length: -1\r\n", "{}"),
            ),
            (
                "length and chunked",
                req(
                    "POST /api/conversations HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                    "0\r\n\r\n",
                ),
            ),
            (
                "200 headers",
                req(&format!("GET /health HTTP/1.1\r\n{many}"), ""),
            ),
            ("200 kB header", req(&format!("GET /health HTTP/1.1\r\n{big}"), "")),
            (
                "socket route without upgrade",
                req("GET /sockets/bash-events HTTP/1.1\r\n", ""),
            ),
        ]
    })
    .await
    .unwrap();
    for (what, (status, text)) in answers {
        assert!((400..500).contains(&status), "{what}: {status} {text:.300}");
        // Answers produced after routing carry a JSON detail.
        if what == "bad chunk size" || what == "socket route without upgrade" {
            let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
            let v: Value = serde_json::from_str(body)
                .unwrap_or_else(|_| panic!("{what}: not JSON: {text:.300}"));
            assert!(v["detail"].is_string(), "{what}: {v}");
        }
    }
    assert_eq!(app.get("/health").await.0, 200);
}

#[actix_web::test]
async fn absurd_numbers_are_422() {
    let app = spawn_app_with(|_| {}).await;
    let id = app.create_conversation().await;
    for v in [
        "1e99",
        "-1",
        "NaN",
        "0",
        "101",
        "99999999999999999999",
        "1.5",
        "0x10",
        "%2B5%00",
    ] {
        for path in [
            "/api/conversations/search".to_string(),
            format!("/api/conversations/{id}/events/search"),
            "/api/bash/bash_events/search".to_string(),
            "/api/file/search_subdirs?path=/".to_string(),
        ] {
            let sep = if path.contains('?') { '&' } else { '?' };
            let (status, body) = app.get(&format!("{path}{sep}limit={v}")).await;
            assert_eq!(status, 422, "{path} limit={v}: {body}");
            assert_eq!(
                body["detail"][0]["loc"],
                json!(["query", "limit"]),
                "{body}"
            );
        }
    }
    for v in ["1e99", "NaN", "-99999999999999999999"] {
        let (status, _) = app
            .get(&format!("/api/bash/bash_events/search?order__gt={v}"))
            .await;
        assert_eq!(status, 422, "order__gt={v}");
    }
    let ws = app.path("ws").to_string_lossy().into_owned();
    let cases: Vec<(&str, String, Value)> = vec![
        (
            "POST",
            "/api/bash/execute_bash_command".into(),
            json!({"command": "true", "timeout": 1e99}),
        ),
        (
            "POST",
            "/api/bash/execute_bash_command".into(),
            json!({"command": "true", "timeout": 1.5}),
        ),
        (
            "POST",
            "/api/bash/start_bash_command".into(),
            json!({"command": "true", "timeout": 18446744073709551615u64}),
        ),
        (
            "POST",
            "/api/conversations".into(),
            json!({"agent": {"llm": {"model": "m"}, "kind": "Agent"}, "workspace": {"working_dir": ws, "kind": "LocalWorkspace"}, "max_iterations": 1e99}),
        ),
        (
            "POST",
            "/api/conversations".into(),
            json!({"agent": {"llm": {"model": "m"}, "kind": "Agent"}, "workspace": {"working_dir": ws, "kind": "LocalWorkspace"}, "max_iterations": -1}),
        ),
        (
            "POST",
            "/api/mcp/test".into(),
            json!({"server": {"type": "stdio", "command": "true"}, "timeout": 1e99}),
        ),
        (
            "POST",
            "/api/mcp/test".into(),
            json!({"server": {"type": "stdio", "command": "true"}, "timeout": -1}),
        ),
        (
            "POST",
            "/api/cloud-proxy".into(),
            json!({"host": "https://app.all-hands.dev", "path": "/", "timeout_seconds": 1e99}),
        ),
        (
            "POST",
            "/api/cloud-proxy".into(),
            json!({"host": "https://app.all-hands.dev", "path": "/", "timeout_seconds": -1}),
        ),
        (
            "PATCH",
            format!("/api/conversations/{id}"),
            json!({"title": 1e99}),
        ),
    ];
    for (method, path, body) in cases {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = app
            .client
            .request(m, format!("{}{path}", app.address))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 422, "{method} {path} {body}: {v}");
    }
}

// ---------------------------------------------------------------- paths

/// A workspace with a file, a symlink to a file outside it and a symlink
/// to a directory outside it.
fn plant_escapes(app: &TestApp) -> (String, String) {
    let ws = app.path("ws");
    let outside = app.path("outside");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(ws.join("inside.txt"), "inside").unwrap();
    std::fs::write(outside.join("secret.txt"), "outside-secret").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), ws.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(&outside, ws.join("linkdir")).unwrap();
    (
        ws.to_string_lossy().into_owned(),
        outside.to_string_lossy().into_owned(),
    )
}

async fn raw_get(app: &TestApp, path: &str) -> (u16, String) {
    // reqwest normalizes `..` in URLs: send the path as is.
    let port = app.port;
    let key = app.api_key.clone().unwrap_or_default();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Session-API-Key: {key}\r\nConnection: close\r\n\r\n"
    );
    let (status, text) =
        actix_web::rt::task::spawn_blocking(move || raw_request(port, req.as_bytes()))
            .await
            .unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[actix_web::test]
async fn workspace_files_refuse_every_escape() {
    let app = spawn_app_with(|s| s.session_api_keys = vec!["k".into()]).await;
    let (_, outside) = plant_escapes(&app);
    let id = app.create_conversation().await;
    let base = format!("/api/conversations/{id}/workspace");
    let (status, body) = raw_get(&app, &format!("{base}/inside.txt")).await;
    assert_eq!((status, body.as_str()), (200, "inside"));
    let escapes = [
        "../outside/secret.txt".to_string(),
        "..%2Foutside%2Fsecret.txt".into(),
        "%2e%2e/outside/secret.txt".into(),
        "%2e%2e%2foutside%2fsecret.txt".into(),
        "%252e%252e%252foutside%252fsecret.txt".into(),
        "..%5coutside%5csecret.txt".into(),
        "....//outside/secret.txt".into(),
        "./../outside/secret.txt".into(),
        "a/../../outside/secret.txt".into(),
        "link.txt".into(),
        "linkdir/secret.txt".into(),
        "linkdir".into(),
        format!("{}/secret.txt", outside.trim_start_matches('/')),
        format!("/{outside}/secret.txt"),
        format!(
            "%2F{}%2Fsecret.txt",
            outside.trim_start_matches('/').replace('/', "%2F")
        ),
        "inside.txt%00.png".into(),
        "%00".into(),
        "%FF%FE".into(),
        "%C0%AE%C0%AE/outside/secret.txt".into(),
    ];
    for e in &escapes {
        let (status, body) = raw_get(&app, &format!("{base}/{e}")).await;
        assert!(
            [400, 404, 422].contains(&status),
            "{e}: {status} {body:.200}"
        );
        assert!(!body.contains("outside-secret"), "{e} leaked the file");
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert!(v.get("detail").is_some(), "{e}: {body:.200}");
    }
    // The same with the key in the workspace cookie instead.
    let port = app.port;
    let req = format!(
        "GET {base}/link.txt HTTP/1.1\r\nHost: x\r\nCookie: oh_workspace_session_key=k\r\nConnection: close\r\n\r\n"
    );
    let (status, text) =
        actix_web::rt::task::spawn_blocking(move || raw_request(port, req.as_bytes()))
            .await
            .unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(!text.contains("outside-secret"));
}

#[actix_web::test]
async fn file_transfer_routes_take_absolute_paths_only_and_fail_cleanly() {
    // Upload and download are defined (by the reference) to accept any
    // absolute path: `..` inside an absolute path is allowed and resolved
    // by the system. Relative paths, NUL bytes, directories, devices and
    // FIFOs are refused with 4xx.
    let app = spawn_app_with(|_| {}).await;
    let (ws, outside) = plant_escapes(&app);
    let enc = |p: &str| p.replace('/', "%2F");
    let (status, body) = raw_get(
        &app,
        &format!(
            "/api/file/download?path={}",
            enc(&format!("{ws}/../outside/secret.txt"))
        ),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (200, "outside-secret"),
        "documented: absolute paths"
    );
    for (path, want) in [
        ("..%2F..%2Fetc%2Fpasswd".to_string(), 400),
        ("relative.txt".into(), 400),
        ("".into(), 400),
        (enc(&format!("{ws}/a%00b")), 400),
        (enc(&ws), 400),
        ("%2Fdev%2Fzero".into(), 400),
        (enc(&format!("{ws}/missing.txt")), 404),
        (enc(&format!("{ws}/inside.txt/x")), 404),
        ("%FF%FE".into(), 400),
    ] {
        let (status, body) = raw_get(&app, &format!("/api/file/download?path={path}")).await;
        assert_eq!(status, want, "download {path}: {body:.200}");
    }
    let fifo = app.path("fifo");
    let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap();
    // SAFETY: mkfifo(3) on a path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (status, _) = raw_get(
        &app,
        &format!("/api/file/download?path={}", enc(&fifo.to_string_lossy())),
    )
    .await;
    assert_eq!(status, 400, "a FIFO is not a file and must not block");
    for path in [
        "relative/x.txt".to_string(),
        format!("{ws}/a\0b"),
        ws.clone(),
        String::new(),
    ] {
        let boundary = "hostile-boundary-7d1";
        let form = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\
             Content-Type: application/octet-stream\r\n\r\nx\r\n--{boundary}--\r\n"
        );
        let r = app
            .client
            .post(format!(
                "{}/api/file/upload?path={}",
                app.address,
                qenc(&path)
            ))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "upload to {path:?}");
    }
    for (path, want) in [
        ("..%2F".to_string(), 400),
        (enc(&format!("{outside}/secret.txt")), 400),
        ("%00".into(), 400),
    ] {
        let (status, body) = raw_get(&app, &format!("/api/file/search_subdirs?path={path}")).await;
        assert_eq!(status, want, "search_subdirs {path}: {body:.200}");
    }
    // Trajectory ids are UUIDs: traversal cannot even be expressed.
    for id in [
        "..%2F..%2Fetc",
        "..",
        "%00",
        "00000000-0000-0000-0000-00000000000%2F",
    ] {
        let (status, _) = raw_get(&app, &format!("/api/file/download-trajectory/{id}")).await;
        assert!(status == 422 || status == 404, "trajectory {id}: {status}");
    }
}

#[actix_web::test]
async fn git_bash_hooks_skills_and_working_dir_paths_fail_cleanly() {
    // These routes are defined by the reference to take any path (git's
    // `path`, bash's `cwd`, hooks' and skills' `project_dir`, a
    // conversation's `working_dir`): what matters is a clean answer.
    let app = spawn_app_with(|_| {}).await;
    let (ws, outside) = plant_escapes(&app);
    let repo = app.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(&repo)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@e")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@e")
            .output()
            .expect("git")
    };
    git(&["init", "-q"]);
    std::fs::write(repo.join("f.txt"), "one\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "init"]);
    let r = repo.to_string_lossy().into_owned();
    let pwned = app.path("pwned");
    for (route, path, reference) in [
        ("changes", format!("{r}/../repo"), None),
        ("changes", "../../../../../../".to_string(), None),
        ("changes", format!("{r}\0"), None),
        ("changes", "/nonexistent/x".into(), None),
        (
            "changes",
            r.clone(),
            Some(format!("--output={}", pwned.display())),
        ),
        ("changes", r.clone(), Some("-c core.pager=touch".into())),
        (
            "diff",
            format!("{r}/f.txt"),
            Some(format!("--output={}", pwned.display())),
        ),
        ("diff", format!("{r}/../../../../etc/passwd"), None),
        ("diff", "f.txt\0".into(), None),
        ("diff", String::new(), None),
    ] {
        let mut q = format!("path={}", qenc(&path));
        if let Some(rf) = &reference {
            q.push_str(&format!("&ref={}", qenc(rf)));
        }
        let resp = app
            .client
            .get(format!("{}/api/git/{route}?{q}", app.address))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        assert!(status < 500, "git {route} {path:?} {reference:?}: {status}");
    }
    assert!(!pwned.exists(), "a ref was taken as a git option");

    for cwd in [
        json!("../../../.."),
        json!("/nonexistent/x"),
        json!("a\u{0}b"),
        json!(format!("{ws}/inside.txt")),
    ] {
        let (status, out) = app
            .post(
                "/api/bash/execute_bash_command",
                json!({"command": "pwd", "cwd": cwd, "timeout": 10}),
            )
            .await;
        assert_eq!(status, 200, "{cwd}: {out}");
        assert!(out["exit_code"].is_i64(), "{out}");
    }
    let (_, out) = app
        .post(
            "/api/bash/execute_bash_command",
            json!({"command": "pwd", "cwd": "/nonexistent/x"}),
        )
        .await;
    assert_eq!(out["exit_code"], -1, "{out}");

    for dir in [
        json!("../../../../etc"),
        json!("a\u{0}b"),
        json!(outside),
        json!("/proc/self"),
        json!(""),
    ] {
        let (status, body) = app.post("/api/hooks", json!({"project_dir": dir})).await;
        assert!(
            status == 200 || status == 422,
            "hooks {dir}: {status} {body}"
        );
        let (status, body) = app
            .post(
                "/api/skills",
                json!({"project_dir": dir, "load_public": false}),
            )
            .await;
        assert!(
            status == 200 || status == 422,
            "skills {dir}: {status} {body}"
        );
    }

    for (dir, ok) in [
        ("a\u{0}b".to_string(), false),
        (format!("{ws}/inside.txt"), false),
        ("/proc/1/nope".into(), false),
        (format!("{ws}/../outside/new"), true),
    ] {
        let mut b = app.conversation_body(None);
        b["workspace"]["working_dir"] = json!(dir);
        let (status, body) = app.post("/api/conversations", b).await;
        if ok {
            assert_eq!(status, 201, "{dir:?}: {body}");
        } else {
            assert!([400, 422].contains(&status), "{dir:?}: {status} {body}");
            assert!(body["detail"].is_string() || body["detail"].is_array());
        }
    }
}

#[actix_web::test]
async fn malformed_bodies_name_the_problem() {
    let app = spawn_app_with(|_| {}).await;
    for (body, kind) in [
        (&b"{"[..], "json_invalid"),
        (&b"{\"a\":\"\xff\"}"[..], "json_invalid"),
        (&b""[..], "missing"),
        (&b"   "[..], "missing"),
    ] {
        let r = app
            .client
            .post(format!("{}/api/conversations", app.address))
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 422);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["detail"][0]["type"], kind, "{v}");
    }
    // A socket that sends nothing useful does not hold anything open.
    let id = app.create_conversation().await;
    let mut ws = app.ws(&format!("/sockets/events/{id}"), &[]).await;
    assert_eq!(ws.json(5).await["key"], "full_state");
    ws.send_raw("\u{0}").await;
    match ws.next(5).await {
        Some(WsItem::Json(v)) => assert_eq!(v["kind"], "ServerErrorEvent"),
        other => panic!("{other:?}"),
    }
}

#[actix_web::test]
async fn stalled_request_bodies_are_answered_408() {
    let app = spawn_app_with(|s| s.http.body_idle_timeout_seconds = 1).await;
    let port = app.port;
    let target = app.path("stalled-upload.bin");
    let upload = format!(
        "/api/file/upload?path={}",
        agent_server::routes::files::percent_encode(&target.to_string_lossy())
    );
    let answers = actix_web::rt::task::spawn_blocking(move || {
        let json = b"POST /api/conversations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                     Content-Length: 100\r\n\r\n{\"agent\":".to_vec();
        let boundary = "b0undary";
        let mut multipart = format!(
            "POST {upload} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\
             Content-Length: 100000\r\n\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"f\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        multipart.extend_from_slice(&[7u8; 500]);
        // raw_request gives up after 10 s of silence (status 0).
        (raw_request(port, &json), raw_request(port, &multipart))
    })
    .await
    .expect("blocking");
    let ((json_status, json_text), (up_status, up_text)) = answers;
    assert_eq!(json_status, 408, "{json_text}");
    assert!(
        json_text.contains("body_idle_timeout_seconds"),
        "{json_text}"
    );
    assert_eq!(up_status, 408, "{up_text}");
    // The stalled upload left nothing behind.
    assert!(!target.exists());
    let leftovers: Vec<_> = std::fs::read_dir(target.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".oh-upload-"))
        .collect();
    assert!(leftovers.is_empty());
    // A body that keeps flowing is not cut, and the server is fine.
    assert_eq!(app.get("/health").await.0, 200);
    let id = app.create_conversation().await;
    assert!(!id.is_empty());
}
