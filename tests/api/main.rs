//! Integration tests: each starts the real server on a free loopback port
//! with its own data directory and talks to it over real HTTP and
//! WebSocket connections.

mod agent;
mod bash;
mod catalog;
mod client_flows;
mod conversations;
mod examples;
mod faults;
mod files;
mod git;
mod helpers;
mod hooks;
mod hostile;
mod hostile_auth;
mod hostile_secrets;
mod llm;
mod mcp;
mod openapi;
mod ops;
mod persistence;
mod preset_tools;
mod rawwire;
mod settings;
mod subagents;
mod switch_llm;
mod webhooks;
mod websocket;
mod workspace;
