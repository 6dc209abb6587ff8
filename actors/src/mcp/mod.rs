//! MCP (Model Context Protocol) support: the client ([`client`]: sessions
//! over stdio, streamable HTTP and SSE, and the probe behind
//! `POST /api/mcp/test`), an agent's `mcp_config` ([`config`]), and the
//! shapes MCP tools take inside a conversation ([`tools`]: names, LLM
//! schemas, `MCPToolDefinition`, `MCPToolAction` / `MCPToolObservation`).
//!
//! Conversations own their sessions (see `conversation::mcp`); nothing here
//! keeps global state.

pub mod client;
pub mod config;
pub mod tools;
