//! Statistics and thumbnails over HTTP: the original's
//! `/stats/{id or provider}[/{field,...}]` in its shapes,
//! `/api/streams/{id}/stats` (JSON, every field) and
//! `/api/streams/{id}/thumbnail[?size=...]`.

use super::{lookup, ApiError, AppState};
use crate::stats::{StreamStats, FIELDS};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// `GET|POST /stats/{id}`, `/stats/{id}/`, `/stats/{id}/{fields}`.
///
/// `id` is a stream (an object) or a provider instance (a list of its
/// streams' objects, each with `id`). `fields` (comma-separated, empty
/// items dropped) reduces each object to those fields plus `id`; one field
/// of one stream is its bare value. `?percent=0` gives the fractions in
/// 0..1, anything else (or nothing) in percent. Unknown id or field: 404.
pub(super) async fn legacy(
    State(st): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
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
        st.providers.ensure_for_stream(id).await;
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

/// Every figure of `id` (fractions in 0..1), its id, and whether it has
/// thumbnails (so a page asks for one only when it exists).
pub(super) fn figures(st: &AppState, id: &str) -> Value {
    let mut v = json!(st.stats.get(id));
    v["id"] = json!(id);
    v["has_thumbnail"] = json!(st.thumbnails.has(id));
    v
}

/// `GET /api/streams/{id}/stats`: every figure, fractions in 0..1.
pub(super) async fn stream(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    st.providers.ensure_for_stream(&id).await;
    let e = lookup(&st.catalog, &id)?;
    Ok(Json(figures(&st, &e.id)))
}

/// `GET /api/streams/{id}/thumbnail[?size=medium]`: the JPEG, 404 until
/// one exists.
pub(super) async fn thumbnail(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
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
        Err(err @ crate::thumbnail::ThumbError::Size(..)) => {
            Err(ApiError(StatusCode::BAD_REQUEST, err.to_string()))
        }
        Err(err) => Err(ApiError::not_found(err.to_string())),
    }
}
