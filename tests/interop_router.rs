//! Interop with upstream Jumpstarter (Python, `jumpstarter==0.9.0`):
//! (a) a jumpwire client and an upstream `RouterStream` peer through a
//! jumpwire router; (b) a jumpwire client and a jumpwire exporter through a
//! router built from upstream's `RouterStream` servicer pattern. Bytes both
//! ways from 0 to 64 MiB, half-close, the end of either side. Needs
//! `JW_PYTHON` (`scripts/venv.sh` makes it).

mod common;

use common::{LONG, pattern, recv_exact, tcp_echo_server};
use jumpwire::router::{self, Router, token};
use jumpwire::{Error, Network, Stream};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
        echo_through(&c, &pattern(len, i as u64));
        assert_eq!(line(&mut py), "OK", "{len} bytes");
        assert!(py.0.wait().unwrap().success());
    }
    // The upstream peer dies mid-stream: the client's stream ends.
    let t = tok("dies");
    let mut py = spawn(&["peer", r.address(), &t]);
    let c = router::connect(r.address(), &t, LONG).unwrap();
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
        let exporter = {
            let (url, t) = (url.clone(), t.clone());
            let target = Network::new(&format!("tcp://{echo}")).unwrap();
            std::thread::spawn(move || router::export(&url, &t, &target, LONG))
        };
        let c = router::connect(&url, &t, LONG).unwrap();
        echo_through(&c, &pattern(len, i as u64));
        c.close();
        assert_eq!(exporter.join().unwrap(), Ok(()), "{len} bytes");
    }
    // The client leaves mid-stream: the exporter's forward ends.
    let t = tok("leaves");
    let exporter = {
        let (url, t) = (url.clone(), t.clone());
        let target = Network::new(&format!("tcp://{echo}")).unwrap();
        std::thread::spawn(move || router::export(&url, &t, &target, LONG))
    };
    let c = router::connect(&url, &t, LONG).unwrap();
    c.send(b"x", LONG).unwrap();
    assert_eq!(recv_exact(&c, 1, 16, Duration::from_secs(20)), b"x");
    drop(c);
    let r = exporter.join().unwrap();
    assert!(matches!(r, Ok(()) | Err(Error::Connection(_))), "{r:?}");
}
