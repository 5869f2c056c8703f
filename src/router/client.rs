//! The router client stream: one `RouterService/Stream` call behind a
//! blocking [`Stream`] ([`connect`]), and the call itself ([`Call`], started
//! by [`start`]) with the frame rules both ends of a routed stream follow.
//! The exporter ([`export`](super::export::export)) starts its call here too
//! and drives it its own way.
//!
//! Each call has a runtime of its own, driven by the caller's thread while
//! it is inside a call and by the library's driver thread otherwise (see
//! `drive`); the connection under it is opened by `connect`.

use super::connect::{Target, dial, dial_target};
use super::drive::{Quiesce, StreamRuntime};
use super::pb::router_service_client::RouterServiceClient;
use super::pb::{FrameType, StreamRequest, StreamResponse};
use super::{CLOSE_GRACE, MAX_FRAME, MAX_MESSAGE};
use crate::error::{Error, Result};
use crate::stream::{Culprit, Forwarded, Stream, Transport};
use crate::url::Endpoint;
use crate::util::{deadline, lock};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::future::Future;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tonic::Streaming;
use tonic::transport::Channel;

/// Frames a stream queues for the gRPC request stream before `send` waits.
const SEND_QUEUE: usize = 8;

/// Most bytes of the reason an RST_STREAM frame carries that are kept.
const REASON_MAX: usize = 200;

/// Maps a gRPC status that ended the call onto the error a caller sees.
fn status_error(name: &str, st: &tonic::Status) -> Error {
    let msg = format!("{name}: {}: {}", st.code().description(), st.message());
    match st.code() {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => Error::Unauthenticated(msg),
        tonic::Code::InvalidArgument | tonic::Code::Unimplemented | tonic::Code::Internal => {
            Error::Protocol(msg)
        }
        _ => Error::Connection(msg),
    }
}

/// A request frame of `kind` carrying `payload`.
pub(super) fn frame(payload: Bytes, kind: FrameType) -> StreamRequest {
    StreamRequest {
        payload,
        frame_type: kind as i32,
    }
}

/// The RST_STREAM frame that tells the peer the stream failed; its payload
/// says why (a jumpwire peer puts it in its error; upstream ignores it).
pub(super) fn reset_frame(why: &str) -> StreamRequest {
    let mut end = why.len().min(REASON_MAX);
    while !why.is_char_boundary(end) {
        end -= 1;
    }
    frame(
        Bytes::copy_from_slice(&why.as_bytes()[..end]),
        FrameType::RstStream,
    )
}

/// How long a failing side waits to queue its RST_STREAM frame (the peer
/// may not be reading); the call is cancelled after it in any case.
pub(super) const RESET_WAIT: Duration = Duration::from_millis(100);

/// What a frame of the response stream means to the receiving side. As
/// upstream's `RouterStream` reads them: DATA is data, GOAWAY the end of the
/// stream, PING and unknown types are ignored. RST_STREAM, which upstream
/// ignores too, is a connection error here: an exporter whose target failed
/// sends one after its data, so that its client never sees a clean end
/// (README.md, "The router").
pub(super) enum Received {
    Data(Bytes),
    Goaway,
    Reset(Error),
    Ignored,
}

/// Reads a frame of the response stream of the call `name`.
pub(super) fn received(name: &str, f: StreamResponse) -> Received {
    match FrameType::try_from(f.frame_type) {
        Ok(FrameType::Data) => Received::Data(f.payload),
        Ok(FrameType::Goaway) => Received::Goaway,
        Ok(FrameType::RstStream) => {
            let why =
                String::from_utf8_lossy(&f.payload[..f.payload.len().min(REASON_MAX)]).into_owned();
            let why = if why.is_empty() {
                String::new()
            } else {
                format!(": {why}")
            };
            Received::Reset(Error::Connection(format!(
                "{name}: the peer reset the stream (RST_STREAM frame){why}"
            )))
        }
        Ok(FrameType::Ping) | Err(_) => Received::Ignored,
    }
}

/// How the gRPC status that ended a call becomes the caller's error: the
/// call's name, the status.
pub(crate) type StatusMap = fn(&str, &tonic::Status) -> Error;

/// What the two sides of a call share with the task that starts it.
#[derive(Default)]
pub(super) struct CallState {
    /// The mapping of the call's final status (a router's when `None`).
    map: Option<StatusMap>,
    /// Why the call ended, once it ended with an error.
    failure: OnceLock<Error>,
    /// Set once the gRPC layer has taken every request frame, the last one
    /// included: what was sent is then in the connection's hands.
    drained: AtomicBool,
    /// Set once the router answered the call (it pairs before answering).
    answered: AtomicBool,
}

impl CallState {
    /// The error for a send into a call that has ended. The request stream
    /// can end a moment before the call's end is recorded: wait a little.
    pub(super) async fn gone(&self, name: &str) -> Error {
        let until = Instant::now() + Duration::from_secs(1);
        loop {
            if let Some(e) = self.failure.get() {
                return e.clone();
            }
            if Instant::now() >= until {
                return Error::Connection(format!("{name}: the router stream ended"));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Why the call ended, once it ended with an error.
    pub(super) fn failure(&self) -> Option<&Error> {
        self.failure.get()
    }

    /// Records that the call failed with `e` (unless it had already failed).
    pub(super) fn failed_with(&self, e: Error) {
        let _ = self.failure.set(e);
    }

    /// Records that the call ended cleanly (a later send fails with this).
    pub(super) fn ended(&self, name: &str) {
        let _ = self
            .failure
            .set(Error::Connection(format!("{name}: the call ended")));
    }

    /// Records that the call ended with `st`, and returns the error for it.
    pub(super) fn failed(&self, name: &str, st: &tonic::Status) -> Error {
        let e = self.map.unwrap_or(status_error)(name, st);
        let _ = self.failure.set(e.clone());
        e
    }
}

/// The request stream of the call: the frames `send` queues, until the
/// sending side is dropped.
struct Outbox {
    rx: mpsc::Receiver<StreamRequest>,
    shared: Arc<CallState>,
}

impl tokio_stream::Stream for Outbox {
    type Item = StreamRequest;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<StreamRequest>> {
        let r = self.rx.poll_recv(cx);
        if let std::task::Poll::Ready(None) = r {
            self.shared.drained.store(true, Ordering::Release);
        }
        r
    }
}

pub(super) type Answer = oneshot::Receiver<Result<Streaming<StreamResponse>>>;

/// A started `RouterService/Stream` call.
pub(super) struct Call {
    pub(super) name: String,
    pub(super) tx: mpsc::Sender<StreamRequest>,
    /// The response stream once the router answers, or why it refused.
    pub(super) answer: Answer,
    /// The task that starts the call and waits for the answer.
    pub(super) task: JoinHandle<()>,
    pub(super) shared: Arc<CallState>,
    /// The runtime the call lives on.
    pub(super) rt: Arc<StreamRuntime>,
}

/// Dials the router and starts the call as a task on a runtime of its own.
pub(super) fn start(router_url: &str, token: &str, timeout: Option<Duration>) -> Result<Call> {
    let Endpoint::Router(cfg) = Endpoint::parse(router_url)? else {
        return Err(Error::invalid(format!(
            "{router_url}: not a router URL (expected grpc://HOST:PORT or grpcs://HOST:PORT)"
        )));
    };
    if token.is_empty() {
        return Err(Error::invalid("the token is empty"));
    }
    let auth: tonic::metadata::MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .map_err(|_| Error::invalid("the token has characters a header cannot carry"))?;
    let name = Endpoint::Router(cfg.clone()).to_string();
    let rt = StreamRuntime::new(&name)?;
    let channel = dial(&rt, &cfg, &name, deadline(timeout))?;
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert("authorization", auth);
    let call = start_call(rt, channel, name, metadata, None);
    // Send the call's HEADERS now: the router pairs on them.
    call.rt.settle();
    log::debug!("{}: router stream started", call.name);
    Ok(call)
}

/// Starts a `RouterService/Stream` call with `metadata` on `channel` (a
/// connection on `rt`) as a task on `rt`; `map` maps its final status (a
/// router's mapping when `None`).
pub(super) fn start_call(
    rt: Arc<StreamRuntime>,
    channel: Channel,
    name: String,
    metadata: tonic::metadata::MetadataMap,
    map: Option<StatusMap>,
) -> Call {
    let mut client = RouterServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let (tx, rx) = mpsc::channel(SEND_QUEUE);
    let shared = Arc::new(CallState {
        map,
        ..CallState::default()
    });
    let mut request = tonic::Request::new(Outbox {
        rx,
        shared: shared.clone(),
    });
    *request.metadata_mut() = metadata;
    let (answer_tx, answer) = oneshot::channel();
    let task = rt.rt().spawn({
        let (name, shared) = (name.clone(), shared.clone());
        async move {
            let r = match client.stream(request).await {
                Ok(r) => {
                    shared.answered.store(true, Ordering::Release);
                    Ok(r.into_inner())
                }
                Err(st) => Err(shared.failed(&name, &st)),
            };
            let _ = answer_tx.send(r);
        }
    });
    Call {
        name,
        tx,
        answer,
        task,
        shared,
        rt,
    }
}

/// An HTTP/2 connection that many calls share: a Jumpstarter session's.
/// Its runtime is driven by whichever caller is inside a call of one of its
/// streams, and by the driver thread otherwise (see `drive`), as a router
/// stream's; it lives as long as the last of its streams and this handle.
pub(crate) struct Connection {
    channel: Channel,
    rt: Arc<StreamRuntime>,
    /// The runtime's connections when this one was made.
    first: usize,
    /// A connection inside a router stream (`tunnel`): that stream's state.
    tunnel: Option<Tunnel>,
    /// Last: waits for the driver to let go of the runtime too.
    _quiesce: Quiesce,
}

/// The router stream a tunnelled connection runs in (see
/// [`Connection::tunnel`](super::tunnel)).
pub(super) struct Tunnel {
    /// Cleared once the stream has ended (either way) or its connection
    /// let go of it.
    pub(super) open: Arc<AtomicBool>,
    /// The call's state: why the router refused or ended it.
    pub(super) shared: Arc<CallState>,
}

impl Drop for Connection {
    /// Lets the calls of streams closed before the peer's GOAWAY came end
    /// (their data still going out), at most [`CLOSE_GRACE`]: the runtime,
    /// and the connection with it, may go once the last stream does.
    fn drop(&mut self) {
        if tokio::runtime::Handle::try_current().is_ok() {
            return;
        }
        let s = self.rt.sockets().clone();
        self.rt.block_on(async {
            let _ = tokio::time::timeout(CLOSE_GRACE, s.all_ended()).await;
        });
    }
}

impl Connection {
    /// Connects to `target` within `deadline` (see
    /// [`dial_target`](super::connect::dial_target)).
    pub(crate) fn dial(target: Target<'_>, name: &str, deadline: Option<Instant>) -> Result<Self> {
        let rt = StreamRuntime::new(name)?;
        let channel = dial_target(&rt, target, name, deadline)?;
        Ok(Self::new(channel, rt, None))
    }

    /// The connection `channel` on `rt`, inside the router stream `tunnel`
    /// if given.
    pub(super) fn new(channel: Channel, rt: Arc<StreamRuntime>, tunnel: Option<Tunnel>) -> Self {
        let first = rt.sockets().dialled();
        Connection {
            channel,
            rt,
            first,
            tunnel,
            _quiesce: Quiesce,
        }
    }

    /// Why the router stream a tunnelled connection runs in failed (the
    /// router refused its token, …), once it did: a better error than the
    /// connection's own.
    pub(crate) fn tunnel_failure(&self) -> Option<Error> {
        self.tunnel.as_ref()?.shared.failure().cloned()
    }

    /// The connection, for the stubs of other services.
    pub(crate) fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Runs `fut` (a call on [`Self::channel`]) on the connection's runtime
    /// from the caller's thread until it completes or `deadline` passes
    /// ([`Error::Timeout`]).
    pub(crate) fn run<T>(
        &self,
        deadline: Option<Instant>,
        fut: impl Future<Output = T>,
    ) -> Result<T> {
        self.rt.block_on(async {
            match deadline {
                Some(d) => tokio::time::timeout_at(d.into(), fut)
                    .await
                    .map_err(|_| Error::Timeout),
                None => Ok(fut.await),
            }
        })
    }

    /// Whether the connection still holds its first socket: the peer has
    /// not closed it, it has not failed, and the channel has not dialled
    /// again on its own (the server there may be another one: a session
    /// behind the same path is another session, with other drivers).
    pub(crate) fn alive(&self) -> bool {
        let s = self.rt.sockets();
        s.connected()
            && s.dialled() == self.first
            && self
                .tunnel
                .as_ref()
                .is_none_or(|t| t.open.load(Ordering::Acquire))
    }

    /// Opens a stream: a `RouterService/Stream` call with `metadata` on the
    /// connection, usable once the server has answered it (its response
    /// HEADERS), which is waited for until `deadline`. Upstream's session
    /// never ends such a call: the stream is over for both sides once each
    /// has sent its GOAWAY, and the call is then cancelled (RST_STREAM)
    /// instead of waiting for the server's trailers: `close` returns once
    /// ours went out, and a task on the connection's runtime cancels the
    /// call when the peer's GOAWAY comes or [`CLOSE_GRACE`] later. `map` maps the status
    /// of a call the server refuses or ends.
    ///
    /// # Errors
    ///
    /// The error `map` makes of the server's refusal; [`Error::Timeout`]
    /// when `deadline` passes first (the call is cancelled).
    pub(crate) fn stream(
        &self,
        name: String,
        metadata: tonic::metadata::MetadataMap,
        map: StatusMap,
        deadline: Option<Instant>,
    ) -> Result<Stream> {
        let call = start_call(
            self.rt.clone(),
            self.channel.clone(),
            name,
            metadata,
            Some(map),
        );
        let mut t = RouterTransport::new(call);
        t.ends_at_goaway = true;
        if let Err(e) = t.paired(deadline) {
            // Refused, or not answered in time: the call goes now
            // (RST_STREAM), not when the server answers it.
            t.task.abort();
            let rt = t.rt.clone();
            drop(t);
            rt.settle();
            return Err(e);
        }
        log::debug!("{}: stream open", t.name);
        Ok(t.into_stream())
    }
}

/// Opens a router stream: dials the router named by `router_url` and starts
/// a `RouterService/Stream` call with `token` as its bearer token. Returns
/// once the connection is up and the call is started; a router that refuses
/// the token is reported by the first `receive` or `send` as
/// [`Error::Unauthenticated`].
///
/// `router_url` is `grpc://HOST:PORT` (plaintext HTTP/2) or
/// `grpcs://HOST:PORT[?ca=FILE][&insecure=1]` (TLS, ALPN `h2`). Over TLS the
/// router's certificate is verified against the system roots, or against the
/// PEM certificates in `ca` (a CA, or the router's own certificate, e.g. from
/// [`Router::certificate`](super::Router::certificate)); `insecure=1`
/// accepts any certificate for any name. (Upstream Jumpstarter's insecure
/// mode instead fetches the presented chain and trusts it for that one
/// connection; in effect both skip verification.)
///
/// # Errors
///
/// [`Error::InvalidArgument`] for a URL that is not a router, an empty
/// token, or a `ca` file that cannot be read or holds no certificate;
/// [`Error::Connection`] when the router cannot be reached or the TLS
/// handshake fails (certificate refused, not a TLS server);
/// [`Error::Timeout`] when `timeout` passes first.
pub fn connect(router_url: &str, token: &str, timeout: Option<Duration>) -> Result<Stream> {
    Ok(RouterTransport::new(start(router_url, token, timeout)?).into_stream())
}

/// The receiving side of a call.
enum Incoming {
    /// Not answered yet: the router answers once it has paired the call.
    Waiting(Answer),
    Open(Streaming<StreamResponse>),
    /// End of stream (`None`) or the error every later receive returns.
    Ended(Option<Error>),
}

struct Reader {
    incoming: Incoming,
    /// The rest of the DATA frame being received.
    current: Bytes,
    /// After a GOAWAY: the task that reads the call to its end.
    drain: Option<JoinHandle<()>>,
}

pub(super) struct RouterTransport {
    name: String,
    tx: Mutex<Option<mpsc::Sender<StreamRequest>>>,
    reader: Mutex<Reader>,
    shared: Arc<CallState>,
    task: JoinHandle<()>,
    /// Set by `close`: wakes a blocked `send` or `receive`.
    closing: watch::Sender<bool>,
    /// A task queueing the rest of a send that its deadline cut short (and
    /// the GOAWAY of a `send_eof` made meanwhile).
    flusher: Mutex<Option<JoinHandle<Result<()>>>>,
    /// The peer's GOAWAY ends the call for `close` (a session's calls,
    /// which the server never ends: see [`Connection::stream`]); a router
    /// call is waited on until it ends.
    ends_at_goaway: bool,
    /// The call's runtime goes after everything that lives on it.
    rt: Arc<StreamRuntime>,
    /// Last: waits for the driver to let go of the runtime too.
    _quiesce: Quiesce,
}

/// Reads the rest of a call whose stream has ended for us, recording how the
/// call ended.
async fn drain(mut frames: Streaming<StreamResponse>, shared: Arc<CallState>, name: String) {
    loop {
        match frames.message().await {
            Ok(Some(_)) => {}
            Ok(None) => return shared.ended(&name),
            Err(st) => {
                shared.failed(&name, &st);
                return;
            }
        }
    }
}

impl Reader {
    /// Waits for the next thing the call brings: the answer, or a frame.
    /// Cancel-safe: an interrupted wait loses nothing.
    async fn advance(&mut self, shared: &Arc<CallState>, name: &str) {
        match &mut self.incoming {
            Incoming::Waiting(answer) => {
                self.incoming = match answer.await {
                    Ok(Ok(frames)) => Incoming::Open(frames),
                    Ok(Err(e)) => Incoming::Ended(Some(e)),
                    Err(_) => Incoming::Ended(Some(Error::Connection(format!(
                        "{name}: the call was dropped"
                    )))),
                };
            }
            Incoming::Open(frames) => {
                let r = frames.message().await;
                match r {
                    Ok(Some(f)) => match received(name, f) {
                        Received::Data(payload) => self.current = payload,
                        Received::Goaway => {
                            // End of stream for us; the call stays up so that
                            // our own direction can go on.
                            if let Incoming::Open(frames) =
                                std::mem::replace(&mut self.incoming, Incoming::Ended(None))
                            {
                                self.drain =
                                    Some(tokio::spawn(drain(frames, shared.clone(), name.into())));
                            }
                        }
                        Received::Reset(e) => {
                            let _ = shared.failure.set(e.clone());
                            self.incoming = Incoming::Ended(Some(e));
                        }
                        Received::Ignored => {}
                    },
                    Ok(None) => {
                        shared.ended(name);
                        self.incoming = Incoming::Ended(None);
                    }
                    Err(st) => self.incoming = Incoming::Ended(Some(shared.failed(name, &st))),
                }
            }
            Incoming::Ended(_) => {}
        }
    }
}

impl RouterTransport {
    pub(super) fn new(call: Call) -> RouterTransport {
        RouterTransport {
            name: call.name,
            tx: Mutex::new(Some(call.tx)),
            reader: Mutex::new(Reader {
                incoming: Incoming::Waiting(call.answer),
                current: Bytes::new(),
                drain: None,
            }),
            shared: call.shared,
            task: call.task,
            closing: watch::channel(false).0,
            flusher: Mutex::new(None),
            ends_at_goaway: false,
            rt: call.rt,
            _quiesce: Quiesce,
        }
    }

    pub(super) fn into_stream(self) -> Stream {
        Stream::new(self.name.clone(), self, Vec::new())
    }

    fn closed(&self) -> Error {
        Error::Closed(format!("{}: stream is closed", self.name))
    }

    fn sender(&self) -> Result<mpsc::Sender<StreamRequest>> {
        lock(&self.tx).clone().ok_or_else(|| self.closed())
    }

    /// Runs `fut` on the caller's thread until it completes, `deadline`
    /// passes ([`Error::Timeout`]) or the stream is closed.
    fn wait<T>(&self, deadline: Option<Instant>, fut: impl Future<Output = T>) -> Result<T> {
        let mut closing = self.closing.subscribe();
        self.rt.block_on(async {
            let timer = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                r = fut => Ok(r),
                _ = closing.wait_for(|c| *c) => Err(self.closed()),
                () = timer => Err(Error::Timeout),
            }
        })
    }

    /// [`Self::wait`] for a `receive`: waiting outside the runtime (see
    /// [`StreamRuntime::wait_outside`]), so that a `send` meanwhile writes
    /// its frames itself.
    fn wait_receiving<T>(
        &self,
        deadline: Option<Instant>,
        fut: impl Future<Output = T>,
    ) -> Result<T> {
        let mut closing = self.closing.subscribe();
        let r = self.rt.wait_outside(
            async {
                tokio::select! {
                    biased;
                    r = fut => Ok(r),
                    _ = closing.wait_for(|c| *c) => Err(self.closed()),
                }
            },
            deadline,
        );
        r.unwrap_or(Err(Error::Timeout))
    }

    /// Waits (until `deadline`) for the rest of an earlier send that a task
    /// is queueing, and returns how that ended.
    fn wait_flushed(&self, deadline: Option<Instant>) -> Result<()> {
        let mut f = lock(&self.flusher);
        let Some(task) = f.as_mut() else {
            return Ok(());
        };
        let r = self.wait(deadline, task)?;
        *f = None;
        r.unwrap_or_else(|e| Err(Error::Internal(format!("{}: send task: {e}", self.name))))
    }

    /// Hands `frames` (the rest of a send, or its GOAWAY) to a task that
    /// queues them in order after whatever an earlier task still queues.
    fn flush_in_background(&self, tx: mpsc::Sender<StreamRequest>, frames: Vec<StreamRequest>) {
        let mut f = lock(&self.flusher);
        let before = f.take();
        let (shared, name) = (self.shared.clone(), self.name.clone());
        *f = Some(self.rt.rt().spawn(async move {
            if let Some(before) = before {
                before
                    .await
                    .unwrap_or_else(|e| Err(Error::Internal(format!("{name}: send task: {e}"))))?;
            }
            for frame in frames {
                if tx.send(frame).await.is_err() {
                    return Err(shared.gone(&name).await);
                }
            }
            Ok(())
        }));
    }
}

/// A TCP or Unix stream's connected socket, duplicated (non-blocking) for a
/// call's runtime: what an exporter's target and a forward's socket side
/// are bridged to a call through.
pub(super) enum PlainSocket {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl PlainSocket {
    /// The socket of a TCP or Unix stream (`None` for other transports).
    pub(super) fn of(s: &Stream) -> Option<PlainSocket> {
        Self::dup(s.socket()?)
    }

    /// `fd` duplicated, if it is a TCP or Unix socket.
    fn dup(fd: BorrowedFd<'_>) -> Option<PlainSocket> {
        let domain = socket2::SockRef::from(&fd).domain().ok()?;
        let owned = fd.try_clone_to_owned().ok()?;
        socket2::SockRef::from(&owned).set_nonblocking(true).ok()?;
        if domain == socket2::Domain::IPV4 || domain == socket2::Domain::IPV6 {
            Some(PlainSocket::Tcp(owned.into()))
        } else if domain == socket2::Domain::UNIX {
            Some(PlainSocket::Unix(owned.into()))
        } else {
            None
        }
    }
}

impl RouterTransport {
    /// [`Transport::forward_socket`] on the stream's runtime, driven by the
    /// calling thread throughout: the socket's bytes go out as DATA frames
    /// as they are read, the frames' bytes are written to the socket as
    /// they come; the socket's end is a GOAWAY, the peer's GOAWAY shuts the
    /// socket's sending side.
    fn bridge_socket(&self, own: &Stream, peer: &Stream, sock: PlainSocket) -> Forwarded {
        let peer_io = |e: std::io::Error| (Error::io(peer.name(), &e), Some(Culprit::Peer));
        let mut reader = lock(&self.reader);
        let mut closing = self.closing.subscribe();
        self.rt.sent();
        self.rt
            .block_on(async {
                let run = async {
                    match sock {
                        PlainSocket::Tcp(s) => {
                            let mut s = tokio::net::TcpStream::from_std(s).map_err(peer_io)?;
                            let (rd, wr) = s.split();
                            self.bridge(own, peer, &mut reader, rd, wr).await
                        }
                        PlainSocket::Unix(s) => {
                            let mut s = tokio::net::UnixStream::from_std(s).map_err(peer_io)?;
                            let (rd, wr) = s.split();
                            self.bridge(own, peer, &mut reader, rd, wr).await
                        }
                    }
                };
                tokio::select! {
                    biased;
                    _ = closing.wait_for(|c| *c) => Err((self.closed(), None)),
                    r = run => r,
                }
            })
            .map_err(|(e, culprit)| {
                if culprit != Some(Culprit::Peer) {
                    return (e, culprit);
                }
                if peer.is_closed() {
                    // Closed under the forward by its owner: nobody failed.
                    return (self.closed_peer(peer), None);
                }
                // Never a clean end for our peer when the socket failed.
                drop(reader);
                self.fail(&format!("the forwarded {} failed: {e}", peer.name()));
                (e, culprit)
            })
    }

    /// The error of a forward whose socket stream `peer` was closed under it.
    fn closed_peer(&self, peer: &Stream) -> Error {
        Error::Closed(format!("{}: stream is closed", peer.name()))
    }

    /// Both directions of [`Self::bridge_socket`] over the socket's halves.
    async fn bridge<R, W>(
        &self,
        own: &Stream,
        peer: &Stream,
        reader: &mut Reader,
        mut rd: R,
        mut wr: W,
    ) -> Forwarded
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let peer_io = |e: std::io::Error| (Error::io(peer.name(), &e), Some(Culprit::Peer));
        let mine = |e: Error| (e, Some(Culprit::Own));
        // Socket -> call: one buffer, each frame split off what was read
        // into it, the room left over taking the next read.
        let up = async {
            let Some(tx) = lock(&self.tx).clone() else {
                return Err((self.closed(), None));
            };
            let mut buf = BytesMut::new();
            loop {
                buf.reserve(MAX_FRAME);
                let mut room = (&mut buf).limit(MAX_FRAME);
                let n = rd.read_buf(&mut room).await.map_err(peer_io)?;
                if n == 0 {
                    if peer.is_closed() {
                        // Shut by its owner's close, not ended by its peer.
                        return Err((self.closed_peer(peer), None));
                    }
                    break;
                }
                peer.count_received(n);
                if tx
                    .send(frame(buf.split().freeze(), FrameType::Data))
                    .await
                    .is_err()
                {
                    return Err(mine(self.shared.gone(&self.name).await));
                }
                own.count_sent(n);
            }
            // The socket's end: GOAWAY, then the end of the request stream.
            drop(tx);
            let tx = lock(&self.tx).take();
            if let Some(tx) = tx {
                log::debug!("{}: send_eof (the forwarded socket ended)", self.name);
                if tx
                    .send(frame(Bytes::new(), FrameType::Goaway))
                    .await
                    .is_err()
                {
                    return Err(mine(self.shared.gone(&self.name).await));
                }
            }
            Ok(())
        };
        // Call -> socket.
        let down = async {
            loop {
                if !reader.current.is_empty() {
                    let data = std::mem::take(&mut reader.current);
                    own.count_received(data.len());
                    wr.write_all(&data).await.map_err(peer_io)?;
                    peer.count_sent(data.len());
                    continue;
                }
                match &reader.incoming {
                    Incoming::Ended(None) => break,
                    Incoming::Ended(Some(e)) => return Err(mine(e.clone())),
                    _ => reader.advance(&self.shared, &self.name).await,
                }
            }
            wr.shutdown().await.map_err(peer_io)
        };
        tokio::try_join!(up, down).map(|_| ())
    }
}

impl Transport for RouterTransport {
    fn forward_socket(
        &self,
        own: &Stream,
        peer: &Stream,
        sock: BorrowedFd<'_>,
    ) -> Option<Forwarded> {
        // A call that failed, or one with a send still being queued in the
        // background, goes through the pumps (which report those as they do).
        if self.shared.failure.get().is_some() || lock(&self.flusher).is_some() {
            return None;
        }
        let sock = PlainSocket::dup(sock)?;
        Some(self.bridge_socket(own, peer, sock))
    }

    fn send(&self, data: &[u8], deadline: Option<Instant>) -> Result<()> {
        if let Some(e) = self.shared.failure.get() {
            return Err(e.clone());
        }
        self.wait_flushed(deadline)?;
        let tx = self.sender()?;
        if data.is_empty() {
            return Ok(());
        }
        self.rt.sent();
        // The frames go in order, each waiting at most until the deadline.
        // Nothing queued by then: a timeout, nothing sent. Some: the send is
        // accepted and a task queues the rest (later sends wait for it).
        let queued = std::cell::Cell::new(0);
        let r = self.wait(deadline, async {
            for chunk in data.chunks(MAX_FRAME) {
                let f = frame(Bytes::copy_from_slice(chunk), FrameType::Data);
                if tx.send(f).await.is_err() {
                    return Err(self.shared.gone(&self.name).await);
                }
                queued.set(queued.get() + chunk.len());
            }
            // The connection writes what was queued.
            self.rt.until_idle().await;
            Ok(())
        });
        match r {
            Ok(r) => r,
            Err(Error::Timeout) if queued.get() > 0 => {
                let rest = Bytes::copy_from_slice(&data[queued.get()..]);
                let frames = (0..rest.len())
                    .step_by(MAX_FRAME)
                    .map(|at| {
                        let end = (at + MAX_FRAME).min(rest.len());
                        frame(rest.slice(at..end), FrameType::Data)
                    })
                    .collect();
                self.flush_in_background(tx, frames);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn send_eof(&self) -> Result<()> {
        let Some(tx) = lock(&self.tx).take() else {
            return Ok(());
        };
        self.rt.sent();
        // GOAWAY, then the end of the request stream, as upstream RouterStream:
        // at once if there is room, else (or after a send still being
        // queued) by a task, so that send_eof never waits on the peer.
        let goaway = frame(Bytes::new(), FrameType::Goaway);
        if lock(&self.flusher).is_some() {
            self.flush_in_background(tx, vec![goaway]);
            return Ok(());
        }
        let r = match tx.try_send(goaway) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Err(self.rt.block_on(self.shared.gone(&self.name)))
            }
            Err(mpsc::error::TrySendError::Full(f)) => {
                self.flush_in_background(tx, vec![f]);
                return Ok(());
            }
        };
        drop(tx);
        self.rt.settle();
        r
    }

    fn flush(&self, deadline: Option<Instant>) -> Result<()> {
        self.wait_flushed(deadline)
    }

    fn receive(&self, buf: &mut [u8], deadline: Option<Instant>) -> Result<Option<usize>> {
        let mut r = lock(&self.reader);
        loop {
            if !r.current.is_empty() {
                let n = r.current.len().min(buf.len());
                buf[..n].copy_from_slice(&r.current[..n]);
                r.current.advance(n);
                return Ok(Some(n));
            }
            if let Incoming::Ended(end) = &r.incoming {
                return end.clone().map_or(Ok(None), Err);
            }
            let r = &mut *r;
            self.wait_receiving(deadline, r.advance(&self.shared, &self.name))?;
        }
    }

    fn close(&self) {
        let until = Instant::now() + CLOSE_GRACE;
        // Wake a blocked send or receive (they return Closed).
        self.closing.send_replace(true);
        let tx = lock(&self.tx).take();
        let flusher = lock(&self.flusher).take();
        let flusher_abort = flusher.as_ref().map(JoinHandle::abort_handle);
        let mut r = lock(&self.reader);
        let shared = &self.shared;
        // A call that has ended (an error, the router's end of it) has
        // nothing left to deliver: no grace then.
        if shared.failure.get().is_none() {
            self.rt.block_on(async {
                let until = tokio::time::Instant::from_std(until);
                if shared.answered.load(Ordering::Acquire) {
                    if let Incoming::Waiting(answer) = &mut r.incoming {
                        if let Ok(Ok(frames)) = answer.try_recv() {
                            r.incoming = Incoming::Open(frames);
                        }
                    }
                }
                // What is still queued goes first, then GOAWAY and the end
                // of the request stream.
                let flush = async {
                    if let Some(f) = flusher {
                        let _ = f.await;
                    }
                    if let Some(tx) = tx {
                        let _ = tx.send(frame(Bytes::new(), FrameType::Goaway)).await;
                    }
                };
                // Done once the call is over: the peer has finished too (a
                // router drops the frames it has not read yet when a call
                // is cancelled, so a paired call is let go of only then),
                // or it failed; an unpaired call has nobody to deliver to
                // and is done once the gRPC layer took every frame.
                let reader = &mut *r;
                if self.ends_at_goaway {
                    // A session's call: `close` waits until everything of
                    // ours went to the gRPC layer (reading the peer's frames
                    // meanwhile, so that a peer blocked on sending to us goes
                    // on reading). The call is over once the peer's GOAWAY
                    // came too, which a task waits for (at most until the
                    // grace ends; a UDP driver, or a console that does not
                    // end on our EOF, never sends one) before it cancels the
                    // call: `close` does not wait for it.
                    let mut frames =
                        match std::mem::replace(&mut reader.incoming, Incoming::Ended(None)) {
                            Incoming::Open(frames) => Some(frames),
                            other => {
                                reader.incoming = other;
                                None
                            }
                        };
                    let ours = async {
                        flush.await;
                        while !shared.drained.load(Ordering::Acquire)
                            && shared.failure.get().is_none()
                        {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    };
                    let mut theirs_ended = frames.is_none();
                    let _ = tokio::time::timeout_at(until, async {
                        let mut ours = std::pin::pin!(ours);
                        loop {
                            tokio::select! {
                                () = &mut ours => return,
                                f = async {
                                    match frames.as_mut() {
                                        Some(frames) => frames.message().await,
                                        None => std::future::pending().await,
                                    }
                                }, if !theirs_ended => {
                                    theirs_ended = !matches!(
                                        f.map(|f| f.map(|f| received("", f))),
                                        Ok(Some(Received::Data(_) | Received::Ignored))
                                    );
                                }
                            }
                        }
                    })
                    .await;
                    if let (Some(mut frames), false) = (frames, theirs_ended) {
                        // The driver thread runs it when the socket is ready;
                        // the connection's end waits for it.
                        self.rt.sent();
                        let ending = self.rt.sockets().ending();
                        tokio::spawn(async move {
                            let _ending = ending;
                            let _ = tokio::time::timeout_at(until, async {
                                while let Ok(Some(f)) = frames.message().await {
                                    if !matches!(
                                        received("", f),
                                        Received::Data(_) | Received::Ignored
                                    ) {
                                        return;
                                    }
                                }
                            })
                            .await;
                            // Dropped: the call is cancelled (RST_STREAM).
                        });
                    }
                    return;
                }
                let over = async {
                    if let Incoming::Open(frames) = &mut reader.incoming {
                        while let Ok(Some(_)) = frames.message().await {}
                    } else if let Some(d) = &mut reader.drain {
                        let _ = d.await;
                    } else {
                        while !shared.drained.load(Ordering::Acquire)
                            && shared.failure.get().is_none()
                        {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                };
                let (mut flush, mut over) = (std::pin::pin!(flush), std::pin::pin!(over));
                let mut flushed = false;
                let _ = tokio::time::timeout_at(until, async {
                    loop {
                        tokio::select! {
                            () = &mut flush, if !flushed => flushed = true,
                            () = &mut over => return,
                        }
                    }
                })
                .await;
            });
        }
        if let Some(a) = flusher_abort {
            a.abort();
        }
        r.incoming = Incoming::Ended(Some(self.closed()));
        r.current = Bytes::new();
        if let Some(d) = r.drain.take() {
            d.abort();
        }
        self.task.abort();
        self.rt.let_go(until);
    }
}

impl RouterTransport {
    /// Waits (until `deadline`) for the router's answer: the peer paired.
    pub(super) fn paired(&self, deadline: Option<Instant>) -> Result<()> {
        let mut r = lock(&self.reader);
        if let Incoming::Waiting(_) = r.incoming {
            let r = &mut *r;
            self.wait(deadline, r.advance(&self.shared, &self.name))?;
        }
        match &r.incoming {
            Incoming::Ended(Some(e)) => Err(e.clone()),
            _ => Ok(()),
        }
    }

    /// Ends the call as failed because of `why` (the other end of a
    /// forward failed): an RST_STREAM frame after what was sent, then the
    /// call is cancelled on `close`. The peer's receive fails: a jumpwire
    /// peer's at the frame, an upstream one's (it ignores the frame) at the
    /// error status the router ends its call with once ours is cancelled.
    pub(super) fn fail(&self, why: &str) {
        if let Some(f) = lock(&self.flusher).take() {
            f.abort();
        }
        if let Some(tx) = lock(&self.tx).take() {
            let rst = reset_frame(why);
            let _ = self.wait(Some(Instant::now() + RESET_WAIT), async {
                if tx.send(rst).await.is_ok() {
                    self.rt.until_idle().await;
                }
            });
        }
        let _ = self
            .shared
            .failure
            .set(Error::Connection(format!("{}: {why}", self.name)));
    }
}
