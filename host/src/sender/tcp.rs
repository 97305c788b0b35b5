//! The TCP session of the frame protocol: connect, say hello (the session
//! asked for, the token, the saved secret), read the one reply (the
//! session assigned), then forward FFmpeg's video and audio and a position
//! a second as frames until something ends the run.

use super::encoder::{ffmpeg_args, read_or_wait, Children, Ffmpeg, Tracks};
use super::report::{Counters, End};
use super::state::{remember, saved_id, state_path, Saved};
use super::{
    check_session_id, deadline, next_position, say, sleep_until_opt, SendError, SendOptions,
    DEFAULT_TCP_SERVER, POSITION_INTERVAL, STOP_GRACE,
};
use crate::mobile::frame::{
    coord_payload, hello_payload, parse_hello, Frame, FrameCodec, FrameError, FrameKind,
};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use std::io::Write;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::process::ChildStdout;
use tokio::time::{timeout, Instant, MissedTickBehavior};
use tokio_util::codec::{Encoder, FramedRead};
use tokio_util::sync::CancellationToken;

/// The writing side of a TCP session.
struct Link {
    server: String,
    wr: OwnedWriteHalf,
    codec: FrameCodec,
    buf: BytesMut,
}

impl Link {
    /// Writes one frame (waiting for the socket: the back-pressure).
    async fn send(
        &mut self,
        counters: &Counters,
        kind: FrameKind,
        payload: Bytes,
    ) -> Result<(), WriteError> {
        self.buf.clear();
        self.codec
            .encode(Frame::new(kind, payload), &mut self.buf)
            .map_err(|e| WriteError::Other(e.to_string()))?;
        self.wr.write_all(&self.buf).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                WriteError::Closed
            } else {
                WriteError::Other(e.to_string())
            }
        })?;
        Counters::add(&counters.total, self.buf.len());
        Ok(())
    }
}

/// A failed frame write.
enum WriteError {
    /// The server had closed the connection (EPIPE).
    Closed,
    /// Anything else.
    Other(String),
}

/// A run over the TCP frame protocol: the session asked for is the one
/// given, else the state file's (with its secret); the one assigned is
/// printed and saved before FFmpeg starts.
pub(super) async fn run(
    opts: &SendOptions,
    out: &mut (dyn Write + Send),
    counters: &Counters,
    id_slot: &mut Option<String>,
    children: &mut Children,
    stop: &CancellationToken,
) -> Result<End, SendError> {
    let server = opts
        .server
        .clone()
        .unwrap_or_else(|| DEFAULT_TCP_SERVER.into());
    let state = state_path(opts);
    let saved = match &state {
        Some(p) => saved_id(p, &server)?,
        None => None,
    };
    // The saved secret goes with the saved id (or the same id given).
    let asked = match (&opts.id, saved) {
        (Some(id), Some(s)) if &s.id == id => Some(s),
        (Some(id), _) => Some(Saved {
            id: id.clone(),
            secret: None,
        }),
        (None, saved) => saved,
    };
    let handshake = handshake(opts, &server, asked.as_ref(), counters);
    let (mut link, mut replies, session) = tokio::select! {
        r = handshake => r?,
        () = stop.cancelled() => return Ok(End::Interrupted),
    };
    let id = session.id.clone();
    say(out, &format!("id: {id}"));
    *id_slot = Some(id.clone());
    remember(out, state.as_deref(), &server, &session);

    let (video, video_out) = Ffmpeg::spawn(
        &opts.ffmpeg,
        "video",
        ffmpeg_args(&opts.input, Tracks::Video),
    )?;
    children.video = Some(video);
    let mut audio_out = None;
    if !opts.video_only {
        match Ffmpeg::spawn(
            &opts.ffmpeg,
            "audio",
            ffmpeg_args(&opts.input, Tracks::Audio),
        ) {
            Ok((audio, o)) => {
                children.audio = Some(audio);
                audio_out = Some(o);
            }
            Err(e) => say(out, &format!("note: {e}; continuing video-only")),
        }
    }
    let deadline = deadline(opts);
    let forward = forward(
        opts,
        out,
        counters,
        &mut link,
        &mut replies,
        video_out,
        audio_out,
        children,
        stop,
        deadline,
    );
    // A write blocked past the deadline is abandoned (the frame
    // boundary stop inside `forward` is the normal way out).
    let end = match deadline {
        Some(at) => tokio::time::timeout_at(at + STOP_GRACE, forward)
            .await
            .unwrap_or(Ok(End::Duration)),
        None => forward.await,
    };
    // A FIN after the last whole frame: the server sees a clean end.
    let _ = timeout(STOP_GRACE, link.wr.shutdown()).await;
    end
}

/// Connects, says hello (with the session asked for and its secret) and
/// reads the one reply frame: the connection and the session assigned.
async fn handshake(
    opts: &SendOptions,
    server: &str,
    asked: Option<&Saved>,
    counters: &Counters,
) -> Result<(Link, FramedRead<OwnedReadHalf, FrameCodec>, Saved), SendError> {
    let connect = |reason: String| SendError::Connect {
        server: server.to_string(),
        reason,
    };
    let stream = timeout(
        opts.handshake_timeout,
        tokio::net::TcpStream::connect(server),
    )
    .await
    .map_err(|_| connect("timed out".into()))?
    .map_err(|e| connect(e.to_string()))?;
    // Frames are written whole; small position frames must not wait.
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let mut link = Link {
        server: server.to_string(),
        wr,
        codec: FrameCodec::default(),
        buf: BytesMut::new(),
    };
    let refused = |reason: String| SendError::Refused {
        server: server.to_string(),
        reason,
    };
    let protocol = |reason: String| SendError::Protocol {
        server: server.to_string(),
        reason,
    };
    let hello = hello_payload(
        asked.map(|s| s.id.as_str()),
        opts.token.as_deref(),
        asked.and_then(|s| s.secret.as_deref()),
    );
    link.send(counters, FrameKind::Meta, hello)
        .await
        .map_err(|e| match e {
            WriteError::Closed => refused("it closed the connection".into()),
            WriteError::Other(e) => connect(e),
        })?;
    let mut replies = FramedRead::new(rd, FrameCodec::default());
    let reply = match timeout(opts.handshake_timeout, replies.next()).await {
        Err(_) => {
            return Err(SendError::NoReply {
                server: server.to_string(),
                secs: opts.handshake_timeout.as_secs(),
            })
        }
        Ok(None) => {
            return Err(refused(
                "it closed the connection without answering the hello".into(),
            ))
        }
        Ok(Some(Err(FrameError::Io(e)))) => {
            return Err(refused(format!("the connection failed: {e}")))
        }
        Ok(Some(Err(e))) => return Err(protocol(e.to_string())),
        Ok(Some(Ok(f))) if f.kind != FrameKind::Meta => {
            return Err(protocol(format!(
                "a {} frame instead of the metadata reply",
                f.kind
            )))
        }
        Ok(Some(Ok(f))) => f,
    };
    let reply = parse_hello(&reply.payload).map_err(|e| protocol(format!("reply: {e}")))?;
    let id = reply
        .id
        .ok_or_else(|| refused("it answered with an empty id".into()))?;
    check_session_id(&id).map_err(|e| protocol(format!("reply: {e}")))?;
    Ok((
        link,
        replies,
        Saved {
            id,
            secret: reply.secret,
        },
    ))
}

/// Forwards FFmpeg's output and the positions until something ends it.
#[allow(clippy::too_many_arguments)]
async fn forward(
    opts: &SendOptions,
    out: &mut (dyn Write + Send),
    counters: &Counters,
    link: &mut Link,
    replies: &mut FramedRead<OwnedReadHalf, FrameCodec>,
    mut video_out: ChildStdout,
    mut audio_out: Option<ChildStdout>,
    children: &mut Children,
    stop: &CancellationToken,
    deadline: Option<Instant>,
) -> Result<End, SendError> {
    let (video_kind, audio_kind) = if opts.swap_types {
        (FrameKind::Audio, FrameKind::Video)
    } else {
        (FrameKind::Video, FrameKind::Audio)
    };
    let server = link.server.clone();
    let lost = |e: WriteError| match e {
        WriteError::Closed => Ok(End::ServerClosed),
        WriteError::Other(reason) => Err(SendError::Lost {
            server: server.clone(),
            reason,
        }),
    };
    let mut vbuf = vec![0u8; opts.chunk];
    let mut abuf = vec![0u8; opts.chunk];
    let mut route = opts.route.clone();
    let mut ticker = tokio::time::interval(POSITION_INTERVAL);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(End::Interrupted),
            () = sleep_until_opt(deadline) => return Ok(End::Duration),
            r = video_out.read(&mut vbuf) => {
                let n = r.unwrap_or(0);
                if n == 0 {
                    let failed = match children.video.as_mut() {
                        Some(v) => v.failure().await,
                        None => None,
                    };
                    return failed.map_or(Ok(End::InputEnded), Err);
                }
                let payload = Bytes::copy_from_slice(&vbuf[..n]);
                if let Err(e) = link.send(counters, video_kind, payload).await {
                    return lost(e);
                }
                Counters::add(&counters.video, n);
            }
            r = read_or_wait(audio_out.as_mut(), &mut abuf) => {
                let n = r.unwrap_or(0);
                if n == 0 {
                    audio_out = None;
                    let sent = counters.audio.load(Ordering::Relaxed);
                    let why = match children.audio.as_mut() {
                        Some(a) => a.failure().await.map(|e| e.to_string()),
                        None => None,
                    };
                    match why {
                        Some(why) => say(out, &format!("note: no audio: {why}; continuing video-only")),
                        None if sent == 0 => say(out, "note: no audio in the input; continuing video-only"),
                        None => {}
                    }
                    continue;
                }
                let payload = Bytes::copy_from_slice(&abuf[..n]);
                if let Err(e) = link.send(counters, audio_kind, payload).await {
                    return lost(e);
                }
                Counters::add(&counters.audio, n);
            }
            _ = ticker.tick() => {
                let (lat, lon) = next_position(&mut route);
                if let Err(e) = link.send(counters, FrameKind::UserData, coord_payload(lat, lon)).await {
                    return lost(e);
                }
                Counters::add(&counters.positions, 1);
            }
            r = replies.next() => match r {
                None => return Ok(End::ServerClosed),
                Some(Err(FrameError::Io(e))) => return Err(SendError::Lost {
                    server: server.clone(),
                    reason: e.to_string(),
                }),
                Some(Err(e)) => return Err(SendError::Protocol {
                    server: server.clone(),
                    reason: e.to_string(),
                }),
                Some(Ok(f)) => say(out, &format!("note: ignored a {} frame from the server", f.kind)),
            },
        }
    }
}
