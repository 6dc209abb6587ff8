//! MCP tools inside a conversation: the actor starts the servers of its
//! agent's `mcp_config`, lists their tools, offers them to the LLM after the
//! agent's own tools (before `finish` and `think`), records them in the
//! `SystemPromptEvent`, runs calls through them and closes the sessions
//! with the conversation.
//!
//! When, as in the reference (whose agent is set up by the first
//! `send_message`): the first user message of a new agent waits for the
//! servers, and is refused with a 500 (nothing recorded) when they cannot
//! be set up within `conversations.mcp_startup_timeout_seconds`; later
//! messages queue behind it in order. A conversation loaded again (server
//! restart, eviction) starts its servers at its next run's first step; a
//! failure there ends the run with a `ConversationErrorEvent`.
//!
//! Never blocking the mailbox: set-up and calls are spawned futures; a call
//! is bounded by `conversations.mcp_tool_timeout_seconds`, cancelled with
//! the step (interrupt, close), and answers the LLM with an error
//! observation when the server fails, dies or hangs. A dead server is
//! started again by the next call to one of its tools. Sessions are closed
//! (a stdio server's process group killed) on delete, eviction and
//! shutdown. Configs hold secrets: nothing here logs them.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use super::ActorError;
use super::actor::ConversationActor;
use super::run::PendingAction;
use crate::ids::Uuid;
use crate::llm::ToolSpec;
use crate::mcp::client::{Failure, FailureKind, Session};
use crate::mcp::config::{self, ServerConfig};
use crate::mcp::tools::{self, MAX_TOOLS, McpTool};
use crate::model::conversation::SendMessageRequest;
use crate::tools::catalog::{self, ParsedCall};

/// Something waiting for the MCP servers to be set up.
enum Waiter {
    /// A user message, recorded (or refused) once they are.
    Message {
        message: SendMessageRequest,
        reply: oneshot::Sender<Result<(), ActorError>>,
    },
    /// A run's step, taken again once they are.
    Step { generation: u64 },
}

/// The MCP servers and tools of one conversation actor.
#[derive(Default)]
pub struct McpState {
    /// The configured servers, as last set up (variables expanded).
    servers: Vec<ServerConfig>,
    /// Their sessions, by server index (`None`: failed to start).
    sessions: Vec<Option<Arc<Session>>>,
    /// The tools, once listed.
    tools: Option<Arc<Vec<McpTool>>>,
    /// A set-up is running; who waits for it, in arrival order.
    waiting: Option<Vec<Waiter>>,
}

impl McpState {
    /// Forgets a set-up in flight (the actor restarted, its futures are
    /// gone); its waiters are told so by their dropped channels. Sessions
    /// and tools stay.
    pub fn forget_pending(&mut self) {
        self.waiting = None;
    }

    /// No set-up is running (nothing waits for one).
    pub fn is_idle(&self) -> bool {
        self.waiting.is_none()
    }

    /// Takes every session, to close them.
    pub fn take_sessions(&mut self) -> Vec<Arc<Session>> {
        std::mem::take(&mut self.sessions)
            .into_iter()
            .flatten()
            .collect()
    }
}

/// Closes sessions politely, all at once (each within a few seconds).
pub async fn close_sessions(sessions: Vec<Arc<Session>>) {
    futures_util::future::join_all(sessions.iter().map(|s| s.shutdown())).await;
}

/// Why the servers could not be set up.
struct SetupError {
    timeout: bool,
    /// The config itself is malformed (a client mistake, answered 400).
    malformed: bool,
    text: String,
}

impl SetupError {
    fn failed(text: impl Into<String>) -> SetupError {
        SetupError {
            timeout: false,
            malformed: false,
            text: text.into(),
        }
    }

    /// The exception name the reference would raise.
    fn code(&self) -> &'static str {
        if self.timeout {
            "MCPTimeoutError"
        } else {
            "MCPError"
        }
    }
}

/// What a successful set-up produced.
struct SetUp {
    servers: Vec<ServerConfig>,
    sessions: Vec<Option<Session>>,
    /// (server index, listed `Tool` object), in server then list order.
    listed: Vec<(usize, Value)>,
}

/// Python's `repr` of a set of names, as the reference prints duplicates.
fn py_set(names: &[String]) -> String {
    let quoted: Vec<String> = names
        .iter()
        .map(|n| crate::tools::catalog::py_repr(&Value::String(n.clone())))
        .collect();
    format!("{{{}}}", quoted.join(", "))
}

/// Starts every server and lists its tools, within `deadline` overall. One
/// server must work; of several, those that fail are left out (logged), as
/// the reference's multi-server client skips them.
async fn set_up(
    id: Uuid,
    mcp_config: Map<String, Value>,
    secrets: Map<String, Value>,
    http: reqwest::Client,
    deadline: Duration,
) -> Result<SetUp, SetupError> {
    let work = async {
        let values = super::run::resolve_secrets(&http, &secrets).await;
        let lookup = |name: &str| {
            values
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let expanded = config::expand(&mcp_config, &lookup);
        let servers = config::parse(&expanded).map_err(|text| SetupError {
            malformed: true,
            ..SetupError::failed(text)
        })?;
        let started = futures_util::future::join_all(servers.iter().map(|s| {
            let http = http.clone();
            // Without the servers' stderr: the text reaches the log, and a
            // server may print what it was given.
            async move {
                let session = Session::start(&s.server, &http).await?;
                let tools = session.list_tools().await?;
                Ok::<_, Failure>((session, tools))
            }
        }))
        .await;
        let mut sessions = Vec::with_capacity(servers.len());
        let mut listed = vec![];
        let mut failures: Vec<(String, Failure)> = vec![];
        for (i, (server, outcome)) in servers.iter().zip(started).enumerate() {
            match outcome {
                Ok((session, tools)) => {
                    listed.extend(tools.into_iter().map(|t| (i, t)));
                    sessions.push(Some(session));
                }
                Err(f) => {
                    log::warn!(
                        "conversation {id}: MCP server '{}' failed to start ({})",
                        server.name,
                        f.kind.as_str()
                    );
                    failures.push((server.name.clone(), f));
                    sessions.push(None);
                }
            }
        }
        if sessions.iter().all(Option::is_none) {
            let reasons: Vec<String> = failures
                .iter()
                .map(|(name, f)| {
                    if servers.len() > 1 {
                        format!("{name}: {}", f.error)
                    } else {
                        f.error.clone()
                    }
                })
                .collect();
            let lead = if servers.len() > 1 {
                "MCP Connection Failure: all MCP servers failed to connect"
            } else {
                "MCP Connection Failure"
            };
            let timeout = failures.iter().all(|(_, f)| f.kind == FailureKind::Timeout);
            return Err(SetupError {
                timeout,
                malformed: false,
                text: format!("{lead}: {}", reasons.join("; ")),
            });
        }
        Ok(SetUp {
            servers,
            sessions,
            listed,
        })
    };
    match tokio::time::timeout(deadline, work).await {
        Ok(r) => r,
        Err(_) => {
            let names: Vec<String> = config::servers_of(&mcp_config)
                .map(|s| s.keys().cloned().collect())
                .unwrap_or_default();
            Err(SetupError {
                timeout: true,
                malformed: false,
                text: format!(
                    "MCP tool listing timed out after {} seconds (MCP servers configured: {}). \
                     Check that the servers start and answer, or raise \
                     conversations.mcp_startup_timeout_seconds.",
                    deadline.as_secs(),
                    if names.is_empty() {
                        "unknown".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            })
        }
    }
}

/// Runs one `tools/call`, starting the server again first when its session
/// is gone. Returns the fresh session, if one was started, and the
/// observation.
async fn call_tool(
    session: Option<Arc<Session>>,
    server: Option<ServerConfig>,
    http: reqwest::Client,
    startup: Duration,
    tool: McpTool,
    arguments: Value,
    timeout: Duration,
) -> (Option<Arc<Session>>, Value) {
    let name = &tool.name;
    let fail = |reason: &str| {
        tools::error_observation(name, &format!("Error calling MCP tool {name}: {reason}"))
    };
    let mut fresh = None;
    let session = match session.filter(|s| s.is_alive()) {
        Some(s) => s,
        None => {
            let Some(server) = server else {
                return (None, fail("the MCP server is not connected"));
            };
            match tokio::time::timeout(startup, Session::start(&server.server, &http)).await {
                Ok(Ok(s)) => {
                    let s = Arc::new(s);
                    fresh = Some(s.clone());
                    s
                }
                Ok(Err(f)) => {
                    let reason = format!(
                        "the MCP server '{}' is gone and could not be started again ({})",
                        server.name, f.error
                    );
                    return (None, fail(&reason));
                }
                Err(_) => {
                    let reason = format!(
                        "the MCP server '{}' is gone and did not start again within {} seconds",
                        server.name,
                        startup.as_secs()
                    );
                    return (None, fail(&reason));
                }
            }
        }
    };
    let params = json!({"name": tool.remote_name, "arguments": arguments});
    let obs = match tokio::time::timeout(timeout, session.request("tools/call", params)).await {
        Ok(Ok(result)) => tools::observation(name, &result),
        Ok(Err(e)) => fail(e.message()),
        Err(_) => tools::error_observation(
            name,
            &format!(
                "MCP tool '{name}' timed out after {} seconds. The server may be stuck or the \
                 operation too long; try again, or do it another way.",
                timeout.as_secs()
            ),
        ),
    };
    (fresh, obs)
}

/// Inserts `extra` before the first item `is_builtin_end` picks (`finish`
/// or `think`), or at the end.
fn insert_before_end<T>(mut items: Vec<T>, extra: Vec<T>, is_end: impl Fn(&T) -> bool) -> Vec<T> {
    let at = items.iter().position(is_end).unwrap_or(items.len());
    items.splice(at..at, extra);
    items
}

impl ConversationActor {
    /// Whether the agent has MCP servers to start.
    fn mcp_configured(&self) -> bool {
        config::has_servers(self.record.agent.mcp_config.as_ref())
    }

    /// The MCP tool called `name`, when there is one.
    fn mcp_tool(&self, name: &str) -> Option<&McpTool> {
        self.run
            .tools
            .mcp
            .tools
            .as_ref()?
            .iter()
            .find(|t| t.name == name)
    }

    /// `names` (the agent's tools) with the MCP tools' names before
    /// `finish` and `think`.
    pub(super) fn with_mcp_names(&self, names: Vec<String>) -> Vec<String> {
        let Some(list) = &self.run.tools.mcp.tools else {
            return names;
        };
        let extra = list.iter().map(|t| t.name.clone()).collect();
        insert_before_end(names, extra, |n| catalog::is_builtin(n))
    }

    /// The `SystemPromptEvent` tool definitions with the MCP tools'.
    pub(super) fn with_mcp_definitions(&self, defs: Vec<Value>) -> Vec<Value> {
        let Some(list) = &self.run.tools.mcp.tools else {
            return defs;
        };
        let extra = list.iter().map(McpTool::definition).collect();
        insert_before_end(defs, extra, |d| {
            d.get("kind")
                .and_then(Value::as_str)
                .is_some_and(catalog::is_builtin_kind)
        })
    }

    /// The tools offered to the LLM with the MCP tools.
    pub(super) fn with_mcp_specs(&self, specs: Vec<ToolSpec>) -> Vec<ToolSpec> {
        let Some(list) = &self.run.tools.mcp.tools else {
            return specs;
        };
        let extra = list
            .iter()
            .map(|t| ToolSpec {
                name: t.name.clone(),
                description: t.description(),
                parameters: t.parameters(),
            })
            .collect();
        insert_before_end(specs, extra, |s| catalog::is_builtin(&s.name))
    }

    /// An LLM call of an MCP tool as an action; `None` when `name` is not one.
    pub(super) fn parse_mcp_call(
        &self,
        name: &str,
        arguments: &str,
        analyzer: bool,
    ) -> Option<ParsedCall> {
        Some(self.mcp_tool(name)?.parse_call(arguments, analyzer))
    }

    /// Holds a user message until the MCP servers of a new agent are set up
    /// (or while a set-up runs); gives it back when there is nothing to
    /// wait for.
    pub(super) fn mcp_gate(
        &mut self,
        ctx: &mut Context<Self>,
        message: SendMessageRequest,
    ) -> Result<ResponseFuture<Result<(), ActorError>>, SendMessageRequest> {
        let state = &self.run.tools.mcp;
        // An agent whose own tools cannot be set up is refused for that first,
        // as the reference resolves them before its MCP tools.
        let needed = !self.record.agent_initialized
            && state.tools.is_none()
            && self.mcp_configured()
            && self.agent_setup_error().is_none();
        if state.waiting.is_none() && !needed {
            return Err(message);
        }
        let (reply, answer) = oneshot::channel();
        self.mcp_wait(ctx, Waiter::Message { message, reply });
        Ok(Box::pin(async move {
            answer.await.unwrap_or_else(|_| {
                Err(ActorError::Unavailable(
                    "the conversation restarted before the message was recorded".into(),
                ))
            })
        }))
    }

    /// At a run's step: when the agent's MCP servers are not set up, starts
    /// them and returns true (the step is taken again afterwards).
    pub(super) fn mcp_step_waits(&mut self, ctx: &mut Context<Self>) -> bool {
        if self.run.tools.mcp.tools.is_some() || !self.mcp_configured() {
            return false;
        }
        let generation = self.run.generation;
        self.mcp_wait(ctx, Waiter::Step { generation });
        true
    }

    fn mcp_wait(&mut self, ctx: &mut Context<Self>, waiter: Waiter) {
        if let Some(waiting) = &mut self.run.tools.mcp.waiting {
            waiting.push(waiter);
            return;
        }
        self.run.tools.mcp.waiting = Some(vec![waiter]);
        let mcp_config = self.record.agent.mcp_config.clone().unwrap_or_default();
        let secrets: Map<String, Value> = config::referenced_variables(&mcp_config)
            .into_iter()
            .filter_map(|n| {
                let src = self.record.secret_sources.get(&n)?.clone();
                Some((n, src))
            })
            .collect();
        let deadline = Duration::from_secs(self.deps.config.mcp_startup_timeout_secs.max(1));
        let fut = set_up(
            self.id,
            mcp_config,
            secrets,
            self.deps.http.clone(),
            deadline,
        );
        ctx.spawn(fut.into_actor(self).map(|outcome, act, ctx| {
            // A restart forgot this set-up: its waiters are gone.
            let Some(waiters) = act.run.tools.mcp.waiting.take() else {
                return;
            };
            match outcome.and_then(|s| act.adopt_mcp(s)) {
                Ok(()) => {
                    for w in waiters {
                        act.mcp_release(ctx, w);
                    }
                }
                Err(e) => {
                    log::info!("conversation {}: MCP set-up failed: {}", act.id, e.code());
                    for w in waiters {
                        act.mcp_refuse(ctx, w, &e);
                    }
                }
            }
        }));
    }

    /// Keeps the sessions and tools of a set-up, after the reference's
    /// checks: the tool-name filter, the tool limit, unique names.
    fn adopt_mcp(&mut self, set_up: SetUp) -> Result<(), SetupError> {
        let SetUp {
            servers,
            sessions,
            listed,
        } = set_up;
        let several = servers.len() > 1;
        let mut list: Vec<McpTool> = listed
            .iter()
            .map(|(i, raw)| {
                let remote = raw["name"].as_str().unwrap_or_default();
                let name = tools::exposed_name(&servers[*i].name, remote, several);
                McpTool::new(*i, name, raw)
            })
            .collect();
        if let Some(re) = self.record.agent.filter_tools_regex.as_deref() {
            // Anchored at the start, like Python's `re.match`.
            match regex::Regex::new(&format!("^(?:{re})")) {
                Ok(filter) => list.retain(|t| filter.is_match(&t.name)),
                Err(_) => log::warn!(
                    "conversation {}: filter_tools_regex is not a pattern this server understands; MCP tools are not filtered",
                    self.id
                ),
            }
        }
        if list.len() > MAX_TOOLS {
            return Err(SetupError::failed(format!(
                "the MCP servers offer {} tools; at most {MAX_TOOLS} are supported",
                list.len()
            )));
        }
        let mut seen = self.tool_names();
        let mut duplicates = vec![];
        for t in &list {
            if seen.contains(&t.name) {
                if !duplicates.contains(&t.name) {
                    duplicates.push(t.name.clone());
                }
            } else {
                seen.push(t.name.clone());
            }
        }
        if !duplicates.is_empty() {
            return Err(SetupError::failed(format!(
                "Duplicate tool names found: {}",
                py_set(&duplicates)
            )));
        }
        log::info!(
            "conversation {}: {} MCP tool(s) from {} server(s)",
            self.id,
            list.len(),
            sessions.iter().filter(|s| s.is_some()).count()
        );
        let state = &mut self.run.tools.mcp;
        state.servers = servers;
        state.sessions = sessions.into_iter().map(|s| s.map(Arc::new)).collect();
        state.tools = Some(Arc::new(list));
        self.run.forget_llm_setup();
        Ok(())
    }

    fn mcp_release(&mut self, ctx: &mut Context<Self>, waiter: Waiter) {
        match waiter {
            Waiter::Message { message, reply } => {
                if let Err(e) = self.gone_guard() {
                    let _ = reply.send(Err(e));
                    return;
                }
                match self.queue_message(ctx, message) {
                    Ok(answer) => {
                        ctx.spawn(actix::fut::wrap_future(answer).map(move |r, _, _| {
                            let _ = reply.send(r);
                        }));
                    }
                    Err(message) => {
                        let id = Uuid::new_v4().hyphenated();
                        match self.record_user_message(ctx, message, vec![], id, None) {
                            Ok(seq) => self.reply_when_durable(seq, reply),
                            Err(e) => {
                                let _ = reply.send(Err(e));
                            }
                        }
                    }
                }
            }
            Waiter::Step { generation } => {
                if self.run.generation == generation && self.run.active {
                    self.step(ctx);
                }
            }
        }
    }

    fn mcp_refuse(&mut self, ctx: &mut Context<Self>, waiter: Waiter, e: &SetupError) {
        match waiter {
            // The reference's first `send_message` raises, which its
            // server answers with a 500 carrying the text; a malformed
            // config is the client's mistake, answered 400 here.
            Waiter::Message { reply, .. } => {
                let err = if e.malformed {
                    ActorError::BadRequest(e.text.clone())
                } else {
                    ActorError::Internal(e.text.clone())
                };
                let _ = reply.send(Err(err));
            }
            Waiter::Step { generation } => {
                if self.run.generation == generation && self.run.active {
                    self.fail_run(ctx, e.code(), e.text.clone());
                }
            }
        }
    }

    /// Runs an MCP tool's action in a spawned future; false when
    /// `p.tool_name` is not an MCP tool.
    pub(super) fn execute_mcp(
        &mut self,
        ctx: &mut Context<Self>,
        p: &PendingAction,
        action: &Value,
    ) -> bool {
        let Some(tool) = self.mcp_tool(&p.tool_name).cloned() else {
            return false;
        };
        let state = &self.run.tools.mcp;
        let index = tool.server;
        let session = state.sessions.get(index).cloned().flatten();
        let server = state.servers.get(index).cloned();
        let arguments = action.get("data").cloned().unwrap_or_else(|| json!({}));
        let timeout = Duration::from_secs(self.deps.config.mcp_tool_timeout_secs.max(1));
        let startup = Duration::from_secs(self.deps.config.mcp_startup_timeout_secs.max(1));
        let generation = self.run.generation;
        let p = p.clone();
        let fut = call_tool(
            session,
            server,
            self.deps.http.clone(),
            startup,
            tool,
            arguments,
            timeout,
        );
        let handle = ctx.spawn(fut.into_actor(self).map(move |(fresh, obs), act, ctx| {
            if let Some(s) = fresh
                && let Some(slot) = act.run.tools.mcp.sessions.get_mut(index)
            {
                *slot = Some(s);
            }
            if act.run.generation == generation && act.run.active {
                act.finish_action(ctx, &p, Ok(obs));
            }
        }));
        self.run.handle = Some(handle);
        true
    }

    /// Takes the conversation's MCP sessions, for closing them.
    pub(super) fn take_mcp_sessions(&mut self) -> Vec<Arc<Session>> {
        self.run.tools.mcp.take_sessions()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcp_tools_go_before_finish_and_think() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let out = insert_before_end(
            names(&["terminal", "finish", "think"]),
            names(&["a", "b"]),
            |n| n == "finish" || n == "think",
        );
        assert_eq!(out, names(&["terminal", "a", "b", "finish", "think"]));
        let out = insert_before_end(names(&["terminal"]), names(&["a"]), |n| n == "finish");
        assert_eq!(out, names(&["terminal", "a"]));
        assert_eq!(py_set(&names(&["x", "y'z"])), r#"{'x', "y'z"}"#);
    }
}
