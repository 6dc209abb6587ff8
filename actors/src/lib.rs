//! Actors and domain of the agent server: conversation and bash actors, the
//! sled event store, the agent loop, LLM clients and tools. No HTTP here:
//! everything is tested without a web server.

pub mod agent;
pub mod bash;
pub mod catalog;
pub mod conversation;
pub mod crypto;
pub mod hooks;
pub mod ids;
pub mod llm;
pub mod mcp;
pub mod metrics;
pub mod model;
pub mod search;
pub mod settings;
pub mod store;
pub mod time;
pub mod tools;
pub mod webhook;
