//! The client side (RFC 6455 section 4.1): a TCP connection (TLS for
//! `wss://`), the upgrade request, and the server's answer checked: `101`,
//! the accept key, and a subprotocol we offered if any.

use super::{has_token, header, read_head};
use crate::error::{Error, Result};
use crate::socket::{self, Family, Kind, fd};
use crate::stream::Stream;
use crate::url::WebsocketConfig;
use crate::websocket::conn::{Limits, wrap};
use crate::websocket::frame::Role;
use crate::websocket::tls;
use std::sync::Arc;
use std::time::Instant;

/// Opens a websocket client stream (`ws://`, `wss://`).
pub(crate) fn connect(
    cfg: &WebsocketConfig,
    name: &str,
    deadline: Option<Instant>,
) -> Result<Stream> {
    if cfg.secure {
        let config = crate::tls::client_config(cfg.ca.as_deref(), cfg.insecure, name, "#ca")?;
        let sock = connect_tcp(&cfg.host, cfg.port, deadline, name)?;
        let raw = tls::connect(sock, &cfg.host, config, name.to_string(), deadline)?;
        return handshake(Arc::new(raw), cfg, name, deadline);
    }
    let sock = connect_tcp(&cfg.host, cfg.port, deadline, name)?;
    let raw = fd::stream(sock, name.to_string(), Kind::Bytes)?;
    handshake(Arc::new(raw), cfg, name, deadline)
}

/// A TCP connection to `host:port` (each address in turn), bounded by
/// `deadline`.
fn connect_tcp(
    host: &str,
    port: u16,
    deadline: Option<Instant>,
    name: &str,
) -> Result<socket2::Socket> {
    let s = socket::connect_host(host, port, Kind::Bytes, Family::Any, deadline, name)?;
    let _ = s.set_tcp_nodelay(true);
    Ok(s)
}

/// The client handshake over an open byte stream.
fn handshake(
    raw: Arc<Stream>,
    cfg: &WebsocketConfig,
    name: &str,
    deadline: Option<Instant>,
) -> Result<Stream> {
    let key = tungstenite::handshake::client::generate_key();
    let offer = if cfg.protocols.is_empty() {
        String::new()
    } else {
        format!("Sec-WebSocket-Protocol: {}\r\n", cfg.protocols.join(", "))
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
         {offer}User-Agent: jumpwire/{}\r\n\r\n",
        cfg.request_target(),
        cfg.authority(),
        env!("CARGO_PKG_VERSION")
    );
    raw.send_until(request.as_bytes(), deadline)?;
    let (head, rest) = read_head(&raw, deadline, name)?;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => {
            return Err(Error::Protocol(format!(
                "{name}: the handshake response is not HTTP"
            )));
        }
    }
    let code = resp.code.unwrap_or(0);
    if code != 101 {
        return Err(Error::Connection(format!(
            "{name}: the server refused the websocket upgrade: HTTP {code} {}",
            resp.reason.unwrap_or("")
        )));
    }
    let want = tungstenite::handshake::derive_accept_key(key.as_bytes());
    if !has_token(header(resp.headers, "upgrade"), "websocket")
        || header(resp.headers, "sec-websocket-accept") != Some(want.as_bytes())
    {
        return Err(Error::Protocol(format!(
            "{name}: the server's handshake response is not a valid websocket upgrade"
        )));
    }
    // RFC 6455 section 4.1: a subprotocol we did not offer fails the
    // connection; none answered is the server's choice.
    if let Some(chosen) = header(resp.headers, "sec-websocket-protocol") {
        let chosen = String::from_utf8_lossy(chosen);
        if !cfg.protocols.iter().any(|p| *p == chosen.trim()) {
            return Err(Error::Protocol(format!(
                "{name}: the server chose the subprotocol {chosen:?}, which was not offered"
            )));
        }
    }
    Ok(wrap(
        raw,
        name.to_string(),
        Role::Client,
        Limits::default(),
        None,
        rest,
    )
    .0)
}
