//! The hostile-provider suite: fixture components built from source in
//! tests/fixtures/ misbehave in every way we could think of. For each, the
//! host stays up, the other providers keep serving, and the error names
//! the provider and the cause.

use dss_e2e::*;
use std::time::Duration;

#[test]
fn every_hostile_provider_fails_alone_with_its_cause() {
    let forbidden = FileServer::start(vec![(
        "/list",
        Answer::Body("text/plain", b"secret".to_vec()),
    )]);
    let allowed = FileServer::start(vec![(
        "/list",
        Answer::Redirect(302, format!("http://{}/list", forbidden.addr)),
    )]);
    let looped = FileServer::start(vec![("/list", Answer::Body("text/plain", b"x".to_vec()))]);

    let s = Setup::new();
    s.install_module("hostile", &fixture("hostile"));
    s.install_module("panic-describe", &fixture("panic-describe"));
    s.install_module("other-world", &fixture("other-world"));
    s.install_module("future-version", &fixture("future-version"));
    let hostile = std::fs::read(fixture("hostile")).unwrap();
    s.write_module("truncated", &hostile[..hostile.len() / 2]);
    s.write_module("empty", b"");
    s.write_module("text", b"I am a text file, not a component.\n");

    s.instance("good", "module = \"static-list\"\n[config]\nsource_template = \"rtsp://c/{key}\"\nstreams = [\"a\", \"b\"]\n");
    s.instance(
        "phones",
        "module = \"mobile-ts\"\n[config]\nphones = [{ key = \"p\" }]\n",
    );
    let mode = |name: &str, mode: &str, extra: &str| {
        s.instance(
            name,
            &format!("module = \"hostile\"\n{extra}\n[config]\nmode = \"{mode}\"\n"),
        );
    };
    mode("h_panic_init", "panic-init", "");
    mode("h_panic_list", "panic-list", "");
    mode("h_loop", "loop", "");
    mode("h_alloc", "alloc", "");
    mode("h_huge", "huge-string", "");
    mode(
        "h_many",
        "many",
        "[limits]\nmemory_mib = 512\ncall_timeout_ms = 30000",
    );
    // With the result cap raised, the stream count limit speaks.
    mode(
        "h_many_count",
        "many",
        "[limits]\nmemory_mib = 512\ncall_timeout_ms = 30000\nmax_result_mib = 1024",
    );
    mode("h_bad_keys", "bad-keys", "");
    s.instance(
        "h_forbidden",
        &format!(
            "module = \"hostile\"\n[config]\nmode = \"http\"\nurl = \"http://{}/list\"\n",
            forbidden.addr
        ),
    );
    s.instance(
        "h_redirect",
        &format!("module = \"hostile\"\nallow_hosts = [\"{0}\"]\n[config]\nmode = \"http\"\nurl = \"http://{0}/list\"\n", allowed.addr),
    );
    s.instance(
        "h_http_loop",
        &format!("module = \"hostile\"\nallow_hosts = [\"{0}\"]\n[config]\nmode = \"http-loop\"\nurl = \"http://{0}/list\"\n", looped.addr),
    );
    for m in [
        "panic-describe",
        "other-world",
        "future-version",
        "truncated",
        "empty",
        "text",
    ] {
        s.instance(
            &format!("m_{}", m.replace('-', "_")),
            &format!("module = \"{m}\"\n"),
        );
    }
    let host = s.start();

    let expect: &[(&str, &[&str])] = &[
        ("h_panic_init", &["trapped", "panic in init"]),
        ("h_panic_list", &["trapped", "panic in list-streams"]),
        ("h_loop", &["time limit exceeded"]),
        ("h_alloc", &["memory limit exceeded", "limit 64 MiB"]),
        ("h_huge", &["memory limit exceeded"]),
        ("h_many", &["result too large", "max_result_mib"]),
        ("h_many_count", &["1000000 streams", "limit of 100000"]),
        (
            "h_forbidden",
            &["upstream", "not in this provider's allow_hosts"],
        ),
        ("h_redirect", &["redirect", "allow_hosts"]),
        ("h_http_loop", &["time limit exceeded"]),
        (
            "m_panic_describe",
            &[
                "panic-describe.wasm",
                "describe failed",
                "panic in describe",
            ],
        ),
        (
            "m_other_world",
            &["other-world.wasm", "not a DSS provider", "add"],
        ),
        (
            "m_future_version",
            &["future-version.wasm", "dss:provider@9.0.0", "0.1.x"],
        ),
        ("m_truncated", &["truncated.wasm", "invalid component"]),
        ("m_empty", &["empty.wasm", "empty file"]),
        ("m_text", &["text.wasm", "not a WebAssembly file"]),
    ];
    for (id, needles) in expect {
        let p = host.provider_settled(id);
        assert_eq!(p["state"], "failed", "{id}: {p}");
        let err = p["last_error"].as_str().unwrap_or_default();
        for n in *needles {
            assert!(err.contains(n), "{id}: {n:?} not in {err:?}");
        }
    }

    // Invalid keys are skipped with warnings; the valid ones serve.
    let bad = host.provider_settled("h_bad_keys");
    assert_eq!(bad["state"], "ready", "{bad}");
    assert_eq!(bad["stream_count"], 2);
    let warnings = bad["warnings"].to_string();
    assert!(
        warnings.contains("invalid stream key") && warnings.contains("duplicate key"),
        "{warnings}"
    );

    // The rest of the host is untouched.
    assert_eq!(host.provider_settled("good")["state"], "ready");
    assert_eq!(host.provider_settled("phones")["state"], "ready");
    let ids = host.stream_ids();
    for id in [
        "good-a",
        "good-b",
        "phones-p",
        "h_bad_keys-ok1",
        "h_bad_keys-ok2",
    ] {
        assert!(ids.contains(&id.to_string()), "{id} missing: {ids:?}");
    }
    assert_eq!(host.get("/healthz").status, 200);
    assert_eq!(
        forbidden.hits(),
        0,
        "the forbidden host was never contacted"
    );
    assert!(
        looped.hits() <= 16,
        "http-get per call is bounded: {}",
        looped.hits()
    );

    // Rejections and failures show in the metrics too.
    let metrics = host.get("/metrics").body;
    assert!(
        metrics.contains(r#"dss_module_rejected{module="text"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"dss_provider_state{provider="h_loop",state="failed"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"dss_provider_streams{provider="good"} 2"#),
        "{metrics}"
    );

    // Guest panics are logged under the provider's name.
    let log = host.log_text();
    assert!(
        log.contains("panic in list-streams") && log.contains("h_panic_list"),
        "{log}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(host.get("/healthz").status, 200, "still up");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_in_transform_metadata_is_a_trap_with_its_message() {
    use dss_host::config::Limits;
    use dss_host::plugin::module::Grant;
    use dss_host::plugin::{CallError, PluginEngine, ProviderModule};
    let engine = PluginEngine::new(None).expect("engine");
    let m = ProviderModule::load(&engine, &fixture("hostile"), &Limits::default()).expect("load");
    let err = tokio::task::spawn_blocking(move || {
        m.transform_metadata(
            &Grant::new("h", Limits::default()),
            r#"{"mode":"transform-panic"}"#,
            "k",
            "{}",
        )
        .unwrap_err()
    })
    .await
    .unwrap();
    assert!(
        matches!(&err, CallError::Trap(m) if m.contains("panic in transform-metadata")),
        "{err}"
    );
}
