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
