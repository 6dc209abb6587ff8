//! The conversation registry: maps conversation ids to live actors, spawns
//! them lazily from the store (one at a time per id, since the registry
//! handles one message at a time), respawns an actor whose mailbox died,
//! and deletes conversations.
//!
//! It holds addresses only, never conversation state, and never waits on a
//! conversation while handling a message.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use actix::prelude::*;
use serde_json::Value;

use super::messages::*;
use super::{ActorError, ConversationActor, Deps};
use crate::ids::Uuid;
use crate::metrics::Counters;
use crate::model::conversation::{ConversationRecord, ExecutionStatus};
use crate::store::{RecordWrite, StatsWrite};

/// Registry of live conversation actors.
pub struct ConversationRegistry {
    deps: Deps,
    actors: HashMap<Uuid, Addr<ConversationActor>>,
    /// Ids being deleted or created by a fork: lookups see nothing there.
    busy: HashSet<Uuid>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: usize,
    /// Shutting down: no actor is spawned any more.
    closing: bool,
}

impl ConversationRegistry {
    /// A registry whose conversation actors run on `arbiters` (round robin);
    /// with none given they run on the registry's own arbiter.
    pub fn new(deps: Deps, arbiters: Vec<ArbiterHandle>) -> Self {
        ConversationRegistry {
            deps,
            actors: HashMap::new(),
            busy: HashSet::new(),
            arbiters,
            next_arbiter: 0,
            closing: false,
        }
    }

    fn spawn(
        &mut self,
        record: ConversationRecord,
        ctx: &mut Context<Self>,
    ) -> Addr<ConversationActor> {
        let id = record.id;
        let deps = self.deps.clone();
        let me = ctx.address();
        let addr = if self.arbiters.is_empty() {
            Supervisor::start(move |_| ConversationActor::new(record, deps, Some(me)))
        } else {
            let arb = &self.arbiters[self.next_arbiter % self.arbiters.len()];
            self.next_arbiter = self.next_arbiter.wrapping_add(1);
            Supervisor::start_in_arbiter(arb, move |_| {
                ConversationActor::new(record, deps, Some(me))
            })
        };
        self.actors.insert(id, addr.clone());
        addr
    }

    fn load_record(&self, id: &Uuid) -> Result<Option<ConversationRecord>, ActorError> {
        // The actor opens the secrets itself; the registry only needs the shape.
        Ok(ConversationRecord::load(&self.deps.store, id, None)?.map(|(r, _)| r))
    }

    fn lookup(
        &mut self,
        id: Uuid,
        dead: bool,
        ctx: &mut Context<Self>,
    ) -> Result<Option<Addr<ConversationActor>>, ActorError> {
        if self.busy.contains(&id) {
            return Ok(None);
        }
        if self.closing {
            return Err(shutting_down());
        }
        if let Some(addr) = self.actors.get(&id) {
            // A caller that saw a dead mailbox (`dead`) may ask while the
            // dying actor's address still looks connected; it retries.
            if addr.connected() {
                return Ok(Some(addr.clone()));
            }
            if !dead {
                log::debug!("conversation {id}: found a closed mailbox");
            }
            log::warn!("conversation {id}: actor mailbox closed; respawning from the store");
            Counters::add(&self.deps.counters.conversation_respawns, 1);
            self.actors.remove(&id);
        }
        match self.load_record(&id)? {
            Some(record) => Ok(Some(self.spawn(record, ctx))),
            None => Ok(None),
        }
    }
}

impl Actor for ConversationRegistry {
    type Context = Context<Self>;
}

impl Supervised for ConversationRegistry {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        log::warn!("conversation registry restarting");
        Counters::add(&self.deps.counters.registry_restarts, 1);
        self.actors.retain(|_, a| a.connected());
    }
}

fn shutting_down() -> ActorError {
    ActorError::Unavailable("the server is shutting down".into())
}

/// Creates the working and scratch directories of a new conversation.
fn prepare_dirs(record: &ConversationRecord) -> Result<(), ActorError> {
    for dir in [&record.workspace.working_dir, &record.persistence_dir] {
        std::fs::create_dir_all(dir)
            .map_err(|e| ActorError::BadRequest(format!("cannot create directory '{dir}': {e}")))?;
    }
    Ok(())
}

/// Runs `git init` in a working directory that is not inside a repository,
/// as the reference does (so agent-made files show up in the git routes).
async fn git_init_if_needed(dir: String) {
    let inside = tokio::process::Command::new("git")
        .args(["rev-parse", "--is-inside-work-tree"])
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
    if matches!(inside, Ok(s) if s.success()) {
        return;
    }
    let _ = tokio::process::Command::new("git")
        .args(["init", "--quiet"])
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
}

impl Handler<Create> for ConversationRegistry {
    type Result = ResponseActFuture<Self, Result<(Value, bool), ActorError>>;

    fn handle(&mut self, msg: Create, ctx: &mut Context<Self>) -> Self::Result {
        let req = msg.request;
        let id = req.conversation_id.unwrap_or_else(Uuid::new_v4);
        if self.closing {
            return Box::pin(fut::ready(Err(shutting_down())));
        }
        if self.busy.contains(&id) {
            return Box::pin(fut::ready(Err(ActorError::Conflict(format!(
                "Conversation {id} is being deleted"
            )))));
        }
        match self.load_record(&id) {
            Ok(Some(existing)) => {
                return Box::pin(fut::ready(Ok((existing.info_value(false), false))));
            }
            Ok(None) => {}
            Err(e) => return Box::pin(fut::ready(Err(e))),
        }
        let initial = req.initial_message.clone();
        let record = ConversationRecord::new(id, req, &self.deps.config.conversations_path);
        if let Err(e) = prepare_dirs(&record) {
            return Box::pin(fut::ready(Err(e)));
        }
        let bytes = record.to_stored(self.deps.cipher.as_deref());
        let usage = record.stats.encode();
        let write = RecordWrite {
            bytes: &bytes,
            summary: &record.summary(),
            stats: Some(StatsWrite::Snapshot {
                bytes: &usage,
                clear: 0,
            }),
        };
        if let Err(e) = self.deps.store.put_record(&id, write) {
            return Box::pin(fut::ready(Err(e.into())));
        }
        let working_dir = record.workspace.working_dir.clone();
        let addr = self.spawn(record, ctx);
        let store = self.deps.store.clone();
        let hooks = self.deps.webhooks.clone();
        Box::pin(
            async move {
                git_init_if_needed(working_dir).await;
                store.flush().await?;
                if let Some(mut message) = initial {
                    // The reference starts a run for an initial message
                    // whatever its `run` flag says.
                    message.run = true;
                    addr.send(SendMessage { message }).await??;
                }
                let (record, _) =
                    ConversationRecord::load(&store, &id, None)?.ok_or(ActorError::NotFound)?;
                // The reference posts only for a conversation it created,
                // after the initial message; its webhook info keeps the skills.
                if !hooks.is_empty() {
                    hooks.conversation_changed(id, &record.info_value(true));
                }
                Ok((record.info_value(false), true))
            }
            .into_actor(self),
        )
    }
}

impl Handler<Fork> for ConversationRegistry {
    type Result = ResponseActFuture<Self, Result<Value, ActorError>>;

    fn handle(&mut self, msg: Fork, _ctx: &mut Context<Self>) -> Self::Result {
        let id = msg.id.unwrap_or_else(Uuid::new_v4);
        let cipher = self.deps.cipher.clone();
        let stored =
            match ConversationRecord::load(&self.deps.store, &msg.source, cipher.as_deref()) {
                Ok(Some((r, _))) => r,
                Ok(None) => return Box::pin(fut::ready(Err(ActorError::NotFound))),
                Err(e) => return Box::pin(fut::ready(Err(e.into()))),
            };
        let exists = self.deps.store.has_conversation(&id).unwrap_or(true);
        if exists || !self.busy.insert(id) {
            return Box::pin(fut::ready(Err(ActorError::Conflict(format!(
                "Conversation with id {} already exists",
                id.hyphenated()
            )))));
        }
        // A live source holds secrets the store may lack (no cipher
        // configured): copy those too, as the reference copies its
        // in-memory state.
        let live = self.actors.get(&msg.source).cloned();
        Box::pin(
            async move {
                let mut record = stored;
                if let Some(addr) = live
                    && let Ok(Ok(current)) = addr.send(CurrentRecord).await
                {
                    crate::model::conversation::carry_secrets(&current, &mut record);
                }
                record
            }
            .into_actor(self)
            .then(move |record, act, ctx| act.write_fork(record, id, msg, ctx)),
        )
    }
}

impl ConversationRegistry {
    /// Stores the copy `id` of `record` (events copied from `msg.source`)
    /// and starts its actor with the in-memory record, secrets included.
    fn write_fork(
        &mut self,
        mut record: ConversationRecord,
        id: Uuid,
        msg: Fork,
        _ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<Value, ActorError>> {
        let source_id = record.id;
        let now = crate::time::now_utc();
        record.id = id;
        record.persistence_dir = format!(
            "{}/{}",
            self.deps.config.conversations_path.trim_end_matches('/'),
            id.simple()
        );
        record.execution_status = ExecutionStatus::Idle;
        record.title = None;
        record.created_at = now.clone();
        record.updated_at = now;
        if let Some(tags) = msg.tags {
            record.tags = tags;
        }
        if let Some(title) = msg.title {
            record.tags.insert("title".into(), Value::String(title));
        }
        if msg.reset_metrics {
            record.stats = Default::default();
        }
        let cipher = self.deps.cipher.clone();
        let store = self.deps.store.clone();
        let bytes = record.to_stored(cipher.as_deref());
        let usage = record.stats.encode();
        let summary = record.summary();
        let scratch = record.persistence_dir.clone();
        let info = record.info_value(false);
        Box::pin(
            async move {
                actix_rt_blocking(move || -> Result<(), ActorError> {
                    std::fs::create_dir_all(&scratch).map_err(|e| {
                        ActorError::BadRequest(format!("cannot create '{scratch}': {e}"))
                    })?;
                    store.copy_events(&source_id, &id)?;
                    // The record goes last: until then the copy is invisible.
                    store.put_record(
                        &id,
                        RecordWrite {
                            bytes: &bytes,
                            summary: &summary,
                            stats: Some(StatsWrite::Snapshot {
                                bytes: &usage,
                                clear: 0,
                            }),
                        },
                    )?;
                    store.flush_blocking()?;
                    Ok(())
                })
                .await
            }
            .into_actor(self)
            .map(move |res, act, ctx| {
                act.busy.remove(&id);
                match res {
                    Ok(()) => {
                        // Secrets the store could not keep live on in the
                        // copy's actor, as they do in the source's.
                        if cipher.is_none() && !act.actors.contains_key(&id) {
                            act.spawn(record, ctx);
                        }
                        Ok(info)
                    }
                    Err(e) => {
                        let _ = act.deps.store.delete_conversation(&id);
                        Err(e)
                    }
                }
            }),
        )
    }
}

impl Handler<Lookup> for ConversationRegistry {
    type Result = Result<Option<Addr<ConversationActor>>, ActorError>;

    fn handle(&mut self, msg: Lookup, ctx: &mut Context<Self>) -> Self::Result {
        self.lookup(msg.id, msg.dead, ctx)
    }
}

impl Handler<Delete> for ConversationRegistry {
    type Result = ResponseActFuture<Self, Result<bool, ActorError>>;

    fn handle(&mut self, msg: Delete, _ctx: &mut Context<Self>) -> Self::Result {
        let id = msg.id;
        let record = match self.load_record(&id) {
            Ok(r) => r,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let Some(mut record) = record else {
            return Box::pin(fut::ready(Ok(false)));
        };
        if !self.busy.insert(id) {
            return Box::pin(fut::ready(Ok(true)));
        }
        // As in the reference: the info as it is, marked "deleting", before
        // the conversation is closed.
        if !self.deps.webhooks.is_empty() {
            record.execution_status = ExecutionStatus::Deleting;
            self.deps
                .webhooks
                .conversation_changed(id, &record.info_value(true));
        }
        let addr = self.actors.remove(&id);
        let store = self.deps.store.clone();
        let scratch = record.persistence_dir.clone();
        Box::pin(
            async move {
                if let Some(addr) = addr {
                    let _ = addr.send(Close { delete: true }).await;
                }
                let result = actix_rt_blocking(move || -> Result<(), ActorError> {
                    store.delete_conversation(&id)?;
                    store.flush_blocking()?;
                    let path = Path::new(&scratch);
                    if path.exists()
                        && let Err(e) = std::fs::remove_dir_all(path)
                    {
                        log::warn!("conversation {id}: could not remove {scratch}: {e}");
                    }
                    Ok(())
                })
                .await;
                result.map(|()| true)
            }
            .into_actor(self)
            .map(move |res, act, _| {
                act.busy.remove(&id);
                res
            }),
        )
    }
}

/// Runs blocking work off the actor threads.
async fn actix_rt_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ActorError> + Send + 'static,
) -> Result<T, ActorError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ActorError::Storage(format!("background task failed: {e}"))))
}

impl Handler<RecoverRunning> for ConversationRegistry {
    type Result = ResponseActFuture<Self, Result<usize, ActorError>>;

    fn handle(&mut self, _: RecoverRunning, ctx: &mut Context<Self>) -> Self::Result {
        let orphans = match self.deps.store.sweep_orphans() {
            Ok(n) => n,
            Err(e) => return Box::pin(fut::ready(Err(e.into()))),
        };
        if orphans > 0 {
            log::warn!("removed {orphans} event entries left behind by an interrupted delete");
        }
        // Start-up reads the small catalog only; whole records are read
        // for conversations that were running, to recover them.
        let rebuilt = match self.deps.store.ensure_catalog(|bytes| {
            ConversationRecord::from_stored(bytes, None)
                .ok()
                .map(|(r, _)| r.summary())
        }) {
            Ok(n) => n,
            Err(e) => return Box::pin(fut::ready(Err(e.into()))),
        };
        if rebuilt > 0 {
            log::info!("rebuilt the conversation catalog ({rebuilt} entries)");
        }
        let mut running = vec![];
        for item in self.deps.store.summaries() {
            let (id, summary) = match item {
                Ok(x) => x,
                Err(e) => {
                    log::error!("skipping an unreadable catalog entry: {e}");
                    continue;
                }
            };
            if summary.status != ExecutionStatus::Running.as_str() {
                continue;
            }
            match self.load_record(&id) {
                Ok(Some(r)) => running.push(r),
                Ok(None) => {}
                Err(e) => log::error!("conversation {id}: unreadable record skipped: {e}"),
            }
        }
        let n = running.len();
        let mut spawned = Vec::with_capacity(n);
        for record in running {
            log::info!(
                "conversation {}: was running when the server stopped; recovering",
                record.id
            );
            spawned.push(self.spawn(record, ctx));
        }
        // Wait until each has recovered (an actor handles no message
        // before its start-up), so the server answers only once no
        // conversation is left looking "running".
        Box::pin(
            async move {
                futures_util::future::join_all(spawned.iter().map(|a| a.send(Loaded))).await;
                Ok(n)
            }
            .into_actor(self),
        )
    }
}

impl Handler<Shutdown> for ConversationRegistry {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Shutdown, _ctx: &mut Context<Self>) -> Self::Result {
        self.closing = true;
        let actors: Vec<_> = self.actors.drain().map(|(_, a)| a).collect();
        let store = self.deps.store.clone();
        if !actors.is_empty() {
            log::info!("closing {} conversation actor(s)", actors.len());
        }
        Box::pin(
            async move {
                // All at once: each may wait a few seconds for its shell.
                let closes = actors.iter().map(|a| a.send(Close { delete: false }));
                futures_util::future::join_all(closes).await;
                if let Err(e) = store.flush().await {
                    log::error!("final flush failed: {e}");
                }
            }
            .into_actor(self),
        )
    }
}

impl Handler<Evicted> for ConversationRegistry {
    type Result = ();

    fn handle(&mut self, msg: Evicted, _ctx: &mut Context<Self>) {
        self.actors.remove(&msg.id);
    }
}
