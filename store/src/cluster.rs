//! Coordination of several DSS hosts sharing one MongoDB: leases (who runs
//! a stream, who refreshes a provider) and the hosts' own records.
//!
//! A lease is one document per name, changed only by atomic
//! find-and-modify with majority writes, and judged by the *server's*
//! clock (`$$NOW` in the filter, `$currentDate` in the update): no host's
//! clock is ever compared with another's. Its `epoch` grows each time it
//! is acquired, so a stale holder can be told apart (fencing).
//!
//! The query the documentation recommends is an aggregation-pipeline
//! update; CongoDB (the test server) refuses pipeline updates, so the
//! expiry is decided in the *filter* instead (`$expr` with `$$NOW`), and
//! the update is a classic one (`$set`, `$inc`, `$currentDate`). Both are
//! evaluated atomically by the server on one document, which is what makes
//! a lease sound; a real MongoDB (4.2+) runs the same query. A racing
//! upsert that loses gets a duplicate-key error: read as "held by another".
//!
//! Holders decide they lost a lease on their own monotonic clock: a lease
//! acquired or renewed by a request *sent* at `t` is theirs until
//! `t + ttl − margin` at most ([`Lease::valid_for`]), whatever the answer's
//! delay.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A lease as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// What it is for: `stream/<id>`, `provider/<id>`.
    pub name: String,
    /// The host that holds it (its `node_id`).
    pub owner: String,
    /// How many times it was acquired (renewals keep it).
    pub epoch: u64,
    /// When it was last acquired or renewed, server clock, ms since epoch.
    pub renewed_ms: u64,
    /// How long a renewal holds, in ms.
    pub ttl_ms: u64,
}

impl Lease {
    /// Whether it has expired at server time `now_ms`.
    pub fn expired_at(&self, now_ms: u64) -> bool {
        self.renewed_ms.saturating_add(self.ttl_ms) < now_ms
    }

    /// How long a holder may act on it after sending the request that
    /// acquired or renewed it: `ttl − margin`.
    pub fn valid_for(ttl: Duration, margin: Duration) -> Duration {
        ttl.saturating_sub(margin)
    }
}

/// What an acquisition found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// The caller holds it now (new epoch).
    Held(Lease),
    /// Another host holds it (its record, when it could be read).
    Busy(Option<Lease>),
}

/// A host of the cluster, as it last reported itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Its `node_id`.
    pub id: String,
    /// Where other hosts pull its streams: `rtmp://HOST:PORT/APP`.
    pub advertise_rtmp: String,
    /// Its API base URL, for operators.
    #[serde(default)]
    pub api: String,
    /// FFmpeg processes of streams it runs.
    #[serde(default)]
    pub running: u32,
    /// Streams it owns.
    #[serde(default)]
    pub owned: u32,
    /// When it reported, server clock (ms since epoch); set by the store.
    #[serde(default)]
    pub seen_ms: u64,
    /// When its process started (its own clock, for operators).
    #[serde(default)]
    pub started_ms: u64,
    /// A secret of the host's own (kept in its state directory): while
    /// this record is live, a host reporting the same `id` with another
    /// key is refused ([`crate::StoreError::NodeTaken`]), so that two hosts
    /// never act under one name. A restarted host keeps its key.
    #[serde(default)]
    pub key: String,
    /// How long after `seen_ms` the record counts as live (the host's
    /// lease time), in ms; 0 for records of hosts that did not say.
    #[serde(default)]
    pub live_ms: u64,
}
