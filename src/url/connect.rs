//! Connect targets: [`Endpoint`] and the configuration of each scheme.

use super::query::{OptKind, OptWriter, parse_options, protocol_ok};
use super::syntax::{HostFmt, parse_authority, parse_port, parse_u32, split_net, split_scheme};
use super::{Ctx, UnixPath, missing_scheme, parse_unix};
use crate::error::Result;
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
    /// `jumpstarter:unix:/PATH?driver=NAME[&method=M]`,
    /// `jumpstarter:?driver=NAME[&method=M]`,
    /// `jumpstarter:lease?driver=NAME[&method=M][&lease=LEASE][&client=ALIAS|&config=FILE]`
    Jumpstarter(JumpstarterConfig),
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

impl WebsocketConfig {
    /// The authority of [`url`](Self::url) as written (`HOST[:PORT]`, an
    /// IPv6 address in brackets): the handshake's `Host`.
    pub(crate) fn authority(&self) -> &str {
        self.split_url().0
    }

    /// The target of the handshake's request: the path and query of
    /// [`url`](Self::url), `/` when it has no path.
    pub(crate) fn request_target(&self) -> String {
        match self.split_url().1 {
            "" => "/".to_string(),
            t if t.starts_with('/') => t.to_string(),
            query => format!("/{query}"),
        }
    }

    /// `url` as authority and what follows it (the path, with the query).
    /// A parsed URL always has a path; one built by hand may not.
    fn split_url(&self) -> (&str, &str) {
        let after = self.url.split_once("://").map_or("", |(_, r)| r);
        after.split_at(after.find(['/', '?']).unwrap_or(after.len()))
    }
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

/// A driver stream of a Jumpstarter session (`jumpstarter:`): the session,
/// the driver by its name path and the stream method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpstarterConfig {
    /// Where the session is.
    pub session: SessionAddress,
    /// The driver's name path: the `jumpstarter.dev/name` labels from the
    /// root's child down (`["dut", "console"]` for `dut.console`).
    pub driver: Vec<String>,
    /// The stream method (`connect` by default, as upstream's network
    /// clients).
    pub method: String,
}

impl JumpstarterConfig {
    /// The driver's name path as `jmp` shows it (`dut.console`).
    pub fn driver_name(&self) -> String {
        self.driver.join(".")
    }
}

/// Where a Jumpstarter session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionAddress {
    /// `jumpstarter:?…`: the session `JUMPSTARTER_HOST` names, read at each
    /// connect (a Unix socket path, or `HOST:PORT`, as upstream reads it).
    Env,
    /// `jumpstarter:unix:/PATH?…`: the session on that Unix socket.
    Unix(UnixPath),
    /// `jumpstarter:lease?…`: the session of a lease, reached through the
    /// lab's controller and router with an upstream client configuration,
    /// read at each connect.
    Lease(LeaseAddress),
}

/// A lease's session (`jumpstarter:lease?…`): which lease, and which client
/// configuration reaches the lab. No secret is in the URL: the token is the
/// configuration's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseAddress {
    /// `&lease=LEASE`; `None`: the lease `JMP_LEASE` names at connect time.
    pub lease: Option<String>,
    /// The client configuration.
    pub client: ClientConfigSource,
}

/// Where the client configuration of a `jumpstarter:lease` network comes
/// from (upstream's `ClientConfigV1Alpha1`, with upstream's `JMP_*`
/// variables filling what the file leaves out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientConfigSource {
    /// As upstream's `jmp` without `--client`: `JMP_CLIENT_CONFIG` (a file),
    /// else the `JMP_*` variables alone (when `JMP_NAMESPACE` and `JMP_NAME`
    /// are set), else the user configuration's `current-client`.
    Default,
    /// `&client=ALIAS`: `clients/ALIAS.yaml` in the configuration directory
    /// (as `jmp --client ALIAS`).
    Alias(String),
    /// `&config=FILE`: that file (as `jmp --client-config FILE`).
    File(PathBuf),
}

/// The stream method upstream's network clients open (`TcpPortforwardAdapter`,
/// `NetworkClient.connect`).
pub const DEFAULT_STREAM_METHOD: &str = "connect";

/// The connect schemes, as error messages list them.
const CONNECT_SCHEMES: &str =
    "tcp, udp, unix, vsock, dbus, ws, wss, echo, grpc, grpcs, jumpstarter";

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
    ///
    /// [`Error::InvalidArgument`]: crate::Error::InvalidArgument
    /// [`redact`]: super::redact
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
            "jumpstarter" => parse_jumpstarter(&cx, rest).map(Endpoint::Jumpstarter),
            _ => Err(cx.err(format_args!(
                "unknown scheme {scheme:?} (expected {CONNECT_SCHEMES})"
            ))),
        }
    }
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
            Endpoint::Jumpstarter(c) => {
                f.write_str("jumpstarter:")?;
                match &c.session {
                    SessionAddress::Unix(p) => write!(f, "{p}")?,
                    SessionAddress::Lease(_) => f.write_str("lease")?,
                    SessionAddress::Env => {}
                }
                let mut opts = OptWriter::new('?');
                opts.write(f, "driver", &c.driver_name())?;
                if c.method != DEFAULT_STREAM_METHOD {
                    opts.write(f, "method", &c.method)?;
                }
                if let SessionAddress::Lease(l) = &c.session {
                    if let Some(lease) = &l.lease {
                        opts.write(f, "lease", lease)?;
                    }
                    match &l.client {
                        ClientConfigSource::Default => {}
                        ClientConfigSource::Alias(a) => opts.write(f, "client", a)?,
                        ClientConfigSource::File(p) => {
                            opts.write(f, "config", &p.to_string_lossy())?;
                        }
                    }
                }
                Ok(())
            }
        }
    }
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

const JUMPSTARTER_OPTIONS: &[(&str, OptKind)] = &[
    ("driver", OptKind::Name),
    ("method", OptKind::Name),
    ("lease", OptKind::Name),
    ("client", OptKind::Name),
    ("config", OptKind::Path),
];
/// The options only a lease's session takes.
const LEASE_OPTIONS: [&str; 3] = ["lease", "client", "config"];
const JUMPSTARTER_FORMS: &str = "jumpstarter:unix:/PATH?driver=NAME[&method=M], \
     jumpstarter:?driver=NAME[&method=M] or \
     jumpstarter:lease?driver=NAME[&method=M][&lease=LEASE][&client=ALIAS|&config=FILE]";

/// `jumpstarter:[unix:PATH|lease]?driver=NAME[&method=M][&lease=…]…`. A
/// session on a Unix socket is given in the URL; `lease` is a lease's
/// session (its lease and client configuration by options or the
/// environment); without either `JUMPSTARTER_HOST` names the session at
/// connect time.
fn parse_jumpstarter(cx: &Ctx<'_>, rest: &str) -> Result<JumpstarterConfig> {
    let (session, query) = match rest.split_once('?') {
        Some((s, q)) => (s, Some(q)),
        None => (rest, None),
    };
    let opts = parse_options(cx, query, JUMPSTARTER_OPTIONS, "jumpstarter:")?;
    let session = if session.is_empty() {
        SessionAddress::Env
    } else if session.eq_ignore_ascii_case("lease") {
        SessionAddress::Lease(parse_lease(cx, &opts)?)
    } else if let Some((_, path)) = split_scheme(session).filter(|(s, _)| s == "unix") {
        SessionAddress::Unix(parse_unix(cx, path)?)
    } else {
        return Err(cx.err(format_args!(
            "the session {session:?} is not a unix: address (nor lease; \
             expected {JUMPSTARTER_FORMS})"
        )));
    };
    if !matches!(session, SessionAddress::Lease(_)) {
        if let Some(o) = LEASE_OPTIONS.iter().find(|o| opts.has(o)) {
            return Err(cx.err(format_args!(
                "option {o} is only valid on jumpstarter:lease"
            )));
        }
    }
    let Some(driver) = opts.non_empty(cx, "driver", OptKind::Name)? else {
        return Err(cx.err(format_args!(
            "option driver is missing: which driver? (expected {JUMPSTARTER_FORMS})"
        )));
    };
    let mut path = Vec::new();
    for part in driver.split('.') {
        if part.is_empty() {
            return Err(cx.err(format_args!(
                "option driver: {driver:?} has an empty name between dots \
                 (expected NAME or NAME.CHILD, e.g. dut.console)"
            )));
        }
        path.push(part.to_owned());
    }
    let method = opts
        .non_empty(cx, "method", OptKind::Name)?
        .unwrap_or_else(|| DEFAULT_STREAM_METHOD.to_owned());
    if !method
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(cx.err(format_args!(
            "option method: {method:?} is not a method name (letters, digits, _)"
        )));
    }
    Ok(JumpstarterConfig {
        session,
        driver: path,
        method,
    })
}

/// The options of `jumpstarter:lease`: the lease, and the client
/// configuration by alias or by file (not both).
fn parse_lease(cx: &Ctx<'_>, opts: &super::query::Options<'_>) -> Result<LeaseAddress> {
    let lease = opts.non_empty(cx, "lease", OptKind::Name)?;
    if let Some(l) = &lease {
        if l.chars().any(|c| c.is_control() || c == '/') {
            return Err(cx.err(format_args!("option lease: {l:?} is not a lease name")));
        }
    }
    let alias = opts.non_empty(cx, "client", OptKind::Name)?;
    if let Some(a) = &alias {
        if a.chars().any(|c| c.is_control() || c == '/') || a.starts_with('.') {
            return Err(cx.err(format_args!("option client: {a:?} is not a client alias")));
        }
    }
    let file = opts.path(cx, "config")?;
    let client = match (alias, file) {
        (Some(_), Some(_)) => {
            return Err(cx.err(format_args!(
                "options client and config go one at a time (a client alias, or a configuration file)"
            )));
        }
        (Some(a), None) => ClientConfigSource::Alias(a),
        (None, Some(f)) => ClientConfigSource::File(f),
        (None, None) => ClientConfigSource::Default,
    };
    Ok(LeaseAddress { lease, client })
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
    use crate::url::UNIX_PATH_MAX;
    use crate::url::tests::{message, unix_path};

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

    fn js(session: Option<UnixPath>, driver: &[&str], method: &str) -> Endpoint {
        Endpoint::Jumpstarter(JumpstarterConfig {
            session: session.map_or(SessionAddress::Env, SessionAddress::Unix),
            driver: driver.iter().map(|d| (*d).to_owned()).collect(),
            method: method.into(),
        })
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
            // jumpstarter
            (
                "jumpstarter:unix:/tmp/j/socket?driver=tcp".into(),
                js(Some(unix_path("/tmp/j/socket")), &["tcp"], "connect"),
            ),
            (
                "JUMPSTARTER:?driver=dut.console".into(),
                js(None, &["dut", "console"], "connect"),
            ),
            (
                "jumpstarter:unix:@sess?method=stream_x&driver=a%2Eb".into(),
                js(
                    Some(UnixPath::Abstract("sess".into())),
                    &["a", "b"],
                    "stream_x",
                ),
            ),
            (
                "jumpstarter:UNIX:///s?driver=echo".into(),
                js(Some(unix_path("/s")), &["echo"], "connect"),
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
                "localhost: missing scheme (expected tcp, udp, unix, vsock, dbus, ws, wss, echo, grpc, grpcs, jumpstarter)",
            ),
            ("/tmp/x.sock", "missing scheme"),
            ("127.0.0.1:80", "missing scheme"),
            ("[::1]:80", "missing scheme"),
            (
                "frob://x",
                "frob://x: unknown scheme \"frob\" (expected tcp, udp, unix, vsock, dbus, ws, wss, echo, grpc, grpcs, jumpstarter)",
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
            // jumpstarter
            ("jumpstarter:", "option driver is missing"),
            ("jumpstarter:unix:/s", "option driver is missing"),
            ("jumpstarter:?driver=", "option driver: value is empty"),
            ("jumpstarter:?driver=a..b", "has an empty name between dots"),
            ("jumpstarter:?driver=.a", "has an empty name between dots"),
            (
                "jumpstarter:tcp://h:1?driver=a",
                "the session \"tcp://h:1\" is not a unix: address",
            ),
            ("jumpstarter:/s?driver=a", "is not a unix: address"),
            ("jumpstarter:unix:?driver=a", "path is empty"),
            (
                "jumpstarter:?driver=a&method=b-c",
                "option method: \"b-c\" is not a method name",
            ),
            (
                "jumpstarter:?driver=a&uuid=x",
                "unknown option \"uuid\" (expected driver, method, lease, client, config)",
            ),
            ("jumpstarter:?driver=a&driver=b", "given more than once"),
            // jumpstarter:lease
            ("jumpstarter:lease", "option driver is missing"),
            (
                "jumpstarter:?driver=a&lease=l",
                "option lease is only valid on jumpstarter:lease",
            ),
            (
                "jumpstarter:unix:/s?driver=a&config=/c",
                "option config is only valid on jumpstarter:lease",
            ),
            (
                "jumpstarter:lease?driver=a&client=x&config=/c",
                "options client and config go one at a time",
            ),
            (
                "jumpstarter:lease?driver=a&lease=",
                "option lease: value is empty",
            ),
            (
                "jumpstarter:lease?driver=a&lease=a%2Fb",
                "is not a lease name",
            ),
            (
                "jumpstarter:lease?driver=a&client=..",
                "is not a client alias",
            ),
            ("jumpstarter:leases?driver=a", "is not a unix: address"),
        ];
        for (url, want) in cases {
            let got = message(Endpoint::parse(url));
            assert!(got.contains(want), "{url:?}: got {got:?}, want {want:?}");
            assert!(!got.contains('\n'), "{url:?}: multi-line message {got:?}");
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
            (
                "jumpstarter:unix:///s?method=connect&driver=dut.console",
                "jumpstarter:unix:/s?driver=dut.console",
            ),
            (
                "Jumpstarter:?driver=a&method=m",
                "jumpstarter:?driver=a&method=m",
            ),
            (
                "jumpstarter:LEASE?lease=l1&driver=tcp",
                "jumpstarter:lease?driver=tcp&lease=l1",
            ),
            (
                "jumpstarter:lease?config=/etc/j/c.yaml&driver=dut.console&method=m",
                "jumpstarter:lease?driver=dut.console&method=m&config=/etc/j/c.yaml",
            ),
            (
                "jumpstarter:lease?driver=a&client=lab",
                "jumpstarter:lease?driver=a&client=lab",
            ),
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
    fn a_websocket_url_gives_the_handshake_its_target_and_host() {
        for (url, authority, target) in [
            ("ws://h", "h", "/"),
            ("ws://h?x=1", "h", "/?x=1"),
            (
                "wss://[::1]:8443/a/b?key=s#insecure=1",
                "[::1]:8443",
                "/a/b?key=s",
            ),
            ("ws://h:80/p", "h:80", "/p"),
        ] {
            let c = ws_config(Endpoint::parse(url).unwrap());
            assert_eq!(
                (c.authority(), c.request_target().as_str()),
                (authority, target),
                "{url}"
            );
        }
        // Built by hand, without a path.
        let c = ws_config(ws("ws://h?q", "h", 80, None, false));
        assert_eq!((c.authority(), c.request_target().as_str()), ("h", "/?q"));
        let c = ws_config(ws("ws://h", "h", 80, None, false));
        assert_eq!((c.authority(), c.request_target().as_str()), ("h", "/"));
    }
}
