//! A conversation's workspace as a static web site
//! (`/api/conversations/{id}/workspace/...`) and the cookie that lets a
//! browser load it in iframes and images (`/api/auth/workspace-session`).
//!
//! Files are served only from below the conversation's working directory:
//! the URL path is decoded once, `..` may not climb above the root, and the
//! resolved file (symlinks followed) must still lie inside the root.
//! Authentication (header or cookie on these paths only) is done by the
//! key middleware; this module never reads or logs the key except to copy
//! the caller's own header into its cookie.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use actix_files::NamedFile;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use utoipa::OpenApi;

use super::method_not_allowed;
use crate::auth::WORKSPACE_COOKIE;
use crate::error::{ApiError, ApiResult};
use crate::extract::conversation_id;
use crate::files::paths;
use crate::state::AppState;

/// OpenAPI description of this module.
#[derive(OpenApi)]
#[openapi(paths(
    create_workspace_session,
    delete_workspace_session,
    serve_workspace_root,
    serve_workspace_file
))]
pub struct WorkspaceApi;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let r =
        |path: &str| web::resource(path.to_string()).default_service(web::to(method_not_allowed));
    cfg.service(
        r("/api/auth/workspace-session")
            .route(web::post().to(create_workspace_session))
            .route(web::delete().to(delete_workspace_session)),
    )
    .service(
        r("/api/conversations/{conversation_id}/workspace")
            .route(web::get().to(serve_workspace_root)),
    )
    .service(
        r("/api/conversations/{conversation_id}/workspace/{file_path:.*}")
            .route(web::get().to(serve_workspace_file)),
    );
}

/// Cookie lifetime: eight hours, renewed by calling the POST again.
const COOKIE_MAX_AGE: u64 = 8 * 60 * 60;
/// The cookie is only sent to conversation URLs.
const COOKIE_PATH: &str = "/api/conversations";

/// Whether the browser treats the request's origin as a secure context:
/// https (as forwarded by a proxy, or our own TLS) or a loopback host.
fn secure_context(req: &HttpRequest) -> bool {
    let first = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty())
    };
    let scheme = first("x-forwarded-proto").unwrap_or_else(|| {
        if req.app_config().secure() {
            "https".into()
        } else {
            "http".into()
        }
    });
    if scheme == "https" {
        return true;
    }
    let host = first("x-forwarded-host")
        .or_else(|| first("host"))
        .unwrap_or_default();
    let hostname = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    matches!(hostname, "localhost" | "127.0.0.1" | "::1")
}

/// The `Set-Cookie` value, attribute order as the reference sends it.
fn session_cookie(value: &str, secure: bool, max_age: u64) -> ApiResult<String> {
    let cookie_octet =
        |b: u8| matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E);
    let shown = if value.is_empty() {
        "\"\"".to_string()
    } else if value.bytes().all(cookie_octet) {
        value.to_string()
    } else {
        return Err(ApiError::bad_request_msg(
            "The session key contains characters a cookie cannot carry",
        ));
    };
    let mut cookie = format!(
        "{WORKSPACE_COOKIE}={shown}; HttpOnly; Max-Age={max_age}; Path={COOKIE_PATH}; SameSite=none"
    );
    if secure {
        cookie.push_str("; Secure; Partitioned");
    }
    Ok(cookie)
}

fn with_cookie(cookie: String) -> ApiResult<HttpResponse> {
    let value = HeaderValue::from_str(&cookie)
        .map_err(|_| ApiError::bad_request_msg("The session key cannot be sent in a cookie"))?;
    Ok(HttpResponse::NoContent()
        .insert_header((header::SET_COOKIE, value))
        .finish())
}

/// Mint the workspace session cookie from the caller's session key.
///
/// The cookie (HttpOnly, `Path=/api/conversations`, eight hours) is
/// accepted by the workspace file routes only, so browsers can embed
/// workspace files where no custom header can be sent.
#[utoipa::path(post, path = "/api/auth/workspace-session", tag = "Auth",
    responses((status = 204, description = "Cookie set"),
              (status = 401, description = "Missing or invalid X-Session-API-Key header", body = serde_json::Value)))]
pub async fn create_workspace_session(req: HttpRequest) -> ApiResult<HttpResponse> {
    let key = req
        .headers()
        .get("x-session-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    with_cookie(session_cookie(key, secure_context(&req), COOKIE_MAX_AGE)?)
}

/// Clear the workspace session cookie.
#[utoipa::path(delete, path = "/api/auth/workspace-session", tag = "Auth",
    responses((status = 204, description = "Cookie cleared")))]
pub async fn delete_workspace_session(req: HttpRequest) -> ApiResult<HttpResponse> {
    with_cookie(session_cookie("", secure_context(&req), 0)?)
}

fn outside() -> ApiError {
    ApiError::bad_request_msg("Path is outside the workspace")
}

/// Where `path` would be once every symlink on it is followed, even when
/// its end does not exist (a dangling link is followed through its text),
/// to tell a missing file inside the workspace from an escape. Gives up
/// (`None`) after 40 links, as the kernel does.
fn resolve_lenient(path: &Path, links: u32) -> Option<PathBuf> {
    if links > 40 {
        return None;
    }
    if let Ok(c) = fs::canonicalize(path) {
        return Some(c);
    }
    let mut missing = vec![];
    let mut cur = path.to_path_buf();
    loop {
        if let Ok(meta) = fs::symlink_metadata(&cur) {
            let mut resolved = if meta.file_type().is_symlink() {
                let target = fs::read_link(&cur).ok()?;
                let next = paths::normalize(&cur.parent()?.join(target));
                resolve_lenient(&next, links + 1)?
            } else {
                fs::canonicalize(&cur).ok()?
            };
            resolved.extend(missing.iter().rev());
            return Some(resolved);
        }
        missing.push(cur.file_name()?.to_os_string());
        if !cur.pop() {
            return None;
        }
    }
}

/// Resolves `rel` below the workspace root and opens the file to serve.
fn open_in_workspace(working_dir: &str, rel: &str) -> ApiResult<NamedFile> {
    let missing_ws = || ApiError::not_found_msg("Workspace directory does not exist");
    let root = paths::from_cwd(working_dir)
        .ok()
        .and_then(|p| fs::canonicalize(p).ok())
        .ok_or_else(missing_ws)?;
    if !fs::metadata(&root).is_ok_and(|m| m.is_dir()) {
        return Err(missing_ws());
    }
    let joined = paths::join_inside(&root, rel).ok_or_else(outside)?;
    let target = match fs::canonicalize(&joined) {
        Ok(t) => t,
        Err(_) => {
            return match resolve_lenient(&joined, 0) {
                Some(end) if !paths::is_within(&root, &end) => Err(outside()),
                None => Err(outside()),
                _ => Err(ApiError::not_found_msg("File not found")),
            };
        }
    };
    if !paths::is_within(&root, &target) {
        return Err(outside());
    }
    let is_dir = fs::metadata(&target).is_ok_and(|m| m.is_dir());
    let file_path = if is_dir {
        let no_index = || ApiError::not_found_msg("No index.html in directory");
        let index = fs::canonicalize(target.join("index.html")).map_err(|_| no_index())?;
        if !paths::is_within(&root, &index) {
            return Err(outside());
        }
        if !fs::metadata(&index).is_ok_and(|m| m.is_file()) {
            return Err(no_index());
        }
        index
    } else {
        target
    };
    let not_found = || ApiError::not_found_msg("File not found");
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&file_path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => not_found(),
            _ => paths::io_failure("Failed to read file", &file_path, &e),
        })?;
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(not_found());
    }
    let named = NamedFile::from_file(file, &file_path)
        .map_err(|e| paths::io_failure("Failed to read file", &file_path, &e))?;
    // Unknown types are served as text, as the reference (Starlette) does.
    let named = if mime_guess::from_path(&file_path).first().is_none() {
        named.set_content_type(actix_web::mime::TEXT_PLAIN_UTF_8)
    } else {
        named
    };
    Ok(named.disable_content_disposition().prefer_utf8(true))
}

async fn serve(
    req: &HttpRequest,
    raw_id: &str,
    tail: &str,
    state: &web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = conversation_id(raw_id)?;
    let record = state.record(&id)?.ok_or_else(|| {
        ApiError::not_found_msg(format!("Conversation not found: {}", id.hyphenated()))
    })?;
    let working_dir = record.workspace.working_dir;
    let rel = paths::percent_decode_path(tail);
    let named = web::block(move || open_in_workspace(&working_dir, &rel))
        .await
        .map_err(|e| {
            log::error!("blocking task failed: {e}");
            ApiError::internal("a background task failed")
        })??;
    let mut resp = named.into_response(req);
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(resp)
}

/// Serve `index.html` from the conversation's workspace root.
#[utoipa::path(get, path = "/api/conversations/{conversation_id}/workspace", tag = "Workspace",
    params(("conversation_id" = String, Path, description = "Conversation id")),
    responses((status = 200, description = "The file, with a guessed content type"),
              (status = 404, description = "File or conversation not found", body = serde_json::Value),
              (status = 422, description = "Malformed id", body = serde_json::Value)))]
pub async fn serve_workspace_root(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    serve(&req, &path, "", &state).await
}

/// Serve a file (or a directory's `index.html`) from the workspace.
#[utoipa::path(get, path = "/api/conversations/{conversation_id}/workspace/{file_path}", tag = "Workspace",
    params(("conversation_id" = String, Path, description = "Conversation id"),
           ("file_path" = String, Path, description = "Path below the working directory")),
    responses((status = 200, description = "The file, with a guessed content type"),
              (status = 400, description = "Path is outside the workspace", body = serde_json::Value),
              (status = 404, description = "File or conversation not found", body = serde_json::Value),
              (status = 422, description = "Malformed id", body = serde_json::Value)))]
pub async fn serve_workspace_file(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let raw_id = req.match_info().get("conversation_id").unwrap_or("");
    let tail = req.match_info().get("file_path").unwrap_or("");
    serve(&req, raw_id, tail, &state).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_shapes() {
        assert_eq!(
            session_cookie("k1", true, 28800).unwrap(),
            "oh_workspace_session_key=k1; HttpOnly; Max-Age=28800; Path=/api/conversations; SameSite=none; Secure; Partitioned"
        );
        assert_eq!(
            session_cookie("", false, 0).unwrap(),
            "oh_workspace_session_key=\"\"; HttpOnly; Max-Age=0; Path=/api/conversations; SameSite=none"
        );
        assert!(session_cookie("a;b", true, 1).is_err());
        assert!(session_cookie("a b", true, 1).is_err());
    }
}
