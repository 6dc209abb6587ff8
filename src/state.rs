//! The application state every handler receives: handles to the actors and
//! the store, the settings, and process-wide facts. It holds no conversation
//! state and no lock shared with the actors.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Instant;

use actix::prelude::*;
use agent_actors::conversation::messages::Lookup;
use agent_actors::conversation::{ActorError, ConversationActor, ConversationRegistry};
use agent_actors::crypto::Cipher;
use agent_actors::ids::Uuid;
use agent_actors::metrics::Counters;
use agent_actors::model::conversation::ConversationRecord;
use agent_actors::store::Store;

use crate::auth::AccessCell;
use crate::error::{ApiError, ApiResult};
use crate::settings::Settings;

/// Shared, read-mostly application state.
pub struct AppState {
    /// Settings as loaded at start-up.
    pub settings: Arc<Settings>,
    /// The database.
    pub store: Store,
    /// Secret sealing key, when configured.
    pub cipher: Option<Arc<Cipher>>,
    /// The conversation registry.
    pub conversations: Addr<ConversationRegistry>,
    /// The bash command registry and event log.
    pub bash: agent_actors::bash::BashService,
    /// Counters for /metrics.
    pub counters: Arc<Counters>,
    /// Process start.
    pub started: Instant,
    /// Start-up finished (`/ready`).
    pub ready: Arc<AtomicBool>,
    /// Unix microseconds of the last activity (`idle_time`).
    pub last_activity: Arc<AtomicI64>,
    /// Session keys and CORS origins (reloadable).
    pub access: Arc<AccessCell>,
    /// Outgoing HTTP client.
    pub http: reqwest::Client,
    /// Configured webhooks (drained at shutdown).
    pub webhooks: agent_actors::webhook::Webhooks,
}

impl AppState {
    /// Records activity (resets `idle_time`).
    pub fn touch(&self) {
        self.last_activity
            .store(agent_actors::time::now_micros(), Ordering::Relaxed);
    }

    /// Seconds since the last activity.
    pub fn idle_seconds(&self) -> f64 {
        let last = self.last_activity.load(Ordering::Relaxed);
        ((agent_actors::time::now_micros() - last).max(0) / 1_000_000) as f64
    }

    /// The actor of a conversation; 404 when it does not exist.
    pub async fn actor(&self, id: Uuid) -> ApiResult<Addr<ConversationActor>> {
        self.conversations
            .send(Lookup { id, dead: false })
            .await??
            .ok_or_else(ApiError::not_found)
    }

    /// Sends a message to a conversation's actor. A dead mailbox (the actor
    /// crashed) makes the registry respawn it from the store, and an actor
    /// evicted for idleness just before the message arrived is revived; the
    /// message is then sent once more.
    pub async fn call<M, T>(&self, id: Uuid, msg: M) -> Result<Result<T, ActorError>, ApiError>
    where
        M: Message<Result = Result<T, ActorError>> + Send + Clone + 'static,
        T: Send + 'static,
        ConversationActor: Handler<M>,
    {
        let mut addr = self.actor(id).await?;
        let mut attempt = 0u64;
        loop {
            let dead = match addr.send(msg.clone()).await {
                Err(MailboxError::Closed) => true,
                Ok(Err(ActorError::Evicted)) => false,
                Ok(r) => return Ok(r),
                Err(e) => return Err(e.into()),
            };
            if attempt >= 5 {
                return Err(if dead {
                    MailboxError::Closed.into()
                } else {
                    ActorError::Evicted.into()
                });
            }
            attempt += 1;
            if dead {
                // The registry may still hold a dying actor's address for a
                // moment; ask again after a short pause.
                actix_web::rt::time::sleep(std::time::Duration::from_millis(10 * attempt)).await;
            }
            addr = self
                .conversations
                .send(Lookup { id, dead })
                .await??
                .ok_or_else(ApiError::not_found)?;
        }
    }

    /// A conversation's record as stored (secrets not opened), for reads.
    pub fn record(&self, id: &Uuid) -> ApiResult<Option<ConversationRecord>> {
        match ConversationRecord::load(&self.store, id, None) {
            Ok(r) => Ok(r.map(|(r, _)| r)),
            Err(e) => {
                log::error!("conversation {id}: unreadable record: {e}");
                Err(ApiError::from(ActorError::Storage(e.to_string())))
            }
        }
    }
}
