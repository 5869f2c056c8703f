//! Helpers shared by the router tests: thread and fd counts, the exchanges a
//! pairing makes, a pairing through the C API, and the exporter paths that
//! plaintext and TLS routers (ours or upstream's) are all checked with.

use super::{LONG, join, pattern, recv_exact};
use jumpwire::ffi::{
    jw_router_connect, jw_router_token, jw_status, jw_stream, jw_stream_close, jw_stream_receive,
    jw_stream_send, jw_stream_send_eof,
};
use jumpwire::router;
use jumpwire::{Error, Network, Stream};
use std::ffi::{CString, c_char};
use std::net::SocketAddr;
use std::ptr::null_mut;
use std::time::Duration;

// The raw call's dependencies (the lib's own: tonic, tokio, rustls,
// tokio-rustls, bytes, prost; h2 as a dev-dependency).

pub use super::counts;

/// [`counts`] once they are back at `before`, or after 5 s: threads and fds
/// a close hands to the runtime can take a moment to go.
pub fn counts_back_to(before: (usize, usize)) -> (usize, usize) {
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while counts() != before && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    counts()
}

/// Receives exactly `want` within 30 s and checks it.
pub fn expect(s: &Stream, want: &[u8]) {
    assert_eq!(
        recv_exact(s, want.len(), 64 * 1024, Duration::from_secs(30)),
        want
    );
}

/// The next receive is EOF.
pub fn expect_eof(s: &Stream) {
    assert_eq!(s.receive(&mut [0u8; 16], LONG), Ok(None));
}

/// Two router streams of one token (`id`, minted with `key`) on the router
/// at `url`; the router pairs them.
pub fn pair_at(url: &str, key: &str, id: &str) -> (Stream, Stream) {
    let t = router::token::mint(key, id, Duration::from_secs(60)).unwrap();
    let a = router::connect(url, &t, LONG).unwrap();
    let b = router::connect(url, &t, LONG).unwrap();
    (a, b)
}

/// Both ends half-close, each sees the other's EOF, and both close.
pub fn end_pair(a: Stream, b: Stream) {
    a.send_eof().unwrap();
    expect_eof(&b);
    b.send_eof().unwrap();
    expect_eof(&a);
    a.close();
    b.close();
}

/// A ping one way, a pong back, then half-close each way.
pub fn ping_pong(a: &Stream, b: &Stream, i: usize) {
    let msg = format!("ping {i}");
    a.send(msg.as_bytes(), LONG).unwrap();
    expect(b, msg.as_bytes());
    b.send(b"pong", LONG).unwrap();
    expect(a, b"pong");
    a.send_eof().unwrap();
    expect_eof(b);
    b.send_eof().unwrap();
    expect_eof(a);
}

/// Mints a token for `id` with `key` through the C API.
pub fn c_token(key: &str, id: &str) -> [c_char; 1024] {
    let (key, id) = (CString::new(key).unwrap(), CString::new(id).unwrap());
    let mut tok = [0 as c_char; 1024];
    assert_eq!(
        jw_router_token(key.as_ptr(), id.as_ptr(), 60, tok.as_mut_ptr(), tok.len()),
        jw_status::JW_OK
    );
    tok
}

/// Two C streams on `url` with the same token, and "hi" from the first to
/// the second.
pub fn c_pair(url: &str, tok: &[c_char]) -> (*mut jw_stream, *mut jw_stream) {
    let url = CString::new(url).unwrap();
    let (mut a, mut b): (*mut jw_stream, *mut jw_stream) = (null_mut(), null_mut());
    assert_eq!(
        jw_router_connect(url.as_ptr(), tok.as_ptr(), 10_000, &mut a),
        jw_status::JW_OK
    );
    assert_eq!(
        jw_router_connect(url.as_ptr(), tok.as_ptr(), 10_000, &mut b),
        jw_status::JW_OK
    );
    assert_eq!(
        jw_stream_send(a, b"hi".as_ptr().cast(), 2, 10_000),
        jw_status::JW_OK
    );
    let mut buf = [0u8; 8];
    let mut n = 0usize;
    assert_eq!(
        jw_stream_receive(b, buf.as_mut_ptr().cast(), buf.len(), &mut n, 10_000),
        jw_status::JW_OK
    );
    assert_eq!(&buf[..n], b"hi");
    (a, b)
}

/// A whole pairing through the C API (key `leak-key`): "hi", half-close
/// both ways, EOF, close.
pub fn c_pairing(url: &str, i: usize) {
    let tok = c_token("leak-key", &format!("c{i}"));
    let (a, b) = c_pair(url, &tok);
    assert_eq!(jw_stream_send_eof(a), jw_status::JW_OK);
    assert_eq!(jw_stream_send_eof(b), jw_status::JW_OK);
    let mut buf = [0u8; 8];
    let mut n = 0usize;
    assert_eq!(
        jw_stream_receive(a, buf.as_mut_ptr().cast(), buf.len(), &mut n, 10_000),
        jw_status::JW_EOF
    );
    jw_stream_close(a);
    jw_stream_close(b);
}

/// An exporter of the network `target` (a URL) through the router at `url`
/// with token `t`, on its own thread, for one stream.
pub fn spawn_exporter(
    url: &str,
    t: &str,
    target: &str,
) -> std::thread::JoinHandle<jumpwire::Result<()>> {
    let (url, t) = (url.to_string(), t.to_string());
    let target = Network::new(target).unwrap();
    std::thread::spawn(move || router::export(&url, &t, &target, LONG))
}

/// A client that leaves mid-stream ends its exporter's forward.
pub fn a_client_leaving_ends_the_export(url: &str, t: &str, echo: SocketAddr) {
    let exporter = spawn_exporter(url, t, &format!("tcp://{echo}"));
    let c = router::connect(url, t, LONG).unwrap();
    c.send(b"x", LONG).unwrap();
    assert_eq!(recv_exact(&c, 1, 16, Duration::from_secs(20)), b"x");
    drop(c);
    let r = join(exporter);
    assert!(matches!(r, Ok(()) | Err(Error::Connection(_))), "{r:?}");
}

/// A local TCP port forwarded onto router streams of `url` with token `t`
/// reaches an exporter of `tcp://{echo}` on every connection (3 in turn,
/// ~300 KB each way with half-close).
pub fn a_forwarded_port_reaches_the_exporter(url: &str, t: &str, echo: SocketAddr) {
    let target = Network::new(&format!("tcp://{echo}")).unwrap();
    let routed = Network::router(url, t).unwrap();
    let l = jumpwire::forward::Listener::bind("tcp://127.0.0.1:0", &routed).unwrap();
    const CONNECTIONS: usize = 3;
    let exporter = {
        let (url, t) = (url.to_string(), t.to_string());
        std::thread::spawn(move || {
            (0..CONNECTIONS)
                .map(|_| router::export(&url, &t, &target, LONG))
                .collect::<Vec<_>>()
        })
    };
    for i in 0..CONNECTIONS {
        let c = jumpwire::connect(l.address(), LONG).unwrap();
        let data = pattern(300_000 + i, i as u64);
        std::thread::scope(|s| {
            s.spawn(|| {
                c.send(&data, LONG).unwrap();
                c.send_eof().unwrap();
            });
            expect(&c, &data);
            expect_eof(&c);
        });
    }
    assert_eq!(join(exporter), vec![Ok(()); CONNECTIONS]);
    l.close();
}

/// A local port forwarded onto a router network that cannot work (a wrong
/// token, an untrusted certificate): each connection ends within `within`
/// instead of hanging.
pub fn a_forward_that_cannot_work_ends(routed: &Network, within: Duration) {
    let l = jumpwire::forward::Listener::bind("tcp://127.0.0.1:0", routed).unwrap();
    let c = jumpwire::connect(l.address(), LONG).unwrap();
    let t0 = std::time::Instant::now();
    let end = c.receive(&mut [0u8; 16], LONG);
    assert!(
        matches!(end, Ok(None) | Err(Error::Connection(_))),
        "{end:?}"
    );
    assert!(t0.elapsed() < within, "{:?}", t0.elapsed());
    l.close();
}

/// A raw HTTP/2 `RouterService/Stream` call made with the h2 crate (no gRPC
/// layer): for what a gRPC client never does on its own (cancel a call with
/// RST_STREAM CANCEL, cut its connection without a goodbye, send a
/// malformed message). Its connection runs on a runtime of its own; dropping
/// the call cuts the connection (no GOAWAY, no END_STREAM).
pub struct RawCall {
    pub send: h2::SendStream<bytes::Bytes>,
    response: Option<h2::client::ResponseFuture>,
    ping: h2::PingPong,
    rt: tokio::runtime::Runtime,
}

/// A TLS client configuration (ALPN `h2`) that trusts exactly the
/// certificates of `pem` (a router's own certificate).
pub fn tls_client_config(pem: &str) -> rustls::ClientConfig {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    cfg
}

/// [`tls_client_config`] as a connector.
fn tls_client(pem: &str) -> tokio_rustls::TlsConnector {
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls_client_config(pem)))
}

/// Starts a raw call to `r` with `token` (over TLS for a `grpcs://` router).
pub fn raw_call(r: &jumpwire::router::Router, token: &str) -> RawCall {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (scheme, hostport) = r.address().split_once("://").unwrap();
    let hostport = hostport.to_string();
    let pem = r.certificate().map(str::to_owned);
    let uri = format!(
        "{}://{hostport}/jumpstarter.v1.RouterService/Stream",
        if scheme == "grpcs" { "https" } else { "http" }
    );
    let req = tonic::codegen::http::Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    let (send, response, ping) = rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(hostport.as_str())
            .await
            .unwrap();
        match pem {
            Some(pem) => {
                let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                let tls = tls_client(&pem).connect(name, tcp).await.unwrap();
                open_call(tls, req).await
            }
            None => open_call(tcp, req).await,
        }
    });
    RawCall {
        send,
        response: Some(response),
        ping,
        rt,
    }
}

type Opened = (
    h2::SendStream<bytes::Bytes>,
    h2::client::ResponseFuture,
    h2::PingPong,
);

/// The HTTP/2 handshake over `io` and the call `req` on it.
async fn open_call<T>(io: T, req: tonic::codegen::http::Request<()>) -> Opened
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (client, mut conn) = h2::client::handshake(io).await.unwrap();
    let ping = conn.ping_pong().unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut client = client.ready().await.unwrap();
    let (response, send) = client.send_request(req, false).unwrap();
    (send, response, ping)
}

/// A gRPC message (5-byte prefix) carrying a `StreamRequest` DATA frame.
pub fn grpc_data(payload: &[u8]) -> bytes::Bytes {
    use prost::Message;
    let m = jumpwire::router::pb::StreamRequest {
        payload: bytes::Bytes::copy_from_slice(payload),
        frame_type: jumpwire::router::pb::FrameType::Data as i32,
    }
    .encode_to_vec();
    let mut out = vec![0u8];
    out.extend_from_slice(&(m.len() as u32).to_be_bytes());
    out.extend_from_slice(&m);
    out.into()
}

impl RawCall {
    /// Sends raw bytes of the request body (whole gRPC messages or not).
    pub fn send_raw(&mut self, data: bytes::Bytes) {
        self.send.reserve_capacity(data.len());
        self.send.send_data(data, false).unwrap();
    }

    /// Waits (10 s at most) for the router's response headers: the call
    /// was paired.
    pub fn paired(&mut self) {
        let resp = self.response.take().expect("not awaited yet");
        let r = self
            .rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), resp).await });
        let r = r.expect("no answer within 10 s").expect("the call failed");
        assert_eq!(r.status(), 200);
    }

    /// Cancels the call (RST_STREAM CANCEL) and waits until the router has
    /// read it (a PING sent after it came back); the connection stays up.
    pub fn cancel(&mut self) {
        self.send.send_reset(h2::Reason::CANCEL);
        self.sync();
    }

    /// Waits until the router has read everything sent so far (a PING sent
    /// after it came back).
    pub fn sync(&mut self) {
        let ping = &mut self.ping;
        self.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), ping.ping(h2::Ping::opaque()))
                .await
                .expect("no PONG within 10 s")
                .unwrap();
        });
    }

    /// Cuts the connection: the socket closes with no goodbye.
    pub fn cut(self) {
        let RawCall {
            send,
            response,
            ping,
            rt,
        } = self;
        // The runtime first: the handles' drop then cannot send a reset.
        rt.shutdown_background();
        drop((send, response, ping));
    }
}
