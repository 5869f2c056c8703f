//! Bare router ping-pong for context-switch counts:
//! an embedded router, two router streams of one token in this process,
//! `COUNT` 64-byte round trips, p50. Run under
//! `perf stat -e context-switches` (`COUNT`, default 20000).
use jumpwire::router::{self, Router, token};
use std::time::{Duration, Instant};

fn main() {
    let count: usize = std::env::var("COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20000);
    let r = Router::serve("grpc://127.0.0.1:0?key=k").unwrap();
    let t = token::mint("k", "pp", Duration::from_secs(60)).unwrap();
    let w = Some(Duration::from_secs(10));
    let (url, t2) = (r.address().to_string(), t.clone());
    let b = std::thread::spawn(move || router::connect(&url, &t2, w).unwrap());
    let a = router::connect(r.address(), &t, w).unwrap();
    let b = b.join().unwrap();
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        for _ in 0..count + 100 {
            let mut got = 0;
            while got < 64 {
                got += b.receive(&mut buf[got..], w).unwrap().unwrap();
            }
            b.send(&buf, w).unwrap();
        }
        b
    });
    let mut buf = [0u8; 64];
    let mut lat = Vec::with_capacity(count);
    for i in 0..count + 100 {
        let t0 = Instant::now();
        a.send(&[7u8; 64], w).unwrap();
        let mut got = 0;
        while got < 64 {
            got += a.receive(&mut buf[got..], w).unwrap().unwrap();
        }
        if i >= 100 {
            lat.push(t0.elapsed());
        }
    }
    let b = echo.join().unwrap();
    lat.sort();
    println!(
        "{count} round trips: p50 {:?} p90 {:?} p99 {:?}",
        lat[count / 2],
        lat[count * 9 / 10],
        lat[count * 99 / 100]
    );
    a.close();
    b.close();
    r.close();
}
