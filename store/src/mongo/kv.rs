//! Key/value metadata (`kv`): one document per namespace and key, the
//! value as JSON text.

use super::db::Db;
use super::ops::Op;
use super::{MongoStore, KV, OP_OVERHEAD};
use crate::error::StoreError;
use crate::queue::Failure;
use crate::types::{check_id, json_text, parse_json};
use bson::doc;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct KvDoc {
    key: String,
    value: String,
}

/// Sets a value.
pub(super) async fn put(
    store: &MongoStore,
    namespace: &str,
    key: &str,
    value: Value,
) -> Result<(), StoreError> {
    check_id("key/value namespace", namespace)?;
    check_id("key/value key", key)?;
    let value = json_text("key/value value", &value)?;
    let bytes = namespace.len() + key.len() + value.len() + OP_OVERHEAD;
    let op = Op::PutKv {
        namespace: namespace.to_string(),
        key: key.to_string(),
        value,
    };
    store.queue.submit(op, bytes).await
}

/// A value, if set.
pub(super) async fn get(
    store: &MongoStore,
    namespace: &str,
    key: &str,
) -> Result<Option<Value>, StoreError> {
    store
        .find_one::<KvDoc>(KV, "get value", doc! {"namespace": namespace, "key": key})
        .await?
        .map(|d| parse_json(KV, key, &d.value))
        .transpose()
}

/// Removes a value.
pub(super) async fn delete(
    store: &MongoStore,
    namespace: &str,
    key: &str,
) -> Result<(), StoreError> {
    let op = Op::DeleteKv {
        namespace: namespace.to_string(),
        key: key.to_string(),
    };
    store
        .queue
        .submit(op, namespace.len() + key.len() + OP_OVERHEAD)
        .await
}

/// Every value of a namespace, ordered by key.
pub(super) async fn list(
    store: &MongoStore,
    namespace: &str,
) -> Result<Vec<(String, Value)>, StoreError> {
    let docs: Vec<KvDoc> = store
        .find_all(KV, "list values", doc! {"namespace": namespace})
        .await?;
    let mut out = docs
        .into_iter()
        .map(|d| parse_json(KV, &d.key, &d.value).map(|v| (d.key, v)))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Applies a value's write (an upsert).
pub(super) async fn apply_put(
    db: &Db,
    namespace: &str,
    key: &str,
    value: &str,
) -> Result<(), Failure> {
    db.coll(KV)
        .update_one(
            doc! {"namespace": namespace, "key": key},
            doc! {"$set": {"value": value}},
        )
        .upsert(true)
        .await
        .map_err(|e| db.failure(KV, "put value", e))?;
    Ok(())
}

/// Applies a value's removal.
pub(super) async fn apply_delete(db: &Db, namespace: &str, key: &str) -> Result<(), Failure> {
    db.coll(KV)
        .delete_many(doc! {"namespace": namespace, "key": key})
        .await
        .map_err(|e| db.failure(KV, "delete value", e))?;
    Ok(())
}
