//! Messages of the bash registry and command actors. Each is a small struct
//! whose result is `Result<_, BashError>` (or nothing).

use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::oneshot;

use super::BashError;
use super::model::ExecuteBashRequest;
use crate::ids::Uuid;

/// Starts a command; replies once its `BashCommand` is recorded.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Started, BashError>")]
pub struct StartCommand {
    /// The request.
    pub request: ExecuteBashRequest,
    /// Also hand back a receiver for the final `BashOutput`.
    pub wait: bool,
}

/// Reply to [`StartCommand`].
#[derive(Debug)]
pub struct Started {
    /// The command id.
    pub id: Uuid,
    /// The `BashCommand` JSON.
    pub command: String,
    /// The final `BashOutput` JSON, when asked for.
    pub result: Option<oneshot::Receiver<Arc<str>>>,
}

/// Terminates a running command (TERM, then KILL after a second, to its
/// whole process group); replies with its final `BashOutput`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Arc<str>, BashError>")]
pub struct TerminateCommand {
    /// The command id.
    pub id: Uuid,
}

/// Sent by a command actor once its final output is recorded.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct CommandFinished {
    /// The command id.
    pub id: Uuid,
}

/// Terminates every running command and closes socket subscriptions
/// (server shutdown).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ShutdownCommands;

/// Why a running command is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Its timeout elapsed.
    Timeout,
    /// A client asked for it.
    Terminated,
    /// The server is shutting down.
    Shutdown,
}

/// Stops a command actor's process group; replies with the final output.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Arc<str>, BashError>")]
pub struct Terminate {
    /// Why.
    pub reason: StopReason,
}

/// Test-only: makes a running command's actor stop (a supervised restart,
/// which records the command as terminated). The HTTP layer only sends it
/// when fault injection is enabled.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), BashError>")]
pub struct InjectCommandFault {
    /// The command id.
    pub id: Uuid,
}

/// The same, delivered to the command's actor.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct StopForTest;
