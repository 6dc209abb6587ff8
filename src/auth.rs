//! Session-key authentication: who may call `/api/*` and open sockets.
//!
//! Keys are compared as SHA-256 digests in constant time, against every
//! configured key (several at once allow rotation). The key set can be
//! swapped at run time (SIGHUP) without a restart. Nothing here logs a key.

use std::sync::{Arc, RwLock};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, ResponseError, web};
use ring::digest::{SHA256, digest};

use crate::error::ApiError;
use crate::state::AppState;

/// Cookie carrying the key for workspace file routes.
pub const WORKSPACE_COOKIE: &str = "oh_workspace_session_key";

/// The accepted keys (as digests) and allowed CORS origins.
#[derive(Debug, Default, Clone)]
pub struct Access {
    key_digests: Vec<[u8; 32]>,
    first_key: Option<String>,
    /// Allowed CORS origins.
    pub cors_origins: Vec<String>,
}

fn sha256(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, s.as_bytes()).as_ref());
    out
}

impl Access {
    /// Builds the access rules from configured keys and origins.
    pub fn new(keys: &[String], cors_origins: &[String]) -> Access {
        Access {
            key_digests: keys.iter().map(|k| sha256(k)).collect(),
            first_key: keys.first().cloned(),
            cors_origins: cors_origins.to_vec(),
        }
    }

    /// Whether authentication is required at all.
    pub fn enabled(&self) -> bool {
        !self.key_digests.is_empty()
    }

    /// Whether a presented key is one of the configured keys. Every key is
    /// compared, in constant time, so timing reveals neither which key nor
    /// how much of it matched.
    pub fn accepts(&self, presented: &str) -> bool {
        let d = sha256(presented);
        let mut ok = 0u8;
        for k in &self.key_digests {
            let mut diff = 0u8;
            for (a, b) in k.iter().zip(d.iter()) {
                diff |= a ^ b;
            }
            ok |= u8::from(diff == 0);
        }
        ok == 1
    }

    /// The first configured key (used where the reference passes it on).
    pub fn first_key(&self) -> Option<&str> {
        self.first_key.as_deref()
    }
}

/// Swappable access rules shared by all workers.
#[derive(Debug, Default)]
pub struct AccessCell(RwLock<Arc<Access>>);

impl AccessCell {
    /// A cell holding `access`.
    pub fn new(access: Access) -> AccessCell {
        AccessCell(RwLock::new(Arc::new(access)))
    }

    /// The current rules.
    pub fn get(&self) -> Arc<Access> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the rules (SIGHUP reload).
    pub fn set(&self, access: Access) {
        match self.0.write() {
            Ok(mut g) => *g = Arc::new(access),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(access),
        }
    }
}

/// Whether a path is one of the workspace static-file routes, which also
/// accept the key from a cookie.
pub fn is_workspace_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/api/conversations/") else {
        return false;
    };
    let mut parts = rest.splitn(2, '/');
    let id = parts.next().unwrap_or("");
    let tail = parts.next().unwrap_or("");
    !id.is_empty() && (tail == "workspace" || tail.starts_with("workspace/"))
}

/// Whether a request carries a valid key: in its header, or — for the
/// workspace file routes — in the workspace cookie (tried too when the
/// header is absent or wrong, as the reference does).
fn request_authorized(req: &HttpRequest, access: &Access, allow_cookie: bool) -> bool {
    let header_ok = req
        .headers()
        .get("x-session-api-key")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|k| access.accepts(k));
    header_ok
        || (allow_cookie
            && req
                .cookie_value(WORKSPACE_COOKIE)
                .is_some_and(|k| access.accepts(&k)))
}

trait CookieValue {
    fn cookie_value(&self, name: &str) -> Option<String>;
}

impl CookieValue for HttpRequest {
    fn cookie_value(&self, name: &str) -> Option<String> {
        for header in self.headers().get_all("cookie") {
            let Ok(text) = header.to_str() else { continue };
            for part in text.split(';') {
                if let Some((k, v)) = part.trim().split_once('=')
                    && k == name
                {
                    return Some(v.to_string());
                }
            }
        }
        None
    }
}

/// Middleware: `/api/*` needs a valid key when keys are configured.
pub async fn require_key(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // The path the router matches: percent-decoded (except `%2F`, `%25`,
    // `%2B`). The raw `req.path()` would let `/%61pi/settings` reach
    // `/api/settings` without a key.
    let path = req.match_info().as_str();
    // `/api/tools` is only a redirect to `/api/tools/`, issued before auth
    // as the reference's framework does.
    let guarded = (path == "/api" || path.starts_with("/api/")) && path != "/api/tools";
    if guarded
        && req.method() != actix_web::http::Method::OPTIONS
        && let Some(state) = req.app_data::<web::Data<AppState>>()
    {
        let access = state.access.get();
        if access.enabled() && !request_authorized(req.request(), &access, is_workspace_path(path))
        {
            let resp = ApiError::unauthorized().error_response();
            return Ok(req.into_response(resp).map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let a = Access::new(&["k1".into(), "k2".into()], &[]);
        assert!(a.enabled());
        assert!(a.accepts("k1") && a.accepts("k2"));
        assert!(!a.accepts("k3") && !a.accepts("") && !a.accepts("k1 "));
        assert!(!Access::new(&[], &[]).enabled());
    }

    #[test]
    fn workspace_paths() {
        assert!(is_workspace_path("/api/conversations/abc/workspace"));
        assert!(is_workspace_path(
            "/api/conversations/abc/workspace/a/b.html"
        ));
        assert!(!is_workspace_path("/api/conversations/abc/workspaces"));
        assert!(!is_workspace_path("/api/conversations/abc/events"));
    }
}
