//! Where the host listens and keeps its files: free ports, directories
//! that exist and can be written, and a state directory that is the
//! host's own (its owner, its modes, its secrets private).

use super::Finding;
use crate::config::Config;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

/// How long the probe of a running host waits (loopback: it answers in
/// milliseconds or not at all).
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Entries of the state directory looked at for their owner: enough for
/// every file the host makes, bounded for a state holding recordings.
const OWNERSHIP_SCAN_MAX: usize = 20_000;

/// The ports the host and its nginx listen on, each free (or held by the
/// DSS already running with this configuration).
pub(super) fn ports(config: &Config) -> Vec<Finding> {
    let mut wanted: Vec<(String, SocketAddr)> = vec![("listen".to_string(), config.listen)];
    if crate::nginx::managed::decide(config).unwrap_or(true) {
        let n = &config.nginx;
        wanted.push((
            "[nginx] http_port".to_string(),
            SocketAddr::new(n.bind, n.http_port),
        ));
        wanted.push((
            "[nginx] rtmp_port".to_string(),
            SocketAddr::new(n.bind, n.rtmp_port),
        ));
    }
    if crate::mobile::enabled(config) {
        wanted.push(("[mobile] listen".to_string(), config.mobile.listen));
    }
    if dss_answers(config.listen) {
        return vec![Finding::ok(
            "ports",
            format!(
                "a DSS answers on {}: its ports are in use by it (stop it to check them)",
                config.listen
            ),
        )];
    }
    wanted
        .into_iter()
        .map(|(key, addr)| port(&key, addr))
        .collect()
}

/// Whether `addr` can be bound now.
fn port(key: &str, addr: SocketAddr) -> Finding {
    let subject = format!("port {addr}");
    match TcpListener::bind(addr) {
        Ok(_) => Finding::ok(subject, format!("free ({key})")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Finding::fail(
            subject,
            format!("in use ({key})"),
            format!(
                "stop what listens there (`ss -ltnp 'sport = :{}'` names it) or set {key} to a free port",
                addr.port()
            ),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Finding::fail(
            subject,
            format!("binding it needs privileges ({key})"),
            format!("set {key} to a port of 1024 or above"),
        ),
        Err(e) => Finding::fail(
            subject,
            format!("cannot bind it ({key}): {e}"),
            format!("set {key} to an address of this machine"),
        ),
    }
}

/// Whether a DSS answers `/healthz` at `addr`.
fn dss_answers(addr: SocketAddr) -> bool {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let Ok(mut s) = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(PROBE_TIMEOUT));
    if s.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = Vec::new();
    let _ = s.take(4096).read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    answer.starts_with("HTTP/1.") && answer.contains("\"status\"")
}

/// The state directory (writable, or creatable), the modules and
/// instances directories (readable), the web page.
pub(super) fn directories(config: &Config) -> Vec<Finding> {
    let mut out = vec![state_dir(&config.state_dir)];
    let p = &config.providers;
    let count = |dir: &Path, ext: &str| -> std::io::Result<usize> {
        Ok(std::fs::read_dir(dir)?
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == ext))
            .count())
    };
    let mut modules = 0;
    if let Some(shipped) = &p.shipped_modules_dir {
        match count(shipped, "wasm") {
            Ok(n) => {
                modules += n;
                out.push(Finding::ok(
                    "shipped modules",
                    format!("{}: {n} modules", shipped.display()),
                ))
            }
            Err(e) => out.push(Finding::warn(
                "shipped modules",
                format!("{}: {e}", shipped.display()),
                "reinstall the package, or unset [providers] shipped_modules_dir",
            )),
        }
    }
    match count(&p.modules_dir, "wasm") {
        Ok(n) => {
            modules += n;
            let writable = if writable(&p.modules_dir) {
                ""
            } else {
                " (read-only to this user: its owner drops modules there)"
            };
            out.push(Finding::ok(
                "modules",
                format!("{}: {n} modules{writable}", p.modules_dir.display()),
            ))
        }
        Err(e) if p.shipped_modules_dir.is_some() => out.push(Finding::warn(
            "modules",
            format!("{}: {e}", p.modules_dir.display()),
            format!(
                "mkdir -p {} for the operator's modules",
                p.modules_dir.display()
            ),
        )),
        Err(e) => out.push(Finding::fail(
            "modules",
            format!("{}: {e}", p.modules_dir.display()),
            "set [providers] modules_dir to the directory of the .wasm providers (scripts/build-providers.sh builds the shipped ones into target/providers)",
        )),
    }
    if modules == 0 {
        out.push(Finding::warn(
            "modules",
            "no provider module at all: no instance can serve",
            "put .wasm providers in [providers] modules_dir",
        ));
    }
    match count(&p.instances_dir, "toml") {
        Ok(n) => out.push(Finding::ok(
            "instances",
            format!("{}: {n} instance files", p.instances_dir.display()),
        )),
        Err(e) => out.push(Finding::fail(
            "instances",
            format!("{}: {e}", p.instances_dir.display()),
            "set [providers] instances_dir to the directory of the NAME.toml instance files",
        )),
    }
    let index = config.web.dir.join("index.html");
    if !index.is_file() {
        out.push(Finding::warn(
            "web page",
            format!("no {}: the map is not served", index.display()),
            "set [web] dir to the directory of the page (www/ in the repository, /usr/share/dss/www in the package)",
        ));
    }
    out
}

/// The state directory: there and writable, or creatable.
fn state_dir(dir: &Path) -> Finding {
    let subject = "state directory";
    if dir.is_dir() {
        return if writable(dir) {
            Finding::ok(subject, format!("{} (writable)", dir.display()))
        } else {
            Finding::fail(
                subject,
                format!(
                    "{} is not writable by this user ({})",
                    dir.display(),
                    whoami()
                ),
                format!(
                    "chown -R {} {} (the user the host runs as owns its state)",
                    whoami(),
                    dir.display()
                ),
            )
        };
    }
    if dir.exists() {
        return Finding::fail(
            subject,
            format!("{} is not a directory", dir.display()),
            "set state_dir to a directory",
        );
    }
    let parent = dir.ancestors().skip(1).find(|a| a.exists());
    match parent {
        Some(p) if p.is_dir() && writable(p) => {
            Finding::ok(subject, format!("{} (made at first start)", dir.display()))
        }
        Some(p) => Finding::fail(
            subject,
            format!(
                "{} does not exist and cannot be made: {} is not a writable directory",
                dir.display(),
                p.display()
            ),
            format!(
                "mkdir -p {0} && chown {1} {0}, or set state_dir",
                dir.display(),
                whoami()
            ),
        ),
        None => Finding::fail(
            subject,
            format!("{} cannot be made", dir.display()),
            "set state_dir",
        ),
    }
}

/// Whether this process can make files in `dir` (tried: permission bits
/// do not tell of read-only mounts, ACLs or root).
fn writable(dir: &Path) -> bool {
    let probe = dir.join(format!(".dss-doctor-{}", std::process::id()));
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .is_ok();
    if made {
        let _ = std::fs::remove_file(&probe);
    }
    made
}

/// This process's user, by name when it has one.
fn whoami() -> String {
    let uid = crate::privileges::euid();
    user_name(uid).unwrap_or_else(|| format!("uid {uid}"))
}

use crate::privileges::user_name;

/// The state directory belongs to the user running this (the user the
/// host runs as; as root, also its media user's directories), is not
/// open to others, and its secrets are private.
pub(super) fn ownership(config: &Config) -> Vec<Finding> {
    let dir = &config.state_dir;
    let Ok(meta) = std::fs::metadata(dir) else {
        return Vec::new();
    };
    let me = crate::privileges::euid();
    let owner = meta.uid();
    let name = |uid: u32| user_name(uid).unwrap_or_else(|| format!("uid {uid}"));
    if me == 0 && owner != 0 {
        return vec![Finding::warn(
            "state ownership",
            format!(
                "{} belongs to {}, and this runs as root",
                dir.display(),
                name(owner)
            ),
            format!(
                "run doctor as the user the host runs as: sudo -u {} dss doctor",
                name(owner)
            ),
        )];
    }
    // A host running as root hands FFmpeg's directories to its media user.
    let media = crate::privileges::MediaUser::for_this_process(config.security.run_as.as_deref())
        .ok()
        .flatten()
        .map(|u| u.uid);
    let mut out = Vec::new();
    let mut others = 0usize;
    let mut example = None;
    let mut seen = 0usize;
    for entry in walkdir(dir) {
        seen += 1;
        if seen > OWNERSHIP_SCAN_MAX {
            break;
        }
        if entry.1 != me && Some(entry.1) != media {
            others += 1;
            example.get_or_insert((entry.0, entry.1));
        }
    }
    match example {
        Some((path, uid)) => out.push(Finding::fail(
            "state ownership",
            format!(
                "{others} entries of {} belong to other users than {} (first: {} of {})",
                dir.display(),
                name(me),
                path.display(),
                name(uid)
            ),
            format!("chown -R {} {}", name(me), dir.display()),
        )),
        None => out.push(Finding::ok(
            "state ownership",
            format!(
                "{} and everything in it belong to {}",
                dir.display(),
                name(me)
            ),
        )),
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o002 != 0 {
        out.push(Finding::fail(
            "state modes",
            format!("{} is writable by every user ({mode:o})", dir.display()),
            format!("chmod 0711 {}", dir.display()),
        ));
    }
    for secret in [
        crate::config::API_TOKEN_FILE,
        "callback.secret",
        "cluster.key",
    ] {
        let path = dir.join(secret);
        let Ok(m) = std::fs::metadata(&path) else {
            continue;
        };
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            out.push(Finding::fail(
                "state modes",
                format!("{} is readable by others ({mode:o})", path.display()),
                format!("chmod 0600 {}", path.display()),
            ));
        }
    }
    out
}

/// Every entry below `dir` (not following links) with its owner.
fn walkdir(dir: &Path) -> impl Iterator<Item = (std::path::PathBuf, u32)> {
    let mut stack = vec![dir.to_path_buf()];
    let mut pending: Vec<(std::path::PathBuf, u32)> = Vec::new();
    std::iter::from_fn(move || loop {
        if let Some(e) = pending.pop() {
            return Some(e);
        }
        let d = stack.pop()?;
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            }
            pending.push((e.path(), m.uid()));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::Level;
    use super::*;

    #[test]
    fn a_port_in_use_fails_naming_its_key() {
        let held = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = held.local_addr().expect("addr");
        let f = port("[nginx] rtmp_port", addr);
        assert_eq!(f.level, Level::Fail, "{f}");
        assert!(f.to_string().contains("[nginx] rtmp_port"), "{f}");
        drop(held);
        assert_eq!(port("listen", addr).level, Level::Ok);
    }

    #[test]
    fn a_state_directory_that_cannot_be_made_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("file");
        std::fs::write(&file, b"").expect("write");
        let f = state_dir(&file.join("var"));
        assert_eq!(f.level, Level::Fail, "{f}");
        let f = state_dir(&file);
        assert_eq!(f.level, Level::Fail, "{f}");
        assert_eq!(state_dir(&dir.path().join("var")).level, Level::Ok);
        assert_eq!(state_dir(dir.path()).level, Level::Ok);
    }

    #[test]
    fn missing_instances_and_modules_directories_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config {
            state_dir: dir.path().join("var"),
            ..Default::default()
        };
        config.providers.modules_dir = dir.path().join("no-modules");
        config.providers.instances_dir = dir.path().join("no-instances");
        let f = directories(&config);
        let failed: Vec<&str> = f
            .iter()
            .filter(|f| f.level == Level::Fail)
            .map(|f| f.subject.as_str())
            .collect();
        assert_eq!(failed, ["modules", "instances"], "{f:?}");
        // With a shipped directory, the operator's may be missing.
        std::fs::create_dir(dir.path().join("shipped")).expect("mkdir");
        config.providers.shipped_modules_dir = Some(dir.path().join("shipped"));
        let f = directories(&config);
        assert!(f
            .iter()
            .any(|f| f.subject == "modules" && f.level == Level::Warn));
    }

    #[test]
    fn secrets_open_to_others_and_a_world_writable_state_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            state_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        std::fs::write(dir.path().join("api.token"), b"0123").expect("write");
        std::fs::set_permissions(
            dir.path().join("api.token"),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let f = ownership(&config);
        let modes: Vec<String> = f
            .iter()
            .filter(|f| f.level == Level::Fail)
            .map(ToString::to_string)
            .collect();
        assert_eq!(modes.len(), 2, "{modes:?}");
        assert!(modes[0].contains("writable by every user"), "{modes:?}");
        assert!(modes[1].contains("chmod 0600"), "{modes:?}");
    }

    #[test]
    fn state_owned_by_another_user_fails() {
        if crate::privileges::euid() != 0 {
            eprintln!("skipped: only root can give a file away");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config {
            state_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        let f = dir.path().join("dss.sqlite");
        std::fs::write(&f, b"").expect("write");
        std::os::unix::fs::chown(&f, Some(54321), Some(54321)).expect("chown");
        let found = ownership(&config);
        assert_eq!(found[0].level, Level::Fail, "{}", found[0]);
        assert!(found[0].to_string().contains("uid 54321"), "{}", found[0]);
    }
}
