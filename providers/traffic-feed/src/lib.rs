//! `traffic-feed`: downloads a camera list over HTTP through the host and
//! parses it. Formats: `json` (an array of objects with configurable field
//! names) and `cetrio-js`, the JavaScript of the original DSS's city
//! traffic-camera feed (`new google.maps.LatLng(lat, lon)` followed on the
//! next line by `addCam(map, c, ID, 'NAME', 'STATUS')`).
//!
//! ```toml
//! [config]
//! url = "http://feed.example/cameras.json"
//! format = "json"                      # or "cetrio-js"
//! source_template = "rtsp://feed.example/cam{key}"
//! refresh_seconds = 300
//! fields = { key = "id", name = "name", lat = "lat", lon = "lon", status = "status" }
//! headers = { accept = "application/json" }
//! # The API key: the header carries the instance's secret `city_key`
//! # (`[secrets] city_key = { env = "CITY_KEY" }`), which the provider never sees.
//! secret_headers = { "x-api-key" = "city_key" }
//! ```

use dss_provider_sdk::host::{self, Level};
use dss_provider_sdk::{export_provider, Error, Provider, ProviderInfo, Result, Stream};
use serde::Deserialize;
use serde_json::Value;

/// The instance configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the camera list is downloaded from (`http` or `https`).
    pub url: String,
    /// Request headers sent with text values.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Request headers whose value is one of the instance's secrets:
    /// header name → secret name.
    #[serde(default)]
    pub secret_headers: std::collections::BTreeMap<String, String>,
    /// How it is parsed.
    #[serde(default)]
    pub format: Format,
    /// How a stream's source is made: `{key}` and `{name}` are replaced.
    /// With `json`, a `fields.source` field takes precedence.
    #[serde(default)]
    pub source_template: Option<String>,
    /// Seconds between downloads (default 300).
    #[serde(default = "default_refresh")]
    pub refresh_seconds: u32,
    /// Field names of the `json` format.
    #[serde(default)]
    pub fields: Fields,
    /// For `json`: the field of the top-level object that holds the array,
    /// when the document is not an array itself.
    #[serde(default)]
    pub list_field: Option<String>,
    /// A status containing this text means offline (default `Desligado`,
    /// as in the original feed; compared case-insensitively).
    #[serde(default = "default_offline")]
    pub offline_marker: String,
    /// Default FFmpeg input options.
    #[serde(default)]
    pub input_options: Option<Vec<String>>,
    /// Default FFmpeg output options.
    #[serde(default)]
    pub output_options: Option<Vec<String>>,
}

fn default_refresh() -> u32 {
    300
}

fn default_offline() -> String {
    "Desligado".into()
}

/// The formats understood.
#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// An array of objects.
    #[default]
    Json,
    /// The original DSS's city traffic-camera JavaScript.
    CetrioJs,
}

/// Field names of the `json` format.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fields {
    /// The key (string or number).
    pub key: String,
    /// The display name.
    pub name: String,
    /// Latitude (number or numeric string).
    pub lat: String,
    /// Longitude.
    pub lon: String,
    /// Status: a boolean, a number (0 = offline) or a string (offline when
    /// it contains `offline_marker` or is `offline`/`off`/`false`).
    pub status: String,
    /// An optional field holding the source URL.
    pub source: String,
}

impl Default for Fields {
    fn default() -> Self {
        Fields {
            key: "id".into(),
            name: "name".into(),
            lat: "lat".into(),
            lon: "lon".into(),
            status: "status".into(),
            source: "source".into(),
        }
    }
}

/// The provider.
pub struct TrafficFeed;

impl Provider for TrafficFeed {
    type Config = Config;

    fn describe() -> ProviderInfo {
        let mut info = ProviderInfo::new(
            "traffic-feed",
            env!("CARGO_PKG_VERSION"),
            "Cameras from a downloaded list (JSON or the cetrio-js traffic feed)",
        );
        info.refresh_seconds = default_refresh();
        info
    }

    fn init(config: &Config) -> Result<ProviderInfo> {
        if !(config.url.starts_with("http://") || config.url.starts_with("https://")) {
            return Err(Error::config(format!(
                "url {:?} must start with http:// or https://",
                config.url
            )));
        }
        let mut info = Self::describe();
        info.refresh_seconds = config.refresh_seconds;
        if let Some(o) = &config.input_options {
            info.input_options = o.clone();
        }
        if let Some(o) = &config.output_options {
            info.output_options = o.clone();
        }
        Ok(info)
    }

    fn list_streams(config: &Config) -> Result<Vec<Stream>> {
        let mut request = host::Request::get(&config.url);
        for (name, value) in &config.headers {
            request = request.header(name, value);
        }
        for (name, secret) in &config.secret_headers {
            request = request.secret_header(name, secret);
        }
        let resp = host::http_request_ok(&request)?;
        let text = decode(&resp.body);
        let streams = match config.format {
            Format::Json => parse_json(config, &text)?,
            Format::CetrioJs => parse_cetrio(config, &text)?,
        };
        host::log(
            Level::Debug,
            &format!("{} cameras from {}", streams.len(), config.url),
        );
        Ok(streams)
    }
}

export_provider!(TrafficFeed);

/// UTF-8 when valid, else Latin-1 (the original feed's encoding).
fn decode(body: &[u8]) -> String {
    match std::str::from_utf8(body) {
        Ok(s) => s.to_string(),
        Err(_) => body.iter().map(|&b| b as char).collect(),
    }
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn source_for(config: &Config, key: &str, name: &str) -> Result<String> {
    match &config.source_template {
        Some(t) => Ok(t.replace("{key}", key).replace("{name}", name)),
        None => Err(Error::config(format!(
            "camera {key:?} has no source field and the config has no source_template"
        ))),
    }
}

fn offline(config: &Config, status: &str) -> bool {
    let s = status.trim().to_lowercase();
    s.contains(&config.offline_marker.to_lowercase())
        || matches!(s.as_str(), "offline" | "off" | "false")
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Parses the `json` format.
pub fn parse_json(config: &Config, text: &str) -> Result<Vec<Stream>> {
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| Error::parse(format!("camera list is not JSON: {e}")))?;
    let items = match (&config.list_field, &doc) {
        (None, Value::Array(items)) => items,
        (Some(field), Value::Object(obj)) => match obj.get(field) {
            Some(Value::Array(items)) => items,
            _ => return Err(Error::parse(format!("field {field:?} is not an array"))),
        },
        (None, _) => {
            return Err(Error::parse(
                "camera list is not a JSON array (set list_field?)",
            ))
        }
        (Some(field), _) => {
            return Err(Error::parse(format!(
                "camera list is not an object holding {field:?}"
            )))
        }
    };
    let f = &config.fields;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some(key) = item.get(&f.key).and_then(as_text) else {
            return Err(Error::parse(format!("item {i} has no {:?} field", f.key)));
        };
        if !valid_key(&key) {
            host::log(
                Level::Warn,
                &format!("skipping item {i}: invalid key {key:?}"),
            );
            continue;
        }
        let name = item
            .get(&f.name)
            .and_then(as_text)
            .unwrap_or_else(|| key.clone());
        let source = match item.get(&f.source).and_then(as_text) {
            Some(s) => s,
            None => source_for(config, &key, &name)?,
        };
        let online = match item.get(&f.status) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_f64() != Some(0.0),
            Some(Value::String(s)) => !offline(config, s),
            _ => true,
        };
        let mut stream = Stream::new(key, source, name).with_online(online);
        if let (Some(lat), Some(lon)) = (
            item.get(&f.lat).and_then(as_f64),
            item.get(&f.lon).and_then(as_f64),
        ) {
            stream = stream.with_geo(lat, lon);
        }
        out.push(stream);
    }
    Ok(out)
}

/// Parses the `cetrio-js` format with the original DSS's regular expression.
pub fn parse_cetrio(config: &Config, text: &str) -> Result<Vec<Stream>> {
    let re = regex::Regex::new(
        r"LatLng\(\s*([\d\.-]+)\s*,\s*([\d\.-]+)\s*\).*?\n.*?(\d+).*?'(.*?)'.*?'(.*?)'",
    )
    .map_err(|e| Error::new(dss_provider_sdk::ErrorCode::Internal, e.to_string()))?;
    let mut out = Vec::new();
    for cap in re.captures_iter(text) {
        let (lat, lon) = (cap[1].parse::<f64>(), cap[2].parse::<f64>());
        let (Ok(lat), Ok(lon)) = (lat, lon) else {
            host::log(
                Level::Warn,
                &format!("skipping camera {}: bad coordinates", &cap[3]),
            );
            continue;
        };
        let key = cap[3].to_string();
        let name = cap[4].to_string();
        let source = source_for(config, &key, &name)?;
        let online = !cap[5].contains(&config.offline_marker);
        out.push(
            Stream::new(key, source, name)
                .with_geo(lat, lon)
                .with_online(online)
                .with_tag("status", &cap[5]),
        );
    }
    if out.is_empty() && !text.trim().is_empty() {
        return Err(Error::parse("no camera found in the cetrio-js feed"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dss_provider_sdk::{host::HeaderValue, parse_config, testing::MockHost, ErrorCode};

    const CETRIO: &str = "function init() {\n\
        var c = new google.maps.LatLng(-22.90026953385686, -43.17699603271244);\n\
        addCam(map, c, 1, 'Av. Pres.Vargas X R. 1º Março', 'Ligado');\n\
        var c = new google.maps.LatLng( -22.9125 , -43.2301 );\n\
        addCam(map, c, 27, 'Túnel Rebouças', 'Desligado');\n}\n";

    fn config(json: &str) -> Config {
        parse_config(json).unwrap()
    }

    #[test]
    fn cetrio_js_parses_ids_names_geo_and_status() {
        let c = config(
            r#"{"url":"http://f/x.js","format":"cetrio-js","source_template":"rtsp://f/cam{key}"}"#,
        );
        let s = parse_cetrio(&c, CETRIO).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].key, "1");
        assert_eq!(s[0].name, "Av. Pres.Vargas X R. 1º Março");
        assert_eq!(s[0].geo.unwrap().lat, -22.90026953385686);
        assert!(s[0].online);
        assert_eq!(s[1].key, "27");
        assert_eq!(s[1].source, "rtsp://f/cam27");
        assert!(!s[1].online, "Desligado means offline");
    }

    #[test]
    fn cetrio_latin1_bodies_are_decoded() {
        let latin1: Vec<u8> = "LatLng(1.0, 2.0);\naddCam(map, c, 5, 'Pra\u{e7}a', 'Ligado');"
            .chars()
            .map(|c| c as u8)
            .collect();
        let c =
            config(r#"{"url":"http://f/x.js","format":"cetrio-js","source_template":"x{key}"}"#);
        let s = parse_cetrio(&c, &decode(&latin1)).unwrap();
        assert_eq!(s[0].name, "Praça");
    }

    #[test]
    fn json_with_custom_fields() {
        let c = config(
            r#"{"url":"http://f/c.json","source_template":"rtsp://f/{key}",
                "fields":{"key":"code","name":"title","lat":"y","lon":"x","status":"state"}}"#,
        );
        let body = r#"[{"code":7,"title":"Bridge","y":"-22.1","x":-43.5,"state":"online"},
                       {"code":"a b","title":"bad key"},
                       {"code":"k2","state":false}]"#;
        let s = parse_json(&c, body).unwrap();
        assert_eq!(s.len(), 2, "the invalid key is skipped");
        assert_eq!(s[0].key, "7");
        assert_eq!(s[0].geo.unwrap().lat, -22.1);
        assert!(s[0].online);
        assert_eq!(s[1].name, "k2");
        assert!(!s[1].online);
        assert!(s[1].geo.is_none());
    }

    #[test]
    fn json_list_field_and_source_field() {
        let c = config(r#"{"url":"http://f/c.json","list_field":"cameras"}"#);
        let s = parse_json(&c, r#"{"cameras":[{"id":"a","source":"rtmp://up/a"}]}"#).unwrap();
        assert_eq!(s[0].source, "rtmp://up/a");
        let e = parse_json(&c, r#"[{"id":"a"}]"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::Parse);
    }

    #[test]
    fn list_streams_downloads_through_the_host() {
        let c = config(r#"{"url":"http://f/c.json","source_template":"s/{key}"}"#);
        let mock = MockHost::new().respond("http://f/c.json", 200, r#"[{"id":"a"}]"#);
        let (r, mock) = mock.run(|| TrafficFeed::list_streams(&c));
        assert_eq!(r.unwrap()[0].source, "s/a");
        assert_eq!(mock.requests, ["http://f/c.json"]);
    }

    #[test]
    fn headers_are_sent_and_secrets_only_by_name() {
        let c = config(
            r#"{"url":"https://f/c.json","source_template":"s/{key}",
                "headers":{"accept":"application/json"},
                "secret_headers":{"x-api-key":"city_key"}}"#,
        );
        let mock = MockHost::new().respond("https://f/c.json", 200, r#"[{"id":"a"}]"#);
        let (r, mock) = mock.run(|| TrafficFeed::list_streams(&c));
        assert_eq!(r.unwrap().len(), 1);
        let sent = &mock.sent[0].headers;
        assert!(sent.contains(&(
            "accept".into(),
            HeaderValue::Text("application/json".into())
        )));
        assert!(sent.contains(&("x-api-key".into(), HeaderValue::Secret("city_key".into()))));
    }

    #[test]
    fn upstream_errors_are_reported() {
        let c = config(r#"{"url":"http://f/c.json","source_template":"s/{key}"}"#);
        let (r, _) = MockHost::new()
            .fail("http://f/c.json", "host f is not in allow_hosts")
            .run(|| TrafficFeed::list_streams(&c));
        let e = r.unwrap_err();
        assert_eq!(e.code, ErrorCode::Upstream);
        assert!(e.message.contains("allow_hosts"));
        let (r, _) = MockHost::new()
            .respond("http://f/c.json", 503, "down")
            .run(|| TrafficFeed::list_streams(&c));
        assert!(r.unwrap_err().message.contains("503"));
    }

    #[test]
    fn init_checks_the_url() {
        let e = TrafficFeed::init(&config(r#"{"url":"ftp://x"}"#)).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidConfig);
        let info =
            TrafficFeed::init(&config(r#"{"url":"http://x","refresh_seconds":60}"#)).unwrap();
        assert_eq!(info.refresh_seconds, 60);
    }
}
