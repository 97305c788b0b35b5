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
//!   (`INPUT_OPTIONS` before `-i`, `OUTPUT_OPTIONS` after it);
//! * each value is checked by kind (number in a range, name from a list,
//!   size, bitrate, flags, map, bounded text, filter graph, ...);
//! * per-stream options accept the specifiers `v`, `a`, `s`, `d`, `V`
//!   (optionally `:N`) or `N`; attachments (`t`) and the rest are refused;
//! * the source is a `-f lavfi` graph of test sources and light filters
//!   ([`super::lavfi`]), or a URL of an allowed scheme whose host the
//!   instance's grant ([`SourceGrant`]) allows; FFmpeg gets an explicit
//!   `-protocol_whitelist` for that scheme, so nothing a stream opens can
//!   fall back to `file:`, `pipe:`, `concat:` or `subfile:`;
//! * private, loopback, link-local, multicast and other non-public
//!   addresses are refused unless the instance sets `allow_private`:
//!   literal addresses when the stream is listed, resolved host names when
//!   FFmpeg is about to start ([`Plan::check_addresses`]).

use super::lavfi::{self, GraphUse};
use super::process::SpawnError;
use crate::addr::address_kind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

/// Longest piece of a stream's source or options quoted in a refusal.
const SHOW_MAX: usize = 48;

/// Most option tokens on either side of `-i`: a full transcode with a
/// filter chain and two maps is ~30.
const MAX_OPTION_TOKENS: usize = 64;

/// Longest option token, in bytes (a `-vf` graph is the longest value).
const MAX_TOKEN_LEN: usize = lavfi::MAX_GRAPH_LEN;

/// Longest source, in bytes: real camera URLs, tokens included, stay under
/// 1 KiB; a test graph is tens of bytes.
const MAX_SOURCE_LEN: usize = 4_096;

/// Longest free-text value (`-user_agent`, `-referer`), in bytes.
const MAX_TEXT: usize = 256;

/// How long the spawn-time address check waits for DNS. A resolver slower
/// than this would also fail FFmpeg's own lookup; the supervisor retries.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Patterns named in a "host not allowed" refusal before it says "...".
const SHOW_PATTERNS: usize = 5;

/// Why the policy refuses a stream: a message for operators that never
/// echoes unbounded input (quoted pieces are cut to a few dozen characters,
/// and URL credentials are never shown).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(String);

impl Refusal {
    fn new(message: impl Into<String>) -> Self {
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
pub(super) fn show(s: &str) -> String {
    let cut: String = s.chars().take(SHOW_MAX).collect();
    if cut.len() < s.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

// ---------------------------------------------------------------------------
// Option values.

/// How an option's value is checked.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A switch: no value.
    Switch,
    /// A decimal integer in `min..=max`.
    Int(i64, i64),
    /// A decimal number (no exponent, no inf/nan) in `min..=max`.
    Float(f64, f64),
    /// A frame rate: `25`, `29.97`, `30000/1001` or a name (`ntsc`).
    Rate,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// `WxH` or a size name (`hd720`).
    Size,
    /// `2M`, `500k`, `128000`.
    Bitrate,
    /// FFmpeg flags (`+genpts+nobuffer`, `-nobuffer`, `low_delay`) from
    /// this list.
    Flags(&'static [&'static str]),
    /// A `-map` stream selection (`0:v:0`, `0:a?`, `-0:s`).
    Map,
    /// Printable text of at most [`MAX_TEXT`] bytes.
    Text,
    /// A filter graph of processing filters.
    Graph,
    /// A time (`-1.5`, `00:00:02.5`, `500ms`).
    Time,
    /// Encoder parameters `key=value:key=value` with keys from this list.
    Params(&'static [&'static str]),
    /// Comma-separated bitstream filter names, without arguments.
    Bsf,
    /// An input format (demuxer) from [`DEMUXERS`].
    Demuxer,
    /// HTTP status codes or classes: `4xx,503`.
    HttpCodes,
    /// A codec level: `auto`, `3.1`, `4`, `41`.
    Level,
}

/// One allowed option.
struct Opt {
    name: &'static str,
    kind: Kind,
    /// Accepts a stream specifier (`-c:v`, `-b:a:0`).
    per_stream: bool,
}

const fn opt(name: &'static str, kind: Kind) -> Opt {
    Opt {
        name,
        kind,
        per_stream: false,
    }
}

const fn per_stream(name: &'static str, kind: Kind) -> Opt {
    Opt {
        name,
        kind,
        per_stream: true,
    }
}

/// Ten minutes in microseconds: the longest network timeout accepted
/// (`-timeout`, `-rw_timeout`, `-stimeout` count microseconds).
const MAX_TIMEOUT_US: i64 = 600_000_000;

/// Input formats a stream may force with `-f`: network and elementary
/// stream demuxers. Not `concat` (lists of files), `image2` (file
/// patterns), `data`, `sdp` (opens what the description says), `tee`,
/// `ffmetadata`, or device grabbers (`v4l2`, `x11grab`, `alsa`, `fbdev`,
/// `pulse`, `kmsgrab`, ...).
pub const DEMUXERS: &[&str] = &[
    "lavfi", "rtsp", "rtp", "flv", "live_flv", "mpegts", "hls", "dash", "mjpeg", "mpjpeg", "h264",
    "hevc", "matroska", "webm", "mov", "mp4", "aac", "mp3",
];

/// Codecs (`-c`, `-codec`): stream copy and the encoders FLV/RTMP carries.
#[rustfmt::skip]
const CODECS: &[&str] = &[
    "copy", "h264", "libx264", "libx264rgb", "libopenh264", "h264_nvenc", "h264_qsv", "hevc",
    "libx265", "hevc_nvenc", "flv1", "aac", "libfdk_aac", "mp3", "libmp3lame", "libspeex",
    "nellymoser", "pcm_s16le", "pcm_alaw", "pcm_mulaw", "opus", "libopus",
];

#[rustfmt::skip]
const PIX_FMTS: &[&str] = &[
    "yuv420p", "yuvj420p", "yuv422p", "yuv444p", "nv12", "nv21", "yuv420p10le", "p010le", "gray",
    "rgb24", "bgr24",
];

#[rustfmt::skip]
const PRESETS: &[&str] = &[
    // x264/x265.
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
    "placebo",
    // NVENC.
    "default", "hp", "hq", "ll", "llhq", "llhp", "lossless", "p1", "p2", "p3", "p4", "p5", "p6",
    "p7",
];

#[rustfmt::skip]
const TUNES: &[&str] = &[
    "film", "animation", "grain", "stillimage", "psnr", "ssim", "fastdecode", "zerolatency", "hq",
    "ll", "ull", "lossless",
];

#[rustfmt::skip]
const PROFILES: &[&str] = &[
    "baseline", "constrained_baseline", "main", "high", "high10", "high422", "high444", "high444p",
    "main10", "main-intra", "aac_low", "aac_he", "aac_he_v2", "aac_ld", "aac_eld",
];

#[rustfmt::skip]
const FORMAT_FLAGS: &[&str] = &[
    "genpts", "nobuffer", "discardcorrupt", "igndts", "ignidx", "nofillin", "noparse", "sortdts",
    "fastseek", "flush_packets", "bitexact", "autobsf",
];

#[rustfmt::skip]
const CODEC_FLAGS: &[&str] = &[
    "low_delay", "global_header", "cgop", "output_corrupt", "bitexact", "gray", "ildct", "ilme",
    "qscale", "loop",
];

#[rustfmt::skip]
const FLV_FLAGS: &[&str] = &[
    "aac_seq_header_detect", "no_sequence_end", "no_metadata", "no_duration_filesize",
    "add_keyframe_index",
];

/// `-rtsp_transport`: what carries RTP. The HTTP tunnels add `http`,
/// `https` and `tls` to the protocol whitelist.
const RTSP_TRANSPORTS: &[&str] = &["tcp", "udp", "udp_multicast", "http", "https"];

/// `-rtsp_flags`: never `listen` (that makes FFmpeg an RTSP server).
const RTSP_FLAGS: &[&str] = &["filter_src", "prefer_tcp"];

const MEDIA_TYPES: &[&str] = &["video", "audio", "data", "subtitle"];

const BOOL: &[&str] = &["0", "1", "true", "false"];

const FPS_MODES: &[&str] = &["passthrough", "cfr", "vfr", "drop", "auto"];

#[rustfmt::skip]
const VSYNC: &[&str] = &[
    "passthrough", "cfr", "vfr", "drop", "auto", "-1", "0", "1", "2",
];

#[rustfmt::skip]
const STRICT: &[&str] = &[
    "very", "strict", "normal", "unofficial", "experimental", "-2", "-1", "0", "1", "2",
];

const RTMP_LIVE: &[&str] = &["any", "live", "recorded"];

/// Bitstream filters (names only): packaging changes, nothing that reads
/// or writes files.
#[rustfmt::skip]
const BSFS: &[&str] = &[
    "h264_mp4toannexb", "hevc_mp4toannexb", "aac_adtstoasc", "extract_extradata", "dump_extra",
    "remove_extra", "h264_redundant_pps", "null",
];

/// `-x264-params`/`-x264opts` keys: rate control, GOP and analysis
/// settings. Never `stats`/`pass` (2-pass log files), `dump-yuv`,
/// `qpfile`, `cqmfile`, `tcfile-in`/`tcfile-out` or other file keys.
#[rustfmt::skip]
const X264_KEYS: &[&str] = &[
    "keyint", "min-keyint", "keyint-min", "scenecut", "no-scenecut", "bframes", "b-adapt",
    "b-pyramid", "ref", "rc-lookahead", "sync-lookahead", "sliced-threads", "threads",
    "lookahead-threads", "nal-hrd", "force-cfr", "vbv-maxrate", "vbv-bufsize", "vbv-init", "crf",
    "crf-max", "bitrate", "qp", "qpmin", "qpmax", "qpstep", "ratetol", "ipratio", "pbratio",
    "intra-refresh", "aud", "repeat-headers", "annexb", "open-gop", "cabac", "no-cabac", "8x8dct",
    "no-8x8dct", "weightp", "weightb", "no-weightb", "subme", "me", "merange", "trellis", "deblock",
    "no-deblock", "partitions", "mbtree", "no-mbtree", "psy", "no-psy", "psy-rd", "aq-mode",
    "aq-strength", "qcomp", "mixed-refs", "no-mixed-refs", "fast-pskip", "no-fast-pskip", "slices",
    "slice-max-size", "chroma-qp-offset", "nr", "filler", "level", "colorprim", "transfer",
    "colormatrix", "fullrange",
];

/// `-x265-params` keys. Never `csv`, `analysis-save`/`analysis-load`,
/// `stats`/`pass`, `qpfile`, `recon`, `zonefile`, `scaling-list`,
/// `lambda-file` or `dolby-vision-rpu` (files).
#[rustfmt::skip]
const X265_KEYS: &[&str] = &[
    "keyint", "min-keyint", "scenecut", "no-scenecut", "bframes", "b-adapt", "ref", "rc-lookahead",
    "repeat-headers", "annexb", "aud", "open-gop", "no-open-gop", "crf", "bitrate", "vbv-maxrate",
    "vbv-bufsize", "pools", "frame-threads", "log-level", "level-idc",
];

/// Options allowed before `-i`: what real cameras and test patterns need.
const INPUT_OPTIONS: &[Opt] = &[
    opt("re", Kind::Switch),
    opt("f", Kind::Demuxer),
    opt("rtsp_transport", Kind::Flags(RTSP_TRANSPORTS)),
    opt("rtsp_flags", Kind::Flags(RTSP_FLAGS)),
    opt("allowed_media_types", Kind::Flags(MEDIA_TYPES)),
    // Socket I/O timeout since FFmpeg 5.0 (on 4.x, RTSP read a positive
    // `-timeout` as "listen": DSS needs FFmpeg 5.0 or newer).
    opt("timeout", Kind::Int(-1, MAX_TIMEOUT_US)),
    opt("stimeout", Kind::Int(-1, MAX_TIMEOUT_US)),
    opt("rw_timeout", Kind::Int(-1, MAX_TIMEOUT_US)),
    // Microseconds of input analysed to find streams: 60 s is far more
    // than any camera needs.
    opt("analyzeduration", Kind::Int(0, 60_000_000)),
    // Bytes probed; FFmpeg's minimum is 32, 50 MB covers slow HLS.
    opt("probesize", Kind::Int(32, 50_000_000)),
    opt("fflags", Kind::Flags(FORMAT_FLAGS)),
    opt("flags", Kind::Flags(CODEC_FLAGS)),
    opt("use_wallclock_as_timestamps", Kind::OneOf(BOOL)),
    // Packets queued per input; FFmpeg's default is 8, 1M is plenty.
    opt("thread_queue_size", Kind::Int(1, 1_000_000)),
    opt("reconnect", Kind::OneOf(BOOL)),
    opt("reconnect_at_eof", Kind::OneOf(BOOL)),
    opt("reconnect_streamed", Kind::OneOf(BOOL)),
    opt("reconnect_on_network_error", Kind::OneOf(BOOL)),
    opt("reconnect_on_http_error", Kind::HttpCodes),
    // Seconds; FFmpeg's own maximum.
    opt("reconnect_delay_max", Kind::Int(0, 4_294)),
    opt("user_agent", Kind::Text),
    opt("referer", Kind::Text),
    opt("r", Kind::Rate),
    opt("framerate", Kind::Rate),
    opt("video_size", Kind::Size),
    opt("pixel_format", Kind::OneOf(PIX_FMTS)),
    opt("itsoffset", Kind::Time),
    // -1 loops forever; a million loops is forever enough.
    opt("stream_loop", Kind::Int(-1, 1_000_000)),
    // Microseconds of RTP reordering delay: 10 s is generous.
    opt("max_delay", Kind::Int(-1, 10_000_000)),
    // Packets buffered to reorder RTP.
    opt("reorder_queue_size", Kind::Int(-1, 100_000)),
    // Socket buffer bytes: 64 MiB.
    opt("buffer_size", Kind::Int(-1, 64 * 1024 * 1024)),
    // HLS segment to start from (negative: from the end); a million
    // segments is hours of any live playlist.
    opt("live_start_index", Kind::Int(-1_000_000, 1_000_000)),
    opt("rtmp_live", Kind::OneOf(RTMP_LIVE)),
    // Milliseconds of RTMP client buffer.
    opt("rtmp_buffer", Kind::Int(0, 60_000)),
    // Decoder threads (0 = automatic); 64 exceeds any host here.
    opt("threads", Kind::Int(0, 64)),
    opt("an", Kind::Switch),
    opt("vn", Kind::Switch),
    opt("sn", Kind::Switch),
    opt("dn", Kind::Switch),
];

/// Options allowed after `-i`: transcoding into FLV. Never `-f`, `-y`,
/// `-i`, `-progress` or anything naming a file: the host adds the output
/// itself.
const OUTPUT_OPTIONS: &[Opt] = &[
    per_stream("c", Kind::OneOf(CODECS)),
    per_stream("codec", Kind::OneOf(CODECS)),
    per_stream("preset", Kind::OneOf(PRESETS)),
    per_stream("tune", Kind::OneOf(TUNES)),
    per_stream("profile", Kind::OneOf(PROFILES)),
    per_stream("level", Kind::Level),
    per_stream("pix_fmt", Kind::OneOf(PIX_FMTS)),
    // GOP length in frames: 10,000 is over six minutes at 25 fps.
    per_stream("g", Kind::Int(1, 10_000)),
    per_stream("keyint_min", Kind::Int(1, 10_000)),
    // x264's scene-cut sensitivity; 0 disables it.
    per_stream("sc_threshold", Kind::Int(0, 1_000)),
    // B-frames: H.264 allows at most 16.
    per_stream("bf", Kind::Int(-1, 16)),
    per_stream("b", Kind::Bitrate),
    per_stream("maxrate", Kind::Bitrate),
    per_stream("minrate", Kind::Bitrate),
    per_stream("bufsize", Kind::Bitrate),
    // x264 CRF range is 0-51, x265 and others reach 63.
    per_stream("crf", Kind::Float(0.0, 63.0)),
    per_stream("qp", Kind::Int(-1, 69)),
    per_stream("r", Kind::Rate),
    per_stream("s", Kind::Size),
    // Audio sample rate in Hz.
    per_stream("ar", Kind::Int(8_000, 192_000)),
    // Audio channels: 7.1 is 8.
    per_stream("ac", Kind::Int(1, 8)),
    opt("an", Kind::Switch),
    opt("vn", Kind::Switch),
    opt("sn", Kind::Switch),
    opt("dn", Kind::Switch),
    opt("shortest", Kind::Switch),
    opt("map", Kind::Map),
    opt("vf", Kind::Graph),
    opt("af", Kind::Graph),
    per_stream("filter", Kind::Graph),
    per_stream("bsf", Kind::Bsf),
    // Encoder threads (0 = automatic).
    per_stream("threads", Kind::Int(0, 64)),
    per_stream("fps_mode", Kind::OneOf(FPS_MODES)),
    opt("vsync", Kind::OneOf(VSYNC)),
    opt("flvflags", Kind::Flags(FLV_FLAGS)),
    opt("fflags", Kind::Flags(FORMAT_FLAGS)),
    per_stream("flags", Kind::Flags(CODEC_FLAGS)),
    // Packets buffered before the muxer starts; FFmpeg's default is 128.
    per_stream("max_muxing_queue_size", Kind::Int(1, 1_000_000)),
    per_stream("strict", Kind::OneOf(STRICT)),
    per_stream("x264-params", Kind::Params(X264_KEYS)),
    per_stream("x264opts", Kind::Params(X264_KEYS)),
    per_stream("x265-params", Kind::Params(X265_KEYS)),
];

/// Which side of `-i` a list of options is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
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
struct InputFacts {
    /// `-f`.
    format: Option<String>,
    /// `-rtsp_transport` asks for an HTTP(S) tunnel.
    rtsp_over_http: bool,
}

/// Checks `tokens` as options of `side`.
fn check_options(tokens: &[String], side: Side) -> Result<InputFacts, Refusal> {
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

/// A stream specifier: `v`, `a`, `s`, `d`, `V`, optionally `:N`, or `N`.
fn check_specifier(s: &str) -> Result<(), String> {
    // Stream indexes up to 999: no camera or file has more streams.
    let index = |n: &str| !n.is_empty() && n.len() <= 3 && n.bytes().all(|c| c.is_ascii_digit());
    let (kind, rest) = match s.split_once(':') {
        Some((k, r)) => (k, Some(r)),
        None => (s, None),
    };
    if kind == "t" {
        return Err("stream specifier \"t\" (attachments) is refused".into());
    }
    let ok = match rest {
        None => ["v", "a", "s", "d", "V"].contains(&kind) || index(kind),
        Some(r) => ["v", "a", "s", "d", "V"].contains(&kind) && index(r),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "stream specifier {} is not allowed (v, a, s, d or V, optionally :N, or N)",
            show(s)
        ))
    }
}

fn check_value(kind: Kind, v: &str) -> Result<(), String> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    let decimal = |s: &str| match s.split_once('.') {
        Some((a, b)) => digits(a) && digits(b),
        None => digits(s),
    };
    match kind {
        Kind::Switch => Ok(()),
        Kind::Int(min, max) => {
            let n: i64 = v
                .strip_prefix('-')
                .map_or(digits(v), digits)
                .then(|| v.parse().ok())
                .flatten()
                .ok_or("not an integer")?;
            if (min..=max).contains(&n) {
                Ok(())
            } else {
                Err(format!("out of range {min} to {max}"))
            }
        }
        Kind::Float(min, max) => {
            let n: f64 = v
                .strip_prefix('-')
                .map_or(decimal(v), decimal)
                .then(|| v.parse().ok())
                .flatten()
                .ok_or("not a number")?;
            if (min..=max).contains(&n) {
                Ok(())
            } else {
                Err(format!("out of range {min} to {max}"))
            }
        }
        Kind::Rate => super::bounds::rate(v).map(|_| ()),
        Kind::OneOf(list) => {
            if list.contains(&v) {
                Ok(())
            } else {
                Err("not one of the allowed values".into())
            }
        }
        Kind::Size => super::bounds::size(v).map(|_| ()),
        Kind::Bitrate => {
            let number = v.strip_suffix(['k', 'K', 'm', 'M', 'g', 'G']).unwrap_or(v);
            // Twelve characters: 10G or 10000000000 at most.
            (decimal(number) && v.len() <= 12)
                .then_some(())
                .ok_or("not a bitrate like 2M, 500k or 128000".into())
        }
        Kind::Flags(list) => check_flags(v, list),
        Kind::Map => check_map(v),
        Kind::Text => {
            if v.is_empty() || v.len() > MAX_TEXT {
                Err(format!("text must be 1 to {MAX_TEXT} bytes"))
            } else if v.chars().any(char::is_control) {
                Err("text contains a control character".into())
            } else {
                Ok(())
            }
        }
        Kind::Graph => lavfi::check(v, GraphUse::Filter),
        Kind::Time => {
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
            ok.then_some(())
                .ok_or("not a time like 2.5 or 00:00:02.5".into())
        }
        Kind::Params(keys) => {
            for pair in v.split(':') {
                let (k, val) = pair.split_once('=').unwrap_or((pair, ""));
                if !keys.contains(&k) {
                    return Err(format!("key {} is not allowed", show(k)));
                }
                // Values are numbers, names and comma lists like 1,1; the
                // longest real one (a partitions list) is ~25 characters.
                if val.len() > 32
                    || !val
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b".,_+-".contains(&c))
                {
                    return Err(format!("value of {k} is not accepted"));
                }
            }
            Ok(())
        }
        Kind::Bsf => {
            for name in v.split(',') {
                if !BSFS.contains(&name) {
                    return Err(format!("bitstream filter {} is not allowed", show(name)));
                }
            }
            Ok(())
        }
        Kind::Demuxer => {
            if DEMUXERS.contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "input format not allowed (allowed: {})",
                    DEMUXERS.join(", ")
                ))
            }
        }
        Kind::HttpCodes => {
            // 64 characters: every 1xx-5xx class and a dozen codes.
            let ok = v.len() <= 64
                && v.split(',')
                    .all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit() || b == b'x'));
            ok.then_some(()).ok_or("not a list like 4xx,503".into())
        }
        Kind::Level => {
            let ok = v == "auto"
                || (v.len() <= 3 && digits(v))
                || v.split_once('.')
                    .is_some_and(|(a, b)| a.len() == 1 && b.len() == 1 && digits(a) && digits(b));
            ok.then_some(())
                .ok_or("not a level like 3.1, 4 or auto".into())
        }
    }
}

/// FFmpeg flags syntax: names from `list`, each optionally preceded by `+`
/// or `-`.
fn check_flags(v: &str, list: &[&str]) -> Result<(), String> {
    let mut rest = v;
    if rest.is_empty() {
        return Err("empty flags".into());
    }
    while !rest.is_empty() {
        rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
        let end = rest.find(['+', '-']).unwrap_or(rest.len());
        let name = &rest[..end];
        if !list.contains(&name) {
            return Err(format!(
                "flag {} is not allowed (allowed: {})",
                show(name),
                list.join(", ")
            ));
        }
        rest = &rest[end..];
    }
    Ok(())
}

/// `[-]N[:v|a|s|d|V[:N]|:N][?]`: streams of the one input.
fn check_map(v: &str) -> Result<(), String> {
    let body = v.strip_prefix('-').unwrap_or(v);
    let body = body.strip_suffix('?').unwrap_or(body);
    let (input, spec) = match body.split_once(':') {
        Some((i, s)) => (i, Some(s)),
        None => (body, None),
    };
    if input != "0" {
        return Err("only input 0 exists (maps like 0:v:0 or 0:a?)".into());
    }
    match spec {
        None => Ok(()),
        Some(s) => check_specifier(s),
    }
}

// ---------------------------------------------------------------------------
// Sources.

/// URL schemes a source may use, with the default port and the protocols
/// FFmpeg may open for it (`-protocol_whitelist`).
const SCHEMES: &[(&str, Option<u16>, &str)] = &[
    ("rtsp", Some(554), "rtsp,rtp,udp,tcp"),
    ("rtsps", Some(322), "rtsps,rtsp,rtp,udp,tcp,tls"),
    ("rtmp", Some(1935), "rtmp,tcp"),
    ("rtmps", Some(443), "rtmps,rtmp,tls,tcp"),
    // HTTP redirects to HTTPS are common, so both may follow each other;
    // `crypto` is HLS AES-128.
    ("http", Some(80), "http,https,tls,tcp,crypto"),
    ("https", Some(443), "https,http,tls,tcp,crypto"),
    ("srt", None, "srt,udp"),
    ("udp", None, "udp"),
    ("tcp", None, "tcp"),
    ("rtp", None, "rtp,udp"),
];

/// URL query parameters that make FFmpeg listen or bind instead of
/// connecting (`tcp://...?listen`, `srt://...?mode=listener`).
const LISTEN_PARAMS: &[&str] = &["listen", "listen_timeout", "localaddr"];

/// A source host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A DNS name, lower-cased.
    Name(String),
    /// A literal address.
    Ip(IpAddr),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// What of a source URL the policy judges.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SourceUrl {
    scheme: &'static str,
    whitelist: &'static str,
    host: Host,
    port: Option<u16>,
}

/// Parses a source URL the way FFmpeg's `av_url_split` and protocol
/// lookup read it, refusing anything on which FFmpeg and other URL
/// parsers could disagree (`#`, `\`, blanks, non-ASCII, numeric host forms
/// other than dotted quads, IPv6 zones).
fn parse_url(source: &str) -> Result<SourceUrl, Refusal> {
    if source == "pipe:0" || source == "-" || source.starts_with("pipe:") {
        return Err(Refusal::new(
            "source pipe:0 is reserved for the host's own ingest",
        ));
    }
    let names: Vec<&str> = SCHEMES.iter().map(|s| s.0).collect();
    let not_url = || {
        Refusal::new(format!(
            "source {} is not a URL with one of the schemes {}",
            show(source),
            names.join(", ")
        ))
    };
    let (scheme, rest) = source.split_once("://").ok_or_else(not_url)?;
    let Some(&(scheme, default_port, whitelist)) = SCHEMES.iter().find(|s| s.0 == scheme) else {
        return Err(not_url());
    };
    if let Some(c) = source.chars().find(|c| !('!'..='~').contains(c)) {
        return Err(Refusal::new(format!(
            "source URL contains the character {c:?} (percent-encode it)"
        )));
    }
    if source.contains(['#', '\\']) {
        return Err(Refusal::new(
            "source URL contains '#' or '\\', which FFmpeg reads differently from other URL parsers",
        ));
    }
    // Authority: up to the first '/' or '?' (av_url_split); credentials up
    // to its last '@'.
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| Refusal::new("source URL has an unclosed [ in its host"))?;
        let ip: Ipv6Addr = addr.parse().map_err(|_| {
            Refusal::new(format!(
                "source host [{}] is not an IPv6 address",
                cut(addr)
            ))
        })?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| Refusal::new("source URL has junk after its IPv6 host"))?,
            ),
        };
        (Host::Ip(IpAddr::V6(ip)), port)
    } else {
        let (h, p) = match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        };
        (parse_host(h)?, p)
    };
    let port = match port {
        None => None,
        Some(p) => Some(
            (p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit()))
                .then(|| p.parse::<u16>().ok())
                .flatten()
                .filter(|&n| n != 0)
                .ok_or_else(|| {
                    Refusal::new(format!("source port {} is not a port number", show(p)))
                })?,
        ),
    };
    let port = port.or(default_port);
    if port.is_none() {
        return Err(Refusal::new(format!(
            "source URL needs a port ({scheme}:// has no default)"
        )));
    }
    if let Some((_, query)) = source.split_once('?') {
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = k.to_ascii_lowercase();
            let listener = LISTEN_PARAMS.contains(&k.as_str())
                || (k == "mode" && !v.eq_ignore_ascii_case("caller"));
            if listener {
                return Err(Refusal::new(format!(
                    "source URL parameter {} would make FFmpeg listen or bind locally (refused)",
                    show(pair)
                )));
            }
        }
    }
    Ok(SourceUrl {
        scheme,
        whitelist,
        host,
        port,
    })
}

/// `s` cut to [`SHOW_MAX`] characters, unquoted.
fn cut(s: &str) -> String {
    s.chars().take(SHOW_MAX).collect()
}

/// A host name or dotted-quad address from a URL or a grant entry.
fn parse_host(h: &str) -> Result<Host, Refusal> {
    if h.is_empty() {
        return Err(Refusal::new("source URL has no host"));
    }
    // DNS limits: 253 bytes a name, 63 a label.
    if h.len() > 253 {
        return Err(Refusal::new("source host is longer than 253 bytes"));
    }
    let lower = h.to_ascii_lowercase();
    let labels_ok = lower.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    });
    if !labels_ok {
        return Err(Refusal::new(format!(
            "source host {} is not a valid host name",
            show(h)
        )));
    }
    // The resolver reads 127.1, 2130706433 and 0x7f.0.0.1 as addresses;
    // only canonical dotted quads are accepted as addresses, and a name
    // never ends in a numeric label.
    let last = lower.rsplit('.').next().unwrap_or_default();
    let numeric = last.bytes().all(|c| c.is_ascii_digit()) || last.starts_with("0x");
    if numeric {
        return match lower.parse::<Ipv4Addr>() {
            Ok(ip) => Ok(Host::Ip(IpAddr::V4(ip))),
            Err(_) => Err(Refusal::new(format!(
                "source host {} is not a canonical IPv4 address",
                show(h)
            ))),
        };
    }
    Ok(Host::Name(lower))
}

// ---------------------------------------------------------------------------
// The grant.

/// An entry of `allow_sources`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// `*`: any host.
    Any,
    /// `host` or `host:port`.
    Host(String, Option<u16>),
    /// `*.domain`: any name under `domain` (not `domain` itself).
    Suffix(String),
    /// `ip`, `ip:port`, `[v6]:port` or `net/len`.
    Net(IpAddr, u8, Option<u16>),
}

impl Pattern {
    fn parse(entry: &str) -> Result<Pattern, String> {
        let e = entry.trim().to_ascii_lowercase();
        let bad = |why: &str| format!("allow_sources entry {}: {why}", show(entry));
        if e == "*" {
            return Ok(Pattern::Any);
        }
        if let Some(domain) = e.strip_prefix("*.") {
            return match parse_host(domain) {
                Ok(Host::Name(d)) => Ok(Pattern::Suffix(format!(".{d}"))),
                _ => Err(bad("*. must be followed by a domain name")),
            };
        }
        if let Some((addr, len)) = e.split_once('/') {
            let ip: IpAddr = addr.parse().map_err(|_| bad("not an address/prefix"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len: u8 = len
                .parse()
                .ok()
                .filter(|&l| l <= max)
                .ok_or_else(|| bad("prefix length out of range"))?;
            return Ok(Pattern::Net(ip.to_canonical(), len, None));
        }
        if let Ok(ip) = e.parse::<IpAddr>() {
            let len = if ip.to_canonical().is_ipv4() { 32 } else { 128 };
            return Ok(Pattern::Net(ip.to_canonical(), len, None));
        }
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|&n| n != 0)
                .ok_or_else(|| bad("not a port number"))
        };
        if let Some(v6) = e.strip_prefix('[') {
            let (addr, p) = v6
                .split_once("]:")
                .ok_or_else(|| bad("expected [address]:port"))?;
            let ip: Ipv6Addr = addr.parse().map_err(|_| bad("not an IPv6 address"))?;
            let ip = IpAddr::V6(ip).to_canonical();
            let len = if ip.is_ipv4() { 32 } else { 128 };
            return Ok(Pattern::Net(ip, len, Some(port(p)?)));
        }
        let (h, p) = match e.split_once(':') {
            Some((h, p)) => (h, Some(port(p)?)),
            None => (e.as_str(), None),
        };
        match parse_host(h).map_err(|r| bad(r.as_str()))? {
            Host::Name(n) => Ok(Pattern::Host(n, p)),
            Host::Ip(ip) => Ok(Pattern::Net(ip, 32, p)),
        }
    }

    fn matches(&self, host: &Host, port: Option<u16>) -> bool {
        let port_ok = |want: &Option<u16>| want.is_none() || *want == port;
        match (self, host) {
            (Pattern::Any, _) => true,
            (Pattern::Host(n, p), Host::Name(h)) => n == h && port_ok(p),
            (Pattern::Suffix(s), Host::Name(h)) => h.ends_with(s.as_str()),
            (Pattern::Net(net, len, p), Host::Ip(ip)) => in_net(*ip, *net, *len) && port_ok(p),
            _ => false,
        }
    }
}

/// Whether `ip` is in `net/len`.
fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip.to_canonical(), net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Where a grant's host patterns come from (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Origin {
    #[default]
    AllowHosts,
    AllowSources,
}

/// What sources an instance's streams may read: the hosts of its
/// `allow_sources` (unset: those of `allow_hosts`) and whether non-public
/// addresses are allowed (`allow_private`). The default grant allows no
/// host (test graphs only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceGrant {
    patterns: Vec<Pattern>,
    /// The entries as written, for messages.
    entries: Vec<String>,
    origin: Origin,
    allow_private: bool,
    /// `udp://` and `rtp://` sources (received on a local port) are
    /// allowed: the instance's `allow_udp`.
    allow_udp: bool,
}

impl SourceGrant {
    /// The grant of an instance. `allow_sources` entries are `host`,
    /// `host:port`, `*.domain`, `*`, an address (`10.0.0.5`, `[fe80::1]:554`)
    /// or a network (`10.0.0.0/8`); a bad one is an error. Unset, the
    /// `allow_hosts` entries apply (ones that are not patterns are skipped:
    /// they match no source anyway).
    pub fn new(
        allow_sources: Option<&[String]>,
        allow_hosts: &[String],
        allow_private: bool,
    ) -> Result<SourceGrant, String> {
        let (origin, entries) = match allow_sources {
            Some(s) => (Origin::AllowSources, s),
            None => (Origin::AllowHosts, allow_hosts),
        };
        let mut patterns = Vec::new();
        for e in entries {
            match Pattern::parse(e) {
                Ok(p) => patterns.push(p),
                Err(why) if origin == Origin::AllowSources => return Err(why),
                Err(_) => {}
            }
        }
        Ok(SourceGrant {
            patterns,
            entries: entries.to_vec(),
            origin,
            allow_private,
            allow_udp: false,
        })
    }

    /// This grant, allowing `udp://` and `rtp://` sources or not.
    pub fn with_udp(mut self, allow: bool) -> SourceGrant {
        self.allow_udp = allow;
        self
    }

    /// A grant of any host (`allow_sources = ["*"]`).
    pub fn any_host(allow_private: bool) -> SourceGrant {
        SourceGrant {
            patterns: vec![Pattern::Any],
            entries: vec!["*".into()],
            origin: Origin::AllowSources,
            allow_private,
            allow_udp: false,
        }
    }

    /// Whether non-public addresses are allowed.
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// A `udp://` or `rtp://` source as FFmpeg gets it: only when the
    /// instance allows them, and connected to the source (`connect=1`:
    /// the kernel drops datagrams from anyone else; without it FFmpeg
    /// takes the port's datagrams from anywhere, on every interface).
    fn connected_udp(&self, source: &Arc<str>) -> Result<Arc<str>, Refusal> {
        if !self.allow_udp {
            return Err(Refusal::new(
                "udp:// and rtp:// sources are received on a local port: set allow_udp = true in the instance to allow them",
            ));
        }
        let query = source.split_once('?').map(|(_, q)| q).unwrap_or("");
        let mut connect = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k.eq_ignore_ascii_case("connect") {
                connect = Some(v);
            }
        }
        match connect {
            Some("1") => Ok(source.clone()),
            Some(other) => Err(Refusal::new(format!(
                "source URL parameter connect={} would take datagrams from anyone (refused)",
                show(other)
            ))),
            None => {
                let sep = if source.contains('?') { '&' } else { '?' };
                Ok(format!("{source}{sep}connect=1").into())
            }
        }
    }

    fn check_host(&self, url: &SourceUrl) -> Result<(), Refusal> {
        if !self.patterns.iter().any(|p| p.matches(&url.host, url.port)) {
            let listed = if self.entries.is_empty() {
                "empty".to_string()
            } else {
                let mut shown: Vec<String> = self
                    .entries
                    .iter()
                    .take(SHOW_PATTERNS)
                    .map(|e| cut(e))
                    .collect();
                if self.entries.len() > SHOW_PATTERNS {
                    shown.push("…".into());
                }
                shown.join(", ")
            };
            let which = match self.origin {
                Origin::AllowSources => "allow_sources",
                Origin::AllowHosts => "allow_hosts (allow_sources is unset)",
            };
            return Err(Refusal::new(format!(
                "source host {} is not allowed by this instance's {which}: {listed}",
                url.host
            )));
        }
        match &url.host {
            Host::Ip(ip) => self.check_address(&url.host, *ip)?,
            // Known before any lookup: the resolver answers loopback.
            Host::Name(n)
                if !self.allow_private && (n == "localhost" || n.ends_with(".localhost")) =>
            {
                return Err(Refusal::new(format!(
                    "source host {n} is a loopback name (set allow_private = true to allow)"
                )))
            }
            Host::Name(_) => {}
        }
        Ok(())
    }

    fn check_address(&self, host: &Host, ip: IpAddr) -> Result<(), Refusal> {
        if self.allow_private {
            return Ok(());
        }
        match address_kind(ip) {
            None => Ok(()),
            Some(kind) => Err(Refusal::new(match host {
                Host::Ip(_) => format!(
                    "source host {ip} is {kind} address (set allow_private = true to allow)"
                ),
                Host::Name(n) => format!(
                    "source host {n} resolves to {ip}, {kind} address (set allow_private = true to allow)"
                ),
            })),
        }
    }
}

// ---------------------------------------------------------------------------
// Plans.

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
/// [`Plan::check`] and [`Plan::internal_pipe`] make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    input_options: Arc<[String]>,
    input: Input,
    output_options: Arc<[String]>,
}

/// A pair of option lists checked once, for all the streams of a listing
/// that use them (the instance's or the provider's defaults): thousands of
/// streams share the lists and the verdict instead of each holding copies.
#[derive(Debug, Clone)]
pub struct CheckedOptions {
    input: Arc<[String]>,
    output: Arc<[String]>,
    verdict: Result<InputFacts, Refusal>,
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
            input_options: options.input.clone(),
            input,
            output_options: options.output.clone(),
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

    /// The spawn-time check: resolves a URL source's host name and checks
    /// every address it resolves to (non-public ones need
    /// `allow_private`). [`SpawnError::Refused`] is permanent,
    /// [`SpawnError::Resolve`] may pass later.
    pub async fn check_addresses(&self) -> Result<(), SpawnError> {
        let Input::Url {
            host, port, grant, ..
        } = &self.input
        else {
            return Ok(());
        };
        let name = match host {
            Host::Ip(ip) => {
                return grant
                    .check_address(host, *ip)
                    .map_err(|r| SpawnError::Refused(r.into()))
            }
            // FFmpeg resolves the name itself; with allow_private any
            // answer is fine.
            Host::Name(_) if grant.allow_private => return Ok(()),
            Host::Name(n) => n,
        };
        let unresolved = |message: String| SpawnError::Resolve {
            host: name.clone(),
            message,
        };
        let addrs: Vec<std::net::SocketAddr> = tokio::time::timeout(
            RESOLVE_TIMEOUT,
            tokio::net::lookup_host((name.as_str(), *port)),
        )
        .await
        .map_err(|_| unresolved(format!("no answer in {RESOLVE_TIMEOUT:?}")))?
        .map_err(|e| unresolved(e.to_string()))?
        .collect();
        if addrs.is_empty() {
            return Err(unresolved("no address".into()));
        }
        for a in addrs {
            grant
                .check_address(host, a.ip())
                .map_err(|r| SpawnError::Refused(r.into()))?;
        }
        Ok(())
    }

    /// The full argv (without the binary) that publishes to `output`:
    /// the host's fixed options, the checked input options, the protocol
    /// whitelist of the source's scheme, `-i SOURCE`, the checked output
    /// options and `-f flv OUTPUT`.
    pub fn argv(&self, output: &str) -> Vec<String> {
        let mut a = self.head(true);
        a.extend(self.output_options.iter().cloned());
        a.extend(["-f".to_string(), "flv".to_string(), output.to_string()]);
        a
    }

    /// The argv of a run that reads this plan's source (its checked input
    /// options and source, nothing else of the listing) and writes the
    /// host's own `outputs`: thumbnails of an idle stream. `None` for a
    /// phone, whose media only the host's ingest has.
    pub fn input_argv(&self, outputs: &[String]) -> Option<Vec<String>> {
        if matches!(self.input, Input::Ingest | Input::Feeds(_)) {
            return None;
        }
        let mut a = self.head(false);
        a.extend(outputs.iter().cloned());
        Some(a)
    }

    /// The common options, the input options and the input.
    fn head(&self, progress: bool) -> Vec<String> {
        let mut a = super::global_options("warning");
        if progress {
            // key=value blocks on stdout, about twice a second: the
            // liveness signal used for stale detection.
            a.extend(["-progress".to_string(), "pipe:1".to_string()]);
        }
        a.extend(self.input_options.iter().cloned());
        let source = match &self.input {
            Input::Graph(g) => g.to_string(),
            Input::Url { url, whitelist, .. } => {
                a.extend(["-protocol_whitelist".to_string(), whitelist.clone()]);
                url.to_string()
            }
            Input::Ingest => String::new(),
            Input::Feeds(feeds) => {
                // One input per track; FFmpeg picks the best video and
                // audio among them by probing (phones mislabel tracks).
                for f in feeds {
                    // A live phone: probe 1 s of it, not FFmpeg's default
                    // 5 s, before publishing.
                    a.extend(
                        [
                            "-analyzeduration",
                            "1000000",
                            "-f",
                            "mpegts",
                            "-protocol_whitelist",
                            "file",
                            "-i",
                        ]
                        .map(String::from),
                    );
                    a.push(format!("file:{}", f.display()));
                }
                String::new()
            }
        };
        if !source.is_empty() {
            a.extend(["-i".to_string(), source]);
        }
        a
    }
}

/// The free-function form of [`Plan::argv`].
pub fn argv(plan: &Plan, output: &str) -> Vec<String> {
    plan.argv(output)
}

/// What the supervisor runs for a stream whose listing made `plan` (or
/// why it was refused), once its source's addresses pass the spawn-time
/// check.
pub async fn prepare(plan: &Result<Arc<Plan>, String>) -> Result<Arc<Plan>, SpawnError> {
    let plan = plan.clone().map_err(SpawnError::Refused)?;
    plan.check_addresses().await?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn any() -> Arc<SourceGrant> {
        Arc::new(SourceGrant::any_host(false))
    }

    fn plan(source: &str, input: &[&str], output: &[&str]) -> Result<Plan, Refusal> {
        Plan::check(source, &s(input), &s(output), &any())
    }

    fn refused(source: &str, input: &[&str], output: &[&str]) -> String {
        match plan(source, input, output) {
            Ok(p) => panic!("{source:?} {input:?} {output:?} passed: {p:?}"),
            Err(r) => r.to_string(),
        }
    }

    const DEMO_IN: &[&str] = &["-re", "-f", "lavfi"];
    const DEMO_OUT: &[&str] = &[
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-tune",
        "zerolatency",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "25",
    ];

    #[test]
    fn the_demo_and_test_configurations_pass() {
        for src in [
            "smptehdbars=size=640x360:rate=25",
            "testsrc2=size=640x360:rate=25",
            "mandelbrot=size=640x360:rate=25",
            "testsrc=size=320x240:rate=15",
            "rgbtestsrc=size=640x360:rate=25",
            "smptebars=size=640x360:rate=25",
            "sine=frequency=1000",
            "testsrc[out0];sine[out1]",
        ] {
            plan(src, DEMO_IN, DEMO_OUT).unwrap_or_else(|e| panic!("{src}: {e}"));
        }
        let tests_out = [
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "15",
        ];
        plan("testsrc=size=320x240:rate=15", DEMO_IN, &tests_out).unwrap();
        plan(
            "http://feed.example/live.ts",
            &["-analyzeduration", "1000000", "-re"],
            &["-c:v", "libx264", "-preset", "ultrafast", "-g", "15"],
        )
        .unwrap();
    }

    #[test]
    fn camera_and_transcode_options_pass() {
        let grant = Arc::new(SourceGrant::new(Some(&s(&["cam.example"])), &[], false).unwrap());
        let p = Plan::check(
            "rtsp://user:p%40ss@cam.example/1",
            &s(&["-rtsp_transport", "tcp", "-timeout", "5000000"]),
            &s(&["-c", "copy"]),
            &grant,
        )
        .unwrap();
        let a = p.argv("rtmp://127.0.0.1:1935/dss/x?token=t");
        let i = a.iter().position(|x| x == "-i").unwrap();
        assert_eq!(
            &a[i - 4..i + 2],
            [
                "-timeout",
                "5000000",
                "-protocol_whitelist",
                "rtsp,rtp,udp,tcp",
                "-i",
                "rtsp://user:p%40ss@cam.example/1"
            ]
        );
        assert_eq!(
            &a[i + 2..],
            [
                "-c",
                "copy",
                "-f",
                "flv",
                "rtmp://127.0.0.1:1935/dss/x?token=t"
            ]
        );
        assert!(a.contains(&"-nostdin".to_string()));
        for (input, output) in [
            (
                &[
                    "-rtsp_transport",
                    "tcp",
                    "-stimeout",
                    "5000000",
                    "-rw_timeout",
                    "5000000",
                    "-analyzeduration",
                    "2000000",
                    "-probesize",
                    "1000000",
                    "-fflags",
                    "+genpts+nobuffer",
                    "-flags",
                    "low_delay",
                    "-use_wallclock_as_timestamps",
                    "1",
                    "-thread_queue_size",
                    "512",
                    "-user_agent",
                    "Mozilla/5.0 (DSS)",
                    "-r",
                    "30000/1001",
                    "-itsoffset",
                    "-0.5",
                    "-stream_loop",
                    "-1",
                ][..],
                &[
                    "-map", "0:v:0", "-map", "0:a?", "-c:v", "copy", "-c:a", "aac", "-b:a:0",
                    "128k", "-ar", "44100", "-ac", "2",
                ][..],
            ),
            (
                &[
                    "-reconnect",
                    "1",
                    "-reconnect_streamed",
                    "1",
                    "-reconnect_delay_max",
                    "5",
                    "-reconnect_on_http_error",
                    "4xx,5xx",
                    "-f",
                    "hls",
                ][..],
                &[
                    "-c:v",
                    "libx264",
                    "-profile:v",
                    "high",
                    "-level",
                    "4.1",
                    "-b:v",
                    "2M",
                    "-maxrate",
                    "2500k",
                    "-bufsize",
                    "4M",
                    "-crf",
                    "23",
                    "-keyint_min",
                    "25",
                    "-sc_threshold",
                    "0",
                    "-bf",
                    "0",
                    "-r",
                    "25",
                    "-s",
                    "1280x720",
                    "-vf",
                    "yadif,scale=1280:-2,fps=25,format=yuv420p",
                    "-af",
                    "aresample=44100,volume=0.8",
                    "-filter:v",
                    "scale=640:360",
                    "-bsf:a",
                    "aac_adtstoasc",
                    "-threads",
                    "2",
                    "-fps_mode",
                    "cfr",
                    "-flvflags",
                    "no_duration_filesize",
                    "-max_muxing_queue_size",
                    "1024",
                    "-an",
                    "-x264-params",
                    "keyint=50:min-keyint=25:scenecut=0:deblock=1,1",
                    "-x264opts",
                    "no-scenecut",
                    "-codec:v",
                    "libx264",
                    "-c:0",
                    "copy",
                    "-sn",
                    "-dn",
                ][..],
            ),
        ] {
            plan("rtsp://cam.example/1", input, output)
                .unwrap_or_else(|e| panic!("{input:?} {output:?}: {e}"));
        }
    }

    #[test]
    fn option_exploits_are_refused_with_reasons() {
        let cam = "rtsp://cam.example/1";
        for (input, output, why) in [
            (
                &[][..],
                &["-c", "copy", "/tmp/x.mp4"][..],
                "output option \"/tmp/x.mp4\" is not an option (positional words are refused)",
            ),
            (
                &[],
                &["-y", "/tmp/x"],
                "output option \"-y\" is not allowed",
            ),
            (
                &[],
                &["-dump_attachment:t", "/tmp/x"],
                "output option \"-dump_attachment:t\" is not allowed",
            ),
            (
                &[],
                &["-c:t", "copy"],
                "stream specifier \"t\" (attachments) is refused",
            ),
            (&[], &["-map", "0:t"], "attachments"),
            (
                &[],
                &["-vf", "drawtext=textfile=/etc/passwd"],
                "filter \"drawtext\" is not allowed",
            ),
            (
                &[],
                &["-filter:v", "movie=/etc/passwd"],
                "filter \"movie\" is not allowed",
            ),
            (
                &[],
                &["-filter_complex_script", "/tmp/x"],
                "output option \"-filter_complex_script\" is not allowed",
            ),
            (&[], &["-filter_complex", "movie=/x"], "is not allowed"),
            (&[], &["-i", "extra"], "output option \"-i\" is not allowed"),
            (&["-i", "extra"], &[], "input option \"-i\" is not allowed"),
            (&[], &["-f", "mp4"], "output option \"-f\" is not allowed"),
            (&[], &["-progress", "/tmp/p"], "not allowed"),
            (&[], &["-an", "/tmp/x"], "positional"),
            (&[], &["-c"], "needs a value"),
            (
                &[],
                &["-c:v", "libx264rgb", "-preset", "fast;rm"],
                "-preset is refused",
            ),
            (
                &[],
                &["-x264-params", "stats=/tmp/x:pass=1"],
                "key \"stats\" is not allowed",
            ),
            (&[], &["-x264opts", "keyint=2:dump-yuv=/tmp/y"], "dump-yuv"),
            (
                &[],
                &["-bsf:v", "trace_headers,filter_units=remove_types=6"],
                "bitstream filter",
            ),
            (&[], &["-c:p:0:v", "copy"], "stream specifier"),
            (&[], &["-g:v", "25", "-map", "1:v"], "only input 0"),
            (&[], &["-map", "[out]"], "only input 0"),
            (&[], &["-an:v"], "takes no stream specifier"),
            (&[], &["-"], "positional"),
            (&[], &["-vstats_file", "/tmp/v"], "not allowed"),
            (&[], &["-passlogfile", "/tmp/p"], "not allowed"),
            (&[], &["-sdp_file", "/tmp/s"], "not allowed"),
            (
                &["-graph_file", "/etc/passwd"],
                &[],
                "input option \"-graph_file\" is not allowed",
            ),
            (&["-f", "data"], &[], "input format not allowed"),
            (&["-f", "image2"], &[], "input format not allowed"),
            (&["-f", "v4l2"], &[], "input format not allowed"),
            (&["-f", "lavfi", "-f", "mpegts"], &[], "given twice"),
            (&["-protocol_whitelist", "file,rtsp"], &[], "not allowed"),
            (&["-headers", "X: y\r\n"], &[], "not allowed"),
            (
                &["-rtsp_flags", "listen"],
                &[],
                "flag \"listen\" is not allowed",
            ),
            (&["-listen", "1"], &[], "not allowed"),
            (&["-user_agent", "a\r\nX-Evil: 1"], &[], "control character"),
            (&["-timeout", "1e9"], &[], "not an integer"),
            (&["-analyzeduration", "99999999999"], &[], "out of range"),
            (&["-stream_loop", "-1", "/tmp/in"], &[], "positional"),
            (
                &["-re", "-re", "extra"],
                &[],
                "input option \"extra\" is not an option",
            ),
        ] {
            let e = refused(cam, input, output);
            assert!(e.contains(why), "{input:?} {output:?}: {e}");
        }
        let e = refused("/tmp/list.txt", &["-f", "concat", "-safe", "0"], &[]);
        assert!(e.contains("input format not allowed"), "{e}");
        let long = "x".repeat(10_000);
        let e = refused(cam, &[], &["-c", "copy", &long]);
        assert!(e.len() < 200, "unbounded echo: {e}");
        assert!(e.contains('…'), "{e}");
    }

    #[test]
    fn lavfi_sources_are_checked_as_graphs() {
        for (src, why) in [
            ("movie=/etc/passwd", "filter \"movie\" is not allowed"),
            (
                "testsrc,drawtext=textfile=/etc/passwd",
                "filter \"drawtext\" is not allowed",
            ),
            (
                "life=filename=/etc/passwd",
                "filter \"life\" is not allowed",
            ),
            ("amovie=/dev/zero", "\"amovie\""),
        ] {
            let e = refused(src, DEMO_IN, &[]);
            assert!(
                e.starts_with("lavfi source: ") && e.contains(why),
                "{src}: {e}"
            );
        }
    }

    #[test]
    fn source_exploits_are_refused_with_reasons() {
        for (src, why) in [
            ("file:///etc/passwd", "is not a URL with one of the schemes"),
            ("/etc/passwd", "is not a URL with one of the schemes"),
            ("concat:a|b", "is not a URL"),
            ("subfile,,start,0,end,0,,:/etc/passwd", "is not a URL"),
            ("pipe:0", "reserved for the host's own ingest"),
            ("-", "reserved"),
            ("tcp://0.0.0.0:9000?listen", "would make FFmpeg listen"),
            (
                "tcp://cam.example:9000?listen=1",
                "would make FFmpeg listen",
            ),
            (
                "srt://cam.example:9000?mode=listener",
                "would make FFmpeg listen",
            ),
            ("udp://cam.example:9000?localaddr=10.0.0.1", "bind locally"),
            (
                "http://127.0.0.1:8000/control/x/start",
                "source host 127.0.0.1 is a loopback address (set allow_private = true to allow)",
            ),
            ("rtmp://127.0.0.1/dss/x", "127.0.0.1 is a loopback address"),
            ("rtsp://10.0.0.1/cam", "10.0.0.1 is a private address"),
            ("http://[::1]/", "::1 is a loopback address"),
            (
                "http://169.254.169.254/latest",
                "169.254.169.254 is a link-local address",
            ),
            ("udp://239.1.1.1:1234", "multicast"),
            ("http://[::ffff:127.0.0.1]/", "loopback"),
            ("http://[fe80::1%25eth0]/", "not an IPv6 address"),
            ("http://2130706433/", "not a canonical IPv4 address"),
            ("http://127.1/", "not a canonical IPv4 address"),
            ("http://0x7f.0.0.1/", "not a canonical IPv4 address"),
            ("http://0177.0.0.1/", "not a canonical IPv4 address"),
            ("http://evil.example#@127.0.0.1/", "'#'"),
            ("http://evil.example\\@127.0.0.1/", "'#' or '\\'"),
            ("http://cam .example/", "character"),
            ("http://cam.example:80x/", "not a port number"),
            ("http://cam.example:0/", "not a port number"),
            ("tcp://cam.example", "needs a port"),
            ("rtsp:///x", "no host"),
            (
                "http://localhost:8000/control/x/start",
                "localhost is a loopback name",
            ),
            ("rtsp://cam.localhost/1", "loopback name"),
            ("gopher://cam.example/", "is not a URL"),
            ("RTSP://cam.example/", "is not a URL"),
            ("rtsp+file://cam.example/", "is not a URL"),
        ] {
            let e = refused(src, &[], &[]);
            assert!(e.contains(why), "{src}: {e}");
            assert!(!e.contains("p%40ss"), "{e}");
        }
        // Credentials are fine, and never quoted back.
        let e = refused("rtsp://admin:secret@10.0.0.1/cam", &[], &[]);
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn udp_sources_need_the_instance_s_leave_and_are_connected_to_their_source() {
        let input = |src: &str, grant: SourceGrant| {
            let plan = Plan::check(src, &[], &[], &Arc::new(grant)).map_err(String::from)?;
            let argv = plan.argv("rtmp://127.0.0.1/dss/x");
            let i = argv.iter().position(|a| a == "-i").expect("-i");
            Ok::<String, String>(argv[i + 1].clone())
        };
        for src in ["udp://cam.example:9000", "rtp://cam.example:5004"] {
            let e = input(src, SourceGrant::any_host(false)).unwrap_err();
            assert!(e.contains("allow_udp = true"), "{e}");
        }
        let udp = || SourceGrant::any_host(false).with_udp(true);
        assert_eq!(
            input("udp://cam.example:9000", udp()).unwrap(),
            "udp://cam.example:9000?connect=1"
        );
        assert_eq!(
            input("rtp://cam.example:5004?pkt_size=1316", udp()).unwrap(),
            "rtp://cam.example:5004?pkt_size=1316&connect=1"
        );
        assert_eq!(
            input("udp://cam.example:9000?connect=1", udp()).unwrap(),
            "udp://cam.example:9000?connect=1"
        );
        let e = input("udp://cam.example:9000?connect=0", udp()).unwrap_err();
        assert!(e.contains("from anyone"), "{e}");
        // RTSP negotiates its own RTP over UDP: no leave needed.
        assert!(input("rtsp://cam.example/1", SourceGrant::any_host(false)).is_ok());
    }

    #[test]
    fn hosts_are_judged_by_the_grant() {
        let grant = |sources: Option<&[&str]>, hosts: &[&str], private: bool| {
            Arc::new(SourceGrant::new(sources.map(s).as_deref(), &s(hosts), private).unwrap())
        };
        let check = |src: &str, g: &Arc<SourceGrant>| Plan::check(src, &[], &[], g);
        // Unset allow_sources: allow_hosts applies.
        let g = grant(None, &["cam.example", "feed.example:8080"], false);
        assert!(check("rtsp://cam.example/1", &g).is_ok());
        assert!(check("http://feed.example:8080/x", &g).is_ok());
        let e = check("http://feed.example/x", &g).unwrap_err().to_string();
        assert!(e.contains("allow_hosts (allow_sources is unset)"), "{e}");
        assert!(check("rtsp://cam.example.evil/1", &g).is_err());
        // Nothing granted: only graphs.
        let none = Arc::new(SourceGrant::default());
        let e = check("rtsp://cam.example/1", &none)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not allowed") && e.contains("empty"), "{e}");
        // Ports: the scheme's default when the URL has none.
        let g = grant(
            Some(&[
                "cam.example:554",
                "*.cams.example",
                "203.0.113.0/24",
                "[2001:db8::5]:554",
            ]),
            &[],
            true,
        );
        assert!(check("rtsp://cam.example/1", &g).is_ok());
        assert!(check("rtsp://cam.example:8554/1", &g).is_err());
        assert!(check("rtsp://a.cams.example/1", &g).is_ok());
        assert!(
            check("rtsp://cams.example/1", &g).is_err(),
            "*.domain is subdomains only"
        );
        assert!(check("rtsp://203.0.113.77/1", &g).is_ok());
        assert!(check("rtsp://203.0.114.1/1", &g).is_err());
        assert!(check("rtsp://[2001:db8::5]/1", &g).is_ok());
        // Private addresses need allow_private even when listed.
        let g = grant(Some(&["10.0.0.0/8"]), &[], false);
        let e = check("rtsp://10.0.0.1/cam", &g).unwrap_err().to_string();
        assert!(
            e.contains("private address (set allow_private = true"),
            "{e}"
        );
        let g = grant(Some(&["10.0.0.0/8"]), &[], true);
        assert!(check("rtsp://10.0.0.1/cam", &g).is_ok());
        // Bad entries are errors when allow_sources is set, skipped when
        // they come from allow_hosts.
        for bad in [
            "*.",
            "10.0.0.0/33",
            "cam.example:x",
            "[::1]",
            "a b",
            "1.2.3.4.5",
        ] {
            assert!(
                SourceGrant::new(Some(&s(&[bad])), &[], false).is_err(),
                "{bad}"
            );
        }
        assert!(SourceGrant::new(None, &s(&["a b"]), false).is_ok());
    }

    #[test]
    fn rtsp_and_other_schemes_get_their_protocol_whitelist() {
        let wl = |src: &str, input: &[&str]| {
            let a = plan(src, input, &[]).unwrap().argv("out");
            let i = a.iter().position(|x| x == "-protocol_whitelist").unwrap();
            a[i + 1].clone()
        };
        assert_eq!(wl("rtsp://cam.example/1", &[]), "rtsp,rtp,udp,tcp");
        assert_eq!(
            wl("rtsp://cam.example/1", &["-rtsp_transport", "http"]),
            "rtsp,rtp,udp,tcp,http,https,tls"
        );
        assert_eq!(wl("rtmp://cam.example/app/key", &[]), "rtmp,tcp");
        assert_eq!(
            wl("https://cam.example/x.m3u8", &["-f", "hls"]),
            "https,http,tls,tcp,crypto"
        );
        assert_eq!(wl("srt://cam.example:9000?streamid=x", &[]), "srt,udp");
        // Graphs have no URL and no whitelist.
        let a = plan("testsrc", DEMO_IN, &[]).unwrap().argv("out");
        assert!(!a.contains(&"-protocol_whitelist".to_string()));
        assert_eq!(a[a.len() - 5..], ["-i", "testsrc", "-f", "flv", "out"]);
    }

    #[test]
    fn ingest_plans_read_the_hosts_fifos_and_nothing_else() {
        let p = Plan::ingest(&Arc::from(s(&["-c", "copy"]))).unwrap();
        assert!(p.is_ingest());
        let fed = p.with_feeds(vec!["/run/m/a.ts".into(), "/run/m/b.ts".into()]);
        let a = fed.argv("out");
        let expected = s(&[
            "-analyzeduration",
            "1000000",
            "-f",
            "mpegts",
            "-protocol_whitelist",
            "file",
            "-i",
            "file:/run/m/a.ts",
            "-analyzeduration",
            "1000000",
            "-f",
            "mpegts",
            "-protocol_whitelist",
            "file",
            "-i",
            "file:/run/m/b.ts",
            "-c",
            "copy",
            "-f",
            "flv",
            "out",
        ]);
        assert_eq!(a[a.len() - expected.len()..], expected[..]);
        assert!(
            Plan::ingest(&Arc::from(s(&["/tmp/x"]))).is_err(),
            "output options checked"
        );
        // Providers cannot ask for it: their pipe:0 is refused.
        assert!(Plan::check("pipe:0", &s(&["-f", "mpegts"]), &[], &any()).is_err());
    }

    #[tokio::test]
    async fn addresses_are_checked_at_spawn_time() {
        let g = Arc::new(SourceGrant::any_host(false));
        // A name the static check cannot know resolves to loopback (built
        // directly: "localhost" itself is refused when listed).
        let named = |grant: &Arc<SourceGrant>| Plan {
            input_options: Arc::from([]),
            input: Input::Url {
                url: "http://localhost:9/x".into(),
                host: Host::Name("localhost".into()),
                port: 9,
                whitelist: "http".into(),
                grant: grant.clone(),
            },
            output_options: Arc::from([]),
        };
        match named(&g).check_addresses().await {
            Err(SpawnError::Refused(e)) => {
                assert!(
                    e.contains("localhost resolves to") && e.contains("loopback"),
                    "{e}"
                )
            }
            other => panic!("{other:?}"),
        }
        let open = Arc::new(SourceGrant::any_host(true));
        assert!(named(&open).check_addresses().await.is_ok());
        let p = Plan::check("http://localhost:9/x", &[], &[], &open).unwrap();
        assert!(p.check_addresses().await.is_ok());
        let p = Plan::check("http://[::1]:9/x", &[], &[], &open).unwrap();
        assert!(p.check_addresses().await.is_ok());
        let p = Plan::check("http://no-such-host.invalid/x", &[], &[], &g).unwrap();
        assert!(matches!(
            p.check_addresses().await,
            Err(SpawnError::Resolve { .. })
        ));
        let p = plan("testsrc", DEMO_IN, &[]).unwrap();
        assert!(p.check_addresses().await.is_ok());
    }
}
