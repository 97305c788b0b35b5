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
//! instance file and module (a [`Listing::fingerprint`]). A new version is
//! still tried on each host before it serves there. Ingest instances list
//! the phones connected to their own host: never shared.

use crate::catalog::{unix_ms, Catalog, Options, ProviderState, ProviderStatus, StreamEntry};
use crate::cluster::{Cluster, Refresher};
use crate::config::{Config, InstanceConfig, Limits};
use crate::ffmpeg::SourceGrant;
use crate::plugin::module::{Grant, ModuleInfo};
use crate::plugin::{CallError, PluginEngine, ProviderModule};
use crate::sync::lock;
use dss_store::{ListedStream, Listing, Store};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

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

/// Delay before retrying a provider whose last attempt failed.
const RETRY_MIN: Duration = Duration::from_secs(5);
/// Longest delay between retries of a failing provider.
const RETRY_MAX: Duration = Duration::from_secs(300);

/// Cluster mode: how often a host that does not refresh an instance looks
/// for the refresher's first listing while there is none (a stamp read, one
/// small query; the first listing takes tens of milliseconds to seconds).
const FOLLOW_FIRST: Duration = Duration::from_millis(250);

/// What identifies a file version cheaply (size and modification time).
type FileSig = (u64, Option<SystemTime>);

/// A module file: the version serving, and one being loaded.
struct ModuleSlot {
    /// The file version last loaded or refused.
    sig: Option<FileSig>,
    /// The version serving (the last that loaded).
    module: Option<Arc<ProviderModule>>,
    /// Why the last version tried was refused.
    error: Option<String>,
    /// A version being loaded in the background (compiling, for a new
    /// module): its instances wait for it; the previous version, if any,
    /// keeps serving.
    loading: Option<FileSig>,
}

/// The task serving an instance before a change was validated: the new
/// version's task aborts it once its first listing succeeds.
type Predecessor = Arc<std::sync::Mutex<Option<JoinHandle<()>>>>;

struct InstanceSlot {
    /// The instance file (the slot is keyed by id, which `prefix` may set).
    file: PathBuf,
    /// The instance file's hash and the module hash it runs with.
    fingerprint: (String, Option<String>),
    task: Option<JoinHandle<()>>,
    /// Still serving until `task` has validated the new version.
    predecessor: Predecessor,
    /// `task` only serves the persisted listing while the module is
    /// loaded: replaced (not a predecessor) when it is.
    awaiting_module: bool,
}

impl InstanceSlot {
    /// Takes the task that is actually serving (the predecessor when the
    /// current task has not validated yet, which is then abandoned).
    fn take_serving(&mut self) -> Option<JoinHandle<()>> {
        let pending = lock(&self.predecessor).take();
        match pending {
            Some(serving) => {
                if let Some(t) = self.task.take() {
                    t.abort();
                }
                Some(serving)
            }
            None => self.task.take(),
        }
    }
}

impl Drop for InstanceSlot {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        if let Some(t) = lock(&self.predecessor).take() {
            t.abort();
        }
    }
}

#[derive(Default)]
struct State {
    modules: HashMap<String, ModuleSlot>,
    instances: HashMap<String, InstanceSlot>,
    /// Instance files as last read, by path: a file whose size and time
    /// are unchanged is not read and parsed again (the rescan every few
    /// seconds would otherwise parse a 100,000-camera list each time).
    parsed: HashMap<PathBuf, (FileSig, Result<Instance, String>)>,
    /// Ids shown only to report a rejected new file: removed with it.
    rejected: Vec<String>,
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

/// A phone connected to the mobile ingest, as its instance lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IngestSession {
    /// The phone's key (its id).
    pub key: String,
    /// Display name.
    pub name: String,
    /// Connected now (else it left).
    pub online: bool,
}

/// The module and configuration an instance serves with.
#[derive(Clone)]
struct Serving {
    module: Arc<ProviderModule>,
    grant: Grant,
    config_json: String,
    config: serde_json::Value,
}

/// One instance file, read and checked.
#[derive(Clone)]
struct Instance {
    id: String,
    file: PathBuf,
    /// What tells versions of the file apart (its SHA-256): the text
    /// itself can be megabytes (a static list of 100,000 cameras).
    text_hash: String,
    /// Its `[config]` as the JSON every call gets (the parsed table is
    /// dropped: it weighs several times the text).
    config_json: Arc<str>,
    config: InstanceConfig,
    limits: Limits,
    /// What its stream sources may reach.
    grant: Arc<SourceGrant>,
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

    fn sessions_of(&self, instance: &str) -> watch::Receiver<Vec<IngestSession>> {
        lock(&self.sessions)
            .entry(instance.to_string())
            .or_insert_with(|| watch::channel(Vec::new()).0)
            .subscribe()
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
    ) -> Result<String, String> {
        let serving = lock(&self.serving)
            .get(instance)
            .cloned()
            .ok_or_else(|| format!("provider {instance:?} is not serving"))?;
        let key = key.to_string();
        tokio::task::spawn_blocking(move || {
            serving
                .module
                .transform_metadata(&serving.grant, &serving.config_json, &key, &metadata)
                .map(|(out, _)| out)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("call panicked: {e}"))?
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
    pub async fn ensure_serving(&self, id: &str) -> Result<(), String> {
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
            None => "no such instance".into(),
            Some(s) => s
                .last_error
                .unwrap_or_else(|| format!("still loading after {LAZY_WAIT:?}")),
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

    /// Bounds the compile cache once no module is loading (their
    /// artifacts being written are not known yet).
    fn prune_cache(&self, state: &State) {
        if state.modules.values().any(|m| m.loading.is_some()) {
            return;
        }
        let present: Vec<(String, Option<String>)> = state
            .modules
            .iter()
            .map(|(name, m)| (name.clone(), m.module.as_ref().map(|m| m.hash.clone())))
            .collect();
        let engine = self.engine.clone();
        // File operations: off the async threads.
        tokio::task::spawn_blocking(move || engine.cache().prune(&present));
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

    /// Starts loading every new or changed module file in the background
    /// ([`Providers::load_module`]); forgets removed ones.
    fn reconcile_modules(self: &Arc<Self>, state: &mut State) {
        let dir = &self.config.providers.modules_dir;
        let files = list_dir(dir, "wasm");
        state.modules.retain(|name, _| {
            let keep = files.contains_key(name);
            if !keep {
                tracing::info!(module = %name, "module removed");
            }
            keep
        });
        for (name, (path, sig)) in files {
            let slot = state.modules.entry(name.clone()).or_insert(ModuleSlot {
                sig: None,
                module: None,
                error: None,
                loading: None,
            });
            let known = match slot.loading {
                Some(loading) => loading == sig,
                None => slot.sig == Some(sig),
            };
            if known {
                continue;
            }
            slot.loading = Some(sig);
            tokio::spawn(self.clone().load_module(name, path, sig));
        }
    }

    /// Loads version `sig` of module `name` (compiled, or taken from the
    /// cache), then brings the instances in line with it; a version
    /// superseded meanwhile (the file changed again, or went) is dropped.
    async fn load_module(self: Arc<Self>, name: String, path: PathBuf, sig: FileSig) {
        let engine = self.engine.clone();
        let limits = self.config.providers.limits.clone();
        let p = path.clone();
        let loaded =
            tokio::task::spawn_blocking(move || ProviderModule::load(&engine, &p, &limits))
                .await
                .map_err(|e| format!("{}: loader panicked: {e}", path.display()))
                .and_then(|r| r.map_err(|e| e.to_string()));
        let mut state = self.state.lock().await;
        let Some(slot) = state.modules.get_mut(&name) else {
            return;
        };
        if slot.loading != Some(sig) {
            return;
        }
        slot.loading = None;
        slot.sig = Some(sig);
        match loaded {
            Ok(m) => {
                tracing::info!(
                    module = %name, version = %m.info.version, interface = %m.interface_version,
                    hash = %&m.hash[..12], origin = ?m.origin, "module loaded"
                );
                slot.module = Some(Arc::new(m));
                slot.error = None;
            }
            Err(e) => {
                tracing::error!(module = %name, "module rejected: {e}");
                if slot.module.is_some() {
                    tracing::warn!(module = %name, "the previous version keeps serving");
                }
                slot.error = Some(e);
            }
        }
        self.reconcile_instances(&mut state);
        self.prune_cache(&state);
        crate::memory::trim_soon();
    }

    /// The instance files, checked. Of two files claiming one id, the one
    /// already serving it keeps it (else the first by name); the other is
    /// rejected.
    fn read_instances(
        &self,
        running: &HashMap<String, InstanceSlot>,
        parsed: &mut HashMap<PathBuf, (FileSig, Result<Instance, String>)>,
    ) -> (Vec<Instance>, Vec<(String, PathBuf, String)>) {
        let dir = &self.config.providers.instances_dir;
        let mut good: Vec<Instance> = Vec::new();
        let mut bad = Vec::new();
        let files = list_dir(dir, "toml");
        parsed.retain(|path, _| files.values().any(|(f, _)| f == path));
        for (stem, (file, sig)) in files {
            let loaded = match parsed.get(&file) {
                Some((known, loaded)) if *known == sig => loaded.clone(),
                _ => {
                    let loaded = self.read_instance(&file);
                    parsed.insert(file.clone(), (sig, loaded.clone()));
                    loaded
                }
            };
            match loaded {
                Ok(mut inst) => {
                    let Some(other) = good.iter_mut().find(|i| i.id == inst.id) else {
                        good.push(inst);
                        continue;
                    };
                    if running.get(&inst.id).is_some_and(|r| r.file == inst.file) {
                        std::mem::swap(other, &mut inst);
                    }
                    let msg = format!(
                        "{}: provider id {:?} is already used by {}",
                        inst.file.display(),
                        inst.id,
                        other.file.display()
                    );
                    let stem = file_stem(&inst.file).unwrap_or(stem);
                    bad.push((stem, inst.file, msg));
                }
                Err(e) => bad.push((stem, file, e)),
            }
        }
        // A broken file's previous version keeps serving, and its id.
        let broken: Vec<PathBuf> = bad.iter().map(|(_, f, _)| f.clone()).collect();
        let (good, taken): (Vec<Instance>, Vec<Instance>) = good.into_iter().partition(|i| {
            !running
                .get(&i.id)
                .is_some_and(|r| r.file != i.file && broken.contains(&r.file))
        });
        for inst in taken {
            let holder = running.get(&inst.id).map(|r| r.file.display().to_string());
            let msg = format!(
                "{}: provider id {:?} is already used by {}",
                inst.file.display(),
                inst.id,
                holder.unwrap_or_default()
            );
            bad.push((file_stem(&inst.file).unwrap_or_default(), inst.file, msg));
        }
        (good, bad)
    }

    /// Reads and checks instance file `file`.
    fn read_instance(&self, file: &Path) -> Result<Instance, String> {
        let text_hash = std::fs::read(file)
            .map(|t| crate::plugin::cache::ComponentCache::content_hash(&t))
            .unwrap_or_default();
        let (id, mut config) = InstanceConfig::load(file).map_err(|e| e.to_string())?;
        let invalid = |message: String| {
            crate::config::ConfigError::Invalid {
                path: file.to_path_buf(),
                message,
            }
            .to_string()
        };
        let limits = config
            .limits(&self.config.providers.limits)
            .map_err(invalid)?;
        let grant = Arc::new(config.source_grant().map_err(invalid)?);
        let config_json = config.config_json().into();
        config.config = toml::Table::new();
        Ok(Instance {
            id,
            file: file.to_path_buf(),
            text_hash,
            config_json,
            config,
            limits,
            grant,
        })
    }

    fn reconcile_instances(self: &Arc<Self>, state: &mut State) {
        let (instances, bad) = self.read_instances(&state.instances, &mut state.parsed);
        let wanted: BTreeMap<&str, &Instance> =
            instances.iter().map(|i| (i.id.as_str(), i)).collect();
        // Running instances whose file is broken now: they keep going.
        let mut broken: Vec<String> = Vec::new();
        let previously_rejected = std::mem::take(&mut state.rejected);
        for (stem, file, error) in &bad {
            tracing::error!("provider instance rejected: {error}");
            // Found by file, not by name: `prefix` may differ from it.
            let running = state.instances.iter().find(|(_, s)| &s.file == file);
            if let Some((id, _)) = running {
                self.catalog
                    .edit_status(id, |s| s.last_error = Some(error.clone()));
                broken.push(id.clone());
                continue;
            }
            // A new file: reported under its name, if no other uses it.
            let id = stem.to_lowercase();
            let free = |id: &str| {
                !state.instances.contains_key(id)
                    && !wanted.contains_key(id)
                    && !state.rejected.iter().any(|r| r == id)
            };
            let id = if crate::ids::check_provider_id(&id).is_ok() && free(&id) {
                id
            } else {
                let n = state.instances.len() + state.rejected.len() + 1;
                (n..)
                    .map(|n| format!("invalid_{n}"))
                    .find(|id| free(id))
                    .unwrap_or_default()
            };
            self.catalog
                .set_status(failed_status(&id, "?", file, error.clone()));
            state.rejected.push(id);
        }
        for id in previously_rejected {
            let gone = !state.rejected.contains(&id)
                && !state.instances.contains_key(&id)
                && !wanted.contains_key(id.as_str());
            if gone {
                self.catalog.remove_provider(&id);
            }
        }
        state.instances.retain(|id, _| {
            let keep = wanted.contains_key(id.as_str()) || broken.contains(id);
            if !keep {
                tracing::info!(provider = %id, "provider instance removed");
                // Its streams' memory goes back to the system.
                crate::memory::trim_soon();
                self.catalog.remove_provider(id);
                lock(&self.serving).remove(id);
                self.release_refresh(id);
            }
            keep
        });
        for inst in instances {
            let slot = state.modules.get(&inst.config.module);
            let module = slot.and_then(|s| s.module.clone());
            let fingerprint = (
                inst.text_hash.clone(),
                module.as_ref().map(|m| m.hash.clone()),
            );
            let module_loading = slot.is_some_and(|s| s.loading.is_some());
            if let Some(running) = state.instances.get(&inst.id) {
                // One waiting for its module is done waiting once the
                // module has loaded or failed.
                let waited = running.awaiting_module && !module_loading;
                if running.fingerprint == fingerprint && running.file == inst.file && !waited {
                    // Unchanged; but a rejected update of its module is news.
                    if let (Some(err), Some(_)) = (slot.and_then(|s| s.error.clone()), &module) {
                        self.catalog.edit_status(&inst.id, |s| {
                            s.last_error = Some(format!(
                                "module update rejected, the previous version keeps serving: {err}"
                            ))
                        });
                    }
                    continue;
                }
            }
            let id = inst.id.clone();
            let file = inst.file.clone();
            let predecessor: Predecessor = Arc::default();
            let mut awaiting_module = false;
            let task = if !inst.config.enabled {
                self.catalog.replace_streams(&id, Vec::new());
                let mut st = failed_status(&id, &inst.config.module, &inst.file, String::new());
                st.state = ProviderState::Disabled;
                st.last_error = None;
                self.catalog.set_status(st);
                self.release_refresh(&id);
                None
            } else if let Some(module) = module {
                // A running instance keeps serving until the new version
                // (config or module) has listed successfully; one that
                // only waited for its module is replaced at once.
                let mut after_placeholder = false;
                let serving = match state.instances.get_mut(&id) {
                    Some(r) if r.awaiting_module => {
                        if let Some(t) = r.task.take() {
                            t.abort();
                        }
                        after_placeholder = true;
                        None
                    }
                    Some(r) => r.take_serving(),
                    None => None,
                };
                *lock(&predecessor) = serving;
                let me = self.clone();
                let pred = predecessor.clone();
                Some(tokio::spawn(async move {
                    me.run_instance(inst, module, pred, after_placeholder).await
                }))
            } else if module_loading {
                // Its module is compiling: what was listed before serves
                // meanwhile; a first use waits for the rest (bounded).
                awaiting_module = true;
                let me = self.clone();
                Some(tokio::spawn(async move { me.await_module(inst).await }))
            } else {
                let why = match slot.and_then(|s| s.error.clone()) {
                    Some(e) => e,
                    None => format!(
                        "module {:?} not found: no {}.wasm in {}",
                        inst.config.module,
                        inst.config.module,
                        self.config.providers.modules_dir.display()
                    ),
                };
                tracing::error!(provider = %id, "{why}");
                self.catalog
                    .set_status(failed_status(&id, &inst.config.module, &inst.file, why));
                self.release_refresh(&id);
                None
            };
            state.instances.insert(
                id,
                InstanceSlot {
                    file,
                    fingerprint,
                    task,
                    predecessor,
                    awaiting_module,
                },
            );
        }
    }

    /// An instance whose module is still loading (compiling): reported
    /// loading, serving its persisted listing if it has one.
    async fn await_module(self: Arc<Self>, inst: Instance) {
        let mut status = failed_status(&inst.id, &inst.config.module, &inst.file, String::new());
        status.state = ProviderState::Loading;
        status.last_error = None;
        status.thumbnails = inst.config.thumbnails;
        status.record = inst.config.record.clone();
        self.catalog.set_status(status.clone());
        tracing::info!(provider = %inst.id, module = %inst.config.module, "waiting for its module to load");
        self.serve_known_listing(&inst, &mut status).await;
    }

    /// Lifetime of one instance with one module: init, then list on every
    /// refresh, retrying failures with a growing delay. While `predecessor`
    /// holds the task of the previous version, that one keeps serving and
    /// this one only reports why it is not taking over; the first good
    /// listing aborts the predecessor and swaps the streams in at once.
    /// `after_placeholder`: the instance waited for its module, and what it
    /// served meanwhile (its persisted listing) is not read again.
    async fn run_instance(
        self: Arc<Self>,
        inst: Instance,
        module: Arc<ProviderModule>,
        predecessor: Predecessor,
        after_placeholder: bool,
    ) {
        let id = inst.id.clone();
        let grant = Grant {
            provider: Arc::from(id.as_str()),
            limits: inst.limits.clone(),
            allow_hosts: Arc::from(inst.config.allow_hosts.clone()),
            allow_private: inst.config.allow_private,
            secrets: inst.config.secret_values.clone(),
        };
        let mut status = ProviderStatus {
            id: id.clone(),
            module: module.name.clone(),
            file: inst.file.display().to_string(),
            state: ProviderState::Loading,
            version: Some(module.info.version.clone()),
            interface_version: Some(module.interface_version.clone()),
            module_hash: Some(module.hash.clone()),
            info: None,
            stream_count: 0,
            last_error: None,
            warnings: Vec::new(),
            loaded_at_ms: Some(unix_ms(module.loaded_at)),
            refreshed_at_ms: None,
            refreshed_by: None,
            listing_source: None,
            listing_fetched_at_ms: None,
            stale: false,
            lazy_pending: false,
            thumbnails: inst.config.thumbnails,
            record: inst.config.record.clone(),
        };
        let mut validated = lock(&predecessor).is_none();
        // A fresh instance serves what it knows before asking the provider.
        let mut first_wait = None;
        if validated {
            let served = after_placeholder
                .then(|| self.catalog.snapshot().providers.get(&id).cloned())
                .flatten()
                .filter(|p| p.listing_source.is_some());
            match served {
                Some(p) => {
                    status.state = ProviderState::Ready;
                    status.listing_source = p.listing_source;
                    status.listing_fetched_at_ms = p.listing_fetched_at_ms;
                    status.stale = p.stale;
                    self.catalog.set_status(status.clone());
                    first_wait = p
                        .listing_fetched_at_ms
                        .and_then(|t| cache_wait(&inst.config, t));
                }
                None => {
                    self.catalog.set_status(status.clone());
                    first_wait = self.serve_known_listing(&inst, &mut status).await;
                }
            }
        }
        if inst.config.lazy && validated {
            let notify = Arc::new(Notify::new());
            lock(&self.lazy).insert(id.clone(), notify.clone());
            status.lazy_pending = true;
            self.catalog.set_status(status.clone());
            tracing::info!(provider = %id, "lazy: listing on first use");
            notify.notified().await;
            status.lazy_pending = false;
        } else if let Some(wait) = first_wait {
            tracing::info!(provider = %id, ?wait, "persisted listing still valid (cache_seconds)");
            tokio::time::sleep(wait).await;
        }
        let config_json = inst.config_json.to_string();
        let ingest = is_ingest(&inst.config);
        let mut sessions = self.sessions_of(&id);
        let mut info: Option<ModuleInfo> = None;
        let mut retry = RETRY_MIN;
        let serving = Serving {
            module: module.clone(),
            grant: grant.clone(),
            config_json: config_json.clone(),
            // Only the ingest's phones (their tokens) are looked up in it;
            // parsed, a big static list would weigh several times its text.
            config: if ingest {
                serde_json::from_str(&config_json).unwrap_or_default()
            } else {
                serde_json::Value::Null
            },
        };
        if validated {
            // The version in place from now on (a phone can be admitted
            // while its first listing runs).
            lock(&self.serving).insert(id.clone(), serving.clone());
        }
        // Cluster mode (not for phones): one host refreshes, the others
        // follow its listings.
        let cluster = self.cluster.clone().filter(|_| !ingest);
        let fingerprint = fingerprint(&inst.text_hash, &module.hash);
        let mut follow = Follow::default();
        loop {
            let mut persist = true;
            if let Some(cluster) = &cluster {
                // A version not validated yet is tried here whoever
                // refreshes; its listing is persisted only by the refresher.
                let who = if validated {
                    cluster.refresher(&id).await
                } else {
                    Refresher::Here
                };
                persist = cluster.refreshes(&id);
                if who != Refresher::Here {
                    lock(&self.serving).insert(id.clone(), serving.clone());
                    // What `init` says of the instance (its name, its
                    // refresh), once.
                    if info.is_none() {
                        info = init_only(&serving, &mut status).await;
                    }
                    let refresh = inst
                        .config
                        .refresh_seconds
                        .or(info.as_ref().map(|i| i.refresh_seconds))
                        .filter(|s| *s > 0)
                        .map(|s| Duration::from_secs(s.into()));
                    let wait = self
                        .follow(
                            &inst,
                            &fingerprint,
                            who,
                            refresh,
                            &mut status,
                            &mut follow,
                            cluster,
                        )
                        .await;
                    if let Some(wait) = wait {
                        // A first use still waits while it is loading.
                        self.catalog.set_status(status.clone());
                        lock(&self.lazy).remove(&id);
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    // Listed here: the refresher's version differs, or is
                    // not known.
                }
                status.refreshed_by = Some(cluster.node_id().to_string());
            }
            let attempt = {
                let module = module.clone();
                let grant = grant.clone();
                let config_json = config_json.clone();
                // An ingest instance lists its connected phones too.
                let list_json = if ingest {
                    with_sessions(&config_json, &sessions.borrow_and_update())
                } else {
                    config_json.clone()
                };
                let known = info.clone();
                tokio::task::spawn_blocking(move || -> Result<_, CallError> {
                    let info = match known {
                        Some(i) => i,
                        None => module.init(&grant, &config_json)?.0,
                    };
                    let (streams, _) = module.list_streams(&grant, &list_json)?;
                    Ok((info, streams))
                })
                .await
            };
            let wait = match attempt {
                Ok(Ok((i, sources))) => {
                    let options = options_for(&i, &inst.config, &inst.grant);
                    let (entries, warnings) = check_streams(&id, sources, &options, &inst.limits);
                    for w in warnings.iter().take(5) {
                        tracing::warn!(provider = %id, "{w}");
                    }
                    match entries {
                        Ok(entries) => {
                            tracing::info!(provider = %id, streams = entries.len(), "listing refreshed");
                            let refresh = inst.config.refresh_seconds.unwrap_or(i.refresh_seconds);
                            if !validated {
                                if let Some(old) = lock(&predecessor).take() {
                                    old.abort();
                                }
                                validated = true;
                                tracing::info!(provider = %id, version = %module.info.version, hash = %&module.hash[..12], "new version swapped in");
                            }
                            let now = unix_ms(SystemTime::now());
                            lock(&self.serving).insert(id.clone(), serving.clone());
                            if persist {
                                // In a cluster, fenced by the refresh lease
                                // held now: a newer refresher's listing is
                                // never replaced by this one, and a lease
                                // lost during the call persists nothing.
                                match cluster.as_ref().map(|c| c.refresh_epoch(&id)) {
                                    Some(None) => {
                                        tracing::info!(provider = %id, "refresh lease lost during the call: listing not persisted")
                                    }
                                    fence => self.persist(
                                        &id,
                                        now,
                                        &entries,
                                        &fingerprint,
                                        fence.flatten(),
                                    ),
                                }
                            }
                            if entries.len() >= crate::memory::LARGE {
                                crate::memory::trim_soon();
                            }
                            self.catalog.replace_streams(&id, entries);
                            status.state = ProviderState::Ready;
                            status.last_error = None;
                            status.warnings = warnings;
                            status.refreshed_at_ms = Some(now);
                            status.listing_source = Some("provider");
                            status.listing_fetched_at_ms = Some(now);
                            status.stale = false;
                            status.info = Some(i.clone());
                            info = Some(i);
                            retry = RETRY_MIN;
                            (refresh > 0).then(|| Duration::from_secs(refresh.into()))
                        }
                        Err(e) => {
                            status.info = Some(i.clone());
                            info = Some(i);
                            self.fail(&mut status, e, &mut retry)
                        }
                    }
                }
                Ok(Err(e)) => {
                    if matches!(
                        e,
                        CallError::Guest {
                            code: "invalid-config",
                            ..
                        }
                    ) {
                        info = None;
                    }
                    self.fail(&mut status, e.to_string(), &mut retry)
                }
                Err(join) => self.fail(&mut status, format!("call panicked: {join}"), &mut retry),
            };
            // Listed here without being the refresher: the cluster is looked
            // at again within half a lease (`follow` says when to list here).
            let wait = match &cluster {
                Some(c) if !persist && status.state == ProviderState::Ready => {
                    follow.listed_here = Some(std::time::Instant::now());
                    Some(c.follow_interval())
                }
                _ => wait,
            };
            if validated {
                if status.state == ProviderState::Failed {
                    // The last good listing (if any) keeps serving.
                    status.stale = status.listing_source.is_some();
                    if status.listing_source.is_none() {
                        self.serve_fallback(&inst, &mut status);
                    }
                }
                // `set_status` fills in the stream count.
                self.catalog.set_status(status.clone());
                lock(&self.lazy).remove(&id);
            } else {
                let why = status.last_error.clone().unwrap_or_default();
                self.catalog.edit_status(&id, |s| {
                    s.last_error = Some(format!(
                        "new version ({} {}, sha256 {}) not swapped in, the previous version keeps serving: {why}",
                        module.name,
                        module.info.version,
                        &module.hash[..12]
                    ))
                });
            }
            let sleep = async {
                match wait {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending::<()>().await,
                }
            };
            let phones = async {
                if !ingest || sessions.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = sleep => {}
                _ = phones => {}
            }
        }
    }

    /// Serves the persisted listing of `inst`, else nothing; returns how
    /// long it stays valid (`cache_seconds`), if at all.
    async fn serve_known_listing(
        &self,
        inst: &Instance,
        status: &mut ProviderStatus,
    ) -> Option<Duration> {
        let listing = match self.store.get_listing(&inst.id).await {
            Ok(Some(l)) => l,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(provider = %inst.id, "cannot read the persisted listing: {e}");
                return None;
            }
        };
        let fetched = listing.fetched_at_ms;
        let n = self.serve_listed(inst, listing.streams, "cache", Some(fetched), status);
        tracing::info!(provider = %inst.id, streams = n, fetched_at_ms = fetched, "serving the persisted listing");
        status.state = ProviderState::Ready;
        self.catalog.set_status(status.clone());
        cache_wait(&inst.config, fetched)
    }

    /// Serves the instance's fallback file, when it has one.
    fn serve_fallback(&self, inst: &Instance, status: &mut ProviderStatus) {
        let Some(path) = &inst.config.fallback else {
            return;
        };
        let parsed = read_fallback(&inst.file, path)
            .and_then(|t| serde_json::from_str::<Vec<ListedStream>>(&t).map_err(|e| e.to_string()));
        match parsed {
            Ok(streams) => {
                let n = self.serve_listed(inst, streams, "fallback", None, status);
                tracing::warn!(provider = %inst.id, streams = n, file = %path.display(), "serving the fallback listing");
            }
            Err(e) => {
                let msg = format!("fallback file {}: {e}", path.display());
                tracing::error!(provider = %inst.id, "{msg}");
                status.warnings.push(msg);
            }
        }
    }

    /// Persists a successful listing (in the background: the store queues
    /// writes while a MongoDB is away).
    fn persist(
        &self,
        provider: &str,
        fetched_at_ms: u64,
        entries: &[StreamEntry],
        fingerprint: &str,
        epoch: Option<u64>,
    ) {
        let listing = Listing {
            provider: provider.to_string(),
            fetched_at_ms,
            fingerprint: Some(fingerprint.to_string()),
            epoch,
            streams: entries.iter().map(entry_to_listed).collect(),
        };
        let store = self.store.clone();
        let id = provider.to_string();
        let large = listing.streams.len() >= crate::memory::LARGE;
        tokio::spawn(async move {
            if let Err(e) = store.put_listing(listing).await {
                tracing::warn!(provider = %id, "listing not persisted: {e}");
            }
            if large {
                crate::memory::trim_soon();
            }
        });
    }

    /// Cluster mode, on a host that does not refresh instance `inst`:
    /// serves the refresher's latest listing when it is new. Returns when to
    /// look again, or `None` when this host must list itself (the
    /// refresher runs another version of the instance, or the store cannot
    /// say which host refreshes it).
    #[allow(clippy::too_many_arguments)]
    async fn follow(
        &self,
        inst: &Instance,
        fingerprint: &str,
        who: Refresher,
        refresh: Option<Duration>,
        status: &mut ProviderStatus,
        follow: &mut Follow,
        cluster: &Cluster,
    ) -> Option<Duration> {
        let poll = cluster.follow_interval();
        let host = match who {
            Refresher::Host(h) => h,
            Refresher::Here => return None,
            Refresher::Unknown(why) => {
                // MongoDB is away: no host can tell, so each lists for
                // itself (not persisted) rather than all serving nothing.
                if !follow.due_here(refresh) {
                    return Some(poll);
                }
                tracing::warn!(provider = %inst.id, "cluster: which host refreshes it is not known ({why}): listing here");
                return None;
            }
        };
        status.refreshed_by = Some(host.clone());
        let stamp = match self.store.listing_stamp(&inst.id).await {
            Ok(s) => s,
            Err(e) => {
                status.last_error =
                    Some(format!("cluster: cannot read host {host}'s listing: {e}"));
                status.stale = status.listing_source.is_some();
                return Some(poll);
            }
        };
        let Some(stamp) = stamp else {
            // Nothing listed yet: the fallback file serves meanwhile.
            if status.listing_source.is_none() {
                self.serve_fallback(inst, status);
            }
            return Some(FOLLOW_FIRST);
        };
        if stamp.fingerprint.as_deref() != Some(fingerprint) {
            if follow.differs != Some(stamp.fetched_at_ms) {
                tracing::warn!(provider = %inst.id, host = %host, "cluster: the refreshing host runs another version of this instance (file or module): listing here until they match");
                follow.differs = Some(stamp.fetched_at_ms);
            }
            return (!follow.due_here(refresh)).then_some(poll);
        }
        follow.differs = None;
        if follow.served == Some(stamp.fetched_at_ms) {
            return Some(poll);
        }
        let listing = match self.store.get_listing(&inst.id).await {
            Ok(Some(l)) => l,
            Ok(None) => return Some(FOLLOW_FIRST),
            Err(e) => {
                status.last_error =
                    Some(format!("cluster: cannot read host {host}'s listing: {e}"));
                return Some(poll);
            }
        };
        let fetched = listing.fetched_at_ms;
        let n = self.serve_listed(inst, listing.streams, "cluster", Some(fetched), status);
        tracing::info!(provider = %inst.id, host = %host, streams = n, fetched_at_ms = fetched, "cluster: serving the refreshing host's listing");
        // The refresher's latest listing: not stale.
        status.stale = false;
        status.state = ProviderState::Ready;
        status.last_error = None;
        status.warnings.clear();
        status.refreshed_at_ms = Some(fetched);
        follow.served = Some(fetched);
        Some(poll)
    }

    /// Serves `streams` not listed by this host (persisted, another host's,
    /// or the fallback file), re-checked against the instance's own limits
    /// and grant, as its listing from `source`: stale unless the caller
    /// says otherwise. Returns how many it serves.
    fn serve_listed(
        &self,
        inst: &Instance,
        streams: Vec<ListedStream>,
        source: &'static str,
        fetched_at_ms: Option<u64>,
        status: &mut ProviderStatus,
    ) -> usize {
        let entries = listed_to_entries(
            &inst.id,
            streams,
            &inst.limits,
            &inst.grant,
            is_ingest(&inst.config),
        );
        let n = entries.len();
        if n >= crate::memory::LARGE {
            crate::memory::trim_soon();
        }
        self.catalog.replace_streams(&inst.id, entries);
        status.listing_source = Some(source);
        status.listing_fetched_at_ms = fetched_at_ms;
        status.stale = true;
        n
    }

    /// Cluster mode: gives up instance `id`'s refresh lease (in the
    /// background), when this host no longer serves it.
    fn release_refresh(&self, id: &str) {
        if let Some(c) = self.cluster.clone() {
            let id = id.to_string();
            tokio::spawn(async move { c.release_provider(&id).await });
        }
    }

    fn fail(
        &self,
        status: &mut ProviderStatus,
        error: String,
        retry: &mut Duration,
    ) -> Option<Duration> {
        tracing::error!(provider = %status.id, "provider failed: {error}");
        status.state = ProviderState::Failed;
        status.last_error = Some(error);
        let wait = *retry;
        *retry = (*retry * 2).min(RETRY_MAX);
        Some(wait)
    }
}

/// How long a listing fetched at `fetched_at_ms` is still trusted without
/// asking the provider (`cache_seconds`), if at all.
fn cache_wait(inst: &InstanceConfig, fetched_at_ms: u64) -> Option<Duration> {
    let age = unix_ms(SystemTime::now()).saturating_sub(fetched_at_ms);
    let valid = inst.cache_seconds.saturating_mul(1000);
    (age < valid).then(|| Duration::from_millis(valid - age))
}

/// Runs only `init` (a host following another's listings still shows what
/// the provider says of itself).
async fn init_only(serving: &Serving, status: &mut ProviderStatus) -> Option<ModuleInfo> {
    let serving = serving.clone();
    let got = tokio::task::spawn_blocking(move || {
        serving.module.init(&serving.grant, &serving.config_json)
    })
    .await;
    match got {
        Ok(Ok((i, _))) => {
            status.info = Some(i.clone());
            Some(i)
        }
        Ok(Err(e)) => {
            status.warnings = vec![format!("init: {e}")];
            None
        }
        Err(e) => {
            status.warnings = vec![format!("init: call panicked: {e}")];
            None
        }
    }
}

/// Cluster mode: what a host following another's listings has seen.
#[derive(Debug, Default)]
struct Follow {
    /// The fetch time of the listing it serves.
    served: Option<u64>,
    /// The fetch time of a listing of another version it was warned of.
    differs: Option<u64>,
    /// When it last listed the instance itself (the refresher's version
    /// differs, or is not known).
    listed_here: Option<std::time::Instant>,
}

impl Follow {
    /// Whether this host lists the instance itself again now: never done
    /// yet, or its refresh interval has passed (`None`: it never refreshes).
    fn due_here(&self, refresh: Option<Duration>) -> bool {
        match (self.listed_here, refresh) {
            (None, _) => true,
            (Some(at), Some(every)) => at.elapsed() >= every,
            (Some(_), None) => false,
        }
    }
}

/// What identifies a version of an instance across hosts: its file's hash
/// and its module's, hashed.
fn fingerprint(instance_hash: &str, module_hash: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(module_hash.as_bytes());
    h.update([0]);
    h.update(instance_hash.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Reads the fallback file `fallback` of the instance file `instance_file`:
/// an absolute path as the operator gave it, a relative one through a
/// handle on the instance file's directory, so it cannot lead out of it.
fn read_fallback(instance_file: &Path, fallback: &Path) -> Result<String, String> {
    if fallback.is_absolute() {
        return std::fs::read_to_string(fallback).map_err(|e| e.to_string());
    }
    let dir = match instance_file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    crate::files::HostDir::open(dir)
        .and_then(|d| d.read_to_string(fallback))
        .map_err(|e| e.to_string())
}

fn entry_to_listed(e: &StreamEntry) -> ListedStream {
    ListedStream {
        key: e.key.clone(),
        source: e.source.to_string(),
        name: e.name.clone(),
        geo: e.geo.map(|g| dss_store::Geo {
            lat: g.lat,
            lon: g.lon,
        }),
        online: e.online,
        input_options: e.input_options.to_vec(),
        output_options: e.output_options.to_vec(),
        tags: e.tags.clone(),
    }
}

/// Checks persisted or fallback streams with the same rules as fresh ones
/// (the FFmpeg policy included, under the instance's current grant).
/// Streams stored with the same options share them, checked once.
fn listed_to_entries(
    provider: &str,
    streams: Vec<ListedStream>,
    limits: &Limits,
    grant: &Arc<SourceGrant>,
    ingest: bool,
) -> Vec<StreamEntry> {
    let mut out = Vec::with_capacity(streams.len().min(limits.max_streams));
    let mut shared: HashMap<(Vec<String>, Vec<String>), Options> = HashMap::new();
    for l in streams.into_iter().take(limits.max_streams) {
        let options = shared
            .entry((l.input_options, l.output_options))
            .or_insert_with_key(|(input, output)| {
                Options::new(input.clone(), output.clone(), grant.clone(), ingest)
            })
            .clone();
        let source = crate::plugin::bindings::StreamSource {
            key: l.key,
            source: l.source,
            name: l.name,
            geo: l
                .geo
                .map(|g| crate::plugin::bindings::dss::provider::types::Geo {
                    lat: g.lat,
                    lon: g.lon,
                }),
            // A persisted phone is not connected to this run.
            online: l.online && !ingest,
            input_options: Vec::new(),
            tags: l
                .tags
                .into_iter()
                .map(
                    |(key, value)| crate::plugin::bindings::dss::provider::types::Tag {
                        key,
                        value,
                    },
                )
                .collect(),
        };
        match StreamEntry::from_source(provider, source, &options, limits) {
            Ok(e) => out.push(e),
            Err(e) => tracing::warn!(provider, "stored stream skipped: {e}"),
        }
    }
    out
}

/// The FFmpeg options of an instance: its overrides, else the provider's;
/// with the instance's source grant.
fn options_for(info: &ModuleInfo, inst: &InstanceConfig, grant: &Arc<SourceGrant>) -> Options {
    Options::new(
        inst.input_options
            .clone()
            .unwrap_or_else(|| info.input_options.clone()),
        inst.output_options
            .clone()
            .unwrap_or_else(|| info.output_options.clone()),
        grant.clone(),
        is_ingest(inst),
    )
}

/// `config_json` (an object) with the connected phones as `sessions`.
fn with_sessions(config_json: &str, sessions: &[IngestSession]) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(config_json).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(o) = v.as_object_mut() {
        o.insert("sessions".into(), serde_json::json!(sessions));
    }
    v.to_string()
}

/// Whether an instance's `pipe:0` streams are phones of the host's ingest.
fn is_ingest(inst: &InstanceConfig) -> bool {
    inst.module == "mobile-ts"
}

/// Checks a listing: invalid streams are skipped with a warning; streams the
/// FFmpeg policy refuses are kept (with their reason) and counted in a
/// warning; a listing over the stream limit is refused whole.
pub fn check_streams(
    provider: &str,
    sources: Vec<crate::plugin::bindings::StreamSource>,
    options: &Options,
    limits: &Limits,
) -> (Result<Vec<StreamEntry>, String>, Vec<String>) {
    if sources.len() > limits.max_streams {
        return (
            Err(format!(
                "listed {} streams, more than the limit of {}",
                sources.len(),
                limits.max_streams
            )),
            Vec::new(),
        );
    }
    let mut warnings = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(sources.len());
    let mut skipped = 0usize;
    for s in sources {
        match StreamEntry::from_source(provider, s, options, limits) {
            Ok(e) if seen.insert(e.key.clone()) => out.push(e),
            Ok(e) => {
                skipped += 1;
                if warnings.len() < 10 {
                    warnings.push(format!("duplicate key {:?} skipped", e.key));
                }
            }
            Err(e) => {
                skipped += 1;
                if warnings.len() < 10 {
                    warnings.push(format!("stream skipped: {e}"));
                }
            }
        }
    }
    if skipped > warnings.len() {
        warnings.push(format!("{skipped} streams skipped in all"));
    }
    let mut refused = out.iter().filter_map(|e| Some((&e.key, e.refusal()?)));
    if let Some((key, why)) = refused.next() {
        let more = refused.count();
        warnings.push(format!(
            "{} refused by the FFmpeg policy (they stay listed but cannot play); stream {key:?}: {why}",
            if more == 0 {
                "1 stream is".to_string()
            } else {
                format!("{} streams are", more + 1)
            }
        ));
    }
    (Ok(out), warnings)
}

fn failed_status(id: &str, module: &str, file: &Path, error: String) -> ProviderStatus {
    ProviderStatus {
        id: id.to_string(),
        module: module.to_string(),
        file: file.display().to_string(),
        state: ProviderState::Failed,
        version: None,
        interface_version: None,
        module_hash: None,
        info: None,
        stream_count: 0,
        last_error: Some(error),
        warnings: Vec::new(),
        loaded_at_ms: None,
        refreshed_at_ms: None,
        refreshed_by: None,
        listing_source: None,
        listing_fetched_at_ms: None,
        stale: false,
        lazy_pending: false,
        thumbnails: Default::default(),
        record: None,
    }
}

fn file_stem(file: &Path) -> Option<String> {
    file.file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_string)
}

/// Files `*.ext` of `dir` by stem, with their signature. Hidden files and
/// editor/partial-copy leftovers (`.name.wasm`, `name.wasm.tmp`) are skipped
/// by the extension and dot checks.
fn list_dir(dir: &Path, ext: &str) -> BTreeMap<String, (PathBuf, FileSig)> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        tracing::warn!(dir = %dir.display(), "directory not readable");
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some(ext) {
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if stem.starts_with('.') {
            continue;
        }
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        out.insert(stem.to_string(), (path, (meta.len(), meta.modified().ok())));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_lists_for_itself_once_per_refresh_interval() {
        let mut f = Follow::default();
        let every = Some(Duration::from_secs(60));
        assert!(f.due_here(every), "never listed here yet");
        assert!(f.due_here(None));
        f.listed_here = Some(std::time::Instant::now());
        assert!(!f.due_here(every));
        assert!(
            !f.due_here(None),
            "an instance that never refreshes is listed once"
        );
        f.listed_here = std::time::Instant::now().checked_sub(Duration::from_secs(61));
        assert!(f.due_here(every));
    }

    #[test]
    fn fingerprints_tell_instance_files_and_modules_apart() {
        let a = fingerprint("module = \"m\"\n", "abc");
        assert_eq!(a, fingerprint("module = \"m\"\n", "abc"));
        assert_eq!(a.len(), 32);
        assert_ne!(a, fingerprint("module = \"m\"\n# changed\n", "abc"));
        assert_ne!(a, fingerprint("module = \"m\"\n", "abd"));
        // The boundary between the two is marked.
        assert_ne!(fingerprint("bc", "a"), fingerprint("c", "ab"));
    }

    #[test]
    fn a_relative_fallback_stays_in_the_instances_directory() {
        let top = std::env::temp_dir().join(format!("dss-fallback-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&top);
        let dir = top.join("providers.d");
        std::fs::create_dir_all(dir.join("lists")).unwrap();
        std::fs::write(top.join("elsewhere.json"), "[]").unwrap();
        std::fs::write(dir.join("lists/rio.json"), "[1]").unwrap();
        std::os::unix::fs::symlink(top.join("elsewhere.json"), dir.join("out.json")).unwrap();
        std::os::unix::fs::symlink("lists/rio.json", dir.join("in.json")).unwrap();
        let inst = dir.join("rio.toml");
        let read = |f: &str| read_fallback(&inst, Path::new(f));
        assert_eq!(read("lists/rio.json").unwrap(), "[1]");
        assert_eq!(read("in.json").unwrap(), "[1]", "a symlink inside is fine");
        for bad in [
            "../elsewhere.json",
            "lists/../../elsewhere.json",
            "out.json",
        ] {
            let e = read(bad).expect_err(bad);
            assert!(e.contains("outside"), "{bad}: {e}");
        }
        let abs = top.join("elsewhere.json");
        assert_eq!(
            read(abs.to_str().unwrap()).unwrap(),
            "[]",
            "an absolute path is the operator's explicit choice"
        );
        assert!(read("missing.json").unwrap_err().contains("missing.json"));
        let _ = std::fs::remove_dir_all(&top);
    }
}
