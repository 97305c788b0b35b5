//! The fault suite, on real nginx-rtmp and FFmpeg: FFmpeg, nginx and the
//! host killed over and over, a storm of start/stop commands, malformed
//! callbacks. `cargo bench -p dss-e2e --bench faults` prints the figures.
//!
//! One test at a time (a lock): each runs nginx and FFmpeg encoders.

use dss_e2e::{faults, serial};

#[test]
fn ffmpeg_killed_100_times_is_restarted_100_times_without_orphans() {
    let _g = serial();
    let f = faults::kill_ffmpeg(100);
    eprintln!("{f:?}");
    assert_eq!(f.recovered, 100, "{f:?}");
    assert_eq!(f.orphans, 0, "{f:?}");
}

#[test]
fn nginx_killed_10_times_comes_back_with_counts_rebuilt() {
    let _g = serial();
    let f = faults::kill_nginx(10);
    eprintln!("{f:?}");
    assert_eq!(f.recovered, 10, "{f:?}");
    assert_eq!(f.orphans, 0, "{f:?}");
}

#[test]
fn host_killed_10_times_leaves_no_ffmpeg_and_recovers_its_viewer() {
    let _g = serial();
    let f = faults::kill_host(10);
    eprintln!("{f:?}");
    assert_eq!(f.recovered, 10, "{f:?}");
    assert_eq!(f.orphans, 0, "{f:?}");
}

#[test]
fn a_storm_of_100000_start_stop_spawns_a_handful_and_sigterm_exits_fast() {
    let _g = serial();
    let f = faults::storm(100_000, 4);
    eprintln!("{f:?}");
    assert_eq!(f.errors, 0, "{f:?}");
    assert!(
        f.spawns <= 3,
        "level-triggered: at most a few spawns: {f:?}"
    );
    assert!(
        f.rss_after_kib < f.rss_before_kib + 64 * 1024,
        "memory bounded: {f:?}"
    );
    assert!(f.exit_ms < 10_000, "exit within 10 s of SIGTERM: {f:?}");
    assert_eq!(f.orphans, 0, "{f:?}");
}

#[test]
fn ten_thousand_malformed_callbacks_get_4xx_and_no_panic() {
    let _g = serial();
    let f = faults::malformed_callbacks(10_000);
    eprintln!("{f:?}");
    assert_eq!(f.sent, 10_000);
    assert_eq!(f.client_errors, 10_000, "{f:?}");
    assert!(f.alive && !f.panicked, "{f:?}");
}

#[test]
fn the_exploit_strings_are_refused_with_a_reason_and_touch_nothing() {
    let _g = serial();
    let f = faults::exploits();
    for (id, reason) in &f.reasons {
        eprintln!("{id}: {reason}");
    }
    assert_eq!(f.refused, f.streams, "{f:?}");
    assert_eq!(f.viewers_refused, f.streams, "{f:?}");
    assert_eq!(f.spawns, 0, "{f:?}");
    assert_eq!(f.files_touched, 0, "{f:?}");
}
