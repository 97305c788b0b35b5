//! The task of one stream: reconciles its FFmpeg with its wanted state.
//!
//! It wakes when a command edits the wanted state, when FFmpeg exits, at
//! its next timer (lease expiry, grace period, start timeout, backoff) and
//! once a second while FFmpeg runs (stall detection); then it looks at the
//! current values and acts. It ends itself when the stream is idle and
//! nobody wants it.

use super::decide::{
    decide, Action, Facts, Failure, Prepared, RunFacts, StartFacts, Stop, Timings,
};
use super::{lock, Slot, State, Status, Supervisor, LOG_TAIL};
use crate::backoff::Backoff;
use crate::catalog::{unix_ms, StreamEntry};
use crate::cluster::Role;
use crate::ffmpeg::{self, Plan, Process};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::OwnedSemaphorePermit;

/// Cluster mode: how soon a stream that waits on its lease (the owner
/// dead, the store away) looks again. A claim is one store round trip.
const CLUSTER_RETRY: Duration = Duration::from_secs(1);

/// An unguessable publish token (128 bits).
fn token() -> String {
    crate::ids::unguessable_hex(16)
}

struct Running {
    proc: Process,
    _permit: OwnedSemaphorePermit,
    spawned_at: Instant,
    live_since: Option<Instant>,
    unwanted_since: Option<Instant>,
    stop_generation: u64,
    /// The phone session it reads (ingest streams).
    ingest: Option<u64>,
    /// Cluster mode: the host it relays the stream from (`None`: this
    /// host runs the stream's own FFmpeg).
    relay: Option<String>,
}

/// What one reconcile pass found on its way: the start's steps' answers
/// (for [`decide`]) and the prepared plan (for the spawn).
#[derive(Default)]
struct Pass {
    start: StartFacts,
    plan: Option<Arc<Plan>>,
}

/// The facts of one look, with what acting on them needs.
struct Seen {
    facts: Facts,
    /// The stream's listing entry, if listed and online.
    entry: Option<Arc<StreamEntry>>,
    /// The next expiry of an HTTP lease.
    next_expiry: Option<Instant>,
}

/// Whether a pass goes on after an action.
enum Flow {
    /// Decide again.
    Again,
    /// The pass ends; look again at this instant (or when woken).
    Done(Option<Instant>),
}

struct Task {
    sup: Arc<Supervisor>,
    slot: Arc<Slot>,
    status: Status,
    run: Option<Running>,
    backoff: Backoff,
    /// Waiting for a free FFmpeg slot.
    capacity_wait: bool,
    /// The supervisor's nginx epoch this task's backoff belongs to.
    nginx_epoch: u64,
}

async fn wait_child(run: &mut Option<Running>) -> Option<std::process::ExitStatus> {
    match run {
        Some(r) => r.proc.child.wait().await.ok(),
        None => std::future::pending().await,
    }
}

async fn acquire(sem: Arc<tokio::sync::Semaphore>, wanted: bool) -> Option<OwnedSemaphorePermit> {
    if !wanted {
        return std::future::pending().await;
    }
    sem.acquire_owned().await.ok()
}

/// Runs the task of `slot` until the stream is idle and unwanted, or the
/// host shuts down.
pub(super) async fn run(sup: Arc<Supervisor>, slot: Arc<Slot>) {
    let policy = super::restart_policy(&sup.config.ffmpeg);
    let status = lock(&slot.inner).status.clone();
    let mut t = Task {
        backoff: Backoff::new(policy),
        sup: sup.clone(),
        slot,
        status,
        run: None,
        capacity_wait: false,
        nginx_epoch: sup.nginx_epoch.load(Ordering::SeqCst),
    };
    t.backoff.failures = t.status.failures;
    let mut shutdown = sup.shutdown_tx.subscribe();
    loop {
        if *shutdown.borrow() {
            t.stop_process().await;
            t.set_state(State::Idle);
            t.publish(true);
            lock(&t.slot.inner).task = None;
            return;
        }
        let now = Instant::now();
        let wake_at = t.reconcile(now).await;
        if t.finished() {
            return;
        }
        let permit_wanted = t.capacity_wait;
        let sem = t.sup.capacity.clone();
        tokio::select! {
            _ = t.slot.wake.notified() => {}
            status = wait_child(&mut t.run) => t.exited(status),
            _ = sleep_until(wake_at) => {}
            _ = shutdown.changed() => {}
            permit = acquire(sem, permit_wanted) => {
                // Hand it back: the next reconcile takes one for real.
                drop(permit);
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

impl Task {
    fn entry(&self) -> Option<Arc<StreamEntry>> {
        self.sup.entry(&self.slot.id).ok()
    }

    fn set_state(&mut self, state: State) {
        if self.status.state != state {
            self.status.state = state;
            self.status.since_ms = unix_ms(SystemTime::now());
            let viewers = lock(&self.slot.inner).wanted.viewers();
            self.sup.emit(&self.slot.id, state, viewers);
            self.sup.stats.state(&self.slot.id, state, Instant::now());
        }
    }

    /// Copies the task's status to the slot (`exited`: FFmpeg is gone).
    fn publish(&mut self, exited: bool) {
        self.status.failures = self.backoff.failures;
        let mut inner = lock(&self.slot.inner);
        if exited {
            inner.monitor = None;
            inner.token = None;
            inner.published = false;
        }
        let shown = |s: &Status| (s.state, s.pid.is_some());
        let changed = shown(&inner.status) != shown(&self.status);
        inner.status = self.status.clone();
        if changed {
            self.sup.touch();
        }
    }

    /// Whether the task may end now: idle, nothing running, nobody wants
    /// the stream. Decided under the slot's lock, so a command arriving
    /// meanwhile either sees the task gone (and starts one) or is seen.
    fn finished(&mut self) -> bool {
        if self.run.is_some() || matches!(self.status.state, State::Backoff) {
            return false;
        }
        let auto = self.entry().is_some_and(|e| self.sup.auto(&e));
        let mut inner = lock(&self.slot.inner);
        self.sup
            .expire_leases(&self.slot, &mut inner, Instant::now());
        if auto || (inner.wanted.wants() && self.status.state != State::Refused) {
            return false;
        }
        inner.task = None;
        true
    }

    /// Brings what runs in line with what is wanted; returns when to look
    /// again (besides commands and FFmpeg exiting). Asks [`decide`] for
    /// the next step and carries it out until a step ends the pass.
    async fn reconcile(&mut self, now: Instant) -> Option<Instant> {
        self.follow_nginx();
        self.capacity_wait = false;
        let cfg = &self.sup.config.ffmpeg;
        let timings = Timings {
            grace: Duration::from_secs(cfg.grace_seconds),
            start_timeout: Duration::from_secs(cfg.start_timeout_seconds),
            stale: Duration::from_secs(cfg.stale_seconds),
        };
        let mut pass = Pass::default();
        // What is wanted is read once a pass; between its steps only what
        // the task itself changed is brought up to date.
        let mut seen = self.observe(now, &pass.start);
        loop {
            let action = decide(&seen.facts, &timings);
            if let Flow::Done(wake) = self.act(action, &seen, &mut pass).await {
                self.publish(self.run.is_none());
                return [wake, seen.next_expiry].into_iter().flatten().min();
            }
            self.refresh(&mut seen.facts, &pass.start);
        }
    }

    /// Brings the task's own part of `facts` up to date after a step: the
    /// state, the running FFmpeg's marks, the pacing, the start's answers
    /// and the free FFmpeg slots.
    fn refresh(&self, facts: &mut Facts, start: &StartFacts) {
        facts.state = self.status.state;
        facts.retry_pending = self.backoff.until.is_some();
        facts.next_allowed = self.backoff.next_allowed();
        facts.capacity_free = self.sup.capacity.available_permits() > 0;
        facts.start = start.clone();
        if let (Some(f), Some(r)) = (facts.run.as_mut(), self.run.as_ref()) {
            f.live_since = r.live_since;
            f.unwanted_since = r.unwanted_since;
        }
    }

    /// nginx came back after dying: the failures counted meanwhile were
    /// nginx's, so the backoff starts over.
    fn follow_nginx(&mut self) {
        let epoch = self.sup.nginx_epoch.load(Ordering::SeqCst);
        if epoch != self.nginx_epoch {
            self.nginx_epoch = epoch;
            if self.backoff.failures > 0 {
                tracing::info!(stream = %self.slot.id, "nginx is back: retrying without backoff");
                self.backoff.reset();
            }
        }
    }

    /// Gathers what [`decide`] looks at (and lifts a refusal whose listing
    /// entry changed).
    fn observe(&mut self, now: Instant, start: &StartFacts) -> Seen {
        let entry = self.entry();
        let auto = entry.as_ref().is_some_and(|e| self.sup.auto(e));
        let (wants, next_expiry, stop_generation, published, ingest, pinned, refused) = {
            let mut inner = lock(&self.slot.inner);
            let next = self.sup.expire_leases(&self.slot, &mut inner, now);
            // A refusal holds while the listing keeps the same entry.
            let refused = match (&inner.refused, &entry) {
                (Some((r, _)), Some(e)) => Arc::ptr_eq(r, e),
                _ => false,
            };
            if !refused {
                inner.refused = None;
            }
            (
                inner.wanted.wants(),
                next,
                inner.wanted.stop_generation(),
                inner.published,
                inner.wanted.ingest(),
                inner.wanted.pinned(),
                refused,
            )
        };
        self.status.pinned = auto || pinned;
        if !refused && self.status.state == State::Refused {
            self.status.last_error = None;
            self.set_state(State::Idle);
        }
        let is_ingest = entry.as_ref().is_some_and(|e| e.is_ingest());
        // A phone's stream runs only while the phone is connected.
        let fed = !is_ingest || ingest.is_some();
        let cluster = self.sup.cluster();
        let run = self.run.as_ref().map(|r| RunFacts {
            spawned_at: r.spawned_at,
            live_since: r.live_since,
            unwanted_since: r.unwanted_since,
            stop_generation: r.stop_generation,
            ingest: r.ingest,
            lease_held: r.relay.is_some()
                || r.ingest.is_some()
                || cluster.is_none_or(|c| c.may_run(&self.slot.id, now)),
            last_progress: lock(&r.proc.monitor).last_progress,
        });
        let facts = Facts {
            now,
            state: self.status.state,
            wanted: entry.is_some() && (wants || auto) && !refused && fed,
            // Wanted only for itself (auto_start, a recording): on another
            // host than its owner, nothing to relay it for.
            auto_only: auto && !wants,
            ingest,
            stop_generation,
            published,
            retry_pending: self.backoff.until.is_some(),
            next_allowed: self.backoff.next_allowed(),
            capacity_free: self.sup.capacity.available_permits() > 0,
            clustered: cluster.is_some() && !is_ingest,
            run,
            start: start.clone(),
        };
        Seen {
            facts,
            entry,
            next_expiry,
        }
    }

    /// Carries `action` out.
    async fn act(&mut self, action: Action, seen: &Seen, pass: &mut Pass) -> Flow {
        match action {
            Action::Wait(wake) => Flow::Done(wake),
            Action::Rest => {
                self.backoff.cancel();
                if self.status.state != State::Refused {
                    self.set_state(State::Idle);
                }
                Flow::Done(None)
            }
            Action::HoldBackoff(at) => {
                if self.status.state != State::Backoff && seen.facts.retry_pending {
                    self.set_state(State::Backoff);
                }
                Flow::Done(Some(at))
            }
            Action::Stop(_)
            | Action::Fail(_)
            | Action::GoLive { .. }
            | Action::Rewanted
            | Action::Unwanted
            | Action::EnterStopping => self.act_running(action, seen.facts.now).await,
            _ => self.act_start(action, seen, pass).await,
        }
    }

    /// Carries out an action on the running FFmpeg.
    async fn act_running(&mut self, action: Action, now: Instant) -> Flow {
        match action {
            Action::Stop(why) => Flow::Done(self.stop(why, now).await),
            Action::Fail(why) => {
                self.stop_process().await;
                let cfg = &self.sup.config.ffmpeg;
                let (message, live) = match why {
                    Failure::StartTimeout => (
                        format!(
                            "no publish within {} s of starting ffmpeg",
                            cfg.start_timeout_seconds
                        ),
                        None,
                    ),
                    Failure::Stale { live } => (
                        format!("no progress from ffmpeg for {} s", cfg.stale_seconds),
                        live,
                    ),
                };
                self.fail(message, now, live);
                Flow::Done(self.backoff.next_allowed())
            }
            Action::GoLive { warmup } => {
                if let Some(run) = self.run.as_mut() {
                    run.live_since = Some(now);
                }
                self.sup.stats.warmup(&self.slot.id, warmup, now);
                let warmup = warmup.as_millis() as u64;
                self.status.warmup_ms = Some(warmup);
                tracing::info!(stream = %self.slot.id, warmup_ms = warmup, "live");
                self.set_state(State::Live);
                Flow::Again
            }
            Action::Rewanted => {
                if let Some(run) = self.run.as_mut() {
                    run.unwanted_since = None;
                }
                if self.status.state == State::Stopping {
                    self.set_state(State::Live);
                }
                Flow::Again
            }
            Action::Unwanted => {
                if let Some(run) = self.run.as_mut() {
                    run.unwanted_since = Some(now);
                }
                Flow::Again
            }
            Action::EnterStopping => {
                self.set_state(State::Stopping);
                Flow::Again
            }
            _ => Flow::Done(None),
        }
    }

    /// Carries out a step of starting a stream.
    async fn act_start(&mut self, action: Action, seen: &Seen, pass: &mut Pass) -> Flow {
        let now = seen.facts.now;
        match action {
            Action::Claim => {
                let role = match self.sup.cluster().cloned() {
                    Some(c) => c.claim(&self.slot.id).await,
                    None => Role::Owner,
                };
                pass.start.claim = Some(role);
                Flow::Again
            }
            Action::OnOwner => {
                // Kept running by its owner; claimed again later in case
                // the owner goes away.
                self.status.last_error = None;
                self.set_state(State::Idle);
                if let Some(Role::Relay { owner, .. }) = &seen.facts.start.claim {
                    tracing::debug!(stream = %self.slot.id, host = %owner, "cluster: runs on its owner");
                }
                let tick = self.sup.cluster().map(|c| c.tick_interval());
                Flow::Done(Some(now + tick.unwrap_or(CLUSTER_RETRY) * 3))
            }
            Action::Relay => match &seen.facts.start.claim {
                Some(Role::Relay { owner, from }) => {
                    let stop_generation = seen.facts.stop_generation;
                    Flow::Done(self.start_relay(owner, from, stop_generation, now).await)
                }
                _ => Flow::Done(None),
            },
            Action::ClusterWait(reason) => {
                if self.status.last_error.as_deref() != Some(reason.as_str()) {
                    tracing::info!(stream = %self.slot.id, %reason, "cluster: waiting");
                }
                self.status.last_error = Some(reason);
                self.set_state(State::Backoff);
                Flow::Done(Some(now + CLUSTER_RETRY))
            }
            Action::Prepare => {
                let prepared = match &seen.entry {
                    Some(entry) => self.prepare(entry, &mut pass.plan).await,
                    None => Prepared::NoFeeds,
                };
                pass.start.prepared = Some(prepared);
                Flow::Again
            }
            Action::Refuse(reason) => {
                if let Some(entry) = &seen.entry {
                    self.refuse(entry.clone(), reason);
                }
                Flow::Done(None)
            }
            Action::FailStart(message) => {
                self.fail(message, now, None);
                Flow::Done(self.backoff.next_allowed())
            }
            Action::WaitCapacity => {
                self.wait_capacity();
                Flow::Done(None)
            }
            Action::Spawn => {
                let Some(plan) = pass.plan.take() else {
                    return Flow::Done(None);
                };
                let Ok(permit) = self.sup.capacity.clone().try_acquire_owned() else {
                    self.wait_capacity();
                    return Flow::Done(None);
                };
                let (stop_generation, ingest) = (seen.facts.stop_generation, seen.facts.ingest);
                self.spawn(
                    &|out| plan.argv(out),
                    permit,
                    stop_generation,
                    ingest,
                    None,
                    now,
                )
                .await;
                Flow::Done(self.backoff.next_allowed())
            }
            _ => Flow::Done(None),
        }
    }

    /// Stops the running FFmpeg, not as a failure; returns when to look
    /// again.
    async fn stop(&mut self, why: Stop, now: Instant) -> Option<Instant> {
        match why {
            Stop::SessionChanged => {
                // Not a failure; a new session gets a new FFmpeg.
                tracing::info!(stream = %self.slot.id, "phone session changed: stopping its ffmpeg");
                self.stop_process().await;
                self.set_state(State::Idle);
                Some(now)
            }
            Stop::Admin => {
                tracing::info!(stream = %self.slot.id, "admin stop");
                self.stop_process().await;
                self.release_lease().await;
                self.set_state(State::Idle);
                None
            }
            Stop::LeaseLost => {
                // Another host may run it now, so this FFmpeg stops first.
                tracing::warn!(stream = %self.slot.id, "cluster lease lost: stopping ffmpeg");
                self.stop_process().await;
                self.status.last_error = Some("cluster lease lost: another host may run it".into());
                self.set_state(State::Idle);
                Some(now)
            }
            Stop::GraceOver => {
                self.stop_process().await;
                self.release_lease().await;
                self.set_state(State::Idle);
                None
            }
        }
    }

    /// The listing-time check, then the source's addresses (resolved now:
    /// a name may point elsewhere than when it was listed); a phone's
    /// stream reads its phone's media.
    async fn prepare(&self, entry: &StreamEntry, plan: &mut Option<Arc<Plan>>) -> Prepared {
        match ffmpeg::prepare(&entry.plan).await {
            Ok(p) if p.is_ingest() => match self.sup.feeds_of(&self.slot.id) {
                Some(feeds) if !feeds.is_empty() => {
                    *plan = Some(Arc::new(p.with_feeds(feeds)));
                    Prepared::Ready
                }
                // Connected but no media yet: the ingest wakes us.
                _ => Prepared::NoFeeds,
            },
            Ok(p) => {
                *plan = Some(p);
                Prepared::Ready
            }
            Err(ffmpeg::SpawnError::Refused(reason)) => Prepared::Refused(reason.into()),
            Err(e) => Prepared::Failed(e.to_string()),
        }
    }

    /// No free FFmpeg slot: Backoff until one frees (the task's select
    /// waits on the semaphore).
    fn wait_capacity(&mut self) {
        self.capacity_wait = true;
        let msg = format!(
            "waiting for a free FFmpeg slot: {} run ([ffmpeg] max_running)",
            self.sup.max_running
        );
        if self.status.last_error.as_deref() != Some(msg.as_str()) {
            tracing::warn!(stream = %self.slot.id, "{msg}");
            self.sup.capacity_refusals.fetch_add(1, Ordering::Relaxed);
        }
        self.status.last_error = Some(msg);
        self.set_state(State::Backoff);
    }

    /// Cluster mode: copies the stream from host `owner`'s nginx-rtmp
    /// (`from`) into this host's, for the viewers here.
    async fn start_relay(
        &mut self,
        owner: &str,
        from: &str,
        stop_generation: u64,
        now: Instant,
    ) -> Option<Instant> {
        let Ok(permit) = self.sup.capacity.clone().try_acquire_owned() else {
            self.wait_capacity();
            return None;
        };
        let from = match ffmpeg::relay_source(from) {
            Ok(url) => url,
            Err(e) => {
                self.fail(format!("relay from host {owner}: {e}"), now, None);
                return self.backoff.next_allowed();
            }
        };
        let make = move |out: &str| ffmpeg::relay_argv(&from, out);
        tracing::info!(stream = %self.slot.id, host = %owner, "cluster: relaying from its owner");
        self.spawn(
            &make,
            permit,
            stop_generation,
            None,
            Some(owner.to_string()),
            now,
        )
        .await;
        self.backoff.next_allowed()
    }

    /// Cluster mode: gives the stream's lease up once its FFmpeg stopped
    /// for want of viewers, so that the next host to want it gets it.
    async fn release_lease(&mut self) {
        if let Some(c) = self.sup.cluster() {
            c.release(&self.slot.id).await;
        }
    }

    fn refuse(&mut self, entry: Arc<StreamEntry>, reason: String) {
        tracing::warn!(stream = %self.slot.id, %reason, "refused by the FFmpeg policy");
        lock(&self.slot.inner).refused = Some((entry, reason.clone()));
        self.status.last_error = Some(reason);
        self.backoff.cancel();
        self.set_state(State::Refused);
    }

    #[allow(clippy::too_many_arguments)]
    async fn spawn(
        &mut self,
        make_argv: &(dyn Fn(&str) -> Vec<String> + Send + Sync),
        permit: OwnedSemaphorePermit,
        stop_generation: u64,
        ingest: Option<u64>,
        relay: Option<String>,
        now: Instant,
    ) {
        let token = token();
        let output = format!("{}?token={token}", self.sup.config.rtmp_url(&self.slot.id));
        let argv = make_argv(&output);
        let cfg = &self.sup.config.ffmpeg;
        self.backoff.spawned(now);
        {
            let mut inner = lock(&self.slot.inner);
            inner.token = Some(token);
            inner.published = false;
        }
        match ffmpeg::spawn(
            &cfg.binary,
            &argv,
            cfg.log_lines,
            &self.sup.config.ffmpeg_cwd(),
            self.sup.config.security.media_user.as_ref(),
        ) {
            Ok(p) => {
                tracing::info!(stream = %self.slot.id, pid = p.pid, "ffmpeg started");
                self.sup.spawns.fetch_add(1, Ordering::Relaxed);
                self.sup.stats.started(&self.slot.id, now);
                if self.backoff.failures > 0 {
                    self.status.restarts += 1;
                }
                self.status.pid = Some(p.pid);
                self.status.spawned_at_ms = Some(unix_ms(SystemTime::now()));
                self.status.log.clear();
                lock(&self.slot.inner).monitor = Some(p.monitor.clone());
                self.run = Some(Running {
                    proc: p,
                    _permit: permit,
                    spawned_at: now,
                    live_since: None,
                    unwanted_since: None,
                    stop_generation,
                    ingest,
                    relay,
                });
                self.set_state(State::Starting);
            }
            Err(e) => {
                lock(&self.slot.inner).token = None;
                self.fail(e.to_string(), now, None);
            }
        }
    }

    fn fail(&mut self, message: String, now: Instant, live: Option<Duration>) {
        let delay = self.backoff.fail(live, now);
        self.sup.stats.crash(&self.slot.id, now);
        tracing::warn!(stream = %self.slot.id, retry_in = ?delay, error = %message, "ffmpeg failed");
        self.status.last_error = Some(message);
        self.set_state(State::Backoff);
    }

    /// FFmpeg exited on its own.
    fn exited(&mut self, status: Option<std::process::ExitStatus>) {
        let Some(run) = self.run.take() else {
            return;
        };
        let tail = run.proc.log_tail(LOG_TAIL);
        self.status.log = tail.clone();
        self.status.pid = None;
        self.status.spawned_at_ms = None;
        let last = tail.last().cloned().unwrap_or_default();
        let code = status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown status".into());
        let now = Instant::now();
        let live = run.live_since.map(|t| now.duration_since(t));
        // Exiting while wanted is a failure; during the grace period, or
        // after an admin stop, it is just the end.
        let wanted = run.unwanted_since.is_none()
            && matches!(self.status.state, State::Starting | State::Live);
        if wanted && run.relay.is_some() {
            // A relay ends when its owner stops serving (died, moved the
            // stream): claim again at once rather than back off.
            let message = format!(
                "relay from host {} ended ({code}): {last}",
                run.relay.as_deref().unwrap_or_default()
            );
            tracing::info!(stream = %self.slot.id, "{message}");
            self.status.last_error = Some(message);
            self.set_state(State::Idle);
        } else if wanted {
            let delay = self.backoff.fail(live, now);
            self.sup.stats.crash(&self.slot.id, now);
            let message = format!("ffmpeg exited ({code}): {last}");
            tracing::warn!(stream = %self.slot.id, retry_in = ?delay, error = %message, "ffmpeg failed");
            self.status.last_error = Some(message);
            self.set_state(State::Backoff);
        } else {
            tracing::info!(stream = %self.slot.id, "ffmpeg exited ({code})");
            self.set_state(State::Idle);
        }
        self.publish(true);
    }

    async fn stop_process(&mut self) {
        if let Some(run) = self.run.take() {
            tracing::info!(stream = %self.slot.id, pid = run.proc.pid, "stopping ffmpeg");
            self.status.log = run.proc.log_tail(LOG_TAIL);
            run.proc.stop().await;
        }
        self.status.pid = None;
        self.status.spawned_at_ms = None;
        self.publish(true);
    }
}
