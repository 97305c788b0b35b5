//! The TCP ingest: the original DSS's phone protocol, byte for byte. The
//! phone speaks first with a metadata frame, gets exactly one metadata
//! frame back (its id), then only sends: video and audio MPEG-TS, user
//! data JSON. Anything malformed ends that connection only, with a log
//! line naming the address and the reason.

use super::feed::Track;
use super::frame::{self, Frame, FrameCodec, FrameKind};
use super::session::{Credentials, Ended, Phones};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

/// Serves phones on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, phones: Arc<Phones>) {
    loop {
        let (socket, addr) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                crate::accept::on_error(e).await;
                continue;
            }
        };
        let phones = phones.clone();
        tokio::spawn(async move {
            if let Err(why) = connection(socket, addr, &phones).await {
                tracing::info!(%addr, "mobile connection closed: {why}");
            }
        });
    }
}

/// One connection, from the handshake to its end; why it ended.
async fn connection(
    socket: TcpStream,
    addr: SocketAddr,
    phones: &Arc<Phones>,
) -> Result<(), String> {
    let cfg = phones.config().mobile.clone();
    let _ = socket.set_nodelay(true);
    let mut framed = Framed::new(socket, FrameCodec::new(cfg.max_frame_bytes));
    let handshake = Duration::from_millis(cfg.handshake_timeout_ms);
    let first = match tokio::time::timeout(handshake, framed.next()).await {
        Err(_) => return Err(format!("no metadata frame within {handshake:?}")),
        Ok(None) => return Err("closed before the handshake".into()),
        Ok(Some(Err(e))) => return Err(format!("bad handshake: {e}")),
        Ok(Some(Ok(f))) => f,
    };
    if first.kind != FrameKind::Meta {
        return Err(format!("first frame is {}, not metadata", first.kind));
    }
    let hello = frame::parse_hello(&first.payload).map_err(|e| format!("bad handshake: {e}"))?;
    let credentials = Credentials {
        id: hello.id.as_deref(),
        token: hello.token.as_deref(),
        secret: hello.secret.as_deref(),
    };
    let mut session = phones
        .open(credentials, addr, "tcp")
        .await
        .map_err(|e| format!("refused: {e}"))?;
    framed
        .send(Frame::new(
            FrameKind::Meta,
            frame::meta_reply(session.key(), session.secret()),
        ))
        .await
        .map_err(|e| format!("cannot answer the handshake: {e}"))?;
    let idle = Duration::from_secs(cfg.idle_timeout_seconds.max(1));
    loop {
        let next = tokio::select! {
            n = tokio::time::timeout(idle, framed.next()) => n,
            _ = session.replaced() => return Err(Ended::Replaced.to_string()),
        };
        let frame = match next {
            Err(_) => return Err(format!("idle for {idle:?}")),
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(format!("{e}")),
            Ok(Some(Ok(f))) => f,
        };
        match frame.kind {
            FrameKind::Video => session.media(Track::Video, &frame.payload).await,
            FrameKind::Audio => session.media(Track::Audio, &frame.payload).await,
            FrameKind::UserData => {
                session.user_data(&frame.payload).await;
                Ok(())
            }
            // The original only logged later metadata frames.
            FrameKind::Meta => {
                tracing::debug!(stream = %session.stream_id(), "metadata frame ignored");
                Ok(())
            }
        }
        .map_err(|e| e.to_string())?;
    }
}
