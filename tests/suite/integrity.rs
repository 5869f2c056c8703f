//! Data integrity under load: hundreds of MiB go both ways at once through a
//! forwarding [`Listener`] (TCP and Unix) and through [`forward`] directly, and
//! each side checks that it received exactly what the other sent — same length,
//! same order-dependent checksum — followed by end of stream (half-close is
//! propagated in both directions). Each test prints its elapsed time and rate.
//!
//! The payload is a deterministic xorshift64 stream; the checksum is an
//! FNV-1a-like hash over little-endian `u64` words, computed incrementally so
//! that it does not depend on how the bytes were split into reads.
//!
//! Under faults, 64 MiB go through a listener and through `forward` to a
//! target that fails mid-way (its thread resets the connection, or its
//! process is killed): the client must see an error (a reset), never a
//! complete-looking transfer, and never hang.

use jumpwire::forward::{Listener, forward};
use jumpwire::{Network, Stream};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;
/// Bytes generated at a time (a multiple of 8).
const BLOCK: usize = 1024 * 1024;
/// Bound on any single blocking step, so that a hang fails instead of stalling.
const STEP: Duration = Duration::from_secs(30);
const CLIENT_SEED: u64 = 0x9e37_79b9_7f4a_7c15;
const TARGET_SEED: u64 = 0xd1b5_4a32_d192_ed03;

/// The tests here measure throughput and use both cores: run them one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// xorshift64: a fast deterministic byte source.
struct Gen(u64);

impl Gen {
    fn next_word(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Fills `buf` (length a multiple of 8) with the next words.
    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_exact_mut(8) {
            c.copy_from_slice(&self.next_word().to_le_bytes());
        }
    }
}

/// Incremental, order-dependent checksum over `u64` words.
#[derive(Default)]
struct Digest {
    h: u64,
    len: u64,
    tail: [u8; 8],
    ntail: usize,
}

impl Digest {
    fn new() -> Digest {
        Digest {
            h: 0xcbf2_9ce4_8422_2325,
            ..Digest::default()
        }
    }

    fn word(&mut self, w: u64) {
        self.h = (self.h ^ w).wrapping_mul(0x0000_0100_0000_01b3);
        self.h ^= self.h >> 29;
    }

    fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.ntail > 0 {
            let take = (8 - self.ntail).min(data.len());
            self.tail[self.ntail..self.ntail + take].copy_from_slice(&data[..take]);
            self.ntail += take;
            data = &data[take..];
            if self.ntail < 8 {
                return;
            }
            self.word(u64::from_le_bytes(self.tail));
            self.ntail = 0;
        }
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            self.word(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.ntail = rest.len();
    }

    /// (length, checksum) of everything seen.
    fn finish(mut self) -> (u64, u64) {
        if self.ntail > 0 {
            let mut last = [0u8; 8];
            last[..self.ntail].copy_from_slice(&self.tail[..self.ntail]);
            self.word(u64::from_le_bytes(last));
        }
        let len = self.len;
        self.word(len);
        (len, self.h)
    }
}

/// Produces `total` bytes from `seed` and hands them to `send` in pieces of
/// uneven, unaligned sizes (each 1 MiB block is split at a varying point).
/// Returns the (length, checksum) of what was produced.
fn produce(seed: u64, total: u64, mut send: impl FnMut(&[u8])) -> (u64, u64) {
    let mut generator = Gen(seed);
    let mut split = Gen(seed ^ 0x5555);
    let mut digest = Digest::new();
    let mut block = vec![0u8; BLOCK];
    let mut left = total;
    while left > 0 {
        generator.fill(&mut block);
        let n = left.min(BLOCK as u64) as usize;
        let chunk = &block[..n];
        digest.update(chunk);
        let cut = (split.next_word() % (n as u64 + 1)) as usize;
        for piece in [&chunk[..cut], &chunk[cut..]] {
            if !piece.is_empty() {
                send(piece);
            }
        }
        left -= n as u64;
    }
    digest.finish()
}

/// What one side of a transfer saw: the checksum of what it sent and of what it
/// received up to end of stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Report {
    sent: (u64, u64),
    received: (u64, u64),
}

/// A std socket that a test peer can split into a reader and a writer.
trait Sock: Read + Write + Send + Sized + 'static {
    fn split(&self) -> Self;
    fn shutdown_write(&self);
}

impl Sock for TcpStream {
    fn split(&self) -> Self {
        self.try_clone().expect("clone tcp socket")
    }
    fn shutdown_write(&self) {
        self.shutdown(Shutdown::Write).expect("tcp shutdown(WR)");
    }
}

impl Sock for UnixStream {
    fn split(&self) -> Self {
        self.try_clone().expect("clone unix socket")
    }
    fn shutdown_write(&self) {
        self.shutdown(Shutdown::Write).expect("unix shutdown(WR)");
    }
}

/// A plain std peer: sends `total` bytes of `seed` then shuts down its write
/// side, while reading everything the other side sends until EOF.
fn std_peer<S: Sock>(sock: S, seed: u64, total: u64) -> Report {
    let mut w = sock.split();
    let writer = std::thread::spawn(move || {
        let sent = produce(seed, total, |piece| w.write_all(piece).expect("peer write"));
        w.shutdown_write();
        sent
    });
    let mut r = sock;
    let mut digest = Digest::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => digest.update(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("peer read after {} bytes: {e}", digest.len),
        }
    }
    Report {
        sent: writer.join().expect("peer writer"),
        received: digest.finish(),
    }
}

/// Accepts one connection (within [`STEP`]) on a non-blocking listener.
fn accept_one<S>(mut accept: impl FnMut() -> std::io::Result<S>) -> S {
    let until = Instant::now() + STEP;
    loop {
        match accept() {
            Ok(s) => return s,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// A TCP target on 127.0.0.1 that serves one connection with [`std_peer`].
fn tcp_target(seed: u64, total: u64) -> (String, JoinHandle<Report>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind tcp target");
    l.set_nonblocking(true).unwrap();
    let url = format!("tcp://{}", l.local_addr().unwrap());
    let t = std::thread::spawn(move || {
        let (s, _) = accept_one(|| l.accept());
        s.set_nonblocking(false).unwrap();
        configure(&s);
        std_peer(s, seed, total)
    });
    (url, t)
}

/// A Unix target at `path` that serves one connection with [`std_peer`].
fn unix_target(path: &std::path::Path, seed: u64, total: u64) -> (String, JoinHandle<Report>) {
    let l = UnixListener::bind(path).expect("bind unix target");
    l.set_nonblocking(true).unwrap();
    let url = format!("unix:{}", path.display());
    let t = std::thread::spawn(move || {
        let (s, _) = accept_one(|| l.accept());
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(STEP)).unwrap();
        s.set_write_timeout(Some(STEP)).unwrap();
        std_peer(s, seed, total)
    });
    (url, t)
}

fn configure(s: &TcpStream) {
    s.set_read_timeout(Some(STEP)).unwrap();
    s.set_write_timeout(Some(STEP)).unwrap();
    s.set_nodelay(true).unwrap();
}

/// The client side on a jumpwire stream: sends `total` bytes of `seed` then
/// `send_eof`, while receiving until end of stream.
fn stream_peer(s: Arc<Stream>, seed: u64, total: u64) -> Report {
    let w = s.clone();
    let writer = std::thread::spawn(move || {
        let sent = produce(seed, total, |piece| {
            w.send(piece, Some(STEP)).expect("client send")
        });
        w.send_eof().expect("client send_eof");
        sent
    });
    let mut digest = Digest::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match s.receive(&mut buf, Some(STEP)) {
            Ok(Some(n)) => digest.update(&buf[..n]),
            Ok(None) => break,
            Err(e) => panic!("client receive after {} bytes: {e:?}", digest.len),
        }
    }
    Report {
        sent: writer.join().expect("client writer"),
        received: digest.finish(),
    }
}

/// Both sides received exactly what the other sent, `total` bytes each way.
fn check(what: &str, total: u64, near: Report, far: Report, elapsed: Duration) {
    assert_eq!(near.sent.0, total, "{what}: near side sent");
    assert_eq!(far.sent.0, total, "{what}: far side sent");
    assert_ne!(
        near.sent.1, far.sent.1,
        "{what}: the two directions carry different data"
    );
    assert_eq!(
        far.received, near.sent,
        "{what}: near -> far (length, checksum)"
    );
    assert_eq!(
        near.received, far.sent,
        "{what}: far -> near (length, checksum)"
    );
    let secs = elapsed.as_secs_f64();
    eprintln!(
        "{what}: {} MiB each way in {secs:.2} s: {:.1} MB/s per direction, {:.1} MB/s total",
        total / MIB,
        total as f64 / 1e6 / secs,
        2.0 * total as f64 / 1e6 / secs
    );
}

/// A private directory for Unix socket paths, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("jw-integrity-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits (bounded) until the listener has no forwarded connection left.
fn wait_idle(l: &Listener) {
    let until = Instant::now() + Duration::from_secs(5);
    while l.connections() > 0 {
        assert!(
            Instant::now() < until,
            "{}: {} connections still open",
            l.address(),
            l.connections()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Client -> listener -> target, `total` bytes each way at once, then EOF both ways.
fn through_listener(
    what: &str,
    listen_url: &str,
    target: (String, JoinHandle<Report>),
    total: u64,
) {
    let (target_url, target) = target;
    let listener =
        Listener::bind(listen_url, &Network::new(&target_url).unwrap()).expect("bind listener");
    let t0 = Instant::now();
    let client =
        Arc::new(jumpwire::connect(listener.address(), Some(STEP)).expect("connect to listener"));
    let near = stream_peer(client.clone(), CLIENT_SEED, total);
    let far = target.join().expect("target");
    let elapsed = t0.elapsed();
    check(what, total, near, far, elapsed);
    client.close();
    listener.close();
    assert_eq!(
        listener.connections(),
        0,
        "{what}: close ends every forwarded connection"
    );
}

#[test]
fn checksum_is_order_dependent_and_split_independent() {
    let data: Vec<u8> = (0..64u32)
        .flat_map(|i| (i.wrapping_mul(2_654_435_761)).to_le_bytes())
        .collect();
    let whole = {
        let mut d = Digest::new();
        d.update(&data);
        d.finish()
    };
    let split = {
        let mut d = Digest::new();
        for piece in [&data[..3], &data[3..4], &data[4..29], &data[29..]] {
            d.update(piece);
        }
        d.finish()
    };
    assert_eq!(whole, split);
    let mut swapped = data.clone();
    swapped[..16].rotate_left(8);
    let mut d = Digest::new();
    d.update(&swapped);
    let swapped = d.finish();
    assert_eq!(swapped.0, whole.0);
    assert_ne!(
        swapped.1, whole.1,
        "swapping two words must change the checksum"
    );
    let mut d = Digest::new();
    d.update(&data[..data.len() - 1]);
    assert_ne!(d.finish(), whole);
}

#[test]
fn listener_connection_count_drops_when_a_connection_ends() {
    let listener = Listener::bind("tcp://127.0.0.1:0", &Network::new("echo:").unwrap()).unwrap();
    let c = jumpwire::connect(listener.address(), Some(STEP)).unwrap();
    c.send(b"ping", Some(STEP)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 16];
    while got.len() < 4 {
        let n = c
            .receive(&mut buf, Some(STEP))
            .unwrap()
            .expect("echo before EOF");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"ping");
    assert_eq!(listener.connections(), 1);
    // EOF goes round through the echo target and comes back: the forwarded
    // connection is over, both its streams closed.
    c.send_eof().unwrap();
    assert_eq!(c.receive(&mut buf, Some(STEP)), Ok(None));
    c.close();
    wait_idle(&listener);
    listener.close();
}

#[test]
fn tcp_listener_carries_256_mib_each_way_intact() {
    let _serial = serial();
    let total = 256 * MIB;
    through_listener(
        "tcp listener",
        "tcp://127.0.0.1:0",
        tcp_target(TARGET_SEED, total),
        total,
    );
}

#[test]
fn unix_listener_carries_64_mib_each_way_intact() {
    let _serial = serial();
    let dir = TempDir::new("unix");
    let total = 64 * MIB;
    let listen = format!("unix:{}", dir.0.join("listen.sock").display());
    through_listener(
        "unix listener",
        &listen,
        unix_target(&dir.0.join("target.sock"), TARGET_SEED, total),
        total,
    );
    assert!(
        !dir.0.join("listen.sock").exists(),
        "listener close removes its socket file"
    );
}

#[test]
fn forward_between_unix_and_tcp_streams_is_intact() {
    let _serial = serial();
    let dir = TempDir::new("forward");
    let total = 128 * MIB;
    let (a_url, a_peer) = unix_target(&dir.0.join("a.sock"), CLIENT_SEED, total);
    let (b_url, b_peer) = tcp_target(TARGET_SEED, total);
    let t0 = Instant::now();
    let a = jumpwire::connect(&a_url, Some(STEP)).expect("connect a");
    let b = jumpwire::connect(&b_url, Some(STEP)).expect("connect b");
    let r = forward(&a, &b);
    let near = a_peer.join().expect("peer a");
    let far = b_peer.join().expect("peer b");
    let elapsed = t0.elapsed();
    assert_eq!(r, Ok(()), "forward ends with Ok after EOF both ways");
    check("forward(unix, tcp)", total, near, far, elapsed);
    // Both streams are at end of stream now, and still ours to close.
    let mut buf = [0u8; 16];
    assert_eq!(a.receive(&mut buf, Some(Duration::from_secs(1))), Ok(None));
    assert_eq!(b.receive(&mut buf, Some(Duration::from_secs(1))), Ok(None));
    a.close();
    b.close();
}

// ---------------------------------------------------------------- under faults

/// What a faulty target takes before it fails.
const CUT: u64 = 16 * MIB;
/// What a client tries to move through a forward whose target fails.
const FAULT_TOTAL: u64 = 64 * MIB;

/// What the client of a transfer saw: how far its sending got (or how it
/// failed), how much it received, and how its receiving ended.
struct Outcome {
    sent: std::io::Result<u64>,
    received: u64,
    end: std::io::Result<()>,
    elapsed: Duration,
}

/// A plain client: sends [`FAULT_TOTAL`] bytes then shuts down its write
/// side, while reading until end of stream or an error.
fn faulted_client(sock: TcpStream) -> Outcome {
    configure(&sock);
    let t0 = Instant::now();
    let mut w = sock.split();
    let writer = std::thread::spawn(move || {
        let (mut sent, mut failed) = (0u64, None);
        produce(CLIENT_SEED, FAULT_TOTAL, |piece| {
            if failed.is_none() {
                match w.write_all(piece) {
                    Ok(()) => sent += piece.len() as u64,
                    Err(e) => failed = Some(e),
                }
            }
        });
        match failed {
            None => w.shutdown(Shutdown::Write).map(|()| sent),
            Some(e) => Err(e),
        }
    });
    let mut r = sock;
    let mut buf = vec![0u8; 256 * 1024];
    let mut received = 0u64;
    let end = loop {
        match r.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => received += n as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    Outcome {
        sent: writer.join().expect("client writer"),
        received,
        end,
        elapsed: t0.elapsed(),
    }
}

/// The client of a transfer whose target failed saw an error (a reset),
/// never a complete transfer and a clean end, and did not hang.
fn assert_failed(what: &str, o: &Outcome) {
    eprintln!(
        "{what}: sent {:?}, received {} bytes then {:?}, in {:?}",
        o.sent, o.received, o.end, o.elapsed
    );
    let sent_all = matches!(o.sent, Ok(n) if n == FAULT_TOTAL);
    assert!(
        !(sent_all && o.end.is_ok()),
        "{what}: a failed transfer looked like a success"
    );
    assert!(
        o.sent.is_err() || o.end.is_err(),
        "{what}: the client saw no error"
    );
    for e in [o.sent.as_ref().err(), o.end.as_ref().err()]
        .into_iter()
        .flatten()
    {
        assert!(
            matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
            "{what}: the client saw {e} (a hang times out)"
        );
    }
    assert!(o.received < FAULT_TOTAL, "{what}: received everything");
    assert!(o.elapsed < STEP, "{what}: took {:?}", o.elapsed);
}

/// A TCP target that sends its own stream while reading, and after [`CUT`]
/// bytes resets the connection (SO_LINGER 0): the abrupt end of a target
/// whose thread is killed. Returns what it read.
fn resetting_target() -> (String, JoinHandle<u64>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind tcp target");
    l.set_nonblocking(true).unwrap();
    let url = format!("tcp://{}", l.local_addr().unwrap());
    let t = std::thread::spawn(move || {
        let (s, _) = accept_one(|| l.accept());
        s.set_nonblocking(false).unwrap();
        configure(&s);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut w = s.split();
        let halt = stop.clone();
        let writer = std::thread::spawn(move || {
            produce(TARGET_SEED, FAULT_TOTAL, |piece| {
                if !halt.load(std::sync::atomic::Ordering::Acquire) && w.write_all(piece).is_err() {
                    halt.store(true, std::sync::atomic::Ordering::Release);
                }
            });
        });
        let mut r = &s;
        let mut buf = vec![0u8; 256 * 1024];
        let mut read = 0u64;
        while read < CUT {
            let want = buf.len().min((CUT - read) as usize);
            match r.read(&mut buf[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n as u64,
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        writer.join().expect("target writer");
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(s); // RST
        read
    });
    (url, t)
}

#[test]
fn a_target_reset_mid_transfer_reaches_the_listeners_client_as_an_error() {
    let _serial = serial();
    let (url, target) = resetting_target();
    let listener = Listener::bind("tcp://127.0.0.1:0", &Network::new(&url).unwrap()).unwrap();
    let client = TcpStream::connect(&listener.address()["tcp://".len()..]).unwrap();
    let o = faulted_client(client);
    assert_eq!(target.join().expect("target"), CUT);
    assert_failed("listener, target thread reset", &o);
    wait_idle(&listener);
}

#[test]
fn a_target_reset_mid_transfer_fails_forward_and_resets_its_other_side() {
    let _serial = serial();
    let (b_url, target) = resetting_target();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = jumpwire::connect(&format!("tcp://{}", l.local_addr().unwrap()), Some(STEP)).unwrap();
    let (client, _) = l.accept().unwrap();
    let b = jumpwire::connect(&b_url, Some(STEP)).unwrap();
    // The forward's streams go when it returns: `a`'s peer then gets the RST.
    let f = std::thread::spawn(move || forward(&a, &b));
    let o = faulted_client(client);
    let r = f.join().expect("forward");
    assert!(
        matches!(r, Err(jumpwire::Error::Connection(_))),
        "forward returned {r:?}"
    );
    assert_eq!(target.join().expect("target"), CUT);
    assert_failed("forward, target thread reset", &o);
}

/// This test binary run again as a target process (killed by the parent):
/// it reads [`CUT`] bytes, then stops reading.
#[test]
#[ignore = "run by a_killed_target_process_reaches_the_listeners_client_as_an_error"]
fn stalling_target_process() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("\nCHILD port {}", l.local_addr().unwrap().port());
    let (mut s, _) = l.accept().unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut read = 0u64;
    while read < CUT {
        let want = buf.len().min((CUT - read) as usize);
        read += s.read(&mut buf[..want]).unwrap() as u64;
    }
    println!("\nCHILD stalled");
    // Until the parent kills this process, or stdin ends.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

#[test]
fn a_killed_target_process_reaches_the_listeners_client_as_an_error() {
    use std::io::BufRead;
    let _serial = serial();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg(crate::common::test_name(
            module_path!(),
            "stalling_target_process",
        ))
        .args(["--exact", "--ignored", "--nocapture"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("running the test binary again");
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(said) = line.strip_prefix("CHILD ") {
                let _ = tx.send(said.to_string());
            }
        }
    });
    let port = rx.recv_timeout(STEP).expect("the child's port");
    let port: u16 = port.strip_prefix("port ").unwrap().parse().unwrap();
    let target = Network::new(&format!("tcp://127.0.0.1:{port}")).unwrap();
    let listener = Listener::bind("tcp://127.0.0.1:0", &target).unwrap();
    let client = TcpStream::connect(&listener.address()["tcp://".len()..]).unwrap();
    let c = std::thread::spawn(move || faulted_client(client));
    assert_eq!(rx.recv_timeout(STEP).as_deref(), Ok("stalled"));
    child.kill().unwrap(); // SIGKILL, by its pid, with unread data: RST
    child.wait().unwrap();
    let o = c.join().expect("client");
    assert_failed("listener, target process killed", &o);
    wait_idle(&listener);
}
