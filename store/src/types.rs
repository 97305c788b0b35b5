//! The domain records the store keeps, shared by both backends, and their validation.

use crate::error::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Largest JSON payload (session meta, GPS point extra, key/value value,
/// stats data) once serialized: 4 MiB keeps any one MongoDB document well
/// under its 16 MB cap.
pub const MAX_JSON_BYTES: usize = 4 << 20;

/// Largest single listed stream once BSON-encoded: 1 MiB. Listings are split
/// into chunks of about 4 MiB in MongoDB, so one stream must stay well below.
pub const MAX_STREAM_BYTES: usize = 1 << 20;

/// Largest timestamp the store accepts: 2^53 - 1 (year 287396 in ms), the
/// largest integer every backend returns exactly (CongoDB and other
/// JavaScript-based servers hand integers back as Doubles).
pub const MAX_INT: u64 = (1 << 53) - 1;

/// A position in degrees (WGS 84).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Geo {
    /// Latitude, -90 to 90.
    pub lat: f64,
    /// Longitude, -180 to 180.
    pub lon: f64,
}

/// One stream of a provider listing, as the provider returned it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListedStream {
    /// Key within the provider.
    pub key: String,
    /// What FFmpeg reads.
    pub source: String,
    /// Display name.
    pub name: String,
    /// Position, when known.
    #[serde(default)]
    pub geo: Option<Geo>,
    /// Whether the upstream says it is on.
    #[serde(default)]
    pub online: bool,
    /// FFmpeg options before `-i`.
    #[serde(default)]
    pub input_options: Vec<String>,
    /// FFmpeg options after `-i`.
    #[serde(default)]
    pub output_options: Vec<String>,
    /// Free-form metadata.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A provider's stream list as fetched at one time (the host's listing cache).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listing {
    /// Provider instance id.
    pub provider: String,
    /// When the provider returned this list (Unix ms).
    pub fetched_at_ms: u64,
    /// What produced it (a digest of the instance file and the module):
    /// several hosts sharing a store serve only a listing produced by the
    /// same instance as their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Cluster mode: the epoch of the refresh lease its writer held. A
    /// stored listing of a newer epoch is never replaced by one of an
    /// older (a host that lost the lease while its writes were queued
    /// cannot replay them over its successor's). `None`: not fenced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// The streams, in the provider's order.
    pub streams: Vec<ListedStream>,
}

/// When a stored listing was fetched and by what, read without its streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingStamp {
    /// [`Listing::fetched_at_ms`].
    pub fetched_at_ms: u64,
    /// [`Listing::fingerprint`].
    pub fingerprint: Option<String>,
}

/// A stream's position (latest one per stream).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Geotag {
    /// The stream's id (`<provider>-<key>`).
    pub stream_id: String,
    /// Latitude, -90 to 90.
    pub lat: f64,
    /// Longitude, -180 to 180.
    pub lon: f64,
    /// When this position was set (Unix ms).
    pub updated_ms: u64,
}

/// A latitude/longitude box, edges included. When `min_lon > max_lon` the
/// box crosses the antimeridian (e.g. 170 to -170).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    /// Southern edge.
    pub min_lat: f64,
    /// Western edge.
    pub min_lon: f64,
    /// Northern edge.
    pub max_lat: f64,
    /// Eastern edge.
    pub max_lon: f64,
}

impl BBox {
    /// Whether `(lat, lon)` lies in the box (edges included).
    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        let lat_ok = self.min_lat <= lat && lat <= self.max_lat;
        let lon_ok = if self.min_lon <= self.max_lon {
            self.min_lon <= lon && lon <= self.max_lon
        } else {
            lon >= self.min_lon || lon <= self.max_lon
        };
        lat_ok && lon_ok
    }

    /// The box as one or two longitude ranges that do not wrap.
    pub fn lon_ranges(&self) -> Vec<(f64, f64)> {
        if self.min_lon <= self.max_lon {
            vec![(self.min_lon, self.max_lon)]
        } else {
            vec![(self.min_lon, 180.0), (-180.0, self.max_lon)]
        }
    }

    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        check_lat_lon("bounding box", self.min_lat, self.min_lon)?;
        check_lat_lon("bounding box", self.max_lat, self.max_lon)?;
        if self.min_lat > self.max_lat {
            return Err(invalid(
                "bounding box",
                format!("min_lat {} > max_lat {}", self.min_lat, self.max_lat),
            ));
        }
        Ok(())
    }
}

/// A new mobile stream session (a phone starting to push).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewSession {
    /// The session id; `None` lets the store assign a unique one.
    #[serde(default)]
    pub id: Option<String>,
    /// The stream key the phone publishes to.
    pub stream_key: String,
    /// When the session started (Unix ms).
    pub started_ms: u64,
    /// Free-form metadata (device, user agent, …).
    #[serde(default)]
    pub meta: Value,
}

/// A mobile stream session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MobileSession {
    /// Session id.
    pub id: String,
    /// The stream key the phone publishes to.
    pub stream_key: String,
    /// When the session started (Unix ms).
    pub started_ms: u64,
    /// When it was closed (Unix ms); `None` while active.
    pub closed_ms: Option<u64>,
    /// Free-form metadata.
    pub meta: Value,
}

/// One GPS fix of a mobile stream's track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpsPoint {
    /// When (Unix ms). A track holds at most one point per millisecond: a
    /// point whose `t_ms` is already in the track is ignored.
    pub t_ms: u64,
    /// Latitude, -90 to 90.
    pub lat: f64,
    /// Longitude, -180 to 180.
    pub lon: f64,
    /// Anything else the phone sent (speed, heading, accuracy, …).
    #[serde(default)]
    pub extra: Option<Value>,
}

/// A stream's statistics at one time; the store keeps the latest per stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// The stream's id.
    pub stream_id: String,
    /// When the snapshot was taken (Unix ms).
    pub taken_ms: u64,
    /// The figures (viewers, bytes, restarts, …).
    pub data: Value,
}

/// Whether the store is writing through to its database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StoreHealth {
    /// Writes reach the database.
    Ok,
    /// Something needs attention: the database cannot be reached or refuses
    /// the credentials (writes wait in a bounded queue and are retried;
    /// reads fail fast), the last operation failed (SQLite), or
    /// acknowledged writes were refused by the database and lost. The last
    /// one stays until the store is reopened: lost data needs an operator.
    Degraded {
        /// Why, naming the database.
        reason: String,
        /// Writes acknowledged but not yet in the database.
        queued_writes: usize,
        /// Acknowledged writes the database refused (each tried a few
        /// times) and that were dropped, since the store opened.
        #[serde(default)]
        refused_writes: u64,
        /// The last of them: which write (collection, key) and the
        /// database's answer.
        #[serde(default)]
        last_refusal: Option<String>,
    },
}

impl StoreHealth {
    /// True when healthy.
    pub fn is_ok(&self) -> bool {
        matches!(self, StoreHealth::Ok)
    }
}

pub(crate) fn invalid(what: &'static str, message: String) -> StoreError {
    StoreError::Invalid { what, message }
}

pub(crate) fn check_id(what: &'static str, id: &str) -> Result<(), StoreError> {
    if id.is_empty() {
        return Err(invalid(what, "empty".into()));
    }
    if id.contains('\0') {
        return Err(invalid(what, format!("{id:?} contains a NUL character")));
    }
    Ok(())
}

pub(crate) fn check_int(what: &'static str, v: u64) -> Result<(), StoreError> {
    if v > MAX_INT {
        return Err(invalid(what, format!("{v} exceeds {MAX_INT}")));
    }
    Ok(())
}

pub(crate) fn check_lat_lon(what: &'static str, lat: f64, lon: f64) -> Result<(), StoreError> {
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        // NaN fails `contains` too.
        return Err(invalid(
            what,
            format!("position ({lat}, {lon}) is outside -90..90, -180..180"),
        ));
    }
    Ok(())
}

/// Serializes a JSON payload for storage, checking its size.
pub(crate) fn json_text(what: &'static str, v: &Value) -> Result<String, StoreError> {
    let text = serde_json::to_string(v).map_err(|e| invalid(what, e.to_string()))?;
    if text.len() > MAX_JSON_BYTES {
        return Err(invalid(
            what,
            format!("{} bytes of JSON (limit {MAX_JSON_BYTES})", text.len()),
        ));
    }
    Ok(text)
}

/// Parses a stored JSON payload.
pub(crate) fn parse_json(
    collection: &'static str,
    key: &str,
    text: &str,
) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Decode {
        collection,
        key: key.to_string(),
        message: e.to_string(),
    })
}

impl Listing {
    /// Validates the listing and returns each stream's BSON size.
    pub(crate) fn validate(&self) -> Result<Vec<usize>, StoreError> {
        check_id("listing provider", &self.provider)?;
        check_int("listing fetched_at_ms", self.fetched_at_ms)?;
        self.streams
            .iter()
            .map(|s| {
                if let Some(g) = s.geo {
                    check_lat_lon("listed stream", g.lat, g.lon)?;
                }
                let size = bson::to_vec(s)
                    .map_err(|e| StoreError::Encode {
                        collection: "listings",
                        key: format!("{}/{}", self.provider, s.key),
                        message: e.to_string(),
                    })?
                    .len();
                if size > MAX_STREAM_BYTES {
                    return Err(invalid(
                        "listed stream",
                        format!(
                            "{}/{}: {size} bytes as BSON (limit {MAX_STREAM_BYTES})",
                            self.provider, s.key
                        ),
                    ));
                }
                Ok(size)
            })
            .collect()
    }
}

/// The id a new session gets: the given one, or a new unique one (an
/// ObjectId in hex: unique across processes, ordered by creation time).
pub(crate) fn session_id(session: &NewSession) -> Result<String, StoreError> {
    match &session.id {
        Some(id) => {
            check_id("session id", id)?;
            Ok(id.clone())
        }
        None => Ok(bson::oid::ObjectId::new().to_hex()),
    }
}

impl Geotag {
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        check_id("geotag stream_id", &self.stream_id)?;
        check_lat_lon("geotag", self.lat, self.lon)?;
        check_int("geotag updated_ms", self.updated_ms)
    }
}

impl GpsPoint {
    /// Validates the point and returns its `extra` as JSON text.
    pub(crate) fn validate(&self) -> Result<Option<String>, StoreError> {
        check_lat_lon("GPS point", self.lat, self.lon)?;
        check_int("GPS point t_ms", self.t_ms)?;
        self.extra
            .as_ref()
            .map(|x| json_text("GPS point extra", x))
            .transpose()
    }
}

impl StatsSnapshot {
    /// Validates the snapshot and returns its data as JSON text.
    pub(crate) fn validate(&self) -> Result<String, StoreError> {
        check_id("stats stream_id", &self.stream_id)?;
        check_int("stats taken_ms", self.taken_ms)?;
        json_text("stats data", &self.data)
    }
}

/// Keeps the last of several records with the same key, in first-seen order.
pub(crate) fn last_per_key<T>(items: Vec<T>, key: impl Fn(&T) -> &str) -> Vec<T> {
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        match index.get(key(&item)) {
            Some(&i) => out[i] = item,
            None => {
                index.insert(key(&item).to_string(), out.len());
                out.push(item);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bbox_contains_handles_the_antimeridian() {
        let b = BBox {
            min_lat: -10.0,
            min_lon: 170.0,
            max_lat: 10.0,
            max_lon: -170.0,
        };
        assert!(b.contains(0.0, 175.0));
        assert!(b.contains(0.0, -175.0));
        assert!(!b.contains(0.0, 0.0));
        assert_eq!(b.lon_ranges().len(), 2);
    }

    #[test]
    fn validation_rejects_nan_and_out_of_range() {
        let g = Geotag {
            stream_id: "a".into(),
            lat: f64::NAN,
            lon: 0.0,
            updated_ms: 0,
        };
        assert!(g.validate().is_err());
        let g = Geotag { lat: 91.0, ..g };
        assert!(g.validate().is_err());
        let g = Geotag { lat: 0.0, ..g };
        assert!(g.validate().is_ok());
        assert!(check_int("x", u64::MAX).is_err());
    }

    #[test]
    fn last_per_key_keeps_the_last_value_in_first_order() {
        let v = vec![("a", 1), ("b", 2), ("a", 3)];
        assert_eq!(last_per_key(v, |x| x.0), vec![("a", 3), ("b", 2)]);
    }
}
