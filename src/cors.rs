//! CORS as the reference answers it: configured origins plus any origin on
//! `localhost`, `127.0.0.1`, `[::1]` or the `DOCKER_HOST_ADDR` host;
//! workspace-cookie routes echo any http(s) origin. Preflights are answered
//! here, before authentication, and never redirected.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};

use crate::auth::is_workspace_path;
use crate::state::AppState;

const METHODS: &str = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT";

fn origin_host(origin: &str) -> Option<&str> {
    let rest = origin.split_once("://")?.1;
    let host_port = rest.split('/').next()?;
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split(']').next();
    }
    host_port.split(':').next()
}

/// Whether an origin may call the API.
pub fn origin_allowed(
    origin: &str,
    path: &str,
    configured: &[String],
    docker_host: Option<&str>,
) -> bool {
    if is_workspace_path(path) || path == "/api/auth/workspace-session" {
        return origin.starts_with("http://") || origin.starts_with("https://");
    }
    if configured
        .iter()
        .any(|o| o == "*" || o.trim_end_matches('/') == origin)
    {
        return true;
    }
    match origin_host(origin) {
        Some(h) => {
            matches!(h, "localhost" | "127.0.0.1" | "::1") || docker_host.is_some_and(|d| d == h)
        }
        None => false,
    }
}

/// Middleware answering preflights and decorating responses.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let origin = req
        .headers()
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Some(origin) = origin else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let configured = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.access.get().cors_origins.clone())
        .unwrap_or_default();
    let docker_host = std::env::var("DOCKER_HOST_ADDR").ok();
    let allowed = origin_allowed(
        &origin,
        req.match_info().as_str(),
        &configured,
        docker_host.as_deref(),
    );
    let preflight = req.method() == actix_web::http::Method::OPTIONS
        && req.headers().contains_key("access-control-request-method");
    if preflight {
        let resp = if allowed {
            let requested = req
                .headers()
                .get("access-control-request-headers")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let mut b = HttpResponse::Ok();
            b.insert_header(("access-control-allow-origin", origin.as_str()))
                .insert_header(("access-control-allow-methods", METHODS))
                .insert_header(("access-control-allow-credentials", "true"))
                .insert_header(("access-control-max-age", "600"))
                .insert_header(("vary", "Origin"))
                .content_type("text/plain; charset=utf-8");
            if !requested.is_empty() {
                b.insert_header(("access-control-allow-headers", requested));
            }
            b.body("OK")
        } else {
            HttpResponse::BadRequest()
                .insert_header(("vary", "Origin"))
                .content_type("text/plain; charset=utf-8")
                .body("Disallowed CORS origin")
        };
        return Ok(req.into_response(resp).map_into_right_body());
    }
    let mut res = next.call(req).await?;
    if allowed {
        let h = res.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&origin) {
            h.insert(HeaderName::from_static("access-control-allow-origin"), v);
            h.insert(
                HeaderName::from_static("access-control-allow-credentials"),
                HeaderValue::from_static("true"),
            );
            h.append(
                HeaderName::from_static("vary"),
                HeaderValue::from_static("Origin"),
            );
        }
    }
    Ok(res.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let conf = vec!["https://app.example.com".to_string()];
        assert!(origin_allowed(
            "https://app.example.com",
            "/api/x",
            &conf,
            None
        ));
        assert!(origin_allowed(
            "http://localhost:3000",
            "/api/x",
            &conf,
            None
        ));
        assert!(origin_allowed("http://127.0.0.1", "/api/x", &conf, None));
        assert!(origin_allowed("http://[::1]:80", "/api/x", &conf, None));
        assert!(!origin_allowed(
            "https://evil.example.com",
            "/api/x",
            &conf,
            None
        ));
        assert!(origin_allowed(
            "http://dockerhost:1",
            "/api/x",
            &conf,
            Some("dockerhost")
        ));
        assert!(origin_allowed(
            "https://evil.example.com",
            "/api/conversations/a/workspace",
            &conf,
            None
        ));
        assert!(!origin_allowed("null", "/api/x", &conf, None));
    }
}
