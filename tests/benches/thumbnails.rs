//! Benchmark of live thumbnails, printing figures (no assertions): the CPU
//! of 20 live streams (host and every FFmpeg, thumbnail runs included)
//! with thumbnails every `live_interval` (10 s), against the same 20
//! streams with `thumbnails = "off"`, in the same run.
//!
//! Run: `cargo bench -p dss-e2e --bench thumbnails` (after
//! `scripts/build-providers.sh` and `cargo build --release -p dss-host`).

use dss_e2e::*;
use std::time::{Duration, Instant};

const STREAMS: usize = 20;
const WINDOW: Duration = Duration::from_secs(30);
/// A camera-like picture: 640x360 at 10 fps, a keyframe a second.
const SOURCE: &str = "testsrc=size=640x360:rate=10";

fn instance(mode: &str) -> String {
    let streams: Vec<String> = (0..STREAMS)
        .map(|i| format!("{{ key = \"c{i}\", source = \"{SOURCE}\" }}"))
        .collect();
    format!(
        "module = \"static-list\"\nthumbnails = \"{mode}\"\n\
         input_options = [\"-re\", \"-f\", \"lavfi\"]\n\
         output_options = [\"-c:v\", \"libx264\", \"-preset\", \"ultrafast\", \"-tune\", \"zerolatency\", \"-pix_fmt\", \"yuv420p\", \"-g\", \"10\"]\n\
         [config]\nstreams = [{}]\n",
        streams.join(", ")
    )
}

/// % of one core used by the host and every FFmpeg over [`WINDOW`] with
/// 20 live streams, and the thumbnails written meanwhile.
fn measure(mode: &str) -> Figures {
    let mut s = Setup::new();
    s.log_filter = "info".into();
    s.with_nginx(30);
    s.instance("cam", &instance(mode));
    let host = s.start();
    host.provider_settled("cam");
    let ids: Vec<String> = (0..STREAMS).map(|i| format!("cam-c{i}")).collect();
    for id in &ids {
        let r = host.post(&format!("/api/streams/{id}/watch?timeout=600"));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let pids: Vec<u32> = ids
        .iter()
        .map(|id| {
            host.wait_stream(id, "live", Duration::from_secs(60), |v| {
                v["state"] == "live"
            })["pid"]
                .as_u64()
                .expect("pid") as u32
        })
        .collect();
    // Past the first thumbnails of every stream: the steady state.
    std::thread::sleep(Duration::from_secs(12));
    let thumbs = s.dir.path().join("var/thumb");
    let modified = |id: &str| {
        std::fs::metadata(thumbs.join(format!("{id}.jpg")))
            .and_then(|m| m.modified())
            .ok()
    };
    let before: Vec<_> = ids.iter().map(|id| modified(id)).collect();
    let host_pid = host.child.id();
    // (host, thumbnail runs, stream FFmpeg)
    let sample = || {
        (
            cpu_time(host_pid, false),
            cpu_time(host_pid, true),
            pids.iter().map(|p| cpu_time(*p, false)).sum::<Duration>(),
        )
    };
    let (c0, t0) = (sample(), Instant::now());
    std::thread::sleep(WINDOW);
    let (c1, t1) = (sample(), Instant::now());
    let refreshed = ids
        .iter()
        .zip(&before)
        .filter(|(id, b)| modified(id) != **b)
        .count();
    let secs = (t1 - t0).as_secs_f64();
    let pct = |a: Duration, b: Duration| (b - a).as_secs_f64() / secs * 100.0;
    Figures {
        host: pct(c0.0, c1.0),
        runs: pct(c0.1, c1.1),
        streams: pct(c0.2, c1.2),
        refreshed,
    }
}

/// % of one core over the window.
struct Figures {
    host: f64,
    runs: f64,
    streams: f64,
    refreshed: usize,
}

impl Figures {
    fn total(&self) -> f64 {
        self.host + self.runs + self.streams
    }
}

fn main() {
    println!(
        "thumbnails: {STREAMS} live streams ({SOURCE}), CPU over {} s in % of one core",
        WINDOW.as_secs()
    );
    let show = |what: &str, f: &Figures| {
        println!(
            "  {what}: {:.1} % (host {:.1}, thumbnail runs {:.1}, stream FFmpeg {:.1}); {}/{STREAMS} thumbnails refreshed",
            f.total(),
            f.host,
            f.runs,
            f.streams,
            f.refreshed
        )
    };
    let off = measure("off");
    show("without thumbnails", &off);
    let on = measure("live");
    show("with thumbnails every 10 s", &on);
    let delta = on.total() - off.total();
    // What thumbnails run: their FFmpeg and the host's extra work. The
    // streams' own FFmpeg do not change (their difference between the
    // two hosts is the run-to-run noise of 20 encoders on 2 cores).
    let direct = on.runs + (on.host - off.host).max(0.0);
    println!(
        "  cost: {direct:.1} % of one core for {STREAMS} streams ({:.2} % per stream, {:.0} % of what the streams take); \
         whole difference {delta:.1} % (stream FFmpeg noise {:+.1} %)",
        direct / STREAMS as f64,
        direct / off.total() * 100.0,
        on.streams - off.streams
    );
}
