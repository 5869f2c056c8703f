//! Helpers shared by the integration tests: local peers (TCP, UDP and Unix
//! echo servers, a refusing port), deterministic payloads, and receive loops
//! with overall deadlines.

#![allow(dead_code)]

pub mod lab;
pub mod logcap;
pub mod routing;
pub mod session;

use jumpwire::{Error, Stream};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// This process's (threads, open fds), for leak checks.
pub fn counts() -> (usize, usize) {
    let n = |p: &str| std::fs::read_dir(p).map_or(0, |d| d.count());
    (n("/proc/self/task"), n("/proc/self/fd"))
}

/// [`counts`] once they have not changed for 200 ms (threads of earlier
/// connections may still be ending), or after `within`.
pub fn steady(within: Duration) -> (usize, usize) {
    let t0 = Instant::now();
    let (mut last, mut since) = (counts(), Instant::now());
    while t0.elapsed() < within && since.elapsed() < Duration::from_millis(200) {
        std::thread::sleep(Duration::from_millis(10));
        let now = counts();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    last
}

/// Generous upper bound for anything that should happen "at once".
pub const SLACK: Duration = Duration::from_secs(3);
/// The timeout every blocking call of a test uses unless it tests timeouts.
pub const LONG: Option<Duration> = Some(Duration::from_secs(10));

/// `Some(Duration::from_millis(ms))`.
pub fn ms(ms: u64) -> Option<Duration> {
    Some(Duration::from_millis(ms))
}

/// `len` deterministic, non-repeating-looking bytes that depend on `seed`.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// The name the test harness gives the test function `name` of the module
/// whose `module_path!()` is `module`: the path without the crate's name
/// (`dbus::NAME` in the suite binary, `NAME` in a file of its own). For a
/// test that runs its binary again with `NAME --exact`.
pub fn test_name(module: &str, name: &str) -> String {
    match module.split_once("::") {
        Some((_crate, path)) => format!("{path}::{name}"),
        None => name.to_string(),
    }
}

/// A name no other test (or test run) uses: for socket paths and abstract names.
pub fn unique(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "jw-{tag}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(unique(tag));
        std::fs::create_dir(&p).expect("creating a temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies everything read back to the writer until EOF, then half-closes.
fn echo_loop<S: Read + Write>(mut conn: S, shutdown: impl FnOnce(&S)) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
    shutdown(&conn);
}

/// A TCP echo server on `bind` (e.g. `127.0.0.1:0`) serving each connection
/// on its own thread. Its threads are detached; they end with the test
/// process, or when their connection ends.
pub fn tcp_echo_server(bind: &str) -> SocketAddr {
    let listener = TcpListener::bind(bind).expect("binding the echo server");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                echo_loop(conn, |c| {
                    let _ = c.shutdown(std::net::Shutdown::Write);
                })
            });
        }
    });
    addr
}

/// A Unix echo server listening on `listener`, one thread per connection.
pub fn unix_echo_server(listener: UnixListener) {
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                echo_loop(conn, |c| {
                    let _ = c.shutdown(std::net::Shutdown::Write);
                })
            });
        }
    });
}

/// A UDP echo server on 127.0.0.1: every datagram goes back to its sender
/// as it came. Its thread ends after 60 s without traffic.
pub fn udp_echo_server() -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("binding the UDP echo server");
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(&buf[..n], from);
        }
    });
    addr
}

/// One accepted TCP connection to a listener on 127.0.0.1 and the jumpwire
/// stream connected to it: `(ours, theirs)`.
pub fn tcp_pair() -> (Stream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("tcp://{}", listener.local_addr().unwrap());
    let ours = jumpwire::connect(&url, LONG).expect("connecting");
    let (theirs, _) = listener.accept().unwrap();
    (ours, theirs)
}

/// Receives exactly `n` bytes with `buf_size`-byte receives, all within
/// `within`. Panics on EOF, an error or the deadline.
pub fn recv_exact(s: &Stream, n: usize, buf_size: usize, within: Duration) -> Vec<u8> {
    let deadline = Instant::now() + within;
    let mut out = Vec::with_capacity(n);
    let mut buf = vec![0u8; buf_size];
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "got {} of {n} bytes before the deadline",
            out.len()
        );
        let want = (n - out.len()).min(buf_size);
        match s.receive(&mut buf[..want], Some(left)) {
            Ok(Some(k)) => out.extend_from_slice(&buf[..k]),
            Ok(None) => panic!("EOF after {} of {n} bytes", out.len()),
            Err(e) => panic!("receive failed after {} of {n} bytes: {e:?}", out.len()),
        }
    }
    out
}

/// Receives until EOF (all within `within`) and returns everything.
pub fn recv_to_eof(s: &Stream, within: Duration) -> Vec<u8> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no EOF before the deadline ({} bytes)",
            out.len()
        );
        match s.receive(&mut buf, Some(left)) {
            Ok(Some(k)) => out.extend_from_slice(&buf[..k]),
            Ok(None) => return out,
            Err(e) => panic!("receive failed after {} bytes: {e:?}", out.len()),
        }
    }
}

/// Sends `data` in `chunk`-byte sends while receiving it back on this thread,
/// and checks the echo byte for byte.
pub fn round_trip(s: &Stream, data: &[u8], chunk: usize) {
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            for c in data.chunks(chunk) {
                s.send(c, LONG).expect("send");
            }
        });
        let back = recv_exact(s, data.len(), 64 * 1024, Duration::from_secs(20));
        sender.join().unwrap();
        assert!(
            back == data,
            "echo differs from what was sent ({} bytes)",
            data.len()
        );
    });
}

/// Asserts that `r` is `Err(Error::Timeout)`.
#[track_caller]
pub fn assert_timeout<T: std::fmt::Debug>(r: jumpwire::Result<T>) {
    match r {
        Err(Error::Timeout) => {}
        other => panic!("expected Error::Timeout, got {other:?}"),
    }
}

/// Asserts that `elapsed` lies in `[lo, hi]`.
#[track_caller]
pub fn assert_between(elapsed: Duration, lo: Duration, hi: Duration) {
    assert!(
        elapsed >= lo && elapsed <= hi,
        "took {elapsed:?}, expected between {lo:?} and {hi:?}"
    );
}

/// Runs `f` and returns its result with how long it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t0 = Instant::now();
    let r = f();
    (r, t0.elapsed())
}

/// A thread handle joined with a readable panic.
pub fn join<T>(h: JoinHandle<T>) -> T {
    h.join().expect("helper thread panicked")
}

/// Whether this machine has an IPv6 loopback to bind.
pub fn have_ipv6() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

/// A loopback port that refuses connections: bound but not listening, kept
/// bound (so nobody else takes it) while the returned socket lives.
pub fn refusing_port() -> (socket2::Socket, u16) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    (s, port)
}

/// A listener with backlog 0 whose queue is filled with connections it never
/// accepts; further SYNs are dropped, so a connect to it hangs until its
/// timeout. Returns the listener and the fillers (keep both alive) and the
/// address. Panics when this kernel completes such connects anyway: the
/// timeout tests that use it cannot run then, and must not pass silently.
pub fn full_backlog() -> (socket2::Socket, Vec<TcpStream>, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(c) => fillers.push(c),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return (l, fillers, addr),
            Err(e) => panic!("filling the backlog: {e}"),
        }
    }
    panic!("could not fill a listen backlog on this kernel: a connect cannot be made to hang");
}

/// A TCP target serving one connection with `f` (its reads time out after
/// 20 s): its `tcp://` URL and its thread.
pub fn tcp_target<T: Send + 'static>(
    f: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (String, JoinHandle<T>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("tcp://{}", l.local_addr().unwrap());
    let t = std::thread::spawn(move || {
        let (c, _) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        f(c)
    });
    (url, t)
}

/// One `CASE` line of an abuse test's report: the fault, its outcome, the
/// (threads, fds) counts before and after, and the refusals counted.
pub fn case_line(
    name: &str,
    outcome: &str,
    before: (usize, usize),
    after: (usize, usize),
    refused: u64,
) -> String {
    format!(
        "CASE {name}: {outcome}; threads {}->{}, fds {}->{}, refused {refused}",
        before.0, after.0, before.1, after.1
    )
}
