//! The bash API's domain: commands run outside any conversation, each owned
//! by a supervised [`BashCommandActor`] that records its `BashCommand` and
//! `BashOutput` events in the [`BashLog`] (sled) while it runs, and the
//! supervised [`BashRegistry`] that starts, finds and terminates them and
//! sweeps old events.
//!
//! [`start`] opens the log, finishes commands a crashed server left running,
//! applies the retention once, and starts the actors on their own thread, so
//! that command output never competes with HTTP workers. Nothing here knows
//! about HTTP or sockets: callers send messages or read the log.

pub mod command;
pub mod event_log;
pub mod messages;
pub mod model;
pub mod output;
pub mod process;
pub mod registry;

use std::path::PathBuf;
use std::sync::Arc;

use actix::prelude::*;

pub use command::BashCommandActor;
pub use event_log::BashLog;
pub use registry::BashRegistry;

use crate::metrics::Counters;
use crate::store::{Store, StoreError};

/// stderr of the final output given at start-up to a command that was
/// running when the previous server process stopped.
pub const INTERRUPTED_NOTE: &str =
    "Command interrupted: the server stopped while it was running; its output may be incomplete.";

/// Settings of the bash actors.
#[derive(Debug, Clone)]
pub struct BashConfig {
    /// Where commands without a `cwd` run, and what a relative `cwd` is
    /// resolved against (the server's working directory).
    pub default_cwd: PathBuf,
    /// Delete events older than this many seconds (`None`: keep them).
    pub retention_secs: Option<u64>,
    /// Most socket subscribers at once.
    pub max_subscribers: usize,
    /// Flush the database before acknowledging a started command.
    pub sync_durability: bool,
    /// Counters for operators.
    pub counters: Arc<Counters>,
    /// The shell (`/bin/bash`, or `/bin/sh` without bash).
    pub shell: String,
}

impl BashConfig {
    /// Settings with the reference's defaults, running in the current
    /// working directory.
    pub fn new(counters: Arc<Counters>) -> BashConfig {
        BashConfig {
            default_cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            retention_secs: None,
            max_subscribers: 50,
            sync_durability: true,
            counters,
            shell: process::shell_program().to_string(),
        }
    }
}

/// Why a bash operation failed.
#[derive(Debug, Clone, PartialEq)]
pub enum BashError {
    /// No such command.
    NotFound,
    /// The command has already finished.
    Finished,
    /// Storage failed.
    Storage(String),
    /// The actors are not available (shutting down, or a mailbox closed).
    Unavailable(String),
}

impl std::fmt::Display for BashError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BashError::NotFound => f.write_str("command not found"),
            BashError::Finished => f.write_str("command already finished"),
            BashError::Storage(m) => write!(f, "storage error: {m}"),
            BashError::Unavailable(m) => write!(f, "bash service unavailable: {m}"),
        }
    }
}

impl std::error::Error for BashError {}

impl From<StoreError> for BashError {
    fn from(e: StoreError) -> Self {
        BashError::Storage(e.to_string())
    }
}

impl From<actix::MailboxError> for BashError {
    fn from(e: actix::MailboxError) -> Self {
        BashError::Unavailable(e.to_string())
    }
}

/// Handles to the running bash service.
#[derive(Debug, Clone)]
pub struct BashService {
    /// The registry actor (start, terminate, shut down).
    pub registry: Addr<BashRegistry>,
    /// The event log (search, get, clear, subscribe).
    pub log: BashLog,
}

/// Opens the log, gives commands left running by a previous process their
/// final output, deletes events past the retention, and starts the actors
/// on a thread of their own. Must be called inside an actix system.
pub fn start(store: &Store, config: BashConfig) -> Result<BashService, StoreError> {
    let log = BashLog::open(store, config.max_subscribers)?;
    let n = log.finish_interrupted(INTERRUPTED_NOTE)?;
    if n > 0 {
        log::warn!("{n} bash command(s) were running when the server stopped; marked failed");
    }
    if let Some(secs) = config.retention_secs {
        registry::sweep_now(&log, secs);
    }
    let arbiter = Arbiter::new().handle();
    let config = Arc::new(config);
    let registry = {
        let log = log.clone();
        Supervisor::start_in_arbiter(&arbiter, move |_| BashRegistry::new(log, config))
    };
    Ok(BashService { registry, log })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::Value;

    use super::event_log::BashFilter;
    use super::messages::{StartCommand, TerminateCommand};
    use super::model::{ExecuteBashRequest, stored_json};
    use super::*;
    use crate::ids::Uuid;

    fn service() -> BashService {
        let store = Store::temporary().unwrap();
        let mut config = BashConfig::new(Arc::new(Counters::default()));
        config.sync_durability = false;
        start(&store, config).unwrap()
    }

    fn request(command: &str, timeout: i64) -> ExecuteBashRequest {
        ExecuteBashRequest {
            command: command.into(),
            cwd: None,
            timeout,
        }
    }

    async fn execute(s: &BashService, command: &str, timeout: i64) -> (Uuid, Value) {
        let started = s
            .registry
            .send(StartCommand {
                request: request(command, timeout),
                wait: true,
            })
            .await
            .unwrap()
            .unwrap();
        let json = started.result.unwrap().await.unwrap();
        (started.id, serde_json::from_str(&json).unwrap())
    }

    fn outputs(s: &BashService, id: Uuid) -> Vec<Value> {
        let f = BashFilter {
            command_id: Some(id),
            kind: Some(model::BashKind::Output),
            ..Default::default()
        };
        s.log
            .search(&f, None, 100, false, usize::MAX)
            .unwrap()
            .items
            .iter()
            .map(|r| serde_json::from_str(stored_json(r)).unwrap())
            .collect()
    }

    #[actix_rt::test]
    async fn output_is_recorded_while_running_and_returned_whole() {
        let s = service();
        let (id, out) = execute(&s, "printf a; sleep 0.4; printf b >&2; exit 4", 10).await;
        assert_eq!(out["exit_code"], 4);
        assert_eq!(out["stdout"], "a");
        assert_eq!(out["stderr"], "b");
        let outs = outputs(&s, id);
        assert!(outs.len() >= 2, "{outs:?}");
        assert_eq!(outs[0]["stdout"], "a");
        assert_eq!(outs[0]["exit_code"], Value::Null);
        for (i, o) in outs.iter().enumerate() {
            assert_eq!(o["order"], i);
        }
    }

    #[actix_rt::test]
    async fn timeouts_and_termination_stop_the_group() {
        let s = service();
        let t0 = Instant::now();
        let (_, out) = execute(&s, "sleep 30 & sleep 30; wait", 0).await;
        assert_eq!(out["exit_code"], -1);
        assert!(t0.elapsed() < Duration::from_secs(3));

        let started = s
            .registry
            .send(StartCommand {
                request: request("sleep 30", 60),
                wait: false,
            })
            .await
            .unwrap()
            .unwrap();
        let id = started.id;
        let json = s
            .registry
            .send(TerminateCommand { id })
            .await
            .unwrap()
            .unwrap();
        let out: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(out["exit_code"], -1);
        let again = s.registry.send(TerminateCommand { id }).await.unwrap();
        assert_eq!(again, Err(BashError::Finished));
        let unknown = s
            .registry
            .send(TerminateCommand { id: Uuid::new_v4() })
            .await
            .unwrap();
        assert_eq!(unknown, Err(BashError::NotFound));
    }

    #[actix_rt::test]
    async fn a_command_that_cannot_start_gets_an_error_output() {
        let s = service();
        let started = s
            .registry
            .send(StartCommand {
                request: ExecuteBashRequest {
                    command: "true".into(),
                    cwd: Some("/definitely/not/here".into()),
                    timeout: 5,
                },
                wait: true,
            })
            .await
            .unwrap()
            .unwrap();
        let out: Value = serde_json::from_str(&started.result.unwrap().await.unwrap()).unwrap();
        assert_eq!(out["exit_code"], -1);
        assert_eq!(out["order"], 0);
        assert!(
            out["stderr"]
                .as_str()
                .unwrap()
                .starts_with("Error executing command:")
        );
    }
}
