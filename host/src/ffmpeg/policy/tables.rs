//! The allow-list, in one place for review: every option a stream may
//! give FFmpeg on each side of `-i` ([`INPUT_OPTIONS`], [`OUTPUT_OPTIONS`]),
//! how each one's value is checked ([`Kind`]), and the lists of names a
//! value may take (demuxers, codecs, presets, flags, bitstream filters,
//! encoder parameter keys), each with the reason it holds what it holds
//! and leaves out what it leaves out.
//!
//! What is checked elsewhere: filter graphs against the filters of
//! [`super::lavfi`], source URLs against the schemes of [`super::sources`],
//! hosts against the instance's [`super::SourceGrant`].

/// Longest free-text value (`-user_agent`, `-referer`), in bytes.
pub(super) const MAX_TEXT: usize = 256;

/// How an option's value is checked.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
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
pub(super) struct Opt {
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    /// Accepts a stream specifier (`-c:v`, `-b:a:0`).
    pub(super) per_stream: bool,
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
pub(super) const BSFS: &[&str] = &[
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
pub(super) const INPUT_OPTIONS: &[Opt] = &[
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
pub(super) const OUTPUT_OPTIONS: &[Opt] = &[
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
