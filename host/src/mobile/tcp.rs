//! The TCP ingest: the original DSS's phone protocol, byte for byte. The
//! phone speaks first with a metadata frame, gets exactly one metadata
//! frame back (its id), then only sends: video and audio MPEG-TS, user
//! data JSON. Anything malformed ends that connection only, with a log
//! line naming the address and the reason; a frame of an unknown type
//! after the handshake is skipped and counted, as the original skipped it.

use super::feed::Track;
use super::frame::{self, Frame, FrameCodec, FrameError, FrameKind};
use super::session::{Credentials, Ended, Phones, Refused};
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
                tracing::info!(%addr, reason = %why, "mobile connection closed");
            }
        });
    }
}

/// Why a phone's connection ended other than by the phone closing it.
#[derive(Debug, thiserror::Error)]
enum Closed {
    /// No metadata frame within the handshake time.
    #[error("no metadata frame within {0:?}")]
    NoHandshake(Duration),
    /// Closed before saying hello.
    #[error("closed before the handshake")]
    BeforeHello,
    /// The first frame was not a readable frame.
    #[error("bad handshake: {0}")]
    BadFrame(FrameError),
    /// The first frame's payload is not a hello.
    #[error("bad handshake: {0}")]
    BadHello(frame::PayloadError),
    /// The first frame was not metadata.
    #[error("first frame is {0}, not metadata")]
    NotMeta(FrameKind),
    /// The phone was not admitted.
    #[error("refused: {0}")]
    Refused(#[from] Refused),
    /// The answer to the hello could not be sent.
    #[error("cannot answer the handshake: {0}")]
    Answer(FrameError),
    /// The phone sent nothing for the idle timeout.
    #[error("idle for {0:?}")]
    Idle(Duration),
    /// A later frame was unreadable.
    #[error(transparent)]
    Frame(FrameError),
    /// The session ended.
    #[error(transparent)]
    Ended(#[from] Ended),
}

/// One connection, from the handshake to its end; why it ended.
async fn connection(
    socket: TcpStream,
    addr: SocketAddr,
    phones: &Arc<Phones>,
) -> Result<(), Closed> {
    let cfg = phones.config().mobile.clone();
    let _ = socket.set_nodelay(true);
    let mut framed = Framed::new(socket, FrameCodec::new(cfg.max_frame_bytes));
    let handshake = Duration::from_millis(cfg.handshake_timeout_ms);
    let first = match tokio::time::timeout(handshake, framed.next()).await {
        Err(_) => return Err(Closed::NoHandshake(handshake)),
        Ok(None) => return Err(Closed::BeforeHello),
        Ok(Some(Err(e))) => return Err(Closed::BadFrame(e)),
        Ok(Some(Ok(f))) => f,
    };
    if first.kind != FrameKind::Meta {
        return Err(Closed::NotMeta(first.kind));
    }
    let hello = frame::parse_hello(&first.payload).map_err(Closed::BadHello)?;
    let credentials = Credentials {
        id: hello.id.as_deref(),
        token: hello.token.as_deref(),
        secret: hello.secret.as_deref(),
    };
    let mut session = phones.open(credentials, addr, "tcp").await?;
    framed
        .send(Frame::new(
            FrameKind::Meta,
            frame::meta_reply(session.key(), session.secret()),
        ))
        .await
        .map_err(Closed::Answer)?;
    let idle = Duration::from_secs(cfg.idle_timeout_seconds.max(1));
    // From now on, as the original: a frame of an unknown type is skipped
    // (and counted), not the end of the session.
    framed.codec_mut().skip_unknown = true;
    let mut skipped = 0;
    loop {
        let next = tokio::select! {
            n = tokio::time::timeout(idle, framed.next()) => n,
            e = session.cut_off() => return Err(e.into()),
        };
        let codec = framed.codec();
        if codec.skipped > skipped {
            if skipped == 0 {
                tracing::info!(
                    stream = %session.stream_id(), %addr, type_byte = ?codec.last_skipped,
                    "frame of an unknown type skipped (the next ones are only counted)"
                );
            }
            phones.count_unknown_frames(codec.skipped - skipped);
            skipped = codec.skipped;
        }
        let frame = match next {
            Err(_) => return Err(Closed::Idle(idle)),
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(Closed::Frame(e)),
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
        }?;
    }
}
