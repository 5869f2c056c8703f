//! Session benchmark (run `bench/exporter.sh`): an exporter's session on a
//! Unix socket, driver streams to TCP targets on 127.0.0.1, in one run:
//!
//! - upstream client -> jumpwire session -> TCP target: upstream 0.9.0's
//!   `TcpPortforwardAdapter` (`bench/session_forward.py`, `env()` with
//!   `JUMPSTARTER_HOST`) forwarding a local port onto the session's driver;
//! - upstream client -> upstream session -> TCP target: the same client
//!   against upstream's own `Session` (`tests/python/session_peer.py
//!   --target`);
//! - jumpwire client -> jumpwire session: a `jumpstarter:unix:` network's
//!   streams, in this process.
//!
//! Prints iperf3 throughput through each forwarded port (client to server
//! and, `-R`, back), 64-byte round-trip latency percentiles through an
//! echo target, the jumpwire client's echo throughput and latency, and the
//! ratios of the jumpwire session to upstream's on the same client.
//!
//! Environment: `SECONDS` (iperf3 run length, default 5), `COUNT` (round
//! trips, default 2000), `MIB` (the jumpwire client's echo, default 512),
//! `JW_PYTHON`.
//!
//! A `cargo bench` target (`harness = false`): it measures when given
//! `--bench`; without it (`cargo test --benches`, `--all-targets`) it only
//! says what it is and exits 0.

use jumpwire::network::Network;
use jumpwire::session::{Exported, Session};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Res<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const WAIT: Option<Duration> = Some(Duration::from_secs(60));
const WARMUP: usize = 50;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn python() -> String {
    std::env::var("JW_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// A TCP echo server on 127.0.0.1, a thread per connection.
fn echo_server() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = c.set_nodelay(true);
                let mut c = c;
                let mut buf = vec![0u8; 256 * 1024];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 || c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An iperf3 server on 127.0.0.1 (a free port).
fn iperf_server() -> Res<(Proc, String)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new("iperf3")
        .args(["-s", "-B", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let addr = format!("127.0.0.1:{port}");
    let t0 = Instant::now();
    while TcpStream::connect(&addr).is_err() {
        if t0.elapsed() > Duration::from_secs(10) {
            return Err("iperf3 -s did not start".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((Proc(child), addr))
}

/// Reads lines of `child`'s stdout until `READY`; returns them.
fn until_ready(child: &mut Child) -> Res<Vec<String>> {
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut r = BufReader::new(out);
    let mut lines = Vec::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l)? == 0 {
            return Err(format!("ended before READY: {lines:?}").into());
        }
        let l = l.trim().to_string();
        if l == "READY" {
            // Keep the pipe open (the child writes nothing more).
            std::mem::forget(r);
            return Ok(lines);
        }
        lines.push(l);
    }
}

/// Upstream's session (session_peer.py) with a `target` driver to `addr`;
/// returns the process and its socket.
fn upstream_session(addr: &str) -> Res<(Proc, String)> {
    let mut c = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/session_peer.py"
        ))
        .args(["--target", addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let lines = until_ready(&mut c)?;
    Ok((Proc(c), lines[0].clone()))
}

/// Upstream's client forwarding local ports onto `drivers` of the session
/// at `host`; returns the process and each driver's local address.
fn forward(host: &str, drivers: &[&str]) -> Res<(Proc, Vec<String>)> {
    let mut c = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/bench/session_forward.py"
        ))
        .args(drivers)
        .env("JUMPSTARTER_HOST", host)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let lines = until_ready(&mut c)?;
    let addrs = drivers
        .iter()
        .map(|d| {
            lines
                .iter()
                .find_map(|l| l.strip_prefix(&format!("FORWARD {d} ")))
                .map(str::to_string)
                .ok_or_else(|| format!("no forward for {d}: {lines:?}"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((Proc(c), addrs))
}

/// CPU time (user + system, seconds) `pid` has used so far (`None`: this
/// process), from `/proc/PID/stat`.
fn cpu_secs(pid: Option<u32>) -> f64 {
    let path = pid.map_or("/proc/self/stat".to_string(), |p| format!("/proc/{p}/stat"));
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The fields after the command's closing parenthesis: utime is the
    // 12th of them, stime the 13th (fields 14 and 15 of the line).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    f.iter().sum::<f64>() / tick
}

/// Runs `f` and returns its result with the share of a core (%) each of
/// `pids` (`None`: this process) used meanwhile.
fn with_cpu<T>(pids: &[Option<u32>], f: impl FnOnce() -> Res<T>) -> Res<(T, Vec<f64>)> {
    let before: Vec<f64> = pids.iter().map(|p| cpu_secs(*p)).collect();
    let t0 = Instant::now();
    let r = f()?;
    let wall = t0.elapsed().as_secs_f64();
    let used = pids
        .iter()
        .zip(before)
        .map(|(p, b)| 100.0 * (cpu_secs(*p) - b) / wall)
        .collect();
    Ok((r, used))
}

/// iperf3's received throughput through `addr` (Gbit/s), `-R` if `reverse`.
fn iperf(addr: &str, seconds: usize, reverse: bool) -> Res<f64> {
    let (host, port) = addr.rsplit_once(':').ok_or("addr")?;
    let mut cmd = Command::new("iperf3");
    cmd.args(["-c", host, "-p", port, "-t", &seconds.to_string(), "-J"]);
    if reverse {
        cmd.arg("-R");
    }
    let out = cmd.output()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .ok_or_else(|| format!("iperf3: {}", String::from_utf8_lossy(&out.stdout)))?;
    Ok(bps / 1e9)
}

/// 64-byte round trips over `rt` (one call = one round trip): µs samples.
fn latency(count: usize, mut rt: impl FnMut() -> Res<()>) -> Res<Vec<f64>> {
    for _ in 0..WARMUP {
        rt()?;
    }
    let mut s = Vec::with_capacity(count);
    for _ in 0..count {
        let t0 = Instant::now();
        rt()?;
        s.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    s.sort_by(f64::total_cmp);
    Ok(s)
}

fn tcp_round_trips(addr: &str, count: usize) -> Res<Vec<f64>> {
    let mut c = TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
    c.set_read_timeout(WAIT)?;
    let msg = [7u8; 64];
    let mut back = [0u8; 64];
    latency(count, || {
        c.write_all(&msg)?;
        c.read_exact(&mut back)?;
        Ok(())
    })
}

fn pct(s: &[f64], q: f64) -> f64 {
    s[((s.len() - 1) as f64 * q) as usize]
}

fn main() -> Res<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("bench/exporter.rs: run bench/exporter.sh (or cargo bench --bench exporter)");
        return Ok(());
    }
    let seconds = env("SECONDS", 5);
    let count = env("COUNT", 2000);
    let mib = env("MIB", 512);
    let echo = echo_server();
    let (_iperf, iperf_addr) = iperf_server()?;

    // The jumpwire session.
    let dir = std::env::temp_dir().join(format!("jw-bench-session-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("socket");
    let drivers: Vec<(String, Arc<dyn Exported>)> = vec![
        (
            "echo".into(),
            Arc::new(Network::new(&format!("tcp://{echo}"))?),
        ),
        (
            "iperf".into(),
            Arc::new(Network::new(&format!("tcp://{iperf_addr}"))?),
        ),
    ];
    let session = Session::serve(&format!("unix:{}", path.display()), drivers)?;
    let (_jw_fwd, jw) = forward(&path.display().to_string(), &["echo", "iperf"])?;
    // Upstream's sessions, one per target.
    let (_up_echo, up_echo_sock) = upstream_session(&echo)?;
    let (_up_iperf, up_iperf_sock) = upstream_session(&iperf_addr)?;
    let (_up_echo_fwd, up_e) = forward(&up_echo_sock, &["target"])?;
    let (_up_iperf_fwd, up_i) = forward(&up_iperf_sock, &["target"])?;

    println!("iperf3, {seconds} s each, upstream client (TcpPortforwardAdapter):");
    let mut ratios = Vec::new();
    for (what, reverse) in [("client -> target", false), ("target -> client (-R)", true)] {
        let (j, jc) = with_cpu(&[Some(_jw_fwd.0.id()), None], || {
            iperf(&jw[1], seconds, reverse)
        })?;
        let (u, uc) = with_cpu(
            &[Some(_up_iperf_fwd.0.id()), Some(_up_iperf.0.id())],
            || iperf(&up_i[0], seconds, reverse),
        )?;
        println!(
            "  {what:24} jumpwire session {j:7.3} Gbit/s   upstream session {u:7.3} Gbit/s   ratio {:.2}x",
            j / u
        );
        // Who is the limit: a process near 100 % of a core is.
        println!(
            "  {:24} CPU: client {:3.0} % + jumpwire session {:3.0} %   client {:3.0} % + upstream session {:3.0} %",
            "", jc[0], jc[1], uc[0], uc[1]
        );
        ratios.push(j / u);
    }
    println!("64-byte round trips ({count}), upstream client, µs p50 / p99:");
    let j = tcp_round_trips(&jw[0], count)?;
    let u = tcp_round_trips(&up_e[0], count)?;
    println!(
        "  jumpwire session {:7.1} / {:7.1}   upstream session {:7.1} / {:7.1}   p50 ratio {:.2}x",
        pct(&j, 0.5),
        pct(&j, 0.99),
        pct(&u, 0.5),
        pct(&u, 0.99),
        pct(&u, 0.5) / pct(&j, 0.5)
    );

    // jumpwire's client on the jumpwire session.
    let net = Network::new(&format!("jumpstarter:unix:{}?driver=echo", path.display()))?;
    let s = net.connect(WAIT)?;
    let msg = [7u8; 64];
    let mut back = [0u8; 64];
    let lat = latency(count, || {
        s.send(&msg, WAIT)?;
        let mut got = 0;
        while got < 64 {
            got += s.receive(&mut back[got..], WAIT)?.ok_or("eof")?;
        }
        Ok(())
    })?;
    s.close();
    let s = net.connect(WAIT)?;
    let block = vec![5u8; 256 * 1024];
    let total = mib << 20;
    let t0 = Instant::now();
    std::thread::scope(|sc| -> Res<()> {
        sc.spawn(|| {
            for _ in 0..total / block.len() {
                s.send(&block, WAIT).unwrap();
            }
            s.send_eof().unwrap();
        });
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0;
        while let Some(n) = s.receive(&mut buf, WAIT)? {
            got += n;
        }
        if got != total {
            return Err(format!("echo: {got} of {total}").into());
        }
        Ok(())
    })?;
    let secs = t0.elapsed().as_secs_f64();
    s.close();
    println!(
        "jumpwire client -> jumpwire session: echo {mib} MiB each way {:.3} Gbit/s (each way); 64-byte round trips p50 {:.1} µs, p99 {:.1} µs",
        (total as f64 * 8.0) / secs / 1e9,
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );
    println!(
        "ratio (jumpwire session / upstream session, upstream client): throughput {:.2}x and {:.2}x",
        ratios[0], ratios[1]
    );
    session.close();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
