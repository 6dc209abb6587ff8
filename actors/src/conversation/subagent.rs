//! Sub-agents: the conversations the `task` tool starts, run as nested agent loops in the
//! parent's workspace with the parent's LLM settings (streaming off), as the reference's
//! agent server runs them (local conversations inside the server).
//!
//! A sub-agent's loop is a task of its own (`actix::spawn`), never a future the parent's
//! mailbox waits on: it reports each LLM call's usage ([`SubAgentUsage`], counted under
//! `task:<id>`) and, at its end, hands back its state and outcome ([`SubAgentDone`]),
//! which the parent records as the tool's observation. Its events stay in memory and are
//! not part of the parent's event log (the reference keeps them in a separate
//! conversation too); the parent records only its own action and observation.
//!
//! Pause, interrupt and close raise the run's stop signal: the sub-agent drops the LLM
//! call or tool in flight at once (its terminal gets an interrupt) and ends. An LLM
//! failure ends it with an error result the parent's LLM reads.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::actor::ConversationActor;
use super::run::{PendingAction, resolve_secrets, vision};
use crate::agent::{stuck, view};
use crate::ids::Uuid;
use crate::llm::{self, LlmConfig, ToolSpec};
use crate::metrics::Counters;
use crate::model::event::Message;
use crate::model::event::*;
use crate::model::stats::CallUsage;
use crate::tools::agent_types::{AgentType, AgentTypes};
use crate::tools::catalog::{self, ParsedCall, ToolContext};
use crate::tools::content::Content;
use crate::tools::delegate as delegate_tool;
use crate::tools::file_editor::FileEditor;
use crate::tools::task::{self as task_tool, COMPLETED, ERROR, NO_RESULT};
use crate::tools::task_tracker::TaskTracker;
use crate::tools::terminal::{self, TerminalConfig, TerminalSession};
use crate::tools::{apply_patch, gemini, search};

/// Tasks whose history is kept for `resume`; the oldest are released beyond this.
const MAX_RESUMABLE_TASKS: usize = 16;
/// A sub-agent whose history reaches this many events (over all its tasks) ends its
/// task as at its iteration cap: it has no condenser to shorten it.
const MAX_EVENTS: usize = 4000;
/// The most sub-agents `delegate` keeps (and runs at once), whatever `max_children` says.
const MAX_CHILDREN: usize = 16;
/// How long a sub-agent's shell gets to close.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// The text a sub-agent is sent when it answered with neither text nor a tool call.
const NUDGE: &str = "Your last response did not include a function call or a message. Please use a tool to proceed with the task.";

/// The sub-agents of one conversation, kept across runs.
#[derive(Default)]
pub struct SubAgents {
    /// The conversation's sub-agent types, worked out on first use.
    types: Option<AgentTypes>,
    /// Every task started, in order (its history while it is resumable).
    tasks: Vec<TaskEntry>,
    /// The stop signal of the sub-agent run in flight.
    running: Option<watch::Sender<bool>>,
    /// The `delegate` tool's sub-agents, in the order they were spawned.
    children: Vec<Child>,
}

struct Child {
    id: String,
    kind: AgentType,
    /// `None` while it works on a task.
    state: Option<SubAgent>,
}

struct TaskEntry {
    id: String,
    /// `None` while the task runs, or once its history was released.
    state: Option<SubAgent>,
}

impl SubAgents {
    /// Stops the sub-agent run in flight, if any (its result still comes back).
    pub fn stop(&mut self) {
        if let Some(stop) = self.running.take() {
            let _ = stop.send(true);
        }
    }

    /// Stops any run and closes the shells of the spawned sub-agents (the conversation
    /// is closing).
    pub fn close(&mut self) {
        self.stop();
        for child in std::mem::take(&mut self.children) {
            if let Some(mut agent) = child.state {
                actix::spawn(async move { agent.close_tools().await });
            }
        }
    }
}

/// One sub-agent conversation: its events and its tools.
pub struct SubAgent {
    conversation_id: String,
    events: Vec<Event>,
    terminal: Option<Addr<TerminalSession>>,
    editor: Option<FileEditor>,
    tracker: TaskTracker,
}

impl SubAgent {
    fn new(system_prompt: Event) -> SubAgent {
        SubAgent {
            conversation_id: Uuid::new_v4().hyphenated(),
            events: vec![system_prompt],
            terminal: None,
            editor: Some(FileEditor::default()),
            tracker: TaskTracker::new(None),
        }
    }

    /// The agent's final answer: the message of its last `finish`, or the text of its
    /// last message (the reference's `get_agent_final_response`).
    fn final_response(&self) -> String {
        for e in self.events.iter().rev() {
            match &e.body {
                EventBody::Action(a) if e.source == Source::Agent && a.tool_name == "finish" => {
                    return a
                        .action
                        .as_ref()
                        .and_then(|a| a.get("message"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                }
                EventBody::Message(m) if e.source == Source::Agent => {
                    return m
                        .llm_message
                        .content
                        .iter()
                        .filter_map(|c| c.as_text())
                        .collect();
                }
                _ => {}
            }
        }
        String::new()
    }

    /// Closes the sub-agent's shell (the reference closes a task's conversation, and
    /// with it its tools, when the task ends).
    async fn close_tools(&mut self) {
        if let Some(t) = self.terminal.take() {
            let _ = tokio::time::timeout(CLOSE_WAIT, t.send(terminal::Close)).await;
        }
    }
}

/// How a sub-agent run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It came to an end (finished, stuck or at its iteration cap): its final answer.
    Finished(String),
    /// Its LLM failed: the error.
    Failed(String),
    /// The parent stopped it.
    Stopped,
}

/// What a sub-agent runs with besides its state.
struct SubRun {
    cfg: Arc<LlmConfig>,
    tools: Arc<Vec<ToolSpec>>,
    tool_names: Vec<String>,
    http: reqwest::Client,
    max_iterations: u64,
    /// The working directory, resolved, and as the client gave it.
    cwd: PathBuf,
    given_cwd: PathBuf,
    secret_sources: serde_json::Map<String, Value>,
    terminal_timeout: Duration,
    observations_dir: PathBuf,
    model: String,
    context_window: u64,
    counters: Arc<Counters>,
}

/// Usage of one LLM call a sub-agent made.
#[derive(Message)]
#[rtype(result = "()")]
struct SubAgentUsage {
    usage_id: String,
    call: CallUsage,
}

impl Handler<SubAgentUsage> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: SubAgentUsage, ctx: &mut Context<Self>) {
        if self.gone {
            return;
        }
        self.writer
            .record_call(&mut self.record.stats, &msg.usage_id, msg.call);
        // Stored with the record; the parent's next `stats` update shows it.
        let _ = self.append(ctx, vec![], true);
    }
}

/// A sub-agent run ended: its state goes back to its task, its outcome to the action.
#[derive(Message)]
#[rtype(result = "()")]
struct SubAgentDone {
    generation: u64,
    task_id: String,
    subagent: String,
    action: PendingAction,
    agent: SubAgent,
    outcome: Outcome,
}

impl Handler<SubAgentDone> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: SubAgentDone, ctx: &mut Context<Self>) {
        let SubAgentDone {
            generation,
            task_id,
            subagent,
            action,
            mut agent,
            outcome,
        } = msg;
        let current = generation == self.run.generation && self.run.active && !self.gone;
        if current {
            self.run.tools.subagents.running = None;
        }
        if self.gone {
            actix::spawn(async move { agent.close_tools().await });
        } else {
            self.keep_task_state(&task_id, agent);
        }
        if !current {
            return;
        }
        let obs = match outcome {
            Outcome::Finished(text) => {
                let text = if text.is_empty() {
                    NO_RESULT.to_string()
                } else {
                    text
                };
                task_tool::observation(&text, &task_id, &subagent, COMPLETED, false)
            }
            Outcome::Failed(text) => {
                task_tool::observation(&text, &task_id, &subagent, ERROR, true)
            }
            Outcome::Stopped => task_tool::observation(
                &format!("Task '{task_id}' was stopped before it finished."),
                &task_id,
                &subagent,
                ERROR,
                true,
            ),
        };
        self.finish_action(ctx, &action, Ok(obs));
    }
}

/// The sub-agents of a `delegate` command ended: their states go back, their answers
/// make the action's observation.
#[derive(Message)]
#[rtype(result = "()")]
struct DelegateDone {
    generation: u64,
    action: PendingAction,
    /// Every task in the order given, with its answer or error once known.
    order: Vec<(String, Option<Result<String, String>>)>,
    finished: Vec<(String, SubAgent, Outcome)>,
}

impl Handler<DelegateDone> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: DelegateDone, ctx: &mut Context<Self>) {
        let current = msg.generation == self.run.generation && self.run.active && !self.gone;
        if current {
            self.run.tools.subagents.running = None;
        }
        let mut answers: Vec<(String, Result<String, String>)> = vec![];
        for (id, agent, outcome) in msg.finished {
            let answer = match outcome {
                Outcome::Finished(text) if text.is_empty() => Ok(delegate_tool::NO_RESPONSE.into()),
                Outcome::Finished(text) => Ok(text),
                Outcome::Failed(e) => Err(format!(
                    "Sub-agent {id} failed: Conversation run failed for id={}: {e}",
                    agent.conversation_id
                )),
                Outcome::Stopped => Err(format!(
                    "Sub-agent {id} failed: it was stopped before it finished"
                )),
            };
            answers.push((id.clone(), answer));
            let child = self
                .run
                .tools
                .subagents
                .children
                .iter_mut()
                .find(|c| c.id == id && c.state.is_none());
            match child {
                Some(c) if !self.gone => c.state = Some(agent),
                _ => {
                    let mut agent = agent;
                    actix::spawn(async move { agent.close_tools().await });
                }
            }
        }
        if !current {
            return;
        }
        let results: Vec<(String, Result<String, String>)> = msg
            .order
            .into_iter()
            .map(|(id, known)| {
                let answer = known
                    .or_else(|| {
                        answers
                            .iter()
                            .find(|(a, _)| *a == id)
                            .map(|(_, r)| r.clone())
                    })
                    .unwrap_or_else(|| Err(format!("Sub-agent {id} failed: no result")));
                (id, answer)
            })
            .collect();
        let text = delegate_tool::delegate_text(&results);
        let obs = delegate_tool::observation(&text, "delegate", false);
        self.finish_action(ctx, &msg.action, Ok(obs));
    }
}

impl ConversationActor {
    fn agent_types(&mut self) -> &AgentTypes {
        if self.run.tools.subagents.types.is_none() {
            let types = AgentTypes::with_definitions(&self.record.agent_definitions)
                .with_files(&self.working_dir());
            self.run.tools.subagents.types = Some(types);
        }
        self.run
            .tools
            .subagents
            .types
            .get_or_insert_with(AgentTypes::builtins)
    }

    /// The conversation's sub-agent types, for the `task` tool's description.
    pub(super) fn agent_types_for_tools(&mut self) -> AgentTypes {
        self.agent_types().clone()
    }

    fn keep_task_state(&mut self, task_id: &str, agent: SubAgent) {
        let tasks = &mut self.run.tools.subagents.tasks;
        if let Some(entry) = tasks.iter_mut().find(|t| t.id == task_id) {
            entry.state = Some(agent);
        }
        let kept = tasks.iter().filter(|t| t.state.is_some()).count();
        if kept > MAX_RESUMABLE_TASKS
            && let Some(oldest) = tasks.iter_mut().find(|t| t.state.is_some())
        {
            // Nothing runs in a finished task's tools (they were closed): dropping it
            // only frees its history.
            oldest.state = None;
        }
    }

    /// Runs a `TaskAction`: a new sub-agent, or an earlier one resumed, until it ends.
    pub(super) fn execute_task(
        &mut self,
        ctx: &mut Context<Self>,
        p: PendingAction,
        action: Value,
    ) {
        let s = |k: &str| action.get(k).and_then(Value::as_str).map(str::to_string);
        let prompt = s("prompt").unwrap_or_default();
        let subagent = s("subagent_type").unwrap_or_else(|| "general-purpose".into());
        let resume = s("resume").filter(|r| !r.is_empty());
        let fail = |act: &mut Self, ctx: &mut Context<Self>, text: String| {
            let obs = task_tool::observation(
                &format!("Failed to execute task: {text}"),
                "unknown",
                &subagent,
                ERROR,
                true,
            );
            act.finish_action(ctx, &p, Ok(obs));
        };
        if let Some(id) = &resume
            && !self.run.tools.subagents.tasks.iter().any(|t| &t.id == id)
        {
            let mut ids: Vec<&str> = self
                .run
                .tools
                .subagents
                .tasks
                .iter()
                .map(|t| t.id.as_str())
                .collect();
            ids.sort_unstable();
            let text = format!("Task '{id}' not found. Available tasks: {}", ids.join(", "));
            return fail(self, ctx, text);
        }
        let kind = match self.agent_types().resolve(&subagent) {
            Ok(k) => k.clone(),
            Err(e) => return fail(self, ctx, e),
        };
        let mut run = match self.sub_run(&kind) {
            Ok(r) => r,
            Err(e) => return fail(self, ctx, e),
        };
        let (task_id, mut agent) = match resume {
            Some(id) => {
                let entry = self
                    .run
                    .tools
                    .subagents
                    .tasks
                    .iter_mut()
                    .find(|t| t.id == id)
                    .expect("checked above");
                match entry.state.take() {
                    Some(agent) => (id, agent),
                    None => {
                        let text = format!(
                            "Task '{id}' can no longer be resumed: its history was released."
                        );
                        return fail(self, ctx, text);
                    }
                }
            }
            None => {
                let tasks = &mut self.run.tools.subagents.tasks;
                let id = task_tool::task_id(tasks.len() + 1);
                tasks.push(TaskEntry {
                    id: id.clone(),
                    state: None,
                });
                let prompt_event = self.sub_system_prompt(&kind, &run);
                (id, SubAgent::new(prompt_event))
            }
        };
        agent.events.push(user_message(prompt));
        run.observations_dir = PathBuf::from(&self.record.persistence_dir)
            .join("subagents")
            .join(&agent.conversation_id)
            .join("observations");
        let (stop_tx, stop_rx) = watch::channel(false);
        self.run.tools.subagents.stop();
        self.run.tools.subagents.running = Some(stop_tx);
        let me = ctx.address();
        let generation = self.run.generation;
        let usage_id = format!("task:{task_id}");
        actix::spawn(async move {
            let usage = {
                let me = me.clone();
                move |call: CallUsage| {
                    me.do_send(SubAgentUsage {
                        usage_id: usage_id.clone(),
                        call,
                    })
                }
            };
            let outcome = run_agent(&mut agent, &run, stop_rx, &usage).await;
            let outcome = match outcome {
                Outcome::Failed(e) => Outcome::Failed(format!(
                    "Conversation run failed for id={}: {e}",
                    agent.conversation_id
                )),
                other => other,
            };
            agent.close_tools().await;
            me.do_send(SubAgentDone {
                generation,
                task_id,
                subagent,
                action: p,
                agent,
                outcome,
            });
        });
    }

    /// How many sub-agents `delegate` may spawn: its `max_children` parameter (at most
    /// [`MAX_CHILDREN`]), else 5.
    fn max_children(&self) -> usize {
        self.record
            .agent
            .tools
            .iter()
            .find(|t| t.name == "delegate")
            .and_then(|t| t.params.get("max_children"))
            .and_then(Value::as_u64)
            .map(|n| n.min(MAX_CHILDREN as u64) as usize)
            .unwrap_or(delegate_tool::DEFAULT_MAX_CHILDREN)
    }

    /// Runs a `DelegateAction`: `spawn` creates sub-agents, `delegate` runs their tasks
    /// in parallel.
    pub(super) fn execute_delegate(
        &mut self,
        ctx: &mut Context<Self>,
        p: PendingAction,
        action: Value,
    ) {
        let strings = |v: Option<&Value>| -> Option<Vec<String>> {
            v.and_then(Value::as_array).map(|items| {
                items
                    .iter()
                    .map(|i| i.as_str().unwrap_or_default().to_string())
                    .collect()
            })
        };
        if action.get("command").and_then(Value::as_str) == Some("spawn") {
            let ids = strings(action.get("ids")).unwrap_or_default();
            let types = strings(action.get("agent_types"));
            let obs = self.spawn_children(&ids, types.as_deref());
            return self.finish_action(ctx, &p, Ok(obs));
        }
        let tasks: Vec<(String, String)> = action
            .get("tasks")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let fail = |text: String| delegate_tool::observation(&text, "delegate", true);
        if tasks.is_empty() {
            let obs = fail("at least one task is required for delegate action".into());
            return self.finish_action(ctx, &p, Ok(obs));
        }
        let children = &self.run.tools.subagents.children;
        let missing: Vec<&str> = tasks
            .iter()
            .map(|(id, _)| id.as_str())
            .filter(|id| !children.iter().any(|c| c.id == *id))
            .collect();
        if !missing.is_empty() {
            let known: Vec<&str> = children.iter().map(|c| c.id.as_str()).collect();
            let obs = fail(format!(
                "sub-agents not found: {}. Available agents: {}",
                missing.join(", "),
                known.join(", ")
            ));
            return self.finish_action(ctx, &p, Ok(obs));
        }
        let mut order = vec![];
        let mut jobs = vec![];
        for (id, task) in tasks {
            let idx = self
                .run
                .tools
                .subagents
                .children
                .iter()
                .position(|c| c.id == id)
                .expect("checked above");
            let kind = self.run.tools.subagents.children[idx].kind.clone();
            let run = self.sub_run(&kind);
            let child = &mut self.run.tools.subagents.children[idx];
            match (run, child.state.take()) {
                (Ok(mut run), Some(mut agent)) => {
                    agent.events.push(user_message(task));
                    run.observations_dir = PathBuf::from(&self.record.persistence_dir)
                        .join("subagents")
                        .join(&agent.conversation_id)
                        .join("observations");
                    jobs.push((id.clone(), agent, run));
                    order.push((id, None));
                }
                (Err(e), state) => {
                    child.state = state;
                    order.push((id.clone(), Some(Err(format!("Sub-agent {id} failed: {e}")))));
                }
                (Ok(_), None) => {
                    let e = format!("Sub-agent {id} failed: it is busy with another task");
                    order.push((id, Some(Err(e))));
                }
            }
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        self.run.tools.subagents.stop();
        self.run.tools.subagents.running = Some(stop_tx);
        let me = ctx.address();
        let generation = self.run.generation;
        actix::spawn(async move {
            let runs = jobs.into_iter().map(|(id, mut agent, run)| {
                let stop = stop_rx.clone();
                let me = me.clone();
                async move {
                    let usage_id = format!("delegate:{id}");
                    let usage = |call: CallUsage| {
                        me.do_send(SubAgentUsage {
                            usage_id: usage_id.clone(),
                            call,
                        })
                    };
                    let outcome = run_agent(&mut agent, &run, stop, &usage).await;
                    (id, agent, outcome)
                }
            });
            let finished = futures_util::future::join_all(runs).await;
            me.do_send(DelegateDone {
                generation,
                action: p,
                order,
                finished,
            });
        });
    }

    /// `spawn`: checks the request as the reference does, then creates the sub-agents
    /// (those made before one that cannot be made stay).
    fn spawn_children(&mut self, ids: &[String], types: Option<&[String]>) -> Value {
        let answer = |text: String, error: bool| delegate_tool::observation(&text, "spawn", error);
        if ids.is_empty() {
            return answer("At least one ID is required for spawn action".into(), true);
        }
        if let Some(types) = types
            && types.len() > ids.len()
        {
            return answer(
                format!(
                    "agent_types length ({}) cannot exceed ids length ({})",
                    types.len(),
                    ids.len()
                ),
                true,
            );
        }
        let max = self.max_children();
        let have = self.run.tools.subagents.children.len();
        if have + ids.len() > max {
            return answer(
                format!(
                    "Cannot spawn {} agents. Already have {have} agents, maximum is {max}",
                    ids.len()
                ),
                true,
            );
        }
        let mut labels = vec![];
        for (i, id) in ids.iter().enumerate() {
            let wanted = types
                .and_then(|t| t.get(i))
                .map(|t| t.trim())
                .filter(|t| !t.is_empty())
                .unwrap_or("default")
                .to_string();
            let kind = self.agent_types().resolve(&wanted).cloned();
            let made = kind.and_then(|kind| self.sub_run(&kind).map(|run| (kind, run)));
            let (kind, run) = match made {
                Ok(made) => made,
                Err(e) => return answer(format!("failed to spawn agents: {e}"), true),
            };
            let agent = SubAgent::new(self.sub_system_prompt(&kind, &run));
            let children = &mut self.run.tools.subagents.children;
            let child = Child {
                id: id.clone(),
                kind,
                state: Some(agent),
            };
            match children.iter_mut().find(|c| c.id == *id) {
                Some(old) => {
                    if let Some(mut agent) = std::mem::replace(old, child).state {
                        actix::spawn(async move { agent.close_tools().await });
                    }
                }
                None => children.push(child),
            }
            labels.push(delegate_tool::label(id, &wanted));
        }
        answer(
            format!(
                "Successfully spawned {} sub-agents: {}",
                ids.len(),
                labels.join(", ")
            ),
            false,
        )
    }

    /// The LLM settings, tools and limits a sub-agent of this type runs with, or why it
    /// cannot be made (the reference's factory errors).
    fn sub_run(&mut self, kind: &AgentType) -> Result<SubRun, String> {
        if kind.model != "inherit" {
            return Err(format!(
                "Profile {} not found in profile store.\nAvailable profiles: []",
                kind.model
            ));
        }
        for t in &kind.tools {
            let known = catalog::offered_name(t).is_some()
                || catalog::UNPROVIDED_TOOLS.contains(&t.as_str());
            if !known {
                return Err(format!(
                    "Tool '{t}' not registeredbut was given to agent {}.",
                    kind.name
                ));
            }
        }
        let mut cfg =
            LlmConfig::from_json(&self.record.agent.llm.to_value()).map_err(|e| e.detail())?;
        cfg.stream = false;
        let mut tool_names: Vec<String> = vec![];
        for t in &kind.tools {
            // Sub-agents do not start sub-agents of their own, and the planning editor
            // belongs to planning conversations.
            match catalog::offered_name(t) {
                Some("task") | Some("planning_file_editor") | None => {}
                Some(name) if !tool_names.iter().any(|n| n == name) => {
                    tool_names.push(name.to_string())
                }
                Some(_) => {}
            }
        }
        tool_names.extend(["finish".to_string(), "think".to_string()]);
        let refs: Vec<&str> = tool_names.iter().map(String::as_str).collect();
        let tctx = ToolContext::new(
            &self.record.workspace.working_dir,
            vision(&self.record.agent.llm),
        );
        let tools = catalog::tool_specs_in(&refs, &tctx)
            .into_iter()
            .map(|t| ToolSpec {
                name: t.name,
                description: t.description,
                parameters: t.parameters,
            })
            .collect();
        let llm = &self.record.agent.llm;
        Ok(SubRun {
            cfg: Arc::new(cfg),
            tools: Arc::new(tools),
            tool_names,
            http: self.deps.http.clone(),
            max_iterations: kind
                .max_iteration_per_run
                .unwrap_or(self.record.max_iterations)
                .max(1),
            cwd: self.working_dir(),
            given_cwd: PathBuf::from(&self.record.workspace.working_dir),
            secret_sources: self.record.secret_sources.clone(),
            terminal_timeout: Duration::from_secs(
                self.deps.config.terminal_no_change_timeout_secs.max(1),
            ),
            observations_dir: PathBuf::new(),
            model: llm.model.clone(),
            context_window: llm.max_input_tokens.unwrap_or(0).max(0) as u64,
            counters: self.deps.counters.clone(),
        })
    }

    /// A new sub-agent's `SystemPromptEvent`: the default prompt with the type's
    /// instructions appended, and its tools.
    fn sub_system_prompt(&self, kind: &AgentType, run: &SubRun) -> Event {
        let mut kwargs = serde_json::Map::new();
        kwargs.insert(
            "security_policy_filename".into(),
            Value::String("security_policy.j2".into()),
        );
        let (mut prompt, dynamic) = crate::tools::prompt::system_prompt_for(
            crate::tools::prompt::Template::Bundled(crate::tools::prompt::Bundled::Default),
            &kwargs,
            &run.model,
            None,
            &[],
        );
        let context = json!({"system_message_suffix": kind.system_prompt});
        if let Some(extra) = crate::agent::skills::system_additions(Some(&context)) {
            prompt.push_str("\n\n");
            prompt.push_str(&extra);
        }
        let refs: Vec<&str> = run.tool_names.iter().map(String::as_str).collect();
        let tctx = ToolContext::new(
            &self.record.workspace.working_dir,
            vision(&self.record.agent.llm),
        );
        sub_event(
            Source::Agent,
            EventBody::SystemPrompt(SystemPromptEvent {
                system_prompt: Content::text(prompt),
                tools: catalog::tool_definitions_in(&refs, &tctx),
                dynamic_context: dynamic.map(Content::text),
            }),
        )
    }
}

fn user_message(text: String) -> Event {
    sub_event(
        Source::User,
        EventBody::Message(MessageEvent::new(Message::new(
            "user",
            vec![Content::text(text)],
        ))),
    )
}

fn sub_event(source: Source, body: EventBody) -> Event {
    Event {
        id: Uuid::new_v4().hyphenated(),
        timestamp: crate::time::now_utc(),
        source,
        body,
    }
}

/// `fut`, unless the stop signal is raised (or its sender is gone) first.
async fn unless_stopped<T>(
    stop: &mut watch::Receiver<bool>,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        biased;
        _ = stop.wait_for(|s| *s) => None,
        v = fut => Some(v),
    }
}

/// The sub-agent's loop: LLM call, its tool calls one by one, until it finishes, is
/// stuck, reaches its iteration cap, fails or is stopped.
async fn run_agent(
    agent: &mut SubAgent,
    run: &SubRun,
    mut stop: watch::Receiver<bool>,
    usage: &dyn Fn(CallUsage),
) -> Outcome {
    let available: Vec<&str> = run.tool_names.iter().map(String::as_str).collect();
    for _ in 0..run.max_iterations {
        if agent.events.len() >= MAX_EVENTS {
            log::info!("sub-agent {}: history limit reached", agent.conversation_id);
            return Outcome::Finished(agent.final_response());
        }
        if stuck::is_stuck(&agent.events) {
            log::info!(
                "sub-agent {}: stuck pattern detected",
                agent.conversation_id
            );
            return Outcome::Finished(agent.final_response());
        }
        let messages = view::build_messages(&agent.events);
        let started = std::time::Instant::now();
        let call = llm::complete(&run.http, &run.cfg, &messages, &run.tools, None);
        let res = unless_stopped(&mut stop, call).await;
        let counters = &run.counters;
        if res.is_some() {
            counters.llm_duration.observe(started.elapsed());
            Counters::add(&counters.llm_calls, 1);
        }
        let r = match res {
            None => return Outcome::Stopped,
            Some(Err(e)) => {
                Counters::add(&counters.llm_errors, 1);
                return Outcome::Failed(e.detail());
            }
            Some(Ok(r)) => r,
        };
        Counters::add(&counters.llm_latency_micros, r.latency.as_micros() as u64);
        Counters::add(&counters.llm_prompt_tokens, r.usage.prompt_tokens);
        Counters::add(&counters.llm_completion_tokens, r.usage.completion_tokens);
        usage(CallUsage {
            model: run.model.clone(),
            response_id: r.id.clone(),
            prompt_tokens: r.usage.prompt_tokens,
            completion_tokens: r.usage.completion_tokens,
            cache_read_tokens: r.usage.cache_read_tokens,
            cache_write_tokens: r.usage.cache_write_tokens,
            reasoning_tokens: r.usage.reasoning_tokens,
            context_window: run.context_window,
            cost: r.cost,
            latency: r.latency.as_secs_f64(),
            timestamp: crate::time::now_epoch_f64(),
        });
        if r.tool_calls.is_empty() {
            let empty = r.content.trim().is_empty();
            let mut reply = Message::new(
                "assistant",
                if empty {
                    vec![]
                } else {
                    vec![Content::text(r.content.clone())]
                },
            );
            reply.reasoning_content = r.reasoning_content.clone();
            reply.thinking_blocks = r.thinking_blocks.clone();
            agent.events.push(sub_event(
                Source::Agent,
                EventBody::Message(MessageEvent {
                    llm_response_id: Some(r.id.clone()),
                    ..MessageEvent::new(reply)
                }),
            ));
            if empty {
                agent.events.push(sub_event(
                    Source::User,
                    EventBody::Message(MessageEvent::new(Message::new(
                        "user",
                        vec![Content::text(NUDGE)],
                    ))),
                ));
                continue;
            }
            return Outcome::Finished(agent.final_response());
        }
        let mut calls = r.tool_calls.clone();
        if let Some(i) = calls.iter().position(|c| c.name == "finish") {
            calls.truncate(i + 1);
        }
        let mut pending = vec![];
        for (i, call) in calls.iter().enumerate() {
            let parsed = catalog::parse_tool_call(&available, &call.name, &call.arguments);
            let (tool_name, action, arguments, summary, error) = match parsed {
                ParsedCall::Ok {
                    tool_name,
                    action,
                    normalized_arguments,
                    summary,
                    ..
                } => (
                    tool_name,
                    Some(action),
                    normalized_arguments,
                    Some(summary),
                    None,
                ),
                ParsedCall::Err {
                    tool_name,
                    arguments,
                    message,
                } => (tool_name, None, arguments, None, Some(message)),
            };
            let recorded_name = if error.is_some() {
                call.name.clone()
            } else {
                tool_name.clone()
            };
            let first = i == 0;
            agent.events.push(sub_event(
                Source::Agent,
                EventBody::Action(ActionEvent {
                    thought: if first && !r.content.trim().is_empty() {
                        vec![Content::text(r.content.clone())]
                    } else {
                        vec![]
                    },
                    reasoning_content: if first {
                        r.reasoning_content.clone()
                    } else {
                        None
                    },
                    thinking_blocks: if first {
                        r.thinking_blocks.clone()
                    } else {
                        vec![]
                    },
                    responses_reasoning_item: None,
                    action: action.clone(),
                    tool_name: recorded_name.clone(),
                    tool_call_id: call.id.clone(),
                    tool_call: MessageToolCall {
                        id: call.id.clone(),
                        responses_item_id: None,
                        name: recorded_name,
                        arguments,
                        origin: "completion".into(),
                    },
                    llm_response_id: r.id.clone(),
                    security_risk: "UNKNOWN".into(),
                    critic_result: None,
                    summary,
                }),
            ));
            pending.push((tool_name, call.id.clone(), action, error));
        }
        let mut finished = false;
        for (tool_name, call_id, action, error) in pending {
            let outcome = match (action, error) {
                (Some(action), _) => {
                    if tool_name == "finish" {
                        finished = true;
                    }
                    match unless_stopped(&mut stop, execute(agent, run, &tool_name, action)).await {
                        Some(o) => o,
                        None => {
                            if let Some(t) = &agent.terminal {
                                t.do_send(terminal::Interrupt);
                            }
                            return Outcome::Stopped;
                        }
                    }
                }
                (None, error) => {
                    Err(error
                        .unwrap_or_else(|| format!("Tool '{tool_name}' could not be validated")))
                }
            };
            let ev = match outcome {
                Ok(observation) => sub_event(
                    Source::Environment,
                    EventBody::Observation(ObservationEvent {
                        tool_name,
                        tool_call_id: call_id,
                        observation,
                        action_id: String::new(),
                    }),
                ),
                Err(error) => sub_event(
                    Source::Agent,
                    EventBody::AgentError(AgentErrorEvent {
                        tool_name,
                        tool_call_id: call_id,
                        error,
                    }),
                ),
            };
            agent.events.push(ev);
        }
        if finished {
            return Outcome::Finished(agent.final_response());
        }
    }
    // The reference ends a run at its cap with an error status; the task then reports
    // whatever the sub-agent last said.
    Outcome::Finished(agent.final_response())
}

/// Runs one validated action of a sub-agent's tool.
async fn execute(
    agent: &mut SubAgent,
    run: &SubRun,
    tool: &str,
    action: Value,
) -> Result<Value, String> {
    let failed = |e: String| format!("Error executing tool '{tool}': {e}");
    match tool {
        "finish" => {
            let msg = action.get("message").and_then(Value::as_str).unwrap_or("");
            Ok(catalog::finish_observation(msg))
        }
        "think" => Ok(catalog::think_observation()),
        "task_tracker" => Ok(agent.tracker.execute(&action).to_json()),
        "terminal" => {
            let addr = match &agent.terminal {
                Some(t) if t.connected() => t.clone(),
                _ => {
                    let mut cfg = TerminalConfig::new(run.cwd.clone());
                    cfg.no_change_timeout = run.terminal_timeout;
                    cfg.full_output_save_dir = Some(run.observations_dir.clone());
                    let addr = Supervisor::start(move |_| TerminalSession::new(cfg));
                    agent.terminal = Some(addr.clone());
                    addr
                }
            };
            let secrets = resolve_secrets(&run.http, &run.secret_sources).await;
            match addr.send(terminal::Execute { action, secrets }).await {
                Ok(Ok(obs)) => Ok(obs.to_json()),
                Ok(Err(e)) => Err(failed(e.to_string())),
                Err(e) => Err(failed(format!("the terminal stopped ({e})"))),
            }
        }
        "file_editor" => {
            let mut editor = agent.editor.take().unwrap_or_default();
            let cwd = run.cwd.clone();
            let res = tokio::task::spawn_blocking(move || {
                let obs = editor.execute(&action, &cwd).to_json();
                (editor, obs)
            })
            .await;
            match res {
                Ok((editor, obs)) => {
                    agent.editor = Some(editor);
                    Ok(obs)
                }
                Err(e) => Err(failed(e.to_string())),
            }
        }
        "apply_patch" | "read_file" | "write_file" | "edit" | "list_directory" | "glob"
        | "grep" => {
            let cwd = run.cwd.clone();
            let given = run.given_cwd.clone();
            let name = tool.to_string();
            let res = tokio::task::spawn_blocking(move || match name.as_str() {
                "apply_patch" => apply_patch::apply(&action, &cwd),
                "read_file" => Ok(gemini::read_file(&action, &given)),
                "write_file" => Ok(gemini::write_file(&action, &given)),
                "edit" => Ok(gemini::edit(&action, &given)),
                "list_directory" => Ok(gemini::list_directory(&action, &given)),
                "glob" => Ok(search::glob(&action, &cwd)),
                _ => Ok(search::grep(&action, &cwd)),
            })
            .await;
            match res {
                Ok(Ok(obs)) => Ok(obs),
                Ok(Err(e)) => Err(failed(e)),
                Err(e) => Err(failed(e.to_string())),
            }
        }
        other => Err(format!("Tool '{other}' is not available on this server")),
    }
}
