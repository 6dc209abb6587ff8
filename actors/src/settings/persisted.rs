//! The persisted settings record (`settings` tree, key `current`): loading
//! with secrets opened, rendering for clients, and the transactional update
//! behind `PATCH /api/settings` and profile activation.
//!
//! The stored form is `{"schema_version":1,"agent_settings":{…},
//! "conversation_settings":{…},"active_profile":…}` with the agent settings'
//! secret slots sealed for `settings/agent_settings.<path>`.

use serde_json::{Value, json};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::agent::{
    deep_merge, default_agent_settings, default_conversation_settings, normalize_agent_settings,
    normalize_conversation_settings,
};
use super::slots::{
    Expose, agent_settings_slots, has_sealed, open_incoming, open_slots, render_slots, seal_slots,
};
use super::{SettingsError, SettingsStore, abort};
use crate::crypto::{Cipher, is_sealed};

/// The key of the one settings record.
pub(crate) const KEY: &[u8] = b"current";
/// Version of the stored record's envelope.
const PERSISTED_SCHEMA_VERSION: i64 = 1;
/// Associated-data prefix of the agent settings' secret slots.
pub(crate) const SCOPE: &str = "settings/agent_settings.";

/// The settings as loaded: secrets opened, except those that cannot be
/// (listed in `unreadable`, still sealed in place).
#[derive(Debug, Clone)]
pub struct Persisted {
    /// Agent settings (normalized).
    pub agent_settings: Value,
    /// Conversation settings (normalized).
    pub conversation_settings: Value,
    /// Name of the last activated profile.
    pub active_profile: Option<String>,
    /// Paths of secret slots sealed with another key.
    pub unreadable: Vec<String>,
}

impl Persisted {
    fn defaults() -> Persisted {
        Persisted {
            agent_settings: default_agent_settings(),
            conversation_settings: default_conversation_settings(),
            active_profile: None,
            unreadable: vec![],
        }
    }

    /// Parses a stored record and opens its secrets. `None` when the bytes
    /// are not a settings record at all.
    fn from_stored(bytes: &[u8], cipher: Option<&Cipher>) -> Option<Persisted> {
        let stored: Value = serde_json::from_slice(bytes).ok()?;
        let obj = stored.as_object()?;
        let version = obj
            .get("schema_version")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if version > PERSISTED_SCHEMA_VERSION {
            return None;
        }
        let mut agent = normalize_agent_settings(obj.get("agent_settings")?).ok()?;
        let conversation =
            normalize_conversation_settings(obj.get("conversation_settings").unwrap_or(&json!({})))
                .ok()?;
        let active_profile = obj
            .get("active_profile")
            .and_then(Value::as_str)
            .map(str::to_string);
        let unreadable = open_slots(&mut agent, agent_settings_slots, cipher, SCOPE);
        Some(Persisted {
            agent_settings: agent,
            conversation_settings: conversation,
            active_profile,
            unreadable,
        })
    }

    /// Whether the LLM has a usable API key.
    pub fn llm_api_key_is_set(&self) -> bool {
        self.agent_settings["llm"]["api_key"]
            .as_str()
            .is_some_and(|k| !k.trim().is_empty() && !is_sealed(k))
    }

    /// The agent settings as a client may see them.
    pub fn render_agent(
        &self,
        mode: Expose,
        cipher: Option<&Cipher>,
    ) -> Result<Value, SettingsError> {
        let mut v = self.agent_settings.clone();
        render_slots(&mut v, agent_settings_slots, mode, cipher)?;
        Ok(v)
    }

    /// The `SettingsResponse` body: `agent_settings`, `conversation_settings`,
    /// `llm_api_key_is_set`.
    pub fn response(&self, mode: Expose, cipher: Option<&Cipher>) -> Result<Value, SettingsError> {
        Ok(json!({
            "agent_settings": self.render_agent(mode, cipher)?,
            "conversation_settings": self.conversation_settings,
            "llm_api_key_is_set": self.llm_api_key_is_set(),
        }))
    }

    fn to_stored(&self, store: &SettingsStore) -> Vec<u8> {
        let mut agent = self.agent_settings.clone();
        let clear = seal_slots(&mut agent, agent_settings_slots, store.cipher(), SCOPE);
        store.warn_clear("settings", clear);
        json!({
            "schema_version": PERSISTED_SCHEMA_VERSION,
            "agent_settings": agent,
            "conversation_settings": self.conversation_settings,
            "active_profile": self.active_profile,
        })
        .to_string()
        .into_bytes()
    }
}

/// One change to the settings.
#[derive(Debug, Clone, Default)]
pub struct SettingsUpdate {
    /// Deep-merged into the agent settings.
    pub agent_settings_diff: Option<Value>,
    /// Deep-merged into the conversation settings.
    pub conversation_settings_diff: Option<Value>,
    /// `Some(x)` sets `active_profile` to `x`.
    pub active_profile: Option<Option<String>>,
}

/// Applies `update` to the stored record inside a transaction.
pub(crate) fn apply_in(
    tx: &TransactionalTree,
    store: &SettingsStore,
    update: &SettingsUpdate,
) -> Result<Persisted, ConflictableTransactionError<SettingsError>> {
    let mut current = match tx.get(KEY)? {
        None => Persisted::defaults(),
        Some(bytes) => match Persisted::from_stored(&bytes, store.cipher()) {
            Some(p) => p,
            // Never overwrite a record we cannot read with defaults.
            None => return abort(SettingsError::Unreadable),
        },
    };
    match compute(&mut current, store, update) {
        Ok(()) => {}
        Err(e) => return abort(e),
    }
    tx.insert(KEY, current.to_stored(store))?;
    Ok(current)
}

fn compute(
    current: &mut Persisted,
    store: &SettingsStore,
    update: &SettingsUpdate,
) -> Result<(), SettingsError> {
    let mut new_agent = None;
    if let Some(diff) = &update.agent_settings_diff {
        let mut diff = diff.clone();
        open_incoming(&mut diff, agent_settings_slots, store.cipher(), SCOPE).map_err(|path| {
            SettingsError::Invalid(format!("{path}: sealed value cannot be opened"))
        })?;
        let mut merged = current.agent_settings.clone();
        deep_merge(&mut merged, &diff);
        let mut normalized =
            normalize_agent_settings(&merged).map_err(|e| SettingsError::Invalid(e.to_string()))?;
        // A value we could not open and the update did not replace would be
        // lost or re-sealed wrongly: refuse, as the reference refuses to
        // overwrite a settings file it cannot read.
        if has_sealed(&mut normalized, agent_settings_slots) {
            return Err(SettingsError::Unreadable);
        }
        new_agent = Some(normalized);
    } else if !current.unreadable.is_empty() {
        return Err(SettingsError::Unreadable);
    }
    let mut new_conversation = None;
    if let Some(diff) = &update.conversation_settings_diff {
        let mut merged = current.conversation_settings.clone();
        deep_merge(&mut merged, diff);
        new_conversation = Some(
            normalize_conversation_settings(&merged)
                .map_err(|e| SettingsError::Invalid(e.to_string()))?,
        );
    }
    // Both parts validated before either is applied.
    if let Some(a) = new_agent {
        current.agent_settings = a;
        current.unreadable.clear();
    }
    if let Some(c) = new_conversation {
        current.conversation_settings = c;
    }
    if let Some(p) = &update.active_profile {
        current.active_profile = p.clone();
    }
    Ok(())
}

/// Sets `active_profile` in a stored record without touching its sealed
/// values. A record that cannot be parsed is left alone (`false`).
pub(crate) fn set_active_in(
    tx: &TransactionalTree,
    name: Option<&str>,
) -> Result<bool, ConflictableTransactionError<SettingsError>> {
    let mut stored = match tx.get(KEY)? {
        None => {
            let mut v = json!({
                "schema_version": PERSISTED_SCHEMA_VERSION,
                "agent_settings": default_agent_settings(),
                "conversation_settings": default_conversation_settings(),
            });
            v["active_profile"] = json!(name);
            tx.insert(KEY, v.to_string().into_bytes())?;
            return Ok(true);
        }
        Some(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) if v.is_object() => v,
            _ => return Ok(false),
        },
    };
    stored["active_profile"] = json!(name);
    tx.insert(KEY, stored.to_string().into_bytes())?;
    Ok(true)
}

impl SettingsStore {
    /// The current settings (defaults when none were saved). A record that
    /// cannot be parsed reads as the defaults, as in the reference, and is
    /// logged; updates refuse to overwrite it.
    pub fn settings(&self) -> Result<Persisted, SettingsError> {
        match self.settings.get(KEY)? {
            None => Ok(Persisted::defaults()),
            Some(bytes) => match Persisted::from_stored(&bytes, self.cipher()) {
                Some(p) => {
                    if !p.unreadable.is_empty() {
                        log::warn!(
                            "settings: {} secret value(s) cannot be opened with the configured \
                             OH_SECRET_KEY (sealed with a different key?)",
                            p.unreadable.len()
                        );
                    }
                    Ok(p)
                }
                None => {
                    log::error!("settings: the stored record is damaged; showing defaults");
                    Ok(Persisted::defaults())
                }
            },
        }
    }

    /// Applies one update atomically and durably; returns the new settings.
    pub fn update_settings(&self, update: &SettingsUpdate) -> Result<Persisted, SettingsError> {
        let out = self.settings.transaction(|tx| apply_in(tx, self, update))?;
        self.flush()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn store(key: Option<&str>) -> (SettingsStore, sled::Db) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let s = SettingsStore::open(&db, key.map(|k| Arc::new(Cipher::from_secret(k)))).unwrap();
        (s, db)
    }

    fn patch(agent: Value) -> SettingsUpdate {
        SettingsUpdate {
            agent_settings_diff: Some(agent),
            ..Default::default()
        }
    }

    #[test]
    fn update_seals_and_reads_back() {
        let (s, _db) = store(Some("k"));
        let p = s
            .update_settings(&patch(
                json!({"llm": {"model": "openai/x", "api_key": "sk-secret"}}),
            ))
            .unwrap();
        assert!(p.llm_api_key_is_set());
        let raw = s.settings.get(KEY).unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("sk-secret"));
        let back = s.settings().unwrap();
        assert_eq!(back.agent_settings["llm"]["api_key"], "sk-secret");
        assert_eq!(back.agent_settings["llm"]["model"], "openai/x");
        let body = back.response(Expose::Redacted, s.cipher()).unwrap();
        assert_eq!(body["agent_settings"]["llm"]["api_key"], "**********");
        assert_eq!(body["llm_api_key_is_set"], true);
    }

    #[test]
    fn other_key_refuses_updates_that_keep_the_value() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let a = SettingsStore::open(&db, Some(Arc::new(Cipher::from_secret("a")))).unwrap();
        a.update_settings(&patch(json!({"llm": {"api_key": "sk-1"}})))
            .unwrap();
        let b = SettingsStore::open(&db, Some(Arc::new(Cipher::from_secret("b")))).unwrap();
        let p = b.settings().unwrap();
        assert!(!p.llm_api_key_is_set());
        assert!(matches!(
            p.response(Expose::Plaintext, b.cipher()),
            Err(SettingsError::Unreadable)
        ));
        assert_eq!(
            p.response(Expose::Redacted, b.cipher()).unwrap()["agent_settings"]["llm"]["api_key"],
            Value::Null
        );
        assert!(matches!(
            b.update_settings(&patch(json!({"agent": "X"}))),
            Err(SettingsError::Unreadable)
        ));
        // Replacing the unreadable value is allowed.
        let p = b
            .update_settings(&patch(json!({"llm": {"api_key": "sk-2"}})))
            .unwrap();
        assert_eq!(p.agent_settings["llm"]["api_key"], "sk-2");
    }

    #[test]
    fn invalid_updates_change_nothing() {
        let (s, _db) = store(None);
        s.update_settings(&SettingsUpdate {
            conversation_settings_diff: Some(json!({"max_iterations": 7})),
            ..Default::default()
        })
        .unwrap();
        let bad = SettingsUpdate {
            agent_settings_diff: Some(json!({"agent": "Y"})),
            conversation_settings_diff: Some(json!({"max_iterations": -1})),
            active_profile: None,
        };
        assert!(matches!(
            s.update_settings(&bad),
            Err(SettingsError::Invalid(_))
        ));
        let p = s.settings().unwrap();
        assert_eq!(p.conversation_settings["max_iterations"], 7);
        assert_eq!(p.agent_settings["agent"], "CodeActAgent");
    }
}
