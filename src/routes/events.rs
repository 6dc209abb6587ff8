//! `/api/conversations/{id}/events`: search, count and fetch events (read
//! straight from the store, never through the writer), send messages and
//! answer confirmation requests (messages to the conversation's actor).

use actix_web::{HttpRequest, HttpResponse, web};
use agent_actors::conversation::messages::{RespondToConfirmation, SendMessage};
use agent_actors::ids::Uuid;
use agent_actors::model::conversation::SendMessageRequest;
use agent_actors::model::event::Source;
use agent_actors::search::{self, EventFilter};
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::method_not_allowed;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Query, conversation_id, json_body};
use crate::state::AppState;

/// OpenAPI description of this module.
#[derive(OpenApi)]
#[openapi(paths(
    search_events,
    count_events,
    get_event,
    batch_get_events,
    send_message,
    respond_to_confirmation
))]
pub struct EventsApi;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let r =
        |path: &str| web::resource(path.to_string()).default_service(web::to(method_not_allowed));
    cfg.service(
        r("/api/conversations/{conversation_id}/events/search").route(web::get().to(search_events)),
    )
    .service(
        r("/api/conversations/{conversation_id}/events/count").route(web::get().to(count_events)),
    )
    .service(
        r("/api/conversations/{conversation_id}/events/respond_to_confirmation")
            .route(web::post().to(respond_to_confirmation)),
    )
    .service(
        r("/api/conversations/{conversation_id}/events")
            .route(web::get().to(batch_get_events))
            .route(web::post().to(send_message)),
    )
    .service(
        r("/api/conversations/{conversation_id}/events/{event_id}").route(web::get().to(get_event)),
    );
}

fn conversation_not_found(id: &Uuid) -> ApiError {
    ApiError::not_found_msg(format!("Conversation not found: {}", id.hyphenated()))
}

/// The conversation id of the path, 404 when it does not exist.
fn existing(state: &AppState, raw: &str) -> ApiResult<Uuid> {
    let id = conversation_id(raw)?;
    if !state.store.has_conversation(&id)? {
        return Err(conversation_not_found(&id));
    }
    Ok(id)
}

const SOURCES: [&str; 4] = ["agent", "user", "environment", "hook"];

fn filter(q: &Query) -> ApiResult<EventFilter> {
    Ok(EventFilter {
        kind: q.opt_str("kind").filter(|k| !k.is_empty()),
        source: q
            .opt_enum("source", &SOURCES)?
            .and_then(|s| Source::parse(&s)),
        body: q.opt_str("body").filter(|b| !b.is_empty()),
        timestamp_gte: q
            .opt_datetime("timestamp__gte")?
            .map(|t| t.to_local_string()),
        timestamp_lt: q
            .opt_datetime("timestamp__lt")?
            .map(|t| t.to_local_string()),
    })
}

/// Search a conversation's events, in log order.
#[utoipa::path(get, path = "/api/conversations/{conversation_id}/events/search", tag = "Events",
    params(
        ("conversation_id" = String, Path, description = "Conversation id"),
        ("page_id" = Option<String>, Query, description = "Id of the first event of the page (next_page_id of the previous page)"),
        ("limit" = Option<i64>, Query, description = "Page size, 1..=100 (default 100)", minimum = 1, maximum = 100),
        ("kind" = Option<String>, Query, description = "Event class: fully qualified (openhands.sdk.event.llm_convertible.action.ActionEvent) or bare (ActionEvent)"),
        ("source" = Option<super::schemas::EventSource>, Query, description = "agent, user, environment or hook"),
        ("body" = Option<String>, Query, description = "Case-insensitive text in message events"),
        ("sort_order" = Option<super::schemas::EventSortOrder>, Query, description = "TIMESTAMP (default) or TIMESTAMP_DESC"),
        ("timestamp__gte" = Option<String>, Query, description = "Events at or after this ISO date-time"),
        ("timestamp__lt" = Option<String>, Query, description = "Events before this ISO date-time"),
    ),
    responses((status = 200, description = "{items, next_page_id}", body = serde_json::Value),
              (status = 404, description = "Unknown conversation", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = serde_json::Value)))]
pub async fn search_events(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = existing(&state, &path)?;
    let q = Query::from_request(&req);
    let limit = q.limit()?;
    let f = filter(&q)?;
    let descending = q
        .opt_enum("sort_order", &["TIMESTAMP", "TIMESTAMP_DESC"])?
        .as_deref()
        == Some("TIMESTAMP_DESC");
    let page_id = q.opt_str("page_id");
    let store = state.store.clone();
    let body = web::block(move || {
        search::search(&store, &id, &f, page_id.as_deref(), limit, descending).map(|p| p.to_json())
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

/// Count a conversation's events.
#[utoipa::path(get, path = "/api/conversations/{conversation_id}/events/count", tag = "Events",
    params(
        ("conversation_id" = String, Path, description = "Conversation id"),
        ("kind" = Option<String>, Query, description = "Event class"),
        ("source" = Option<super::schemas::EventSource>, Query, description = "agent, user, environment or hook"),
        ("body" = Option<String>, Query, description = "Case-insensitive text in message events"),
        ("timestamp__gte" = Option<String>, Query, description = "At or after"),
        ("timestamp__lt" = Option<String>, Query, description = "Before"),
    ),
    responses((status = 200, description = "Number of events", body = i64),
              (status = 404, description = "Unknown conversation", body = serde_json::Value)))]
pub async fn count_events(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = existing(&state, &path)?;
    let f = filter(&Query::from_request(&req))?;
    let store = state.store.clone();
    let n = web::block(move || search::count(&store, &id, &f))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(HttpResponse::Ok().json(n))
}

/// Get one event.
#[utoipa::path(get, path = "/api/conversations/{conversation_id}/events/{event_id}", tag = "Events",
    params(("conversation_id" = String, Path, description = "Conversation id"),
           ("event_id" = String, Path, description = "Event id")),
    responses((status = 200, description = "The event", body = serde_json::Value),
              (status = 404, description = "Unknown conversation or event", body = serde_json::Value)))]
pub async fn get_event(
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let (raw, event_id) = path.into_inner();
    let id = existing(&state, &raw)?;
    match state.store.event_by_id(&id, &event_id)? {
        Some(e) => Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(e.json().to_string())),
        None => Err(ApiError::not_found_msg(format!(
            "Event not found: {event_id}"
        ))),
    }
}

/// Get several events by id (body: JSON array of ids; `null` for unknown ids).
#[utoipa::path(get, path = "/api/conversations/{conversation_id}/events", tag = "Events",
    params(("conversation_id" = String, Path, description = "Conversation id")),
    request_body(content = Vec<String>, description = "Event ids (fewer than 100)"),
    responses((status = 200, description = "Events (null for unknown ids)", body = serde_json::Value),
              (status = 404, description = "Unknown conversation", body = serde_json::Value),
              (status = 422, description = "Missing or invalid body", body = serde_json::Value)))]
pub async fn batch_get_events(
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = existing(&state, &path)?;
    let input = json_body(&body)?;
    let Value::Array(ids) = &input else {
        return Err(ApiError::invalid(
            "list_type",
            &["body"],
            "Input should be a valid list",
            input.clone(),
        ));
    };
    if ids.len() >= 100 {
        return Err(ApiError::invalid(
            "too_long",
            &["body"],
            "List should have fewer than 100 items",
            Value::from(ids.len()),
        ));
    }
    let mut out = String::from("[");
    for (i, v) in ids.iter().enumerate() {
        let Value::String(eid) = v else {
            return Err(ApiError::invalid(
                "string_type",
                &["body", &i.to_string()],
                "Input should be a valid string",
                v.clone(),
            ));
        };
        if i > 0 {
            out.push(',');
        }
        match state.store.event_by_id(&id, eid)? {
            Some(e) => out.push_str(e.json()),
            None => out.push_str("null"),
        }
    }
    out.push(']');
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(out))
}

/// Send a user message (and start a run when `run` is true).
#[utoipa::path(post, path = "/api/conversations/{conversation_id}/events", tag = "Events",
    params(("conversation_id" = String, Path, description = "Conversation id")),
    request_body(content = super::schemas::SendMessageRequest, description = "SendMessageRequest: {role: \"user\", content: [TextContent|ImageContent], run: false}"),
    responses((status = 200, description = "Appended", body = serde_json::Value),
              (status = 400, description = "Role other than user", body = serde_json::Value),
              (status = 404, description = "Unknown conversation", body = serde_json::Value),
              (status = 422, description = "Invalid body", body = serde_json::Value)))]
pub async fn send_message(
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = existing(&state, &path)?;
    let input = json_body(&body)?;
    let message =
        SendMessageRequest::from_value(&input, &[]).map_err(|e| ApiError::from_field(e, &input))?;
    state.call(id, SendMessage { message }).await??;
    state.touch();
    Ok(HttpResponse::Ok().json(json!({ "success": true })))
}

/// Accept (run) or reject the actions waiting for confirmation.
#[utoipa::path(post, path = "/api/conversations/{conversation_id}/events/respond_to_confirmation", tag = "Events",
    params(("conversation_id" = String, Path, description = "Conversation id")),
    request_body(content = super::schemas::ConfirmationResponseRequest, description = "{accept: bool, reason: text}"),
    responses((status = 200, description = "Done", body = serde_json::Value),
              (status = 404, description = "Unknown conversation", body = serde_json::Value),
              (status = 422, description = "Invalid body", body = serde_json::Value)))]
pub async fn respond_to_confirmation(
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = existing(&state, &path)?;
    let input = json_body(&body)?;
    let accept = match crate::extract::required(&input, "accept")? {
        Value::Bool(b) => *b,
        other => {
            return Err(ApiError::invalid(
                "bool_type",
                &["body", "accept"],
                "Input should be a valid boolean",
                other.clone(),
            ));
        }
    };
    let reason = match input.get("reason") {
        None | Some(Value::Null) => "User rejected the action.".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(ApiError::invalid(
                "string_type",
                &["body", "reason"],
                "Input should be a valid string",
                other.clone(),
            ));
        }
    };
    state
        .call(id, RespondToConfirmation { accept, reason })
        .await??;
    Ok(HttpResponse::Ok().json(json!({ "success": true })))
}
