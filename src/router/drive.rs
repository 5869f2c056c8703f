//! Who drives a router client stream's runtime: the stream runtime, and the
//! library's driver thread that runs the runtimes of idle streams by
//! watching their sockets. An idea of its own, apart from how a router is
//! reached (`connect`, whose connectors hand each socket to [`Linger`] here)
//! and from what a call does (`client`, `export`, which run on the runtime).
//!
//! Each client stream and exporter has a runtime of its own
//! ([`StreamRuntime`], tokio's current-thread kind: no thread of its own) on
//! which its connection, its gRPC tasks and its timers live. The thread of a
//! caller inside a call of the stream drives it: a `send` queues the frames
//! and runs the connection until they are written, a `receive` runs it
//! while it has something to run and otherwise waits outside it, in an
//! `epoll` of its own over the connection's socket, woken by the kernel when
//! the router's frame arrives ([`StreamRuntime::wait_outside`]): a `send`
//! beside a waiting `receive` (a forward's two directions) then writes its
//! frames itself instead of waking the receiving thread to write them. A
//! receive that got its frame leaves the socket to the driver only at the
//! driver's next tick (it is likely back at once). A frame thus goes from the caller to the socket and back with no
//! thread hand-off of ours: on the 2-vCPU machines of this project the
//! context switches of a shared worker thread were most of a routed round
//! trip's latency.
//!
//! While no caller is inside a call, one library thread, the driver
//! ([`driver`]), runs the runtime:
//! - at once when the stream's socket becomes readable (or writable, after a
//!   write would have blocked), once the stream has sent something: so what
//!   a `send` left queued (its frames wait for the router's window updates)
//!   goes on without the caller, as on any socket;
//! - and every [`TICK`] for every stream, so that HTTP/2 PINGs are answered,
//!   keepalive goes on and timers fire.
//!
//! The socket is watched only while no caller is inside (a caller entering
//! takes it out of the driver's `epoll`, the last one leaving puts it back),
//! so the driver never wakes for a frame a caller is waiting for. With
//! several threads inside one stream (one sending while another receives),
//! one of them runs the runtime for all, and the last one to leave runs
//! what their calls left ready. A thread inside blocks `SIGPIPE` unless the
//! process ignores it.

use super::CLOSE_GRACE;
use crate::error::{Error, Result};
use crate::util::lock;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll as MioPoll, Registry, Token};
use std::collections::HashMap;
use std::future::Future;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::runtime::Runtime;
use tokio::sync::Notify;

/// How often the driver runs the runtime of every stream.
const TICK: Duration = Duration::from_secs(1);

/// The runtime of one call, driven by whichever thread is inside a call of
/// the stream, or by the driver. Dropping it ends its tasks and releases its
/// descriptors at once, without waiting for a blocking thread (a name lookup
/// that outlives a connect timeout ends on its own).
pub(super) struct StreamRuntime {
    rt: Option<Runtime>,
    sockets: Arc<Sockets>,
    /// What a caller waiting outside the runtime waits with; made on first
    /// use (`None` if it could not be made: such callers wait inside).
    #[allow(clippy::option_option)]
    outside: Mutex<Option<Option<Outside>>>,
}

/// A caller's wait outside the runtime (see [`StreamRuntime::wait_outside`]):
/// an `epoll` of its own over the connection's socket, and a doorbell that
/// the wakers of the caller's future ring.
struct Outside {
    poll: MioPoll,
    events: Events,
    bell: Arc<Bell>,
    /// The socket registered in `poll`, if any, with the number of the
    /// connection it belongs to (a later one may reuse the number).
    fd: Option<(RawFd, usize)>,
}

/// The token of the connection's socket in [`Outside::poll`].
const SOCKET: Token = Token(0);
/// The token of the doorbell in [`Outside::poll`].
const BELL: Token = Token(1);

/// Wakes a caller waiting outside the runtime.
struct Bell(mio::Waker);

impl std::task::Wake for Bell {
    fn wake(self: Arc<Self>) {
        let _ = self.0.wake();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let _ = self.0.wake();
    }
}

impl Outside {
    fn new() -> std::io::Result<Outside> {
        let poll = MioPoll::new()?;
        let bell = Arc::new(Bell(mio::Waker::new(poll.registry(), BELL)?));
        Ok(Outside {
            poll,
            events: Events::with_capacity(4),
            bell,
            fd: None,
        })
    }

    /// Watches `fd` (the connection's socket now) instead of the one before.
    fn watch(&mut self, fd: Option<(RawFd, usize)>) {
        if self.fd == fd {
            return;
        }
        if let Some((old, _)) = self.fd.take() {
            // Gone already if it was closed (the kernel forgets it then).
            let _ = self.poll.registry().deregister(&mut SourceFd(&old));
        }
        if let Some((fd, n)) = fd {
            let interest = Interest::READABLE | Interest::WRITABLE;
            match self
                .poll
                .registry()
                .register(&mut SourceFd(&fd), SOCKET, interest)
            {
                Ok(()) => self.fd = Some((fd, n)),
                Err(e) => log::debug!("router stream: watching socket {fd}: {e}"),
            }
        }
    }
}

/// One caller waiting outside the runtime, counted until dropped.
struct Waiting<'a>(&'a Sockets);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut w = lock(&self.0.watch);
        w.outside -= 1;
        w.deferred = true;
        self.0.rearm(&mut w);
    }
}

/// The shared state of a stream runtime's sockets: the driver's watch of
/// the connection's socket, the sockets lingering after the connection let
/// go of them, and the runtime going idle.
pub(super) struct Sockets {
    /// The stream's key in the driver's table and its `epoll` token.
    id: usize,
    watch: Mutex<Watch>,
    /// Set when a write to the socket would have blocked; cleared by the
    /// next write that goes through.
    write_blocked: AtomicBool,
    lingering: AtomicUsize,
    lingered: Notify,
    /// Notified each time the runtime is about to wait (nothing to run).
    idle: Notify,
    /// Set once the peer sent its first bytes on a connection (an HTTP/2
    /// server's SETTINGS); `heard` is notified then.
    spoke: AtomicBool,
    /// Connections made so far (a gRPC channel dials again on its own
    /// after its connection failed).
    dialled: AtomicUsize,
    /// Calls ending in the background (a session stream closed before the
    /// peer's GOAWAY came); `ended` is notified as each one ends.
    ending: AtomicUsize,
    ended: Notify,
    heard: Notify,
}

/// Who is inside the stream and whether the driver watches its socket.
#[derive(Default)]
struct Watch {
    /// The connection's socket; `None` once it is closed (so that its
    /// number, which the kernel may reuse, is never touched again).
    fd: Option<RawFd>,
    /// Threads inside a call of the stream.
    inside: usize,
    /// Threads waiting outside the runtime in a call of the stream (see
    /// [`StreamRuntime::wait_outside`]): they watch the socket themselves.
    outside: usize,
    /// The last caller to leave was a receive that waited outside: the
    /// driver's watch waits for the driver's next tick, since the caller is
    /// likely to come back at once (a forward's receive loop), and watching
    /// the socket in between would cost two `epoll_ctl` per received frame.
    deferred: bool,
    /// Two or more threads were inside at once since the last one left:
    /// the one driving may have left tasks woken by the others unrun.
    crowded: bool,
    /// Something was sent: from then on the socket is watched while no
    /// caller is inside.
    sent: bool,
    /// The interest the socket is registered with in the driver's `epoll`.
    armed: Option<Interest>,
}

impl Sockets {
    /// The interest to watch the socket for now, if it is to be watched.
    fn wanted(&self, w: &Watch) -> Option<Interest> {
        (w.inside == 0 && w.outside == 0 && w.sent && w.fd.is_some()).then(|| {
            if self.write_blocked.load(Ordering::Acquire) {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            }
        })
    }

    /// Brings the registration in the driver's `epoll` in line with
    /// [`Self::wanted`]. The watch lock is held.
    fn rearm(&self, w: &mut Watch) {
        let (Some(fd), Some(d)) = (w.fd, driver()) else {
            return;
        };
        let want = self.wanted(w);
        if want == w.armed || want.is_some() && w.deferred {
            return;
        }
        let mut src = SourceFd(&fd);
        let token = Token(self.id);
        let r = match (w.armed, want) {
            (None, Some(i)) => d.registry.register(&mut src, token, i),
            (Some(_), Some(i)) => d.registry.reregister(&mut src, token, i),
            (Some(_), None) => d.registry.deregister(&mut src),
            (None, None) => Ok(()),
        };
        w.armed = match r {
            Ok(()) => want,
            Err(e) => {
                log::debug!("router stream: watching socket {fd}: {e}");
                None
            }
        };
    }
}

impl Sockets {
    /// Whether the connection still holds its socket.
    pub(super) fn connected(&self) -> bool {
        lock(&self.watch).fd.is_some()
    }

    /// How many connections were made on this runtime so far.
    pub(super) fn dialled(&self) -> usize {
        self.dialled.load(Ordering::Acquire)
    }

    /// Counts a call ending in the background until the guard is dropped.
    pub(super) fn ending(self: &Arc<Self>) -> Ending {
        self.ending.fetch_add(1, Ordering::AcqRel);
        Ending(self.clone())
    }

    /// Completes once no call is ending in the background.
    pub(super) async fn all_ended(&self) {
        loop {
            let ended = self.ended.notified();
            if self.ending.load(Ordering::Acquire) == 0 {
                return;
            }
            ended.await;
        }
    }
}

/// A call ending in the background, counted until dropped.
pub(super) struct Ending(Arc<Sockets>);

impl Drop for Ending {
    fn drop(&mut self) {
        self.0.ending.fetch_sub(1, Ordering::AcqRel);
        self.0.ended.notify_waiters();
    }
}

impl StreamRuntime {
    pub(super) fn new(name: &str) -> Result<Arc<StreamRuntime>> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let sockets = Arc::new(Sockets {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            watch: Mutex::default(),
            write_blocked: AtomicBool::new(false),
            lingering: AtomicUsize::new(0),
            lingered: Notify::new(),
            idle: Notify::new(),
            spoke: AtomicBool::new(false),
            dialled: AtomicUsize::new(0),
            ending: AtomicUsize::new(0),
            ended: Notify::new(),
            heard: Notify::new(),
        });
        let idle = Arc::downgrade(&sockets);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .max_blocking_threads(1)
            .thread_name("jw-router-dns")
            .on_thread_park(move || {
                if let Some(s) = idle.upgrade() {
                    s.idle.notify_waiters();
                }
            })
            .build()
            .map_err(|e| Error::io(name, &e))?;
        let me = Arc::new(StreamRuntime {
            rt: Some(rt),
            sockets,
            outside: Mutex::new(None),
        });
        if let Some(d) = driver() {
            lock(&d.streams).insert(me.sockets.id, Arc::downgrade(&me));
        }
        Ok(me)
    }

    pub(super) fn rt(&self) -> &Runtime {
        self.rt.as_ref().expect("a live stream runtime")
    }

    pub(super) fn sockets(&self) -> &Arc<Sockets> {
        &self.sockets
    }

    /// Runs `fut` to completion on the caller's thread, driving the runtime
    /// meanwhile (unless another thread is driving it: then `fut` is polled
    /// here when woken). The driver does not watch the socket meanwhile.
    pub(super) fn block_on<F: Future>(&self, fut: F) -> F::Output {
        // The connection (and an exporter's bridge) writes to sockets from
        // this thread, which may be a C host's: writev has no MSG_NOSIGNAL.
        let _sigpipe = crate::sys::SigpipeGuard::unless_ignored();
        self.block_on_guarded(fut)
    }

    /// [`Self::block_on`] where the caller keeps `SIGPIPE` from the host.
    fn block_on_guarded<F: Future>(&self, fut: F) -> F::Output {
        let s = &self.sockets;
        {
            let mut w = lock(&s.watch);
            w.inside += 1;
            w.crowded |= w.inside > 1;
            w.deferred = false;
            s.rearm(&mut w);
        }
        let r = self.rt().block_on(fut);
        let leftovers = {
            let mut w = lock(&s.watch);
            w.inside -= 1;
            let last = w.inside == 0;
            let crowded = last && std::mem::take(&mut w.crowded);
            if !crowded {
                s.rearm(&mut w);
            }
            crowded
        };
        if leftovers {
            // The last one out after others: run what their calls woke (a
            // runtime returns from `block_on` as soon as the future is done,
            // before the tasks that became ready with it). One round runs
            // every ready task.
            self.rt().block_on(tokio::task::yield_now());
            s.rearm(&mut lock(&s.watch));
        }
        r
    }

    /// Records that the stream has sent something (see [`Watch::sent`]).
    pub(super) fn sent(&self) {
        lock(&self.sockets.watch).sent = true;
    }

    /// Runs the runtime until it has nothing left to do for now: the frames
    /// queued are written (as far as the windows and the socket let them
    /// go), what arrived is read, due timers have fired.
    pub(super) fn settle(&self) {
        self.block_on(self.until_idle());
    }

    /// Runs `fut` until it completes (`Some`) or `until` passes (`None`),
    /// driving the runtime only while it has something to run: in between,
    /// the caller waits outside it, in an `epoll` of its own over the
    /// connection's socket and a doorbell that `fut`'s wakers ring. Another
    /// thread's call meanwhile (a `send` beside this `receive`) then runs the
    /// runtime itself, writing its frames at once, instead of waking this
    /// thread to write them (a wake-up and two context switches per frame on
    /// the routed path's hot loop). What arrives on the socket wakes this
    /// thread, which runs the runtime; so does `fut`'s waker when another
    /// thread running the runtime delivered what `fut` waits for. Timers of
    /// the runtime's tasks fire at the next of these, or within [`TICK`].
    pub(super) fn wait_outside<F: Future>(
        &self,
        fut: F,
        until: Option<Instant>,
    ) -> Option<F::Output> {
        let mut fut = std::pin::pin!(fut);
        let mut held = self.outside.try_lock().ok();
        if let Some(o) = &mut held {
            if o.is_none() {
                let made = Outside::new();
                if let Err(e) = &made {
                    log::debug!("router stream: cannot wait outside the runtime: {e}");
                }
                **o = Some(made.ok());
            }
        }
        let _sigpipe = crate::sys::SigpipeGuard::unless_ignored();
        let Some(out) = held.as_mut().and_then(|o| o.as_mut()?.as_mut()) else {
            // Another caller waits outside already (or none can): inside.
            return self.block_on_guarded(async {
                match until {
                    Some(d) => tokio::time::timeout_at(d.into(), fut).await.ok(),
                    None => Some(fut.await),
                }
            });
        };
        let s = &self.sockets;
        let socket = || lock(&s.watch).fd.map(|fd| (fd, s.dialled()));
        {
            let mut w = lock(&s.watch);
            w.outside += 1;
            w.deferred = false;
            s.rearm(&mut w);
        }
        let _waiting = Waiting(s);
        out.watch(socket());
        let waker = std::task::Waker::from(out.bell.clone());
        loop {
            // Run the runtime until `fut` is done or nothing is left to run:
            // what arrived on the socket first (the runtime's I/O is looked
            // at when a task yields, before its tasks run again), then what
            // that woke.
            let done = self.block_on_guarded(async {
                let idle = async {
                    tokio::task::yield_now().await;
                    self.until_idle().await;
                };
                tokio::select! {
                    biased;
                    v = &mut fut => return Some(v),
                    () = idle => {}
                }
                // From now on `fut` rings the doorbell when woken. Polled
                // here, inside the runtime, and then one round of its tasks
                // run: what this poll woke (taking a frame wakes the
                // connection's task, to grant the window back) runs now.
                // Woken outside the runtime, it would wait for the next
                // call or tick, and with it what `fut` waits for.
                if let Poll::Ready(v) = fut.as_mut().poll(&mut Context::from_waker(&waker)) {
                    return Some(v);
                }
                tokio::task::yield_now().await;
                None
            });
            if done.is_some() {
                return done;
            }
            out.watch(socket());
            let now = Instant::now();
            let wait = match until {
                Some(d) if d <= now => return None,
                Some(d) => (d - now).min(TICK),
                None => TICK,
            };
            if let Err(e) = out.poll.poll(&mut out.events, Some(wait)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    log::debug!("router stream: waiting: {e}");
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    /// Completes when the runtime is next about to wait for I/O or a timer;
    /// at once if another thread is inside a call of the stream (that one
    /// drives the runtime, and the last one out runs what is left).
    pub(super) async fn until_idle(&self) {
        let idle = self.sockets.idle.notified();
        if lock(&self.sockets.watch).inside > 1 {
            return;
        }
        idle.await;
    }

    /// The driver's turn: runs the runtime until it is idle, if no caller is
    /// inside (one that is drives it already).
    fn drive(&self) {
        let s = &self.sockets;
        {
            let w = lock(&s.watch);
            if w.inside > 0 || w.outside > 0 {
                return;
            }
        }
        self.rt().block_on(self.sockets.idle.notified());
        let mut w = lock(&s.watch);
        w.deferred = false;
        s.rearm(&mut w);
    }

    /// Waits until the peer has sent its first bytes on the connection (an
    /// HTTP/2 server's SETTINGS frame comes first), or `until` passes
    /// ([`Error::Timeout`]): a server that accepts connections but never
    /// speaks HTTP/2 fails the dial in time instead of hanging every later
    /// call of the stream.
    pub(super) async fn peer_spoke(&self, until: Instant) -> Result<()> {
        let s = &self.sockets;
        tokio::time::timeout_at(until.into(), async {
            loop {
                let heard = s.heard.notified();
                if s.spoke.load(Ordering::Acquire) {
                    return;
                }
                heard.await;
            }
        })
        .await
        .map_err(|_| Error::Timeout)
    }

    /// Lets the connection see what the stream's end did (a call cancelled,
    /// a request stream ended) now rather than at the driver's next tick,
    /// then waits (until `until` at the latest) for the router to close its
    /// side of the sockets the connection has let go of: the router has then
    /// dropped the call, and its token can be dialled again.
    pub(super) fn let_go(&self, until: Instant) {
        self.settle();
        let s = &self.sockets;
        self.block_on(async {
            let _ = tokio::time::timeout_at(until.into(), async {
                loop {
                    let gone = s.lingered.notified();
                    if s.lingering.load(Ordering::Acquire) == 0 {
                        return;
                    }
                    gone.await;
                }
            })
            .await;
        });
    }
}

impl Drop for StreamRuntime {
    fn drop(&mut self) {
        if let Some(d) = driver() {
            lock(&d.streams).remove(&self.sockets.id);
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// The driver: its `epoll` (through mio) and the live streams by id.
struct Driver {
    registry: Registry,
    streams: Mutex<HashMap<usize, Weak<StreamRuntime>>>,
    /// Whether the driver holds runtimes now (between taking them from
    /// `streams` and letting go of them), and how many passes it finished.
    pass: Mutex<(bool, u64)>,
    /// Notified at the end of each pass.
    passed: Condvar,
}

/// The driver, started with the first stream. `None` if it cannot be
/// started (then streams are driven by their callers only, and a stream no
/// caller is inside waits for the next call).
fn driver() -> Option<&'static Driver> {
    static DRIVER: OnceLock<Option<Driver>> = OnceLock::new();
    DRIVER
        .get_or_init(|| match start_driver() {
            Ok(d) => Some(d),
            Err(e) => {
                log::warn!("router streams: cannot start the driver thread: {e}");
                None
            }
        })
        .as_ref()
}

fn start_driver() -> std::io::Result<Driver> {
    let poll = MioPoll::new()?;
    let registry = poll.registry().try_clone()?;
    crate::sys::spawn("jw-router-drive", move || run_driver(poll))?;
    Ok(Driver {
        registry,
        streams: Mutex::default(),
        pass: Mutex::default(),
        passed: Condvar::new(),
    })
}

thread_local! {
    /// Set on the driver's thread.
    static DRIVING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn run_driver(mut poll: MioPoll) {
    DRIVING.set(true);
    let mut events = Events::with_capacity(256);
    let mut next_tick = Instant::now() + TICK;
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        if let Err(e) = poll.poll(&mut events, Some(wait)) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                log::warn!("router streams: driver: {e}");
                std::thread::sleep(TICK);
            }
        }
        // The driver is started by the first stream, which then waits for
        // it in `driver()`: the table is there once that returns.
        let Some(d) = driver() else { return };
        let due: Vec<Arc<StreamRuntime>> = {
            let streams = lock(&d.streams);
            lock(&d.pass).0 = true;
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + TICK;
                streams.values().filter_map(Weak::upgrade).collect()
            } else {
                events
                    .iter()
                    .filter_map(|e| streams.get(&e.token().0).and_then(Weak::upgrade))
                    .collect()
            }
        };
        for rt in due {
            rt.drive();
        }
        let mut pass = lock(&d.pass);
        *pass = (false, pass.1.wrapping_add(1));
        d.passed.notify_all();
    }
}

/// Returns once the driver holds no stream runtime it took before this call
/// (at most [`QUIESCE_LIMIT`] later). The driver holds the runtimes it drives
/// while it drives them: a stream or connection let go of by its owner while
/// the driver drives its runtime is dropped, its runtime shut down and its
/// sockets closed, on the driver's thread at the end of that pass. Whoever
/// lets go of one (`jw_stream_close`, `jw_network_free`) waits here, so
/// that nothing of it is left once that returns (a host that exits then
/// must not find its connection still up).
pub(super) fn quiesce() {
    // Not on the driver's thread (it would wait for itself), nor inside a
    // runtime (a task never waits).
    if DRIVING.get() || tokio::runtime::Handle::try_current().is_ok() {
        return;
    }
    let Some(d) = driver() else { return };
    let pass = lock(&d.pass);
    if !pass.0 {
        return;
    }
    let started = pass.1;
    let _ = d
        .passed
        .wait_timeout_while(pass, QUIESCE_LIMIT, |p| p.0 && p.1 == started);
}

/// How long [`quiesce`] waits at most for the driver's pass to end (a pass
/// runs each due runtime until it is idle: normally microseconds).
const QUIESCE_LIMIT: Duration = Duration::from_secs(1);

/// Calls [`quiesce`] when dropped: the last field of what owns a stream
/// runtime, so that it runs once the owner has let go of the runtime.
pub(super) struct Quiesce;

impl Drop for Quiesce {
    fn drop(&mut self) {
        quiesce();
    }
}

/// A connection's socket, watched by the driver (see the module) and
/// outliving the connection a little: when the HTTP/2 connection lets go of
/// it (after its RST_STREAM, GOAWAY and FIN), a task on the stream's runtime
/// reads it until the router closes its side too (bounded by [`CLOSE_GRACE`]).
/// The router has then dropped our calls: `close` waits for that, so that a
/// caller that leaves before it is paired is forgotten before `close`
/// returns (otherwise the next caller of the token could reach the router
/// first and be paired with the one leaving).
pub(super) struct Linger<T: AsyncRead + Unpin + Send + 'static> {
    held: Option<Held<T>>,
}

/// A socket and its watch: the watch ends before the socket closes.
struct Held<T> {
    _watch: Watched,
    io: T,
}

/// The driver's watch of a socket, ended (and never touched again) when
/// dropped.
struct Watched {
    fd: RawFd,
    sockets: Arc<Sockets>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        let s = &self.sockets;
        let mut w = lock(&s.watch);
        if w.fd == Some(self.fd) {
            w.sent = false;
            s.rearm(&mut w);
            w.fd = None;
        }
    }
}

impl<T: AsyncRead + Unpin + Send + 'static> Linger<T> {
    /// `io` over the socket `fd`, of the stream runtime with `sockets`.
    pub(super) fn new(io: T, fd: RawFd, sockets: Arc<Sockets>) -> Linger<T> {
        {
            let mut w = lock(&sockets.watch);
            if w.fd.is_some() {
                // A connection before this one: its watch ends here.
                let sent = std::mem::replace(&mut w.sent, false);
                sockets.rearm(&mut w);
                w.sent = sent;
            }
            w.fd = Some(fd);
            sockets.dialled.fetch_add(1, Ordering::AcqRel);
            sockets.rearm(&mut w);
        }
        Linger {
            held: Some(Held {
                _watch: Watched { fd, sockets },
                io,
            }),
        }
    }

    fn io(&mut self) -> Pin<&mut T> {
        Pin::new(&mut self.held.as_mut().expect("a socket not yet let go of").io)
    }

    fn sockets(&self) -> Option<&Arc<Sockets>> {
        self.held.as_ref().map(|h| &h._watch.sockets)
    }

    /// Records whether a write would have blocked (the driver then watches
    /// for the socket to become writable).
    fn wrote<R>(&self, r: Poll<R>) -> Poll<R> {
        if let Some(s) = self.sockets() {
            s.write_blocked.store(r.is_pending(), Ordering::Release);
        }
        r
    }
}

impl<T: AsyncRead + Unpin + Send + 'static> Drop for Linger<T> {
    fn drop(&mut self) {
        let (Some(mut held), Ok(rt)) = (self.held.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let s = held._watch.sockets.clone();
        s.lingering.fetch_add(1, Ordering::AcqRel);
        // Counted down by the task or, should the runtime be going, with it.
        let counted = Counted(s);
        rt.spawn(async move {
            let mut buf = [0u8; 512];
            let rest = async { while let Ok(1..) = held.io.read(&mut buf).await {} };
            let _ = tokio::time::timeout(CLOSE_GRACE, rest).await;
            drop(counted);
        });
    }
}

/// One lingering socket, counted until dropped.
struct Counted(Arc<Sockets>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.lingering.fetch_sub(1, Ordering::AcqRel);
        self.0.lingered.notify_waiters();
    }
}

impl<T: AsyncRead + Unpin + Send + 'static> AsyncRead for Linger<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = self.io().poll_read(cx, buf);
        if buf.filled().len() > before {
            if let Some(s) = self.sockets() {
                if !s.spoke.swap(true, Ordering::AcqRel) {
                    s.heard.notify_waiters();
                }
            }
        }
        r
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncWrite for Linger<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = self.io().poll_write(cx, buf);
        self.wrote(r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = self.io().poll_write_vectored(cx, bufs);
        self.wrote(r)
    }

    fn is_write_vectored(&self) -> bool {
        self.held.as_ref().is_some_and(|h| h.io.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = self.io().poll_flush(cx);
        self.wrote(r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.io().poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> Arc<StreamRuntime> {
        StreamRuntime::new("test").unwrap()
    }

    #[test]
    fn settle_runs_what_is_ready_and_what_that_wakes() {
        let rt = runtime();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let done = Arc::new(AtomicUsize::new(0));
        // A chain: each task wakes the next through the channel.
        let d = done.clone();
        rt.rt().spawn(async move {
            while let Some(n) = rx.recv().await {
                d.store(n as usize, Ordering::SeqCst);
            }
        });
        let chain = tx.clone();
        rt.rt().spawn(async move {
            for n in 1..=10 {
                chain.send(n).unwrap();
                tokio::task::yield_now().await;
            }
        });
        rt.settle();
        assert_eq!(done.load(Ordering::SeqCst), 10);
        drop(tx);
    }

    #[test]
    fn a_runtime_the_driver_holds_when_its_owner_lets_go_is_gone_after_quiesce() {
        let rt = runtime();
        // A task whose runtime goes sets `gone` (its future is dropped).
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let gone = Arc::new(AtomicBool::new(false));
        let flag = Flag(gone.clone());
        rt.rt().spawn(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        // A task that holds the driver's pass (the driver runs it at its
        // next tick: nobody else drives this runtime).
        let started = Arc::new(AtomicBool::new(false));
        let s = started.clone();
        rt.rt().spawn(async move {
            s.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(300));
        });
        let until = Instant::now() + TICK * 3;
        while !started.load(Ordering::SeqCst) {
            assert!(Instant::now() < until, "the driver never ran the runtime");
            std::thread::sleep(Duration::from_millis(5));
        }
        // The owner lets go while the driver holds the runtime: the driver
        // drops it at the end of its pass, which quiesce waits for.
        drop(rt);
        assert!(!gone.load(Ordering::SeqCst), "the driver still holds it");
        quiesce();
        assert!(
            gone.load(Ordering::SeqCst),
            "the runtime is gone once quiesce returns"
        );
    }

    #[test]
    fn a_socket_is_watched_once_sent_on_and_only_while_nobody_is_inside() {
        let rt = runtime();
        let s = rt.sockets().clone();
        let w = |inside, sent, fd| Watch {
            fd,
            inside,
            sent,
            ..Watch::default()
        };
        assert_eq!(s.wanted(&w(0, false, Some(3))), None);
        assert_eq!(s.wanted(&w(0, true, None)), None);
        assert_eq!(s.wanted(&w(1, true, Some(3))), None);
        assert_eq!(s.wanted(&w(0, true, Some(3))), Some(Interest::READABLE));
        s.write_blocked.store(true, Ordering::Release);
        assert_eq!(
            s.wanted(&w(0, true, Some(3))),
            Some(Interest::READABLE | Interest::WRITABLE)
        );
    }

    #[test]
    fn the_watch_follows_callers_and_ends_before_the_socket_closes() {
        use std::os::fd::AsRawFd;
        let rt = runtime();
        let s = rt.sockets().clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let io = rt.block_on(tokio::net::TcpStream::connect(addr)).unwrap();
        let fd = io.as_raw_fd();
        let linger = rt.block_on(async { Linger::new(io, fd, s.clone()) });
        let armed = || lock(&s.watch).armed;
        assert_eq!(armed(), None, "nothing sent yet");
        rt.sent();
        rt.block_on(async {
            assert_eq!(lock(&s.watch).armed, None, "a caller is inside");
        });
        assert_eq!(armed(), Some(Interest::READABLE), "nobody inside");
        // Dropped outside the runtime: the socket closes at once, the
        // watch first.
        drop(linger);
        let w = lock(&s.watch);
        assert_eq!((w.fd, w.armed), (None, None));
    }
}
