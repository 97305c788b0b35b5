//! Statistics and thumbnails over HTTP: the original's
//! `/stats/{id or provider}[/{field,...}]` in its shapes,
//! `/api/streams/{id}/stats` (JSON, every field) and
//! `/api/streams/{id}/thumbnail[?size=...]`.

use super::doc::{Documented, ErrorBody};
use super::extract::{ApiPath, ApiQuery};
use super::streams::lookup;
use super::ApiError;
use crate::http::state::StatsState;
use crate::stats::{Stats, StreamStats, FIELDS};
use crate::thumbnail::Thumbnails;
use axum::extract::{FromRef, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

/// The statistics' and thumbnails' routes.
pub(super) fn routes<S>() -> Documented<S>
where
    S: Clone + Send + Sync + 'static,
    StatsState: FromRef<S>,
{
    Documented::new()
        .routes(routes!(stream))
        .routes(routes!(thumbnail))
        .routes(routes!(legacy_all))
        .routes(routes!(legacy_slash))
        .routes(routes!(legacy_fields))
}

/// `?percent=0` of the original's statistics.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PercentQuery {
    /// `0`: fractions in 0..1; anything else (or nothing): in percent.
    #[allow(dead_code)]
    percent: Option<String>,
}

/// The original's statistics of a stream, or of a provider's streams.
///
/// `id` is a stream (an object) or a provider instance (a list of its
/// streams' objects, each with `id`). Unknown id: 404.
#[utoipa::path(
    method(get, post),
    path = "/stats/{id}",
    operation_id = "legacy_stats",
    tag = "original",
    params(("id" = String, Path, description = "A stream or a provider instance"), PercentQuery),
    responses(
        (status = 200, description = "An object (a stream) or a list (a provider's streams)", body = Value),
        (status = 404, description = "No such stream or provider", body = ErrorBody),
    )
)]
pub(super) async fn legacy_all(
    st: State<StatsState>,
    params: ApiPath<HashMap<String, String>>,
    q: ApiQuery<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    legacy(st, params, q).await
}

/// The original's statistics of a stream, or of a provider's streams
/// (as `/stats/{id}`).
#[utoipa::path(
    method(get, post),
    path = "/stats/{id}/",
    operation_id = "legacy_stats_slash",
    tag = "original",
    params(("id" = String, Path, description = "A stream or a provider instance"), PercentQuery),
    responses(
        (status = 200, description = "An object (a stream) or a list (a provider's streams)", body = Value),
        (status = 404, description = "No such stream or provider", body = ErrorBody),
    )
)]
pub(super) async fn legacy_slash(
    st: State<StatsState>,
    params: ApiPath<HashMap<String, String>>,
    q: ApiQuery<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    legacy(st, params, q).await
}

/// Some of the original's statistics of a stream, or of a provider's
/// streams.
///
/// `fields` (comma-separated, empty items dropped) reduces each object to
/// those fields plus `id`; one field of one stream is its bare value.
/// Unknown id or field: 404.
#[utoipa::path(
    method(get, post),
    path = "/stats/{id}/{fields}",
    operation_id = "legacy_stats_fields",
    tag = "original",
    params(
        ("id" = String, Path, description = "A stream or a provider instance"),
        ("fields" = String, Path, description = "Comma-separated: thumbnail, uptime, crash, warmup, starts, live_seconds, last_start, peak_viewers, id"),
        PercentQuery,
    ),
    responses(
        (status = 200, description = "An object, a list, or one field's bare value", body = Value),
        (status = 404, description = "No such stream, provider or field", body = ErrorBody),
    )
)]
pub(super) async fn legacy_fields(
    st: State<StatsState>,
    params: ApiPath<HashMap<String, String>>,
    q: ApiQuery<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    legacy(st, params, q).await
}

/// `GET|POST /stats/{id}`, `/stats/{id}/`, `/stats/{id}/{fields}`.
///
/// `id` is a stream (an object) or a provider instance (a list of its
/// streams' objects, each with `id`). `fields` (comma-separated, empty
/// items dropped) reduces each object to those fields plus `id`; one field
/// of one stream is its bare value. `?percent=0` gives the fractions in
/// 0..1, anything else (or nothing) in percent. Unknown id or field: 404.
async fn legacy(
    State(st): State<StatsState>,
    ApiPath(params): ApiPath<HashMap<String, String>>,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let id = params.get("id").map(String::as_str).unwrap_or_default();
    let fields: Vec<&str> = params
        .get("fields")
        .map(|f| f.split(',').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    // The original: `int(percent)`, true when missing or not a number.
    let percent = q
        .get("percent")
        .and_then(|p| p.trim().parse::<i64>().ok())
        .is_none_or(|p| p != 0);
    if let Some(bad) = fields.iter().find(|f| **f != "id" && !FIELDS.contains(f)) {
        return Err(ApiError::not_found(format!(
            "no statistic {:?} (fields: {})",
            bad.chars().take(64).collect::<String>(),
            FIELDS.join(", ")
        )));
    }
    if crate::ids::parse_stream_id(id).is_ok() {
        st.listings.ensure_for_stream(id).await;
    }
    let snap = st.catalog.snapshot();
    if let Some(e) = snap.streams.get(id) {
        let stats = st.stats.get(&e.id);
        if let [field] = fields.as_slice() {
            return Ok(Json(if *field == "id" {
                json!(e.id)
            } else {
                stats.field(field, percent).unwrap_or(Value::Null)
            }));
        }
        return Ok(Json(object(&e.id, &stats, &fields, percent)));
    }
    if snap.providers.contains_key(id) {
        let list: Vec<Value> = snap
            .streams
            .values()
            .filter(|e| e.provider == id)
            .map(|e| object(&e.id, &st.stats.get(&e.id), &fields, percent))
            .collect();
        return Ok(Json(Value::Array(list)));
    }
    Err(ApiError::not_found(format!(
        "no stream or provider {:?}",
        id.chars().take(64).collect::<String>()
    )))
}

/// One stream's object: `fields` (all when empty) and `id`.
fn object(id: &str, stats: &StreamStats, fields: &[&str], percent: bool) -> Value {
    let mut m = Map::new();
    for f in FIELDS {
        if fields.is_empty() || fields.contains(f) {
            m.insert(
                (*f).to_string(),
                stats.field(f, percent).unwrap_or(Value::Null),
            );
        }
    }
    m.insert("id".into(), json!(id));
    Value::Object(m)
}

/// A stream's figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct Figures {
    /// The stream.
    pub id: String,
    /// Its statistics.
    #[serde(flatten)]
    pub stats: StreamStats,
    /// Whether it has a thumbnail (a page asks for one only then).
    pub has_thumbnail: bool,
}

/// Every figure of `id` (fractions in 0..1), its id, and whether it has
/// thumbnails (so a page asks for one only when it exists).
pub(super) fn figures(stats: &Stats, thumbnails: &Thumbnails, id: &str) -> Figures {
    Figures {
        id: id.to_string(),
        stats: stats.get(id),
        has_thumbnail: thumbnails.has(id),
    }
}

/// A stream's statistics: every figure, fractions in 0..1.
#[utoipa::path(
    get,
    path = "/api/streams/{id}/stats",
    operation_id = "stream_stats",
    tag = "streams",
    params(super::doc::StreamPath),
    responses(
        (status = 200, description = "The figures", body = Figures),
        (status = 400, description = "Not a stream id", body = ErrorBody),
        (status = 404, description = "Not catalogued", body = ErrorBody),
    )
)]
pub(super) async fn stream(
    State(st): State<StatsState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Figures>, ApiError> {
    st.listings.ensure_for_stream(&id).await;
    let e = lookup(&st.catalog, &id)?;
    Ok(Json(figures(&st.stats, &st.thumbnails, &e.id)))
}

/// The size of a thumbnail.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SizeQuery {
    /// A size the host makes (`[thumbnails] sizes`); the largest unless asked.
    #[allow(dead_code)]
    size: Option<String>,
}

/// A stream's latest thumbnail (JPEG), 404 until one exists.
#[utoipa::path(
    get,
    path = "/api/streams/{id}/thumbnail",
    tag = "streams",
    params(super::doc::StreamPath, SizeQuery),
    responses(
        (status = 200, description = "The JPEG", content_type = "image/jpeg", body = Vec<u8>),
        (status = 400, description = "Not a stream id", body = ErrorBody),
        (status = 404, description = "Not catalogued, no such size, or no thumbnail yet", body = ErrorBody),
    )
)]
pub(super) async fn thumbnail(
    State(st): State<StatsState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let e = lookup(&st.catalog, &id)?;
    let size = q.get("size").map(String::as_str);
    match st.thumbnails.read(&e.id, size).await {
        Ok(jpeg) => Ok((
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            jpeg,
        )
            .into_response()),
        // A size the host does not make is a thumbnail it does not have.
        Err(err) => Err(ApiError::not_found(err.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::http::state::testing::{self, catalogue, send, PEER, PUBLIC};
    use axum::http::StatusCode;
    use std::sync::Arc;

    #[tokio::test]
    async fn the_original_shapes_and_clear_refusals() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = Config::load_with_env(None, []).expect("the defaults load");
        config.state_dir = dir.path().to_path_buf();
        let (streams, listings) = testing::streams(config);
        catalogue(&streams.catalog, "cams", &["one", "two"]);
        let stats = Arc::new(Stats::new());
        let thumbnails = Thumbnails::new(
            streams.config.clone(),
            streams.catalog.clone(),
            streams.supervisor.clone(),
            stats.clone(),
        )
        .expect("thumbnails in the temporary directory");
        let st = StatsState {
            catalog: streams.catalog.clone(),
            listings,
            stats,
            thumbnails,
        };
        let get = |uri: &str| {
            let app = routes().into_router().with_state(st.clone());
            send(app, testing::request("GET", uri, PEER, PUBLIC))
        };
        let json = |body: &str| serde_json::from_str::<Value>(body).expect("JSON");
        // One field of one stream: its bare value; fractions in percent.
        let (status, body) = get("/stats/cams-one/id").await;
        assert_eq!((status, json(&body)), (StatusCode::OK, json!("cams-one")));
        let (_, body) = get("/stats/cams-one/uptime,id").await;
        assert_eq!(json(&body)["id"], "cams-one");
        assert!(json(&body).get("uptime").is_some(), "{body}");
        // A provider: a list of its streams' objects.
        let (_, body) = get("/stats/cams").await;
        assert_eq!(json(&body).as_array().map(Vec::len), Some(2), "{body}");
        let (_, body) = get("/api/streams/cams-two/stats").await;
        assert_eq!(json(&body)["has_thumbnail"], false);
        for (uri, want) in [
            ("/stats/cams-one/bogus", StatusCode::NOT_FOUND),
            ("/stats/nothing", StatusCode::NOT_FOUND),
            ("/api/streams/cams-nine/stats", StatusCode::NOT_FOUND),
            ("/api/streams/cams-one/thumbnail", StatusCode::NOT_FOUND),
            (
                "/api/streams/cams-one/thumbnail?size=huge",
                StatusCode::NOT_FOUND,
            ),
            ("/api/streams/..%2Fx/thumbnail", StatusCode::BAD_REQUEST),
        ] {
            let (status, body) = get(uri).await;
            assert_eq!(status, want, "{uri}: {body}");
            assert!(json(&body)["error"].is_string(), "{uri}: {body}");
        }
    }
}
