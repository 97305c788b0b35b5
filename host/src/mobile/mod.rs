//! Mobile ingest: phones pushing MPEG-TS and GPS positions to the host.
//!
//! The wire format is the original DSS's ([`frame`]); the TCP server
//! ([`tcp`]) and the HTTP ingest ([`http`]) admit phones into [`session`]s, which feed each phone's
//! tracks to FFmpeg through FIFOs ([`feed`]) and its positions through the
//! `mobile-ts` instance to the store, the catalog and the events. The
//! reference sender `dss mobile-send` (the top-level `sender` module, a
//! client this module knows nothing of) speaks the same protocol and
//! follows a [`route`]. The original's WebSocket of positions is
//! [`location`].

/// The HTTP header of a phone's session secret (the HTTP ingest's
/// request and response, `dss mobile-send`'s requests).
pub const SECRET_HEADER: &str = "x-dss-phone-secret";

mod admission;
pub mod feed;
pub mod frame;
pub mod location;
pub mod route;
pub mod session;
pub mod tcp;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::events::Events;
use crate::providers::Providers;
use crate::supervisor::Supervisor;
use anyhow::Context;
use dss_store::Store;
use session::Phones;
use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;

/// Whether the ingest runs: `[mobile] enabled`, or, unset, whether the
/// instance file of `[mobile] instance` exists.
pub fn enabled(config: &Config) -> bool {
    config.mobile.enabled.unwrap_or_else(|| {
        config
            .providers
            .instances_dir
            .join(format!("{}.toml", config.mobile.instance))
            .exists()
    })
}

/// Starts the ingest when it is enabled: closes the sessions a previous
/// run left open, connects the phones' feeds to the supervisor and
/// listens for phones.
pub async fn start(
    config: Arc<Config>,
    providers: Arc<Providers>,
    supervisor: Arc<Supervisor>,
    catalog: Arc<Catalog>,
    store: Arc<dyn Store>,
    events: Arc<Events>,
) -> anyhow::Result<Option<Arc<Phones>>> {
    if !enabled(&config) {
        return Ok(None);
    }
    session::close_stale_sessions(&store).await;
    // The phones' FIFO directories: what a crashed run left is gone.
    let feeds = config.run_dir().join("mobile");
    let _ = std::fs::remove_dir_all(&feeds);
    let mode = crate::privileges::holding_dir_mode(config.security.media_user.as_ref());
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(&feeds)
        .with_context(|| format!("cannot create {}", feeds.display()))?;
    let listen = config.mobile.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("mobile ingest: cannot listen on {listen}"))?;
    tracing::info!(
        instance = %config.mobile.instance,
        "mobile ingest on {}",
        listener.local_addr()?
    );
    let phones = Phones::new(
        config,
        providers,
        supervisor.clone(),
        catalog,
        store,
        events,
    );
    supervisor.set_feeds(phones.clone());
    tokio::spawn(tcp::serve(listener, phones.clone()));
    tokio::spawn(phones.clone().maintain());
    Ok(Some(phones))
}
