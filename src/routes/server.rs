//! Server details: liveness, readiness, server info. Never authenticated.

use std::sync::atomic::Ordering;

use actix_web::{HttpResponse, web};
use serde_json::json;
use utoipa::OpenApi;

use crate::state::AppState;

/// The API version this server implements (the Python reference's release).
pub const API_VERSION: &str = "1.24.0";

/// OpenAPI description of this module.
#[derive(OpenApi)]
#[openapi(paths(alive, health, ready, server_info, root))]
pub struct ServerApi;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/alive")
            .route(web::get().to(alive))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/health")
            .route(web::get().to(health))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/ready")
            .route(web::get().to(ready))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/server_info")
            .route(web::get().to(server_info))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/")
            .route(web::get().to(root))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(web::resource("/redoc").route(web::get().to(|| async {
        HttpResponse::Found()
            .insert_header(("location", "/docs/"))
            .finish()
    })));
}

/// Liveness check.
#[utoipa::path(get, path = "/alive", tag = "Server Details",
    responses((status = 200, description = "The process is alive", body = serde_json::Value, example = json!({"status": "ok"}))))]
pub async fn alive() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Health check.
#[utoipa::path(get, path = "/health", tag = "Server Details",
    responses((status = 200, description = "The server is healthy", body = serde_json::Value, example = json!({"status": "ok"}))))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness check: 503 until start-up has finished.
#[utoipa::path(get, path = "/ready", tag = "Server Details",
    responses((status = 200, description = "Ready", body = serde_json::Value, example = json!({"status": "ready"})),
              (status = 503, description = "Still starting", body = serde_json::Value)))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    if state.ready.load(Ordering::SeqCst) {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(json!({"status": "initializing", "message": "Server is still initializing"}))
    }
}

fn info(state: &AppState) -> serde_json::Value {
    let uptime = state.started.elapsed().as_secs() as f64;
    let idle = state.runtime_idle();
    json!({
        "uptime": uptime,
        "idle_time": state.idle_seconds(),
        "title": "OpenHands Agent Server",
        "version": API_VERSION,
        "sdk_version": API_VERSION,
        "tools_version": API_VERSION,
        "workspace_version": API_VERSION,
        "build_git_sha": std::env::var("OPENHANDS_BUILD_GIT_SHA").unwrap_or_else(|_| "unknown".into()),
        "build_git_ref": std::env::var("OPENHANDS_BUILD_GIT_REF").unwrap_or_else(|_| "unknown".into()),
        "python_version": "n/a (agent-server is written in Rust)",
        "usable_tools": agent_actors::catalog::registered_tools(),
        "runtime_idle_timeout_seconds": idle,
        "max_foreground_terminal_timeout_seconds": idle.map(|t| t * 0.9),
        "docs": "/docs",
        "redoc": "/redoc",
        "implementation": "agent-server (Rust)",
        "implementation_version": env!("CARGO_PKG_VERSION"),
        "conversations": state.store.conversation_count(),
    })
}

impl AppState {
    fn runtime_idle(&self) -> Option<f64> {
        self.settings.runtime_idle_timeout_seconds
    }
}

/// Version, uptime and capabilities.
#[utoipa::path(get, path = "/server_info", tag = "Server Details",
    responses((status = 200, description = "Server information", body = serde_json::Value)))]
pub async fn server_info(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(info(&state))
}

/// Root: the static front end when configured, else the server information.
#[utoipa::path(get, path = "/", tag = "Server Details",
    responses((status = 200, description = "Server information", body = serde_json::Value),
              (status = 302, description = "Redirect to the static front end")))]
pub async fn root(state: web::Data<AppState>) -> HttpResponse {
    if let Some(dir) = &state.settings.static_files_path {
        let dir = std::path::Path::new(dir);
        if dir.is_dir() {
            let target = if dir.join("index.html").is_file() {
                "/static/index.html"
            } else {
                "/static/"
            };
            return HttpResponse::Found()
                .insert_header(("location", target))
                .finish();
        }
    }
    HttpResponse::Ok().json(info(&state))
}
