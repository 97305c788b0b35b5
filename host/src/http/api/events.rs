//! `GET /api/events`: the host's [`Events`](crate::events::Events) as
//! Server-Sent Events, for the web page and anyone watching the host.
//!
//! A client gets a `snapshot` on connect (streams with state, viewers and
//! position; providers), then `stream`, `listed`, `unlisted`, `provider`,
//! `phone` and `position` events as they happen. Each client reads the
//! host's bounded broadcast at its own pace: one that falls more than its
//! backlog behind gets `resync` (with how many events it missed) and a
//! new snapshot, never an unbounded buffer. Comments keep idle
//! connections open through proxies. Events carry the public view (no
//! sources, logs or FFmpeg pids); errors only for private callers, as in
//! the rest of the API.

use super::{provider_json, stream_brief};
use crate::events::Event;
use crate::http::access::Caller;
use crate::http::state::EventsState;
use axum::extract::{Extension, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::IntoResponse;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast::{self, error::RecvError};

/// Comment lines on an idle stream this often: below nginx's default
/// `proxy_read_timeout` of 60 s and browsers' idle limits.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One client's view of the events.
struct Client {
    st: EventsState,
    caller: Caller,
    rx: broadcast::Receiver<Event>,
    /// Rendered, not yet sent (the first snapshot; a resync and its
    /// snapshot).
    pending: VecDeque<SseEvent>,
}

/// The handler.
pub async fn events(
    State(st): State<EventsState>,
    Extension(caller): Extension<Caller>,
) -> impl IntoResponse {
    // Subscribed before the snapshot is taken: a change in between is
    // both in the snapshot and sent after it, never lost.
    let rx = st.events.subscribe();
    let first = snapshot(&st, caller);
    let client = Client {
        st,
        caller,
        rx,
        pending: VecDeque::from([first]),
    };
    let stream = futures_util::stream::unfold(client, |mut c| async move {
        loop {
            if let Some(e) = c.pending.pop_front() {
                return Some((Ok::<_, Infallible>(e), c));
            }
            match c.rx.recv().await {
                Ok(e) => {
                    if let Some(e) = render(&c.st, c.caller, &e) {
                        return Some((Ok(e), c));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    c.pending
                        .push_back(sse("resync", &json!({ "missed": missed })));
                    c.pending.push_back(snapshot(&c.st, c.caller));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    (
        // nginx passes the events on as they come (no response buffering).
        [("x-accel-buffering", "no")],
        Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)),
    )
}

fn sse(name: &str, data: &Value) -> SseEvent {
    SseEvent::default().event(name).data(data.to_string())
}

/// Everything a page needs to draw the host as it is now.
fn snapshot(st: &EventsState, caller: Caller) -> SseEvent {
    let snap = st.catalog.snapshot();
    let statuses = st.supervisor.statuses();
    let streams: Vec<Value> = snap
        .streams
        .values()
        .map(|s| stream_brief(s, &statuses.get(&s.id).cloned().unwrap_or_default()))
        .collect();
    let providers: Vec<Value> = snap
        .providers
        .values()
        .map(|p| provider_json(p, caller))
        .collect();
    sse(
        "snapshot",
        &json!({
            "time_ms": crate::catalog::unix_ms(SystemTime::now()),
            "streams": streams,
            "providers": providers,
        }),
    )
}

/// `event` as this client sees it (None: nothing to tell, e.g. a stream
/// listed and gone again).
fn render(st: &EventsState, caller: Caller, event: &Event) -> Option<SseEvent> {
    Some(match event {
        Event::Listed { id } => {
            let s = st.catalog.snapshot().streams.get(id).cloned()?;
            sse("listed", &stream_brief(&s, &st.supervisor.status_brief(id)))
        }
        Event::Provider { id } => match st.catalog.snapshot().providers.get(id) {
            Some(p) => sse("provider", &provider_json(p, caller)),
            None => sse("provider", &json!({ "id": id, "removed": true })),
        },
        Event::Stats { id } => sse(
            "stats",
            &super::stats::figures(&st.stats, &st.thumbnails, id),
        ),
        Event::Stream { .. }
        | Event::Unlisted { .. }
        | Event::Phone { .. }
        | Event::Position { .. } => {
            let mut v = json!(event);
            let name = v
                .as_object_mut()
                .and_then(|o| o.remove("type"))
                .and_then(|t| t.as_str().map(str::to_string))?;
            sse(&name, &v)
        }
    })
}
