//! Several DSS hosts sharing one MongoDB, each stream run by exactly one of
//! them: this host's side of it.
//!
//! - **Membership**: every tick the host records itself in the store
//!   (`cluster_nodes`: its RTMP address, its running FFmpeg, its owned
//!   streams), stamped with the server's clock; a host not seen for a
//!   lease period is gone.
//! - **Ownership**: a stream wanted here (a viewer, a pin, a recording) is
//!   claimed through its lease `stream/<id>` ([`Cluster::claim`]). The
//!   holder runs its FFmpeg; any other host with viewers runs a copy relay
//!   from the holder's nginx-rtmp, which is a viewer there and keeps the
//!   stream wanted on the owner. A free stream goes to the live host with
//!   the fewest owned streams: the claimant acquires the lease *for* that
//!   host, which adopts it on its next tick ([`Cluster::tick`]).
//! - **Failure**: leases are renewed every third of their length; one not
//!   renewed in time is dropped by its holder on its own monotonic clock
//!   ([`lease::LeaseBook`]) and the stream's task stops its FFmpeg, before
//!   the server lets another host take it. A dead host's relays see their
//!   input stop, retry, and take the expired lease over.
//!
//! - **Shared catalog**: each provider instance is refreshed by one host,
//!   the holder of its lease `provider/<id>` ([`Cluster::refresher`]),
//!   which persists its listings; the others read them from the store.
//!
//! Phones' streams are not clustered: a phone's media reaches only the host
//! it is connected to, which runs its FFmpeg (and lists its phones).

pub mod lease;
mod placement;

use crate::clock::now_ms as unix_ms;
use crate::config::Config;
use crate::sync::lock;
use dss_store::cluster::{Acquired, Lease, NodeRecord};
use dss_store::{Store, StoreError};
use lease::LeaseBook;
use placement::Claimed;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Renewals sent at once (each is one round trip to the store).
const RENEW_CONCURRENCY: usize = 64;

/// What this host does for a wanted stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// It holds the lease: it runs the stream's FFmpeg.
    Owner,
    /// Host `owner` runs it: relay from `from` (`rtmp://HOST:PORT/APP/ID`).
    Relay {
        /// The owner's node id.
        owner: String,
        /// Where to read the stream.
        from: String,
    },
    /// Nothing can be decided now (the store is unreachable, the owner's
    /// address is unknown): try again after a backoff.
    Wait(String),
}

/// The cluster as last read from the store.
#[derive(Debug, Default)]
struct View {
    nodes: Vec<NodeRecord>,
    /// Streams' leases.
    leases: Vec<Lease>,
    /// Provider instances' refresh leases.
    refreshers: Vec<Lease>,
    /// The server's clock at the last heartbeat, and when (ours) it was read.
    server_now_ms: u64,
    read_at: Option<Instant>,
    last_error: Option<String>,
}

/// This host in the cluster.
pub struct Cluster {
    node_id: String,
    /// This host's secret key ([`NodeRecord::key`]): another host under
    /// the same node id is refused while this one is live.
    key: String,
    advertise_rtmp: String,
    api: String,
    ttl: Duration,
    store: Arc<dyn Store>,
    book: Mutex<LeaseBook>,
    view: Mutex<View>,
    started_ms: u64,
    running: AtomicU32,
    /// Streams this host ran by lease since it started: their statistics
    /// are this host's to save.
    ever_owned: Mutex<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.node_id)
            .field("advertise_rtmp", &self.advertise_rtmp)
            .finish_non_exhaustive()
    }
}

/// The lease of stream `id`.
pub fn stream_lease(id: &str) -> String {
    format!("stream/{id}")
}

/// The lease of provider instance `id`'s refreshes.
pub fn provider_lease(id: &str) -> String {
    format!("provider/{id}")
}

/// Who refreshes a provider instance's listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresher {
    /// This host: it calls the provider and persists the listing.
    Here,
    /// Host `0` does: this host reads its listings from the store.
    Host(String),
    /// Not known now (the store is unreachable): keep serving what is served.
    Unknown(String),
}

impl Cluster {
    /// This host's side of the cluster `config` describes, on `store`
    /// (`None` when cluster mode is off); `key` is this host's own secret
    /// ([`Config::cluster_key`], kept across restarts).
    pub fn new(config: &Config, store: Arc<dyn Store>, key: String) -> Option<Arc<Cluster>> {
        let c = &config.cluster;
        if !c.enabled {
            return None;
        }
        let n = &config.nginx;
        let advertise_rtmp = c.advertise_rtmp.clone().unwrap_or_else(|| {
            format!(
                "rtmp://{}/{}",
                std::net::SocketAddr::new(n.host, n.rtmp_port),
                n.app
            )
        });
        Some(Arc::new(Cluster {
            node_id: c.node_id(),
            key,
            advertise_rtmp: advertise_rtmp.trim_end_matches('/').to_string(),
            api: format!("http://{}", config.listen),
            ttl: Duration::from_secs(c.lease_seconds),
            store,
            book: Mutex::new(LeaseBook::new(Duration::from_secs(c.lease_seconds))),
            view: Mutex::new(View::default()),
            started_ms: unix_ms(),
            running: AtomicU32::new(0),
            ever_owned: Mutex::new(Default::default()),
        }))
    }

    /// This host's node id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// How often the cluster is looked at: a sixth of a lease (renewals
    /// are due every third, so each gets two chances before the next).
    pub fn tick_interval(&self) -> Duration {
        (self.ttl / 6).max(Duration::from_millis(300))
    }

    /// How often a host that does not refresh a provider instance looks for
    /// the refresher's new listings: half a lease (a dead refresher is
    /// replaced within about 1.5 leases).
    pub fn follow_interval(&self) -> Duration {
        self.tick_interval() * 3
    }

    /// Whether this host ran stream `id` by lease since it started (a host
    /// that only relayed it keeps no statistics of it for the cluster).
    pub fn owned_once(&self, id: &str) -> bool {
        lock(&self.ever_owned).contains(id)
    }

    /// Whether this host may run stream `id`'s FFmpeg now.
    pub fn may_run(&self, id: &str, now: Instant) -> bool {
        lock(&self.book).holds(&stream_lease(id), now).is_some()
    }

    /// The live host with the fewest owned streams (ties: this host, then
    /// by id), from the last view; `None` when the view is stale.
    fn placement(&self) -> Option<NodeRecord> {
        let view = lock(&self.view);
        let fresh = view.read_at.is_some_and(|t| t.elapsed() < self.ttl);
        if !fresh {
            return None;
        }
        let mine = lock(&self.book).count("stream/") as u32;
        placement::least_loaded(
            &view.nodes,
            &view.leases,
            &self.node_id,
            mine,
            view.server_now_ms,
            self.ttl.as_millis() as u64,
        )
        .cloned()
    }

    fn relay_from(&self, owner: &str, id: &str) -> Role {
        let view = lock(&self.view);
        let node = view.nodes.iter().find(|n| n.id == owner);
        let ttl_ms = self.ttl.as_millis() as u64;
        placement::relay_from(node, owner, id, view.server_now_ms, ttl_ms)
    }

    /// Decides who runs wanted stream `id`: this host when it holds or
    /// gets its lease, else a relay from its owner.
    pub async fn claim(&self, id: &str) -> Role {
        let name = stream_lease(id);
        if self.may_run(id, Instant::now()) {
            return Role::Owner;
        }
        // A free stream goes to the least loaded live host.
        let target = self
            .placement()
            .map(|n| n.id)
            .unwrap_or_else(|| self.node_id.clone());
        let sent = Instant::now();
        let ttl_ms = self.ttl.as_millis() as u64;
        let answer = self.store.lease_acquire(&name, &target, ttl_ms).await;
        match placement::claimed(&self.node_id, answer) {
            Claimed::Mine(l) => {
                lock(&self.book).acquired(&name, l.epoch, sent);
                lock(&self.ever_owned).insert(id.to_string());
                tracing::info!(stream = %id, epoch = l.epoch, "cluster: this host runs it");
                Role::Owner
            }
            Claimed::Placed(l) => {
                tracing::info!(stream = %id, host = %l.owner, "cluster: placed on a less loaded host");
                let owner = l.owner.clone();
                self.remember(l);
                self.relay_from(&owner, id)
            }
            Claimed::Taken(l) => {
                let owner = l.owner.clone();
                self.remember(l);
                self.relay_from(&owner, id)
            }
            Claimed::Wait(why) => Role::Wait(why),
        }
    }

    /// Puts a lease just read into the view (a stream's or a provider's).
    fn remember(&self, lease: Lease) {
        let mut view = lock(&self.view);
        let list = if lease.name.starts_with("stream/") {
            &mut view.leases
        } else {
            &mut view.refreshers
        };
        match list.iter_mut().find(|l| l.name == lease.name) {
            Some(l) => *l = lease,
            None => list.push(lease),
        }
    }

    /// This host's record as it reports it.
    fn record(&self) -> NodeRecord {
        NodeRecord {
            id: self.node_id.clone(),
            advertise_rtmp: self.advertise_rtmp.clone(),
            api: self.api.clone(),
            running: self.running.load(Ordering::Relaxed),
            owned: lock(&self.book).count("stream/") as u32,
            seen_ms: 0,
            started_ms: self.started_ms,
            key: self.key.clone(),
            live_ms: self.ttl.as_millis() as u64,
        }
    }

    /// Claims this host's node id at start: refused when another live host
    /// reports under it (two hosts with one `node_id` would take each
    /// other's leases). A store that does not answer is no refusal: the
    /// rounds claim it again, and say so if it is taken.
    pub async fn claim_node_id(&self) -> Result<(), StoreError> {
        let bound = self.ttl.max(Duration::from_secs(5));
        match tokio::time::timeout(bound, self.store.put_node(self.record())).await {
            Ok(Err(e @ StoreError::NodeTaken { .. })) => Err(e),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cluster: cannot record this host yet");
                Ok(())
            }
            Err(_) => {
                tracing::warn!(
                    "cluster: cannot record this host yet: {}",
                    self.unanswered(bound)
                );
                Ok(())
            }
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// Gives lease `name` up, if this host holds it, so that the next
    /// claimant gets it at once.
    async fn give_up(&self, name: &str) {
        let Some(held) = lock(&self.book).release(name) else {
            return;
        };
        if let Err(e) = self
            .store
            .lease_release(name, &self.node_id, held.epoch)
            .await
        {
            tracing::warn!(lease = %name, error = %e, "cluster: releasing the lease failed (it expires on its own)");
        }
    }

    /// Gives stream `id`'s lease up (its FFmpeg stopped: nobody wants it
    /// here).
    pub async fn release(&self, id: &str) {
        self.give_up(&stream_lease(id)).await;
    }

    /// Whether this host holds provider instance `id`'s refresh lease now.
    pub fn refreshes(&self, id: &str) -> bool {
        self.refresh_epoch(id).is_some()
    }

    /// The epoch of provider instance `id`'s refresh lease, while this host
    /// holds it: the fence of the listings it writes.
    pub fn refresh_epoch(&self, id: &str) -> Option<u64> {
        lock(&self.book)
            .holds(&provider_lease(id), Instant::now())
            .map(|h| h.epoch)
    }

    /// Decides who refreshes provider instance `id`: this host when it
    /// holds or gets the lease `provider/<id>` (renewed by [`Cluster::tick`]
    /// like the streams'), else the holder. Asks the store only when the
    /// last view shows no live holder.
    pub async fn refresher(&self, id: &str) -> Refresher {
        let name = provider_lease(id);
        if lock(&self.book).holds(&name, Instant::now()).is_some() {
            return Refresher::Here;
        }
        if let Some(host) = self.live_refresher(&name) {
            return Refresher::Host(host);
        }
        let sent = Instant::now();
        let ttl_ms = self.ttl.as_millis() as u64;
        match self.store.lease_acquire(&name, &self.node_id, ttl_ms).await {
            Ok(Acquired::Held(l)) => {
                lock(&self.book).acquired(&name, l.epoch, sent);
                tracing::info!(provider = %id, epoch = l.epoch, "cluster: this host refreshes it");
                self.remember(l);
                Refresher::Here
            }
            Ok(Acquired::Busy(Some(l))) if l.owner != self.node_id => {
                let host = l.owner.clone();
                self.remember(l);
                Refresher::Host(host)
            }
            Ok(Acquired::Busy(_)) => Refresher::Unknown("its refresh lease is busy".into()),
            Err(e) => Refresher::Unknown(format!("cluster store: {e}")),
        }
    }

    /// Another live host holding lease `name`, in the last view (fresh).
    fn live_refresher(&self, name: &str) -> Option<String> {
        let view = lock(&self.view);
        let fresh = view.read_at.is_some_and(|t| t.elapsed() < self.ttl / 2);
        let now = view.server_now_ms;
        let lease = view.refreshers.iter().find(|l| l.name == name)?;
        (fresh && lease.owner != self.node_id && !lease.expired_at(now))
            .then(|| lease.owner.clone())
    }

    /// Gives provider instance `id`'s refresh lease up (the instance was
    /// removed or disabled here), so that another host takes it at once.
    pub async fn release_provider(&self, id: &str) {
        self.give_up(&provider_lease(id)).await;
    }

    /// Gives every lease up (shutdown).
    pub async fn release_all(&self) {
        let names: Vec<String> = lock(&self.book).names().map(str::to_string).collect();
        for name in names {
            self.give_up(&name).await;
        }
    }

    /// Sets the count of FFmpeg this host runs (for placement).
    pub fn set_running(&self, n: usize) {
        self.running.store(n as u32, Ordering::Relaxed);
    }

    /// One round: record this host, renew due leases, drop the ones that
    /// ran out, read the cluster, and adopt streams placed here. Returns
    /// the streams whose lease was lost (their FFmpeg must stop) and those
    /// adopted (they must start).
    pub async fn tick(&self) -> (Vec<String>, Vec<String>) {
        // No store call may hold the round up past a renewal's chance.
        let bound = self.ttl / 3;
        let beat = tokio::time::timeout(bound, self.store.put_node(self.record()))
            .await
            .unwrap_or_else(|_| Err(self.unanswered(bound)));
        if let Err(e @ StoreError::NodeTaken { .. }) = &beat {
            // Started elsewhere while this host was cut off from the store:
            // two hosts now act under one name.
            tracing::error!(error = %e, "cluster: two hosts act under one name: give each host its own [cluster] node_id");
        }
        self.renew_due(bound).await;
        let lost = self.expire();
        // The cluster as it is now.
        let (nodes, leases) = match tokio::time::timeout(bound, async {
            (self.store.nodes().await, self.store.leases("").await)
        })
        .await
        {
            Ok(read) => read,
            Err(_) => (Err(self.unanswered(bound)), Err(self.unanswered(bound))),
        };
        match (beat, nodes, leases) {
            (Ok(server_now), Ok(nodes), Ok(all)) => {
                let (leases, refreshers): (Vec<Lease>, Vec<Lease>) =
                    all.into_iter().partition(|l| l.name.starts_with("stream/"));
                let adopted = self.adopt_placed(&leases, server_now).await;
                let mut view = lock(&self.view);
                view.nodes = nodes;
                view.leases = leases;
                view.refreshers = refreshers
                    .into_iter()
                    .filter(|l| l.name.starts_with("provider/"))
                    .collect();
                view.server_now_ms = server_now;
                view.read_at = Some(Instant::now());
                view.last_error = None;
                (lost, adopted)
            }
            (a, b, c) => {
                let err = [a.err(), b.err(), c.err()]
                    .into_iter()
                    .flatten()
                    .next()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                let mut view = lock(&self.view);
                if view.last_error.as_deref() != Some(err.as_str()) {
                    tracing::warn!(error = %err, "cluster: cannot reach the store");
                }
                view.last_error = Some(err);
                (lost, Vec::new())
            }
        }
    }

    /// Renews the leases that are due, a bounded number at a time, each
    /// call bounded by `bound`; an unanswered renewal keeps its lease
    /// until its time runs out.
    async fn renew_due(&self, bound: Duration) {
        let due = lock(&self.book).due(Instant::now());
        let ttl_ms = self.ttl.as_millis() as u64;
        for chunk in due.chunks(RENEW_CONCURRENCY) {
            let answers = futures_util::future::join_all(chunk.iter().map(|(name, epoch)| {
                let sent = Instant::now();
                async move {
                    let r = tokio::time::timeout(
                        bound,
                        self.store.lease_renew(name, &self.node_id, *epoch, ttl_ms),
                    )
                    .await;
                    (name, *epoch, sent, r)
                }
            }))
            .await;
            let mut book = lock(&self.book);
            for (name, epoch, sent, r) in answers {
                match r {
                    Ok(Ok(ok)) => {
                        if !ok {
                            tracing::warn!(lease = %name, "cluster: lease taken over by another host");
                        }
                        book.renewed(name, epoch, sent, ok);
                    }
                    // Unreachable: keep it until its time runs out.
                    Ok(Err(e)) => {
                        tracing::debug!(lease = %name, error = %e, "cluster: renewal failed")
                    }
                    Err(_) => tracing::debug!(lease = %name, "cluster: renewal unanswered"),
                }
            }
        }
    }

    /// Takes up the stream leases another host placed here (a fresh first
    /// epoch of ours, renewed within a tick); the streams adopted.
    async fn adopt_placed(&self, leases: &[Lease], server_now: u64) -> Vec<String> {
        let mut adopted = Vec::new();
        let ttl = self.ttl.as_millis() as u64;
        let placed: Vec<Lease> = {
            let book = lock(&self.book);
            let now = Instant::now();
            leases
                .iter()
                .filter(|l| {
                    l.owner == self.node_id
                    && !l.expired_at(server_now)
                    && book.holds(&l.name, now).is_none()
                    // Placed here by another host: a fresh
                    // first epoch of ours, renewed within a tick.
                    && l.renewed_ms + ttl / 3 >= server_now
                })
                .cloned()
                .collect()
        };
        for l in placed {
            let sent = Instant::now();
            match self
                .store
                .lease_renew(&l.name, &self.node_id, l.epoch, ttl)
                .await
            {
                Ok(true) => {
                    lock(&self.book).acquired(&l.name, l.epoch, sent);
                    if let Some(id) = l.name.strip_prefix("stream/") {
                        lock(&self.ever_owned).insert(id.to_string());
                        tracing::info!(stream = %id, epoch = l.epoch, "cluster: placed here by another host");
                        adopted.push(id.to_string());
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::debug!(lease = %l.name, error = %e, "cluster: adopting failed"),
            }
        }
        adopted
    }

    fn unanswered(&self, bound: Duration) -> dss_store::StoreError {
        dss_store::StoreError::Unavailable {
            target: self.store.describe(),
            reason: format!("no answer within {} ms", bound.as_millis()),
        }
    }

    /// Drops the leases whose time ran out (whatever the store is doing);
    /// returns their streams, whose FFmpeg must stop. Cheap: called often.
    pub fn expire(&self) -> Vec<String> {
        let gone = lock(&self.book).expire(Instant::now());
        for id in gone.iter().filter_map(|n| n.strip_prefix("provider/")) {
            tracing::warn!(provider = %id, "cluster: refresh lease not renewed in time: another host may refresh it");
        }
        let lost: Vec<String> = gone
            .into_iter()
            .filter_map(|n| n.strip_prefix("stream/").map(str::to_string))
            .collect();
        for id in &lost {
            tracing::warn!(stream = %id, "cluster: lease not renewed in time: stopping its ffmpeg");
        }
        lost
    }

    /// `GET /api/cluster`.
    pub fn snapshot(&self) -> ClusterSnapshot {
        let view = lock(&self.view);
        let now = view.server_now_ms;
        let ttl = self.ttl.as_millis() as u64;
        let nodes = view
            .nodes
            .iter()
            .map(|n| NodeView {
                id: n.id.clone(),
                advertise_rtmp: n.advertise_rtmp.clone(),
                api: n.api.clone(),
                running: n.running,
                owned: n.owned,
                alive: n.seen_ms + ttl >= now,
                last_seen_ms_ago: now.saturating_sub(n.seen_ms),
                this: n.id == self.node_id,
            })
            .collect();
        let mut ownership = BTreeMap::new();
        for l in &view.leases {
            if let Some(id) = l.name.strip_prefix("stream/") {
                if !l.expired_at(now) {
                    ownership.insert(
                        id.to_string(),
                        OwnerView {
                            host: l.owner.clone(),
                            epoch: l.epoch,
                        },
                    );
                }
            }
        }
        let refreshers = view
            .refreshers
            .iter()
            .filter(|l| !l.expired_at(now))
            .filter_map(|l| {
                let id = l.name.strip_prefix("provider/")?;
                let owner = OwnerView {
                    host: l.owner.clone(),
                    epoch: l.epoch,
                };
                Some((id.to_string(), owner))
            })
            .collect();
        ClusterSnapshot {
            enabled: true,
            node_id: self.node_id.clone(),
            lease_seconds: self.ttl.as_secs(),
            advertise_rtmp: self.advertise_rtmp.clone(),
            owned_here: lock(&self.book).count("stream/"),
            store_error: view.last_error.clone(),
            nodes,
            ownership,
            refreshers,
        }
    }
}

/// `GET /api/cluster`.
#[derive(Debug, Serialize)]
pub struct ClusterSnapshot {
    /// Cluster mode is on.
    pub enabled: bool,
    /// This host.
    pub node_id: String,
    /// The lease length.
    pub lease_seconds: u64,
    /// Where other hosts pull this host's streams.
    pub advertise_rtmp: String,
    /// Streams this host runs by lease.
    pub owned_here: usize,
    /// Why the store could not be read, if it could not.
    pub store_error: Option<String>,
    /// The hosts.
    pub nodes: Vec<NodeView>,
    /// Live leases: stream → owner.
    pub ownership: BTreeMap<String, OwnerView>,
    /// Live refresh leases: provider instance → the host refreshing it.
    pub refreshers: BTreeMap<String, OwnerView>,
}

/// A host in `GET /api/cluster`.
#[derive(Debug, Serialize)]
pub struct NodeView {
    /// Its node id.
    pub id: String,
    /// Its RTMP address.
    pub advertise_rtmp: String,
    /// Its API.
    pub api: String,
    /// FFmpeg it runs (relays included).
    pub running: u32,
    /// Streams it owns.
    pub owned: u32,
    /// Seen within a lease period.
    pub alive: bool,
    /// Since its last record, server clock.
    pub last_seen_ms_ago: u64,
    /// Whether it is the host answering.
    pub this: bool,
}

/// An owner in `GET /api/cluster`.
#[derive(Debug, Serialize)]
pub struct OwnerView {
    /// The owning host.
    pub host: String,
    /// Its lease's epoch.
    pub epoch: u64,
}

/// Counts of streams by owner (for tests and the scaling figures).
pub fn spread(snapshot: &ClusterSnapshot) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for o in snapshot.ownership.values() {
        *out.entry(o.host.clone()).or_default() += 1;
    }
    out
}
