//! One provider call: a fresh store with its limits, the host functions the
//! guest may use, and the classification of what went wrong.

use super::bindings::{self, LogLevel};
use super::http::HttpGate;
use super::EPOCH_TICK;
use crate::config::Limits;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Guest stderr kept per call (panic messages are short).
const STDERR_CAPACITY: usize = 64 * 1024;

/// Longest log line a guest may write through `log`.
const MAX_LOG_LINE: usize = 4 * 1024;

/// Log lines a guest may write per call; more are dropped and counted.
const MAX_LOG_LINES: u32 = 1_000;

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The guest ran longer than its budget.
    #[error("time limit exceeded: more than {0} ms of guest time")]
    Timeout(u64),
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
    /// Guest time (wall time minus time waiting on `http-get`).
    pub guest: Duration,
    /// Peak linear memory, in bytes.
    pub peak_memory: usize,
    /// `http-get` calls made.
    pub http_requests: u32,
}

/// What a store carries for one call.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    stderr: MemoryOutputPipe,
    provider: Arc<str>,
    limits: Limits,
    started: Instant,
    memory: usize,
    peak_memory: usize,
    denied: Option<CallError>,
    log_lines: u32,
    http: HttpGate,
}

impl CallState {
    /// State for a call of `provider` under `limits`, with `http` as its
    /// `http-get` grant.
    pub fn new(provider: Arc<str>, limits: Limits, http: HttpGate) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        // Nothing granted: no preopened directories, environment, arguments
        // or network; stdin is empty and stdout discarded.
        let wasi = WasiCtx::builder().stderr(stderr.clone()).build();
        CallState {
            wasi,
            table: ResourceTable::new(),
            stderr,
            provider,
            limits,
            started: Instant::now(),
            memory: 0,
            peak_memory: 0,
            denied: None,
            log_lines: 0,
            http,
        }
    }

    fn guest_time(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.http.waited)
    }

    /// Lines the guest wrote to stderr (its panic message, usually).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }
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
            self.denied = Some(err.clone());
            return Err(wasmtime::format_err!("{err}"));
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

impl bindings::dss::provider::types::Host for CallState {}

impl bindings::dss::provider::host::Host for CallState {
    fn log(&mut self, level: LogLevel, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            if self.log_lines == MAX_LOG_LINES + 1 {
                tracing::warn!(provider = %self.provider, "provider log limit reached; dropping further lines of this call");
            }
            return;
        }
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str("...");
        }
        let p = &*self.provider;
        match level {
            LogLevel::Trace => tracing::trace!(provider = p, "{message}"),
            LogLevel::Debug => tracing::debug!(provider = p, "{message}"),
            LogLevel::Info => tracing::info!(provider = p, "{message}"),
            LogLevel::Warn => tracing::warn!(provider = p, "{message}"),
            LogLevel::Error => tracing::error!(provider = p, "{message}"),
        }
    }

    fn http_get(&mut self, url: String) -> Result<bindings::HttpResponse, String> {
        let result = self.http.get(&url);
        if let Err(e) = &result {
            tracing::debug!(provider = %self.provider, "http-get refused or failed: {e}");
        }
        result.map(|f| bindings::HttpResponse {
            status: f.status,
            content_type: f.content_type,
            body: f.body,
        })
    }

    fn now_ms(&mut self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// Makes the store of one call: limiter, and an epoch deadline that traps
/// once the guest (not the network) has used its time budget.
pub fn new_store(engine: &wasmtime::Engine, state: CallState) -> wasmtime::Store<CallState> {
    let budget = state.limits.call_timeout();
    let result_bytes =
        usize::try_from(state.limits.max_result_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    let mut store = wasmtime::Store::new(engine, state);
    store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
    // Bounds what the host allocates for data the guest hands over.
    store.set_hostcall_fuel(result_bytes);
    store.set_epoch_deadline(ticks(budget));
    store.epoch_deadline_callback(move |ctx| {
        let used = ctx.data().guest_time();
        if used >= budget {
            return Err(wasmtime::format_err!(
                "{}",
                CallError::Timeout(budget.as_millis() as u64)
            ));
        }
        Ok(wasmtime::UpdateDeadline::Continue(ticks(budget - used)))
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
    if let Some(denied) = &state.denied {
        return denied.clone();
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

/// Logs what the guest wrote to stderr, attributed to its provider.
pub fn log_stderr(store: &wasmtime::Store<CallState>) {
    let state = store.data();
    let text = state.stderr_text();
    for line in text.lines().filter(|l| !l.trim().is_empty()).take(50) {
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
    use super::panic_message;

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
