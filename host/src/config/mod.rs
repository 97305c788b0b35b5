//! The operator's configuration: `dss.toml` (with `DSS_*` environment
//! overrides) and the provider instance files `providers.d/NAME.toml`.
//!
//! Every key has a default, so an empty file (or none) is a valid
//! configuration. Relative paths are resolved against `base_dir`, which
//! itself defaults to the directory holding the configuration file.
//!
//! By concern: `cluster`, `limits` (`[providers]` and the limits of a
//! provider call), `media` (`[nginx]`, `[ffmpeg]`), `security` (with the
//! secrets kept in the state directory), `web`, `mobile` and
//! `around_streams` (`[stats]`, `[thumbnails]`, `[record]`) are the
//! sections of `dss.toml`, each with its defaults; `env` applies the
//! `DSS_*` overrides; `instance` is an instance file and `grant` what it
//! grants its provider and its streams.

mod around_streams;
mod cluster;
mod env;
mod grant;
mod instance;
mod limits;
mod media;
mod mobile;
mod security;
mod web;

pub use around_streams::{RecordConfig, SizesError, StatsConfig, ThumbnailsConfig};
pub use cluster::{host_name, ClusterConfig, ClusterError};
pub use grant::LimitsError;
pub use instance::{InstanceConfig, InstanceRecord, RecordError, ThumbnailMode, RECORD_FORMATS};
pub use limits::{Limits, ProvidersConfig};
pub use media::{FfmpegConfig, NginxConfig};
pub use mobile::MobileConfig;
pub use security::{SecurityConfig, API_TOKEN_FILE, REDACTED};
pub use web::WebConfig;

use env::apply_env;
use security::redact_url_password;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid TOML or has unknown/mistyped keys.
    #[error("invalid configuration in {path}: {message}")]
    Invalid {
        /// The file (or `environment` for `DSS_*` variables).
        path: PathBuf,
        /// What serde/toml said.
        message: String,
    },
}

/// The whole host configuration (`dss.toml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the host's HTTP server (API, callbacks, web page).
    pub listen: SocketAddr,
    /// Directory against which relative paths are resolved; state (compile
    /// cache, run files, logs) goes to `state_dir` below it.
    pub base_dir: PathBuf,
    /// Where the host keeps its own files (default `var`).
    pub state_dir: PathBuf,
    /// Provider modules and instances.
    pub providers: ProvidersConfig,
    /// The nginx-rtmp server viewers connect to.
    pub nginx: NginxConfig,
    /// FFmpeg and the on-demand lifecycle of streams.
    pub ffmpeg: FfmpegConfig,
    /// Who may call what.
    pub security: SecurityConfig,
    /// The web page.
    pub web: WebConfig,
    /// Where metadata is kept: embedded SQLite (default) or MongoDB.
    pub store: dss_store::StoreConfig,
    /// Phones pushing MPEG-TS and GPS (the original DSS's TCP protocol).
    pub mobile: MobileConfig,
    /// Per-stream statistics.
    pub stats: StatsConfig,
    /// Thumbnails of streams.
    pub thumbnails: ThumbnailsConfig,
    /// Recordings (which streams record is set per instance).
    pub record: RecordConfig,
    /// Several hosts sharing one MongoDB.
    pub cluster: ClusterConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            // The original DSS's port.
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            base_dir: PathBuf::from("."),
            state_dir: PathBuf::from("var"),
            providers: ProvidersConfig::default(),
            nginx: NginxConfig::default(),
            ffmpeg: FfmpegConfig::default(),
            security: SecurityConfig::default(),
            web: WebConfig::default(),
            store: dss_store::StoreConfig::default(),
            mobile: MobileConfig::default(),
            stats: StatsConfig::default(),
            thumbnails: ThumbnailsConfig::default(),
            record: RecordConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

impl Config {
    /// Loads `path` (or the defaults when `None`), applies `DSS_*`
    /// environment overrides, and resolves relative paths.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let (mut doc, dir, origin) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|error| ConfigError::Read {
                    path: p.to_path_buf(),
                    error,
                })?;
                let doc: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
                    path: p.to_path_buf(),
                    message: e.to_string(),
                })?;
                let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
                (doc, dir, p.to_path_buf())
            }
            None => (
                toml::Table::new(),
                PathBuf::new(),
                PathBuf::from("defaults"),
            ),
        };
        apply_env(&mut doc, env);
        let origin_path = origin.clone();
        let mut config: Config =
            toml::Value::Table(doc)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    path: origin,
                    message: e.to_string(),
                })?;
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let base = dir.join(&config.base_dir);
        config.base_dir = std::path::absolute(&base).unwrap_or(base);
        config.resolve_paths();
        config
            .cluster
            .check(&config.store)
            .map_err(|message| ConfigError::Invalid {
                path: origin_path.clone(),
                message: message.to_string(),
            })?;
        Ok(config)
    }

    fn resolve_paths(&mut self) {
        let base = self.base_dir.clone();
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut self.state_dir);
        abs(&mut self.providers.modules_dir);
        if let Some(d) = &mut self.providers.shipped_modules_dir {
            abs(d);
        }
        abs(&mut self.providers.instances_dir);
        abs(&mut self.web.dir);
        if let Some(t) = &mut self.nginx.template {
            abs(t);
        }
        // The SQLite file lives with the host's own files.
        if self.store.sqlite_path.is_relative() {
            self.store.sqlite_path = self.state_dir.join(&self.store.sqlite_path);
        }
    }

    /// Run files: rendered nginx.conf, pid, HLS/DASH fragments.
    pub fn run_dir(&self) -> PathBuf {
        self.state_dir.join("run")
    }

    /// Log files of nginx.
    pub fn log_dir(&self) -> PathBuf {
        self.state_dir.join("log")
    }

    /// FFmpeg's working directory: empty, the host's own (0700).
    pub fn ffmpeg_cwd(&self) -> PathBuf {
        self.run_dir().join("ffmpeg-cwd")
    }

    /// Recordings: `record/{id}/{id}-{start}.{ext}`.
    pub fn record_dir(&self) -> PathBuf {
        self.state_dir.join("record")
    }

    /// Thumbnails: `thumb/{id}[-size].jpg` (nginx serves `/thumb/`).
    pub fn thumb_dir(&self) -> PathBuf {
        self.state_dir.join("thumb")
    }

    /// The host's own HTTP base URL as seen from nginx (loopback when the
    /// host listens on all interfaces).
    pub fn host_url(&self) -> String {
        let mut addr = self.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                IpAddr::from([127, 0, 0, 1])
            } else {
                "::1".parse().expect("valid")
            });
        }
        format!("http://{addr}")
    }

    /// Where FFmpeg publishes stream `id` (without the publish token).
    pub fn rtmp_url(&self, id: &str) -> String {
        let n = &self.nginx;
        format!(
            "rtmp://{}/{}/{id}",
            SocketAddr::new(n.host, n.rtmp_port),
            n.app
        )
    }

    /// Where `/stat` is read.
    /// nginx's `/stat`, under the callback `secret` (nothing the media
    /// plane reaches may read it, or anything else of nginx's own).
    pub fn stat_url(&self, secret: &str) -> String {
        let n = &self.nginx;
        format!(
            "http://{}/{secret}/stat",
            SocketAddr::new(n.host, n.http_port)
        )
    }

    /// Where compiled components are cached.
    pub fn module_cache_dir(&self) -> PathBuf {
        self.state_dir.join("cache").join("modules")
    }

    /// The effective configuration as TOML (for `dss config`).
    /// Secrets (the API token, the callback secret, a password in the
    /// store's URL) are shown as `"<redacted>"`: the output is for reading
    /// and pasting into issues, not a copy of the secrets.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        let redact = |v: &mut Option<String>| {
            if v.is_some() {
                *v = Some(REDACTED.to_string());
            }
        };
        redact(&mut shown.security.api_token);
        redact(&mut shown.security.callback_secret);
        if let Some(u) = shown.store.url.as_mut() {
            *u = redact_url_password(u);
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_design() {
        let c = Config::load_with_env(None, []).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(c.nginx.http_port, 8080);
        assert_eq!(c.nginx.rtmp_port, 1935);
        assert_eq!(c.nginx.app, "dss");
        assert_eq!(c.ffmpeg.grace_seconds, 30);
        assert!(c.providers.instances_dir.ends_with("providers.d"));
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("dss-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("dss.toml");
        std::fs::write(&file, "[nginx]\nhttp_prot = 1\n").unwrap();
        let e = Config::load_with_env(Some(&file), [])
            .unwrap_err()
            .to_string();
        assert!(e.contains("dss.toml") && e.contains("http_prot"), "{e}");
    }
}
