//! A stream task's decisions, as a pure function of what it knows.
//!
//! [`decide`] looks at [`Facts`] (what is wanted, what runs, the clock, the
//! restart pacing, and what the start's steps found so far in this pass)
//! and names the one next [`Action`]. The task ([`super::task`]) gathers
//! the facts, carries the action out, and asks again until the answer is
//! [`Action::Wait`] or an action that ends the pass. Everything timed (the
//! grace period, the start timeout, stale detection, backoff, the cluster's
//! holds) is decided here against an injected `now`, so it is unit-tested
//! with a fake clock and no process, lock or store.

use crate::cluster::Role;
use crate::lifecycle::State;
use std::time::{Duration, Instant};

/// How often a running FFmpeg's progress is checked (stall detection
/// needs no finer grain than the stale timeout's seconds).
pub(super) const CHECK_RUNNING: Duration = Duration::from_secs(1);

/// The timing rules (from `[ffmpeg]`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Timings {
    /// How long an unwatched FFmpeg keeps running (`grace_seconds`).
    pub grace: Duration,
    /// How long a spawned FFmpeg may take to publish.
    pub start_timeout: Duration,
    /// How long a live FFmpeg may go without progress.
    pub stale: Duration,
}

/// What the task knows when it decides.
#[derive(Debug, Clone)]
pub(super) struct Facts {
    /// The pass's clock.
    pub now: Instant,
    /// The stream's state as the API shows it.
    pub state: State,
    /// Listed and online; wanted by a viewer, a lease, a pin or for itself
    /// (auto start, recording); not refused; and, for a phone's stream,
    /// its phone connected.
    pub wanted: bool,
    /// Wanted only for itself, by nobody watching or pinning it.
    pub auto_only: bool,
    /// The connected phone's session (phones' streams).
    pub ingest: Option<u64>,
    /// The admin stop counter.
    pub stop_generation: u64,
    /// `on_publish` with the running FFmpeg's token was seen.
    pub published: bool,
    /// A retry after a failure is pending (the backoff's delay, as opposed
    /// to the mere spacing of spawns).
    pub retry_pending: bool,
    /// The earliest a spawn may happen (`None`: now).
    pub next_allowed: Option<Instant>,
    /// A free FFmpeg slot (`[ffmpeg] max_running`).
    pub capacity_free: bool,
    /// Cluster mode, for a stream that is not a phone's: it runs on the
    /// host holding its lease, and is relayed elsewhere.
    pub clustered: bool,
    /// What runs, if anything.
    pub run: Option<RunFacts>,
    /// What the start's steps found so far in this pass.
    pub start: StartFacts,
}

/// What the task knows of the FFmpeg it runs.
#[derive(Debug, Clone)]
pub(super) struct RunFacts {
    /// When it was spawned.
    pub spawned_at: Instant,
    /// When its publish was seen.
    pub live_since: Option<Instant>,
    /// Since when nobody wants it (the grace period runs).
    pub unwanted_since: Option<Instant>,
    /// The admin stop counter when it was spawned.
    pub stop_generation: u64,
    /// The phone session it reads (phones' streams).
    pub ingest: Option<u64>,
    /// Cluster mode: this host still holds the stream's lease (always true
    /// outside cluster mode, for relays and for phones' streams).
    pub lease_held: bool,
    /// FFmpeg's last reported progress.
    pub last_progress: Option<Instant>,
}

/// What the start's steps found in this pass.
#[derive(Debug, Clone, Default)]
pub(super) struct StartFacts {
    /// Cluster mode: who runs the stream (`None`: not asked yet).
    pub claim: Option<Role>,
    /// The source checked and resolved (`None`: not yet).
    pub prepared: Option<Prepared>,
}

/// What preparing the source gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Prepared {
    /// Ready to spawn.
    Ready,
    /// A phone's stream whose phone sent no media yet (the ingest wakes
    /// the task when it does).
    NoFeeds,
    /// The FFmpeg policy refuses it: why.
    Refused(String),
    /// It failed otherwise (a name that does not resolve, say): why.
    Failed(String),
}

/// Why a running FFmpeg is stopped without it being a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// The phone left or reconnected: its inputs are gone.
    SessionChanged,
    /// An admin stop.
    Admin,
    /// Cluster mode: the lease was not renewed in time or was taken over.
    LeaseLost,
    /// Nobody wanted it for the whole grace period.
    GraceOver,
}

/// Why a running FFmpeg is stopped as a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// It did not publish within the start timeout.
    StartTimeout,
    /// No progress for the stale timeout; `live`: how long it was live.
    Stale {
        /// How long it was live.
        live: Option<Duration>,
    },
}

/// The task's next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// Stop FFmpeg, not as a failure.
    Stop(Stop),
    /// Stop FFmpeg and count a failure (backoff).
    Fail(Failure),
    /// Its publish was seen: Live, after `warmup`.
    GoLive {
        /// From spawn to publish.
        warmup: Duration,
    },
    /// Wanted again within the grace period: the grace period ends.
    Rewanted,
    /// Nobody wants it any more: the grace period begins.
    Unwanted,
    /// Live and unwanted: Stopping, for the rest of the grace period.
    EnterStopping,
    /// Not running and not wanted: forget a pending retry; Idle.
    Rest,
    /// Not before `at` (backoff, or the spacing of spawns).
    HoldBackoff(Instant),
    /// Cluster mode: ask who runs it.
    Claim,
    /// Cluster mode: wanted only for itself and run by its owner: nothing
    /// to do here but look again later.
    OnOwner,
    /// Cluster mode: relay it from its owner.
    Relay,
    /// Cluster mode: nothing can be decided now (why); not the stream's
    /// failure, so no backoff grows.
    ClusterWait(String),
    /// Check and resolve the source.
    Prepare,
    /// The policy refuses it (why): Refused until its listing changes.
    Refuse(String),
    /// Preparing failed (why): a failure, with backoff.
    FailStart(String),
    /// No free FFmpeg slot: wait for one.
    WaitCapacity,
    /// Spawn FFmpeg.
    Spawn,
    /// Nothing to do until `at` (or a command, or FFmpeg exiting).
    Wait(Option<Instant>),
}

/// The next step for a stream, given what is known.
pub(super) fn decide(f: &Facts, t: &Timings) -> Action {
    match &f.run {
        Some(run) => decide_running(f, run, t),
        None => decide_stopped(f),
    }
}

fn decide_running(f: &Facts, run: &RunFacts, t: &Timings) -> Action {
    let now = f.now;
    if run.ingest != f.ingest {
        return Action::Stop(Stop::SessionChanged);
    }
    if run.stop_generation != f.stop_generation {
        return Action::Stop(Stop::Admin);
    }
    if !run.lease_held {
        return Action::Stop(Stop::LeaseLost);
    }
    if f.published && f.state == State::Starting {
        return Action::GoLive {
            warmup: now.saturating_duration_since(run.spawned_at),
        };
    }
    let mut wake = now + CHECK_RUNNING;
    if f.wanted {
        if run.unwanted_since.is_some() || f.state == State::Stopping {
            return Action::Rewanted;
        }
    } else {
        let Some(since) = run.unwanted_since else {
            return Action::Unwanted;
        };
        if now.saturating_duration_since(since) >= t.grace {
            return Action::Stop(Stop::GraceOver);
        }
        if f.state == State::Live {
            return Action::EnterStopping;
        }
        wake = wake.min(since + t.grace);
    }
    if f.state == State::Starting {
        if now.saturating_duration_since(run.spawned_at) >= t.start_timeout {
            return Action::Fail(Failure::StartTimeout);
        }
        wake = wake.min(run.spawned_at + t.start_timeout);
    }
    if matches!(f.state, State::Live | State::Stopping) {
        let reference = run.last_progress.max(run.live_since).unwrap_or(now);
        if now.saturating_duration_since(reference) >= t.stale {
            let live = run.live_since.map(|at| now.saturating_duration_since(at));
            return Action::Fail(Failure::Stale { live });
        }
    }
    Action::Wait(Some(wake))
}

fn decide_stopped(f: &Facts) -> Action {
    if !f.wanted {
        return Action::Rest;
    }
    if let Some(at) = f.next_allowed.filter(|at| *at > f.now) {
        return Action::HoldBackoff(at);
    }
    if f.clustered {
        match &f.start.claim {
            None => return Action::Claim,
            Some(Role::Owner) => {}
            Some(Role::Relay { .. }) if f.auto_only => return Action::OnOwner,
            Some(Role::Relay { .. }) if !f.capacity_free => return Action::WaitCapacity,
            Some(Role::Relay { .. }) => return Action::Relay,
            Some(Role::Wait(reason)) => return Action::ClusterWait(reason.clone()),
        }
    }
    match &f.start.prepared {
        None => Action::Prepare,
        Some(Prepared::NoFeeds) => Action::Wait(None),
        Some(Prepared::Refused(reason)) => Action::Refuse(reason.clone()),
        Some(Prepared::Failed(reason)) => Action::FailStart(reason.clone()),
        Some(Prepared::Ready) if !f.capacity_free => Action::WaitCapacity,
        Some(Prepared::Ready) => Action::Spawn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(10);
    const START: Duration = Duration::from_secs(15);
    const STALE: Duration = Duration::from_secs(20);

    fn timings() -> Timings {
        Timings {
            grace: GRACE,
            start_timeout: START,
            stale: STALE,
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// A wanted stream, nothing running, at `t0`.
    fn idle(t0: Instant) -> Facts {
        Facts {
            now: t0,
            state: State::Idle,
            wanted: true,
            auto_only: false,
            ingest: None,
            stop_generation: 0,
            published: false,
            retry_pending: false,
            next_allowed: None,
            capacity_free: true,
            clustered: false,
            run: None,
            start: StartFacts::default(),
        }
    }

    /// An FFmpeg spawned at `t0`, in `state`, looked at `after` later.
    fn running(t0: Instant, state: State, after: Duration) -> Facts {
        Facts {
            now: t0 + after,
            state,
            run: Some(RunFacts {
                spawned_at: t0,
                live_since: (state != State::Starting).then_some(t0 + secs(2)),
                unwanted_since: None,
                stop_generation: 0,
                ingest: None,
                lease_held: true,
                last_progress: None,
            }),
            ..idle(t0)
        }
    }

    fn run_mut(f: &mut Facts) -> &mut RunFacts {
        f.run.as_mut().expect("running")
    }

    /// Applies the pure effect of the running-state actions to the facts,
    /// as the task does, and decides again until the pass ends.
    fn settle(mut f: Facts) -> (Vec<Action>, Facts) {
        let mut seen = Vec::new();
        for _ in 0..10 {
            let a = decide(&f, &timings());
            seen.push(a.clone());
            let now = f.now;
            match a {
                Action::GoLive { .. } => {
                    f.state = State::Live;
                    run_mut(&mut f).live_since = Some(now);
                }
                Action::Rewanted => {
                    run_mut(&mut f).unwanted_since = None;
                    if f.state == State::Stopping {
                        f.state = State::Live;
                    }
                }
                Action::Unwanted => run_mut(&mut f).unwanted_since = Some(now),
                Action::EnterStopping => f.state = State::Stopping,
                _ => return (seen, f),
            }
        }
        panic!("no end to the pass: {seen:?}")
    }

    #[test]
    fn a_wanted_idle_stream_is_prepared_then_spawned() {
        let t0 = Instant::now();
        let mut f = idle(t0);
        assert_eq!(decide(&f, &timings()), Action::Prepare);
        f.start.prepared = Some(Prepared::Ready);
        assert_eq!(decide(&f, &timings()), Action::Spawn);
    }

    #[test]
    fn an_unwanted_idle_stream_rests_even_with_a_retry_pending() {
        let t0 = Instant::now();
        let f = Facts {
            wanted: false,
            retry_pending: true,
            next_allowed: Some(t0 + secs(5)),
            ..idle(t0)
        };
        assert_eq!(decide(&f, &timings()), Action::Rest);
    }

    #[test]
    fn backoff_holds_the_start_until_its_time() {
        let t0 = Instant::now();
        let mut f = Facts {
            retry_pending: true,
            next_allowed: Some(t0 + secs(4)),
            ..idle(t0)
        };
        assert_eq!(decide(&f, &timings()), Action::HoldBackoff(t0 + secs(4)));
        f.now = t0 + secs(4);
        assert_eq!(decide(&f, &timings()), Action::Prepare);
    }

    #[test]
    fn refusals_and_failures_of_preparing_are_told_apart() {
        let t0 = Instant::now();
        let mut f = idle(t0);
        f.start.prepared = Some(Prepared::Refused("file:// is not allowed".into()));
        assert_eq!(
            decide(&f, &timings()),
            Action::Refuse("file:// is not allowed".into())
        );
        f.start.prepared = Some(Prepared::Failed("no such host".into()));
        assert_eq!(
            decide(&f, &timings()),
            Action::FailStart("no such host".into())
        );
        f.start.prepared = Some(Prepared::NoFeeds);
        assert_eq!(decide(&f, &timings()), Action::Wait(None));
    }

    #[test]
    fn without_a_free_slot_it_waits_for_capacity_after_the_checks() {
        let t0 = Instant::now();
        let mut f = Facts {
            capacity_free: false,
            ..idle(t0)
        };
        // The source is checked first: a refused stream says so rather
        // than waiting for a slot it would never use.
        assert_eq!(decide(&f, &timings()), Action::Prepare);
        f.start.prepared = Some(Prepared::Refused("no".into()));
        assert_eq!(decide(&f, &timings()), Action::Refuse("no".into()));
        f.start.prepared = Some(Prepared::Ready);
        assert_eq!(decide(&f, &timings()), Action::WaitCapacity);
    }

    #[test]
    fn the_cluster_is_asked_first_and_its_answers_hold() {
        let t0 = Instant::now();
        let mut f = Facts {
            clustered: true,
            ..idle(t0)
        };
        assert_eq!(decide(&f, &timings()), Action::Claim);
        f.start.claim = Some(Role::Wait("the store is unreachable".into()));
        assert_eq!(
            decide(&f, &timings()),
            Action::ClusterWait("the store is unreachable".into())
        );
        f.start.claim = Some(Role::Owner);
        assert_eq!(decide(&f, &timings()), Action::Prepare);
        let relay = Role::Relay {
            owner: "b".into(),
            from: "rtmp://127.0.0.2:1935/dss/x".into(),
        };
        f.start.claim = Some(relay.clone());
        assert_eq!(decide(&f, &timings()), Action::Relay);
        f.capacity_free = false;
        assert_eq!(decide(&f, &timings()), Action::WaitCapacity);
        // Wanted only for itself (auto start, recording): its owner runs
        // it; nothing to relay it for here.
        f.auto_only = true;
        assert_eq!(decide(&f, &timings()), Action::OnOwner);
    }

    #[test]
    fn a_publish_makes_it_live_with_its_warmup() {
        let t0 = Instant::now();
        let mut f = running(t0, State::Starting, secs(3));
        f.published = true;
        assert_eq!(decide(&f, &timings()), Action::GoLive { warmup: secs(3) });
        let (seen, f) = settle(f);
        assert_eq!(
            seen.last(),
            Some(&Action::Wait(Some(f.now + CHECK_RUNNING)))
        );
    }

    #[test]
    fn no_publish_within_the_start_timeout_is_a_failure() {
        let t0 = Instant::now();
        let f = running(t0, State::Starting, secs(5));
        // Looked at again at the timeout, or sooner for the stall check.
        assert_eq!(
            decide(&f, &timings()),
            Action::Wait(Some(f.now + CHECK_RUNNING))
        );
        let f = running(t0, State::Starting, START - Duration::from_millis(300));
        assert_eq!(decide(&f, &timings()), Action::Wait(Some(t0 + START)));
        let f = running(t0, State::Starting, START);
        assert_eq!(decide(&f, &timings()), Action::Fail(Failure::StartTimeout));
    }

    #[test]
    fn the_grace_period_stops_an_unwatched_ffmpeg_and_a_viewer_cancels_it() {
        let t0 = Instant::now();
        let mut f = running(t0, State::Live, secs(30));
        run_mut(&mut f).last_progress = Some(f.now);
        f.wanted = false;
        let (seen, mut f) = settle(f);
        assert_eq!(
            seen,
            vec![
                Action::Unwanted,
                Action::EnterStopping,
                Action::Wait(Some(f.now + CHECK_RUNNING))
            ]
        );
        // Just before the end of the grace period it wakes at its end.
        let since = f.now;
        f.now = since + GRACE - Duration::from_millis(200);
        run_mut(&mut f).last_progress = Some(f.now);
        assert_eq!(decide(&f, &timings()), Action::Wait(Some(since + GRACE)));
        // A viewer within the grace period: Live again.
        let mut back = f.clone();
        back.wanted = true;
        let (seen, back) = settle(back);
        assert_eq!(seen[0], Action::Rewanted);
        assert_eq!(back.state, State::Live);
        assert_eq!(back.run.as_ref().and_then(|r| r.unwanted_since), None);
        // Nobody: it stops at the end of the grace period.
        f.now = since + GRACE;
        assert_eq!(decide(&f, &timings()), Action::Stop(Stop::GraceOver));
    }

    #[test]
    fn a_starting_ffmpeg_nobody_wants_is_not_marked_stopping() {
        let t0 = Instant::now();
        let mut f = running(t0, State::Starting, secs(1));
        f.wanted = false;
        let (seen, f) = settle(f);
        assert_eq!(seen[0], Action::Unwanted);
        assert_eq!(f.state, State::Starting);
    }

    #[test]
    fn a_live_ffmpeg_without_progress_is_stale() {
        let t0 = Instant::now();
        let mut f = running(t0, State::Live, secs(10));
        run_mut(&mut f).last_progress = Some(t0 + secs(9));
        assert_eq!(
            decide(&f, &timings()),
            Action::Wait(Some(f.now + CHECK_RUNNING))
        );
        // Progress stopped at 9 s; stale 20 s later.
        f.now = t0 + secs(29);
        assert_eq!(
            decide(&f, &timings()),
            Action::Fail(Failure::Stale {
                live: Some(secs(27))
            })
        );
        // No progress ever reported: counted from going live.
        run_mut(&mut f).last_progress = None;
        f.now = t0 + secs(2) + STALE;
        assert!(matches!(
            decide(&f, &timings()),
            Action::Fail(Failure::Stale { .. })
        ));
    }

    #[test]
    fn a_phone_session_change_admin_stop_and_lost_lease_stop_it_first() {
        let t0 = Instant::now();
        let mut f = running(t0, State::Live, secs(3));
        run_mut(&mut f).ingest = Some(1);
        f.ingest = Some(2);
        assert_eq!(decide(&f, &timings()), Action::Stop(Stop::SessionChanged));
        f.ingest = None;
        run_mut(&mut f).ingest = None;
        f.stop_generation = 1;
        assert_eq!(decide(&f, &timings()), Action::Stop(Stop::Admin));
        f.stop_generation = 0;
        run_mut(&mut f).lease_held = false;
        assert_eq!(decide(&f, &timings()), Action::Stop(Stop::LeaseLost));
    }
}
