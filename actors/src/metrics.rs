//! Process-wide counters for operators (`GET /metrics`). Lock-free atomics
//! only; anyone may increment, the HTTP layer renders them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters and gauges.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events appended to conversation logs.
    pub events_appended: AtomicU64,
    /// Conversation actors restarted by their supervisor or respawned by the registry.
    pub actor_restarts: AtomicU64,
    /// Agent runs started.
    pub runs_started: AtomicU64,
    /// Agent runs currently executing.
    pub runs_active: AtomicU64,
    /// Agent runs waiting for a slot.
    pub runs_waiting: AtomicU64,
    /// LLM calls completed (successfully or not).
    pub llm_calls: AtomicU64,
    /// LLM calls that failed.
    pub llm_errors: AtomicU64,
    /// Total LLM latency, microseconds.
    pub llm_latency_micros: AtomicU64,
    /// Prompt tokens.
    pub llm_prompt_tokens: AtomicU64,
    /// Completion tokens.
    pub llm_completion_tokens: AtomicU64,
    /// WebSocket subscribers connected now.
    pub ws_subscribers: AtomicU64,
    /// Bash commands started through the bash API.
    pub bash_commands: AtomicU64,
    /// Conversation actors evicted for idleness.
    pub evictions: AtomicU64,
}

impl Counters {
    /// Adds `n` to a counter.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts `n` from a gauge (saturating at zero).
    pub fn sub(c: &AtomicU64, n: u64) {
        let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(n))
        });
    }

    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}
