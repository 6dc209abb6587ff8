//! The bash registry: records each new command's `BashCommand`, starts the
//! supervised actor that owns it, finds running commands to terminate them,
//! terminates them all at shutdown, and sweeps events past the retention.
//!
//! It holds addresses only, never command state, and never waits on a
//! command while handling a message (replies that wait are futures).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::command::{BashCommandActor, CommandSpec, KILL_GRACE};
use super::event_log::{BashLog, CommandState, Running, end};
use super::messages::*;
use super::model::{RecordHeader, command_json};
use super::{BashConfig, BashError};
use crate::ids::Uuid;
use crate::metrics::Counters;

/// Longest timeout honoured (about ten years); larger values mean "never".
const MAX_TIMEOUT_SECS: i64 = 315_360_000;

/// Deletes events older than `retention_secs` now (blocking).
pub fn sweep_now(log: &BashLog, retention_secs: u64) {
    let span = i64::try_from(retention_secs.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
    let cutoff = crate::time::now_micros().saturating_sub(span);
    match log.sweep_older_than(cutoff) {
        Ok(0) => {}
        Ok(n) => log::info!("deleted {n} bash event(s) older than {retention_secs} s"),
        Err(e) => log::warn!("bash event retention sweep failed: {e}"),
    }
}

/// Registry of running bash commands.
pub struct BashRegistry {
    log: BashLog,
    config: Arc<BashConfig>,
    running: HashMap<Uuid, Addr<BashCommandActor>>,
    sweeping: Arc<AtomicBool>,
    closing: bool,
}

impl BashRegistry {
    /// A registry recording into `log`.
    pub fn new(log: BashLog, config: Arc<BashConfig>) -> BashRegistry {
        BashRegistry {
            log,
            config,
            running: HashMap::new(),
            sweeping: Arc::new(AtomicBool::new(false)),
            closing: false,
        }
    }

    /// Starts a sweep off the actor thread unless one is under way.
    fn sweep(&self, retention_secs: u64) {
        if self.sweeping.swap(true, Ordering::SeqCst) {
            return;
        }
        let log = self.log.clone();
        let flag = self.sweeping.clone();
        tokio::task::spawn_blocking(move || {
            sweep_now(&log, retention_secs);
            flag.store(false, Ordering::SeqCst);
        });
    }
}

impl Actor for BashRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The first sweep ran at start-up (see `bash::start`).
        if let Some(secs) = self.config.retention_secs {
            let every = Duration::from_secs((secs / 2).max(60));
            ctx.run_interval(every, move |act, _| act.sweep(secs));
        }
    }
}

impl Supervised for BashRegistry {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        log::warn!("bash registry restarting");
        Counters::add(&self.config.counters.registry_restarts, 1);
        self.running.retain(|_, a| a.connected());
    }
}

impl Handler<StartCommand> for BashRegistry {
    type Result = ResponseFuture<Result<Started, BashError>>;

    fn handle(&mut self, msg: StartCommand, ctx: &mut Context<Self>) -> Self::Result {
        if self.closing {
            return Box::pin(async {
                Err(BashError::Unavailable("the server is shutting down".into()))
            });
        }
        let request = msg.request;
        let id = Uuid::new_v4();
        let micros = crate::time::now_micros();
        let json = command_json(&id, &request, micros);
        if let Err(e) = self
            .log
            .append(&RecordHeader::command(id, micros), &json, Running::Start)
        {
            return Box::pin(async move { Err(e.into()) });
        }
        Counters::add(&self.config.counters.bash_commands, 1);
        let cwd = match request.cwd.as_deref() {
            None | Some("") => self.config.default_cwd.clone(),
            Some(dir) => self.config.default_cwd.join(dir),
        };
        let spec = CommandSpec {
            id,
            command: request.command,
            cwd,
            timeout: Duration::from_secs(request.timeout.clamp(0, MAX_TIMEOUT_SECS) as u64),
        };
        let (tx, rx) = if msg.wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let actor = BashCommandActor::new(
            spec,
            self.log.clone(),
            self.config.clone(),
            Some(ctx.address()),
            tx,
        );
        let addr = Supervisor::start(move |_| actor);
        self.running.insert(id, addr);
        let started = Started {
            id,
            command: json,
            result: rx,
        };
        let store = self
            .config
            .sync_durability
            .then(|| self.log.store().clone());
        Box::pin(async move {
            // Acknowledge a start only once it would survive a crash, so
            // that recovery can give it a final output.
            if let Some(store) = store
                && let Err(e) = store.flush().await
            {
                log::warn!("bash: flush failed: {e}");
            }
            Ok(started)
        })
    }
}

impl Handler<TerminateCommand> for BashRegistry {
    type Result = ResponseFuture<Result<Arc<str>, BashError>>;

    fn handle(&mut self, msg: TerminateCommand, _ctx: &mut Context<Self>) -> Self::Result {
        if let Some(addr) = self.running.get(&msg.id) {
            let fut = addr.send(Terminate {
                reason: StopReason::Terminated,
            });
            return Box::pin(async move { fut.await? });
        }
        let state = self.log.command_state(&msg.id);
        Box::pin(async move {
            match state? {
                CommandState::Unknown => Err(BashError::NotFound),
                // Recorded as running but without an actor: only possible
                // while start-up recovery has not run, which it always has.
                CommandState::Running | CommandState::Finished => Err(BashError::Finished),
            }
        })
    }
}

impl Handler<InjectCommandFault> for BashRegistry {
    type Result = Result<(), BashError>;

    fn handle(&mut self, msg: InjectCommandFault, _ctx: &mut Context<Self>) -> Self::Result {
        let addr = self.running.get(&msg.id).ok_or(BashError::NotFound)?;
        log::warn!(
            "bash command {}: injected fault: stopping its actor",
            msg.id.simple()
        );
        addr.do_send(StopForTest);
        Ok(())
    }
}

impl Handler<CommandFinished> for BashRegistry {
    type Result = ();

    fn handle(&mut self, msg: CommandFinished, _ctx: &mut Context<Self>) {
        self.running.remove(&msg.id);
    }
}

impl Handler<ShutdownCommands> for BashRegistry {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: ShutdownCommands, _ctx: &mut Context<Self>) -> Self::Result {
        self.closing = true;
        let stops: Vec<_> = self
            .running
            .values()
            .map(|a| {
                a.send(Terminate {
                    reason: StopReason::Shutdown,
                })
            })
            .collect();
        let log = self.log.clone();
        Box::pin(async move {
            let all = futures_util::future::join_all(stops);
            let limit = KILL_GRACE + Duration::from_secs(2);
            if tokio::time::timeout(limit, all).await.is_err() {
                log::warn!("bash: some commands did not stop in time");
            }
            log.close_subscribers(end::SHUTDOWN);
            if let Err(e) = log.store().flush().await {
                log::warn!("bash: final flush failed: {e}");
            }
        })
    }
}
