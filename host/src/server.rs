//! `dss serve`: wires the parts together and runs until SIGINT/SIGTERM.

use crate::catalog::Catalog;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::events::Events;
use crate::http::api;
use crate::http::state::{AppState, ReadyState};
use crate::nginx::managed::{self, ManagedNginx};
use crate::plugin::PluginEngine;
use crate::providers::Providers;
use crate::stats::Stats;
use crate::supervisor::Supervisor;
use anyhow::Context;
use axum::extract::FromRef;
use dss_store::Store;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs the host with `config` until a shutdown signal.
pub async fn serve(mut config: Config) -> anyhow::Result<()> {
    resolve_security(&mut config)?;
    let config = Arc::new(config);
    state_modes(&config).context("cannot set the state directory's modes")?;
    tracing::info!(
        base_dir = %config.base_dir.display(),
        modules = %config.providers.modules_dir.display(),
        shipped_modules = ?config.providers.shipped_modules_dir,
        instances = %config.providers.instances_dir.display(),
        "starting DSS"
    );
    let engine =
        PluginEngine::from_config(&config, crate::plugin::compile::Compiler::this_binary())
            .map_err(|e| anyhow::anyhow!("cannot create the Wasm engine: {e:?}"))?;
    let store = open_store(&config).await?;
    let callback_secret: Arc<str> = config
        .callback_secret()
        .context("cannot read or create the callback secret")?
        .into();
    let catalog = Arc::new(Catalog::new());
    let cluster = join_cluster(&config, &store).await?;
    let providers = Providers::new(
        engine,
        catalog.clone(),
        config.clone(),
        store.clone(),
        cluster.clone(),
    );
    tokio::spawn(crate::memory::trim_loop());
    let (events, stats, supervisor) = start_lifecycle(&config, &catalog, &store, cluster.as_ref());
    let (thumbnails, recorder) = around_streams(&config, &catalog, &supervisor, &stats)?;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!("HTTP API on http://{}", listener.local_addr()?);

    // Modules load (compile) in the background from now on, each on its
    // own; nothing starts FFmpeg before nginx is up (viewers come through
    // nginx; the /stat loop, which starts auto_start streams, starts after
    // it), and the API answers once nginx is.
    {
        let providers = providers.clone();
        tokio::spawn(async move { providers.reconcile().await });
    }

    // nginx comes up after our listener exists (its callbacks point at
    // us) and before anything can start FFmpeg.
    let nginx = start_nginx(&config, &supervisor).await?;

    // Viewers still connected to nginx (a host restarted under it) are
    // counted once the listings are in.
    tokio::spawn(follow_stat(
        config.clone(),
        supervisor.clone(),
        catalog.clone(),
        providers.clone(),
        callback_secret.clone(),
    ));
    let phones = crate::mobile::start(
        config.clone(),
        providers.clone(),
        supervisor.clone(),
        catalog.clone(),
        store.clone(),
        events.clone(),
    )
    .await?;
    let mut dirs: Vec<_> = config
        .providers
        .modules_dirs()
        .into_iter()
        .map(Path::to_path_buf)
        .collect();
    dirs.push(config.providers.instances_dir.clone());
    let _watch = crate::watch::spawn(providers.clone(), dirs);

    tokio::spawn(crate::thumbnail::run(thumbnails.clone()));
    tokio::spawn(crate::record::run(recorder.clone()));

    let state = AppState {
        config: config.clone(),
        catalog,
        supervisor: supervisor.clone(),
        providers: providers.clone(),
        store: store.clone(),
        callback_secret,
        phones,
        events,
        stats: stats.clone(),
        thumbnails,
        recorder: recorder.clone(),
        nginx: nginx.as_ref().map(ManagedNginx::health),
    };
    let server = ServerParts {
        listener,
        state,
        running: Running {
            supervisor,
            recorder,
            cluster,
            stats,
            nginx,
            store,
        },
    };
    run_until_signal(server).await
}

/// Thumbnails and recordings, set up (their directories checked) before
/// the host listens; they run once nginx is up.
fn around_streams(
    config: &Arc<Config>,
    catalog: &Arc<Catalog>,
    supervisor: &Arc<Supervisor>,
    stats: &Arc<Stats>,
) -> anyhow::Result<(
    Arc<crate::thumbnail::Thumbnails>,
    Arc<crate::record::Recorder>,
)> {
    let thumbnails = crate::thumbnail::Thumbnails::new(
        config.clone(),
        catalog.clone(),
        supervisor.clone(),
        stats.clone(),
    )
    .context("cannot set up thumbnails")?;
    let recorder =
        crate::record::Recorder::new(config.clone(), catalog.clone(), supervisor.clone())
            .context("cannot set up recording")?;
    Ok((thumbnails, recorder))
}

/// What serves, and what [`stop`] stops, once the host is wired.
struct ServerParts {
    listener: tokio::net::TcpListener,
    state: AppState,
    running: Running,
}

/// Serves HTTP until SIGTERM or SIGINT (or the server fails), then stops
/// everything.
async fn run_until_signal(p: ServerParts) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let ready = ReadyState::from_ref(&p.state);
    let notifier = tokio::spawn(crate::service::run(move || ready.waiting_for()));
    let providers = p.state.providers.clone();
    let hangup = tokio::spawn(crate::service::reload_on_hangup(move || {
        let providers = providers.clone();
        tokio::spawn(async move { providers.reconcile().await });
    }));
    let app = api::router(p.state.clone(), &p.state.config.web.dir);
    let server = crate::http::server::serve(p.listener, app, p.state, stop_rx, SERVER_DRAIN);
    let mut server = tokio::spawn(server);
    tokio::select! {
        _ = shutdown_signal() => {}
        r = &mut server => r.context("HTTP server task failed")?,
    }
    crate::service::stopping();
    notifier.abort();
    hangup.abort();
    let _ = stop_tx.send(true);
    stop(server, p.running).await;
    tracing::info!("stopped");
    Ok(())
}

/// Reconciles viewers with nginx's `/stat` once the listings are in.
async fn follow_stat(
    config: Arc<Config>,
    supervisor: Arc<Supervisor>,
    catalog: Arc<Catalog>,
    providers: Arc<Providers>,
    callback_secret: Arc<str>,
) {
    wait_for_listings(&providers).await;
    crate::supervisor::follow::stat(config, supervisor, catalog, callback_secret).await;
}

/// Opens the store; the embedded one's files are made private (it holds
/// sources with camera credentials, and SQLite makes its journal files
/// with the database's mode).
async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store = dss_store::open(&config.store)
        .await
        .context("cannot open the store")?;
    tracing::info!("store: {}", store.describe());
    if config.store.url.is_none() {
        let db = &config.store.sqlite_path;
        for path in [db.clone(), with_suffix(db, "-wal"), with_suffix(db, "-shm")] {
            crate::files::make_private(&path)?;
        }
    }
    Ok(store)
}

/// Cluster mode: this host's membership, its node id claimed (refused
/// while another live host reports under it).
async fn join_cluster(
    config: &Config,
    store: &Arc<dyn Store>,
) -> anyhow::Result<Option<Arc<Cluster>>> {
    if !config.cluster.enabled {
        return Ok(None);
    }
    if !store.supports_cluster() {
        anyhow::bail!(
            "[cluster] enabled, but {} cannot be shared by several hosts",
            store.describe()
        );
    }
    let key = config
        .cluster_key()
        .context("cannot read or create the cluster key")?;
    let Some(cluster) = Cluster::new(config, store.clone(), key) else {
        return Ok(None);
    };
    cluster.claim_node_id().await.map_err(|e| {
        anyhow::anyhow!(
            "[cluster] {e}: give each host its own node_id (default: the machine's host name)"
        )
    })?;
    Ok(Some(cluster))
}

/// The streams' lifecycles and what watches them: the events, the
/// statistics (saved and told periodically) and the supervisor, joined to
/// the cluster in cluster mode.
fn start_lifecycle(
    config: &Arc<Config>,
    catalog: &Arc<Catalog>,
    store: &Arc<dyn Store>,
    cluster: Option<&Arc<Cluster>>,
) -> (Arc<Events>, Arc<Stats>, Arc<Supervisor>) {
    let events = Arc::new(Events::new());
    tokio::spawn(crate::events::watch_catalog(
        catalog.clone(),
        events.clone(),
    ));
    let stats = Arc::new(Stats::new());
    tokio::spawn(crate::stats::save_loop(
        stats.clone(),
        store.clone(),
        Duration::from_secs(config.stats.save_interval_seconds.max(1)),
    ));
    tokio::spawn(crate::stats::tell_loop(stats.clone(), events.clone()));
    let supervisor = Supervisor::new(
        config.clone(),
        catalog.clone(),
        events.clone(),
        stats.clone(),
    );
    if let Some(c) = cluster {
        tracing::info!(node = %c.node_id(), "cluster mode: streams run here by lease");
        supervisor.set_cluster(c.clone());
        stats.set_cluster(c.clone());
        tokio::spawn(crate::supervisor::follow::cluster(
            c.clone(),
            supervisor.clone(),
        ));
        tokio::spawn(crate::supervisor::follow::lease_watchdog(
            c.clone(),
            supervisor.clone(),
        ));
    }
    (events, stats, supervisor)
}

/// Starts (or adopts) nginx unless the operator runs it; streams that
/// failed because it died retry as soon as it is back.
async fn start_nginx(
    config: &Config,
    supervisor: &Arc<Supervisor>,
) -> anyhow::Result<Option<ManagedNginx>> {
    if !managed::decide(config)? {
        tracing::warn!(
            "nginx is not managed: run it with the configuration `dss nginx-conf` prints"
        );
        return Ok(None);
    }
    let nginx = ManagedNginx::start(config).await?;
    let (mut restarts, supervisor) = (nginx.restarts(), supervisor.clone());
    tokio::spawn(async move {
        while restarts.changed().await.is_ok() {
            supervisor.nginx_restarted();
        }
    });
    Ok(Some(nginx))
}

/// What is left to stop once the server was told to.
struct Running {
    supervisor: Arc<Supervisor>,
    recorder: Arc<crate::record::Recorder>,
    cluster: Option<Arc<Cluster>>,
    stats: Arc<Stats>,
    nginx: Option<ManagedNginx>,
    store: Arc<dyn Store>,
}

/// Stops everything, bounded whatever is pending: requests in flight (a
/// held playlist request, a client that keeps its connection open) get
/// SERVER_DRAIN, FFmpeg a few seconds, nginx and the store the rest.
async fn stop(server: tokio::task::JoinHandle<()>, r: Running) {
    let deadline = Instant::now() + SHUTDOWN_BUDGET;
    let drain = async {
        // The server drains for at most SERVER_DRAIN itself.
        let _ = server.await;
    };
    // Recorders close their segments (SIGTERM) as the streams stop.
    tokio::join!(drain, r.supervisor.shutdown(), r.recorder.shutdown());
    if let Some(c) = &r.cluster {
        // Handed over at once rather than after a lease period.
        let _ = tokio::time::timeout(Duration::from_secs(2), c.release_all()).await;
    }
    r.stats.save(r.store.as_ref()).await;
    if let Some(nginx) = r.nginx {
        nginx.stop().await;
    }
    // Writes queued during a MongoDB outage get what is left of the budget.
    let left = deadline.saturating_duration_since(Instant::now());
    if tokio::time::timeout(left.max(Duration::from_millis(500)), r.store.flush())
        .await
        .is_err()
    {
        tracing::warn!("store: {:?}; queued writes are lost", r.store.health());
    }
}

/// Settles who may do what before anything runs: the API token (one is
/// made, and kept in the state directory, when none is configured: the
/// private surface needs it from every caller) and the media user FFmpeg
/// and nginx's workers run as, which must reach the run directory.
fn resolve_security(config: &mut Config) -> anyhow::Result<()> {
    let generated = config.security.api_token.is_none();
    config.security.api_token = Some(
        config
            .api_token()
            .context("cannot read or create the API token")?,
    );
    if generated {
        tracing::info!(
            file = %config.state_dir.join(crate::config::API_TOKEN_FILE).display(),
            "the API token (admin actions, metrics, logs, recordings) is in this file"
        );
    }
    let user = crate::privileges::MediaUser::for_this_process(config.security.run_as.as_deref())?;
    match &user {
        Some(u) => {
            u.check_reach(&config.run_dir())?;
            tracing::info!(user = %u.name, uid = u.uid, "FFmpeg and nginx's workers run as this user")
        }
        None if crate::privileges::host_is_root() => {
            tracing::warn!("[security] run_as = \"root\": FFmpeg decodes untrusted media as root")
        }
        None => {}
    }
    config.security.media_user = user;
    Ok(())
}

/// The state directory's parts and their modes: nothing there is anyone
/// else's business (the store holds camera credentials, the logs clients'
/// addresses, the recordings what cameras saw) except what nginx's workers
/// serve or write: thumbnails, and `run/`'s HLS and DASH directories (which
/// nginx makes itself). Secrets and the compile cache are made private
/// where they are written.
fn state_modes(config: &Config) -> Result<(), crate::files::FilesError> {
    use crate::files::{ensure_mode, PRIVATE_DIR, SERVED_DIR, TRAVERSE_DIR};
    ensure_mode(&config.state_dir, TRAVERSE_DIR)?;
    ensure_mode(&config.run_dir(), TRAVERSE_DIR)?;
    ensure_mode(&config.log_dir(), PRIVATE_DIR)?;
    // Traverse-only when FFmpeg runs as another user: it reaches the
    // recording directories it is given, and lists nothing.
    let holding = crate::privileges::holding_dir_mode(config.security.media_user.as_ref());
    ensure_mode(&config.record_dir(), holding)?;
    ensure_mode(&config.thumb_dir(), SERVED_DIR)?;
    Ok(())
}

/// `path` with `suffix` appended to its file name (`dss.sqlite-wal`).
fn with_suffix(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    s.into()
}

/// Everything `dss serve` does after SIGTERM: under the 10 s a service
/// manager usually grants before SIGKILL.
const SHUTDOWN_BUDGET: Duration = Duration::from_secs(9);

/// How long requests in flight get to finish after SIGTERM.
const SERVER_DRAIN: Duration = Duration::from_secs(2);

/// Waits (bounded) until the instances are read and none is still loading
/// its first listing, so that the first `/stat` reconciliation knows every
/// stream (the loop looks again soon for streams still unknown).
async fn wait_for_listings(providers: &Providers) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) && !providers.pending().is_empty() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
