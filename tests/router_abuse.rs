//! Faults and hostile input against the router server and its callers
//! (issues 11 and 17): a caller that cancels its call or whose connection is
//! cut ends its peer's call at once (waiter and pairer, `grpc://` and
//! `grpcs://`); a waiter that cancels is forgotten at once; garbage bytes, a
//! peer sending one byte per second, a 1 MiB header, a gRPC message that
//! claims 4 GiB, 2,000 connections that never finish a handshake
//! (plaintext and TLS), and a router out of descriptors (a child process
//! with `RLIMIT_NOFILE` lowered). After each: a good pair forms at once,
//! thread and descriptor counts are back to where they were, and every
//! refusal is logged and counted. Also: a close with unsent data when the
//! peer is gone, and blocking calls against silent servers, bounded by
//! their timeouts.
//!
//! The hostile inputs run on `grpc://` and `grpcs://` alike (over TLS: the
//! garbage where the TLS handshake is expected, the rest inside a TLS
//! session). The router out of descriptors is checked in its child for
//! thread and descriptor counts back at its baseline and for every refusal
//! logged. Each case prints a line
//! `CASE <name>: <outcome>; threads a->b, fds a->b, refused n`
//! (`--nocapture`).
//!
//! The tests of this file run one at a time (they count the process's
//! threads and descriptors).

mod common;

use common::routing::*;
use common::*;
use jumpwire::Error;
use jumpwire::router::{self, Router, token};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const KEY: &str = "abuse-test-key";

/// One test at a time: they count the process's threads and descriptors.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn tok(id: &str) -> String {
    token::mint(KEY, id, Duration::from_secs(60)).unwrap()
}

/// Counts the router's log lines that say it refused something, per
/// router address.
struct Refusals;

static LOGGED: Mutex<Vec<String>> = Mutex::new(Vec::new());

impl log::Log for Refusals {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info
    }

    fn log(&self, r: &log::Record<'_>) {
        let line = r.args().to_string();
        if line.contains(": refused ") || line.contains("before its peer came") {
            LOGGED.lock().unwrap().push(line);
        }
    }

    fn flush(&self) {}
}

/// Waits (10 s at most) until the router has logged that the waiting
/// caller of stream `id` left.
fn forgotten(id: &str) {
    let want = format!("left stream {id:?} before its peer came");
    let until = Instant::now() + Duration::from_secs(10);
    while !LOGGED.lock().unwrap().iter().any(|l| l.contains(&want)) {
        assert!(
            Instant::now() < until,
            "the waiter of {id} was not forgotten"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn logged_refusals(r: &Router) -> u64 {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        log::set_logger(&Refusals)
            .expect("another logger is installed (JW_LOG set?): this file reads the router's log");
        log::set_max_level(log::LevelFilter::Info);
    });
    let me = format!("router {}: refused ", r.address());
    LOGGED
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with(&me))
        .count() as u64
}

/// A router with test-sized bounds: a connection must open a call within
/// `within`; at most `pending` wait for one.
fn router(scheme: &str, within: Duration, pending: usize) -> Router {
    let r = Router::serve_limited(
        &format!("{scheme}://127.0.0.1:0?key={KEY}"),
        within,
        pending,
    )
    .unwrap();
    logged_refusals(&r);
    r
}

/// The URL a jumpwire client dials `r` with (trusting its certificate).
fn client_url(r: &Router, dir: &TempDir) -> String {
    match r.certificate() {
        Some(pem) => {
            let ca = dir.path().join("ca.pem");
            std::fs::write(&ca, pem).unwrap();
            format!("{}?ca={}", r.address(), ca.display())
        }
        None => r.address().to_string(),
    }
}

/// A good pair forms at once and exchanges both ways.
fn good_pair(url: &str, id: &str) {
    let t0 = Instant::now();
    let (a, b) = pair_at(url, KEY, id);
    ping_pong(&a, &b, 0);
    a.close();
    b.close();
    assert!(t0.elapsed() < SLACK, "a good pair took {:?}", t0.elapsed());
}

/// What one fault did: printed as a row of the table in the report and as
/// a `CASE` line (`refused`: the refusals it added).
fn row(fault: &str, outcome: &str, before: (usize, usize), after: (usize, usize), refused: u64) {
    eprintln!(
        "| {fault} | {outcome} | {}/{} | {}/{} |",
        before.0, before.1, after.0, after.1
    );
    println!("{}", case_line(fault, outcome, before, after, refused));
    assert_eq!(after, before, "{fault}: threads/fds not back to baseline");
}

/// Receives until an error or EOF, within 5 s: what ended it, and when.
fn end_of(s: &jumpwire::Stream) -> (jumpwire::Result<Option<usize>>, Duration) {
    let t0 = Instant::now();
    loop {
        match s.receive(&mut [0u8; 64], Some(Duration::from_secs(5))) {
            Ok(Some(_)) => {}
            other => return (other, t0.elapsed()),
        }
    }
}

// ---------------------------------------------------------------------------
// A caller going ends its peer's call at once (issue 11, defect 2)
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Goes {
    Cancels,
    IsCut,
}

/// The raw caller pairs with a jumpwire stream (as the waiter when
/// `raw_first`, else as the pairer), "hi" crosses, then the raw caller goes:
/// the jumpwire stream's receive fails within 1 s, and its send fails.
fn survivor_ends(scheme: &str, raw_first: bool, goes: Goes) {
    let dir = TempDir::new("abuse-survivor");
    let r = router(scheme, Duration::from_secs(5), 256);
    let url = client_url(&r, &dir);
    let id = format!("survivor-{raw_first}-{goes:?}");
    let t = tok(&id);
    let (mut raw, s) = if raw_first {
        let raw = raw_call(&r, &t);
        (raw, router::connect(&url, &t, LONG).unwrap())
    } else {
        let s = router::connect(&url, &t, LONG).unwrap();
        (raw_call(&r, &t), s)
    };
    raw.paired();
    raw.send_raw(grpc_data(b"hi"));
    assert_eq!(recv_exact(&s, 2, 16, Duration::from_secs(10)), b"hi");
    match goes {
        Goes::Cancels => raw.cancel(),
        Goes::IsCut => raw.cut(),
    }
    let (end, took) = end_of(&s);
    assert!(
        matches!(end, Err(Error::Connection(_))),
        "{scheme} raw_first={raw_first} {goes:?}: {end:?}"
    );
    assert!(took < Duration::from_secs(1), "{scheme} {goes:?}: {took:?}");
    assert!(s.send(b"more", LONG).is_err());
    s.close();
    // The token pairs again.
    good_pair(&url, &id);
}

/// A caller that ends its request stream without a GOAWAY (or with a message
/// cut after its header, which the gRPC layer takes for the same) and stays:
/// its peer sees the end of that direction within about a second, instead
/// of waiting forever (found by the router_frames fuzz target).
#[test]
fn a_request_stream_that_ends_without_goaway_is_an_end_for_the_peer() {
    let _one = serial();
    let dir = TempDir::new("abuse-no-goaway");
    let r = router("grpc", Duration::from_secs(5), 256);
    let url = client_url(&r, &dir);
    for (i, tail) in [&b""[..], &[0u8, 0, 0, 0, 9][..]].into_iter().enumerate() {
        let t = tok(&format!("no-goaway-{i}"));
        let mut raw = raw_call(&r, &t);
        let s = router::connect(&url, &t, LONG).unwrap();
        raw.paired();
        raw.send_raw(grpc_data(b"hi"));
        raw.send
            .send_data(bytes::Bytes::copy_from_slice(tail), true)
            .unwrap();
        assert_eq!(recv_exact(&s, 2, 16, Duration::from_secs(10)), b"hi");
        let (end, took) = end_of(&s);
        assert!(matches!(end, Ok(None)), "tail {tail:?}: {end:?}");
        assert!(took < Duration::from_secs(2), "tail {tail:?}: {took:?}");
        s.close();
        drop(raw);
    }
}

#[test]
fn a_caller_that_cancels_or_is_cut_ends_its_peer_at_once() {
    let _one = serial();
    for scheme in ["grpc", "grpcs"] {
        for raw_first in [true, false] {
            for goes in [Goes::Cancels, Goes::IsCut] {
                survivor_ends(scheme, raw_first, goes);
            }
        }
    }
}

/// A waiting caller that cancels (or is cut) is forgotten at once (the
/// router says so in its log within 1 s): the next two callers of its token
/// pair with each other.
#[test]
fn a_waiter_that_cancels_is_forgotten_at_once() {
    let _one = serial();
    for scheme in ["grpc", "grpcs"] {
        let dir = TempDir::new("abuse-waiter");
        let r = router(scheme, Duration::from_secs(5), 256);
        let url = client_url(&r, &dir);
        for goes in [Goes::Cancels, Goes::IsCut] {
            let id = format!("waiter-{goes:?}");
            let mut raw = raw_call(&r, &tok(&id));
            // The router has the call once a PING after it comes back.
            raw.sync();
            let t0 = Instant::now();
            match goes {
                Goes::Cancels => raw.cancel(),
                Goes::IsCut => raw.cut(),
            }
            forgotten(&id);
            assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
            good_pair(&url, &id);
        }
    }
}

// ---------------------------------------------------------------------------
// Hostile input, one kind at a time, each followed by a good pair
// ---------------------------------------------------------------------------

/// A connection to a router: plain TCP, or a TLS session (`grpcs://`).
enum Wire {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Wire {
    fn tcp(&self) -> &TcpStream {
        match self {
            Wire::Plain(c) => c,
            Wire::Tls(s) => &s.sock,
        }
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Wire::Plain(c) => c.read(buf),
            Wire::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Wire::Plain(c) => c.write(buf),
            Wire::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Wire::Plain(c) => c.flush(),
            Wire::Tls(s) => s.flush(),
        }
    }
}

/// A connection to `r`: over TLS (handshake done, ALPN h2, trusting the
/// router's own certificate) for a `grpcs://` router.
fn wire_to(r: &Router) -> Wire {
    use rustls::pki_types::ServerName;
    let c = tcp_to(r);
    let Some(pem) = r.certificate() else {
        return Wire::Plain(c);
    };
    let cfg = tls_client_config(pem);
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, c);
    s.sock.set_read_timeout(Some(SLACK)).unwrap();
    s.sock.set_write_timeout(Some(SLACK)).unwrap();
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).expect("the TLS handshake");
    }
    Wire::Tls(Box::new(s))
}

/// Reads until the router closes the connection (EOF or reset; over TLS,
/// any end of the session), within `within`; panics if it stays open.
fn closed_by_router(mut c: Wire, within: Duration) -> Duration {
    let t0 = Instant::now();
    c.tcp().set_read_timeout(Some(within)).unwrap();
    let tls = matches!(c, Wire::Tls(_));
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return t0.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return t0.elapsed(),
            Err(e)
                if tls
                    && !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
            {
                return t0.elapsed();
            }
            Err(e) => panic!("the router kept the connection open: {e}"),
        }
        assert!(t0.elapsed() < within, "the router kept the connection open");
    }
}

fn tcp_to(r: &Router) -> TcpStream {
    let addr = r.address().split_once("://").unwrap().1;
    TcpStream::connect(addr).unwrap()
}

/// An HTTP/2 frame header: length, type, flags, stream.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let n = payload.len() as u32;
    let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The client preface and an empty SETTINGS frame.
fn preface() -> Vec<u8> {
    let mut p = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    p.extend(h2_frame(4, 0, 0, &[]));
    p
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541, 5.1).
fn hpack_int(first: u8, n: u8, mut v: usize, out: &mut Vec<u8>) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128 + 128) as u8);
        v /= 128;
    }
    out.push(v as u8);
}

/// One hostile input on a plaintext and on a TLS router with a 1 s bound for
/// the first call: the router closes the connection, counts and logs the
/// refusal, serves a good pair at once, and its counts come back.
#[test]
fn hostile_input_is_refused_and_the_router_goes_on() {
    let _one = serial();
    for scheme in ["grpc", "grpcs"] {
        hostile_input(scheme);
    }
}

fn hostile_input(scheme: &str) {
    let dir = TempDir::new("abuse-hostile");
    let r = router(scheme, Duration::from_secs(1), 64);
    let url = client_url(&r, &dir);
    good_pair(&url, "warm-up");
    let before = counts_back_to(counts());
    let mut n = 0;
    // `refused`: how many refusals the fault should have added.
    let mut check = |fault: &str, outcome: &str, refused: u64| {
        n += refused;
        good_pair(&url, &format!("after-{fault}"));
        let after = counts_back_to(before);
        assert_eq!(r.refused(), n, "{fault}: refusals counted");
        assert_eq!(logged_refusals(&r), n, "{fault}: refusals logged");
        row(
            &format!("{fault} ({scheme})"),
            &format!("{outcome}; {refused} logged"),
            before,
            after,
            refused,
        );
    };

    // Garbage bytes (over TLS: where the TLS handshake is expected).
    let mut c = tcp_to(&r);
    c.write_all(&pattern(4096, 1)).unwrap();
    let took = closed_by_router(Wire::Plain(c), SLACK);
    check("4 KiB of garbage", &format!("closed after {took:?}"), 1);

    // One byte per second (of a valid preface): closed at the bound.
    let mut c = wire_to(&r);
    let mut sent = 0;
    let t0 = Instant::now();
    c.tcp()
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let took = loop {
        if c.write_all(&preface()[sent..=sent]).is_err() {
            break t0.elapsed();
        }
        sent += 1;
        // Reads for a second (the router's SETTINGS come at once).
        match c.read(&mut [0u8; 256]) {
            Ok(0) => break t0.elapsed(),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break t0.elapsed(),
            Ok(_) => {}
        }
        assert!(t0.elapsed() < SLACK, "a slow peer was kept");
    };
    assert!(took < Duration::from_millis(2500), "{took:?}");
    drop(c);
    check(
        "1 byte/s",
        &format!("closed after {took:?} ({sent} bytes)"),
        1,
    );

    // A 1 MiB header: HEADERS and CONTINUATION frames, never ending.
    let c = wire_to(&r);
    let mut block = vec![0x00];
    hpack_int(0, 7, 1, &mut block);
    block.push(b'x');
    hpack_int(0, 7, 1 << 20, &mut block);
    block.resize(block.len() + (1 << 20), b'a');
    let mut wire = preface();
    let mut chunks = block.chunks(16 << 10);
    wire.extend(h2_frame(1, 0, 1, chunks.next().unwrap()));
    for ch in chunks {
        wire.extend(h2_frame(9, 0, 1, ch));
    }
    let took = match c {
        Wire::Plain(c) => {
            let writer = {
                let mut c = c.try_clone().unwrap();
                std::thread::spawn(move || c.write_all(&wire).is_ok())
            };
            let took = closed_by_router(Wire::Plain(c), SLACK);
            let _ = join(writer);
            took
        }
        // A TLS session cannot be shared by two threads: the writes (each
        // bounded by the write timeout) fail once the router closes.
        mut c => {
            let t0 = Instant::now();
            let _ = c.write_all(&wire);
            t0.elapsed() + closed_by_router(c, SLACK)
        }
    };
    check("1 MiB header", &format!("closed after {took:?}"), 1);

    // A gRPC message claiming 4 GiB, inside a paired call: the pair fails,
    // the peer gets an error (logged as a failed pair; no connection or
    // call is refused: both were admitted).
    let t = tok("huge");
    let mut raw = raw_call(&r, &t);
    let s = router::connect(&url, &t, LONG).unwrap();
    raw.paired();
    let mut claim = vec![0u8, 0xff, 0xff, 0xff, 0xff];
    claim.extend_from_slice(&[0u8; 1024]);
    raw.send_raw(claim.into());
    let (end, took) = end_of(&s);
    assert!(matches!(end, Err(Error::Connection(_))), "{end:?}");
    raw.cut();
    s.close();
    drop(s);
    check(
        "gRPC message claiming 4 GiB",
        &format!("pair failed after {took:?}: {:?}", end.unwrap_err()),
        0,
    );
}

/// 2,000 connections that never finish a handshake (HTTP/2 over plain TCP,
/// TLS): all are refused and counted (at once past the limits, at their
/// end for the rest), a good pair forms meanwhile and after, the counts
/// come back.
#[test]
fn two_thousand_connections_that_never_finish_a_handshake() {
    let _one = serial();
    const N: usize = 2000;
    for scheme in ["grpc", "grpcs"] {
        let dir = TempDir::new("abuse-flood");
        let r = router(scheme, Duration::from_secs(5), 256);
        let url = client_url(&r, &dir);
        good_pair(&url, "warm-up");
        let before = counts_back_to(counts());
        let t0 = Instant::now();
        // In bursts of 100, each refused before the next (past the limits
        // the router refuses each burst at once): a burst larger than the
        // listen backlog (128 here) has SYNs dropped and sent again a
        // second later, which makes the test slow, not the router.
        let mut flood = Vec::with_capacity(N);
        for _ in 0..N / 100 {
            flood.extend((0..100).map(|_| tcp_to(&r)));
            let want = flood.len().saturating_sub(256) as u64;
            let until = Instant::now() + SLACK;
            while r.refused() < want && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let at_once = r.refused();
        assert!(at_once >= (N - 256) as u64, "{scheme}: {at_once} refused");
        // Plaintext: a good pair still forms while the rest wait (a
        // newcomer closes the oldest silent one). TLS: the handshake slots
        // are full until they time out or go.
        if scheme == "grpc" {
            good_pair(&url, "during");
        }
        drop(flood);
        let until = Instant::now() + SLACK;
        while r.refused() < N as u64 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(r.refused(), N as u64, "{scheme}: every one counted");
        assert_eq!(logged_refusals(&r), N as u64, "{scheme}: every one logged");
        good_pair(&url, "after");
        let after = counts_back_to(before);
        row(
            &format!("{N} connections, no handshake ({scheme})"),
            &format!(
                "{at_once} refused at once, the rest at their end; all {N} in {:?}; {N} logged",
                t0.elapsed()
            ),
            before,
            after,
            N as u64,
        );
    }
}

// ---------------------------------------------------------------------------
// Out of descriptors: a router in a child process with RLIMIT_NOFILE 128
// ---------------------------------------------------------------------------

const CHILD: &str = "router_in_a_child_with_few_descriptors";

/// Run by [`a_router_out_of_descriptors_still_serves_good_clients`] in a
/// child process (`ulimit -n 128`): serves a router and prints its address;
/// at `base` takes its (threads, fds) baseline (printed); at `stats` prints
/// how many it refused; at `check` waits for the counts to come back to the
/// baseline and checks that, and that every refusal was logged; ends at EOF.
#[test]
#[ignore = "run by a_router_out_of_descriptors_still_serves_good_clients in a child process"]
fn router_in_a_child_with_few_descriptors() {
    let r = Router::serve(&format!("grpc://127.0.0.1:0?key={KEY}")).unwrap();
    logged_refusals(&r); // installs the logger
    println!("ADDRESS {}", r.address());
    let mut line = String::new();
    let mut base = (0, 0);
    while std::io::stdin().read_line(&mut line).unwrap_or(0) > 0 {
        match line.trim() {
            "base" => {
                base = steady(Duration::from_secs(5));
                println!("BASE {base:?}");
            }
            "stats" => println!("REFUSED {}", r.refused()),
            "check" => {
                let after = counts_back_to(base);
                let (refused, logged) = (r.refused(), logged_refusals(&r));
                println!(
                    "CHECK threads {}->{}, fds {}->{}, refused {refused}, logged {logged}",
                    base.0, after.0, base.1, after.1
                );
                assert_eq!(after, base, "the child's (threads, fds) vs. its baseline");
                assert_eq!(logged, refused, "every refusal logged");
            }
            other => panic!("unknown command {other:?}"),
        }
        line.clear();
    }
}

#[test]
fn a_router_out_of_descriptors_still_serves_good_clients() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let _one = serial();
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -n 128 && exec \"$0\" \"$@\""])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            CHILD,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The child's lines, read on a thread: every wait for one is bounded.
    let lines = {
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    return;
                }
            }
        });
        rx
    };
    let mut stdin = child.stdin.take().unwrap();
    let read_tagged = |tag: &str| loop {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("no line from the child within 20 s");
        // The harness's "test NAME ... " may come first on the line.
        if let Some(at) = line.find(tag) {
            break line[at + tag.len()..].trim().to_string();
        }
    };
    let url = read_tagged("ADDRESS");
    let addr = url.split_once("://").unwrap().1.to_string();
    good_pair(&url, "warm-up");
    writeln!(stdin, "base").unwrap();
    read_tagged("BASE");
    // 200 silent connections: more than the router has descriptors.
    let silent: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    let t0 = Instant::now();
    good_pair(&url, "few-fds");
    let took = t0.elapsed();
    writeln!(stdin, "stats").unwrap();
    let refused: u64 = read_tagged("REFUSED").parse().unwrap();
    assert!(refused >= 70, "{refused} refused");
    // CPU time spent meanwhile: the accept loop does not spin.
    let cpu = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let f: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let c0 = cpu(child.id());
    let more: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let spent = cpu(child.id()) - c0;
    assert!(spent < 25, "the child spent {spent} ticks in 0.5 s");
    good_pair(&url, "few-fds-again");
    drop((silent, more));
    writeln!(stdin, "check").unwrap();
    let check = read_tagged("CHECK");
    drop(stdin);
    assert!(child.wait().unwrap().success(), "the child failed: {check}");
    let logged = check.rsplit_once("logged ").unwrap().1;
    let counts = check.rsplit_once(", refused").unwrap().0;
    let refused_all = check.split_once("refused ").unwrap().1;
    let refused_all = refused_all.split_once(',').unwrap().0;
    eprintln!(
        "| 200+50 silent connections, RLIMIT_NOFILE 128 (child) | good pair in {took:?}; {refused} refused; {spent} CPU ticks in 0.5 s | child | child |"
    );
    println!(
        "CASE 200+50 silent connections, RLIMIT_NOFILE 128 (child): good pair in {took:?}; \
         {refused} refused at the first good pair; {spent} CPU ticks in 0.5 s; {logged} logged; \
         {counts}, refused {refused_all}"
    );
}

// ---------------------------------------------------------------------------
// Close with unsent data when the peer is gone; timeouts honoured
// ---------------------------------------------------------------------------

/// A stream that queued more than the windows hold, whose peer is cut:
/// its receive fails at once, and `close` takes less than 100 ms (no grace
/// for a peer that is gone).
#[test]
fn close_with_unsent_data_after_the_peer_is_gone_is_quick() {
    let _one = serial();
    let r = router("grpc", Duration::from_secs(5), 256);
    let t = tok("unsent");
    let mut raw = raw_call(&r, &t);
    let s = router::connect(r.address(), &t, LONG).unwrap();
    raw.paired();
    // 12 MiB: more than the windows and the queue; the rest is left to the
    // library when the send's time is up.
    let _ = s.send(&pattern(12 << 20, 3), ms(300));
    raw.cut();
    let (end, _) = end_of(&s);
    assert!(matches!(end, Err(Error::Connection(_))), "{end:?}");
    let ((), took) = timed(|| s.close());
    assert!(took < Duration::from_millis(100), "close took {took:?}");
}

/// Accepts TCP connections and never says a word.
fn silent_server() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap().to_string();
    (l, a)
}

#[track_caller]
fn within_timeout(took: Duration, timeout: Duration) {
    assert!(
        took < timeout + Duration::from_millis(100),
        "took {took:?} for a {timeout:?} timeout"
    );
}

#[test]
fn blocking_calls_against_silent_peers_return_within_their_timeout() {
    let _one = serial();
    let t500 = Duration::from_millis(500);
    let (_l, silent) = silent_server();
    let echo = tcp_echo_server("127.0.0.1:0");
    let target = jumpwire::Network::new(&format!("tcp://{echo}")).unwrap();
    for url in [
        format!("grpc://{silent}"),
        format!("grpcs://{silent}?insecure=1"),
    ] {
        let (res, took) = timed(|| router::connect(&url, &tok("s"), Some(t500)));
        assert_timeout(res);
        within_timeout(took, t500);
        let (res, took) = timed(|| router::export(&url, &tok("s"), &target, Some(t500)));
        assert_eq!(res, Err(Error::Timeout), "{url}");
        within_timeout(took, t500);
    }
    // A full backlog: the TCP handshake never completes.
    let (_b, _fill, addr) = full_backlog();
    let (res, took) = timed(|| router::connect(&format!("grpc://{addr}"), &tok("b"), Some(t500)));
    assert_timeout(res);
    within_timeout(took, t500);
    // Export with no client coming: a timeout, and the call is forgotten.
    let r = router("grpc", Duration::from_secs(5), 256);
    let (res, took) = timed(|| router::export(r.address(), &tok("alone"), &target, Some(t500)));
    assert_eq!(res, Err(Error::Timeout));
    within_timeout(took, t500);
    good_pair(r.address(), "alone");
}

// ---------------------------------------------------------------------------
// Integrity under faults
// ---------------------------------------------------------------------------

/// 64 MiB through client -> router -> exporter -> TCP echo target, the
/// target reset after 20 MiB: the client's receive ends with an error (not
/// a clean EOF: the target did not finish), in time, after a prefix of the
/// data, byte for byte; the export fails too.
#[test]
fn sixty_four_mib_with_the_target_killed_midway_is_never_a_success() {
    let _one = serial();
    let r = router("grpc", Duration::from_secs(5), 256);
    let t = tok("integrity");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("tcp://{}", l.local_addr().unwrap());
    let target = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = vec![0u8; 64 << 10];
        let mut seen = 0;
        while seen < 20 << 20 {
            let n = c.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            c.write_all(&buf[..n]).unwrap();
            seen += n;
        }
        socket2::SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(c);
        seen
    });
    let exporter = spawn_exporter(r.address(), &t, &url);
    let c = router::connect(r.address(), &t, LONG).unwrap();
    let data = pattern(64 << 20, 9);
    let (got, end) = std::thread::scope(|s| {
        s.spawn(|| {
            for chunk in data.chunks(1 << 20) {
                if c.send(chunk, LONG).is_err() {
                    return;
                }
            }
            let _ = c.send_eof();
        });
        let t0 = Instant::now();
        let mut buf = vec![0u8; 64 << 10];
        let mut got = 0;
        let end = loop {
            match c.receive(&mut buf, Some(Duration::from_secs(30))) {
                Ok(Some(n)) => {
                    assert!(buf[..n] == data[got..got + n], "data differs at {got}");
                    got += n;
                }
                other => break other,
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "no end in 30 s");
        };
        (got, end)
    });
    let seen = join(target);
    assert!(
        matches!(end, Err(Error::Connection(_))),
        "after {got} of {} bytes: {end:?}",
        data.len()
    );
    assert!(got <= seen && seen < data.len(), "{got} / {seen}");
    let res = join(exporter);
    assert!(res.is_err(), "{res:?}");
    c.close();
}
