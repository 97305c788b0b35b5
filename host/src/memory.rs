//! The serving process's own memory: how the C allocator is narrowed, when
//! memory freed by a large piece of work is handed back to the system, and
//! the figures `/metrics` and `/api/status` show.
//!
//! What was measured (`cargo bench -p dss-e2e --bench memory`): a listing
//! of 100,000 streams keeps ~1 KB per stream live, but its transient
//! working set (the provider's answer, the checks, the copy persisted)
//! is several times that, and glibc keeps what is freed in the arena of
//! the thread that freed it: ~450 MB resident an hour later. Two knobs fix
//! it without another allocator: at most [`ARENAS`] arenas (each thread
//! that allocates otherwise gets its own, up to 8 per core), and
//! `malloc_trim(0)` shortly after a large piece of work ([`trim_soon`]),
//! which gives every free page of every arena back. Other allocators were
//! measured too (jemalloc through `LD_PRELOAD`: the same peak, handed back
//! only as its decay timer and later allocations allow).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Most malloc arenas. The host's threads are the async workers (one
/// per core) and blocking threads for provider calls and file work;
/// contention on two arenas is not measurable at their rates, and every
/// further arena holds its own free memory.
const ARENAS: i32 = 2;

/// A listing (or another piece of work) this large asks for a trim.
pub const LARGE: usize = 1_000;

/// How long after a large piece of work the trim runs: the work's last
/// frees (a persisted copy written in the background) come within it, and
/// a burst of refreshes asks for one trim.
const TRIM_DELAY: Duration = Duration::from_secs(2);

static TRIM_WANTED: AtomicBool = AtomicBool::new(false);

/// Narrows the allocator: call first thing in `main`, before any thread.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Asks for the free memory to be handed back soon (after a listing of
/// [`LARGE`] streams or more, a module load).
pub fn trim_soon() {
    TRIM_WANTED.store(true, Ordering::Relaxed);
}

/// Hands free memory back whenever [`trim_soon`] asked for it (runs for
/// the life of the host).
pub async fn trim_loop() {
    loop {
        tokio::time::sleep(TRIM_DELAY).await;
        if TRIM_WANTED.swap(false, Ordering::Relaxed) {
            // Walks every arena: milliseconds for hundreds of megabytes.
            let before = process_stats().resident_anonymous_bytes;
            let _ = tokio::task::spawn_blocking(trim).await;
            let after = process_stats().resident_anonymous_bytes;
            tracing::debug!(
                before_mib = before >> 20,
                after_mib = after >> 20,
                "free memory handed back"
            );
        }
    }
}

/// Gives every free page of every arena back to the system now.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The process's figures, as the Prometheus process collector names them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ProcessStats {
    /// Resident memory, bytes.
    pub resident_memory_bytes: u64,
    /// Of it, anonymous (heap, stacks, provider memory), bytes.
    pub resident_anonymous_bytes: u64,
    /// Virtual memory, bytes (the provider pool reserves terabytes of
    /// address space, none of it memory).
    pub virtual_memory_bytes: u64,
    /// User and system CPU time, seconds.
    pub cpu_seconds_total: f64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The limit on them.
    pub max_fds: u64,
    /// Start time, seconds since the Unix epoch.
    pub start_time_seconds: f64,
    /// Threads.
    pub threads: u64,
}

/// This process's figures now (zeros where `/proc` cannot tell).
pub fn process_stats() -> ProcessStats {
    let mut p = ProcessStats::default();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let value = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    p.resident_memory_bytes = value("VmRSS:") * 1024;
    p.resident_anonymous_bytes = value("RssAnon:") * 1024;
    p.virtual_memory_bytes = value("VmSize:") * 1024;
    p.threads = value("Threads:");
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces), from field 3.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| -> f64 {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    p.cpu_seconds_total = (field(14) + field(15)) / ticks;
    let boot = std::fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    p.start_time_seconds = boot + field(22) / ticks;
    p.open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        p.max_fds = limit.rlim_cur;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_figures_are_read_from_proc() {
        let p = process_stats();
        assert!(p.resident_memory_bytes > 1 << 20, "{p:?}");
        assert!(p.resident_anonymous_bytes > 0);
        assert!(p.resident_anonymous_bytes <= p.resident_memory_bytes);
        assert!(p.virtual_memory_bytes >= p.resident_memory_bytes);
        assert!(p.threads >= 1);
        assert!(p.open_fds >= 3 && p.open_fds <= p.max_fds, "{p:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            p.start_time_seconds > now - 3600.0 && p.start_time_seconds <= now + 1.0,
            "{p:?}"
        );
        // Some CPU was spent getting here; a trim is harmless.
        trim();
        assert!(p.cpu_seconds_total >= 0.0);
    }
}
