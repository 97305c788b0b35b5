//! The wanted state of one stream: who watches it and who pinned it.
//!
//! Callbacks and API calls only edit this value (level-triggered): a
//! thousand joins and leaves in a second change it a thousand times, and
//! the stream's task, which reconciles FFmpeg with it, sees only the
//! result. Every collection here is bounded.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// RTMP clients or HTTP leases one stream may have at once. nginx's
/// `worker_connections` (1024) bounds real RTMP viewers far below this;
/// the cap only stops a flood of forged ids from growing memory.
pub const MAX_VIEWERS: usize = 100_000;

/// A viewer that joined this recently is kept even if a `/stat` snapshot
/// does not show it yet (the callback can precede the client's entry).
pub const RESYNC_GRACE: Duration = Duration::from_secs(10);

/// Who wants one stream to run.
#[derive(Debug, Default, Clone)]
pub struct Wanted {
    /// RTMP viewers: nginx client id → when first seen.
    rtmp: HashMap<String, Instant>,
    /// HTTP viewer leases: key → expiry.
    http: HashMap<String, Instant>,
    /// Viewers counted by the original DSS's `/control/{id}/start` and
    /// `/stop` (anonymous: a count).
    legacy: u32,
    /// Kept running by an admin start.
    pinned: bool,
    /// An admin stop: viewers still attached do not restart the stream
    /// until a new one joins.
    suppressed: bool,
    /// Bumped by each admin stop; the task stops FFmpeg when it changes.
    stop_generation: u64,
    /// A phone of the mobile ingest is connected (its session number):
    /// its stream runs while it is, whoever watches.
    ingest: Option<u64>,
}

impl Wanted {
    /// An RTMP viewer joined (duplicates count once).
    pub fn play(&mut self, client: &str, now: Instant) -> bool {
        if self.rtmp.len() >= MAX_VIEWERS && !self.rtmp.contains_key(client) {
            return false;
        }
        self.rtmp.entry(client.to_string()).or_insert(now);
        self.suppressed = false;
        true
    }

    /// An RTMP viewer left (unknown ids are ignored).
    pub fn play_done(&mut self, client: &str) {
        self.rtmp.remove(client);
    }

    /// An HTTP viewer lease `key` until `until` (a renewal extends it).
    pub fn lease(&mut self, key: &str, until: Instant) -> bool {
        if self.http.len() >= MAX_VIEWERS && !self.http.contains_key(key) {
            return false;
        }
        let e = self.http.entry(key.to_string()).or_insert(until);
        *e = (*e).max(until);
        self.suppressed = false;
        true
    }

    /// `/control/{id}/start`: one more viewer.
    pub fn legacy_join(&mut self) {
        self.legacy = self.legacy.saturating_add(1).min(MAX_VIEWERS as u32);
        self.suppressed = false;
    }

    /// `/control/{id}/stop`: one viewer fewer (never below zero).
    pub fn legacy_leave(&mut self) {
        self.legacy = self.legacy.saturating_sub(1);
    }

    /// Admin start: keep running until an admin stop.
    pub fn pin(&mut self) {
        self.pinned = true;
        self.suppressed = false;
    }

    /// Admin stop: drops the pin, HTTP leases and legacy viewers; FFmpeg
    /// stops now and RTMP viewers still attached do not restart it.
    pub fn admin_stop(&mut self) {
        self.pinned = false;
        self.http.clear();
        self.legacy = 0;
        self.suppressed = true;
        self.stop_generation += 1;
    }

    /// A phone connected (`Some(session)`) or left (`None`).
    pub fn set_ingest(&mut self, session: Option<u64>) {
        self.ingest = session;
    }

    /// The connected phone's session, if any.
    pub fn ingest(&self) -> Option<u64> {
        self.ingest
    }

    /// The admin stop counter.
    pub fn stop_generation(&self) -> u64 {
        self.stop_generation
    }

    /// Replaces the RTMP viewers with nginx's `/stat` view taken at `at`,
    /// keeping viewers that joined within [`RESYNC_GRACE`] before it.
    pub fn resync(&mut self, viewers: &[String], at: Instant) {
        let cutoff = at.checked_sub(RESYNC_GRACE).unwrap_or(at);
        self.rtmp
            .retain(|c, joined| viewers.contains(c) || *joined > cutoff);
        for v in viewers.iter().take(MAX_VIEWERS) {
            if self.rtmp.len() >= MAX_VIEWERS {
                break;
            }
            self.rtmp.entry(v.clone()).or_insert(at);
        }
    }

    /// Drops expired leases; returns the next expiry, if any.
    pub fn expire(&mut self, now: Instant) -> Option<Instant> {
        self.http.retain(|_, until| *until > now);
        self.http.values().min().copied()
    }

    /// RTMP viewers.
    pub fn rtmp_viewers(&self) -> usize {
        self.rtmp.len()
    }

    /// All viewers, RTMP and HTTP.
    pub fn viewers(&self) -> usize {
        self.rtmp_viewers() + self.http_viewers()
    }

    /// HTTP viewers (leases and legacy `/control` viewers).
    pub fn http_viewers(&self) -> usize {
        self.http.len() + self.legacy as usize
    }

    /// Pinned by an admin start.
    pub fn pinned(&self) -> bool {
        self.pinned
    }

    /// Whether someone wants the stream (leases are expected to be
    /// expired first with [`Wanted::expire`]).
    pub fn wants(&self) -> bool {
        self.pinned
            || self.ingest.is_some()
            || (!self.suppressed
                && (!self.rtmp.is_empty() || !self.http.is_empty() || self.legacy > 0))
    }

    /// What the stream's task acts on: whether the stream is wanted, the
    /// admin stop counter and the connected phone's session. An edit that
    /// leaves this unchanged need not wake the task (lease expiries are
    /// found by its own timers).
    pub fn level(&self) -> (bool, u64, Option<u64>) {
        (self.wants(), self.stop_generation, self.ingest)
    }

    /// Nothing at all is recorded: the stream's state can be forgotten.
    pub fn is_empty(&self) -> bool {
        self.rtmp.is_empty()
            && self.http.is_empty()
            && self.legacy == 0
            && !self.pinned
            && self.ingest.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connected_phone_is_wanted_and_each_session_is_a_new_level() {
        let mut w = Wanted::default();
        assert!(!w.wants() && w.is_empty());
        w.set_ingest(Some(5));
        assert!(w.wants());
        assert!(!w.is_empty());
        let first = w.level();
        w.set_ingest(Some(6));
        assert_ne!(w.level(), first, "a reconnect wakes the task");
        w.set_ingest(None);
        assert!(!w.wants() && w.is_empty());
    }

    #[test]
    fn duplicate_and_stray_rtmp_callbacks_are_harmless() {
        let now = Instant::now();
        let mut w = Wanted::default();
        assert!(!w.wants());
        w.play("1", now);
        w.play("1", now);
        assert_eq!(w.rtmp_viewers(), 1);
        w.play_done("2");
        assert!(w.wants());
        w.play_done("1");
        w.play_done("1");
        assert!(!w.wants());
        assert!(w.is_empty());
    }

    #[test]
    fn legacy_control_counts_viewers_and_never_goes_negative() {
        let mut w = Wanted::default();
        w.legacy_join();
        w.legacy_join();
        w.legacy_leave();
        assert!(w.wants(), "one legacy viewer left");
        w.legacy_leave();
        assert!(!w.wants());
        w.legacy_leave();
        w.legacy_join();
        assert!(w.wants(), "a stop without a start does not go below zero");
    }

    #[test]
    fn a_storm_of_joins_and_leaves_ends_in_one_value() {
        let mut w = Wanted::default();
        for _ in 0..100_000 {
            w.legacy_join();
            w.legacy_leave();
        }
        assert!(!w.wants());
        assert_eq!(w.http_viewers(), 0);
    }

    #[test]
    fn leases_expire_and_renewals_extend_them() {
        let now = Instant::now();
        let mut w = Wanted::default();
        w.lease("hls:a", now + Duration::from_secs(5));
        w.lease("hls:a", now + Duration::from_secs(2));
        assert_eq!(w.expire(now), Some(now + Duration::from_secs(5)));
        assert!(w.wants());
        assert_eq!(w.expire(now + Duration::from_secs(6)), None);
        assert!(!w.wants());
    }

    #[test]
    fn admin_stop_suppresses_attached_viewers_until_a_new_one_joins() {
        let now = Instant::now();
        let mut w = Wanted::default();
        w.play("1", now);
        w.pin();
        w.lease("x", now + Duration::from_secs(60));
        let g = w.stop_generation();
        w.admin_stop();
        assert_ne!(w.stop_generation(), g);
        assert!(!w.wants(), "stopped, although viewer 1 is attached");
        assert_eq!(w.rtmp_viewers(), 1);
        w.play("2", now);
        assert!(w.wants());
    }

    #[test]
    fn resync_drops_phantoms_but_keeps_fresh_joins() {
        let t0 = Instant::now();
        let mut w = Wanted::default();
        w.play("old", t0);
        let at = t0 + RESYNC_GRACE + Duration::from_secs(1);
        w.play("fresh", at);
        w.resync(&["seen".to_string()], at);
        assert_eq!(w.rtmp_viewers(), 2, "old dropped; fresh kept; seen added");
        w.resync(&[], at + RESYNC_GRACE + Duration::from_secs(1));
        assert_eq!(w.rtmp_viewers(), 0);
    }

    #[test]
    fn viewer_sets_are_bounded() {
        let now = Instant::now();
        let mut w = Wanted::default();
        for i in 0..MAX_VIEWERS {
            assert!(w.play(&i.to_string(), now));
        }
        assert!(!w.play("one more", now));
        assert!(w.play("0", now), "a known id is still accepted");
    }
}
