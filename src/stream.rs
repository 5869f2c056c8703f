//! [`Stream`]: the one bidirectional stream type that every transport produces.
//!
//! A stream has a sending half and a receiving half that work independently: one
//! thread may send while another receives. Socket-backed streams (TCP, UDP, Unix,
//! vsock) do their I/O on the caller's thread, waiting with `poll` until the
//! deadline, so that a round trip costs no thread hand-off. The protocol
//! transports (websocket, router) and the in-memory echo keep their own state
//! behind the same `Transport` interface.
//!
//! Semantics every transport keeps:
//! - [`Stream::send`] delivers all of `data` (byte streams) or exactly one
//!   message (UDP, websocket) — or nothing: a timeout means nothing was sent.
//! - [`Stream::receive`] returns the next bytes available, never bytes of two
//!   messages at once; a message larger than the buffer comes out over several
//!   calls. Nothing is dropped or reordered.
//! - End of stream (`Ok(None)`) comes only after every byte before it.
//! - [`Stream::send_eof`] half-closes the sending direction.
//! - [`Stream::close`] is graceful, wakes any call blocked on another thread
//!   (it returns [`Error::Closed`]), and joins the stream's threads.

use crate::error::{Error, Result};
use crate::util::{deadline, lock};
use std::any::Any;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long [`Stream::reset`] lets a send finishing in the background go on.
const RESET_GRACE: Duration = Duration::from_secs(2);

/// One transport: how a stream sends, receives and ends. The [`Stream`]
/// serialises senders and receivers and tracks closing; each method is called
/// by one thread at a time per direction.
pub(crate) trait Transport: Send + Sync + 'static {
    /// Sends all of `data` (one message on message transports), or nothing if
    /// `deadline` passes first ([`Error::Timeout`]). `Ok` means the data was
    /// accepted and will be delivered in order before anything sent later.
    fn send(&self, data: &[u8], deadline: Option<Instant>) -> Result<()>;
    /// Sends the concatenation of `parts` exactly as `send` sends one buffer
    /// (a websocket frame's header and payload without copying them into
    /// one buffer first).
    fn send_parts(&self, parts: &[&[u8]], deadline: Option<Instant>) -> Result<()> {
        self.send(&parts.concat(), deadline)
    }
    /// Half-closes the sending direction.
    fn send_eof(&self) -> Result<()>;
    /// Whether `send_eof` really ends the sending direction. Where it is a
    /// no-op (UDP, websocket, as upstream) sending goes on after it.
    fn half_closes(&self) -> bool {
        true
    }
    /// Receives the next bytes (at most one message) into `buf`, which is not
    /// empty: `Some(n)`, `None` at end of stream (again on every later call),
    /// or [`Error::Timeout`] with nothing consumed.
    fn receive(&self, buf: &mut [u8], deadline: Option<Instant>) -> Result<Option<usize>>;
    /// Ends the stream gracefully: finishes what was accepted (bounded), says
    /// goodbye the transport's way, and wakes every blocked call.
    fn close(&self);
    /// The connected socket of a byte-stream transport, for forwarding that
    /// moves data between two sockets without copying it through user space.
    fn socket(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    /// Waits (at most until `deadline`) for data accepted by an earlier send
    /// that is still being written in the background.
    fn flush(&self, deadline: Option<Instant>) -> Result<()> {
        let _ = deadline;
        Ok(())
    }
    /// The transport as [`Any`], for the layer that made it to find its own
    /// state again through [`Stream::transport`] (a websocket's request
    /// path). A transport nobody looks for need not say what it is.
    fn as_any(&self) -> &dyn Any {
        &()
    }
    /// Forwards between this transport's stream `own` and `peer`, a TCP or
    /// Unix socket stream whose socket is `sock`, on the calling thread,
    /// both ways with half-close, as [`forward`](crate::relay::forward)
    /// does; `None` where this transport has no such path (the relay then
    /// pumps the two through their own calls, a thread per direction).
    fn forward_socket(
        &self,
        own: &Stream,
        peer: &Stream,
        sock: BorrowedFd<'_>,
    ) -> Option<Forwarded> {
        let _ = (own, peer, sock);
        None
    }
}

/// Which stream of a forward failed (see [`Transport::forward_socket`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Culprit {
    /// The transport's own stream.
    Own,
    /// The socket stream.
    Peer,
}

/// How a forward run by a transport ended: `Ok` when both directions ended
/// cleanly; otherwise the error and the stream it came from (`None`: a stream
/// was closed under the forward by its owner).
pub(crate) type Forwarded = std::result::Result<(), (Error, Option<Culprit>)>;

/// A timed lock: serialises senders (and receivers) while letting each waiter
/// give up at its own deadline. Uncontended, entering and leaving cost no
/// system call (the condition variable is signalled only when someone waits).
struct TimedLock {
    state: Mutex<TimedLockState>,
    cv: Condvar,
}

#[derive(Default)]
struct TimedLockState {
    busy: bool,
    waiters: usize,
}

struct TimedGuard<'a>(&'a TimedLock);

impl TimedLock {
    fn new() -> TimedLock {
        TimedLock {
            state: Mutex::new(TimedLockState::default()),
            cv: Condvar::new(),
        }
    }

    fn enter(&self, deadline: Option<Instant>) -> Result<TimedGuard<'_>> {
        let mut st = lock(&self.state);
        while st.busy {
            let left = match deadline {
                None => None,
                Some(d) => match d.saturating_duration_since(Instant::now()) {
                    left if left.is_zero() => return Err(Error::Timeout),
                    left => Some(left),
                },
            };
            st.waiters += 1;
            st = match left {
                None => self.cv.wait(st).unwrap_or_else(PoisonError::into_inner),
                Some(left) => {
                    self.cv
                        .wait_timeout(st, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
            st.waiters -= 1;
        }
        st.busy = true;
        Ok(TimedGuard(self))
    }
}

impl Drop for TimedGuard<'_> {
    fn drop(&mut self) {
        let mut st = lock(&self.0.state);
        st.busy = false;
        if st.waiters > 0 {
            self.0.cv.notify_one();
        }
    }
}

/// What opens streams to one place: the target of an exporter or of a
/// forward. [`Network`](crate::network::Network) is the one every caller
/// uses; the layers under it (the router's exporter) take this instead of a
/// network, so that they do not depend on the dispatcher above them.
pub trait Connect: Send + Sync {
    /// Opens a new stream, waiting at most `timeout` (`None` = forever).
    fn connect(&self, timeout: Option<Duration>) -> Result<Stream>;
}

/// A bidirectional stream to a peer. See the [module docs](self).
///
/// `Stream` is `Send + Sync`: share it (for example in an `Arc`) to send from one
/// thread while another receives.
pub struct Stream {
    name: String,
    transport: Box<dyn Transport>,
    recv_lock: TimedLock,
    send_lock: TimedLock,
    eof_sent: AtomicBool,
    closed: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    counts: Counts,
}

/// What a stream has carried so far (see [`Stream::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes accepted by sends (and bytes `forward` moved into the stream).
    pub bytes_sent: u64,
    /// Bytes delivered by receives (and bytes `forward` moved out of it).
    pub bytes_received: u64,
    /// Successful sends: messages on message transports.
    pub messages_sent: u64,
    /// Receives that delivered data (a message larger than the buffer counts
    /// once per receive).
    pub messages_received: u64,
}

/// What a server has done so far: a forwarding listener, a websocket
/// server, a router (see their `stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections taken so far (refused ones are not counted here).
    pub accepted: u64,
    /// Connections open now.
    pub active: u64,
    /// Connections refused so far (over a limit, out of descriptors, or
    /// refused at the end of a handshake).
    pub refused: u64,
    /// Payload bytes received from the server's clients (and passed on to
    /// its targets, for a forward), by open and ended connections.
    pub bytes_received: u64,
    /// Payload bytes sent to the server's clients.
    pub bytes_sent: u64,
}

#[derive(Default)]
struct Counts {
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    messages_sent: AtomicU64,
    messages_received: AtomicU64,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Stream {
    /// Assembles a stream from a transport and the threads it owns (joined by
    /// [`Stream::close`]).
    pub(crate) fn new(
        name: String,
        transport: impl Transport,
        threads: Vec<JoinHandle<()>>,
    ) -> Stream {
        log::debug!("{name}: open");
        Stream {
            name,
            transport: Box::new(transport),
            recv_lock: TimedLock::new(),
            send_lock: TimedLock::new(),
            eof_sent: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            threads: Mutex::new(threads),
            counts: Counts::default(),
        }
    }

    /// What this stream has carried so far. Safe to call at any time, from
    /// any thread, also after [`Stream::close`].
    pub fn stats(&self) -> Stats {
        let c = &self.counts;
        Stats {
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
            messages_sent: c.messages_sent.load(Ordering::Relaxed),
            messages_received: c.messages_received.load(Ordering::Relaxed),
        }
    }

    /// Counts `n` bytes sent in one message (also for bytes that `forward`
    /// moved into the stream without a `send`).
    pub(crate) fn count_sent(&self, n: usize) {
        self.counts
            .bytes_sent
            .fetch_add(n as u64, Ordering::Relaxed);
        self.counts.messages_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `n` bytes received in one delivery.
    pub(crate) fn count_received(&self, n: usize) {
        self.counts
            .bytes_received
            .fetch_add(n as u64, Ordering::Relaxed);
        self.counts
            .messages_received
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The endpoint this stream talks to, as a URL (for logs and messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            return Err(Error::Closed(format!("{}: stream is closed", self.name)));
        }
        Ok(())
    }

    /// Sends all of `data` (one message on UDP and websocket streams), waiting
    /// at most `timeout` (`None` = forever, zero = only if it can go at once).
    ///
    /// Either everything is accepted (`Ok`) or nothing is: on
    /// [`Error::Timeout`] the stream is unchanged and the call may be repeated.
    /// After [`Stream::send_eof`] this returns [`Error::Closed`].
    pub fn send(&self, data: &[u8], timeout: Option<Duration>) -> Result<()> {
        self.send_until(data, deadline(timeout))
    }

    pub(crate) fn send_until(&self, data: &[u8], deadline: Option<Instant>) -> Result<()> {
        self.send_parts_until(&[data], deadline)
    }

    /// [`Stream::send_until`] of the concatenation of `parts`.
    pub(crate) fn send_parts_until(
        &self,
        parts: &[&[u8]],
        deadline: Option<Instant>,
    ) -> Result<()> {
        self.check_open()?;
        let _turn = self.send_lock.enter(deadline)?;
        if self.eof_sent.load(Ordering::Acquire) {
            return Err(Error::Closed(format!("{}: send after send_eof", self.name)));
        }
        let r = match parts {
            [one] => self.transport.send(one, deadline),
            _ => self.transport.send_parts(parts, deadline),
        };
        self.check_open()?;
        match &r {
            Ok(()) => self.count_sent(parts.iter().map(|p| p.len()).sum()),
            Err(Error::Timeout) => {}
            Err(e) => log::debug!("{}: send failed: {e}", self.name),
        }
        r
    }

    /// Half-closes: tells the peer that nothing more will be sent (TCP/Unix
    /// `shutdown(WR)`, echo EOF). Receiving goes on; later sends return
    /// [`Error::Closed`]. On UDP (and websocket) it is a no-op, as upstream:
    /// nothing is sent and sending goes on. Calling it again does nothing.
    pub fn send_eof(&self) -> Result<()> {
        self.check_open()?;
        let _turn = self.send_lock.enter(None)?;
        if !self.transport.half_closes() || self.eof_sent.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        log::debug!("{}: send_eof", self.name);
        self.transport.send_eof()
    }

    /// Receives the next bytes into `buf`, waiting at most `timeout` (`None` =
    /// forever, zero = poll). Returns `Some(n)` with the byte count (0 only for
    /// an empty message), `None` at end of stream (after every byte before it),
    /// or [`Error::Timeout`] when nothing arrived in time.
    pub fn receive(&self, buf: &mut [u8], timeout: Option<Duration>) -> Result<Option<usize>> {
        self.receive_until(buf, deadline(timeout))
    }

    pub(crate) fn receive_until(
        &self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<Option<usize>> {
        if buf.is_empty() {
            return Err(Error::invalid("receive buffer is empty"));
        }
        self.check_open()?;
        let _turn = self.recv_lock.enter(deadline)?;
        self.check_open()?;
        let r = self.transport.receive(buf, deadline);
        self.check_open()?;
        match &r {
            Ok(None) => log::debug!("{}: end of stream", self.name),
            Ok(Some(n)) => self.count_received(*n),
            Err(Error::Timeout) => {}
            Err(e) => log::debug!("{}: receive failed: {e}", self.name),
        }
        r
    }

    /// See [`Transport::forward_socket`].
    pub(crate) fn forward_socket(&self, peer: &Stream, sock: BorrowedFd<'_>) -> Option<Forwarded> {
        self.transport.forward_socket(self, peer, sock)
    }

    /// The socket of a byte-stream transport (see [`Transport::socket`]).
    pub(crate) fn socket(&self) -> Option<BorrowedFd<'_>> {
        self.transport.socket()
    }

    /// The transport, if it is a `T` (see [`Transport::as_any`]).
    pub(crate) fn transport<T: 'static>(&self) -> Option<&T> {
        self.transport.as_any().downcast_ref()
    }

    /// Waits at most `timeout` (`None` = forever) until what earlier sends
    /// accepted has left the library: a send whose deadline passed after
    /// part of its data went out is accepted, and its rest is written in the
    /// background. `Ok` once all of it was handed to the operating system
    /// (a router stream: to its HTTP/2 connection); [`Error::Timeout`] while
    /// it is still on its way (call again); otherwise the error that ended
    /// the background write: not all of it went. [`Stream::close`] gives
    /// such data a short grace and cannot report: call this first where it
    /// matters.
    pub fn flush(&self, timeout: Option<Duration>) -> Result<()> {
        self.check_open()?;
        self.flush_until(deadline(timeout))
    }

    /// See [`Transport::flush`].
    pub(crate) fn flush_until(&self, deadline: Option<Instant>) -> Result<()> {
        self.transport.flush(deadline)
    }

    /// Closes the stream gracefully (socket close with FIN, websocket close
    /// frame, router GOAWAY), wakes any call blocked in `send` or `receive` on
    /// another thread (it returns [`Error::Closed`]), and joins the stream's
    /// threads. Data accepted by an earlier `send` that is still on its way is
    /// given a short grace period. Closing twice does nothing.
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.transport.close();
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            let _ = t.join();
        }
        log::debug!("{}: closed", self.name);
    }

    /// Ends the stream abruptly, so that its peer sees a failure and never a
    /// clean end of stream: a TCP stream's socket gets `SO_LINGER` 0 and is
    /// released without a FIN when the stream is dropped (its last
    /// reference), which sends the peer a reset (RST). Until then later calls
    /// return [`Error::Closed`]. A send still finishing in the background is
    /// given [`RESET_GRACE`] first; if it needs longer, and for streams
    /// without a socket and Unix sockets (which have no reset), this is
    /// [`Stream::close`]. Used when the other side of a forward failed.
    pub(crate) fn reset(&self) {
        let Some(fd) = self.transport.socket() else {
            return self.close();
        };
        let sock = socket2::SockRef::from(&fd);
        let tcp = matches!(
            sock.domain(),
            Ok(d) if d == socket2::Domain::IPV4 || d == socket2::Domain::IPV6
        );
        if !tcp
            || self.is_closed()
            || self.transport.flush(Some(Instant::now() + RESET_GRACE)) == Err(Error::Timeout)
            || sock.set_linger(Some(Duration::ZERO)).is_err()
        {
            return self.close();
        }
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // No shutdown: a FIN now would reach the peer as a clean end before
        // the reset. Waking blocked receivers sends nothing on TCP.
        let _ = sock.shutdown(std::net::Shutdown::Read);
        log::debug!("{}: reset", self.name);
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::Network;
    use std::sync::Arc;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    fn echo() -> Stream {
        Network::new("echo:").unwrap().connect(ms(100)).unwrap()
    }

    #[test]
    fn a_message_larger_than_the_buffer_comes_out_in_pieces_and_never_mixes() {
        let s = echo();
        s.send(b"abcdefgh", None).unwrap();
        s.send(b"XY", None).unwrap();
        let mut buf = [0u8; 3];
        let mut got = Vec::new();
        for _ in 0..3 {
            let n = s.receive(&mut buf, ms(100)).unwrap().unwrap();
            got.push(buf[..n].to_vec());
        }
        assert_eq!(got, [b"abc".to_vec(), b"def".to_vec(), b"gh".to_vec()]);
        let n = s.receive(&mut buf, ms(100)).unwrap().unwrap();
        assert_eq!(&buf[..n], b"XY");
    }

    #[test]
    fn eof_comes_after_all_data_and_stays() {
        let s = echo();
        s.send(b"", None).unwrap();
        s.send(b"last", None).unwrap();
        s.send_eof().unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(s.receive(&mut buf, ms(100)).unwrap(), Some(4));
        assert_eq!(s.receive(&mut buf, ms(100)).unwrap(), None);
        assert_eq!(s.receive(&mut buf, Some(Duration::ZERO)).unwrap(), None);
        assert!(
            matches!(s.send(b"x", None), Err(Error::Closed(m)) if m.contains("send after send_eof"))
        );
        s.send_eof().unwrap();
    }

    #[test]
    fn poll_and_timeout_consume_nothing() {
        let s = echo();
        let mut buf = [0u8; 4];
        assert_eq!(
            s.receive(&mut buf, Some(Duration::ZERO)),
            Err(Error::Timeout)
        );
        let t0 = Instant::now();
        assert_eq!(s.receive(&mut buf, ms(50)), Err(Error::Timeout));
        assert!(t0.elapsed() >= Duration::from_millis(50));
        assert!(matches!(
            s.receive(&mut [], None),
            Err(Error::InvalidArgument(_))
        ));
        s.send(b"ok", None).unwrap();
        assert_eq!(s.receive(&mut buf, Some(Duration::ZERO)).unwrap(), Some(2));
    }

    #[test]
    fn close_wakes_a_blocked_receiver() {
        let s = Arc::new(echo());
        let r = {
            let s = s.clone();
            std::thread::spawn(move || s.receive(&mut [0u8; 8], None))
        };
        std::thread::sleep(Duration::from_millis(50));
        s.close();
        assert!(matches!(r.join().unwrap(), Err(Error::Closed(_))));
        assert!(matches!(s.send(b"x", None), Err(Error::Closed(_))));
        s.close();
    }

    #[test]
    fn the_timed_lock_gives_up_at_the_deadline() {
        let g = TimedLock::new();
        let held = g.enter(None).unwrap();
        let t0 = Instant::now();
        assert!(matches!(
            g.enter(Some(t0 + Duration::from_millis(30))),
            Err(Error::Timeout)
        ));
        assert!(t0.elapsed() >= Duration::from_millis(30));
        drop(held);
        assert!(g.enter(Some(Instant::now())).is_ok());
    }
}
