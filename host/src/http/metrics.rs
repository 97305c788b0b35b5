//! Prometheus metrics at `/metrics`, computed at scrape time from the
//! catalog, the supervisor, the provider modules and the store: nothing is
//! counted twice, so the figures cannot drift from what the API shows.

use crate::catalog::{ProviderState, Snapshot};
use crate::http::state::AppState;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeSet;

type Labels = Vec<(&'static str, String)>;

fn family() -> Family<Labels, Gauge> {
    Family::default()
}

fn ratio_family() -> Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>> {
    Family::default()
}

/// Streams with their own series (viewers, restarts).
const MAX_STREAM_SERIES: usize = 1_000;

/// The text exposition of every metric.
pub async fn render(st: &AppState) -> String {
    let snap = st.catalog.snapshot();
    let mut registry = Registry::default();
    register_providers(&mut registry, &snap);
    register_modules(&mut registry, st).await;
    register_streams(&mut registry, st, &snap);
    register_ffmpeg(&mut registry, st);
    register_store(&mut registry, st);
    register_process(&mut registry);

    let mut out = String::new();
    if let Err(e) = encode(&mut out, &registry) {
        tracing::error!(error = %e, "metrics encoding failed");
    }
    out
}

/// Each provider instance's state, streams, staleness and module.
fn register_providers(registry: &mut Registry, snap: &Snapshot) {
    let provider_state = family();
    let provider_streams = family();
    let provider_stale = family();
    let provider_info = family();
    for p in snap.providers.values() {
        for state in [
            ProviderState::Loading,
            ProviderState::Ready,
            ProviderState::Failed,
            ProviderState::Disabled,
        ] {
            let name = serde_json::to_value(state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            provider_state
                .get_or_create(&vec![("provider", p.id.clone()), ("state", name)])
                .set(i64::from(p.state == state));
        }
        provider_streams
            .get_or_create(&vec![("provider", p.id.clone())])
            .set(p.stream_count as i64);
        provider_stale
            .get_or_create(&vec![("provider", p.id.clone())])
            .set(i64::from(p.stale));
        provider_info
            .get_or_create(&vec![
                ("provider", p.id.clone()),
                ("module", p.module.clone()),
                ("version", p.version.clone().unwrap_or_default()),
                ("module_hash", p.module_hash.clone().unwrap_or_default()),
            ])
            .set(1);
    }
    registry.register(
        "dss_provider_state",
        "1 for the state each provider instance is in",
        provider_state,
    );
    registry.register(
        "dss_provider_streams",
        "Streams each provider instance lists",
        provider_streams,
    );
    registry.register(
        "dss_provider_stale",
        "1 when a provider serves a listing that is not its latest",
        provider_stale,
    );
    registry.register(
        "dss_provider_info",
        "The module each provider instance runs",
        provider_info,
    );
}

/// Modules whose current file failed to load.
async fn register_modules(registry: &mut Registry, st: &AppState) {
    let module_rejected = family();
    for (module, error) in st.providers.module_errors().await {
        module_rejected
            .get_or_create(&vec![("module", module)])
            .set(i64::from(error.is_some()));
    }
    registry.register(
        "dss_module_rejected",
        "1 when the current file of a module failed to load (the previous version, if any, serves)",
        module_rejected,
    );
}

/// Streams by state, and per-stream series (viewers, restarts,
/// statistics) for at most [`MAX_STREAM_SERIES`] streams, the busiest.
fn register_streams(registry: &mut Registry, st: &AppState, snap: &Snapshot) {
    let stream_state = family();
    let viewers = family();
    let restarts = family();
    let mut by_state = std::collections::BTreeMap::<String, i64>::new();
    let statuses = st.supervisor.statuses();
    // Per-stream series for at most MAX_STREAM_SERIES streams, the busiest
    // first (a city of cameras must not make /metrics megabytes long).
    let mut busiest: Vec<(&String, usize)> = statuses
        .iter()
        .filter(|(id, _)| snap.streams.contains_key(*id))
        .map(|(id, s)| {
            (
                id,
                s.viewers_rtmp + s.viewers_http + usize::from(s.pid.is_some()),
            )
        })
        .collect();
    busiest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let shown: std::collections::BTreeSet<&String> = busiest
        .iter()
        .take(MAX_STREAM_SERIES)
        .map(|(id, _)| *id)
        .collect();
    for (id, s) in &statuses {
        if !snap.streams.contains_key(id) {
            continue;
        }
        let state = serde_json::to_value(s.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *by_state.entry(state).or_default() += 1;
        if !shown.contains(id) {
            continue;
        }
        let id = id.clone();
        viewers
            .get_or_create(&vec![("stream", id.clone()), ("kind", "rtmp".into())])
            .set(s.viewers_rtmp as i64);
        viewers
            .get_or_create(&vec![("stream", id.clone()), ("kind", "http".into())])
            .set(s.viewers_http as i64);
        restarts
            .get_or_create(&vec![("stream", id)])
            .set(i64::from(s.restarts));
    }
    let tracked: i64 = by_state.values().sum();
    *by_state.entry("idle".into()).or_default() +=
        snap.streams.len() as i64 - tracked.min(snap.streams.len() as i64);
    for (state, n) in by_state {
        stream_state.get_or_create(&vec![("state", state)]).set(n);
    }
    register_stream_stats(registry, st, &shown);
    registry.register("dss_streams", "Streams by lifecycle state", stream_state);
    registry.register(
        "dss_stream_viewers",
        "Viewers of each stream that has had any",
        viewers,
    );
    registry.register(
        "dss_stream_restarts",
        "FFmpeg restarts after failures, per stream",
        restarts,
    );
}

/// The statistics of the streams shown (the same cap).
fn register_stream_stats(registry: &mut Registry, st: &AppState, shown: &BTreeSet<&String>) {
    let uptime = ratio_family();
    let thumbs = ratio_family();
    let warmup = ratio_family();
    let crashes = family();
    for id in shown {
        let s = st.stats.get(id);
        let l = vec![("stream", (*id).clone())];
        uptime.get_or_create(&l).set(s.uptime);
        thumbs.get_or_create(&l).set(s.thumbnail);
        warmup.get_or_create(&l).set(s.warmup);
        crashes.get_or_create(&l).set(s.crash as i64);
    }
    registry.register(
        "dss_stream_uptime_ratio",
        "Live time over wanted time, per stream (survives restarts)",
        uptime,
    );
    registry.register(
        "dss_stream_crashes",
        "FFmpeg failures while wanted, per stream (survives restarts)",
        crashes,
    );
    registry.register(
        "dss_stream_warmup_seconds",
        "Mean spawn-to-publish time of the last 10 starts, per stream",
        warmup,
    );
    registry.register(
        "dss_stream_thumbnail_success_ratio",
        "Thumbnail attempts that succeeded, per stream",
        thumbs,
    );
}

/// FFmpeg processes: running, the cap, spawns, refusals at the cap.
fn register_ffmpeg(registry: &mut Registry, st: &AppState) {
    let ffmpeg: Family<Labels, Gauge> = family();
    let sup = &st.supervisor;
    for (what, v) in [
        ("running", sup.running() as i64),
        ("max_running", st.config.ffmpeg.max_running as i64),
        ("spawns", sup.spawns_total() as i64),
        ("capacity_refusals", sup.capacity_refusals() as i64),
    ] {
        ffmpeg.get_or_create(&vec![("what", what.into())]).set(v);
    }
    registry.register(
        "dss_ffmpeg",
        "FFmpeg processes running, the cap, spawns since start, and viewers or starts refused at the cap",
        ffmpeg,
    );
}

/// Whether the store is degraded.
fn register_store(registry: &mut Registry, st: &AppState) {
    let store: Family<Labels, Gauge> = family();
    store
        .get_or_create(&vec![("backend", st.store.describe())])
        .set(i64::from(!matches!(
            st.store.health(),
            dss_store::StoreHealth::Ok
        )));
    registry.register(
        "dss_store_degraded",
        "1 while the store is degraded (MongoDB unreachable or refusing credentials, or acknowledged writes were lost)",
        store,
    );
}

/// The `process_*` series of the Prometheus convention (what client
/// libraries' process collectors export), plus the anonymous part of the
/// resident memory: the host's own, as opposed to mapped files (its
/// binary, compiled providers) the kernel can drop.
fn register_process(registry: &mut Registry) {
    use prometheus_client::metrics::counter::Counter;
    let p = crate::memory::process_stats();
    let gauge = |v: u64| {
        let g: Gauge = Gauge::default();
        g.set(i64::try_from(v).unwrap_or(i64::MAX));
        g
    };
    let float = |v: f64| {
        let g: Gauge<f64, std::sync::atomic::AtomicU64> = Gauge::default();
        g.set(v);
        g
    };
    registry.register(
        "process_resident_memory_bytes",
        "Resident memory size in bytes",
        gauge(p.resident_memory_bytes),
    );
    registry.register(
        "dss_process_resident_anonymous_bytes",
        "Resident memory that is the process's own (heap, stacks, provider memory), in bytes",
        gauge(p.resident_anonymous_bytes),
    );
    registry.register(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes",
        gauge(p.virtual_memory_bytes),
    );
    let cpu: Counter<f64, std::sync::atomic::AtomicU64> = Counter::default();
    cpu.inc_by(p.cpu_seconds_total);
    registry.register(
        "process_cpu_seconds",
        "Total user and system CPU time spent in seconds",
        cpu,
    );
    registry.register(
        "process_open_fds",
        "Number of open file descriptors",
        gauge(p.open_fds),
    );
    registry.register(
        "process_max_fds",
        "Maximum number of open file descriptors",
        gauge(p.max_fds),
    );
    registry.register(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds",
        float(p.start_time_seconds),
    );
    registry.register("process_threads", "Number of OS threads", gauge(p.threads));
}
