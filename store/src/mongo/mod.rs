//! The MongoDB backend: collections, indexes, bucketed GPS tracks, chunked listings.
//!
//! Written to behave the same on real MongoDB and on CongoDB (the in-memory
//! test server): ObjectId `_id`s with the natural key in its own indexed
//! field, no server-side geo operators (a bounding box is a range query,
//! checked exactly here), integers decoded leniently, and every write
//! idempotent so that the queue ([`crate::queue`]) may retry it.
//!
//! One file per collection or concern; this one opens the store and
//! dispatches the [`Store`] trait to them:
//!
//! - `db`: the database side of the write queue (indexes, probe) and the
//!   read helpers (fail fast while degraded);
//! - `ops`: the queued writes (`Op`), applied and described;
//! - `errors`: what a driver error means (outage, refused credentials,
//!   refusal);
//! - `listings`: provider listings, in chunks, fenced by epoch;
//! - `geotags`: stream positions, queried by bounding box;
//! - `sessions` and `tracks`: mobile sessions and their GPS points,
//!   bucketed per session and hour;
//! - `kv` and `stats`: key/value metadata and statistics snapshots;
//! - `coordination`: the cluster's leases and host records, never queued.

mod coordination;
mod db;
mod errors;
mod geotags;
mod kv;
mod listings;
mod ops;
mod sessions;
mod stats;
mod tracks;

use crate::cluster::{Acquired, Lease, NodeRecord};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::queue::Queue;
use crate::types::{
    BBox, Geotag, GpsPoint, Listing, ListingStamp, MobileSession, NewSession, StatsSnapshot,
    StoreHealth,
};
use crate::Store;
use async_trait::async_trait;
use db::Db;
use mongodb::options::ClientOptions;
use mongodb::Client;
use ops::Op;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Database used when the URL names none.
const DEFAULT_DATABASE: &str = "dss";

/// Server selection and connect timeouts when the URL sets none (the
/// driver's default is 30 s). 2 s: a write stalls at most that long before
/// it is queued when MongoDB has just gone away.
const SELECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the queue counts for a write beyond its strings and documents
/// (field names, numbers, BSON framing). 64 bytes is about what a small
/// document adds; the figure only needs to keep the byte bound honest.
const OP_OVERHEAD: usize = 64;

const LISTINGS: &str = "listings";
const LISTING_CHUNKS: &str = "listing_chunks";
const GEOTAGS: &str = "geotags";
const SESSIONS: &str = "mobile_sessions";
const GPS_BUCKETS: &str = "gps_buckets";
const KV: &str = "kv";
const STATS: &str = "stats";
/// Cluster leases ([`crate::cluster`]).
const LEASES: &str = "cluster_leases";
/// Cluster hosts' records.
const NODES: &str = "cluster_nodes";

/// The MongoDB store.
pub(crate) struct MongoStore {
    db: Arc<Db>,
    queue: Queue<Op>,
    op_timeout: Duration,
}

impl MongoStore {
    /// Parses the URL, starts the write worker, and waits up to
    /// `connect_wait_ms` for MongoDB to answer.
    pub(crate) async fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        let url = config.url.clone().unwrap_or_default();
        let url_error = |message: String| StoreError::Url {
            url: redact(&url),
            message,
        };
        if !url.starts_with("mongodb://") && !url.starts_with("mongodb+srv://") {
            return Err(url_error(
                "expected \"embedded\" (SQLite) or a mongodb://host:port/database URL".into(),
            ));
        }
        let mut options = ClientOptions::parse(url.as_str())
            .await
            .map_err(|e| url_error(e.to_string()))?;
        options
            .server_selection_timeout
            .get_or_insert(SELECT_TIMEOUT);
        options.connect_timeout.get_or_insert(SELECT_TIMEOUT);
        options.app_name.get_or_insert_with(|| "dss".to_string());
        let hosts = options
            .hosts
            .iter()
            .map(|h| h.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let database = options
            .default_database
            .clone()
            .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
        let target = format!("MongoDB at {hosts}, database {database}");
        let client = Client::with_options(options).map_err(|e| url_error(e.to_string()))?;
        let db = Arc::new(Db::new(client.database(&database), target.clone()));
        let queue = Queue::start(
            db.clone(),
            target,
            config.queue_limit,
            config.queue_limit_bytes,
            config.op_timeout(),
            config.retry_max(),
        );
        queue.wait_first_probe(config.connect_wait()).await;
        Ok(MongoStore {
            db,
            queue,
            op_timeout: config.op_timeout(),
        })
    }
}

/// Removes the password from a URL for messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let host_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{}", &rest[at + 1..])
        }
        None => url.to_string(),
    }
}

/// The trait, dispatched to the collections' files.
#[async_trait]
impl Store for MongoStore {
    fn describe(&self) -> String {
        self.db.target.clone()
    }

    fn health(&self) -> StoreHealth {
        let st = self.queue.status();
        let reason = match (st.degraded, st.connected) {
            (Some(reason), _) => reason,
            (None, false) => format!("{}: connecting", self.db.target),
            (None, true) if st.refused == 0 => return StoreHealth::Ok,
            (None, true) => format!(
                "{}: {} acknowledged write(s) refused by the database and lost \
                 (the last in last_refusal, each in the error log)",
                self.db.target, st.refused
            ),
        };
        StoreHealth::Degraded {
            reason,
            queued_writes: st.queued,
            refused_writes: st.refused,
            last_refusal: st.last_refusal,
        }
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.queue.flush().await
    }

    async fn put_listing(&self, listing: Listing) -> Result<(), StoreError> {
        listings::put(self, listing).await
    }

    async fn get_listing(&self, provider: &str) -> Result<Option<Listing>, StoreError> {
        listings::get(self, provider).await
    }

    async fn listing_stamp(&self, provider: &str) -> Result<Option<ListingStamp>, StoreError> {
        listings::stamp(self, provider).await
    }

    async fn delete_listing(&self, provider: &str) -> Result<(), StoreError> {
        listings::delete(self, provider).await
    }

    async fn put_geotags(&self, tags: Vec<Geotag>) -> Result<(), StoreError> {
        geotags::put(self, tags).await
    }

    async fn delete_geotags(&self, stream_ids: Vec<String>) -> Result<(), StoreError> {
        geotags::delete(self, stream_ids).await
    }

    async fn geotags_in(&self, bbox: BBox) -> Result<Vec<Geotag>, StoreError> {
        geotags::within(self, bbox).await
    }

    async fn create_session(&self, session: NewSession) -> Result<String, StoreError> {
        sessions::create(self, session).await
    }

    async fn close_session(&self, id: &str, closed_ms: u64) -> Result<(), StoreError> {
        sessions::close(self, id, closed_ms).await
    }

    async fn get_session(&self, id: &str) -> Result<Option<MobileSession>, StoreError> {
        sessions::get(self, id).await
    }

    async fn phones_idle_since(&self, before_ms: u64) -> Result<Vec<String>, StoreError> {
        sessions::phones_idle_since(self, before_ms).await
    }

    async fn forget_phone(&self, stream_id: &str) -> Result<(), StoreError> {
        sessions::forget_phone(self, stream_id).await
    }

    async fn active_sessions(&self) -> Result<Vec<MobileSession>, StoreError> {
        sessions::active(self).await
    }

    async fn append_points(
        &self,
        session_id: &str,
        points: Vec<GpsPoint>,
    ) -> Result<(), StoreError> {
        tracks::append(self, session_id, points).await
    }

    async fn track(
        &self,
        session_id: &str,
        since_ms: Option<u64>,
    ) -> Result<Vec<GpsPoint>, StoreError> {
        tracks::read(self, session_id, since_ms).await
    }

    async fn put_kv(&self, namespace: &str, key: &str, value: Value) -> Result<(), StoreError> {
        kv::put(self, namespace, key, value).await
    }

    async fn get_kv(&self, namespace: &str, key: &str) -> Result<Option<Value>, StoreError> {
        kv::get(self, namespace, key).await
    }

    async fn delete_kv(&self, namespace: &str, key: &str) -> Result<(), StoreError> {
        kv::delete(self, namespace, key).await
    }

    async fn list_kv(&self, namespace: &str) -> Result<Vec<(String, Value)>, StoreError> {
        kv::list(self, namespace).await
    }

    async fn put_stats(&self, snapshots: Vec<StatsSnapshot>) -> Result<(), StoreError> {
        stats::put(self, snapshots).await
    }

    async fn get_stats(&self, stream_id: &str) -> Result<Option<StatsSnapshot>, StoreError> {
        stats::get(self, stream_id).await
    }

    async fn all_stats(&self) -> Result<Vec<StatsSnapshot>, StoreError> {
        stats::all(self).await
    }

    fn supports_cluster(&self) -> bool {
        true
    }

    async fn lease_acquire(
        &self,
        name: &str,
        owner: &str,
        ttl_ms: u64,
    ) -> Result<Acquired, StoreError> {
        coordination::lease_acquire(self, name, owner, ttl_ms).await
    }

    async fn lease_renew(
        &self,
        name: &str,
        owner: &str,
        epoch: u64,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        coordination::lease_renew(self, name, owner, epoch, ttl_ms).await
    }

    async fn lease_release(&self, name: &str, owner: &str, epoch: u64) -> Result<(), StoreError> {
        coordination::lease_release(self, name, owner, epoch).await
    }

    async fn leases(&self, prefix: &str) -> Result<Vec<Lease>, StoreError> {
        coordination::leases(self, prefix).await
    }

    async fn put_node(&self, node: NodeRecord) -> Result<u64, StoreError> {
        coordination::put_node(self, node).await
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        coordination::nodes(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_the_password_only() {
        assert_eq!(
            redact("mongodb://bob:secret@db:27017/dss?x=1"),
            "mongodb://bob:***@db:27017/dss?x=1"
        );
        assert_eq!(redact("mongodb://db:27017/dss"), "mongodb://db:27017/dss");
    }
}
