//! Websockets: client streams (`ws://`) and the server handshake over any
//! [`Stream`] ([`accept`]).
//!
//! The handshake uses `tungstenite`'s key helpers and `httparse`; the framing
//! (RFC 6455) is done here, directly on the underlying byte stream, so that a
//! websocket stream keeps every property of [`Stream`]:
//! - a send builds one whole frame (header and masked payload) and hands it to
//!   the underlying stream's all-or-nothing `send`: frames never interleave,
//!   and a send that times out sent nothing;
//! - a receive parses frames on the caller's thread from the bytes the
//!   underlying stream delivers, keeping a partly received frame across calls
//!   (a timeout consumes nothing that is lost), and answers pings and close
//!   frames as it meets them;
//! - one thread may send while another receives (the underlying stream allows
//!   it; a pong goes out between two frames of the sender).
//!
//! No thread sits on the data path, so a round trip costs what it costs on the
//! socket plus the framing. Pings are answered while someone receives (as in
//! every blocking websocket library); a stream nobody reads from does not
//! answer pings.

pub(crate) mod bridge;
mod handshake;
mod server;
mod tls;

pub(crate) use handshake::{Counters, Policy, accept_shared, accept_with};
pub use handshake::{RefusalStats, accept};
pub(crate) use server::bind as bind_listener;
pub use server::{Handler, Server, ServerConfig};

use crate::error::{Error, Result};
use crate::socket::{self, Family, Kind, fd};
use crate::stream::{Stream, Transport};
use crate::url::WebsocketConfig;
use crate::util::lock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Default largest message (and frame) accepted from a peer: 16 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 16 << 20;
/// Largest handshake request or response head we read.
pub(crate) const MAX_HEAD: usize = 16 << 10;
/// How long `close` waits for the peer's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// How long answering a ping may wait for room to send.
const CONTROL_SEND: Duration = Duration::from_secs(5);
/// How long `close` may wait for room to send its close frame (behind
/// another thread's send, or a peer that does not read): past it the peer
/// counts as gone and the connection is cut without the frame.
const CLOSE_SEND: Duration = Duration::from_millis(50);
/// How long answering the peer's close frame may wait for room to send.
const CLOSE_ECHO: Duration = Duration::from_secs(1);
/// Masking keys drawn from the OS generator at a time, per connection (4
/// bytes each): one `getrandom` per 64 client frames.
const MASK_POOL: usize = 256;
/// The largest send buffer kept between sends.
const KEEP_SEND_BUF: usize = 128 << 10;
/// Messages at least this large that fit the caller's buffer are read
/// straight into it.
const DIRECT_MIN: usize = 16 << 10;
/// How much the receiver reads from the underlying stream at a time.
const READ_CHUNK: usize = 64 << 10;

const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Close codes (RFC 6455 section 7.4.1).
pub(crate) const CLOSE_NORMAL: u16 = 1000;
pub(crate) const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_PROTOCOL: u16 = 1002;
pub(crate) const CLOSE_POLICY: u16 = 1008;
const CLOSE_INVALID_DATA: u16 = 1007;
const CLOSE_TOO_BIG: u16 = 1009;
pub(crate) const CLOSE_INTERNAL: u16 = 1011;

/// Size limits of one websocket connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message accepted from the peer (bytes).
    pub max_message: usize,
    /// Largest single frame accepted from the peer (bytes).
    pub max_frame: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message: DEFAULT_MAX_MESSAGE,
            max_frame: DEFAULT_MAX_MESSAGE,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Role {
    Client,
    Server,
}

/// The receiving side's state.
#[derive(Default)]
struct Recv {
    /// Bytes read from the underlying stream: `buf[start..filled]` is not
    /// parsed yet (the rest of `buf` is room to read into).
    buf: Vec<u8>,
    start: usize,
    filled: usize,
    /// The message being assembled from fragments: opcode and payload.
    partial: Option<(u8, Vec<u8>)>,
    /// The message being delivered and how far.
    current: Option<(Vec<u8>, usize)>,
    /// Set once the receiving direction ended: `None` inside = EOF.
    end: Option<Option<Error>>,
}

pub(crate) struct Ws {
    inner: Arc<Stream>,
    name: String,
    role: Role,
    limits: Limits,
    path: Option<String>,
    recv: Mutex<Recv>,
    close_sent: AtomicBool,
    /// Random bytes for the masking keys of a client's frames.
    masks: Mutex<MaskPool>,
    /// Where a server counts the connection's protocol violations.
    violations: std::sync::OnceLock<Arc<Counters>>,
    /// The frames of the last send, kept to be reused (data sends are
    /// serialised by the stream, so this lock is rarely contended).
    send_buf: Mutex<Vec<u8>>,
}

/// Masking keys (RFC 6455 section 5.3: unpredictable, from a strong source
/// of entropy): bytes of the OS generator, refilled in bulk.
struct MaskPool {
    bytes: [u8; MASK_POOL],
    used: usize,
}

impl MaskPool {
    /// An empty pool: the first key fills it (servers never do).
    fn new() -> MaskPool {
        MaskPool {
            bytes: [0; MASK_POOL],
            used: MASK_POOL,
        }
    }

    fn next(&mut self) -> std::result::Result<[u8; 4], getrandom::Error> {
        if self.used + 4 > MASK_POOL {
            getrandom::fill(&mut self.bytes)?;
            self.used = 0;
        }
        let mut m = [0u8; 4];
        m.copy_from_slice(&self.bytes[self.used..self.used + 4]);
        self.used += 4;
        Ok(m)
    }
}

/// The meaning of a close frame's code for the side that receives it: 1000
/// (normal), 1001 (going away) and a close frame without a code end the
/// stream (EOF); any other code is an error carrying the code and reason, as
/// Python `websockets` tells `ConnectionClosedOK` from `ConnectionClosedError`.
fn closed_by_peer(name: &str, code: Option<u16>, reason: &str) -> Option<Error> {
    match code {
        None | Some(CLOSE_NORMAL | CLOSE_GOING_AWAY) => None,
        Some(code) if reason.is_empty() => Some(Error::Connection(format!(
            "{name}: the peer closed the websocket with code {code}"
        ))),
        Some(code) => Some(Error::Connection(format!(
            "{name}: the peer closed the websocket with code {code}: {reason}"
        ))),
    }
}

/// One parsed frame header.
#[derive(Debug)]
struct Header {
    fin: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    len: usize,
    /// Header length in bytes.
    size: usize,
}

/// Parses a frame header from `b`: `Ok(None)` when more bytes are needed.
fn parse_header(
    b: &[u8],
    role: Role,
    limits: &Limits,
) -> std::result::Result<Option<Header>, (u16, String)> {
    if b.len() < 2 {
        return Ok(None);
    }
    let fin = b[0] & 0x80 != 0;
    if b[0] & 0x70 != 0 {
        return Err((
            CLOSE_PROTOCOL,
            "reserved bits set (no extension was negotiated)".into(),
        ));
    }
    let opcode = b[0] & 0x0F;
    let masked = b[1] & 0x80 != 0;
    let (len, mut size) = match b[1] & 0x7F {
        126 => {
            if b.len() < 4 {
                return Ok(None);
            }
            (u64::from(u16::from_be_bytes([b[2], b[3]])), 4)
        }
        127 => {
            if b.len() < 10 {
                return Ok(None);
            }
            let mut l = [0u8; 8];
            l.copy_from_slice(&b[2..10]);
            (u64::from_be_bytes(l), 10)
        }
        n => (u64::from(n), 2),
    };
    match opcode {
        OP_CONT | OP_TEXT | OP_BINARY => {}
        OP_CLOSE | OP_PING | OP_PONG => {
            if !fin || len > 125 {
                return Err((
                    CLOSE_PROTOCOL,
                    "fragmented or oversized control frame".into(),
                ));
            }
        }
        op => return Err((CLOSE_PROTOCOL, format!("unknown opcode {op:#x}"))),
    }
    match (role, masked) {
        (Role::Server, false) => {
            return Err((CLOSE_PROTOCOL, "unmasked frame from a client".into()));
        }
        (Role::Client, true) => {
            return Err((CLOSE_PROTOCOL, "masked frame from a server".into()));
        }
        _ => {}
    }
    if len > limits.max_frame as u64 {
        return Err((
            CLOSE_TOO_BIG,
            format!(
                "frame of {len} bytes is over the limit of {}",
                limits.max_frame
            ),
        ));
    }
    let mask = if masked {
        if b.len() < size + 4 {
            return Ok(None);
        }
        let mut m = [0u8; 4];
        m.copy_from_slice(&b[size..size + 4]);
        size += 4;
        Some(m)
    } else {
        None
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask,
        len: len as usize,
        size,
    }))
}

/// XORs `data` with the masking key (in place), 16 bytes at a time.
fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let wide = wide_mask(mask);
    let mut chunks = data.chunks_exact_mut(16);
    for c in &mut chunks {
        let m = masked16(c, wide);
        c.copy_from_slice(&m);
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

/// The masking key repeated over 16 bytes.
fn wide_mask(mask: [u8; 4]) -> u128 {
    u128::from(u32::from_ne_bytes(mask)) * 0x0000_0001_0000_0001_0000_0001_0000_0001
}

/// 16 bytes of `src` XORed with the repeated masking key.
fn masked16(src: &[u8], wide: u128) -> [u8; 16] {
    let mut w = [0u8; 16];
    w.copy_from_slice(src);
    (u128::from_ne_bytes(w) ^ wide).to_ne_bytes()
}

/// Copies `src` into `dst` (of the same length), XORed with the masking key
/// if there is one, 16 bytes at a time.
fn copy_masked(dst: &mut [u8], src: &[u8], mask: Option<[u8; 4]>) {
    let Some(mask) = mask else {
        dst.copy_from_slice(src);
        return;
    };
    let wide = wide_mask(mask);
    let mut d = dst.chunks_exact_mut(16);
    let mut s = src.chunks_exact(16);
    for (d, s) in (&mut d).zip(&mut s) {
        d.copy_from_slice(&masked16(s, wide));
    }
    for (i, (d, s)) in d.into_remainder().iter_mut().zip(s.remainder()).enumerate() {
        *d = s ^ mask[i % 4];
    }
}

impl Ws {
    fn next_mask(&self) -> Result<[u8; 4]> {
        lock(&self.masks).next().map_err(|e| {
            Error::Io(format!(
                "{}: no random bytes for a masking key: {e}",
                self.name
            ))
        })
    }

    /// One whole frame, masked when we are the client.
    fn frame(&self, opcode: u8, payload: &[u8]) -> Result<Vec<u8>> {
        let mut f = Vec::new();
        let end = self.frame_at(&mut f, 0, opcode, payload)?;
        f.truncate(end);
        Ok(f)
    }

    /// Writes one whole frame into `f` at `at` (masked when we are the
    /// client) and returns where it ends. `f` only grows: a kept buffer is
    /// written over, never zero-filled again.
    fn frame_at(&self, f: &mut Vec<u8>, at: usize, opcode: u8, payload: &[u8]) -> Result<usize> {
        let (head, h, mask) = self.head(opcode, payload.len())?;
        let end = at + h + payload.len();
        if f.len() < end {
            f.resize(end, 0);
        }
        f[at..at + h].copy_from_slice(&head[..h]);
        copy_masked(&mut f[at + h..end], payload, mask);
        Ok(end)
    }

    /// A frame header for a payload of `len` bytes: the bytes, how many, and
    /// the masking key (a fresh one when we are the client).
    fn head(&self, opcode: u8, len: usize) -> Result<([u8; 14], usize, Option<[u8; 4]>)> {
        let mut head = [0u8; 14];
        head[0] = 0x80 | opcode;
        let mbit = if self.role == Role::Client { 0x80 } else { 0 };
        let mut h = match len {
            n if n < 126 => {
                head[1] = mbit | n as u8;
                2
            }
            n if n <= 0xFFFF => {
                head[1] = mbit | 126;
                head[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                4
            }
            n => {
                head[1] = mbit | 127;
                head[2..10].copy_from_slice(&(n as u64).to_be_bytes());
                10
            }
        };
        let mask = match self.role {
            Role::Client => Some(self.next_mask()?),
            Role::Server => None,
        };
        if let Some(mask) = mask {
            head[h..h + 4].copy_from_slice(&mask);
            h += 4;
        }
        Ok((head, h, mask))
    }

    /// Sends `payloads` as binary messages, framed into one buffer that is
    /// kept for the next send, with one all-or-nothing send of the
    /// underlying stream.
    pub(crate) fn send_messages(
        &self,
        payloads: &[&[u8]],
        deadline: Option<Instant>,
    ) -> Result<()> {
        if self.close_sent.load(Ordering::Acquire) {
            return Err(Error::Closed(format!(
                "{}: websocket is closing",
                self.name
            )));
        }
        if let ([one], Role::Server) = (payloads, self.role) {
            if one.len() >= DIRECT_MIN {
                // A large unmasked frame: its header and the caller's payload
                // go out together (writev) without being copied first.
                let (head, h, _) = self.head(OP_BINARY, one.len())?;
                return self.inner.send_parts_until(&[&head[..h], one], deadline);
            }
        }
        // Another sender (a broadcast writer next to the handler) has the
        // kept buffer: a buffer of our own, as the underlying stream orders
        // the two sends anyway.
        let mut own = Vec::new();
        let mut kept = self.send_buf.try_lock().ok();
        let buf = kept.as_deref_mut().unwrap_or(&mut own);
        let mut end = 0;
        for p in payloads {
            end = self.frame_at(buf, end, OP_BINARY, p)?;
        }
        let r = self.inner.send_until(&buf[..end], deadline);
        if buf.len() > KEEP_SEND_BUF {
            *buf = Vec::new();
        }
        r
    }

    /// True once a close frame was sent (ours, or our answer to the peer's):
    /// no more messages can go.
    pub(crate) fn is_closing(&self) -> bool {
        self.close_sent.load(Ordering::Acquire)
    }

    /// Sends a close frame once (after every message sent before it),
    /// waiting at most until `deadline`: true if it went out now. The
    /// receiving side goes on until the peer's answer.
    pub(crate) fn send_close(&self, code: u16, reason: &str, deadline: Instant) -> bool {
        if self.close_sent.swap(true, Ordering::AcqRel) {
            return false;
        }
        let mut payload = code.to_be_bytes().to_vec();
        // A control frame holds 125 bytes: the reason is cut at a character.
        let mut cut = reason.len().min(123);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        payload.extend_from_slice(&reason.as_bytes()[..cut]);
        let sent = self
            .frame(OP_CLOSE, &payload)
            .and_then(|f| self.inner.send_until(&f, Some(deadline)));
        if let Err(e) = &sent {
            log::debug!("{}: sending the close frame failed: {e}", self.name);
        }
        sent.is_ok()
    }

    /// Counts this connection's protocol violations in `counters` (a
    /// server's).
    pub(crate) fn count_violations(&self, counters: Arc<Counters>) {
        let _ = self.violations.set(counters);
    }

    /// Shuts the underlying socket down (when it is one): every call blocked
    /// on it returns at once, and data a timed-out send left to finish in
    /// the background is given up, as nobody will read it.
    fn cut(&self) {
        if let Some(fd) = self.inner.socket() {
            let _ = socket2::SockRef::from(&fd).shutdown(std::net::Shutdown::Both);
        }
    }

    /// Ends the receiving direction with a protocol failure: tells the peer
    /// (close frame with `code`) and records the error.
    fn fail(&self, r: &mut Recv, code: u16, msg: String) -> Error {
        // Counted apart from the log line: log arguments are not evaluated
        // when the level is off.
        match self.violations.get().map(|c| c.count_bad_frame()) {
            Some(n) => log::warn!("{}: closing with {code}: {msg} ({n} so far)", self.name),
            None => log::warn!("{}: closing with {code}: {msg}", self.name),
        }
        self.send_close(code, &msg, Instant::now() + CLOSE_ECHO);
        let e = if code == CLOSE_TOO_BIG {
            Error::TooLarge(format!("{}: {msg}", self.name))
        } else {
            Error::Protocol(format!("{}: {msg}", self.name))
        };
        r.end = Some(Some(e.clone()));
        e
    }

    /// Reads more bytes from the underlying stream into `r.buf`, making room
    /// for at least `need` unparsed bytes first.
    fn fill(&self, r: &mut Recv, need: usize, deadline: Option<Instant>) -> Result<bool> {
        if r.start == r.filled {
            r.start = 0;
            r.filled = 0;
            if r.buf.len() > 4 * READ_CHUNK && need <= READ_CHUNK {
                // A large message went through: give the memory back.
                r.buf = vec![0; READ_CHUNK];
            }
        }
        if r.buf.len() - r.filled < READ_CHUNK / 2 || r.buf.len() - r.start < need {
            r.buf.copy_within(r.start..r.filled, 0);
            r.filled -= r.start;
            r.start = 0;
            let target = (r.filled + READ_CHUNK).max(need);
            if r.buf.len() < target {
                r.buf.resize(target, 0);
            }
        }
        let filled = r.filled;
        match self.inner.receive_until(&mut r.buf[filled..], deadline)? {
            Some(n) => {
                r.filled += n;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Parses frames until a whole message is ready (`Some`) or the peer
    /// closed (`None`).
    fn next_message(
        &self,
        r: &mut Recv,
        deadline: Option<Instant>,
        direct_room: usize,
    ) -> Result<Option<Msg>> {
        loop {
            let avail = &r.buf[r.start..r.filled];
            let header = match parse_header(avail, self.role, &self.limits) {
                Ok(h) => h,
                Err((code, msg)) => return Err(self.fail(r, code, msg)),
            };
            let h = match header {
                Some(h) if avail.len() >= h.size + h.len => h,
                Some(h)
                    if h.fin
                        && h.opcode == OP_BINARY
                        && r.partial.is_none()
                        && h.len >= DIRECT_MIN
                        && h.len <= direct_room
                        && h.len <= self.limits.max_message =>
                {
                    return Ok(Some(Msg::Direct(h)));
                }
                _ => match self.fill(r, header.map_or(14, |h| h.size + h.len), deadline) {
                    Ok(true) => continue,
                    Ok(false) => {
                        let e = Error::Connection(format!(
                            "{}: connection closed without a close frame (1006)",
                            self.name
                        ));
                        r.end = Some(Some(e.clone()));
                        return Err(e);
                    }
                    Err(Error::Timeout) => return Err(Error::Timeout),
                    Err(e) => {
                        if !matches!(e, Error::Closed(_)) {
                            r.end = Some(Some(e.clone()));
                        }
                        return Err(e);
                    }
                },
            };
            let from = r.start + h.size;
            let to = from + h.len;
            r.start = to;
            // A whole binary message in one frame is unmasked as it is
            // copied out (one pass over it); everything else here.
            let whole = h.fin && r.partial.is_none() && h.opcode == OP_BINARY;
            let deferred = h.mask.filter(|_| whole);
            let payload = &mut r.buf[from..to];
            if let (Some(mask), None) = (h.mask, deferred) {
                apply_mask(payload, mask);
            }
            match h.opcode {
                OP_PING => {
                    let pong = self.frame(OP_PONG, payload).and_then(|pong| {
                        self.inner
                            .send_until(&pong, Some(Instant::now() + CONTROL_SEND))
                    });
                    if let Err(e) = pong {
                        log::debug!("{}: answering a ping failed: {e}", self.name);
                    }
                }
                OP_PONG => {}
                OP_CLOSE => {
                    let (code, reason) = match payload.len() {
                        0 => (None, String::new()),
                        1 => {
                            return Err(self.fail(
                                r,
                                CLOSE_PROTOCOL,
                                "close frame of 1 byte".into(),
                            ));
                        }
                        _ => {
                            let code = u16::from_be_bytes([payload[0], payload[1]]);
                            match std::str::from_utf8(&payload[2..]) {
                                Ok(s) => (Some(code), s.to_string()),
                                Err(_) => {
                                    return Err(self.fail(
                                        r,
                                        CLOSE_INVALID_DATA,
                                        "close reason is not UTF-8".into(),
                                    ));
                                }
                            }
                        }
                    };
                    log::debug!("{}: peer closed ({code:?} {reason:?})", self.name);
                    // Echo the code back, as RFC 6455 asks.
                    self.send_close(
                        code.unwrap_or(CLOSE_NORMAL),
                        "",
                        Instant::now() + CLOSE_ECHO,
                    );
                    let end = closed_by_peer(&self.name, code, &reason);
                    r.end = Some(end.clone());
                    return end.map_or(Ok(None), Err);
                }
                op if h.fin && r.partial.is_none() && op != OP_CONT => {
                    // A whole message in one frame: delivered from the buffer.
                    if op == OP_TEXT && std::str::from_utf8(payload).is_err() {
                        return Err(self.fail(
                            r,
                            CLOSE_INVALID_DATA,
                            "text message is not valid UTF-8".into(),
                        ));
                    }
                    if h.len > self.limits.max_message {
                        let msg = format!(
                            "message over the limit of {} bytes",
                            self.limits.max_message
                        );
                        return Err(self.fail(r, CLOSE_TOO_BIG, msg));
                    }
                    return Ok(Some(Msg::InBuf(from, to, deferred)));
                }
                op => {
                    let data = payload.to_vec();
                    let (opcode, mut msg) = match (op, r.partial.take()) {
                        (OP_CONT, Some(p)) => p,
                        (OP_CONT, None) => {
                            return Err(self.fail(
                                r,
                                CLOSE_PROTOCOL,
                                "continuation frame without a message".into(),
                            ));
                        }
                        (_, Some(_)) => {
                            return Err(self.fail(
                                r,
                                CLOSE_PROTOCOL,
                                "new message before the last one ended".into(),
                            ));
                        }
                        (op, None) => (op, Vec::new()),
                    };
                    if msg.len() + data.len() > self.limits.max_message {
                        let msg = format!(
                            "message over the limit of {} bytes",
                            self.limits.max_message
                        );
                        return Err(self.fail(r, CLOSE_TOO_BIG, msg));
                    }
                    if msg.is_empty() {
                        msg = data;
                    } else {
                        msg.extend_from_slice(&data);
                    }
                    if !h.fin {
                        r.partial = Some((opcode, msg));
                        continue;
                    }
                    if opcode == OP_TEXT && std::str::from_utf8(&msg).is_err() {
                        return Err(self.fail(
                            r,
                            CLOSE_INVALID_DATA,
                            "text message is not valid UTF-8".into(),
                        ));
                    }
                    return Ok(Some(Msg::Owned(msg)));
                }
            }
        }
    }
}

/// A whole message: in the receive buffer (`buf[from..to]`, valid until the
/// next read; still masked with the key if there is one) or assembled from
/// fragments.
enum Msg {
    InBuf(usize, usize, Option<[u8; 4]>),
    /// A large single-frame binary message that fits the caller's buffer,
    /// partly received (`buf[start..filled]` is its header and the start of
    /// its payload): the rest is read straight into the caller's buffer.
    Direct(Header),
    Owned(Vec<u8>),
}

impl Ws {
    /// Receives the rest of a [`Msg::Direct`] message straight into `buf`
    /// (saving a copy of a large message). A timeout keeps what arrived, as
    /// if it had been read into the receive buffer.
    fn receive_direct(
        &self,
        r: &mut Recv,
        buf: &mut [u8],
        h: &Header,
        deadline: Option<Instant>,
    ) -> Result<Option<usize>> {
        let from = r.start + h.size;
        let have = r.filled - from;
        buf[..have].copy_from_slice(&r.buf[from..r.filled]);
        let mut got = have;
        while got < h.len {
            let e = match self.inner.receive_until(&mut buf[got..h.len], deadline) {
                Ok(Some(n)) => {
                    got += n;
                    continue;
                }
                Ok(None) => Error::Connection(format!(
                    "{}: connection closed without a close frame (1006)",
                    self.name
                )),
                Err(e) => e,
            };
            // Nothing is consumed: what arrived joins the receive buffer.
            let filled = r.filled;
            r.buf.truncate(filled);
            r.buf.extend_from_slice(&buf[have..got]);
            r.filled = r.buf.len();
            if !matches!(e, Error::Timeout | Error::Closed(_)) {
                r.end = Some(Some(e.clone()));
            }
            return Err(e);
        }
        r.start = 0;
        r.filled = 0;
        if let Some(mask) = h.mask {
            apply_mask(&mut buf[..h.len], mask);
        }
        Ok(Some(h.len))
    }
}

/// The transport: the connection's state, shared with a server that may have
/// to drop the connection.
struct WsTransport(Arc<Ws>);

impl Ws {
    /// Drops the connection: a close frame with `code` if it can go before
    /// `deadline`, then the underlying stream is cut and closed, which wakes
    /// every call blocked on the connection.
    pub(crate) fn abort(&self, code: u16, reason: &str, deadline: Instant) {
        self.send_close(code, reason, deadline);
        self.cut();
        self.inner.close();
    }
}

impl Transport for WsTransport {
    fn send(&self, data: &[u8], deadline: Option<Instant>) -> Result<()> {
        self.0.send_messages(&[data], deadline)
    }

    fn send_eof(&self) -> Result<()> {
        Ok(())
    }

    fn half_closes(&self) -> bool {
        false
    }

    fn receive(&self, buf: &mut [u8], deadline: Option<Instant>) -> Result<Option<usize>> {
        let mut r = lock(&self.0.recv);
        if r.current.is_none() {
            if let Some(end) = &r.end {
                return end.clone().map_or(Ok(None), Err);
            }
            match self.0.next_message(&mut r, deadline, buf.len())? {
                Some(Msg::Direct(h)) => return self.0.receive_direct(&mut r, buf, &h, deadline),
                Some(Msg::InBuf(from, to, mask)) if to - from <= buf.len() => {
                    copy_masked(&mut buf[..to - from], &r.buf[from..to], mask);
                    return Ok(Some(to - from));
                }
                Some(Msg::InBuf(from, to, mask)) => {
                    let mut m = vec![0u8; to - from];
                    copy_masked(&mut m, &r.buf[from..to], mask);
                    r.current = Some((m, 0));
                }
                Some(Msg::Owned(m)) => r.current = Some((m, 0)),
                None => return Ok(None),
            }
        }
        let Some((msg, pos)) = &mut r.current else {
            return Ok(None);
        };
        let n = (msg.len() - *pos).min(buf.len());
        buf[..n].copy_from_slice(&msg[*pos..*pos + n]);
        *pos += n;
        if *pos == msg.len() {
            r.current = None;
        }
        Ok(Some(n))
    }

    fn close(&self) {
        let ws = &self.0;
        let ours = !ws.is_closing();
        if ours && !ws.send_close(CLOSE_NORMAL, "", Instant::now() + CLOSE_SEND) {
            // The frame cannot go (another thread's send is stuck behind a
            // peer that does not read, or the peer is gone): cut at once.
            ws.cut();
        } else if let Ok(mut r) = ws.recv.try_lock() {
            // Wait (briefly) for the peer's close frame unless another thread
            // is receiving; then the underlying close wakes everyone.
            let until = Instant::now() + CLOSE_WAIT;
            while r.end.is_none() {
                r.current = None;
                match ws.next_message(&mut r, Some(until), 0) {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
        ws.inner.close();
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The request path (and query) a websocket client asked for, on a stream
/// made by [`accept`] or given to a [`Server`]'s handler (`None` on every
/// other stream).
pub fn request_path(s: &Stream) -> Option<&str> {
    s.transport::<WsTransport>()?.0.path.as_deref()
}

pub(crate) fn wrap(
    inner: Arc<Stream>,
    name: String,
    role: Role,
    limits: Limits,
    path: Option<String>,
    leftover: Vec<u8>,
) -> (Stream, Arc<Ws>) {
    let ws = Arc::new(Ws {
        inner,
        name: name.clone(),
        role,
        limits,
        path,
        recv: Mutex::new(Recv {
            filled: leftover.len(),
            buf: leftover,
            ..Recv::default()
        }),
        close_sent: AtomicBool::new(false),
        masks: Mutex::new(MaskPool::new()),
        violations: std::sync::OnceLock::new(),
        send_buf: Mutex::new(Vec::new()),
    });
    (Stream::new(name, WsTransport(ws.clone()), Vec::new()), ws)
}

/// Reads an HTTP head (up to the blank line) from `s`: the head and the bytes
/// that came after it.
pub(super) fn read_head(
    s: &Stream,
    deadline: Option<Instant>,
    name: &str,
) -> Result<(Vec<u8>, Vec<u8>)> {
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

pub(super) fn header<'a>(headers: &'a [httparse::Header<'_>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

pub(super) fn has_token(value: Option<&[u8]>, token: &str) -> bool {
    value
        .and_then(|v| std::str::from_utf8(v).ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Opens a websocket client stream (`ws://`).
pub(crate) fn connect(
    cfg: &WebsocketConfig,
    name: &str,
    deadline: Option<Instant>,
) -> Result<Stream> {
    if cfg.secure {
        let config = crate::tls::client_config(cfg.ca.as_deref(), cfg.insecure, name, "#ca")?;
        let sock = connect_tcp(&cfg.host, cfg.port, deadline, name)?;
        let raw = tls::connect(sock, &cfg.host, config, name.to_string(), deadline)?;
        return client_handshake(Arc::new(raw), cfg, name, deadline);
    }
    let sock = connect_tcp(&cfg.host, cfg.port, deadline, name)?;
    let raw = fd::stream(sock, name.to_string(), Kind::Bytes)?;
    client_handshake(Arc::new(raw), cfg, name, deadline)
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
fn client_handshake(
    raw: Arc<Stream>,
    cfg: &WebsocketConfig,
    name: &str,
    deadline: Option<Instant>,
) -> Result<Stream> {
    let after = cfg.url.split_once("://").map_or("", |(_, r)| r);
    let (authority, target) = match after.find(['/', '?']) {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, "/"),
    };
    let target = if target.starts_with('?') {
        format!("/{target}")
    } else {
        target.to_string()
    };
    let key = tungstenite::handshake::client::generate_key();
    let offer = if cfg.protocols.is_empty() {
        String::new()
    } else {
        format!("Sec-WebSocket-Protocol: {}\r\n", cfg.protocols.join(", "))
    };
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
         {offer}User-Agent: jumpwire/{}\r\n\r\n",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_is_its_own_inverse_for_every_length() {
        for len in 0..20 {
            let orig: Vec<u8> = (0..len as u8).collect();
            let mut d = orig.clone();
            apply_mask(&mut d, [1, 2, 3, 0xFF]);
            for (i, b) in d.iter().enumerate() {
                assert_eq!(*b, orig[i] ^ [1, 2, 3, 0xFF][i % 4]);
            }
            apply_mask(&mut d, [1, 2, 3, 0xFF]);
            assert_eq!(d, orig);
        }
    }

    #[test]
    fn wide_masking_matches_bytewise_masking_at_every_length() {
        let mask = [0x9A, 0x02, 0x7F, 0xE1];
        for len in 0..70 {
            let orig: Vec<u8> = (0..len).map(|i| (i * 37 + 5) as u8).collect();
            let want: Vec<u8> = orig
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            let mut inplace = orig.clone();
            apply_mask(&mut inplace, mask);
            assert_eq!(inplace, want, "in place, {len} bytes");
            let mut copied = vec![0u8; len];
            copy_masked(&mut copied, &orig, Some(mask));
            assert_eq!(copied, want, "copied, {len} bytes");
            copy_masked(&mut copied, &orig, None);
            assert_eq!(copied, orig, "copied unmasked, {len} bytes");
        }
    }

    #[test]
    fn headers_are_checked() {
        let l = Limits {
            max_message: 10,
            max_frame: 10,
        };
        assert!(parse_header(&[0x82], Role::Client, &l).unwrap().is_none());
        let h = parse_header(&[0x82, 3], Role::Client, &l).unwrap().unwrap();
        assert_eq!((h.fin, h.opcode, h.len, h.size), (true, 2, 3, 2));
        assert_eq!(
            parse_header(&[0x82, 3], Role::Server, &l).unwrap_err().0,
            1002
        );
        assert_eq!(
            parse_header(&[0x82, 0x83], Role::Client, &l).unwrap_err().0,
            1002
        );
        assert_eq!(
            parse_header(&[0x82, 11], Role::Client, &l).unwrap_err().0,
            1009
        );
        assert_eq!(
            parse_header(&[0xC2, 1], Role::Client, &l).unwrap_err().0,
            1002
        );
        assert_eq!(
            parse_header(&[0x83, 1], Role::Client, &l).unwrap_err().0,
            1002
        );
        assert_eq!(
            parse_header(&[0x09, 1], Role::Client, &l).unwrap_err().0,
            1002
        );
    }
}
