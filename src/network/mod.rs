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
mod exported;

use crate::error::{Error, Result};
use crate::session::Sessions;
use crate::socket::{self, Family, Kind, fd};
use crate::stream::{Connect, Stream};
use crate::url::Endpoint;
use crate::util::{deadline, remaining};
use socket2::{Domain, SockAddr};
use std::sync::Arc;
use std::time::Duration;

/// A configured endpoint that streams can be opened to. Creating one does no
/// I/O; each [`Network::connect`] opens a new stream.
///
/// `Network` is `Send + Sync` and cheap to clone. A `jumpstarter:`
/// network's clones share its session connection: their streams are calls
/// on one HTTP/2 connection.
#[derive(Debug, Clone)]
pub struct Network {
    endpoint: Endpoint,
    /// The stream token of a router network ([`Network::router`]).
    token: Option<Token>,
    /// A `jumpstarter:` network's session connection, once opened.
    sessions: Arc<Sessions>,
}

impl PartialEq for Network {
    /// Networks are equal when their endpoints and tokens are (whatever
    /// connection they hold).
    fn eq(&self, other: &Network) -> bool {
        self.endpoint == other.endpoint && self.token == other.token
    }
}

impl Eq for Network {}

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
            sessions: Arc::default(),
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
            sessions: Arc::default(),
        })
    }

    /// A network for an already parsed endpoint.
    pub fn from_endpoint(endpoint: Endpoint) -> Network {
        Network {
            endpoint,
            token: None,
            sessions: Arc::default(),
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
            Endpoint::Tcp(c) => {
                socket::connect_host(&c.host, c.port, Kind::Bytes, Family::Any, deadline, &name)
                    .and_then(|s| {
                        s.set_tcp_nodelay(c.nodelay)
                            .map_err(|e| Error::io(&name, &e))?;
                        fd::stream(s, name.clone(), Kind::Bytes)
                    })
            }
            Endpoint::Udp(c) => socket::connect_host(
                &c.host,
                c.port,
                Kind::Datagrams,
                Family::Any,
                deadline,
                &name,
            )
            .and_then(|s| fd::stream(s, name.clone(), Kind::Datagrams)),
            Endpoint::Unix(path) => socket::connect_unix(path, deadline, &name)
                .and_then(|s| fd::stream(s, name.clone(), Kind::Bytes)),
            Endpoint::Vsock(c) => socket::connect(
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
                Some(Token(t)) => crate::router::connect(&name, t, remaining(deadline)),
                None => Err(Error::Unsupported(format!(
                    "{name}: a router stream needs a stream token: use jw_network_router or jw_router_connect (Network::router, router::connect)"
                ))),
            },
            Endpoint::Jumpstarter(c) => self.sessions.connect(c, &name, deadline),
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
    /// A `jumpstarter:` network's address is its driver's, as upstream's
    /// `NetworkClient.address()` asks it: a `DriverCall` of `address` on the
    /// session (within 10 s), `tcp://HOST:PORT` or `udp://HOST:PORT` as the
    /// exporter's driver reports it.
    /// [`Error::Disabled`] when the URL (or the exporter's configuration)
    /// says `enable_address=false`; [`Error::Unsupported`] for endpoints
    /// without an address (echo, a session's Unix or echo drivers).
    pub fn address(&self) -> Result<String> {
        let disabled = || Error::Disabled(format!("{}: enable_address is false", self.endpoint));
        match &self.endpoint {
            Endpoint::Tcp(c) if !c.enable_address => Err(disabled()),
            Endpoint::Udp(c) if !c.enable_address => Err(disabled()),
            Endpoint::Tcp(c) => Ok(format!("tcp://{}", socket::format_address(&c.host, c.port))),
            Endpoint::Udp(c) => Ok(format!("udp://{}", socket::format_address(&c.host, c.port))),
            Endpoint::Unix(_) | Endpoint::Vsock(_) => Ok(self.endpoint.to_string()),
            Endpoint::Websocket(c) => Ok(c.url.clone()),
            Endpoint::Dbus(bus) => dbus::address(bus, &self.endpoint.to_string()),
            Endpoint::Jumpstarter(c) => self.sessions.address(c, &self.endpoint.to_string()),
            Endpoint::Echo | Endpoint::Router(_) => Err(Error::Unsupported(format!(
                "{} has no address",
                self.endpoint
            ))),
        }
    }
}

impl Connect for Network {
    fn connect(&self, timeout: Option<Duration>) -> Result<Stream> {
        Network::connect(self, timeout)
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
    fn later_transports_say_unsupported() {
        let r = Network::new("grpc://127.0.0.1:1")
            .unwrap()
            .connect(Some(Duration::from_millis(100)));
        assert!(matches!(r, Err(Error::Unsupported(_))), "{r:?}");
    }
}
