//! nginx with the RTMP module: the configuration rendered from the
//! template ([`conf`]), the managed server process ([`managed`]) and the
//! `/stat` client ([`stat`]).

pub mod conf;
pub mod managed;
pub mod stat;
