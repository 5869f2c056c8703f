//! Endpoint URLs: one string configures any endpoint.
//!
//! [`Endpoint::parse`] turns a connect URL into typed configuration, and
//! [`ListenEndpoint::parse`] does the same for a listen URL. Parsing does no
//! I/O. Every failure is an [`Error::InvalidArgument`] whose message quotes the
//! URL (with secrets removed: see [`redact`]), names the part that is wrong and
//! says why.
//!
//! Schemes are matched case-insensitively. Options go in the query
//! (`tcp://h:1?nodelay=0`), except on `ws://`/`wss://` client URLs, whose query
//! belongs to the server: their options go in the fragment
//! (`wss://h/p?x=1#ca=/etc/ca.pem`). Option values are `%XX`-decoded (write a
//! `&` in a value as `%26`, a `#` as `%23`). An unknown scheme or option, or an
//! option given twice, is an error.
//!
//! # Connect URLs ([`Endpoint`])
//!
//! - `tcp://HOST:PORT[?nodelay=0|1][&enable_address=true|false]`
//!   ([`TcpConfig`])
//! - `udp://HOST:PORT[?enable_address=true|false]` ([`UdpConfig`])
//! - `unix:/PATH`, `unix:///PATH`, `unix:RELATIVE/PATH`, `unix:@NAME` (Linux's
//!   abstract namespace) ([`UnixPath`]); no options
//! - `vsock://CID:PORT` ([`VsockConfig`])
//! - `dbus:system`, `dbus:session`, `dbus:ADDRESS` such as
//!   `dbus:unix:path=/run/x` ([`DbusBus`])
//! - `ws://HOST[:PORT][/PATH][?QUERY][#protocols=LIST]`,
//!   `wss://HOST[:PORT][/PATH][?QUERY][#ca=FILE][&insecure=1][&protocols=LIST]`
//!   (port 80 or 443 by default; [`WebsocketConfig`])
//! - `echo:` (or `echo://`)
//! - `grpc://HOST:PORT`, `grpcs://HOST:PORT[?ca=FILE][&insecure=1]`
//!   ([`RouterConfig`])
//! - `jumpstarter:unix:/PATH?driver=NAME[&method=M]` (also `unix:@NAME`):
//!   a driver stream of the Jumpstarter session (upstream's exporter
//!   session, `ExporterService` plus `RouterService/Stream`) served on that
//!   Unix socket; `jumpstarter:?driver=NAME[&method=M]`: of the session that
//!   `JUMPSTARTER_HOST` names (as inside `jmp shell`), read at each connect
//!   with upstream's rules: a value whose text after its last `:` is a port
//!   (1-65535) is `HOST:PORT` over TCP (TLS with the system roots, plaintext
//!   when `JMP_GRPC_INSECURE=1` or `JUMPSTARTER_GRPC_INSECURE=1`; the
//!   passphrase of `JMP_GRPC_PASSPHRASE` is sent when set), anything else a
//!   Unix socket path (no `unix:` prefix). `NAME` is the driver's name path
//!   as `jmp` shows it: the children's `jumpstarter.dev/name` labels,
//!   dot-separated for nested drivers (`dut.console`); `method` is the
//!   stream method (`connect` by default). ([`JumpstarterConfig`])
//! - `jumpstarter:lease?driver=NAME[&method=M][&lease=LEASE][&client=ALIAS|&config=FILE]`:
//!   a driver stream of a lease's session, reached through the lab's
//!   controller (`GetLease`, `Dial`) and router, as upstream's client
//!   reaches it ([`LeaseAddress`]). The lease is `LEASE`, else `JMP_LEASE`.
//!   The client configuration (controller endpoint, token, TLS) is
//!   upstream's `ClientConfigV1Alpha1` YAML: `config=FILE`, or
//!   `client=ALIAS` (`clients/ALIAS.yaml` in `JMP_CLIENT_CONFIG_HOME`, else
//!   `$XDG_CONFIG_HOME/jumpstarter`), else `JMP_CLIENT_CONFIG` (a file),
//!   else the `JMP_*` variables alone when `JMP_NAMESPACE` and `JMP_NAME`
//!   are set, else the user configuration's `current-client`
//!   ([`ClientConfigSource`]); `JMP_ENDPOINT`, `JMP_TOKEN`,
//!   `JMP_NAMESPACE`, `JMP_NAME`, `JMP_TLS` fill what a file leaves out,
//!   and `JMP_GRPC_INSECURE=1` skips certificate verification. All of it
//!   is read at connect time; the URL holds no secret.
//!
//! # Listen URLs ([`ListenEndpoint`])
//!
//! Port 0 picks a free port.
//!
//! - `tcp://HOST:PORT[?max_connections=N]` ([`TcpListenOptions`])
//! - `unix:/PATH`, `unix:///PATH`, `unix:RELATIVE/PATH`, `unix:@NAME`
//! - `ws://HOST:PORT[/PATH][?OPTIONS]`, options `max_message`, `max_frame`,
//!   `max_connections`, `max_handshakes`, `handshake_timeout_ms`, `queue`
//!   (each `N`), `protocols=LIST`, `origins=LIST`; the path is accepted and
//!   not kept ([`WebsocketListenOptions`])
//! - `grpc://HOST:PORT?key=SECRET`,
//!   `grpcs://HOST:PORT?key=SECRET[&cert=FILE&key_file=FILE]`
//!   ([`RouterListenConfig`])
//!
//! # Parts
//!
//! - `HOST`: a host name (letters, digits, `-`, `.`, `_`), an IPv4 address, or
//!   an IPv6 address in brackets with an optional zone (`[::1]`,
//!   `[fe80::1%eth0]`); no user info.
//! - `PORT`: decimal, 1-65535 to connect, 0-65535 to listen. `CID` and a vsock
//!   `PORT`: decimal, 0-4294967295.
//! - `PATH`, `NAME`: at most [`UNIX_PATH_MAX`] bytes, no NUL; not decoded.
//! - Booleans: `0`, `1`, `true`, `false`. `N`: a whole number from 1 to 2^30.
//!   `LIST`: comma-separated, items trimmed; `FILE`, `SECRET`: non-empty.

// The files: `connect` (Endpoint and its configs), `listen` (ListenEndpoint
// and its options), `syntax` (scheme, authority, host, port), `query` (the
// options after `?` or `#`), `percent` (the one `%XX` decoder, D-Bus addresses
// use it too); here the shared types, the error messages and redaction.
mod connect;
mod listen;
pub(crate) mod percent;
mod query;
mod syntax;

pub use connect::{
    ClientConfigSource, DEFAULT_STREAM_METHOD, DbusBus, Endpoint, JumpstarterConfig, LeaseAddress,
    RouterConfig, SessionAddress, TcpConfig, UdpConfig, VsockConfig, WebsocketConfig,
};
pub use listen::{ListenEndpoint, RouterListenConfig, TcpListenOptions, WebsocketListenOptions};

use crate::error::{Error, Result};
use std::path::PathBuf;

/// Where a Unix socket lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnixPath {
    /// A filesystem path (`unix:/run/x.sock`, `unix:///run/x.sock`).
    Path(PathBuf),
    /// A name in Linux's abstract namespace (`unix:@name`), without the `@`.
    Abstract(String),
}

/// Longest filesystem path or abstract name a Unix socket address can hold
/// (`sun_path` is 108 bytes: a path needs its terminating NUL, an abstract
/// name its leading NUL).
pub const UNIX_PATH_MAX: usize = 107;

impl std::fmt::Display for UnixPath {
    /// Writes `unix:/PATH` or `unix:@NAME`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnixPath::Abstract(name) => write!(f, "unix:@{name}"),
            UnixPath::Path(p) => {
                let p = p.to_string_lossy();
                if p.starts_with("//") {
                    // `unix://x` would read as an authority.
                    write!(f, "unix://{p}")
                } else {
                    write!(f, "unix:{p}")
                }
            }
        }
    }
}

const UNIX_FORMS: &str = "unix:/PATH, unix:///PATH or unix:@NAME";

fn parse_unix(cx: &Ctx<'_>, rest: &str) -> Result<UnixPath> {
    if rest.contains('?') {
        return Err(cx.err("takes no options (a unix: URL cannot contain '?')"));
    }
    let path = match rest.strip_prefix("//") {
        Some("") => "",
        Some(after) if after.starts_with('/') => after,
        Some(_) => {
            return Err(cx.err(format_args!("takes no host (expected {UNIX_FORMS})")));
        }
        None => rest,
    };
    if path.is_empty() {
        return Err(cx.err(format_args!("path is empty (expected {UNIX_FORMS})")));
    }
    if path.contains('\0') {
        return Err(cx.err("path contains a NUL byte"));
    }
    let (what, value) = match path.strip_prefix('@') {
        Some("") => return Err(cx.err("abstract socket name is empty")),
        Some(name) => ("abstract socket name", name),
        None => ("path", path),
    };
    if value.len() > UNIX_PATH_MAX {
        return Err(cx.err(format_args!(
            "{what} is {} bytes, too long for a Unix socket address (max {UNIX_PATH_MAX} bytes)",
            value.len()
        )));
    }
    Ok(match path.strip_prefix('@') {
        Some(name) => UnixPath::Abstract(name.to_owned()),
        None => UnixPath::Path(PathBuf::from(path)),
    })
}

// ---------------------------------------------------------------------------
// Error messages and redaction
// ---------------------------------------------------------------------------

/// What every error message needs: the URL (to quote, redacted) and its
/// lower-cased scheme.
struct Ctx<'a> {
    url: &'a str,
    scheme: &'a str,
}

impl Ctx<'_> {
    /// `<redacted url>: <msg>` as an [`Error::InvalidArgument`].
    fn err(&self, msg: impl std::fmt::Display) -> Error {
        url_error(self.url, msg)
    }
}

fn url_error(url: &str, msg: impl std::fmt::Display) -> Error {
    if url.is_empty() {
        Error::invalid(format!("empty URL: {msg}"))
    } else {
        // The message may quote a part of the URL with a key in it (a key
        // typed after '&' instead of '?' ends up in the port, say).
        let msg = redact_quoted(&msg.to_string());
        Error::invalid(format!("{}: {msg}", redact(url)))
    }
}

fn missing_scheme(url: &str, schemes: &str) -> Error {
    url_error(url, format_args!("missing scheme (expected {schemes})"))
}

/// Returns `url` with the value of every `key=` option (after `?`, `&` or
/// `#`, name matched case-insensitively) replaced by `***`, for error
/// messages and logs.
///
/// The value is taken to run up to the next `&` or the end of the string, so
/// a `#` inside a key is hidden as well.
pub fn redact(url: &str) -> String {
    redact_until(url, |b| b == b'&')
}

/// [`redact`] for the quoted parts (`"..."`) of a message that quotes parts
/// of a URL: the rest of the message is the library's own text.
fn redact_quoted(text: &str) -> String {
    text.split('"')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                redact_until(&format!("&{part}"), |b| b == b'&')[1..].to_string()
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\"")
}

fn redact_until(url: &str, ends: impl Fn(u8) -> bool) -> String {
    let bytes = url.as_bytes();
    let mut out = String::with_capacity(url.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let is_key = matches!(bytes[i], b'?' | b'&' | b'#')
            && bytes.len() >= i + 5
            && bytes[i + 1..i + 5].eq_ignore_ascii_case(b"key=");
        if !is_key {
            i += 1;
            continue;
        }
        let start = i + 5;
        let end = bytes[start..]
            .iter()
            .position(|&b| ends(b))
            .map_or(bytes.len(), |p| start + p);
        if end > start {
            // `start` and `end` sit next to ASCII bytes, so both are char
            // boundaries.
            out.push_str(&url[copied..start]);
            out.push_str("***");
            copied = end;
        }
        i = end;
    }
    out.push_str(&url[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn unix_path(p: &str) -> UnixPath {
        UnixPath::Path(PathBuf::from(p))
    }

    /// The message of an [`Error::InvalidArgument`]; panics on anything else.
    pub(super) fn message(result: Result<impl std::fmt::Debug>) -> String {
        match result {
            Err(Error::InvalidArgument(m)) => m,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn redact_hides_key_values() {
        let cases: &[(&str, &str)] = &[
            ("grpc://h:0?key=abc", "grpc://h:0?key=***"),
            (
                "grpcs://h:0?cert=/c&key=abc&key_file=/k",
                "grpcs://h:0?cert=/c&key=***&key_file=/k",
            ),
            ("grpc://h:0?key=a#b", "grpc://h:0?key=***"),
            ("grpc://h:0?KEY=a", "grpc://h:0?KEY=***"),
            ("grpc://h:0?key=a&key=b", "grpc://h:0?key=***&key=***"),
            ("wss://h/#key=a&ca=/c", "wss://h/#key=***&ca=/c"),
            ("grpc://h:0?key=é€&x=1", "grpc://h:0?key=***&x=1"),
            ("grpc://h:0?key=", "grpc://h:0?key="),
            ("grpc://h:0?key", "grpc://h:0?key"),
            ("grpc://h:0?monkey=a", "grpc://h:0?monkey=a"),
            ("grpcs://h:0?key_file=/k", "grpcs://h:0?key_file=/k"),
            ("tcp://h:1", "tcp://h:1"),
            ("dbus:unix:path=/x,guid=1", "dbus:unix:path=/x,guid=1"),
            ("", ""),
        ];
        for (url, want) in cases {
            assert_eq!(redact(url), *want, "{url}");
        }
    }

    #[test]
    fn a_key_quoted_in_an_error_message_is_hidden() {
        // Found by the url_listen fuzz target: the key after '&' lands in the
        // port, which the message quotes.
        for url in [
            "grpc://127.0.0.1:0&key=hunter2",
            "grpcs://h&key=hunter2:1",
            "grpc://127.0.0.1:0#x&key=hunter2",
        ] {
            let e = ListenEndpoint::parse(url).unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{url}: {e}");
        }
        assert_eq!(
            redact_quoted("port \"0&key=s3\" is bad"),
            "port \"0&key=***\" is bad"
        );
    }

    #[test]
    fn no_error_or_display_shows_the_key() {
        const SECRET: &str = "hunter2";
        let bad = [
            "grpc://h:0?key=hunter2#x",
            "grpc://h:0?key=hunter2&cert=/c&key_file=/k",
            "grpcs://h:0?key=hunter2&cert=/c",
            "grpcs://h:0?key=hunter2&key=hunter2",
            "grpc://h:0?KEY=hunter2",
            "grpc://h:0?key=hunter2%zz",
            "grpc://h:0?key=hunter2%FF",
            "grpc://h:0/x?key=hunter2",
            "grpc://h?key=hunter2",
            "grpc://h:99999?key=hunter2",
            "grpc://h h:0?key=hunter2",
            "grpc://::1:0?key=hunter2",
            "grpc://h:0?frob=1&key=hunter2",
            "udp://h:0?key=hunter2",
            "wss://h:0?key=hunter2",
            "frob://h:0?key=hunter2",
        ];
        for url in bad {
            let got = message(ListenEndpoint::parse(url));
            assert!(!got.contains(SECRET), "{url:?}: {got:?}");
            let got = message(Endpoint::parse(url));
            assert!(!got.contains(SECRET), "{url:?}: {got:?}");
        }
        for url in [
            "grpc://h:0?key=hunter2",
            "grpcs://h:0?key=hunter2&cert=/c&key_file=/k",
        ] {
            let parsed = ListenEndpoint::parse(url).unwrap();
            assert!(!parsed.to_string().contains(SECRET), "{url}");
            assert!(!format!("{parsed:?}").contains(SECRET), "{url}");
        }
    }
}
