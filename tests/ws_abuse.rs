//! Hostile input and faults against the websocket server and the `ws://`
//! bridge (issue 11, "Fault and abuse tests"; issue 17): garbage bytes, a
//! peer that sends one byte per second, a 1 MiB HTTP header, a frame claiming
//! 2^63 bytes, 2,000 connections that never finish a handshake, running out
//! of descriptors (a child process under `prlimit --nofile`), and 64 MiB
//! through the bridge with the target process killed mid-way. After each,
//! a good client is served at once, the refusal was counted, and the
//! process's thread and descriptor counts return to where they were.
//!
//! One test (plus the child it starts), so that nothing else in this process
//! moves the counts. It prints the table of what was tried (`--nocapture`).

mod common;

use common::{LONG, counts, pattern, steady};
use jumpwire::forward::Listener;
use jumpwire::websocket::{RefusalStats, Server};
use jumpwire::{Error, Network};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SETTLE: Duration = Duration::from_secs(5);
/// What "at once" means for a good client after an attack.
const AT_ONCE: Duration = Duration::from_secs(1);
/// The servers' listen options: a short handshake timeout keeps the slow
/// peer's case short.
const OPTIONS: &str = "?handshake_timeout_ms=500";

/// Waits (at most [`SETTLE`]) for the counts to come back to `base`.
fn settles(base: (usize, usize)) -> Result<(usize, usize), (usize, usize)> {
    let t0 = Instant::now();
    loop {
        let now = counts();
        if now == base {
            return Ok(now);
        }
        if t0.elapsed() > SETTLE {
            return Err(now);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The two servers under attack.
enum Target {
    Server(Server),
    Bridge(Listener),
}

impl Target {
    fn address(&self) -> &str {
        match self {
            Target::Server(s) => s.address(),
            Target::Bridge(l) => l.address(),
        }
    }

    fn stats(&self) -> RefusalStats {
        match self {
            Target::Server(s) => s.refusal_stats(),
            Target::Bridge(l) => l.refusal_stats(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Target::Server(_) => "server",
            Target::Bridge(_) => "bridge",
        }
    }

    fn close(&self) {
        match self {
            Target::Server(s) => s.close(),
            Target::Bridge(l) => l.close(),
        }
    }
}

fn hostport(url: &str) -> String {
    url.trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_string()
}

fn raw(url: &str) -> TcpStream {
    let c = TcpStream::connect(hostport(url)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// Everything the server sends until it closes (a reset ends it too).
fn read_all(c: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                panic!("the server never closed the connection")
            }
            Err(_) => return all,
        }
    }
}

/// A good client: an echo round trip within [`AT_ONCE`].
fn good_client(url: &str) -> Duration {
    let t0 = Instant::now();
    let s = jumpwire::connect(url, LONG).unwrap();
    s.send(b"still serving", LONG).unwrap();
    let mut buf = [0u8; 64];
    let n = s.receive(&mut buf, LONG).unwrap().unwrap();
    assert_eq!(&buf[..n], b"still serving");
    let took = t0.elapsed();
    s.close();
    assert!(took < AT_ONCE, "a good client waited {took:?}");
    took
}

fn garbage(url: &str) -> String {
    let mut c = raw(url);
    let mut junk = pattern(60_000, 1);
    junk.extend_from_slice(b"\r\n\r\n");
    let _ = c.write_all(&junk);
    let resp = read_all(&mut c);
    let head = String::from_utf8_lossy(&resp[..resp.len().min(12)]).into_owned();
    // More than 16 KiB before the blank line: 431; a short one: 400.
    assert!(head.starts_with("HTTP/1.1 431"), "{head:?}");
    let mut c = raw(url);
    c.write_all(b"\x16\x03\x01\x02\x00garbage\r\n\r\n").unwrap();
    let resp = read_all(&mut c);
    assert!(resp.starts_with(b"HTTP/1.1 400"), "{resp:?}");
    "HTTP 431 and 400, closed".into()
}

fn one_byte_per_second(url: &str) -> String {
    let mut c = raw(url);
    c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let req = b"GET / HTTP/1.1\r\nHost: x\r\n";
    let t0 = Instant::now();
    for b in req {
        if c.write_all(&[*b]).is_err() {
            break;
        }
        match c.read(&mut [0u8; 64]) {
            Ok(0) => break,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {}
            Ok(_) | Err(_) => break,
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "never cut off");
    }
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(1500), "cut off after {took:?}");
    format!("cut off after {} ms (timeout 500)", took.as_millis())
}

fn huge_header(url: &str) -> String {
    let mut c = raw(url);
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 1 << 20));
    req.extend_from_slice(b"\r\n\r\n");
    let writer = {
        let mut c = c.try_clone().unwrap();
        std::thread::spawn(move || c.write_all(&req).is_ok())
    };
    // The server answers and closes after 16 KiB (the kernel's buffers may
    // still take the whole 1 MiB).
    let resp = read_all(&mut c);
    let _ = writer.join().unwrap();
    // The answer may be lost to the reset of the unread rest.
    let what = if resp.starts_with(b"HTTP/1.1 431") {
        "HTTP 431, closed"
    } else {
        assert!(resp.is_empty(), "{:?}", String::from_utf8_lossy(&resp));
        "closed (431 lost to the reset)"
    };
    what.into()
}

/// Does the handshake by hand; returns the socket.
fn upgraded(url: &str) -> TcpStream {
    let mut c = raw(url);
    c.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        c.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    c
}

fn huge_frame(url: &str) -> String {
    let mut c = upgraded(url);
    let mut f = vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0];
    f.extend_from_slice(&[1, 2, 3, 4]);
    c.write_all(&f).unwrap();
    let all = read_all(&mut c);
    assert!(all.len() >= 4 && all[0] == 0x88, "{all:?}");
    let code = u16::from_be_bytes([all[2], all[3]]);
    assert_eq!(code, 1009);
    "close 1009, closed".into()
}

fn silent_crowd(url: &str) -> String {
    let t0 = Instant::now();
    let crowd: Vec<TcpStream> = (0..2000).map(|_| raw(url)).collect();
    let took = good_client(url);
    drop(crowd);
    format!(
        "2000 opened in {} ms; good client served in {} ms meanwhile",
        t0.elapsed().as_millis(),
        took.as_millis()
    )
}

/// Runs one attack on `t`, then checks the good client, the counts and that
/// `counted` of the stats grew; returns the table row.
fn attack(
    t: &Target,
    name: &str,
    f: fn(&str) -> String,
    counted: fn(&RefusalStats) -> u64,
) -> String {
    let before = steady(SETTLE);
    let stats = t.stats();
    let outcome = f(t.address());
    good_client(t.address());
    let after = settles(before).unwrap_or_else(|now| {
        panic!(
            "{} / {name}: (threads, fds) = {now:?}, before {before:?}",
            t.kind()
        )
    });
    let grew = counted(&t.stats()) - counted(&stats);
    assert!(
        grew > 0,
        "{} / {name}: not counted: {:?}",
        t.kind(),
        t.stats()
    );
    format!(
        "| {name} | {} | {outcome}; {grew} counted | {before:?} -> {after:?} |",
        t.kind()
    )
}

/// A Python target that reads `n` bytes (mode `read`) or writes `n` bytes of
/// `i % 251` (mode `write`), then kills itself with SIGKILL. In mode `read`
/// it first sets a zero linger, so its death is a reset even when its
/// receive buffer happens to be empty at that instant (a FIN would be a
/// clean end, and the test would race the bridge's next write).
const PY_TARGET: &str = r#"
import os, signal, socket, struct, sys
mode, n = sys.argv[1], int(sys.argv[2])
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(1)
print(l.getsockname()[1], flush=True)
c, _ = l.accept()
if mode == "read":
    got = 0
    while got < n:
        b = c.recv(1 << 20)
        if not b:
            break
        got += len(b)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
else:
    c.sendall((bytes(range(251)) * (n // 251 + 1))[:n])
os.kill(os.getpid(), signal.SIGKILL)
"#;

/// A child process, killed by its pid when dropped.
struct Py(Child);

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn py_target(mode: &str, n: usize) -> (Py, String) {
    let mut child = Command::new("python3")
        .args(["-c", PY_TARGET, mode, &n.to_string()])
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("python3 runs the target");
    let out = child.stdout.take().unwrap();
    let py = Py(child);
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    (py, format!("tcp://127.0.0.1:{}", line.trim()))
}

const TOTAL: usize = 64 << 20;

/// 64 MiB from the client; the target dies after reading 16 MiB.
fn killed_while_uploading() -> String {
    let (py, target) = py_target("read", 16 << 20);
    let bridge = Listener::bind("ws://127.0.0.1:0", &Network::new(&target).unwrap()).unwrap();
    let s = jumpwire::connect(bridge.address(), LONG).unwrap();
    let data = pattern(256 << 10, 3);
    let (sent, received) = std::thread::scope(|sc| {
        let sender = sc.spawn(|| {
            let mut sent = 0;
            while sent < TOTAL {
                if let Err(e) = s.send(&data, LONG) {
                    return (sent, Some(e));
                }
                sent += data.len();
            }
            (sent, None)
        });
        let r = s.receive(&mut [0u8; 64], Some(Duration::from_secs(20)));
        (sender.join().unwrap(), r)
    });
    drop(py);
    // The bridge sends close 1011 and cuts the client off at once (nothing
    // it sends afterwards is taken). Its upload, unread in the bridge's
    // socket, makes that close a reset, which can reach a loaded client
    // before it read the close frame (1006). Either way an error, never an
    // end of stream.
    assert!(
        matches!(&received, Err(Error::Connection(m)) if m.contains("code 1011") || m.contains("(1006)")),
        "{received:?}"
    );
    let (n, send_err) = sent;
    assert!(
        n < TOTAL && send_err.is_some(),
        "the client's sends all succeeded ({n} bytes, {send_err:?})"
    );
    s.close();
    bridge.close();
    format!(
        "receive: close 1011 (error); sends failed after {} MiB",
        n >> 20
    )
}

/// 64 MiB asked of the target; it dies after writing `n` (with unread data
/// from the client when `dirty`: a reset instead of a FIN).
fn killed_while_downloading(n: usize, dirty: bool) -> String {
    let (py, target) = py_target("write", n);
    let bridge = Listener::bind("ws://127.0.0.1:0", &Network::new(&target).unwrap()).unwrap();
    let s = jumpwire::connect(bridge.address(), LONG).unwrap();
    if dirty {
        s.send(b"never read", LONG).unwrap();
    }
    let mut got = Vec::with_capacity(n);
    let mut buf = vec![0u8; 1 << 20];
    let until = Instant::now() + Duration::from_secs(30);
    let end = loop {
        assert!(Instant::now() < until, "hung after {} bytes", got.len());
        match s.receive(&mut buf, Some(Duration::from_secs(20))) {
            Ok(Some(k)) => got.extend_from_slice(&buf[..k]),
            Ok(None) => break "EOF".to_string(),
            Err(e) => break format!("{e}"),
        }
    };
    drop(py);
    let want: Vec<u8> = (0..got.len()).map(|i| (i % 251) as u8).collect();
    assert!(
        got == want,
        "the bytes that came are the target's, in order"
    );
    if end == "EOF" {
        // A clean end only when the target really sent everything it wrote.
        assert_eq!(got.len(), n, "EOF after a short transfer");
    } else {
        assert!(end.contains("1011"), "{end}");
    }
    s.close();
    bridge.close();
    format!(
        "{} of {} MiB in order, then {end}",
        got.len() >> 20,
        n >> 20
    )
}

/// The child: runs out of descriptors under `prlimit --nofile`, then checks
/// the server recovers. Prints `RECOVERED` when it did.
fn fd_exhaustion_child() {
    let server = echo_server();
    let hp = hostport(server.address());
    let mut hogs = Vec::new();
    let err = loop {
        match TcpStream::connect(&hp) {
            Ok(c) => hogs.push(c),
            Err(e) => break e,
        }
        assert!(hogs.len() < 10_000, "the limit never bit");
    };
    println!("out of descriptors after {} connections: {err}", hogs.len());
    // A client now cannot even open its socket.
    assert!(jumpwire::connect(server.address(), Some(Duration::from_millis(500))).is_err());
    hogs.clear();
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        match jumpwire::connect(server.address(), Some(Duration::from_millis(500))) {
            Ok(s) => {
                s.send(b"back", LONG).unwrap();
                let mut b = [0u8; 8];
                assert_eq!(s.receive(&mut b, LONG).unwrap(), Some(4));
                break;
            }
            Err(e) => assert!(Instant::now() < until, "never recovered: {e}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    server.close();
    println!("RECOVERED");
}

fn out_of_descriptors() -> String {
    let out = Command::new("prlimit")
        .arg("--nofile=64:64")
        .arg(std::env::current_exe().unwrap())
        .args([
            "abuse_and_faults",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("JW_WS_ABUSE_CHILD", "1")
        .output()
        .expect("prlimit runs the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("RECOVERED") && stdout.contains("1 passed"),
        "child: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.find("out of descriptors").map(|i| &l[i..]))
        .unwrap_or("");
    format!("{line}; served again once freed")
}

fn echo_server() -> Server {
    Server::serve(&format!("ws://127.0.0.1:0{OPTIONS}"), |s| {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(Some(n)) = s.receive(&mut buf, None) {
            if s.send(&buf[..n], LONG).is_err() {
                break;
            }
        }
    })
    .unwrap()
}

#[test]
fn abuse_and_faults() {
    if std::env::var_os("JW_WS_ABUSE_CHILD").is_some() {
        fd_exhaustion_child();
        return;
    }
    let echo = common::tcp_echo_server("127.0.0.1:0");
    let targets = [
        Target::Server(echo_server()),
        Target::Bridge(
            Listener::bind(
                &format!("ws://127.0.0.1:0{OPTIONS}"),
                &Network::new(&format!("tcp://{echo}")).unwrap(),
            )
            .unwrap(),
        ),
    ];
    // Warm up (the first connections start lazily created state).
    for t in &targets {
        good_client(t.address());
    }
    let mut table = vec![
        "| input | against | outcome | (threads, fds) before -> after |".to_string(),
        "|---|---|---|---|".to_string(),
    ];
    for t in &targets {
        table.push(attack(t, "garbage bytes", garbage, |s| s.bad_requests));
        table.push(attack(t, "1 byte per second", one_byte_per_second, |s| {
            s.unfinished
        }));
        table.push(attack(t, "1 MiB HTTP header", huge_header, |s| {
            s.bad_requests
        }));
        table.push(attack(t, "2000 silent connections", silent_crowd, |s| {
            s.evicted
        }));
        table.push(attack(t, "frame claiming 2^63 bytes", huge_frame, |s| {
            s.bad_frames
        }));
    }
    for t in &targets {
        t.close();
    }
    drop(targets);
    let before = steady(SETTLE);
    let mut row = |name: &str, kind: &str, outcome: String| {
        let after = settles(before).unwrap_or_else(|now| panic!("{name}: {now:?} vs {before:?}"));
        table.push(format!(
            "| {name} | {kind} | {outcome} | {before:?} -> {after:?} |"
        ));
    };
    row(
        "64 MiB up, target killed at 16 MiB",
        "bridge",
        killed_while_uploading(),
    );
    row(
        "64 MiB down, target killed at 20 MiB",
        "bridge",
        killed_while_downloading(20 << 20, false),
    );
    row(
        "64 MiB down, target killed at 20 MiB with unread data (reset)",
        "bridge",
        killed_while_downloading(20 << 20, true),
    );
    row(
        "RLIMIT_NOFILE 64 (child process)",
        "server",
        out_of_descriptors(),
    );
    println!("{}", table.join("\n"));
}
