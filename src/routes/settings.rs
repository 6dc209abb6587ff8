//! `/api/settings`: the persisted agent and conversation settings (read with
//! the `X-Expose-Secrets` modes, deep-merged by PATCH), their form schemas,
//! and the custom secrets that `LookupSecret`s fetch as plain text.
//!
//! Handlers parse and validate, then run one store operation on a blocking
//! thread ([`with_store`]); storage lives in `agent_actors::settings`.
//! Secret values appear only in the plaintext answers a client asked for;
//! they are never logged or echoed in errors.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use agent_actors::settings::persisted::SettingsUpdate;
use agent_actors::settings::schema::{agent_schema, conversation_schema};
use agent_actors::settings::slots::Expose;
use agent_actors::settings::{SettingsError, SettingsStore, valid_secret_name};
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::fields::{object, opt_str, req_str};
use super::method_not_allowed;
use crate::error::{ApiError, ApiResult};
use crate::extract::json_body;
use crate::state::AppState;

/// OpenAPI description of this module.
#[derive(OpenApi)]
#[openapi(paths(
    get_agent_schema,
    get_conversation_schema,
    get_settings,
    update_settings,
    list_secrets,
    put_secret,
    get_secret_value,
    delete_secret
))]
pub struct SettingsApi;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let r =
        |path: &str| web::resource(path.to_string()).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/settings/agent-schema").route(web::get().to(get_agent_schema)))
        .service(
            r("/api/settings/conversation-schema").route(web::get().to(get_conversation_schema)),
        )
        .service(
            r("/api/settings")
                .route(web::get().to(get_settings))
                .route(web::patch().to(update_settings)),
        )
        .service(
            r("/api/settings/secrets")
                .route(web::get().to(list_secrets))
                .route(web::put().to(put_secret)),
        )
        .service(
            r("/api/settings/secrets/{name}")
                .route(web::get().to(get_secret_value))
                .route(web::delete().to(delete_secret)),
        );
}

/// Runs `f` against the settings store on a blocking thread. The outer
/// result is the server's own failure (500); the inner one is for the
/// caller to map in its route's words.
pub(crate) async fn with_store<T, F>(
    state: &web::Data<AppState>,
    f: F,
) -> ApiResult<Result<T, SettingsError>>
where
    T: Send + 'static,
    F: FnOnce(SettingsStore) -> Result<T, SettingsError> + Send + 'static,
{
    let db = state.store.db().clone();
    let cipher = state.cipher.clone();
    let out = web::block(move || SettingsStore::open(&db, cipher).and_then(f))
        .await
        .map_err(|e| ApiError::internal(format!("settings worker failed: {e}")))?;
    match out {
        Err(SettingsError::Storage(e)) => {
            log::error!("settings storage error: {e}");
            Err(ApiError::internal("storage error"))
        }
        other => Ok(other),
    }
}

/// Reads `X-Expose-Secrets` (400 for values other than `encrypted`,
/// `plaintext` and the legacy `true`).
pub(crate) fn expose_mode(req: &HttpRequest) -> ApiResult<Expose> {
    let raw = req
        .headers()
        .get("x-expose-secrets")
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    Expose::parse(raw).map_err(|v| {
        ApiError::bad_request_msg(format!(
            "Invalid X-Expose-Secrets header value: '{v}'. Valid values are: 'encrypted', 'plaintext'."
        ))
    })
}

/// 503 for `encrypted` without a configured key (the reference's text).
pub(crate) fn no_cipher() -> ApiError {
    ApiError::Server(
        StatusCode::SERVICE_UNAVAILABLE,
        "Encryption not available: OH_SECRET_KEY is not configured. Cannot return encrypted secrets."
            .into(),
    )
}

const SETTINGS_UNREADABLE: &str = "Settings file is corrupted or encrypted with a different key";
const SECRETS_UNREADABLE: &str = "Secrets file is corrupted or encrypted with a different key";

/// Maps a settings failure to the reference's answers.
pub(crate) fn settings_error(e: SettingsError) -> ApiError {
    match e {
        SettingsError::Invalid(why) => {
            log::warn!("settings update refused: {why}");
            ApiError::Http(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Settings validation failed".into(),
            )
        }
        SettingsError::Unreadable => ApiError::conflict(SETTINGS_UNREADABLE),
        SettingsError::NoCipher => no_cipher(),
        other => ApiError::internal(other.to_string()),
    }
}

/// Agent settings form schema.
#[utoipa::path(get, path = "/api/settings/agent-schema", tag = "Settings",
    responses((status = 200, description = "SettingsSchema of AgentSettings", body = serde_json::Value)))]
pub async fn get_agent_schema() -> HttpResponse {
    HttpResponse::Ok().json(agent_schema())
}

/// Conversation settings form schema.
#[utoipa::path(get, path = "/api/settings/conversation-schema", tag = "Settings",
    responses((status = 200, description = "SettingsSchema of ConversationSettings", body = serde_json::Value)))]
pub async fn get_conversation_schema() -> HttpResponse {
    HttpResponse::Ok().json(conversation_schema())
}

/// Get the current settings.
///
/// `X-Expose-Secrets`: absent → secrets redacted; `encrypted` (or `true`) →
/// sealed tokens a client may post back; `plaintext` → raw values.
#[utoipa::path(get, path = "/api/settings", tag = "Settings",
    params(("X-Expose-Secrets" = Option<super::schemas::ExposeSecrets>, Header, description = "encrypted | plaintext")),
    responses((status = 200, description = "SettingsResponse", body = serde_json::Value),
              (status = 400, description = "Invalid X-Expose-Secrets value", body = serde_json::Value),
              (status = 409, description = "Stored secrets were sealed with a different key", body = serde_json::Value),
              (status = 503, description = "encrypted requested without OH_SECRET_KEY", body = serde_json::Value)))]
pub async fn get_settings(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let mode = expose_mode(&req)?;
    if mode == Expose::Plaintext {
        log::warn!("settings read with PLAINTEXT secrets");
    }
    let body = with_store(&state, move |s| s.settings()?.response(mode, s.cipher()))
        .await?
        .map_err(settings_error)?;
    Ok(HttpResponse::Ok().json(body))
}

fn diff(obj: &serde_json::Map<String, Value>, key: &str) -> ApiResult<Option<Value>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(_) => Err(ApiError::invalid(
            "dict_type",
            &["body", key],
            "Input should be a valid dictionary",
            Value::String("<redacted>".into()),
        )),
    }
}

/// Update the settings (deep merge).
#[utoipa::path(patch, path = "/api/settings", tag = "Settings",
    request_body(content = super::schemas::SettingsUpdateRequest, description = "SettingsUpdateRequest: agent_settings_diff and/or conversation_settings_diff"),
    responses((status = 200, description = "SettingsResponse (secrets redacted)", body = serde_json::Value),
              (status = 400, description = "Neither diff given", body = serde_json::Value),
              (status = 409, description = "Stored secrets were sealed with a different key", body = serde_json::Value),
              (status = 422, description = "Settings validation failed", body = serde_json::Value)))]
pub async fn update_settings(
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let input = json_body(&body)?;
    let obj = object(&input, &["body"])?;
    let update = SettingsUpdate {
        agent_settings_diff: diff(obj, "agent_settings_diff")?,
        conversation_settings_diff: diff(obj, "conversation_settings_diff")?,
        active_profile: None,
    };
    if update.agent_settings_diff.is_none() && update.conversation_settings_diff.is_none() {
        return Err(ApiError::bad_request_msg(
            "At least one of agent_settings_diff or conversation_settings_diff must be provided",
        ));
    }
    let body = with_store(&state, move |s| {
        s.update_settings(&update)?
            .response(Expose::Redacted, s.cipher())
    })
    .await?
    .map_err(settings_error)?;
    state.touch();
    Ok(HttpResponse::Ok().json(body))
}

/// List custom secrets (names and descriptions only).
#[utoipa::path(get, path = "/api/settings/secrets", tag = "Settings",
    responses((status = 200, description = "SecretsListResponse", body = serde_json::Value)))]
pub async fn list_secrets(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let list = with_store(&state, |s| s.list_secrets())
        .await?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let items: Vec<Value> = list
        .into_iter()
        .map(|(name, description)| json!({"name": name, "description": description}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "secrets": items })))
}

fn check_secret_name(name: &str) -> ApiResult<()> {
    if valid_secret_name(name) {
        return Ok(());
    }
    Err(ApiError::Http(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid secret name format. Must start with a letter, contain only letters, numbers, \
         and underscores, and be 1-64 characters long."
            .into(),
    ))
}

/// Create or replace a custom secret.
#[utoipa::path(put, path = "/api/settings/secrets", tag = "Settings",
    request_body(content = super::schemas::SecretCreateRequest, description = "SecretCreateRequest: name, value, description"),
    responses((status = 200, description = "SecretItemResponse", body = serde_json::Value),
              (status = 422, description = "Invalid body or secret name", body = serde_json::Value)))]
pub async fn put_secret(body: web::Bytes, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let input = json_body(&body)?;
    let obj = object(&input, &["body"])?;
    let name = req_str(obj, &["body"], "name", false)?;
    let value = req_str(obj, &["body"], "value", true)?;
    let description = opt_str(obj, &["body"], "description")?;
    check_secret_name(&name)?;
    let (n, d) = (name.clone(), description.clone());
    with_store(&state, move |s| s.put_secret(&n, &value, d.as_deref()))
        .await?
        .map_err(|e| match e {
            SettingsError::Unreadable | SettingsError::NoCipher => {
                ApiError::internal(SECRETS_UNREADABLE)
            }
            other => ApiError::internal(other.to_string()),
        })?;
    state.touch();
    Ok(HttpResponse::Ok().json(json!({"name": name, "description": description})))
}

/// Get one secret's value as plain text (what `LookupSecret` fetches).
#[utoipa::path(get, path = "/api/settings/secrets/{name}", tag = "Settings",
    params(("name" = String, Path, description = "Secret name")),
    responses((status = 200, description = "The raw value", content_type = "text/plain", body = String),
              (status = 404, description = "Secret not found", body = serde_json::Value),
              (status = 422, description = "Invalid secret name", body = serde_json::Value),
              (status = 500, description = "Sealed with a different key", body = serde_json::Value)))]
pub async fn get_secret_value(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let name = path.into_inner();
    check_secret_name(&name)?;
    let value = with_store(&state, move |s| s.secret_value(&name))
        .await?
        .map_err(|e| match e {
            SettingsError::Unreadable => ApiError::internal(SECRETS_UNREADABLE),
            other => ApiError::internal(other.to_string()),
        })?
        .ok_or_else(|| ApiError::not_found_msg("Secret not found"))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(value))
}

/// Delete a custom secret.
#[utoipa::path(delete, path = "/api/settings/secrets/{name}", tag = "Settings",
    params(("name" = String, Path, description = "Secret name")),
    responses((status = 200, description = "{\"deleted\": true}", body = serde_json::Value),
              (status = 404, description = "Secret not found", body = serde_json::Value),
              (status = 422, description = "Invalid secret name", body = serde_json::Value)))]
pub async fn delete_secret(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let name = path.into_inner();
    check_secret_name(&name)?;
    let deleted = with_store(&state, move |s| s.delete_secret(&name))
        .await?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if !deleted {
        return Err(ApiError::not_found_msg("Secret not found"));
    }
    state.touch();
    Ok(HttpResponse::Ok().json(json!({"deleted": true})))
}
