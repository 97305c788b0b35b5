//! Write DSS stream providers as WebAssembly components.
//!
//! A provider implements [`Provider`] with plain Rust types and exports it
//! with [`export_provider!`]; built for `wasm32-wasip2` it is a component of
//! the `dss:provider@0.2.0` world (see `wit/provider.wit`, the one source of
//! truth shared with the host). Built natively, the same code runs in
//! ordinary `cargo test`s, with the host functions answered by
//! [`testing::MockHost`].
//!
//! ```ignore
//! use dss_provider_sdk::{export_provider, Provider, ProviderInfo, Stream, Result};
//!
//! #[derive(serde::Deserialize)]
//! struct Config { cameras: Vec<String> }
//!
//! struct Cameras;
//! impl Provider for Cameras {
//!     type Config = Config;
//!     fn describe() -> ProviderInfo {
//!         ProviderInfo::new("cameras", env!("CARGO_PKG_VERSION"), "Cameras from a list")
//!     }
//!     fn list_streams(config: &Config) -> Result<Vec<Stream>> {
//!         Ok(config.cameras.iter()
//!             .map(|c| Stream::new(c, format!("rtsp://cams.example/{c}"), c))
//!             .collect())
//!     }
//! }
//! export_provider!(Cameras);
//! ```
#![deny(missing_docs)]

extern crate self as dss_provider_sdk;

pub mod host;
pub mod testing;
mod types;

pub use types::{Error, ErrorCode, Geo, ProviderInfo, Result, Stream};

/// The version of the WIT interface this SDK builds against.
pub const INTERFACE_VERSION: &str = "0.2.0";

mod alloc;

/// Raw bindings generated from `wit/provider.wit`. Providers use the
/// idiomatic API of this crate instead; these are public for the export
/// macro.
#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "dss-provider",
        pub_export_macro: true,
        export_macro_name: "__export_dss_provider_world",
        default_bindings_module: "dss_provider_sdk::bindings",
        runtime_path: "dss_provider_sdk::__private::wit_bindgen::rt",
    });
}

/// What every provider implements. All calls are stateless: the host makes a
/// fresh instance per call and passes the instance configuration again.
pub trait Provider {
    /// The instance configuration, deserialized from the `[config]` table of
    /// the operator's `NAME.toml`. A configuration that does not deserialize
    /// is reported to the operator as `invalid-config` with serde's message.
    type Config: serde::de::DeserializeOwned;

    /// Describes the provider type (no configuration).
    fn describe() -> ProviderInfo;

    /// Checks a configuration and returns the information adjusted for it.
    /// The default accepts any configuration that deserializes.
    fn init(config: &Self::Config) -> Result<ProviderInfo> {
        let _ = config;
        Ok(Self::describe())
    }

    /// Lists the streams of an instance.
    fn list_streams(config: &Self::Config) -> Result<Vec<Stream>>;

    /// Turns stream metadata into the metadata stored for stream `key`.
    /// The default keeps it unchanged.
    fn transform_metadata(
        config: &Self::Config,
        key: &str,
        metadata: serde_json::Value,
    ) -> Result<serde_json::Value> {
        let _ = (config, key);
        Ok(metadata)
    }
}

/// Parses an instance configuration the way the exported functions do.
/// Useful in native tests.
pub fn parse_config<C: serde::de::DeserializeOwned>(config: &str) -> Result<C> {
    let config = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    serde_json::from_str(config)
        .map_err(|e| Error::new(ErrorCode::InvalidConfig, format!("invalid config: {e}")))
}

/// Glue between [`Provider`] and the generated bindings; used by
/// [`export_provider!`].
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    use crate::bindings::dss::provider::types as wit;
    use crate::{parse_config, Provider};

    pub fn describe<P: Provider>() -> wit::ProviderInfo {
        P::describe().into()
    }

    // Each call ends with `call_done`: what it still holds (the
    // configuration in both forms, the answer once the host has read it) is
    // left to the end of the instance rather than freed.

    pub fn init<P: Provider>(config: String) -> Result<wit::ProviderInfo, wit::Error> {
        let config = parse_config::<P::Config>(&config)?;
        let info = P::init(&config)?.into();
        crate::alloc::call_done();
        Ok(info)
    }

    pub fn list_streams<P: Provider>(config: String) -> Result<Vec<wit::StreamSource>, wit::Error> {
        let config = parse_config::<P::Config>(&config)?;
        let streams = P::list_streams(&config)?
            .into_iter()
            .map(Into::into)
            .collect();
        crate::alloc::call_done();
        Ok(streams)
    }

    pub fn transform_metadata<P: Provider>(
        config: String,
        key: String,
        metadata: String,
    ) -> Result<String, wit::Error> {
        let config = parse_config::<P::Config>(&config)?;
        let metadata: serde_json::Value = serde_json::from_str(&metadata).map_err(|e| {
            crate::Error::new(
                crate::ErrorCode::Parse,
                format!("metadata is not JSON: {e}"),
            )
        })?;
        let out = P::transform_metadata(&config, &key, metadata)?.to_string();
        crate::alloc::call_done();
        Ok(out)
    }
}

/// Exports a [`Provider`] implementation as the component's
/// `dss:provider/provider` interface. Use it once per provider crate.
/// Natively (tests) it expands to nothing.
#[macro_export]
macro_rules! export_provider {
    ($provider:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct DssProviderExport;
            impl $crate::bindings::exports::dss::provider::provider::Guest for DssProviderExport {
                fn describe() -> $crate::bindings::dss::provider::types::ProviderInfo {
                    $crate::__private::describe::<$provider>()
                }
                fn init(
                    config: String,
                ) -> ::core::result::Result<
                    $crate::bindings::dss::provider::types::ProviderInfo,
                    $crate::bindings::dss::provider::types::Error,
                > {
                    $crate::__private::init::<$provider>(config)
                }
                fn list_streams(
                    config: String,
                ) -> ::core::result::Result<
                    Vec<$crate::bindings::dss::provider::types::StreamSource>,
                    $crate::bindings::dss::provider::types::Error,
                > {
                    $crate::__private::list_streams::<$provider>(config)
                }
                fn transform_metadata(
                    config: String,
                    key: String,
                    metadata: String,
                ) -> ::core::result::Result<String, $crate::bindings::dss::provider::types::Error>
                {
                    $crate::__private::transform_metadata::<$provider>(config, key, metadata)
                }
            }
            $crate::bindings::__export_dss_provider_world!(DssProviderExport);
        };
    };
}
