//! Test harness: runs the real `dss` binary on a scratch configuration
//! with the real provider components built from this repository, and small
//! real HTTP servers on 127.0.0.1 for providers to fetch from.
//!
//! One module per concern, every item re-exported here (tests write
//! `use dss_e2e::*;`): where things are ([`repo_root`], [`dss_bin`],
//! [`scratch_dir`]), ports, HTTP requests ([`Resp`]), waiting
//! ([`wait_for`], [`serial`], [`timeout`]), a host's configuration
//! ([`Setup`]) and starting it, the running [`Host`] and its log,
//! processes, file servers, media (phones, viewers), push clients, and a
//! plain nginx for the benchmarks.

mod bench;
mod clients;
pub mod faults;
mod file_server;
mod host;
mod http;
mod log;
mod media;
mod mongo;
mod nginx;
mod paths;
mod ports;
mod procs;
pub mod proxy;
mod setup;
mod start;
pub mod timeout;
pub mod tls;
mod wait;

pub use bench::{live_bench_host, load, Rate};
pub use clients::{EventsClient, WsClient};
pub use file_server::{Answer, FileServer};
pub use host::Host;
pub use http::{
    get, get_bytes, get_private, get_with, post_bearer, post_form, post_json, post_with, Resp,
};
pub use media::{ffprobe, test_pattern_instance, Sender, Viewer};
pub use mongo::mongo_url;
pub use nginx::PlainNginx;
pub use paths::{
    browser_dir, dss_bin, fixture, module, modules_dir, repo_root, schemathesis_bin, scratch_dir,
};
pub use ports::free_port;
pub use procs::{cpu_time, process_alive, publishers_of};
pub use setup::{Setup, TEST_TOKEN};
pub use wait::{serial, wait_for};
