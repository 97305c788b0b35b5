//! Stream positions (`geotags`), one document per stream. A bounding box is
//! a range query (no server-side geo operators: CongoDB has none), checked
//! exactly here.

use super::db::Db;
use super::ops::Op;
use super::{MongoStore, GEOTAGS, OP_OVERHEAD};
use crate::error::StoreError;
use crate::lenient;
use crate::queue::Failure;
use crate::types::{last_per_key, BBox, Geotag};
use bson::{doc, Document};
use serde::{Deserialize, Serialize};

/// Stream ids per `$in` when replacing or deleting geotags. 1000 ids stay
/// far below the 16 MB command cap whatever their length (ids are short).
const IDS_PER_COMMAND: usize = 1000;

#[derive(Serialize, Deserialize)]
struct GeotagDoc {
    stream_id: String,
    lat: f64,
    lon: f64,
    #[serde(deserialize_with = "lenient::u64")]
    updated_ms: u64,
}

/// Stores stream positions (for a stream given twice, the last wins).
pub(super) async fn put(store: &MongoStore, tags: Vec<Geotag>) -> Result<(), StoreError> {
    for t in &tags {
        t.validate()?;
    }
    let tags = last_per_key(tags, |t| &t.stream_id);
    let mut bytes = 0;
    let mut ids = Vec::with_capacity(tags.len());
    let mut docs = Vec::with_capacity(tags.len());
    for t in tags {
        bytes += t.stream_id.len() * 2 + OP_OVERHEAD;
        docs.push(MongoStore::encode(
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
    store
        .queue
        .submit(Op::PutGeotags { ids, docs }, bytes)
        .await
}

/// Forgets the positions of these streams.
pub(super) async fn delete(store: &MongoStore, stream_ids: Vec<String>) -> Result<(), StoreError> {
    let bytes = stream_ids.iter().map(|s| s.len() + OP_OVERHEAD).sum();
    store
        .queue
        .submit(Op::DeleteGeotags { ids: stream_ids }, bytes)
        .await
}

/// The geotags inside the box, ordered by stream id.
pub(super) async fn within(store: &MongoStore, bbox: BBox) -> Result<Vec<Geotag>, StoreError> {
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
    let docs: Vec<GeotagDoc> = store.find_all(GEOTAGS, "query geotags", filter).await?;
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

/// Applies a geotag write. Delete then insert: one scan per 1000 ids on
/// servers without indexes (CongoDB), instead of one per geotag.
pub(super) async fn apply_put(db: &Db, ids: &[String], docs: &[Document]) -> Result<(), Failure> {
    apply_delete(db, ids).await?;
    if !docs.is_empty() {
        db.coll(GEOTAGS)
            .insert_many(docs)
            .await
            .map_err(|e| db.failure(GEOTAGS, "insert geotags", e))?;
    }
    Ok(())
}

/// Applies a geotags' removal, [`IDS_PER_COMMAND`] ids at a time.
pub(super) async fn apply_delete(db: &Db, ids: &[String]) -> Result<(), Failure> {
    for part in ids.chunks(IDS_PER_COMMAND) {
        db.coll(GEOTAGS)
            .delete_many(doc! {"stream_id": {"$in": part}})
            .await
            .map_err(|e| db.failure(GEOTAGS, "delete geotags", e))?;
    }
    Ok(())
}
