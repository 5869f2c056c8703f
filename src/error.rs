//! The one error type of jumpwire.
//!
//! Every fallible function of the Rust API returns [`Result`]. Each variant's
//! documentation says when it happens and what a caller can do about it. The C
//! boundary maps each variant onto one `jw_status` code (see `src/ffi/error.rs`);
//! nothing else in the crate knows about status codes.

use std::fmt;
use std::io;

/// `Result` with jumpwire's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in jumpwire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// An argument was malformed: a bad URL, an unknown option, a negative
    /// timeout, a NULL pointer. Fix the argument; retrying will not help.
    InvalidArgument(String),
    /// The deadline passed before the operation could complete. Nothing was
    /// consumed or sent; the stream is unchanged and the call may be repeated.
    Timeout,
    /// An operating-system I/O failure that is not about the peer (for example
    /// creating a socket or binding a listener).
    Io(String),
    /// The peer refused, reset or dropped the connection, or could not be
    /// reached. The stream is unusable for the direction that failed.
    Connection(String),
    /// The stream or object was closed by this side (`close`, or a send after
    /// `send_eof`).
    Closed(String),
    /// The endpoint or operation is not supported (yet) by this build.
    Unsupported(String),
    /// The peer broke the protocol of the transport (a bad frame or handshake).
    Protocol(String),
    /// The peer refused our credentials.
    Unauthenticated(String),
    /// The operation is disabled by configuration (`enable_address=false`).
    Disabled(String),
    /// A message or buffer is larger than the transport or the caller's buffer
    /// allows.
    TooLarge(String),
    /// A bug in jumpwire (a caught panic, a broken invariant). Please report it.
    Internal(String),
}

impl Error {
    /// Wraps an I/O error that happened while talking to `endpoint`, choosing
    /// [`Error::Connection`] for peer-related failures and [`Error::Io`] for
    /// local ones.
    pub fn io(context: impl fmt::Display, err: &io::Error) -> Error {
        use io::ErrorKind::*;
        let text = format!("{context}: {err}");
        match err.kind() {
            TimedOut | WouldBlock => Error::Timeout,
            ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected | BrokenPipe
            | UnexpectedEof | HostUnreachable | NetworkUnreachable | AddrNotAvailable
            | NetworkDown => Error::Connection(text),
            _ => match err.raw_os_error() {
                Some(libc::ENODEV | libc::EHOSTDOWN | libc::ENXIO | libc::ECONNREFUSED) => {
                    Error::Connection(text)
                }
                _ => Error::Io(text),
            },
        }
    }

    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::InvalidArgument(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::Timeout => f.write_str("timed out"),
            Error::Io(m) => write!(f, "I/O error: {m}"),
            Error::Connection(m) => write!(f, "connection error: {m}"),
            Error::Closed(m) => write!(f, "closed: {m}"),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
            Error::Protocol(m) => write!(f, "protocol error: {m}"),
            Error::Unauthenticated(m) => write!(f, "unauthenticated: {m}"),
            Error::Disabled(m) => write!(f, "disabled: {m}"),
            Error::TooLarge(m) => write!(f, "too large: {m}"),
            Error::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_split_into_peer_and_local_failures() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert!(
            matches!(Error::io("tcp://h:1", &refused), Error::Connection(m) if m.starts_with("tcp://h:1: "))
        );
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(matches!(Error::io("bind", &denied), Error::Io(_)));
        let timed = io::Error::from(io::ErrorKind::TimedOut);
        assert_eq!(Error::io("x", &timed), Error::Timeout);
        let nodev = io::Error::from_raw_os_error(libc::ENODEV);
        assert!(matches!(
            Error::io("vsock://1:9", &nodev),
            Error::Connection(_)
        ));
    }

    #[test]
    fn display_names_the_kind() {
        assert_eq!(
            Error::invalid("bad port").to_string(),
            "invalid argument: bad port"
        );
        assert_eq!(Error::Timeout.to_string(), "timed out");
    }
}
