//! The media plane: `[nginx]` (the nginx-rtmp server viewers connect to)
//! and `[ffmpeg]` (FFmpeg and the on-demand lifecycle of streams).

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;

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
