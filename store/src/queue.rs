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

use crate::error::StoreError;
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{oneshot, watch, Notify};

/// First pause after a failure; doubles up to the configured maximum.
/// 100 ms: a database restarting on the same host is back within that.
const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// Why an operation failed.
pub(crate) enum Failure {
    /// The database did not answer (down, unreachable, timed out, stepping
    /// down): retry later.
    Transient(String),
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
}

struct Entry<Op> {
    op: Op,
    bytes: usize,
    waiter: Option<oneshot::Sender<Result<(), StoreError>>>,
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
        });
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
            }),
            wake: Notify::new(),
            status,
            target,
            limit,
            limit_bytes,
        });
        tokio::spawn(run(sink, shared.clone(), op_timeout, retry_max));
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
            st.items.push_back(Entry { op, bytes, waiter });
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

    /// A read found the database unreachable: turn degraded and let the
    /// worker probe until it answers.
    pub(crate) fn report_unreachable(&self, reason: String) {
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
async fn run<S: Sink>(
    sink: Arc<S>,
    shared: Arc<Shared<S::Op>>,
    op_timeout: Duration,
    retry_max: Duration,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let (probe, entry) = {
            let mut st = shared.lock();
            if st.closed && (st.items.is_empty() || st.degraded.is_some()) {
                if !st.items.is_empty() {
                    tracing::error!(
                        store = %shared.target,
                        lost = st.items.len(),
                        "store closed while its database is unreachable: queued writes dropped"
                    );
                }
                return;
            }
            let probe = !st.connected || (st.degraded.is_some() && st.items.is_empty());
            let entry = if probe { None } else { st.items.pop_front() };
            if entry.is_some() {
                st.in_flight = true;
            }
            (probe, entry)
        };

        if probe {
            match timed(op_timeout, sink.probe()).await {
                Ok(()) => {
                    let mut st = shared.lock();
                    st.connected = true;
                    if st.items.is_empty() {
                        st.degraded = None;
                    }
                    shared.publish(&st);
                    backoff = MIN_BACKOFF;
                }
                Err(Failure::Permanent(e)) => {
                    // The database answered: it is reachable. Whatever it
                    // refused (say, an index) must not stop the store.
                    tracing::error!(store = %shared.target, error = %e, "store preparation failed");
                    let mut st = shared.lock();
                    st.connected = true;
                    if st.items.is_empty() {
                        st.degraded = None;
                    }
                    shared.publish(&st);
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
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(retry_max);
                }
            }
            continue;
        }

        let Some(mut entry) = entry else {
            // Nothing to do until a write arrives, a read reports trouble,
            // or the store closes.
            shared.wake.notified().await;
            continue;
        };

        match timed(op_timeout, sink.apply(&entry.op)).await {
            Ok(()) => {
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
                backoff = MIN_BACKOFF;
            }
            Err(Failure::Permanent(err)) => {
                let mut st = shared.lock();
                st.in_flight = false;
                st.bytes -= entry.bytes;
                if st.items.is_empty() {
                    st.degraded = None;
                }
                shared.publish(&st);
                drop(st);
                match entry.waiter.take() {
                    Some(w) => {
                        let _ = w.send(Err(err));
                    }
                    None => tracing::error!(
                        store = %shared.target,
                        error = %err,
                        "a queued write was refused by the database and is dropped"
                    ),
                }
            }
            Err(Failure::Transient(reason)) => {
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
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(retry_max);
            }
        }
    }
}
