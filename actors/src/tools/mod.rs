//! The agent's tools: what the LLM is offered (`catalog`, `preset_schemas`), the system
//! prompt, and the executors — `terminal` (a persistent shell in a supervised actor),
//! `file_editor`, `task_tracker`, and the presets' `apply_patch`, the Gemini file tools
//! (`gemini`), `glob`/`grep` (`search`) and `planning_file_editor` (`planning`); the
//! sub-agent tool `task` is described here (`task`, `agent_types`) and run by the
//! conversation.
//! built-in `switch_llm`'s texts are in `switch_llm`.

pub mod agent_types;
pub mod apply_patch;
pub mod catalog;
pub mod content;
pub mod delegate;
pub mod file_editor;
pub mod gemini;
pub mod paths;
pub mod planning;
pub mod preset_schemas;
pub mod prompt;
pub mod pty;
pub mod search;
pub mod switch_llm;
pub mod task;
pub mod task_tracker;
pub mod terminal;
