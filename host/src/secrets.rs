//! An instance's `[secrets]`: API keys and tokens a provider may send in
//! request headers without ever seeing them.
//!
//! The instance file names where each value comes from — an environment
//! variable of the host or a file — never the value itself, so instance
//! files can be shared and versioned. Values are read when the instance
//! file is (re)loaded, handed only to the HTTP gate, and never printed:
//! [`Secrets`]'s `Debug` shows names only, and the gate marks the headers
//! sensitive.
//!
//! ```toml
//! [secrets]
//! city_key = { env = "CITY_CAMERAS_KEY", hosts = ["cameras.city.example"] }
//! token = { file = "/etc/dss/secrets/token" }
//! ```
//!
//! `hosts` binds a secret to the hosts it is for (`host` or `host:port`):
//! a request anywhere else that names it is refused, whatever else the
//! instance's `allow_hosts` lets the module reach. Without it, a secret
//! may go to any of them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Largest secret value: header-sized.
const MAX_SECRET_BYTES: usize = 8 * 1024;

/// Where one secret's value comes from (exactly one of the two).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// An environment variable of the host process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// A file whose content (one line; a final newline is dropped) is the
    /// value. Relative: inside the instance file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// The only hosts (`host` or `host:port`) the secret may be sent to;
    /// unset: any the instance allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
}

/// Why a secret cannot be loaded, or cannot go where a request asks: the
/// secret's name and what is wrong, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// A request names a secret the instance does not have.
    #[error("secret {name:?} is not in this instance's [secrets]{hint}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names there are ([`Secrets::names_hint`]).
        hint: String,
    },
    /// A request sends a secret to a host it is not bound to.
    #[error("secret {name:?} is bound to {} ([secrets] hosts): not sent to {host}", .hosts.join(", "))]
    NotBound {
        /// The secret's name.
        name: String,
        /// The hosts it is bound to.
        hosts: Vec<String>,
        /// The host of the request (lower case).
        host: String,
    },
    /// A name with other characters than letters, digits, `_`, `-`, `.`.
    #[error("[secrets] {name}: a secret's name is letters, digits, '_', '-' and '.'")]
    Name {
        /// The name.
        name: String,
    },
    /// A `DSS_*` variable (the host's own configuration).
    #[error("[secrets] {name}: {var}: DSS_* variables are the host's configuration; name the secret's variable otherwise")]
    HostVariable {
        /// The secret's name.
        name: String,
        /// The variable.
        var: String,
    },
    /// An environment variable that is not set.
    #[error("[secrets] {name}: environment variable {var} is not set")]
    Unset {
        /// The secret's name.
        name: String,
        /// The variable.
        var: String,
    },
    /// A file that cannot be read (or leads out of the instance's
    /// directory).
    #[error("[secrets] {name}: cannot read {}: {reason}", .file.display())]
    Unreadable {
        /// The secret's name.
        name: String,
        /// The file as written.
        file: PathBuf,
        /// Why it cannot be read.
        reason: String,
    },
    /// Both `env` and `file`, or neither.
    #[error("[secrets] {name}: give exactly one of env = \"VAR\" or file = \"PATH\"")]
    Source {
        /// The secret's name.
        name: String,
    },
    /// An empty value.
    #[error("[secrets] {name}: the value is empty")]
    Empty {
        /// The secret's name.
        name: String,
    },
    /// A value longer than a header may be.
    #[error("[secrets] {name}: the value is longer than {max} bytes")]
    TooLong {
        /// The secret's name.
        name: String,
        /// The longest value, in bytes.
        max: usize,
    },
    /// A value with control characters (other than tab).
    #[error("[secrets] {name}: the value has control characters (a header value cannot)")]
    Control {
        /// The secret's name.
        name: String,
    },
    /// A `hosts` list that is empty or has an entry that is not `host` or
    /// `host:port`.
    #[error("[secrets] {name}: hosts: a list of host or host:port (as in allow_hosts)")]
    Hosts {
        /// The secret's name.
        name: String,
    },
}

/// One secret's value and where it may go.
#[derive(Clone, PartialEq)]
struct Secret {
    value: String,
    hosts: Option<Vec<String>>,
}

/// The secret values of one instance, by name.
#[derive(Clone, Default, PartialEq)]
pub struct Secrets(BTreeMap<String, Secret>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Secrets {
    /// The value of secret `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|s| s.value.as_str())
    }

    /// The value of secret `name` for a request to `host` on `port`, if it
    /// exists and may go there; else why not (never its value).
    pub fn for_host(&self, name: &str, host: &str, port: u16) -> Result<&str, SecretError> {
        let secret = self.0.get(name).ok_or_else(|| SecretError::Unknown {
            name: name.to_string(),
            hint: self.names_hint(),
        })?;
        if let Some(hosts) = &secret.hosts {
            let host = host.to_ascii_lowercase();
            let with_port = format!("{host}:{port}");
            let bound = hosts.iter().any(|h| {
                let h = h.to_ascii_lowercase();
                h == host || h == with_port
            });
            if !bound {
                return Err(SecretError::NotBound {
                    name: name.to_string(),
                    hosts: hosts.clone(),
                    host,
                });
            }
        }
        Ok(&secret.value)
    }

    /// For error messages: the names there are.
    pub fn names_hint(&self) -> String {
        if self.0.is_empty() {
            " (it has none)".into()
        } else {
            let names: Vec<&str> = self.0.keys().map(String::as_str).collect();
            format!(" (it has: {})", names.join(", "))
        }
    }

    /// Reads every source of `table`; `dir` is the instance file's
    /// directory. The error names the secret and its source, never a value.
    pub fn load(
        table: &BTreeMap<String, SecretSource>,
        dir: &Path,
    ) -> Result<Secrets, SecretError> {
        Self::load_with(table, dir, |k| std::env::var(k).ok())
    }

    /// [`Secrets::load`] with the environment given (tests).
    pub fn load_with(
        table: &BTreeMap<String, SecretSource>,
        dir: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Secrets, SecretError> {
        let mut out = BTreeMap::new();
        for (name, source) in table {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            {
                return Err(SecretError::Name { name: name.clone() });
            }
            let value = match (&source.env, &source.file) {
                (Some(var), None) if var.starts_with("DSS_") => {
                    return Err(SecretError::HostVariable {
                        name: name.clone(),
                        var: var.clone(),
                    })
                }
                (Some(var), None) => env(var).ok_or_else(|| SecretError::Unset {
                    name: name.clone(),
                    var: var.clone(),
                })?,
                (None, Some(file)) => {
                    let text = if file.is_absolute() {
                        std::fs::read_to_string(file).map_err(|e| e.to_string())
                    } else {
                        let base = if dir.as_os_str().is_empty() {
                            Path::new(".")
                        } else {
                            dir
                        };
                        crate::files::HostDir::open(base)
                            .and_then(|d| d.read_to_string(file))
                            .map_err(|e| e.to_string())
                    }
                    .map_err(|reason| SecretError::Unreadable {
                        name: name.clone(),
                        file: file.clone(),
                        reason,
                    })?;
                    let text = text.strip_suffix('\n').unwrap_or(&text);
                    text.strip_suffix('\r').unwrap_or(text).to_string()
                }
                _ => return Err(SecretError::Source { name: name.clone() }),
            };
            if value.is_empty() {
                return Err(SecretError::Empty { name: name.clone() });
            }
            if value.len() > MAX_SECRET_BYTES {
                return Err(SecretError::TooLong {
                    name: name.clone(),
                    max: MAX_SECRET_BYTES,
                });
            }
            if value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(SecretError::Control { name: name.clone() });
            }
            if let Some(hosts) = &source.hosts {
                if hosts.is_empty() || hosts.iter().any(|h| h.trim().is_empty() || h.contains('/'))
                {
                    return Err(SecretError::Hosts { name: name.clone() });
                }
            }
            out.insert(
                name.clone(),
                Secret {
                    value,
                    hosts: source.hosts.clone(),
                },
            );
        }
        Ok(Secrets(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_src(v: &str) -> SecretSource {
        SecretSource {
            env: Some(v.into()),
            file: None,
            hosts: None,
        }
    }

    #[test]
    fn values_come_from_the_environment_or_a_file_and_never_show() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "s3cr3t-file\n").unwrap();
        let mut t = BTreeMap::new();
        t.insert("key".to_string(), env_src("CITY_TEST_KEY"));
        t.insert(
            "token".to_string(),
            SecretSource {
                env: None,
                file: Some("token".into()),
                hosts: None,
            },
        );
        let s = Secrets::load_with(&t, dir.path(), |k| {
            (k == "CITY_TEST_KEY").then(|| "s3cr3t-env".to_string())
        })
        .unwrap();
        assert_eq!(s.get("key"), Some("s3cr3t-env"));
        assert_eq!(s.get("token"), Some("s3cr3t-file"));
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("key") && shown.contains("token"));
    }

    #[test]
    fn bad_sources_are_named_without_values() {
        let dir = tempfile::tempdir().unwrap();
        let one = |name: &str, src: SecretSource| {
            let mut t = BTreeMap::new();
            t.insert(name.to_string(), src);
            Secrets::load_with(&t, dir.path(), |k| match k {
                "NL" => Some("a\nb".into()),
                "EMPTY" => Some(String::new()),
                "OK" => Some("fine".into()),
                _ => None,
            })
            .unwrap_err()
            .to_string()
        };
        assert!(one("k", env_src("MISSING")).contains("MISSING is not set"));
        assert!(one("k", env_src("DSS_KEY")).contains("host's configuration"));
        assert!(one("k", env_src("NL")).contains("control characters"));
        assert!(one("k", env_src("EMPTY")).contains("empty"));
        assert!(one("a b", env_src("X")).contains("name"));
        let both = SecretSource {
            env: Some("X".into()),
            file: Some("f".into()),
            hosts: None,
        };
        assert!(one("k", both).contains("exactly one"));
        let escape = SecretSource {
            env: None,
            file: Some("../../etc/passwd".into()),
            hosts: None,
        };
        let e = one("k", escape);
        assert!(e.contains("cannot read"), "{e}");
        let nowhere = SecretSource {
            hosts: Some(Vec::new()),
            ..env_src("OK")
        };
        assert!(one("k", nowhere).contains("hosts"));
    }

    #[test]
    fn a_bound_secret_goes_only_to_its_hosts() {
        let mut t = BTreeMap::new();
        t.insert(
            "key".to_string(),
            SecretSource {
                hosts: Some(vec!["feed.example".into(), "other.example:8443".into()]),
                ..env_src("K")
            },
        );
        t.insert("free".to_string(), env_src("K"));
        let s = Secrets::load_with(&t, Path::new("."), |_| Some("v4lue".into())).unwrap();
        assert_eq!(s.for_host("key", "feed.example", 443), Ok("v4lue"));
        assert_eq!(s.for_host("key", "FEED.example", 80), Ok("v4lue"));
        assert_eq!(s.for_host("key", "other.example", 8443), Ok("v4lue"));
        let e = s.for_host("key", "other.example", 443).unwrap_err();
        assert_eq!(
            e,
            SecretError::NotBound {
                name: "key".into(),
                hosts: vec!["feed.example".into(), "other.example:8443".into()],
                host: "other.example".into(),
            }
        );
        let e = e.to_string();
        assert_eq!(
            e,
            "secret \"key\" is bound to feed.example, other.example:8443 ([secrets] hosts): not sent to other.example"
        );
        assert!(s.for_host("key", "evil.example", 443).is_err());
        assert_eq!(s.for_host("free", "anywhere.example", 80), Ok("v4lue"));
        assert_eq!(
            s.for_host("none", "feed.example", 80)
                .unwrap_err()
                .to_string(),
            "secret \"none\" is not in this instance's [secrets] (it has: free, key)"
        );
    }
}
