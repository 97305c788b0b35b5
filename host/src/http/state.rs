//! What the HTTP handlers share, narrowed per group of routes.
//!
//! [`AppState`] holds every part the host wires into its HTTP surface; a
//! handler asks only for the slice it reads (axum's [`FromRef`]): the
//! callbacks and stream routes a [`StreamsState`], the statistics a
//! [`StatsState`], the phones' routes a [`MobileState`], and so on. The
//! providers are seen through [`Listings`] (listing on demand), so the
//! routes are tested in process with the real catalog and supervisor and
//! a fake for the Wasm runtime.

use crate::catalog::Catalog;
use crate::config::Config;
use crate::events::Events;
use crate::mobile::session::Phones;
use crate::providers::Providers;
use crate::record::Recorder;
use crate::stats::Stats;
use crate::supervisor::Supervisor;
use crate::thumbnail::Thumbnails;
use axum::extract::FromRef;
use futures_util::future::BoxFuture;
use std::sync::Arc;

/// Everything the host's HTTP surface reads; handlers take a slice of it.
#[derive(Clone)]
pub struct AppState {
    /// The configuration.
    pub config: Arc<Config>,
    /// The catalog.
    pub catalog: Arc<Catalog>,
    /// Stream lifecycles.
    pub supervisor: Arc<Supervisor>,
    /// Provider instances (lazy ones are woken by first use).
    pub providers: Arc<Providers>,
    /// The metadata store.
    pub store: Arc<dyn dss_store::Store>,
    /// The secret nginx's callbacks carry in their path.
    pub callback_secret: Arc<str>,
    /// The mobile ingest's phones, when it runs.
    pub phones: Option<Arc<Phones>>,
    /// What changes, as it happens.
    pub events: Arc<Events>,
    /// Per-stream statistics.
    pub stats: Arc<Stats>,
    /// Streams' thumbnails.
    pub thumbnails: Arc<Thumbnails>,
    /// Recordings.
    pub recorder: Arc<Recorder>,
    /// The managed nginx, when the host runs it.
    pub nginx: Option<crate::nginx::managed::NginxHealth>,
}

/// What the HTTP layer asks of the providers: that the listing a request
/// needs exists (lazy instances list on first use), and what is still
/// pending before the host is ready.
pub trait Listings: Send + Sync + 'static {
    /// Waits (bounded) until the instance serving stream `stream_id` has
    /// listed.
    fn ensure_for_stream<'a>(&'a self, stream_id: &'a str) -> BoxFuture<'a, ()>;
    /// Waits (bounded) until instance `provider` has listed.
    fn ensure_listed<'a>(&'a self, provider: &'a str) -> BoxFuture<'a, ()>;
    /// Waits (bounded) until every enabled instance has listed.
    fn ensure_all_listed(&self) -> BoxFuture<'_, ()>;
    /// The instances without a first listing, and what each waits for.
    fn pending(&self) -> Vec<(String, &'static str)>;
}

impl Listings for Providers {
    fn ensure_for_stream<'a>(&'a self, stream_id: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(Providers::ensure_for_stream(self, stream_id))
    }

    fn ensure_listed<'a>(&'a self, provider: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(Providers::ensure_listed(self, provider))
    }

    fn ensure_all_listed(&self) -> BoxFuture<'_, ()> {
        Box::pin(Providers::ensure_all_listed(self))
    }

    fn pending(&self) -> Vec<(String, &'static str)> {
        Providers::pending(self)
    }
}

/// The streams' routes and nginx's callbacks: the catalog, the
/// supervisor and the listings behind them.
#[derive(Clone)]
pub struct StreamsState {
    /// The configuration (`[nginx]`, `[security]`).
    pub config: Arc<Config>,
    /// The catalog.
    pub catalog: Arc<Catalog>,
    /// Stream lifecycles.
    pub supervisor: Arc<Supervisor>,
    /// Listings on demand.
    pub listings: Arc<dyn Listings>,
}

impl FromRef<AppState> for StreamsState {
    fn from_ref(st: &AppState) -> Self {
        StreamsState {
            config: st.config.clone(),
            catalog: st.catalog.clone(),
            supervisor: st.supervisor.clone(),
            listings: st.providers.clone(),
        }
    }
}

/// nginx's callbacks and `/control`: the streams and the secret nginx's
/// callbacks carry.
#[derive(Clone)]
pub struct CallbackState {
    /// The streams.
    pub streams: StreamsState,
    /// The secret in the callbacks' path.
    pub secret: Arc<str>,
}

impl FromRef<AppState> for CallbackState {
    fn from_ref(st: &AppState) -> Self {
        CallbackState {
            streams: StreamsState::from_ref(st),
            secret: st.callback_secret.clone(),
        }
    }
}

/// Statistics and thumbnails of catalogued streams.
#[derive(Clone)]
pub struct StatsState {
    /// The catalog (which ids exist).
    pub catalog: Arc<Catalog>,
    /// Listings on demand.
    pub listings: Arc<dyn Listings>,
    /// Per-stream statistics.
    pub stats: Arc<Stats>,
    /// Streams' thumbnails.
    pub thumbnails: Arc<Thumbnails>,
}

impl FromRef<AppState> for StatsState {
    fn from_ref(st: &AppState) -> Self {
        StatsState {
            catalog: st.catalog.clone(),
            listings: st.providers.clone(),
            stats: st.stats.clone(),
            thumbnails: st.thumbnails.clone(),
        }
    }
}

/// The live events: what changes, and the catalog, supervisor and
/// statistics they are rendered from.
#[derive(Clone)]
pub struct EventsState {
    /// The catalog.
    pub catalog: Arc<Catalog>,
    /// Stream lifecycles.
    pub supervisor: Arc<Supervisor>,
    /// What changes.
    pub events: Arc<Events>,
    /// Per-stream statistics (sent when they change).
    pub stats: Arc<Stats>,
    /// Which streams have thumbnails.
    pub thumbnails: Arc<Thumbnails>,
}

impl FromRef<AppState> for EventsState {
    fn from_ref(st: &AppState) -> Self {
        EventsState {
            catalog: st.catalog.clone(),
            supervisor: st.supervisor.clone(),
            events: st.events.clone(),
            stats: st.stats.clone(),
            thumbnails: st.thumbnails.clone(),
        }
    }
}

/// The mobile ingest's HTTP routes and its positions' WebSocket.
#[derive(Clone)]
pub struct MobileState {
    /// The phones, when the ingest runs.
    pub phones: Option<Arc<Phones>>,
    /// What changes (positions for the WebSocket).
    pub events: Arc<Events>,
}

impl FromRef<AppState> for MobileState {
    fn from_ref(st: &AppState) -> Self {
        MobileState {
            phones: st.phones.clone(),
            events: st.events.clone(),
        }
    }
}

/// `/readyz`: the first listings and the managed nginx.
#[derive(Clone)]
pub struct ReadyState {
    /// Listings (what is pending).
    pub listings: Arc<dyn Listings>,
    /// The managed nginx, when the host runs it.
    pub nginx: Option<crate::nginx::managed::NginxHealth>,
}

impl ReadyState {
    /// What the host still waits for before it is ready, as `/readyz`
    /// sees it: the instances without a first listing, and a managed
    /// nginx that does not run. Empty when ready.
    pub fn waiting_for(&self) -> Vec<String> {
        let mut waiting: Vec<String> = self
            .listings
            .pending()
            .into_iter()
            .map(|(provider, _)| format!("provider {provider}"))
            .collect();
        if self.nginx.as_ref().is_some_and(|n| !n.up()) {
            waiting.push("nginx".to_string());
        }
        waiting
    }
}

impl FromRef<AppState> for ReadyState {
    fn from_ref(st: &AppState) -> Self {
        ReadyState {
            listings: st.providers.clone(),
            nginx: st.nginx.clone(),
        }
    }
}

impl FromRef<AppState> for Arc<Config> {
    fn from_ref(st: &AppState) -> Self {
        st.config.clone()
    }
}

impl FromRef<AppState> for Arc<Supervisor> {
    fn from_ref(st: &AppState) -> Self {
        st.supervisor.clone()
    }
}

impl FromRef<AppState> for Arc<Recorder> {
    fn from_ref(st: &AppState) -> Self {
        st.recorder.clone()
    }
}

impl FromRef<AppState> for Arc<dyn dss_store::Store> {
    fn from_ref(st: &AppState) -> Self {
        st.store.clone()
    }
}

/// Fakes and builders for the handlers' tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::http::access::Caller;
    use std::net::SocketAddr;
    use std::sync::Mutex;

    /// The peer of a request relayed by nginx on this machine.
    pub const PEER: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40000);
    /// A viewer through nginx's public port.
    pub const PUBLIC: Caller = Caller::Public {
        ip: std::net::IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9)),
        direct: false,
    };
    /// The operator, with the API token.
    pub const ADMIN: Caller = Caller::Private { direct: false };

    /// Listings that are always there, recording what was asked.
    #[derive(Default)]
    pub struct FakeListings {
        /// What was asked, in order (`stream:ID`, `provider:ID`, `all`).
        pub asked: Mutex<Vec<String>>,
        /// What `pending` answers.
        pub pending: Mutex<Vec<(String, &'static str)>>,
    }

    impl FakeListings {
        fn ask(&self, what: String) -> BoxFuture<'_, ()> {
            crate::sync::lock(&self.asked).push(what);
            Box::pin(std::future::ready(()))
        }
    }

    impl Listings for FakeListings {
        fn ensure_for_stream<'a>(&'a self, stream_id: &'a str) -> BoxFuture<'a, ()> {
            self.ask(format!("stream:{stream_id}"))
        }
        fn ensure_listed<'a>(&'a self, provider: &'a str) -> BoxFuture<'a, ()> {
            self.ask(format!("provider:{provider}"))
        }
        fn ensure_all_listed(&self) -> BoxFuture<'_, ()> {
            self.ask("all".into())
        }
        fn pending(&self) -> Vec<(String, &'static str)> {
            crate::sync::lock(&self.pending).clone()
        }
    }

    /// A real catalog and supervisor (nothing is spawned until a stream
    /// is wanted; the tests' FFmpeg is a path that does not exist) and
    /// fake listings.
    pub fn streams(config: Config) -> (StreamsState, Arc<FakeListings>) {
        let mut config = config;
        config.ffmpeg.binary = "/nonexistent/ffmpeg".into();
        let config = Arc::new(config);
        let catalog = Arc::new(Catalog::new());
        let supervisor = Supervisor::new(
            config.clone(),
            catalog.clone(),
            Arc::new(Events::new()),
            Arc::new(Stats::new()),
        );
        let listings = Arc::new(FakeListings::default());
        let st = StreamsState {
            config,
            catalog,
            supervisor,
            listings: listings.clone(),
        };
        (st, listings)
    }

    /// Catalogues provider instance `provider` with streams `keys` (RTSP
    /// sources any host may serve, at 1.0, 2.0), as a listing would.
    pub fn catalogue(catalog: &Catalog, provider: &str, keys: &[&str]) {
        let placed: Vec<_> = keys.iter().map(|k| (*k, Some((1.0, 2.0)))).collect();
        catalogue_at(catalog, provider, &placed);
    }

    /// [`catalogue`] with each stream's position (lat, lon), if any.
    pub fn catalogue_at(catalog: &Catalog, provider: &str, keys: &[(&str, Option<(f64, f64)>)]) {
        use crate::catalog::{Options, ProviderState, ProviderStatus, StreamEntry};
        use crate::plugin::bindings::dss::provider::types::Geo;
        use crate::plugin::bindings::StreamSource;
        let options = Options::new(
            Vec::new(),
            vec!["-c".to_string(), "copy".to_string()],
            Arc::new(crate::ffmpeg::SourceGrant::any_host(false)),
            false,
        );
        let limits = crate::config::Limits::default();
        let streams = keys
            .iter()
            .map(|(key, at)| {
                let source = StreamSource {
                    key: key.to_string(),
                    source: format!("rtsp://camera.example/{key}"),
                    name: format!("Camera {key}"),
                    geo: at.map(|(lat, lon)| Geo { lat, lon }),
                    online: true,
                    input_options: Vec::new(),
                    tags: Vec::new(),
                };
                StreamEntry::from_source(provider, source, &options, &limits)
                    .expect("a valid test stream")
            })
            .collect::<Vec<_>>();
        catalog.set_status(ProviderStatus {
            id: provider.into(),
            module: "static-list".into(),
            file: format!("/etc/dss/providers/{provider}.toml"),
            state: ProviderState::Ready,
            version: Some("1.0.0".into()),
            interface_version: Some("0.2.0".into()),
            module_hash: None,
            info: None,
            stream_count: streams.len(),
            last_error: Some("rtsp://user:secret@camera.example refused".into()),
            warnings: vec!["a warning".into()],
            loaded_at_ms: None,
            refreshed_at_ms: None,
            listing_source: Some("provider"),
            refreshed_by: None,
            listing_fetched_at_ms: None,
            stale: false,
            lazy_pending: false,
            thumbnails: Default::default(),
            record: None,
        });
        catalog.replace_streams(provider, streams);
    }

    /// A request as [`crate::http::server`] hands it to the router: with
    /// its peer and its caller.
    pub fn request(
        method: &str,
        uri: &str,
        peer: SocketAddr,
        caller: Caller,
    ) -> axum::http::Request<axum::body::Body> {
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .body(axum::body::Body::empty())
            .expect("a valid test request");
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        req.extensions_mut().insert(caller);
        req
    }

    /// Sends `req` to `router` in process; the status and the body.
    pub async fn send(
        router: axum::Router,
        req: axum::http::Request<axum::body::Body>,
    ) -> (axum::http::StatusCode, String) {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let res = router.oneshot(req).await.expect("the router answers");
        let status = res.status();
        let body = res
            .into_body()
            .collect()
            .await
            .expect("a readable body")
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}
