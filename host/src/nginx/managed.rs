//! The managed nginx: rendered into the run directory and run as a
//! supervised child (restarted if it dies, stopped on shutdown).
//!
//! nginx deliberately survives a crash of the host (it has no parent-death
//! signal): viewers stay connected, and the next host adopts the running
//! nginx (same pid file, same rendered configuration) and rebuilds its
//! viewer counts from `/stat`. A changed configuration means a restart:
//! never a reload, since a reloaded nginx-rtmp worker starts with an empty
//! `/stat` while the old one keeps serving.

use super::conf;
use crate::backoff::{Backoff, Policy};
use crate::config::Config;
use crate::files::HostDir;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// How long nginx gets to answer after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long nginx gets to exit after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Pacing of restarts of an nginx that died: from half a second (a
/// killed master is back before players give up), doubling up to 30 s (a
/// broken configuration or a taken port does not spin), and starting over
/// once one answers (never "stable" by time alone).
const RESTART: Policy = Policy {
    initial: Duration::from_millis(500),
    max: Duration::from_secs(30),
    stable: Duration::MAX,
    min_interval: Duration::ZERO,
};

/// Errors starting nginx.
#[derive(Debug, thiserror::Error)]
pub enum NginxError {
    /// No usable nginx.
    #[error("{0}; install it with `apt-get install -y nginx libnginx-mod-rtmp`, or set [nginx] managed = false and run nginx yourself with the file `dss nginx-conf` prints")]
    Missing(String),
    /// The configuration could not be rendered.
    #[error(transparent)]
    Conf(#[from] conf::ConfError),
    /// A run file or directory could not be written.
    #[error(transparent)]
    Files(#[from] crate::files::FilesError),
    /// nginx did not come up.
    #[error("nginx did not start: {0}")]
    Start(String),
}

/// Finds `binary`: as given when it is a path, else on `PATH` (or in
/// `/usr/sbin`, `/sbin`, where nginx lives).
pub fn find_binary(binary: &Path) -> Option<PathBuf> {
    if binary.components().count() > 1 {
        return binary.exists().then(|| binary.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(binary))
        .find(|p| p.is_file())
}

/// Decides whether nginx is managed: the config's `managed`, or, when
/// unset, whether nginx and the rtmp module are installed.
pub fn decide(config: &Config) -> Result<bool, NginxError> {
    let n = &config.nginx;
    let binary = find_binary(&n.binary);
    let module_ok = n.rtmp_module.as_os_str().is_empty() || n.rtmp_module.exists();
    match n.managed {
        Some(false) => Ok(false),
        Some(true) => {
            if binary.is_none() {
                return Err(NginxError::Missing(format!(
                    "nginx binary {:?} not found",
                    n.binary
                )));
            }
            if !module_ok {
                return Err(NginxError::Missing(format!(
                    "nginx RTMP module {} not found",
                    n.rtmp_module.display()
                )));
            }
            Ok(true)
        }
        None => Ok(binary.is_some() && module_ok),
    }
}

fn alive(pid: u32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks for existence.
    pid > 0 && unsafe { libc::kill(pid as libc::pid_t, 0) } == 0
}

fn is_nginx(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("nginx"))
        .unwrap_or(false)
}

/// The rendered configuration, in the run directory.
const CONF: &str = "nginx.conf";
/// The pid file nginx writes (named in the rendered configuration).
const PID: &str = "nginx.pid";

fn read_pid(run: &HostDir) -> Option<u32> {
    run.read_to_string(PID).ok()?.trim().parse().ok()
}

/// A supervised nginx.
pub struct ManagedNginx {
    pid: Arc<AtomicU32>,
    stopping: Arc<AtomicBool>,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
    /// Whether a running nginx was adopted rather than started.
    pub adopted: bool,
    restarts: watch::Receiver<u64>,
}

/// Whether the managed nginx runs (its master is alive; while it is
/// being restarted, it does not).
#[derive(Debug, Clone)]
pub struct NginxHealth(Arc<AtomicU32>);

impl NginxHealth {
    /// Whether nginx's master process is alive.
    pub fn up(&self) -> bool {
        alive(self.0.load(Ordering::SeqCst))
    }
}

struct Paths {
    binary: PathBuf,
    run: PathBuf,
    conf: PathBuf,
    error_log: PathBuf,
    stat_url: String,
    /// Where nginx answers, for messages (`stat_url` holds the secret).
    shown: String,
}

impl ManagedNginx {
    /// Renders the configuration, adopts a running nginx of the previous
    /// host when its configuration is unchanged (else stops it), or starts
    /// one; returns once it answers `/stat`.
    pub async fn start(config: &Config) -> Result<ManagedNginx, NginxError> {
        let binary = find_binary(&config.nginx.binary).ok_or_else(|| {
            NginxError::Missing(format!("nginx {:?} not found", config.nginx.binary))
        })?;
        // Run files go through a handle on the run directory; nginx itself
        // writes its pid file and fragments there.
        let run = HostDir::create(&config.run_dir())?;
        for d in ["hls", "dash", "tmp"] {
            run.create_dir_all(d)?;
        }
        let log = HostDir::create(&config.log_dir())?;
        HostDir::create(&config.record_dir())?;
        let paths = Paths {
            binary,
            conf: run.path(CONF),
            error_log: log.path("nginx-error.log"),
            run: run.root().to_path_buf(),
            stat_url: config.stat_url(&config.callback_secret().map_err(|e| {
                NginxError::Start(format!("cannot read or create the callback secret: {e}"))
            })?),
            shown: format!(
                "http://{}",
                std::net::SocketAddr::new(config.nginx.host, config.nginx.http_port)
            ),
        };
        let text = conf::render(config, true)?;
        let previous = run.read_to_string(CONF).ok();
        let running = read_pid(&run).filter(|&p| alive(p) && is_nginx(p));
        let mut adopted = false;
        match running {
            Some(pid) if previous.as_deref() == Some(text.as_str()) => {
                tracing::info!(pid, "adopting the running nginx of a previous host");
                adopted = true;
            }
            Some(pid) => {
                tracing::warn!(pid, "configuration changed: restarting the running nginx");
                stop_pid(pid).await;
            }
            None => {}
        }
        if !adopted {
            // It holds the callback secret: the host's (and nginx's master) only.
            run.write_atomic(CONF, text.as_bytes(), Some(crate::files::PRIVATE_FILE))?;
        }
        let pid = Arc::new(AtomicU32::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(Notify::new());
        let child = if adopted {
            pid.store(running.unwrap_or(0), Ordering::SeqCst);
            None
        } else {
            let c = spawn(&paths)?;
            pid.store(c.id().unwrap_or(0), Ordering::SeqCst);
            Some(c)
        };
        wait_ready(&paths, &pid).await?;
        tracing::info!(
            pid = pid.load(Ordering::SeqCst),
            conf = %paths.conf.display(),
            "nginx ready on {}",
            paths.shown
        );
        let (restarts_tx, restarts) = watch::channel(0);
        let task = tokio::spawn(supervise(
            paths,
            child,
            pid.clone(),
            stopping.clone(),
            wake.clone(),
            restarts_tx,
        ));
        Ok(ManagedNginx {
            pid,
            stopping,
            wake,
            task,
            adopted,
            restarts,
        })
    }

    /// Counts the times nginx died and was back ready (changes when it
    /// is).
    pub fn restarts(&self) -> watch::Receiver<u64> {
        self.restarts.clone()
    }

    /// A handle that tells whether nginx runs now (for readiness).
    pub fn health(&self) -> NginxHealth {
        NginxHealth(self.pid.clone())
    }

    /// The pid of the nginx master.
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::SeqCst)
    }

    /// Stops nginx (SIGTERM, then SIGKILL). Not SIGQUIT: a graceful stop
    /// waits for every RTMP viewer to leave.
    pub async fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        let pid = self.pid();
        stop_pid(pid).await;
        let _ = self.task.await;
    }
}

fn spawn(paths: &Paths) -> Result<tokio::process::Child, NginxError> {
    let mut cmd = tokio::process::Command::new(&paths.binary);
    cmd.arg("-p")
        .arg(&paths.run)
        .arg("-c")
        .arg(&paths.conf)
        .arg("-e")
        .arg(&paths.error_log)
        .stdin(Stdio::null())
        // Everything goes to the error log (`-e` covers start-up too).
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Own group: a terminal's Ctrl-C reaches the host, which stops
        // nginx itself; no parent-death signal, so viewers survive a crash.
        .process_group(0);
    cmd.spawn()
        .map_err(|e| NginxError::Start(format!("cannot run {}: {e}", paths.binary.display())))
}

async fn wait_ready(paths: &Paths, pid: &AtomicU32) -> Result<(), NginxError> {
    let start = std::time::Instant::now();
    loop {
        if super::stat::fetch(&paths.stat_url, "").await.is_ok() {
            return Ok(());
        }
        let p = pid.load(Ordering::SeqCst);
        if !alive(p) || start.elapsed() > READY_TIMEOUT {
            let log = std::fs::read_to_string(&paths.error_log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return Err(NginxError::Start(format!(
                "nginx's /stat on {} not answering after {:?}; {}: {}",
                paths.shown,
                start.elapsed(),
                paths.error_log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stop_pid(pid: u32) {
    if !alive(pid) {
        return;
    }
    // SAFETY: plain kill(2) calls.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let start = std::time::Instant::now();
    while alive(pid) && is_nginx(pid) && start.elapsed() < STOP_TIMEOUT {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if alive(pid) && is_nginx(pid) {
        unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
}

/// Waits for nginx to exit (a child: `wait`; adopted: polling) and starts
/// a new one unless the host is stopping.
async fn supervise(
    paths: Paths,
    mut child: Option<tokio::process::Child>,
    pid: Arc<AtomicU32>,
    stopping: Arc<AtomicBool>,
    wake: Arc<Notify>,
    restarts: watch::Sender<u64>,
) {
    let mut backoff = Backoff::new(RESTART);
    loop {
        match child.as_mut() {
            Some(c) => {
                tokio::select! {
                    status = c.wait() => {
                        if !stopping.load(Ordering::SeqCst) {
                            tracing::error!(?status, "nginx exited");
                        }
                    }
                    _ = wake.notified() => {
                        // Stopping: `stop` signals it; reap it here.
                        let _ = c.wait().await;
                    }
                }
            }
            None => loop {
                let p = pid.load(Ordering::SeqCst);
                if stopping.load(Ordering::SeqCst) || !alive(p) || !is_nginx(p) {
                    if !stopping.load(Ordering::SeqCst) {
                        tracing::error!(pid = p, "adopted nginx exited");
                    }
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = wake.notified() => {}
                }
            },
        }
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        // A master killed outright leaves its workers holding the ports:
        // clear its process group before starting anew.
        let old = pid.load(Ordering::SeqCst);
        if old > 0 {
            // SAFETY: kill(2) on the old nginx's process group.
            unsafe { libc::kill(-(old as libc::pid_t), libc::SIGKILL) };
        }
        tokio::time::sleep(backoff.fail(None, Instant::now())).await;
        match spawn(&paths) {
            Ok(c) => {
                pid.store(c.id().unwrap_or(0), Ordering::SeqCst);
                tracing::warn!(pid = pid.load(Ordering::SeqCst), "nginx restarted");
                child = Some(c);
                if wait_ready(&paths, &pid).await.is_ok() {
                    backoff.reset();
                    restarts.send_modify(|n| *n += 1);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "nginx not restarted");
                child = None;
                pid.store(0, Ordering::SeqCst);
            }
        }
    }
}
