//! Server-wide user settings kept in the shared sled database: the persisted
//! agent/conversation settings, custom secrets, LLM profiles and the saved
//! workspace list (the reference keeps these in JSON files; §9–§11, §20).
//!
//! Trees (one per record kind, never one per record):
//! - `settings`: `current` → the persisted settings JSON;
//! - `custom_secrets`: name → `{name, secret, description}`;
//! - `llm_profiles`: name → LLM JSON, plus a count under a reserved key;
//! - `saved_workspaces`: `current` → `{schema_version, workspaces, workspaceParents}`.
//!
//! Every secret value is sealed with the server cipher, bound to its record
//! and field ([`slots`]). Every update is a read-modify-write inside one sled
//! transaction, so concurrent writers never lose each other's changes, and is
//! flushed before it is acknowledged. Without a key, secrets are stored in
//! clear with a warning, as the reference does. A value sealed with another
//! key is never shown and never silently overwritten: reads leave it out,
//! writes that would keep it refuse with [`SettingsError::Unreadable`].
//!
//! No HTTP here; nothing here logs a secret value.

pub mod agent;
pub mod persisted;
pub mod profiles;
pub mod schema;
pub mod secrets;
pub mod slots;
pub mod workspaces;

use std::sync::Arc;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Db, Tree};

use crate::crypto::Cipher;
use crate::store::StoreError;

/// Why a settings operation failed.
#[derive(Debug)]
pub enum SettingsError {
    /// The client's data does not validate (the text names the field, never
    /// a value; it is for logs and tests).
    Invalid(String),
    /// A stored record cannot be read: damaged, or sealed with another key.
    Unreadable,
    /// Sealed output was asked for but no key is configured.
    NoCipher,
    /// The named record does not exist.
    NotFound,
    /// The target name is already taken.
    Exists,
    /// Saving would exceed the number of records allowed.
    Limit(usize),
    /// The database failed.
    Storage(StoreError),
}

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingsError::Invalid(why) => write!(f, "invalid settings: {why}"),
            SettingsError::Unreadable => {
                f.write_str("stored record is damaged or sealed with a different key")
            }
            SettingsError::NoCipher => f.write_str("no secret key is configured"),
            SettingsError::NotFound => f.write_str("not found"),
            SettingsError::Exists => f.write_str("already exists"),
            SettingsError::Limit(n) => write!(f, "limit of {n} reached"),
            SettingsError::Storage(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SettingsError {}

impl From<sled::Error> for SettingsError {
    fn from(e: sled::Error) -> Self {
        SettingsError::Storage(StoreError::Sled(e))
    }
}

impl From<TransactionError<SettingsError>> for SettingsError {
    fn from(e: TransactionError<SettingsError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => e.into(),
        }
    }
}

impl From<slots::RenderError> for SettingsError {
    fn from(e: slots::RenderError) -> Self {
        match e {
            slots::RenderError::NoCipher => SettingsError::NoCipher,
            slots::RenderError::Unreadable => SettingsError::Unreadable,
        }
    }
}

/// Aborts a sled transaction with `e`.
pub(crate) fn abort<T>(e: SettingsError) -> Result<T, ConflictableTransactionError<SettingsError>> {
    Err(ConflictableTransactionError::Abort(e))
}

/// Handle to the settings trees; cheap to create (sled caches open trees).
#[derive(Clone)]
pub struct SettingsStore {
    db: Db,
    pub(crate) settings: Tree,
    pub(crate) secrets: Tree,
    pub(crate) profiles: Tree,
    pub(crate) workspaces: Tree,
    pub(crate) cipher: Option<Arc<Cipher>>,
}

impl std::fmt::Debug for SettingsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SettingsStore(..)")
    }
}

impl SettingsStore {
    /// Opens the trees in `db`; `cipher` seals secrets (none: stored in clear).
    pub fn open(db: &Db, cipher: Option<Arc<Cipher>>) -> Result<SettingsStore, SettingsError> {
        Ok(SettingsStore {
            db: db.clone(),
            settings: db.open_tree("settings")?,
            secrets: db.open_tree("custom_secrets")?,
            profiles: db.open_tree("llm_profiles")?,
            workspaces: db.open_tree("saved_workspaces")?,
            cipher,
        })
    }

    /// The configured cipher.
    pub fn cipher(&self) -> Option<&Cipher> {
        self.cipher.as_deref()
    }

    /// Makes acknowledged writes durable.
    pub(crate) fn flush(&self) -> Result<(), SettingsError> {
        self.db.flush()?;
        Ok(())
    }

    pub(crate) fn warn_clear(&self, what: &str, n: usize) {
        if n > 0 {
            log::warn!(
                "saving {what} with {n} secret value(s) in PLAINTEXT: no OH_SECRET_KEY is \
                 configured; set one for production deployments"
            );
        }
    }
}

/// `^[a-zA-Z][a-zA-Z0-9_]{0,63}$`: custom secret names (they become
/// environment variable names).
pub fn valid_secret_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`: profile names.
pub fn valid_profile_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// The profile name the reference derives from a model name: the part after
/// the last `/`, other characters replaced by `-`, at most 64 characters,
/// starting with an alphanumeric and not ending with `.`, `_` or `-`.
pub fn profile_name_from_model(model: &str) -> String {
    let tail = model.rsplit('/').next().unwrap_or(model);
    let mut name: String = tail
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name
        .chars()
        .next()
        .is_some_and(|c| !c.is_ascii_alphanumeric())
    {
        name.insert(0, 'm');
    }
    name.truncate(64);
    let name = name.trim_end_matches(['.', '_', '-']).to_string();
    if name.is_empty() {
        "default".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_secret_name("A") && valid_secret_name("GITHUB_TOKEN_2"));
        assert!(!valid_secret_name("") && !valid_secret_name("1A") && !valid_secret_name("A-B"));
        assert!(!valid_secret_name(&"A".repeat(65)) && valid_secret_name(&"A".repeat(64)));
        assert!(valid_profile_name("gpt-4o.mini_1") && valid_profile_name("0"));
        assert!(!valid_profile_name(".x") && !valid_profile_name("a/b") && !valid_profile_name(""));
        assert_eq!(profile_name_from_model("openai/gpt-4o"), "gpt-4o");
        assert_eq!(profile_name_from_model("litellm_proxy/a/b:c"), "b-c");
        assert_eq!(profile_name_from_model("_x!"), "m_x");
        assert_eq!(profile_name_from_model("///"), "default");
    }
}
