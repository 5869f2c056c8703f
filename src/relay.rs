//! The relay: bytes copied both ways between two streams until both
//! directions have ended ([`forward`]): spliced in the kernel between two
//! sockets, bridged by the other stream's transport between a socket and a
//! stream that can (a router stream), pumped through the streams' own calls
//! otherwise. Forwarding listeners, the websocket bridge's peers and the
//! router's exporter all move their bytes with it.

use crate::error::{Error, Result};
use crate::stream::{Culprit, Stream};
use crate::sys;
use crate::util::lock;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often a forwarding direction that waits looks whether it was cancelled.
pub(crate) const CANCEL_CHECK: Duration = Duration::from_millis(200);
/// Bytes a forwarding direction moves per call.
pub(crate) const FORWARD_CHUNK: usize = 256 * 1024;
/// What a spliced forwarding direction may hold in its pipe.
const RELAY_PIPE: usize = 1024 * 1024;

/// Copies `a -> b` and `b -> a` until both directions have ended. When one side
/// finishes sending (EOF), the other side's sending direction is half-closed
/// (`send_eof`) and the other direction goes on. Returns `Ok` when both
/// directions ended with EOF, or the first error; after an error in one
/// direction the other is stopped.
///
/// A side that fails (a reset, any error of its receive, send or half-close)
/// never reaches the other side as a clean end: the other stream is
/// reset (a TCP peer gets an RST once that stream is
/// dropped; until then its calls return [`Error::Closed`]). Otherwise the
/// streams are borrowed, not closed; closing either of them (from another
/// thread) ends the forward with [`Error::Closed`] and resets nothing. Other
/// sends and receives on the two streams must wait until it returns.
///
/// Between two socket streams (TCP, Unix, vsock) this runs on the calling
/// thread alone and moves bulk data with `splice(2)`, never through user
/// space, and short messages with `recv` and `send` through a small buffer
/// (copying everything where a socket cannot splice). Between a socket and
/// a stream whose transport can forward it itself (a router stream, see
/// `Transport::forward_socket`) it runs on the calling thread too;
/// otherwise each direction has a thread.
pub fn forward(a: &Stream, b: &Stream) -> Result<()> {
    let r = match (a.socket(), b.socket()) {
        (Some(fa), Some(fb)) => relay(a, b, fa, fb),
        (Some(fa), None) => b
            .forward_socket(a, fa)
            .map_or_else(|| pumps(a, b), |r| r.map_err(|e| Failure::by(Side::B, e))),
        (None, Some(fb)) => a
            .forward_socket(b, fb)
            .map_or_else(|| pumps(a, b), |r| r.map_err(|e| Failure::by(Side::A, e))),
        _ => pumps(a, b),
    };
    r.map_err(|f| {
        let (failed, others) = match f.side {
            Some(Side::A) => (a.name(), vec![b]),
            Some(Side::B) => (b.name(), vec![a]),
            // Closed by its owner: the owner decides how it ends.
            None if matches!(f.error, Error::Closed(_)) => return f.error,
            // The forward itself could not go on: neither peer may take
            // that for a clean end.
            None => ("the forward", vec![a, b]),
        };
        let names: Vec<&str> = others.iter().map(|s| s.name()).collect();
        log::info!(
            "forward {} <-> {}: {failed} failed ({}): resetting {}",
            a.name(),
            b.name(),
            f.error,
            names.join(" and ")
        );
        others.iter().for_each(|s| s.reset());
        f.error
    })
}

/// One of the two streams of a forward.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    A,
    B,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// Why a forward ended early: the error, and the side it came from when one
/// stream failed (`None`: a stream was closed under the forward, or the
/// forward itself could not go on).
#[derive(Debug)]
struct Failure {
    error: Error,
    side: Option<Side>,
}

impl Failure {
    /// `error` of stream `side`; a stream closed under the forward (by its
    /// owner, not by its peer) is nobody's failure.
    fn of(side: Side, error: Error) -> Failure {
        let side = (!matches!(error, Error::Closed(_))).then_some(side);
        Failure { error, side }
    }

    /// A failure of a forward that the stream on side `own` ran (see
    /// [`Stream::forward_socket`]).
    fn by(own: Side, (error, culprit): (Error, Option<Culprit>)) -> Failure {
        let side = match culprit {
            Some(Culprit::Own) => Some(own),
            Some(Culprit::Peer) => Some(own.other()),
            None => None,
        };
        let side = side.filter(|_| !matches!(error, Error::Closed(_)));
        Failure { error, side }
    }

    /// An error of the forward itself.
    fn own(error: Error) -> Failure {
        Failure { error, side: None }
    }
}

/// [`forward`] through the streams' own receive and send, one thread per
/// direction.
fn pumps(a: &Stream, b: &Stream) -> std::result::Result<(), Failure> {
    let cancel = Cancel(AtomicBool::new(false), Mutex::new(None));
    let (r1, r2) = both_ways(
        ("jw-forward", "forwarding"),
        || pump((a, Side::A), (b, Side::B), &cancel),
        || pump((b, Side::B), (a, Side::A), &cancel),
    );
    let r = match (r1, r2) {
        (Err(e), _) | (Ok(()), Err(e)) if !is_cancel(&e) => Err(e),
        (Err(e), Err(f)) => Err(if is_cancel(&e) { f } else { e }),
        (r1, r2) => r1.and(r2),
    };
    r.map_err(|error| Failure {
        side: lock(&cancel.1).filter(|_| !matches!(error, Error::Closed(_))),
        error,
    })
}

/// Runs `forth` on this thread and `back` on a scoped thread (named
/// `name.0`; `name.1` says what it is in errors) at the same time, and
/// returns both results.
pub(crate) fn both_ways(
    name: (&str, &str),
    forth: impl FnOnce() -> Result<()>,
    back: impl FnOnce() -> Result<()> + Send,
) -> (Result<()>, Result<()>) {
    let (thread, what) = name;
    std::thread::scope(|s| {
        let back = match sys::spawn_scoped(s, thread, back) {
            Ok(h) => h,
            Err(e) => {
                return (
                    Err(Error::io(format!("spawning a {what} thread"), &e)),
                    Ok(()),
                );
            }
        };
        let r1 = forth();
        let r2 = back
            .join()
            .unwrap_or_else(|_| Err(Error::Internal(format!("{what} thread panicked"))));
        (r1, r2)
    })
}

/// Set when one direction of a forward failed: the other stops. Beside it,
/// the side whose stream failed first.
struct Cancel(AtomicBool, Mutex<Option<Side>>);

fn cancelled() -> Error {
    Error::Closed("forwarding cancelled".into())
}

fn is_cancel(e: &Error) -> bool {
    matches!(e, Error::Closed(m) if m == "forwarding cancelled")
}

/// One direction of a forward through the streams' own receive and send:
/// `src` and `dst` with their sides. A failure records its stream's side.
fn pump(src: (&Stream, Side), dst: (&Stream, Side), cancel: &Cancel) -> Result<()> {
    let ((src, from), (dst, to)) = (src, dst);
    let mut buf = vec![0u8; FORWARD_CHUNK];
    let r = (|| loop {
        if cancel.0.load(Ordering::Acquire) {
            return Err((cancelled(), to));
        }
        let n = match src.receive_until(&mut buf, Some(Instant::now() + CANCEL_CHECK)) {
            Ok(Some(n)) => n,
            Ok(None) => return dst.send_eof().map_err(|e| (e, to)),
            Err(Error::Timeout) => continue,
            Err(e) => return Err((e, from)),
        };
        loop {
            match dst.send_until(&buf[..n], Some(Instant::now() + CANCEL_CHECK)) {
                Ok(()) => break,
                Err(Error::Timeout) if !cancel.0.load(Ordering::Acquire) => continue,
                Err(Error::Timeout) => return Err((cancelled(), to)),
                Err(e) => return Err((e, to)),
            }
        }
    })();
    r.map_err(|(e, side)| {
        if !is_cancel(&e) {
            log::debug!("forward {} -> {}: {e}", src.name(), dst.name());
            lock(&cancel.1).get_or_insert(side);
        }
        cancel.0.store(true, Ordering::Release);
        e
    })
}

/// One direction of a [`relay`]: bytes taken from `src` and given to `dst`.
///
/// A spliced direction moves bulk data through a pipe, never through user
/// space; a short message costs less copied than spliced (two page
/// references and a pipe buffer per message), so after a read that found
/// little, the next bytes are read into a small buffer with `recv` and sent
/// with `send`, and only a read that fills that buffer goes back to splicing.
/// Bytes in the buffer are always older than bytes in the pipe: the buffer is
/// filled only while nothing is held, and emptied before the pipe.
struct Leg<'a> {
    /// The side `src` is; `dst` is the other.
    side: Side,
    src: &'a Stream,
    dst: &'a Stream,
    from: BorrowedFd<'a>,
    to: BorrowedFd<'a>,
    /// Whether this direction splices (or only copies): false between
    /// sockets that cannot, or when no pipe can be made.
    splices: bool,
    /// The pipe, made when the first bulk read comes.
    pipe: Option<Pipe>,
    /// Bytes in the pipe.
    piped: usize,
    /// The last splice into the pipe found no room although it held less
    /// than its capacity (a pipe holds a number of buffers, not bytes): read
    /// no more until some of it has gone out.
    pipe_full: bool,
    /// Bytes read into user space: `buf[start..end]` is still to be sent.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The last read found little: read the next bytes into `buf`.
    small: bool,
    /// `src` may have bytes (or its end, or an error) to take: false after a
    /// read found it empty, until `poll` says otherwise.
    readable: bool,
    /// `dst` may take bytes: false after a write found it full, until `poll`
    /// says otherwise.
    writable: bool,
    moved: u64,
    eof: bool,
    done: bool,
}

/// A pipe a direction splices through.
struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    cap: usize,
}

/// What a spliced direction reads into user space while its messages are
/// small; a read that fills it goes back to splicing.
const SMALL_READ: usize = 16 * 1024;

impl<'a> Leg<'a> {
    fn new(
        (src, side): (&'a Stream, Side),
        dst: &'a Stream,
        from: BorrowedFd<'a>,
        to: BorrowedFd<'a>,
        splice: bool,
    ) -> Leg<'a> {
        let size = if splice { SMALL_READ } else { FORWARD_CHUNK };
        Leg {
            side,
            src,
            dst,
            from,
            to,
            splices: splice,
            pipe: None,
            piped: 0,
            pipe_full: false,
            buf: vec![0u8; size],
            start: 0,
            end: 0,
            small: true,
            readable: true,
            writable: true,
            moved: 0,
            eof: false,
            done: false,
        }
    }

    /// Bytes taken from `src` and not yet given to `dst`.
    fn held(&self) -> usize {
        self.end - self.start + self.piped
    }

    /// Whether the next read goes into the buffer (or else into the pipe).
    fn reads_into_buffer(&self) -> bool {
        !self.splices || (self.small && self.held() == 0)
    }

    /// How many bytes the next read may take (0: none now).
    fn room(&self) -> usize {
        match &self.pipe {
            _ if self.reads_into_buffer() => self.buf.len() - self.end,
            _ if self.pipe_full => 0,
            Some(p) => p.cap - self.piped,
            // Made by the read that needs it.
            None => RELAY_PIPE,
        }
    }

    fn wants_read(&self) -> bool {
        !self.eof && self.room() > 0
    }

    /// Moves what can move now without waiting, trying only the descriptors
    /// that may be ready.
    fn advance(&mut self) -> std::result::Result<(), Failure> {
        loop {
            let mut progress = false;
            if self.readable && self.wants_read() {
                progress |= self.fill()?;
            }
            if self.writable && self.held() > 0 {
                progress |= self.drain()?;
            }
            if self.eof && self.held() == 0 && !self.done {
                self.done = true;
                self.dst
                    .send_eof()
                    .map_err(|e| Failure::of(self.side.other(), e))?;
            }
            if !progress {
                return Ok(());
            }
        }
    }

    /// One read from `src`; true if it took bytes or found the end.
    fn fill(&mut self) -> std::result::Result<bool, Failure> {
        let into_buffer = self.reads_into_buffer();
        if !into_buffer && self.pipe.is_none() {
            match sys::pipe(RELAY_PIPE) {
                Ok((r, w, cap)) => self.pipe = Some(Pipe { r, w, cap }),
                Err(e) => {
                    // Out of descriptors, say: copying needs none.
                    log::debug!("forward: no pipe ({e}); copying instead");
                    self.copy_only();
                    return Ok(true);
                }
            }
        }
        let room = self.room();
        let r = match &self.pipe {
            Some(p) if !into_buffer => sys::splice(self.from, p.w.as_fd(), room),
            _ => (&*socket2::SockRef::from(&self.from)).read(&mut self.buf[self.end..]),
        };
        let n = match r {
            Ok(0) => {
                self.eof = true;
                return Ok(true);
            }
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                self.readable = false;
                // Nothing to read, or no pipe buffer free: either way the
                // pipe must drain before a read can make progress.
                self.pipe_full = !into_buffer && self.piped > 0;
                return Ok(false);
            }
            Err(e) if !into_buffer && e.raw_os_error() == Some(libc::EINVAL) => {
                self.unpipe(self.side)?;
                return Ok(true);
            }
            // Tried again by the caller's loop.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
            Err(e) => return Err(self.fail(&e, self.side)),
        };
        self.src.count_received(n);
        if into_buffer {
            self.end += n;
            // A full buffer: bulk data is coming; splice the rest.
            self.small &= n < room || !self.splices;
        } else {
            self.piped += n;
            self.small = n < SMALL_READ;
        }
        // A short read emptied the socket (or, for the pipe, filled it):
        // wait for `poll` before the next.
        if n < room {
            self.readable = false;
        }
        Ok(true)
    }

    /// One write to `dst`, from the buffer first, then from the pipe; true
    /// if it gave bytes.
    fn drain(&mut self) -> std::result::Result<bool, Failure> {
        let from_buffer = self.end > self.start;
        let (r, want) = match &self.pipe {
            _ if from_buffer => (
                socket2::SockRef::from(&self.to)
                    .send_with_flags(&self.buf[self.start..self.end], libc::MSG_NOSIGNAL),
                self.end - self.start,
            ),
            Some(p) => (sys::splice(p.r.as_fd(), self.to, self.piped), self.piped),
            None => return Ok(false),
        };
        let n = match r {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                self.writable = false;
                return Ok(false);
            }
            Err(e) if !from_buffer && e.raw_os_error() == Some(libc::EINVAL) => {
                self.unpipe(self.side.other())?;
                return Ok(true);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
            Err(e) => return Err(self.fail(&e, self.side.other())),
        };
        if from_buffer {
            self.start += n;
            if self.start == self.end {
                (self.start, self.end) = (0, 0);
            }
        } else {
            self.piped -= n;
            if n > 0 {
                self.pipe_full = false;
            }
        }
        if n < want {
            self.writable = false;
        }
        self.moved += n as u64;
        if n > 0 {
            self.dst.count_sent(n);
        }
        Ok(n > 0)
    }

    /// A socket that cannot splice (side `on`'s): this direction copies from
    /// now on, after taking back what its pipe holds (behind what its buffer
    /// holds, which is older).
    fn unpipe(&mut self, on: Side) -> std::result::Result<(), Failure> {
        let st = if on == self.side { self.src } else { self.dst };
        log::debug!("forward: {} cannot splice; copying instead", st.name());
        self.copy_only();
        let Some(p) = self.pipe.take() else {
            return Ok(());
        };
        let size = self.buf.len().max(self.end + self.piped);
        self.buf.resize(size, 0);
        let mut r = std::fs::File::from(p.r);
        while self.piped > 0 {
            match r.read(&mut self.buf[self.end..self.end + self.piped]) {
                Ok(n) if n > 0 => {
                    self.end += n;
                    self.piped -= n;
                }
                Ok(_) => {
                    return Err(Failure::own(Error::Internal(
                        "a relay pipe ended early".into(),
                    )));
                }
                Err(e) => return Err(Failure::own(Error::io("reading a relay pipe", &e))),
            }
        }
        self.pipe_full = false;
        self.readable = true;
        self.writable = true;
        Ok(())
    }

    /// This direction copies from now on, through a buffer of
    /// [`FORWARD_CHUNK`].
    fn copy_only(&mut self) {
        self.splices = false;
        if self.buf.len() < FORWARD_CHUNK {
            self.buf.resize(FORWARD_CHUNK, 0);
        }
    }

    /// What an I/O error of side `on`'s socket means for the relay.
    fn fail(&self, e: &io::Error, on: Side) -> Failure {
        let st = if on == self.side { self.src } else { self.dst };
        if st.is_closed() {
            Failure::of(
                on,
                Error::Closed(format!("{}: stream is closed", st.name())),
            )
        } else {
            Failure::of(on, Error::io(st.name(), e))
        }
    }
}

/// [`forward`] between two sockets on the calling thread: one `poll` loop
/// serving both directions, each spliced through a pipe of its own (copying
/// where a socket cannot splice, or no pipe can be made).
fn relay(
    a: &Stream,
    b: &Stream,
    fa: BorrowedFd<'_>,
    fb: BorrowedFd<'_>,
) -> std::result::Result<(), Failure> {
    // Data an earlier timed-out send left to a background flusher goes first.
    a.flush_until(None).map_err(|e| Failure::of(Side::A, e))?;
    b.flush_until(None).map_err(|e| Failure::of(Side::B, e))?;
    let _sigpipe = sys::SigpipeGuard::new();
    let mut legs = [
        Leg::new((a, Side::A), b, fa, fb, true),
        Leg::new((b, Side::B), a, fb, fa, true),
    ];
    run_legs(a, b, &mut legs)
}

/// The relay loop over both directions (`legs[0]` reads `a`, `legs[1]` reads
/// `b`): move what can move, then wait in `poll` for what the directions wait
/// for, one `pollfd` per socket.
fn run_legs(a: &Stream, b: &Stream, legs: &mut [Leg<'_>; 2]) -> std::result::Result<(), Failure> {
    const READ: libc::c_short = libc::POLLIN | libc::POLLHUP | libc::POLLERR;
    const WRITE: libc::c_short = libc::POLLOUT | libc::POLLHUP | libc::POLLERR;
    loop {
        for leg in legs.iter_mut() {
            if let Err(f) = leg.advance() {
                log::debug!("forward {} <-> {}: {}", a.name(), b.name(), f.error);
                return Err(f);
            }
        }
        if legs.iter().all(|l| l.done) {
            return Ok(());
        }
        for s in [a, b] {
            if s.is_closed() {
                return Err(Failure::own(Error::Closed(format!(
                    "{}: stream is closed",
                    s.name()
                ))));
            }
        }
        // fds[i]: the socket legs[i] reads and legs[1 - i] writes.
        let mut fds = [0, 1].map(|i| {
            let reads = !legs[i].done && legs[i].wants_read();
            let other = &legs[1 - i];
            let writes = !other.done && other.held() > 0;
            let events =
                if reads { libc::POLLIN } else { 0 } | if writes { libc::POLLOUT } else { 0 };
            libc::pollfd {
                // A socket nobody waits on is left out: poll would report
                // its hang-up at once, again and again.
                fd: if events == 0 {
                    -1
                } else {
                    legs[i].from.as_raw_fd()
                },
                events,
                revents: 0,
            }
        });
        sys::wait_any(&mut fds, None)
            .map_err(|e| Failure::own(Error::io("waiting to forward", &e)))?;
        for i in 0..2 {
            let ready = fds[i].revents;
            legs[i].readable |= ready & READ != 0;
            legs[1 - i].writable |= ready & WRITE != 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::{Kind, fd};
    use socket2::Socket;
    use std::io::{Read, Write};
    use std::net::Shutdown;
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;

    fn pair() -> (Stream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        let s = fd::stream(
            Socket::from(std::os::fd::OwnedFd::from(a)),
            "unix:pair".into(),
            Kind::Bytes,
        )
        .unwrap();
        (s, b)
    }

    #[test]
    fn forward_copies_both_ways_and_propagates_half_close() {
        let (a, mut pa) = pair();
        let (b, mut pb) = pair();
        std::thread::scope(|s| {
            let f = s.spawn(|| forward(&a, &b));
            pa.write_all(b"to b").unwrap();
            let mut buf = [0u8; 4];
            pb.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"to b");
            pb.write_all(b"to a").unwrap();
            pa.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"to a");
            // a's peer finishes: b's peer sees EOF, and b -> a still works.
            pa.shutdown(Shutdown::Write).unwrap();
            assert_eq!(pb.read(&mut buf).unwrap(), 0);
            pb.write_all(b"more").unwrap();
            pa.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"more");
            pb.shutdown(Shutdown::Write).unwrap();
            assert_eq!(pa.read(&mut buf).unwrap(), 0);
            assert_eq!(f.join().unwrap(), Ok(()));
        });
    }

    #[test]
    fn the_copying_relay_moves_bytes_and_half_closes_too() {
        let (a, mut pa) = pair();
        let (b, mut pb) = pair();
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::thread::scope(|s| {
            let f = s.spawn(|| {
                let (fa, fb) = (a.socket().unwrap(), b.socket().unwrap());
                let mut legs = [
                    Leg::new((&a, Side::A), &b, fa, fb, false),
                    Leg::new((&b, Side::B), &a, fb, fa, false),
                ];
                run_legs(&a, &b, &mut legs).map_err(|f| f.error)
            });
            let writer = s.spawn(|| {
                pa.write_all(&big).unwrap();
                pa.shutdown(Shutdown::Write).unwrap();
                pa
            });
            let mut got = Vec::new();
            pb.read_to_end(&mut got).unwrap();
            assert!(got == big, "every byte, in order");
            let mut pa = writer.join().unwrap();
            pb.write_all(b"back").unwrap();
            pb.shutdown(Shutdown::Write).unwrap();
            let mut back = Vec::new();
            pa.read_to_end(&mut back).unwrap();
            assert_eq!(back, b"back");
            assert_eq!(f.join().unwrap(), Ok(()));
        });
    }

    #[test]
    fn short_messages_and_bulk_keep_their_order_through_buffer_and_pipe() {
        let (a, mut pa) = pair();
        let (b, mut pb) = pair();
        // Short messages (copied), then bulk (the first 16 KiB copied, the
        // rest spliced), then short again, each way.
        let sizes = [10usize, 3, 100_000, 7, 2_000_000, 1, 16 * 1024, 5];
        let data = |seed: u32| -> Vec<Vec<u8>> {
            let mut k = seed;
            sizes
                .iter()
                .map(|&n| {
                    (0..n)
                        .map(|_| {
                            k = k.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                            (k >> 16) as u8
                        })
                        .collect()
                })
                .collect()
        };
        let (there, back) = (data(1), data(2));
        std::thread::scope(|s| {
            let f = s.spawn(|| forward(&a, &b));
            for (out, inn) in there.iter().zip(&back) {
                // One message each way at once, each written while the
                // other is read.
                let (mut wa, mut wb) = (pa.try_clone().unwrap(), pb.try_clone().unwrap());
                let sent = s.spawn(move || wa.write_all(out).unwrap());
                let answered = s.spawn(move || wb.write_all(inn).unwrap());
                let mut got = vec![0u8; out.len()];
                pb.read_exact(&mut got).unwrap();
                assert!(&got == out, "{} bytes arrived in order", out.len());
                let mut got = vec![0u8; inn.len()];
                pa.read_exact(&mut got).unwrap();
                assert!(&got == inn, "{} bytes came back in order", inn.len());
                sent.join().unwrap();
                answered.join().unwrap();
            }
            pa.shutdown(Shutdown::Write).unwrap();
            pb.shutdown(Shutdown::Write).unwrap();
            assert_eq!(f.join().unwrap(), Ok(()));
        });
    }

    #[test]
    fn a_direction_that_stops_splicing_sends_its_buffer_then_its_pipe() {
        let (a, mut pa) = pair();
        let (b, mut pb) = pair();
        let (fa, fb) = (a.socket().unwrap(), b.socket().unwrap());
        let mut leg = Leg::new((&a, Side::A), &b, fa, fb, true);
        let big: Vec<u8> = (0..SMALL_READ as u32 + 5000)
            .map(|i| (i % 253) as u8)
            .collect();
        pa.write_all(&big).unwrap();
        // Nothing may go out yet: the first 16 KiB land in the buffer, the
        // rest in the pipe.
        leg.writable = false;
        leg.advance().unwrap();
        assert_eq!((leg.end, leg.piped), (SMALL_READ, 5000));
        leg.unpipe(Side::B).unwrap();
        assert!(leg.pipe.is_none() && !leg.splices);
        assert_eq!((leg.end - leg.start, leg.piped), (big.len(), 0));
        leg.writable = true;
        leg.advance().unwrap();
        let mut got = vec![0u8; big.len()];
        pb.read_exact(&mut got).unwrap();
        assert!(got == big, "every byte, in order");
    }

    #[test]
    fn forward_returns_when_a_stream_is_closed_under_it() {
        let (a, _pa) = pair();
        let (b, _pb) = pair();
        let a = Arc::new(a);
        let f = {
            let a = a.clone();
            std::thread::spawn(move || forward(&a, &b))
        };
        std::thread::sleep(Duration::from_millis(50));
        a.close();
        let r = f.join().unwrap();
        assert!(matches!(r, Err(Error::Closed(_))), "{r:?}");
    }
}
