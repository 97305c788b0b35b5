//! The web page in a real browser: Debian's `chromium`, driven by
//! `playwright-core` (`tests/browser/page.test.mjs`), against a host
//! running the shipped demo and a phone from `dss mobile-send`, through
//! nginx's public port. The script checks what a visitor sees (markers,
//! playing on click, live state changes, a moving phone, no console
//! errors, nothing fetched from outside) and saves screenshots under
//! `target/browser/`.

use dss_e2e::timeout::T30 as T;
use dss_e2e::*;
use std::process::Command;

#[test]
fn the_page_shows_plays_and_follows_the_demo_in_a_real_browser() {
    let Some(browser) = browser_dir() else {
        return;
    };
    let mut s = Setup::new();
    s.with_nginx(5);
    s.set("web", "center = [-22.93, -43.2]");
    s.set("web", "zoom = 12");
    s.demo();
    let host = s.start();
    for p in ["demo", "traffic", "phones"] {
        assert_eq!(host.provider_settled(p)["state"], "ready", "{p}");
    }
    // The map's settings; no tiles unless configured (nothing from outside).
    let web = host.get("/api/web").json();
    assert_eq!(web["center"], serde_json::json!([-22.93, -43.2]), "{web}");
    assert_eq!(
        (web["zoom"].clone(), web["tiles"].clone()),
        (12.into(), serde_json::Value::Null)
    );
    let mut phone = s.phone(
        300,
        "-22.90,-43.20;-22.91,-43.21;-22.92,-43.22;-22.93,-43.21",
    );
    let id = format!("phones-{}", phone.wait_id(T));
    host.wait_stream(&id, "the phone live", T, |v| v["state"] == "live");

    // As the README says to open it (the host's port; players fetch HLS
    // from nginx's), and through nginx's public port.
    for (page, out) in [
        (format!("http://127.0.0.1:{}/", s.port), "target/browser"),
        (format!("{}/", s.nginx_base()), "target/browser/public"),
    ] {
        let out = repo_root().join(out);
        std::fs::create_dir_all(&out).expect("target/browser");
        let status = Command::new("node")
            .arg(browser.join("page.test.mjs"))
            .args(["--page", &page])
            .args(["--api", &format!("http://127.0.0.1:{}", s.port)])
            .env("DSS_API_TOKEN", &host.token)
            .arg("--out")
            .arg(&out)
            .args(["--phone", &id])
            .status()
            .expect("node");
        assert!(
            status.success(),
            "the browser checks of {page} failed: {status}"
        );
    }
    phone.kill();
}
