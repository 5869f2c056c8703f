//! `grpcs://`: TLS for the router client (a connector for tonic) and the
//! router server (its certificate, and an accept loop that does each
//! handshake in its own task under a time limit). rustls with the `ring`
//! provider, ALPN `h2`, as gRPC over TLS requires.

use super::drive::{Linger, Sockets};
use super::gate::{Gate, Guarded, halted};
use crate::error::{Error, Result};
use crate::tls::{certs_pem, client_config, load_certs, load_key, provider};
use crate::url::{RouterConfig, RouterListenConfig};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ServerConfig};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::{Service, http};
use tonic::transport::server::TcpConnectInfo;

/// How long a client has for its TLS handshake with the router.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes in progress at once; a connection past that is closed at
/// once (a flood of silent clients cannot take every descriptor).
pub(super) const MAX_HANDSHAKES: usize = 256;

const ALPN_H2: &[u8] = b"h2";

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

/// Dials `HOST:PORT` over TCP and does the TLS handshake; a
/// `Service<Uri>` for `Endpoint::connect_with_connector` (the URI is
/// ignored: the connector knows where it goes).
#[derive(Clone)]
pub(super) struct Connector {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    /// The stream runtime's sockets (see [`Linger`]).
    sockets: Arc<Sockets>,
}

impl Connector {
    /// The connector for `cfg` (`grpcs://`): verified against the system
    /// roots, or against `?ca=FILE`, or not at all (`?insecure=1`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a CA file that cannot be read or holds
    /// no certificate, or a host that is not a valid TLS server name.
    pub(super) fn new(cfg: &RouterConfig, name: &str, sockets: Arc<Sockets>) -> Result<Connector> {
        let mut config: ClientConfig = client_config(cfg.ca.as_deref(), cfg.insecure, name, "?ca")?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        let server_name = ServerName::try_from(cfg.host.clone())
            .map_err(|e| Error::invalid(format!("{name}: {}: {e}", cfg.host)))?;
        Ok(Connector {
            host: cfg.host.clone(),
            port: cfg.port,
            server_name,
            tls: TlsConnector::from(Arc::new(config)),
            sockets,
        })
    }
}

/// A client connection: TLS over TCP, watched and lingering (see [`Linger`]).
type ClientIo = TokioIo<Linger<tokio_rustls::client::TlsStream<TcpStream>>>;

type Connecting = Pin<Box<dyn Future<Output = io::Result<ClientIo>> + Send>>;

impl Service<http::Uri> for Connector {
    type Response = ClientIo;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Connecting {
        let me = self.clone();
        Box::pin(async move {
            let tcp = TcpStream::connect((me.host.as_str(), me.port)).await?;
            tcp.set_nodelay(true)?;
            let fd = std::os::fd::AsRawFd::as_raw_fd(&tcp);
            let tls = me.tls.connect(me.server_name, tcp).await?;
            if tls.get_ref().1.alpn_protocol() != Some(ALPN_H2) {
                log::debug!("{}:{}: the router did not select ALPN h2", me.host, me.port);
            }
            Ok(TokioIo::new(Linger::new(tls, fd, me.sockets)))
        })
    }
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

/// The TLS side of a `grpcs://` router: its acceptor and certificate chain.
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

/// The connections whose handshake succeeded, for
/// `serve_with_incoming_shutdown`.
pub(super) type Incoming = ReceiverStream<io::Result<TlsConn>>;

/// A TLS connection the router serves, on probation at the gate until its
/// first admitted call.
pub(super) type TlsConn = Guarded<tokio_rustls::server::TlsStream<TcpStream>>;

/// Accepts TCP connections on `listener` until `stop` (or until the server
/// drops the returned stream) and does each TLS handshake in its own task,
/// bounded by [`HANDSHAKE_TIMEOUT`], so a client that stays silent holds up
/// nobody; at most `max_handshakes` at once ([`MAX_HANDSHAKES`]), a
/// connection past that is closed at once. Accepting goes through the
/// gate ([`Gate::accept`]: out of descriptors it makes room), and a
/// connection whose handshake succeeded enters it ([`Gate::enter`]); each
/// refusal is logged and counted there. Returns the stream of ready
/// connections and the accept loop (to be awaited with the server, so that
/// the port is released when both end).
pub(super) fn incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    stop: watch::Receiver<bool>,
    gate: Arc<Gate>,
    max_handshakes: usize,
) -> (Incoming, impl Future<Output = ()> + Send) {
    let (tx, rx) = mpsc::channel::<io::Result<TlsConn>>(16);
    let slots = Arc::new(tokio::sync::Semaphore::new(max_handshakes));
    let accepting = async move {
        let mut spare = std::fs::File::open("/dev/null").ok();
        loop {
            let next = tokio::select! {
                c = gate.accept(&listener, &mut spare, &stop) => c,
                () = tx.closed() => return,
            };
            let Some((tcp, peer)) = next else { return };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                gate.refuse(
                    &peer,
                    &format!("{max_handshakes} TLS handshakes already in progress"),
                );
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let info = TcpConnectInfo {
                local_addr: tcp.local_addr().ok(),
                remote_addr: Some(peer),
            };
            let (acceptor, tx, halt, gate) =
                (acceptor.clone(), tx.clone(), stop.clone(), gate.clone());
            tokio::spawn(async move {
                let shake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                let r = tokio::select! {
                    r = shake => r,
                    () = halted(halt) => return,
                };
                drop(slot);
                match r {
                    Ok(Ok(io)) => {
                        let _ = tx.send(Ok(gate.enter(io, info))).await;
                    }
                    Ok(Err(e)) => gate.refuse(&peer, &format!("TLS handshake: {e}")),
                    Err(_) => gate.refuse(
                        &peer,
                        &format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}"),
                    ),
                }
            });
        }
    };
    (ReceiverStream::new(rx), accepting)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
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
    fn handshakes_past_the_limit_are_closed_at_once_and_the_rest_go_on() {
        use std::io::Read;
        let rt = crate::router::runtime();
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let tls = server_tls(&listen("127.0.0.1")).unwrap();
        let (stop_tx, stop_rx) = watch::channel(false);
        let gate = Gate::new("test", Duration::from_secs(5), 8);
        let (mut ready, accepting) = incoming(listener, tls.acceptor, stop_rx, gate.clone(), 2);
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
}
