//! Statistics snapshots (`stats`): the latest of each stream, its data as
//! JSON text.

use super::db::Db;
use super::ops::Op;
use super::{MongoStore, OP_OVERHEAD, STATS};
use crate::error::StoreError;
use crate::lenient;
use crate::queue::Failure;
use crate::types::{parse_json, StatsSnapshot};
use bson::doc;
use serde::Deserialize;

#[derive(Deserialize)]
struct StatsDoc {
    stream_id: String,
    #[serde(deserialize_with = "lenient::u64")]
    taken_ms: u64,
    data: String,
}

fn stats_from_doc(d: StatsDoc) -> Result<StatsSnapshot, StoreError> {
    Ok(StatsSnapshot {
        data: parse_json(STATS, &d.stream_id, &d.data)?,
        stream_id: d.stream_id,
        taken_ms: d.taken_ms,
    })
}

/// Stores snapshots; each replaces its stream's previous one.
pub(super) async fn put(
    store: &MongoStore,
    snapshots: Vec<StatsSnapshot>,
) -> Result<(), StoreError> {
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
    store
        .queue
        .submit(Op::PutStats { snapshots: rows }, bytes)
        .await
}

/// The latest snapshot of a stream, if any.
pub(super) async fn get(
    store: &MongoStore,
    stream_id: &str,
) -> Result<Option<StatsSnapshot>, StoreError> {
    store
        .find_one::<StatsDoc>(STATS, "get stats", doc! {"stream_id": stream_id})
        .await?
        .map(stats_from_doc)
        .transpose()
}

/// The latest snapshot of every stream, ordered by stream id.
pub(super) async fn all(store: &MongoStore) -> Result<Vec<StatsSnapshot>, StoreError> {
    let docs: Vec<StatsDoc> = store.find_all(STATS, "list stats", doc! {}).await?;
    let mut out = docs
        .into_iter()
        .map(stats_from_doc)
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by(|a, b| a.stream_id.cmp(&b.stream_id));
    Ok(out)
}

/// Applies snapshots' writes, one upsert each.
pub(super) async fn apply_put(db: &Db, snapshots: &[(String, u64, String)]) -> Result<(), Failure> {
    for (stream_id, taken_ms, data) in snapshots {
        db.coll(STATS)
            .update_one(
                doc! {"stream_id": stream_id},
                doc! {"$set": {"taken_ms": *taken_ms as i64, "data": data}},
            )
            .upsert(true)
            .await
            .map_err(|e| db.failure(STATS, "put stats", e))?;
    }
    Ok(())
}
