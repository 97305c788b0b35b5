//! Hot swap: modules and instances replaced, broken or removed at run
//! time, with no restart, while streams play and clients read the API.

use dss_e2e::timeout::T20 as T;
use dss_e2e::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn name_of(host: &Host, id: &str) -> String {
    host.stream(id)["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn twenty_swaps_under_load_keep_the_watched_stream_and_every_request() {
    let _g = serial();
    let mut s = Setup::new();
    s.with_nginx(30);
    s.install_module("versioned", &fixture("versioned-one"));
    s.instance(
        "cam",
        "module = \"versioned\"\n[config]\nkeys = [\"a\", \"b\"]\n",
    );
    let host = s.start();
    assert_eq!(host.provider_settled("cam")["state"], "ready");
    assert_eq!(name_of(&host, "cam-a"), "a one");
    assert_eq!(
        host.post("/api/streams/cam-a/watch?timeout=600").status,
        200
    );
    let pid = host.wait_stream("cam-a", "live", T, |v| v["state"] == "live")["pid"].clone();

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, ok, failed, base) =
            (stop.clone(), ok.clone(), failed.clone(), host.base.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let r = get(&format!("{base}/api/streams"));
                let good = r.status == 200
                    && serde_json::from_str::<serde_json::Value>(&r.body)
                        .map(|v| v.as_array().is_some_and(|a| a.len() == 2))
                        .unwrap_or(false);
                if good { &ok } else { &failed }.fetch_add(1, Ordering::SeqCst);
            }
        })
    };

    let mut latencies = Vec::new();
    for i in 0..20 {
        let version = if i % 2 == 0 { "two" } else { "one" };
        s.install_module("versioned", &fixture(&format!("versioned-{version}")));
        let start = Instant::now();
        let want = format!("a {version}");
        wait_for(
            &format!("swap {i} to {version}"),
            Duration::from_secs(10),
            || (name_of(&host, "cam-a") == want).then_some(()),
        );
        latencies.push(start.elapsed());
        assert_eq!(
            host.provider_settled("cam")["version"],
            format!("1.0.0+{version}")
        );
    }
    stop.store(true, Ordering::SeqCst);
    load.join().unwrap();

    latencies.sort();
    println!(
        "swap visible after: median {:?}, max {:?}; API requests during swaps: {} ok, {} failed",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
        ok.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst)
    );
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "no request failed during the swaps"
    );
    assert!(ok.load(Ordering::SeqCst) > 20);
    let v = host.stream("cam-a");
    assert_eq!(
        v["pid"], pid,
        "the watched stream's FFmpeg survived every swap: {v}"
    );
    assert_eq!(v["state"], "live");
}

#[test]
fn a_broken_update_keeps_the_previous_version_serving() {
    let _g = serial();
    let s = Setup::new();
    s.install_module("versioned", &fixture("versioned-one"));
    s.instance("cam", "module = \"versioned\"\n[config]\nkeys = [\"a\"]\n");
    let host = s.start();
    assert_eq!(host.provider_settled("cam")["state"], "ready");
    let hash = host.provider_settled("cam")["module_hash"].clone();

    // A truncated file: rejected at load.
    let bytes = std::fs::read(fixture("versioned-two")).unwrap();
    s.write_module("versioned", &bytes[..bytes.len() / 3]);
    let p = wait_for("the rejection", T, || {
        let p = host.provider_settled("cam");
        p["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("rejected"))
            .then_some(p)
    });
    assert!(
        p["last_error"]
            .as_str()
            .unwrap()
            .contains("invalid component"),
        "{p}"
    );
    assert_eq!(p["module_hash"], hash, "the previous version keeps serving");
    assert_eq!(name_of(&host, "cam-a"), "a one");

    // A valid component whose init fails with this config: not swapped in.
    s.install_module("versioned", &fixture("hostile"));
    let p = wait_for("the failed validation", T, || {
        let p = host.provider_settled("cam");
        p["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("not swapped in"))
            .then_some(p)
    });
    assert!(
        p["last_error"].as_str().unwrap().contains("invalid-config"),
        "{p}"
    );
    assert_eq!(p["module_hash"], hash);
    assert_eq!(p["state"], "ready");
    assert_eq!(name_of(&host, "cam-a"), "a one");

    // A good version swaps in; then a config change does too.
    s.install_module("versioned", &fixture("versioned-two"));
    wait_for("version two", T, || {
        (name_of(&host, "cam-a") == "a two").then_some(())
    });
    assert!(host.provider_settled("cam")["last_error"].is_null());
    s.instance(
        "cam",
        "module = \"versioned\"\n[config]\nkeys = [\"a\", \"c\"]\n",
    );
    wait_for("the new config", T, || {
        host.stream_ids()
            .contains(&"cam-c".to_string())
            .then_some(())
    });

    // An instance file that stops parsing keeps the running one.
    s.instance("cam", "module = [\n");
    let p = wait_for("the parse error", T, || {
        let p = host.provider_settled("cam");
        p["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cam.toml"))
            .then_some(p)
    });
    assert_eq!(p["state"], "ready", "{p}");
    assert!(host.stream_ids().contains(&"cam-c".to_string()));

    // A new instance dropped in appears without a restart.
    s.instance("more", "module = \"static-list\"\n[config]\nsource_template = \"rtsp://x/{key}\"\nstreams = [\"z\"]\n");
    wait_for("the new instance", T, || {
        host.stream_ids()
            .contains(&"more-z".to_string())
            .then_some(())
    });
}

#[test]
fn removing_an_instance_stops_its_streams_after_the_grace_period() {
    let _g = serial();
    let mut s = Setup::new();
    s.with_nginx(2);
    s.install_module("versioned", &fixture("versioned-one"));
    s.instance("cam", "module = \"versioned\"\n[config]\nkeys = [\"a\"]\n");
    let host = s.start();
    assert_eq!(host.provider_settled("cam")["state"], "ready");
    assert_eq!(
        host.post("/api/streams/cam-a/watch?timeout=600").status,
        200
    );
    let pid = host.wait_stream("cam-a", "live", T, |v| v["state"] == "live")["pid"]
        .as_u64()
        .unwrap() as u32;
    std::fs::remove_file(s.dir.path().join("providers.d/cam.toml")).unwrap();
    wait_for("the provider to go", T, || {
        (host.get("/api/providers/cam").status == 404).then_some(())
    });
    assert_eq!(host.get("/api/streams/cam-a").status, 404);
    wait_for("its FFmpeg to stop after the grace period", T, || {
        (!process_alive(pid)).then_some(())
    });
}
