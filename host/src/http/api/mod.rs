//! The host's HTTP surface: REST JSON under `/api/`, the live
//! [`events`] stream, `/healthz`, the original DSS's `/info/*` routes,
//! and the web page at `/`.
//!
//! Every route is documented ([`doc`]): `/api/openapi.json` is the
//! contract, generated from the handlers. Ids from the URL are checked ([`crate::ids`]) before any lookup:
//! malformed → 400, well-formed but unknown → 404.

mod clusters;
pub(crate) mod doc;
mod events;
pub(crate) mod extract;
mod legacy;
mod list;
mod providers;
mod recordings;
mod stats;
mod status;
mod streams;

use crate::http::access::Caller;
use crate::http::state::{AppState, StreamsState};
use crate::supervisor::Refusal;
use axum::extract::{Extension, FromRef};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use doc::Documented;
use serde_json::json;
use utoipa_axum::routes;

/// An API error: a status and a message, sent as `{"error": ...}`.
#[derive(Debug)]
pub struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl ApiError {
    fn bad_request(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }

    fn not_found(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::NOT_FOUND, msg.into())
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        ApiError(refusal_status(&r), r.to_string())
    }
}

/// The HTTP status that tells a client (or nginx, which refuses the
/// viewer on anything but 2xx) why the supervisor refused.
pub(crate) fn refusal_status(r: &Refusal) -> StatusCode {
    match r {
        Refusal::Capacity(..) | Refusal::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        Refusal::TooManyLeases(_) | Refusal::TooManyViewers(_) => StatusCode::TOO_MANY_REQUESTS,
        Refusal::Unknown(_) | Refusal::Offline(_) | Refusal::Refused(..) => StatusCode::NOT_FOUND,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

/// The routes, with `web_dir` served at `/`. Handlers expect the request
/// extensions [`crate::http::server`] adds (the peer and its [`Caller`]).
pub fn router(state: AppState, web_dir: &std::path::Path) -> Router {
    let (routes, operations) = documented().split();
    routes
        .fallback_service(tower_http::services::ServeDir::new(web_dir))
        .layer(Extension(doc::Documents::new(operations)))
        .layer(compression())
        .with_state(state)
}

/// Every route, each with its operation.
pub(crate) fn documented() -> Documented<AppState> {
    Documented::new()
        .routes(routes!(doc::openapi))
        .merge(status::host_routes())
        .merge(status::ready_routes())
        .merge(streams::track_routes())
        .merge(stream_routes())
        .merge(events::routes())
        .merge(recordings::routes())
        .merge(stats::routes())
        .merge(crate::http::hooks::routes())
        .merge(crate::http::mobile::routes())
}

/// Compresses what is worth it for clients that accept gzip: JSON, the
/// page, metrics. Not images (thumbnails) or video (recordings), which
/// are compressed already, nor events (tower-http's default leaves
/// `text/event-stream` alone, so they go out at once). The fastest level:
/// a 100,000-stream list is about 20 MB raw, and level 1 already takes
/// it to a tenth (see the catalog bench).
fn compression(
) -> tower_http::compression::CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::predicate::{
        DefaultPredicate, NotForContentType, Predicate, SizeAbove,
    };
    use tower_http::compression::{CompressionLayer, CompressionLevel};
    CompressionLayer::new()
        .quality(CompressionLevel::Fastest)
        .compress_when(
            DefaultPredicate::new()
                // Below a packet, compressing saves nothing.
                .and(SizeAbove::new(1024))
                .and(NotForContentType::const_new("video/")),
        )
}

/// The routes that read the catalog and the supervisor: providers,
/// streams, viewers' leases, admin start and stop, the map settings, the
/// cluster, and the original's `/info/*`.
fn stream_routes<S>() -> Documented<S>
where
    S: Clone + Send + Sync + 'static,
    StreamsState: FromRef<S>,
{
    Documented::new()
        .merge(status::site_routes())
        .merge(providers::routes())
        .merge(list::routes())
        .merge(clusters::routes())
        .merge(streams::routes())
        .merge(legacy::routes())
}

/// Admin actions need the API token (from every caller: see
/// [`crate::http::access`]).
pub(crate) fn authorize(caller: Caller) -> Result<(), ApiError> {
    if caller.is_private() {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "the API token is required (Authorization: Bearer TOKEN; see [security] api_token or <state_dir>/api.token)"
                .into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::http::state::testing::{self, catalogue, send, FakeListings, ADMIN, PEER, PUBLIC};
    use serde_json::Value;
    use std::sync::Arc;
    use std::time::Duration;

    /// The stream routes over a catalog with `cams-one` and `cams-two`.
    fn streams() -> (StreamsState, Arc<FakeListings>) {
        streams_with(|_| {})
    }

    fn streams_with(f: impl FnOnce(&mut Config)) -> (StreamsState, Arc<FakeListings>) {
        let mut config = Config::load_with_env(None, []).expect("the defaults load");
        f(&mut config);
        let (st, listings) = testing::streams(config);
        catalogue(&st.catalog, "cams", &["one", "two"]);
        (st, listings)
    }

    /// Waits (at most 10 s) until `cond` holds.
    async fn eventually(cond: impl Fn() -> bool) {
        let wait = async {
            while !cond() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("the condition holds within 10 s");
    }

    async fn get(
        st: &StreamsState,
        method: &str,
        uri: &str,
        caller: Caller,
    ) -> (StatusCode, Value) {
        let app = stream_routes().into_router().with_state(st.clone());
        let (status, body) = send(app, testing::request(method, uri, PEER, caller)).await;
        let json = serde_json::from_str(&body).unwrap_or(Value::String(body));
        (status, json)
    }

    #[tokio::test]
    async fn ids_are_checked_before_any_lookup() {
        let (st, listings) = streams();
        for (uri, want) in [
            ("/api/streams/cams-one", StatusCode::OK),
            ("/api/streams/cams-nine", StatusCode::NOT_FOUND),
            ("/api/streams/..%2Fetc", StatusCode::BAD_REQUEST),
            ("/api/streams/nodash", StatusCode::BAD_REQUEST),
            ("/api/providers/cams", StatusCode::OK),
            ("/api/providers/none", StatusCode::NOT_FOUND),
            ("/api/providers/a.b", StatusCode::BAD_REQUEST),
            ("/api/streams?provider=a.b", StatusCode::BAD_REQUEST),
            ("/info/stream/cams-nine", StatusCode::NOT_FOUND),
            ("/info/provider/none", StatusCode::NOT_FOUND),
        ] {
            let (status, body) = get(&st, "GET", uri, PUBLIC).await;
            assert_eq!(status, want, "{uri}: {body}");
            if status.is_client_error() {
                assert!(body["error"].is_string(), "{uri}: {body}");
            }
        }
        // The listing a request needs is asked for first.
        assert!(crate::sync::lock(&listings.asked).contains(&"stream:cams-one".to_string()));
    }

    #[tokio::test]
    async fn the_public_sees_no_errors_logs_or_instance_files() {
        let (st, _) = streams();
        let (_, p) = get(&st, "GET", "/api/providers/cams", PUBLIC).await;
        assert_eq!(p["has_error"], true);
        for hidden in ["last_error", "warnings", "file"] {
            assert!(p.get(hidden).is_none(), "{hidden} shown: {p}");
        }
        let (_, p) = get(&st, "GET", "/api/providers/cams", ADMIN).await;
        assert!(p["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("refused")));
        assert!(p["file"].is_string());
        let (_, s) = get(&st, "GET", "/api/streams/cams-one", PUBLIC).await;
        assert!(
            s.get("log").is_none() && s.get("last_error").is_none(),
            "{s}"
        );
        assert_eq!(s["has_error"], false);
        assert_eq!(s["state"], "idle");
        let (_, s) = get(&st, "GET", "/api/streams/cams-one", ADMIN).await;
        assert!(s["log"].is_array(), "{s}");
    }

    #[tokio::test]
    async fn lists_filter_and_keep_the_original_shapes() {
        let (st, _) = streams();
        let (_, list) = get(&st, "GET", "/api/streams?provider=cams&online=true", PUBLIC).await;
        assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
        let (_, list) = get(&st, "GET", "/api/streams?state=live", PUBLIC).await;
        assert_eq!(list, json!([]));
        let (status, s) = get(&st, "POST", "/info/stream/cams-two", PUBLIC).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            s,
            json!({"id": "cams-two", "name": "Camera two", "geo": [1.0, 2.0], "status": "online"})
        );
        let (_, p) = get(&st, "GET", "/info/provider", PUBLIC).await;
        assert_eq!(p, json!([{"id": "cams", "name": "static-list"}]));
        let (_, p) = get(&st, "GET", "/info/provider/cams", PUBLIC).await;
        assert_eq!(p.as_array().map(Vec::len), Some(2));
    }

    #[tokio::test]
    async fn admin_actions_need_the_token() {
        let (st, _) = streams();
        let (status, _) = get(&st, "POST", "/api/streams/cams-one/start", PUBLIC).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(st.supervisor.tracked(), 0);
        let (status, body) = get(&st, "POST", "/api/streams/cams-one/start", ADMIN).await;
        assert_eq!((status, &body["pinned"]), (StatusCode::OK, &json!(true)));
        // The stream's task reports the pin on its next pass.
        eventually(|| st.supervisor.status("cams-one").pinned).await;
        let (status, _) = get(&st, "POST", "/api/streams/cams-one/stop", ADMIN).await;
        assert_eq!(status, StatusCode::OK);
        eventually(|| !st.supervisor.status("cams-one").pinned).await;
    }

    #[tokio::test]
    async fn a_public_client_holds_bounded_leases() {
        let (st, _) = streams_with(|c| c.security.max_streams_per_client = 1);
        let (status, lease) =
            get(&st, "POST", "/api/streams/cams-one/watch?timeout=5", PUBLIC).await;
        assert_eq!(status, StatusCode::OK, "{lease}");
        assert_eq!(lease["lease_seconds"], 5);
        assert_eq!(st.supervisor.status("cams-one").viewers_http, 1);
        // The same client again: the same lease.
        get(&st, "POST", "/api/streams/cams-one/watch", PUBLIC).await;
        assert_eq!(st.supervisor.status("cams-one").viewers_http, 1);
        let long = format!("/api/streams/cams-two/watch?client={}", "x".repeat(129));
        assert_eq!(
            get(&st, "POST", &long, PUBLIC).await.0,
            StatusCode::BAD_REQUEST
        );
        // A second stream is one too many for max_streams_per_client = 1.
        let (status, _) = get(&st, "POST", "/api/streams/cams-two/watch", PUBLIC).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(st.supervisor.status("cams-two").viewers_http, 0);
    }
}
