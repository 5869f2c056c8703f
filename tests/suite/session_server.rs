//! jumpwire as a Jumpstarter exporter session (issue 14, the local part):
//! `jumpwire::session::Session` serving networks as upstream network
//! drivers, used by upstream 0.9.0's own client
//! (`tests/python/session_client_peer.py`: `jumpstarter.utils.env.env()`
//! with `JUMPSTARTER_HOST`, `NetworkClient`s, 16 MiB each way with
//! half-close, `TcpPortforwardAdapter` with three connections at once,
//! upstream's CLI), by jumpwire's own `jumpstarter:` client, and by raw
//! gRPC calls with bad input (unknown uuids, malformed metadata, methods
//! that do not exist), after which the session keeps serving. Needs
//! `JW_PYTHON`.

use crate::common;

use common::session::python;
use common::{LONG, TempDir, pattern, recv_to_eof, round_trip, tcp_echo_server};
use jumpwire::Network;
use jumpwire::session::{Exported, Session};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/python/session_client_peer.py"
);
const ALLOW: &str = "jumpstarter_driver_network.*,jumpstarter_driver_composite.*";

/// A session on a fresh Unix socket in `dir` with `tcp` (an echo server),
/// `echo` and `off` (TCP, address disabled).
fn session(dir: &TempDir) -> Session {
    let echo = tcp_echo_server("127.0.0.1:0");
    let path = dir.path().join("socket");
    let drivers: Vec<(String, Arc<dyn Exported>)> = vec![
        (
            "tcp".into(),
            Arc::new(Network::new(&format!("tcp://{echo}")).unwrap()),
        ),
        ("echo".into(), Arc::new(Network::new("echo:").unwrap())),
        (
            "off".into(),
            Arc::new(Network::new(&format!("tcp://{echo}?enable_address=false")).unwrap()),
        ),
    ];
    Session::serve(&format!("unix:{}", path.display()), drivers).unwrap()
}

/// Runs upstream's client fixture against `host` and returns its lines; it
/// must end (well) within `within`.
fn upstream_client(host: &str, args: &[&str], within: Duration) -> Vec<String> {
    let mut child = Command::new(python())
        .arg(CLIENT)
        .args(args)
        .env("JUMPSTARTER_HOST", host)
        .env("JMP_DRIVERS_ALLOW", ALLOW)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting Python");
    let out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let lines: Vec<String> = BufReader::new(out).lines().map_while(Result::ok).collect();
        let mut e = String::new();
        let _ = err.read_to_string(&mut e);
        let _ = tx.send((lines, e));
    });
    let Ok((lines, stderr)) = rx.recv_timeout(within) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("session_client_peer.py did not end within {within:?}");
    };
    let status = child.wait().unwrap();
    assert!(
        status.success() && lines.last().map(String::as_str) == Some("DONE"),
        "session_client_peer.py: {status}\n{lines:#?}\n{stderr}"
    );
    lines
}

fn line<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {lines:#?}"))
}

#[test]
fn upstreams_client_uses_the_session_as_upstreams_own() {
    let dir = TempDir::new("sess-srv");
    let s = session(&dir);
    let host = s.host().unwrap();
    assert_eq!(s.address(), format!("unix:{host}"));
    let lines = upstream_client(&host, &[], Duration::from_secs(240));
    assert_eq!(line(&lines, "root "), "CompositeClient");
    for name in ["tcp", "echo", "off"] {
        assert_eq!(line(&lines, &format!("child {name} ")), "NetworkClient");
    }
    let addr = line(&lines, "address tcp ");
    assert!(addr.starts_with("tcp://127.0.0.1:"), "{addr}");
    assert_eq!(line(&lines, "address echo "), "DriverMethodNotImplemented");
    let off = line(&lines, "address off ");
    assert!(
        off.starts_with("DriverInvalidArgument: ")
            && off.ends_with(
                "INVALID_ARGUMENT: enable_address mode is not true in the exporter configuration"
            ),
        "{off}"
    );
    let mib16 = (16 << 20).to_string();
    for name in ["tcp", "echo"] {
        let l = line(&lines, &format!("stream {name} "));
        assert!(l.starts_with(&format!("{mib16} ")), "{l}");
    }
    assert_eq!(line(&lines, "forward "), "3");
    // `j tcp address` prints the address without its scheme.
    assert_eq!(
        line(&lines, "cli tcp address "),
        addr.strip_prefix("tcp://").unwrap()
    );
    let off = line(&lines, "cli off address ");
    assert!(
        off.starts_with("ERROR") && off.contains("enable_address mode is not true"),
        "{off}"
    );
    // Every driver stream has ended.
    let t0 = Instant::now();
    while s.streams() > 0 && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(s.streams(), 0);
    s.close();
    assert!(
        !dir.path().join("socket").exists(),
        "the socket file is removed"
    );
}

#[test]
fn upstreams_client_reaches_a_tcp_session() {
    let echo = tcp_echo_server("127.0.0.1:0");
    let drivers: Vec<(String, Arc<dyn Exported>)> = vec![
        (
            "tcp".into(),
            Arc::new(Network::new(&format!("tcp://{echo}")).unwrap()),
        ),
        ("echo".into(), Arc::new(Network::new("echo:").unwrap())),
        (
            "off".into(),
            Arc::new(Network::new(&format!("tcp://{echo}?enable_address=false")).unwrap()),
        ),
    ];
    let s = Session::serve("tcp://127.0.0.1:0", drivers).unwrap();
    let host = s.host().unwrap();
    assert_eq!(s.address(), format!("tcp://{host}"));
    // Plaintext HTTP/2 over TCP: upstream's client with JMP_GRPC_INSECURE.
    let mut child = Command::new(python())
        .arg(CLIENT)
        .args(["65536", "1"])
        .env("JUMPSTARTER_HOST", &host)
        .env("JMP_DRIVERS_ALLOW", ALLOW)
        .env("JMP_GRPC_INSECURE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let lines: Vec<String> = BufReader::new(out).lines().map_while(Result::ok).collect();
    assert!(child.wait().unwrap().success(), "{lines:#?}");
    assert_eq!(lines.last().map(String::as_str), Some("DONE"), "{lines:#?}");
}

#[test]
fn jumpwires_client_uses_the_session() {
    let dir = TempDir::new("sess-srv");
    let s = session(&dir);
    let url = |d: &str| format!("jumpstarter:{}?driver={d}", s.address());
    for d in ["tcp", "echo"] {
        let st = Network::new(&url(d)).unwrap().connect(LONG).unwrap();
        round_trip(&st, b"hello", 5);
        let data = pattern(4 << 20, 3);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for c in data.chunks(256 << 10) {
                    st.send(c, LONG).unwrap();
                }
                st.send_eof().unwrap();
            });
            let back = recv_to_eof(&st, Duration::from_secs(60));
            assert!(back == data, "{d}: the echo differs");
        });
        st.close();
    }
    let tcp = Network::new(&url("tcp")).unwrap();
    assert!(tcp.address().unwrap().starts_with("tcp://127.0.0.1:"));
    let e = Network::new(&url("off")).unwrap().address().unwrap_err();
    assert!(matches!(e, jumpwire::Error::Disabled(_)), "{e:?}");
    let e = Network::new(&url("echo")).unwrap().address().unwrap_err();
    assert!(matches!(e, jumpwire::Error::Unsupported(_)), "{e:?}");
    let e = Network::new(&url("nope"))
        .unwrap()
        .connect(LONG)
        .unwrap_err();
    assert!(e.to_string().contains("tcp, echo, off"), "{e}");
    // Many streams at once on the network's one connection.
    let streams: Vec<_> = (0..8).map(|_| tcp.connect(LONG).unwrap()).collect();
    for (i, st) in streams.iter().enumerate() {
        round_trip(st, format!("stream {i}").as_bytes(), 64);
    }
    drop(streams);
}

#[test]
fn a_refusing_target_fails_the_stream_and_not_the_session() {
    let dir = TempDir::new("sess-srv");
    let (_hold, port) = common::refusing_port();
    let drivers: Vec<(String, Arc<dyn Exported>)> = vec![
        (
            "gone".into(),
            Arc::new(Network::new(&format!("tcp://127.0.0.1:{port}")).unwrap()),
        ),
        ("echo".into(), Arc::new(Network::new("echo:").unwrap())),
    ];
    let path = dir.path().join("s");
    let s = Session::serve(&format!("unix:{}", path.display()), drivers).unwrap();
    let url = |d: &str| format!("jumpstarter:{}?driver={d}", s.address());
    let e = Network::new(&url("gone"))
        .unwrap()
        .connect(LONG)
        .unwrap_err();
    assert!(matches!(e, jumpwire::Error::Connection(_)), "{e:?}");
    let st = Network::new(&url("echo")).unwrap().connect(LONG).unwrap();
    round_trip(&st, b"still here", 10);
}

#[test]
fn bad_names_and_urls_are_refused() {
    let echo = || -> Arc<dyn Exported> { Arc::new(Network::new("echo:").unwrap()) };
    for drivers in [
        vec![(String::new(), echo())],
        vec![("a".to_string(), echo()), ("a".to_string(), echo())],
    ] {
        let e = Session::serve("tcp://127.0.0.1:0", drivers).unwrap_err();
        assert!(matches!(e, jumpwire::Error::InvalidArgument(_)), "{e:?}");
    }
    for url in ["ws://127.0.0.1:0", "echo:", "nope"] {
        let e = Session::serve(url, vec![]).unwrap_err();
        assert!(
            matches!(e, jumpwire::Error::InvalidArgument(_)),
            "{url}: {e:?}"
        );
    }
    // A socket path in use is not taken over.
    let dir = TempDir::new("sess-srv");
    let p = dir.path().join("s");
    let _a = Session::serve(&format!("unix:{}", p.display()), vec![]).unwrap();
    let e = Session::serve(&format!("unix:{}", p.display()), vec![]).unwrap_err();
    assert!(matches!(e, jumpwire::Error::Io(_)), "{e:?}");
}

#[test]
fn bad_input_gets_an_error_status_and_the_session_keeps_serving() {
    let dir = TempDir::new("sess-srv");
    let s = session(&dir);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/session_bad_input.py"
    );
    let out = Command::new(python())
        .arg(script)
        .arg(s.host().unwrap())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert!(out.status.success(), "{lines:#?}");
    assert_eq!(lines.last().map(String::as_str), Some("DONE"), "{lines:#?}");
    let answer = |case: &str| line(&lines, &format!("{case} ")).to_string();
    for (case, code, details) in [
        (
            "call-unknown-uuid",
            "UNKNOWN",
            "Unexpected <class 'KeyError'>: UUID('",
        ),
        (
            "call-bad-uuid",
            "UNKNOWN",
            "Unexpected <class 'ValueError'>: badly formed hexadecimal UUID string",
        ),
        (
            "call-empty-uuid",
            "UNKNOWN",
            "Unexpected <class 'ValueError'>",
        ),
        (
            "call-no-method",
            "NOT_FOUND",
            "method nosuch not found on driver",
        ),
        (
            "call-stream-method",
            "NOT_FOUND",
            "method connect missing marker marker_drivercall",
        ),
        (
            "call-root",
            "NOT_FOUND",
            "method address not found on driver",
        ),
        (
            "call-args",
            "UNKNOWN",
            "TcpNetwork.address() takes 1 positional argument but 2 were given",
        ),
        ("call-address", "OK", "tcp://127.0.0.1:"),
        (
            "streamingcall-address",
            "NOT_FOUND",
            "method address missing marker marker_streamingdrivercall",
        ),
        ("stream-no-metadata", "UNKNOWN", "ValidationError"),
        ("stream-not-json", "UNKNOWN", "Invalid JSON"),
        ("stream-bad-uuid", "UNKNOWN", "Input should be a valid UUID"),
        (
            "stream-unknown-uuid",
            "UNKNOWN",
            "Unexpected <class 'KeyError'>",
        ),
        (
            "stream-no-method",
            "NOT_FOUND",
            "method nosuch not found on driver",
        ),
        (
            "stream-call-method",
            "NOT_FOUND",
            "method address missing marker marker_streamcall",
        ),
        (
            "stream-root",
            "NOT_FOUND",
            "method connect not found on driver",
        ),
        ("no-such-method", "UNIMPLEMENTED", ""),
        ("no-such-service", "UNIMPLEMENTED", ""),
        ("reset", "UNIMPLEMENTED", "Method not implemented!"),
        ("report", "OK", "4"),
        ("status", "OK", "EXPORTER_STATUS_LEASE_READY"),
        ("end-session", "OK", "False"),
        ("stream-echo", "OK", "ping FRAME_TYPE_GOAWAY"),
    ] {
        let a = answer(case);
        assert!(
            a.starts_with(code) && a.contains(details),
            "{case}: {a:?}, expected {code} {details:?}"
        );
    }
    assert_eq!(s.streams(), 0);
}

#[test]
fn a_udp_driver_carries_datagrams_one_frame_each() {
    let udp = common::udp_echo_server();
    let drivers: Vec<(String, Arc<dyn Exported>)> = vec![(
        "udp".into(),
        Arc::new(Network::new(&format!("udp://{udp}")).unwrap()),
    )];
    let dir = TempDir::new("sess-srv");
    let path = dir.path().join("s");
    let s = Session::serve(&format!("unix:{}", path.display()), drivers).unwrap();
    let net = Network::new(&format!("jumpstarter:{}?driver=udp", s.address())).unwrap();
    assert_eq!(net.address().unwrap(), format!("udp://{udp}"));
    let st = net.connect(LONG).unwrap();
    for (i, len) in [1usize, 100, 1400, 8000].into_iter().enumerate() {
        let d = pattern(len, i as u64);
        st.send(&d, LONG).unwrap();
        let mut buf = vec![0u8; 65536];
        let n = st.receive(&mut buf, LONG).unwrap().unwrap();
        assert_eq!(&buf[..n], &d[..], "datagram {i} of {len} bytes");
    }
    st.close();
    let t0 = Instant::now();
    while s.streams() > 0 && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        s.streams(),
        0,
        "the UDP stream ended with the client's call"
    );
}

/// Runs upstream's `j` command (package `jumpstarter-cli`, installed beside
/// `JW_PYTHON` by `scripts/venv.sh`) as a user inside `jmp shell` does;
/// returns its status, stdout and stderr. It must end within 60 s.
fn j(host: &str, args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let bin = std::path::Path::new(&python()).with_file_name("j");
    let child = Command::new(&bin)
        .args(args)
        .env("JUMPSTARTER_HOST", host)
        .env("JMP_DRIVERS_ALLOW", ALLOW)
        .env("COLUMNS", "200")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e} (run scripts/venv.sh)", bin.display()));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(out) = rx.recv_timeout(Duration::from_secs(60)) else {
        // SAFETY: kill(2) on the child this test started, by its pid.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        panic!("j {args:?} did not end within 60 s");
    };
    let out = out.unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Upstream's own `j` command against a jumpwire session: `address` of an
/// enabled and a disabled network and of one that has none, each as
/// upstream's exporter answers it; `forward-tcp` carries a connection to the
/// target through the session.
#[test]
fn upstreams_j_command_uses_the_session() {
    let dir = TempDir::new("j-command");
    let s = session(&dir);
    let host = s.address().strip_prefix("unix:").unwrap().to_string();

    let (st, out, err) = j(&host, &["tcp", "address"]);
    assert!(st.success(), "j tcp address: {st}\n{out}\n{err}");
    let addr = out.trim();
    assert!(
        addr.starts_with("127.0.0.1:") && addr.parse::<std::net::SocketAddr>().is_ok(),
        "j tcp address printed {out:?}"
    );

    let (st, out, err) = j(&host, &["off", "address"]);
    assert!(!st.success(), "j off address succeeded: {out}");
    assert!(
        (out.clone() + &err).contains("enable_address mode is not true"),
        "j off address: {out}\n{err}"
    );

    // Upstream's EchoNetwork has no `address`: its exporter answers the call
    // as an unknown method, and `j` says so.
    let (st, out, err) = j(&host, &["echo", "address"]);
    assert!(!st.success(), "j echo address succeeded: {out}");
    assert!(
        (out.clone() + &err).contains("does not support direct connection"),
        "j echo address: {out}\n{err}"
    );

    // forward-tcp: prints the bound address, then forwards until stopped.
    let bin = std::path::Path::new(&python()).with_file_name("j");
    let mut child = Command::new(&bin)
        .args(["tcp", "forward-tcp", "--address", "127.0.0.1", "0"])
        .env("JUMPSTARTER_HOST", &host)
        .env("JMP_DRIVERS_ALLOW", ALLOW)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next();
    let forwarded = (|| {
        let listen = first
            .ok_or("j tcp forward-tcp printed nothing")?
            .map_err(|e| e.to_string())?;
        let to: std::net::SocketAddr = listen
            .trim()
            .parse()
            .map_err(|e| format!("j tcp forward-tcp printed {listen:?}: {e}"))?;
        let mut c = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let data = pattern(256 << 10, 14);
        let mut w = c.try_clone().unwrap();
        let sent = data.clone();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            w.write_all(&sent)
                .and_then(|()| w.shutdown(std::net::Shutdown::Write))
        });
        let mut got = Vec::new();
        c.read_to_end(&mut got).map_err(|e| e.to_string())?;
        writer.join().unwrap().map_err(|e| e.to_string())?;
        if got != data {
            return Err(format!(
                "{} bytes back of {}, or changed",
                got.len(),
                data.len()
            ));
        }
        Ok(())
    })();
    // SAFETY: kill(2) on the child this test started, by its pid.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let until = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    if child.try_wait().unwrap().is_none() {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = child.wait();
    }
    forwarded.unwrap();
    s.close();
}
