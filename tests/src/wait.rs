//! Waiting: for a condition to hold, and for one's turn.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Polls `f` until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the tests that take it one at a time: `let _g = serial();` first
/// thing. For tests that run nginx and FFmpeg encoders (two cores shared
/// by several would make the timings their lifecycles depend on
/// meaningless) or share fixed ports. One lock per test binary, that is per
/// file of `tests/tests/`; a test that panicked holding it does not poison
/// it for the others.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}
