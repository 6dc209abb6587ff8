//! `/api/conversations`: create, read, list, update and delete
//! conversations, and the run-control routes (run, pause, interrupt,
//! secrets, policies, side questions). Reads come straight from the store;
//! every change is one message to the conversation's actor. Create, pause,
//! interrupt, update and delete notify the conversation webhooks from the
//! actors' side, so a client that hangs up cannot lose the notification and
//! no answer waits for it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use agent_actors::conversation::messages::*;
use agent_actors::conversation::webhooks::WithWebhook;
use agent_actors::ids::Uuid;
use agent_actors::model::conversation::{
    ExecutionStatus, StartConversationRequest, UpdateConversationRequest,
    parse_confirmation_policy, parse_secret_source, parse_security_analyzer,
};
use agent_actors::model::event::Event;
use agent_actors::settings::profiles::ProfileLoadError;
use agent_actors::store::Summary;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use super::method_not_allowed;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Query, conversation_id, json_body, required};
use crate::state::AppState;

/// OpenAPI description of this module.
#[derive(OpenApi)]
#[openapi(paths(
    search_conversations,
    count_conversations,
    get_conversation,
    batch_get_conversations,
    start_conversation,
    update_conversation,
    delete_conversation,
    pause_conversation,
    interrupt_conversation,
    run_conversation,
    update_secrets,
    set_confirmation_policy,
    set_security_analyzer,
    agent_final_response,
    ask_agent,
    switch_llm,
    switch_profile,
    fork_conversation,
    condense_conversation,
    switch_acp_model,
    acp_search,
    acp_count,
    acp_get,
    acp_batch_get,
    acp_start,
    fault
))]
pub struct ConversationsApi;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let r =
        |path: &str| web::resource(path.to_string()).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/conversations/search").route(web::get().to(search_conversations)))
        .service(r("/api/conversations/count").route(web::get().to(count_conversations)))
        .service(
            r("/api/conversations")
                .route(web::get().to(batch_get_conversations))
                .route(web::post().to(start_conversation)),
        )
        .service(
            r("/api/conversations/{conversation_id}")
                .route(web::get().to(get_conversation))
                .route(web::patch().to(update_conversation))
                .route(web::delete().to(delete_conversation)),
        )
        .service(
            r("/api/conversations/{conversation_id}/pause")
                .route(web::post().to(pause_conversation)),
        )
        .service(
            r("/api/conversations/{conversation_id}/interrupt")
                .route(web::post().to(interrupt_conversation)),
        )
        .service(
            r("/api/conversations/{conversation_id}/run").route(web::post().to(run_conversation)),
        )
        .service(
            r("/api/conversations/{conversation_id}/secrets").route(web::post().to(update_secrets)),
        )
        .service(
            r("/api/conversations/{conversation_id}/confirmation_policy")
                .route(web::post().to(set_confirmation_policy)),
        )
        .service(
            r("/api/conversations/{conversation_id}/security_analyzer")
                .route(web::post().to(set_security_analyzer)),
        )
        .service(
            r("/api/conversations/{conversation_id}/agent_final_response")
                .route(web::get().to(agent_final_response)),
        )
        .service(
            r("/api/conversations/{conversation_id}/ask_agent").route(web::post().to(ask_agent)),
        )
        .service(
            r("/api/conversations/{conversation_id}/switch_llm").route(web::post().to(switch_llm)),
        )
        .service(
            r("/api/conversations/{conversation_id}/switch_profile")
                .route(web::post().to(switch_profile)),
        )
        .service(
            r("/api/conversations/{conversation_id}/fork").route(web::post().to(fork_conversation)),
        )
        .service(
            r("/api/conversations/{conversation_id}/condense")
                .route(web::post().to(condense_conversation)),
        )
        .service(
            r("/api/conversations/{conversation_id}/switch_acp_model")
                .route(web::post().to(switch_acp_model)),
        )
        .service(r("/api/acp/conversations/search").route(web::get().to(acp_search)))
        .service(r("/api/acp/conversations/count").route(web::get().to(acp_count)))
        .service(
            r("/api/acp/conversations")
                .route(web::get().to(acp_batch_get))
                .route(web::post().to(acp_start)),
        )
        .service(r("/api/acp/conversations/{conversation_id}").route(web::get().to(acp_get)))
        .service(
            r("/api/_test/fault/conversations/{conversation_id}/{kind}")
                .route(web::post().to(fault)),
        );
}

fn success(ok: bool) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "success": ok }))
}

fn include_skills(q: &Query) -> ApiResult<bool> {
    Ok(q.opt_bool("include_skills")?.unwrap_or(false))
}

/// The catalog (id, times, status) of every conversation, skipping
/// unreadable entries; listing and counting never parse whole records.
fn catalog(state: &AppState, status: Option<ExecutionStatus>) -> Vec<(Uuid, Summary)> {
    let mut out = vec![];
    for item in state.store.summaries() {
        match item {
            Ok((id, s)) => {
                if status.is_none_or(|want| s.status == want.as_str()) {
                    out.push((id, s));
                }
            }
            Err(e) => log::warn!("unreadable catalog entry skipped: {e}"),
        }
    }
    out
}

fn status_filter(q: &Query) -> ApiResult<Option<ExecutionStatus>> {
    Ok(q.opt_enum("status", &ExecutionStatus::ALL)?
        .and_then(|s| ExecutionStatus::parse(&s)))
}

const SORT_ORDERS: [&str; 4] = [
    "CREATED_AT",
    "UPDATED_AT",
    "CREATED_AT_DESC",
    "UPDATED_AT_DESC",
];

/// Search conversations.
#[utoipa::path(get, path = "/api/conversations/search", tag = "Conversations",
    params(
        ("page_id" = Option<String>, Query, description = "next_page_id of the previous page (hex id)"),
        ("limit" = Option<i64>, Query, description = "Page size, 1..=100 (default 100)", minimum = 1, maximum = 100),
        ("status" = Option<super::schemas::ExecutionStatus>, Query, description = "Only conversations with this execution status"),
        ("sort_order" = Option<super::schemas::ConversationSortOrder>, Query, description = "CREATED_AT, UPDATED_AT, CREATED_AT_DESC (default) or UPDATED_AT_DESC"),
        ("include_skills" = Option<bool>, Query, description = "Keep agent_context.skills in the output"),
    ),
    responses((status = 200, description = "A page of ConversationInfo", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = serde_json::Value)))]
pub async fn search_conversations(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let q = Query::from_request(&req);
    let limit = q.limit()?;
    let status = status_filter(&q)?;
    let order = q
        .opt_enum("sort_order", &SORT_ORDERS)?
        .unwrap_or_else(|| "CREATED_AT_DESC".into());
    let skills = include_skills(&q)?;
    let page_id = q.opt_str("page_id");
    let state2 = state.clone();
    let body = web::block(move || -> Result<Value, ApiError> {
        let mut entries = catalog(&state2, status);
        match order.as_str() {
            "CREATED_AT" => entries.sort_by(|a, b| a.1.created_at.cmp(&b.1.created_at)),
            "UPDATED_AT" => entries.sort_by(|a, b| a.1.updated_at.cmp(&b.1.updated_at)),
            "UPDATED_AT_DESC" => entries.sort_by(|a, b| b.1.updated_at.cmp(&a.1.updated_at)),
            _ => entries.sort_by(|a, b| b.1.created_at.cmp(&a.1.created_at)),
        }
        let start = page_id
            .as_deref()
            .and_then(Uuid::parse)
            .and_then(|pid| entries.iter().position(|(id, _)| *id == pid))
            .unwrap_or(0);
        // Only the page's records are read in full.
        let mut items: Vec<Value> = Vec::with_capacity(limit);
        for (id, _) in entries.iter().skip(start).take(limit) {
            if let Some(r) = state2.record(id)? {
                items.push(r.info_value(skills));
            }
        }
        let next = entries.get(start + limit).map(|(id, _)| id.simple());
        Ok(json!({ "items": items, "next_page_id": next }))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(HttpResponse::Ok().json(body))
}

/// Count conversations.
#[utoipa::path(get, path = "/api/conversations/count", tag = "Conversations",
    params(("status" = Option<super::schemas::ExecutionStatus>, Query, description = "Only conversations with this execution status")),
    responses((status = 200, description = "Number of conversations", body = i64)))]
pub async fn count_conversations(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let q = Query::from_request(&req);
    let status = status_filter(&q)?;
    let n = match status {
        None => state.store.conversation_count(),
        Some(s) => {
            let state2 = state.clone();
            web::block(move || catalog(&state2, Some(s)).len())
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
        }
    };
    Ok(HttpResponse::Ok().json(n))
}

/// Get a conversation.
#[utoipa::path(get, path = "/api/conversations/{conversation_id}", tag = "Conversations",
    params(("conversation_id" = String, Path, description = "Conversation id"),
           ("include_skills" = Option<bool>, Query, description = "Keep agent_context.skills")),
    responses((status = 200, description = "ConversationInfo", body = serde_json::Value),
              (status = 404, description = "Unknown conversation", body = serde_json::Value),
              (status = 422, description = "Malformed id", body = serde_json::Value)))]
pub async fn get_conversation(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = conversation_id(&path)?;
    let skills = include_skills(&Query::from_request(&req))?;
    let record = state.record(&id)?.ok_or_else(ApiError::not_found)?;
    Ok(HttpResponse::Ok().json(record.info_value(skills)))
}

/// Get several conversations by id (`null` for unknown ids).
#[utoipa::path(get, path = "/api/conversations", tag = "Conversations",
    params(("ids" = Vec<String>, Query, description = "Conversation ids (repeat the parameter; fewer than 100)")),
    responses((status = 200, description = "ConversationInfo or null per id", body = serde_json::Value),
              (status = 422, description = "Missing or malformed ids", body = serde_json::Value)))]
pub async fn batch_get_conversations(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let q = Query::from_request(&req);
    let raw = q.all("ids");
    if raw.is_empty() {
        return Err(ApiError::invalid(
            "missing",
            &["query", "ids"],
            "Field required",
            Value::Null,
        ));
    }
    if raw.len() >= 100 {
        return Err(ApiError::invalid(
            "too_long",
            &["query", "ids"],
            "List should have fewer than 100 items",
            Value::from(raw.len()),
        ));
    }
    let skills = include_skills(&q)?;
    let mut out = Vec::with_capacity(raw.len());
    for (i, s) in raw.iter().enumerate() {
        let idx = i.to_string();
        let id = crate::extract::parse_uuid(s, &["query", "ids", &idx])?;
        out.push(
            state
                .record(&id)?
                .map(|r| r.info_value(skills))
                .unwrap_or(Value::Null),
        );
    }
    Ok(HttpResponse::Ok().json(out))
}

/// Builds an agent from `agent_settings` (the settings form of an agent).
fn agent_from_settings(s: &Value) -> Result<Value, String> {
    let llm = s
        .get("llm")
        .cloned()
        .ok_or("agent_settings needs an 'llm' object")?;
    let tools = match s.get("tools") {
        Some(Value::Array(t)) if !t.is_empty() => Value::Array(t.clone()),
        _ => json!([{"name": "terminal"}, {"name": "file_editor"}, {"name": "task_tracker"}]),
    };
    // The reference's `create_agent`: the built-ins, and `switch_llm` unless the
    // settings turn it off.
    let mut builtins = vec!["FinishTool", "ThinkTool"];
    if s.get("enable_switch_llm_tool").and_then(Value::as_bool) != Some(false) {
        builtins.push(agent_actors::tools::switch_llm::CLASS);
    }
    let mut agent = json!({"llm": llm, "tools": tools, "include_default_tools": builtins,
                           "kind": "Agent"});
    for key in ["agent_context", "mcp_config"] {
        if let Some(v) = s.get(key).filter(|v| v.is_object()) {
            agent[key] = v.clone();
        }
    }
    Ok(agent)
}

/// Start a conversation (201), or return the existing one with the given id (200).
#[utoipa::path(post, path = "/api/conversations", tag = "Conversations",
    request_body(content = super::schemas::StartConversationRequest, description = "StartConversationRequest: agent, workspace, optional conversation_id, initial_message, confirmation_policy, secrets, tags, …"),
    responses((status = 201, description = "Created: ConversationInfo", body = serde_json::Value),
              (status = 200, description = "Already exists: ConversationInfo", body = serde_json::Value),
              (status = 422, description = "Invalid request", body = serde_json::Value)))]
pub async fn start_conversation(
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let input = json_body(&body)?;
    let request = StartConversationRequest::from_value(&input, &agent_from_settings)
        .map_err(|e| ApiError::from_field(e, &input))?;
    let (info, created) = state.conversations.send(Create { request }).await??;
    state.touch();
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(info))
}

/// Update a conversation's title and/or tags.
#[utoipa::path(patch, path = "/api/conversations/{conversation_id}", tag = "Conversations",
    params(("conversation_id" = String, Path, description = "Conversation id")),
    request_body(content = super::schemas::UpdateConversationRequest, description = "UpdateConversationRequest: title (1..=200 chars), tags"),
    responses((status = 200, description = "{\"success\": true}, or false for an unknown id", body = serde_json::Value),
              (status = 422, description = "Invalid body", body = serde_json::Value)))]
pub async fn update_conversation(
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = conversation_id(&path)?;
    let input = json_body(&body)?;
    let update = UpdateConversationRequest::from_value(&input)
        .map_err(|e| ApiError::from_field(e, &input))?;
    if !state.store.has_conversation(&id)? {
        return Ok(success(false));
    }
    state.call(id, WithWebhook(Update(update))).await??;
    Ok(success(true))
}

/// Delete a conversation (its workspace directory is kept).
#[utoipa::path(delete, path = "/api/conversations/{conversation_id}", tag = "Conversations",
    params(("conversation_id" = String, Path, description = "Conversation id")),
    responses((status = 200, description = "Deleted", body = serde_json::Value),
              (status = 400, description = "Unknown conversation", body = serde_json::Value)))]
pub async fn delete_conversation(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = conversation_id(&path)?;
    if state.conversations.send(Delete { id }).await?? {
        Ok(success(true))
    } else {
        Err(ApiError::bad_request())
    }
}

/// Pause the conversation after the current step.
#[utoipa::path(post, path = "/api/conversations/{conversation_id}/pause", tag = "Conversations",
    params(("conversation_id" = String, Path, description = "Conversation id")),
    responses((status = 200, description = "Paused", body = serde_json::Value),
              (status = 400, description = "Unknown conversation", body = serde_json::Value)))]
pub async fn pause_conversation(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = conversation_id(&path)?;
    if !state.store.has_conversation(&id)? {
        return Err(ApiError::bad_request());
    }
    state.call(id, WithWebhook(Pause)).await??;
    Ok(success(true))
}

/// Interrupt the current step now and pause.
#[utoipa::path(post, path = "/api/conversations/{conversation_id}/interrupt", tag = "Conversations",
    params(("conversation_id" = String, Path, description = "Conversation id")),
    responses((status = 200, description = "Interrupted", body = serde_json::Value),
              (status = 400, description = "Unknown conversation", body = serde_json::Value)))]
pub async fn interrupt_conversation(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = conversation_id(&path)?;
    if !state.store.has_conversation(&id)? {
        return Err(ApiError::bad_request());
    }
    state.call(id, WithWebhook(Interrupt)).await??;
    Ok(success(true))
}

/// Start or resume the agent loop in the background.
#[utoipa::path(post, path = "/api/conversations/{conversation_id}/run", tag = "Conversations",
    params(("conversation_id" = String, Path, description = "Conversation id")),
    responses((status = 200, description = "Run started", body = serde_json::Value),
              (status = 404, description = "Unknown conversation", body = serde_json::Value),
              (status = 409, description = "Already running", body = serde_json::Value)))]
pub async fn run_conversation(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = conversation_id(&path)?;
    state.call(id, Run).await??;
    state.touch();
    Ok(success(true))
}

/// Add or replace secrets of the conversation.
#[utoipa::path(post, path = "/api/conversations/{conversation_id}/secrets", tag = "Conversations",
    params(("conversation_id" = String, Path, description = "Conversation id")),
    request_body(content = super::schemas::UpdateSecretsRequest, description = "{\"secrets\": {NAME: string | SecretSource}}"),
    responses((status = 200, description = "Updated", body = serde_json::Value),
              (status = 404, description = "Unknown conversation", body = serde_json::Value),
              (status = 422, description = "Invalid body", body = serde_json::Value)))]
pub async fn update_secrets(
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = conversation_id(&path)?;
    let input = json_body(&body)?;
    let raw = required(&input, "secrets")?;
    let Value::Object(raw) = raw else {
        return Err(ApiError::invalid(
            "dict_type",
            &["body", "secrets"],
            "Input should be a valid dictionary",
            Value::Null,
        ));
    };
    let mut secrets = Map::new();
    for (name, v) in raw {
        let src = parse_secret_source(v).map_err(|m| {
            ApiError::invalid(
                "value_error",
                &["body", "secrets", name],
                m,
                Value::String("<redacted>".into()),
            )
        })?;
        secrets.insert(name.clone(), src);
    }
    state.call(id, UpdateSecrets { secrets }).await??;
    Ok(success(true))
}

/// Set the confirmation policy.
#[utoipa::path(post, path = "/api/conversations/{conversation_id}/confirmation_policy", tag = "Conversations",
    params(("conversation_id" = String, Path, description = "Conversation id")),
    request_body(content = super::schemas::SetConfirmationPolicyRequest, description = "{\"policy\": {\"kind\": \"NeverConfirm\"|\"AlwaysConfirm\"|\"ConfirmRisky\", …}}"),
    responses((status = 200, description = "Updated", body = serde_json::Value),
              (status = 404, description = "Unknown conversation", body = serde_json::Value),
              (status = 422, description = "Invalid policy", body = serde_json::Value)))]
pub async fn set_confirmation_policy(
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = conversation_id(&path)?;
    let input = json_body(&body)?;
    let policy = parse_confirmation_policy(required(&input, "policy")?).map_err(|m| {
        ApiError::invalid(
            "value_error",
            &["body", "policy"],
            m,
            input["policy"].clone(),
        )
    })?;
    state.call(id, SetConfirmationPolicy(policy)).await??;
    Ok(success(true))
}

/// Set (or clear) the security analyzer.
#[utoipa::path(post, path = "/api/conversations/{conversation_id}/security_analyzer", tag = "Conversations",
    params(("conversation_id" = String, Path, description = "Conversation id")),
    request_body(content = super::schemas::SetSecurityAnalyzerRequest, description = "{\"security_analyzer\": SecurityAnalyzer | null}"),
    responses((status = 200, description = "Updated", body = serde_json::Value),
              (status = 404, description = "Unknown conversation", body = serde_json::Value),
              (status = 422, description = "Invalid analyzer", body = serde_json::Value)))]
pub async fn set_security_analyzer(
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = conversation_id(&path)?;
    let input = json_body(&body)?;
    let analyzer =
        parse_security_analyzer(required(&input, "security_analyzer")?).map_err(|m| {
            ApiError::invalid(
                "value_error",
                &["body", "security_analyzer"],
                m,
                input["security_analyzer"].clone(),
            )
        })?;
    state.call(id, SetSecurityAnalyzer(analyzer)).await??;
    Ok(success(true))
}

/// The agent's final answer: the last `finish` message or agent message.
#[utoipa::path(get, path = "/api/conversations/{conversation_id}/agent_final_response", tag = "Conversations",
    params(("conversation_id" = String, Path, description = "Conversation id")),
    responses((status = 200, description = "{\"response\": text}", body = serde_json::Value),
              (status = 404, description = "Unknown conversation", body = serde_json::Value)))]
pub async fn agent_final_response(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = conversation_id(&path)?;
    if !state.store.has_conversation(&id)? {
        return Err(ApiError::not_found());
    }
    let state2 = state.clone();
    let text = web::block(move || -> String {
        for e in state2.store.events_from(&id, u64::MAX, true).flatten() {
            let is_agent = e.source() == agent_actors::model::event::Source::Agent;
            match (e.kind(), is_agent) {
                ("ActionEvent", true) | ("MessageEvent", true) => {}
                _ => continue,
            }
            let Ok(ev) = Event::from_json(e.json()) else {
                continue;
            };
            match ev.body {
                agent_actors::model::event::EventBody::Action(a) if a.tool_name == "finish" => {
                    return a
                        .action
                        .as_ref()
                        .filter(|x| x.get("kind").and_then(Value::as_str) == Some("FinishAction"))
                        .and_then(|x| x.get("message"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                }
                agent_actors::model::event::EventBody::Message(m) => {
                    return m
                        .llm_message
                        .content
                        .iter()
                        .filter_map(|c| c.as_text())
                        .collect::<Vec<_>>()
                        .join("");
                }
                _ => {}
            }
        }
        String::new()
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(HttpResponse::Ok().json(json!({ "response": text })))
}

/// Ask the agent's LLM a side question (nothing is recorded).
#[utoipa::path(post, path = "/api/conversations/{conversation_id}/ask_agent", tag = "Conversations",
    params(("conversation_id" = String, Path, description = "Conversation id")),
    request_body(content = super::schemas::AskAgentRequest, description = "{\"question\": text}"),
    responses((status = 200, description = "{\"response\": text}", body = serde_json::Value),
              (status = 404, description = "Unknown conversation", body = serde_json::Value),
              (status = 502, description = "The LLM failed", body = serde_json::Value)))]
pub async fn ask_agent(
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = conversation_id(&path)?;
    let input = json_body(&body)?;
    let question = match required(&input, "question")? {
        Value::String(q) => q.clone(),
        other => {
            return Err(ApiError::invalid(
                "string_type",
                &["body", "question"],
                "Input should be a valid string",
                other.clone(),
            ));
        }
    };
    let response = state.call(id, AskAgent { question }).await??;
    Ok(HttpResponse::Ok().json(json!({ "response": response })))
}

/// Replace the agent's LLM.
#[utoipa::path(post, path = "/api/conversations/{conversation_id}/switch_llm", tag = "Conversations",
    params(("conversation_id" = String, Path, description = "Conversation id")),
    request_body(content = super::schemas::SwitchLlmRequest, description = "{\"llm\": LLM}"),
    responses((status = 200, description = "Switched", body = serde_json::Value),
              (status = 404, description = "Unknown conversation", body = serde_json::Value),
              (status = 422, description = "Invalid LLM", body = serde_json::Value)))]
pub async fn switch_llm(
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = conversation_id(&path)?;
    let input = json_body(&body)?;
    let llm = required(&input, "llm")?.clone();
    state.call(id, SwitchLlm(llm)).await??;
    Ok(success(true))
}

/// Test-only: make a conversation's actor fail (`stop` or `panic`);
/// refused unless `testing.fault_injection` is on.
#[utoipa::path(post, path = "/api/_test/fault/conversations/{conversation_id}/{kind}", tag = "Testing",
    params(("conversation_id" = String, Path, description = "Conversation id"),
           ("kind" = String, Path, description = "stop or panic")),
    responses((status = 200, description = "Fault injected", body = serde_json::Value),
              (status = 400, description = "Fault injection disabled", body = serde_json::Value)))]
pub async fn fault(
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let (raw, kind) = path.into_inner();
    let id = conversation_id(&raw)?;
    if !state.settings.testing.fault_injection {
        return Err(ApiError::bad_request_msg("fault injection is disabled"));
    }
    let addr = state.actor(id).await?;
    if kind == "panic" {
        addr.do_send(InjectFault { kind });
    } else {
        addr.send(InjectFault { kind }).await??;
    }
    Ok(success(true))
}

/// Replace the agent's LLM with a saved profile (accounted under `profile:<name>`).
#[utoipa::path(post, path = "/api/conversations/{conversation_id}/switch_profile", tag = "Conversations",
    params(("conversation_id" = String, Path, description = "Conversation id")),
    request_body(content = serde_json::Value, description = "{\"profile_name\": name}"),
    responses((status = 200, description = "Switched", body = serde_json::Value),
              (status = 400, description = "Invalid profile name, or damaged profile", body = serde_json::Value),
              (status = 404, description = "Unknown conversation or profile", body = serde_json::Value),
              (status = 409, description = "Profile sealed with another key", body = serde_json::Value),
              (status = 422, description = "Invalid body", body = serde_json::Value)))]
pub async fn switch_profile(
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = conversation_id(&path)?;
    let input = json_body(&body)?;
    let name = match required(&input, "profile_name")? {
        Value::String(n) => n.clone(),
        other => {
            return Err(ApiError::invalid(
                "string_type",
                &["body", "profile_name"],
                "Input should be a valid string",
                other.clone(),
            ));
        }
    };
    if !state.store.has_conversation(&id)? {
        return Err(ApiError::not_found());
    }
    let db = state.store.db().clone();
    let cipher = state.cipher.clone();
    let lookup = name.clone();
    let loaded = web::block(move || {
        agent_actors::settings::SettingsStore::open(&db, cipher)
            .map_err(|e| ProfileLoadError::Storage(e.to_string()))
            .and_then(|s| s.profile_llm(&lookup))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let llm = match loaded {
        Ok(llm) => llm,
        Err(ProfileLoadError::NotFound) => {
            return Err(ApiError::not_found_msg(format!(
                "Profile '{name}' not found"
            )));
        }
        Err(ProfileLoadError::Unreadable) => {
            return Err(ApiError::conflict(format!(
                "Profile '{name}' was saved with a different OH_SECRET_KEY; its secrets cannot be read"
            )));
        }
        Err(ProfileLoadError::Storage(e)) => return Err(ApiError::internal(e)),
        // The reference answers its `ValueError`s (a bad name, a damaged profile) with 400.
        Err(e) => {
            return Err(ApiError::bad_request_msg(
                e.value_error(&name).unwrap_or_default(),
            ));
        }
    };
    state.call(id, SwitchLlm(llm.to_value())).await??;
    Ok(success(true))
}

/// Copy a conversation (its events and state) into a new one.
#[utoipa::path(post, path = "/api/conversations/{conversation_id}/fork", tag = "Conversations",
    params(("conversation_id" = String, Path, description = "Source conversation id")),
    request_body(content = serde_json::Value, description = "ForkConversationRequest: {id?, title?, tags?, reset_metrics = true} (optional)"),
    responses((status = 201, description = "ConversationInfo of the copy", body = serde_json::Value),
              (status = 404, description = "Unknown source", body = serde_json::Value),
              (status = 409, description = "The id exists", body = serde_json::Value),
              (status = 422, description = "Invalid body", body = serde_json::Value)))]
pub async fn fork_conversation(
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let source = conversation_id(&path)?;
    let input = crate::extract::opt_json_body(&body)?.unwrap_or_else(|| json!({}));
    if !input.is_object() {
        return Err(ApiError::invalid(
            "model_type",
            &["body"],
            "Input should be a valid dictionary or object",
            input,
        ));
    }
    let id = match input.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(crate::extract::parse_uuid(s, &["body", "id"])?),
        Some(other) => {
            return Err(ApiError::invalid(
                "uuid_type",
                &["body", "id"],
                "UUID input should be a string",
                other.clone(),
            ));
        }
    };
    let title = match input.get("title") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if t.chars().count() <= 200 => Some(t.clone()),
        Some(other) => {
            return Err(ApiError::invalid(
                "string_too_long",
                &["body", "title"],
                "String should have at most 200 characters",
                other.clone(),
            ));
        }
    };
    let tags = match input.get("tags") {
        None | Some(Value::Null) => None,
        Some(t) => Some(
            agent_actors::model::conversation::validate_tags(t, &["tags"])
                .map_err(|e| ApiError::from_field(e, &input))?,
        ),
    };
    let reset_metrics = match input.get("reset_metrics") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(ApiError::invalid(
                "bool_type",
                &["body", "reset_metrics"],
                "Input should be a valid boolean",
                other.clone(),
            ));
        }
    };
    let info = state
        .conversations
        .send(Fork {
            source,
            id,
            title,
            tags,
            reset_metrics,
        })
        .await?
        .map_err(|e| match e {
            agent_actors::conversation::ActorError::NotFound => {
                ApiError::not_found_msg("Source conversation not found")
            }
            other => ApiError::from(other),
        })?;
    state.touch();
    Ok(HttpResponse::Created().json(info))
}

/// Search conversations (deprecated ACP alias of `/api/conversations/search`).
#[utoipa::path(get, path = "/api/acp/conversations/search", tag = "ACP Conversations (deprecated)",
    params(
        ("page_id" = Option<String>, Query, description = "next_page_id of the previous page (hex id)"),
        ("limit" = Option<i64>, Query, description = "Page size, 1..=100 (default 100)", minimum = 1, maximum = 100),
        ("status" = Option<String>, Query, description = "Only conversations with this execution status"),
        ("sort_order" = Option<String>, Query, description = "CREATED_AT, UPDATED_AT, CREATED_AT_DESC (default) or UPDATED_AT_DESC"),
        ("include_skills" = Option<bool>, Query, description = "Keep agent_context.skills in the output"),
    ),
    responses((status = 200, description = "A page of ConversationInfo", body = serde_json::Value)))]
pub async fn acp_search(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    search_conversations(req, state).await
}

/// Count conversations (deprecated ACP alias).
#[utoipa::path(get, path = "/api/acp/conversations/count", tag = "ACP Conversations (deprecated)",
    params(("status" = Option<String>, Query, description = "Only conversations with this execution status")),
    responses((status = 200, description = "Number of conversations", body = i64)))]
pub async fn acp_count(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    count_conversations(req, state).await
}

/// Get a conversation (deprecated ACP alias).
#[utoipa::path(get, path = "/api/acp/conversations/{conversation_id}", tag = "ACP Conversations (deprecated)",
    params(("conversation_id" = String, Path, description = "Conversation id")),
    responses((status = 200, description = "ConversationInfo", body = serde_json::Value),
              (status = 404, description = "Unknown conversation", body = serde_json::Value)))]
pub async fn acp_get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    get_conversation(req, path, state).await
}

/// Get several conversations (deprecated ACP alias).
#[utoipa::path(get, path = "/api/acp/conversations", tag = "ACP Conversations (deprecated)",
    params(("ids" = Vec<String>, Query, description = "Conversation ids (fewer than 100)")),
    responses((status = 200, description = "ConversationInfo or null per id", body = serde_json::Value)))]
pub async fn acp_batch_get(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    batch_get_conversations(req, state).await
}

/// Start a conversation (deprecated ACP alias; ACP agents are not supported).
#[utoipa::path(post, path = "/api/acp/conversations", tag = "ACP Conversations (deprecated)",
    request_body(content = serde_json::Value, description = "StartConversationRequest"),
    responses((status = 201, description = "Created", body = serde_json::Value),
              (status = 422, description = "Invalid request", body = serde_json::Value)))]
pub async fn acp_start(body: web::Bytes, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    start_conversation(body, state).await
}

/// Condense the conversation's history now (or before the next step of a running run).
#[utoipa::path(post, path = "/api/conversations/{conversation_id}/condense", tag = "Conversations",
    params(("conversation_id" = String, Path, description = "Conversation id")),
    responses((status = 200, description = "Condensed (or scheduled)", body = serde_json::Value),
              (status = 400, description = "The agent has no summarizing condenser", body = serde_json::Value),
              (status = 404, description = "Unknown conversation", body = serde_json::Value),
              (status = 502, description = "The condenser LLM failed", body = serde_json::Value)))]
pub async fn condense_conversation(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = conversation_id(&path)?;
    if !state.store.has_conversation(&id)? {
        return Err(ApiError::not_found_msg("Conversation not found"));
    }
    state
        .call(id, agent_actors::conversation::run::Condense)
        .await??;
    Ok(success(true))
}

/// Switch the model of an ACP agent (this server runs no ACP agents, so
/// every conversation answers 400, as the reference does for non-ACP ones).
#[utoipa::path(post, path = "/api/conversations/{conversation_id}/switch_acp_model", tag = "Conversations",
    params(("conversation_id" = String, Path, description = "Conversation id")),
    request_body(content = serde_json::Value, description = "{\"model\": model id}"),
    responses((status = 400, description = "Not an ACP conversation", body = serde_json::Value),
              (status = 404, description = "Unknown conversation", body = serde_json::Value),
              (status = 422, description = "Invalid body", body = serde_json::Value)))]
pub async fn switch_acp_model(
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = conversation_id(&path)?;
    let input = json_body(&body)?;
    if !required(&input, "model")?.is_string() {
        return Err(ApiError::invalid(
            "string_type",
            &["body", "model"],
            "Input should be a valid string",
            input["model"].clone(),
        ));
    }
    if !state.store.has_conversation(&id)? {
        return Err(ApiError::not_found());
    }
    Err(ApiError::bad_request_msg(
        "switch_acp_model is only supported for ACP conversations.",
    ))
}
