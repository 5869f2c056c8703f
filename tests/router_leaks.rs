//! Router resource leaks: 1,000 sequential pairings through an embedded
//! router (each a small exchange both ways, half-close and close; every tenth
//! through the C API) leave the process with exactly the threads and file
//! descriptors it had after a warm-up round. ONE test, so that nothing else in
//! this process changes the counts.

mod common;

use common::routing::{c_pairing, counts, counts_back_to, pair_at, ping_pong};
use jumpwire::router::Router;
use std::time::{Duration, Instant};

fn round(r: &Router, from: usize, to: usize) {
    for i in from..to {
        if i % 10 == 9 {
            c_pairing(r.address(), i);
            continue;
        }
        let (a, b) = pair_at(r.address(), "leak-key", &format!("s{i}"));
        ping_pong(&a, &b, i);
        a.close();
        b.close();
    }
}

#[test]
fn a_thousand_sequential_pairings_leave_no_thread_or_fd_behind() {
    let r = Router::serve("grpc://127.0.0.1:0?key=leak-key").unwrap();
    round(&r, 0, 20);
    std::thread::sleep(Duration::from_millis(500));
    let before = counts();
    let t0 = Instant::now();
    round(&r, 20, 1020);
    eprintln!("1,000 pairings in {:?}", t0.elapsed());
    assert_eq!(
        counts_back_to(before),
        before,
        "(threads, fds) before and after"
    );
    r.close();
}
