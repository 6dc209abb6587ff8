//! Path rules shared by the file, git and workspace routes: which inputs are
//! accepted as absolute paths, how relative inputs resolve against the
//! server's working directory, how a URL tail is kept inside a workspace
//! root, and how I/O failures become API errors.
//!
//! Everything here is lexical (no disk access) except where a function says
//! otherwise; symlinks are checked by the callers after canonicalizing.

use std::io;
use std::path::{Component, Path, PathBuf};

use actix_web::http::StatusCode;

use crate::error::ApiError;

/// An absolute path taken from a query parameter, with `.` components and
/// repeated separators dropped (as Python's `pathlib` prints it). A relative
/// path is 400 `Path must be absolute`, the reference's answer.
pub fn absolute(raw: &str) -> Result<PathBuf, ApiError> {
    if raw.contains('\0') {
        return Err(ApiError::bad_request_msg("Path must not contain NUL bytes"));
    }
    let p = Path::new(raw);
    if !p.is_absolute() {
        return Err(ApiError::bad_request_msg("Path must be absolute"));
    }
    Ok(p.components().collect())
}

/// Removes `.` and folds `..` without touching the disk (`/..` is `/`).
/// Meant for absolute paths; a relative path keeps no leading `..`.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// A path given by a client, resolved against the server's current
/// directory when relative (the Python client sends `workspace/project/.`),
/// then normalized lexically.
pub fn from_cwd(raw: &str) -> io::Result<PathBuf> {
    if raw.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path contains a NUL byte",
        ));
    }
    let p = Path::new(raw);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    };
    Ok(normalize(&joined))
}

/// Joins a `/`-separated relative path (already percent-decoded) below
/// `root`. `None` when the path is absolute, contains a NUL byte, or climbs
/// above `root` with `..`; `..` that stays inside is folded.
pub fn join_inside(root: &Path, rel: &str) -> Option<PathBuf> {
    if rel.starts_with('/') || rel.contains('\0') {
        return None;
    }
    let mut parts: Vec<&str> = vec![];
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(parts);
    Some(out)
}

/// Whether `path` is `root` or below it (both already canonical).
pub fn is_within(root: &Path, path: &Path) -> bool {
    path.starts_with(root)
}

/// Percent-decodes a URL path segment completely (`%2F` included), keeping
/// invalid escapes as they are. Bytes that are not UTF-8 are replaced.
pub fn percent_decode_path(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Maps an I/O failure of `action` (e.g. `Failed to upload file`) to the
/// API error a client should see: its own mistakes (a parent that is a
/// file, a directory where a file is expected, a name the file system
/// refuses) are 4xx, a full disk is 507, anything else the sanitized 500.
pub fn io_failure(action: &str, path: &Path, e: &io::Error) -> ApiError {
    use io::ErrorKind as K;
    let shown = path.display();
    match e.kind() {
        K::PermissionDenied | K::ReadOnlyFilesystem => {
            ApiError::Http(StatusCode::FORBIDDEN, format!("Permission denied: {shown}"))
        }
        K::NotADirectory | K::AlreadyExists => {
            ApiError::bad_request_msg(format!("{action}: a parent of {shown} is not a directory"))
        }
        K::IsADirectory => ApiError::bad_request_msg(format!("{action}: {shown} is a directory")),
        K::InvalidInput | K::InvalidFilename => {
            ApiError::bad_request_msg(format!("{action}: invalid path {shown}"))
        }
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge => {
            ApiError::Server(StatusCode::INSUFFICIENT_STORAGE, format!("{action}: {e}"))
        }
        _ => ApiError::internal(format!("{action}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths() {
        assert_eq!(absolute("/a//b/./c/").unwrap(), PathBuf::from("/a/b/c"));
        assert!(absolute("a/b").is_err());
        assert!(absolute("").is_err());
        assert!(absolute("/a\0b").is_err());
        // `..` is kept: the reference does not resolve upload/download paths.
        assert_eq!(absolute("/a/../b").unwrap(), PathBuf::from("/a/../b"));
    }

    #[test]
    fn normalizing() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/../..")), PathBuf::from("/"));
    }

    #[test]
    fn joining_inside() {
        let root = Path::new("/ws");
        assert_eq!(join_inside(root, ""), Some(PathBuf::from("/ws")));
        assert_eq!(
            join_inside(root, "a/./b//c.html"),
            Some(PathBuf::from("/ws/a/b/c.html"))
        );
        assert_eq!(join_inside(root, "a/../b"), Some(PathBuf::from("/ws/b")));
        assert_eq!(join_inside(root, ".."), None);
        assert_eq!(join_inside(root, "a/../../etc/passwd"), None);
        assert_eq!(join_inside(root, "/etc/passwd"), None);
        assert_eq!(join_inside(root, "a\0b"), None);
        assert!(is_within(root, Path::new("/ws/a")));
        assert!(is_within(root, root));
        assert!(!is_within(root, Path::new("/wsx/a")));
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode_path("%2e%2E%2Fx"), "../x");
        assert_eq!(percent_decode_path("a%20b"), "a b");
        assert_eq!(percent_decode_path("100%"), "100%");
        assert_eq!(percent_decode_path("%zz%4"), "%zz%4");
        assert_eq!(percent_decode_path("%25"), "%");
    }
}
