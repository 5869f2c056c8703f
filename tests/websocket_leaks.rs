//! Websocket resource leaks: after servers, bridges and streams are closed —
//! including connections ended by bad input, a client vanishing mid-frame, a
//! slow client dropped by a broadcast, and servers closed with clients still
//! open — the process has exactly as many threads and file descriptors as
//! before. One test, so that nothing else in this process changes the counts.

mod common;

use common::{counts, steady};
use jumpwire::ffi::{jw_status, jw_stream, jw_stream_close, jw_stream_receive, jw_ws_accept};
use jumpwire::forward::Listener;
use jumpwire::websocket::{Server, ServerConfig};
use jumpwire::{Network, Stream};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::ptr::null_mut;
use std::time::{Duration, Instant};

const LONG: Option<Duration> = Some(Duration::from_secs(10));
const SETTLE: Duration = Duration::from_secs(3);

fn assert_settles(what: &str, base: (usize, usize)) {
    let t0 = Instant::now();
    loop {
        let now = counts();
        if now == base {
            return;
        }
        assert!(
            t0.elapsed() < SETTLE,
            "{what}: (threads, fds) = {now:?}, baseline {base:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn echo_server(config: ServerConfig) -> Server {
    Server::serve_config("ws://127.0.0.1:0", config, |s| {
        let mut buf = vec![0u8; 1 << 20];
        while let Ok(Some(n)) = s.receive(&mut buf, None) {
            if s.send(&buf[..n], LONG).is_err() {
                break;
            }
        }
    })
    .unwrap()
}

fn hostport(url: &str) -> String {
    url.trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_string()
}

fn round(s: &Stream) {
    s.send(b"hello", LONG).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(s.receive(&mut buf, LONG).unwrap(), Some(5));
}

fn everything() {
    // Clients of a server, closed by the client, then the server.
    let server = echo_server(ServerConfig::default());
    for _ in 0..30 {
        let s = jumpwire::connect(server.address(), LONG).unwrap();
        round(&s);
        s.close();
    }
    // Bad input.
    let hp = hostport(server.address());
    let mut c = TcpStream::connect(&hp).unwrap();
    c.write_all(b"garbage\r\n\r\n").unwrap();
    let _ = c.read_to_end(&mut Vec::new());
    let mut c = TcpStream::connect(&hp).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: a2V5\r\nSec-WebSocket-Version: 13\r\n\r\n\x82\x05hel")
        .unwrap();
    drop(c);
    // Clients still open when the server closes.
    let open: Vec<Stream> = (0..10)
        .map(|_| {
            let s = jumpwire::connect(server.address(), LONG).unwrap();
            round(&s);
            s
        })
        .collect();
    server.close();
    drop(open);

    // A slow client dropped by broadcasts.
    let server = echo_server(ServerConfig {
        queue: 2,
        ..ServerConfig::default()
    });
    let slow = jumpwire::connect(server.address(), LONG).unwrap();
    round(&slow);
    let big = vec![0u8; 1 << 20];
    let until = Instant::now() + Duration::from_secs(20);
    while server.dropped() == 0 {
        assert!(Instant::now() < until, "the slow client is dropped");
        let _ = server.broadcast(&big);
        std::thread::sleep(Duration::from_millis(1));
    }
    server.close();
    slow.close();

    // The bridge.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = Network::new(&format!("tcp://{}", l.local_addr().unwrap())).unwrap();
    let bridge = Listener::bind("ws://127.0.0.1:0", &target).unwrap();
    for i in 0..10 {
        let s = jumpwire::connect(bridge.address(), LONG).unwrap();
        let (mut t, _) = l.accept().unwrap();
        s.send(b"abc", LONG).unwrap();
        let mut b = [0u8; 3];
        t.read_exact(&mut b).unwrap();
        if i % 2 == 0 {
            s.close();
        } else {
            drop(t);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    bridge.close();

    // A bridge over its limit refuses (HTTP 503), then closes with a client
    // still bridged (close 1001) and one whose target is reset.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = Network::new(&format!("tcp://{}", l.local_addr().unwrap())).unwrap();
    let bridge = Listener::bind("ws://127.0.0.1:0?max_connections=2", &target).unwrap();
    let kept = jumpwire::connect(bridge.address(), LONG).unwrap();
    let (mut t1, _) = l.accept().unwrap();
    let reset = jumpwire::connect(bridge.address(), LONG).unwrap();
    let (t2, _) = l.accept().unwrap();
    for _ in 0..3 {
        assert!(jumpwire::connect(bridge.address(), LONG).is_err());
    }
    assert_eq!(bridge.refused(), 3);
    kept.send(b"abc", LONG).unwrap();
    let mut b = [0u8; 3];
    t1.read_exact(&mut b).unwrap();
    socket2::SockRef::from(&t2)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(t2);
    // The target's reset reaches the client as close 1011: an error.
    let r = reset.receive(&mut b, LONG);
    assert!(
        matches!(&r, Err(jumpwire::Error::Connection(m)) if m.contains("code 1011")),
        "{r:?}"
    );
    bridge.close();
    assert_eq!(kept.receive(&mut b, LONG).unwrap(), None);
    drop((kept, reset, t1));

    // jw_ws_accept over a connected stream, failing and succeeding.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = std::ffi::CString::new(format!("tcp://{}", l.local_addr().unwrap())).unwrap();
    for ok in [false, true] {
        let mut raw: *mut jw_stream = null_mut();
        assert_eq!(
            jumpwire::ffi::jw_connect(url.as_ptr(), 5000, &mut raw),
            jw_status::JW_OK
        );
        let (mut peer, _) = l.accept().unwrap();
        if ok {
            peer.write_all(b"GET /p HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: a2V5\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
        } else {
            peer.write_all(b"nonsense\r\n\r\n").unwrap();
        }
        let mut ws: *mut jw_stream = null_mut();
        let st = jw_ws_accept(raw, 5000, &mut ws);
        if ok {
            assert_eq!(st, jw_status::JW_OK);
            peer.write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8])
                .unwrap();
            let mut buf = [0u8; 8];
            let mut n = 0usize;
            assert_eq!(
                jw_stream_receive(ws, buf.as_mut_ptr().cast(), 8, &mut n, 5000),
                jw_status::JW_EOF
            );
            jw_stream_close(ws);
        } else {
            assert_eq!(st, jw_status::JW_ERR_PROTOCOL);
        }
    }
}

#[test]
fn websockets_leave_no_threads_or_fds_behind() {
    everything();
    let base = steady(SETTLE);
    for _ in 0..2 {
        everything();
        assert_settles("websocket round", base);
    }
}
