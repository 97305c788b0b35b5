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
//! city_key = { env = "CITY_CAMERAS_KEY" }
//! token = { file = "/etc/dss/secrets/token" }
//! ```

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
}

/// The secret values of one instance, by name.
#[derive(Clone, Default, PartialEq)]
pub struct Secrets(BTreeMap<String, String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Secrets {
    /// The value of secret `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
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
    pub fn load(table: &BTreeMap<String, SecretSource>, dir: &Path) -> Result<Secrets, String> {
        Self::load_with(table, dir, |k| std::env::var(k).ok())
    }

    /// [`Secrets::load`] with the environment given (tests).
    pub fn load_with(
        table: &BTreeMap<String, SecretSource>,
        dir: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Secrets, String> {
        let mut out = BTreeMap::new();
        for (name, source) in table {
            let bad = |m: String| format!("[secrets] {name}: {m}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
            {
                return Err(bad(
                    "a secret's name is letters, digits, '_', '-' and '.'".into()
                ));
            }
            let value = match (&source.env, &source.file) {
                (Some(var), None) if var.starts_with("DSS_") => {
                    return Err(bad(format!(
                        "{var}: DSS_* variables are the host's configuration; name the secret's variable otherwise"
                    )))
                }
                (Some(var), None) => env(var)
                    .ok_or_else(|| bad(format!("environment variable {var} is not set")))?,
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
                    .map_err(|e| bad(format!("cannot read {}: {e}", file.display())))?;
                    let text = text.strip_suffix('\n').unwrap_or(&text);
                    text.strip_suffix('\r').unwrap_or(text).to_string()
                }
                _ => return Err(bad("give exactly one of env = \"VAR\" or file = \"PATH\"".into())),
            };
            if value.is_empty() {
                return Err(bad("the value is empty".into()));
            }
            if value.len() > MAX_SECRET_BYTES {
                return Err(bad(format!(
                    "the value is longer than {MAX_SECRET_BYTES} bytes"
                )));
            }
            if value.chars().any(|c| c.is_control() && c != '\t') {
                return Err(bad(
                    "the value has control characters (a header value cannot)".into(),
                ));
            }
            out.insert(name.clone(), value);
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
                _ => None,
            })
            .unwrap_err()
        };
        assert!(one("k", env_src("MISSING")).contains("MISSING is not set"));
        assert!(one("k", env_src("DSS_KEY")).contains("host's configuration"));
        assert!(one("k", env_src("NL")).contains("control characters"));
        assert!(one("k", env_src("EMPTY")).contains("empty"));
        assert!(one("a b", env_src("X")).contains("name"));
        let both = SecretSource {
            env: Some("X".into()),
            file: Some("f".into()),
        };
        assert!(one("k", both).contains("exactly one"));
        let escape = SecretSource {
            env: None,
            file: Some("../../etc/passwd".into()),
        };
        let e = one("k", escape);
        assert!(e.contains("cannot read"), "{e}");
    }
}
