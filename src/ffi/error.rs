//! `jw_status` and the mapping from [`Error`] to it: the only place that knows
//! about status codes.

use crate::error::Error;
use std::ffi::c_char;

/// What every jumpwire C function returns. Zero and positive values are
/// outcomes (`JW_OK`, end of stream, timeout); negative values are failures,
/// whose text `jw_last_error()` gives on the same thread. New codes are added at
/// the end of their range; none is ever renumbered or removed.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum jw_status {
    /// Success.
    JW_OK = 0,
    /// End of stream: the peer has finished and every byte before was delivered.
    JW_EOF = 1,
    /// The timeout passed first; nothing was sent or consumed.
    JW_TIMEOUT = 2,
    /// A NULL or malformed argument (bad URL, unknown option, negative timeout
    /// other than -1, zero capacity, ...).
    JW_ERR_INVALID_ARGUMENT = -1,
    /// A local I/O failure (creating or binding a socket, ...).
    JW_ERR_IO = -2,
    /// The peer refused, reset or dropped the connection, or is unreachable.
    JW_ERR_CONNECTION = -3,
    /// The object was closed by this side, or a send followed `jw_stream_send_eof`.
    JW_ERR_CLOSED = -4,
    /// Not supported by this endpoint or build.
    JW_ERR_UNSUPPORTED = -5,
    /// The peer broke the transport's protocol.
    JW_ERR_PROTOCOL = -6,
    /// The peer refused our credentials.
    JW_ERR_UNAUTHENTICATED = -7,
    /// Disabled by configuration (`enable_address=false`).
    JW_ERR_DISABLED = -8,
    /// A message or result does not fit (the caller's buffer, a datagram).
    JW_ERR_TOO_LARGE = -9,
    /// A bug in jumpwire (for example a caught panic). Please report it.
    JW_ERR_INTERNAL = -99,
}

pub(crate) fn status_of(e: &Error) -> jw_status {
    use jw_status::*;
    match e {
        Error::InvalidArgument(_) => JW_ERR_INVALID_ARGUMENT,
        Error::Timeout => JW_TIMEOUT,
        Error::Io(_) => JW_ERR_IO,
        Error::Connection(_) => JW_ERR_CONNECTION,
        Error::Closed(_) => JW_ERR_CLOSED,
        Error::Unsupported(_) => JW_ERR_UNSUPPORTED,
        Error::Protocol(_) => JW_ERR_PROTOCOL,
        Error::Unauthenticated(_) => JW_ERR_UNAUTHENTICATED,
        Error::Disabled(_) => JW_ERR_DISABLED,
        Error::TooLarge(_) => JW_ERR_TOO_LARGE,
        Error::Internal(_) => JW_ERR_INTERNAL,
    }
}

/// A fixed, NUL-terminated description of `status` (any integer; unknown codes
/// get "unknown status"). The string is static: never free it.
///
/// Takes an `int` rather than a `jw_status` so that any value a C caller passes
/// is defined behaviour.
#[unsafe(no_mangle)]
pub extern "C" fn jw_status_str(status: std::ffi::c_int) -> *const c_char {
    let s: &'static [u8] = match status {
        0 => b"ok\0",
        1 => b"end of stream\0",
        2 => b"timed out\0",
        -1 => b"invalid argument\0",
        -2 => b"I/O error\0",
        -3 => b"connection error\0",
        -4 => b"closed\0",
        -5 => b"unsupported\0",
        -6 => b"protocol error\0",
        -7 => b"unauthenticated\0",
        -8 => b"disabled\0",
        -9 => b"too large\0",
        -99 => b"internal error\0",
        _ => b"unknown status\0",
    };
    s.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn every_status_has_a_fixed_text() {
        let text = |s: i32| {
            // SAFETY: jw_status_str returns a static NUL-terminated string for
            // any value.
            unsafe { CStr::from_ptr(jw_status_str(s)) }
                .to_str()
                .unwrap()
        };
        assert_eq!(text(jw_status::JW_OK as i32), "ok");
        assert_eq!(text(jw_status::JW_ERR_TOO_LARGE as i32), "too large");
        assert_eq!(text(12345), "unknown status");
        assert_eq!(status_of(&Error::Timeout), jw_status::JW_TIMEOUT);
    }
}
