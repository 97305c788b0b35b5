//! What `GET /api/streams` lists and how: its filters, a map's bounding
//! box, the fields asked for, pages of the list, and the `ETag` a client
//! revalidates it with. The events stream narrows to a box with the same
//! [`parse_bbox`].
//!
//! The list is built from the catalog's snapshot and the supervisor's
//! statuses and serialized straight from them (no JSON tree per stream):
//! at 100,000 streams that is most of its cost.

use super::doc::{Documented, ErrorBody};
use super::extract::ApiQuery;
use super::ApiError;
use crate::catalog::{Snapshot, StreamEntry};
use crate::http::state::StreamsState;
use crate::supervisor::{State as StreamState, Status};
use axum::extract::{FromRef, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dss_store::BBox;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use std::ops::Bound;
use std::sync::{Arc, LazyLock};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

/// `/api/streams`.
pub(super) fn routes<S>() -> Documented<S>
where
    S: Clone + Send + Sync + 'static,
    StreamsState: FromRef<S>,
{
    Documented::new().routes(routes!(streams))
}

/// The most streams one page may hold: a page is built and serialized
/// in one go, so this bounds what one request costs (about 2 MB of JSON).
pub const MAX_LIMIT: usize = 10_000;

/// The query of `GET /api/streams`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamFilter {
    /// Only this provider instance's streams.
    #[param(pattern = "^[a-z][a-z0-9_]{0,31}$")]
    pub provider: Option<String>,
    /// Only streams the upstream says are on (or off).
    pub online: Option<bool>,
    /// Only streams in this state.
    #[param(value_type = Option<StreamState>)]
    pub state: Option<String>,
    /// `minLon,minLat,maxLon,maxLat`: only streams positioned inside.
    #[param(pattern = r"^(-?[0-9]{1,20}(\.[0-9]{1,20})?,){3}-?[0-9]{1,20}(\.[0-9]{1,20})?$")]
    pub bbox: Option<String>,
    /// Comma-separated fields to include (`id` always is).
    #[param(
        pattern = "^(id|provider|key|name|geo|online|tags|state|viewers)(,(id|provider|key|name|geo|online|tags|state|viewers))*$"
    )]
    pub fields: Option<String>,
    /// At most this many streams; a `Link: rel="next"` header follows.
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<usize>,
    /// Where the previous page ended (from its `Link` header).
    #[param(pattern = "^([0-9a-fA-F]{2})*$")]
    pub cursor: Option<String>,
}

/// A [`StreamFilter`] checked: every malformed part is a 400 before any
/// work is done.
#[derive(Debug)]
struct Checked {
    state: Option<StreamState>,
    bbox: Option<BBox>,
    fields: Fields,
    limit: Option<usize>,
    after: Option<String>,
}

impl StreamFilter {
    fn check(&self) -> Result<Checked, ApiError> {
        let state = match &self.state {
            None => None,
            Some(s) => Some(parse_state(s)?),
        };
        let bbox = self.bbox.as_deref().map(parse_bbox).transpose()?;
        let fields = match &self.fields {
            None => Fields::ALL,
            Some(f) => Fields::parse(f)?,
        };
        let limit = match self.limit {
            Some(0) => return Err(ApiError::bad_request("limit: must be at least 1")),
            Some(n) if n > MAX_LIMIT => {
                return Err(ApiError::bad_request(format!("limit: at most {MAX_LIMIT}")))
            }
            n => n,
        };
        let after = self.cursor.as_deref().map(decode_cursor).transpose()?;
        Ok(Checked {
            state,
            bbox,
            fields,
            limit,
            after,
        })
    }
}

fn parse_state(s: &str) -> Result<StreamState, ApiError> {
    use serde::de::value::{Error, StrDeserializer};
    StreamState::deserialize(StrDeserializer::<Error>::new(s))
        .map_err(|_| ApiError::bad_request(format!("state: unknown state {s:?}")))
}

/// Parses `minLon,minLat,maxLon,maxLat` (the order of GeoJSON and of
/// Leaflet's `toBBoxString()`). Longitudes are wrapped into -180..180
/// (a map scrolled past the antimeridian), a box 360° wide or more is
/// the whole world, and `minLon > maxLon` (after wrapping) crosses the
/// antimeridian. Latitudes beyond the poles are clamped to ±90 (a padded
/// view at low zoom); a box whose south is above its north holds
/// nothing.
pub fn parse_bbox(s: &str) -> Result<BBox, ApiError> {
    let bad =
        |why: String| ApiError::bad_request(format!("bbox: {why} (minLon,minLat,maxLon,maxLat)"));
    let parts: Vec<&str> = s.split(',').collect();
    if parts.len() != 4 {
        return Err(bad(format!("{} numbers, not 4", parts.len())));
    }
    let mut n = [0f64; 4];
    for (slot, p) in n.iter_mut().zip(&parts) {
        if !plain_number(p) {
            return Err(bad(format!("{p:?} is not a decimal number")));
        }
        *slot = p
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| bad(format!("{p:?} is not a finite number")))?;
    }
    let [w, s_, e, n_] = n;
    if s_ > n_ {
        // No position is above 90°: a box there holds nothing.
        return Ok(BBox {
            min_lat: 91.0,
            min_lon: 0.0,
            max_lat: 91.0,
            max_lon: 0.0,
        });
    }
    let (min_lon, max_lon) = if e - w >= 360.0 {
        (-180.0, 180.0)
    } else {
        (wrap_lon(w), wrap_lon(e))
    };
    Ok(BBox {
        min_lat: s_.clamp(-90.0, 90.0),
        min_lon,
        max_lat: n_.clamp(-90.0, 90.0),
        max_lon,
    })
}

/// Whether `s` is `-?DIGITS(.DIGITS)?`, 1 to 20 digits each side: what
/// the document's pattern says (Rust's own parser takes `1e5`, `+1`,
/// `inf`, which a map never sends).
fn plain_number(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = |d: &str| (1..=20).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit());
    digits(int) && frac.is_none_or(digits)
}

/// `lon` as -180..=180 (180 stays 180, so a box ending there does not
/// wrap).
fn wrap_lon(lon: f64) -> f64 {
    if (-180.0..=180.0).contains(&lon) {
        lon
    } else {
        (lon + 180.0).rem_euclid(360.0) - 180.0
    }
}

/// Whether `s` has a position inside `bbox`.
pub fn in_box(s: &StreamEntry, bbox: &BBox) -> bool {
    s.geo.is_some_and(|g| bbox.contains(g.lat, g.lon))
}

/// A cursor names the last id of a page, hex-encoded so it is opaque and
/// needs no escaping in a URL.
fn encode_cursor(id: &str) -> String {
    hex::encode(id)
}

/// Any hex is a cursor: ids are ASCII, so a cursor that is not one of
/// them still orders (what follows it is the rest of the list).
fn decode_cursor(c: &str) -> Result<String, ApiError> {
    hex::decode(c)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|_| ApiError::bad_request("cursor: not a cursor of this API"))
}

/// The fields of a stream in a list, as a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields(u16);

impl Fields {
    /// The names, in the order they are written.
    const NAMES: [&'static str; 9] = [
        "id", "provider", "key", "name", "geo", "online", "tags", "state", "viewers",
    ];
    /// Every field.
    pub const ALL: Fields = Fields((1 << Self::NAMES.len()) - 1);

    /// Parses `id,geo,state` (`id` is always included).
    fn parse(s: &str) -> Result<Fields, ApiError> {
        let mut bits = 1 << Self::ID;
        // Exactly the document's pattern: names and commas, nothing else.
        for name in s.split(',') {
            let i = Self::NAMES.iter().position(|n| *n == name).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "fields: unknown field {name:?} (known: {})",
                    Self::NAMES.join(",")
                ))
            })?;
            bits |= 1 << i;
        }
        Ok(Fields(bits))
    }

    // Each field's place in `NAMES`: serializing a list asks for them per
    // stream, so by number, not by name.
    const ID: usize = 0;
    const PROVIDER: usize = 1;
    const KEY: usize = 2;
    const NAME: usize = 3;
    const GEO: usize = 4;
    const ONLINE: usize = 5;
    const TAGS: usize = 6;
    const STATE: usize = 7;
    const VIEWERS: usize = 8;

    /// Whether field number `i` (of [`Fields::NAMES`]) is in the set.
    fn has(self, i: usize) -> bool {
        self.0 & (1 << i) != 0
    }
}

/// A stream as lists show it to anyone: its public listing, state and
/// viewers (the fields asked for).
pub struct Brief<'a> {
    entry: &'a StreamEntry,
    state: StreamState,
    viewers: usize,
    fields: Fields,
}

impl<'a> Brief<'a> {
    /// `entry` with its `status`, every field.
    pub fn new(entry: &'a StreamEntry, status: &Status) -> Self {
        Brief {
            entry,
            state: effective_state(entry, status),
            viewers: status.viewers_rtmp + status.viewers_http,
            fields: Fields::ALL,
        }
    }
}

impl Serialize for Brief<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let e = self.entry;
        let f = self.fields;
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("id", &e.id)?;
        if f.has(Fields::PROVIDER) {
            m.serialize_entry("provider", &e.provider)?;
        }
        if f.has(Fields::KEY) {
            m.serialize_entry("key", &e.key)?;
        }
        if f.has(Fields::NAME) {
            m.serialize_entry("name", &e.name)?;
        }
        if f.has(Fields::GEO) {
            m.serialize_entry("geo", &e.geo)?;
        }
        if f.has(Fields::ONLINE) {
            m.serialize_entry("online", &e.online)?;
        }
        if f.has(Fields::TAGS) {
            m.serialize_entry("tags", &e.tags)?;
        }
        if f.has(Fields::STATE) {
            m.serialize_entry("state", &self.state)?;
        }
        if f.has(Fields::VIEWERS) {
            m.serialize_entry("viewers", &self.viewers)?;
        }
        m.end()
    }
}

/// A stream's state: `refused` as soon as the listing's FFmpeg policy
/// check refuses it, before anyone tries to play it.
pub fn effective_state(s: &StreamEntry, status: &Status) -> StreamState {
    if s.refusal().is_some() && status.pid.is_none() {
        StreamState::Refused
    } else {
        status.state
    }
}

/// Tells this run of the host from the last: the generations in a tag
/// start again from 0 after a restart.
static BOOT: LazyLock<String> = LazyLock::new(|| crate::ids::unguessable_hex(4));

/// The list's tag: weak, because a compressed body is another sequence
/// of bytes for the same list. It changes whenever the catalog or a
/// stream's state or viewers do; the query is not in it, since a tag
/// belongs to one URL.
fn etag(catalog: u64, supervisor: u64) -> String {
    format!("W/\"{}-{catalog}-{supervisor}\"", *BOOT)
}

/// Whether `If-None-Match` names `tag` (weak comparison, or `*`).
fn not_modified(headers: &HeaderMap, tag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let ours = strip(tag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || strip(t) == ours)
}

/// What an answer built from the catalog and the supervisor's statuses
/// starts from.
pub(super) enum Revision {
    /// The client has it: a 304 with its tag.
    Unchanged(Response),
    /// The snapshot to build it from, and its tag.
    Changed {
        snap: Arc<Snapshot>,
        tag: HeaderValue,
    },
}

/// The current [`Revision`] for a client that sent `headers`. The
/// supervisor's generation is read here, before the caller reads its
/// statuses, and the catalog's comes with its snapshot: a body may be
/// newer than its tag (one more 200 later), never older (a 304 over a
/// stale list).
pub(super) fn revision(st: &StreamsState, headers: &HeaderMap) -> Result<Revision, ApiError> {
    let snap = st.catalog.snapshot();
    let tag = etag(snap.generation, st.supervisor.generation());
    let value = HeaderValue::from_str(&tag)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("etag: {e}")))?;
    Ok(if not_modified(headers, &tag) {
        Revision::Unchanged((StatusCode::NOT_MODIFIED, [(header::ETAG, value)]).into_response())
    } else {
        Revision::Changed { snap, tag: value }
    })
}

/// `value` as a JSON answer with its `tag` (`capacity`: the body's
/// expected size, so it is written without growing).
pub(super) fn tagged_json(
    tag: HeaderValue,
    value: &impl Serialize,
    capacity: usize,
) -> Result<Response, ApiError> {
    let mut body = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut body, value)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("json: {e}")))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, tag),
        ],
        body,
    )
        .into_response())
}

/// A stream in a list: every field but `id` may be left out by `fields=`.
/// (What `Brief` writes, for the document.)
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StreamBrief {
    /// `<provider>-<key>`.
    id: String,
    /// Provider instance id.
    provider: Option<String>,
    /// Key within the provider.
    key: Option<String>,
    /// Display name.
    name: Option<String>,
    /// Position, `null` when it has none.
    geo: Option<crate::catalog::Geo>,
    /// Whether the upstream says it is on.
    online: Option<bool>,
    /// Free-form metadata.
    tags: Option<std::collections::BTreeMap<String, String>>,
    /// Its lifecycle state.
    state: Option<StreamState>,
    /// Its viewers (RTMP and HTTP).
    viewers: Option<u64>,
}

/// The catalogued streams, filtered, narrowed to a box, in pages.
///
/// In id order. A client revalidates with `If-None-Match` (304 while
/// neither the catalog nor any stream's state or viewers changed).
#[utoipa::path(
    get,
    path = "/api/streams",
    tag = "streams",
    params(StreamFilter),
    responses(
        (status = 200, description = "The streams, in id order", body = [StreamBrief],
         headers(("ETag" = String, description = "Weak; send it back as If-None-Match"),
                 ("Link" = String, description = "`<...>; rel=\"next\"`: the next page, when `limit` cut the list"))),
        (status = 304, description = "Unchanged since the tag sent"),
        (status = 400, description = "A malformed parameter", body = ErrorBody),
    )
)]
pub async fn streams(
    State(st): State<StreamsState>,
    ApiQuery(f): ApiQuery<StreamFilter>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let q = f.check()?;
    match &f.provider {
        Some(p) => {
            super::providers::check_provider(p)?;
            st.listings.ensure_listed(p).await;
        }
        None => st.listings.ensure_all_listed().await,
    }
    let (snap, tag) = match revision(&st, &headers)? {
        Revision::Unchanged(not_modified) => return Ok(not_modified),
        Revision::Changed { snap, tag } => (snap, tag),
    };
    let statuses = st.supervisor.statuses();
    let idle = Status::default();
    let start = match &q.after {
        Some(id) => Bound::Excluded(id.as_str()),
        None => Bound::Unbounded,
    };
    let mut items = Vec::new();
    let mut last = None;
    let mut more = false;
    // A box is looked up in the index of positions (what it holds, not
    // the whole catalog); the rest of the list is walked from the cursor.
    let candidates: Box<dyn Iterator<Item = &Arc<StreamEntry>>> = match &q.bbox {
        Some(b) => {
            let after = q.after.clone();
            Box::new(
                st.catalog
                    .within(&snap, b)
                    .into_iter()
                    .filter(move |s| after.as_ref().is_none_or(|a| s.id.as_str() > a.as_str())),
            )
        }
        None => Box::new(
            snap.streams
                .range::<str, _>((start, Bound::Unbounded))
                .map(|(_, s)| s),
        ),
    };
    for s in candidates {
        let id = &s.id;
        if f.provider.as_ref().is_some_and(|p| &s.provider != p)
            || f.online.is_some_and(|o| s.online != o)
        {
            continue;
        }
        let mut brief = Brief::new(s, statuses.get(id).unwrap_or(&idle));
        if q.state.is_some_and(|want| brief.state != want) {
            continue;
        }
        if q.limit.is_some_and(|n| items.len() == n) {
            more = true;
            break;
        }
        brief.fields = q.fields;
        last = Some(id.as_str());
        items.push(brief);
    }
    // About what a stream with every field takes: one allocation, no
    // copies as the body grows.
    let mut res = tagged_json(tag, &items, 64 + items.len() * 160)?;
    if let (true, Some(last)) = (more, last) {
        if let Ok(v) = HeaderValue::from_str(&next_link(raw.as_deref(), last)) {
            res.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(res)
}

/// The `Link` to the page after `last`: the same query with its cursor.
fn next_link(raw: Option<&str>, last: &str) -> String {
    let mut query: Vec<&str> = raw
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("cursor="))
        .collect();
    let cursor = format!("cursor={}", encode_cursor(last));
    query.push(&cursor);
    format!("</api/streams?{}>; rel=\"next\"", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bbox_is_checked_wrapped_and_clamped() {
        let b = parse_bbox("-43.3,-23,-43.1,-22.8").unwrap();
        assert_eq!(
            (b.min_lon, b.min_lat, b.max_lon, b.max_lat),
            (-43.3, -23.0, -43.1, -22.8)
        );
        // Across the antimeridian, scrolled past it, and the whole world.
        let b = parse_bbox("170,-10,190,10").unwrap();
        assert_eq!((b.min_lon, b.max_lon), (170.0, -170.0));
        assert!(b.contains(0.0, 179.0) && b.contains(0.0, -175.0) && !b.contains(0.0, 0.0));
        let b = parse_bbox("0,10,1,5").unwrap();
        assert!(!b.contains(7.0, 0.5), "south above north holds nothing");
        let b = parse_bbox("-300,-100,300,100").unwrap();
        assert_eq!(
            (b.min_lon, b.min_lat, b.max_lon, b.max_lat),
            (-180.0, -90.0, 180.0, 90.0)
        );
        for bad in [
            "",
            "1,2,3",
            "1,2,3,4,5",
            "a,1,2,3",
            "NaN,1,2,3",
            "1,inf,2,3",
            "1e5,1,2,3",
            "+1,1,2,3",
            " 1,1,2,3",
        ] {
            let e = parse_bbox(bad).unwrap_err();
            assert_eq!(e.0, StatusCode::BAD_REQUEST, "{bad}");
            assert!(e.1.starts_with("bbox: "), "{}", e.1);
        }
    }

    #[test]
    fn fields_always_hold_the_id_and_refuse_unknown_names() {
        let f = Fields::parse("geo,state").unwrap();
        assert!(
            f.has(Fields::ID) && f.has(Fields::GEO) && f.has(Fields::STATE) && !f.has(Fields::NAME)
        );
        assert!(Fields::parse("").is_err());
        assert!(Fields::parse("geo,,state").is_err());
        assert!(Fields::parse("geo, state").is_err());
        assert!(Fields::parse("geo,source")
            .unwrap_err()
            .1
            .contains("\"source\""));
    }

    #[test]
    fn a_cursor_round_trips_and_rejects_garbage() {
        assert_eq!(
            decode_cursor(&encode_cursor("cams-one")).unwrap(),
            "cams-one"
        );
        assert!(decode_cursor("zz").is_err());
        assert!(decode_cursor("f").is_err(), "half a byte");
        assert!(decode_cursor("ff").is_ok(), "after every id");
    }

    #[test]
    fn if_none_match_compares_weakly() {
        let tag = etag(3, 4);
        let mut h = HeaderMap::new();
        assert!(!not_modified(&h, &tag));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&tag).unwrap());
        assert!(not_modified(&h, &tag));
        let strong = tag.trim_start_matches("W/").to_string();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"x\", {strong}")).unwrap(),
        );
        assert!(not_modified(&h, &tag), "a list, and nginx's strong copy");
        assert!(!not_modified(&h, &etag(3, 5)));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(not_modified(&h, &tag));
    }

    #[test]
    fn the_next_link_keeps_the_query_and_replaces_the_cursor() {
        assert_eq!(
            next_link(Some("limit=2&cursor=00&fields=id"), "a-b"),
            format!(
                "</api/streams?limit=2&fields=id&cursor={}>; rel=\"next\"",
                hex::encode("a-b")
            )
        );
    }

    mod http {
        use crate::config::Config;
        use crate::http::access::Caller;
        use crate::http::state::testing::{self, catalogue_at, PEER, PUBLIC};
        use crate::http::state::StreamsState;
        use axum::http::{header, HeaderMap, StatusCode};
        use serde_json::{json, Value};
        use std::time::Duration;

        /// `cams-a` and `cams-c` near (1, 2), `cams-b` far away, `cams-d`
        /// nowhere.
        fn streams() -> StreamsState {
            let config = Config::load_with_env(None, []).expect("the defaults load");
            let (st, _) = testing::streams(config);
            catalogue_at(
                &st.catalog,
                "cams",
                &[
                    ("a", Some((1.0, 2.0))),
                    ("b", Some((40.0, 50.0))),
                    ("c", Some((1.5, 2.5))),
                    ("d", None),
                ],
            );
            st
        }

        async fn get(
            st: &StreamsState,
            uri: &str,
            if_none_match: Option<&str>,
        ) -> (StatusCode, HeaderMap, Value) {
            use http_body_util::BodyExt;
            use tower::ServiceExt;
            let app = axum::Router::new()
                .route("/api/streams", axum::routing::get(super::super::streams))
                .with_state(st.clone());
            let mut req = testing::request("GET", uri, PEER, PUBLIC as Caller);
            if let Some(tag) = if_none_match {
                req.headers_mut()
                    .insert(header::IF_NONE_MATCH, tag.parse().expect("a header"));
            }
            let res = app.oneshot(req).await.expect("the router answers");
            let (parts, body) = res.into_parts();
            let body = body.collect().await.expect("a body").to_bytes();
            let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
            (parts.status, parts.headers, json)
        }

        fn ids(list: &Value) -> Vec<&str> {
            list.as_array()
                .map(|a| a.iter().filter_map(|s| s["id"].as_str()).collect())
                .unwrap_or_default()
        }

        #[tokio::test]
        async fn a_box_narrows_the_list_to_positioned_streams_inside() {
            let st = streams();
            let (status, _, list) = get(&st, "/api/streams?bbox=0,0,3,3", None).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(ids(&list), ["cams-a", "cams-c"]);
            let (_, _, list) = get(&st, "/api/streams", None).await;
            assert_eq!(ids(&list).len(), 4, "no box: everything, unpositioned too");
            let (status, _, e) = get(&st, "/api/streams?bbox=0,0,3", None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(
                e["error"].as_str().is_some_and(|e| e.starts_with("bbox:")),
                "{e}"
            );
        }

        #[tokio::test]
        async fn fields_select_what_each_stream_carries() {
            let st = streams();
            let (_, _, list) = get(&st, "/api/streams?bbox=0,0,3,3&fields=geo,state", None).await;
            assert_eq!(
                list[0],
                json!({"id": "cams-a", "geo": {"lat": 1.0, "lon": 2.0}, "state": "idle"})
            );
            let (status, _, _) = get(&st, "/api/streams?fields=source", None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "not a field of a list");
            let (status, _, _) = get(&st, "/api/streams?state=flying", None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "not a state");
        }

        #[tokio::test]
        async fn pages_follow_their_links_to_the_end() {
            let st = streams();
            let mut uri = "/api/streams?limit=3&fields=id".to_string();
            let mut seen = Vec::new();
            for _ in 0..3 {
                let (status, headers, list) = get(&st, &uri, None).await;
                assert_eq!(status, StatusCode::OK);
                seen.extend(ids(&list).into_iter().map(String::from));
                let Some(link) = headers.get(header::LINK) else {
                    break;
                };
                let link = link.to_str().expect("ASCII");
                assert!(link.ends_with(">; rel=\"next\""), "{link}");
                uri = link[1..link.find('>').expect("<url>")].to_string();
            }
            assert_eq!(seen, ["cams-a", "cams-b", "cams-c", "cams-d"]);
            for bad in ["limit=0", "limit=10001", "cursor=zz", "limit=x"] {
                let (status, _, _) = get(&st, &format!("/api/streams?{bad}"), None).await;
                assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
            }
        }

        #[tokio::test]
        async fn a_tag_revalidates_until_the_catalog_or_a_viewer_changes() {
            let st = streams();
            let (_, headers, _) = get(&st, "/api/streams", None).await;
            let tag = headers[header::ETAG].to_str().expect("ASCII").to_string();
            assert!(tag.starts_with("W/\""), "{tag}");
            let (status, headers, _) = get(&st, "/api/streams", Some(&tag)).await;
            assert_eq!(status, StatusCode::NOT_MODIFIED);
            assert_eq!(headers[header::ETAG], tag.as_str());
            // A viewer's lease: the count in the list changes, so the tag.
            st.supervisor
                .lease("cams-a", "tester", Some(Duration::from_secs(60)), None)
                .expect("a lease");
            let (status, headers, list) = get(&st, "/api/streams", Some(&tag)).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(list[0]["viewers"], 1);
            let tag2 = headers[header::ETAG].to_str().expect("ASCII").to_string();
            assert_ne!(tag2, tag);
            // A listing: the catalog's generation.
            catalogue_at(&st.catalog, "more", &[("x", None)]);
            let (status, _, _) = get(&st, "/api/streams", Some(&tag2)).await;
            assert_eq!(status, StatusCode::OK);
        }
    }
}
