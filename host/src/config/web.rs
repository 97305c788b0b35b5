//! `[web]`: the web page and its map.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[web]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Directory served at `/`.
    pub dir: PathBuf,
    /// A tile URL template (`https://tile.example/{z}/{x}/{y}.png`) for the
    /// map's base layer; unset, the page draws its bundled coastlines and
    /// fetches nothing from outside.
    pub tiles: Option<String>,
    /// The tiles' attribution (shown on the map).
    pub attribution: String,
    /// Where the map opens (`[lat, lon]`); unset: fitted to the markers.
    pub center: Option<[f64; 2]>,
    /// The map's zoom with `center`.
    pub zoom: Option<u8>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            dir: PathBuf::from("www"),
            tiles: None,
            attribution: String::new(),
            center: None,
            zoom: None,
        }
    }
}
