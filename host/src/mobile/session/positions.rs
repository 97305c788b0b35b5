//! Phones' positions: a user-data payload goes through the instance's
//! `transform-metadata` to the catalog, the events and the phone's track
//! in the store, within the phone's rate.

use super::{show, Phones, MAX_POSITIONS_PER_SECOND};
use crate::catalog::{unix_ms, Geo};
use crate::events::Event;
use crate::sync::lock;
use dss_store::GpsPoint;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

impl Phones {
    /// A user-data payload (JSON) of connected phone `key`: a position goes
    /// through the instance's `transform-metadata` to the catalog, the
    /// events and the phone's track in the store; anything malformed,
    /// rejected by the provider or over the rate is counted and ignored.
    /// False when the phone is not connected.
    pub async fn user_data(&self, key: &str, payload: &[u8]) -> bool {
        let stream_id = self.stream_id(key);
        let bad = |what: &str| {
            self.bad_user_data.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(stream = %stream_id, "user data ignored: {what}");
        };
        {
            let mut live = lock(&self.live);
            let Some(l) = live.get_mut(key) else {
                return false;
            };
            let now = Instant::now();
            if now.duration_since(l.positions.0) >= Duration::from_secs(1) {
                l.positions = (now, 0);
            }
            if l.positions.1 >= MAX_POSITIONS_PER_SECOND {
                drop(live);
                bad("over the rate");
                return true;
            }
            l.positions.1 += 1;
        }
        let Ok(text) = std::str::from_utf8(payload) else {
            bad("not UTF-8");
            return true;
        };
        if serde_json::from_str::<serde_json::Value>(text).is_err() {
            bad("not JSON");
            return true;
        }
        let instance = self.config.mobile.instance.clone();
        let out = match self
            .providers
            .transform_metadata(&instance, key, text.to_string())
            .await
        {
            Ok(out) => out,
            Err(e) => {
                self.bad_user_data.fetch_add(1, Ordering::Relaxed);
                tracing::info!(stream = %stream_id, error = %show(&e.to_string()), "user data rejected by the provider");
                return true;
            }
        };
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        let lat = v.pointer("/geo/lat").and_then(serde_json::Value::as_f64);
        let lon = v.pointer("/geo/lon").and_then(serde_json::Value::as_f64);
        let (Some(lat), Some(lon)) = (lat, lon) else {
            bad("the provider's answer has no geo");
            return true;
        };
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
            bad("the provider's position is out of range");
            return true;
        }
        let t_ms = v
            .get("time_ms")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or_else(|| unix_ms(SystemTime::now()));
        // What the provider added besides the position (speed, accuracy).
        let mut extra = v;
        if let Some(o) = extra.as_object_mut() {
            o.remove("geo");
            o.remove("time_ms");
        }
        let extra = extra
            .as_object()
            .is_some_and(|o| !o.is_empty())
            .then_some(extra);
        if let Some(l) = lock(&self.live).get_mut(key) {
            l.last = Some((t_ms, lat, lon));
        }
        self.catalog.set_geo(&stream_id, Geo { lat, lon });
        self.events.send(Event::Position {
            id: stream_id.clone(),
            t_ms,
            lat,
            lon,
        });
        // The track belongs to the phone (its stream id): a reconnect
        // appends to it.
        let point = GpsPoint {
            t_ms,
            lat,
            lon,
            extra,
        };
        if let Err(e) = self.store.append_points(&stream_id, vec![point]).await {
            tracing::warn!(stream = %stream_id, error = %e, "cannot store a position");
        }
        true
    }
}
