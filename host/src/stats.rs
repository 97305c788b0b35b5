//! Per-stream statistics: uptime, crashes, warm-up, thumbnail success,
//! starts, live time, last start and peak viewers.
//!
//! Fed only by the supervisor's own transitions (a stream's task reports
//! each state it enters, each spawn, publish and failure) and by the
//! thumbnailer's results, never by the order in which nginx's callbacks
//! arrive: the original's uptime depended on whether the process exit or
//! the `publish_done` callback came first.
//!
//! Uptime is live time over wanted time. A stream is *wanted* while it is
//! starting, live or waiting out a backoff; the grace period after the
//! last viewer, idle time and a policy refusal count in neither (the
//! stream was not supposed to run). Figures survive restarts as snapshots
//! in the store, written by [`save_loop`] for the streams that changed,
//! at most once per `[stats] save_interval_seconds`.

use crate::clock::now_ms as unix_ms;
use crate::lifecycle::State;
use crate::sync::lock;
use dss_store::{StatsSnapshot, Store};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Warm-ups averaged (the original's `deque(maxlen=10)`).
const WARMUPS_KEPT: usize = 10;

/// The field names of a stream's statistics, in the order `/stats` shows
/// them (`id` is added by the route).
pub const FIELDS: &[&str] = &[
    "thumbnail",
    "uptime",
    "crash",
    "warmup",
    "starts",
    "live_seconds",
    "last_start",
    "peak_viewers",
];

/// What is persisted of a stream: counters and accumulated times.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Totals {
    /// Milliseconds the stream was wanted (starting, live, backoff).
    pub wanted_ms: u64,
    /// Milliseconds it was live while wanted.
    pub live_ms: u64,
    /// FFmpeg failures while wanted: exits, stalls, start timeouts, spawn
    /// errors.
    pub crashes: u64,
    /// FFmpeg spawns.
    pub starts: u64,
    /// Spawn-to-publish times of the last starts, in ms (newest last).
    pub warmups_ms: VecDeque<u64>,
    /// Thumbnail attempts, and how many succeeded.
    pub thumbnails: u64,
    /// Successful thumbnail attempts.
    pub thumbnails_ok: u64,
    /// The last spawn (Unix ms).
    pub last_start_ms: Option<u64>,
    /// Most viewers at once.
    pub peak_viewers: u64,
}

impl Totals {
    /// Adds `earlier` (a previous run's totals) to these.
    fn merge_earlier(&mut self, earlier: Totals) {
        self.wanted_ms += earlier.wanted_ms;
        self.live_ms += earlier.live_ms;
        self.crashes += earlier.crashes;
        self.starts += earlier.starts;
        let mut w = earlier.warmups_ms;
        w.extend(self.warmups_ms.drain(..));
        while w.len() > WARMUPS_KEPT {
            w.pop_front();
        }
        self.warmups_ms = w;
        self.thumbnails += earlier.thumbnails;
        self.thumbnails_ok += earlier.thumbnails_ok;
        self.last_start_ms = self.last_start_ms.or(earlier.last_start_ms);
        self.peak_viewers = self.peak_viewers.max(earlier.peak_viewers);
    }
}

/// A stream's statistics as served.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StreamStats {
    /// Fraction of thumbnail attempts that succeeded (0 when none).
    pub thumbnail: f64,
    /// Live time over wanted time (0 when never wanted).
    pub uptime: f64,
    /// FFmpeg failures while wanted.
    pub crash: u64,
    /// Mean spawn-to-publish time of the last 10 starts, in seconds.
    pub warmup: f64,
    /// FFmpeg spawns.
    pub starts: u64,
    /// Seconds live while wanted.
    pub live_seconds: f64,
    /// The last spawn (Unix ms), if any.
    pub last_start: Option<u64>,
    /// Most viewers at once.
    pub peak_viewers: u64,
}

impl StreamStats {
    /// The value of `field` (one of [`FIELDS`]); `percent` scales the two
    /// fractions to 0..100. Fractions and seconds are rounded to 3 digits,
    /// as the original did.
    pub fn field(&self, field: &str, percent: bool) -> Option<serde_json::Value> {
        let m = if percent { 100.0 } else { 1.0 };
        let round = |x: f64| serde_json::json!((x * 1000.0).round() / 1000.0);
        Some(match field {
            "thumbnail" => round(self.thumbnail * m),
            "uptime" => round(self.uptime * m),
            "crash" => self.crash.into(),
            "warmup" => round(self.warmup),
            "starts" => self.starts.into(),
            "live_seconds" => round(self.live_seconds),
            "last_start" => self.last_start.into(),
            "peak_viewers" => self.peak_viewers.into(),
            _ => return None,
        })
    }
}

/// Which clock a stream's time goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not wanted: idle, grace period, refused.
    Off,
    /// Wanted, not live.
    Down,
    /// Wanted and live.
    Live,
}

impl From<State> for Phase {
    fn from(s: State) -> Phase {
        match s {
            State::Starting | State::Backoff => Phase::Down,
            State::Live => Phase::Live,
            State::Idle | State::Stopping | State::Refused => Phase::Off,
        }
    }
}

#[derive(Debug)]
struct Entry {
    totals: Totals,
    phase: Phase,
    since: Instant,
    /// Changed since the last save.
    dirty: bool,
    /// Changed since the last event about it.
    told: bool,
}

impl Entry {
    fn new(totals: Totals, now: Instant) -> Entry {
        Entry {
            totals,
            phase: Phase::Off,
            since: now,
            dirty: false,
            told: true,
        }
    }

    /// The totals with the current phase counted up to `now`.
    fn totals_at(&self, now: Instant) -> Totals {
        let mut t = self.totals.clone();
        let open = now.saturating_duration_since(self.since).as_millis() as u64;
        match self.phase {
            Phase::Off => {}
            Phase::Down => t.wanted_ms += open,
            Phase::Live => {
                t.wanted_ms += open;
                t.live_ms += open;
            }
        }
        t
    }

    fn view(&self, now: Instant) -> StreamStats {
        let t = self.totals_at(now);
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let warmup = if t.warmups_ms.is_empty() {
            0.0
        } else {
            t.warmups_ms.iter().sum::<u64>() as f64 / t.warmups_ms.len() as f64 / 1000.0
        };
        StreamStats {
            thumbnail: ratio(t.thumbnails_ok, t.thumbnails),
            uptime: ratio(t.live_ms, t.wanted_ms),
            crash: t.crashes,
            warmup,
            starts: t.starts,
            live_seconds: t.live_ms as f64 / 1000.0,
            last_start: t.last_start_ms,
            peak_viewers: t.peak_viewers,
        }
    }
}

/// Every stream's statistics.
#[derive(Debug, Default)]
pub struct Stats {
    streams: Mutex<HashMap<String, Entry>>,
    /// The previous run's figures were read: saving may begin.
    restored: std::sync::atomic::AtomicBool,
    /// Cluster mode: only the streams this host ran are saved (a relay's
    /// figures are the viewers', not the stream's).
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
}

impl Stats {
    /// No statistics yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the snapshots a previous run saved to what this run counted
    /// (an unreadable one is skipped with a warning: its stream starts
    /// from zero); returns how many were read.
    pub fn restore(&self, snapshots: Vec<StatsSnapshot>) -> usize {
        let now = Instant::now();
        let mut streams = lock(&self.streams);
        let mut n = 0;
        for s in snapshots {
            match serde_json::from_value::<Totals>(s.data) {
                Ok(saved) => {
                    let e = streams
                        .entry(s.stream_id)
                        .or_insert_with(|| Entry::new(Totals::default(), now));
                    e.totals.merge_earlier(saved);
                    n += 1;
                }
                Err(e) => {
                    tracing::warn!(stream = %s.stream_id, error = %e, "stats snapshot skipped")
                }
            }
        }
        n
    }

    fn edit(&self, id: &str, now: Instant, f: impl FnOnce(&mut Entry)) {
        let mut streams = lock(&self.streams);
        let e = streams
            .entry(id.to_string())
            .or_insert_with(|| Entry::new(Totals::default(), now));
        f(e);
        e.dirty = true;
        e.told = false;
    }

    /// Stream `id` entered `state` at `now`.
    pub fn state(&self, id: &str, state: State, now: Instant) {
        let phase = Phase::from(state);
        let mut streams = lock(&self.streams);
        if phase == Phase::Off && !streams.contains_key(id) {
            return;
        }
        let e = streams
            .entry(id.to_string())
            .or_insert_with(|| Entry::new(Totals::default(), now));
        if e.phase == phase {
            return;
        }
        e.totals = e.totals_at(now);
        e.phase = phase;
        e.since = now;
        e.dirty = true;
        e.told = false;
    }

    /// FFmpeg was spawned for `id`.
    pub fn started(&self, id: &str, now: Instant) {
        self.edit(id, now, |e| {
            e.totals.starts += 1;
            e.totals.last_start_ms = Some(unix_ms());
        });
    }

    /// `id` published `warmup` after its spawn.
    pub fn warmup(&self, id: &str, warmup: Duration, now: Instant) {
        self.edit(id, now, |e| {
            let w = &mut e.totals.warmups_ms;
            w.push_back(warmup.as_millis() as u64);
            while w.len() > WARMUPS_KEPT {
                w.pop_front();
            }
        });
    }

    /// `id`'s FFmpeg failed while wanted.
    pub fn crash(&self, id: &str, now: Instant) {
        self.edit(id, now, |e| e.totals.crashes += 1);
    }

    /// `id` has `viewers` viewers now.
    pub fn viewers(&self, id: &str, viewers: usize) {
        let mut streams = lock(&self.streams);
        let viewers = viewers as u64;
        match streams.get_mut(id) {
            Some(e) if e.totals.peak_viewers >= viewers => {}
            Some(e) => {
                e.totals.peak_viewers = viewers;
                e.dirty = true;
                e.told = false;
            }
            None if viewers == 0 => {}
            None => {
                let mut e = Entry::new(Totals::default(), Instant::now());
                e.totals.peak_viewers = viewers;
                e.dirty = true;
                e.told = false;
                streams.insert(id.to_string(), e);
            }
        }
    }

    /// A thumbnail attempt for `id` succeeded (`ok`) or failed.
    pub fn thumbnail(&self, id: &str, ok: bool) {
        self.edit(id, Instant::now(), |e| {
            e.totals.thumbnails += 1;
            e.totals.thumbnails_ok += u64::from(ok);
        });
    }

    /// The statistics of `id` (zeros for a stream with none yet).
    pub fn get(&self, id: &str) -> StreamStats {
        let now = Instant::now();
        match lock(&self.streams).get(id) {
            Some(e) => e.view(now),
            None => Entry::new(Totals::default(), now).view(now),
        }
    }

    /// Snapshots of the streams that changed since the last call, marking
    /// them saved.
    pub fn take_changed(&self) -> Vec<StatsSnapshot> {
        let now = Instant::now();
        let taken_ms = unix_ms();
        let mut out = Vec::new();
        for (id, e) in lock(&self.streams).iter_mut() {
            // A stream in a counted phase changes by the second.
            if !(e.dirty || e.phase != Phase::Off) {
                continue;
            }
            e.dirty = false;
            match serde_json::to_value(e.totals_at(now)) {
                Ok(data) => out.push(StatsSnapshot {
                    stream_id: id.clone(),
                    taken_ms,
                    data,
                }),
                Err(err) => tracing::warn!(stream = %id, error = %err, "stats not saved"),
            }
        }
        out.sort_by(|a, b| a.stream_id.cmp(&b.stream_id));
        out
    }

    /// The streams whose statistics changed since the last call.
    pub fn take_untold(&self) -> Vec<String> {
        let mut out: Vec<String> = lock(&self.streams)
            .iter_mut()
            .filter(|(_, e)| !e.told)
            .map(|(id, e)| {
                e.told = true;
                id.clone()
            })
            .collect();
        out.sort();
        out
    }

    /// Cluster mode: see [`Stats::save`].
    pub fn set_cluster(&self, cluster: Arc<crate::cluster::Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    /// Saves what changed to `store` now (once the previous run's figures
    /// were read); in cluster mode, only of the streams this host ran.
    pub async fn save(&self, store: &dyn Store) {
        if !self.restored.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let mut changed = self.take_changed();
        if let Some(c) = self.cluster.get() {
            changed.retain(|s| c.owned_once(&s.stream_id));
        }
        if changed.is_empty() {
            return;
        }
        let n = changed.len();
        if let Err(e) = store.put_stats(changed).await {
            tracing::warn!(streams = n, error = %e, "statistics not saved");
        }
    }
}

/// How often changed statistics are told on the event stream: a stream
/// that changes many times in a second is told once.
const TELL_EVERY: Duration = Duration::from_secs(1);

/// Tells `events` which streams' statistics changed, at most once per
/// [`TELL_EVERY`] per stream.
pub async fn tell_loop(stats: Arc<Stats>, events: Arc<crate::events::Events>) {
    let mut tick = tokio::time::interval(TELL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for id in stats.take_untold() {
            events.send(crate::events::Event::Stats { id });
        }
    }
}

/// Reads the previous run's statistics from `store` (retrying every
/// `interval` while the store cannot answer: nothing is saved before, so a
/// store that was away does not get this run's counts written over the
/// earlier ones), then saves what changed every `interval` (one batch of
/// snapshots per round: a bounded write rate whatever streams do).
pub async fn save_loop(stats: Arc<Stats>, store: Arc<dyn Store>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        match store.all_stats().await {
            Ok(saved) => {
                let n = stats.restore(saved);
                tracing::info!(streams = n, "statistics restored");
                stats
                    .restored
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                break;
            }
            Err(e) => tracing::warn!(error = %e, "statistics not restored yet (retrying)"),
        }
        tick.tick().await;
    }
    tick.tick().await;
    loop {
        tick.tick().await;
        stats.save(store.as_ref()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, s: u64) -> Instant {
        base + Duration::from_secs(s)
    }

    #[test]
    fn uptime_is_live_time_over_wanted_time_whatever_the_order() {
        let s = Stats::new();
        let t0 = Instant::now();
        s.state("a", State::Starting, t0);
        s.started("a", t0);
        s.state("a", State::Live, at(t0, 2));
        s.warmup("a", Duration::from_secs(2), at(t0, 2));
        // Crash after 8 s live; backoff 2 s; live again after 2 s warm-up.
        s.crash("a", at(t0, 10));
        s.state("a", State::Backoff, at(t0, 10));
        s.state("a", State::Starting, at(t0, 12));
        s.state("a", State::Live, at(t0, 14));
        s.warmup("a", Duration::from_secs(1), at(t0, 14));
        // The grace period and idle time count in neither.
        s.state("a", State::Stopping, at(t0, 20));
        s.state("a", State::Idle, at(t0, 50));
        let v = lock(&s.streams)["a"].view(at(t0, 100));
        assert_eq!(v.crash, 1);
        assert!((v.uptime - 14.0 / 20.0).abs() < 1e-9, "{v:?}");
        assert!((v.warmup - 1.5).abs() < 1e-9);
        assert_eq!(v.live_seconds, 14.0);
        assert_eq!(v.starts, 1);
    }

    #[test]
    fn the_open_phase_counts_up_to_now_and_into_snapshots() {
        let s = Stats::new();
        let t0 = Instant::now() - Duration::from_secs(10);
        s.state("a", State::Live, t0);
        let v = s.get("a");
        assert!(v.uptime > 0.99 && v.live_seconds >= 10.0, "{v:?}");
        let snaps = s.take_changed();
        let t: Totals = serde_json::from_value(snaps[0].data.clone()).unwrap();
        assert!(t.live_ms >= 10_000 && t.wanted_ms == t.live_ms);
        // Restored: the totals come back, the phase starts off.
        let r = Stats::new();
        assert_eq!(r.restore(snaps), 1);
        let v = r.get("a");
        assert!(v.live_seconds >= 10.0 && v.uptime > 0.99);
    }

    #[test]
    fn only_changed_or_running_streams_are_saved() {
        let s = Stats::new();
        let t0 = Instant::now();
        s.thumbnail("a", true);
        s.thumbnail("a", false);
        s.state("b", State::Live, t0);
        assert_eq!(s.take_changed().len(), 2);
        // a is unchanged; b is live (its time grows).
        let again = s.take_changed();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].stream_id, "b");
        assert_eq!(s.get("a").thumbnail, 0.5);
        // Idle streams with no history are not tracked at all.
        s.state("c", State::Idle, t0);
        assert_eq!(lock(&s.streams).len(), 2);
        // Each change is told once.
        assert_eq!(s.take_untold(), ["a", "b"]);
        assert!(s.take_untold().is_empty());
        s.crash("a", t0);
        assert_eq!(s.take_untold(), ["a"]);
    }

    #[test]
    fn warmups_keep_the_last_ten_and_peaks_only_grow() {
        let s = Stats::new();
        let now = Instant::now();
        for i in 1..=15 {
            s.warmup("a", Duration::from_secs(i), now);
        }
        assert_eq!(s.get("a").warmup, 10.5);
        s.viewers("a", 3);
        s.viewers("a", 1);
        assert_eq!(s.get("a").peak_viewers, 3);
        let f = s.get("a");
        assert_eq!(f.field("warmup", true), Some(serde_json::json!(10.5)));
        assert_eq!(f.field("nope", true), None);
    }

    #[test]
    fn fractions_are_percent_or_not_and_rounded() {
        let s = Stats::new();
        for ok in [true, true, false] {
            s.thumbnail("a", ok);
        }
        let v = s.get("a");
        assert_eq!(v.field("thumbnail", true), Some(serde_json::json!(66.667)));
        assert_eq!(v.field("thumbnail", false), Some(serde_json::json!(0.667)));
    }
}
