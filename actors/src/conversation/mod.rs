//! Conversations as actors: one supervised [`ConversationActor`] per live
//! conversation — the single writer of its record and event log — and the
//! [`ConversationRegistry`] that finds, spawns, respawns and deletes them.
//!
//! HTTP handlers and WebSocket sessions talk to these actors only through
//! messages; they never share a lock with them.

pub mod actor;
mod fallback;
pub mod hooks;
pub mod mcp;
pub mod messages;
pub mod persist;
pub mod publisher;
pub mod registry;
pub mod run;
pub mod subagent;
mod switch;
pub mod webhooks;

use std::sync::Arc;

pub use actor::ConversationActor;
pub use registry::ConversationRegistry;

use crate::crypto::Cipher;
use crate::model::conversation::FieldError;
use crate::store::{Store, StoreError};

/// When an appended event counts as acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// After it is on disk (fsync, grouped across concurrent appends).
    Sync,
    /// As soon as it is in the database; sled flushes in the background
    /// (up to ~0.5 s of events can be lost on a crash).
    Relaxed,
}

/// Settings the conversation actors need.
#[derive(Debug, Clone)]
pub struct ConversationConfig {
    /// Directory of per-conversation scratch folders, as configured (relative
    /// to the server's working directory unless absolute).
    pub conversations_path: String,
    /// Durability policy.
    pub durability: Durability,
    /// Most WebSocket subscribers per conversation.
    pub max_subscribers: usize,
    /// Frames buffered per subscriber before it is dropped as too slow.
    pub subscriber_queue: usize,
    /// Most agent runs at once across the server.
    pub max_concurrent_runs: usize,
    /// Soft no-output timeout of the terminal tool, seconds.
    pub terminal_no_change_timeout_secs: u64,
    /// Longest wait for one MCP tool call, seconds.
    pub mcp_tool_timeout_secs: u64,
    /// Longest wait for an agent's MCP servers to start and list their tools, seconds.
    pub mcp_startup_timeout_secs: u64,
    /// Allow the fault-injection messages (tests only).
    pub fault_injection: bool,
    /// Stop an idle conversation actor after this long without activity or
    /// subscribers (None: never).
    pub idle_eviction_secs: Option<u64>,
}

impl Default for ConversationConfig {
    fn default() -> Self {
        ConversationConfig {
            conversations_path: "workspace/conversations".into(),
            durability: Durability::Sync,
            max_subscribers: 50,
            subscriber_queue: 1024,
            max_concurrent_runs: 10,
            terminal_no_change_timeout_secs: 30,
            mcp_tool_timeout_secs: 300,
            mcp_startup_timeout_secs: 30,
            fault_injection: false,
            idle_eviction_secs: None,
        }
    }
}

/// Everything a conversation actor depends on, shared read-only.
#[derive(Debug, Clone)]
pub struct Deps {
    /// The database.
    pub store: Store,
    /// Secret sealing key, when configured.
    pub cipher: Option<Arc<Cipher>>,
    /// Settings.
    pub config: Arc<ConversationConfig>,
    /// HTTP client for LLM calls.
    pub http: reqwest::Client,
    /// Admission control for agent runs.
    pub run_slots: Arc<tokio::sync::Semaphore>,
    /// Counters for operators.
    pub counters: Arc<crate::metrics::Counters>,
    /// Configured webhooks (empty when none).
    pub webhooks: crate::webhook::Webhooks,
}

/// Why a conversation operation failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ActorError {
    /// No such conversation.
    NotFound,
    /// A run is already in progress (or similar state conflict).
    Conflict(String),
    /// The request cannot be applied.
    BadRequest(String),
    /// The request body is invalid.
    Invalid(FieldError),
    /// The conversation has as many subscribers as allowed.
    TooManySubscribers,
    /// The conversation's actor is not available right now (it crashed or is restarting).
    Unavailable(String),
    /// The actor was evicted for idleness just before this message arrived;
    /// looking the conversation up again revives it from the store.
    Evicted,
    /// Storage failed.
    Storage(String),
    /// An upstream service (the LLM) failed.
    Upstream(String),
    /// A failure the reference answers with a bare 500 carrying the exception's text
    /// (e.g. an agent whose tools cannot be set up).
    Internal(String),
}

impl std::fmt::Display for ActorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ActorError::NotFound => f.write_str("conversation not found"),
            ActorError::Conflict(m) | ActorError::BadRequest(m) => f.write_str(m),
            ActorError::Invalid(e) => write!(f, "{}: {}", e.loc.join("."), e.msg),
            ActorError::TooManySubscribers => {
                f.write_str("Too many connections for this conversation")
            }
            ActorError::Unavailable(m) => write!(f, "conversation unavailable: {m}"),
            ActorError::Evicted => f.write_str("conversation actor was evicted; look it up again"),
            ActorError::Storage(m) => write!(f, "storage error: {m}"),
            ActorError::Upstream(m) => write!(f, "upstream error: {m}"),
            ActorError::Internal(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ActorError {}

impl From<StoreError> for ActorError {
    fn from(e: StoreError) -> Self {
        ActorError::Storage(e.to_string())
    }
}

impl From<actix::MailboxError> for ActorError {
    fn from(e: actix::MailboxError) -> Self {
        ActorError::Unavailable(e.to_string())
    }
}
