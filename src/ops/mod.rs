//! Operations: what an operator of a long-running server touches besides the
//! API. `GET /metrics` ([`metrics`]), the process lifecycle — signals,
//! ordered graceful shutdown ([`lifecycle`]) — and live reload of session
//! keys and CORS origins on SIGHUP ([`reload`]), and the return of freed
//! heap memory to the system ([`memory`]), and the log format ([`logs`]).
//! Plus the middleware that counts requests, which the shutdown uses to know
//! when requests in flight are done.
//!
//! Nothing here serves the reference's API or holds conversation state.

pub mod lifecycle;
pub mod logs;
pub mod memory;
pub mod metrics;
pub mod reload;

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use agent_actors::metrics::Counters;

use crate::state::AppState;

/// Registers the operations routes (`/metrics`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    metrics::configure(cfg);
}

/// Decrements the in-flight gauge however the request ends (including a
/// client that disconnects and drops the handler's future).
struct InFlight(Arc<Counters>);

impl Drop for InFlight {
    fn drop(&mut self) {
        Counters::sub(&self.0.http_in_flight, 1);
    }
}

/// Middleware: counts requests and keeps the in-flight gauge. A WebSocket
/// counts only until its handshake is answered.
pub async fn track_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let guard = req.app_data::<web::Data<AppState>>().map(|s| {
        let counters = s.counters.clone();
        Counters::add(&counters.http_requests, 1);
        Counters::add(&counters.http_in_flight, 1);
        InFlight(counters)
    });
    let res = next.call(req).await;
    drop(guard);
    res
}
