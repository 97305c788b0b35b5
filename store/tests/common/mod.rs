//! Test helpers: which MongoDB to test against, fresh databases, and a CongoDB server a test can stop and restart.
#![allow(dead_code)] // Each test file uses a different part.

use dss_store::{Store, StoreConfig};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `MONGO_TEST_URI`, or `None` to skip MongoDB tests. With `CI=true` a
/// missing URI fails the test instead: CI must test both backends.
pub fn mongo_uri() -> Option<String> {
    match std::env::var("MONGO_TEST_URI") {
        Ok(uri) if !uri.is_empty() => Some(uri),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but MONGO_TEST_URI is not set: CI must run the MongoDB tests \
                 (start a server with scripts/congodb.sh start PORT and set \
                 MONGO_TEST_URI=mongodb://127.0.0.1:PORT/?directConnection=true)"
            );
            eprintln!("MONGO_TEST_URI is not set: MongoDB test skipped");
            None
        }
    }
}

/// The URI with its database set to `db`.
pub fn with_database(uri: &str, db: &str) -> String {
    let (scheme, rest) = uri.split_once("://").expect("MONGO_TEST_URI has no scheme");
    let host_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (hosts, tail) = rest.split_at(host_end);
    let query = tail.find('?').map(|i| &tail[i..]).unwrap_or("");
    format!("{scheme}://{hosts}/{db}{query}")
}

/// A database name no other test (or earlier run) uses.
pub fn unique_db(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut short: String = name.chars().take(30).collect();
    short.retain(|c| c.is_ascii_alphanumeric() || c == '_');
    format!(
        "t_{short}_{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Drops a test database (real MongoDB keeps it otherwise).
pub async fn drop_database(url: &str) {
    let Ok(client) = mongodb::Client::with_uri_str(url).await else {
        return;
    };
    if let Some(db) = client.default_database() {
        // Best effort: a leftover test database harms nothing.
        let _ = tokio::time::timeout(Duration::from_secs(5), db.drop()).await;
    }
}

/// A backend under test: a fresh SQLite file or a fresh MongoDB database.
pub struct Fixture {
    pub config: StoreConfig,
    mongo_url: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    pub fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        Fixture {
            config: StoreConfig::embedded(dir.path().join("store/dss.sqlite")),
            mongo_url: None,
            _dir: Some(dir),
        }
    }

    /// `None` when MongoDB tests are skipped.
    pub fn mongo(name: &str) -> Option<Fixture> {
        let url = with_database(&mongo_uri()?, &unique_db(name));
        Some(Fixture {
            config: StoreConfig::mongodb(url.clone()),
            mongo_url: Some(url),
            _dir: None,
        })
    }

    /// Opens the store (again: the same file or database).
    pub async fn open(&self) -> Arc<dyn Store> {
        let store = dss_store::open(&self.config).await.expect("open store");
        assert!(
            store.health().is_ok(),
            "{} not healthy after open: {:?}",
            store.describe(),
            store.health()
        );
        store
    }

    pub async fn cleanup(&self) {
        if let Some(url) = &self.mongo_url {
            drop_database(url).await;
        }
    }
}

/// A port nothing listens on (a moment ago).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/congodb.sh")
}

/// A CongoDB server run by `scripts/congodb.sh serve`, for tests that stop
/// and restart the database.
pub struct Congo {
    child: Child,
    pub port: u16,
}

impl Congo {
    /// Starts CongoDB on `port` (installing it on first use); with `data`,
    /// loads from and saves to that file. Waits until it accepts connections.
    pub fn start(port: u16, data: Option<&Path>) -> Congo {
        let mut cmd = Command::new("bash");
        cmd.arg(script()).arg("serve").arg(port.to_string());
        if let Some(d) = data {
            cmd.arg(d);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("run scripts/congodb.sh");
        let mut congo = Congo { child, port };
        // 120 s: the first start installs CongoDB from npm (~5 s here).
        let deadline = Instant::now() + Duration::from_secs(120);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = congo.child.try_wait() {
                panic!("scripts/congodb.sh serve {port} exited: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "CongoDB did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        congo
    }

    pub fn url(&self, db: &str) -> String {
        format!(
            "mongodb://127.0.0.1:{}/{db}?directConnection=true",
            self.port
        )
    }

    /// Stops it with SIGTERM (it saves its data file) and waits for the exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("CongoDB (pid {pid}) did not stop on SIGTERM");
    }
}

impl Drop for Congo {
    fn drop(&mut self) {
        // Already exited after `stop`; otherwise a panicking test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it is true, up to `limit`.
pub async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}
