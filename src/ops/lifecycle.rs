//! The process lifecycle once the server is built: waits for signals and
//! shuts down in a fixed order.
//!
//! actix's own signal handling is disabled (`HttpServer::disable_signals`),
//! because it stops the actor system on its own schedule, racing the
//! conversation actors' shutdown. Instead, on SIGTERM or SIGINT:
//!
//! 1. the listener stops accepting (graceful server stop);
//! 2. requests in flight finish, for up to `shutdown_timeout_seconds`;
//! 3. conversation actors close (runs are cancelled and left `running` in
//!    the store, so the next start marks them `error` with an explanatory
//!    event; terminals' shells are killed with their process groups; their
//!    webhook feeds send what they hold) while bash commands are terminated
//!    with their process groups and get a final output, and queued
//!    conversation webhooks are sent; all within `shutdown_timeout_seconds`;
//! 4. the database is flushed, the actor system stopped, and `main` exits 0.
//!
//! A second SIGTERM/SIGINT during this exits at once (code 1). SIGHUP
//! reloads keys and CORS origins (see [`super::reload`]).
//!
//! It must not touch conversation state itself: it only sends the
//! registries their shutdown messages.

use std::io;
use std::time::{Duration, Instant};

use actix_web::dev::Server;
use actix_web::web;
use agent_actors::bash::messages::ShutdownCommands;
use agent_actors::conversation::messages::Shutdown;
use agent_actors::metrics::Counters;
use tokio::signal::unix::{SignalKind, signal};

use super::reload::{self, Reloader};
use crate::state::AppState;

/// How long the HTTP server waits for open connections once stopped: long
/// enough to cover both shutdown phases, so that sockets still receive
/// their "going away" close frame.
pub fn server_shutdown_timeout(phase_secs: u64) -> u64 {
    phase_secs.saturating_mul(2).saturating_add(2)
}

/// Waits until no request is in flight, or `limit`; true when drained.
pub async fn drain_requests(counters: &Counters, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if Counters::get(&counters.http_in_flight) == 0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Closes every conversation actor and terminates every bash command, at
/// once, within `limit`; then flushes the store. True when everything
/// finished in time.
pub async fn stop_services(state: &AppState, limit: Duration) -> bool {
    let conversations = state.conversations.send(Shutdown);
    let bash = state.bash.registry.send(ShutdownCommands);
    // Conversation webhooks already queued (a delete's, say) get the same
    // time as the rest; the conversations' own event feeds are flushed as
    // part of closing them.
    let webhooks = state.webhooks.drain();
    let all = futures_util::future::join3(conversations, bash, webhooks);
    let in_time = match actix_web::rt::time::timeout(limit, all).await {
        Ok((c, b, ())) => {
            if let Err(e) = c {
                log::warn!("conversation registry unavailable at shutdown: {e}");
            }
            if let Err(e) = b {
                log::warn!("bash registry unavailable at shutdown: {e}");
            }
            true
        }
        Err(_) => {
            log::warn!(
                "conversations and bash commands did not all stop within {}s; continuing shutdown",
                limit.as_secs()
            );
            false
        }
    };
    if let Err(e) = state.store.flush().await {
        log::error!("final database flush failed: {e}");
    }
    in_time
}

/// Serves until SIGTERM/SIGINT, reloading on SIGHUP, then shuts down in
/// the order of the module docs.
pub async fn serve(
    server: Server,
    state: web::Data<AppState>,
    reloader: Reloader,
) -> io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let handle = server.handle();
    let mut server_task = actix_web::rt::spawn(server);
    let mut current = (*state.settings).clone();
    let cause = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = hup.recv() => {
                log::info!("SIGHUP received: reloading the settings");
                if reloader.keys_from_env() {
                    log::warn!(
                        "session keys are set in the environment (OH_SESSION_API_KEYS*/SESSION_API_KEY), which overrides the config file and cannot change while the server runs; keep them in the config file to rotate them with SIGHUP"
                    );
                }
                let r = reloader.clone();
                let loaded = web::block(move || r.load())
                    .await
                    .unwrap_or_else(|e| Err(crate::settings::SettingsError(e.to_string())));
                reload::apply(&state, &mut current, loaded);
            }
            res = &mut server_task => {
                log::warn!("the HTTP server stopped on its own; shutting down");
                let limit = Duration::from_secs(state.settings.shutdown_timeout_seconds);
                stop_services(&state, limit).await;
                return res.unwrap_or_else(|e| Err(io::Error::other(e.to_string())));
            }
        }
    };
    let secs = state.settings.shutdown_timeout_seconds;
    let limit = Duration::from_secs(secs);
    log::info!(
        "{cause} received: shutting down (no new connections; up to {secs}s for requests in flight, then up to {secs}s to close conversations and bash commands)"
    );
    let started = Instant::now();
    let orderly = async {
        let stopped = handle.stop(true);
        if !drain_requests(&state.counters, limit).await {
            log::warn!(
                "{} request(s) still in flight after {secs}s; continuing shutdown",
                Counters::get(&state.counters.http_in_flight)
            );
        }
        let in_time = stop_services(&state, limit).await;
        stopped.await;
        let _ = (&mut server_task).await;
        in_time
    };
    let second = async {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    tokio::select! {
        in_time = orderly => {
            log::info!(
                "shutdown complete in {} ms{}; exiting",
                started.elapsed().as_millis(),
                if in_time { "" } else { " (some work was cut short)" }
            );
        }
        _ = second => {
            log::warn!("second signal received during shutdown: exiting at once");
            std::process::exit(1);
        }
    }
    actix_web::rt::System::current().stop();
    Ok(())
}
