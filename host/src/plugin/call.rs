//! One provider call: a fresh store with its limits, the host functions the
//! guest may use, and the classification of what went wrong.

use super::bindings::{self, LogLevel};
use super::http::{self, HttpError, HttpGate};
use super::stderr::StderrTail;
use super::EPOCH_TICK;
use crate::config::Limits;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Guest stderr kept per call: its last bytes (a panic message is short and
/// comes last); a guest may write more, it is counted and dropped.
const STDERR_CAPACITY: usize = 64 * 1024;

/// Lines of a call's stderr logged (the last ones).
const STDERR_LOG_LINES: usize = 50;

/// Longest log line a guest may write through `log`.
const MAX_LOG_LINE: usize = 4 * 1024;

/// Log lines a guest may write per call; more are dropped and counted.
const MAX_LOG_LINES: u32 = 1_000;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The guest ran longer than its budget.
    #[error("time limit exceeded: more than {0} ms of guest time")]
    Timeout(u64),
    /// The call lasted longer than its wall-clock bound: blocked in a WASI
    /// wait (a sleep, a pollable), waiting on `http-get`, or running.
    #[error("wall-clock limit exceeded: the call was still running after {0} ms (limit call_wall_timeout_ms)")]
    WallTimeout(u64),
    /// The guest asked for more memory than its cap.
    #[error("memory limit exceeded: wanted {wanted_mib} MiB, limit {limit_mib} MiB")]
    Memory {
        /// What it asked for.
        wanted_mib: u64,
        /// The cap.
        limit_mib: u64,
    },
    /// The guest trapped (a panic, an out-of-bounds access, ...).
    #[error("trapped: {0}")]
    Trap(String),
    /// The component could not be instantiated.
    #[error("cannot instantiate: {0}")]
    Instantiate(String),
    /// The provider returned an error.
    #[error("{code}: {message}")]
    Guest {
        /// Its kind (`invalid-config`, `upstream`, `parse`, `internal`).
        code: &'static str,
        /// Its message.
        message: String,
    },
    /// The provider's answer broke a host rule (too many streams, ...).
    #[error("invalid result: {0}")]
    Invalid(String),
}

impl From<bindings::GuestError> for CallError {
    fn from(e: bindings::GuestError) -> Self {
        use bindings::ErrorCode::*;
        CallError::Guest {
            code: match e.code {
                InvalidConfig => "invalid-config",
                Upstream => "upstream",
                Parse => "parse",
                Internal => "internal",
            },
            message: e.message,
        }
    }
}

/// Measurements of one call (for `dss providers check` and metrics).
#[derive(Debug, Clone, Default)]
pub struct CallReport {
    /// Wall time of the call, instantiation included.
    pub wall: Duration,
    /// Guest time (wall time minus time waiting on `http-get` or blocked in
    /// a WASI wait).
    pub guest: Duration,
    /// Peak linear memory, in bytes.
    pub peak_memory: usize,
    /// `http-get` calls made.
    pub http_requests: u32,
}

/// The time bounds of one call: a budget of guest time (checked while the
/// guest runs Wasm code) and a wall-clock deadline (checked there too, and
/// bounding every wait in the host: see [`super::wait`]).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    guest: Duration,
    guest_ms: u64,
    wall_ms: u64,
    /// `None`: a limit too far away to represent, i.e. no deadline.
    wall_deadline: Option<Instant>,
}

impl Bounds {
    /// The bounds of a call started at `started` under `limits`.
    pub fn new(limits: &Limits, started: Instant) -> Self {
        Bounds {
            guest: limits.call_timeout(),
            guest_ms: limits.call_timeout_ms,
            wall_ms: limits.call_wall_timeout_ms,
            wall_deadline: started.checked_add(limits.call_wall_timeout()),
        }
    }

    /// The wall-clock deadline (`None`: none).
    pub fn wall_deadline(&self) -> Option<Instant> {
        self.wall_deadline
    }

    /// Time left at `now` before the wall-clock deadline (`None`: no
    /// deadline; zero: it has passed).
    pub fn wall_left(&self, now: Instant) -> Option<Duration> {
        self.wall_deadline.map(|d| d.saturating_duration_since(now))
    }

    /// The error of a call stopped by the wall-clock deadline.
    pub fn wall_error(&self) -> CallError {
        CallError::WallTimeout(self.wall_ms)
    }

    /// The check made while the guest runs: with `guest_used` of guest time
    /// at `now`, either the time until the next check or why the call
    /// stops. A spent guest budget is named first: the guest was busy.
    pub fn check(&self, guest_used: Duration, now: Instant) -> Result<Duration, CallError> {
        if guest_used >= self.guest {
            return Err(CallError::Timeout(self.guest_ms));
        }
        let guest_left = self.guest - guest_used;
        match self.wall_left(now) {
            None => Ok(guest_left),
            Some(left) if left.is_zero() => Err(self.wall_error()),
            Some(left) => Ok(guest_left.min(left)),
        }
    }
}

/// What a store carries for one call.
pub struct CallState {
    wasi: WasiCtx,
    /// The WASI resources of the call (pollables, streams).
    pub(super) table: ResourceTable,
    stderr: StderrTail,
    provider: Arc<str>,
    limits: Limits,
    started: Instant,
    /// Its time bounds.
    pub(super) bounds: Bounds,
    /// Time spent blocked in WASI waits (not guest time).
    pub(super) blocked: Duration,
    memory: usize,
    peak_memory: usize,
    /// Why the host stopped the call (a limit), if it did.
    cause: Option<CallError>,
    log_lines: u32,
    http: HttpGate,
}

impl CallState {
    /// State for a call of `provider` under `limits`, with `http` as its
    /// `http-get` grant; the call's time starts now.
    pub fn new(provider: Arc<str>, limits: Limits, mut http: HttpGate) -> Self {
        let started = Instant::now();
        let bounds = Bounds::new(&limits, started);
        http.set_deadline(bounds.wall_deadline());
        let stderr = StderrTail::new(STDERR_CAPACITY);
        // Nothing granted: no preopened directories, environment, arguments
        // or network (no sockets, no name lookup); stdin is empty (closed)
        // and stdout discarded.
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        CallState {
            wasi,
            table: ResourceTable::new(),
            stderr,
            provider,
            limits,
            started,
            bounds,
            blocked: Duration::ZERO,
            memory: 0,
            peak_memory: 0,
            cause: None,
            log_lines: 0,
            http,
        }
    }

    fn guest_time(&self) -> Duration {
        self.started
            .elapsed()
            .saturating_sub(self.http.waited)
            .saturating_sub(self.blocked)
    }

    /// Records that a limit stops the call; returns the trap to raise.
    pub(super) fn stop(&mut self, cause: CallError) -> wasmtime::Error {
        let trap = wasmtime::format_err!("{cause}");
        self.cause = Some(cause);
        trap
    }

    /// What the guest wrote to stderr (its last bytes: a panic message,
    /// usually).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents().0).into_owned()
    }
}

/// `line` cut to at most `max` bytes (on a character boundary), marked
/// with `...` when cut.
fn clip(line: &str, max: usize) -> Cow<'_, str> {
    if line.len() <= max {
        return Cow::Borrowed(line);
    }
    let mut cut = max;
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    Cow::Owned(format!("{}...", &line[..cut]))
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime::ResourceLimiter for CallState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory - current.min(self.memory) + desired;
        let limit = self.limits.memory_bytes();
        if total > limit {
            let err = CallError::Memory {
                wanted_mib: (total as u64).div_ceil(1 << 20),
                limit_mib: self.limits.memory_mib,
            };
            return Err(self.stop(err));
        }
        self.memory = total;
        self.peak_memory = self.peak_memory.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Function tables of real providers hold a few thousand entries.
        Ok(desired <= 1_000_000)
    }
}

impl bindings::v0_2::dss::provider::types::Host for CallState {}
impl bindings::v0_1::dss::provider::types::Host for CallState {}

impl CallState {
    /// Answers `http-get` and `http-request` (both versions).
    fn http(
        &mut self,
        request: http::Request,
    ) -> wasmtime::Result<Result<bindings::HttpResponse, String>> {
        match self.http.request(request) {
            Ok(f) => Ok(Ok(bindings::HttpResponse {
                status: f.status,
                content_type: f.content_type,
                headers: f.headers,
                body: f.body,
            })),
            Err(HttpError::Failed(e)) => {
                tracing::debug!(provider = %self.provider, error = %e, "http request refused or failed");
                Ok(Err(e.to_string()))
            }
            Err(HttpError::Deadline) => Err(self.stop(self.bounds.wall_error())),
        }
    }
}

impl bindings::v0_2::dss::provider::host::Host for CallState {
    fn log(&mut self, level: LogLevel, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            if self.log_lines == MAX_LOG_LINES + 1 {
                tracing::warn!(provider = %self.provider, "provider log limit reached; dropping further lines of this call");
            }
            return;
        }
        let message = clip(&message, MAX_LOG_LINE);
        let p = &*self.provider;
        match level {
            LogLevel::Trace => tracing::trace!(provider = p, "{message}"),
            LogLevel::Debug => tracing::debug!(provider = p, "{message}"),
            LogLevel::Info => tracing::info!(provider = p, "{message}"),
            LogLevel::Warn => tracing::warn!(provider = p, "{message}"),
            LogLevel::Error => tracing::error!(provider = p, "{message}"),
        }
    }

    fn http_get(
        &mut self,
        url: String,
    ) -> wasmtime::Result<Result<bindings::HttpResponse, String>> {
        self.http(http::Request::get(&url))
    }

    fn http_request(
        &mut self,
        request: bindings::HttpRequest,
    ) -> wasmtime::Result<Result<bindings::HttpResponse, String>> {
        self.http(http::Request {
            method: match request.method {
                bindings::Method::Get => http::Method::Get,
                bindings::Method::Post => http::Method::Post,
            },
            url: request.url,
            headers: request
                .headers
                .into_iter()
                .map(|h| {
                    let value = match h.value {
                        bindings::HeaderValue::Text(t) => http::Value::Text(t),
                        bindings::HeaderValue::Secret(s) => http::Value::Secret(s),
                    };
                    (h.name, value)
                })
                .collect(),
            body: request.body,
        })
    }

    fn now_ms(&mut self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A 0.1.0 module's imports, answered by the 0.2.0 implementation.
impl bindings::v0_1::dss::provider::host::Host for CallState {
    fn log(&mut self, level: bindings::v0_1::dss::provider::host::LogLevel, message: String) {
        bindings::v0_2::dss::provider::host::Host::log(self, level.into(), message)
    }

    fn http_get(
        &mut self,
        url: String,
    ) -> wasmtime::Result<Result<bindings::v0_1::dss::provider::host::HttpResponse, String>> {
        Ok(self.http(http::Request::get(&url))?.map(Into::into))
    }

    fn now_ms(&mut self) -> u64 {
        bindings::v0_2::dss::provider::host::Host::now_ms(self)
    }
}

/// Makes the store of one call: limiter, and an epoch deadline that traps
/// once the guest (not the network, not a WASI wait) has used its time
/// budget, or once the call's wall-clock deadline has passed.
pub fn new_store(engine: &wasmtime::Engine, state: CallState) -> wasmtime::Store<CallState> {
    let result_bytes =
        usize::try_from(state.limits.max_result_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    let first = state
        .bounds
        .check(Duration::ZERO, Instant::now())
        .unwrap_or(Duration::ZERO);
    let mut store = wasmtime::Store::new(engine, state);
    store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
    // Bounds what the host allocates for data the guest hands over.
    store.set_hostcall_fuel(result_bytes);
    store.set_epoch_deadline(ticks(first));
    store.epoch_deadline_callback(|mut ctx| {
        let s = ctx.data_mut();
        match s.bounds.check(s.guest_time(), Instant::now()) {
            Ok(next) => Ok(wasmtime::UpdateDeadline::Continue(ticks(next))),
            Err(cause) => Err(s.stop(cause)),
        }
    });
    store
}

fn ticks(d: Duration) -> u64 {
    (d.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}

/// Turns a wasmtime error of a call into a [`CallError`], using what the
/// limiter and the deadline recorded, and the guest's stderr.
pub fn classify(store: &wasmtime::Store<CallState>, err: wasmtime::Error) -> CallError {
    let state = store.data();
    if let Some(cause) = &state.cause {
        return cause.clone();
    }
    if state.guest_time() >= state.limits.call_timeout()
        || format!("{err}").contains("time limit exceeded")
    {
        return CallError::Timeout(state.limits.call_timeout_ms);
    }
    let mut message = format!("{err}");
    if message.contains("fuel allocated for hostcalls") {
        return CallError::Invalid(format!(
            "result too large: more than {} MiB copied from the guest (limit max_result_mib)",
            state.limits.max_result_mib
        ));
    }
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
        message = trap.to_string();
    }
    if let Some(panic) = panic_message(&state.stderr_text()) {
        message.push_str("; guest stderr: ");
        message.push_str(&panic);
    }
    CallError::Trap(message)
}

/// The useful part of a guest's stderr: for a Rust panic, the
/// `panicked at FILE:LINE:COL:` line and its message, without the
/// backtrace note; else its last line.
fn panic_message(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("note: run with"))
        .collect();
    match lines.iter().rposition(|l| l.contains("panicked at")) {
        Some(i) => {
            let at = lines[i];
            let at = at.find("panicked at").map(|p| &at[p..]).unwrap_or(at);
            let msg = lines.get(i + 1..).map(|m| m.join(" ")).unwrap_or_default();
            Some(format!("{at} {msg}").trim().chars().take(1_000).collect())
        }
        None => lines.last().map(|l| l.chars().take(1_000).collect()),
    }
}

/// Logs the end of what the guest wrote to stderr, attributed to its
/// provider: at most [`STDERR_LOG_LINES`] lines of [`MAX_LOG_LINE`] bytes.
pub fn log_stderr(store: &wasmtime::Store<CallState>) {
    let state = store.data();
    let (bytes, dropped) = state.stderr.contents();
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let skipped = lines.len().saturating_sub(STDERR_LOG_LINES);
    if dropped > 0 || skipped > 0 {
        tracing::warn!(
            provider = %state.provider,
            "guest stderr: {} bytes dropped and {skipped} lines not logged; its last lines follow",
            dropped
        );
    }
    for line in &lines[skipped..] {
        let line = clip(line, MAX_LOG_LINE);
        tracing::warn!(provider = %state.provider, "guest stderr: {line}");
    }
}

/// The measurements of a finished call.
pub fn report(store: &wasmtime::Store<CallState>) -> CallReport {
    let s = store.data();
    CallReport {
        wall: s.started.elapsed(),
        guest: s.guest_time(),
        peak_memory: s.peak_memory,
        http_requests: s.http.requests,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(guest_ms: u64, wall_ms: u64) -> Limits {
        Limits {
            call_timeout_ms: guest_ms,
            call_wall_timeout_ms: wall_ms,
            ..Limits::default()
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_next_check_comes_at_the_nearest_bound() {
        let t0 = Instant::now();
        let b = Bounds::new(&limits(2_000, 30_000), t0);
        assert_eq!(b.wall_deadline(), Some(t0 + 30_000 * MS));
        // Busy guest: its budget is nearer.
        assert_eq!(b.check(Duration::ZERO, t0), Ok(2_000 * MS));
        assert_eq!(b.check(500 * MS, t0 + 600 * MS), Ok(1_500 * MS));
        // Mostly blocked: the wall deadline is nearer.
        assert_eq!(b.check(100 * MS, t0 + 29_000 * MS), Ok(1_000 * MS));
        assert_eq!(b.wall_left(t0 + 29_000 * MS), Some(1_000 * MS));
    }

    #[test]
    fn a_spent_budget_or_a_passed_deadline_stops_the_call() {
        let t0 = Instant::now();
        let b = Bounds::new(&limits(2_000, 30_000), t0);
        assert_eq!(
            b.check(2_000 * MS, t0 + 2_000 * MS),
            Err(CallError::Timeout(2_000))
        );
        assert_eq!(
            b.check(100 * MS, t0 + 30_000 * MS),
            Err(CallError::WallTimeout(30_000))
        );
        assert_eq!(b.wall_left(t0 + 31_000 * MS), Some(Duration::ZERO));
        // Both: the guest was busy, say so.
        assert_eq!(
            b.check(2_500 * MS, t0 + 31_000 * MS),
            Err(CallError::Timeout(2_000))
        );
        // A wall limit below the guest budget wins.
        let tight = Bounds::new(&limits(2_000, 500), t0);
        assert_eq!(tight.check(Duration::ZERO, t0), Ok(500 * MS));
        assert_eq!(
            tight.check(10 * MS, t0 + 500 * MS),
            Err(CallError::WallTimeout(500))
        );
    }

    #[test]
    fn an_enormous_limit_does_not_overflow() {
        let t0 = Instant::now();
        let b = Bounds::new(&limits(2_000, u64::MAX), t0);
        // Far away, or (where an `Instant` cannot hold it) none at all.
        let year = Duration::from_secs(365 * 86_400);
        assert!(b.wall_left(t0).is_none_or(|left| left > year));
        assert_eq!(b.check(Duration::ZERO, t0), Ok(2_000 * MS));
    }

    #[test]
    fn epoch_ticks_round_down_but_never_to_zero() {
        assert_eq!(ticks(Duration::ZERO), 1);
        assert_eq!(ticks(5 * MS), 1);
        assert_eq!(ticks(2_000 * MS), 200);
    }

    #[test]
    fn wall_timeouts_say_so_and_name_the_limit() {
        let m = CallError::WallTimeout(2_000).to_string();
        assert!(
            m.starts_with("wall-clock limit exceeded") && m.contains("2000 ms"),
            "{m}"
        );
        assert!(m.contains("call_wall_timeout_ms"), "{m}");
    }

    #[test]
    fn long_lines_are_clipped_on_a_char_boundary() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("abcdef", 4), "abcd...");
        // 'é' is two bytes: a cut inside it moves back.
        assert_eq!(clip("aé", 2), "a...");
    }

    #[test]
    fn panic_messages_are_extracted() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:10:9:\nboom here\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            panic_message(stderr).unwrap(),
            "panicked at src/lib.rs:10:9: boom here"
        );
        assert_eq!(panic_message("just a line\n").unwrap(), "just a line");
        assert_eq!(panic_message(""), None);
    }
}
