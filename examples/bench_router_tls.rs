//! Router over TLS against plaintext, side by side in one run (`cargo run
//! --release --example bench_router_tls`): the whole routed path on
//! 127.0.0.1, client -> router -> exporter -> TCP echo, all in this process,
//! once through a `grpc://` router and once through a `grpcs://` one (its
//! self-signed certificate trusted with `?ca=`).
//!
//! Prints, for each: round-trip throughput (the client sends `MIB` MiB,
//! default 256, and receives the echo at the same time), 64-byte round-trip
//! latency p50/p99 over `COUNT` round trips (default 2000), the time to open
//! a router stream (p50 over 50 connects), and the TLS/plaintext ratios.

use jumpwire::network::Network;
use jumpwire::router::{self, Router, token};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

const KEY: &str = "bench-key";
const WAIT: Option<Duration> = Some(Duration::from_secs(30));

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn tcp_echo() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.set_nodelay(true);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 256 * 1024];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = conn.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    format!("tcp://{addr}")
}

struct Figures {
    mbit: f64,
    p50_us: f64,
    p99_us: f64,
    open_ms: f64,
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1e6
}

/// One routed stream to the echo through `url`, with its exporter thread.
fn routed(url: &str, echo: &str, id: &str) -> (jumpwire::Stream, std::thread::JoinHandle<()>) {
    let t = token::mint(KEY, id, Duration::from_secs(600)).unwrap();
    let exporter = {
        let (url, t) = (url.to_string(), t.clone());
        let target = Network::new(echo).unwrap();
        std::thread::spawn(move || {
            let _ = router::export(&url, &t, &target, WAIT);
        })
    };
    (router::connect(url, &t, WAIT).unwrap(), exporter)
}

fn measure(url: &str, echo: &str, tag: &str, mib: usize, count: usize) -> Figures {
    // Throughput.
    let (c, exporter) = routed(url, echo, &format!("{tag}-tp"));
    let block = vec![0x5au8; 1 << 20];
    let t0 = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..mib {
                c.send(&block, WAIT).unwrap();
            }
            c.send_eof().unwrap();
        });
        let mut buf = vec![0u8; 256 << 10];
        let mut got = 0usize;
        while let Some(n) = c.receive(&mut buf, WAIT).unwrap() {
            got += n;
        }
        assert_eq!(got, mib << 20);
    });
    let secs = t0.elapsed().as_secs_f64();
    c.close();
    exporter.join().unwrap();
    let mbit = (mib << 20) as f64 * 8.0 / secs / 1e6;
    // Latency.
    let (c, exporter) = routed(url, echo, &format!("{tag}-lat"));
    let msg = [7u8; 64];
    let mut buf = [0u8; 64];
    let mut rtts = Vec::with_capacity(count);
    for i in 0..count + 100 {
        let t = Instant::now();
        c.send(&msg, WAIT).unwrap();
        let mut got = 0;
        while got < 64 {
            got += c.receive(&mut buf[got..], WAIT).unwrap().unwrap();
        }
        if i >= 100 {
            rtts.push(t.elapsed());
        }
    }
    c.send_eof().unwrap();
    while c.receive(&mut buf, WAIT).unwrap().is_some() {}
    c.close();
    exporter.join().unwrap();
    // Opening a stream (dial + handshake + call start).
    let mut opens = Vec::new();
    for i in 0..50 {
        // A token of its own each time, so that no open pairs with the last.
        let t = token::mint(KEY, &format!("{tag}-open{i}"), Duration::from_secs(600)).unwrap();
        let t0 = Instant::now();
        let s = router::connect(url, &t, WAIT).unwrap();
        opens.push(t0.elapsed());
        s.close();
    }
    Figures {
        mbit,
        p50_us: pct(&mut rtts, 0.5),
        p99_us: pct(&mut rtts, 0.99),
        open_ms: pct(&mut opens, 0.5) / 1000.0,
    }
}

fn main() {
    let mib = env("MIB", 256);
    let count = env("COUNT", 2000);
    let echo = tcp_echo();
    let plain = Router::serve(&format!("grpc://127.0.0.1:0?key={KEY}")).unwrap();
    let tls = Router::serve(&format!("grpcs://127.0.0.1:0?key={KEY}")).unwrap();
    let ca = std::env::temp_dir().join(format!("jw-bench-rtls-{}.pem", std::process::id()));
    std::fs::write(&ca, tls.certificate().unwrap()).unwrap();
    let tls_url = format!("{}?ca={}", tls.address(), ca.display());
    // Alternate to spread the machine's noise over both.
    let p = measure(plain.address(), &echo, "p", mib, count);
    let s = measure(&tls_url, &echo, "s", mib, count);
    let _ = std::fs::remove_file(&ca);
    println!(
        "routed path client -> router -> exporter -> TCP echo, {mib} MiB round trip, {count} x 64 B"
    );
    println!(
        "{:<28} {:>12} {:>12} {:>8}",
        "", "grpc://", "grpcs://", "ratio"
    );
    let row = |name: &str, a: f64, b: f64| {
        println!("{name:<28} {a:>12.1} {b:>12.1} {:>8.2}", b / a);
    };
    row("throughput (Mbit/s)", p.mbit, s.mbit);
    row("64 B round trip p50 (us)", p.p50_us, s.p50_us);
    row("64 B round trip p99 (us)", p.p99_us, s.p99_us);
    row("open a stream p50 (ms)", p.open_ms, s.open_ms);
}
