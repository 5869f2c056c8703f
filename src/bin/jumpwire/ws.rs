//! `jumpwire ws serve URL --echo|--broadcast-stdin`: a websocket server for
//! quick tests.

use crate::args::{Parsed, Spec};
use crate::{Failure, say, start, stop};
use jumpwire::Stream;
use jumpwire::websocket::Server;
use std::io::BufRead;
use std::sync::Arc;

static USAGE: &str = "\
Usage: jumpwire ws serve URL --echo|--broadcast-stdin

A websocket server for quick tests; `jumpwire ws serve --help` says more.
";

static WS: Spec = Spec {
    name: "ws",
    usage: USAGE,
    flags: &[],
    values: &[],
};

static SERVE: Spec = Spec {
    name: "ws serve",
    usage: "\
Usage: jumpwire ws serve [-v] URL --echo|--broadcast-stdin

Runs a websocket server on URL until SIGINT (Ctrl-C) or SIGTERM (exit 0).
Prints its address (ws://IP:PORT/) on stdout.

URL   ws://HOST:PORT[?max_message=N&max_connections=N&protocols=LIST&...]
      (port 0 picks a free one; the options of the README's listen URLs)

Options:
  --echo              send each client's messages back to it (messages of
                      up to 1 MiB whole, larger ones in 1 MiB pieces)
  --broadcast-stdin   send each line of stdin (without its newline) to every
                      client as a binary message; what clients send is
                      read and dropped. At the end of stdin the server
                      closes (close 1001 to every client) and exits 0.
  -v, -vv             log each client (info), debug lines
  -h, --help          this text

Example:
  tail -f /var/log/syslog | jumpwire ws serve ws://127.0.0.1:8080 --broadcast-stdin
",
    flags: &["--echo", "--broadcast-stdin"],
    values: &[],
};

/// `jumpwire ws SUBCOMMAND ...`.
pub fn dispatch(args: &[String], verbose: u8) -> Result<(), Failure> {
    let Some((sub, rest)) = args.split_first() else {
        return Err(WS.usage_error("missing serve"));
    };
    match sub.as_str() {
        "serve" => start(&SERVE, rest, verbose, serve),
        "-h" | "--help" => Err(Failure::Help(USAGE)),
        other => Err(WS.usage_error(format!("unknown command 'ws {other}'"))),
    }
}

/// The largest piece of a message `--echo` sends back whole.
const ECHO_BUF: usize = 1 << 20;

fn serve(p: Parsed) -> Result<(), Failure> {
    let [url] = p.exact(["URL"])?;
    let echo = match (p.flag("--echo"), p.flag("--broadcast-stdin")) {
        (true, false) => true,
        (false, true) => false,
        _ => return Err(SERVE.usage_error("give one of --echo and --broadcast-stdin")),
    };
    let signals = stop::signals()?;
    let server = Arc::new(Server::serve(url, move |s: &Arc<Stream>| client(s, echo))?);
    say(server.address())?;
    let stdin_done = if echo {
        crossbeam_channel::never()
    } else {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let server = server.clone();
        std::thread::Builder::new()
            .name("jw-ws-stdin".into())
            .spawn(move || {
                let _ = tx.send(broadcast_stdin(&server));
            })
            .map_err(|e| Failure::Runtime(format!("starting a thread: {e}")))?;
        rx
    };
    wait(&signals, &stdin_done, &server)
}

/// Until a stop signal or the end of stdin; then closes the server.
fn wait(
    signals: &crossbeam_channel::Receiver<stop::Signal>,
    stdin_done: &crossbeam_channel::Receiver<Result<(), Failure>>,
    server: &Server,
) -> Result<(), Failure> {
    let r = crossbeam_channel::select! {
        recv(signals) -> sig => {
            if let Ok(sig) = sig {
                log::info!("{}: {sig}: closing", server.address());
            }
            Ok(())
        }
        recv(stdin_done) -> r => r.unwrap_or(Ok(())),
    };
    server.close();
    r
}

/// Broadcasts each line of stdin until its end.
fn broadcast_stdin(server: &Server) -> Result<(), Failure> {
    let mut input = std::io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => {
                log::info!("{}: end of stdin: closing", server.address());
                return Ok(());
            }
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                let n = server.broadcast(&line)?;
                log::debug!("{}: {} bytes to {n} clients", server.address(), line.len());
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::Runtime(format!("stdin: {e}"))),
        }
    }
}

/// Serves one client: echoes its messages, or reads and drops them.
fn client(s: &Stream, echo: bool) {
    log::info!("{}: client connected", s.name());
    let mut buf = vec![0u8; if echo { ECHO_BUF } else { 64 << 10 }];
    let end = loop {
        match s.receive(&mut buf, None) {
            Ok(Some(n)) if echo => {
                if let Err(e) = s.send(&buf[..n], None) {
                    break Err(e);
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    match end {
        Ok(()) => log::info!("{}: client left", s.name()),
        Err(e) => log::info!("{}: client ended: {e}", s.name()),
    }
}
