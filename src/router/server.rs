//! The router server: admits callers by stream token, pairs the two callers of
//! the same stream (`sub`) and relays their frames verbatim, both ways.

use super::pb::router_service_server::{RouterService, RouterServiceServer};
use super::pb::{StreamRequest, StreamResponse};
use super::{MAX_MESSAGE, runtime, token};
use crate::error::{Error, Result};
use crate::stream::lock;
use crate::url::ListenEndpoint;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// Largest HTTP/2 frame the router accepts: a 64 KiB DATA frame with its
/// gRPC framing fits in one.
const MAX_H2_FRAME: u32 = 128 << 10;
/// Frames buffered per direction between the two callers of a pair.
const RELAY_QUEUE: usize = 16;
/// How long a failing pair waits to queue the error for each caller.
const TELL_WAIT: Duration = Duration::from_secs(1);
/// How long `close` waits for the connections to go before dropping them.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

type Outgoing = mpsc::Sender<Result<StreamResponse, Status>>;

/// One admitted caller: its request frames and where its response frames go.
struct Caller {
    incoming: Streaming<StreamRequest>,
    outgoing: Outgoing,
    addr: String,
}

struct Waiter {
    id: u64,
    tx: oneshot::Sender<Caller>,
}

struct Service {
    key: Vec<u8>,
    waiting: Arc<Mutex<HashMap<String, Waiter>>>,
    next_id: AtomicU64,
    stop: watch::Receiver<bool>,
}

/// Forgets a waiting caller when its call goes (the client left or the
/// router stops), unless it was paired.
struct Forget {
    waiting: Arc<Mutex<HashMap<String, Waiter>>>,
    sub: String,
    id: u64,
    addr: String,
}

impl Drop for Forget {
    fn drop(&mut self) {
        let mut w = lock(&self.waiting);
        if w.get(&self.sub).is_some_and(|w| w.id == self.id) {
            w.remove(&self.sub);
            log::info!(
                "router: {} left stream {:?} before its peer came",
                self.addr,
                self.sub
            );
        }
    }
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Checks the `authorization` metadata and returns the stream (`sub`).
fn authorize(md: &tonic::metadata::MetadataMap, key: &[u8]) -> Result<String, (Status, String)> {
    let values: Vec<_> = md.get_all("authorization").iter().collect();
    let [value] = values[..] else {
        return Err((
            Status::unauthenticated("missing authorization header"),
            format!("{} authorization headers", values.len()),
        ));
    };
    let invalid = |why: String| (Status::unauthenticated("invalid jwt token"), why);
    let value = value
        .to_str()
        .map_err(|_| invalid("authorization header is not text".into()))?;
    let token = match value.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => &value[7..],
        _ => return Err(invalid("authorization is not a Bearer token".into())),
    };
    token::validate(token, key).map_err(invalid)
}

/// Copies one caller's frames to the other until its request stream ends.
async fn pipe(mut from: Streaming<StreamRequest>, to: Outgoing) -> Result<(), Status> {
    while let Some(f) = from.message().await? {
        let f = StreamResponse {
            payload: f.payload,
            frame_type: f.frame_type,
        };
        if to.send(Ok(f)).await.is_err() {
            return Err(Status::cancelled("the peer left"));
        }
    }
    Ok(())
}

/// Relays a pair until both directions have ended or one fails; then both
/// calls end (with the error, if there was one).
async fn relay(sub: String, a: Caller, b: Caller, stop: watch::Receiver<bool>) {
    let (a_out, b_out) = (a.outgoing, b.outgoing);
    let mut ab = std::pin::pin!(pipe(a.incoming, b_out.clone()));
    let mut ba = std::pin::pin!(pipe(b.incoming, a_out.clone()));
    let mut stop = std::pin::pin!(stopped(stop));
    let (mut ab_done, mut ba_done) = (false, false);
    let mut failure = None;
    while !(ab_done && ba_done) {
        let r = tokio::select! {
            r = &mut ab, if !ab_done => { ab_done = true; r.map_err(|e| (e, &a.addr)) }
            r = &mut ba, if !ba_done => { ba_done = true; r.map_err(|e| (e, &b.addr)) }
            () = &mut stop => Err((Status::unavailable("the router is shutting down"), &a.addr)),
        };
        if let Err((st, who)) = r {
            log::info!(
                "router: stream {sub:?}: {who} failed: {}: {}",
                st.code().description(),
                st.message()
            );
            failure = Some(Status::unavailable(format!(
                "stream ended: {}",
                st.message()
            )));
            break;
        }
    }
    if let Some(st) = failure {
        // The error goes after what is queued (bounded: a caller that does
        // not read gets the end of its call without it).
        let tell = |out: Outgoing, st: Status| async move {
            let _ = tokio::time::timeout(TELL_WAIT, out.send(Err(st))).await;
        };
        tokio::join!(tell(a_out, st.clone()), tell(b_out, st));
    }
    log::info!("router: stream {sub:?}: {} and {} left", a.addr, b.addr);
}

#[tonic::async_trait]
impl RouterService for Service {
    type StreamStream = ReceiverStream<Result<StreamResponse, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<StreamRequest>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let addr = request
            .remote_addr()
            .map_or_else(|| "?".into(), |a| a.to_string());
        let sub = match authorize(request.metadata(), &self.key) {
            Ok(sub) => sub,
            Err((st, why)) => {
                log::info!("router: refused {addr}: {}: {why}", st.message());
                return Err(st);
            }
        };
        log::info!("router: {addr} connected to stream {sub:?}");
        let (out_tx, out_rx) = mpsc::channel(RELAY_QUEUE);
        let mut me = Caller {
            incoming: request.into_inner(),
            outgoing: out_tx,
            addr,
        };
        loop {
            let waiter = lock(&self.waiting).remove(&sub);
            if let Some(w) = waiter {
                match w.tx.send(me) {
                    Ok(()) => return Ok(Response::new(ReceiverStream::new(out_rx))),
                    // That caller has just left: wait in its place.
                    Err(back) => me = back,
                }
            }
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            let taken = {
                let mut w = lock(&self.waiting);
                if w.contains_key(&sub) {
                    true
                } else {
                    w.insert(sub.clone(), Waiter { id, tx });
                    false
                }
            };
            if taken {
                // Another caller started waiting meanwhile: pair with it.
                continue;
            }
            let forget = Forget {
                waiting: self.waiting.clone(),
                sub: sub.clone(),
                id,
                addr: me.addr.clone(),
            };
            let peer = tokio::select! {
                p = rx => p,
                () = stopped(self.stop.clone()) => {
                    return Err(Status::unavailable("the router is shutting down"));
                }
            };
            drop(forget);
            if let Ok(peer) = peer {
                log::info!(
                    "router: stream {sub:?}: paired {} with {}",
                    me.addr,
                    peer.addr
                );
                tokio::spawn(relay(sub, me, peer, self.stop.clone()));
                return Ok(Response::new(ReceiverStream::new(out_rx)));
            }
        }
    }
}

/// An embedded router (see the [module docs](super)). Runs on the library's
/// runtime until [`Router::close`] (or drop).
pub struct Router {
    address: String,
    /// The certificate chain a `grpcs://` router presents, as PEM.
    certificate: Option<CString>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Router {
    /// Starts a router on `listen_url`: `grpc://HOST:PORT?key=SECRET`, or
    /// over TLS `grpcs://HOST:PORT?key=SECRET[&cert=FILE&key_file=FILE]`
    /// (port 0 picks a free port). `key` signs the stream tokens it admits.
    /// A `grpcs://` router without `cert` and `key_file` (PEM files) makes a
    /// self-signed certificate for `localhost`, `127.0.0.1`, `::1` and the
    /// listen host; [`Router::certificate`] gives it to clients. Each TLS
    /// handshake runs on its own and must finish within 10 s; at most 256
    /// run at once (a connection past that is closed).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a URL that is not a router listen URL
    /// or certificate files that cannot be read or do not match,
    /// [`Error::Io`] when the address cannot be bound.
    pub fn serve(listen_url: &str) -> Result<Router> {
        let ListenEndpoint::Router(cfg) = ListenEndpoint::parse(listen_url)? else {
            return Err(Error::invalid(format!(
                "{}: not a router listen URL (expected grpc://HOST:PORT?key=SECRET)",
                crate::url::redact(listen_url)
            )));
        };
        // grpcs://: the certificate first, so that bad files fail before
        // anything is bound.
        let tls = if cfg.tls {
            Some(super::tls::server_tls(&cfg)?)
        } else {
            None
        };
        let rt = runtime();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind((cfg.host.as_str(), cfg.port)))
            .map_err(|e| Error::io(format!("binding {}:{}", cfg.host, cfg.port), &e))?;
        let local: SocketAddr = listener
            .local_addr()
            .map_err(|e| Error::io("router address", &e))?;
        let scheme = if tls.is_some() { "grpcs" } else { "grpc" };
        let address = format!("{scheme}://{local}");
        let (stop_tx, stop_rx) = watch::channel(false);
        let service = Service {
            key: cfg.key.into_bytes(),
            waiting: Arc::default(),
            next_id: AtomicU64::new(0),
            stop: stop_rx.clone(),
        };
        let server = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .initial_stream_window_size(super::STREAM_WINDOW)
            .initial_connection_window_size(super::CONNECTION_WINDOW)
            .max_frame_size(MAX_H2_FRAME)
            .add_service(
                RouterServiceServer::new(service)
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE),
            );
        let ended = {
            let address = address.clone();
            move |r: std::result::Result<(), tonic::transport::Error>| {
                if let Err(e) = r {
                    log::warn!("router {address}: {e}");
                }
            }
        };
        let stop = stopped(stop_rx.clone());
        let task = match &tls {
            None => {
                let incoming =
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
                rt.spawn(
                    async move { ended(server.serve_with_incoming_shutdown(incoming, stop).await) },
                )
            }
            Some(tls) => {
                let (incoming, accepting) = super::tls::incoming(
                    listener,
                    tls.acceptor.clone(),
                    stop_rx,
                    address.clone(),
                    super::tls::MAX_HANDSHAKES,
                );
                rt.spawn(async move {
                    let serving =
                        async { ended(server.serve_with_incoming_shutdown(incoming, stop).await) };
                    // Both end on stop; the port is released with them.
                    tokio::join!(serving, accepting);
                })
            }
        };
        log::info!("router: listening on {address}");
        Ok(Router {
            address,
            certificate: tls.and_then(|t| CString::new(t.pem).ok()),
            stop: stop_tx,
            task: Mutex::new(Some(task)),
        })
    }

    /// The address callers dial, with the real port (`grpc://127.0.0.1:PORT`,
    /// `grpcs://[::1]:PORT`); never the key.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The certificate chain a `grpcs://` router presents, as PEM text (the
    /// self-signed certificate it made, or the `cert` file it was given);
    /// clients can trust it with `grpcs://HOST:PORT?ca=FILE`. `None` for a
    /// plaintext `grpc://` router.
    pub fn certificate(&self) -> Option<&str> {
        self.certificate.as_deref().and_then(|c| c.to_str().ok())
    }

    /// [`Router::certificate`] as a C string, for the C API.
    pub(crate) fn certificate_c(&self) -> Option<&CStr> {
        self.certificate.as_deref()
    }

    /// Stops the router: waiting callers and running pairs end with
    /// `UNAVAILABLE`, the connections close, the port is released. Closing
    /// twice does nothing.
    pub fn close(&self) {
        let Some(task) = lock(&self.task).take() else {
            return;
        };
        let _ = self.stop.send(true);
        let abort = task.abort_handle();
        let done = runtime().block_on(async { tokio::time::timeout(CLOSE_WAIT, task).await });
        if done.is_err() {
            abort.abort();
        }
        log::info!("router: {} closed", self.address);
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.close();
    }
}
