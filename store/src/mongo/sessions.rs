//! Mobile sessions (`mobile_sessions`), one document per session keyed by
//! its id; and a phone forgotten across every collection that names it.

use super::db::Db;
use super::ops::Op;
use super::{MongoStore, GEOTAGS, GPS_BUCKETS, OP_OVERHEAD, SESSIONS, STATS};
use crate::error::StoreError;
use crate::lenient;
use crate::queue::Failure;
use crate::types::{check_id, check_int, json_text, parse_json, session_id};
use crate::types::{MobileSession, NewSession};
use bson::{doc, Bson, Document};
use serde::Deserialize;

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

fn session_from_doc(d: SessionDoc) -> Result<MobileSession, StoreError> {
    Ok(MobileSession {
        meta: parse_json(SESSIONS, &d.session_id, &d.meta)?,
        id: d.session_id,
        stream_key: d.stream_key,
        started_ms: d.started_ms,
        closed_ms: d.closed_ms,
    })
}

/// Records a new session (an existing one stays as it is); its id.
pub(super) async fn create(store: &MongoStore, session: NewSession) -> Result<String, StoreError> {
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
    store.queue.submit(op, bytes).await?;
    Ok(id)
}

/// Marks the session closed (the first close wins).
pub(super) async fn close(store: &MongoStore, id: &str, closed_ms: u64) -> Result<(), StoreError> {
    check_int("session closed_ms", closed_ms)?;
    let op = Op::CloseSession {
        id: id.to_string(),
        closed_ms,
    };
    store.queue.submit(op, id.len() + OP_OVERHEAD).await
}

/// One session, if it exists.
pub(super) async fn get(store: &MongoStore, id: &str) -> Result<Option<MobileSession>, StoreError> {
    store
        .find_one::<SessionDoc>(SESSIONS, "get session", doc! {"session_id": id})
        .await?
        .map(session_from_doc)
        .transpose()
}

/// The stream keys whose every session closed before `before_ms`.
pub(super) async fn phones_idle_since(
    store: &MongoStore,
    before_ms: u64,
) -> Result<Vec<String>, StoreError> {
    check_int("phones idle since", before_ms)?;
    let before = before_ms as i64;
    let keys = |filter: Document, context: &'static str| {
        let coll = store.db.coll(SESSIONS);
        store.read(SESSIONS, context, async move {
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

/// Forgets phone stream `stream_id`: sessions, track, geotag, statistics.
pub(super) async fn forget_phone(store: &MongoStore, stream_id: &str) -> Result<(), StoreError> {
    check_id("phone stream id", stream_id)?;
    let op = Op::ForgetPhone {
        stream_id: stream_id.to_string(),
    };
    store.queue.submit(op, stream_id.len() + OP_OVERHEAD).await
}

/// The sessions not closed yet, ordered by id.
pub(super) async fn active(store: &MongoStore) -> Result<Vec<MobileSession>, StoreError> {
    let docs: Vec<SessionDoc> = store
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

/// Applies a session's creation: inserted unless its id exists.
pub(super) async fn apply_create(db: &Db, id: &str, fields: &Document) -> Result<(), Failure> {
    db.coll(SESSIONS)
        .update_one(
            doc! {"session_id": id},
            doc! {"$setOnInsert": fields.clone()},
        )
        .upsert(true)
        .await
        .map_err(|e| db.failure(SESSIONS, "create session", e))?;
    Ok(())
}

/// Applies a session's close, unless it is closed already.
pub(super) async fn apply_close(db: &Db, id: &str, closed_ms: u64) -> Result<(), Failure> {
    db.coll(SESSIONS)
        .update_one(
            doc! {"session_id": id, "closed_ms": Bson::Null},
            doc! {"$set": {"closed_ms": closed_ms as i64}},
        )
        .await
        .map_err(|e| db.failure(SESSIONS, "close session", e))?;
    Ok(())
}

/// Applies a phone's removal from every collection that names it.
pub(super) async fn apply_forget_phone(db: &Db, stream_id: &str) -> Result<(), Failure> {
    for (coll, filter) in [
        (SESSIONS, doc! {"stream_key": stream_id}),
        (GPS_BUCKETS, doc! {"session_id": stream_id}),
        (GEOTAGS, doc! {"stream_id": stream_id}),
        (STATS, doc! {"stream_id": stream_id}),
    ] {
        db.coll(coll)
            .delete_many(filter)
            .await
            .map_err(|e| db.failure(coll, "forget a phone", e))?;
    }
    Ok(())
}
