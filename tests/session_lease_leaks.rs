//! Lease resource leaks: 500 streams opened and closed (cleanly, midway and
//! at once) through one `jumpstarter:lease` network (one Dial: a session
//! connection inside a router stream, through the test controller,
//! jumpwire's router in this process and upstream's own `Exporter`, see
//! `common::lab`) leave the process with exactly the threads and
//! descriptors it had after a warm-up; dropping the network lets go of its
//! session, its router stream and its router connection (the router's side
//! of it, in this process too, included). ONE test, so that nothing else in
//! this process changes the counts. Needs `JW_PYTHON`.

mod common;

use common::lab::{Lab, RouterKind};
use common::routing::counts_back_to;
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
fn five_hundred_streams_through_one_leased_session_leave_nothing_behind() {
    let lab = Lab::start(RouterKind::Jumpwire);
    let url = lab.url("tcp", "lease1", "alice");
    // Warm-up: the library's driver thread and the router's runtime start
    // with the first streams.
    let warm = Network::new(&url).unwrap();
    streams(&warm, 0, 10);
    drop(warm);
    let idle = steady(Duration::from_secs(2));
    let net = Network::new(&url).unwrap();
    streams(&net, 0, 10);
    let before = steady(Duration::from_secs(2));
    let dials = lab.dials();
    let t0 = Instant::now();
    streams(&net, 10, 510);
    eprintln!("500 leased session streams in {:?}", t0.elapsed());
    assert_eq!(lab.dials(), dials, "the streams dialled the lease again");
    assert_eq!(
        counts_back_to(before),
        before,
        "(threads, fds) before and after"
    );
    // The network's session (and its router stream) goes with it.
    drop(net);
    assert_eq!(
        counts_back_to(idle),
        idle,
        "(threads, fds) without the network"
    );
}
