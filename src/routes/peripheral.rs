//! Peripheral routes of the reference that this server answers honestly:
//! `/api/vscode/*` and `/api/desktop/url` (no VS Code or VNC desktop is
//! bundled, so the URLs are 503 and the status says "not running"), and
//! `POST /api/cloud-proxy`, a server-side relay to allow-listed cloud hosts
//! (`*.all-hands.dev`, or the comma list in `OH_CLOUD_PROXY_ALLOWED_HOSTS`).
//!
//! The proxy never reaches loopback, private, link-local or otherwise
//! non-routable IP literals, never follows redirects (a redirect could leave
//! the allow-list), keeps the target host fixed whatever the path says,
//! caps the upstream body, and strips hop-by-hop, CORS and `Set-Cookie`
//! headers from the answer. Forwarded header values are never logged.

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpResponse, web};
use futures_util::StreamExt;
use serde_json::Value;
use utoipa::OpenApi;

use super::fields::{object, opt_str, req_str, str_map};
use super::method_not_allowed;
use crate::error::{ApiError, ApiResult};
use crate::extract::json_body;
use crate::state::AppState;

/// OpenAPI description of this module.
#[derive(OpenApi)]
#[openapi(paths(vscode_url, vscode_status, desktop_url, cloud_proxy))]
pub struct PeripheralApi;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let r =
        |path: &str| web::resource(path.to_string()).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/vscode/url").route(web::get().to(vscode_url)))
        .service(r("/api/vscode/status").route(web::get().to(vscode_status)))
        .service(r("/api/desktop/url").route(web::get().to(desktop_url)))
        .service(r("/api/cloud-proxy").route(web::post().to(cloud_proxy)));
}

fn vscode_reason(state: &AppState) -> &'static str {
    if state.settings.enable_vscode {
        "VSCode is not available: this server does not bundle an OpenVSCode server"
    } else {
        "VSCode is disabled in configuration"
    }
}

/// VS Code URL (503: no VS Code server here).
#[utoipa::path(get, path = "/api/vscode/url", tag = "VSCode",
    params(("base_url" = Option<String>, Query, description = "Base URL of the VS Code server"),
           ("workspace_dir" = Option<String>, Query, description = "Folder to open")),
    responses((status = 503, description = "VS Code is not available", body = serde_json::Value)))]
pub async fn vscode_url(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let detail = if state.settings.enable_vscode {
        format!("{}.", vscode_reason(&state))
    } else {
        "VSCode is disabled in configuration. Set enable_vscode=true to enable.".to_string()
    };
    Err(ApiError::Server(StatusCode::SERVICE_UNAVAILABLE, detail))
}

/// VS Code status.
#[utoipa::path(get, path = "/api/vscode/status", tag = "VSCode",
    responses((status = 200, description = "{running, enabled, message}", body = serde_json::Value)))]
pub async fn vscode_status(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "running": false,
        "enabled": false,
        "message": vscode_reason(&state),
    }))
}

/// Desktop (noVNC) URL (503: no desktop here).
#[utoipa::path(get, path = "/api/desktop/url", tag = "Desktop",
    params(("base_url" = Option<String>, Query, description = "Base URL of the noVNC server")),
    responses((status = 503, description = "The desktop is not available", body = serde_json::Value)))]
pub async fn desktop_url(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let detail = if state.settings.enable_vnc {
        "Desktop is not available: this server does not bundle a VNC desktop."
    } else {
        "Desktop is disabled in configuration. Set enable_vnc=true to enable."
    };
    Err(ApiError::Server(
        StatusCode::SERVICE_UNAVAILABLE,
        detail.into(),
    ))
}

const DEFAULT_ALLOWED_HOSTS: &str = "all-hands.dev";
const DENIED_HOSTNAMES: [&str; 4] = ["localhost", "127.0.0.1", "0.0.0.0", "::1"];

/// Response headers never relayed back.
const STRIPPED_HEADERS: [&str; 18] = [
    "content-encoding",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "upgrade",
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-allow-headers",
    "access-control-allow-methods",
    "access-control-expose-headers",
    "access-control-max-age",
    "set-cookie",
    "content-type",
];

/// Request headers never forwarded (framing is the client library's job).
const UNFORWARDED_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
];

fn allowed_hosts() -> Vec<String> {
    let raw = std::env::var("OH_CLOUD_PROXY_ALLOWED_HOSTS").unwrap_or_default();
    let list: Vec<String> = raw
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    if list.is_empty() {
        vec![DEFAULT_ALLOWED_HOSTS.into()]
    } else {
        list
    }
}

/// Whether an address must never be reached through the proxy.
fn non_routable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| non_routable(IpAddr::V4(v4)))
        }
    }
}

/// The upstream URL for `host` + `path`, or `None` when the host is not allowed.
fn upstream_url(host: &str, path: &str, allowed: &[String]) -> Option<reqwest::Url> {
    let base = reqwest::Url::parse(host).ok()?;
    if !matches!(base.scheme(), "http" | "https") {
        return None;
    }
    let hostname = base
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if hostname.is_empty() || DENIED_HOSTNAMES.contains(&hostname.as_str()) {
        return None;
    }
    if let Ok(ip) = hostname.parse::<IpAddr>()
        && non_routable(ip)
    {
        return None;
    }
    let listed = allowed
        .iter()
        .any(|a| hostname == *a || hostname.ends_with(&format!(".{a}")));
    if !listed {
        return None;
    }
    // The path only ever sets the path and query: it cannot change the host
    // (no "@evil.example" or "//evil.example" tricks).
    let mut url = base.clone();
    let (p, q) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let base_path = base.path().trim_end_matches('/');
    let joined = if p.starts_with('/') {
        format!("{base_path}{p}")
    } else {
        format!("{base_path}/{p}")
    };
    url.set_path(&joined);
    url.set_query(q);
    url.set_fragment(None);
    (url.host_str() == base.host_str()).then_some(url)
}

fn proxy_client() -> Option<&'static reqwest::Client> {
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(15))
                .build()
                .map_err(|e| log::error!("cannot build the cloud proxy client: {e}"))
                .ok()
        })
        .as_ref()
}

fn upstream_error(detail: String) -> ApiError {
    ApiError::Server(StatusCode::BAD_GATEWAY, detail)
}

/// Relay a request to an allow-listed cloud host.
#[utoipa::path(post, path = "/api/cloud-proxy", tag = "Cloud Proxy",
    request_body(content = super::schemas::CloudProxyRequest, description = "CloudProxyRequest: host, method (GET), path, headers, body, timeout_seconds (1..=60, default 15)"),
    responses((status = 200, description = "The upstream answer (status, body and safe headers relayed)", body = serde_json::Value),
              (status = 403, description = "Host not allowed", body = serde_json::Value),
              (status = 422, description = "Invalid body", body = serde_json::Value),
              (status = 502, description = "Upstream unreachable", body = serde_json::Value)))]
pub async fn cloud_proxy(body: web::Bytes, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let input = json_body(&body)?;
    let obj = object(&input, &["body"])?;
    let at = ["body"];
    let host = req_str(obj, &at, "host", false)?;
    let path = req_str(obj, &at, "path", false)?;
    let method_text = opt_str(obj, &at, "method")?.unwrap_or_else(|| "GET".into());
    let headers = str_map(obj, &at, "headers", true)?;
    let timeout = match obj.get("timeout_seconds") {
        None => 15.0,
        Some(v) => match v.as_f64() {
            Some(t) if (1.0..=60.0).contains(&t) => t,
            Some(_) => {
                return Err(ApiError::invalid(
                    "less_than_equal",
                    &["body", "timeout_seconds"],
                    "Input should be between 1 and 60",
                    v.clone(),
                ));
            }
            None => {
                return Err(ApiError::invalid(
                    "float_type",
                    &["body", "timeout_seconds"],
                    "Input should be a valid number",
                    v.clone(),
                ));
            }
        },
    };
    let method =
        reqwest::Method::from_bytes(method_text.to_ascii_uppercase().as_bytes()).map_err(|_| {
            ApiError::invalid(
                "value_error",
                &["body", "method"],
                "Value error, not an HTTP method",
                Value::String(method_text.clone()),
            )
        })?;
    let Some(url) = upstream_url(&host, &path, &allowed_hosts()) else {
        return Err(ApiError::Http(
            StatusCode::FORBIDDEN,
            format!("Cloud proxy host not allowed: {host}"),
        ));
    };
    let client = proxy_client().ok_or_else(|| ApiError::internal("proxy client unavailable"))?;
    let mut req = client
        .request(method, url)
        .timeout(Duration::from_secs_f64(timeout));
    for (k, v) in &headers {
        if UNFORWARDED_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
            continue;
        }
        let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(k.as_bytes()),
            reqwest::header::HeaderValue::from_str(v),
        ) else {
            return Err(ApiError::invalid(
                "value_error",
                &["body", "headers", k],
                "Value error, not a valid HTTP header",
                Value::String("<redacted>".into()),
            ));
        };
        req = req.header(name, value);
    }
    req = match obj.get("body") {
        None | Some(Value::Null) => req,
        Some(Value::String(s)) => req.body(s.clone()),
        Some(other) => req
            .header("content-type", "application/json")
            .body(other.to_string()),
    };
    let resp = req
        .send()
        .await
        .map_err(|e| upstream_error(format!("Upstream error: {}", e.without_url())))?;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let media_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let relayed: Vec<(HeaderName, HeaderValue)> = resp
        .headers()
        .iter()
        .filter(|(k, _)| !STRIPPED_HEADERS.contains(&k.as_str()))
        .filter_map(|(k, v)| {
            Some((
                HeaderName::from_bytes(k.as_str().as_bytes()).ok()?,
                HeaderValue::from_bytes(v.as_bytes()).ok()?,
            ))
        })
        .collect();
    let cap = state.settings.http.max_json_bytes;
    let mut data = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| upstream_error(format!("Upstream error: {}", e.without_url())))?;
        if data.len() + chunk.len() > cap {
            return Err(upstream_error(format!(
                "Upstream response larger than {cap} bytes"
            )));
        }
        data.extend_from_slice(&chunk);
    }
    let mut out = HttpResponse::build(status);
    for pair in relayed {
        out.append_header(pair);
    }
    if media_type.contains("application/json")
        && let Ok(v) = serde_json::from_slice::<Value>(&data)
    {
        return Ok(out.content_type("application/json").body(v.to_string()));
    }
    Ok(out.content_type(media_type).body(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec!["all-hands.dev".into()]
    }

    #[test]
    fn allow_list_and_address_rules() {
        let u = upstream_url("https://app.all-hands.dev", "/api/x?y=1", &allowed()).unwrap();
        assert_eq!(u.as_str(), "https://app.all-hands.dev/api/x?y=1");
        assert!(upstream_url("https://all-hands.dev/", "/a", &allowed()).is_some());
        for host in [
            "https://evil.example",
            "https://notall-hands.dev",
            "https://localhost",
            "http://127.0.0.1",
            "http://[::1]",
            "http://10.0.0.5",
            "http://169.254.169.254",
            "http://2130706433",
            "ftp://app.all-hands.dev",
            "not a url",
        ] {
            assert!(upstream_url(host, "/", &allowed()).is_none(), "{host}");
        }
        let wide = vec!["10.0.0.5".to_string(), "example.org".to_string()];
        assert!(
            upstream_url("http://10.0.0.5", "/", &wide).is_none(),
            "IP literals stay blocked"
        );
        assert!(upstream_url("https://api.example.org", "/", &wide).is_some());
    }

    #[test]
    fn the_path_cannot_move_the_host() {
        for path in ["@evil.example/x", "//evil.example/x", "/../../x", "x#frag"] {
            let u = upstream_url("https://app.all-hands.dev", path, &allowed()).unwrap();
            assert_eq!(u.host_str(), Some("app.all-hands.dev"), "{path}");
        }
    }
}
