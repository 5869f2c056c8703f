//! The Jumpstarter router: the protocol's generated types ([`pb`]), the router
//! client stream ([`connect`](fn@connect)), the exporter side
//! ([`export`](fn@export)), the router server ([`Router`]) and stream tokens
//! ([`token`]).
//!
//! Both ends of a routed stream dial the router with the same stream token;
//! the router pairs the two callers whose tokens carry the same `sub` and
//! relays `jumpstarter.v1.RouterService/Stream` frames between them. The
//! router server runs on one small tokio runtime owned by the library
//! (`runtime`: one worker thread, started on first use). Each client stream
//! and exporter has a current-thread runtime of its own, driven by the
//! caller's thread while it is inside a call, and otherwise by one library
//! thread that watches idle streams' sockets (see `drive`). Every call of the
//! Rust and C API stays blocking, and a router stream is a
//! [`Stream`](crate::Stream) like any other.
//!
//! The files, each one idea, leaf first. Each uses only this module, the
//! files above it and the crate modules named after "Crate:" (a unit test
//! here checks it):
//! - `token`: minting and checking stream tokens (HS256 JWT). Crate: `error`.
//! - `drive`: the runtime of a client stream or exporter (`StreamRuntime`)
//!   and the library thread that drives it while no caller is inside,
//!   watching the connection's socket (`Linger`). Crate: `error`, `sys`,
//!   `util`.
//! - `connect`: how a router is reached: the HTTP/2 connection of a
//!   `grpc://` or `grpcs://` URL (TCP, TLS, keepalive) on a stream runtime,
//!   or of a Jumpstarter session's Unix socket (`Target`). Uses `drive`.
//!   Crate: `error`, `socket`, `tls`, `url`.
//! - `client`: one `RouterService/Stream` call (started, its frames, its
//!   end) and the blocking [`Stream`](crate::Stream) over it
//!   ([`connect`](fn@connect)); and `Connection`, an HTTP/2 connection that
//!   many such calls share, with extra request metadata and a status
//!   mapping of the caller's (what `crate::session` opens its driver
//!   streams on: the session's calls end at the GOAWAYs, and are cancelled
//!   then). Uses `connect`, `drive`. Crate: `error`, `stream`, `url`,
//!   `util`.
//! - `tunnel`: an HTTP/2 connection inside a router stream
//!   (`Connection::tunnel`): how a lab's client reaches its lease's session
//!   through the router the controller names. Uses `client`, `connect`,
//!   `drive`. Crate: `error`.
//! - `export`: the exporter ([`export`](fn@export)): a call started as
//!   `client` starts one, forwarded to a target stream; the stoppable loop
//!   of them ([`Exporting`]) and a lease's router stream (`export_via`).
//!   Uses `client`, `connect` (and the call's runtime, from `drive`).
//!   Crate: `error`, `relay`, `stream`, `url`,
//!   `util`.
//! - `gate`: the server's door: accept loops, TLS handshakes under limits,
//!   the first-call deadline, refusals counted. Crate: `util`.
//! - `server`: the router server ([`Router`]): admission by token, pairing,
//!   the relay of a pair's frames, its certificate and TLS acceptor. Uses
//!   `gate`, `token`. Crate: `error`, `tls`, `url`, `util`.
//!
//! This module holds what both ends share: the generated types, the message
//! and window sizes, ALPN, and the server's runtime (crate: `sys`). No file
//! here uses the dispatcher (`network`), the listeners (`forward`),
//! `session` or `websocket`; the C side of the router (its handle, the certificate as a
//! C string) is in `ffi`.

mod client;
mod connect;
mod drive;
mod export;
mod gate;
mod server;
pub mod token;
mod tunnel;

pub(crate) use client::Connection;
pub use client::connect;
pub(crate) use connect::Target;
pub use export::{Exporting, export};
pub(crate) use export::{Stop, export_via};
pub use server::Router;

use std::sync::OnceLock;
use tokio::runtime::Runtime;

/// Protobuf types and gRPC stubs generated from
/// `proto/jumpstarter/v1/router.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/jumpstarter.v1.rs"));
}

/// Largest message the router and the client accept (as upstream: 64 MiB).
pub const MAX_MESSAGE: usize = 64 << 20;

/// Largest DATA frame a router client sends; larger sends are split.
pub const MAX_FRAME: usize = 64 << 10;

/// How long the end of a router client stream may take: queued frames
/// draining into the connection on `close`, and the router closing its side
/// of a connection we let go of.
pub(crate) const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// HTTP/2 flow-control windows of router connections, both ends: large
/// enough that a window update is rarely waited for at loopback speeds.
pub(crate) const STREAM_WINDOW: u32 = 4 << 20;
/// See [`STREAM_WINDOW`].
pub(crate) const CONNECTION_WINDOW: u32 = 8 << 20;

/// The one ALPN protocol router connections speak over TLS, both ends (gRPC
/// over TLS requires `h2`).
const ALPN_H2: &[u8] = b"h2";

/// The library's runtime for the router server: started on first use, one
/// worker thread named `jw-router`, never stopped. One worker, not two: a
/// frame then crosses the connection, relay and response tasks of a hop in
/// one wake-up of one thread; with two, tasks woken on the other worker
/// cost extra context switches. Measured with `bench/router.sh` under
/// `perf stat` (20,000 64-byte round trips through client, router, exporter
/// and echo, when the clients ran on it too): about 10 context switches per
/// round trip instead of 14-17, 25 % less CPU, and p50 latency roughly
/// halved. Its threads block `SIGPIPE` (they write to sockets inside a host
/// that may be a C program that has not ignored the signal).
pub(crate) fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(2)
            .thread_name("jw-router")
            .on_thread_start(crate::sys::block_sigpipe)
            .enable_all()
            .build()
            .expect("starting the router runtime")
    })
}

#[cfg(test)]
mod tests {
    /// The files of this module, leaf first (as the module docs list them),
    /// each with the crate modules it may use.
    const LAYERS: &[(&str, &[&str])] = &[
        ("token", &["error"]),
        ("drive", &["error", "sys", "util"]),
        ("connect", &["error", "socket", "tls", "url"]),
        ("client", &["error", "stream", "url", "util"]),
        (
            "export",
            &["error", "relay", "stream", "sys", "url", "util"],
        ),
        ("tunnel", &["error"]),
        ("gate", &["util"]),
        ("server", &["error", "stream", "tls", "url", "util"]),
    ];

    /// The identifiers that follow `prefix` in `code`: `a` of `prefix a::…`,
    /// and each of `a`, `b` of `prefix {a, b::…}`.
    fn after(code: &str, prefix: &str) -> Vec<String> {
        let word = |s: &str| {
            s.trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        };
        let mut found = Vec::new();
        for (at, _) in code.match_indices(prefix) {
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = &code[at + prefix.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').expect("a closed use group")];
                found.extend(group.split(',').map(word));
            } else {
                found.push(word(rest));
            }
        }
        found.retain(|w| !w.is_empty());
        found
    }

    #[test]
    fn each_file_uses_only_the_files_before_it_and_its_crate_modules() {
        let files: Vec<&str> = LAYERS.iter().map(|(f, _)| *f).collect();
        for (i, (file, allowed)) in LAYERS.iter().enumerate() {
            let path = format!("{}/src/router/{file}.rs", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).unwrap();
            // Code only: doc links name other files without using them.
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            for m in after(&code, "crate::") {
                assert!(
                    m == "router" || allowed.contains(&m.as_str()),
                    "{path}: uses crate::{m}"
                );
            }
            for m in after(&code, "super::") {
                if let Some(j) = files.iter().position(|f| *f == m) {
                    assert!(j < i, "{path}: uses {m}, which comes after it");
                }
            }
        }
    }

    #[test]
    fn the_scan_finds_paths_and_use_groups() {
        let code = "use super::{a, b::c};\nlet x = crate::tls::f(super::z);\n";
        assert_eq!(after(code, "super::"), ["a", "b", "z"]);
        assert_eq!(after(code, "crate::"), ["tls"]);
        // Not at a word's start: not a path of this module.
        assert!(after("my_crate::x", "crate::").is_empty());
    }
}
