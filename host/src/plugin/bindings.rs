//! Host bindings of every interface version the host serves, generated
//! from the same WIT files the guests are built from:
//! `provider-sdk/wit` (`dss:provider@0.2.0`, the current one) and
//! `provider-sdk/wit-0.1` (`dss:provider@0.1.0`, frozen).
//!
//! The rest of the host speaks 0.2.0's types only: a 0.1.0 module's
//! results are converted here ([`From`] impls), and its `host` imports are
//! answered by the 0.2.0 implementation (`call`). Like Spin keeping old
//! worlds, an old module runs unchanged beside new ones.
#![allow(missing_docs)]

/// `dss:provider@0.2.0`.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../provider-sdk/wit",
        world: "dss-provider",
        // A request cut short by the call's wall-clock deadline traps
        // instead of handing the guest an error.
        imports: {
            "dss:provider/host.http-get": trappable,
            "dss:provider/host.http-request": trappable,
        },
    });
}

/// `dss:provider@0.1.0`, frozen: modules built for it keep working.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../provider-sdk/wit-0.1",
        world: "dss-provider",
        imports: { "dss:provider/host.http-get": trappable },
    });
}

pub use v0_2::dss;
pub use v0_2::dss::provider::host::{
    Header, HeaderValue, HttpResponse, LogLevel, Method, Request as HttpRequest,
};
pub use v0_2::dss::provider::types::{Error as GuestError, ErrorCode, ProviderInfo, StreamSource};

use v0_1::dss::provider::{host as old_host, types as old};
use v0_2::dss::provider::types as new;

impl From<old::Tag> for new::Tag {
    fn from(t: old::Tag) -> Self {
        new::Tag {
            key: t.key,
            value: t.value,
        }
    }
}

fn tags(t: Vec<old::Tag>) -> Vec<new::Tag> {
    t.into_iter().map(Into::into).collect()
}

impl From<old::StreamSource> for StreamSource {
    fn from(s: old::StreamSource) -> Self {
        StreamSource {
            key: s.key,
            source: s.source,
            name: s.name,
            geo: s.geo.map(|g| new::Geo {
                lat: g.lat,
                lon: g.lon,
            }),
            online: s.online,
            input_options: s.input_options,
            tags: tags(s.tags),
        }
    }
}

impl From<old::ProviderInfo> for ProviderInfo {
    fn from(p: old::ProviderInfo) -> Self {
        ProviderInfo {
            name: p.name,
            version: p.version,
            description: p.description,
            input_options: p.input_options,
            output_options: p.output_options,
            refresh_seconds: p.refresh_seconds,
            extra: tags(p.extra),
        }
    }
}

impl From<old::Error> for GuestError {
    fn from(e: old::Error) -> Self {
        GuestError {
            code: match e.code {
                old::ErrorCode::InvalidConfig => ErrorCode::InvalidConfig,
                old::ErrorCode::Upstream => ErrorCode::Upstream,
                old::ErrorCode::Parse => ErrorCode::Parse,
                old::ErrorCode::Internal => ErrorCode::Internal,
            },
            message: e.message,
        }
    }
}

impl From<old_host::LogLevel> for LogLevel {
    fn from(l: old_host::LogLevel) -> Self {
        match l {
            old_host::LogLevel::Trace => LogLevel::Trace,
            old_host::LogLevel::Debug => LogLevel::Debug,
            old_host::LogLevel::Info => LogLevel::Info,
            old_host::LogLevel::Warn => LogLevel::Warn,
            old_host::LogLevel::Error => LogLevel::Error,
        }
    }
}

impl From<HttpResponse> for old_host::HttpResponse {
    /// 0.1.0 has no response headers.
    fn from(r: HttpResponse) -> Self {
        old_host::HttpResponse {
            status: r.status,
            content_type: r.content_type,
            body: r.body,
        }
    }
}
