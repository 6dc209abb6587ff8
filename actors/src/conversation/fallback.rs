//! The agent LLM's `fallback_strategy` (the reference's `FallbackStrategy`):
//! when an agent step's call fails for a transient reason after its retries
//! (connection, timeout, 429, 5xx, no response), the named profiles of the
//! server's store are tried in order, each with its own settings; the first
//! answer is used and accounted under the agent LLM's usage id, with the
//! fallback's model. Every call starts again with the primary LLM.
//!
//! Profiles are read on a blocking thread; nothing here logs a key.

use std::sync::Arc;

use crate::crypto::Cipher;
use crate::llm::{self, ChatMessage, LlmConfig, LlmError, LlmResponse, StreamDelta, ToolSpec};
use crate::settings::SettingsStore;

/// The fallback profiles of one call, and where to read them.
pub(super) struct Fallbacks {
    /// Profile names, in order.
    pub names: Vec<String>,
    /// The database holding the profile store.
    pub db: sled::Db,
    /// The key the profiles' secrets are sealed with.
    pub cipher: Option<Arc<Cipher>>,
}

/// Whether the reference falls back after this error.
pub(super) fn eligible(e: &LlmError) -> bool {
    matches!(
        e,
        LlmError::Connection(_)
            | LlmError::RateLimit(_)
            | LlmError::ServiceUnavailable(_)
            | LlmError::Timeout(_)
            | LlmError::InternalServer(_)
            | LlmError::NoResponse(_)
    )
}

impl Fallbacks {
    /// Tries each fallback in order: the first answer and the model that gave
    /// it, or `primary` when none could be loaded or all failed.
    pub async fn try_all(
        self,
        http: &reqwest::Client,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
        on_delta: Option<&(dyn Fn(StreamDelta) + Send + Sync)>,
        primary: LlmError,
    ) -> Result<(LlmResponse, Option<String>), LlmError> {
        let total = self.names.len();
        for (i, name) in self.names.iter().enumerate() {
            let (db, cipher, lookup) = (self.db.clone(), self.cipher.clone(), name.clone());
            let loaded = tokio::task::spawn_blocking(move || {
                SettingsStore::open(&db, cipher)
                    .map_err(|e| format!("{e}"))
                    .and_then(|s| s.profile_llm(&lookup).map_err(|e| format!("{e:?}")))
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            let cfg = loaded
                .and_then(|llm| LlmConfig::from_json(&llm.to_value()).map_err(|e| e.detail()));
            let cfg = match cfg {
                Ok(cfg) => cfg,
                Err(why) => {
                    log::error!("fallback profile '{name}' cannot be used: {why}");
                    continue;
                }
            };
            log::warn!(
                "primary LLM failed with {}; trying fallback {}/{total} ({})",
                primary.code(),
                i + 1,
                cfg.model
            );
            match llm::complete(http, &cfg, messages, tools, on_delta).await {
                Ok(r) => return Ok((r, Some(cfg.model.clone()))),
                Err(e) => log::warn!(
                    "fallback {}/{total} ({}) failed: {}",
                    i + 1,
                    cfg.model,
                    e.code()
                ),
            }
        }
        if total > 0 {
            log::error!("every fallback LLM failed; the primary's error stands");
        }
        Err(primary)
    }
}
