//! The transport shared by every socket-backed stream (TCP, UDP, Unix, vsock).
//!
//! The socket is non-blocking and all I/O happens on the caller's thread: a
//! receive reads what is there, or waits with `poll` until the deadline; a send
//! writes, waiting for room the same way. `close` shuts the socket down, which
//! wakes a call blocked in `poll` on another thread. No thread hand-off sits on
//! the data path, so a round trip through a stream costs what it costs on a raw
//! socket.
//!
//! A send that has written part of its data when its deadline passes is not
//! undone: the rest is handed to a short-lived flusher thread and the send
//! counts as accepted, so that a send is all or nothing and no byte is ever lost
//! or sent twice.

use crate::error::{Error, Result};
use crate::stream::{Stream, Transport};
use crate::sys;
use crate::util::lock;
use socket2::Socket;
use std::io::{self, Read};
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The largest UDP payload we send (IPv4: 65535 - 8 - 20).
pub(crate) const MAX_DATAGRAM: usize = 65507;
/// Receive buffer for one datagram: larger than any UDP payload (IPv6 allows
/// 65527), so that a datagram is never truncated.
const DATAGRAM_BUF: usize = 65536;
/// How long `close` waits for data that a timed-out send left to the flusher.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Whether the socket carries a byte stream or datagrams.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Bytes,
    Datagrams,
}

struct Shared {
    sock: Socket,
    name: String,
    kind: Kind,
    closing: AtomicBool,
    /// Our sending direction was shut down (`send_eof`).
    eof_sent: AtomicBool,
    flush: Mutex<Flush>,
    flushed: Condvar,
    recv: Mutex<Recv>,
}

/// The receiving side's state.
#[derive(Default)]
struct Recv {
    /// Set once the receiving direction has ended: `None` inside = EOF. A
    /// socket reports an error once; the stream reports it on every receive.
    end: Option<Option<Error>>,
    /// Datagram sockets: the datagram being delivered and how far.
    datagram: Vec<u8>,
    pos: usize,
}

#[derive(Default)]
struct Flush {
    thread: Option<JoinHandle<()>>,
    running: bool,
    result: Option<Result<()>>,
    eof_pending: bool,
}

struct FdTransport(Arc<Shared>);

/// Wraps a connected socket into a [`Stream`].
pub(crate) fn stream(sock: Socket, name: String, kind: Kind) -> Result<Stream> {
    sock.set_nonblocking(true)
        .map_err(|e| Error::io(&name, &e))?;
    let shared = Arc::new(Shared {
        sock,
        name: name.clone(),
        kind,
        closing: AtomicBool::new(false),
        eof_sent: AtomicBool::new(false),
        flush: Mutex::new(Flush::default()),
        flushed: Condvar::new(),
        recv: Mutex::new(Recv::default()),
    });
    Ok(Stream::new(name, FdTransport(shared), Vec::new()))
}

impl Shared {
    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Reads once into `buf`, waiting for data until `deadline` (`None` when
    /// it passed).
    fn read(&self, buf: &mut [u8], deadline: Option<Instant>) -> io::Result<Option<usize>> {
        loop {
            match (&self.sock).read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Closed from another thread: a UDP socket shut down
                    // polls readable (hung up) but its reads still say
                    // EAGAIN, so the close must be seen here, not by a read
                    // (a byte stream's reads see it as the end of stream).
                    if self.kind == Kind::Datagrams && self.is_closing() {
                        return Err(io::Error::new(io::ErrorKind::NotConnected, "closed"));
                    }
                    if sys::wait(self.sock.as_fd(), libc::POLLIN, deadline)? == 0 {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn receive_bytes(
        &self,
        r: &mut Recv,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<Option<usize>> {
        match self.read(buf, deadline) {
            Ok(None) => Err(Error::Timeout),
            Ok(Some(0)) if self.reset_behind_eof() => {
                let e = Error::Connection(format!("{}: connection reset by peer", self.name));
                r.end = Some(Some(e.clone()));
                Err(e)
            }
            Ok(Some(0)) => {
                r.end = Some(None);
                Ok(None)
            }
            Ok(Some(n)) => Ok(Some(n)),
            Err(e) => {
                let e = Error::io(&self.name, &e);
                r.end = Some(Some(e.clone()));
                Err(e)
            }
        }
    }

    fn receive_datagram(
        &self,
        r: &mut Recv,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<Option<usize>> {
        if r.pos >= r.datagram.len() {
            r.pos = 0;
            r.datagram.resize(DATAGRAM_BUF, 0);
            match self.read(&mut r.datagram, deadline) {
                Ok(Some(n)) => r.datagram.truncate(n),
                Ok(None) => {
                    r.datagram.clear();
                    return Err(Error::Timeout);
                }
                // An ICMP error (port unreachable) is about one datagram; the
                // socket stays usable.
                Err(e) => {
                    r.datagram.clear();
                    return Err(Error::io(&self.name, &e));
                }
            }
            if r.datagram.is_empty() {
                return Ok(Some(0));
            }
        }
        let n = (r.datagram.len() - r.pos).min(buf.len());
        buf[..n].copy_from_slice(&r.datagram[r.pos..r.pos + n]);
        r.pos += n;
        Ok(Some(n))
    }

    /// Writes `data` from `off` until done or `deadline`; returns how far it got.
    fn write(&self, data: &[u8], off: usize, deadline: Option<Instant>) -> Result<usize> {
        self.write_with(data.len(), off, deadline, |off| {
            self.sock.send_with_flags(&data[off..], libc::MSG_NOSIGNAL)
        })
    }

    /// Writes the concatenation of `parts` from `off` until done or
    /// `deadline` (one `writev` per attempt); returns how far it got.
    fn write_parts(&self, parts: &[&[u8]], off: usize, deadline: Option<Instant>) -> Result<usize> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        self.write_with(total, off, deadline, |off| {
            let mut slices = Vec::with_capacity(parts.len());
            let mut skip = off;
            for p in parts {
                if skip >= p.len() {
                    skip -= p.len();
                    continue;
                }
                slices.push(io::IoSlice::new(&p[skip..]));
                skip = 0;
            }
            self.sock
                .send_vectored_with_flags(&slices, libc::MSG_NOSIGNAL)
        })
    }

    /// Runs `attempt(off)` (a non-blocking write of what is left from `off`
    /// on) until `total` bytes are written, waiting for the socket to take
    /// more until `deadline`; returns how far it got.
    fn write_with(
        &self,
        total: usize,
        mut off: usize,
        deadline: Option<Instant>,
        mut attempt: impl FnMut(usize) -> io::Result<usize>,
    ) -> Result<usize> {
        while off < total {
            match attempt(off) {
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let ready = sys::wait(self.sock.as_fd(), libc::POLLOUT, deadline)
                        .map_err(|e| Error::io(&self.name, &e))?;
                    if ready == 0 {
                        return Ok(off);
                    }
                }
                Err(e) => return Err(self.send_error(&e)),
            }
        }
        Ok(off)
    }

    fn send_error(&self, e: &io::Error) -> Error {
        if self.is_closing() {
            Error::Closed(format!("{}: stream is closed", self.name))
        } else if e.raw_os_error() == Some(libc::EMSGSIZE) {
            Error::TooLarge(format!("{}: datagram too large", self.name))
        } else {
            Error::io(&self.name, e)
        }
    }

    fn send_datagram(&self, data: &[u8], deadline: Option<Instant>) -> Result<()> {
        if data.len() > MAX_DATAGRAM {
            return Err(Error::TooLarge(format!(
                "{}: a datagram holds at most {MAX_DATAGRAM} bytes, got {}",
                self.name,
                data.len()
            )));
        }
        loop {
            match self.sock.send_with_flags(data, libc::MSG_NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let ready = sys::wait(self.sock.as_fd(), libc::POLLOUT, deadline)
                        .map_err(|e| Error::io(&self.name, &e))?;
                    if ready == 0 {
                        return Err(Error::Timeout);
                    }
                }
                Err(e) => return Err(self.send_error(&e)),
            }
        }
    }

    /// Waits for a running flusher to finish, at most until `deadline`, and
    /// returns its result.
    fn wait_flush(&self, deadline: Option<Instant>) -> Result<()> {
        let mut f = lock(&self.flush);
        while f.running {
            f = match deadline {
                None => self
                    .flushed
                    .wait(f)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Error::Timeout);
                    }
                    self.flushed
                        .wait_timeout(f, left)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0
                }
            };
        }
        if let Some(t) = f.thread.take() {
            let _ = t.join();
        }
        f.result.take().unwrap_or(Ok(()))
    }

    /// Whether an end of stream read from a TCP socket is a reset whose
    /// error another call took (a socket reports a reset once: a send on
    /// another thread may be the one that sees it, and the next read then
    /// finds an end of stream). A connection the peer reset is CLOSED; one it
    /// ended with a FIN is not, until we end our side too.
    fn reset_behind_eof(&self) -> bool {
        !self.eof_sent.load(Ordering::Acquire)
            && self.kind == Kind::Bytes
            && sys::tcp_closed(self.sock.as_fd())
    }

    fn shutdown_write(&self) -> Result<()> {
        self.eof_sent.store(true, Ordering::Release);
        match self.sock.shutdown(Shutdown::Write) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.send_error(&e)),
        }
    }
}

/// Finishes a send in the background (see the module docs).
fn flush_rest(s: Arc<Shared>, rest: Vec<u8>) {
    let result = s.write(&rest, 0, None).map(|_| ());
    let mut f = lock(&s.flush);
    let result = match result {
        Ok(()) if f.eof_pending => s.shutdown_write(),
        r => r,
    };
    if let Err(e) = &result {
        log::debug!("{}: background send failed: {e}", s.name);
    }
    f.result = Some(result);
    f.running = false;
    s.flushed.notify_all();
}

impl FdTransport {
    /// Hands the rest of a partly written send to a flusher thread; the send
    /// counts as accepted.
    fn flush_in_background(&self, rest: Vec<u8>) -> Result<()> {
        let s = &self.0;
        let mut f = lock(&s.flush);
        f.running = true;
        let shared = s.clone();
        match sys::spawn("jw-flush", move || flush_rest(shared, rest)) {
            Ok(t) => {
                f.thread = Some(t);
                Ok(())
            }
            Err(e) => {
                f.running = false;
                Err(Error::io("spawning the flusher thread", &e))
            }
        }
    }

    /// Settles a stream send that wrote `off` of `total` bytes before its
    /// deadline: done, nothing sent ([`Error::Timeout`]), or in flight, its
    /// `rest` (from `off` on) finished in the background.
    fn settle(&self, total: usize, off: usize, rest: impl FnOnce() -> Vec<u8>) -> Result<()> {
        if off == total {
            Ok(())
        } else if off == 0 {
            Err(Error::Timeout)
        } else {
            self.flush_in_background(rest())
        }
    }
}

impl Transport for FdTransport {
    fn send(&self, data: &[u8], deadline: Option<Instant>) -> Result<()> {
        let s = &self.0;
        s.wait_flush(deadline)?;
        if s.kind == Kind::Datagrams {
            return s.send_datagram(data, deadline);
        }
        let off = s.write(data, 0, deadline)?;
        self.settle(data.len(), off, || data[off..].to_vec())
    }

    fn send_parts(&self, parts: &[&[u8]], deadline: Option<Instant>) -> Result<()> {
        let s = &self.0;
        if s.kind == Kind::Datagrams {
            return self.send(&parts.concat(), deadline);
        }
        s.wait_flush(deadline)?;
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let off = s.write_parts(parts, 0, deadline)?;
        self.settle(total, off, || parts.concat().split_off(off))
    }

    fn half_closes(&self) -> bool {
        self.0.kind == Kind::Bytes
    }

    fn receive(&self, buf: &mut [u8], deadline: Option<Instant>) -> Result<Option<usize>> {
        let s = &self.0;
        let mut r = lock(&s.recv);
        if let Some(end) = &r.end {
            return end.clone().map_or(Ok(None), Err);
        }
        match s.kind {
            Kind::Bytes => s.receive_bytes(&mut r, buf, deadline),
            Kind::Datagrams => s.receive_datagram(&mut r, buf, deadline),
        }
    }

    fn socket(&self) -> Option<BorrowedFd<'_>> {
        (self.0.kind == Kind::Bytes).then(|| self.0.sock.as_fd())
    }

    fn flush(&self, deadline: Option<Instant>) -> Result<()> {
        self.0.wait_flush(deadline)
    }

    fn send_eof(&self) -> Result<()> {
        let s = &self.0;
        let mut f = lock(&s.flush);
        if f.running {
            f.eof_pending = true;
            return Ok(());
        }
        drop(f);
        s.shutdown_write()
    }

    fn close(&self) {
        let s = &self.0;
        {
            let mut f = lock(&s.flush);
            let until = Instant::now() + CLOSE_LINGER;
            while f.running {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    log::warn!("{}: closing with unsent data", s.name);
                    break;
                }
                f = s
                    .flushed
                    .wait_timeout(f, left)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
        }
        s.closing.store(true, Ordering::Release);
        // Wakes a receiver, sender or flusher blocked in poll.
        let _ = s.sock.shutdown(Shutdown::Both);
        let thread = lock(&s.flush).thread.take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;

    /// A socket reports a reset once: when a send takes it, the next read
    /// finds an end of stream, which must not pass for the peer's clean end
    /// (a websocket bridge's two directions, one sending and one receiving,
    /// once told its client 1000 for a target that was killed).
    #[test]
    fn a_reset_that_a_send_reported_still_fails_the_receive() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("tcp://{}", l.local_addr().unwrap());
        let s = crate::connect(&url, Some(Duration::from_secs(5))).unwrap();
        let (peer, _) = l.accept().unwrap();
        socket2::SockRef::from(&peer)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(peer);
        let until = Instant::now() + Duration::from_secs(5);
        while s.send(b"x", Some(Duration::from_secs(1))).is_ok() {
            assert!(Instant::now() < until, "sends never failed");
            std::thread::sleep(Duration::from_millis(5));
        }
        let r = s.receive(&mut [0u8; 8], Some(Duration::from_secs(1)));
        assert!(matches!(r, Err(Error::Connection(_))), "{r:?}");
        // And so on every later receive.
        let r = s.receive(&mut [0u8; 8], Some(Duration::from_secs(1)));
        assert!(matches!(r, Err(Error::Connection(_))), "{r:?}");

        // A FIN is a clean end, also after our own end went.
        let s = crate::connect(&url, Some(Duration::from_secs(5))).unwrap();
        let (peer, _) = l.accept().unwrap();
        s.send_eof().unwrap();
        drop(peer);
        assert_eq!(
            s.receive(&mut [0u8; 8], Some(Duration::from_secs(5))),
            Ok(None)
        );
    }

    #[test]
    fn a_close_wakes_a_udp_receive_blocked_on_another_thread() {
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let sock = Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        sock.connect(&peer.local_addr().unwrap().into()).unwrap();
        sock.set_nonblocking(true).unwrap();
        let s = std::sync::Arc::new(stream(sock, "udp:test".into(), Kind::Datagrams).unwrap());
        let r = s.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let _ = tx.send(r.receive(&mut [0u8; 64], None));
        });
        std::thread::sleep(Duration::from_millis(100)); // let it block
        s.close();
        let got = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the receive woke");
        assert!(matches!(got, Err(Error::Closed(_))), "{got:?}");
        t.join().unwrap();
    }

    #[test]
    fn send_parts_is_all_or_nothing_and_keeps_the_order() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let s = stream(
            Socket::from(OwnedFd::from(a)),
            "unix:pair".into(),
            Kind::Bytes,
        )
        .unwrap();
        let head = vec![1u8; 10];
        let body: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        let soon = || Some(Instant::now() + Duration::from_millis(30));
        // Nobody reads: part goes out, the rest is finished in the background
        // and the send counts as accepted.
        s.send_parts_until(&[&head, &body], soon()).unwrap();
        // Meanwhile a send that cannot go in time sends nothing.
        assert_eq!(
            s.send_parts_until(&[b"a", b"b"], soon()),
            Err(Error::Timeout)
        );
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            b.read_to_end(&mut all).unwrap();
            all
        });
        s.send_parts_until(&[b"x", b"", b"yz"], None).unwrap();
        s.send_eof().unwrap();
        let all = reader.join().unwrap();
        assert_eq!(all.len(), head.len() + body.len() + 3);
        assert!(all[..10] == head[..], "the first part");
        assert!(all[10..10 + body.len()] == body[..], "the second part");
        assert_eq!(&all[10 + body.len()..], b"xyz");
        s.close();
    }
}
