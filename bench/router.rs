//! Router benchmark (run `bench/router.sh`): the whole routed path on
//! 127.0.0.1, client -> router -> exporter -> TCP target, for jumpwire and,
//! in the same run, for two upstream Jumpstarter paths started by
//! `bench/router_upstream.py` (when `JW_PYTHON` names a python with the
//! packages of `scripts/interop-requirements.txt`):
//!
//! - jumpwire: a [`router::connect`] stream in this process, the jumpwire
//!   router in a child process (this program with the argument
//!   `router-server`, so that its threads and memory can be read), and a
//!   [`router::export`] in this process.
//! - (a) upstream Python parts: a Python router built like upstream's
//!   servicer, an exporter process using upstream's `connect_router_stream`
//!   pattern, and a client process that carries each local TCP connection
//!   over an upstream `RouterStream`. Measured through that local port.
//! - (b) upstream's in-process path: `serve(TcpNetwork(...))` and
//!   `TcpPortforwardAdapter`. Measured through the adapter's local port.
//!
//! - jumpwire over grpcs: the same with the router on `grpcs://` (its
//!   self-signed certificate trusted with `?ca=`), and its ratios to `grpc://`.
//! - floor: the same hops with no gRPC at all, two relays of plain blocking
//!   threads (one per direction) between the client and the TCP target.
//!
//! Then the routed path as a user measures it (issue 16): a TCP ping-pong
//! client in this process through a relay process, (j) jumpwire: a
//! `forward::Listener` (`jw_listen`) onto router streams of an embedded
//! router and one exporter thread to the TCP echo, all in a child process
//! (this program with the argument `routed-forward`); (b) upstream's
//! in-process path above. Back to back on one connection at a time, in
//! rounds that alternate the two: p50/p90/p99 and the CPU the whole relay
//! process spent per round trip (the sum of its threads' run times from
//! `/proc/PID/task/*/schedstat`), the ratios, and whether issue 16's
//! targets (p50 <= 0.25x upstream's, CPU <= 60 us per round trip) are met.
//! Beside them, (f) the floor: the same three relays with no HTTP/2, three
//! chained `jw_listen` TCP forwards in a child process (`floor-forward`),
//! and what the routed path costs above it.
//! `ROUTED_COUNT` round trips per path (default 20000); `ROUTED_ONLY=1`
//! measures only this, `PAIRS_ONLY=1` only the concurrent pairs below
//! (through a fresh router).
//!
//! Prints, per path: one-way throughput (`MIB` MiB to a TCP sink that
//! acknowledges the last byte), echo throughput (`MIB` MiB each way at once
//! through a TCP echo), and 64-byte round-trip latency percentiles, with
//! the ratios against (a) and (b), measured two ways: back to back on one
//! connection of a path at a time (a ping-pong: the path's threads and
//! caches stay warm), in rounds that alternate the paths; and interleaved
//! (`COUNT` round trips over 8 connections per path, all paths one round
//! trip at a time, as `bench/forward.rs`), where each round trip finds the
//! caches cold after the other paths' (the Python processes' above all).
//! Then `PAIRS` (500) concurrent paired streams, each pair exchanging 64 KiB
//! both ways, with the router's threads and resident memory while they are
//! open: through the router of the runs above, then through a fresh one.
//!
//! Environment: `MIB` (jumpwire, default 1024), `UPSTREAM_MIB` (a and b,
//! default 256), `COUNT` (default 4000), `PAIRS` (default 500), `JW_PYTHON`.
//!
//! A `cargo bench` target (`harness = false`): it measures when given
//! `--bench` (as `cargo bench --bench router` and the script give it);
//! without it (how `cargo test --benches` and `--all-targets` run a bench
//! target) it only says what it is and exits 0.

use jumpwire::Stream;
use jumpwire::network::Network;
use jumpwire::router::{self, Router, token};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "bench-key";
const WAIT: Option<Duration> = Some(Duration::from_secs(60));
/// Connections per path for the latency figures (see `bench/forward.rs`).
const CONNS: usize = 8;
/// Untimed round trips per connection before the latency samples.
const WARMUP: usize = 25;
const BLOCK: usize = 256 * 1024;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A TCP server on 127.0.0.1 running `serve` on each connection in a thread.
fn server(serve: fn(TcpStream)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let _ = conn.set_nodelay(true);
            std::thread::spawn(move || serve(conn));
        }
    });
    addr.to_string()
}

fn echo(mut conn: TcpStream) {
    let mut buf = vec![0u8; 256 * 1024];
    while let Ok(n) = conn.read(&mut buf) {
        if n == 0 || conn.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = conn.shutdown(Shutdown::Write);
}

/// A relay on 127.0.0.1 that forwards each connection to `to`, one thread
/// per direction: the floor for a hop made of plain blocking threads.
fn relay(to: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let Ok(out) = TcpStream::connect(&to) else {
                continue;
            };
            for s in [&conn, &out] {
                let _ = s.set_nodelay(true);
            }
            let (conn2, out2) = (conn.try_clone().unwrap(), out.try_clone().unwrap());
            for (mut from, mut to) in [(conn, out), (out2, conn2)] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(Shutdown::Write);
                });
            }
        }
    });
    addr.to_string()
}

/// Reads an 8-byte length, that many bytes, then answers one byte.
fn sink(mut conn: TcpStream) {
    let mut len = [0u8; 8];
    if conn.read_exact(&mut len).is_err() {
        return;
    }
    let mut left = u64::from_le_bytes(len);
    let mut buf = vec![0u8; 256 * 1024];
    while left > 0 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => left -= n as u64,
        }
    }
    let _ = conn.write_all(b"k");
}

fn proc_status(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l[field.len()..].trim().to_string())
        .unwrap_or_default()
}

/// One connection of a path under test: a jumpwire router stream, or a TCP
/// connection to an upstream path's local port.
enum Conn {
    Jw(
        Stream,
        Option<std::thread::JoinHandle<jumpwire::Result<()>>>,
    ),
    Tcp(TcpStream),
}

impl Conn {
    fn send(&self, data: &[u8]) -> Res<()> {
        match self {
            Conn::Jw(s, _) => s.send(data, WAIT)?,
            Conn::Tcp(s) => (&*s).write_all(data)?,
        }
        Ok(())
    }

    fn receive(&self, buf: &mut [u8]) -> Res<usize> {
        Ok(match self {
            Conn::Jw(s, _) => s.receive(buf, WAIT)?.ok_or("unexpected end of stream")?,
            Conn::Tcp(s) => match (&*s).read(buf)? {
                0 => return Err("unexpected end of stream".into()),
                n => n,
            },
        })
    }

    fn receive_exact(&self, buf: &mut [u8]) -> Res<()> {
        let mut got = 0;
        while got < buf.len() {
            got += self.receive(&mut buf[got..])?;
        }
        Ok(())
    }

    fn end(self) {
        match self {
            Conn::Jw(s, exporter) => {
                let _ = s.send_eof();
                let mut buf = [0u8; 4096];
                while let Ok(Some(_)) = s.receive(&mut buf, WAIT) {}
                s.close();
                if let Some(e) = exporter {
                    let _ = e.join();
                }
            }
            Conn::Tcp(s) => {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// A path under test and how to open a connection of it to a target.
enum Path {
    Jw { router: String },
    Tcp { echo: String, sink: String },
}

impl Path {
    fn open(&self, target: &str, sink: bool) -> Res<Conn> {
        match self {
            Path::Jw { router } => {
                static NEXT: std::sync::atomic::AtomicUsize =
                    std::sync::atomic::AtomicUsize::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let t = token::mint(KEY, &format!("bench-{n}"), Duration::from_secs(3600))?;
                let exporter = {
                    let (url, t) = (router.clone(), t.clone());
                    let target = Network::new(&format!("tcp://{target}"))?;
                    std::thread::spawn(move || router::export(&url, &t, &target, WAIT))
                };
                Ok(Conn::Jw(router::connect(router, &t, WAIT)?, Some(exporter)))
            }
            Path::Tcp { echo, sink: s } => {
                let c = TcpStream::connect(if sink { s } else { echo })?;
                c.set_nodelay(true)?;
                Ok(Conn::Tcp(c))
            }
        }
    }
}

/// Gbit/s of `mib` MiB sent to the sink.
fn one_way(path: &Path, sink_addr: &str, mib: usize) -> Res<f64> {
    let c = path.open(sink_addr, true)?;
    let bytes = (mib as u64) << 20;
    let block = vec![0x5au8; BLOCK];
    let t0 = Instant::now();
    c.send(&bytes.to_le_bytes())?;
    for _ in 0..bytes / BLOCK as u64 {
        c.send(&block)?;
    }
    let mut ack = [0u8; 1];
    c.receive_exact(&mut ack)?;
    let secs = t0.elapsed().as_secs_f64();
    c.end();
    Ok(bytes as f64 * 8.0 / secs / 1e9)
}

/// Gbit/s per direction of `mib` MiB through the echo, both ways at once.
fn echo_both(path: &Path, echo_addr: &str, mib: usize) -> Res<f64> {
    let c = path.open(echo_addr, false)?;
    let bytes = mib << 20;
    let block = vec![0x5au8; BLOCK];
    c.send(b"w")?;
    c.receive_exact(&mut [0u8; 1])?;
    let t0 = Instant::now();
    let r: Res<()> = std::thread::scope(|sc| {
        let writer = sc.spawn(|| -> Res<()> {
            for _ in 0..bytes / BLOCK {
                c.send(&block)?;
            }
            Ok(())
        });
        let mut buf = vec![0u8; BLOCK];
        let mut got = 0;
        while got < bytes {
            got += c.receive(&mut buf)?;
        }
        writer.join().map_err(|_| "writer panicked")?
    });
    r?;
    let secs = t0.elapsed().as_secs_f64();
    c.end();
    Ok(bytes as f64 * 8.0 / secs / 1e9)
}

/// 64-byte round trips: `CONNS` connections per path, every connection of
/// every path in turn, one round trip each. Returns the samples (µs) per path.
fn latency(paths: &[&Path], echo_addr: &str, count: usize) -> Res<Vec<Vec<f64>>> {
    let conns = (0..CONNS)
        .flat_map(|_| paths.iter().map(|p| p.open(echo_addr, false)))
        .collect::<Res<Vec<_>>>()?;
    let msg = [0x42u8; 64];
    let mut back = [0u8; 64];
    for c in &conns {
        for _ in 0..WARMUP {
            c.send(&msg)?;
            c.receive_exact(&mut back)?;
        }
    }
    let n = paths.len();
    let mut samples = vec![Vec::with_capacity(count); n];
    for _ in 0..count.div_ceil(CONNS) {
        for (i, c) in conns.iter().enumerate() {
            let t0 = Instant::now();
            c.send(&msg)?;
            c.receive_exact(&mut back)?;
            samples[i % n].push(t0.elapsed().as_secs_f64() * 1e6);
        }
    }
    for c in conns {
        c.end();
    }
    for s in &mut samples {
        s.sort_by(f64::total_cmp);
    }
    Ok(samples)
}

/// 64-byte round trips back to back on one connection of a path at a time
/// (the threads of the path stay warm), in 4 rounds that alternate the
/// paths, `count` per path in all. Returns the samples (µs) per path.
fn back_to_back(paths: &[&Path], echo_addr: &str, count: usize) -> Res<Vec<Vec<f64>>> {
    let msg = [0x42u8; 64];
    let mut back = [0u8; 64];
    let mut samples = vec![Vec::with_capacity(count); paths.len()];
    for _ in 0..4 {
        for (i, p) in paths.iter().enumerate() {
            let c = p.open(echo_addr, false)?;
            for k in 0..WARMUP + count.div_ceil(4) {
                let t0 = Instant::now();
                c.send(&msg)?;
                c.receive_exact(&mut back)?;
                if k >= WARMUP {
                    samples[i].push(t0.elapsed().as_secs_f64() * 1e6);
                }
            }
            c.end();
        }
    }
    for s in &mut samples {
        s.sort_by(f64::total_cmp);
    }
    Ok(samples)
}

/// A table of 64-byte round-trip percentiles per path.
fn print_latency(how: &str, names: &[&str], samples: &[Vec<f64>]) {
    println!("\n64-byte round trips, us ({how})");
    println!("{:<28} {:>8} {:>8} {:>8}", "path", "p50", "p90", "p99");
    for (name, s) in names.iter().zip(samples) {
        println!(
            "{name:<28} {:>8.1} {:>8.1} {:>8.1}",
            pct(s, 0.5),
            pct(s, 0.9),
            pct(s, 0.99)
        );
    }
}

fn pct(s: &[f64], q: f64) -> f64 {
    s[((s.len() as f64 * q) as usize).min(s.len() - 1)]
}

/// The upstream paths, from `bench/router_upstream.py`.
struct Upstream {
    child: Child,
    a: Path,
    b: Path,
}

impl Upstream {
    /// The process of (b) and its port to the echo.
    fn b_echo(&self) -> Option<(u32, &str)> {
        match &self.b {
            Path::Tcp { echo, .. } => Some((self.child.id(), echo.as_str())),
            Path::Jw { .. } => None,
        }
    }
}

fn upstream(echo_addr: &str, sink_addr: &str) -> Res<Option<Upstream>> {
    let Ok(python) = std::env::var("JW_PYTHON") else {
        println!("JW_PYTHON is not set: the upstream paths (a) and (b) are left out");
        return Ok(None);
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/router_upstream.py");
    let mut child = Command::new(python)
        .args([
            script, "--echo", echo_addr, "--sink", sink_addr, "--key", KEY,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let mut get = |want: &str| -> Res<String> {
        let line = lines.next().ok_or("router_upstream.py ended")??;
        let (k, v) = line.split_once(' ').ok_or("bad line")?;
        if k != want {
            return Err(format!("router_upstream.py said {line:?}, expected {want}").into());
        }
        Ok(v.to_string())
    };
    let (a_echo, a_sink) = (get("A_ECHO")?, get("A_SINK")?);
    let (b_echo, b_sink) = (get("B_ECHO")?, get("B_SINK")?);
    Ok(Some(Upstream {
        child,
        a: Path::Tcp {
            echo: a_echo,
            sink: a_sink,
        },
        b: Path::Tcp {
            echo: b_echo,
            sink: b_sink,
        },
    }))
}

/// CPU time (ns) the threads of process `pid` have run so far.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The routed path of `jw_listen` in this process (the child of
/// `routed_path`): an embedded router, one exporter thread to the TCP
/// `target` (one pairing at a time), and a TCP forward onto router streams;
/// prints `ADDR HOST:PORT` of the forward and runs until stdin closes.
fn routed_forward(target: &str) -> Res<()> {
    let r = Router::serve(&format!("grpc://127.0.0.1:0?key={KEY}"))?;
    let url = r.address().to_string();
    let t = token::mint(KEY, "routed", Duration::from_secs(24 * 3600))?;
    let net = Network::new(&format!("tcp://{target}"))?;
    {
        let (url, t) = (url.clone(), t.clone());
        std::thread::spawn(move || {
            loop {
                if let Err(e) = router::export(&url, &t, &net, None) {
                    eprintln!("routed-forward: export: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        });
    }
    let routed = Network::router(&url, &t)?;
    let l = jumpwire::forward::Listener::bind("tcp://127.0.0.1:0", &routed)?;
    serve_until_stdin_closes(&l);
    l.close();
    r.close();
    Ok(())
}

/// Prints `ADDR HOST:PORT` of the relay process's listener `l` and waits
/// until stdin closes.
fn serve_until_stdin_closes(l: &jumpwire::forward::Listener) {
    let addr = l
        .address()
        .trim_start_matches("tcp://")
        .trim_end_matches('/');
    println!("ADDR {addr}");
    let _ = std::io::stdin().read(&mut [0u8; 1]);
}

/// The floor of the routed path (the child of `routed_path` with the
/// argument `floor-forward`): the same three relays in one process with no
/// HTTP/2 at all, three chained jumpwire TCP forwards (`jw_listen` onto
/// `jw_listen` onto `jw_listen` onto the TCP `target`), each relaying on one
/// thread per connection as the routed path's three ends do; prints `ADDR
/// HOST:PORT` of the first and runs until stdin closes.
fn floor_forward(target: &str) -> Res<()> {
    let mut next = Network::new(&format!("tcp://{target}"))?;
    let mut listeners = Vec::new();
    for _ in 0..3 {
        let l = jumpwire::forward::Listener::bind("tcp://127.0.0.1:0", &next)?;
        next = Network::new(l.address())?;
        listeners.push(l);
    }
    serve_until_stdin_closes(listeners.last().ok_or("no listener")?);
    for l in &listeners {
        l.close();
    }
    Ok(())
}

/// Starts this program as a relay process (`mode` `routed-forward` or
/// `floor-forward`) onto `echo_addr`; the child and its address.
fn relay_process(mode: &str, echo_addr: &str) -> Res<(Child, String)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args([mode, echo_addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().ok_or("no stdout")?).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("ADDR ")
        .ok_or_else(|| format!("{mode}: no address"))?
        .to_string();
    Ok((child, addr))
}

/// 64-byte round trips through the relay process `pid` listening on
/// `addr`, back to back on one new connection: the samples (us) and the
/// relay's CPU (us) per round trip, measured after `WARMUP` * 20 untimed ones.
fn ping_pong(addr: &str, pid: u32, count: usize) -> Res<(Vec<f64>, f64)> {
    let mut c = TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
    c.set_read_timeout(WAIT)?;
    let msg = [0x42u8; 64];
    let mut back = [0u8; 64];
    for _ in 0..WARMUP * 20 {
        c.write_all(&msg)?;
        c.read_exact(&mut back)?;
    }
    let mut samples = Vec::with_capacity(count);
    let cpu0 = cpu_ns(pid);
    for _ in 0..count {
        let t0 = Instant::now();
        c.write_all(&msg)?;
        c.read_exact(&mut back)?;
        samples.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    let cpu = (cpu_ns(pid) - cpu0) as f64 / 1e3 / count as f64;
    c.shutdown(Shutdown::Write)?;
    let _ = c.read(&mut back);
    Ok((samples, cpu))
}

/// The routed path as a user measures it (see the module docs): jumpwire's
/// `jw_listen` -> router -> exporter -> TCP in a child process, against
/// upstream's (b) in the process `b_pid` at `b_addr`.
fn routed_path(echo_addr: &str, b: Option<(u32, &str)>, count: usize) -> Res<()> {
    let (mut child, addr) = relay_process("routed-forward", echo_addr)?;
    let (mut floor, floor_addr) = relay_process("floor-forward", echo_addr)?;
    let mut paths = vec![
        ("(j) jumpwire jw_listen routed", child.id(), addr),
        ("(f) floor: 3 TCP forwards", floor.id(), floor_addr),
    ];
    if let Some((pid, a)) = b {
        paths.push(("(b) upstream in-process", pid, a.to_string()));
    }
    let rounds: u32 = 4;
    let mut samples = vec![Vec::new(); paths.len()];
    let mut cpu = vec![0.0; paths.len()];
    for _ in 0..rounds {
        for (i, (_, pid, a)) in paths.iter().enumerate() {
            let (s, c) = ping_pong(a, *pid, count.div_ceil(rounds as usize))?;
            samples[i].extend(s);
            cpu[i] += c / f64::from(rounds);
        }
    }
    for c in [&mut child, &mut floor] {
        drop(c.stdin.take());
        let _ = c.wait();
    }
    println!(
        "\nrouted path, TCP client -> relay process -> TCP echo, 64-byte round trips \
         ({count} per path, back to back, {rounds} rounds alternating)"
    );
    println!(
        "{:<32} {:>8} {:>8} {:>8} {:>14}",
        "path", "p50 us", "p90 us", "p99 us", "relay CPU us/rt"
    );
    for (i, (name, _, _)) in paths.iter().enumerate() {
        let s = &mut samples[i];
        s.sort_by(f64::total_cmp);
        println!(
            "{name:<32} {:>8.1} {:>8.1} {:>8.1} {:>14.1}",
            pct(s, 0.5),
            pct(s, 0.9),
            pct(s, 0.99),
            cpu[i]
        );
    }
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "routed (j) / floor (f): p50 {:.2}x, CPU per round trip {:.2}x ({:.1} us of the routed \
         path's CPU per round trip is HTTP/2 and gRPC: the rest is what three relays cost here)",
        pct(&samples[0], 0.5) / pct(&samples[1], 0.5),
        cpu[0] / cpu[1],
        cpu[0] - cpu[1]
    );
    if paths.len() > 2 {
        let ratio = pct(&samples[0], 0.5) / pct(&samples[2], 0.5);
        println!(
            "routed (j) / upstream (b): p50 {ratio:.3}x (target <= 0.25x: {}), CPU per round trip {:.3}x",
            met(ratio <= 0.25),
            cpu[0] / cpu[2]
        );
        println!(
            "floor (f) / upstream (b): p50 {:.3}x: the least ratio three relays reach here",
            pct(&samples[1], 0.5) / pct(&samples[2], 0.5)
        );
    }
    println!(
        "routed (j) relay CPU per round trip {:.1} us (target <= 60 us: {})",
        cpu[0],
        met(cpu[0] <= 60.0)
    );
    Ok(())
}

/// The jumpwire router in a child process, on `scheme` (`grpc` or `grpcs`);
/// returns the child and the URL to dial (for grpcs, trusting its
/// self-signed certificate with `?ca=`).
fn spawn_router(scheme: &str) -> (Child, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["router-server", scheme])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().strip_prefix("ADDR ").unwrap().to_string();
    (child, url)
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("router-server") {
        let r = Router::serve(&format!("{}://127.0.0.1:0?key={KEY}", args[2]))?;
        let ca = std::env::temp_dir().join(format!("jw-bench-router-{}.pem", std::process::id()));
        match r.certificate() {
            Some(pem) => {
                std::fs::write(&ca, pem)?;
                println!("ADDR {}?ca={}", r.address(), ca.display());
            }
            None => println!("ADDR {}", r.address()),
        }
        let _ = std::io::stdin().read(&mut [0u8; 1]);
        let _ = std::fs::remove_file(&ca);
        return Ok(());
    }
    if args.get(1).map(String::as_str) == Some("routed-forward") {
        return routed_forward(&args[2]);
    }
    if args.get(1).map(String::as_str) == Some("floor-forward") {
        return floor_forward(&args[2]);
    }
    if !args.iter().any(|a| a == "--bench") {
        eprintln!("bench_router: built; bench/router.sh runs it");
        return Ok(());
    }
    let (mut child, url) = spawn_router("grpc");
    let (mut tls_child, tls_url) = spawn_router("grpcs");
    let pid = child.id();
    println!(
        "jumpwire router {url} (pid {pid}): {} threads, {} resident at start",
        proc_status(pid, "Threads:"),
        proc_status(pid, "VmRSS:")
    );
    if std::env::var_os("PAIRS_ONLY").is_some() {
        concurrent_pairs(&url, pid, "a fresh router")?;
        for c in [&mut child, &mut tls_child] {
            drop(c.stdin.take());
            let _ = c.wait();
        }
        return Ok(());
    }
    let echo_addr = server(echo);
    let sink_addr = server(sink);
    let up = upstream(&echo_addr, &sink_addr)?;
    if std::env::var_os("ROUTED_ONLY").is_some() {
        let b = up.as_ref().and_then(Upstream::b_echo);
        routed_path(&echo_addr, b, env("ROUTED_COUNT", 20000))?;
        if let Some(mut u) = up {
            drop(u.child.stdin.take());
            let _ = u.child.wait();
        }
        for c in [&mut child, &mut tls_child] {
            drop(c.stdin.take());
            let _ = c.wait();
        }
        return Ok(());
    }
    let jw = Path::Jw {
        router: url.clone(),
    };
    let jw_tls = Path::Jw { router: tls_url };
    let floor = Path::Tcp {
        echo: relay(relay(echo_addr.clone())),
        sink: relay(relay(sink_addr.clone())),
    };
    let mut paths: Vec<(&str, &Path)> = vec![("jumpwire", &jw), ("jumpwire over grpcs", &jw_tls)];
    if let Some(u) = &up {
        paths.push(("(a) upstream Python parts", &u.a));
        paths.push(("(b) upstream in-process", &u.b));
    }
    paths.push(("floor: 2 raw TCP relays", &floor));
    let (mib, up_mib) = (env("MIB", 1024), env("UPSTREAM_MIB", 256));

    println!("\nthroughput, Gbit/s per direction (client -> router -> exporter -> TCP target)");
    println!("{:<28} {:>10} {:>14}", "path", "one way", "echo (each way)");
    let mut tput = Vec::new();
    for (i, (name, p)) in paths.iter().enumerate() {
        let m = if i < 2 { mib } else { up_mib };
        let one = one_way(p, &sink_addr, m)?;
        let both = echo_both(p, &echo_addr, m)?;
        println!("{name:<28} {one:>10.2} {both:>14.2}   ({m} MiB)");
        tput.push((one, both));
    }

    let count = env("COUNT", 4000);
    let ps: Vec<&Path> = paths.iter().map(|(_, p)| *p).collect();
    let lat = latency(&ps, &echo_addr, count)?;
    let names: Vec<&str> = paths.iter().map(|(n, _)| *n).collect();
    print_latency(
        &format!("{count} per path over {CONNS} connections each, interleaved"),
        &names,
        &lat,
    );
    let warm = back_to_back(&ps, &echo_addr, count)?;
    print_latency(
        &format!("{count} per path, back to back on one connection at a time"),
        &names,
        &warm,
    );
    println!(
        "\nTLS: grpcs / grpc: one way {:.2}x, echo {:.2}x, p50 {:.2}x",
        tput[1].0 / tput[0].0,
        tput[1].1 / tput[0].1,
        pct(&lat[1], 0.5) / pct(&lat[0], 0.5)
    );
    if up.is_some() {
        println!("\nratios, jumpwire / upstream (throughput: higher is better; latency: lower)");
        for (k, label) in [(2, "(a)"), (3, "(b)")] {
            println!(
                "vs {label}: one way {:.2}x, echo {:.2}x, p50 {:.3}x, p90 {:.3}x, p99 {:.3}x",
                tput[0].0 / tput[k].0,
                tput[0].1 / tput[k].1,
                pct(&lat[0], 0.5) / pct(&lat[k], 0.5),
                pct(&lat[0], 0.9) / pct(&lat[k], 0.9),
                pct(&lat[0], 0.99) / pct(&lat[k], 0.99),
            );
            println!(
                "   back to back: p50 {:.3}x, p90 {:.3}x, p99 {:.3}x",
                pct(&warm[0], 0.5) / pct(&warm[k], 0.5),
                pct(&warm[0], 0.9) / pct(&warm[k], 0.9),
                pct(&warm[0], 0.99) / pct(&warm[k], 0.99),
            );
        }
        let met = |ok: bool| if ok { "met" } else { "NOT met" };
        println!(
            "targets vs (b): one way >= 3x: {}; p50 <= 0.25x: back to back {}, interleaved {}",
            met(tput[0].0 >= 3.0 * tput[3].0),
            met(pct(&warm[0], 0.5) <= 0.25 * pct(&warm[3], 0.5)),
            met(pct(&lat[0], 0.5) <= 0.25 * pct(&lat[3], 0.5)),
        );
    }
    let b = up.as_ref().and_then(Upstream::b_echo);
    routed_path(&echo_addr, b, env("ROUTED_COUNT", 20000))?;
    if let Some(mut u) = up {
        drop(u.child.stdin.take());
        let _ = u.child.wait();
    }

    // Concurrent pairs through the router that carried everything above,
    // then through a fresh one.
    concurrent_pairs(&url, pid, "the router of the runs above")?;
    let (mut fresh, fresh_url) = spawn_router("grpc");
    concurrent_pairs(&fresh_url, fresh.id(), "a fresh router")?;
    for c in [&mut child, &mut tls_child, &mut fresh] {
        drop(c.stdin.take());
        let _ = c.wait();
    }
    Ok(())
}

/// `PAIRS` (500) concurrent paired streams through the router `url` (pid
/// `pid`, described as `which`), each pair exchanging 64 KiB both ways: the
/// router's threads and resident memory before and while they are open.
fn concurrent_pairs(url: &str, pid: u32, which: &str) -> Res<()> {
    let before = proc_status(pid, "VmRSS:");
    let pairs = env("PAIRS", 500);
    let t0 = Instant::now();
    let streams: Vec<_> = (0..pairs)
        .map(|i| {
            let t = token::mint(KEY, &format!("p{i}"), Duration::from_secs(600)).unwrap();
            (
                router::connect(url, &t, WAIT).unwrap(),
                router::connect(url, &t, WAIT).unwrap(),
            )
        })
        .collect();
    let opened = proc_status(pid, "VmRSS:");
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
        "\n{pairs} concurrent pairs through {which} ({before} resident before, {opened} once open): all exchanged 64 KiB both ways correctly in {:.2} s; router: {} threads, {} resident",
        t0.elapsed().as_secs_f64(),
        proc_status(pid, "Threads:"),
        proc_status(pid, "VmRSS:")
    );
    // Both ends half-close, then close: no close waits for its peer.
    let t0 = Instant::now();
    for (a, b) in &streams {
        a.send_eof().unwrap();
        b.send_eof().unwrap();
    }
    drop(streams);
    println!(
        "ending and closing the {} streams took {:.2} s",
        2 * pairs,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
