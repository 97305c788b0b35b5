//! `dss mobile-send`: the reference phone. Streams a media file or a test
//! pattern, encoded live by FFmpeg, to a mobile ingest: over the TCP frame
//! protocol ([`super::frame`]) as two MPEG-TS streams (video and audio)
//! plus a GPS position a second, like the original phones; or over HTTP as
//! one muxed MPEG-TS body plus position posts. The session id the server
//! assigns (TCP) or the sender picks (HTTP) is kept in a state file so the
//! next run resumes the same session.
//!
//! Flow control is end to end: a chunk is read from FFmpeg only once the
//! previous one is written to the socket, so a slow server slows FFmpeg
//! down instead of filling a queue.

use super::frame::{
    coord_payload, hello_payload, parse_hello, Frame, FrameCodec, FrameError, FrameKind,
};
use super::route::{Point, Route};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::Request;
use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::process::{Child, ChildStdout};
use tokio::time::{sleep, timeout, Instant, MissedTickBehavior};
use tokio_util::codec::{Encoder, FramedRead};
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
/// Bytes of each FFmpeg's stderr kept for error messages (4 KiB: its
/// last few error lines).
const STDERR_TAIL: usize = 4096;
/// Longest session id accepted (the original's ids are 24 hex digits;
/// this leaves room for other schemes while keeping URLs short).
const MAX_SESSION_ID: usize = 64;
/// Bytes of the new-session id this sender generates in HTTP mode (12:
/// 24 hex digits, the original's format).
const NEW_ID_BYTES: usize = 12;
/// Bytes of an HTTP error body read for the error message.
const MAX_ERROR_BODY: usize = 4096;
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

/// Which tracks one FFmpeg writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracks {
    /// Video only (`-an`).
    Video,
    /// Audio only (`-vn`).
    Audio,
    /// Both in one TS (audio only if the input has some).
    Both,
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

/// Why a run ended normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// FFmpeg reached the end of the input.
    InputEnded,
    /// `--duration` elapsed.
    Duration,
    /// The server closed the connection (TCP) after the handshake.
    ServerClosed,
    /// Ctrl-C (or the caller's shutdown future).
    Interrupted,
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InputEnded => "the input ended",
            Self::Duration => "the duration elapsed",
            Self::ServerClosed => "the server closed the connection",
            Self::Interrupted => "interrupted",
        })
    }
}

/// What a run sent, in bytes (payloads and frame headers; in HTTP mode
/// the body and position JSON, and the muxed TS counts as video).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Everything written.
    pub total: u64,
    /// Video payload bytes (by source, whatever `--swap-types` labels).
    pub video: u64,
    /// Audio payload bytes (by source).
    pub audio: u64,
    /// Positions sent.
    pub positions: u64,
}

/// The live counters behind [`Stats`] (kept outside the run's future so
/// that an interrupted run still reports them).
#[derive(Debug, Default)]
struct Counters {
    total: AtomicU64,
    video: AtomicU64,
    audio: AtomicU64,
    positions: AtomicU64,
}

impl Counters {
    fn add(c: &AtomicU64, n: usize) {
        c.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Stats {
        Stats {
            total: self.total.load(Ordering::Relaxed),
            video: self.video.load(Ordering::Relaxed),
            audio: self.audio.load(Ordering::Relaxed),
            positions: self.positions.load(Ordering::Relaxed),
        }
    }
}

/// How a run went.
#[derive(Debug)]
pub struct Report {
    /// The session id, once known.
    pub id: Option<String>,
    /// What was sent.
    pub stats: Stats,
    /// Why it ended, or why it failed.
    pub end: Result<End, SendError>,
}

impl Report {
    /// `sent <total> bytes: <v> video, <a> audio, <n> positions, id <id>`
    /// (`id -` when no id was known).
    pub fn summary_line(&self) -> String {
        let s = &self.stats;
        format!(
            "sent {} bytes: {} video, {} audio, {} positions, id {}",
            s.total,
            s.video,
            s.audio,
            s.positions,
            self.id.as_deref().unwrap_or("-")
        )
    }
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
                run_http(opts, out, &counters, &mut id, &mut children, &stop).await
            } else {
                run_tcp(opts, out, &counters, &mut id, &mut children, &stop).await
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
        check_session_id(id).map_err(SendError::Invalid)?;
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

/// Checks a session id's form: 1 to 64 of `[A-Za-z0-9_-]` (it goes into
/// URLs and the state file).
pub fn check_session_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= MAX_SESSION_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        let shown: String = id.chars().take(MAX_SESSION_ID).collect();
        Err(format!(
            "invalid session id {shown:?}: expected 1 to {MAX_SESSION_ID} of [A-Za-z0-9_-]"
        ))
    }
}

/// Writes a line and flushes it (the `id:` line is read by scripts while
/// the sender runs). A closed stdout does not stop the sender.
fn say(out: &mut (dyn Write + Send), line: &str) {
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

// ---------------------------------------------------------------- state

/// `$XDG_STATE_HOME/dss/mobile-send.json`, else
/// `$HOME/.local/state/dss/mobile-send.json` (relative values are ignored,
/// as the XDG specification says).
pub fn default_state_path() -> Option<PathBuf> {
    state_path_from(std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"))
}

fn state_path_from(xdg: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let absolute = |v: Option<OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    absolute(xdg)
        .map(|d| d.join("dss/mobile-send.json"))
        .or_else(|| absolute(home).map(|h| h.join(".local/state/dss/mobile-send.json")))
}

/// What the state file keeps for a server: the session id and, since
/// phones own their ids, the session secret that reclaims it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Saved {
    /// The session id.
    pub id: String,
    /// Its session secret, when the server gave (or the sender chose) one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// An entry of the state file: a bare id (written before secrets), or an
/// id with its secret.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Entry {
    Id(String),
    Saved(Saved),
}

/// The state file's map of server (`HOST:PORT` for TCP, `http://HOST:PORT`
/// for HTTP) to session; empty when the file does not exist.
pub fn load_ids(path: &Path) -> Result<BTreeMap<String, Saved>, SendError> {
    let fail = |reason: String| SendError::State {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<BTreeMap<String, Entry>>(&bytes)
            .map(|m| {
                m.into_iter()
                    .map(|(k, e)| {
                        let saved = match e {
                            Entry::Id(id) => Saved { id, secret: None },
                            Entry::Saved(s) => s,
                        };
                        (k, saved)
                    })
                    .collect()
            })
            .map_err(|e| {
                fail(format!(
                    "not a JSON object of server to session ({e}); fix or delete it"
                ))
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(fail(e.to_string())),
    }
}

/// The session saved for `server`, its id checked.
pub fn saved_id(path: &Path, server: &str) -> Result<Option<Saved>, SendError> {
    let Some(saved) = load_ids(path)?.remove(server) else {
        return Ok(None);
    };
    check_session_id(&saved.id).map_err(|reason| SendError::State {
        path: path.display().to_string(),
        reason: format!("entry for {server}: {reason}"),
    })?;
    Ok(Some(saved))
}

/// Records `session` for `server`: creates the parent directories, writes
/// a temporary file (mode 0600: the secret reclaims the phone's id) next
/// to it and renames it over the old one, so a crash never leaves a
/// half-written file.
pub fn save_id(path: &Path, server: &str, session: &Saved) -> Result<(), SendError> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |reason: String| SendError::State {
        path: path.display().to_string(),
        reason,
    };
    let mut ids = load_ids(path)?;
    ids.insert(server.to_string(), session.clone());
    let mut text = serde_json::to_string_pretty(&ids).map_err(|e| fail(e.to_string()))?;
    text.push('\n');
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    let name = path
        .file_name()
        .ok_or_else(|| fail("not a file name".into()))?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e.to_string()));
    }
    Ok(())
}

/// The state file to use, if any.
fn state_path(opts: &SendOptions) -> Option<PathBuf> {
    opts.state.clone().or_else(default_state_path)
}

/// Saves the session, or says why it could not (the session goes on).
fn remember(out: &mut (dyn Write + Send), state: Option<&Path>, server: &str, session: &Saved) {
    match state {
        Some(p) => {
            if let Err(e) = save_id(p, server, session) {
                say(out, &format!("note: id not saved: {e}"));
            }
        }
        None => say(out, "note: id not saved: no $XDG_STATE_HOME or $HOME"),
    }
}

// --------------------------------------------------------------- ffmpeg

/// FFmpeg's arguments for `tracks` of `input`: real-time (`-re`) H.264
/// (`libx264 veryfast zerolatency`, a keyframe every second so viewers
/// start fast) and 64 kb/s AAC, as MPEG-TS on stdout, flushed after every
/// packet so the server gets data as it is made.
pub fn ffmpeg_args(input: &Input, tracks: Tracks) -> Vec<OsString> {
    fn push(a: &mut Vec<OsString>, args: &[&str]) {
        a.extend(args.iter().map(OsString::from));
    }
    let mut a = Vec::new();
    push(
        &mut a,
        &["-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"],
    );
    let (video, audio) = match tracks {
        Tracks::Video => (true, false),
        Tracks::Audio => (false, true),
        Tracks::Both => (true, true),
    };
    let maps: &[&str] = match input {
        Input::Test => {
            if video {
                push(
                    &mut a,
                    &["-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"],
                );
            }
            if audio {
                push(
                    &mut a,
                    &[
                        "-re",
                        "-f",
                        "lavfi",
                        "-i",
                        "sine=frequency=440:sample_rate=48000",
                    ],
                );
            }
            match tracks {
                Tracks::Video => &["-map", "0:v:0"],
                Tracks::Audio => &["-map", "0:a:0"],
                Tracks::Both => &["-map", "0:v:0", "-map", "1:a:0"],
            }
        }
        Input::File(path) => {
            push(&mut a, &["-re", "-i"]);
            let mut url = OsString::from("file:");
            url.push(path);
            a.push(url);
            match tracks {
                Tracks::Video => &["-map", "0:v:0"],
                Tracks::Audio => &["-map", "0:a:0"],
                // `?`: a file without audio still streams its video.
                Tracks::Both => &["-map", "0:v:0", "-map", "0:a:0?"],
            }
        }
    };
    push(&mut a, maps);
    if video {
        push(
            &mut a,
            &[
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-tune",
                "zerolatency",
                "-pix_fmt",
                "yuv420p",
                "-force_key_frames",
                "expr:gte(t,n_forced*1)",
            ],
        );
    } else {
        push(&mut a, &["-vn"]);
    }
    if audio {
        push(&mut a, &["-c:a", "aac", "-b:a", "64k"]);
    } else {
        push(&mut a, &["-an"]);
    }
    push(&mut a, &["-f", "mpegts", "-flush_packets", "1", "pipe:1"]);
    a
}

/// A running FFmpeg.
struct Ffmpeg {
    what: &'static str,
    child: Child,
    stderr: Arc<Mutex<VecDeque<u8>>>,
}

impl Ffmpeg {
    /// Starts FFmpeg in its own process group (a terminal's Ctrl-C reaches
    /// only the sender, which then stops it), killed if dropped.
    fn spawn(
        binary: &Path,
        what: &'static str,
        args: Vec<OsString>,
    ) -> Result<(Self, ChildStdout), SendError> {
        let mut child = tokio::process::Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .map_err(|e| SendError::Ffmpeg {
                what,
                reason: format!("cannot start {}: {e}", binary.display()),
            })?;
        let stdout = child.stdout.take().ok_or_else(|| SendError::Ffmpeg {
            what,
            reason: "has no stdout".into(),
        })?;
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let tail = stderr.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = pipe.read(&mut buf).await {
                    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                    t.extend(&buf[..n]);
                    let excess = t.len().saturating_sub(STDERR_TAIL);
                    t.drain(..excess);
                }
            });
        }
        Ok((
            Self {
                what,
                child,
                stderr,
            },
            stdout,
        ))
    }

    /// FFmpeg's last error lines, joined.
    fn log(&self) -> String {
        let t = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        let bytes: Vec<u8> = t.iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let tail = &lines[lines.len().saturating_sub(3)..];
        if tail.is_empty() {
            "no error output".into()
        } else {
            tail.join(" | ")
        }
    }

    /// Its exit status once its output ended (waiting up to
    /// [`STOP_GRACE`]), and its stderr a moment later.
    async fn exit(&mut self) -> Result<ExitStatus, String> {
        match timeout(STOP_GRACE, self.child.wait()).await {
            Ok(Ok(status)) => {
                // Let the stderr reader catch up with the last lines.
                sleep(Duration::from_millis(50)).await;
                Ok(status)
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("closed its output but did not exit".into()),
        }
    }

    /// An error for a run that ended because this FFmpeg failed.
    async fn failure(&mut self) -> Option<SendError> {
        let reason = match self.exit().await {
            Ok(status) if status.success() => return None,
            Ok(status) => format!("failed ({status}): {}", self.log()),
            Err(e) => e,
        };
        Some(SendError::Ffmpeg {
            what: self.what,
            reason,
        })
    }
}

/// The FFmpeg processes of a run, owned outside its future so that they
/// are killed and reaped however it ends.
#[derive(Default)]
struct Children {
    /// The video FFmpeg (HTTP mode: the one muxing both tracks).
    video: Option<Ffmpeg>,
    /// The audio FFmpeg (TCP mode).
    audio: Option<Ffmpeg>,
}

impl Children {
    async fn stop(&mut self) {
        for mut p in [self.video.take(), self.audio.take()].into_iter().flatten() {
            let _ = p.child.start_kill();
            let _ = timeout(STOP_GRACE, p.child.wait()).await;
        }
    }
}

/// Reads from `src`, or waits forever when there is none.
async fn read_or_wait<R: AsyncRead + Unpin>(
    src: Option<&mut R>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match src {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
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

// ------------------------------------------------------------------ TCP

/// The writing side of a TCP session.
struct Link {
    server: String,
    wr: OwnedWriteHalf,
    codec: FrameCodec,
    buf: BytesMut,
}

impl Link {
    /// Writes one frame (waiting for the socket: the back-pressure).
    async fn send(
        &mut self,
        counters: &Counters,
        kind: FrameKind,
        payload: Bytes,
    ) -> Result<(), WriteError> {
        self.buf.clear();
        self.codec
            .encode(Frame::new(kind, payload), &mut self.buf)
            .map_err(|e| WriteError::Other(e.to_string()))?;
        self.wr.write_all(&self.buf).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                WriteError::Closed
            } else {
                WriteError::Other(e.to_string())
            }
        })?;
        Counters::add(&counters.total, self.buf.len());
        Ok(())
    }
}

/// A failed frame write.
enum WriteError {
    /// The server had closed the connection (EPIPE).
    Closed,
    /// Anything else.
    Other(String),
}

async fn run_tcp(
    opts: &SendOptions,
    out: &mut (dyn Write + Send),
    counters: &Counters,
    id_slot: &mut Option<String>,
    children: &mut Children,
    stop: &CancellationToken,
) -> Result<End, SendError> {
    let server = opts
        .server
        .clone()
        .unwrap_or_else(|| DEFAULT_TCP_SERVER.into());
    let state = state_path(opts);
    let saved = match &state {
        Some(p) => saved_id(p, &server)?,
        None => None,
    };
    // The saved secret goes with the saved id (or the same id given).
    let asked = match (&opts.id, saved) {
        (Some(id), Some(s)) if &s.id == id => Some(s),
        (Some(id), _) => Some(Saved {
            id: id.clone(),
            secret: None,
        }),
        (None, saved) => saved,
    };
    let handshake = handshake(opts, &server, asked.as_ref(), counters);
    let (mut link, mut replies, session) = tokio::select! {
        r = handshake => r?,
        () = stop.cancelled() => return Ok(End::Interrupted),
    };
    let id = session.id.clone();
    say(out, &format!("id: {id}"));
    *id_slot = Some(id.clone());
    remember(out, state.as_deref(), &server, &session);

    let (video, video_out) = Ffmpeg::spawn(
        &opts.ffmpeg,
        "video",
        ffmpeg_args(&opts.input, Tracks::Video),
    )?;
    children.video = Some(video);
    let mut audio_out = None;
    if !opts.video_only {
        match Ffmpeg::spawn(
            &opts.ffmpeg,
            "audio",
            ffmpeg_args(&opts.input, Tracks::Audio),
        ) {
            Ok((audio, o)) => {
                children.audio = Some(audio);
                audio_out = Some(o);
            }
            Err(e) => say(out, &format!("note: {e}; continuing video-only")),
        }
    }
    let deadline = deadline(opts);
    let forward = forward(
        opts,
        out,
        counters,
        &mut link,
        &mut replies,
        video_out,
        audio_out,
        children,
        stop,
        deadline,
    );
    // A write blocked past the deadline is abandoned (the frame
    // boundary stop inside `forward` is the normal way out).
    let end = match deadline {
        Some(at) => tokio::time::timeout_at(at + STOP_GRACE, forward)
            .await
            .unwrap_or(Ok(End::Duration)),
        None => forward.await,
    };
    // A FIN after the last whole frame: the server sees a clean end.
    let _ = timeout(STOP_GRACE, link.wr.shutdown()).await;
    end
}

/// Connects, says hello (with the session asked for and its secret) and
/// reads the one reply frame: the connection and the session assigned.
async fn handshake(
    opts: &SendOptions,
    server: &str,
    asked: Option<&Saved>,
    counters: &Counters,
) -> Result<(Link, FramedRead<OwnedReadHalf, FrameCodec>, Saved), SendError> {
    let connect = |reason: String| SendError::Connect {
        server: server.to_string(),
        reason,
    };
    let stream = timeout(
        opts.handshake_timeout,
        tokio::net::TcpStream::connect(server),
    )
    .await
    .map_err(|_| connect("timed out".into()))?
    .map_err(|e| connect(e.to_string()))?;
    // Frames are written whole; small position frames must not wait.
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let mut link = Link {
        server: server.to_string(),
        wr,
        codec: FrameCodec::default(),
        buf: BytesMut::new(),
    };
    let refused = |reason: String| SendError::Refused {
        server: server.to_string(),
        reason,
    };
    let protocol = |reason: String| SendError::Protocol {
        server: server.to_string(),
        reason,
    };
    let hello = hello_payload(
        asked.map(|s| s.id.as_str()),
        opts.token.as_deref(),
        asked.and_then(|s| s.secret.as_deref()),
    );
    link.send(counters, FrameKind::Meta, hello)
        .await
        .map_err(|e| match e {
            WriteError::Closed => refused("it closed the connection".into()),
            WriteError::Other(e) => connect(e),
        })?;
    let mut replies = FramedRead::new(rd, FrameCodec::default());
    let reply = match timeout(opts.handshake_timeout, replies.next()).await {
        Err(_) => {
            return Err(SendError::NoReply {
                server: server.to_string(),
                secs: opts.handshake_timeout.as_secs(),
            })
        }
        Ok(None) => {
            return Err(refused(
                "it closed the connection without answering the hello".into(),
            ))
        }
        Ok(Some(Err(FrameError::Io(e)))) => {
            return Err(refused(format!("the connection failed: {e}")))
        }
        Ok(Some(Err(e))) => return Err(protocol(e.to_string())),
        Ok(Some(Ok(f))) if f.kind != FrameKind::Meta => {
            return Err(protocol(format!(
                "a {} frame instead of the metadata reply",
                f.kind
            )))
        }
        Ok(Some(Ok(f))) => f,
    };
    let reply = parse_hello(&reply.payload).map_err(|e| protocol(format!("reply: {e}")))?;
    let id = reply
        .id
        .ok_or_else(|| refused("it answered with an empty id".into()))?;
    check_session_id(&id).map_err(|e| protocol(format!("reply: {e}")))?;
    Ok((
        link,
        replies,
        Saved {
            id,
            secret: reply.secret,
        },
    ))
}

/// Forwards FFmpeg's output and the positions until something ends it.
#[allow(clippy::too_many_arguments)]
async fn forward(
    opts: &SendOptions,
    out: &mut (dyn Write + Send),
    counters: &Counters,
    link: &mut Link,
    replies: &mut FramedRead<OwnedReadHalf, FrameCodec>,
    mut video_out: ChildStdout,
    mut audio_out: Option<ChildStdout>,
    children: &mut Children,
    stop: &CancellationToken,
    deadline: Option<Instant>,
) -> Result<End, SendError> {
    let (video_kind, audio_kind) = if opts.swap_types {
        (FrameKind::Audio, FrameKind::Video)
    } else {
        (FrameKind::Video, FrameKind::Audio)
    };
    let server = link.server.clone();
    let lost = |e: WriteError| match e {
        WriteError::Closed => Ok(End::ServerClosed),
        WriteError::Other(reason) => Err(SendError::Lost {
            server: server.clone(),
            reason,
        }),
    };
    let mut vbuf = vec![0u8; opts.chunk];
    let mut abuf = vec![0u8; opts.chunk];
    let mut route = opts.route.clone();
    let mut ticker = tokio::time::interval(POSITION_INTERVAL);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(End::Interrupted),
            () = sleep_until_opt(deadline) => return Ok(End::Duration),
            r = video_out.read(&mut vbuf) => {
                let n = r.unwrap_or(0);
                if n == 0 {
                    let failed = match children.video.as_mut() {
                        Some(v) => v.failure().await,
                        None => None,
                    };
                    return failed.map_or(Ok(End::InputEnded), Err);
                }
                let payload = Bytes::copy_from_slice(&vbuf[..n]);
                if let Err(e) = link.send(counters, video_kind, payload).await {
                    return lost(e);
                }
                Counters::add(&counters.video, n);
            }
            r = read_or_wait(audio_out.as_mut(), &mut abuf) => {
                let n = r.unwrap_or(0);
                if n == 0 {
                    audio_out = None;
                    let sent = counters.audio.load(Ordering::Relaxed);
                    let why = match children.audio.as_mut() {
                        Some(a) => a.failure().await.map(|e| e.to_string()),
                        None => None,
                    };
                    match why {
                        Some(why) => say(out, &format!("note: no audio: {why}; continuing video-only")),
                        None if sent == 0 => say(out, "note: no audio in the input; continuing video-only"),
                        None => {}
                    }
                    continue;
                }
                let payload = Bytes::copy_from_slice(&abuf[..n]);
                if let Err(e) = link.send(counters, audio_kind, payload).await {
                    return lost(e);
                }
                Counters::add(&counters.audio, n);
            }
            _ = ticker.tick() => {
                let (lat, lon) = next_position(&mut route);
                if let Err(e) = link.send(counters, FrameKind::UserData, coord_payload(lat, lon)).await {
                    return lost(e);
                }
                Counters::add(&counters.positions, 1);
            }
            r = replies.next() => match r {
                None => return Ok(End::ServerClosed),
                Some(Err(FrameError::Io(e))) => return Err(SendError::Lost {
                    server: server.clone(),
                    reason: e.to_string(),
                }),
                Some(Err(e)) => return Err(SendError::Protocol {
                    server: server.clone(),
                    reason: e.to_string(),
                }),
                Some(Ok(f)) => say(out, &format!("note: ignored a {} frame from the server", f.kind)),
            },
        }
    }
}

// ----------------------------------------------------------------- HTTP

type Body = UnsyncBoxBody<Bytes, std::io::Error>;
type Client =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Body>;

/// An error's message with its causes (hyper's own is "client error
/// (Connect)").
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// Sends `req`; a non-2xx status is an error carrying the status and the
/// start of the body.
async fn post(client: &Client, req: Request<Body>) -> Result<(), SendError> {
    let url = req.uri().to_string();
    let fail = |reason: String| SendError::Http {
        url: url.clone(),
        reason,
    };
    let resp = client.request(req).await.map_err(|e| fail(chain(&e)))?;
    let status = resp.status();
    // Read (a bounded part of) the body: the connection can then be reused.
    let body = Limited::new(resp.into_body(), MAX_ERROR_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    if status.is_success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&body);
    let text: String = text.trim().chars().take(300).collect();
    Err(fail(if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    }))
}

async fn run_http(
    opts: &SendOptions,
    out: &mut (dyn Write + Send),
    counters: &Arc<Counters>,
    id_slot: &mut Option<String>,
    children: &mut Children,
    stop: &CancellationToken,
) -> Result<End, SendError> {
    let server = opts
        .server
        .clone()
        .unwrap_or_else(|| DEFAULT_HTTP_SERVER.into());
    let authority: hyper::http::uri::Authority = server
        .parse()
        .ok()
        .filter(|a: &hyper::http::uri::Authority| !a.as_str().contains('@'))
        .ok_or_else(|| {
            SendError::Invalid(format!("invalid server {server:?}: expected HOST:PORT"))
        })?;
    let key = format!("http://{authority}");
    let state = state_path(opts);
    let saved = match &state {
        Some(p) => saved_id(p, &key)?,
        None => None,
    };
    let id = match (&opts.id, &saved) {
        (Some(id), _) => id.clone(),
        (None, Some(s)) => s.id.clone(),
        (None, None) => new_id()?,
    };
    // Over HTTP the sender chooses its session secret (it needs it for the
    // positions while the upload runs): the saved one for the saved id.
    let secret = match saved {
        Some(s) if s.id == id => match s.secret {
            Some(secret) => secret,
            None => new_secret()?,
        },
        _ => new_secret()?,
    };
    say(out, &format!("id: {id}"));
    *id_slot = Some(id.clone());
    remember(
        out,
        state.as_deref(),
        &key,
        &Saved {
            id: id.clone(),
            secret: Some(secret.clone()),
        },
    );
    let mut secret_value = HeaderValue::from_str(&secret)
        .map_err(|_| SendError::Invalid("the session secret is not a valid header value".into()))?;
    secret_value.set_sensitive(true);
    let auth = match &opts.token {
        Some(t) => {
            let mut v = HeaderValue::from_str(&format!("Bearer {t}"))
                .map_err(|_| SendError::Invalid("the token is not a valid header value".into()))?;
            v.set_sensitive(true);
            Some(v)
        }
        None => None,
    };
    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();

    let tracks = if opts.video_only {
        Tracks::Video
    } else {
        Tracks::Both
    };
    let (media, stdout) = Ffmpeg::spawn(&opts.ffmpeg, "media", ffmpeg_args(&opts.input, tracks))?;
    children.video = Some(media);
    let (end_body, body_ended) = tokio::sync::oneshot::channel::<()>();
    let body_counters = counters.clone();
    let body = tokio_util::io::ReaderStream::with_capacity(stdout, opts.chunk)
        .take_until(body_ended)
        .map(move |chunk| {
            let counters = &body_counters;
            chunk.map(|b| {
                Counters::add(&counters.total, b.len());
                Counters::add(&counters.video, b.len());
                hyper::body::Frame::data(b)
            })
        });
    let url = format!("http://{authority}/mobile/{id}");
    let mut req = Request::post(&url)
        .header(CONTENT_TYPE, "video/mp2t")
        .header(super::SECRET_HEADER, secret_value.clone());
    if let Some(a) = &auth {
        req = req.header(AUTHORIZATION, a.clone());
    }
    let req = req
        .body(BodyExt::boxed_unsync(StreamBody::new(body)))
        .map_err(|e| SendError::Invalid(format!("{url}: {e}")))?;
    let upload = post(&client, req);
    let positions = post_positions(
        &client,
        format!("http://{authority}/mobile/{id}/position"),
        auth,
        secret_value,
        opts.route.clone(),
        counters,
    );
    tokio::pin!(upload, positions);
    let deadline = deadline(opts);
    let mut end_body = Some(end_body);
    let mut end = End::InputEnded;
    let mut grace = None;
    loop {
        tokio::select! {
            r = &mut upload => {
                r?;
                break;
            }
            e = &mut positions => return Err(e),
            () = sleep_until_opt(deadline), if end_body.is_some() => {
                end = End::Duration;
                if let Some(t) = end_body.take() {
                    let _ = t.send(());
                }
                grace = Some(Instant::now() + STOP_GRACE);
            }
            () = stop.cancelled(), if end_body.is_some() => {
                end = End::Interrupted;
                if let Some(t) = end_body.take() {
                    let _ = t.send(());
                }
                grace = Some(Instant::now() + STOP_GRACE);
            }
            () = sleep_until_opt(grace) => {
                return Err(SendError::Http {
                    url,
                    reason: format!("no response within {} s of the end of the body", STOP_GRACE.as_secs()),
                });
            }
        }
    }
    if end == End::InputEnded {
        if let Some(e) = match children.video.as_mut() {
            Some(m) => m.failure().await,
            None => None,
        } {
            return Err(e);
        }
    }
    Ok(end)
}

/// A new 24-hex session id.
fn new_id() -> Result<String, SendError> {
    crate::ids::random_hex(NEW_ID_BYTES)
        .map_err(|e| SendError::Invalid(format!("cannot generate a session id: {e}")))
}

/// A new session secret (32 hex digits) for the HTTP ingest.
fn new_secret() -> Result<String, SendError> {
    crate::ids::random_hex(16)
        .map_err(|e| SendError::Invalid(format!("cannot generate a session secret: {e}")))
}

/// Posts a position a second until a post fails (then returns why).
async fn post_positions(
    client: &Client,
    url: String,
    auth: Option<HeaderValue>,
    secret: HeaderValue,
    mut route: Route,
    counters: &Counters,
) -> SendError {
    let mut ticker = tokio::time::interval(POSITION_INTERVAL);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let (lat, lon) = next_position(&mut route);
        let json = serde_json::json!({ "latitude": lat, "longitude": lon }).to_string();
        let len = json.len();
        let mut req = Request::post(&url)
            .header(CONTENT_TYPE, "application/json")
            .header(super::SECRET_HEADER, secret.clone());
        if let Some(a) = &auth {
            req = req.header(AUTHORIZATION, a.clone());
        }
        let body = Full::new(Bytes::from(json))
            .map_err(|never| match never {})
            .boxed_unsync();
        let req = match req.body(body) {
            Ok(r) => r,
            Err(e) => return SendError::Invalid(format!("{url}: {e}")),
        };
        match timeout(HANDSHAKE_TIMEOUT, post(client, req)).await {
            Ok(Ok(())) => {}
            // 409: the upload is not admitted yet (the host may still be
            // listing the phone) or is being replaced; the next second's
            // position may land.
            Ok(Err(SendError::Http { reason, .. }))
                if reason.starts_with(&format!("HTTP {}", hyper::StatusCode::CONFLICT)) =>
            {
                continue
            }
            Ok(Err(e)) => return e,
            Err(_) => {
                return SendError::Http {
                    url,
                    reason: format!("no response within {} s", HANDSHAKE_TIMEOUT.as_secs()),
                }
            }
        }
        Counters::add(&counters.total, len);
        Counters::add(&counters.positions, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mobile::frame::{meta_reply, parse_user_data, Hello, UserData};
    use futures_util::SinkExt;
    use tokio::net::TcpListener;
    use tokio_util::codec::Framed;

    const ASSIGNED: &str = "0123456789abcdef01234567";

    /// A fresh scratch directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dss-mobile-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn route() -> Route {
        Route::follow(
            crate::mobile::route::parse_waypoints("-22.86,-43.23;-22.87,-43.24").unwrap(),
            15.0,
        )
        .unwrap()
    }

    fn options(server: String, state: &Path) -> SendOptions {
        let mut o = SendOptions::new(Input::Test, route());
        o.server = Some(server);
        o.state = Some(state.to_path_buf());
        o.duration = Some(Duration::from_secs(3));
        o
    }

    /// What the fake ingest got on one connection.
    #[derive(Debug, Default)]
    struct Seen {
        hello: Hello,
        /// Payloads concatenated, by frame type 1 and 2.
        type1: Vec<u8>,
        type2: Vec<u8>,
        type1_frames: usize,
        type2_frames: usize,
        first_bytes: Vec<u8>,
        coords: Vec<(f64, f64)>,
    }

    /// The server side of the TCP protocol for `n` connections in turn:
    /// reads the hello, answers with the id asked for (else
    /// [`ASSIGNED`]), then reads until a clean end.
    async fn fake_ingest(listener: TcpListener, n: usize) -> Vec<Seen> {
        let mut all = Vec::new();
        for _ in 0..n {
            let (sock, _) = listener.accept().await.unwrap();
            let mut framed = Framed::new(sock, FrameCodec::default());
            let hello = framed.next().await.unwrap().unwrap();
            assert_eq!(hello.kind, FrameKind::Meta);
            let mut seen = Seen {
                hello: parse_hello(&hello.payload).unwrap(),
                ..Seen::default()
            };
            let id = seen.hello.id.clone().unwrap_or_else(|| ASSIGNED.into());
            framed
                .send(Frame::new(
                    FrameKind::Meta,
                    meta_reply(&id, "k3y-k3y-k3y-k3y!"),
                ))
                .await
                .unwrap();
            while let Some(f) = framed.next().await {
                let f = f.expect("frames end cleanly");
                match f.kind {
                    FrameKind::Video | FrameKind::Audio => {
                        seen.first_bytes.push(f.payload[0]);
                        let (buf, n) = if f.kind == FrameKind::Video {
                            (&mut seen.type1, &mut seen.type1_frames)
                        } else {
                            (&mut seen.type2, &mut seen.type2_frames)
                        };
                        buf.extend_from_slice(&f.payload);
                        *n += 1;
                    }
                    FrameKind::UserData => match parse_user_data(&f.payload).unwrap() {
                        UserData::Coord {
                            latitude,
                            longitude,
                        } => seen.coords.push((latitude, longitude)),
                        other => panic!("unexpected {other:?}"),
                    },
                    FrameKind::Meta => panic!("a second hello"),
                }
            }
            all.push(seen);
        }
        all
    }

    /// Whether `ts` is MPEG-TS (every whole 188-byte packet starts with the
    /// sync byte) and carries an elementary stream of `stream_type` (0x1b
    /// H.264, 0x0f AAC) in its PMT as PID 0x100 (+`pid_offset`), as
    /// FFmpeg's muxer writes it.
    fn carries(ts: &[u8], stream_type: u8, pid_offset: u8) -> bool {
        assert!(ts.len() >= 188, "only {} bytes", ts.len());
        assert!(ts.chunks_exact(188).all(|p| p[0] == 0x47), "not TS");
        ts.windows(3).any(|w| w == [stream_type, 0xe1, pid_offset])
    }

    fn output(out: &[u8]) -> String {
        String::from_utf8(out.to_vec()).unwrap()
    }

    /// The `id:` line's id.
    fn printed_id(out: &str) -> &str {
        out.lines()
            .find_map(|l| l.strip_prefix("id: "))
            .unwrap_or_else(|| panic!("no id line in {out:?}"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tcp_sessions_send_both_tracks_and_positions_and_resume_their_id() {
        let dir = scratch("tcp");
        let state = dir.join("state/mobile-send.json");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap().to_string();
        let ingest = tokio::spawn(fake_ingest(listener, 2));

        // First run: no id known, the server assigns one.
        let mut out = Vec::new();
        let opts = options(server.clone(), &state);
        let report = run(&opts, &mut out, std::future::pending()).await;
        let text = output(&out);
        assert_eq!(report.end.as_ref().unwrap(), &End::Duration, "{text}");
        assert_eq!(printed_id(&text), ASSIGNED);
        assert_eq!(
            text.lines().last().unwrap(),
            report.summary_line(),
            "the summary comes last"
        );
        assert_eq!(
            saved_id(&state, &server).unwrap(),
            Some(Saved {
                id: ASSIGNED.into(),
                secret: Some("k3y-k3y-k3y-k3y!".into())
            })
        );

        // Second run: the saved id is asked for with its secret; labels
        // swapped.
        let mut out = Vec::new();
        let mut opts = options(server.clone(), &state);
        opts.swap_types = true;
        opts.token = Some("s3cret".into());
        opts.chunk = 512;
        let report2 = run(&opts, &mut out, std::future::pending()).await;
        assert_eq!(report2.end.as_ref().unwrap(), &End::Duration);
        assert_eq!(printed_id(&output(&out)), ASSIGNED);

        let seen = ingest.await.unwrap();
        let (first, second) = (&seen[0], &seen[1]);
        assert_eq!(first.hello, Hello::default());
        assert_eq!(
            second.hello,
            Hello {
                id: Some(ASSIGNED.into()),
                token: Some("s3cret".into()),
                secret: Some("k3y-k3y-k3y-k3y!".into()),
            }
        );
        // Unswapped: video (H.264) as type 1, audio (AAC) as type 2, each
        // a TS of its own starting on a packet.
        assert!(carries(&first.type1, 0x1b, 0x00));
        assert!(carries(&first.type2, 0x0f, 0x00));
        assert_eq!(first.first_bytes.first(), Some(&0x47));
        assert!(first.type1_frames >= 2 && first.type2_frames >= 1);
        // Swapped: the labels, not the contents.
        assert!(carries(&second.type1, 0x0f, 0x00));
        assert!(carries(&second.type2, 0x1b, 0x00));
        // With 512-byte chunks, every frame is at most that.
        assert!(second.type1_frames >= second.type1.len() / 512);
        // A position a second, on the route.
        for s in [first, second] {
            assert!(s.coords.len() >= 2, "{:?}", s.coords);
            for &(lat, lon) in &s.coords {
                assert!((-22.871..=-22.859).contains(&lat), "{lat}");
                assert!((-43.241..=-43.229).contains(&lon), "{lon}");
            }
        }
        assert_ne!(first.coords[0], first.coords[1], "the phone moves");
        // The counts add up: payloads plus a header per frame.
        let s = report.stats;
        assert_eq!(s.video, first.type1.len() as u64);
        assert_eq!(s.audio, first.type2.len() as u64);
        assert_eq!(s.positions, first.coords.len() as u64);
        assert!(s.total > s.video + s.audio);
        assert_eq!(report2.stats.video, second.type2.len() as u64);
    }

    #[tokio::test]
    async fn a_file_without_audio_streams_video_only_until_it_ends() {
        let dir = scratch("file");
        let clip = dir.join("clip with space.ts");
        let made = tokio::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=320x180:rate=25")
            .args(["-t", "1.2", "-c:v", "libx264", "-preset", "ultrafast", "-y"])
            .arg(&clip)
            .status()
            .await
            .unwrap();
        assert!(made.success());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap().to_string();
        let ingest = tokio::spawn(fake_ingest(listener, 1));
        let mut opts = options(server, &dir.join("state.json"));
        opts.input = Input::File(clip);
        opts.duration = Some(Duration::from_secs(20));
        let mut out = Vec::new();
        let report = run(&opts, &mut out, std::future::pending()).await;
        let text = output(&out);
        assert_eq!(report.end.unwrap(), End::InputEnded, "{text}");
        assert!(text.contains("note: no audio"), "{text}");
        let seen = ingest.await.unwrap().remove(0);
        assert!(carries(&seen.type1, 0x1b, 0x00));
        assert!(seen.type2.is_empty());
    }

    #[tokio::test]
    async fn bad_inputs_are_errors() {
        let dir = scratch("badinput");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap().to_string();
        let ingest = tokio::spawn(fake_ingest(listener, 1));
        // Missing: refused before connecting.
        let mut opts = options(server, &dir.join("state.json"));
        opts.input = Input::File(dir.join("nope.mp4"));
        let report = run(&opts, &mut Vec::new(), std::future::pending()).await;
        let e = report.end.unwrap_err().to_string();
        assert!(
            e.starts_with("cannot read ") && e.contains("nope.mp4"),
            "{e}"
        );
        assert_eq!(report.stats, Stats::default());
        // Not media: FFmpeg's own words.
        let junk = dir.join("junk.mp4");
        std::fs::write(&junk, b"not a video at all").unwrap();
        opts.input = Input::File(junk);
        let e = run(&opts, &mut Vec::new(), std::future::pending())
            .await
            .end
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("ffmpeg (video) failed (exit status: 1): "),
            "{e}"
        );
        assert!(e.contains("junk.mp4"), "{e}");
        let seen = ingest.await.unwrap().remove(0);
        assert!(seen.type1.is_empty());
    }

    #[tokio::test]
    async fn refusals_and_silence_are_errors_with_a_summary() {
        let dir = scratch("refuse");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap().to_string();
        // Refuses by closing after the hello, then stays silent.
        tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let mut framed = Framed::new(sock, FrameCodec::default());
            framed.next().await.unwrap().unwrap();
            drop(framed);
            let (_silent, _) = listener.accept().await.unwrap();
            sleep(Duration::from_secs(5)).await;
        });
        let mut opts = options(server.clone(), &dir.join("state.json"));
        opts.handshake_timeout = Duration::from_millis(300);
        let mut out = Vec::new();
        let report = run(&opts, &mut out, std::future::pending()).await;
        let e = report.end.unwrap_err();
        assert!(matches!(e, SendError::Refused { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("closed the connection without answering"),
            "{e}"
        );
        // The hello was sent: a header and `{"type": "meta", "content": {"id": ""}}`.
        assert_eq!(
            output(&out),
            "sent 44 bytes: 0 video, 0 audio, 0 positions, id -\n"
        );
        let e = run(&opts, &mut Vec::new(), std::future::pending())
            .await
            .end
            .unwrap_err();
        assert!(matches!(e, SendError::NoReply { .. }), "{e}");
        // Nobody listening.
        let mut opts = options("127.0.0.1:1".into(), &dir.join("state.json"));
        opts.handshake_timeout = Duration::from_millis(300);
        let e = run(&opts, &mut Vec::new(), std::future::pending())
            .await
            .end
            .unwrap_err();
        assert!(
            e.to_string().starts_with("cannot connect to 127.0.0.1:1"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn ctrl_c_stops_a_run_at_once() {
        let dir = scratch("ctrlc");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap().to_string();
        let ingest = tokio::spawn(fake_ingest(listener, 1));
        let mut opts = options(server, &dir.join("state.json"));
        opts.duration = None;
        opts.video_only = true;
        let started = Instant::now();
        let mut out = Vec::new();
        let report = run(&opts, &mut out, sleep(Duration::from_millis(2500))).await;
        assert_eq!(report.end.unwrap(), End::Interrupted);
        // Stopped at the next frame boundary, not after a grace period.
        assert!(started.elapsed() < Duration::from_millis(2500) + STOP_GRACE);
        let seen = ingest.await.unwrap().remove(0);
        assert!(seen.type2.is_empty());
        assert!(!seen.type1.is_empty());
    }

    #[test]
    fn ffmpeg_gets_files_as_file_urls() {
        let args = ffmpeg_args(&Input::File("-i x.mp4".into()), Tracks::Both);
        let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into()).collect();
        let i = args.iter().position(|a| a == "-i").unwrap();
        assert_eq!(args[i + 1], "file:-i x.mp4");
        assert!(args.windows(2).any(|w| w == ["-map", "0:a:0?"]));
        assert_eq!(args.last().unwrap(), "pipe:1");
        let video = ffmpeg_args(&Input::Test, Tracks::Video);
        assert!(video.contains(&"-an".into()) && !video.contains(&"aac".into()));
        let audio = ffmpeg_args(&Input::Test, Tracks::Audio);
        assert!(audio.contains(&"-vn".into()) && !audio.contains(&"libx264".into()));
        assert_eq!(Input::from_arg("test"), Input::Test);
        assert_eq!(Input::from_arg("./test"), Input::File("./test".into()));
    }

    #[test]
    fn the_state_file_round_trips() {
        let dir = scratch("state");
        let path = dir.join("a/b/mobile-send.json");
        let saved = |id: &str, secret: Option<&str>| Saved {
            id: id.into(),
            secret: secret.map(str::to_string),
        };
        assert_eq!(saved_id(&path, "x:1").unwrap(), None);
        save_id(&path, "x:1", &saved("id1", None)).unwrap();
        save_id(&path, "http://x:2", &saved("id2", Some("s2"))).unwrap();
        save_id(&path, "x:1", &saved("id3", Some("s3"))).unwrap();
        let ids = load_ids(&path).unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(
            saved_id(&path, "x:1").unwrap(),
            Some(saved("id3", Some("s3")))
        );
        assert_eq!(
            saved_id(&path, "http://x:2").unwrap(),
            Some(saved("id2", Some("s2")))
        );
        // A file of the earlier form (bare ids) still reads.
        let old = dir.join("old.json");
        std::fs::write(&old, r#"{"x:1": "id9"}"#).unwrap();
        assert_eq!(saved_id(&old, "x:1").unwrap(), Some(saved("id9", None)));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // No temporary file left behind.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
        // A corrupt file is an error, not silently replaced.
        std::fs::write(&path, "[1, 2]").unwrap();
        let e = save_id(&path, "x:1", &saved("id4", None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("fix or delete it"), "{e}");
        std::fs::write(&path, r#"{"x:1": "../../etc"}"#).unwrap();
        assert!(saved_id(&path, "x:1").is_err());

        assert_eq!(
            state_path_from(Some("/xdg".into()), Some("/home/u".into())),
            Some(PathBuf::from("/xdg/dss/mobile-send.json"))
        );
        assert_eq!(
            state_path_from(Some("relative".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.local/state/dss/mobile-send.json"))
        );
        assert_eq!(state_path_from(None, None), None);
    }

    #[test]
    fn session_ids_are_checked() {
        assert!(check_session_id(ASSIGNED).is_ok());
        assert!(check_session_id("phone_1-a").is_ok());
        for bad in ["", "a/b", "a b", "é", &"a".repeat(65)] {
            assert!(check_session_id(bad).is_err(), "{bad}");
        }
    }

    /// What the fake HTTP ingest got.
    #[derive(Debug, Default)]
    struct Got {
        uploads: Vec<(String, Option<String>, Vec<u8>)>,
        positions: Vec<(String, serde_json::Value)>,
        /// The session secrets the requests carried.
        secrets: Vec<Option<String>>,
    }

    type Shared = Arc<Mutex<Got>>;

    async fn upload(
        axum::extract::State(got): axum::extract::State<Shared>,
        axum::extract::Path(id): axum::extract::Path<String>,
        headers: axum::http::HeaderMap,
        body: axum::body::Body,
    ) -> axum::http::StatusCode {
        let auth = headers
            .get(AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_string());
        if auth.as_deref() == Some("Bearer wrong") {
            return axum::http::StatusCode::UNAUTHORIZED;
        }
        let secret = headers
            .get(crate::http::mobile::SECRET_HEADER)
            .map(|v| v.to_str().unwrap().to_string());
        got.lock().unwrap().secrets.push(secret);
        let mut stream = body.into_data_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        got.lock().unwrap().uploads.push((id, auth, bytes));
        axum::http::StatusCode::NO_CONTENT
    }

    async fn position(
        axum::extract::State(got): axum::extract::State<Shared>,
        axum::extract::Path(id): axum::extract::Path<String>,
        headers: axum::http::HeaderMap,
        axum::Json(v): axum::Json<serde_json::Value>,
    ) -> &'static str {
        let secret = headers
            .get(crate::http::mobile::SECRET_HEADER)
            .map(|v| v.to_str().unwrap().to_string());
        let mut got = got.lock().unwrap();
        got.secrets.push(secret);
        got.positions.push((id, v));
        "ok"
    }

    async fn fake_http_ingest() -> (String, Shared) {
        use axum::routing::post;
        let got = Shared::default();
        let app = axum::Router::new()
            .route("/mobile/{id}", post(upload))
            .route("/mobile/{id}/position", post(position))
            .with_state(got.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (addr, got)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn http_mode_posts_one_muxed_body_and_positions() {
        let dir = scratch("http");
        let state = dir.join("state.json");
        let (server, got) = fake_http_ingest().await;
        let mut opts = options(server.clone(), &state);
        opts.http = true;
        opts.token = Some("tok".into());
        let mut out = Vec::new();
        let report = run(&opts, &mut out, std::future::pending()).await;
        let text = output(&out);
        assert_eq!(report.end.as_ref().unwrap(), &End::Duration, "{text}");
        let id = printed_id(&text).to_string();
        assert_eq!(id.len(), 24);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        let key = format!("http://{server}");
        let kept = saved_id(&state, &key).unwrap().expect("saved");
        assert_eq!(kept.id, id);
        let secret = kept.secret.expect("a secret chosen");
        assert_eq!(secret.len(), 32);
        assert!(
            got.lock()
                .unwrap()
                .secrets
                .iter()
                .all(|s| s.as_deref() == Some(secret.as_str())),
            "the upload and every position carry the session secret"
        );
        {
            let got = got.lock().unwrap();
            let (uid, auth, body) = &got.uploads[0];
            assert_eq!(uid, &id);
            assert_eq!(auth.as_deref(), Some("Bearer tok"));
            assert_eq!(body[0], 0x47);
            // One TS, both tracks (PIDs 0x100 and 0x101).
            assert!(carries(body, 0x1b, 0x00));
            assert!(carries(body, 0x0f, 0x01));
            assert_eq!(report.stats.video, body.len() as u64);
            assert!(got.positions.len() >= 2, "{:?}", got.positions);
            for (pid, p) in &got.positions {
                assert_eq!(pid, &id);
                let lat = p["latitude"].as_f64().unwrap();
                let lon = p["longitude"].as_f64().unwrap();
                assert!((-22.871..=-22.859).contains(&lat), "{p}");
                assert!((-43.241..=-43.229).contains(&lon), "{p}");
            }
            // Counted once answered: one may be in flight at the end.
            let answered = report.stats.positions as usize;
            assert!(answered + 1 >= got.positions.len() && answered <= got.positions.len());
        }

        // The saved id is reused; a refused token is a clear error.
        opts.token = Some("wrong".into());
        let mut out = Vec::new();
        let report = run(&opts, &mut out, std::future::pending()).await;
        assert_eq!(printed_id(&output(&out)), id);
        let e = report.end.unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("POST http://{server}/mobile/{id}: HTTP 401")),
            "{e}"
        );
    }
}
