//! The on-demand lifecycle of every stream: viewer accounting and the
//! FFmpeg state machine of DESIGN.md.
//!
//! Idle → (first viewer) → Starting (FFmpeg spawned) → Live (`on_publish`
//! with this spawn's token; warm-up recorded) → (last viewer gone) →
//! Stopping (grace period; a new viewer cancels it) → Idle. FFmpeg exiting
//! while wanted, no publish within the start timeout, or no progress for
//! the stale timeout → Backoff (doubling, capped, reset after a stable
//! run) → Starting.
//!
//! Each stream with something going on has one task (an actor) that owns
//! its state; callbacks and API calls send it commands. Viewers are counted
//! by nginx client id (a set, so duplicate callbacks are harmless) plus
//! HTTP leases that expire; `/stat` reconciliation corrects missed
//! callbacks. FFmpeg's own publish is recognised by a per-spawn token in
//! its RTMP URL and is never a viewer.

use crate::catalog::{unix_ms, Catalog, StreamEntry};
use crate::config::Config;
use crate::ffmpeg::{self, Process};
use crate::nginx::stat::StreamStat;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{broadcast, mpsc, oneshot};

/// How often an active stream re-checks its timers.
const TICK: Duration = Duration::from_millis(200);

/// A viewer that joined this recently is kept even if a `/stat` snapshot
/// does not show it yet (the callback can precede the client's entry).
const RESYNC_GRACE: Duration = Duration::from_secs(10);

/// Lines of FFmpeg stderr shown by the API.
const LOG_TAIL: usize = 20;

/// The state of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// No FFmpeg.
    #[default]
    Idle,
    /// FFmpeg spawned, not yet publishing.
    Starting,
    /// FFmpeg publishing.
    Live,
    /// Running, unwatched, within the grace period.
    Stopping,
    /// Waiting to retry after a failure.
    Backoff,
}

/// What the API shows of a stream's lifecycle.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// State.
    pub state: State,
    /// RTMP viewers (nginx client ids).
    pub viewers_rtmp: usize,
    /// HTTP viewer leases alive.
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
    /// The last failure.
    pub last_error: Option<String>,
    /// Time from spawn to publish of the last start, in ms.
    pub warmup_ms: Option<u64>,
    /// Frames FFmpeg reported.
    pub frames: u64,
    /// Last lines of FFmpeg's stderr.
    pub log: Vec<String>,
}

/// A state change, for `/api/events`.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// The stream.
    pub id: String,
    /// Its new state.
    pub state: State,
    /// Viewers (RTMP + HTTP).
    pub viewers: usize,
}

/// Why a viewer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No such stream in the catalog.
    #[error("no stream {0:?}")]
    Unknown(String),
    /// The provider lists it as offline.
    #[error("stream {0:?} is offline")]
    Offline(String),
}

enum Cmd {
    Play(String),
    PlayDone(String),
    Lease(String, Duration),
    Publish(String, oneshot::Sender<bool>),
    PublishDone(String),
    Pin,
    Stop,
    Resync(Vec<String>, Instant),
    Poke,
    Shutdown,
}

struct Ctl {
    tx: mpsc::UnboundedSender<Cmd>,
    task: tokio::task::JoinHandle<()>,
}

/// All streams' lifecycles.
pub struct Supervisor {
    config: Arc<Config>,
    catalog: Arc<Catalog>,
    actors: Mutex<HashMap<String, Ctl>>,
    statuses: Mutex<HashMap<String, Arc<Mutex<Status>>>>,
    events: broadcast::Sender<Event>,
    stopping: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An unguessable publish token.
fn token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let part = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n ^ salt);
        h.write_u128(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.finish()
    };
    format!("{:016x}{:016x}", part(1), part(2))
}

impl Supervisor {
    /// A supervisor for the streams of `catalog`.
    pub fn new(config: Arc<Config>, catalog: Arc<Catalog>) -> Arc<Self> {
        Arc::new(Supervisor {
            config,
            catalog,
            actors: Mutex::new(HashMap::new()),
            statuses: Mutex::new(HashMap::new()),
            events: broadcast::channel(1024).0,
            stopping: AtomicBool::new(false),
        })
    }

    /// State changes as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

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

    fn auto(&self, e: &StreamEntry) -> bool {
        let f = &self.config.ffmpeg;
        f.auto_start.iter().any(|i| i == &e.id) || f.auto_start_providers.contains(&e.provider)
    }

    /// Sends `cmd` to the actor of `id`, creating it when `create`.
    fn send(self: &Arc<Self>, id: &str, cmd: Cmd, create: bool) {
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        let mut actors = lock(&self.actors);
        if let Some(ctl) = actors.get(id) {
            if ctl.tx.send(cmd).is_ok() {
                return;
            }
            // The actor ended without removing itself (it panicked).
            actors.remove(id);
            return;
        }
        if !create {
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(cmd);
        let status = lock(&self.statuses)
            .entry(id.to_string())
            .or_default()
            .clone();
        let actor = Actor::new(self.clone(), id.to_string(), rx, status);
        let task = tokio::spawn(actor.run());
        actors.insert(id.to_string(), Ctl { tx, task });
    }

    /// An RTMP viewer (`on_play`) of `id` with nginx client id `client`.
    pub fn play(self: &Arc<Self>, id: &str, client: &str) -> Result<(), Refusal> {
        self.entry(id)?;
        self.send(id, Cmd::Play(client.to_string()), true);
        Ok(())
    }

    /// An RTMP viewer left (`on_play_done`).
    pub fn play_done(self: &Arc<Self>, id: &str, client: &str) {
        self.send(id, Cmd::PlayDone(client.to_string()), false);
    }

    /// An HTTP viewer lease for `client`, `ttl` clamped by the config.
    pub fn lease(
        self: &Arc<Self>,
        id: &str,
        client: &str,
        ttl: Option<Duration>,
    ) -> Result<Duration, Refusal> {
        self.entry(id)?;
        let f = &self.config.ffmpeg;
        let ttl = ttl
            .unwrap_or(Duration::from_secs(f.http_lease_seconds))
            .clamp(
                Duration::from_secs(f.http_lease_min_seconds),
                Duration::from_secs(f.http_lease_max_seconds.max(f.http_lease_min_seconds)),
            );
        self.send(id, Cmd::Lease(client.to_string(), ttl), true);
        Ok(ttl)
    }

    /// `on_publish`: true when `token` is the one given to this stream's
    /// current FFmpeg (anything else is refused).
    pub async fn publish(self: &Arc<Self>, id: &str, token: &str) -> bool {
        let (tx, rx) = oneshot::channel();
        self.send(id, Cmd::Publish(token.to_string(), tx), false);
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false)
    }

    /// `on_publish_done`.
    pub fn publish_done(self: &Arc<Self>, id: &str, token: &str) {
        self.send(id, Cmd::PublishDone(token.to_string()), false);
    }

    /// Keeps `id` running until [`Supervisor::stop`].
    pub fn start(self: &Arc<Self>, id: &str) -> Result<(), Refusal> {
        self.entry(id)?;
        self.send(id, Cmd::Pin, true);
        Ok(())
    }

    /// Stops `id` now: drops pins and HTTP leases; RTMP viewers still
    /// connected do not restart it until a viewer arrives.
    pub fn stop(self: &Arc<Self>, id: &str) {
        self.send(id, Cmd::Stop, false);
    }

    /// The lifecycle status of `id` (Idle when nothing ever happened).
    pub fn status(&self, id: &str) -> Status {
        lock(&self.statuses)
            .get(id)
            .map(|s| lock(s).clone())
            .unwrap_or_default()
    }

    /// Statuses of all streams that have one.
    pub fn statuses(&self) -> BTreeMap<String, Status> {
        lock(&self.statuses)
            .iter()
            .map(|(k, v)| (k.clone(), lock(v).clone()))
            .collect()
    }

    /// Corrects viewer sets from a `/stat` snapshot taken at `at`, and
    /// makes sure auto-started streams run.
    pub fn resync(self: &Arc<Self>, stat: &BTreeMap<String, StreamStat>, at: Instant) {
        let snapshot = self.catalog.snapshot();
        for (id, s) in stat {
            let Some(entry) = snapshot.streams.get(id) else {
                continue;
            };
            let create = !s.viewers.is_empty() && entry.online;
            self.send(id, Cmd::Resync(s.viewers.clone(), at), create);
        }
        // Streams we track that /stat does not show have no RTMP viewers.
        let tracked: Vec<String> = lock(&self.actors).keys().cloned().collect();
        for id in tracked.iter().filter(|id| !stat.contains_key(*id)) {
            self.send(id, Cmd::Resync(Vec::new(), at), false);
        }
        for e in snapshot
            .streams
            .values()
            .filter(|e| e.online && self.auto(e))
        {
            self.send(&e.id, Cmd::Poke, true);
        }
    }

    /// Stops every FFmpeg and waits for them to be reaped.
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let ctls: Vec<Ctl> = lock(&self.actors).drain().map(|(_, c)| c).collect();
        for c in &ctls {
            let _ = c.tx.send(Cmd::Shutdown);
        }
        for c in ctls {
            let _ = c.task.await;
        }
    }

    fn emit(&self, id: &str, state: State, viewers: usize) {
        let _ = self.events.send(Event {
            id: id.to_string(),
            state,
            viewers,
        });
    }
}

struct Actor {
    sup: Arc<Supervisor>,
    id: String,
    rx: mpsc::UnboundedReceiver<Cmd>,
    shared: Arc<Mutex<Status>>,
    status: Status,
    rtmp: HashMap<String, Instant>,
    http: HashMap<String, Instant>,
    pinned: bool,
    suppressed: bool,
    stop_now: bool,
    proc: Option<Process>,
    token: Option<String>,
    spawned_at: Option<Instant>,
    live_since: Option<Instant>,
    unwanted_since: Option<Instant>,
    backoff_until: Option<Instant>,
    delay: Duration,
    shutdown: bool,
}

async fn wait_child(p: &mut Option<Process>) -> Option<std::process::ExitStatus> {
    match p {
        Some(p) => p.child.wait().await.ok(),
        None => std::future::pending().await,
    }
}

impl Actor {
    fn new(
        sup: Arc<Supervisor>,
        id: String,
        rx: mpsc::UnboundedReceiver<Cmd>,
        shared: Arc<Mutex<Status>>,
    ) -> Self {
        let mut status = lock(&shared).clone();
        status.state = State::Idle;
        let delay = Duration::from_millis(sup.config.ffmpeg.backoff_initial_ms);
        Actor {
            sup,
            id,
            rx,
            shared,
            status,
            rtmp: HashMap::new(),
            http: HashMap::new(),
            pinned: false,
            suppressed: false,
            stop_now: false,
            proc: None,
            token: None,
            spawned_at: None,
            live_since: None,
            unwanted_since: None,
            backoff_until: None,
            delay,
            shutdown: false,
        }
    }

    async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => self.shutdown = true,
                },
                status = wait_child(&mut self.proc) => self.exited(status),
                _ = tick.tick() => {}
            }
            self.step().await;
            self.publish_status();
            if self.shutdown {
                self.stop_process().await;
                self.set_state(State::Idle);
                self.publish_status();
                return;
            }
            if self.status.state == State::Idle
                && self.rtmp.is_empty()
                && self.http.is_empty()
                && !self.pinned
                && !self.is_auto()
            {
                // Exit under the map lock, so no command can slip in between.
                let mut actors = lock(&self.sup.actors);
                if self.rx.is_empty() {
                    actors.remove(&self.id);
                    return;
                }
            }
        }
    }

    fn entry(&self) -> Option<Arc<StreamEntry>> {
        self.sup.entry(&self.id).ok()
    }

    fn is_auto(&self) -> bool {
        self.entry().is_some_and(|e| self.sup.auto(&e))
    }

    fn wanted(&self) -> bool {
        if self.entry().is_none() {
            return false;
        }
        self.pinned
            || self.is_auto()
            || (!self.suppressed && (!self.rtmp.is_empty() || !self.http.is_empty()))
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Play(client) => {
                self.rtmp.insert(client, Instant::now());
                self.suppressed = false;
            }
            Cmd::PlayDone(client) => {
                self.rtmp.remove(&client);
            }
            Cmd::Lease(client, ttl) => {
                self.http.insert(client, Instant::now() + ttl);
                self.suppressed = false;
            }
            Cmd::Publish(token, reply) => {
                let ok = self.proc.is_some() && self.token.as_deref() == Some(token.as_str());
                if ok && self.status.state == State::Starting {
                    let now = Instant::now();
                    self.live_since = Some(now);
                    self.status.warmup_ms = self
                        .spawned_at
                        .map(|s| now.duration_since(s).as_millis() as u64);
                    self.set_state(State::Live);
                    tracing::info!(stream = %self.id, warmup_ms = ?self.status.warmup_ms, "live");
                } else if !ok {
                    tracing::warn!(stream = %self.id, "publish refused: not this stream's FFmpeg");
                }
                let _ = reply.send(ok);
            }
            Cmd::PublishDone(token) => {
                if self.token.as_deref() == Some(token.as_str()) {
                    tracing::debug!(stream = %self.id, "publisher left");
                }
            }
            Cmd::Pin => {
                self.pinned = true;
                self.suppressed = false;
            }
            Cmd::Stop => {
                self.pinned = false;
                self.http.clear();
                self.suppressed = true;
                self.stop_now = true;
            }
            Cmd::Resync(viewers, at) => {
                let cutoff = at.checked_sub(RESYNC_GRACE).unwrap_or(at);
                self.rtmp
                    .retain(|c, joined| viewers.contains(c) || *joined > cutoff);
                for v in viewers {
                    self.rtmp.entry(v).or_insert(at);
                }
            }
            Cmd::Poke => {}
            Cmd::Shutdown => self.shutdown = true,
        }
    }

    fn set_state(&mut self, state: State) {
        if self.status.state != state {
            self.status.state = state;
            self.status.since_ms = unix_ms(SystemTime::now());
            self.sup
                .emit(&self.id, state, self.rtmp.len() + self.http.len());
        }
    }

    fn fail(&mut self, message: String) {
        let cfg = &self.sup.config.ffmpeg;
        let stable = self
            .live_since
            .is_some_and(|t| t.elapsed() >= Duration::from_secs(cfg.stable_seconds));
        let initial = Duration::from_millis(cfg.backoff_initial_ms);
        if stable || self.status.failures == 0 {
            self.status.failures = 0;
            self.delay = initial;
        } else {
            self.delay =
                (self.delay * 2).min(Duration::from_secs(cfg.backoff_max_seconds).max(initial));
        }
        self.status.failures += 1;
        tracing::warn!(stream = %self.id, retry_in = ?self.delay, "{message}");
        self.status.last_error = Some(message);
        self.backoff_until = Some(Instant::now() + self.delay);
        self.live_since = None;
        self.set_state(State::Backoff);
    }

    fn exited(&mut self, status: Option<std::process::ExitStatus>) {
        let Some(p) = self.proc.take() else {
            return;
        };
        let tail = p.log_tail(LOG_TAIL);
        self.status.log = tail.clone();
        self.status.pid = None;
        self.token = None;
        let last = tail.last().cloned().unwrap_or_default();
        let code = status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown status".into());
        if self.wanted() {
            self.fail(format!("ffmpeg exited ({code}): {last}"));
        } else {
            tracing::info!(stream = %self.id, "ffmpeg exited ({code})");
            self.live_since = None;
            self.set_state(State::Idle);
        }
    }

    async fn stop_process(&mut self) {
        if let Some(p) = self.proc.take() {
            tracing::info!(stream = %self.id, pid = p.pid, "stopping ffmpeg");
            self.status.log = p.log_tail(LOG_TAIL);
            p.stop().await;
        }
        self.status.pid = None;
        self.token = None;
        self.live_since = None;
        self.unwanted_since = None;
    }

    async fn spawn(&mut self) {
        self.backoff_until = None;
        let Some(entry) = self.entry() else {
            self.set_state(State::Idle);
            return;
        };
        let plan = match ffmpeg::prepare(&entry).await {
            Ok(plan) => plan,
            Err(e) => {
                self.fail(e.to_string());
                return;
            }
        };
        let token = token();
        let output = format!("{}?token={token}", self.sup.config.rtmp_url(&self.id));
        let argv = plan.argv(&output);
        let cfg = &self.sup.config.ffmpeg;
        match ffmpeg::spawn(
            &cfg.binary,
            &argv,
            cfg.log_lines,
            &self.sup.config.ffmpeg_cwd(),
        ) {
            Ok(p) => {
                tracing::info!(stream = %self.id, pid = p.pid, "ffmpeg started");
                if self.status.failures > 0 {
                    self.status.restarts += 1;
                }
                self.status.pid = Some(p.pid);
                self.proc = Some(p);
                self.token = Some(token);
                self.spawned_at = Some(Instant::now());
                self.unwanted_since = None;
                self.set_state(State::Starting);
            }
            Err(e) => self.fail(e.to_string()),
        }
    }

    async fn step(&mut self) {
        let now = Instant::now();
        self.http.retain(|_, expires| *expires > now);
        let cfg = self.sup.config.ffmpeg.clone();
        let wanted = self.wanted();
        if self.proc.is_some() {
            if self.stop_now {
                self.stop_now = false;
                self.stop_process().await;
                self.set_state(State::Idle);
                return;
            }
            if wanted {
                self.unwanted_since = None;
                if self.status.state == State::Stopping {
                    self.set_state(State::Live);
                }
            } else {
                let since = *self.unwanted_since.get_or_insert(now);
                if self.status.state == State::Live {
                    self.set_state(State::Stopping);
                }
                if now.duration_since(since) >= Duration::from_secs(cfg.grace_seconds) {
                    self.stop_process().await;
                    self.set_state(State::Idle);
                    return;
                }
            }
            if self.status.state == State::Starting {
                let started = self.spawned_at.unwrap_or(now);
                if now.duration_since(started) >= Duration::from_secs(cfg.start_timeout_seconds) {
                    self.stop_process().await;
                    self.fail(format!(
                        "no publish within {} s of starting ffmpeg",
                        cfg.start_timeout_seconds
                    ));
                    return;
                }
            }
            if matches!(self.status.state, State::Live | State::Stopping) {
                let last = self
                    .proc
                    .as_ref()
                    .and_then(|p| lock(&p.monitor).last_progress);
                let reference = last.or(self.live_since).unwrap_or(now);
                if now.duration_since(reference) >= Duration::from_secs(cfg.stale_seconds) {
                    self.stop_process().await;
                    self.fail(format!(
                        "no progress from ffmpeg for {} s",
                        cfg.stale_seconds
                    ));
                }
            }
            return;
        }
        self.stop_now = false;
        match self.status.state {
            State::Backoff => {
                if !wanted {
                    self.backoff_until = None;
                    self.set_state(State::Idle);
                } else if self.backoff_until.is_none_or(|t| now >= t) {
                    self.spawn().await;
                }
            }
            _ => {
                if wanted {
                    self.spawn().await;
                } else if self.status.state != State::Idle {
                    self.set_state(State::Idle);
                }
            }
        }
    }

    fn publish_status(&mut self) {
        self.status.viewers_rtmp = self.rtmp.len();
        self.status.viewers_http = self.http.len();
        self.status.pinned = self.pinned || self.is_auto();
        if let Some(p) = &self.proc {
            let m = lock(&p.monitor);
            self.status.frames = m.frames;
            self.status.log = m.log.iter().rev().take(LOG_TAIL).rev().cloned().collect();
        }
        *lock(&self.shared) = self.status.clone();
    }
}
