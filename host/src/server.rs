//! `dss serve`: wires the parts together and runs until SIGINT/SIGTERM.

use crate::api::{self, AppState};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::plugin::PluginEngine;
use crate::providers::Providers;
use anyhow::Context;
use std::sync::Arc;

/// Runs the host with `config` until a shutdown signal.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    tracing::info!(
        base_dir = %config.base_dir.display(),
        modules = %config.providers.modules_dir.display(),
        instances = %config.providers.instances_dir.display(),
        "starting DSS"
    );
    let engine = PluginEngine::new(Some(config.module_cache_dir()))
        .map_err(|e| anyhow::anyhow!("cannot create the Wasm engine: {e:?}"))?;
    let catalog = Arc::new(Catalog::new());
    let providers = Providers::new(engine, catalog.clone(), config.clone());

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!("HTTP API on http://{}", listener.local_addr()?);

    // Listings are loaded in the background: the API answers at once and
    // providers that fetch from the host itself can reach it.
    {
        let providers = providers.clone();
        tokio::spawn(async move { providers.reconcile().await });
    }

    let app = api::router(AppState { catalog }, &config.web.dir);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("HTTP server failed")?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
