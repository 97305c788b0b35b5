//! `[mobile]`: the phones' ingest.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

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
    /// A session running longer than this many seconds is ended (the
    /// phone may connect again); 0: no limit. The original's
    /// `[mobile] time_limit`.
    pub time_limit: u64,
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
            time_limit: 0,
        }
    }
}
