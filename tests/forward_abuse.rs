//! Fault and abuse tests against the port-forward listener (issue 11):
//! garbage bytes, peers that vanish mid-way, peers that send one byte per
//! second, 2,000 connections that connect and never send (against
//! `max_connections`), and a process that runs out of descriptors
//! (`RLIMIT_NOFILE` lowered in a child process). After each, the listener
//! serves a good client at once, its refusals are counted and logged, and the
//! process's thread and descriptor counts return to what they were.
//!
//! The tests share the process's counts, so they run one at a time.

mod common;

use common::routing::counts_back_to;
use common::*;
use jumpwire::Network;
use jumpwire::forward::Listener;
use socket2::SockRef;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What "at once" means for a good client after an abuse.
const AT_ONCE: Duration = Duration::from_millis(500);

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------- logs

/// How many captured log lines contain every one of `parts`.
fn logged(parts: &[&str]) -> usize {
    common::logcap::count(parts)
}

// ---------------------------------------------------------------- target

/// A TCP echo target on 127.0.0.1, one thread per connection; stopping it
/// joins every thread (connections end when the forward ends them).
struct Target {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Target {
    fn start() -> Target {
        Target::serving(echo)
    }

    /// A target that serves each connection with `serve`.
    fn serving(serve: fn(TcpStream)) -> Target {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (s, n) = (stop.clone(), accepted.clone());
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            for c in l.incoming() {
                if s.load(Ordering::Acquire) {
                    break; // the wake-up connection of `drop`
                }
                let c = c.expect("target accept");
                n.fetch_add(1, Ordering::Relaxed);
                conns.push(std::thread::spawn(move || serve(c)));
            }
            for c in conns {
                c.join().expect("target connection thread");
            }
        });
        Target {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn network(&self) -> Network {
        Network::new(&format!("tcp://{}", self.addr)).unwrap()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            t.join().expect("target thread");
        }
    }
}

/// Reads the first bytes, then resets the connection (SO_LINGER 0).
fn reset_after_hello(mut c: TcpStream) {
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = c.read(&mut [0u8; 16]);
    SockRef::from(&c).set_linger(Some(Duration::ZERO)).unwrap();
}

/// Echoes until EOF or an error (its reads give up after 30 s).
fn echo(mut c: TcpStream) {
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if c.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
    let _ = c.shutdown(Shutdown::Write);
}

// ---------------------------------------------------------------- clients

fn listener_addr(l: &Listener) -> SocketAddr {
    l.address()
        .strip_prefix("tcp://")
        .expect("a tcp listener")
        .parse()
        .unwrap()
}

fn connect(addr: SocketAddr) -> TcpStream {
    try_connect(addr).expect("connect")
}

/// A connect whose reset may come before the connect call returns.
fn try_connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let c = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    Ok(c)
}

/// A good client: a round trip through the listener, answered within
/// [`AT_ONCE`], then a clean end both ways.
#[track_caller]
fn good_client(addr: SocketAddr) {
    let t0 = Instant::now();
    let mut c = connect(addr);
    c.write_all(b"good client").unwrap();
    let mut buf = [0u8; 11];
    c.read_exact(&mut buf).expect("the good client's echo");
    assert_eq!(&buf, b"good client");
    let took = t0.elapsed();
    assert!(took < AT_ONCE, "the good client waited {took:?}");
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(c.read(&mut buf).unwrap(), 0, "EOF after the echo");
}

/// Waits (bounded) until `f` holds.
#[track_caller]
fn wait_for(what: &str, within: Duration, f: impl Fn() -> bool) {
    let until = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < until, "waited {within:?} for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A listener on 127.0.0.1 forwarding to a fresh echo target, warmed up by
/// one good client, and the process's counts with both running.
fn setup(query: &str) -> (Target, Listener, (usize, usize)) {
    logged(&[]); // installs the logger
    let target = Target::start();
    let l = Listener::bind(&format!("tcp://127.0.0.1:0{query}"), &target.network()).unwrap();
    good_client(listener_addr(&l));
    wait_for("the warm-up to end", SLACK, || l.connections() == 0);
    (target, l, steady(Duration::from_secs(5)))
}

/// The end of every abuse: no connection left, a good client served at once,
/// and the counts back at `base`.
#[track_caller]
fn still_serves(l: &Listener, base: (usize, usize)) {
    wait_for("every connection to end", SLACK, || l.connections() == 0);
    good_client(listener_addr(l));
    wait_for("the good client's connection to end", SLACK, || {
        l.connections() == 0
    });
    assert_eq!(
        counts_back_to(base),
        base,
        "(threads, fds) vs. the baseline"
    );
}

// ---------------------------------------------------------------- the abuses

#[test]
fn garbage_and_vanishing_clients_leave_the_listener_serving() {
    let _s = serial();
    let (_target, l, base) = setup("");
    let addr = listener_addr(&l);
    // Garbage is only bytes to a forward: each comes back intact.
    std::thread::scope(|s| {
        for i in 0..40u64 {
            s.spawn(move || {
                let junk = pattern(1 + (i as usize * 7919) % 200_000, i);
                let mut c = connect(addr);
                let mut r = c.try_clone().unwrap();
                let back = std::thread::spawn(move || {
                    let mut got = Vec::new();
                    r.read_to_end(&mut got).expect("the echo of the garbage");
                    got
                });
                c.write_all(&junk).unwrap();
                c.shutdown(Shutdown::Write).unwrap();
                assert!(
                    back.join().unwrap() == junk,
                    "garbage {i} came back changed"
                );
            });
        }
    });
    // Clients that vanish mid-way: with a reset, or closing with unread data.
    for i in 0..40u64 {
        let mut c = connect(addr);
        c.write_all(&pattern(100_000, i)).unwrap();
        if i % 2 == 0 {
            SockRef::from(&c).set_linger(Some(Duration::ZERO)).unwrap();
        }
        drop(c);
    }
    still_serves(&l, base);
    assert_eq!(l.refused(), 0);
}

#[test]
fn a_target_that_resets_resets_each_client_and_leaks_nothing() {
    let _s = serial();
    let target = Target::serving(reset_after_hello);
    let l = Listener::bind("tcp://127.0.0.1:0", &target.network()).unwrap();
    let addr = listener_addr(&l);
    let base = steady(Duration::from_secs(5));
    std::thread::scope(|s| {
        for _ in 0..50 {
            s.spawn(|| {
                let mut c = connect(addr);
                c.write_all(b"hello").unwrap();
                match c.read(&mut [0u8; 16]) {
                    Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
                    other => panic!("a client of a resetting target saw {other:?}"),
                }
            });
        }
    });
    wait_for("every connection to end", SLACK, || l.connections() == 0);
    assert_eq!(
        counts_back_to(base),
        base,
        "(threads, fds) vs. the baseline"
    );
    assert_eq!(target.accepted.load(Ordering::Relaxed), 50);
}

#[test]
fn peers_sending_one_byte_per_second_do_not_hold_up_others() {
    let _s = serial();
    let (_target, l, base) = setup("");
    let addr = listener_addr(&l);
    let slow: Vec<TcpStream> = (0..20).map(|_| connect(addr)).collect();
    // Three bytes a second apart from each slow peer; each comes back
    // promptly, and a good client is served at once meanwhile.
    for round in 0..3u8 {
        if round > 0 {
            // The pace of the peer under test, not a synchronisation.
            std::thread::sleep(Duration::from_secs(1));
        }
        for mut c in &slow {
            c.write_all(&[b'a' + round]).unwrap();
        }
        for mut c in &slow {
            let t0 = Instant::now();
            let mut b = [0u8; 1];
            c.read_exact(&mut b).unwrap();
            assert_eq!(b[0], b'a' + round);
            assert!(t0.elapsed() < AT_ONCE, "a byte took {:?}", t0.elapsed());
        }
        good_client(addr);
    }
    wait_for("the good client's connection to end", SLACK, || {
        l.connections() == 20
    });
    drop(slow);
    still_serves(&l, base);
}

#[test]
fn two_thousand_silent_connections_are_bounded_by_max_connections() {
    const MAX: usize = 256;
    const N: usize = 2000;
    let _s = serial();
    let (target, l, base) = setup(&format!("?max_connections={MAX}"));
    let addr = listener_addr(&l);
    let accepted_before = target.accepted.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let clients: Vec<_> = (0..N).map(|_| try_connect(addr)).collect();
    wait_for("every connection to be taken or refused", SLACK * 3, || {
        l.refused() == (N - MAX) as u64
    });
    eprintln!("{N} connections in {:?}", t0.elapsed());
    assert_eq!(l.connections(), MAX);
    // Each forwarded connection opened one target connection; the refused
    // ones were reset, the others are open and silent.
    wait_for("the target connections", SLACK, || {
        target.accepted.load(Ordering::Relaxed) - accepted_before == MAX
    });
    let (mut reset, mut open) = (0, 0);
    for c in &clients {
        let c = match c {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                reset += 1;
                continue;
            }
            Err(e) => panic!("connect: {e}"),
        };
        c.set_nonblocking(true).unwrap();
        match (&*c).read(&mut [0u8; 1]) {
            Err(e) if e.kind() == ErrorKind::ConnectionReset => reset += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => open += 1,
            other => panic!("a silent client saw {other:?}"),
        }
    }
    assert_eq!((reset, open), (N - MAX, MAX));
    assert_eq!(
        logged(&[
            l.address(),
            "refusing",
            "connections are open (the maximum)"
        ]),
        N - MAX,
        "each refusal is logged"
    );
    drop(clients);
    still_serves(&l, base);
    assert_eq!(l.refused(), (N - MAX) as u64);
}

/// The parent's half of the descriptor test: runs
/// [`out_of_descriptors_child`] with `RLIMIT_NOFILE` lowered, and plays the
/// clients from here.
#[test]
fn running_out_of_descriptors_refuses_then_serves_again() {
    let _s = serial();
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 128 && exec \"$0\" \"$@\"")
        .arg(&exe)
        .args([
            "out_of_descriptors_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running the test binary again");
    let pid = child.id();
    let mut to_child = child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The harness may have begun the line ("test … ").
            if let Some(at) = line.find("CHILD ") {
                let _ = tx.send(line[at + 6..].to_string());
            }
        }
    });
    let hear = |what: &str| -> String {
        let said = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("the child did not say {what:?}"));
        assert!(said.starts_with(what), "expected {what:?}, got {said:?}");
        said[what.len()..].trim().to_string()
    };
    let mut tell = |what: &str| writeln!(to_child, "{what}").expect("telling the child");

    let addr: SocketAddr = hear("listening")
        .strip_prefix("tcp://")
        .unwrap()
        .parse()
        .unwrap();
    good_client(addr);
    tell("fill");
    let filled = hear("full");
    eprintln!("the child opened {filled} descriptors to run out");
    // Out of descriptors: each client is reset at once, not left waiting.
    let cpu0 = cpu_ticks(pid);
    let t0 = Instant::now();
    for _ in 0..20 {
        let r = try_connect(addr).and_then(|mut c| {
            c.set_read_timeout(Some(AT_ONCE)).unwrap();
            c.read(&mut [0u8; 8])
        });
        match r {
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("a client while out of descriptors saw {other:?}"),
        }
    }
    // The loop must not spin meanwhile: at most a tenth of a core.
    std::thread::sleep(Duration::from_millis(500));
    let (ticks, took) = (cpu_ticks(pid) - cpu0, t0.elapsed());
    let ms = ticks * 10; // 100 ticks a second
    assert!(
        (ms as u128) < took.as_millis() / 10 + 30,
        "the child used {ms} ms of CPU in {took:?} while out of descriptors"
    );
    tell("free");
    hear("free");
    good_client(addr);
    tell("check");
    let report = hear("counts");
    eprintln!("child: {report}");
    tell("quit");
    let status = wait_child(&mut child, Duration::from_secs(20));
    reader.join().unwrap();
    assert!(
        status.success(),
        "the child failed: {status}; said {report}"
    );
}

/// utime + stime of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn wait_child(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let until = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("the child did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The child's half of [`running_out_of_descriptors_refuses_then_serves_again`]:
/// a listener in a process with few descriptors, driven by lines on stdin.
#[test]
#[ignore = "run by running_out_of_descriptors_refuses_then_serves_again in a child process"]
fn out_of_descriptors_child() {
    let say = |what: String| {
        println!("CHILD {what}");
        std::io::stdout().flush().unwrap();
    };
    logged(&[]); // installs the logger
    let target = Target::start();
    let l = Listener::bind("tcp://127.0.0.1:0", &target.network()).unwrap();
    say(format!("listening {}", l.address()));
    let mut hog = Vec::new();
    let mut base = (0, 0);
    for line in std::io::stdin().lines() {
        match line.unwrap().as_str() {
            "fill" => {
                wait_for("the warm-up to end", SLACK, || l.connections() == 0);
                base = steady(Duration::from_secs(5));
                loop {
                    match std::fs::File::open("/dev/null") {
                        Ok(f) => hog.push(f),
                        Err(e) if e.raw_os_error() == Some(24) => break, // EMFILE
                        Err(e) => panic!("{e}"),
                    }
                }
                say(format!("full {}", hog.len()));
            }
            "free" => {
                hog.clear();
                say("free".into());
            }
            "check" => {
                wait_for("every connection to end", SLACK, || l.connections() == 0);
                let after = counts_back_to(base);
                let refused = l.refused();
                let lines = logged(&[l.address(), "accept failed", "reset a client"]);
                say(format!(
                    "counts {base:?} -> {after:?}, {refused} refused, {lines} log lines"
                ));
                assert_eq!(after, base, "(threads, fds) vs. the baseline");
                assert_eq!(refused, 20, "every client reset is counted");
                assert!(lines >= 1, "the refusals are logged");
            }
            "quit" => break,
            other => panic!("unknown command {other:?}"),
        }
    }
    drop(l);
}
