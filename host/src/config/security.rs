//! `[security]`: who may call what; the secrets kept in the state
//! directory when the configuration sets none; and keeping secrets out
//! of the printed configuration.

use super::Config;
use crate::ids;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// `[security]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// Addresses nginx's callbacks (and the original's `/control`) may
    /// come from.
    pub callback_allow: Vec<IpAddr>,
    /// The token of the private surface (admin actions, metrics, logs,
    /// recordings), needed from every caller, loopback included; unset:
    /// made once and kept in `<state_dir>/api.token`.
    pub api_token: Option<String>,
    /// Secret that nginx's callbacks carry in their path
    /// (`/hooks/SECRET/on_play`); unset: generated once and kept in
    /// `<state_dir>/callback.secret`.
    pub callback_secret: Option<String>,
    /// Streams one public client address may hold viewer leases on at
    /// once (HLS/DASH playlists and `watch` through the public port).
    pub max_streams_per_client: usize,
    /// When the host runs as root, the unprivileged user every FFmpeg and
    /// nginx's workers run as (default `dss`; it must exist: the set-up
    /// makes it). `"root"` keeps them root, against advice. Ignored when
    /// the host does not run as root.
    pub run_as: Option<String>,
    /// `run_as` resolved at start ([`crate::privileges`]); `None` when the
    /// media plane runs as the host's own user.
    #[serde(skip)]
    pub media_user: Option<crate::privileges::MediaUser>,
}

impl SecurityConfig {
    /// Whether `ip` may send callbacks.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.callback_allow.iter().any(|a| a.to_canonical() == ip)
    }
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            callback_allow: vec![IpAddr::from([127, 0, 0, 1]), "::1".parse().expect("valid")],
            api_token: None,
            callback_secret: None,
            // A viewer watches one stream; a wall of a few cameras is
            // fine; a client walking every stream is not.
            max_streams_per_client: 8,
            run_as: None,
            media_user: None,
        }
    }
}

impl Config {
    /// The secret nginx's callbacks carry: `[security] callback_secret`,
    /// else the one kept in `<state_dir>/callback.secret` (created, mode
    /// 0600, with 128 random bits, the first time).
    pub fn callback_secret(&self) -> std::io::Result<String> {
        if let Some(s) = &self.security.callback_secret {
            if !is_secret(s) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "[security] callback_secret must be 32 to 128 hex digits",
                ));
            }
            return Ok(s.clone());
        }
        self.state_secret("callback.secret")
    }

    /// The API token, which the private surface needs from every caller:
    /// `[security] api_token`, else the one kept in `<state_dir>/api.token`
    /// (created, mode 0600, with 128 random bits, the first time; an
    /// operator reads it there).
    pub fn api_token(&self) -> std::io::Result<String> {
        match &self.security.api_token {
            Some(t) if t.is_empty() || t.chars().any(|c| c.is_control() || c == ' ') => {
                Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "[security] api_token must be a non-empty word (no spaces)",
                ))
            }
            Some(t) => Ok(t.clone()),
            None => self.state_secret(API_TOKEN_FILE),
        }
    }

    /// Cluster mode: this host's key, kept in `<state_dir>/cluster.key`
    /// (made the first time, 0600): a restarted host is itself, another
    /// host under the same node id is not.
    pub fn cluster_key(&self) -> std::io::Result<String> {
        self.state_secret("cluster.key")
    }

    /// A secret kept in file `name` of the state directory: read, or made
    /// (mode 0600, 128 random bits) the first time.
    fn state_secret(&self, name: &str) -> std::io::Result<String> {
        let state = crate::files::HostDir::create(&self.state_dir)?;
        match state.read_to_string(name) {
            Ok(s) if is_secret(s.trim()) => return Ok(s.trim().to_string()),
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} must hold 32 to 128 hex digits; remove it to get a new one",
                        state.path(name).display()
                    ),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let secret = ids::random_hex(16)?;
        // Two hosts starting at once on one state directory: the first
        // file made wins and both read it back.
        state.write_new(name, secret.as_bytes(), Some(crate::files::PRIVATE_FILE))?;
        let s = state.read_to_string(name)?;
        Ok(s.trim().to_string())
    }
}

/// The file of the state directory that keeps a generated API token.
pub const API_TOKEN_FILE: &str = "api.token";

/// What `dss config` shows in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// `url` with the password of its user information replaced by
/// [`REDACTED`].
pub(super) fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // The user information ends at the last '@' before the path.
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:{REDACTED}{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// A callback secret: 32 to 128 hex digits (it goes into URLs and the
/// nginx configuration).
fn is_secret(s: &str) -> bool {
    (32..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_configuration_redacts_secrets() {
        let mut c = Config::load_with_env(None, []).unwrap();
        c.security.api_token = Some("tok3n-value".into());
        c.security.callback_secret = Some("ab".repeat(16));
        c.store.url = Some("mongodb://dss:hunter2@db.example:27017/dss?authSource=admin".into());
        let text = c.to_toml();
        for secret in ["tok3n-value", &"ab".repeat(16), "hunter2"] {
            assert!(!text.contains(secret), "{secret} shown:\n{text}");
        }
        assert!(text.contains("mongodb://dss:<redacted>@db.example:27017/dss?authSource=admin"));
        assert_eq!(
            redact_url_password("mongodb://db.example/dss"),
            "mongodb://db.example/dss"
        );
        assert_eq!(
            redact_url_password("mongodb://user@db/x?a=b@c"),
            "mongodb://user@db/x?a=b@c"
        );
    }

    #[test]
    fn the_callback_secret_is_made_once_and_kept_private() {
        let dir = std::env::temp_dir().join(format!("dss-secret-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut c = Config::load_with_env(None, []).unwrap();
        c.state_dir = dir.clone();
        let a = c.callback_secret().unwrap();
        assert_eq!(a.len(), 32);
        assert_eq!(c.callback_secret().unwrap(), a, "kept across calls");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("callback.secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(dir.join("callback.secret"), "x; include /etc").unwrap();
        assert!(c.callback_secret().is_err(), "a tampered file is refused");
        c.security.callback_secret = Some("bad secret".into());
        assert!(c.callback_secret().is_err(), "so is a bad configured one");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
