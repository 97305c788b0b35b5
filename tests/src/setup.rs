//! A scratch host configuration ([`Setup`]): ports, `dss.toml` by
//! section, modules and provider instances.

use crate::paths::{module, repo_root, scratch_dir};
use crate::ports::free_port;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The API token every test host has (`[security] api_token`), unless a
/// test sets its own.
pub const TEST_TOKEN: &str = "dss-test-api-token";

/// A scratch host configuration: a directory with `dss.toml`, a modules
/// directory and `providers.d/`.
pub struct Setup {
    /// The scratch directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// Port of the host's HTTP API.
    pub port: u16,
    /// nginx HTTP port.
    pub nginx_http: u16,
    /// nginx RTMP port.
    pub nginx_rtmp: u16,
    /// The mobile ingest's TCP port (`[mobile] listen`).
    pub mobile_port: u16,
    /// Extra `dss.toml` lines by section (`""` for top-level keys).
    pub sections: std::collections::BTreeMap<String, Vec<String>>,
    /// The host's `RUST_LOG` (tests read debug lines; benches measure at
    /// the operator's default, `info`).
    pub log_filter: String,
    /// Extra environment of the host process (secrets).
    pub env: Vec<(String, String)>,
}

impl Setup {
    /// A scratch configuration with the three shipped modules installed.
    pub fn new() -> Self {
        let s = Self::empty();
        for m in ["static-list", "traffic-feed", "mobile-ts"] {
            s.install_module(m, &module(m));
        }
        s
    }

    /// A scratch configuration with no modules.
    pub fn empty() -> Self {
        let dir = scratch_dir();
        std::fs::create_dir_all(dir.path().join("modules")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("providers.d")).expect("mkdir");
        let mut s = Setup {
            dir,
            port: free_port(),
            nginx_http: free_port(),
            nginx_rtmp: free_port(),
            mobile_port: free_port(),
            sections: Default::default(),
            log_filter: "info,dss_host=debug".into(),
            env: Vec::new(),
        };
        // No nginx unless a test asks for it.
        s.set("nginx", "managed = false");
        // Tests run in parallel: never the default 0.0.0.0:9995.
        let mobile = format!("listen = \"127.0.0.1:{}\"", s.mobile_port);
        s.set("mobile", &mobile);
        s.set(
            "web",
            &format!("dir = {:?}", repo_root().join("www").display().to_string()),
        );
        s
    }

    /// Adds a `dss.toml` line to `section`.
    pub fn set(&mut self, section: &str, line: &str) -> &mut Self {
        self.sections
            .entry(section.to_string())
            .or_default()
            .push(line.to_string());
        self
    }

    /// Runs a managed nginx on this setup's ports, with short lifecycle
    /// timings (`grace_seconds`) for tests.
    pub fn with_nginx(&mut self, grace_seconds: u64) -> &mut Self {
        let lines = self.sections.entry("nginx".into()).or_default();
        lines.retain(|l| !l.starts_with("managed"));
        lines.push("managed = true".into());
        lines.push("bind = \"127.0.0.1\"".into());
        lines.push(format!("http_port = {}", self.nginx_http));
        lines.push(format!("rtmp_port = {}", self.nginx_rtmp));
        self.set("ffmpeg", &format!("grace_seconds = {grace_seconds}"));
        self
    }

    /// `rtmp://127.0.0.1:PORT/dss/ID`.
    pub fn rtmp_url(&self, id: &str) -> String {
        format!("rtmp://127.0.0.1:{}/dss/{id}", self.nginx_rtmp)
    }

    /// The API token the host is given (the test's own, or
    /// [`TEST_TOKEN`]).
    pub fn api_token(&self) -> String {
        self.sections
            .get("security")
            .and_then(|l| {
                l.iter().find_map(|l| {
                    let v = l.trim_start().strip_prefix("api_token")?;
                    let v = v.trim_start().strip_prefix('=')?.trim();
                    Some(v.trim_matches('"').to_string())
                })
            })
            .unwrap_or_else(|| TEST_TOKEN.to_string())
    }

    /// `http://127.0.0.1:PORT` of nginx.
    pub fn nginx_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.nginx_http)
    }

    /// The callback secret the host made (in `var/callback.secret`, once
    /// the host has started).
    pub fn callback_secret(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("var/callback.secret"))
            .expect("callback secret: start the host first")
            .trim()
            .to_string()
    }

    /// The pid of the managed nginx, from its pid file.
    pub fn nginx_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.path().join("var/run/nginx.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Copies `file` into the modules directory as `name.wasm`.
    pub fn install_module(&self, name: &str, file: &Path) {
        let dest = self.modules().join(format!("{name}.wasm"));
        let tmp = self.modules().join(format!(".{name}.tmp"));
        std::fs::copy(file, &tmp).expect("copy module");
        std::fs::rename(&tmp, dest).expect("rename module");
    }

    /// Writes raw bytes as module `name.wasm`.
    pub fn write_module(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.modules().join(format!("{name}.wasm")), bytes).expect("write");
    }

    /// Writes `providers.d/NAME.toml`.
    pub fn instance(&self, name: &str, toml: &str) {
        std::fs::write(
            self.dir
                .path()
                .join("providers.d")
                .join(format!("{name}.toml")),
            toml,
        )
        .expect("write instance");
    }

    /// The shipped demo's instances (`examples/demo/providers.d/`: test
    /// patterns, the traffic feed, phones), the feed served by this host.
    pub fn demo(&self) {
        for name in ["demo", "traffic", "phones"] {
            let file = repo_root().join(format!("examples/demo/providers.d/{name}.toml"));
            let text = std::fs::read_to_string(&file)
                .expect("demo instance")
                .replace("127.0.0.1:8000", &format!("127.0.0.1:{}", self.port));
            self.instance(name, &text);
        }
    }

    /// A phone (`dss mobile-send test`) streaming to this setup's TCP
    /// ingest for `seconds`, moving along `route` (`lat,lon;lat,lon...`).
    pub fn phone(&self, seconds: u64, route: &str) -> crate::Sender {
        let state = self.dir.path().join("phone.state");
        let server = format!("127.0.0.1:{}", self.mobile_port);
        crate::Sender::start(&[
            "test",
            "--server",
            &server,
            "--state",
            &state.display().to_string(),
            "--duration",
            &seconds.to_string(),
            "--route",
            route,
        ])
    }

    /// The modules directory.
    pub fn modules(&self) -> PathBuf {
        self.dir.path().join("modules")
    }

    /// The `dss.toml` path (written by [`Setup::write_config`]).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("dss.toml")
    }

    /// Writes `dss.toml`.
    pub fn write_config(&self) -> PathBuf {
        let mut text = format!("listen = \"127.0.0.1:{}\"\n", self.port);
        for line in self.sections.get("").into_iter().flatten() {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str("[providers]\nmodules_dir = \"modules\"\ninstances_dir = \"providers.d\"\n");
        let own_token = self
            .sections
            .get("security")
            .is_some_and(|l| l.iter().any(|l| l.trim_start().starts_with("api_token")));
        for line in self.sections.get("providers").into_iter().flatten() {
            text.push_str(line);
            text.push('\n');
        }
        if !own_token && !self.sections.contains_key("security") {
            text.push_str(&format!("[security]\napi_token = {TEST_TOKEN:?}\n"));
        }
        for (section, lines) in &self.sections {
            if section.is_empty() || section == "providers" {
                continue;
            }
            text.push_str(&format!("[{section}]\n"));
            if section == "security" && !own_token {
                text.push_str(&format!("api_token = {TEST_TOKEN:?}\n"));
            }
            for line in lines {
                text.push_str(line);
                text.push('\n');
            }
        }
        let path = self.config_path();
        std::fs::write(&path, text).expect("write dss.toml");
        path
    }
}

impl Default for Setup {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        // The managed nginx outlives a killed host by design; not a test.
        // It runs in its own process group: kill the group, or its workers
        // would be orphaned holding their ports.
        if let Some(pid) = self.nginx_pid() {
            let _ = Command::new("kill")
                .args(["-9", "--", &format!("-{pid}")])
                .status();
        }
    }
}
