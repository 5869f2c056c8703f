//! The C programs: every `c-examples/*.c` and `tests/c/*.c` is compiled with
//! `-std=c11 -Wall -Wextra -Werror -pedantic` (plus `$CC`/`$CFLAGS`) against
//! `include/jumpwire.h` and both `libjumpwire.so` and `libjumpwire.a`, and run;
//! each must exit 0. `tcp_client` talks to a local Rust TCP server, and its
//! error paths (refused, timeout, EOF, bad URL) are checked too. The examples
//! are also built as C++ to keep the header C++-compatible.

use crate::common;
use crate::toolchain;

use common::refusing_port;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use toolchain::{
    Link, WorkDir, build, compile, cxx_compiler, link_args, repo, run, run_env, run_for,
};

/// How long a test server waits for its client at most.
const SERVER_WAIT: Duration = Duration::from_secs(20);

/// What a one-connection test server does with its client.
#[derive(Clone, Copy)]
enum Peer {
    /// Echoes everything back; after the client's EOF, ends its side too.
    Echo,
    /// Reads everything and never answers.
    Silent,
    /// Reads the first line, then closes the connection without a reply.
    CloseAfterLine,
}

/// A TCP server on 127.0.0.1 for one client; the thread returns what the
/// client sent.
fn serve_one(peer: Peer) -> (String, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("tcp://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let mut conn = accept(&listener);
        conn.set_read_timeout(Some(SERVER_WAIT)).unwrap();
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = match conn.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => panic!("test server: reading from the client: {e}"),
            };
            if n == 0 {
                if matches!(peer, Peer::Echo) {
                    let _ = conn.shutdown(Shutdown::Write);
                }
                return received;
            }
            received.extend_from_slice(&buf[..n]);
            match peer {
                Peer::Echo => conn.write_all(&buf[..n]).expect("test server: echoing"),
                Peer::Silent => {}
                Peer::CloseAfterLine if received.contains(&b'\n') => return received,
                Peer::CloseAfterLine => {}
            }
        }
    });
    (url, server)
}

/// Accepts one connection, giving up after [`SERVER_WAIT`].
fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + SERVER_WAIT;
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false).unwrap();
                return conn;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("test server: no client came: {e}"),
        }
    }
}

#[test]
fn every_c_program_has_a_test() {
    let mut found = Vec::new();
    for dir in ["c-examples", "tests/c"] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".c") || name.ends_with(".cpp") {
                found.push(format!("{dir}/{name}"));
            }
        }
    }
    found.sort();
    let tested = [
        "c-examples/cpp_echo.cpp",
        "c-examples/dbus_forward.c",
        "c-examples/echo_roundtrip.c",
        "c-examples/exporter.c",
        "c-examples/lab_connect.c",
        "c-examples/port_forward.c",
        "c-examples/router_export.c",
        "c-examples/router_forward.c",
        "c-examples/tcp_client.c",
        "c-examples/ws_bridge.c",
        "c-examples/ws_chat.c",
        "c-examples/ws_client.c",
        "tests/c/close_race.c",
        "tests/c/close_wakes.c",
        "tests/c/forward_faults.c",
        "tests/c/log_callback.c",
        "tests/c/misuse.c",
        "tests/c/router_export_close.c",
        "tests/c/router_faults.c",
        "tests/c/router_idle_limit.c",
        "tests/c/session.c",
        "tests/c/sigpipe.c",
        "tests/c/stats.c",
        "tests/c/ws_faults.c",
    ];
    assert_eq!(
        found, tested,
        "a C program was added or removed: give it a test in tests/suite/c_examples.rs"
    );
}

#[test]
fn echo_roundtrip_passes_with_both_libraries() {
    let dir = WorkDir::new("echo_roundtrip");
    for link in Link::BOTH {
        let bin = build(&dir, "c-examples/echo_roundtrip.c", link);
        run(&bin, &[], link)
            .assert_success()
            .assert_stdout_has(&format!(
                "jumpwire {v} (header {v})",
                v = env!("CARGO_PKG_VERSION")
            ))
            .assert_stdout_has("a 1000-byte message came back over 16 receives of at most 64 bytes")
            .assert_stdout_has("end of stream after the last message")
            .assert_stdout_has("echo round trip: OK");
    }
}

#[test]
fn port_forward_onto_echo_passes_with_both_libraries() {
    let dir = WorkDir::new("port_forward");
    for link in Link::BOTH {
        let bin = build(&dir, "c-examples/port_forward.c", link);
        let r = run(&bin, &[], link);
        r.assert_success()
            .assert_stdout_has("forwarding tcp://127.0.0.1:")
            .assert_stdout_has(" -> echo:")
            .assert_stdout_has("round trip through the forward: \"hello through the forward\"")
            .assert_stdout_has("round trip through the forward: \"and a second message\"")
            .assert_stdout_has("end of stream came back through the forward")
            .assert_stdout_has("port forward: OK");
        // The port the system picked is in the address, not port 0.
        assert!(!r.stdout.contains("127.0.0.1:0 "), "{r}");
    }
}

#[test]
fn port_forward_onto_a_tcp_server_reaches_it() {
    let dir = WorkDir::new("port_forward_tcp");
    let bin = build(&dir, "c-examples/port_forward.c", Link::Shared);
    let (url, server) = serve_one(Peer::Echo);
    run(&bin, &[&url], Link::Shared)
        .assert_success()
        .assert_stdout_has(&format!(" -> {url}\n"));
    assert_eq!(
        server.join().unwrap(),
        b"hello through the forwardand a second message"
    );
}

#[test]
fn tcp_client_gets_the_reply_with_both_libraries() {
    let dir = WorkDir::new("tcp_client");
    for link in Link::BOTH {
        let bin = build(&dir, "c-examples/tcp_client.c", link);
        let (url, server) = serve_one(Peer::Echo);
        run(&bin, &[&url], link)
            .assert_success()
            .assert_stdout_has(&format!("connected to {url}\n"))
            .assert_stdout_has("sent 20 bytes\n")
            .assert_stdout_has("reply: hello from jumpwire\n");
        assert_eq!(server.join().unwrap(), b"hello from jumpwire\n");

        let (url, server) = serve_one(Peer::Echo);
        run(&bin, &[&url, "custom line", "2000"], link)
            .assert_success()
            .assert_stdout_has("reply: custom line\n");
        assert_eq!(server.join().unwrap(), b"custom line\n");
    }
}

#[test]
fn tcp_client_reports_each_failure() {
    let dir = WorkDir::new("tcp_client_failures");
    let bin = build(&dir, "c-examples/tcp_client.c", Link::Shared);

    // Refused: JW_ERR_CONNECTION, with the endpoint in the message.
    let (_held, port) = refusing_port();
    let refused = format!("tcp://127.0.0.1:{port}");
    run(&bin, &[&refused], Link::Shared)
        .assert_code(1)
        .assert_stderr_has("tcp_client: connect failed with connection error (-3): ")
        .assert_stderr_has(&refused);

    // A malformed URL: JW_ERR_INVALID_ARGUMENT, naming the wrong part.
    run(&bin, &["tcp://127.0.0.1:99999"], Link::Shared)
        .assert_code(1)
        .assert_stderr_has("connect failed with invalid argument (-1): ")
        .assert_stderr_has("port");

    // No reply in time: JW_TIMEOUT, after the timeout and not much later.
    let (url, server) = serve_one(Peer::Silent);
    let started = Instant::now();
    run(&bin, &[&url, "anyone there?", "300"], Link::Shared)
        .assert_code(1)
        .assert_stderr_has("tcp_client: no reply within 300 ms (timed out)");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(10),
        "timed out after {took:?}"
    );
    assert_eq!(server.join().unwrap(), b"anyone there?\n");

    // The server closes without a word: JW_EOF.
    let (url, server) = serve_one(Peer::CloseAfterLine);
    run(&bin, &[&url], Link::Shared)
        .assert_code(1)
        .assert_stderr_has("the server ended the connection without replying (end of stream)");
    assert_eq!(server.join().unwrap(), b"hello from jumpwire\n");

    // Wrong usage.
    run(&bin, &[], Link::Shared)
        .assert_code(2)
        .assert_stderr_has("usage: ");
}

#[test]
fn misuse_checks_pass_with_both_libraries() {
    let dir = WorkDir::new("misuse");
    for link in Link::BOTH {
        let bin = build(&dir, "tests/c/misuse.c", link);
        let r = run(&bin, &[], link);
        r.assert_success().assert_stdout_has(" checks, 0 failed");
        assert!(!r.stderr.contains("FAIL"), "{r}");
    }
}

/// tests/c/router_faults.c: what a C host sees when the far side of a
/// router stream fails (a target reset, a peer cut, silent servers).
#[test]
fn router_faults_pass_with_both_libraries() {
    let dir = WorkDir::new("router_faults");
    for link in Link::BOTH {
        let bin = build(&dir, "tests/c/router_faults.c", link);
        let r = run(&bin, &[], link);
        r.assert_success().assert_stdout_has(" checks, 0 failed");
        assert!(!r.stderr.contains("FAIL"), "{r}");
    }
}

/// tests/c/router_export_close.c: the stoppable router export and the lab
/// exporter's argument checks.
#[test]
fn router_export_close_passes_with_both_libraries() {
    let dir = WorkDir::new("router_export_close");
    for link in Link::BOTH {
        let bin = build(&dir, "tests/c/router_export_close.c", link);
        let r = run(&bin, &[], link);
        r.assert_success().assert_stdout_has(" checks, 0 failed");
        assert!(!r.stderr.contains("FAIL"), "{r}");
    }
}

#[test]
fn forward_faults_reach_the_other_side_as_resets_with_both_libraries() {
    let dir = WorkDir::new("forward_faults");
    for link in Link::BOTH {
        let bin = build(&dir, "tests/c/forward_faults.c", link);
        let r = run(&bin, &[], link);
        r.assert_success()
            .assert_stdout_has("jw_listen, target reset: the client got connection error")
            .assert_stdout_has("jw_forward, b's peer reset: jw_forward returned connection error")
            .assert_stdout_has(" checks, 0 failed");
        assert!(!r.stderr.contains("FAIL"), "{r}");
    }
}

#[test]
fn log_callback_gets_the_library_lines_with_both_libraries() {
    let dir = WorkDir::new("log_callback");
    for link in Link::BOTH {
        let bin = build(&dir, "tests/c/log_callback.c", link);
        let r = run(&bin, &[], link);
        r.assert_success()
            .assert_stdout_has("first listening line: 3 jumpwire::forward: tcp://127.0.0.1:")
            .assert_stdout_has(" checks, 0 failed");
        // Lines went to the callback, not to stderr.
        assert!(!r.stderr.contains("jumpwire INFO"), "{r}");
    }
}

#[test]
fn stream_stats_count_sends_receives_and_forwards_with_both_libraries() {
    let dir = WorkDir::new("stats");
    for link in Link::BOTH {
        let bin = build(&dir, "tests/c/stats.c", link);
        run(&bin, &[], link)
            .assert_success()
            .assert_stdout_has("jw_forward moved 1000 bytes out of a and 1000 into it")
            .assert_stdout_has(" checks, 0 failed");
    }
}

#[test]
fn a_router_short_of_descriptors_is_not_locked_out_by_idle_connections_with_both_libraries() {
    let dir = WorkDir::new("router_idle_limit");
    for link in Link::BOTH {
        let bin = build(&dir, "tests/c/router_idle_limit.c", link);
        run(&bin, &[], link)
            .assert_success()
            .assert_stdout_has("150 idle connections, a good pair served in")
            .assert_stdout_has(" checks, 0 failed");
    }
}

#[test]
fn sigpipe_never_reaches_a_c_host_with_both_libraries() {
    let dir = WorkDir::new("sigpipe");
    // The wss:// case's server: Python websockets over TLS with a self-signed
    // certificate (jw_ws_serve has no TLS).
    let tls = common::TempDir::new("sigpipe-wss");
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let (cert, key) = (tls.path().join("cert.pem"), tls.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let python = common::session::python();
    let peer = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/ws_peer.py");
    let args = [
        python.as_str(),
        peer,
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
    ];
    for link in Link::BOTH {
        let bin = build(&dir, "tests/c/sigpipe.c", link);
        let r = run(&bin, &args, link);
        // Killed by SIGPIPE would be a signal exit, not code 0.
        r.assert_success().assert_stdout_has(" checks, 0 failed");
        assert!(!r.stderr.contains("FAIL"), "{r}");
    }
}

#[test]
fn ws_faults_pass_with_both_libraries() {
    let dir = WorkDir::new("ws_faults");
    for link in Link::BOTH {
        let bin = build(&dir, "tests/c/ws_faults.c", link);
        let r = run(&bin, &[], link);
        r.assert_success().assert_stdout_has(" checks, 0 failed");
        assert!(!r.stderr.contains("FAIL"), "{r}");
    }
}

/// tests/c/close_wakes.c: jw_stream_close on a router, ws:// and TCP stream
/// wakes a receive or send blocked on another thread at once, and returns
/// within 100 ms when the peer is gone or does not read (issue 17, item 6).
#[test]
fn close_wakes_blocked_calls_within_100_ms_with_both_libraries() {
    let dir = WorkDir::new("close_wakes");
    for link in Link::BOTH {
        let bin = build(&dir, "tests/c/close_wakes.c", link);
        let r = run(&bin, &[], link);
        r.assert_success()
            .assert_stdout_has("close_wakes: router, send blocked, peer gone: the call returned")
            .assert_stdout_has("close_wakes: ws, receive blocked, idle peer: the call returned")
            .assert_stdout_has("close_wakes: tcp, send blocked, peer reset: the call returned")
            .assert_stdout_has(" checks, 0 failed");
        assert!(!r.stderr.contains("FAIL"), "{r}");
    }
}

#[test]
fn close_racing_calls_on_another_thread_is_safe_with_both_libraries() {
    let dir = WorkDir::new("close_race");
    for (link, rounds) in [(Link::Shared, "1000"), (Link::Static, "200")] {
        let bin = build(&dir, "tests/c/close_race.c", link);
        // About 4 ms a round on a quiet machine, several times that on a
        // loaded one.
        let r = run_for(&bin, &[rounds], link, Duration::from_secs(180));
        r.assert_success()
            .assert_stdout_has(&format!("jw_ws_server: {rounds} rounds"))
            .assert_stdout_has(&format!("jw_router: {rounds} rounds"))
            .assert_stdout_has(" checks, 0 failed");
    }
}

#[test]
fn cpp_header_example_runs_with_both_libraries() {
    assert!(
        cxx_compiler().is_some(),
        "no C++ compiler ($CXX or c++): run scripts/setup.sh"
    );
    let dir = WorkDir::new("cpp_echo");
    for link in Link::BOTH {
        let bin = dir.path(&format!("cpp_echo-{link:?}"));
        let mut cmd = cxx_compiler().unwrap();
        // The wrapper needs C++17 (the plain header stays C++11-clean).
        cmd.arg("-std=c++17")
            .arg(repo().join("c-examples/cpp_echo.cpp"))
            .arg("-o")
            .arg(&bin)
            // What follows is not C++ source (libjumpwire.a for a static link).
            .args(["-x", "none"]);
        link_args(&mut cmd, link);
        compile(cmd);
        run(&bin, &[], link)
            .assert_success()
            .assert_stdout_has("round trip: \"hello from C++\"")
            .assert_stdout_has("end of stream came back")
            .assert_stdout_has("websocket echo: \"ping over a websocket\"")
            .assert_stdout_has("nothing within 50 ms: timeout")
            .assert_stdout_has("bad URL throws invalid argument: ")
            .assert_stdout_has("bad scheme as an error code: invalid argument (")
            .assert_stdout_has("cpp echo: OK");
    }
}

#[test]
fn examples_build_as_cpp() {
    assert!(
        cxx_compiler().is_some(),
        "no C++ compiler ($CXX or c++): run scripts/setup.sh"
    );
    let dir = WorkDir::new("cpp");
    for example in [
        "dbus_forward",
        "echo_roundtrip",
        "lab_connect",
        "port_forward",
        "tcp_client",
    ] {
        let bin = dir.path(&format!("{example}-cpp"));
        let mut cmd = cxx_compiler().unwrap();
        cmd.arg(repo().join(format!("c-examples/{example}.c")))
            .arg("-o")
            .arg(&bin);
        link_args(&mut cmd, Link::Shared);
        compile(cmd);
        if example == "echo_roundtrip" {
            run(&bin, &[], Link::Shared)
                .assert_success()
                .assert_stdout_has("echo round trip: OK");
        }
    }
}

/// The first fenced C block of README.md ("A quick example in C").
fn readme_example() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme.find("```c\n").expect("a ```c block in README.md") + "```c\n".len();
    let len = readme[start..].find("```").expect("the end of the block");
    readme[start..start + len].to_string()
}

#[test]
fn readme_c_example_builds_warning_free_as_c_and_cpp() {
    let dir = WorkDir::new("readme");
    let source = dir.path("readme_example.c");
    std::fs::write(&source, readme_example()).unwrap();
    let mut cmd = toolchain::c_compiler();
    cmd.arg(&source).arg("-o").arg(dir.path("readme-c"));
    link_args(&mut cmd, Link::Shared);
    compile(cmd);
    if let Some(mut cmd) = cxx_compiler() {
        cmd.arg(&source).arg("-o").arg(dir.path("readme-cpp"));
        link_args(&mut cmd, Link::Shared);
        compile(cmd);
    }
}

#[test]
fn ws_chat_broadcasts_to_every_client_with_both_libraries() {
    let dir = WorkDir::new("ws_chat");
    for link in Link::BOTH {
        let bin = build(&dir, "c-examples/ws_chat.c", link);
        run(&bin, &[], link)
            .assert_success()
            .assert_stdout_has("chat server on ws://127.0.0.1:")
            .assert_stdout_has("a client joined on /room2")
            .assert_stdout_has("client 2 got \"hello, everyone\"")
            .assert_stdout_has("chat: OK");
    }
}

#[test]
fn ws_bridge_round_trips_with_both_libraries() {
    let dir = WorkDir::new("ws_bridge");
    for link in Link::BOTH {
        let bin = build(&dir, "c-examples/ws_bridge.c", link);
        run(&bin, &[], link)
            .assert_success()
            .assert_stdout_has(" -> echo:")
            .assert_stdout_has("round trip through the bridge: \"through the websocket bridge\"")
            .assert_stdout_has("ws bridge: OK");
    }
}

#[test]
fn ws_client_gets_the_reply_from_a_websocket_server() {
    let dir = WorkDir::new("ws_client");
    let server = jumpwire::websocket::Server::serve("ws://127.0.0.1:0", |s| {
        let mut buf = vec![0u8; 4096];
        let path = jumpwire::websocket::request_path(s)
            .unwrap_or("")
            .to_string();
        while let Ok(Some(n)) = s.receive(&mut buf, None) {
            let mut reply = format!("{path}: ").into_bytes();
            reply.extend_from_slice(&buf[..n]);
            if s.send(&reply, Some(SERVER_WAIT)).is_err() {
                break;
            }
        }
    })
    .unwrap();
    let url = format!("{}chat?x=1", server.address());
    for link in Link::BOTH {
        let bin = build(&dir, "c-examples/ws_client.c", link);
        run(&bin, &[&url, "hi there"], link)
            .assert_success()
            .assert_stdout_has(&format!("connected to {url}\n"))
            .assert_stdout_has("sent one message of 8 bytes\n")
            .assert_stdout_has("reply: /chat?x=1: hi there\n");
    }
    // A refused port: JW_ERR_CONNECTION with the URL in the message.
    let (_held, port) = refusing_port();
    let bin = build(&dir, "c-examples/ws_client.c", Link::Shared);
    let r = run(&bin, &[&format!("ws://127.0.0.1:{port}/")], Link::Shared);
    assert!(!r.status.success(), "{r}");
    assert!(r.stderr.contains("connection error (-3)"), "{r}");
    assert!(r.stderr.contains(&format!("ws://127.0.0.1:{port}/")), "{r}");
    server.close();
}

/// tests/c/session.c: jw_session's argument errors, copies, client use,
/// and its close with driver streams open.
#[test]
fn session_checks_pass_with_both_libraries() {
    let dir = WorkDir::new("session");
    for link in Link::BOTH {
        let bin = build(&dir, "tests/c/session.c", link);
        let r = run(&bin, &[], link);
        r.assert_success().assert_stdout_has(" checks, 0 failed");
        assert!(!r.stderr.contains("FAIL"), "{r}");
    }
}

/// c-examples/exporter.c: a TCP service and the echo network served as a
/// session on a Unix socket, used through jumpwire's own client.
#[test]
fn exporter_serves_a_session_with_both_libraries() {
    let dir = WorkDir::new("exporter");
    let echo = common::tcp_echo_server("127.0.0.1:0");
    for link in Link::BOTH {
        let bin = build(&dir, "c-examples/exporter.c", link);
        let sock = dir.path(&format!("session-{link:?}.sock"));
        let sock = sock.to_str().unwrap();
        run(&bin, &[&format!("tcp://{echo}"), sock], link)
            .assert_success()
            .assert_stdout_has(&format!("session listening on unix:{sock}"))
            .assert_stdout_has(&format!("JUMPSTARTER_HOST={sock}"))
            .assert_stdout_has(
                "echo through the session: \"hello through the session\", then end of stream",
            )
            .assert_stdout_has(&format!("tcp driver's address: tcp://{echo}"))
            .assert_stdout_has("connected to the TCP service through the session")
            .assert_stdout_has("exporter: OK");
    }
}

/// c-examples/exporter.c in its `lab` mode, configured by the `JMP_*`
/// variables alone (`jw_exporter_start(NULL, ...)`): it registers with the
/// test controller, jumpwire's lease client reaches its `tcp` driver through
/// the lab's router, and Enter takes it offline and unregisters it.
#[test]
fn exporter_serves_a_lease_configured_by_the_environment() {
    use common::lab::{Lab, RouterKind};
    use std::io::BufRead;
    let lab = Lab::start_bare(RouterKind::Jumpwire);
    let echo = common::tcp_echo_server("127.0.0.1:0");
    let dir = WorkDir::new("exporter_lab");
    let bin = build(&dir, "c-examples/exporter.c", Link::Static);
    let sock = dir.path("session.sock");
    let ca = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&lab.cert).unwrap())
    };
    let mut child = std::process::Command::new(&bin)
        .args([&format!("tcp://{echo}"), sock.to_str().unwrap(), "lab"])
        .env("JMP_ENDPOINT", &lab.controller)
        .env("JMP_TOKEN", "exporter-token")
        .env("JMP_NAMESPACE", "default")
        .env("JMP_NAME", "bench")
        .env(
            "JMP_TLS",
            format!("{{\"ca\": \"{ca}\", \"insecure\": false}}"),
        )
        .env_remove("JMP_CLIENT_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let (tx, lines) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut seen = Vec::new();
    let mut until = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(40);
        while !seen.iter().any(|l: &String| l.contains(what)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(l) => seen.push(l),
                Err(_) => {
                    // SAFETY: kill(2) on the child this test started, by its pid.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    panic!("exporter.c never printed {what:?}: {seen:#?}");
                }
            }
        }
    };
    until("registered with the lab (the JMP_* variables)");
    lab.ctl.until("REGISTERED bench");
    lab.ctl.until("STATUS bench EXPORTER_STATUS_LEASE_READY");

    let net = jumpwire::Network::new(&lab.url("tcp", "lease1", "alice")).unwrap();
    assert_eq!(net.address().unwrap(), format!("tcp://{echo}"));
    let s = net.connect(common::LONG).unwrap();
    common::round_trip(&s, &common::pattern(1 << 20, 17), 64 * 1024);
    s.close();

    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    until("exporter: OK");
    assert!(seen.iter().any(|l| l == "left the lab"), "{seen:#?}");
    assert!(child.wait().unwrap().success(), "{seen:#?}");
    lab.ctl.until("STATUS bench EXPORTER_STATUS_OFFLINE");
    lab.ctl.until("UNREGISTERED bench");
}

#[test]
fn router_export_runs_the_routed_path_with_both_libraries() {
    let dir = WorkDir::new("router_export");
    for link in Link::BOTH {
        let bin = build(&dir, "c-examples/router_export.c", link);
        run(&bin, &[], link)
            .assert_success()
            .assert_stdout_has("router listening on grpc://127.0.0.1:")
            .assert_stdout_has("exporter exporting echo: through the router")
            .assert_stdout_has(
                "round trip through router and exporter: \"hello through the router\"",
            )
            .assert_stdout_has("end of stream came back")
            .assert_stdout_has("exporter finished")
            .assert_stdout_has("router export: OK");
    }
}

#[test]
fn router_forward_forwards_a_local_port_onto_router_streams_with_both_libraries() {
    let dir = WorkDir::new("router_forward");
    for link in Link::BOTH {
        let bin = build(&dir, "c-examples/router_forward.c", link);
        run(&bin, &["echo:", "3"], link)
            .assert_success()
            .assert_stdout_has("forwarding tcp://127.0.0.1:")
            .assert_stdout_has("-> grpc://127.0.0.1:")
            .assert_stdout_has("round trip: \"connection 1 through the router\"")
            .assert_stdout_has("round trip: \"connection 3 through the router\"")
            .assert_stdout_has("end of stream came back")
            .assert_stdout_has("router forward: OK");
    }
}

/// `lab_connect` inside a session (upstream's own, `JUMPSTARTER_HOST`
/// naming it as `jmp shell` does): by a driver's name, a nested one's, and
/// an unknown one's (the message lists the names). Needs `JW_PYTHON`.
#[test]
fn lab_connect_reaches_drivers_by_name_through_jumpstarter_host() {
    let peer = common::session::Peer::start(&[]);
    let dir = WorkDir::new("lab_connect");
    let limit = Duration::from_secs(60);
    for link in Link::BOTH {
        let bin = build(&dir, "c-examples/lab_connect.c", link);
        let host = [("JUMPSTARTER_HOST", Some(peer.socket.as_str()))];
        run_env(&bin, &[], link, limit, &host)
            .assert_success()
            .assert_stdout_has(&format!("driver tcp: address tcp://{}\n", peer.tcp))
            .assert_stdout_has("round trip through the session: \"hello from the lab\"")
            .assert_stdout_has("end of stream came back through the session")
            .assert_stdout_has("forwarding tcp://127.0.0.1:")
            .assert_stdout_has("round trip through the forward: \"hello through the forward\"")
            .assert_stdout_has("lab connect: OK");
        run_env(&bin, &["dut.console"], link, limit, &host).assert_success();
        run_env(&bin, &["echo"], link, limit, &host)
            .assert_success()
            .assert_stdout_has("driver echo: no address (");
        run_env(&bin, &["nope"], link, limit, &host)
            .assert_code(1)
            .assert_stderr_has("invalid argument (-1)")
            .assert_stderr_has("tcp, udp, unix, echo, dut, dut.console");
        run_env(&bin, &[], link, limit, &[("JUMPSTARTER_HOST", None)])
            .assert_code(1)
            .assert_stderr_has("JUMPSTARTER_HOST is not set");
    }
}
