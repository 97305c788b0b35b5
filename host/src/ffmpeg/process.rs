//! FFmpeg processes: the child spawned (never through a shell) in its own
//! process group with a parent-death signal so none outlives the host, with
//! an empty environment and an empty working directory of its own, its
//! stderr kept in a bounded log and its `-progress` output turned into a
//! liveness signal.

use std::collections::VecDeque;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

use crate::privileges::MediaUser;

/// How long FFmpeg gets to exit after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Longest output line kept, in bytes; the rest of a longer line is read
/// and dropped. FFmpeg's warnings are well under 200 bytes.
const MAX_LINE: usize = 1_000;

/// Why a stream cannot be started.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SpawnError {
    /// The FFmpeg policy refuses the stream's source or options: permanent
    /// until its listing changes.
    #[error("refused: {0}")]
    Refused(crate::ffmpeg::Refusal),
    /// The source's host name did not resolve (the address check could not
    /// run); may pass on a later try.
    #[error("cannot resolve source host {host}: {message}")]
    Resolve {
        /// The host name.
        host: String,
        /// Why.
        message: String,
    },
    /// The process could not be started.
    #[error("cannot start {binary}: {message}")]
    Spawn {
        /// The binary.
        binary: String,
        /// Why.
        message: String,
    },
}

/// What the supervisor sees of a running FFmpeg.
#[derive(Debug, Default)]
pub struct Monitor {
    /// Last stderr lines.
    pub log: VecDeque<String>,
    /// When the output last advanced.
    pub last_progress: Option<Instant>,
    /// Frames written so far (from progress).
    pub frames: u64,
    /// Output time reached, in microseconds (from progress).
    pub out_time_us: i64,
}

/// A running FFmpeg.
pub struct Process {
    /// The child.
    pub child: tokio::process::Child,
    /// Its pid (= its process group id).
    pub pid: u32,
    /// Shared with the reader tasks.
    pub monitor: Arc<Mutex<Monitor>>,
    /// The stderr reader: done once FFmpeg's stderr is closed.
    stderr_reader: Option<tokio::task::JoinHandle<()>>,
}

/// How long [`Process::final_log_tail`] waits for stderr to close (a
/// process FFmpeg started could hold it open).
const LOG_DRAIN: Duration = Duration::from_secs(1);

/// Spawns `binary argv...` in its own process group, with SIGKILL as its
/// parent-death signal, no environment at all (not `PATH`, not the API
/// token) and `cwd` as its working directory (created 0700 if missing; it
/// should be an empty directory of the host's own, such as the run
/// directory's `ffmpeg-cwd`). With a `user` (the host runs as root:
/// [`crate::privileges`]) FFmpeg runs as that user, and `cwd` is made its.
/// stdout/stderr are read by background tasks into a [`Monitor`] holding
/// at most `log_lines` lines.
///
/// A `binary` without a `/` is looked up in the host's `PATH` (the child
/// gets none).
///
/// Must be called from a runtime worker thread, never from a blocking-pool
/// thread: the parent-death signal fires when the *thread* that forked
/// exits, and blocking-pool threads exit when idle.
pub fn spawn(
    binary: &Path,
    argv: &[String],
    log_lines: usize,
    cwd: &Path,
    user: Option<&MediaUser>,
) -> Result<Process, SpawnError> {
    spawn_inner(binary, argv, log_lines, cwd, user, false).map(|(p, _)| p)
}

/// [`spawn`] for a run whose output is its stdout (an export streamed to
/// a client): the same confinement, stdout handed to the caller instead
/// of read as progress.
pub fn spawn_piped(
    binary: &Path,
    argv: &[String],
    log_lines: usize,
    cwd: &Path,
    user: Option<&MediaUser>,
) -> Result<(Process, tokio::process::ChildStdout), SpawnError> {
    let (p, out) = spawn_inner(binary, argv, log_lines, cwd, user, true)?;
    let out = out.ok_or_else(|| SpawnError::Spawn {
        binary: binary.display().to_string(),
        message: "no stdout".into(),
    })?;
    Ok((p, out))
}

fn spawn_inner(
    binary: &Path,
    argv: &[String],
    log_lines: usize,
    cwd: &Path,
    user: Option<&MediaUser>,
    piped: bool,
) -> Result<(Process, Option<tokio::process::ChildStdout>), SpawnError> {
    let fail = |message: String| SpawnError::Spawn {
        binary: binary.display().to_string(),
        message,
    };
    let program = resolve_binary(binary).map_err(|e| fail(e.to_string()))?;
    prepare_cwd(cwd, user)
        .map_err(|e| fail(format!("working directory {}: {e}", cwd.display())))?;
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(argv)
        .env_clear()
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Own group: a terminal's Ctrl-C does not hit it, and stopping
        // kills everything FFmpeg may have started.
        .process_group(0);
    if let Some(u) = user {
        // setgid, setgroups(0) and setuid in the child before exec; the
        // parent-death signal below is set after them (a credential change
        // would clear it).
        u.apply(&mut cmd);
    }
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and only
    // calls async-signal-safe functions (prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The host may have died between fork and prctl.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("parent exited"));
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    let pid = child.id().unwrap_or(0);
    let monitor = Arc::new(Mutex::new(Monitor::default()));
    let stderr_reader = child.stderr.take().map(|stderr| {
        let m = monitor.clone();
        tokio::spawn(async move {
            read_lines(BufReader::new(stderr), MAX_LINE, |line| {
                let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                if m.log.len() >= log_lines.max(1) {
                    m.log.pop_front();
                }
                m.log.push_back(line);
            })
            .await;
        })
    });
    let piped_out = if piped { child.stdout.take() } else { None };
    if let Some(stdout) = child.stdout.take() {
        let m = monitor.clone();
        tokio::spawn(async move {
            read_lines(BufReader::new(stdout), MAX_LINE, |line| {
                let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                // Progress means output advancing (frames or, for audio
                // only, time): FFmpeg blocked on a silent input prints
                // nothing, and a stuck one may repeat the same figures.
                let advanced = if let Some(v) = line.strip_prefix("frame=") {
                    let f = v.trim().parse().unwrap_or(m.frames);
                    std::mem::replace(&mut m.frames, f) < f
                } else if let Some(v) = line.strip_prefix("out_time_us=") {
                    let t = v.trim().parse().unwrap_or(m.out_time_us);
                    std::mem::replace(&mut m.out_time_us, t) < t
                } else {
                    false
                };
                if advanced {
                    m.last_progress = Some(Instant::now());
                }
            })
            .await;
        });
    }
    Ok((
        Process {
            child,
            pid,
            monitor,
            stderr_reader,
        },
        piped_out,
    ))
}

/// Why the FFmpeg binary cannot be found.
#[derive(Debug, thiserror::Error)]
enum BinaryError {
    /// The configured path is empty.
    #[error("empty binary path")]
    Empty,
    /// A path that cannot be made absolute (the working directory is gone).
    #[error("{0}")]
    Absolute(std::io::Error),
    /// A bare name that no directory of `PATH` has as an executable file.
    #[error("not found in PATH")]
    NotInPath,
}

/// `binary` made absolute (against the host's working directory, not the
/// child's) when it names a path, else the first executable file of that
/// name in the host's `PATH`.
fn resolve_binary(binary: &Path) -> Result<PathBuf, BinaryError> {
    if binary.as_os_str().is_empty() {
        return Err(BinaryError::Empty);
    }
    if binary.to_string_lossy().contains('/') {
        return std::path::absolute(binary).map_err(BinaryError::Absolute);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or(BinaryError::NotInPath)
}

/// Creates `dir` (mode 0700) if missing and makes sure only the host's
/// user can use it.
fn prepare_cwd(dir: &Path, user: Option<&MediaUser>) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::metadata(dir)?;
    if meta.permissions().mode() & 0o777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    crate::privileges::grant(user, dir).map_err(std::io::Error::other)
}

/// Reads `reader` line by line until EOF (or a read error), passing each
/// line to `on_line` decoded lossily (invalid UTF-8 never stops it), cut
/// to `cap` bytes (the rest of a longer line is drained and dropped), a
/// trailing `\r` removed. Memory stays bounded by `cap` whatever the input.
async fn read_lines<R: AsyncBufRead + Unpin>(
    mut reader: R,
    cap: usize,
    mut on_line: impl FnMut(String),
) {
    let mut line: Vec<u8> = Vec::with_capacity(cap.min(256));
    loop {
        let (consumed, complete) = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(buf) => {
                let (chunk, complete) = match buf.iter().position(|&b| b == b'\n') {
                    Some(n) => (&buf[..n], n + 1),
                    None => (buf, 0),
                };
                let room = cap.saturating_sub(line.len());
                line.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if complete > 0 {
                    (complete, true)
                } else {
                    (buf.len(), false)
                }
            }
        };
        reader.consume(consumed);
        if complete {
            on_line(decode(&line));
            line.clear();
        }
    }
    if !line.is_empty() {
        on_line(decode(&line));
    }
}

fn decode(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line).into_owned()
}

/// Sends `signal` to the process group `pid`.
pub fn signal_group(pid: u32, signal: libc::c_int) {
    if pid == 0 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; it has
    // no memory-safety preconditions.
    unsafe {
        libc::kill(-(pid as libc::pid_t), signal);
    }
}

impl Process {
    /// Stops FFmpeg: SIGTERM to its group, SIGKILL after [`STOP_TIMEOUT`];
    /// returns once it is reaped.
    pub async fn stop(mut self) -> Option<std::process::ExitStatus> {
        signal_group(self.pid, libc::SIGTERM);
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                // Anything FFmpeg started goes too.
                signal_group(self.pid, libc::SIGKILL);
                status.ok()
            }
            Err(_) => {
                signal_group(self.pid, libc::SIGKILL);
                self.child.wait().await.ok()
            }
        }
    }

    /// The last `n` stderr lines of an FFmpeg that exited, once its stderr
    /// was read to the end (bounded by [`LOG_DRAIN`]).
    pub async fn final_log_tail(&mut self, n: usize) -> Vec<String> {
        if let Some(reader) = self.stderr_reader.take() {
            let _ = tokio::time::timeout(LOG_DRAIN, reader).await;
        }
        self.log_tail(n)
    }

    /// The last stderr lines.
    pub fn log_tail(&self, n: usize) -> Vec<String> {
        let m = self.monitor.lock().unwrap_or_else(|p| p.into_inner());
        m.log.iter().rev().take(n).rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh scratch directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dss-ffmpeg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn sh(script: &str, cwd: &Path) -> Process {
        spawn(
            Path::new("/bin/sh"),
            &["-c".to_string(), script.to_string()],
            50,
            cwd,
            None,
        )
        .unwrap()
    }

    /// Waits for the child and for its readers to drain the pipes.
    async fn finish(mut p: Process, want_lines: usize) -> Process {
        p.child.wait().await.unwrap();
        for _ in 0..200 {
            if p.monitor.lock().unwrap().log.len() >= want_lines {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        p
    }

    #[tokio::test]
    async fn invalid_utf8_and_long_lines_do_not_stop_the_readers() {
        let dir = scratch("utf8");
        // A line of invalid UTF-8, one far over the cap, then more lines:
        // each arrives, and the stdout reader still sees progress.
        let script = r#"printf '\377\376 bad\n' >&2
head -c 100000 /dev/zero | tr '\0' x >&2; echo >&2
echo after >&2
printf 'frame=5\nout_time_us=200000\r\n'
printf 'no newline at the end' >&2"#;
        let p = finish(sh(script, &dir), 4).await;
        let m = p.monitor.lock().unwrap();
        let log: Vec<&String> = m.log.iter().collect();
        assert_eq!(log.len(), 4, "{log:?}");
        assert_eq!(log[0], "\u{fffd}\u{fffd} bad");
        assert_eq!(log[1].len(), MAX_LINE);
        assert_eq!(log[2], "after");
        assert_eq!(log[3], "no newline at the end");
        assert_eq!(m.frames, 5);
        assert_eq!(m.out_time_us, 200_000);
        assert!(m.last_progress.is_some());
    }

    #[tokio::test]
    async fn the_child_gets_no_environment_and_its_own_working_directory() {
        let cwd = scratch("env").join("run/ffmpeg-cwd");
        // `export -p` lists what the shell exported: with an empty
        // environment, only the PWD that dash sets itself.
        let p = finish(sh("export -p >&2; pwd >&2", &cwd), 2).await;
        let log = p.log_tail(50);
        let cwd = cwd.canonicalize().unwrap();
        assert_eq!(
            log,
            [
                format!("export PWD='{}'", cwd.display()),
                cwd.display().to_string()
            ]
        );
        let mode = std::fs::metadata(&cwd).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[tokio::test]
    async fn a_root_host_runs_the_child_as_the_media_user_without_groups() {
        if !crate::privileges::host_is_root() {
            eprintln!("skipped: switching users needs root");
            return;
        }
        let user = crate::privileges::MediaUser::resolve(Some("nobody"), 0)
            .unwrap()
            .unwrap();
        // Like the state directory: others may pass through.
        let top = scratch("as-user");
        std::fs::set_permissions(&top, std::fs::Permissions::from_mode(0o711)).unwrap();
        let cwd = top.join("cwd");
        let p = spawn(
            Path::new("/bin/sh"),
            &["-c".into(), "id -u >&2; id -G >&2; touch made".into()],
            5,
            &cwd,
            Some(&user),
        )
        .unwrap();
        let p = finish(p, 2).await;
        assert_eq!(
            p.log_tail(5),
            [user.uid.to_string(), user.gid.to_string()],
            "its uid, then its primary group alone"
        );
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&cwd).unwrap().uid(), user.uid);
        assert_eq!(std::fs::metadata(cwd.join("made")).unwrap().uid(), user.uid);
    }

    #[tokio::test]
    async fn binaries_are_found_in_the_hosts_path() {
        let dir = scratch("path");
        let p = spawn(
            Path::new("sh"),
            &["-c".into(), "echo found >&2".into()],
            5,
            &dir,
            None,
        )
        .unwrap();
        let p = finish(p, 1).await;
        assert_eq!(p.log_tail(5), ["found"]);
        // A relative path is the host's, not the child's (whose working
        // directory is `dir`).
        let here = std::env::current_dir().unwrap();
        assert_eq!(
            resolve_binary(Path::new("tools/ffmpeg")).unwrap(),
            here.join("tools/ffmpeg")
        );
        let e = spawn(Path::new("no-such-binary-dss"), &[], 5, &dir, None)
            .err()
            .unwrap();
        assert!(e.to_string().contains("not found in PATH"), "{e}");
    }
}
