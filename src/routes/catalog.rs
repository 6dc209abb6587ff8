//! Read-only catalogue routes: `/api/tools/`, `/api/llm/*` (answered from
//! the table compiled into the binary; no network), `/api/hooks` (a
//! project's `.openhands/hooks.json`), `/api/skills*` (skills from local
//! folders; this server fetches nothing remote, so public, organisation and
//! marketplace skills are empty and install/sync say so), and
//! `/api/mcp/test` (probes one MCP server and always answers 200).
//!
//! File reads and probes run off the async threads. Nothing is stored.

use std::path::PathBuf;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use agent_actors::catalog::mcp::{McpServer, Transport, outcome_value, probe};
use agent_actors::catalog::skills::{ExposedUrl, SkillSources, load_skills};
use agent_actors::catalog::{hooks::load_project_hooks, llm_catalog, registered_tools};
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use super::fields::{
    object, opt_bool, opt_object, opt_str, pattern_mismatch, req_str, str_list, str_map,
};
use super::method_not_allowed;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Query, json_body};
use crate::state::AppState;

/// OpenAPI description of this module.
#[derive(OpenApi)]
#[openapi(paths(
    list_tools,
    list_providers,
    list_models,
    list_verified_models,
    get_hooks,
    get_skills,
    sync_skills,
    install_skill,
    list_installed_skills,
    get_installed_skill,
    set_skill_enabled,
    uninstall_skill,
    refresh_skill,
    marketplace,
    test_mcp_server
))]
pub struct CatalogApi;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let r =
        |path: &str| web::resource(path.to_string()).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/tools/").route(web::get().to(list_tools)))
        .service(r("/api/tools").to(tools_redirect))
        .service(r("/api/llm/providers").route(web::get().to(list_providers)))
        .service(r("/api/llm/models").route(web::get().to(list_models)))
        .service(r("/api/llm/models/verified").route(web::get().to(list_verified_models)))
        .service(r("/api/hooks").route(web::post().to(get_hooks)))
        .service(r("/api/skills").route(web::post().to(get_skills)))
        .service(r("/api/skills/sync").route(web::post().to(sync_skills)))
        .service(r("/api/skills/install").route(web::post().to(install_skill)))
        .service(r("/api/skills/installed").route(web::get().to(list_installed_skills)))
        .service(
            r("/api/skills/installed/{skill_name}")
                .route(web::get().to(get_installed_skill))
                .route(web::patch().to(set_skill_enabled))
                .route(web::delete().to(uninstall_skill)),
        )
        .service(
            r("/api/skills/installed/{skill_name}/refresh").route(web::post().to(refresh_skill)),
        )
        .service(r("/api/skills/marketplace").route(web::get().to(marketplace)))
        .service(r("/api/mcp/test").route(web::post().to(test_mcp_server)));
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
    web::block(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))
}

/// List the registered tools.
#[utoipa::path(get, path = "/api/tools/", tag = "Tools",
    responses((status = 200, description = "Tool names, sorted", body = Vec<String>)))]
pub async fn list_tools() -> HttpResponse {
    HttpResponse::Ok().json(registered_tools())
}

/// `/api/tools` only exists with its trailing slash: 307 to it, as the
/// reference's framework answers (any method, query kept).
async fn tools_redirect(req: HttpRequest) -> HttpResponse {
    let target = match req.query_string() {
        "" => "/api/tools/".to_string(),
        q => format!("/api/tools/?{q}"),
    };
    HttpResponse::TemporaryRedirect()
        .insert_header(("location", target))
        .finish()
}

/// List LLM providers.
#[utoipa::path(get, path = "/api/llm/providers", tag = "LLM",
    responses((status = 200, description = "ProvidersResponse", body = serde_json::Value)))]
pub async fn list_providers() -> HttpResponse {
    HttpResponse::Ok().json(json!({"providers": llm_catalog().providers}))
}

/// List LLM models, optionally of one provider.
#[utoipa::path(get, path = "/api/llm/models", tag = "LLM",
    params(("provider" = Option<String>, Query, description = "Only models of this provider (e.g. 'openai', 'anthropic')")),
    responses((status = 200, description = "ModelsResponse: provider/model identifiers, sorted", body = serde_json::Value)))]
pub async fn list_models(req: HttpRequest) -> HttpResponse {
    let q = Query::from_request(&req);
    let models = llm_catalog().models_of(q.get("provider"));
    HttpResponse::Ok().json(json!({ "models": models }))
}

/// List verified LLM models by provider.
#[utoipa::path(get, path = "/api/llm/models/verified", tag = "LLM",
    responses((status = 200, description = "VerifiedModelsResponse", body = serde_json::Value)))]
pub async fn list_verified_models() -> HttpResponse {
    HttpResponse::Ok().json(json!({"models": llm_catalog().verified}))
}

/// Load a project's hooks (`<project_dir>/.openhands/hooks.json`).
#[utoipa::path(post, path = "/api/hooks", tag = "Hooks",
    request_body(content = super::schemas::HooksRequest, description = "HooksRequest: project_dir"),
    responses((status = 200, description = "HooksResponse: hook_config or null", body = serde_json::Value),
              (status = 422, description = "Invalid body", body = serde_json::Value)))]
pub async fn get_hooks(body: web::Bytes) -> ApiResult<HttpResponse> {
    let input = json_body(&body)?;
    let obj = object(&input, &["body"])?;
    let project_dir = opt_str(obj, &["body"], "project_dir")?.filter(|d| !d.is_empty());
    let cfg = match project_dir {
        None => None,
        Some(dir) => blocking(move || load_project_hooks(&PathBuf::from(dir))).await?,
    };
    Ok(HttpResponse::Ok().json(json!({ "hook_config": cfg })))
}

fn exposed_urls(obj: &Map<String, Value>) -> ApiResult<Vec<ExposedUrl>> {
    let at = ["body", "sandbox_config"];
    let Some(cfg) = opt_object(obj, &["body"], "sandbox_config")? else {
        return Ok(vec![]);
    };
    let items = match cfg.get("exposed_urls") {
        None => return Ok(vec![]),
        Some(Value::Array(a)) => a,
        Some(v) => {
            return Err(ApiError::invalid(
                "list_type",
                &["body", "sandbox_config", "exposed_urls"],
                "Input should be a valid list",
                v.clone(),
            ));
        }
    };
    let mut out = vec![];
    for (i, item) in items.iter().enumerate() {
        let idx = i.to_string();
        let loc = [at[0], at[1], "exposed_urls", idx.as_str()];
        let m = object(item, &loc)?;
        let port = match m.get("port") {
            Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64().unwrap_or_default(),
            other => {
                let mut l = loc.to_vec();
                l.push("port");
                return Err(ApiError::invalid(
                    if other.is_none() {
                        "missing"
                    } else {
                        "int_type"
                    },
                    &l,
                    if other.is_none() {
                        "Field required"
                    } else {
                        "Input should be a valid integer"
                    },
                    other.cloned().unwrap_or(Value::Null),
                ));
            }
        };
        out.push(ExposedUrl {
            name: req_str(m, &loc, "name", false)?,
            url: req_str(m, &loc, "url", false)?,
            port,
        });
    }
    Ok(out)
}

/// Load skills from the sandbox, user and project sources.
#[utoipa::path(post, path = "/api/skills", tag = "Skills",
    request_body(content = super::schemas::SkillsRequest, description = "SkillsRequest: load_public, load_user, load_project, load_org, marketplace_path, project_dir, org_config, sandbox_config"),
    responses((status = 200, description = "SkillsResponse: skills and per-source counts", body = serde_json::Value),
              (status = 422, description = "Invalid body", body = serde_json::Value)))]
pub async fn get_skills(body: web::Bytes) -> ApiResult<HttpResponse> {
    let input = json_body(&body)?;
    let obj = object(&input, &["body"])?;
    let at = ["body"];
    let flag = |k: &str| -> ApiResult<bool> { Ok(opt_bool(obj, &at, k)?.unwrap_or(true)) };
    opt_str(obj, &at, "marketplace_path")?;
    if let Some(org) = opt_object(obj, &at, "org_config")? {
        for key in ["repository", "provider", "org_repo_url", "org_name"] {
            req_str(org, &["body", "org_config"], key, key == "org_repo_url")?;
        }
    }
    let sources = SkillSources {
        load_public: flag("load_public")?,
        load_user: flag("load_user")?,
        load_project: flag("load_project")?,
        load_org: flag("load_org")?,
        project_dir: opt_str(obj, &at, "project_dir")?
            .filter(|d| !d.is_empty())
            .map(PathBuf::from),
        home: std::env::var_os("HOME").map(PathBuf::from),
        sandbox_urls: exposed_urls(obj)?,
    };
    let out = blocking(move || load_skills(&sources)).await?;
    Ok(HttpResponse::Ok().json(out))
}

/// Refresh public skills (not available: this server fetches nothing).
#[utoipa::path(post, path = "/api/skills/sync", tag = "Skills",
    responses((status = 200, description = "SyncResponse", body = serde_json::Value)))]
pub async fn sync_skills() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "error",
        "message": "Public skills are not available on this server: it does not download \
                    skill repositories, so there is nothing to sync. Local user and project \
                    skills are read directly from disk.",
    }))
}

/// Install a skill (not supported: no remote fetching).
#[utoipa::path(post, path = "/api/skills/install", tag = "Skills",
    request_body(content = super::schemas::InstallSkillRequest, description = "InstallSkillRequest: source, ref, repo_path, force"),
    responses((status = 400, description = "Installing skills is not supported", body = serde_json::Value),
              (status = 422, description = "Invalid body", body = serde_json::Value)))]
pub async fn install_skill(body: web::Bytes) -> ApiResult<HttpResponse> {
    let input = json_body(&body)?;
    let obj = object(&input, &["body"])?;
    let source = req_str(obj, &["body"], "source", false)?;
    if source.is_empty() {
        return Err(ApiError::invalid(
            "string_too_short",
            &["body", "source"],
            "String should have at least 1 character",
            Value::String(source),
        ));
    }
    opt_str(obj, &["body"], "ref")?;
    opt_str(obj, &["body"], "repo_path")?;
    opt_bool(obj, &["body"], "force")?;
    Err(ApiError::bad_request_msg(
        "Installing skills is not supported by this server: it does not fetch skill sources. \
         Put skills in <project>/.agents/skills or ~/.openhands/skills instead.",
    ))
}

/// List installed skills (always empty: nothing can be installed).
#[utoipa::path(get, path = "/api/skills/installed", tag = "Skills",
    responses((status = 200, description = "InstalledSkillsListResponse", body = serde_json::Value)))]
pub async fn list_installed_skills() -> HttpResponse {
    HttpResponse::Ok().json(json!({"skills": []}))
}

const SKILL_NAME_PATTERN: &str = "^[a-z0-9]+(-[a-z0-9]+)*$";

fn installed_name(path: web::Path<String>) -> ApiResult<String> {
    let name = path.into_inner();
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if !ok {
        return Err(pattern_mismatch(
            &["path", "skill_name"],
            SKILL_NAME_PATTERN,
            &name,
            255,
        ));
    }
    Ok(name)
}

fn not_installed(name: &str) -> ApiError {
    ApiError::not_found_msg(format!("Skill '{name}' is not installed"))
}

/// Get an installed skill (404: none are installed).
#[utoipa::path(get, path = "/api/skills/installed/{skill_name}", tag = "Skills",
    params(("skill_name" = String, Path, description = "Skill name (lowercase alphanumeric, hyphens)")),
    responses((status = 404, description = "Skill not installed", body = serde_json::Value),
              (status = 422, description = "Invalid name", body = serde_json::Value)))]
pub async fn get_installed_skill(path: web::Path<String>) -> ApiResult<HttpResponse> {
    Err(not_installed(&installed_name(path)?))
}

/// Enable or disable an installed skill (404: none are installed).
#[utoipa::path(patch, path = "/api/skills/installed/{skill_name}", tag = "Skills",
    params(("skill_name" = String, Path, description = "Skill name (lowercase alphanumeric, hyphens)")),
    request_body(content = super::schemas::UpdateSkillStateRequest, description = "UpdateSkillStateRequest: enabled"),
    responses((status = 404, description = "Skill not installed", body = serde_json::Value),
              (status = 422, description = "Invalid name or body", body = serde_json::Value)))]
pub async fn set_skill_enabled(
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let name = installed_name(path)?;
    let input = json_body(&body)?;
    let obj = object(&input, &["body"])?;
    if opt_bool(obj, &["body"], "enabled")?.is_none() {
        return Err(ApiError::invalid(
            "missing",
            &["body", "enabled"],
            "Field required",
            input.clone(),
        ));
    }
    Err(not_installed(&name))
}

/// Uninstall a skill (404: none are installed).
#[utoipa::path(delete, path = "/api/skills/installed/{skill_name}", tag = "Skills",
    params(("skill_name" = String, Path, description = "Skill name (lowercase alphanumeric, hyphens)")),
    responses((status = 404, description = "Skill not installed", body = serde_json::Value),
              (status = 422, description = "Invalid name", body = serde_json::Value)))]
pub async fn uninstall_skill(path: web::Path<String>) -> ApiResult<HttpResponse> {
    Err(not_installed(&installed_name(path)?))
}

/// Refresh an installed skill (404: none are installed).
#[utoipa::path(post, path = "/api/skills/installed/{skill_name}/refresh", tag = "Skills",
    params(("skill_name" = String, Path, description = "Skill name (lowercase alphanumeric, hyphens)")),
    responses((status = 404, description = "Skill not installed", body = serde_json::Value),
              (status = 422, description = "Invalid name", body = serde_json::Value)))]
pub async fn refresh_skill(path: web::Path<String>) -> ApiResult<HttpResponse> {
    Err(not_installed(&installed_name(path)?))
}

/// The skills marketplace (empty: no remote catalogue offline).
#[utoipa::path(get, path = "/api/skills/marketplace", tag = "Skills",
    responses((status = 200, description = "MarketplaceCatalogResponse", body = serde_json::Value)))]
pub async fn marketplace() -> HttpResponse {
    HttpResponse::Ok().json(json!({"skills": []}))
}

const REMOTE_TYPES: [&str; 4] = ["http", "shttp", "streamable-http", "sse"];

fn mcp_server(obj: &Map<String, Value>) -> ApiResult<McpServer> {
    let Some(raw) = obj.get("server") else {
        return Err(ApiError::invalid(
            "missing",
            &["body", "server"],
            "Field required",
            Value::Null,
        ));
    };
    let at = ["body", "server"];
    let server = object(raw, &at)?;
    let tag = match server.get("type") {
        Some(Value::String(t)) => t.as_str(),
        None => {
            return Err(ApiError::invalid(
                "union_tag_not_found",
                &at,
                "Unable to extract tag using discriminator 'type'",
                Value::Object(Map::new()),
            ));
        }
        Some(_) => "",
    };
    if tag == "stdio" {
        let stdio_at = ["body", "server", "stdio"];
        let command = req_str(server, &stdio_at, "command", false)?;
        if command.is_empty() {
            return Err(ApiError::invalid(
                "string_too_short",
                &["body", "server", "stdio", "command"],
                "String should have at least 1 character",
                Value::String(command),
            ));
        }
        return Ok(McpServer::Stdio {
            command,
            args: str_list(server, &stdio_at, "args")?,
            env: str_map(server, &stdio_at, "env", true)?,
            cwd: opt_str(server, &stdio_at, "cwd")?,
        });
    }
    if !REMOTE_TYPES.contains(&tag) {
        return Err(ApiError::invalid(
            "union_tag_invalid",
            &at,
            format!(
                "Input tag '{tag}' found using 'type' does not match any of the expected tags: \
                 'stdio', 'http', 'shttp', 'streamable-http', 'sse'"
            ),
            Value::String(tag.to_string()),
        ));
    }
    let remote_at = ["body", "server", tag];
    let url = req_str(server, &remote_at, "url", false)?;
    if url.is_empty() {
        return Err(ApiError::invalid(
            "string_too_short",
            &["body", "server", tag, "url"],
            "String should have at least 1 character",
            Value::String(url),
        ));
    }
    let mut headers = str_map(server, &remote_at, "headers", true)?;
    if let Some(key) = opt_str(server, &remote_at, "api_key")?.filter(|k| !k.is_empty()) {
        // A caller-provided Authorization header wins.
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            headers.push(("Authorization".into(), format!("Bearer {key}")));
        }
    }
    Ok(McpServer::Remote {
        transport: if tag == "sse" {
            Transport::Sse
        } else {
            Transport::Http
        },
        url,
        headers,
    })
}

/// Test an MCP server configuration (connect, handshake, list tools).
#[utoipa::path(post, path = "/api/mcp/test", tag = "MCP",
    request_body(content = super::schemas::McpTestRequest, description = "MCPTestRequest: name, server (stdio: command/args/env/cwd; http|shttp|streamable-http|sse: url/headers/api_key), timeout (0 < t <= 120, default 15)"),
    responses((status = 200, description = "MCPTestSuccess {ok: true, tools} or MCPTestFailure {ok: false, error, error_kind}", body = serde_json::Value),
              (status = 422, description = "Invalid body", body = serde_json::Value)))]
pub async fn test_mcp_server(
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let input = json_body(&body)?;
    let obj = object(&input, &["body"])?;
    let name = opt_str(obj, &["body"], "name")?.unwrap_or_else(|| "test-server".into());
    if name.is_empty() || name.chars().count() > 128 {
        return Err(ApiError::invalid(
            if name.is_empty() {
                "string_too_short"
            } else {
                "string_too_long"
            },
            &["body", "name"],
            if name.is_empty() {
                "String should have at least 1 character"
            } else {
                "String should have at most 128 characters"
            },
            Value::String(name),
        ));
    }
    let name = match name.trim() {
        "" => "test-server".to_string(),
        n => n.to_string(),
    };
    let timeout = match obj.get("timeout") {
        None => 15.0,
        Some(v) => {
            let t = v.as_f64().ok_or_else(|| {
                ApiError::invalid(
                    "float_type",
                    &["body", "timeout"],
                    "Input should be a valid number",
                    v.clone(),
                )
            })?;
            if t <= 0.0 {
                return Err(ApiError::invalid(
                    "greater_than",
                    &["body", "timeout"],
                    "Input should be greater than 0",
                    v.clone(),
                ));
            }
            if t > 120.0 {
                return Err(ApiError::invalid(
                    "less_than_equal",
                    &["body", "timeout"],
                    "Input should be less than or equal to 120",
                    v.clone(),
                ));
            }
            t
        }
    };
    let server = mcp_server(obj)?;
    let outcome = probe(&server, Duration::from_secs_f64(timeout), &state.http).await;
    match &outcome {
        Ok(tools) => log::info!("MCP test of '{name}': {} tool(s)", tools.len()),
        // The error text may quote the server's stderr: not logged.
        Err(f) => log::info!("MCP test of '{name}' failed ({})", f.kind.as_str()),
    }
    Ok(HttpResponse::Ok().json(outcome_value(&outcome)))
}
