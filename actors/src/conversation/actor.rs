//! The conversation actor: the only writer of one conversation's record and
//! event log. It appends events in sled transactions, publishes them to its
//! subscribers once durable, and drives the agent loop (see `run.rs`).
//!
//! Supervised: when it stops after an internal failure, `restarting()`
//! rebuilds its state from the store, keeps its subscribers, and recovers an
//! interrupted run. Handlers never panic (panics are not supervised).

use std::time::Instant;

use actix::prelude::*;
use serde_json::Value;
use tokio::sync::oneshot;

use super::hooks::{HookState, PromptVerdict};
use super::messages::*;
use super::persist::RecordWriter;
use super::publisher::{self, Frame, Publisher, end};
use super::run::RunState;
use super::{ActorError, ConversationRegistry, Deps, Durability};
use crate::ids::Uuid;
use crate::ids::Uuid as EventUuid;
use crate::metrics::Counters;
use crate::model::conversation::{ConversationRecord, ExecutionStatus, SendMessageRequest};
use crate::model::event::{Event, EventBody, Source, StateUpdate};
use crate::store::{EncodedEvent, RecordWrite};
use crate::time::{MonotonicClock, ParsedDateTime};
use crate::tools::terminal::{self, TerminalSession};

/// How long a reply waits for the event sockets to write the events it
/// caused (a socket still replaying history, or a stalled one, is not
/// waited for longer).
const SENT_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// How long a reply gives the client, once its sockets wrote a state update,
/// to apply it (see [`publisher::SentBarrier`]).
const STATE_SETTLE: std::time::Duration = std::time::Duration::from_millis(10);

/// One live conversation.
pub struct ConversationActor {
    pub(super) id: Uuid,
    pub(super) deps: Deps,
    pub(super) registry: Option<Addr<ConversationRegistry>>,
    pub(super) record: ConversationRecord,
    pub(super) last_seq: u64,
    /// Seq of the last state update appended (what replies settle for).
    state_seq: u64,
    pub(super) clock: MonotonicClock,
    pub(super) publisher: Publisher,
    flush_in_flight: bool,
    waiters: Vec<(u64, oneshot::Sender<Result<(), ActorError>>)>,
    pub(super) run: RunState,
    /// What is written of the record with each append.
    pub(super) writer: RecordWriter,
    pub(super) hooks: HookState,
    /// The conversation no longer exists (or could not be loaded).
    pub(super) gone: bool,
    /// Closed on purpose: a restart must not bring it back.
    closed: bool,
    /// Why it was closed: decides what late messages are told.
    close_reason: u8,
    pub(super) last_activity: Instant,
    /// Delivery tasks of the webhook feeds (awaited at shutdown only).
    pub(super) webhook_tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ConversationActor {
    /// An actor for a conversation whose record was just read from the store.
    pub fn new(
        record: ConversationRecord,
        deps: Deps,
        registry: Option<Addr<ConversationRegistry>>,
    ) -> Self {
        Counters::add(&deps.counters.conversation_actors, 1);
        ConversationActor {
            id: record.id,
            deps,
            registry,
            record,
            last_seq: 0,
            state_seq: 0,
            clock: MonotonicClock::default(),
            publisher: Publisher::new(0),
            flush_in_flight: false,
            waiters: vec![],
            run: RunState::default(),
            writer: RecordWriter::default(),
            hooks: HookState::default(),
            gone: false,
            closed: false,
            close_reason: end::NONE,
            last_activity: Instant::now(),
            webhook_tasks: vec![],
        }
    }

    /// Refuses work once the conversation is gone. An actor closed by
    /// eviction or shutdown says so, so that a caller holding its old
    /// address asks the registry again instead of reporting "not found".
    pub(super) fn gone_guard(&self) -> Result<(), ActorError> {
        if !self.gone {
            return Ok(());
        }
        Err(match self.close_reason {
            end::EVICTED => ActorError::Evicted,
            end::SHUTDOWN => ActorError::Unavailable("the server is shutting down".into()),
            _ => ActorError::NotFound,
        })
    }

    /// Reloads everything durable from the store.
    fn load(&mut self) -> Result<(), ActorError> {
        let store = &self.deps.store;
        let Some((record, failures)) =
            ConversationRecord::load(store, &self.id, self.deps.cipher.as_deref())?
        else {
            return Err(ActorError::NotFound);
        };
        self.writer.loaded(&store.stats(&self.id)?);
        if !failures.is_empty() {
            log::warn!(
                "conversation {}: {} stored secret(s) could not be opened (OH_SECRET_KEY changed?); they are unavailable",
                self.id,
                failures.len()
            );
        }
        let mut record = record;
        crate::model::conversation::carry_secrets(&self.record, &mut record);
        self.record = record;
        self.last_seq = store.last_seq(&self.id)?;
        let last_micros = match store.event_at(&self.id, self.last_seq)? {
            Some(e) => ParsedDateTime::parse(e.timestamp())
                .map(|t| t.to_micros())
                .unwrap_or(0),
            None => 0,
        };
        self.clock = MonotonicClock::starting_after(last_micros);
        Ok(())
    }

    /// Start or restart: load, resume flushing, recover an interrupted run.
    fn boot(&mut self, ctx: &mut Context<Self>) {
        if self.closed {
            self.gone = true;
            return;
        }
        match self.load() {
            Ok(()) => self.gone = false,
            Err(e) => {
                if e != ActorError::NotFound {
                    log::error!("conversation {}: cannot load: {e}", self.id);
                }
                self.gone = true;
                self.publisher.close_all(end::DELETED);
                return;
            }
        }
        self.publisher.reset_durable_floor(self.last_seq);
        self.flush_in_flight = false;
        self.kick_flush(ctx);
        // Before a recovery, so that the feeds see its events after the
        // snapshot of the state they change.
        self.start_webhook_feeds();
        self.run.reset();
        self.hooks.reset();
        if self.record.execution_status == ExecutionStatus::Running {
            self.recover_interrupted_run(ctx);
        }
        self.schedule_eviction_check(ctx);
    }

    /// A new event with a fresh id and the next time stamp.
    pub(super) fn new_event(&mut self, source: Source, body: EventBody) -> Event {
        Event {
            id: Uuid::new_v4().hyphenated(),
            timestamp: self.clock.next_local(),
            source,
            body,
        }
    }

    /// A state-update event for one record field.
    pub(super) fn state_event(&mut self, key: &str, value: Value) -> Event {
        self.new_event(
            Source::Environment,
            EventBody::StateUpdate(StateUpdate {
                key: key.into(),
                value,
            }),
        )
    }

    /// Sets the status; returns the state-update event when it changed.
    pub(super) fn set_status(&mut self, status: ExecutionStatus) -> Option<Event> {
        if self.record.execution_status == status {
            return None;
        }
        self.record.execution_status = status;
        Some(self.state_event("execution_status", Value::String(status.as_str().into())))
    }

    /// Appends events (and the record, when `save_record`) in one
    /// transaction, then queues them for publication. Returns the last seq.
    /// A storage failure stops the actor so that it restarts from the store.
    pub(super) fn append(
        &mut self,
        ctx: &mut Context<Self>,
        events: Vec<Event>,
        save_record: bool,
    ) -> Result<u64, ActorError> {
        // Usage recorded since the last write goes with this one.
        let mut save_record = save_record || self.writer.has_pending();
        if events
            .iter()
            .any(|e| !matches!(e.body, EventBody::StateUpdate(_)))
        {
            self.record.updated_at = crate::time::now_utc();
            save_record = true;
            self.last_activity = Instant::now();
        }
        let mut encoded = Vec::with_capacity(events.len());
        let mut frames = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            let seq = self.last_seq + 1 + i as u64;
            if matches!(e.body, EventBody::StateUpdate(_)) {
                self.state_seq = seq;
            }
            let json = e.to_json();
            encoded.push(EncodedEvent::new(
                seq,
                &e.id,
                e.source,
                e.body.kind(),
                &e.timestamp,
                &json,
            ));
            frames.push(Frame {
                seq: Some(seq),
                text: json.into(),
            });
        }
        let prepared = save_record.then(|| {
            self.writer
                .prepare(&mut self.record, self.deps.cipher.as_deref())
        });
        let summary = self.record.summary();
        let write = prepared.as_ref().map(|(bytes, usage)| RecordWrite {
            bytes,
            summary: &summary,
            stats: usage.as_write(),
        });
        if let Err(e) = self.deps.store.append(&self.id, &encoded, write) {
            log::error!(
                "conversation {}: append failed, restarting from the store: {e}",
                self.id
            );
            ctx.stop();
            return Err(e.into());
        }
        if let Some((_, usage)) = &prepared {
            self.writer.committed(usage);
        }
        self.last_seq += encoded.len() as u64;
        Counters::add(&self.deps.counters.events_appended, encoded.len() as u64);
        self.run.observe(events);
        for f in frames {
            self.publisher.push(f);
        }
        if self.deps.config.durability == Durability::Relaxed {
            self.publisher.mark_durable(self.last_seq);
            self.resolve_waiters(Ok(()));
        } else {
            self.kick_flush(ctx);
        }
        Ok(self.last_seq)
    }

    /// Sends a frame that is not persisted (snapshots, deltas), in order
    /// after everything appended so far.
    pub(super) fn publish_ephemeral(&mut self, event: Event) {
        self.publisher.push(Frame {
            seq: None,
            text: event.to_json().into(),
        });
    }

    /// The `full_state` snapshot event.
    pub(super) fn full_state_event(&mut self) -> Event {
        let v = self.record.full_state_value();
        self.state_event("full_state", v)
    }

    /// A reply that completes once `seq` is durable.
    ///
    /// It also waits (briefly) until the event sockets have written the
    /// frames up to `seq`: see [`publisher::SentBarrier`].
    pub(super) fn when_durable(&mut self, seq: u64) -> ResponseFuture<Result<(), ActorError>> {
        let sent = self.sent_barrier(seq);
        if self.publisher.durable() >= seq {
            return Box::pin(async move {
                sent.wait(SENT_WAIT).await;
                Ok(())
            });
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.push((seq, tx));
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(ActorError::Unavailable(
                    "conversation restarted before the write was confirmed".into(),
                ))
            })?;
            sent.wait(SENT_WAIT).await;
            Ok(())
        })
    }

    fn sent_barrier(&self, seq: u64) -> publisher::SentBarrier {
        self.publisher
            .sent_barrier(seq, self.state_seq, STATE_SETTLE)
    }

    /// Sends `Ok` on `tx` once `seq` is durable (at once when it already is)
    /// and the event sockets have written it, as [`Self::when_durable`].
    pub(super) fn reply_when_durable(
        &mut self,
        seq: u64,
        tx: oneshot::Sender<Result<(), ActorError>>,
    ) {
        let reply = self.when_durable(seq);
        actix::spawn(async move {
            let _ = tx.send(reply.await);
        });
    }

    fn resolve_waiters(&mut self, result: Result<(), ActorError>) {
        let durable = self.publisher.durable();
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|(seq, _)| *seq <= durable || result.is_err());
        self.waiters = waiting;
        for (_, tx) in ready {
            let _ = tx.send(result.clone());
        }
    }

    /// Starts a flush if events wait for durability and none is running.
    /// Concurrent appends share one flush (group commit).
    fn kick_flush(&mut self, ctx: &mut Context<Self>) {
        if self.deps.config.durability != Durability::Sync || self.flush_in_flight {
            return;
        }
        let waiting = self.publisher.highest_pending().is_some()
            || self
                .waiters
                .iter()
                .any(|(s, _)| *s > self.publisher.durable());
        if !waiting {
            return;
        }
        self.flush_in_flight = true;
        let upto = self.last_seq;
        let store = self.deps.store.clone();
        ctx.spawn(
            async move { store.flush().await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    act.flush_in_flight = false;
                    match res {
                        Ok(()) => {
                            act.publisher.mark_durable(upto);
                            act.resolve_waiters(Ok(()));
                            act.kick_flush(ctx);
                        }
                        Err(e) => {
                            log::error!("conversation {}: flush failed, restarting: {e}", act.id);
                            act.resolve_waiters(Err(e.into()));
                            ctx.stop();
                        }
                    }
                }),
        );
    }

    fn schedule_eviction_check(&mut self, ctx: &mut Context<Self>) {
        let Some(secs) = self.deps.config.idle_eviction_secs else {
            return;
        };
        let period = std::time::Duration::from_secs(secs.clamp(1, 60));
        ctx.run_interval(period, move |act, ctx| {
            act.publisher.prune_closed();
            let idle = act.last_activity.elapsed().as_secs() >= secs;
            if idle
                && act.publisher.subscriber_count() == 0
                && act.run.is_idle()
                && act.publisher.pending() == 0
                && act.waiters.is_empty()
                && act.hooks.intake_idle()
                && act.run.tools.mcp.is_idle()
                && !act.session_pins_actor()
            {
                log::info!("conversation {}: evicted after {secs}s idle", act.id);
                Counters::add(&act.deps.counters.evictions, 1);
                // The registry forgets this address before anyone can be
                // told `Evicted` (its mailbox is FIFO), so a caller that
                // asks again gets a fresh actor loaded from the store.
                if let Some(reg) = &act.registry {
                    reg.do_send(Evicted { id: act.id });
                }
                // Nobody waits for the shell to stop; it stops on its own.
                if let Some(session) = act.close(ctx, end::EVICTED) {
                    session.do_send(terminal::Close);
                }
            }
        });
    }

    /// Ends the actor for good (no restart): stops the run, releases
    /// subscribers with `reason` and drops what it holds in memory. Returns
    /// the terminal, if one was started, which the caller must send
    /// `terminal::Close` (it kills the shell's whole session).
    pub(super) fn close(
        &mut self,
        ctx: &mut Context<Self>,
        reason: u8,
    ) -> Option<Addr<TerminalSession>> {
        let terminal = self.stop_run_for_close(ctx);
        let mcp = self.take_mcp_sessions();
        if !mcp.is_empty() {
            // Nobody waits: the servers stop on their own.
            actix::spawn(super::mcp::close_sessions(mcp));
        }
        self.publisher.close_all(reason);
        self.resolve_waiters(Err(ActorError::NotFound));
        self.closed = true;
        self.close_reason = reason;
        self.gone = true;
        self.run.release_memory();
        ctx.stop();
        terminal
    }
}

impl Drop for ConversationActor {
    fn drop(&mut self) {
        Counters::sub(&self.deps.counters.conversation_actors, 1);
    }
}

impl Actor for ConversationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Bounded mailbox: handlers reply fast; a flood of requests waits in
        // the senders, not in memory here.
        ctx.set_mailbox_capacity(256);
        self.boot(ctx);
    }
}

impl Supervised for ConversationActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        if !self.closed {
            log::warn!(
                "conversation {}: actor restarting; state is rebuilt from the store",
                self.id
            );
            Counters::add(&self.deps.counters.actor_restarts, 1);
        }
        // started() runs again after this and calls boot().
    }
}

impl Handler<CurrentRecord> for ConversationActor {
    type Result = Result<ConversationRecord, ActorError>;

    fn handle(&mut self, _: CurrentRecord, _ctx: &mut Context<Self>) -> Self::Result {
        self.gone_guard()?;
        Ok(self.record.clone())
    }
}

impl Handler<SendMessage> for ConversationActor {
    type Result = ResponseFuture<Result<(), ActorError>>;

    fn handle(&mut self, msg: SendMessage, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.gone_guard() {
            return Box::pin(async move { Err(e) });
        }
        if msg.message.role != "user" {
            return Box::pin(async {
                Err(ActorError::BadRequest(
                    "Only user messages are allowed to be sent to the agent.".into(),
                ))
            });
        }
        let message = match self.mcp_gate(ctx, msg.message) {
            Ok(reply) => return reply,
            Err(message) => message,
        };
        let message = match self.queue_message(ctx, message) {
            Ok(reply) => return reply,
            Err(message) => message,
        };
        let id = EventUuid::new_v4().hyphenated();
        match self.record_user_message(ctx, message, vec![], id, None) {
            Ok(seq) => self.when_durable(seq),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

impl ConversationActor {
    /// Records a user message with id `message_id`, after `prelude` (a
    /// session start) and the system prompt when it is the first, with the
    /// verdict of its hooks; starts a run when asked. Returns the last seq.
    pub(super) fn record_user_message(
        &mut self,
        ctx: &mut Context<Self>,
        message: SendMessageRequest,
        prelude: Vec<Event>,
        message_id: String,
        verdict: Option<PromptVerdict>,
    ) -> Result<u64, ActorError> {
        if !self.record.agent_initialized
            && let Some(error) = self.agent_setup_error()
        {
            // The reference sets the agent up on the first message and answers its
            // failure (e.g. an unregistered tool) with a 500; nothing is recorded.
            return Err(ActorError::Internal(error));
        }
        self.seed_llm_registry();
        let mut events = prelude;
        if !self.record.agent_initialized {
            events.push(self.system_prompt_event());
            self.record.agent_initialized = true;
        }
        if matches!(
            self.record.execution_status,
            ExecutionStatus::Finished | ExecutionStatus::Stuck
        ) {
            events.extend(self.set_status(ExecutionStatus::Idle));
        }
        let text = message
            .content
            .iter()
            .filter_map(|c| c.as_text())
            .collect::<Vec<_>>()
            .join(" ");
        let mut incoming = self.incoming_user_message(message.content);
        incoming[0].id = message_id.clone();
        if let Some(verdict) = verdict {
            self.apply_prompt_verdict(verdict, &mut incoming[0], &mut events);
        }
        events.extend(incoming);
        self.record.last_user_message_id = Some(message_id.clone());
        events.push(self.state_event("last_user_message_id", Value::String(message_id)));
        // Hook events were built before the events now ahead of them:
        // stamp the batch again, in order.
        for e in &mut events {
            e.timestamp = self.clock.next_local();
        }
        let seq = self.append(ctx, events, true)?;
        self.on_user_message(ctx, text);
        if message.run {
            let _ = self.request_run(ctx, true);
        }
        Ok(seq)
    }
}

impl Handler<Update> for ConversationActor {
    type Result = ResponseFuture<Result<(), ActorError>>;

    fn handle(&mut self, msg: Update, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.gone_guard() {
            return Box::pin(async move { Err(e) });
        }
        let mut events = vec![];
        if let Some(title) = msg.0.title {
            self.record.title = Some(title);
        }
        if let Some(tags) = msg.0.tags {
            self.record.tags = tags.clone();
            events.push(self.state_event("tags", Value::Object(tags)));
        }
        self.record.updated_at = crate::time::now_utc();
        match self.append(ctx, events, true) {
            Ok(seq) => self.when_durable_or_flush(seq),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

impl ConversationActor {
    /// Like [`Self::when_durable`], but also covers record-only writes (which
    /// carry no new seq) by flushing once.
    pub(super) fn when_durable_or_flush(
        &mut self,
        seq: u64,
    ) -> ResponseFuture<Result<(), ActorError>> {
        if self.deps.config.durability == Durability::Relaxed || self.publisher.durable() < seq {
            return self.when_durable(seq);
        }
        let store = self.deps.store.clone();
        let sent = self.sent_barrier(seq);
        Box::pin(async move {
            store.flush().await.map_err(ActorError::from)?;
            sent.wait(SENT_WAIT).await;
            Ok(())
        })
    }

    /// Saves the record without an event and replies when durable.
    pub(super) fn save_record(
        &mut self,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<(), ActorError>> {
        match self.append(ctx, vec![], true) {
            Ok(seq) => self.when_durable_or_flush(seq),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

impl Handler<Subscribe> for ConversationActor {
    type Result = Result<Subscribed, ActorError>;

    fn handle(&mut self, msg: Subscribe, _ctx: &mut Context<Self>) -> Self::Result {
        self.gone_guard()?;
        self.publisher.prune_closed();
        if self.publisher.subscriber_count() >= self.deps.config.max_subscribers {
            return Err(ActorError::TooManySubscribers);
        }
        let id = self.publisher.subscribe(msg.tx, msg.end, msg.sent);
        self.last_activity = Instant::now();
        let snapshot = self.full_state_event().to_json();
        Ok(Subscribed {
            id,
            head: self.publisher.durable(),
            snapshot,
        })
    }
}

impl Handler<Unsubscribe> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _ctx: &mut Context<Self>) {
        self.publisher.unsubscribe(msg.id);
        self.last_activity = Instant::now();
    }
}

impl Handler<UpdateSecrets> for ConversationActor {
    type Result = ResponseFuture<Result<(), ActorError>>;

    fn handle(&mut self, msg: UpdateSecrets, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.gone_guard() {
            return Box::pin(async move { Err(e) });
        }
        self.record.secret_sources.extend(msg.secrets);
        self.save_record(ctx)
    }
}

impl Handler<SetConfirmationPolicy> for ConversationActor {
    type Result = ResponseFuture<Result<(), ActorError>>;

    fn handle(&mut self, msg: SetConfirmationPolicy, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.gone_guard() {
            return Box::pin(async move { Err(e) });
        }
        self.record.confirmation_policy = msg.0.clone();
        let ev = self.state_event("confirmation_policy", msg.0);
        match self.append(ctx, vec![ev], true) {
            Ok(seq) => self.when_durable(seq),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

impl Handler<SetSecurityAnalyzer> for ConversationActor {
    type Result = ResponseFuture<Result<(), ActorError>>;

    fn handle(&mut self, msg: SetSecurityAnalyzer, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.gone_guard() {
            return Box::pin(async move { Err(e) });
        }
        if self.record.security_analyzer == msg.0 {
            return Box::pin(async { Ok(()) });
        }
        self.record.security_analyzer = msg.0.clone();
        let ev = self.state_event("security_analyzer", msg.0);
        match self.append(ctx, vec![ev], true) {
            Ok(seq) => self.when_durable(seq),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

impl Handler<Loaded> for ConversationActor {
    type Result = ();

    fn handle(&mut self, _: Loaded, _ctx: &mut Context<Self>) {}
}

impl Handler<Close> for ConversationActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Close, ctx: &mut Context<Self>) -> Self::Result {
        if self.closed {
            return Box::pin(async {});
        }
        let reason = if msg.delete {
            end::DELETED
        } else {
            end::SHUTDOWN
        };
        // The run stops first, as the reference pauses it before closing.
        let session = self.stop_run_for_close(ctx);
        let mcp = self.take_mcp_sessions();
        // No new work while SessionEnd hooks run, and a restart now must
        // not bring the conversation back.
        self.closed = true;
        self.gone = true;
        self.close_reason = reason;
        // A shutdown also waits for the webhook feeds to send what they
        // hold (the caller bounds the wait); a delete does not.
        let feeds = if msg.delete {
            vec![]
        } else {
            std::mem::take(&mut self.webhook_tasks)
        };
        let (tx, rx) = oneshot::channel();
        let ending = self.end_session_then(ctx, !msg.delete, move |act, ctx| {
            let _ = act.close(ctx, reason);
            let _ = tx.send(());
        });
        if !ending {
            let _ = self.close(ctx, reason);
        }
        // Replies once the shell and its processes are gone (and the feeds
        // have sent what they held, and the MCP servers are closed), so that
        // a shutdown can wait for them.
        Box::pin(async move {
            if ending {
                let _ = rx.await;
            }
            let shell = async {
                if let Some(session) = session {
                    let _ = session.send(terminal::Close).await;
                }
            };
            futures_util::future::join3(
                shell,
                futures_util::future::join_all(feeds),
                super::mcp::close_sessions(mcp),
            )
            .await;
        })
    }
}

impl Handler<InjectFault> for ConversationActor {
    type Result = Result<(), ActorError>;

    fn handle(&mut self, msg: InjectFault, ctx: &mut Context<Self>) -> Self::Result {
        if !self.deps.config.fault_injection {
            return Err(ActorError::BadRequest("fault injection is disabled".into()));
        }
        match msg.kind.as_str() {
            "stop" => {
                log::warn!(
                    "conversation {}: injected fault: stopping the actor",
                    self.id
                );
                ctx.stop();
                Ok(())
            }
            "panic" => {
                log::warn!("conversation {}: injected fault: panicking", self.id);
                // Deliberate: proves the registry respawns an actor whose
                // mailbox died without a supervised restart.
                std::panic::panic_any("injected fault");
            }
            other => Err(ActorError::BadRequest(format!(
                "unknown fault kind '{other}'; use 'stop' or 'panic'"
            ))),
        }
    }
}
