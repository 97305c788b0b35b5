//! `GET /api/clusters`: a map's overview of a box too full to list, the
//! streams positioned in it counted on a grid: each non-empty cell's
//! count, mean position, extent, states and viewers.
//!
//! A page zoomed out over 100,000 cameras draws a few hundred clusters
//! from a few kilobytes, where the list would be 16 MB; it lists (or
//! subscribes to) a box once the box holds few enough streams.

use super::doc::{Documented, ErrorBody};
use super::extract::ApiQuery;
use super::list::{effective_state, parse_bbox, revision, tagged_json, Revision};
use super::ApiError;
use crate::http::state::StreamsState;
use crate::supervisor::{State as StreamState, Status};
use axum::extract::{FromRef, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

/// `/api/clusters`.
pub(super) fn routes<S>() -> Documented<S>
where
    S: Clone + Send + Sync + 'static,
    StreamsState: FromRef<S>,
{
    Documented::new().routes(routes!(clusters))
}

/// The grid's side unless asked: 32 × 32 cells is about one cluster per
/// 40 × 25 px of a 1280 × 800 map.
const DEFAULT_GRID: usize = 32;
/// The finest grid: 16,384 cells, still a small answer.
const MAX_GRID: usize = 128;

/// The query of `GET /api/clusters`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClustersQuery {
    /// `minLon,minLat,maxLon,maxLat` (required).
    #[param(
        required = true,
        pattern = r"^(-?[0-9]{1,20}(\.[0-9]{1,20})?,){3}-?[0-9]{1,20}(\.[0-9]{1,20})?$"
    )]
    bbox: Option<String>,
    /// Cells per side (32 unless asked).
    #[param(minimum = 1, maximum = 128)]
    grid: Option<usize>,
}

/// The states, in the order of the counts of a [`Cell`].
const STATES: [StreamState; 6] = [
    StreamState::Idle,
    StreamState::Starting,
    StreamState::Live,
    StreamState::Stopping,
    StreamState::Backoff,
    StreamState::Refused,
];

/// The streams of one grid cell. Longitudes are kept as offsets east of
/// the box's western edge, so a box across the antimeridian averages
/// right.
#[derive(Debug, Default)]
struct Cell {
    count: u32,
    sum_lat: f64,
    sum_east: f64,
    south: f64,
    north: f64,
    west: f64,
    east: f64,
    states: [u32; 6],
    viewers: u64,
}

impl Cell {
    fn add(&mut self, lat: f64, east: f64, state: StreamState, viewers: usize) {
        if self.count == 0 {
            (self.south, self.north, self.west, self.east) = (lat, lat, east, east);
        }
        self.count += 1;
        self.sum_lat += lat;
        self.sum_east += east;
        self.south = self.south.min(lat);
        self.north = self.north.max(lat);
        self.west = self.west.min(east);
        self.east = self.east.max(east);
        if let Some(i) = STATES.iter().position(|s| *s == state) {
            self.states[i] += 1;
        }
        self.viewers += viewers as u64;
    }
}

/// A cell as the answer shows it.
struct Shown<'a> {
    cell: &'a Cell,
    /// The box's western edge.
    origin: f64,
}

/// Longitude `origin + east`, back into -180..=180.
fn lon(origin: f64, east: f64) -> f64 {
    let l = origin + east;
    round(if l > 180.0 { l - 360.0 } else { l })
}

/// To 5 decimals (about a metre): a map needs no more, and the answer is
/// about 40 % smaller than with every digit of a mean.
fn round(deg: f64) -> f64 {
    (deg * 1e5).round() / 1e5
}

impl Serialize for Shown<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let c = self.cell;
        let n = f64::from(c.count);
        let mut m = ser.serialize_map(Some(6))?;
        m.serialize_entry("lat", &round(c.sum_lat / n))?;
        m.serialize_entry("lon", &lon(self.origin, c.sum_east / n))?;
        m.serialize_entry("count", &c.count)?;
        m.serialize_entry(
            "bbox",
            &[
                lon(self.origin, c.west),
                round(c.south),
                lon(self.origin, c.east),
                round(c.north),
            ],
        )?;
        m.serialize_entry("states", &States(&c.states))?;
        m.serialize_entry("viewers", &c.viewers)?;
        m.end()
    }
}

/// The non-zero counts by state, as `{"live": 3, ...}`.
struct States<'a>(&'a [u32; 6]);

impl Serialize for States<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(None)?;
        for (state, n) in STATES.iter().zip(self.0).filter(|(_, n)| **n > 0) {
            m.serialize_entry(state, n)?;
        }
        m.end()
    }
}

/// The answer.
#[derive(Serialize)]
struct Overview<'a> {
    total: u32,
    clusters: Vec<Shown<'a>>,
}

/// A cluster: the streams of one grid cell. (What `Shown` writes, for the
/// document.)
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Cluster {
    /// Their mean latitude.
    lat: f64,
    /// Their mean longitude.
    lon: f64,
    /// How many.
    count: u32,
    /// Their extent, `[west, south, east, north]`.
    bbox: [f64; 4],
    /// How many are in each state (states with none left out).
    states: HashMap<String, u32>,
    /// Their viewers.
    viewers: u32,
}

/// A box's clusters. (What `Overview` writes, for the document.)
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Clusters {
    /// Streams positioned in the box.
    total: u32,
    /// The non-empty cells.
    clusters: Vec<Cluster>,
}

/// A box's streams counted on a grid, for a map zoomed out too far to list.
///
/// Each non-empty cell's count, mean position, extent, states and
/// viewers; revalidated like the list (`ETag`, `If-None-Match`).
#[utoipa::path(
    get,
    path = "/api/clusters",
    tag = "streams",
    params(ClustersQuery),
    responses(
        (status = 200, description = "The clusters", body = Clusters,
         headers(("ETag" = String, description = "Weak; send it back as If-None-Match"))),
        (status = 304, description = "Unchanged since the tag sent"),
        (status = 400, description = "A missing or malformed parameter", body = ErrorBody),
    )
)]
pub async fn clusters(
    State(st): State<StreamsState>,
    ApiQuery(q): ApiQuery<ClustersQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let bbox =
        parse_bbox(q.bbox.as_deref().ok_or_else(|| {
            ApiError::bad_request("bbox: required (minLon,minLat,maxLon,maxLat)")
        })?)?;
    let grid = q.grid.unwrap_or(DEFAULT_GRID);
    if !(1..=MAX_GRID).contains(&grid) {
        return Err(ApiError::bad_request(format!(
            "grid: 1 to {MAX_GRID} cells per side"
        )));
    }
    st.listings.ensure_all_listed().await;
    let (snap, tag) = match revision(&st, &headers)? {
        Revision::Unchanged(not_modified) => return Ok(not_modified),
        Revision::Changed { snap, tag } => (snap, tag),
    };
    let statuses = st.supervisor.statuses();
    let idle = Status::default();
    let width = (bbox.max_lon - bbox.min_lon).rem_euclid(360.0);
    // A box 360° wide (whole world) wraps to 0: keep its full width.
    let width = if width == 0.0 && bbox.max_lon != bbox.min_lon {
        360.0
    } else {
        width
    };
    let height = bbox.max_lat - bbox.min_lat;
    let cell_of = |offset: f64, size: f64| -> usize {
        if size <= 0.0 {
            0
        } else {
            ((offset / size * grid as f64) as usize).min(grid - 1)
        }
    };
    let mut cells: HashMap<(usize, usize), Cell> = HashMap::new();
    let mut total = 0u32;
    for s in st.catalog.within(&snap, &bbox) {
        let Some(g) = s.geo else { continue };
        let status = statuses.get(&s.id).unwrap_or(&idle);
        let east = (g.lon - bbox.min_lon).rem_euclid(360.0);
        let key = (cell_of(east, width), cell_of(g.lat - bbox.min_lat, height));
        cells.entry(key).or_default().add(
            g.lat,
            east,
            effective_state(s, status),
            status.viewers_rtmp + status.viewers_http,
        );
        total += 1;
    }
    let mut keys: Vec<_> = cells.keys().copied().collect();
    keys.sort_unstable();
    let overview = Overview {
        total,
        clusters: keys
            .iter()
            .filter_map(|k| cells.get(k))
            .map(|cell| Shown {
                cell,
                origin: bbox.min_lon,
            })
            .collect(),
    };
    tagged_json(tag, &overview, 64 + overview.clusters.len() * 160)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::http::state::testing::{self, catalogue_at, PEER, PUBLIC};
    use axum::http::StatusCode;
    use serde_json::{json, Value};

    async fn get(uri: &str) -> (StatusCode, Value) {
        let config = Config::load_with_env(None, []).expect("the defaults load");
        let (st, _) = testing::streams(config);
        catalogue_at(
            &st.catalog,
            "cams",
            &[
                ("a", Some((1.0, 1.0))),
                ("b", Some((1.5, 1.5))),
                ("c", Some((9.0, 9.0))),
                ("east", Some((0.0, 179.0))),
                ("west", Some((0.0, -179.0))),
                ("nowhere", None),
            ],
        );
        let app = axum::Router::new()
            .route("/api/clusters", axum::routing::get(super::clusters))
            .with_state(st);
        let (status, body) = testing::send(app, testing::request("GET", uri, PEER, PUBLIC)).await;
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    #[tokio::test]
    async fn a_box_is_counted_on_a_grid() {
        let (status, v) = get("/api/clusters?bbox=0,0,10,10&grid=2").await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["total"], 3);
        assert_eq!(
            v["clusters"],
            json!([
                {"lat": 1.25, "lon": 1.25, "count": 2, "bbox": [1.0, 1.0, 1.5, 1.5],
                 "states": {"idle": 2}, "viewers": 0},
                {"lat": 9.0, "lon": 9.0, "count": 1, "bbox": [9.0, 9.0, 9.0, 9.0],
                 "states": {"idle": 1}, "viewers": 0},
            ])
        );
    }

    #[tokio::test]
    async fn a_box_across_the_antimeridian_averages_across_it() {
        let (_, v) = get("/api/clusters?bbox=170,-5,-170,5&grid=1").await;
        assert_eq!(v["total"], 2);
        let c = &v["clusters"][0];
        assert_eq!(
            (c["count"].clone(), c["lon"].clone()),
            (json!(2), json!(180.0))
        );
        assert_eq!(c["bbox"], json!([179.0, 0.0, -179.0, 0.0]));
    }

    #[tokio::test]
    async fn a_box_and_a_sane_grid_are_required() {
        for bad in [
            "",
            "?bbox=1,2,3",
            "?bbox=0,0,1,1&grid=0",
            "?bbox=0,0,1,1&grid=129",
        ] {
            let (status, v) = get(&format!("/api/clusters{bad}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {v}");
            assert!(v["error"].is_string(), "{v}");
        }
    }
}
