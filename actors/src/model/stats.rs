//! Usage accounting per LLM (`stats.usage_to_metrics`), in the reference's
//! two forms: the full form (REST info, `full_state`) with per-call lists,
//! and the snapshot form (`stats` state-update events) without them.
//!
//! The per-call lists are capped so that a very long conversation keeps a
//! bounded record; the accumulated totals stay exact.
//!
//! At rest the usage is a snapshot plus a log of the calls made since
//! ([`LoggedCall`]): a step adds one small entry instead of rewriting the
//! per-call lists, and [`ConversationStats::rebuild`] replays the log.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Per-call lists keep at most this many entries (oldest dropped).
pub const MAX_PER_CALL_ENTRIES: usize = 1000;

/// Token counts of one call, or accumulated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Model name.
    #[serde(default)]
    pub model: String,
    /// Prompt tokens.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Completion tokens.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Prompt tokens read from the provider's cache.
    #[serde(default)]
    pub cache_read_tokens: u64,
    /// Prompt tokens written to the provider's cache.
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// Reasoning tokens.
    #[serde(default)]
    pub reasoning_tokens: u64,
    /// Context window of the model (0 when unknown).
    #[serde(default)]
    pub context_window: u64,
    /// Prompt + completion tokens of the latest call.
    #[serde(default)]
    pub per_turn_token: u64,
    /// Response id of the call (empty when accumulated).
    #[serde(default)]
    pub response_id: String,
}

/// Cost of one call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Model name.
    pub model: String,
    /// Cost in dollars.
    pub cost: f64,
    /// Unix time of the call, seconds.
    pub timestamp: f64,
}

/// Latency of one call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseLatency {
    /// Model name.
    pub model: String,
    /// Seconds.
    pub latency: f64,
    /// Response id.
    pub response_id: String,
}

/// Usage of one LLM (one `usage_id`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Model name.
    #[serde(default)]
    pub model_name: String,
    /// Total cost.
    #[serde(default)]
    pub accumulated_cost: f64,
    /// Budget limit, if any.
    #[serde(default)]
    pub max_budget_per_task: Option<f64>,
    /// Totals.
    #[serde(default)]
    pub accumulated_token_usage: TokenUsage,
    /// Per-call costs.
    #[serde(default)]
    pub costs: Vec<Cost>,
    /// Per-call latencies.
    #[serde(default)]
    pub response_latencies: Vec<ResponseLatency>,
    /// Per-call token usage.
    #[serde(default)]
    pub token_usages: Vec<TokenUsage>,
}

/// One finished LLM call, as the agent loop reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallUsage {
    /// Model name as configured.
    pub model: String,
    /// Response id.
    pub response_id: String,
    /// Token counts of the call.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Cache reads.
    pub cache_read_tokens: u64,
    /// Cache writes.
    pub cache_write_tokens: u64,
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
    /// Context window (0 when unknown).
    pub context_window: u64,
    /// Cost in dollars.
    pub cost: f64,
    /// Seconds.
    pub latency: f64,
    /// Unix time of the call, seconds (the `costs` entry's time stamp).
    #[serde(default)]
    pub timestamp: f64,
}

/// `x`, or the nearest finite value: JSON has no infinity or NaN (serde
/// writes them as `null`, which then does not read back as a number).
fn finite(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(f64::MIN, f64::MAX)
    }
}

impl CallUsage {
    /// The call with every number storable: an overflowing cost (prices
    /// times tokens past `f64::MAX`) is kept at `f64::MAX`.
    pub fn storable(mut self) -> CallUsage {
        self.cost = finite(self.cost);
        self.latency = finite(self.latency);
        self.timestamp = finite(self.timestamp);
        self
    }
}

/// A call as kept in the stored log: whose usage it adds to, and the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedCall {
    /// The LLM's `usage_id`.
    #[serde(rename = "u")]
    pub usage_id: String,
    /// The call.
    #[serde(rename = "c")]
    pub call: CallUsage,
}

impl LoggedCall {
    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn push_capped<T>(list: &mut Vec<T>, item: T) {
    if list.len() >= MAX_PER_CALL_ENTRIES {
        list.remove(0);
    }
    list.push(item);
}

impl Metrics {
    /// Adds one call.
    pub fn record(&mut self, call: &CallUsage) {
        self.model_name = call.model.clone();
        self.accumulated_cost = finite(self.accumulated_cost + call.cost);
        let acc = &mut self.accumulated_token_usage;
        acc.model = call.model.clone();
        acc.prompt_tokens = acc.prompt_tokens.saturating_add(call.prompt_tokens);
        acc.completion_tokens = acc.completion_tokens.saturating_add(call.completion_tokens);
        acc.cache_read_tokens = acc.cache_read_tokens.saturating_add(call.cache_read_tokens);
        acc.cache_write_tokens = acc
            .cache_write_tokens
            .saturating_add(call.cache_write_tokens);
        acc.reasoning_tokens = acc.reasoning_tokens.saturating_add(call.reasoning_tokens);
        acc.context_window = call.context_window;
        // Counts come from the LLM's answer: a huge one must not overflow.
        let per_turn = call.prompt_tokens.saturating_add(call.completion_tokens);
        acc.per_turn_token = per_turn;
        push_capped(
            &mut self.costs,
            Cost {
                model: call.model.clone(),
                cost: call.cost,
                timestamp: call.timestamp,
            },
        );
        push_capped(
            &mut self.response_latencies,
            ResponseLatency {
                model: call.model.clone(),
                latency: call.latency,
                response_id: call.response_id.clone(),
            },
        );
        push_capped(
            &mut self.token_usages,
            TokenUsage {
                model: call.model.clone(),
                prompt_tokens: call.prompt_tokens,
                completion_tokens: call.completion_tokens,
                cache_read_tokens: call.cache_read_tokens,
                cache_write_tokens: call.cache_write_tokens,
                reasoning_tokens: call.reasoning_tokens,
                context_window: call.context_window,
                per_turn_token: per_turn,
                response_id: call.response_id.clone(),
            },
        );
    }
}

/// `ConversationStats`: metrics per usage id, in first-use order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConversationStats {
    /// `(usage_id, metrics)` in insertion order.
    pub usage_to_metrics: Vec<(String, Metrics)>,
}

impl ConversationStats {
    /// The metrics of a usage id, created empty on first use.
    pub fn entry(&mut self, usage_id: &str) -> &mut Metrics {
        let idx = match self
            .usage_to_metrics
            .iter()
            .position(|(k, _)| k == usage_id)
        {
            Some(i) => i,
            None => {
                self.usage_to_metrics
                    .push((usage_id.to_string(), Metrics::default()));
                self.usage_to_metrics.len() - 1
            }
        };
        &mut self.usage_to_metrics[idx].1
    }

    /// Adds one call to the metrics of its usage id.
    pub fn apply(&mut self, logged: &LoggedCall) {
        self.entry(&logged.usage_id).record(&logged.call);
    }

    /// The usage stored as a snapshot (`base`, the full form) and the log
    /// of calls made after it, oldest first.
    pub fn rebuild<'a>(
        base: Option<&[u8]>,
        calls: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<ConversationStats, String> {
        let mut stats = match base {
            Some(b) => serde_json::from_slice(b).map_err(|e| format!("usage snapshot: {e}"))?,
            None => ConversationStats::default(),
        };
        for c in calls {
            let logged: LoggedCall =
                serde_json::from_slice(c).map_err(|e| format!("usage log entry: {e}"))?;
            stats.apply(&logged);
        }
        Ok(stats)
    }

    /// The full form as JSON bytes (the stored snapshot).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Full form, with the per-call lists.
    pub fn to_full_value(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in &self.usage_to_metrics {
            m.insert(k.clone(), serde_json::to_value(v).unwrap_or(Value::Null));
        }
        serde_json::json!({ "usage_to_metrics": m })
    }

    /// Snapshot form (state-update events): without the per-call lists.
    pub fn to_snapshot_value(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in &self.usage_to_metrics {
            m.insert(
                k.clone(),
                serde_json::json!({
                    "model_name": v.model_name,
                    "accumulated_cost": v.accumulated_cost,
                    "max_budget_per_task": v.max_budget_per_task,
                    "accumulated_token_usage": v.accumulated_token_usage,
                }),
            );
        }
        serde_json::json!({ "usage_to_metrics": m })
    }
}

/// The full form, serialized straight from the metrics: the record is
/// stored on every append, so building a `Value` tree of the per-call lists
/// first (as [`ConversationStats::to_full_value`] does) would double the
/// cost of each step of a long run.
impl Serialize for ConversationStats {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct ByUsage<'a>(&'a [(String, Metrics)]);
        impl Serialize for ByUsage<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(self.0.len()))?;
                for (usage_id, metrics) in self.0 {
                    m.serialize_entry(usage_id, metrics)?;
                }
                m.end()
            }
        }
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("usage_to_metrics", &ByUsage(&self.usage_to_metrics))?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for ConversationStats {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let mut out = ConversationStats::default();
        if let Some(Value::Object(m)) = v.get("usage_to_metrics") {
            for (k, x) in m {
                let metrics: Metrics =
                    serde_json::from_value(x.clone()).map_err(serde::de::Error::custom)?;
                out.usage_to_metrics.push((k.clone(), metrics));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialize_matches_the_full_value() {
        let mut stats = ConversationStats::default();
        for (usage, model) in [("default", "m1"), ("condenser", "m2"), ("default", "m1")] {
            stats.entry(usage).record(&CallUsage {
                model: model.into(),
                response_id: "r".into(),
                prompt_tokens: 10,
                completion_tokens: 2,
                cost: 0.5,
                latency: 0.25,
                ..Default::default()
            });
        }
        assert_eq!(serde_json::to_value(&stats).unwrap(), stats.to_full_value());
        assert_eq!(
            serde_json::to_string(&stats).unwrap(),
            stats.to_full_value().to_string()
        );
    }

    #[test]
    fn huge_token_counts_from_the_llm_saturate() {
        let mut s = ConversationStats::default();
        let call = CallUsage {
            model: "m".into(),
            prompt_tokens: u64::MAX,
            completion_tokens: 1,
            ..Default::default()
        };
        s.entry("default").record(&call);
        s.entry("default").record(&call);
        let m = s.entry("default");
        assert_eq!(m.accumulated_token_usage.prompt_tokens, u64::MAX);
        assert_eq!(m.accumulated_token_usage.per_turn_token, u64::MAX);
        assert_eq!(m.token_usages[1].per_turn_token, u64::MAX);
    }

    #[test]
    fn record_and_forms() {
        let mut s = ConversationStats::default();
        let call = CallUsage {
            model: "m".into(),
            response_id: "r1".into(),
            prompt_tokens: 10,
            completion_tokens: 2,
            ..Default::default()
        };
        s.entry("default").record(&call);
        s.entry("default").record(&call);
        let full = s.to_full_value();
        assert_eq!(
            full["usage_to_metrics"]["default"]["accumulated_token_usage"]["prompt_tokens"],
            20
        );
        assert_eq!(
            full["usage_to_metrics"]["default"]["costs"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let snap = s.to_snapshot_value();
        assert!(snap["usage_to_metrics"]["default"].get("costs").is_none());
        let back: ConversationStats = serde_json::from_value(full).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn snapshot_plus_log_rebuilds_the_same_usage() {
        let calls: Vec<LoggedCall> = (0..5)
            .map(|i| LoggedCall {
                usage_id: if i % 2 == 0 { "agent" } else { "condenser" }.into(),
                call: CallUsage {
                    model: "m".into(),
                    response_id: format!("r{i}"),
                    prompt_tokens: 10 + i,
                    completion_tokens: 1,
                    cost: 0.25,
                    latency: 0.5,
                    timestamp: 1_700_000_000.0 + i as f64,
                    ..Default::default()
                },
            })
            .collect();
        let mut live = ConversationStats::default();
        for c in &calls {
            live.apply(c);
        }
        // Snapshot after two calls, log of the other three.
        let mut base = ConversationStats::default();
        for c in &calls[..2] {
            base.apply(c);
        }
        let base_bytes = base.encode();
        let log: Vec<Vec<u8>> = calls[2..].iter().map(LoggedCall::encode).collect();
        let rebuilt =
            ConversationStats::rebuild(Some(&base_bytes), log.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(rebuilt, live);
        assert_eq!(
            rebuilt.to_full_value()["usage_to_metrics"]["agent"]["costs"][1]["timestamp"],
            1_700_000_002.0
        );
        assert!(ConversationStats::rebuild(None, [&b"not json"[..]]).is_err());
    }
}
