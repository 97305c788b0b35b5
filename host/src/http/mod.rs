//! The HTTP surface, all of it: the server, who is calling ([`access`]),
//! nginx's callbacks ([`hooks`]), the REST API and the live events
//! ([`api`]), `/metrics`, and the mobile ingest's HTTP routes and
//! WebSocket ([`mobile`]).
//!
//! Domain modules never import this one: it reads them (the catalog, the
//! supervisor, the providers, the phones) through the slices of
//! [`state::AppState`] each group of routes asks for, and turns requests
//! into their calls.

pub mod access;
pub mod api;
pub mod hooks;
pub mod metrics;
pub mod mobile;
pub mod server;
pub mod state;
