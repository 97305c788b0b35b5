//! Host bindings generated from `provider-sdk/wit/provider.wit`, the same
//! files the guests are built from.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../provider-sdk/wit",
    world: "dss-provider",
});

pub use dss::provider::host::{HttpResponse, LogLevel};
pub use dss::provider::types::{Error as GuestError, ErrorCode, ProviderInfo, StreamSource};
