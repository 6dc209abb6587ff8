//! The agent's view of a conversation: turning stored events into LLM
//! messages, rendering observations for the model, and detecting stuck
//! loops. Pure functions over events; the conversation actor drives the
//! loop itself (see `conversation/run.rs`).

pub mod condense;
pub mod security;
pub mod skills;
pub mod stuck;
pub mod view;
