//! Hooks inside a conversation: when each hook point fires and what its
//! verdict does, as the reference's server does it (its `LocalConversation`
//! with a `HookEventProcessor`).
//!
//! * SessionStart: on the first message or run of the actor's life; the
//!   conversation's `hook_config` state is set then (the reference shows
//!   `null` before). SessionEnd: when the conversation is closed (deleted,
//!   or the server shuts down); an actor whose session has session hooks is
//!   not evicted, so that its session spans the server's life as there.
//! * UserPromptSubmit: before a user message is recorded; it may block it
//!   (the message is kept, the next run finishes without calling the LLM)
//!   or add context (appended to the message's `extended_content`).
//! * PreToolUse: before each `ActionEvent` is recorded; a block is kept in
//!   `blocked_actions` and the action is answered by a
//!   `UserRejectObservation` with `rejection_source: "hook"` instead of
//!   running. PostToolUse: after a tool's observation, before it is
//!   recorded. Stop: when the agent has finished; a denial records the
//!   hook's feedback as a message and the run goes on.
//!
//! Each hook run is a `HookExecutionEvent` recorded just before the event
//! it concerns. Hook commands run in spawned futures: the actor's mailbox
//! never waits for them. Dropping such a future (interrupt, close, actor
//! restart) kills the hook's process group.

use std::collections::VecDeque;
use std::sync::Arc;

use actix::prelude::*;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::ActorError;
use super::actor::ConversationActor;
use super::run::PendingAction;
use crate::hooks::exec::{self, blocking_reason};
use crate::hooks::{
    AsyncHooks, HookConfig, HookDefinition, HookEnv, HookEventType, HookInput, HookResult,
    HookSubject,
};
use crate::ids::Uuid;
use crate::model::conversation::SendMessageRequest;
use crate::model::event::Message;
use crate::model::event::*;
use crate::tools::content::Content;

/// Reason recorded when a blocking hook gave none.
const BLOCKED: &str = "Blocked by hook";
/// Prefix of the message that hands a Stop hook's feedback to the agent.
const STOP_FEEDBACK: &str = "[Stop hook feedback] ";
/// Why the agent stops, as Stop hooks are told.
const STOP_REASON: &str = "agent_finished";

/// A user message waiting for its hooks.
struct Intake {
    message: SendMessageRequest,
    reply: oneshot::Sender<Result<(), ActorError>>,
}

/// Hook state of one conversation actor.
#[derive(Default)]
pub struct HookState {
    /// The configuration, parsed on first use (`Some(None)`: no hooks).
    config: Option<Option<Arc<HookConfig>>>,
    /// SessionStart has run (or is running) in this actor's life.
    session_started: bool,
    /// Async hooks of the session, ended with it.
    async_hooks: AsyncHooks,
    /// Messages waiting for their turn, in arrival order.
    intake: VecDeque<Intake>,
    /// A message's hooks are running.
    intake_busy: bool,
}

impl HookState {
    /// Forgets what a restarted actor cannot continue: queued messages
    /// (their senders are told it restarted) and the parsed configuration.
    /// The session stays started: a restart does not begin a new one.
    pub fn reset(&mut self) {
        self.config = None;
        self.intake.clear();
        self.intake_busy = false;
    }

    /// No message is waiting for hooks.
    pub fn intake_idle(&self) -> bool {
        !self.intake_busy && self.intake.is_empty()
    }
}

/// What UserPromptSubmit hooks decided about a message.
pub(super) struct PromptVerdict {
    /// Their `HookExecutionEvent`s.
    pub events: Vec<Event>,
    /// Why the message is blocked, if it is.
    pub blocked: Option<String>,
    /// Context to append to the message.
    pub context: Option<String>,
}

type HookRuns = Vec<(HookDefinition, HookResult)>;

fn all_continue(runs: &HookRuns) -> bool {
    runs.iter().all(|(_, r)| r.should_continue())
}

fn results(runs: &HookRuns) -> Vec<HookResult> {
    runs.iter().map(|(_, r)| r.clone()).collect()
}

/// The non-empty `additionalContext`s, one per line.
fn contexts(runs: &HookRuns) -> Option<String> {
    let parts: Vec<&str> = runs
        .iter()
        .filter_map(|(_, r)| r.additional_context.as_deref())
        .filter(|c| !c.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n"))
}

/// The text of a message as hooks see it: its text parts, concatenated.
fn prompt_text(content: &[Content]) -> String {
    content.iter().filter_map(|c| c.as_text()).collect()
}

impl ConversationActor {
    /// The conversation's hooks, `None` when it has none.
    pub(super) fn hook_config(&mut self) -> Option<Arc<HookConfig>> {
        if self.hooks.config.is_none() {
            let doc = if self.record.pending_hook_config.is_null() {
                // Records written before the request's configuration was kept apart.
                &self.record.hook_config
            } else {
                &self.record.pending_hook_config
            };
            let parsed = match HookConfig::from_request(Some(doc)) {
                Ok(c) => c.map(Arc::new),
                Err(e) => {
                    log::warn!(
                        "conversation {}: stored hook configuration unusable ({}: {}); no hooks run",
                        self.id,
                        e.loc.join("."),
                        e.msg
                    );
                    None
                }
            };
            self.hooks.config = Some(parsed);
        }
        self.hooks.config.clone().flatten()
    }

    fn hook_env(&self) -> HookEnv {
        HookEnv {
            cwd: self.working_dir(),
            project_dir: self.record.workspace.working_dir.clone(),
            session_id: self.id.hyphenated(),
        }
    }

    /// Runs `hooks` in a spawned future and hands their results to `then`
    /// on the actor. The caller keeps the handle if it must be cancellable.
    pub(super) fn spawn_hooks(
        &mut self,
        ctx: &mut Context<Self>,
        hooks: Vec<HookDefinition>,
        input: HookInput,
        stop_on_block: bool,
        then: impl FnOnce(&mut Self, &mut Context<Self>, HookRuns) + 'static,
    ) -> SpawnHandle {
        if input.event_type == HookEventType::PreToolUse && hooks.iter().any(|h| h.is_async) {
            log::warn!(
                "conversation {}: async PreToolUse hooks run in the background and cannot block the tool",
                self.id
            );
        }
        let env = self.hook_env();
        let reaper = self.hooks.async_hooks.watcher();
        ctx.spawn(
            exec::run_all(hooks, input, env, stop_on_block, reaper)
                .into_actor(self)
                .map(move |runs, act, ctx| then(act, ctx, runs)),
        )
    }

    /// One `HookExecutionEvent` per hook run.
    fn hook_events(
        &mut self,
        event: HookEventType,
        runs: &HookRuns,
        subject: &HookSubject,
    ) -> Vec<Event> {
        runs.iter()
            .map(|(hook, result)| {
                if let Some(e) = &result.error {
                    log::warn!("conversation {}: {} hook: {e}", self.id, event.as_str());
                }
                let body = crate::hooks::execution_event(event, hook, result, subject);
                self.new_event(Source::Hook, EventBody::HookExecution(body))
            })
            .collect()
    }

    // ----- session -------------------------------------------------------------------

    /// Starts the session if it has not started: the SessionStart hooks to
    /// run (maybe none), or `None` when there is nothing to start.
    fn begin_session(&mut self) -> Option<Vec<HookDefinition>> {
        if self.hooks.session_started {
            return None;
        }
        let cfg = self.hook_config()?;
        self.hooks.session_started = true;
        Some(cfg.hooks_for(HookEventType::SessionStart, None))
    }

    /// The events of a session start: the `hook_config` state (when it
    /// changes) and the SessionStart hook runs.
    fn session_events(&mut self, runs: &HookRuns) -> Vec<Event> {
        let mut events = vec![];
        let pending = self.record.pending_hook_config.clone();
        if !pending.is_null() && self.record.hook_config != pending {
            self.record.hook_config = pending.clone();
            events.push(self.state_event("hook_config", pending));
        }
        events.extend(self.hook_events(HookEventType::SessionStart, runs, &HookSubject::default()));
        events
    }

    /// Before a run's first step: starts the session when needed. Returns
    /// true when hooks are running (the step is taken again after them).
    pub(super) fn start_session_in_run(&mut self, ctx: &mut Context<Self>) -> bool {
        let Some(hooks) = self.begin_session() else {
            return false;
        };
        if hooks.is_empty() {
            let events = self.session_events(&HookRuns::new());
            // A failed append stops the actor: the step must not go on.
            return !events.is_empty() && self.append(ctx, events, true).is_err();
        }
        let input = HookInput::new(HookEventType::SessionStart, &self.hook_env());
        let generation = self.run.generation;
        let handle = self.spawn_hooks(ctx, hooks, input, false, move |act, ctx, runs| {
            if act.gone {
                return;
            }
            let events = act.session_events(&runs);
            if act.append(ctx, events, true).is_err() {
                return;
            }
            if act.run.generation == generation && act.run.active {
                act.run.handle = None;
                act.step(ctx);
            }
        });
        self.run.handle = Some(handle);
        true
    }

    /// The SessionEnd hooks to run before closing, if the session started
    /// and has some.
    fn session_end_hooks(&mut self) -> Option<Vec<HookDefinition>> {
        if !self.hooks.session_started {
            return None;
        }
        let hooks = self
            .hook_config()?
            .hooks_for(HookEventType::SessionEnd, None);
        (!hooks.is_empty()).then_some(hooks)
    }

    /// Runs the SessionEnd hooks (recording them unless the conversation is
    /// being deleted), then `close`. Returns false when there are none (the
    /// caller closes at once).
    pub(super) fn end_session_then(
        &mut self,
        ctx: &mut Context<Self>,
        record: bool,
        close: impl FnOnce(&mut Self, &mut Context<Self>) + 'static,
    ) -> bool {
        let Some(hooks) = self.session_end_hooks() else {
            self.hooks.async_hooks.stop_all();
            return false;
        };
        let input = HookInput::new(HookEventType::SessionEnd, &self.hook_env());
        self.spawn_hooks(ctx, hooks, input, false, move |act, ctx, runs| {
            let events = act.hook_events(HookEventType::SessionEnd, &runs, &HookSubject::default());
            if record {
                let _ = act.append(ctx, events, true);
            }
            act.hooks.async_hooks.stop_all();
            close(act, ctx);
        });
        true
    }

    /// Whether the actor's session has yet to start (hooks configured).
    pub(super) fn session_pending(&mut self) -> bool {
        !self.hooks.session_started && self.hook_config().is_some()
    }

    /// Whether the session must outlive idleness: it started and has
    /// session hooks (evicting would end it, and a revival would start a
    /// new one, which the reference never does).
    pub(super) fn session_pins_actor(&mut self) -> bool {
        self.hooks.session_started
            && self.hook_config().is_some_and(|c| {
                c.has(HookEventType::SessionStart) || c.has(HookEventType::SessionEnd)
            })
    }

    // ----- user messages -------------------------------------------------------------

    /// Takes a user message of a conversation with hooks: it is recorded
    /// after its hooks (and any earlier message), in arrival order. Gives
    /// the message back when no hook applies and nothing is queued: the
    /// caller records it at once.
    pub(super) fn queue_message(
        &mut self,
        ctx: &mut Context<Self>,
        message: SendMessageRequest,
    ) -> Result<ResponseFuture<Result<(), ActorError>>, SendMessageRequest> {
        let Some(cfg) = self.hook_config() else {
            return Err(message);
        };
        let quiet = self.hooks.session_started
            && cfg
                .hooks_for(HookEventType::UserPromptSubmit, None)
                .is_empty();
        if quiet && self.hooks.intake_idle() {
            return Err(message);
        }
        let (tx, rx) = oneshot::channel();
        self.hooks.intake.push_back(Intake { message, reply: tx });
        self.pump_intake(ctx);
        Ok(Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(ActorError::Unavailable(
                    "the conversation restarted before the message was recorded".into(),
                ))
            })
        }))
    }

    /// Starts the hooks of the next queued message, if none are running.
    fn pump_intake(&mut self, ctx: &mut Context<Self>) {
        if self.hooks.intake_busy {
            return;
        }
        let Some(item) = self.hooks.intake.pop_front() else {
            return;
        };
        if let Err(e) = self.gone_guard() {
            let _ = item.reply.send(Err(e));
            return self.pump_intake(ctx);
        }
        let Some(cfg) = self.hook_config() else {
            let _ = item.reply.send(Err(ActorError::Unavailable(
                "the conversation's hooks are unavailable".into(),
            )));
            return self.pump_intake(ctx);
        };
        self.hooks.intake_busy = true;
        let env = self.hook_env();
        let start = self.begin_session();
        let prompt_hooks = cfg.hooks_for(HookEventType::UserPromptSubmit, None);
        let text = prompt_text(&item.message.content);
        let message_id = Uuid::new_v4().hyphenated();
        let mut prompt_input = HookInput::new(HookEventType::UserPromptSubmit, &env);
        prompt_input.message = Some(text.clone());
        let reaper = self.hooks.async_hooks.watcher();
        let start_input = HookInput::new(HookEventType::SessionStart, &env);
        let fut = async move {
            let started = match start {
                Some(hooks) => Some(
                    exec::run_all(hooks, start_input, env.clone(), false, reaper.clone()).await,
                ),
                None => None,
            };
            let prompted = exec::run_all(prompt_hooks, prompt_input, env, true, reaper).await;
            (started, prompted)
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(move |(started, prompted), act, ctx| {
                    act.hooks.intake_busy = false;
                    let Intake { message, reply } = item;
                    match act.gone_guard() {
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                        Ok(()) => {
                            let prelude = match &started {
                                Some(runs) => act.session_events(runs),
                                None => vec![],
                            };
                            let subject = HookSubject {
                                message_id: Some(message_id.clone()),
                                hook_input: Some(json!({ "message": text })),
                                ..Default::default()
                            };
                            let verdict = PromptVerdict {
                                events: act.hook_events(
                                    HookEventType::UserPromptSubmit,
                                    &prompted,
                                    &subject,
                                ),
                                blocked: (!all_continue(&prompted)).then(|| {
                                    blocking_reason(&results(&prompted))
                                        .unwrap_or_else(|| BLOCKED.into())
                                }),
                                context: contexts(&prompted),
                            };
                            match act.record_user_message(
                                ctx,
                                message,
                                prelude,
                                message_id,
                                Some(verdict),
                            ) {
                                Ok(seq) => act.reply_when_durable(seq, reply),
                                Err(e) => {
                                    let _ = reply.send(Err(e));
                                }
                            }
                        }
                    }
                    act.pump_intake(ctx);
                }),
        );
    }

    /// The events of a message's verdict, around the message itself: the
    /// hook runs and the `blocked_messages` state before it; the context
    /// goes into it.
    pub(super) fn apply_prompt_verdict(
        &mut self,
        verdict: PromptVerdict,
        message: &mut Event,
        out: &mut Vec<Event>,
    ) {
        out.extend(verdict.events);
        if let Some(reason) = verdict.blocked {
            log::info!(
                "conversation {}: a hook blocked a user message: {reason}",
                self.id
            );
            self.record
                .blocked_messages
                .insert(message.id.clone(), Value::String(reason));
            let map = Value::Object(self.record.blocked_messages.clone());
            out.push(self.state_event("blocked_messages", map));
        }
        if let (Some(ctx), EventBody::Message(m)) = (verdict.context, &mut message.body) {
            m.extended_content.push(Content::text(ctx));
        }
    }

    /// When a step starts: a blocked last user message ends the run as
    /// finished without calling the LLM. Returns true when it did.
    pub(super) fn take_blocked_message(&mut self, ctx: &mut Context<Self>) -> bool {
        let Some(id) = self.record.last_user_message_id.clone() else {
            return false;
        };
        if self.record.blocked_messages.shift_remove(&id).is_none() {
            return false;
        }
        let map = Value::Object(self.record.blocked_messages.clone());
        let mut events = vec![self.state_event("blocked_messages", map)];
        events.extend(self.set_status(crate::model::conversation::ExecutionStatus::Finished));
        self.run.iterations += 1;
        if self.append(ctx, events, true).is_err() {
            return true;
        }
        self.step(ctx);
        true
    }

    // ----- tools ---------------------------------------------------------------------

    /// Records the actions of an LLM response (after `ready`, the events
    /// already due), each after its PreToolUse hooks, then hands the
    /// recorded actions to `actions_recorded`.
    pub(super) fn emit_actions(
        &mut self,
        ctx: &mut Context<Self>,
        mut ready: Vec<Event>,
        mut rest: VecDeque<(Event, PendingAction)>,
        mut done: Vec<PendingAction>,
    ) {
        let cfg = self
            .hook_config()
            .filter(|c| c.has(HookEventType::PreToolUse));
        while let Some((mut ev, p)) = rest.pop_front() {
            let hooks = match (&cfg, &p.action) {
                (Some(c), Some(_)) => c.hooks_for(HookEventType::PreToolUse, Some(&p.tool_name)),
                _ => vec![],
            };
            if hooks.is_empty() {
                // Stamped now: it may follow hook events recorded after it was built.
                ev.timestamp = self.clock.next_local();
                ready.push(ev);
                done.push(p);
                continue;
            }
            if !ready.is_empty() && self.append(ctx, std::mem::take(&mut ready), true).is_err() {
                return;
            }
            let tool_input = p.action.clone().unwrap_or(Value::Null);
            let mut input = HookInput::new(HookEventType::PreToolUse, &self.hook_env());
            input.tool_name = Some(p.tool_name.clone());
            input.tool_input = Some(tool_input.clone());
            let generation = self.run.generation;
            let handle = self.spawn_hooks(ctx, hooks, input, true, move |act, ctx, runs| {
                if act.run.generation != generation || !act.run.active {
                    return;
                }
                act.run.handle = None;
                let subject = HookSubject {
                    tool_name: Some(p.tool_name.clone()),
                    action_id: Some(ev.id.clone()),
                    message_id: None,
                    hook_input: Some(json!({"tool_name": p.tool_name, "tool_input": tool_input})),
                };
                let mut events = act.hook_events(HookEventType::PreToolUse, &runs, &subject);
                if !all_continue(&runs) {
                    let reason = blocking_reason(&results(&runs)).unwrap_or_else(|| BLOCKED.into());
                    log::info!(
                        "conversation {}: a hook blocked {}: {reason}",
                        act.id,
                        p.tool_name
                    );
                    act.record
                        .blocked_actions
                        .insert(ev.id.clone(), Value::String(reason));
                    let map = Value::Object(act.record.blocked_actions.clone());
                    events.push(act.state_event("blocked_actions", map));
                }
                let mut ev = ev;
                ev.timestamp = act.clock.next_local();
                events.push(ev);
                done.push(p);
                act.emit_actions(ctx, events, rest, done);
            });
            self.run.handle = Some(handle);
            return;
        }
        if !ready.is_empty() && self.append(ctx, ready, true).is_err() {
            return;
        }
        self.actions_recorded(ctx, done);
    }

    /// An action about to run that a PreToolUse hook blocked: its rejection
    /// (and the `blocked_actions` state without it). `None` when not blocked.
    pub(super) fn take_blocked_action(&mut self, p: &PendingAction) -> Option<Vec<Event>> {
        let reason = self.record.blocked_actions.shift_remove(&p.action_id)?;
        let reason = reason.as_str().unwrap_or(BLOCKED).to_string();
        let map = Value::Object(self.record.blocked_actions.clone());
        let state = self.state_event("blocked_actions", map);
        let reject = self.new_event(
            Source::Environment,
            EventBody::UserReject(UserRejectObservation {
                tool_name: p.tool_name.clone(),
                tool_call_id: p.tool_call_id.clone(),
                rejection_reason: reason,
                rejection_source: "hook".into(),
                action_id: p.action_id.clone(),
            }),
        );
        Some(vec![state, reject])
    }

    /// The PostToolUse hooks that apply to `tool_name` (none without hooks).
    pub(super) fn post_tool_hooks(&mut self, tool_name: &str) -> Vec<HookDefinition> {
        match self.hook_config() {
            Some(cfg) => cfg.hooks_for(HookEventType::PostToolUse, Some(tool_name)),
            None => vec![],
        }
    }

    /// Runs `hooks` (PostToolUse) for an observation, then `then` with
    /// their events.
    pub(super) fn after_tool(
        &mut self,
        ctx: &mut Context<Self>,
        hooks: Vec<HookDefinition>,
        p: &PendingAction,
        observation: &Value,
        then: impl FnOnce(&mut Self, &mut Context<Self>, Vec<Event>) + 'static,
    ) {
        let tool_input = p.action.clone().unwrap_or_else(|| json!({}));
        let mut input = HookInput::new(HookEventType::PostToolUse, &self.hook_env());
        input.tool_name = Some(p.tool_name.clone());
        input.tool_input = Some(tool_input.clone());
        input.tool_response = Some(observation.clone());
        let subject = HookSubject {
            tool_name: Some(p.tool_name.clone()),
            action_id: Some(p.action_id.clone()),
            message_id: None,
            hook_input: Some(json!({"tool_name": p.tool_name, "tool_input": tool_input,
                                    "tool_response": observation})),
        };
        let generation = self.run.generation;
        let handle = self.spawn_hooks(ctx, hooks, input, false, move |act, ctx, runs| {
            if act.run.generation != generation || !act.run.active {
                return;
            }
            act.run.handle = None;
            let events = act.hook_events(HookEventType::PostToolUse, &runs, &subject);
            then(act, ctx, events);
        });
        self.run.handle = Some(handle);
    }

    // ----- stop ----------------------------------------------------------------------

    /// The agent has finished: runs the Stop hooks, which may send it back
    /// to work with their feedback. Returns false when none apply (the run
    /// simply ends).
    pub(super) fn stop_hooks(&mut self, ctx: &mut Context<Self>) -> bool {
        let Some(cfg) = self.hook_config() else {
            return false;
        };
        let hooks = cfg.hooks_for(HookEventType::Stop, None);
        // Like the reference, an agent that finishes on its last allowed
        // step is not asked to go on.
        if hooks.is_empty() || self.run.iterations >= self.record.max_iterations {
            return false;
        }
        let mut input = HookInput::new(HookEventType::Stop, &self.hook_env());
        input
            .metadata
            .insert("reason".into(), Value::String(STOP_REASON.into()));
        let generation = self.run.generation;
        let handle = self.spawn_hooks(ctx, hooks, input, true, move |act, ctx, runs| {
            if act.run.generation != generation || !act.run.active {
                return;
            }
            act.run.handle = None;
            let subject = HookSubject {
                hook_input: Some(json!({ "reason": STOP_REASON })),
                ..Default::default()
            };
            let mut events = act.hook_events(HookEventType::Stop, &runs, &subject);
            if all_continue(&runs) {
                if act.append(ctx, events, true).is_ok() {
                    act.end_run(ctx);
                }
                return;
            }
            let feedback = contexts(&runs)
                .or_else(|| blocking_reason(&results(&runs)))
                .unwrap_or_else(|| BLOCKED.into());
            log::info!(
                "conversation {}: a Stop hook sent the agent back to work",
                act.id
            );
            let message = Message::new(
                "user",
                vec![Content::text(format!("{STOP_FEEDBACK}{feedback}"))],
            );
            events.push(act.new_event(
                Source::Environment,
                EventBody::Message(MessageEvent::new(message)),
            ));
            events.extend(act.set_status(crate::model::conversation::ExecutionStatus::Running));
            if act.append(ctx, events, true).is_ok() {
                act.step(ctx);
            }
        });
        self.run.handle = Some(handle);
        true
    }
}
