//! Dynamic Stream Server: on-demand video restreaming with sandboxed Wasm
//! stream providers.
//!
//! Data flows one way: provider modules ([`plugin`], driven by
//! [`providers`]) fill the [`catalog`]; the [`supervisor`] runs FFmpeg
//! ([`ffmpeg`]) on demand into nginx-rtmp ([`nginx`]) as viewers arrive
//! through the callbacks ([`hooks`]); the HTTP [`api`] serves it all.
//! Phones push their streams and positions through the [`mobile`] ingest;
//! [`sender`] is the reference phone (`dss mobile-send`), a client of it.
//! Around a stream: its [`stats`], [`thumbnail`]s and recording ([`record`]).
#![deny(missing_docs)]

pub mod accept;
pub mod addr;
pub mod backoff;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod doctor;
pub mod events;
pub mod ffmpeg;
pub mod files;
pub mod http;
pub mod ids;
pub mod lifecycle;
pub mod memory;
pub mod mobile;
pub mod nginx;
pub mod plugin;
pub mod privileges;
pub mod providers;
pub mod record;
pub mod scaffold;
pub mod secrets;
pub mod sender;
pub mod server;
pub mod service;
pub mod stats;
pub mod supervisor;
pub mod sync;
pub mod thumbnail;
pub mod tokens;
pub mod watch;
