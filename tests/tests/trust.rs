//! Trust boundaries: nothing on the media plane (FFmpeg following a
//! camera's redirect, a provider's HTTP requests) reaches the private
//! surface or nginx's own endpoints, whatever address it comes from; the
//! files that hold secrets are private.

use dss_e2e::*;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

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
    assert_eq!(mode("var/record"), 0o700, "what cameras saw");
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
    assert_eq!(mode("var/record"), 0o700);
}
