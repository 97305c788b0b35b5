//! Benchmark of the on-demand path, printing figures (no assertions):
//!
//! 1. nginx-rtmp callback handling: `on_play`/`on_play_done` pairs on a
//!    live stream, sent by 4 concurrent clients — throughput, p50, p99.
//! 2. Time to first frame for a viewer of an idle stream through DSS
//!    (on_play → spawn FFmpeg → publish → frame), against the baseline of
//!    the identical FFmpeg command spawned by hand at play time on a plain
//!    nginx-rtmp with no callbacks, in the same run. Reported as a ratio.
//!
//! Run: `cargo bench -p dss-e2e --bench ondemand` (after
//! `scripts/build-providers.sh` and `cargo build --release -p dss-host`).

use dss_e2e::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PAIRS_PER_CLIENT: usize = 500;
const CLIENTS: usize = 4;
const FIRST_FRAME_RUNS: usize = 5;
/// Viewer probing: FFmpeg's default analyzes 5 s of an RTMP stream with no
/// audio before decoding; a player starts at once. Same for both sides.
const VIEWER_PROBE: &[&str] = &["-analyzeduration", "0", "-probesize", "32768"];

const PATTERN: &str = "testsrc=size=320x240:rate=25";
const OUTPUT: &[&str] = &[
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-tune",
    "zerolatency",
    "-pix_fmt",
    "yuv420p",
    "-g",
    "25",
];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Time until a viewer of `url` has decoded its first frame (the viewer
/// exits after it).
fn first_frame(url: &str) -> Duration {
    let start = Instant::now();
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error"])
        .args(VIEWER_PROBE)
        .args(["-i", url, "-frames:v", "1", "-f", "null", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("viewer ffmpeg");
    assert!(status.success(), "viewer of {url} failed");
    start.elapsed()
}

fn callbacks(setup: &Setup, host: &Host) {
    let base = format!("{}/hooks/{}", host.base, setup.callback_secret());
    let start = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let base = base.clone();
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
                let mut lat = Vec::with_capacity(PAIRS_PER_CLIENT);
                for i in 0..PAIRS_PER_CLIENT {
                    let id = format!("{}", 100_000 + t * PAIRS_PER_CLIENT + i);
                    let fields = [
                        ("app", "dss"),
                        ("name", "bench-live"),
                        ("clientid", id.as_str()),
                        ("addr", "127.0.0.1"),
                    ];
                    let s = Instant::now();
                    for hook in ["on_play", "on_play_done"] {
                        let r = agent
                            .post(&format!("{base}/{hook}"))
                            .send_form(fields)
                            .expect("callback");
                        assert_eq!(r.status(), 200);
                    }
                    lat.push(s.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("thread"))
        .collect();
    let wall = start.elapsed();
    all.sort();
    println!(
        "callbacks: {} on_play/on_play_done pairs from {CLIENTS} clients in {:.2} s: {:.0} pairs/s, pair latency p50 {:.3} ms, p99 {:.3} ms",
        all.len(),
        wall.as_secs_f64(),
        all.len() as f64 / wall.as_secs_f64(),
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
    );
}

fn by_hand(nginx: &PlainNginx, run: usize) -> Duration {
    let url = format!("rtmp://127.0.0.1:{}/live/hand{run}", nginx.rtmp);
    let start = Instant::now();
    // The identical command DSS would run, spawned at play time.
    let mut publisher = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-nostats",
            "-loglevel",
            "warning",
            "-re",
            "-f",
            "lavfi",
            "-i",
            PATTERN,
        ])
        .args(OUTPUT)
        .args(["-f", "flv", &url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("publisher");
    // A viewer may only connect once the stream exists on a plain server
    // (no idle_streams wait there): retry until it gets a frame.
    let first = loop {
        let s = Instant::now();
        let ok = Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "quiet"])
            .args(VIEWER_PROBE)
            .args(["-i", &url, "-frames:v", "1", "-f", "null", "-"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok || s.elapsed() > Duration::from_secs(20) {
            break start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = publisher.kill();
    let _ = publisher.wait();
    first
}

fn main() {
    let mut s = Setup::new();
    s.with_nginx(1);
    let pattern = format!(
        "module = \"static-list\"\ninput_options = [\"-re\", \"-f\", \"lavfi\"]\noutput_options = [{}]\n[config]\nstreams = [{}]\n",
        OUTPUT.iter().map(|o| format!("{o:?}")).collect::<Vec<_>>().join(", "),
        std::iter::once("live".to_string())
            .chain((0..FIRST_FRAME_RUNS).map(|i| format!("idle{i}")))
            .map(|k| format!("{{ key = \"{k}\", source = \"{PATTERN}\" }}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    s.instance("bench", &pattern);
    let host = s.start();
    host.provider_settled("bench");

    // 1. Callbacks on a live stream.
    host.keep_live("bench-live");
    callbacks(&s, &host);

    // 2. Time to first frame: through DSS (idle streams) vs by hand.
    let plain = PlainNginx::start();
    let mut dss = Vec::new();
    let mut hand = Vec::new();
    for run in 0..FIRST_FRAME_RUNS {
        dss.push(first_frame(&s.rtmp_url(&format!("bench-idle{run}"))));
        hand.push(by_hand(&plain, run));
    }
    dss.sort();
    hand.sort();
    let (d, h) = (percentile(&dss, 0.5), percentile(&hand, 0.5));
    println!(
        "time to first frame (median of {FIRST_FRAME_RUNS}): through DSS {:.0} ms (min {:.0}, max {:.0}); FFmpeg by hand at play time {:.0} ms (min {:.0}, max {:.0}); ratio DSS/hand {:.2}",
        ms(d),
        ms(dss[0]),
        ms(dss[dss.len() - 1]),
        ms(h),
        ms(hand[0]),
        ms(hand[hand.len() - 1]),
        d.as_secs_f64() / h.as_secs_f64()
    );
}
