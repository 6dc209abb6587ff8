//! The HTTP layer of agent-server: settings, the actix-web application, the
//! REST routes, WebSocket sessions, authentication and CORS. Conversation
//! state lives in the actors crate; this crate only parses requests, sends
//! messages and maps replies.

pub mod app;
pub mod auth;
pub mod body_timeout;
pub mod cors;
pub mod error;
pub mod extract;
pub mod files;
pub mod openapi;
pub mod ops;
pub mod routes;
pub mod settings;
pub mod state;
pub mod ws;
