//! SIGHUP reload: read the settings again with the same layers as at start
//! (built-in defaults, the `--config`/`OH_CONFIG_FILE` file, the
//! environment, the command-line flags) and apply what can change without a
//! restart — the session API keys and the CORS origins, swapped atomically
//! in [`crate::auth::AccessCell`]. Every other changed key is named in a
//! warning as needing a restart.
//!
//! A file that does not load leaves everything as it was and logs one line.
//! Nothing here ever logs a key's value: only setting names and counts.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::auth::Access;
use crate::settings::{Cli, Settings, SettingsError};
use crate::state::AppState;

/// Settings applied live on reload; everything else needs a restart.
pub const LIVE_KEYS: [&str; 2] = ["session_api_keys", "allow_cors_origins"];

/// Loads the settings again the way `main` loaded them at start.
#[derive(Debug, Clone)]
pub struct Reloader {
    cli: Cli,
}

impl Reloader {
    /// A reloader for the flags the process was started with.
    pub fn new(cli: Cli) -> Reloader {
        Reloader { cli }
    }

    /// Reads the layers again (blocking: reads the config file).
    pub fn load(&self) -> Result<Settings, SettingsError> {
        let env = std::env::vars().collect();
        Settings::load(&self.cli, &env)
    }

    /// Whether the session keys come from the environment, which a running
    /// process cannot see change (so a reload cannot rotate them).
    pub fn keys_from_env(&self) -> bool {
        std::env::vars().any(|(k, v)| {
            k.starts_with("OH_SESSION_API_KEYS") || (k == "SESSION_API_KEY" && !v.is_empty())
        })
    }
}

/// What a reload did, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The new settings could not be loaded; nothing changed.
    Failed(String),
    /// Applied; names of changed settings that wait for a restart.
    Applied {
        /// Whether the keys or origins changed.
        access_changed: bool,
        /// Changed settings that were not applied.
        needs_restart: Vec<String>,
    },
}

/// Applies a freshly loaded `new` over `current` (the settings in effect:
/// those of the start with the live keys of the last reload). Logs what
/// happened.
pub fn apply(
    state: &AppState,
    current: &mut Settings,
    new: Result<Settings, SettingsError>,
) -> Outcome {
    let source = current.config_file.as_ref().map_or_else(
        || "the environment".to_string(),
        |p| p.display().to_string(),
    );
    let new = match new {
        Ok(s) => s,
        Err(e) => {
            log::error!("reload of {source} failed, keeping the current settings: {e}");
            return Outcome::Failed(e.0);
        }
    };
    let changed = changed_keys(current, &new);
    let access_changed = changed
        .iter()
        .any(|k| LIVE_KEYS.iter().any(|live| k == live));
    let needs_restart: Vec<String> = changed
        .into_iter()
        .filter(|k| !LIVE_KEYS.iter().any(|live| k == live))
        .collect();
    if access_changed {
        state
            .access
            .set(Access::new(&new.session_api_keys, &new.allow_cors_origins));
        current.session_api_keys = new.session_api_keys.clone();
        current.allow_cors_origins = new.allow_cors_origins.clone();
    }
    log::info!(
        "reloaded {source}: {} session API key(s), {} CORS origin(s){}",
        current.session_api_keys.len(),
        current.allow_cors_origins.len(),
        if access_changed { "" } else { " (unchanged)" }
    );
    if access_changed && current.session_api_keys.is_empty() {
        log::warn!(
            "no session API keys are configured any more: /api and the sockets are open to anyone who can reach {}:{}",
            current.host,
            current.port
        );
    }
    if !needs_restart.is_empty() {
        log::warn!(
            "changed settings not applied until a restart: {}",
            needs_restart.join(", ")
        );
    }
    Outcome::Applied {
        access_changed,
        needs_restart,
    }
}

/// Dotted names of the settings that differ (values are compared, never
/// printed).
pub fn changed_keys(a: &Settings, b: &Settings) -> Vec<String> {
    let (mut fa, mut fb) = (BTreeMap::new(), BTreeMap::new());
    flatten("", &serde_json::to_value(a).unwrap_or(Value::Null), &mut fa);
    flatten("", &serde_json::to_value(b).unwrap_or(Value::Null), &mut fb);
    let mut keys: Vec<String> = fa
        .keys()
        .chain(fb.keys())
        .filter(|k| fa.get(*k) != fb.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn the_production_example_loads() {
        let cli = Cli {
            config: Some(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("config/production.example.toml"),
            ),
            ..Default::default()
        };
        let s = Settings::load(&cli, &HashMap::new()).unwrap();
        assert_eq!(s.session_api_keys.len(), 1);
        assert!(s.metrics.require_key);
        assert_eq!(
            s.storage_path(),
            std::path::PathBuf::from("state/agent-server.db")
        );
    }

    #[test]
    fn changed_keys_are_named() {
        let a = Settings::load(&Cli::default(), &HashMap::new()).unwrap();
        let mut b = a.clone();
        assert!(changed_keys(&a, &b).is_empty());
        b.session_api_keys = vec!["k".into()];
        b.storage.cache_mb += 1;
        b.conversations.idle_eviction_seconds = None;
        assert_eq!(
            changed_keys(&a, &b),
            vec![
                "conversations.idle_eviction_seconds",
                "session_api_keys",
                "storage.cache_mb"
            ]
        );
    }
}
