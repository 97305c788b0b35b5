//! `[providers]`: where the modules and instances are, and the limits of
//! every provider call (which an instance may override).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[providers]`: where modules and instances are, and the default limits
/// of every provider call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProvidersConfig {
    /// Directory of `.wasm` provider components (module name = file stem):
    /// the operator's.
    pub modules_dir: PathBuf,
    /// A second directory of components, the ones shipped with DSS (the
    /// Debian package's `/usr/lib/dss/providers`). Both are watched; a
    /// module in `modules_dir` takes precedence over the shipped one of
    /// the same name.
    pub shipped_modules_dir: Option<PathBuf>,
    /// Directory of `NAME.toml` provider instances.
    pub instances_dir: PathBuf,
    /// Default limits; each instance may override them.
    pub limits: Limits,
    /// A PEM file of certificate authorities trusted for providers'
    /// `https` requests besides the public (webpki) roots: a private CA
    /// of a camera site or a city's intranet.
    pub extra_ca_file: Option<PathBuf>,
    /// The most the compile cache (`<state_dir>/cache/modules`) holds, in
    /// MiB; the least recently used artifacts beyond it are removed (never
    /// those of the modules in use).
    pub cache_max_mib: u64,
}

impl ProvidersConfig {
    /// The modules directories, the shipped one (if any) first: a module
    /// in a later one takes precedence.
    pub fn modules_dirs(&self) -> Vec<&Path> {
        self.shipped_modules_dir
            .iter()
            .chain(std::iter::once(&self.modules_dir))
            .map(PathBuf::as_path)
            .collect()
    }
}

impl Default for ProvidersConfig {
    fn default() -> Self {
        ProvidersConfig {
            modules_dir: PathBuf::from("providers"),
            shipped_modules_dir: None,
            instances_dir: PathBuf::from("providers.d"),
            limits: Limits::default(),
            extra_ca_file: None,
            // The JavaScript provider's artifact is 37 MB: a dozen modules
            // with a few old versions each.
            cache_max_mib: 512,
        }
    }
}

/// Bounds on one provider call. Every field can be overridden per instance
/// in `NAME.toml` under `[limits]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Guest CPU time of one call, in milliseconds (time spent waiting for
    /// `http-get` is not counted here but bounded by `http_timeout_ms`).
    pub call_timeout_ms: u64,
    /// Wall-clock time of one call, in milliseconds, whatever the guest is
    /// doing: running, sleeping or blocked in a WASI call, or waiting on
    /// `http-get`. Past it the call fails and its thread is released.
    pub call_wall_timeout_ms: u64,
    /// Linear memory of one instance, in MiB.
    pub memory_mib: u64,
    /// Streams one listing may return.
    pub max_streams: usize,
    /// Length of a stream's source, name or tag value, in bytes.
    pub max_string_len: usize,
    /// Data one call may copy from the guest to the host (its result, or
    /// the arguments of one host call), in MiB.
    pub max_result_mib: u64,
    /// `http-get` requests in one call.
    pub http_max_requests: u32,
    /// Body size of one `http-get` response, in bytes.
    pub http_max_body: usize,
    /// Time of one `http-get` (connect to last byte), in milliseconds.
    pub http_timeout_ms: u64,
    /// Redirects followed by one `http-get`.
    pub http_max_redirects: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // A listing of 10,000 streams takes ~6 ms; 2 s leaves room for
            // parsing large feeds while stopping loops quickly.
            call_timeout_ms: 2_000,
            // Well above the guest-time budget, so it only speaks for a call
            // that is stuck rather than busy: blocked in a WASI wait (a
            // sleep, a pollable) or waiting on the network for most of it.
            // A few slow `http-get`s (each up to `http_timeout_ms`) fit; a
            // refresh or swap never waits longer than this on a provider.
            call_wall_timeout_ms: 30_000,
            // Feeds of tens of thousands of cameras fit in a few MiB.
            memory_mib: 64,
            max_streams: 100_000,
            max_string_len: 4_096,
            // 100,000 streams take ~15 MiB once lifted into the host.
            max_result_mib: 64,
            http_max_requests: 8,
            // Camera lists are kilobytes; 16 MiB is generous.
            http_max_body: 16 * 1024 * 1024,
            http_timeout_ms: 10_000,
            http_max_redirects: 5,
        }
    }
}

impl Limits {
    /// The call time budget.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }

    /// The call's wall-clock bound.
    pub fn call_wall_timeout(&self) -> Duration {
        Duration::from_millis(self.call_wall_timeout_ms)
    }

    /// The memory cap in bytes.
    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
    }
}
