//! Websocket benchmark (run `bench/ws.sh`, which builds this in release mode
//! and finds the Python with `websockets`): side by side in one run on
//! 127.0.0.1, compression off everywhere:
//! - echo round trips, one in flight (p50), and pipelined messages per second
//!   with 32 in flight, for 64-byte and 64 KiB binary messages: jumpwire client
//!   + jumpwire server, and Python `websockets` client + server;
//! - the raw TCP echo p50 (std sockets, TCP_NODELAY) as the floor;
//! - broadcast fan-out to 200 jumpwire clients: time for one 1 KiB message to
//!   reach all of them (p50), and messages per second sustained to all 200.
//!
//! Needs `JW_PYTHON`. `COUNT` sets the round trips per size (default 5000).

use jumpwire::Stream;
use jumpwire::websocket::{Server, ServerConfig};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::time::{Duration, Instant};

const LONG: Option<Duration> = Some(Duration::from_secs(30));
const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/ws_peer.py");

fn p50(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e6
}

/// 64-byte echo round trips, p50 in µs, on a raw TCP connection (std
/// sockets, TCP_NODELAY) and on a jumpwire websocket, measured in alternating
/// blocks so that both see the same machine (a shared 2-CPU machine swings
/// between fast and slow wake-ups).
fn raw_vs_ws_p50(server: &Server, count: usize) -> (f64, f64) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        c.set_nodelay(true).unwrap();
        let mut buf = [0u8; 64];
        while let Ok(n) = c.read(&mut buf) {
            if n == 0 || c.write_all(&buf[..n]).is_err() {
                return;
            }
        }
    });
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    let ws = jumpwire::connect(server.address(), LONG).unwrap();
    let mut buf = [0u8; 64];
    let (mut raw, mut jw) = (Vec::new(), Vec::new());
    let block = 250;
    for b in 0..(count / block).max(1) + 1 {
        for _ in 0..block {
            let t0 = Instant::now();
            c.write_all(&[7u8; 64]).unwrap();
            c.read_exact(&mut buf).unwrap();
            if b > 0 {
                raw.push(t0.elapsed());
            }
        }
        for _ in 0..block {
            let t0 = Instant::now();
            ws.send(&[7u8; 64], LONG).unwrap();
            assert_eq!(ws.receive(&mut buf, LONG).unwrap(), Some(64));
            if b > 0 {
                jw.push(t0.elapsed());
            }
        }
    }
    drop(c);
    t.join().unwrap();
    ws.close();
    (p50(raw), p50(jw))
}

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

/// (p50 µs, pipelined msgs/s) for jumpwire client + server.
fn jumpwire_echo(server: &Server, size: usize, count: usize) -> (f64, f64) {
    let s = Arc::new(jumpwire::connect(server.address(), LONG).unwrap());
    let data = vec![5u8; size];
    let mut buf = vec![0u8; size.max(1)];
    let mut rtts = Vec::with_capacity(count);
    for i in 0..count + 200 {
        let t0 = Instant::now();
        s.send(&data, LONG).unwrap();
        let n = s.receive(&mut buf, LONG).unwrap().unwrap();
        assert_eq!(n, size);
        if i >= 200 {
            rtts.push(t0.elapsed());
        }
    }
    let total = count * 4;
    // A window of 32 messages in flight: a token per message sent, given back
    // by the reader when its echo arrives.
    let (tokens, returned) = crossbeam_channel::bounded::<()>(32);
    let t0 = Instant::now();
    let reader = {
        let s = s.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; size.max(1)];
            for _ in 0..total {
                s.receive(&mut buf, LONG).unwrap().unwrap();
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
    (p50(rtts), rate)
}

struct Py(Child);

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (p50 µs, pipelined msgs/s) for the Python client + server.
fn python_echo(python: &str, size: usize, count: usize) -> (f64, f64) {
    let mut child = Command::new(python)
        .args([PEER, "server"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the Python server");
    let out = child.stdout.take().unwrap();
    let _server = Py(child);
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    let port = line.trim().trim_start_matches("PORT ").to_string();
    let out = Command::new(python)
        .args([
            PEER,
            "bench",
            &format!("ws://127.0.0.1:{port}/"),
            &count.to_string(),
            &size.to_string(),
            "32",
        ])
        .output()
        .expect("running the Python bench client");
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text.split_whitespace().collect();
    assert!(
        f.len() == 4,
        "python bench: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (f[1].parse().unwrap(), f[3].parse().unwrap())
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
        times.push(t0.elapsed());
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
    server.close();
    (p50(times), rate)
}

fn main() {
    let python = std::env::var("JW_PYTHON").expect("JW_PYTHON: run bench/ws.sh");
    let count: usize = std::env::var("COUNT")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(5000);
    let server = echo_server();
    println!("| measure | jumpwire | Python websockets | jumpwire / Python |");
    println!("|---|---|---|---|");
    for (size, label) in [(64, "64 B"), (64 << 10, "64 KiB")] {
        let (jp, jr) = jumpwire_echo(&server, size, count);
        let (pp, pr) = python_echo(&python, size, count);
        println!(
            "| echo RTT {label}, p50 (µs) | {jp:.1} | {pp:.1} | {:.2}x faster |",
            pp / jp
        );
        println!(
            "| pipelined {label}, 32 in flight (msg/s) | {jr:.0} | {pr:.0} | {:.1}x |",
            jr / pr
        );
    }
    let (raw, jw) = raw_vs_ws_p50(&server, count);
    server.close();
    println!(
        "| 64 B round trip, alternating blocks: raw TCP p50 {raw:.1} µs, jumpwire websocket p50 (µs) | {jw:.1} | | {:.2}x raw TCP |",
        jw / raw
    );
    let (fan, rate) = fanout(200, 200, 2000);
    println!("| broadcast 1 KiB to 200 clients, p50 until all have it (µs) | {fan:.0} | | |");
    println!("| broadcast 1 KiB to 200 clients, sustained (msg/s) | {rate:.0} | | |");
}
