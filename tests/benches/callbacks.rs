//! `cargo bench -p dss-e2e --bench callbacks`: nginx-rtmp-style callbacks
//! (one POST per connection, `Connection: close`) against DSS and, in the
//! same run with the same client, against a plain nginx answering
//! `return 200` — the physical limit of this machine for that traffic.
//! Prints requests per second and latency of both and their ratios.

use dss_e2e::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Client threads: nginx-rtmp sends callbacks from one worker, but many
/// viewers arrive at once; 4 keeps both servers busy on two cores.
const CLIENTS: usize = 4;
/// Seconds measured per round (after a 1 s warm-up).
const SECONDS: u64 = 4;
/// Rounds per server, alternated; the best round of each is reported (on
/// a shared 2-core machine single rounds vary by +-10 %).
const ROUNDS: usize = 4;

struct Figures {
    rps: f64,
    p50: Duration,
    p99: Duration,
    failed: u64,
}

/// One callback on a fresh connection; true when answered 2xx.
fn callback(addr: &str, path: &str, body: &str, buf: &mut Vec<u8>) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_nodelay(true);
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    buf.clear();
    if s.read_to_end(buf).is_err() {
        return false;
    }
    buf.starts_with(b"HTTP/1.1 2") || buf.starts_with(b"HTTP/1.0 2")
}

/// Drives `addr` with on_play/on_play_done pairs (new client ids) under
/// `prefix` (`/hooks/SECRET`) for `SECONDS`.
fn drive(addr: &str, prefix: &str, stream: &str) -> Figures {
    let (rate, failed) = load(
        CLIENTS,
        Duration::from_secs(1),
        Duration::from_secs(SECONDS),
        |t| {
            let (addr, prefix, stream) = (addr.to_string(), prefix.to_string(), stream.to_string());
            let mut buf = Vec::with_capacity(512);
            let mut i = 0u64;
            move || {
                let client = 1_000_000 * (t as u64 + 1) + i / 2;
                let event = if i.is_multiple_of(2) {
                    "on_play"
                } else {
                    "on_play_done"
                };
                i += 1;
                let body = format!("app=dss&flashver=&swfurl=&tcurl=rtmp://127.0.0.1/dss&pageurl=&addr=127.0.0.1&clientid={client}&call=play&name={stream}&start=-2&duration=0&reset=0");
                callback(&addr, &format!("{prefix}/{event}"), &body, &mut buf)
            }
        },
    );
    Figures {
        rps: rate.rps,
        p50: rate.p50,
        p99: rate.p99,
        failed,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let (s, host) = live_bench_host();
    let secret = s.callback_secret();
    let dss_addr = host.base.trim_start_matches("http://").to_string();
    let nginx = PlainNginx::start();
    let nginx_addr = format!("127.0.0.1:{}", nginx.http);

    let mut best_dss: Option<Figures> = None;
    let mut best_nginx: Option<Figures> = None;
    for _ in 0..ROUNDS {
        let n = drive(&nginx_addr, "/hooks/x", "bench-live");
        let d = drive(&dss_addr, &format!("/hooks/{secret}"), "bench-live");
        assert_eq!(d.failed, 0, "DSS refused callbacks");
        if best_nginx.as_ref().is_none_or(|b| n.rps > b.rps) {
            best_nginx = Some(n);
        }
        if best_dss.as_ref().is_none_or(|b| d.rps > b.rps) {
            best_dss = Some(d);
        }
    }
    let (n, d) = (best_nginx.expect("a round"), best_dss.expect("a round"));
    println!(
        "callbacks, one per connection, {CLIENTS} clients, best of {ROUNDS} rounds of {SECONDS} s:"
    );
    println!(
        "  plain nginx `return 200`: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms",
        n.rps,
        ms(n.p50),
        ms(n.p99)
    );
    println!(
        "  DSS on_play/on_play_done: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms",
        d.rps,
        ms(d.p50),
        ms(d.p99)
    );
    println!(
        "  ratio: throughput {:.0} % of nginx (target >= 85 %), p99 {:.2}x nginx's (target <= 2x)",
        100.0 * d.rps / n.rps,
        d.p99.as_secs_f64() / n.p99.as_secs_f64().max(1e-9)
    );
    let v = host.stream("bench-live");
    assert_eq!(v["state"], "live", "the stream stayed live: {v}");
}
