//! The measuring half of `bench/forward.sh` (run that script, not this
//! program): servers the script starts in the background and clients that
//! print percentiles. Every server binds 127.0.0.1 only, prints `ADDR
//! 127.0.0.1:PORT` and runs until stdin closes or it is killed. A `cargo
//! bench` target (`harness = false`); the script runs the executable that
//! `cargo bench --bench forward --no-run` builds.
//!
//! Subcommands:
//! - `forward-server --target HOST:PORT`: a jumpwire forward
//!   (`forward::Listener`) to the target.
//! - `relay-server --target HOST:PORT`: a reference forward with plain std
//!   sockets, two threads per connection, each reading 256 KiB at a time
//!   straight into one reused buffer and writing it on (jumpwire's forward
//!   minus its reader threads, channels and per-read allocations).
//! - `poll-relay-server --target HOST:PORT`: a reference forward like socat's:
//!   one thread per connection serving both directions with `poll(2)` and
//!   non-blocking reads and writes through a reused 256 KiB buffer each way.
//! - `echo-server`: a TCP echo server, TCP_NODELAY, one thread per connection.
//! - `latency --target NAME=HOST:PORT... [--count N] [--size B]`: round trips
//!   of B bytes (default 64) on one connection per target, TCP_NODELAY.
//! - `stream-latency --addr HOST:PORT [--count N] [--size B]`: the same through
//!   a `jumpwire::Stream` and through a raw `std::net::TcpStream`.
//! - `connect-latency --target NAME=HOST:PORT... [--count N]`: connect, send one
//!   byte, receive it, close.
//! - `iperf-bps FILE`: the received bits per second (and bytes) of an `iperf3
//!   -J` result, both directions for `--bidir`.
//! - `wait-listen PORT [SECONDS]`: waits until 127.0.0.1:PORT is listening
//!   (read from /proc/net/tcp, without connecting).
//! - `free-port`: prints a TCP port that was free a moment ago.
//! - `report FILE`: prints the markdown table from the script's result lines.
//!
//! The clients measure the targets in turn, in blocks (round robin), so that a
//! burst of load on the shared machine hits them all alike; they print
//! `RESULT NAME p50 p90 p99` with microseconds.
//!
//! Without a subcommand and without `--bench` (how `cargo test --benches` and
//! `--all-targets` run a bench target) it only says what it is and exits 0.

use std::error::Error as StdError;
use std::io::{BufRead, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

type Res<T> = std::result::Result<T, Box<dyn StdError + Send + Sync>>;

/// Round trips (or connections) per target before the next target's turn.
/// Round trips alternate one by one: on a VM, wake-up latency swings between
/// two modes with the load of the moment, and blocks of many round trips
/// would compare one mode with the other rather than the paths.
const BLOCK: usize = 1;
const CONNECT_BLOCK: usize = 1;
/// Untimed round trips first on each connection.
const WARMUP: usize = 200;
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const RELAY_CHUNK: usize = 256 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    let r = match args.first().map(String::as_str) {
        Some("forward-server") => forward_server(rest),
        Some("relay-server") => relay_server(rest, relay_conn),
        Some("poll-relay-server") => relay_server(rest, poll_relay_conn),
        Some("echo-server") => echo_server(),
        Some("latency") => latency(rest),
        Some("stream-latency") => stream_latency(rest),
        Some("connect-latency") => connect_latency(rest),
        Some("iperf-bps") => iperf_bps(rest),
        Some("wait-listen") => wait_listen(rest),
        Some("free-port") => free_port(),
        Some("report") => report(rest),
        _ if !args.iter().any(|a| a == "--bench") => {
            eprintln!("bench_forward: built; bench/forward.sh runs it");
            return;
        }
        _ => Err("usage: bench_forward SUBCOMMAND ... (see the module docs of bench/forward.rs; run bench/forward.sh)".into()),
    };
    if let Err(e) = r {
        eprintln!("bench_forward: {e}");
        std::process::exit(1);
    }
}

/// The value of `--name VALUE` (the last one).
fn opt<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.windows(2)
        .filter(|w| w[0] == name)
        .map(|w| w[1].as_str())
        .next_back()
}

fn opt_num(args: &[String], name: &str, default: usize) -> Res<usize> {
    match opt(args, name) {
        Some(v) => Ok(v.parse().map_err(|e| format!("{name} {v}: {e}"))?),
        None => Ok(default),
    }
}

/// Every `--target NAME=ADDR`.
fn targets(args: &[String]) -> Res<Vec<(String, String)>> {
    let t: Vec<(String, String)> = args
        .windows(2)
        .filter(|w| w[0] == "--target")
        .map(|w| match w[1].split_once('=') {
            Some((n, a)) => Ok((n.to_string(), a.to_string())),
            None => Err(format!("--target {}: expected NAME=HOST:PORT", w[1])),
        })
        .collect::<Result<_, _>>()?;
    if t.is_empty() {
        return Err("no --target NAME=HOST:PORT given".into());
    }
    Ok(t)
}

/// Prints the address, then blocks until stdin reaches its end.
fn serve_until_stdin_closes(addr: &str) -> Res<()> {
    println!("ADDR {addr}");
    std::io::stdout().flush()?;
    let mut sink = Vec::new();
    let _ = std::io::stdin().lock().read_until(0, &mut sink);
    Ok(())
}

fn forward_server(args: &[String]) -> Res<()> {
    let target = opt(args, "--target").ok_or("--target HOST:PORT is required")?;
    let network = jumpwire::Network::new(&format!("tcp://{target}"))?;
    let listener = jumpwire::forward::Listener::bind("tcp://127.0.0.1:0", &network)?;
    let addr = listener.address().trim_start_matches("tcp://").to_string();
    serve_until_stdin_closes(&addr)
}

fn relay_server(args: &[String], serve: fn(TcpStream, &str) -> Res<()>) -> Res<()> {
    let target = opt(args, "--target")
        .ok_or("--target HOST:PORT is required")?
        .to_string();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let target = target.clone();
            std::thread::spawn(move || {
                if let Err(e) = serve(conn, &target) {
                    eprintln!("relay: {e}");
                }
            });
        }
    });
    serve_until_stdin_closes(&addr)
}

fn relay_conn(a: TcpStream, target: &str) -> Res<()> {
    let b = TcpStream::connect(target)?;
    a.set_nodelay(true)?;
    b.set_nodelay(true)?;
    let (a2, b2) = (a.try_clone()?, b.try_clone()?);
    let back = std::thread::spawn(move || copy(b2, a2));
    let r = copy(a, b);
    let r2 = back.join().map_err(|_| "relay thread panicked")?;
    r.and(r2).map_err(Into::into)
}

fn copy(mut from: TcpStream, mut to: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; RELAY_CHUNK];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return to.shutdown(Shutdown::Write);
        }
        to.write_all(&buf[..n])?;
    }
}

/// One direction of a [`poll_relay_conn`]: bytes read from `socks[from]` and
/// not yet written to the other socket.
struct Pending {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    done: bool,
}

fn poll_relay_conn(a: TcpStream, target: &str) -> Res<()> {
    use std::os::fd::AsRawFd;
    let b = TcpStream::connect(target)?;
    let socks = [a, b];
    for s in &socks {
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
    }
    let mut dirs: Vec<Pending> = (0..2)
        .map(|_| Pending {
            buf: vec![0u8; RELAY_CHUNK],
            start: 0,
            end: 0,
            eof: false,
            done: false,
        })
        .collect();
    while !(dirs[0].done && dirs[1].done) {
        // dirs[i] reads socks[i] and writes socks[1 - i].
        let mut pfds = [0, 1].map(|i| {
            let mut events = 0;
            if !dirs[i].eof && dirs[i].start == dirs[i].end {
                events |= libc::POLLIN;
            }
            if dirs[1 - i].start < dirs[1 - i].end {
                events |= libc::POLLOUT;
            }
            libc::pollfd {
                fd: socks[i].as_raw_fd(),
                events,
                revents: 0,
            }
        });
        // SAFETY: two valid pollfds for sockets that outlive the call.
        if unsafe { libc::poll(pfds.as_mut_ptr(), 2, -1) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        if pfds
            .iter()
            .any(|p| p.events == 0 && p.revents & libc::POLLERR != 0)
        {
            return Err("socket error while idle".into());
        }
        for (i, d) in dirs.iter_mut().enumerate() {
            let (src, dst) = (&socks[i], &socks[1 - i]);
            if d.done {
                continue;
            }
            if !d.eof && d.start == d.end {
                match (&*src).read(&mut d.buf) {
                    Ok(0) => d.eof = true,
                    Ok(n) => (d.start, d.end) = (0, n),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e.into()),
                }
            }
            while d.start < d.end {
                match (&*dst).write(&d.buf[d.start..d.end]) {
                    Ok(n) => d.start += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e.into()),
                }
            }
            if d.eof && d.start == d.end {
                dst.shutdown(Shutdown::Write)?;
                d.done = true;
            }
        }
    }
    Ok(())
}

fn echo_server() -> Res<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = conn.set_nodelay(true);
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    serve_until_stdin_closes(&addr)
}

fn connect_std(addr: &str) -> Res<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

fn round_trip_std(s: &mut TcpStream, out: &[u8], back: &mut [u8]) -> Res<()> {
    s.write_all(out)?;
    s.read_exact(back)?;
    if back != out {
        return Err("echo returned other bytes".into());
    }
    Ok(())
}

fn round_trip_jw(s: &jumpwire::Stream, out: &[u8], back: &mut [u8]) -> Res<()> {
    s.send(out, Some(IO_TIMEOUT))?;
    let mut got = 0;
    while got < back.len() {
        match s.receive(&mut back[got..], Some(IO_TIMEOUT))? {
            Some(n) => got += n,
            None => return Err("end of stream before the echo".into()),
        }
    }
    if back != out {
        return Err("echo returned other bytes".into());
    }
    Ok(())
}

/// Runs `op(target index)` `count` times per target, targets in turn in blocks
/// of `block`, after `warmup` untimed runs each; returns the samples in µs.
fn round_robin(
    n: usize,
    count: usize,
    block: usize,
    warmup: usize,
    mut op: impl FnMut(usize) -> Res<()>,
) -> Res<Vec<Vec<f64>>> {
    for i in 0..n {
        for _ in 0..warmup {
            op(i)?;
        }
    }
    let mut samples = vec![Vec::with_capacity(count); n];
    while samples[0].len() < count {
        for (i, s) in samples.iter_mut().enumerate() {
            for _ in 0..block.min(count - s.len()) {
                let t0 = Instant::now();
                op(i)?;
                s.push(t0.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    Ok(samples)
}

fn print_results(names: &[String], samples: &mut [Vec<f64>]) {
    for (name, s) in names.iter().zip(samples) {
        s.sort_by(f64::total_cmp);
        let p = |q: f64| s[((s.len() as f64 * q) as usize).min(s.len() - 1)];
        println!("RESULT {name} {:.1} {:.1} {:.1}", p(0.50), p(0.90), p(0.99));
    }
}

fn latency(args: &[String]) -> Res<()> {
    let targets = targets(args)?;
    let count = opt_num(args, "--count", 10_000)?;
    let size = opt_num(args, "--size", 64)?;
    let out: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let mut back = vec![0u8; size];
    // Several connections per path, interleaved (see `stream_latency`).
    const CONNS: usize = 8;
    let n = targets.len();
    let mut conns = (0..CONNS)
        .flat_map(|_| targets.iter().map(|(_, a)| connect_std(a)))
        .collect::<Res<Vec<_>>>()?;
    let split = round_robin(
        conns.len(),
        count.div_ceil(CONNS),
        BLOCK,
        WARMUP / CONNS,
        |i| round_trip_std(&mut conns[i], &out, &mut back),
    )?;
    let mut samples = vec![Vec::new(); n];
    for (i, s) in split.into_iter().enumerate() {
        samples[i % n].extend(s);
    }
    let names: Vec<String> = targets.into_iter().map(|(n, _)| n).collect();
    print_results(&names, &mut samples);
    Ok(())
}

fn stream_latency(args: &[String]) -> Res<()> {
    let addr = opt(args, "--addr").ok_or("--addr HOST:PORT is required")?;
    let count = opt_num(args, "--count", 10_000)?;
    let size = opt_num(args, "--size", 64)?;
    let out: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let mut back = vec![0u8; size];
    // Several connections of each kind, interleaved: on a VM each connection
    // settles into a fast or a slow wake-up mode (whether its echo thread runs
    // on the client's CPU), so one connection per kind would compare modes.
    const PAIRS: usize = 8;
    let mut raw = (0..PAIRS)
        .map(|_| connect_std(addr))
        .collect::<Res<Vec<_>>>()?;
    let jw = (0..PAIRS)
        .map(|_| jumpwire::connect(&format!("tcp://{addr}"), Some(IO_TIMEOUT)))
        .collect::<Result<Vec<_>, _>>()?;
    let per = count.div_ceil(PAIRS);
    let split = round_robin(2 * PAIRS, per, BLOCK, WARMUP / PAIRS, |i| match i % 2 {
        0 => round_trip_std(&mut raw[i / 2], &out, &mut back),
        _ => round_trip_jw(&jw[i / 2], &out, &mut back),
    })?;
    for s in &jw {
        s.close();
    }
    let mut samples = vec![Vec::new(), Vec::new()];
    for (i, s) in split.into_iter().enumerate() {
        samples[i % 2].extend(s);
    }
    print_results(&["raw".into(), "jumpwire".into()], &mut samples);
    Ok(())
}

fn connect_latency(args: &[String]) -> Res<()> {
    let targets = targets(args)?;
    let count = opt_num(args, "--count", 1_000)?;
    let mut back = [0u8; 1];
    let mut samples = round_robin(targets.len(), count, CONNECT_BLOCK, 20, |i| {
        let mut s = connect_std(&targets[i].1)?;
        round_trip_std(&mut s, b"x", &mut back)
    })?;
    let names: Vec<String> = targets.into_iter().map(|(n, _)| n).collect();
    print_results(&names, &mut samples);
    Ok(())
}

/// The number after `"KEY":` … `"bits_per_second":` / `"bytes":` in iperf3's
/// JSON (the first occurrence after KEY).
fn json_number_after(json: &str, key: &str, field: &str) -> Option<f64> {
    let at = json.find(&format!("\"{key}\":"))?;
    let rest = &json[at..];
    let f = rest.find(&format!("\"{field}\":"))? + field.len() + 3;
    let num: String = rest[f..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        .collect();
    num.parse().ok()
}

/// Prints `GBIT_FORWARD GBIT_REVERSE BYTES_TOTAL` (reverse 0 without --bidir).
fn iperf_bps(args: &[String]) -> Res<()> {
    let file = args.first().ok_or("iperf-bps FILE")?;
    let json = std::fs::read_to_string(file)?;
    if let Some(at) = json.find("\"error\":") {
        let msg: String = json[at..].chars().take(200).collect();
        return Err(format!("{file}: iperf3 reported {msg}").into());
    }
    let fwd = json_number_after(&json, "sum_received", "bits_per_second")
        .ok_or("no sum_received in the iperf3 JSON")?;
    let fwd_bytes = json_number_after(&json, "sum_received", "bytes").unwrap_or(0.0);
    let rev =
        json_number_after(&json, "sum_received_bidir_reverse", "bits_per_second").unwrap_or(0.0);
    let rev_bytes = json_number_after(&json, "sum_received_bidir_reverse", "bytes").unwrap_or(0.0);
    println!(
        "{:.2} {:.2} {:.0}",
        fwd / 1e9,
        rev / 1e9,
        fwd_bytes + rev_bytes
    );
    Ok(())
}

fn wait_listen(args: &[String]) -> Res<()> {
    let port: u16 = args.first().ok_or("wait-listen PORT [SECONDS]")?.parse()?;
    let secs: f64 = args.get(1).map_or(Ok(10.0), |s| s.parse())?;
    let want = format!("0100007F:{port:04X}");
    let until = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < until {
        let table = std::fs::read_to_string("/proc/net/tcp")?;
        let listening = table.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1] == want && f[3] == "0A"
        });
        if listening {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("nothing listens on 127.0.0.1:{port} after {secs} s").into())
}

fn free_port() -> Res<()> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    println!("{}", l.local_addr()?.port());
    Ok(())
}

/// Input lines: `MEASUREMENT|UNIT|DIRECT|JUMPWIRE|SOCAT|RELAY|POLL_RELAY|GOAL`
/// with `-` for no value; GOAL is `-`, `js>=X` / `js<=X` (jumpwire/socat) or
/// `jd<=X` (jumpwire/direct).
fn report(args: &[String]) -> Res<()> {
    let file = args.first().ok_or("report FILE")?;
    let text = std::fs::read_to_string(file)?;
    println!(
        "| measurement | direct | jumpwire | socat | jumpwire/socat | std relay (ref) | poll relay (ref) | target | met |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|---|---|");
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() != 8 {
            return Err(format!("bad result line: {line}").into());
        }
        let num = |s: &str| s.parse::<f64>().ok();
        let (d, j, s, r, pr) = (num(f[2]), num(f[3]), num(f[4]), num(f[5]), num(f[6]));
        let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} {}", f[1]));
        let ratio =
            |a: Option<f64>, b: Option<f64>| a.zip(b).filter(|(_, b)| *b > 0.0).map(|(a, b)| a / b);
        let js = ratio(j, s);
        let (target, met) = match f[7] {
            "-" => ("-".to_string(), "-".to_string()),
            g => {
                let (what, value, op, limit) = if let Some(x) = g.strip_prefix("js>=") {
                    ("jumpwire/socat", js, ">=", x)
                } else if let Some(x) = g.strip_prefix("js<=") {
                    ("jumpwire/socat", js, "<=", x)
                } else if let Some(x) = g.strip_prefix("jd<=") {
                    ("jumpwire/direct", ratio(j, d), "<=", x)
                } else {
                    return Err(format!("bad goal {g}").into());
                };
                let limit: f64 = limit.parse()?;
                let ok = value.map(|v| if op == ">=" { v >= limit } else { v <= limit });
                let shown = value.map_or("-".into(), |v| format!("{v:.2}"));
                let met = match ok {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "?",
                };
                (format!("{what} {op} {limit} (is {shown})"), met.to_string())
            }
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {target} | {met} |",
            f[0],
            cell(d),
            cell(j),
            cell(s),
            js.map_or("-".into(), |v| format!("{v:.2}")),
            cell(r),
            cell(pr),
        );
    }
    Ok(())
}
