//! Trust boundaries: nothing on the media plane (FFmpeg following a
//! camera's redirect, a provider's HTTP requests) reaches the private
//! surface or nginx's own endpoints, whatever address it comes from; the
//! files that hold secrets are private.

use dss_e2e::timeout::T30 as T;
use dss_e2e::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn a_camera_s_redirect_followed_by_ffmpeg_never_reaches_an_admin_action() {
    let mut s = Setup::new();
    s.with_nginx(2);
    s.instance("cam", &test_pattern_instance(&["b"]));
    // A camera host the instance allows, answering with redirects to the
    // host's private routes and to nginx's own.
    let evil = FileServer::start(vec![
        (
            "/control",
            Answer::Redirect(
                302,
                format!("http://127.0.0.1:{}/control/cam-b/start", s.port),
            ),
        ),
        (
            "/stat",
            Answer::Redirect(302, format!("http://127.0.0.1:{}/stat", s.nginx_http)),
        ),
    ]);
    s.instance(
        "evil",
        &format!(
            "module = \"static-list\"\nallow_sources = [\"127.0.0.1\"]\nallow_private = true\n\
             [config]\ninput_options = [\"-f\", \"mpegts\"]\noutput_options = [\"-c\", \"copy\"]\n\
             streams = [{{ key = \"control\", source = \"http://{a}/control\" }}, \
                        {{ key = \"stat\", source = \"http://{a}/stat\" }}]\n",
            a = evil.addr
        ),
    );
    let host = s.start();
    for id in ["evil-control", "evil-stat"] {
        let r = host.post(&format!("/api/streams/{id}/watch"));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // FFmpeg followed the redirects and failed on what it found.
    wait_for("both redirects followed", T, || {
        (evil.hits() >= 2).then_some(())
    });
    for id in ["evil-control", "evil-stat"] {
        host.wait_stream(id, "failed", T, |v| v["failures"].as_u64() >= Some(1));
    }
    let b = host.stream("cam-b");
    assert_eq!(b["state"], "idle", "started by a redirect: {b}");
    assert_eq!(b["viewers"]["http"], 0, "{b}");
    // nginx's statistics are only under the secret.
    assert_eq!(get(&format!("{}/stat", s.nginx_base())).status, 404);
    let stat = get(&format!("{}/{}/stat", s.nginx_base(), s.callback_secret()));
    assert_eq!(stat.status, 200);
    assert!(stat.body.contains("<rtmp>"));
}

#[test]
fn a_provider_s_http_requests_to_the_host_get_the_public_surface() {
    let mut s = Setup::new();
    s.instance("cam", &test_pattern_instance(&["b"]));
    // The demo's way: a feed served by the host itself, allowed.
    s.instance(
        "feed",
        &format!(
            "module = \"traffic-feed\"\nallow_hosts = [\"127.0.0.1:{port}\"]\n[config]\n\
             url = \"http://127.0.0.1:{port}/control/cam-b/start\"\nformat = \"json\"\n\
             source_template = \"rtsp://cams.example/{{key}}\"\n",
            port = s.port
        ),
    );
    s.set("ffmpeg", "grace_seconds = 2");
    let host = s.start();
    let feed = host.provider_settled("feed");
    assert_eq!(feed["state"], "failed", "{feed}");
    assert!(feed["last_error"].to_string().contains("401"), "{feed}");
    assert_eq!(host.stream("cam-b")["state"], "idle");
}

#[test]
fn files_holding_secrets_are_private() {
    let mut s = Setup::new();
    s.with_nginx(2);
    s.instance("cam", &test_pattern_instance(&["b"]));
    let mut host = s.start();
    let mode = |rel: &str| {
        std::fs::metadata(s.dir.path().join(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("var/callback.secret"), 0o600);
    assert_eq!(
        mode("var/run/nginx.conf"),
        0o600,
        "it holds the callback secret"
    );
    assert_eq!(mode("var/cache/modules"), 0o700);
    assert_eq!(
        mode("var/dss.sqlite"),
        0o600,
        "sources with camera credentials"
    );
    assert_eq!(mode("var/log"), 0o700, "clients' addresses");
    // What cameras saw: when FFmpeg runs as the media user, that user
    // passes through to the recordings given to it, and lists nothing.
    let record = if is_root() { 0o711 } else { 0o700 };
    assert_eq!(mode("var/record"), record, "what cameras saw");
    // nginx's workers pass through to what they serve, and list nothing.
    assert_eq!(mode("var"), 0o711);
    assert_eq!(mode("var/run"), 0o711);
    assert_eq!(mode("var/thumb"), 0o755, "served by nginx");
    // A part made too wide meanwhile is narrowed at the next start.
    std::fs::set_permissions(
        s.dir.path().join("var/record"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    host.crash();
    let _again = s.start();
    assert_eq!(mode("var/record"), record);
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The uid of user `name`.
fn uid_of_user(name: &str) -> u32 {
    let out = Command::new("id").args(["-u", name]).output().expect("id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no user {name}: scripts/setup.sh makes it"))
}

/// The real uid of process `pid`, from `/proc/PID/status`.
fn uid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Processes whose parent is `parent` and whose command name is `comm`.
fn children(parent: u32, comm: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `PID (COMM) STATE PPID ...`; COMM may hold spaces and parens.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        let ppid = stat[close + 1..].split_whitespace().nth(1);
        if name == comm && ppid == Some(&parent.to_string()) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn no_ffmpeg_and_no_nginx_worker_runs_as_root() {
    if !is_root() {
        eprintln!("skipped: the host does not run as root here, so neither does FFmpeg");
        return;
    }
    let dss = uid_of_user("dss");
    let mut s = Setup::new();
    s.with_nginx(2);
    for l in [
        "start_after = 0",
        "interval = 2",
        "live_interval = 2",
        "timeout = 10",
    ] {
        s.set("thumbnails", l);
    }
    s.instance(
        "cam",
        &format!(
            "thumbnails = \"all\"\n{}[record]\ninterval = 5\nstreams = [\"a\"]\n",
            test_pattern_instance(&["a", "b"])
        ),
    );
    s.instance("phones", "module = \"mobile-ts\"\n[config]\nphones = []\n");
    let host = s.start();
    let conf = std::fs::read_to_string(s.dir.path().join("var/run/nginx.conf")).unwrap();
    assert!(
        conf.contains("\nuser dss "),
        "nginx's workers as dss:\n{conf}"
    );

    // A stream watched, a stream recorded, a phone, thumbnails.
    let viewer = Viewer::start(&s.rtmp_url("cam-b"));
    viewer.wait_frames(0, 10, T);
    let state = s.dir.path().join("phone.json").display().to_string();
    let phone = Sender::start(&[
        "test",
        "--server",
        &format!("127.0.0.1:{}", s.mobile_port),
        "--state",
        &state,
        "--duration",
        "60",
    ]);
    let key = phone.wait_id(T);
    host.wait_stream(&format!("phones-{key}"), "the phone live", T, |v| {
        v["state"] == "live"
    });
    let host_pid = host.child.id();
    // cam-a, its recorder, cam-b and the phone (thumbnails come and go).
    let ffmpegs = wait_for("four FFmpeg of the host", T, || {
        let kids = children(host_pid, "ffmpeg");
        (kids.len() >= 4).then_some(kids)
    });
    for pid in &ffmpegs {
        assert_eq!(uid_of(*pid), Some(dss), "FFmpeg {pid} runs as dss");
    }
    let nginx = s.nginx_pid().expect("nginx pid");
    let workers = children(nginx, "nginx");
    assert!(!workers.is_empty(), "nginx has a worker");
    for pid in &workers {
        assert_eq!(uid_of(*pid), Some(dss), "nginx worker {pid} runs as dss");
    }
    // What FFmpeg made is dss's; where it made it is dss's alone.
    use std::os::unix::fs::MetadataExt;
    let thumb = s.dir.path().join("var/thumb/cam-a.jpg");
    let made = wait_for("a thumbnail of cam-a", T, || std::fs::metadata(&thumb).ok());
    assert_eq!(made.uid(), dss, "made by FFmpeg as dss");
    let rec = std::fs::metadata(s.dir.path().join("var/record/cam-a")).unwrap();
    assert_eq!((rec.uid(), rec.mode() & 0o777), (dss, 0o700));
    let cwd = std::fs::metadata(s.dir.path().join("var/run/ffmpeg-cwd")).unwrap();
    assert_eq!((cwd.uid(), cwd.mode() & 0o777), (dss, 0o700));
    // Nothing else of the state directory is dss's.
    for private in ["var/dss.sqlite", "var/callback.secret", "var/log"] {
        let m = std::fs::metadata(s.dir.path().join(private)).unwrap();
        assert_eq!(m.uid(), 0, "{private} stays root's");
    }
    drop(phone);
}

#[test]
fn a_missing_media_user_is_refused_at_start_with_the_fix() {
    if !is_root() {
        eprintln!("skipped: run_as applies to a host running as root");
        return;
    }
    let mut s = Setup::new();
    s.set("security", "run_as = \"dss-no-such-user\"");
    let err = s.serve_refused();
    assert!(
        err.contains("\"dss-no-such-user\"") && err.contains("useradd") && err.contains("run_as"),
        "{err}"
    );
}
