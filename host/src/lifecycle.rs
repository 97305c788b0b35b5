//! A stream's lifecycle state: what the supervisor reports, and what
//! events, statistics and the recorder read (a leaf, so that none of them
//! depends on the supervisor to name a state).

use serde::{Deserialize, Serialize};

/// The state of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = StreamState)]
pub enum State {
    /// No FFmpeg.
    #[default]
    Idle,
    /// FFmpeg spawned, not yet publishing.
    Starting,
    /// FFmpeg publishing.
    Live,
    /// Running, unwatched, within the grace period.
    Stopping,
    /// Waiting to retry after a failure (or for a free FFmpeg slot).
    Backoff,
    /// The FFmpeg policy refuses its source or options; see `last_error`.
    Refused,
}
