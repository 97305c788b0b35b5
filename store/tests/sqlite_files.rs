//! The SQLite file: unusable or corrupt files give a clear error naming the file, never a panic.

use dss_store::{GpsPoint, ListedStream, Listing, Store, StoreConfig, StoreError};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn open(path: &Path) -> Result<Arc<dyn Store>, StoreError> {
    dss_store::open(&StoreConfig::embedded(path)).await
}

fn assert_names_file(err: &StoreError, path: &Path, needle: &str) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "error does not name {}: {msg}",
        path.display()
    );
    assert!(msg.contains(needle), "error does not say {needle:?}: {msg}");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dss.sqlite");
    std::fs::write(&path, "this is not SQLite ".repeat(500)).unwrap();
    let err = open(&path).await.err().expect("must fail");
    assert_names_file(&err, &path, "not a database");
}

#[tokio::test]
async fn a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = open(dir.path()).await.err().expect("must fail");
    assert_names_file(&err, dir.path(), "directory");
}

#[tokio::test]
async fn another_programs_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE users (name TEXT)")
        .unwrap();
    drop(conn);
    let err = open(&path).await.err().expect("must fail");
    assert_names_file(&err, &path, "not a DSS store");
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dss.sqlite");
    drop(open(&path).await.unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = open(&path).await.err().expect("must fail");
    assert_names_file(&err, &path, "newer DSS");
}

#[tokio::test]
async fn corrupt_pages_give_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dss.sqlite");
    {
        let store = open(&path).await.unwrap();
        let streams = (0..2000)
            .map(|i| ListedStream {
                key: format!("cam{i}"),
                source: format!("rtsp://cam{i}/live"),
                name: format!("Camera {i}"),
                geo: None,
                online: true,
                input_options: vec![],
                output_options: vec![],
                tags: Default::default(),
            })
            .collect();
        store
            .put_listing(Listing {
                provider: "p".into(),
                fetched_at_ms: 1,
                fingerprint: None,
                epoch: None,
                streams,
            })
            .await
            .unwrap();
        let pts = (0..5000)
            .map(|i| GpsPoint {
                t_ms: i,
                lat: 1.0,
                lon: 2.0,
                extra: None,
            })
            .collect();
        store.append_points("s", pts).await.unwrap();
    }
    // The store's thread closes the file (checkpointing the WAL into it)
    // once the last handle is gone.
    let wal = dir.path().join("dss.sqlite-wal");
    let deadline = Instant::now() + Duration::from_secs(10);
    while wal.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!wal.exists(), "the store did not close its file");

    // Keep the header and schema page, overwrite everything after it.
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 64 * 1024, "file too small: {}", bytes.len());
    for (i, b) in bytes.iter_mut().enumerate().skip(4096) {
        *b = (i * 7 % 251) as u8;
    }
    std::fs::write(&path, &bytes).unwrap();

    match open(&path).await {
        Err(e) => assert_names_file(&e, &path, "SQLite database"),
        Ok(store) => {
            let listing = store.get_listing("p").await;
            let track = store.track("s", None).await;
            let mut failed = 0;
            for err in [listing.err(), track.err()].into_iter().flatten() {
                assert_names_file(&err, &path, "malformed");
                failed += 1;
            }
            assert!(failed > 0, "reads of a corrupt file succeeded");
            assert!(!store.health().is_ok(), "health must report the failure");
        }
    }
}
