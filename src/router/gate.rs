//! The router server's door: the accept loops ([`plain_incoming`],
//! [`tls_incoming`]) and the rules a connection passes to be served. A
//! `grpcs://` connection's TLS handshake runs in a task of its own within
//! [`HANDSHAKE_TIMEOUT`], at most [`MAX_HANDSHAKES`] at once (a connection
//! past that is closed at once). Every connection must then open an
//! admitted call (a `RouterService/Stream` call with a valid token) within
//! [`CALL_WITHIN`], or it is closed; at most [`MAX_PENDING`] connections may
//! wait for their first call at once (a newcomer past that closes the oldest
//! of them); an accept loop that runs out of descriptors makes room instead
//! of spinning. Every refusal is logged and counted ([`Gate::refused`]).
//!
//! The server (`server`) makes the TLS acceptor and the [`Gate`], and hands
//! the accepted connections to tonic; what a call carries is its business.

use crate::util::lock;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How long a connection has, from accept (or the end of its TLS
/// handshake), to open a call the router admits. Real clients open their
/// call at once; 5 s leaves room for a loaded machine.
pub(super) const CALL_WITHIN: Duration = Duration::from_secs(5);
/// Connections without an admitted call yet, at most, at once.
pub(super) const MAX_PENDING: usize = 256;
/// How long a client has for its TLS handshake with the router.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes in progress at once; a connection past that is closed at
/// once (a flood of silent clients cannot take every descriptor).
pub(super) const MAX_HANDSHAKES: usize = 256;
/// How long the accept loop waits after an accept error it cannot act on
/// (so that it never spins).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The shared state of the door (see the module docs).
pub(super) struct Gate {
    address: String,
    call_within: Duration,
    max_pending: usize,
    pending: Mutex<Pending>,
    /// Notified whenever a pending connection goes.
    left: Notify,
    refused: AtomicU64,
}

#[derive(Default)]
struct Pending {
    by_peer: HashMap<SocketAddr, Arc<Door>>,
    /// Oldest first.
    order: BTreeMap<u64, SocketAddr>,
    next: u64,
}

/// One connection's standing with the gate.
struct Door {
    id: u64,
    peer: SocketAddr,
    admitted: AtomicBool,
    evicted: AtomicBool,
    /// Its refusal was counted already (not again when it closes).
    counted: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Door {
    fn wake(&self) {
        if let Some(w) = lock(&self.waker).take() {
            w.wake();
        }
    }
}

impl Gate {
    pub(super) fn new(address: &str, call_within: Duration, max_pending: usize) -> Arc<Gate> {
        Arc::new(Gate {
            address: address.to_string(),
            call_within,
            max_pending: max_pending.max(1),
            pending: Mutex::default(),
            left: Notify::new(),
            refused: AtomicU64::new(0),
        })
    }

    /// Connections and calls refused so far: connections closed without an
    /// admitted call (too slow, too many, out of descriptors, a failed TLS
    /// handshake) and calls whose token was refused.
    pub(super) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Logs and counts one refusal.
    pub(super) fn refuse(&self, who: &dyn std::fmt::Display, why: &str) {
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        log::info!(
            "router {}: refused {who}: {why} ({n} refused so far)",
            self.address
        );
    }

    /// Lets `io` (accepted from `peer`) in, on probation until its first
    /// admitted call; closes the oldest connection on probation if there are
    /// too many.
    pub(super) fn enter<T>(self: &Arc<Self>, io: T, info: TcpConnectInfo) -> Guarded<T> {
        let peer = info
            .remote_addr
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let door = {
            let mut p = lock(&self.pending);
            let id = p.next;
            p.next += 1;
            let door = Arc::new(Door {
                id,
                peer,
                admitted: AtomicBool::new(false),
                evicted: AtomicBool::new(false),
                counted: AtomicBool::new(false),
                waker: Mutex::new(None),
            });
            if p.by_peer.len() >= self.max_pending {
                let too_many = format!(
                    "{} connections without a call: closing the oldest",
                    self.max_pending
                );
                self.evict_oldest(&mut p, &too_many);
            }
            // A peer address is unique among open connections; a stale one
            // (its connection is going) is replaced.
            if let Some(old) = p.by_peer.insert(peer, door.clone()) {
                p.order.remove(&old.id);
            }
            p.order.insert(id, peer);
            door
        };
        Guarded {
            io,
            info,
            gate: self.clone(),
            door,
            timer: Some(Box::pin(tokio::time::sleep(self.call_within))),
        }
    }

    /// Closes the oldest connection on probation; false if there is none.
    fn evict_oldest(&self, p: &mut Pending, why: &str) -> bool {
        let Some((_, peer)) = p.order.pop_first() else {
            return false;
        };
        let Some(door) = p.by_peer.remove(&peer) else {
            return false;
        };
        door.evicted.store(true, Ordering::Release);
        door.counted.store(true, Ordering::Release);
        door.wake();
        self.refuse(&peer, why);
        true
    }

    /// A call from `peer` was refused (its token): counted here, and not
    /// again when its connection closes without an admitted call.
    pub(super) fn refuse_call(&self, peer: Option<SocketAddr>, who: &str, why: &str) {
        if let Some(door) = peer.and_then(|p| lock(&self.pending).by_peer.get(&p).cloned()) {
            door.counted.store(true, Ordering::Release);
        }
        self.refuse(&who, why);
    }

    /// The connection from `peer` opened an admitted call: it is off
    /// probation.
    pub(super) fn admit(&self, peer: Option<SocketAddr>) {
        let Some(peer) = peer else { return };
        let mut p = lock(&self.pending);
        if let Some(door) = p.by_peer.remove(&peer) {
            p.order.remove(&door.id);
            door.admitted.store(true, Ordering::Release);
            drop(p);
            self.left.notify_waiters();
        }
    }

    fn leave(&self, door: &Door) {
        let mut p = lock(&self.pending);
        if p.by_peer.get(&door.peer).is_some_and(|d| d.id == door.id) {
            p.by_peer.remove(&door.peer);
            p.order.remove(&door.id);
        }
        drop(p);
        self.left.notify_waiters();
    }

    /// Accepts the next connection on `listener`, getting past errors: out
    /// of descriptors, it closes the oldest connection on probation (or,
    /// with none, accepts with a spare descriptor and closes at once) and
    /// tries again; on other errors it waits a little. `None` once `stop`.
    pub(super) async fn accept(
        &self,
        listener: &TcpListener,
        spare: &mut Option<std::fs::File>,
        stop: &watch::Receiver<bool>,
    ) -> Option<(TcpStream, SocketAddr)> {
        loop {
            let r = tokio::select! {
                r = listener.accept() => r,
                () = halted(stop.clone()) => return None,
            };
            let e = match r {
                Ok(c) => {
                    if spare.is_none() {
                        *spare = std::fs::File::open("/dev/null").ok();
                    }
                    return Some(c);
                }
                Err(e) => e,
            };
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
            ) {
                // That connection went before it was accepted.
                continue;
            }
            let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
            if !out_of_fds {
                log::warn!("router {}: accept: {e}", self.address);
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
            let left = self.left.notified();
            let evicted = {
                let mut p = lock(&self.pending);
                self.evict_oldest(&mut p, &format!("closed to make room ({e})"))
            };
            if evicted {
                // Its descriptor is freed when its connection task sees it.
                let _ = tokio::time::timeout(ACCEPT_BACKOFF, left).await;
                continue;
            }
            // Nobody to close: refuse the newcomer with the spare descriptor.
            if spare.take().is_some() {
                if let Ok(Ok((tcp, peer))) =
                    tokio::time::timeout(Duration::from_millis(10), listener.accept()).await
                {
                    drop(tcp);
                    self.refuse(&peer, &format!("accept: {e}"));
                }
                *spare = std::fs::File::open("/dev/null").ok();
                if spare.is_some() {
                    continue;
                }
            }
            log::warn!("router {}: accept: {e}", self.address);
            tokio::time::sleep(ACCEPT_BACKOFF).await;
        }
    }
}

/// Completes once `stop` says the server is stopping (or its sender is gone).
pub(super) async fn halted(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The plaintext router's connections: accepted by [`Gate::accept`], each
/// on probation (see [`Gate::enter`]). Returns the stream of connections
/// and the accept loop (to be awaited with the server).
pub(super) fn plain_incoming(
    listener: TcpListener,
    gate: Arc<Gate>,
    stop: watch::Receiver<bool>,
) -> (
    ReceiverStream<io::Result<Guarded<TcpStream>>>,
    impl Future<Output = ()> + Send,
) {
    let (tx, rx) = mpsc::channel(16);
    let accepting = async move {
        let mut spare = std::fs::File::open("/dev/null").ok();
        loop {
            let next = tokio::select! {
                c = gate.accept(&listener, &mut spare, &stop) => c,
                () = tx.closed() => return,
            };
            let Some((tcp, peer)) = next else { return };
            let _ = tcp.set_nodelay(true);
            let info = TcpConnectInfo {
                local_addr: tcp.local_addr().ok(),
                remote_addr: Some(peer),
            };
            if tx.send(Ok(gate.enter(tcp, info))).await.is_err() {
                return;
            }
        }
    };
    (ReceiverStream::new(rx), accepting)
}

/// The TLS connections whose handshake succeeded, for
/// `serve_with_incoming_shutdown`.
pub(super) type TlsIncoming = ReceiverStream<io::Result<TlsConn>>;

/// A TLS connection the router serves, on probation at the gate until its
/// first admitted call.
pub(super) type TlsConn = Guarded<tokio_rustls::server::TlsStream<TcpStream>>;

/// Accepts TCP connections on `listener` until `stop` (or until the server
/// drops the returned stream) and does each TLS handshake in its own task,
/// bounded by [`HANDSHAKE_TIMEOUT`], so a client that stays silent holds up
/// nobody; at most `max_handshakes` at once ([`MAX_HANDSHAKES`]), a
/// connection past that is closed at once. Accepting goes through the
/// gate ([`Gate::accept`]: out of descriptors it makes room), and a
/// connection whose handshake succeeded enters it ([`Gate::enter`]); each
/// refusal is logged and counted there. Returns the stream of ready
/// connections and the accept loop (to be awaited with the server, so that
/// the port is released when both end).
pub(super) fn tls_incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    stop: watch::Receiver<bool>,
    gate: Arc<Gate>,
    max_handshakes: usize,
) -> (TlsIncoming, impl Future<Output = ()> + Send) {
    let (tx, rx) = mpsc::channel::<io::Result<TlsConn>>(16);
    let slots = Arc::new(tokio::sync::Semaphore::new(max_handshakes));
    let accepting = async move {
        let mut spare = std::fs::File::open("/dev/null").ok();
        loop {
            let next = tokio::select! {
                c = gate.accept(&listener, &mut spare, &stop) => c,
                () = tx.closed() => return,
            };
            let Some((tcp, peer)) = next else { return };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                gate.refuse(
                    &peer,
                    &format!("{max_handshakes} TLS handshakes already in progress"),
                );
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let info = TcpConnectInfo {
                local_addr: tcp.local_addr().ok(),
                remote_addr: Some(peer),
            };
            let (acceptor, tx, halt, gate) =
                (acceptor.clone(), tx.clone(), stop.clone(), gate.clone());
            tokio::spawn(async move {
                let shake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                let r = tokio::select! {
                    r = shake => r,
                    () = halted(halt) => return,
                };
                drop(slot);
                match r {
                    Ok(Ok(io)) => {
                        let _ = tx.send(Ok(gate.enter(io, info))).await;
                    }
                    Ok(Err(e)) => gate.refuse(&peer, &format!("TLS handshake: {e}")),
                    Err(_) => gate.refuse(
                        &peer,
                        &format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}"),
                    ),
                }
            });
        }
    };
    (ReceiverStream::new(rx), accepting)
}

/// A connection the router serves, on probation until it opens an admitted
/// call: closed (its reads fail) when [`CALL_WITHIN`] passes first or the
/// gate closes it to make room. Tonic sees its peer as for a TCP stream.
pub(super) struct Guarded<T> {
    io: T,
    info: TcpConnectInfo,
    gate: Arc<Gate>,
    door: Arc<Door>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<T> Drop for Guarded<T> {
    fn drop(&mut self) {
        if !self.door.admitted.load(Ordering::Acquire) {
            if !self.door.counted.swap(true, Ordering::AcqRel) {
                // Garbage, a bad preface, an oversized header, a peer that
                // left: it never opened an admitted call.
                self.gate
                    .refuse(&self.door.peer, "the connection ended without a call");
            }
            self.gate.leave(&self.door);
        }
    }
}

impl<T> Connected for Guarded<T>
where
    T: Send + 'static,
{
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if me.timer.is_some() {
            if me.door.admitted.load(Ordering::Acquire) {
                me.timer = None;
            } else {
                if me.door.evicted.load(Ordering::Acquire) {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "closed to make room",
                    )));
                }
                *lock(&me.door.waker) = Some(cx.waker().clone());
                if let Some(t) = &mut me.timer {
                    if t.as_mut().poll(cx).is_ready() {
                        me.timer = None;
                        me.door.counted.store(true, Ordering::Release);
                        me.gate.refuse(
                            &me.door.peer,
                            &format!("no call within {:?}", me.gate.call_within),
                        );
                        // Off the table now: it is going.
                        me.door.admitted.store(true, Ordering::Release);
                        me.gate.leave(&me.door);
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no call in time",
                        )));
                    }
                }
            }
        }
        Pin::new(&mut me.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(port: u16) -> TcpConnectInfo {
        TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(SocketAddr::from(([127, 0, 0, 1], port))),
        }
    }

    #[test]
    fn past_the_limit_the_oldest_goes_and_every_refusal_is_counted_once() {
        let _rt = crate::router::runtime().enter();
        let gate = Gate::new("test", Duration::from_secs(5), 2);
        let a = gate.enter((), info(1));
        let b = gate.enter((), info(2));
        assert_eq!(gate.refused(), 0);
        // A third closes the oldest.
        let c = gate.enter((), info(3));
        assert!(a.door.evicted.load(Ordering::Acquire));
        assert!(!b.door.evicted.load(Ordering::Acquire));
        assert_eq!(gate.refused(), 1);
        drop(a);
        assert_eq!(gate.refused(), 1, "not counted again when it closes");
        // An admitted call takes one off probation: never refused.
        gate.admit(Some(SocketAddr::from(([127, 0, 0, 1], 2))));
        assert!(b.door.admitted.load(Ordering::Acquire));
        drop(b);
        assert_eq!(gate.refused(), 1);
        // A refused token is counted once, not again at the close.
        gate.refuse_call(Some(SocketAddr::from(([127, 0, 0, 1], 3))), "c", "bad");
        drop(c);
        assert_eq!(gate.refused(), 2);
        // One that leaves without a call is counted when it goes.
        drop(gate.enter((), info(4)));
        assert_eq!(gate.refused(), 3);
        assert!(lock(&gate.pending).by_peer.is_empty());
    }
}
