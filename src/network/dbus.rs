//! The D-Bus driver: `dbus:system`, `dbus:session` and `dbus:ADDRESS`.
//!
//! The bus address is resolved as upstream `DbusNetwork` resolves it:
//! `dbus:system` reads `DBUS_SYSTEM_BUS_ADDRESS` (default
//! `unix:path=/run/dbus/system_bus_socket`), `dbus:session` reads
//! `DBUS_SESSION_BUS_ADDRESS` (default `unix:path=/run/user/$UID/bus`), both at
//! connect (and `address()`) time, since the environment may change;
//! `dbus:ADDRESS` takes the address as written, and is checked when the
//! network is created.
//!
//! An address is what the D-Bus specification says: `TRANSPORT:KEY=VALUE,...`,
//! several of them separated by `;` (the first that connects wins), values
//! `%XX`-escaped except for the bytes `[-0-9A-Za-z_/.\*]`. jumpwire connects to
//! `unix:path=`, `unix:abstract=` and `tcp:host=,port=` (with an optional
//! `family=ipv4|ipv6`); other keys (`guid=`) are ignored, as libdbus ignores
//! them. Every malformed address is an [`Error::InvalidArgument`] that quotes
//! the address and says what is wrong.
//!
//! The stream carries the raw bus protocol (the SASL exchange, then messages):
//! jumpwire does not speak D-Bus, it moves the bytes. File descriptors passed
//! over the bus (`SCM_RIGHTS`) do not cross a stream.

use crate::error::{Error, Result};
use crate::socket::{self, Family, Kind, fd};
use crate::stream::Stream;
use crate::url::percent::{self, PercentError};
use crate::url::{DbusBus, Endpoint, UNIX_PATH_MAX, UnixPath};
use socket2::{SockAddr, Socket};
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::Instant;

/// The environment variable naming the system bus.
pub(crate) const SYSTEM_ENV: &str = "DBUS_SYSTEM_BUS_ADDRESS";
/// The environment variable naming the session bus.
pub(crate) const SESSION_ENV: &str = "DBUS_SESSION_BUS_ADDRESS";
/// The system bus when `DBUS_SYSTEM_BUS_ADDRESS` is not set.
pub(crate) const SYSTEM_DEFAULT: &str = "unix:path=/run/dbus/system_bus_socket";

/// One connectable entry of a D-Bus address list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BusAddress {
    /// The entry as written in the list (escaped), for messages.
    pub(crate) text: String,
    /// Where it leads.
    pub(crate) transport: BusTransport,
}

/// The bus transports jumpwire can connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BusTransport {
    /// `unix:path=` or `unix:abstract=`.
    Unix(UnixPath),
    /// `tcp:host=,port=[,family=]`.
    Tcp {
        host: String,
        port: u16,
        family: Family,
    },
}

/// Parses a D-Bus address (list). Every failure is an
/// [`Error::InvalidArgument`]: `D-Bus address "<s>": <what is wrong>`. (The
/// driver itself parses through [`lookup`], whose messages name the endpoint
/// and the environment variable instead; this is for tests and the fuzz
/// targets.)
pub(crate) fn parse_address(s: &str) -> Result<Vec<BusAddress>> {
    parse_list(s).map_err(|p| Error::invalid(format!("D-Bus address {s:?}: {p}")))
}

/// Checks the address of a `dbus:ADDRESS` endpoint, for [`Network::new`]
/// (`dbus:system` and `dbus:session` are read at connect time). Other
/// endpoints pass.
///
/// [`Network::new`]: crate::network::Network::new
pub(crate) fn check(endpoint: &Endpoint) -> Result<()> {
    match endpoint {
        Endpoint::Dbus(bus @ DbusBus::Address(_)) => lookup(bus, &endpoint.to_string()).map(|_| ()),
        _ => Ok(()),
    }
}

/// The resolved bus address of `bus` (the environment variable's value, its
/// default, or the explicit address), checked. `name` is the endpoint, for
/// messages.
pub(crate) fn address(bus: &DbusBus, name: &str) -> Result<String> {
    lookup(bus, name).map(|(text, _)| text)
}

/// Opens a stream to `bus`: each address of its list in order, all within
/// `deadline`. Returns the first that connects; [`Error::Timeout`] when the
/// deadline passes; otherwise [`Error::Connection`] naming the address that
/// failed (every address, for a list).
pub(crate) fn connect(bus: &DbusBus, name: &str, deadline: Option<Instant>) -> Result<Stream> {
    let (_, entries) = lookup(bus, name)?;
    let mut failures = Vec::new();
    for a in &entries {
        let context = if name.strip_prefix("dbus:") == Some(a.text.as_str()) {
            name.to_string()
        } else {
            format!("{name} ({})", a.text)
        };
        match connect_one(&a.transport, deadline, &context) {
            Ok(sock) => return fd::stream(sock, name.to_string(), Kind::Bytes),
            Err(Error::Timeout) => return Err(Error::Timeout),
            Err(Error::Io(m) | Error::Connection(m)) => failures.push(m),
            Err(e) => return Err(e),
        }
    }
    Err(Error::Connection(match failures.len() {
        1 => failures.remove(0),
        n => format!(
            "{name}: none of the {n} bus addresses connected: {}",
            failures.join("; ")
        ),
    }))
}

fn connect_one(t: &BusTransport, deadline: Option<Instant>, context: &str) -> Result<Socket> {
    match t {
        BusTransport::Unix(path) => socket::connect_unix(path, deadline, context),
        BusTransport::Tcp { host, port, family } => {
            let s = socket::connect_host(host, *port, Kind::Bytes, *family, deadline, context)?;
            s.set_tcp_nodelay(true)
                .map_err(|e| Error::io(context, &e))?;
            Ok(s)
        }
    }
}

/// The address text and its parsed entries, from the process environment.
fn lookup(bus: &DbusBus, name: &str) -> Result<(String, Vec<BusAddress>)> {
    lookup_with(bus, name, &|var| std::env::var_os(var), uid())
}

/// [`lookup`] with the environment and the user id given: testable without
/// touching the process environment.
fn lookup_with(
    bus: &DbusBus,
    name: &str,
    env: &dyn Fn(&str) -> Option<OsString>,
    uid: u32,
) -> Result<(String, Vec<BusAddress>)> {
    let (var, default) = match bus {
        DbusBus::Address(a) => {
            let entries = parse_list(a).map_err(|p| Error::invalid(format!("{name}: {p}")))?;
            return Ok((a.clone(), entries));
        }
        DbusBus::System => (SYSTEM_ENV, SYSTEM_DEFAULT.to_string()),
        DbusBus::Session => (SESSION_ENV, format!("unix:path=/run/user/{uid}/bus")),
    };
    let Some(value) = env(var) else {
        let entries = parse_list(&default)
            .map_err(|p| Error::invalid(format!("{name}: default address {default:?}: {p}")))?;
        return Ok((default, entries));
    };
    let value = value
        .into_string()
        .map_err(|v| Error::invalid(format!("{name}: {var}={v:?} is not valid UTF-8")))?;
    let entries =
        parse_list(&value).map_err(|p| Error::invalid(format!("{name}: {var}={value:?}: {p}")))?;
    Ok((value, entries))
}

/// The real user id, as upstream's `getuid()`.
fn uid() -> u32 {
    crate::sys::getuid()
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// Parses an address list; the error is the problem, without the address.
fn parse_list(s: &str) -> Result<Vec<BusAddress>, String> {
    if s.is_empty() {
        return Err("the address is empty".into());
    }
    let entries: Vec<&str> = s.split(';').collect();
    // A trailing ';' ends the list, as libdbus reads it.
    let n = entries.len() - usize::from(s.ends_with(';'));
    entries[..n]
        .iter()
        .enumerate()
        .map(|(i, e)| {
            parse_entry(e)
                .map(|transport| BusAddress {
                    text: (*e).to_string(),
                    transport,
                })
                .map_err(|p| {
                    if n == 1 {
                        p
                    } else {
                        format!("entry {} ({e:?}): {p}", i + 1)
                    }
                })
        })
        .collect()
}

fn parse_entry(e: &str) -> Result<BusTransport, String> {
    if e.is_empty() {
        return Err("empty entry in the address list".into());
    }
    let Some((scheme, rest)) = e.split_once(':') else {
        return Err("missing ':' after the transport (expected TRANSPORT:KEY=VALUE,...)".into());
    };
    match scheme {
        "unix" => parse_unix(&parse_args(rest)?),
        "tcp" => parse_tcp(&parse_args(rest)?),
        "" => Err("missing transport before ':' (expected unix: or tcp:)".into()),
        _ => Err(format!(
            "invalid bus scheme {scheme:?} (jumpwire connects to unix: and tcp: addresses)"
        )),
    }
}

/// `KEY=VALUE,...` into (key, unescaped value) pairs.
fn parse_args(rest: &str) -> Result<Vec<(&str, Vec<u8>)>, String> {
    let mut args: Vec<(&str, Vec<u8>)> = Vec::new();
    if rest.is_empty() {
        return Ok(args);
    }
    for part in rest.split(',') {
        let Some((key, value)) = part.split_once('=') else {
            return Err(format!(
                "missing separator in arguments: {part:?} has no '=' (expected KEY=VALUE)"
            ));
        };
        if key.is_empty() {
            return Err(format!("argument {part:?} has no key before '='"));
        }
        if args.iter().any(|(k, _)| *k == key) {
            return Err(format!("{key}= is given twice"));
        }
        let value = unescape(value).map_err(|p| format!("bad escaping in {key}={value:?}: {p}"))?;
        args.push((key, value));
    }
    Ok(args)
}

fn get<'a>(args: &'a [(&str, Vec<u8>)], key: &str) -> Option<&'a [u8]> {
    args.iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.as_slice())
}

fn parse_unix(args: &[(&str, Vec<u8>)]) -> Result<BusTransport, String> {
    for key in ["tmpdir", "dir", "runtime"] {
        if get(args, key).is_some() {
            return Err(format!(
                "{key}= is for servers: a client needs path= or abstract="
            ));
        }
    }
    let too_long = |key: &str, v: &[u8]| {
        format!(
            "{key}= is {} bytes long; a Unix socket address holds at most {UNIX_PATH_MAX}",
            v.len()
        )
    };
    match (get(args, "path"), get(args, "abstract")) {
        (Some(_), Some(_)) => Err("path= and abstract= exclude each other".into()),
        (None, None) => {
            Err("missing path argument (a unix: address needs path= or abstract=)".into())
        }
        (Some(p), None) => {
            if p.is_empty() {
                Err("path= is empty".into())
            } else if p.contains(&0) {
                Err("path= contains a NUL byte".into())
            } else if p.len() > UNIX_PATH_MAX {
                Err(too_long("path", p))
            } else {
                let p = PathBuf::from(OsString::from_vec(p.to_vec()));
                Ok(BusTransport::Unix(UnixPath::Path(p)))
            }
        }
        (None, Some(n)) => {
            if n.is_empty() {
                Err("abstract= is empty".into())
            } else if n.len() > UNIX_PATH_MAX {
                Err(too_long("abstract", n))
            } else {
                let n = String::from_utf8(n.to_vec())
                    .map_err(|_| "abstract= is not valid UTF-8".to_string())?;
                Ok(BusTransport::Unix(UnixPath::Abstract(n)))
            }
        }
    }
}

fn parse_tcp(args: &[(&str, Vec<u8>)]) -> Result<BusTransport, String> {
    let host = match get(args, "host") {
        None => return Err("missing host argument (a tcp: address needs host= and port=)".into()),
        Some([]) => return Err("host= is empty".into()),
        Some(h) => {
            String::from_utf8(h.to_vec()).map_err(|_| "host= is not valid UTF-8".to_string())?
        }
    };
    let port = match get(args, "port") {
        None => return Err("missing port argument (a tcp: address needs host= and port=)".into()),
        Some(p) => std::str::from_utf8(p)
            .ok()
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|&p| p != 0)
            .ok_or_else(|| {
                format!(
                    "invalid port argument {:?} (expected 1 to 65535)",
                    String::from_utf8_lossy(p)
                )
            })?,
    };
    let family = match get(args, "family") {
        None => Family::Any,
        Some(b"ipv4") => Family::Ipv4,
        Some(b"ipv6") => Family::Ipv6,
        Some(f) => {
            return Err(format!(
                "invalid family argument {:?} (expected ipv4 or ipv6)",
                String::from_utf8_lossy(f)
            ));
        }
    };
    Ok(BusTransport::Tcp { host, port, family })
}

/// Bytes a value may hold unescaped (the D-Bus specification's
/// "optionally-escaped" set).
fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/' | b'.' | b'\\' | b'*')
}

/// Decodes `%XX` escapes; any byte outside [`plain`] must be escaped.
fn unescape(v: &str) -> Result<Vec<u8>, String> {
    percent::decode(v, plain).map_err(|e| match e {
        PercentError::BadEscape(i) => {
            format!("'%' at byte {i} is not followed by two hex digits")
        }
        PercentError::Unescaped(i) => {
            // `plain` bytes are ASCII, so `i` is at a char boundary: every
            // byte before it was ASCII or part of an escape.
            let c = v.get(i..).and_then(|s| s.chars().next()).unwrap_or('?');
            let mut utf8 = [0u8; 4];
            format!(
                "{c:?} must be written as {}",
                escape(c.encode_utf8(&mut utf8).as_bytes())
            )
        }
    })
}

/// Escapes `value` for a D-Bus address: bytes outside `[-0-9A-Za-z_/.\*]`
/// become `%xx`, as libdbus writes them.
pub(crate) fn escape(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value {
        if plain(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// The D-Bus address of a forwarding listener whose address is `listen` and
/// whose socket is bound to `local`: `unix:path=/PATH`, `unix:abstract=NAME`,
/// `tcp:host=127.0.0.1,port=N` or `tcp:host=%3a%3a1,port=N,family=ipv6` (an
/// unspecified bind address reports the loopback address of its family).
pub(crate) fn listener_address(listen: &str, local: &SockAddr) -> Result<String> {
    let unsupported = || Error::Unsupported(format!("{listen} has no D-Bus address"));
    if !(listen.starts_with("tcp://") || listen.starts_with("unix:")) {
        return Err(unsupported());
    }
    if let Some(a) = local.as_socket() {
        return Ok(match a.ip() {
            IpAddr::V4(ip) => {
                let ip = if ip.is_unspecified() {
                    Ipv4Addr::LOCALHOST
                } else {
                    ip
                };
                format!("tcp:host={ip},port={}", a.port())
            }
            IpAddr::V6(ip) => {
                let ip = if ip.is_unspecified() {
                    Ipv6Addr::LOCALHOST
                } else {
                    ip
                };
                format!(
                    "tcp:host={},port={},family=ipv6",
                    escape(ip.to_string().as_bytes()),
                    a.port()
                )
            }
        });
    }
    if let Some(p) = local.as_pathname() {
        return Ok(format!("unix:path={}", escape(p.as_os_str().as_bytes())));
    }
    if let Some(n) = local.as_abstract_namespace() {
        return Ok(format!("unix:abstract={}", escape(n)));
    }
    Err(unsupported())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::SocketAddr;

    fn unix(p: &str) -> BusTransport {
        BusTransport::Unix(UnixPath::Path(p.into()))
    }

    fn tcp(host: &str, port: u16, family: Family) -> BusTransport {
        BusTransport::Tcp {
            host: host.into(),
            port,
            family,
        }
    }

    fn transports(s: &str) -> Vec<BusTransport> {
        parse_address(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .into_iter()
            .map(|a| a.transport)
            .collect()
    }

    #[test]
    fn good_addresses_parse() {
        let table: Vec<(&str, Vec<BusTransport>)> = vec![
            ("unix:path=/run/x", vec![unix("/run/x")]),
            (
                "unix:path=/run/dbus/system_bus_socket,guid=0123abcd",
                vec![unix("/run/dbus/system_bus_socket")],
            ),
            (
                "unix:abstract=/tmp/dbus-XYZ",
                vec![BusTransport::Unix(UnixPath::Abstract(
                    "/tmp/dbus-XYZ".into(),
                ))],
            ),
            ("unix:path=/tmp/a%20b", vec![unix("/tmp/a b")]),
            ("unix:path=/tmp/%2C%3d%3B", vec![unix("/tmp/,=;")]),
            ("unix:path=/x-_.\\*", vec![unix("/x-_.\\*")]),
            (
                "tcp:host=127.0.0.1,port=1234",
                vec![tcp("127.0.0.1", 1234, Family::Any)],
            ),
            ("tcp:port=65535,host=h", vec![tcp("h", 65535, Family::Any)]),
            (
                "tcp:host=%3a%3a1,port=9,family=ipv6",
                vec![tcp("::1", 9, Family::Ipv6)],
            ),
            (
                "tcp:host=localhost,port=9,family=ipv4,guid=x",
                vec![tcp("localhost", 9, Family::Ipv4)],
            ),
            (
                "unix:path=/a;tcp:host=h,port=1;unix:abstract=b",
                vec![
                    unix("/a"),
                    tcp("h", 1, Family::Any),
                    BusTransport::Unix(UnixPath::Abstract("b".into())),
                ],
            ),
            ("unix:path=/a;", vec![unix("/a")]),
        ];
        for (s, want) in table {
            assert_eq!(transports(s), want, "{s}");
        }
        let texts: Vec<String> = parse_address("unix:path=/a;tcp:host=h,port=1")
            .unwrap()
            .into_iter()
            .map(|a| a.text)
            .collect();
        assert_eq!(texts, ["unix:path=/a", "tcp:host=h,port=1"]);
    }

    #[test]
    fn every_malformed_address_says_what_is_wrong() {
        let long = format!("unix:path=/{}", "a".repeat(UNIX_PATH_MAX));
        let table: Vec<(&str, &str)> = vec![
            ("", "the address is empty"),
            (";", "empty entry in the address list"),
            (
                "unix",
                "missing ':' after the transport (expected TRANSPORT:KEY=VALUE,...)",
            ),
            (
                ":path=/x",
                "missing transport before ':' (expected unix: or tcp:)",
            ),
            (
                "nonce-tcp:host=h,port=1",
                "invalid bus scheme \"nonce-tcp\" (jumpwire connects to unix: and tcp: addresses)",
            ),
            (
                "UNIX:path=/x",
                "invalid bus scheme \"UNIX\" (jumpwire connects to unix: and tcp: addresses)",
            ),
            (
                "unix:",
                "missing path argument (a unix: address needs path= or abstract=)",
            ),
            (
                "unix:guid=1",
                "missing path argument (a unix: address needs path= or abstract=)",
            ),
            (
                "unix:path",
                "missing separator in arguments: \"path\" has no '=' (expected KEY=VALUE)",
            ),
            (
                "unix:path=/x,",
                "missing separator in arguments: \"\" has no '=' (expected KEY=VALUE)",
            ),
            ("unix:=/x", "argument \"=/x\" has no key before '='"),
            ("unix:path=/x,path=/y", "path= is given twice"),
            ("unix:path=", "path= is empty"),
            ("unix:path=/x%00", "path= contains a NUL byte"),
            ("unix:abstract=", "abstract= is empty"),
            ("unix:abstract=%ff", "abstract= is not valid UTF-8"),
            (
                "unix:path=/x,abstract=y",
                "path= and abstract= exclude each other",
            ),
            (
                "unix:tmpdir=/tmp",
                "tmpdir= is for servers: a client needs path= or abstract=",
            ),
            (
                "unix:runtime=yes",
                "runtime= is for servers: a client needs path= or abstract=",
            ),
            (
                &long,
                "path= is 108 bytes long; a Unix socket address holds at most 107",
            ),
            (
                "unix:path=/a%2",
                "bad escaping in path=\"/a%2\": '%' at byte 2 is not followed by two hex digits",
            ),
            (
                "unix:path=/a%zz",
                "bad escaping in path=\"/a%zz\": '%' at byte 2 is not followed by two hex digits",
            ),
            (
                "unix:path=/a%+1",
                "bad escaping in path=\"/a%+1\": '%' at byte 2 is not followed by two hex digits",
            ),
            (
                "unix:path=/a b",
                "bad escaping in path=\"/a b\": ' ' must be written as %20",
            ),
            (
                "unix:path=/é",
                "bad escaping in path=\"/é\": 'é' must be written as %c3%a9",
            ),
            (
                "tcp:host=::1,port=1",
                "bad escaping in host=\"::1\": ':' must be written as %3a",
            ),
            (
                "tcp:port=1",
                "missing host argument (a tcp: address needs host= and port=)",
            ),
            (
                "tcp:host=h",
                "missing port argument (a tcp: address needs host= and port=)",
            ),
            ("tcp:host=,port=1", "host= is empty"),
            (
                "tcp:host=h,port=x",
                "invalid port argument \"x\" (expected 1 to 65535)",
            ),
            (
                "tcp:host=h,port=0",
                "invalid port argument \"0\" (expected 1 to 65535)",
            ),
            (
                "tcp:host=h,port=65536",
                "invalid port argument \"65536\" (expected 1 to 65535)",
            ),
            (
                "tcp:host=h,port=-1",
                "invalid port argument \"-1\" (expected 1 to 65535)",
            ),
            (
                "tcp:host=h,port=",
                "invalid port argument \"\" (expected 1 to 65535)",
            ),
            (
                "tcp:host=h,port=1,family=ipx",
                "invalid family argument \"ipx\" (expected ipv4 or ipv6)",
            ),
            (
                "unix:path=/a;;unix:path=/b",
                "entry 2 (\"\"): empty entry in the address list",
            ),
            (
                "unix:path=/a;tcp:host=h",
                "entry 2 (\"tcp:host=h\"): missing port argument (a tcp: address needs host= and port=)",
            ),
        ];
        for (s, problem) in table {
            assert_eq!(
                parse_address(s),
                Err(Error::InvalidArgument(format!(
                    "D-Bus address {s:?}: {problem}"
                ))),
                "{s}"
            );
        }
    }

    #[test]
    fn escape_leaves_the_plain_set_and_round_trips() {
        assert_eq!(escape(b"/run/user/1000/bus"), "/run/user/1000/bus");
        assert_eq!(escape(b"-_/.\\*azAZ09"), "-_/.\\*azAZ09");
        assert_eq!(escape(b"a b,c=d;e:f%"), "a%20b%2cc%3dd%3be%3af%25");
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unescape(&escape(&all)).unwrap(), all);
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + use<> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).map(OsString::from)
    }

    fn resolved(bus: DbusBus, vars: &[(&str, &str)], uid: u32) -> Result<String> {
        let name = Endpoint::Dbus(bus.clone()).to_string();
        lookup_with(&bus, &name, &env_of(vars), uid).map(|(t, _)| t)
    }

    #[test]
    fn system_and_session_read_the_environment_with_upstream_defaults() {
        assert_eq!(
            resolved(DbusBus::System, &[], 1000).unwrap(),
            "unix:path=/run/dbus/system_bus_socket"
        );
        assert_eq!(
            resolved(DbusBus::Session, &[], 1000).unwrap(),
            "unix:path=/run/user/1000/bus"
        );
        assert_eq!(
            resolved(DbusBus::Session, &[], 0).unwrap(),
            "unix:path=/run/user/0/bus"
        );
        let vars = [
            (SYSTEM_ENV, "tcp:host=10.0.0.1,port=7"),
            (SESSION_ENV, "unix:abstract=/tmp/dbus-x,guid=1"),
        ];
        assert_eq!(
            resolved(DbusBus::System, &vars, 5).unwrap(),
            "tcp:host=10.0.0.1,port=7"
        );
        assert_eq!(
            resolved(DbusBus::Session, &vars, 5).unwrap(),
            "unix:abstract=/tmp/dbus-x,guid=1"
        );
        // Each bus reads its own variable only.
        assert_eq!(
            resolved(DbusBus::System, &[(SESSION_ENV, "unix:path=/s")], 5).unwrap(),
            "unix:path=/run/dbus/system_bus_socket"
        );
        // An explicit address ignores the environment.
        assert_eq!(
            resolved(
                DbusBus::Address("unix:path=/e".into()),
                &[(SESSION_ENV, "unix:path=/s")],
                5
            )
            .unwrap(),
            "unix:path=/e"
        );
    }

    #[test]
    fn a_malformed_environment_variable_is_named_in_the_error() {
        assert_eq!(
            resolved(DbusBus::Session, &[(SESSION_ENV, "tcp:host=h")], 0),
            Err(Error::InvalidArgument(
                "dbus:session: DBUS_SESSION_BUS_ADDRESS=\"tcp:host=h\": missing port argument \
                 (a tcp: address needs host= and port=)"
                    .into()
            ))
        );
        assert_eq!(
            resolved(DbusBus::System, &[(SYSTEM_ENV, "")], 0),
            Err(Error::InvalidArgument(
                "dbus:system: DBUS_SYSTEM_BUS_ADDRESS=\"\": the address is empty".into()
            ))
        );
        let bad_utf8 = |_: &str| Some(OsString::from_vec(vec![b'u', 0xff]));
        assert_eq!(
            lookup_with(&DbusBus::System, "dbus:system", &bad_utf8, 0),
            Err(Error::InvalidArgument(
                "dbus:system: DBUS_SYSTEM_BUS_ADDRESS=\"u\\xFF\" is not valid UTF-8".into()
            ))
        );
        assert_eq!(
            resolved(DbusBus::Address("unix:path".into()), &[], 0),
            Err(Error::InvalidArgument(
                "dbus:unix:path: missing separator in arguments: \"path\" has no '=' \
                 (expected KEY=VALUE)"
                    .into()
            ))
        );
    }

    #[test]
    fn check_rejects_only_malformed_explicit_addresses() {
        let ok = ["dbus:system", "dbus:session", "dbus:unix:path=/x", "echo:"];
        for url in ok {
            assert_eq!(check(&Endpoint::parse(url).unwrap()), Ok(()), "{url}");
        }
        let bad = Endpoint::parse("dbus:tcp:host=h,port=99999").unwrap();
        assert_eq!(
            check(&bad),
            Err(Error::InvalidArgument(
                "dbus:tcp:host=h,port=99999: invalid port argument \"99999\" (expected 1 to 65535)"
                    .into()
            ))
        );
    }

    #[test]
    fn listener_addresses_are_dbus_addresses() {
        let v4: SocketAddr = "127.0.0.1:4242".parse().unwrap();
        assert_eq!(
            listener_address("tcp://127.0.0.1:4242", &v4.into()).unwrap(),
            "tcp:host=127.0.0.1,port=4242"
        );
        let any4: SocketAddr = "0.0.0.0:7".parse().unwrap();
        assert_eq!(
            listener_address("tcp://0.0.0.0:7", &any4.into()).unwrap(),
            "tcp:host=127.0.0.1,port=7"
        );
        let v6: SocketAddr = "[::1]:4242".parse().unwrap();
        assert_eq!(
            listener_address("tcp://[::1]:4242", &v6.into()).unwrap(),
            "tcp:host=%3a%3a1,port=4242,family=ipv6"
        );
        let any6: SocketAddr = "[::]:8".parse().unwrap();
        assert_eq!(
            listener_address("tcp://[::]:8", &any6.into()).unwrap(),
            "tcp:host=%3a%3a1,port=8,family=ipv6"
        );
        let path = SockAddr::unix("/tmp/a b/bus").unwrap();
        assert_eq!(
            listener_address("unix:/tmp/a b/bus", &path).unwrap(),
            "unix:path=/tmp/a%20b/bus"
        );
        let abs = socket::unix_addr(&UnixPath::Abstract("jw x".into()), "t").unwrap();
        assert_eq!(
            listener_address("unix:@jw x", &abs).unwrap(),
            "unix:abstract=jw%20x"
        );
        // Every address written parses back to what was bound.
        for (a, want) in [
            (
                "tcp:host=%3a%3a1,port=4242,family=ipv6",
                tcp("::1", 4242, Family::Ipv6),
            ),
            ("unix:path=/tmp/a%20b/bus", unix("/tmp/a b/bus")),
            (
                "unix:abstract=jw%20x",
                BusTransport::Unix(UnixPath::Abstract("jw x".into())),
            ),
        ] {
            assert_eq!(transports(a), [want]);
        }
        assert!(matches!(
            listener_address("ws://127.0.0.1:1/", &v4.into()),
            Err(Error::Unsupported(m)) if m == "ws://127.0.0.1:1/ has no D-Bus address"
        ));
    }
}
