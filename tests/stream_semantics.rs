//! DESIGN.md's stream semantics, through the Rust API, on TCP streams (against
//! std::net peers) and on the in-memory echo stream: receive timeouts (`None`
//! waits, zero polls, a deadline expires on time), partial receives that lose
//! nothing, EOF only after all data and sticky, `send_eof` half-close, sends
//! after `send_eof`, one thread sending while another receives, `close` waking
//! blocked calls, and all-or-nothing sends with a timeout (the partial-write
//! flusher of src/network/fd.rs).

mod common;

use common::*;
use jumpwire::{Error, Stream};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::Duration;

const MIB: usize = 1024 * 1024;

fn echo() -> Stream {
    jumpwire::connect("echo:", LONG).unwrap()
}

// ---------------------------------------------------------------- timeouts

#[test]
fn receive_none_waits_for_late_data_tcp() {
    let (s, mut peer) = tcp_pair();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        peer.write_all(b"late").unwrap();
        peer
    });
    let mut buf = [0u8; 16];
    let (r, took) = timed(|| s.receive(&mut buf, None));
    assert_eq!(r, Ok(Some(4)));
    assert_eq!(&buf[..4], b"late");
    assert!(
        took >= Duration::from_millis(250),
        "returned early: {took:?}"
    );
    join(writer);
}

#[test]
fn receive_none_waits_for_late_data_echo() {
    let s = echo();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            s.send(b"late", LONG).unwrap();
        });
        let mut buf = [0u8; 16];
        let (r, took) = timed(|| s.receive(&mut buf, None));
        assert_eq!(r, Ok(Some(4)));
        assert_eq!(&buf[..4], b"late");
        assert!(
            took >= Duration::from_millis(250),
            "returned early: {took:?}"
        );
    });
}

fn check_zero_timeout_polls(s: &Stream) {
    let mut buf = [0u8; 16];
    let (r, took) = timed(|| s.receive(&mut buf, Some(Duration::ZERO)));
    assert_timeout(r);
    assert!(took < Duration::from_secs(1), "a poll took {took:?}");
}

/// Polls with a zero timeout until data is there (bounded), as a harness
/// would; every poll either times out at once or returns the data.
fn poll_until_data(s: &Stream, want: &[u8]) {
    let mut buf = [0u8; 64];
    for _ in 0..300 {
        let (r, took) = timed(|| s.receive(&mut buf, Some(Duration::ZERO)));
        assert!(took < Duration::from_secs(1), "a poll took {took:?}");
        match r {
            Ok(Some(n)) => {
                assert_eq!(&buf[..n], want);
                return;
            }
            Err(Error::Timeout) => std::thread::sleep(Duration::from_millis(10)),
            other => panic!("poll returned {other:?}"),
        }
    }
    panic!("data never showed up to a poll");
}

#[test]
fn receive_zero_timeout_polls_tcp() {
    let (s, mut peer) = tcp_pair();
    check_zero_timeout_polls(&s);
    peer.write_all(b"now").unwrap();
    poll_until_data(&s, b"now");
    check_zero_timeout_polls(&s);
}

#[test]
fn receive_zero_timeout_polls_echo() {
    let s = echo();
    check_zero_timeout_polls(&s);
    s.send(b"now", LONG).unwrap();
    poll_until_data(&s, b"now");
    check_zero_timeout_polls(&s);
}

fn check_200ms_timeout(s: &Stream) {
    let mut buf = [0u8; 16];
    for _ in 0..2 {
        let (r, took) = timed(|| s.receive(&mut buf, ms(200)));
        assert_timeout(r);
        assert_between(took, Duration::from_millis(150), SLACK);
    }
}

#[test]
fn receive_timeout_expires_while_peer_is_silent_tcp() {
    let (s, _peer) = tcp_pair();
    check_200ms_timeout(&s);
}

#[test]
fn receive_timeout_expires_while_peer_is_silent_echo() {
    let s = echo();
    check_200ms_timeout(&s);
}

// ---------------------------------------------------------------- partial receives

const PARTIAL: usize = 100_003;

#[test]
fn partial_receives_lose_nothing_tcp() {
    let (s, mut peer) = tcp_pair();
    let data = pattern(PARTIAL, 1);
    peer.write_all(&data).unwrap();
    let got = recv_exact(&s, PARTIAL, 1000, Duration::from_secs(10));
    assert!(got == data, "bytes differ");
    // Nothing more than what was sent.
    assert_timeout(s.receive(&mut [0u8; 1000], ms(50)));
}

#[test]
fn partial_receives_lose_nothing_echo() {
    let s = echo();
    let data = pattern(PARTIAL, 2);
    let next = pattern(10, 3);
    s.send(&data, LONG).unwrap();
    s.send(&next, LONG).unwrap();
    let mut buf = [0u8; 1000];
    let mut got = Vec::new();
    while got.len() < PARTIAL {
        let n = s.receive(&mut buf, LONG).unwrap().unwrap();
        // The message comes out in buffer-sized pieces, never mixed with the next.
        assert_eq!(n, (PARTIAL - got.len()).min(1000));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got == data, "bytes differ");
    let n = s.receive(&mut buf, LONG).unwrap().unwrap();
    assert_eq!(&buf[..n], &next[..]);
}

#[test]
fn empty_receive_buffer_is_invalid() {
    let s = echo();
    s.send(b"x", LONG).unwrap();
    let r = s.receive(&mut [], LONG);
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    // The data is still there.
    let mut buf = [0u8; 4];
    assert_eq!(s.receive(&mut buf, LONG), Ok(Some(1)));
}

// ---------------------------------------------------------------- EOF

fn check_eof_is_sticky(s: &Stream) {
    let mut buf = [0u8; 16];
    assert_eq!(s.receive(&mut buf, LONG), Ok(None));
    assert_eq!(s.receive(&mut buf, LONG), Ok(None));
    assert_eq!(s.receive(&mut buf, Some(Duration::ZERO)), Ok(None));
}

#[test]
fn eof_comes_only_after_all_data_tcp() {
    let (s, mut peer) = tcp_pair();
    let data = pattern(3 * MIB + 17, 4);
    let writer = std::thread::spawn({
        let data = data.clone();
        move || {
            peer.write_all(&data).unwrap();
            peer.shutdown(Shutdown::Write).unwrap();
            peer
        }
    });
    // Let the FIN arrive while most of the data is still unread.
    std::thread::sleep(Duration::from_millis(200));
    let got = recv_to_eof(&s, Duration::from_secs(10));
    assert!(
        got == data,
        "got {} of {} bytes before EOF",
        got.len(),
        data.len()
    );
    check_eof_is_sticky(&s);
    drop(join(writer));
    check_eof_is_sticky(&s);
}

#[test]
fn eof_comes_only_after_all_data_echo() {
    let s = echo();
    let msgs: Vec<Vec<u8>> = (0..10).map(|i| pattern(5000 + i, i as u64)).collect();
    for m in &msgs {
        s.send(m, LONG).unwrap();
    }
    s.send_eof().unwrap();
    let got = recv_to_eof(&s, Duration::from_secs(10));
    assert!(got == msgs.concat(), "data before EOF differs");
    check_eof_is_sticky(&s);
}

// ---------------------------------------------------------------- send_eof

#[test]
fn send_eof_half_closes_tcp() {
    let (s, peer) = tcp_pair();
    let data = pattern(200_000, 5);
    // The peer reads until EOF, then answers with what it got.
    let server = std::thread::spawn(move || {
        let mut peer = peer;
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        peer.write_all(format!("got {}", got.len()).as_bytes())
            .unwrap();
        peer.write_all(&got).unwrap();
        got
    });
    s.send(&data, LONG).unwrap();
    s.send_eof().unwrap();
    s.send_eof().unwrap(); // again: nothing happens
    let reply = recv_to_eof(&s, Duration::from_secs(10));
    let head = b"got 200000";
    assert_eq!(&reply[..head.len()], head);
    assert!(reply[head.len()..] == data, "echoed bytes differ");
    assert!(join(server) == data);
}

#[test]
fn send_after_send_eof_is_closed_tcp() {
    let (s, mut peer) = tcp_pair();
    s.send(b"last", LONG).unwrap();
    s.send_eof().unwrap();
    let r = s.send(b"more", LONG);
    assert!(matches!(r, Err(Error::Closed(_))), "{r:?}");
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"last");
    // Receiving still works after the half-close.
    peer.write_all(b"back").unwrap();
    assert_eq!(recv_exact(&s, 4, 16, Duration::from_secs(5)), b"back");
}

#[test]
fn send_after_send_eof_is_closed_echo() {
    let s = echo();
    s.send(b"last", LONG).unwrap();
    s.send_eof().unwrap();
    let r = s.send(b"more", LONG);
    assert!(matches!(r, Err(Error::Closed(_))), "{r:?}");
    assert_eq!(recv_to_eof(&s, Duration::from_secs(5)), b"last");
}

// ---------------------------------------------------------------- concurrency

const BIG: usize = 32 * MIB;

/// Sends `out` in 1 MiB sends on one thread while another receives `want`.
fn send_and_receive_at_once(s: &Stream, out: &[u8], want: &[u8]) {
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            for c in out.chunks(MIB) {
                s.send(c, LONG).unwrap();
            }
        });
        let receiver =
            scope.spawn(|| recv_exact(s, want.len(), 256 * 1024, Duration::from_secs(25)));
        sender.join().unwrap();
        let got = receiver.join().unwrap();
        assert!(got == want, "received bytes differ");
    });
}

#[test]
fn concurrent_send_and_receive_tcp_echo() {
    let addr = tcp_echo_server("127.0.0.1:0");
    let s = jumpwire::connect(&format!("tcp://{addr}"), LONG).unwrap();
    let data = pattern(BIG, 6);
    send_and_receive_at_once(&s, &data, &data);
}

#[test]
fn concurrent_send_and_receive_tcp_independent_peer() {
    let (s, peer) = tcp_pair();
    let up = pattern(BIG, 7);
    let down = pattern(BIG, 8);
    let mut peer_reader = peer.try_clone().unwrap();
    let mut peer_writer = peer;
    std::thread::scope(|scope| {
        let r = scope.spawn(|| {
            let mut got = vec![0u8; BIG];
            peer_reader.read_exact(&mut got).unwrap();
            got
        });
        scope.spawn(|| peer_writer.write_all(&down).unwrap());
        send_and_receive_at_once(&s, &up, &down);
        assert!(r.join().unwrap() == up, "the peer received different bytes");
    });
}

#[test]
fn concurrent_send_and_receive_echo() {
    let s = echo();
    let data = pattern(BIG, 9);
    send_and_receive_at_once(&s, &data, &data);
}

// ---------------------------------------------------------------- close

/// Blocks a thread in `receive(None)`, closes from this thread, and checks the
/// blocked call returns `Error::Closed` promptly; later calls too.
fn check_close_wakes_receiver(s: Stream) {
    let s = Arc::new(s);
    let blocked = {
        let s = s.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            timed(|| s.receive(&mut buf, None))
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !blocked.is_finished(),
        "receive(None) returned with nothing to receive"
    );
    let (_, close_took) = timed(|| s.close());
    let (r, took) = join(blocked);
    assert!(matches!(r, Err(Error::Closed(_))), "{r:?}");
    assert!(
        took < Duration::from_millis(200) + SLACK,
        "woke after {took:?}"
    );
    assert!(close_took < SLACK, "close took {close_took:?}");
    let r = s.receive(&mut [0u8; 4], LONG);
    assert!(matches!(r, Err(Error::Closed(_))), "{r:?}");
    let r = s.send(b"x", LONG);
    assert!(matches!(r, Err(Error::Closed(_))), "{r:?}");
    s.close(); // twice: nothing happens
}

#[test]
fn close_wakes_a_blocked_receive_tcp() {
    let (s, _peer) = tcp_pair();
    check_close_wakes_receiver(s);
}

#[test]
fn close_wakes_a_blocked_receive_echo() {
    check_close_wakes_receiver(echo());
}

/// Blocks a thread in `send(None)` that cannot finish, closes, and checks it
/// returns `Error::Closed` promptly.
fn check_close_wakes_sender(s: Stream, chunk: usize) {
    let s = Arc::new(s);
    let blocked = {
        let s = s.clone();
        std::thread::spawn(move || {
            let data = vec![0x5a; chunk];
            // Bounded: the first send that blocks is the one close must wake.
            for _ in 0..1000 {
                let (r, took) = timed(|| s.send(&data, None));
                if r.is_err() {
                    return (r, took);
                }
            }
            panic!("sends never blocked");
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(!blocked.is_finished(), "the sender never blocked");
    s.close();
    let (r, took) = join(blocked);
    assert!(matches!(r, Err(Error::Closed(_))), "{r:?}");
    assert!(
        took < Duration::from_millis(500) + SLACK,
        "woke after {took:?}"
    );
}

#[test]
fn close_wakes_a_blocked_send_tcp() {
    // The peer never reads.
    let (s, _peer) = tcp_pair();
    check_close_wakes_sender(s, MIB);
}

#[test]
fn close_wakes_a_blocked_send_echo() {
    // Nobody receives, so the echo fills up.
    check_close_wakes_sender(echo(), 1000);
}

// ---------------------------------------------------------------- all-or-nothing sends

/// The names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim_end().to_string())
        .collect()
}

#[test]
fn timed_out_sends_are_all_or_nothing() {
    let (s, peer) = tcp_pair();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    // The peer reads nothing until told, then everything until EOF.
    let reader = std::thread::spawn(move || {
        let mut peer = peer;
        go_rx.recv().unwrap();
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        got
    });

    let mut accepted: Vec<Vec<u8>> = Vec::new();
    let mut timeouts = 0;
    for i in 0..512u64 {
        let chunk = pattern(MIB, 100 + i);
        let (r, took) = timed(|| s.send(&chunk, ms(100)));
        assert!(
            took < Duration::from_millis(100) + SLACK,
            "send {i} took {took:?}"
        );
        match r {
            Ok(()) => accepted.push(chunk),
            Err(Error::Timeout) => {
                timeouts += 1;
                // Once more: a retry that times out again must not count either.
                if timeouts == 2 {
                    break;
                }
            }
            Err(e) => panic!("send {i}: {e:?}"),
        }
    }
    assert_eq!(
        timeouts, 2,
        "no send timed out against a peer that never reads"
    );
    assert!(!accepted.is_empty(), "no send went through at all");
    // One accepted send was only partly written when its deadline passed: its
    // rest is with the flusher thread, still blocked on the silent peer.
    assert!(
        thread_names().iter().any(|n| n == "jw-flush"),
        "no flusher thread: the partial-write path was not exercised"
    );

    // Now the peer reads; the stream is still usable and ends cleanly.
    go_tx.send(()).unwrap();
    let last = pattern(MIB, 99);
    s.send(&last, LONG).unwrap();
    accepted.push(last);
    s.send_eof().unwrap();
    let got = join(reader);
    let want = accepted.concat();
    assert_eq!(
        got.len(),
        want.len(),
        "byte count ({} sends accepted)",
        accepted.len()
    );
    if let Some(at) = got.iter().zip(&want).position(|(a, b)| a != b) {
        panic!("bytes differ from offset {at} (chunk {})", at / MIB);
    }
}

/// What [`send_until_a_timeout`] leaves: the stream, the `go` switch, the
/// peer's reader and the sends that were accepted.
type Stalled = (
    Stream,
    std::sync::mpsc::Sender<()>,
    std::thread::JoinHandle<Vec<u8>>,
    Vec<Vec<u8>>,
);

/// A TCP stream whose peer does not read until told to (`go`): 1 MiB sends
/// with a 100 ms timeout go out until one times out, which leaves a partly
/// written send to the background flusher. Returns the stream, the `go`
/// switch, the peer's reader (all it receives, to EOF) and the accepted sends.
fn send_until_a_timeout(seed: u64) -> Stalled {
    let (s, peer) = tcp_pair();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut peer: TcpStream = peer;
        go_rx.recv().unwrap();
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        got
    });
    let mut accepted: Vec<Vec<u8>> = Vec::new();
    let mut timed_out = false;
    for i in 0..512u64 {
        let chunk = pattern(MIB, seed + i);
        match s.send(&chunk, ms(100)) {
            Ok(()) => accepted.push(chunk),
            Err(Error::Timeout) => {
                timed_out = true;
                break;
            }
            Err(e) => panic!("send {i}: {e:?}"),
        }
    }
    assert!(
        timed_out,
        "no send timed out against a peer that never reads"
    );
    (s, go_tx, reader, accepted)
}

#[test]
fn timed_out_send_then_close_delivers_what_was_accepted() {
    let (s, go_tx, reader, accepted) = send_until_a_timeout(1000);
    // close waits (bounded) for the accepted rest; the peer starts reading
    // shortly after close starts.
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            go_tx.send(()).unwrap();
        });
        s.close();
    });
    let got = join(reader);
    let want = accepted.concat();
    assert_eq!(got.len(), want.len(), "byte count");
    assert!(got == want, "bytes differ");
}

#[test]
fn send_eof_while_the_flusher_runs_comes_after_the_rest() {
    let (s, go_tx, reader, accepted) = send_until_a_timeout(2000);
    // The half-close is queued behind the rest of the partly written send.
    s.send_eof().unwrap();
    let r = s.send(b"x", LONG);
    assert!(matches!(r, Err(Error::Closed(_))), "{r:?}");
    go_tx.send(()).unwrap();
    let got = join(reader);
    let want = accepted.concat();
    assert_eq!(got.len(), want.len(), "byte count");
    assert!(got == want, "bytes differ");
}
