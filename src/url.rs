//! Endpoint URLs: one string configures any endpoint.
//!
//! [`Endpoint::parse`] turns a connect URL (`tcp://h:1`, `unix:/p`, `echo:`, ...)
//! into typed configuration, and [`ListenEndpoint::parse`] does the same for
//! listen URLs (`tcp://127.0.0.1:0`, `unix:/p`, `ws://127.0.0.1:0`,
//! `grpc://127.0.0.1:0?key=S`). Parsing does no I/O. Every failure is an
//! [`Error::InvalidArgument`] whose message quotes the URL (with secrets
//! removed), names the part that is wrong and says why.
//!
//! Options go in the query (`tcp://h:1?nodelay=0`), except on `ws://`/`wss://`
//! client URLs, whose query belongs to the server: their options go in the
//! fragment (`wss://h/p?x=1#ca=/etc/ca.pem`). An unknown scheme or option is an
//! error.

use crate::error::{Error, Result};
use std::path::PathBuf;

/// A parsed connect URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `tcp://HOST:PORT[?nodelay=0|1][&enable_address=true|false]`
    Tcp(TcpConfig),
    /// `udp://HOST:PORT[?enable_address=true|false]`
    Udp(UdpConfig),
    /// `unix:/PATH`, `unix:///PATH`, `unix:@NAME`
    Unix(UnixPath),
    /// `vsock://CID:PORT`
    Vsock(VsockConfig),
    /// `dbus:system`, `dbus:session`, `dbus:ADDRESS`
    Dbus(DbusBus),
    /// `ws://HOST[:PORT]/PATH[?QUERY][#OPTIONS]`, `wss://...`
    Websocket(WebsocketConfig),
    /// `echo:`
    Echo,
    /// `grpc://HOST:PORT`, `grpcs://HOST:PORT[?ca=FILE][&insecure=1]`
    Router(RouterConfig),
}

/// TCP client configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpConfig {
    /// Host name or IP address, without brackets for IPv6 (`::1`).
    pub host: String,
    /// Destination port, 1..=65535.
    pub port: u16,
    /// `TCP_NODELAY` (default on; `?nodelay=0` leaves Nagle on).
    pub nodelay: bool,
    /// Whether `address()` may report the address (default true).
    pub enable_address: bool,
}

/// UDP client configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpConfig {
    /// Host name or IP address, without brackets for IPv6.
    pub host: String,
    /// Destination port, 1..=65535.
    pub port: u16,
    /// Whether `address()` may report the address (default true).
    pub enable_address: bool,
}

/// Where a Unix socket lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnixPath {
    /// A filesystem path (`unix:/run/x.sock`, `unix:///run/x.sock`).
    Path(PathBuf),
    /// A name in Linux's abstract namespace (`unix:@name`), without the `@`.
    Abstract(String),
}

/// vsock client configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VsockConfig {
    /// Context id of the peer.
    pub cid: u32,
    /// Port of the peer.
    pub port: u32,
}

/// Which D-Bus bus a `dbus:` URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbusBus {
    /// `dbus:system`: `DBUS_SYSTEM_BUS_ADDRESS` or the system default.
    System,
    /// `dbus:session`: `DBUS_SESSION_BUS_ADDRESS` or the session default.
    Session,
    /// `dbus:ADDRESS`: an explicit D-Bus address such as `unix:path=/run/x`.
    Address(String),
}

/// Websocket client configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebsocketConfig {
    /// The URL as sent to the server: scheme, authority, path and query,
    /// without the fragment.
    pub url: String,
    /// `wss://`.
    pub secure: bool,
    /// Host name or IP address, without brackets for IPv6.
    pub host: String,
    /// Port (default 80 for `ws://`, 443 for `wss://`).
    pub port: u16,
    /// `#ca=FILE`: trust this PEM bundle instead of the system roots.
    pub ca: Option<PathBuf>,
    /// `#insecure=1`: skip certificate verification.
    pub insecure: bool,
    /// `#protocols=binary,base64`: the subprotocols offered, in order of
    /// preference (`Sec-WebSocket-Protocol`); none by default.
    pub protocols: Vec<String>,
}

/// Router client configuration (`grpc://`, `grpcs://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    /// Host name or IP address, without brackets for IPv6.
    pub host: String,
    /// Port, 1..=65535.
    pub port: u16,
    /// `grpcs://`.
    pub tls: bool,
    /// `?ca=FILE`: trust this PEM bundle.
    pub ca: Option<PathBuf>,
    /// `?insecure=1`: skip certificate verification.
    pub insecure: bool,
}

/// A parsed listen URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenEndpoint {
    /// `tcp://HOST:PORT[?max_connections=N]` (port 0 picks a free port).
    Tcp {
        /// Address to bind, without brackets for IPv6.
        host: String,
        /// Port to bind; 0 picks a free one.
        port: u16,
        /// Limits set in the query.
        options: TcpListenOptions,
    },
    /// `unix:/PATH`, `unix:///PATH`, `unix:@NAME`.
    Unix(UnixPath),
    /// `ws://HOST:PORT[/PATH][?OPTIONS]`: a websocket server (or bridge).
    Websocket {
        /// Address to bind, without brackets for IPv6.
        host: String,
        /// Port to bind; 0 picks a free one.
        port: u16,
        /// Limits set in the query.
        options: WebsocketListenOptions,
    },
    /// `grpc://HOST:PORT?key=SECRET`, `grpcs://HOST:PORT?key=SECRET[&cert=FILE&key_file=FILE]`.
    Router(RouterListenConfig),
}

/// Limits of a forwarding listener on TCP, set in its listen URL's query:
/// `tcp://127.0.0.1:0?max_connections=100`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpListenOptions {
    /// `max_connections`: forwarded connections open at once (default 1024,
    /// at least 1). Each holds a thread, a target stream and about six
    /// descriptors; one more is refused: counted, logged and reset.
    pub max_connections: usize,
}

impl Default for TcpListenOptions {
    fn default() -> TcpListenOptions {
        TcpListenOptions {
            max_connections: 1024,
        }
    }
}

/// Limits and handshake policy of a websocket server (or bridge), set in its
/// listen URL's query:
/// `ws://127.0.0.1:0?max_message=1048576&max_frame=65536&max_connections=100&max_handshakes=16&handshake_timeout_ms=2000&queue=64&protocols=binary,base64&origins=https://lab.example`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebsocketListenOptions {
    /// `max_message`: largest message accepted from a client, in bytes
    /// (default 16 MiB); a larger one is refused with close code 1009.
    pub max_message: usize,
    /// `max_frame`: largest single frame accepted, in bytes (default 16 MiB).
    pub max_frame: usize,
    /// `max_connections`: connections served at once, handshake done
    /// (default 1024); more are answered with HTTP 503.
    pub max_connections: usize,
    /// `max_handshakes`: connections still in their handshake at once,
    /// counted apart from served ones (default 64). When they are all taken,
    /// a new connection ends the oldest of them, so that clients that never
    /// finish a handshake cannot lock real ones out.
    pub max_handshakes: usize,
    /// `handshake_timeout_ms`: time a client has for its handshake (default
    /// 10000).
    pub handshake_timeout_ms: u64,
    /// `queue`: broadcast messages queued per connection before the
    /// connection counts as too slow and is dropped (default 1024).
    pub queue: usize,
    /// `protocols`: the subprotocols answered, in order of preference
    /// (default `binary`, what noVNC offers: every message the server sends
    /// is binary). The first of the client's offers (`Sec-WebSocket-Protocol`)
    /// that is in this list is answered; if none is, none is answered.
    /// `protocols=` (empty) answers none.
    pub protocols: Vec<String>,
    /// `origins`: the `Origin` values allowed (e.g.
    /// `http://a.example,https://b.example:8443`); a request with another
    /// `Origin`, or none, is refused with HTTP 403. Absent: any origin.
    pub origins: Option<Vec<String>>,
}

impl Default for WebsocketListenOptions {
    fn default() -> WebsocketListenOptions {
        WebsocketListenOptions {
            max_message: 16 << 20,
            max_frame: 16 << 20,
            max_connections: 1024,
            max_handshakes: 64,
            handshake_timeout_ms: 10_000,
            queue: 1024,
            protocols: vec!["binary".to_string()],
            origins: None,
        }
    }
}

/// Router server configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct RouterListenConfig {
    /// Address to bind, without brackets for IPv6.
    pub host: String,
    /// Port to bind; 0 picks a free one.
    pub port: u16,
    /// `grpcs://`.
    pub tls: bool,
    /// `?key=SECRET`: the HMAC key that signs stream tokens (required).
    pub key: String,
    /// `?cert=FILE`: PEM certificate chain (TLS only).
    pub cert: Option<PathBuf>,
    /// `?key_file=FILE`: PEM private key (TLS only).
    pub key_file: Option<PathBuf>,
}

impl std::fmt::Debug for RouterListenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterListenConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("key", &"<secret>")
            .field("cert", &self.cert)
            .field("key_file", &self.key_file)
            .finish()
    }
}

/// Longest filesystem path or abstract name a Unix socket address can hold
/// (`sun_path` is 108 bytes: a path needs its terminating NUL, an abstract
/// name its leading NUL).
pub const UNIX_PATH_MAX: usize = 107;

/// The connect schemes, as error messages list them.
const CONNECT_SCHEMES: &str = "tcp, udp, unix, vsock, dbus, ws, wss, echo, grpc, grpcs";

/// The listen schemes, as error messages list them.
const LISTEN_SCHEMES: &str = "tcp, unix, ws, grpc, grpcs";

impl Endpoint {
    /// Parses a connect URL. No I/O happens here.
    ///
    /// The scheme is matched case-insensitively. Every failure is an
    /// [`Error::InvalidArgument`] whose message starts with the URL passed
    /// through [`redact`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the scheme is unknown or any part of
    /// the URL (host, port, path, option) is malformed.
    pub fn parse(url: &str) -> Result<Endpoint> {
        let Some((scheme, rest)) = split_scheme(url) else {
            return Err(missing_scheme(url, CONNECT_SCHEMES));
        };
        let cx = Ctx {
            url,
            scheme: &scheme,
        };
        match scheme.as_str() {
            "tcp" => parse_tcp(&cx, rest).map(Endpoint::Tcp),
            "udp" => parse_udp(&cx, rest).map(Endpoint::Udp),
            "unix" => parse_unix(&cx, rest).map(Endpoint::Unix),
            "vsock" => parse_vsock(&cx, rest).map(Endpoint::Vsock),
            "dbus" => parse_dbus(&cx, rest).map(Endpoint::Dbus),
            "ws" | "wss" => parse_websocket(&cx, rest).map(Endpoint::Websocket),
            "echo" => parse_echo(&cx, rest),
            "grpc" | "grpcs" => parse_router(&cx, rest).map(Endpoint::Router),
            _ => Err(cx.err(format_args!(
                "unknown scheme {scheme:?} (expected {CONNECT_SCHEMES})"
            ))),
        }
    }
}

impl ListenEndpoint {
    /// Parses a listen URL. No I/O happens here.
    ///
    /// The scheme is matched case-insensitively. Every failure is an
    /// [`Error::InvalidArgument`] whose message starts with the URL passed
    /// through [`redact`], so the router key never appears in it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the scheme cannot listen or any part of
    /// the URL (host, port, path, option) is malformed.
    pub fn parse(url: &str) -> Result<ListenEndpoint> {
        let Some((scheme, rest)) = split_scheme(url) else {
            return Err(missing_scheme(url, LISTEN_SCHEMES));
        };
        let cx = Ctx {
            url,
            scheme: &scheme,
        };
        match scheme.as_str() {
            "tcp" => parse_tcp_listen(&cx, rest),
            "unix" => parse_unix(&cx, rest).map(ListenEndpoint::Unix),
            "ws" => parse_ws_listen(&cx, rest),
            "grpc" | "grpcs" => parse_router_listen(&cx, rest).map(ListenEndpoint::Router),
            _ => Err(cx.err(format_args!(
                "{scheme:?} is not a listen scheme (expected {LISTEN_SCHEMES})"
            ))),
        }
    }
}

/// Returns `url` with the value of every `key=` option (after `?`, `&` or
/// `#`, name matched case-insensitively) replaced by `***`, for error
/// messages and logs.
///
/// The value is taken to run up to the next `&` or the end of the string, so
/// a `#` inside a key is hidden as well.
pub fn redact(url: &str) -> String {
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
            .position(|&b| b == b'&')
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

impl std::fmt::Display for Endpoint {
    /// Writes the canonical URL: parsing it gives back an equal endpoint.
    /// Options are written only when they differ from their defaults.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(c) => {
                write!(f, "tcp://{}:{}", HostFmt(&c.host), c.port)?;
                let mut opts = OptWriter::new('?');
                if !c.nodelay {
                    opts.write(f, "nodelay", "0")?;
                }
                if !c.enable_address {
                    opts.write(f, "enable_address", "false")?;
                }
                Ok(())
            }
            Endpoint::Udp(c) => {
                write!(f, "udp://{}:{}", HostFmt(&c.host), c.port)?;
                if !c.enable_address {
                    OptWriter::new('?').write(f, "enable_address", "false")?;
                }
                Ok(())
            }
            Endpoint::Unix(p) => write!(f, "{p}"),
            Endpoint::Vsock(c) => write!(f, "vsock://{}:{}", c.cid, c.port),
            Endpoint::Dbus(DbusBus::System) => f.write_str("dbus:system"),
            Endpoint::Dbus(DbusBus::Session) => f.write_str("dbus:session"),
            Endpoint::Dbus(DbusBus::Address(a)) => write!(f, "dbus:{a}"),
            Endpoint::Websocket(c) => {
                f.write_str(&c.url)?;
                let mut w = write_tls_options(f, '#', c.ca.as_deref(), c.insecure)?;
                if !c.protocols.is_empty() {
                    w.write(f, "protocols", &c.protocols.join(","))?;
                }
                Ok(())
            }
            Endpoint::Echo => f.write_str("echo:"),
            Endpoint::Router(c) => {
                let scheme = if c.tls { "grpcs" } else { "grpc" };
                write!(f, "{scheme}://{}:{}", HostFmt(&c.host), c.port)?;
                write_tls_options(f, '?', c.ca.as_deref(), c.insecure).map(|_| ())
            }
        }
    }
}

impl std::fmt::Display for ListenEndpoint {
    /// Writes the scheme and address. Never writes the router key (nor the
    /// router's certificate files).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenEndpoint::Tcp {
                host,
                port,
                options,
            } => {
                write!(f, "tcp://{}:{port}", HostFmt(host))?;
                if *options != TcpListenOptions::default() {
                    let n = options.max_connections.to_string();
                    OptWriter::new('?').write(f, "max_connections", &n)?;
                }
                Ok(())
            }
            ListenEndpoint::Unix(p) => write!(f, "{p}"),
            ListenEndpoint::Websocket {
                host,
                port,
                options,
            } => {
                write!(f, "ws://{}:{port}/", HostFmt(host))?;
                let d = WebsocketListenOptions::default();
                let mut w = OptWriter::new('?');
                let counts = [
                    (
                        "max_message",
                        options.max_message as u64,
                        d.max_message as u64,
                    ),
                    ("max_frame", options.max_frame as u64, d.max_frame as u64),
                    (
                        "max_connections",
                        options.max_connections as u64,
                        d.max_connections as u64,
                    ),
                    (
                        "handshake_timeout_ms",
                        options.handshake_timeout_ms,
                        d.handshake_timeout_ms,
                    ),
                    ("queue", options.queue as u64, d.queue as u64),
                    (
                        "max_handshakes",
                        options.max_handshakes as u64,
                        d.max_handshakes as u64,
                    ),
                ];
                for (name, value, default) in counts {
                    if value != default {
                        w.write(f, name, &value.to_string())?;
                    }
                }
                if options.protocols != d.protocols {
                    w.write(f, "protocols", &options.protocols.join(","))?;
                }
                if let Some(origins) = &options.origins {
                    w.write(f, "origins", &origins.join(","))?;
                }
                Ok(())
            }
            ListenEndpoint::Router(c) => {
                let scheme = if c.tls { "grpcs" } else { "grpc" };
                write!(f, "{scheme}://{}:{}", HostFmt(&c.host), c.port)
            }
        }
    }
}

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

// ---------------------------------------------------------------------------
// Parsing helpers
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
        Error::invalid(format!("{}: {msg}", redact(url)))
    }
}

fn missing_scheme(url: &str, schemes: &str) -> Error {
    url_error(url, format_args!("missing scheme (expected {schemes})"))
}

/// Splits `scheme:rest`, lower-casing the scheme. `None` when there is no
/// syntactically valid scheme (RFC 3986: a letter, then letters, digits, `+`,
/// `-`, `.`).
fn split_scheme(url: &str) -> Option<(String, &str)> {
    let (scheme, rest) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| (scheme.to_ascii_lowercase(), rest))
}

/// The parts of a `scheme://authority/path?query#fragment` URL, after the
/// scheme.
struct NetParts<'a> {
    authority: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

/// Splits `//authority/path?query#fragment`. `form` is the expected shape,
/// for the message when the `//` is missing.
fn split_net<'a>(cx: &Ctx<'_>, rest: &'a str, form: &str) -> Result<NetParts<'a>> {
    let Some(after) = rest.strip_prefix("//") else {
        return Err(cx.err(format_args!("expected {form}")));
    };
    let (before_fragment, fragment) = match after.split_once('#') {
        Some((a, frag)) => (a, Some(frag)),
        None => (after, None),
    };
    let (before_query, query) = match before_fragment.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (before_fragment, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => before_query.split_at(i),
        None => (before_query, ""),
    };
    Ok(NetParts {
        authority,
        path,
        query,
        fragment,
    })
}

impl NetParts<'_> {
    /// Errors if there is a path (for schemes that take none).
    fn no_path(&self, cx: &Ctx<'_>, form: &str) -> Result<()> {
        if self.path.is_empty() {
            Ok(())
        } else {
            Err(cx.err(format_args!("takes no path (expected {form})")))
        }
    }

    /// Errors if there is a fragment (for schemes that take none).
    fn no_fragment(&self, cx: &Ctx<'_>) -> Result<()> {
        if self.fragment.is_none() {
            Ok(())
        } else {
            Err(cx.err("takes no fragment (write a '#' inside an option value as %23)"))
        }
    }
}

/// Parses `HOST[:PORT]` into the host (IPv6 without brackets) and the raw
/// port text, if any.
fn parse_authority<'a>(cx: &Ctx<'_>, authority: &'a str) -> Result<(String, Option<&'a str>)> {
    if authority.is_empty() {
        return Err(cx.err("host is missing"));
    }
    if authority.contains('@') {
        return Err(cx.err("user info (USER@) is not supported"));
    }
    if let Some(inner) = authority.strip_prefix('[') {
        let Some((host, after)) = inner.split_once(']') else {
            return Err(cx.err("host: '[' without a closing ']'"));
        };
        if !is_ipv6_with_zone(host) {
            return Err(cx.err(format_args!(
                "host {host:?} is not a valid IPv6 address (with an optional %zone)"
            )));
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => {
                    return Err(cx.err(format_args!(
                        "unexpected {after:?} after ']' (expected :PORT)"
                    )));
                }
            },
        };
        return Ok((host.to_owned(), port));
    }
    if authority.matches(':').count() > 1 {
        return Err(cx.err(format_args!(
            "an IPv6 address must be in brackets, e.g. {}://[::1]:PORT",
            cx.scheme
        )));
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    check_hostname(cx, host)?;
    Ok((host.to_owned(), port))
}

fn is_ipv6_with_zone(s: &str) -> bool {
    let (addr, zone) = match s.split_once('%') {
        Some((addr, zone)) => (addr, Some(zone)),
        None => (s, None),
    };
    addr.parse::<std::net::Ipv6Addr>().is_ok()
        && zone.is_none_or(|z| {
            !z.is_empty()
                && z.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

/// Accepts a host name (letters, digits, `-`, `.`, `_`) or an IPv4 address.
fn check_hostname(cx: &Ctx<'_>, host: &str) -> Result<()> {
    if host.is_empty() {
        return Err(cx.err("host is missing"));
    }
    if let Some(c) = host
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
    {
        return Err(cx.err(format_args!(
            "host {host:?} contains {c:?} (expected a host name, an IPv4 address or [IPv6])"
        )));
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return match host.parse::<std::net::Ipv4Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(cx.err(format_args!("host {host:?} is not a valid IPv4 address"))),
        };
    }
    if host.len() > 253 {
        return Err(cx.err(format_args!("host is {} bytes long (max 253)", host.len())));
    }
    let labels = host.strip_suffix('.').unwrap_or(host);
    if labels.split('.').any(str::is_empty) {
        return Err(cx.err(format_args!("host {host:?} has an empty label")));
    }
    if labels.split('.').any(|l| l.len() > 63) {
        return Err(cx.err(format_args!(
            "host {host:?} has a label longer than 63 bytes"
        )));
    }
    Ok(())
}

/// Parses a required port. `min` is 1 for destinations, 0 for listeners.
fn parse_port(cx: &Ctx<'_>, raw: Option<&str>, form: &str, min: u16) -> Result<u16> {
    let Some(raw) = raw else {
        return Err(cx.err(format_args!("port is missing (expected {form})")));
    };
    check_digits(cx, "port", raw)?;
    match raw.parse::<u16>() {
        Ok(0) if min > 0 => Err(cx.err("port 0 is not a destination (expected 1-65535)")),
        Ok(port) => Ok(port),
        Err(_) => Err(cx.err(format_args!("port {raw:?} is out of range ({min}-65535)"))),
    }
}

/// Parses a decimal u32 part named `what`.
fn parse_u32(cx: &Ctx<'_>, what: &str, raw: &str) -> Result<u32> {
    check_digits(cx, what, raw)?;
    raw.parse::<u32>().map_err(|_| {
        cx.err(format_args!(
            "{what} {raw:?} is out of range (0-{})",
            u32::MAX
        ))
    })
}

/// Errors unless `raw` is a non-empty run of ASCII digits.
fn check_digits(cx: &Ctx<'_>, what: &str, raw: &str) -> Result<()> {
    if raw.is_empty() {
        Err(cx.err(format_args!("{what} is empty")))
    } else if !raw.bytes().all(|b| b.is_ascii_digit()) {
        Err(cx.err(format_args!("{what} {raw:?} is not a decimal number")))
    } else {
        Ok(())
    }
}

/// The kind of value an option takes, for messages.
#[derive(Clone, Copy)]
enum OptKind {
    Bool,
    Path,
    Secret,
    Count,
    List,
}

impl OptKind {
    fn expected(self) -> &'static str {
        match self {
            OptKind::Bool => "0, 1, true or false",
            OptKind::Path => "a file path",
            OptKind::Secret => "a non-empty secret",
            OptKind::Count => "a whole number from 1 to 1073741824",
            OptKind::List => "a comma-separated list",
        }
    }
}

/// Options of a URL, as `name=raw value` pairs, checked against the names
/// the scheme accepts.
struct Options<'a> {
    items: Vec<(&'a str, &'a str)>,
}

/// Splits `a=1&b=2` and checks every name against `allowed`: an unknown
/// option, a duplicate, an option without `=` or an empty `&&` is an error.
/// An empty or absent text means no options.
fn parse_options<'a>(
    cx: &Ctx<'_>,
    text: Option<&'a str>,
    allowed: &[(&str, OptKind)],
    what: &str,
) -> Result<Options<'a>> {
    let mut items: Vec<(&str, &str)> = Vec::new();
    let text = text.unwrap_or("");
    if text.is_empty() {
        return Ok(Options { items });
    }
    for segment in text.split('&') {
        if segment.is_empty() {
            return Err(cx.err("empty option (two '&' in a row, or a '&' at an end)"));
        }
        let (name, value) = match segment.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (segment, None),
        };
        let Some(&(_, kind)) = allowed.iter().find(|(n, _)| *n == name) else {
            return Err(if allowed.is_empty() {
                cx.err(format_args!(
                    "unknown option {name:?} ({what} takes no options)"
                ))
            } else {
                let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
                cx.err(format_args!(
                    "unknown option {name:?} (expected {})",
                    names.join(", ")
                ))
            });
        };
        let Some(value) = value else {
            return Err(cx.err(format_args!(
                "option {name}: missing \"=VALUE\" (expected {})",
                kind.expected()
            )));
        };
        if items.iter().any(|(n, _)| *n == name) {
            return Err(cx.err(format_args!("option {name} is given more than once")));
        }
        items.push((name, value));
    }
    Ok(Options { items })
}

impl Options<'_> {
    fn has(&self, name: &str) -> bool {
        self.items.iter().any(|(n, _)| *n == name)
    }

    /// The percent-decoded value of `name`. Decoding errors never quote the
    /// value (it may be a secret).
    fn string(&self, cx: &Ctx<'_>, name: &str) -> Result<Option<String>> {
        let Some(&(_, raw)) = self.items.iter().find(|(n, _)| *n == name) else {
            return Ok(None);
        };
        percent_decode(raw)
            .map(Some)
            .map_err(|why| cx.err(format_args!("option {name}: {why}")))
    }

    fn bool(&self, cx: &Ctx<'_>, name: &str) -> Result<Option<bool>> {
        let Some(value) = self.string(cx, name)? else {
            return Ok(None);
        };
        match value.as_str() {
            "1" | "true" => Ok(Some(true)),
            "0" | "false" => Ok(Some(false)),
            _ => Err(cx.err(format_args!(
                "option {name}: expected {}, got {value:?}",
                OptKind::Bool.expected()
            ))),
        }
    }

    /// A non-empty value (a path or a secret).
    fn non_empty(&self, cx: &Ctx<'_>, name: &str, kind: OptKind) -> Result<Option<String>> {
        match self.string(cx, name)? {
            Some(v) if v.is_empty() => Err(cx.err(format_args!(
                "option {name}: value is empty (expected {})",
                kind.expected()
            ))),
            v => Ok(v),
        }
    }

    /// A whole number from 1 to 2^30.
    fn count(&self, cx: &Ctx<'_>, name: &str) -> Result<Option<u64>> {
        let Some(value) = self.string(cx, name)? else {
            return Ok(None);
        };
        match value.parse::<u64>() {
            Ok(n) if (1..=1 << 30).contains(&n) && value.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Some(n))
            }
            _ => Err(cx.err(format_args!(
                "option {name}: expected {}, got {value:?}",
                OptKind::Count.expected()
            ))),
        }
    }

    /// A comma-separated list: items are trimmed and must be non-empty and
    /// pass `item_ok` (which says what is wrong); an empty value is an empty
    /// list.
    fn list(
        &self,
        cx: &Ctx<'_>,
        name: &str,
        item_ok: impl Fn(&str) -> std::result::Result<(), &'static str>,
    ) -> Result<Option<Vec<String>>> {
        let Some(value) = self.string(cx, name)? else {
            return Ok(None);
        };
        if value.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let mut items = Vec::new();
        for item in value.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(cx.err(format_args!(
                    "option {name}: empty item in {value:?} (expected {})",
                    OptKind::List.expected()
                )));
            }
            if let Err(why) = item_ok(item) {
                return Err(cx.err(format_args!("option {name}: {item:?} {why}")));
            }
            items.push(item.to_string());
        }
        Ok(Some(items))
    }

    fn path(&self, cx: &Ctx<'_>, name: &str) -> Result<Option<PathBuf>> {
        Ok(self.non_empty(cx, name, OptKind::Path)?.map(PathBuf::from))
    }

    /// Errors if any of `names` is present on a scheme without TLS.
    fn tls_only(&self, cx: &Ctx<'_>, names: &[&str], tls_scheme: &str) -> Result<()> {
        match names.iter().find(|n| self.has(n)) {
            Some(name) => Err(cx.err(format_args!(
                "option {name} is only valid on {tls_scheme}://"
            ))),
            None => Ok(()),
        }
    }
}

/// Decodes `%XX` escapes; the result must be UTF-8.
fn percent_decode(raw: &str) -> std::result::Result<String, &'static str> {
    if !raw.contains('%') {
        return Ok(raw.to_owned());
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
        match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
            _ => return Err("invalid percent escape (expected % and two hex digits)"),
        }
        i += 3;
    }
    String::from_utf8(out).map_err(|_| "value is not valid UTF-8 after percent-decoding")
}

// ---------------------------------------------------------------------------
// Schemes
// ---------------------------------------------------------------------------

const TCP_OPTIONS: &[(&str, OptKind)] = &[
    ("nodelay", OptKind::Bool),
    ("enable_address", OptKind::Bool),
];
const UDP_OPTIONS: &[(&str, OptKind)] = &[("enable_address", OptKind::Bool)];
const TLS_CLIENT_OPTIONS: &[(&str, OptKind)] =
    &[("ca", OptKind::Path), ("insecure", OptKind::Bool)];
const WS_CLIENT_OPTIONS: &[(&str, OptKind)] = &[
    ("ca", OptKind::Path),
    ("insecure", OptKind::Bool),
    ("protocols", OptKind::List),
];
const ROUTER_LISTEN_OPTIONS: &[(&str, OptKind)] = &[
    ("key", OptKind::Secret),
    ("cert", OptKind::Path),
    ("key_file", OptKind::Path),
];

/// `//HOST:PORT[?OPTIONS]` with no path and no fragment; port 1..=65535.
fn parse_host_port<'a>(
    cx: &Ctx<'_>,
    rest: &'a str,
    form: &str,
) -> Result<(String, u16, Option<&'a str>)> {
    let parts = split_net(cx, rest, form)?;
    let (host, port) = parse_authority(cx, parts.authority)?;
    let port = parse_port(cx, port, form, 1)?;
    parts.no_path(cx, form)?;
    parts.no_fragment(cx)?;
    Ok((host, port, parts.query))
}

fn parse_tcp(cx: &Ctx<'_>, rest: &str) -> Result<TcpConfig> {
    let (host, port, query) = parse_host_port(cx, rest, "tcp://HOST:PORT")?;
    let opts = parse_options(cx, query, TCP_OPTIONS, "tcp://")?;
    Ok(TcpConfig {
        host,
        port,
        nodelay: opts.bool(cx, "nodelay")?.unwrap_or(true),
        enable_address: opts.bool(cx, "enable_address")?.unwrap_or(true),
    })
}

fn parse_udp(cx: &Ctx<'_>, rest: &str) -> Result<UdpConfig> {
    let (host, port, query) = parse_host_port(cx, rest, "udp://HOST:PORT")?;
    let opts = parse_options(cx, query, UDP_OPTIONS, "udp://")?;
    Ok(UdpConfig {
        host,
        port,
        enable_address: opts.bool(cx, "enable_address")?.unwrap_or(true),
    })
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

fn parse_vsock(cx: &Ctx<'_>, rest: &str) -> Result<VsockConfig> {
    const FORM: &str = "vsock://CID:PORT";
    let parts = split_net(cx, rest, FORM)?;
    let Some((cid, port)) = parts.authority.split_once(':') else {
        return Err(cx.err(if parts.authority.is_empty() {
            format!("cid and port are missing (expected {FORM})")
        } else {
            format!("port is missing (expected {FORM})")
        }));
    };
    let cid = parse_u32(cx, "cid", cid)?;
    let port = parse_u32(cx, "port", port)?;
    parts.no_path(cx, FORM)?;
    parts.no_fragment(cx)?;
    parse_options(cx, parts.query, &[], "vsock://")?;
    Ok(VsockConfig { cid, port })
}

fn parse_dbus(cx: &Ctx<'_>, rest: &str) -> Result<DbusBus> {
    const FORMS: &str = "dbus:system, dbus:session or dbus:ADDRESS such as dbus:unix:path=/run/x";
    if rest.eq_ignore_ascii_case("system") {
        Ok(DbusBus::System)
    } else if rest.eq_ignore_ascii_case("session") {
        Ok(DbusBus::Session)
    } else if rest.is_empty() {
        Err(cx.err(format_args!("bus is missing (expected {FORMS})")))
    } else if !rest.contains(':') {
        Err(cx.err(format_args!(
            "{rest:?} is neither system, session nor a D-Bus address \
             (TRANSPORT:KEY=VALUE,...; expected {FORMS})"
        )))
    } else {
        Ok(DbusBus::Address(rest.to_owned()))
    }
}

fn parse_websocket(cx: &Ctx<'_>, rest: &str) -> Result<WebsocketConfig> {
    let secure = cx.scheme == "wss";
    let form = if secure {
        "wss://HOST[:PORT][/PATH][?QUERY][#OPTIONS]"
    } else {
        "ws://HOST[:PORT][/PATH][?QUERY][#OPTIONS]"
    };
    let parts = split_net(cx, rest, form)?;
    let (host, port) = parse_authority(cx, parts.authority)?;
    let port = match port {
        None => {
            if secure {
                443
            } else {
                80
            }
        }
        port => parse_port(cx, port, form, 1)?,
    };
    let path = if parts.path.is_empty() {
        "/"
    } else {
        parts.path
    };
    let target_ok = |s: &str| !s.chars().any(|c| c.is_whitespace() || c.is_control());
    if !target_ok(path) {
        return Err(cx.err("path contains whitespace or a control character"));
    }
    if !parts.query.is_none_or(target_ok) {
        return Err(cx.err("query contains whitespace or a control character"));
    }
    let mut url = format!("{}://{}{path}", cx.scheme, parts.authority);
    if let Some(query) = parts.query {
        url.push('?');
        url.push_str(query);
    }
    let what = if secure { "wss://" } else { "ws://" };
    let opts = parse_options(cx, parts.fragment, WS_CLIENT_OPTIONS, what)?;
    if !secure {
        opts.tls_only(cx, &["ca", "insecure"], "wss")?;
    }
    Ok(WebsocketConfig {
        url,
        secure,
        host,
        port,
        ca: opts.path(cx, "ca")?,
        insecure: opts.bool(cx, "insecure")?.unwrap_or(false),
        protocols: opts.list(cx, "protocols", protocol_ok)?.unwrap_or_default(),
    })
}

fn parse_echo(cx: &Ctx<'_>, rest: &str) -> Result<Endpoint> {
    match rest {
        "" | "//" => Ok(Endpoint::Echo),
        _ => Err(cx.err("takes nothing after the scheme (expected echo:)")),
    }
}

fn parse_router(cx: &Ctx<'_>, rest: &str) -> Result<RouterConfig> {
    let tls = cx.scheme == "grpcs";
    let (form, what) = if tls {
        ("grpcs://HOST:PORT", "grpcs://")
    } else {
        ("grpc://HOST:PORT", "grpc://")
    };
    let (host, port, query) = parse_host_port(cx, rest, form)?;
    let opts = parse_options(cx, query, TLS_CLIENT_OPTIONS, what)?;
    if !tls {
        opts.tls_only(cx, &["ca", "insecure"], "grpcs")?;
    }
    Ok(RouterConfig {
        host,
        port,
        tls,
        ca: opts.path(cx, "ca")?,
        insecure: opts.bool(cx, "insecure")?.unwrap_or(false),
    })
}

/// `tcp://HOST:PORT` or `ws://HOST:PORT[/PATH]` listen URLs: port 0..=65535,
/// no options, no fragment. The websocket listener answers upgrades on any
/// path, so its path is accepted and not kept.
/// `tcp://HOST:PORT[?max_connections=N]`: port 0..=65535, no path or fragment.
fn parse_tcp_listen(cx: &Ctx<'_>, rest: &str) -> Result<ListenEndpoint> {
    const FORM: &str = "tcp://HOST:PORT";
    let parts = split_net(cx, rest, FORM)?;
    let (host, port) = parse_authority(cx, parts.authority)?;
    let port = parse_port(cx, port, FORM, 0)?;
    parts.no_path(cx, FORM)?;
    parts.no_fragment(cx)?;
    let opts = parse_options(
        cx,
        parts.query,
        &[("max_connections", OptKind::Count)],
        "tcp:// listen URL",
    )?;
    let mut options = TcpListenOptions::default();
    if let Some(n) = opts.count(cx, "max_connections")? {
        options.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
    }
    Ok(ListenEndpoint::Tcp {
        host,
        port,
        options,
    })
}

const WS_LISTEN_OPTIONS: &[(&str, OptKind)] = &[
    ("max_message", OptKind::Count),
    ("max_frame", OptKind::Count),
    ("max_connections", OptKind::Count),
    ("max_handshakes", OptKind::Count),
    ("handshake_timeout_ms", OptKind::Count),
    ("queue", OptKind::Count),
    ("protocols", OptKind::List),
    ("origins", OptKind::List),
];

/// A subprotocol name: an HTTP token (RFC 6455 section 4.1, RFC 7230).
fn protocol_ok(p: &str) -> std::result::Result<(), &'static str> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if p.bytes().all(tchar) {
        Ok(())
    } else {
        Err("is not a subprotocol name (an HTTP token)")
    }
}

/// An origin as browsers send it: `scheme://host[:port]`, or `null`.
fn origin_ok(o: &str) -> std::result::Result<(), &'static str> {
    let visible = o.bytes().all(|b| b.is_ascii_graphic());
    if visible
        && (o == "null"
            || o.split_once("://")
                .is_some_and(|(s, h)| !s.is_empty() && !h.is_empty()))
    {
        Ok(())
    } else {
        Err("is not an origin (expected SCHEME://HOST[:PORT] or null)")
    }
}

/// `ws://HOST:PORT[/PATH][?OPTIONS]`: port 0..=65535, no fragment. The server
/// answers upgrades on any path, so the path is accepted and not kept.
fn parse_ws_listen(cx: &Ctx<'_>, rest: &str) -> Result<ListenEndpoint> {
    const FORM: &str = "ws://HOST:PORT[/PATH][?OPTIONS]";
    let parts = split_net(cx, rest, FORM)?;
    let (host, port) = parse_authority(cx, parts.authority)?;
    let port = parse_port(cx, port, FORM, 0)?;
    parts.no_fragment(cx)?;
    let opts = parse_options(cx, parts.query, WS_LISTEN_OPTIONS, "ws:// listen URL")?;
    let d = WebsocketListenOptions::default();
    let size = |name: &str, default: usize| -> Result<usize> {
        Ok(opts.count(cx, name)?.map_or(default, |n| n as usize))
    };
    let options = WebsocketListenOptions {
        max_message: size("max_message", d.max_message)?,
        max_frame: size("max_frame", d.max_frame)?,
        max_connections: size("max_connections", d.max_connections)?,
        max_handshakes: size("max_handshakes", d.max_handshakes)?,
        handshake_timeout_ms: opts
            .count(cx, "handshake_timeout_ms")?
            .unwrap_or(d.handshake_timeout_ms),
        queue: size("queue", d.queue)?,
        protocols: opts
            .list(cx, "protocols", protocol_ok)?
            .unwrap_or(d.protocols),
        origins: opts.list(cx, "origins", origin_ok)?,
    };
    Ok(ListenEndpoint::Websocket {
        host,
        port,
        options,
    })
}

fn parse_router_listen(cx: &Ctx<'_>, rest: &str) -> Result<RouterListenConfig> {
    let tls = cx.scheme == "grpcs";
    let form = if tls {
        "grpcs://HOST:PORT?key=SECRET[&cert=FILE&key_file=FILE]"
    } else {
        "grpc://HOST:PORT?key=SECRET"
    };
    let parts = split_net(cx, rest, form)?;
    let (host, port) = parse_authority(cx, parts.authority)?;
    let port = parse_port(cx, port, form, 0)?;
    parts.no_path(cx, form)?;
    parts.no_fragment(cx)?;
    let what = format!("{}:// listen URL", cx.scheme);
    let opts = parse_options(cx, parts.query, ROUTER_LISTEN_OPTIONS, &what)?;
    if !tls {
        opts.tls_only(cx, &["cert", "key_file"], "grpcs")?;
    }
    let Some(key) = opts.non_empty(cx, "key", OptKind::Secret)? else {
        return Err(cx.err(format_args!("option key is required (expected {form})")));
    };
    let cert = opts.path(cx, "cert")?;
    let key_file = opts.path(cx, "key_file")?;
    match (&cert, &key_file) {
        (Some(_), None) => Err(cx.err("option cert needs key_file too (give both or neither)")),
        (None, Some(_)) => Err(cx.err("option key_file needs cert too (give both or neither)")),
        _ => Ok(RouterListenConfig {
            host,
            port,
            tls,
            key,
            cert,
            key_file,
        }),
    }
}

// ---------------------------------------------------------------------------
// Display helpers
// ---------------------------------------------------------------------------

/// A host as it appears in a URL: IPv6 in brackets.
struct HostFmt<'a>(&'a str);

impl std::fmt::Display for HostFmt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.contains(':') {
            write!(f, "[{}]", self.0)
        } else {
            f.write_str(self.0)
        }
    }
}

/// Writes `?a=1&b=2` (or `#...`): the first option after `first`, the others
/// after `&`.
struct OptWriter {
    sep: char,
}

impl OptWriter {
    fn new(first: char) -> OptWriter {
        OptWriter { sep: first }
    }

    fn write(
        &mut self,
        f: &mut std::fmt::Formatter<'_>,
        name: &str,
        value: &str,
    ) -> std::fmt::Result {
        write!(f, "{}{name}=", self.sep)?;
        self.sep = '&';
        for c in value.chars() {
            if matches!(c, '%' | '&' | '#') || c.is_whitespace() || c.is_control() {
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    write!(f, "%{b:02X}")?;
                }
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

fn write_tls_options(
    f: &mut std::fmt::Formatter<'_>,
    first: char,
    ca: Option<&std::path::Path>,
    insecure: bool,
) -> std::result::Result<OptWriter, std::fmt::Error> {
    let mut opts = OptWriter::new(first);
    if let Some(ca) = ca {
        opts.write(f, "ca", &ca.to_string_lossy())?;
    }
    if insecure {
        opts.write(f, "insecure", "1")?;
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16, nodelay: bool, enable_address: bool) -> Endpoint {
        Endpoint::Tcp(TcpConfig {
            host: host.into(),
            port,
            nodelay,
            enable_address,
        })
    }

    fn udp(host: &str, port: u16, enable_address: bool) -> Endpoint {
        Endpoint::Udp(UdpConfig {
            host: host.into(),
            port,
            enable_address,
        })
    }

    fn unix_path(p: &str) -> UnixPath {
        UnixPath::Path(PathBuf::from(p))
    }

    fn ws(url: &str, host: &str, port: u16, ca: Option<&str>, insecure: bool) -> Endpoint {
        Endpoint::Websocket(WebsocketConfig {
            url: url.into(),
            secure: url.starts_with("wss:"),
            host: host.into(),
            port,
            ca: ca.map(PathBuf::from),
            insecure,
            protocols: Vec::new(),
        })
    }

    fn ws_config(e: Endpoint) -> WebsocketConfig {
        match e {
            Endpoint::Websocket(c) => c,
            other => panic!("not a websocket endpoint: {other:?}"),
        }
    }

    fn router(host: &str, port: u16, tls: bool, ca: Option<&str>, insecure: bool) -> Endpoint {
        Endpoint::Router(RouterConfig {
            host: host.into(),
            port,
            tls,
            ca: ca.map(PathBuf::from),
            insecure,
        })
    }

    fn router_listen(
        host: &str,
        port: u16,
        tls: bool,
        key: &str,
        files: Option<(&str, &str)>,
    ) -> ListenEndpoint {
        ListenEndpoint::Router(RouterListenConfig {
            host: host.into(),
            port,
            tls,
            key: key.into(),
            cert: files.map(|(c, _)| PathBuf::from(c)),
            key_file: files.map(|(_, k)| PathBuf::from(k)),
        })
    }

    fn message(result: Result<impl std::fmt::Debug>) -> String {
        match result {
            Err(Error::InvalidArgument(m)) => m,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    fn connect_ok() -> Vec<(String, Endpoint)> {
        let long_path = format!("/{}", "p".repeat(UNIX_PATH_MAX - 1));
        let long_name = "n".repeat(UNIX_PATH_MAX);
        let mut cases: Vec<(String, Endpoint)> = vec![
            // tcp
            (
                "tcp://127.0.0.1:5000".into(),
                tcp("127.0.0.1", 5000, true, true),
            ),
            (
                "TCP://example.com:80".into(),
                tcp("example.com", 80, true, true),
            ),
            (
                "Tcp://my_host-1.local.:1".into(),
                tcp("my_host-1.local.", 1, true, true),
            ),
            (
                "tcp://localhost:65535".into(),
                tcp("localhost", 65535, true, true),
            ),
            ("tcp://h:080".into(), tcp("h", 80, true, true)),
            ("tcp://[::1]:80".into(), tcp("::1", 80, true, true)),
            (
                "tcp://[2001:db8::7]:443".into(),
                tcp("2001:db8::7", 443, true, true),
            ),
            (
                "tcp://[fe80::1%eth0]:22".into(),
                tcp("fe80::1%eth0", 22, true, true),
            ),
            (
                "tcp://[::ffff:1.2.3.4]:9".into(),
                tcp("::ffff:1.2.3.4", 9, true, true),
            ),
            ("tcp://h:1?".into(), tcp("h", 1, true, true)),
            ("tcp://h:1?nodelay=0".into(), tcp("h", 1, false, true)),
            ("tcp://h:1?nodelay=false".into(), tcp("h", 1, false, true)),
            ("tcp://h:1?nodelay=1".into(), tcp("h", 1, true, true)),
            (
                "tcp://h:1?nodelay=true&enable_address=false".into(),
                tcp("h", 1, true, false),
            ),
            (
                "tcp://h:1?enable_address=0&nodelay=%30".into(),
                tcp("h", 1, false, false),
            ),
            ("tcp://h:1?enable_address=1".into(), tcp("h", 1, true, true)),
            // udp
            ("udp://h:53".into(), udp("h", 53, true)),
            ("UDP://10.0.0.1:5353".into(), udp("10.0.0.1", 5353, true)),
            (
                "udp://[2001:db8::1]:53?enable_address=false".into(),
                udp("2001:db8::1", 53, false),
            ),
            ("udp://h:53?enable_address=true".into(), udp("h", 53, true)),
            // unix
            (
                "unix:/run/x.sock".into(),
                Endpoint::Unix(unix_path("/run/x.sock")),
            ),
            (
                "unix:///run/x.sock".into(),
                Endpoint::Unix(unix_path("/run/x.sock")),
            ),
            ("UNIX:/x".into(), Endpoint::Unix(unix_path("/x"))),
            ("unix:sock".into(), Endpoint::Unix(unix_path("sock"))),
            (
                "unix:rel/dir/s.sock".into(),
                Endpoint::Unix(unix_path("rel/dir/s.sock")),
            ),
            ("unix:////x".into(), Endpoint::Unix(unix_path("//x"))),
            (
                "unix:/with space#and%41".into(),
                Endpoint::Unix(unix_path("/with space#and%41")),
            ),
            (
                "unix:@name".into(),
                Endpoint::Unix(UnixPath::Abstract("name".into())),
            ),
            (
                "unix:@a/b@c".into(),
                Endpoint::Unix(UnixPath::Abstract("a/b@c".into())),
            ),
            (
                format!("unix:{long_path}"),
                Endpoint::Unix(unix_path(&long_path)),
            ),
            (
                format!("unix:@{long_name}"),
                Endpoint::Unix(UnixPath::Abstract(long_name.clone())),
            ),
            // vsock
            (
                "vsock://3:1024".into(),
                Endpoint::Vsock(VsockConfig { cid: 3, port: 1024 }),
            ),
            (
                "VSOCK://4294967295:0".into(),
                Endpoint::Vsock(VsockConfig {
                    cid: u32::MAX,
                    port: 0,
                }),
            ),
            (
                "vsock://2:5?".into(),
                Endpoint::Vsock(VsockConfig { cid: 2, port: 5 }),
            ),
            // dbus
            ("dbus:system".into(), Endpoint::Dbus(DbusBus::System)),
            ("dbus:session".into(), Endpoint::Dbus(DbusBus::Session)),
            ("DBUS:System".into(), Endpoint::Dbus(DbusBus::System)),
            (
                "dbus:unix:path=/run/x".into(),
                Endpoint::Dbus(DbusBus::Address("unix:path=/run/x".into())),
            ),
            (
                "dbus:tcp:host=h,port=1;unix:abstract=x".into(),
                Endpoint::Dbus(DbusBus::Address("tcp:host=h,port=1;unix:abstract=x".into())),
            ),
            // websocket
            ("ws://h:1".into(), ws("ws://h:1/", "h", 1, None, false)),
            ("ws://h".into(), ws("ws://h/", "h", 80, None, false)),
            ("wss://h".into(), ws("wss://h/", "h", 443, None, false)),
            (
                "WS://Host:8080/x".into(),
                ws("ws://Host:8080/x", "Host", 8080, None, false),
            ),
            (
                "ws://h/a/b?c=d&e=f".into(),
                ws("ws://h/a/b?c=d&e=f", "h", 80, None, false),
            ),
            ("ws://h?q=1".into(), ws("ws://h/?q=1", "h", 80, None, false)),
            ("ws://h/#".into(), ws("ws://h/", "h", 80, None, false)),
            (
                "ws://[::1]:9/p".into(),
                ws("ws://[::1]:9/p", "::1", 9, None, false),
            ),
            (
                "wss://h/p?x=1#ca=/etc/ca.pem".into(),
                ws("wss://h/p?x=1", "h", 443, Some("/etc/ca.pem"), false),
            ),
            (
                "wss://h#insecure=1".into(),
                ws("wss://h/", "h", 443, None, true),
            ),
            (
                "ws://h/p#protocols=binary,%20base64".into(),
                Endpoint::Websocket(WebsocketConfig {
                    protocols: vec!["binary".into(), "base64".into()],
                    ..ws_config(ws("ws://h/p", "h", 80, None, false))
                }),
            ),
            (
                "wss://h#insecure=false".into(),
                ws("wss://h/", "h", 443, None, false),
            ),
            (
                "wss://[::1]:8443/a?key=server#ca=%2Ftmp%2Fca%20x.pem&insecure=true".into(),
                ws(
                    "wss://[::1]:8443/a?key=server",
                    "::1",
                    8443,
                    Some("/tmp/ca x.pem"),
                    true,
                ),
            ),
            // echo
            ("echo:".into(), Endpoint::Echo),
            ("echo://".into(), Endpoint::Echo),
            ("ECHO:".into(), Endpoint::Echo),
            // router
            ("grpc://h:1".into(), router("h", 1, false, None, false)),
            (
                "GRPC://router.example.com:8083".into(),
                router("router.example.com", 8083, false, None, false),
            ),
            ("grpcs://h:1".into(), router("h", 1, true, None, false)),
            (
                "grpcs://[::1]:443?insecure=1".into(),
                router("::1", 443, true, None, true),
            ),
            (
                "grpcs://h:1?ca=/x.pem&insecure=0".into(),
                router("h", 1, true, Some("/x.pem"), false),
            ),
            (
                "grpcs://h:1?ca=%2Fa%26b.pem".into(),
                router("h", 1, true, Some("/a&b.pem"), false),
            ),
            (
                "grpcs://127.0.0.1:1?insecure=true&ca=/c.pem".into(),
                router("127.0.0.1", 1, true, Some("/c.pem"), true),
            ),
        ];
        cases.sort_by(|a, b| a.0.cmp(&b.0));
        cases
    }

    #[test]
    fn connect_urls_parse() {
        for (url, want) in connect_ok() {
            assert_eq!(Endpoint::parse(&url), Ok(want), "{url}");
        }
    }

    #[test]
    fn connect_errors_say_what_is_wrong() {
        let long_path = format!("unix:/{}", "p".repeat(UNIX_PATH_MAX));
        let long_name = format!("unix:@{}", "n".repeat(UNIX_PATH_MAX + 1));
        let long_label = format!("tcp://{}.com:1", "a".repeat(64));
        let long_host = format!("tcp://{}:1", vec!["a".repeat(60); 5].join("."));
        let cases: &[(&str, &str)] = &[
            // scheme
            ("", "empty URL: missing scheme (expected tcp, udp, unix"),
            (
                "localhost",
                "localhost: missing scheme (expected tcp, udp, unix, vsock, dbus, ws, wss, echo, grpc, grpcs)",
            ),
            ("/tmp/x.sock", "missing scheme"),
            ("127.0.0.1:80", "missing scheme"),
            ("[::1]:80", "missing scheme"),
            (
                "frob://x",
                "frob://x: unknown scheme \"frob\" (expected tcp, udp, unix, vsock, dbus, ws, wss, echo, grpc, grpcs)",
            ),
            ("http://h/", "unknown scheme \"http\""),
            ("localhost:80", "unknown scheme \"localhost\""),
            // tcp / udp shape
            ("tcp:h:1", "tcp:h:1: expected tcp://HOST:PORT"),
            ("tcp://", "host is missing"),
            ("tcp://:1", "host is missing"),
            (
                "tcp://h",
                "tcp://h: port is missing (expected tcp://HOST:PORT)",
            ),
            ("tcp://h:", "port is empty"),
            ("tcp://h:x", "port \"x\" is not a decimal number"),
            ("tcp://h:-1", "port \"-1\" is not a decimal number"),
            ("tcp://h:+1", "port \"+1\" is not a decimal number"),
            (
                "tcp://h:99999",
                "tcp://h:99999: port \"99999\" is out of range (1-65535)",
            ),
            ("tcp://h:99999999999999999999", "is out of range (1-65535)"),
            ("tcp://h:0", "port 0 is not a destination"),
            ("udp://h:0", "port 0 is not a destination"),
            (
                "tcp://::1:80",
                "an IPv6 address must be in brackets, e.g. tcp://[::1]:PORT",
            ),
            (
                "udp://2001:db8::1:53",
                "an IPv6 address must be in brackets, e.g. udp://[::1]:PORT",
            ),
            ("tcp://[::1:80", "'[' without a closing ']'"),
            ("tcp://[::g]:80", "host \"::g\" is not a valid IPv6 address"),
            ("tcp://[1.2.3.4]:80", "is not a valid IPv6 address"),
            ("tcp://[fe80::1%]:80", "is not a valid IPv6 address"),
            ("tcp://[fe80::1%e/0]:80", "without a closing ']'"),
            ("tcp://[fe80::1%e:0]:80", "is not a valid IPv6 address"),
            ("tcp://[::1]x:80", "unexpected \"x:80\" after ']'"),
            ("tcp://[::1]", "port is missing"),
            ("tcp://u@h:1", "user info (USER@) is not supported"),
            ("tcp://h h:1", "host \"h h\" contains ' '"),
            ("tcp://h*:1", "host \"h*\" contains '*'"),
            (
                "tcp://1.2.3.256:1",
                "host \"1.2.3.256\" is not a valid IPv4 address",
            ),
            ("tcp://1.2.3:1", "is not a valid IPv4 address"),
            ("tcp://a..b:1", "host \"a..b\" has an empty label"),
            ("tcp://.a:1", "has an empty label"),
            (&long_label, "has a label longer than 63 bytes"),
            (&long_host, "host is 304 bytes long (max 253)"),
            (
                "tcp://h:1/x",
                "tcp://h:1/x: takes no path (expected tcp://HOST:PORT)",
            ),
            ("tcp://h:1/", "takes no path"),
            ("udp://h:1/x", "takes no path"),
            ("tcp://h:1#x", "takes no fragment"),
            // options
            (
                "tcp://h:1?nodelay=maybe",
                "tcp://h:1?nodelay=maybe: option nodelay: expected 0, 1, true or false, got \"maybe\"",
            ),
            (
                "tcp://h:1?nodelay=TRUE",
                "option nodelay: expected 0, 1, true or false, got \"TRUE\"",
            ),
            (
                "tcp://h:1?nodelay=",
                "option nodelay: expected 0, 1, true or false, got \"\"",
            ),
            (
                "tcp://h:1?enable_address=yes",
                "option enable_address: expected 0, 1, true or false, got \"yes\"",
            ),
            (
                "udp://h:1?enable_address=2",
                "option enable_address: expected 0, 1, true or false",
            ),
            (
                "tcp://h:1?nodelay",
                "option nodelay: missing \"=VALUE\" (expected 0, 1, true or false)",
            ),
            (
                "tcp://h:1?nodelay=1&nodelay=0",
                "option nodelay is given more than once",
            ),
            (
                "tcp://h:1?frob=1",
                "unknown option \"frob\" (expected nodelay, enable_address)",
            ),
            ("tcp://h:1?Nodelay=1", "unknown option \"Nodelay\""),
            (
                "udp://h:1?nodelay=0",
                "unknown option \"nodelay\" (expected enable_address)",
            ),
            ("tcp://h:1?nodelay=1&&enable_address=1", "empty option"),
            ("tcp://h:1?nodelay=1&", "empty option"),
            (
                "tcp://h:1?nodelay=%zz",
                "option nodelay: invalid percent escape",
            ),
            (
                "tcp://h:1?nodelay=%3",
                "option nodelay: invalid percent escape",
            ),
            (
                "tcp://h:1?nodelay=%FF",
                "option nodelay: value is not valid UTF-8",
            ),
            // unix
            (
                "unix:",
                "unix:: path is empty (expected unix:/PATH, unix:///PATH or unix:@NAME)",
            ),
            ("unix://", "path is empty"),
            ("unix://host/path", "takes no host"),
            ("unix://host", "takes no host"),
            ("unix://@name", "takes no host"),
            ("unix:/x?a=1", "takes no options"),
            ("unix:/x?", "takes no options"),
            ("unix:@", "abstract socket name is empty"),
            ("unix:/a\0b", "path contains a NUL byte"),
            (
                &long_path,
                "path is 108 bytes, too long for a Unix socket address (max 107 bytes)",
            ),
            (
                &long_name,
                "abstract socket name is 108 bytes, too long for a Unix socket address (max 107 bytes)",
            ),
            // vsock
            ("vsock:3:1", "expected vsock://CID:PORT"),
            (
                "vsock://",
                "cid and port are missing (expected vsock://CID:PORT)",
            ),
            ("vsock://3", "port is missing (expected vsock://CID:PORT)"),
            ("vsock://:1", "cid is empty"),
            ("vsock://3:", "port is empty"),
            ("vsock://x:1", "cid \"x\" is not a decimal number"),
            ("vsock://3:y", "port \"y\" is not a decimal number"),
            ("vsock://-1:1", "cid \"-1\" is not a decimal number"),
            (
                "vsock://4294967296:1",
                "cid \"4294967296\" is out of range (0-4294967295)",
            ),
            (
                "vsock://1:4294967296",
                "port \"4294967296\" is out of range (0-4294967295)",
            ),
            ("vsock://3:1:2", "port \"1:2\" is not a decimal number"),
            ("vsock://3:1/p", "takes no path (expected vsock://CID:PORT)"),
            ("vsock://3:1#f", "takes no fragment"),
            (
                "vsock://3:1?x=1",
                "unknown option \"x\" (vsock:// takes no options)",
            ),
            // dbus
            (
                "dbus:",
                "bus is missing (expected dbus:system, dbus:session or dbus:ADDRESS",
            ),
            (
                "dbus:sytem",
                "\"sytem\" is neither system, session nor a D-Bus address",
            ),
            (
                "dbus://system",
                "\"//system\" is neither system, session nor a D-Bus address",
            ),
            // websocket
            ("ws:h", "expected ws://HOST[:PORT][/PATH][?QUERY][#OPTIONS]"),
            (
                "wss:h",
                "expected wss://HOST[:PORT][/PATH][?QUERY][#OPTIONS]",
            ),
            ("ws://", "host is missing"),
            ("ws:///p", "host is missing"),
            ("ws://h:0/", "port 0 is not a destination"),
            ("ws://h:/", "port is empty"),
            ("ws://h:70000", "port \"70000\" is out of range (1-65535)"),
            (
                "ws://::1/",
                "an IPv6 address must be in brackets, e.g. ws://[::1]:PORT",
            ),
            ("wss://u:p@h/", "user info (USER@) is not supported"),
            (
                "ws://h/a b",
                "path contains whitespace or a control character",
            ),
            (
                "ws://h/a?b c",
                "query contains whitespace or a control character",
            ),
            ("ws://h:1#ca=/x", "option ca is only valid on wss://"),
            (
                "ws://h#insecure=1",
                "option insecure is only valid on wss://",
            ),
            (
                "wss://h#ca=",
                "option ca: value is empty (expected a file path)",
            ),
            ("wss://h#ca=%2", "option ca: invalid percent escape"),
            (
                "wss://h#insecure=2",
                "option insecure: expected 0, 1, true or false, got \"2\"",
            ),
            ("wss://h#insecure", "option insecure: missing \"=VALUE\""),
            (
                "wss://h#foo=1",
                "unknown option \"foo\" (expected ca, insecure, protocols)",
            ),
            (
                "ws://h#protocols=a/b",
                "option protocols: \"a/b\" is not a subprotocol name",
            ),
            ("wss://h#ca=/a&ca=/b", "option ca is given more than once"),
            // echo
            (
                "echo:x",
                "echo:x: takes nothing after the scheme (expected echo:)",
            ),
            ("echo://x", "takes nothing after the scheme"),
            ("echo:?a=1", "takes nothing after the scheme"),
            // router
            ("grpc:h:1", "expected grpc://HOST:PORT"),
            ("grpc://h", "port is missing (expected grpc://HOST:PORT)"),
            ("grpcs://h", "port is missing (expected grpcs://HOST:PORT)"),
            ("grpc://h:0", "port 0 is not a destination"),
            ("grpc://h:1/x", "takes no path"),
            ("grpc://h:1#x", "takes no fragment"),
            ("grpc://h:1?ca=/x", "option ca is only valid on grpcs://"),
            (
                "grpc://h:1?insecure=1",
                "option insecure is only valid on grpcs://",
            ),
            (
                "grpcs://h:1?insecure=yes",
                "option insecure: expected 0, 1, true or false, got \"yes\"",
            ),
            ("grpcs://h:1?ca=", "option ca: value is empty"),
            ("grpcs://h:1#ca=/x", "takes no fragment"),
            ("grpcs://h:1/p?ca=/x", "takes no path"),
            (
                "grpcs://h:1?cert=/c",
                "unknown option \"cert\" (expected ca, insecure)",
            ),
        ];
        for (url, want) in cases {
            let got = message(Endpoint::parse(url));
            assert!(got.contains(want), "{url:?}: got {got:?}, want {want:?}");
            assert!(!got.contains('\n'), "{url:?}: multi-line message {got:?}");
        }
    }

    #[test]
    fn listen_urls_parse() {
        let cases: Vec<(&str, ListenEndpoint)> = vec![
            (
                "tcp://127.0.0.1:0",
                ListenEndpoint::Tcp {
                    host: "127.0.0.1".into(),
                    port: 0,
                    options: TcpListenOptions::default(),
                },
            ),
            (
                "tcp://127.0.0.1:0?max_connections=7",
                ListenEndpoint::Tcp {
                    host: "127.0.0.1".into(),
                    port: 0,
                    options: TcpListenOptions { max_connections: 7 },
                },
            ),
            (
                "TCP://[::]:8080",
                ListenEndpoint::Tcp {
                    host: "::".into(),
                    port: 8080,
                    options: TcpListenOptions::default(),
                },
            ),
            (
                "tcp://localhost:65535?",
                ListenEndpoint::Tcp {
                    host: "localhost".into(),
                    port: 65535,
                    options: TcpListenOptions::default(),
                },
            ),
            (
                "unix:/run/x.sock",
                ListenEndpoint::Unix(unix_path("/run/x.sock")),
            ),
            (
                "unix:///run/x.sock",
                ListenEndpoint::Unix(unix_path("/run/x.sock")),
            ),
            (
                "unix:@n",
                ListenEndpoint::Unix(UnixPath::Abstract("n".into())),
            ),
            ("unix:rel.sock", ListenEndpoint::Unix(unix_path("rel.sock"))),
            (
                "ws://127.0.0.1:0",
                ListenEndpoint::Websocket {
                    host: "127.0.0.1".into(),
                    port: 0,
                    options: WebsocketListenOptions::default(),
                },
            ),
            (
                "ws://127.0.0.1:0/",
                ListenEndpoint::Websocket {
                    host: "127.0.0.1".into(),
                    port: 0,
                    options: WebsocketListenOptions::default(),
                },
            ),
            (
                "WS://[::1]:9/some/path",
                ListenEndpoint::Websocket {
                    host: "::1".into(),
                    port: 9,
                    options: WebsocketListenOptions::default(),
                },
            ),
            (
                "ws://h:1/?",
                ListenEndpoint::Websocket {
                    host: "h".into(),
                    port: 1,
                    options: WebsocketListenOptions::default(),
                },
            ),
            (
                "ws://h:1/p?max_message=1000&max_frame=100&max_connections=5&handshake_timeout_ms=250&queue=7",
                ListenEndpoint::Websocket {
                    host: "h".into(),
                    port: 1,
                    options: WebsocketListenOptions {
                        max_message: 1000,
                        max_frame: 100,
                        max_connections: 5,
                        handshake_timeout_ms: 250,
                        queue: 7,
                        ..WebsocketListenOptions::default()
                    },
                },
            ),
            (
                "ws://h:1?max_handshakes=3&protocols=binary,%20base64&origins=http://a,https://b:8443",
                ListenEndpoint::Websocket {
                    host: "h".into(),
                    port: 1,
                    options: WebsocketListenOptions {
                        max_handshakes: 3,
                        protocols: vec!["binary".into(), "base64".into()],
                        origins: Some(vec!["http://a".into(), "https://b:8443".into()]),
                        ..WebsocketListenOptions::default()
                    },
                },
            ),
            (
                "ws://h:1?protocols=",
                ListenEndpoint::Websocket {
                    host: "h".into(),
                    port: 1,
                    options: WebsocketListenOptions {
                        protocols: Vec::new(),
                        ..WebsocketListenOptions::default()
                    },
                },
            ),
            (
                "grpc://127.0.0.1:0?key=S",
                router_listen("127.0.0.1", 0, false, "S", None),
            ),
            (
                "GRPC://h:1?key=a%3Db%2B%25",
                router_listen("h", 1, false, "a=b+%", None),
            ),
            (
                "grpc://h:1?key=a=b",
                router_listen("h", 1, false, "a=b", None),
            ),
            ("grpcs://h:1?key=S", router_listen("h", 1, true, "S", None)),
            (
                "grpcs://[::]:443?cert=/c.pem&key=a%26b&key_file=/k.pem",
                router_listen("::", 443, true, "a&b", Some(("/c.pem", "/k.pem"))),
            ),
        ];
        for (url, want) in cases {
            assert_eq!(ListenEndpoint::parse(url), Ok(want), "{url}");
        }
    }

    #[test]
    fn listen_errors_say_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            (
                "",
                "empty URL: missing scheme (expected tcp, unix, ws, grpc, grpcs)",
            ),
            (
                "/tmp/x",
                "/tmp/x: missing scheme (expected tcp, unix, ws, grpc, grpcs)",
            ),
            (
                "udp://h:1",
                "udp://h:1: \"udp\" is not a listen scheme (expected tcp, unix, ws, grpc, grpcs)",
            ),
            ("wss://h:1", "\"wss\" is not a listen scheme"),
            ("echo:", "\"echo\" is not a listen scheme"),
            ("vsock://1:2", "\"vsock\" is not a listen scheme"),
            ("dbus:system", "\"dbus\" is not a listen scheme"),
            ("frob://x", "\"frob\" is not a listen scheme"),
            // tcp
            ("tcp://h", "port is missing (expected tcp://HOST:PORT)"),
            ("tcp://:0", "host is missing"),
            ("tcp://h:65536", "port \"65536\" is out of range (0-65535)"),
            ("tcp://::1:0", "an IPv6 address must be in brackets"),
            ("tcp://h:1/x", "takes no path"),
            ("tcp://h:1#x", "takes no fragment"),
            (
                "tcp://h:1?nodelay=0",
                "unknown option \"nodelay\" (expected max_connections)",
            ),
            (
                "tcp://h:1?max_connections=0",
                "option max_connections: expected a whole number from 1",
            ),
            // unix
            ("unix:", "path is empty"),
            ("unix:/x?mode=0600", "takes no options"),
            // ws
            (
                "ws://h",
                "port is missing (expected ws://HOST:PORT[/PATH][?OPTIONS])",
            ),
            ("ws://h:x", "port \"x\" is not a decimal number"),
            (
                "ws://h:1?x=1",
                "unknown option \"x\" (expected max_message, max_frame, max_connections, max_handshakes, handshake_timeout_ms, queue, protocols, origins)",
            ),
            (
                "ws://h:1?protocols=bin%20ary",
                "option protocols: \"bin ary\" is not a subprotocol name",
            ),
            ("ws://h:1?protocols=a,,b", "option protocols: empty item"),
            (
                "ws://h:1?origins=example.com",
                "option origins: \"example.com\" is not an origin",
            ),
            (
                "ws://h:1?max_handshakes=0",
                "option max_handshakes: expected",
            ),
            (
                "ws://h:1?queue=0",
                "option queue: expected a whole number from 1 to 1073741824, got \"0\"",
            ),
            (
                "ws://h:1?max_message=-1",
                "option max_message: expected a whole number from 1 to 1073741824",
            ),
            (
                "ws://h:1?max_frame=1073741825",
                "option max_frame: expected a whole number",
            ),
            (
                "ws://h:1?max_connections=+5",
                "option max_connections: expected",
            ),
            (
                "ws://h:1?queue=1&queue=2",
                "option queue is given more than once",
            ),
            ("ws://h:1#ca=/x", "takes no fragment"),
            // router
            (
                "grpc://h:0",
                "grpc://h:0: option key is required (expected grpc://HOST:PORT?key=SECRET)",
            ),
            (
                "grpcs://h:0",
                "option key is required (expected grpcs://HOST:PORT?key=SECRET[&cert=FILE&key_file=FILE])",
            ),
            (
                "grpc://h:0?key=",
                "option key: value is empty (expected a non-empty secret)",
            ),
            (
                "grpc://h:0?key",
                "option key: missing \"=VALUE\" (expected a non-empty secret)",
            ),
            ("grpc://h", "port is missing"),
            (
                "grpc://h:0?key=S&cert=/c&key_file=/k",
                "option cert is only valid on grpcs://",
            ),
            (
                "grpc://h:0?key=S&key_file=/k",
                "option key_file is only valid on grpcs://",
            ),
            (
                "grpcs://h:0?key=S&cert=/c",
                "option cert needs key_file too (give both or neither)",
            ),
            (
                "grpcs://h:0?key=S&key_file=/k",
                "option key_file needs cert too (give both or neither)",
            ),
            (
                "grpcs://h:0?key=S&cert=&key_file=/k",
                "option cert: value is empty (expected a file path)",
            ),
            (
                "grpc://h:0?key=a&key=b",
                "option key is given more than once",
            ),
            ("grpc://h:0?key=S%zz", "option key: invalid percent escape"),
            (
                "grpc://h:0?key=S#x",
                "takes no fragment (write a '#' inside an option value as %23)",
            ),
            (
                "grpc://h:0?secret=S",
                "unknown option \"secret\" (expected key, cert, key_file)",
            ),
            ("grpc://h:0/p?key=S", "takes no path"),
        ];
        for (url, want) in cases {
            let got = message(ListenEndpoint::parse(url));
            assert!(got.contains(want), "{url:?}: got {got:?}, want {want:?}");
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

    #[test]
    fn connect_display_is_canonical() {
        let cases: &[(&str, &str)] = &[
            ("tcp://127.0.0.1:5000", "tcp://127.0.0.1:5000"),
            ("TCP://[::1]:80", "tcp://[::1]:80"),
            ("tcp://[fe80::1%eth0]:22", "tcp://[fe80::1%eth0]:22"),
            ("tcp://h:080?nodelay=1&enable_address=true", "tcp://h:80"),
            (
                "tcp://h:1?enable_address=0&nodelay=false",
                "tcp://h:1?nodelay=0&enable_address=false",
            ),
            ("udp://h:53", "udp://h:53"),
            (
                "udp://h:53?enable_address=0",
                "udp://h:53?enable_address=false",
            ),
            ("unix:/run/x.sock", "unix:/run/x.sock"),
            ("unix:///run/x.sock", "unix:/run/x.sock"),
            ("unix:////x", "unix:////x"),
            ("unix:rel", "unix:rel"),
            ("unix:@name", "unix:@name"),
            ("vsock://3:1024", "vsock://3:1024"),
            ("dbus:system", "dbus:system"),
            ("dbus:SESSION", "dbus:session"),
            ("dbus:unix:path=/x", "dbus:unix:path=/x"),
            ("ws://h:1", "ws://h:1/"),
            (
                "WSS://h/p?x=1#ca=/etc/ca.pem",
                "wss://h/p?x=1#ca=/etc/ca.pem",
            ),
            (
                "wss://h#insecure=true&ca=%2Fa%20b",
                "wss://h/#ca=/a%20b&insecure=1",
            ),
            ("echo://", "echo:"),
            ("grpc://h:1", "grpc://h:1"),
            ("grpcs://h:1", "grpcs://h:1"),
            (
                "grpcs://h:1?insecure=true&ca=/a%26b%23",
                "grpcs://h:1?ca=/a%26b%23&insecure=1",
            ),
        ];
        for (url, want) in cases {
            assert_eq!(Endpoint::parse(url).unwrap().to_string(), *want, "{url}");
        }
    }

    #[test]
    fn listen_display_is_canonical() {
        let cases: &[(&str, &str)] = &[
            ("tcp://127.0.0.1:0", "tcp://127.0.0.1:0"),
            ("tcp://[::]:0", "tcp://[::]:0"),
            ("unix:///run/x", "unix:/run/x"),
            ("unix:@n", "unix:@n"),
            ("ws://127.0.0.1:0", "ws://127.0.0.1:0/"),
            ("tcp://h:1?max_connections=1024", "tcp://h:1"),
            ("tcp://h:1?max_connections=9", "tcp://h:1?max_connections=9"),
            ("ws://h:1/x/y", "ws://h:1/"),
            (
                "ws://h:1?queue=5&max_message=1024",
                "ws://h:1/?max_message=1024&queue=5",
            ),
            ("grpc://127.0.0.1:0?key=S", "grpc://127.0.0.1:0"),
            (
                "grpcs://[::1]:1?key=S&cert=/c&key_file=/k",
                "grpcs://[::1]:1",
            ),
        ];
        for (url, want) in cases {
            assert_eq!(
                ListenEndpoint::parse(url).unwrap().to_string(),
                *want,
                "{url}"
            );
        }
    }

    #[test]
    fn connect_display_round_trips() {
        let mut endpoints: Vec<Endpoint> = connect_ok().into_iter().map(|(_, e)| e).collect();
        // Values that need escaping or special spelling in a URL.
        endpoints.extend([
            Endpoint::Unix(unix_path("//double")),
            router("h", 1, true, Some("/odd name/a&b#c%d=e?.pem"), true),
            ws("wss://h/?q=1", "h", 443, Some("/ca é.pem"), false),
            tcp("fe80::1%eth0", 1, false, false),
            Endpoint::Websocket(WebsocketConfig {
                protocols: vec!["binary".into()],
                ..ws_config(ws("wss://h/?q=1", "h", 443, None, true))
            }),
        ]);
        for endpoint in endpoints {
            let text = endpoint.to_string();
            assert_eq!(Endpoint::parse(&text).as_ref(), Ok(&endpoint), "{text}");
        }
    }

    #[test]
    fn listen_display_round_trips_without_key() {
        for url in [
            "tcp://127.0.0.1:0",
            "tcp://[::1]:80",
            "tcp://[::1]:80?max_connections=3",
            "unix:/x",
            "unix:@y",
            "ws://h:0/p",
            "ws://h:0?max_frame=9&handshake_timeout_ms=1",
            "ws://h:0?max_handshakes=2&protocols=&origins=null,http://a:1",
            "ws://h:0?protocols=base64,binary",
        ] {
            let parsed = ListenEndpoint::parse(url).unwrap();
            assert_eq!(
                ListenEndpoint::parse(&parsed.to_string()),
                Ok(parsed),
                "{url}"
            );
        }
    }
}
