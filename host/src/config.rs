//! The operator's configuration: `dss.toml` (with `DSS_*` environment
//! overrides) and the provider instance files `providers.d/NAME.toml`.
//!
//! Every key has a default, so an empty file (or none) is a valid
//! configuration. Relative paths are resolved against `base_dir`, which
//! itself defaults to the directory holding the configuration file.

use crate::ids;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid TOML or has unknown/mistyped keys.
    #[error("invalid configuration in {path}: {message}")]
    Invalid {
        /// The file (or `environment` for `DSS_*` variables).
        path: PathBuf,
        /// What serde/toml said.
        message: String,
    },
}

/// The whole host configuration (`dss.toml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the host's HTTP server (API, callbacks, web page).
    pub listen: SocketAddr,
    /// Directory against which relative paths are resolved; state (compile
    /// cache, run files, logs) goes to `state_dir` below it.
    pub base_dir: PathBuf,
    /// Where the host keeps its own files (default `var`).
    pub state_dir: PathBuf,
    /// Provider modules and instances.
    pub providers: ProvidersConfig,
    /// The nginx-rtmp server viewers connect to.
    pub nginx: NginxConfig,
    /// FFmpeg and the on-demand lifecycle of streams.
    pub ffmpeg: FfmpegConfig,
    /// Who may call what.
    pub security: SecurityConfig,
    /// The web page.
    pub web: WebConfig,
    /// Where metadata is kept: embedded SQLite (default) or MongoDB.
    pub store: dss_store::StoreConfig,
    /// Phones pushing MPEG-TS and GPS (the original DSS's TCP protocol).
    pub mobile: MobileConfig,
    /// Per-stream statistics.
    pub stats: StatsConfig,
    /// Thumbnails of streams.
    pub thumbnails: ThumbnailsConfig,
    /// Recordings (which streams record is set per instance).
    pub record: RecordConfig,
    /// Several hosts sharing one MongoDB.
    pub cluster: ClusterConfig,
}

/// `[cluster]`: several DSS hosts sharing one MongoDB, each stream run by
/// exactly one of them (see `docs/scaling.md`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Cluster mode (needs the MongoDB store).
    pub enabled: bool,
    /// This host's name in the cluster; unset: the machine's host name.
    /// Letters, digits, `_`, `-` and `.`, at most 64.
    pub node_id: Option<String>,
    /// How the other hosts reach this host's nginx-rtmp to pull its
    /// streams: `rtmp://HOST:PORT/APP`; unset: nginx's address, RTMP port
    /// and application.
    pub advertise_rtmp: Option<String>,
    /// How long a lease holds without renewal, in seconds: a dead host's
    /// streams move after about this long.
    pub lease_seconds: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            node_id: None,
            advertise_rtmp: None,
            // Takeover within ~10 s, three renewal chances per lease.
            lease_seconds: 10,
        }
    }
}

impl ClusterConfig {
    /// The node id in force.
    pub fn node_id(&self) -> String {
        self.node_id.clone().unwrap_or_else(host_name)
    }

    /// Checks the values against the rest of the configuration.
    pub fn check(&self, store: &dss_store::StoreConfig) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        if store.is_embedded() {
            return Err("[cluster] enabled: several hosts share a MongoDB store; the embedded SQLite store is one host's. Set [store] url = \"mongodb://...\" on every host".into());
        }
        let id = self.node_id();
        let valid = !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return Err(format!(
                "[cluster] node_id {id:?}: letters, digits, '_', '-' and '.', at most 64 (set it when the host name is not)"
            ));
        }
        if !(3..=300).contains(&self.lease_seconds) {
            return Err("[cluster] lease_seconds: 3 to 300".into());
        }
        if let Some(a) = &self.advertise_rtmp {
            let ok = url::Url::parse(a).is_ok_and(|u| u.scheme() == "rtmp" && u.host().is_some());
            if !ok {
                return Err(format!(
                    "[cluster] advertise_rtmp {a:?}: rtmp://HOST:PORT/APP"
                ));
            }
        }
        Ok(())
    }
}

/// The machine's host name (`localhost` when it cannot be read).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            // The original DSS's port.
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            base_dir: PathBuf::from("."),
            state_dir: PathBuf::from("var"),
            providers: ProvidersConfig::default(),
            nginx: NginxConfig::default(),
            ffmpeg: FfmpegConfig::default(),
            security: SecurityConfig::default(),
            web: WebConfig::default(),
            store: dss_store::StoreConfig::default(),
            mobile: MobileConfig::default(),
            stats: StatsConfig::default(),
            thumbnails: ThumbnailsConfig::default(),
            record: RecordConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

/// `[providers]`: where modules and instances are, and the default limits
/// of every provider call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProvidersConfig {
    /// Directory of `.wasm` provider components (module name = file stem).
    pub modules_dir: PathBuf,
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

impl Default for ProvidersConfig {
    fn default() -> Self {
        ProvidersConfig {
            modules_dir: PathBuf::from("providers"),
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

/// `[nginx]`: the nginx-rtmp server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NginxConfig {
    /// Run nginx as a supervised child. Unset: yes when an nginx with the
    /// rtmp module is found.
    pub managed: Option<bool>,
    /// The nginx binary.
    pub binary: PathBuf,
    /// The rtmp module to load (`load_module`); empty: none (built in).
    pub rtmp_module: PathBuf,
    /// Address FFmpeg publishes to and the host reads `/stat` from.
    pub host: IpAddr,
    /// Address nginx listens on for viewers (RTMP and HTTP).
    pub bind: IpAddr,
    /// nginx HTTP port (HLS, DASH, `/stat`).
    pub http_port: u16,
    /// RTMP port.
    pub rtmp_port: u16,
    /// RTMP application name.
    pub app: String,
    /// A custom template instead of the built-in `nginx/nginx.conf`.
    pub template: Option<PathBuf>,
    /// How long the first playlist request of an idle stream waits for the
    /// playlist to exist, in seconds.
    pub http_start_wait_seconds: u64,
}

impl Default for NginxConfig {
    fn default() -> Self {
        NginxConfig {
            managed: None,
            binary: PathBuf::from("nginx"),
            rtmp_module: PathBuf::from("/usr/lib/nginx/modules/ngx_rtmp_module.so"),
            host: IpAddr::from([127, 0, 0, 1]),
            http_port: 8080,
            rtmp_port: 1935,
            app: "dss".into(),
            bind: IpAddr::from([0, 0, 0, 0]),
            template: None,
            // The first HLS playlist exists ~2 s after FFmpeg starts.
            http_start_wait_seconds: 10,
        }
    }
}

/// `[ffmpeg]`: the FFmpeg binary and the stream lifecycle timings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FfmpegConfig {
    /// The FFmpeg binary.
    pub binary: PathBuf,
    /// Seconds a stream keeps running after its last viewer left.
    pub grace_seconds: u64,
    /// Seconds FFmpeg has to publish before it is killed and retried.
    pub start_timeout_seconds: u64,
    /// First restart delay after a failure, in milliseconds.
    pub backoff_initial_ms: u64,
    /// Longest restart delay, in seconds.
    pub backoff_max_seconds: u64,
    /// Seconds of running without progress before FFmpeg is restarted.
    pub stale_seconds: u64,
    /// Seconds a stream must stay live for its backoff to reset.
    pub stable_seconds: u64,
    /// Lines of FFmpeg stderr kept per stream.
    pub log_lines: usize,
    /// Default lifetime of an HTTP viewer lease (heartbeat), in seconds.
    pub http_lease_seconds: u64,
    /// Shortest lease a client may ask for.
    pub http_lease_min_seconds: u64,
    /// Longest lease a client may ask for.
    pub http_lease_max_seconds: u64,
    /// Seconds between reconciliations of viewer counts with nginx `/stat`.
    pub stat_interval_seconds: u64,
    /// Streams kept running whatever the viewers (ids).
    pub auto_start: Vec<String>,
    /// Providers whose streams are all kept running (ids).
    pub auto_start_providers: Vec<String>,
    /// FFmpeg processes that may run at once (0: no limit); a viewer of
    /// an idle stream beyond it is refused, and the refusal counted.
    pub max_running: usize,
    /// Least time between two spawns of one stream, in milliseconds.
    pub min_spawn_interval_ms: u64,
}

impl Default for FfmpegConfig {
    fn default() -> Self {
        FfmpegConfig {
            binary: PathBuf::from("ffmpeg"),
            grace_seconds: 30,
            start_timeout_seconds: 15,
            backoff_initial_ms: 1_000,
            backoff_max_seconds: 60,
            stale_seconds: 20,
            stable_seconds: 60,
            log_lines: 200,
            // Players re-fetch playlists every few seconds; 30 s outlives
            // a few missed fetches.
            http_lease_seconds: 30,
            http_lease_min_seconds: 5,
            http_lease_max_seconds: 600,
            stat_interval_seconds: 10,
            auto_start: Vec::new(),
            auto_start_providers: Vec::new(),
            // Each FFmpeg holds 20-60 MiB and, transcoding, a good part of
            // a core: 100 bounds what a burst of viewers across many
            // streams can start. Raise it on big machines or copy-only
            // deployments.
            max_running: 100,
            // A crash loop or a flapping viewer cannot spawn one stream
            // more than once a second.
            min_spawn_interval_ms: 1_000,
        }
    }
}

/// `[security]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// Addresses nginx's callbacks (and the original's `/control`) may
    /// come from.
    pub callback_allow: Vec<IpAddr>,
    /// The token of the private surface (admin actions, metrics, logs,
    /// recordings), needed from every caller, loopback included; unset:
    /// made once and kept in `<state_dir>/api.token`.
    pub api_token: Option<String>,
    /// Secret that nginx's callbacks carry in their path
    /// (`/hooks/SECRET/on_play`); unset: generated once and kept in
    /// `<state_dir>/callback.secret`.
    pub callback_secret: Option<String>,
    /// Streams one public client address may hold viewer leases on at
    /// once (HLS/DASH playlists and `watch` through the public port).
    pub max_streams_per_client: usize,
    /// When the host runs as root, the unprivileged user every FFmpeg and
    /// nginx's workers run as (default `dss`; it must exist: the set-up
    /// makes it). `"root"` keeps them root, against advice. Ignored when
    /// the host does not run as root.
    pub run_as: Option<String>,
    /// `run_as` resolved at start ([`crate::privileges`]); `None` when the
    /// media plane runs as the host's own user.
    #[serde(skip)]
    pub media_user: Option<crate::privileges::MediaUser>,
}

impl SecurityConfig {
    /// Whether `ip` may send callbacks.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.callback_allow.iter().any(|a| a.to_canonical() == ip)
    }
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            callback_allow: vec![IpAddr::from([127, 0, 0, 1]), "::1".parse().expect("valid")],
            api_token: None,
            callback_secret: None,
            // A viewer watches one stream; a wall of a few cameras is
            // fine; a client walking every stream is not.
            max_streams_per_client: 8,
            run_as: None,
            media_user: None,
        }
    }
}

/// `[web]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Directory served at `/`.
    pub dir: PathBuf,
    /// A tile URL template (`https://tile.example/{z}/{x}/{y}.png`) for the
    /// map's base layer; unset, the page draws its bundled coastlines and
    /// fetches nothing from outside.
    pub tiles: Option<String>,
    /// The tiles' attribution (shown on the map).
    pub attribution: String,
    /// Where the map opens (`[lat, lon]`); unset: fitted to the markers.
    pub center: Option<[f64; 2]>,
    /// The map's zoom with `center`.
    pub zoom: Option<u8>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            dir: PathBuf::from("www"),
            tiles: None,
            attribution: String::new(),
            center: None,
            zoom: None,
        }
    }
}

/// `[mobile]`: the phones' ingest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MobileConfig {
    /// `true`/`false`; unset: on when the instance `instance` exists.
    pub enabled: Option<bool>,
    /// The TCP ingest's address (the original DSS's port, on every
    /// interface: phones are outside).
    pub listen: SocketAddr,
    /// The `mobile-ts` instance phones belong to; a phone's stream id is
    /// `<instance>-<phone id>`.
    pub instance: String,
    /// Admit phones the instance does not list (each new one gets a fresh
    /// 24-hex id), as the original did. When false, only listed phones
    /// are admitted, with their `token` when the instance sets one.
    pub allow_unknown: bool,
    /// Largest frame payload accepted (phones send ~512 B frames).
    pub max_frame_bytes: usize,
    /// Time a new connection has to send its metadata frame.
    pub handshake_timeout_ms: u64,
    /// A connected phone that sends nothing for this long is dropped (the
    /// original: 5 s).
    pub idle_timeout_seconds: u64,
    /// Phones connected at once (TCP and HTTP together).
    pub max_sessions: usize,
    /// Bytes buffered per track of a phone between the socket and FFmpeg;
    /// a phone faster than FFmpeg is slowed by TCP back-pressure beyond.
    pub buffer_bytes: usize,
    /// After a phone's first media bytes, how long to wait for its second
    /// track before starting FFmpeg with what came (video-only phones).
    pub track_wait_ms: u64,
    /// After a phone leaves, how long its id is kept for the holder of its
    /// session secret (a reconnect after a dropped connection); then
    /// anyone may claim it again.
    pub reconnect_grace_seconds: u64,
    /// Phones connected at once from one address (0: no cap). Phones on a
    /// mobile network share their carrier's addresses: not too low.
    pub max_sessions_per_address: usize,
    /// Connections a minute from one address (0: no cap).
    pub max_connects_per_minute: u32,
    /// Anonymous phones (not in the instance's `phones`) that left are
    /// unlisted this long after (0: kept until 1,000 others left).
    pub forget_after_seconds: u64,
}

impl Default for MobileConfig {
    fn default() -> Self {
        MobileConfig {
            enabled: None,
            listen: SocketAddr::from(([0, 0, 0, 0], 9995)),
            instance: "phones".into(),
            allow_unknown: true,
            max_frame_bytes: 1 << 20,
            handshake_timeout_ms: 5_000,
            idle_timeout_seconds: 10,
            max_sessions: 200,
            buffer_bytes: 1 << 20,
            track_wait_ms: 1_000,
            // A dropped connection comes back within seconds; the original
            // phone, which knows no secret, waits this long at most.
            reconnect_grace_seconds: 30,
            max_sessions_per_address: 20,
            max_connects_per_minute: 60,
            forget_after_seconds: 3600,
        }
    }
}

/// `[stats]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatsConfig {
    /// Seconds between saves of the streams' statistics to the store (one
    /// batch per round, only streams that changed): what a host crash can
    /// lose, and the write rate.
    pub save_interval_seconds: u64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            save_interval_seconds: 30,
        }
    }
}

/// `[thumbnails]`: the original's `[thumbnail]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThumbnailsConfig {
    /// Scaled copies besides the full-size one: file suffix (`medium` →
    /// `ID-medium.jpg`) → `WIDTHxHEIGHT`.
    pub sizes: BTreeMap<String, String>,
    /// Seconds between thumbnails of a live stream (taken from the
    /// stream's own HLS fragments: no second connection to the source).
    pub live_interval: u64,
    /// Seconds between thumbnails of a connected phone.
    pub phone_interval: u64,
    /// Seconds between rounds over idle streams (instances with
    /// `thumbnails = "all"`), from the start of one to the next.
    pub interval: u64,
    /// Seconds after start before the first round.
    pub start_after: u64,
    /// FFmpeg runs at once in a round.
    pub workers: usize,
    /// Seconds one run of a round may take before it is killed.
    pub timeout: u64,
    /// A stream whose thumbnails keep failing loses them once they are
    /// this many seconds old (0: never).
    pub delete_after: u64,
}

impl Default for ThumbnailsConfig {
    fn default() -> Self {
        ThumbnailsConfig {
            // The original's sizes.
            sizes: [("medium", "320x240"), ("small", "176x132")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            live_interval: 10,
            phone_interval: 3,
            interval: 300,
            start_after: 30,
            // A round polls cameras; a few at once is enough and spares
            // the host's cores.
            workers: 4,
            timeout: 45,
            delete_after: 3600,
        }
    }
}

impl ThumbnailsConfig {
    /// The scaled sizes as (suffix, width, height); an error names a bad
    /// entry.
    pub fn scaled(&self) -> Result<Vec<(String, u32, u32)>, String> {
        let mut out = Vec::new();
        for (name, size) in &self.sizes {
            if name.is_empty()
                || name.len() > 16
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            {
                return Err(format!(
                    "[thumbnails] sizes: {name:?} must be 1 to 16 lowercase letters or digits"
                ));
            }
            let parsed = size
                .split_once('x')
                .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
                .filter(|(w, h)| (16..=4096).contains(w) && (16..=4096).contains(h));
            let Some((w, h)) = parsed else {
                return Err(format!(
                    "[thumbnails] sizes: {name} = {size:?} must be WIDTHxHEIGHT, 16 to 4096 each"
                ));
            };
            out.push((name.clone(), w, h));
        }
        Ok(out)
    }
}

/// `[record]` of `dss.toml`: what applies to every recording.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordConfig {
    /// The most the record directory may hold, in GiB, across all streams
    /// (oldest segments go first; 0: no bound besides the instances').
    pub max_total_gib: f64,
    /// The longest range one export may cover, in hours.
    pub max_export_hours: u64,
}

impl Default for RecordConfig {
    fn default() -> Self {
        RecordConfig {
            max_total_gib: 0.0,
            max_export_hours: 24,
        }
    }
}

/// Whose thumbnails an instance makes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThumbnailMode {
    /// Live streams' (from the stream already flowing) and, in periodic
    /// rounds, idle ones' (one short connection to each source per round).
    All,
    /// Only live streams' (default: polling every camera costs its owner).
    #[default]
    Live,
    /// None.
    Off,
}

/// `[record]` of an instance file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InstanceRecord {
    /// Whether the instance's streams record (a `[record]` table alone
    /// turns it on, as in the original).
    pub enabled: bool,
    /// Only these streams (keys or full ids); empty: all of them.
    pub streams: Vec<String>,
    /// Seconds per segment, a divisor of a day; segments start at
    /// multiples of it (epoch aligned).
    pub interval: u64,
    /// Container: `ts` (default: plays in every player, keeps every
    /// packet written before a crash, timestamps continuous from one
    /// segment to the next; exports are MP4 for browsers), `mp4`
    /// (fragmented; a crash loses the fragment in progress), `mkv`, `flv`.
    pub format: String,
    /// Segments older than this many hours are deleted (0: kept).
    pub max_age_hours: f64,
    /// This instance's segments are trimmed, oldest first, to this many
    /// GiB (0: no bound besides `[record] max_total_gib`).
    pub max_total_gib: f64,
}

impl Default for InstanceRecord {
    fn default() -> Self {
        InstanceRecord {
            enabled: true,
            streams: Vec::new(),
            interval: 3600,
            format: "ts".into(),
            max_age_hours: 0.0,
            max_total_gib: 0.0,
        }
    }
}

/// The containers segments may be written in.
pub const RECORD_FORMATS: &[&str] = &["mp4", "mkv", "ts", "flv"];

impl InstanceRecord {
    /// Checks the values; the error says which.
    pub fn check(&self) -> Result<(), String> {
        if !RECORD_FORMATS.contains(&self.format.as_str()) {
            return Err(format!(
                "[record] format {:?}: one of {}",
                self.format,
                RECORD_FORMATS.join(", ")
            ));
        }
        // FFmpeg cuts at multiples of the interval within the UTC day:
        // epoch-aligned only when the interval divides a day.
        if !(1..=86_400).contains(&self.interval) || 86_400 % self.interval != 0 {
            return Err(format!(
                "[record] interval {}: seconds that divide a day (86400), such as 60, 300, 600, 900, 1800 or 3600",
                self.interval
            ));
        }
        if !(self.max_age_hours >= 0.0 && self.max_total_gib >= 0.0) {
            return Err("[record] max_age_hours and max_total_gib cannot be negative".into());
        }
        Ok(())
    }

    /// Whether stream `id` (key `key`) records.
    pub fn covers(&self, id: &str, key: &str) -> bool {
        self.enabled
            && (self.streams.is_empty() || self.streams.iter().any(|s| s == id || s == key))
    }
}

impl Config {
    /// Loads `path` (or the defaults when `None`), applies `DSS_*`
    /// environment overrides, and resolves relative paths.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let (mut doc, dir, origin) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|error| ConfigError::Read {
                    path: p.to_path_buf(),
                    error,
                })?;
                let doc: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
                    path: p.to_path_buf(),
                    message: e.to_string(),
                })?;
                let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
                (doc, dir, p.to_path_buf())
            }
            None => (
                toml::Table::new(),
                PathBuf::new(),
                PathBuf::from("defaults"),
            ),
        };
        apply_env(&mut doc, env);
        let origin_path = origin.clone();
        let mut config: Config =
            toml::Value::Table(doc)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    path: origin,
                    message: e.to_string(),
                })?;
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let base = dir.join(&config.base_dir);
        config.base_dir = std::path::absolute(&base).unwrap_or(base);
        config.resolve_paths();
        config
            .cluster
            .check(&config.store)
            .map_err(|message| ConfigError::Invalid {
                path: origin_path.clone(),
                message,
            })?;
        Ok(config)
    }

    fn resolve_paths(&mut self) {
        let base = self.base_dir.clone();
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut self.state_dir);
        abs(&mut self.providers.modules_dir);
        abs(&mut self.providers.instances_dir);
        abs(&mut self.web.dir);
        if let Some(t) = &mut self.nginx.template {
            abs(t);
        }
        // The SQLite file lives with the host's own files.
        if self.store.sqlite_path.is_relative() {
            self.store.sqlite_path = self.state_dir.join(&self.store.sqlite_path);
        }
    }

    /// Run files: rendered nginx.conf, pid, HLS/DASH fragments.
    pub fn run_dir(&self) -> PathBuf {
        self.state_dir.join("run")
    }

    /// Log files of nginx.
    pub fn log_dir(&self) -> PathBuf {
        self.state_dir.join("log")
    }

    /// FFmpeg's working directory: empty, the host's own (0700).
    pub fn ffmpeg_cwd(&self) -> PathBuf {
        self.run_dir().join("ffmpeg-cwd")
    }

    /// Recordings: `record/{id}/{id}-{start}.{ext}`.
    pub fn record_dir(&self) -> PathBuf {
        self.state_dir.join("record")
    }

    /// Thumbnails: `thumb/{id}[-size].jpg` (nginx serves `/thumb/`).
    pub fn thumb_dir(&self) -> PathBuf {
        self.state_dir.join("thumb")
    }

    /// The host's own HTTP base URL as seen from nginx (loopback when the
    /// host listens on all interfaces).
    pub fn host_url(&self) -> String {
        let mut addr = self.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                IpAddr::from([127, 0, 0, 1])
            } else {
                "::1".parse().expect("valid")
            });
        }
        format!("http://{addr}")
    }

    /// Where FFmpeg publishes stream `id` (without the publish token).
    pub fn rtmp_url(&self, id: &str) -> String {
        let n = &self.nginx;
        format!(
            "rtmp://{}/{}/{id}",
            SocketAddr::new(n.host, n.rtmp_port),
            n.app
        )
    }

    /// Where `/stat` is read.
    /// nginx's `/stat`, under the callback `secret` (nothing the media
    /// plane reaches may read it, or anything else of nginx's own).
    pub fn stat_url(&self, secret: &str) -> String {
        let n = &self.nginx;
        format!(
            "http://{}/{secret}/stat",
            SocketAddr::new(n.host, n.http_port)
        )
    }

    /// Where compiled components are cached.
    pub fn module_cache_dir(&self) -> PathBuf {
        self.state_dir.join("cache").join("modules")
    }

    /// The secret nginx's callbacks carry: `[security] callback_secret`,
    /// else the one kept in `<state_dir>/callback.secret` (created, mode
    /// 0600, with 128 random bits, the first time).
    pub fn callback_secret(&self) -> std::io::Result<String> {
        if let Some(s) = &self.security.callback_secret {
            if !is_secret(s) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "[security] callback_secret must be 32 to 128 hex digits",
                ));
            }
            return Ok(s.clone());
        }
        self.state_secret("callback.secret")
    }

    /// The API token, which the private surface needs from every caller:
    /// `[security] api_token`, else the one kept in `<state_dir>/api.token`
    /// (created, mode 0600, with 128 random bits, the first time; an
    /// operator reads it there).
    pub fn api_token(&self) -> std::io::Result<String> {
        match &self.security.api_token {
            Some(t) if t.is_empty() || t.chars().any(|c| c.is_control() || c == ' ') => {
                Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "[security] api_token must be a non-empty word (no spaces)",
                ))
            }
            Some(t) => Ok(t.clone()),
            None => self.state_secret(API_TOKEN_FILE),
        }
    }

    /// Cluster mode: this host's key, kept in `<state_dir>/cluster.key`
    /// (made the first time, 0600): a restarted host is itself, another
    /// host under the same node id is not.
    pub fn cluster_key(&self) -> std::io::Result<String> {
        self.state_secret("cluster.key")
    }

    /// A secret kept in file `name` of the state directory: read, or made
    /// (mode 0600, 128 random bits) the first time.
    fn state_secret(&self, name: &str) -> std::io::Result<String> {
        let state = crate::files::HostDir::create(&self.state_dir)?;
        match state.read_to_string(name) {
            Ok(s) if is_secret(s.trim()) => return Ok(s.trim().to_string()),
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} must hold 32 to 128 hex digits; remove it to get a new one",
                        state.path(name).display()
                    ),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let secret = ids::random_hex(16)?;
        // Two hosts starting at once on one state directory: the first
        // file made wins and both read it back.
        state.write_new(name, secret.as_bytes(), Some(crate::files::PRIVATE_FILE))?;
        let s = state.read_to_string(name)?;
        Ok(s.trim().to_string())
    }

    /// The effective configuration as TOML (for `dss config`).
    /// Secrets (the API token, the callback secret, a password in the
    /// store's URL) are shown as `"<redacted>"`: the output is for reading
    /// and pasting into issues, not a copy of the secrets.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        let redact = |v: &mut Option<String>| {
            if v.is_some() {
                *v = Some(REDACTED.to_string());
            }
        };
        redact(&mut shown.security.api_token);
        redact(&mut shown.security.callback_secret);
        if let Some(u) = shown.store.url.as_mut() {
            *u = redact_url_password(u);
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// The file of the state directory that keeps a generated API token.
pub const API_TOKEN_FILE: &str = "api.token";

/// What `dss config` shows in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// `url` with the password of its user information replaced by
/// [`REDACTED`].
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // The user information ends at the last '@' before the path.
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:{REDACTED}{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// A callback secret: 32 to 128 hex digits (it goes into URLs and the
/// nginx configuration).
fn is_secret(s: &str) -> bool {
    (32..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Applies `DSS_SECTION__KEY=value` variables (`DSS_LISTEN`,
/// `DSS_NGINX__HTTP_PORT`, ...). Values are read as TOML when they parse
/// (numbers, booleans, arrays), else as strings.
fn apply_env(doc: &mut toml::Table, env: impl IntoIterator<Item = (String, String)>) {
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("DSS_") else {
            continue;
        };
        // DSS_CONFIG names the file itself (`--config`), not a key in it.
        if rest == "CONFIG" {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        if path.iter().any(String::is_empty) {
            continue;
        }
        let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(value));
        let mut table = &mut *doc;
        for key in &path[..path.len() - 1] {
            let entry = table
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            let toml::Value::Table(t) = entry else {
                unreachable!("just made a table")
            };
            table = t;
        }
        table.insert(path[path.len() - 1].clone(), value);
    }
}

/// A provider instance: `providers.d/NAME.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    /// The module (file stem of a `.wasm` in the modules directory).
    pub module: String,
    /// The id prefix of its streams (default: NAME).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Whether the instance runs.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Hosts `http-get` may reach (`host` or `host:port`).
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// Lets host names in `allow_hosts` resolve to private, loopback or
    /// link-local addresses (IP addresses listed literally are always
    /// allowed: the operator named them), and lets stream sources use any
    /// non-public address (literal or resolved).
    #[serde(default)]
    pub allow_private: bool,
    /// Hosts stream sources may name: `host`, `host:port`, `*.domain`
    /// (subdomains), `*` (any host), an address or a network (`10.0.0.0/8`).
    /// Unset: the entries of `allow_hosts`.
    #[serde(default)]
    pub allow_sources: Option<Vec<String>>,
    /// Lets stream sources be `udp://` or `rtp://` (FFmpeg receives them on
    /// a local port, connected to the source host).
    #[serde(default)]
    pub allow_udp: bool,
    /// Seconds between listings, overriding the provider's default.
    #[serde(default)]
    pub refresh_seconds: Option<u32>,
    /// FFmpeg input options, overriding the provider's defaults.
    #[serde(default)]
    pub input_options: Option<Vec<String>>,
    /// FFmpeg output options, overriding the provider's defaults.
    #[serde(default)]
    pub output_options: Option<Vec<String>>,
    /// Limit overrides.
    #[serde(default)]
    pub limits: toml::Table,
    /// List on first use (an API request or a viewer of one of its
    /// streams) instead of at start.
    #[serde(default)]
    pub lazy: bool,
    /// Seconds a persisted listing is trusted at start: younger than this,
    /// it is served without asking the provider until it expires.
    #[serde(default)]
    pub cache_seconds: u64,
    /// A listing file (JSON array of streams: key, source, name, geo,
    /// online, ...) served when the provider fails and nothing better is
    /// known. A relative path is read inside the instance file's
    /// directory (refused if it leads out, by `..` or a symlink); an
    /// absolute one is read as given.
    #[serde(default)]
    pub fallback: Option<PathBuf>,
    /// Whose thumbnails are made: `live` (default), `all` (idle streams
    /// too, polled in rounds) or `off`.
    #[serde(default)]
    pub thumbnails: ThumbnailMode,
    /// Recording of this instance's streams.
    #[serde(default)]
    pub record: Option<InstanceRecord>,
    /// Passed to the provider's `init` and every call, as JSON.
    #[serde(default)]
    pub config: toml::Table,
    /// Where the instance's secrets come from (`name = { env = "VAR" }` or
    /// `{ file = "PATH" }`); a provider sends them in request headers by
    /// name and never sees them (see [`crate::secrets`]).
    #[serde(default)]
    pub secrets: std::collections::BTreeMap<String, crate::secrets::SecretSource>,
    /// The secrets' values, read when the file is loaded; never serialized.
    #[serde(skip)]
    pub secret_values: std::sync::Arc<crate::secrets::Secrets>,
}

fn yes() -> bool {
    true
}

impl InstanceConfig {
    /// Reads and checks `path`; the instance id is the file stem.
    pub fn load(path: &Path) -> Result<(String, InstanceConfig), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| invalid("file name is not UTF-8".into()))?
            .to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let mut inst: InstanceConfig = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        inst.secret_values = std::sync::Arc::new(
            crate::secrets::Secrets::load(&inst.secrets, dir).map_err(&invalid)?,
        );
        let id = inst.prefix.clone().unwrap_or_else(|| name.clone());
        ids::check_provider_id(&id).map_err(|e| invalid(e.to_string()))?;
        inst.source_grant().map_err(invalid)?;
        if let Some(r) = &inst.record {
            r.check().map_err(invalid)?;
        }
        Ok((id, inst))
    }

    /// What this instance's stream sources may reach (`allow_sources`,
    /// else `allow_hosts`, and `allow_private`); a bad `allow_sources`
    /// entry is an error.
    pub fn source_grant(&self) -> Result<crate::ffmpeg::SourceGrant, String> {
        crate::ffmpeg::SourceGrant::new(
            self.allow_sources.as_deref(),
            &self.allow_hosts,
            self.allow_private,
        )
        .map(|g| g.with_udp(self.allow_udp))
    }

    /// The limits in force: `defaults` with this instance's overrides.
    pub fn limits(&self, defaults: &Limits) -> Result<Limits, String> {
        let mut table = toml::Table::try_from(defaults).map_err(|e| e.to_string())?;
        for (k, v) in &self.limits {
            table.insert(k.clone(), v.clone());
        }
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| format!("[limits]: {e}"))
    }

    /// The `[config]` table as a JSON object string.
    pub fn config_json(&self) -> String {
        serde_json::to_string(&self.config).unwrap_or_else(|_| "{}".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_configuration_redacts_secrets() {
        let mut c = Config::load_with_env(None, []).unwrap();
        c.security.api_token = Some("tok3n-value".into());
        c.security.callback_secret = Some("ab".repeat(16));
        c.store.url = Some("mongodb://dss:hunter2@db.example:27017/dss?authSource=admin".into());
        let text = c.to_toml();
        for secret in ["tok3n-value", &"ab".repeat(16), "hunter2"] {
            assert!(!text.contains(secret), "{secret} shown:\n{text}");
        }
        assert!(text.contains("mongodb://dss:<redacted>@db.example:27017/dss?authSource=admin"));
        assert_eq!(
            redact_url_password("mongodb://db.example/dss"),
            "mongodb://db.example/dss"
        );
        assert_eq!(
            redact_url_password("mongodb://user@db/x?a=b@c"),
            "mongodb://user@db/x?a=b@c"
        );
    }

    #[test]
    fn defaults_match_the_design() {
        let c = Config::load_with_env(None, []).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(c.nginx.http_port, 8080);
        assert_eq!(c.nginx.rtmp_port, 1935);
        assert_eq!(c.nginx.app, "dss");
        assert_eq!(c.ffmpeg.grace_seconds, 30);
        assert!(c.providers.instances_dir.ends_with("providers.d"));
    }

    #[test]
    fn env_overrides_file_values() {
        let dir = std::env::temp_dir().join(format!("dss-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("dss.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\n[nginx]\nhttp_port = 81\n",
        )
        .unwrap();
        let env = [
            ("DSS_NGINX__HTTP_PORT".to_string(), "8181".to_string()),
            ("DSS_NGINX__APP".to_string(), "live".to_string()),
            ("OTHER".to_string(), "x".to_string()),
        ];
        let c = Config::load_with_env(Some(&file), env).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.nginx.http_port, 8181);
        assert_eq!(c.nginx.app, "live");
        assert_eq!(c.base_dir, dir);
        assert_eq!(c.providers.modules_dir, dir.join("providers"));
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("dss-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("dss.toml");
        std::fs::write(&file, "[nginx]\nhttp_prot = 1\n").unwrap();
        let e = Config::load_with_env(Some(&file), [])
            .unwrap_err()
            .to_string();
        assert!(e.contains("dss.toml") && e.contains("http_prot"), "{e}");
    }

    #[test]
    fn cluster_mode_needs_mongodb_and_checks_its_values() {
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let e = Config::load_with_env(None, env(&[("DSS_CLUSTER__ENABLED", "true")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[cluster]") && e.contains("mongodb"), "{e}");
        let mongo = [
            ("DSS_CLUSTER__ENABLED", "true"),
            ("DSS_STORE__URL", "mongodb://127.0.0.1:27017/dss"),
        ];
        let c = Config::load_with_env(None, env(&mongo)).unwrap();
        assert_eq!(c.cluster.lease_seconds, 10);
        assert!(!c.cluster.node_id().is_empty());
        for (k, v, msg) in [
            ("DSS_CLUSTER__LEASE_SECONDS", "1", "lease_seconds"),
            ("DSS_CLUSTER__NODE_ID", "a b", "node_id"),
            ("DSS_CLUSTER__ADVERTISE_RTMP", "http://x/", "advertise_rtmp"),
        ] {
            let mut pairs = mongo.to_vec();
            pairs.push((k, v));
            let e = Config::load_with_env(None, env(&pairs))
                .unwrap_err()
                .to_string();
            assert!(e.contains(msg), "{k}={v}: {e}");
        }
    }

    #[test]
    fn dss_config_names_the_file_not_a_key() {
        let env = [("DSS_CONFIG".to_string(), "/etc/dss.toml".to_string())];
        assert!(Config::load_with_env(None, env).is_ok());
    }

    #[test]
    fn the_callback_secret_is_made_once_and_kept_private() {
        let dir = std::env::temp_dir().join(format!("dss-secret-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut c = Config::load_with_env(None, []).unwrap();
        c.state_dir = dir.clone();
        let a = c.callback_secret().unwrap();
        assert_eq!(a.len(), 32);
        assert_eq!(c.callback_secret().unwrap(), a, "kept across calls");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("callback.secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(dir.join("callback.secret"), "x; include /etc").unwrap();
        assert!(c.callback_secret().is_err(), "a tampered file is refused");
        c.security.callback_secret = Some("bad secret".into());
        assert!(c.callback_secret().is_err(), "so is a bad configured one");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_allow_sources_entries_reject_the_instance_file() {
        let dir = std::env::temp_dir().join(format!("dss-config-src-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("cams.toml");
        std::fs::write(
            &file,
            "module = \"x\"\nallow_sources = [\"cams.example\", \"10.0.0.0/40\"]\n",
        )
        .unwrap();
        let e = InstanceConfig::load(&file).unwrap_err().to_string();
        assert!(e.contains("cams.toml") && e.contains("10.0.0.0/40"), "{e}");
        std::fs::write(
            &file,
            "module = \"x\"\nallow_sources = [\"*.cams.example\", \"10.0.0.0/8\", \"cam:554\"]\n",
        )
        .unwrap();
        let (_, inst) = InstanceConfig::load(&file).unwrap();
        assert_eq!(inst.allow_sources.as_ref().map(Vec::len), Some(3));
    }

    #[test]
    fn instance_limits_override_defaults() {
        let inst: InstanceConfig =
            toml::from_str("module = \"x\"\n[limits]\nmemory_mib = 8\n[config]\na = 1\n").unwrap();
        let l = inst.limits(&Limits::default()).unwrap();
        assert_eq!(l.memory_mib, 8);
        assert_eq!(l.call_timeout_ms, Limits::default().call_timeout_ms);
        assert_eq!(inst.config_json(), r#"{"a":1}"#);
        let bad: InstanceConfig = toml::from_str("module = \"x\"\n[limits]\nmemory = 8\n").unwrap();
        assert!(bad.source_grant().is_ok());
        assert!(bad
            .limits(&Limits::default())
            .unwrap_err()
            .contains("memory"));
    }

    #[test]
    fn a_record_interval_divides_a_day() {
        let with = |interval| InstanceRecord {
            interval,
            ..InstanceRecord::default()
        };
        for ok in [1, 5, 60, 300, 3600, 7200, 86_400] {
            assert!(with(ok).check().is_ok(), "{ok}");
        }
        for bad in [0, 7, 3601, 86_401] {
            let e = with(bad).check().unwrap_err();
            assert!(
                e.contains(&bad.to_string()) && e.contains("divide a day"),
                "{e}"
            );
        }
    }
}
