//! How a router is reached: the connection under a `grpc://` or `grpcs://`
//! call. [`dial`] opens the HTTP/2 connection (tonic's channel) on a stream
//! runtime, through one of two connectors: [`GrpcConnector`] (TCP) or
//! [`GrpcsConnector`] (TCP and the TLS handshake: rustls with the `ring`
//! provider, ALPN `h2`, as gRPC over TLS requires). Either hands the
//! connection a socket wrapped in [`Linger`], which the driver thread
//! watches (see `drive`). HTTP/2 keepalive and the flow-control windows are
//! set here too. A Jumpstarter session's Unix socket is reached the same
//! way through [`UnixConnector`] (plaintext HTTP/2, no keepalive: see
//! [`Target::Unix`]).

use super::drive::{Linger, Sockets, StreamRuntime};
use super::{ALPN_H2, CONNECTION_WINDOW, STREAM_WINDOW};
use crate::error::{Error, Result};
use crate::tls::client_config;
use crate::url::{RouterConfig, UnixPath};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;
use tonic::codegen::{Service, http};
use tonic::transport::Channel;

/// HTTP/2 keepalive: a PING after this long without a frame from the router
/// (as upstream clients: 20 s), with or without calls.
#[cfg(not(test))]
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// Short in unit tests, so that a test shows a black hole ending a stream.
#[cfg(test)]
const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(500);
/// A router that has not answered a keepalive PING within this is gone: the
/// connection closes and the stream's calls fail with a connection error
/// (a dead router, or a black hole, ends a stream within 40 s, not never).
#[cfg(not(test))]
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
#[cfg(test)]
const KEEPALIVE_TIMEOUT: Duration = Duration::from_millis(500);

/// Where an HTTP/2 connection goes.
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    /// A router (or a Jumpstarter session on `HOST:PORT`): TCP, TLS for
    /// `grpcs://`, HTTP/2 keepalive as upstream's channels have it.
    Tcp(&'a RouterConfig),
    /// A lab's controller or router (`HOST:PORT` from a Jumpstarter client
    /// configuration, or as a controller hands it out): as [`Target::Tcp`]
    /// with TLS, verified by this client configuration (the
    /// configuration's CA, which is PEM text, not a file; the
    /// `RouterConfig`'s `tls`, `ca` and `insecure` are not used).
    Tls(&'a RouterConfig, &'a ClientConfig),
    /// A Jumpstarter session's Unix socket: plaintext HTTP/2 (prior
    /// knowledge) and no keepalive, as upstream's Unix channel (grpc
    /// defaults): a grpc server answers PINGs without calls more often than
    /// every 5 minutes with GOAWAY `too_many_pings`.
    Unix(&'a UnixPath),
}

/// Connects to `target` on `rt` (the connection's tasks are spawned on it),
/// within `deadline`: the socket (TCP, TLS for `grpcs://`, or a Unix
/// socket), and the HTTP/2 handshake, complete once the server has sent its
/// SETTINGS.
///
/// # Errors
///
/// [`Error::InvalidArgument`] for a `ca` file that cannot be read or holds
/// no certificate (before any I/O); [`Error::Connection`] when the server
/// cannot be reached or the TLS handshake fails; [`Error::Timeout`] when
/// `deadline` passes first.
pub(crate) fn dial_target(
    rt: &StreamRuntime,
    target: Target<'_>,
    name: &str,
    deadline: Option<Instant>,
) -> Result<Channel> {
    let cfg = match target {
        Target::Tcp(cfg) => cfg,
        Target::Tls(cfg, tls) => {
            let c = GrpcsConnector::with(cfg, tls.clone(), name, rt.sockets().clone())?;
            let ep = endpoint(cfg, true, name)?;
            let ep = timed(ep, deadline);
            return handshake(rt, ep.connect_with_connector(c), name, deadline);
        }
        Target::Unix(path) => {
            let unix = UnixConnector {
                path: path.clone(),
                name: name.to_owned(),
                deadline,
                sockets: rt.sockets().clone(),
            };
            let ep = tonic::transport::Endpoint::from_static("http://localhost")
                .initial_stream_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW);
            let ep = timed(ep, deadline);
            return handshake(rt, ep.connect_with_connector(unix), name, deadline);
        }
    };
    dial(rt, cfg, name, deadline)
}

/// Connects to the router of `cfg` on `rt` (the connection's tasks are
/// spawned on it), within `deadline`: TCP, TLS for `grpcs://`, and the
/// HTTP/2 handshake, complete once the router has sent its SETTINGS.
///
/// # Errors
///
/// As [`dial_target`].
pub(super) fn dial(
    rt: &StreamRuntime,
    cfg: &RouterConfig,
    name: &str,
    deadline: Option<Instant>,
) -> Result<Channel> {
    // grpcs://: TCP and the TLS handshake by our connector (checked before
    // any I/O, so an unreadable CA file is an argument error).
    let tls = if cfg.tls {
        Some(GrpcsConnector::new(cfg, name, rt.sockets().clone())?)
    } else {
        None
    };
    let plain = GrpcConnector {
        host: cfg.host.clone(),
        port: cfg.port,
        sockets: rt.sockets().clone(),
    };
    let ep = timed(endpoint(cfg, cfg.tls, name)?, deadline);
    match tls {
        Some(c) => handshake(rt, ep.connect_with_connector(c), name, deadline),
        None => handshake(rt, ep.connect_with_connector(plain), name, deadline),
    }
}

/// The endpoint of a router (or a lab's controller) at `cfg`'s host and
/// port: the flow-control windows, HTTP/2 keepalive as upstream's channels.
fn endpoint(cfg: &RouterConfig, tls: bool, name: &str) -> Result<tonic::transport::Endpoint> {
    let host = if cfg.host.contains(':') {
        format!("[{}]", cfg.host)
    } else {
        cfg.host.clone()
    };
    let scheme = if tls { "https" } else { "http" };
    Ok(
        tonic::transport::Endpoint::from_shared(format!("{scheme}://{host}:{}", cfg.port))
            .map_err(|e| Error::invalid(format!("{name}: {e}")))?
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true),
    )
}

/// `ep` with its connect timeout at `deadline`.
fn timed(ep: tonic::transport::Endpoint, deadline: Option<Instant>) -> tonic::transport::Endpoint {
    match deadline {
        Some(d) => ep.connect_timeout(d.saturating_duration_since(Instant::now())),
        None => ep,
    }
}

/// Runs `connecting` (an endpoint's `connect_with_connector`) on `rt`
/// within `deadline`: complete once the server has spoken (its SETTINGS).
fn handshake(
    rt: &StreamRuntime,
    connecting: impl Future<Output = std::result::Result<Channel, tonic::transport::Error>>,
    name: &str,
    deadline: Option<Instant>,
) -> Result<Channel> {
    rt.block_on(async move {
        let r = match deadline {
            Some(d) => tokio::time::timeout_at(d.into(), connecting)
                .await
                .map_err(|_| Error::Timeout)?,
            None => connecting.await,
        };
        let channel = r.map_err(|e| {
            let text = chain(&e);
            // The connect timeout (hyper-timeout) says "deadline has elapsed".
            if text.contains("timed out") || text.contains("deadline has elapsed") {
                Error::Timeout
            } else {
                Error::Connection(format!("{name}: {text}"))
            }
        })?;
        // The HTTP/2 handshake is complete once the router has spoken (its
        // SETTINGS come first); within the deadline, as the connect.
        if let Some(d) = deadline {
            rt.peer_spoke(d).await?;
        }
        Ok(channel)
    })
}
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

/// Opens a TCP connection to `host:port` for a connector, with Nagle's
/// algorithm off (a router stream's frames are small and latency-bound).
async fn tcp(host: &str, port: u16) -> io::Result<TcpStream> {
    let tcp = TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// Dials `HOST:PORT` over TCP for `grpc://`: a `Service<Uri>` for
/// `Endpoint::connect_with_connector` (the URI is ignored: the connector
/// knows where it goes).
#[derive(Clone)]
struct GrpcConnector {
    host: String,
    port: u16,
    /// The stream runtime's sockets (see [`Linger`]).
    sockets: Arc<Sockets>,
}

/// A `grpc://` connection: TCP, watched and lingering (see [`Linger`]).
type PlainIo = TokioIo<Linger<TcpStream>>;

impl Service<http::Uri> for GrpcConnector {
    type Response = PlainIo;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<PlainIo>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let me = self.clone();
        Box::pin(async move {
            let tcp = tcp(&me.host, me.port).await?;
            let fd = tcp.as_raw_fd();
            Ok(TokioIo::new(Linger::new(tcp, fd, me.sockets)))
        })
    }
}

/// Dials a Unix socket for a session's plaintext HTTP/2; a `Service<Uri>`
/// as [`GrpcConnector`] is. The connect itself is the socket module's (it
/// knows abstract names). A Unix connect does not wait on the network, but
/// it does retry while a listener's backlog is full: the call's deadline
/// bounds that, since the connect runs inside the future and the outer
/// timeout cannot interrupt it.
#[derive(Clone)]
struct UnixConnector {
    path: UnixPath,
    name: String,
    deadline: Option<Instant>,
    /// The stream runtime's sockets (see [`Linger`]).
    sockets: Arc<Sockets>,
}

/// A session's Unix connection, watched and lingering (see [`Linger`]).
type UnixIo = TokioIo<Linger<UnixStream>>;

impl Service<http::Uri> for UnixConnector {
    type Response = UnixIo;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<UnixIo>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let me = self.clone();
        Box::pin(async move {
            let socket = crate::socket::connect_unix(&me.path, me.deadline, &me.name)
                .map_err(|e| io::Error::new(io::ErrorKind::ConnectionRefused, e.to_string()))?;
            let std: std::os::unix::net::UnixStream = socket.into();
            std.set_nonblocking(true)?;
            let unix = UnixStream::from_std(std)?;
            let fd = unix.as_raw_fd();
            Ok(TokioIo::new(Linger::new(unix, fd, me.sockets)))
        })
    }
}

/// Dials `HOST:PORT` over TCP and does the TLS handshake for `grpcs://`; a
/// `Service<Uri>` as [`GrpcConnector`] is.
#[derive(Clone)]
struct GrpcsConnector {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    /// The stream runtime's sockets (see [`Linger`]).
    sockets: Arc<Sockets>,
}

impl GrpcsConnector {
    /// The connector for `cfg` (`grpcs://`): verified against the system
    /// roots, or against `?ca=FILE`, or not at all (`?insecure=1`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a CA file that cannot be read or holds
    /// no certificate, or a host that is not a valid TLS server name.
    fn new(cfg: &RouterConfig, name: &str, sockets: Arc<Sockets>) -> Result<GrpcsConnector> {
        let config: ClientConfig = client_config(cfg.ca.as_deref(), cfg.insecure, name, "?ca")?;
        Self::with(cfg, config, name, sockets)
    }

    /// The connector to `cfg`'s host and port with the TLS client
    /// configuration `config` (ALPN `h2` is set here).
    fn with(
        cfg: &RouterConfig,
        mut config: ClientConfig,
        name: &str,
        sockets: Arc<Sockets>,
    ) -> Result<GrpcsConnector> {
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        let server_name = ServerName::try_from(cfg.host.clone())
            .map_err(|e| Error::invalid(format!("{name}: {}: {e}", cfg.host)))?;
        Ok(GrpcsConnector {
            host: cfg.host.clone(),
            port: cfg.port,
            server_name,
            tls: TlsConnector::from(Arc::new(config)),
            sockets,
        })
    }
}

/// A `grpcs://` connection: TLS over TCP, watched and lingering (see
/// [`Linger`]).
type TlsIo = TokioIo<Linger<tokio_rustls::client::TlsStream<TcpStream>>>;

impl Service<http::Uri> for GrpcsConnector {
    type Response = TlsIo;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TlsIo>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let me = self.clone();
        Box::pin(async move {
            let tcp = tcp(&me.host, me.port).await?;
            let fd = tcp.as_raw_fd();
            let tls = me.tls.connect(me.server_name, tcp).await?;
            if tls.get_ref().1.alpn_protocol() != Some(ALPN_H2) {
                log::debug!("{}:{}: the router did not select ALPN h2", me.host, me.port);
            }
            Ok(TokioIo::new(Linger::new(tls, fd, me.sockets)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::{client, server::Router, token};
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A TCP proxy of one connection to `to`: it relays both ways until
    /// `frozen` is set, then neither reads, writes nor closes (a black hole:
    /// a router behind a dead link) until `done` is set.
    fn black_hole(to: &str, frozen: Arc<AtomicBool>, done: Arc<AtomicBool>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let at = l.local_addr().unwrap();
        let to: SocketAddr = to.parse().unwrap();
        std::thread::spawn(move || {
            let (a, _) = l.accept().unwrap();
            let b = std::net::TcpStream::connect(to).unwrap();
            let pipe = |mut from: std::net::TcpStream, mut into: std::net::TcpStream| {
                let (frozen, done) = (frozen.clone(), done.clone());
                std::thread::spawn(move || {
                    from.set_read_timeout(Some(Duration::from_millis(10)))
                        .unwrap();
                    let mut buf = [0u8; 65536];
                    while !done.load(Ordering::Acquire) {
                        if frozen.load(Ordering::Acquire) {
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                        match from.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => {
                                if into.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                                ) => {}
                            Err(_) => break,
                        }
                    }
                })
            };
            let one = pipe(a.try_clone().unwrap(), b.try_clone().unwrap());
            let two = pipe(b, a);
            let _ = one.join();
            let _ = two.join();
        });
        at
    }

    /// HTTP/2 keepalive gives up on a router that went silent without
    /// closing (a dead link): a receive waiting forever ends with a
    /// connection error within the keepalive's interval and timeout.
    #[test]
    fn keepalive_ends_a_stream_whose_router_went_silent() {
        let r = Router::serve("grpc://127.0.0.1:0?key=k").unwrap();
        let host = r.address().strip_prefix("grpc://").unwrap().to_owned();
        let (frozen, done) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let via = black_hole(&host, frozen.clone(), done.clone());
        let tok = token::mint("k", "dead-link", Duration::from_secs(60)).unwrap();
        let long = Some(Duration::from_secs(10));
        let a = client::connect(r.address(), &tok, long).unwrap();
        let b = client::connect(&format!("grpc://{via}"), &tok, long).unwrap();
        b.send(b"hi", long).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(a.receive(&mut buf, long), Ok(Some(2)));

        frozen.store(true, Ordering::Release);
        let t0 = Instant::now();
        let r2 = b.receive(&mut buf, None);
        let took = t0.elapsed();
        assert!(
            matches!(r2, Err(Error::Connection(_))),
            "a receive behind a dead link: {r2:?}"
        );
        let bound = KEEPALIVE_INTERVAL + KEEPALIVE_TIMEOUT + Duration::from_secs(2);
        assert!(took < bound, "ended after {took:?}, bound {bound:?}");
        done.store(true, Ordering::Release);
        b.close();
        a.close();
        r.close();
    }
}
