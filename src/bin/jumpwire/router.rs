//! `jumpwire router serve|token|export`: the Jumpstarter router, its stream
//! tokens and the exporter side.

use crate::args::{Parsed, Spec};
use crate::{Failure, network, say, start, stop};
use jumpwire::router::{self, Router};
use jumpwire::{Error, Network};
use std::path::PathBuf;
use std::time::{Duration, Instant};

static USAGE: &str = "\
Usage: jumpwire router serve URL [--write-cert FILE]
       jumpwire router token KEY STREAM_ID [--ttl SECONDS]
       jumpwire router export ROUTER_URL TOKEN TARGET_URL

A Jumpstarter router (upstream's jumpstarter.v1.RouterService): two callers
with tokens for the same stream are paired and their bytes relayed.

  serve    run a router until SIGINT/SIGTERM
  token    mint a stream token for STREAM_ID, signed with the router's KEY
  export   serve TARGET_URL to the clients of a stream, one after another

`jumpwire router COMMAND --help` says more. Clients reach a router with
`jumpwire cat ROUTER_URL --token TOKEN` or `jumpwire forward LISTEN_URL
ROUTER_URL --token TOKEN`.
";

static ROUTER: Spec = Spec {
    name: "router",
    usage: USAGE,
    flags: &[],
    values: &[],
};

static SERVE: Spec = Spec {
    name: "router serve",
    usage: "\
Usage: jumpwire router serve [-v] URL [--write-cert FILE]

Runs a router on URL until SIGINT (Ctrl-C) or SIGTERM, then exits 0.

URL   grpc://HOST:PORT?key=SECRET (port 0 picks a free one), or over TLS
      grpcs://HOST:PORT?key=SECRET[&cert=FILE&key_file=FILE]; without cert
      and key_file the router makes a self-signed certificate for
      localhost, 127.0.0.1, ::1 and HOST. SECRET signs the stream tokens
      (`jumpwire router token SECRET STREAM_ID`).

Prints the address clients dial (grpc://IP:PORT) on stdout; for grpcs://
a second line with the path of a file holding the certificate chain the
router presents (PEM), which clients trust with grpcs://IP:PORT?ca=FILE.
The file is FILE with --write-cert (kept), else a file in the temporary
directory removed when the router stops.

Options:
  --write-cert FILE   write the grpcs:// certificate chain to FILE
  -v, -vv             log each caller and pairing (info), debug lines
  -h, --help          this text
",
    flags: &[],
    values: &["--write-cert"],
};

static TOKEN: Spec = Spec {
    name: "router token",
    usage: "\
Usage: jumpwire router token KEY STREAM_ID [--ttl SECONDS]

Prints a stream token for STREAM_ID signed with KEY (HS256, as upstream's
controller mints them): what a client and an exporter both present to the
router started with ?key=KEY to be paired.

Options:
  --ttl SECONDS   how long the token is valid (default 3600)
  -h, --help      this text
",
    flags: &[],
    values: &["--ttl"],
};

static EXPORT: Spec = Spec {
    name: "router export",
    usage: "\
Usage: jumpwire router export [-v] ROUTER_URL TOKEN TARGET_URL

The exporter side of a routed stream, again and again until SIGINT or
SIGTERM: dials the router with TOKEN, connects TARGET_URL, and forwards
both ways between the client the router pairs it with and the target; when
that pairing ends, waits for the next client. A failed pairing is logged
and the next one starts (after 1 s when it failed at once); a refused token
or a bad URL ends the command.

ROUTER_URL   grpc://HOST:PORT or grpcs://HOST:PORT[?ca=FILE][&insecure=1]
TOKEN        a stream token (`jumpwire router token`)
TARGET_URL   any stream URL (tcp://, unix:, echo:, ...)

Options:
  -v, -vv      log each pairing (info), debug lines
  -h, --help   this text
",
    flags: &[],
    values: &[],
};

/// `jumpwire router SUBCOMMAND ...`.
pub fn dispatch(args: &[String], verbose: u8) -> Result<(), Failure> {
    let Some((sub, rest)) = args.split_first() else {
        return Err(ROUTER.usage_error("missing serve, token or export"));
    };
    match sub.as_str() {
        "serve" => start(&SERVE, rest, verbose, serve),
        "token" => start(&TOKEN, rest, verbose, token),
        "export" => start(&EXPORT, rest, verbose, export),
        "-h" | "--help" => Err(Failure::Help(USAGE)),
        other => Err(ROUTER.usage_error(format!("unknown command 'router {other}'"))),
    }
}

/// A certificate file we wrote to the temporary directory: removed on drop.
struct TempCert(PathBuf);

impl Drop for TempCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes `pem` to a new file of the temporary directory (never one that
/// is there already: not through a link someone else made).
fn temp_cert(pem: &str) -> Result<TempCert, Failure> {
    use std::io::Write;
    let dir = std::env::temp_dir();
    let mut last = None;
    for _ in 0..8 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = dir.join(format!(
            "jumpwire-router-{}-{nanos:09}.pem",
            std::process::id()
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                let t = TempCert(path);
                f.write_all(pem.as_bytes())
                    .map_err(|e| Failure::Runtime(format!("{}: {e}", t.0.display())))?;
                return Ok(t);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(Failure::Runtime(format!("{}: {e}", path.display()))),
        }
    }
    Err(Failure::Runtime(format!(
        "{}: no new file for the certificate: {}",
        dir.display(),
        last.map_or_else(String::new, |e| e.to_string())
    )))
}

fn serve(p: Parsed) -> Result<(), Failure> {
    let [url] = p.exact(["URL"])?;
    let signals = stop::signals()?;
    let r = Router::serve(url)?;
    // A certificate file of our own, removed when the router has stopped.
    let mut temp = None;
    let cert_path = match (r.certificate(), p.value("--write-cert")) {
        (None, Some(_)) => {
            return Err(SERVE.usage_error("--write-cert is for grpcs:// routers"));
        }
        (None, None) => None,
        (Some(pem), Some(f)) => {
            let path = PathBuf::from(f);
            std::fs::write(&path, pem)
                .map_err(|e| Failure::Runtime(format!("{}: {e}", path.display())))?;
            Some(path)
        }
        (Some(pem), None) => {
            let t = temp_cert(pem)?;
            let path = t.0.clone();
            temp = Some(t);
            Some(path)
        }
    };
    say(r.address())?;
    if let Some(path) = &cert_path {
        say(&path.display().to_string())?;
    }
    let sig = signals
        .recv()
        .map_err(|_| Failure::Runtime("the signal thread ended".into()))?;
    log::info!(
        "router {}: {sig}: closing ({} refused)",
        r.address(),
        r.refused()
    );
    r.close();
    drop(temp);
    Ok(())
}

fn token(p: Parsed) -> Result<(), Failure> {
    let [key, id] = p.exact(["KEY", "STREAM_ID"])?;
    let ttl = match p.value("--ttl") {
        None => 3600,
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| TOKEN.usage_error(format!("--ttl {v}: not a whole number of seconds")))?,
    };
    say(&router::token::mint(key, id, Duration::from_secs(ttl))?)
}

/// How long a failed pairing that failed at once waits before the next.
const RETRY: Duration = Duration::from_secs(1);

fn export(p: Parsed) -> Result<(), Failure> {
    let [url, token, target] = p.exact(["ROUTER_URL", "TOKEN", "TARGET_URL"])?;
    let signals = stop::signals()?;
    let target = network(target, None)?;
    // Checked before the first pairing: a bad URL or token is a usage error.
    Network::router(url, token)?;
    let (url, token) = (url.to_string(), token.to_string());
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    std::thread::Builder::new()
        .name("jw-export".into())
        .spawn(move || {
            let _ = done_tx.send(pairings(&url, &token, &target));
        })
        .map_err(|e| Failure::Runtime(format!("starting a thread: {e}")))?;
    crossbeam_channel::select! {
        recv(signals) -> sig => {
            if let Ok(sig) = sig {
                log::info!("export: {sig}: stopping");
            }
            Ok(())
        }
        recv(done_rx) -> failure => Err(failure.unwrap_or_else(|_| {
            Failure::Runtime("the exporter thread ended".into())
        })),
    }
}

/// Serves one pairing after another; returns only on a failure that
/// another try would meet again.
fn pairings(url: &str, token: &str, target: &Network) -> Failure {
    for n in 1u64.. {
        let t0 = Instant::now();
        match router::export(url, token, target, None) {
            Ok(()) => log::info!("export: pairing {n} ended"),
            Err(
                e @ (Error::InvalidArgument(_)
                | Error::Unauthenticated(_)
                | Error::Unsupported(_)
                | Error::Disabled(_)),
            ) => return e.into(),
            Err(e) => {
                log::warn!("export: pairing {n}: {e}");
                if t0.elapsed() < RETRY {
                    std::thread::sleep(RETRY);
                }
            }
        }
    }
    Failure::Runtime("export: out of pairing numbers".into())
}
