//! The host's event stream: what changed, as it happens, for
//! `/api/events`, the legacy `/mobile/location` WebSocket and the web
//! page (stream states and viewers, listings, providers, phones coming
//! and going, their positions).
//!
//! A bounded broadcast: a subscriber that falls behind loses the oldest
//! events (and is told so by the channel, so it can resynchronise from a
//! snapshot); nobody is slowed down. Events name what changed; the
//! readers render the current public view of it, so nothing private
//! (sources, logs) travels through here.

use crate::catalog::{Catalog, Snapshot};
use crate::lifecycle::State;
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Events kept for a slow subscriber before it starts losing them: about
/// 10 s of the `events` bench's 1,000 changes per second would not fit,
/// a second of them does, and a lagging reader resynchronises from a
/// snapshot anyway.
const BACKLOG: usize = 4096;

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A stream's lifecycle state or viewer count changed.
    Stream {
        /// The stream.
        id: String,
        /// Its state.
        state: State,
        /// Viewers (RTMP + HTTP).
        viewers: usize,
    },
    /// A stream appeared in the catalog or its listing changed (name,
    /// online, tags; not a live position).
    Listed {
        /// The stream.
        id: String,
    },
    /// A stream left the catalog.
    Unlisted {
        /// The stream.
        id: String,
    },
    /// A provider instance's state, error, version or stream count
    /// changed (or it went away).
    Provider {
        /// The instance.
        id: String,
    },
    /// A phone connected (`online`) or left.
    Phone {
        /// Its stream id.
        id: String,
        /// Connected now.
        online: bool,
    },
    /// A stream's statistics changed (a start, a publish, a failure, a
    /// thumbnail attempt, a new peak of viewers).
    Stats {
        /// The stream.
        id: String,
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

    /// Subscribers now.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// Turns catalog changes from now on into [`Event::Listed`],
/// [`Event::Unlisted`] and [`Event::Provider`] until the catalog is
/// dropped (the future to run). Positions are not listing changes (they
/// have their own events).
pub fn watch_catalog(
    catalog: Arc<Catalog>,
    events: Arc<Events>,
) -> impl std::future::Future<Output = ()> + Send {
    let mut changes = catalog.changes();
    let mut prev = catalog.snapshot();
    async move {
        while changes.changed().await.is_ok() {
            let next = catalog.snapshot();
            for e in diff(&prev, &next) {
                events.send(e);
            }
            prev = next;
        }
    }
}

/// What changed from `a` to `b`, as events.
fn diff(a: &Snapshot, b: &Snapshot) -> Vec<Event> {
    let mut out = Vec::new();
    for (id, p) in &b.providers {
        let same = a.providers.get(id).is_some_and(|q| {
            (q.state, &q.last_error, &q.version, q.stream_count, q.stale)
                == (p.state, &p.last_error, &p.version, p.stream_count, p.stale)
        });
        if !same {
            out.push(Event::Provider { id: id.clone() });
        }
    }
    for id in a.providers.keys() {
        if !b.providers.contains_key(id) {
            out.push(Event::Provider { id: id.clone() });
        }
    }
    // A status change shares the streams: nothing to compare.
    if Arc::ptr_eq(&a.streams, &b.streams) {
        return out;
    }
    for (id, s) in b.streams.iter() {
        let same = a.streams.get(id).is_some_and(|t| {
            Arc::ptr_eq(s, t) || {
                let mut t = (**t).clone();
                t.geo = s.geo;
                t == **s
            }
        });
        if !same {
            out.push(Event::Listed { id: id.clone() });
        }
    }
    for id in a.streams.keys() {
        if !b.streams.contains_key(id) {
            out.push(Event::Unlisted { id: id.clone() });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Geo, StreamEntry};

    fn entry(id: &str, name: &str, geo: Option<Geo>) -> StreamEntry {
        StreamEntry {
            id: id.into(),
            provider: "p".into(),
            key: id.trim_start_matches("p-").into(),
            name: name.into(),
            geo,
            online: true,
            source: "s".into(),
            input_options: Arc::from([]),
            output_options: Arc::from([]),
            tags: Default::default(),
            plan: Err(crate::ffmpeg::Refusal::new("test")),
        }
    }

    #[tokio::test]
    async fn listing_changes_become_events_but_positions_do_not() {
        let catalog = Arc::new(Catalog::new());
        let events = Arc::new(Events::new());
        let mut rx = events.subscribe();
        let pump = tokio::spawn(watch_catalog(catalog.clone(), events.clone()));
        catalog.replace_streams("p", vec![entry("p-a", "A", None), entry("p-b", "B", None)]);
        let mut got = vec![rx.recv().await.unwrap(), rx.recv().await.unwrap()];
        got.sort_by_key(|e| format!("{e:?}"));
        assert_eq!(
            got,
            [
                Event::Listed { id: "p-a".into() },
                Event::Listed { id: "p-b".into() }
            ]
        );
        // A live position changes the catalog but is no listing change.
        catalog.set_geo("p-a", Geo { lat: 1.0, lon: 2.0 });
        // A rename is; a vanished stream is unlisted.
        catalog.replace_streams("p", vec![entry("p-a", "A2", None)]);
        let mut got = vec![rx.recv().await.unwrap(), rx.recv().await.unwrap()];
        got.sort_by_key(|e| format!("{e:?}"));
        assert_eq!(
            got,
            [
                Event::Listed { id: "p-a".into() },
                Event::Unlisted { id: "p-b".into() }
            ]
        );
        assert!(rx.try_recv().is_err(), "the position made no listing event");
        pump.abort();
    }
}
