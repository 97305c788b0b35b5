//! Compiling components out of the serving process.
//!
//! Cranelift's working memory for a large component is hundreds of
//! megabytes (the JavaScript provider, 12 MiB of Wasm: ~330 MB across the
//! compiling threads), and glibc keeps most of it in its per-thread arenas
//! after the compile: `dss serve` stayed at ~360 MB RSS after a start that
//! compiled it, against ~75 MB with the artifact cached. Bounding the
//! arenas (`MALLOC_ARENA_MAX=2`) or trimming afterwards gave back only
//! part of it, and a hostile module could still make the compile eat the
//! serving process's memory. So the host runs the compile in a child: the
//! same binary (`/proc/self/exe`, even if the file was replaced since)
//! with the hidden subcommand `compile-module`, reading the `.wasm` on its
//! stdin and writing the artifact into the compile cache atomically. The
//! child runs at a lower priority (viewers and phones come first on a
//! small machine), dies with its parent, and is killed past
//! [`COMPILE_TIMEOUT`]. Its memory goes back to the system when it exits.
//!
//! The artifact must come from an engine configured exactly as the
//! host's: both build theirs with [`super::engine_config`], and the cache
//! names artifacts by the engine's compatibility hash, which wasmtime
//! checks again when the host loads one.

use crate::files::{HostDir, PRIVATE_FILE};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The longest a compile may take (the JavaScript provider takes ~10 s of
/// wall time on two busy cores; a module that takes 30 times that is
/// hostile or broken).
pub const COMPILE_TIMEOUT: Duration = Duration::from_secs(300);

/// Niceness of the compiling child: the serving process (and FFmpeg)
/// come first when the machine is busy.
const CHILD_NICENESS: libc::c_int = 10;

/// The part of the child's stderr kept for the error message.
const MAX_CHILD_MESSAGE: usize = 4096;

/// Where components are compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compiler {
    /// In this process (short-lived commands, tests, benchmarks).
    InProcess,
    /// In a child running `PROGRAM compile-module` (the daemon).
    Child {
        /// The program: the running binary.
        program: PathBuf,
    },
}

impl Compiler {
    /// A child running this very binary.
    pub fn this_binary() -> Compiler {
        Compiler::Child {
            // The running binary even when its file was replaced or
            // removed since (a rebuild while the host runs).
            program: PathBuf::from("/proc/self/exe"),
        }
    }
}

/// Why the child could not compile.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// It could not be started or talked to.
    #[error("cannot run the compiler process {program}: {error}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// It ran past [`COMPILE_TIMEOUT`].
    #[error("compilation took longer than {0:?}")]
    Timeout(Duration),
    /// It failed; its message.
    #[error("{0}")]
    Failed(String),
}

/// Compiles `wasm` in a child running `program`, which writes the
/// artifact as `name` in `dir` (atomically). Blocking.
pub fn in_child(
    program: &Path,
    pooling: bool,
    wasm: &[u8],
    dir: &Path,
    name: &str,
) -> Result<(), ChildError> {
    let spawn = |error| ChildError::Spawn {
        program: program.to_path_buf(),
        error,
    };
    let mut cmd = Command::new(program);
    cmd.arg("compile-module")
        .arg("--dir")
        .arg(dir)
        .arg("--name")
        .arg(name);
    if !pooling {
        cmd.arg("--on-demand");
    }
    cmd.env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (prctl, getppid, setpriority)
    // between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        let parent = libc::getpid();
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("the host exited"));
            }
            libc::setpriority(libc::PRIO_PROCESS, 0, CHILD_NICENESS);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(spawn)?;
    // The child reads all of stdin before it writes anything: no deadlock.
    let fed = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(wasm))
        .unwrap_or(Ok(()));
    let mut stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(s) = stderr.as_mut() {
            // Bounded: the rest is read and dropped.
            let _ = s.take(1 << 20).read_to_end(&mut text);
        }
        text
    });
    let deadline = Instant::now() + COMPILE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ChildError::Timeout(COMPILE_TIMEOUT));
            }
            // Compiles take 0.1 to 10 s: polling costs nothing here.
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(spawn(e)),
        }
    };
    let text = reader.join().unwrap_or_default();
    if status.success() {
        return fed.map_err(spawn);
    }
    let text = String::from_utf8_lossy(&text);
    // `dss` prefixes its errors with its name.
    let text = text.trim();
    let text = text.strip_prefix("dss: ").unwrap_or(text);
    let tail = match text.char_indices().rev().nth(MAX_CHILD_MESSAGE) {
        Some((i, _)) => &text[i..],
        None => text,
    };
    Err(ChildError::Failed(if tail.is_empty() {
        format!("the compiler process ended with {status}")
    } else {
        tail.to_string()
    }))
}

/// The child's side (`dss compile-module --dir DIR --name NAME
/// [--on-demand]`): compiles the component on stdin with the host's engine
/// configuration and writes the artifact as `NAME` in `DIR` (0600,
/// atomically). Errors go to stderr, for the parent's message.
pub fn child_main(dir: &Path, name: &str, pooling: bool) -> anyhow::Result<()> {
    let mut wasm = Vec::new();
    std::io::stdin()
        .take(super::module::MAX_MODULE_BYTES + 1)
        .read_to_end(&mut wasm)?;
    let engine = wasmtime::Engine::new(&super::engine_config(pooling))
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let artifact = engine
        .precompile_component(&wasm)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    HostDir::open(dir)?.write_atomic(name, &artifact, Some(PRIVATE_FILE))?;
    Ok(())
}
