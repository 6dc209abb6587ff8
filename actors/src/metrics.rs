//! Process-wide counters for operators (`GET /metrics`): lock-free atomics
//! that anyone may increment and a latency histogram. Conversations by
//! status come from the store's catalog. Nothing here formats output or
//! knows about HTTP; the HTTP layer renders.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Why a WebSocket session failed (a fixed set: metric labels never carry
/// user input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsFailure {
    /// The subscription to the conversation could not be set up.
    SubscribeFailed,
    /// The client fell too far behind and was closed with 4008.
    TooSlow,
    /// The client broke the WebSocket protocol.
    ProtocolError,
    /// The conversation's actor kept failing while the socket was open.
    ActorFailing,
    /// Replaying stored events failed.
    ReplayFailed,
}

impl WsFailure {
    /// Every reason, in rendering order.
    pub const ALL: [WsFailure; 5] = [
        WsFailure::SubscribeFailed,
        WsFailure::TooSlow,
        WsFailure::ProtocolError,
        WsFailure::ActorFailing,
        WsFailure::ReplayFailed,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            WsFailure::SubscribeFailed => "subscribe_failed",
            WsFailure::TooSlow => "too_slow",
            WsFailure::ProtocolError => "protocol_error",
            WsFailure::ActorFailing => "actor_failing",
            WsFailure::ReplayFailed => "replay_failed",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Monotonic counters and gauges.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events appended to conversation logs.
    pub events_appended: AtomicU64,
    /// Conversation actors restarted by their supervisor.
    pub actor_restarts: AtomicU64,
    /// Conversation actors respawned by the registry after their mailbox died (a panic).
    pub conversation_respawns: AtomicU64,
    /// Bash command actors restarted by their supervisor.
    pub bash_restarts: AtomicU64,
    /// Registry actors (conversation or bash) restarted by their supervisor.
    pub registry_restarts: AtomicU64,
    /// Conversation actors in memory now (live, or stopping).
    pub conversation_actors: AtomicU64,
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
    /// Total latency of successful LLM calls, microseconds.
    pub llm_latency_micros: AtomicU64,
    /// Wall time of every agent LLM call (retries included), successful or not.
    pub llm_duration: Histogram,
    /// Prompt tokens.
    pub llm_prompt_tokens: AtomicU64,
    /// Completion tokens.
    pub llm_completion_tokens: AtomicU64,
    /// Event sockets (`/sockets/events/…`) connected now.
    pub ws_subscribers: AtomicU64,
    /// Bash event sockets (`/sockets/bash-events`) connected now.
    pub ws_bash_subscribers: AtomicU64,
    ws_failures: [AtomicU64; 5],
    /// Bash commands started through the bash API.
    pub bash_commands: AtomicU64,
    /// Bash commands running now.
    pub bash_running: AtomicU64,
    /// Conversation actors evicted for idleness.
    pub evictions: AtomicU64,
    /// HTTP requests received.
    pub http_requests: AtomicU64,
    /// HTTP requests being handled now (WebSocket sessions count only
    /// during their handshake).
    pub http_in_flight: AtomicU64,
    /// Event webhook requests answered 2xx.
    pub webhook_event_deliveries: AtomicU64,
    /// Event webhook requests that failed after their retries.
    pub webhook_event_failures: AtomicU64,
    /// Events dropped by the webhook queue bounds (or still held when a
    /// feed's last flush failed).
    pub webhook_events_dropped: AtomicU64,
    /// Conversation webhook requests answered 2xx.
    pub webhook_info_deliveries: AtomicU64,
    /// Conversation webhook requests that failed after their retries.
    pub webhook_info_failures: AtomicU64,
    /// Conversation notifications dropped by the queue bounds.
    pub webhook_infos_dropped: AtomicU64,
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

    /// Counts a failed WebSocket session.
    pub fn ws_failed(&self, why: WsFailure) {
        Counters::add(&self.ws_failures[why.index()], 1);
    }

    /// Failed WebSocket sessions of one kind so far.
    pub fn ws_failures(&self, why: WsFailure) -> u64 {
        Counters::get(&self.ws_failures[why.index()])
    }
}

/// Upper bounds (seconds) of the latency histogram's buckets; LLM calls
/// take from a fraction of a second to minutes.
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// A fixed-bucket histogram of durations (Prometheus style: a count per
/// upper bound, plus the sum and the total count).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// A consistent-enough copy of a [`Histogram`] for rendering.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations ≤ bound)`, cumulative.
    pub buckets: Vec<(f64, u64)>,
    /// Every observation.
    pub count: u64,
    /// Sum of the observations, seconds.
    pub sum_seconds: f64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            Counters::add(&self.buckets[i], 1);
        }
        Counters::add(
            &self.sum_micros,
            d.as_micros().min(u128::from(u64::MAX)) as u64,
        );
        Counters::add(&self.count, 1);
    }

    /// Cumulative bucket counts, the count and the sum.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let buckets = LATENCY_BUCKETS
            .iter()
            .zip(self.buckets.iter())
            .map(|(bound, n)| {
                running += Counters::get(n);
                (*bound, running)
            })
            .collect();
        HistogramSnapshot {
            buckets,
            // Read last so that it is never below the sum of the buckets.
            count: Counters::get(&self.count).max(running),
            sum_seconds: Counters::get(&self.sum_micros) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_millis(700));
        h.observe(Duration::from_secs(1000));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets[0], (0.1, 1));
        assert_eq!(s.buckets[2], (0.5, 1));
        assert_eq!(s.buckets[3], (1.0, 2));
        assert_eq!(
            s.buckets.last(),
            Some(&(300.0, 2)),
            "1000 s is only in +Inf"
        );
        assert!((s.sum_seconds - 1000.75).abs() < 1e-6);
    }
}
