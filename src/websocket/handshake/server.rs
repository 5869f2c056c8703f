//! The server side of the websocket handshake (RFC 6455 section 4.2): the
//! upgrade request is read and checked, the subprotocol chosen, the `Origin`
//! checked against an allow-list, and the answer sent: `101 Switching
//! Protocols`, or a refusal (400, 403, 431, 503) that is logged and counted.

use super::{MAX_HEAD, has_token, header, read_head};
use crate::error::{Error, Result};
use crate::stream::Stream;
use crate::websocket::conn::{Limits, Ws, wrap};
use crate::websocket::counters::Counters;
use crate::websocket::frame::Role;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a refusal may wait for room to send (the socket is new: its send
/// buffer is empty unless the client does not read at all).
const REFUSAL_SEND: Duration = Duration::from_millis(100);

/// The subprotocol a server answers unless told otherwise: `binary`, what
/// noVNC offers (every message our servers send is binary).
pub(crate) const DEFAULT_PROTOCOL: &str = "binary";

/// What a server asks of a client's handshake beyond RFC 6455.
#[derive(Clone, Copy, Default)]
pub(crate) struct Policy<'a> {
    /// The subprotocols answered: the first of the client's offers that is
    /// in this list is; none if none is.
    pub protocols: &'a [String],
    /// The `Origin` values allowed; `None`: any (or none).
    pub origins: Option<&'a [String]>,
    /// Asked once the request is good, before it is answered: `false`
    /// refuses it with HTTP 503 (the server is serving all it may; the
    /// server counts that).
    pub admit: Option<&'a (dyn Fn() -> bool + Sync)>,
    /// Where refusals are counted (and, later, the connection's protocol
    /// violations).
    pub counters: Option<&'a Arc<Counters>>,
}

/// Turns `raw` (a byte stream from a websocket client: a TCP connection, a
/// stream that came through the router) into a websocket server connection:
/// reads the upgrade request and answers it, waiting at most until `deadline`
/// for it. A request that is not a websocket upgrade is answered with HTTP 400
/// and the stream is closed. The `binary` subprotocol is answered when the
/// client offers it. The request path (with its query) is kept:
/// [`request_path`](crate::websocket::request_path).
pub fn accept(raw: Stream, deadline: Option<Instant>, limits: Limits) -> Result<Stream> {
    accept_shared(Arc::new(raw), deadline, limits).map(|(s, _)| s)
}

/// [`accept`] for a stream that other holders may still reference (the C
/// handle): they keep a closed stream once this fails.
pub(crate) fn accept_shared(
    raw: Arc<Stream>,
    deadline: Option<Instant>,
    limits: Limits,
) -> Result<(Stream, Arc<Ws>)> {
    let protocols = [DEFAULT_PROTOCOL.to_string()];
    let policy = Policy {
        protocols: &protocols,
        ..Policy::default()
    };
    accept_with(raw, deadline, limits, &policy)
}

/// Why a handshake was refused: what the client is told and what is counted.
struct Refusal {
    status: &'static str,
    why: String,
}

/// [`accept_shared`] with a server's policy: subprotocols, allowed origins,
/// admission, counters. Every refusal is logged and counted; the stream is
/// closed.
pub(crate) fn accept_with(
    raw: Arc<Stream>,
    deadline: Option<Instant>,
    limits: Limits,
    policy: &Policy<'_>,
) -> Result<(Stream, Arc<Ws>)> {
    let name = raw.name().to_string();
    let count = |c: fn(&Counters) -> &AtomicU64| -> u64 {
        policy
            .counters
            .map_or(0, |k| c(k).fetch_add(1, Ordering::Relaxed) + 1)
    };
    let (head, rest) = match read_head(&raw, deadline, &name) {
        Ok(x) => x,
        Err(e) => {
            let (what, n) = match &e {
                Error::Protocol(_) => {
                    let body = format!("the request head is longer than {MAX_HEAD} bytes\n");
                    refuse(&raw, "431 Request Header Fields Too Large", &body);
                    (
                        "a request head that is too long",
                        count(|c| &c.bad_requests),
                    )
                }
                Error::Timeout => ("no complete request in time", count(|c| &c.unfinished)),
                // Ended by the server: evicted (counted then) or closing.
                Error::Closed(_) => ("the server ended it", 0),
                _ => ("the client left", count(|c| &c.unfinished)),
            };
            log::info!("{name}: handshake refused: {what} ({n} so far): {e}");
            raw.close();
            return Err(e);
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = matches!(req.parse(&head), Ok(httparse::Status::Complete(_)));
    let key = header(req.headers, "sec-websocket-key");
    let problem = if !parsed {
        Some("the request is not HTTP")
    } else if req.method != Some("GET") {
        Some("the method is not GET")
    } else if !has_token(header(req.headers, "upgrade"), "websocket")
        || !has_token(header(req.headers, "connection"), "upgrade")
    {
        Some("not a websocket upgrade request")
    } else if header(req.headers, "sec-websocket-version") != Some(b"13") {
        Some("unsupported Sec-WebSocket-Version (expected 13)")
    } else if key.is_none_or(|k| k.is_empty()) {
        Some("Sec-WebSocket-Key is missing")
    } else {
        None
    };
    let refusal = if let Some(problem) = problem {
        let n = count(|c| &c.bad_requests);
        Some((
            Refusal {
                status: "400 Bad Request",
                why: problem.to_string(),
            },
            n,
        ))
    } else if let Some(why) = policy.origins.and_then(|o| origin_refused(req.headers, o)) {
        Some((
            Refusal {
                status: "403 Forbidden",
                why,
            },
            count(|c| &c.forbidden),
        ))
    } else if policy.admit.is_some_and(|admit| !admit()) {
        Some((
            Refusal {
                status: "503 Service Unavailable",
                why: "the server is serving all the connections it may".into(),
            },
            0,
        ))
    } else {
        None
    };
    if let Some((r, n)) = refusal {
        let so_far = if n > 0 {
            format!(" ({n} so far)")
        } else {
            String::new()
        };
        log::info!(
            "{name}: handshake refused with HTTP {}: {}{so_far}",
            r.status,
            r.why
        );
        refuse(&raw, r.status, &format!("{}\n", r.why));
        raw.close();
        return Err(if r.status.starts_with("400") {
            Error::Protocol(format!("{name}: bad handshake: {}", r.why))
        } else {
            Error::Connection(format!("{name}: handshake refused: {}", r.why))
        });
    }
    let accept = tungstenite::handshake::derive_accept_key(key.unwrap_or_default());
    let path = req.path.unwrap_or("/").to_string();
    let protocol = match choose_protocol(req.headers, policy.protocols) {
        Some(p) => format!("Sec-WebSocket-Protocol: {p}\r\n"),
        None => String::new(),
    };
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n{protocol}\r\n"
    );
    if let Err(e) = raw.send_until(resp.as_bytes(), deadline) {
        raw.close();
        return Err(e);
    }
    let (stream, ws) = wrap(raw, name, Role::Server, limits, Some(path), rest);
    if let Some(c) = policy.counters {
        ws.count_violations(c.clone());
    }
    Ok((stream, ws))
}

/// Sends an HTTP refusal (bounded: the client may not read).
fn refuse(raw: &Stream, status: &str, body: &str) {
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Sec-WebSocket-Version: 13\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = raw.send_until(resp.as_bytes(), Some(Instant::now() + REFUSAL_SEND));
}

/// The subprotocol to answer: the first of the client's offers (every
/// `Sec-WebSocket-Protocol` header, comma-separated) that is in `ours`.
fn choose_protocol<'a>(headers: &[httparse::Header<'_>], ours: &'a [String]) -> Option<&'a str> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-protocol"))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|offer| ours.iter().find(|p| *p == offer))
        .map(String::as_str)
}

/// Why the request's `Origin` is refused by the allow-list, if it is.
fn origin_refused(headers: &[httparse::Header<'_>], allowed: &[String]) -> Option<String> {
    let Some(origin) = header(headers, "origin") else {
        return Some("the request has no Origin and origins are restricted".into());
    };
    let origin = String::from_utf8_lossy(origin);
    let origin = origin.trim();
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        None
    } else {
        Some(format!("Origin {origin:?} is not allowed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<'a>(name: &'a str, value: &'a str) -> httparse::Header<'a> {
        httparse::Header {
            name,
            value: value.as_bytes(),
        }
    }

    #[test]
    fn the_first_offer_we_support_is_answered() {
        let ours = ["binary".to_string(), "base64".to_string()];
        let offers = [
            h("Sec-WebSocket-Protocol", "chat, base64"),
            h("sec-websocket-protocol", "binary"),
        ];
        assert_eq!(choose_protocol(&offers, &ours), Some("base64"));
        let offers = [h("Sec-WebSocket-Protocol", "binary,base64")];
        assert_eq!(choose_protocol(&offers, &ours), Some("binary"));
        let offers = [h("Sec-WebSocket-Protocol", "chat")];
        assert_eq!(choose_protocol(&offers, &ours), None);
        assert_eq!(choose_protocol(&[], &ours), None);
        let offers = [h("Sec-WebSocket-Protocol", "binary")];
        assert_eq!(choose_protocol(&offers, &[]), None);
        // Names are compared exactly (RFC 6455: case-sensitive tokens).
        let offers = [h("Sec-WebSocket-Protocol", "Binary")];
        assert_eq!(choose_protocol(&offers, &ours), None);
    }

    #[test]
    fn origins_outside_the_list_are_refused() {
        let allowed = ["http://a".to_string(), "https://b:8443".to_string()];
        assert_eq!(origin_refused(&[h("Origin", "http://a")], &allowed), None);
        assert_eq!(
            origin_refused(&[h("origin", "HTTPS://B:8443")], &allowed),
            None
        );
        assert!(origin_refused(&[h("Origin", "http://evil")], &allowed).is_some());
        assert!(origin_refused(&[h("Origin", "http://a:80")], &allowed).is_some());
        assert!(origin_refused(&[], &allowed).is_some());
    }
}
