//! Interop with upstream Jumpstarter (Python, `jumpstarter==0.9.0`):
//! (a) a jumpwire client and an upstream `RouterStream` peer through a
//! jumpwire router; (b) a jumpwire client and a jumpwire exporter through a
//! router built from upstream's `RouterStream` servicer pattern. Bytes both
//! ways from 0 to 64 MiB, half-close, the end of either side. The same over
//! TLS (`grpcs://`: upstream trusting the jumpwire router's certificate as
//! its CA, and in upstream's insecure mode; a Python TLS router trusted by
//! jumpwire through `?ca=`), and (c) upstream's `connect_router_stream`
//! (always TLS) as the exporter side to a TCP echo, a jumpwire client on the
//! other end. Needs `JW_PYTHON` (`scripts/venv.sh` makes it).

use crate::common;

use common::routing::{a_client_leaving_ends_the_export, spawn_exporter};
use common::{LONG, TempDir, pattern, recv_exact, tcp_echo_server};
use jumpwire::router::{self, Router, token};
use jumpwire::{Error, Stream};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/router_peer.py");
const KEY: &str = "interop-key";

fn python() -> String {
    std::env::var("JW_PYTHON").unwrap_or_else(|_| {
        panic!("JW_PYTHON is not set: run scripts/venv.sh and export JW_PYTHON=$(scripts/venv.sh)")
    })
}

/// A Python process, killed (by its pid) when dropped.
struct Py(Child);

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> Py {
    Py(Command::new(python())
        .arg(PEER)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting Python"))
}

fn line(py: &mut Py) -> String {
    let mut l = String::new();
    BufReader::new(py.0.stdout.as_mut().unwrap())
        .read_line(&mut l)
        .unwrap();
    l.trim().to_string()
}

fn tok(id: &str) -> String {
    token::mint(KEY, id, Duration::from_secs(120)).unwrap()
}

/// Sends `data`, half-closes, and expects the same bytes back then EOF.
fn echo_through(s: &Stream, data: &[u8]) {
    std::thread::scope(|sc| {
        sc.spawn(|| {
            for c in data.chunks(1 << 20) {
                s.send(c, LONG).unwrap();
            }
            s.send_eof().unwrap();
        });
        let back = recv_exact(s, data.len(), 1 << 16, Duration::from_secs(60));
        assert!(back == data, "echo differs ({} bytes)", data.len());
        assert_eq!(
            s.receive(&mut [0u8; 8], LONG),
            Ok(None),
            "EOF after {} bytes",
            data.len()
        );
    });
}

/// `data` sent through `s` to an upstream peer (its `RouterStream` echoing,
/// or its exporter, `connect_router_stream`, in front of a TCP echo) and
/// back, every byte checked; the end of stream is sent only once everything
/// came back. Upstream's peer closes its channel as soon as its last write
/// and `done_writing` returned, and gRPC cancels what its transport still
/// holds of the call: a last write still waiting for the router's window is
/// lost (seen under load: 64 KiB short of 64 MiB, the router's pair failed
/// by the cancel). Sent after everything came back, our end of stream
/// leaves only upstream's GOAWAY at stake: the end is EOF, or the router's
/// error for the cancelled call.
fn echo_through_upstream(s: &Stream, data: &[u8]) {
    std::thread::scope(|sc| {
        let sending = sc.spawn(|| {
            for c in data.chunks(1 << 20) {
                s.send(c, LONG).unwrap();
            }
        });
        let back = recv_exact(s, data.len(), 1 << 16, Duration::from_secs(60));
        assert!(back == data, "echo differs ({} bytes)", data.len());
        sending.join().unwrap();
        s.send_eof().unwrap();
        match s.receive(&mut [0u8; 8], LONG) {
            Ok(None) => {}
            Err(jumpwire::Error::Connection(m)) if m.contains("stream ended") => {}
            other => panic!("after {} bytes: {other:?}", data.len()),
        }
    });
}

/// An upstream `RouterStream` peer (`peer` mode of router_peer.py, with
/// `tls` arguments) is killed mid-stream: the jumpwire client's stream on
/// `url` ends with EOF or a connection error.
fn an_upstream_peer_dying_ends_the_stream(url: &str, t: &str, tls: &[&str]) {
    let addr = url.split('?').next().unwrap();
    let mut py = spawn(&[&["peer", addr, t][..], tls].concat());
    let c = router::connect(url, t, LONG).unwrap();
    c.send(b"ping", LONG).unwrap();
    assert_eq!(recv_exact(&c, 4, 16, Duration::from_secs(20)), b"ping");
    py.0.kill().unwrap();
    let end = c.receive(&mut [0u8; 8], LONG);
    assert!(
        matches!(end, Ok(None) | Err(Error::Connection(_))),
        "{end:?}"
    );
}

#[test]
fn a_jumpwire_client_and_an_upstream_peer_through_a_jumpwire_router() {
    let r = Router::serve(&format!("grpc://127.0.0.1:0?key={KEY}")).unwrap();
    for (i, len) in [0usize, 1, 65_537, 1 << 20, 64 << 20]
        .into_iter()
        .enumerate()
    {
        let t = tok(&format!("a{i}"));
        let mut py = spawn(&["peer", r.address(), &t]);
        let c = router::connect(r.address(), &t, LONG).unwrap();
        echo_through_upstream(&c, &pattern(len, i as u64));
        assert_eq!(line(&mut py), "OK", "{len} bytes");
        assert!(py.0.wait().unwrap().success());
    }
    // The upstream peer dies mid-stream: the client's stream ends.
    an_upstream_peer_dying_ends_the_stream(r.address(), &tok("dies"), &[]);
}

#[test]
fn a_jumpwire_client_and_exporter_through_an_upstream_style_python_router() {
    let mut py = spawn(&["router"]);
    let port = line(&mut py);
    let url = format!("grpc://127.0.0.1:{}", port.strip_prefix("PORT ").unwrap());
    let echo = tcp_echo_server("127.0.0.1:0");
    for (i, len) in [0usize, 1, 65_537, 1 << 20, 64 << 20]
        .into_iter()
        .enumerate()
    {
        let t = tok(&format!("b{i}"));
        let exporter = spawn_exporter(&url, &t, &format!("tcp://{echo}"));
        let c = router::connect(&url, &t, LONG).unwrap();
        echo_through(&c, &pattern(len, i as u64));
        c.close();
        assert_eq!(exporter.join().unwrap(), Ok(()), "{len} bytes");
    }
    // The client leaves mid-stream: the exporter's forward ends.
    a_client_leaving_ends_the_export(&url, &tok("leaves"), echo);
}

// ---------------------------------------------------------------------------
// Over TLS
// ---------------------------------------------------------------------------

/// A `grpcs://` router, its certificate written to a file in `dir`, and the
/// URL that trusts it: `(router, ca file, url)`.
fn tls_router(dir: &Path) -> (Router, String, String) {
    let r = Router::serve(&format!("grpcs://127.0.0.1:0?key={KEY}")).unwrap();
    let ca = dir.join("router-ca.pem");
    std::fs::write(&ca, r.certificate().unwrap()).unwrap();
    let ca = ca.to_str().unwrap().to_string();
    let url = format!("{}?ca={ca}", r.address());
    (r, ca, url)
}

#[test]
fn tls_a_jumpwire_client_and_an_upstream_peer_through_a_jumpwire_router() {
    let dir = TempDir::new("interop-rtls-a");
    let (r, ca, url) = tls_router(dir.path());
    let ca_s = ca.as_str();
    // Upstream trusting the router's certificate (grpc ssl credentials with
    // it as root), and upstream's insecure mode (it fetches the chain and
    // trusts that).
    for (i, (len, tls)) in [
        (0usize, ca_s),
        (1, "insecure"),
        (65_537, ca_s),
        (1 << 20, "insecure"),
        (4 << 20, ca_s),
        (64 << 20, ca_s),
    ]
    .into_iter()
    .enumerate()
    {
        let t = tok(&format!("ta{i}"));
        let mut py = spawn(&["peer", r.address(), &t, tls]);
        let c = router::connect(&url, &t, LONG).unwrap();
        let t0 = Instant::now();
        echo_through_upstream(&c, &pattern(len, i as u64));
        eprintln!("{len} bytes echoed over TLS in {:?}", t0.elapsed());
        assert_eq!(line(&mut py), "OK", "{len} bytes");
        assert!(py.0.wait().unwrap().success());
    }
    // The upstream peer dies mid-stream: the client's stream ends.
    an_upstream_peer_dying_ends_the_stream(&url, &tok("tdies"), &[ca_s]);
    // The jumpwire client leaves mid-stream: the upstream peer's call ends
    // and it exits.
    let t = tok("tleaves");
    let mut py = spawn(&["peer", r.address(), &t, ca_s]);
    let c = router::connect(&url, &t, LONG).unwrap();
    c.send(b"pong", LONG).unwrap();
    assert_eq!(recv_exact(&c, 4, 16, Duration::from_secs(20)), b"pong");
    c.close();
    let t0 = Instant::now();
    while py.0.try_wait().unwrap().is_none() {
        assert!(t0.elapsed() < Duration::from_secs(20), "the peer goes on");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn tls_a_jumpwire_client_and_exporter_through_an_upstream_style_python_router() {
    let dir = TempDir::new("interop-rtls-b");
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let mut py = spawn(&["router", cert.to_str().unwrap(), key.to_str().unwrap()]);
    let port = line(&mut py);
    let port = port.strip_prefix("PORT ").unwrap();
    let url = format!("grpcs://127.0.0.1:{port}?ca={}", cert.display());
    let echo = tcp_echo_server("127.0.0.1:0");
    for (i, len) in [0usize, 1, 65_537, 1 << 20, 4 << 20]
        .into_iter()
        .enumerate()
    {
        let t = tok(&format!("tb{i}"));
        let exporter = spawn_exporter(&url, &t, &format!("tcp://{echo}"));
        // The client with insecure=1 every other time.
        let client_url = if i % 2 == 1 {
            format!("grpcs://127.0.0.1:{port}?insecure=1")
        } else {
            url.clone()
        };
        let c = router::connect(&client_url, &t, LONG).unwrap();
        echo_through(&c, &pattern(len, i as u64));
        c.close();
        assert_eq!(exporter.join().unwrap(), Ok(()), "{len} bytes");
    }
    // A client that does not trust the Python router's certificate.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let wrong = dir.path().join("wrong.pem");
    std::fs::write(&wrong, other.cert.pem()).unwrap();
    let t0 = Instant::now();
    let r = router::connect(
        &format!("grpcs://127.0.0.1:{port}?ca={}", wrong.display()),
        &tok("wrong"),
        LONG,
    );
    assert!(matches!(r, Err(Error::Connection(_))), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    // The client leaves mid-stream: the exporter's forward ends.
    a_client_leaving_ends_the_export(&url, &tok("tleaves"), echo);
}

#[test]
fn tls_upstream_connect_router_stream_and_a_jumpwire_client_through_a_jumpwire_router() {
    let dir = TempDir::new("interop-rtls-c");
    let (r, ca, url) = tls_router(dir.path());
    let ca_s = ca.as_str();
    let echo = tcp_echo_server("127.0.0.1:0");
    let echo_s = echo.to_string();
    for (i, (len, tls)) in [
        (0usize, ca_s),
        (1, "insecure"),
        (65_537, ca_s),
        (1 << 20, ca_s),
        (4 << 20, "insecure"),
        (64 << 20, ca_s),
    ]
    .into_iter()
    .enumerate()
    {
        let t = tok(&format!("tc{i}"));
        // Upstream's exporter side to the TCP echo, jumpwire's client.
        let mut py = spawn(&["connect", r.address(), &t, &echo_s, tls]);
        let c = router::connect(&url, &t, LONG).unwrap();
        echo_through_upstream(&c, &pattern(len, i as u64));
        assert_eq!(line(&mut py), "OK", "{len} bytes");
        assert!(py.0.wait().unwrap().success());
        c.close();
    }
    // The jumpwire client leaves mid-stream: upstream's forward ends.
    let t = tok("tcleaves");
    let mut py = spawn(&["connect", r.address(), &t, &echo_s, ca_s]);
    let c = router::connect(&url, &t, LONG).unwrap();
    c.send(b"bye", LONG).unwrap();
    assert_eq!(recv_exact(&c, 3, 16, Duration::from_secs(20)), b"bye");
    drop(c);
    let t0 = Instant::now();
    while py.0.try_wait().unwrap().is_none() {
        assert!(t0.elapsed() < Duration::from_secs(20), "upstream goes on");
        std::thread::sleep(Duration::from_millis(20));
    }
}
