//! Websocket client, server handshake, server with handler and broadcast, the
//! `ws://` bridge, and bad input from clients.

use crate::common;

use common::{LONG, SLACK, ms, pattern, tcp_target};
use jumpwire::forward::Listener;
use jumpwire::websocket::{Limits, Server, ServerConfig};
use jumpwire::{Error, Network, Stream};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIG: usize = 16 << 20;

/// A server whose handler echoes every message (one receive = one message
/// with a buffer as large as the limit).
fn echo_server() -> Server {
    Server::serve("ws://127.0.0.1:0", |s| {
        let mut buf = vec![0u8; BIG];
        while let Ok(Some(n)) = s.receive(&mut buf, None) {
            if s.send(&buf[..n], LONG).is_err() {
                break;
            }
        }
    })
    .unwrap()
}

fn connect(server: &Server, path: &str) -> Stream {
    let url = format!("{}{path}", server.address());
    jumpwire::connect(&url, LONG).unwrap()
}

/// Receives exactly `n` bytes (one message may come in pieces).
fn receive_exact(s: &Stream, n: usize, piece: usize) -> Vec<u8> {
    let mut got = Vec::with_capacity(n);
    let mut buf = vec![0u8; piece];
    let until = Instant::now() + Duration::from_secs(30);
    while got.len() < n {
        assert!(
            Instant::now() < until,
            "timed out after {} of {n}",
            got.len()
        );
        let k = s.receive(&mut buf, LONG).unwrap().expect("data, not EOF");
        got.extend_from_slice(&buf[..k]);
    }
    assert_eq!(got.len(), n, "never more than one message");
    got
}

#[test]
fn messages_of_every_size_class_round_trip_and_large_ones_come_in_pieces() {
    let server = echo_server();
    let s = connect(&server, "/");
    for n in [1, 125, 126, 127, 65535, 65536, 65537, 3 << 20] {
        let data = pattern(n, n as u64);
        s.send(&data, LONG).unwrap();
        assert!(receive_exact(&s, n, 4096) == data, "{n} bytes");
    }
    // An empty message is a receive of 0 bytes.
    s.send(b"", LONG).unwrap();
    assert_eq!(s.receive(&mut [0u8; 8], LONG).unwrap(), Some(0));
    // Never two messages in one receive.
    s.send(b"abc", LONG).unwrap();
    s.send(b"defg", LONG).unwrap();
    let mut buf = [0u8; 64];
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(s.receive(&mut buf, LONG).unwrap(), Some(3));
    assert_eq!(s.receive(&mut buf, LONG).unwrap(), Some(4));
    assert_eq!(&buf[..4], b"defg");
    // A timeout consumes nothing.
    assert_eq!(s.receive(&mut buf, ms(30)), Err(Error::Timeout));
    s.send(b"after", LONG).unwrap();
    assert_eq!(s.receive(&mut buf, LONG).unwrap(), Some(5));
    s.close();
}

#[test]
fn a_large_message_read_straight_into_the_buffer_survives_a_timeout_midway() {
    // A hand-written server that sends one 200 kB frame in two halves.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", l.local_addr().unwrap());
    let data = pattern(200_000, 3);
    let server = {
        let data = data.clone();
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let head = read_head(&mut c);
            let key = head
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap();
            let accept = tungstenite::handshake::derive_accept_key(key.trim().as_bytes());
            write!(
                c,
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            )
            .unwrap();
            let mut frame = vec![0x82, 127];
            frame.extend_from_slice(&(data.len() as u64).to_be_bytes());
            frame.extend_from_slice(&data);
            c.write_all(&frame[..100_000]).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            c.write_all(&frame[100_000..]).unwrap();
            c.write_all(&[0x82, 3, b'e', b'n', b'd']).unwrap();
            let _ = c.read(&mut [0u8; 64]);
        })
    };
    let s = jumpwire::connect(&url, LONG).unwrap();
    let mut buf = vec![0u8; 300_000];
    assert_eq!(s.receive(&mut buf, ms(100)), Err(Error::Timeout));
    assert_eq!(s.receive(&mut buf, LONG).unwrap(), Some(data.len()));
    assert!(buf[..data.len()] == data[..], "every byte, in order");
    assert_eq!(s.receive(&mut buf, LONG).unwrap(), Some(3));
    assert_eq!(&buf[..3], b"end");
    s.close();
    server.join().unwrap();
}

#[test]
fn one_thread_sends_while_another_receives() {
    let server = echo_server();
    let s = Arc::new(connect(&server, "/"));
    let count = 2000;
    let reader = {
        let s = s.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            for i in 0..count {
                let n = s.receive(&mut buf, LONG).unwrap().unwrap();
                assert_eq!(&buf[..n], format!("m{i}").as_bytes());
            }
        })
    };
    for i in 0..count {
        s.send(format!("m{i}").as_bytes(), LONG).unwrap();
    }
    reader.join().unwrap();
    s.close();
}

#[test]
fn the_handler_sees_the_request_path_and_eof_on_close() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = {
        let seen = seen.clone();
        Server::serve("ws://127.0.0.1:0", move |s| {
            let path = jumpwire::websocket::request_path(s)
                .unwrap_or("?")
                .to_string();
            s.send(path.as_bytes(), LONG).unwrap();
            let r = s.receive(&mut [0u8; 8], LONG);
            lock(&seen).push((path, r));
        })
        .unwrap()
    };
    let s = connect(&server, "chat/room1?user=a%20b");
    let mut buf = [0u8; 64];
    let n = s.receive(&mut buf, LONG).unwrap().unwrap();
    assert_eq!(&buf[..n], b"/chat/room1?user=a%20b");
    s.close();
    let until = Instant::now() + SLACK;
    while lock(&seen).is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        *lock(&seen),
        [("/chat/room1?user=a%20b".to_string(), Ok(None))],
        "the client's close frame is EOF for the handler"
    );
    // A client stream has no request path.
    assert_eq!(
        jumpwire::websocket::request_path(&connect(&server, "/")),
        None
    );
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap()
}

#[test]
fn closing_the_server_sends_close_frames_and_joins_the_handlers() {
    let server = echo_server();
    let clients: Vec<Stream> = (0..5).map(|_| connect(&server, "/")).collect();
    for c in &clients {
        c.send(b"x", LONG).unwrap();
        assert_eq!(c.receive(&mut [0u8; 4], LONG).unwrap(), Some(1));
    }
    let t0 = Instant::now();
    server.close();
    assert!(t0.elapsed() < SLACK);
    for c in &clients {
        assert_eq!(
            c.receive(&mut [0u8; 4], LONG).unwrap(),
            None,
            "close is EOF"
        );
    }
    assert!(matches!(server.broadcast(b"late"), Err(Error::Closed(_))));
}

#[test]
fn broadcast_reaches_200_clients_in_order() {
    let server = Server::serve("ws://127.0.0.1:0", |s| {
        // Hold the connection until the client goes.
        while let Ok(Some(_)) = s.receive(&mut [0u8; 64], None) {}
    })
    .unwrap();
    let clients: Vec<Stream> = (0..200).map(|_| connect(&server, "/")).collect();
    let until = Instant::now() + Duration::from_secs(10);
    while server.connections() < 200 {
        assert!(Instant::now() < until, "{} connected", server.connections());
        std::thread::sleep(Duration::from_millis(10));
    }
    let count = 50;
    for i in 0..count {
        let msg = pattern(1024, i);
        assert_eq!(server.broadcast(&msg).unwrap(), 200);
    }
    let clients = Arc::new(clients);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let clients = clients.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 4096];
                for c in clients.iter().skip(t).step_by(4) {
                    for i in 0..count {
                        let n = c.receive(&mut buf, LONG).unwrap().unwrap();
                        assert!(buf[..n] == pattern(1024, i), "message {i} in order");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(server.dropped(), 0);
    server.close();
}

#[test]
fn a_client_that_stops_reading_is_dropped_and_the_others_get_everything() {
    let config = ServerConfig {
        queue: 8,
        ..ServerConfig::default()
    };
    let server = Server::serve_config("ws://127.0.0.1:0", config, |s| {
        while let Ok(Some(_)) = s.receive(&mut [0u8; 64], None) {}
    })
    .unwrap();
    let slow = connect(&server, "/slow");
    let good: Vec<Arc<Stream>> = (0..5).map(|_| Arc::new(connect(&server, "/"))).collect();
    let until = Instant::now() + Duration::from_secs(10);
    while server.connections() < 6 {
        assert!(Instant::now() < until);
        std::thread::sleep(Duration::from_millis(10));
    }
    let received = Arc::new(AtomicUsize::new(0));
    let count = 400usize;
    let size = 64 << 10;
    let readers: Vec<_> = good
        .iter()
        .map(|c| {
            let (c, received) = (c.clone(), received.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; size];
                for i in 0..count {
                    let n = c.receive(&mut buf, LONG).unwrap().unwrap();
                    assert_eq!(n, size);
                    assert_eq!(buf[0], i as u8);
                    received.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut msg = vec![7u8; size];
    for i in 0..count {
        msg[0] = i as u8;
        server.broadcast(&msg).unwrap();
        // Pace the broadcast to the readers that keep up.
        let until = Instant::now() + Duration::from_secs(20);
        while received.load(Ordering::Relaxed) < (i + 1) * good.len() {
            assert!(
                Instant::now() < until,
                "good clients stalled at message {i}"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(server.dropped(), 1, "only the slow client was dropped");
    // The slow client gets what was in flight, then the close frame: 1008
    // is not a clean end, so it is an error carrying the code. The frame
    // can go only if the socket had room for it when the client was
    // dropped: when a message was partly sent into a full socket (the
    // client reads nothing meanwhile), the connection is cut after it
    // instead, and the client sees no close frame (1006). Either way it is
    // an error, never a clean end, and every whole message before it is
    // intact.
    let mut buf = vec![0u8; size];
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < until);
        match slow.receive(&mut buf, LONG) {
            Ok(Some(n)) => assert!(n == size && buf[1..n].iter().all(|&b| b == 7)),
            Err(Error::Connection(m))
                if m.contains("code 1008") || m.contains("without a close frame (1006)") =>
            {
                break;
            }
            other => panic!("the slow client sees close 1008 or a cut, not {other:?}"),
        }
    }
    server.close();
}

/// A TCP echo server thread (for the bridge).
fn tcp_echo() -> (String, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("tcp://{}", l.local_addr().unwrap());
    let t = std::thread::spawn(move || {
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
    (addr, t)
}

#[test]
fn the_ws_listener_bridges_each_client_to_the_target() {
    let (target, echo) = tcp_echo();
    let l = Listener::bind("ws://127.0.0.1:0", &Network::new(&target).unwrap()).unwrap();
    assert!(
        l.address().starts_with("ws://127.0.0.1:"),
        "{}",
        l.address()
    );
    let s = jumpwire::connect(l.address(), LONG).unwrap();
    let data = pattern(1 << 20, 5);
    for chunk in data.chunks(50_000) {
        s.send(chunk, LONG).unwrap();
    }
    assert!(receive_exact(&s, data.len(), 65536) == data);
    s.close();
    echo.join().unwrap();
    l.close();
}

/// Reads server frames (unmasked, each under 126 bytes of payload) until a
/// close frame: the data of the binary frames before it, and the close code.
fn frames_until_close(c: &mut TcpStream) -> (Vec<u8>, u16) {
    let mut data = Vec::new();
    loop {
        let mut h = [0u8; 2];
        c.read_exact(&mut h).unwrap();
        assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
        let len = (h[1] & 0x7F) as usize;
        assert!(len < 126, "test frames are small");
        let mut payload = vec![0u8; len];
        c.read_exact(&mut payload).unwrap();
        match h[0] & 0x0F {
            0x2 => data.extend_from_slice(&payload),
            0x8 => return (data, u16::from_be_bytes([payload[0], payload[1]])),
            op => panic!("unexpected opcode {op:#x}"),
        }
    }
}

#[test]
fn the_bridge_refuses_clients_over_max_connections_with_503() {
    let echo = common::tcp_echo_server("127.0.0.1:0");
    let target = Network::new(&format!("tcp://{echo}")).unwrap();
    let l = Listener::bind("ws://127.0.0.1:0?max_connections=2", &target).unwrap();
    let a = jumpwire::connect(l.address(), LONG).unwrap();
    let b = jumpwire::connect(l.address(), LONG).unwrap();
    for s in [&a, &b] {
        s.send(b"up", LONG).unwrap();
        assert_eq!(receive_exact(s, 2, 16), b"up");
    }
    for _ in 0..3 {
        let r = jumpwire::connect(l.address(), LONG);
        assert!(
            matches!(&r, Err(Error::Connection(m)) if m.contains("HTTP 503")),
            "{r:?}"
        );
    }
    assert_eq!(l.refused(), 3);
    assert_eq!(l.connections(), 2);
    // Once one leaves, a new client gets in.
    a.close();
    let until = Instant::now() + SLACK;
    while l.connections() > 1 {
        assert!(Instant::now() < until, "the closed client's bridge ended");
        std::thread::sleep(Duration::from_millis(5));
    }
    let c = jumpwire::connect(l.address(), LONG).unwrap();
    c.send(b"in", LONG).unwrap();
    assert_eq!(receive_exact(&c, 2, 16), b"in");
    assert_eq!(l.refused(), 3);
    b.close();
    c.close();
    l.close();
}

#[test]
fn a_server_refuses_clients_over_max_connections_with_503() {
    let server = Server::serve("ws://127.0.0.1:0?max_connections=1", |s| {
        while let Ok(Some(_)) = s.receive(&mut [0u8; 16], None) {}
    })
    .unwrap();
    let a = jumpwire::connect(server.address(), LONG).unwrap();
    let r = jumpwire::connect(server.address(), LONG);
    assert!(
        matches!(&r, Err(Error::Connection(m)) if m.contains("HTTP 503")),
        "{r:?}"
    );
    assert_eq!(server.refused(), 1);
    a.close();
    server.close();
}

#[test]
fn the_targets_eof_reaches_the_client_as_close_1000_after_its_data() {
    let (target, t) = tcp_target(|mut c| {
        let mut hello = [0u8; 5];
        c.read_exact(&mut hello).unwrap();
        assert_eq!(&hello, b"hello");
        c.write_all(b"bye").unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        // The client's answer to the close frame half-closes us.
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        rest
    });
    let l = Listener::bind("ws://127.0.0.1:0", &Network::new(&target).unwrap()).unwrap();
    let mut c = raw_client(l.address());
    c.write_all(&masked(0x2, b"hel")).unwrap();
    c.write_all(&masked(0x2, b"lo")).unwrap();
    let (data, code) = frames_until_close(&mut c);
    assert_eq!(data, b"bye");
    assert_eq!(code, 1000);
    // Data the client sent before it saw the close still reaches the target.
    c.write_all(&masked(0x2, b"late")).unwrap();
    c.write_all(&masked(0x8, &1000u16.to_be_bytes())).unwrap();
    assert_eq!(t.join().unwrap(), b"late");
    // The bridge ends the connection at once.
    let t0 = Instant::now();
    assert_eq!(c.read(&mut [0u8; 16]).unwrap(), 0);
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    let until = Instant::now() + SLACK;
    while l.connections() > 0 {
        assert!(Instant::now() < until, "the bridge ended");
        std::thread::sleep(Duration::from_millis(5));
    }

    // A jumpwire client: every byte, then EOF.
    let (target, t) = tcp_target(|mut c| {
        c.write_all(&pattern(1 << 20, 7)).unwrap();
    });
    let l2 = Listener::bind("ws://127.0.0.1:0", &Network::new(&target).unwrap()).unwrap();
    let s = jumpwire::connect(l2.address(), LONG).unwrap();
    assert!(receive_exact(&s, 1 << 20, 65536) == pattern(1 << 20, 7));
    assert_eq!(s.receive(&mut [0u8; 16], LONG).unwrap(), None);
    t.join().unwrap();
    s.close();
    l.close();
    l2.close();
}

#[test]
fn closing_the_bridge_sends_close_1001_to_its_clients() {
    let echo = common::tcp_echo_server("127.0.0.1:0");
    let target = Network::new(&format!("tcp://{echo}")).unwrap();
    let l = Listener::bind("ws://127.0.0.1:0", &target).unwrap();
    let mut c = raw_client(l.address());
    c.write_all(&masked(0x2, b"hi")).unwrap();
    let mut f = [0u8; 4];
    c.read_exact(&mut f).unwrap();
    assert_eq!(f, [0x82, 2, b'h', b'i']);
    let t0 = Instant::now();
    l.close();
    assert!(t0.elapsed() < SLACK, "{:?}", t0.elapsed());
    let (data, code) = frames_until_close(&mut c);
    assert!(data.is_empty());
    assert_eq!(code, 1001);
}

#[test]
fn a_target_failure_reaches_the_client_as_close_1011() {
    let (target, t) = tcp_target(|mut c| {
        c.write_all(b"x").unwrap();
        // A reset: close with unread data pending and no linger.
        socket2::SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        let mut one = [0u8; 1];
        c.read_exact(&mut one).unwrap();
        drop(c);
    });
    let l = Listener::bind("ws://127.0.0.1:0", &Network::new(&target).unwrap()).unwrap();
    let mut c = raw_client(l.address());
    let mut x = [0u8; 3];
    c.read_exact(&mut x).unwrap();
    assert_eq!(x, [0x82, 1, b'x']);
    c.write_all(&masked(0x2, b"go")).unwrap();
    let (data, code) = frames_until_close(&mut c);
    t.join().unwrap();
    assert_eq!(data, b"");
    assert_eq!(code, 1011);
    c.write_all(&masked(0x8, &1011u16.to_be_bytes())).unwrap();
    assert_eq!(c.read(&mut [0u8; 16]).unwrap(), 0);
    l.close();
}

#[test]
fn the_clients_close_half_closes_the_target_after_all_its_data() {
    let data = pattern(3 << 20, 11);
    let (target, t) = tcp_target(|mut c| {
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        // Too late for the client: discarded by the bridge.
        let _ = c.write_all(b"late");
        got
    });
    let l = Listener::bind("ws://127.0.0.1:0", &Network::new(&target).unwrap()).unwrap();
    let s = jumpwire::connect(l.address(), LONG).unwrap();
    for chunk in data.chunks(100_000) {
        s.send(chunk, LONG).unwrap();
    }
    let t0 = Instant::now();
    s.close();
    assert!(t0.elapsed() < Duration::from_millis(900), "close answered");
    assert!(t.join().unwrap() == data, "every byte, then EOF");
    let until = Instant::now() + SLACK;
    while l.connections() > 0 {
        assert!(Instant::now() < until, "the bridge ended");
        std::thread::sleep(Duration::from_millis(5));
    }
    l.close();
}

/// Reads an HTTP head (up to the blank line), a byte at a time so that
/// nothing after it is consumed.
fn read_head(c: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        c.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

/// A raw TCP connection to `server` that did the handshake by hand.
fn raw_client(addr: &str) -> TcpStream {
    let hostport = addr.trim_start_matches("ws://").trim_end_matches('/');
    let mut c = TcpStream::connect(hostport).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let head = read_head(&mut c);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    c
}

/// Reads frames until a close frame: its code.
fn close_code(c: &mut TcpStream) -> u16 {
    let mut all = Vec::new();
    let _ = c.read_to_end(&mut all);
    let mut i = 0;
    while i + 2 <= all.len() {
        let op = all[i] & 0x0F;
        let len = (all[i + 1] & 0x7F) as usize;
        assert!(len < 126, "test frames are small");
        if op == 0x8 {
            return u16::from_be_bytes([all[i + 2], all[i + 3]]);
        }
        i += 2 + len;
    }
    panic!("no close frame in {all:?}");
}

fn masked(op: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x11, 0x22, 0x33, 0x44];
    let mut f = vec![0x80 | op, 0x80 | payload.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

#[test]
fn bad_clients_get_the_right_close_and_the_server_keeps_serving() {
    let config = ServerConfig {
        limits: Limits {
            max_message: 1000,
            max_frame: 100,
        },
        handshake_timeout: Duration::from_millis(500),
        ..ServerConfig::default()
    };
    let server = Server::serve_config("ws://127.0.0.1:0", config, |s| {
        let mut buf = vec![0u8; 4096];
        while let Ok(Some(n)) = s.receive(&mut buf, None) {
            let _ = s.send(&buf[..n], LONG);
        }
    })
    .unwrap();
    let addr = server.address().to_string();
    let hostport = addr
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_string();

    // Garbage instead of a handshake: HTTP 400.
    let mut c = TcpStream::connect(&hostport).unwrap();
    c.write_all(b"\x16\x03\x01garbage\r\n\r\n").unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");

    // Nothing at all: the handshake times out and the connection ends.
    let mut c = TcpStream::connect(&hostport).unwrap();
    c.set_read_timeout(Some(SLACK)).unwrap();
    assert_eq!(c.read(&mut [0u8; 16]).unwrap(), 0);

    // An unmasked client frame: 1002.
    let mut c = raw_client(&addr);
    c.write_all(&[0x82, 0x02, b'h', b'i']).unwrap();
    assert_eq!(close_code(&mut c), 1002);

    // An oversized frame: 1009.
    let mut c = raw_client(&addr);
    c.write_all(&[0x82, 0x80 | 126, 0x01, 0x00, 1, 2, 3, 4])
        .unwrap();
    assert_eq!(close_code(&mut c), 1009);

    // Invalid UTF-8 in a text frame: 1007.
    let mut c = raw_client(&addr);
    c.write_all(&masked(0x1, &[0xC3, 0x28])).unwrap();
    assert_eq!(close_code(&mut c), 1007);

    // A client that vanishes mid-frame.
    let mut c = raw_client(&addr);
    c.write_all(&[0x82, 0x80 | 50, 1, 2, 3, 4, 9, 9]).unwrap();
    drop(c);

    // Ping answered with the same payload, text echoed, close echoed.
    let mut c = raw_client(&addr);
    c.write_all(&masked(0x9, b"pp")).unwrap();
    c.write_all(&masked(0x1, "ü".as_bytes())).unwrap();
    let mut f = [0u8; 8];
    c.read_exact(&mut f[..4]).unwrap();
    assert_eq!(&f[..4], &[0x8A, 2, b'p', b'p']);
    c.read_exact(&mut f[..4]).unwrap();
    assert_eq!(&f[..4], &[0x82, 2, 0xC3, 0xBC]);
    c.write_all(&masked(0x8, &4000u16.to_be_bytes())).unwrap();
    assert_eq!(close_code(&mut c), 4000);

    // The server still serves.
    let s = jumpwire::connect(&addr, LONG).unwrap();
    s.send(b"still here", LONG).unwrap();
    let mut buf = [0u8; 32];
    assert_eq!(s.receive(&mut buf, LONG).unwrap(), Some(10));
    s.close();
    server.close();
}

#[test]
fn a_server_that_refuses_the_upgrade_is_a_connection_error() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/x", l.local_addr().unwrap());
    let t = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf);
        c.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    });
    let r = jumpwire::connect(&url, LONG);
    assert!(
        matches!(&r, Err(Error::Connection(m)) if m.contains("HTTP 404")),
        "{r:?}"
    );
    t.join().unwrap();
    let r = jumpwire::connect("ws://127.0.0.1:1/", LONG);
    assert!(matches!(r, Err(Error::Connection(_))), "{r:?}");
}

mod c_api {
    use super::*;
    use jumpwire::ffi::{
        jw_status, jw_stream, jw_stream_receive, jw_stream_send, jw_ws_accept, jw_ws_broadcast,
        jw_ws_path, jw_ws_serve, jw_ws_server, jw_ws_server_address, jw_ws_server_close,
        jw_ws_server_dropped, jw_ws_server_refused,
    };
    use std::ffi::{CStr, CString, c_char, c_void};
    use std::ptr::{null, null_mut};

    /// Sends the request path back, then echoes until EOF.
    extern "C" fn path_echo(conn: *mut jw_stream, user: *mut c_void) {
        let mut path = [0 as c_char; 128];
        assert_eq!(jw_ws_path(conn, path.as_mut_ptr(), 128), jw_status::JW_OK);
        let p = unsafe_free_cstr(&path);
        assert_eq!(
            jw_stream_send(conn, p.as_ptr().cast(), p.len(), 5000),
            jw_status::JW_OK
        );
        let mut buf = [0u8; 256];
        loop {
            let mut n = 0usize;
            match jw_stream_receive(conn, buf.as_mut_ptr().cast(), buf.len(), &mut n, -1) {
                jw_status::JW_OK => {
                    jw_stream_send(conn, buf.as_ptr().cast(), n, 5000);
                }
                _ => break,
            }
        }
        let calls = user.cast::<AtomicUsize>();
        // SAFETY (test): `user` is the AtomicUsize the test passed, alive
        // until the server is closed.
        unsafe { (*calls).fetch_add(1, Ordering::SeqCst) };
    }

    fn unsafe_free_cstr(buf: &[c_char]) -> Vec<u8> {
        buf.iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect()
    }

    #[test]
    fn serve_path_broadcast_and_close_through_the_c_api() {
        let calls = Box::new(AtomicUsize::new(0));
        let user = (&*calls as *const AtomicUsize).cast_mut().cast::<c_void>();
        let url = CString::new("ws://127.0.0.1:0?max_connections=1").unwrap();
        let mut w: *mut jw_ws_server = null_mut();
        assert_eq!(
            jw_ws_serve(url.as_ptr(), Some(path_echo), user, &mut w),
            jw_status::JW_OK
        );
        let mut addr = [0 as c_char; 64];
        assert_eq!(
            jw_ws_server_address(w, addr.as_mut_ptr(), 64),
            jw_status::JW_OK
        );
        // SAFETY (test): NUL-terminated by jw_ws_server_address.
        let addr = unsafe { CStr::from_ptr(addr.as_ptr()) }
            .to_str()
            .unwrap()
            .to_string();
        let s = jumpwire::connect(&format!("{addr}room?x=1"), LONG).unwrap();
        let mut buf = [0u8; 64];
        let n = s.receive(&mut buf, LONG).unwrap().unwrap();
        assert_eq!(&buf[..n], b"/room?x=1");
        s.send(b"echo", LONG).unwrap();
        assert_eq!(s.receive(&mut buf, LONG).unwrap(), Some(4));
        assert_eq!(
            jw_ws_broadcast(w, b"all".as_ptr().cast(), 3),
            jw_status::JW_OK
        );
        let n = s.receive(&mut buf, LONG).unwrap().unwrap();
        assert_eq!(&buf[..n], b"all");
        let mut dropped = 7u64;
        assert_eq!(jw_ws_server_dropped(w, &mut dropped), jw_status::JW_OK);
        assert_eq!(dropped, 0);
        // One connection at most: a second client is refused and counted.
        let r = jumpwire::connect(&addr, LONG);
        assert!(
            matches!(&r, Err(Error::Connection(m)) if m.contains("HTTP 503")),
            "{r:?}"
        );
        let mut refused = 7u64;
        assert_eq!(jw_ws_server_refused(w, &mut refused), jw_status::JW_OK);
        assert_eq!(refused, 1);
        assert_eq!(
            jw_ws_server_refused(w, null_mut()),
            jw_status::JW_ERR_INVALID_ARGUMENT
        );
        // Bad arguments.
        assert_eq!(
            jw_ws_serve(null(), Some(path_echo), user, &mut null_mut()),
            jw_status::JW_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            jw_ws_serve(url.as_ptr(), None, user, &mut null_mut()),
            jw_status::JW_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            jw_ws_serve(url.as_ptr(), Some(path_echo), user, null_mut()),
            jw_status::JW_ERR_INVALID_ARGUMENT
        );
        let tcp = CString::new("tcp://127.0.0.1:0").unwrap();
        assert_eq!(
            jw_ws_serve(tcp.as_ptr(), Some(path_echo), user, &mut null_mut()),
            jw_status::JW_ERR_INVALID_ARGUMENT
        );
        let bad = CString::new("ws://127.0.0.1:0?queue=0").unwrap();
        assert_eq!(
            jw_ws_serve(bad.as_ptr(), Some(path_echo), user, &mut null_mut()),
            jw_status::JW_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            jw_ws_broadcast(null_mut(), b"x".as_ptr().cast(), 1),
            jw_status::JW_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            jw_ws_broadcast(w, null(), 1),
            jw_status::JW_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            jw_ws_server_address(w, addr_buf().as_mut_ptr(), 3),
            jw_status::JW_ERR_TOO_LARGE
        );
        assert_eq!(
            jw_ws_accept(null_mut(), 100, &mut null_mut()),
            jw_status::JW_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            jw_ws_path(null_mut(), addr_buf().as_mut_ptr(), 8),
            jw_status::JW_ERR_INVALID_ARGUMENT
        );
        jw_ws_server_close(w);
        jw_ws_server_close(null_mut());
        assert_eq!(s.receive(&mut buf, LONG).unwrap(), None);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the handler returned");
    }

    fn addr_buf() -> [c_char; 8] {
        [0; 8]
    }

    #[test]
    fn jw_ws_path_is_unsupported_on_other_streams() {
        let url = CString::new("echo:").unwrap();
        let mut s: *mut jw_stream = null_mut();
        assert_eq!(
            jumpwire::ffi::jw_connect(url.as_ptr(), 100, &mut s),
            jw_status::JW_OK
        );
        let mut buf = [0 as c_char; 8];
        assert_eq!(
            jw_ws_path(s, buf.as_mut_ptr(), 8),
            jw_status::JW_ERR_UNSUPPORTED
        );
        // A bad timeout leaves the stream with the caller.
        let mut out: *mut jw_stream = null_mut();
        assert_eq!(
            jw_ws_accept(s, -5, &mut out),
            jw_status::JW_ERR_INVALID_ARGUMENT
        );
        // Accepting over echo: our own request comes back as the "client's".
        let req = b"GET /e HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: a2V5\r\nSec-WebSocket-Version: 13\r\n\r\n";
        assert_eq!(
            jw_stream_send(s, req.as_ptr().cast(), req.len(), 1000),
            jw_status::JW_OK
        );
        assert_eq!(jw_ws_accept(s, 1000, &mut out), jw_status::JW_OK);
        assert_eq!(jw_ws_path(out, buf.as_mut_ptr(), 8), jw_status::JW_OK);
        assert_eq!(unsafe_free_cstr(&buf), b"/e");
        jumpwire::ffi::jw_stream_close(out);
    }
}
