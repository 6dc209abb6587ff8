//! WebSocket endpoints. Each socket is an actix-web-actors session actor
//! (actix-web-actors is used here and nowhere else), authenticated by query
//! key, header or first-frame message with the reference's close codes.

pub mod bash;
pub mod events;
pub mod protocol;

use actix_web::web;

/// Close code: authentication failed.
pub const CLOSE_AUTH_FAILED: u16 = 4001;
/// Close code: conversation not found (or deleted).
pub const CLOSE_NOT_FOUND: u16 = 4004;
/// Close code: the subscriber fell too far behind; resume with `after_seq`.
pub const CLOSE_TOO_SLOW: u16 = 4008;
/// Close code: too many subscribers (try again later).
pub const CLOSE_TRY_AGAIN: u16 = 1013;

/// Registers the socket routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/sockets/events/{conversation_id}").route(web::get().to(events::connect)),
    )
    .service(web::resource("/sockets/bash-events").route(web::get().to(bash::connect)));
}

/// How a socket presents its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// No keys configured: open.
    Open,
    /// A valid key came with the handshake.
    Valid,
    /// An invalid key came with the handshake: reject before upgrading.
    Invalid,
    /// No key yet: wait for a first-frame auth message.
    FirstFrame,
}

/// Checks the handshake's key: query `session_api_key` first (even when
/// empty), then the `X-Session-API-Key` header.
pub fn presented_key(
    req: &actix_web::HttpRequest,
    query: &crate::extract::Query,
    state: &crate::state::AppState,
) -> Presented {
    let access = state.access.get();
    if !access.enabled() {
        return Presented::Open;
    }
    let key = query
        .get("session_api_key")
        .map(str::to_string)
        .or_else(|| {
            req.headers()
                .get("x-session-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
    match key {
        Some(k) if access.accepts(&k) => Presented::Valid,
        Some(_) => Presented::Invalid,
        None => Presented::FirstFrame,
    }
}

/// A future that is pending exactly once. A session replaying stored
/// events yields with it between chunks, so that what it queued is written
/// to the socket before it reads the next chunk: a slow client holds back
/// the replay instead of making it buffer.
#[derive(Debug, Default)]
pub struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            std::task::Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
}
