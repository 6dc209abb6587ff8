//! The agent's tools: what the LLM is offered (`catalog`), the system
//! prompt, and the executors — `terminal` (a persistent shell in a
//! supervised actor), `file_editor`, `task_tracker`.

pub mod catalog;
pub mod content;
pub mod file_editor;
pub mod prompt;
pub mod pty;
pub mod task_tracker;
pub mod terminal;
