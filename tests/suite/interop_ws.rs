//! Interop with the Python `websockets` library (the upstream peer): our
//! client against its server, its client against our server and our bridge.
//! Needs `JW_PYTHON` (a Python with `websockets`; `scripts/venv.sh` makes it).

use crate::common;

use common::{LONG, pattern, tcp_target};
use jumpwire::forward::Listener;
use jumpwire::websocket::Server;
use jumpwire::{Error, Network, Stream};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn python() -> String {
    std::env::var("JW_PYTHON").unwrap_or_else(|_| {
        panic!("JW_PYTHON is not set: run scripts/venv.sh and export JW_PYTHON=$(scripts/venv.sh)")
    })
}

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/ws_peer.py");

/// A Python process, killed (by its pid) when dropped.
struct Py(Child);

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the Python echo server; returns it and its `ws://` URL.
fn python_server() -> (Py, String) {
    let mut child = Command::new(python())
        .args([PEER, "server"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the Python websockets server");
    let out = child.stdout.take().unwrap();
    let py = Py(child);
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    let port = line
        .strip_prefix("PORT ")
        .unwrap_or_else(|| panic!("unexpected output {line:?}"))
        .trim()
        .to_string();
    (py, format!("ws://127.0.0.1:{port}/"))
}

/// Runs a Python client mode against `url`; asserts it printed OK.
fn python_client(mode: &str, url: &str) {
    let out = Command::new(python())
        .args([PEER, mode, url])
        .output()
        .expect("running the Python websockets client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim() == "OK",
        "python {mode}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn receive_exact(s: &Stream, n: usize) -> Vec<u8> {
    let mut got = Vec::with_capacity(n);
    let mut buf = vec![0u8; 1 << 16];
    while got.len() < n {
        let k = s.receive(&mut buf, LONG).unwrap().expect("data, not EOF");
        got.extend_from_slice(&buf[..k]);
    }
    assert_eq!(got.len(), n);
    got
}

#[test]
fn our_client_against_the_python_server() {
    let (_py, url) = python_server();
    let s = jumpwire::connect(&url, LONG).unwrap();
    // Binary, 0 bytes to 8 MiB; large ones come out over several receives.
    s.send(b"", LONG).unwrap();
    assert_eq!(s.receive(&mut [0u8; 4], LONG).unwrap(), Some(0));
    for n in [1, 125, 126, 65535, 65536, 1 << 20, 8 << 20] {
        let data = pattern(n, n as u64);
        s.send(&data, LONG).unwrap();
        assert!(receive_exact(&s, n) == data, "{n} bytes");
    }
    // Text messages arrive as their UTF-8 bytes.
    let text = "grüße ✓ 🚀";
    s.send(format!("as-text:{text}").as_bytes(), LONG).unwrap();
    assert_eq!(receive_exact(&s, text.len()), text.as_bytes());
    // The server pings us while we receive; our pong lets it answer.
    s.send(b"ping-me", LONG).unwrap();
    assert_eq!(receive_exact(&s, 7), b"pong-ok");
    // A close frame with a code other than 1000 or 1001 is a connection
    // error carrying the code and reason (Python's ConnectionClosedError),
    // on every later receive too.
    s.send(b"close 4000", LONG).unwrap();
    for _ in 0..2 {
        let r = s.receive(&mut [0u8; 4], LONG);
        assert!(
            matches!(&r, Err(Error::Connection(m)) if m.contains("code 4000: bye")),
            "{r:?}"
        );
    }
    s.close();
    // 1000 and 1001 are a clean end: EOF (ConnectionClosedOK).
    for code in [1000, 1001] {
        let s = jumpwire::connect(&url, LONG).unwrap();
        s.send(format!("close {code}").as_bytes(), LONG).unwrap();
        assert_eq!(s.receive(&mut [0u8; 4], LONG).unwrap(), None, "{code}");
        assert_eq!(s.receive(&mut [0u8; 4], LONG).unwrap(), None, "{code}");
        s.close();
    }
}

#[test]
fn our_client_closes_gracefully() {
    let (_py, url) = python_server();
    let s = jumpwire::connect(&url, LONG).unwrap();
    s.send(b"x", LONG).unwrap();
    assert_eq!(receive_exact(&s, 1), b"x");
    let t0 = Instant::now();
    s.close();
    assert!(
        t0.elapsed() < Duration::from_millis(900),
        "the server answered our close frame at once"
    );
}

#[test]
fn the_python_client_against_our_server() {
    let server = Server::serve("ws://127.0.0.1:0", |s| {
        let mut buf = vec![0u8; 16 << 20];
        while let Ok(Some(n)) = s.receive(&mut buf, None) {
            if s.send(&buf[..n], LONG).is_err() {
                break;
            }
        }
    })
    .unwrap();
    python_client("client", server.address());
    server.close();
}

#[test]
fn the_python_client_through_our_bridge() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("tcp://{}", l.local_addr().unwrap());
    let echo = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut buf = [0u8; 65536];
        loop {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if c.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let bridge = Listener::bind("ws://127.0.0.1:0", &Network::new(&target).unwrap()).unwrap();
    python_client("stream", bridge.address());
    echo.join().unwrap();
    bridge.close();
}

/// Runs a Python client mode with `args`: its stdout, trimmed.
fn python_output(args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(PEER)
        .args(args)
        .output()
        .expect("running the Python websockets client");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success(),
        "python {args:?}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_python_client_sees_the_bridge_targets_end_as_a_close_code() {
    // The target answers and ends: 1000, after its data.
    let (target, t) = tcp_target(|mut c| {
        let mut hello = [0u8; 5];
        c.read_exact(&mut hello).unwrap();
        c.write_all(b"goodbye").unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        (hello, rest)
    });
    let bridge = Listener::bind("ws://127.0.0.1:0", &Network::new(&target).unwrap()).unwrap();
    let out = python_output(&["bridge-eof", bridge.address()]);
    assert_eq!(out, "CLOSED 1000 goodbye");
    let (hello, rest) = t.join().unwrap();
    assert_eq!(&hello, b"hello");
    assert!(rest.is_empty(), "EOF after the client's answer");
    bridge.close();

    // The target fails (a reset): 1011.
    let (target, t) = tcp_target(|mut c| {
        let mut hello = [0u8; 5];
        c.read_exact(&mut hello).unwrap();
        c.write_all(b"oops").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        socket2::SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(c);
    });
    let bridge = Listener::bind("ws://127.0.0.1:0", &Network::new(&target).unwrap()).unwrap();
    let out = python_output(&["bridge-eof", bridge.address()]);
    assert_eq!(out, "CLOSED 1011 oops");
    t.join().unwrap();
    bridge.close();
}

#[test]
fn the_python_clients_close_half_closes_the_bridge_target_after_its_data() {
    let n = 5 << 20;
    let (target, t) = tcp_target(|mut c| {
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        got
    });
    let bridge = Listener::bind("ws://127.0.0.1:0", &Network::new(&target).unwrap()).unwrap();
    let out = python_output(&["send-close", bridge.address(), &n.to_string()]);
    assert_eq!(out, "CLOSED 1000");
    let got = t.join().unwrap();
    assert!(got == pattern_py(n, 5), "every byte, then EOF");
    bridge.close();
}

#[test]
fn the_python_client_gets_the_binary_subprotocol_and_the_origin_check() {
    let echo_handler = |s: &std::sync::Arc<Stream>| {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(Some(n)) = s.receive(&mut buf, None) {
            if s.send(&buf[..n], LONG).is_err() {
                break;
            }
        }
    };
    // Our server and our bridge both answer "binary" (Python checks that
    // the answer is one it offered).
    let server = Server::serve("ws://127.0.0.1:0", echo_handler).unwrap();
    assert_eq!(
        python_output(&["subprotocol", server.address()]),
        "SUBPROTOCOL binary"
    );
    server.close();
    let echo = common::tcp_echo_server("127.0.0.1:0");
    let target = Network::new(&format!("tcp://{echo}")).unwrap();
    let bridge = Listener::bind("ws://127.0.0.1:0", &target).unwrap();
    assert_eq!(
        python_output(&["subprotocol", bridge.address()]),
        "SUBPROTOCOL binary"
    );
    bridge.close();
    // A list without binary: none answered, and Python accepts that.
    let server = Server::serve("ws://127.0.0.1:0?protocols=base64", echo_handler).unwrap();
    assert_eq!(
        python_output(&["subprotocol", server.address()]),
        "SUBPROTOCOL None"
    );
    server.close();
    // An origin allow-list: 403 for another origin, in for a listed one.
    let bridge = Listener::bind("ws://127.0.0.1:0?origins=http://lab.example", &target).unwrap();
    assert_eq!(
        python_output(&["subprotocol", bridge.address(), "http://evil.example"]),
        "REFUSED 403"
    );
    assert_eq!(
        python_output(&["subprotocol", bridge.address(), "http://lab.example"]),
        "SUBPROTOCOL binary"
    );
    assert_eq!(bridge.refusal_stats().forbidden, 1);
    bridge.close();
}

#[test]
fn a_wss_close_beside_a_blocked_sender_is_immediate() {
    let (_dir, cert, key) = self_signed();
    let (_py, port) = python_tls_server(&cert, &key);
    let url = format!("wss://localhost:{port}/#ca={cert}");
    let s = std::sync::Arc::new(jumpwire::connect(&url, LONG).unwrap());
    // We never read: the server's echoes back up until it stops reading,
    // and then our sends time out.
    let big = vec![5u8; 256 << 10];
    let until = Instant::now() + Duration::from_secs(20);
    while s.send(&big, Some(Duration::from_millis(50))).is_ok() {
        assert!(Instant::now() < until, "the server's buffers never filled");
    }
    let sender = {
        let s = s.clone();
        std::thread::spawn(move || s.send(&vec![1u8; 1 << 20], None))
    };
    std::thread::sleep(Duration::from_millis(20));
    let t0 = Instant::now();
    s.close();
    let took = t0.elapsed();
    let r = sender.join().unwrap();
    assert!(took < Duration::from_millis(200), "close took {took:?}");
    assert!(r.is_err(), "the blocked send fails: {r:?}");
}

/// ws_peer.py's `pattern(n, seed)`.
fn pattern_py(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + seed) % 251) as u8).collect()
}

/// A self-signed certificate for localhost and 127.0.0.1, written to a temp
/// dir: (dir, cert path, key path).
fn self_signed() -> (common::TempDir, String, String) {
    let dir = common::TempDir::new("wss");
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let s = |p: std::path::PathBuf| p.to_str().unwrap().to_string();
    (dir, s(cert), s(key))
}

fn python_tls_server(cert: &str, key: &str) -> (Py, u16) {
    let mut child = Command::new(python())
        .args([PEER, "tls-server", cert, key])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the Python websockets TLS server");
    let out = child.stdout.take().unwrap();
    let py = Py(child);
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    let port = line
        .strip_prefix("PORT ")
        .unwrap_or_else(|| panic!("unexpected output {line:?}"))
        .trim()
        .parse()
        .unwrap();
    (py, port)
}

#[test]
fn wss_verifies_the_server_against_a_ca_file_or_the_system_roots() {
    let (_dir, cert, key) = self_signed();
    let (_py, port) = python_tls_server(&cert, &key);
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("wss://{host}:{port}/x?y=1#ca={cert}");
        let s = jumpwire::connect(&url, LONG).unwrap();
        for n in [0, 5, 70_000, 2 << 20] {
            let data = pattern(n, 9);
            s.send(&data, LONG).unwrap();
            if n == 0 {
                assert_eq!(s.receive(&mut [0u8; 4], LONG).unwrap(), Some(0));
            } else {
                assert!(receive_exact(&s, n) == data, "{n} bytes over wss");
            }
        }
        s.send(b"close 1000", LONG).unwrap();
        assert_eq!(s.receive(&mut [0u8; 4], LONG).unwrap(), None);
        s.close();
    }
    // One thread sends while another receives.
    let s = std::sync::Arc::new(
        jumpwire::connect(&format!("wss://localhost:{port}/#ca={cert}"), LONG).unwrap(),
    );
    let reader = {
        let s = s.clone();
        std::thread::spawn(move || {
            for i in 0..500u32 {
                let want = pattern(1000 + i as usize, u64::from(i));
                assert!(receive_exact(&s, want.len()) == want, "message {i}");
            }
        })
    };
    for i in 0..500u32 {
        s.send(&pattern(1000 + i as usize, u64::from(i)), LONG)
            .unwrap();
    }
    reader.join().unwrap();
    s.close();
    // The self-signed certificate is not in the system roots.
    let r = jumpwire::connect(&format!("wss://localhost:{port}/"), LONG);
    assert!(
        matches!(&r, Err(jumpwire::Error::Connection(m)) if m.contains("TLS")),
        "{r:?}"
    );
    // ... unless verification is off.
    let s = jumpwire::connect(&format!("wss://localhost:{port}/#insecure=1"), LONG).unwrap();
    s.send(b"hi", LONG).unwrap();
    assert_eq!(receive_exact(&s, 2), b"hi");
    s.close();
    // A CA file that does not exist.
    let r = jumpwire::connect(
        &format!("wss://localhost:{port}/#ca=/nonexistent/ca.pem"),
        LONG,
    );
    assert!(
        matches!(&r, Err(jumpwire::Error::InvalidArgument(m)) if m.contains("/nonexistent/ca.pem")),
        "{r:?}"
    );
}
