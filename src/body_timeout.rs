//! Request bodies that stall: a client that sends its headers and then no
//! body data for `http.body_idle_timeout_seconds` gets 408 and its
//! connection back, instead of holding a request (and, for an upload, a
//! half-written temporary file) open forever. actix-web's own
//! `client_request_timeout` covers the request head only.
//!
//! WebSocket upgrades are left alone: their "body" is the socket, which
//! has its own heartbeat. This module only wraps the payload stream; it
//! reads nothing itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use actix_web::{HttpResponse, rt::time::Sleep};
use futures_util::Stream;

use crate::state::AppState;

/// The payload with an idle deadline between chunks.
struct IdleLimited {
    inner: Payload,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
    /// The handler has started reading (the wait is counted from then).
    reading: bool,
    fired: Arc<AtomicBool>,
}

impl Stream for IdleLimited {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.fired.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        if !self.reading {
            self.reading = true;
            let deadline = actix_web::rt::time::Instant::now() + self.idle;
            self.sleep.as_mut().reset(deadline);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(item) => {
                let deadline = actix_web::rt::time::Instant::now() + self.idle;
                self.sleep.as_mut().reset(deadline);
                Poll::Ready(item)
            }
            Poll::Pending => match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.fired.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "request body stalled",
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

fn is_upgrade(req: &ServiceRequest) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// Middleware: bounds the wait for each chunk of a request body.
pub async fn body_timeout(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let seconds = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.settings.http.body_idle_timeout_seconds)
        .unwrap_or(0);
    if seconds == 0 || is_upgrade(&req) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let idle = Duration::from_secs(seconds);
    let fired = Arc::new(AtomicBool::new(false));
    let limited = IdleLimited {
        inner: req.take_payload(),
        idle,
        sleep: Box::pin(actix_web::rt::time::sleep(idle)),
        reading: false,
        fired: fired.clone(),
    };
    req.set_payload(Payload::from(
        Box::pin(limited) as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>
    ));
    let res = next.call(req).await?;
    if !fired.load(Ordering::Relaxed) {
        return Ok(res.map_into_boxed_body());
    }
    // Whatever the handler made of the broken body, the cause is the stall.
    let (req, _) = res.into_parts();
    let body = serde_json::json!({
        "detail": format!("Request body timed out: no data for {seconds} s (http.body_idle_timeout_seconds)")
    });
    let mut answer = HttpResponse::build(StatusCode::REQUEST_TIMEOUT);
    answer.insert_header((header::CONNECTION, "close"));
    Ok(ServiceResponse::new(req, answer.json(body)))
}
