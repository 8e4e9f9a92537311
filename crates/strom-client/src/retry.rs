//! Exponential backoff between retries, bounded by an attempt count and a deadline.

use std::time::{Duration, Instant};

/// Backoff schedule: `base_ms`, doubling each attempt, never above `max_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base_ms: u64,
    pub max_ms: u64,
}

impl Backoff {
    /// The wait before retry number `attempt` (1 is the first retry).
    pub fn delay_ms(&self, attempt: u32) -> u64 {
        let exponent = attempt.saturating_sub(1).min(30);
        self.base_ms
            .saturating_mul(1u64 << exponent)
            .min(self.max_ms.max(self.base_ms))
    }
}

/// Tracks one operation's retries: how many so far, and until when they may go on.
#[derive(Debug, Clone)]
pub struct RetryState {
    backoff: Backoff,
    attempts: u32,
    attempts_max: u32,
    deadline: Instant,
}

impl RetryState {
    pub fn new(backoff: Backoff, attempts_max: u32, timeout: Duration) -> Self {
        RetryState {
            backoff,
            attempts: 0,
            attempts_max,
            deadline: Instant::now() + timeout,
        }
    }

    /// The wait before the next attempt, or `None` when attempts or time are used up.
    pub fn next_delay(&mut self) -> Option<Duration> {
        self.attempts = self.attempts.saturating_add(1);
        if self.attempts > self.attempts_max {
            return None;
        }
        let delay = Duration::from_millis(self.backoff.delay_ms(self.attempts));
        let now = Instant::now();
        if now + delay >= self.deadline {
            return None;
        }
        Some(delay)
    }

    /// Retries made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff {
            base_ms: 100,
            max_ms: 1_000,
        };
        let delays: Vec<u64> = (1..=6).map(|a| b.delay_ms(a)).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(b.delay_ms(u32::MAX), 1_000);
    }

    #[test]
    fn retries_stop_at_the_attempt_limit_and_the_deadline() {
        let b = Backoff {
            base_ms: 1,
            max_ms: 2,
        };
        let mut r = RetryState::new(b, 3, Duration::from_secs(60));
        assert!(r.next_delay().is_some());
        assert!(r.next_delay().is_some());
        assert!(r.next_delay().is_some());
        assert!(r.next_delay().is_none());
        let mut r = RetryState::new(b, 100, Duration::from_millis(0));
        assert!(r.next_delay().is_none());
    }
}
