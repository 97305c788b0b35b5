//! Running under a service manager: systemd's notification protocol
//! (`sd_notify`) for readiness, the watchdog and stopping, and SIGHUP.
//!
//! Under `Type=notify` systemd passes a datagram socket in
//! `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket). The host
//! says `READY=1` once it serves what it was configured with (the
//! condition of `/readyz`: nginx runs and every provider has a first
//! listing), `STATUS=` what it still waits for meanwhile, `WATCHDOG=1`
//! at half the unit's `WatchdogSec` from a task of the runtime that
//! serves HTTP (a wedged runtime stops it, and systemd restarts the
//! service), and `STOPPING=1` when it shuts down. Without `NOTIFY_SOCKET`
//! every call is a no-op.
//!
//! The variables are taken out of the environment at start, before any
//! thread, so that nginx, FFmpeg and the compiler children do not inherit
//! them (systemd would ignore their messages, `NotifyAccess=main`, but
//! they have no business with the socket).
//!
//! SIGHUP (`systemctl reload dss`) re-scans the modules and instances
//! directories at once; `dss.toml` is read at start only, which the log
//! says.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;
use std::time::Duration;

/// The connection to the service manager, when there is one.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    to: SocketAddr,
    /// How often to send `WATCHDOG=1` (half the unit's `WatchdogSec`).
    watchdog: Option<Duration>,
}

static NOTIFIER: OnceLock<Option<Notifier>> = OnceLock::new();

/// Takes `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` out of the
/// environment and keeps the connection for [`notify`]. Call it once,
/// before the runtime starts threads.
pub fn init_from_env() {
    let socket = std::env::var_os("NOTIFY_SOCKET");
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    for v in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        // Single-threaded still: nothing reads the environment meanwhile.
        std::env::remove_var(v);
    }
    let notifier = socket.and_then(|s| {
        let watchdog = watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id());
        match Notifier::connect(s.as_encoded_bytes(), watchdog) {
            Ok(n) => Some(n),
            Err(e) => {
                eprintln!("dss: NOTIFY_SOCKET is set but not usable, no notifications: {e}");
                None
            }
        }
    });
    let _ = NOTIFIER.set(notifier);
}

/// The watchdog's period for process `me`: half of `WATCHDOG_USEC`, when
/// it is set and `WATCHDOG_PID` (if set) names this process.
fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if pid.is_some_and(|p| p.parse::<u32>().ok() != Some(me)) {
        return None;
    }
    let usec: u64 = usec?.parse().ok().filter(|u| *u > 0)?;
    Some(Duration::from_micros(usec) / 2)
}

impl Notifier {
    /// A sender to the socket named by `NOTIFY_SOCKET`'s value.
    pub fn connect(name: &[u8], watchdog: Option<Duration>) -> io::Result<Notifier> {
        let to = match name.split_first() {
            Some((b'@', abstract_name)) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(abstract_name)?
            }
            Some((b'/', _)) => {
                use std::os::unix::ffi::OsStrExt;
                SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(name))?
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "neither an absolute path nor @abstract",
                ))
            }
        };
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Notifier {
            socket,
            to,
            watchdog,
        })
    }

    /// Sends `state` (`KEY=VALUE` lines).
    pub fn send(&self, state: &str) -> io::Result<()> {
        self.socket
            .send_to_addr(state.as_bytes(), &self.to)
            .map(drop)
    }
}

/// Sends `state` to the service manager, if there is one. A failure is
/// logged: notifications never stop the host.
pub fn notify(state: &str) {
    if let Some(Some(n)) = NOTIFIER.get() {
        if let Err(e) = n.send(state) {
            tracing::warn!(error = %e, "cannot notify the service manager");
        }
    }
}

/// Whether the host runs under a service manager that listens.
fn notifying() -> Option<&'static Notifier> {
    NOTIFIER.get().and_then(Option::as_ref)
}

/// Says `READY=1` once `pending` (what the host still waits for, as
/// `/readyz` sees it) is empty, with `STATUS=` lines meanwhile; then
/// sends `WATCHDOG=1` at the unit's period for as long as the runtime
/// runs. Returns at once without a service manager.
pub async fn run(pending: impl Fn() -> Vec<String>) {
    let Some(n) = notifying() else { return };
    // Readiness is a level: looked at often enough that systemd's start
    // job ends within a tenth of a second of `/readyz` saying 200.
    let mut said = None;
    loop {
        let waiting = pending();
        if waiting.is_empty() {
            notify("READY=1\nSTATUS=serving");
            tracing::info!("told the service manager: ready");
            break;
        }
        let status = format!("STATUS=waiting for {}", waiting.join(", "));
        if said.as_ref() != Some(&status) {
            notify(&status);
            said = Some(status);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(period) = n.watchdog else { return };
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        notify("WATCHDOG=1");
    }
}

/// Says the host is stopping.
pub fn stopping() {
    notify("STOPPING=1\nSTATUS=stopping");
}

/// Each SIGHUP calls `rescan` (the providers' directories, at once) and
/// logs that `dss.toml` itself is read at start only.
pub async fn reload_on_hangup(rescan: impl Fn()) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!(
            "SIGHUP: the modules and instances directories are re-scanned now; dss.toml is read at start only, so a change to it needs a restart (systemctl restart dss)"
        );
        rescan();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_runs_at_half_the_units_period_for_its_process_only() {
        assert_eq!(
            watchdog_interval(Some("30000000"), None, 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            watchdog_interval(Some("30000000"), Some("7"), 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(watchdog_interval(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
    }

    #[test]
    fn notifications_reach_a_path_socket_and_an_abstract_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).expect("bind");
        let n = Notifier::connect(path.as_os_str().as_encoded_bytes(), None).expect("connect");
        n.send("READY=1").expect("send");
        let mut buf = [0u8; 64];
        let got = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..got], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("dss-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let listener = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        let n = Notifier::connect(format!("@{name}").as_bytes(), None).expect("connect");
        n.send("WATCHDOG=1").expect("send");
        let got = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..got], b"WATCHDOG=1");

        assert!(Notifier::connect(b"relative", None).is_err());
    }
}
