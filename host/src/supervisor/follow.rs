//! What the supervisor follows outside itself: nginx's `/stat` (viewer
//! counts rebuilt after a restart, callbacks nginx failed to deliver
//! corrected) and, in cluster mode, this host's leases (a stream whose
//! lease is lost stops; one placed here by another host is held wanted
//! for its relay). Each is a loop `dss serve` spawns.

use super::Supervisor;
use crate::catalog::Catalog;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::nginx::stat;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// After start, how long `/stat` viewers of streams not yet listed are
/// looked at again every [`STARTUP_RETRY`] (listings load in ~10 ms from
/// the store, a slow provider's first listing can take seconds).
const STARTUP_WINDOW: Duration = Duration::from_secs(30);
/// Four looks a second: a viewer waiting for its stream after a restart
/// is picked up within a quarter second of its listing, for the price of
/// a few `/stat` reads.
const STARTUP_RETRY: Duration = Duration::from_millis(250);

/// Cluster mode: every tick, this host's record and leases; streams whose
/// lease was lost are woken (their FFmpeg stops), streams placed here by
/// another host are held wanted until their relay connects.
pub async fn cluster(cluster: Arc<Cluster>, supervisor: Arc<Supervisor>) {
    let every = cluster.tick_interval();
    // A placed stream waits this long for the relay that asked for it.
    let f = supervisor.ffmpeg_config();
    let hold = Duration::from_secs(f.start_timeout_seconds + f.grace_seconds + 5);
    loop {
        cluster.set_running(supervisor.running());
        let (lost, adopted) = cluster.tick().await;
        for id in lost {
            supervisor.wake(&id);
        }
        for id in adopted {
            if let Err(e) = supervisor.lease(&id, "cluster-placement", Some(hold), None) {
                tracing::warn!(stream = %id, error = %e, "cluster: a stream placed here cannot run");
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Cluster mode: a lease not renewed in time stops its FFmpeg at once,
/// even while the round that should renew it waits on an unreachable store.
pub async fn lease_watchdog(cluster: Arc<Cluster>, supervisor: Arc<Supervisor>) {
    // Well within the lease margin (at least a second).
    let every = Duration::from_millis(200);
    loop {
        for id in cluster.expire() {
            supervisor.wake(&id);
        }
        tokio::time::sleep(every).await;
    }
}

/// Rebuilds viewer counts from nginx `/stat` now (recovery after a
/// restart: viewers still connected get their stream started again) and
/// then periodically (callbacks nginx failed to deliver).
pub async fn stat(
    config: Arc<Config>,
    supervisor: Arc<Supervisor>,
    catalog: Arc<Catalog>,
    secret: Arc<str>,
) {
    let url = config.stat_url(&secret);
    let every = Duration::from_secs(config.ffmpeg.stat_interval_seconds.max(1));
    let started = Instant::now();
    let mut first = true;
    let mut failing = false;
    loop {
        let at = Instant::now();
        let mut waiting_for_catalog = false;
        match stat::fetch(&url, &config.nginx.app).await {
            Ok(s) => {
                if failing {
                    tracing::info!("nginx /stat answers again; viewer counts reconciled");
                    failing = false;
                }
                if first {
                    let viewers: usize = s.values().map(|x| x.viewers.len()).sum();
                    tracing::info!(
                        streams = s.len(),
                        viewers,
                        "viewer counts rebuilt from /stat"
                    );
                    first = false;
                }
                supervisor.resync(&s, at);
                // Viewers of a stream the catalog does not list yet (a
                // provider still loading after a restart) are picked up as
                // soon as it does, not one interval later.
                let snap = catalog.snapshot();
                waiting_for_catalog = s
                    .iter()
                    .any(|(id, x)| !x.viewers.is_empty() && !snap.streams.contains_key(id));
            }
            // Without /stat, missed callbacks go uncorrected: say so once
            // per outage, not every interval.
            Err(e) if !failing => {
                tracing::warn!(error = %e, "viewer reconciliation with nginx /stat failed");
                failing = true;
            }
            Err(e) => tracing::debug!(error = %e, "nginx /stat still unavailable"),
        }
        supervisor.prune();
        let soon = waiting_for_catalog && started.elapsed() < STARTUP_WINDOW;
        tokio::time::sleep(if soon { STARTUP_RETRY } else { every }).await;
    }
}
