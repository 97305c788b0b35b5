//! Cluster coordination ([`crate::cluster`]): leases (`cluster_leases`) and
//! host records (`cluster_nodes`). Never queued (a lease written later is
//! worthless): each command is bounded by the operation timeout, written
//! with majority concern, and decided by the server on its own clock.

use super::db::int_field;
use super::errors::is_duplicate_key;
use super::{MongoStore, LEASES, NODES};
use crate::cluster::{Acquired, Lease, NodeRecord};
use crate::error::StoreError;
use crate::queue::Failure;
use bson::oid::ObjectId;
use bson::{doc, Bson, Document};
use mongodb::options::{ReturnDocument, WriteConcern};
use std::future::Future;

/// Acquires lease `name` for `owner` when it is free, expired or ours.
pub(super) async fn lease_acquire(
    store: &MongoStore,
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
    let coll = store.db.coll(LEASES);
    let got = coordinate(
        store,
        LEASES,
        &format!("acquire lease {name:?}"),
        async move {
            coll.find_one_and_update(filter, update)
                .upsert(true)
                .return_document(ReturnDocument::After)
                .write_concern(WriteConcern::majority())
                .await
        },
    )
    .await?;
    match got {
        Some(Some(doc)) => Ok(Acquired::Held(lease_from(&doc)?)),
        // Held by another (the upsert lost to the existing document).
        _ => Ok(Acquired::Busy(lease(store, name).await?)),
    }
}

/// Renews `owner`'s lease `name` of `epoch`; `false` when no longer theirs.
pub(super) async fn lease_renew(
    store: &MongoStore,
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
    let coll = store.db.coll(LEASES);
    let got = coordinate(
        store,
        LEASES,
        &format!("renew lease {name:?}"),
        async move {
            coll.find_one_and_update(filter, update)
                .write_concern(WriteConcern::majority())
                .await
        },
    )
    .await?;
    Ok(matches!(got, Some(Some(_))))
}

/// Gives `owner`'s lease `name` of `epoch` up: it expires at once.
pub(super) async fn lease_release(
    store: &MongoStore,
    name: &str,
    owner: &str,
    epoch: u64,
) -> Result<(), StoreError> {
    let filter = doc! { "_id": name_id("lease", name), "owner": owner, "epoch": epoch as i64 };
    let update = doc! { "$set": { "renewed": bson::DateTime::from_millis(0) } };
    let coll = store.db.coll(LEASES);
    coordinate(
        store,
        LEASES,
        &format!("release lease {name:?}"),
        async move {
            coll.find_one_and_update(filter, update)
                .write_concern(WriteConcern::majority())
                .await
        },
    )
    .await?;
    Ok(())
}

/// Every lease whose name starts with `prefix`, ordered by name.
pub(super) async fn leases(store: &MongoStore, prefix: &str) -> Result<Vec<Lease>, StoreError> {
    let docs: Vec<Document> = store.find_all(LEASES, "list leases", doc! {}).await?;
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

/// Records host `node`; the server's clock.
pub(super) async fn put_node(store: &MongoStore, node: NodeRecord) -> Result<u64, StoreError> {
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
    let coll = store.db.coll(NODES);
    let got = coordinate(
        store,
        NODES,
        &format!("record host {:?}", node.id),
        async move {
            coll.find_one_and_update(filter, update)
                .upsert(true)
                .return_document(ReturnDocument::After)
                .write_concern(WriteConcern::majority())
                .await
        },
    )
    .await?;
    match got {
        Some(Some(doc)) => Ok(node_from(&doc)?.seen_ms),
        // The upsert lost: another live host holds the id.
        None => {
            let other = nodes(store)
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

/// Every host record, ordered by id.
pub(super) async fn nodes(store: &MongoStore) -> Result<Vec<NodeRecord>, StoreError> {
    let docs: Vec<Document> = store.find_all(NODES, "list hosts", doc! {}).await?;
    let mut out = docs.iter().map(node_from).collect::<Result<Vec<_>, _>>()?;
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Runs a coordination command: never queued (a lease written later is
/// worthless), bounded by the operation timeout. `Ok(None)`: the
/// server refused it as a duplicate key (a racing upsert lost).
async fn coordinate<T>(
    store: &MongoStore,
    collection: &'static str,
    context: &str,
    f: impl Future<Output = Result<T, mongodb::error::Error>>,
) -> Result<Option<T>, StoreError> {
    match tokio::time::timeout(store.op_timeout, f).await {
        Err(_) => Err(StoreError::Unavailable {
            target: store.db.target.clone(),
            reason: format!(
                "{context}: no answer within {} ms",
                store.op_timeout.as_millis()
            ),
        }),
        Ok(Ok(v)) => Ok(Some(v)),
        Ok(Err(e)) if is_duplicate_key(&e) => Ok(None),
        Ok(Err(e)) => Err(match store.db.failure(collection, context, e) {
            Failure::Transient(reason) => StoreError::Unavailable {
                target: store.db.target.clone(),
                reason,
            },
            Failure::Auth(detail) => StoreError::AuthFailed {
                target: store.db.target.clone(),
                detail,
            },
            Failure::Permanent(err) => err,
        }),
    }
}

/// Lease `name`'s record, if any.
async fn lease(store: &MongoStore, name: &str) -> Result<Option<Lease>, StoreError> {
    let doc: Option<Document> = store
        .find_one(LEASES, "read lease", doc! { "_id": name_id("lease", name) })
        .await?;
    doc.as_ref().map(lease_from).transpose()
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
