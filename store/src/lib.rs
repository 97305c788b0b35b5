//! DSS metadata store: one domain-level trait ([`Store`]) with two backends
//! that behave the same, embedded SQLite (the default: one file, no server)
//! and MongoDB (when the configuration gives a `mongodb://` URL).
//!
//! What it keeps: provider listings (the host's stream-list cache, with the
//! time each was fetched), stream geotags (queried by bounding box), mobile
//! stream sessions and their GPS tracks, key/value metadata, and the latest
//! statistics snapshot of each stream; with MongoDB, the [`cluster`]
//! leases and host records of several hosts sharing it.
//!
//! MongoDB outages never stop DSS: opening the store does not wait for
//! MongoDB beyond [`StoreConfig::connect_wait_ms`]; while it is unreachable
//! writes wait in a bounded queue and are retried in order, reads fail fast
//! with [`StoreError::Unavailable`], and [`Store::health`] says
//! [`StoreHealth::Degraded`]. Every write is idempotent, so a retried write
//! never doubles a record.
//!
//! Nothing acknowledged is lost silently: a queued write MongoDB refuses
//! (it answers with an error) is tried a few times, then dropped, logged at
//! error level with its collection and key, and counted in the health
//! (`refused_writes`, `last_refusal`; the store stays degraded until it is
//! reopened). Refused credentials or privileges degrade the store with an
//! "authentication failed" reason and keep the queued writes for when they
//! are fixed; a write made while healthy gets [`StoreError::AuthFailed`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), dss_store::StoreError> {
//! let store = dss_store::open(&dss_store::StoreConfig::embedded("var/dss.sqlite")).await?;
//! println!("store: {}", store.describe());
//! store.put_kv("demo", "greeting", serde_json::json!("hello")).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod cluster;
mod config;
mod error;
mod lenient;
mod mongo;
mod queue;
mod sqlite;
mod types;

/// The BSON crate the store (and the MongoDB driver) uses.
pub use bson;
pub use config::StoreConfig;
pub use error::StoreError;
pub use types::{
    BBox, Geo, Geotag, GpsPoint, ListedStream, Listing, ListingStamp, MobileSession, NewSession,
    StatsSnapshot, StoreHealth, MAX_INT, MAX_JSON_BYTES, MAX_STREAM_BYTES,
};

use async_trait::async_trait;
use serde_json::Value;
use std::sync::Arc;

/// The store, as the host uses it (`Arc<dyn Store>`).
///
/// Writes return once the record is in the database, or, when MongoDB is
/// unreachable, once it is queued for retry. Reads see every write that
/// returned while the store was healthy.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which database, e.g. `embedded SQLite at var/dss.sqlite` or
    /// `MongoDB at 127.0.0.1:27017, database dss` (never a password).
    fn describe(&self) -> String;

    /// Healthy, or degraded with the reason and the writes still queued.
    fn health(&self) -> StoreHealth;

    /// Waits until every acknowledged write is in the database (returns at
    /// once for SQLite). Wrap it in a timeout: it waits out an outage.
    async fn flush(&self) -> Result<(), StoreError>;

    /// Stores a provider's listing, replacing the previous one.
    async fn put_listing(&self, listing: Listing) -> Result<(), StoreError>;
    /// The provider's stored listing, if any.
    async fn get_listing(&self, provider: &str) -> Result<Option<Listing>, StoreError>;
    /// Forgets the provider's listing.
    async fn delete_listing(&self, provider: &str) -> Result<(), StoreError>;
    /// When the provider's stored listing was fetched, and by what, without
    /// reading its streams (hosts of a cluster poll it).
    async fn listing_stamp(&self, provider: &str) -> Result<Option<ListingStamp>, StoreError> {
        Ok(self.get_listing(provider).await?.map(|l| ListingStamp {
            fetched_at_ms: l.fetched_at_ms,
            fingerprint: l.fingerprint,
        }))
    }

    /// Stores stream positions, replacing each stream's previous one (for
    /// repeated stream ids in one call, the last wins).
    async fn put_geotags(&self, tags: Vec<Geotag>) -> Result<(), StoreError>;
    /// Forgets the positions of these streams.
    async fn delete_geotags(&self, stream_ids: Vec<String>) -> Result<(), StoreError>;
    /// The geotags inside the box (edges included), ordered by stream id.
    async fn geotags_in(&self, bbox: BBox) -> Result<Vec<Geotag>, StoreError>;

    /// Records a new mobile session and returns its id (the given one, or a
    /// new unique one). Creating a session whose id exists keeps the stored
    /// one unchanged.
    async fn create_session(&self, session: NewSession) -> Result<String, StoreError>;
    /// Marks the session closed at `closed_ms`. The first close wins;
    /// closing an unknown session does nothing.
    async fn close_session(&self, id: &str, closed_ms: u64) -> Result<(), StoreError>;
    /// One session, if it exists.
    async fn get_session(&self, id: &str) -> Result<Option<MobileSession>, StoreError>;
    /// The sessions not closed yet, ordered by id.
    async fn active_sessions(&self) -> Result<Vec<MobileSession>, StoreError>;
    /// The stream keys (phones) whose every session closed before
    /// `before_ms`: none open, none closed since. Sorted.
    async fn phones_idle_since(&self, before_ms: u64) -> Result<Vec<String>, StoreError>;
    /// Forgets phone stream `stream_id` entirely: its sessions (those with
    /// that `stream_key`), its track, its geotag and its statistics.
    async fn forget_phone(&self, stream_id: &str) -> Result<(), StoreError>;
    /// Appends GPS points to a session's track (any order; a point whose
    /// `t_ms` is already in the track is ignored). The store does not check
    /// that the session exists.
    async fn append_points(
        &self,
        session_id: &str,
        points: Vec<GpsPoint>,
    ) -> Result<(), StoreError>;
    /// The session's track in time order, from `since_ms` (inclusive) when given.
    async fn track(
        &self,
        session_id: &str,
        since_ms: Option<u64>,
    ) -> Result<Vec<GpsPoint>, StoreError>;

    /// Sets a metadata value.
    async fn put_kv(&self, namespace: &str, key: &str, value: Value) -> Result<(), StoreError>;
    /// A metadata value, if set.
    async fn get_kv(&self, namespace: &str, key: &str) -> Result<Option<Value>, StoreError>;
    /// Removes a metadata value.
    async fn delete_kv(&self, namespace: &str, key: &str) -> Result<(), StoreError>;
    /// Every value of a namespace, ordered by key.
    async fn list_kv(&self, namespace: &str) -> Result<Vec<(String, Value)>, StoreError>;

    /// Stores statistics snapshots; each replaces its stream's previous one.
    async fn put_stats(&self, snapshots: Vec<StatsSnapshot>) -> Result<(), StoreError>;
    /// The latest snapshot of a stream, if any.
    async fn get_stats(&self, stream_id: &str) -> Result<Option<StatsSnapshot>, StoreError>;
    /// The latest snapshot of every stream, ordered by stream id.
    async fn all_stats(&self) -> Result<Vec<StatsSnapshot>, StoreError>;

    /// Whether several hosts can share this store ([`cluster`]): MongoDB
    /// yes, the embedded SQLite no.
    fn supports_cluster(&self) -> bool {
        false
    }

    /// Acquires lease `name` for `owner` for `ttl_ms` when it is free,
    /// expired or already `owner`'s (a new epoch each time). Never waits
    /// on the write queue: while the database is unreachable it fails.
    async fn lease_acquire(
        &self,
        name: &str,
        owner: &str,
        ttl_ms: u64,
    ) -> Result<cluster::Acquired, StoreError> {
        let _ = (name, owner, ttl_ms);
        Err(self.no_cluster())
    }

    /// Renews `owner`'s lease `name` of `epoch`; `false` when it is no
    /// longer theirs (taken over after expiring, or released).
    async fn lease_renew(
        &self,
        name: &str,
        owner: &str,
        epoch: u64,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let _ = (name, owner, epoch, ttl_ms);
        Err(self.no_cluster())
    }

    /// Gives `owner`'s lease `name` of `epoch` up (it expires at once).
    async fn lease_release(&self, name: &str, owner: &str, epoch: u64) -> Result<(), StoreError> {
        let _ = (name, owner, epoch);
        Err(self.no_cluster())
    }

    /// Every lease whose name starts with `prefix`.
    async fn leases(&self, prefix: &str) -> Result<Vec<cluster::Lease>, StoreError> {
        let _ = prefix;
        Err(self.no_cluster())
    }

    /// Records host `node` (its `seen_ms` set to the server's clock);
    /// returns the server's clock (ms since epoch).
    async fn put_node(&self, node: cluster::NodeRecord) -> Result<u64, StoreError> {
        let _ = node;
        Err(self.no_cluster())
    }

    /// Every host record.
    async fn nodes(&self) -> Result<Vec<cluster::NodeRecord>, StoreError> {
        Err(self.no_cluster())
    }

    /// The error of a cluster operation on a store that cannot share.
    fn no_cluster(&self) -> StoreError {
        StoreError::Unsupported {
            target: self.describe(),
            what: "several hosts sharing one store (cluster mode needs MongoDB)",
        }
    }
}

/// Opens the store the configuration selects.
///
/// SQLite: creates or opens the file (and its directory), or fails with an
/// error naming the file. MongoDB: fails only on a malformed URL; when
/// MongoDB does not answer within `connect_wait_ms` the store starts
/// degraded and connects (and creates its indexes) later. Must be called
/// inside a Tokio runtime.
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    if config.is_embedded() {
        Ok(Arc::new(sqlite::SqliteStore::open(config).await?))
    } else {
        Ok(Arc::new(mongo::MongoStore::open(config).await?))
    }
}
