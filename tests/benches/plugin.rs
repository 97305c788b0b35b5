//! Benchmark of the plugin runtime, printing figures (no assertions):
//!
//! 1. A fresh instance + a trivial call (`describe`) with the pooling
//!    allocator and a pre-instantiated `InstancePre` — against the same with
//!    wasmtime's on-demand allocator, in the same run.
//! 2. `list-streams` of 10,000 streams by the real `static-list` component
//!    — against the same provider code compiled natively, in the same run.
//! 3. Swap latency in a running host: a module renamed into place until the
//!    new version serves; cold (never compiled) and with the compile cache
//!    warm.
//!
//! Run: `cargo bench -p dss-e2e --bench plugin` (after the build steps of
//! `scripts/test.sh`).

use dss_e2e::*;
use dss_host::config::Limits;
use dss_host::plugin::module::Grant;
use dss_host::plugin::{PluginEngine, ProviderModule};
use dss_provider_sdk::Provider;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

const CALLS: usize = 20_000;
const LIST_RUNS: usize = 50;
const SWAPS: usize = 10;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn instance_and_call(pooling: bool) -> (Duration, Duration) {
    let engine = PluginEngine::with_allocator(None, pooling).expect("engine");
    let m =
        ProviderModule::load(&engine, &module("static-list"), &Limits::default()).expect("load");
    let grant = Grant::new("bench", Limits::default());
    for _ in 0..500 {
        m.describe(&grant).expect("describe");
    }
    let mut lat = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let s = Instant::now();
        m.describe(&grant).expect("describe");
        lat.push(s.elapsed());
    }
    lat.sort();
    (pct(&lat, 0.5), pct(&lat, 0.99))
}

fn listing_config(n: usize) -> String {
    let streams: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"key":"cam{i}","name":"Camera {i}","lat":-22.9,"lon":-43.2}}"#))
        .collect();
    format!(
        r#"{{"source_template":"rtsp://cams.example/{{key}}","streams":[{}]}}"#,
        streams.join(",")
    )
}

fn list_10k() -> (Duration, Duration) {
    let config = listing_config(10_000);
    let engine = PluginEngine::new(None).expect("engine");
    let m =
        ProviderModule::load(&engine, &module("static-list"), &Limits::default()).expect("load");
    let grant = Grant::new("bench", Limits::default());
    let mut wasm = Vec::new();
    for _ in 0..LIST_RUNS {
        let s = Instant::now();
        let (streams, _) = m.list_streams(&grant, &config).expect("list");
        wasm.push(s.elapsed());
        assert_eq!(streams.len(), 10_000);
    }
    let mut native = Vec::new();
    for _ in 0..LIST_RUNS {
        let s = Instant::now();
        let parsed = dss_provider_sdk::parse_config(&config).expect("config");
        let streams = dss_provider_static_list::StaticList::list_streams(&parsed).expect("list");
        native.push(s.elapsed());
        assert_eq!(streams.len(), 10_000);
    }
    wasm.sort();
    native.sort();
    (pct(&wasm, 0.5), pct(&native, 0.5))
}

/// `bytes` with a custom section appended: the same component, a new hash.
fn variant(bytes: &[u8], tag: &str) -> Vec<u8> {
    let name = b"dss-bench";
    let payload = tag.as_bytes();
    let size = 1 + name.len() + payload.len();
    assert!(size < 128 && name.len() < 128);
    let mut out = bytes.to_vec();
    out.extend([0u8, size as u8, name.len() as u8]);
    out.extend(name);
    out.extend(payload);
    out
}

fn swaps() -> (Vec<Duration>, Vec<Duration>) {
    let s = Setup::new();
    let base = std::fs::read(module("static-list")).expect("module");
    s.write_module("cams", &variant(&base, "start"));
    s.instance(
        "cam",
        "module = \"cams\"\n[config]\nsource_template = \"rtsp://x/{key}\"\nstreams = [\"a\"]\n",
    );
    let host = s.start();
    host.provider_settled("cam");
    let swap_to = |bytes: &[u8]| {
        let hash = hex::encode(Sha256::digest(bytes));
        let tmp = s.modules().join(".cams.tmp");
        std::fs::write(&tmp, bytes).expect("write");
        let start = Instant::now();
        std::fs::rename(&tmp, s.modules().join("cams.wasm")).expect("rename");
        // Poll closely: the figure is the latency, not the poll interval.
        while host.get("/api/providers/cam").json()["module_hash"] != hash.as_str() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "swap not visible"
            );
            std::thread::sleep(Duration::from_micros(500));
        }
        start.elapsed()
    };
    let mut cold = Vec::new();
    for i in 0..SWAPS {
        cold.push(swap_to(&variant(&base, &format!("cold{i}"))));
    }
    // Two versions, both compiled now: every further swap hits the cache.
    let (a, b) = (variant(&base, "cold0"), variant(&base, "cold1"));
    let mut cached = Vec::new();
    for i in 0..SWAPS {
        cached.push(swap_to(if i % 2 == 0 { &a } else { &b }));
    }
    cold.sort();
    cached.sort();
    (cold, cached)
}

fn main() {
    let (p50, p99) = instance_and_call(true);
    let (b50, b99) = instance_and_call(false);
    println!(
        "instance + describe, pooling allocator: p50 {:.1} µs, p99 {:.1} µs; on-demand allocator: p50 {:.1} µs, p99 {:.1} µs; ratio pooling/on-demand p50 {:.2}",
        us(p50), us(p99), us(b50), us(b99), p50.as_secs_f64() / b50.as_secs_f64()
    );
    let (wasm, native) = list_10k();
    println!(
        "list-streams of 10,000 streams (static-list, median of {LIST_RUNS}): component {:.2} ms, same code native {:.2} ms, ratio {:.2}",
        ms(wasm), ms(native), wasm.as_secs_f64() / native.as_secs_f64()
    );
    let (cold, cached) = swaps();
    println!(
        "swap (renamed into place → new version serving), {SWAPS} each: cold p50 {:.1} ms max {:.1} ms; cache warm p50 {:.1} ms max {:.1} ms",
        ms(pct(&cold, 0.5)), ms(cold[cold.len() - 1]), ms(pct(&cached, 0.5)), ms(cached[cached.len() - 1])
    );
}
