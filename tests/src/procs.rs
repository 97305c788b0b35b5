//! Processes seen from `/proc`: alive or not, FFmpeg publishers of a
//! stream, CPU time.

use std::time::Duration;

/// Whether process `pid` runs (a zombie has exited: it only awaits reaping).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

/// Live FFmpeg processes publishing stream `id` (found by their RTMP URL).
pub fn publishers_of(id: &str) -> Vec<u32> {
    let needle = format!("/{id}?token=");
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(&needle) && process_alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// The unit of `/proc/PID/stat` times: Linux's `USER_HZ`, 100 on every
/// architecture's user-space ABI.
const USER_HZ: f64 = 100.0;

/// CPU time (user + system) of process `pid` so far or, with `children`,
/// of its children that exited and were reaped.
pub fn cpu_time(pid: u32, children: bool) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    // utime, stime, cutime, cstime are fields 14 to 17 (11 to 14 after the
    // name).
    let range = if children { 13..15 } else { 11..13 };
    let ticks: u64 = fields
        .get(range)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / USER_HZ)
}
