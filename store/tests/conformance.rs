//! Conformance suite: every check runs against SQLite and, when `MONGO_TEST_URI` is set, MongoDB.
//!
//! Each check is one `async fn(&Fixture)`; the `conformance!` macro makes a
//! test of it per backend (`sqlite::NAME`, `mongo::NAME`). A MongoDB test
//! uses a database of its own and drops it at the end.

mod common;

use common::Fixture;
use dss_store::{
    BBox, Geo, Geotag, GpsPoint, ListedStream, Listing, NewSession, StatsSnapshot, StoreError,
    MAX_INT,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// Longest one check may take: a hung backend fails the test instead of
/// hanging the run. 120 s: the slowest check takes ~5 s on CongoDB.
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let f = crate::Fixture::sqlite();
                    tokio::time::timeout(crate::CHECK_TIMEOUT, crate::$name(&f))
                        .await
                        .expect("check timed out");
                }
            )*
        }
        mod mongo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(f) = crate::Fixture::mongo(stringify!($name)) else {
                        return;
                    };
                    tokio::time::timeout(crate::CHECK_TIMEOUT, crate::$name(&f))
                        .await
                        .expect("check timed out");
                    f.cleanup().await;
                }
            )*
        }
    };
}

conformance!(
    describes_itself_and_is_healthy,
    listings_round_trip_and_replace,
    listing_stamps_and_fingerprints,
    listing_of_10k_streams,
    listing_larger_than_a_mongodb_document,
    geotags_by_bounding_box,
    geotags_replace_and_delete,
    sessions_lifecycle,
    idle_phones_are_found_and_forgotten_whole,
    tracks_in_time_order_without_duplicates,
    long_track_spans_buckets,
    key_values,
    stats_snapshots,
    json_payloads_round_trip_exactly,
    invalid_input_is_rejected,
    reopen_keeps_everything,
);

fn stream(i: usize) -> ListedStream {
    let mut tags = BTreeMap::new();
    tags.insert("district".to_string(), format!("d{}", i % 7));
    tags.insert("dotted.key".to_string(), "v".to_string());
    ListedStream {
        key: format!("cam{i}"),
        source: format!("rtsp://10.0.{}.{}/live", i / 250, i % 250),
        name: format!("Camera {i}"),
        geo: (!i.is_multiple_of(3)).then_some(Geo {
            lat: 45.0 + i as f64 * 1e-4,
            lon: 25.0 - i as f64 * 1e-4,
        }),
        online: !i.is_multiple_of(5),
        input_options: vec!["-rtsp_transport".into(), "tcp".into()],
        output_options: if i.is_multiple_of(2) {
            vec!["-c".into(), "copy".into()]
        } else {
            vec![]
        },
        tags,
    }
}

fn listing(provider: &str, fetched_at_ms: u64, n: usize) -> Listing {
    Listing {
        provider: provider.to_string(),
        fetched_at_ms,
        fingerprint: None,
        epoch: None,
        streams: (0..n).map(stream).collect(),
    }
}

fn geotag(id: &str, lat: f64, lon: f64) -> Geotag {
    Geotag {
        stream_id: id.to_string(),
        lat,
        lon,
        updated_ms: 1_700_000_000_000,
    }
}

fn ids(tags: &[Geotag]) -> Vec<&str> {
    tags.iter().map(|t| t.stream_id.as_str()).collect()
}

fn point(t_ms: u64, lat: f64, lon: f64) -> GpsPoint {
    GpsPoint {
        t_ms,
        lat,
        lon,
        extra: None,
    }
}

async fn describes_itself_and_is_healthy(f: &Fixture) {
    let store = f.open().await;
    let d = store.describe();
    if f.config.is_embedded() {
        assert!(d.starts_with("embedded SQLite at "), "{d}");
        assert!(d.ends_with("dss.sqlite"), "{d}");
    } else {
        assert!(d.starts_with("MongoDB at "), "{d}");
        assert!(d.contains("database t_"), "{d}");
    }
    store.flush().await.unwrap();
    assert!(store.health().is_ok());
}

async fn listings_round_trip_and_replace(f: &Fixture) {
    let store = f.open().await;
    assert_eq!(store.get_listing("traffic").await.unwrap(), None);

    let first = listing("traffic", 1_700_000_000_123, 25);
    store.put_listing(first.clone()).await.unwrap();
    assert_eq!(store.get_listing("traffic").await.unwrap(), Some(first));

    let second = listing("traffic", 1_700_000_060_000, 3);
    store.put_listing(second.clone()).await.unwrap();
    assert_eq!(store.get_listing("traffic").await.unwrap(), Some(second));

    let empty = listing("static", 5, 0);
    store.put_listing(empty.clone()).await.unwrap();
    assert_eq!(store.get_listing("static").await.unwrap(), Some(empty));

    store.delete_listing("traffic").await.unwrap();
    assert_eq!(store.get_listing("traffic").await.unwrap(), None);
    assert!(store.get_listing("static").await.unwrap().is_some());
}

async fn listing_stamps_and_fingerprints(f: &Fixture) {
    let store = f.open().await;
    assert_eq!(store.listing_stamp("feed").await.unwrap(), None);
    let mut l = listing("feed", 1_700_000_000_500, 4);
    l.fingerprint = Some("3f2a".into());
    store.put_listing(l.clone()).await.unwrap();
    assert_eq!(store.get_listing("feed").await.unwrap(), Some(l));
    let stamp = store.listing_stamp("feed").await.unwrap().unwrap();
    assert_eq!(stamp.fetched_at_ms, 1_700_000_000_500);
    assert_eq!(stamp.fingerprint.as_deref(), Some("3f2a"));
    // A listing without one (an older host's) replaces it entirely.
    store
        .put_listing(listing("feed", 1_700_000_001_000, 1))
        .await
        .unwrap();
    let stamp = store.listing_stamp("feed").await.unwrap().unwrap();
    assert_eq!(
        (stamp.fetched_at_ms, stamp.fingerprint),
        (1_700_000_001_000, None)
    );
}

async fn listing_of_10k_streams(f: &Fixture) {
    let store = f.open().await;
    let big = listing("city", 1_700_000_000_000, 10_000);
    store.put_listing(big.clone()).await.unwrap();
    let back = store.get_listing("city").await.unwrap().expect("listing");
    assert_eq!(back.streams.len(), 10_000);
    assert_eq!(back, big);
}

async fn listing_larger_than_a_mongodb_document(f: &Fixture) {
    // 2000 streams of ~10 KB: ~20 MB, over MongoDB's 16 MB document cap.
    let store = f.open().await;
    let mut l = listing("huge", 42, 2000);
    for (i, s) in l.streams.iter_mut().enumerate() {
        s.tags.insert("blob".into(), format!("{i:05}").repeat(2000));
    }
    store.put_listing(l.clone()).await.unwrap();
    assert_eq!(store.get_listing("huge").await.unwrap(), Some(l));
}

async fn geotags_by_bounding_box(f: &Fixture) {
    let store = f.open().await;
    store
        .put_geotags(vec![
            geotag("in-a", 45.5, 25.5),
            geotag("in-b", 45.0, 25.0), // integral: CongoDB returns Int32
            geotag("edge", 46.0, 26.0),
            geotag("north", 46.0001, 25.5),
            geotag("east", 45.5, 26.0001),
            geotag("far", -33.9, 151.2),
            geotag("fiji", -17.7, 178.1),
            geotag("samoa", -13.8, -171.8),
        ])
        .await
        .unwrap();
    let b = BBox {
        min_lat: 45.0,
        min_lon: 25.0,
        max_lat: 46.0,
        max_lon: 26.0,
    };
    let got = store.geotags_in(b).await.unwrap();
    assert_eq!(ids(&got), ["edge", "in-a", "in-b"]);
    assert_eq!(got[2], geotag("in-b", 45.0, 25.0));

    // Across the antimeridian: 170 E to 170 W.
    let pacific = BBox {
        min_lat: -20.0,
        min_lon: 170.0,
        max_lat: -10.0,
        max_lon: -170.0,
    };
    assert_eq!(
        ids(&store.geotags_in(pacific).await.unwrap()),
        ["fiji", "samoa"]
    );

    let world = BBox {
        min_lat: -90.0,
        min_lon: -180.0,
        max_lat: 90.0,
        max_lon: 180.0,
    };
    assert_eq!(store.geotags_in(world).await.unwrap().len(), 8);
    let empty = BBox {
        min_lat: 0.0,
        min_lon: 0.0,
        max_lat: 1.0,
        max_lon: 1.0,
    };
    assert!(store.geotags_in(empty).await.unwrap().is_empty());
}

async fn geotags_replace_and_delete(f: &Fixture) {
    let store = f.open().await;
    let b = BBox {
        min_lat: 0.0,
        min_lon: 0.0,
        max_lat: 10.0,
        max_lon: 10.0,
    };
    store
        .put_geotags(vec![geotag("a", 1.0, 1.0), geotag("b", 2.0, 2.0)])
        .await
        .unwrap();
    // "a" moves out of the box; "b" twice in one call: the last wins.
    let mut moved = geotag("b", 3.5, 3.5);
    moved.updated_ms = 1_700_000_000_999;
    store
        .put_geotags(vec![
            geotag("a", 50.0, 50.0),
            geotag("b", 9.0, 9.0),
            moved.clone(),
        ])
        .await
        .unwrap();
    assert_eq!(store.geotags_in(b).await.unwrap(), vec![moved]);
    store
        .delete_geotags(vec!["b".into(), "nope".into()])
        .await
        .unwrap();
    assert!(store.geotags_in(b).await.unwrap().is_empty());
    let big = BBox {
        min_lat: 40.0,
        min_lon: 40.0,
        max_lat: 60.0,
        max_lon: 60.0,
    };
    assert_eq!(ids(&store.geotags_in(big).await.unwrap()), ["a"]);
}

async fn sessions_lifecycle(f: &Fixture) {
    let store = f.open().await;
    let id = store
        .create_session(NewSession {
            id: Some("phone-1".into()),
            stream_key: "mobile-abc".into(),
            started_ms: 1_000,
            meta: json!({"device": "Pixel", "ua": "dss-app/1.0"}),
        })
        .await
        .unwrap();
    assert_eq!(id, "phone-1");
    // Creating it again keeps the stored one.
    store
        .create_session(NewSession {
            id: Some("phone-1".into()),
            stream_key: "other".into(),
            started_ms: 9_999,
            meta: json!(null),
        })
        .await
        .unwrap();
    let s = store
        .get_session("phone-1")
        .await
        .unwrap()
        .expect("session");
    assert_eq!(s.stream_key, "mobile-abc");
    assert_eq!(s.started_ms, 1_000);
    assert_eq!(s.closed_ms, None);
    assert_eq!(s.meta, json!({"device": "Pixel", "ua": "dss-app/1.0"}));

    let generated = store
        .create_session(NewSession {
            id: None,
            stream_key: "mobile-def".into(),
            started_ms: 2_000,
            meta: json!({}),
        })
        .await
        .unwrap();
    let other = store
        .create_session(NewSession {
            id: None,
            stream_key: "mobile-ghi".into(),
            started_ms: 3_000,
            meta: json!({}),
        })
        .await
        .unwrap();
    assert_ne!(generated, other);
    assert!(!generated.is_empty());

    let active: Vec<String> = store
        .active_sessions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    let mut expected = vec!["phone-1".to_string(), generated.clone(), other.clone()];
    expected.sort();
    assert_eq!(active, expected);

    store.close_session("phone-1", 5_000).await.unwrap();
    store.close_session("phone-1", 6_000).await.unwrap(); // first close wins
    store.close_session("unknown", 6_000).await.unwrap(); // no-op
    assert_eq!(
        store
            .get_session("phone-1")
            .await
            .unwrap()
            .unwrap()
            .closed_ms,
        Some(5_000)
    );
    assert_eq!(store.get_session("unknown").await.unwrap(), None);
    let active: Vec<String> = store
        .active_sessions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(!active.contains(&"phone-1".to_string()));
    assert_eq!(active.len(), 2);
}

async fn tracks_in_time_order_without_duplicates(f: &Fixture) {
    let store = f.open().await;
    let t0 = 1_700_000_000_000;
    store
        .append_points(
            "s1",
            vec![
                point(t0 + 2_000, 45.2, 25.2),
                point(t0, 45.0, 25.0),
                point(t0 + 1_000, 45.1, 25.1),
            ],
        )
        .await
        .unwrap();
    // A repeated t_ms is ignored (the first stays), even within one call.
    store
        .append_points(
            "s1",
            vec![
                point(t0 + 1_000, 1.0, 1.0),
                point(t0 + 3_000, 45.3, 25.3),
                point(t0 + 3_000, 2.0, 2.0),
            ],
        )
        .await
        .unwrap();
    store
        .append_points("s2", vec![point(t0, 10.0, 10.0)])
        .await
        .unwrap();
    store.append_points("s1", vec![]).await.unwrap();

    let track = store.track("s1", None).await.unwrap();
    let ts: Vec<u64> = track.iter().map(|p| p.t_ms - t0).collect();
    assert_eq!(ts, [0, 1_000, 2_000, 3_000]);
    assert_eq!(track[1], point(t0 + 1_000, 45.1, 25.1));
    assert_eq!(track[3], point(t0 + 3_000, 45.3, 25.3));

    let since = store.track("s1", Some(t0 + 1_500)).await.unwrap();
    assert_eq!(since.len(), 2);
    assert_eq!(since[0].t_ms, t0 + 2_000);
    assert_eq!(store.track("s2", None).await.unwrap().len(), 1);
    assert!(store.track("nobody", None).await.unwrap().is_empty());
}

async fn long_track_spans_buckets(f: &Fixture) {
    // 5000 points at 1 Hz over ~1.4 h, in calls of 250 and one of 1500:
    // several buckets per hour and across an hour boundary in MongoDB.
    let store = f.open().await;
    let t0 = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000 + 3_000_000;
    let pts: Vec<GpsPoint> = (0..5000u64)
        .map(|i| GpsPoint {
            t_ms: t0 + i * 1000,
            lat: 44.0 + i as f64 * 1e-5,
            lon: 26.0,
            extra: (i % 100 == 0).then(|| json!({"speed": i})),
        })
        .collect();
    for part in pts[..3500].chunks(250) {
        store.append_points("long", part.to_vec()).await.unwrap();
    }
    store
        .append_points("long", pts[3500..].to_vec())
        .await
        .unwrap();
    let track = store.track("long", None).await.unwrap();
    assert_eq!(track.len(), 5000);
    assert_eq!(track, pts);
    let tail = store.track("long", Some(t0 + 4_000_000)).await.unwrap();
    assert_eq!(tail.len(), 1000);
    assert_eq!(tail[0].t_ms, t0 + 4_000_000);
}

async fn key_values(f: &Fixture) {
    let store = f.open().await;
    assert_eq!(store.get_kv("ns", "a").await.unwrap(), None);
    store.put_kv("ns", "b", json!({"x": 1})).await.unwrap();
    store.put_kv("ns", "a", json!("first")).await.unwrap();
    store.put_kv("ns", "a", json!("second")).await.unwrap();
    store.put_kv("other", "a", json!(3)).await.unwrap();
    assert_eq!(
        store.get_kv("ns", "a").await.unwrap(),
        Some(json!("second"))
    );
    assert_eq!(store.get_kv("other", "a").await.unwrap(), Some(json!(3)));
    assert_eq!(
        store.list_kv("ns").await.unwrap(),
        vec![
            ("a".to_string(), json!("second")),
            ("b".to_string(), json!({"x": 1}))
        ]
    );
    store.delete_kv("ns", "a").await.unwrap();
    store.delete_kv("ns", "missing").await.unwrap();
    assert_eq!(store.get_kv("ns", "a").await.unwrap(), None);
    assert_eq!(store.list_kv("ns").await.unwrap().len(), 1);
    assert!(store.list_kv("empty").await.unwrap().is_empty());
}

async fn stats_snapshots(f: &Fixture) {
    let store = f.open().await;
    assert_eq!(store.get_stats("s").await.unwrap(), None);
    let snap = |id: &str, t: u64, viewers: u64| StatsSnapshot {
        stream_id: id.to_string(),
        taken_ms: t,
        data: json!({"viewers": viewers, "bytes_out": 1_234_567_890_123u64}),
    };
    store
        .put_stats(vec![snap("b", 10, 1), snap("a", 10, 2), snap("b", 20, 3)])
        .await
        .unwrap();
    assert_eq!(store.get_stats("b").await.unwrap(), Some(snap("b", 20, 3)));
    store.put_stats(vec![snap("a", 30, 4)]).await.unwrap();
    store.put_stats(vec![]).await.unwrap();
    assert_eq!(
        store.all_stats().await.unwrap(),
        vec![snap("a", 30, 4), snap("b", 20, 3)]
    );
}

async fn json_payloads_round_trip_exactly(f: &Fixture) {
    // Floats stay floats, big integers stay exact, and keys MongoDB treats
    // specially ($, dots) are fine.
    let store = f.open().await;
    let v = json!({
        "float": 1.0,
        "int": 1,
        "big": 9_007_199_254_740_993u64,
        "neg": -5,
        "$op": {"a.b": [true, null, "x", 2.5]},
        "unicode": "ș ț 🚗",
    });
    store.put_kv("json", "v", v.clone()).await.unwrap();
    assert_eq!(store.get_kv("json", "v").await.unwrap(), Some(v.clone()));
    store
        .append_points(
            "j",
            vec![GpsPoint {
                t_ms: MAX_INT,
                lat: -90.0,
                lon: 180.0,
                extra: Some(v.clone()),
            }],
        )
        .await
        .unwrap();
    let track = store.track("j", None).await.unwrap();
    assert_eq!(track.len(), 1);
    assert_eq!(track[0].t_ms, MAX_INT);
    assert_eq!(track[0].extra, Some(v.clone()));
    store
        .create_session(NewSession {
            id: Some("j".into()),
            stream_key: "k".into(),
            started_ms: MAX_INT,
            meta: v.clone(),
        })
        .await
        .unwrap();
    let s = store.get_session("j").await.unwrap().unwrap();
    assert_eq!((s.started_ms, s.meta), (MAX_INT, v));
}

async fn invalid_input_is_rejected(f: &Fixture) {
    let store = f.open().await;
    let invalid =
        |r: Result<(), StoreError>| assert!(matches!(r, Err(StoreError::Invalid { .. })), "{r:?}");
    invalid(store.put_geotags(vec![geotag("x", f64::NAN, 0.0)]).await);
    invalid(store.put_geotags(vec![geotag("x", 0.0, 180.5)]).await);
    invalid(store.put_geotags(vec![geotag("", 0.0, 0.0)]).await);
    invalid(
        store
            .append_points("s", vec![point(MAX_INT + 1, 0.0, 0.0)])
            .await,
    );
    invalid(store.append_points("s", vec![point(1, 91.0, 0.0)]).await);
    invalid(store.put_kv("", "k", json!(1)).await);
    invalid(
        store
            .put_listing(Listing {
                provider: "p".into(),
                fetched_at_ms: u64::MAX,
                fingerprint: None,
                epoch: None,
                streams: vec![],
            })
            .await,
    );
    let bad_box = BBox {
        min_lat: 10.0,
        min_lon: 0.0,
        max_lat: 0.0,
        max_lon: 1.0,
    };
    assert!(matches!(
        store.geotags_in(bad_box).await,
        Err(StoreError::Invalid { .. })
    ));
    // Nothing of the rejected writes landed, and the store is still healthy.
    assert!(store.track("s", None).await.unwrap().is_empty());
    assert_eq!(store.get_listing("p").await.unwrap(), None);
    assert!(store.health().is_ok());
}

async fn reopen_keeps_everything(f: &Fixture) {
    let l = listing("traffic", 1_700_000_000_000, 100);
    let tags = vec![geotag("a", 1.5, 2.5), geotag("b", -3.0, 4.0)];
    let pts = vec![point(10, 1.0, 1.0), point(20, 1.1, 1.1)];
    let snap = StatsSnapshot {
        stream_id: "traffic-cam1".into(),
        taken_ms: 77,
        data: json!({"viewers": 3}),
    };
    {
        let store = f.open().await;
        store.put_listing(l.clone()).await.unwrap();
        store.put_geotags(tags.clone()).await.unwrap();
        store
            .create_session(NewSession {
                id: Some("m1".into()),
                stream_key: "mobile-1".into(),
                started_ms: 5,
                meta: json!({"user": "u"}),
            })
            .await
            .unwrap();
        store.append_points("m1", pts.clone()).await.unwrap();
        store.put_kv("meta", "version", json!("0.7")).await.unwrap();
        store.put_stats(vec![snap.clone()]).await.unwrap();
        store.flush().await.unwrap();
    }
    let store = f.open().await;
    assert_eq!(store.get_listing("traffic").await.unwrap(), Some(l));
    let world = BBox {
        min_lat: -90.0,
        min_lon: -180.0,
        max_lat: 90.0,
        max_lon: 180.0,
    };
    assert_eq!(store.geotags_in(world).await.unwrap(), tags);
    let active = store.active_sessions().await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].stream_key, "mobile-1");
    assert_eq!(store.track("m1", None).await.unwrap(), pts);
    assert_eq!(
        store.get_kv("meta", "version").await.unwrap(),
        Some(json!("0.7"))
    );
    assert_eq!(store.all_stats().await.unwrap(), vec![snap]);
}

async fn idle_phones_are_found_and_forgotten_whole(f: &Fixture) {
    let store = f.open().await;
    let session = |id: &str, key: &str, started_ms: u64| NewSession {
        id: Some(id.into()),
        stream_key: key.into(),
        started_ms,
        meta: json!({}),
    };
    // gone: two sessions, both closed long ago; back: an old one and a
    // recent one; live: an old one and one still open.
    for (id, key, started, closed) in [
        ("g1", "phones-gone", 1_000, Some(2_000)),
        ("g2", "phones-gone", 3_000, Some(4_000)),
        ("b1", "phones-back", 1_000, Some(2_000)),
        ("b2", "phones-back", 9_000, Some(10_000)),
        ("l1", "phones-live", 1_000, Some(2_000)),
        ("l2", "phones-live", 9_000, None),
    ] {
        store
            .create_session(session(id, key, started))
            .await
            .unwrap();
        if let Some(c) = closed {
            store.close_session(id, c).await.unwrap();
        }
    }
    store
        .append_points("phones-gone", vec![point(1_500, 1.0, 2.0)])
        .await
        .unwrap();
    store
        .append_points("phones-back", vec![point(1_500, 1.0, 2.0)])
        .await
        .unwrap();
    store
        .put_geotags(vec![
            geotag("phones-gone", 1.0, 2.0),
            geotag("phones-back", 1.0, 2.0),
        ])
        .await
        .unwrap();
    store
        .put_stats(vec![StatsSnapshot {
            stream_id: "phones-gone".into(),
            taken_ms: 4_000,
            data: json!({"viewers": 1}),
        }])
        .await
        .unwrap();
    store.flush().await.unwrap();
    assert_eq!(
        store.phones_idle_since(5_000).await.unwrap(),
        ["phones-gone"]
    );
    assert_eq!(
        store.phones_idle_since(20_000).await.unwrap(),
        ["phones-back", "phones-gone"]
    );
    assert!(store.phones_idle_since(1_000).await.unwrap().is_empty());

    store.forget_phone("phones-gone").await.unwrap();
    store.flush().await.unwrap();
    assert!(store.phones_idle_since(5_000).await.unwrap().is_empty());
    assert_eq!(store.get_session("g1").await.unwrap(), None);
    assert_eq!(store.get_session("g2").await.unwrap(), None);
    assert!(store.track("phones-gone", None).await.unwrap().is_empty());
    assert_eq!(store.get_stats("phones-gone").await.unwrap(), None);
    let all = BBox {
        min_lat: -90.0,
        min_lon: -180.0,
        max_lat: 90.0,
        max_lon: 180.0,
    };
    let tagged: Vec<String> = store
        .geotags_in(all)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.stream_id)
        .collect();
    assert_eq!(tagged, ["phones-back"]);
    // The others are untouched.
    assert!(store.get_session("b1").await.unwrap().is_some());
    assert_eq!(store.track("phones-back", None).await.unwrap().len(), 1);
    assert_eq!(store.active_sessions().await.unwrap().len(), 1);
}
