//! The MongoDB backend: collections, indexes, bucketed GPS tracks, chunked listings.
//!
//! Written to behave the same on real MongoDB and on CongoDB (the in-memory
//! test server): ObjectId `_id`s with the natural key in its own indexed
//! field, no server-side geo operators (a bounding box is a range query,
//! checked exactly here), integers decoded leniently, and every write
//! idempotent so that the queue ([`crate::queue`]) may retry it.

use crate::cluster::{Acquired, Lease, NodeRecord};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::lenient;
use crate::queue::{Failure, Queue, Sink};
use crate::types::{
    check_id, check_int, json_text, last_per_key, parse_json, session_id, BBox, Geotag, GpsPoint,
    ListedStream, Listing, ListingStamp, MobileSession, NewSession, StatsSnapshot, StoreHealth,
};
use crate::Store;
use async_trait::async_trait;
use bson::oid::ObjectId;
use bson::{doc, Bson, Document};
use futures_util::TryStreamExt;
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions, ReturnDocument, WriteConcern};
use mongodb::{Client, Collection, Database, IndexModel};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Database used when the URL names none.
const DEFAULT_DATABASE: &str = "dss";
/// Cluster leases ([`crate::cluster`]).
const LEASES: &str = "cluster_leases";
/// Cluster hosts' records.
const NODES: &str = "cluster_nodes";

/// Server selection and connect timeouts when the URL sets none (the
/// driver's default is 30 s). 2 s: a write stalls at most that long before
/// it is queued when MongoDB has just gone away.
const SELECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A listing chunk holds streams up to about this many BSON bytes. 4 MiB:
/// a quarter of MongoDB's 16 MB document cap, leaving room for one more
/// stream (at most [`crate::MAX_STREAM_BYTES`]) and the chunk's own fields.
const LISTING_CHUNK_BYTES: usize = 4 << 20;

/// GPS points are bucketed per session and per hour of `t_ms`, so a track
/// read from a given time skips older buckets.
const BUCKET_SPAN_MS: u64 = 3_600_000;

/// Most points in one bucket document. 1000: an hour at 1 Hz is four
/// documents; each update rewrites at most ~60 KB.
const BUCKET_MAX_POINTS: usize = 1000;

/// Most bytes of points in one bucket document. 4 MiB: a quarter of the
/// 16 MB cap; one point's `extra` is at most [`crate::MAX_JSON_BYTES`].
const BUCKET_MAX_BYTES: usize = 4 << 20;

/// Stream ids per `$in` when replacing or deleting geotags. 1000 ids stay
/// far below the 16 MB command cap whatever their length (ids are short).
const IDS_PER_COMMAND: usize = 1000;

/// What the queue counts for a write beyond its strings and documents
/// (field names, numbers, BSON framing). 64 bytes is about what a small
/// document adds; the figure only needs to keep the byte bound honest.
const OP_OVERHEAD: usize = 64;

/// Server error codes that mean "not reachable right now": the driver's
/// retryable-read codes (host unreachable/not found, network timeout,
/// shutdown, stepdown, not primary, …).
const TRANSIENT_CODES: &[i32] = &[
    6, 7, 89, 91, 134, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436,
];

/// Server error codes that mean the credentials or a privilege were
/// refused: 13 Unauthorized, 18 AuthenticationFailed.
const AUTH_CODES: &[i32] = &[13, 18];

const LISTINGS: &str = "listings";
const LISTING_CHUNKS: &str = "listing_chunks";
const GEOTAGS: &str = "geotags";
const SESSIONS: &str = "mobile_sessions";
const GPS_BUCKETS: &str = "gps_buckets";
const KV: &str = "kv";
const STATS: &str = "stats";

/// A listing's header; its streams are in chunks of the same generation.
#[derive(Serialize, Deserialize)]
struct ListingHead {
    provider: String,
    #[serde(deserialize_with = "lenient::u64")]
    fetched_at_ms: u64,
    #[serde(default)]
    fingerprint: Option<String>,
    #[serde(default)]
    epoch: Option<u64>,
    generation: String,
    #[serde(deserialize_with = "lenient::u32")]
    chunks: u32,
}

#[derive(Serialize)]
struct ChunkRef<'a> {
    provider: &'a str,
    generation: &'a str,
    seq: u32,
    streams: &'a [ListedStream],
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(deserialize_with = "lenient::u32")]
    seq: u32,
    streams: Vec<ListedStream>,
}

#[derive(Serialize, Deserialize)]
struct GeotagDoc {
    stream_id: String,
    lat: f64,
    lon: f64,
    #[serde(deserialize_with = "lenient::u64")]
    updated_ms: u64,
}

#[derive(Deserialize)]
struct SessionDoc {
    session_id: String,
    stream_key: String,
    #[serde(deserialize_with = "lenient::u64")]
    started_ms: u64,
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    closed_ms: Option<u64>,
    meta: String,
}

#[derive(Serialize, Deserialize)]
struct PointDoc {
    #[serde(deserialize_with = "lenient::u64")]
    t_ms: u64,
    lat: f64,
    lon: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    extra: Option<String>,
}

#[derive(Deserialize)]
struct BucketDoc {
    _id: ObjectId,
    #[serde(deserialize_with = "lenient::u64")]
    bucket: u64,
    points: Vec<PointDoc>,
}

#[derive(Deserialize)]
struct KvDoc {
    key: String,
    value: String,
}

#[derive(Deserialize)]
struct StatsDoc {
    stream_id: String,
    #[serde(deserialize_with = "lenient::u64")]
    taken_ms: u64,
    data: String,
}

/// Points going into one bucket document in one update.
struct Batch {
    bucket: u64,
    points: Vec<Document>,
    bytes: usize,
}

/// One queued write, with its BSON built at submit time (so encoding errors
/// reach the caller, and the queue knows its size).
enum Op {
    PutListing {
        provider: String,
        generation: String,
        fetched_at_ms: u64,
        fingerprint: Option<String>,
        epoch: Option<u64>,
        chunks: Vec<Document>,
    },
    DeleteListing {
        provider: String,
    },
    PutGeotags {
        ids: Vec<String>,
        docs: Vec<Document>,
    },
    DeleteGeotags {
        ids: Vec<String>,
    },
    CreateSession {
        id: String,
        fields: Document,
    },
    CloseSession {
        id: String,
        closed_ms: u64,
    },
    ForgetPhone {
        stream_id: String,
    },
    AppendPoints {
        session_id: String,
        batches: Vec<Batch>,
    },
    PutKv {
        namespace: String,
        key: String,
        value: String,
    },
    DeleteKv {
        namespace: String,
        key: String,
    },
    PutStats {
        snapshots: Vec<(String, u64, String)>,
    },
}

/// The database side: collections, and the one-time index creation.
struct Db {
    db: Database,
    target: String,
    indexed: AtomicBool,
}

/// What a driver error means for the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Unreachable now: queue and retry.
    Transient,
    /// Credentials or a privilege refused: the database answered, but an
    /// operator may fix it, so acknowledged writes are kept and retried.
    Auth,
    /// Refused for good.
    Permanent,
}

/// The server error codes a driver error carries.
fn codes(e: &mongodb::error::Error) -> Vec<i32> {
    match &*e.kind {
        ErrorKind::Command(c) => vec![c.code],
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => vec![w.code],
        ErrorKind::Write(WriteFailure::WriteError(w)) => vec![w.code],
        ErrorKind::InsertMany(i) => i
            .write_errors
            .iter()
            .flatten()
            .map(|w| w.code)
            .chain(i.write_concern_error.iter().map(|w| w.code))
            .collect(),
        _ => Vec::new(),
    }
}

/// Classifies a driver error. Refused credentials are checked first: they
/// are no network blip, and must not read as "unreachable".
fn classify(e: &mongodb::error::Error) -> Class {
    let codes = codes(e);
    if matches!(&*e.kind, ErrorKind::Authentication { .. })
        || codes.iter().any(|c| AUTH_CODES.contains(c))
    {
        return Class::Auth;
    }
    if e.contains_label("RetryableWriteError") || e.contains_label("RetryableError") {
        return Class::Transient;
    }
    let transient = match &*e.kind {
        ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::DnsResolve { .. } => true,
        // Of an insert_many, only a write concern error can be an outage.
        ErrorKind::InsertMany(i) => i
            .write_concern_error
            .as_ref()
            .is_some_and(|w| TRANSIENT_CODES.contains(&w.code)),
        _ => codes.iter().any(|c| TRANSIENT_CODES.contains(c)),
    };
    if transient {
        Class::Transient
    } else {
        Class::Permanent
    }
}

impl Db {
    fn coll(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    fn typed<T: Send + Sync>(&self, name: &str) -> Collection<T> {
        self.db.collection(name)
    }

    fn failure(
        &self,
        collection: &'static str,
        context: &str,
        e: mongodb::error::Error,
    ) -> Failure {
        match classify(&e) {
            Class::Transient => Failure::Transient(format!("{}: {context}: {e}", self.target)),
            // The kind alone: the error's own text adds labels and sources.
            Class::Auth => Failure::Auth(format!("{context}: {}", e.kind)),
            Class::Permanent => Failure::Permanent(StoreError::Mongo {
                target: self.target.clone(),
                collection,
                context: context.to_string(),
                source: Box::new(e),
            }),
        }
    }

    async fn create_indexes(&self) -> Result<(), Failure> {
        let unique = || Some(IndexOptions::builder().unique(true).build());
        let plain = || None;
        let specs: [(&'static str, Document, Option<IndexOptions>); 9] = [
            (LISTINGS, doc! {"provider": 1}, unique()),
            (
                LISTING_CHUNKS,
                doc! {"provider": 1, "generation": 1, "seq": 1},
                plain(),
            ),
            (GEOTAGS, doc! {"stream_id": 1}, unique()),
            (GEOTAGS, doc! {"lat": 1, "lon": 1}, plain()),
            (SESSIONS, doc! {"session_id": 1}, unique()),
            (SESSIONS, doc! {"closed_ms": 1}, plain()),
            (GPS_BUCKETS, doc! {"session_id": 1, "bucket": 1}, plain()),
            (KV, doc! {"namespace": 1, "key": 1}, unique()),
            (STATS, doc! {"stream_id": 1}, unique()),
        ];
        for (coll, keys, options) in specs {
            let model = IndexModel::builder().keys(keys).options(options).build();
            self.coll(coll)
                .create_index(model)
                .await
                .map_err(|e| self.failure(coll, "create index", e))?;
        }
        Ok(())
    }

    async fn apply_op(&self, op: &Op) -> Result<(), Failure> {
        match op {
            Op::PutListing {
                provider,
                generation,
                fetched_at_ms,
                fingerprint,
                epoch,
                chunks,
            } => {
                if let Some(e) = epoch {
                    if let Some(stored) = self.listing_epoch(provider).await? {
                        if stored > *e {
                            superseded(provider, *e, stored);
                            return Ok(());
                        }
                    }
                }
                let ch = self.coll(LISTING_CHUNKS);
                // A retry first removes what an earlier attempt inserted.
                ch.delete_many(doc! {"provider": provider, "generation": generation})
                    .await
                    .map_err(|e| self.failure(LISTING_CHUNKS, "clear listing chunks", e))?;
                if !chunks.is_empty() {
                    ch.insert_many(chunks)
                        .await
                        .map_err(|e| self.failure(LISTING_CHUNKS, "insert listing chunks", e))?;
                }
                // Readers switch to the new chunks here, in one update;
                // fenced, only over a listing of no newer epoch (else the
                // upsert loses to the existing document).
                let mut filter = doc! {"provider": provider};
                let mut set = doc! {
                    "fetched_at_ms": *fetched_at_ms as i64,
                    "fingerprint": fingerprint,
                    "generation": generation,
                    "chunks": chunks.len() as i64,
                };
                if let Some(e) = epoch {
                    let e = (*e).min(i64::MAX as u64) as i64;
                    filter.insert(
                        "$or",
                        vec![doc! {"epoch": Bson::Null}, doc! {"epoch": {"$lte": e}}],
                    );
                    set.insert("epoch", e);
                }
                let updated = self
                    .coll(LISTINGS)
                    .update_one(filter, doc! {"$set": set})
                    .upsert(true)
                    .await;
                match updated {
                    Err(err) if epoch.is_some() && is_duplicate_key(&err) => {
                        // A newer refresher wrote meanwhile: its listing stays.
                        ch.delete_many(doc! {"provider": provider, "generation": generation})
                            .await
                            .map_err(|e| self.failure(LISTING_CHUNKS, "clear listing chunks", e))?;
                        let stored = self.listing_epoch(provider).await?.unwrap_or_default();
                        superseded(provider, epoch.unwrap_or_default(), stored);
                        return Ok(());
                    }
                    other => {
                        other.map_err(|e| self.failure(LISTINGS, "update listing", e))?;
                    }
                }
                ch.delete_many(doc! {"provider": provider, "generation": {"$ne": generation}})
                    .await
                    .map_err(|e| self.failure(LISTING_CHUNKS, "remove old listing chunks", e))?;
            }
            Op::DeleteListing { provider } => {
                self.coll(LISTINGS)
                    .delete_many(doc! {"provider": provider})
                    .await
                    .map_err(|e| self.failure(LISTINGS, "delete listing", e))?;
                self.coll(LISTING_CHUNKS)
                    .delete_many(doc! {"provider": provider})
                    .await
                    .map_err(|e| self.failure(LISTING_CHUNKS, "delete listing chunks", e))?;
            }
            Op::PutGeotags { ids, docs } => {
                // Delete then insert: one scan per 1000 ids on servers
                // without indexes (CongoDB), instead of one per geotag.
                self.delete_geotags(ids).await?;
                if !docs.is_empty() {
                    self.coll(GEOTAGS)
                        .insert_many(docs)
                        .await
                        .map_err(|e| self.failure(GEOTAGS, "insert geotags", e))?;
                }
            }
            Op::DeleteGeotags { ids } => self.delete_geotags(ids).await?,
            Op::CreateSession { id, fields } => {
                self.coll(SESSIONS)
                    .update_one(
                        doc! {"session_id": id},
                        doc! {"$setOnInsert": fields.clone()},
                    )
                    .upsert(true)
                    .await
                    .map_err(|e| self.failure(SESSIONS, "create session", e))?;
            }
            Op::CloseSession { id, closed_ms } => {
                self.coll(SESSIONS)
                    .update_one(
                        doc! {"session_id": id, "closed_ms": Bson::Null},
                        doc! {"$set": {"closed_ms": *closed_ms as i64}},
                    )
                    .await
                    .map_err(|e| self.failure(SESSIONS, "close session", e))?;
            }
            Op::ForgetPhone { stream_id } => {
                for (coll, filter) in [
                    (SESSIONS, doc! {"stream_key": stream_id}),
                    (GPS_BUCKETS, doc! {"session_id": stream_id}),
                    (GEOTAGS, doc! {"stream_id": stream_id}),
                    (STATS, doc! {"stream_id": stream_id}),
                ] {
                    self.coll(coll)
                        .delete_many(filter)
                        .await
                        .map_err(|e| self.failure(coll, "forget a phone", e))?;
                }
            }
            Op::AppendPoints {
                session_id,
                batches,
            } => {
                for b in batches {
                    let n = b.points.len();
                    // Into a bucket of this hour with room left, or a new one.
                    // A retried batch may land twice: reads drop repeated t_ms.
                    self.coll(GPS_BUCKETS)
                        .update_one(
                            doc! {
                                "session_id": session_id,
                                "bucket": b.bucket as i64,
                                "n": {"$lte": (BUCKET_MAX_POINTS - n) as i64},
                                "bytes": {"$lte": (BUCKET_MAX_BYTES - b.bytes) as i64},
                            },
                            doc! {
                                "$push": {"points": {"$each": b.points.clone()}},
                                "$inc": {"n": n as i64, "bytes": b.bytes as i64},
                            },
                        )
                        .upsert(true)
                        .await
                        .map_err(|e| self.failure(GPS_BUCKETS, "append GPS points", e))?;
                }
            }
            Op::PutKv {
                namespace,
                key,
                value,
            } => {
                self.coll(KV)
                    .update_one(
                        doc! {"namespace": namespace, "key": key},
                        doc! {"$set": {"value": value}},
                    )
                    .upsert(true)
                    .await
                    .map_err(|e| self.failure(KV, "put value", e))?;
            }
            Op::DeleteKv { namespace, key } => {
                self.coll(KV)
                    .delete_many(doc! {"namespace": namespace, "key": key})
                    .await
                    .map_err(|e| self.failure(KV, "delete value", e))?;
            }
            Op::PutStats { snapshots } => {
                for (stream_id, taken_ms, data) in snapshots {
                    self.coll(STATS)
                        .update_one(
                            doc! {"stream_id": stream_id},
                            doc! {"$set": {"taken_ms": *taken_ms as i64, "data": data}},
                        )
                        .upsert(true)
                        .await
                        .map_err(|e| self.failure(STATS, "put stats", e))?;
                }
            }
        }
        Ok(())
    }

    /// The epoch of provider `provider`'s stored listing, if fenced.
    async fn listing_epoch(&self, provider: &str) -> Result<Option<u64>, Failure> {
        let head = self
            .coll(LISTINGS)
            .find_one(doc! {"provider": provider})
            .await
            .map_err(|e| self.failure(LISTINGS, "read listing epoch", e))?;
        Ok(head
            .filter(|h| h.contains_key("epoch"))
            .map(|h| int_field(&h, "epoch")))
    }

    async fn delete_geotags(&self, ids: &[String]) -> Result<(), Failure> {
        for part in ids.chunks(IDS_PER_COMMAND) {
            self.coll(GEOTAGS)
                .delete_many(doc! {"stream_id": {"$in": part}})
                .await
                .map_err(|e| self.failure(GEOTAGS, "delete geotags", e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Sink for Db {
    type Op = Op;

    async fn apply(&self, op: &Op) -> Result<(), Failure> {
        self.apply_op(op).await
    }

    async fn probe(&self) -> Result<(), Failure> {
        self.db
            .run_command(doc! {"ping": 1})
            .await
            .map_err(|e| self.failure("(none)", "ping", e))?;
        if !self.indexed.load(Ordering::Acquire) {
            self.create_indexes().await?;
            self.indexed.store(true, Ordering::Release);
        }
        Ok(())
    }

    fn describe(&self, op: &Op) -> String {
        op.describe()
    }
}

/// Up to 5 ids, for messages.
fn some_ids<'a>(ids: impl ExactSizeIterator<Item = &'a String>) -> String {
    let n = ids.len();
    let mut out: Vec<String> = ids.take(5).map(|id| format!("{id:?}")).collect();
    if n > 5 {
        out.push(format!("and {} more", n - 5));
    }
    out.join(", ")
}

impl Op {
    /// The write, its collection and its key(s), for logs and the health.
    fn describe(&self) -> String {
        match self {
            Op::PutListing {
                provider, chunks, ..
            } => format!(
                "put listing of provider {provider:?} ({} chunks; collections {LISTINGS}, {LISTING_CHUNKS})",
                chunks.len()
            ),
            Op::DeleteListing { provider } => format!(
                "delete listing of provider {provider:?} (collections {LISTINGS}, {LISTING_CHUNKS})"
            ),
            Op::PutGeotags { ids, .. } => format!(
                "put geotags of streams {} (collection {GEOTAGS})",
                some_ids(ids.iter())
            ),
            Op::DeleteGeotags { ids } => format!(
                "delete geotags of streams {} (collection {GEOTAGS})",
                some_ids(ids.iter())
            ),
            Op::CreateSession { id, .. } => {
                format!("create session {id:?} (collection {SESSIONS})")
            }
            Op::CloseSession { id, closed_ms } => {
                format!("close session {id:?} at {closed_ms} ms (collection {SESSIONS})")
            }
            Op::ForgetPhone { stream_id } => format!(
                "forget phone {stream_id:?} (collections {SESSIONS}, {GPS_BUCKETS}, {GEOTAGS}, {STATS})"
            ),
            Op::AppendPoints {
                session_id,
                batches,
            } => format!(
                "append {} GPS points to session {session_id:?} (collection {GPS_BUCKETS})",
                batches.iter().map(|b| b.points.len()).sum::<usize>()
            ),
            Op::PutKv { namespace, key, .. } => {
                format!("put value {namespace:?}/{key:?} (collection {KV})")
            }
            Op::DeleteKv { namespace, key } => {
                format!("delete value {namespace:?}/{key:?} (collection {KV})")
            }
            Op::PutStats { snapshots } => format!(
                "put stats of streams {} (collection {STATS})",
                some_ids(snapshots.iter().map(|s| &s.0))
            ),
        }
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
        let db = Arc::new(Db {
            db: client.database(&database),
            target: target.clone(),
            indexed: AtomicBool::new(false),
        });
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

    /// Runs a read: fails fast while degraded; a connectivity failure turns
    /// the store degraded.
    async fn read<T>(
        &self,
        collection: &'static str,
        context: &str,
        f: impl Future<Output = Result<T, mongodb::error::Error>>,
    ) -> Result<T, StoreError> {
        self.queue.readable()?;
        let unavailable = |reason: String| {
            self.queue.report_degraded(reason.clone());
            StoreError::Unavailable {
                target: self.db.target.clone(),
                reason,
            }
        };
        match tokio::time::timeout(self.op_timeout, f).await {
            Err(_) => Err(unavailable(format!(
                "{context}: no answer within {} ms",
                self.op_timeout.as_millis()
            ))),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => match self.db.failure(collection, context, e) {
                Failure::Transient(reason) => Err(unavailable(reason)),
                Failure::Auth(detail) => {
                    let err = StoreError::AuthFailed {
                        target: self.db.target.clone(),
                        detail,
                    };
                    self.queue.report_degraded(err.to_string());
                    Err(err)
                }
                Failure::Permanent(err) => Err(err),
            },
        }
    }

    /// All documents matching `filter`, decoded.
    async fn find_all<T: DeserializeOwned + Send + Sync + Unpin>(
        &self,
        collection: &'static str,
        context: &str,
        filter: Document,
    ) -> Result<Vec<T>, StoreError> {
        let coll = self.db.typed::<T>(collection);
        self.read(collection, context, async move {
            coll.find(filter).await?.try_collect::<Vec<T>>().await
        })
        .await
    }

    async fn find_one<T: DeserializeOwned + Send + Sync + Unpin>(
        &self,
        collection: &'static str,
        context: &str,
        filter: Document,
    ) -> Result<Option<T>, StoreError> {
        let coll = self.db.typed::<T>(collection);
        self.read(
            collection,
            context,
            async move { coll.find_one(filter).await },
        )
        .await
    }

    fn encode<T: Serialize>(
        collection: &'static str,
        key: &str,
        v: &T,
    ) -> Result<Document, StoreError> {
        bson::to_document(v).map_err(|e| StoreError::Encode {
            collection,
            key: key.to_string(),
            message: e.to_string(),
        })
    }
}

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
        let sizes = listing.validate()?;
        let generation = ObjectId::new().to_hex();
        let mut chunks = Vec::new();
        for (seq, range) in chunk_ranges(&sizes, LISTING_CHUNK_BYTES)
            .into_iter()
            .enumerate()
        {
            chunks.push(Self::encode(
                LISTING_CHUNKS,
                &listing.provider,
                &ChunkRef {
                    provider: &listing.provider,
                    generation: &generation,
                    seq: seq as u32,
                    streams: &listing.streams[range],
                },
            )?);
        }
        let total: usize = sizes.iter().sum();
        let op = Op::PutListing {
            provider: listing.provider,
            generation,
            fetched_at_ms: listing.fetched_at_ms,
            fingerprint: listing.fingerprint,
            epoch: listing.epoch,
            chunks,
        };
        self.queue.submit(op, total + OP_OVERHEAD).await
    }

    async fn get_listing(&self, provider: &str) -> Result<Option<Listing>, StoreError> {
        // A concurrent put may replace the chunks between the two reads:
        // then the header has moved on, and reading again gets the new ones.
        // Three tries: a put takes milliseconds, two in a row are rare.
        for _ in 0..3 {
            let Some(head) = self
                .find_one::<ListingHead>(LISTINGS, "get listing", doc! {"provider": provider})
                .await?
            else {
                return Ok(None);
            };
            // One chunk per reply: a server that does not split replies at
            // 16 MB (CongoDB) cannot send several ~4 MiB chunks at once.
            let coll = self.db.typed::<Chunk>(LISTING_CHUNKS);
            let filter = doc! {"provider": provider, "generation": &head.generation};
            let mut chunks = self
                .read(LISTING_CHUNKS, "get listing chunks", async move {
                    coll.find(filter)
                        .batch_size(1)
                        .await?
                        .try_collect::<Vec<Chunk>>()
                        .await
                })
                .await?;
            chunks.sort_by_key(|c| c.seq);
            let complete = chunks.len() == head.chunks as usize
                && chunks.iter().enumerate().all(|(i, c)| c.seq as usize == i);
            if complete {
                return Ok(Some(Listing {
                    provider: head.provider,
                    fetched_at_ms: head.fetched_at_ms,
                    fingerprint: head.fingerprint,
                    epoch: head.epoch,
                    streams: chunks.into_iter().flat_map(|c| c.streams).collect(),
                }));
            }
        }
        Err(StoreError::Decode {
            collection: LISTING_CHUNKS,
            key: provider.to_string(),
            message: "the listing's chunks are incomplete".into(),
        })
    }

    async fn listing_stamp(&self, provider: &str) -> Result<Option<ListingStamp>, StoreError> {
        let head = self
            .find_one::<ListingHead>(LISTINGS, "get listing stamp", doc! {"provider": provider})
            .await?;
        Ok(head.map(|h| ListingStamp {
            fetched_at_ms: h.fetched_at_ms,
            fingerprint: h.fingerprint,
        }))
    }

    async fn delete_listing(&self, provider: &str) -> Result<(), StoreError> {
        let op = Op::DeleteListing {
            provider: provider.to_string(),
        };
        self.queue.submit(op, provider.len() + OP_OVERHEAD).await
    }

    async fn put_geotags(&self, tags: Vec<Geotag>) -> Result<(), StoreError> {
        for t in &tags {
            t.validate()?;
        }
        let tags = last_per_key(tags, |t| &t.stream_id);
        let mut bytes = 0;
        let mut ids = Vec::with_capacity(tags.len());
        let mut docs = Vec::with_capacity(tags.len());
        for t in tags {
            bytes += t.stream_id.len() * 2 + OP_OVERHEAD;
            docs.push(Self::encode(
                GEOTAGS,
                &t.stream_id,
                &GeotagDoc {
                    stream_id: t.stream_id.clone(),
                    lat: t.lat,
                    lon: t.lon,
                    updated_ms: t.updated_ms,
                },
            )?);
            ids.push(t.stream_id);
        }
        self.queue.submit(Op::PutGeotags { ids, docs }, bytes).await
    }

    async fn delete_geotags(&self, stream_ids: Vec<String>) -> Result<(), StoreError> {
        let bytes = stream_ids.iter().map(|s| s.len() + OP_OVERHEAD).sum();
        self.queue
            .submit(Op::DeleteGeotags { ids: stream_ids }, bytes)
            .await
    }

    async fn geotags_in(&self, bbox: BBox) -> Result<Vec<Geotag>, StoreError> {
        bbox.validate()?;
        let lon: Vec<Document> = bbox
            .lon_ranges()
            .into_iter()
            .map(|(lo, hi)| doc! {"lon": {"$gte": lo, "$lte": hi}})
            .collect();
        let filter = doc! {
            "lat": {"$gte": bbox.min_lat, "$lte": bbox.max_lat},
            "$or": lon,
        };
        let docs: Vec<GeotagDoc> = self.find_all(GEOTAGS, "query geotags", filter).await?;
        let mut out: Vec<Geotag> = docs
            .into_iter()
            .filter(|d| bbox.contains(d.lat, d.lon))
            .map(|d| Geotag {
                stream_id: d.stream_id,
                lat: d.lat,
                lon: d.lon,
                updated_ms: d.updated_ms,
            })
            .collect();
        out.sort_by(|a, b| a.stream_id.cmp(&b.stream_id));
        out.dedup_by(|a, b| a.stream_id == b.stream_id);
        Ok(out)
    }

    async fn create_session(&self, session: NewSession) -> Result<String, StoreError> {
        let id = session_id(&session)?;
        check_id("session stream_key", &session.stream_key)?;
        check_int("session started_ms", session.started_ms)?;
        let meta = json_text("session meta", &session.meta)?;
        let bytes = meta.len() + session.stream_key.len() + OP_OVERHEAD;
        let fields = doc! {
            "stream_key": session.stream_key,
            "started_ms": session.started_ms as i64,
            "closed_ms": Bson::Null,
            "meta": meta,
        };
        let op = Op::CreateSession {
            id: id.clone(),
            fields,
        };
        self.queue.submit(op, bytes).await?;
        Ok(id)
    }

    async fn close_session(&self, id: &str, closed_ms: u64) -> Result<(), StoreError> {
        check_int("session closed_ms", closed_ms)?;
        let op = Op::CloseSession {
            id: id.to_string(),
            closed_ms,
        };
        self.queue.submit(op, id.len() + OP_OVERHEAD).await
    }

    async fn get_session(&self, id: &str) -> Result<Option<MobileSession>, StoreError> {
        self.find_one::<SessionDoc>(SESSIONS, "get session", doc! {"session_id": id})
            .await?
            .map(session_from_doc)
            .transpose()
    }

    async fn phones_idle_since(&self, before_ms: u64) -> Result<Vec<String>, StoreError> {
        check_int("phones idle since", before_ms)?;
        let before = before_ms as i64;
        let keys = |filter: Document, context: &'static str| {
            let coll = self.db.coll(SESSIONS);
            self.read(SESSIONS, context, async move {
                coll.distinct("stream_key", filter).await
            })
        };
        let closed_before = keys(
            doc! {"closed_ms": {"$lt": before}},
            "list phones with old sessions",
        )
        .await?;
        let recent = keys(
            doc! {"$or": [{"closed_ms": Bson::Null}, {"closed_ms": {"$gte": before}}]},
            "list phones with recent sessions",
        )
        .await?;
        let recent: std::collections::HashSet<String> = recent
            .into_iter()
            .filter_map(|b| b.as_str().map(str::to_string))
            .collect();
        let mut idle: Vec<String> = closed_before
            .into_iter()
            .filter_map(|b| b.as_str().map(str::to_string))
            .filter(|k| !recent.contains(k))
            .collect();
        idle.sort();
        idle.dedup();
        Ok(idle)
    }

    async fn forget_phone(&self, stream_id: &str) -> Result<(), StoreError> {
        check_id("phone stream id", stream_id)?;
        let op = Op::ForgetPhone {
            stream_id: stream_id.to_string(),
        };
        self.queue.submit(op, stream_id.len() + OP_OVERHEAD).await
    }

    async fn active_sessions(&self) -> Result<Vec<MobileSession>, StoreError> {
        let docs: Vec<SessionDoc> = self
            .find_all(
                SESSIONS,
                "list active sessions",
                doc! {"closed_ms": Bson::Null},
            )
            .await?;
        let mut out = docs
            .into_iter()
            .map(session_from_doc)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn append_points(
        &self,
        session_id: &str,
        points: Vec<GpsPoint>,
    ) -> Result<(), StoreError> {
        check_id("session id", session_id)?;
        let mut docs = Vec::with_capacity(points.len());
        for p in points {
            let extra = p.validate()?;
            let point = PointDoc {
                t_ms: p.t_ms,
                lat: p.lat,
                lon: p.lon,
                extra,
            };
            let size = bson::to_vec(&point)
                .map_err(|e| StoreError::Encode {
                    collection: GPS_BUCKETS,
                    key: session_id.to_string(),
                    message: e.to_string(),
                })?
                .len();
            docs.push((
                p.t_ms / BUCKET_SPAN_MS,
                size,
                Self::encode(GPS_BUCKETS, session_id, &point)?,
            ));
        }
        // Stable: points keep their order within a bucket.
        docs.sort_by_key(|d| d.0);
        let mut batches: Vec<Batch> = Vec::new();
        let mut total = 0;
        for (bucket, size, doc) in docs {
            total += size;
            match batches.last_mut() {
                Some(b)
                    if b.bucket == bucket
                        && b.points.len() < BUCKET_MAX_POINTS
                        && b.bytes + size <= BUCKET_MAX_BYTES =>
                {
                    b.points.push(doc);
                    b.bytes += size;
                }
                _ => batches.push(Batch {
                    bucket,
                    points: vec![doc],
                    bytes: size,
                }),
            }
        }
        if batches.is_empty() {
            return Ok(());
        }
        let op = Op::AppendPoints {
            session_id: session_id.to_string(),
            batches,
        };
        self.queue.submit(op, total + OP_OVERHEAD).await
    }

    async fn track(
        &self,
        session_id: &str,
        since_ms: Option<u64>,
    ) -> Result<Vec<GpsPoint>, StoreError> {
        let since = since_ms.unwrap_or(0);
        check_int("track since_ms", since)?;
        let mut buckets: Vec<BucketDoc> = self
            .find_all(
                GPS_BUCKETS,
                "read GPS track",
                doc! {"session_id": session_id, "bucket": {"$gte": (since / BUCKET_SPAN_MS) as i64}},
            )
            .await?;
        // Insertion order (bucket, then creation), so that of two points
        // with the same t_ms the first appended is kept, as in SQLite.
        buckets.sort_by_key(|b| (b.bucket, b._id));
        let mut points: Vec<PointDoc> = buckets
            .into_iter()
            .flat_map(|b| b.points)
            .filter(|p| p.t_ms >= since)
            .collect();
        points.sort_by_key(|p| p.t_ms);
        points.dedup_by_key(|p| p.t_ms);
        points
            .into_iter()
            .map(|p| {
                Ok(GpsPoint {
                    t_ms: p.t_ms,
                    lat: p.lat,
                    lon: p.lon,
                    extra: p
                        .extra
                        .map(|x| parse_json(GPS_BUCKETS, session_id, &x))
                        .transpose()?,
                })
            })
            .collect()
    }

    async fn put_kv(&self, namespace: &str, key: &str, value: Value) -> Result<(), StoreError> {
        check_id("key/value namespace", namespace)?;
        check_id("key/value key", key)?;
        let value = json_text("key/value value", &value)?;
        let bytes = namespace.len() + key.len() + value.len() + OP_OVERHEAD;
        let op = Op::PutKv {
            namespace: namespace.to_string(),
            key: key.to_string(),
            value,
        };
        self.queue.submit(op, bytes).await
    }

    async fn get_kv(&self, namespace: &str, key: &str) -> Result<Option<Value>, StoreError> {
        self.find_one::<KvDoc>(KV, "get value", doc! {"namespace": namespace, "key": key})
            .await?
            .map(|d| parse_json(KV, key, &d.value))
            .transpose()
    }

    async fn delete_kv(&self, namespace: &str, key: &str) -> Result<(), StoreError> {
        let op = Op::DeleteKv {
            namespace: namespace.to_string(),
            key: key.to_string(),
        };
        self.queue
            .submit(op, namespace.len() + key.len() + OP_OVERHEAD)
            .await
    }

    async fn list_kv(&self, namespace: &str) -> Result<Vec<(String, Value)>, StoreError> {
        let docs: Vec<KvDoc> = self
            .find_all(KV, "list values", doc! {"namespace": namespace})
            .await?;
        let mut out = docs
            .into_iter()
            .map(|d| parse_json(KV, &d.key, &d.value).map(|v| (d.key, v)))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn put_stats(&self, snapshots: Vec<StatsSnapshot>) -> Result<(), StoreError> {
        let mut bytes = 0;
        let mut rows = Vec::with_capacity(snapshots.len());
        for s in snapshots {
            let data = s.validate()?;
            bytes += s.stream_id.len() + data.len() + OP_OVERHEAD;
            rows.push((s.stream_id, s.taken_ms, data));
        }
        if rows.is_empty() {
            return Ok(());
        }
        self.queue
            .submit(Op::PutStats { snapshots: rows }, bytes)
            .await
    }

    async fn get_stats(&self, stream_id: &str) -> Result<Option<StatsSnapshot>, StoreError> {
        self.find_one::<StatsDoc>(STATS, "get stats", doc! {"stream_id": stream_id})
            .await?
            .map(stats_from_doc)
            .transpose()
    }

    async fn all_stats(&self) -> Result<Vec<StatsSnapshot>, StoreError> {
        let docs: Vec<StatsDoc> = self.find_all(STATS, "list stats", doc! {}).await?;
        let mut out = docs
            .into_iter()
            .map(stats_from_doc)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| a.stream_id.cmp(&b.stream_id));
        Ok(out)
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
        let id = name_id("lease", name);
        let ttl = ttl_ms.min(i64::MAX as u64) as i64;
        // Free (never held, expired or released) or ours: decided by the
        // server, on its clock, atomically with the update. Expiry is the
        // holder's own term (the stored `ttl_ms`), not the asker's.
        let filter = doc! {
            "_id": id,
            "$expr": { "$or": [
                { "$lt": [ { "$add": ["$renewed", "$ttl_ms"] }, "$$NOW" ] },
                { "$eq": ["$owner", owner] },
            ] },
        };
        let update = doc! {
            "$set": { "name": name, "owner": owner, "ttl_ms": ttl },
            "$inc": { "epoch": 1_i64 },
            "$currentDate": { "renewed": true },
        };
        let coll = self.db.coll(LEASES);
        let got = self
            .coordinate(LEASES, &format!("acquire lease {name:?}"), async move {
                coll.find_one_and_update(filter, update)
                    .upsert(true)
                    .return_document(ReturnDocument::After)
                    .write_concern(WriteConcern::majority())
                    .await
            })
            .await?;
        match got {
            Some(Some(doc)) => Ok(Acquired::Held(lease_from(&doc)?)),
            // Held by another (the upsert lost to the existing document).
            _ => Ok(Acquired::Busy(self.lease(name).await?)),
        }
    }

    async fn lease_renew(
        &self,
        name: &str,
        owner: &str,
        epoch: u64,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let filter = doc! { "_id": name_id("lease", name), "owner": owner, "epoch": epoch as i64 };
        let update = doc! {
            "$set": { "ttl_ms": ttl_ms.min(i64::MAX as u64) as i64 },
            "$currentDate": { "renewed": true },
        };
        let coll = self.db.coll(LEASES);
        let got = self
            .coordinate(LEASES, &format!("renew lease {name:?}"), async move {
                coll.find_one_and_update(filter, update)
                    .write_concern(WriteConcern::majority())
                    .await
            })
            .await?;
        Ok(matches!(got, Some(Some(_))))
    }

    async fn lease_release(&self, name: &str, owner: &str, epoch: u64) -> Result<(), StoreError> {
        let filter = doc! { "_id": name_id("lease", name), "owner": owner, "epoch": epoch as i64 };
        let update = doc! { "$set": { "renewed": bson::DateTime::from_millis(0) } };
        let coll = self.db.coll(LEASES);
        self.coordinate(LEASES, &format!("release lease {name:?}"), async move {
            coll.find_one_and_update(filter, update)
                .write_concern(WriteConcern::majority())
                .await
        })
        .await?;
        Ok(())
    }

    async fn leases(&self, prefix: &str) -> Result<Vec<Lease>, StoreError> {
        let docs: Vec<Document> = self.find_all(LEASES, "list leases", doc! {}).await?;
        let mut out = Vec::new();
        for d in &docs {
            let lease = lease_from(d)?;
            if lease.name.starts_with(prefix) {
                out.push(lease);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn put_node(&self, node: NodeRecord) -> Result<u64, StoreError> {
        // Ours (the same key, or a record without one), or no longer live:
        // decided by the server, on its clock, like a lease. Anything else
        // is another live host under this id: the upsert then loses to the
        // existing document.
        let filter = doc! {
            "_id": name_id("node", &node.id),
            "$expr": { "$or": [
                { "$eq": [ { "$ifNull": ["$key", &node.key] }, &node.key ] },
                { "$lt": [ { "$add": ["$seen", { "$ifNull": ["$live_ms", 0_i64] }] }, "$$NOW" ] },
            ] },
        };
        let update = doc! {
            "$set": {
                "id": &node.id,
                "advertise_rtmp": &node.advertise_rtmp,
                "api": &node.api,
                "running": node.running as i64,
                "owned": node.owned as i64,
                "started_ms": node.started_ms.min(i64::MAX as u64) as i64,
                "key": &node.key,
                "live_ms": node.live_ms.min(i64::MAX as u64) as i64,
            },
            "$currentDate": { "seen": true },
        };
        let coll = self.db.coll(NODES);
        let got = self
            .coordinate(NODES, &format!("record host {:?}", node.id), async move {
                coll.find_one_and_update(filter, update)
                    .upsert(true)
                    .return_document(ReturnDocument::After)
                    .write_concern(WriteConcern::majority())
                    .await
            })
            .await?;
        match got {
            Some(Some(doc)) => Ok(node_from(&doc)?.seen_ms),
            // The upsert lost: another live host holds the id.
            None => {
                let other = self
                    .nodes()
                    .await
                    .ok()
                    .and_then(|all| all.into_iter().find(|n| n.id == node.id))
                    .map(|n| format!("API {}, started at {} ms", n.api, n.started_ms));
                Err(StoreError::NodeTaken { id: node.id, other })
            }
            Some(None) => Err(StoreError::Decode {
                collection: NODES,
                key: node.id,
                message: "the server returned no document for an upsert".into(),
            }),
        }
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let docs: Vec<Document> = self.find_all(NODES, "list hosts", doc! {}).await?;
        let mut out = docs.iter().map(node_from).collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

impl MongoStore {
    /// Runs a coordination command: never queued (a lease written later is
    /// worthless), bounded by the operation timeout. `Ok(None)`: the
    /// server refused it as a duplicate key (a racing upsert lost).
    async fn coordinate<T>(
        &self,
        collection: &'static str,
        context: &str,
        f: impl Future<Output = Result<T, mongodb::error::Error>>,
    ) -> Result<Option<T>, StoreError> {
        match tokio::time::timeout(self.op_timeout, f).await {
            Err(_) => Err(StoreError::Unavailable {
                target: self.db.target.clone(),
                reason: format!(
                    "{context}: no answer within {} ms",
                    self.op_timeout.as_millis()
                ),
            }),
            Ok(Ok(v)) => Ok(Some(v)),
            Ok(Err(e)) if is_duplicate_key(&e) => Ok(None),
            Ok(Err(e)) => Err(match self.db.failure(collection, context, e) {
                Failure::Transient(reason) => StoreError::Unavailable {
                    target: self.db.target.clone(),
                    reason,
                },
                Failure::Auth(detail) => StoreError::AuthFailed {
                    target: self.db.target.clone(),
                    detail,
                },
                Failure::Permanent(err) => err,
            }),
        }
    }

    /// Lease `name`'s record, if any.
    async fn lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        let doc: Option<Document> = self
            .find_one(LEASES, "read lease", doc! { "_id": name_id("lease", name) })
            .await?;
        doc.as_ref().map(lease_from).transpose()
    }
}

/// The `_id` of a lease or host record: 12 bytes of the SHA-256 of its
/// kind and name (CongoDB takes only ObjectIds; 96 bits never collide in
/// practice).
fn name_id(kind: &str, name: &str) -> ObjectId {
    use sha2::Digest;
    let digest = sha2::Sha256::new()
        .chain_update(kind.as_bytes())
        .chain_update([0u8])
        .chain_update(name.as_bytes())
        .finalize();
    let mut bytes = [0u8; 12];
    bytes.copy_from_slice(&digest[..12]);
    ObjectId::from_bytes(bytes)
}

/// A duplicate-key refusal: MongoDB's code 11000, or CongoDB's "Duplicate
/// key error" (code 1).
/// Says that a fenced listing write lost to a newer refresher's.
fn superseded(provider: &str, epoch: u64, stored: u64) {
    tracing::info!(
        provider,
        epoch,
        stored_epoch = stored,
        "listing write superseded: a newer refresher's listing is stored; this one is dropped"
    );
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    codes(e).contains(&11000) || e.to_string().contains("Duplicate key")
}

fn int_field(doc: &Document, key: &str) -> u64 {
    match doc.get(key) {
        Some(Bson::Int64(v)) => (*v).max(0) as u64,
        Some(Bson::Int32(v)) => (*v).max(0) as u64,
        Some(Bson::Double(v)) if *v >= 0.0 => *v as u64,
        _ => 0,
    }
}

fn date_field(doc: &Document, key: &str) -> u64 {
    match doc.get(key) {
        Some(Bson::DateTime(d)) => d.timestamp_millis().max(0) as u64,
        _ => 0,
    }
}

fn lease_from(doc: &Document) -> Result<Lease, StoreError> {
    let name = doc.get_str("name").map_err(|e| StoreError::Decode {
        collection: LEASES,
        key: doc.get("_id").map(|v| v.to_string()).unwrap_or_default(),
        message: e.to_string(),
    })?;
    Ok(Lease {
        name: name.to_string(),
        owner: doc.get_str("owner").unwrap_or_default().to_string(),
        epoch: int_field(doc, "epoch"),
        renewed_ms: date_field(doc, "renewed"),
        ttl_ms: int_field(doc, "ttl_ms"),
    })
}

fn node_from(doc: &Document) -> Result<NodeRecord, StoreError> {
    let id = doc.get_str("id").map_err(|e| StoreError::Decode {
        collection: NODES,
        key: doc.get("_id").map(|v| v.to_string()).unwrap_or_default(),
        message: e.to_string(),
    })?;
    Ok(NodeRecord {
        id: id.to_string(),
        advertise_rtmp: doc
            .get_str("advertise_rtmp")
            .unwrap_or_default()
            .to_string(),
        api: doc.get_str("api").unwrap_or_default().to_string(),
        running: int_field(doc, "running").min(u32::MAX as u64) as u32,
        owned: int_field(doc, "owned").min(u32::MAX as u64) as u32,
        seen_ms: date_field(doc, "seen"),
        started_ms: int_field(doc, "started_ms"),
        // Never handed out: another host must not learn a host's key.
        key: String::new(),
        live_ms: int_field(doc, "live_ms"),
    })
}

/// Splits items of the given sizes into consecutive ranges of at most
/// `limit` bytes each (an item larger than `limit` gets a range of its own).
fn chunk_ranges(sizes: &[usize], limit: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && bytes + size > limit {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

fn session_from_doc(d: SessionDoc) -> Result<MobileSession, StoreError> {
    Ok(MobileSession {
        meta: parse_json(SESSIONS, &d.session_id, &d.meta)?,
        id: d.session_id,
        stream_key: d.stream_key,
        started_ms: d.started_ms,
        closed_ms: d.closed_ms,
    })
}

fn stats_from_doc(d: StatsDoc) -> Result<StatsSnapshot, StoreError> {
    Ok(StatsSnapshot {
        data: parse_json(STATS, &d.stream_id, &d.data)?,
        stream_id: d.stream_id,
        taken_ms: d.taken_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::{chunk_ranges, classify, redact, Class};
    use bson::doc;
    use mongodb::error::{CommandError, Error, ErrorKind, IndexedWriteError, WriteError};
    use mongodb::error::{InsertManyError, WriteConcernError, WriteFailure};

    /// A server's answer with this error code, as the driver reports it.
    fn command(code: i32, name: &str) -> Error {
        let e: CommandError = bson::from_document(doc! {
            "code": code, "codeName": name, "errmsg": format!("{name} (test)"),
        })
        .expect("a command error");
        Error::from(ErrorKind::Command(e))
    }

    fn write(code: i32) -> Error {
        let e: WriteError =
            bson::from_document(doc! {"code": code, "errmsg": "test"}).expect("a write error");
        Error::from(ErrorKind::Write(WriteFailure::WriteError(e)))
    }

    /// A write concern error; its labels become the error's.
    fn write_concern(code: i32, labels: &[&str]) -> Error {
        let e: WriteConcernError = bson::from_document(doc! {
            "code": code, "codeName": "test", "errmsg": "test", "errorLabels": labels,
        })
        .expect("a write concern error");
        Error::from(ErrorKind::Write(WriteFailure::WriteConcernError(e)))
    }

    fn insert_many(code: i32) -> Error {
        let w: IndexedWriteError =
            bson::from_document(doc! {"index": 0, "code": code, "errmsg": "test"})
                .expect("an indexed write error");
        let e: InsertManyError =
            bson::from_document(doc! {"writeErrors": [bson::to_bson(&w).expect("bson")]})
                .expect("an insert_many error");
        Error::from(ErrorKind::InsertMany(e))
    }

    #[test]
    fn refused_credentials_are_auth_failures_not_outages() {
        assert_eq!(classify(&command(18, "AuthenticationFailed")), Class::Auth);
        assert_eq!(classify(&command(13, "Unauthorized")), Class::Auth);
        assert_eq!(classify(&write(13)), Class::Auth);
        assert_eq!(classify(&insert_many(13)), Class::Auth);
        // Still auth when the server also labels it retryable.
        let e = write_concern(13, &["RetryableWriteError"]);
        assert!(e.contains_label("RetryableWriteError"));
        assert_eq!(classify(&e), Class::Auth);
    }

    #[test]
    fn outages_are_transient_and_refusals_permanent() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(classify(&Error::from(io)), Class::Transient);
        assert_eq!(
            classify(&command(91, "ShutdownInProgress")),
            Class::Transient
        );
        assert_eq!(
            classify(&command(10107, "NotWritablePrimary")),
            Class::Transient
        );
        assert_eq!(classify(&write(11600)), Class::Transient);
        assert_eq!(
            classify(&write_concern(64, &["RetryableWriteError"])),
            Class::Transient
        );
        assert_eq!(classify(&write_concern(64, &[])), Class::Permanent);

        assert_eq!(classify(&command(2, "BadValue")), Class::Permanent);
        assert_eq!(classify(&write(11000)), Class::Permanent);
        assert_eq!(classify(&insert_many(11000)), Class::Permanent);
        assert_eq!(
            classify(&command(121, "DocumentValidationFailure")),
            Class::Permanent
        );
    }

    #[test]
    fn listings_are_chunked_under_the_limit() {
        assert_eq!(chunk_ranges(&[], 10), vec![]);
        assert_eq!(chunk_ranges(&[4, 4, 4, 4], 10), vec![0..2, 2..4]);
        assert_eq!(
            chunk_ranges(&[12, 1, 10, 1], 10),
            vec![0..1, 1..2, 2..3, 3..4]
        );
        assert_eq!(chunk_ranges(&[5, 5, 5], 10), vec![0..2, 2..3]);
        // 20k streams of 1 KiB: each chunk stays far below MongoDB's 16 MB.
        let sizes = vec![1024; 20_000];
        let ranges = chunk_ranges(&sizes, super::LISTING_CHUNK_BYTES);
        assert!(ranges.len() >= 5);
        assert!(ranges
            .iter()
            .all(|r| r.len() * 1024 <= super::LISTING_CHUNK_BYTES));
        assert_eq!(ranges.iter().map(|r| r.len()).sum::<usize>(), 20_000);
    }

    #[test]
    fn redact_hides_the_password_only() {
        assert_eq!(
            redact("mongodb://bob:secret@db:27017/dss?x=1"),
            "mongodb://bob:***@db:27017/dss?x=1"
        );
        assert_eq!(redact("mongodb://db:27017/dss"), "mongodb://db:27017/dss");
    }
}
