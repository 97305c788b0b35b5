//! The host's event stream: what changed, as it happens, for the API and
//! the web page (phones coming and going, their positions).
//!
//! A bounded broadcast: a subscriber that falls behind loses the oldest
//! events (and is told so by the channel), nobody is slowed down.

use serde::Serialize;
use tokio::sync::broadcast;

/// Events kept for a slow subscriber before it starts losing them.
const BACKLOG: usize = 1024;

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A phone connected (`online`) or left.
    Phone {
        /// Its stream id.
        id: String,
        /// Connected now.
        online: bool,
    },
    /// A phone's position, as its provider transformed it.
    Position {
        /// Its stream id.
        id: String,
        /// When (Unix ms).
        t_ms: u64,
        /// Latitude.
        lat: f64,
        /// Longitude.
        lon: f64,
    },
}

/// The broadcast of [`Event`]s.
#[derive(Debug)]
pub struct Events {
    tx: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(BACKLOG).0,
        }
    }
}

impl Events {
    /// An event stream nobody listens to yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends `event` to every subscriber (none: dropped).
    pub fn send(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
