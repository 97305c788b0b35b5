//! `mobile-ts`: the provider type of phone streams. Phones push MPEG-TS to
//! the host's mobile ingest; this provider lists the phones the operator
//! registered (and, once the ingest passes them in, the live sessions), and
//! turns GPS user data into geo metadata.
//!
//! ```toml
//! [config]
//! phones = [{ key = "van1", name = "Van 1", token = "s3cret" }]
//! ```
//!
//! The host adds a `sessions` array (`[{ "key": .., "name": .., "online":
//! .. }]`) to the configuration it passes: the phones connected now
//! (listed online) and those that left (listed offline).

use dss_provider_sdk::{export_provider, host, Error, Provider, ProviderInfo, Result, Stream};
use serde::Deserialize;
use serde_json::{json, Value};

/// The instance configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Phones known in advance (listed offline until they connect).
    #[serde(default)]
    pub phones: Vec<Phone>,
    /// Live sessions, filled in by the host's mobile ingest.
    #[serde(default)]
    pub sessions: Vec<Phone>,
    /// What FFmpeg reads for a phone (default `pipe:0`: the host feeds the
    /// phone's MPEG-TS to FFmpeg's standard input). `{key}` is replaced.
    #[serde(default = "default_source")]
    pub source_template: String,
}

fn default_source() -> String {
    "pipe:0".into()
}

/// A phone.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phone {
    /// The phone's key (its id as assigned by the ingest).
    pub key: String,
    /// Display name (default: the key).
    #[serde(default)]
    pub name: Option<String>,
    /// The secret the phone presents in its metadata frame (checked by the
    /// host's ingest; never listed).
    #[serde(default)]
    pub token: Option<String>,
    /// In `sessions`: `false` for a phone that left (listed offline).
    #[serde(default)]
    pub online: Option<bool>,
}

/// The provider.
pub struct MobileTs;

impl Provider for MobileTs {
    type Config = Config;

    fn describe() -> ProviderInfo {
        let mut info = ProviderInfo::new(
            "mobile-ts",
            env!("CARGO_PKG_VERSION"),
            "Phones pushing MPEG-TS, with GPS positions",
        );
        info.input_options = vec!["-f".into(), "mpegts".into()];
        // Phones send H.264 and AAC, which FLV carries as they are.
        info.output_options = vec!["-c".into(), "copy".into()];
        info
    }

    fn list_streams(config: &Config) -> Result<Vec<Stream>> {
        let mut out: Vec<Stream> = Vec::new();
        for (phones, online) in [(&config.sessions, true), (&config.phones, false)] {
            for p in phones {
                if out.iter().any(|s| s.key == p.key) {
                    continue;
                }
                let online = online && p.online != Some(false);
                let name = p.name.clone().unwrap_or_else(|| p.key.clone());
                let source = config.source_template.replace("{key}", &p.key);
                out.push(Stream::new(p.key.clone(), source, name).with_online(online));
            }
        }
        Ok(out)
    }

    fn transform_metadata(_config: &Config, key: &str, metadata: Value) -> Result<Value> {
        // The original ingest sent {"type":"coord","content":{...}}; accept
        // the bare position too.
        let position = match metadata.get("type").and_then(Value::as_str) {
            Some("coord") => metadata.get("content").cloned().unwrap_or(Value::Null),
            Some(other) => {
                return Err(Error::parse(format!(
                    "unsupported user data type {other:?}"
                )))
            }
            None => metadata,
        };
        let number = |field: &str| position.get(field).and_then(Value::as_f64);
        let (Some(lat), Some(lon)) = (number("latitude"), number("longitude")) else {
            return Err(Error::parse(format!(
                "position of {key} needs numeric latitude and longitude"
            )));
        };
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
            return Err(Error::parse(format!(
                "position of {key} out of range: {lat}, {lon}"
            )));
        }
        let mut out = json!({ "geo": { "lat": lat, "lon": lon }, "time_ms": host::now_ms() });
        for extra in ["accuracy", "speed", "bearing", "altitude"] {
            if let Some(v) = number(extra) {
                out[extra] = json!(v);
            }
        }
        Ok(out)
    }
}

export_provider!(MobileTs);

#[cfg(test)]
mod tests {
    use super::*;
    use dss_provider_sdk::{parse_config, testing::MockHost, ErrorCode};

    fn cfg(json: &str) -> Config {
        parse_config(json).unwrap()
    }

    #[test]
    fn coord_user_data_becomes_geo() {
        let mut mock = MockHost::new();
        mock.now_ms = 42;
        let input =
            json!({"type":"coord","content":{"latitude":-22.9,"longitude":-43.2,"speed":3.5}});
        let (r, _) = mock.run(|| MobileTs::transform_metadata(&cfg("{}"), "p1", input));
        let out = r.unwrap();
        assert_eq!(out["geo"]["lat"], -22.9);
        assert_eq!(out["geo"]["lon"], -43.2);
        assert_eq!(out["speed"], 3.5);
        assert_eq!(out["time_ms"], 42);
    }

    #[test]
    fn bare_positions_are_accepted_and_bad_ones_rejected() {
        let ok =
            MobileTs::transform_metadata(&cfg("{}"), "p", json!({"latitude":1.0,"longitude":2.0}));
        assert_eq!(ok.unwrap()["geo"]["lon"], 2.0);
        for bad in [
            json!({"latitude":91.0,"longitude":0.0}),
            json!({"latitude":"x","longitude":0.0}),
            json!({"type":"photo","content":{}}),
        ] {
            let e = MobileTs::transform_metadata(&cfg("{}"), "p", bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::Parse);
        }
    }

    #[test]
    fn sessions_are_online_and_registered_phones_offline() {
        let c =
            cfg(r#"{"phones":[{"key":"a","name":"Van"},{"key":"b"}],"sessions":[{"key":"b"}]}"#);
        let s = MobileTs::list_streams(&c).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].key.as_str(), s[0].online), ("b", true));
        assert_eq!((s[1].name.as_str(), s[1].online), ("Van", false));
        assert_eq!(s[0].source, "pipe:0");
    }
}
