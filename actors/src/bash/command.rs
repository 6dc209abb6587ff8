//! One bash command, owned by one supervised actor from spawn to final
//! output.
//!
//! The actor reads stdout and stderr concurrently as streams of its own
//! context (so a slow store holds back the pipes, never memory), and records
//! output while the command runs: a chunk `BashOutput` (`exit_code: null`)
//! whenever 64 KiB are buffered or, every 100 ms, whatever arrived since the
//! last chunk; the final `BashOutput` carries the rest and the exit code.
//! Orders are 0, 1, 2… and every piece holds at most 1 MiB, so a client
//! concatenating the pieces gets the output exactly once.
//!
//! Stopping (timeout, terminate, shutdown) sends SIGTERM to the command's
//! process group and SIGKILL a second later, so children die too; the shell
//! is reaped by its wait future. When the shell exits while a background
//! child still holds the pipes, the output is cut after a short grace.
//!
//! A failure to record output stops the actor; `restarting()` kills the
//! group and records a final output, so a command never stays running.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::stream;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::oneshot;

use super::event_log::{BashLog, ProcessMark, Running};
use super::messages::{CommandFinished, StopForTest, StopReason, Terminate};
use super::model::OutputEvent;
use super::output::{OutputBuffers, Piece, Tail};
use super::registry::BashRegistry;
use super::{BashConfig, BashError, process};
use crate::ids::Uuid;
use crate::metrics::Counters;
use crate::store::StoreError;

/// Buffered bytes that trigger a chunk at once.
pub const COALESCE_BYTES: usize = 64 << 10;
/// Longest wait before buffered output is recorded.
pub const COALESCE_INTERVAL: Duration = Duration::from_millis(100);
/// Between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(1);
/// How long output is still read after the shell exited while something
/// else holds its pipes open.
const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// After SIGKILL, how long to wait for the pipes to close.
const KILL_DRAIN: Duration = Duration::from_millis(200);
/// Bytes read from a pipe at a time.
const READ_SIZE: usize = 8 << 10;
/// stderr added to the final output when the server shuts down.
const SHUTDOWN_NOTE: &str = "Command terminated: the server is shutting down.";

/// A piece of a pipe.
#[derive(Debug)]
pub struct PipeData {
    stderr: bool,
    data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Running,
    Finished,
}

/// What the actor was started with.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// Command id (= its `BashCommand` event id).
    pub id: Uuid,
    /// Shell code.
    pub command: String,
    /// Resolved working directory.
    pub cwd: PathBuf,
    /// Time before it is terminated.
    pub timeout: Duration,
}

/// The actor owning one running command.
pub struct BashCommandActor {
    spec: CommandSpec,
    log: BashLog,
    config: Arc<BashConfig>,
    registry: Option<Addr<BashRegistry>>,
    phase: Phase,
    pgid: i32,
    buffers: OutputBuffers,
    tail_out: Tail,
    tail_err: Tail,
    next_order: u64,
    exit: Option<i64>,
    open_streams: u8,
    stop: Option<StopReason>,
    stopped_while_running: bool,
    kill_sent: bool,
    drain_expired: bool,
    waiters: Vec<oneshot::Sender<Arc<str>>>,
    handles: Vec<SpawnHandle>,
    final_json: Option<Arc<str>>,
}

impl BashCommandActor {
    /// An actor for a command whose `BashCommand` is already recorded;
    /// `waiter` gets the final `BashOutput`.
    pub fn new(
        spec: CommandSpec,
        log: BashLog,
        config: Arc<BashConfig>,
        registry: Option<Addr<BashRegistry>>,
        waiter: Option<oneshot::Sender<Arc<str>>>,
    ) -> BashCommandActor {
        BashCommandActor {
            spec,
            log,
            config,
            registry,
            phase: Phase::Starting,
            pgid: 0,
            buffers: OutputBuffers::default(),
            tail_out: Tail::default(),
            tail_err: Tail::default(),
            next_order: 0,
            exit: None,
            open_streams: 0,
            stop: None,
            stopped_while_running: false,
            kill_sent: false,
            drain_expired: false,
            waiters: waiter.into_iter().collect(),
            handles: Vec::new(),
            final_json: None,
        }
    }

    fn launch(&mut self, ctx: &mut Context<Self>) -> Result<(), String> {
        if !self.spec.cwd.is_dir() {
            return Err(format!(
                "Error executing command: working directory '{}' does not exist or is not a directory",
                self.spec.cwd.display()
            ));
        }
        let mut child = process::spawn(&self.config.shell, &self.spec.command, &self.spec.cwd)
            .map_err(|e| format!("Error executing command: {e}"))?;
        self.pgid = child.id().map(|p| p as i32).unwrap_or(0);
        if let Some(start_ticks) = process::start_ticks(self.pgid) {
            let mark = ProcessMark {
                pgid: self.pgid,
                start_ticks,
            };
            match self.log.mark_process(&self.spec.id, mark) {
                Ok(()) if self.config.sync_durability => {
                    let store = self.log.store().clone();
                    ctx.spawn(
                        async move {
                            if let Err(e) = store.flush().await {
                                log::warn!("bash: flush failed: {e}");
                            }
                        }
                        .into_actor(self),
                    );
                }
                Ok(()) => {}
                Err(e) => log::warn!("bash command {}: {e}", self.spec.id.simple()),
            }
        }
        if let Some(out) = child.stdout.take() {
            self.handles.push(ctx.add_stream(pipe_stream(out, false)));
            self.open_streams += 1;
        }
        if let Some(err) = child.stderr.take() {
            self.handles.push(ctx.add_stream(pipe_stream(err, true)));
            self.open_streams += 1;
        }
        // The wait future owns the child: it reaps the shell, and dropping
        // it (on a restart) kills the shell.
        ctx.spawn(
            async move { child.wait().await }
                .into_actor(self)
                .map(|status, act, ctx| {
                    let code = match status {
                        Ok(s) => exit_code(s),
                        Err(e) => {
                            log::warn!("bash command {}: wait failed: {e}", act.spec.id.simple());
                            -1
                        }
                    };
                    act.on_exit(code, ctx);
                }),
        );
        let ticker = ctx.run_interval(COALESCE_INTERVAL, |act, ctx| {
            if act.phase == Phase::Running && !act.buffers.is_empty() {
                act.emit_or_fail(None, ctx);
            }
        });
        self.handles.push(ticker);
        ctx.run_later(self.spec.timeout, |act, ctx| {
            act.begin_stop(StopReason::Timeout, ctx)
        });
        Ok(())
    }

    fn on_exit(&mut self, code: i64, ctx: &mut Context<Self>) {
        self.exit = Some(code);
        if self.open_streams > 0 {
            ctx.run_later(DRAIN_GRACE, |act, ctx| {
                // While stopping, the kill step decides when to give up.
                if act.stop.is_none() || act.kill_sent {
                    act.drain_expired = true;
                    act.maybe_finish(ctx);
                }
            });
        }
        self.maybe_finish(ctx);
    }

    fn begin_stop(&mut self, reason: StopReason, ctx: &mut Context<Self>) {
        if self.phase != Phase::Running || self.stop.is_some() {
            return;
        }
        self.stop = Some(reason);
        self.stopped_while_running = self.exit.is_none();
        process::signal_group(self.pgid, libc::SIGTERM);
        ctx.run_later(KILL_GRACE, |act, ctx| {
            if process::group_alive(act.pgid) {
                process::signal_group(act.pgid, libc::SIGKILL);
            }
            act.kill_sent = true;
            ctx.run_later(KILL_DRAIN, |act, ctx| {
                act.drain_expired = true;
                act.maybe_finish(ctx);
            });
        });
    }

    fn maybe_finish(&mut self, ctx: &mut Context<Self>) {
        if self.phase != Phase::Running || self.exit.is_none() {
            return;
        }
        if self.open_streams > 0 && !self.drain_expired {
            return;
        }
        self.finish(ctx);
    }

    fn finish(&mut self, ctx: &mut Context<Self>) {
        for h in self.handles.drain(..) {
            ctx.cancel_future(h);
        }
        let code = if self.stop.is_some() && self.stopped_while_running {
            -1
        } else {
            self.exit.unwrap_or(-1)
        };
        if self.stop == Some(StopReason::Shutdown) {
            let sep: &[u8] = if self.buffers.stderr.is_empty() {
                b""
            } else {
                b"\n"
            };
            self.buffers.stderr.push(sep);
            self.buffers.stderr.push(SHUTDOWN_NOTE.as_bytes());
        }
        if self.emit_or_fail(Some(code), ctx) {
            self.done();
        }
    }

    /// Records what can be recorded; on a storage failure stops the actor
    /// (the supervisor restarts it and `restarting()` cleans up) and
    /// returns false.
    fn emit_or_fail(&mut self, exit: Option<i64>, ctx: &mut Context<Self>) -> bool {
        match self.emit(exit) {
            Ok(()) => true,
            Err(e) => {
                log::error!(
                    "bash command {}: output could not be recorded: {e}",
                    self.spec.id.simple()
                );
                ctx.stop();
                false
            }
        }
    }

    /// Records buffered output: whole pieces only while running; with an
    /// exit code, everything, the last piece carrying the code.
    fn emit(&mut self, exit: Option<i64>) -> Result<(), StoreError> {
        loop {
            match self.buffers.next_piece(exit.is_some()) {
                Some(piece) => {
                    let last = exit.is_some() && self.buffers.is_empty();
                    self.record(piece, if last { exit } else { None })?;
                    if last {
                        return Ok(());
                    }
                }
                None => {
                    if exit.is_some() {
                        let empty = Piece {
                            stdout: None,
                            stderr: None,
                        };
                        self.record(empty, exit)?;
                    }
                    return Ok(());
                }
            }
        }
    }

    fn record(&mut self, piece: Piece, exit: Option<i64>) -> Result<(), StoreError> {
        self.tail_out.push(piece.stdout.as_deref().unwrap_or(""));
        self.tail_err.push(piece.stderr.as_deref().unwrap_or(""));
        let mut event = OutputEvent {
            id: Uuid::new_v4(),
            micros: crate::time::now_micros(),
            command_id: self.spec.id,
            order: self.next_order,
            exit_code: exit,
            stdout: piece.stdout,
            stderr: piece.stderr,
        };
        let json = event.to_json();
        let running = if exit.is_some() {
            Running::Finish
        } else {
            Running::Keep
        };
        self.log.append(&event.header(), &json, running)?;
        self.next_order += 1;
        if exit.is_some() {
            // Whoever waits for the result gets the final output as the
            // reference would have recorded it (see `Tail`).
            event.stdout = self.tail_out.text();
            event.stderr = self.tail_err.text();
            self.final_json = Some(Arc::from(event.to_json()));
        }
        Ok(())
    }

    /// The command has its final output: tell whoever waits.
    fn done(&mut self) {
        if self.phase == Phase::Running {
            Counters::sub(&self.config.counters.bash_running, 1);
        }
        self.phase = Phase::Finished;
        if let Some(json) = &self.final_json {
            for w in self.waiters.drain(..) {
                let _ = w.send(json.clone());
            }
        }
        self.waiters.clear();
        if let Some(r) = &self.registry {
            r.do_send(CommandFinished { id: self.spec.id });
        }
    }

    /// Gives up on a command whose output cannot be followed any more:
    /// kills its group and records a final output if the store allows.
    fn abandon(&mut self, why: &str) {
        process::signal_group(self.pgid, libc::SIGKILL);
        self.buffers = OutputBuffers::default();
        self.buffers.stderr.push(why.as_bytes());
        if let Err(e) = self.emit(Some(-1)) {
            log::error!(
                "bash command {}: final output could not be recorded ({e}); it will be marked failed at the next start",
                self.spec.id.simple()
            );
        }
        self.done();
    }

    fn fail_to_start(&mut self, message: String) {
        log::info!("bash command {}: {message}", self.spec.id.simple());
        self.buffers.stderr.push(message.as_bytes());
        if let Err(e) = self.emit(Some(-1)) {
            log::error!(
                "bash command {}: final output could not be recorded: {e}",
                self.spec.id.simple()
            );
        }
        self.done();
    }
}

/// The exit code as the reference reports it: the status, or minus the
/// signal that killed the shell.
fn exit_code(status: std::process::ExitStatus) -> i64 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => i64::from(c),
        (None, Some(sig)) => -i64::from(sig),
        (None, None) => -1,
    }
}

fn pipe_stream<R>(reader: R, stderr: bool) -> impl futures_util::Stream<Item = PipeData>
where
    R: AsyncRead + Unpin + 'static,
{
    stream::unfold(
        (reader, vec![0u8; READ_SIZE]),
        move |(mut reader, mut buf)| async move {
            match reader.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    let data = buf[..n].to_vec();
                    Some((PipeData { stderr, data }, (reader, buf)))
                }
                Err(e) => {
                    log::warn!("bash: reading command output failed: {e}");
                    None
                }
            }
        },
    )
}

impl Actor for BashCommandActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // After a restart a finished command just waits to be dropped.
        if self.phase != Phase::Starting {
            return;
        }
        self.phase = Phase::Running;
        Counters::add(&self.config.counters.bash_running, 1);
        if let Err(message) = self.launch(ctx) {
            self.fail_to_start(message);
        }
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        // Reached when the actor system stops under a running command (the
        // server exiting); a clean shutdown terminates commands first.
        if self.phase == Phase::Running {
            self.abandon(SHUTDOWN_NOTE);
        }
    }
}

impl Supervised for BashCommandActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        if self.phase == Phase::Running {
            log::warn!(
                "bash command {}: actor restarted; the command is terminated",
                self.spec.id.simple()
            );
            Counters::add(&self.config.counters.bash_restarts, 1);
            self.handles.clear();
            self.abandon("Command terminated: its output could not be recorded.");
        }
    }
}

impl StreamHandler<PipeData> for BashCommandActor {
    fn handle(&mut self, piece: PipeData, ctx: &mut Context<Self>) {
        if self.phase != Phase::Running {
            return;
        }
        if piece.stderr {
            self.buffers.stderr.push(&piece.data);
        } else {
            self.buffers.stdout.push(&piece.data);
        }
        if self.buffers.len() >= COALESCE_BYTES {
            self.emit_or_fail(None, ctx);
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        self.open_streams = self.open_streams.saturating_sub(1);
        self.maybe_finish(ctx);
    }
}

impl Handler<StopForTest> for BashCommandActor {
    type Result = ();

    fn handle(&mut self, _: StopForTest, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<Terminate> for BashCommandActor {
    type Result = ResponseFuture<Result<Arc<str>, BashError>>;

    fn handle(&mut self, msg: Terminate, ctx: &mut Context<Self>) -> Self::Result {
        if self.phase == Phase::Finished {
            return Box::pin(async { Err(BashError::Finished) });
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        self.begin_stop(msg.reason, ctx);
        Box::pin(async move {
            rx.await
                .map_err(|_| BashError::Unavailable("the command ended without a result".into()))
        })
    }
}
