//! `cargo bench -p dss-e2e --bench faults`: runs the fault suite's
//! scenarios on real nginx-rtmp and FFmpeg and prints their figures as a
//! table (the tests in `tests/faults.rs` assert on the same figures).

use dss_e2e::faults;

fn main() {
    println!("| scenario | figures |");
    println!("|---|---|");
    let f = faults::kill_ffmpeg(100);
    println!(
        "| FFmpeg SIGKILLed {} times while watched | {} restarts, {} orphans, back in {} ms mean / {} ms max |",
        f.kills, f.recovered, f.orphans, f.mean_recovery_ms, f.max_recovery_ms
    );
    let f = faults::kill_nginx(10);
    println!(
        "| nginx SIGKILLed {} times | {} recoveries with counts rebuilt, {} orphans, a new viewer's frames {} ms mean / {} ms max after the kill (the dead viewer's count dropped by /stat after the 10 s resync grace) |",
        f.kills, f.recovered, f.orphans, f.mean_recovery_ms, f.max_recovery_ms
    );
    let f = faults::kill_host(10);
    println!(
        "| host SIGKILLed {} times | {} orphan FFmpeg, viewer count recovered {} times, live again with the viewer counted {} ms mean / {} ms max after the kill (the viewer then gets frames) |",
        f.kills, f.orphans, f.recovered, f.mean_recovery_ms, f.max_recovery_ms
    );
    let f = faults::storm(100_000, 4);
    println!(
        "| {} interleaved /control start/stop | {:.1} s ({:.0} req/s), {} non-200, {} spawns, RSS {} → {} KiB, exit {} ms after SIGTERM mid-storm, {} orphans |",
        f.requests,
        f.seconds,
        f.requests as f64 / f.seconds,
        f.errors,
        f.spawns,
        f.rss_before_kib,
        f.rss_after_kib,
        f.exit_ms,
        f.orphans
    );
    let f = faults::malformed_callbacks(10_000);
    println!(
        "| {} malformed callback bodies | {} answered 4xx, {} otherwise, host alive: {}, panic: {} |",
        f.sent, f.client_errors, f.other, f.alive, f.panicked
    );
    let f = faults::exploits();
    println!(
        "| {} exploit strings (sources, input and output options) | {} refused with a reason, {} with viewers refused at once, {} spawns, {} files touched |",
        f.streams, f.refused, f.viewers_refused, f.spawns, f.files_touched
    );
}
