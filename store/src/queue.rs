//! The write queue of a remote database: bounded, in order, retried until each write lands.
//!
//! One worker task applies the writes one after the other. While the
//! database answers, a caller waits for its own write and gets its outcome.
//! When a write fails for a connectivity reason the store turns degraded:
//! that write and every queued one are acknowledged (they are kept, in
//! order, and retried with backoff), new writes are acknowledged as soon as
//! they are queued, and the queue's bounds turn further writes away. The
//! store is healthy again once the queue is empty and the database answered.
//! Writes must therefore be idempotent: a write whose answer was lost is
//! applied again.
//!
//! Nothing acknowledged is lost silently. A write the database refuses
//! (it answered with an error) goes back to its caller when one waits for
//! it; an acknowledged one is tried [`REFUSAL_TRIES`] times, then dropped,
//! logged at error level with its collection and key, and counted in the
//! status ([`Status::refused`], [`Status::last_refusal`]). Refused
//! credentials or privileges ([`Failure::Auth`]) are neither: the store
//! turns degraded saying so, keeps the acknowledged writes and retries them
//! after backoff (an operator may fix the credentials), and a write made
//! while the store was healthy gets the error instead of being queued.

use crate::error::StoreError;
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{oneshot, watch, Notify};

/// First pause after a failure; doubles up to the configured maximum.
/// 100 ms: a database restarting on the same host is back within that.
const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// Tries given to an acknowledged write the database refuses before it is
/// dropped (and counted). 3, with the usual backoff between them (100 ms,
/// then 200 ms when the database has been answering): they outlast a
/// momentary refusal (say, two upserts racing on a unique index) without
/// holding the queue up for long.
pub(crate) const REFUSAL_TRIES: u32 = 3;

/// Why an operation failed.
pub(crate) enum Failure {
    /// The database did not answer (down, unreachable, timed out, stepping
    /// down): retry later.
    Transient(String),
    /// The database refused the credentials, or a privilege the operation
    /// needs: what the store was doing and the database's answer (the
    /// queue makes it a [`StoreError::AuthFailed`]). Not an outage, but an
    /// operator may fix it: acknowledged writes are kept and retried.
    Auth(String),
    /// The database answered with an error: retrying will not help.
    Permanent(StoreError),
}

/// The database side of the queue.
#[async_trait]
pub(crate) trait Sink: Send + Sync + 'static {
    /// One write.
    type Op: Send + Sync + 'static;
    /// Applies one write; must be idempotent.
    async fn apply(&self, op: &Self::Op) -> Result<(), Failure>;
    /// Checks that the database answers; the first success also prepares it
    /// (indexes).
    async fn probe(&self) -> Result<(), Failure>;
    /// Names a write for logs and the health: its collection and key(s).
    fn describe(&self, op: &Self::Op) -> String;
}

/// What `health`, `flush` and `open` look at.
#[derive(Debug, Clone, Default)]
pub(crate) struct Status {
    /// Writes waiting or being applied.
    pub queued: usize,
    /// Why the store is degraded.
    pub degraded: Option<String>,
    /// Whether the database has answered a probe once.
    pub connected: bool,
    /// Acknowledged writes the database refused [`REFUSAL_TRIES`] times
    /// since the store opened, and that are therefore lost.
    pub refused: u64,
    /// The last of them: which write, and the database's answer.
    pub last_refusal: Option<String>,
}

struct Entry<Op> {
    op: Op,
    bytes: usize,
    waiter: Option<oneshot::Sender<Result<(), StoreError>>>,
    /// Times the database refused this (acknowledged) write.
    refusals: u32,
}

struct State<Op> {
    items: VecDeque<Entry<Op>>,
    /// Bytes in `items` and in flight.
    bytes: usize,
    /// The worker is applying one write taken from `items`.
    in_flight: bool,
    degraded: Option<String>,
    connected: bool,
    closed: bool,
    refused: u64,
    last_refusal: Option<String>,
}

struct Shared<Op> {
    state: Mutex<State<Op>>,
    wake: Notify,
    status: watch::Sender<Status>,
    target: String,
    limit: usize,
    limit_bytes: usize,
}

impl<Op> Shared<Op> {
    fn lock(&self) -> MutexGuard<'_, State<Op>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes the state (call with the lock held, after each change).
    fn publish(&self, st: &State<Op>) {
        self.status.send_replace(Status {
            queued: st.items.len() + usize::from(st.in_flight),
            degraded: st.degraded.clone(),
            connected: st.connected,
            refused: st.refused,
            last_refusal: st.last_refusal.clone(),
        });
    }

    fn auth_error(&self, detail: String) -> StoreError {
        StoreError::AuthFailed {
            target: self.target.clone(),
            detail,
        }
    }
}

/// The queue's handle, owned by the store. Dropping it lets the worker
/// finish the queued writes (while the database answers) and stop.
pub(crate) struct Queue<Op> {
    shared: Arc<Shared<Op>>,
}

impl<Op: Send + Sync + 'static> Queue<Op> {
    /// Starts the worker (on the current Tokio runtime).
    pub(crate) fn start<S: Sink<Op = Op>>(
        sink: Arc<S>,
        target: String,
        limit: usize,
        limit_bytes: usize,
        op_timeout: Duration,
        retry_max: Duration,
    ) -> Self {
        let (status, _) = watch::channel(Status::default());
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                items: VecDeque::new(),
                bytes: 0,
                in_flight: false,
                degraded: None,
                connected: false,
                closed: false,
                refused: 0,
                last_refusal: None,
            }),
            wake: Notify::new(),
            status,
            target,
            limit,
            limit_bytes,
        });
        let worker = Worker {
            sink,
            shared: shared.clone(),
            op_timeout,
            retry_max,
            backoff: MIN_BACKOFF,
        };
        tokio::spawn(worker.run());
        Queue { shared }
    }

    /// The current status.
    pub(crate) fn status(&self) -> Status {
        self.shared.status.borrow().clone()
    }

    /// Queues a write. Healthy: returns the write's outcome. Degraded (or
    /// when the write fails for a connectivity reason): returns `Ok` once it
    /// is queued. Full: `QueueFull`.
    pub(crate) async fn submit(&self, op: Op, bytes: usize) -> Result<(), StoreError> {
        let rx = {
            let mut st = self.shared.lock();
            if st.closed {
                return Err(StoreError::Closed {
                    target: self.shared.target.clone(),
                });
            }
            let queued = st.items.len() + usize::from(st.in_flight);
            if queued >= self.shared.limit || st.bytes + bytes > self.shared.limit_bytes {
                return Err(StoreError::QueueFull {
                    target: self.shared.target.clone(),
                    queued,
                    queued_bytes: st.bytes,
                    limit: self.shared.limit,
                    limit_bytes: self.shared.limit_bytes,
                });
            }
            let (waiter, rx) = if st.degraded.is_some() || !st.connected {
                (None, None)
            } else {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            };
            st.items.push_back(Entry {
                op,
                bytes,
                waiter,
                refusals: 0,
            });
            st.bytes += bytes;
            self.shared.publish(&st);
            rx
        };
        self.shared.wake.notify_one();
        match rx {
            None => Ok(()),
            Some(rx) => rx.await.map_err(|_| StoreError::Closed {
                target: self.shared.target.clone(),
            })?,
        }
    }

    /// `Ok` when reads may go to the database, else why not.
    pub(crate) fn readable(&self) -> Result<(), StoreError> {
        let st = self.status();
        let reason = match (st.degraded, st.connected) {
            (Some(reason), _) => reason,
            (None, false) => "not connected yet".to_string(),
            (None, true) => return Ok(()),
        };
        Err(StoreError::Unavailable {
            target: self.shared.target.clone(),
            reason,
        })
    }

    /// A read found the database unreachable (or refusing the credentials):
    /// turn degraded and let the worker probe until it answers.
    pub(crate) fn report_degraded(&self, reason: String) {
        let mut st = self.shared.lock();
        st.degraded = Some(reason);
        self.shared.publish(&st);
        drop(st);
        self.shared.wake.notify_one();
    }

    /// Waits until nothing is queued.
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        let mut rx = self.shared.status.subscribe();
        rx.wait_for(|s| s.queued == 0)
            .await
            .map(|_| ())
            .map_err(|_| StoreError::Closed {
                target: self.shared.target.clone(),
            })
    }

    /// Waits up to `limit` for the first probe to finish either way.
    pub(crate) async fn wait_first_probe(&self, limit: Duration) {
        let mut rx = self.shared.status.subscribe();
        let first = rx.wait_for(|s| s.connected || s.degraded.is_some());
        // Timing out just means opening returns a store still connecting.
        let _ = tokio::time::timeout(limit, first).await;
    }
}

impl<Op> Drop for Queue<Op> {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

async fn timed<F: std::future::Future<Output = Result<(), Failure>>>(
    limit: Duration,
    f: F,
) -> Result<(), Failure> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Transient(format!(
            "no answer within {} ms",
            limit.as_millis()
        ))),
    }
}

/// The worker: applies queued writes in order, probing while degraded.
struct Worker<S: Sink> {
    sink: Arc<S>,
    shared: Arc<Shared<S::Op>>,
    op_timeout: Duration,
    retry_max: Duration,
    /// The pause after the next failure: [`MIN_BACKOFF`] after a success,
    /// doubling up to `retry_max`.
    backoff: Duration,
}

/// What the worker does next.
enum Step<Op> {
    /// Check that the database answers: not connected yet, or degraded
    /// with nothing queued.
    Probe,
    /// Apply this write, taken from the queue (now in flight).
    Apply(Entry<Op>),
    /// Nothing to do until a write arrives, a read reports trouble, or the
    /// store closes.
    Wait,
}

impl<S: Sink> Worker<S> {
    /// Runs until the store closes (and its queue is empty, or the
    /// database unreachable).
    async fn run(mut self) {
        while let Some(step) = self.next_step() {
            match step {
                Step::Probe => self.probe().await,
                Step::Apply(entry) => self.apply(entry).await,
                Step::Wait => self.shared.wake.notified().await,
            }
        }
    }

    /// The next step; `None` once the store is closed and nothing queued
    /// can land (queued writes left then are logged as lost).
    fn next_step(&self) -> Option<Step<S::Op>> {
        let mut st = self.shared.lock();
        if st.closed && (st.items.is_empty() || st.degraded.is_some()) {
            if !st.items.is_empty() {
                tracing::error!(
                    store = %self.shared.target,
                    lost = st.items.len(),
                    reason = st.degraded.as_deref().unwrap_or(""),
                    "store closed while degraded: queued writes dropped"
                );
            }
            return None;
        }
        if !st.connected || (st.degraded.is_some() && st.items.is_empty()) {
            return Some(Step::Probe);
        }
        match st.items.pop_front() {
            Some(entry) => {
                st.in_flight = true;
                Some(Step::Apply(entry))
            }
            None => Some(Step::Wait),
        }
    }

    /// Probes the database: connected (and healthy when nothing is
    /// queued) once it answers, else degraded until a later probe.
    async fn probe(&mut self) {
        let shared = &*self.shared;
        match timed(self.op_timeout, self.sink.probe()).await {
            Ok(()) => {
                answered(shared);
                self.backoff = MIN_BACKOFF;
            }
            Err(Failure::Permanent(e)) => {
                // The database answered: it is reachable. Whatever it
                // refused (say, an index) must not stop the store.
                tracing::error!(store = %shared.target, error = %e, "store preparation failed");
                answered(shared);
            }
            Err(Failure::Auth(detail)) => {
                degrade_auth(shared, shared.auth_error(detail).to_string());
                self.pause().await;
            }
            Err(Failure::Transient(reason)) => {
                {
                    let mut st = shared.lock();
                    if st.degraded.is_none() {
                        tracing::warn!(store = %shared.target, %reason, "store degraded");
                    }
                    st.degraded = Some(reason);
                    shared.publish(&st);
                }
                self.pause().await;
            }
        }
    }

    /// Applies the write in flight and settles its outcome.
    async fn apply(&mut self, entry: Entry<S::Op>) {
        match timed(self.op_timeout, self.sink.apply(&entry.op)).await {
            Ok(()) => self.applied(entry),
            Err(Failure::Permanent(err)) => self.refused(entry, err).await,
            Err(Failure::Auth(detail)) => self.auth_refused(entry, detail).await,
            Err(Failure::Transient(reason)) => self.unreachable(entry, reason).await,
        }
    }

    /// The write landed: its caller (if waiting) is told; an emptied queue
    /// is healthy again.
    fn applied(&mut self, mut entry: Entry<S::Op>) {
        let shared = &*self.shared;
        let mut st = shared.lock();
        st.in_flight = false;
        st.bytes -= entry.bytes;
        if st.items.is_empty() && st.degraded.take().is_some() {
            tracing::info!(store = %shared.target, "store healthy again: queued writes applied");
        }
        shared.publish(&st);
        drop(st);
        if let Some(w) = entry.waiter.take() {
            // The caller may have gone away; the write is done anyway.
            let _ = w.send(Ok(()));
        }
        self.backoff = MIN_BACKOFF;
    }

    /// The database refused the write: a waiting caller gets the refusal;
    /// an acknowledged write is tried again [`REFUSAL_TRIES`] times in all,
    /// then dropped, logged and counted.
    async fn refused(&mut self, mut entry: Entry<S::Op>, err: StoreError) {
        let shared = &*self.shared;
        if let Some(w) = entry.waiter.take() {
            // Not acknowledged yet: the caller gets the refusal.
            settle(shared, entry.bytes, None);
            let _ = w.send(Err(err));
            return;
        }
        entry.refusals += 1;
        let what = self.sink.describe(&entry.op);
        if entry.refusals < REFUSAL_TRIES {
            tracing::warn!(
                store = %shared.target,
                write = %what,
                error = %err,
                tries = entry.refusals,
                "the database refused an acknowledged write: trying it again"
            );
            {
                let mut st = shared.lock();
                st.in_flight = false;
                st.items.push_front(entry);
                shared.publish(&st);
            }
            self.pause().await;
        } else {
            // Acknowledged, so the caller cannot be told: the loss
            // is logged and stays in the store's health.
            tracing::error!(
                store = %shared.target,
                write = %what,
                error = %err,
                tries = entry.refusals,
                "the database refused an acknowledged write every time: the write is LOST \
                 (counted in the store's health as refused_writes)"
            );
            settle(shared, entry.bytes, Some(format!("{what}: {err}")));
        }
    }

    /// The database refused the credentials: writes whose callers wait get
    /// the error and leave the queue; acknowledged ones stay, in order, and
    /// the store degrades until they land.
    async fn auth_refused(&mut self, entry: Entry<S::Op>, detail: String) {
        let shared = &*self.shared;
        let reason = shared.auth_error(detail.clone()).to_string();
        let mut refused = Vec::new();
        {
            let mut guard = shared.lock();
            let st = &mut *guard;
            st.in_flight = false;
            // Writes made while the store was healthy wait for their
            // outcome: they get the error and leave the queue. The
            // acknowledged ones stay, in order, for later.
            let mut kept = VecDeque::with_capacity(st.items.len() + 1);
            for mut e in std::iter::once(entry).chain(st.items.drain(..)) {
                match e.waiter.take() {
                    Some(w) => {
                        st.bytes -= e.bytes;
                        refused.push(w);
                    }
                    None => kept.push_back(e),
                }
            }
            st.items = kept;
            shared.publish(st);
        }
        degrade_auth(shared, reason);
        for w in refused {
            let _ = w.send(Err(shared.auth_error(detail.clone())));
        }
        self.pause().await;
    }

    /// The database did not answer: the store degrades, the write goes back
    /// to the head of the queue, and every waiting caller is acknowledged.
    async fn unreachable(&mut self, mut entry: Entry<S::Op>, reason: String) {
        let shared = &*self.shared;
        let mut waiters: Vec<_> = entry.waiter.take().into_iter().collect();
        {
            let mut st = shared.lock();
            if st.degraded.is_none() {
                tracing::warn!(store = %shared.target, %reason, "store degraded: writes queued");
            }
            st.degraded = Some(reason);
            st.in_flight = false;
            waiters.extend(st.items.iter_mut().filter_map(|e| e.waiter.take()));
            st.items.push_front(entry);
            shared.publish(&st);
        }
        // Kept in the queue: acknowledged.
        for w in waiters {
            let _ = w.send(Ok(()));
        }
        self.pause().await;
    }

    /// Sleeps the current backoff, then doubles it up to `retry_max`.
    async fn pause(&mut self) {
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(self.retry_max);
    }
}

/// A probe got an answer: the database is reachable, and healthy again
/// when nothing is queued.
fn answered<Op>(shared: &Shared<Op>) {
    let mut st = shared.lock();
    st.connected = true;
    if st.items.is_empty() {
        st.degraded = None;
    }
    shared.publish(&st);
}

/// The write in flight is done with (refused, or given up with `lost` as
/// its record): the database answered, so an emptied queue is healthy.
fn settle<Op>(shared: &Shared<Op>, bytes: usize, lost: Option<String>) {
    let mut st = shared.lock();
    st.in_flight = false;
    st.bytes -= bytes;
    if let Some(record) = lost {
        st.refused += 1;
        st.last_refusal = Some(record);
    }
    if st.items.is_empty() {
        st.degraded = None;
    }
    shared.publish(&st);
}

/// The database refused the credentials: degraded (the worker probes, or
/// retries the acknowledged writes, after backoff), logged once per reason.
fn degrade_auth<Op>(shared: &Shared<Op>, reason: String) {
    let mut st = shared.lock();
    if st.degraded.as_deref() != Some(reason.as_str()) {
        tracing::error!(
            store = %shared.target,
            %reason,
            queued = st.items.len(),
            "store degraded: the database refused the credentials; \
             queued writes are kept and retried until they are fixed"
        );
    }
    st.degraded = Some(reason);
    shared.publish(&st);
}

#[cfg(test)]
mod tests {
    //! The queue's state machine against a scripted database.

    use super::*;
    use std::collections::HashMap;
    use std::time::Instant;

    /// How the fake database answers.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Answer {
        Ok,
        Down,
        Auth,
    }

    struct Fake {
        answer: Mutex<Answer>,
        /// Writes the database refuses, whatever `answer` says.
        refuse: Mutex<Vec<u32>>,
        applied: Mutex<Vec<u32>>,
        /// Times each write was tried, and refused.
        calls: Mutex<HashMap<u32, u32>>,
        refusals: Mutex<HashMap<u32, u32>>,
    }

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    impl Fake {
        fn new(answer: Answer) -> Arc<Fake> {
            Arc::new(Fake {
                answer: Mutex::new(answer),
                refuse: Mutex::new(Vec::new()),
                applied: Mutex::new(Vec::new()),
                calls: Mutex::new(HashMap::new()),
                refusals: Mutex::new(HashMap::new()),
            })
        }
        fn set(&self, answer: Answer) {
            *lock(&self.answer) = answer;
        }
        fn refuse(&self, op: u32) {
            lock(&self.refuse).push(op);
        }
        fn applied(&self) -> Vec<u32> {
            lock(&self.applied).clone()
        }
        fn calls(&self, op: u32) -> u32 {
            lock(&self.calls).get(&op).copied().unwrap_or(0)
        }
        fn refusals(&self, op: u32) -> u32 {
            lock(&self.refusals).get(&op).copied().unwrap_or(0)
        }
        fn failure(&self) -> Option<Failure> {
            match *lock(&self.answer) {
                Answer::Ok => None,
                Answer::Down => Some(Failure::Transient("fake: connection refused".into())),
                Answer::Auth => Some(Failure::Auth(
                    "ping: Command failed: Error code 18 (AuthenticationFailed): Authentication failed."
                        .into(),
                )),
            }
        }
    }

    #[async_trait]
    impl Sink for Fake {
        type Op = u32;

        async fn apply(&self, op: &u32) -> Result<(), Failure> {
            *lock(&self.calls).entry(*op).or_default() += 1;
            if let Some(f) = self.failure() {
                return Err(f);
            }
            if lock(&self.refuse).contains(op) {
                *lock(&self.refusals).entry(*op).or_default() += 1;
                return Err(Failure::Permanent(StoreError::Invalid {
                    what: "fake write",
                    message: format!("write {op}: document failed validation"),
                }));
            }
            lock(&self.applied).push(*op);
            Ok(())
        }

        async fn probe(&self) -> Result<(), Failure> {
            self.failure().map_or(Ok(()), Err)
        }

        fn describe(&self, op: &u32) -> String {
            format!("write {op} (collection fake)")
        }
    }

    fn start(sink: &Arc<Fake>) -> Queue<u32> {
        Queue::start(
            sink.clone(),
            "fake database".into(),
            100,
            1 << 20,
            Duration::from_secs(2),
            Duration::from_millis(50),
        )
    }

    /// Waits (up to 5 s) until `f` holds.
    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while !f() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "timed out: {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn flushed(q: &Queue<u32>) {
        tokio::time::timeout(Duration::from_secs(5), q.flush())
            .await
            .expect("flush timed out")
            .expect("flush");
    }

    fn healthy(q: &Queue<u32>) -> bool {
        let st = q.status();
        st.connected && st.degraded.is_none()
    }

    #[tokio::test]
    async fn an_acknowledged_write_the_database_refuses_is_counted_not_lost_silently() {
        let db = Fake::new(Answer::Down);
        let q = start(&db);
        until("degraded", || q.status().degraded.is_some()).await;
        // Degraded: acknowledged once queued.
        q.submit(1, 10).await.expect("acknowledged");
        q.submit(2, 10).await.expect("acknowledged");
        assert_eq!(q.status().queued, 2);

        db.refuse(1);
        db.set(Answer::Ok);
        flushed(&q).await;
        until("healthy", || healthy(&q)).await;

        assert_eq!(
            db.refusals(1),
            REFUSAL_TRIES,
            "retried a bounded number of times"
        );
        assert_eq!(db.applied(), [2], "the writes behind it still land");
        let st = q.status();
        assert_eq!(st.refused, 1, "{st:?}");
        let last = st.last_refusal.expect("the refusal is recorded");
        assert!(
            last.contains("write 1 (collection fake)") && last.contains("failed validation"),
            "{last}"
        );
        assert_eq!(st.queued, 0);
    }

    #[tokio::test]
    async fn a_write_refused_while_healthy_goes_back_to_its_caller() {
        let db = Fake::new(Answer::Ok);
        let q = start(&db);
        until("healthy", || healthy(&q)).await;
        db.refuse(5);
        match q.submit(5, 10).await {
            Err(StoreError::Invalid { message, .. }) => {
                assert!(message.contains("failed validation"), "{message}")
            }
            other => panic!("expected the refusal, got {other:?}"),
        }
        assert_eq!(db.calls(5), 1, "not retried: the caller knows");
        q.submit(6, 10).await.expect("the next write lands");
        assert_eq!(db.applied(), [6]);
        let st = q.status();
        assert_eq!((st.refused, st.last_refusal), (0, None), "nothing was lost");
        assert!(healthy(&q));
    }

    #[tokio::test]
    async fn an_outage_acknowledges_the_write_and_keeps_it() {
        let db = Fake::new(Answer::Ok);
        let q = start(&db);
        until("healthy", || healthy(&q)).await;
        db.set(Answer::Down);
        q.submit(1, 10).await.expect("acknowledged: kept for later");
        let reason = q.status().degraded.expect("degraded");
        assert!(reason.contains("connection refused"), "{reason}");
        db.set(Answer::Ok);
        flushed(&q).await;
        assert_eq!(db.applied(), [1]);
    }

    #[tokio::test]
    async fn refused_credentials_degrade_the_store_and_keep_the_acknowledged_writes() {
        let db = Fake::new(Answer::Ok);
        let q = start(&db);
        until("healthy", || healthy(&q)).await;

        // Healthy: the caller waits for its write and gets the error, not
        // an acknowledgement and not "unavailable".
        db.set(Answer::Auth);
        match q.submit(1, 10).await {
            Err(e @ StoreError::AuthFailed { .. }) => {
                assert!(e.to_string().contains("authentication failed"), "{e}")
            }
            other => panic!("expected AuthFailed, got {other:?}"),
        }
        let st = q.status();
        let reason = st.degraded.expect("degraded");
        assert!(
            reason.contains("fake database: authentication failed"),
            "{reason}"
        );
        assert_eq!(st.queued, 0, "the refused write was not kept");

        // Degraded: acknowledged, kept and retried, never dropped.
        q.submit(2, 10).await.expect("acknowledged");
        q.submit(3, 10).await.expect("acknowledged");
        until("several retries", || db.calls(2) >= REFUSAL_TRIES + 2).await;
        let st = q.status();
        assert_eq!(st.queued, 2, "{st:?}");
        assert_eq!(st.refused, 0, "{st:?}");
        assert!(st
            .degraded
            .is_some_and(|r| r.contains("authentication failed")));
        assert!(matches!(
            q.readable(),
            Err(StoreError::Unavailable { reason, .. }) if reason.contains("authentication failed")
        ));

        // The credentials are fixed: the kept writes land, in order.
        db.set(Answer::Ok);
        flushed(&q).await;
        until("healthy", || healthy(&q)).await;
        assert_eq!(db.applied(), [2, 3]);
        assert_eq!(q.status().refused, 0);
    }

    #[tokio::test]
    async fn refused_credentials_at_start_queue_the_writes_until_fixed() {
        let db = Fake::new(Answer::Auth);
        let q = start(&db);
        until("degraded", || q.status().degraded.is_some()).await;
        let st = q.status();
        assert!(!st.connected);
        assert!(st
            .degraded
            .is_some_and(|r| r.contains("authentication failed")));
        q.submit(1, 10).await.expect("acknowledged");
        until("retries", || q.status().queued == 1).await;
        db.set(Answer::Ok);
        flushed(&q).await;
        assert_eq!(db.applied(), [1]);
        until("healthy", || healthy(&q)).await;
    }
}
