//! `dss serve` under a service manager, as systemd runs it (`Type=notify`,
//! `WatchdogSec`, `ExecReload` by SIGHUP): the test plays systemd's side of
//! the notification socket (no systemd runs PID 1 here).

use dss_e2e::*;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

/// The next datagram on `socket` (bounded wait).
fn next(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notification in time");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Datagrams until one contains `needle`; all of them.
fn until(socket: &UnixDatagram, needle: &str) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        let m = next(socket);
        let done = m.contains(needle);
        got.push(m);
        if done {
            return got;
        }
    }
}

#[test]
fn ready_when_ready_a_watchdog_a_reload_that_keeps_serving_and_a_stop() {
    let mut s = Setup::new();
    s.with_nginx(30);
    s.instance("demo", &test_pattern_instance(&["bars"]));
    let path = s.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notification socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    s.env
        .push(("NOTIFY_SOCKET".into(), path.display().to_string()));
    // 1 s: the host says WATCHDOG=1 every half second.
    s.env.push(("WATCHDOG_USEC".into(), "1000000".into()));
    let mut host = s.start_unready();
    let before = until(&socket, "READY=1");
    // READY only once /readyz says so (the test's own look may come a
    // moment after the host's).
    assert_eq!(
        wait_for("/readyz 200", Duration::from_secs(5), || {
            (host.get("/readyz").status == 200).then_some(200)
        }),
        200
    );
    assert!(
        before
            .iter()
            .take(before.len() - 1)
            .all(|m| m.starts_with("STATUS=waiting for")),
        "{before:?}"
    );
    assert!(until(&socket, "WATCHDOG=1").len() <= 2);
    assert!(until(&socket, "WATCHDOG=1").len() <= 2);

    // The children did not inherit the socket.
    let nginx = s.nginx_pid().expect("nginx runs");
    let environ = std::fs::read(format!("/proc/{nginx}/environ")).expect("environ");
    assert!(
        !String::from_utf8_lossy(&environ).contains("NOTIFY_SOCKET"),
        "nginx inherited NOTIFY_SOCKET"
    );

    // SIGHUP (systemctl reload): the host keeps serving and says what a
    // reload does.
    let status = Command::new("kill")
        .args(["-HUP", &host.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    host.wait_log(
        "SIGHUP: the modules and instances directories are re-scanned now",
        Duration::from_secs(10),
    );
    assert!(
        host.child.try_wait().expect("wait").is_none(),
        "SIGHUP ended the host"
    );
    assert_eq!(host.get("/readyz").status, 200);

    assert_eq!(host.stream("demo-bars")["state"], "idle");

    host.stop();
    let after = until(&socket, "STOPPING=1");
    assert!(
        after.last().is_some_and(|m| m.starts_with("STOPPING=1")),
        "{after:?}"
    );
}

#[test]
fn modules_of_the_shipped_directory_load_and_the_operators_take_precedence() {
    let mut s = Setup::empty();
    let shipped = s.dir.path().join("shipped");
    std::fs::create_dir(&shipped).expect("mkdir");
    std::fs::copy(module("static-list"), shipped.join("static-list.wasm")).expect("copy");
    s.set(
        "providers",
        &format!("shipped_modules_dir = {:?}", shipped.display().to_string()),
    );
    s.instance(
        "demo",
        "module = \"static-list\"\n[config]\nstreams = [{ key = \"bars\", source = \"rtsp://127.0.0.1/x\" }]\n",
    );
    let host = s.start();
    assert_eq!(host.provider_settled("demo")["state"], "ready");
    assert!(host.stream_ids().contains(&"demo-bars".to_string()));
    // A module of another name dropped into the shipped directory while
    // the host runs: watched like the operator's.
    s.instance(
        "feed",
        "module = \"mobile-ts\"\n[config]\nphones = [{ key = \"van\" }]\n",
    );
    std::fs::copy(module("mobile-ts"), shipped.join("mobile-ts.wasm")).expect("copy");
    wait_for(
        "the shipped module's instance",
        Duration::from_secs(30),
        || {
            host.stream_ids()
                .contains(&"feed-van".to_string())
                .then_some(())
        },
    );
    // The operator's module of the same name takes precedence: another
    // provider under the name static-list, whose init refuses the demo's
    // configuration, makes the instance fail though the shipped one is
    // sound.
    s.install_module("static-list", &module("traffic-feed"));
    let v = wait_for(
        "the operator's module to take precedence",
        Duration::from_secs(30),
        || {
            let v = host.get("/api/providers/demo").json();
            v["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("invalid-config"))
                .then_some(v)
        },
    );
    // Its earlier listing keeps serving meanwhile.
    assert!(host.stream_ids().contains(&"demo-bars".to_string()), "{v}");
}
