//! `/api/bash`: start and execute commands (messages to the bash registry),
//! terminate a running one, and search, get, batch-get and clear the bash
//! event log (read straight from the log, off the async threads).
//!
//! Commands and their output are owned by the actors crate's bash actors;
//! handlers only validate input and map replies.
//!
//! Differences from the reference, all in the client's favour: search
//! results follow the log order (not the wall clock), `order__gt` and the
//! time filters (microsecond precision) are applied before paging so pages
//! are never short, and `next_page_id` is an opaque cursor (the position of
//! the next page's first event in the log) that stays valid when events are
//! deleted.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use agent_actors::bash::event_log::BashFilter;
use agent_actors::bash::messages::{StartCommand, TerminateCommand};
use agent_actors::bash::model::{BashKind, ExecuteBashRequest, stored_json};
use agent_actors::bash::{BashConfig, BashError};
use agent_actors::ids::Uuid;
use agent_actors::metrics::Counters;
use agent_actors::time::ParsedDateTime;
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::method_not_allowed;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Query, json_body, parse_uuid};
use crate::settings::Settings;
use crate::state::AppState;

/// Most JSON bytes in one search page; further events go to the next page.
const MAX_PAGE_BYTES: usize = 8 << 20;
/// Most ids in one batch get.
const MAX_BATCH_IDS: usize = 100;

/// OpenAPI description of this module.
#[derive(OpenApi)]
#[openapi(paths(
    start_bash_command,
    execute_bash_command,
    terminate_bash_command,
    search_bash_events,
    get_bash_event,
    batch_get_bash_events,
    clear_all_bash_events,
    bash_fault
))]
pub struct BashApi;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let r =
        |path: &str| web::resource(path.to_string()).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/bash/start_bash_command").route(web::post().to(start_bash_command)))
        .service(r("/api/bash/execute_bash_command").route(web::post().to(execute_bash_command)))
        .service(
            r("/api/bash/commands/{command_id}/terminate")
                .route(web::post().to(terminate_bash_command)),
        )
        .service(r("/api/bash/bash_events/search").route(web::get().to(search_bash_events)))
        .service(r("/api/bash/bash_events/").route(web::get().to(batch_get_bash_events)))
        .service(r("/api/bash/bash_events").route(web::delete().to(clear_all_bash_events)))
        .service(r("/api/bash/bash_events/{event_id}").route(web::get().to(get_bash_event)))
        .service(r("/api/_test/fault/bash/{command_id}").route(web::post().to(bash_fault)));
}

/// Test-only: make a running command's actor fail (a supervised restart);
/// refused unless `testing.fault_injection` is on.
#[utoipa::path(post, path = "/api/_test/fault/bash/{command_id}", tag = "Testing",
    params(("command_id" = String, Path, description = "Running command id (hex)")),
    responses((status = 200, description = "Fault injected", body = serde_json::Value),
              (status = 400, description = "Fault injection disabled", body = serde_json::Value),
              (status = 404, description = "No such running command", body = serde_json::Value)))]
pub async fn bash_fault(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = parse_uuid(&path, &["path", "command_id"])?;
    if !state.settings.testing.fault_injection {
        return Err(ApiError::bad_request_msg("fault injection is disabled"));
    }
    state
        .bash
        .registry
        .send(agent_actors::bash::messages::InjectCommandFault { id })
        .await
        .map_err(ApiError::from)?
        .map_err(ApiError::from)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"success": true})))
}

/// The bash actors' settings, from the server's.
pub fn config(settings: &Settings, counters: &Arc<Counters>) -> BashConfig {
    let mut c = BashConfig::new(counters.clone());
    c.retention_secs = settings.bash_events_retention_seconds;
    c.max_subscribers = settings.websocket.max_subscribers;
    c.sync_durability = settings.storage.durability != "relaxed";
    c
}

impl From<BashError> for ApiError {
    fn from(e: BashError) -> Self {
        match e {
            BashError::NotFound => ApiError::not_found_msg("Command not found"),
            BashError::Finished => ApiError::conflict("Command already finished"),
            BashError::Storage(m) => {
                log::error!("bash: storage error: {m}");
                ApiError::internal("storage error")
            }
            BashError::Unavailable(m) => ApiError::Server(StatusCode::SERVICE_UNAVAILABLE, m),
        }
    }
}

fn parse_request(body: &[u8]) -> ApiResult<ExecuteBashRequest> {
    let input = json_body(body)?;
    ExecuteBashRequest::from_value(&input).map_err(|e| ApiError::from_field(e, &input))
}

fn json_response(body: impl Into<String>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.into())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, agent_actors::store::StoreError> + Send + 'static,
) -> ApiResult<T> {
    web::block(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(ApiError::from)
}

/// Start a command in the background; returns its `BashCommand` at once.
///
/// Output arrives as `BashOutput` events (search them with `command_id__eq`,
/// or follow `WS /sockets/bash-events`): chunks with `exit_code: null` while
/// the command runs, then a final one with the exit code.
#[utoipa::path(post, path = "/api/bash/start_bash_command", tag = "Bash",
    request_body(content = super::schemas::ExecuteBashRequest, description = "ExecuteBashRequest: {command, cwd (relative to the server's working directory; default: it), timeout (seconds, default 300)}"),
    responses((status = 200, description = "The BashCommand", body = serde_json::Value),
              (status = 422, description = "Invalid body", body = serde_json::Value)))]
pub async fn start_bash_command(
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let request = parse_request(&body)?;
    state.touch();
    let started = state
        .bash
        .registry
        .send(StartCommand {
            request,
            wait: false,
        })
        .await??;
    Ok(json_response(started.command))
}

/// Run a command and wait for it; returns its final `BashOutput`.
///
/// Its `stdout`/`stderr` hold what the reference's final output would: the
/// whole output up to 1 MiB per stream, beyond that what follows the last
/// full MiB (the stored events hold every piece exactly once).
#[utoipa::path(post, path = "/api/bash/execute_bash_command", tag = "Bash",
    request_body(content = super::schemas::ExecuteBashRequest, description = "ExecuteBashRequest: {command, cwd, timeout}"),
    responses((status = 200, description = "The final BashOutput (with exit_code; -1 after a timeout or a failure to start)", body = serde_json::Value),
              (status = 422, description = "Invalid body", body = serde_json::Value)))]
pub async fn execute_bash_command(
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let request = parse_request(&body)?;
    state.touch();
    let started = state
        .bash
        .registry
        .send(StartCommand {
            request,
            wait: true,
        })
        .await??;
    if let Some(rx) = started.result
        && let Ok(json) = rx.await
    {
        return Ok(json_response(json.to_string()));
    }
    // The actor went away without handing over its result: what it
    // recorded last is the answer.
    let log = state.bash.log.clone();
    let id = started.id;
    match blocking(move || log.last_output(&id)).await? {
        Some(raw) => Ok(json_response(stored_json(&raw))),
        None => Err(ApiError::internal("the command ended without a result")),
    }
}

/// Stop a running command and its children (SIGTERM, then SIGKILL after 1 s).
///
/// Not in the reference. Returns the command's final `BashOutput`
/// (`exit_code: -1`).
#[utoipa::path(post, path = "/api/bash/commands/{command_id}/terminate", tag = "Bash",
    params(("command_id" = String, Path, description = "Command id (the BashCommand's id)")),
    responses((status = 200, description = "The final BashOutput", body = serde_json::Value),
              (status = 404, description = "Unknown command", body = serde_json::Value),
              (status = 409, description = "The command has already finished", body = serde_json::Value),
              (status = 422, description = "Invalid id", body = serde_json::Value)))]
pub async fn terminate_bash_command(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = parse_uuid(&path, &["path", "command_id"])?;
    let json = state.bash.registry.send(TerminateCommand { id }).await??;
    Ok(json_response(json.to_string()))
}

/// A query date-time as microseconds; naive values are taken as UTC, as
/// the reference compares them against UTC time stamps.
fn utc_micros(q: &Query, name: &str) -> ApiResult<Option<i64>> {
    Ok(q.opt_datetime(name)?.and_then(|t| {
        ParsedDateTime::parse(&t.to_utc_string_naive_as_utc()).map(|p| p.to_micros())
    }))
}

/// Search bash commands and outputs, in the order they were recorded.
#[utoipa::path(get, path = "/api/bash/bash_events/search", tag = "Bash",
    params(
        ("kind__eq" = Option<super::schemas::BashEventKind>, Query, description = "BashCommand or BashOutput"),
        ("command_id__eq" = Option<String>, Query, description = "Only this command's events (hex or hyphenated id)"),
        ("timestamp__gte" = Option<String>, Query, description = "At or after this ISO date-time (naive: UTC)"),
        ("timestamp__lt" = Option<String>, Query, description = "Before this ISO date-time (naive: UTC)"),
        ("order__gt" = Option<i64>, Query, description = "Drop BashOutput events whose order is not greater than this (for polling)"),
        ("sort_order" = Option<super::schemas::EventSortOrder>, Query, description = "TIMESTAMP (default: log order) or TIMESTAMP_DESC (newest first)"),
        ("page_id" = Option<String>, Query, description = "Opaque cursor: the next_page_id of the previous page"),
        ("limit" = Option<i64>, Query, description = "Page size, 1..=100 (default 100)", minimum = 1, maximum = 100),
    ),
    responses((status = 200, description = "{items, next_page_id}", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = serde_json::Value)))]
pub async fn search_bash_events(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let q = Query::from_request(&req);
    let filter = BashFilter {
        kind: q
            .opt_enum("kind__eq", &["BashCommand", "BashOutput"])?
            .and_then(|k| BashKind::parse(&k)),
        command_id: q.opt_uuid("command_id__eq")?,
        micros_gte: utc_micros(&q, "timestamp__gte")?,
        micros_lt: utc_micros(&q, "timestamp__lt")?,
        order_gt: q.opt_int("order__gt", None, None)?,
    };
    let descending = q
        .opt_enum("sort_order", &["TIMESTAMP", "TIMESTAMP_DESC"])?
        .as_deref()
        == Some("TIMESTAMP_DESC");
    let cursor = match q.get("page_id").filter(|p| !p.is_empty()) {
        None => None,
        Some(raw) => Some(raw.parse::<u64>().map_err(|_| {
            ApiError::invalid(
                "value_error",
                &["query", "page_id"],
                "Value error, not a page id returned by this server",
                Value::String(raw.into()),
            )
        })?),
    };
    let limit = q.limit()?;
    let log = state.bash.log.clone();
    let body = blocking(move || {
        log.search(&filter, cursor, limit, descending, MAX_PAGE_BYTES)
            .map(|p| p.to_json())
    })
    .await?;
    Ok(json_response(body))
}

/// Get one bash event by its hex id.
#[utoipa::path(get, path = "/api/bash/bash_events/{event_id}", tag = "Bash",
    params(("event_id" = String, Path, description = "Event id (hex)")),
    responses((status = 200, description = "The event", body = serde_json::Value),
              (status = 404, description = "No such event", body = serde_json::Value)))]
pub async fn get_bash_event(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let Some(id) = Uuid::parse(&path) else {
        return Err(ApiError::not_found());
    };
    let log = state.bash.log.clone();
    match blocking(move || log.get(&id)).await? {
        Some(raw) => Ok(json_response(stored_json(&raw))),
        None => Err(ApiError::not_found()),
    }
}

/// Get several bash events by id (body: JSON array of ids; `null` for unknown ones).
#[utoipa::path(get, path = "/api/bash/bash_events/", tag = "Bash",
    request_body(content = Vec<String>, description = "Event ids (at most 100)"),
    responses((status = 200, description = "Events, null for unknown ids", body = serde_json::Value),
              (status = 422, description = "Missing or invalid body", body = serde_json::Value)))]
pub async fn batch_get_bash_events(
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let input = json_body(&body)?;
    let Value::Array(items) = &input else {
        return Err(ApiError::invalid(
            "list_type",
            &["body"],
            "Input should be a valid list",
            input.clone(),
        ));
    };
    if items.len() > MAX_BATCH_IDS {
        return Err(ApiError::invalid(
            "too_long",
            &["body"],
            format!("List should have at most {MAX_BATCH_IDS} items"),
            Value::from(items.len()),
        ));
    }
    let mut ids = Vec::with_capacity(items.len());
    for (i, v) in items.iter().enumerate() {
        let Value::String(s) = v else {
            return Err(ApiError::invalid(
                "string_type",
                &["body", &i.to_string()],
                "Input should be a valid string",
                v.clone(),
            ));
        };
        ids.push(Uuid::parse(s));
    }
    let log = state.bash.log.clone();
    let body = blocking(move || {
        let mut out = String::from("[");
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match id.map(|id| log.get(&id)).transpose()?.flatten() {
                Some(raw) => out.push_str(stored_json(&raw)),
                None => out.push_str("null"),
            }
        }
        out.push(']');
        Ok(out)
    })
    .await?;
    Ok(json_response(body))
}

/// Delete every stored bash event (running commands go on recording).
#[utoipa::path(delete, path = "/api/bash/bash_events", tag = "Bash",
    responses((status = 200, description = "{\"cleared_count\": n}", body = serde_json::Value)))]
pub async fn clear_all_bash_events(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let log = state.bash.log.clone();
    let n = blocking(move || log.clear()).await?;
    Ok(HttpResponse::Ok().json(json!({ "cleared_count": n })))
}
