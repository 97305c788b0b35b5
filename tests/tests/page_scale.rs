//! The web page at 100,000 streams in a real browser (Debian's `chromium`,
//! driven by `playwright-core`: `tests/browser/scale.test.mjs`): one
//! `static-list` instance of 100,000 cameras scattered over a country-sized
//! area, the map opened on a view that holds a few hundred of them, through
//! nginx's public port. The script measures and checks the first paint
//! (≤ 2 s after navigation), that a pan within the subscribed box fetches
//! nothing and a pan away fetches only the new view (a box, a few hundred
//! to a few thousand streams, never the 100,000), that the page answers a
//! click at once, that zoomed out over the whole area it never subscribes
//! to it but draws the host's clusters (`/api/clusters`: under 200 KiB,
//! painted within 1 s, no task over 200 ms, counted again with a 304) and
//! lists a small box again once zoomed in, and prints the figures;
//! screenshots go to `target/browser/scale/`.

use dss_e2e::*;
use std::process::Command;

/// Cameras in the instance: `[providers] max_streams`, the most one
/// instance may list.
const STREAMS: usize = 100_000;
/// Where they are: a box of 30° by 15° (about Europe's middle, 2,300 km by
/// 1,700 km), uniformly, so that the page's first view (zoom 10, 1280x800
/// px: about 1.8° by 0.75°) holds about 290 and its padded box about 1,200.
const WEST: f64 = -5.0;
const SOUTH: f64 = 40.0;
const WIDTH: f64 = 30.0;
const HEIGHT: f64 = 15.0;
const CENTER: (f64, f64) = (47.5, 10.0);
const ZOOM: u32 = 10;

/// A `static-list` instance of `n` cameras at pseudo-random places (the
/// same every run). FFmpeg test patterns: nothing here plays them.
fn big_instance(n: usize) -> String {
    let mut t = String::with_capacity(n * 140);
    t.push_str(
        "module = \"static-list\"\n\
         [limits]\nmemory_mib = 256\ncall_timeout_ms = 10000\n\
         [config]\ninput_options = [\"-re\", \"-f\", \"lavfi\"]\n\
         output_options = [\"-c:v\", \"libx264\", \"-preset\", \"veryfast\"]\nstreams = [\n",
    );
    // A 64-bit LCG (Knuth's MMIX constants): deterministic, no dependency.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    for i in 0..n {
        let lon = WEST + next() * WIDTH;
        let lat = SOUTH + next() * HEIGHT;
        t.push_str(&format!(
            "  {{ key = \"cam{i}\", name = \"Camera {i}\", source = \"smptebars=size=320x240:rate=10\", lat = {lat:.5}, lon = {lon:.5} }},\n"
        ));
    }
    t.push_str("]\n");
    t
}

#[test]
fn the_page_fetches_and_draws_only_the_view_of_100000_streams() {
    let Some(browser) = browser_dir() else {
        return;
    };
    let mut s = Setup::new();
    s.with_nginx(5);
    s.set("web", &format!("center = [{}, {}]", CENTER.0, CENTER.1));
    s.set("web", &format!("zoom = {ZOOM}"));
    s.instance("big", &big_instance(STREAMS));
    // `start` waits for /readyz: every instance has listed.
    let host = s.start();
    let p = host.provider_settled("big");
    assert_eq!(p["state"], "ready", "{p}");
    assert_eq!(p["stream_count"], STREAMS, "{p}");

    let out = repo_root().join("target/browser/scale");
    std::fs::create_dir_all(&out).expect("target/browser/scale");
    // As visitors open it: nginx's public port.
    let page = format!("{}/", s.nginx_base());
    let status = Command::new("node")
        .arg(browser.join("scale.test.mjs"))
        .args(["--page", &page])
        .args(["--total", &STREAMS.to_string()])
        // One word: a value starting with "-" would read as an option.
        .arg(format!(
            "--area={WEST},{SOUTH},{},{}",
            WEST + WIDTH,
            SOUTH + HEIGHT
        ))
        .arg("--out")
        .arg(&out)
        .status()
        .expect("node");
    assert!(
        status.success(),
        "the browser checks at {STREAMS} streams failed: {status}"
    );
}
