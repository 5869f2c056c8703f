//! `jumpwire cat URL`: stdin onto a stream, the stream onto stdout.

use crate::args::{Parsed, Spec};
use crate::{Failure, network};
use jumpwire::url::Endpoint;
use jumpwire::{Error, Stream};
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub static SPEC: Spec = Spec {
    name: "cat",
    usage: "\
Usage: jumpwire cat [-v] URL [--token TOKEN] [--timeout S] [--linger S]

Connects to URL and copies stdin to the stream and the stream to stdout
(flushed as it comes), like `socat - TCP:HOST:PORT` and websocat. At the
end of stdin the stream is half-closed (TCP/Unix shutdown, a router
stream's EOF) and cat goes on until the peer ends the stream. UDP and
websocket streams cannot be half-closed: cat waits --linger seconds for
answers after the end of stdin, then closes (a websocket close frame).

URL   any stream URL: tcp://, udp://, unix:, vsock://, dbus:, ws://, wss://,
      echo:, a Jumpstarter session's driver (jumpstarter:?driver=NAME inside
      jmp shell, jumpstarter:unix:/PATH?driver=NAME, a lease's
      jumpstarter:lease?driver=NAME&lease=LEASE[&client=ALIAS] through its
      lab), or a router's grpc(s)://HOST:PORT with --token

Exit status: 0 when the stream ended cleanly, 1 when it failed (refused,
reset, closed with an error), 2 on a usage error or a bad URL.

Options:
  --token TOKEN   URL is a router: open a router stream with this token
  --timeout S     seconds to wait for the connection (default 10)
  --linger S      seconds to wait for answers after the end of stdin on UDP
                  and websocket streams (default 0.5)
  -v, -vv         log the connection and the byte counts (info), debug lines
  -h, --help      this text

Example:
  printf 'GET / HTTP/1.0\\r\\n\\r\\n' | jumpwire cat tcp://example.com:80
",
    flags: &[],
    values: &["--token", "--timeout", "--linger"],
};

/// What the stdin thread tells the stdout side.
#[derive(Default)]
struct Shared {
    /// The stream is being closed on purpose: its `Closed` is a clean end.
    ending: AtomicBool,
    /// Why the stdin side failed (it closed the stream to say so).
    failure: Mutex<Option<Failure>>,
}

pub fn run(p: Parsed) -> Result<(), Failure> {
    let [url] = p.exact(["URL"])?;
    let timeout = p.seconds("--timeout", Duration::from_secs(10))?;
    let linger = p.seconds("--linger", Duration::from_millis(500))?;
    let net = network(url, p.value("--token"))?;
    let half_closes = !matches!(net.endpoint(), Endpoint::Udp(_) | Endpoint::Websocket(_));
    let s = Arc::new(net.connect(Some(timeout))?);
    log::info!("{}: connected", s.name());
    let shared = Arc::new(Shared::default());
    {
        let (s, shared) = (s.clone(), shared.clone());
        std::thread::Builder::new()
            .name("jw-cat-stdin".into())
            .spawn(move || stdin_side(&s, &shared, half_closes, linger))
            .map_err(|e| Failure::Runtime(format!("starting a thread: {e}")))?;
    }
    let r = stdout_side(&s, &shared);
    shared.ending.store(true, Ordering::Release);
    let st = s.stats();
    log::info!(
        "{}: {} bytes sent, {} received",
        s.name(),
        st.bytes_sent,
        st.bytes_received
    );
    s.close();
    r
}

/// Copies the stream to stdout until the stream ends.
fn stdout_side(s: &Stream, shared: &Shared) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match s.receive(&mut buf, None) {
            Ok(Some(n)) => {
                if let Err(e) = out.write_all(&buf[..n]).and_then(|()| out.flush()) {
                    // A reader that went away (`| head`) ends cat quietly.
                    if e.kind() == ErrorKind::BrokenPipe {
                        return Ok(());
                    }
                    return Err(Failure::Runtime(format!("stdout: {e}")));
                }
            }
            Ok(None) => {
                log::info!("{}: end of stream", s.name());
                return Ok(());
            }
            Err(e) => {
                let failed = shared
                    .failure
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                if let Some(f) = failed {
                    return Err(f);
                }
                if matches!(e, Error::Closed(_)) && shared.ending.load(Ordering::Acquire) {
                    return Ok(());
                }
                return Err(e.into());
            }
        }
    }
}

/// Copies stdin to the stream, then half-closes it (or, where it cannot be
/// half-closed, closes it after `linger`). A failure is left in `shared`
/// and the stream closed, which wakes the stdout side.
fn stdin_side(s: &Stream, shared: &Shared, half_closes: bool, linger: Duration) {
    let r = copy_stdin(s).and_then(|()| {
        log::debug!("{}: end of stdin", s.name());
        if half_closes {
            s.send_eof().map_err(Failure::from)
        } else {
            // Nothing tells the peer we are done: give its answers time.
            std::thread::sleep(linger);
            shared.ending.store(true, Ordering::Release);
            s.close();
            Ok(())
        }
    });
    if let Err(f) = r {
        if !shared.ending.load(Ordering::Acquire) {
            *shared.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
            s.close();
        }
    }
}

fn copy_stdin(s: &Stream) -> Result<(), Failure> {
    let mut input = std::io::stdin().lock();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => s.send(&buf[..n], None)?,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::Runtime(format!("stdin: {e}"))),
        }
    }
}
