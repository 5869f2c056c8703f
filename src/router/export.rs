//! The exporter side of a routed stream ([`export`]): a router call started
//! as the client starts one (see `client`), forwarded to a stream of a
//! target network. A TCP or Unix target is forwarded on the caller's thread,
//! on the call's own runtime ([`bridge`]), with no other thread involved;
//! any other target through the blocking relay
//! ([`forward`](crate::relay::forward)) over the router stream.

use super::client::{
    Call, RESET_WAIT, Received, RouterTransport, frame, received, reset_frame, start,
};
use super::pb::FrameType;
use super::{CLOSE_GRACE, MAX_FRAME};
use crate::error::{Error, Result};
use crate::relay::forward;
use crate::stream::{Connect, Stream, Transport};
use crate::util::{deadline, remaining};
use bytes::{BufMut, Bytes, BytesMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A router stream whose transport the exporter keeps a hold of (to fail
/// it when the target fails).
struct Routed(Arc<RouterTransport>);

impl Transport for Routed {
    fn send(&self, data: &[u8], deadline: Option<Instant>) -> Result<()> {
        self.0.send(data, deadline)
    }

    fn send_eof(&self) -> Result<()> {
        self.0.send_eof()
    }

    fn receive(&self, buf: &mut [u8], deadline: Option<Instant>) -> Result<Option<usize>> {
        self.0.receive(buf, deadline)
    }

    fn close(&self) {
        self.0.close();
    }
}

/// The exporter side of a routed stream (upstream `connect_router_stream`):
/// opens a router stream with `token`, opens a stream of `target`, and
/// forwards both ways, half-close propagated, until both directions have
/// ended or either side fails. `timeout` bounds reaching the router (TCP,
/// TLS and the HTTP/2 handshake), connecting `target`, and waiting for the
/// peer (the router answers once a client with the same token came): with
/// no client by then, [`Error::Timeout`] and the router forgets the call.
/// Forwarding has no time limit. When the target fails (refuses, resets),
/// the client's stream fails too ([`Error::Connection`]), never ends
/// cleanly: an RST_STREAM frame goes after the data, and the call is
/// cancelled.
///
/// A TCP or Unix target is forwarded on the calling thread, on the call's
/// own runtime (no other thread); other targets through
/// [`forward`](crate::relay::forward).
///
/// # Errors
///
/// Those of [`connect`](super::connect()) and of connecting `target`; then
/// those of the forwarding (a refused token surfaces here as
/// [`Error::Unauthenticated`]).
pub fn export(
    router_url: &str,
    token: &str,
    target: &dyn Connect,
    timeout: Option<Duration>,
) -> Result<()> {
    let until = deadline(timeout);
    let call = start(router_url, token, timeout)?;
    let left = remaining(until);
    let device = match target.connect(left) {
        Ok(d) => d,
        Err(e) => {
            RouterTransport::new(call).into_stream().close();
            return Err(e);
        }
    };
    log::info!("{}: exporting {}", call.name, device.name());
    let name = call.name.clone();
    let r = match TargetSocket::of(&device) {
        Some(sock) => {
            let dev = device.name().to_string();
            let rt = call.rt.clone();
            let r = rt.block_on(sock.bridge(call, dev, until));
            rt.let_go(Instant::now() + CLOSE_GRACE);
            r
        }
        None => {
            let transport = Arc::new(RouterTransport::new(call));
            let routed = Stream::new(name.clone(), Routed(transport.clone()), Vec::new());
            let r = transport
                .paired(until)
                .and_then(|()| forward(&routed, &device));
            if let Err(e) = &r {
                // Never a clean end for the client when the target failed.
                transport.fail(&format!("the exporter's forward failed: {e}"));
            }
            routed.close();
            r
        }
    };
    log::info!("{name}: export of {} ended: {r:?}", device.name());
    device.close();
    r
}

/// A target's connected socket, duplicated for the call's runtime.
enum TargetSocket {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl TargetSocket {
    /// The socket of a TCP or Unix stream (`None` for other transports).
    fn of(s: &Stream) -> Option<TargetSocket> {
        let fd = s.socket()?;
        let domain = socket2::SockRef::from(&fd).domain().ok()?;
        let owned = fd.try_clone_to_owned().ok()?;
        socket2::SockRef::from(&owned).set_nonblocking(true).ok()?;
        if domain == socket2::Domain::IPV4 || domain == socket2::Domain::IPV6 {
            Some(TargetSocket::Tcp(owned.into()))
        } else if domain == socket2::Domain::UNIX {
            Some(TargetSocket::Unix(owned.into()))
        } else {
            None
        }
    }

    /// Forwards between the call and the socket (on the call's runtime).
    async fn bridge(self, call: Call, dev: String, until: Option<Instant>) -> Result<()> {
        let io = |e: std::io::Error| Error::io(&dev, &e);
        match self {
            TargetSocket::Tcp(s) => {
                let mut s = tokio::net::TcpStream::from_std(s).map_err(io)?;
                let (rd, wr) = s.split();
                bridge(call, rd, wr, &dev, until).await
            }
            TargetSocket::Unix(s) => {
                let mut s = tokio::net::UnixStream::from_std(s).map_err(io)?;
                let (rd, wr) = s.split();
                bridge(call, rd, wr, &dev, until).await
            }
        }
    }
}

/// Forwards a call to a target's socket halves and back, half-close
/// propagated, until both directions have ended or either fails; then says
/// goodbye as [`RouterTransport::close`] does, or, when the target failed,
/// as [`RouterTransport::fail`] does (the client must not see a clean end).
/// The router's answer (the peer pairing) is awaited until `until`.
async fn bridge<R, W>(
    call: Call,
    mut rd: R,
    mut wr: W,
    dev: &str,
    until: Option<Instant>,
) -> Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Call {
        name,
        tx,
        answer,
        task,
        shared,
        rt,
    } = call;
    let target_failed = AtomicBool::new(false);
    let io = |e: std::io::Error| {
        target_failed.store(true, Ordering::Relaxed);
        Error::io(dev, &e)
    };
    let goaway_sent = AtomicBool::new(false);
    let mut frames = None;
    // Target -> router.
    let up = async {
        // One buffer: each frame (at most MAX_FRAME) is split off what was
        // read into it, and the room left over takes the next read.
        let mut buf = BytesMut::new();
        loop {
            buf.reserve(MAX_FRAME);
            let mut room = (&mut buf).limit(MAX_FRAME);
            if rd.read_buf(&mut room).await.map_err(io)? == 0 {
                break;
            }
            if tx
                .send(frame(buf.split().freeze(), FrameType::Data))
                .await
                .is_err()
            {
                return Err(shared.gone(&name).await);
            }
        }
        goaway_sent.store(true, Ordering::Relaxed);
        if tx
            .send(frame(Bytes::new(), FrameType::Goaway))
            .await
            .is_err()
        {
            return Err(shared.gone(&name).await);
        }
        Ok(())
    };
    // Router -> target.
    let down = async {
        let answered = async {
            match answer.await {
                Ok(r) => r,
                Err(_) => Err(Error::Internal(format!("{name}: the call was dropped"))),
            }
        };
        let answered = match until {
            Some(d) => tokio::time::timeout_at(d.into(), answered)
                .await
                .map_err(|_| Error::Timeout)?,
            None => answered.await,
        };
        let f = frames.insert(answered?);
        loop {
            match f.message().await {
                Ok(Some(m)) => match received(&name, m) {
                    Received::Data(payload) => wr.write_all(&payload).await.map_err(io)?,
                    Received::Goaway => break,
                    Received::Reset(e) => return Err(e),
                    Received::Ignored => {}
                },
                Ok(None) => {
                    shared.ended(&name);
                    break;
                }
                Err(st) => return Err(shared.failed(&name, &st)),
            }
        }
        wr.shutdown().await.map_err(io)
    };
    let r = tokio::try_join!(up, down).map(|_| ());
    if let Err(e) = &r {
        if target_failed.load(Ordering::Relaxed) {
            // RST_STREAM after what was sent, written before the call is
            // cancelled (by the abort below).
            let rst = reset_frame(&format!("the exporter's target failed: {e}"));
            if tokio::time::timeout(RESET_WAIT, tx.send(rst)).await.is_ok() {
                rt.until_idle().await;
            }
        }
        if target_failed.load(Ordering::Relaxed) || *e == Error::Timeout {
            // Cancelled: the router ends the peer's call with an error, or
            // forgets a caller still waiting.
            drop(frames);
            task.abort();
            drop(tx);
            return r;
        }
    }
    // Goodbye: GOAWAY unless sent, the end of the request stream, and the
    // call's end awaited (bounded) so that the last frames reach the peer.
    let until = tokio::time::Instant::now() + CLOSE_GRACE;
    if !goaway_sent.load(Ordering::Relaxed) {
        let goaway = tx.send(frame(Bytes::new(), FrameType::Goaway));
        let _ = tokio::time::timeout_at(until, goaway).await;
    }
    drop(tx);
    if let Some(f) = &mut frames {
        let rest = async { while let Ok(Some(_)) = f.message().await {} };
        let _ = tokio::time::timeout_at(until, rest).await;
    }
    task.abort();
    r
}
