//! The exporter side of a routed stream ([`export`]): a router call started
//! as the client starts one (see `client`), forwarded to a stream of a
//! target network. A TCP or Unix target is forwarded on the caller's thread,
//! on the call's own runtime ([`bridge`]), with no other thread involved;
//! any other target through the blocking relay
//! ([`forward`](crate::relay::forward)) over the router stream.

use super::client::{
    Call, PlainSocket, RESET_WAIT, Received, RouterTransport, frame, received, reset_frame, start,
    start_call,
};
use super::connect::{Target, dial_target};
use super::drive::StreamRuntime;
use super::pb::FrameType;
use super::{CLOSE_GRACE, MAX_FRAME};
use crate::error::{Error, Result};
use crate::relay::forward;
use crate::stream::{Connect, Stream, Transport};
use crate::util::{deadline, lock, remaining};
use bytes::{BufMut, Bytes, BytesMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
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
    serve(call, target, until, None)
}

/// A stop for exports in progress ([`export_via`], [`Exporting`]): once
/// stopped, an export ends at once, waiting for its peer or forwarding
/// (the client's stream fails, as when the target fails).
#[derive(Default)]
pub(crate) struct Stop {
    stopped: AtomicBool,
    notify: tokio::sync::Notify,
    /// The streams of blocking forwards (targets other than TCP and Unix),
    /// closed on stop.
    streams: Mutex<Vec<Weak<Stream>>>,
}

impl Stop {
    /// Stops every export given this stop, now and later.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.notify.notify_waiters();
        let streams = std::mem::take(&mut *self.lock());
        for s in streams.iter().filter_map(Weak::upgrade) {
            s.close();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Stream>>> {
        lock(&self.streams)
    }

    /// Closes `s` on stop (at once when stopped already).
    fn watch(&self, s: &Arc<Stream>) {
        let mut l = self.lock();
        l.retain(|w| w.strong_count() > 0);
        l.push(Arc::downgrade(s));
        drop(l);
        if self.stopped() {
            s.close();
        }
    }

    /// Whether [`Stop::stop`] was called.
    pub(crate) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Returns once stopped.
    async fn wait(&self) {
        loop {
            let n = self.notify.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if self.stopped() {
                return;
            }
            n.await;
        }
    }
}

/// [`export`] through the router `router` (a lab's router, reached with
/// its TLS configuration), stopped by `stop`: the exporter side of one
/// routed stream of a lease (upstream's `connect_router_stream` in its
/// exporter). `target` must give a TCP or Unix stream for `stop` to end
/// the forwarding (other targets end when either side ends); `name` names
/// the stream in logs and errors.
///
/// # Errors
///
/// As [`export`]; [`Error::Closed`] when stopped.
pub(crate) fn export_via(
    router: Target<'_>,
    token: &str,
    name: &str,
    target: &dyn Connect,
    timeout: Option<Duration>,
    stop: &Stop,
) -> Result<()> {
    let until = deadline(timeout);
    let auth: tonic::metadata::MetadataValue<_> =
        format!("Bearer {token}").parse().map_err(|_| {
            Error::Protocol(format!(
                "{name}: the router token has characters a header cannot carry"
            ))
        })?;
    let rt = StreamRuntime::new(name)?;
    let channel = dial_target(&rt, router, name, until)?;
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert("authorization", auth);
    let call = start_call(rt, channel, name.to_owned(), metadata, None);
    call.rt.settle();
    serve(call, target, until, Some(stop))
}

/// Serves a started call: connects `target` and forwards (see [`export`]).
fn serve(
    call: Call,
    target: &dyn Connect,
    until: Option<Instant>,
    stop: Option<&Stop>,
) -> Result<()> {
    let left = remaining(until);
    let device = match target.connect(left) {
        Ok(d) => d,
        Err(e) => {
            RouterTransport::new(call).into_stream().close();
            return Err(e);
        }
    };
    let device = Arc::new(device);
    log::info!("{}: exporting {}", call.name, device.name());
    let name = call.name.clone();
    let r = match PlainSocket::of(&device) {
        Some(sock) => {
            let dev = device.name().to_string();
            let rt = call.rt.clone();
            let r = rt.block_on(sock.bridge(call, dev, until, stop));
            rt.let_go(Instant::now() + CLOSE_GRACE);
            r
        }
        None => {
            let transport = Arc::new(RouterTransport::new(call));
            let routed = Arc::new(Stream::new(
                name.clone(),
                Routed(transport.clone()),
                Vec::new(),
            ));
            if let Some(stop) = stop {
                stop.watch(&routed);
                stop.watch(&device);
            }
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

/// An export that serves one pairing after another, as `jumpwire router
/// export` does, until [`Exporting::close`] (see [`Exporting::start`]).
pub struct Exporting {
    name: String,
    stop: Arc<Stop>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Exporting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporting")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The pause after a pairing that failed at once, before the next.
const RETRY: Duration = Duration::from_secs(1);

impl Exporting {
    /// Exports `target` through the router at `router_url` with `token`
    /// ([`export`]), one pairing after another, on a thread of its own,
    /// until [`Exporting::close`]. A failed pairing is logged and followed
    /// by the next (after a pause of 1 s when it failed at once); a bad
    /// URL, a token the router refuses and a target that is unsupported or
    /// disabled end the loop (logged).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a URL that is not a router URL or an
    /// empty token (checked before anything starts); [`Error::Io`] when the
    /// thread cannot start.
    pub fn start(router_url: &str, token: &str, target: Arc<dyn Connect>) -> Result<Exporting> {
        let cfg = match crate::url::Endpoint::parse(router_url)? {
            crate::url::Endpoint::Router(cfg) => cfg,
            _ => {
                return Err(Error::invalid(format!(
                    "{router_url}: not a router URL (expected grpc://HOST:PORT or grpcs://HOST:PORT)"
                )));
            }
        };
        if token.is_empty() {
            return Err(Error::invalid("the token is empty"));
        }
        let name = crate::url::Endpoint::Router(cfg).to_string();
        let stop = Arc::new(Stop::default());
        let (url, token, s2, n2) = (
            router_url.to_owned(),
            token.to_owned(),
            stop.clone(),
            name.clone(),
        );
        let thread = crate::sys::spawn("jw-export", move || {
            pairings(&n2, &url, &token, target.as_ref(), &s2);
        })
        .map_err(|e| Error::io("starting the export's thread", &e))?;
        Ok(Exporting {
            name,
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Whether the loop still runs (it ends on [`Exporting::close`] or a
    /// failure another pairing would meet again).
    pub fn running(&self) -> bool {
        let t = lock(&self.thread);
        t.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops: a pairing waited for or in progress ends at once (its client's
    /// stream fails), and the thread is joined. Thread-safe; closing twice
    /// does nothing.
    pub fn close(&self) {
        self.stop.stop();
        let t = lock(&self.thread).take();
        if let Some(t) = t {
            let _ = t.join();
            log::info!("{}: export stopped", self.name);
        }
    }
}

impl Drop for Exporting {
    fn drop(&mut self) {
        self.close();
    }
}

/// The loop of [`Exporting`].
fn pairings(name: &str, url: &str, token: &str, target: &dyn Connect, stop: &Stop) {
    let mut n = 0u64;
    while !stop.stopped() {
        n += 1;
        let t0 = Instant::now();
        let r = start(url, token, None).and_then(|call| serve(call, target, None, Some(stop)));
        match r {
            Ok(()) => log::info!("{name}: pairing {n} ended"),
            Err(_) if stop.stopped() => break,
            Err(
                e @ (Error::InvalidArgument(_)
                | Error::Unauthenticated(_)
                | Error::Unsupported(_)
                | Error::Disabled(_)),
            ) => {
                log::warn!("{name}: pairing {n}: {e}: the export ends");
                break;
            }
            Err(e) => {
                log::warn!("{name}: pairing {n}: {e}");
                if t0.elapsed() < RETRY {
                    // Bounded, and ended by the stop.
                    let until = Instant::now() + RETRY;
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_time()
                        .build();
                    if let Ok(rt) = rt {
                        rt.block_on(async {
                            let _ = tokio::time::timeout_at(until.into(), stop.wait()).await;
                        });
                    }
                }
            }
        }
    }
}

impl PlainSocket {
    /// Forwards between the call and the socket (on the call's runtime).
    async fn bridge(
        self,
        call: Call,
        dev: String,
        until: Option<Instant>,
        stop: Option<&Stop>,
    ) -> Result<()> {
        let io = |e: std::io::Error| Error::io(&dev, &e);
        match self {
            PlainSocket::Tcp(s) => {
                let mut s = tokio::net::TcpStream::from_std(s).map_err(io)?;
                let (rd, wr) = s.split();
                bridge(call, rd, wr, &dev, until, stop).await
            }
            PlainSocket::Unix(s) => {
                let mut s = tokio::net::UnixStream::from_std(s).map_err(io)?;
                let (rd, wr) = s.split();
                bridge(call, rd, wr, &dev, until, stop).await
            }
        }
    }
}

/// Forwards a call to a target's socket halves and back, half-close
/// propagated, until both directions have ended or either fails; then says
/// goodbye as [`RouterTransport::close`] does, or, when the target failed,
/// as [`RouterTransport::fail`] does (the client must not see a clean end).
/// The router's answer (the peer pairing) is awaited until `until`. A
/// `stop` ends it as a failed target does.
async fn bridge<R, W>(
    call: Call,
    mut rd: R,
    mut wr: W,
    dev: &str,
    until: Option<Instant>,
    stop: Option<&Stop>,
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
    let both = async { tokio::try_join!(up, down).map(|_| ()) };
    let r = match stop {
        None => both.await,
        Some(stop) => tokio::select! {
            r = both => r,
            () = stop.wait() => {
                target_failed.store(true, Ordering::Relaxed);
                Err(Error::Closed(format!("{name}: the export was stopped")))
            }
        },
    };
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
