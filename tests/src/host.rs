//! A running `dss serve` ([`Host`]): its API as a client, its log, its
//! process.

use crate::http::{agent, bytes_of, get, get_private, post_bearer, post_form, Resp};
use crate::log::dump_log;
use crate::setup::Setup;
use crate::wait::wait_for;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

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

    /// Stops the host gracefully (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

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

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            dump_log(&self.log_text());
        }
    }
}
