//! `dss doctor` on the real binary: a sound configuration passes (exit
//! 0), and each thing a newcomer gets wrong is one FAIL line with its fix
//! and exit 1. (The checks' own unit tests, in `host/src/doctor/`, cover
//! an old FFmpeg, a missing protocol, modes and ownership.)

use dss_e2e::*;
use std::net::TcpListener;
use std::process::Command;

/// Runs `dss doctor` on `s`'s configuration: (exit 0, stdout).
fn doctor(s: &Setup) -> (bool, String) {
    let config = s.write_config();
    let out = Command::new(dss_bin())
        .args(["-c", config.to_str().expect("utf-8"), "doctor"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run dss doctor");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    (out.status.success(), stdout)
}

/// The FAIL lines of a report.
fn failures(report: &str) -> Vec<&str> {
    report.lines().filter(|l| l.starts_with("FAIL")).collect()
}

fn sound() -> Setup {
    let mut s = Setup::new();
    s.with_nginx(30);
    s.instance("demo", &test_pattern_instance(&["bars"]));
    s
}

#[test]
fn a_sound_configuration_passes_and_names_what_it_checked() {
    let s = sound();
    let (ok, out) = doctor(&s);
    assert!(ok, "{out}");
    assert!(failures(&out).is_empty(), "{out}");
    for line in [
        "ok    nginx: ",
        "ok    nginx RTMP module: ",
        "ok    ffmpeg: ",
        "ok    state directory: ",
        "ok    store: SQLite",
        "ok    provider demo: static-list 0.1.0: 1 streams listed",
        "formats flv, lavfi",
    ] {
        assert!(out.contains(line), "no {line:?} in\n{out}");
    }
    assert!(out.ends_with("0 failures, 0 warnings\n"), "{out}");
}

#[test]
fn each_misconfiguration_is_a_failure_with_its_fix() {
    // Each case: what it changes, and what its FAIL line says.
    type Change = Box<dyn Fn(&mut Setup)>;
    let held = TcpListener::bind("127.0.0.1:0").expect("bind");
    let held_port = held.local_addr().expect("addr").port();
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "no nginx",
            Box::new(|s| {
                s.set("nginx", "binary = \"/nonexistent/nginx\"");
            }),
            "FAIL  nginx: /nonexistent/nginx not found — fix: apt install nginx",
        ),
        (
            "no RTMP module",
            Box::new(|s| {
                s.set("nginx", "rtmp_module = \"/nonexistent/ngx_rtmp_module.so\"");
            }),
            "FAIL  nginx RTMP module: /nonexistent/ngx_rtmp_module.so not found — fix: apt install libnginx-mod-rtmp",
        ),
        (
            "no FFmpeg",
            Box::new(|s| {
                s.set("ffmpeg", "binary = \"/nonexistent/ffmpeg\"");
            }),
            "FAIL  ffmpeg: cannot run /nonexistent/ffmpeg",
        ),
        (
            "a port in use",
            Box::new(move |s| {
                let nginx = s.sections.get_mut("nginx").expect("[nginx]");
                nginx.retain(|l| !l.starts_with("rtmp_port"));
                nginx.push(format!("rtmp_port = {held_port}"));
            }),
            &*Box::leak(
                format!("FAIL  port 127.0.0.1:{held_port}: in use ([nginx] rtmp_port)")
                    .into_boxed_str(),
            ),
        ),
        (
            "a state directory that cannot be made",
            Box::new(|s| {
                std::fs::write(s.dir.path().join("file"), b"").expect("write");
                s.set("", "state_dir = \"file/var\"");
            }),
            "FAIL  state directory: ",
        ),
        (
            "no instances directory",
            Box::new(|s| {
                std::fs::remove_dir_all(s.dir.path().join("providers.d")).expect("rm");
            }),
            "FAIL  instances: ",
        ),
        (
            "an unreachable store",
            Box::new(|s| {
                s.set("store", "url = \"mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=1000\"");
            }),
            "FAIL  store: ",
        ),
        (
            "an instance of a missing module",
            Box::new(|s| {
                s.instance("cams", "module = \"no-such-module\"\n");
            }),
            "FAIL  provider cams: module \"no-such-module\" not found — fix: put no-such-module.wasm in",
        ),
        (
            "an invalid instance file",
            Box::new(|s| {
                s.instance("typo", "modul = \"static-list\"\n");
            }),
            "FAIL  instance ",
        ),
        (
            "a provider that fails its check",
            Box::new(|s| {
                s.install_module("hostile", &fixture("hostile"));
                s.instance("spin", "module = \"hostile\"\n[config]\nmode = \"loop\"\n");
            }),
            "FAIL  provider spin: ",
        ),
        (
            "a stream the FFmpeg policy refuses",
            Box::new(|s| {
                s.instance(
                    "cams",
                    "module = \"static-list\"\n[config]\nstreams = [{ key = \"a\", source = \"file:///etc/passwd\" }]\n",
                );
            }),
            "FAIL  provider cams: static-list 0.1.0: the FFmpeg policy refuses 1 of 1 streams",
        ),
    ];
    for (what, change, expected) in cases {
        let mut s = sound();
        change(&mut s);
        let (ok, out) = doctor(&s);
        assert!(!ok, "{what}: doctor passed:\n{out}");
        let failed = failures(&out);
        assert_eq!(failed.len(), 1, "{what}: one failure expected:\n{out}");
        assert!(
            failed[0].starts_with(expected),
            "{what}: {:?} is not {expected:?}",
            failed[0]
        );
        assert!(
            failed[0].contains(" — fix: "),
            "{what}: no fix: {}",
            failed[0]
        );
    }
    drop(held);
}

#[test]
fn a_running_host_holds_its_own_ports() {
    let s = sound();
    let mut host = s.start();
    let (ok, out) = doctor(&s);
    assert!(ok, "{out}");
    assert!(out.contains("ok    ports: a DSS answers on"), "{out}");
    host.stop();
}
