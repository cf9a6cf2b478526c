//! A retry deadline with exponential backoff, driven by the caller's clock.

use std::time::{Duration, Instant};

use crate::RetryPolicy;

/// One direction's "try again later" state. Time only ever comes in as an
/// argument, so tests move `now` forward instead of sleeping.
#[derive(Debug)]
pub(crate) struct Retry {
    policy: RetryPolicy,
    /// The delay the next backoff will use; `None` after a success.
    next_delay: Option<Duration>,
    /// When the pending retry is due; `None` when nothing waits.
    deadline: Option<Instant>,
}

impl Retry {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Retry {
            policy,
            next_delay: None,
            deadline: None,
        }
    }

    /// Schedules a retry after the current backoff delay and grows the delay.
    pub(crate) fn back_off(&mut self, now: Instant) {
        let delay = self.next_delay.unwrap_or(self.policy.initial);
        // Saturating: `Config::validate` accepts any `max`, up to
        // `Duration::MAX`, and neither doubling nor the deadline may panic.
        self.next_delay = Some(delay.saturating_mul(2).min(self.policy.max));
        self.deadline = Some(deadline_after(now, delay));
    }

    /// The operation succeeded: the next backoff starts small again.
    pub(crate) fn reset(&mut self) {
        self.next_delay = None;
        self.deadline = None;
    }

    pub(crate) fn is_waiting(&self) -> bool {
        self.deadline.is_some()
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the pending retry is due at `now`; clears it if so.
    pub(crate) fn take_due(&mut self, now: Instant) -> bool {
        match self.deadline {
            Some(at) if at <= now => {
                self.deadline = None;
                true
            }
            _ => false,
        }
    }
}

/// `now + delay`, or the latest instant this platform's clock can name if
/// that overflows: a retry that far away is one that never comes, which is
/// what such a policy asks for.
fn deadline_after(now: Instant, delay: Duration) -> Instant {
    if let Some(at) = now.checked_add(delay) {
        return at;
    }
    // Halve what is added until it fits: at most 64 steps, as a `Duration`
    // holds under 2^64 seconds.
    let (mut at, mut step) = (now, delay);
    while !step.is_zero() {
        match at.checked_add(step) {
            Some(later) => at = later,
            None => step /= 2,
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(2),
            max: Duration::from_millis(5),
        };
        let mut retry = Retry::new(policy);
        let t0 = Instant::now();
        retry.back_off(t0);
        assert_eq!(retry.deadline(), Some(t0 + Duration::from_millis(2)));
        assert!(!retry.take_due(t0 + Duration::from_millis(1)));
        assert!(retry.take_due(t0 + Duration::from_millis(2)));
        assert!(!retry.is_waiting());
        retry.back_off(t0);
        assert_eq!(retry.deadline(), Some(t0 + Duration::from_millis(4)));
        retry.back_off(t0);
        assert_eq!(retry.deadline(), Some(t0 + Duration::from_millis(5)));
        retry.reset();
        retry.back_off(t0);
        assert_eq!(retry.deadline(), Some(t0 + Duration::from_millis(2)));
    }

    #[test]
    fn a_backoff_with_the_largest_delay_never_panics() {
        let policy = RetryPolicy {
            initial: Duration::MAX,
            max: Duration::MAX,
        };
        let mut retry = Retry::new(policy);
        let t0 = Instant::now();
        retry.back_off(t0);
        retry.back_off(t0);
        let at = retry.deadline().expect("a retry is pending");
        assert!(at > t0 + Duration::from_secs(1 << 40));
        assert!(!retry.take_due(t0 + Duration::from_secs(3600)));
    }
}
