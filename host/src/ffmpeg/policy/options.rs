//! Option lists: each token an option of its side's table
//! ([`super::tables`]) or that option's value, stream specifiers where the
//! option takes one, and what the input options tell about the source.

use super::lavfi;
use super::tables::{Kind, Opt, INPUT_OPTIONS, OUTPUT_OPTIONS};
use super::values::check_value;
use super::{show, Refusal};
use std::sync::Arc;

/// Most option tokens on either side of `-i`: a full transcode with a
/// filter chain and two maps is ~30.
const MAX_OPTION_TOKENS: usize = 64;

/// Longest option token, in bytes (a `-vf` graph is the longest value).
const MAX_TOKEN_LEN: usize = lavfi::MAX_GRAPH_LEN;

/// A pair of option lists checked once, for all the streams of a listing
/// that use them (the instance's or the provider's defaults): thousands of
/// streams share the lists and the verdict instead of each holding copies.
#[derive(Debug, Clone)]
pub struct CheckedOptions {
    input: Arc<[String]>,
    output: Arc<[String]>,
    pub(super) verdict: Result<InputFacts, Refusal>,
}

impl CheckedOptions {
    /// Checks `input` (before `-i`) and `output` (after it).
    pub fn new(input: Arc<[String]>, output: Arc<[String]>) -> Self {
        let verdict = check_options(&input, Side::Input)
            .and_then(|facts| check_options(&output, Side::Output).map(|_| facts));
        CheckedOptions {
            input,
            output,
            verdict,
        }
    }

    /// The options before `-i`.
    pub fn input(&self) -> &Arc<[String]> {
        &self.input
    }

    /// The options after `-i`.
    pub fn output(&self) -> &Arc<[String]> {
        &self.output
    }
}

/// Which side of `-i` a list of options is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Input,
    Output,
}

impl Side {
    fn word(self) -> &'static str {
        match self {
            Side::Input => "input",
            Side::Output => "output",
        }
    }

    fn table(self) -> &'static [Opt] {
        match self {
            Side::Input => INPUT_OPTIONS,
            Side::Output => OUTPUT_OPTIONS,
        }
    }
}

/// What the input options say that matters for the source.
#[derive(Debug, Default, Clone)]
pub(super) struct InputFacts {
    /// `-f`.
    pub(super) format: Option<String>,
    /// `-rtsp_transport` asks for an HTTP(S) tunnel.
    pub(super) rtsp_over_http: bool,
}

/// Checks `tokens` as options of `side`.
pub(super) fn check_options(tokens: &[String], side: Side) -> Result<InputFacts, Refusal> {
    let w = side.word();
    if tokens.len() > MAX_OPTION_TOKENS {
        return Err(Refusal::new(format!(
            "{} {w} option tokens, limit {MAX_OPTION_TOKENS}",
            tokens.len()
        )));
    }
    let mut facts = InputFacts::default();
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        let Some(body) = token.strip_prefix('-').filter(|b| !b.is_empty()) else {
            return Err(Refusal::new(format!(
                "{w} option {} is not an option (positional words are refused)",
                show(token)
            )));
        };
        let (base, spec) = match body.split_once(':') {
            Some((b, s)) => (b, Some(s)),
            None => (body, None),
        };
        let Some(o) = side.table().iter().find(|o| o.name == base) else {
            return Err(Refusal::new(format!(
                "{w} option {} is not allowed",
                show(token)
            )));
        };
        if let Some(s) = spec {
            if !o.per_stream {
                return Err(Refusal::new(format!(
                    "{w} option -{} takes no stream specifier",
                    o.name
                )));
            }
            check_specifier(s)
                .map_err(|why| Refusal::new(format!("{w} option {}: {why}", show(token))))?;
        }
        if matches!(o.kind, Kind::Switch) {
            i += 1;
            continue;
        }
        let Some(value) = tokens.get(i + 1) else {
            return Err(Refusal::new(format!("{w} option -{body} needs a value")));
        };
        if value.len() > MAX_TOKEN_LEN {
            return Err(Refusal::new(format!(
                "value of {w} option -{} is {} bytes, limit {MAX_TOKEN_LEN}",
                o.name,
                value.len()
            )));
        }
        check_value(o.kind, value).map_err(|why| {
            Refusal::new(format!(
                "value {} of {w} option -{} is refused: {why}",
                show(value),
                o.name
            ))
        })?;
        if o.name == "f" {
            if facts.format.is_some() {
                return Err(Refusal::new(format!("{w} option -f is given twice")));
            }
            facts.format = Some(value.clone());
        }
        if o.name == "rtsp_transport" && value.contains("http") {
            facts.rtsp_over_http = true;
        }
        i += 2;
    }
    Ok(facts)
}

/// Why a stream specifier is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum SpecifierError {
    /// `t`: attachments (files carried in the container).
    #[error("stream specifier \"t\" (attachments) is refused")]
    Attachments,
    /// Anything but `v`, `a`, `s`, `d`, `V` (optionally `:N`) or `N`.
    #[error("stream specifier {} is not allowed (v, a, s, d or V, optionally :N, or N)", show(.specifier))]
    NotAllowed {
        /// The specifier.
        specifier: String,
    },
}

/// A stream specifier: `v`, `a`, `s`, `d`, `V`, optionally `:N`, or `N`.
pub(super) fn check_specifier(s: &str) -> Result<(), SpecifierError> {
    // Stream indexes up to 999: no camera or file has more streams.
    let index = |n: &str| !n.is_empty() && n.len() <= 3 && n.bytes().all(|c| c.is_ascii_digit());
    let (kind, rest) = match s.split_once(':') {
        Some((k, r)) => (k, Some(r)),
        None => (s, None),
    };
    if kind == "t" {
        return Err(SpecifierError::Attachments);
    }
    let ok = match rest {
        None => ["v", "a", "s", "d", "V"].contains(&kind) || index(kind),
        Some(r) => ["v", "a", "s", "d", "V"].contains(&kind) && index(r),
    };
    if ok {
        Ok(())
    } else {
        Err(SpecifierError::NotAllowed {
            specifier: s.to_string(),
        })
    }
}
