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
//!
//! A map asks with `?bbox=minLon,minLat,maxLon,maxLat` for its view: the
//! snapshot then holds the streams positioned inside, and stream events
//! come only for those (a phone that leaves the box gets one last
//! `position`, and a stream listed again outside it an `unlisted`).

use super::doc::{Documented, ErrorBody};
use super::extract::ApiQuery;
use super::list::{in_box, parse_bbox, Brief};
use super::providers::provider_json;
use super::ApiError;
use crate::catalog::Catalog;
use crate::events::Event;
use crate::http::access::Caller;
use crate::http::state::EventsState;
use axum::extract::{Extension, FromRef, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::IntoResponse;
use dss_store::BBox;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast::{self, error::RecvError};

/// `/api/events`.
pub(super) fn routes<S>() -> Documented<S>
where
    S: Clone + Send + Sync + 'static,
    EventsState: FromRef<S>,
{
    Documented::new().routes(utoipa_axum::routes!(events))
}

/// Comment lines on an idle stream this often: below nginx's default
/// `proxy_read_timeout` of 60 s and browsers' idle limits.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One client's view of the events.
struct Client {
    st: EventsState,
    caller: Caller,
    rx: broadcast::Receiver<Event>,
    /// The map's view, if it asked for one, and the streams it was told
    /// of inside it.
    view: Option<View>,
    /// Rendered, not yet sent (the first snapshot; a resync and its
    /// snapshot).
    pending: VecDeque<SseEvent>,
}

/// A client's box and the streams it knows inside it.
struct View {
    bbox: BBox,
    known: HashSet<String>,
}

/// The query of `GET /api/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// `minLon,minLat,maxLon,maxLat`: only streams positioned inside.
    #[param(pattern = r"^(-?[0-9]{1,20}(\.[0-9]{1,20})?,){3}-?[0-9]{1,20}(\.[0-9]{1,20})?$")]
    bbox: Option<String>,
}

/// The host's events, live (Server-Sent Events).
///
/// A `snapshot` first, then `stream`, `listed`, `unlisted`, `provider`,
/// `phone` and `position` events as they happen; `resync` and a new
/// snapshot for a client that fell behind. The stream does not end.
#[utoipa::path(
    get,
    path = "/api/events",
    tag = "streams",
    security((), ("bearer" = [])),
    params(EventsQuery),
    responses(
        (status = 200, description = "The events", content_type = "text/event-stream", body = String),
        (status = 400, description = "A malformed box", body = ErrorBody),
    )
)]
pub async fn events(
    State(st): State<EventsState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let mut view = q
        .bbox
        .as_deref()
        .map(parse_bbox)
        .transpose()?
        .map(|bbox| View {
            bbox,
            known: HashSet::new(),
        });
    // Subscribed before the snapshot is taken: a change in between is
    // both in the snapshot and sent after it, never lost.
    let rx = st.events.subscribe();
    let first = snapshot(&st, caller, view.as_mut());
    let client = Client {
        st,
        caller,
        rx,
        view,
        pending: VecDeque::from([first]),
    };
    let stream = futures_util::stream::unfold(client, |mut c| async move {
        loop {
            if let Some(e) = c.pending.pop_front() {
                return Some((Ok::<_, Infallible>(e), c));
            }
            match c.rx.recv().await {
                Ok(e) => {
                    if let Some(e) = render(&c.st, c.caller, c.view.as_mut(), &e) {
                        return Some((Ok(e), c));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    c.pending
                        .push_back(sse("resync", &json!({ "missed": missed })));
                    let again = snapshot(&c.st, c.caller, c.view.as_mut());
                    c.pending.push_back(again);
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok((
        // nginx passes the events on as they come (no response buffering).
        [("x-accel-buffering", "no")],
        Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)),
    ))
}

fn sse(name: &str, data: &Value) -> SseEvent {
    SseEvent::default().event(name).data(data.to_string())
}

/// Everything a page needs to draw the host as it is now (in its view).
fn snapshot(st: &EventsState, caller: Caller, mut view: Option<&mut View>) -> SseEvent {
    let snap = st.catalog.snapshot();
    let statuses = st.supervisor.statuses();
    let idle = Default::default();
    if let Some(v) = view.as_deref_mut() {
        v.known.clear();
    }
    let streams: Vec<Brief> = match view {
        None => snap.streams.values().collect(),
        Some(v) => {
            let inside = st.catalog.within(&snap, &v.bbox);
            v.known.extend(inside.iter().map(|s| s.id.clone()));
            inside
        }
    }
    .into_iter()
    .map(|s| Brief::new(s, statuses.get(&s.id).unwrap_or(&idle)))
    .collect();
    let providers: Vec<Value> = snap
        .providers
        .values()
        .map(|p| provider_json(p, caller))
        .collect();
    /// Serialized in one pass (no JSON tree of 100,000 streams).
    #[derive(serde::Serialize)]
    struct Body<'a> {
        time_ms: u64,
        streams: Vec<Brief<'a>>,
        providers: Vec<Value>,
    }
    let body = Body {
        time_ms: crate::catalog::unix_ms(SystemTime::now()),
        streams,
        providers,
    };
    let data = serde_json::to_string(&body).unwrap_or_else(|e| {
        tracing::error!(error = %e, "events: the snapshot does not serialize");
        "{}".into()
    });
    SseEvent::default().event("snapshot").data(data)
}

/// Whether a client with `view` hears of `event`, keeping track of the
/// streams it knows inside its box. Some(false): tell it the stream left.
fn in_view(catalog: &Catalog, view: &mut View, event: &Event) -> Option<bool> {
    match event {
        Event::Provider { .. } => Some(true),
        Event::Listed { id } => {
            let s = catalog.snapshot().streams.get(id).cloned()?;
            if in_box(&s, &view.bbox) {
                view.known.insert(id.clone());
                Some(true)
            } else {
                view.known.remove(id).then_some(false)
            }
        }
        Event::Unlisted { id } => view.known.remove(id).then_some(true),
        Event::Position { id, lat, lon, .. } => {
            if view.bbox.contains(*lat, *lon) {
                view.known.insert(id.clone());
                Some(true)
            } else {
                // The last position inside tells the map it left.
                view.known.remove(id).then_some(true)
            }
        }
        Event::Stream { id, .. } | Event::Phone { id, .. } | Event::Stats { id } => {
            view.known.contains(id).then_some(true)
        }
    }
}

/// `event` as this client sees it (None: nothing to tell, e.g. a stream
/// listed and gone again, or outside its view).
fn render(
    st: &EventsState,
    caller: Caller,
    view: Option<&mut View>,
    event: &Event,
) -> Option<SseEvent> {
    if let Some(view) = view {
        if !in_view(&st.catalog, view, event)? {
            let id = match event {
                Event::Listed { id } => id,
                _ => return None,
            };
            return Some(sse("unlisted", &json!({ "id": id })));
        }
    }
    Some(match event {
        Event::Listed { id } => {
            let s = st.catalog.snapshot().streams.get(id).cloned()?;
            let status = st.supervisor.status_brief(id);
            sse("listed", &json!(Brief::new(&s, &status)))
        }
        Event::Provider { id } => match st.catalog.snapshot().providers.get(id) {
            Some(p) => sse("provider", &provider_json(p, caller)),
            None => sse("provider", &json!({ "id": id, "removed": true })),
        },
        Event::Stats { id } => sse(
            "stats",
            &json!(super::stats::figures(&st.stats, &st.thumbnails, id)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::state::testing::catalogue_at;

    #[test]
    fn a_view_hears_of_its_streams_and_of_those_leaving_it() {
        let catalog = Catalog::new();
        catalogue_at(
            &catalog,
            "cams",
            &[("in", Some((1.0, 2.0))), ("out", Some((40.0, 50.0)))],
        );
        let mut view = View {
            bbox: parse_bbox("0,0,3,3").expect("a box"),
            known: HashSet::new(),
        };
        let id = |s: &str| s.to_string();
        let mut hears = |e: Event| in_view(&catalog, &mut view, &e);
        assert_eq!(hears(Event::Listed { id: id("cams-in") }), Some(true));
        assert_eq!(hears(Event::Listed { id: id("cams-out") }), None);
        assert_eq!(hears(Event::Stats { id: id("cams-in") }), Some(true));
        assert_eq!(hears(Event::Stats { id: id("cams-out") }), None);
        assert_eq!(hears(Event::Provider { id: id("cams") }), Some(true));
        // A phone moving out: its last position, then nothing.
        let at = |lat, lon| Event::Position {
            id: id("cams-in"),
            t_ms: 0,
            lat,
            lon,
        };
        assert_eq!(hears(at(2.0, 2.0)), Some(true));
        assert_eq!(hears(at(20.0, 2.0)), Some(true));
        assert_eq!(hears(at(21.0, 2.0)), None);
        assert_eq!(
            hears(Event::Stream {
                id: id("cams-in"),
                state: Default::default(),
                viewers: 0
            }),
            None
        );
        // ... and back in.
        assert_eq!(hears(at(1.0, 1.0)), Some(true));
        assert_eq!(hears(Event::Unlisted { id: id("cams-in") }), Some(true));
        assert_eq!(hears(Event::Unlisted { id: id("cams-in") }), None);
    }
}
