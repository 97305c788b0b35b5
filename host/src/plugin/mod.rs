//! The plugin runtime: what DSS narrows wasmtime to for providers.
//!
//! - One [`wasmtime::Engine`] for the process, with the pooling allocator
//!   (instances are cheap) and epoch interruption driven by a ticker thread.
//! - Components compiled once and cached on disk ([`cache`]), by the daemon
//!   in a child process ([`compile`]) so that the compiler's memory never
//!   stays in the serving one; each module is kept as an `InstancePre` with
//!   its imports already resolved.
//! - Every call gets a fresh `Store` and instance: nothing is shared between
//!   calls or between providers. A store has a guest-time budget (epoch
//!   deadline that excludes time waiting on `http-get` or blocked in a WASI
//!   wait), a wall-clock deadline that bounds the whole call, waits
//!   included ([`wait`] lists every way a guest can wait and what bounds
//!   it), a memory cap and a WASI context with nothing in it (no files,
//!   sockets, environment or arguments); the end of its stderr is kept
//!   ([`stderr`]) and logged under the provider's name.
//! - The host grants `log`, `http-get` and `http-request` (allow-listed,
//!   `https` checked against the webpki roots and the operator's CA,
//!   secrets put into headers by name: [`http`]) and a clock.
//! - Two interface versions are served side by side ([`bindings`]):
//!   `dss:provider@0.2.0` and the frozen `0.1.0`; one linker holds both.

pub mod bindings;
pub mod cache;
pub mod call;
pub mod compile;
pub mod http;
pub mod module;
pub mod stderr;
pub mod wait;

pub use call::{CallError, CallReport};
pub use module::{LoadError, ProviderModule};

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::Linker;

/// How often the epoch advances. Deadlines are checked at this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// What a memory slot keeps resident between calls (see
/// [`engine_config`]): a Rust provider's working set for thousands of
/// streams fits; a JavaScript one's engine heap (~9 MiB) does not, and is
/// copied back in on its next call (a millisecond, against its 1-3 ms
/// calls).
pub const KEEP_RESIDENT: usize = 1 << 20;

/// Unused slots kept warm (each up to [`KEEP_RESIDENT`] resident).
pub const MAX_WARM_SLOTS: u32 = 16;

/// The largest memory any provider may be granted (per-instance caps are
/// lower; this sizes the pooling allocator's slots).
pub const MAX_MEMORY: usize = 1 << 30;

/// The engine, linker and cache shared by all providers.
pub struct PluginEngine {
    engine: wasmtime::Engine,
    linker: Linker<call::CallState>,
    cache: cache::ComponentCache,
    http: http::HttpClient,
    stop_ticker: Arc<AtomicBool>,
}

/// The engine configuration of the host, and of the child that compiles
/// for it ([`compile`]): the two must agree for an artifact to load.
pub fn engine_config(pooling: bool) -> wasmtime::Config {
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    // Concurrent calls across all providers; a call holds one component
    // instance for a few milliseconds.
    pool.total_component_instances(256);
    // A Rust wasip2 guest has a handful of core instances and one memory.
    pool.total_core_instances(2048);
    pool.total_memories(512);
    pool.total_tables(1024);
    pool.max_memory_size(MAX_MEMORY);
    // Reusing a slot resets what the last call dirtied. By default that
    // is madvise(DONTNEED) of it all, and the next call page-faults it
    // back in: two thirds of a fresh instance + `describe` (39 µs p50
    // before, 12 µs after, `--bench plugin`). Instead, on Linux 6.7+
    // (PAGEMAP_SCAN; `Auto` falls back elsewhere), the dirty pages are
    // found and copied back from the image, up to KEEP_RESIDENT per
    // memory; beyond it the rest is decommitted as before. Tables are small.
    pool.pagemap_scan(wasmtime::Enabled::Auto);
    pool.linear_memory_keep_resident(KEEP_RESIDENT);
    pool.table_keep_resident(64 << 10);
    // Slots a module used stay warm for its next call (module affinity);
    // each keeps up to KEEP_RESIDENT resident. A host calls its providers
    // one or two at a time, so a few warm slots serve every module's
    // next call while memory stays bounded.
    pool.max_unused_warm_slots(MAX_WARM_SLOTS);

    let mut config = wasmtime::Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(if pooling {
            wasmtime::InstanceAllocationStrategy::Pooling(pool)
        } else {
            wasmtime::InstanceAllocationStrategy::OnDemand
        });
    config
}

impl PluginEngine {
    /// Makes the engine; `cache_dir` holds compiled components (`None`: no
    /// cache).
    pub fn new(cache_dir: Option<PathBuf>) -> wasmtime::Result<Arc<Self>> {
        Self::with_allocator(cache_dir, true)
    }

    /// [`PluginEngine::new`] with the pooling allocator, or (`false`) the
    /// on-demand one — the baseline the benchmark compares against.
    pub fn with_allocator(
        cache_dir: Option<PathBuf>,
        pooling: bool,
    ) -> wasmtime::Result<Arc<Self>> {
        Self::with_http(cache_dir, pooling, http::client())
    }

    /// The engine of a host or CLI run: the configured module cache and
    /// the `[providers] extra_ca_file` (an unreadable one is an error).
    /// `compiler` says where modules missing from the cache are compiled.
    pub fn from_config(
        config: &crate::config::Config,
        compiler: compile::Compiler,
    ) -> anyhow::Result<Arc<Self>> {
        let http = http::HttpClient::new(config.providers.extra_ca_file.as_deref())
            .map_err(|e| anyhow::anyhow!("[providers] {e}"))?;
        let mut engine = Self::build(Some(config.module_cache_dir()), true, http)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        engine.cache.set_compiler(compiler, true);
        engine
            .cache
            .set_max_bytes(config.providers.cache_max_mib.saturating_mul(1 << 20));
        Ok(Arc::new(engine))
    }

    /// [`PluginEngine::with_allocator`] with the providers' HTTP client
    /// (its trusted roots: see [`http::HttpClient::new`]).
    pub fn with_http(
        cache_dir: Option<PathBuf>,
        pooling: bool,
        http: http::HttpClient,
    ) -> wasmtime::Result<Arc<Self>> {
        Self::build(cache_dir, pooling, http).map(Arc::new)
    }

    fn build(
        cache_dir: Option<PathBuf>,
        pooling: bool,
        http: http::HttpClient,
    ) -> wasmtime::Result<Self> {
        let engine = wasmtime::Engine::new(&engine_config(pooling))?;

        let mut linker = Linker::new(&engine);
        // A wasip2 std guest imports WASI even when it uses none of it; the
        // context behind these imports is empty (see `call`).
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        // ... except that its waits are bounded by the call's deadline.
        wait::add_to_linker(&mut linker)?;
        bindings::v0_2::DssProvider::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |s| s,
        )?;
        bindings::v0_1::DssProvider::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |s| s,
        )?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop_ticker.clone();
            std::thread::Builder::new()
                .name("dss-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| wasmtime::format_err!("cannot start the epoch ticker: {e}"))?;
        }

        Ok(PluginEngine {
            cache: cache::ComponentCache::new(&engine, cache_dir),
            engine,
            linker,
            http,
            stop_ticker,
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &wasmtime::Engine {
        &self.engine
    }

    /// The compile cache.
    pub fn cache(&self) -> &cache::ComponentCache {
        &self.cache
    }
}

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}
