//! Recordings over HTTP, admin only: `GET /api/recordings[?stream=&from=&to=]`
//! lists finished segments (and the recorders' states),
//! `GET /api/recordings/{id}/{file}` downloads one, and
//! `GET /api/recordings/{id}/export?from=&to=` streams one MP4 of a range.
//! Times are Unix ms, `20261124T130000Z` or RFC 3339.

use super::doc::{Documented, ErrorBody};
use super::extract::{ApiPath, ApiQuery};
use super::{authorize, ApiError};
use crate::http::access::Caller;
use crate::record::Recorder;
use crate::record::{export, segments};
use axum::body::Body;
use axum::extract::{Extension, FromRef, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use tower_service::Service;
use utoipa::IntoParams;
use utoipa_axum::routes;

/// The recordings' routes.
pub(super) fn routes<S>() -> Documented<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Recorder>: FromRef<S>,
{
    Documented::new()
        .routes(routes!(list))
        .routes(routes!(export))
        .routes(routes!(download))
}

/// The query of the recordings' list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ListQuery {
    /// Only this stream's.
    stream: Option<String>,
    /// From this time: Unix ms, `20261124T130000Z` or RFC 3339.
    from: Option<String>,
    /// To this time.
    to: Option<String>,
}

/// The range of an export.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct RangeQuery {
    /// From this time: Unix ms, `20261124T130000Z` or RFC 3339.
    from: String,
    /// To this time.
    to: String,
}

fn time_arg(q: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    match q.get(name) {
        None => Ok(None),
        Some(v) => segments::parse_api_time(v).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!(
                "{name}: expected Unix ms, 20261124T130000Z or RFC 3339"
            ))
        }),
    }
}

fn check_id(id: &str) -> Result<(), ApiError> {
    crate::ids::parse_stream_id(id)
        .map(|_| ())
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The finished recording segments and the recorders' states (API token).
#[utoipa::path(
    get,
    path = "/api/recordings",
    operation_id = "recordings",
    tag = "recordings",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "`segments` and `recorders`", body = Object),
        (status = 400, description = "A malformed stream id or time", body = ErrorBody),
        (status = 401, description = "Without the API token", body = ErrorBody),
    )
)]
pub(super) async fn list(
    State(recorder): State<Arc<Recorder>>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    authorize(caller)?;
    let from = time_arg(&q, "from")?.unwrap_or(0);
    let to = time_arg(&q, "to")?.unwrap_or(u64::MAX);
    let streams = match q.get("stream") {
        Some(id) => {
            check_id(id)?;
            vec![id.clone()]
        }
        None => segments::streams(recorder.dir()),
    };
    let rec = recorder.clone();
    let segs = tokio::task::spawn_blocking(move || {
        streams
            .iter()
            .flat_map(|id| export::overlapping(&rec, id, from, to))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    Ok(Json(json!({
        "segments": segs,
        "recorders": recorder.statuses(),
    })))
}

/// One finished recording segment, ranges supported (API token).
#[utoipa::path(
    get,
    path = "/api/recordings/{id}/{file}",
    operation_id = "recording",
    tag = "recordings",
    security(("bearer" = [])),
    params(
        super::doc::StreamPath,
        ("file" = String, Path, description = "A segment's name, as the list gives it"),
    ),
    responses(
        (status = 200, description = "The segment", content_type = "video/mp4", body = Vec<u8>),
        (status = 206, description = "A range of it", content_type = "video/mp4", body = Vec<u8>),
        (status = 400, description = "Not a stream id", body = ErrorBody),
        (status = 401, description = "Without the API token", body = ErrorBody),
        (status = 404, description = "No such segment", body = ErrorBody),
        (status = 416, description = "A range beyond the segment"),
    )
)]
pub(super) async fn download(
    State(recorder): State<Arc<Recorder>>,
    Extension(caller): Extension<Caller>,
    ApiPath((id, file)): ApiPath<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    authorize(caller)?;
    check_id(&id)?;
    if segments::parse_name(&id, &file).is_none() {
        return Err(ApiError::not_found("no such segment"));
    }
    let path = recorder.dir().join(&id).join(&file);
    let mut serve = tower_http::services::ServeFile::new(path);
    match serve.call(req).await {
        Ok(r) => Ok(r.map(Body::new)),
        Err(e) => Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// One MP4 of a stream's recordings over a range of time (API token).
#[utoipa::path(
    get,
    path = "/api/recordings/{id}/export",
    operation_id = "recording_export",
    tag = "recordings",
    security(("bearer" = [])),
    params(super::doc::StreamPath, RangeQuery),
    responses(
        (status = 200, description = "The MP4", content_type = "video/mp4", body = Vec<u8>),
        (status = 400, description = "A malformed id, time or range", body = ErrorBody),
        (status = 401, description = "Without the API token", body = ErrorBody),
        (status = 404, description = "Nothing recorded in the range", body = ErrorBody),
    )
)]
pub(super) async fn export(
    State(recorder): State<Arc<Recorder>>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    authorize(caller)?;
    check_id(&id)?;
    let (Some(from), Some(to)) = (time_arg(&q, "from")?, time_arg(&q, "to")?) else {
        return Err(ApiError::bad_request("from and to are required"));
    };
    match export::export(&recorder, &id, from, to).await {
        Ok(body) => Ok((
            [
                (header::CONTENT_TYPE, "video/mp4".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"{id}-{}.mp4\"",
                        segments::format_time(from)
                    ),
                ),
            ],
            Body::from_stream(body),
        )
            .into_response()),
        Err(e @ export::ExportError::Range(_)) => Err(ApiError::bad_request(e.to_string())),
        Err(e @ export::ExportError::Nothing(_)) => Err(ApiError::not_found(e.to_string())),
        Err(e) => Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}
