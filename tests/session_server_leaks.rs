//! Session server resource leaks (issue 14): 500 driver streams opened and
//! closed through a jumpwire session (cleanly, midway and at once, by
//! jumpwire's own client on one connection) leave the process with exactly
//! the threads and descriptors it had after a warm-up; an upstream client
//! (a Python process) killed in the middle of a stream leaves nothing
//! behind either; and closing the session lets go of everything it had.
//! ONE test, so that nothing else in this process changes the counts.
//! Needs `JW_PYTHON`.

mod common;

use common::session::python;
use common::{LONG, TempDir, counts, recv_to_eof, round_trip, tcp_echo_server};
use jumpwire::Network;
use jumpwire::session::{Exported, Session};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The process's (threads, fds) once they have not changed for 1.5 s (the
/// session's idle blocking threads go after 0.5 s), or after 20 s.
fn settled() -> (usize, usize) {
    let t0 = Instant::now();
    let (mut last, mut since) = (counts(), Instant::now());
    while t0.elapsed() < Duration::from_secs(20) && since.elapsed() < Duration::from_millis(1500) {
        std::thread::sleep(Duration::from_millis(20));
        let now = counts();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    last
}

fn streams(net: &Network, from: usize, to: usize) {
    for i in from..to {
        let s = net.connect(LONG).unwrap();
        match i % 3 {
            0 => {
                round_trip(&s, format!("stream {i}").as_bytes(), 64);
                s.send_eof().unwrap();
                assert_eq!(recv_to_eof(&s, Duration::from_secs(10)), b"");
            }
            1 => round_trip(&s, b"midway", 6),
            _ => {}
        }
        s.close();
    }
}

/// Waits (at most 10 s) for the session to have no driver stream open.
fn no_streams(s: &Session) {
    let t0 = Instant::now();
    while s.streams() > 0 && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(s.streams(), 0, "driver streams still open");
}

/// An upstream client that opens a stream of `tcp`, sends 1 MiB without
/// reading the echo, says SENT, and waits to be killed.
const VANISHING: &str = r#"
import sys, time
from jumpstarter.utils.env import env
with env() as client:
    with client.children["tcp"].stream() as s:
        s.send(b"x" * 65536)
        print("SENT", flush=True)
        time.sleep(600)
"#;

fn serve(path: &std::path::Path, echo: std::net::SocketAddr) -> Session {
    let drivers: Vec<(String, Arc<dyn Exported>)> = vec![
        (
            "tcp".into(),
            Arc::new(Network::new(&format!("tcp://{echo}")).unwrap()),
        ),
        ("echo".into(), Arc::new(Network::new("echo:").unwrap())),
    ];
    Session::serve(&format!("unix:{}", path.display()), drivers).unwrap()
}

#[test]
fn driver_streams_and_vanishing_clients_leave_nothing_behind() {
    let echo = tcp_echo_server("127.0.0.1:0");
    let dir = TempDir::new("sess-leak");
    let path = dir.path().join("s");
    // A first session, used and closed: what the library starts once (its
    // client's driver thread) is there from now on.
    let first = serve(&path, echo);
    let net = Network::new(&format!("jumpstarter:{}?driver=tcp", first.address())).unwrap();
    streams(&net, 0, 10);
    drop(net);
    first.close();
    let idle = settled();
    let session = serve(&path, echo);
    let tcp = Network::new(&format!("jumpstarter:{}?driver=tcp", session.address())).unwrap();
    let echo_net = Network::new(&format!("jumpstarter:{}?driver=echo", session.address())).unwrap();
    // Warm-up: the client's connection and threads, the session's pool.
    streams(&tcp, 0, 10);
    streams(&echo_net, 0, 10);
    no_streams(&session);
    let before = settled();
    let t0 = Instant::now();
    streams(&tcp, 10, 260);
    streams(&echo_net, 10, 260);
    eprintln!("500 session streams in {:?}", t0.elapsed());
    no_streams(&session);
    assert_eq!(
        settled(),
        before,
        "(threads, fds) before and after 500 streams"
    );

    // An upstream client killed in the middle of a stream.
    for _ in 0..3 {
        let mut child = Command::new(python())
            .arg("-c")
            .arg(VANISHING)
            .env("JUMPSTARTER_HOST", &path)
            .env(
                "JMP_DRIVERS_ALLOW",
                "jumpstarter_driver_network.*,jumpstarter_driver_composite.*",
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "SENT");
        assert_eq!(session.streams(), 1);
        child.kill().unwrap();
        child.wait().unwrap();
        no_streams(&session);
    }
    assert_eq!(settled(), before, "(threads, fds) after vanished clients");

    // The session goes with everything it had (the clients' connections
    // with their networks).
    drop(tcp);
    drop(echo_net);
    session.close();
    drop(session);
    assert_eq!(settled(), idle, "(threads, fds) after the close");
}
