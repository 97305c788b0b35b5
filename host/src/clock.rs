//! Wall-clock time as the host records it: milliseconds since the Unix
//! epoch (what the API, the store and the events carry). Durations and
//! deadlines use the monotonic `Instant` instead.

use std::time::SystemTime;

/// Milliseconds since the Unix epoch of `t` (0 before it).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}
