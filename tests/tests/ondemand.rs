//! On-demand streaming end to end, on real nginx-rtmp and real FFmpeg:
//! viewers start streams, leaving stops them, deaths restart them, and a
//! crashed host recovers its viewers from `/stat`.
//!
//! The tests run one at a time (a lock): each runs nginx and FFmpeg
//! encoders, and two cores shared by several would make the timings
//! these lifecycles depend on meaningless.

use dss_e2e::timeout::T20 as T;
use dss_e2e::*;
use std::time::Duration;

fn setup(grace: u64) -> Setup {
    let mut s = Setup::new();
    s.with_nginx(grace);
    s.instance("cam", &test_pattern_instance(&["a", "b"]));
    s
}

fn ready(host: &Host) {
    assert_eq!(host.provider_settled("cam")["state"], "ready");
}

#[test]
fn an_rtmp_viewer_starts_an_idle_stream_and_leaving_stops_it() {
    let _g = serial();
    let s = setup(2);
    let host = s.start();
    ready(&host);
    assert_eq!(host.stream("cam-a")["state"], "idle");
    assert!(
        publishers_of("cam-a").is_empty(),
        "no FFmpeg before a viewer"
    );

    let viewer = Viewer::start(&s.rtmp_url("cam-a"));
    viewer.wait_frames(0, 10, T);
    let live = host.wait_stream("cam-a", "live", T, |v| v["state"] == "live");
    assert_eq!(live["viewers"]["rtmp"], 1);
    assert!(live["warmup_ms"].as_u64().is_some());
    let pid = live["pid"].as_u64().expect("pid") as u32;
    assert_eq!(publishers_of("cam-a"), [pid]);
    assert_eq!(
        host.stream("cam-b")["state"],
        "idle",
        "other streams stay idle"
    );

    viewer.leave();
    // Gone within grace (2 s) + 5 s.
    host.wait_stream("cam-a", "idle", Duration::from_secs(7), |v| {
        v["state"] == "idle"
    });
    wait_for("FFmpeg to exit", Duration::from_secs(3), || {
        (!process_alive(pid)).then_some(())
    });
}

#[test]
fn a_second_viewer_during_the_grace_period_keeps_it_running() {
    let _g = serial();
    let s = setup(4);
    let host = s.start();
    ready(&host);
    let first = Viewer::start(&s.rtmp_url("cam-a"));
    first.wait_frames(0, 5, T);
    let pid = host.wait_stream("cam-a", "live", T, |v| v["state"] == "live")["pid"].clone();
    first.leave();
    host.wait_stream("cam-a", "stopping", T, |v| v["state"] == "stopping");
    let second = Viewer::start(&s.rtmp_url("cam-a"));
    second.wait_frames(0, 5, T);
    // Well past the grace period: still the same FFmpeg, live.
    std::thread::sleep(Duration::from_secs(5));
    let v = host.stream("cam-a");
    assert_eq!(v["state"], "live", "{v}");
    assert_eq!(
        v["pid"], pid,
        "the grace period was cancelled, not restarted"
    );
    assert_eq!(v["viewers"]["rtmp"], 1);
}

#[test]
fn ffmpeg_killed_while_watched_is_restarted_and_counted() {
    let _g = serial();
    let s = setup(2);
    let host = s.start();
    ready(&host);
    let viewer = Viewer::start(&s.rtmp_url("cam-a"));
    let before = viewer.wait_frames(0, 5, T);
    let pid = host.wait_stream("cam-a", "live", T, |v| v["state"] == "live")["pid"]
        .as_u64()
        .expect("pid");
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    let v = host.wait_stream("cam-a", "restarted", T, |v| {
        v["state"] == "live" && v["pid"].as_u64().is_some_and(|p| p != pid)
    });
    assert_eq!(v["restarts"], 1, "{v}");
    assert!(
        v["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("ffmpeg exited"),
        "{v}"
    );
    viewer.wait_frames(before, 10, T);
}

#[test]
fn a_source_that_never_publishes_times_out_and_backs_off() {
    let _g = serial();
    // A server that accepts and never answers: FFmpeg waits forever.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr");
    let mut s = Setup::new();
    s.with_nginx(2);
    s.set("ffmpeg", "start_timeout_seconds = 2");
    s.set("ffmpeg", "backoff_initial_ms = 500");
    s.instance(
        "cam",
        // A local source: allowed by address, and private addresses allowed.
        &format!("module = \"static-list\"\nallow_sources = [\"{addr}\"]\nallow_private = true\n[config]\nstreams = [{{ key = \"dead\", source = \"http://{addr}/stream\" }}]\n"),
    );
    let host = s.start();
    ready(&host);
    let r = host.post("/api/streams/cam-dead/watch?timeout=60");
    assert_eq!(r.status, 200, "{}", r.body);
    let v = host.wait_stream("cam-dead", "backoff", T, |v| {
        v["state"] == "backoff" && v["failures"].as_u64() >= Some(1)
    });
    assert!(
        v["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("no publish within 2 s"),
        "{v}"
    );
    // It is retried, and the failures keep counting.
    host.wait_stream("cam-dead", "a retry", T, |v| {
        v["failures"].as_u64() >= Some(2)
    });
    drop(silent);
}

#[test]
fn the_first_hls_request_of_an_idle_stream_gets_a_playlist() {
    let _g = serial();
    let s = setup(2);
    let host = s.start();
    ready(&host);
    let r = get(&format!("{}/hls/cam-b/index.m3u8", s.nginx_base()));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.starts_with("#EXTM3U"), "{}", r.body);
    assert!(r.body.contains(".ts"), "{}", r.body);
    let v = host.stream("cam-b");
    assert_eq!(v["viewers"]["http"], 1, "{v}");
    assert_eq!(v["state"], "live");
    // A segment is served too, and an unknown stream is refused.
    let seg = r
        .body
        .lines()
        .find(|l| l.ends_with(".ts"))
        .expect("segment");
    assert_eq!(
        get(&format!("{}/hls/cam-b/{seg}", s.nginx_base())).status,
        200
    );
    assert_eq!(
        get(&format!("{}/hls/cam-zz/index.m3u8", s.nginx_base())).status,
        403
    );
    assert!(publishers_of("cam-zz").is_empty());
}

#[test]
fn no_ffmpeg_outlives_a_killed_host() {
    let _g = serial();
    let s = setup(30);
    let mut host = s.start();
    ready(&host);
    for id in ["cam-a", "cam-b"] {
        assert_eq!(
            host.post(&format!("/api/streams/{id}/watch?timeout=120"))
                .status,
            200
        );
    }
    let pids: Vec<u32> = ["cam-a", "cam-b"]
        .iter()
        .map(|id| {
            host.wait_stream(id, "live", T, |v| v["state"] == "live")["pid"]
                .as_u64()
                .expect("pid") as u32
        })
        .collect();
    host.crash();
    wait_for(
        "every FFmpeg to die with the host",
        Duration::from_secs(5),
        || pids.iter().all(|&p| !process_alive(p)).then_some(()),
    );
    assert!(publishers_of("cam-a").is_empty() && publishers_of("cam-b").is_empty());
}

#[test]
fn a_restarted_host_recovers_its_viewers_from_stat() {
    let _g = serial();
    let s = setup(5);
    let mut host = s.start();
    ready(&host);
    let viewer = Viewer::start(&s.rtmp_url("cam-a"));
    viewer.wait_frames(0, 5, T);
    host.wait_stream("cam-a", "live", T, |v| v["state"] == "live");
    let nginx = s.nginx_pid().expect("nginx pid");
    host.crash();
    let before = viewer.frames();

    let host = s.start();
    assert_eq!(s.nginx_pid(), Some(nginx), "the running nginx is adopted");
    let v = host.wait_stream("cam-a", "live again", T, |v| v["state"] == "live");
    assert_eq!(v["viewers"]["rtmp"], 1, "count rebuilt from /stat: {v}");
    viewer.wait_frames(before, 15, T);
    assert!(host.log_text().contains("adopting the running nginx"));
}

#[test]
fn a_request_while_the_host_starts_waits_for_its_providers() {
    let _g = serial();
    let s = setup(2);
    // No waiting for the provider: these arrive as soon as the API
    // answers, while the host still compiles its modules (a fresh cache)
    // and before it has read its instances.
    let mut host = s.start_unready();
    let r = host.get("/api/streams/cam-a");
    assert_eq!(r.status, 200, "a known stream while starting: {}", r.body);
    assert!(host.log_text().contains("origin=Compiled"));
    ready(&host);

    // A viewer arriving while a restarted host (under the same nginx)
    // reads its instances is served, not refused.
    host.crash();
    let host = s.start_unready();
    let play = [("app", "dss"), ("name", "cam-b"), ("clientid", "7")];
    let r = host.hook(&s, "on_play", &play);
    assert_eq!(r.status, 200, "on_play while starting: {}", r.body);
    host.wait_stream("cam-b", "started by it", T, |v| v["state"] != "idle");
}

#[test]
fn callbacks_refuse_bad_ids_and_tolerate_duplicates() {
    let _g = serial();
    let mut s = setup(2);
    s.set("ffmpeg", "stat_interval_seconds = 1");
    let host = s.start();
    ready(&host);
    let hook = |path: &str, fields: &[(&str, &str)]| {
        host.hook(&s, path.trim_start_matches("/hooks/"), fields)
    };
    for name in ["../x", "a b", "cam-zzz", "cam-", "cam-a/../../x", ""] {
        let r = hook(
            "/hooks/on_play",
            &[("app", "dss"), ("name", name), ("clientid", "7")],
        );
        assert_eq!(r.status, 404, "{name:?}: {}", r.body);
    }
    let r = hook(
        "/hooks/on_play",
        &[("app", "other"), ("name", "cam-a"), ("clientid", "7")],
    );
    assert_eq!(r.status, 404, "another application");
    for path in [
        "/control/T7/start",
        "/control/cam-zzz/start",
        "/control/..%2Fx/start",
        "/control/cam-a/explode",
    ] {
        let r = host.get(path);
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
    assert!(publishers_of("cam-zzz").is_empty() && publishers_of("x").is_empty());
    assert_eq!(host.stream("cam-a")["state"], "idle");

    // Duplicate plays of one client count once; a stray done is harmless.
    let play = [("app", "dss"), ("name", "cam-b"), ("clientid", "41")];
    assert_eq!(hook("/hooks/on_play", &play).status, 200);
    assert_eq!(hook("/hooks/on_play", &play).status, 200);
    assert_eq!(
        hook(
            "/hooks/on_play_done",
            &[("app", "dss"), ("name", "cam-b"), ("clientid", "999")]
        )
        .status,
        200
    );
    let v = host.wait_stream("cam-b", "starting", T, |v| v["state"] != "idle");
    assert_eq!(v["viewers"]["rtmp"], 1, "{v}");
    // Nobody but this stream's FFmpeg may publish it.
    let r = hook(
        "/hooks/on_publish",
        &[
            ("app", "dss"),
            ("name", "cam-b"),
            ("clientid", "5"),
            ("token", "guess"),
        ],
    );
    assert_eq!(r.status, 403);
    // Client 41 never existed in nginx and its on_play_done never comes:
    // /stat reconciliation drops it (after the resync grace) and the
    // stream stops.
    host.wait_stream(
        "cam-b",
        "the phantom viewer dropped",
        Duration::from_secs(30),
        |v| v["viewers"]["rtmp"] == 0 && v["state"] == "idle",
    );
}

#[test]
fn control_routes_and_admin_actions() {
    let _g = serial();
    let mut s = setup(1);
    s.set("security", "api_token = \"s3cret\"");
    let host = s.start();
    ready(&host);
    // /control needs the token, even from the host's own machine (nginx
    // exec_* lines pass it in the query): FFmpeg following a camera's
    // redirect comes from there too.
    assert_eq!(host.get_public("/control/cam-a/start").status, 401);
    assert_eq!(
        host.get_public("/control/cam-a/start?token=wrong").status,
        401
    );
    // The original's semantics: start is a viewer joining, stop a viewer
    // leaving; FFmpeg stops after the last one, after the grace period.
    assert_eq!(host.get("/control/cam-a/start?token=s3cret").status, 200);
    assert_eq!(host.post("/control/cam-a/start?token=s3cret").status, 200);
    let v = host.wait_stream("cam-a", "live", T, |v| v["state"] == "live");
    assert_eq!(v["viewers"]["http"], 2, "{v}");
    assert_eq!(v["pinned"], false);
    let pid = v["pid"].clone();
    assert_eq!(host.get("/control/cam-a/stop?token=s3cret").status, 200);
    // One viewer is left: the stream stays live, same FFmpeg, past the
    // grace period (1 s).
    host.wait_stream("cam-a", "one viewer", T, |v| v["viewers"]["http"] == 1);
    std::thread::sleep(Duration::from_secs(3));
    let v = host.stream("cam-a");
    assert_eq!((v["state"].clone(), v["pid"].clone()), ("live".into(), pid));
    assert_eq!(host.get("/control/cam-a/stop?token=s3cret").status, 200);
    host.wait_stream("cam-a", "idle", T, |v| v["state"] == "idle");
    // A stop without a viewer does not go below zero.
    assert_eq!(host.get("/control/cam-a/stop?token=s3cret").status, 200);
    assert_eq!(host.get("/control/cam-a/http/x?token=s3cret").status, 400);
    assert_eq!(host.get("/control/cam-a/http/1?token=s3cret").status, 200);
    // A lease of 1 s is clamped to the minimum (5 s).
    host.wait_stream("cam-a", "an http lease", T, |v| v["viewers"]["http"] == 1);

    // Admin start/stop need the bearer token, from anywhere.
    assert_eq!(
        post_form(&format!("{}/api/streams/cam-b/start", host.base), &[]).status,
        401
    );
    let authed = |path: &str| post_bearer(&format!("{}{path}", host.base), "s3cret").status;
    assert_eq!(
        post_bearer(&format!("{}/api/streams/cam-b/start", host.base), "wrong").status,
        401
    );
    assert_eq!(authed("/api/streams/cam-b/start"), 200);
    let v = host.wait_stream("cam-b", "live", T, |v| v["state"] == "live");
    assert_eq!(v["pinned"], true);
    assert_eq!(authed("/api/streams/cam-b/stop"), 200);
    host.wait_stream("cam-b", "idle", T, |v| v["state"] == "idle");
    assert_eq!(authed("/api/streams/cam-zz/start"), 404);
}

#[test]
fn callbacks_from_other_addresses_are_forbidden() {
    let _g = serial();
    let mut s = Setup::new();
    s.set("security", "callback_allow = [\"192.0.2.1\"]");
    s.instance("cam", &test_pattern_instance(&["a"]));
    let host = s.start();
    ready(&host);
    let r = host.hook(
        &s,
        "on_play",
        &[("app", "dss"), ("name", "cam-a"), ("clientid", "1")],
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        host.get("/control/cam-a/start").status,
        403,
        "even with the token"
    );
    assert_eq!(host.stream("cam-a")["state"], "idle");
}

#[test]
fn callbacks_and_admin_actions_relayed_by_nginx_for_outsiders_are_forbidden() {
    let _g = serial();
    let mut s = setup(2);
    s.set("security", "max_streams_per_client = 1");
    let host = s.start();
    ready(&host);
    // What nginx's catch-all location sends for a client at 203.0.113.9.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let relayed = |path: &str| {
        let mut r = agent
            .post(&format!("{}{path}", host.base))
            .header("X-DSS-Proxied", "1")
            .header("X-Real-IP", "203.0.113.9")
            .send_form([("app", "dss"), ("name", "cam-a"), ("clientid", "1")])
            .expect("post");
        let _ = r.body_mut().read_to_string();
        r.status().as_u16()
    };
    let secret = s.callback_secret();
    assert_eq!(relayed(&format!("/hooks/{secret}/on_play")), 403);
    assert_eq!(relayed("/api/streams/cam-a/start"), 401, "needs the token");
    assert_eq!(relayed("/control/cam-a/start"), 403);
    assert_eq!(host.stream("cam-a")["state"], "idle");
    // Without the secret, even a direct local caller is refused.
    let fields = [("app", "dss"), ("name", "cam-a"), ("clientid", "1")];
    let wrong = "0".repeat(32);
    assert_eq!(
        post_form(&format!("{}/hooks/{wrong}/on_play", host.base), &fields).status,
        403
    );
    let r = post_form(&format!("{}/hooks/on_play", host.base), &fields);
    assert!(
        matches!(r.status, 404 | 405),
        "no route without a secret: {}",
        r.status
    );
    assert_eq!(host.stream("cam-a")["state"], "idle");

    // Through the real nginx: the public read-only API is served, without
    // FFmpeg's log or errors; hooks, metrics and admin actions are not,
    // even for a local client.
    let nginx = s.nginx_base();
    let r = get(&format!("{nginx}/api/streams"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json().as_array().map(Vec::len), Some(2));
    let public = get(&format!("{nginx}/api/streams/cam-a")).json();
    assert!(
        public.get("log").is_none() && public.get("last_error").is_none(),
        "{public}"
    );
    assert!(
        host.stream("cam-a").get("log").is_some(),
        "the token shows it"
    );
    // The host's own address alone does not.
    let local = host.get_public("/api/streams/cam-a").json();
    assert!(local.get("log").is_none(), "{local}");
    assert_eq!(
        post_form(&format!("{nginx}/hooks/{secret}/on_play"), &fields).status,
        403
    );
    assert_eq!(get(&format!("{nginx}/metrics")).status, 403);
    assert_eq!(get(&format!("{}/metrics", host.base)).status, 401);
    assert_eq!(host.get("/metrics").status, 200);
    assert_eq!(
        post_form(&format!("{nginx}/api/streams/cam-a/start"), &[]).status,
        401
    );
    let p = get(&format!("{nginx}/api/providers")).json();
    assert!(
        p[0].get("last_error").is_none() && p[0].get("file").is_none(),
        "{p}"
    );
    // A public client may hold viewer leases on a bounded number of
    // streams (max_streams_per_client, 1 here).
    assert_eq!(
        post_form(&format!("{nginx}/api/streams/cam-a/watch"), &[]).status,
        200
    );
    assert_eq!(
        post_form(&format!("{nginx}/api/streams/cam-a/watch"), &[]).status,
        200
    );
    assert_eq!(
        post_form(&format!("{nginx}/api/streams/cam-b/watch"), &[]).status,
        429
    );
    // A direct client claiming to be nginx relaying others is counted as
    // itself: its X-Real-IP is not believed without nginx's mark.
    let spoofed = |ip: &str, id: &str| {
        let mut r = agent
            .post(&format!("{}/api/streams/{id}/watch", host.base))
            .header("X-DSS-Proxied", "1")
            .header("X-Real-IP", ip)
            .send_empty()
            .expect("post");
        let _ = r.body_mut().read_to_string();
        r.status().as_u16()
    };
    assert_eq!(spoofed("198.51.100.1", "cam-a"), 200);
    assert_eq!(
        spoofed("198.51.100.2", "cam-b"),
        429,
        "one client, one stream"
    );

    // RTMP players are bounded per address too (the address nginx
    // reports for the player, as its callbacks carry it).
    let play = |event: &str, name: &str, client: &str| {
        host.hook(
            &s,
            event,
            &[
                ("app", "dss"),
                ("name", name),
                ("clientid", client),
                ("addr", "203.0.113.77"),
            ],
        )
        .status
    };
    assert_eq!(play("on_play", "cam-a", "501"), 200);
    assert_eq!(
        play("on_play", "cam-a", "502"),
        200,
        "the same stream again"
    );
    assert_eq!(play("on_play", "cam-b", "503"), 429, "a second stream");
    assert_eq!(play("on_play_done", "cam-a", "501"), 200);
    assert_eq!(play("on_play_done", "cam-a", "502"), 200);
    assert_eq!(
        play("on_play", "cam-b", "504"),
        200,
        "once it left the first"
    );
}

#[test]
fn a_stalled_source_is_detected_from_ffmpeg_progress_and_restarted() {
    let _g = serial();
    // Six seconds of real MPEG-TS, then a connection that stays open and
    // silent: FFmpeg publishes, then stops making progress without exiting.
    let scratch = dss_e2e::scratch_dir();
    let ts = scratch.path().join("six-seconds.ts");
    let made = std::process::Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=15",
            "-t",
            "2",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "15",
            "-f",
            "mpegts",
        ])
        .arg(&ts)
        .status()
        .unwrap();
    assert!(made.success());
    let body = std::fs::read(&ts).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut held = Vec::new();
        for conn in listener.incoming().flatten().take(10) {
            let mut conn = conn;
            let mut buf = [0u8; 2048];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: video/mp2t\r\n\r\n");
            let _ = conn.write_all(&body);
            held.push(conn);
        }
    });
    let mut s = Setup::new();
    s.with_nginx(30);
    s.set("ffmpeg", "stale_seconds = 3");
    s.set("ffmpeg", "backoff_initial_ms = 500");
    s.instance(
        "cam",
        &format!(
            "module = \"static-list\"\nallow_sources = [\"{addr}\"]\nallow_private = true\ninput_options = [\"-analyzeduration\", \"1000000\", \"-re\"]\noutput_options = [\"-c:v\", \"libx264\", \"-preset\", \"ultrafast\", \"-g\", \"15\"]\n[config]\nstreams = [{{ key = \"stall\", source = \"http://{addr}/live.ts\" }}]\n"
        ),
    );
    let host = s.start();
    ready(&host);
    assert_eq!(
        host.post("/api/streams/cam-stall/watch?timeout=120").status,
        200
    );
    let first = host.wait_stream("cam-stall", "live", T, |v| v["state"] == "live")["pid"].clone();
    let v = host.wait_stream("cam-stall", "the stall detected", T, |v| {
        v["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("no progress"))
    });
    assert!(v["failures"].as_u64() >= Some(1), "{v}");
    host.wait_stream("cam-stall", "a new FFmpeg", T, |v| {
        v["pid"].is_u64() && v["pid"] != first
    });
}

#[test]
fn a_killed_nginx_is_restarted_and_serves_again() {
    let _g = serial();
    let s = setup(2);
    let host = s.start();
    ready(&host);
    let first = s.nginx_pid().expect("nginx pid");
    let _ = std::process::Command::new("kill")
        .args(["-9", &first.to_string()])
        .status();
    wait_for("a new nginx", T, || {
        s.nginx_pid().filter(|&p| p != first && process_alive(p))
    });
    let viewer = Viewer::start(&s.rtmp_url("cam-a"));
    viewer.wait_frames(0, 5, T);
}

#[test]
fn a_stale_playlist_from_an_earlier_run_is_not_served_to_the_first_viewer() {
    let _g = serial();
    let s = setup(2);
    // What an earlier run may leave behind after a crash.
    let dir = s.dir.path().join("var/run/hls/cam-b");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("index.m3u8"),
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#STALE\n#EXTINF:1.0,\nold-1.ts\n",
    )
    .unwrap();
    // nginx's workers (not root) made the directory the first time.
    use std::os::unix::fs::PermissionsExt;
    for d in [dir.parent().unwrap(), dir.as_path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    std::fs::set_permissions(
        dir.join("index.m3u8"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let host = s.start();
    ready(&host);
    let r = get(&format!("{}/hls/cam-b/index.m3u8", s.nginx_base()));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        !r.body.contains("#STALE") && r.body.contains(".ts"),
        "the first request waited for this run's playlist: {}",
        r.body
    );
}

#[test]
fn a_failing_stat_is_reported_once_and_statuses_of_removed_streams_are_forgotten() {
    let _g = serial();
    // No nginx: /stat fails every second.
    let mut s = Setup::new();
    s.set("ffmpeg", "stat_interval_seconds = 1");
    s.instance("cam", &test_pattern_instance(&["a", "b"]));
    let host = s.start();
    ready(&host);
    assert_eq!(host.post("/api/streams/cam-b/watch?timeout=5").status, 200);
    wait_for("cam-b in the metrics", T, || {
        host.get("/metrics")
            .body
            .contains("stream=\"cam-b\"")
            .then_some(())
    });
    let warning = "viewer reconciliation with nginx /stat failed";
    host.wait_log(warning, T);
    // The listing drops cam-b: its status and its series go too.
    s.instance("cam", &test_pattern_instance(&["a"]));
    assert_eq!(host.health()["ffmpeg"]["tracked_streams"], 1);
    wait_for("cam-b forgotten", T, || {
        let m = host.get("/metrics").body;
        let tracked = host.health()["ffmpeg"]["tracked_streams"].as_u64();
        (!m.contains("stream=\"cam-b\"") && tracked == Some(0)).then_some(())
    });
    assert_eq!(
        host.log_text().matches(warning).count(),
        1,
        "said once per outage, not every second"
    );
}

/// nginx-rtmp appends a player's query arguments after its own fields: a
/// viewer asking for `?flashver=DSS-record` (the recorder's flash version)
/// and another client id is still a viewer, counted under nginx's id.
#[test]
fn a_viewer_cannot_override_nginx_s_callback_fields() {
    let _g = serial();
    let s = setup(2);
    let host = s.start();
    ready(&host);
    let url = format!(
        "{}?flashver=DSS-record&clientid=999999&addr=127.0.0.1&name=cam-b",
        s.rtmp_url("cam-a")
    );
    let viewer = Viewer::start(&url);
    let v = host.wait_stream("cam-a", "live with its viewer", T, |v| {
        v["state"] == "live" && v["viewers"]["rtmp"] == 1
    });
    assert_eq!(v["viewers"]["rtmp"], 1, "{v}");
    viewer.wait_frames(0, 10, T);
    assert_eq!(host.stream("cam-b")["state"], "idle", "name is nginx's");
}
