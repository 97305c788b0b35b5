//! Starting `dss serve` on a [`Setup`]: ready, only answering, or refused.

use crate::host::Host;
use crate::log::{dump_log, remember_panics};
use crate::paths::dss_bin;
use crate::setup::Setup;
use crate::wait::wait_for;
use std::process::{Command, Stdio};
use std::time::Duration;

impl Setup {
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
