//! Provider instances: reads the modules directory and the `NAME.toml`
//! instance files, binds each instance to its module, runs `init` and
//! `list-streams` under the instance's limits, and refreshes it on its
//! interval. One instance failing never touches another.
//!
//! [`Providers::reconcile`] brings the running set in line with the files:
//! it can be called again at any time (the directory watcher does) and only
//! restarts what changed.
//!
//! Listings are kept the way the original DSS loader did, around the Wasm
//! call: each successful listing is persisted in the store; at start an
//! instance serves its persisted listing at once (trusted for
//! `cache_seconds`, else refreshed in the background); when the provider
//! fails, the last good listing keeps serving, marked stale; with nothing
//! else, the instance's `fallback` file serves; `lazy = true` lists on
//! first use.
//!
//! In cluster mode an instance is refreshed by one host at a time, the
//! holder of its lease ([`crate::cluster::Cluster::refresher`]): it lists
//! and persists; the others serve its listings from the store, re-checked
//! against their own limits, as long as they were produced by the same
//! instance file and module (a
//! [`Listing::fingerprint`](dss_store::Listing::fingerprint)). A new
//! version is still tried on each host before it serves there. Ingest
//! instances list the phones connected to their own host: never shared.
//!
//! By concern: `registry` (a slot per module and per instance, and
//! bringing the instances in line with the files), `modules` (loading the
//! module files: compiled, or from the compile cache), `instance_files`
//! (reading and checking `NAME.toml`), `scan` (listing the two
//! directories), `refresh` (an instance's life: init, then its refresh
//! loop), `listings` (listings between the provider, the store, the
//! fallback file and the catalog), `follow` (cluster mode: serving the
//! refresher's listings) and `ingest` (the phones an ingest instance lists).

pub mod check;
mod follow;
mod ingest;
mod instance_files;
mod listings;
mod modules;
mod refresh;
mod registry;
mod scan;
mod serving;

pub use ingest::IngestSession;
pub use listings::{check_streams, TooManyStreams};
pub use serving::{MetadataError, NotServing};

/// The module files the host loads, by module name: those of the shipped
/// modules directory and the operator's, the operator's taking precedence.
pub fn module_files(
    config: &crate::config::ProvidersConfig,
) -> std::collections::BTreeMap<String, std::path::PathBuf> {
    scan::list_modules(&config.modules_dirs())
        .into_iter()
        .map(|(name, (path, _))| (name, path))
        .collect()
}

use crate::catalog::{Catalog, ProviderState};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::plugin::module::Grant;
use crate::plugin::{PluginEngine, ProviderModule};
use crate::sync::lock;
use dss_store::Store;
use registry::State;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// How long a first use waits for a provider's first listing (a lazy one
/// woken by it, or any one still loading at start).
const LAZY_WAIT: Duration = Duration::from_secs(10);

/// Waits while `pending` holds, at most [`LAZY_WAIT`] after `start`,
/// looking every 20 ms (a first listing takes tens of milliseconds to
/// seconds).
async fn wait_while(start: std::time::Instant, pending: impl Fn() -> bool) {
    while pending() && start.elapsed() < LAZY_WAIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// All provider instances of the host.
pub struct Providers {
    engine: Arc<PluginEngine>,
    catalog: Arc<Catalog>,
    config: Arc<Config>,
    store: Arc<dyn Store>,
    /// Cluster mode: who refreshes each instance.
    cluster: Option<Arc<Cluster>>,
    state: tokio::sync::Mutex<State>,
    /// Lazy instances still waiting for their first use.
    lazy: std::sync::Mutex<HashMap<String, Arc<Notify>>>,
    /// The phones connected to each ingest instance (the mobile ingest
    /// writes, the instance's task re-lists when it changes).
    sessions: std::sync::Mutex<HashMap<String, watch::Sender<Vec<IngestSession>>>>,
    /// What `transform-metadata` needs of each serving instance.
    serving: std::sync::Mutex<HashMap<String, Serving>>,
    /// Whether the first reconciliation ran: before it, no instance is
    /// known, and a request waits for it rather than finding nothing.
    reconciled: std::sync::atomic::AtomicBool,
}

/// The module and configuration an instance serves with.
#[derive(Clone)]
struct Serving {
    module: Arc<ProviderModule>,
    grant: Grant,
    config_json: String,
    config: serde_json::Value,
}

impl Providers {
    /// Providers for `config`, publishing into `catalog`; in cluster mode,
    /// refreshed by one host of `cluster` at a time.
    pub fn new(
        engine: Arc<PluginEngine>,
        catalog: Arc<Catalog>,
        config: Arc<Config>,
        store: Arc<dyn Store>,
        cluster: Option<Arc<Cluster>>,
    ) -> Arc<Self> {
        Arc::new(Providers {
            engine,
            catalog,
            config,
            store,
            cluster,
            state: tokio::sync::Mutex::new(State::default()),
            lazy: std::sync::Mutex::new(HashMap::new()),
            sessions: std::sync::Mutex::new(HashMap::new()),
            serving: std::sync::Mutex::new(HashMap::new()),
            reconciled: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Sets the phones connected to ingest instance `instance`; its task
    /// lists them (online) at once.
    pub fn set_sessions(&self, instance: &str, sessions: Vec<IngestSession>) {
        lock(&self.sessions)
            .entry(instance.to_string())
            .or_insert_with(|| watch::channel(Vec::new()).0)
            .send_replace(sessions);
    }

    /// The string value of `field` of the entry of `key` in the array
    /// `list` of instance `instance`'s configuration (a phone's `token`
    /// in `phones`), if the instance serves.
    pub fn config_entry_field(
        &self,
        instance: &str,
        list: &str,
        key: &str,
        field: &str,
    ) -> Option<String> {
        let serving = lock(&self.serving).get(instance).cloned()?;
        serving.config.get(list)?.as_array()?.iter().find_map(|e| {
            (e.get("key")?.as_str()? == key)
                .then(|| e.get(field)?.as_str().map(str::to_string))
                .flatten()
        })
    }

    /// Runs instance `instance`'s `transform-metadata` on `metadata` (a
    /// JSON text) for stream `key`; the provider's answer (JSON text), or
    /// why there is none.
    pub async fn transform_metadata(
        &self,
        instance: &str,
        key: &str,
        metadata: String,
    ) -> Result<String, MetadataError> {
        let serving = lock(&self.serving)
            .get(instance)
            .cloned()
            .ok_or_else(|| MetadataError::NotServing(instance.to_string()))?;
        let key = key.to_string();
        tokio::task::spawn_blocking(move || {
            serving
                .module
                .transform_metadata(&serving.grant, &serving.config_json, &key, &metadata)
                .map(|(out, _)| out)
                .map_err(MetadataError::Call)
        })
        .await
        .map_err(|e| MetadataError::Panicked(e.to_string()))?
    }

    /// Wakes a lazy provider that has not listed yet, and waits (bounded)
    /// for the first listing of a provider that has none yet (a lazy one,
    /// one still loading at start or waiting for its module to compile, a
    /// cluster host's first read of the refresher's listing); returns at
    /// once for any other, or an unknown provider. While the host starts,
    /// it first waits for the instances to be read (a viewer of a host
    /// restarted under a running nginx).
    pub async fn ensure_listed(&self, provider: &str) {
        self.ensure_listed_since(provider, std::time::Instant::now())
            .await;
    }

    async fn ensure_listed_since(&self, provider: &str, start: std::time::Instant) {
        wait_while(start, || !self.reconciled()).await;
        wait_while(start, || {
            // Again on each look: a lazy instance may register only once
            // its module has loaded.
            if let Some(notify) = lock(&self.lazy).get(provider).cloned() {
                notify.notify_one();
            }
            self.first_listing_pending(provider)
        })
        .await;
    }

    /// Waits (bounded, like [`Providers::ensure_listed`]) until instance
    /// `id` serves with its module, so that its configuration and
    /// `transform-metadata` can be used (a phone's admission); returns
    /// whether it does, else why not.
    pub async fn ensure_serving(&self, id: &str) -> Result<(), NotServing> {
        let start = std::time::Instant::now();
        self.ensure_listed_since(id, start).await;
        let serving = || lock(&self.serving).contains_key(id);
        let status = || self.catalog.snapshot().providers.get(id).cloned();
        wait_while(start, || {
            !serving()
                && status().is_some_and(|s| {
                    s.state == ProviderState::Ready || s.state == ProviderState::Loading
                })
        })
        .await;
        if serving() {
            return Ok(());
        }
        Err(match status() {
            None => NotServing::Unknown,
            Some(s) => match s.last_error {
                Some(e) => NotServing::Failed(e),
                None => NotServing::StillLoading(LAZY_WAIT),
            },
        })
    }

    fn reconciled(&self) -> bool {
        self.reconciled.load(std::sync::atomic::Ordering::Acquire)
    }

    fn first_listing_pending(&self, provider: &str) -> bool {
        lock(&self.lazy).contains_key(provider)
            || self
                .catalog
                .snapshot()
                .providers
                .get(provider)
                .is_some_and(|p| p.state == ProviderState::Loading)
    }

    /// Whether the host is ready: its instances read, and none still
    /// loading a first listing; else what each pending one waits for
    /// (instance id, reason). Lazy instances are ready: they list on
    /// first use.
    pub fn pending(&self) -> Vec<(String, &'static str)> {
        if !self.reconciled() {
            return vec![(String::new(), "reading the instance files")];
        }
        self.catalog
            .snapshot()
            .providers
            .values()
            .filter(|p| p.state == ProviderState::Loading && !p.lazy_pending)
            .map(|p| {
                let why = if p.module_hash.is_none() {
                    "its module is loading (compiling)"
                } else {
                    "its first listing"
                };
                (p.id.clone(), why)
            })
            .collect()
    }

    /// [`Providers::ensure_listed`] for the provider of a stream id.
    pub async fn ensure_for_stream(&self, stream_id: &str) {
        if let Some((provider, _)) = stream_id.split_once('-') {
            self.ensure_listed(provider).await;
        }
    }

    /// Wakes every lazy provider still waiting (a request for all streams),
    /// once the instances are read.
    pub async fn ensure_all_listed(&self) {
        wait_while(std::time::Instant::now(), || !self.reconciled()).await;
        let pending: Vec<String> = lock(&self.lazy).keys().cloned().collect();
        for p in pending {
            self.ensure_listed(&p).await;
        }
    }

    /// Loads new or changed modules, then starts, restarts or stops
    /// instances so that they match the files.
    ///
    /// Modules load in the background, each on its own: an instance whose
    /// module is still compiling serves its persisted listing meanwhile
    /// (and counts as loading), and starts as soon as its module is ready,
    /// whatever other modules are doing.
    pub async fn reconcile(self: &Arc<Self>) {
        let mut state = self.state.lock().await;
        self.reconcile_modules(&mut state);
        self.reconcile_instances(&mut state);
        self.reconciled
            .store(true, std::sync::atomic::Ordering::Release);
        self.prune_cache(&state);
    }

    /// Every module file and the error of its current version, if any.
    pub async fn module_errors(&self) -> Vec<(String, Option<String>)> {
        let state = self.state.lock().await;
        state
            .modules
            .iter()
            .map(|(name, slot)| (name.clone(), slot.error.clone()))
            .collect()
    }
}
