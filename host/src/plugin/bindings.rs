//! Host bindings generated from `provider-sdk/wit/provider.wit`, the same
//! files the guests are built from.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../provider-sdk/wit",
    world: "dss-provider",
    // `http-get` may stop the call: a request cut short by the call's
    // wall-clock deadline traps instead of handing the guest an error.
    imports: { "dss:provider/host.http-get": trappable },
});

pub use dss::provider::host::{HttpResponse, LogLevel};
pub use dss::provider::types::{Error as GuestError, ErrorCode, ProviderInfo, StreamSource};
