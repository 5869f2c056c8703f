//! Session forwarding benchmark (run `bench/session.sh`): a local TCP port
//! forwarded onto the `tcp` driver of an upstream Jumpstarter 0.9.0
//! exporter session (its target a TCP echo server), by jumpwire
//! (`jw_listen` onto a `jumpstarter:` network: [`Listener`] here) and by
//! upstream's `TcpPortforwardAdapter` on the same session
//! (`bench/session_upstream.py`: what `j tcp forward-tcp` runs), side by
//! side in one run, twice:
//!
//! - a local session: upstream's `Session` on a Unix socket
//!   (`tests/python/session_peer.py`; jumpwire's
//!   `jumpstarter:unix:/PATH?driver=tcp`, upstream's client as inside
//!   `jmp shell`);
//! - a lease through a lab: the test controller, jumpwire's router and
//!   upstream's own `Exporter` (`tests/common/lab.rs`; jumpwire's
//!   `jumpstarter:lease?driver=tcp&lease=…&config=…`, upstream's
//!   `ClientConfigV1Alpha1.lease(…).connect()`), both over TLS.
//!
//! Per path: 64-byte round trips on one forwarded connection (`COUNT`,
//! after a warm-up; p50, p99, mean), in rounds that alternate the two
//! paths, and echo throughput (`MIB` MiB each way at once on one
//! connection); then the ratios upstream / jumpwire (above 1: jumpwire is
//! faster). Environment: `COUNT` (default 2000), `MIB` (default 64),
//! `JW_PYTHON`.
//!
//! A `cargo bench` target (`harness = false`): it measures when given
//! `--bench`; without it (`cargo test --benches`, `--all-targets`) it only
//! says what it is and exits 0.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use common::lab::{Lab, RouterKind};
use common::session::{Peer, python};
use jumpwire::Network;
use jumpwire::forward::Listener;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WARMUP: usize = 50;
const ROUNDS: usize = 4;
const BLOCK: usize = 64 * 1024;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// bench/session_upstream.py: upstream's TcpPortforwardAdapter, killed by
/// its pid when dropped.
struct Upstream {
    child: Child,
    addr: String,
}

impl Upstream {
    fn start(args: &[&str]) -> Upstream {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/session_upstream.py");
        let mut child = Command::new(python())
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting Python");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("session_upstream.py said {line:?}"))
            .to_owned();
        Upstream { child, addr }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(addr: &str) -> TcpStream {
    let c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    c
}

/// `n` 64-byte round trips on `c`, each one's duration.
fn round_trips(c: &mut TcpStream, n: usize) -> Vec<Duration> {
    let msg = [0x5au8; 64];
    let mut back = [0u8; 64];
    (0..n)
        .map(|_| {
            let t = Instant::now();
            c.write_all(&msg).unwrap();
            c.read_exact(&mut back).unwrap();
            t.elapsed()
        })
        .collect()
}

/// `mib` MiB each way at once through the echo behind `addr`: MiB/s.
fn echo_throughput(addr: &str, mib: usize) -> f64 {
    let c = connect(addr);
    let total = mib << 20;
    let t = Instant::now();
    let mut w = c.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let block = vec![0xa5u8; BLOCK];
        let mut left = total;
        while left > 0 {
            let n = left.min(BLOCK);
            w.write_all(&block[..n]).unwrap();
            left -= n;
        }
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut r = c;
    let mut buf = vec![0u8; BLOCK];
    let mut got = 0;
    while got < total {
        match r.read(&mut buf).unwrap() {
            0 => break,
            n => got += n,
        }
    }
    writer.join().unwrap();
    assert_eq!(got, total, "the echo ended early");
    mib as f64 / t.elapsed().as_secs_f64()
}

struct Latency {
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

fn latency(mut d: Vec<Duration>) -> Latency {
    d.sort();
    let mean = d.iter().sum::<Duration>() / d.len() as u32;
    Latency {
        p50: d[d.len() / 2],
        p99: d[d.len() * 99 / 100],
        mean,
    }
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// Measures both forwarded ports and prints the figures and ratios.
fn compare(what: &str, jw: &str, up: &str, count: usize, mib: usize) {
    println!("\n== {what}");
    let paths = [("jumpwire", jw), ("upstream", up)];
    let mut conns: Vec<TcpStream> = paths.iter().map(|(_, a)| connect(a)).collect();
    for c in &mut conns {
        round_trips(c, WARMUP);
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); paths.len()];
    let per_round = count.div_ceil(ROUNDS);
    for _ in 0..ROUNDS {
        for (i, c) in conns.iter_mut().enumerate() {
            samples[i].extend(round_trips(c, per_round));
        }
    }
    drop(conns);
    let lat: Vec<Latency> = samples.into_iter().map(latency).collect();
    let tput: Vec<f64> = paths
        .iter()
        .map(|(_, a)| {
            echo_throughput(a, mib.min(4));
            echo_throughput(a, mib)
        })
        .collect();
    for (i, (name, _)) in paths.iter().enumerate() {
        println!(
            "{name:>9}: 64 B round trip p50 {} p99 {} mean {}; echo {mib} MiB each way {:.1} MiB/s",
            us(lat[i].p50),
            us(lat[i].p99),
            us(lat[i].mean),
            tput[i]
        );
    }
    let r = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64();
    println!(
        "   ratios upstream/jumpwire: round trip p50 {:.2}x, p99 {:.2}x, mean {:.2}x; \
         throughput jumpwire/upstream {:.2}x",
        r(lat[0].p50, lat[1].p50),
        r(lat[0].p99, lat[1].p99),
        r(lat[0].mean, lat[1].mean),
        tput[0] / tput[1]
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("bench_session: built; bench/session.sh runs it");
        return;
    }
    let count = env_usize("COUNT", 2000);
    let mib = env_usize("MIB", 64);
    println!(
        "forwarding onto an upstream exporter session's tcp driver (a TCP echo): \
         {count} round trips, {mib} MiB echo"
    );

    let peer = Peer::start(&[]);
    let jw = Listener::bind("tcp://127.0.0.1:0", &peer.net("tcp")).unwrap();
    let jw_addr = jw.address().strip_prefix("tcp://").unwrap().to_owned();
    let up = Upstream::start(&["session", &peer.socket]);
    compare(
        "local session (Unix socket): jumpstarter:unix: vs env() + TcpPortforwardAdapter",
        &jw_addr,
        &up.addr,
        count,
        mib,
    );
    drop(up);
    jw.close();
    drop(peer);

    let lab = Lab::start(RouterKind::Jumpwire);
    let net = Network::new(&lab.url("tcp", "lease1", "alice")).unwrap();
    let jw = Listener::bind("tcp://127.0.0.1:0", &net).unwrap();
    let jw_addr = jw.address().strip_prefix("tcp://").unwrap().to_owned();
    let up = Upstream::start(&[
        "lease",
        &lab.controller,
        lab.cert.to_str().unwrap(),
        "lease1",
        "alice",
        "client-token",
    ]);
    compare(
        "lease through controller, jumpwire router and upstream Exporter (TLS): \
         jumpstarter:lease vs lease().connect() + TcpPortforwardAdapter",
        &jw_addr,
        &up.addr,
        count,
        mib,
    );
    drop(up);
    jw.close();
}
