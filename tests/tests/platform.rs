//! The provider platform end to end: interface versions served side by
//! side, https feeds with a key from the operator's secrets, and providers
//! written in other languages.

use dss_e2e::tls::TlsFeed;
use dss_e2e::*;
use std::sync::atomic::Ordering;
use std::time::Duration;

const X264: &str = r#"["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p", "-g", "25"]"#;

#[test]
fn an_https_feed_with_a_key_lists_through_a_0_2_provider_while_a_0_1_provider_serves() {
    let key = "k-3f9a-not-in-any-log";
    let feed = TlsFeed::start(
        "/cams.json",
        r#"[{"id": "north", "name": "North gate", "source": "testsrc2=size=320x240:rate=25",
             "lat": 52.52, "lon": 13.40, "status": "ok"}]"#,
        "x-api-key",
        key,
    );
    let mut s = Setup::new();
    s.install_module("legacy-list", &fixture("legacy-list"));
    s.with_nginx(2);
    s.set(
        "providers",
        &format!("extra_ca_file = {:?}", feed.ca_file().display().to_string()),
    );
    s.env.push(("CITY_KEY_FOR_TEST".into(), key.into()));
    s.instance(
        "city",
        &format!(
            r#"module = "traffic-feed"
allow_hosts = ["localhost:{port}"]
allow_private = true
input_options = ["-re", "-f", "lavfi"]
output_options = {X264}
[config]
url = "{url}"
fields = {{ key = "id", name = "name", lat = "lat", lon = "lon", status = "status", source = "source" }}
secret_headers = {{ "x-api-key" = "city_key" }}
[secrets]
city_key = {{ env = "CITY_KEY_FOR_TEST" }}
"#,
            port = feed.port,
            url = feed.url("/cams.json"),
        ),
    );
    s.instance(
        "old",
        &format!(
            r#"module = "legacy-list"
output_options = {X264}
[config]
streams = [{{ key = "bars", name = "Bars", source = "testsrc=size=320x240:rate=25" }}]
"#
        ),
    );
    let host = s.start();

    let city = host.provider_settled("city");
    assert_eq!(city["state"], "ready", "{city}");
    assert_eq!(city["interface_version"], "0.2.0");
    assert_eq!(city["stream_count"], 1);
    let old = host.provider_settled("old");
    assert_eq!(old["state"], "ready", "{old}");
    assert_eq!(old["interface_version"], "0.1.0");
    assert!(feed.authorized.load(Ordering::SeqCst) >= 1);
    assert_eq!(feed.refused.load(Ordering::SeqCst), 0);
    let ids = host.stream_ids();
    assert!(ids.contains(&"city-north".to_string()), "{ids:?}");
    assert!(ids.contains(&"old-bars".to_string()), "{ids:?}");

    // Both serve viewers at once.
    let a = Viewer::start(&s.rtmp_url("city-north"));
    let b = Viewer::start(&s.rtmp_url("old-bars"));
    a.wait_frames(0, 25, Duration::from_secs(60));
    b.wait_frames(0, 25, Duration::from_secs(60));

    // The key went to the feed, and nowhere else.
    assert!(
        !host.log_text().contains(key),
        "the secret leaked into the log"
    );
    let providers = host.get("/api/providers").body;
    assert!(!providers.contains(key), "the secret leaked into the API");
}

#[test]
fn a_wrong_key_is_an_upstream_error_and_a_missing_secret_refuses_the_instance() {
    let feed = TlsFeed::start("/cams.json", "[]", "x-api-key", "right");
    let mut s = Setup::new();
    s.set(
        "providers",
        &format!("extra_ca_file = {:?}", feed.ca_file().display().to_string()),
    );
    s.env.push(("WRONG_KEY_FOR_TEST".into(), "wrong".into()));
    s.env.push(("RIGHT_KEY_FOR_TEST".into(), "right".into()));
    let instance = |env: &str, bound: &str| {
        format!(
            r#"module = "traffic-feed"
allow_hosts = ["localhost:{port}"]
allow_private = true
[config]
url = "{url}"
source_template = "rtsp://cams.example/{{key}}"
secret_headers = {{ "x-api-key" = "key" }}
[secrets]
key = {{ env = "{env}"{bound} }}
"#,
            port = feed.port,
            url = feed.url("/cams.json"),
        )
    };
    s.instance("wrong", &instance("WRONG_KEY_FOR_TEST", ""));
    s.instance("unset", &instance("NEVER_SET_FOR_TEST", ""));
    // The right key, bound to another host: the module cannot send it to
    // this one, allowed as it is.
    s.instance(
        "elsewhere",
        &instance("RIGHT_KEY_FOR_TEST", r#", hosts = ["feed.example"]"#),
    );
    s.instance(
        "bound",
        &instance(
            "RIGHT_KEY_FOR_TEST",
            &format!(r#", hosts = ["localhost:{}"]"#, feed.port),
        ),
    );
    let host = s.start();
    let bound = host.provider_settled("bound");
    assert_eq!(bound["state"], "ready", "its own host: {bound}");
    let elsewhere = host.provider_settled("elsewhere");
    assert_eq!(elsewhere["state"], "failed", "{elsewhere}");
    let msg = elsewhere["last_error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("secret \"key\" is bound to feed.example") && !msg.contains("right"),
        "{msg}"
    );
    let wrong = host.provider_settled("wrong");
    assert_eq!(wrong["state"], "failed", "{wrong}");
    let msg = wrong["last_error"].to_string();
    assert!(msg.contains("401"), "{msg}");
    assert!(feed.refused.load(Ordering::SeqCst) >= 1);
    let unset = host.provider_settled("unset");
    assert_eq!(unset["state"], "failed", "{unset}");
    let msg = unset["last_error"].to_string();
    assert!(
        msg.contains("[secrets] key: environment variable NEVER_SET_FOR_TEST is not set"),
        "{msg}"
    );
}

/// Waits (longer than `provider_settled`: a JavaScript or Python
/// component compiles for seconds, more on a busy machine) until provider
/// `id` has left `loading`.
fn settled_slowly(host: &Host, id: &str) -> serde_json::Value {
    wait_for(
        &format!("provider {id} to settle"),
        Duration::from_secs(180),
        || {
            let r = host.get(&format!("/api/providers/{id}"));
            let v = r.json();
            (r.status == 200 && v["state"] != "loading").then_some(v)
        },
    )
}

#[test]
fn the_shipped_javascript_provider_serves_the_demo_city() {
    let mut s = Setup::new();
    s.install_module("geojson-feed", &module("geojson-feed"));
    s.with_nginx(2);
    // The demo's own instance file, pointed at this host's port.
    let demo = std::fs::read_to_string(repo_root().join("examples/demo/providers.d/city.toml"))
        .expect("demo instance");
    s.instance(
        "city",
        &demo.replace("127.0.0.1:8000", &format!("127.0.0.1:{}", s.port)),
    );
    let host = s.start();
    let city = settled_slowly(&host, "city");
    assert_eq!(city["state"], "ready", "{city}");
    assert_eq!(city["interface_version"], "0.2.0");
    assert_eq!(city["stream_count"], 4);
    let offline = host.stream("city-enseada-botafogo");
    assert_eq!(offline["online"], false, "{offline}");
    let cam = host.stream("city-maracana");
    assert!(cam["geo"]["lat"].as_f64().is_some(), "{cam}");
    let v = Viewer::start(&s.rtmp_url("city-maracana"));
    v.wait_frames(0, 25, Duration::from_secs(60));
}

/// The JavaScript build is reproducible: the host's compile cache is
/// keyed by the component's hash, so a rebuild of unchanged sources must
/// not cost the next start a 10 s compile. Built twice into one scratch
/// path (the build directory's path is part of the snapshot).
#[test]
fn the_javascript_provider_builds_byte_identical_twice() {
    use sha2::{Digest, Sha256};
    let scratch = dss_e2e::scratch_dir();
    let out = scratch.path().join("geojson-feed.wasm");
    let project = repo_root().join("providers/geojson-feed");
    let build = repo_root().join("provider-sdk/js/build.js");
    let mut hashes = Vec::new();
    for _ in 0..2 {
        run(
            &project,
            "node",
            &[
                build.to_str().unwrap(),
                "src/geojson-feed.js",
                "-o",
                out.to_str().unwrap(),
            ],
        );
        let bytes = std::fs::read(&out).expect("built component");
        hashes.push(hex::encode(Sha256::digest(&bytes)));
        std::fs::remove_file(&out).expect("remove the first build");
    }
    assert_eq!(
        hashes[0], hashes[1],
        "two builds of unchanged sources differ"
    );
}

/// Runs `program args` in `dir`, panicking with its output on failure;
/// returns its stdout.
fn run(dir: &std::path::Path, program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{program} {args:?} in {}:\n{text}",
        dir.display()
    );
    text
}

/// `dss providers new NAME --lang LANG` in a scratch directory; then
/// `build` (the commands the scaffold's README gives) must produce
/// `NAME.wasm` that passes `dss providers check` with its instance file.
fn scaffold_builds_and_checks(lang: &str, build: &[(&str, &[&str])]) {
    let scratch = dss_e2e::scratch_dir();
    let dir = scratch.path().join("my-cams");
    let out = run(
        &repo_root(),
        dss_bin().to_str().unwrap(),
        &[
            "providers",
            "new",
            "my-cams",
            "--lang",
            lang,
            "--dir",
            dir.to_str().unwrap(),
        ],
    );
    assert!(out.contains("created provider my-cams"), "{out}");
    for (program, args) in build {
        run(&dir, program, args);
    }
    let wasm = dir.join("my-cams.wasm");
    assert!(wasm.exists(), "{} was not built", wasm.display());
    check_passes(&wasm, &dir.join("instance.toml"), 2);
}

/// `dss providers check WASM --instance INSTANCE` passes: interface 0.2.0
/// and `streams` streams.
fn check_passes(wasm: &std::path::Path, instance: &std::path::Path, streams: usize) {
    let out = run(
        &repo_root(),
        dss_bin().to_str().unwrap(),
        &[
            "providers",
            "check",
            wasm.to_str().unwrap(),
            "--instance",
            instance.to_str().unwrap(),
        ],
    );
    assert!(out.contains("interface dss:provider@0.2.0"), "{out}");
    assert!(out.contains(&format!("{streams} streams")), "{out}");
}

#[test]
fn a_javascript_scaffold_builds_and_passes_check() {
    scaffold_builds_and_checks(
        "js",
        &[
            (
                "npm",
                &["install", "--no-audit", "--no-fund", "--loglevel=error"],
            ),
            ("npm", &["test"]),
            ("npm", &["run", "build"]),
        ],
    );
}

#[test]
fn a_python_scaffold_builds_and_passes_check() {
    scaffold_builds_and_checks(
        "python",
        &[
            ("python3", &["-m", "unittest", "-q"]),
            ("./build.sh", &["-q"]),
        ],
    );
}

#[test]
fn the_python_example_passes_check_and_serves() {
    let wasm = repo_root().join("examples/python-cameras/python-cameras.wasm");
    assert!(
        wasm.exists(),
        "{} missing: run examples/python-cameras/build.sh (scripts/test.sh does)",
        wasm.display()
    );
    let instance = repo_root().join("examples/python-cameras/instance.toml");
    check_passes(&wasm, &instance, 3);

    let mut s = Setup::new();
    s.install_module("python-cameras", &wasm);
    s.with_nginx(2);
    s.instance("py", &std::fs::read_to_string(&instance).expect("instance"));
    let host = s.start();
    let py = settled_slowly(&host, "py");
    assert_eq!(py["state"], "ready", "{py}");
    assert_eq!(py["stream_count"], 3);
    let v = Viewer::start(&s.rtmp_url("py-bars"));
    v.wait_frames(0, 25, Duration::from_secs(60));
}
