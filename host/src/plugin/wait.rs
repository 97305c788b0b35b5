//! Every way a guest can wait in the host, and what bounds it.
//!
//! The epoch deadline ([`super::call::new_store`]) is only checked while the
//! guest runs Wasm code. A guest blocked in a host call runs none: a
//! `std::thread::sleep` (which becomes `wasi:clocks/monotonic-clock`
//! `subscribe-duration` and `wasi:io/poll`), a wait on any pollable, or a
//! slow `http-get` would hold its thread for as long as the host call
//! lasts. So each host call that can wait is bounded by the call's
//! wall-clock deadline ([`Bounds`], `call_wall_timeout_ms`) itself, and
//! returns or traps by then:
//!
//! | how a guest can wait | what bounds it |
//! | --- | --- |
//! | running Wasm code | the epoch callback, every `EPOCH_TICK`: the guest-time budget (`call_timeout_ms`) and the wall deadline |
//! | `wasi:io/poll` `poll` (a list) and `pollable.block`: sleeps, clock pollables, every WASI wait | shadowed here: waits at most until the wall deadline, then traps the call with [`CallError::WallTimeout`]; time blocked there is not guest time |
//! | `pollable.ready` | never waits |
//! | `http-get` | each request at most `http_timeout_ms` and never past the wall deadline; one cut by the deadline traps the call ([`super::http`]) |
//! | `log`, `now-ms`, WASI clocks' `now`, random | never wait; `log` keeps at most `MAX_LOG_LINES` lines of `MAX_LOG_LINE` bytes per call |
//! | stdin | closed: reads (blocking or not) return end-of-stream at once |
//! | stdout, stderr | a sink, and an in-memory tail of 64 KiB ([`super::stderr`]): writes and flushes (blocking or not) never wait or fail |
//! | other streams (`blocking-read`, `blocking-write-and-flush`, `blocking-splice`...) | none exist: no preopened directory (so no file), no socket |
//! | sockets, name lookup | refused: TCP, UDP and `ip-name-lookup` are off in the WASI context and every address is denied |
//! | `wasi:cli/exit` | traps at once |
//! | data handed to the host (a huge string or list) | hostcall fuel, `max_result_mib` |
//!
//! Once a wait returns at the deadline, the thread is back with the host at
//! once: the call fails, its store is dropped and the blocking thread is
//! free for the next call.

use super::call::CallState;
#[cfg(doc)]
use super::call::{Bounds, CallError};
use std::future::Future;
use std::time::{Duration, Instant};
use wasmtime::component::{Linker, Resource};
use wasmtime::StoreContextMut;
use wasmtime_wasi::p2::bindings::io::poll as async_poll;
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::runtime::in_tokio;

/// The `wasi:io/poll` interface as `wasmtime_wasi::p2::add_to_linker_sync`
/// defines it in wasmtime-wasi 48 (its WIT is `wasi:*@0.2.12`). Guests built
/// against any `0.2.x` find it by semver matching. Should an upgrade change
/// the version, the shadow would no longer apply: the hostile `sleep`
/// fixtures in tests/tests/hostile.rs catch that.
pub const WASI_IO_POLL: &str = "wasi:io/poll@0.2.12";

/// Replaces the `poll` and `pollable.block` functions linked by
/// `add_to_linker_sync` with ones bounded by the call's wall deadline.
/// Call after `add_to_linker_sync`.
pub fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let result = shadow_poll(linker);
    linker.allow_shadowing(false);
    result
}

fn shadow_poll(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    let mut poll = linker.instance(WASI_IO_POLL)?;
    poll.func_wrap(
        "poll",
        |mut store: StoreContextMut<'_, CallState>,
         (list,): (Vec<Resource<DynPollable>>,)|
         -> wasmtime::Result<(Vec<u32>,)> {
            let s = store.data_mut();
            let started = Instant::now();
            let left = s.bounds.wall_left(started);
            let ready = bounded(left, async_poll::Host::poll(&mut s.table, list));
            finish(s, started, ready).map(|r| (r,))
        },
    )?;
    poll.func_wrap(
        "[method]pollable.block",
        |mut store: StoreContextMut<'_, CallState>,
         (pollable,): (Resource<DynPollable>,)|
         -> wasmtime::Result<()> {
            let s = store.data_mut();
            let started = Instant::now();
            let left = s.bounds.wall_left(started);
            let ready = bounded(
                left,
                async_poll::HostPollable::block(&mut s.table, pollable),
            );
            finish(s, started, ready)
        },
    )?;
    Ok(())
}

/// Runs `wait` on the Tokio runtime for at most `left` (`None`: no bound);
/// `None` if time ran out first.
fn bounded<R>(
    left: Option<Duration>,
    wait: impl Future<Output = wasmtime::Result<R>>,
) -> Option<wasmtime::Result<R>> {
    in_tokio(async move {
        match left {
            None => Some(wait.await),
            // A wait that is ready at once returns even at the deadline; the
            // guest is then stopped by the epoch check as it resumes.
            Some(left) => tokio::time::timeout(left, wait).await.ok(),
        }
    })
}

/// Accounts the time blocked, and turns a wait cut by the deadline into
/// the trap that stops the call.
fn finish<R>(
    s: &mut CallState,
    started: Instant,
    ready: Option<wasmtime::Result<R>>,
) -> wasmtime::Result<R> {
    s.blocked += started.elapsed();
    match ready {
        Some(r) => r,
        None => {
            let cause = s.bounds.wall_error();
            Err(s.stop(cause))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bounded;
    use std::time::{Duration, Instant};

    #[test]
    fn a_wait_is_cut_at_the_time_left() {
        let start = Instant::now();
        let r: Option<wasmtime::Result<()>> = bounded(
            Some(Duration::from_millis(50)),
            std::future::pending::<wasmtime::Result<()>>(),
        );
        assert!(r.is_none());
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(50) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    #[test]
    fn a_ready_wait_returns_even_with_no_time_left() {
        let r = bounded(Some(Duration::ZERO), async { Ok(7) });
        assert_eq!(r.map(|r| r.unwrap()), Some(7));
        let r = bounded(None, async { Ok(8) });
        assert_eq!(r.map(|r| r.unwrap()), Some(8));
    }
}
