//! `dss mobile-send`: the reference phone, a client of the mobile ingest
//! (not part of the server). Streams a media file or a test pattern,
//! encoded live by FFmpeg, to a mobile ingest: over the TCP frame protocol
//! ([`crate::mobile::frame`]) as two MPEG-TS streams (video and audio)
//! plus a GPS position a second along a [`Route`], like the original
//! phones; or over HTTP as one muxed MPEG-TS body plus position posts. The
//! session id the server assigns (TCP) or the sender picks (HTTP) is kept
//! in a state file so the next run resumes the same session.
//!
//! Flow control is end to end: a chunk is read from FFmpeg only once the
//! previous one is written to the socket, so a slow server slows FFmpeg
//! down instead of filling a queue.
//!
//! The parts, one concern a file:
//!
//! * `tcp.rs`: the frame-protocol session (hello, reply, frames of video,
//!   audio and positions);
//! * `http.rs`: the HTTP session (one streamed upload, position posts);
//! * `encoder.rs`: the FFmpeg children that encode the input and the
//!   chunks read from them;
//! * `state.rs`: the state file that keeps each server's session id and
//!   secret;
//! * `report.rs`: what a run sent and why it ended.
//!
//! The wire format is the ingest's own ([`crate::mobile::frame`],
//! [`crate::mobile::route`]); the ingest knows nothing of this module.

mod encoder;
mod http;
mod report;
mod state;
mod tcp;
#[cfg(test)]
mod tests;

pub use encoder::{ffmpeg_args, Tracks};
pub use report::{End, Report, Stats};
pub use state::{default_state_path, load_ids, save_id, saved_id, Saved};

use crate::mobile::route::{Point, Route};
use encoder::Children;
use report::Counters;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

/// The TCP ingest's default address (the original DSS's port).
pub const DEFAULT_TCP_SERVER: &str = "127.0.0.1:9995";
/// The host's default HTTP address.
pub const DEFAULT_HTTP_SERVER: &str = "127.0.0.1:8000";
/// Largest chunk of FFmpeg output sent as one frame or body chunk (64
/// KiB: a Linux pipe's default capacity, so one read can drain it).
pub const MAX_CHUNK: usize = 64 * 1024;
/// How long connecting, the server's reply to the hello and each HTTP
/// position post may take (10 s: a loaded server on a phone network).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a position is sent (the original phones' rate).
pub const POSITION_INTERVAL: Duration = Duration::from_secs(1);
/// How long a stopping sender waits for a blocked write, the HTTP
/// response or FFmpeg's exit before giving up on them (3 s: an ingest
/// answers well within it, and Ctrl-C must feel immediate).
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Longest session id accepted (the original's ids are 24 hex digits;
/// this leaves room for other schemes while keeping URLs short).
const MAX_SESSION_ID: usize = 64;
/// Positions are rounded to 1e-7 degrees (about 1 cm): phones send no
/// more, and interpolation would add 15 noise digits.
const COORD_SCALE: f64 = 1e7;

/// The route's next position, rounded to [`COORD_SCALE`].
fn next_position(route: &mut Route) -> (f64, f64) {
    let Point { lat, lon } = route.next().unwrap_or(Point { lat: 0.0, lon: 0.0 });
    let round = |v: f64| (v * COORD_SCALE).round() / COORD_SCALE;
    (round(lat), round(lon))
}

/// What to stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// FFmpeg's `testsrc2` pattern (640x360, 25 fps) and a 440 Hz tone.
    Test,
    /// A media file (given to FFmpeg as `file:PATH`, never as a bare word
    /// FFmpeg could read as a protocol or option).
    File(PathBuf),
}

impl Input {
    /// The command-line argument: `test`, else a file (`./test` for a file
    /// of that name).
    pub fn from_arg(arg: impl Into<PathBuf>) -> Self {
        let arg = arg.into();
        if arg.as_os_str() == "test" {
            Self::Test
        } else {
            Self::File(arg)
        }
    }
}

/// What to send, where, and how.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// What to stream.
    pub input: Input,
    /// `HOST:PORT` of the TCP ingest or (HTTP mode) the host's HTTP API;
    /// `None` for [`DEFAULT_TCP_SERVER`] / [`DEFAULT_HTTP_SERVER`].
    pub server: Option<String>,
    /// The session id to ask for (else the state file's).
    pub id: Option<String>,
    /// The publish token.
    pub token: Option<String>,
    /// Where the phone is, one position a second.
    pub route: Route,
    /// HTTP mode instead of the TCP frame protocol.
    pub http: bool,
    /// Stop after this long streaming (after the handshake).
    pub duration: Option<Duration>,
    /// Send no audio.
    pub video_only: bool,
    /// Label video frames as audio and audio as video (type 2 / type 1),
    /// as the original reference sender did by mistake.
    pub swap_types: bool,
    /// The state file; `None` for [`default_state_path`].
    pub state: Option<PathBuf>,
    /// Largest frame payload / body chunk, at most [`MAX_CHUNK`].
    pub chunk: usize,
    /// The FFmpeg binary (a bare name is looked up in `PATH`).
    pub ffmpeg: PathBuf,
    /// See [`HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
}

impl SendOptions {
    /// Defaults: TCP to the default server, no id or token, state in the
    /// default place, 64 KiB chunks, `ffmpeg` from `PATH`.
    pub fn new(input: Input, route: Route) -> Self {
        Self {
            input,
            server: None,
            id: None,
            token: None,
            route,
            http: false,
            duration: None,
            video_only: false,
            swap_types: false,
            state: None,
            chunk: MAX_CHUNK,
            ffmpeg: PathBuf::from("ffmpeg"),
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// An option is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The TCP connection could not be made.
    #[error("cannot connect to {server}: {reason}")]
    Connect {
        /// The server.
        server: String,
        /// Why.
        reason: String,
    },
    /// The server did not answer the hello in time.
    #[error("{server} did not answer the hello within {secs} s")]
    NoReply {
        /// The server.
        server: String,
        /// The timeout.
        secs: u64,
    },
    /// The server refused the session.
    #[error("{server} refused the session: {reason}")]
    Refused {
        /// The server.
        server: String,
        /// How.
        reason: String,
    },
    /// The server's reply or a later frame is not the protocol.
    #[error("{server} answered outside the protocol: {reason}")]
    Protocol {
        /// The server.
        server: String,
        /// What was wrong.
        reason: String,
    },
    /// The connection failed after the handshake.
    #[error("connection to {server} failed: {reason}")]
    Lost {
        /// The server.
        server: String,
        /// Why.
        reason: String,
    },
    /// FFmpeg could not start or failed.
    #[error("ffmpeg ({what}) {reason}")]
    Ffmpeg {
        /// `video`, `audio` or `media`.
        what: &'static str,
        /// What happened, with FFmpeg's last error lines.
        reason: String,
    },
    /// An HTTP request failed or got a non-2xx status.
    #[error("POST {url}: {reason}")]
    Http {
        /// The request's URL.
        url: String,
        /// The status and body, or the transport error.
        reason: String,
    },
    /// The state file cannot be read or written.
    #[error("state file {path}: {reason}")]
    State {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Runs a sender until the input ends, the duration elapses, the server
/// closes, `shutdown` resolves (Ctrl-C) or something fails. Writes the
/// `id: <id>` line as soon as the id is known, notes (`note: ...`), and
/// the summary line last to `out`. Every FFmpeg started is killed and
/// reaped before it returns.
pub async fn run(
    opts: &SendOptions,
    out: &mut (dyn Write + Send),
    shutdown: impl Future<Output = ()>,
) -> Report {
    let counters = Arc::new(Counters::default());
    let mut id = None;
    let mut children = Children::default();
    let stop = CancellationToken::new();
    let end = {
        let work = async {
            check_options(opts)?;
            if opts.http {
                http::run(opts, out, &counters, &mut id, &mut children, &stop).await
            } else {
                tcp::run(opts, out, &counters, &mut id, &mut children, &stop).await
            }
        };
        tokio::pin!(work);
        tokio::pin!(shutdown);
        tokio::select! {
            r = &mut work => r,
            () = &mut shutdown => {
                // A clean stop (frame boundary, HTTP body ended) if the
                // run manages one in time.
                stop.cancel();
                timeout(STOP_GRACE, &mut work).await.unwrap_or(Ok(End::Interrupted))
            }
        }
    };
    children.stop().await;
    let report = Report {
        id,
        stats: counters.snapshot(),
        end,
    };
    say(out, &report.summary_line());
    report
}

fn check_options(opts: &SendOptions) -> Result<(), SendError> {
    if opts.chunk == 0 || opts.chunk > MAX_CHUNK {
        return Err(SendError::Invalid(format!(
            "chunk size must be 1..={MAX_CHUNK} bytes, got {}",
            opts.chunk
        )));
    }
    if let Some(id) = &opts.id {
        check_session_id(id).map_err(|e| SendError::Invalid(e.to_string()))?;
    }
    if let Some(d) = opts.duration {
        if d.is_zero() {
            return Err(SendError::Invalid("duration must be positive".into()));
        }
    }
    // Before connecting: FFmpeg would say it too, but only once the
    // session exists.
    if let Input::File(path) = &opts.input {
        std::fs::File::open(path)
            .map_err(|e| SendError::Invalid(format!("cannot read {}: {e}", path.display())))?;
    }
    Ok(())
}

/// A session id not of the form `[A-Za-z0-9_-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid session id {shown:?}: expected 1 to {max} of [A-Za-z0-9_-]")]
pub struct SessionIdError {
    /// The id, cut to `max` characters.
    pub shown: String,
    /// The longest id, in characters.
    pub max: usize,
}

/// Checks a session id's form: 1 to 64 of `[A-Za-z0-9_-]` (it goes into
/// URLs and the state file).
pub fn check_session_id(id: &str) -> Result<(), SessionIdError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_SESSION_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SessionIdError {
            shown: id.chars().take(MAX_SESSION_ID).collect(),
            max: MAX_SESSION_ID,
        })
    }
}

/// Writes a line and flushes it (the `id:` line is read by scripts while
/// the sender runs). A closed stdout does not stop the sender.
fn say(out: &mut (dyn Write + Send), line: &str) {
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The deadline of a run that started streaming now.
fn deadline(opts: &SendOptions) -> Option<Instant> {
    opts.duration.map(|d| Instant::now() + d)
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
