//! Retry pacing, the one kind the host uses: a delay that doubles after
//! each failure up to a cap, starts over after a stable run, and a least
//! interval between two tries. A stream's FFmpeg, a recorder, nginx and a
//! provider's refresh each keep one.

use std::time::{Duration, Instant};

/// The restart policy (from `[ffmpeg]`).
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// First delay after a failure.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// A run live at least this long resets the delay.
    pub stable: Duration,
    /// Least time between two spawns of one stream, whatever happens.
    pub min_interval: Duration,
}

/// Where a stream is in its restart pacing.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: Policy,
    delay: Duration,
    /// Failures in a row (reset after a stable run).
    pub failures: u32,
    /// No spawn before this instant.
    pub until: Option<Instant>,
    last_spawn: Option<Instant>,
}

impl Backoff {
    /// A fresh pacing.
    pub fn new(policy: Policy) -> Self {
        Backoff {
            policy,
            delay: policy.initial,
            failures: 0,
            until: None,
            last_spawn: None,
        }
    }

    /// Records a failure of a run that was live for `live` (if it got
    /// there); returns the delay before the next try.
    pub fn fail(&mut self, live: Option<Duration>, now: Instant) -> Duration {
        let stable = live.is_some_and(|l| l >= self.policy.stable);
        if stable || self.failures == 0 {
            self.failures = 0;
            self.delay = self.policy.initial;
        } else {
            self.delay = (self.delay * 2).min(self.policy.max.max(self.policy.initial));
        }
        self.failures += 1;
        self.until = Some(now + self.delay);
        self.delay
    }

    /// Records a spawn.
    pub fn spawned(&mut self, now: Instant) {
        self.last_spawn = Some(now);
        self.until = None;
    }

    /// Starts over as after a stable run (what failed was outside the
    /// stream, and it is back: nginx restarted). The minimum interval
    /// between spawns still holds.
    pub fn reset(&mut self) {
        self.delay = self.policy.initial;
        self.failures = 0;
        self.until = None;
    }

    /// Forgets a pending retry (nobody wants the stream any more); the
    /// failure count stays, for the API.
    pub fn cancel(&mut self) {
        self.until = None;
    }

    /// The earliest instant a spawn may happen (`None`: now).
    pub fn next_allowed(&self) -> Option<Instant> {
        let spaced = self.last_spawn.map(|t| t + self.policy.min_interval);
        match (self.until, spaced) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
            stable: Duration::from_secs(60),
            min_interval: Duration::from_millis(500),
        }
    }

    #[test]
    fn delays_double_up_to_the_cap_and_reset_after_a_stable_run() {
        let now = Instant::now();
        let mut b = Backoff::new(policy());
        let d: Vec<u64> = (0..6).map(|_| b.fail(None, now).as_secs()).collect();
        assert_eq!(d, [1, 2, 4, 8, 8, 8]);
        assert_eq!(b.failures, 6);
        assert_eq!(b.fail(Some(Duration::from_secs(61)), now).as_secs(), 1);
        assert_eq!(b.failures, 1);
    }

    #[test]
    fn spawns_are_spaced_by_the_minimum_interval() {
        let now = Instant::now();
        let mut b = Backoff::new(policy());
        assert_eq!(b.next_allowed(), None);
        b.spawned(now);
        assert_eq!(b.next_allowed(), Some(now + Duration::from_millis(500)));
        b.fail(None, now);
        assert_eq!(b.next_allowed(), Some(now + Duration::from_secs(1)));
        b.cancel();
        assert_eq!(b.next_allowed(), Some(now + Duration::from_millis(500)));
    }

    #[test]
    fn a_reset_forgets_the_failures_but_keeps_the_spacing() {
        let now = Instant::now();
        let mut b = Backoff::new(policy());
        b.spawned(now);
        for _ in 0..4 {
            b.fail(None, now);
        }
        assert_eq!(b.next_allowed(), Some(now + Duration::from_secs(8)));
        b.reset();
        assert_eq!(b.failures, 0);
        assert_eq!(b.next_allowed(), Some(now + Duration::from_millis(500)));
        assert_eq!(b.fail(None, now).as_secs(), 1, "doubling starts over");
    }
}
