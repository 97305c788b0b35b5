//! Idiomatic Rust types for the WIT records, and their conversions.

use crate::bindings::dss::provider::types as wit;
use serde::{Deserialize, Serialize};

/// A result whose error is a provider [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A geographic position in WGS 84 degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Geo {
    /// Latitude, -90 to 90.
    pub lat: f64,
    /// Longitude, -180 to 180.
    pub lon: f64,
}

/// One stream a provider offers (the WIT `stream-source`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stream {
    /// Unique within the provider: `[A-Za-z0-9_.-]+`, no leading dot, at
    /// most 64 characters.
    pub key: String,
    /// What FFmpeg reads.
    pub source: String,
    /// Human-readable name.
    pub name: String,
    /// Position, when known.
    pub geo: Option<Geo>,
    /// False when the upstream says the camera is off.
    pub online: bool,
    /// FFmpeg input options for this stream only (empty: provider defaults).
    pub input_options: Vec<String>,
    /// Free-form metadata.
    pub tags: Vec<(String, String)>,
}

impl Stream {
    /// An online stream with no position, options or tags.
    pub fn new(key: impl Into<String>, source: impl Into<String>, name: impl Into<String>) -> Self {
        Stream {
            key: key.into(),
            source: source.into(),
            name: name.into(),
            geo: None,
            online: true,
            input_options: Vec::new(),
            tags: Vec::new(),
        }
    }

    /// Sets the position.
    pub fn with_geo(mut self, lat: f64, lon: f64) -> Self {
        self.geo = Some(Geo { lat, lon });
        self
    }

    /// Sets whether the stream is online.
    pub fn with_online(mut self, online: bool) -> Self {
        self.online = online;
        self
    }

    /// Adds a tag.
    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push((key.into(), value.into()));
        self
    }
}

/// What a provider is, and its defaults (the WIT `provider-info`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderInfo {
    /// Short name of the provider type.
    pub name: String,
    /// Version of the module (semver).
    pub version: String,
    /// One line on what it provides.
    pub description: String,
    /// Default FFmpeg options before `-i`.
    pub input_options: Vec<String>,
    /// Default FFmpeg options after `-i`.
    pub output_options: Vec<String>,
    /// Seconds between listings; 0: only at start and on config change.
    pub refresh_seconds: u32,
    /// Free-form information.
    pub extra: Vec<(String, String)>,
}

impl ProviderInfo {
    /// Information with `-c copy` output, no input options and no refresh.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        ProviderInfo {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            input_options: Vec::new(),
            output_options: vec!["-c".into(), "copy".into()],
            refresh_seconds: 0,
            extra: Vec::new(),
        }
    }
}

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The configuration is missing something or malformed.
    InvalidConfig,
    /// An upstream request failed or was refused.
    Upstream,
    /// Upstream data could not be parsed.
    Parse,
    /// Anything else.
    Internal,
}

/// A failure reported to the host, with a message for the operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Error {
    /// The kind of failure.
    pub code: ErrorCode,
    /// What went wrong.
    pub message: String,
}

impl Error {
    /// An error of `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }

    /// An `invalid-config` error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidConfig, message)
    }

    /// An `upstream` error.
    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Upstream, message)
    }

    /// A `parse` error.
    pub fn parse(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Parse, message)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

fn tags_to_wit(tags: Vec<(String, String)>) -> Vec<wit::Tag> {
    tags.into_iter()
        .map(|(key, value)| wit::Tag { key, value })
        .collect()
}

impl From<Stream> for wit::StreamSource {
    fn from(s: Stream) -> Self {
        wit::StreamSource {
            key: s.key,
            source: s.source,
            name: s.name,
            geo: s.geo.map(|g| wit::Geo {
                lat: g.lat,
                lon: g.lon,
            }),
            online: s.online,
            input_options: s.input_options,
            tags: tags_to_wit(s.tags),
        }
    }
}

impl From<ProviderInfo> for wit::ProviderInfo {
    fn from(p: ProviderInfo) -> Self {
        wit::ProviderInfo {
            name: p.name,
            version: p.version,
            description: p.description,
            input_options: p.input_options,
            output_options: p.output_options,
            refresh_seconds: p.refresh_seconds,
            extra: tags_to_wit(p.extra),
        }
    }
}

impl From<Error> for wit::Error {
    fn from(e: Error) -> Self {
        wit::Error {
            code: match e.code {
                ErrorCode::InvalidConfig => wit::ErrorCode::InvalidConfig,
                ErrorCode::Upstream => wit::ErrorCode::Upstream,
                ErrorCode::Parse => wit::ErrorCode::Parse,
                ErrorCode::Internal => wit::ErrorCode::Internal,
            },
            message: e.message,
        }
    }
}
