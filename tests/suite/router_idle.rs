//! Router client streams that no caller is inside of: the library's driver
//! thread runs a stream's runtime when its socket has something for it
//! (once the stream has sent) and about once a second in any case, so an
//! idle stream goes on working and what a quiet sender queued still moves.
//! These tests hold streams open for seconds, which would disturb the thread
//! and descriptor counts of the leak tests: those run in binaries of their own
//! (`tests/router_leaks.rs`, ...), not beside these.

use crate::common;

use common::routing::*;
use common::*;
use jumpwire::Stream;
use jumpwire::router::Router;
use std::time::Duration;

const KEY: &str = "idle-test-key";

fn router() -> Router {
    Router::serve(&format!("grpc://127.0.0.1:0?key={KEY}")).unwrap()
}

/// A router and a pair of streams through it.
fn paired(id: &str) -> (Router, Stream, Stream) {
    let r = router();
    let (a, b) = pair_at(r.address(), KEY, id);
    (r, a, b)
}

/// Router streams that no thread is inside of are run by the library's
/// driver (at least once a second): a stream left idle for several of its
/// rounds still exchanges both ways afterwards.
#[test]
fn an_idle_stream_keeps_working_after_the_idle_driver_has_run() {
    let (_r, a, b) = paired("idle");
    a.send(b"before", LONG).unwrap();
    assert_eq!(recv_exact(&b, 6, 16, Duration::from_secs(10)), b"before");
    std::thread::sleep(Duration::from_millis(3500));
    b.send(b"after the pause", LONG).unwrap();
    assert_eq!(
        recv_exact(&a, 15, 64, Duration::from_secs(10)),
        b"after the pause"
    );
    a.send(b"and back", LONG).unwrap();
    assert_eq!(recv_exact(&b, 8, 64, Duration::from_secs(10)), b"and back");
    end_pair(a, b);
}

/// What a sender queued beyond the flow-control windows is written once the
/// receiver makes room, even when the sending thread has left the stream and
/// does not come back: the driver moves it.
#[test]
fn data_queued_by_a_sender_that_went_quiet_still_arrives() {
    let (_r, a, b) = paired("quiet");
    // More than the stream and connection windows (4 and 8 MiB) at once.
    let data = pattern(12 << 20, 7);
    let want = data.clone();
    let reader = std::thread::spawn(move || {
        // A slow start, so that the sender fills the windows and its queue.
        std::thread::sleep(Duration::from_millis(300));
        let got = recv_exact(&b, want.len(), 64 << 10, Duration::from_secs(20));
        assert!(got == want, "the data differs");
        b
    });
    a.send(&data, LONG).unwrap();
    // The sending thread now stays out of the stream until the reader is done.
    let b = join(reader);
    end_pair(a, b);
}

/// A send cut short by its timeout leaves the rest to the library; the rest
/// moves as fast as the receiver makes room, not one window per round of
/// the driver's once-a-second tick: the driver runs the stream's runtime as
/// soon as the router's window updates reach its socket. 48 MiB is twelve
/// stream windows: by ticks alone that would take twelve seconds or more.
#[test]
fn the_rest_of_a_send_moves_as_the_receiver_makes_room() {
    let (_r, a, b) = paired("rest");
    let data = pattern(48 << 20, 11);
    // Nobody reads yet: the send takes what the windows and its queue hold
    // and returns at its timeout, the rest left to the library.
    a.send(&data, Some(Duration::from_millis(300))).unwrap();
    // The sending thread stays out of the stream from now on.
    let t0 = std::time::Instant::now();
    let got = recv_exact(&b, data.len(), 256 << 10, Duration::from_secs(30));
    let took = t0.elapsed();
    assert!(got == data, "the data differs");
    assert!(
        took < Duration::from_secs(6),
        "48 MiB took {took:?}: the rest of the send waited for the driver's ticks"
    );
    end_pair(a, b);
}

/// One thread waits in `receive` (nothing comes for it yet) while another
/// sends, with no timeout: every send returns at once and its bytes reach
/// the peer, though the waiting thread is the one running the stream's
/// connection (a send does not wait for that runtime's next pause, which
/// with nothing arriving could be the keepalive timer, 20 s away).
#[test]
fn sends_beside_a_waiting_receive_return_and_arrive() {
    let (_r, a, b) = paired("beside");
    let a = std::sync::Arc::new(a);
    let waiter = {
        let a = a.clone();
        std::thread::spawn(move || recv_exact(&a, 4, 16, Duration::from_secs(60)))
    };
    std::thread::sleep(Duration::from_millis(100));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let sender = {
        let a = a.clone();
        std::thread::spawn(move || {
            for i in 0..300u32 {
                a.send(&i.to_le_bytes(), None).unwrap();
                done_tx.send(i).unwrap();
            }
        })
    };
    for i in 0..300u32 {
        let got = done_rx.recv_timeout(Duration::from_secs(5));
        assert_eq!(got, Ok(i), "send {i} did not return within 5 s");
        let bytes = recv_exact(&b, 4, 4, Duration::from_secs(5));
        assert_eq!(bytes, i.to_le_bytes());
    }
    join(sender);
    b.send(b"done", LONG).unwrap();
    assert_eq!(join(waiter), b"done");
    b.send_eof().unwrap();
    a.send_eof().unwrap();
    expect_eof(&b);
    expect_eof(&a);
    drop(a);
    b.close();
}
