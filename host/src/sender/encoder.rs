//! The FFmpeg children that encode the input ([`ffmpeg_args`]): each
//! started in its own process group with a tail of its stderr kept for
//! error messages, read a chunk at a time, and killed and reaped however a
//! run ends ([`Children`]).

use super::{Input, SendError, STOP_GRACE};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, ChildStdout};
use tokio::time::{sleep, timeout};

/// Bytes of each FFmpeg's stderr kept for error messages (4 KiB: its
/// last few error lines).
const STDERR_TAIL: usize = 4096;

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

/// Why an FFmpeg's exit status could not be had.
#[derive(Debug, thiserror::Error)]
enum ExitError {
    /// Waiting for it failed.
    #[error("{0}")]
    Wait(std::io::Error),
    /// It closed its output but was still running after [`STOP_GRACE`].
    #[error("closed its output but did not exit")]
    Stuck,
}

/// A running FFmpeg.
pub(super) struct Ffmpeg {
    what: &'static str,
    child: Child,
    stderr: Arc<Mutex<VecDeque<u8>>>,
}

impl Ffmpeg {
    /// Starts FFmpeg in its own process group (a terminal's Ctrl-C reaches
    /// only the sender, which then stops it), killed if dropped.
    pub(super) fn spawn(
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
    async fn exit(&mut self) -> Result<ExitStatus, ExitError> {
        match timeout(STOP_GRACE, self.child.wait()).await {
            Ok(Ok(status)) => {
                // Let the stderr reader catch up with the last lines.
                sleep(Duration::from_millis(50)).await;
                Ok(status)
            }
            Ok(Err(e)) => Err(ExitError::Wait(e)),
            Err(_) => Err(ExitError::Stuck),
        }
    }

    /// An error for a run that ended because this FFmpeg failed.
    pub(super) async fn failure(&mut self) -> Option<SendError> {
        let reason = match self.exit().await {
            Ok(status) if status.success() => return None,
            Ok(status) => format!("failed ({status}): {}", self.log()),
            Err(e) => e.to_string(),
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
pub(super) struct Children {
    /// The video FFmpeg (HTTP mode: the one muxing both tracks).
    pub(super) video: Option<Ffmpeg>,
    /// The audio FFmpeg (TCP mode).
    pub(super) audio: Option<Ffmpeg>,
}

impl Children {
    pub(super) async fn stop(&mut self) {
        for mut p in [self.video.take(), self.audio.take()].into_iter().flatten() {
            let _ = p.child.start_kill();
            let _ = timeout(STOP_GRACE, p.child.wait()).await;
        }
    }
}

/// Reads from `src`, or waits forever when there is none.
pub(super) async fn read_or_wait<R: AsyncRead + Unpin>(
    src: Option<&mut R>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match src {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}
