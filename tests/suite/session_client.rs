//! `jumpstarter:` networks (issue 13, a local session) against upstream's
//! own session: `tests/python/session_peer.py` serves upstream 0.9.0's
//! `Session` on a Unix socket with a `Composite` of `TcpNetwork`,
//! `UdpNetwork`, `UnixNetwork`, `EchoNetwork` and `dut.console` (TCP), the
//! targets echo servers. Every driver by its name, 16 MiB each way with
//! half-close, concurrent streams on one session connection, a forwarding
//! listener onto a driver, the errors (each within its timeout), `address()`
//! (upstream's `DriverCall`), and `JUMPSTARTER_HOST` read at each connect
//! (in a child process of this binary). Needs `JW_PYTHON`
//! (`scripts/venv.sh` makes it).

use crate::common;

use common::session::Peer;
use common::{LONG, pattern, recv_to_eof, round_trip, timed};
use jumpwire::forward::Listener;
use jumpwire::{Error, Network, Stream};
use std::io::{Read, Write};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const MIB: usize = 1024 * 1024;
const SHORT: Option<Duration> = Some(Duration::from_secs(3));

/// The session most tests share (started once; it ends with this process,
/// its stdin closing).
fn peer() -> &'static Peer {
    static PEER: OnceLock<Peer> = OnceLock::new();
    PEER.get_or_init(|| Peer::start(&[]))
}

/// Sends `data`, half-closes, and checks that the echo is `data` and ends.
fn echo_to_eof(s: &Stream, data: &[u8]) {
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            for c in data.chunks(256 * 1024) {
                s.send(c, LONG).expect("send");
            }
            s.send_eof().expect("send_eof");
        });
        let back = recv_to_eof(s, Duration::from_secs(60));
        sender.join().unwrap();
        assert_eq!(back.len(), data.len(), "echo length");
        assert!(back == data, "the echo differs from what was sent");
    });
}

#[test]
fn every_network_driver_is_reached_by_its_name() {
    let p = peer();
    for driver in ["tcp", "unix", "echo", "dut.console"] {
        let s = p.net(driver).connect(LONG).unwrap();
        assert_eq!(s.name(), p.url(driver));
        round_trip(&s, b"hello", 5);
        round_trip(&s, &pattern(200_000, 7), 64 * 1024);
        s.send_eof().unwrap();
        assert_eq!(recv_to_eof(&s, Duration::from_secs(10)), b"", "{driver}");
        s.close();
    }
    // UDP: one frame is one datagram, both ways.
    let s = p.net("udp").connect(LONG).unwrap();
    for d in [&b"ping"[..], b"a longer datagram"] {
        s.send(d, LONG).unwrap();
        let mut buf = [0u8; 64];
        let n = s.receive(&mut buf, LONG).unwrap().unwrap();
        assert_eq!(&buf[..n], d);
    }
    s.close();
}

#[test]
fn sixteen_mib_each_way_with_half_close_over_tcp() {
    let s = peer().net("tcp").connect(LONG).unwrap();
    let data = pattern(16 * MIB, 16);
    let sum = |d: &[u8]| {
        d.iter()
            .fold(0u64, |a, &b| a.wrapping_mul(31).wrapping_add(b.into()))
    };
    let ((), took) = timed(|| echo_to_eof(&s, &data));
    println!(
        "16 MiB each way through the session in {took:?} (checksum {:x})",
        sum(&data)
    );
    s.close();
}

#[test]
fn concurrent_streams_share_one_session_connection() {
    let net = peer().net("tcp");
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8u64)
            .map(|i| {
                let net = net.clone();
                scope.spawn(move || {
                    let s = net.connect(LONG).unwrap();
                    echo_to_eof(&s, &pattern(512 * 1024 + i as usize, i));
                    s.close();
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    // Streams opened one after another go on the same connection too.
    for i in 0..20 {
        let s = net.connect(LONG).unwrap();
        round_trip(&s, &pattern(100, i), 100);
        s.close();
    }
}

#[test]
fn a_listener_forwards_each_connection_onto_its_own_driver_stream() {
    let l = Listener::bind("tcp://127.0.0.1:0", &peer().net("dut.console")).unwrap();
    let addr = l.address().strip_prefix("tcp://").unwrap().to_string();
    std::thread::scope(|scope| {
        for i in 0..4u64 {
            let addr = addr.clone();
            scope.spawn(move || {
                let mut c = std::net::TcpStream::connect(&addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let data = pattern(300_000, 100 + i);
                let writer = {
                    let mut c = c.try_clone().unwrap();
                    let data = data.clone();
                    std::thread::spawn(move || {
                        c.write_all(&data).unwrap();
                        c.shutdown(std::net::Shutdown::Write).unwrap();
                    })
                };
                let mut back = Vec::new();
                c.read_to_end(&mut back).unwrap();
                writer.join().unwrap();
                assert!(back == data, "connection {i}: the echo differs");
            });
        }
    });
    l.close();
}

#[test]
fn a_driver_name_that_does_not_exist_lists_the_names_that_do() {
    // The peer (a Python process, started by the first test that needs it)
    // is up before the clock starts: the bound is on the lookup alone.
    let net = peer().net("nope.x");
    let (r, took) = timed(|| net.connect(SHORT));
    let Err(Error::InvalidArgument(m)) = r else {
        panic!("{r:?}")
    };
    assert!(m.contains("no driver \"nope.x\""), "{m}");
    assert!(m.contains("tcp, udp, unix, echo, dut, dut.console"), "{m}");
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[test]
fn a_method_the_driver_lacks_is_unsupported() {
    let p = peer();
    for (url, want) in [
        (
            format!("{}&method=nosuch", p.url("tcp")),
            "method nosuch not found",
        ),
        // A call method, not a stream one.
        (format!("{}&method=address", p.url("tcp")), "missing marker"),
        // A composite has no stream.
        (p.url("dut"), "method connect not found"),
    ] {
        let (r, took) = timed(|| Network::new(&url).unwrap().connect(SHORT));
        match r {
            Err(Error::Unsupported(m)) => assert!(m.contains(want), "{url}: {m}"),
            other => panic!("{url}: {other:?}"),
        }
        assert!(took < Duration::from_secs(4), "{took:?}");
    }
    // The session is still fine for the next stream.
    let s = p.net("echo").connect(LONG).unwrap();
    round_trip(&s, b"after", 5);
}

#[test]
fn no_session_at_the_path_is_a_connection_error() {
    let dir = common::TempDir::new("sess");
    let url = format!(
        "jumpstarter:unix:{}?driver=tcp",
        dir.path().join("socket").display()
    );
    let (r, took) = timed(|| Network::new(&url).unwrap().connect(SHORT));
    assert!(matches!(r, Err(Error::Connection(_))), "{r:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    // Not a session: a Unix socket that speaks no HTTP/2 (accepts, says
    // nothing) fails within the timeout.
    let path = dir.path().join("mute");
    let _mute = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let url = format!("jumpstarter:unix:{}?driver=tcp", path.display());
    let (r, took) = timed(|| {
        Network::new(&url)
            .unwrap()
            .connect(Some(Duration::from_millis(500)))
    });
    assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn a_session_that_dies_ends_its_streams_and_the_next_connect_fails() {
    let p = Peer::start(&[]);
    let net = p.net("tcp");
    let s = net.connect(LONG).unwrap();
    round_trip(&s, b"x", 1);
    drop(p);
    // The open stream fails, and so does the next connect (the connection
    // died with the session), within the timeout.
    let mut buf = [0u8; 8];
    let r = s.receive(&mut buf, LONG);
    assert!(matches!(r, Err(Error::Connection(_)) | Ok(None)), "{r:?}");
    let (r, took) = timed(|| net.connect(SHORT));
    assert!(matches!(r, Err(Error::Connection(_))), "{r:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[test]
fn stream_timeouts_and_close_behave_as_every_stream() {
    let s = peer().net("tcp").connect(LONG).unwrap();
    let mut buf = [0u8; 16];
    let (r, took) = timed(|| s.receive(&mut buf, Some(Duration::from_millis(200))));
    common::assert_timeout(r);
    common::assert_between(took, Duration::from_millis(150), Duration::from_secs(2));
    // Still usable after a timeout.
    round_trip(&s, b"still here", 10);
    // A receive blocked in one thread returns Closed when another closes.
    std::thread::scope(|scope| {
        let h = scope.spawn(|| s.receive(&mut buf, LONG));
        std::thread::sleep(Duration::from_millis(100));
        s.close();
        let r = h.join().unwrap();
        assert!(matches!(r, Err(Error::Closed(_))), "{r:?}");
    });
    assert!(matches!(s.send(b"x", LONG), Err(Error::Closed(_))));
}

#[test]
fn the_address_is_the_drivers_own() {
    let p = peer();
    assert_eq!(p.net("tcp").address().unwrap(), format!("tcp://{}", p.tcp));
    assert_eq!(
        p.net("dut.console").address().unwrap(),
        format!("tcp://{}", p.tcp)
    );
    assert!(
        p.net("udp")
            .address()
            .unwrap()
            .starts_with("udp://127.0.0.1:")
    );
    for driver in ["echo", "unix"] {
        let r = p.net(driver).address();
        assert!(matches!(r, Err(Error::Unsupported(_))), "{driver}: {r:?}");
    }
    let disabled = Peer::start(&["--disable-address"]);
    let r = disabled.net("tcp").address();
    match r {
        Err(Error::Disabled(m)) => assert!(m.contains("enable_address"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// `jumpstarter:?driver=…` reads `JUMPSTARTER_HOST` at each connect: run
/// in a child process of this binary (`JW_SESSION_CHILD` says which part),
/// so that this process's environment never changes.
#[test]
fn jumpstarter_host_names_the_session_at_each_connect() {
    if let Ok(mode) = std::env::var("JW_SESSION_CHILD") {
        return environment_child(&mode);
    }
    let p = peer();
    let over_tcp = Peer::start(&["--tcp", "--passphrase", "pw"]);
    let tcp = over_tcp.session_tcp.clone().unwrap();
    let child = |mode: &str, host: Option<&str>, vars: &[(&str, &str)]| {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.arg(common::test_name(
            module_path!(),
            "jumpstarter_host_names_the_session_at_each_connect",
        ))
        .args(["--exact", "--nocapture", "--test-threads=1"])
        .env("JW_SESSION_CHILD", mode)
        .env("JW_SESSION_ECHO", &over_tcp.tcp);
        for v in [
            "JUMPSTARTER_HOST",
            "JMP_GRPC_PASSPHRASE",
            "JMP_GRPC_INSECURE",
            "JUMPSTARTER_GRPC_INSECURE",
        ] {
            cmd.env_remove(v);
        }
        if let Some(h) = host {
            cmd.env("JUMPSTARTER_HOST", h);
        }
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "child {mode}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "the child ran no test"
        );
    };
    child("set", Some(&p.socket), &[]);
    child("unset", None, &[]);
    child("missing", Some("/nonexistent/jumpstarter/socket"), &[]);
    // HOST:PORT: plaintext with JMP_GRPC_INSECURE=1 (or its other name),
    // the passphrase from JMP_GRPC_PASSPHRASE on every call.
    let plain = ("JMP_GRPC_INSECURE", "1");
    child("tcp", Some(&tcp), &[plain, ("JMP_GRPC_PASSPHRASE", "pw")]);
    child(
        "tcp",
        Some(&tcp),
        &[
            ("JUMPSTARTER_GRPC_INSECURE", "1"),
            ("JMP_GRPC_PASSPHRASE", "pw"),
        ],
    );
    child(
        "refused",
        Some(&tcp),
        &[plain, ("JMP_GRPC_PASSPHRASE", "no")],
    );
    child("refused", Some(&tcp), &[plain]);
    // TLS by default: a plaintext session does not pass for one.
    child("missing", Some(&tcp), &[("JMP_GRPC_PASSPHRASE", "pw")]);
}

fn environment_child(mode: &str) {
    // Made before the variable is looked at: no I/O, no environment.
    let net = Network::new("jumpstarter:?driver=echo").unwrap();
    match mode {
        "set" => {
            let s = net.connect(LONG).unwrap();
            round_trip(&s, b"through JUMPSTARTER_HOST", 7);
            s.close();
            let s = Network::new("jumpstarter:?driver=dut.console")
                .unwrap()
                .connect(LONG)
                .unwrap();
            round_trip(&s, b"nested", 6);
            s.close();
        }
        "unset" => {
            let r = net.connect(SHORT);
            match r {
                Err(Error::InvalidArgument(m)) => assert!(m.contains("JUMPSTARTER_HOST"), "{m}"),
                other => panic!("{other:?}"),
            }
        }
        "missing" => {
            let (r, took) = timed(|| net.connect(SHORT));
            assert!(matches!(r, Err(Error::Connection(_))), "{r:?}");
            assert!(took < Duration::from_secs(4), "{took:?}");
        }
        "tcp" => {
            let s = net.connect(LONG).unwrap();
            round_trip(&s, b"over TCP", 8);
            s.close();
            let tcp = Network::new("jumpstarter:?driver=tcp").unwrap();
            let echo = std::env::var("JW_SESSION_ECHO").unwrap();
            assert_eq!(tcp.address().unwrap(), format!("tcp://{echo}"));
        }
        "refused" => {
            let r = net.connect(SHORT);
            match r {
                Err(Error::Unauthenticated(m)) => {
                    assert!(m.contains("invalid or missing passphrase"), "{m}");
                }
                other => panic!("{other:?}"),
            }
        }
        _ => panic!("unknown mode {mode}"),
    }
}

/// The session's open descriptors (its sockets to the targets and ours).
fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// What each of the session's descriptors is, for a failure message.
fn fd_list(pid: u32) -> String {
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let link = std::fs::read_link(e.path()).map(|l| l.display().to_string());
        out.push(format!(
            "{}->{}",
            e.file_name().to_string_lossy(),
            link.unwrap_or_default()
        ));
    }
    out.join(" ")
}

/// Waits (at most `within`) until `pid` has no more descriptors than
/// `baseline`, and returns the last count.
fn fds_settle(pid: u32, baseline: usize, within: Duration) -> usize {
    let until = std::time::Instant::now() + within;
    loop {
        let n = fds_of(pid);
        if n <= baseline || std::time::Instant::now() >= until {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Streams share the network's one session connection, and closing a
/// stream ends its driver stream in the session (our GOAWAY and
/// END_STREAM, then the call cancelled), so the session lets go of the
/// driver's target connection: whether the stream ended cleanly (both EOFs),
/// was closed midway, or was closed at once; a UDP driver's target, which
/// never ends, goes once the client cancels the call.
#[test]
fn closed_streams_let_the_session_release_their_targets() {
    let p = Peer::start(&[]);
    let pid = p.child.id();
    let idle = fds_of(pid);
    let net = p.net("tcp");
    let udp = p.net("udp");
    // Each network's one session connection is part of the baseline: one
    // descriptor each in the session, once the warm-up streams' targets
    // have gone (the UDP one at the client's cancel, 2 s after its close).
    let s = net.connect(LONG).unwrap();
    round_trip(&s, b"warm", 4);
    s.send_eof().unwrap();
    assert_eq!(recv_to_eof(&s, Duration::from_secs(10)), b"");
    s.close();
    let s = udp.connect(LONG).unwrap();
    s.send(b"w", LONG).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(s.receive(&mut buf, LONG).unwrap(), Some(1));
    s.close();
    let baseline = fds_settle(pid, idle + 2, Duration::from_secs(10));
    assert_eq!(
        baseline,
        idle + 2,
        "two session connections: {}",
        fd_list(pid)
    );
    let streams: Vec<Stream> = (0..30).map(|_| net.connect(LONG).unwrap()).collect();
    // Each stream's target is open in the session (its socket to the echo
    // server, and the echo server's side once accepted: the same process),
    // and no stream brought a connection of its own: they share one.
    let opened = fds_of(pid) - baseline;
    assert!(
        (30..=60).contains(&opened),
        "30 streams: {opened} more descriptors in the session"
    );
    for (i, s) in streams.into_iter().enumerate() {
        match i % 3 {
            0 => {
                round_trip(&s, b"clean", 5);
                s.send_eof().unwrap();
                assert_eq!(recv_to_eof(&s, Duration::from_secs(10)), b"");
            }
            1 => {
                s.send(b"midway", LONG).unwrap();
                common::recv_exact(&s, 6, 6, Duration::from_secs(10));
            }
            _ => {}
        }
        s.close();
    }
    let n = fds_settle(pid, baseline, Duration::from_secs(10));
    assert!(
        n <= baseline,
        "the session holds {n} descriptors, {baseline} before"
    );

    // UDP has no end of stream: the session keeps a UDP driver's target
    // until the call is cancelled, which the client does (at most 2 s after
    // `close`, which returns at once).
    for i in 0..10u8 {
        let s = udp.connect(LONG).unwrap();
        s.send(&[i], LONG).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(s.receive(&mut buf, LONG).unwrap(), Some(1));
        let ((), took) = timed(|| s.close());
        assert!(took < Duration::from_millis(500), "close took {took:?}");
    }
    assert!(fds_of(pid) > baseline, "the UDP targets are open");
    let n = fds_settle(pid, baseline, Duration::from_secs(10));
    assert!(
        n <= baseline,
        "after UDP: {n} descriptors, {baseline} before: {}",
        fd_list(pid)
    );
}

/// A network's connection is redialled when its session died: here a new
/// session behind the same path (a symbolic link to each peer's socket).
#[test]
fn a_new_session_at_the_same_path_is_redialled() {
    let dir = common::TempDir::new("sess-link");
    let link = dir.path().join("session");
    let net = Network::new(&format!("jumpstarter:unix:{}?driver=echo", link.display())).unwrap();
    for round in 0..2 {
        let p = Peer::start(&[]);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&p.socket, &link).unwrap();
        let s = net
            .connect(LONG)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        round_trip(&s, b"again", 5);
        s.close();
        // The session dies with its open connection.
    }
}

/// The websocket bridge onto a driver (the websockify case through a lab),
/// and `forward` (`jw_forward`) between a driver stream and a TCP stream.
#[test]
fn the_websocket_bridge_and_forward_work_over_a_driver_stream() {
    let bridge = Listener::bind("ws://127.0.0.1:0", &peer().net("tcp")).unwrap();
    let s = jumpwire::connect(bridge.address(), LONG).unwrap();
    round_trip(&s, &pattern(100_000, 3), 10_000);
    s.close();
    bridge.close();

    // What a local TCP client sends reaches the session's echo driver and
    // comes back, its EOF too.
    let (ours, mut theirs) = common::tcp_pair();
    let driver = peer().net("echo").connect(LONG).unwrap();
    std::thread::scope(|scope| {
        let f = scope.spawn(|| jumpwire::forward::forward(&ours, &driver));
        theirs
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        theirs.write_all(b"through forward").unwrap();
        theirs.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = Vec::new();
        theirs.read_to_end(&mut back).unwrap();
        assert_eq!(back, b"through forward");
        f.join().unwrap().unwrap();
    });
}

/// A driver whose target does not answer (its connect hangs): the session
/// answers the call only once the target is connected, so the connect
/// times out within its timeout, and the call is cancelled (the session
/// goes on serving other streams).
#[test]
fn a_driver_whose_target_hangs_times_out_within_the_timeout() {
    let (_l, _fillers, addr) = common::full_backlog();
    let p = Peer::start(&["--target", &addr.to_string()]);
    let (r, took) = timed(|| p.net("target").connect(Some(Duration::from_millis(700))));
    common::assert_timeout(r);
    common::assert_between(took, Duration::from_millis(600), Duration::from_secs(2));
    let s = p.net("echo").connect(LONG).unwrap();
    round_trip(&s, b"still serving", 13);
}

/// What was sent before `close` reaches the target even when the network
/// goes right after it (freeing the network waits, at most 2 s, for the
/// calls still ending).
#[test]
fn what_was_sent_before_close_arrives_when_the_network_goes_at_once() {
    let (url, sink) = common::tcp_target(|mut c| {
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        got
    });
    let p = Peer::start(&["--target", url.strip_prefix("tcp://").unwrap()]);
    let net = p.net("target");
    let s = net.connect(LONG).unwrap();
    let data = pattern(8 * MIB, 8);
    for c in data.chunks(MIB) {
        s.send(c, LONG).unwrap();
    }
    s.close();
    drop(s);
    drop(net);
    let got = sink.join().unwrap();
    assert_eq!(got.len(), data.len(), "bytes at the target");
    assert!(got == data, "the target got other bytes");
}
