//! Data models shared by the actors and the HTTP layer: the reference's JSON
//! shapes, their validation, and the secret rules. No I/O.

pub mod agent;
pub mod conversation;
pub mod event;
pub mod llm;
pub mod secrets;
pub mod stats;
