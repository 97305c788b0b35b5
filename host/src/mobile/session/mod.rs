//! Connected phones: admission (ids, tokens, the caps on sessions), one
//! session per phone, and what a session does with what its phone sends: media
//! to its [`Feed`] and, once its tracks are known, its stream to the
//! supervisor; positions through the instance's `transform-metadata` to
//! the store, the catalog and the events. Transports (TCP frames, HTTP)
//! only parse and call in.
//!
//! A phone owns its id by the session secret it gets when admitted (in
//! the handshake's reply, or the HTTP ingest's response; an HTTP phone may
//! choose it). Taking over a connected id, reconnecting to it within
//! `[mobile] reconnect_grace_seconds` after it left, and posting its
//! positions need that secret (or the phone's registered `token`); anyone
//! else is refused, and the phone is not disturbed. After the grace
//! period the id is free again (the original's sender reconnects with its
//! id and no secret). Anonymous phones that left are forgotten after
//! `forget_after_seconds`; one address may hold `max_sessions_per_address`
//! sessions and open `max_connects_per_minute` a minute.

pub use super::admission::Refused;
use super::admission::{self, show, ConnectRate, Holder};
use super::feed::{Feed, Track};
use crate::catalog::{unix_ms, Catalog};
use crate::config::Config;
use crate::events::{Event, Events};
use crate::providers::{IngestSession, NotServing, Providers};
use crate::supervisor::{Feeds, Supervisor};
use crate::sync::lock;
use dss_store::{NewSession, Store};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

mod forget;
mod positions;

/// How long a phone's admission may take, from its hello: its instance
/// still loading at start (its module compiling) and then listing it (a
/// Wasm call, milliseconds normally). The same bound as every first use
/// of an instance that is loading.
const ADMISSION_WAIT: Duration = Duration::from_secs(10);

/// The least time left for the listing once the instance serves.
const MIN_LIST_WAIT: Duration = Duration::from_secs(1);

/// Positions accepted per second from one phone (they send one a second);
/// more are counted and dropped, so a hostile phone cannot keep a
/// provider busy.
const MAX_POSITIONS_PER_SECOND: u32 = 10;

/// Phones that left and stay listed (offline) until this many others left
/// after them: the API and the map know a phone that drops for a moment,
/// and ids minted for every passer-by do not pile up.
const MAX_DEPARTED: usize = 1000;

/// A secret a phone chooses: long enough not to be guessed, short and
/// plain enough for a header or a query.
const SECRET_LEN: std::ops::RangeInclusive<usize> = 16..=128;

/// Why a session ended, or could not go on.
#[derive(Debug, thiserror::Error)]
pub enum Ended {
    /// A newer connection took the phone over.
    #[error("replaced by a newer connection")]
    Replaced,
    /// FFmpeg did not take the phone's media in time.
    #[error("ffmpeg took no media for {0:?}")]
    Stalled(Duration),
    /// Writing to the FIFO failed.
    #[error("feeding ffmpeg failed: {0}")]
    Feed(#[from] std::io::Error),
    /// The host is stopping.
    #[error("the host is stopping")]
    Stopping,
    /// The session ran for `[mobile] time_limit`.
    #[error("ran for its time limit of {0:?} ([mobile] time_limit)")]
    TimeLimit(Duration),
}

struct Live {
    session: u64,
    /// Its owner's proof: presented to take it over, to reconnect in the
    /// grace period and to post positions.
    secret: String,
    /// The address it connected from (per-address caps).
    addr: std::net::IpAddr,
    name: String,
    inputs: Option<Vec<PathBuf>>,
    replaced: watch::Sender<bool>,
    /// Start of the current second and positions accepted in it.
    positions: (Instant, u32),
    /// When the phone connected (Unix ms).
    started_ms: u64,
    /// Its last position (Unix ms, latitude, longitude).
    last: Option<(u64, f64, f64)>,
}

/// A connected phone, as the legacy `/mobile/location` WebSocket shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    /// Its stream id.
    pub id: String,
    /// When it connected (Unix ms).
    pub started_ms: u64,
    /// Its last position (Unix ms, latitude, longitude).
    pub last: Option<(u64, f64, f64)>,
}

/// All connected phones of the host.
pub struct Phones {
    config: Arc<Config>,
    providers: Arc<Providers>,
    supervisor: Arc<Supervisor>,
    catalog: Arc<Catalog>,
    store: Arc<dyn Store>,
    events: Arc<Events>,
    live: Mutex<HashMap<String, Live>>,
    /// Phones that left, most recent last.
    departed: Mutex<std::collections::VecDeque<Departed>>,
    /// Connections per address in the current minute (its start, count).
    connects: Mutex<ConnectRate>,
    permits: Arc<Semaphore>,
    next_session: AtomicU64,
    /// Connections refused (any reason).
    pub refused: AtomicU64,
    /// User-data frames that were not JSON, or were rejected by the
    /// provider, or over the rate.
    pub bad_user_data: AtomicU64,
    /// Frames of unknown types skipped after a handshake.
    pub unknown_frames: AtomicU64,
}

/// A phone that left.
struct Departed {
    key: String,
    name: String,
    /// When it left.
    left: Instant,
    /// Its last session's secret (its id is kept for it a while).
    secret: String,
}

impl Feeds for Phones {
    fn inputs(&self, id: &str) -> Option<Vec<PathBuf>> {
        let key = id.strip_prefix(&format!("{}-", self.config.mobile.instance))?;
        lock(&self.live).get(key)?.inputs.clone()
    }
}

impl Phones {
    /// Counts `n` frames of unknown types skipped by a transport.
    pub fn count_unknown_frames(&self, n: u64) {
        self.unknown_frames.fetch_add(n, Ordering::Relaxed);
    }

    /// The registry of phones for this host.
    pub fn new(
        config: Arc<Config>,
        providers: Arc<Providers>,
        supervisor: Arc<Supervisor>,
        catalog: Arc<Catalog>,
        store: Arc<dyn Store>,
        events: Arc<Events>,
    ) -> Arc<Self> {
        let max = config.mobile.max_sessions.max(1);
        Arc::new(Phones {
            config,
            providers,
            supervisor,
            catalog,
            store,
            events,
            live: Mutex::new(HashMap::new()),
            departed: Mutex::new(Default::default()),
            connects: Mutex::new(ConnectRate::default()),
            permits: Arc::new(Semaphore::new(max)),
            next_session: AtomicU64::new(1),
            refused: AtomicU64::new(0),
            bad_user_data: AtomicU64::new(0),
            unknown_frames: AtomicU64::new(0),
        })
    }

    /// The host's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The stream id of phone `key`.
    pub fn stream_id(&self, key: &str) -> String {
        format!("{}-{key}", self.config.mobile.instance)
    }

    /// Phones connected now.
    pub fn connected(&self) -> usize {
        lock(&self.live).len()
    }

    /// The connected phones with their last positions, by stream id.
    pub fn locations(&self) -> Vec<Location> {
        let mut v: Vec<Location> = lock(&self.live)
            .iter()
            .map(|(k, l)| Location {
                id: self.stream_id(k),
                started_ms: l.started_ms,
                last: l.last,
            })
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    fn publish_sessions(&self) {
        let sessions: Vec<IngestSession> = {
            let live = lock(&self.live);
            let mut v: Vec<IngestSession> = live
                .iter()
                .map(|(k, l)| IngestSession {
                    key: k.clone(),
                    name: l.name.clone(),
                    online: true,
                })
                .collect();
            v.sort_by(|a, b| a.key.cmp(&b.key));
            let departed = lock(&self.departed);
            for d in departed.iter().rev() {
                if !live.contains_key(&d.key) {
                    v.push(IngestSession {
                        key: d.key.clone(),
                        name: d.name.clone(),
                        online: false,
                    });
                }
            }
            v
        };
        self.providers
            .set_sessions(&self.config.mobile.instance, sessions);
    }

    /// Admits a phone that said hello with `id`, `token` and `secret` (its
    /// session secret from an earlier admission, or one it chose) from
    /// `addr`: its id (the one it asked for, or a new one), and its
    /// session, whose secret the phone is to be told.
    pub async fn open(
        self: &Arc<Self>,
        hello: Credentials<'_>,
        addr: SocketAddr,
        transport: &'static str,
    ) -> Result<Session, Refused> {
        let start = Instant::now();
        let r = self.admit(&hello, addr.ip()).await;
        if let Err(e) = &r {
            self.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%addr, transport, error = %e, "phone refused");
        }
        let (key, permit) = r?;
        let stream_id = self.stream_id(&key);
        let session = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (replaced_tx, replaced) = watch::channel(false);
        // The owner's secret goes on (a reconnect, a takeover by its
        // owner); a new owner's is the one it chose, or a new one.
        let secret = hello
            .secret
            .filter(|s| usable_secret(s))
            .map(str::to_string)
            .unwrap_or_else(|| crate::ids::unguessable_hex(16));
        let old = lock(&self.live).insert(
            key.clone(),
            Live {
                session,
                secret: secret.clone(),
                addr: addr.ip(),
                name: key.clone(),
                inputs: None,
                replaced: replaced_tx,
                positions: (Instant::now(), 0),
                started_ms: unix_ms(SystemTime::now()),
                last: None,
            },
        );
        if let Some(old) = old {
            tracing::info!(stream = %stream_id, %addr, "a newer connection replaces the phone's session");
            let _ = old.replaced.send(true);
        }
        self.publish_sessions();
        let deadline = (start + ADMISSION_WAIT).max(Instant::now() + MIN_LIST_WAIT);
        if let Err(why) = self.wait_listed(&stream_id, deadline).await {
            self.forget(&key, session);
            self.refused.fetch_add(1, Ordering::Relaxed);
            let e = Refused::NotListed(self.config.mobile.instance.clone(), why);
            tracing::warn!(%addr, transport, error = %e, "phone refused");
            return Err(e);
        }
        let started_ms = unix_ms(SystemTime::now());
        let db_id = match self
            .store
            .create_session(NewSession {
                id: None,
                stream_key: stream_id.clone(),
                started_ms,
                meta: serde_json::json!({ "addr": addr.to_string(), "transport": transport }),
            })
            .await
        {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(stream = %stream_id, error = %e, "cannot record the session");
                None
            }
        };
        tracing::info!(stream = %stream_id, %addr, transport, session, "phone connected");
        self.events.send(Event::Phone {
            id: stream_id.clone(),
            online: true,
        });
        Ok(Session {
            phones: self.clone(),
            key,
            stream_id,
            secret,
            session,
            db_id,
            feed: None,
            first_media: None,
            held_tracks: 0,
            replaced,
            // A limit too far to say is none.
            deadline: (self.config.mobile.time_limit > 0)
                .then(|| {
                    Instant::now().checked_add(Duration::from_secs(self.config.mobile.time_limit))
                })
                .flatten(),
            _permit: permit,
        })
    }

    async fn admit(
        &self,
        hello: &Credentials<'_>,
        addr: std::net::IpAddr,
    ) -> Result<(String, OwnedSemaphorePermit), Refused> {
        let cfg = &self.config.mobile;
        self.count_connect(addr)?;
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Full(cfg.max_sessions))?;
        let from_addr = lock(&self.live).values().filter(|l| l.addr == addr).count();
        if cfg.max_sessions_per_address > 0 && from_addr >= cfg.max_sessions_per_address {
            return Err(Refused::AddressFull(cfg.max_sessions_per_address));
        }
        // A phone arriving while the host starts waits for its instance
        // (its tokens, its listing) rather than finding none.
        self.providers
            .ensure_serving(&cfg.instance)
            .await
            .map_err(|why| Refused::NotListed(cfg.instance.clone(), why))?;
        let catalog = self.catalog.snapshot();
        let listed = |key: &str| catalog.streams.contains_key(&self.stream_id(key));
        let key = admission::key_for(hello.id, cfg.allow_unknown, listed, new_id)?;
        let registered = self.registered_token(&key);
        admission::check_token(&key, registered.as_deref(), hello.token)?;
        // Past the token check, a registered token was presented: it
        // proves the phone.
        self.check_claim(&key, hello.secret, registered.is_some())?;
        Ok((key, permit))
    }

    /// Counts a connection from `addr` in its minute; refuses one beyond
    /// `[mobile] max_connects_per_minute`.
    fn count_connect(&self, addr: std::net::IpAddr) -> Result<(), Refused> {
        let max = self.config.mobile.max_connects_per_minute;
        lock(&self.connects).count(addr, Instant::now(), max)
    }

    /// Whether a newcomer may have `key`: a connected phone or one that
    /// left within the grace period is kept for the holder of its secret
    /// (or its registered token).
    fn check_claim(
        &self,
        key: &str,
        secret: Option<&str>,
        token_proves: bool,
    ) -> Result<(), Refused> {
        let grace = Duration::from_secs(self.config.mobile.reconnect_grace_seconds);
        // One lock at a time: the secrets are copied out.
        let live = lock(&self.live).get(key).map(|l| l.secret.clone());
        let departed = match live {
            Some(_) => None,
            None => lock(&self.departed)
                .iter()
                .rev()
                .find(|d| d.key == key)
                .map(|d| (d.secret.clone(), d.left.elapsed())),
        };
        let holder = match (&live, &departed) {
            (Some(secret), _) => Holder::Connected(secret),
            (None, Some((secret, ago))) => Holder::Departed(secret, *ago),
            (None, None) => Holder::Free,
        };
        admission::check_claim(key, holder, secret, token_proves, grace)
    }

    /// Whether `token` is phone `key`'s registered token (the instance
    /// sets one, and this is it).
    fn token_proves(&self, key: &str, token: Option<&str>) -> bool {
        match (self.registered_token(key), token) {
            (Some(w), Some(t)) => crate::tokens::constant_time_eq(w.as_bytes(), t.as_bytes()),
            _ => false,
        }
    }

    /// Checks that whoever posts a position for connected phone `key` owns
    /// it: its session secret, or its registered token. False when the
    /// phone is not connected.
    pub fn check_owner(&self, key: &str, hello: &Credentials<'_>) -> Result<bool, Refused> {
        let Some(secret) = lock(&self.live).get(key).map(|l| l.secret.clone()) else {
            return Ok(false);
        };
        if admission::proves(&secret, hello.secret, || {
            self.token_proves(key, hello.token)
        }) {
            Ok(true)
        } else {
            Err(Refused::NotOwner(show(key)))
        }
    }

    /// Phone `key`'s token, if its instance registers one.
    fn registered_token(&self, key: &str) -> Option<String> {
        self.providers
            .config_entry_field(&self.config.mobile.instance, "phones", key, "token")
    }

    /// Whether phone `key` is connected.
    pub fn is_connected(&self, key: &str) -> bool {
        lock(&self.live).contains_key(key)
    }

    /// Waits until the catalog lists `stream_id` online, at most until
    /// `deadline`.
    async fn wait_listed(&self, stream_id: &str, deadline: Instant) -> Result<(), NotServing> {
        let mut changes = self.catalog.changes();
        let listed = || {
            self.catalog
                .snapshot()
                .streams
                .get(stream_id)
                .is_some_and(|e| e.online && e.is_ingest())
        };
        let waited = tokio::time::timeout_at(deadline.into(), async {
            while !listed() {
                if changes.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        if waited.is_ok() && listed() {
            return Ok(());
        }
        let snap = self.catalog.snapshot();
        Err(match snap.providers.get(&self.config.mobile.instance) {
            None => NotServing::Unknown,
            Some(p) => match &p.last_error {
                Some(e) => NotServing::Failed(e.clone()),
                None => NotServing::NotListedInTime,
            },
        })
    }

    /// Forgets session `session` of `key` if it is still the phone's.
    /// Returns whether it was.
    fn forget(&self, key: &str, session: u64) -> bool {
        let mut live = lock(&self.live);
        let mine = live.get(key).is_some_and(|l| l.session == session);
        if mine {
            if let Some(l) = live.remove(key) {
                let mut departed = lock(&self.departed);
                departed.retain(|d| d.key != key);
                departed.push_back(Departed {
                    key: key.to_string(),
                    name: l.name,
                    left: Instant::now(),
                    secret: l.secret,
                });
                while departed.len() > MAX_DEPARTED {
                    departed.pop_front();
                }
            }
        }
        drop(live);
        if mine {
            self.publish_sessions();
        }
        mine
    }
}

/// What a phone presents when it says hello (or posts a position).
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// The id it asks for.
    pub id: Option<&'a str>,
    /// Its registered token.
    pub token: Option<&'a str>,
    /// Its session secret (from an earlier admission, or chosen).
    pub secret: Option<&'a str>,
}

/// Whether `s` may serve as a session secret a phone chose.
fn usable_secret(s: &str) -> bool {
    SECRET_LEN.contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

/// A new phone's id: 24 hex digits, like the original's ObjectIds.
fn new_id() -> String {
    crate::ids::unguessable_hex(12)
}

/// One connected phone.
pub struct Session {
    phones: Arc<Phones>,
    key: String,
    stream_id: String,
    /// Its owner's secret, to tell the phone.
    secret: String,
    session: u64,
    db_id: Option<String>,
    feed: Option<Feed>,
    first_media: Option<Instant>,
    /// Tracks FFmpeg was (re)started with; 0 before.
    held_tracks: usize,
    replaced: watch::Receiver<bool>,
    /// When `[mobile] time_limit` ends it.
    deadline: Option<Instant>,
    _permit: OwnedSemaphorePermit,
}

impl Session {
    /// The phone's id (its key in the instance).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The phone's stream id.
    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }

    /// The session secret the phone is told (to reconnect, to post
    /// positions).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Resolves when the session must end from outside: a newer
    /// connection took the phone over, or `[mobile] time_limit` ran out.
    pub async fn cut_off(&mut self) -> Ended {
        let deadline = self.deadline;
        let limit = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.replaced.wait_for(|r| *r) => Ended::Replaced,
            _ = limit => Ended::TimeLimit(Duration::from_secs(self.phones.config.mobile.time_limit)),
        }
    }

    /// Media bytes of `track`: into its FIFO (waiting while FFmpeg has
    /// not taken what came before, up to the idle timeout).
    pub async fn media(&mut self, track: Track, bytes: &[u8]) -> Result<(), Ended> {
        let cfg = &self.phones.config.mobile;
        if self.feed.is_none() {
            let dir = self.phones.config.run_dir().join("mobile").join(format!(
                "{}-{}",
                self.session,
                new_id()
            ));
            let user = self.phones.config.security.media_user.as_ref();
            self.feed = Some(Feed::create(&dir, cfg.buffer_bytes, user)?);
        }
        let now = Instant::now();
        let first = *self.first_media.get_or_insert(now);
        let track_wait = Duration::from_millis(cfg.track_wait_ms);
        let stall = Duration::from_secs(cfg.idle_timeout_seconds.max(1));
        let mut off = 0;
        while off < bytes.len() {
            let feed = self.feed.as_mut().ok_or(Ended::Stopping)?;
            // Before FFmpeg runs, its start is due once both tracks came or
            // the wait for a second one is over (also while this write
            // waits for room).
            let hold_at = first + track_wait;
            let write = feed.write_some(track, &bytes[off..]);
            // Biased: the write is always tried first (it makes the FIFO
            // on first use, which the start needs).
            tokio::select! {
                biased;
                r = write => off += r?,
                _ = tokio::time::sleep_until(hold_at.into()), if self.held_tracks == 0 => {}
                _ = tokio::time::sleep(stall), if self.held_tracks > 0 => {
                    return Err(Ended::Stalled(stall));
                }
                _ = self.replaced.wait_for(|r| *r) => return Err(Ended::Replaced),
            }
            self.maybe_hold(track_wait)?;
        }
        Ok(())
    }

    /// Hands the stream to the supervisor (again, with more tracks) when
    /// its tracks are known.
    fn maybe_hold(&mut self, track_wait: Duration) -> Result<(), Ended> {
        let Some(feed) = &self.feed else {
            return Ok(());
        };
        let tracks = feed.tracks().len();
        let due = self.first_media.is_some_and(|t| t.elapsed() >= track_wait) || tracks >= 2;
        if tracks == 0 || tracks == self.held_tracks || !due {
            return Ok(());
        }
        if self.held_tracks > 0 {
            tracing::info!(stream = %self.stream_id, tracks, "a new track: restarting ffmpeg with it");
        }
        let inputs = feed.inputs();
        {
            let mut live = lock(&self.phones.live);
            match live.get_mut(&self.key) {
                Some(l) if l.session == self.session => l.inputs = Some(inputs),
                _ => return Err(Ended::Replaced),
            }
        }
        self.held_tracks = tracks;
        // A different value per track set: a late track restarts FFmpeg.
        let level = self.session * 4 + tracks as u64;
        if let Err(e) = self.phones.supervisor.ingest(&self.stream_id, Some(level)) {
            tracing::warn!(stream = %self.stream_id, error = %e, "cannot start the phone's stream");
        }
        Ok(())
    }

    /// A user-data frame (JSON) of this phone; see [`Phones::user_data`].
    pub async fn user_data(&self, payload: &[u8]) {
        self.phones.user_data(&self.key, payload).await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let phones = &self.phones;
        let mine = phones.forget(&self.key, self.session);
        if mine {
            let _ = phones.supervisor.ingest(&self.stream_id, None);
            phones.events.send(Event::Phone {
                id: self.stream_id.clone(),
                online: false,
            });
        }
        // Closing the FIFOs ends FFmpeg's inputs.
        self.feed = None;
        if let Some(id) = self.db_id.take() {
            let store = phones.store.clone();
            let at = unix_ms(SystemTime::now());
            tokio::spawn(async move {
                if let Err(e) = store.close_session(&id, at).await {
                    tracing::warn!(error = %e, "cannot close mobile session {id}");
                }
            });
        }
        tracing::info!(stream = %self.stream_id, session = self.session, "phone session ended");
    }
}

/// Closes every session the store still has open (a crash left them):
/// at start, before phones connect.
pub async fn close_stale_sessions(store: &Arc<dyn Store>) {
    match store.active_sessions().await {
        Ok(open) => {
            let at = unix_ms(SystemTime::now());
            for s in &open {
                if let Err(e) = store.close_session(&s.id, at).await {
                    tracing::warn!(session = %s.id, error = %e, "cannot close a stale mobile session");
                }
            }
            if !open.is_empty() {
                tracing::info!(
                    sessions = open.len(),
                    "closed mobile sessions left open by the previous run"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read mobile sessions"),
    }
}
