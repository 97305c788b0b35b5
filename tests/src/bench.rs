//! Hosts for the benchmarks.

use crate::host::Host;
use crate::media::test_pattern_instance;
use crate::setup::Setup;

/// The benches' host: nginx, the operator's log level (no per-callback
/// debug lines), and one test-pattern stream `bench-live` kept live by a
/// 600 s lease (so callbacks on it only change viewers).
pub fn live_bench_host() -> (Setup, Host) {
    let mut s = Setup::new();
    s.log_filter = "info".into();
    s.with_nginx(30);
    s.instance("bench", &test_pattern_instance(&["live"]));
    let host = s.start();
    host.provider_settled("bench");
    host.keep_live("bench-live");
    (s, host)
}

/// Requests per second and latency of a load run.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Requests a second over the measured time.
    pub rps: f64,
    /// Median latency.
    pub p50: std::time::Duration,
    /// 99th percentile latency.
    pub p99: std::time::Duration,
}

/// Runs `clients` threads, each calling the request `make(i)` returns in
/// a loop: `warmup` unmeasured, then `measured`. Returns the rate and
/// latency of the measured requests (those that returned true; the others
/// are counted in the second value).
pub fn load<F>(
    clients: usize,
    warmup: std::time::Duration,
    measured: std::time::Duration,
    make: impl Fn(usize) -> F,
) -> (Rate, u64)
where
    F: FnMut() -> bool + Send + 'static,
{
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Instant;
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let mut request = make(i);
            let (stop, measuring, failed) = (stop.clone(), measuring.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(200_000);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let ok = request();
                    if measuring.load(Ordering::Relaxed) {
                        lat.push(t.elapsed());
                        if !ok {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                lat
            })
        })
        .collect();
    std::thread::sleep(warmup);
    measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    std::thread::sleep(measured);
    measuring.store(false, Ordering::Relaxed);
    let wall = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut all: Vec<std::time::Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("a client thread"))
        .collect();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let rate = Rate {
        rps: all.len() as f64 / wall.as_secs_f64(),
        p50: pct(0.5),
        p99: pct(0.99),
    };
    (rate, failed.load(Ordering::Relaxed))
}
