//! Read-only catalogues the GUI and clients query: registered tools, the LLM
//! provider/model table ([`llm_catalog.json`](./llm_catalog.json), shipped in
//! the binary; no network), project hooks ([`hooks`]), skills from local
//! directories ([`skills`]), and the MCP server probe ([`mcp`]).
//!
//! Nothing here keeps state or writes anything.

pub mod hooks;
pub mod skills;

/// The MCP client, whose probe answers `POST /api/mcp/test`.
pub use crate::mcp::client as mcp;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::tools::catalog::{TOOL_NAMES, TOOL_SETS};

/// Names of the tools a conversation can be given, sorted, tool sets
/// (`task_tool_set`) and their tools (`task`) both, as the reference
/// registers them. The built-ins (`finish`, `think`, `switch_llm`) come with
/// `include_default_tools`, so, as in the reference, they are not listed as
/// registered tools.
pub fn registered_tools() -> Vec<String> {
    let mut names: Vec<String> = TOOL_NAMES
        .iter()
        .filter(|n| !crate::tools::catalog::is_builtin(n))
        .chain(TOOL_SETS.iter().map(|(set, _)| set))
        .map(|n| n.to_string())
        .collect();
    names.sort();
    names
}

#[derive(Debug, Deserialize)]
struct RawCatalog {
    providers: Vec<String>,
    models: BTreeMap<String, Vec<String>>,
    verified: BTreeMap<String, Vec<String>>,
}

/// The LLM catalogue: providers, models per provider and the verified table.
#[derive(Debug)]
pub struct LlmCatalog {
    /// Provider names, sorted and unique.
    pub providers: Vec<String>,
    /// `provider/model` identifiers, sorted and unique.
    pub models: Vec<String>,
    /// Models verified to work well, per provider, each list sorted.
    pub verified: BTreeMap<String, Vec<String>>,
}

fn sorted_unique(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// The catalogue compiled into the binary.
pub fn llm_catalog() -> &'static LlmCatalog {
    static CATALOG: OnceLock<LlmCatalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let raw: RawCatalog = serde_json::from_str(include_str!("llm_catalog.json"))
            .unwrap_or_else(|e| {
                log::error!("the built-in LLM catalogue is unreadable: {e}");
                RawCatalog {
                    providers: vec![],
                    models: BTreeMap::new(),
                    verified: BTreeMap::new(),
                }
            });
        let models = raw
            .models
            .iter()
            .flat_map(|(p, ms)| ms.iter().map(move |m| format!("{p}/{m}")))
            .collect();
        LlmCatalog {
            providers: sorted_unique(raw.providers),
            models: sorted_unique(models),
            verified: raw
                .verified
                .into_iter()
                .map(|(p, ms)| (p, sorted_unique(ms)))
                .collect(),
        }
    })
}

impl LlmCatalog {
    /// Models, optionally only those of one provider (the text before the
    /// first `/`); an unknown provider gives an empty list.
    pub fn models_of(&self, provider: Option<&str>) -> Vec<String> {
        match provider {
            None => self.models.clone(),
            Some(p) => self
                .models
                .iter()
                .filter(|m| m.split_once('/').is_some_and(|(mp, _)| mp == p))
                .cloned()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_sorted_and_consistent() {
        let c = llm_catalog();
        assert!(c.providers.len() > 20);
        assert!(c.providers.windows(2).all(|w| w[0] < w[1]));
        assert!(c.models.windows(2).all(|w| w[0] < w[1]));
        for m in &c.models {
            let (p, _) = m.split_once('/').unwrap();
            assert!(c.providers.iter().any(|x| x == p), "{m}: unknown provider");
        }
        let anthropic = c.models_of(Some("anthropic"));
        assert!(!anthropic.is_empty());
        assert!(anthropic.iter().all(|m| m.starts_with("anthropic/")));
        assert!(c.models_of(Some("nope")).is_empty());
        assert!(c.verified["openai"].contains(&"gpt-4o".to_string()));
        assert_eq!(
            registered_tools(),
            vec![
                "apply_patch",
                "delegate",
                "edit",
                "file_editor",
                "glob",
                "grep",
                "list_directory",
                "planning_file_editor",
                "read_file",
                "task",
                "task_tool_set",
                "task_tracker",
                "terminal",
                "write_file"
            ]
        );
    }
}
