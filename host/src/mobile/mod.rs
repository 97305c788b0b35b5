//! Mobile ingest: phones pushing MPEG-TS and GPS positions to the host.
//! This module owns the wire format ([`frame`]) and the reference sender
//! `dss mobile-send` ([`send`], following a [`route`]); the server side
//! (to come) uses the same codec.

pub mod frame;
pub mod route;
pub mod send;
