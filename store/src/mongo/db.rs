//! Access to the database: the write queue's sink ([`Db`]: indexes, probe,
//! failures classified) and the store's reads (fail fast while degraded,
//! and a connectivity failure degrades the store).

use super::errors::{classify, Class};
use super::ops::Op;
use super::{MongoStore, GEOTAGS, GPS_BUCKETS, KV, LISTINGS, LISTING_CHUNKS, SESSIONS, STATS};
use crate::error::StoreError;
use crate::queue::{Failure, Sink};
use async_trait::async_trait;
use bson::{doc, Bson, Document};
use futures_util::TryStreamExt;
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

/// The database side: collections, and the one-time index creation.
pub(super) struct Db {
    db: Database,
    pub(super) target: String,
    indexed: AtomicBool,
}

impl Db {
    pub(super) fn new(db: Database, target: String) -> Self {
        Db {
            db,
            target,
            indexed: AtomicBool::new(false),
        }
    }

    pub(super) fn coll(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    pub(super) fn typed<T: Send + Sync>(&self, name: &str) -> Collection<T> {
        self.db.collection(name)
    }

    pub(super) fn failure(
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

impl MongoStore {
    /// Runs a read: fails fast while degraded; a connectivity failure turns
    /// the store degraded.
    pub(super) async fn read<T>(
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
    pub(super) async fn find_all<T: DeserializeOwned + Send + Sync + Unpin>(
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

    pub(super) async fn find_one<T: DeserializeOwned + Send + Sync + Unpin>(
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

    pub(super) fn encode<T: Serialize>(
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

/// An integer field read leniently (any numeric BSON type; 0 when absent,
/// negative or not a number).
pub(super) fn int_field(doc: &Document, key: &str) -> u64 {
    match doc.get(key) {
        Some(Bson::Int64(v)) => (*v).max(0) as u64,
        Some(Bson::Int32(v)) => (*v).max(0) as u64,
        Some(Bson::Double(v)) if *v >= 0.0 => *v as u64,
        _ => 0,
    }
}
