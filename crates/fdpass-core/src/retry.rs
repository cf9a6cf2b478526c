//! A retry deadline with exponential backoff, driven by the caller's clock.

use std::time::{Duration, Instant};

use crate::RetryPolicy;

/// One direction's "try again later" state. Time only ever comes in as an
/// argument, so tests move `now` forward instead of sleeping.
///
/// It also keeps the books on its *episodes* for [`Stats`](crate::Stats): an
/// episode starts with the first backoff after a success and ends with the
/// next success (or the passer's end), however many retries it takes. Its
/// length is measured between the `now` values the caller passed in.
#[derive(Debug)]
pub(crate) struct Retry {
    policy: RetryPolicy,
    /// The delay the next backoff will use; `None` after a success.
    next_delay: Option<Duration>,
    /// When the pending retry is due; `None` when nothing waits.
    deadline: Option<Instant>,
    /// The episode in progress, if any.
    episode: Option<Episode>,
    /// Episodes started so far.
    episodes: u64,
    /// Total length of the episodes that ended.
    waited: Duration,
}

/// One episode of retries, as far as the caller's clock has seen it.
#[derive(Debug, Clone, Copy)]
struct Episode {
    /// The `now` of its first backoff.
    started: Instant,
    /// The latest `now` seen since.
    latest: Instant,
}

impl Episode {
    fn length(&self) -> Duration {
        self.latest.saturating_duration_since(self.started)
    }
}

impl Retry {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Retry {
            policy,
            next_delay: None,
            deadline: None,
            episode: None,
            episodes: 0,
            waited: Duration::ZERO,
        }
    }

    /// Schedules a retry after the current backoff delay and grows the delay.
    /// Returns true if this backoff started a new episode.
    pub(crate) fn back_off(&mut self, now: Instant) -> bool {
        let delay = self.next_delay.unwrap_or(self.policy.initial);
        // Saturating: `Config::validate` accepts any `max`, up to
        // `Duration::MAX`, and neither doubling nor the deadline may panic.
        self.next_delay = Some(delay.saturating_mul(2).min(self.policy.max));
        self.deadline = Some(deadline_after(now, delay));
        let started = self.episode.is_none();
        self.see(now);
        started
    }

    /// The operation succeeded at `now`: the next backoff starts small again.
    /// Returns the length of the episode this ends, if one was in progress.
    pub(crate) fn succeeded(&mut self, now: Instant) -> Option<Duration> {
        let length = self.end_episode(now);
        self.reset();
        length
    }

    /// What was waited for is there again at `now` (room in the table)
    /// although no operation ran yet: ends the episode in progress, if any,
    /// and returns its length. The backoff delay is left as it is.
    pub(crate) fn end_episode(&mut self, now: Instant) -> Option<Duration> {
        if self.episode.is_some() {
            self.see(now);
        }
        let length = self.episode.take()?.length();
        self.waited = self.waited.saturating_add(length);
        Some(length)
    }

    /// Forgets the pending retry (a success, or the end of the passer): the
    /// next backoff starts small again. An episode in progress ends at the
    /// latest `now` seen; returns its length.
    pub(crate) fn reset(&mut self) -> Option<Duration> {
        self.next_delay = None;
        self.deadline = None;
        let length = self.episode.take()?.length();
        self.waited = self.waited.saturating_add(length);
        Some(length)
    }

    /// Notes the caller's clock: the first `now` of an episode starts it,
    /// later ones extend it.
    fn see(&mut self, now: Instant) {
        match &mut self.episode {
            Some(episode) => episode.latest = episode.latest.max(now),
            None => {
                self.episodes += 1;
                self.episode = Some(Episode {
                    started: now,
                    latest: now,
                });
            }
        }
    }

    /// When the episode in progress started (the `now` of its first
    /// backoff); `None` outside one.
    pub(crate) fn episode_started(&self) -> Option<Instant> {
        self.episode.map(|e| e.started)
    }

    /// Episodes started so far, the one in progress included.
    pub(crate) fn episodes(&self) -> u64 {
        self.episodes
    }

    /// Time spent in episodes: those that ended, plus the one in progress up
    /// to the latest `now` seen.
    pub(crate) fn waited(&self) -> Duration {
        let current = self.episode.map_or(Duration::ZERO, |e| e.length());
        self.waited.saturating_add(current)
    }

    pub(crate) fn is_waiting(&self) -> bool {
        self.deadline.is_some()
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the pending retry is due at `now`; clears it if so.
    pub(crate) fn take_due(&mut self, now: Instant) -> bool {
        if self.episode.is_some() {
            self.see(now);
        }
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

    #[test]
    fn an_episode_lasts_from_the_first_backoff_to_the_success() {
        let ms = Duration::from_millis;
        let mut retry = Retry::new(RetryPolicy {
            initial: ms(2),
            max: ms(5),
        });
        let t0 = Instant::now();
        assert!(retry.back_off(t0));
        assert!(
            !retry.back_off(t0 + ms(3)),
            "a second backoff is the same episode"
        );
        assert!(!retry.take_due(t0 + ms(5)), "due at 3 + 4 ms");
        assert_eq!(retry.episode_started(), Some(t0));
        assert_eq!(
            retry.waited(),
            ms(5),
            "the time so far counts while it lasts"
        );
        assert_eq!(retry.succeeded(t0 + ms(9)), Some(ms(9)));
        assert_eq!(retry.episode_started(), None);
        assert_eq!(
            retry.succeeded(t0 + ms(20)),
            None,
            "no episode, nothing ends"
        );
        assert_eq!((retry.episodes(), retry.waited()), (1, ms(9)));

        // The next one adds to both; one ended by the passer's end counts up
        // to the latest `now` seen.
        assert!(retry.back_off(t0 + ms(30)));
        assert_eq!(retry.episodes(), 2);
        assert!(retry.take_due(t0 + ms(100)));
        assert_eq!(retry.reset(), Some(ms(70)));
        assert_eq!(retry.waited(), ms(79));
    }
}
