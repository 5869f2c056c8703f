//! The socket layer every transport stands on: name resolution bounded by a
//! deadline, one way to connect to the first address that answers, Unix
//! socket addresses, listening sockets, address formatting, and the
//! socket-backed stream transport ([`fd`]).
//!
//! It is a leaf: it knows sockets and [`Stream`](crate::stream::Stream), and
//! nothing of the URLs' schemes or of the transports built on it.

pub(crate) mod fd;

use crate::error::{Error, Result};
use crate::sys;
use crate::url::UnixPath;
use socket2::{Domain, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

pub(crate) use fd::Kind;

/// Which addresses of a name to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Family {
    /// Every address the resolver gives, in its order.
    #[default]
    Any,
    /// IPv4 addresses only.
    Ipv4,
    /// IPv6 addresses only.
    Ipv6,
}

impl Family {
    fn admits(self, addr: &SocketAddr) -> bool {
        match self {
            Family::Any => true,
            Family::Ipv4 => addr.is_ipv4(),
            Family::Ipv6 => addr.is_ipv6(),
        }
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
    sys::spawn("jw-resolve", move || {
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

/// Resolves `host:port` and connects a socket of `kind` to the first of its
/// addresses in `family` that accepts, all bounded by `deadline`. The one
/// rule: a timeout ends the attempt at once ([`Error::Timeout`]); any other
/// failure moves on to the next address, and when none is left the last
/// failure is the result. A datagram socket "connects" without a round trip,
/// so the first address always wins.
pub(crate) fn connect_host(
    host: &str,
    port: u16,
    kind: Kind,
    family: Family,
    deadline: Option<Instant>,
    name: &str,
) -> Result<Socket> {
    let mut last = None;
    for addr in resolve(host, port, deadline, name)? {
        if !family.admits(&addr) {
            continue;
        }
        let r = match kind {
            Kind::Bytes => connect(Domain::for_address(addr), &addr.into(), deadline, name),
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
    Err(last.unwrap_or_else(|| {
        let family = match family {
            Family::Any => "",
            Family::Ipv4 => "IPv4 ",
            Family::Ipv6 => "IPv6 ",
        };
        Error::Connection(format!("{name}: {host} has no {family}address"))
    }))
}

/// Connects a stream socket to a Unix path or abstract name, bounded by
/// `deadline`.
pub(crate) fn connect_unix(
    path: &UnixPath,
    deadline: Option<Instant>,
    name: &str,
) -> Result<Socket> {
    connect(Domain::UNIX, &unix_addr(path, name)?, deadline, name)
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

/// A non-blocking stream connect to one address, bounded by `deadline`.
pub(crate) fn connect(
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

/// A listening, non-blocking stream socket bound to `addr`.
pub(crate) fn bind(domain: Domain, addr: &SockAddr, name: &str) -> Result<Socket> {
    let sock = Socket::new(domain, Type::STREAM, None).map_err(|e| Error::io(name, &e))?;
    if domain != Domain::UNIX {
        sock.set_reuse_address(true)
            .map_err(|e| Error::io(name, &e))?;
    }
    sock.bind(addr)
        .map_err(|e| Error::Io(format!("{name}: cannot bind: {e}")))?;
    sock.listen(1024).map_err(|e| Error::io(name, &e))?;
    sock.set_nonblocking(true)
        .map_err(|e| Error::io(name, &e))?;
    Ok(sock)
}

/// A listening TCP socket on the first address of `host` (port 0: a free
/// one), and the address it is bound to.
pub(crate) fn listen_tcp(host: &str, port: u16, name: &str) -> Result<(Socket, SocketAddr)> {
    let addr = resolve(host, port, None, name)?[0];
    let sock = bind(Domain::for_address(addr), &addr.into(), name)?;
    let local = sock
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or_else(|| Error::Internal("listener has no local address".into()))?;
    Ok((sock, local))
}

/// `tcp://127.0.0.1:PORT` or `tcp://[::1]:PORT`.
pub(crate) fn tcp_address(a: SocketAddr) -> String {
    format!("tcp://{a}")
}

/// `HOST:PORT` with the host resolved to an IP address where possible and IPv6
/// in brackets, as upstream `_format_address` does.
pub(crate) fn format_address(host: &str, port: u16) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn connecting_tries_each_address_of_the_family_and_names_the_last_failure() {
        // Nothing listens on a fresh port: bind one, note it, close it.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let name = format!("tcp://127.0.0.1:{port}");
        let soon = Some(Instant::now() + Duration::from_secs(5));
        let r = connect_host("127.0.0.1", port, Kind::Bytes, Family::Any, soon, &name);
        assert!(
            matches!(&r, Err(Error::Connection(m)) if m.starts_with(&name)),
            "{r:?}"
        );
        // An IPv4 literal has no IPv6 address.
        let r = connect_host("127.0.0.1", port, Kind::Bytes, Family::Ipv6, soon, &name);
        assert_eq!(
            r.err(),
            Some(Error::Connection(format!(
                "{name}: 127.0.0.1 has no IPv6 address"
            )))
        );
        // A listener accepts.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let s = connect_host("127.0.0.1", port, Kind::Bytes, Family::Ipv4, soon, "t").unwrap();
        assert_eq!(s.peer_addr().unwrap().as_socket().unwrap().port(), port);
    }

    #[test]
    fn addresses_format_with_brackets_for_ipv6() {
        assert_eq!(format_address("127.0.0.1", 1), "127.0.0.1:1");
        assert_eq!(format_address("::1", 2), "[::1]:2");
        assert_eq!(
            tcp_address(SocketAddr::from(([127, 0, 0, 1], 3))),
            "tcp://127.0.0.1:3"
        );
    }
}
