//! `cargo bench -p dss-e2e --bench events`: the events stream's fan-out.
//!
//! 200 clients read `GET /api/events` (Server-Sent Events) from the host
//! while one driver makes 1,000 viewer changes a second for 10 s (an
//! nginx-rtmp `on_play` each, so every change is one `stream` event).
//! Prints events delivered of those due, resyncs (clients that fell
//! behind the shared backlog), delivery latency from the change's
//! callback being sent to each client reading the event, and the host's
//! CPU meanwhile.

use dss_e2e::*;
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: usize = 200;
const CHANGES_PER_SECOND: u64 = 1_000;
const SECONDS: u64 = 10;
const STREAM: &str = "bench-live";

/// What one client saw: (viewers, when) per `stream` event, resyncs.
struct Seen {
    events: Vec<(u64, Instant)>,
    resyncs: usize,
}

fn reader(base: &str, ready: Arc<AtomicUsize>, stop: Arc<AtomicBool>) -> Seen {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    write!(s, "GET /api/events HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("request");
    let mut r = std::io::BufReader::new(s);
    let mut seen = Seen {
        events: Vec::with_capacity((CHANGES_PER_SECOND * SECONDS) as usize + 100),
        resyncs: 0,
    };
    let (mut name, mut line, mut snapshot) = (String::new(), String::new(), false);
    while !stop.load(Ordering::Relaxed) {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => continue,
        }
        let now = Instant::now();
        if let Some(n) = line.strip_prefix("event:") {
            name = n.trim().to_string();
            if name == "snapshot" && !snapshot {
                snapshot = true;
                ready.fetch_add(1, Ordering::Relaxed);
            }
            if name == "resync" {
                seen.resyncs += 1;
            }
        } else if name == "stream" && line.starts_with("data:") && line.contains(STREAM) {
            let v = line
                .split("\"viewers\":")
                .nth(1)
                .map(|t| {
                    t.chars()
                        .take_while(char::is_ascii_digit)
                        .collect::<String>()
                })
                .and_then(|d| d.parse().ok());
            if let Some(v) = v {
                seen.events.push((v, now));
            }
        }
    }
    seen
}

/// One `on_play` on a fresh connection (nginx-rtmp's style).
fn on_play(addr: &str, secret: &str, client: u64) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let body = format!("app=dss&addr=127.0.0.1&clientid={client}&call=play&name={STREAM}");
    let req = format!(
        "POST /hooks/{secret}/on_play HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut buf = Vec::new();
    s.write_all(req.as_bytes()).is_ok()
        && s.read_to_end(&mut buf).is_ok()
        && buf.starts_with(b"HTTP/1.1 200")
}

/// CPU time (user + system) of process `pid`, in `/proc` ticks of 10 ms.
fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let (_, rest) = s.rsplit_once(')')?;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

fn main() {
    let (s, host) = live_bench_host();
    let (ready, stop) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let readers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (base, ready, stop) = (host.base.clone(), ready.clone(), stop.clone());
            std::thread::spawn(move || reader(&base, ready, stop))
        })
        .collect();
    wait_for("every client's snapshot", Duration::from_secs(30), || {
        (ready.load(Ordering::Relaxed) == CLIENTS).then_some(())
    });
    // The lease is one viewer: the k-th play makes k + 1.
    let base_viewers = host.stream(STREAM)["viewers"]["http"].as_u64().unwrap_or(0)
        + host.stream(STREAM)["viewers"]["rtmp"].as_u64().unwrap_or(0);
    let secret = s.callback_secret();
    let addr = host.base.trim_start_matches("http://").to_string();
    let sent: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let pid = host.child.id();
    let cpu0 = cpu_ticks(pid);
    let t0 = Instant::now();
    let total = CHANGES_PER_SECOND * SECONDS;
    let mut failed = 0;
    for k in 0..total {
        let due = t0 + Duration::from_micros(k * 1_000_000 / CHANGES_PER_SECOND);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        sent.lock().expect("sent").push(Instant::now());
        if !on_play(&addr, &secret, 10_000_000 + k) {
            failed += 1;
        }
    }
    let wall = t0.elapsed();
    let cpu = cpu_ticks(pid) - cpu0;
    // Let the last events arrive.
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let sent = sent.lock().expect("sent").clone();
    let mut latencies = Vec::with_capacity(CLIENTS * total as usize);
    let (mut delivered, mut resyncs) = (0usize, 0usize);
    for r in readers {
        let seen = r.join().expect("reader");
        resyncs += seen.resyncs;
        for (v, at) in seen.events {
            let Some(k) = v.checked_sub(base_viewers + 1) else {
                continue;
            };
            if let Some(t) = sent.get(k as usize) {
                delivered += 1;
                latencies.push(at.saturating_duration_since(*t));
            }
        }
    }
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let due = CLIENTS * total as usize;
    println!(
        "events fan-out: {CLIENTS} SSE clients, {total} viewer changes in {:.1} s ({:.0}/s, {failed} callbacks failed)",
        wall.as_secs_f64(),
        total as f64 / wall.as_secs_f64()
    );
    println!("| delivered | resyncs | p50 | p99 | max | host CPU |");
    println!("| --- | --- | --- | --- | --- | --- |");
    println!(
        "| {delivered} of {due} ({:.2} %) | {resyncs} | {:.2} ms | {:.2} ms | {:.1} ms | {:.0} % of a core |",
        100.0 * delivered as f64 / due as f64,
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        cpu as f64 / wall.as_secs_f64(),
    );
}
