//! The retry loop around one LLM request, as the SDK configures tenacity:
//! `num_retries` is the total number of attempts, waits grow as
//! `multiplier · 2^(attempt−1)` clamped to `[min, max]` seconds, and only errors whose
//! `is_retryable()` is true are tried again. It owns no request state; dropping its future
//! (interrupt) stops both the attempt in flight and any pending wait.

use std::future::Future;
use std::time::Duration;

use super::config::{LlmConfig, secs};
use super::error::LlmError;

/// Attempt count and backoff shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, at least 1.
    pub attempts: u32,
    /// Backoff multiplier, seconds.
    pub multiplier: f64,
    /// Shortest wait, seconds.
    pub min_wait: f64,
    /// Longest wait, seconds.
    pub max_wait: f64,
}

impl RetryPolicy {
    /// The policy of `cfg`.
    pub fn from_config(cfg: &LlmConfig) -> RetryPolicy {
        RetryPolicy {
            attempts: cfg.num_retries.max(1),
            multiplier: cfg.retry_multiplier,
            min_wait: cfg.retry_min_wait,
            max_wait: cfg.retry_max_wait,
        }
    }

    /// The wait after failed attempt number `attempt` (1-based).
    pub fn wait_after(&self, attempt: u32) -> Duration {
        let exp = 2f64.powi(attempt.saturating_sub(1).min(62) as i32);
        let raw = self.multiplier * exp;
        let upper = if self.max_wait.is_nan() {
            raw
        } else {
            raw.min(self.max_wait)
        };
        let lower = self.min_wait.max(0.0);
        secs(upper.max(lower)).unwrap_or(Duration::ZERO)
    }
}

/// Runs `attempt(n)` for n = 1, 2, … until it succeeds, fails for good, or the attempts
/// are used up; returns the last error in that case.
pub async fn run<T, F, Fut>(policy: RetryPolicy, label: &str, mut attempt: F) -> Result<T, LlmError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, LlmError>>,
{
    let mut n = 1;
    loop {
        match attempt(n).await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() && n < policy.attempts => {
                let wait = policy.wait_after(n);
                log::warn!(
                    "LLM call for {label} failed (attempt {n}/{}): {}; retrying in {:.1}s",
                    policy.attempts,
                    e.code(),
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
                n += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_follow_tenacity_exponential() {
        let p = RetryPolicy {
            attempts: 5,
            multiplier: 8.0,
            min_wait: 8.0,
            max_wait: 64.0,
        };
        let w: Vec<u64> = (1..=6).map(|n| p.wait_after(n).as_secs()).collect();
        assert_eq!(w, vec![8, 16, 32, 64, 64, 64]);
        let tiny = RetryPolicy {
            attempts: 3,
            multiplier: 0.001,
            min_wait: 0.0,
            max_wait: 0.01,
        };
        assert!(tiny.wait_after(40) <= Duration::from_millis(10));
    }
}
