//! Memory of the host, printing figures (no assertions): resident memory
//! (total, and the anonymous part that is the host's own: heap, stacks,
//! provider memory; the rest is mapped files the kernel can drop: the
//! binary and the compiled providers) of the demo host
//!
//! 1. `demo`: after a start with a cold compile cache and after one with a
//!    warm cache, with the time from the spawn to `/readyz` of each; the
//!    baseline is the same host with no provider instance, in the same run;
//! 2. `refresh`: over 10 minutes of refreshes (the JavaScript provider
//!    lists every 60 s; `DSS_BENCH_REFRESH_MINUTES` shortens it);
//! 3. `streams`: with 10,000 and with 100,000 catalogued streams (a
//!    static-list instance added to the running host), per stream;
//! 4. `live`: with 50 live streams (small test patterns), the FFmpeg
//!    processes apart.
//!
//! Targets on the 2-core machine: anonymous ≤ 80 MB idle (cold or warm,
//! flat over the 10 minutes), ≤ 2 KB per catalogued stream, `/readyz`
//! ≤ 1 s after a warm start.
//!
//! Run: `cargo bench -p dss-e2e --bench memory [-- demo refresh streams live]`
//! (after `scripts/build-providers.sh` and `cargo build --release -p dss-host`).

use dss_e2e::*;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(180);

/// After a change, the time the host is given to settle (its trim of
/// freed memory runs 2 s after a large piece of work).
const SETTLE: Duration = Duration::from_secs(6);

const LIVE_STREAMS: usize = 50;

/// Resident memory of process `pid`: (total, anonymous), in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (kib("VmRSS:"), kib("RssAnon:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The demo's four instances, pointed at this setup's port.
fn demo_setup() -> Setup {
    let mut s = Setup::new();
    s.log_filter = "info".into();
    s.install_module("geojson-feed", &module("geojson-feed"));
    s.with_nginx(30);
    let dir = repo_root().join("examples/demo/providers.d");
    for name in ["city", "demo", "phones", "traffic"] {
        let text = std::fs::read_to_string(dir.join(format!("{name}.toml"))).expect("demo");
        s.instance(
            name,
            &text.replace("127.0.0.1:8000", &format!("127.0.0.1:{}", s.port)),
        );
    }
    s
}

/// Starts the host; returns it with the time from the spawn to `/readyz`.
fn start_timed(s: &Setup) -> (Host, Duration) {
    let t = Instant::now();
    let host = s.start_unready();
    wait_for("ready", T, || {
        (host.get("/readyz").status == 200).then_some(())
    });
    (host, t.elapsed())
}

/// Waits until `n` modules have loaded (compiled or from the cache).
fn modules_loaded(host: &Host, n: usize) {
    wait_for("modules loaded", T, || {
        (host.log_text().matches("module loaded").count() >= n).then_some(())
    });
}

fn stop(host: &mut Host) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &host.child.id().to_string()])
        .status();
    let _ = host.child.wait();
}

fn print_memory(what: &str, pid: u32) -> (u64, u64) {
    let (rss, anon) = memory(pid);
    println!(
        "{what}: resident {:.1} MiB, anonymous {:.1} MiB",
        mib(rss),
        mib(anon)
    );
    (rss, anon)
}

fn demo() {
    // Baseline: the same host with no instance.
    let mut empty = Setup::empty();
    empty.log_filter = "info".into();
    empty.with_nginx(30);
    let (mut host, ready) = start_timed(&empty);
    std::thread::sleep(SETTLE);
    let (_, base) = print_memory(
        &format!("baseline: host without providers (ready in {ready:.2?})"),
        host.child.id(),
    );
    if let Some(pid) = empty.nginx_pid() {
        print_memory("  its nginx master (for scale)", pid);
    }
    stop(&mut host);

    let s = demo_setup();
    let (mut host, ready) = start_timed(&s);
    modules_loaded(&host, 4);
    std::thread::sleep(SETTLE);
    let (_, cold) = print_memory(
        &format!("demo, cold cache (compiled 4 modules; /readyz {ready:.2?} after the spawn)"),
        host.child.id(),
    );
    stop(&mut host);
    let (mut host, ready) = start_timed(&s);
    modules_loaded(&host, 4);
    std::thread::sleep(SETTLE);
    let (_, warm) = print_memory(
        &format!("demo, warm cache (/readyz {ready:.2?} after the spawn)"),
        host.child.id(),
    );
    println!(
        "  anonymous over the baseline's: cold {:.2}x, warm {:.2}x (target: <= 80 MiB anonymous)",
        cold as f64 / base.max(1) as f64,
        warm as f64 / base.max(1) as f64
    );
    stop(&mut host);
}

fn refresh() {
    let minutes: u64 = std::env::var("DSS_BENCH_REFRESH_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(10);
    let s = demo_setup();
    let (mut host, _) = start_timed(&s);
    modules_loaded(&host, 4);
    std::thread::sleep(SETTLE);
    let pid = host.child.id();
    let mut samples = vec![memory(pid).1];
    for _ in 0..minutes {
        std::thread::sleep(Duration::from_secs(60));
        samples.push(memory(pid).1);
    }
    let refreshes = host
        .log_text()
        .matches("listing refreshed provider=city")
        .count();
    let line: Vec<String> = samples.iter().map(|a| format!("{:.1}", mib(*a))).collect();
    let (lo, hi) = (
        samples.iter().min().copied().unwrap_or(0),
        samples.iter().max().copied().unwrap_or(0),
    );
    println!(
        "demo over {minutes} min ({refreshes} JavaScript listings): anonymous MiB each minute {}; spread {:.1} MiB",
        line.join(" "),
        mib(hi - lo)
    );
    stop(&mut host);
}

/// A static-list instance of `n` test-pattern streams.
fn big_instance(n: usize) -> String {
    let mut t = String::from(
        "module = \"static-list\"\n[limits]\nmemory_mib = 256\n[config]\n\
         input_options = [\"-re\", \"-f\", \"lavfi\"]\n\
         output_options = [\"-c:v\", \"libx264\", \"-preset\", \"veryfast\"]\nstreams = [\n",
    );
    for i in 0..n {
        t.push_str(&format!(
            "  {{ key = \"cam{i}\", name = \"Camera {i}\", source = \"smptebars=size=320x240:rate=10\", lat = {:.5}, lon = {:.5} }},\n",
            -22.9 + (i % 300) as f64 * 0.001,
            -43.2 + (i / 300) as f64 * 0.001
        ));
    }
    t.push_str("]\n");
    t
}

fn streams() {
    let s = demo_setup();
    let (mut host, _) = start_timed(&s);
    modules_loaded(&host, 4);
    std::thread::sleep(SETTLE);
    let pid = host.child.id();
    let (_, base) = print_memory("demo before", pid);
    for n in [10_000usize, 100_000] {
        let t = Instant::now();
        s.instance("big", &big_instance(n));
        wait_for("the big listing", T, || {
            let p = host.get("/api/providers/big").json();
            (p["stream_count"] == n && p["listing_source"] == "provider").then_some(())
        });
        let listed = t.elapsed();
        std::thread::sleep(SETTLE);
        let (_, anon) = print_memory(
            &format!("with {n} catalogued streams (listed in {listed:.2?})"),
            pid,
        );
        println!(
            "  {:.0} bytes per catalogued stream (target <= 2048)",
            (anon.saturating_sub(base) * 1024) as f64 / n as f64
        );
        std::fs::remove_file(s.dir.path().join("providers.d/big.toml")).expect("remove");
        wait_for("the big instance gone", T, || {
            (host.get("/api/providers/big").status == 404).then_some(())
        });
        std::thread::sleep(SETTLE);
        print_memory("  after removing it", pid);
    }
    stop(&mut host);
}

fn live() {
    let mut s = demo_setup();
    s.set("ffmpeg", "max_running = 0");
    let keys: Vec<String> = (0..LIVE_STREAMS).map(|i| format!("p{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    s.instance("many", &test_pattern_instance(&keys));
    let (mut host, _) = start_timed(&s);
    modules_loaded(&host, 4);
    let pid = host.child.id();
    let (_, before) = print_memory("demo with 50 idle test patterns", pid);
    for k in &keys {
        let r = host.post(&format!("/api/streams/many-{k}/watch?timeout=600"));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    for k in &keys {
        host.wait_stream(&format!("many-{k}"), "live", T, |v| v["state"] == "live");
    }
    std::thread::sleep(SETTLE);
    let (_, anon) = print_memory(&format!("with {LIVE_STREAMS} live streams"), pid);
    let ffmpeg: u64 = keys
        .iter()
        .flat_map(|k| publishers_of(&format!("many-{k}")))
        .map(|p| memory(p).0)
        .sum();
    println!(
        "  {:.0} KiB anonymous per live stream in the host; its {LIVE_STREAMS} FFmpeg: {:.1} MiB resident",
        anon.saturating_sub(before) as f64 / LIVE_STREAMS as f64,
        mib(ffmpeg)
    );
    stop(&mut host);
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    if want("demo") {
        demo();
    }
    if want("streams") {
        streams();
    }
    if want("live") {
        live();
    }
    if want("refresh") {
        refresh();
    }
}
