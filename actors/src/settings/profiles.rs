//! Named LLM configurations (`llm_profiles` tree): list, load, save (at most
//! [`MAX_PROFILES`]), delete, rename, and activation into the settings.
//!
//! A profile is the full LLM object with its secret fields sealed for
//! `profiles/<name>/<field>`; renaming re-seals them for the new name. The
//! number of profiles is kept under a reserved key (names must start with an
//! alphanumeric, so the key can never clash) and updated in the same
//! transaction as the profile, so the limit holds under concurrent saves.

use serde_json::{Value, json};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::persisted::{Persisted, SettingsUpdate, apply_in, set_active_in};
use super::slots::{Expose, llm_slots, open_slots, render_slots, seal_slots};
use super::{SettingsError, SettingsStore, abort, profile_name_from_model};
use crate::crypto::{Cipher, is_sealed};
use crate::model::llm::Llm;
use crate::model::secrets::REDACTED;

/// Most profiles kept.
pub const MAX_PROFILES: usize = 50;

const COUNT_KEY: &[u8] = b"\x00count";

fn scope(name: &str) -> String {
    format!("profiles/{name}/")
}

/// Why a profile's LLM could not be put on a conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum ProfileLoadError {
    /// The name breaks the profile-name rules (the reference's `ValueError`).
    InvalidName,
    /// No profile has that name.
    NotFound,
    /// Its secrets were sealed with another `OH_SECRET_KEY`.
    Unreadable,
    /// The stored LLM does not validate (the text says why, never a value).
    Invalid(String),
    /// The database failed.
    Storage(String),
}

impl ProfileLoadError {
    /// The reference's exception text for the loading failures it raises as
    /// `ValueError`; `None` for the other kinds.
    pub fn value_error(&self, name: &str) -> Option<String> {
        match self {
            ProfileLoadError::InvalidName => Some(format!(
                "Invalid profile name: {}. Profile names must be 1-64 characters, start with \
                 a letter or digit, and contain only letters, digits, '.', '_', or '-'.",
                crate::tools::catalog::py_repr(&Value::String(name.to_string()))
            )),
            ProfileLoadError::Unreadable => Some(format!(
                "Failed to load profile `{name}`: its secrets were sealed with a different \
                 OH_SECRET_KEY"
            )),
            ProfileLoadError::Invalid(why) => {
                Some(format!("Failed to load profile `{name}`: {why}"))
            }
            ProfileLoadError::NotFound | ProfileLoadError::Storage(_) => None,
        }
    }
}

/// One line of `GET /api/profiles`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileSummary {
    /// Profile name.
    pub name: String,
    /// `model` of the stored LLM.
    pub model: Option<String>,
    /// `base_url` of the stored LLM.
    pub base_url: Option<String>,
    /// Whether an API key is stored.
    pub api_key_set: bool,
}

impl ProfileSummary {
    /// As JSON (`ProfileInfo`).
    pub fn to_value(&self) -> Value {
        json!({"name": self.name, "model": self.model, "base_url": self.base_url, "api_key_set": self.api_key_set})
    }
}

/// A loaded profile: the LLM with its secrets opened where possible.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The LLM object.
    pub llm: Value,
    /// Secret fields sealed with another key.
    pub unreadable: Vec<String>,
}

impl Profile {
    /// Whether a usable API key is stored.
    pub fn api_key_set(&self) -> bool {
        self.llm["api_key"]
            .as_str()
            .is_some_and(|k| !k.trim().is_empty() && !is_sealed(k))
    }

    /// The LLM as `GET /api/profiles/{name}` shows it. Without an expose
    /// mode `api_key` is `null` and the other secret fields are redacted,
    /// as in the reference.
    pub fn render(&self, mode: Expose, cipher: Option<&Cipher>) -> Result<Value, SettingsError> {
        let mut v = self.llm.clone();
        render_slots(&mut v, llm_slots, mode, cipher)?;
        if mode == Expose::Redacted {
            v["api_key"] = Value::Null;
        }
        Ok(v)
    }
}

fn read_count(
    tx: &TransactionalTree,
) -> Result<usize, ConflictableTransactionError<SettingsError>> {
    Ok(tx
        .get(COUNT_KEY)?
        .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
        .map(|b| u64::from_be_bytes(b) as usize)
        .unwrap_or(0))
}

fn write_count(
    tx: &TransactionalTree,
    n: usize,
) -> Result<(), ConflictableTransactionError<SettingsError>> {
    tx.insert(COUNT_KEY, &(n as u64).to_be_bytes()[..])?;
    Ok(())
}

fn sealed_bytes(store: &SettingsStore, name: &str, llm: &Value) -> Vec<u8> {
    let mut v = llm.clone();
    let clear = seal_slots(&mut v, llm_slots, store.cipher(), &scope(name));
    store.warn_clear("profile", clear);
    v.to_string().into_bytes()
}

fn parse(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .filter(Value::is_object)
}

impl SettingsStore {
    fn open_profile(&self, name: &str, bytes: &[u8]) -> Result<Profile, SettingsError> {
        let mut llm = parse(bytes).ok_or(SettingsError::Unreadable)?;
        let unreadable = open_slots(&mut llm, llm_slots, self.cipher(), &scope(name));
        Ok(Profile { llm, unreadable })
    }

    /// Every profile, by name, and the active profile. When there is none
    /// yet but the settings hold an LLM API key, a profile named after the
    /// model is created from them and made active first (the reference's
    /// side effect of listing).
    pub fn list_profiles(&self) -> Result<(Vec<ProfileSummary>, Option<String>), SettingsError> {
        let settings = self.settings()?;
        if self.profile_count()? == 0
            && settings.llm_api_key_is_set()
            && let Err(e) = self.auto_create(&settings)
        {
            log::warn!("could not create a profile from the current LLM settings: {e}");
        }
        let mut out = vec![];
        for item in self.profiles.iter() {
            let (k, v) = item?;
            if k.as_ref() == COUNT_KEY {
                continue;
            }
            let name = String::from_utf8_lossy(&k).into_owned();
            let Some(llm) = parse(&v) else {
                log::warn!("profile '{name}' is damaged; skipped");
                continue;
            };
            let text = |key: &str| llm.get(key).and_then(Value::as_str).map(str::to_string);
            out.push(ProfileSummary {
                name,
                model: text("model"),
                base_url: text("base_url"),
                api_key_set: text("api_key").is_some_and(|k| !k.trim().is_empty() && k != REDACTED),
            });
        }
        let active = self.settings()?.active_profile;
        Ok((out, active))
    }

    fn profile_count(&self) -> Result<usize, SettingsError> {
        Ok(self
            .profiles
            .get(COUNT_KEY)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map_or(0, |b| u64::from_be_bytes(b) as usize))
    }

    fn auto_create(&self, settings: &Persisted) -> Result<(), SettingsError> {
        let llm = settings.agent_settings["llm"].clone();
        let name = profile_name_from_model(llm["model"].as_str().unwrap_or("default"));
        let bytes = sealed_bytes(self, &name, &llm);
        (&self.profiles, &self.settings).transaction(|(p, s)| {
            // Someone else created a profile meanwhile: nothing to do.
            if read_count(p)? != 0 {
                return Ok(());
            }
            p.insert(name.as_bytes(), bytes.clone())?;
            write_count(p, 1)?;
            set_active_in(s, Some(&name))?;
            Ok(())
        })?;
        self.flush()?;
        log::info!("created profile '{name}' from the current LLM settings");
        Ok(())
    }

    /// One profile; `None` when it does not exist.
    pub fn profile(&self, name: &str) -> Result<Option<Profile>, SettingsError> {
        match self.profiles.get(name.as_bytes())? {
            None => Ok(None),
            Some(bytes) => self.open_profile(name, &bytes).map(Some),
        }
    }

    /// The names of every profile, sorted; no side effect (unlike
    /// [`SettingsStore::list_profiles`]) and no secret opened.
    pub fn profile_names(&self) -> Result<Vec<String>, SettingsError> {
        let mut out = vec![];
        for key in self.profiles.iter().keys() {
            let key = key?;
            if key.as_ref() != COUNT_KEY {
                out.push(String::from_utf8_lossy(&key).into_owned());
            }
        }
        Ok(out)
    }

    /// The LLM of profile `name`, secrets opened, ready to go on a
    /// conversation's agent: its usage is accounted under `profile:<name>`,
    /// as the reference registers a profile's LLM.
    pub fn profile_llm(&self, name: &str) -> Result<Llm, ProfileLoadError> {
        if !super::valid_profile_name(name) {
            return Err(ProfileLoadError::InvalidName);
        }
        let profile = match self.profile(name) {
            Ok(Some(p)) => p,
            Ok(None) => return Err(ProfileLoadError::NotFound),
            Err(SettingsError::Unreadable) => {
                return Err(ProfileLoadError::Invalid(
                    "the stored profile is damaged".into(),
                ));
            }
            Err(e) => return Err(ProfileLoadError::Storage(e.to_string())),
        };
        if !profile.unreadable.is_empty() {
            return Err(ProfileLoadError::Unreadable);
        }
        let mut llm: Llm = serde_path_to_error::deserialize(profile.llm).map_err(|e| {
            let at = e.path().to_string();
            let why = crate::model::agent::clean_serde_message(&e.inner().to_string());
            ProfileLoadError::Invalid(if at == "." {
                why
            } else {
                format!("{at}: {why}")
            })
        })?;
        llm.usage_id = format!("{}{name}", crate::tools::switch_llm::USAGE_PREFIX);
        Ok(llm)
    }

    /// Saves (creates or replaces) a profile. `llm` must be normalized and
    /// hold plaintext secrets; without `include_secrets` they are dropped.
    pub fn save_profile(
        &self,
        name: &str,
        llm: &Value,
        include_secrets: bool,
    ) -> Result<(), SettingsError> {
        let mut llm = llm.clone();
        if !include_secrets {
            llm_slots(&mut llm, &mut |_, _, slot| *slot = Value::Null);
        }
        let bytes = sealed_bytes(self, name, &llm);
        self.profiles.transaction(|tx| {
            let exists = tx.get(name.as_bytes())?.is_some();
            if !exists {
                let n = read_count(tx)?;
                if n >= MAX_PROFILES {
                    return abort(SettingsError::Limit(MAX_PROFILES));
                }
                write_count(tx, n + 1)?;
            }
            tx.insert(name.as_bytes(), bytes.clone())?;
            Ok(())
        })?;
        self.flush()
    }

    /// Deletes a profile; `false` when it did not exist.
    pub fn delete_profile(&self, name: &str) -> Result<bool, SettingsError> {
        let existed = self.profiles.transaction(|tx| {
            if tx.remove(name.as_bytes())?.is_none() {
                return Ok(false);
            }
            let n = read_count(tx)?;
            write_count(tx, n.saturating_sub(1))?;
            Ok(true)
        })?;
        self.flush()?;
        Ok(existed)
    }

    /// Renames a profile (re-sealing its secrets for the new name) and moves
    /// `active_profile` along. Same name: only checks that it exists.
    pub fn rename_profile(&self, old: &str, new: &str) -> Result<(), SettingsError> {
        let Some(profile) = self.profile(old)? else {
            return Err(SettingsError::NotFound);
        };
        if old == new {
            return Ok(());
        }
        if !profile.unreadable.is_empty() {
            return Err(SettingsError::Unreadable);
        }
        let bytes = sealed_bytes(self, new, &profile.llm);
        (&self.profiles, &self.settings).transaction(|(p, s)| {
            if p.get(old.as_bytes())?.is_none() {
                return abort(SettingsError::NotFound);
            }
            if p.get(new.as_bytes())?.is_some() {
                return abort(SettingsError::Exists);
            }
            p.remove(old.as_bytes())?;
            p.insert(new.as_bytes(), bytes.clone())?;
            let active = s
                .get(super::persisted::KEY)?
                .and_then(|b| parse(&b))
                .and_then(|v| v["active_profile"].as_str().map(str::to_string));
            if active.as_deref() == Some(old) {
                set_active_in(s, Some(new))?;
            }
            Ok(())
        })?;
        self.flush()
    }

    /// Copies a profile's LLM into the agent settings and marks it active.
    pub fn activate_profile(&self, name: &str) -> Result<Persisted, SettingsError> {
        let out = (&self.profiles, &self.settings).transaction(|(p, s)| {
            let Some(bytes) = p.get(name.as_bytes())? else {
                return abort(SettingsError::NotFound);
            };
            let profile = match self.open_profile(name, &bytes) {
                Ok(pr) if pr.unreadable.is_empty() => pr,
                Ok(_) => return abort(SettingsError::Unreadable),
                Err(e) => return abort(e),
            };
            let update = SettingsUpdate {
                agent_settings_diff: Some(json!({"llm": profile.llm})),
                conversation_settings_diff: None,
                active_profile: Some(Some(name.to_string())),
            };
            apply_in(s, self, &update)
        })?;
        self.flush()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::settings::agent::normalize_llm;

    fn store(key: &str) -> SettingsStore {
        let db = sled::Config::new().temporary(true).open().unwrap();
        SettingsStore::open(&db, Some(Arc::new(Cipher::from_secret(key)))).unwrap()
    }

    fn llm(model: &str) -> Value {
        normalize_llm(&json!({"model": model, "api_key": "sk-p"})).unwrap()
    }

    #[test]
    fn lifecycle_and_limit() {
        let s = store("k");
        for i in 0..MAX_PROFILES {
            s.save_profile(&format!("p{i}"), &llm("m"), true).unwrap();
        }
        // Overwriting an existing profile is not a new one.
        s.save_profile("p0", &llm("m2"), true).unwrap();
        assert!(matches!(
            s.save_profile("extra", &llm("m"), true),
            Err(SettingsError::Limit(50))
        ));
        assert!(s.delete_profile("p1").unwrap());
        assert!(!s.delete_profile("p1").unwrap());
        s.save_profile("extra", &llm("m"), true).unwrap();
        let (list, active) = s.list_profiles().unwrap();
        assert_eq!(list.len(), 50);
        assert_eq!(active, None);
        let raw = s.profiles.get("p0").unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("sk-p"));
        assert_eq!(s.profile("p0").unwrap().unwrap().llm["api_key"], "sk-p");
    }

    #[test]
    fn profile_llm_for_a_conversation() {
        let s = store("k");
        s.save_profile("fast", &llm("openai/fast"), true).unwrap();
        s.save_profile("bad", &json!({"model": 5}), true).unwrap();
        let got = s.profile_llm("fast").unwrap();
        assert_eq!(got.model, "openai/fast");
        assert_eq!(got.api_key.as_deref(), Some("sk-p"));
        assert_eq!(got.usage_id, "profile:fast");
        assert_eq!(s.profile_names().unwrap(), vec!["bad", "fast"]);
        assert_eq!(
            s.profile_llm("nope").unwrap_err(),
            ProfileLoadError::NotFound
        );
        let e = s.profile_llm("../x").unwrap_err();
        assert_eq!(e, ProfileLoadError::InvalidName);
        assert!(
            e.value_error("../x")
                .unwrap()
                .starts_with("Invalid profile name: '../x'. Profile names must be")
        );
        let e = s.profile_llm("bad").unwrap_err();
        assert_eq!(
            e.value_error("bad").unwrap(),
            "Failed to load profile `bad`: model: Input should be a string"
        );
        let other = SettingsStore::open(&s.db, Some(Arc::new(Cipher::from_secret("x")))).unwrap();
        assert_eq!(
            other.profile_llm("fast").unwrap_err(),
            ProfileLoadError::Unreadable
        );
    }

    #[test]
    fn rename_activate() {
        let s = store("k");
        s.save_profile("a", &llm("openai/a"), true).unwrap();
        s.save_profile("b", &llm("openai/b"), false).unwrap();
        assert!(!s.profile("b").unwrap().unwrap().api_key_set());
        s.activate_profile("a").unwrap();
        assert!(matches!(
            s.rename_profile("a", "b"),
            Err(SettingsError::Exists)
        ));
        assert!(matches!(
            s.rename_profile("zz", "c"),
            Err(SettingsError::NotFound)
        ));
        s.rename_profile("a", "c").unwrap();
        assert_eq!(s.settings().unwrap().active_profile.as_deref(), Some("c"));
        assert_eq!(s.profile("c").unwrap().unwrap().llm["api_key"], "sk-p");
        let p = s.activate_profile("c").unwrap();
        assert_eq!(p.agent_settings["llm"]["model"], "openai/a");
        assert!(matches!(
            s.activate_profile("nope"),
            Err(SettingsError::NotFound)
        ));
    }

    #[test]
    fn listing_creates_a_profile_from_settings() {
        let s = store("k");
        s.update_settings(&SettingsUpdate {
            agent_settings_diff: Some(
                json!({"llm": {"model": "anthropic/claude-x", "api_key": "sk"}}),
            ),
            ..Default::default()
        })
        .unwrap();
        let (list, active) = s.list_profiles().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].name, "claude-x");
        assert!(list[0].api_key_set);
        assert_eq!(active.as_deref(), Some("claude-x"));
    }
}
