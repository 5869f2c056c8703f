//! Hostile input and faults against the websocket server and the `ws://`
//! bridge (issue 11, "Fault and abuse tests"; issue 17): garbage bytes, a
//! peer that sends one byte per second, a 1 MiB HTTP header, a frame claiming
//! 2^63 bytes, 2,000 connections that never finish a handshake, running out
//! of descriptors (a child process under `prlimit --nofile`), and 64 MiB
//! through the bridge with the target process killed mid-way. After each,
//! a good client is served at once, the refusal was counted, and the
//! process's thread and descriptor counts return to where they were.
//!
//! Every refusal is also checked as logged (a capturing logger, one line per
//! refusal of each kind), and two more refusals are tried against a server
//! and a bridge that allow one `Origin` and two connections: a disallowed
//! `Origin` (HTTP 403) and one connection too many (HTTP 503). The child
//! runs both the server and the bridge out of descriptors, and compares its
//! thread and descriptor counts with its baseline afterwards.
//!
//! One test (plus the child it starts), so that nothing else in this process
//! moves the counts. It prints the table of what was tried, and one
//! `CASE <name>: <outcome>; threads a->b, fds a->b, refused n` line per case
//! (`--nocapture`).

mod common;

use common::{LONG, case_line, counts, logcap, pattern, steady};
use jumpwire::forward::Listener;
use jumpwire::websocket::{RefusalStats, Server};
use jumpwire::{Error, Network};
use socket2::{Domain, Socket, Type};
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
/// The one `Origin` the restricted server and bridge allow.
const ORIGIN: &str = "http://good.example";
/// The restricted server's and bridge's options: one `Origin`, two
/// connections at most.
const RESTRICTED: &str = "?handshake_timeout_ms=500&max_connections=2&origins=http://good.example";

/// How many captured log lines match one of `alternatives` (each a list of
/// parts that must all be in the line; the alternatives are disjoint).
fn logged(alternatives: &[&[&str]]) -> usize {
    alternatives.iter().map(|a| logcap::count(a)).sum()
}

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

    /// Connections served now (handshake done).
    fn connections(&self) -> usize {
        match self {
            Target::Server(s) => s.connections(),
            Target::Bridge(l) => l.connections(),
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

/// A websocket upgrade request, with an `Origin` header if `origin`.
fn upgrade_request(origin: Option<&str>) -> Vec<u8> {
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    format!(
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{origin}\r\n"
    )
    .into_bytes()
}

/// Does the handshake by hand; returns the socket.
fn upgraded(url: &str) -> TcpStream {
    upgraded_with(url, None)
}

/// Does the handshake by hand with `origin`; returns the socket.
fn upgraded_with(url: &str, origin: Option<&str>) -> TcpStream {
    let mut c = raw(url);
    c.write_all(&upgrade_request(origin)).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        c.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    c
}

/// Closes a hand-made websocket connection: a close frame (1000, masked
/// with a zero key), then everything until the server closes; checks the
/// server answered with a close frame.
fn close_by_hand(mut c: TcpStream) {
    c.write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]).unwrap();
    let rest = read_all(&mut c);
    assert_eq!(rest.first(), Some(&0x88), "{rest:?}");
}

/// A good client of the restricted server or bridge (the allowed `Origin`,
/// by hand): an echo round trip within [`AT_ONCE`], then a clean close.
fn origin_client(url: &str) -> Duration {
    let t0 = Instant::now();
    let mut c = upgraded_with(url, Some(ORIGIN));
    let msg = b"still serving";
    let mask = [1u8, 2, 3, 4];
    let mut f = vec![0x82, 0x80 | msg.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(msg.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    c.write_all(&f).unwrap();
    let mut head = [0u8; 2];
    c.read_exact(&mut head).unwrap();
    assert_eq!(head, [0x82, msg.len() as u8]);
    let mut back = vec![0u8; msg.len()];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, msg);
    let took = t0.elapsed();
    close_by_hand(c);
    assert!(took < AT_ONCE, "a good client waited {took:?}");
    took
}

/// A disallowed `Origin`, and none: HTTP 403 each time.
fn bad_origin(t: &Target) -> String {
    for origin in [Some("http://evil.example"), None] {
        let mut c = raw(t.address());
        c.write_all(&upgrade_request(origin)).unwrap();
        let resp = read_all(&mut c);
        assert!(
            resp.starts_with(b"HTTP/1.1 403"),
            "{origin:?}: {:?}",
            String::from_utf8_lossy(&resp)
        );
    }
    "HTTP 403 for a wrong Origin and for none, closed".into()
}

/// Two connections served (the maximum), then a third: HTTP 503.
fn over_limit(t: &Target) -> String {
    let held: Vec<TcpStream> = (0..2)
        .map(|_| upgraded_with(t.address(), Some(ORIGIN)))
        .collect();
    let mut c = raw(t.address());
    c.write_all(&upgrade_request(Some(ORIGIN))).unwrap();
    let resp = read_all(&mut c);
    assert!(
        resp.starts_with(b"HTTP/1.1 503"),
        "{:?}",
        String::from_utf8_lossy(&resp)
    );
    for h in held {
        close_by_hand(h);
    }
    let until = Instant::now() + SETTLE;
    while t.connections() > 0 {
        assert!(Instant::now() < until, "the held connections never ended");
        std::thread::sleep(Duration::from_millis(5));
    }
    "HTTP 503 past 2 served, closed".into()
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

/// What one kind of refusal is counted in, and the log lines that say it.
struct Refusal {
    counted: fn(&RefusalStats) -> u64,
    logs: &'static [&'static [&'static str]],
}

const BAD_REQUEST: Refusal = Refusal {
    counted: |s| s.bad_requests,
    logs: &[
        &[
            "handshake refused: a request head that is too long",
            "so far",
        ],
        &["handshake refused with HTTP 400", "so far"],
    ],
};
const UNFINISHED: Refusal = Refusal {
    counted: |s| s.unfinished,
    logs: &[
        &["handshake refused: no complete request in time", "so far"],
        &["handshake refused: the client left", "so far"],
    ],
};
const EVICTED: Refusal = Refusal {
    counted: |s| s.evicted,
    logs: &[&["(the maximum): ended the oldest to make room"]],
};
const BAD_FRAME: Refusal = Refusal {
    counted: |s| s.bad_frames,
    logs: &[&["closing with 1009", "so far"]],
};
const FORBIDDEN: Refusal = Refusal {
    counted: |s| s.forbidden,
    logs: &[&["handshake refused with HTTP 403", "so far"]],
};
const FULL: Refusal = Refusal {
    counted: |s| s.full,
    logs: &[&["(the maximum): HTTP 503"]],
};

/// Runs one attack on `t`, then checks the good client (`good`), the
/// counts, that the refusal's counter grew, and that each refusal counted
/// was logged; prints the `CASE` line and returns the table row.
fn attack(
    t: &Target,
    good: fn(&str) -> Duration,
    name: &str,
    f: fn(&Target) -> String,
    r: &Refusal,
) -> String {
    let counted = r.counted;
    let before = steady(SETTLE);
    let stats = t.stats();
    let lines = logged(r.logs);
    let outcome = f(t);
    good(t.address());
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
    let logged_now = logged(r.logs) - lines;
    assert_eq!(
        logged_now as u64,
        grew,
        "{} / {name}: {grew} counted, {logged_now} logged ({:?})",
        t.kind(),
        r.logs
    );
    println!(
        "{}",
        case_line(
            &format!("{} / {name}", t.kind()),
            &format!("{outcome}; {logged_now} log lines"),
            before,
            after,
            grew
        )
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

/// How many clients the child connects while out of descriptors (their
/// sockets are made beforehand: a connect needs no new descriptor).
const STARVED_CLIENTS: usize = 20;

/// One target of the child: out of descriptors (files of `/dev/null` hold
/// every free one), `STARVED_CLIENTS` clients come; each is reset, counted
/// and logged, a client of this process cannot even open its socket, and
/// once the descriptors are freed a good client is served at once and the
/// thread and descriptor counts are back at their baseline.
fn starve(t: &Target) {
    good_client(t.address());
    let base = steady(SETTLE);
    let refused0 = t.stats().full;
    let failed = [t.address(), "accept failed", "reset a client"];
    let lines0 = logcap::count(&failed);
    let addr: std::net::SocketAddr = hostport(t.address()).parse().unwrap();
    let socks: Vec<Socket> = (0..STARVED_CLIENTS)
        .map(|_| Socket::new(Domain::IPV4, Type::STREAM, None).unwrap())
        .collect();
    let mut hogs = Vec::new();
    let full = loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => hogs.push(f),
            Err(e) if e.raw_os_error() == Some(24) => break e, // EMFILE
            Err(e) => panic!("{e}"),
        }
        assert!(hogs.len() < 10_000, "the limit never bit");
    };
    // A client of this process cannot even open its socket.
    assert!(jumpwire::connect(t.address(), Some(Duration::from_millis(500))).is_err());
    let mut reset = 0;
    for s in &socks {
        s.connect(&addr.into()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut b = [std::mem::MaybeUninit::<u8>::uninit(); 64];
        match s.recv(&mut b) {
            Err(e) if e.kind() == ErrorKind::ConnectionReset => reset += 1,
            other => panic!("{}: a client out of descriptors saw {other:?}", t.kind()),
        }
    }
    // Each is counted just after its reset: wait (bounded) for the last.
    let until = Instant::now() + SETTLE;
    while t.stats().full - refused0 < STARVED_CLIENTS as u64 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    let refused = t.stats().full - refused0;
    drop(socks);
    let opened = hogs.len();
    hogs.clear();
    good_client(t.address());
    let after = settles(base).unwrap_or_else(|now| {
        panic!(
            "{} out of descriptors: (threads, fds) = {now:?}, before {base:?}",
            t.kind()
        )
    });
    let lines = logcap::count(&failed) - lines0;
    println!(
        "{}",
        case_line(
            &format!("{} / RLIMIT_NOFILE 64 (child)", t.kind()),
            &format!(
                "{opened} files opened to run out ({full}); {reset} of {STARVED_CLIENTS} \
                 clients reset; {lines} log lines (throttled to 1/s); served again at once"
            ),
            base,
            after,
            refused
        )
    );
    assert_eq!(reset, STARVED_CLIENTS);
    assert_eq!(
        refused,
        STARVED_CLIENTS as u64,
        "{}: every reset counted",
        t.kind()
    );
    assert!(lines >= 1, "{}: the refusals are not logged", t.kind());
}

/// The child: runs the server and the bridge out of descriptors under
/// `prlimit --nofile`, one after the other ([`starve`]). Prints `RECOVERED`
/// when both recovered.
fn fd_exhaustion_child() {
    logcap::install();
    let echo = common::tcp_echo_server("127.0.0.1:0");
    let server = Target::Server(echo_server());
    starve(&server);
    server.close();
    drop(server);
    let bridge = Target::Bridge(
        Listener::bind(
            &format!("ws://127.0.0.1:0{OPTIONS}"),
            &Network::new(&format!("tcp://{echo}")).unwrap(),
        )
        .unwrap(),
    );
    starve(&bridge);
    bridge.close();
    println!("RECOVERED");
}

/// Runs [`fd_exhaustion_child`] under `prlimit --nofile=64:64`; returns its
/// `CASE` lines (printed here too).
fn out_of_descriptors() -> Vec<String> {
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
    let cases: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.find("CASE ").map(|i| l[i..].to_string()))
        .collect();
    assert_eq!(cases.len(), 2, "{stdout}");
    for c in &cases {
        println!("{c}");
    }
    cases
}

fn echo_server() -> Server {
    echo_server_at(&format!("ws://127.0.0.1:0{OPTIONS}"))
}

fn echo_server_at(url: &str) -> Server {
    Server::serve(url, |s| {
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
    logcap::install();
    let echo = common::tcp_echo_server("127.0.0.1:0");
    let bridge_to_echo = |options: &str| {
        Target::Bridge(
            Listener::bind(
                &format!("ws://127.0.0.1:0{options}"),
                &Network::new(&format!("tcp://{echo}")).unwrap(),
            )
            .unwrap(),
        )
    };
    let targets = [Target::Server(echo_server()), bridge_to_echo(OPTIONS)];
    let restricted = [
        Target::Server(echo_server_at(&format!("ws://127.0.0.1:0{RESTRICTED}"))),
        bridge_to_echo(RESTRICTED),
    ];
    // Warm up (the first connections start lazily created state).
    for t in &targets {
        good_client(t.address());
    }
    for t in &restricted {
        origin_client(t.address());
    }
    let mut table = vec![
        "| input | against | outcome | (threads, fds) before -> after |".to_string(),
        "|---|---|---|---|".to_string(),
    ];
    type Attack = (&'static str, fn(&Target) -> String, &'static Refusal);
    let open: [Attack; 5] = [
        ("garbage bytes", |t| garbage(t.address()), &BAD_REQUEST),
        (
            "1 byte per second",
            |t| one_byte_per_second(t.address()),
            &UNFINISHED,
        ),
        (
            "1 MiB HTTP header",
            |t| huge_header(t.address()),
            &BAD_REQUEST,
        ),
        (
            "2000 silent connections",
            |t| silent_crowd(t.address()),
            &EVICTED,
        ),
        (
            "frame claiming 2^63 bytes",
            |t| huge_frame(t.address()),
            &BAD_FRAME,
        ),
    ];
    let limited: [Attack; 2] = [
        ("disallowed Origin", bad_origin, &FORBIDDEN),
        ("a connection over the limit", over_limit, &FULL),
    ];
    for (ts, good, attacks) in [
        (&targets, good_client as fn(&str) -> Duration, &open[..]),
        (&restricted, origin_client, &limited[..]),
    ] {
        for t in ts {
            for (name, f, refusal) in attacks {
                table.push(attack(t, good, name, *f, refusal));
            }
        }
    }
    for t in targets.iter().chain(&restricted) {
        t.close();
    }
    drop(targets);
    drop(restricted);
    let before = steady(SETTLE);
    let mut row = |name: &str, kind: &str, outcome: String| {
        let after = settles(before).unwrap_or_else(|now| panic!("{name}: {now:?} vs {before:?}"));
        println!(
            "{}",
            case_line(&format!("{kind} / {name}"), &outcome, before, after, 0)
        );
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
    for case in out_of_descriptors() {
        table.push(format!(
            "| {} | child | | |",
            case.trim_start_matches("CASE ")
        ));
    }
    println!("{}", table.join("\n"));
}
