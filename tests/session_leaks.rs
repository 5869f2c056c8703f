//! Session resource leaks: 500 streams opened and closed through one
//! `jumpstarter:` network (one connection to upstream's session,
//! `tests/python/session_peer.py`), cleanly, midway and at once, leave the
//! process with exactly the threads and descriptors it had after a warm-up;
//! and dropping the network lets go of its connection. ONE test, so that
//! nothing else in this process changes the counts. Needs `JW_PYTHON`.

mod common;

use common::routing::counts_back_to;
use common::session::Peer;
use common::{LONG, recv_to_eof, round_trip, steady};
use jumpwire::Network;
use std::time::{Duration, Instant};

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

#[test]
fn five_hundred_streams_through_one_session_leave_nothing_behind() {
    let peer = Peer::start(&[]);
    // Warm-up: the library's driver thread starts with the first stream.
    let warm = peer.net("tcp");
    streams(&warm, 0, 10);
    drop(warm);
    let idle = steady(Duration::from_secs(2));
    let net = peer.net("tcp");
    streams(&net, 0, 10);
    let before = steady(Duration::from_secs(2));
    let t0 = Instant::now();
    streams(&net, 10, 510);
    eprintln!("500 session streams in {:?}", t0.elapsed());
    assert_eq!(
        counts_back_to(before),
        before,
        "(threads, fds) before and after"
    );
    // The network's connection goes with it.
    drop(net);
    assert_eq!(
        counts_back_to(idle),
        idle,
        "(threads, fds) without the network"
    );
}
