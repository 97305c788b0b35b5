//! How long a test waits for what it expects (a stream live, a log line,
//! a provider settled) before it fails: `use dss_e2e::timeout::T20 as T;`.
//! Generous, so that a busy machine does not fail a test; a test that
//! passes waits only as long as the host takes.

use std::time::Duration;

/// 20 s: on-demand streams, media, hot swap, the store.
pub const T20: Duration = Duration::from_secs(20);
/// 30 s: bounds, trust boundaries, the fault suite, the web page.
pub const T30: Duration = Duration::from_secs(30);
/// 40 s: the mobile ingest.
pub const T40: Duration = Duration::from_secs(40);
/// 60 s: start-up, with modules still compiling.
pub const T60: Duration = Duration::from_secs(60);
