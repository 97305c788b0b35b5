//! GPS tracks (`gps_buckets`): a session's points in bucket documents per
//! hour of `t_ms`, each bounded in points and bytes, so a track read from a
//! given time skips older buckets and no update rewrites much.

use super::db::Db;
use super::ops::Op;
use super::{MongoStore, GPS_BUCKETS, OP_OVERHEAD};
use crate::error::StoreError;
use crate::lenient;
use crate::queue::Failure;
use crate::types::{check_id, check_int, parse_json, GpsPoint};
use bson::oid::ObjectId;
use bson::{doc, Document};
use serde::{Deserialize, Serialize};

/// GPS points are bucketed per session and per hour of `t_ms`, so a track
/// read from a given time skips older buckets.
const BUCKET_SPAN_MS: u64 = 3_600_000;

/// Most points in one bucket document. 1000: an hour at 1 Hz is four
/// documents; each update rewrites at most ~60 KB.
const BUCKET_MAX_POINTS: usize = 1000;

/// Most bytes of points in one bucket document. 4 MiB: a quarter of the
/// 16 MB cap; one point's `extra` is at most [`crate::MAX_JSON_BYTES`].
const BUCKET_MAX_BYTES: usize = 4 << 20;

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

/// Points going into one bucket document in one update.
pub(super) struct Batch {
    bucket: u64,
    pub(super) points: Vec<Document>,
    bytes: usize,
}

/// Appends GPS points to a session's track.
pub(super) async fn append(
    store: &MongoStore,
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
            MongoStore::encode(GPS_BUCKETS, session_id, &point)?,
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
    store.queue.submit(op, total + OP_OVERHEAD).await
}

/// The session's track in time order, from `since_ms` when given.
pub(super) async fn read(
    store: &MongoStore,
    session_id: &str,
    since_ms: Option<u64>,
) -> Result<Vec<GpsPoint>, StoreError> {
    let since = since_ms.unwrap_or(0);
    check_int("track since_ms", since)?;
    let mut buckets: Vec<BucketDoc> = store
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

/// Applies an append: each batch into a bucket of its hour with room left,
/// or a new one. A retried batch may land twice: reads drop repeated t_ms.
pub(super) async fn apply_append(
    db: &Db,
    session_id: &str,
    batches: &[Batch],
) -> Result<(), Failure> {
    for b in batches {
        let n = b.points.len();
        db.coll(GPS_BUCKETS)
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
            .map_err(|e| db.failure(GPS_BUCKETS, "append GPS points", e))?;
    }
    Ok(())
}
