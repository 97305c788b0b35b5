//! The store's configuration, meant to be embedded in the host's config file.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Which database the store uses and how it copes with MongoDB outages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `None`, `"embedded"` or `"sqlite"`: the embedded SQLite store at
    /// `sqlite_path`. `"mongodb://host:port/db?…"`: MongoDB (database `db`,
    /// `dss` when the URL names none).
    pub url: Option<String>,
    /// The SQLite file (created with its directory when missing). Relative
    /// paths are relative to the process's working directory: the host
    /// resolves them against its base directory first.
    pub sqlite_path: PathBuf,
    /// Most writes held while MongoDB is unreachable; further writes fail.
    pub queue_limit: usize,
    /// Most bytes (BSON) held while MongoDB is unreachable.
    pub queue_limit_bytes: usize,
    /// Longest one MongoDB operation may take before it counts as failed
    /// (and is retried: every write is idempotent).
    pub op_timeout_ms: u64,
    /// How long opening the store waits for MongoDB before it returns a
    /// degraded store that connects later.
    pub connect_wait_ms: u64,
    /// Longest pause between reconnection attempts (they back off from 100 ms).
    pub retry_max_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            sqlite_path: PathBuf::from("dss.sqlite"),
            // 10k writes: ~3 h of one phone's GPS batches, or minutes of a
            // busy host's writes; past that a long outage must show as errors.
            queue_limit: 10_000,
            // 64 MiB: bounds memory even when the queue holds listings of
            // several MB each.
            queue_limit_bytes: 64 << 20,
            // 10 s: a 10k-stream listing (~3 MB) takes well under 1 s even on
            // the in-memory test server; anything slower is a stalled server.
            op_timeout_ms: 10_000,
            // 3 s: long enough for a LAN MongoDB to answer the first ping,
            // short enough not to hold up `dss serve` when it is down.
            connect_wait_ms: 3_000,
            // 5 s: a returning MongoDB is noticed within 5 s, without
            // hammering a down one.
            retry_max_ms: 5_000,
        }
    }
}

impl StoreConfig {
    /// The embedded SQLite store in `path`, other settings default.
    pub fn embedded(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            sqlite_path: path.into(),
            ..StoreConfig::default()
        }
    }

    /// MongoDB at `url`, other settings default.
    pub fn mongodb(url: impl Into<String>) -> Self {
        StoreConfig {
            url: Some(url.into()),
            ..StoreConfig::default()
        }
    }

    /// Whether this selects the embedded SQLite store.
    pub fn is_embedded(&self) -> bool {
        matches!(
            self.url.as_deref(),
            None | Some("") | Some("embedded") | Some("sqlite")
        )
    }

    pub(crate) fn op_timeout(&self) -> Duration {
        Duration::from_millis(self.op_timeout_ms)
    }

    pub(crate) fn connect_wait(&self) -> Duration {
        Duration::from_millis(self.connect_wait_ms)
    }

    pub(crate) fn retry_max(&self) -> Duration {
        Duration::from_millis(self.retry_max_ms)
    }
}
