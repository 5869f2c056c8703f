//! A websocket connection over a byte [`Stream`] whose handshake is done:
//! [`Ws`] sends messages and close frames, receives and assembles messages
//! (answering pings and close frames as it meets them), and is the
//! transport ([`WsTransport`]) of the websocket [`Stream`] callers get.

use super::counters::Counters;
use super::frame::{
    self, Header, MAX_HEADER, MaskKeys, Role, Violation, apply_mask, copy_masked, parse_header,
    write_frame,
};
use crate::error::{Error, Result};
use crate::stream::{Stream, Transport};
use crate::util::lock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};

/// Default largest message (and frame) accepted from a peer: 16 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 16 << 20;
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
/// The largest send buffer kept between sends.
const KEEP_SEND_BUF: usize = 128 << 10;
/// Messages at least this large that fit the caller's buffer are read
/// straight into it.
const DIRECT_MIN: usize = 16 << 10;
/// How much the receiver reads from the underlying stream at a time.
const READ_CHUNK: usize = 64 << 10;

const BINARY: OpCode = OpCode::Data(Data::Binary);

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

/// The receiving side's state.
#[derive(Default)]
struct Recv {
    /// Bytes read from the underlying stream: `buf[start..filled]` is not
    /// parsed yet (the rest of `buf` is room to read into).
    buf: Vec<u8>,
    start: usize,
    filled: usize,
    /// The message being assembled from fragments: its type and payload.
    partial: Option<(Data, Vec<u8>)>,
    /// The message being delivered and how far.
    current: Option<(Vec<u8>, usize)>,
    /// Set once the receiving direction ended: `None` inside = EOF.
    end: Option<Option<Error>>,
}

/// One websocket connection: the underlying stream and both directions'
/// state.
pub(crate) struct Ws {
    inner: Arc<Stream>,
    name: String,
    role: Role,
    limits: Limits,
    /// The request path (and query) of a server's connection.
    path: Option<String>,
    recv: Mutex<Recv>,
    close_sent: AtomicBool,
    /// The masking keys of a client's frames.
    masks: Mutex<MaskKeys>,
    /// Where a server counts the connection's protocol violations.
    violations: OnceLock<Arc<Counters>>,
    /// The frames of the last send, kept to be reused (data sends are
    /// serialised by the stream, so this lock is rarely contended).
    send_buf: Mutex<Vec<u8>>,
}

/// Makes a websocket connection of `role` over `inner` (its handshake done;
/// `leftover`: bytes that came after the handshake): the stream callers use
/// and the connection, which a server keeps to drop it.
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
        masks: Mutex::new(MaskKeys::new()),
        violations: OnceLock::new(),
        send_buf: Mutex::new(Vec::new()),
    });
    (Stream::new(name, WsTransport(ws.clone()), Vec::new()), ws)
}

/// Sending: messages, close frames, and dropping the connection.
impl Ws {
    /// The masking key of our next frame: a fresh one when we are the
    /// client, none when we are the server.
    fn mask(&self) -> Result<Option<[u8; 4]>> {
        if self.role == Role::Server {
            return Ok(None);
        }
        lock(&self.masks).next().map(Some).map_err(|e| {
            Error::Io(format!(
                "{}: no random bytes for a masking key: {e}",
                self.name
            ))
        })
    }

    /// One whole frame, masked when we are the client.
    fn frame(&self, opcode: OpCode, payload: &[u8]) -> Result<Vec<u8>> {
        let mut f = Vec::new();
        let end = write_frame(&mut f, 0, opcode, payload, self.mask()?)?;
        f.truncate(end);
        Ok(f)
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
                let (head, h) = frame::header(BINARY, one.len(), None)?;
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
            end = write_frame(buf, end, BINARY, p, self.mask()?)?;
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
    pub(crate) fn send_close(&self, code: CloseCode, reason: &str, deadline: Instant) -> bool {
        if self.close_sent.swap(true, Ordering::AcqRel) {
            return false;
        }
        let payload = frame::close_payload(code, reason);
        let sent = self
            .frame(OpCode::Control(Control::Close), &payload)
            .and_then(|f| self.inner.send_until(&f, Some(deadline)));
        if let Err(e) = &sent {
            log::debug!("{}: sending the close frame failed: {e}", self.name);
        }
        sent.is_ok()
    }

    /// Drops the connection: a close frame with `code` if it can go before
    /// `deadline`, then the underlying stream is cut and closed, which wakes
    /// every call blocked on the connection.
    pub(crate) fn abort(&self, code: CloseCode, reason: &str, deadline: Instant) {
        self.send_close(code, reason, deadline);
        self.cut();
        self.inner.close();
    }

    /// Shuts the underlying socket down (when it is one): every call blocked
    /// on it returns at once, and data a timed-out send left to finish in
    /// the background is given up, as nobody will read it.
    fn cut(&self) {
        if let Some(fd) = self.inner.socket() {
            let _ = socket2::SockRef::from(&fd).shutdown(std::net::Shutdown::Both);
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

/// Receiving: frames parsed into messages, the peer's pings and close frame
/// answered, its protocol violations refused.
impl Ws {
    /// Counts this connection's protocol violations in `counters` (a
    /// server's).
    pub(crate) fn count_violations(&self, counters: Arc<Counters>) {
        let _ = self.violations.set(counters);
    }

    /// Ends the receiving direction with a protocol failure: tells the peer
    /// (close frame with the violation's code) and records the error.
    fn fail(&self, r: &mut Recv, v: Violation) -> Error {
        let Violation { code, why } = v;
        // Counted apart from the log line: log arguments are not evaluated
        // when the level is off.
        match self.violations.get().map(|c| c.count_bad_frame()) {
            Some(n) => log::warn!("{}: closing with {code}: {why} ({n} so far)", self.name),
            None => log::warn!("{}: closing with {code}: {why}", self.name),
        }
        self.send_close(code, &why, Instant::now() + CLOSE_ECHO);
        let e = if code == CloseCode::Size {
            Error::TooLarge(format!("{}: {why}", self.name))
        } else {
            Error::Protocol(format!("{}: {why}", self.name))
        };
        r.end = Some(Some(e.clone()));
        e
    }

    /// The error of a message over the limit.
    fn too_big(&self) -> Violation {
        Violation::new(
            CloseCode::Size,
            format!(
                "message over the limit of {} bytes",
                self.limits.max_message
            ),
        )
    }

    /// The connection ended without a close frame.
    fn vanished(&self) -> Error {
        Error::Connection(format!(
            "{}: connection closed without a close frame (1006)",
            self.name
        ))
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
            let header = match parse_header(avail, self.role, self.limits.max_frame) {
                Ok(h) => h,
                Err(v) => return Err(self.fail(r, v)),
            };
            let h = match header {
                Some(h) if avail.len() >= h.size + h.len => h,
                Some(h)
                    if h.frame.is_final
                        && h.frame.opcode == BINARY
                        && r.partial.is_none()
                        && h.len >= DIRECT_MIN
                        && h.len <= direct_room
                        && h.len <= self.limits.max_message =>
                {
                    return Ok(Some(Msg::Direct(h)));
                }
                _ => match self.fill(r, header.map_or(MAX_HEADER, |h| h.size + h.len), deadline) {
                    Ok(true) => continue,
                    Ok(false) => {
                        let e = self.vanished();
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
            let fin = h.frame.is_final;
            // A whole binary message in one frame is unmasked as it is
            // copied out (one pass over it); everything else here.
            let whole = fin && r.partial.is_none() && h.frame.opcode == BINARY;
            let deferred = h.frame.mask.filter(|_| whole);
            let payload = &mut r.buf[from..to];
            if let (Some(mask), None) = (h.frame.mask, deferred) {
                apply_mask(payload, mask);
            }
            match h.frame.opcode {
                OpCode::Control(Control::Ping) => {
                    let pong = self
                        .frame(OpCode::Control(Control::Pong), payload)
                        .and_then(|pong| {
                            self.inner
                                .send_until(&pong, Some(Instant::now() + CONTROL_SEND))
                        });
                    if let Err(e) = pong {
                        log::debug!("{}: answering a ping failed: {e}", self.name);
                    }
                }
                OpCode::Control(Control::Close) => {
                    let (code, reason) = match frame::parse_close(payload) {
                        Ok(Some((code, reason))) => (Some(code), reason.to_string()),
                        Ok(None) => (None, String::new()),
                        Err(v) => return Err(self.fail(r, v)),
                    };
                    log::debug!(
                        "{}: peer closed ({:?} {reason:?})",
                        self.name,
                        code.map(u16::from)
                    );
                    // Echo the code back, as RFC 6455 asks.
                    self.send_close(
                        code.unwrap_or(CloseCode::Normal),
                        "",
                        Instant::now() + CLOSE_ECHO,
                    );
                    let end = closed_by_peer(&self.name, code, &reason);
                    r.end = Some(end.clone());
                    return end.map_or(Ok(None), Err);
                }
                // A pong is not answered (the parser refuses the reserved
                // control opcodes).
                OpCode::Control(_) => {}
                OpCode::Data(op) if fin && r.partial.is_none() && op != Data::Continue => {
                    // A whole message in one frame: delivered from the buffer.
                    if op == Data::Text && std::str::from_utf8(payload).is_err() {
                        let v =
                            Violation::new(CloseCode::Invalid, "text message is not valid UTF-8");
                        return Err(self.fail(r, v));
                    }
                    if h.len > self.limits.max_message {
                        return Err(self.fail(r, self.too_big()));
                    }
                    return Ok(Some(Msg::InBuf(from, to, deferred)));
                }
                OpCode::Data(op) => {
                    let data = payload.to_vec();
                    let (kind, mut msg) = match (op, r.partial.take()) {
                        (Data::Continue, Some(p)) => p,
                        (Data::Continue, None) => {
                            let v = Violation::new(
                                CloseCode::Protocol,
                                "continuation frame without a message",
                            );
                            return Err(self.fail(r, v));
                        }
                        (_, Some(_)) => {
                            let v = Violation::new(
                                CloseCode::Protocol,
                                "new message before the last one ended",
                            );
                            return Err(self.fail(r, v));
                        }
                        (op, None) => (op, Vec::new()),
                    };
                    if msg.len() + data.len() > self.limits.max_message {
                        return Err(self.fail(r, self.too_big()));
                    }
                    if msg.is_empty() {
                        msg = data;
                    } else {
                        msg.extend_from_slice(&data);
                    }
                    if !fin {
                        r.partial = Some((kind, msg));
                        continue;
                    }
                    if kind == Data::Text && std::str::from_utf8(&msg).is_err() {
                        let v =
                            Violation::new(CloseCode::Invalid, "text message is not valid UTF-8");
                        return Err(self.fail(r, v));
                    }
                    return Ok(Some(Msg::Owned(msg)));
                }
            }
        }
    }

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
                Ok(None) => self.vanished(),
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
        if let Some(mask) = h.frame.mask {
            apply_mask(&mut buf[..h.len], mask);
        }
        Ok(Some(h.len))
    }
}

/// The meaning of a close frame's code for the side that receives it: 1000
/// (normal), 1001 (going away) and a close frame without a code end the
/// stream (EOF); any other code is an error carrying the code and reason, as
/// Python `websockets` tells `ConnectionClosedOK` from `ConnectionClosedError`.
fn closed_by_peer(name: &str, code: Option<CloseCode>, reason: &str) -> Option<Error> {
    match code {
        None | Some(CloseCode::Normal | CloseCode::Away) => None,
        Some(code) if reason.is_empty() => Some(Error::Connection(format!(
            "{name}: the peer closed the websocket with code {code}"
        ))),
        Some(code) => Some(Error::Connection(format!(
            "{name}: the peer closed the websocket with code {code}: {reason}"
        ))),
    }
}

/// The transport: the connection's state, shared with a server that may have
/// to drop the connection.
struct WsTransport(Arc<Ws>);

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
        if ours && !ws.send_close(CloseCode::Normal, "", Instant::now() + CLOSE_SEND) {
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
/// made by [`accept`](super::accept) or given to a [`Server`](super::Server)'s
/// handler (`None` on every other stream).
pub fn request_path(s: &Stream) -> Option<&str> {
    s.transport::<WsTransport>()?.0.path.as_deref()
}
