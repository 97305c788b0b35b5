//! The embedded backend: one SQLite file (WAL), driven by a dedicated thread.
//!
//! Every call is a job sent to the thread that owns the connection, so the
//! Tokio runtime never blocks on disk. Listings are stored as BSON blobs of
//! the shared serde structs; the other records use promoted columns (and an
//! R-tree for geotags).

use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::types::{
    check_id, check_int, json_text, last_per_key, parse_json, BBox, Geotag, GpsPoint, ListedStream,
    Listing, MobileSession, NewSession, StatsSnapshot, StoreHealth,
};
use crate::Store;
use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The schema this code writes; a file with a higher version is refused.
const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for another process's write lock on the file.
/// 5 s: DSS is the only writer; this only covers a backup tool or a second
/// `dss` command reading the file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS listings (
    provider      TEXT PRIMARY KEY,
    fetched_at_ms INTEGER NOT NULL,
    streams       BLOB NOT NULL             -- BSON {streams: [ListedStream]}
);
CREATE TABLE IF NOT EXISTS geotags (
    id         INTEGER PRIMARY KEY,         -- the R-tree's id
    stream_id  TEXT NOT NULL UNIQUE,
    lat        REAL NOT NULL,
    lon        REAL NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS geotags_rtree USING rtree(id, min_lat, max_lat, min_lon, max_lon);
CREATE TABLE IF NOT EXISTS sessions (
    id         TEXT PRIMARY KEY,
    stream_key TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    closed_ms  INTEGER,
    meta       TEXT NOT NULL                -- JSON
);
CREATE INDEX IF NOT EXISTS sessions_active ON sessions(id) WHERE closed_ms IS NULL;
CREATE TABLE IF NOT EXISTS gps_points (
    session_id TEXT NOT NULL,
    t_ms       INTEGER NOT NULL,
    lat        REAL NOT NULL,
    lon        REAL NOT NULL,
    extra      TEXT,                        -- JSON
    PRIMARY KEY (session_id, t_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
    namespace TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,                -- JSON
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stats (
    stream_id TEXT PRIMARY KEY,
    taken_ms  INTEGER NOT NULL,
    data      TEXT NOT NULL                 -- JSON
);
";

/// The tables of [`SCHEMA`]; a file holding other tables is not a DSS store.
const TABLES: &[&str] = &[
    "listings",
    "geotags",
    "geotags_rtree",
    "sessions",
    "gps_points",
    "kv",
    "stats",
];

/// What a listing's blob holds (BSON needs a document at the top).
#[derive(Serialize)]
struct StreamsRef<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<&'a str>,
    streams: &'a [ListedStream],
}

#[derive(Deserialize)]
struct Streams {
    #[serde(default)]
    fingerprint: Option<String>,
    streams: Vec<ListedStream>,
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The embedded SQLite store.
pub(crate) struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    path: PathBuf,
    /// The last database error, until an operation succeeds again.
    last_error: Arc<Mutex<Option<String>>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the file and starts its thread.
    pub(crate) async fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        let path = config.sqlite_path.clone();
        let p = path.clone();
        let conn = tokio::task::spawn_blocking(move || open_connection(&p))
            .await
            .map_err(|e| StoreError::SqliteFile {
                path: path.clone(),
                message: format!("opening thread failed: {e}"),
            })??;
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("dss-store-sqlite".into())
            .spawn(move || {
                let mut conn = conn;
                // Ends when the last `SqliteStore` handle is dropped.
                for job in rx {
                    job(&mut conn);
                }
            })
            .map_err(|e| StoreError::SqliteFile {
                path: path.clone(),
                message: format!("cannot start the store thread: {e}"),
            })?;
        Ok(SqliteStore {
            jobs,
            path,
            last_error: Arc::new(Mutex::new(None)),
        })
    }

    /// Runs `f` on the store thread.
    async fn call<T: Send + 'static>(
        &self,
        context: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let closed = || StoreError::Closed {
            target: self.describe(),
        };
        self.jobs
            .send(Box::new(move |conn| {
                // The caller may have gone away; nothing to do then.
                let _ = tx.send(f(conn));
            }))
            .map_err(|_| closed())?;
        let result = rx.await.map_err(|_| closed())?;
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(v) => {
                *last = None;
                Ok(v)
            }
            Err(source) => {
                let err = StoreError::Sqlite {
                    path: self.path.clone(),
                    context: context.to_string(),
                    source,
                };
                *last = Some(err.to_string());
                Err(err)
            }
        }
    }
}

fn sqlite_err(path: &Path, context: &str, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.to_path_buf(),
        context: context.to_string(),
        source,
    }
}

/// Opens the file, checks it is a DSS store this code can use, and creates
/// the schema.
fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::SqliteFile {
            path: path.to_path_buf(),
            message: format!("cannot create directory {}: {e}", dir.display()),
        })?;
    }
    if path.is_dir() {
        return Err(StoreError::SqliteFile {
            path: path.to_path_buf(),
            message: "is a directory, not a database file".into(),
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn =
        Connection::open_with_flags(path, flags).map_err(|e| sqlite_err(path, "open", e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| sqlite_err(path, "set busy timeout", e))?;
    // The first statement reads the file header: a file that is not SQLite
    // fails here ("file is not a database").
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| sqlite_err(path, "read the database (enable WAL)", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), mode, "SQLite store: WAL not available, using this journal mode");
    }
    // NORMAL with WAL: a power cut may lose the last commits, never corrupts.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| sqlite_err(path, "set synchronous", e))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| sqlite_err(path, "read schema version", e))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::SqliteFile {
            path: path.to_path_buf(),
            message: format!(
                "schema version {version} was written by a newer DSS (this one knows up to {SCHEMA_VERSION})"
            ),
        });
    }
    if version == 0 {
        let foreign: Option<String> = {
            let mut stmt = conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'geotags_rtree_%'")
                .map_err(|e| sqlite_err(path, "read the schema", e))?;
            let names = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(|e| sqlite_err(path, "read the schema", e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| sqlite_err(path, "read the schema", e))?;
            names.into_iter().find(|n| !TABLES.contains(&n.as_str()))
        };
        if let Some(name) = foreign {
            return Err(StoreError::SqliteFile {
                path: path.to_path_buf(),
                message: format!("is an SQLite database of something else (it has table {name:?}), not a DSS store"),
            });
        }
    }
    let tx = conn
        .transaction()
        .map_err(|e| sqlite_err(path, "create the schema", e))?;
    tx.execute_batch(SCHEMA)
        .and_then(|()| tx.pragma_update(None, "user_version", SCHEMA_VERSION))
        .and_then(|()| tx.commit())
        .map_err(|e| sqlite_err(path, "create the schema", e))?;
    Ok(conn)
}

/// A decode failure inside a job, carried out as a rusqlite error.
fn decode_err(what: &str, key: &str, message: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Blob,
        format!("{what} {key:?}: {message}").into(),
    )
}

fn json_col(table: &'static str, key: &str, text: &str) -> Result<Value, rusqlite::Error> {
    parse_json(table, key, text).map_err(|e| decode_err(table, key, e))
}

fn session_from_row(r: &rusqlite::Row) -> Result<MobileSession, rusqlite::Error> {
    let id: String = r.get(0)?;
    let meta: String = r.get(4)?;
    Ok(MobileSession {
        stream_key: r.get(1)?,
        started_ms: r.get(2)?,
        closed_ms: r.get(3)?,
        meta: json_col("sessions", &id, &meta)?,
        id,
    })
}

fn stats_from_row(r: &rusqlite::Row) -> Result<StatsSnapshot, rusqlite::Error> {
    let stream_id: String = r.get(0)?;
    let data: String = r.get(2)?;
    Ok(StatsSnapshot {
        taken_ms: r.get(1)?,
        data: json_col("stats", &stream_id, &data)?,
        stream_id,
    })
}

#[async_trait]
impl Store for SqliteStore {
    fn describe(&self) -> String {
        format!("embedded SQLite at {}", self.path.display())
    }

    fn health(&self) -> StoreHealth {
        let last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        match &*last {
            None => StoreHealth::Ok,
            Some(reason) => StoreHealth::Degraded {
                reason: format!("last operation failed: {reason}"),
                queued_writes: 0,
                refused_writes: 0,
                last_refusal: None,
            },
        }
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Every write is committed before it returns.
        Ok(())
    }

    async fn put_listing(&self, listing: Listing) -> Result<(), StoreError> {
        listing.validate()?;
        let blob = bson::to_vec(&StreamsRef {
            fingerprint: listing.fingerprint.as_deref(),
            streams: &listing.streams,
        })
        .map_err(|e| StoreError::Encode {
            collection: "listings",
            key: listing.provider.clone(),
            message: e.to_string(),
        })?;
        self.call("put listing", move |c| {
            c.prepare_cached(
                "INSERT OR REPLACE INTO listings (provider, fetched_at_ms, streams) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![listing.provider, listing.fetched_at_ms, blob])?;
            Ok(())
        })
        .await
    }

    async fn get_listing(&self, provider: &str) -> Result<Option<Listing>, StoreError> {
        let provider = provider.to_string();
        self.call("get listing", move |c| {
            let row: Option<(u64, Vec<u8>)> = c
                .prepare_cached("SELECT fetched_at_ms, streams FROM listings WHERE provider = ?1")?
                .query_row([&provider], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((fetched_at_ms, blob)) = row else {
                return Ok(None);
            };
            let s: Streams = bson::from_slice(&blob)
                .map_err(|e| decode_err("listing of provider", &provider, e))?;
            Ok(Some(Listing {
                provider,
                fetched_at_ms,
                fingerprint: s.fingerprint,
                epoch: None,
                streams: s.streams,
            }))
        })
        .await
    }

    async fn delete_listing(&self, provider: &str) -> Result<(), StoreError> {
        let provider = provider.to_string();
        self.call("delete listing", move |c| {
            c.prepare_cached("DELETE FROM listings WHERE provider = ?1")?
                .execute([&provider])?;
            Ok(())
        })
        .await
    }

    async fn put_geotags(&self, tags: Vec<Geotag>) -> Result<(), StoreError> {
        for t in &tags {
            t.validate()?;
        }
        let tags = last_per_key(tags, |t| &t.stream_id);
        self.call("put geotags", move |c| {
            let tx = c.transaction()?;
            {
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO geotags (stream_id, lat, lon, updated_ms) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (stream_id) DO UPDATE SET lat = excluded.lat, lon = excluded.lon,
                     updated_ms = excluded.updated_ms RETURNING id",
                )?;
                let mut index = tx.prepare_cached(
                    "INSERT OR REPLACE INTO geotags_rtree (id, min_lat, max_lat, min_lon, max_lon)
                     VALUES (?1, ?2, ?2, ?3, ?3)",
                )?;
                for t in &tags {
                    let id: i64 = upsert
                        .query_row(params![t.stream_id, t.lat, t.lon, t.updated_ms], |r| {
                            r.get(0)
                        })?;
                    index.execute(params![id, t.lat, t.lon])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn delete_geotags(&self, stream_ids: Vec<String>) -> Result<(), StoreError> {
        self.call("delete geotags", move |c| {
            let tx = c.transaction()?;
            {
                let mut del_index = tx.prepare_cached(
                    "DELETE FROM geotags_rtree WHERE id = (SELECT id FROM geotags WHERE stream_id = ?1)",
                )?;
                let mut del = tx.prepare_cached("DELETE FROM geotags WHERE stream_id = ?1")?;
                for id in &stream_ids {
                    del_index.execute([id])?;
                    del.execute([id])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn geotags_in(&self, bbox: BBox) -> Result<Vec<Geotag>, StoreError> {
        bbox.validate()?;
        self.call("query geotags", move |c| {
            // The R-tree keeps 32-bit bounds rounded outwards: it yields a
            // superset, and `contains` makes the answer exact.
            let mut stmt = c.prepare_cached(
                "SELECT g.stream_id, g.lat, g.lon, g.updated_ms
                 FROM geotags_rtree r JOIN geotags g ON g.id = r.id
                 WHERE r.max_lat >= ?1 AND r.min_lat <= ?2 AND r.max_lon >= ?3 AND r.min_lon <= ?4",
            )?;
            let mut out = Vec::new();
            for (lo, hi) in bbox.lon_ranges() {
                let rows = stmt.query_map(params![bbox.min_lat, bbox.max_lat, lo, hi], |r| {
                    Ok(Geotag {
                        stream_id: r.get(0)?,
                        lat: r.get(1)?,
                        lon: r.get(2)?,
                        updated_ms: r.get(3)?,
                    })
                })?;
                for g in rows {
                    let g = g?;
                    if bbox.contains(g.lat, g.lon) {
                        out.push(g);
                    }
                }
            }
            out.sort_by(|a, b| a.stream_id.cmp(&b.stream_id));
            out.dedup_by(|a, b| a.stream_id == b.stream_id);
            Ok(out)
        })
        .await
    }

    async fn create_session(&self, session: NewSession) -> Result<String, StoreError> {
        let id = crate::types::session_id(&session)?;
        check_id("session stream_key", &session.stream_key)?;
        check_int("session started_ms", session.started_ms)?;
        let meta = json_text("session meta", &session.meta)?;
        let ret = id.clone();
        self.call("create session", move |c| {
            c.prepare_cached(
                "INSERT OR IGNORE INTO sessions (id, stream_key, started_ms, closed_ms, meta)
                 VALUES (?1, ?2, ?3, NULL, ?4)",
            )?
            .execute(params![id, session.stream_key, session.started_ms, meta])?;
            Ok(())
        })
        .await?;
        Ok(ret)
    }

    async fn close_session(&self, id: &str, closed_ms: u64) -> Result<(), StoreError> {
        check_int("session closed_ms", closed_ms)?;
        let id = id.to_string();
        self.call("close session", move |c| {
            c.prepare_cached(
                "UPDATE sessions SET closed_ms = ?2 WHERE id = ?1 AND closed_ms IS NULL",
            )?
            .execute(params![id, closed_ms])?;
            Ok(())
        })
        .await
    }

    async fn get_session(&self, id: &str) -> Result<Option<MobileSession>, StoreError> {
        let id = id.to_string();
        self.call("get session", move |c| {
            c.prepare_cached(
                "SELECT id, stream_key, started_ms, closed_ms, meta FROM sessions WHERE id = ?1",
            )?
            .query_row([&id], session_from_row)
            .optional()
        })
        .await
    }

    async fn phones_idle_since(&self, before_ms: u64) -> Result<Vec<String>, StoreError> {
        check_int("phones idle since", before_ms)?;
        self.call("list idle phones", move |c| {
            c.prepare_cached(
                "SELECT stream_key FROM sessions GROUP BY stream_key
                 HAVING MAX(COALESCE(closed_ms, 9223372036854775807)) < ?1
                 ORDER BY stream_key",
            )?
            .query_map([before_ms as i64], |r| r.get(0))?
            .collect()
        })
        .await
    }

    async fn forget_phone(&self, stream_id: &str) -> Result<(), StoreError> {
        let id = stream_id.to_string();
        self.call("forget a phone", move |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM sessions WHERE stream_key = ?1", [&id])?;
            tx.execute("DELETE FROM gps_points WHERE session_id = ?1", [&id])?;
            tx.execute(
                "DELETE FROM geotags_rtree WHERE id = (SELECT id FROM geotags WHERE stream_id = ?1)",
                [&id],
            )?;
            tx.execute("DELETE FROM geotags WHERE stream_id = ?1", [&id])?;
            tx.execute("DELETE FROM stats WHERE stream_id = ?1", [&id])?;
            tx.commit()
        })
        .await
    }

    async fn active_sessions(&self) -> Result<Vec<MobileSession>, StoreError> {
        self.call("list active sessions", move |c| {
            c.prepare_cached(
                "SELECT id, stream_key, started_ms, closed_ms, meta FROM sessions
                 WHERE closed_ms IS NULL ORDER BY id",
            )?
            .query_map([], session_from_row)?
            .collect()
        })
        .await
    }

    async fn append_points(
        &self,
        session_id: &str,
        points: Vec<GpsPoint>,
    ) -> Result<(), StoreError> {
        check_id("session id", session_id)?;
        let rows = points
            .into_iter()
            .map(|p| p.validate().map(|extra| (p, extra)))
            .collect::<Result<Vec<_>, _>>()?;
        let session_id = session_id.to_string();
        self.call("append GPS points", move |c| {
            let tx = c.transaction()?;
            {
                let mut ins = tx.prepare_cached(
                    "INSERT OR IGNORE INTO gps_points (session_id, t_ms, lat, lon, extra)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for (p, extra) in &rows {
                    ins.execute(params![session_id, p.t_ms, p.lat, p.lon, extra])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn track(
        &self,
        session_id: &str,
        since_ms: Option<u64>,
    ) -> Result<Vec<GpsPoint>, StoreError> {
        let since = since_ms.unwrap_or(0);
        check_int("track since_ms", since)?;
        let session_id = session_id.to_string();
        self.call("read GPS track", move |c| {
            c.prepare_cached(
                "SELECT t_ms, lat, lon, extra FROM gps_points
                 WHERE session_id = ?1 AND t_ms >= ?2 ORDER BY t_ms",
            )?
            .query_map(params![session_id, since], |r| {
                let extra: Option<String> = r.get(3)?;
                Ok(GpsPoint {
                    t_ms: r.get(0)?,
                    lat: r.get(1)?,
                    lon: r.get(2)?,
                    extra: extra
                        .map(|x| json_col("gps_points", &session_id, &x))
                        .transpose()?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn put_kv(&self, namespace: &str, key: &str, value: Value) -> Result<(), StoreError> {
        check_id("key/value namespace", namespace)?;
        check_id("key/value key", key)?;
        let text = json_text("key/value value", &value)?;
        let (ns, key) = (namespace.to_string(), key.to_string());
        self.call("put key/value", move |c| {
            c.prepare_cached(
                "INSERT OR REPLACE INTO kv (namespace, key, value) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![ns, key, text])?;
            Ok(())
        })
        .await
    }

    async fn get_kv(&self, namespace: &str, key: &str) -> Result<Option<Value>, StoreError> {
        let (ns, key) = (namespace.to_string(), key.to_string());
        self.call("get key/value", move |c| {
            let text: Option<String> = c
                .prepare_cached("SELECT value FROM kv WHERE namespace = ?1 AND key = ?2")?
                .query_row(params![ns, key], |r| r.get(0))
                .optional()?;
            text.map(|t| json_col("kv", &key, &t)).transpose()
        })
        .await
    }

    async fn delete_kv(&self, namespace: &str, key: &str) -> Result<(), StoreError> {
        let (ns, key) = (namespace.to_string(), key.to_string());
        self.call("delete key/value", move |c| {
            c.prepare_cached("DELETE FROM kv WHERE namespace = ?1 AND key = ?2")?
                .execute(params![ns, key])?;
            Ok(())
        })
        .await
    }

    async fn list_kv(&self, namespace: &str) -> Result<Vec<(String, Value)>, StoreError> {
        let ns = namespace.to_string();
        self.call("list key/value", move |c| {
            let rows: Vec<(String, String)> = c
                .prepare_cached("SELECT key, value FROM kv WHERE namespace = ?1 ORDER BY key")?
                .query_map([&ns], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(k, t)| json_col("kv", &k, &t).map(|v| (k, v)))
                .collect()
        })
        .await
    }

    async fn put_stats(&self, snapshots: Vec<StatsSnapshot>) -> Result<(), StoreError> {
        let rows = snapshots
            .into_iter()
            .map(|s| s.validate().map(|data| (s, data)))
            .collect::<Result<Vec<_>, _>>()?;
        self.call("put stats", move |c| {
            let tx = c.transaction()?;
            {
                let mut ins = tx.prepare_cached(
                    "INSERT OR REPLACE INTO stats (stream_id, taken_ms, data) VALUES (?1, ?2, ?3)",
                )?;
                for (s, data) in &rows {
                    ins.execute(params![s.stream_id, s.taken_ms, data])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn get_stats(&self, stream_id: &str) -> Result<Option<StatsSnapshot>, StoreError> {
        let id = stream_id.to_string();
        self.call("get stats", move |c| {
            c.prepare_cached("SELECT stream_id, taken_ms, data FROM stats WHERE stream_id = ?1")?
                .query_row([&id], stats_from_row)
                .optional()
        })
        .await
    }

    async fn all_stats(&self) -> Result<Vec<StatsSnapshot>, StoreError> {
        self.call("list stats", move |c| {
            c.prepare_cached("SELECT stream_id, taken_ms, data FROM stats ORDER BY stream_id")?
                .query_map([], stats_from_row)?
                .collect()
        })
        .await
    }
}
