//! The `dss` command line on the real binary and real components.

use dss_e2e::*;
use std::process::Command;

fn dss(args: &[&str], cwd: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(dss_bin())
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .env_remove("DSS_CONFIG")
        .output()
        .expect("run dss");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_passes_on_the_shipped_providers() {
    let scratch = dss_e2e::scratch_dir();
    for m in ["static-list", "traffic-feed", "mobile-ts"] {
        let path = module(m);
        let (ok, out, err) = dss(
            &["providers", "check", path.to_str().unwrap()],
            scratch.path(),
        );
        assert!(ok, "{m}: {out}{err}");
        assert!(out.contains(&format!("provider {m} ")), "{out}");
        assert!(out.contains("interface dss:provider@0.2.0"), "{out}");
        assert!(out.contains("limits:"), "{out}");
    }
}

#[test]
fn check_with_an_instance_lists_its_streams() {
    let root = repo_root();
    let (ok, out, err) = dss(
        &[
            "providers",
            "check",
            module("static-list").to_str().unwrap(),
            "--instance",
            "examples/demo/providers.d/demo.toml",
        ],
        &root,
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("3 streams"), "{out}");
    assert!(out.contains("demo-bars"), "{out}");
    assert!(
        out.contains("list-streams:") && out.contains("peak memory"),
        "{out}"
    );
}

#[test]
fn check_reports_streams_the_ffmpeg_policy_refuses() {
    let scratch = dss_e2e::scratch_dir();
    let instance = scratch.path().join("cams.toml");
    std::fs::write(
        &instance,
        "module = \"static-list\"\nallow_sources = [\"cam.example\"]\n\
         output_options = [\"-c\", \"copy\"]\n\
         [config]\nstreams = [\
         { key = \"good\", source = \"rtsp://cam.example/1\" },\
         { key = \"loop\", source = \"http://127.0.0.1:8000/control/x/start\" },\
         { key = \"file\", source = \"file:///etc/passwd\" }]\n",
    )
    .unwrap();
    let (ok, out, err) = dss(
        &[
            "providers",
            "check",
            module("static-list").to_str().unwrap(),
            "--instance",
            instance.to_str().unwrap(),
        ],
        scratch.path(),
    );
    assert!(!ok, "{out}");
    assert!(out.contains("3 streams"), "{out}");
    assert!(
        out.contains("REFUSED cams-loop: source host 127.0.0.1 is not allowed"),
        "{out}"
    );
    assert!(
        out.contains("REFUSED cams-file: source \"file:///etc/passwd\" is not a URL"),
        "{out}"
    );
    assert!(!out.contains("REFUSED cams-good"), "{out}");
    assert!(err.contains("refuses 2 of 3 streams"), "{err}");
}

#[test]
fn check_fails_clearly_on_files_that_are_not_components() {
    let scratch = dss_e2e::scratch_dir();
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "text.wasm",
            b"hello, I am a text file\n",
            "not a WebAssembly file",
        ),
        ("empty.wasm", b"", "empty file"),
        ("core.wasm", b"\0asm\x01\0\0\0", "core WebAssembly module"),
        (
            "truncated.wasm",
            b"\0asm\x0d\0\x01\0\x07\x05",
            "invalid component",
        ),
    ];
    for (name, bytes, expect) in cases {
        let path = scratch.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let (ok, out, err) = dss(
            &["providers", "check", path.to_str().unwrap()],
            scratch.path(),
        );
        assert!(!ok, "{name} passed: {out}");
        assert!(err.contains(expect) && err.contains(name), "{name}: {err}");
    }
    let (ok, _, err) = dss(&["providers", "check", "missing.wasm"], scratch.path());
    assert!(!ok);
    assert!(
        err.contains("missing.wasm") && err.contains("cannot read"),
        "{err}"
    );
}

#[test]
fn config_prints_the_effective_configuration() {
    let scratch = dss_e2e::scratch_dir();
    std::fs::write(
        scratch.path().join("dss.toml"),
        "[nginx]\nhttp_port = 8181\n[security]\napi_token = \"s3cret-api-token\"\n\
         callback_secret = \"0123456789abcdef0123456789abcdef\"\n\
         [store]\nurl = \"mongodb://dss:hunter2@db.example/dss\"\n",
    )
    .unwrap();
    let out = Command::new(dss_bin())
        .arg("config")
        .current_dir(scratch.path())
        .env("DSS_NGINX__RTMP_PORT", "1940")
        .env_remove("DSS_CONFIG")
        .output()
        .expect("run dss");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    // Secrets are shown redacted.
    for secret in [
        "s3cret-api-token",
        "0123456789abcdef0123456789abcdef",
        "hunter2",
    ] {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
    }
    assert!(text.contains("api_token = \"<redacted>\""), "{text}");
    assert!(
        text.contains("mongodb://dss:<redacted>@db.example/dss"),
        "{text}"
    );
    assert!(text.contains("listen = \"127.0.0.1:8000\""), "{text}");
    assert!(text.contains("http_port = 8181"), "{text}");
    assert!(text.contains("rtmp_port = 1940"), "{text}");
    assert!(text.contains("app = \"dss\""), "{text}");
    let out = Command::new(dss_bin())
        .args(["--config", "nope.toml", "config"])
        .current_dir(scratch.path())
        .output()
        .expect("run dss");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.toml"));
}

#[test]
fn providers_list_shows_modules_and_instances() {
    let (ok, out, err) = dss(&["providers", "list"], &repo_root());
    assert!(ok, "{out}{err}");
    for needle in [
        "static-list",
        "traffic-feed",
        "mobile-ts",
        "demo",
        "traffic",
        "phones",
    ] {
        assert!(out.contains(needle), "{needle}: {out}");
    }
}

#[test]
fn a_scaffolded_provider_builds_passes_check_and_serves() {
    let scratch = dss_e2e::scratch_dir();
    let dir = scratch.path().join("my-cams");
    let (ok, out, err) = dss(
        &[
            "providers",
            "new",
            "my-cams",
            "--dir",
            dir.to_str().unwrap(),
        ],
        &repo_root(),
    );
    assert!(ok, "{out}{err}");
    let (ok, _, err) = dss(
        &[
            "providers",
            "new",
            "my-cams",
            "--dir",
            dir.to_str().unwrap(),
        ],
        &repo_root(),
    );
    assert!(!ok && err.contains("not empty"), "{err}");
    let (ok, _, err) = dss(&["providers", "new", "Bad_Name"], scratch.path());
    assert!(!ok && err.contains("invalid provider name"), "{err}");

    // Unchanged, it tests natively and builds as a component.
    let target = repo_root().join("target/scaffold");
    let cargo = |args: &[&str]| {
        let out = Command::new("cargo")
            .args(args)
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .expect("cargo");
        assert!(
            out.status.success(),
            "cargo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(cargo(&["test", "--release"]).contains("1 passed"));
    cargo(&["build", "--release", "--target", "wasm32-wasip2"]);
    let wasm = target.join("wasm32-wasip2/release/my_cams.wasm");
    let (ok, out, err) = dss(
        &[
            "providers",
            "check",
            wasm.to_str().unwrap(),
            "--instance",
            dir.join("instance.toml").to_str().unwrap(),
        ],
        &repo_root(),
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("2 streams"), "{out}");

    // Dropped into a running host, its streams appear.
    let s = Setup::new();
    let host = s.start();
    s.install_module("my-cams", &wasm);
    std::fs::copy(
        dir.join("instance.toml"),
        s.dir.path().join("providers.d/site.toml"),
    )
    .unwrap();
    wait_for(
        "the new provider's streams",
        std::time::Duration::from_secs(20),
        || {
            let ids = host.stream_ids();
            (ids.contains(&"site-one".to_string()) && ids.contains(&"site-two".to_string()))
                .then_some(())
        },
    );
}

#[test]
fn a_missing_nginx_is_a_clear_error_naming_the_packages() {
    let mut s = Setup::new();
    s.sections.get_mut("nginx").unwrap().clear();
    s.set("nginx", "managed = true");
    s.set("nginx", "binary = \"/nonexistent/nginx\"");
    let err = s.serve_refused();
    assert!(
        err.contains("/nonexistent/nginx")
            && err.contains("apt-get install -y nginx libnginx-mod-rtmp"),
        "{err}"
    );
}

#[test]
fn nginx_conf_prints_the_rendered_configuration() {
    let scratch = dss_e2e::scratch_dir();
    std::fs::write(
        scratch.path().join("dss.toml"),
        "[nginx]\nrtmp_port = 1940\napp = \"live\"\n",
    )
    .unwrap();
    let (ok, out, err) = dss(&["nginx-conf"], scratch.path());
    assert!(ok, "{err}");
    assert!(
        out.contains(":1940;") && out.contains("application live {"),
        "{out}"
    );
    // Callbacks carry the host's secret, made once in the state directory.
    let secret =
        std::fs::read_to_string(scratch.path().join("var/callback.secret")).expect("secret made");
    assert!(
        out.contains(&format!(
            "on_play http://127.0.0.1:8000/hooks/{}/on_play;",
            secret.trim()
        )),
        "{out}"
    );
    let (_, again, _) = dss(&["nginx-conf"], scratch.path());
    assert_eq!(out, again, "the same secret every time");
    assert!(!out.contains("{{"), "every placeholder filled");
}
