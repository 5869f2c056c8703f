//! A connection inside a router stream: how a lab's client reaches the
//! session of its lease. Upstream's client (js/client/lease.py
//! `handle_async`, js/common/streams.py `connect_router_stream`) opens a
//! `RouterService/Stream` call on the router the controller named, with the
//! router token as its bearer token, and runs a plaintext HTTP/2 gRPC
//! connection to the exporter's session inside it: the connection's bytes
//! are the call's DATA frames, its end a GOAWAY frame and the end of the
//! request stream. [`Connection::tunnel`] does the same on one stream
//! runtime: the router's connection, the call and the session's connection
//! inside it all live there, driven as a session's connection is (see
//! `drive`; the driver watches the router's socket). Its driver streams are
//! calls on the inner connection, as on a local session's.

use super::client::{Answer, CallState, Connection, Received, Tunnel, frame, received, start_call};
use super::connect::{Target, dial_target};
use super::drive::StreamRuntime;
use super::pb::{FrameType, StreamRequest, StreamResponse};
use super::{CONNECTION_WINDOW, MAX_FRAME, STREAM_WINDOW};
use crate::error::{Error, Result};
use bytes::{Buf, Bytes};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio::sync::mpsc::OwnedPermit;
use tonic::Streaming;
use tonic::codegen::{Service, http};
use tonic::metadata::{MetadataMap, MetadataValue};

impl Connection {
    /// Dials the router `router` (within `deadline`), starts a
    /// `RouterService/Stream` call with `token` as its bearer token, and
    /// opens an HTTP/2 connection (plaintext, as upstream's client speaks
    /// to the session through the stream) inside that call. The router
    /// answers the call once the exporter's side has joined it; what the
    /// connection sends meanwhile waits in the call. Whether the router
    /// refused the token shows in [`Connection::tunnel_failure`] once the
    /// first call on the connection fails.
    ///
    /// # Errors
    ///
    /// As [`dial_target`]; [`Error::Protocol`] for a token a header cannot
    /// carry; [`Error::Timeout`] when `deadline` passes first.
    pub(crate) fn tunnel(
        router: Target<'_>,
        token: &str,
        name: &str,
        deadline: Option<Instant>,
    ) -> Result<Connection> {
        let auth = MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
            Error::Protocol(format!(
                "{name}: the router token has characters a header cannot carry"
            ))
        })?;
        let rt = StreamRuntime::new(name)?;
        let outer = dial_target(&rt, router, name, deadline)?;
        let mut md = MetadataMap::new();
        md.insert("authorization", auth);
        let call = start_call(rt.clone(), outer, name.to_owned(), md, None);
        // The call's HEADERS go now: the router pairs on them.
        rt.settle();
        let open = Arc::new(AtomicBool::new(true));
        let io = TunnelIo {
            name: name.to_owned(),
            tx: Some(call.tx),
            reserving: None,
            incoming: Incoming::Waiting(call.answer),
            current: Bytes::new(),
            open: open.clone(),
            shared: call.shared.clone(),
        };
        let once = Once(Arc::new(Mutex::new(Some(io))));
        let ep = tonic::transport::Endpoint::from_static("http://localhost")
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW);
        let inner = rt.block_on(async {
            let connecting = ep.connect_with_connector(once);
            match deadline {
                Some(d) => tokio::time::timeout_at(d.into(), connecting)
                    .await
                    .map_err(|_| Error::Timeout)?,
                None => connecting.await,
            }
            .map_err(|e| Error::Connection(format!("{name}: the session's connection: {e}")))
        })?;
        Ok(Connection::new(
            inner,
            rt,
            Some(Tunnel {
                open,
                shared: call.shared,
            }),
        ))
    }
}

/// Hands the tunnel to the inner connection once; a second connect (the
/// channel redialling on its own after the stream ended) fails, as a
/// tunnel is not dialled again: the session's owner dials a new one.
#[derive(Clone)]
struct Once(Arc<Mutex<Option<TunnelIo>>>);

impl Service<http::Uri> for Once {
    type Response = TokioIo<TunnelIo>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<TunnelIo>>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let io = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        Box::pin(async move {
            io.map(TokioIo::new).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the router stream of this session has ended",
                )
            })
        })
    }
}

/// The receiving side of the tunnel's call.
enum Incoming {
    /// Not answered yet: the router answers once it has paired the call.
    Waiting(Answer),
    Open(Box<Streaming<StreamResponse>>),
    Ended,
}

/// The byte stream of a router call, for an HTTP/2 connection: writes are
/// DATA frames (at most [`MAX_FRAME`] bytes each), reads the payloads of
/// the DATA frames received; the peer's GOAWAY (or the end of its call) is
/// the end of the stream, shutdown sends ours and ends the request stream.
struct TunnelIo {
    name: String,
    tx: Option<mpsc::Sender<StreamRequest>>,
    /// A wait for room in the call's queue, when a write found it full.
    reserving: Option<Reserving>,
    incoming: Incoming,
    /// The rest of the DATA frame being read.
    current: Bytes,
    /// Cleared when the stream ends or is let go of.
    open: Arc<AtomicBool>,
    shared: Arc<CallState>,
}

type Reserving = Pin<
    Box<
        dyn Future<
                Output = std::result::Result<
                    OwnedPermit<StreamRequest>,
                    mpsc::error::SendError<()>,
                >,
            > + Send,
    >,
>;

impl Drop for TunnelIo {
    fn drop(&mut self) {
        self.open.store(false, Ordering::Release);
    }
}

impl TunnelIo {
    /// The stream is over (`why`, or its end): the connection goes.
    fn ended(&mut self, why: Option<Error>) -> io::Result<()> {
        self.open.store(false, Ordering::Release);
        self.incoming = Incoming::Ended;
        match why {
            None => Ok(()),
            Some(e) => {
                self.shared.failed_with(e.clone());
                Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    e.to_string(),
                ))
            }
        }
    }

    fn broken(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::BrokenPipe,
            format!("{}: the router stream has ended", self.name),
        )
    }
}

impl AsyncRead for TunnelIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = &mut *self;
        loop {
            if !me.current.is_empty() {
                let n = me.current.len().min(buf.remaining());
                buf.put_slice(&me.current[..n]);
                me.current.advance(n);
                return Poll::Ready(Ok(()));
            }
            match &mut me.incoming {
                Incoming::Ended => return Poll::Ready(Ok(())),
                Incoming::Waiting(answer) => match ready!(Pin::new(answer).poll(cx)) {
                    Ok(Ok(frames)) => me.incoming = Incoming::Open(Box::new(frames)),
                    Ok(Err(e)) => return Poll::Ready(me.ended(Some(e))),
                    Err(_) => {
                        let e = Error::Connection(format!("{}: the call was dropped", me.name));
                        return Poll::Ready(me.ended(Some(e)));
                    }
                },
                Incoming::Open(frames) => {
                    let next = ready!(tokio_stream::Stream::poll_next(Pin::new(&mut **frames), cx));
                    match next {
                        Some(Ok(f)) => match received(&me.name, f) {
                            Received::Data(payload) => me.current = payload,
                            Received::Goaway => return Poll::Ready(me.ended(None)),
                            Received::Reset(e) => return Poll::Ready(me.ended(Some(e))),
                            Received::Ignored => {}
                        },
                        None => return Poll::Ready(me.ended(None)),
                        Some(Err(st)) => {
                            let e = me.shared.failed(&me.name, &st);
                            return Poll::Ready(me.ended(Some(e)));
                        }
                    }
                }
            }
        }
    }
}

impl AsyncWrite for TunnelIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        let Some(tx) = me.tx.as_ref() else {
            return Poll::Ready(Err(me.broken()));
        };
        let n = buf.len().min(MAX_FRAME);
        let data = || frame(Bytes::copy_from_slice(&buf[..n]), FrameType::Data);
        if me.reserving.is_none() {
            match tx.try_reserve() {
                Ok(permit) => {
                    permit.send(data());
                    return Poll::Ready(Ok(n));
                }
                Err(mpsc::error::TrySendError::Closed(())) => {
                    return Poll::Ready(Err(me.broken()));
                }
                Err(mpsc::error::TrySendError::Full(())) => {
                    me.reserving = Some(Box::pin(tx.clone().reserve_owned()));
                }
            }
        }
        let reserving = me.reserving.as_mut().expect("a reservation");
        let r = ready!(reserving.as_mut().poll(cx));
        me.reserving = None;
        match r {
            Ok(permit) => {
                permit.send(data());
                Poll::Ready(Ok(n))
            }
            Err(_) => Poll::Ready(Err(me.broken())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Our end of the stream, as upstream's `RouterStream.send_eof`: a
    /// GOAWAY frame (if there is room for it) and the end of the request
    /// stream.
    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.reserving = None;
        if let Some(tx) = self.tx.take() {
            let _ = tx.try_send(frame(Bytes::new(), FrameType::Goaway));
        }
        Poll::Ready(Ok(()))
    }
}
