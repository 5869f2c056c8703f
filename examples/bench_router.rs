//! Router benchmark (run `bench/router.sh`, or this program directly with
//! `cargo run --release --example bench_router`): the whole routed path on
//! 127.0.0.1, client -> router -> exporter -> TCP echo, in one process
//! except the router, which runs as a child process (this program with the
//! argument `router-server`) so that its threads and memory can be read.
//!
//! Prints: round-trip throughput (the client sends `MIB` MiB and receives the
//! echo at the same time; each direction carries that much), 64-byte round
//! trip latency percentiles (`COUNT` round trips), and 500 concurrent paired
//! streams through one router (each pair exchanges 64 KiB both ways), with
//! the router process's threads and resident memory while they are open.

use jumpwire::network::Network;
use jumpwire::router::{self, Router, token};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
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

fn proc_status(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l[field.len()..].trim().to_string())
        .unwrap_or_default()
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("router-server") {
        let r = Router::serve(&format!("grpc://127.0.0.1:0?key={KEY}")).unwrap();
        println!("ADDR {}", r.address());
        let _ = std::io::stdin().read(&mut [0u8; 1]);
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("router-server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().strip_prefix("ADDR ").unwrap().to_string();
    let pid = child.id();
    println!(
        "router {url} (pid {pid}): {} threads, {} resident at start",
        proc_status(pid, "Threads:"),
        proc_status(pid, "VmRSS:")
    );
    let device = tcp_echo();

    // Throughput and latency through one exported stream.
    let t = token::mint(KEY, "bench", Duration::from_secs(600)).unwrap();
    let exporter = {
        let (url, t, target) = (url.clone(), t.clone(), Network::new(&device).unwrap());
        std::thread::spawn(move || router::export(&url, &t, &target, WAIT))
    };
    let s = router::connect(&url, &t, WAIT).unwrap();
    let mib = env("MIB", 1024);
    let block = vec![0x5au8; 256 * 1024];
    let mut buf = vec![0u8; 256 * 1024];
    // Warm-up round trip.
    s.send(b"w", WAIT).unwrap();
    s.receive(&mut buf, WAIT).unwrap();
    let t0 = Instant::now();
    std::thread::scope(|sc| {
        sc.spawn(|| {
            for _ in 0..mib * 4 {
                s.send(&block, WAIT).unwrap();
            }
        });
        let mut got = 0usize;
        while got < mib << 20 {
            got += s.receive(&mut buf, WAIT).unwrap().unwrap();
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "throughput: {mib} MiB each way in {secs:.2} s = {:.2} Gbit/s per direction (round trip through router, exporter and TCP echo)",
        (mib << 20) as f64 * 8.0 / secs / 1e9
    );
    let count = env("COUNT", 10_000);
    let msg = [0x42u8; 64];
    let mut rtts = Vec::with_capacity(count);
    for _ in 0..count {
        let t0 = Instant::now();
        s.send(&msg, WAIT).unwrap();
        let mut got = 0;
        while got < msg.len() {
            got += s.receive(&mut buf, WAIT).unwrap().unwrap();
        }
        rtts.push(t0.elapsed());
    }
    rtts.sort();
    let p = |q: f64| rtts[((rtts.len() - 1) as f64 * q) as usize].as_micros();
    println!(
        "64-byte round trips ({count}): p50 {} us, p90 {} us, p99 {} us",
        p(0.5),
        p(0.9),
        p(0.99)
    );
    s.send_eof().unwrap();
    while s.receive(&mut buf, WAIT).unwrap().is_some() {}
    s.close();
    exporter.join().unwrap().unwrap();

    // 500 concurrent pairs.
    let pairs = env("PAIRS", 500);
    let t0 = Instant::now();
    let streams: Vec<_> = (0..pairs)
        .map(|i| {
            let t = token::mint(KEY, &format!("p{i}"), Duration::from_secs(600)).unwrap();
            (
                router::connect(&url, &t, WAIT).unwrap(),
                router::connect(&url, &t, WAIT).unwrap(),
            )
        })
        .collect();
    let data: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    std::thread::scope(|sc| {
        for chunk in streams.chunks(pairs.div_ceil(8)) {
            let data = &data;
            sc.spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                for (a, b) in chunk {
                    for (from, to) in [(a, b), (b, a)] {
                        from.send(data, WAIT).unwrap();
                        let mut got = Vec::new();
                        while got.len() < data.len() {
                            let n = to.receive(&mut buf, WAIT).unwrap().unwrap();
                            got.extend_from_slice(&buf[..n]);
                        }
                        assert!(got == *data);
                    }
                }
            });
        }
    });
    println!(
        "{pairs} concurrent pairs: all exchanged 64 KiB both ways correctly in {:.2} s; router: {} threads, {} resident",
        t0.elapsed().as_secs_f64(),
        proc_status(pid, "Threads:"),
        proc_status(pid, "VmRSS:")
    );
    drop(streams);
    drop(child.stdin.take());
    let _ = child.wait();
}
