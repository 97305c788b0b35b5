//! Ports for the servers a test starts.

use std::net::TcpListener;
use std::sync::atomic::Ordering;

/// A port free on 127.0.0.1 right now, and never handed out before by this
/// process.
///
/// Asking the kernel for port 0 twice may give the same port twice once the
/// first probe is closed (a host's API and its nginx once got one port), and
/// its ephemeral range is also where outgoing connections take their source
/// ports. So ports come from below that range instead (10000..32000), from a
/// per-process starting point (test binaries may run side by side), counting
/// up, and each is checked free with a bind.
pub fn free_port() -> u16 {
    use std::sync::atomic::AtomicU32;
    const FIRST: u32 = 10_000;
    const SPAN: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let start = {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        (std::process::id().wrapping_mul(7919) ^ nanos) % SPAN
    };
    let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..SPAN {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {FIRST}..{}", FIRST + SPAN)
}
