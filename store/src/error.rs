//! The store's error type: every variant names the file, URL or collection involved.

use std::path::PathBuf;

/// An error from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed on the database file.
    #[error("SQLite database {}: {context}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What the store was doing.
        context: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The SQLite database file cannot be used (not a DSS store, too new, …).
    #[error("SQLite database {}: {message}", path.display())]
    SqliteFile {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The store URL is not one the store knows.
    #[error("store URL {url:?}: {message}")]
    Url {
        /// The URL, password removed.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// MongoDB failed an operation (not a connectivity problem: those queue).
    #[error("MongoDB {target}, collection {collection}: {context}: {source}")]
    Mongo {
        /// Hosts and database.
        target: String,
        /// The collection.
        collection: &'static str,
        /// What the store was doing.
        context: String,
        /// The driver's error.
        #[source]
        source: Box<mongodb::error::Error>,
    },
    /// The database refused the store's credentials, or the user lacks a
    /// privilege the operation needs (MongoDB codes 18 and 13, or the
    /// driver's authentication error). Not an outage: the database answered.
    #[error("{target}: authentication failed: {detail}")]
    AuthFailed {
        /// Hosts and database.
        target: String,
        /// What the store was doing, and the database's answer.
        detail: String,
    },
    /// The database cannot be reached now; reads fail fast while degraded.
    #[error("store {target} is unavailable: {reason}")]
    Unavailable {
        /// Which store.
        target: String,
        /// Why.
        reason: String,
    },
    /// The write queue is full while the database is unreachable: the write
    /// was not accepted.
    #[error(
        "store {target} is unavailable and its write queue is full \
         ({queued} writes, {queued_bytes} bytes; limits {limit} writes, {limit_bytes} bytes): write rejected"
    )]
    QueueFull {
        /// Which store.
        target: String,
        /// Writes waiting.
        queued: usize,
        /// Bytes waiting.
        queued_bytes: usize,
        /// The configured limit on writes.
        limit: usize,
        /// The configured limit on bytes.
        limit_bytes: usize,
    },
    /// A record given to the store is not valid.
    #[error("invalid {what}: {message}")]
    Invalid {
        /// Which kind of record or field.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A stored record could not be decoded.
    #[error("collection {collection}, record {key:?}: cannot decode: {message}")]
    Decode {
        /// The collection (MongoDB) or table (SQLite).
        collection: &'static str,
        /// The record's key.
        key: String,
        /// What failed.
        message: String,
    },
    /// A record could not be encoded as BSON.
    #[error("collection {collection}, record {key:?}: cannot encode as BSON: {message}")]
    Encode {
        /// The collection or table.
        collection: &'static str,
        /// The record's key.
        key: String,
        /// What failed.
        message: String,
    },
    /// Another live host reports under this host's node id (with another
    /// key): cluster mode.
    #[error("node id {id:?} is in use by another live host{}", other.as_deref().map(|o| format!(" ({o})")).unwrap_or_default())]
    NodeTaken {
        /// The node id.
        id: String,
        /// What the store knows of the other host (its API, when it
        /// started).
        other: Option<String>,
    },
    /// The backend cannot do this.
    #[error("{target} does not support {what}")]
    Unsupported {
        /// Which store.
        target: String,
        /// What was asked.
        what: &'static str,
    },
    /// The store's worker has stopped (the store is shutting down).
    #[error("store {target} is closed")]
    Closed {
        /// Which store.
        target: String,
    },
}
