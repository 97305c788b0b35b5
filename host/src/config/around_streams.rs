//! What runs around the streams, host-wide: `[stats]`, `[thumbnails]` and
//! `[record]` (which streams record, and how, is set per instance).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[stats]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatsConfig {
    /// Seconds between saves of the streams' statistics to the store (one
    /// batch per round, only streams that changed): what a host crash can
    /// lose, and the write rate.
    pub save_interval_seconds: u64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            save_interval_seconds: 30,
        }
    }
}

/// `[thumbnails]`: the original's `[thumbnail]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThumbnailsConfig {
    /// Scaled copies besides the full-size one: file suffix (`medium` →
    /// `ID-medium.jpg`) → `WIDTHxHEIGHT`.
    pub sizes: BTreeMap<String, String>,
    /// Seconds between thumbnails of a live stream (taken from the
    /// stream's own HLS fragments: no second connection to the source).
    pub live_interval: u64,
    /// Seconds between thumbnails of a connected phone.
    pub phone_interval: u64,
    /// Seconds between rounds over idle streams (instances with
    /// `thumbnails = "all"`), from the start of one to the next.
    pub interval: u64,
    /// Seconds after start before the first round.
    pub start_after: u64,
    /// FFmpeg runs at once in a round.
    pub workers: usize,
    /// Seconds one run of a round may take before it is killed.
    pub timeout: u64,
    /// A stream whose thumbnails keep failing loses them once they are
    /// this many seconds old (0: never).
    pub delete_after: u64,
}

impl Default for ThumbnailsConfig {
    fn default() -> Self {
        ThumbnailsConfig {
            // The original's sizes.
            sizes: [("medium", "320x240"), ("small", "176x132")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            live_interval: 10,
            phone_interval: 3,
            interval: 300,
            start_after: 30,
            // A round polls cameras; a few at once is enough and spares
            // the host's cores.
            workers: 4,
            timeout: 45,
            delete_after: 3600,
        }
    }
}

/// Why a `[thumbnails] sizes` entry is refused: its name or its size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizesError {
    /// A suffix that is not 1 to 16 lowercase letters or digits.
    #[error("[thumbnails] sizes: {name:?} must be 1 to 16 lowercase letters or digits")]
    Name {
        /// The suffix.
        name: String,
    },
    /// A size that is not `WIDTHxHEIGHT` with each 16 to 4096.
    #[error("[thumbnails] sizes: {name} = {size:?} must be WIDTHxHEIGHT, 16 to 4096 each")]
    Size {
        /// The suffix.
        name: String,
        /// The size as written.
        size: String,
    },
}

impl ThumbnailsConfig {
    /// The scaled sizes as (suffix, width, height); an error names a bad
    /// entry.
    pub fn scaled(&self) -> Result<Vec<(String, u32, u32)>, SizesError> {
        let mut out = Vec::new();
        for (name, size) in &self.sizes {
            if name.is_empty()
                || name.len() > 16
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            {
                return Err(SizesError::Name { name: name.clone() });
            }
            let parsed = size
                .split_once('x')
                .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
                .filter(|(w, h)| (16..=4096).contains(w) && (16..=4096).contains(h));
            let Some((w, h)) = parsed else {
                return Err(SizesError::Size {
                    name: name.clone(),
                    size: size.clone(),
                });
            };
            out.push((name.clone(), w, h));
        }
        Ok(out)
    }
}

/// `[record]` of `dss.toml`: what applies to every recording.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordConfig {
    /// The most the record directory may hold, in GiB, across all streams
    /// (oldest segments go first; 0: no bound besides the instances').
    pub max_total_gib: f64,
    /// The longest range one export may cover, in hours.
    pub max_export_hours: u64,
}

impl Default for RecordConfig {
    fn default() -> Self {
        RecordConfig {
            max_total_gib: 0.0,
            max_export_hours: 24,
        }
    }
}
