//! The exporter side of a routed stream (`router::export`): TCP and Unix
//! targets forwarded both ways with half-close in each direction, a target
//! that refuses, a target that dies mid-stream, the exporter's connect
//! timeouts, a refused token, and `close` after a paired exchange not waiting
//! out its grace period when the peer has already ended.

mod common;

use common::routing::{counts, counts_back_to, expect_eof, spawn_exporter};
use common::*;
use jumpwire::router::{self, Router, token};
use jumpwire::{Error, Network};
use socket2::SockRef;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const KEY: &str = "export-test-key";

/// The leak test counts the process's threads and descriptors: it runs
/// alone (write), the other tests of the file side by side (read). Their
/// detached echo servers, made before its first count, stay out of it.
static COUNTING: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn beside_others() -> std::sync::RwLockReadGuard<'static, ()> {
    COUNTING.read().unwrap_or_else(|e| e.into_inner())
}

fn router() -> Router {
    Router::serve(&format!("grpc://127.0.0.1:0?key={KEY}")).unwrap()
}

fn tok(id: &str) -> String {
    token::mint(KEY, id, Duration::from_secs(60)).unwrap()
}

/// Starts an exporter of `target` on its own thread.
fn export(r: &Router, t: &str, target: &str) -> JoinHandle<jumpwire::Result<()>> {
    spawn_exporter(r.address(), t, target)
}

/// What a one-connection target server saw, sent back to the test.
type Seen = mpsc::Receiver<Vec<u8>>;

/// A target that reads everything until EOF, then answers with the length
/// (8 bytes, little endian) and the data reversed, then half-closes.
fn reverse<S: Read + Write>(mut conn: S, shut: impl FnOnce(&S), seen: &mpsc::Sender<Vec<u8>>) {
    let mut got = Vec::new();
    conn.read_to_end(&mut got).unwrap();
    let _ = seen.send(got.clone());
    conn.write_all(&(got.len() as u64).to_le_bytes()).unwrap();
    got.reverse();
    conn.write_all(&got).unwrap();
    shut(&conn);
    // Stays open (not closed) until the exporter closes its side.
    let _ = conn.read(&mut [0u8; 1]);
}

/// A target that greets, half-closes at once, and then reads until EOF.
fn greet<S: Read + Write>(mut conn: S, shut: impl FnOnce(&S), seen: &mpsc::Sender<Vec<u8>>) {
    conn.write_all(b"hello, then nothing more").unwrap();
    shut(&conn);
    let mut got = Vec::new();
    conn.read_to_end(&mut got).unwrap();
    let _ = seen.send(got);
}

type Serve<S> = fn(S, fn(&S), &mpsc::Sender<Vec<u8>>);

/// Serves the one connection `accept` gives with `serve`, on a thread.
fn serve_one<S: 'static>(
    accept: impl FnOnce() -> S + Send + 'static,
    shut: fn(&S),
    serve: Serve<S>,
) -> Seen {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || serve(accept(), shut, &tx));
    rx
}

fn tcp_target(serve: Serve<TcpStream>) -> (String, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("tcp://{}", l.local_addr().unwrap());
    let shut: fn(&TcpStream) = |c| c.shutdown(std::net::Shutdown::Write).unwrap();
    (url, serve_one(move || l.accept().unwrap().0, shut, serve))
}

fn unix_target(dir: &TempDir, serve: Serve<UnixStream>) -> (String, Seen) {
    let path = dir.path().join("target.sock");
    let l = UnixListener::bind(&path).unwrap();
    let shut: fn(&UnixStream) = |c| c.shutdown(std::net::Shutdown::Write).unwrap();
    let seen = serve_one(move || l.accept().unwrap().0, shut, serve);
    (format!("unix:{}", path.display()), seen)
}

/// The client sends `data` and half-closes: the target sees exactly the
/// data and then EOF; its answer and its half-close come back.
fn client_half_closes_first(target: &str, seen: Seen, data: &[u8]) {
    let r = router();
    let t = tok("first");
    let exporter = export(&r, &t, target);
    let c = router::connect(r.address(), &t, LONG).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            for chunk in data.chunks(100_000) {
                c.send(chunk, LONG).unwrap();
            }
            c.send_eof().unwrap();
        });
        let len = recv_exact(&c, 8, 8, Duration::from_secs(20));
        assert_eq!(
            u64::from_le_bytes(len.try_into().unwrap()),
            data.len() as u64
        );
        let mut want = data.to_vec();
        want.reverse();
        assert!(recv_to_eof(&c, Duration::from_secs(20)) == want);
    });
    assert!(seen.recv_timeout(Duration::from_secs(10)).unwrap() == data);
    let ((), took) = timed(|| c.close());
    assert!(took < Duration::from_secs(1), "close took {took:?}");
    assert_eq!(join(exporter), Ok(()));
}

/// The target half-closes first: the client gets the greeting and EOF, and
/// can still send; the target gets that and then EOF.
fn target_half_closes_first(target: &str, seen: Seen) {
    let r = router();
    let t = tok("second");
    let exporter = export(&r, &t, target);
    let c = router::connect(r.address(), &t, LONG).unwrap();
    assert_eq!(
        recv_to_eof(&c, Duration::from_secs(20)),
        b"hello, then nothing more"
    );
    let late = pattern(300_000, 3);
    c.send(&late, LONG).unwrap();
    c.send_eof().unwrap();
    assert!(seen.recv_timeout(Duration::from_secs(10)).unwrap() == late);
    let ((), took) = timed(|| c.close());
    assert!(took < Duration::from_secs(1), "close took {took:?}");
    assert_eq!(join(exporter), Ok(()));
}

#[test]
fn a_tcp_target_gets_the_client_half_close_and_its_answer_comes_back() {
    let _t = beside_others();
    let (url, seen) = tcp_target(reverse);
    client_half_closes_first(&url, seen, &pattern(3 << 20, 1));
}

#[test]
fn a_tcp_target_that_half_closes_first_still_receives() {
    let _t = beside_others();
    let (url, seen) = tcp_target(greet);
    target_half_closes_first(&url, seen);
}

#[test]
fn a_unix_target_gets_the_client_half_close_and_its_answer_comes_back() {
    let _t = beside_others();
    let dir = TempDir::new("export-unix");
    let (url, seen) = unix_target(&dir, reverse);
    client_half_closes_first(&url, seen, &pattern(3 << 20, 2));
}

#[test]
fn a_unix_target_that_half_closes_first_still_receives() {
    let _t = beside_others();
    let dir = TempDir::new("export-unix2");
    let (url, seen) = unix_target(&dir, greet);
    target_half_closes_first(&url, seen);
}

#[test]
fn an_empty_exchange_ends_cleanly_both_ways() {
    let _t = beside_others();
    let (url, seen) = tcp_target(reverse);
    client_half_closes_first(&url, seen, b"");
}

#[test]
fn a_target_that_refuses_fails_the_export_and_the_token_can_be_used_again() {
    let _t = beside_others();
    let r = router();
    let t = tok("refused");
    let (_keep, port) = refusing_port();
    let target = Network::new(&format!("tcp://127.0.0.1:{port}")).unwrap();
    let (res, took) = timed(|| router::export(r.address(), &t, &target, LONG));
    assert!(matches!(res, Err(Error::Connection(_))), "{res:?}");
    assert!(took < SLACK, "{took:?}");
    // The failed exporter's call was forgotten: a new pair forms.
    let echo = tcp_echo_server("127.0.0.1:0");
    let exporter = export(&r, &t, &format!("tcp://{echo}"));
    let c = router::connect(r.address(), &t, LONG).unwrap();
    c.send(b"again", LONG).unwrap();
    assert_eq!(recv_exact(&c, 5, 16, Duration::from_secs(10)), b"again");
    c.send_eof().unwrap();
    expect_eof(&c);
    c.close();
    assert_eq!(join(exporter), Ok(()));
}

#[test]
fn a_target_that_dies_mid_stream_ends_both_sides_in_time() {
    let _t = beside_others();
    let r = router();
    for reset in [true, false] {
        let t = tok(if reset { "reset" } else { "gone" });
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("tcp://{}", l.local_addr().unwrap());
        let target = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 5];
            c.read_exact(&mut buf).unwrap();
            c.write_all(b"bye").unwrap();
            if reset {
                // SO_LINGER 0: the close sends RST.
                SockRef::from(&c).set_linger(Some(Duration::ZERO)).unwrap();
            }
            drop(c);
        });
        let exporter = export(&r, &t, &url);
        let c = router::connect(r.address(), &t, LONG).unwrap();
        c.send(b"hello", LONG).unwrap();
        join(target);
        // The client keeps sending into the dead target; the end reaches it.
        let t0 = Instant::now();
        let end = loop {
            let _ = c.send(&[0u8; 4096], Some(Duration::from_millis(100)));
            match c.receive(&mut [0u8; 64], Some(Duration::from_millis(100))) {
                Ok(Some(_)) | Err(Error::Timeout) => {}
                other => break other,
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "no end after 10 s");
        };
        // A reset target is never a clean end for the client (issue 17).
        if reset {
            assert!(matches!(end, Err(Error::Connection(_))), "{end:?}");
            assert!(c.send(b"later", LONG).is_err());
        } else {
            assert!(
                matches!(end, Ok(None) | Err(Error::Connection(_))),
                "{end:?}"
            );
        }
        let res = join(exporter);
        if reset {
            assert!(res.is_err(), "{res:?}");
        } else {
            assert!(matches!(res, Ok(()) | Err(Error::Connection(_))), "{res:?}");
        }
        c.close();
    }
}

#[test]
fn the_exporter_timeout_bounds_its_connects() {
    let _t = beside_others();
    let (_l, _fill, addr) = full_backlog();
    let echo = tcp_echo_server("127.0.0.1:0");
    // A router that never completes the TCP handshake.
    let target = Network::new(&format!("tcp://{echo}")).unwrap();
    let (res, took) =
        timed(|| router::export(&format!("grpc://{addr}"), &tok("x"), &target, ms(500)));
    assert_eq!(res, Err(Error::Timeout));
    assert_between(took, Duration::from_millis(400), SLACK);
    // A target that never completes it, behind a live router.
    let r = router();
    let target = Network::new(&format!("tcp://{addr}")).unwrap();
    let (res, took) = timed(|| router::export(r.address(), &tok("y"), &target, ms(500)));
    assert_eq!(res, Err(Error::Timeout));
    assert_between(took, Duration::from_millis(400), SLACK);
}

#[test]
fn a_refused_token_fails_the_export() {
    let _t = beside_others();
    let r = router();
    let echo = tcp_echo_server("127.0.0.1:0");
    let target = Network::new(&format!("tcp://{echo}")).unwrap();
    let bad = token::mint("another-key", "x", Duration::from_secs(60)).unwrap();
    let (res, took) = timed(|| router::export(r.address(), &bad, &target, LONG));
    assert!(matches!(res, Err(Error::Unauthenticated(_))), "{res:?}");
    assert!(took < SLACK, "{took:?}");
}

#[test]
fn close_after_the_peer_ended_does_not_wait_out_the_grace() {
    let _t = beside_others();
    let r = router();
    let t = tok("quick");
    let a = router::connect(r.address(), &t, LONG).unwrap();
    let b = router::connect(r.address(), &t, LONG).unwrap();
    a.send(b"ping", LONG).unwrap();
    assert_eq!(recv_exact(&b, 4, 16, Duration::from_secs(10)), b"ping");
    b.send(b"pong", LONG).unwrap();
    assert_eq!(recv_exact(&a, 4, 16, Duration::from_secs(10)), b"pong");
    // b ends its direction; a sees the end and closes without send_eof.
    b.send_eof().unwrap();
    expect_eof(&a);
    let (_, took) = timed(|| a.close());
    assert!(took < Duration::from_secs(1), "a.close took {took:?}");
    // a's close ended a's direction: b sees EOF and closes at once too.
    expect_eof(&b);
    let (_, took) = timed(|| b.close());
    assert!(took < Duration::from_secs(1), "b.close took {took:?}");
}

#[test]
fn an_exporter_ends_promptly_when_the_client_closes_after_the_exchange() {
    let _t = beside_others();
    let r = router();
    let echo = tcp_echo_server("127.0.0.1:0");
    let t = tok("client-closes");
    let exporter = export(&r, &t, &format!("tcp://{echo}"));
    let c = router::connect(r.address(), &t, LONG).unwrap();
    c.send(b"x", LONG).unwrap();
    assert_eq!(recv_exact(&c, 1, 16, Duration::from_secs(10)), b"x");
    c.send_eof().unwrap();
    expect_eof(&c);
    let ((), took) = timed(|| c.close());
    assert!(took < Duration::from_secs(1), "close took {took:?}");
    let (res, took) = timed(|| join(exporter));
    assert_eq!(res, Ok(()));
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn exports_leave_no_thread_or_fd_behind() {
    let _alone = COUNTING.write().unwrap_or_else(|e| e.into_inner());
    let r = router();
    let dir = TempDir::new("export-leaks");
    let path = dir.path().join("echo.sock");
    unix_echo_server(UnixListener::bind(&path).unwrap());
    let echo = tcp_echo_server("127.0.0.1:0");
    let targets = [format!("tcp://{echo}"), format!("unix:{}", path.display())];
    let round = |from: usize, to: usize| {
        for i in from..to {
            let t = tok(&format!("leak{i}"));
            let exporter = export(&r, &t, &targets[i % 2]);
            let c = router::connect(r.address(), &t, LONG).unwrap();
            c.send(b"abc", LONG).unwrap();
            assert_eq!(recv_exact(&c, 3, 16, Duration::from_secs(10)), b"abc");
            c.send_eof().unwrap();
            expect_eof(&c);
            c.close();
            assert_eq!(join(exporter), Ok(()));
        }
    };
    round(0, 20);
    std::thread::sleep(Duration::from_millis(300));
    let before = counts();
    round(20, 220);
    let after = counts_back_to(before);
    assert_eq!(after, before, "(threads, fds) before and after 200 exports");
}
