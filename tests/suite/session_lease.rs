//! `jumpstarter:lease?…` networks (issue 13, a lease through a lab): the
//! test controller (`tests/python/controller.py`, upstream's generated
//! stubs), a router (jumpwire's; and the upstream-style Python one) and
//! upstream 0.9.0's own `Exporter` (`tests/python/exporter_peer.py`), all
//! over TLS (see `common::lab`). A jumpwire client reads an upstream client
//! configuration, checks the lease (`GetLease`), dials it (`Dial`), and runs
//! the session's HTTP/2 connection inside the router stream: the exporter's
//! drivers by name, MiBs checksummed each way, concurrent streams on one
//! dialled session, a forwarding listener, and the errors (unknown lease,
//! ended lease, exporter not ready, another client's lease, a refused
//! token, no controller), each within the call's timeout. Needs
//! `JW_PYTHON`.

use crate::common;

use common::lab::{Lab, RouterKind};
use common::{LONG, pattern, recv_to_eof, round_trip, timed};
use jumpwire::forward::Listener;
use jumpwire::{Error, Network, Stream};
use std::io::{Read, Write};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;
const SHORT: Option<Duration> = Some(Duration::from_secs(5));

/// The lab most tests share (started once, with jumpwire's router).
fn lab() -> &'static Lab {
    static LAB: OnceLock<Lab> = OnceLock::new();
    LAB.get_or_init(|| Lab::start(RouterKind::Jumpwire))
}

fn checksum(d: &[u8]) -> u64 {
    d.iter().fold(0xcbf2_9ce4_8422_2325u64, |a, &b| {
        (a ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Sends `data`, half-closes, and checks that the echo is `data` (by its
/// checksum and length) and ends.
fn echo_to_eof(s: &Stream, data: &[u8]) {
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            for c in data.chunks(256 * 1024) {
                s.send(c, LONG).expect("send");
            }
            s.send_eof().expect("send_eof");
        });
        let back = recv_to_eof(s, Duration::from_secs(120));
        sender.join().unwrap();
        assert_eq!(back.len(), data.len(), "echo length");
        assert_eq!(checksum(&back), checksum(data), "the echo differs");
    });
}

#[test]
fn a_leased_exporters_drivers_are_reached_through_controller_and_router() {
    let lab = lab();
    let url = lab.url("tcp", "lease1", "alice");
    let net = Network::new(&url).unwrap();
    let s = net.connect(LONG).unwrap();
    // The address names the lease, never the token.
    assert_eq!(s.name(), url);
    assert!(!s.name().contains("client-token"));
    round_trip(&s, b"hello through the lab", 21);
    s.close();
    for driver in ["echo", "dut.console", "unix"] {
        let s = Network::new(&lab.url(driver, "lease1", "alice"))
            .unwrap()
            .connect(LONG)
            .unwrap();
        round_trip(&s, &pattern(100_000, 3), 32 * 1024);
        s.close();
    }
    assert_eq!(net.address().unwrap(), format!("tcp://{}", lab.tcp));
}

#[test]
fn eight_mib_each_way_checksummed_over_the_leased_tcp_network() {
    let s = Network::new(&lab().url("tcp", "lease1", "alice"))
        .unwrap()
        .connect(LONG)
        .unwrap();
    let data = pattern(8 * MIB, 21);
    let ((), took) = timed(|| echo_to_eof(&s, &data));
    println!("8 MiB each way through controller, router and exporter in {took:?}");
    s.close();
}

#[test]
fn concurrent_streams_on_one_session() {
    concurrent_streams(lab());
}

/// Six streams at once (1 MiB each way each), then ten one after another,
/// all on one session connection: `lab` counts one Dial, if no other
/// test uses it meanwhile.
fn concurrent_streams(lab: &Lab) -> usize {
    let net = Network::new(&lab.url("tcp", "lease1", "alice")).unwrap();
    // The first connect dials; the rest reuse that session connection.
    net.connect(LONG).unwrap().close();
    let before = lab.dials();
    std::thread::scope(|scope| {
        for i in 0..6u64 {
            let net = net.clone();
            scope.spawn(move || {
                let s = net.connect(LONG).unwrap();
                echo_to_eof(&s, &pattern(MIB + i as usize, i));
                s.close();
            });
        }
    });
    for i in 0..10 {
        let s = net.connect(LONG).unwrap();
        round_trip(&s, &pattern(64, i), 64);
        s.close();
    }
    lab.dials() - before
}

#[test]
fn a_listener_forwards_connections_onto_the_leased_driver() {
    let net = Network::new(&lab().url("dut.console", "lease1", "alice")).unwrap();
    let l = Listener::bind("tcp://127.0.0.1:0", &net).unwrap();
    let addr = l.address().strip_prefix("tcp://").unwrap().to_string();
    std::thread::scope(|scope| {
        for i in 0..3u64 {
            let addr = addr.clone();
            scope.spawn(move || {
                let mut c = std::net::TcpStream::connect(&addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let data = pattern(200_000, 50 + i);
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

/// `net`'s connect fails within `SHORT` (and a little) with an error that
/// `check` accepts.
fn fails(url: &str, check: impl Fn(&Error) -> bool) -> Error {
    let net = Network::new(url).unwrap();
    let t = Instant::now();
    let e = net.connect(SHORT).expect_err("connected");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "{url}: took {:?}",
        t.elapsed()
    );
    assert!(check(&e), "{url}: {e:?}");
    assert!(!e.to_string().contains("-token"), "a token in {e}");
    e
}

#[test]
fn lab_errors_are_clear_and_within_the_timeout() {
    let lab = lab();
    let e = fails(&lab.url("tcp", "nosuch", "alice"), |e| {
        matches!(e, Error::InvalidArgument(_))
    });
    assert!(e.to_string().contains("nosuch"), "{e}");
    let e = fails(&lab.url("tcp", "lease-ended", "alice"), |e| {
        matches!(e, Error::Connection(_))
    });
    assert!(e.to_string().contains("over"), "{e}");
    let e = fails(&lab.url("tcp", "lease-idle", "alice"), |e| {
        matches!(e, Error::Connection(_))
    });
    assert!(e.to_string().contains("not ready"), "{e}");
    fails(&lab.url("tcp", "lease-bob", "alice"), |e| {
        matches!(e, Error::Unauthenticated(_))
    });
    lab.write_config("wrong", "not-a-token");
    fails(&lab.url("tcp", "lease1", "wrong"), |e| {
        matches!(e, Error::Unauthenticated(_))
    });
    // No controller there.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = gone.local_addr().unwrap().port();
    drop(gone);
    lab.write_config_for(
        "down",
        "alice",
        "client-token",
        &format!("127.0.0.1:{port}"),
    );
    fails(&lab.url("tcp", "lease1", "down"), |e| {
        matches!(e, Error::Connection(_))
    });
    // A driver the exporter does not have: the names it has.
    let e = fails(&lab.url("nope", "lease1", "alice"), |e| {
        matches!(e, Error::InvalidArgument(_))
    });
    assert!(e.to_string().contains("dut.console"), "{e}");
}

#[test]
fn the_lease_and_configuration_come_from_the_environment() {
    if let Ok(mode) = std::env::var("JW_LEASE_CHILD") {
        let url = "jumpstarter:lease?driver=echo";
        match mode.as_str() {
            "ok" => {
                let s = Network::new(url).unwrap().connect(LONG).unwrap();
                round_trip(&s, b"by JMP_LEASE", 12);
                s.close();
            }
            _ => {
                let e = Network::new(url).unwrap().connect(SHORT).unwrap_err();
                assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
            }
        }
        return;
    }
    let lab = lab();
    let config = lab.write_config("env", "client-token");
    let run = |mode: &str, vars: &[(&str, &str)]| {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.arg(common::test_name(
            module_path!(),
            "the_lease_and_configuration_come_from_the_environment",
        ))
        .args(["--exact", "--nocapture", "--test-threads=1"])
        .env("JW_LEASE_CHILD", mode);
        for (k, _) in std::env::vars() {
            if k.starts_with("JMP_") {
                cmd.env_remove(k);
            }
        }
        // No user configuration of the machine's.
        cmd.env("JMP_CLIENT_CONFIG_HOME", lab.dir.join("nothing"));
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "child {mode}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let cfg = config.to_str().unwrap();
    // JMP_CLIENT_CONFIG names the file, JMP_LEASE the lease.
    run("ok", &[("JMP_CLIENT_CONFIG", cfg), ("JMP_LEASE", "lease1")]);
    // The JMP_* variables alone (the CA through JMP_TLS as upstream's JSON).
    let ca = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&lab.cert).unwrap())
    };
    let tls = format!(r#"{{"ca": "{ca}"}}"#);
    run(
        "ok",
        &[
            ("JMP_NAMESPACE", "default"),
            ("JMP_NAME", "alice"),
            ("JMP_ENDPOINT", &lab.controller),
            ("JMP_TOKEN", "client-token"),
            ("JMP_TLS", &tls),
            ("JMP_LEASE", "lease1"),
        ],
    );
    // Or insecure TLS (JMP_GRPC_INSECURE=1, upstream's switch).
    run(
        "ok",
        &[
            ("JMP_NAMESPACE", "default"),
            ("JMP_NAME", "alice"),
            ("JMP_ENDPOINT", &lab.controller),
            ("JMP_TOKEN", "client-token"),
            ("JMP_GRPC_INSECURE", "1"),
            ("JMP_LEASE", "lease1"),
        ],
    );
    // No lease, or no configuration: argument errors.
    run("bad", &[("JMP_CLIENT_CONFIG", cfg)]);
    run("bad", &[("JMP_LEASE", "lease1")]);
}

#[test]
fn a_router_that_refuses_the_token_is_unauthenticated() {
    // The controller's router tokens are signed with a key the router
    // does not have: the controller's part goes well, the router's not.
    let lab = Lab::start_keyed(RouterKind::Jumpwire, "not-the-routers-key");
    let e = fails(&lab.url("tcp", "lease1", "alice"), |e| {
        matches!(e, Error::Unauthenticated(_))
    });
    assert!(e.to_string().contains("router"), "{e}");
    println!("{e}");
}

#[test]
fn a_session_that_died_is_dialled_again() {
    let mut lab = Lab::start(RouterKind::Jumpwire);
    let net = Network::new(&lab.url("tcp", "lease1", "alice")).unwrap();
    let s = net.connect(LONG).unwrap();
    round_trip(&s, b"before", 6);
    s.close();
    let dials = lab.dials();
    // The exporter goes (its router streams with it) and another takes
    // the lease: the next connect dials the lease again (while the new
    // exporter is not ready yet, Dial says so and is retried).
    lab.restart_exporter();
    let s = net.connect(LONG).unwrap();
    round_trip(&s, b"after", 5);
    s.close();
    assert_eq!(lab.dials(), dials + 1, "one new Dial");
    let s = net.connect(LONG).unwrap();
    round_trip(&s, b"again", 5);
    s.close();
    assert_eq!(lab.dials(), dials + 1, "the new session is shared");
}

#[test]
fn the_upstream_python_router_carries_the_lease_too() {
    let lab = Lab::start(RouterKind::Python);
    let net = Network::new(&lab.url("tcp", "lease1", "alice")).unwrap();
    let s = net.connect(LONG).unwrap();
    echo_to_eof(&s, &pattern(2 * MIB, 9));
    s.close();
    // This lab is this test's own: no other test dials its lease.
    assert_eq!(
        concurrent_streams(&lab),
        0,
        "the streams dialled the lease again"
    );
}
