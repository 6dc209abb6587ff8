//! The agent loop, run inside the conversation actor without ever blocking
//! its mailbox: each LLM call and each tool execution is a spawned future
//! whose completion comes back to the actor, which appends the resulting
//! events and takes the next step. Pause takes effect between steps;
//! interrupt cancels the step in flight. A generation counter makes late
//! completions of a cancelled step harmless.
//!
//! Step: build messages from the events → call the LLM → append one
//! `ActionEvent` per tool call → (confirmation?) → run the tools one by one,
//! appending each observation → next step; until `finish`, a text answer,
//! the iteration cap, a stuck pattern, pause, interrupt or an error. The
//! conversation's hooks (`hooks.rs`) run at their points of this loop in
//! the same spawned, cancellable way: before each action is appended, after
//! each observation, when the agent has finished (and may be sent back).
//!
//! Like the reference, whose pause waits for the state lock a running step
//! holds, `/pause` answers once the step in flight has ended and the pause
//! has been recorded; streamed token deltas are published before the events
//! of the answer they spell.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use super::ActorError;
use super::actor::ConversationActor;
use super::messages::*;
use crate::agent::condense::{self, CondenserConfig};
use crate::agent::security::{self, Risk};
use crate::agent::{stuck, view};
use crate::llm::{self, ChatMessage, LlmConfig, LlmError, ToolSpec};
use crate::metrics::Counters;
use crate::model::conversation::ExecutionStatus;
use crate::model::event::Message;
use crate::model::event::*;
use crate::model::llm::Llm;
use crate::model::stats::CallUsage;
use crate::tools::catalog::{self, ParsedCall, ToolContext};
use crate::tools::content::Content;
use crate::tools::file_editor::FileEditor;
use crate::tools::planning::{self, PlanningEditor};
use crate::tools::prompt::{self, Bundled, PromptFile, Template};
use crate::tools::task_tracker::TaskTracker;
use crate::tools::terminal::{self, TerminalConfig, TerminalSession};
use crate::tools::{apply_patch, gemini, search};

/// One action waiting for execution.
#[derive(Debug, Clone)]
pub struct PendingAction {
    /// Id of the `ActionEvent`.
    pub action_id: String,
    /// Tool name.
    pub tool_name: String,
    /// Tool call id.
    pub tool_call_id: String,
    /// Validated action, or `None` when the call was invalid.
    pub action: Option<Value>,
    /// Why the call was invalid.
    pub error: Option<String>,
}

/// Tool instances of one conversation, kept across runs.
#[derive(Default)]
pub struct Tools {
    /// The agent's MCP servers and their tools.
    pub(super) mcp: super::mcp::McpState,
    terminal: Option<Addr<TerminalSession>>,
    editor: Option<FileEditor>,
    tracker: Option<TaskTracker>,
    /// The planning agent's editor (taken while one of its actions runs).
    planning: Option<PlanningEditor>,
    /// The planning agent's plan file, once worked out for this actor's life.
    plan: Option<PathBuf>,
    /// The `task` tool's sub-agents.
    pub(super) subagents: super::subagent::SubAgents,
    /// The LLM profile names `switch_llm` lists, read once for this actor's life.
    pub(super) profiles: Option<Arc<Vec<String>>>,
}

/// Run state of one conversation.
#[derive(Default)]
pub struct RunState {
    pub(super) active: bool,
    pub(super) generation: u64,
    pub(super) handle: Option<SpawnHandle>,
    pub(super) iterations: u64,
    rerun: bool,
    permit: Option<OwnedSemaphorePermit>,
    queue: VecDeque<PendingAction>,
    /// The conversation's LLM events, loaded on first use and kept current.
    view: Option<Vec<Event>>,
    /// Seq of the newest event the LLM has been shown.
    llm_saw_upto: u64,
    /// Seq of the newest user message.
    last_user_seq: u64,
    /// Condense before the next LLM call whatever the view's size.
    force_condense: bool,
    /// A condensation failed or was refused this step: call the LLM anyway.
    skip_condense: bool,
    /// The context-window recovery was already tried in this run.
    tried_hard_condense: bool,
    /// `/pause` callers waiting for the step in flight to end.
    pause_waiters: Vec<oneshot::Sender<Result<(), ActorError>>>,
    /// Token deltas of the streaming LLM call in flight, in arrival order.
    deltas: Option<mpsc::UnboundedReceiver<llm::StreamDelta>>,
    pub(super) tools: Tools,
    /// The LLM settings and tool definitions of the last step, reused while
    /// the agent's LLM and tools stay the same.
    llm_setup: Option<LlmSetup>,
    /// `ask_agent` questions in flight (their futures live in the actor's
    /// context: an eviction would drop them).
    asks: usize,
    /// The model of the fallback profile that answered the last agent call.
    fallback_model: Option<String>,
    /// The reference's LLM registry: the LLMs this conversation has used, by usage
    /// id, for this actor's life; the first LLM registered under an id wins.
    pub(super) llms: std::collections::HashMap<String, Llm>,
    /// Whether the agent's own LLMs are registered (the agent was set up).
    pub(super) llms_seeded: bool,
}

/// What one LLM call is made with, and what it was derived from.
struct LlmSetup {
    llm: Llm,
    tool_names: Vec<String>,
    working_dir: String,
    cfg: Arc<LlmConfig>,
    tools: Arc<Vec<ToolSpec>>,
}

impl RunState {
    /// Whether no run is active and no question is being answered.
    pub fn is_idle(&self) -> bool {
        !self.active && self.asks == 0
    }

    /// Forgets everything of a run (after an actor restart); tools stay.
    pub fn reset(&mut self) {
        let mut tools = std::mem::take(&mut self.tools);
        tools.mcp.forget_pending();
        tools.subagents.stop();
        *self = RunState {
            tools,
            generation: self.generation + 1,
            ..Default::default()
        };
    }

    /// Makes the next step rebuild its LLM settings and tool definitions.
    pub(super) fn forget_llm_setup(&mut self) {
        self.llm_setup = None;
    }

    /// Drops the cached agent view and the tools (the actor is closing).
    pub fn release_memory(&mut self) {
        self.view = None;
        self.queue.clear();
        self.tools = Tools::default();
    }

    /// Keeps the LLM view current as events are appended.
    pub fn observe(&mut self, events: Vec<Event>) {
        if let Some(view) = &mut self.view {
            let condensed = events.iter().any(condense::is_condensation);
            view.extend(events.into_iter().filter(view::is_llm_event));
            if condensed {
                condense::compact(view);
            }
        }
    }
}

const INTERRUPTED: &str = "Tool call interrupted before completion. The conversation was paused.";
const RESTARTED: &str = "A restart occurred while this tool was in progress. This may indicate a fatal memory error or system crash. The tool execution was interrupted and did not complete.";
const NUDGE: &str = "Your last response did not include a function call or a message. Please use a tool to proceed with the task.";

pub(super) fn vision(llm: &Llm) -> bool {
    if llm.disable_vision == Some(true) {
        return false;
    }
    let m = llm.model.to_ascii_lowercase();
    ["claude", "gpt-4o", "gpt-4.1", "gpt-5", "gemini", "o3", "o4"]
        .iter()
        .any(|p| m.contains(p))
}

impl ConversationActor {
    pub(super) fn working_dir(&self) -> PathBuf {
        let wd = PathBuf::from(&self.record.workspace.working_dir);
        if wd.is_absolute() {
            wd
        } else {
            std::env::current_dir().map(|c| c.join(&wd)).unwrap_or(wd)
        }
    }

    /// The tools the LLM is offered, in the agent's order: its own tools that this
    /// server implements and `filter_tools_regex` keeps (matched at the start of the
    /// name, as the reference does), then the built-ins.
    pub(super) fn tool_names(&self) -> Vec<String> {
        let agent = &self.record.agent;
        let filter = agent
            .filter_tools_regex
            .as_deref()
            .and_then(|re| regex::Regex::new(&format!("^(?:{re})")).ok());
        // A tool set (`task_tool_set`) stands for its tool (`task`), which is what the
        // filter sees, as in the reference.
        let own: Vec<&str> = agent
            .tools
            .iter()
            .filter_map(|t| catalog::offered_name(&t.name))
            .collect();
        let mut names: Vec<String> = vec![];
        for n in agent.tool_names() {
            let Some(n) = catalog::offered_name(&n) else {
                continue;
            };
            let kept = !own.contains(&n) || filter.as_ref().is_none_or(|f| f.is_match(n));
            if kept && !names.iter().any(|m| m == n) {
                names.push(n.to_string());
            }
        }
        names
    }

    /// Why the agent cannot be set up (the reference's `init_state` failing), as the
    /// exception text the first message is answered with: a tool that cannot be set up,
    /// then a system prompt template that does not exist.
    pub(super) fn agent_setup_error(&self) -> Option<String> {
        let agent = &self.record.agent;
        let tools: Vec<(&str, &serde_json::Map<String, Value>)> = agent
            .tools
            .iter()
            .map(|t| (t.name.as_str(), &t.params))
            .collect();
        if let Some(error) = catalog::tool_setup_error(&tools) {
            return Some(error);
        }
        // An inline prompt is used verbatim; the template is never looked at.
        if has_inline_prompt(agent) {
            return None;
        }
        match PromptFile::resolve(&agent.system_prompt_filename) {
            Err(error) => Some(error),
            Ok(PromptFile::Custom(path)) if !std::path::Path::new(&path).is_file() => {
                Some(prompt::prompt_not_found(&path))
            }
            Ok(_) => None,
        }
    }

    /// The planning agent's plan file, worked out once per actor life; `None` when the
    /// agent has no `planning_file_editor`.
    fn plan_path(&mut self) -> Option<PathBuf> {
        if let Some(p) = &self.run.tools.plan {
            return Some(p.clone());
        }
        let tool = self
            .record
            .agent
            .tools
            .iter()
            .find(|t| t.name == "planning_file_editor")?;
        let path = planning::plan_path(&tool.params, &self.working_dir());
        self.run.tools.plan = Some(path.clone());
        // Like the reference, which sets its tools up again whenever a conversation
        // is loaded, the plan file is created (if missing) once per actor life.
        let plan = path.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = planning::ensure_plan_file(&plan) {
                log::warn!("could not create the plan file {}: {e}", plan.display());
            }
        });
        Some(path)
    }

    /// The `SystemPromptEvent` emitted before the first user message.
    pub(super) fn system_prompt_event(&mut self) -> Event {
        let agent = &self.record.agent;
        let mut kwargs = agent.system_prompt_kwargs.clone();
        kwargs.insert(
            "security_policy_filename".into(),
            Value::String(agent.security_policy_filename.clone()),
        );
        let secret_names: Vec<String> = self.record.secret_sources.keys().cloned().collect();
        let policy = custom_security_policy(&agent.security_policy_filename);
        let file = PromptFile::resolve(&agent.system_prompt_filename);
        let custom = match &file {
            Ok(PromptFile::Custom(path)) if !has_inline_prompt(agent) => custom_system_prompt(path),
            _ => None,
        };
        let template = match (file, &custom) {
            (_, Some(text)) => Template::Text(text),
            (Ok(PromptFile::Bundled(b)), None) => Template::Bundled(b),
            // Refused before the first message (`agent_setup_error`), unless the file went
            // away since: the default prompt then.
            _ => Template::Bundled(Bundled::Default),
        };
        let (prompt, dynamic) = prompt::system_prompt_for(
            template,
            &kwargs,
            &agent.llm.model,
            policy.as_deref(),
            &secret_names,
        );
        let mut prompt = match &agent.system_prompt {
            Some(inline) if has_inline_prompt(agent) => inline.clone(),
            _ => prompt,
        };
        if let Some(extra) = crate::agent::skills::system_additions(agent.agent_context.as_ref()) {
            prompt.push_str("\n\n");
            prompt.push_str(&extra);
        }
        let vision = vision(&agent.llm);
        let names = self.tool_names();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let plan = self.plan_path().map(|p| p.to_string_lossy().into_owned());
        let types = names
            .iter()
            .any(|n| n == "task" || n == "delegate")
            .then(|| self.agent_types_for_tools());
        let profiles = self.profiles_for(&names);
        let ctx = ToolContext {
            working_dir: &self.record.workspace.working_dir,
            vision,
            plan_path: plan.as_deref(),
            agent_types: types.as_ref(),
            profiles: &profiles,
        };
        // The 1.24 client has no `DelegateTool` class, so a recorded definition of that
        // kind would make it drop the whole event: `delegate` is offered to the LLM but
        // not listed here.
        let refs: Vec<&str> = refs.into_iter().filter(|n| *n != "delegate").collect();
        let tools = catalog::tool_definitions_in(&refs, &ctx);
        let tools = self.with_mcp_definitions(tools);
        self.new_event(
            Source::Agent,
            EventBody::SystemPrompt(SystemPromptEvent {
                system_prompt: Content::text(prompt),
                tools,
                dynamic_context: dynamic.map(Content::text),
            }),
        )
    }

    /// A user `MessageEvent`.
    pub(super) fn user_message_event(&mut self, content: Vec<Content>) -> Event {
        self.new_event(
            Source::User,
            EventBody::Message(MessageEvent::new(Message::new("user", content))),
        )
    }

    /// A message from the user, with the knowledge skills its text
    /// activates and the agent context's extended content; the state
    /// update for newly activated skills follows it.
    pub(super) fn incoming_user_message(&mut self, content: Vec<Content>) -> Vec<Event> {
        let text: Vec<&str> = content.iter().filter_map(|c| c.as_text()).collect();
        let (activated, extended) = crate::agent::skills::for_user_message(
            self.record.agent.agent_context.as_ref(),
            &text.join("\n"),
            &self.record.activated_knowledge_skills,
        );
        let mut message = self.user_message_event(content);
        if let EventBody::Message(m) = &mut message.body {
            m.activated_skills = activated.clone();
            m.extended_content = extended;
        }
        let mut events = vec![message];
        if !activated.is_empty() {
            self.record.activated_knowledge_skills.extend(activated);
            let list =
                serde_json::to_value(&self.record.activated_knowledge_skills).unwrap_or_default();
            events.push(self.state_event("activated_knowledge_skills", list));
        }
        events
    }

    /// After a user message was appended: remember it, maybe title the
    /// conversation from its text (`text`: its text parts, space-joined).
    pub(super) fn on_user_message(&mut self, ctx: &mut Context<Self>, text: String) {
        self.run.last_user_seq = self.last_seq;
        if self.record.autotitle && self.record.title.is_none() {
            self.generate_title(ctx, text);
        }
    }

    fn generate_title(&mut self, ctx: &mut Context<Self>, text: String) {
        if text.trim().is_empty() {
            return;
        }
        let fallback = truncate_title(&text);
        let cfg = match LlmConfig::from_json(&self.record.agent.llm.to_value()) {
            Ok(c) => c,
            Err(_) => {
                self.set_title(ctx, fallback);
                return;
            }
        };
        let http = self.deps.http.clone();
        let messages = vec![
            ChatMessage::system(
                "You name conversations. Reply with a short, specific title of at most 50 characters \
                 for the conversation that starts with the user's message. Reply with the title only.",
            ),
            ChatMessage::user(truncate_chars(&text, 2000)),
        ];
        let usage_id = cfg.usage_id.clone();
        let maker = self.call_maker();
        ctx.spawn(
            async move { llm::ask(&http, &cfg, &messages, &[]).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    let title = match res {
                        Ok(r) => {
                            // The agent's LLM made the call: it counts in its usage.
                            let call = Self::call_usage(maker, &r);
                            act.writer
                                .record_call(&mut act.record.stats, &usage_id, call);
                            if r.content.trim().is_empty() {
                                fallback
                            } else {
                                truncate_title(r.content.trim().trim_matches('"'))
                            }
                        }
                        Err(_) => fallback,
                    };
                    act.set_title(ctx, title);
                }),
        );
    }

    /// The usage entry of one LLM call made with the agent's LLM.
    /// The model and context window of the agent's LLM now, for the usage of a
    /// call it makes: taken when the call starts, since a switch of LLM may
    /// land while the call is in flight.
    fn call_maker(&self) -> (String, u64) {
        let llm_cfg = &self.record.agent.llm;
        (
            llm_cfg.model.clone(),
            llm_cfg.max_input_tokens.unwrap_or(0).max(0) as u64,
        )
    }

    fn call_usage((model, context_window): (String, u64), r: &llm::LlmResponse) -> CallUsage {
        CallUsage {
            model,
            response_id: r.id.clone(),
            prompt_tokens: r.usage.prompt_tokens,
            completion_tokens: r.usage.completion_tokens,
            cache_read_tokens: r.usage.cache_read_tokens,
            cache_write_tokens: r.usage.cache_write_tokens,
            reasoning_tokens: r.usage.reasoning_tokens,
            context_window,
            cost: r.cost,
            latency: r.latency.as_secs_f64(),
            timestamp: crate::time::now_epoch_f64(),
        }
    }

    /// Counts a call made beside the agent loop (no event is recorded; the
    /// usage is stored with the record).
    fn count_side_call(
        &mut self,
        ctx: &mut Context<Self>,
        usage_id: &str,
        maker: (String, u64),
        r: &llm::LlmResponse,
    ) {
        if self.gone {
            return;
        }
        let call = Self::call_usage(maker, r);
        self.writer
            .record_call(&mut self.record.stats, usage_id, call);
        let _ = self.append(ctx, vec![], true);
    }

    fn set_title(&mut self, ctx: &mut Context<Self>, title: String) {
        if self.gone || self.record.title.is_some() {
            return;
        }
        self.record.title = Some(title);
        // The reference stamps the conversation when its title is set.
        self.record.updated_at = crate::time::now_utc();
        let _ = self.append(ctx, vec![], true);
    }

    /// The LLM events, loaded from the store on first use.
    fn view_events(&mut self) -> &Vec<Event> {
        if self.run.view.is_none() {
            let mut events = vec![];
            for item in self.deps.store.events_from(&self.id, 1, false) {
                match item
                    .map_err(|e| e.to_string())
                    .and_then(|e| Event::from_json(e.json()))
                {
                    Ok(e) if view::is_llm_event(&e) => events.push(e),
                    Ok(_) => {}
                    Err(e) => log::warn!(
                        "conversation {}: event skipped in the agent's view: {e}",
                        self.id
                    ),
                }
            }
            condense::compact(&mut events);
            self.run.view = Some(events);
        }
        self.run.view.get_or_insert_with(Vec::new)
    }

    /// Actions appended but never answered by an observation, error or rejection.
    fn unmatched_actions(&mut self) -> Vec<PendingAction> {
        let events = self.view_events();
        let answered: std::collections::HashSet<&str> = events
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Observation(o) => Some(o.tool_call_id.as_str()),
                EventBody::AgentError(o) => Some(o.tool_call_id.as_str()),
                EventBody::UserReject(o) => Some(o.tool_call_id.as_str()),
                _ => None,
            })
            .collect();
        events
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Action(a) if !answered.contains(a.tool_call_id.as_str()) => {
                    Some(PendingAction {
                        action_id: e.id.clone(),
                        tool_name: a.tool_name.clone(),
                        tool_call_id: a.tool_call_id.clone(),
                        action: a.action.clone(),
                        error: None,
                    })
                }
                _ => None,
            })
            .collect()
    }

    /// Starts a run, or (when one is active) remembers to run again after it.
    pub(super) fn request_run(
        &mut self,
        ctx: &mut Context<Self>,
        from_message: bool,
    ) -> Result<(), ActorError> {
        if self.run.active {
            if from_message {
                self.run.rerun = true;
                return Ok(());
            }
            return Err(ActorError::Conflict(
                "Conversation already running. Wait for completion or pause first.".into(),
            ));
        }
        self.start_run(ctx);
        Ok(())
    }

    fn start_run(&mut self, ctx: &mut Context<Self>) {
        if !self.record.agent_initialized
            && let Some(error) = self.agent_setup_error()
        {
            // The reference's run fails while setting the agent up, before any status
            // change; it only logs the error and publishes the state.
            log::warn!("conversation {}: cannot start the agent: {error}", self.id);
            let snap = self.full_state_event();
            self.publish_ephemeral(snap);
            return;
        }
        self.seed_llm_registry();
        let finished = self.record.execution_status == ExecutionStatus::Finished;
        if finished && !self.finished_run_has_hooks() {
            // A finished conversation stays finished until a new message.
            let snap = self.full_state_event();
            self.publish_ephemeral(snap);
            return;
        }
        self.run.active = true;
        self.run.generation += 1;
        self.run.iterations = 0;
        self.run.queue.clear();
        Counters::add(&self.deps.counters.runs_started, 1);
        // A finished conversation stays finished while its Stop hooks are
        // asked again (the reference's loop starts there).
        if !finished
            && let Some(ev) = self.set_status(ExecutionStatus::Running)
            && self.append(ctx, vec![ev], true).is_err()
        {
            return;
        }
        let generation = self.run.generation;
        match self.deps.run_slots.clone().try_acquire_owned() {
            Ok(permit) => {
                self.run.permit = Some(permit);
                Counters::add(&self.deps.counters.runs_active, 1);
                self.step(ctx);
            }
            Err(_) => {
                log::info!("conversation {}: waiting for a run slot", self.id);
                Counters::add(&self.deps.counters.runs_waiting, 1);
                self.record
                    .agent_state
                    .insert("run_queue".into(), json!("waiting_for_slot"));
                let ev = self.state_event(
                    "agent_state",
                    Value::Object(self.record.agent_state.clone()),
                );
                let _ = self.append(ctx, vec![ev], true);
                let slots = self.deps.run_slots.clone();
                let handle = ctx.spawn(
                    async move { slots.acquire_owned().await.ok() }
                        .into_actor(self)
                        .map(move |permit, act, ctx| {
                            Counters::sub(&act.deps.counters.runs_waiting, 1);
                            if act.run.generation != generation || !act.run.active {
                                return;
                            }
                            act.record.agent_state.shift_remove("run_queue");
                            let ev = act.state_event(
                                "agent_state",
                                Value::Object(act.record.agent_state.clone()),
                            );
                            let _ = act.append(ctx, vec![ev], true);
                            match permit {
                                Some(p) => {
                                    act.run.permit = Some(p);
                                    Counters::add(&act.deps.counters.runs_active, 1);
                                    act.step(ctx);
                                }
                                None => {
                                    act.fail_run(ctx, "RuntimeError", "run admission closed".into())
                                }
                            }
                        }),
                );
                self.run.handle = Some(handle);
            }
        }
    }

    /// Whether a run of a finished conversation has hooks to run: its Stop
    /// hooks, or a session to start.
    fn finished_run_has_hooks(&mut self) -> bool {
        let Some(cfg) = self.hook_config() else {
            return false;
        };
        !cfg.hooks_for(crate::hooks::HookEventType::Stop, None)
            .is_empty()
            || self.session_pending()
    }

    /// One iteration of the loop.
    pub(super) fn step(&mut self, ctx: &mut Context<Self>) {
        if !self.run.active || self.gone {
            return;
        }
        if !self.run.pause_waiters.is_empty() {
            if self.record.execution_status != ExecutionStatus::Finished {
                // A pause asked for during the last step takes effect here.
                return self.end_run(ctx);
            }
            // The reference's pause leaves a finished conversation alone,
            // and its Stop hooks still run.
            self.settle_pause(ctx);
        }
        if self.start_session_in_run(ctx) {
            return;
        }
        match self.record.execution_status {
            ExecutionStatus::Finished => {
                if !self.stop_hooks(ctx) {
                    self.end_run(ctx);
                }
                return;
            }
            ExecutionStatus::Paused | ExecutionStatus::Stuck | ExecutionStatus::Error => {
                return self.end_run(ctx);
            }
            ExecutionStatus::WaitingForConfirmation | ExecutionStatus::Idle => {
                if let Some(ev) = self.set_status(ExecutionStatus::Running)
                    && self.append(ctx, vec![ev], true).is_err()
                {
                    return;
                }
            }
            _ => {}
        }
        if self.mcp_step_waits(ctx) {
            return;
        }
        let pending = self.unmatched_actions();
        if !pending.is_empty() {
            self.run.queue = pending.into();
            return self.execute_next(ctx);
        }
        if self.record.stuck_detection && stuck::is_stuck(self.view_events()) {
            log::info!("conversation {}: stuck pattern detected", self.id);
            if let Some(ev) = self.set_status(ExecutionStatus::Stuck) {
                let _ = self.append(ctx, vec![ev], true);
            }
            return self.end_run(ctx);
        }
        if self.run.iterations >= self.record.max_iterations {
            let detail = format!(
                "Agent reached maximum iterations limit ({}).",
                self.record.max_iterations
            );
            return self.fail_run(ctx, "MaxIterationsReached", detail);
        }
        if self.take_blocked_message(ctx) {
            return;
        }
        if self.maybe_condense(ctx, None) {
            return;
        }
        self.run.iterations += 1;
        let (cfg, tools) = match self.llm_setup() {
            Ok(setup) => setup,
            Err(e) => return self.fail_run(ctx, e.code(), e.detail()),
        };
        let messages = view::build_messages(self.view_events());
        self.run.llm_saw_upto = self.last_seq;
        let http = self.deps.http.clone();
        let generation = self.run.generation;
        let counters = self.deps.counters.clone();
        let fallbacks = self.fallbacks();
        let me = ctx.address();
        let (delta_tx, delta_rx) = mpsc::unbounded_channel();
        self.run.deltas = cfg.stream.then_some(delta_rx);
        let handle = ctx.spawn(
            async move {
                // Token deltas go to subscribers as they arrive (never stored);
                // the queue keeps them ahead of this call's completion.
                let on_delta = move |d: llm::StreamDelta| {
                    if delta_tx.send(d).is_ok() {
                        me.do_send(DeltasReady { generation });
                    }
                };
                let stream = cfg.stream;
                let started = std::time::Instant::now();
                let deltas = stream.then_some(&on_delta as _);
                let res = llm::complete(&http, &cfg, &messages, &tools, deltas).await;
                let res = match (res, fallbacks) {
                    (Err(e), Some(f)) if super::fallback::eligible(&e) => {
                        f.try_all(&http, &messages, &tools, deltas, e).await
                    }
                    (res, _) => res.map(|r| (r, None)),
                };
                counters.llm_duration.observe(started.elapsed());
                Counters::add(&counters.llm_calls, 1);
                match &res {
                    Ok((r, _)) => {
                        Counters::add(&counters.llm_latency_micros, r.latency.as_micros() as u64);
                        Counters::add(&counters.llm_prompt_tokens, r.usage.prompt_tokens);
                        Counters::add(&counters.llm_completion_tokens, r.usage.completion_tokens);
                    }
                    Err(_) => Counters::add(&counters.llm_errors, 1),
                }
                res
            }
            .into_actor(self)
            .map(move |res, act, ctx| {
                if act.run.generation == generation && act.run.active {
                    act.publish_deltas();
                    act.run.deltas = None;
                    let res = res.map(|(r, fallback_model)| {
                        act.run.fallback_model = fallback_model;
                        r
                    });
                    act.on_llm(res, ctx);
                }
            }),
        );
        self.run.handle = Some(handle);
    }

    /// The LLM settings and tool definitions for the next call, rebuilt
    /// only when the agent's LLM, tools or working directory changed.
    fn llm_setup(&mut self) -> Result<(Arc<LlmConfig>, Arc<Vec<ToolSpec>>), LlmError> {
        let tool_names = self.tool_names();
        let llm = &self.record.agent.llm;
        let working_dir = &self.record.workspace.working_dir;
        let current = self.run.llm_setup.as_ref().is_some_and(|s| {
            s.llm == *llm && s.tool_names == tool_names && s.working_dir == *working_dir
        });
        if !current {
            let cfg = LlmConfig::from_json(&llm.to_value())?;
            let llm = llm.clone();
            let working_dir = working_dir.clone();
            let tools = self.llm_tools();
            self.run.llm_setup = Some(LlmSetup {
                llm,
                tool_names,
                working_dir,
                cfg: Arc::new(cfg),
                tools: Arc::new(tools),
            });
        }
        let setup = self.run.llm_setup.as_ref().expect("set above");
        Ok((setup.cfg.clone(), setup.tools.clone()))
    }

    /// The tool definitions offered to the LLM.
    fn llm_tools(&mut self) -> Vec<ToolSpec> {
        let names = self.tool_names();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let plan = self.plan_path().map(|p| p.to_string_lossy().into_owned());
        let types = names
            .iter()
            .any(|n| n == "task" || n == "delegate")
            .then(|| self.agent_types_for_tools());
        let profiles = self.profiles_for(&names);
        let ctx = ToolContext {
            working_dir: &self.record.workspace.working_dir,
            vision: vision(&self.record.agent.llm),
            plan_path: plan.as_deref(),
            agent_types: types.as_ref(),
            profiles: &profiles,
        };
        let specs = catalog::tool_specs_in(&refs, &ctx)
            .into_iter()
            .map(|t| ToolSpec {
                name: t.name,
                description: t.description,
                parameters: t.parameters,
            })
            .collect();
        self.with_mcp_specs(specs)
    }

    /// Publishes the queued token deltas of the LLM call in flight.
    fn publish_deltas(&mut self) {
        let Some(mut rx) = self.run.deltas.take() else {
            return;
        };
        while let Ok(delta) = rx.try_recv() {
            let (content, reasoning) = match delta {
                llm::StreamDelta::Content(c) => (Value::String(c), Value::Null),
                llm::StreamDelta::Reasoning(r) => (Value::Null, Value::String(r)),
            };
            let mut fields = serde_json::Map::new();
            fields.insert("content".into(), content);
            fields.insert("reasoning_content".into(), reasoning);
            let ev = self.new_event(
                Source::Agent,
                EventBody::Other {
                    kind: "StreamingDeltaEvent".into(),
                    fields,
                },
            );
            self.publish_ephemeral(ev);
        }
        self.run.deltas = Some(rx);
    }

    /// The agent LLM's fallback profiles for the next call, if it has any.
    fn fallbacks(&self) -> Option<super::fallback::Fallbacks> {
        let names = &self
            .record
            .agent
            .llm
            .fallback_strategy
            .as_ref()?
            .fallback_llms;
        (!names.is_empty()).then(|| super::fallback::Fallbacks {
            names: names.clone(),
            db: self.deps.store.db().clone(),
            cipher: self.deps.cipher.clone(),
        })
    }

    fn stats_event(&mut self, r: &llm::LlmResponse) -> Event {
        let mut call = Self::call_usage(self.call_maker(), r);
        // A fallback's answer counts under the agent LLM's usage id, as the
        // reference merges it into the primary's metrics, with its own model.
        if let Some(model) = self.run.fallback_model.take() {
            call.model = model;
        }
        let usage_id = self.record.agent.llm.usage_id.clone();
        self.writer
            .record_call(&mut self.record.stats, &usage_id, call);
        let snap = self.record.stats.to_snapshot_value();
        self.state_event("stats", snap)
    }

    fn on_llm(&mut self, res: Result<llm::LlmResponse, LlmError>, ctx: &mut Context<Self>) {
        self.run.handle = None;
        let r = match res {
            Ok(r) => r,
            Err(LlmError::ContextWindowExceeded(detail))
                if self.condenser().is_some() && !self.run.tried_hard_condense =>
            {
                // Shrink the history once and try the step again.
                log::info!(
                    "conversation {}: context window exceeded; condensing ({detail})",
                    self.id
                );
                self.run.tried_hard_condense = true;
                self.run.force_condense = true;
                self.run.iterations = self.run.iterations.saturating_sub(1);
                return self.step(ctx);
            }
            Err(e) => return self.fail_run(ctx, e.code(), e.detail()),
        };
        let stats = self.stats_event(&r);
        let mut events = vec![stats];
        if !r.tool_calls.is_empty() {
            let names = self.with_mcp_names(self.tool_names());
            let available: Vec<&str> = names.iter().map(String::as_str).collect();
            let analyzer = !self.record.security_analyzer.is_null();
            let mut calls = r.tool_calls.clone();
            if let Some(i) = calls.iter().position(|c| c.name == "finish") {
                calls.truncate(i + 1);
            }
            let mut actions = VecDeque::new();
            for (i, call) in calls.iter().enumerate() {
                let first = i == 0;
                let thought = if first && !r.content.trim().is_empty() {
                    vec![Content::text(r.content.clone())]
                } else {
                    vec![]
                };
                let parsed = match self.parse_mcp_call(&call.name, &call.arguments, analyzer) {
                    Some(parsed) => parsed,
                    None => catalog::parse_tool_call_with_analyzer(
                        &available,
                        &call.name,
                        &call.arguments,
                        analyzer,
                    ),
                };
                let (tool_name, action, arguments, risk, summary, error) = match parsed {
                    ParsedCall::Ok {
                        tool_name,
                        action,
                        normalized_arguments,
                        event_security_risk,
                        summary,
                        ..
                    } => (
                        tool_name,
                        Some(action),
                        normalized_arguments,
                        event_security_risk,
                        Some(summary),
                        None,
                    ),
                    ParsedCall::Err {
                        tool_name,
                        arguments,
                        message,
                    } => (
                        tool_name,
                        None,
                        arguments,
                        "UNKNOWN".to_string(),
                        None,
                        Some(message),
                    ),
                };
                let ev = self.new_event(
                    Source::Agent,
                    EventBody::Action(ActionEvent {
                        thought,
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
                        tool_name: if error.is_some() {
                            call.name.clone()
                        } else {
                            tool_name.clone()
                        },
                        tool_call_id: call.id.clone(),
                        tool_call: MessageToolCall {
                            id: call.id.clone(),
                            responses_item_id: None,
                            name: if error.is_some() {
                                call.name.clone()
                            } else {
                                tool_name.clone()
                            },
                            arguments,
                            origin: "completion".into(),
                        },
                        llm_response_id: r.id.clone(),
                        security_risk: risk,
                        critic_result: None,
                        summary,
                    }),
                );
                let pending = PendingAction {
                    action_id: ev.id.clone(),
                    tool_name,
                    tool_call_id: call.id.clone(),
                    action,
                    error,
                };
                actions.push_back((ev, pending));
            }
            return self.emit_actions(ctx, events, actions, vec![]);
        }
        let text = r.content.trim().to_string();
        let mut reply = Message::new(
            "assistant",
            if text.is_empty() {
                vec![]
            } else {
                vec![Content::text(r.content.clone())]
            },
        );
        reply.reasoning_content = r.reasoning_content.clone();
        reply.thinking_blocks = r.thinking_blocks.clone();
        let agent_msg = self.new_event(
            Source::Agent,
            EventBody::Message(MessageEvent {
                llm_response_id: Some(r.id.clone()),
                ..MessageEvent::new(reply)
            }),
        );
        events.push(agent_msg);
        if text.is_empty() {
            let nudge = self.user_message_event(vec![Content::text(NUDGE)]);
            events.push(nudge);
            if self.append(ctx, events, true).is_err() {
                return;
            }
            return self.step(ctx);
        }
        events.extend(self.set_status(ExecutionStatus::Finished));
        if self.append(ctx, events, true).is_err() {
            return;
        }
        // The next step sees `finished`: Stop hooks, or the end of the run.
        self.step(ctx);
    }

    /// The actions of an LLM response are recorded: wait for confirmation,
    /// or run them.
    pub(super) fn actions_recorded(
        &mut self,
        ctx: &mut Context<Self>,
        pending: Vec<PendingAction>,
    ) {
        if self.needs_confirmation(&pending) {
            if let Some(ev) = self.set_status(ExecutionStatus::WaitingForConfirmation) {
                let _ = self.append(ctx, vec![ev], true);
            }
            return self.end_run(ctx);
        }
        self.run.queue = pending.into();
        self.execute_next(ctx)
    }

    fn needs_confirmation(&self, actions: &[PendingAction]) -> bool {
        // As the reference: only the calls that became actions count, and a
        // lone `finish` or `think` never waits.
        let executable: Vec<&PendingAction> =
            actions.iter().filter(|a| a.action.is_some()).collect();
        if executable.is_empty()
            || (executable.len() == 1
                && ["finish", "think"].contains(&executable[0].tool_name.as_str()))
        {
            return false;
        }
        let policy = &self.record.confirmation_policy;
        match policy.get("kind").and_then(Value::as_str) {
            Some("AlwaysConfirm") => true,
            Some("ConfirmRisky") => {
                let threshold = Risk::parse(
                    policy
                        .get("threshold")
                        .and_then(Value::as_str)
                        .unwrap_or("HIGH"),
                );
                let confirm_unknown = policy
                    .get("confirm_unknown")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                // The analyzer judges each action (the LLM's own risk only
                // for `LLMSecurityAnalyzer`); no analyzer means UNKNOWN.
                let analyzer = &self.record.security_analyzer;
                self.view_events_ref()
                    .iter()
                    .filter_map(|e| match &e.body {
                        EventBody::Action(a)
                            if executable.iter().any(|p| p.tool_call_id == a.tool_call_id) =>
                        {
                            Some(security::assess(analyzer, a))
                        }
                        _ => None,
                    })
                    .any(|risk| match risk {
                        Risk::Unknown => confirm_unknown,
                        risk => risk >= threshold,
                    })
            }
            _ => false,
        }
    }

    fn view_events_ref(&self) -> &[Event] {
        self.run.view.as_deref().unwrap_or(&[])
    }

    /// Runs the next queued action, or takes the next step when none is left.
    fn execute_next(&mut self, ctx: &mut Context<Self>) {
        if !self.run.active {
            return;
        }
        let Some(p) = self.run.queue.pop_front() else {
            return self.step(ctx);
        };
        if let Some(events) = self.take_blocked_action(&p) {
            if self.append(ctx, events, true).is_err() {
                return;
            }
            return self.execute_next(ctx);
        }
        let generation = self.run.generation;
        let Some(action) = p.action.clone() else {
            let message = p
                .error
                .clone()
                .unwrap_or_else(|| format!("Tool '{}' could not be validated", p.tool_name));
            return self.finish_action(ctx, &p, Err(message));
        };
        if self.execute_mcp(ctx, &p, &action) {
            return;
        }
        match p.tool_name.as_str() {
            "finish" => {
                let msg = action
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                self.finish_action(ctx, &p, Ok(catalog::finish_observation(&msg)));
            }
            "think" => self.finish_action(ctx, &p, Ok(catalog::think_observation())),
            "task" => self.execute_task(ctx, p, action),
            "delegate" => self.execute_delegate(ctx, p, action),
            "switch_llm" => self.execute_switch_llm(ctx, p, &action),
            "task_tracker" => {
                let dir = PathBuf::from(&self.record.persistence_dir);
                let tracker = self
                    .run
                    .tools
                    .tracker
                    .get_or_insert_with(|| TaskTracker::new(Some(&dir)));
                let obs = tracker.execute(&action).to_json();
                self.finish_action(ctx, &p, Ok(obs));
            }
            "file_editor" => {
                let mut editor = self.run.tools.editor.take().unwrap_or_default();
                let cwd = self.working_dir();
                let handle = ctx.spawn(
                    async move {
                        tokio::task::spawn_blocking(move || {
                            let obs = editor.execute(&action, &cwd);
                            (editor, obs.to_json())
                        })
                        .await
                    }
                    .into_actor(self)
                    .map(move |res, act, ctx| match res {
                        Ok((editor, obs)) => {
                            act.run.tools.editor = Some(editor);
                            if act.run.generation == generation && act.run.active {
                                act.finish_action(ctx, &p, Ok(obs));
                            }
                        }
                        Err(e) => {
                            if act.run.generation == generation && act.run.active {
                                act.finish_action(
                                    ctx,
                                    &p,
                                    Err(format!("Error executing tool 'file_editor': {e}")),
                                );
                            }
                        }
                    }),
                );
                self.run.handle = Some(handle);
            }
            "planning_file_editor" => {
                let plan = self.plan_path().unwrap_or_default();
                let (mut editor, fresh) = match self.run.tools.planning.take() {
                    Some(e) if e.plan() == plan => (e, false),
                    _ => (PlanningEditor::new(plan), true),
                };
                let cwd = self.working_dir();
                let handle = ctx.spawn(
                    async move {
                        tokio::task::spawn_blocking(move || {
                            // The file is created when the agent starts; a first use
                            // must not race that.
                            if fresh {
                                let _ = planning::ensure_plan_file(editor.plan());
                            }
                            let obs = editor.execute(&action, &cwd);
                            (editor, obs)
                        })
                        .await
                    }
                    .into_actor(self)
                    .map(move |res, act, ctx| {
                        let outcome = match res {
                            Ok((editor, obs)) => {
                                act.run.tools.planning = Some(editor);
                                Ok(obs)
                            }
                            Err(e) => {
                                Err(format!("Error executing tool 'planning_file_editor': {e}"))
                            }
                        };
                        if act.run.generation == generation && act.run.active {
                            act.finish_action(ctx, &p, outcome);
                        }
                    }),
                );
                self.run.handle = Some(handle);
            }
            "apply_patch" | "read_file" | "write_file" | "edit" | "list_directory" | "glob"
            | "grep" => {
                // The Gemini file tools take relative paths from the working directory
                // as the client gave it (the process directory is the same); the others
                // resolve it.
                let given = PathBuf::from(&self.record.workspace.working_dir);
                let cwd = self.working_dir();
                let tool = p.tool_name.clone();
                self.run_blocking(ctx, p, generation, move || match tool.as_str() {
                    "apply_patch" => apply_patch::apply(&action, &cwd),
                    "read_file" => Ok(gemini::read_file(&action, &given)),
                    "write_file" => Ok(gemini::write_file(&action, &given)),
                    "edit" => Ok(gemini::edit(&action, &given)),
                    "list_directory" => Ok(gemini::list_directory(&action, &given)),
                    "glob" => Ok(search::glob(&action, &cwd)),
                    _ => Ok(search::grep(&action, &cwd)),
                });
            }
            "terminal" => {
                let addr = self.terminal();
                let sources = self.record.secret_sources.clone();
                let http = self.deps.http.clone();
                let handle = ctx.spawn(
                    async move {
                        let secrets = resolve_secrets(&http, &sources).await;
                        addr.send(terminal::Execute { action, secrets }).await
                    }
                    .into_actor(self)
                    .map(move |res, act, ctx| {
                        if act.run.generation != generation || !act.run.active {
                            return;
                        }
                        let outcome = match res {
                            Ok(Ok(obs)) => Ok(obs.to_json()),
                            Ok(Err(e)) => Err(format!("Error executing tool 'terminal': {e}")),
                            Err(e) => Err(format!(
                                "Error executing tool 'terminal': the terminal stopped ({e})"
                            )),
                        };
                        act.finish_action(ctx, &p, outcome);
                    }),
                );
                self.run.handle = Some(handle);
            }
            other => {
                let msg = format!("Tool '{other}' is not available on this server");
                self.finish_action(ctx, &p, Err(msg));
            }
        }
    }

    /// Runs a stateless tool on a blocking thread and records its outcome: the
    /// observation, or (`Err`) the reference's `Error executing tool '<name>': …` result.
    fn run_blocking(
        &mut self,
        ctx: &mut Context<Self>,
        p: PendingAction,
        generation: u64,
        job: impl FnOnce() -> Result<Value, String> + Send + 'static,
    ) {
        let handle = ctx.spawn(
            async move { tokio::task::spawn_blocking(job).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    if act.run.generation != generation || !act.run.active {
                        return;
                    }
                    let outcome = match res {
                        Ok(Ok(obs)) => Ok(obs),
                        Ok(Err(e)) => Err(format!("Error executing tool '{}': {e}", p.tool_name)),
                        Err(e) => Err(format!("Error executing tool '{}': {e}", p.tool_name)),
                    };
                    act.finish_action(ctx, &p, outcome);
                }),
        );
        self.run.handle = Some(handle);
    }

    fn terminal(&mut self) -> Addr<TerminalSession> {
        if let Some(t) = &self.run.tools.terminal
            && t.connected()
        {
            return t.clone();
        }
        let mut cfg = TerminalConfig::new(self.working_dir());
        // `Tool(name="terminal", params={"no_change_timeout_seconds": n})` wins
        // over the server's default, as the reference's tool factory takes it.
        let from_agent = self
            .record
            .agent
            .tools
            .iter()
            .find(|t| t.name == "terminal")
            .and_then(|t| t.params.get("no_change_timeout_seconds"))
            .and_then(Value::as_u64);
        let secs = from_agent.unwrap_or(self.deps.config.terminal_no_change_timeout_secs);
        cfg.no_change_timeout = Duration::from_secs(secs.clamp(1, 24 * 3600));
        cfg.full_output_save_dir =
            Some(PathBuf::from(&self.record.persistence_dir).join("observations"));
        let addr = Supervisor::start(move |_| TerminalSession::new(cfg));
        self.run.tools.terminal = Some(addr.clone());
        addr
    }

    /// Appends the result of one action (after its PostToolUse hooks) and continues.
    pub(super) fn finish_action(
        &mut self,
        ctx: &mut Context<Self>,
        p: &PendingAction,
        outcome: Result<Value, String>,
    ) {
        self.run.handle = None;
        if let Ok(observation) = &outcome {
            let hooks = self.post_tool_hooks(&p.tool_name);
            if !hooks.is_empty() {
                let action = p.clone();
                let result = outcome.clone();
                self.after_tool(ctx, hooks, p, observation, move |act, ctx, events| {
                    act.record_outcome(ctx, &action, result, events)
                });
                return;
            }
        }
        self.record_outcome(ctx, p, outcome, vec![]);
    }

    /// Appends `before` and the result of one action, and continues.
    fn record_outcome(
        &mut self,
        ctx: &mut Context<Self>,
        p: &PendingAction,
        outcome: Result<Value, String>,
        before: Vec<Event>,
    ) {
        let ev = match outcome {
            Ok(observation) => self.new_event(
                Source::Environment,
                EventBody::Observation(ObservationEvent {
                    tool_name: p.tool_name.clone(),
                    tool_call_id: p.tool_call_id.clone(),
                    observation,
                    action_id: p.action_id.clone(),
                }),
            ),
            Err(error) => self.new_event(
                Source::Agent,
                EventBody::AgentError(AgentErrorEvent {
                    tool_name: p.tool_name.clone(),
                    tool_call_id: p.tool_call_id.clone(),
                    error,
                }),
            ),
        };
        let is_finish = p.tool_name == "finish" && p.action.is_some();
        let mut events = before;
        events.push(ev);
        if is_finish {
            events.extend(self.set_status(ExecutionStatus::Finished));
        }
        if self.append(ctx, events, true).is_err() {
            return;
        }
        self.execute_next(ctx);
    }

    /// Ends the run with `ConversationErrorEvent` then status `error`.
    pub(super) fn fail_run(&mut self, ctx: &mut Context<Self>, code: &str, detail: String) {
        log::info!("conversation {}: run failed: {code}: {detail}", self.id);
        let err = self.new_event(
            Source::Environment,
            EventBody::ConversationError(ConversationErrorEvent {
                code: code.into(),
                detail,
            }),
        );
        let mut events = vec![err];
        events.extend(self.set_status(ExecutionStatus::Error));
        let _ = self.append(ctx, events, true);
        self.end_run(ctx);
    }

    pub(super) fn end_run(&mut self, ctx: &mut Context<Self>) {
        if !self.run.active {
            return;
        }
        self.run.active = false;
        self.run.queue.clear();
        self.run.deltas = None;
        if let Some(h) = self.run.handle.take() {
            ctx.cancel_future(h);
        }
        self.run.tools.subagents.stop();
        if self.run.permit.take().is_some() {
            Counters::sub(&self.deps.counters.runs_active, 1);
        }
        self.settle_pause(ctx);
        let snap = self.full_state_event();
        self.publish_ephemeral(snap);
        let unseen_message = self.run.last_user_seq > self.run.llm_saw_upto;
        if std::mem::take(&mut self.run.rerun)
            && unseen_message
            && matches!(
                self.record.execution_status,
                ExecutionStatus::Idle | ExecutionStatus::Finished
            )
        {
            if let Some(ev) = self.set_status(ExecutionStatus::Idle) {
                let _ = self.append(ctx, vec![ev], true);
            }
            self.start_run(ctx);
        }
        self.release_view_when_idle();
    }

    /// Drops the cached agent view unless a run is active: an idle
    /// conversation holds no copy of its history in memory (the next run
    /// rebuilds it from the log), so memory does not grow with the history
    /// of conversations that are not running.
    fn release_view_when_idle(&mut self) {
        if !self.run.active {
            self.run.view = None;
            self.writer.release_memory();
        }
    }

    /// Answers the pauses asked for while a step was in flight. The
    /// conversation pauses now unless the run ended otherwise: like the
    /// reference, only an idle or running conversation is paused.
    fn settle_pause(&mut self, ctx: &mut Context<Self>) {
        let waiters = std::mem::take(&mut self.run.pause_waiters);
        if waiters.is_empty() {
            return;
        }
        let seq = if matches!(
            self.record.execution_status,
            ExecutionStatus::Idle | ExecutionStatus::Running
        ) {
            let mut events: Vec<Event> = self
                .set_status(ExecutionStatus::Paused)
                .into_iter()
                .collect();
            events.push(self.new_event(Source::User, EventBody::Pause));
            self.append(ctx, events, true)
        } else {
            Ok(self.last_seq)
        };
        for tx in waiters {
            match &seq {
                Ok(seq) => self.reply_when_durable(*seq, tx),
                Err(e) => {
                    let _ = tx.send(Err(e.clone()));
                }
            }
        }
    }

    /// Cancels the step in flight; unanswered actions get `reason` as an error.
    fn cancel_step(&mut self, ctx: &mut Context<Self>, reason: &str) -> Vec<Event> {
        self.run.generation += 1;
        self.run.deltas = None;
        if let Some(h) = self.run.handle.take() {
            ctx.cancel_future(h);
        }
        self.run.queue.clear();
        self.run.tools.subagents.stop();
        if let Some(t) = &self.run.tools.terminal {
            t.do_send(terminal::Interrupt);
        }
        let pending = self.unmatched_actions();
        pending
            .into_iter()
            .map(|p| {
                self.new_event(
                    Source::Agent,
                    EventBody::AgentError(AgentErrorEvent {
                        tool_name: p.tool_name,
                        tool_call_id: p.tool_call_id,
                        error: reason.to_string(),
                    }),
                )
            })
            .collect()
    }

    /// On close: stop the run and hand back the terminal (if one was
    /// started), which the caller must tell to close its shell.
    pub(super) fn stop_run_for_close(
        &mut self,
        ctx: &mut Context<Self>,
    ) -> Option<Addr<TerminalSession>> {
        self.run.tools.subagents.close();
        if self.run.active {
            self.run.generation += 1;
            if let Some(h) = self.run.handle.take() {
                ctx.cancel_future(h);
            }
            self.run.active = false;
            self.run.deltas = None;
            if self.run.permit.take().is_some() {
                Counters::sub(&self.deps.counters.runs_active, 1);
            }
        }
        // Closing stops the run, which is what a pending pause asked for.
        for tx in std::mem::take(&mut self.run.pause_waiters) {
            let _ = tx.send(Ok(()));
        }
        self.run.tools.terminal.take()
    }

    /// A run was interrupted by a crash or restart: unanswered actions get an
    /// error, and the conversation ends in `error` with an explanation.
    pub(super) fn recover_interrupted_run(&mut self, ctx: &mut Context<Self>) {
        let pending = self.unmatched_actions();
        let mut events: Vec<Event> = pending
            .into_iter()
            .map(|p| {
                self.new_event(
                    Source::Agent,
                    EventBody::AgentError(AgentErrorEvent {
                        tool_name: p.tool_name,
                        tool_call_id: p.tool_call_id,
                        error: RESTARTED.into(),
                    }),
                )
            })
            .collect();
        let explain = self.new_event(
            Source::Environment,
            EventBody::ConversationError(ConversationErrorEvent {
                code: "ServerRestarted".into(),
                detail: "The server or this conversation's actor restarted while the agent was running; \
                         the run was stopped. Send a message or call /run to continue."
                    .into(),
            }),
        );
        events.push(explain);
        events.extend(self.set_status(ExecutionStatus::Error));
        if let Err(e) = self.append(ctx, events, true) {
            log::error!(
                "conversation {}: could not record the interrupted run: {e}",
                self.id
            );
        }
    }
}

/// Whether the agent brings its own system prompt text (used instead of any template).
fn has_inline_prompt(agent: &crate::model::agent::Agent) -> bool {
    agent
        .system_prompt
        .as_deref()
        .is_some_and(|p| !p.is_empty())
}

/// Longest template file of a client's that is read (system prompt, security policy).
const MAX_TEMPLATE_BYTES: u64 = 256 * 1024;

/// Reads at most [`MAX_TEMPLATE_BYTES`] of a client's template file.
fn read_template(path: &std::path::Path) -> std::io::Result<String> {
    // Read once, before the first user message; small and bounded.
    std::fs::File::open(path).and_then(|f| {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(f, MAX_TEMPLATE_BYTES), &mut text)
            .map(|_| text)
    })
}

/// The text of the agent's own system prompt template (`system_prompt_filename`
/// as an absolute path); see [`Template::Text`] for how it is used. Unreadable:
/// the default prompt, with a warning.
fn custom_system_prompt(path: &str) -> Option<String> {
    match read_template(std::path::Path::new(path)) {
        Ok(text) => Some(text),
        Err(e) => {
            log::warn!("system prompt {path}: {e}; using the default prompt");
            None
        }
    }
}

/// The agent's own security policy: `security_policy_filename` given as an
/// absolute path (the reference includes that file in `<SECURITY>`; other
/// names are its built-in templates). Read as plain text, not rendered as a
/// template. Unreadable: the built-in policy, with a warning.
fn custom_security_policy(filename: &str) -> Option<String> {
    let path = std::path::Path::new(filename);
    if !path.is_absolute() {
        return None;
    }
    let read = read_template(path);
    match read {
        Ok(text) => Some(text),
        Err(e) => {
            log::warn!("security policy {filename}: {e}; using the built-in policy");
            None
        }
    }
}

/// The user turn of an `ask_agent` question.
/// The usage id the reference gives the LLM that answers `ask_agent`.
const ASK_AGENT_USAGE: &str = "ask-agent-llm";

fn ask_prompt(question: &str) -> String {
    format!(
        "A side question about the work in this conversation so far; answer it from what \
         happened above.\n\nQuestion: {question}\n\nThis is only a question: do not call any \
         tool, reply with text."
    )
}

fn truncate_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn truncate_title(s: &str) -> String {
    let line = s
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if line.chars().count() <= 50 {
        line.to_string()
    } else {
        format!("{}...", truncate_chars(line, 47).trim_end())
    }
}

/// Plaintext values of the conversation's secrets (lookup secrets fetched).
pub(super) async fn resolve_secrets(
    http: &reqwest::Client,
    sources: &serde_json::Map<String, Value>,
) -> Vec<(String, String)> {
    let mut out = vec![];
    for (name, src) in sources {
        match src.get("kind").and_then(Value::as_str) {
            Some("LookupSecret") => {
                let Some(url) = src.get("url").and_then(Value::as_str) else {
                    continue;
                };
                let mut req = http.get(url).timeout(Duration::from_secs(10));
                if let Some(Value::Object(h)) = src.get("headers") {
                    for (k, v) in h {
                        if let Some(v) = v.as_str() {
                            req = req.header(k.as_str(), v);
                        }
                    }
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        if let Ok(text) = r.text().await {
                            out.push((name.clone(), text));
                        }
                    }
                    Ok(r) => log::warn!("secret {name}: lookup answered {}", r.status()),
                    Err(e) => log::warn!("secret {name}: lookup failed: {}", e.without_url()),
                }
            }
            _ => {
                if let Some(v) = src.get("value").and_then(Value::as_str) {
                    out.push((name.clone(), v.to_string()));
                }
            }
        }
    }
    out
}

impl Handler<Run> for ConversationActor {
    type Result = Result<(), ActorError>;

    fn handle(&mut self, _: Run, ctx: &mut Context<Self>) -> Self::Result {
        self.gone_guard()?;
        self.request_run(ctx, false)
    }
}

impl Handler<Pause> for ConversationActor {
    type Result = ResponseFuture<Result<(), ActorError>>;

    fn handle(&mut self, _: Pause, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.gone_guard() {
            return Box::pin(async move { Err(e) });
        }
        if self.run.active && self.run.permit.is_some() {
            // A step is in flight: the pause takes effect, and is answered,
            // when it ends (`step`, `end_run`), so that a `/run` right after
            // this answer resumes instead of meeting the winding-down run.
            let (tx, rx) = oneshot::channel();
            self.run.pause_waiters.push(tx);
            // A sub-agent at work would hold the pause for as long as its task takes: it
            // is stopped, and its task ends with an error result.
            self.run.tools.subagents.stop();
            return Box::pin(async move {
                rx.await.unwrap_or_else(|_| {
                    Err(ActorError::Unavailable(
                        "the conversation restarted before the pause took effect".into(),
                    ))
                })
            });
        }
        if !matches!(
            self.record.execution_status,
            ExecutionStatus::Idle | ExecutionStatus::Running
        ) {
            return Box::pin(async { Ok(()) });
        }
        let mut events: Vec<Event> = self
            .set_status(ExecutionStatus::Paused)
            .into_iter()
            .collect();
        events.push(self.new_event(Source::User, EventBody::Pause));
        let seq = match self.append(ctx, events, true) {
            Ok(s) => s,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        if self.run.active {
            // Still waiting for a run slot: no step to wait for.
            self.end_run(ctx);
        } else {
            let snap = self.full_state_event();
            self.publish_ephemeral(snap);
        }
        self.when_durable(seq)
    }
}

impl Handler<Interrupt> for ConversationActor {
    type Result = ResponseFuture<Result<(), ActorError>>;

    fn handle(&mut self, _: Interrupt, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.gone_guard() {
            return Box::pin(async move { Err(e) });
        }
        let mut events = if self.run.active {
            self.cancel_step(ctx, INTERRUPTED)
        } else {
            vec![]
        };
        let was_active = self.run.active;
        if was_active
            || matches!(
                self.record.execution_status,
                ExecutionStatus::Idle | ExecutionStatus::Running
            )
        {
            events.extend(self.set_status(ExecutionStatus::Paused));
            events.push(self.new_event(Source::User, EventBody::Interrupt));
        }
        let seq = match self.append(ctx, events, true) {
            Ok(s) => s,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        if was_active {
            self.run.rerun = false;
            self.end_run(ctx);
        } else {
            let snap = self.full_state_event();
            self.publish_ephemeral(snap);
        }
        self.when_durable_or_flush(seq)
    }
}

impl Handler<RespondToConfirmation> for ConversationActor {
    type Result = ResponseFuture<Result<(), ActorError>>;

    fn handle(&mut self, msg: RespondToConfirmation, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.gone_guard() {
            return Box::pin(async move { Err(e) });
        }
        if msg.accept {
            let _ = self.request_run(ctx, false);
            return Box::pin(async { Ok(()) });
        }
        if self.run.active {
            return Box::pin(async { Ok(()) });
        }
        let pending = self.unmatched_actions();
        let mut events: Vec<Event> = pending
            .into_iter()
            .map(|p| {
                self.new_event(
                    Source::Environment,
                    EventBody::UserReject(UserRejectObservation {
                        tool_name: p.tool_name,
                        tool_call_id: p.tool_call_id,
                        rejection_reason: msg.reason.clone(),
                        rejection_source: "user".into(),
                        action_id: p.action_id,
                    }),
                )
            })
            .collect();
        if self.record.execution_status == ExecutionStatus::WaitingForConfirmation {
            events.extend(self.set_status(ExecutionStatus::Idle));
        }
        match self.append(ctx, events, true) {
            Ok(seq) => self.when_durable_or_flush(seq),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

impl Handler<AskAgent> for ConversationActor {
    type Result = ResponseActFuture<Self, Result<String, ActorError>>;

    fn handle(&mut self, msg: AskAgent, _ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.gone_guard() {
            return Box::pin(fut::ready(Err(e)));
        }
        let mut cfg = match LlmConfig::from_json(&self.record.agent.llm.to_value()) {
            Ok(c) => c,
            Err(e) => return Box::pin(fut::ready(Err(ActorError::BadRequest(e.detail())))),
        };
        cfg.usage_id = ASK_AGENT_USAGE.into();
        // The tools are offered because providers refuse a history holding
        // tool calls without their definitions; the prompt asks for text.
        let tools = self.llm_tools();
        let mut messages = view::build_messages(self.view_events());
        self.release_view_when_idle();
        messages.push(ChatMessage::user(ask_prompt(&msg.question)));
        let http = self.deps.http.clone();
        self.run.asks += 1;
        let maker = self.call_maker();
        Box::pin(
            async move { llm::ask(&http, &cfg, &messages, &tools).await }
                .into_actor(self)
                .map(|res, act, ctx| {
                    act.run.asks = act.run.asks.saturating_sub(1);
                    let r = res.map_err(|e| {
                        ActorError::Upstream(format!("{}: {}", e.code(), e.detail()))
                    })?;
                    // The reference counts the question under its own LLM
                    // (`ask-agent-llm`) and records no event.
                    act.count_side_call(ctx, ASK_AGENT_USAGE, maker, &r);
                    if r.content.trim().is_empty() {
                        return Err(ActorError::Upstream("Failed to generate summary".into()));
                    }
                    Ok(r.content)
                }),
        )
    }
}

/// Token deltas of the LLM call in flight are queued (`RunState::deltas`).
#[derive(Message)]
#[rtype(result = "()")]
struct DeltasReady {
    generation: u64,
}

impl Handler<DeltasReady> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: DeltasReady, _ctx: &mut Context<Self>) {
        if msg.generation == self.run.generation && self.run.active {
            self.publish_deltas();
        }
    }
}

/// Asks for a condensation now (or before the next step of a running run).
#[derive(Message, Clone)]
#[rtype(result = "Result<(), ActorError>")]
pub struct Condense;

impl ConversationActor {
    fn condenser(&self) -> Option<CondenserConfig> {
        CondenserConfig::from_agent(self.record.agent.condenser.as_ref())
    }

    /// Starts a condensation when the view is too big (or one was asked
    /// for); returns true when one is under way (the step resumes after it).
    /// `done` is answered when the condensation has been recorded.
    fn maybe_condense(
        &mut self,
        ctx: &mut Context<Self>,
        done: Option<tokio::sync::oneshot::Sender<Result<(), ActorError>>>,
    ) -> bool {
        let reply = |done: Option<tokio::sync::oneshot::Sender<Result<(), ActorError>>>, r| {
            if let Some(d) = done {
                let _ = d.send(r);
            }
        };
        if std::mem::take(&mut self.run.skip_condense) {
            reply(done, Ok(()));
            return false;
        }
        let Some(cfg) = self.condenser() else {
            reply(done, Ok(()));
            return false;
        };
        let forced = std::mem::take(&mut self.run.force_condense) || done.is_some();
        let view = condense::effective(self.view_events());
        if !forced && view.len() <= cfg.max_size {
            reply(done, Ok(()));
            return false;
        }
        let (target, minimum) = if forced {
            (view.len() / 2, 1)
        } else {
            (
                cfg.max_size / 2,
                (view.len() as f64 * cfg.minimum_progress).ceil() as usize,
            )
        };
        let Some(forgotten) = condense::plan(&view, cfg.keep_first, target, minimum) else {
            reply(done, Ok(()));
            return false;
        };
        let llm_cfg = match LlmConfig::from_json(&cfg.llm) {
            Ok(c) => c,
            Err(e) => {
                log::warn!(
                    "conversation {}: condenser LLM unusable: {}",
                    self.id,
                    e.detail()
                );
                reply(done, Err(ActorError::BadRequest(e.detail())));
                return false;
            }
        };
        let previous = view
            .iter()
            .find(|e| e.id.ends_with("-summary"))
            .and_then(|e| match &e.body {
                EventBody::Message(m) => m
                    .llm_message
                    .content
                    .first()
                    .and_then(|c| c.as_text())
                    .map(str::to_string),
                _ => None,
            });
        let offset = cfg.keep_first.min(view.len());
        let ids: std::collections::HashSet<&str> = forgotten.iter().map(String::as_str).collect();
        let events: Vec<&Event> = view
            .iter()
            .filter(|e| ids.contains(e.id.as_str()))
            .collect();
        let messages = condense::prompt(previous.as_deref(), &events);
        let http = self.deps.http.clone();
        let generation = self.run.generation;
        let in_run = self.run.active;
        let usage_id = llm_cfg.usage_id.clone();
        let handle = ctx.spawn(
            async move { llm::ask(&http, &llm_cfg, &messages, &[]).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    if in_run && (act.run.generation != generation || !act.run.active) {
                        reply(
                            done,
                            Err(ActorError::Conflict("the run was stopped".into())),
                        );
                        return;
                    }
                    match res {
                        Ok(r) => {
                            let call = CallUsage {
                                model: act.record.agent.llm.model.clone(),
                                response_id: r.id.clone(),
                                prompt_tokens: r.usage.prompt_tokens,
                                completion_tokens: r.usage.completion_tokens,
                                cost: r.cost,
                                latency: r.latency.as_secs_f64(),
                                timestamp: crate::time::now_epoch_f64(),
                                ..Default::default()
                            };
                            act.writer
                                .record_call(&mut act.record.stats, &usage_id, call);
                            let cond = act.new_event(
                                Source::Environment,
                                condense::Condensation::body(forgotten, r.content, offset, r.id),
                            );
                            let snap = act.record.stats.to_snapshot_value();
                            let stats = act.state_event("stats", snap);
                            let ok = act.append(ctx, vec![cond, stats], true).is_ok();
                            reply(
                                done,
                                if ok {
                                    Ok(())
                                } else {
                                    Err(ActorError::Storage("append failed".into()))
                                },
                            );
                        }
                        Err(e) => {
                            log::warn!(
                                "conversation {}: condensation failed: {}",
                                act.id,
                                e.detail()
                            );
                            reply(
                                done,
                                Err(ActorError::Upstream(format!(
                                    "{}: {}",
                                    e.code(),
                                    e.detail()
                                ))),
                            );
                            act.run.skip_condense = true;
                        }
                    }
                    if in_run {
                        act.run.handle = None;
                        act.step(ctx);
                    }
                }),
        );
        if in_run {
            self.run.handle = Some(handle);
        }
        true
    }
}

impl Handler<Condense> for ConversationActor {
    type Result = ResponseFuture<Result<(), ActorError>>;

    fn handle(&mut self, _: Condense, ctx: &mut Context<Self>) -> Self::Result {
        if self.gone {
            return Box::pin(async { Err(ActorError::NotFound) });
        }
        if self.condenser().is_none() {
            return Box::pin(async {
                Err(ActorError::BadRequest(
                    "This conversation's agent has no LLM summarizing condenser, so it cannot be condensed.".into(),
                ))
            });
        }
        if self.run.active {
            self.run.force_condense = true;
            return Box::pin(async { Ok(()) });
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.maybe_condense(ctx, Some(tx));
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(ActorError::Unavailable("the conversation restarted".into()))
            })
        })
    }
}
