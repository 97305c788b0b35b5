//! Test harness: runs the real `dss` binary on a scratch configuration
//! with the real provider components built from this repository, and small
//! real HTTP servers on 127.0.0.1 for providers to fetch from.

pub mod faults;
pub mod proxy;
pub mod tls;

use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Where `scripts/build-providers.sh` installs the shipped providers.
pub fn modules_dir() -> PathBuf {
    let dir = repo_root().join("target/providers");
    assert!(
        dir.join("static-list.wasm").exists(),
        "no provider components in {}: run scripts/build-providers.sh first (scripts/test.sh does)",
        dir.display()
    );
    dir
}

/// A shipped provider component.
pub fn module(name: &str) -> PathBuf {
    modules_dir().join(format!("{name}.wasm"))
}

/// The `dss` binary of the same profile as this test.
pub fn dss_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary in target/<profile>/deps");
    let bin = profile_dir.join("dss");
    assert!(
        bin.exists(),
        "{} missing: build the host first (cargo build --release -p dss-host)",
        bin.display()
    );
    bin
}

/// A port free on 127.0.0.1 right now, and never handed out before by this
/// process.
///
/// Asking the kernel for port 0 twice may give the same port twice once the
/// first probe is closed (a host's API and its nginx once got one port), and
/// its ephemeral range is also where outgoing connections take their source
/// ports. So ports come from below that range instead (10000..32000), from a
/// per-process starting point (test binaries may run side by side), counting
/// up, and each is checked free with a bind.
pub fn free_port() -> u16 {
    use std::sync::atomic::AtomicU32;
    const FIRST: u32 = 10_000;
    const SPAN: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let start = {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        (std::process::id().wrapping_mul(7919) ^ nanos) % SPAN
    };
    let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..SPAN {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {FIRST}..{}", FIRST + SPAN)
}

/// An HTTP response as tests see it.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Body text.
    pub body: String,
}

impl Resp {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// GET `url`.
pub fn get(url: &str) -> Resp {
    let mut r = agent()
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    Resp {
        status: r.status().as_u16(),
        body: r.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// GET `url` with the API token (the private surface).
pub fn get_private(url: &str, token: &str) -> Resp {
    let mut r = agent()
        .get(url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    Resp {
        status: r.status().as_u16(),
        body: r.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// The API token every test host has (`[security] api_token`), unless a
/// test sets its own.
pub const TEST_TOKEN: &str = "dss-test-api-token";

/// GET `url`: the status and the body's bytes (images, media).
pub fn get_bytes(url: &str) -> (u16, Vec<u8>) {
    bytes_of(url, agent().get(url).call())
}

/// The status and the whole body (up to 1 GiB) of the answer to `url`.
fn bytes_of(
    url: &str,
    answer: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> (u16, Vec<u8>) {
    let mut r = answer.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    let body = r
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap_or_default();
    (status, body)
}

/// POST `url` with a form body.
pub fn post_form(url: &str, fields: &[(&str, &str)]) -> Resp {
    let mut r = agent()
        .post(url)
        .send_form(fields.iter().copied())
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    Resp {
        status: r.status().as_u16(),
        body: r.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// POST `url` with a JSON body.
pub fn post_json(url: &str, body: &str) -> Resp {
    let mut r = agent()
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    Resp {
        status: r.status().as_u16(),
        body: r.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// POST `body` (with content type `ct`) to `url` with extra `headers`.
pub fn post_with(url: &str, ct: &str, body: &[u8], headers: &[(&str, &str)]) -> Resp {
    let mut req = agent().post(url).header("Content-Type", ct);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut r = req.send(body).unwrap_or_else(|e| panic!("POST {url}: {e}"));
    Resp {
        status: r.status().as_u16(),
        body: r.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// POST `url` with an empty body and a bearer token.
pub fn post_bearer(url: &str, token: &str) -> Resp {
    let mut r = agent()
        .post(url)
        .header("Authorization", &format!("Bearer {token}"))
        .send_empty()
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    Resp {
        status: r.status().as_u16(),
        body: r.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// Polls `f` until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

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

    /// Starts `dss serve` on this configuration and waits until it is
    /// ready (`/readyz`: nginx up, every provider instance listed).
    pub fn start(&self) -> Host {
        let host = self.start_unready();
        let up = std::panic::catch_unwind(|| {
            // A JavaScript or Python provider compiles for tens of seconds
            // on a busy machine the first time.
            wait_for("the host to be ready", Duration::from_secs(180), || {
                (host.get("/readyz").status == 200).then_some(())
            })
        });
        if let Err(e) = up {
            eprintln!("--- /readyz ---\n{}", host.get("/readyz").body);
            dump_log(&host.log_text());
            std::panic::resume_unwind(e);
        }
        host
    }

    /// `dss --config <this configuration, written now> serve`, with the
    /// setup's log filter and environment, and no stdin.
    fn serve_command(&self) -> Command {
        let mut cmd = Command::new(dss_bin());
        cmd.arg("--config")
            .arg(self.write_config())
            .arg("serve")
            .env("RUST_LOG", &self.log_filter)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `dss serve` on this configuration expecting it to refuse to
    /// start; returns what it printed on stderr (its reason). Panics if it
    /// started (or exited successfully), and if the reason is a panic.
    pub fn serve_refused(&self) -> String {
        let out = self.serve_command().output().expect("run dss serve");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "dss serve started:\n{err}");
        assert!(!err.contains("panicked"), "a panic, not a refusal:\n{err}");
        err
    }

    /// Starts `dss serve` on this configuration and waits only for its API
    /// to answer (`/healthz`): providers may still be loading.
    pub fn start_unready(&self) -> Host {
        remember_panics();
        let log = self.dir.path().join("dss.log");
        let child = self
            .serve_command()
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn dss");
        let host = Host {
            child,
            base: format!("http://127.0.0.1:{}", self.port),
            log,
            token: self.api_token(),
        };
        let base = host.base.clone();
        let log_path = host.log.clone();
        let up = std::panic::catch_unwind(|| {
            wait_for("the host's API", Duration::from_secs(30), || {
                ureq::get(&format!("{base}/healthz"))
                    .call()
                    .ok()
                    .map(|_| ())
            })
        });
        if let Err(e) = up {
            dump_log(&std::fs::read_to_string(&log_path).unwrap_or_default());
            std::panic::resume_unwind(e);
        }
        host
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

/// Whether process `pid` runs (a zombie has exited: it only awaits reaping).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

/// A running `dss serve`; killed on drop.
pub struct Host {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its log file.
    pub log: PathBuf,
    /// Its API token: [`Host::get`] and [`Host::post`] send it (the
    /// private surface, as an operator's tools would).
    pub token: String,
}

impl Host {
    /// GET a path of the host, with its API token.
    pub fn get(&self, path: &str) -> Resp {
        get_private(&format!("{}{path}", self.base), &self.token)
    }

    /// GET a path of the host with its API token: the status and the
    /// body's bytes (recordings, exports).
    pub fn get_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let url = format!("{}{path}", self.base);
        let answer = agent()
            .get(&url)
            .header("Authorization", &format!("Bearer {}", self.token))
            .call();
        bytes_of(&url, answer)
    }

    /// GET a path of the host without the token (the public surface).
    pub fn get_public(&self, path: &str) -> Resp {
        get(&format!("{}{path}", self.base))
    }

    /// The host's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the host's log contains `needle`: a log line may trail
    /// the effect a test observed (a socket closed before its reason is
    /// logged).
    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        wait_for(&format!("{needle:?} in the host log"), timeout, || {
            self.log_text().contains(needle).then_some(())
        });
    }

    /// Waits until provider `id` has left the `loading` state; returns its
    /// status.
    pub fn provider_settled(&self, id: &str) -> Value {
        wait_for(
            &format!("provider {id} to settle"),
            Duration::from_secs(30),
            || {
                let r = self.get(&format!("/api/providers/{id}"));
                if r.status != 200 {
                    return None;
                }
                let v = r.json();
                (v["state"] != "loading").then_some(v)
            },
        )
    }

    /// Ids of the streams listed by the API.
    pub fn stream_ids(&self) -> Vec<String> {
        self.get("/api/streams")
            .json()
            .as_array()
            .expect("array")
            .iter()
            .map(|s| s["id"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            dump_log(&self.log_text());
        }
    }
}

/// A scratch directory for a host's files that the media user (who FFmpeg
/// and nginx's workers run as when tests run as root) may pass through:
/// mode 0711, where a plain temporary directory is 0700.
pub fn scratch_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("dss-test-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
        .expect("chmod scratch");
    dir
}

std::thread_local! {
    /// The message of this thread's panic, for [`dump_log`] to repeat.
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Installs, once, a panic hook that remembers each thread's panic message
/// (and still prints it as usual): a failing test's log dump ends with it,
/// so that the tail of CI's output names the failure.
fn remember_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg}{at}")));
            previous(info);
        }));
    });
}

/// Prints a failed test's host log to stderr, folding runs of lines that
/// differ only in their timestamp (a flood of one message would otherwise
/// push everything else out of CI's excerpt), then the panic's message.
fn dump_log(log: &str) {
    eprintln!("--- dss log ---");
    eprint!("{}", fold_repeats(log));
    let failed = LAST_PANIC.with(|p| p.borrow().clone());
    eprintln!(
        "--- end of dss log; the test failed: {} ---",
        failed.as_deref().unwrap_or("(see above)")
    );
}

/// `log` with each run of lines equal after their first word (tracing's
/// timestamp) shown once, followed by how many more there were.
fn fold_repeats(log: &str) -> String {
    let body = |l: &str| l.split_once(' ').map_or(l, |(_, rest)| rest).to_string();
    let mut out = String::new();
    let mut lines = log.lines().peekable();
    while let Some(line) = lines.next() {
        out.push_str(line);
        out.push('\n');
        let mut more = 0;
        while lines.peek().is_some_and(|next| body(next) == body(line)) {
            lines.next();
            more += 1;
        }
        if more > 0 {
            out.push_str(&format!("    ... {more} more like this\n"));
        }
    }
    out
}

/// A real HTTP server on 127.0.0.1 with fixed answers by path, counting
/// the requests it gets.
pub struct FileServer {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Requests received.
    pub hits: Arc<AtomicUsize>,
    routes: Arc<Mutex<Vec<(String, Answer)>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// One fixed answer.
#[derive(Clone)]
pub enum Answer {
    /// 200 with this body.
    Body(&'static str, Vec<u8>),
    /// A redirect to this URL.
    Redirect(u16, String),
    /// 200 with this body, after this delay (a slow upstream).
    Slow(Duration, &'static str, Vec<u8>),
}

impl FileServer {
    /// Serves `routes` (path → answer); other paths get 404.
    pub fn start(routes: Vec<(&str, Answer)>) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind"));
        let addr = server.server_addr().to_ip().expect("ip addr").to_string();
        let hits = Arc::new(AtomicUsize::new(0));
        let routes: Arc<Mutex<Vec<(String, Answer)>>> = Arc::new(Mutex::new(
            routes
                .into_iter()
                .map(|(p, a)| (p.to_string(), a))
                .collect(),
        ));
        let thread = {
            let (server, hits, routes) = (server.clone(), hits.clone(), routes.clone());
            std::thread::spawn(move || {
                for mut req in server.incoming_requests() {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let mut sink = Vec::new();
                    let _ = req.as_reader().read_to_end(&mut sink);
                    let answer = routes
                        .lock()
                        .expect("routes")
                        .iter()
                        .find(|(p, _)| p == req.url())
                        .map(|(_, a)| a.clone());
                    let _ = match answer {
                        Some(Answer::Body(ct, body)) => {
                            req.respond(tiny_http::Response::from_data(body).with_header(
                                tiny_http::Header::from_bytes("Content-Type", ct).expect("header"),
                            ))
                        }
                        Some(Answer::Slow(delay, ct, body)) => {
                            std::thread::sleep(delay);
                            req.respond(tiny_http::Response::from_data(body).with_header(
                                tiny_http::Header::from_bytes("Content-Type", ct).expect("header"),
                            ))
                        }
                        Some(Answer::Redirect(code, to)) => req.respond(
                            tiny_http::Response::empty(code).with_header(
                                tiny_http::Header::from_bytes("Location", to.as_bytes())
                                    .expect("header"),
                            ),
                        ),
                        None => req.respond(tiny_http::Response::empty(404)),
                    };
                }
            })
        };
        FileServer {
            addr,
            hits,
            routes,
            server,
            thread: Some(thread),
        }
    }

    /// Answers `path` with `answer` from now on.
    pub fn set(&self, path: &str, answer: Answer) {
        let mut routes = self.routes.lock().expect("routes");
        routes.retain(|(p, _)| p != path);
        routes.push((path.to_string(), answer));
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Host {
    /// Kills the host with SIGKILL, as a crash would (nginx survives).
    pub fn crash(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A stream's API view.
    pub fn stream(&self, id: &str) -> Value {
        let r = self.get(&format!("/api/streams/{id}"));
        assert_eq!(r.status, 200, "{id}: {}", r.body);
        r.json()
    }

    /// Waits until `f` holds for stream `id`; returns the stream.
    pub fn wait_stream(
        &self,
        id: &str,
        what: &str,
        timeout: Duration,
        f: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let s = self.stream(id);
            if f(&s) {
                return s;
            }
            if start.elapsed() > timeout {
                panic!("timed out after {timeout:?} waiting for {id} {what}; last: {s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// POST a path of the host with an empty body.
    pub fn post(&self, path: &str) -> Resp {
        post_bearer(&format!("{}{path}", self.base), &self.token)
    }

    /// POST an nginx-rtmp callback (`event`: `on_play`, ...) with the
    /// host's callback secret, as nginx would.
    pub fn hook(&self, setup: &Setup, event: &str, fields: &[(&str, &str)]) -> Resp {
        let secret = setup.callback_secret();
        post_form(&format!("{}/hooks/{secret}/{event}", self.base), fields)
    }

    /// The host's health document (private view: FFmpeg counters, store).
    pub fn health(&self) -> Value {
        self.get("/healthz").json()
    }

    /// FFmpeg spawned by the host since it started.
    pub fn spawns(&self) -> u64 {
        self.health()["ffmpeg"]["spawns"].as_u64().expect("spawns")
    }

    /// The host's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

/// `dss mobile-send` running in the background (killed on drop); its
/// stdout lines are collected.
pub struct Sender {
    child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Sender {
    /// Runs `dss mobile-send ARGS...`.
    pub fn start(args: &[&str]) -> Sender {
        let mut child = Command::new(dss_bin())
            .arg("mobile-send")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn dss mobile-send");
        let out = child.stdout.take().expect("stdout");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let l2 = lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                l2.lock().expect("lines").push(line);
            }
        });
        Sender { child, lines }
    }

    /// The stdout lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    /// Waits for the `id: ID` line.
    pub fn wait_id(&self, timeout: Duration) -> String {
        wait_for("the sender's id line", timeout, || {
            self.lines()
                .iter()
                .find_map(|l| l.strip_prefix("id: ").map(str::to_string))
        })
    }

    /// Waits for the sender to exit; its status.
    pub fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        wait_for("the sender to exit", timeout, || {
            self.child.try_wait().ok().flatten()
        })
    }

    /// Kills it (a phone vanishing).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Live FFmpeg processes publishing stream `id` (found by their RTMP URL).
pub fn publishers_of(id: &str) -> Vec<u32> {
    let needle = format!("/{id}?token=");
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(&needle) && process_alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// A real viewer: FFmpeg reading a stream and decoding it, reporting the
/// frames it got. Killed on drop.
pub struct Viewer {
    child: Child,
    progress: PathBuf,
    _dir: tempfile::TempDir,
}

impl Viewer {
    /// Starts watching `url`.
    pub fn start(url: &str) -> Viewer {
        let dir = tempfile::tempdir().expect("tempdir");
        let progress = dir.path().join("progress");
        let child = Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error"])
            // FFmpeg's RTMP input announces audio and video; on a video-only
            // stream it would wait its whole default analyzeduration (5 s)
            // for the audio before the first frame. Players start faster;
            // 2 s still covers a stream whose first video keyframe comes a
            // second after its audio (a phone's copy joined at its start).
            .args(["-analyzeduration", "2000000", "-i", url])
            .args(["-f", "null", "-", "-progress"])
            .arg(&progress)
            .args(["-stats_period", "0.2"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn viewer ffmpeg");
        Viewer {
            child,
            progress,
            _dir: dir,
        }
    }

    /// Frames decoded so far.
    pub fn frames(&self) -> u64 {
        std::fs::read_to_string(&self.progress)
            .unwrap_or_default()
            .lines()
            .rev()
            .filter_map(|l| l.strip_prefix("frame="))
            .find_map(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Waits until at least `n` more frames than `from` were decoded.
    pub fn wait_frames(&self, from: u64, n: u64, timeout: Duration) -> u64 {
        wait_for(&format!("{n} frames after {from}"), timeout, || {
            let f = self.frames();
            (f >= from + n).then_some(f)
        })
    }

    /// Stops watching.
    pub fn leave(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A static-list instance of lavfi test patterns (small, cheap to encode).
pub fn test_pattern_instance(keys: &[&str]) -> String {
    let streams: Vec<String> = keys
        .iter()
        .map(|k| format!("{{ key = \"{k}\", source = \"testsrc=size=320x240:rate=15\" }}"))
        .collect();
    format!(
        "module = \"static-list\"\n\
         input_options = [\"-re\", \"-f\", \"lavfi\"]\n\
         output_options = [\"-c:v\", \"libx264\", \"-preset\", \"ultrafast\", \"-tune\", \"zerolatency\", \"-pix_fmt\", \"yuv420p\", \"-g\", \"15\"]\n\
         [config]\nstreams = [{}]\n",
        streams.join(", ")
    )
}

/// A test fixture component built by `scripts/build-fixtures.sh`.
pub fn fixture(name: &str) -> PathBuf {
    let path = repo_root()
        .join("target/fixtures")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} missing: run scripts/build-fixtures.sh first (scripts/test.sh does)",
        path.display()
    );
    path
}

impl Host {
    /// Stops the host gracefully (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// The MongoDB URL of the test server (`MONGO_TEST_URI`) with database
/// `db`, or `None` when no server is configured. With `CI=true` a missing
/// server is an error, not a skip.
pub fn mongo_url(db: &str) -> Option<String> {
    let Ok(uri) = std::env::var("MONGO_TEST_URI") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but MONGO_TEST_URI is not set: .ci/run must start CongoDB"
        );
        eprintln!("MONGO_TEST_URI not set: skipping the MongoDB part");
        return None;
    };
    let (base, query) = uri.split_once('?').unwrap_or((&uri, ""));
    let host = base.trim_end_matches('/').trim_start_matches("mongodb://");
    let host = host.split('/').next().unwrap_or(host);
    Some(format!("mongodb://{host}/{db}?{query}"))
}

/// A plain nginx, the baseline of the benchmarks: nginx-rtmp with an
/// application `live` and no callbacks, and HTTP answering `return 200`
/// to everything. Its whole process group is killed on drop.
pub struct PlainNginx {
    child: Child,
    /// RTMP port.
    pub rtmp: u16,
    /// HTTP port.
    pub http: u16,
    _dir: tempfile::TempDir,
}

impl PlainNginx {
    /// Starts it on free ports and waits until both answer.
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// Like [`PlainNginx::start`], with DSS's segmenting: application
    /// `live` also cuts HLS and DASH as DSS's nginx.conf does (the
    /// baseline of work nginx does for every DSS stream).
    pub fn start_segmenting() -> Self {
        Self::start_with(
            "hls on; hls_path PATH/hls; hls_nested on; hls_fragment 1s; hls_playlist_length 6s; hls_cleanup on; \
             dash on; dash_path PATH/dash; dash_nested on; dash_fragment 2s; dash_playlist_length 12s; dash_cleanup on;",
        )
    }

    fn start_with(live: &str) -> Self {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let (rtmp, http) = (free_port(), free_port());
        let p = dir.path().display();
        std::fs::create_dir_all(dir.path().join("tmp")).expect("mkdir");
        let live = live.replace("PATH", &p.to_string());
        let conf = format!(
            "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\nworker_processes 1;\ndaemon off;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\nevents {{ worker_connections 1024; }}\n\
             rtmp {{ access_log {p}/rtmp.log; server {{ listen 127.0.0.1:{rtmp}; application live {{ live on; {live} }} }} }}\n\
             http {{ access_log off; client_body_temp_path {p}/tmp; proxy_temp_path {p}/tmp; fastcgi_temp_path {p}/tmp; uwsgi_temp_path {p}/tmp; scgi_temp_path {p}/tmp;\n\
             server {{ listen 127.0.0.1:{http}; location / {{ return 200; }} }} }}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).expect("write conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx");
        for port in [rtmp, http] {
            wait_for("plain nginx", Duration::from_secs(10), || {
                std::net::TcpStream::connect(("127.0.0.1", port))
                    .ok()
                    .map(|_| ())
            });
        }
        PlainNginx {
            child,
            rtmp,
            http,
            _dir: dir,
        }
    }
}

impl Drop for PlainNginx {
    fn drop(&mut self) {
        // The whole group: a master killed alone leaves its worker holding
        // the ports.
        let _ = Command::new("kill")
            .args(["-9", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

/// A Server-Sent Events client (of `/api/events`): it asks over HTTP/1.0
/// (so the body is not chunked) and collects `(event, data)` pairs in a
/// thread until dropped.
pub struct EventsClient {
    events: Arc<Mutex<Vec<(String, Value)>>>,
    stream: std::net::TcpStream,
}

impl EventsClient {
    /// Connects to `base` (`http://HOST:PORT`) and reads `path`.
    pub fn connect(base: &str, path: &str) -> EventsClient {
        use std::io::{BufRead, Write};
        let addr = base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).expect("connect for events");
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send request");
        let events = Arc::new(Mutex::new(Vec::new()));
        let (out, reader) = (events.clone(), stream.try_clone().expect("clone"));
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(reader)
                .lines()
                .map_while(Result::ok);
            // The status line and headers.
            for line in lines.by_ref() {
                if line.is_empty() {
                    break;
                }
            }
            let (mut name, mut data) = (String::new(), String::new());
            for line in lines {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                } else if line.is_empty() && !name.is_empty() {
                    let v = serde_json::from_str(&data).unwrap_or(Value::String(data.clone()));
                    out.lock()
                        .expect("events")
                        .push((std::mem::take(&mut name), v));
                    data.clear();
                }
            }
        });
        EventsClient { events, stream }
    }

    /// Every event so far.
    pub fn all(&self) -> Vec<(String, Value)> {
        self.events.lock().expect("events").clone()
    }

    /// Waits for the first event `f` accepts.
    pub fn wait(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&str, &Value) -> bool,
    ) -> Value {
        wait_for(what, timeout, || {
            self.all()
                .into_iter()
                .find(|(n, v)| f(n, v))
                .map(|(_, v)| v)
        })
    }
}

impl Drop for EventsClient {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// A WebSocket client whose reads give up after a second (so tests wait
/// for conditions with [`wait_for`]).
pub struct WsClient(tungstenite::WebSocket<std::net::TcpStream>);

impl WsClient {
    /// Connects to `url` (`ws://HOST:PORT/PATH`).
    pub fn connect(url: &str) -> WsClient {
        let addr = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap_or_default();
        let tcp = std::net::TcpStream::connect(addr).expect("connect for the websocket");
        tcp.set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        let (ws, _) = tungstenite::client(url, tcp).expect("websocket handshake");
        WsClient(ws)
    }

    /// The next text message as JSON, if one comes within a second.
    pub fn next_json(&mut self) -> Option<Value> {
        loop {
            match self.0.read() {
                Ok(tungstenite::Message::Text(t)) => {
                    return Some(serde_json::from_str(t.as_str()).expect("a JSON message"))
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.0
            .send(tungstenite::Message::Text(text.into()))
            .map_err(|e| e.to_string())
    }

    /// Whether the server has closed the connection: reads (and drops)
    /// what comes for up to a second.
    pub fn closed(&mut self) -> bool {
        loop {
            match self.0.read() {
                Ok(tungstenite::Message::Close(_)) => return true,
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(_) => return true,
            }
        }
    }

    /// Waits for the first JSON message `f` accepts (earlier ones are
    /// dropped).
    pub fn wait(
        &mut self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&Value) -> bool,
    ) -> Value {
        wait_for(what, timeout, || self.next_json().filter(|v| f(v)))
    }
}

/// The benches' host: nginx, the operator's log level (no per-callback
/// debug lines), and one test-pattern stream `bench-live` kept live by a
/// 600 s lease (so callbacks on it only change viewers).
pub fn live_bench_host() -> (Setup, Host) {
    let mut s = Setup::new();
    s.log_filter = "info".into();
    s.with_nginx(30);
    s.instance("bench", &test_pattern_instance(&["live"]));
    let host = s.start();
    host.provider_settled("bench");
    host.keep_live("bench-live");
    (s, host)
}

impl Host {
    /// Holds a 600 s viewer lease on stream `id` and waits until it is
    /// live (benches measure on a running stream).
    pub fn keep_live(&self, id: &str) -> Value {
        let r = self.post(&format!("/api/streams/{id}/watch?timeout=600"));
        assert_eq!(r.status, 200, "{}", r.body);
        self.wait_stream(id, "live", Duration::from_secs(60), |v| {
            v["state"] == "live"
        })
    }
}

/// `ffprobe -v error ARGS -of csv=p=0 FILE`: the comma-separated values of
/// its first line.
pub fn ffprobe(file: &Path, args: &[&str]) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .split(',')
        .map(|v| v.trim().to_string())
        .collect()
}

/// The unit of `/proc/PID/stat` times: Linux's `USER_HZ`, 100 on every
/// architecture's user-space ABI.
const USER_HZ: f64 = 100.0;

/// CPU time (user + system) of process `pid` so far or, with `children`,
/// of its children that exited and were reaped.
pub fn cpu_time(pid: u32, children: bool) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    // utime, stime, cutime, cstime are fields 14 to 17 (11 to 14 after the
    // name).
    let range = if children { 13..15 } else { 11..13 };
    let ticks: u64 = fields
        .get(range)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / USER_HZ)
}

#[cfg(test)]
mod log_dump_tests {
    use super::fold_repeats;

    #[test]
    fn a_flood_of_one_message_is_folded_and_the_rest_kept() {
        let log = "t1 DEBUG refused\nt2 DEBUG refused\nt3 DEBUG refused\nt4 ERROR failed\nt5 DEBUG refused\n";
        assert_eq!(
            fold_repeats(log),
            "t1 DEBUG refused\n    ... 2 more like this\nt4 ERROR failed\nt5 DEBUG refused\n"
        );
    }
}
