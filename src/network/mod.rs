//! The network drivers: each turns a parsed [`Endpoint`] into a connected
//! [`Stream`], and reports its address the way upstream
//! `jumpstarter-driver-network` does.
//!
//! ```
//! use jumpwire::network::Network;
//! use std::time::Duration;
//!
//! let echo = Network::new("echo:")?;
//! let s = echo.connect(Some(Duration::from_secs(1)))?;
//! s.send(b"hello", None)?;
//! let mut buf = [0u8; 16];
//! let n = s.receive(&mut buf, Some(Duration::from_secs(1)))?.unwrap();
//! assert_eq!(&buf[..n], b"hello");
//! # Ok::<(), jumpwire::Error>(())
//! ```

pub(crate) mod dbus;
mod echo;
pub(crate) mod fd;

use crate::error::{Error, Result};
use crate::stream::{Stream, deadline};
use crate::sys;
use crate::url::{Endpoint, UnixPath};
use socket2::{Domain, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

pub(crate) use fd::Kind;

/// A configured endpoint that streams can be opened to. Creating one does no
/// I/O; each [`Network::connect`] opens a new stream.
///
/// `Network` is `Send + Sync` and cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    endpoint: Endpoint,
    /// The stream token of a router network ([`Network::router`]).
    token: Option<Token>,
}

/// A router stream token: kept out of `Debug` output and logs.
#[derive(Clone, PartialEq, Eq)]
struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Network {
    /// Parses `url` (see the [`url`](crate::url) module for every form).
    pub fn new(url: &str) -> Result<Network> {
        let endpoint = Endpoint::parse(url)?;
        dbus::check(&endpoint)?;
        Ok(Network {
            endpoint,
            token: None,
        })
    }

    /// A network whose streams go through the router at `router_url`
    /// (`grpc://HOST:PORT`, `grpcs://HOST:PORT[?ca=FILE][&insecure=1]`) with
    /// the stream token `token`: each [`Network::connect`] is a
    /// [`router::connect`](crate::router::connect). With a
    /// [`Listener`](crate::forward::Listener), it forwards a local port onto
    /// router streams (upstream `j network forward-tcp` over a router): each
    /// connection accepted dials the router with the token and is paired with
    /// the next exporter that dials it too. The token is kept out of `Debug`
    /// output and of every message.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `router_url` is not a router URL, or the
    /// token is empty or has characters an HTTP header cannot carry.
    pub fn router(router_url: &str, token: &str) -> Result<Network> {
        let endpoint = Endpoint::parse(router_url)?;
        if !matches!(endpoint, Endpoint::Router(_)) {
            return Err(Error::invalid(format!(
                "{endpoint}: not a router URL (expected grpc://HOST:PORT or grpcs://HOST:PORT)"
            )));
        }
        check_token(token)?;
        Ok(Network {
            endpoint,
            token: Some(Token(token.to_owned())),
        })
    }

    /// A network for an already parsed endpoint.
    pub fn from_endpoint(endpoint: Endpoint) -> Network {
        Network {
            endpoint,
            token: None,
        }
    }

    /// The parsed endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Opens a new stream, waiting at most `timeout` (`None` = forever) for the
    /// connection, name resolution included.
    pub fn connect(&self, timeout: Option<Duration>) -> Result<Stream> {
        let deadline = deadline(timeout);
        let name = self.endpoint.to_string();
        let r = match &self.endpoint {
            Endpoint::Tcp(c) => connect_inet(&c.host, c.port, Kind::Bytes, deadline, &name)
                .and_then(|s| {
                    s.set_tcp_nodelay(c.nodelay)
                        .map_err(|e| Error::io(&name, &e))?;
                    fd::stream(s, name.clone(), Kind::Bytes)
                }),
            Endpoint::Udp(c) => connect_inet(&c.host, c.port, Kind::Datagrams, deadline, &name)
                .and_then(|s| fd::stream(s, name.clone(), Kind::Datagrams)),
            Endpoint::Unix(path) => connect_unix(path, deadline, &name)
                .and_then(|s| fd::stream(s, name.clone(), Kind::Bytes)),
            Endpoint::Vsock(c) => connect_socket(
                Domain::VSOCK,
                &SockAddr::vsock(c.cid, c.port),
                deadline,
                &name,
            )
            .and_then(|s| fd::stream(s, name.clone(), Kind::Bytes)),
            Endpoint::Echo => Ok(echo::stream()),
            Endpoint::Dbus(bus) => dbus::connect(bus, &name, deadline),
            Endpoint::Websocket(c) => crate::websocket::connect(c, &name, deadline),
            Endpoint::Router(_) => match &self.token {
                Some(Token(t)) => crate::router::connect(
                    &name,
                    t,
                    deadline.map(|d| d.saturating_duration_since(Instant::now())),
                ),
                None => Err(Error::Unsupported(format!(
                    "{name}: a router stream needs a stream token: use jw_network_router or jw_router_connect (Network::router, router::connect)"
                ))),
            },
        };
        match &r {
            Ok(_) => log::debug!("{name}: connected"),
            Err(e) => log::debug!("{name}: connect failed: {e}"),
        }
        r
    }

    /// The address a client would use to reach this endpoint directly, as
    /// upstream's `address()` reports it: `tcp://127.0.0.1:5201`,
    /// `tcp://[::1]:8080`, `udp://…` (host names resolved to an IP when they
    /// can be), `unix:/PATH`, `vsock://CID:PORT`, the websocket URL, the bus
    /// address of a `dbus:` endpoint (`unix:path=/run/dbus/system_bus_socket`:
    /// the environment variable's value or its default, read now).
    /// [`Error::Disabled`] when the URL says `enable_address=false`;
    /// [`Error::Unsupported`] for endpoints without an address (echo).
    pub fn address(&self) -> Result<String> {
        let disabled = || Error::Disabled(format!("{}: enable_address is false", self.endpoint));
        match &self.endpoint {
            Endpoint::Tcp(c) if !c.enable_address => Err(disabled()),
            Endpoint::Udp(c) if !c.enable_address => Err(disabled()),
            Endpoint::Tcp(c) => Ok(format!("tcp://{}", format_address(&c.host, c.port))),
            Endpoint::Udp(c) => Ok(format!("udp://{}", format_address(&c.host, c.port))),
            Endpoint::Unix(_) | Endpoint::Vsock(_) => Ok(self.endpoint.to_string()),
            Endpoint::Websocket(c) => Ok(c.url.clone()),
            Endpoint::Dbus(bus) => dbus::address(bus, &self.endpoint.to_string()),
            Endpoint::Echo | Endpoint::Router(_) => Err(Error::Unsupported(format!(
                "{} has no address",
                self.endpoint
            ))),
        }
    }
}

/// Checks that `token` can be sent as a bearer token.
pub(crate) fn check_token(token: &str) -> Result<()> {
    if token.is_empty() {
        return Err(Error::invalid("the token is empty"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            "the token has characters a header cannot carry (spaces, control or non-ASCII characters)",
        ));
    }
    Ok(())
}

/// Parses `url` and opens a stream to it: [`Network::new`] then
/// [`Network::connect`].
pub fn connect(url: &str, timeout: Option<Duration>) -> Result<Stream> {
    Network::new(url)?.connect(timeout)
}

/// `HOST:PORT` with the host resolved to an IP address where possible and IPv6
/// in brackets, as upstream `_format_address` does.
fn format_address(host: &str, port: u16) -> String {
    let ip = host.parse::<IpAddr>().ok().or_else(|| {
        (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .map(|a| a.ip())
    });
    match ip {
        Some(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        Some(IpAddr::V4(ip)) => format!("{ip}:{port}"),
        None if host.contains(':') => format!("[{host}]:{port}"),
        None => format!("{host}:{port}"),
    }
}

/// Resolves `host:port`, bounded by `deadline`: IP literals directly, names on
/// a helper thread (the system resolver cannot be interrupted; a resolver that
/// outlives the deadline finishes on its own and is ignored).
pub(crate) fn resolve(
    host: &str,
    port: u16,
    deadline: Option<Instant>,
    name: &str,
) -> Result<Vec<SocketAddr>> {
    resolve_with(host, port, deadline, name, |host, port| {
        (host, port).to_socket_addrs().map(Iterator::collect)
    })
}

/// What resolves a name: the system resolver, or a stand-in in tests.
type Lookup = fn(&str, u16) -> io::Result<Vec<SocketAddr>>;

/// [`resolve`] with `lookup` for names.
fn resolve_with(
    host: &str,
    port: u16,
    deadline: Option<Instant>,
    name: &str,
    lookup: Lookup,
) -> Result<Vec<SocketAddr>> {
    let host = host.split('%').next().unwrap_or(host);
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = crossbeam_channel::bounded(1);
    let owned = host.to_string();
    crate::sys::spawn("jw-resolve", move || {
        let _ = tx.send(lookup(&owned, port));
    })
    .map_err(|e| Error::io("spawning the resolver thread", &e))?;
    let r = match deadline {
        None => rx
            .recv()
            .map_err(|_| Error::Internal("resolver thread vanished".into()))?,
        Some(d) => rx.recv_deadline(d).map_err(|_| Error::Timeout)?,
    };
    match r {
        Ok(addrs) if !addrs.is_empty() => Ok(addrs),
        Ok(_) => Err(Error::Connection(format!("{name}: {host} has no address"))),
        Err(e) => Err(Error::Connection(format!(
            "{name}: cannot resolve {host}: {e}"
        ))),
    }
}

fn connect_inet(
    host: &str,
    port: u16,
    kind: Kind,
    deadline: Option<Instant>,
    name: &str,
) -> Result<Socket> {
    let mut last = None;
    for addr in resolve(host, port, deadline, name)? {
        let r = match kind {
            Kind::Bytes => connect_socket(Domain::for_address(addr), &addr.into(), deadline, name),
            Kind::Datagrams => Socket::new(Domain::for_address(addr), Type::DGRAM, None)
                .and_then(|s| s.connect(&addr.into()).map(|()| s))
                .map_err(|e| Error::io(name, &e)),
        };
        match r {
            Ok(s) => return Ok(s),
            Err(Error::Timeout) => return Err(Error::Timeout),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::Connection(format!("{name}: no address to connect to"))))
}

fn connect_unix(path: &UnixPath, deadline: Option<Instant>, name: &str) -> Result<Socket> {
    connect_socket(Domain::UNIX, &unix_addr(path, name)?, deadline, name)
}

/// The socket address of a Unix path or abstract name.
pub(crate) fn unix_addr(path: &UnixPath, name: &str) -> Result<SockAddr> {
    let r = match path {
        UnixPath::Path(p) => SockAddr::unix(p),
        UnixPath::Abstract(n) => {
            let mut bytes = vec![0u8];
            bytes.extend_from_slice(n.as_bytes());
            SockAddr::unix(std::ffi::OsStr::from_bytes(&bytes))
        }
    };
    r.map_err(|e| Error::invalid(format!("{name}: {e}")))
}

/// A non-blocking stream connect bounded by `deadline`.
pub(crate) fn connect_socket(
    domain: Domain,
    addr: &SockAddr,
    deadline: Option<Instant>,
    name: &str,
) -> Result<Socket> {
    let sock = Socket::new(domain, Type::STREAM, None).map_err(|e| Error::io(name, &e))?;
    sock.set_nonblocking(true)
        .map_err(|e| Error::io(name, &e))?;
    loop {
        match sock.connect(addr) {
            Ok(()) => return Ok(sock),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A Unix listener with a full backlog: try again shortly.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(Error::Timeout);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(Error::io(name, &e)),
        }
    }
    let ready =
        sys::wait(sock.as_fd(), libc::POLLOUT, deadline).map_err(|e| Error::io(name, &e))?;
    if ready == 0 {
        return Err(Error::Timeout);
    }
    match sock.take_error() {
        Ok(None) => Ok(sock),
        Ok(Some(e)) | Err(e) => Err(Error::io(name, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_format_like_upstream() {
        assert_eq!(
            Network::new("tcp://127.0.0.1:5201")
                .unwrap()
                .address()
                .unwrap(),
            "tcp://127.0.0.1:5201"
        );
        assert_eq!(
            Network::new("tcp://[::1]:8080").unwrap().address().unwrap(),
            "tcp://[::1]:8080"
        );
        assert_eq!(
            Network::new("udp://127.0.0.1:53")
                .unwrap()
                .address()
                .unwrap(),
            "udp://127.0.0.1:53"
        );
        let local = Network::new("tcp://localhost:80")
            .unwrap()
            .address()
            .unwrap();
        assert!(
            local == "tcp://127.0.0.1:80" || local == "tcp://[::1]:80",
            "{local}"
        );
        let off = Network::new("tcp://127.0.0.1:1?enable_address=false").unwrap();
        assert!(matches!(off.address(), Err(Error::Disabled(_))));
        assert!(matches!(
            Network::new("echo:").unwrap().address(),
            Err(Error::Unsupported(_))
        ));
    }

    #[test]
    fn a_slow_resolver_is_bounded_by_the_deadline() {
        fn slow(_: &str, _: u16) -> io::Result<Vec<SocketAddr>> {
            std::thread::sleep(Duration::from_millis(800));
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], 1))])
        }
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_millis(300);
        let r = resolve_with(
            "slow.invalid",
            1,
            Some(deadline),
            "tcp://slow.invalid:1",
            slow,
        );
        let took = t0.elapsed();
        assert_eq!(r, Err(Error::Timeout));
        assert!(
            took >= Duration::from_millis(295) && took < Duration::from_millis(400),
            "a 300 ms deadline took {took:?}"
        );
        // Without a deadline it waits for the answer.
        let r = resolve_with("slow.invalid", 1, None, "tcp://slow.invalid:1", slow);
        assert_eq!(r.map(|a| a.len()), Ok(1));
    }

    #[test]
    fn later_transports_say_unsupported() {
        let r = Network::new("grpc://127.0.0.1:1")
            .unwrap()
            .connect(Some(Duration::from_millis(100)));
        assert!(matches!(r, Err(Error::Unsupported(_))), "{r:?}");
    }
}
