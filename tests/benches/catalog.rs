//! `cargo bench -p dss-e2e --bench catalog`: `/api/streams` with 10,000
//! and with 100,000 catalogued streams (a static-list instance spread over
//! a grid the size of a country), on the host's API port:
//!
//! - the full list: bytes raw and gzip, and the time to get each;
//! - a city-sized box (`bbox`, about 500 streams at 100,000) with the
//!   fields a map draws: latency and requests per second;
//! - the overview of the whole grid (`/api/clusters`, 32 x 32 cells);
//! - one stream (`/api/streams/{id}`): requests per second;
//! - revalidation (`If-None-Match` with the current tag, a 304);
//! - the host's resident memory after all that.
//!
//! Baselines in the same run, with the same keep-alive client: plain
//! nginx serving the box's JSON as a static file, and `return 200` (an
//! empty answer, for the 304s and the single stream).
//!
//! Targets on the 2-core machine: the 500-stream box at 100,000 ≥ 5,000
//! req/s; 304s ≥ 30,000 req/s; the compressed full list ≤ 15 % of raw.
//! Prints figures; asserts only that answers are right.
//!
//! Run: `cargo bench -p dss-e2e --bench catalog` (after
//! `scripts/build-providers.sh` and `cargo build --release -p dss-host`).

use dss_e2e::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Client threads, each with one keep-alive connection: enough to keep
/// the server busy on two cores (the clients share them).
const CLIENTS: usize = 2;
/// Seconds measured per figure (after a 0.5 s warm-up).
const SECONDS: f64 = 3.0;
/// Listing 100,000 streams takes the provider some seconds.
const T: Duration = Duration::from_secs(300);

/// The grid: longitudes -74..-34, latitudes -33..5 (Brazil's box).
const WEST: f64 = -74.0;
const SOUTH: f64 = -33.0;
const WIDTH: f64 = 40.0;
const HEIGHT: f64 = 38.0;

/// A static-list instance of `n` streams on a square grid over the box.
fn grid(n: usize) -> String {
    let side = (n as f64).sqrt().ceil() as usize;
    let mut t = String::from(
        "module = \"static-list\"\n[limits]\nmemory_mib = 512\n[config]\n\
         input_options = [\"-re\", \"-f\", \"lavfi\"]\n\
         output_options = [\"-c:v\", \"libx264\"]\nstreams = [\n",
    );
    for i in 0..n {
        t.push_str(&format!(
            "  {{ key = \"c{i}\", name = \"Camera {i}\", source = \"testsrc2=size=160x120:rate=10\", lat = {:.5}, lon = {:.5} }},\n",
            SOUTH + (i / side) as f64 * HEIGHT / side as f64,
            WEST + (i % side) as f64 * WIDTH / side as f64,
        ));
    }
    t.push_str("]\n");
    t
}

/// One keep-alive connection speaking just enough HTTP/1.1.
struct Conn {
    r: BufReader<TcpStream>,
    host: String,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let s = TcpStream::connect(addr).expect("connect");
        let _ = s.set_nodelay(true);
        Conn {
            // Large reads: the client shares the two cores with the server.
            r: BufReader::with_capacity(1 << 18, s),
            host: addr.to_string(),
        }
    }

    /// GET `path` with `headers`: the status, the headers (lower case)
    /// and the body.
    fn get(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        self.r.get_mut().write_all(req.as_bytes()).expect("send");
        let mut line = String::new();
        self.r.read_line(&mut line).expect("status line");
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status");
        let mut head = Vec::new();
        loop {
            line.clear();
            self.r.read_line(&mut line).expect("header");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                head.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let find = |k: &str| head.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
            body.reserve_exact(len);
            (&mut self.r)
                .take(len as u64)
                .read_to_end(&mut body)
                .expect("body");
        } else if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                line.clear();
                self.r.read_line(&mut line).expect("chunk size");
                let size = usize::from_str_radix(line.trim(), 16).expect("a chunk size");
                let mut chunk = vec![0; size + 2];
                self.r.read_exact(&mut chunk).expect("chunk");
                body.extend_from_slice(&chunk[..size]);
                if size == 0 {
                    break;
                }
            }
        }
        // nginx ends a keep-alive connection after 1,000 requests.
        if find("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
            *self = Conn::open(&self.host.clone());
        }
        (status, head, body)
    }
}

/// Drives `path` on `addr` with [`CLIENTS`] keep-alive clients; every
/// answer must have status `want`.
fn rate(addr: &str, path: &str, headers: &[(&str, &str)], want: u16) -> Rate {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (rate, _) = load(
        CLIENTS,
        Duration::from_millis(500),
        Duration::from_secs_f64(SECONDS),
        |_| {
            let (path, headers) = (path.to_string(), headers.clone());
            let mut c = Conn::open(addr);
            move || {
                let h: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let (status, _, _) = c.get(&path, &h);
                assert_eq!(status, want, "{path}");
                true
            }
        },
    );
    rate
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn print_rate(what: &str, r: &Rate) {
    println!(
        "  {what}: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms",
        r.rps,
        ms(r.p50),
        ms(r.p99)
    );
}

/// The median time of 5 GETs of `path`, and the last answer's body.
fn timed(c: &mut Conn, path: &str, headers: &[(&str, &str)]) -> (Duration, Vec<u8>) {
    let mut times = Vec::new();
    let mut last = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let (status, _, body) = c.get(path, headers);
        times.push(t.elapsed());
        assert_eq!(status, 200, "{path}");
        last = body;
    }
    times.sort();
    (times[2], last)
}

fn resident_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn bench(n: usize, nginx: &PlainNginx) {
    let mut s = Setup::new();
    s.log_filter = "info".into();
    let host = s.start();
    s.instance("cams", &grid(n));
    wait_for("the listing", T, || {
        let p = host.get("/api/providers/cams");
        (p.status == 200 && p.json()["stream_count"] == n).then_some(())
    });
    let addr = host.base.trim_start_matches("http://").to_string();
    let mut c = Conn::open(&addr);
    println!(
        "{n} catalogued streams (host resident {:.1} MiB):",
        resident_mib(host.child.id())
    );

    // The full list.
    let (raw_t, raw) = timed(&mut c, "/api/streams", &[]);
    let (gz_t, gz) = timed(&mut c, "/api/streams", &[("Accept-Encoding", "gzip")]);
    let list: serde_json::Value = serde_json::from_slice(&raw).expect("JSON");
    assert_eq!(list.as_array().map(Vec::len), Some(n));
    println!(
        "  full list: {:.2} MB raw in {:.1} ms; gzip {:.2} MB ({:.1} % of raw) in {:.1} ms",
        raw.len() as f64 / 1e6,
        ms(raw_t),
        gz.len() as f64 / 1e6,
        100.0 * gz.len() as f64 / raw.len() as f64,
        ms(gz_t)
    );

    // A box of about 500 streams at 100,000 (22 x 22 grid cells there),
    // in the middle of the grid; the same box at 10,000.
    let (w, h) = (22.0 * WIDTH / 317.0, 22.0 * HEIGHT / 317.0);
    let (x, y) = (WEST + WIDTH / 2.0, SOUTH + HEIGHT / 2.0);
    let bbox = format!(
        "/api/streams?bbox={:.4},{:.4},{:.4},{:.4}&fields=name,geo,state,viewers",
        x,
        y,
        x + w - 1e-4,
        y + h - 1e-4
    );
    let (_, body) = timed(&mut c, &bbox, &[]);
    let inside = serde_json::from_slice::<serde_json::Value>(&body)
        .expect("JSON")
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    println!("  box of {inside} streams, {} bytes:", body.len());
    let file = nginx.serve_file(&format!("box{n}.json"), &body);
    let nginx_addr = format!("127.0.0.1:{}", nginx.http);
    let dss = rate(&addr, &bbox, &[], 200);
    let base = rate(&nginx_addr, &file, &[], 200);
    print_rate("DSS", &dss);
    print_rate("plain nginx, the same JSON as a file", &base);
    println!("    ratio {:.2} of nginx", dss.rps / base.rps);

    // The overview of the whole grid (a map zoomed out over it).
    let whole = format!(
        "/api/clusters?bbox={WEST},{SOUTH},{},{}",
        WEST + WIDTH,
        SOUTH + HEIGHT
    );
    let (_, body) = timed(&mut c, &whole, &[]);
    println!("  clusters of the whole grid, {} bytes:", body.len());
    print_rate("DSS", &rate(&addr, &whole, &[], 200));

    // One stream.
    let one = rate(&addr, "/api/streams/cams-c1234", &[], 200);
    let empty = rate(&nginx_addr, "/", &[], 200);
    print_rate("one stream", &one);
    print_rate("plain nginx `return 200`", &empty);

    // Revalidation.
    let (_, head, _) = c.get("/api/streams?limit=1", &[]);
    let tag = head
        .iter()
        .find(|(k, _)| k == "etag")
        .map(|(_, v)| v.clone())
        .expect("an ETag");
    let not_modified = rate(&addr, "/api/streams", &[("If-None-Match", &tag)], 304);
    print_rate("If-None-Match (304)", &not_modified);
    println!(
        "    ratio {:.2} of nginx `return 200`; host resident {:.1} MiB after",
        not_modified.rps / empty.rps,
        resident_mib(host.child.id())
    );
}

fn main() {
    let nginx = PlainNginx::start();
    // CATALOG_BENCH_STREAMS=10000 runs one size.
    let sizes: Vec<usize> = match std::env::var("CATALOG_BENCH_STREAMS") {
        Ok(n) => vec![n.parse().expect("a number of streams")],
        Err(_) => vec![10_000, 100_000],
    };
    for n in sizes {
        bench(n, &nginx);
    }
}
