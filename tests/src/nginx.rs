//! A plain nginx-rtmp, the benchmarks' baseline.

use crate::ports::free_port;
use crate::wait::wait_for;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
             server {{ listen 127.0.0.1:{http}; location / {{ return 200; }} location /files/ {{ root {p}; }} }} }}\n"
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

impl PlainNginx {
    /// Serves `body` at `/files/{name}` (a static file: the baseline of a
    /// JSON answer of the same size).
    pub fn serve_file(&self, name: &str, body: &[u8]) -> String {
        let dir = self._dir.path().join("files");
        std::fs::create_dir_all(&dir).expect("mkdir files");
        std::fs::write(dir.join(name), body).expect("write file");
        format!("/files/{name}")
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
