//! Helpers shared by the session tests: upstream's own session
//! (`tests/python/session_peer.py`, run with `JW_PYTHON`), started and
//! killed by its pid.

use jumpwire::Network;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/session_peer.py");

/// The Python of `scripts/venv.sh` (`JW_PYTHON`).
pub fn python() -> String {
    std::env::var("JW_PYTHON").unwrap_or_else(|_| {
        panic!("JW_PYTHON is not set: run scripts/venv.sh and export JW_PYTHON=$(scripts/venv.sh)")
    })
}

/// An upstream session (session_peer.py), killed by its pid when dropped.
/// Its stdin is a pipe of ours: it also ends when this process does.
pub struct Peer {
    pub child: Child,
    /// The session's socket (the value for `JUMPSTARTER_HOST`).
    pub socket: String,
    /// The TCP echo server behind `tcp` and `dut.console` (`HOST:PORT`).
    pub tcp: String,
    /// The session on TCP too (`HOST:PORT`), when started with `--tcp`.
    pub session_tcp: Option<String>,
}

impl Peer {
    /// Starts session_peer.py with `args` and waits for its `READY`.
    pub fn start(args: &[&str]) -> Peer {
        let mut child = Command::new(python())
            .arg(PEER)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting Python");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        loop {
            let mut l = String::new();
            assert_ne!(
                out.read_line(&mut l).unwrap(),
                0,
                "session_peer.py ended: {lines:?}"
            );
            let l = l.trim().to_string();
            if l == "READY" {
                break;
            }
            lines.push(l);
        }
        let field = |p: &str| {
            lines
                .iter()
                .find_map(|l| l.strip_prefix(p))
                .unwrap_or_else(|| panic!("no {p:?} in {lines:?}"))
                .to_string()
        };
        Peer {
            socket: lines[0].clone(),
            tcp: field("tcp "),
            session_tcp: lines
                .iter()
                .find_map(|l| l.strip_prefix("session-tcp "))
                .map(str::to_string),
            child,
        }
    }

    /// `jumpstarter:unix:SOCKET?driver=DRIVER`.
    pub fn url(&self, driver: &str) -> String {
        format!("jumpstarter:unix:{}?driver={driver}", self.socket)
    }

    /// A network of [`Self::url`].
    pub fn net(&self, driver: &str) -> Network {
        Network::new(&self.url(driver)).unwrap()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
