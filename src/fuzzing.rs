//! Entry points for the fuzz targets in `fuzz/` (not part of the API, hidden
//! from the docs): thin wrappers that reach parsers the crate keeps to
//! itself. Each calls the parser exactly as the library does; nothing here
//! parses on its own.
//!
//! The URL parsers, the websocket handshake ([`websocket::accept`]) and the
//! router are public already; the targets use them directly.
//!
//! [`websocket::accept`]: crate::websocket::accept

use crate::error::{Error, Result};
use crate::network::dbus;
use crate::router::token;
use crate::socket::{Family, Kind, fd};
use crate::stream::Stream;
use crate::url::UnixPath;
use crate::websocket::{self, Limits, Role};
use socket2::{Domain, Socket, Type};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

/// Parses a D-Bus address (list) as `dbus:ADDRESS` endpoints and the bus
/// environment variables are parsed, and returns each entry written back
/// canonically (`unix:path=P`, `unix:abstract=N`,
/// `tcp:host=H,port=N[,family=ipv4|ipv6]`, values escaped as libdbus
/// escapes them), so that a target can check that parsing that again gives
/// the same entries.
///
/// # Errors
///
/// [`Error::InvalidArgument`] for a malformed address, as the driver reports it.
pub fn dbus_address(s: &str) -> Result<Vec<String>> {
    let entries = dbus::parse_address(s)?;
    Ok(entries
        .iter()
        .map(|e| match &e.transport {
            dbus::BusTransport::Unix(UnixPath::Path(p)) => {
                format!("unix:path={}", dbus::escape(p.as_os_str().as_bytes()))
            }
            dbus::BusTransport::Unix(UnixPath::Abstract(n)) => {
                format!("unix:abstract={}", dbus::escape(n.as_bytes()))
            }
            dbus::BusTransport::Tcp { host, port, family } => {
                let family = match family {
                    Family::Any => "",
                    Family::Ipv4 => ",family=ipv4",
                    Family::Ipv6 => ",family=ipv6",
                };
                format!(
                    "tcp:host={},port={port}{family}",
                    dbus::escape(host.as_bytes())
                )
            }
        })
        .collect())
}

/// The router's check of a stream token: the stream (`sub`) it names, or why
/// it is refused.
///
/// # Errors
///
/// The refusal reason, as the router logs it.
pub fn validate_token(token: &str, key: &[u8]) -> std::result::Result<String, String> {
    token::validate(token, key)
}

/// Everything a test's end of a connection can still read: the bytes up to
/// EOF, or up to a reset. The library closing with input it never read is a
/// reset, which a Unix socket reports (`ECONNRESET`) after the bytes queued
/// before it.
pub fn read_to_end_or_reset(peer: &mut impl std::io::Read) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match peer.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(out),
        Err(e) => Err(e),
    }
}

/// A connected pair of Unix stream sockets: a jumpwire byte [`Stream`] over
/// one end (as a TCP connection would be) and the plain other end, for
/// feeding a parser bytes and reading what it answers.
///
/// # Errors
///
/// [`Error::Io`] when the sockets cannot be made.
pub fn unix_pair() -> Result<(Stream, UnixStream)> {
    let (ours, theirs) =
        Socket::pair(Domain::UNIX, Type::STREAM, None).map_err(|e| Error::io("socketpair", &e))?;
    let stream = fd::stream(ours, "fuzz:".into(), Kind::Bytes)?;
    Ok((stream, UnixStream::from(std::os::fd::OwnedFd::from(theirs))))
}

/// A websocket connection over `raw` whose handshake is over: frames from
/// the peer are parsed as a server (`server`: the peer is a client, its
/// frames must be masked) or a client parses them.
pub fn websocket_over(raw: Stream, server: bool, limits: Limits) -> Stream {
    let role = if server { Role::Server } else { Role::Client };
    let name = raw.name().to_string();
    websocket::wrap(Arc::new(raw), name, role, limits, None, Vec::new()).0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    #[test]
    fn dbus_entries_come_back_canonical() {
        assert_eq!(
            dbus_address("unix:path=/a%20b,guid=1;tcp:host=h,port=05,family=ipv6;").unwrap(),
            ["unix:path=/a%20b", "tcp:host=h,port=5,family=ipv6"]
        );
        assert!(dbus_address("tcp:host=::1,port=1").is_err());
    }

    #[test]
    fn a_minted_token_names_its_stream() {
        let t = token::mint("k", "s", Duration::from_secs(60)).unwrap();
        assert_eq!(validate_token(&t, b"k").as_deref(), Ok("s"));
        assert!(validate_token(&t, b"j").is_err());
    }

    #[test]
    fn a_websocket_over_a_socket_pair_parses_what_the_peer_wrote() {
        let (raw, mut peer) = unix_pair().unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let ws = websocket_over(raw, false, Limits::default());
        // A binary message and a close frame, unmasked: from a server.
        peer.write_all(&[0x82, 2, b'h', b'i', 0x88, 0]).unwrap();
        let mut buf = [0u8; 8];
        let timeout = Some(Duration::from_secs(10));
        assert_eq!(ws.receive(&mut buf, timeout), Ok(Some(2)));
        assert_eq!(&buf[..2], b"hi");
        assert_eq!(ws.receive(&mut buf, timeout), Ok(None));
        drop(ws);
        // Our answer: the close echoed (1000), masked as a client's frames are.
        let mut out = Vec::new();
        peer.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 8, "{out:?}");
        assert_eq!(&out[..2], &[0x88, 0x82]);
        let mask = &out[2..6];
        assert_eq!([out[6] ^ mask[0], out[7] ^ mask[1]], [0x03, 0xE8]);
    }
}
