//! One driver stream of a session: a `RouterService/Stream` call relayed to
//! a new stream of the driver's target, both ways, half-close propagated,
//! as upstream's `forward_stream` does (js/streams/common.py:17-45).
//!
//! The client's DATA frames go to the target; its GOAWAY (or the end of its
//! request stream) half-closes the target; a PING is an empty write, as
//! upstream's `RouterStream.receive` returns `b""` for it. The target's
//! bytes go back as DATA frames of at most 64 KiB (one per datagram on a
//! datagram target), its end as a GOAWAY frame. Once both directions have
//! ended the call ends with OK. A target that fails ends the call with
//! `UNKNOWN` (never a clean end); a client that goes (RST_STREAM, its
//! connection cut) resets the target; the session closing ends the call
//! with `UNAVAILABLE`.
//!
//! A TCP or Unix target's socket is relayed on the session's runtime with
//! no thread of its own; any other target (UDP, echo, D-Bus, websocket, …)
//! through two threads of the runtime's blocking pool that call the
//! stream's blocking `receive` and `send`.

use crate::error::{Error, Result};
use crate::router::MAX_FRAME;
use crate::router::pb::{FrameType, StreamRequest, StreamResponse};
use crate::stream::Stream;
use bytes::{Bytes, BytesMut};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};

/// Where a driver stream's response frames go (the call's response stream).
pub(super) type Out = mpsc::Sender<StreamResponse>;

/// How a driver stream's call ends when it fails: set by the relay, given to
/// the client after the frames queued before it.
pub(super) type End = Arc<OnceLock<Status>>;

/// A driver stream's response stream: the frames the relay sent, then its
/// failure (if it failed) as the call's status, never lost behind a full
/// queue; OK once both directions ended.
pub(super) struct Responses {
    rx: mpsc::Receiver<StreamResponse>,
    end: End,
    done: bool,
}

impl Responses {
    pub(super) fn new(rx: mpsc::Receiver<StreamResponse>, end: End) -> Responses {
        Responses {
            rx,
            end,
            done: false,
        }
    }
}

impl tokio_stream::Stream for Responses {
    type Item = std::result::Result<StreamResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(f)) => Poll::Ready(Some(Ok(f))),
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(self.end.get().cloned().map(Err))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Frames queued between a blocking target's threads and the call.
const QUEUE: usize = 16;

/// How a relay ended early.
enum Failed {
    /// The target failed (its reads or writes).
    Target(Error),
    /// The client went: its call was cancelled or its connection cut.
    Client,
    /// The session is closing.
    Closing,
}

/// The target's side that the call's frames are read from.
enum Source {
    Socket(Box<dyn AsyncRead + Send + Unpin>),
    /// Chunks the receiving thread read (`None`: the target's end).
    Thread(mpsc::Receiver<Result<Option<Bytes>>>),
}

impl Source {
    /// The next chunk of the target (`None` at its end).
    async fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>> {
        match self {
            Source::Socket(rd) => {
                buf.reserve(MAX_FRAME);
                let mut room = bytes::BufMut::limit(&mut *buf, MAX_FRAME);
                let n = rd
                    .read_buf(&mut room)
                    .await
                    .map_err(|e| Error::io("target", &e))?;
                Ok((n > 0).then(|| buf.split().freeze()))
            }
            Source::Thread(rx) => match rx.recv().await {
                Some(r) => r,
                None => Err(Error::Closed("the target's reader ended".into())),
            },
        }
    }
}

/// The target's side that the call's frames are written to.
enum Sink {
    Socket(Box<dyn AsyncWrite + Send + Unpin>),
    /// Chunks for the sending thread (`None`: half-close).
    Thread(mpsc::Sender<Option<Bytes>>),
}

impl Sink {
    async fn write(&mut self, b: Bytes) -> Result<()> {
        match self {
            Sink::Socket(wr) => wr.write_all(&b).await.map_err(|e| Error::io("target", &e)),
            Sink::Thread(tx) => tx
                .send(Some(b))
                .await
                .map_err(|_| Error::Closed("the target's writer ended".into())),
        }
    }

    async fn eof(&mut self) -> Result<()> {
        match self {
            Sink::Socket(wr) => wr.shutdown().await.map_err(|e| Error::io("target", &e)),
            Sink::Thread(tx) => tx
                .send(None)
                .await
                .map_err(|_| Error::Closed("the target's writer ended".into())),
        }
    }
}

/// The socket of a TCP or Unix byte-stream target, duplicated and made
/// non-blocking for the runtime (`None` for any other transport).
fn socket_halves(target: &Stream) -> Option<(Source, Sink)> {
    let fd = target.socket()?;
    let sock = socket2::SockRef::from(&fd);
    if sock.r#type().ok()? != socket2::Type::STREAM {
        return None;
    }
    let domain = sock.domain().ok()?;
    let owned = fd.try_clone_to_owned().ok()?;
    socket2::SockRef::from(&owned).set_nonblocking(true).ok()?;
    if domain == socket2::Domain::IPV4 || domain == socket2::Domain::IPV6 {
        let s = tokio::net::TcpStream::from_std(owned.into()).ok()?;
        let (rd, wr) = s.into_split();
        Some((Source::Socket(Box::new(rd)), Sink::Socket(Box::new(wr))))
    } else if domain == socket2::Domain::UNIX {
        let s = tokio::net::UnixStream::from_std(owned.into()).ok()?;
        let (rd, wr) = s.into_split();
        Some((Source::Socket(Box::new(rd)), Sink::Socket(Box::new(wr))))
    } else {
        None
    }
}

/// Two blocking-pool threads over `target`'s `receive` and `send`.
fn thread_halves(target: &Arc<Stream>) -> (Source, Sink, [tokio::task::JoinHandle<()>; 2]) {
    let (up_tx, up_rx) = mpsc::channel::<Result<Option<Bytes>>>(QUEUE);
    let (down_tx, mut down_rx) = mpsc::channel::<Option<Bytes>>(QUEUE);
    let t = target.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; MAX_FRAME];
        loop {
            let r = t
                .receive(&mut buf, None)
                .map(|n| n.map(|n| Bytes::copy_from_slice(&buf[..n])));
            let last = !matches!(r, Ok(Some(_)));
            if up_tx.blocking_send(r).is_err() || last {
                return;
            }
        }
    });
    let t = target.clone();
    let writer = tokio::task::spawn_blocking(move || {
        while let Some(chunk) = down_rx.blocking_recv() {
            let r = match chunk {
                Some(b) => t.send(&b, None),
                None => t.send_eof(),
            };
            if r.is_err() {
                // The relay sees it as the writer's end.
                return;
            }
        }
    });
    (
        Source::Thread(up_rx),
        Sink::Thread(down_tx),
        [reader, writer],
    )
}

fn frame(payload: Bytes, t: FrameType) -> StreamResponse {
    StreamResponse {
        payload,
        frame_type: t as i32,
    }
}

/// Relays the call (`incoming`, `out`) and `target` until both directions
/// have ended, one side fails, or `stop`; then ends the target (closed,
/// or reset when the client went or the target failed).
pub(super) async fn relay(
    name: String,
    target: Stream,
    mut incoming: Streaming<StreamRequest>,
    out: Out,
    end: End,
    stop: watch::Receiver<bool>,
) {
    let target = Arc::new(target);
    let (mut source, mut sink, threads) = match socket_halves(&target) {
        Some((s, k)) => (s, k, None),
        None => {
            let (s, k, t) = thread_halves(&target);
            (s, k, Some(t))
        }
    };
    let up = async {
        let mut buf = BytesMut::new();
        loop {
            let chunk = source.next(&mut buf).await.map_err(Failed::Target)?;
            let last = chunk.is_none();
            let f = match chunk {
                Some(b) => frame(b, FrameType::Data),
                None => frame(Bytes::new(), FrameType::Goaway),
            };
            if out.send(f).await.is_err() {
                return Err(Failed::Client);
            }
            if last {
                return Ok(());
            }
        }
    };
    let down = async {
        loop {
            match incoming.message().await {
                Ok(Some(f)) => match FrameType::try_from(f.frame_type) {
                    Ok(FrameType::Data) => sink.write(f.payload).await.map_err(Failed::Target)?,
                    Ok(FrameType::Ping) => {
                        sink.write(Bytes::new()).await.map_err(Failed::Target)?
                    }
                    Ok(FrameType::Goaway) => break,
                    _ => {}
                },
                Ok(None) => break,
                Err(_) => return Err(Failed::Client),
            }
        }
        sink.eof().await.map_err(Failed::Target)
    };
    let mut halt = stop;
    let r = tokio::select! {
        r = async { tokio::try_join!(up, down) } => r.map(|_| ()),
        () = out.closed() => Err(Failed::Client),
        () = async { let _ = halt.wait_for(|s| *s).await; } => Err(Failed::Closing),
    };
    // The target's halves go first: a reset takes effect when the last
    // descriptor of its socket is closed.
    drop(source);
    drop(sink);
    match &r {
        Ok(()) => log::debug!("{name}: ended"),
        Err(Failed::Target(e)) => {
            log::info!("{name}: the target failed: {e}");
            let st = Status::unknown(format!("Unexpected <class 'OSError'>: {e}"));
            let _ = end.set(st);
        }
        Err(Failed::Client) => log::info!("{name}: the client went away"),
        Err(Failed::Closing) => {
            let _ = end.set(Status::unavailable("the session is closing"));
        }
    }
    drop(out);
    drop(incoming);
    let fail = matches!(r, Err(Failed::Client | Failed::Target(_)));
    let end = move || {
        if fail {
            target.reset();
        } else {
            target.close();
        }
    };
    match threads {
        None => end(),
        Some(threads) => {
            // Closing wakes the threads; both are waited for.
            let _ = tokio::task::spawn_blocking(end).await;
            for t in threads {
                let _ = t.await;
            }
        }
    }
}
