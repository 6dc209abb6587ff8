//! Messages understood by the conversation actor and the registry. Each is a
//! small struct whose result is `Result<_, ActorError>`.

use std::sync::Arc;
use std::sync::atomic::AtomicU8;

use actix::prelude::*;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::ActorError;
use super::actor::ConversationActor;
use super::publisher::Frame;
use crate::ids::Uuid;
use crate::model::conversation::{
    SendMessageRequest, StartConversationRequest, UpdateConversationRequest,
};

/// Appends a user message (and starts a run when `message.run`).
#[derive(Message, Clone)]
#[rtype(result = "Result<(), ActorError>")]
pub struct SendMessage {
    /// The message.
    pub message: SendMessageRequest,
}

/// Changes title and/or tags.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), ActorError>")]
pub struct Update(pub UpdateConversationRequest);

/// A new subscription: frames arrive on `tx` after the reply's `head`.
#[derive(Message, Clone)]
#[rtype(result = "Result<Subscribed, ActorError>")]
pub struct Subscribe {
    /// Bounded queue to the socket.
    pub tx: mpsc::Sender<Frame>,
    /// Why the subscription ended, set by the actor.
    pub end: Arc<AtomicU8>,
    /// Seq of the last event the socket wrote, kept up to date by the socket.
    pub sent: tokio::sync::watch::Receiver<u64>,
}

/// Reply to [`Subscribe`].
#[derive(Debug, Clone)]
pub struct Subscribed {
    /// Subscription id, for [`Unsubscribe`].
    pub id: u64,
    /// Every event with seq ≤ head has been published before this
    /// subscription; every later one will arrive on the queue.
    pub head: u64,
    /// The `full_state` snapshot event, to send first.
    pub snapshot: String,
}

/// Ends a subscription.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    /// Subscription id.
    pub id: u64,
}

/// Pauses the conversation (takes effect between agent steps).
#[derive(Message, Clone)]
#[rtype(result = "Result<(), ActorError>")]
pub struct Pause;

/// Interrupts the current step at once and pauses.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), ActorError>")]
pub struct Interrupt;

/// Starts (or resumes) the agent loop.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), ActorError>")]
pub struct Run;

/// Merges secrets into the conversation's registry.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), ActorError>")]
pub struct UpdateSecrets {
    /// Normalized secret sources by name.
    pub secrets: Map<String, Value>,
}

/// Replaces the confirmation policy.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), ActorError>")]
pub struct SetConfirmationPolicy(pub Value);

/// Replaces the security analyzer.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), ActorError>")]
pub struct SetSecurityAnalyzer(pub Value);

/// Accepts or rejects the actions waiting for confirmation.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), ActorError>")]
pub struct RespondToConfirmation {
    /// Accept (run them) or reject.
    pub accept: bool,
    /// Rejection reason.
    pub reason: String,
}

/// Asks the agent's LLM a side question, recording nothing.
#[derive(Message, Clone)]
#[rtype(result = "Result<String, ActorError>")]
pub struct AskAgent {
    /// The question.
    pub question: String,
}

/// Replaces the agent's LLM.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), ActorError>")]
pub struct SwitchLlm(pub Value);

/// Stops the actor for good: shuts the terminal, ends subscriptions
/// (`delete`: with the "deleted" reason).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Close {
    /// Whether the conversation is being deleted.
    pub delete: bool,
}

/// Test-only fault injection (refused unless enabled in the configuration).
#[derive(Message, Clone)]
#[rtype(result = "Result<(), ActorError>")]
pub struct InjectFault {
    /// `stop` (supervised restart) or `panic` (mailbox dies, registry respawns).
    pub kind: String,
}

/// Creates a conversation (or returns the existing one with that id).
#[derive(Message, Clone)]
#[rtype(result = "Result<(Value, bool), ActorError>")]
pub struct Create {
    /// Validated request.
    pub request: StartConversationRequest,
}

/// Copies a conversation (record and events) into a new one.
#[derive(Message, Clone)]
#[rtype(result = "Result<Value, ActorError>")]
pub struct Fork {
    /// Source conversation.
    pub source: Uuid,
    /// Id of the copy (random when absent).
    pub id: Option<Uuid>,
    /// Title, kept as the tag `title` as the reference does.
    pub title: Option<String>,
    /// Tags of the copy (the source's when absent).
    pub tags: Option<serde_json::Map<String, Value>>,
    /// Start the copy with empty usage statistics.
    pub reset_metrics: bool,
}

/// The record as the live actor holds it (with the secrets that could not
/// be stored when no cipher is configured).
#[derive(Message, Clone)]
#[rtype(result = "Result<crate::model::conversation::ConversationRecord, ActorError>")]
pub struct CurrentRecord;

/// Finds the actor of a conversation, spawning it from storage if needed.
#[derive(Message, Clone)]
#[rtype(result = "Result<Option<Addr<ConversationActor>>, ActorError>")]
pub struct Lookup {
    /// Conversation id.
    pub id: Uuid,
    /// Set when a previous address turned out dead (counts a respawn).
    pub dead: bool,
}

/// Deletes a conversation; `false` when unknown.
#[derive(Message, Clone)]
#[rtype(result = "Result<bool, ActorError>")]
pub struct Delete {
    /// Conversation id.
    pub id: Uuid,
}

/// Spawns every conversation stored as running so its interrupted run is
/// recovered; returns how many.
#[derive(Message, Clone)]
#[rtype(result = "Result<usize, ActorError>")]
pub struct RecoverRunning;

/// Answered once the actor has started (and recovered, when it had to).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Loaded;

/// Stops every conversation actor (graceful shutdown).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Registry-internal: an actor stopped itself for idleness.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Evicted {
    /// Conversation id.
    pub id: Uuid,
}
