//! The on-demand lifecycle of every stream: wanted state, reconciliation
//! with FFmpeg, viewer accounting and restart pacing (DESIGN's "heart").
//!
//! Idle → (first viewer) → Starting (FFmpeg spawned) → Live (`on_publish`
//! with this spawn's token; warm-up recorded) → (last viewer gone) →
//! Stopping (grace period; a new viewer cancels it) → Idle. FFmpeg exiting
//! while wanted, no publish within the start timeout, or no progress for
//! the stale timeout → Backoff (doubling, capped, reset after a stable
//! run) → Starting. A stream the FFmpeg policy refuses is Refused until
//! its listing changes.
//!
//! Level-triggered: callbacks and API calls edit a stream's [`Wanted`]
//! state under a lock and wake its task; the task ([`task`]) compares what
//! runs with what is wanted and acts. Nothing queues: a storm of
//! start/stop commands changes one value many times and the task sees the
//! last one, spawns of one stream are spaced by `min_spawn_interval_ms`,
//! and at most `max_running` FFmpeg run at once. Viewers are counted by
//! nginx client id plus HTTP leases that expire; `/stat` reconciliation
//! corrects missed callbacks.

mod decide;
pub mod follow;
mod task;
pub mod wanted;

use crate::backoff::Policy;
use crate::catalog::{Catalog, StreamEntry};
use crate::config::Config;
use crate::events::{Event, Events};
use crate::ffmpeg::Monitor;
use crate::nginx::stat::StreamStat;
use crate::stats::Stats;
use crate::sync::lock;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify, Semaphore};
use tracing::Instrument;
pub use wanted::Wanted;

/// Lines of FFmpeg stderr shown by the API.
const LOG_TAIL: usize = 20;

/// How long shutdown waits for the streams' tasks to stop their FFmpeg
/// (SIGTERM, then SIGKILL after 3 s) before killing what is left.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

pub use crate::lifecycle::State;

/// How FFmpeg restarts are paced (`[ffmpeg]`): a stream's, and a
/// recorder's.
pub fn restart_policy(cfg: &crate::config::FfmpegConfig) -> Policy {
    Policy {
        initial: Duration::from_millis(cfg.backoff_initial_ms),
        max: Duration::from_secs(cfg.backoff_max_seconds),
        stable: Duration::from_secs(cfg.stable_seconds),
        min_interval: Duration::from_millis(cfg.min_spawn_interval_ms),
    }
}

/// What the API shows of a stream's lifecycle.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// State.
    pub state: State,
    /// RTMP viewers (nginx client ids).
    pub viewers_rtmp: usize,
    /// HTTP viewers (leases and `/control` viewers).
    pub viewers_http: usize,
    /// Kept running by an admin `start` or `auto_start`.
    pub pinned: bool,
    /// FFmpeg's pid while it runs.
    pub pid: Option<u32>,
    /// When the current state began (Unix ms).
    pub since_ms: u64,
    /// FFmpeg starts after a failure.
    pub restarts: u32,
    /// Failures in a row (resets after a stable run).
    pub failures: u32,
    /// The last failure, or why the stream is refused.
    pub last_error: Option<String>,
    /// Time from spawn to publish of the last start, in ms.
    pub warmup_ms: Option<u64>,
    /// When the running FFmpeg was spawned (Unix ms).
    pub spawned_at_ms: Option<u64>,
    /// Frames FFmpeg reported.
    pub frames: u64,
    /// Last lines of FFmpeg's stderr.
    pub log: Vec<String>,
}

/// Why a viewer or a start was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No such stream in the catalog.
    #[error("no stream {0:?}")]
    Unknown(String),
    /// The provider lists it as offline.
    #[error("stream {0:?} is offline")]
    Offline(String),
    /// The FFmpeg policy refuses it.
    #[error("stream {0:?} is refused: {1}")]
    Refused(String, String),
    /// `max_running` FFmpeg already run.
    #[error("stream {0:?} cannot start: {1} streams already run ([ffmpeg] max_running)")]
    Capacity(String, usize),
    /// The client already holds the most leases a client may hold.
    #[error("too many streams watched from this address (at most {0})")]
    TooManyLeases(usize),
    /// The stream has the most viewers it may have.
    #[error("stream {0:?} has too many viewers")]
    TooManyViewers(String),
    /// The host is shutting down.
    #[error("shutting down")]
    ShuttingDown,
}

/// One stream's shared state: what is wanted (written by commands) and
/// what runs (written by its task).
struct Slot {
    id: String,
    inner: Mutex<Inner>,
    wake: Notify,
}

#[derive(Default)]
struct Inner {
    wanted: Wanted,
    /// The stream's task runs (it clears this, under the lock, when it
    /// exits: a command that finds it false starts a new one).
    task: Option<tokio::task::JoinHandle<()>>,
    status: Status,
    /// The publish token of the running FFmpeg.
    token: Option<String>,
    /// `on_publish` with that token was seen.
    published: bool,
    /// The running FFmpeg's monitor (log lines are read from it on demand).
    monitor: Option<Arc<Mutex<Monitor>>>,
    /// The listing entry the FFmpeg policy refused, and why: the refusal
    /// holds until the listing changes the entry.
    refused: Option<(Arc<StreamEntry>, String)>,
}

/// All streams' lifecycles.
pub struct Supervisor {
    config: Arc<Config>,
    catalog: Arc<Catalog>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    events: Arc<Events>,
    stats: Arc<Stats>,
    stopping: AtomicBool,
    shutdown_tx: watch::Sender<bool>,
    capacity: Arc<Semaphore>,
    max_running: usize,
    /// Leases held by public clients: address → stream → expiry.
    clients: Mutex<HashMap<IpAddr, HashMap<String, Instant>>>,
    /// RTMP players of public clients: address → stream → their nginx
    /// client ids (bounded like the leases, per address).
    players: Mutex<HashMap<IpAddr, HashMap<String, std::collections::BTreeSet<String>>>>,
    spawns: AtomicU64,
    capacity_refusals: AtomicU64,
    /// How many times nginx came back after dying: a task that sees it
    /// change starts its backoff over (its failures were nginx's).
    nginx_epoch: AtomicU64,
    /// Counts the changes to what [`Supervisor::statuses`] shows (state,
    /// whether FFmpeg runs, viewers): bumped after each is written, so a
    /// reader that saw a generation sees at least its changes.
    generation: AtomicU64,
    /// Where phones' media is (set by the mobile ingest).
    feeds: std::sync::OnceLock<Arc<dyn Feeds>>,
    /// The cluster, in cluster mode: who runs which stream.
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
}

/// The inputs of phones' streams: the FIFOs the mobile ingest writes.
pub trait Feeds: Send + Sync {
    /// The FIFOs of stream `id`'s connected phone (one per track that
    /// sent media), if it is connected.
    fn inputs(&self, id: &str) -> Option<Vec<std::path::PathBuf>>;
}

impl Supervisor {
    /// A supervisor for the streams of `catalog`, telling `events` of
    /// state and viewer changes and `stats` of everything it counts.
    pub fn new(
        config: Arc<Config>,
        catalog: Arc<Catalog>,
        events: Arc<Events>,
        stats: Arc<Stats>,
    ) -> Arc<Self> {
        let max_running = match config.ffmpeg.max_running {
            0 => Semaphore::MAX_PERMITS,
            n => n.min(Semaphore::MAX_PERMITS),
        };
        Arc::new(Supervisor {
            config,
            catalog,
            slots: Mutex::new(HashMap::new()),
            events,
            stats,
            stopping: AtomicBool::new(false),
            shutdown_tx: watch::channel(false).0,
            capacity: Arc::new(Semaphore::new(max_running)),
            max_running,
            clients: Mutex::new(HashMap::new()),
            players: Mutex::new(HashMap::new()),
            spawns: AtomicU64::new(0),
            capacity_refusals: AtomicU64::new(0),
            nginx_epoch: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            feeds: std::sync::OnceLock::new(),
            cluster: std::sync::OnceLock::new(),
        })
    }

    /// Cluster mode: streams run here only by lease, else relayed.
    pub fn set_cluster(&self, cluster: Arc<crate::cluster::Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    /// The FFmpeg settings in force.
    pub fn ffmpeg_config(&self) -> &crate::config::FfmpegConfig {
        &self.config.ffmpeg
    }

    /// The cluster, in cluster mode.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.cluster.get()
    }

    /// Wakes stream `id`'s task, if it has one (its lease changed).
    pub fn wake(&self, id: &str) {
        if let Some(slot) = lock(&self.slots).get(id) {
            slot.wake.notify_one();
        }
    }

    /// FFmpeg spawned since start.
    pub fn spawns_total(&self) -> u64 {
        self.spawns.load(Ordering::Relaxed)
    }

    /// Viewers or starts refused because `max_running` FFmpeg ran.
    pub fn capacity_refusals(&self) -> u64 {
        self.capacity_refusals.load(Ordering::Relaxed)
    }

    /// Streams whose state the supervisor keeps (listed streams that had
    /// something going on).
    pub fn tracked(&self) -> usize {
        lock(&self.slots).len()
    }

    /// FFmpeg running now.
    pub fn running(&self) -> usize {
        self.max_running - self.capacity.available_permits().min(self.max_running)
    }

    /// The catalog entry of `id`, if it may play.
    fn entry(&self, id: &str) -> Result<Arc<StreamEntry>, Refusal> {
        let e = self
            .catalog
            .snapshot()
            .streams
            .get(id)
            .cloned()
            .ok_or_else(|| Refusal::Unknown(id.to_string()))?;
        if !e.online {
            return Err(Refusal::Offline(id.to_string()));
        }
        Ok(e)
    }

    /// Whether `e` runs whether watched or not: `[ffmpeg] auto_start`, or
    /// its instance records it.
    fn auto(&self, e: &StreamEntry) -> bool {
        let f = &self.config.ffmpeg;
        f.auto_start.iter().any(|i| i == &e.id)
            || f.auto_start_providers.contains(&e.provider)
            || e.records(&self.catalog.snapshot().providers)
    }

    fn slot(&self, id: &str) -> Arc<Slot> {
        let mut slots = lock(&self.slots);
        if let Some(s) = slots.get(id) {
            return s.clone();
        }
        slots
            .entry(id.to_string())
            .or_insert_with(|| {
                Arc::new(Slot {
                    id: id.to_string(),
                    inner: Mutex::new(Inner::default()),
                    wake: Notify::new(),
                })
            })
            .clone()
    }

    /// Checks that `id` may be wanted: known, online, not refused, and (if
    /// it does not run yet) a free FFmpeg slot.
    fn admit(&self, id: &str) -> Result<Arc<Slot>, Refusal> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(Refusal::ShuttingDown);
        }
        let entry = self.entry(id)?;
        if let Some(reason) = entry.refusal() {
            return Err(Refusal::Refused(id.to_string(), reason.to_string()));
        }
        let slot = self.slot(id);
        let inner = lock(&slot.inner);
        if let Some((refused, reason)) = &inner.refused {
            if Arc::ptr_eq(refused, &entry) {
                return Err(Refusal::Refused(id.to_string(), reason.clone()));
            }
        }
        let running = inner.monitor.is_some();
        drop(inner);
        if !running && self.capacity.available_permits() == 0 {
            self.capacity_refusals.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::Capacity(id.to_string(), self.max_running));
        }
        Ok(slot)
    }

    /// Applies `edit` to the wanted state of `slot` and makes sure its
    /// task runs and looks at it.
    fn want<R>(self: &Arc<Self>, slot: &Arc<Slot>, edit: impl FnOnce(&mut Wanted) -> R) -> R {
        let mut inner = lock(&slot.inner);
        let before = inner.wanted.level();
        let viewers = inner.wanted.viewers();
        let r = edit(&mut inner.wanted);
        self.viewers_changed(slot, &inner, viewers);
        let mut wake = before != inner.wanted.level();
        if inner.task.is_none() && !self.stopping.load(Ordering::SeqCst) {
            // One span per stream task: what it logs says which stream.
            let span = tracing::info_span!("stream", id = %slot.id);
            let task = task::run(self.clone(), slot.clone()).instrument(span);
            inner.task = Some(tokio::spawn(task));
            wake = true;
        }
        drop(inner);
        if wake {
            slot.wake.notify_one();
        }
        r
    }

    /// Edits the wanted state of `id` only if it has one (leaving needs no
    /// admission and creates nothing).
    fn edit_existing(self: &Arc<Self>, id: &str, edit: impl FnOnce(&mut Wanted)) {
        let slot = lock(&self.slots).get(id).cloned();
        if let Some(slot) = slot {
            let mut inner = lock(&slot.inner);
            let before = inner.wanted.level();
            let viewers = inner.wanted.viewers();
            edit(&mut inner.wanted);
            self.viewers_changed(&slot, &inner, viewers);
            let wake = before != inner.wanted.level();
            drop(inner);
            // The task only acts on what `level` covers: another viewer of a
            // stream already wanted changes nothing it does (its count is
            // read from here), so it is not woken for it.
            if wake {
                slot.wake.notify_one();
            }
        }
    }

    /// An RTMP viewer (`on_play`) of `id` with nginx client id `client`.
    ///
    /// A player of a public client (`public`: its address) counts against
    /// that address's `[security] max_streams_per_client`, like its leases.
    pub fn play(
        self: &Arc<Self>,
        id: &str,
        client: &str,
        public: Option<IpAddr>,
    ) -> Result<(), Refusal> {
        let slot = self.admit(id)?;
        if let Some(ip) = public {
            let max = self.config.security.max_streams_per_client;
            let mut players = lock(&self.players);
            let streams = players.entry(ip.to_canonical()).or_default();
            if !streams.contains_key(id) && streams.len() >= max {
                return Err(Refusal::TooManyLeases(max));
            }
            streams
                .entry(id.to_string())
                .or_default()
                .insert(client.to_string());
        }
        let now = Instant::now();
        if self.want(&slot, |w| w.play(client, now)) {
            Ok(())
        } else {
            Err(Refusal::TooManyViewers(id.to_string()))
        }
    }

    /// An RTMP viewer left (`on_play_done`).
    pub fn play_done(self: &Arc<Self>, id: &str, client: &str) {
        self.forget_players(|stream, c| stream == id && c == client);
        self.edit_existing(id, |w| w.play_done(client));
    }

    /// Forgets the public players `gone` says left.
    fn forget_players(&self, gone: impl Fn(&str, &str) -> bool) {
        lock(&self.players).retain(|_, streams| {
            streams.retain(|stream, clients| {
                clients.retain(|c| !gone(stream, c));
                !clients.is_empty()
            });
            !streams.is_empty()
        });
    }

    /// The lease length granted for a requested `ttl` (clamped).
    pub fn lease_ttl(&self, ttl: Option<Duration>) -> Duration {
        let f = &self.config.ffmpeg;
        ttl.unwrap_or(Duration::from_secs(f.http_lease_seconds))
            .clamp(
                Duration::from_secs(f.http_lease_min_seconds),
                Duration::from_secs(f.http_lease_max_seconds.max(f.http_lease_min_seconds)),
            )
    }

    /// An HTTP viewer lease `key` on `id` for `ttl` (clamped). A lease of
    /// a public client (`public`: its address) counts against that
    /// address's `[security] max_streams_per_client`.
    pub fn lease(
        self: &Arc<Self>,
        id: &str,
        key: &str,
        ttl: Option<Duration>,
        public: Option<IpAddr>,
    ) -> Result<Duration, Refusal> {
        let ttl = self.lease_ttl(ttl);
        let now = Instant::now();
        if let Some(ip) = public {
            self.client_lease(ip, id, now + ttl)?;
        }
        let slot = self.admit(id)?;
        if self.want(&slot, |w| w.lease(key, now + ttl)) {
            Ok(ttl)
        } else {
            Err(Refusal::TooManyViewers(id.to_string()))
        }
    }

    /// Records that public client `ip` watches `id` until `until`, unless
    /// it already watches as many other streams as it may.
    fn client_lease(&self, ip: IpAddr, id: &str, until: Instant) -> Result<(), Refusal> {
        let max = self.config.security.max_streams_per_client;
        let now = Instant::now();
        let mut clients = lock(&self.clients);
        let leases = clients.entry(ip.to_canonical()).or_default();
        leases.retain(|_, t| *t > now);
        if !leases.contains_key(id) && leases.len() >= max {
            return Err(Refusal::TooManyLeases(max));
        }
        let t = leases.entry(id.to_string()).or_insert(until);
        *t = (*t).max(until);
        Ok(())
    }

    /// The original DSS's `/control/{id}/start`: a viewer joins.
    pub fn legacy_join(self: &Arc<Self>, id: &str) -> Result<(), Refusal> {
        let slot = self.admit(id)?;
        self.want(&slot, Wanted::legacy_join);
        Ok(())
    }

    /// The original DSS's `/control/{id}/stop`: a viewer leaves (the last
    /// one starts the grace period).
    pub fn legacy_leave(self: &Arc<Self>, id: &str) {
        self.edit_existing(id, Wanted::legacy_leave);
    }

    /// `on_publish`: true when `token` is the one given to this stream's
    /// current FFmpeg (anything else is refused).
    pub fn publish(&self, id: &str, token: &str) -> bool {
        let Some(slot) = lock(&self.slots).get(id).cloned() else {
            return false;
        };
        let mut inner = lock(&slot.inner);
        let ok = !token.is_empty()
            && inner
                .token
                .as_deref()
                .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()));
        if ok {
            inner.published = true;
            drop(inner);
            slot.wake.notify_one();
        } else {
            tracing::warn!(stream = %id, "publish refused: not this stream's FFmpeg");
        }
        ok
    }

    /// `on_publish_done`.
    pub fn publish_done(&self, id: &str, token: &str) {
        tracing::debug!(stream = %id, ours = !token.is_empty(), "publisher left");
    }

    /// Admin start: keeps `id` running until [`Supervisor::stop`].
    pub fn start(self: &Arc<Self>, id: &str) -> Result<(), Refusal> {
        let slot = self.admit(id)?;
        self.want(&slot, Wanted::pin);
        Ok(())
    }

    /// Admin stop: stops `id` now, drops pins and HTTP leases; RTMP
    /// viewers still connected do not restart it until a viewer arrives.
    pub fn stop(self: &Arc<Self>, id: &str) {
        self.edit_existing(id, Wanted::admin_stop);
    }

    /// The lifecycle status of `id` (Idle when nothing ever happened).
    pub fn status(&self, id: &str) -> Status {
        let slot = lock(&self.slots).get(id).cloned();
        slot.map(|s| snapshot(&s, true)).unwrap_or_default()
    }

    /// The lifecycle status of `id` without log lines (cheap).
    pub fn status_brief(&self, id: &str) -> Status {
        let slot = lock(&self.slots).get(id).cloned();
        slot.map(|s| snapshot(&s, false)).unwrap_or_default()
    }

    /// The generation of [`Supervisor::statuses`]: read it before them,
    /// and an unchanged generation means unchanged statuses.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Marks a change to the statuses (after it is written).
    fn touch(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Statuses of all streams that have one (without log lines).
    pub fn statuses(&self) -> BTreeMap<String, Status> {
        let slots: Vec<Arc<Slot>> = lock(&self.slots).values().cloned().collect();
        slots
            .iter()
            .map(|s| (s.id.clone(), snapshot(s, false)))
            .collect()
    }

    /// Corrects viewer sets from a `/stat` snapshot taken at `at`, makes
    /// sure auto-started streams run, and forgets streams that left the
    /// catalog and have nothing running.
    pub fn resync(self: &Arc<Self>, stat: &BTreeMap<String, StreamStat>, at: Instant) {
        let snapshot = self.catalog.snapshot();
        for (id, s) in stat {
            if !snapshot.streams.contains_key(id) {
                continue;
            }
            if s.viewers.is_empty() {
                self.edit_existing(id, |w| w.resync(&[], at));
            } else if let Ok(slot) = self.admit(id) {
                self.want(&slot, |w| w.resync(&s.viewers, at));
            } else {
                self.edit_existing(id, |w| w.resync(&s.viewers, at));
            }
        }
        // Public players nginx no longer has (missed on_play_done).
        self.forget_players(|stream, c| {
            !stat
                .get(stream)
                .is_some_and(|s| s.viewers.iter().any(|v| v == c))
        });
        // Streams we track that /stat does not show have no RTMP viewers.
        let tracked: Vec<String> = lock(&self.slots).keys().cloned().collect();
        for id in tracked.iter().filter(|id| !stat.contains_key(*id)) {
            self.edit_existing(id, |w| w.resync(&[], at));
        }
        for e in snapshot
            .streams
            .values()
            .filter(|e| e.online && self.auto(e))
        {
            if let Ok(slot) = self.admit(&e.id) {
                self.want(&slot, |_| ());
            }
        }
        self.prune();
    }

    /// Connects the mobile ingest's feeds (once).
    pub fn set_feeds(&self, feeds: Arc<dyn Feeds>) {
        let _ = self.feeds.set(feeds);
    }

    fn feeds_of(&self, id: &str) -> Option<Vec<std::path::PathBuf>> {
        self.feeds.get()?.inputs(id)
    }

    /// Phone session `session` of stream `id` is connected and has media
    /// (`Some`), or left (`None`): the stream runs while it is connected,
    /// and a new session gets a new FFmpeg.
    pub fn ingest(self: &Arc<Self>, id: &str, session: Option<u64>) -> Result<(), Refusal> {
        match session {
            Some(_) => {
                let slot = self.admit(id)?;
                self.want(&slot, |w| w.set_ingest(session));
            }
            None => self.edit_existing(id, |w| w.set_ingest(None)),
        }
        Ok(())
    }

    /// nginx died and is back: streams waiting out a backoff caused by its
    /// death retry now instead of after delays that doubled with each
    /// crash.
    pub fn nginx_restarted(&self) {
        self.nginx_epoch.fetch_add(1, Ordering::SeqCst);
        for slot in lock(&self.slots).values() {
            slot.wake.notify_one();
        }
    }

    /// Forgets the state of streams no longer listed whose task ended, and
    /// public clients whose leases all expired (so neither the statuses
    /// nor the metrics' labels only grow).
    pub fn prune(&self) {
        let snapshot = self.catalog.snapshot();
        let before = lock(&self.slots).len();
        lock(&self.slots).retain(|id, slot| {
            snapshot.streams.contains_key(id) || lock(&slot.inner).task.is_some()
        });
        if lock(&self.slots).len() != before {
            self.touch();
        }
        let now = Instant::now();
        lock(&self.clients).retain(|_, leases| {
            leases.retain(|_, t| *t > now);
            !leases.is_empty()
        });
    }

    /// Stops every FFmpeg: asks every task to stop, waits a bounded time,
    /// then kills what is left. Returns within [`SHUTDOWN_WAIT`] + 1 s.
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.shutdown_tx.send(true);
        let slots: Vec<Arc<Slot>> = lock(&self.slots).values().cloned().collect();
        let tasks: Vec<_> = slots
            .iter()
            .filter_map(|s| lock(&s.inner).task.take())
            .collect();
        let all = futures_join(tasks);
        if tokio::time::timeout(SHUTDOWN_WAIT, all).await.is_err() {
            tracing::warn!("streams did not stop in time; killing their FFmpeg");
        }
        for s in &slots {
            if let Some(pid) = lock(&s.inner).status.pid {
                crate::ffmpeg::signal_group(pid, libc::SIGKILL);
            }
        }
    }

    fn emit(&self, id: &str, state: State, viewers: usize) {
        self.events.send(Event::Stream {
            id: id.to_string(),
            state,
            viewers,
        });
    }

    /// Tells of a viewer count that an edit of `inner` changed from
    /// `before` (the state is the one the task last published).
    fn viewers_changed(&self, slot: &Slot, inner: &Inner, before: usize) {
        let now = inner.wanted.viewers();
        if now != before {
            self.touch();
            self.emit(&slot.id, inner.status.state, now);
            self.stats.viewers(&slot.id, now);
        }
    }

    /// Ends the leases of `inner` that ran out at `now`, telling of the
    /// viewers they held; returns when the next one runs out.
    fn expire_leases(&self, slot: &Slot, inner: &mut Inner, now: Instant) -> Option<Instant> {
        let before = inner.wanted.viewers();
        let next = inner.wanted.expire(now);
        self.viewers_changed(slot, inner, before);
        next
    }
}

/// Waits for all `tasks`.
async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

/// A copy of a slot's status, with FFmpeg's last log lines when `log`.
fn snapshot(slot: &Slot, log: bool) -> Status {
    let inner = lock(&slot.inner);
    let mut s = inner.status.clone();
    s.viewers_rtmp = inner.wanted.rtmp_viewers();
    s.viewers_http = inner.wanted.http_viewers();
    match (&inner.monitor, log) {
        (Some(m), true) => {
            let m = lock(m);
            s.frames = m.frames;
            s.log = m.log.iter().rev().take(LOG_TAIL).rev().cloned().collect();
        }
        (Some(m), false) => {
            s.frames = lock(m).frames;
            s.log.clear();
        }
        (None, false) => s.log.clear(),
        (None, true) => {}
    }
    s
}

use crate::tokens::constant_time_eq;
