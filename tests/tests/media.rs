//! Around a stream, end to end on real nginx-rtmp and FFmpeg: statistics
//! from the supervisor's own events (served in the original's `/stats`
//! shapes, kept across restarts on SQLite and MongoDB) and thumbnails
//! (three sizes, from the stream already flowing; idle streams only in
//! `all` mode).
//!
//! The tests run one at a time (a lock): each runs nginx and FFmpeg.

use dss_e2e::timeout::T20 as T;
use dss_e2e::*;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

fn json_at(host: &Host, path: &str) -> Value {
    let r = host.get(path);
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.json()
}

/// Kills the FFmpeg of live stream `id` and waits until a new one is live.
fn kill_ffmpeg(host: &Host, id: &str) {
    let pid = host.wait_stream(id, "live", T, |v| v["state"] == "live")["pid"]
        .as_u64()
        .expect("pid");
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    host.wait_stream(id, "live again", T, |v| {
        v["state"] == "live" && v["pid"].as_u64().is_some_and(|p| p != pid)
    });
}

/// A watched stream's FFmpeg is killed twice; the figures and every
/// `/stats` shape are checked, then again after a restart of the host.
fn crashes_are_counted_and_kept(mut s: Setup) {
    s.with_nginx(2);
    s.set("stats", "save_interval_seconds = 1");
    s.instance("cam", &test_pattern_instance(&["a", "b"]));
    let mut host = s.start();
    assert_eq!(host.provider_settled("cam")["state"], "ready");
    let events = EventsClient::connect(&format!("http://127.0.0.1:{}", s.port), "/api/events");
    let viewer = Viewer::start(&s.rtmp_url("cam-a"));
    viewer.wait_frames(0, 5, T);
    kill_ffmpeg(&host, "cam-a");
    kill_ffmpeg(&host, "cam-a");
    // The event stream tells of the figures as they change.
    let told = events.wait("a stats event with both crashes", T, |name, v| {
        name == "stats" && v["id"] == "cam-a" && v["crash"] == 2 && v["starts"] == 3
    });
    assert!(told["warmup"].as_f64() > Some(0.0), "{told}");

    // One field of one stream: the bare value.
    assert_eq!(json_at(&host, "/stats/cam-a/crash"), 2);
    let uptime = json_at(&host, "/stats/cam-a/uptime")
        .as_f64()
        .expect("number");
    assert!(uptime > 0.0 && uptime < 100.0, "uptime {uptime} %");
    let warmup = json_at(&host, "/stats/cam-a/warmup")
        .as_f64()
        .expect("number");
    assert!(warmup > 0.0 && warmup < 10.0, "warm-up {warmup} s");
    assert_eq!(json_at(&host, "/stats/cam-a/id"), "cam-a");
    // A stream: one object with every field and its id.
    let all = json_at(&host, "/stats/cam-a/");
    for f in [
        "thumbnail",
        "uptime",
        "crash",
        "warmup",
        "id",
        "starts",
        "peak_viewers",
    ] {
        assert!(all.get(f).is_some(), "{f} missing: {all}");
    }
    assert_eq!(all["starts"], 3);
    assert_eq!(all["peak_viewers"], 1);
    assert_eq!(
        json_at(&host, "/stats/cam-a")["crash"],
        2,
        "without the slash"
    );
    // Several fields: those and the id.
    let two = json_at(&host, "/stats/cam-a/crash,uptime,");
    let mut keys: Vec<&str> = two
        .as_object()
        .expect("object")
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    assert_eq!(keys, ["crash", "id", "uptime"]);
    // Fractions with percent=0; POST answers as GET.
    let fraction = json_at(&host, "/stats/cam-a/uptime?percent=0")
        .as_f64()
        .expect("number");
    assert!(fraction > 0.0 && fraction < 1.0, "{fraction}");
    let r = host.post("/stats/cam-a/crash");
    assert_eq!((r.status, r.body.trim()), (200, "2"));
    // A provider: a list of its streams, each with its id.
    let list = json_at(&host, "/stats/cam/crash");
    let list = list.as_array().expect("list");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], "cam-a");
    assert_eq!(list[0]["crash"], 2);
    assert_eq!(list[1], serde_json::json!({"id": "cam-b", "crash": 0}));
    // Unknown field or id: 404 (no fall-back to the provider's list).
    for bad in [
        "/stats/cam-a/nope",
        "/stats/cam-zz",
        "/stats/nope",
        "/stats/cam/crash,x",
    ] {
        assert_eq!(host.get(bad).status, 404, "{bad}");
    }
    // The JSON route and the metrics.
    let j = json_at(&host, "/api/streams/cam-a/stats");
    assert_eq!(
        (j["crash"].clone(), j["starts"].clone()),
        (2.into(), 3.into())
    );
    let metrics = host.get("/metrics").body;
    assert!(
        metrics.contains("dss_stream_crashes{stream=\"cam-a\"} 2"),
        "{metrics}"
    );

    viewer.leave();
    host.stop();
    let host = s.start();
    assert_eq!(host.provider_settled("cam")["state"], "ready");
    let again = wait_for("the statistics restored", T, || {
        let v = json_at(&host, "/api/streams/cam-a/stats");
        (v["starts"] == 3).then_some(v)
    });
    assert_eq!(again["crash"], 2, "{again}");
    assert!(again["live_seconds"].as_f64() > Some(1.0), "{again}");
    assert!(again["uptime"].as_f64() < Some(1.0), "{again}");
}

#[test]
fn crashes_uptime_and_warmup_are_served_in_the_original_shapes_and_survive_a_restart() {
    let _g = serial();
    crashes_are_counted_and_kept(Setup::new());
}

#[test]
fn statistics_survive_a_restart_on_mongodb() {
    let Some(url) = mongo_url(&format!("dss_stats_{}", std::process::id())) else {
        return;
    };
    let _g = serial();
    let mut s = Setup::new();
    s.set("store", &format!("url = {url:?}"));
    crashes_are_counted_and_kept(s);
}

/// Width and height of the first video stream of `file`.
fn size_of(file: &Path) -> (u64, u64) {
    let v = ffprobe(
        file,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height",
        ],
    );
    let n = |i: usize| v.get(i).and_then(|x| x.parse().ok()).unwrap_or(0);
    (n(0), n(1))
}

/// 40 s of 640x360 H.264 in MPEG-TS: a camera's stream, served by a test
/// HTTP server that counts connections.
fn camera_recording() -> Vec<u8> {
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x360:rate=10",
            "-t",
            "40",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "10",
            "-f",
            "mpegts",
            "pipe:1",
        ])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success() && !out.stdout.is_empty());
    out.stdout
}

fn modified(file: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(file).and_then(|m| m.modified()).ok()
}

#[test]
fn live_streams_get_three_sizes_from_their_own_flow_and_idle_ones_only_in_all_mode() {
    let _g = serial();
    let camera = FileServer::start(vec![(
        "/cam.ts",
        Answer::Body("video/mp2t", camera_recording()),
    )]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_addr = closed.local_addr().expect("addr");
    drop(closed);
    let mut s = Setup::new();
    s.with_nginx(2);
    for l in [
        "start_after = 0",
        "interval = 3",
        "live_interval = 2",
        "timeout = 10",
    ] {
        s.set("thumbnails", l);
    }
    s.instance(
        "site",
        &format!(
            "module = \"static-list\"\nallow_sources = [\"{a}\"]\nallow_private = true\n\
             input_options = [\"-re\"]\noutput_options = [\"-c:v\", \"copy\"]\n\
             [config]\nstreams = [{{ key = \"cam\", source = \"http://{a}/cam.ts\" }}]\n",
            a = camera.addr
        ),
    );
    // Idle streams: none in the default `live` mode, thumbnails in `all`,
    // failures counted for a source that refuses connections.
    s.instance("idle", &test_pattern_instance(&["a"]));
    s.instance(
        "polled",
        &format!("thumbnails = \"all\"\n{}", test_pattern_instance(&["a"])),
    );
    s.instance(
        "broken",
        &format!(
            "module = \"static-list\"\nthumbnails = \"all\"\nallow_sources = [\"{closed_addr}\"]\n\
             allow_private = true\n[config]\nstreams = [{{ key = \"x\", source = \"http://{closed_addr}/x.ts\" }}]\n"
        ),
    );
    let host = s.start();
    for p in ["site", "idle", "polled", "broken"] {
        assert_eq!(host.provider_settled(p)["state"], "ready", "{p}");
    }

    let viewer = Viewer::start(&s.rtmp_url("site-cam"));
    viewer.wait_frames(0, 5, T);
    // Served by nginx at /thumb/, in three sizes that decode.
    let thumbs = s.dir.path().join("var/thumb");
    let nginx = s.nginx_base();
    wait_for("the live thumbnails", T, || {
        (get(&format!("{nginx}/thumb/site-cam-small.jpg")).status == 200).then_some(())
    });
    for (name, size) in [
        ("site-cam.jpg", (640, 360)),
        ("site-cam-medium.jpg", (320, 240)),
        ("site-cam-small.jpg", (176, 132)),
    ] {
        let r = get(&format!("{nginx}/thumb/{name}"));
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(size_of(&thumbs.join(name)), size, "{name}");
    }
    // Refreshed from the flow: the camera was still opened once.
    let first = modified(&thumbs.join("site-cam.jpg"));
    wait_for("a refreshed thumbnail", T, || {
        (modified(&thumbs.join("site-cam.jpg")) != first).then_some(())
    });
    assert_eq!(camera.hits(), 1, "the camera was opened more than once");
    // And by the host, with the size chosen.
    let (status, jpeg) = get_bytes(&format!(
        "http://127.0.0.1:{}/api/streams/site-cam/thumbnail?size=medium",
        s.port
    ));
    assert_eq!(status, 200);
    let served = s.dir.path().join("served.jpg");
    std::fs::write(&served, jpeg).expect("write");
    assert_eq!(size_of(&served), (320, 240));
    assert_eq!(
        host.get("/api/streams/site-cam/thumbnail?size=huge").status,
        404
    );
    assert_eq!(json_at(&host, "/stats/site-cam/thumbnail"), 100.0);

    // Idle streams: a round gives `all` mode its thumbnails, counts the
    // broken source's failure, and leaves `live` mode's stream alone.
    host.wait_log("thumbnail round: 1/2 streams", T);
    assert_eq!(host.get("/api/streams/polled-a/thumbnail").status, 200);
    assert_eq!(size_of(&thumbs.join("polled-a-small.jpg")), (176, 132));
    assert_eq!(json_at(&host, "/stats/polled-a/thumbnail"), 100.0);
    assert_eq!(json_at(&host, "/stats/broken-x/thumbnail"), 0.0);
    assert_eq!(host.get("/api/streams/broken-x/thumbnail").status, 404);
    assert_eq!(host.get("/api/streams/idle-a/thumbnail").status, 404);
    assert!(!thumbs.join("idle-a.jpg").exists());
    assert_eq!(
        host.stream("polled-a")["state"],
        "idle",
        "a round starts nothing"
    );
}

/// `format=start_time,duration` of a media file, in seconds.
fn start_and_duration(file: &Path) -> (f64, f64) {
    let v = ffprobe(file, &["-show_entries", "format=start_time,duration"]);
    let n = |i: usize| v.get(i).and_then(|x| x.parse().ok()).unwrap_or(-1.0);
    (n(0), n(1))
}

#[test]
fn a_recorded_stream_leaves_gap_free_start_named_segments_that_retention_trims_and_export_plays() {
    let _g = serial();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_addr = closed.local_addr().expect("addr");
    drop(closed);
    let mut s = Setup::new();
    s.with_nginx(2);
    // A keyframe every third of a second: each cut, at the first keyframe
    // 0.1 s past a boundary, falls in the boundary's second.
    let pattern = test_pattern_instance(&["a", "b"]).replace(r#""-g", "15""#, r#""-g", "5""#);
    assert!(pattern.contains(r#""-g", "5""#));
    let recorded = format!("{pattern}\n[record]\ninterval = 5\nstreams = [\"a\"]\n");
    s.instance("rec", &recorded);
    // A recorded stream whose source is down: retried, and never in the
    // way of the others.
    s.instance(
        "dead",
        &format!(
            "module = \"static-list\"\nallow_sources = [\"{closed_addr}\"]\nallow_private = true\n\
             [config]\nstreams = [{{ key = \"x\", source = \"http://{closed_addr}/x.ts\" }}]\n\
             [record]\ninterval = 5\n"
        ),
    );
    let mut host = s.start();
    assert_eq!(host.provider_settled("rec")["state"], "ready");
    // Kept running with nobody watching; the recorder is no viewer.
    host.wait_stream("rec-a", "live without viewers", T, |v| v["state"] == "live");
    assert_eq!(host.stream("rec-b")["state"], "idle", "not recorded");
    let dir = s.dir.path().join("var/record/rec-a");
    let list = |host: &Host| -> Vec<Value> {
        json_at(host, "/api/recordings?stream=rec-a")["segments"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let segs = wait_for("seven finished segments", Duration::from_secs(60), || {
        let l = list(&host);
        (l.len() >= 7).then_some(l)
    });
    let v = host.stream("rec-a");
    assert_eq!(
        v["viewers"]["rtmp"], 0,
        "the recorder counted as a viewer: {v}"
    );
    assert_ne!(host.stream("dead-x")["state"], "live");
    let names: Vec<String> = segs
        .iter()
        .map(|s| s["file"].as_str().expect("file").to_string())
        .collect();
    let starts: Vec<u64> = segs
        .iter()
        .map(|s| s["start_ms"].as_u64().expect("start"))
        .collect();
    // Named by their start, epoch-aligned after the first: one segment
    // per 5 s interval, in turn. (A name falls on its boundary when the
    // keyframe after it comes in time; on a machine loaded by the whole
    // suite the recorder's media can come a second or more late, and so
    // does the name.)
    for n in names.iter().skip(1) {
        assert!(n.starts_with("rec-a-2") && n.ends_with("Z.ts"), "{n}");
    }
    let slots: Vec<u64> = starts.iter().skip(1).map(|st| st / 5000).collect();
    for w in slots.windows(2) {
        assert_eq!(w[1], w[0] + 1, "one segment per 5 s interval: {names:?}");
    }
    // Gap-free: each segment's media starts where the previous one ended.
    let probed: Vec<(f64, f64)> = names
        .iter()
        .map(|n| start_and_duration(&dir.join(n)))
        .collect();
    let mut max_gap: f64 = 0.0;
    for w in probed.windows(2) {
        let gap = w[1].0 - (w[0].0 + w[0].1);
        max_gap = max_gap.max(gap.abs());
    }
    // The durations of the whole segments sum to the wall time between
    // their names.
    let whole = &probed[1..probed.len() - 1];
    let media: f64 = whole.iter().map(|p| p.1).sum();
    let wall = (starts[probed.len() - 1] - starts[1]) as f64 / 1000.0;
    eprintln!(
        "recording: {} segments, max gap {:.3} s, whole segments {media:.3} s of media over {wall:.3} s",
        probed.len(),
        max_gap
    );
    assert!(max_gap < 0.1, "a gap of {max_gap} s between segments");
    assert!(
        (media - wall).abs() < 1.0,
        "{media} s of media over {wall} s"
    );

    // One MP4 of two segments' range.
    let (from, to) = (starts[2], starts[4]);
    let (status, mp4) =
        host.get_bytes(&format!("/api/recordings/rec-a/export?from={from}&to={to}"));
    assert_eq!(status, 200);
    let out = s.dir.path().join("export.mp4");
    std::fs::write(&out, mp4).expect("write");
    let (_, duration) = start_and_duration(&out);
    eprintln!("export of {} s: {duration:.3} s", (to - from) / 1000);
    assert!((duration - 10.0).abs() < 1.0, "export lasts {duration} s");
    assert_eq!(size_of(&out), (320, 240));
    // One segment downloads as it is.
    let (status, one) = host.get_bytes(&format!("/api/recordings/rec-a/{}", names[1]));
    assert_eq!(
        (status, one.len() as u64),
        (200, segs[1]["bytes"].as_u64().expect("bytes"))
    );
    for bad in ["../rec-b/x.ts", "rec-a-nottime.ts", "passwd"] {
        let r = host.get(&format!("/api/recordings/rec-a/{bad}"));
        assert_ne!(r.status, 200, "{bad}");
    }

    // Retention: segments that ended more than 8 s ago go, oldest first.
    s.instance(
        "rec",
        &recorded.replace("interval = 5", "interval = 5\nmax_age_hours = 0.0025"),
    );
    // One retention pass deletes several files in turn: wait for the
    // whole pass, not only its first deletion.
    let left = wait_for(
        "the oldest segments deleted",
        Duration::from_secs(30),
        || {
            let left = list(&host);
            let gone = !names[..4].iter().any(|n| dir.join(n).exists());
            (gone && left.len() <= 3).then_some(left)
        },
    );
    assert!(!left.is_empty(), "retention deleted every segment");

    // A graceful stop closes the segment being written.
    host.stop();
    let parts: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(parts.is_empty(), "{} .part files left", parts.len());
}
