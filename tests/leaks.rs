//! Resource leaks: after streams and listeners are closed, the process has
//! exactly as many threads (`/proc/self/task`) and file descriptors
//! (`/proc/self/fd`) as before. Covers 1,000 streams (TCP and Unix to local echo
//! servers, UDP, the echo driver; 200 of them opened and closed through the C
//! API), each with a small round trip, some half-closed first; and 100 forwarding
//! listeners (TCP and Unix, 20 through the C API), each with one forwarded
//! connection doing a round trip, a quarter of them closed while that
//! connection is still open, which the close must end; and 10 private D-Bus
//! daemons killed mid-conversation under a direct stream and a forwarded one.
//!
//! Everything is in ONE test so that no other test of this process runs at the
//! same time and changes the counts. The baseline is taken after a warm-up
//! round (first uses may create lazy process-wide resources), and counts are
//! given up to ~2 s to settle (server-side threads of the test's echo servers
//! end on their own) before they must equal the baseline.

use jumpwire::Stream;
use jumpwire::ffi::{
    jw_connect, jw_last_error, jw_listen, jw_listener, jw_listener_address, jw_listener_close,
    jw_network, jw_network_connect, jw_network_free, jw_network_new, jw_status, jw_stream,
    jw_stream_close, jw_stream_receive, jw_stream_send, jw_stream_send_eof,
};
use jumpwire::forward::Listener;
use std::ffi::{CStr, CString, c_char};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::ptr::null_mut;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Timeout of every single blocking step (generous: only a hang hits it).
const STEP: Duration = Duration::from_secs(10);
const STEP_MS: i32 = 10_000;
/// How long counts may take to return to the baseline.
const SETTLE: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------- counting

/// Threads (name of each) and descriptors (target of each) of this process.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    threads: Vec<String>,
    fds: Vec<String>,
}

impl Snapshot {
    fn take() -> Snapshot {
        let mut threads = entries("/proc/self/task")
            .iter()
            .map(|t| {
                std::fs::read_to_string(t.join("comm"))
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            })
            .collect::<Vec<_>>();
        threads.sort();
        let mut fds: Vec<String> = entries("/proc/self/fd")
            .iter()
            .map(|f| {
                std::fs::read_link(f)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            })
            .collect();
        fds.sort();
        Snapshot { threads, fds }
    }

    fn counts(&self) -> (usize, usize) {
        (self.threads.len(), self.fds.len())
    }
}

fn entries(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect(dir)
        .map(|e| e.expect(dir).path())
        .collect();
    v.sort();
    v
}

/// Waits up to [`SETTLE`] for the thread and fd counts to equal `base`.
fn assert_settles(what: &str, base: &Snapshot) {
    let t0 = Instant::now();
    loop {
        let now = Snapshot::take();
        if now.counts() == base.counts() {
            eprintln!(
                "{what}: back to {:?} (threads, fds) after {:?}",
                base.counts(),
                t0.elapsed()
            );
            return;
        }
        if t0.elapsed() > SETTLE {
            let (threads, fds) = (&now.threads, &now.fds);
            panic!(
                "{what}: (threads, fds) = {:?}, baseline {:?}\nthreads now: {threads:?}\nbaseline: {:?}\nfds now: {fds:?}\nbaseline: {:?}",
                now.counts(),
                base.counts(),
                base.threads,
                base.fds
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A snapshot once the counts have stopped changing for 200 ms (or after ~2 s).
fn steady() -> Snapshot {
    let t0 = Instant::now();
    let mut last = Snapshot::take();
    let mut since = Instant::now();
    while t0.elapsed() < SETTLE {
        std::thread::sleep(Duration::from_millis(20));
        let now = Snapshot::take();
        if now.counts() != last.counts() {
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_millis(200) {
            return now;
        }
        last = now;
    }
    last
}

// ---------------------------------------------------------------- echo servers

/// A local echo server on its own thread; stopped and joined on drop.
struct Server {
    url: String,
    stop: Arc<AtomicBool>,
    wake: Box<dyn Fn()>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        (self.wake)();
        if let Some(t) = self.thread.take() {
            t.join().expect("echo server thread");
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("spawn")
}

/// Echoes one connection until EOF, then shuts down its write side.
fn echo_conn<S: Read + Write>(mut s: S, shutdown_write: impl FnOnce(&S)) {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
    shutdown_write(&s);
}

fn tcp_echo() -> Server {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = spawn("echo-tcp", move || {
        for c in l.incoming() {
            if flag.load(Ordering::Acquire) {
                return;
            }
            let Ok(c) = c else { continue };
            c.set_read_timeout(Some(STEP)).unwrap();
            spawn("echo-conn", move || {
                echo_conn(c, |c| drop(c.shutdown(Shutdown::Write)))
            });
        }
    });
    let wake = Box::new(move || drop(TcpStream::connect(addr)));
    Server {
        url: format!("tcp://{addr}"),
        stop,
        wake,
        thread: Some(thread),
    }
}

fn unix_echo(path: &Path) -> Server {
    let l = UnixListener::bind(path).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = spawn("echo-unix", move || {
        for c in l.incoming() {
            if flag.load(Ordering::Acquire) {
                return;
            }
            let Ok(c) = c else { continue };
            c.set_read_timeout(Some(STEP)).unwrap();
            spawn("echo-conn", move || {
                echo_conn(c, |c| drop(c.shutdown(Shutdown::Write)))
            });
        }
    });
    let p = path.to_path_buf();
    let wake = Box::new(move || drop(UnixStream::connect(&p)));
    Server {
        url: format!("unix:{}", path.display()),
        stop,
        wake,
        thread: Some(thread),
    }
}

fn udp_echo() -> Server {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = spawn("echo-udp", move || {
        let mut buf = [0u8; 2048];
        while !flag.load(Ordering::Acquire) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(&buf[..n], from);
            }
        }
    });
    Server {
        url: format!("udp://{addr}"),
        stop,
        wake: Box::new(|| ()),
        thread: Some(thread),
    }
}

struct Servers {
    tcp: Server,
    unix: Server,
    udp: Server,
}

// ---------------------------------------------------------------- the C API

fn last_error() -> String {
    // SAFETY: jw_last_error returns a valid NUL-terminated string owned by the
    // library, valid until the next failing call on this thread.
    unsafe { CStr::from_ptr(jw_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn check(st: jw_status, what: &str) {
    assert_eq!(st, jw_status::JW_OK, "{what}: {}", last_error());
}

/// A stream through the C API: connect (directly or via a jw_network), a round
/// trip of `msg`, optionally send_eof + JW_EOF, then jw_stream_close.
fn ffi_stream(url: &str, msg: &[u8], via_network: bool, eof: bool) {
    let curl = CString::new(url).unwrap();
    let mut s: *mut jw_stream = null_mut();
    if via_network {
        let mut n: *mut jw_network = null_mut();
        check(jw_network_new(curl.as_ptr(), &mut n), "jw_network_new");
        check(jw_network_connect(n, STEP_MS, &mut s), "jw_network_connect");
        jw_network_free(n);
    } else {
        check(jw_connect(curl.as_ptr(), STEP_MS, &mut s), "jw_connect");
    }
    assert!(!s.is_null());
    check(
        jw_stream_send(s, msg.as_ptr().cast(), msg.len(), STEP_MS),
        "jw_stream_send",
    );
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got.len() < msg.len() {
        let mut n = usize::MAX;
        check(
            jw_stream_receive(s, buf.as_mut_ptr().cast(), buf.len(), &mut n, STEP_MS),
            "jw_stream_receive",
        );
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, msg, "{url}: echoed bytes");
    if eof {
        check(jw_stream_send_eof(s), "jw_stream_send_eof");
        let mut n = usize::MAX;
        let st = jw_stream_receive(s, buf.as_mut_ptr().cast(), buf.len(), &mut n, STEP_MS);
        assert_eq!(
            st,
            jw_status::JW_EOF,
            "{url}: EOF comes back: {}",
            last_error()
        );
        assert_eq!(n, 0);
    }
    jw_stream_close(s);
}

// ---------------------------------------------------------------- streams

fn round_trip(s: &Stream, msg: &[u8]) {
    s.send(msg, Some(STEP)).expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got.len() < msg.len() {
        match s.receive(&mut buf, Some(STEP)) {
            Ok(Some(n)) => got.extend_from_slice(&buf[..n]),
            other => panic!("{}: receive gave {other:?} after {got:?}", s.name()),
        }
    }
    assert_eq!(got, msg, "{}: echoed bytes", s.name());
}

fn expect_eof(s: &Stream) {
    let mut buf = [0u8; 16];
    assert_eq!(
        s.receive(&mut buf, Some(STEP)),
        Ok(None),
        "{}: EOF",
        s.name()
    );
}

/// Opens, uses and closes `count` streams: kinds rotate tcp, unix, udp, echo;
/// every fifth goes through the C API; half of the byte streams half-close
/// first and wait for the EOF to come back.
fn streams_round(servers: &Servers, count: usize) {
    for i in 0..count {
        let url = match i % 4 {
            0 => servers.tcp.url.as_str(),
            1 => servers.unix.url.as_str(),
            2 => servers.udp.url.as_str(),
            _ => "echo:",
        };
        let eof = i % 4 != 2 && (i / 4) % 2 == 0;
        let msg = format!("stream {i} to {url}");
        if i % 5 == 0 {
            ffi_stream(url, msg.as_bytes(), (i / 5) % 2 == 1, eof);
            continue;
        }
        let s = jumpwire::connect(url, Some(STEP)).expect(url);
        round_trip(&s, msg.as_bytes());
        if eof {
            s.send_eof().expect("send_eof");
            expect_eof(&s);
        }
        s.close();
    }
}

// ---------------------------------------------------------------- listeners

/// A listener made through either API.
enum AnyListener {
    Rust(Listener),
    Ffi(*mut jw_listener),
}

impl AnyListener {
    fn bind(url: &str, target: &str, ffi: bool) -> AnyListener {
        if !ffi {
            let net = jumpwire::Network::new(target).unwrap();
            return AnyListener::Rust(Listener::bind(url, &net).expect(url));
        }
        let (curl, ctarget) = (CString::new(url).unwrap(), CString::new(target).unwrap());
        let mut n: *mut jw_network = null_mut();
        check(jw_network_new(ctarget.as_ptr(), &mut n), "jw_network_new");
        let mut l: *mut jw_listener = null_mut();
        check(jw_listen(curl.as_ptr(), n, &mut l), "jw_listen");
        jw_network_free(n);
        AnyListener::Ffi(l)
    }

    fn address(&self) -> String {
        match self {
            AnyListener::Rust(l) => l.address().to_string(),
            AnyListener::Ffi(l) => {
                let mut buf = [0 as c_char; 256];
                check(
                    jw_listener_address(*l, buf.as_mut_ptr(), buf.len()),
                    "jw_listener_address",
                );
                // SAFETY: jw_listener_address wrote a NUL-terminated string into buf.
                unsafe { CStr::from_ptr(buf.as_ptr()) }
                    .to_str()
                    .unwrap()
                    .to_string()
            }
        }
    }

    fn close(self) {
        match self {
            AnyListener::Rust(l) => l.close(),
            AnyListener::Ffi(l) => jw_listener_close(l),
        }
    }
}

/// Binds `count` listeners in turn (tcp and unix listen URLs; tcp and unix echo
/// targets; every fifth through the C API), forwards one connection through
/// each with a round trip, then closes: a quarter while the forwarded
/// connection is still open (the client must then see EOF), the rest after the
/// client has finished (half of them with a half-close going round first).
fn listeners_round(servers: &Servers, dir: &Path, count: usize) {
    for j in 0..count {
        let sock_path = dir.join(format!("l{j}.sock"));
        let listen = match j % 2 {
            0 => "tcp://127.0.0.1:0".to_string(),
            _ => format!("unix:{}", sock_path.display()),
        };
        let target = if (j / 2) % 2 == 0 {
            &servers.tcp.url
        } else {
            &servers.unix.url
        };
        let l = AnyListener::bind(&listen, target, j % 5 == 0);
        let address = l.address();
        let client = jumpwire::connect(&address, Some(STEP)).expect("connect to listener");
        round_trip(
            &client,
            format!("listener {j} via {address} to {target}").as_bytes(),
        );
        match j % 4 {
            3 => {
                if let AnyListener::Rust(r) = &l {
                    assert_eq!(
                        r.connections(),
                        1,
                        "{address}: the forwarded connection is open"
                    );
                }
                l.close();
                expect_eof(&client);
                client.close();
            }
            1 => {
                client.send_eof().expect("send_eof");
                expect_eof(&client);
                client.close();
                l.close();
            }
            _ => {
                client.close();
                l.close();
            }
        }
        assert!(
            !sock_path.exists(),
            "{address}: close removes the socket file"
        );
    }
}

// ---------------------------------------------------------------- the test

/// A private bus that goes away mid-conversation, `count` times: once under a
/// stream straight to the bus and once under a forwarded connection each time.
/// Everything must end cleanly (the bus's death is EOF or a connection error,
/// within the step) and leave nothing behind.
fn dbus_round(dir: &Path, count: usize) {
    if std::process::Command::new("dbus-daemon")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("dbus-daemon is not installed: run scripts/setup.sh");
    }
    for i in 0..count {
        let bus = dir.join(format!("bus-{i}"));
        let mut daemon = std::process::Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address"])
            .arg(format!("--address=unix:path={}", bus.display()))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting dbus-daemon");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(daemon.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert!(
            line.starts_with("unix:path="),
            "dbus-daemon printed {line:?}"
        );
        let net = jumpwire::Network::new(&format!("dbus:unix:path={}", bus.display())).unwrap();
        let listener = Listener::bind("tcp://127.0.0.1:0", &net).unwrap();
        let direct = net.connect(Some(STEP)).unwrap();
        let forwarded = jumpwire::connect(listener.address(), Some(STEP)).unwrap();
        for s in [&direct, &forwarded] {
            // The start of SASL: the bus answers with the mechanisms it offers.
            s.send(b"\0AUTH\r\n", Some(STEP)).unwrap();
            let mut buf = [0u8; 256];
            let n = s.receive(&mut buf, Some(STEP)).unwrap().unwrap();
            assert!(
                buf[..n].starts_with(b"REJECTED"),
                "{:?}",
                String::from_utf8_lossy(&buf[..n])
            );
        }
        daemon.kill().unwrap();
        daemon.wait().unwrap();
        for s in [&direct, &forwarded] {
            let t0 = Instant::now();
            match s.receive(&mut [0u8; 64], Some(STEP)) {
                Ok(None) | Err(jumpwire::Error::Connection(_)) => {}
                other => panic!("after the bus died: {other:?}"),
            }
            assert!(t0.elapsed() < STEP);
            s.close();
        }
        listener.close();
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn streams_and_listeners_leave_no_threads_or_fds_behind() {
    let dir = TempDir(std::env::temp_dir().join(format!("jw-leaks-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let servers = Servers {
        tcp: tcp_echo(),
        unix: unix_echo(&dir.0.join("echo.sock")),
        udp: udp_echo(),
    };

    // Warm-up: every path once, so lazy process-wide state exists before the baseline.
    streams_round(&servers, 20);
    listeners_round(&servers, &dir.0, 20);
    dbus_round(&dir.0, 1);
    let base = steady();
    eprintln!("baseline (threads, fds): {:?}", base.counts());

    let t0 = Instant::now();
    streams_round(&servers, 1000);
    eprintln!("1000 streams in {:?}", t0.elapsed());
    assert_settles("after 1000 streams", &base);

    let t0 = Instant::now();
    listeners_round(&servers, &dir.0, 100);
    eprintln!("100 listeners in {:?}", t0.elapsed());
    assert_settles("after 100 listeners", &base);

    dbus_round(&dir.0, 10);
    assert_settles("after 10 buses died mid-conversation", &base);

    drop(servers);
}
