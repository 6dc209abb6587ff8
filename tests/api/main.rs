//! Integration tests: each starts the real server on a free loopback port
//! with its own data directory and talks to it over real HTTP and
//! WebSocket connections.

mod catalog;
mod conversations;
mod helpers;
mod settings;
