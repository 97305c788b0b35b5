//! An instance's life with one module: what it serves before asking the
//! provider, `init`, then a listing on every refresh, failures retried with
//! a growing delay; a new version swaps in on its first good listing.
//!
//! `run_instance` goes through the phases: what it serves first (the
//! persisted listing), waiting for its first use (lazy) or for that
//! listing to expire, then rounds of: who lists (cluster mode), listing
//! here, applying the listing, reporting, waiting for the next round.

use super::follow::{fingerprint, Follow};
use super::ingest::{is_ingest, with_sessions, IngestSession};
use super::instance_files::Instance;
use super::listings::check_streams;
use super::registry::{failed_status, Predecessor};
use super::{Providers, Serving};
use crate::backoff::{Backoff, Policy};
use crate::catalog::{unix_ms, Options, ProviderState, ProviderStatus};
use crate::cluster::{Cluster, Refresher};
use crate::config::InstanceConfig;
use crate::ffmpeg::SourceGrant;
use crate::plugin::bindings::StreamSource;
use crate::plugin::module::{Grant, ModuleInfo};
use crate::plugin::{CallError, ProviderModule};
use crate::sync::lock;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{watch, Notify};
use tokio::task::JoinError;

/// Pacing of a failing provider's retries: 5 s after the first failure,
/// doubling to 5 min (an upstream that is down is not hammered; one that
/// is back is listed again within minutes). A success starts over.
const RETRY: Policy = Policy {
    initial: Duration::from_secs(5),
    max: Duration::from_secs(300),
    // Only a success resets the pacing ([`Backoff::reset`]).
    stable: Duration::MAX,
    // Rounds are paced by the refresh interval and the delay alone.
    min_interval: Duration::ZERO,
};

/// One instance's run with one module: what its rounds carry from one to
/// the next.
struct Run {
    inst: Instance,
    module: Arc<ProviderModule>,
    /// The task of the previous version, serving until this one validates.
    predecessor: Predecessor,
    /// Whether this version serves (it had no predecessor, or listed once).
    validated: bool,
    /// The module, grant and configuration the calls are made with.
    serving: Serving,
    status: ProviderStatus,
    /// What `init` said of the instance, once known.
    info: Option<ModuleInfo>,
    /// The pacing of retries, should this round fail.
    retry: Backoff,
    /// An ingest instance: it lists the phones connected too.
    ingest: bool,
    /// The phones connected (an ingest instance lists again when they
    /// change).
    sessions: watch::Receiver<Vec<IngestSession>>,
    /// Cluster mode (not for phones): one host refreshes, the others
    /// follow its listings.
    cluster: Option<Arc<Cluster>>,
    /// This version's [`fingerprint`], which its listings carry.
    fingerprint: String,
    /// Cluster mode: what this host has seen of the refresher's listings.
    follow: Follow,
}

/// Who lists an instance this round.
enum Turn {
    /// Another host's listing serves (or is awaited): look again after
    /// this long.
    Follow(Duration),
    /// This host lists; its listing is persisted when `persist`.
    List { persist: bool },
}

/// What a call of the provider (`init` when needed, then `list-streams`)
/// gave.
type Attempt = Result<Result<(ModuleInfo, Vec<StreamSource>), CallError>, JoinError>;

impl Providers {
    /// An instance whose module is still loading (compiling): reported
    /// loading, serving its persisted listing if it has one.
    pub(super) async fn await_module(self: Arc<Self>, inst: Instance) {
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
    pub(super) async fn run_instance(
        self: Arc<Self>,
        inst: Instance,
        module: Arc<ProviderModule>,
        predecessor: Predecessor,
        after_placeholder: bool,
    ) {
        let validated = lock(&predecessor).is_none();
        let mut status = starting_status(&inst, &module);
        if validated {
            // A fresh instance serves what it knows before asking the provider.
            let first_wait = self
                .serve_before_listing(&inst, after_placeholder, &mut status)
                .await;
            self.wait_first_listing(&inst, first_wait, &mut status)
                .await;
        }
        let mut run = self.new_run(inst, module, predecessor, validated, status);
        if run.validated {
            // The version in place from now on (a phone can be admitted
            // while its first listing runs).
            lock(&self.serving).insert(run.inst.id.clone(), run.serving.clone());
        }
        loop {
            let persist = match self.turn(&mut run).await {
                Turn::Follow(wait) => {
                    // A first use still waits while it is loading.
                    self.catalog.set_status(run.status.clone());
                    lock(&self.lazy).remove(&run.inst.id);
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Turn::List { persist } => persist,
            };
            let wait = self.list_here(&mut run, persist).await;
            self.report_round(&mut run);
            run.until_next_round(wait).await;
        }
    }

    /// What a fresh instance serves before asking the provider: what it
    /// served while it waited for its module (`after_placeholder`), else
    /// its persisted listing. Returns how long that is still trusted
    /// (`cache_seconds`), if at all.
    async fn serve_before_listing(
        &self,
        inst: &Instance,
        after_placeholder: bool,
        status: &mut ProviderStatus,
    ) -> Option<Duration> {
        let served = after_placeholder
            .then(|| self.catalog.snapshot().providers.get(&inst.id).cloned())
            .flatten()
            .filter(|p| p.listing_source.is_some());
        match served {
            Some(p) => {
                status.state = ProviderState::Ready;
                status.listing_source = p.listing_source;
                status.listing_fetched_at_ms = p.listing_fetched_at_ms;
                status.stale = p.stale;
                self.catalog.set_status(status.clone());
                p.listing_fetched_at_ms
                    .and_then(|t| cache_wait(&inst.config, t))
            }
            None => {
                self.catalog.set_status(status.clone());
                self.serve_known_listing(inst, status).await
            }
        }
    }

    /// Waits before a fresh instance's first listing: a lazy one for its
    /// first use, another as long as what it serves is trusted
    /// (`first_wait`).
    async fn wait_first_listing(
        &self,
        inst: &Instance,
        first_wait: Option<Duration>,
        status: &mut ProviderStatus,
    ) {
        let id = &inst.id;
        if inst.config.lazy {
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
    }

    /// The run of `inst` with `module`, before its first round.
    fn new_run(
        &self,
        inst: Instance,
        module: Arc<ProviderModule>,
        predecessor: Predecessor,
        validated: bool,
        status: ProviderStatus,
    ) -> Run {
        let config_json = inst.config_json.to_string();
        let ingest = is_ingest(&inst.config);
        let serving = Serving {
            module: module.clone(),
            grant: grant_for(&inst),
            config_json: config_json.clone(),
            // Only the ingest's phones (their tokens) are looked up in it;
            // parsed, a big static list would weigh several times its text.
            config: if ingest {
                serde_json::from_str(&config_json).unwrap_or_default()
            } else {
                serde_json::Value::Null
            },
        };
        let sessions = self.sessions_of(&inst.id);
        // Cluster mode (not for phones): one host refreshes, the others
        // follow its listings.
        let cluster = self.cluster.clone().filter(|_| !ingest);
        let fingerprint = fingerprint(&inst.text_hash, &module.hash);
        Run {
            inst,
            module,
            predecessor,
            validated,
            serving,
            status,
            info: None,
            retry: Backoff::new(RETRY),
            ingest,
            sessions,
            cluster,
            fingerprint,
            follow: Follow::default(),
        }
    }

    /// Who lists the instance this round: this host outside cluster mode;
    /// in it, the refresher, which persists its listing, and any host for
    /// a version not validated yet (tried here whoever refreshes); the
    /// others follow the refresher's listings, unless it runs another
    /// version or is not known.
    async fn turn(&self, run: &mut Run) -> Turn {
        let Some(cluster) = &run.cluster else {
            return Turn::List { persist: true };
        };
        let id = &run.inst.id;
        let who = if run.validated {
            cluster.refresher(id).await
        } else {
            Refresher::Here
        };
        let persist = cluster.refreshes(id);
        if who != Refresher::Here {
            lock(&self.serving).insert(id.clone(), run.serving.clone());
            // What `init` says of the instance (its name, its refresh), once.
            if run.info.is_none() {
                run.info = init_only(&run.serving, &mut run.status).await;
            }
            let refresh = run
                .inst
                .config
                .refresh_seconds
                .or(run.info.as_ref().map(|i| i.refresh_seconds))
                .filter(|s| *s > 0)
                .map(|s| Duration::from_secs(s.into()));
            let wait = self
                .follow(
                    &run.inst,
                    &run.fingerprint,
                    who,
                    refresh,
                    &mut run.status,
                    &mut run.follow,
                    cluster,
                )
                .await;
            if let Some(wait) = wait {
                return Turn::Follow(wait);
            }
            // Listed here: the refresher's version differs, or is not known.
        }
        run.status.refreshed_by = Some(cluster.node_id().to_string());
        Turn::List { persist }
    }

    /// Lists the instance here and applies the outcome (`persist`: the
    /// listing is persisted); returns when to list again, if ever.
    async fn list_here(&self, run: &mut Run, persist: bool) -> Option<Duration> {
        let wait = match call_provider(run).await {
            Ok(Ok((info, sources))) => self.apply_listing(run, info, sources, persist),
            Ok(Err(e)) => {
                if matches!(
                    e,
                    CallError::Guest {
                        code: "invalid-config",
                        ..
                    }
                ) {
                    run.info = None;
                }
                self.fail(&mut run.status, e.to_string(), &mut run.retry)
            }
            Err(join) => self.fail(
                &mut run.status,
                format!("call panicked: {join}"),
                &mut run.retry,
            ),
        };
        // Listed here without being the refresher: the cluster is looked
        // at again within half a lease (`follow` says when to list here).
        match &run.cluster {
            Some(c) if !persist && run.status.state == ProviderState::Ready => {
                run.follow.listed_here = Some(std::time::Instant::now());
                Some(c.follow_interval())
            }
            _ => wait,
        }
    }

    /// Applies the provider's listing (`info`: what its `init` said):
    /// checked, then swapped in (a new version with it), persisted
    /// (`persist`) and reported; refused whole, it is a failure. Returns
    /// when to list again, if ever.
    fn apply_listing(
        &self,
        run: &mut Run,
        info: ModuleInfo,
        sources: Vec<StreamSource>,
        persist: bool,
    ) -> Option<Duration> {
        let id = &run.inst.id;
        let options = options_for(&info, &run.inst.config, &run.inst.grant);
        let (entries, warnings) = check_streams(id, sources, &options, &run.inst.limits);
        for w in warnings.iter().take(5) {
            tracing::warn!(provider = %id, "{w}");
        }
        let entries = match entries {
            Ok(entries) => entries,
            Err(e) => {
                run.status.info = Some(info.clone());
                run.info = Some(info);
                return self.fail(&mut run.status, e.to_string(), &mut run.retry);
            }
        };
        tracing::info!(provider = %id, streams = entries.len(), "listing refreshed");
        let refresh = run
            .inst
            .config
            .refresh_seconds
            .unwrap_or(info.refresh_seconds);
        if !run.validated {
            if let Some(old) = lock(&run.predecessor).take() {
                old.abort();
            }
            run.validated = true;
            let module = &run.module;
            tracing::info!(provider = %id, version = %module.info.version, hash = %&module.hash[..12], "new version swapped in");
        }
        let now = unix_ms(SystemTime::now());
        lock(&self.serving).insert(id.clone(), run.serving.clone());
        if persist {
            // In a cluster, fenced by the refresh lease held now: a newer
            // refresher's listing is never replaced by this one, and a
            // lease lost during the call persists nothing.
            match run.cluster.as_ref().map(|c| c.refresh_epoch(id)) {
                Some(None) => {
                    tracing::info!(provider = %id, "refresh lease lost during the call: listing not persisted")
                }
                fence => self.persist(id, now, &entries, &run.fingerprint, fence.flatten()),
            }
        }
        if entries.len() >= crate::memory::LARGE {
            crate::memory::trim_soon();
        }
        self.catalog.replace_streams(id, entries);
        let status = &mut run.status;
        status.state = ProviderState::Ready;
        status.last_error = None;
        status.warnings = warnings;
        status.refreshed_at_ms = Some(now);
        status.listing_source = Some("provider");
        status.listing_fetched_at_ms = Some(now);
        status.stale = false;
        status.info = Some(info.clone());
        run.info = Some(info);
        run.retry.reset();
        (refresh > 0).then(|| Duration::from_secs(refresh.into()))
    }

    /// Reports the round: a serving version's status (failed, its last
    /// good listing keeps serving, marked stale, else its fallback file);
    /// for a new version not validated yet, why it is not taking over, on
    /// the status of the version still serving.
    fn report_round(&self, run: &mut Run) {
        let id = &run.inst.id;
        if run.validated {
            let status = &mut run.status;
            if status.state == ProviderState::Failed {
                // The last good listing (if any) keeps serving.
                status.stale = status.listing_source.is_some();
                if status.listing_source.is_none() {
                    self.serve_fallback(&run.inst, status);
                }
            }
            // `set_status` fills in the stream count.
            self.catalog.set_status(status.clone());
            lock(&self.lazy).remove(id);
        } else {
            let why = run.status.last_error.clone().unwrap_or_default();
            let module = &run.module;
            self.catalog.edit_status(id, |s| {
                s.last_error = Some(format!(
                    "new version ({} {}, sha256 {}) not swapped in, the previous version keeps serving: {why}",
                    module.name,
                    module.info.version,
                    &module.hash[..12]
                ))
            });
        }
    }

    /// Marks the instance failed for `error`; returns the delay before the
    /// next try (`retry` doubles it, up to [`RETRY`]'s cap).
    fn fail(
        &self,
        status: &mut ProviderStatus,
        error: String,
        retry: &mut Backoff,
    ) -> Option<Duration> {
        tracing::error!(provider = %status.id, %error, "provider failed");
        status.state = ProviderState::Failed;
        status.last_error = Some(error);
        Some(retry.fail(None, std::time::Instant::now()))
    }
}

impl Run {
    /// Waits `wait` (`None`: for ever) or, for an ingest instance, until
    /// its phones change.
    async fn until_next_round(&mut self, wait: Option<Duration>) {
        let sleep = async {
            match wait {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending::<()>().await,
            }
        };
        let ingest = self.ingest;
        let sessions = &mut self.sessions;
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

/// Calls the provider: `init`, unless what it says of the instance is
/// known, then `list-streams` (an ingest instance's with the phones
/// connected).
async fn call_provider(run: &mut Run) -> Attempt {
    let module = run.module.clone();
    let grant = run.serving.grant.clone();
    let config_json = run.serving.config_json.clone();
    // An ingest instance lists its connected phones too.
    let list_json = if run.ingest {
        with_sessions(&config_json, &run.sessions.borrow_and_update())
    } else {
        config_json.clone()
    };
    let known = run.info.clone();
    tokio::task::spawn_blocking(move || -> Result<_, CallError> {
        let info = match known {
            Some(i) => i,
            None => module.init(&grant, &config_json)?.0,
        };
        let (streams, _) = module.list_streams(&grant, &list_json)?;
        Ok((info, streams))
    })
    .await
}

/// What the calls of instance `inst` may do: its limits, hosts and secrets.
fn grant_for(inst: &Instance) -> Grant {
    Grant {
        provider: Arc::from(inst.id.as_str()),
        limits: inst.limits.clone(),
        allow_hosts: Arc::from(inst.config.allow_hosts.clone()),
        allow_private: inst.config.allow_private,
        secrets: inst.config.secret_values.clone(),
    }
}

/// The status of instance `inst` starting with `module`: loading.
fn starting_status(inst: &Instance, module: &ProviderModule) -> ProviderStatus {
    ProviderStatus {
        id: inst.id.clone(),
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
    }
}

/// How long a listing fetched at `fetched_at_ms` is still trusted without
/// asking the provider (`cache_seconds`), if at all.
pub(super) fn cache_wait(inst: &InstanceConfig, fetched_at_ms: u64) -> Option<Duration> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_failing_provider_is_retried_ever_later_and_a_success_starts_over() {
        let mut retry = Backoff::new(RETRY);
        let now = Instant::now();
        let waits: Vec<u64> = (0..9).map(|_| retry.fail(None, now).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        retry.reset();
        assert_eq!(retry.fail(None, now), Duration::from_secs(5));
    }
}
