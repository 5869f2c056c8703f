//! `jumpwire forward LISTEN_URL TARGET_URL`: a [`Listener`] until stopped.

use crate::args::{Parsed, Spec};
use crate::{Failure, logger, network, say, stop};
use crossbeam_channel::RecvTimeoutError;
use jumpwire::forward::Listener;
use jumpwire::url::Endpoint;
use std::io::IsTerminal;
use std::time::Duration;

pub static SPEC: Spec = Spec {
    name: "forward",
    usage: "\
Usage: jumpwire forward [-v] LISTEN_URL TARGET_URL [--token TOKEN]

Listens on LISTEN_URL and forwards each connection it accepts to a new
stream of TARGET_URL, both ways, until SIGINT (Ctrl-C) or SIGTERM, which
close every forwarded connection and exit 0.

LISTEN_URL   tcp://HOST:PORT[?max_connections=N] (port 0 picks a free one),
             unix:/PATH, unix:@NAME, or ws://HOST:PORT[?OPTIONS] (the
             websocket bridge: each websocket client's messages go to the
             target as bytes, its bytes come back as binary messages)
TARGET_URL   any stream URL: tcp://, udp://, unix:, vsock://, dbus:, ws://,
             wss://, echo:, a Jumpstarter session's driver
             (jumpstarter:?driver=NAME inside jmp shell: `j network
             forward-tcp`; jumpstarter:unix:/PATH?driver=NAME; a lease's
             jumpstarter:lease?driver=NAME&lease=LEASE[&client=ALIAS]
             through its lab, with the client configuration of `jmp`), or
             a router's grpc(s)://HOST:PORT with --token

Prints the bound address (with the real port) on stdout, one line. At -v,
logs each connection on stderr. On a terminal, stderr shows how many
connections are open and how many were refused.

Options:
  --token TOKEN   TARGET_URL is a router: each connection is a router
                  stream with this stream token (`jumpwire router token`)
  -v, -vv         log connections (info), debug lines
  -h, --help      this text

Example:
  jumpwire forward tcp://127.0.0.1:5201 tcp://192.168.1.2:5201
",
    flags: &[],
    values: &["--token"],
};

/// How often the status line is redrawn.
const TICK: Duration = Duration::from_millis(250);

pub fn run(p: Parsed) -> Result<(), Failure> {
    let [listen, target] = p.exact(["LISTEN_URL", "TARGET_URL"])?;
    let signals = stop::signals()?;
    let target = network(target, p.value("--token"))?;
    let listener = Listener::bind(listen, &target)?;
    say(listener.address())?;
    if matches!(target.endpoint(), Endpoint::Dbus(_)) {
        if let Ok(bus) = listener.dbus_address() {
            log::info!(
                "{}: D-Bus clients use the address {bus}",
                listener.address()
            );
        }
    }
    // A live count on a terminal. The listener counts connections, not
    // bytes (it has no byte counter).
    let live = std::io::stderr().is_terminal();
    let sig = if live {
        loop {
            logger::status(&format!(
                "{}: {} open, {} refused",
                listener.address(),
                listener.connections(),
                listener.refused()
            ));
            match signals.recv_timeout(TICK) {
                Ok(sig) => break Ok(sig),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break Err(()),
            }
        }
    } else {
        signals.recv().map_err(|_| ())
    };
    logger::end_status();
    match sig {
        Ok(sig) => log::info!("{}: {sig}: closing", listener.address()),
        Err(_) => return Err(Failure::Runtime("the signal thread ended".into())),
    }
    listener.close();
    Ok(())
}
