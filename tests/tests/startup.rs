//! Start-up: phones and viewers arriving the moment the host answers are
//! served whatever module is still compiling; `/readyz` says when
//! everything is in; a second start compiles nothing; the compile cache
//! stays bounded.

use dss_e2e::timeout::T60 as T;
use dss_e2e::*;
use std::time::{Duration, Instant};

/// The JavaScript provider (a 10 s compile on two cores) beside the phones
/// and a test pattern, on a fresh compile cache.
fn setup() -> Setup {
    let mut s = Setup::new();
    s.install_module("geojson-feed", &module("geojson-feed"));
    s.with_nginx(2);
    s.instance("phones", "module = \"mobile-ts\"\n");
    s.instance("demo", &test_pattern_instance(&["bars"]));
    let city = std::fs::read_to_string(repo_root().join("examples/demo/providers.d/city.toml"))
        .expect("demo instance");
    s.instance(
        "city",
        &city.replace("127.0.0.1:8000", &format!("127.0.0.1:{}", s.port)),
    );
    s
}

/// Where `needle` first appears in the host's log.
fn log_position(host: &Host, needle: &str) -> Option<usize> {
    host.log_text().find(needle)
}

#[test]
fn phones_and_a_viewer_arriving_as_the_host_starts_are_served_while_a_module_compiles() {
    let s = setup();
    let state = s.dir.path().join("phone-state.json");
    let started = Instant::now();
    // Returns as soon as the API answers (the phones' port and nginx are
    // up by then): nothing is listed yet, every module is compiling.
    let mut host = s.start_unready();
    let answered = started.elapsed();
    let tcp = Sender::start(&[
        "test",
        "--server",
        &format!("127.0.0.1:{}", s.mobile_port),
        "--state",
        state.to_str().unwrap(),
        "--duration",
        "4",
    ]);
    let http_state = s.dir.path().join("http-state.json");
    let http = Sender::start(&[
        "test",
        "--http",
        "--server",
        &format!("127.0.0.1:{}", s.port),
        "--state",
        http_state.to_str().unwrap(),
        "--duration",
        "4",
    ]);
    let viewer = Viewer::start(&s.rtmp_url("demo-bars"));
    let arrived = started.elapsed() - answered;
    println!("API answered {answered:?} after the spawn; phones and viewer {arrived:?} later");

    let ready = host.get("/readyz");
    assert_eq!(
        ready.status, 503,
        "not ready while compiling: {}",
        ready.body
    );
    let pending = ready.json()["pending"].to_string();
    assert!(pending.contains("city"), "{pending}");

    let tcp_id = tcp.wait_id(T);
    let http_id = http.wait_id(T);
    viewer.wait_frames(0, 10, T);
    // All of it while the JavaScript module was still compiling: the
    // phones' and the test pattern's instances did not wait for it.
    let served = [
        format!("stream=phones-{tcp_id}"),
        format!("stream=phones-{http_id}"),
    ];
    for needle in &served {
        host.wait_log(needle, T);
    }
    let compiled = log_position(&host, "module loaded module=geojson-feed");
    for needle in &served {
        let at = log_position(&host, needle).expect("phone in the log");
        assert!(
            compiled.is_none_or(|c| at < c),
            "{needle} served only after the JavaScript module compiled"
        );
    }
    let mut tcp = tcp;
    let mut http = http;
    assert!(tcp.wait(T).success(), "TCP phone: {:?}", tcp.lines());
    assert!(http.wait(T).success(), "HTTP phone: {:?}", http.lines());

    // Ready once the JavaScript module listed.
    wait_for("the host ready", Duration::from_secs(180), || {
        (host.get("/readyz").status == 200).then_some(())
    });
    assert!(host.log_text().contains("origin=Compiled"));

    // A second start compiles nothing and is ready at once.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &host.child.id().to_string()])
        .status();
    let _ = host.child.wait();
    let again = Instant::now();
    let host = s.start_unready();
    wait_for("the restarted host ready", T, || {
        (host.get("/readyz").status == 200).then_some(())
    });
    println!("second start: ready {:?} after the spawn", again.elapsed());
    wait_for("every module loaded", T, || {
        (host.log_text().matches("module loaded").count() == 4).then_some(())
    });
    let log = host.log_text();
    assert_eq!(log.matches("origin=Cached").count(), 4, "{log}");
    assert!(!log.contains("origin=Compiled"), "{log}");
}

/// `bytes` (a component) with a custom section appended: the same module,
/// other bytes (a new version to the host).
fn with_custom_section(bytes: &[u8], payload: &str) -> Vec<u8> {
    let name = b"dss-test";
    let mut body = vec![name.len() as u8];
    body.extend_from_slice(name);
    body.extend_from_slice(payload.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0);
    let mut n = body.len();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend_from_slice(&body);
    out
}

/// The compile cache's artifacts of module `name`.
fn artifacts(s: &Setup, name: &str) -> Vec<String> {
    let dir = s.dir.path().join("var/cache/modules");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("{name}@")) && n.ends_with(".cwasm"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Installs version `n` of static-list and waits until it serves.
fn swap_to(s: &Setup, host: &Host, original: &[u8], n: usize) {
    let bytes = with_custom_section(original, &format!("version {n}"));
    let tmp = s.dir.path().join("next.wasm");
    std::fs::write(&tmp, &bytes).unwrap();
    s.install_module("static-list", &tmp);
    let hash = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(&bytes))
    };
    wait_for(&format!("version {n} serving"), T, || {
        let p = host.get("/api/providers/demo").json();
        (p["module_hash"] == hash.as_str()).then_some(())
    });
}

#[test]
fn the_compile_cache_keeps_the_modules_in_use_and_the_newest_versions_only() {
    let s = Setup::new();
    s.instance("demo", &test_pattern_instance(&["bars"]));
    let host = s.start();
    let original = std::fs::read(module("static-list")).unwrap();
    for n in 1..=4 {
        swap_to(&s, &host, &original, n);
    }
    // The version in use and the two newest before it.
    wait_for("old versions pruned", T, || {
        (artifacts(&s, "static-list").len() == 3).then_some(())
    });
    assert_eq!(artifacts(&s, "mobile-ts").len(), 1);

    // A module removed takes its artifacts with it.
    std::fs::remove_file(s.modules().join("static-list.wasm")).unwrap();
    wait_for("a removed module's artifacts pruned", T, || {
        artifacts(&s, "static-list").is_empty().then_some(())
    });
    assert_eq!(artifacts(&s, "traffic-feed").len(), 1, "the others stay");
}

#[test]
fn beyond_cache_max_mib_the_least_recently_used_versions_go() {
    let mut s = Setup::new();
    // One static-list artifact is ~0.6 MB: two do not fit in 1 MiB.
    s.set("providers", "cache_max_mib = 1");
    s.instance("demo", &test_pattern_instance(&["bars"]));
    let host = s.start();
    let original = std::fs::read(module("static-list")).unwrap();
    for n in 1..=2 {
        swap_to(&s, &host, &original, n);
    }
    wait_for("the cache bounded", T, || {
        (artifacts(&s, "static-list").len() == 1).then_some(())
    });
    assert!(
        host.log_text()
            .contains("the modules in use alone exceed [providers] cache_max_mib"),
        "the operator is told that the bound is below what is in use"
    );
}
