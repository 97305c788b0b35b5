//! The fault suite's scenarios, shared by the tests (which assert on their
//! figures) and `cargo bench -p dss-e2e --bench faults` (which prints
//! them): FFmpeg, nginx and the host killed over and over, a storm of
//! start/stop commands, malformed callbacks.

use crate::timeout::T30 as T;
use crate::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A host on real nginx with one test-pattern stream `cam-a`, quick
/// lifecycle timings and the given extra `[ffmpeg]` lines.
pub fn host_with(grace: u64, ffmpeg: &[&str]) -> (Setup, Host) {
    let mut s = Setup::new();
    s.with_nginx(grace);
    s.set("ffmpeg", "stat_interval_seconds = 1");
    for l in ffmpeg {
        s.set("ffmpeg", l);
    }
    s.instance("cam", &test_pattern_instance(&["a", "b"]));
    let host = s.start();
    assert_eq!(host.provider_settled("cam")["state"], "ready");
    (s, host)
}

/// What a kill loop measured.
#[derive(Debug, Clone, Default)]
pub struct KillFigures {
    /// Kills done.
    pub kills: u32,
    /// Restarts the host counted (FFmpeg loop) or recoveries seen.
    pub recovered: u32,
    /// FFmpeg processes of the stream left over at the end besides the one
    /// running (should be 0).
    pub orphans: usize,
    /// Mean time from a kill to the stream serving again (FFmpeg: a new
    /// one running; nginx: a new viewer's frames; host: live again with
    /// its viewer counted), in ms.
    pub mean_recovery_ms: u64,
    /// Longest such time, in ms.
    pub max_recovery_ms: u64,
}

fn recovery(times: &[Duration]) -> (u64, u64) {
    let n = times.len().max(1) as u128;
    let mean = times.iter().map(Duration::as_millis).sum::<u128>() / n;
    let max = times.iter().map(Duration::as_millis).max().unwrap_or(0);
    (mean as u64, max as u64)
}

/// Sends SIGKILL to process `pid` (or its group when `group`).
pub fn kill9(pid: u32, group: bool) {
    let target = if group {
        format!("-{pid}")
    } else {
        pid.to_string()
    };
    let _ = std::process::Command::new("kill")
        .args(["-9", "--", &target])
        .status();
}

/// FFmpeg of a watched stream SIGKILLed `n` times, each time as soon as
/// the new one runs: every death is a restart with backoff, none leaves an
/// orphan, and the stream plays at the end.
pub fn kill_ffmpeg(n: u32) -> KillFigures {
    // Backoff capped at its 100 ms start, spawns spaced by 100 ms: the
    // loop measures restarts, not waiting.
    let (s, host) = host_with(
        30,
        &[
            "backoff_initial_ms = 100",
            "backoff_max_seconds = 0",
            "min_spawn_interval_ms = 100",
        ],
    );
    assert_eq!(
        host.post("/api/streams/cam-a/watch?timeout=600").status,
        200
    );
    let mut pid = host.wait_stream("cam-a", "running", T, |v| v["pid"].is_u64())["pid"]
        .as_u64()
        .unwrap_or(0) as u32;
    let mut killed = Vec::new();
    let mut times = Vec::new();
    for _ in 0..n {
        kill9(pid, true);
        killed.push(pid);
        let t = Instant::now();
        let v = host.wait_stream("cam-a", "a new ffmpeg", T, |v| {
            v["pid"].as_u64().is_some_and(|p| p as u32 != pid)
        });
        times.push(t.elapsed());
        pid = v["pid"].as_u64().unwrap_or(0) as u32;
    }
    let v = host.wait_stream("cam-a", "live", T, |v| v["state"] == "live");
    let viewer = Viewer::start(&s.rtmp_url("cam-a"));
    viewer.wait_frames(0, 5, T);
    let running = publishers_of("cam-a");
    let alive_killed = killed.iter().filter(|p| process_alive(**p)).count();
    let (mean, max) = recovery(&times);
    KillFigures {
        kills: n,
        recovered: v["restarts"].as_u64().unwrap_or(0) as u32,
        orphans: running.len().saturating_sub(1) + alive_killed,
        mean_recovery_ms: mean,
        max_recovery_ms: max,
    }
}

/// nginx SIGKILLed `n` times under a viewer: each time the managed nginx
/// comes back, the dead viewer's count is dropped (from `/stat`), a new
/// viewer is counted and gets frames.
pub fn kill_nginx(n: u32) -> KillFigures {
    // Each nginx death is also an FFmpeg failure (its output broke), and
    // kills seconds apart never reach stable_seconds: with the default
    // backoff the delays would double with every kill, unless the host
    // starts the backoff over when nginx is back (it does).
    let (s, host) = host_with(2, &[]);
    let mut times = Vec::new();
    let mut recovered = 0;
    for _ in 0..n {
        let viewer = Viewer::start(&s.rtmp_url("cam-a"));
        viewer.wait_frames(0, 5, T);
        host.wait_stream("cam-a", "one viewer", T, |v| v["viewers"]["rtmp"] == 1);
        let old = s.nginx_pid().expect("nginx pid");
        kill9(old, true);
        let t = Instant::now();
        wait_for("a new nginx", T, || {
            s.nginx_pid().filter(|&p| p != old && process_alive(p))
        });
        drop(viewer);
        let viewer = Viewer::start(&s.rtmp_url("cam-a"));
        viewer.wait_frames(0, 5, T);
        times.push(t.elapsed());
        // The dead viewer's on_play_done never came: /stat drops it (once
        // it is older than the resync grace, 10 s). The new one is counted
        // since its frames came, so 1 means exactly the new one.
        host.wait_stream("cam-a", "the count rebuilt: the new viewer only", T, |v| {
            v["viewers"]["rtmp"] == 1
        });
        recovered += 1;
        viewer.leave();
    }
    let (mean, max) = recovery(&times);
    KillFigures {
        kills: n,
        recovered,
        orphans: publishers_of("cam-a").len().saturating_sub(1),
        mean_recovery_ms: mean,
        max_recovery_ms: max,
    }
}

/// The host SIGKILLed `n` times under a connected RTMP viewer: no FFmpeg
/// survives it, and each new host adopts nginx, rebuilds the count from
/// `/stat` and the same viewer gets frames again.
pub fn kill_host(n: u32) -> KillFigures {
    let (s, mut host) = host_with(30, &[]);
    let viewer = Viewer::start(&s.rtmp_url("cam-a"));
    viewer.wait_frames(0, 5, T);
    let mut orphans = 0;
    let mut recovered = 0;
    let mut times = Vec::new();
    for _ in 0..n {
        host.wait_stream("cam-a", "live", T, |v| v["state"] == "live");
        host.crash();
        let t = Instant::now();
        // The parent-death signal takes FFmpeg with it.
        let gone = Instant::now();
        while !publishers_of("cam-a").is_empty() && gone.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        orphans += publishers_of("cam-a").len();
        let before = viewer.frames();
        host = s.start();
        host.wait_stream("cam-a", "live again with its viewer", T, |v| {
            v["state"] == "live" && v["viewers"]["rtmp"] == 1
        });
        times.push(t.elapsed());
        viewer.wait_frames(before, 5, T);
        recovered += 1;
    }
    let (mean, max) = recovery(&times);
    KillFigures {
        kills: n,
        recovered,
        orphans: orphans + publishers_of("cam-a").len().saturating_sub(1),
        mean_recovery_ms: mean,
        max_recovery_ms: max,
    }
}

/// What the command storm measured.
#[derive(Debug, Clone, Default)]
pub struct StormFigures {
    /// Requests answered.
    pub requests: u64,
    /// Requests answered with something else than 200.
    pub errors: u64,
    /// Seconds the storm took.
    pub seconds: f64,
    /// FFmpeg spawned during it.
    pub spawns: u64,
    /// The host's resident memory before and after, in KiB.
    pub rss_before_kib: u64,
    /// After.
    pub rss_after_kib: u64,
    /// Time from SIGTERM (sent while a second storm runs) to exit, in ms.
    pub exit_ms: u64,
    /// FFmpeg of the stream alive after the exit.
    pub orphans: usize,
}

/// One keep-alive HTTP/1.1 connection sending GETs.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(addr: &str) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// GET `path`; returns the status.
    fn get(&mut self, path: &str) -> std::io::Result<u16> {
        write!(self.stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")?;
        read_response(&mut self.stream, &mut self.buf)
    }
}

/// Reads one HTTP/1.1 response with a Content-Length body; returns the
/// status.
fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = stream.read(&mut chunk)?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(status);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `total` `/control/cam-a/start` and `/stop` requests, interleaved, from
/// `clients` keep-alive connections; then a second storm during which the
/// host gets SIGTERM.
pub fn storm(total: u64, clients: usize) -> StormFigures {
    let (_s, mut host) = host_with(30, &[]);
    let addr = host.base.trim_start_matches("http://").to_string();
    let spawns_before = host.spawns();
    let rss_before = host.rss_kib();
    let sent = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let run = |limit: u64, stop_on_error: bool| {
        let threads: Vec<_> = (0..clients)
            .map(|c| {
                let (addr, sent, errors) = (addr.clone(), sent.clone(), errors.clone());
                std::thread::spawn(move || {
                    let Ok(mut conn) = Conn::open(&addr) else {
                        return;
                    };
                    let mut i = c as u64;
                    while sent.fetch_add(1, Ordering::Relaxed) < limit {
                        let action = if i.is_multiple_of(2) { "start" } else { "stop" };
                        i += 1;
                        match conn.get(&format!("/control/cam-a/{action}?token={TEST_TOKEN}")) {
                            Ok(200) => {}
                            Ok(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) if stop_on_error => return,
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                                match Conn::open(&addr) {
                                    Ok(c) => conn = c,
                                    Err(_) => return,
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        threads
    };
    let start = Instant::now();
    for t in run(total, false) {
        let _ = t.join();
    }
    let seconds = start.elapsed().as_secs_f64();
    let requests = sent.load(Ordering::Relaxed).min(total);
    // Level-triggered: whatever the storm did, one value is left; give
    // the task a moment to act on it, then count.
    std::thread::sleep(Duration::from_millis(500));
    let spawns = host.spawns() - spawns_before;
    let rss_after = host.rss_kib();
    let errors_seen = errors.load(Ordering::Relaxed);

    // A second storm, and SIGTERM in the middle of it.
    sent.store(0, Ordering::Relaxed);
    let second = run(u64::MAX, true);
    let busy = Instant::now();
    while sent.load(Ordering::Relaxed) < 5_000 && busy.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = host.child.id();
    let t = Instant::now();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exited = wait_exit(&mut host.child, Duration::from_secs(30));
    let exit_ms = t.elapsed().as_millis() as u64;
    assert!(exited, "the host ignored SIGTERM for 30 s");
    for t in second {
        let _ = t.join();
    }
    StormFigures {
        requests,
        errors: errors_seen,
        seconds,
        spawns,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        exit_ms,
        orphans: publishers_of("cam-a").len(),
    }
}

/// Waits up to `timeout` for `child` to exit.
pub fn wait_exit(child: &mut std::process::Child, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// What the malformed-callback run measured.
#[derive(Debug, Clone, Default)]
pub struct MalformedFigures {
    /// Bodies sent.
    pub sent: usize,
    /// Answered 4xx.
    pub client_errors: usize,
    /// Answered otherwise (should be 0).
    pub other: usize,
    /// Those other answers by status (0: the connection failed).
    pub other_statuses: std::collections::BTreeMap<u16, usize>,
    /// The host answered `/healthz` afterwards.
    pub alive: bool,
    /// The host's log mentions a panic.
    pub panicked: bool,
}

/// A small deterministic generator (xorshift64*): fuzz input that can be
/// reproduced from its seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// One malformed callback body and its content type.
fn malformed(rng: &mut Rng) -> (&'static str, Vec<u8>) {
    let form = "application/x-www-form-urlencoded";
    let n = rng.below(512) as usize;
    let long = 100 + rng.below(70_000) as usize;
    match rng.below(10) {
        0 => (form, rng.bytes(n)),
        1 => (form, b"app=dss&name=%ZZ%&clientid=%".to_vec()),
        2 => (
            form,
            format!("app=dss&name={}&clientid=1", "x".repeat(long)).into_bytes(),
        ),
        3 => (form, b"app=dss&name=../../etc/passwd&clientid=1".to_vec()),
        4 => (form, b"app=dss&name=cam-a%00x&clientid=1".to_vec()),
        5 => (form, b"app[]=dss&name[a]=cam-a&&&==&=".to_vec()),
        6 => (
            "application/json",
            br#"{"app":"dss","name":"cam-a"}"#.to_vec(),
        ),
        7 => (
            form,
            [
                b"app=dss&name=cam-a\xff\xfe&clientid=".as_slice(),
                &rng.bytes(8),
            ]
            .concat(),
        ),
        8 => ("text/plain", rng.bytes(64)),
        _ => (form, b"app=other&name=cam-a&clientid=1".to_vec()),
    }
}

/// `n` malformed callback bodies (with the right secret) at the four
/// nginx-rtmp callbacks, over keep-alive connections.
pub fn malformed_callbacks(n: usize) -> MalformedFigures {
    let (s, host) = host_with(2, &[]);
    let secret = s.callback_secret();
    let addr = host.base.trim_start_matches("http://").to_string();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let events = ["on_play", "on_play_done", "on_publish", "on_publish_done"];
    let mut figures = MalformedFigures::default();
    let mut conn = Conn::open(&addr).expect("connect");
    let counted = AtomicUsize::new(0);
    for i in 0..n {
        let (ct, body) = malformed(&mut rng);
        let event = events[i % events.len()];
        let head = format!(
            "POST /hooks/{secret}/{event} HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut attempt = || -> std::io::Result<u16> {
            conn.stream.write_all(head.as_bytes())?;
            conn.stream.write_all(&body)?;
            read_response(&mut conn.stream, &mut conn.buf)
        };
        // The server may close a connection after refusing a body it did
        // not read: then the next request goes on a new one.
        let status = match attempt() {
            Ok(s) => s,
            Err(_) => {
                conn = Conn::open(&addr).expect("reconnect");
                let mut retry = || -> std::io::Result<u16> {
                    conn.stream.write_all(head.as_bytes())?;
                    conn.stream.write_all(&body)?;
                    read_response(&mut conn.stream, &mut conn.buf)
                };
                retry().unwrap_or(0)
            }
        };
        counted.fetch_add(1, Ordering::Relaxed);
        if (400..500).contains(&status) {
            figures.client_errors += 1;
        } else {
            figures.other += 1;
            *figures.other_statuses.entry(status).or_default() += 1;
        }
    }
    figures.sent = counted.load(Ordering::Relaxed);
    figures.alive = host.get("/healthz").status == 200;
    figures.panicked = host.log_text().contains("panicked");
    figures
}

/// What the exploit run measured.
#[derive(Debug, Clone, Default)]
pub struct ExploitFigures {
    /// Exploit streams listed.
    pub streams: usize,
    /// Shown `refused` with a reason by the API.
    pub refused: usize,
    /// Whose `on_play` and `watch` were refused (404).
    pub viewers_refused: usize,
    /// FFmpeg spawned (should be 0).
    pub spawns: u64,
    /// Files the exploits name that exist afterwards (should be 0).
    pub files_touched: usize,
    /// Stream id → refusal reason, for the record.
    pub reasons: Vec<(String, String)>,
}

/// The exploit strings of the hardening issue, as provider listings
/// (sources, input options) and operator overrides (output options): each
/// is refused with a reason, no viewer can start it, nothing is spawned and
/// no file is written.
pub fn exploits() -> ExploitFigures {
    let mut s = Setup::new();
    s.with_nginx(2);
    let scratch = crate::scratch_dir();
    let out = |name: &str| scratch.path().join(name).display().to_string();
    let lavfi = r#"["-f", "lavfi"]"#;
    let sources: Vec<(&str, String, &str)> = vec![
        ("file", "file:///etc/passwd".into(), "[]"),
        ("path", "/etc/passwd".into(), "[]"),
        ("concatproto", "concat:/etc/passwd|/etc/hosts".into(), "[]"),
        (
            "subfile",
            "subfile,,start,0,end,0,,:/etc/passwd".into(),
            "[]",
        ),
        ("pipe", "pipe:0".into(), "[]"),
        ("listen", "tcp://0.0.0.0:9000?listen".into(), "[]"),
        (
            "selfcontrol",
            format!("http://127.0.0.1:{}/control/cam-a/start", s.port),
            "[]",
        ),
        (
            "nginxrtmp",
            format!("rtmp://127.0.0.1:{}/dss/cam-a", s.nginx_rtmp),
            "[]",
        ),
        ("private", "rtsp://10.0.0.1/cam".into(), "[]"),
        ("metadata", "http://169.254.169.254/latest".into(), "[]"),
        ("v6local", "http://[::1]/".into(), "[]"),
        ("movie", "movie=/etc/passwd".into(), lavfi),
        (
            "drawtext",
            "testsrc,drawtext=textfile=/etc/passwd".into(),
            lavfi,
        ),
        ("life", "life=filename=/etc/passwd".into(), lavfi),
        (
            "concatdemux",
            "/etc/passwd".into(),
            r#"["-f", "concat", "-safe", "0"]"#,
        ),
        ("data", "rtsp://cam.example/1".into(), r#"["-f", "data"]"#),
        (
            "image2",
            "rtsp://cam.example/1".into(),
            r#"["-f", "image2"]"#,
        ),
        (
            "graphfile",
            "testsrc".into(),
            r#"["-graph_file", "/etc/passwd", "-f", "lavfi"]"#,
        ),
        ("attach", "rtsp://cam.example/1".into(), "[]"),
    ];
    let attach = format!(r#"["-dump_attachment:t", "{}"]"#, out("attachment"));
    let streams: Vec<String> = sources
        .iter()
        .map(|(k, src, opts)| {
            let opts = if *k == "attach" {
                attach.as_str()
            } else {
                opts
            };
            format!("{{ key = \"{k}\", source = {src:?}, input_options = {opts} }}")
        })
        .collect();
    s.instance(
        "x",
        &format!(
            "module = \"static-list\"\nallow_sources = [\"cam.example\"]\n[config]\nstreams = [{}]\n",
            streams.join(", ")
        ),
    );
    // Operator-level output options go through the same policy.
    let outputs = [
        (
            "positional",
            format!(r#"["-c", "copy", "{}"]"#, out("positional.mp4")),
        ),
        ("overwrite", format!(r#"["-y", "{}"]"#, out("y.mp4"))),
        (
            "vfdrawtext",
            r#"["-vf", "drawtext=textfile=/etc/passwd"]"#.to_string(),
        ),
        (
            "script",
            r#"["-filter_complex_script", "/etc/passwd"]"#.to_string(),
        ),
        ("extrainput", r#"["-i", "/etc/passwd"]"#.to_string()),
    ];
    for (name, o) in &outputs {
        s.instance(
            name,
            &format!(
                "module = \"static-list\"\ninput_options = [\"-re\", \"-f\", \"lavfi\"]\noutput_options = {o}\n[config]\nstreams = [{{ key = \"a\", source = \"testsrc=size=320x240:rate=15\" }}]\n"
            ),
        );
    }
    let host = s.start();
    for p in std::iter::once("x").chain(outputs.iter().map(|(n, _)| *n)) {
        host.provider_settled(p);
    }
    let ids: Vec<String> = sources
        .iter()
        .map(|(k, _, _)| format!("x-{k}"))
        .chain(outputs.iter().map(|(n, _)| format!("{n}-a")))
        .collect();
    let mut f = ExploitFigures {
        streams: ids.len(),
        ..Default::default()
    };
    for id in &ids {
        let v = host.stream(id);
        let reason = v["last_error"].as_str().unwrap_or_default().to_string();
        if v["state"] == "refused" && reason.starts_with("refused") {
            f.refused += 1;
        }
        f.reasons.push((id.clone(), reason));
        let play = host.hook(
            &s,
            "on_play",
            &[("app", "dss"), ("name", id), ("clientid", "1")],
        );
        let watch = host.post(&format!("/api/streams/{id}/watch"));
        if play.status == 404 && watch.status == 404 {
            f.viewers_refused += 1;
        }
    }
    // Give anything that would have started a moment to show itself.
    std::thread::sleep(Duration::from_millis(500));
    f.spawns = host.spawns();
    f.files_touched = std::fs::read_dir(scratch.path())
        .map(|d| d.count())
        .unwrap_or(0);
    f
}
