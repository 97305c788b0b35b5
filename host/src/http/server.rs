//! The host's HTTP/1.1 server: accepts connections on the API listener,
//! serves each with hyper (upgrades allowed, for WebSockets), tags every
//! request with its peer ([`ConnectInfo`]) and its [`Caller`], and drains
//! within a bound on shutdown.
//!
//! It narrows `axum::serve` to what the host needs. Everything that talks
//! to the host speaks HTTP/1.1 (nginx-rtmp's callbacks, nginx's
//! `proxy_pass` and `auth_request`, FFmpeg, browsers through nginx), so
//! there is no protocol sniffing; there is no per-connection make-service,
//! and the caller is classified once per request without a boxed
//! middleware. nginx-rtmp opens one connection per callback, so this
//! per-connection path is what a storm of viewers costs (the `callbacks`
//! bench compares it with a plain nginx).

use crate::http::access::{self, Caller};
use crate::http::state::{AppState, CallbackState};
use axum::extract::{ConnectInfo, FromRef};
use axum::Router;
use futures_util::future::Either;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower_service::Service;
use tracing::Instrument;

/// A client must send a request's headers within this time (slow-header
/// clients would otherwise hold connections forever); nginx sends them
/// in one write.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` (and nginx-rtmp's callbacks on their own short path,
/// [`crate::http::hooks::fast_callback`]) on `listener` until `stop` turns true, then lets
/// requests in flight finish for at most `drain` (idle keep-alive
/// connections are closed at once) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    state: AppState,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    // Each connection holds a receiver; the sender is closed when every
    // connection is gone.
    let (alive_tx, alive_rx) = watch::channel(());
    let callbacks = CallbackState::from_ref(&state);
    loop {
        let (socket, peer) = tokio::select! {
            biased;
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    crate::accept::on_error(e).await;
                    continue;
                }
            },
        };
        let (router, config, callbacks) = (router.clone(), state.config.clone(), callbacks.clone());
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let caller: Caller = access::classify(
                &config,
                peer.ip(),
                req.headers(),
                req.uri().query(),
                &callbacks.secret,
            );
            if let Some(route) = crate::http::hooks::callback_route(&req) {
                // nginx-rtmp's callbacks: the hot path, no span (measured:
                // a span per callback cost ~10 % of their rate); what they
                // log names the stream and the client.
                let (callbacks, body) = (callbacks.clone(), req.into_body());
                return Either::Left(async move {
                    Ok(
                        crate::http::hooks::fast_callback(callbacks, peer, caller, route, body)
                            .await,
                    )
                });
            }
            // One span per other request: what a handler logs says which
            // request it served (the path only: queries may carry secrets).
            let span =
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path());
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut().insert(caller);
            Either::Right(router.clone().call(req).instrument(span))
        });
        let conn = http
            .serve_connection(TokioIo::new(CloseOnDrop(socket)), service)
            .with_upgrades();
        let (mut stop, alive) = (stop.clone(), alive_rx.clone());
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let stopping = tokio::select! {
                _ = conn.as_mut() => false,
                _ = stopped(&mut stop) => true,
            };
            if stopping {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
            drop(alive);
        });
    }
    drop(listener);
    drop(alive_rx);
    if tokio::time::timeout(drain, alive_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {drain:?}; dropping them");
    }
}

/// A connection whose write side is shut by close(2) when it is dropped,
/// not by a shutdown(2) first: hyper shuts the write side of every
/// connection it ends and drops it at once, and both send the same FIN, so
/// the extra system call is saved on each of nginx-rtmp's one-request
/// connections.
struct CloseOnDrop(TcpStream);

impl tokio::io::AsyncRead for CloseOnDrop {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CloseOnDrop {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
