//! Moving bytes between streams: [`forward`] copies both ways between two
//! streams until both directions have ended, and a [`Listener`] forwards every
//! connection it accepts to a new stream of a target [`Network`].
//!
//! ```no_run
//! use jumpwire::{forward::Listener, network::Network};
//!
//! // Every connection to the listener's port is forwarded to the device.
//! let device = Network::new("tcp://192.168.1.2:5201")?;
//! let listener = Listener::bind("tcp://127.0.0.1:0", &device)?;
//! println!("forwarding {} -> 192.168.1.2:5201", listener.address());
//! # Ok::<(), jumpwire::Error>(())
//! ```

use crate::acceptor::{Acceptor, Names, Refusal};
use crate::error::{Error, Result};
use crate::network::{self, Kind, Network};
use crate::stream::{Stream, lock};
use crate::sys;
use crate::url::{ListenEndpoint, TcpListenOptions, UnixPath};
use socket2::{Domain, SockAddr, Socket, Type};
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a listener waits for the target of an accepted connection.
const TARGET_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a forwarding direction that waits looks whether it was cancelled.
const CANCEL_CHECK: Duration = Duration::from_millis(200);
/// Bytes a forwarding direction moves per call.
const FORWARD_CHUNK: usize = 256 * 1024;
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
/// [reset](Stream::reset) (a TCP peer gets an RST once that stream is
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
fn both_ways(
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

/// A listening socket that forwards each accepted connection to a new stream of
/// its target network, on a thread of its own. Dropping or
/// [closing](Listener::close) it stops accepting, ends every forwarded
/// connection and joins every thread.
pub struct Listener {
    address: String,
    acceptor: Arc<Acceptor<Conn>>,
    unlink: Option<PathBuf>,
    job: Arc<Job>,
}

/// What each connection's thread needs.
struct Job {
    name: String,
    target: Network,
    /// A `ws://` listener: each connection is a websocket client (the
    /// websockify bridge), accepted before forwarding, with these limits.
    websocket: Option<crate::websocket::ServerConfig>,
    /// The bridge's handshake refusals.
    counters: Arc<crate::websocket::Counters>,
}

/// A forwarded connection's streams, for `close` to end.
#[derive(Default)]
struct Conn {
    streams: Vec<Arc<Stream>>,
    /// A bridged websocket client, told (close 1001) when the listener closes.
    ws: Option<Arc<crate::websocket::Ws>>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// Binds `listen_url` (`tcp://HOST:PORT`, port 0 for a free one, or
    /// `unix:/PATH` / `unix:@NAME`, or `ws://HOST:PORT` for the websocket
    /// bridge: each client's websocket handshake is answered and its messages
    /// are forwarded as bytes, the target's bytes come back as binary
    /// messages) and starts forwarding each accepted connection to a new
    /// stream of `target` (cloned), as [`forward`] does: a target that fails
    /// (or cannot be reached) resets its TCP client, a client that fails
    /// resets the target.
    ///
    /// At most `max_connections` connections are forwarded at once
    /// (`tcp://127.0.0.1:0?max_connections=100`; default 1024; `unix:` URLs
    /// take no options and use the default, `ws://` has its own option):
    /// each holds a thread, a target stream and about six descriptors. One
    /// more is refused at once (reset, logged, counted in
    /// [`refused`](Listener::refused)); so is a client accepted while the
    /// process is out of descriptors.
    pub fn bind(listen_url: &str, target: &Network) -> Result<Listener> {
        let mut websocket = None;
        let mut max = TcpListenOptions::default().max_connections;
        let (sock, address, unlink) = match ListenEndpoint::parse(listen_url)? {
            ListenEndpoint::Tcp {
                host,
                port,
                options,
            } => {
                max = options.max_connections;
                let addr = network::resolve(&host, port, None, listen_url)?[0];
                let sock = bind(Domain::for_address(addr), &addr.into(), listen_url)?;
                let local = sock
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_socket())
                    .ok_or_else(|| Error::Internal("listener has no local address".into()))?;
                (sock, tcp_address(local), None)
            }
            ListenEndpoint::Unix(path) => {
                let sock = bind(
                    Domain::UNIX,
                    &network::unix_addr(&path, listen_url)?,
                    listen_url,
                )?;
                let (address, unlink) = match path {
                    UnixPath::Path(p) => (format!("unix:{}", p.display()), Some(p)),
                    UnixPath::Abstract(n) => (format!("unix:@{n}"), None),
                };
                (sock, address, unlink)
            }
            ListenEndpoint::Websocket {
                host,
                port,
                options,
            } => {
                let (sock, address) = crate::websocket::bind_listener(listen_url, &host, port)?;
                websocket = Some(crate::websocket::ServerConfig::from(options));
                (sock, address, None)
            }
            other => {
                return Err(Error::Unsupported(format!(
                    "{other}: forwarding listeners take tcp://, unix: or ws:// URLs"
                )));
            }
        };

        let job = Arc::new(Job {
            name: address.clone(),
            target: target.clone(),
            websocket,
            counters: Arc::default(),
        });
        let names = Names {
            peer: tcp_address,
            accept_thread: "jw-accept",
            conn_thread: "jw-conn",
        };
        let admit: Box<crate::acceptor::Admit<Conn>> = match &job.websocket {
            // The bridge is an HTTP server: over its limit, HTTP 503.
            Some(_) => {
                let job = job.clone();
                Box::new(move |acc: &Acceptor<Conn>, load| bridge_admit(acc, load, &job))
            }
            // A plain forward: over its limit, a reset.
            // (Its connections have no handshake: all of them count.)
            None => Box::new(move |_, load| {
                (load.served + load.handshaking >= max).then(|| Refusal {
                    why: format!("{max} connections are open (the maximum): reset"),
                    answer: b"",
                })
            }),
        };
        let acceptor = Acceptor::start(
            sock,
            address.clone(),
            names,
            admit,
            Box::new({
                let job = job.clone();
                move |acc, id, conn, peer| serve_conn(acc, &job, id, conn, peer)
            }),
        )?;
        log::info!("{address}: listening, forwarding to {}", target.endpoint());
        Ok(Listener {
            address,
            acceptor,
            unlink,
            job,
        })
    }

    /// The bound address, with the real port: `tcp://127.0.0.1:PORT`,
    /// `tcp://[::1]:PORT`, `unix:/PATH`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The listener's address as a D-Bus address, what a client puts in
    /// `DBUS_SESSION_BUS_ADDRESS` to reach a bus forwarded here:
    /// `unix:path=/PATH` (escaped as D-Bus escapes values), `unix:abstract=NAME`,
    /// `tcp:host=127.0.0.1,port=PORT`, or `tcp:host=%3a%3a1,port=PORT,family=ipv6`.
    pub fn dbus_address(&self) -> Result<String> {
        let local = self
            .acceptor
            .socket()
            .local_addr()
            .map_err(|e| Error::io(&self.address, &e))?;
        network::dbus::listener_address(&self.address, &local)
    }

    /// How many forwarded connections are open now.
    pub fn connections(&self) -> usize {
        self.acceptor.count(|_| true)
    }

    /// How many clients were refused: because `max_connections` were open
    /// (a `ws://` bridge answers them with HTTP 503, other listeners reset
    /// them), or because the process was out of descriptors (reset).
    pub fn refused(&self) -> u64 {
        self.acceptor.refused()
    }

    /// A `ws://` bridge's handshake refusals of every kind so far (each is
    /// logged too); all zero for other listeners.
    pub fn refusal_stats(&self) -> crate::websocket::RefusalStats {
        self.job.counters.stats(self.acceptor.refused())
    }

    /// Stops accepting, closes every forwarded connection (both of its
    /// streams), and joins every thread. Closing twice does nothing.
    pub fn close(&self) {
        let until = Instant::now() + Duration::from_millis(50);
        let closed = self.acceptor.close(|c| {
            if let Some(ws) = &c.ws {
                ws.abort(
                    crate::websocket::CLOSE_GOING_AWAY,
                    "listener closing",
                    until,
                );
            }
            for st in &c.streams {
                st.close();
            }
        });
        if closed {
            if let Some(p) = &self.unlink {
                let _ = std::fs::remove_file(p);
            }
            log::info!("{}: listener closed", self.address);
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.close();
    }
}

/// A listening, non-blocking stream socket bound to `addr`.
pub(crate) fn bind(domain: Domain, addr: &SockAddr, name: &str) -> Result<Socket> {
    let sock = Socket::new(domain, Type::STREAM, None).map_err(|e| Error::io(name, &e))?;
    if domain != Domain::UNIX {
        sock.set_reuse_address(true)
            .map_err(|e| Error::io(name, &e))?;
    }
    sock.bind(addr)
        .map_err(|e| Error::Io(format!("{name}: cannot bind: {e}")))?;
    sock.listen(1024).map_err(|e| Error::io(name, &e))?;
    sock.set_nonblocking(true)
        .map_err(|e| Error::io(name, &e))?;
    Ok(sock)
}

/// `tcp://127.0.0.1:PORT` or `tcp://[::1]:PORT`.
pub(crate) fn tcp_address(a: SocketAddr) -> String {
    format!("tcp://{a}")
}

/// Adds a stream to a connection's record so that `close` can end it; false if
/// the listener is closing (the caller then closes the stream itself).
fn register(acc: &Acceptor<Conn>, id: u64, st: &Arc<Stream>) -> bool {
    acc.update(id, |c| c.streams.push(st.clone())).is_some()
}

fn serve_conn(acc: &Acceptor<Conn>, job: &Job, id: u64, conn: Socket, peer: String) {
    let run = || -> Result<()> {
        let a = Arc::new(network::fd::stream(conn, peer.clone(), Kind::Bytes)?);
        if !register(acc, id, &a) {
            a.close();
            return Ok(());
        }
        let (a, ws) = if let Some(ws) = &job.websocket {
            let (s, handle) = ws.accept(a, acc, id, &job.counters)?;
            let s = Arc::new(s);
            let h = handle.clone();
            if !register(acc, id, &s) || acc.update(id, |c| c.ws = Some(h)).is_none() {
                s.close();
                return Ok(());
            }
            (s, Some(handle))
        } else {
            (a, None)
        };
        let b = match job.target.connect(Some(TARGET_CONNECT_TIMEOUT)) {
            Ok(b) => Arc::new(b),
            Err(e) => {
                if let Some(ws) = &ws {
                    ws.abort(
                        crate::websocket::CLOSE_INTERNAL,
                        "target unreachable",
                        Instant::now() + BRIDGE_CLOSE_SEND,
                    );
                }
                // Never a clean end: a TCP client gets a reset.
                a.reset();
                return Err(e);
            }
        };
        if !register(acc, id, &b) {
            b.close();
            return Ok(());
        }
        let r = match &ws {
            Some(ws) => bridge(&a, ws, &b),
            None => forward(&a, &b),
        };
        a.close();
        b.close();
        r
    };
    match run() {
        Ok(()) => log::debug!("{}: {peer} done", job.name),
        Err(e) => log::info!("{}: {peer}: {e}", job.name),
    }
    // Release the streams (and their sockets) now.
    acc.finish(id);
}

/// The bridge's admission: `max_connections` served, `max_handshakes` in
/// progress (see [`crate::acceptor::admit_http`]).
fn bridge_admit(
    acc: &Acceptor<Conn>,
    load: crate::acceptor::Load,
    job: &Job,
) -> Option<crate::acceptor::Refusal> {
    let ws = job.websocket.as_ref()?;
    crate::acceptor::admit_http(
        acc,
        load,
        ws.max_connections,
        ws.max_handshakes,
        |c: &Conn| c.streams.iter().for_each(|s| s.close()),
        || job.counters.count_evicted(),
    )
}

/// How long the bridge waits, once one side has ended, for the other to
/// finish: the client's answer to our close frame, or the target's EOF after
/// the client closed.
const BRIDGE_LINGER: Duration = Duration::from_secs(2);

/// How long the bridge's close frame after a target failure may wait for
/// room to send.
const BRIDGE_CLOSE_SEND: Duration = Duration::from_millis(500);

/// When a bridge's two directions must have finished (once one side ended).
struct Linger(std::sync::Mutex<Option<Instant>>);

impl Linger {
    /// Starts the countdown (if not started).
    fn start(&self) {
        crate::stream::lock(&self.0).get_or_insert_with(|| Instant::now() + BRIDGE_LINGER);
    }

    /// Ends both directions now.
    fn now(&self) {
        *crate::stream::lock(&self.0) = Some(Instant::now());
    }

    /// The next wake-up: a short wait, or the end of the countdown. `None`
    /// once the countdown is over.
    fn next(&self) -> Option<Instant> {
        let soon = Instant::now() + CANCEL_CHECK;
        match *crate::stream::lock(&self.0) {
            None => Some(soon),
            Some(end) if end <= Instant::now() => None,
            Some(end) => Some(end.min(soon)),
        }
    }
}

/// The websocket bridge between a websocket client (`ws`, with its
/// connection `wsh`) and the target stream. Bytes go both ways as in
/// [`forward`], and each side's end reaches the other:
/// - the target's EOF becomes a close frame with 1000 after every byte before
///   it; the client's answering close half-closes the target;
/// - a target failure (a reset, a failed send) becomes a close frame with
///   1011 and the client is cut off at once: nothing it sends afterwards is
///   taken (its later sends fail), as none of it could reach the target;
/// - the client's close half-closes the target after every byte before it;
///   what the target still sends cannot reach the client any more and is
///   discarded until the target's EOF (at most [`BRIDGE_LINGER`]).
fn bridge(ws: &Stream, wsh: &crate::websocket::Ws, target: &Stream) -> Result<()> {
    let linger = Linger(std::sync::Mutex::new(None));
    let (r1, r2) = both_ways(
        ("jw-bridge", "bridge"),
        || client_to_target(ws, wsh, target, &linger),
        || target_to_client(target, ws, wsh, &linger),
    );
    r1.and(r2)
}

/// The client's messages to the target, then the target's half-close.
fn client_to_target(
    ws: &Stream,
    wsh: &crate::websocket::Ws,
    target: &Stream,
    linger: &Linger,
) -> Result<()> {
    let mut buf = vec![0u8; FORWARD_CHUNK];
    loop {
        let Some(until) = linger.next() else {
            return Ok(());
        };
        match ws.receive_until(&mut buf, Some(until)) {
            Ok(Some(n)) => loop {
                let Some(until) = linger.next() else {
                    return Ok(());
                };
                match target.send_until(&buf[..n], Some(until)) {
                    Ok(()) => break,
                    Err(Error::Timeout) => {}
                    Err(e) => {
                        // The target failed: closing it wakes the other
                        // direction.
                        target_failed(target, ws, wsh, &e);
                        linger.now();
                        target.close();
                        return Err(e);
                    }
                }
            },
            Ok(None) => {
                // The client closed (or answered our close): every byte it
                // sent is with the target now.
                match target.send_eof() {
                    Ok(()) | Err(Error::Closed(_)) => {}
                    Err(e) => log::debug!("bridge {}: {e}", target.name()),
                }
                linger.start();
                return Ok(());
            }
            Err(Error::Timeout) => {}
            Err(e) => {
                // A protocol breach (answered with its close code already),
                // an error close from the client, or the client vanished or
                // was cut off: nothing more can reach it. Closing the target
                // wakes the other direction.
                linger.now();
                target.close();
                return Err(e);
            }
        }
    }
}

/// A target failure: the client is told (close 1011) and cut off at once,
/// so that nothing it sends afterwards is taken as if it could still reach
/// the target (its later sends fail).
fn target_failed(target: &Stream, ws: &Stream, wsh: &crate::websocket::Ws, e: &Error) {
    log::info!(
        "bridge {}: {e}: closing {} with 1011",
        target.name(),
        ws.name()
    );
    wsh.abort(
        crate::websocket::CLOSE_INTERNAL,
        "the target failed",
        Instant::now() + BRIDGE_CLOSE_SEND,
    );
}

/// The target's bytes to the client as binary messages; its end as a close
/// frame (1000 at EOF, 1011 on a failure).
fn target_to_client(
    target: &Stream,
    ws: &Stream,
    wsh: &crate::websocket::Ws,
    linger: &Linger,
) -> Result<()> {
    let mut buf = vec![0u8; FORWARD_CHUNK];
    loop {
        let Some(until) = linger.next() else {
            return Ok(());
        };
        match target.receive_until(&mut buf, Some(until)) {
            Ok(Some(n)) => loop {
                if wsh.is_closing() {
                    // The client closed: discard until the target's EOF.
                    break;
                }
                let Some(until) = linger.next() else {
                    return Ok(());
                };
                match ws.send_until(&buf[..n], Some(until)) {
                    Ok(()) => break,
                    Err(Error::Timeout) => {}
                    Err(_) if wsh.is_closing() => break,
                    Err(e) => {
                        linger.now();
                        return Err(e);
                    }
                }
            },
            Ok(None) => {
                // Every byte before the EOF went out before the close frame.
                wsh.send_close(
                    crate::websocket::CLOSE_NORMAL,
                    "",
                    Instant::now() + BRIDGE_LINGER,
                );
                linger.start();
                return Ok(());
            }
            Err(Error::Timeout) => {}
            Err(Error::Closed(m)) => {
                linger.now();
                return Err(Error::Closed(m));
            }
            Err(e) => {
                target_failed(target, ws, wsh, &e);
                linger.now();
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::Shutdown;
    use std::os::unix::net::UnixStream;

    fn pair() -> (Stream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        let s = network::fd::stream(
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
