//! A provider instance file `providers.d/NAME.toml`: the module it runs,
//! its settings and its `[config]`, its thumbnails and its recording.

use super::ConfigError;
use crate::ids;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Whose thumbnails an instance makes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThumbnailMode {
    /// Live streams' (from the stream already flowing) and, in periodic
    /// rounds, idle ones' (one short connection to each source per round).
    All,
    /// Only live streams' (default: polling every camera costs its owner).
    #[default]
    Live,
    /// None.
    Off,
}

/// `[record]` of an instance file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InstanceRecord {
    /// Whether the instance's streams record (a `[record]` table alone
    /// turns it on, as in the original).
    pub enabled: bool,
    /// Only these streams (keys or full ids); empty: all of them.
    pub streams: Vec<String>,
    /// Seconds per segment, a divisor of a day; segments start at
    /// multiples of it (epoch aligned).
    pub interval: u64,
    /// Container: `ts` (default: plays in every player, keeps every
    /// packet written before a crash, timestamps continuous from one
    /// segment to the next; exports are MP4 for browsers), `mp4`
    /// (fragmented; a crash loses the fragment in progress), `mkv`, `flv`.
    pub format: String,
    /// Segments older than this many hours are deleted (0: kept).
    pub max_age_hours: f64,
    /// This instance's segments are trimmed, oldest first, to this many
    /// GiB (0: no bound besides `[record] max_total_gib`).
    pub max_total_gib: f64,
}

impl Default for InstanceRecord {
    fn default() -> Self {
        InstanceRecord {
            enabled: true,
            streams: Vec::new(),
            interval: 3600,
            format: "ts".into(),
            max_age_hours: 0.0,
            max_total_gib: 0.0,
        }
    }
}

/// The containers segments may be written in.
pub const RECORD_FORMATS: &[&str] = &["mp4", "mkv", "ts", "flv"];

/// Why an instance's `[record]` is refused: which setting, with its value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    /// A container not in [`RECORD_FORMATS`].
    #[error("[record] format {format:?}: one of {}", RECORD_FORMATS.join(", "))]
    Format {
        /// The format set.
        format: String,
    },
    /// An interval that does not divide a day.
    #[error("[record] interval {interval}: seconds that divide a day (86400), such as 60, 300, 600, 900, 1800 or 3600")]
    Interval {
        /// The interval set, in seconds.
        interval: u64,
    },
    /// A negative (or NaN) age or size bound.
    #[error("[record] max_age_hours and max_total_gib cannot be negative")]
    Negative {
        /// `max_age_hours` as set.
        max_age_hours: f64,
        /// `max_total_gib` as set.
        max_total_gib: f64,
    },
}

impl InstanceRecord {
    /// Checks the values; the error says which.
    pub fn check(&self) -> Result<(), RecordError> {
        if !RECORD_FORMATS.contains(&self.format.as_str()) {
            return Err(RecordError::Format {
                format: self.format.clone(),
            });
        }
        // FFmpeg cuts at multiples of the interval within the UTC day:
        // epoch-aligned only when the interval divides a day.
        if !(1..=86_400).contains(&self.interval) || 86_400 % self.interval != 0 {
            return Err(RecordError::Interval {
                interval: self.interval,
            });
        }
        if !(self.max_age_hours >= 0.0 && self.max_total_gib >= 0.0) {
            return Err(RecordError::Negative {
                max_age_hours: self.max_age_hours,
                max_total_gib: self.max_total_gib,
            });
        }
        Ok(())
    }

    /// Whether stream `id` (key `key`) records.
    pub fn covers(&self, id: &str, key: &str) -> bool {
        self.enabled
            && (self.streams.is_empty() || self.streams.iter().any(|s| s == id || s == key))
    }
}

/// A provider instance: `providers.d/NAME.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    /// The module (file stem of a `.wasm` in the modules directory).
    pub module: String,
    /// The id prefix of its streams (default: NAME).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Whether the instance runs.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Hosts `http-get` may reach (`host` or `host:port`).
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// Lets host names in `allow_hosts` resolve to private, loopback or
    /// link-local addresses (IP addresses listed literally are always
    /// allowed: the operator named them), and lets stream sources use any
    /// non-public address (literal or resolved).
    #[serde(default)]
    pub allow_private: bool,
    /// Hosts stream sources may name: `host`, `host:port`, `*.domain`
    /// (subdomains), `*` (any host), an address or a network (`10.0.0.0/8`).
    /// Unset: the entries of `allow_hosts`.
    #[serde(default)]
    pub allow_sources: Option<Vec<String>>,
    /// Lets stream sources be `udp://` or `rtp://` (FFmpeg receives them on
    /// a local port, connected to the source host).
    #[serde(default)]
    pub allow_udp: bool,
    /// Seconds between listings, overriding the provider's default.
    #[serde(default)]
    pub refresh_seconds: Option<u32>,
    /// FFmpeg input options, overriding the provider's defaults.
    #[serde(default)]
    pub input_options: Option<Vec<String>>,
    /// FFmpeg output options, overriding the provider's defaults.
    #[serde(default)]
    pub output_options: Option<Vec<String>>,
    /// Limit overrides.
    #[serde(default)]
    pub limits: toml::Table,
    /// List on first use (an API request or a viewer of one of its
    /// streams) instead of at start.
    #[serde(default)]
    pub lazy: bool,
    /// Seconds a persisted listing is trusted at start: younger than this,
    /// it is served without asking the provider until it expires.
    #[serde(default)]
    pub cache_seconds: u64,
    /// A listing file (JSON array of streams: key, source, name, geo,
    /// online, ...) served when the provider fails and nothing better is
    /// known. A relative path is read inside the instance file's
    /// directory (refused if it leads out, by `..` or a symlink); an
    /// absolute one is read as given.
    #[serde(default)]
    pub fallback: Option<PathBuf>,
    /// Whose thumbnails are made: `live` (default), `all` (idle streams
    /// too, polled in rounds) or `off`.
    #[serde(default)]
    pub thumbnails: ThumbnailMode,
    /// Recording of this instance's streams.
    #[serde(default)]
    pub record: Option<InstanceRecord>,
    /// Passed to the provider's `init` and every call, as JSON.
    #[serde(default)]
    pub config: toml::Table,
    /// Where the instance's secrets come from (`name = { env = "VAR" }` or
    /// `{ file = "PATH" }`); a provider sends them in request headers by
    /// name and never sees them (see [`crate::secrets`]).
    #[serde(default)]
    pub secrets: std::collections::BTreeMap<String, crate::secrets::SecretSource>,
    /// The secrets' values, read when the file is loaded; never serialized.
    #[serde(skip)]
    pub secret_values: std::sync::Arc<crate::secrets::Secrets>,
}

fn yes() -> bool {
    true
}

impl InstanceConfig {
    /// Reads and checks `path`; the instance id is the file stem.
    pub fn load(path: &Path) -> Result<(String, InstanceConfig), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| invalid("file name is not UTF-8".into()))?
            .to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let mut inst: InstanceConfig = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        inst.secret_values = std::sync::Arc::new(
            crate::secrets::Secrets::load(&inst.secrets, dir)
                .map_err(|e| invalid(e.to_string()))?,
        );
        let id = inst.prefix.clone().unwrap_or_else(|| name.clone());
        ids::check_provider_id(&id).map_err(|e| invalid(e.to_string()))?;
        inst.source_grant().map_err(|e| invalid(e.to_string()))?;
        if let Some(r) = &inst.record {
            r.check().map_err(|e| invalid(e.to_string()))?;
        }
        Ok((id, inst))
    }

    /// The `[config]` table as a JSON object string.
    pub fn config_json(&self) -> String {
        serde_json::to_string(&self.config).unwrap_or_else(|_| "{}".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_interval_divides_a_day() {
        let with = |interval| InstanceRecord {
            interval,
            ..InstanceRecord::default()
        };
        for ok in [1, 5, 60, 300, 3600, 7200, 86_400] {
            assert!(with(ok).check().is_ok(), "{ok}");
        }
        for bad in [0, 7, 3601, 86_401] {
            let e = with(bad).check().unwrap_err();
            assert_eq!(e, RecordError::Interval { interval: bad });
            let e = e.to_string();
            assert!(
                e.contains(&bad.to_string()) && e.contains("divide a day"),
                "{e}"
            );
        }
    }
}
