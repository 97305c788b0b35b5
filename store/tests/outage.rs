//! MongoDB outages: opening while it is down, the bounded queue, and writes landing once it is back.
//!
//! The first test needs no server (nothing listens on its port). The others
//! run when `MONGO_TEST_URI` is set (and must run under `CI=true`): they
//! start CongoDB themselves with `scripts/congodb.sh serve` on a port of
//! their own, stop it, and start it again.

mod common;

use common::{eventually, free_port, mongo_uri, Congo};
use dss_store::{
    BBox, Geotag, GpsPoint, ListedStream, Listing, NewSession, StatsSnapshot, Store, StoreConfig,
    StoreError, StoreHealth,
};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a returning server may take to get the queue written: the
/// retry pause is capped at 300 ms below, so this is ample.
const CATCH_UP: Duration = Duration::from_secs(30);

fn config(port: u16, db: &str) -> StoreConfig {
    StoreConfig {
        url: Some(format!(
            "mongodb://127.0.0.1:{port}/{db}?directConnection=true"
        )),
        // Short waits and retries keep the tests quick.
        connect_wait_ms: 500,
        retry_max_ms: 300,
        ..StoreConfig::default()
    }
}

fn queued(store: &Arc<dyn Store>) -> Option<usize> {
    match store.health() {
        StoreHealth::Ok => None,
        StoreHealth::Degraded { queued_writes, .. } => Some(queued_writes),
    }
}

fn world() -> BBox {
    BBox {
        min_lat: -90.0,
        min_lon: -180.0,
        max_lat: 90.0,
        max_lon: 180.0,
    }
}

fn listing(n: usize) -> Listing {
    Listing {
        provider: "traffic".into(),
        fetched_at_ms: 1_700_000_000_000,
        fingerprint: None,
        epoch: None,
        streams: (0..n)
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
            .collect(),
    }
}

fn points(from: u64, to: u64) -> Vec<GpsPoint> {
    (from..to)
        .map(|i| GpsPoint {
            t_ms: 1_700_000_000_000 + i * 1000,
            lat: 45.0 + i as f64 * 1e-4,
            lon: 25.0,
            extra: None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_while_mongodb_is_down_is_quick_and_the_queue_is_bounded() {
    let port = free_port();
    let cfg = StoreConfig {
        queue_limit: 5,
        queue_limit_bytes: 100_000,
        ..config(port, "dss")
    };
    let started = Instant::now();
    let store = dss_store::open(&cfg)
        .await
        .expect("open must not fail when MongoDB is down");
    // connect_wait is 0.5 s; 3 s leaves room for a slow machine.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "open took {:?}",
        started.elapsed()
    );
    assert!(store.describe().contains(&format!("127.0.0.1:{port}")));
    assert_eq!(queued(&store), Some(0), "{:?}", store.health());

    for i in 0..5 {
        store
            .put_kv("ns", &format!("k{i}"), json!(i))
            .await
            .expect("queued");
    }
    assert_eq!(queued(&store), Some(5));
    match store.put_kv("ns", "k5", json!(5)).await {
        Err(StoreError::QueueFull { queued, limit, .. }) => assert_eq!((queued, limit), (5, 5)),
        other => panic!("expected QueueFull, got {other:?}"),
    }

    // Reads fail fast rather than waiting for the server.
    let t = Instant::now();
    match store.get_kv("ns", "k0").await {
        Err(StoreError::Unavailable { target, .. }) => assert!(target.contains("MongoDB")),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_millis(500));

    // The byte bound holds too: a large listing does not fit.
    let small = StoreConfig {
        queue_limit_bytes: 10_000,
        ..config(port, "dss")
    };
    let store = dss_store::open(&small).await.unwrap();
    assert!(matches!(
        store.put_listing(listing(1000)).await,
        Err(StoreError::QueueFull { .. })
    ));
    store
        .put_listing(listing(10))
        .await
        .expect("a small one fits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_made_before_mongodb_starts_land_when_it_does() {
    if mongo_uri().is_none() {
        return;
    }
    let port = free_port();
    let store = dss_store::open(&config(port, "late")).await.unwrap();
    assert!(!store.health().is_ok());

    store.put_listing(listing(50)).await.unwrap();
    store
        .put_geotags(vec![Geotag {
            stream_id: "traffic-cam1".into(),
            lat: 44.4,
            lon: 26.1,
            updated_ms: 1,
        }])
        .await
        .unwrap();
    store
        .create_session(NewSession {
            id: Some("m1".into()),
            stream_key: "mobile-1".into(),
            started_ms: 1,
            meta: json!({}),
        })
        .await
        .unwrap();
    store.append_points("m1", points(0, 20)).await.unwrap();
    store.put_kv("ns", "x", json!(1)).await.unwrap();
    store.put_kv("ns", "x", json!(2)).await.unwrap(); // order kept: 2 wins
    store
        .put_stats(vec![StatsSnapshot {
            stream_id: "traffic-cam1".into(),
            taken_ms: 5,
            data: json!({"viewers": 1}),
        }])
        .await
        .unwrap();
    assert_eq!(queued(&store), Some(7));

    let congo = Congo::start(port, None);
    tokio::time::timeout(CATCH_UP, store.flush())
        .await
        .expect("queued writes did not land")
        .unwrap();
    assert!(
        eventually(CATCH_UP, || store.health().is_ok()).await,
        "{:?}",
        store.health()
    );

    assert_eq!(
        store.get_listing("traffic").await.unwrap(),
        Some(listing(50))
    );
    assert_eq!(store.geotags_in(world()).await.unwrap().len(), 1);
    assert_eq!(store.active_sessions().await.unwrap().len(), 1);
    assert_eq!(store.track("m1", None).await.unwrap(), points(0, 20));
    assert_eq!(store.get_kv("ns", "x").await.unwrap(), Some(json!(2)));
    assert_eq!(store.all_stats().await.unwrap().len(), 1);
    drop(store);
    congo.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_going_down_mid_run_loses_no_acknowledged_write() {
    if mongo_uri().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // CongoDB keeps data in memory; this file carries it across the restart
    // (saved on SIGTERM), as a real MongoDB's disk would.
    let data = dir.path().join("congo.json");
    let port = free_port();
    let congo = Congo::start(port, Some(&data));
    let store = dss_store::open(&config(port, "midrun")).await.unwrap();
    assert!(store.health().is_ok(), "{:?}", store.health());

    store.put_kv("ns", "before", json!("a")).await.unwrap();
    store.append_points("m1", points(0, 10)).await.unwrap();
    assert!(store.health().is_ok());

    congo.stop();

    // Each write is acknowledged (queued) although MongoDB is gone.
    store.put_kv("ns", "during", json!("b")).await.unwrap();
    assert!(!store.health().is_ok(), "store did not notice the outage");
    store.append_points("m1", points(10, 20)).await.unwrap();
    store.put_kv("ns", "before", json!("a2")).await.unwrap();
    store.delete_kv("ns", "during").await.unwrap();
    store.put_kv("ns", "during", json!("b2")).await.unwrap();
    assert_eq!(queued(&store), Some(5), "{:?}", store.health());
    assert!(matches!(
        store.get_kv("ns", "before").await,
        Err(StoreError::Unavailable { .. })
    ));

    let congo = Congo::start(port, Some(&data));
    tokio::time::timeout(CATCH_UP, store.flush())
        .await
        .expect("queued writes did not land")
        .unwrap();
    assert!(
        eventually(CATCH_UP, || store.health().is_ok()).await,
        "{:?}",
        store.health()
    );

    assert_eq!(
        store.get_kv("ns", "before").await.unwrap(),
        Some(json!("a2"))
    );
    assert_eq!(
        store.get_kv("ns", "during").await.unwrap(),
        Some(json!("b2"))
    );
    assert_eq!(store.track("m1", None).await.unwrap(), points(0, 20));

    // And a store opened afresh sees the same.
    let again = dss_store::open(&config(port, "midrun")).await.unwrap();
    assert_eq!(again.track("m1", None).await.unwrap(), points(0, 20));
    drop((store, again));
    congo.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_write_mongodb_refuses_is_reported_in_the_health_not_lost_silently() {
    if mongo_uri().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("congo.json");
    let port = free_port();
    let congo = Congo::start(port, Some(&data));
    let store = dss_store::open(&config(port, "refused")).await.unwrap();
    // Healthy once its preparation (indexes) has reached the fresh server.
    assert!(
        eventually(CATCH_UP, || store.health().is_ok()).await,
        "{:?}",
        store.health()
    );

    // A GPS bucket whose points are not an array: MongoDB refuses to push
    // into it, whatever the retries.
    let track = points(0, 10);
    let bucket = track[0].t_ms / 3_600_000;
    let client = mongodb::Client::with_uri_str(congo.url("refused"))
        .await
        .unwrap();
    client
        .database("refused")
        .collection::<bson::Document>("gps_buckets")
        .insert_one(bson::doc! {
            "session_id": "m1", "bucket": bucket as i64, "n": 0_i64, "bytes": 0_i64,
            "points": "not an array",
        })
        .await
        .unwrap();

    // Healthy: the caller gets the refusal; nothing is counted as lost.
    assert!(matches!(
        store.append_points("m1", track.clone()).await,
        Err(StoreError::Mongo { .. })
    ));
    assert!(store.health().is_ok(), "{:?}", store.health());

    congo.stop();
    // Degraded: acknowledged; then refused once MongoDB is back.
    store.append_points("m1", track).await.unwrap();
    assert!(!store.health().is_ok());
    store.put_kv("ns", "after", json!(1)).await.unwrap();
    assert_eq!(queued(&store), Some(2), "{:?}", store.health());

    let congo = Congo::start(port, Some(&data));
    tokio::time::timeout(CATCH_UP, store.flush())
        .await
        .expect("queue did not drain")
        .unwrap();
    match store.health() {
        StoreHealth::Degraded {
            reason,
            queued_writes,
            refused_writes,
            last_refusal,
        } => {
            assert_eq!((queued_writes, refused_writes), (0, 1), "{reason}");
            assert!(reason.contains("refused"), "{reason}");
            let last = last_refusal.unwrap_or_default();
            assert!(
                last.contains("session \"m1\"") && last.contains("gps_buckets"),
                "{last}"
            );
        }
        StoreHealth::Ok => panic!("a lost acknowledged write left the store healthy"),
    }
    // The health says so as JSON too (the host's /healthz serializes it).
    let json = serde_json::to_value(store.health()).unwrap();
    assert_eq!(json["status"], "degraded");
    assert_eq!(json["refused_writes"], 1);
    assert!(json["last_refusal"].is_string(), "{json}");
    // The writes behind it landed, and reads work.
    assert_eq!(store.get_kv("ns", "after").await.unwrap(), Some(json!(1)));
    drop(store);
    congo.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_degrade_the_store_saying_so_and_keep_the_writes() {
    if mongo_uri().is_none() {
        return;
    }
    let port = free_port();
    let congo = Congo::start(port, None);
    // CongoDB accepts no real SCRAM conversation: any credentials fail.
    let cfg = StoreConfig {
        url: Some(format!(
            "mongodb://dss:wrong@127.0.0.1:{port}/creds?directConnection=true"
        )),
        ..config(port, "creds")
    };
    let store = dss_store::open(&cfg).await.unwrap();
    let auth_reason = |h: &StoreHealth| match h {
        StoreHealth::Degraded { reason, .. } => reason.contains("authentication failed"),
        StoreHealth::Ok => false,
    };
    assert!(
        eventually(CATCH_UP, || auth_reason(&store.health())).await,
        "{:?}",
        store.health()
    );
    store
        .put_kv("ns", "k", json!(1))
        .await
        .expect("acknowledged: kept until the credentials are fixed");
    match store.get_kv("ns", "k").await {
        Err(StoreError::Unavailable { reason, .. }) => {
            assert!(reason.contains("authentication failed"), "{reason}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // Retried, never dropped.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(queued(&store), Some(1), "{:?}", store.health());
    assert!(auth_reason(&store.health()), "{:?}", store.health());
    drop(store);
    congo.stop();
}
