//! `/api/file`: upload and download by absolute path, the home directory and
//! subdirectory listing used by the GUI's workspace picker, and the
//! trajectory archive of a conversation.
//!
//! Uploads stream to disk through [`crate::files::atomic`] (memory stays
//! flat, the target only changes on success); downloads stream from disk in
//! 1 MiB chunks read on the blocking pool ([`crate::files::stream`]), with
//! actix-files' ranges and validators. No file is read whole into memory and no disk I/O runs on
//! the async threads. Upload and download accept any absolute path by
//! design (the reference's contract); they are guarded by the session key.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use actix_files::NamedFile;
use actix_multipart::{Multipart, MultipartError};
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::method_not_allowed;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Query, conversation_id};
use crate::files::atomic::AtomicFile;
use crate::files::{paths, stream, trajectory};
use crate::state::AppState;

/// OpenAPI description of this module.
#[derive(OpenApi)]
#[openapi(paths(
    upload_file,
    download_file,
    home_directory,
    search_subdirs,
    download_trajectory
))]
pub struct FilesApi;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let r =
        |path: &str| web::resource(path.to_string()).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/file/upload").route(web::post().to(upload_file)))
        .service(r("/api/file/download").route(web::get().to(download_file)))
        .service(r("/api/file/home").route(web::get().to(home_directory)))
        .service(r("/api/file/search_subdirs").route(web::get().to(search_subdirs)))
        .service(
            r("/api/file/download-trajectory/{conversation_id}")
                .route(web::get().to(download_trajectory)),
        );
}

/// Room for multipart framing (boundaries, part headers) on top of the
/// file itself when judging a request's declared length.
const MULTIPART_ALLOWANCE: u64 = 1 << 20;
/// Most bytes read and dropped after refusing an upload, so that a client
/// still sending gets the answer rather than a reset connection.
const DRAIN_LIMIT: u64 = 1 << 20;
/// Most favourites listed for the home directory.
const MAX_FAVORITES: usize = 50;

fn required_query<'a>(q: &'a Query, name: &str) -> ApiResult<&'a str> {
    q.get(name).ok_or_else(|| {
        ApiError::invalid("missing", &["query", name], "Field required", Value::Null)
    })
}

fn blocking_failed(e: impl std::fmt::Display) -> ApiError {
    log::error!("blocking task failed: {e}");
    ApiError::internal("a background task failed")
}

fn too_large(limit: u64) -> ApiError {
    ApiError::Http(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("File is too large: the upload limit is {limit} bytes"),
    )
}

fn missing_file_field() -> ApiError {
    ApiError::invalid("missing", &["body", "file"], "Field required", Value::Null)
}

/// A multipart problem: no form at all reads as the missing `file` field
/// (FastAPI's answer); a broken form or connection is a 400.
fn multipart_error(e: MultipartError) -> ApiError {
    match e {
        MultipartError::ContentTypeMissing
        | MultipartError::ContentTypeParse
        | MultipartError::ContentTypeIncompatible
        | MultipartError::BoundaryMissing => missing_file_field(),
        MultipartError::Payload(p) => ApiError::bad_request_msg(format!("Upload interrupted: {p}")),
        other => ApiError::bad_request_msg(format!("Invalid multipart body: {other}")),
    }
}

/// Reads and drops what is left of a refused form, up to [`DRAIN_LIMIT`].
async fn drain(form: &mut Multipart) {
    let mut dropped = 0u64;
    while let Some(Ok(mut field)) = form.next().await {
        while let Some(Ok(chunk)) = field.next().await {
            dropped += chunk.len() as u64;
            if dropped > DRAIN_LIMIT {
                return;
            }
        }
    }
}

/// Reads and drops a request body, up to [`DRAIN_LIMIT`].
async fn drain_payload(mut payload: web::Payload) {
    let mut dropped = 0u64;
    while let Some(Ok(chunk)) = payload.next().await {
        dropped += chunk.len() as u64;
        if dropped > DRAIN_LIMIT {
            return;
        }
    }
}

/// Upload a file (multipart field `file`) to an absolute path.
///
/// Parent directories are created and an existing file is replaced
/// atomically. The body streams to disk; uploads larger than
/// `http.max_upload_bytes` are refused with 413 and leave nothing behind.
#[utoipa::path(post, path = "/api/file/upload", tag = "Files",
    params(("path" = String, Query, description = "Absolute file path")),
    request_body(content = String, content_type = "multipart/form-data", description = "A form with one file field named `file`"),
    responses((status = 200, description = "{\"success\": true, \"file_size\": <bytes>}", body = serde_json::Value),
              (status = 400, description = "Relative path, a directory as target, or a broken form", body = serde_json::Value),
              (status = 413, description = "Larger than the upload limit", body = serde_json::Value),
              (status = 422, description = "Missing `path` or `file`", body = serde_json::Value)))]
pub async fn upload_file(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    state.touch();
    let q = Query::from_request(&req);
    let limit = state.settings.http.max_upload_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.saturating_add(MULTIPART_ALLOWANCE)) {
        return Err(too_large(limit));
    }
    let target = match required_query(&q, "path").and_then(paths::absolute) {
        Ok(t) => t,
        Err(e) => {
            drain_payload(payload).await;
            return Err(e);
        }
    };

    let mut form = Multipart::new(req.headers(), payload);
    let mut other_bytes = 0u64;
    let mut field = loop {
        match form.next().await {
            None => return Err(missing_file_field()),
            Some(Err(e)) => return Err(multipart_error(e)),
            Some(Ok(f)) if f.name() == Some("file") => break f,
            Some(Ok(mut other)) => {
                // Other fields are ignored, but count towards the limit.
                while let Some(chunk) = other.next().await {
                    other_bytes += chunk.map_err(multipart_error)?.len() as u64;
                    if other_bytes > limit {
                        drain(&mut form).await;
                        return Err(too_large(limit));
                    }
                }
            }
        }
    };

    let mut writer = AtomicFile::create(target.clone(), state.settings.http.sync_uploads)
        .await
        .map_err(|e| paths::io_failure("Failed to upload file", &target, &e))?;
    let mut received = 0u64;
    while let Some(chunk) = field.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                writer.abort().await;
                return Err(multipart_error(e));
            }
        };
        received += chunk.len() as u64;
        if received.saturating_add(other_bytes) > limit {
            writer.abort().await;
            drop(field);
            drain(&mut form).await;
            return Err(too_large(limit));
        }
        if let Err(e) = writer.write(chunk).await {
            drop(field);
            drain(&mut form).await;
            return Err(paths::io_failure("Failed to upload file", &target, &e));
        }
    }
    drop(field);
    // Fields after `file` are read (and dropped) so the request ends cleanly.
    drain(&mut form).await;
    let written = writer
        .commit()
        .await
        .map_err(|e| paths::io_failure("Failed to upload file", &target, &e))?;
    log::info!("uploaded {} ({written} bytes)", target.display());
    Ok(HttpResponse::Ok().json(json!({"success": true, "file_size": written})))
}

/// Opens a regular file for streaming; never blocks on FIFOs or devices.
fn open_regular(path: &Path) -> Result<File, ApiError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
                ApiError::not_found_msg("File not found")
            }
            _ => paths::io_failure("Failed to download file", path, &e),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| paths::io_failure("Failed to download file", path, &e))?;
    if !meta.is_file() {
        return Err(ApiError::bad_request_msg("Path is not a file"));
    }
    Ok(file)
}

/// Percent-encodes every byte but ASCII letters, digits and `_.-~/` (the
/// RFC 3986 unreserved set plus the path separator), as query values and
/// RFC 5987 file names need.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `Content-Disposition` for a download, as Starlette writes it: a quoted
/// ASCII name, or the RFC 5987 form when the name needs escaping.
pub fn attachment(filename: &str) -> String {
    let encoded = percent_encode(filename);
    if encoded == filename {
        format!("attachment; filename=\"{filename}\"")
    } else {
        format!("attachment; filename*=utf-8''{encoded}")
    }
}

fn download_response(
    req: &HttpRequest,
    file: NamedFile,
    filename: &str,
) -> ApiResult<HttpResponse> {
    // A second descriptor for our own reader; without one the body stays
    // actix-files' own.
    let body_file = file.file().try_clone().ok();
    let mut resp = file
        .set_content_type(actix_web::mime::APPLICATION_OCTET_STREAM)
        .disable_content_disposition()
        .use_etag(true)
        .use_last_modified(true)
        .into_response(req);
    let cd = HeaderValue::from_str(&attachment(filename))
        .map_err(|_| ApiError::internal("file name cannot be sent in a header"))?;
    resp.headers_mut().insert(header::CONTENT_DISPOSITION, cd);
    Ok(match (body_file, body_span(req, &resp)) {
        (Some(f), Some((offset, len))) => {
            resp.map_body(|_, _| BoxBody::new(stream::sized_body(f, offset, len)))
        }
        _ => resp,
    })
}

/// Where the bytes of a full (200) or ranged (206) file response start, and
/// how many there are; `None` for a response without file bytes (304, 412,
/// 416, HEAD).
fn body_span(req: &HttpRequest, resp: &HttpResponse) -> Option<(u64, u64)> {
    if req.method() == actix_web::http::Method::HEAD {
        return None;
    }
    let BodySize::Sized(len) = resp.body().size() else {
        return None;
    };
    match resp.status() {
        StatusCode::OK => Some((0, len)),
        StatusCode::PARTIAL_CONTENT => {
            // "bytes start-end/total", as actix-files writes it.
            let range = resp.headers().get(header::CONTENT_RANGE)?.to_str().ok()?;
            let start = range.strip_prefix("bytes ")?.split('-').next()?;
            Some((start.parse().ok()?, len))
        }
        _ => None,
    }
}

/// Download a file by absolute path (streamed; `Range` supported).
#[utoipa::path(get, path = "/api/file/download", tag = "Files",
    params(("path" = String, Query, description = "Absolute file path")),
    responses((status = 200, description = "The file's bytes (application/octet-stream)"),
              (status = 206, description = "The requested range"),
              (status = 400, description = "Relative path, or not a regular file", body = serde_json::Value),
              (status = 404, description = "File not found", body = serde_json::Value)))]
pub async fn download_file(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    state.touch();
    let q = Query::from_request(&req);
    let path = paths::absolute(required_query(&q, "path")?)?;
    let opened = path.clone();
    let named = web::block(move || -> ApiResult<NamedFile> {
        let file = open_regular(&opened)?;
        NamedFile::from_file(file, &opened)
            .map_err(|e| paths::io_failure("Failed to download file", &opened, &e))
    })
    .await
    .map_err(blocking_failed)??;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    download_response(&req, named, &name)
}

/// Visible, non-symlink subdirectories of `dir`, sorted case-insensitively.
fn subdirectories(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let mut found = vec![];
    for entry in fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.push((name, dir.join(entry.file_name())));
        }
    }
    found.sort_by(|a, b| {
        a.0.to_lowercase()
            .cmp(&b.0.to_lowercase())
            .then_with(|| a.0.cmp(&b.0))
    });
    Ok(found)
}

fn home_dir() -> PathBuf {
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h),
        None => PathBuf::from("/"),
    }
}

/// The server user's home directory, its visible top-level directories
/// (favorites) and the file-system roots.
#[utoipa::path(get, path = "/api/file/home", tag = "Files",
    responses((status = 200, description = "{home, favorites: [{label, path}], locations: [{label, path}]}", body = serde_json::Value)))]
pub async fn home_directory() -> ApiResult<HttpResponse> {
    let body = web::block(|| {
        let home = home_dir();
        let favorites: Vec<Value> = subdirectories(&home)
            .unwrap_or_default()
            .into_iter()
            .take(MAX_FAVORITES)
            .map(|(name, path)| json!({"label": name, "path": path.to_string_lossy()}))
            .collect();
        json!({
            "home": home.to_string_lossy(),
            "favorites": favorites,
            "locations": [{"label": "/", "path": "/"}],
        })
    })
    .await
    .map_err(blocking_failed)?;
    Ok(HttpResponse::Ok().json(body))
}

/// List the immediate subdirectories of an absolute path, a page at a time.
///
/// Hidden entries, files and symlinks are skipped; `page_id` is the
/// lowercase name of the first entry of the page (the previous page's
/// `next_page_id`).
#[utoipa::path(get, path = "/api/file/search_subdirs", tag = "Files",
    params(("path" = String, Query, description = "Absolute directory path"),
           ("page_id" = Option<String>, Query, description = "next_page_id of the previous page"),
           ("limit" = Option<i64>, Query, description = "Page size, 1..=100 (default 100)", minimum = 1, maximum = 100)),
    responses((status = 200, description = "{items: [{name, path}], next_page_id}", body = serde_json::Value),
              (status = 400, description = "Relative path or not a directory", body = serde_json::Value),
              (status = 403, description = "Permission denied", body = serde_json::Value),
              (status = 404, description = "Directory not found", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = serde_json::Value)))]
pub async fn search_subdirs(req: HttpRequest) -> ApiResult<HttpResponse> {
    let q = Query::from_request(&req);
    let raw = required_query(&q, "path")?;
    let limit = q.limit()?;
    let page_id = q.opt_str("page_id").filter(|p| !p.is_empty());
    let dir = paths::absolute(raw)?;
    let body = web::block(move || -> ApiResult<Value> {
        let meta = fs::metadata(&dir).map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => ApiError::Http(
                StatusCode::FORBIDDEN,
                format!("Permission denied: {}", dir.display()),
            ),
            _ => ApiError::not_found_msg("Directory not found"),
        })?;
        if !meta.is_dir() {
            return Err(ApiError::bad_request_msg("Path is not a directory"));
        }
        let entries = subdirectories(&dir).map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => ApiError::Http(
                StatusCode::FORBIDDEN,
                format!("Permission denied: {}", dir.display()),
            ),
            _ => paths::io_failure("Failed to list directory", &dir, &e),
        })?;
        let start = page_id
            .as_deref()
            .and_then(|p| entries.iter().position(|(n, _)| n.to_lowercase() == p))
            .unwrap_or(0);
        let items: Vec<Value> = entries
            .iter()
            .skip(start)
            .take(limit)
            .map(|(name, path)| json!({"name": name, "path": path.to_string_lossy()}))
            .collect();
        let next = entries.get(start + limit).map(|(n, _)| n.to_lowercase());
        Ok(json!({"items": items, "next_page_id": next}))
    })
    .await
    .map_err(blocking_failed)??;
    Ok(HttpResponse::Ok().json(body))
}

/// Download a conversation's trajectory as a zip archive.
///
/// The archive holds `<hex>/meta.json` (the conversation info),
/// `<hex>/base_state.json` and one `<hex>/events/event-NNNNN-<id>.json` per
/// event, with every secret redacted. It is built on disk, streamed, and
/// its temporary file is already gone from the directory while it streams.
#[utoipa::path(get, path = "/api/file/download-trajectory/{conversation_id}", tag = "Files",
    params(("conversation_id" = String, Path, description = "Conversation id")),
    responses((status = 200, description = "application/octet-stream zip named <hex>.zip"),
              (status = 404, description = "Conversation not found", body = serde_json::Value),
              (status = 422, description = "Malformed id", body = serde_json::Value)))]
pub async fn download_trajectory(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let id = conversation_id(&path)?;
    state.touch();
    let st = state.clone();
    let named = web::block(move || -> ApiResult<Option<NamedFile>> {
        let scratch = PathBuf::from(&st.settings.conversations_path);
        let built =
            trajectory::build(&st.store, st.cipher.as_deref(), id, &scratch).map_err(|e| {
                log::error!("trajectory of {}: {e}", id.simple());
                ApiError::internal("Failed to build the trajectory archive")
            })?;
        match built {
            None => Ok(None),
            Some(file) => NamedFile::from_file(file, format!("{}.zip", id.simple()))
                .map(Some)
                .map_err(|e| {
                    log::error!("trajectory of {}: {e}", id.simple());
                    ApiError::internal("Failed to build the trajectory archive")
                }),
        }
    })
    .await
    .map_err(blocking_failed)??
    .ok_or_else(|| ApiError::not_found_msg("Conversation not found"))?;
    download_response(&req, named, &format!("{}.zip", id.simple()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_disposition_like_starlette() {
        assert_eq!(attachment("up.txt"), "attachment; filename=\"up.txt\"");
        assert_eq!(
            attachment("a b\"c.txt"),
            "attachment; filename*=utf-8''a%20b%22c.txt"
        );
        assert_eq!(
            attachment("\u{e9}.bin"),
            "attachment; filename*=utf-8''%C3%A9.bin"
        );
    }
}
