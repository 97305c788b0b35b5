//! An option's value checked by its [`Kind`]: numbers in their range,
//! names from their list, sizes, rates, bitrates, times, flags, maps,
//! bounded text, encoder parameters, bitstream filters and filter graphs.

use super::lavfi::{self, GraphError, GraphUse};
use super::options::{check_specifier, SpecifierError};
use super::show;
use super::tables::{Kind, BSFS, DEMUXERS, MAX_TEXT};
use crate::ffmpeg::bounds::{self, BoundsError};

/// Why an option's value is refused for its [`Kind`]: the variant says
/// which check failed and carries the value (or the part of it) and the
/// limits it broke; the options check quotes the whole value around it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(super) enum ValueError {
    /// Not one of a [`Kind::OneOf`] list.
    #[error("not one of the allowed values")]
    NotOneOf,
    /// A size or a rate not of its form or outside the bounds.
    #[error(transparent)]
    Bounds(BoundsError),
    /// A filter graph the allow-list refuses.
    #[error(transparent)]
    Graph(GraphError),
    /// A stream specifier (of a map) that is refused.
    #[error(transparent)]
    Specifier(SpecifierError),
    /// A bitstream filter not in [`BSFS`].
    #[error("bitstream filter {} is not allowed", show(.name))]
    Bsf {
        /// The filter's name.
        name: String,
    },
    /// An input format not in [`DEMUXERS`].
    #[error("input format not allowed (allowed: {})", DEMUXERS.join(", "))]
    Demuxer,
    /// Not a decimal integer.
    #[error("not an integer")]
    NotAnInteger,
    /// An integer outside its range.
    #[error("out of range {min} to {max}")]
    IntOutOfRange {
        /// The smallest allowed.
        min: i64,
        /// The largest allowed.
        max: i64,
    },
    /// Not a decimal number.
    #[error("not a number")]
    NotANumber,
    /// A number outside its range.
    #[error("out of range {min} to {max}")]
    FloatOutOfRange {
        /// The smallest allowed.
        min: f64,
        /// The largest allowed.
        max: f64,
    },
    /// Not a bitrate.
    #[error("not a bitrate like 2M, 500k or 128000")]
    NotABitrate,
    /// Text that is empty or longer than [`MAX_TEXT`].
    #[error("text must be 1 to {max} bytes")]
    TextLength {
        /// [`MAX_TEXT`].
        max: usize,
    },
    /// Text with a control character.
    #[error("text contains a control character")]
    TextControl,
    /// Not a time.
    #[error("not a time like 2.5 or 00:00:02.5")]
    NotATime,
    /// An encoder parameter whose key is not in the list.
    #[error("key {} is not allowed", show(.key))]
    ParamKey {
        /// The key.
        key: String,
    },
    /// An encoder parameter whose value is too long or has other
    /// characters than letters, digits and `.,_+-`.
    #[error("value of {key} is not accepted")]
    ParamValue {
        /// The (allowed) key.
        key: String,
    },
    /// Not a list of HTTP status codes or classes.
    #[error("not a list like 4xx,503")]
    NotHttpCodes,
    /// Not a codec level.
    #[error("not a level like 3.1, 4 or auto")]
    NotALevel,
    /// Flags with no flag.
    #[error("empty flags")]
    EmptyFlags,
    /// A flag not in the option's list.
    #[error("flag {} is not allowed (allowed: {})", show(.flag), .allowed.join(", "))]
    Flag {
        /// The flag.
        flag: String,
        /// The flags the option allows.
        allowed: &'static [&'static str],
    },
    /// A map of another input than the one there is.
    #[error("only input 0 exists (maps like 0:v:0 or 0:a?)")]
    MapInput,
}

/// Whether `s` is one or more ASCII digits.
fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

/// Whether `s` is digits, optionally with one `.` between digits.
fn decimal(s: &str) -> bool {
    match s.split_once('.') {
        Some((a, b)) => digits(a) && digits(b),
        None => digits(s),
    }
}

/// Checks `v` as the value of an option of `kind`; the error says why
/// not.
pub(super) fn check_value(kind: Kind, v: &str) -> Result<(), ValueError> {
    match kind {
        Kind::Switch => Ok(()),
        Kind::Int(min, max) => check_int(v, min, max),
        Kind::Float(min, max) => check_float(v, min, max),
        Kind::Rate => bounds::rate(v).map(|_| ()).map_err(ValueError::Bounds),
        Kind::OneOf(list) => {
            if list.contains(&v) {
                Ok(())
            } else {
                Err(ValueError::NotOneOf)
            }
        }
        Kind::Size => bounds::size(v).map(|_| ()).map_err(ValueError::Bounds),
        Kind::Bitrate => check_bitrate(v),
        Kind::Flags(list) => check_flags(v, list),
        Kind::Map => check_map(v),
        Kind::Text => check_text(v),
        Kind::Graph => lavfi::check(v, GraphUse::Filter).map_err(ValueError::Graph),
        Kind::Time => check_time(v),
        Kind::Params(keys) => check_params(v, keys),
        Kind::Bsf => {
            for name in v.split(',') {
                if !BSFS.contains(&name) {
                    return Err(ValueError::Bsf {
                        name: name.to_string(),
                    });
                }
            }
            Ok(())
        }
        Kind::Demuxer => {
            if DEMUXERS.contains(&v) {
                Ok(())
            } else {
                Err(ValueError::Demuxer)
            }
        }
        Kind::HttpCodes => check_http_codes(v),
        Kind::Level => check_level(v),
    }
}

/// A decimal integer in `min..=max`.
fn check_int(v: &str, min: i64, max: i64) -> Result<(), ValueError> {
    let n: i64 = v
        .strip_prefix('-')
        .map_or(digits(v), digits)
        .then(|| v.parse().ok())
        .flatten()
        .ok_or(ValueError::NotAnInteger)?;
    if (min..=max).contains(&n) {
        Ok(())
    } else {
        Err(ValueError::IntOutOfRange { min, max })
    }
}

/// A decimal number (no exponent, no inf/nan) in `min..=max`.
fn check_float(v: &str, min: f64, max: f64) -> Result<(), ValueError> {
    let n: f64 = v
        .strip_prefix('-')
        .map_or(decimal(v), decimal)
        .then(|| v.parse().ok())
        .flatten()
        .ok_or(ValueError::NotANumber)?;
    if (min..=max).contains(&n) {
        Ok(())
    } else {
        Err(ValueError::FloatOutOfRange { min, max })
    }
}

/// `2M`, `500k`, `128000`.
fn check_bitrate(v: &str) -> Result<(), ValueError> {
    let number = v.strip_suffix(['k', 'K', 'm', 'M', 'g', 'G']).unwrap_or(v);
    // Twelve characters: 10G or 10000000000 at most.
    (decimal(number) && v.len() <= 12)
        .then_some(())
        .ok_or(ValueError::NotABitrate)
}

/// Printable text of at most [`MAX_TEXT`] bytes.
fn check_text(v: &str) -> Result<(), ValueError> {
    if v.is_empty() || v.len() > MAX_TEXT {
        Err(ValueError::TextLength { max: MAX_TEXT })
    } else if v.chars().any(char::is_control) {
        Err(ValueError::TextControl)
    } else {
        Ok(())
    }
}

/// A time: `-1.5`, `00:00:02.5`, `500ms`.
fn check_time(v: &str) -> Result<(), ValueError> {
    let body = v.strip_prefix('-').unwrap_or(v);
    let body = ["ms", "us", "s"]
        .iter()
        .find_map(|s| body.strip_suffix(s))
        .unwrap_or(body);
    let parts: Vec<&str> = body.split(':').collect();
    // HH:MM:SS.micro is 15 characters; 20 leaves room for long hours.
    let ok = parts.len() <= 3
        && body.len() <= 20
        && parts[..parts.len() - 1].iter().all(|p| digits(p))
        && parts.last().is_some_and(|p| decimal(p));
    ok.then_some(()).ok_or(ValueError::NotATime)
}

/// Encoder parameters `key=value:key=value` with keys from `keys`.
fn check_params(v: &str, keys: &[&str]) -> Result<(), ValueError> {
    for pair in v.split(':') {
        let (k, val) = pair.split_once('=').unwrap_or((pair, ""));
        if !keys.contains(&k) {
            return Err(ValueError::ParamKey { key: k.to_string() });
        }
        // Values are numbers, names and comma lists like 1,1; the
        // longest real one (a partitions list) is ~25 characters.
        if val.len() > 32
            || !val
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b".,_+-".contains(&c))
        {
            return Err(ValueError::ParamValue { key: k.to_string() });
        }
    }
    Ok(())
}

/// HTTP status codes or classes: `4xx,503`.
fn check_http_codes(v: &str) -> Result<(), ValueError> {
    // 64 characters: every 1xx-5xx class and a dozen codes.
    let ok = v.len() <= 64
        && v.split(',')
            .all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit() || b == b'x'));
    ok.then_some(()).ok_or(ValueError::NotHttpCodes)
}

/// A codec level: `auto`, `3.1`, `4`, `41`.
fn check_level(v: &str) -> Result<(), ValueError> {
    let ok = v == "auto"
        || (v.len() <= 3 && digits(v))
        || v.split_once('.')
            .is_some_and(|(a, b)| a.len() == 1 && b.len() == 1 && digits(a) && digits(b));
    ok.then_some(()).ok_or(ValueError::NotALevel)
}

/// FFmpeg flags syntax: names from `list`, each optionally preceded by `+`
/// or `-`.
fn check_flags(v: &str, list: &'static [&'static str]) -> Result<(), ValueError> {
    let mut rest = v;
    if rest.is_empty() {
        return Err(ValueError::EmptyFlags);
    }
    while !rest.is_empty() {
        rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
        let end = rest.find(['+', '-']).unwrap_or(rest.len());
        let name = &rest[..end];
        if !list.contains(&name) {
            return Err(ValueError::Flag {
                flag: name.to_string(),
                allowed: list,
            });
        }
        rest = &rest[end..];
    }
    Ok(())
}

/// `[-]N[:v|a|s|d|V[:N]|:N][?]`: streams of the one input.
fn check_map(v: &str) -> Result<(), ValueError> {
    let body = v.strip_prefix('-').unwrap_or(v);
    let body = body.strip_suffix('?').unwrap_or(body);
    let (input, spec) = match body.split_once(':') {
        Some((i, s)) => (i, Some(s)),
        None => (body, None),
    };
    if input != "0" {
        return Err(ValueError::MapInput);
    }
    match spec {
        None => Ok(()),
        Some(s) => check_specifier(s).map_err(ValueError::Specifier),
    }
}
