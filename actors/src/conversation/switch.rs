//! Changing a conversation's LLM mid-conversation: the `SwitchLlm` message
//! behind `/switch_llm` and `/switch_profile`, and the built-in `switch_llm`
//! tool, which moves the agent onto a profile of the server's profile store
//! (the `/api/profiles` records, where the reference reads
//! `~/.openhands/profiles`).
//!
//! Either way the new LLM goes on the agent, is saved with the record (its
//! secrets sealed like the rest of the agent) and reaches subscribers as an
//! `agent` state update; the next LLM call is made with it and its usage is
//! accounted under its `usage_id` (`profile:<name>` for a profile). Like the
//! reference, the conversation keeps the LLMs it has used by usage id (for
//! the actor's life) and a switch to a taken id reuses the registered LLM.
//! Reading a profile happens on a blocking thread, never in the actor's
//! mailbox.

use std::sync::Arc;

use actix::prelude::*;
use serde_json::Value;

use super::ActorError;
use super::actor::ConversationActor;
use super::messages::SwitchLlm;
use super::run::PendingAction;
use crate::model::llm::Llm;
use crate::settings::SettingsStore;
use crate::settings::profiles::ProfileLoadError;
use crate::tools::switch_llm;

impl ConversationActor {
    /// The profile names the `switch_llm` tool lists, read once per actor
    /// life (the reference builds the tool when it loads the conversation).
    /// Callers ask only for agents that have the tool.
    pub(super) fn switch_profiles(&mut self) -> Arc<Vec<String>> {
        if let Some(names) = &self.run.tools.profiles {
            return names.clone();
        }
        // A read of at most `MAX_PROFILES` keys from sled's cache, once per
        // actor life, before the first LLM call: short enough for the actor.
        let names = SettingsStore::open(self.deps.store.db(), self.deps.cipher.clone())
            .and_then(|s| s.profile_names())
            .unwrap_or_else(|e| {
                log::warn!(
                    "conversation {}: cannot list the LLM profiles for switch_llm: {e}",
                    self.id
                );
                vec![]
            });
        let names = Arc::new(names);
        self.run.tools.profiles = Some(names.clone());
        names
    }

    /// The profile names for a tool context: empty unless `tools` has `switch_llm`.
    pub(super) fn profiles_for(&mut self, tools: &[String]) -> Arc<Vec<String>> {
        if tools.iter().any(|t| t == switch_llm::NAME) {
            self.switch_profiles()
        } else {
            Arc::default()
        }
    }

    /// Registers the agent's own LLMs (its LLM, its condenser's) once the
    /// agent is set up, as the reference does on the first message or run;
    /// an id already taken (by an earlier switch) keeps its LLM.
    pub(super) fn seed_llm_registry(&mut self) {
        if self.run.llms_seeded {
            return;
        }
        self.run.llms_seeded = true;
        let condenser = self
            .record
            .agent
            .condenser
            .as_ref()
            .and_then(|c| c.get("llm"))
            .and_then(|l| serde_json::from_value::<Llm>(l.clone()).ok());
        for llm in std::iter::once(self.record.agent.llm.clone()).chain(condenser) {
            self.run.llms.entry(llm.usage_id.clone()).or_insert(llm);
        }
    }

    /// The LLM a switch to `llm` installs: the one already registered under
    /// its usage id, if any (the reference's first-write-wins registry, so
    /// posting a different LLM under a taken id changes nothing), else `llm`,
    /// which is registered.
    fn registered_llm(&mut self, llm: Llm) -> Llm {
        self.run
            .llms
            .entry(llm.usage_id.clone())
            .or_insert(llm)
            .clone()
    }

    /// Puts `llm` on the agent, saves it with the record and publishes the
    /// `agent` state update (none when the LLM is unchanged, as the
    /// reference only reports changed fields). Returns the last seq.
    pub(super) fn install_llm(
        &mut self,
        ctx: &mut Context<Self>,
        llm: Llm,
    ) -> Result<u64, ActorError> {
        if self.record.agent.llm == llm {
            return self.append(ctx, vec![], true);
        }
        self.record.agent.llm = llm;
        let value = self.record.agent_update_value();
        let update = self.state_event("agent", value);
        self.append(ctx, vec![update], true)
    }

    /// Runs a `switch_llm` action: the profile is read on a blocking thread,
    /// then its LLM is installed and the `SwitchLLMObservation` recorded. A
    /// failure is an error observation; the agent's LLM then stays as it was.
    pub(super) fn execute_switch_llm(
        &mut self,
        ctx: &mut Context<Self>,
        p: PendingAction,
        action: &Value,
    ) {
        let generation = self.run.generation;
        let text = |key: &str| action.get(key).and_then(Value::as_str).map(str::to_string);
        let name = text("profile_name").unwrap_or_default();
        let reason = text("reason");
        // A profile used before in this conversation comes from the registry, as
        // in the reference (a later edit of the profile is not seen).
        let usage_id = format!("{}{name}", switch_llm::USAGE_PREFIX);
        if let Some(llm) = self.run.llms.get(&usage_id).cloned() {
            let model = llm.model.clone();
            if self.install_llm(ctx, llm).is_err() {
                return;
            }
            let text = switch_llm::success_text(&name, &model, reason.as_deref().unwrap_or(""));
            let obs = switch_llm::observation(&text, false, &name, reason.as_deref(), Some(&model));
            return self.finish_action(ctx, &p, Ok(obs));
        }
        let db = self.deps.store.db().clone();
        let cipher = self.deps.cipher.clone();
        let lookup = name.clone();
        let handle = ctx.spawn(
            async move {
                tokio::task::spawn_blocking(move || {
                    SettingsStore::open(&db, cipher)
                        .map_err(|e| ProfileLoadError::Storage(e.to_string()))
                        .and_then(|s| s.profile_llm(&lookup))
                })
                .await
            }
            .into_actor(self)
            .map(move |res, act, ctx| {
                if act.run.generation != generation || !act.run.active {
                    return;
                }
                let loaded = res.unwrap_or_else(|e| Err(ProfileLoadError::Storage(e.to_string())));
                let reason = reason.as_deref();
                let observation = match loaded {
                    Ok(llm) => {
                        let llm = act.registered_llm(llm);
                        let model = llm.model.clone();
                        if act.install_llm(ctx, llm).is_err() {
                            return;
                        }
                        log::info!(
                            "conversation {}: switched to LLM profile '{name}' ({model})",
                            act.id
                        );
                        let text =
                            switch_llm::success_text(&name, &model, reason.unwrap_or_default());
                        switch_llm::observation(&text, false, &name, reason, Some(&model))
                    }
                    Err(e) => {
                        let text = match &e {
                            ProfileLoadError::NotFound => switch_llm::not_found_text(&name),
                            ProfileLoadError::Storage(why) => {
                                log::warn!(
                                    "conversation {}: reading LLM profile '{name}' failed: {why}",
                                    act.id
                                );
                                switch_llm::failure_text(&name, "StorageError", why)
                            }
                            other => other.value_error(&name).unwrap_or_default(),
                        };
                        switch_llm::observation(&text, true, &name, reason, None)
                    }
                };
                act.finish_action(ctx, &p, Ok(observation));
            }),
        );
        self.run.handle = Some(handle);
    }
}

impl Handler<SwitchLlm> for ConversationActor {
    type Result = ResponseFuture<Result<(), ActorError>>;

    fn handle(&mut self, msg: SwitchLlm, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.gone_guard() {
            return Box::pin(async move { Err(e) });
        }
        let llm: Llm = match serde_path_to_error::deserialize(msg.0) {
            Ok(l) => l,
            Err(e) => {
                let mut loc = vec!["llm".to_string()];
                loc.extend(crate::model::agent::path_segments(e.path()));
                let field = crate::model::conversation::FieldError {
                    loc,
                    msg: crate::model::agent::clean_serde_message(&e.inner().to_string()),
                    kind: "value_error",
                };
                return Box::pin(async move { Err(ActorError::Invalid(field)) });
            }
        };
        let llm = self.registered_llm(llm);
        match self.install_llm(ctx, llm) {
            Ok(seq) => self.when_durable_or_flush(seq),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}
