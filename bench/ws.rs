//! Websocket benchmark (run `bench/ws.sh`, which builds this `cargo bench`
//! target and finds the Python with `websockets`): side by side in one run on
//! 127.0.0.1, compression off everywhere.
//!
//! - Echo round trips, one in flight, 64 B and 64 KiB: a jumpwire client and
//!   server, the Python `websockets` client and server, and a raw TCP echo
//!   (std sockets, TCP_NODELAY, a thread per connection) as the floor. Each
//!   path has several connections, and round trips are interleaved across
//!   paths and connections in one loop (one on each jumpwire and raw
//!   connection, then one on each Python connection, driven through the Python
//!   process's stdin), so that every path sees the same machine: on a VM each
//!   connection settles into a fast or a slow wake-up mode, and blocks of round
//!   trips on one connection compare modes, not paths.
//! - Pipelined messages per second with 32 in flight, 64 B and 64 KiB:
//!   jumpwire with a reader thread and a writer thread (a sliding window),
//!   jumpwire on one thread (send 32, then receive 32), and Python (asyncio, a
//!   sliding window). Each is run five times, alternating; the medians are
//!   compared.
//! - Broadcast fan-out to 200 jumpwire clients: time for one 1 KiB message to
//!   reach all of them (p50), and messages per second sustained to all 200.
//!
//! Needs `JW_PYTHON`. `COUNT` sets the round trips per path and size (default
//! 5000; pipelined runs send 4 x COUNT messages). `ONLY=rtt`, `ONLY=pipe` or
//! `ONLY=fanout` runs one part (for profiling).
//!
//! A `cargo bench` target (`harness = false`): it measures when given
//! `--bench` (as `cargo bench --bench ws` and the script give it); without
//! it (how `cargo test --benches` and `--all-targets` run a bench target) it
//! only says what it is and exits 0.

use jumpwire::Stream;
use jumpwire::websocket::{Server, ServerConfig};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const LONG: Option<Duration> = Some(Duration::from_secs(30));
const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/ws_peer.py");
/// Connections per path in the round-trip measurement. Each connection
/// settles into a fast or a slow wake-up mode on this kind of VM; with 8 per
/// path the p50 still flipped between modes from run to run (jumpwire 64 B:
/// 7.6 to 48 µs in four runs), with 16 it stayed within 8-15 µs.
const CONNS: usize = 16;
/// Untimed round trips per connection first.
const WARMUP: usize = 25;
/// Messages in flight in the pipelined measurement.
const INFLIGHT: usize = 32;
/// Runs of each pipelined measurement (alternating; the median is reported).
const RUNS: usize = 5;

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
}

fn median(mut v: Vec<f64>) -> f64 {
    quantile(&mut v, 0.5)
}

/// A Python process, killed (by its pid) when dropped.
struct Py(Child);

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Python echo server (compression off): the process and its URL.
fn python_server(python: &str) -> (Py, String) {
    let mut child = Command::new(python)
        .args([PEER, "server"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the Python server");
    let out = child.stdout.take().unwrap();
    let py = Py(child);
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    let port = line.trim().trim_start_matches("PORT ").to_string();
    (py, format!("ws://127.0.0.1:{port}/"))
}

/// The jumpwire echo server (one receive, one send per message).
fn echo_server() -> Server {
    Server::serve("ws://127.0.0.1:0", |s| {
        let mut buf = vec![0u8; 1 << 20];
        while let Ok(Some(n)) = s.receive(&mut buf, None) {
            if s.send(&buf[..n], LONG).is_err() {
                break;
            }
        }
    })
    .unwrap()
}

/// A raw TCP echo server, a thread per connection: its address.
fn raw_echo_server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut c = c;
                c.set_nodelay(true).unwrap();
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 || c.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// The Python client driven one round per "go" line.
struct PyRtt {
    _py: Py,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl PyRtt {
    fn start(python: &str, url: &str, size: usize) -> PyRtt {
        let mut child = Command::new(python)
            .args([
                PEER,
                "bench-rtt",
                url,
                &CONNS.to_string(),
                &size.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the Python round-trip client");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "READY", "python bench-rtt");
        PyRtt {
            _py: Py(child),
            stdin,
            stdout,
        }
    }

    /// One round trip on each Python connection: their times in µs.
    fn round(&mut self) -> Vec<f64> {
        self.stdin.write_all(b"go\n").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.split_whitespace()
            .map(|t| t.parse().unwrap())
            .collect()
    }
}

/// Interleaved echo round trips: p50 in µs of (raw TCP, jumpwire, Python).
fn round_trips(
    python: &str,
    server: &Server,
    py_url: &str,
    size: usize,
    count: usize,
) -> (f64, f64, f64) {
    let raw_addr = raw_echo_server();
    let mut raw: Vec<TcpStream> = (0..CONNS)
        .map(|_| {
            let c = TcpStream::connect(raw_addr).unwrap();
            c.set_nodelay(true).unwrap();
            c
        })
        .collect();
    let jw: Vec<Stream> = (0..CONNS)
        .map(|_| jumpwire::connect(server.address(), LONG).unwrap())
        .collect();
    let mut py = PyRtt::start(python, py_url, size);
    let out = vec![7u8; size];
    let mut back = vec![0u8; size];
    let (mut raw_t, mut jw_t, mut py_t) = (Vec::new(), Vec::new(), Vec::new());
    let rounds = count.div_ceil(CONNS);
    for round in 0..WARMUP + rounds {
        let timed = round >= WARMUP;
        for i in 0..CONNS {
            let t0 = Instant::now();
            raw[i].write_all(&out).unwrap();
            raw[i].read_exact(&mut back).unwrap();
            let t1 = Instant::now();
            jw[i].send(&out, LONG).unwrap();
            let mut got = 0;
            while got < size.max(1) {
                got += jw[i].receive(&mut back, LONG).unwrap().unwrap().max(1);
            }
            let t2 = Instant::now();
            if timed {
                raw_t.push((t1 - t0).as_secs_f64() * 1e6);
                jw_t.push((t2 - t1).as_secs_f64() * 1e6);
            }
        }
        let p = py.round();
        if timed {
            py_t.extend(p);
        }
    }
    for s in &jw {
        s.close();
    }
    (median(raw_t), median(jw_t), median(py_t))
}

/// Pipelined echo with a reader thread and a writer thread: a sliding window
/// of `INFLIGHT` messages. Messages per second.
fn jumpwire_pipelined_two_threads(server: &Server, size: usize, total: usize) -> f64 {
    let s = Arc::new(jumpwire::connect(server.address(), LONG).unwrap());
    let data = vec![5u8; size];
    warm_up(&s, &data);
    // A token per message sent, given back by the reader when its echo
    // arrives.
    let (tokens, returned) = crossbeam_channel::bounded::<()>(INFLIGHT);
    let t0 = Instant::now();
    let reader = {
        let s = s.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; size.max(1)];
            for _ in 0..total {
                assert_eq!(s.receive(&mut buf, LONG).unwrap(), Some(size));
                returned.recv().unwrap();
            }
        })
    };
    for _ in 0..total {
        tokens.send(()).unwrap();
        s.send(&data, LONG).unwrap();
    }
    reader.join().unwrap();
    let rate = total as f64 / t0.elapsed().as_secs_f64();
    s.close();
    rate
}

/// Pipelined echo on one thread: send `INFLIGHT` messages, then receive
/// their echoes, and again. Messages per second.
fn jumpwire_pipelined_one_thread(server: &Server, size: usize, total: usize) -> f64 {
    let s = jumpwire::connect(server.address(), LONG).unwrap();
    let data = vec![5u8; size];
    warm_up(&s, &data);
    let mut buf = vec![0u8; size.max(1)];
    let t0 = Instant::now();
    for _ in 0..total.div_ceil(INFLIGHT) {
        for _ in 0..INFLIGHT {
            s.send(&data, LONG).unwrap();
        }
        for _ in 0..INFLIGHT {
            assert_eq!(s.receive(&mut buf, LONG).unwrap(), Some(size));
        }
    }
    let rate = (total.div_ceil(INFLIGHT) * INFLIGHT) as f64 / t0.elapsed().as_secs_f64();
    s.close();
    rate
}

/// Raw TCP (the floor), pipelined like the one-thread jumpwire client: send
/// `INFLIGHT` messages, then read their echoes. Messages per second.
fn raw_pipelined(addr: std::net::SocketAddr, size: usize, total: usize) -> f64 {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    let data = vec![5u8; size];
    let mut back = vec![0u8; size * INFLIGHT];
    let t0 = Instant::now();
    for _ in 0..total.div_ceil(INFLIGHT) {
        for _ in 0..INFLIGHT {
            c.write_all(&data).unwrap();
        }
        c.read_exact(&mut back).unwrap();
    }
    (total.div_ceil(INFLIGHT) * INFLIGHT) as f64 / t0.elapsed().as_secs_f64()
}

fn warm_up(s: &Stream, data: &[u8]) {
    let mut buf = vec![0u8; data.len().max(1)];
    for _ in 0..200 {
        s.send(data, LONG).unwrap();
        assert_eq!(s.receive(&mut buf, LONG).unwrap(), Some(data.len()));
    }
}

/// Pipelined echo with the Python client against the Python server.
fn python_pipelined(python: &str, url: &str, size: usize, total: usize) -> f64 {
    let out = Command::new(python)
        .args([
            PEER,
            "bench-pipe",
            url,
            &total.to_string(),
            &size.to_string(),
            &INFLIGHT.to_string(),
        ])
        .output()
        .expect("running the Python bench client");
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text.split_whitespace().collect();
    assert!(
        f.len() == 2,
        "python bench-pipe: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    f[1].parse().unwrap()
}

/// (p50 µs for one 1 KiB message to reach all clients, sustained msgs/s).
fn fanout(clients: usize, rounds: usize, sustained: usize) -> (f64, f64) {
    let server = Server::serve_config(
        "ws://127.0.0.1:0",
        ServerConfig {
            queue: 4096,
            ..ServerConfig::default()
        },
        |s| while let Ok(Some(_)) = s.receive(&mut [0u8; 16], None) {},
    )
    .unwrap();
    let streams: Vec<Arc<Stream>> = (0..clients)
        .map(|_| Arc::new(jumpwire::connect(server.address(), LONG).unwrap()))
        .collect();
    while server.connections() < clients {
        std::thread::sleep(Duration::from_millis(5));
    }
    let got = Arc::new(AtomicUsize::new(0));
    let total = rounds + sustained;
    let readers: Vec<_> = streams
        .iter()
        .map(|s| {
            let (s, got) = (s.clone(), got.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                for _ in 0..total {
                    s.receive(&mut buf, LONG).unwrap().unwrap();
                    got.fetch_add(1, Ordering::AcqRel);
                }
            })
        })
        .collect();
    let msg = [1u8; 1024];
    let mut times = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let t0 = Instant::now();
        assert_eq!(server.broadcast(&msg).unwrap(), clients);
        while got.load(Ordering::Acquire) < (i + 1) * clients {
            std::hint::spin_loop();
        }
        times.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    let t0 = Instant::now();
    for i in 0..sustained {
        // Keep at most 1024 messages outstanding per client on average.
        while (rounds + i) * clients > got.load(Ordering::Acquire) + 1024 * clients {
            std::thread::yield_now();
        }
        server.broadcast(&msg).unwrap();
    }
    for r in readers {
        r.join().unwrap();
    }
    let rate = sustained as f64 / t0.elapsed().as_secs_f64();
    assert_eq!(server.dropped(), 0);
    for s in &streams {
        s.close();
    }
    server.close();
    (median(times), rate)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("bench_ws: built; bench/ws.sh runs it");
        return;
    }
    let python = std::env::var("JW_PYTHON").expect("JW_PYTHON: run bench/ws.sh");
    let count: usize = std::env::var("COUNT")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(5000);
    let only = std::env::var("ONLY").unwrap_or_default();
    // `ONLY=pipe-jw`: the pipelined part without Python (for profiling).
    let jw_only = only == "pipe-jw";
    let part = |p: &str| only.is_empty() || only == p || (jw_only && p == "pipe");
    let server = echo_server();
    let (_py_server, py_url) = python_server(&python);
    println!(
        "| measure | jumpwire | Python websockets | raw TCP | jumpwire vs Python | jumpwire vs raw TCP |"
    );
    println!("|---|--:|--:|--:|--:|--:|");
    for (size, label) in [(64, "64 B"), (64 << 10, "64 KiB")] {
        if !part("rtt") {
            break;
        }
        let (raw, jw, py) = round_trips(&python, &server, &py_url, size, count);
        println!(
            "| echo RTT {label}, p50 (µs), {CONNS} connections per path, interleaved | {jw:.1} | {py:.1} | {raw:.1} | {:.2}x faster | {:.2}x |",
            py / jw,
            jw / raw
        );
    }
    for (size, label) in [(64, "64 B"), (64 << 10, "64 KiB")] {
        if !part("pipe") {
            break;
        }
        if std::env::var("SIZE").is_ok_and(|s| s != size.to_string()) {
            continue;
        }
        let total = count * 4;
        let (mut two, mut one, mut py, mut raw) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let raw_addr = raw_echo_server();
        for _ in 0..RUNS {
            raw.push(raw_pipelined(raw_addr, size, total));
            two.push(jumpwire_pipelined_two_threads(&server, size, total));
            one.push(jumpwire_pipelined_one_thread(&server, size, total));
            if !jw_only {
                py.push(python_pipelined(&python, &py_url, size, total));
            }
        }
        if jw_only {
            py.push(f64::NAN);
        }
        let (two, one, py, raw) = (median(two), median(one), median(py), median(raw));
        println!(
            "| pipelined {label}, {INFLIGHT} in flight (msg/s), jumpwire reader + writer threads | {two:.0} | {py:.0} | | {:.2}x | |",
            two / py
        );
        println!(
            "| pipelined {label}, {INFLIGHT} in flight (msg/s), jumpwire one thread (send {INFLIGHT}, receive {INFLIGHT}); raw TCP the same way | {one:.0} | {py:.0} | {raw:.0} | {:.2}x | {:.2}x |",
            one / py,
            one / raw
        );
    }
    server.close();
    if !part("fanout") {
        return;
    }
    let (fan, rate) = fanout(200, 200, 2000);
    println!("| broadcast 1 KiB to 200 clients, p50 until all have it (µs) | {fan:.0} | | | | |");
    println!("| broadcast 1 KiB to 200 clients, sustained (msg/s) | {rate:.0} | | | | |");
}
