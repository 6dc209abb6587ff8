//! Route modules, one per router of the reference, each with its
//! `configure` function and OpenAPI description, plus the middleware that
//! gives framework-generated errors (400, 404, 405, 413) the reference's JSON body.

pub mod bash;
pub mod catalog;
pub mod conversations;
pub mod events;
mod fields;
pub mod files;
pub mod git;
pub mod peripheral;
pub mod profiles;
pub mod schemas;
pub mod server;
pub mod settings;
pub mod workspace;
pub mod workspaces;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError, web};

use crate::error::ApiError;
use crate::state::AppState;

/// Registers every HTTP route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    server::configure(cfg);
    conversations::configure(cfg);
    events::configure(cfg);
    files::configure(cfg);
    git::configure(cfg);
    workspace::configure(cfg);
    bash::configure(cfg);
    settings::configure(cfg);
    profiles::configure(cfg);
    workspaces::configure(cfg);
    catalog::configure(cfg);
    peripheral::configure(cfg);
}

/// Answer for a path that exists with another method.
pub async fn method_not_allowed() -> HttpResponse {
    ApiError::Http(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed".into()).error_response()
}

/// Replaces bodies of bare framework errors with the reference's JSON.
pub async fn json_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let res = next.call(req).await?;
    let status = res.status();
    let is_json = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() || is_json {
        return Ok(res.map_into_boxed_body());
    }
    let detail = match status {
        StatusCode::NOT_FOUND => "Not Found".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => "Method Not Allowed".to_string(),
        StatusCode::PAYLOAD_TOO_LARGE => match res.request().app_data::<web::Data<AppState>>() {
            Some(state) => format!(
                "Request body is too large: the limit is {} bytes (http.max_json_bytes)",
                state.settings.http.max_json_bytes
            ),
            None => "Request body is too large".to_string(),
        },
        StatusCode::BAD_REQUEST => {
            // The framework's 400s (a broken chunked body, a failed socket
            // handshake) carry a short text naming the problem: it becomes
            // the detail. CORS refusals are answered outside this layer.
            let (req, res) = res.into_parts();
            let text = match actix_web::body::to_bytes_limited(res.into_body(), 4096).await {
                Ok(Ok(b)) => String::from_utf8_lossy(&b).trim().to_string(),
                _ => String::new(),
            };
            let detail = if text.is_empty() {
                "Bad Request".to_string()
            } else {
                text
            };
            let resp = ApiError::bad_request_msg(detail).error_response();
            return Ok(ServiceResponse::new(req, resp));
        }
        other => other.canonical_reason().unwrap_or("Error").to_string(),
    };
    let (req, _) = res.into_parts();
    let resp = ApiError::Http(status, detail).error_response();
    Ok(ServiceResponse::new(req, resp))
}
