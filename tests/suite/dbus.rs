//! The D-Bus driver (`dbus:ADDRESS`, `dbus:session`, `dbus:system`) against a
//! private `dbus-daemon` that each test starts (listening on a Unix socket and
//! on TCP port 0) and kills at its end, even when it fails:
//! - a real D-Bus conversation with the `dbus` crate (Hello, `ListNames`, a
//!   method call on a service the test registers, a signal received, a large
//!   argument) through a forwarding [`Listener`] — Unix and TCP listeners,
//!   onto the bus's Unix and TCP addresses — reached at
//!   [`Listener::dbus_address`];
//! - the raw bus protocol over a jumpwire [`Stream`]: the SASL exchange by
//!   hand, then `Hello` and `ListNames` messages marshalled by libdbus;
//! - `dbus-send` through the forwarded address, when it is installed;
//! - `dbus:session` / `dbus:system` reading their environment variables (in a
//!   child process, so that no test changes this process's environment);
//! - connecting to an address list in order, refused buses, malformed
//!   addresses at `Network::new` and `jw_network_new`;
//! - the bus going away mid-conversation: the client's next call fails at
//!   once, the forwarded connection ends, the listener keeps serving (a new
//!   bus at the same address) and closes promptly;
//! - `c-examples/dbus_forward.c`, built and run against both libraries.
//!
//! `dbus-daemon` and `dbus-send` must be installed (`scripts/setup.sh` does it): a test fails, naming the missing tool, rather than passing without having run.

use crate::common;
use crate::toolchain;

use common::{SLACK, TempDir};
use dbus::Message;
use dbus::blocking::Connection;
use dbus::channel::Channel;
use dbus::message::{MatchRule, MessageType};
use jumpwire::ffi::{
    jw_last_error, jw_listen, jw_listener, jw_listener_close, jw_listener_dbus_address, jw_network,
    jw_network_free, jw_network_new, jw_status,
};
use jumpwire::forward::Listener;
use jumpwire::{Error, Network, Stream};
use std::ffi::{CStr, CString, c_char};
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use toolchain::{Link, WorkDir, build, run};

/// Timeout of every D-Bus call and jumpwire step (only a hang reaches it).
const CALL: Duration = Duration::from_secs(10);
const STEP: Option<Duration> = Some(CALL);

/// The test service: its bus name, object path and interface.
const SERVICE: &str = "dev.jumpwire.Test";
const PATH: &str = "/dev/jumpwire/Test";
const IFACE: &str = "dev.jumpwire.Test";

// ---------------------------------------------------------------- the bus

/// A private `dbus-daemon`, killed (SIGKILL) and reaped when dropped.
struct Daemon {
    child: Child,
    /// Always `Some` but in [`Daemon::kill`].
    dir: Option<TempDir>,
    /// `unix:path=DIR/bus,guid=...` as the daemon printed it.
    unix: String,
    /// `tcp:host=127.0.0.1,port=N,family=ipv4,guid=...`.
    tcp: String,
}

impl Daemon {
    /// Starts a daemon, or returns `None` (after a note) if `dbus-daemon` is
    /// not installed.
    fn start() -> Option<Daemon> {
        let dir = TempDir::new("dbus");
        Daemon::start_in(dir)
    }

    fn start_in(dir: TempDir) -> Option<Daemon> {
        let socket = dir.path().join("bus");
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                "<busconfig><type>session</type>\
                 <listen>unix:path={}</listen>\
                 <listen>tcp:host=127.0.0.1,port=0</listen>\
                 <auth>EXTERNAL</auth><auth>ANONYMOUS</auth><allow_anonymous/>\
                 <policy context=\"default\"><allow send_destination=\"*\" eavesdrop=\"true\"/>\
                 <allow eavesdrop=\"true\"/><allow own=\"*\"/></policy></busconfig>",
                socket.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        let spawned = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("dbus-daemon is not installed: run scripts/setup.sh")
            }
            Err(e) => panic!("cannot start dbus-daemon: {e}"),
        };
        // One line: the listen addresses, ';'-separated, port 0 made real.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(CALL).unwrap_or_default();
        let find = |prefix: &str| {
            line.trim()
                .split(';')
                .find(|a| a.starts_with(prefix))
                .map(String::from)
        };
        let (Some(unix), Some(tcp)) = (find("unix:"), find("tcp:")) else {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
            panic!("dbus-daemon printed {line:?}\n--- its stderr ---\n{log}");
        };
        Some(Daemon {
            child,
            dir: Some(dir),
            unix,
            tcp,
        })
    }

    /// Kills the daemon and waits for it; gives back its directory.
    fn kill(mut self) -> TempDir {
        self.stop();
        self.dir.take().expect("the daemon's directory")
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The directory of this daemon's files (its socket, its config).
    fn dir(&self) -> PathBuf {
        self.dir
            .as_ref()
            .expect("the daemon's directory")
            .path()
            .to_path_buf()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `dbus:` + the address.
fn bus(address: &str) -> Network {
    Network::new(&format!("dbus:{address}")).unwrap()
}

// ---------------------------------------------------------------- D-Bus clients

/// A client connection to `address`, registered on the bus (Hello).
fn open(address: &str) -> Result<Connection, dbus::Error> {
    let mut ch = Channel::open_private(address)?;
    ch.register()?;
    Ok(Connection::from(ch))
}

/// A service on the bus, on a thread of its own: owns [`SERVICE`] and
/// answers `Echo(s) -> s` (prefixed with "echo: ") and `Emit(s)` (emits the
/// signal `Ping(s)`, then returns).
struct Service {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl Service {
    fn start(address: &str) -> Service {
        let (ready_tx, ready_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (address, stop) = (address.to_string(), stop.clone());
            std::thread::spawn(move || serve(&address, &stop, &ready_tx))
        };
        let mut s = Service {
            stop,
            thread: Some(thread),
        };
        if ready_rx.recv_timeout(CALL).is_err() {
            let r = s.finish();
            panic!("the test service did not start: {r:?}");
        }
        s
    }

    /// Stops the service thread; its result.
    fn finish(&mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| Err("service panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

fn serve(address: &str, stop: &AtomicBool, ready: &mpsc::Sender<()>) -> Result<(), String> {
    let conn = open(address).map_err(|e| format!("service: connect: {e}"))?;
    let reply = conn
        .request_name(SERVICE, false, true, true)
        .map_err(|e| format!("service: RequestName: {e}"))?;
    if reply != dbus::blocking::stdintf::org_freedesktop_dbus::RequestNameReply::PrimaryOwner {
        return Err(format!("service: RequestName answered {reply:?}"));
    }
    let _ = ready.send(());
    let ch = conn.channel();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
        let m = match ch.blocking_pop_message(Duration::from_millis(50)) {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(e) => return Err(format!("service: {e}")),
        };
        if m.msg_type() != MessageType::MethodCall || m.interface().as_deref() != Some(IFACE) {
            continue;
        }
        let arg: String = m.read1().map_err(|e| format!("service: argument: {e}"))?;
        let answer = match m.member().as_deref() {
            Some("Echo") => m.method_return().append1(format!("echo: {arg}")),
            Some("Emit") => {
                let signal = Message::new_signal(PATH, IFACE, "Ping")
                    .unwrap()
                    .append1(arg);
                ch.send(signal)
                    .map_err(|()| "service: sending the signal")?;
                m.method_return()
            }
            other => return Err(format!("service: unexpected method {other:?}")),
        };
        ch.send(answer).map_err(|()| "service: sending a reply")?;
        ch.flush();
    }
    Ok(())
}

/// `ListNames` on the bus at `address`.
fn list_names(conn: &Connection) -> Vec<String> {
    let bus = conn.with_proxy("org.freedesktop.DBus", "/org/freedesktop/DBus", CALL);
    let (names,): (Vec<String>,) = bus
        .method_call("org.freedesktop.DBus", "ListNames", ())
        .expect("ListNames");
    names
}

/// A whole conversation through the bus address `address`: Hello, ListNames,
/// method calls on the test service (one with a 300 kB argument), a signal.
fn conversation(address: &str) {
    let mut service = Service::start(address);
    let conn = open(address).unwrap_or_else(|e| panic!("connecting to {address}: {e}"));
    let me = conn.unique_name().to_string();
    assert!(me.starts_with(":1."), "unique name {me}");

    let names = list_names(&conn);
    assert!(names.iter().any(|n| n == SERVICE), "{names:?}");
    assert!(names.contains(&me), "{names:?}");
    assert!(
        names.iter().any(|n| n == "org.freedesktop.DBus"),
        "{names:?}"
    );

    let svc = conn.with_proxy(SERVICE, PATH, CALL);
    let (r,): (String,) = svc.method_call(IFACE, "Echo", ("hello",)).unwrap();
    assert_eq!(r, "echo: hello");
    let big: String = (0..300_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let (r,): (String,) = svc.method_call(IFACE, "Echo", (big.as_str(),)).unwrap();
    assert_eq!(r.len(), big.len() + 6);
    assert!(
        r == format!("echo: {big}"),
        "the large argument came back changed"
    );

    let got = Arc::new(Mutex::new(Vec::new()));
    {
        let got = got.clone();
        conn.add_match(
            MatchRule::new_signal(IFACE, "Ping"),
            move |(s,): (String,), _, _| {
                got.lock().unwrap().push(s);
                true
            },
        )
        .unwrap();
    }
    let () = svc.method_call(IFACE, "Emit", ("signal 1",)).unwrap();
    let deadline = Instant::now() + CALL;
    while got.lock().unwrap().is_empty() && Instant::now() < deadline {
        conn.process(Duration::from_millis(50)).unwrap();
    }
    assert_eq!(*got.lock().unwrap(), ["signal 1"]);

    drop(conn);
    assert_eq!(service.finish(), Ok(()));
}

/// Waits until the listener has no forwarded connection left.
fn wait_idle(listener: &Listener) {
    let deadline = Instant::now() + SLACK;
    while listener.connections() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} forwarded connections still open",
            listener.connections()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Closes the listener, which must not take long.
fn close_promptly(listener: Listener) {
    let started = Instant::now();
    listener.close();
    assert!(
        started.elapsed() < SLACK,
        "close took {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------- forwards

#[test]
fn a_conversation_goes_through_a_unix_forward() {
    let Some(d) = Daemon::start() else { return };
    for target in [&d.unix, &d.tcp] {
        let path = d.dir().join("fwd.sock");
        let listener = Listener::bind(&format!("unix:{}", path.display()), &bus(target)).unwrap();
        let address = listener.dbus_address().unwrap();
        assert_eq!(address, format!("unix:path={}", path.display()));
        conversation(&address);
        wait_idle(&listener);
        close_promptly(listener);
        assert!(!path.exists(), "the listener's socket file is left");
    }
}

#[test]
fn a_conversation_goes_through_a_tcp_forward() {
    let Some(d) = Daemon::start() else { return };
    for target in [&d.tcp, &d.unix] {
        let listener = Listener::bind("tcp://127.0.0.1:0", &bus(target)).unwrap();
        let port = listener.address().rsplit(':').next().unwrap().to_string();
        let address = listener.dbus_address().unwrap();
        assert_eq!(address, format!("tcp:host=127.0.0.1,port={port}"));
        conversation(&address);
        wait_idle(&listener);
        close_promptly(listener);
    }
}

#[test]
fn an_abstract_unix_forward_has_an_abstract_dbus_address() {
    let Some(d) = Daemon::start() else { return };
    let name = common::unique("dbus-abstract");
    let listener = Listener::bind(&format!("unix:@{name}"), &bus(&d.unix)).unwrap();
    let address = listener.dbus_address().unwrap();
    assert_eq!(address, format!("unix:abstract={name}"));
    let conn = open(&address).unwrap();
    assert!(
        list_names(&conn)
            .iter()
            .any(|n| n == "org.freedesktop.DBus")
    );
    drop(conn);
    wait_idle(&listener);
    close_promptly(listener);
}

#[test]
fn dbus_send_works_through_the_forward() {
    let Some(d) = Daemon::start() else { return };
    assert!(
        Command::new("dbus-send").arg("--help").output().is_ok(),
        "dbus-send is not installed: run scripts/setup.sh"
    );
    let _service = Service::start(&d.unix);
    let path = d.dir().join("fwd.sock");
    let unix = Listener::bind(&format!("unix:{}", path.display()), &bus(&d.unix)).unwrap();
    let tcp = Listener::bind("tcp://127.0.0.1:0", &bus(&d.tcp)).unwrap();
    for listener in [&unix, &tcp] {
        let address = listener.dbus_address().unwrap();
        let out = dbus_send(&[
            &format!("--bus={address}"),
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.ListNames",
        ]);
        assert!(out.contains("string \"org.freedesktop.DBus\""), "{out}");
        assert!(out.contains(&format!("string \"{SERVICE}\"")), "{out}");
        let out = dbus_send(&[
            &format!("--bus={address}"),
            "--print-reply",
            &format!("--dest={SERVICE}"),
            PATH,
            &format!("{IFACE}.Echo"),
            "string:from dbus-send",
        ]);
        assert!(out.contains("string \"echo: from dbus-send\""), "{out}");
    }
    wait_idle(&unix);
    wait_idle(&tcp);
}

/// Runs `dbus-send` with `args` (killed after 30 s); its stdout. Panics if
/// it fails.
fn dbus_send(args: &[&str]) -> String {
    let mut child = Command::new("dbus-send")
        .arg(format!("--reply-timeout={}", CALL.as_millis()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("dbus-send {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "dbus-send {args:?}: {}\n{stdout}{stderr}",
        out.status
    );
    stdout
}

// ---------------------------------------------------------------- raw stream

/// Reads up to and including the next "\r\n" (the SASL exchange is lines).
fn read_line(s: &Stream, pending: &mut Vec<u8>) -> String {
    let deadline = Instant::now() + CALL;
    loop {
        if let Some(i) = pending.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = pending.drain(..i + 2).collect();
            return String::from_utf8(line).unwrap();
        }
        assert!(Instant::now() < deadline, "no line: {pending:?}");
        let mut buf = [0u8; 4096];
        let n = s
            .receive(&mut buf, STEP)
            .unwrap()
            .expect("EOF before a line");
        pending.extend_from_slice(&buf[..n]);
    }
}

/// Reads the next whole D-Bus message.
fn read_message(s: &Stream, pending: &mut Vec<u8>) -> Message {
    let deadline = Instant::now() + CALL;
    loop {
        let need = Message::demarshal_bytes_needed(pending).expect("a D-Bus message header");
        if pending.len() >= need && need > 16 {
            let m = Message::demarshal(&pending[..need]).unwrap();
            pending.drain(..need);
            return m;
        }
        assert!(Instant::now() < deadline, "no whole message");
        let mut buf = [0u8; 4096];
        let n = s
            .receive(&mut buf, STEP)
            .unwrap()
            .expect("EOF before a message");
        pending.extend_from_slice(&buf[..n]);
    }
}

/// Sends `m` with serial `serial` and returns the reply to it (skipping the
/// signals that come first).
fn call(s: &Stream, pending: &mut Vec<u8>, mut m: Message, serial: u32) -> Message {
    m.set_serial(serial);
    let mut wire = Vec::new();
    m.marshal(|b| {
        wire.extend_from_slice(b);
        Ok::<(), ()>(())
    })
    .unwrap();
    s.send(&wire, STEP).unwrap();
    for _ in 0..16 {
        let r = read_message(s, pending);
        if r.get_reply_serial() == Some(serial) {
            return r;
        }
    }
    panic!("no reply to message {serial}");
}

fn bus_call(member: &str) -> Message {
    Message::new_method_call(
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        member,
    )
    .unwrap()
}

/// The SASL EXTERNAL handshake by hand, then Hello and ListNames.
#[test]
fn a_raw_stream_carries_the_bus_protocol_untouched() {
    let Some(d) = Daemon::start() else { return };
    let net = bus(&d.unix);
    assert_eq!(net.address().unwrap(), d.unix);
    let s = net.connect(STEP).unwrap();
    let mut pending = Vec::new();

    // The bus lists its mechanisms when asked with none.
    s.send(b"\0AUTH\r\n", STEP).unwrap();
    assert_eq!(
        read_line(&s, &mut pending),
        "REJECTED EXTERNAL ANONYMOUS\r\n"
    );
    // EXTERNAL: our uid, in hex-encoded ASCII decimal.
    let hex: String = uid()
        .to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    s.send(format!("AUTH EXTERNAL {hex}\r\n").as_bytes(), STEP)
        .unwrap();
    let ok = read_line(&s, &mut pending);
    assert!(
        ok.starts_with("OK ") && ok.len() == "OK ".len() + 32 + 2,
        "{ok:?}"
    );
    // The guid the daemon printed is the one it sends.
    assert!(d.unix.ends_with(&format!("guid={}", &ok[3..35])), "{ok:?}");
    s.send(b"BEGIN\r\n", STEP).unwrap();

    let hello = call(&s, &mut pending, bus_call("Hello"), 1);
    assert_eq!(hello.msg_type(), MessageType::MethodReturn);
    let me: String = hello.read1().unwrap();
    assert!(me.starts_with(":1."), "{me}");

    let names = call(&s, &mut pending, bus_call("ListNames"), 2);
    let names: Vec<String> = names.read1().unwrap();
    assert!(names.contains(&me), "{names:?}");

    s.close();
}

/// Over TCP the bus cannot see our uid: ANONYMOUS.
#[test]
fn a_raw_tcp_stream_authenticates_anonymously() {
    let Some(d) = Daemon::start() else { return };
    let s = bus(&d.tcp).connect(STEP).unwrap();
    let mut pending = Vec::new();
    s.send(b"\0AUTH ANONYMOUS 6a77\r\n", STEP).unwrap();
    let ok = read_line(&s, &mut pending);
    assert!(ok.starts_with("OK "), "{ok:?}");
    s.send(b"BEGIN\r\n", STEP).unwrap();
    let hello = call(&s, &mut pending, bus_call("Hello"), 1);
    let me: String = hello.read1().unwrap();
    assert!(me.starts_with(":1."), "{me}");
    s.close();
}

// ---------------------------------------------------------------- addresses

#[test]
fn an_address_list_connects_to_the_first_that_answers() {
    let dir = TempDir::new("dbus-list");
    let missing = dir.path().join("missing");
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    let l1 = UnixListener::bind(&first).unwrap();
    let l2 = UnixListener::bind(&second).unwrap();
    l1.set_nonblocking(true).unwrap();
    l2.set_nonblocking(true).unwrap();
    let p = |p: &PathBuf| format!("unix:path={}", p.display());

    // The missing one is skipped, then the first that answers wins.
    let list = format!("{};{};{}", p(&missing), p(&first), p(&second));
    let s = bus(&list).connect(STEP).unwrap();
    assert!(l1.accept().is_ok(), "the first live address was not used");
    assert!(l2.accept().is_err(), "the second live address was used too");
    s.close();

    // Every address fails: each is named.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    drop(tcp); // nobody listens there now
    let list = format!("{};tcp:host=127.0.0.1,port={port}", p(&missing));
    match bus(&list).connect(STEP) {
        Err(Error::Connection(m)) => {
            assert!(
                m.starts_with(&format!(
                    "dbus:{list}: none of the 2 bus addresses connected: dbus:{list} ({}): ",
                    p(&missing)
                )),
                "{m}"
            );
            assert!(
                m.contains(&format!("; dbus:{list} (tcp:host=127.0.0.1,port={port}): ")),
                "{m}"
            );
        }
        other => panic!("{other:?}"),
    }

    // One address: its own error, naming it.
    let one = p(&missing);
    match bus(&one).connect(STEP) {
        Err(Error::Connection(m)) => {
            assert!(m.starts_with(&format!("dbus:{one}: ")), "{m}");
            assert!(m.contains("No such file or directory"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_addresses_are_refused_when_the_network_is_made() {
    assert_eq!(
        Network::new("dbus:tcp:host=127.0.0.1"),
        Err(Error::InvalidArgument(
            "dbus:tcp:host=127.0.0.1: missing port argument (a tcp: address needs host= and port=)"
                .into()
        ))
    );
    assert_eq!(
        Network::new("dbus:unix:path=/tmp/a b"),
        Err(Error::InvalidArgument(
            "dbus:unix:path=/tmp/a b: bad escaping in path=\"/tmp/a b\": ' ' must be written as %20"
                .into()
        ))
    );
    assert_eq!(
        Network::new("dbus:launchd:env=X"),
        Err(Error::InvalidArgument(
            "dbus:launchd:env=X: invalid bus scheme \"launchd\" (jumpwire connects to unix: and tcp: addresses)"
                .into()
        ))
    );
    // The same through the C API.
    let url = CString::new("dbus:unix:path=/x%4").unwrap();
    let mut n: *mut jw_network = null_mut();
    assert_eq!(
        jw_network_new(url.as_ptr(), &mut n),
        jw_status::JW_ERR_INVALID_ARGUMENT
    );
    assert!(n.is_null());
    assert_eq!(
        last_error(),
        "invalid argument: dbus:unix:path=/x%4: bad escaping in path=\"/x%4\": \
         '%' at byte 2 is not followed by two hex digits"
    );
    // An escaped value means what it says.
    let dir = TempDir::new("dbus-escaped");
    let server = UnixListener::bind(dir.path().join("a b,c")).unwrap();
    let url = format!("dbus:unix:path={}/a%20b%2cc", dir.path().display());
    let escaped = Network::new(&url).unwrap();
    assert_eq!(escaped.address().unwrap(), &url["dbus:".len()..]);
    let s = escaped.connect(STEP).unwrap();
    server.set_nonblocking(true).unwrap();
    assert!(server.accept().is_ok(), "nobody connected to \"a b,c\"");
    s.close();
    drop(server);
    std::fs::remove_file(dir.path().join("a b,c")).unwrap();
    assert_eq!(
        escaped.connect(STEP).map(|_| ()),
        Err(Error::Connection(format!(
            "{url}: No such file or directory (os error 2)"
        )))
    );
}

/// The real user id.
fn uid() -> u32 {
    // SAFETY: getuid takes no arguments and cannot fail.
    unsafe { libc::getuid() }
}

fn last_error() -> String {
    // SAFETY: jw_last_error returns a NUL-terminated string valid until the
    // next jumpwire call on this thread.
    unsafe { CStr::from_ptr(jw_last_error()) }
        .to_string_lossy()
        .into_owned()
}

#[test]
fn the_c_api_gives_the_dbus_address_of_a_listener() {
    let url = CString::new("dbus:unix:path=/nonexistent/bus").unwrap();
    let mut n: *mut jw_network = null_mut();
    assert_eq!(jw_network_new(url.as_ptr(), &mut n), jw_status::JW_OK);
    let listen = CString::new("tcp://127.0.0.1:0").unwrap();
    let mut l: *mut jw_listener = null_mut();
    assert_eq!(jw_listen(listen.as_ptr(), n, &mut l), jw_status::JW_OK);
    jw_network_free(n);

    let mut buf = [0 as c_char; 64];
    assert_eq!(
        jw_listener_dbus_address(l, buf.as_mut_ptr(), buf.len()),
        jw_status::JW_OK
    );
    // SAFETY: the call wrote a NUL-terminated string into `buf`.
    let address = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
    assert!(address.starts_with("tcp:host=127.0.0.1,port="), "{address}");
    let port: u16 = address.rsplit('=').next().unwrap().parse().unwrap();
    assert_ne!(port, 0);

    // Too small: JW_ERR_TOO_LARGE, nothing past cap.
    let mut small = [0x7f as c_char; 12];
    assert_eq!(
        jw_listener_dbus_address(l, small.as_mut_ptr(), 10),
        jw_status::JW_ERR_TOO_LARGE
    );
    assert_eq!(small[10..], [0x7f, 0x7f]);
    // NULL listener, zero cap.
    assert_eq!(
        jw_listener_dbus_address(std::ptr::null(), buf.as_mut_ptr(), buf.len()),
        jw_status::JW_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        jw_listener_dbus_address(l, buf.as_mut_ptr(), 0),
        jw_status::JW_ERR_INVALID_ARGUMENT
    );
    jw_listener_close(l);
}

/// The environment is read in a child process (this test binary again, told
/// so by `JW_DBUS_CHILD`), so that this process's environment never changes.
#[test]
fn session_and_system_buses_come_from_the_environment() {
    if let Ok(mode) = std::env::var("JW_DBUS_CHILD") {
        environment_child(&mode);
        return;
    }
    let Some(d) = Daemon::start() else { return };
    let child = |mode: &str, vars: &[(&str, &str)]| {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.arg(common::test_name(
            module_path!(),
            "session_and_system_buses_come_from_the_environment",
        ))
        .args(["--exact", "--nocapture", "--test-threads=1"])
        .env("JW_DBUS_CHILD", mode)
        .env("JW_DBUS_UNIX", &d.unix)
        .env("JW_DBUS_TCP", &d.tcp)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("DBUS_SYSTEM_BUS_ADDRESS");
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
    child(
        "set",
        &[
            ("DBUS_SESSION_BUS_ADDRESS", &d.unix),
            ("DBUS_SYSTEM_BUS_ADDRESS", &d.tcp),
        ],
    );
    child("unset", &[]);
    child("bad", &[("DBUS_SESSION_BUS_ADDRESS", "tcp:host=h")]);
}

fn environment_child(mode: &str) {
    let unix = std::env::var("JW_DBUS_UNIX").unwrap();
    let tcp = std::env::var("JW_DBUS_TCP").unwrap();
    let session = Network::new("dbus:session").unwrap();
    let system = Network::new("dbus:system").unwrap();
    match mode {
        "set" => {
            assert_eq!(session.address().unwrap(), unix);
            assert_eq!(system.address().unwrap(), tcp);
            for net in [&session, &system] {
                let listener = Listener::bind("tcp://127.0.0.1:0", net).unwrap();
                let conn = open(&listener.dbus_address().unwrap()).unwrap();
                assert!(
                    list_names(&conn)
                        .iter()
                        .any(|n| n == "org.freedesktop.DBus")
                );
                drop(conn);
                wait_idle(&listener);
            }
        }
        "unset" => {
            assert_eq!(
                session.address().unwrap(),
                format!("unix:path=/run/user/{}/bus", uid())
            );
            assert_eq!(
                system.address().unwrap(),
                "unix:path=/run/dbus/system_bus_socket"
            );
        }
        "bad" => {
            let want = Error::InvalidArgument(
                "dbus:session: DBUS_SESSION_BUS_ADDRESS=\"tcp:host=h\": missing port argument \
                 (a tcp: address needs host= and port=)"
                    .into(),
            );
            assert_eq!(session.address(), Err(want.clone()));
            assert_eq!(session.connect(STEP).map(|_| ()), Err(want));
        }
        other => panic!("unknown mode {other}"),
    }
}

// ---------------------------------------------------------------- failures

#[test]
fn the_bus_going_away_mid_conversation_fails_the_next_call_at_once() {
    let Some(d) = Daemon::start() else { return };
    let unix = d.unix.clone();
    let socket = d.dir().join("bus");
    let listener = Listener::bind("tcp://127.0.0.1:0", &bus(&unix)).unwrap();
    let address = listener.dbus_address().unwrap();
    let conn = open(&address).unwrap();
    assert!(
        list_names(&conn)
            .iter()
            .any(|n| n == "org.freedesktop.DBus")
    );
    assert_eq!(listener.connections(), 1);
    // A raw stream straight to the bus as well, accepted and answered (a
    // connection the bus never accepted would be reset, not ended).
    let raw = bus(&unix).connect(STEP).unwrap();
    raw.send(b"\0AUTH\r\n", STEP).unwrap();
    assert_eq!(
        read_line(&raw, &mut Vec::new()),
        "REJECTED EXTERNAL ANONYMOUS\r\n"
    );

    let dir = d.kill();

    // The raw stream ends: EOF, promptly.
    let started = Instant::now();
    let mut buf = [0u8; 64];
    assert_eq!(raw.receive(&mut buf, STEP), Ok(None));
    assert!(
        started.elapsed() < SLACK,
        "EOF took {:?}",
        started.elapsed()
    );
    raw.close();

    // The client's next call fails with the disconnection, long before its
    // 10 s timeout.
    let started = Instant::now();
    let proxy = conn.with_proxy("org.freedesktop.DBus", "/org/freedesktop/DBus", CALL);
    let r: Result<(Vec<String>,), dbus::Error> =
        proxy.method_call("org.freedesktop.DBus", "ListNames", ());
    let e = r.expect_err("a call on a dead bus");
    assert!(
        started.elapsed() < SLACK,
        "the call took {:?}",
        started.elapsed()
    );
    assert_eq!(
        e.name(),
        Some("org.freedesktop.DBus.Error.Disconnected"),
        "{e:?}"
    );
    assert!(!conn.channel().is_connected());
    drop(conn);
    wait_idle(&listener);

    // Connecting through the forward to the dead bus fails at once too.
    let started = Instant::now();
    let e = open(&address).err().expect("a connection to a dead bus");
    assert!(started.elapsed() < SLACK, "took {:?}", started.elapsed());
    // Hello fails: the forward hangs up during the authentication (libdbus
    // calls that NoReply, or Disconnected if it noticed before sending).
    assert!(
        matches!(
            e.name(),
            Some("org.freedesktop.DBus.Error.NoReply" | "org.freedesktop.DBus.Error.Disconnected")
        ),
        "{e:?}"
    );
    wait_idle(&listener);

    // A new bus at the same address: the same listener serves it.
    let _ = std::fs::remove_file(&socket);
    let d = Daemon::start_in(dir).unwrap();
    assert!(
        d.unix
            .starts_with(&format!("unix:path={},", socket.display()))
    );
    let conn = open(&address).unwrap();
    assert!(
        list_names(&conn)
            .iter()
            .any(|n| n == "org.freedesktop.DBus")
    );
    drop(conn);
    wait_idle(&listener);

    // A forwarded connection still open when the bus dies, closed by the
    // listener itself.
    let conn = open(&address).unwrap();
    drop(d);
    close_promptly(listener);
    drop(conn);
}

// ---------------------------------------------------------------- C example

#[test]
fn c_example_dbus_forward_lists_the_names_with_both_libraries() {
    let Some(d) = Daemon::start() else { return };
    let dir = WorkDir::new("dbus_forward");
    let have_dbus_send = Command::new("dbus-send").arg("--help").output().is_ok();
    for link in Link::BOTH {
        let bin = build(&dir, "c-examples/dbus_forward.c", link);
        let target = format!("dbus:{}", d.unix);
        let fwd = d.dir().join(format!("c-{link:?}.sock"));
        let listen = format!("unix:{}", fwd.display());
        for args in [
            vec![target.as_str(), listen.as_str()],
            vec![target.as_str()],
        ] {
            let r = run(&bin, &args, link);
            r.assert_success()
                .assert_stdout_has(&format!("bus: {}\n", d.unix))
                .assert_stdout_has("the bus offers: EXTERNAL ANONYMOUS\n")
                .assert_stdout_has("dbus forward: OK");
            if args.len() == 2 {
                r.assert_stdout_has(&format!("forwarding {listen} -> {target}\n"))
                    .assert_stdout_has(&format!(
                        "DBUS_SESSION_BUS_ADDRESS=unix:path={}\n",
                        fwd.display()
                    ));
            } else {
                r.assert_stdout_has("forwarding tcp://127.0.0.1:")
                    .assert_stdout_has("DBUS_SESSION_BUS_ADDRESS=tcp:host=127.0.0.1,port=");
            }
            if have_dbus_send {
                r.assert_stdout_has("string \"org.freedesktop.DBus\"")
                    .assert_stdout_has("dbus-send listed the names through the forward");
            }
        }
        // A malformed bus address: JW_ERR_INVALID_ARGUMENT from jw_network_new.
        run(&bin, &["dbus:tcp:host=h,port=x"], link)
            .assert_code(1)
            .assert_stderr_has("dbus_forward: jw_network_new failed with invalid argument (-1): ")
            .assert_stderr_has("invalid port argument \"x\"");
        run(&bin, &["a", "b", "c"], link)
            .assert_code(2)
            .assert_stderr_has("usage: ");
    }
}
