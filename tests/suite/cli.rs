//! The `jumpwire` command, run as a child process of the built binary
//! (`CARGO_BIN_EXE_jumpwire`): `forward` (TCP and Unix, stopped by
//! SIGTERM/SIGINT with exit 0), `cat` (half-close, refused and reset peers),
//! `router serve`/`token`/`export` with a client through the router,
//! `ws serve --echo`/`--broadcast-stdin`, and the usage errors, `--help` and
//! `--version`. Every child is killed by its pid when its test ends, and
//! every wait is bounded.

use crate::common::{LONG, TempDir, pattern, recv_exact, refusing_port, routing, tcp_echo_server};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a child may take for anything it should do at once.
const WITHIN: Duration = Duration::from_secs(10);

/// A running `jumpwire`: its stdout as it comes, its stderr collected.
struct Cli {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Receiver<Vec<u8>>,
    pending: Vec<u8>,
    err: Arc<Mutex<String>>,
    err_more: Receiver<()>,
}

impl Cli {
    /// Starts `jumpwire ARGS` with stdin piped when `stdin` is true (else
    /// from /dev/null).
    fn start(args: &[&str], stdin: bool) -> Cli {
        Cli::start_program(env!("CARGO_BIN_EXE_jumpwire"), args, stdin)
    }

    /// [`Cli::start`] of another program (one that runs `jumpwire`).
    fn start_program(program: &str, args: &[&str], stdin: bool) -> Cli {
        let mut child = Command::new(program)
            .args(args)
            .env_remove("JW_LOG")
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting jumpwire");
        let (out_tx, out) = crossbeam_channel::unbounded();
        let mut stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                if out_tx.send(buf[..n].to_vec()).is_err() {
                    return;
                }
            }
        });
        let err = Arc::new(Mutex::new(String::new()));
        let (more_tx, err_more) = crossbeam_channel::unbounded();
        let mut stderr = child.stderr.take().unwrap();
        let e = err.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                e.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
                let _ = more_tx.send(());
            }
        });
        let stdin = child.stdin.take();
        Cli {
            child,
            stdin,
            out,
            pending: Vec::new(),
            err,
            err_more,
        }
    }

    fn spawn(args: &[&str]) -> Cli {
        Cli::start(args, false)
    }

    /// The next line of stdout, within [`WITHIN`].
    fn line(&mut self) -> String {
        let until = Instant::now() + WITHIN;
        loop {
            if let Some(i) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=i).collect();
                return String::from_utf8(line[..i].to_vec()).unwrap();
            }
            match self.out.recv_deadline(until) {
                Ok(chunk) => self.pending.extend(chunk),
                Err(e) => panic!("no line on stdout ({e:?}); stderr: {}", self.stderr()),
            }
        }
    }

    /// Waits (within [`WITHIN`]) until stdout shows `needle`, and consumes
    /// the output up to its end.
    fn wait_stdout(&mut self, needle: &str) {
        let until = Instant::now() + WITHIN;
        loop {
            let text = String::from_utf8_lossy(&self.pending).into_owned();
            if let Some(i) = text.find(needle) {
                let upto = text[..i + needle.len()].len();
                self.pending.drain(..upto);
                return;
            }
            match self.out.recv_deadline(until) {
                Ok(chunk) => self.pending.extend(chunk),
                Err(e) => panic!("{needle:?} not on stdout ({e:?}): {text:?}"),
            }
        }
    }

    /// Everything stdout still holds, up to its end (within [`WITHIN`]).
    fn rest(&mut self) -> Vec<u8> {
        let until = Instant::now() + WITHIN;
        loop {
            match self.out.recv_deadline(until) {
                Ok(chunk) => self.pending.extend(chunk),
                Err(RecvTimeoutError::Disconnected) => return std::mem::take(&mut self.pending),
                Err(RecvTimeoutError::Timeout) => panic!("stdout did not end"),
            }
        }
    }

    fn stderr(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    /// Waits (within [`WITHIN`]) until stderr holds `needle`.
    fn wait_stderr(&self, needle: &str) {
        let until = Instant::now() + WITHIN;
        while !self.stderr().contains(needle) {
            if self.err_more.recv_deadline(until).is_err() {
                panic!("{needle:?} not on stderr: {}", self.stderr());
            }
        }
    }

    /// Sends `sig` (`TERM`, `INT`) to the child, by its pid.
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args(["-s", sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -s {sig} failed");
    }

    /// Closes the child's stdin.
    fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// The child's exit status, within [`WITHIN`].
    fn wait(&mut self) -> ExitStatus {
        let until = Instant::now() + WITHIN;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < until,
                "jumpwire did not exit; stderr: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the end of the stderr reader (after exit), for the whole text.
    fn final_stderr(&self) -> String {
        let until = Instant::now() + WITHIN;
        while self.err_more.recv_deadline(until).is_ok() {}
        self.stderr()
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a finished `jumpwire` run gave.
struct Ran {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

/// Runs `jumpwire ARGS` with `input` on stdin (then its end) to its exit.
fn run(args: &[&str], input: &[u8]) -> Ran {
    let mut cli = Cli::start(args, true);
    let mut stdin = cli.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // A child that exits early closes its end: not this test's failure.
        let _ = stdin.write_all(&input);
    });
    let status = cli.wait();
    writer.join().unwrap();
    let stdout = cli.rest();
    let stderr = cli.final_stderr();
    Ran {
        status,
        stdout,
        stderr,
    }
}

/// `status` is the exit code `code`.
fn assert_code(r: &Ran, code: i32) {
    assert_eq!(
        r.status.code(),
        Some(code),
        "stdout: {:?}, stderr: {}",
        String::from_utf8_lossy(&r.stdout),
        r.stderr
    );
}

/// A TCP round trip through `addr` (`tcp://IP:PORT`): sends `data`,
/// half-closes, and reads the echo to its end. Returns the client's local
/// address as the listener logs its peer (`tcp://127.0.0.1:PORT`).
fn tcp_round_trip(addr: &str, data: &[u8]) -> String {
    let mut c = TcpStream::connect(addr.strip_prefix("tcp://").unwrap()).unwrap();
    c.set_read_timeout(Some(WITHIN)).unwrap();
    c.set_write_timeout(Some(WITHIN)).unwrap();
    let me = format!("tcp://{}", c.local_addr().unwrap());
    c.write_all(data).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap();
    assert!(back == data, "echo differs");
    me
}

#[test]
fn forward_tcp_to_tcp_round_trips_logs_the_connection_and_sigterm_exits_0() {
    let echo = tcp_echo_server("127.0.0.1:0");
    let target = format!("tcp://{echo}");
    let mut cli = Cli::spawn(&["forward", "-v", "tcp://127.0.0.1:0", &target]);
    let addr = cli.line();
    assert!(addr.starts_with("tcp://127.0.0.1:"), "{addr}");
    let me = tcp_round_trip(&addr, &pattern(256 << 10, 1));
    // At -v, each connection is on stderr (its peer is the client).
    cli.wait_stderr(&me);
    cli.signal("TERM");
    assert_eq!(cli.wait().code(), Some(0), "{}", cli.stderr());
    let err = cli.final_stderr();
    assert!(err.contains("SIGTERM: closing"), "{err}");
    // The closing summary counts the connection and its bytes each way.
    let n = 256 << 10;
    assert!(
        err.contains(&format!(
            "{addr}: accepted 1, refused 0, bytes in {n}, bytes out {n}"
        )),
        "{err}"
    );
}

#[test]
fn forward_shows_live_connection_and_byte_counts_when_stderr_is_a_terminal() {
    // `script` (util-linux, in every Debian) runs the command on a
    // pseudo-terminal and copies what it writes to our pipe; killing it
    // hangs the terminal up, which ends the command.
    let cmd = format!(
        "'{}' forward tcp://127.0.0.1:0 echo:",
        env!("CARGO_BIN_EXE_jumpwire")
    );
    let mut cli = Cli::start_program("script", &["-qfec", &cmd, "/dev/null"], false);
    let addr = cli.line().trim_end_matches('\r').to_string();
    assert!(addr.starts_with("tcp://127.0.0.1:"), "{addr}");
    cli.wait_stdout(&format!(
        "{addr}: 0 open, 0 accepted, 0 refused, 0 B in, 0 B out"
    ));
    let mut c = TcpStream::connect(addr.strip_prefix("tcp://").unwrap()).unwrap();
    cli.wait_stdout("\r\x1b[K");
    cli.wait_stdout(&format!(
        "{addr}: 1 open, 1 accepted, 0 refused, 0 B in, 0 B out"
    ));
    // Bytes each way, as they move (the echo sends them back).
    c.write_all(&[7u8; 3000]).unwrap();
    let mut back = [0u8; 3000];
    c.read_exact(&mut back).unwrap();
    cli.wait_stdout(&format!(
        "{addr}: 1 open, 1 accepted, 0 refused, 2.9 KiB in, 2.9 KiB out"
    ));
    drop(c);
    cli.wait_stdout(&format!(
        "{addr}: 0 open, 1 accepted, 0 refused, 2.9 KiB in, 2.9 KiB out"
    ));
}

#[test]
fn forward_from_a_unix_socket_onto_echo_stops_on_sigint_and_removes_the_socket() {
    let dir = TempDir::new("cli-fwd");
    let path = dir.path().join("fwd.sock");
    let listen = format!("unix:{}", path.display());
    let mut cli = Cli::spawn(&["forward", &listen, "echo:"]);
    assert_eq!(cli.line(), listen);
    let mut c = std::os::unix::net::UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(WITHIN)).unwrap();
    c.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    cli.signal("INT");
    assert_eq!(cli.wait().code(), Some(0), "{}", cli.stderr());
    assert!(!path.exists(), "the socket file is left behind");
    // Without -v, a clean run says nothing.
    assert_eq!(cli.final_stderr(), "");
}

#[test]
fn cat_copies_stdin_to_a_tcp_echo_and_half_closes_at_its_end() {
    // The echo server ends its side only after ours: cat's clean exit with
    // every byte proves the half-close went through.
    let echo = tcp_echo_server("127.0.0.1:0");
    let data = pattern(1 << 20, 2);
    let r = run(&["cat", &format!("tcp://{echo}")], &data);
    assert_code(&r, 0);
    assert!(r.stdout == data, "cat's output differs from its input");
    // The in-memory echo sends the half-close back as the end.
    let r = run(&["cat", "echo:"], b"round and back\n");
    assert_code(&r, 0);
    assert_eq!(r.stdout, b"round and back\n");
}

#[test]
fn cat_fails_with_exit_1_and_the_librarys_message_when_refused_or_reset() {
    let (_held, port) = refusing_port();
    let r = run(&["cat", &format!("tcp://127.0.0.1:{port}")], b"");
    assert_code(&r, 1);
    assert!(
        r.stderr.starts_with("jumpwire: connection error: ") && r.stderr.contains("refused"),
        "{}",
        r.stderr
    );
    // A peer that resets the connection once it has read what came.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("tcp://{}", l.local_addr().unwrap());
    let peer = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        c.set_read_timeout(Some(WITHIN)).unwrap();
        let mut got = [0u8; 5];
        c.read_exact(&mut got).unwrap();
        socket2::SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        got
    });
    let mut cli = Cli::start(&["cat", &url], true);
    cli.stdin.as_mut().unwrap().write_all(b"hello").unwrap();
    assert_eq!(&peer.join().unwrap(), b"hello");
    assert_eq!(cli.wait().code(), Some(1));
    let err = cli.final_stderr();
    assert!(err.starts_with("jumpwire: connection error: "), "{err}");
}

#[test]
fn router_serve_token_and_export_carry_cat_clients_through_the_router() {
    let echo = tcp_echo_server("127.0.0.1:0");
    let mut router = Cli::spawn(&["router", "serve", "grpc://127.0.0.1:0?key=cli-key"]);
    let addr = router.line();
    assert!(addr.starts_with("grpc://127.0.0.1:"), "{addr}");
    let t = run(&["router", "token", "cli-key", "dev-1", "--ttl", "60"], b"");
    assert_code(&t, 0);
    let token = String::from_utf8(t.stdout).unwrap().trim_end().to_string();
    assert_eq!(token.split('.').count(), 3, "{token}");
    let target = format!("tcp://{echo}");
    let exporter = Cli::spawn(&["router", "export", "-v", &addr, &token, &target]);
    // One pairing after another: each cat is a new client of the stream.
    for (i, msg) in [&b"first client\n"[..], b"second client\n"]
        .iter()
        .enumerate()
    {
        let r = run(&["cat", &addr, "--token", &token], msg);
        assert_code(&r, 0);
        assert_eq!(&r.stdout, msg);
        exporter.wait_stderr(&format!("pairing {} ended", i + 1));
    }
    let mut exporter = exporter;
    exporter.signal("INT");
    assert_eq!(exporter.wait().code(), Some(0), "{}", exporter.stderr());
    router.signal("TERM");
    assert_eq!(router.wait().code(), Some(0), "{}", router.stderr());
    // A token signed with another key is refused: the exporter ends, 1.
    let mut router = Cli::spawn(&["router", "serve", "grpc://127.0.0.1:0?key=cli-key"]);
    let addr = router.line();
    let wrong = run(&["router", "token", "other-key", "dev-1"], b"");
    let wrong = String::from_utf8(wrong.stdout).unwrap();
    let r = run(&["router", "export", &addr, wrong.trim_end(), &target], b"");
    assert_code(&r, 1);
    assert!(
        r.stderr.starts_with("jumpwire: unauthenticated"),
        "{}",
        r.stderr
    );
    router.signal("TERM");
    assert_eq!(router.wait().code(), Some(0));
}

#[test]
fn a_grpcs_router_prints_the_certificate_file_its_clients_trust() {
    let mut router = Cli::spawn(&["router", "serve", "grpcs://127.0.0.1:0?key=tls-key"]);
    let addr = router.line();
    assert!(addr.starts_with("grpcs://127.0.0.1:"), "{addr}");
    let cert = router.line();
    let pem = std::fs::read_to_string(&cert).unwrap();
    assert!(pem.contains("BEGIN CERTIFICATE"), "{pem}");
    let (a, b) = routing::pair_at(&format!("{addr}?ca={cert}"), "tls-key", "tls-1");
    routing::ping_pong(&a, &b, 1);
    router.signal("TERM");
    assert_eq!(router.wait().code(), Some(0), "{}", router.stderr());
    assert!(
        !std::path::Path::new(&cert).exists(),
        "the temporary certificate file is left behind"
    );
    // --write-cert: that file, kept.
    let dir = TempDir::new("cli-cert");
    let file = dir.path().join("router.pem");
    let file = file.to_str().unwrap();
    let mut router = Cli::spawn(&[
        "router",
        "serve",
        "grpcs://127.0.0.1:0?key=tls-key",
        "--write-cert",
        file,
    ]);
    let addr = router.line();
    assert_eq!(router.line(), file);
    let (a, b) = routing::pair_at(&format!("{addr}?ca={file}"), "tls-key", "tls-2");
    routing::ping_pong(&a, &b, 2);
    router.signal("INT");
    assert_eq!(router.wait().code(), Some(0), "{}", router.stderr());
    assert!(
        std::fs::read_to_string(file)
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
}

#[test]
fn ws_serve_echo_answers_a_websocket_client() {
    let mut cli = Cli::spawn(&["ws", "serve", "ws://127.0.0.1:0", "--echo"]);
    let addr = cli.line();
    assert!(addr.starts_with("ws://127.0.0.1:"), "{addr}");
    let s = jumpwire::connect(&addr, LONG).unwrap();
    s.send(b"hi", LONG).unwrap();
    assert_eq!(recv_exact(&s, 2, 64, WITHIN), b"hi");
    let big = pattern(300 << 10, 3);
    s.send(&big, LONG).unwrap();
    assert!(recv_exact(&s, big.len(), 1 << 20, WITHIN) == big);
    s.close();
    cli.signal("TERM");
    assert_eq!(cli.wait().code(), Some(0), "{}", cli.stderr());
}

#[test]
fn ws_serve_broadcasts_stdin_lines_and_closes_at_its_end() {
    let mut cli = Cli::start(
        &["ws", "serve", "-v", "ws://127.0.0.1:0", "--broadcast-stdin"],
        true,
    );
    let addr = cli.line();
    let s = jumpwire::connect(&addr, LONG).unwrap();
    // Broadcasts reach the clients connected when they are sent: the
    // server logs each client once it takes its broadcasts.
    cli.wait_stderr("client connected");
    cli.stdin
        .as_mut()
        .unwrap()
        .write_all(b"hello\nworld\n")
        .unwrap();
    let mut buf = [0u8; 64];
    for want in [&b"hello"[..], b"world"] {
        let n = s.receive(&mut buf, LONG).unwrap().unwrap();
        assert_eq!(&buf[..n], want);
    }
    cli.close_stdin();
    // The server closes (1001, "going away"): the client's end of stream.
    assert_eq!(s.receive(&mut buf, LONG), Ok(None));
    assert_eq!(cli.wait().code(), Some(0), "{}", cli.stderr());
}

#[test]
fn session_serve_serves_networks_by_name_until_sigterm_and_removes_its_socket() {
    let echo = tcp_echo_server("127.0.0.1:0");
    let dir = TempDir::new("cli-sess");
    let path = dir.path().join("session.sock");
    let listen = format!("unix:{}", path.display());
    let tcp = format!("console=tcp://{echo}");
    let mut cli = Cli::spawn(&["session", "serve", "-v", &listen, &tcp, "loop=echo:"]);
    assert_eq!(cli.line(), listen);
    // The value for JUMPSTARTER_HOST: the socket's path.
    let host = cli.line();
    assert_eq!(host, path.display().to_string());
    for (driver, data) in [("console", pattern(1 << 20, 3)), ("loop", pattern(4096, 4))] {
        let net =
            jumpwire::Network::new(&format!("jumpstarter:unix:{host}?driver={driver}")).unwrap();
        let s = net.connect(LONG).unwrap();
        s.send(&data, LONG).unwrap();
        assert_eq!(recv_exact(&s, data.len(), 65536, WITHIN), data, "{driver}");
        s.close();
    }
    // A name the session does not have: the names it has.
    let net = jumpwire::Network::new(&format!("jumpstarter:unix:{host}?driver=nope")).unwrap();
    let e = net.connect(LONG).unwrap_err().to_string();
    assert!(e.contains("console") && e.contains("loop"), "{e}");
    cli.signal("TERM");
    assert_eq!(cli.wait().code(), Some(0), "{}", cli.stderr());
    assert!(cli.final_stderr().contains("SIGTERM: closing"));
    assert!(!path.exists(), "the session's socket is removed");
}

#[test]
fn usage_errors_exit_2_with_a_message_and_a_hint() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "jumpwire: missing COMMAND\nTry 'jumpwire --help'.\n"),
        (&["--bogus"], "jumpwire: unknown option --bogus\n"),
        (&["frobnicate"], "jumpwire: unknown command 'frobnicate'\n"),
        (
            &["forward", "tcp://127.0.0.1:0"],
            "jumpwire: missing TARGET_URL\nTry 'jumpwire forward --help'.\n",
        ),
        (
            &["forward", "a", "b", "c"],
            "jumpwire: unexpected argument 'c'\n",
        ),
        (
            &["cat"],
            "jumpwire: missing URL\nTry 'jumpwire cat --help'.\n",
        ),
        (
            &["cat", "--nope", "echo:"],
            "jumpwire: unknown option --nope\n",
        ),
        (
            &["cat", "echo:", "--timeout"],
            "jumpwire: --timeout needs a value\n",
        ),
        (&["router"], "jumpwire: missing serve, token or export\n"),
        (
            &["router", "token", "k"],
            "jumpwire: missing STREAM_ID\nTry 'jumpwire router token --help'.\n",
        ),
        (
            &["router", "token", "k", "s", "--ttl", "soon"],
            "jumpwire: --ttl soon: not a whole number of seconds\n",
        ),
        (
            &["ws", "serve", "ws://127.0.0.1:0"],
            "jumpwire: give one of --echo and --broadcast-stdin\n",
        ),
        (&["session"], "jumpwire: missing serve\n"),
        (
            &["session", "serve", "unix:/tmp/x"],
            "jumpwire: give at least one NAME=URL\n",
        ),
        (
            &["session", "serve", "unix:/tmp/x", "echo:"],
            "jumpwire: 'echo:' is not NAME=URL\n",
        ),
        // The library's own message for a bad URL or value.
        (
            &[
                "session",
                "serve",
                "tcp://127.0.0.1:0",
                "a=echo:",
                "a=echo:",
            ],
            "jumpwire: invalid argument: driver 1: the name \"a\" is given twice\n",
        ),
        (
            &["session", "serve", "tcp://127.0.0.1:0", "a=bogus://x"],
            "jumpwire: invalid argument: bogus://x: ",
        ),
        (
            &["forward", "bogus://x", "echo:"],
            "jumpwire: invalid argument: bogus://x: ",
        ),
        (&["cat", "tcp://nohost"], "jumpwire: invalid argument: "),
        (
            &["router", "token", "k", "s", "--ttl", "0"],
            "jumpwire: invalid argument: the token's lifetime must be at least 1 s\n",
        ),
    ];
    for (args, want) in cases {
        let r = run(args, b"");
        assert_eq!(r.status.code(), Some(2), "{args:?}: {}", r.stderr);
        assert!(r.stderr.starts_with(want), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_for_each_command_and_the_version_go_to_stdout_with_exit_0() {
    let cases: &[(&[&str], &str)] = &[
        (&["--help"], "Usage: jumpwire [-v] COMMAND"),
        (&["-h"], "Usage: jumpwire [-v] COMMAND"),
        (&["forward", "--help"], "Usage: jumpwire forward "),
        (&["forward", "tcp://x:1", "-h"], "Usage: jumpwire forward "),
        (&["cat", "--help"], "Usage: jumpwire cat "),
        (&["router", "--help"], "Usage: jumpwire router serve"),
        (
            &["router", "serve", "--help"],
            "Usage: jumpwire router serve ",
        ),
        (
            &["router", "token", "--help"],
            "Usage: jumpwire router token ",
        ),
        (
            &["router", "export", "--help"],
            "Usage: jumpwire router export ",
        ),
        (&["ws", "--help"], "Usage: jumpwire ws serve"),
        (&["ws", "serve", "--help"], "Usage: jumpwire ws serve "),
        (&["session", "--help"], "Usage: jumpwire session serve"),
        (
            &["session", "serve", "--help"],
            "Usage: jumpwire session serve ",
        ),
    ];
    for (args, want) in cases {
        let r = run(args, b"");
        assert_code(&r, 0);
        let out = String::from_utf8(r.stdout).unwrap();
        assert!(out.starts_with(want), "{args:?}: {out}");
        assert!(out.ends_with('\n') && r.stderr.is_empty(), "{args:?}");
    }
    let r = run(&["--version"], b"");
    assert_code(&r, 0);
    assert_eq!(
        String::from_utf8(r.stdout).unwrap(),
        format!("jumpwire {}\n", env!("CARGO_PKG_VERSION"))
    );
}
