//! The relay: bytes copied both ways between two streams until both
//! directions have ended ([`forward`]), spliced in the kernel between two
//! sockets, pumped through the streams' own calls otherwise. Forwarding
//! listeners, the websocket bridge's peers and the router's exporter all
//! move their bytes with it.

use crate::error::{Error, Result};
use crate::stream::Stream;
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
/// thread alone and moves the bytes with `splice(2)`, never through user space
/// (copying through a buffer where a socket cannot splice); otherwise each
/// direction has a thread.
pub fn forward(a: &Stream, b: &Stream) -> Result<()> {
    let r = match (a.socket(), b.socket()) {
        (Some(fa), Some(fb)) => relay(a, b, fa, fb),
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

/// One direction of a [`relay`]: bytes spliced from `src` into a pipe and from
/// the pipe into `dst`.
struct Leg<'a> {
    /// The side `src` is; `dst` is the other.
    side: Side,
    src: &'a Stream,
    dst: &'a Stream,
    from: BorrowedFd<'a>,
    to: BorrowedFd<'a>,
    hold: Hold,
    cap: usize,
    held: usize,
    moved: u64,
    eof: bool,
    done: bool,
}

impl<'a> Leg<'a> {
    fn new(
        (src, side): (&'a Stream, Side),
        dst: &'a Stream,
        from: BorrowedFd<'a>,
        to: BorrowedFd<'a>,
        splice: bool,
    ) -> Result<Leg<'a>> {
        let (hold, cap) = if !splice {
            (
                Hold::Buffer {
                    buf: vec![0u8; FORWARD_CHUNK],
                    start: 0,
                },
                FORWARD_CHUNK,
            )
        } else {
            let (r, w, cap) =
                sys::pipe(RELAY_PIPE).map_err(|e| Error::io("creating a pipe", &e))?;
            (Hold::Pipe { r, w }, cap)
        };
        Ok(Leg {
            side,
            src,
            dst,
            from,
            to,
            hold,
            cap,
            held: 0,
            moved: 0,
            eof: false,
            done: false,
        })
    }

    /// Moves what can move now without waiting.
    fn advance(&mut self) -> std::result::Result<(), Failure> {
        loop {
            let mut progress = false;
            let room = self.room();
            if !self.eof && room > 0 {
                match self.hold.fill(self.from, self.held, room) {
                    Ok(0) => {
                        self.eof = true;
                        progress = true;
                    }
                    Ok(n) => {
                        self.held += n;
                        self.src.count_received(n);
                        progress = true;
                    }
                    Err(e) => self.fail(&e, self.side)?,
                }
            }
            if self.held > 0 {
                match self.hold.drain(self.to, self.held) {
                    Ok(n) => {
                        self.held -= n;
                        if self.held == 0 {
                            self.hold.reset();
                        }
                        self.moved += n as u64;
                        if n > 0 {
                            self.dst.count_sent(n);
                        }
                        progress |= n > 0;
                    }
                    Err(e) => self.fail(&e, self.side.other())?,
                }
            }
            if self.eof && self.held == 0 && !self.done {
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

    fn room(&self) -> usize {
        match &self.hold {
            Hold::Pipe { .. } => self.cap - self.held,
            Hold::Buffer { start, .. } => self.cap - start - self.held,
        }
    }

    /// What an I/O error of side `on`'s socket means: nothing (would block),
    /// or the end of the relay.
    fn fail(&self, e: &io::Error, on: Side) -> std::result::Result<(), Failure> {
        let st = if on == self.side { self.src } else { self.dst };
        match e.raw_os_error() {
            Some(libc::EAGAIN) => Ok(()),
            Some(libc::EINVAL) if self.moved == 0 && self.held == 0 => Err(Failure::own(
                Error::Unsupported(format!("{} cannot splice", st.name())),
            )),
            _ if st.is_closed() => Err(Failure::of(
                on,
                Error::Closed(format!("{}: stream is closed", st.name())),
            )),
            _ => Err(Failure::of(on, Error::io(st.name(), e))),
        }
    }

    /// The descriptors this direction waits on, and for what.
    fn interest(&self, fds: &mut Vec<libc::pollfd>) {
        if self.done {
            return;
        }
        if !self.eof && self.room() > 0 {
            fds.push(libc::pollfd {
                fd: self.from.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if self.held > 0 {
            fds.push(libc::pollfd {
                fd: self.to.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            });
        }
    }
}

/// Where a relay direction keeps bytes between reading and writing them.
enum Hold {
    /// A pipe: bytes are spliced in and out, never copied to user space.
    Pipe { r: OwnedFd, w: OwnedFd },
    /// A buffer: bytes are read into `buf[start..start + held]` and sent on.
    Buffer { buf: Vec<u8>, start: usize },
}

impl Hold {
    /// Takes up to `room` bytes from `from`; 0 at end of stream.
    fn fill(&mut self, from: BorrowedFd<'_>, held: usize, room: usize) -> io::Result<usize> {
        match self {
            Hold::Pipe { w, .. } => sys::splice(from, w.as_fd(), room),
            Hold::Buffer { buf, start } => {
                let at = *start + held;
                (&*socket2::SockRef::from(&from)).read(&mut buf[at..at + room])
            }
        }
    }

    /// Gives up to `held` bytes to `to`.
    fn drain(&mut self, to: BorrowedFd<'_>, held: usize) -> io::Result<usize> {
        match self {
            Hold::Pipe { r, .. } => sys::splice(r.as_fd(), to, held),
            Hold::Buffer { buf, start } => {
                let n = socket2::SockRef::from(&to)
                    .send_with_flags(&buf[*start..*start + held], libc::MSG_NOSIGNAL)?;
                *start += n;
                Ok(n)
            }
        }
    }

    /// Called when everything held has gone out.
    fn reset(&mut self) {
        if let Hold::Buffer { start, .. } = self {
            *start = 0;
        }
    }
}

/// [`forward`] between two sockets on the calling thread: one `poll` loop
/// serving both directions, the bytes spliced through a pipe per direction.
fn relay(
    a: &Stream,
    b: &Stream,
    fa: BorrowedFd<'_>,
    fb: BorrowedFd<'_>,
) -> std::result::Result<(), Failure> {
    // Data an earlier timed-out send left to a background flusher goes first.
    a.flush(None).map_err(|e| Failure::of(Side::A, e))?;
    b.flush(None).map_err(|e| Failure::of(Side::B, e))?;
    let _sigpipe = sys::SigpipeGuard::new();
    let legs = |splice| -> Result<[Leg<'_>; 2]> {
        Ok([
            Leg::new((a, Side::A), b, fa, fb, splice)?,
            Leg::new((b, Side::B), a, fb, fa, splice)?,
        ])
    };
    let spliced = match legs(true) {
        Ok(mut legs) => run_legs(a, b, &mut legs),
        // Out of descriptors for the pipes, say: copying needs none.
        Err(e) => Err(Failure::own(Error::Unsupported(format!("no pipe: {e}")))),
    };
    match spliced {
        Err(Failure {
            error: Error::Unsupported(why),
            ..
        }) => {
            log::debug!(
                "forward {} <-> {}: {why}; copying instead",
                a.name(),
                b.name()
            );
            run_legs(a, b, &mut legs(false).map_err(Failure::own)?)
        }
        r => r,
    }
}

/// The relay loop over some directions: move what can move, then wait.
fn run_legs(a: &Stream, b: &Stream, legs: &mut [Leg<'_>]) -> std::result::Result<(), Failure> {
    let mut fds = Vec::with_capacity(4);
    loop {
        for i in 0..legs.len() {
            if let Err(mut f) = legs[i].advance() {
                if let Error::Unsupported(why) = &f.error {
                    // Nothing has moved yet: the relay may still copy instead.
                    if legs_untouched(legs) {
                        return Err(f);
                    }
                    f.error = Error::Io(why.clone());
                }
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
        fds.clear();
        legs.iter().for_each(|l| l.interest(&mut fds));
        sys::wait_any(&mut fds, None)
            .map_err(|e| Failure::own(Error::io("waiting to forward", &e)))?;
    }
}

/// True when no byte has gone through any direction of a relay yet, so that
/// the forward can still start over another way.
fn legs_untouched(legs: &[Leg<'_>]) -> bool {
    legs.iter().all(|l| l.moved == 0 && l.held == 0 && !l.eof)
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
                    Leg::new((&a, Side::A), &b, fa, fb, false)?,
                    Leg::new((&b, Side::B), &a, fb, fa, false)?,
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
