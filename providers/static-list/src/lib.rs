//! `static-list`: streams listed in the instance configuration — the
//! original DSS's "list" and "named" provider modes.
//!
//! ```toml
//! [config]
//! source_template = "rtsp://cameras.example/{key}"   # {key} and {name}
//! input_options = ["-rtsp_transport", "tcp"]
//! streams = [
//!   "gate",                                            # "list" mode: a key
//!   { key = "lobby", name = "Lobby", lat = -22.9, lon = -43.2 },
//!   { key = "test", source = "testsrc2=size=640x360:rate=25", input_options = ["-re", "-f", "lavfi"] },
//! ]
//! ```

use dss_provider_sdk::{export_provider, Error, Provider, ProviderInfo, Result, Stream};
use serde::Deserialize;

/// The instance configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How a stream's source is made from its key when it has none.
    #[serde(default)]
    pub source_template: Option<String>,
    /// Default FFmpeg input options of the instance.
    #[serde(default)]
    pub input_options: Option<Vec<String>>,
    /// Default FFmpeg output options of the instance.
    #[serde(default)]
    pub output_options: Option<Vec<String>>,
    /// The streams.
    #[serde(default)]
    pub streams: Vec<Entry>,
}

/// One configured stream: a bare key, or a table.
#[derive(Debug)]
pub enum Entry {
    /// Only a key; name = key, source from the template.
    Key(String),
    /// A described stream.
    Named(Named),
}

/// By the JSON type seen (a string or a table), not `#[serde(untagged)]`:
/// untagged buffers every entry into an intermediate value before trying
/// each variant — the most of the time of a 10,000-stream listing.
impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Entry;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a stream key or a table with a key")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Entry, E> {
                Ok(Entry::Key(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Entry, A::Error> {
                Named::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Entry::Named)
            }
        }
        d.deserialize_any(Visit)
    }
}

/// A described stream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Named {
    /// The key.
    pub key: String,
    /// Display name (default: the key).
    #[serde(default)]
    pub name: Option<String>,
    /// Source (default: from the template).
    #[serde(default)]
    pub source: Option<String>,
    /// Latitude.
    #[serde(default)]
    pub lat: Option<f64>,
    /// Longitude.
    #[serde(default)]
    pub lon: Option<f64>,
    /// Whether the stream is online (default true).
    #[serde(default)]
    pub online: Option<bool>,
    /// Input options of this stream only.
    #[serde(default)]
    pub input_options: Vec<String>,
}

/// The provider.
pub struct StaticList;

fn render(template: &str, key: &str, name: &str) -> String {
    template.replace("{key}", key).replace("{name}", name)
}

impl Provider for StaticList {
    type Config = Config;

    fn describe() -> ProviderInfo {
        ProviderInfo::new(
            "static-list",
            env!("CARGO_PKG_VERSION"),
            "Streams listed in the instance configuration",
        )
    }

    fn init(config: &Config) -> Result<ProviderInfo> {
        let mut info = Self::describe();
        if let Some(o) = &config.input_options {
            info.input_options = o.clone();
        }
        if let Some(o) = &config.output_options {
            info.output_options = o.clone();
        }
        // Fail early on entries that could never produce a source.
        Self::list_streams(config)?;
        Ok(info)
    }

    fn list_streams(config: &Config) -> Result<Vec<Stream>> {
        let mut seen = std::collections::HashSet::new();
        config
            .streams
            .iter()
            .map(|entry| {
                let named = match entry {
                    Entry::Key(key) => Named {
                        key: key.clone(),
                        name: None,
                        source: None,
                        lat: None,
                        lon: None,
                        online: None,
                        input_options: Vec::new(),
                    },
                    Entry::Named(n) => Named {
                        key: n.key.clone(),
                        name: n.name.clone(),
                        source: n.source.clone(),
                        lat: n.lat,
                        lon: n.lon,
                        online: n.online,
                        input_options: n.input_options.clone(),
                    },
                };
                if !seen.insert(named.key.clone()) {
                    return Err(Error::config(format!(
                        "stream key {:?} is listed twice",
                        named.key
                    )));
                }
                let name = named.name.unwrap_or_else(|| named.key.clone());
                let source = match (named.source, &config.source_template) {
                    (Some(s), _) => s,
                    (None, Some(t)) => render(t, &named.key, &name),
                    (None, None) => {
                        return Err(Error::config(format!(
                            "stream {:?} has no source and the config has no source_template",
                            named.key
                        )))
                    }
                };
                let mut stream =
                    Stream::new(named.key, source, name).with_online(named.online.unwrap_or(true));
                stream.input_options = named.input_options;
                match (named.lat, named.lon) {
                    (Some(lat), Some(lon)) => stream = stream.with_geo(lat, lon),
                    (None, None) => {}
                    _ => {
                        return Err(Error::config(format!(
                            "stream {:?} needs both lat and lon",
                            stream.key
                        )))
                    }
                }
                Ok(stream)
            })
            .collect()
    }
}

export_provider!(StaticList);

#[cfg(test)]
mod tests {
    use super::*;
    use dss_provider_sdk::{parse_config, ErrorCode};

    fn list(json: &str) -> Result<Vec<Stream>> {
        StaticList::list_streams(&parse_config(json)?)
    }

    #[test]
    fn list_mode_uses_the_template() {
        let s =
            list(r#"{"source_template":"rtsp://cams.example/{key}","streams":["a","b"]}"#).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].source, "rtsp://cams.example/a");
        assert_eq!(s[1].name, "b");
        assert!(s[0].online);
    }

    #[test]
    fn named_mode_keeps_name_geo_and_source() {
        let s = list(
            r#"{"streams":[{"key":"lobby","name":"Lobby","lat":-22.9,"lon":-43.2,"source":"rtmp://x/y","online":false}]}"#,
        )
        .unwrap();
        assert_eq!(s[0].name, "Lobby");
        assert_eq!(s[0].geo.unwrap().lat, -22.9);
        assert_eq!(s[0].source, "rtmp://x/y");
        assert!(!s[0].online);
    }

    #[test]
    fn template_can_use_the_name() {
        let s = list(
            r#"{"source_template":"http://c/{name}.mjpg","streams":[{"key":"k","name":"Gate"}]}"#,
        )
        .unwrap();
        assert_eq!(s[0].source, "http://c/Gate.mjpg");
    }

    #[test]
    fn missing_source_is_a_config_error() {
        let e = list(r#"{"streams":["a"]}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidConfig);
        assert!(e.message.contains("source_template"), "{e}");
    }

    #[test]
    fn duplicate_keys_and_half_geo_are_rejected() {
        let e = list(r#"{"source_template":"x","streams":["a","a"]}"#).unwrap_err();
        assert!(e.message.contains("twice"));
        let e = list(r#"{"source_template":"x","streams":[{"key":"a","lat":1.0}]}"#).unwrap_err();
        assert!(e.message.contains("lat and lon"));
    }

    #[test]
    fn unknown_fields_are_reported() {
        let e = parse_config::<Config>(r#"{"strems":[]}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidConfig);
        assert!(e.message.contains("strems"), "{e}");
    }

    #[test]
    fn init_applies_option_overrides() {
        let c = parse_config(r#"{"input_options":["-re","-f","lavfi"],"streams":[]}"#).unwrap();
        let info = StaticList::init(&c).unwrap();
        assert_eq!(info.input_options, ["-re", "-f", "lavfi"]);
        assert_eq!(info.output_options, ["-c", "copy"]);
    }
}
