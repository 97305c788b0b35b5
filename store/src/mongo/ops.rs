//! The queued writes: built (with their BSON) when submitted, applied by
//! the queue's worker through the collections' files, and described for
//! logs and the health.

use super::db::Db;
use super::listings::ListingWrite;
use super::tracks::Batch;
use super::{geotags, kv, listings, sessions, stats, tracks};
use super::{GEOTAGS, GPS_BUCKETS, KV, LISTINGS, LISTING_CHUNKS, SESSIONS, STATS};
use crate::queue::Failure;
use bson::Document;

/// One queued write, with its BSON built at submit time (so encoding errors
/// reach the caller, and the queue knows its size).
pub(super) enum Op {
    PutListing(ListingWrite),
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

impl Db {
    /// Applies one write (idempotent: the queue may retry it).
    pub(super) async fn apply_op(&self, op: &Op) -> Result<(), Failure> {
        match op {
            Op::PutListing(write) => listings::apply_put(self, write).await,
            Op::DeleteListing { provider } => listings::apply_delete(self, provider).await,
            Op::PutGeotags { ids, docs } => geotags::apply_put(self, ids, docs).await,
            Op::DeleteGeotags { ids } => geotags::apply_delete(self, ids).await,
            Op::CreateSession { id, fields } => sessions::apply_create(self, id, fields).await,
            Op::CloseSession { id, closed_ms } => sessions::apply_close(self, id, *closed_ms).await,
            Op::ForgetPhone { stream_id } => sessions::apply_forget_phone(self, stream_id).await,
            Op::AppendPoints {
                session_id,
                batches,
            } => tracks::apply_append(self, session_id, batches).await,
            Op::PutKv {
                namespace,
                key,
                value,
            } => kv::apply_put(self, namespace, key, value).await,
            Op::DeleteKv { namespace, key } => kv::apply_delete(self, namespace, key).await,
            Op::PutStats { snapshots } => stats::apply_put(self, snapshots).await,
        }
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
    pub(super) fn describe(&self) -> String {
        match self {
            Op::PutListing(ListingWrite {
                provider, chunks, ..
            }) => format!(
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
