//! One stream over HTTP: its detail, a viewer's lease (`watch`), the
//! admin's start and stop, and a phone's GPS track.

use super::doc::{Documented, ErrorBody};
use super::extract::{ApiPath, ApiQuery};
use super::{authorize, list, ApiError};
use crate::catalog::{Catalog, StreamEntry};
use crate::http::access::Caller;
use crate::http::state::StreamsState;
use crate::ids;
use crate::lifecycle::State as StreamState;
use axum::extract::{Extension, FromRef, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

/// The routes of one stream (its statistics and thumbnail are
/// [`super::stats`]'s, its track [`track_routes`]).
pub(super) fn routes<S>() -> Documented<S>
where
    S: Clone + Send + Sync + 'static,
    StreamsState: FromRef<S>,
{
    Documented::new()
        .routes(routes!(stream))
        .routes(routes!(watch))
        .routes(routes!(admin_start))
        .routes(routes!(admin_stop))
}

/// A phone's track, read from the store.
pub(super) fn track_routes() -> Documented<crate::http::state::AppState> {
    Documented::new().routes(routes!(track))
}

/// The catalogued stream `id`: 400 for an id that is not one, 404 for
/// one not catalogued.
pub(super) fn lookup(catalog: &Catalog, id: &str) -> Result<Arc<StreamEntry>, ApiError> {
    ids::parse_stream_id(id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    catalog
        .snapshot()
        .streams
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no stream {id:?}")))
}

/// Viewers by protocol.
#[derive(Debug, Serialize, ToSchema)]
pub struct Viewers {
    /// RTMP players (nginx-rtmp's `play`).
    pub rtmp: usize,
    /// HLS and DASH players and `watch` leases.
    pub http: usize,
}

/// Where a stream plays (`HOST` is the address the client reached).
#[derive(Debug, Serialize, ToSchema)]
pub struct Urls {
    /// RTMP.
    pub rtmp: String,
    /// HLS.
    pub hls: String,
    /// MPEG-DASH.
    pub dash: String,
}

/// A stream, its FFmpeg and its viewers.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamDetail {
    /// What the catalog holds of it.
    #[serde(flatten)]
    #[schema(value_type = StreamEntry)]
    pub entry: Arc<StreamEntry>,
    /// Its lifecycle state.
    pub state: StreamState,
    /// Its viewers.
    pub viewers: Viewers,
    /// Started by an admin: runs without viewers until stopped.
    pub pinned: bool,
    /// FFmpeg's process id while one runs.
    pub pid: Option<u32>,
    /// When it entered its state (Unix ms).
    pub since_ms: u64,
    /// FFmpeg restarts after a failure.
    pub restarts: u32,
    /// Consecutive failures.
    pub failures: u32,
    /// How long its last start took to publish (ms).
    pub warmup_ms: Option<u64>,
    /// Frames FFmpeg reported.
    pub frames: u64,
    /// Why it last failed or is refused (private).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<Option<String>>,
    /// FFmpeg's last lines (private).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<Vec<String>>,
    /// Whether it has an error to show an admin (public).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_error: Option<bool>,
    /// Where it plays.
    pub urls: Urls,
}

/// A stream's detail: its catalog entry, state, viewers and addresses.
///
/// With the token, FFmpeg's last lines and error too (they can quote
/// sources with credentials).
#[utoipa::path(
    get,
    path = "/api/streams/{id}",
    tag = "streams",
    security((), ("bearer" = [])),
    params(super::doc::StreamPath),
    responses(
        (status = 200, description = "The stream", body = StreamDetail),
        (status = 400, description = "Not a stream id", body = ErrorBody),
        (status = 404, description = "Not catalogued", body = ErrorBody),
    )
)]
pub(super) async fn stream(
    State(st): State<StreamsState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<StreamDetail>, ApiError> {
    st.listings.ensure_for_stream(&id).await;
    let s = lookup(&st.catalog, &id)?;
    let private = caller.is_private();
    let status = if private {
        st.supervisor.status(&id)
    } else {
        st.supervisor.status_brief(&id)
    };
    let n = &st.config.nginx;
    let urls = Urls {
        rtmp: format!("rtmp://HOST:{}/{}/{id}", n.rtmp_port, n.app),
        hls: format!("http://HOST:{}/hls/{id}/index.m3u8", n.http_port),
        dash: format!("http://HOST:{}/dash/{id}/index.mpd", n.http_port),
    };
    let (last_error, log, has_error) = if private {
        // FFmpeg's lines and errors can quote sources with credentials.
        let refused = s.refusal().map(|r| format!("refused: {r}"));
        (
            Some(refused.or(status.last_error.clone())),
            Some(status.log.clone()),
            None,
        )
    } else {
        (None, None, Some(status.last_error.is_some()))
    };
    Ok(Json(StreamDetail {
        state: list::effective_state(&s, &status),
        viewers: Viewers {
            rtmp: status.viewers_rtmp,
            http: status.viewers_http,
        },
        pinned: status.pinned,
        pid: status.pid,
        since_ms: status.since_ms,
        restarts: status.restarts,
        failures: status.failures,
        warmup_ms: status.warmup_ms,
        frames: status.frames,
        last_error,
        log,
        has_error,
        urls,
        entry: s,
    }))
}

/// Parameters of `POST /api/streams/{id}/watch`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WatchParams {
    /// Lease length in seconds (clamped by the config).
    #[param(maximum = 86400)]
    timeout: Option<u32>,
    /// Distinguishes viewers behind one address (at most 128 characters).
    #[param(max_length = 128)]
    client: Option<String>,
}

/// The longest lease a client may ask for (a day; the config clamps it
/// further, `[ffmpeg] http_lease_max_seconds`).
const MAX_LEASE_ASKED: u32 = 86_400;

/// A viewer's lease.
#[derive(Debug, Serialize, ToSchema)]
pub struct Lease {
    /// The stream.
    pub id: String,
    /// How long the lease lasts unless renewed.
    pub lease_seconds: u64,
    /// The stream's state now.
    pub state: StreamState,
}

/// Watches a stream: a viewer's lease, which starts it when idle.
///
/// Renew it before it ends to keep watching. A public client holds one
/// lease per stream, on a bounded number of streams.
#[utoipa::path(
    post,
    path = "/api/streams/{id}/watch",
    tag = "streams",
    security((), ("bearer" = [])),
    params(super::doc::StreamPath, WatchParams),
    responses(
        (status = 200, description = "Leased", body = Lease),
        (status = 400, description = "A malformed id or parameter", body = ErrorBody),
        (status = 404, description = "Not catalogued, offline or refused", body = ErrorBody),
        (status = 429, description = "Too many leases or viewers", body = ErrorBody),
        (status = 503, description = "No FFmpeg slot free, or shutting down", body = ErrorBody),
    )
)]
pub(super) async fn watch(
    State(st): State<StreamsState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<WatchParams>,
) -> Result<Json<Lease>, ApiError> {
    st.listings.ensure_for_stream(&id).await;
    lookup(&st.catalog, &id)?;
    if p.timeout.is_some_and(|t| t > MAX_LEASE_ASKED) {
        return Err(ApiError::bad_request(format!(
            "timeout: at most {MAX_LEASE_ASKED} seconds"
        )));
    }
    let client = p.client.unwrap_or_default();
    if client.chars().count() > 128 {
        return Err(ApiError::bad_request(
            "client is longer than 128 characters",
        ));
    }
    // A public client holds one lease per stream, and leases on at most
    // `max_streams_per_client` streams.
    let key = match caller {
        Caller::Public { ip, .. } => format!("watch:{ip}"),
        Caller::Private { .. } => format!("watch:private:{client}"),
    };
    let ttl = st.supervisor.lease(
        &id,
        &key,
        p.timeout.map(|s| Duration::from_secs(s.into())),
        caller.public_ip(),
    )?;
    let state = st.supervisor.status(&id).state;
    Ok(Json(Lease {
        id,
        lease_seconds: ttl.as_secs(),
        state,
    }))
}

/// What an admin action did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Action {
    /// The stream.
    pub id: String,
    /// Set by `start`: it runs without viewers until stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned: Option<bool>,
    /// Set by `stop`: its FFmpeg stops (viewers keep it running).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopping: Option<bool>,
}

/// Starts a stream and keeps it running without viewers (API token).
#[utoipa::path(
    post,
    path = "/api/streams/{id}/start",
    operation_id = "start_stream",
    tag = "streams",
    security(("bearer" = [])),
    params(super::doc::StreamPath),
    responses(
        (status = 200, description = "Pinned", body = Action),
        (status = 400, description = "Not a stream id", body = ErrorBody),
        (status = 401, description = "Without the API token", body = ErrorBody),
        (status = 404, description = "Not catalogued, offline or refused", body = ErrorBody),
        (status = 503, description = "No FFmpeg slot free, or shutting down", body = ErrorBody),
    )
)]
pub(super) async fn admin_start(
    State(st): State<StreamsState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Action>, ApiError> {
    authorize(caller)?;
    lookup(&st.catalog, &id)?;
    st.supervisor.start(&id)?;
    Ok(Json(Action {
        id,
        pinned: Some(true),
        stopping: None,
    }))
}

/// Unpins a stream: it stops unless viewers keep it (API token).
#[utoipa::path(
    post,
    path = "/api/streams/{id}/stop",
    operation_id = "stop_stream",
    tag = "streams",
    security(("bearer" = [])),
    params(super::doc::StreamPath),
    responses(
        (status = 200, description = "Stopping", body = Action),
        (status = 400, description = "Not a stream id", body = ErrorBody),
        (status = 401, description = "Without the API token", body = ErrorBody),
        (status = 404, description = "Not catalogued", body = ErrorBody),
    )
)]
pub(super) async fn admin_stop(
    State(st): State<StreamsState>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Action>, ApiError> {
    authorize(caller)?;
    lookup(&st.catalog, &id)?;
    st.supervisor.stop(&id);
    Ok(Json(Action {
        id,
        pinned: None,
        stopping: Some(true),
    }))
}

/// The query of a track.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrackQuery {
    /// Only points from this time on (Unix ms; the store's integers stop
    /// at 2^53 - 1).
    #[param(maximum = 9007199254740991_f64)]
    since: Option<u64>,
}

/// A point of a track.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrackPoint {
    /// When (Unix ms).
    pub t_ms: u64,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// Anything else the phone sent (speed, heading, accuracy, ...).
    #[schema(value_type = Option<Object>)]
    pub extra: Option<Value>,
}

/// A phone's GPS track.
#[derive(Debug, Serialize, ToSchema)]
pub struct Track {
    /// The stream.
    pub id: String,
    /// Its points, oldest first.
    pub points: Vec<TrackPoint>,
}

/// A phone's GPS track (all its sessions), oldest first.
#[utoipa::path(
    get,
    path = "/api/streams/{id}/track",
    tag = "streams",
    params(super::doc::StreamPath, TrackQuery),
    responses(
        (status = 200, description = "The track (empty for a stream without one)", body = Track),
        (status = 400, description = "A malformed parameter", body = ErrorBody),
        (status = 404, description = "Not a stream id", body = ErrorBody),
        (status = 503, description = "The store cannot answer", body = ErrorBody),
    )
)]
pub(super) async fn track(
    State(store): State<Arc<dyn dss_store::Store>>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<TrackQuery>,
) -> Response {
    if crate::ids::parse_stream_id(&id).is_err() {
        return ApiError(
            StatusCode::NOT_FOUND,
            format!("no stream {:?}", id.chars().take(64).collect::<String>()),
        )
        .into_response();
    }
    if q.since.is_some_and(|s| s > dss_store::MAX_INT) {
        return ApiError::bad_request(format!("since: at most {}", dss_store::MAX_INT))
            .into_response();
    }
    match store.track(&id, q.since).await {
        Ok(points) => {
            let points = points
                .into_iter()
                .map(|p| TrackPoint {
                    t_ms: p.t_ms,
                    lat: p.lat,
                    lon: p.lon,
                    extra: p.extra,
                })
                .collect();
            Json(Track { id, points }).into_response()
        }
        Err(e) => {
            tracing::warn!(stream = %id, error = %e, "cannot read the track");
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store cannot answer".into(),
            )
            .into_response()
        }
    }
}
