//! The conversation actor's side of webhooks (see [`crate::webhook`]): it
//! starts one event feed per configured spec when it boots, and posts the
//! conversation's info after a pause, interrupt or update it carried out.
//!
//! When feeds start: on each start of an actor, that is, when a
//! conversation is created, first used after a server start, revived after
//! an idle eviction, or respawned after a crash. Each start sends its own
//! `full_state` first, as each subscription does in the reference (which
//! starts every stored conversation at boot and so posts one per
//! conversation per server start; this server loads conversations lazily).
//! A supervised restart keeps the feeds: they see no gap and no second
//! snapshot. When the actor lets go of its feeds (delete, eviction,
//! shutdown, crash), each sends what it still holds and ends; only a
//! shutdown waits for that.

use actix::prelude::*;

use super::ActorError;
use super::actor::ConversationActor;
use super::messages::{Interrupt, Pause, Update};
use super::publisher::Frame;
use crate::ids::Uuid;
use crate::model::conversation::ConversationRecord;
use crate::store::Store;
use crate::webhook::Webhooks;

/// Handles `M`, then (once `M` succeeded) posts the conversation's info to
/// the conversation webhooks: pause, interrupt and update (`PATCH`).
#[derive(Clone)]
pub struct WithWebhook<M>(pub M);

impl<M> Message for WithWebhook<M>
where
    M: Message<Result = Result<(), ActorError>>,
{
    type Result = Result<(), ActorError>;
}

// One impl per message: a blanket impl over every handled `M` would send
// the trait solver after `WithWebhook<WithWebhook<…>>`.
macro_rules! with_webhook {
    ($($message:ty),*) => {$(
        impl Handler<WithWebhook<$message>> for ConversationActor {
            type Result = ResponseFuture<Result<(), ActorError>>;

            fn handle(
                &mut self,
                msg: WithWebhook<$message>,
                ctx: &mut Context<Self>,
            ) -> Self::Result {
                let done = <Self as Handler<$message>>::handle(self, msg.0, ctx);
                self.then_post_info(done)
            }
        }
    )*};
}

with_webhook!(Pause, Interrupt, Update);

impl ConversationActor {
    /// `done`, followed (when it succeeded) by the conversation webhook.
    fn then_post_info(
        &self,
        done: ResponseFuture<Result<(), ActorError>>,
    ) -> ResponseFuture<Result<(), ActorError>> {
        if self.deps.webhooks.is_empty() {
            return done;
        }
        let (hooks, store, id) = (self.deps.webhooks.clone(), self.deps.store.clone(), self.id);
        // actix runs this future to the end even when the caller stops
        // waiting (an HTTP client that hung up), so the webhook is not lost.
        Box::pin(async move {
            let result = done.await;
            if result.is_ok() {
                post_stored_info(&hooks, &store, id);
            }
            result
        })
    }
}

/// Posts the conversation's info as stored now (the write that `M` made is
/// durable by then).
fn post_stored_info(hooks: &Webhooks, store: &Store, id: Uuid) {
    match ConversationRecord::load(store, &id, None) {
        Ok(Some((record, _))) => hooks.conversation_changed(id, &record.info_value(true)),
        Ok(None) => {}
        Err(e) => log::warn!("conversation {id}: no webhook, cannot read the record: {e}"),
    }
}

impl ConversationActor {
    /// Starts the event feeds unless this actor already has them (a
    /// supervised restart keeps its publisher and so its feeds). Each feed
    /// gets the `full_state` snapshot first, then every frame published from
    /// now on.
    pub(super) fn start_webhook_feeds(&mut self) {
        if self.deps.webhooks.is_empty() || self.publisher.feed_count() > 0 {
            return;
        }
        self.webhook_tasks.retain(|t| !t.is_finished());
        let snapshot: std::sync::Arc<str> = self.full_state_event().to_json().into();
        for feed in self.deps.webhooks.event_feeds(self.id) {
            // The channel is new and empty: the snapshot always fits.
            let _ = feed.tx.try_send(Frame {
                seq: None,
                text: snapshot.clone(),
            });
            self.publisher.subscribe_feed(feed.tx, feed.missed);
            self.webhook_tasks.push(feed.task);
        }
    }
}
