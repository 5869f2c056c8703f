//! The accept loop every server shares (forwarding listeners, websocket
//! servers): an accept thread, one thread per connection, a record per
//! connection that `close` can reach, and the joining of ended connections.
//! Each server keeps only what is its own: the record type `C`, whether to
//! admit a connection, and how to serve it.

use crate::error::{Error, Result};
use crate::stream::ServerStats;
use crate::sys;
use crate::util::lock;
use socket2::Socket;
use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Decides whether to take a new connection, given the acceptor (whose
/// oldest handshake it may end to make room) and its load: `None` takes
/// it; a refusal is counted, logged, answered and closed.
pub(crate) type Admit<C> = dyn Fn(&Acceptor<C>, Load) -> Option<Refusal> + Send + Sync;

/// How many connections an acceptor has, by stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Load {
    /// Connections being served ([`Acceptor::establish`] admitted them).
    pub served: usize,
    /// Connections not (yet) established: in their handshake, for servers
    /// that have one.
    pub handshaking: usize,
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Accepted, not established (a websocket handshake in progress).
    Handshake,
    /// Established: counted against the served connections.
    Served,
    /// Ended early to make room, or finished: its thread is still to be
    /// joined.
    Leaving,
}

/// A connection's record: what `close` needs to reach, and what the
/// connection has carried so far (counted into the server's totals when it
/// ends).
pub(crate) trait Record: Default + Send + 'static {
    /// Payload bytes `(received from the client, sent to it)` so far.
    fn traffic(&self) -> (u64, u64);
}

/// Why a connection is refused, and what it is told.
pub(crate) struct Refusal {
    /// For the log.
    pub why: String,
    /// Sent to the peer (without waiting: the socket is new, its send buffer
    /// empty) before it is closed.
    pub answer: &'static [u8],
}
/// Serves one connection on its own thread: `(acceptor, id, socket, peer)`.
pub(crate) type Serve<C> = dyn Fn(&Acceptor<C>, u64, Socket, String) + Send + Sync;

/// A listening socket with its accept thread and connection records.
pub(crate) struct Acceptor<C> {
    sock: Socket,
    name: String,
    closing: AtomicBool,
    next_id: AtomicU64,
    refused: AtomicU64,
    /// Bytes `(received, sent)` by connections that have ended; changed
    /// under the `conns` lock, so that a total is never counted twice.
    ended: Mutex<(u64, u64)>,
    conns: Mutex<HashMap<u64, Entry<C>>>,
    finished: Mutex<Vec<u64>>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

struct Entry<C> {
    record: C,
    thread: Option<JoinHandle<()>>,
    stage: Stage,
}

/// How a server names peers and its threads.
pub(crate) struct Names {
    /// The peer's name from its address (`tcp://…`, `ws://…/`).
    pub peer: fn(SocketAddr) -> String,
    /// The accept thread's name.
    pub accept_thread: &'static str,
    /// Each connection thread's name.
    pub conn_thread: &'static str,
}

impl<C: Record> Acceptor<C> {
    /// Starts accepting on `sock` (listening, non-blocking), naming the
    /// server `name` in logs.
    pub(crate) fn start(
        sock: Socket,
        name: String,
        names: Names,
        admit: Box<Admit<C>>,
        serve: Box<Serve<C>>,
    ) -> Result<Arc<Acceptor<C>>> {
        let acc = Arc::new(Acceptor {
            sock,
            name,
            closing: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            ended: Mutex::new((0, 0)),
            conns: Mutex::new(HashMap::new()),
            finished: Mutex::new(Vec::new()),
            accept: Mutex::new(None),
        });
        let serve: Arc<Serve<C>> = Arc::from(serve);
        let thread = {
            let acc = acc.clone();
            crate::sys::spawn(names.accept_thread, move || {
                accept_loop(&acc, &names, &*admit, &serve)
            })
            .map_err(|e| Error::io("spawning the accept thread", &e))?
        };
        *lock(&acc.accept) = Some(thread);
        Ok(acc)
    }

    /// The listening socket.
    pub(crate) fn socket(&self) -> &Socket {
        &self.sock
    }

    /// How many connections have been refused so far (by `admit`, or
    /// counted with [`Acceptor::count_refused`]).
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Counts a refusal made after the connection was taken (at the end of
    /// its handshake); returns the total so far.
    pub(crate) fn count_refused(&self) -> u64 {
        self.refused.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The connections by stage.
    pub(crate) fn load(&self) -> Load {
        load(&lock(&self.conns))
    }

    /// Moves connection `id` from its handshake to the served connections if
    /// fewer than `max` are served: false (and no change) otherwise, or if it
    /// was evicted, or if the server is closing.
    pub(crate) fn establish(&self, id: u64, max: usize) -> bool {
        let mut conns = lock(&self.conns);
        if self.is_closing() || load(&conns).served >= max {
            return false;
        }
        match conns.get_mut(&id) {
            Some(e) if e.stage == Stage::Handshake => {
                e.stage = Stage::Served;
                true
            }
            _ => false,
        }
    }

    /// Ends the connection that has been in its handshake longest (`end`
    /// must make its thread return soon) and stops counting it: false if no
    /// connection is in its handshake.
    pub(crate) fn evict_oldest(&self, end: impl FnOnce(&C)) -> bool {
        let mut conns = lock(&self.conns);
        let oldest = conns
            .iter_mut()
            .filter(|(_, e)| e.stage == Stage::Handshake)
            .min_by_key(|(id, _)| **id);
        match oldest {
            Some((_, e)) => {
                e.stage = Stage::Leaving;
                end(&e.record);
                true
            }
            None => false,
        }
    }

    /// True once `close` has begun.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Changes connection `id`'s record so that `close` can reach what it
    /// holds; `None` (and no change) if the server is closing.
    pub(crate) fn update<R>(&self, id: u64, f: impl FnOnce(&mut C) -> R) -> Option<R> {
        let mut conns = lock(&self.conns);
        match conns.get_mut(&id) {
            Some(e) if !self.is_closing() => Some(f(&mut e.record)),
            _ => None,
        }
    }

    /// Visits every connection's record.
    pub(crate) fn for_each(&self, mut f: impl FnMut(u64, &mut C)) {
        for (id, e) in lock(&self.conns).iter_mut() {
            f(*id, &mut e.record);
        }
    }

    /// Ends connection `id`'s record (releasing what it holds, so sockets close
    /// now); its thread is joined later, by the accept loop or `close`.
    pub(crate) fn finish(&self, id: u64) {
        if let Some(e) = lock(&self.conns).get_mut(&id) {
            self.count_ended(&e.record);
            e.record = C::default();
            e.stage = Stage::Leaving;
        }
        lock(&self.finished).push(id);
    }

    /// Adds an ending connection's bytes to the totals (under the `conns`
    /// lock).
    fn count_ended(&self, record: &C) {
        let (received, sent) = record.traffic();
        let mut ended = lock(&self.ended);
        ended.0 += received;
        ended.1 += sent;
    }

    /// The server's counts: connections accepted, open now (those whose
    /// record satisfies `active`), refused, and the bytes of open and ended
    /// connections.
    pub(crate) fn stats(&self, active: impl Fn(&C) -> bool) -> ServerStats {
        reap(self);
        let conns = lock(&self.conns);
        let (mut received, mut sent) = *lock(&self.ended);
        let mut open = 0;
        for e in conns.values() {
            let (r, s) = e.record.traffic();
            received += r;
            sent += s;
            open += u64::from(e.stage != Stage::Leaving && active(&e.record));
        }
        ServerStats {
            // Ids are given in order, one per accepted connection.
            accepted: self.next_id.load(Ordering::Relaxed),
            active: open,
            refused: self.refused(),
            bytes_received: received,
            bytes_sent: sent,
        }
    }

    /// How many connections' records satisfy `f`, after joining ended ones.
    pub(crate) fn count(&self, f: impl Fn(&C) -> bool) -> usize {
        reap(self);
        lock(&self.conns).values().filter(|e| f(&e.record)).count()
    }

    /// Stops accepting, lets `end` end each connection (it must make the
    /// connection's thread return), and joins every thread. False if the
    /// acceptor was already closed.
    pub(crate) fn close(&self, end: impl Fn(&C)) -> bool {
        let Some(accept) = lock(&self.accept).take() else {
            return false;
        };
        self.closing.store(true, Ordering::Release);
        // Wakes the accept thread blocked in poll.
        let _ = self.sock.shutdown(Shutdown::Both);
        let _ = accept.join();
        let conns: Vec<Entry<C>> = lock(&self.conns).drain().map(|(_, e)| e).collect();
        for e in &conns {
            end(&e.record);
        }
        for e in conns {
            self.count_ended(&e.record);
            drop(e.record);
            if let Some(t) = e.thread {
                let _ = t.join();
            }
        }
        true
    }
}

fn accept_loop<C: Record>(
    acc: &Arc<Acceptor<C>>,
    names: &Names,
    admit: &Admit<C>,
    serve: &Arc<Serve<C>>,
) {
    let mut starved = Starved::default();
    loop {
        if let Err(e) = sys::wait(acc.sock.as_fd(), libc::POLLIN, None) {
            log::error!("{}: accept failed: {e}", acc.name);
            return;
        }
        if acc.is_closing() {
            return;
        }
        reap(acc);
        let (conn, peer) = match acc.sock.accept() {
            Ok(c) => c,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                starved.out_of_descriptors(acc, &e);
                continue;
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::ENOMEM)) => {
                starved.note(&acc.name, &e);
                std::thread::sleep(STARVED_PAUSE);
                continue;
            }
            Err(e) => {
                log::debug!("{}: accept: {e}", acc.name);
                continue;
            }
        };
        starved.recovered(&acc.name);
        let peer = match peer.as_socket() {
            Some(a) => {
                let _ = conn.set_tcp_nodelay(true);
                (names.peer)(a)
            }
            None => format!("{} (peer)", acc.name),
        };
        if let Some(r) = admit(acc, acc.load()) {
            // Counted before the peer hears of it.
            let n = acc.refused.fetch_add(1, Ordering::Relaxed) + 1;
            log::warn!(
                "{}: refusing {peer}: {} ({n} refused so far)",
                acc.name,
                r.why
            );
            if r.answer.is_empty() {
                // Nothing to say: the peer gets a reset, never a clean end.
                let _ = conn.set_linger(Some(Duration::ZERO));
            } else {
                let _ = conn.send_with_flags(r.answer, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
            }
            continue;
        }
        log::debug!("{}: accepted {peer}", acc.name);
        let id = acc.next_id.fetch_add(1, Ordering::Relaxed);
        let mut conns = lock(&acc.conns);
        conns.insert(
            id,
            Entry {
                record: C::default(),
                thread: None,
                stage: Stage::Handshake,
            },
        );
        let (a, serve) = (acc.clone(), serve.clone());
        let t = crate::sys::spawn(names.conn_thread, move || serve(&a, id, conn, peer));
        match t {
            Ok(t) => conns.get_mut(&id).expect("just inserted").thread = Some(t),
            Err(e) => {
                conns.remove(&id);
                log::error!("{}: cannot start a connection thread: {e}", acc.name);
            }
        }
    }
}

/// How long the accept loop pauses when the system is out of memory for a
/// connection, or out of descriptors with no spare one to make room.
const STARVED_PAUSE: Duration = Duration::from_millis(100);
/// At most one log line per this long about running out of resources.
const STARVED_LOG_EVERY: Duration = Duration::from_secs(1);

/// The accept loop out of descriptors (`EMFILE`, `ENFILE`) or memory.
///
/// A pending connection keeps the listening socket readable, so retrying at
/// once would spin. Instead a spare descriptor (of `/dev/null`) is kept: when
/// `accept` runs out, the spare is closed to make room, the waiting client is
/// accepted and reset at once (counted as refused, so that it neither hangs
/// nor keeps the loop awake), and the spare is opened again, as libuv and
/// libev do. Without a spare (another thread took the room), the loop pauses
/// [`STARVED_PAUSE`] before it tries again. Logs are throttled to one line per
/// [`STARVED_LOG_EVERY`]; the first accept that works again is logged too.
struct Starved {
    spare: Option<std::fs::File>,
    since: Option<Instant>,
    next_log: Option<Instant>,
    unlogged: u64,
}

impl Default for Starved {
    fn default() -> Starved {
        Starved {
            spare: spare(),
            since: None,
            next_log: None,
            unlogged: 0,
        }
    }
}

fn spare() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

impl Starved {
    fn out_of_descriptors<C>(&mut self, acc: &Acceptor<C>, e: &io::Error) {
        if self.spare.take().is_none() {
            self.note(&acc.name, e);
            std::thread::sleep(STARVED_PAUSE);
            self.spare = spare();
            return;
        }
        if let Ok((conn, _)) = acc.sock.accept() {
            let _ = conn.set_linger(Some(Duration::ZERO));
            drop(conn);
            let n = acc.refused.fetch_add(1, Ordering::Relaxed) + 1;
            let e = io::Error::other(format!("{e}: reset a client ({n} refused so far)"));
            self.note(&acc.name, &e);
        }
        self.spare = spare();
    }

    /// Logs `e` unless a line was logged less than [`STARVED_LOG_EVERY`] ago.
    fn note(&mut self, name: &str, e: &io::Error) {
        let now = Instant::now();
        self.since.get_or_insert(now);
        if self.next_log.is_some_and(|t| now < t) {
            self.unlogged += 1;
            return;
        }
        let more = std::mem::take(&mut self.unlogged);
        if more > 0 {
            log::error!("{name}: accept failed: {e} (and {more} more since the last line)");
        } else {
            log::error!("{name}: accept failed: {e}");
        }
        self.next_log = Some(now + STARVED_LOG_EVERY);
    }

    /// Called after an accept that worked.
    fn recovered(&mut self, name: &str) {
        if let Some(since) = self.since.take() {
            let more = std::mem::take(&mut self.unlogged);
            log::warn!(
                "{name}: accepting again after {:?} short of resources ({more} failures not logged)",
                since.elapsed()
            );
            self.next_log = None;
            if self.spare.is_none() {
                self.spare = spare();
            }
        }
    }
}

/// An admission rule for HTTP servers (websocket servers and bridges): at
/// most `max` connections served at once; one more is answered with HTTP
/// 503. Connections in their handshake are bounded apart (`max_handshakes`):
/// when that many are in progress, the oldest is ended (`end`) to make room,
/// so that clients that never finish a handshake cannot lock real ones out;
/// `evicted` counts that (and returns the total so far).
pub(crate) fn admit_http<C: Record>(
    acc: &Acceptor<C>,
    load: Load,
    max: usize,
    max_handshakes: usize,
    end: impl FnOnce(&C),
    evicted: impl FnOnce() -> u64,
) -> Option<Refusal> {
    if load.served >= max {
        return Some(Refusal {
            why: format!("{max} connections are served (the maximum): HTTP 503"),
            answer: b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        });
    }
    if load.handshaking >= max_handshakes && acc.evict_oldest(end) {
        let n = evicted();
        log::info!(
            "{}: {max_handshakes} handshakes in progress (the maximum): ended the oldest \
             to make room ({n} so far)",
            acc.name
        );
    }
    None
}

fn load<C>(conns: &HashMap<u64, Entry<C>>) -> Load {
    let mut l = Load {
        served: 0,
        handshaking: 0,
    };
    for e in conns.values() {
        match e.stage {
            Stage::Served => l.served += 1,
            Stage::Handshake => l.handshaking += 1,
            Stage::Leaving => {}
        }
    }
    l
}

/// Joins the threads of connections that have ended.
fn reap<C>(acc: &Acceptor<C>) {
    let ids = std::mem::take(&mut *lock(&acc.finished));
    for id in ids {
        let e = lock(&acc.conns).remove(&id);
        if let Some(t) = e.and_then(|e| e.thread) {
            let _ = t.join();
        }
    }
}
