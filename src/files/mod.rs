//! File-system and git helpers behind the file, git and workspace routes:
//! path rules, the atomic streaming upload writer, the stored-zip writer for
//! trajectory downloads and the git runner.
//!
//! Nothing here knows about HTTP requests; every function that touches the
//! disk or runs a process is either blocking (and called from
//! `web::block`/`spawn_blocking` by the routes) or async on tokio's process
//! support. No function here logs file contents or secrets.

pub mod atomic;
pub mod git;
pub mod paths;
pub mod stream;
pub mod trajectory;
pub mod zip;
