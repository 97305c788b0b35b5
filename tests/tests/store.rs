//! The store as the host uses it: listings persisted and served across
//! restarts like the original DSS loader (cache, fallback, lazy), on the
//! embedded SQLite store and on MongoDB (CongoDB in CI), and a MongoDB
//! outage that leaves streaming alone.

use dss_e2e::timeout::T20 as T;
use dss_e2e::*;
use std::time::Duration;

const FEED: &str = r#"[{"id": "bridge", "name": "Bridge", "lat": -22.1, "lon": -43.5},
                      {"id": "port", "name": "Port"}]"#;

fn feed() -> FileServer {
    FileServer::start(vec![(
        "/cams.json",
        Answer::Body("application/json", FEED.into()),
    )])
}

fn traffic(addr: &str, extra: &str) -> String {
    format!(
        "module = \"traffic-feed\"\nallow_hosts = [\"{addr}\"]\n{extra}\n[config]\nurl = \"http://{addr}/cams.json\"\nsource_template = \"rtsp://feed/{{key}}\"\nrefresh_seconds = 1\n"
    )
}

/// Restart with the upstream gone: the persisted listing serves at once,
/// stale, with its age; the provider's failure does not remove it.
fn listing_survives_restart(s: &Setup) {
    let upstream = feed();
    s.instance("traffic", &traffic(&upstream.addr, ""));
    let mut host = s.start();
    let p = host.provider_settled("traffic");
    assert_eq!(p["state"], "ready", "{p}");
    assert_eq!(p["listing_source"], "provider");
    assert_eq!(p["stale"], false);
    // Let the background persist land, then stop.
    std::thread::sleep(Duration::from_millis(500));
    host.stop();
    drop(upstream);

    let host = s.start();
    let p = wait_for("the persisted listing", T, || {
        let p = host.get("/api/providers/traffic");
        (p.status == 200 && p.json()["listing_source"] == "cache").then(|| p.json())
    });
    assert_eq!(p["stale"], true, "{p}");
    assert!(p["listing_age_ms"].as_u64().is_some(), "{p}");
    let ids = host.stream_ids();
    assert!(
        ids.contains(&"traffic-bridge".to_string()) && ids.contains(&"traffic-port".to_string()),
        "{ids:?}"
    );
    assert_eq!(host.stream("traffic-bridge")["geo"]["lat"], -22.1);
    // The refresh fails (upstream down): still served, still stale.
    let p = wait_for("the failed refresh", T, || {
        let p = host.get("/api/providers/traffic").json();
        (p["state"] == "failed").then_some(p)
    });
    assert_eq!(p["stale"], true);
    assert!(
        p["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("upstream"),
        "{p}"
    );
    assert_eq!(host.stream_ids().len(), 2);
}

#[test]
fn a_restarted_host_serves_the_last_good_listing_from_sqlite() {
    let s = Setup::new();
    listing_survives_restart(&s);
    assert!(
        s.dir.path().join("var/dss.sqlite").exists(),
        "embedded store by default"
    );
}

#[test]
fn a_restarted_host_serves_the_last_good_listing_from_mongodb() {
    let Some(url) = mongo_url(&format!("dss_e2e_{}", std::process::id())) else {
        return;
    };
    let mut s = Setup::new();
    s.set("store", &format!("url = {url:?}"));
    listing_survives_restart(&s);
    let host = s.start();
    let health = host.get("/healthz").json();
    assert!(
        health["store"]["backend"]
            .as_str()
            .unwrap_or_default()
            .contains("MongoDB"),
        "{health}"
    );
    assert_eq!(health["status"], "ok", "{health}");
}

#[test]
fn a_fallback_file_serves_when_nothing_else_is_known() {
    let s = Setup::new();
    std::fs::write(
        s.dir.path().join("providers.d/fallback.json"),
        r#"[{"key": "old1", "source": "rtsp://old/1", "name": "Old one", "online": true},
            {"key": "../bad", "source": "x", "name": "skipped"}]"#,
    )
    .unwrap();
    // Nothing listens on port 9 of loopback: the provider fails.
    s.instance(
        "traffic",
        &traffic("127.0.0.1:9", "fallback = \"fallback.json\""),
    );
    let host = s.start();
    let p = wait_for("the fallback", T, || {
        let p = host.get("/api/providers/traffic").json();
        (p["listing_source"] == "fallback").then_some(p)
    });
    assert_eq!(p["state"], "failed");
    assert_eq!(p["stale"], true);
    assert_eq!(host.stream_ids(), ["traffic-old1"]);
}

#[test]
fn a_relative_fallback_cannot_leave_the_instances_directory() {
    let s = Setup::new();
    std::fs::write(
        s.dir.path().join("outside.json"),
        r#"[{"key": "out1", "source": "rtsp://old/1", "name": "Outside"}]"#,
    )
    .unwrap();
    let outside = s.dir.path().join("outside.json");
    s.instance(
        "escape",
        &traffic("127.0.0.1:9", "fallback = \"../outside.json\""),
    );
    s.instance(
        "absolute",
        &traffic("127.0.0.1:9", &format!("fallback = {:?}", outside)),
    );
    let host = s.start();
    let p = wait_for("the absolute fallback", T, || {
        let p = host.get("/api/providers/absolute").json();
        (p["listing_source"] == "fallback").then_some(p)
    });
    assert_eq!(p["stale"], true, "{p}");
    let p = wait_for("the refused fallback", T, || {
        let p = host.get("/api/providers/escape").json();
        (p["warnings"].to_string().contains("leads outside")).then_some(p)
    });
    assert_ne!(p["listing_source"], "fallback", "{p}");
    assert_eq!(host.stream_ids(), ["absolute-out1"]);
    // Compiling the provider made the compile cache, private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(s.dir.path().join("var/cache/modules"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn a_lazy_provider_lists_on_first_use_and_a_valid_cache_is_trusted() {
    let upstream = feed();
    let s = Setup::new();
    s.instance("traffic", &traffic(&upstream.addr, "lazy = true"));
    let mut host = s.start();
    let p = wait_for("the lazy provider", T, || {
        let p = host.get("/api/providers/traffic");
        (p.status == 200 && p.json()["lazy_pending"] == true).then(|| p.json())
    });
    assert_eq!(upstream.hits(), 0, "nothing fetched before first use: {p}");
    // First use: the listing request waits for it.
    assert_eq!(host.stream_ids().len(), 2);
    assert!(upstream.hits() >= 1);
    std::thread::sleep(Duration::from_millis(500));
    host.stop();

    // A persisted listing younger than cache_seconds is served without
    // asking the provider.
    s.instance("traffic", &traffic(&upstream.addr, "cache_seconds = 3600"));
    let before = upstream.hits();
    let host = s.start();
    wait_for("the cached listing", T, || {
        (host.stream_ids().len() == 2).then_some(())
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(upstream.hits(), before, "the cache was trusted");
    assert_eq!(
        host.get("/api/providers/traffic").json()["listing_source"],
        "cache"
    );
}

#[test]
fn a_stream_asked_for_while_its_provider_first_lists_waits_for_the_listing() {
    // The first listing takes 2 s: the upstream is slow.
    let upstream = FileServer::start(vec![(
        "/cams.json",
        Answer::Slow(Duration::from_secs(2), "application/json", FEED.into()),
    )]);
    let s = Setup::new();
    s.instance("traffic", &traffic(&upstream.addr, ""));
    let host = s.start_unready();
    wait_for("the provider loading", T, || {
        let p = host.get("/api/providers/traffic");
        (p.status == 200 && p.json()["state"] == "loading").then_some(())
    });
    // Asked for now, the stream is not refused as unknown: the request
    // waits for the first listing.
    let r = host.get("/api/streams/traffic-bridge");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["name"], "Bridge");
}

#[test]
fn an_unreachable_mongodb_degrades_health_but_not_streaming() {
    let mut s = Setup::new();
    let closed = free_port();
    s.set(
        "store",
        &format!("url = \"mongodb://127.0.0.1:{closed}/dss?directConnection=true\""),
    );
    s.set("store", "connect_wait_ms = 500");
    s.instance("cams", "module = \"static-list\"\n[config]\nsource_template = \"rtsp://c/{key}\"\nstreams = [\"a\"]\n");
    let host = s.start();
    assert_eq!(host.provider_settled("cams")["state"], "ready");
    assert_eq!(host.stream_ids(), ["cams-a"]);
    let health = host.get("/healthz");
    assert_eq!(health.status, 200);
    let h = health.json();
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["store"]["health"]["status"], "degraded", "{h}");
}

#[test]
fn a_corrupt_sqlite_file_is_a_clear_error_naming_it() {
    let s = Setup::new();
    std::fs::create_dir_all(s.dir.path().join("var")).unwrap();
    std::fs::write(s.dir.path().join("var/dss.sqlite"), vec![0x42u8; 8192]).unwrap();
    let err = s.serve_refused();
    assert!(err.contains("dss.sqlite") && err.contains("store"), "{err}");
}
