//! The router server ([`Router`]): admits callers by stream token, pairs the
//! two callers of the same stream (`sub`) and relays their frames verbatim,
//! both ways. It runs on the library's router runtime; its connections come
//! through the door (`gate`: accept loops, TLS handshakes, first-call
//! deadline), and a `grpcs://` router's certificate and TLS acceptor are made
//! here ([`server_tls`]).

use super::gate::{self, Gate, halted};
use super::pb::router_service_server::{RouterService, RouterServiceServer};
use super::pb::{FrameType, StreamRequest, StreamResponse};
use super::{ALPN_H2, CONNECTION_WINDOW, MAX_MESSAGE, STREAM_WINDOW, runtime, token};
use crate::error::{Error, Result};
use crate::tls::{certs_pem, load_certs, load_key, provider};
use crate::url::{ListenEndpoint, RouterListenConfig};
use crate::util::lock;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::TlsAcceptor;
use tonic::{Request, Response, Status, Streaming};

/// Largest HTTP/2 frame the router accepts: a 64 KiB DATA frame with its
/// gRPC framing fits in one.
const MAX_H2_FRAME: u32 = 128 << 10;
/// Frames buffered per direction between the two callers of a pair.
const RELAY_QUEUE: usize = 16;
/// How long `close` waits for the connections to go before dropping them.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

type Outgoing = mpsc::Sender<StreamResponse>;

/// How a caller's call ends: set when its pair fails, and given to the
/// caller after the frames queued for it.
type End = Arc<OnceLock<Status>>;

/// One admitted caller: its request frames, where its response frames go,
/// and how its call ends.
struct Caller {
    incoming: Streaming<StreamRequest>,
    outgoing: Outgoing,
    end: End,
    addr: String,
}

/// A caller's response stream: the frames its peer sent, then the pair's
/// failure (if it failed) as the call's status. The failure is never lost
/// behind a full queue, and never reaches the caller before the frames sent
/// ahead of it.
struct Responses {
    rx: mpsc::Receiver<StreamResponse>,
    end: End,
    done: bool,
    /// Counts the call as open while its response stream lives.
    _open: OpenCall,
}

/// What the router has carried: calls admitted and open, and the payload
/// bytes received from callers and sent to them.
#[derive(Default)]
struct Traffic {
    accepted: AtomicU64,
    open: AtomicU64,
    received: AtomicU64,
    sent: AtomicU64,
}

/// An open call, counted in [`Traffic::open`] until dropped.
struct OpenCall(Arc<Traffic>);

impl OpenCall {
    fn new(t: &Arc<Traffic>) -> OpenCall {
        t.accepted.fetch_add(1, Ordering::Relaxed);
        t.open.fetch_add(1, Ordering::Relaxed);
        OpenCall(t.clone())
    }
}

impl Drop for OpenCall {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl tokio_stream::Stream for Responses {
    type Item = Result<StreamResponse, Status>;

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

struct Waiter {
    id: u64,
    tx: oneshot::Sender<Caller>,
}

struct Service {
    key: Vec<u8>,
    gate: Arc<Gate>,
    waiting: Arc<Mutex<HashMap<String, Waiter>>>,
    next_id: AtomicU64,
    stop: watch::Receiver<bool>,
    traffic: Arc<Traffic>,
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

/// Copies one caller's frames to the other until its request stream ends;
/// `Ok(true)` if a GOAWAY frame went through (the caller said goodbye, as
/// upstream's `RouterStream.send_eof` and jumpwire's clients do, before it
/// ended its request stream).
async fn pipe(
    mut from: Streaming<StreamRequest>,
    to: Outgoing,
    traffic: &Traffic,
) -> Result<bool, Status> {
    let mut goaway = false;
    while let Some(f) = from.message().await? {
        goaway |= f.frame_type == FrameType::Goaway as i32;
        let n = f.payload.len() as u64;
        traffic.received.fetch_add(n, Ordering::Relaxed);
        let f = StreamResponse {
            payload: f.payload,
            frame_type: f.frame_type,
        };
        if to.send(f).await.is_err() {
            return Err(Status::cancelled("the peer left"));
        }
        traffic.sent.fetch_add(n, Ordering::Relaxed);
    }
    Ok(goaway)
}

/// The GOAWAY frame that tells a caller its peer will send nothing more.
fn goaway() -> StreamResponse {
    StreamResponse {
        payload: Default::default(),
        frame_type: FrameType::Goaway as i32,
    }
}

/// How long the frames a caller sent before its call went may take to be
/// relayed before its peer's call ends.
const GONE_DRAIN: Duration = Duration::from_millis(500);

/// One side of a relayed pair.
#[derive(Default)]
struct PairSide {
    /// Its request stream has ended; with a GOAWAY before the end or not.
    done: Option<bool>,
    /// Its call went (hyper dropped its response stream: RST_STREAM, a
    /// connection cut).
    gone: bool,
}

impl PairSide {
    /// Whether this side's going fails the pair now: it went, and its
    /// direction has ended without a goodbye, or the other direction is
    /// still open (its frames have nowhere to go).
    fn fails(&self, other_done: bool) -> bool {
        self.gone && matches!(self.done, Some(false))
            || self.gone && self.done.is_some() && !other_done
    }
}

/// Relays a pair until both directions have ended or one fails; then both
/// calls end (with the error, if there was one). A caller whose call goes
/// (cancelled: RST_STREAM; its connection cut) fails the pair at once
/// (after what it sent before is relayed, within [`GONE_DRAIN`]), unless
/// both directions had ended with a goodbye: hyper ends a request body that
/// the client cancels as if it had ended, but drops the response stream,
/// which is how the caller's going is seen here.
async fn relay(
    sub: String,
    a: Caller,
    b: Caller,
    stop: watch::Receiver<bool>,
    traffic: Arc<Traffic>,
) {
    let (a_out, b_out) = (a.outgoing, b.outgoing);
    let mut ab = std::pin::pin!(pipe(a.incoming, b_out.clone(), &traffic));
    let mut ba = std::pin::pin!(pipe(b.incoming, a_out.clone(), &traffic));
    let mut stop = std::pin::pin!(halted(stop));
    let (mut sa, mut sb) = (PairSide::default(), PairSide::default());
    let mut drain = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
    // A request stream that ended without a GOAWAY: once the caller is seen
    // to stay (GONE_DRAIN later), its peer is sent one, so that it sees the
    // end of that direction instead of waiting forever.
    let mut eof_a = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
    let mut eof_b = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
    let (mut told_b, mut told_a) = (false, false);
    let mut failure = None;
    let gone = || Status::cancelled("the caller went away");
    loop {
        let (ad, bd) = (sa.done.is_some(), sb.done.is_some());
        if ad && bd && !(sa.gone && sa.done == Some(false)) && !(sb.gone && sb.done == Some(false))
        {
            break;
        }
        let r = if sa.fails(bd) {
            Err((gone(), &a.addr))
        } else if sb.fails(ad) {
            Err((gone(), &b.addr))
        } else {
            tokio::select! {
                r = &mut ab, if !ad => r.map(|g| {
                    sa.done = Some(g);
                    eof_a.as_mut().reset(tokio::time::Instant::now() + GONE_DRAIN);
                }).map_err(|e| (e, &a.addr)),
                r = &mut ba, if !bd => r.map(|g| {
                    sb.done = Some(g);
                    eof_b.as_mut().reset(tokio::time::Instant::now() + GONE_DRAIN);
                }).map_err(|e| (e, &b.addr)),
                () = &mut eof_a, if sa.done == Some(false) && !sa.gone && !told_b => {
                    told_b = true;
                    let _ = b_out.send(goaway()).await;
                    Ok(())
                }
                () = &mut eof_b, if sb.done == Some(false) && !sb.gone && !told_a => {
                    told_a = true;
                    let _ = a_out.send(goaway()).await;
                    Ok(())
                }
                () = a_out.closed(), if !sa.gone => {
                    sa.gone = true;
                    drain.as_mut().reset(tokio::time::Instant::now() + GONE_DRAIN);
                    Ok(())
                }
                () = b_out.closed(), if !sb.gone => {
                    sb.gone = true;
                    drain.as_mut().reset(tokio::time::Instant::now() + GONE_DRAIN);
                    Ok(())
                }
                () = &mut drain, if sa.gone || sb.gone => {
                    Err((gone(), if sa.gone { &a.addr } else { &b.addr }))
                }
                () = &mut stop => Err((Status::unavailable("the router is shutting down"), &a.addr)),
            }
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
        // Each call ends with it, after the frames queued for it.
        let _ = a.end.set(st.clone());
        let _ = b.end.set(st);
    }
    log::info!("router: stream {sub:?}: {} and {} left", a.addr, b.addr);
}

#[tonic::async_trait]
impl RouterService for Service {
    type StreamStream = Responses;

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
                self.gate.refuse_call(
                    request.remote_addr(),
                    &addr,
                    &format!("{}: {why}", st.message()),
                );
                return Err(st);
            }
        };
        self.gate.admit(request.remote_addr());
        log::info!("router: {addr} connected to stream {sub:?}");
        let (out_tx, out_rx) = mpsc::channel(RELAY_QUEUE);
        let end = End::default();
        let responses = Responses {
            rx: out_rx,
            end: end.clone(),
            done: false,
            _open: OpenCall::new(&self.traffic),
        };
        let mut me = Caller {
            incoming: request.into_inner(),
            outgoing: out_tx,
            end,
            addr,
        };
        loop {
            let waiter = lock(&self.waiting).remove(&sub);
            if let Some(w) = waiter {
                match w.tx.send(me) {
                    Ok(()) => return Ok(Response::new(responses)),
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
                () = halted(self.stop.clone()) => {
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
                tokio::spawn(relay(
                    sub,
                    me,
                    peer,
                    self.stop.clone(),
                    self.traffic.clone(),
                ));
                return Ok(Response::new(responses));
            }
        }
    }
}

/// An embedded router (see the [module docs](super)). Runs on the library's
/// runtime until [`Router::close`] (or drop).
pub struct Router {
    address: String,
    /// The certificate chain a `grpcs://` router presents, as PEM.
    certificate: Option<String>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    gate: Arc<Gate>,
    traffic: Arc<Traffic>,
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
    /// run at once (a connection past that is closed). Every connection must
    /// open a call with a valid token within 5 s of being accepted (of its
    /// TLS handshake, over TLS), or it is closed; at most 256 connections
    /// may be waiting for their first such call at once (a newcomer past
    /// that closes the oldest of them). Out of descriptors, the router
    /// closes such a connection, or refuses the newcomer, instead of
    /// failing. Every refusal is logged and counted ([`Router::refused`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a URL that is not a router listen URL
    /// or certificate files that cannot be read or do not match,
    /// [`Error::Io`] when the address cannot be bound.
    pub fn serve(listen_url: &str) -> Result<Router> {
        Router::serve_limited(listen_url, gate::CALL_WITHIN, gate::MAX_PENDING)
    }

    /// [`Router::serve`] with another bound for a connection's first call
    /// and another limit of connections waiting for it (for tests that
    /// cannot wait for the real bounds).
    #[doc(hidden)]
    pub fn serve_limited(
        listen_url: &str,
        call_within: Duration,
        max_pending: usize,
    ) -> Result<Router> {
        let ListenEndpoint::Router(cfg) = ListenEndpoint::parse(listen_url)? else {
            return Err(Error::invalid(format!(
                "{}: not a router listen URL (expected grpc://HOST:PORT?key=SECRET)",
                crate::url::redact(listen_url)
            )));
        };
        // grpcs://: the certificate first, so that bad files fail before
        // anything is bound.
        let tls = if cfg.tls {
            Some(server_tls(&cfg)?)
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
        let gate = Gate::new(&address, call_within, max_pending);
        let traffic = Arc::<Traffic>::default();
        let service = Service {
            key: cfg.key.into_bytes(),
            gate: gate.clone(),
            waiting: Arc::default(),
            next_id: AtomicU64::new(0),
            stop: stop_rx.clone(),
            traffic: traffic.clone(),
        };
        let server = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
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
        let stop = halted(stop_rx.clone());
        let task = match &tls {
            None => {
                let (incoming, accepting) = gate::plain_incoming(listener, gate.clone(), stop_rx);
                rt.spawn(async move {
                    let serving =
                        async { ended(server.serve_with_incoming_shutdown(incoming, stop).await) };
                    // Both end on stop; the port is released with them.
                    tokio::join!(serving, accepting);
                })
            }
            Some(tls) => {
                let (incoming, accepting) = gate::tls_incoming(
                    listener,
                    tls.acceptor.clone(),
                    stop_rx,
                    gate.clone(),
                    gate::MAX_HANDSHAKES,
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
            certificate: tls.map(|t| t.pem),
            stop: stop_tx,
            task: Mutex::new(Some(task)),
            gate,
            traffic,
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
        self.certificate.as_deref()
    }

    /// How many connections and calls the router has refused so far:
    /// tokens it refused, connections closed without a call in time, to
    /// make room or for want of descriptors, failed TLS handshakes. Each is
    /// also logged (at `info`).
    pub fn refused(&self) -> u64 {
        self.gate.refused()
    }

    /// Calls admitted (their token accepted) and open now (waiting or
    /// paired), refusals (as [`Router::refused`]), and the payload bytes
    /// received from callers and relayed to their peers, counted as they
    /// move.
    pub fn stats(&self) -> crate::stream::ServerStats {
        let t = &self.traffic;
        crate::stream::ServerStats {
            accepted: t.accepted.load(Ordering::Relaxed),
            active: t.open.load(Ordering::Relaxed),
            refused: self.gate.refused(),
            bytes_received: t.received.load(Ordering::Relaxed),
            bytes_sent: t.sent.load(Ordering::Relaxed),
        }
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

/// The TLS side of a `grpcs://` router: its acceptor (for
/// [`gate::tls_incoming`]) and certificate chain.
pub(super) struct ServerTls {
    pub(super) acceptor: TlsAcceptor,
    /// The certificate chain the router presents, as PEM.
    pub(super) pem: String,
}

/// The router's certificate: `cert` and `key_file` of the listen URL, or a
/// fresh self-signed one whose names cover `localhost`, `127.0.0.1`, `::1`
/// and the listen host.
///
/// # Errors
///
/// [`Error::InvalidArgument`] for files that cannot be read or a key that
/// does not fit the certificate.
pub(super) fn server_tls(cfg: &RouterListenConfig) -> Result<ServerTls> {
    let (certs, key) = match (&cfg.cert, &cfg.key_file) {
        (Some(c), Some(k)) => (load_certs(c, "cert")?, load_key(k, "key_file")?),
        _ => self_signed(&cfg.host)?,
    };
    let pem = certs_pem(&certs);
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::invalid(format!("router certificate: {e}")))?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(ServerTls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        pem,
    })
}

/// A self-signed certificate for `host` (and the loopback names).
fn self_signed(host: &str) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let unspecified = host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified());
    if !unspecified && !names.iter().any(|n| n.eq_ignore_ascii_case(host)) {
        names.push(host.to_string());
    }
    let made = rcgen::generate_simple_self_signed(names)
        .map_err(|e| Error::invalid(format!("self-signed certificate for {host}: {e}")))?;
    let key = PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
    Ok((vec![made.cert.der().clone()], PrivateKeyDer::Pkcs8(key)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::client_config;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::ServerName;
    use tokio::net::TcpListener;
    use tonic::transport::server::Connected;

    fn listen(host: &str) -> RouterListenConfig {
        RouterListenConfig {
            host: host.into(),
            port: 0,
            tls: true,
            key: "k".into(),
            cert: None,
            key_file: None,
        }
    }

    #[test]
    fn self_signed_names_cover_loopback_and_the_host() {
        for host in ["127.0.0.1", "0.0.0.0", "::", "router.example", "10.1.2.3"] {
            let (certs, _) = self_signed(host).unwrap();
            let pem = certs_pem(&certs);
            // Trust it as a CA and check each name verifies.
            let mut roots = rustls::RootCertStore::empty();
            roots.add(certs[0].clone()).unwrap();
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .unwrap();
            let mut names = vec!["localhost", "127.0.0.1", "::1"];
            if !host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|i| i.is_unspecified())
            {
                names.push(host);
            }
            for n in names {
                let sn = ServerName::try_from(n.to_string()).unwrap();
                verifier
                    .verify_server_cert(
                        &certs[0],
                        &[],
                        &sn,
                        &[],
                        rustls::pki_types::UnixTime::now(),
                    )
                    .unwrap_or_else(|e| panic!("{host}: {n}: {e}"));
            }
            let other = ServerName::try_from("other.example".to_string()).unwrap();
            assert!(
                verifier
                    .verify_server_cert(
                        &certs[0],
                        &[],
                        &other,
                        &[],
                        rustls::pki_types::UnixTime::now()
                    )
                    .is_err()
            );
            assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        }
        assert!(server_tls(&listen("127.0.0.1")).is_ok());
    }

    #[test]
    fn missing_certificate_files_are_invalid_arguments() {
        let mut cfg = listen("127.0.0.1");
        cfg.cert = Some("/nonexistent/c.pem".into());
        cfg.key_file = Some("/nonexistent/k.pem".into());
        let e = server_tls(&cfg).err().unwrap();
        assert!(
            matches!(&e, Error::InvalidArgument(m) if m.starts_with("cert /nonexistent/c.pem")),
            "{e:?}"
        );
    }

    #[test]
    fn handshakes_past_the_limit_are_closed_at_once_and_the_rest_go_on() {
        use std::io::{self, Read};
        let rt = crate::router::runtime();
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let tls = server_tls(&listen("127.0.0.1")).unwrap();
        let (stop_tx, stop_rx) = watch::channel(false);
        let gate = Gate::new("test", Duration::from_secs(5), 8);
        let (mut ready, accepting) =
            gate::tls_incoming(listener, tls.acceptor, stop_rx, gate.clone(), 2);
        let task = rt.spawn(accepting);
        let wait = Some(Duration::from_secs(5));
        // Two silent clients take both slots; the third is closed at once.
        let silent: Vec<_> = (0..2)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut third = std::net::TcpStream::connect(addr).unwrap();
        third.set_read_timeout(wait).unwrap();
        let t0 = std::time::Instant::now();
        assert_eq!(third.read(&mut [0u8; 8]).unwrap(), 0);
        assert!(t0.elapsed() < Duration::from_secs(2));
        assert_eq!(gate.refused(), 1, "the third is counted");
        // The silent two are still waiting (their reads time out).
        for mut s in &silent {
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let e = s.read(&mut [0u8; 8]).unwrap_err();
            assert!(
                matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ),
                "{e:?}"
            );
        }
        // One leaves: its slot frees, and a real handshake goes through.
        drop(silent);
        std::thread::sleep(Duration::from_millis(200));
        let mut client = rustls::ClientConnection::new(
            Arc::new(client_config(None, true, "t", "?ca").unwrap()),
            ServerName::try_from("127.0.0.1").unwrap(),
        )
        .unwrap();
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(wait).unwrap();
        while client.is_handshaking() {
            client.complete_io(&mut tcp).unwrap();
        }
        let conn = rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(5),
                tokio_stream::StreamExt::next(&mut ready),
            )
            .await
            .unwrap()
        });
        let conn = conn.unwrap().unwrap();
        assert_eq!(
            conn.connect_info().remote_addr,
            Some(tcp.local_addr().unwrap())
        );
        stop_tx.send(true).unwrap();
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), task).await })
            .unwrap()
            .unwrap();
    }
}
