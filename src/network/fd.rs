//! The transport shared by every socket-backed stream (TCP, UDP, Unix, vsock).
//!
//! The socket is non-blocking. A reader thread waits for it to become readable
//! and queues what it reads; sends are written on the caller's thread and wait
//! for room with `poll` until their deadline. A send that has written part of its
//! data when the deadline passes is not undone: the rest is handed to a short-
//! lived flusher thread and the send counts as accepted, so that a send is all or
//! nothing and no byte is ever lost or sent twice.

use crate::error::{Error, Result};
use crate::stream::{Event, Feeder, Stream, Transport, lock, queue};
use crate::sys;
use socket2::Socket;
use std::io;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes read per system call (and the largest chunk queued) on byte streams.
const READ_CHUNK: usize = 256 * 1024;
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
    flush: Mutex<Flush>,
    flushed: Condvar,
}

#[derive(Default)]
struct Flush {
    thread: Option<JoinHandle<()>>,
    running: bool,
    result: Option<Result<()>>,
    eof_pending: bool,
}

struct FdTransport(Arc<Shared>);

/// Wraps a connected, non-blocking socket into a [`Stream`] with its reader
/// thread.
pub(crate) fn stream(sock: Socket, name: String, kind: Kind) -> Result<Stream> {
    sock.set_nonblocking(true)
        .map_err(|e| Error::io(&name, &e))?;
    let shared = Arc::new(Shared {
        sock,
        name,
        kind,
        closing: AtomicBool::new(false),
        flush: Mutex::new(Flush::default()),
        flushed: Condvar::new(),
    });
    let (feeder, tap) = queue();
    let reader = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("jw-reader".into())
            .spawn(move || read_loop(&shared, &feeder))
            .map_err(|e| Error::io("spawning the reader thread", &e))?
    };
    let name = shared.name.clone();
    Ok(Stream::new(name, FdTransport(shared), tap, vec![reader]))
}

fn read_loop(s: &Shared, feeder: &Feeder) {
    let fd = s.sock.as_fd();
    loop {
        if s.closing.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = sys::wait(fd, libc::POLLIN, None) {
            feeder.feed(Event::Error(Error::io(&s.name, &e), true));
            return;
        }
        if s.closing.load(Ordering::Acquire) {
            return;
        }
        let max = match s.kind {
            Kind::Bytes => READ_CHUNK,
            Kind::Datagrams => DATAGRAM_BUF,
        };
        let mut buf = Vec::with_capacity(max);
        match sys::read_into(fd, &mut buf, max) {
            Ok(0) if s.kind == Kind::Bytes => {
                feeder.feed(Event::Eof);
                return;
            }
            Ok(n) => {
                if n < max / 4 {
                    buf.shrink_to_fit();
                }
                if !feeder.feed(Event::Data(buf)) {
                    return;
                }
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                if s.closing.load(Ordering::Acquire) {
                    return;
                }
                // On a connected UDP socket an ICMP error (port unreachable) is
                // about one datagram; the socket stays usable.
                let terminal = s.kind == Kind::Bytes;
                if !feeder.feed(Event::Error(Error::io(&s.name, &e), terminal)) || terminal {
                    return;
                }
            }
        }
    }
}

impl Shared {
    /// Writes `data` from `off` until done or `deadline`; returns how far it got.
    fn write(&self, data: &[u8], mut off: usize, deadline: Option<Instant>) -> Result<usize> {
        while off < data.len() {
            match self.sock.send(&data[off..]) {
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
        if self.closing.load(Ordering::Acquire) {
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
            match self.sock.send(data) {
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

    fn shutdown_write(&self) -> Result<()> {
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

impl Transport for FdTransport {
    fn send(&self, data: &[u8], deadline: Option<Instant>) -> Result<()> {
        let s = &self.0;
        s.wait_flush(deadline)?;
        if s.kind == Kind::Datagrams {
            return s.send_datagram(data, deadline);
        }
        let off = s.write(data, 0, deadline)?;
        if off == data.len() {
            return Ok(());
        }
        if off == 0 {
            return Err(Error::Timeout);
        }
        // Part of the data is in flight: finish it in the background.
        let rest = data[off..].to_vec();
        let mut f = lock(&s.flush);
        f.running = true;
        let shared = s.clone();
        match std::thread::Builder::new()
            .name("jw-flush".into())
            .spawn(move || flush_rest(shared, rest))
        {
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

    fn half_closes(&self) -> bool {
        self.0.kind == Kind::Bytes
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
        // Wakes the reader (and a flusher) blocked in poll.
        let _ = s.sock.shutdown(Shutdown::Both);
        let thread = lock(&s.flush).thread.take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}
