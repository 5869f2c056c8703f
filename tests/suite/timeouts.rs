//! Timeouts are honoured (issue 11): every blocking call with a silent or
//! black-holed peer returns `Timeout` within its timeout + [`GRACE`]: a TCP
//! connect to a listener whose backlog is full (SYNs dropped), a Unix connect
//! to a listener whose backlog is full, and `receive` / `send` on a peer that
//! never writes / never reads, through the Rust API and the C API
//! (`jw_connect`, `jw_stream_receive`, `jw_stream_send`). A slow host name
//! resolution is bounded the same way (a unit test of `network::resolve`
//! with a resolver that sleeps).
//!
//! [`GRACE`] is 100 ms as the issue asks: these calls sleep in `poll` until
//! their deadline, so the only lateness is scheduling, which stays far below
//! it even in a debug build on a busy machine (the measured lateness is
//! printed).

use crate::common;

use common::*;
use jumpwire::Error;
use jumpwire::ffi::{
    jw_connect, jw_status, jw_stream, jw_stream_close, jw_stream_receive, jw_stream_send,
};
use socket2::{Domain, SockAddr, Socket, Type};
use std::ffi::CString;
use std::net::TcpListener;
use std::ptr::null_mut;
use std::time::{Duration, Instant};

/// How late a timed-out call may return.
const GRACE: Duration = Duration::from_millis(100);
/// The timeout every call here is given.
const TIMEOUT: Duration = Duration::from_millis(300);
const TIMEOUT_MS: i32 = 300;

/// Runs `f`, which must time out, and checks that it took between the
/// timeout and the timeout + [`GRACE`].
#[track_caller]
fn on_time<T: std::fmt::Debug>(
    what: &str,
    f: impl FnOnce() -> T,
    timed_out: impl FnOnce(&T) -> bool,
) {
    let t0 = Instant::now();
    let r = f();
    let took = t0.elapsed();
    assert!(timed_out(&r), "{what}: expected a timeout, got {r:?}");
    eprintln!("{what}: {took:?} for a {TIMEOUT:?} timeout");
    assert_between(took, TIMEOUT - Duration::from_millis(5), TIMEOUT + GRACE);
}

fn is_timeout<T>(r: &jumpwire::Result<T>) -> bool {
    matches!(r, Err(Error::Timeout))
}

#[test]
fn tcp_connect_to_a_full_backlog() {
    let (_l, _fillers, addr) = full_backlog();
    let url = format!("tcp://{addr}");
    on_time(
        "connect tcp (Rust)",
        || jumpwire::connect(&url, Some(TIMEOUT)),
        is_timeout,
    );
    let c_url = CString::new(url).unwrap();
    let mut s: *mut jw_stream = null_mut();
    on_time(
        "jw_connect tcp",
        || jw_connect(c_url.as_ptr(), TIMEOUT_MS, &mut s),
        |st| *st == jw_status::JW_TIMEOUT,
    );
    assert!(s.is_null());
}

#[test]
fn unix_connect_to_a_full_backlog() {
    let dir = TempDir::new("timeouts");
    let path = dir.path().join("full.sock");
    let l = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
    l.bind(&SockAddr::unix(&path).unwrap()).unwrap();
    l.listen(0).unwrap();
    // Fill the backlog: non-blocking connects until the listener says EAGAIN.
    let mut fillers = Vec::new();
    loop {
        let c = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        c.set_nonblocking(true).unwrap();
        match c.connect(&SockAddr::unix(&path).unwrap()) {
            Ok(()) => fillers.push(c),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("filling the backlog: {e}"),
        }
        assert!(fillers.len() < 64, "the Unix backlog never filled");
    }
    let url = format!("unix:{}", path.display());
    on_time(
        "connect unix (Rust)",
        || jumpwire::connect(&url, Some(TIMEOUT)),
        is_timeout,
    );
    let c_url = CString::new(url).unwrap();
    let mut s: *mut jw_stream = null_mut();
    on_time(
        "jw_connect unix",
        || jw_connect(c_url.as_ptr(), TIMEOUT_MS, &mut s),
        |st| *st == jw_status::JW_TIMEOUT,
    );
    assert!(s.is_null());
}

#[test]
fn receive_from_a_silent_peer() {
    let (s, _peer) = tcp_pair();
    let mut buf = [0u8; 64];
    on_time(
        "receive (Rust)",
        || s.receive(&mut buf, Some(TIMEOUT)),
        is_timeout,
    );

    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = CString::new(format!("tcp://{}", l.local_addr().unwrap())).unwrap();
    let mut c: *mut jw_stream = null_mut();
    assert_eq!(jw_connect(url.as_ptr(), 5000, &mut c), jw_status::JW_OK);
    let _peer = l.accept().unwrap();
    let mut n = 0usize;
    on_time(
        "jw_stream_receive",
        || jw_stream_receive(c, buf.as_mut_ptr().cast(), buf.len(), &mut n, TIMEOUT_MS),
        |st| *st == jw_status::JW_TIMEOUT,
    );
    jw_stream_close(c);
}

#[test]
fn send_to_a_peer_that_never_reads() {
    let chunk = vec![7u8; 256 * 1024];
    // Sends until one times out (the socket buffers are full); that one
    // must keep to its timeout. Bounded: loopback buffers hold a few MiB.
    let fill = |send: &mut dyn FnMut() -> bool, what: &str| {
        for _ in 0..400 {
            let t0 = Instant::now();
            if !send() {
                let took = t0.elapsed();
                eprintln!("{what}: {took:?} for a {TIMEOUT:?} timeout");
                assert_between(took, TIMEOUT - Duration::from_millis(5), TIMEOUT + GRACE);
                return;
            }
            assert!(
                t0.elapsed() < TIMEOUT + GRACE,
                "{what}: a send took {:?}",
                t0.elapsed()
            );
        }
        panic!("{what}: 100 MiB went to a peer that never reads");
    };

    let (s, peer) = tcp_pair();
    fill(
        &mut || match s.send(&chunk, Some(TIMEOUT)) {
            Ok(()) => true,
            Err(Error::Timeout) => false,
            Err(e) => panic!("send: {e}"),
        },
        "send (Rust)",
    );
    // A peer that goes away unblocks the rest at once (no close grace).
    drop(peer);
    drop(s);

    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = CString::new(format!("tcp://{}", l.local_addr().unwrap())).unwrap();
    let mut c: *mut jw_stream = null_mut();
    assert_eq!(jw_connect(url.as_ptr(), 5000, &mut c), jw_status::JW_OK);
    let peer = l.accept().unwrap();
    fill(
        &mut || match jw_stream_send(c, chunk.as_ptr().cast(), chunk.len(), TIMEOUT_MS) {
            jw_status::JW_OK => true,
            jw_status::JW_TIMEOUT => false,
            st => panic!("jw_stream_send: {st:?}"),
        },
        "jw_stream_send",
    );
    drop(peer);
    jw_stream_close(c);
}
