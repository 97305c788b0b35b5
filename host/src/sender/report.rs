//! How a run went: why it ended ([`End`]), what it sent ([`Stats`], counted
//! live in [`Counters`]) and the summary line ([`Report`]).

use super::SendError;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a run ended normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// FFmpeg reached the end of the input.
    InputEnded,
    /// `--duration` elapsed.
    Duration,
    /// The server closed the connection (TCP) after the handshake.
    ServerClosed,
    /// Ctrl-C (or the caller's shutdown future).
    Interrupted,
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InputEnded => "the input ended",
            Self::Duration => "the duration elapsed",
            Self::ServerClosed => "the server closed the connection",
            Self::Interrupted => "interrupted",
        })
    }
}

/// What a run sent, in bytes (payloads and frame headers; in HTTP mode
/// the body and position JSON, and the muxed TS counts as video).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Everything written.
    pub total: u64,
    /// Video payload bytes (by source, whatever `--swap-types` labels).
    pub video: u64,
    /// Audio payload bytes (by source).
    pub audio: u64,
    /// Positions sent.
    pub positions: u64,
}

/// The live counters behind [`Stats`] (kept outside the run's future so
/// that an interrupted run still reports them).
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) total: AtomicU64,
    pub(super) video: AtomicU64,
    pub(super) audio: AtomicU64,
    pub(super) positions: AtomicU64,
}

impl Counters {
    pub(super) fn add(c: &AtomicU64, n: usize) {
        c.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> Stats {
        Stats {
            total: self.total.load(Ordering::Relaxed),
            video: self.video.load(Ordering::Relaxed),
            audio: self.audio.load(Ordering::Relaxed),
            positions: self.positions.load(Ordering::Relaxed),
        }
    }
}

/// How a run went.
#[derive(Debug)]
pub struct Report {
    /// The session id, once known.
    pub id: Option<String>,
    /// What was sent.
    pub stats: Stats,
    /// Why it ended, or why it failed.
    pub end: Result<End, SendError>,
}

impl Report {
    /// `sent <total> bytes: <v> video, <a> audio, <n> positions, id <id>`
    /// (`id -` when no id was known).
    pub fn summary_line(&self) -> String {
        let s = &self.stats;
        format!(
            "sent {} bytes: {} video, {} audio, {} positions, id {}",
            s.total,
            s.video,
            s.audio,
            s.positions,
            self.id.as_deref().unwrap_or("-")
        )
    }
}
