//! `jumpwire`: the library's streams, forwards, router, websocket server and
//! Jumpstarter session from the shell, for lab scripts and quick tests (as
//! `socat`, `websocat` and upstream's `j network` are used). One file per command; everything is
//! the crate's public API.
//!
//! Exit codes: 0 on success (and when stopped by `SIGINT`/`SIGTERM`), 1 for
//! a runtime failure, 2 for a usage error (a bad command line or URL).
//! Errors go to stderr as `jumpwire: MESSAGE`.

mod args;
mod cat;
mod forward;
mod logger;
mod router;
mod session;
mod stop;
mod ws;

use std::io::Write;
use std::process::ExitCode;

const USAGE: &str = "\
Usage: jumpwire [-v] COMMAND [ARGS...]

Byte streams over TCP, UDP, Unix sockets, vsock, D-Bus, websockets and
Jumpstarter routers, named by URLs (tcp://HOST:PORT, unix:/PATH, ws://...,
grpc://...: see the README's \"Endpoints are URLs\").

Commands:
  forward LISTEN_URL TARGET_URL     forward each connection to LISTEN_URL onto TARGET_URL
  cat URL                           stdin to a stream, the stream to stdout
  router serve URL                  run a Jumpstarter router
  router token KEY STREAM_ID        mint a stream token
  router export ROUTER_URL TOKEN TARGET_URL
                                    serve a target through a router
  ws serve URL --echo|--broadcast-stdin
                                    a websocket server for quick tests
  session serve LISTEN_URL NAME=URL...
                                    serve networks as Jumpstarter drivers

Options:
  -v, -vv, -vvv   log info, debug, trace lines on stderr (default: warnings)
  -h, --help      this text; `jumpwire COMMAND --help` for a command's
  -V, --version   the version

Exit status: 0 on success or when stopped by SIGINT/SIGTERM, 1 on a failure,
2 on a usage error.
";

/// How a command ends other than with success.
#[derive(Debug)]
pub enum Failure {
    /// `--help`: this usage text on stdout, exit 0.
    Help(&'static str),
    /// A bad command line: the message and a hint on stderr, exit 2.
    Usage { msg: String, command: &'static str },
    /// The library's error: exit 2 for an invalid argument (a bad URL),
    /// else 1.
    Library(jumpwire::Error),
    /// Any other failure at run time: exit 1.
    Runtime(String),
}

impl From<jumpwire::Error> for Failure {
    fn from(e: jumpwire::Error) -> Failure {
        Failure::Library(e)
    }
}

/// Prints `line` on stdout and flushes it, for scripts that read it (a
/// bound address).
pub fn say(line: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| Failure::Runtime(format!("stdout: {e}")))
}

/// The network of `url`: a router network with `token` when one is given.
pub fn network(url: &str, token: Option<&str>) -> Result<jumpwire::Network, Failure> {
    Ok(match token {
        Some(t) => jumpwire::Network::router(url, t)?,
        None => jumpwire::Network::new(url)?,
    })
}

/// The top-level options (before the command) and the command's words.
fn run(argv: &[String]) -> Result<(), Failure> {
    static TOP: args::Spec = args::Spec {
        name: "",
        usage: USAGE,
        flags: &[],
        values: &[],
    };
    let mut verbose = 0u8;
    let mut rest = argv;
    while let Some((a, tail)) = rest.split_first() {
        match a.as_str() {
            "-V" | "--version" => {
                return say(&format!("jumpwire {}", env!("CARGO_PKG_VERSION")));
            }
            "-h" | "--help" => return Err(Failure::Help(USAGE)),
            "--verbose" => verbose = verbose.saturating_add(1),
            v if v.len() > 1 && v.starts_with('-') && v[1..].bytes().all(|b| b == b'v') => {
                verbose = verbose.saturating_add((v.len() - 1) as u8);
            }
            o if o.starts_with('-') => {
                return Err(TOP.usage_error(format!("unknown option {o}")));
            }
            _ => break,
        }
        rest = tail;
    }
    let Some((cmd, rest)) = rest.split_first() else {
        return Err(TOP.usage_error("missing COMMAND"));
    };
    let (spec, go): (&'static args::Spec, Command) = match cmd.as_str() {
        "forward" => (&forward::SPEC, forward::run),
        "cat" => (&cat::SPEC, cat::run),
        "router" => return router::dispatch(rest, verbose),
        "ws" => return ws::dispatch(rest, verbose),
        "session" => return session::dispatch(rest, verbose),
        other => return Err(TOP.usage_error(format!("unknown command '{other}'"))),
    };
    start(spec, rest, verbose, go)
}

/// What runs a command once its arguments are parsed.
pub type Command = fn(args::Parsed) -> Result<(), Failure>;

/// Parses a command's arguments, installs the logger and runs it.
pub fn start(
    spec: &'static args::Spec,
    args: &[String],
    verbose: u8,
    go: Command,
) -> Result<(), Failure> {
    let parsed = spec.parse(args)?;
    logger::init(verbose.saturating_add(parsed.verbose));
    go(parsed)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let r = run(&argv);
    logger::end_status();
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Help(text)) => match say(text.trim_end()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        },
        Err(Failure::Usage { msg, command }) => {
            let space = if command.is_empty() { "" } else { " " };
            eprintln!("jumpwire: {msg}\nTry 'jumpwire{space}{command} --help'.");
            ExitCode::from(2)
        }
        Err(Failure::Library(e @ jumpwire::Error::InvalidArgument(_))) => {
            eprintln!("jumpwire: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Library(e)) => {
            eprintln!("jumpwire: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Runtime(msg)) => {
            eprintln!("jumpwire: {msg}");
            ExitCode::FAILURE
        }
    }
}
