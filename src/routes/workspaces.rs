//! `/api/workspaces`: the saved workspace and workspace-parent lists GUI
//! pickers share (camelCase `workspaceParents` / `parentPath`, as in the
//! reference). Adds de-duplicate by `path`; deletes take `?path=`.
//! Storage lives in `agent_actors::settings::workspaces`.

use actix_web::{HttpRequest, HttpResponse, web};
use agent_actors::settings::SettingsError;
use agent_actors::settings::workspaces::{WorkspaceList, parse_items};
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::method_not_allowed;
use super::settings::with_store;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Query, json_body};
use crate::state::AppState;

/// OpenAPI description of this module.
#[derive(OpenApi)]
#[openapi(paths(
    list_workspaces,
    add_workspaces,
    delete_workspace,
    add_workspace_parents,
    delete_workspace_parent
))]
pub struct WorkspacesApi;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let r =
        |path: &str| web::resource(path.to_string()).default_service(web::to(method_not_allowed));
    cfg.service(
        r("/api/workspaces")
            .route(web::get().to(list_workspaces))
            .route(web::post().to(add_workspaces))
            .route(web::delete().to(delete_workspace)),
    )
    .service(
        r("/api/workspaces/parents")
            .route(web::post().to(add_workspace_parents))
            .route(web::delete().to(delete_workspace_parent)),
    );
}

fn store_error(e: SettingsError) -> ApiError {
    match e {
        SettingsError::Unreadable => ApiError::conflict("Workspaces file is corrupted"),
        other => ApiError::internal(other.to_string()),
    }
}

/// List saved workspaces and workspace parents.
#[utoipa::path(get, path = "/api/workspaces", tag = "Workspaces",
    responses((status = 200, description = "WorkspacesListResponse", body = serde_json::Value),
              (status = 409, description = "The stored list is damaged", body = serde_json::Value)))]
pub async fn list_workspaces(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let v = with_store(&state, |s| s.workspaces())
        .await?
        .map_err(store_error)?;
    Ok(HttpResponse::Ok().json(v))
}

async fn add(
    body: web::Bytes,
    state: web::Data<AppState>,
    field: &'static str,
    list: WorkspaceList,
) -> ApiResult<HttpResponse> {
    let input = json_body(&body)?;
    let items = parse_items(&input, field, list == WorkspaceList::Workspaces)
        .map_err(|e| ApiError::from_field(e, &input))?;
    let v = with_store(&state, move |s| s.add_workspaces(list, &items))
        .await?
        .map_err(store_error)?;
    Ok(HttpResponse::Ok().json(v))
}

async fn remove(
    req: HttpRequest,
    state: web::Data<AppState>,
    list: WorkspaceList,
    missing: &'static str,
) -> ApiResult<HttpResponse> {
    let q = Query::from_request(&req);
    let Some(path) = q.opt_str("path") else {
        return Err(ApiError::invalid(
            "missing",
            &["query", "path"],
            "Field required",
            Value::Null,
        ));
    };
    let removed = with_store(&state, move |s| s.remove_workspace(list, &path))
        .await?
        .map_err(store_error)?;
    if !removed {
        return Err(ApiError::not_found_msg(missing));
    }
    Ok(HttpResponse::Ok().json(json!({"deleted": true})))
}

/// Add workspaces (de-duplicated by path); returns both lists.
#[utoipa::path(post, path = "/api/workspaces", tag = "Workspaces",
    request_body(content = super::schemas::AddWorkspacesRequest, description = "AddWorkspacesRequest: workspaces [{id, name, path, parentPath?}]"),
    responses((status = 200, description = "WorkspacesListResponse", body = serde_json::Value),
              (status = 422, description = "Invalid items", body = serde_json::Value)))]
pub async fn add_workspaces(
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    add(body, state, "workspaces", WorkspaceList::Workspaces).await
}

/// Remove a workspace by path.
#[utoipa::path(delete, path = "/api/workspaces", tag = "Workspaces",
    params(("path" = String, Query, description = "Absolute workspace path to remove")),
    responses((status = 200, description = "{\"deleted\": true}", body = serde_json::Value),
              (status = 404, description = "Workspace not found", body = serde_json::Value),
              (status = 422, description = "path missing", body = serde_json::Value)))]
pub async fn delete_workspace(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    remove(req, state, WorkspaceList::Workspaces, "Workspace not found").await
}

/// Add workspace parents (de-duplicated by path); returns both lists.
#[utoipa::path(post, path = "/api/workspaces/parents", tag = "Workspaces",
    request_body(content = super::schemas::AddWorkspaceParentsRequest, description = "AddWorkspaceParentsRequest: parents [{id, name, path}]"),
    responses((status = 200, description = "WorkspacesListResponse", body = serde_json::Value),
              (status = 422, description = "Invalid items", body = serde_json::Value)))]
pub async fn add_workspace_parents(
    body: web::Bytes,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    add(body, state, "parents", WorkspaceList::Parents).await
}

/// Remove a workspace parent by path.
#[utoipa::path(delete, path = "/api/workspaces/parents", tag = "Workspaces",
    params(("path" = String, Query, description = "Absolute workspace parent path to remove")),
    responses((status = 200, description = "{\"deleted\": true}", body = serde_json::Value),
              (status = 404, description = "Workspace parent not found", body = serde_json::Value),
              (status = 422, description = "path missing", body = serde_json::Value)))]
pub async fn delete_workspace_parent(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    remove(
        req,
        state,
        WorkspaceList::Parents,
        "Workspace parent not found",
    )
    .await
}
