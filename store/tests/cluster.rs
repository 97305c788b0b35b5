//! Cluster coordination through the store: leases that exactly one host
//! holds (server clock, epochs that fence a stale holder), hosts' records,
//! and the embedded store's clear refusal. Against CongoDB in CI (or the
//! MongoDB that `MONGO_TEST_URI` names).

mod common;

use common::Fixture;
use dss_store::cluster::{Acquired, NodeRecord};
use dss_store::StoreError;
use std::time::{Duration, Instant};

#[tokio::test]
async fn the_embedded_store_refuses_cluster_mode_clearly() {
    let f = Fixture::sqlite();
    let store = f.open().await;
    assert!(!store.supports_cluster());
    let e = store
        .lease_acquire("stream/a", "h1", 10_000)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("cluster mode needs MongoDB"), "{e}");
}

fn held(a: Acquired) -> dss_store::cluster::Lease {
    match a {
        Acquired::Held(l) => l,
        Acquired::Busy(l) => panic!("expected to hold the lease; held by {l:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_has_one_holder_and_epochs_fence_the_stale_one() {
    let Some(f) = Fixture::mongo("lease_one_holder") else {
        return;
    };
    let store = f.open().await;
    assert!(store.supports_cluster());
    let a = held(
        store
            .lease_acquire("stream/cam-1", "h1", 10_000)
            .await
            .unwrap(),
    );
    assert_eq!((a.owner.as_str(), a.epoch), ("h1", 1));
    assert!(a.renewed_ms > 0);
    // Another host finds it busy, and who holds it.
    match store
        .lease_acquire("stream/cam-1", "h2", 10_000)
        .await
        .unwrap()
    {
        Acquired::Busy(Some(l)) => assert_eq!((l.owner.as_str(), l.epoch), ("h1", 1)),
        other => panic!("{other:?}"),
    }
    assert!(store
        .lease_renew("stream/cam-1", "h1", 1, 10_000)
        .await
        .unwrap());
    assert!(!store
        .lease_renew("stream/cam-1", "h2", 1, 10_000)
        .await
        .unwrap());
    assert!(!store
        .lease_renew("stream/cam-1", "h1", 7, 10_000)
        .await
        .unwrap());
    // Released, it is free at once; the new holder's epoch fences the old.
    store.lease_release("stream/cam-1", "h1", 1).await.unwrap();
    let b = held(
        store
            .lease_acquire("stream/cam-1", "h2", 10_000)
            .await
            .unwrap(),
    );
    assert_eq!((b.owner.as_str(), b.epoch), ("h2", 2));
    assert!(!store
        .lease_renew("stream/cam-1", "h1", 1, 10_000)
        .await
        .unwrap());
    // A release by the stale holder changes nothing.
    store.lease_release("stream/cam-1", "h1", 1).await.unwrap();
    assert!(matches!(
        store
            .lease_acquire("stream/cam-1", "h3", 10_000)
            .await
            .unwrap(),
        Acquired::Busy(Some(_))
    ));
    // Listing by prefix.
    held(
        store
            .lease_acquire("provider/demo", "h3", 10_000)
            .await
            .unwrap(),
    );
    let streams = store.leases("stream/").await.unwrap();
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0].owner, "h2");
    assert_eq!(store.leases("").await.unwrap().len(), 2);
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_taken_over_by_the_server_clock() {
    let Some(f) = Fixture::mongo("lease_expiry") else {
        return;
    };
    let store = f.open().await;
    let a = held(store.lease_acquire("stream/x", "h1", 300).await.unwrap());
    let started = Instant::now();
    // h2 asks for a longer term than h1 holds: h1's lease still expires
    // on h1's own term (300 ms), not on the asker's (10 s).
    let b = loop {
        match store.lease_acquire("stream/x", "h2", 10_000).await.unwrap() {
            Acquired::Held(l) => break l,
            Acquired::Busy(_) => {
                assert!(started.elapsed() < Duration::from_secs(5), "never expired");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert_eq!((b.owner.as_str(), b.epoch), ("h2", a.epoch + 1));
    assert!(b.renewed_ms >= a.renewed_ms + 300, "{a:?} {b:?}");
    assert!(!store
        .lease_renew("stream/x", "h1", a.epoch, 300)
        .await
        .unwrap());
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_racing_hosts_exactly_one_acquires() {
    let Some(f) = Fixture::mongo("lease_race") else {
        return;
    };
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(f.open().await);
    }
    for round in 0..10 {
        let name = format!("stream/race-{round}");
        let tries = stores.iter().enumerate().flat_map(|(i, s)| {
            let name = name.clone();
            (0..2).map(move |j| {
                let s = s.clone();
                let name = name.clone();
                async move { s.lease_acquire(&name, &format!("h{i}-{j}"), 10_000).await }
            })
        });
        let results = futures_util::future::join_all(tries).await;
        let winners = results
            .iter()
            .filter(|r| matches!(r, Ok(Acquired::Held(_))))
            .count();
        assert_eq!(winners, 1, "round {round}: {results:?}");
    }
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_record_themselves_with_the_server_clock() {
    let Some(f) = Fixture::mongo("cluster_nodes") else {
        return;
    };
    let store = f.open().await;
    let node = |id: &str, running: u32| NodeRecord {
        id: id.into(),
        advertise_rtmp: format!("rtmp://127.0.0.1:1941/dss#{id}"),
        api: "http://127.0.0.1:8101".into(),
        running,
        owned: running,
        seen_ms: 0,
        started_ms: 1,
        key: format!("key-of-{id}"),
        live_ms: 10_000,
    };
    let now = store.put_node(node("h1", 3)).await.unwrap();
    assert!(now > 1_700_000_000_000, "server time {now}");
    store.put_node(node("h2", 0)).await.unwrap();
    store.put_node(node("h1", 5)).await.unwrap();
    let nodes = store.nodes().await.unwrap();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    assert_eq!((nodes[0].id.as_str(), nodes[0].running), ("h1", 5));
    assert!(nodes[0].seen_ms >= now);
    assert_eq!(nodes[0].key, "", "a host's key is never handed out");
    assert_eq!(nodes[0].live_ms, 10_000);
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_live_host_under_one_node_id_is_refused() {
    let Some(f) = Fixture::mongo("cluster_node_taken") else {
        return;
    };
    let store = f.open().await;
    let node = |key: &str, live_ms: u64| NodeRecord {
        id: "twin".into(),
        advertise_rtmp: "rtmp://127.0.0.1:1941/dss".into(),
        api: format!("http://127.0.0.1:8101/#{key}"),
        running: 0,
        owned: 0,
        seen_ms: 0,
        started_ms: 7,
        key: key.into(),
        live_ms,
    };
    store.put_node(node("first", 10_000)).await.unwrap();
    let e = store.put_node(node("second", 10_000)).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::NodeTaken { id, other: Some(o) } if id == "twin" && o.contains("#first")),
        "{e}"
    );
    assert!(e.to_string().contains("in use by another live host"), "{e}");
    // The first host goes on reporting; restarted, it keeps its key.
    store.put_node(node("first", 200)).await.unwrap();
    // Once its record is no longer live (200 ms, server clock), the id is
    // free.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match store.put_node(node("second", 10_000)).await {
            Ok(_) => break,
            Err(StoreError::NodeTaken { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("the id stayed taken: {e}"),
        }
    }
    let e = store.put_node(node("first", 10_000)).await.unwrap_err();
    assert!(matches!(e, StoreError::NodeTaken { .. }), "{e}");
    f.cleanup().await;
}

fn fenced(epoch: Option<u64>, keys: &[&str]) -> dss_store::Listing {
    dss_store::Listing {
        provider: "feed".into(),
        fetched_at_ms: 1_700_000_000_000,
        fingerprint: Some("f".into()),
        epoch,
        streams: keys
            .iter()
            .map(|k| dss_store::ListedStream {
                key: k.to_string(),
                source: format!("rtsp://cam/{k}"),
                name: k.to_string(),
                geo: None,
                online: true,
                input_options: vec![],
                output_options: vec![],
                tags: Default::default(),
            })
            .collect(),
    }
}

fn keys(l: &dss_store::Listing) -> Vec<&str> {
    l.streams.iter().map(|s| s.key.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_of_an_older_refresh_epoch_never_replaces_a_newer_one() {
    let Some(f) = Fixture::mongo("cluster_listing_fence") else {
        return;
    };
    let store = f.open().await;
    store
        .put_listing(fenced(Some(2), &["a", "b", "c"]))
        .await
        .unwrap();
    store.flush().await.unwrap();
    // A host that held epoch 1 replays its queued listing: it loses, and
    // leaves no chunks behind.
    store
        .put_listing(fenced(Some(1), &["a", "b"]))
        .await
        .unwrap();
    store.flush().await.unwrap();
    let got = store.get_listing("feed").await.unwrap().expect("listing");
    assert_eq!((keys(&got), got.epoch), (vec!["a", "b", "c"], Some(2)));
    // The same epoch (the holder's next refresh) and a newer one win.
    store.put_listing(fenced(Some(2), &["a"])).await.unwrap();
    store.flush().await.unwrap();
    assert_eq!(
        keys(&store.get_listing("feed").await.unwrap().unwrap()),
        ["a"]
    );
    store.put_listing(fenced(Some(5), &["d"])).await.unwrap();
    store.put_listing(fenced(Some(4), &["e"])).await.unwrap();
    store.flush().await.unwrap();
    let got = store.get_listing("feed").await.unwrap().unwrap();
    assert_eq!((keys(&got), got.epoch), (vec!["d"], Some(5)));
    f.cleanup().await;
}
