//! Dynamic Stream Server: on-demand video restreaming with sandboxed Wasm
//! stream providers.
//!
//! Data flows one way: provider modules ([`plugin`], driven by
//! [`providers`]) fill the [`catalog`]; the HTTP [`api`] serves it.
#![deny(missing_docs)]

pub mod api;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod ids;
pub mod plugin;
pub mod providers;
pub mod server;
