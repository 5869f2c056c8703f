//! Faults, through the Rust API, each answered with the right `Error` within
//! its timeout: a refused connect (TCP and Unix), a connect that never
//! completes (a listener whose backlog is full), a peer that resets the
//! connection mid-stream (SO_LINGER 0, or closing with unread data), a peer
//! process killed with SIGKILL mid-stream, a forwarding target that refuses,
//! a reset on either side of a forward (listener or `forward`), which must
//! reach the other side as a reset, never as a clean end, and receive
//! timeouts that lose nothing.

use crate::common;

use common::*;
use jumpwire::forward::{Listener, forward};
use jumpwire::{Error, Network, Stream};
use socket2::SockRef;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[track_caller]
fn assert_connection<T: std::fmt::Debug>(r: jumpwire::Result<T>) {
    match r {
        Err(Error::Connection(_)) => {}
        other => panic!("expected Error::Connection, got {other:?}"),
    }
}

/// A TCP address on which nothing listens (bound, then released).
fn refused_addr(bind: &str) -> SocketAddr {
    TcpListener::bind(bind).unwrap().local_addr().unwrap()
}

// ---------------------------------------------------------------- connect

#[test]
fn connect_to_a_refused_port_is_a_connection_error() {
    let mut urls = vec![format!("tcp://{}", refused_addr("127.0.0.1:0"))];
    if have_ipv6() {
        urls.push(format!("tcp://{}", refused_addr("[::1]:0")));
    }
    for url in urls {
        let (r, took) = timed(|| jumpwire::connect(&url, Some(Duration::from_secs(5))));
        assert_connection(r);
        assert!(took < SLACK, "{url}: refusal took {took:?}");
    }
}

#[test]
fn connect_to_a_unix_socket_nobody_listens_on_is_a_connection_error() {
    let dir = TempDir::new("refused");
    let path = dir.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap()); // the file stays
    let (r, took) = timed(|| jumpwire::connect(&format!("unix:{}", path.display()), LONG));
    assert_connection(r);
    assert!(took < SLACK, "refusal took {took:?}");
}

#[test]
fn connect_times_out_when_the_peer_never_answers() {
    let (_l, _fillers, addr) = full_backlog();
    let url = format!("tcp://{addr}");
    let (r, took) = timed(|| jumpwire::connect(&url, ms(300)));
    assert_timeout(r);
    assert_between(took, Duration::from_millis(250), SLACK);
    // A zero timeout gives up at once.
    let (r, took) = timed(|| jumpwire::connect(&url, Some(Duration::ZERO)));
    assert_timeout(r);
    assert!(took < SLACK, "took {took:?}");
}

// ---------------------------------------------------------------- resets

/// Receives exactly `want` and nothing else.
fn expect_bytes(s: &Stream, want: &[u8]) {
    assert_eq!(
        recv_exact(s, want.len(), 4096, Duration::from_secs(5)),
        want
    );
}

/// After the peer's RST: receive fails with `Connection` (again on a later
/// call), and a send fails with `Connection` too.
fn check_reset(s: &Stream) {
    let mut buf = [0u8; 64];
    let (r, took) = timed(|| s.receive(&mut buf, Some(Duration::from_secs(5))));
    assert_connection(r);
    assert!(took < SLACK, "the reset was noticed after {took:?}");
    assert_connection(s.receive(&mut buf, LONG));
    assert_connection(s.receive(&mut buf, Some(Duration::ZERO)));
    assert_connection(s.send(b"anyone there?", LONG));
    assert_connection(s.send(b"still?", LONG));
}

#[test]
fn peer_reset_with_linger_zero() {
    let (s, mut peer) = tcp_pair();
    peer.write_all(b"before the reset").unwrap();
    expect_bytes(&s, b"before the reset");
    SockRef::from(&peer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(peer); // RST
    check_reset(&s);
}

#[test]
fn peer_closing_with_unread_data_resets() {
    let (s, mut peer) = tcp_pair();
    s.send(&[7u8; 100], LONG).unwrap();
    peer.write_all(b"bye").unwrap();
    expect_bytes(&s, b"bye");
    // Wait until our 100 bytes are in the peer's receive queue, unread.
    let mut peek = [0u8; 100];
    let deadline = Instant::now() + SLACK;
    while peer.peek(&mut peek).unwrap() < 100 {
        assert!(Instant::now() < deadline, "our bytes never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(peer); // unread data: the kernel answers with RST, not FIN
    check_reset(&s);
}

// ---------------------------------------------------------------- peer vanishes

/// A child process, killed (SIGKILL, by its pid) and reaped on drop.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const PY_SERVER: &str = r#"
import socket, sys, time
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(1)
print(l.getsockname()[1], flush=True)
c, _ = l.accept()
c.sendall(b"sent before dying")
time.sleep(60)
"#;

#[test]
fn peer_process_killed_mid_stream() {
    let child = match Command::new("python3")
        .args(["-c", PY_SERVER])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("skipped: python3 is not installed");
            return;
        }
        Err(e) => panic!("spawning python3: {e}"),
    };
    let mut peer = Peer(child);
    let mut line = String::new();
    BufReader::new(peer.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().expect("the child prints its port");
    let s = jumpwire::connect(&format!("tcp://127.0.0.1:{port}"), LONG).unwrap();
    expect_bytes(&s, b"sent before dying");

    peer.0.kill().unwrap(); // SIGKILL to the child's pid
    peer.0.wait().unwrap();

    // The kernel closes the dead process's socket: EOF (FIN) or a reset.
    let timeout = Duration::from_secs(5);
    let mut buf = [0u8; 64];
    let (r, took) = timed(|| s.receive(&mut buf, Some(timeout)));
    match r {
        Ok(None) | Err(Error::Connection(_)) => {}
        other => panic!("expected EOF or Error::Connection, got {other:?}"),
    }
    assert!(took < timeout + SLACK, "took {took:?}");

    // Sending to the dead peer fails with Connection: the first send may
    // still be accepted locally; the peer's kernel answers it with RST.
    let mut last = Ok(());
    for _ in 0..100 {
        last = s.send(b"hello?", LONG);
        if last.is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_connection(last);
}

// ---------------------------------------------------------------- forwarding

#[test]
fn listener_whose_target_refuses_resets_the_client() {
    let target = Network::new(&format!("tcp://{}", refused_addr("127.0.0.1:0"))).unwrap();
    let listener = Listener::bind("tcp://127.0.0.1:0", &target).unwrap();
    let s = jumpwire::connect(listener.address(), LONG).unwrap();
    let mut buf = [0u8; 16];
    let timeout = Duration::from_secs(5);
    let (r, took) = timed(|| s.receive(&mut buf, Some(timeout)));
    // A reset, never a clean end: the client must not take it for success.
    assert_connection(r);
    assert!(took < timeout, "took {took:?}");
}

/// A client of `listener` sends `len` bytes, then waits for the listener's
/// answer: a failure of the target must reach it as an error (on a send, or
/// on the receive), never as a clean end of stream.
fn client_sees_an_error(listener: &Listener, len: usize) {
    let s = jumpwire::connect(listener.address(), LONG).unwrap();
    let data = pattern(len, 3);
    for chunk in data.chunks(64 * 1024) {
        match s.send(chunk, LONG) {
            Ok(()) => {}
            Err(e) => return assert_connection::<()>(Err(e)),
        }
    }
    let mut buf = [0u8; 64];
    let (r, took) = timed(|| s.receive(&mut buf, Some(Duration::from_secs(5))));
    assert_connection(r);
    assert!(took < SLACK, "took {took:?}");
}

#[test]
fn listener_turns_a_target_reset_into_a_client_reset() {
    // The target reads 1 MiB of the client's 2 MiB, then resets.
    let (url, target) = tcp_target(|mut c| {
        let mut buf = vec![0u8; 1 << 20];
        c.read_exact(&mut buf).unwrap();
        SockRef::from(&c).set_linger(Some(Duration::ZERO)).unwrap();
    });
    let l = Listener::bind("tcp://127.0.0.1:0", &Network::new(&url).unwrap()).unwrap();
    client_sees_an_error(&l, 2 << 20);
    join(target);
}

#[test]
fn listener_turns_a_client_reset_into_a_target_reset() {
    let (tx, rx) = mpsc::channel();
    let (url, target) = tcp_target(move |mut c| {
        let mut buf = vec![0u8; 1000];
        c.read_exact(&mut buf).unwrap();
        tx.send(()).unwrap();
        c.read(&mut buf)
    });
    let l = Listener::bind("tcp://127.0.0.1:0", &Network::new(&url).unwrap()).unwrap();
    let mut c = std::net::TcpStream::connect(&l.address()["tcp://".len()..]).unwrap();
    c.write_all(&[1u8; 1000]).unwrap();
    rx.recv_timeout(SLACK).expect("the target got the bytes");
    SockRef::from(&c).set_linger(Some(Duration::ZERO)).unwrap();
    drop(c); // RST
    match join(target) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the target saw {other:?}, not a reset"),
    }
}

#[test]
fn forward_fails_and_resets_the_other_side_when_one_side_resets() {
    let (a, mut pa) = tcp_pair();
    let (b, mut pb) = tcp_pair();
    let f = std::thread::spawn(move || (forward(&a, &b), a, b));
    pa.write_all(b"through").unwrap();
    let mut buf = [0u8; 7];
    pb.read_exact(&mut buf).unwrap();
    SockRef::from(&pb).set_linger(Some(Duration::ZERO)).unwrap();
    drop(pb); // b's peer resets
    let (r, a, b) = join(f);
    assert_connection(r);
    // `a` was reset: its calls say closed, and its peer gets an RST (not
    // EOF) once it is dropped.
    assert!(matches!(a.send(b"x", LONG), Err(Error::Closed(_))));
    drop((a, b));
    pa.set_read_timeout(Some(SLACK)).unwrap();
    match pa.read(&mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("a's peer saw {other:?}, not a reset"),
    }
}

#[test]
fn forward_between_echo_and_a_reset_tcp_peer_fails() {
    let echo = Network::new("echo:").unwrap().connect(LONG).unwrap();
    let (b, mut pb) = tcp_pair();
    let f = std::thread::spawn(move || forward(&echo, &b));
    // Echo sends what it gets back: the peer's bytes come back to it.
    pb.write_all(b"round").unwrap();
    let mut buf = [0u8; 5];
    pb.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"round");
    SockRef::from(&pb).set_linger(Some(Duration::ZERO)).unwrap();
    drop(pb);
    assert_connection(join(f));
}

// ---------------------------------------------------------------- timeouts lose nothing

#[test]
fn receive_timeouts_lose_nothing() {
    let (s, peer) = tcp_pair();
    let (tx, rx) = mpsc::channel::<usize>();
    // The peer writes a block each time it is told to, then closes.
    let writer = std::thread::spawn(move || {
        let mut peer = peer;
        for (i, len) in rx.into_iter().enumerate() {
            peer.write_all(&pattern(len, 50 + i as u64)).unwrap();
        }
    });
    let mut buf = [0u8; 1000];
    for (i, len) in [1usize, 10_000, 300_000].into_iter().enumerate() {
        let (r, took) = timed(|| s.receive(&mut buf, ms(200)));
        assert_timeout(r);
        assert_between(took, Duration::from_millis(150), SLACK);
        assert_timeout(s.receive(&mut buf, Some(Duration::ZERO)));
        tx.send(len).unwrap();
        let got = recv_exact(&s, len, 1000, Duration::from_secs(10));
        assert!(got == pattern(len, 50 + i as u64), "block {i} differs");
    }
    assert_timeout(s.receive(&mut buf, ms(100)));
    drop(tx);
    join(writer);
    assert_eq!(s.receive(&mut buf, LONG), Ok(None));
}

// ---------------------------------------------------------------- udp

#[test]
fn udp_to_a_closed_port_reports_connection_once() {
    let addr = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let s = jumpwire::connect(&format!("udp://{addr}"), LONG).unwrap();
    s.send(b"anyone?", LONG).unwrap();
    // The ICMP port-unreachable comes back as a connection error ...
    let mut buf = [0u8; 64];
    let (r, took) = timed(|| s.receive(&mut buf, Some(Duration::from_secs(5))));
    assert_connection(r);
    assert!(took < SLACK, "took {took:?}");
    // ... once: it is about one datagram, and the stream stays usable.
    assert_timeout(s.receive(&mut buf, ms(100)));
    let Ok(server) = std::net::UdpSocket::bind(addr) else {
        println!(
            "port {} was taken meanwhile; not checking the recovery",
            addr.port()
        );
        return;
    };
    server.set_read_timeout(Some(SLACK)).unwrap();
    s.send(b"now?", LONG).unwrap();
    let (n, from) = server.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"now?");
    server.send_to(b"yes", from).unwrap();
    let n = s.receive(&mut buf, LONG).unwrap().unwrap();
    assert_eq!(&buf[..n], b"yes");
}
