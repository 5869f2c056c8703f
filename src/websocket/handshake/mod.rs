//! The opening handshake (RFC 6455 section 4): the client's
//! ([`client`]: `connect`) and the server's ([`server`]: `accept`), on
//! `httparse` and tungstenite's key helpers, and the HTTP reading both share.

mod client;
mod server;

pub(crate) use client::connect;
pub use server::accept;
pub(crate) use server::{Policy, accept_shared, accept_with};

use crate::error::{Error, Result};
use crate::stream::Stream;
use std::time::Instant;

/// Largest handshake request or response head we read.
const MAX_HEAD: usize = 16 << 10;

/// Reads an HTTP head (up to the blank line) from `s`: the head and the bytes
/// that came after it.
fn read_head(s: &Stream, deadline: Option<Instant>, name: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(p + 4);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(Error::Protocol(format!(
                "{name}: handshake head longer than {MAX_HEAD} bytes"
            )));
        }
        match s.receive_until(&mut chunk, deadline)? {
            Some(n) => buf.extend_from_slice(&chunk[..n]),
            None => {
                return Err(Error::Connection(format!(
                    "{name}: connection closed during the handshake"
                )));
            }
        }
    }
}

/// The value of the first header called `name` (case-insensitively).
fn header<'a>(headers: &'a [httparse::Header<'_>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// Whether a comma-separated header value lists `token` (case-insensitively).
fn has_token(value: Option<&[u8]>, token: &str) -> bool {
    value
        .and_then(|v| std::str::from_utf8(v).ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}
