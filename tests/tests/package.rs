//! The Debian package, as an operator gets it: built by
//! `scripts/build-deb.sh` from this build, checked by lintian and
//! `systemd-analyze verify`, extracted into a temporary root
//! (`dpkg-deb -x`, no dpkg database touched), and its `dss` run with its
//! packaged `/etc/dss/dss.toml` (paths rewritten under that root, ports
//! made free ones) until the demo is ready and a viewer gets frames.

use dss_e2e::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Runs `cmd`: (success, stdout, stderr).
fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether `tool` is on PATH; in CI it must be (the test command installs
/// it), elsewhere its check is skipped with a note.
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").is_err(),
            "{tool} is missing in CI: scripts/setup.sh --tests installs it"
        );
        eprintln!("skipped: {tool} is not installed (apt install {tool})");
    }
    found
}

/// Builds the package; its path.
fn build() -> PathBuf {
    let repo = repo_root();
    let (ok, out, err) = run(Command::new(repo.join("scripts/build-deb.sh")).current_dir(&repo));
    assert!(ok, "scripts/build-deb.sh failed:\n{out}{err}");
    let deb = out.lines().last().expect("the package's path").trim();
    let deb = repo.join(deb);
    assert!(deb.is_file(), "{} is not there:\n{out}{err}", deb.display());
    deb
}

/// The packaged configuration with its paths under `root`.
fn rewrite(root: &Path) -> PathBuf {
    let file = root.join("etc/dss/dss.toml");
    let mut text = std::fs::read_to_string(&file).expect("the packaged dss.toml");
    for prefix in ["/etc/dss", "/var/lib/dss", "/usr/lib/dss", "/usr/share/dss"] {
        let under = format!("{}{prefix}", root.display());
        text = text.replace(&format!("\"{prefix}"), &format!("\"{under}"));
    }
    assert!(
        !text.contains("\"/etc/") && !text.contains("\"/var/") && !text.contains("\"/usr/"),
        "a path of the packaged dss.toml is not under the package's prefixes:\n{text}"
    );
    std::fs::write(&file, text).expect("write");
    file
}

/// Kills the host on drop (a failed assertion leaves nothing running).
struct Serving(Child, PathBuf);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

#[test]
fn the_package_builds_clean_and_its_tree_serves_the_demo() {
    let deb = build();
    let size = std::fs::metadata(&deb).expect("deb").len();
    eprintln!("package: {} ({:.1} MB)", deb.display(), size as f64 / 1e6);

    // What the control file promises.
    let (ok, fields, err) = run(Command::new("dpkg-deb").args(["-f"]).arg(&deb).args([
        "Package",
        "Depends",
        "Architecture",
    ]));
    assert!(ok, "{err}");
    assert!(fields.contains("Package: dss"), "{fields}");
    for dep in ["nginx", "libnginx-mod-rtmp", "ffmpeg"] {
        assert!(
            fields
                .lines()
                .filter(|l| l.starts_with("Depends:"))
                .any(|l| l.split([' ', ',']).any(|w| w == dep)),
            "Depends lacks {dep}: {fields}"
        );
    }
    let ctrl = tempfile::tempdir().expect("tempdir");
    let (ok, _, err) = run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(ctrl.path()));
    assert!(ok, "{err}");
    let conffiles = std::fs::read_to_string(ctrl.path().join("conffiles")).expect("conffiles");
    for c in ["/etc/dss/dss.toml", "/etc/dss/providers.d/demo.toml"] {
        assert!(
            conffiles.lines().any(|l| l == c),
            "{c} is no conffile:\n{conffiles}"
        );
    }
    assert!(ctrl.path().join("postinst").is_file());

    // lintian: no errors (warnings are printed for the reader).
    if have("lintian") {
        let (ok, out, err) = run(Command::new("lintian")
            .args(["--fail-on", "error", "--tag-display-limit", "0"])
            .arg(&deb));
        eprintln!("lintian:\n{out}{err}");
        assert!(ok, "lintian found errors:\n{out}{err}");
        assert!(!out.lines().any(|l| l.starts_with("E: ")), "{out}");
    }

    // The tree.
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();
    let (ok, _, err) = run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(root));
    assert!(ok, "{err}");
    for f in [
        "usr/bin/dss",
        "usr/lib/dss/providers/static-list.wasm",
        "usr/lib/dss/providers/traffic-feed.wasm",
        "usr/lib/dss/providers/mobile-ts.wasm",
        "usr/lib/dss/providers/geojson-feed.wasm",
        "usr/share/dss/www/index.html",
        "usr/share/dss/nginx/nginx.conf",
        "etc/dss/dss.toml",
        "etc/dss/providers.d/demo.toml",
        "lib/systemd/system/dss.service",
        "usr/share/doc/dss/copyright",
    ] {
        assert!(root.join(f).exists(), "the package has no /{f}");
    }

    // The unit. `verify` checks that ExecStart's binary exists (pointed at
    // the extracted one: `--root` would want a whole system in the root);
    // it exits 0 on warnings, so its stderr must be empty.
    if have("systemd-analyze") {
        let unit =
            std::fs::read_to_string(root.join("lib/systemd/system/dss.service")).expect("the unit");
        let unit = unit.replace(
            "ExecStart=/usr/bin/dss ",
            &format!("ExecStart={}/usr/bin/dss ", root.display()),
        );
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("dss.service"), unit).expect("write");
        let (ok, out, err) = run(Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(dir.path().join("dss.service")));
        assert!(
            ok && err.trim().is_empty(),
            "systemd-analyze verify:\n{out}{err}"
        );
    }

    // Its dss, on its configuration.
    let config = rewrite(root);
    std::fs::create_dir_all(root.join("var/lib/dss/providers")).expect("mkdir");
    let dss = root.join("usr/bin/dss");
    let (port, http, rtmp, mobile) = (free_port(), free_port(), free_port(), free_port());
    let env = [
        ("DSS_LISTEN", format!("\"127.0.0.1:{port}\"")),
        ("DSS_NGINX__BIND", "\"127.0.0.1\"".to_string()),
        ("DSS_NGINX__HTTP_PORT", http.to_string()),
        ("DSS_NGINX__RTMP_PORT", rtmp.to_string()),
        ("DSS_MOBILE__LISTEN", format!("\"127.0.0.1:{mobile}\"")),
    ];
    let with_env = |cmd: &mut Command| {
        cmd.env_remove("DSS_CONFIG").env("RUST_LOG", "info");
        for (k, v) in &env {
            cmd.env(k, v);
        }
    };
    // dss doctor passes on the packaged configuration.
    let mut doctor = Command::new(&dss);
    doctor.arg("-c").arg(&config).arg("doctor");
    with_env(&mut doctor);
    let (ok, out, err) = run(&mut doctor);
    assert!(ok, "dss doctor on the package:\n{out}{err}");
    assert!(out.contains("ok    shipped modules: "), "{out}");

    let log = root.join("dss.log");
    let mut serve = Command::new(&dss);
    serve
        .arg("-c")
        .arg(&config)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"));
    with_env(&mut serve);
    let host = Serving(serve.spawn().expect("start the packaged dss"), log.clone());
    let base = format!("http://127.0.0.1:{port}");
    let ready = std::panic::catch_unwind(|| {
        wait_for(
            "the packaged host to be ready",
            Duration::from_secs(120),
            || {
                // `get` panics on a refused connection: the host is not up yet.
                std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
                (get(&format!("{base}/readyz")).status == 200).then_some(())
            },
        )
    });
    if let Err(e) = ready {
        eprintln!("{}", std::fs::read_to_string(&host.1).unwrap_or_default());
        std::panic::resume_unwind(e);
    }
    // The page, from /usr/share/dss/www.
    assert_eq!(get(&format!("{base}/")).status, 200);
    let viewer = Viewer::start(&format!("rtmp://127.0.0.1:{rtmp}/dss/demo-bars"));
    let frames = std::panic::catch_unwind(|| viewer.wait_frames(0, 25, Duration::from_secs(60)));
    if let Err(e) = frames {
        eprintln!("{}", std::fs::read_to_string(&host.1).unwrap_or_default());
        std::panic::resume_unwind(e);
    }
    drop(viewer);
    // Everything the host wrote is under the state directory.
    assert!(root.join("var/lib/dss/dss.sqlite").is_file());
    drop(host);
}
