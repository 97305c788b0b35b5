//! The leases this host holds, on its own monotonic clock: which streams
//! it may run, which to renew now, and which it must give up because it
//! could not renew in time (a partitioned host stops its FFmpeg before
//! anyone else may take the stream over).
//!
//! A lease acquired or renewed by a request sent at `t` is this host's
//! until `t + ttl − margin` ([`LeaseBook::valid_until`]); the store's
//! server considers it held until `renewed + ttl`, and `renewed` is after
//! `t`. So the holder's own deadline always comes first, by `margin` at
//! least, whatever the delays of the request and the answer: two hosts
//! never run one stream's FFmpeg for longer than that margin.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One held lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The epoch it was acquired with (renewals must name it).
    pub epoch: u64,
    /// Until when this host may act on it.
    pub valid_until: Instant,
    /// When the last successful request was sent.
    pub renewed_at: Instant,
}

/// The held leases, by name.
#[derive(Debug)]
pub struct LeaseBook {
    ttl: Duration,
    margin: Duration,
    held: HashMap<String, Held>,
}

impl LeaseBook {
    /// A book for leases of `ttl`, acted on at most `ttl − margin`.
    pub fn new(ttl: Duration) -> LeaseBook {
        LeaseBook {
            ttl,
            margin: Self::margin_for(ttl),
            held: HashMap::new(),
        }
    }

    /// The safety margin: a fifth of the lease, at least a second (the
    /// time a stopping FFmpeg may still take, and the clocks' drift).
    pub fn margin_for(ttl: Duration) -> Duration {
        (ttl / 5).max(Duration::from_secs(1)).min(ttl / 2)
    }

    /// The margin in force.
    pub fn margin(&self) -> Duration {
        self.margin
    }

    /// How long after sending a request its lease may be acted on.
    pub fn valid_until(&self, sent_at: Instant) -> Instant {
        sent_at + self.ttl.saturating_sub(self.margin)
    }

    /// Records `name` acquired with `epoch` by a request sent at `sent_at`.
    pub fn acquired(&mut self, name: &str, epoch: u64, sent_at: Instant) {
        let valid_until = self.valid_until(sent_at);
        self.held.insert(
            name.to_string(),
            Held {
                epoch,
                valid_until,
                renewed_at: sent_at,
            },
        );
    }

    /// Records the answer to a renewal of `name` at `epoch` sent at
    /// `sent_at`: still ours (`true`) extends it; `false` (taken over or
    /// released) forgets it at once.
    pub fn renewed(&mut self, name: &str, epoch: u64, sent_at: Instant, ok: bool) {
        let valid_until = self.valid_until(sent_at);
        match self.held.get_mut(name) {
            // The answer for an older epoch (before a re-acquisition).
            Some(h) if h.epoch != epoch => {}
            Some(h) if ok => {
                // An answer overtaken by a later one changes nothing.
                h.renewed_at = h.renewed_at.max(sent_at);
                h.valid_until = h.valid_until.max(valid_until);
            }
            Some(_) => {
                self.held.remove(name);
            }
            None => {}
        }
    }

    /// Forgets `name` (released, or no longer wanted).
    pub fn release(&mut self, name: &str) -> Option<Held> {
        self.held.remove(name)
    }

    /// The lease `name`, if this host may act on it at `now`.
    pub fn holds(&self, name: &str, now: Instant) -> Option<Held> {
        self.held.get(name).copied().filter(|h| now < h.valid_until)
    }

    /// Leases whose time ran out without a renewal: removed; the caller
    /// stops what they allowed.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let gone: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| now >= h.valid_until)
            .map(|(n, _)| n.clone())
            .collect();
        for n in &gone {
            self.held.remove(n);
        }
        gone
    }

    /// Leases to renew at `now`: those renewed a third of a lease ago or
    /// more (three chances before the margin).
    pub fn due(&self, now: Instant) -> Vec<(String, u64)> {
        let every = self.ttl / 3;
        let mut due: Vec<(String, u64)> = self
            .held
            .iter()
            .filter(|(_, h)| now.saturating_duration_since(h.renewed_at) >= every)
            .map(|(n, h)| (n.clone(), h.epoch))
            .collect();
        due.sort();
        due
    }

    /// Names held (whatever their time).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.held.keys().map(String::as_str)
    }

    /// How many of those held are named `prefix…`.
    pub fn count(&self, prefix: &str) -> usize {
        self.held.keys().filter(|n| n.starts_with(prefix)).count()
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    #[test]
    fn the_holder_stops_before_the_server_would_let_another_take_over() {
        let mut b = LeaseBook::new(TTL);
        assert_eq!(b.margin(), Duration::from_secs(2));
        let t0 = Instant::now();
        b.acquired("stream/a", 1, t0);
        assert!(b.holds("stream/a", t0 + Duration::from_secs(7)).is_some());
        // Not renewed: its own deadline (8 s) comes before the server's
        // expiry (10 s after a `renewed` stamped later than t0).
        assert!(b.holds("stream/a", t0 + Duration::from_secs(8)).is_none());
        assert!(b.expire(t0 + Duration::from_secs(7)).is_empty());
        assert_eq!(b.expire(t0 + Duration::from_secs(8)), ["stream/a"]);
        assert!(b.is_empty());
    }

    #[test]
    fn renewals_are_due_every_third_and_extend_from_the_sending() {
        let mut b = LeaseBook::new(TTL);
        let t0 = Instant::now();
        b.acquired("stream/a", 4, t0);
        assert!(b.due(t0 + Duration::from_secs(3)).is_empty());
        let at = t0 + Duration::from_millis(3_400);
        assert_eq!(b.due(at), [("stream/a".to_string(), 4)]);
        b.renewed("stream/a", 4, at, true);
        assert!(b
            .holds("stream/a", at + Duration::from_millis(7_900))
            .is_some());
        assert!(b.holds("stream/a", at + Duration::from_secs(8)).is_none());
        // A late answer to an earlier renewal does not shorten it.
        b.renewed("stream/a", 4, t0 + Duration::from_secs(1), true);
        assert!(b
            .holds("stream/a", at + Duration::from_millis(7_900))
            .is_some());
    }

    #[test]
    fn a_lost_renewal_forgets_the_lease_at_once_and_old_epochs_are_ignored() {
        let mut b = LeaseBook::new(TTL);
        let t0 = Instant::now();
        b.acquired("stream/a", 2, t0);
        // The answer for an older epoch (before a re-acquisition) is moot.
        b.renewed("stream/a", 1, t0, false);
        assert!(b.holds("stream/a", t0).is_some());
        b.renewed("stream/a", 2, t0 + Duration::from_secs(3), false);
        assert!(b.holds("stream/a", t0).is_none());
        assert!(b.expire(t0 + Duration::from_secs(60)).is_empty());
    }

    #[test]
    fn short_leases_keep_half_of_their_time() {
        assert_eq!(
            LeaseBook::margin_for(Duration::from_secs(3)),
            Duration::from_secs(1)
        );
        assert_eq!(
            LeaseBook::margin_for(Duration::from_secs(60)),
            Duration::from_secs(12)
        );
        assert_eq!(
            LeaseBook::margin_for(Duration::from_millis(1_000)),
            Duration::from_millis(500)
        );
    }
}
