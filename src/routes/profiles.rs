//! `/api/profiles`: named LLM configurations — list (creating one from the
//! current settings when there is none, as the reference does), read with
//! the `X-Expose-Secrets` modes, save (at most 50), delete, rename, and
//! activate into the agent settings. Sealed tokens a client posts back
//! (from `encrypted` reads) are opened before saving.
//!
//! Storage and sealing live in `agent_actors::settings::profiles`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use agent_actors::model::conversation::FieldError;
use agent_actors::settings::agent::normalize_llm;
use agent_actors::settings::slots::{llm_slots, open_incoming};
use agent_actors::settings::{SettingsError, valid_profile_name};
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::fields::{object, opt_bool, pattern_mismatch};
use super::method_not_allowed;
use super::settings::{expose_mode, no_cipher, settings_error, with_store};
use crate::error::{ApiError, ApiResult};
use crate::extract::json_body;
use crate::state::AppState;

/// OpenAPI description of this module.
#[derive(OpenApi)]
#[openapi(paths(
    list_profiles,
    get_profile,
    save_profile,
    delete_profile,
    rename_profile,
    activate_profile
))]
pub struct ProfilesApi;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let r =
        |path: &str| web::resource(path.to_string()).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/profiles").route(web::get().to(list_profiles)))
        .service(
            r("/api/profiles/{name}")
                .route(web::get().to(get_profile))
                .route(web::post().to(save_profile))
                .route(web::delete().to(delete_profile)),
        )
        .service(r("/api/profiles/{name}/rename").route(web::post().to(rename_profile)))
        .service(r("/api/profiles/{name}/activate").route(web::post().to(activate_profile)));
}

const NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";

fn check_name(name: &str, at: &[&str]) -> ApiResult<()> {
    if valid_profile_name(name) {
        Ok(())
    } else {
        Err(pattern_mismatch(at, NAME_PATTERN, name, 64))
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found_msg(format!("Profile '{name}' not found"))
}

fn unreadable(name: &str) -> ApiError {
    ApiError::conflict(format!(
        "Profile '{name}' is corrupted or encrypted with a different key"
    ))
}

/// List saved profiles and the active one.
#[utoipa::path(get, path = "/api/profiles", tag = "Profiles",
    responses((status = 200, description = "ProfileListResponse", body = serde_json::Value)))]
pub async fn list_profiles(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let (list, active) = with_store(&state, |s| s.list_profiles())
        .await?
        .map_err(settings_error)?;
    let profiles: Vec<Value> = list.iter().map(|p| p.to_value()).collect();
    Ok(HttpResponse::Ok().json(json!({"profiles": profiles, "active_profile": active})))
}

/// Get a profile's LLM configuration.
#[utoipa::path(get, path = "/api/profiles/{name}", tag = "Profiles",
    params(("name" = String, Path, description = "Profile name"),
           ("X-Expose-Secrets" = Option<super::schemas::ExposeSecrets>, Header, description = "encrypted | plaintext")),
    responses((status = 200, description = "ProfileDetailResponse", body = serde_json::Value),
              (status = 404, description = "No such profile", body = serde_json::Value),
              (status = 409, description = "Sealed with a different key", body = serde_json::Value),
              (status = 422, description = "Invalid name", body = serde_json::Value)))]
pub async fn get_profile(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let name = path.into_inner();
    check_name(&name, &["path", "name"])?;
    let mode = expose_mode(&req)?;
    let n = name.clone();
    let out = with_store(&state, move |s| match s.profile(&n)? {
        None => Err(SettingsError::NotFound),
        Some(p) => Ok((p.render(mode, s.cipher())?, p.api_key_set())),
    })
    .await?;
    let (config, api_key_set) = out.map_err(|e| match e {
        SettingsError::NotFound => not_found(&name),
        SettingsError::Unreadable => unreadable(&name),
        SettingsError::NoCipher => no_cipher(),
        other => ApiError::internal(other.to_string()),
    })?;
    Ok(
        HttpResponse::Ok()
            .json(json!({"name": name, "config": config, "api_key_set": api_key_set})),
    )
}

/// Save an LLM configuration under a name (201).
#[utoipa::path(post, path = "/api/profiles/{name}", tag = "Profiles",
    params(("name" = String, Path, description = "Profile name")),
    request_body(content = super::schemas::SaveProfileRequest, description = "SaveProfileRequest: llm, include_secrets (default true)"),
    responses((status = 201, description = "ProfileMutationResponse", body = serde_json::Value),
              (status = 409, description = "Profile limit reached", body = serde_json::Value),
              (status = 422, description = "Invalid name or LLM", body = serde_json::Value)))]
pub async fn save_profile(
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let name = path.into_inner();
    check_name(&name, &["path", "name"])?;
    let input = json_body(&body)?;
    let obj = object(&input, &["body"])?;
    let include_secrets = opt_bool(obj, &["body"], "include_secrets")?.unwrap_or(true);
    let Some(raw_llm) = obj.get("llm") else {
        return Err(ApiError::invalid(
            "missing",
            &["body", "llm"],
            "Field required",
            Value::Null,
        ));
    };
    let prefixed = |mut e: FieldError| {
        e.loc.insert(0, "llm".into());
        ApiError::from_field(e, &input)
    };
    let mut llm = normalize_llm(raw_llm).map_err(prefixed)?;
    open_incoming(
        &mut llm,
        llm_slots,
        state.cipher.as_deref(),
        &format!("profiles/{name}/"),
    )
    .map_err(|field| {
        prefixed(FieldError {
            loc: vec![field],
            msg: "Value error, this sealed value cannot be opened with the server's key".into(),
            kind: "value_error",
        })
    })?;
    let n = name.clone();
    with_store(&state, move |s| s.save_profile(&n, &llm, include_secrets))
        .await?
        .map_err(|e| match e {
            SettingsError::Limit(max) => ApiError::conflict(format!(
                "Profile limit reached ({max}). Delete a profile before saving a new one."
            )),
            other => ApiError::internal(other.to_string()),
        })?;
    log::info!("saved profile '{name}' (include_secrets={include_secrets})");
    Ok(HttpResponse::Created()
        .json(json!({"name": name, "message": format!("Profile '{name}' saved")})))
}

/// Delete a profile (idempotent).
#[utoipa::path(delete, path = "/api/profiles/{name}", tag = "Profiles",
    params(("name" = String, Path, description = "Profile name")),
    responses((status = 200, description = "ProfileMutationResponse", body = serde_json::Value),
              (status = 422, description = "Invalid name", body = serde_json::Value)))]
pub async fn delete_profile(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let name = path.into_inner();
    check_name(&name, &["path", "name"])?;
    let n = name.clone();
    with_store(&state, move |s| s.delete_profile(&n))
        .await?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .json(json!({"name": name, "message": format!("Profile '{name}' deleted")})))
}

/// Rename a profile (the active profile follows).
#[utoipa::path(post, path = "/api/profiles/{name}/rename", tag = "Profiles",
    params(("name" = String, Path, description = "Profile name")),
    request_body(content = super::schemas::RenameProfileRequest, description = "RenameProfileRequest: new_name"),
    responses((status = 200, description = "ProfileMutationResponse", body = serde_json::Value),
              (status = 404, description = "No such profile", body = serde_json::Value),
              (status = 409, description = "new_name is taken", body = serde_json::Value),
              (status = 422, description = "Invalid name", body = serde_json::Value)))]
pub async fn rename_profile(
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let name = path.into_inner();
    check_name(&name, &["path", "name"])?;
    let input = json_body(&body)?;
    let obj = object(&input, &["body"])?;
    let new_name = super::fields::req_str(obj, &["body"], "new_name", false)?;
    check_name(&new_name, &["body", "new_name"])?;
    let (old, new) = (name.clone(), new_name.clone());
    with_store(&state, move |s| s.rename_profile(&old, &new))
        .await?
        .map_err(|e| match e {
            SettingsError::NotFound => not_found(&name),
            SettingsError::Exists => {
                ApiError::conflict(format!("Profile '{new_name}' already exists"))
            }
            SettingsError::Unreadable => unreadable(&name),
            other => ApiError::internal(other.to_string()),
        })?;
    let message = if name == new_name {
        format!("Profile '{name}' unchanged (same name)")
    } else {
        format!("Profile '{name}' renamed to '{new_name}'")
    };
    Ok(HttpResponse::Ok().json(json!({"name": new_name, "message": message})))
}

/// Apply a profile's LLM to the agent settings and mark it active.
#[utoipa::path(post, path = "/api/profiles/{name}/activate", tag = "Profiles",
    params(("name" = String, Path, description = "Profile name")),
    responses((status = 200, description = "ActivateProfileResponse", body = serde_json::Value),
              (status = 404, description = "No such profile", body = serde_json::Value),
              (status = 409, description = "Sealed with a different key", body = serde_json::Value),
              (status = 422, description = "Invalid name", body = serde_json::Value)))]
pub async fn activate_profile(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let name = path.into_inner();
    check_name(&name, &["path", "name"])?;
    let n = name.clone();
    let out = with_store(&state, move |s| {
        // Tell an unreadable profile apart from unreadable settings.
        match s.profile(&n)? {
            None => return Err(SettingsError::NotFound),
            Some(p) if !p.unreadable.is_empty() => return Ok(Err(())),
            Some(_) => {}
        }
        s.activate_profile(&n).map(|_| Ok(()))
    })
    .await?;
    match out {
        Ok(Ok(())) => {}
        Ok(Err(())) => return Err(unreadable(&name)),
        Err(SettingsError::NotFound) => return Err(not_found(&name)),
        Err(e) => return Err(settings_error(e)),
    }
    state.touch();
    Ok(HttpResponse::build(StatusCode::OK).json(json!({
        "name": name,
        "message": format!("Profile '{name}' activated and applied to current settings"),
        "llm_applied": true,
    })))
}
