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
    // At most 8 requests per call, however often the failing provider has
    // been retried by now (5 s, then 10 s, ...: a slow machine gets there).
    let hits = looped.hits();
    let calls = host
        .log_text()
        .lines()
        .filter(|l| l.contains("provider failed") && l.contains("provider=h_http_loop"))
        .count();
    assert!(
        hits <= 8 * (calls + 1),
        "http-get per call is bounded: {hits} requests in {calls} failed calls"
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

/// Wall-clock limit of the instances below: short, to keep the tests fast.
const WALL_MS: u64 = 2_000;

/// How long after the wall limit a stuck call must have been reported.
const SLACK: Duration = Duration::from_secs(8);

fn hostile_instance(mode: &str, limits: &str) -> String {
    format!("module = \"hostile\"\n[limits]\ncall_wall_timeout_ms = {WALL_MS}\n{limits}\n[config]\nmode = \"{mode}\"\n")
}

/// The host process's resident memory (`VmRSS`) or its peak (`VmHWM`), in
/// KiB.
fn host_memory_kib(host: &Host, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", host.child.id()))
        .expect("the host's /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

#[test]
fn a_provider_asleep_in_a_wasi_call_fails_alone_at_the_wall_limit() {
    let s = Setup::new();
    s.install_module("hostile", &fixture("hostile"));
    s.instance("good", "module = \"static-list\"\n[config]\nsource_template = \"rtsp://c/{key}\"\nstreams = [\"a\", \"b\"]\n");
    s.instance("h_sleep", &hostile_instance("sleep", ""));
    s.instance("h_sleep_init", &hostile_instance("sleep-init", ""));
    // Ten-millisecond sleeps use next to no guest time: the guest-time
    // budget (smaller than the wall limit here) must not count the sleeps.
    s.instance(
        "h_sleep_loop",
        &hostile_instance("sleep-loop", "call_timeout_ms = 1000"),
    );
    let host = s.start();
    let started = std::time::Instant::now();

    let by = started + Duration::from_millis(WALL_MS) + SLACK;
    for id in ["h_sleep", "h_sleep_init", "h_sleep_loop"] {
        let p = wait_for(
            &format!("{id} to fail on the wall-clock limit"),
            by.saturating_duration_since(std::time::Instant::now()),
            || {
                let r = host.get(&format!("/api/providers/{id}"));
                let p = (r.status == 200).then(|| r.json())?;
                (p["state"] == "failed").then_some(p)
            },
        );
        let err = p["last_error"].as_str().unwrap_or_default();
        assert!(
            err.contains("wall-clock limit exceeded") && err.contains(&format!("{WALL_MS} ms")),
            "{id}: {err}"
        );
    }
    println!(
        "all three sleeping providers failed {:?} after the host started (wall limit {WALL_MS} ms)",
        started.elapsed()
    );

    // The others serve, and the API answers at once while sleeping calls
    // are retried.
    assert_eq!(host.provider_settled("good")["state"], "ready");
    for _ in 0..10 {
        let t = std::time::Instant::now();
        let ids = host.stream_ids();
        assert!(ids.contains(&"good-a".to_string()), "{ids:?}");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "the API took {:?}",
            t.elapsed()
        );
        assert_eq!(host.get("/healthz").status, 200);
    }
    let log = host.log_text();
    assert!(
        log.contains("h_sleep") && log.contains("wall-clock limit exceeded"),
        "{log}"
    );
}

#[test]
fn a_swap_to_a_version_that_sleeps_leaves_the_old_one_serving() {
    let s = Setup::new();
    s.install_module("versioned", &fixture("versioned-one"));
    // Each version reads its part of the config: `keys`, and `mode`.
    s.instance(
        "cam",
        &format!("module = \"versioned\"\n[limits]\ncall_wall_timeout_ms = {WALL_MS}\n[config]\nkeys = [\"a\"]\nmode = \"sleep\"\n"),
    );
    let host = s.start();
    assert_eq!(host.provider_settled("cam")["state"], "ready");
    let hash = host.provider_settled("cam")["module_hash"].clone();
    assert_eq!(host.stream("cam-a")["name"], "a one");

    // A valid component whose `list-streams` sleeps forever.
    s.install_module("versioned", &fixture("hostile"));
    let swapped = std::time::Instant::now();
    let p = wait_for(
        "the sleeping version to be refused",
        Duration::from_millis(WALL_MS) + SLACK,
        || {
            let p = host.provider_settled("cam");
            p["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("not swapped in"))
                .then_some(p)
        },
    );
    println!("refused {:?} after the swap", swapped.elapsed());
    let err = p["last_error"].as_str().unwrap();
    assert!(err.contains("wall-clock limit exceeded"), "{err}");
    assert_eq!(p["state"], "ready", "{p}");
    assert_eq!(p["module_hash"], hash, "the previous version keeps serving");
    assert_eq!(host.stream("cam-a")["name"], "a one");
    assert_eq!(host.get("/healthz").status, 200);

    // A good version still swaps in afterwards.
    s.install_module("versioned", &fixture("versioned-two"));
    wait_for("version two", Duration::from_secs(20), || {
        (host.stream("cam-a")["name"] == "a two").then_some(())
    });
}

#[test]
fn a_provider_flooding_its_log_and_stderr_leaves_the_host_alive_and_bounded() {
    let s = Setup::new();
    s.install_module("hostile", &fixture("hostile"));
    s.instance("good", "module = \"static-list\"\n[config]\nsource_template = \"rtsp://c/{key}\"\nstreams = [\"a\", \"b\"]\n");
    // 64 MiB each (the fixture's default); a giant line needs the memory to
    // build it in. Each giant line takes 64 MiB of guest memory (and the
    // host a copy of the one handed to `log`): the second is added once the
    // first is done, so that the bound measured is the host's, not the sum.
    s.instance("h_log_lines", &hostile_instance("log-lines", ""));
    s.instance("h_stderr_lines", &hostile_instance("stderr-lines", ""));
    s.instance(
        "h_log_giant",
        &hostile_instance("log-giant", "memory_mib = 256"),
    );
    let host = s.start();

    let mut peak_rss = 0;
    let ids = [
        "h_log_lines",
        "h_stderr_lines",
        "h_log_giant",
        "h_stderr_giant",
    ];
    for id in ids {
        if id == "h_stderr_giant" {
            s.instance(id, &hostile_instance("stderr-giant", "memory_mib = 256"));
        }
        let p = wait_for(&format!("{id} to settle"), Duration::from_secs(60), || {
            peak_rss = peak_rss.max(host_memory_kib(&host, "VmRSS"));
            let r = host.get(&format!("/api/providers/{id}"));
            let p = (r.status == 200).then(|| r.json())?;
            (p["state"] != "loading").then_some(p)
        });
        // Either it got through, or it failed with a cause (not a crash).
        let err = p["last_error"].as_str().unwrap_or_default();
        println!("{id}: {} {err}", p["state"]);
        match p["state"].as_str() {
            Some("ready") => assert_eq!(p["stream_count"], 1, "{id}: {p}"),
            Some("failed") => assert!(
                err.contains("memory limit exceeded") || err.contains("result too large"),
                "{id}: {err}"
            ),
            _ => panic!("{id}: {p}"),
        }
    }
    // Printing, however much, is not a failure.
    for id in ["h_log_lines", "h_stderr_lines"] {
        assert_eq!(host.provider_settled(id)["state"], "ready", "{id}");
    }
    assert_eq!(host.provider_settled("good")["state"], "ready");
    assert!(host.stream_ids().contains(&"good-a".to_string()));
    assert_eq!(host.get("/healthz").status, 200);

    peak_rss = peak_rss.max(host_memory_kib(&host, "VmRSS"));
    let hwm = host_memory_kib(&host, "VmHWM");
    println!("host memory: VmRSS sampled up to {peak_rss} KiB, VmHWM {hwm} KiB");
    assert!(peak_rss < 300 * 1024, "host VmRSS reached {peak_rss} KiB");
    assert!(hwm < 300 * 1024, "host VmHWM reached {hwm} KiB");

    // What reached the log is bounded: lines cut to 4 KiB, at most 1000
    // lines of `log` and 50 of stderr per call.
    let log = host.log_text();
    for l in log
        .lines()
        .filter(|l| l.contains("not logged") || l.contains("log limit reached"))
    {
        println!("{l}");
    }
    assert!(log.len() < 16 << 20, "the log holds {} bytes", log.len());
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 5 * 1024, "a log line of {longest} bytes");
    let logged = log
        .lines()
        .filter(|l| l.contains("h_log_lines") && l.contains("llll"))
        .count();
    assert!(
        (1..=1_000).contains(&logged),
        "{logged} lines of h_log_lines"
    );
    assert!(
        log.contains("provider log limit reached"),
        "no log-limit notice"
    );
    let printed = log
        .lines()
        .filter(|l| l.contains("h_stderr_lines") && l.contains("guest stderr"))
        .count();
    assert!(
        (1..=51).contains(&printed),
        "{printed} stderr lines of h_stderr_lines"
    );
    assert!(
        log.contains("lines not logged"),
        "no note of the stderr dropped"
    );
}

fn in_process_call(
    mode: &str,
    limits: dss_host::config::Limits,
    allow_hosts: &[String],
    init: bool,
) -> (Result<(), dss_host::plugin::CallError>, std::time::Duration) {
    use dss_host::config::Limits;
    use dss_host::plugin::module::Grant;
    use dss_host::plugin::{PluginEngine, ProviderModule};
    let engine = PluginEngine::new(None).expect("engine");
    let m = ProviderModule::load(&engine, &fixture("hostile"), &Limits::default()).expect("load");
    let mut grant = Grant::new("h", limits);
    grant.allow_hosts = allow_hosts.to_vec().into();
    let config = format!(
        r#"{{"mode":"{mode}","url":"http://{}/"}}"#,
        allow_hosts.first().map(String::as_str).unwrap_or("none")
    );
    // On a thread of its own, so that a call that never returns fails the
    // test instead of hanging it.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let handle = rt.handle().clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _in_runtime = handle.enter();
        let t = std::time::Instant::now();
        let r = if init {
            m.init(&grant, &config).map(|_| ())
        } else {
            m.list_streams(&grant, &config).map(|_| ())
        };
        let _ = tx.send((r, t.elapsed()));
    });
    let out = rx.recv_timeout(Duration::from_secs(30));
    rt.shutdown_background();
    out.unwrap_or_else(|_| panic!("{mode}: the call never returned: its thread is stuck"))
}

fn wall_limits(ms: u64) -> dss_host::config::Limits {
    dss_host::config::Limits {
        call_wall_timeout_ms: ms,
        call_timeout_ms: 1_000,
        ..Default::default()
    }
}

#[test]
fn a_call_blocked_in_a_wasi_wait_returns_its_thread_at_the_wall_deadline() {
    use dss_host::plugin::CallError;
    // The guest-time budget is smaller than the wall limit: time asleep is
    // not guest time, so the wall limit is what stops them.
    let limits = dss_host::config::Limits {
        call_timeout_ms: 200,
        ..wall_limits(500)
    };
    for (mode, init) in [
        ("sleep", false),
        ("sleep-init", true),
        ("sleep-loop", false),
    ] {
        let (r, took) = in_process_call(mode, limits.clone(), &[], init);
        assert_eq!(r, Err(CallError::WallTimeout(500)), "{mode}");
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_millis(2_000),
            "{mode}: returned after {took:?}"
        );
    }
}

#[test]
fn an_http_get_never_waits_past_the_wall_deadline() {
    use dss_host::plugin::CallError;
    // Accepts connections (the kernel does) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let limits = dss_host::config::Limits {
        http_timeout_ms: 20_000,
        ..wall_limits(800)
    };
    let (r, took) = in_process_call("http", limits, &[addr], false);
    assert_eq!(r, Err(CallError::WallTimeout(800)));
    assert!(
        took < Duration::from_millis(2_500),
        "returned after {took:?}"
    );
}

#[test]
fn a_flood_of_stderr_is_not_a_failure() {
    let (r, took) = in_process_call(
        "stderr-lines",
        dss_host::config::Limits::default(),
        &[],
        false,
    );
    assert_eq!(r, Ok(()), "after {took:?}");
}
