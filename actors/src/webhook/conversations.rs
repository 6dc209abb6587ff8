//! Conversation webhooks: one actor for the server that POSTs a
//! `ConversationInfo` to `{base_url}/conversations` of every spec after a
//! conversation was created, paused, interrupted, updated or deleted.
//!
//! Callers hand it the info and go on ([`super::Webhooks::conversation_changed`]);
//! the request that caused it is answered without waiting. Notifications are
//! not batched. Per spec they wait in a queue bounded like the event queues
//! (`max_queue_size`, `max_queue_bytes`, drop-oldest with a warning); a few
//! are in flight at once, but never two of the same conversation, so each
//! conversation's notifications arrive in order. A notification that still
//! fails after `num_retries` is dropped with a warning, as in the reference.

use std::collections::HashSet;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::queue::{BoundedQueue, worth_reporting};
use super::{Poster, Target};
use crate::ids::Uuid;
use crate::metrics::Counters;

/// Requests in flight per spec (each for a different conversation).
const PARALLEL: usize = 8;

/// Queue a conversation's info for every spec.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct PostInfo {
    /// The conversation.
    pub id: Uuid,
    /// `ConversationInfo` as JSON text.
    pub body: Arc<str>,
}

/// Answered once nothing is queued or in flight (graceful shutdown).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Drain;

struct Pending {
    queue: BoundedQueue<(Uuid, Arc<str>)>,
    in_flight: HashSet<Uuid>,
    reported: u64,
}

/// The conversation-webhook sender.
pub struct ConversationWebhooks {
    targets: Vec<Arc<Target>>,
    poster: Poster,
    counters: Arc<Counters>,
    pending: Vec<Pending>,
    drain_waiters: Vec<oneshot::Sender<()>>,
}

impl ConversationWebhooks {
    /// A sender for `targets`.
    pub fn new(targets: Vec<Arc<Target>>, poster: Poster, counters: Arc<Counters>) -> Self {
        let pending = targets
            .iter()
            .map(|t| Pending {
                queue: BoundedQueue::new(t.spec.max_queue_size, t.spec.max_queue_bytes),
                in_flight: HashSet::new(),
                reported: 0,
            })
            .collect();
        ConversationWebhooks {
            targets,
            poster,
            counters,
            pending,
            drain_waiters: vec![],
        }
    }

    fn idle(&self) -> bool {
        self.pending
            .iter()
            .all(|p| p.queue.is_empty() && p.in_flight.is_empty())
    }

    fn pump(&mut self, i: usize, ctx: &mut Context<Self>) {
        while self.pending[i].in_flight.len() < PARALLEL {
            let p = &mut self.pending[i];
            let Some(((id, body), _)) = p.queue.take_first(|(id, _)| !p.in_flight.contains(id))
            else {
                break;
            };
            p.in_flight.insert(id);
            let target = self.targets[i].clone();
            let poster = self.poster.clone();
            let url = target.conversations_url();
            ctx.spawn(
                async move { poster.post(&target, &url, &body).await }
                    .into_actor(self)
                    .map(move |result, act, ctx| {
                        act.pending[i].in_flight.remove(&id);
                        let counter = match &result {
                            Ok(()) => &act.counters.webhook_info_deliveries,
                            Err(_) => &act.counters.webhook_info_failures,
                        };
                        Counters::add(counter, 1);
                        if let Err(e) = result {
                            log::warn!(
                                "webhook {}: conversation info of {} not delivered: {e}",
                                act.targets[i].label,
                                id.hyphenated()
                            );
                        }
                        act.pump(i, ctx);
                        act.wake_drainers();
                    }),
            );
        }
    }

    fn wake_drainers(&mut self) {
        if self.idle() {
            for tx in self.drain_waiters.drain(..) {
                let _ = tx.send(());
            }
        }
    }
}

impl Actor for ConversationWebhooks {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        for i in 0..self.pending.len() {
            self.pump(i, ctx);
        }
    }
}

impl Supervised for ConversationWebhooks {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        // The requests in flight went with the old context.
        let lost: usize = self.pending.iter().map(|p| p.in_flight.len()).sum();
        if lost > 0 {
            log::warn!("conversation webhooks restarting; {lost} notification(s) in flight lost");
        }
        for p in &mut self.pending {
            p.in_flight.clear();
        }
    }
}

impl Handler<PostInfo> for ConversationWebhooks {
    type Result = ();

    fn handle(&mut self, msg: PostInfo, ctx: &mut Context<Self>) {
        for i in 0..self.pending.len() {
            let p = &mut self.pending[i];
            p.queue
                .push_back((msg.id, msg.body.clone()), msg.body.len());
            let total = p.queue.dropped();
            Counters::add(
                &self.counters.webhook_infos_dropped,
                total.saturating_sub(p.reported),
            );
            if worth_reporting(p.reported, total) {
                let spec = &self.targets[i].spec;
                log::warn!(
                    "webhook {}: conversation notifications are behind their bounds (max_queue_size {}, max_queue_bytes {}); {total} dropped so far, oldest first",
                    self.targets[i].label,
                    spec.max_queue_size,
                    spec.max_queue_bytes
                );
            }
            p.reported = total;
            self.pump(i, ctx);
        }
    }
}

impl Handler<Drain> for ConversationWebhooks {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _ctx: &mut Context<Self>) -> Self::Result {
        if self.idle() {
            return Box::pin(async {});
        }
        let (tx, rx) = oneshot::channel();
        self.drain_waiters.push(tx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
