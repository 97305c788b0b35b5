//! The FFmpeg policy: the one allow-list deciding what a stream may ask
//! FFmpeg to read and do, turning a stream's source and options into a
//! [`Plan`] or a [`Refusal`].
//!
//! Providers, the feeds they parse and operators' `input_options` /
//! `output_options` overrides all go through [`Plan::check`]; nothing else
//! builds a plan from outside input ([`Plan::ingest`] is for the
//! host's own ingest). The rules:
//!
//! * every token is an allowed option name or that option's value; a word
//!   that is neither (FFmpeg would take it for an extra output file) is
//!   refused, and so is any option not in the allow-list of its side
//!   (`INPUT_OPTIONS` before `-i`, `OUTPUT_OPTIONS` after it, both in
//!   `tables.rs`);
//! * each value is checked by kind (number in a range, name from a list,
//!   size, bitrate, flags, map, bounded text, filter graph, ...);
//! * per-stream options accept the specifiers `v`, `a`, `s`, `d`, `V`
//!   (optionally `:N`) or `N`; attachments (`t`) and the rest are refused;
//! * the source is a `-f lavfi` graph of test sources and light filters
//!   ([`lavfi`]), or a URL of an allowed scheme whose host the
//!   instance's grant ([`SourceGrant`]) allows; FFmpeg gets an explicit
//!   `-protocol_whitelist` for that scheme, so nothing a stream opens can
//!   fall back to `file:`, `pipe:`, `concat:` or `subfile:`;
//! * private, loopback, link-local, multicast and other non-public
//!   addresses are refused unless the instance sets `allow_private`:
//!   literal addresses when the stream is listed, resolved host names when
//!   FFmpeg is about to start ([`Plan::check_addresses`]).
//!
//! The parts, one concern a file:
//!
//! * `tables.rs`: every allow-list of options and values, each entry with
//!   its reason, in one file for review;
//! * `options.rs`: option lists checked token by token against the tables,
//!   stream specifiers, [`CheckedOptions`];
//! * `values.rs`: an option's value checked by its kind;
//! * [`lavfi`]: filter graphs (`-f lavfi` sources, `-vf`, `-af`,
//!   `-filter`) and the filters they may use;
//! * `sources.rs`: source URLs (schemes, hosts, ports, listening
//!   parameters);
//! * `grant.rs`: the instance's [`SourceGrant`] of hosts and address kinds,
//!   checked when a stream is listed and again, resolved, before each
//!   start;
//! * `args.rs`: the plan turned into FFmpeg's arguments.

mod args;
mod grant;
pub mod lavfi;
mod options;
mod sources;
mod tables;
#[cfg(test)]
mod tests;
mod values;

pub use grant::{GrantError, SourceGrant};
pub use options::CheckedOptions;
pub use sources::Host;
pub use tables::DEMUXERS;

use super::process::SpawnError;
use lavfi::GraphUse;
use options::{check_options, Side};
use sources::parse_url;
use std::sync::Arc;

/// Longest piece of a stream's source or options quoted in a refusal.
const SHOW_MAX: usize = 48;

/// Longest source, in bytes: real camera URLs, tokens included, stay under
/// 1 KiB; a test graph is tens of bytes.
const MAX_SOURCE_LEN: usize = 4_096;

/// Why the policy refuses a stream: a message for operators that never
/// echoes unbounded input (quoted pieces are cut to a few dozen characters,
/// and URL credentials are never shown).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(String);

impl Refusal {
    /// A refusal for `message` (the policy's own checks make them; tests
    /// may too).
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Refusal(message.into())
    }

    /// The reason.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Refusal> for String {
    fn from(r: Refusal) -> String {
        r.0
    }
}

/// `s` quoted (control characters escaped) and cut to [`SHOW_MAX`]
/// characters.
fn show(s: &str) -> String {
    let cut: String = s.chars().take(SHOW_MAX).collect();
    if cut.len() < s.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// `s` cut to [`SHOW_MAX`] characters, unquoted.
fn cut(s: &str) -> String {
    s.chars().take(SHOW_MAX).collect()
}

/// What FFmpeg reads.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Input {
    /// A `-f lavfi` graph.
    Graph(Arc<str>),
    /// A network URL, with what the address check needs.
    Url {
        url: Arc<str>,
        host: Host,
        port: u16,
        whitelist: String,
        grant: Arc<SourceGrant>,
    },
    /// The host's own ingest, before a phone is connected: nothing to
    /// read yet ([`Plan::with_feeds`] gives it its FIFOs).
    Ingest,
    /// The host's own ingest: MPEG-TS FIFOs the host created and writes
    /// (one per track of a phone), in a private directory.
    Feeds(Vec<std::path::PathBuf>),
}

/// A stream's FFmpeg invocation, as the policy accepted it: options known
/// to be allowed, a source known to be of an allowed kind, and (for URLs)
/// the grant its addresses are checked against before each start. Only
/// [`Plan::check`] (and [`Plan::check_with`]) and [`Plan::ingest`] make
/// one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    input_options: Arc<[String]>,
    input: Input,
    output_options: Arc<[String]>,
}

impl Plan {
    /// The static check, done when a stream is listed: options, source
    /// syntax and scheme, host against the grant, literal addresses.
    pub fn check(
        source: &str,
        input_options: &[String],
        output_options: &[String],
        grant: &Arc<SourceGrant>,
    ) -> Result<Plan, Refusal> {
        let options = CheckedOptions::new(input_options.into(), output_options.into());
        Plan::check_with(source.into(), &options, grant)
    }

    /// [`Plan::check`] with options already checked (shared by the plans
    /// that use them, as is `source`).
    pub fn check_with(
        source: Arc<str>,
        options: &CheckedOptions,
        grant: &Arc<SourceGrant>,
    ) -> Result<Plan, Refusal> {
        let facts = options.verdict.clone()?;
        if source.is_empty() {
            return Err(Refusal::new("empty source"));
        }
        if source.len() > MAX_SOURCE_LEN {
            return Err(Refusal::new(format!(
                "source is {} bytes, limit {MAX_SOURCE_LEN}",
                source.len()
            )));
        }
        let input = if facts.format.as_deref() == Some("lavfi") {
            lavfi::check(&source, GraphUse::Source)
                .map_err(|why| Refusal::new(format!("lavfi source: {why}")))?;
            Input::Graph(source)
        } else {
            let url = parse_url(&source)?;
            grant.check_host(&url)?;
            let source = if matches!(url.scheme, "udp" | "rtp") {
                grant.connected_udp(&source)?
            } else {
                source
            };
            let mut whitelist = url.whitelist.to_string();
            if facts.rtsp_over_http && url.scheme.starts_with("rtsp") {
                whitelist.push_str(",http,https,tls");
            }
            Input::Url {
                url: source,
                port: url.port.unwrap_or_default(),
                host: url.host,
                whitelist,
                grant: grant.clone(),
            }
        };
        Ok(Plan {
            input_options: options.input().clone(),
            input,
            output_options: options.output().clone(),
        })
    }

    /// The plan of a stream of the host's own ingest (a phone): FFmpeg
    /// reads the MPEG-TS FIFOs the ingest writes, given by
    /// [`Plan::with_feeds`] once the phone is connected. Never made from a
    /// provider's source: providers list `pipe:0`, which [`Plan::check`]
    /// refuses, and the host makes this plan for its ingest instance.
    pub fn ingest(output_options: &Arc<[String]>) -> Result<Plan, Refusal> {
        check_options(output_options, Side::Output)?;
        Ok(Plan {
            input_options: Arc::from([]),
            input: Input::Ingest,
            output_options: output_options.clone(),
        })
    }

    /// Whether this is an ingest plan (its stream plays only while its
    /// phone is connected).
    pub fn is_ingest(&self) -> bool {
        matches!(self.input, Input::Ingest | Input::Feeds(_))
    }

    /// This ingest plan reading `feeds` (FIFO paths the host made).
    pub fn with_feeds(&self, feeds: Vec<std::path::PathBuf>) -> Plan {
        Plan {
            input_options: Arc::from([]),
            input: Input::Feeds(feeds),
            output_options: self.output_options.clone(),
        }
    }
}

/// The free-function form of [`Plan::argv`].
pub fn argv(plan: &Plan, output: &str) -> Vec<String> {
    plan.argv(output)
}

/// What the supervisor runs for a stream whose listing made `plan` (or
/// why it was refused), once its source's addresses pass the spawn-time
/// check.
pub async fn prepare(plan: &Result<Arc<Plan>, Refusal>) -> Result<Arc<Plan>, SpawnError> {
    let plan = plan.clone().map_err(SpawnError::Refused)?;
    plan.check_addresses().await?;
    Ok(plan)
}
