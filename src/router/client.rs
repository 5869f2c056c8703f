//! The router client stream: one `RouterService/Stream` call behind a blocking
//! [`Stream`], and the exporter side ([`export`]) that forwards a router stream
//! to a stream of a target network.

use super::pb::router_service_client::RouterServiceClient;
use super::pb::{FrameType, StreamRequest};
use super::{MAX_FRAME, MAX_MESSAGE, runtime};
use crate::error::{Error, Result};
use crate::network::Network;
use crate::stream::{Event, Feeder, Inbox, Stream, Transport, deadline, lock, queue};
use crate::url::{Endpoint, RouterConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;

/// Frames a stream queues for the gRPC request stream before `send` waits.
const SEND_QUEUE: usize = 8;
/// How long `close` lets queued frames drain into the connection.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The text of a transport error with its causes.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

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

struct RouterTransport {
    name: String,
    tx: Mutex<Option<mpsc::Sender<StreamRequest>>>,
    inbox: Inbox,
    /// Why the call ended, once it ended with an error.
    failure: Arc<OnceLock<Error>>,
    cancel: Mutex<Option<oneshot::Sender<()>>>,
    /// Set once the gRPC layer has taken every request frame, the last one
    /// included: what was sent is then in the connection's hands.
    drained: Arc<AtomicBool>,
    /// Set once the router answered the call (it pairs before answering).
    answered: Arc<AtomicBool>,
    /// Disconnected when the reader thread has finished (the call ended).
    done: crossbeam_channel::Receiver<()>,
}

/// The request stream of the call: the frames `send` queues, until the
/// sending side is dropped.
struct Outbox {
    rx: mpsc::Receiver<StreamRequest>,
    drained: Arc<AtomicBool>,
}

impl tokio_stream::Stream for Outbox {
    type Item = StreamRequest;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<StreamRequest>> {
        let r = self.rx.poll_recv(cx);
        if let std::task::Poll::Ready(None) = r {
            self.drained.store(true, Ordering::Release);
        }
        r
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
    let channel = dial(&cfg, &name, deadline(timeout))?;
    let client = RouterServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let (tx, rx) = mpsc::channel(SEND_QUEUE);
    let drained = Arc::new(AtomicBool::new(false));
    let mut request = tonic::Request::new(Outbox {
        rx,
        drained: drained.clone(),
    });
    request.metadata_mut().insert("authorization", auth);
    let (feeder, inbox) = queue();
    let failure = Arc::new(OnceLock::new());
    let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
    let answered = Arc::new(AtomicBool::new(false));
    let reader = {
        let (rx_name, failure, answered) = (name.clone(), failure.clone(), answered.clone());
        std::thread::Builder::new()
            .name("jw-router-rx".into())
            .spawn(move || {
                runtime().block_on(async move {
                    tokio::select! {
                        _ = cancel_rx => {}
                        () = read(client, request, &feeder, &failure, &answered, &rx_name) => {}
                    }
                });
                drop(done_tx);
            })
            .map_err(|e| Error::Io(format!("{name}: spawning the reader: {e}")))?
    };
    log::debug!("{name}: router stream started");
    Ok(Stream::new(
        name.clone(),
        RouterTransport {
            name,
            tx: Mutex::new(Some(tx)),
            inbox,
            failure,
            cancel: Mutex::new(Some(cancel_tx)),
            drained,
            answered,
            done: done_rx,
        },
        vec![reader],
    ))
}

fn dial(cfg: &RouterConfig, name: &str, deadline: Option<Instant>) -> Result<Channel> {
    // grpcs://: TCP and the TLS handshake by our connector (checked before
    // any I/O, so an unreadable CA file is an argument error).
    let tls = if cfg.tls {
        Some(super::tls::Connector::new(cfg, name)?)
    } else {
        None
    };
    let host = if cfg.host.contains(':') {
        format!("[{}]", cfg.host)
    } else {
        cfg.host.clone()
    };
    let scheme = if cfg.tls { "https" } else { "http" };
    let mut ep = tonic::transport::Endpoint::from_shared(format!("{scheme}://{host}:{}", cfg.port))
        .map_err(|e| Error::invalid(format!("{name}: {e}")))?
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(180))
        .keep_alive_while_idle(true);
    if let Some(d) = deadline {
        ep = ep.connect_timeout(d.saturating_duration_since(Instant::now()));
    }
    runtime().block_on(async move {
        let connecting = async {
            match tls {
                Some(c) => ep.connect_with_connector(c).await,
                None => ep.connect().await,
            }
        };
        let r = match deadline {
            Some(d) => tokio::time::timeout_at(d.into(), connecting)
                .await
                .map_err(|_| Error::Timeout)?,
            None => connecting.await,
        };
        r.map_err(|e| {
            let text = chain(&e);
            // The connect timeout (hyper-timeout) says "deadline has elapsed".
            if text.contains("timed out") || text.contains("deadline has elapsed") {
                Error::Timeout
            } else {
                Error::Connection(format!("{name}: {text}"))
            }
        })
    })
}

/// Runs the call and turns its response frames into [`Event`]s.
async fn read(
    mut client: RouterServiceClient<Channel>,
    request: tonic::Request<Outbox>,
    feeder: &Feeder,
    failure: &OnceLock<Error>,
    answered: &AtomicBool,
    name: &str,
) {
    let fail = |e: Error| {
        let _ = failure.set(e.clone());
        feeder.feed(Event::Error(e, true));
    };
    let mut frames = match client.stream(request).await {
        Ok(r) => {
            answered.store(true, Ordering::Release);
            r.into_inner()
        }
        Err(st) => return fail(status_error(name, &st)),
    };
    let mut ended = false;
    loop {
        match frames.message().await {
            Ok(Some(_)) if ended => {}
            Ok(Some(f)) => match FrameType::try_from(f.frame_type) {
                Ok(FrameType::Data) => {
                    if !f.payload.is_empty() && !feeder.feed(Event::Data(f.payload)) {
                        return;
                    }
                }
                Ok(FrameType::Goaway) => {
                    // End of stream for us; the call stays up so that our own
                    // direction can go on.
                    ended = true;
                    feeder.feed(Event::Eof);
                }
                Ok(FrameType::RstStream) => {
                    return fail(Error::Connection(format!(
                        "{name}: the peer reset the stream (RST_STREAM frame)"
                    )));
                }
                Ok(FrameType::Ping) | Err(_) => {}
            },
            Ok(None) => {
                let _ = failure.set(Error::Connection(format!("{name}: the call ended")));
                if !ended {
                    feeder.feed(Event::Eof);
                }
                return;
            }
            Err(st) => {
                let e = status_error(name, &st);
                let _ = failure.set(e.clone());
                if !ended {
                    feeder.feed(Event::Error(e, true));
                }
                return;
            }
        }
    }
}

impl RouterTransport {
    fn sender(&self) -> Result<mpsc::Sender<StreamRequest>> {
        lock(&self.tx)
            .clone()
            .ok_or_else(|| Error::Closed(format!("{}: stream is closed", self.name)))
    }

    /// The error for a send into a call that has ended.
    fn gone(&self) -> Error {
        // The request stream can end a moment before the reader records why.
        let until = Instant::now() + Duration::from_secs(1);
        loop {
            if let Some(e) = self.failure.get() {
                return e.clone();
            }
            if Instant::now() >= until {
                return Error::Connection(format!("{}: the router stream ended", self.name));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn frame(payload: Vec<u8>, kind: FrameType) -> StreamRequest {
        StreamRequest {
            payload,
            frame_type: kind as i32,
        }
    }
}

impl Transport for RouterTransport {
    fn send(&self, data: &[u8], deadline: Option<Instant>) -> Result<()> {
        if let Some(e) = self.failure.get() {
            return Err(e.clone());
        }
        let tx = self.sender()?;
        let mut chunks = data.chunks(MAX_FRAME);
        let Some(first) = chunks.next() else {
            return Ok(());
        };
        // The first frame waits at most until the deadline; once it is
        // accepted the rest of the data follows it.
        let frame = Self::frame(first.to_vec(), FrameType::Data);
        match tx.try_send(frame) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(self.gone()),
            Err(mpsc::error::TrySendError::Full(frame)) => {
                let r = runtime().block_on(async {
                    match deadline {
                        Some(d) => tokio::time::timeout_at(d.into(), tx.send(frame))
                            .await
                            .map_err(|_| Error::Timeout),
                        None => Ok(tx.send(frame).await),
                    }
                })?;
                r.map_err(|_| self.gone())?;
            }
        }
        for chunk in chunks {
            tx.blocking_send(Self::frame(chunk.to_vec(), FrameType::Data))
                .map_err(|_| self.gone())?;
        }
        Ok(())
    }

    fn send_eof(&self) -> Result<()> {
        let Some(tx) = lock(&self.tx).take() else {
            return Ok(());
        };
        // GOAWAY, then the end of the request stream, as upstream RouterStream.
        tx.blocking_send(Self::frame(Vec::new(), FrameType::Goaway))
            .map_err(|_| self.gone())
    }

    fn receive(&self, buf: &mut [u8], deadline: Option<Instant>) -> Result<Option<usize>> {
        self.inbox.receive(buf, deadline)
    }

    fn close(&self) {
        let until = Instant::now() + CLOSE_GRACE;
        if let Some(tx) = lock(&self.tx).take() {
            let _ = runtime().block_on(async {
                tokio::time::timeout_at(
                    until.into(),
                    tx.send(Self::frame(Vec::new(), FrameType::Goaway)),
                )
                .await
            });
        }
        // Let what was sent reach the peer before the call goes: a router
        // drops the frames it has not read yet when a call is cancelled. The
        // call ends once the peer has finished too; an unpaired call has
        // nobody to deliver to.
        if self.answered.load(Ordering::Acquire) {
            let _ = self.done.recv_deadline(until);
        } else {
            while !self.drained.load(Ordering::Acquire)
                && self.failure.get().is_none()
                && Instant::now() < until
            {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        drop(lock(&self.cancel).take());
        self.inbox.close();
    }
}

/// The exporter side of a routed stream (upstream `connect_router_stream`):
/// opens a router stream with `token`, opens a stream of `target`, and
/// forwards both ways, half-close propagated, until both directions have
/// ended or either side fails. `timeout` bounds the two connects.
///
/// # Errors
///
/// Those of [`connect`] and of connecting `target`; then those of
/// [`forward`](crate::forward::forward) (a refused token surfaces here as
/// [`Error::Unauthenticated`]).
pub fn export(
    router_url: &str,
    token: &str,
    target: &Network,
    timeout: Option<Duration>,
) -> Result<()> {
    let until = deadline(timeout);
    let routed = connect(router_url, token, timeout)?;
    let left = until.map(|d| d.saturating_duration_since(Instant::now()));
    let device = target.connect(left)?;
    log::info!("{}: exporting {}", routed.name(), device.name());
    let r = crate::forward::forward(&routed, &device);
    log::info!(
        "{}: export of {} ended: {r:?}",
        routed.name(),
        device.name()
    );
    routed.close();
    device.close();
    r
}
