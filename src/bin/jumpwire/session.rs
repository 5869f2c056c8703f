//! `jumpwire session serve LISTEN_URL NAME=URL...`: serve networks as a
//! Jumpstarter exporter session, for upstream's `jmp`/`j` and Python
//! clients (and jumpwire's `jumpstarter:` networks).

use crate::args::{Parsed, Spec};
use crate::{Failure, say, start, stop};
use jumpwire::Network;
use jumpwire::session::{Exported, Session};
use std::sync::Arc;

static USAGE: &str = "\
Usage: jumpwire session serve LISTEN_URL NAME=URL...

Serves networks as Jumpstarter drivers; `jumpwire session serve --help`
says more.
";

static SESSION: Spec = Spec {
    name: "session",
    usage: USAGE,
    flags: &[],
    values: &[],
};

static SERVE: Spec = Spec {
    name: "session serve",
    usage: "\
Usage: jumpwire session serve [-v] LISTEN_URL NAME=URL...

Serves each URL's network as a Jumpstarter network driver named NAME (a
child of a composite root, as upstream's exporter reports one), on a
session at LISTEN_URL, until SIGINT (Ctrl-C) or SIGTERM (exit 0). Each
driver stream a client opens is a new connection to its URL.

Prints the session's address, then the value for JUMPSTARTER_HOST (the
socket's path, or HOST:PORT), on stdout.

LISTEN_URL  unix:/PATH (a new socket), or tcp://HOST:PORT (port 0 picks a
            free one; plaintext: upstream's client needs JMP_GRPC_INSECURE=1)
NAME=URL    a driver: its name (as `j NAME ...` calls it) and any network
            URL (tcp://, udp://, unix:, vsock:, dbus:, ws://, echo:, ...)

Options:
  -v, -vv     log each driver stream (info), debug lines
  -h, --help  this text

Example:
  jumpwire session serve unix:/tmp/lab.sock console=tcp://192.0.2.7:2000 echo=echo:
  JUMPSTARTER_HOST=/tmp/lab.sock j console forward-tcp 5000
",
    flags: &[],
    values: &[],
};

/// `jumpwire session SUBCOMMAND ...`.
pub fn dispatch(args: &[String], verbose: u8) -> Result<(), Failure> {
    let Some((sub, rest)) = args.split_first() else {
        return Err(SESSION.usage_error("missing serve"));
    };
    match sub.as_str() {
        "serve" => start(&SERVE, rest, verbose, serve),
        "-h" | "--help" => Err(Failure::Help(USAGE)),
        other => Err(SESSION.usage_error(format!("unknown command 'session {other}'"))),
    }
}

fn serve(p: Parsed) -> Result<(), Failure> {
    let Some((listen, drivers)) = p.positional.split_first() else {
        return Err(SERVE.usage_error("missing LISTEN_URL"));
    };
    if drivers.is_empty() {
        return Err(SERVE.usage_error("give at least one NAME=URL"));
    }
    let mut exported: Vec<(String, Arc<dyn Exported>)> = Vec::new();
    for d in drivers {
        let Some((name, url)) = d.split_once('=') else {
            return Err(SERVE.usage_error(format!("'{d}' is not NAME=URL")));
        };
        exported.push((name.to_string(), Arc::new(Network::new(url)?)));
    }
    let signals = stop::signals()?;
    let session = Session::serve(listen, exported)?;
    say(session.address())?;
    match session.host() {
        Some(host) => say(&host)?,
        None => log::warn!(
            "{}: an abstract socket: JUMPSTARTER_HOST cannot name it",
            session.address()
        ),
    }
    let sig = signals
        .recv()
        .map_err(|_| Failure::Runtime("the signal thread ended".into()))?;
    log::info!("{}: {sig}: closing", session.address());
    session.close();
    Ok(())
}
