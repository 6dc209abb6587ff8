//! `/api/git`: the changed files of a repository and the before/after text
//! of one file, for the GUI's change view and `RemoteWorkspace.git_changes`
//! / `git_diff`. The git work itself lives in [`crate::files::git`]; this
//! module only parses the query and maps outcomes to the reference's
//! answers (a non-repository is an empty answer, a bad ref a 400).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::method_not_allowed;
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::files::git::{self, DiffError, FileDiff, GitError};
use crate::state::AppState;

/// OpenAPI description of this module.
#[derive(OpenApi)]
#[openapi(paths(git_changes, git_diff))]
pub struct GitApi;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let r =
        |path: &str| web::resource(path.to_string()).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/git/changes").route(web::get().to(git_changes)))
        .service(r("/api/git/diff").route(web::get().to(git_diff)));
}

fn required_path(q: &Query) -> ApiResult<String> {
    q.opt_str("path").ok_or_else(|| {
        ApiError::invalid("missing", &["query", "path"], "Field required", Value::Null)
    })
}

fn git_failure(e: GitError) -> ApiError {
    match e {
        // Output over the limit comes from what the client asked about (a
        // tree with millions of changes), not from a server fault.
        GitError::Failed(_) | GitError::TooLarge(_) => ApiError::bad_request_msg(e.to_string()),
        GitError::Denied(_) => ApiError::Http(StatusCode::FORBIDDEN, e.to_string()),
        GitError::TimedOut(_) => ApiError::Server(StatusCode::GATEWAY_TIMEOUT, e.to_string()),
        GitError::Missing => ApiError::Server(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        GitError::Io(_) => {
            log::error!("{e}");
            ApiError::internal(e.to_string())
        }
    }
}

/// Changed files of a repository compared with a ref.
///
/// Without `ref` the base is the current branch's remote branch, else the
/// fork point with the remote default branch, else `HEAD`; a repository
/// without commits compares with the empty tree. Untracked files are
/// `ADDED`; a path that is not in a repository gives `[]`.
#[utoipa::path(get, path = "/api/git/changes", tag = "Git",
    params(("path" = String, Query, description = "The git repository path (relative paths resolve against the server's working directory)"),
           ("ref" = Option<String>, Query, description = "Optional git ref to diff against (e.g. 'HEAD' for git status-style changes, or a commit hash). When omitted, the upstream/default branch is auto-detected.")),
    responses((status = 200, description = "[{status: ADDED|DELETED|UPDATED|MOVED, path}]", body = serde_json::Value),
              (status = 400, description = "Git command failed (e.g. unknown ref)", body = serde_json::Value),
              (status = 403, description = "The server's user may not enter the directory", body = serde_json::Value),
              (status = 422, description = "Missing path", body = serde_json::Value)))]
pub async fn git_changes(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    state.touch();
    let q = Query::from_request(&req);
    let path = required_path(&q)?;
    let git_ref = q.opt_str("ref");
    let changes = git::changes(&path, git_ref.as_deref())
        .await
        .map_err(git_failure)?;
    let body: Vec<Value> = changes
        .into_iter()
        .map(|c| json!({"status": c.status, "path": c.path}))
        .collect();
    Ok(HttpResponse::Ok().json(body))
}

/// Current and base text of one file.
///
/// A file outside any repository gives `{"modified": null, "original":
/// null}`; a missing file, a directory or a file over 1 MiB is a 400.
#[utoipa::path(get, path = "/api/git/diff", tag = "Git",
    params(("path" = String, Query, description = "The file path to get diff for (relative paths resolve against the server's working directory)"),
           ("ref" = Option<String>, Query, description = "Optional git ref to diff against (e.g. 'HEAD' for git status-style changes, or a commit hash). When omitted, the upstream/default branch is auto-detected.")),
    responses((status = 200, description = "{modified, original}", body = serde_json::Value),
              (status = 400, description = "Missing file, or git command failed", body = serde_json::Value),
              (status = 403, description = "The server's user may not enter the repository", body = serde_json::Value),
              (status = 422, description = "Missing path", body = serde_json::Value)))]
pub async fn git_diff(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    state.touch();
    let q = Query::from_request(&req);
    let path = required_path(&q)?;
    let git_ref = q.opt_str("ref");
    let body = match git::diff(&path, git_ref.as_deref()).await {
        Ok(FileDiff::NotInRepo) => json!({"modified": null, "original": null}),
        Ok(FileDiff::Texts { modified, original }) => {
            json!({"modified": modified, "original": original})
        }
        Err(DiffError::Path(msg)) => return Err(ApiError::bad_request_msg(msg)),
        Err(DiffError::Git(e)) => return Err(git_failure(e)),
    };
    Ok(HttpResponse::Ok().json(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError;

    #[test]
    fn client_side_git_failures_are_4xx() {
        for (e, status) in [
            (GitError::Failed("git x".into()), 400),
            (GitError::TooLarge("git diff".into()), 400),
            (GitError::Denied("/d".into()), 403),
            (GitError::TimedOut("git x".into()), 504),
            (GitError::Missing, 503),
            (GitError::Io("boom".into()), 500),
        ] {
            assert_eq!(git_failure(e).status_code().as_u16(), status);
        }
    }
}
