//! Websocket hardening (issues 11 and 17): unpredictable masking keys,
//! subprotocols and the `Origin` allow-list, close codes that are errors, the
//! bridge cutting its client off after 1011, handshakes bounded apart from
//! served connections, closes that finish at once with stuck peers, and
//! connects that honour their timeout against silent servers.

use crate::common;

use common::{LONG, SLACK, ms, tcp_target};
use jumpwire::forward::Listener;
use jumpwire::websocket::Server;
use jumpwire::{Error, Network, Stream};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What the design promises for a close with a stuck or vanished peer, plus
/// scheduling slack for a loaded test machine.
const CLOSE_BOUND: Duration = Duration::from_millis(100 + 100);

fn hostport(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap().to_string()
}

/// Reads an HTTP head, a byte at a time (nothing after it is consumed).
fn read_head(c: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if c.read(&mut b).unwrap() == 0 {
            break;
        }
        head.push(b[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Sends an upgrade request with `extra` header lines; returns the socket
/// and the response head.
fn upgrade(url: &str, extra: &str) -> (TcpStream, String) {
    let mut c = TcpStream::connect(hostport(url)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    c.write_all(req.as_bytes()).unwrap();
    let head = read_head(&mut c);
    (c, head)
}

fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn idle_server(url: &str) -> Server {
    Server::serve(url, |s| {
        while let Ok(Some(_)) = s.receive(&mut [0u8; 64], None) {}
    })
    .unwrap()
}

#[test]
fn masking_keys_are_random_and_never_repeat_between_connections() {
    // A hand-made server that records the masking key of every frame.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", l.local_addr().unwrap());
    const FRAMES: usize = 1000;
    let server = std::thread::spawn(move || {
        let mut masks = Vec::new();
        for _ in 0..2 {
            let (mut c, _) = l.accept().unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let head = read_head(&mut c);
            let key = header_value(&head, "sec-websocket-key").unwrap();
            let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
            c.write_all(
                format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap();
            for _ in 0..FRAMES {
                let mut f = [0u8; 7];
                c.read_exact(&mut f).unwrap();
                assert_eq!(&f[..2], &[0x82, 0x81], "a masked binary frame of 1 byte");
                masks.push(u32::from_be_bytes([f[2], f[3], f[4], f[5]]));
                assert_eq!(f[6] ^ f[2], b'x');
            }
        }
        masks
    });
    for _ in 0..2 {
        let s = jumpwire::connect(&url, LONG).unwrap();
        for _ in 0..FRAMES {
            s.send(b"x", LONG).unwrap();
        }
        // No close handshake with this server: cut.
        drop(s);
    }
    let masks = server.join().unwrap();
    let mut distinct = masks.clone();
    distinct.sort_unstable();
    distinct.dedup();
    // 2000 draws of 32 random bits collide with a chance of about 1 in 2000.
    assert!(distinct.len() >= masks.len() - 2, "repeated keys");
    // Every bit is set in about half the keys (a fixed, counting or
    // low-entropy source is far off in some bit).
    for bit in 0..32 {
        let ones = masks.iter().filter(|m| *m & (1 << bit) != 0).count();
        assert!(
            (800..=1200).contains(&ones),
            "bit {bit} is set in {ones} of {} keys",
            masks.len()
        );
    }
    // The two connections share no key.
    let (a, b) = masks.split_at(FRAMES);
    assert!(!a.iter().any(|m| b.contains(m)), "a key used on both");
}

#[test]
fn the_first_offered_subprotocol_we_support_is_answered() {
    let server = idle_server("ws://127.0.0.1:0");
    let (_c, head) = upgrade(server.address(), "Sec-WebSocket-Protocol: chat, binary\r\n");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(
        header_value(&head, "sec-websocket-protocol").as_deref(),
        Some("binary")
    );
    let (_c, head) = upgrade(server.address(), "Sec-WebSocket-Protocol: chat\r\n");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(header_value(&head, "sec-websocket-protocol"), None);
    let (_c, head) = upgrade(server.address(), "");
    assert_eq!(header_value(&head, "sec-websocket-protocol"), None);
    server.close();

    // A configured list: the client's order decides.
    let server = idle_server("ws://127.0.0.1:0?protocols=binary,base64");
    let (_c, head) = upgrade(
        server.address(),
        "Sec-WebSocket-Protocol: base64\r\nSec-WebSocket-Protocol: binary\r\n",
    );
    assert_eq!(
        header_value(&head, "sec-websocket-protocol").as_deref(),
        Some("base64")
    );
    server.close();
    // None configured: none answered.
    let server = idle_server("ws://127.0.0.1:0?protocols=");
    let (_c, head) = upgrade(server.address(), "Sec-WebSocket-Protocol: binary\r\n");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(header_value(&head, "sec-websocket-protocol"), None);
    server.close();

    // The bridge answers binary, as websockify does for noVNC.
    let echo = common::tcp_echo_server("127.0.0.1:0");
    let bridge = Listener::bind(
        "ws://127.0.0.1:0",
        &Network::new(&format!("tcp://{echo}")).unwrap(),
    )
    .unwrap();
    let (_c, head) = upgrade(
        bridge.address(),
        "Sec-WebSocket-Protocol: binary, base64\r\n",
    );
    assert_eq!(
        header_value(&head, "sec-websocket-protocol").as_deref(),
        Some("binary")
    );
    bridge.close();
}

/// A hand-made server for one client: answers the upgrade with `extra`
/// header lines; its thread returns the request head.
fn answering_server(extra: &'static str) -> (String, std::thread::JoinHandle<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", l.local_addr().unwrap());
    let t = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = read_head(&mut c);
        let key = header_value(&head, "sec-websocket-key").unwrap();
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        c.write_all(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n{extra}\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        head
    });
    (url, t)
}

#[test]
fn our_client_offers_subprotocols_and_refuses_one_it_did_not_offer() {
    // Offered in the URL's fragment, answered by our server.
    let server = Server::serve("ws://127.0.0.1:0", |s| {
        let mut buf = [0u8; 64];
        while let Ok(Some(n)) = s.receive(&mut buf, None) {
            let _ = s.send(&buf[..n], LONG);
        }
    })
    .unwrap();
    let s =
        jumpwire::connect(&format!("{}#protocols=chat,binary", server.address()), LONG).unwrap();
    s.send(b"ok", LONG).unwrap();
    assert_eq!(s.receive(&mut [0u8; 8], LONG).unwrap(), Some(2));
    s.close();
    server.close();
    // What goes on the wire.
    let (url, t) = answering_server("Sec-WebSocket-Protocol: binary\r\n");
    let s = jumpwire::connect(&format!("{url}#protocols=chat,binary"), LONG).unwrap();
    let head = t.join().unwrap();
    assert_eq!(
        header_value(&head, "sec-websocket-protocol").as_deref(),
        Some("chat, binary"),
        "{head}"
    );
    drop(s);
    // A subprotocol we did not offer fails the connection (RFC 6455 4.1).
    let (url, t) = answering_server("Sec-WebSocket-Protocol: base64\r\n");
    let r = jumpwire::connect(&format!("{url}#protocols=binary"), LONG);
    assert!(
        matches!(&r, Err(Error::Protocol(m)) if m.contains("\"base64\", which was not offered")),
        "{r:?}"
    );
    t.join().unwrap();
    let (url, t) = answering_server("Sec-WebSocket-Protocol: binary\r\n");
    let r = jumpwire::connect(&url, LONG);
    assert!(matches!(&r, Err(Error::Protocol(_))), "offered none: {r:?}");
    t.join().unwrap();
}

#[test]
fn origins_outside_the_allow_list_are_refused_with_403_and_counted() {
    let server = idle_server("ws://127.0.0.1:0?origins=http://good.example,https://b:8443");
    let (_c, head) = upgrade(server.address(), "Origin: http://evil.example\r\n");
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let (_c, head) = upgrade(server.address(), "");
    assert!(head.starts_with("HTTP/1.1 403"), "no Origin: {head}");
    // Our client sends no Origin: a connection error naming the status.
    let r = jumpwire::connect(server.address(), LONG);
    assert!(
        matches!(&r, Err(Error::Connection(m)) if m.contains("HTTP 403")),
        "{r:?}"
    );
    let (_c, head) = upgrade(server.address(), "Origin: https://B:8443\r\n");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let stats = server.refusal_stats();
    assert_eq!(stats.forbidden, 3, "{stats:?}");
    assert_eq!(stats.bad_requests, 0, "{stats:?}");
    server.close();

    let echo = common::tcp_echo_server("127.0.0.1:0");
    let bridge = Listener::bind(
        "ws://127.0.0.1:0?origins=http://good.example",
        &Network::new(&format!("tcp://{echo}")).unwrap(),
    )
    .unwrap();
    let (_c, head) = upgrade(bridge.address(), "Origin: http://other.example\r\n");
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let (mut c, head) = upgrade(bridge.address(), "Origin: http://good.example\r\n");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    c.write_all(&[0x82, 0x82, 0, 0, 0, 0, b'h', b'i']).unwrap();
    let mut back = [0u8; 4];
    c.read_exact(&mut back).unwrap();
    assert_eq!(back, [0x82, 2, b'h', b'i']);
    assert_eq!(bridge.refusal_stats().forbidden, 1);
    bridge.close();
}

/// A target that reads one byte, then resets the connection.
fn resetting_target() -> (String, std::thread::JoinHandle<()>) {
    tcp_target(|mut c| {
        let mut one = [0u8; 1];
        c.read_exact(&mut one).unwrap();
        socket2::SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(c);
    })
}

#[test]
fn a_target_reset_is_an_error_for_our_client_and_its_later_sends_fail() {
    let (target, t) = resetting_target();
    let bridge = Listener::bind("ws://127.0.0.1:0", &Network::new(&target).unwrap()).unwrap();
    let s = jumpwire::connect(bridge.address(), LONG).unwrap();
    s.send(b"go", LONG).unwrap();
    t.join().unwrap();
    for _ in 0..2 {
        let r = s.receive(&mut [0u8; 16], LONG);
        assert!(
            matches!(&r, Err(Error::Connection(m)) if m.contains("code 1011")),
            "{r:?}"
        );
    }
    assert!(s.send(b"more", LONG).is_err(), "a send after 1011");
    s.close();

    // A client that only sends: once the bridge said 1011 it takes nothing
    // more, so the client's sends soon fail.
    let (target, t) = resetting_target();
    let bridge2 = Listener::bind("ws://127.0.0.1:0", &Network::new(&target).unwrap()).unwrap();
    let (mut c, head) = upgrade(bridge2.address(), "");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    c.write_all(&[0x82, 0x81, 0, 0, 0, 0, b'x']).unwrap();
    t.join().unwrap();
    let mut f = [0u8; 4];
    c.read_exact(&mut f).unwrap();
    assert_eq!(f, [0x88, 19, 0x03, 0xF3], "close 1011 with its reason");
    let until = Instant::now() + SLACK;
    let frame = [0x82, 0x80 | 100, 0, 0, 0, 0]
        .into_iter()
        .chain([0u8; 100])
        .collect::<Vec<u8>>();
    loop {
        if c.write_all(&frame).is_err() {
            break;
        }
        assert!(
            Instant::now() < until,
            "the bridge kept taking data after 1011"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    bridge.close();
    bridge2.close();
}

#[test]
fn silent_handshakes_do_not_lock_out_real_clients() {
    let server = Server::serve(
        "ws://127.0.0.1:0?max_handshakes=4&max_connections=2&handshake_timeout_ms=60000",
        |s| while let Ok(Some(_)) = s.receive(&mut [0u8; 64], None) {},
    )
    .unwrap();
    let hp = hostport(server.address());
    let silent: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(&hp).unwrap()).collect();
    // A real client gets in at once, and a second.
    let t0 = Instant::now();
    let a = jumpwire::connect(server.address(), LONG).unwrap();
    let b = jumpwire::connect(server.address(), LONG).unwrap();
    assert!(t0.elapsed() < SLACK, "{:?}", t0.elapsed());
    for s in [&a, &b] {
        s.send(b"hi", LONG).unwrap();
    }
    // Their handlers start just after the handshake's answer.
    let until = Instant::now() + SLACK;
    while server.connections() < 2 {
        assert!(Instant::now() < until, "{} served", server.connections());
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(server.handshaking() <= 4, "{}", server.handshaking());
    // The silent ones made room for each other and for the real clients.
    let stats = server.refusal_stats();
    assert!(stats.evicted >= 16, "{stats:?}");
    // max_connections still holds for served clients.
    let r = jumpwire::connect(server.address(), LONG);
    assert!(
        matches!(&r, Err(Error::Connection(m)) if m.contains("HTTP 503")),
        "{r:?}"
    );
    assert!(server.refused() >= 1);
    drop(silent);
    a.close();
    b.close();
    server.close();
}

/// Sends 256 KiB messages (50 ms each at most) until one cannot go: the
/// peer is not reading and every buffer on the way is full.
fn fill(s: &Stream) {
    let big = vec![7u8; 256 << 10];
    let until = Instant::now() + SLACK;
    while s.send(&big, ms(50)).is_ok() {
        assert!(Instant::now() < until, "the peer's buffers never filled");
    }
}

#[test]
fn a_client_close_beside_a_blocked_sender_is_immediate() {
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        // The handler never reads.
        Server::serve("ws://127.0.0.1:0", move |_| {
            while !stop.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(5));
            }
        })
        .unwrap()
    };
    let s = Arc::new(jumpwire::connect(server.address(), LONG).unwrap());
    fill(&s);
    let sender = {
        let s = s.clone();
        std::thread::spawn(move || s.send(&vec![1u8; 1 << 20], None))
    };
    // Whether or not the sender is blocked yet, close must end it.
    std::thread::sleep(Duration::from_millis(20));
    let t0 = Instant::now();
    s.close();
    let took = t0.elapsed();
    let r = sender.join().unwrap();
    assert!(took < CLOSE_BOUND, "close took {took:?}");
    assert!(r.is_err(), "the blocked send fails: {r:?}");
    stop.store(true, Ordering::Release);
    server.close();
}

#[test]
fn a_server_close_with_handlers_blocked_on_stuck_clients_is_immediate() {
    let blocked = Arc::new(AtomicUsize::new(0));
    let server = {
        let blocked = blocked.clone();
        Server::serve("ws://127.0.0.1:0", move |s| {
            fill(s);
            blocked.fetch_add(1, Ordering::AcqRel);
            // Now blocked until the server closes the connection.
            let r = s.send(&vec![1u8; 1 << 20], None);
            assert!(r.is_err(), "{r:?}");
        })
        .unwrap()
    };
    // Four clients that never read.
    let clients: Vec<Stream> = (0..4)
        .map(|_| jumpwire::connect(server.address(), LONG).unwrap())
        .collect();
    let until = Instant::now() + SLACK;
    while blocked.load(Ordering::Acquire) < clients.len() {
        assert!(Instant::now() < until, "the handlers filled their clients");
        std::thread::sleep(Duration::from_millis(5));
    }
    let t0 = Instant::now();
    server.close();
    let took = t0.elapsed();
    assert!(took < CLOSE_BOUND, "server close took {took:?}");
    drop(clients);
}

#[test]
fn connect_honours_its_timeout_against_a_server_that_never_answers() {
    // Accepts TCP (the kernel does, from the backlog) and never answers.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    for url in [format!("ws://{addr}/"), format!("wss://{addr}/#insecure=1")] {
        for timeout in [100, 300] {
            let t0 = Instant::now();
            let r = jumpwire::connect(&url, ms(timeout));
            let took = t0.elapsed();
            assert!(matches!(r, Err(Error::Timeout)), "{url}: {r:?}");
            assert!(
                took >= Duration::from_millis(timeout)
                    && took < Duration::from_millis(timeout + 100),
                "{url}: {timeout} ms took {took:?}"
            );
        }
    }
    drop(l);
}
