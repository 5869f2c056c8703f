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
use crate::network::{self, Network};
pub use crate::relay::forward;
use crate::socket::{self, Kind, fd};
use crate::stream::Stream;
use crate::url::{ListenEndpoint, TcpListenOptions, UnixPath};
use crate::websocket::bridge;
use socket2::{Domain, Socket};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a listener waits for the target of an accepted connection.
const TARGET_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection's thread waits for the connection accepted before
/// it to have reached the target (see [`Turns`]).
const CONNECT_ORDER_WAIT: Duration = Duration::from_millis(10);
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
    /// The order in which a plain forward's connections connect to the target.
    turns: Turns,
}

/// Connections reach the target in the order they were accepted: a client
/// that opens several connections and tells them apart by that order (as
/// `iperf3 --bidir` does) would otherwise see them swapped now and then,
/// each connection having its own thread. A connection's thread waits until
/// the connection accepted before it has connected (or failed to), but at
/// most [`CONNECT_ORDER_WAIT`]: a target that is slow to answer delays the
/// next connections that little, and then the order is not kept.
#[derive(Default)]
struct Turns {
    /// One more than the newest connection (by acceptance) that has
    /// connected to the target or given up.
    next: Mutex<u64>,
    moved: Condvar,
}

impl Turns {
    /// Waits (bounded) until connection `id` may connect.
    fn wait(&self, id: u64) {
        let until = Instant::now() + CONNECT_ORDER_WAIT;
        let mut next = crate::util::lock(&self.next);
        while *next < id {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            next = match self.moved.wait_timeout(next, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Connection `id` has connected to the target, or will not.
    fn done(&self, id: u64) {
        let mut next = crate::util::lock(&self.next);
        if *next <= id {
            *next = id + 1;
            self.moved.notify_all();
        }
    }
}

/// Marks connection `id`'s turn done when dropped, whichever way its thread
/// goes.
struct Turn<'a>(&'a Turns, u64);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.done(self.1);
    }
}

/// A forwarded connection's streams, for `close` to end.
#[derive(Default)]
struct Conn {
    streams: Vec<Arc<Stream>>,
    /// The stream to the target, once connected: what it carried is what
    /// the connection relayed.
    target: Option<Arc<Stream>>,
    /// A bridged websocket client, told (close 1001) when the listener closes.
    ws: Option<Arc<crate::websocket::Ws>>,
}

impl crate::acceptor::Record for Conn {
    fn traffic(&self) -> (u64, u64) {
        self.target.as_ref().map_or((0, 0), |t| {
            let s = t.stats();
            (s.bytes_sent, s.bytes_received)
        })
    }
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
                let (sock, local) = socket::listen_tcp(&host, port, listen_url)?;
                (sock, socket::tcp_address(local), None)
            }
            ListenEndpoint::Unix(path) => {
                let sock = socket::bind(
                    Domain::UNIX,
                    &socket::unix_addr(&path, listen_url)?,
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
            turns: Turns::default(),
        });
        let names = Names {
            peer: socket::tcp_address,
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

    /// Connections accepted, open and refused so far, and the bytes relayed
    /// each way (from clients to the target, and back), counted as they
    /// move.
    pub fn stats(&self) -> crate::stream::ServerStats {
        self.acceptor.stats(|_| true)
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
                    tungstenite::protocol::frame::coding::CloseCode::Away,
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

/// Adds a stream to a connection's record so that `close` can end it; false if
/// the listener is closing (the caller then closes the stream itself).
fn register(acc: &Acceptor<Conn>, id: u64, st: &Arc<Stream>) -> bool {
    acc.update(id, |c| c.streams.push(st.clone())).is_some()
}

fn serve_conn(acc: &Acceptor<Conn>, job: &Job, id: u64, conn: Socket, peer: String) {
    let mut turn = Some(Turn(&job.turns, id));
    let run = || -> Result<()> {
        let a = Arc::new(fd::stream(conn, peer.clone(), Kind::Bytes)?);
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
        if ws.is_none() {
            job.turns.wait(id);
        }
        let connected = job.target.connect(Some(TARGET_CONNECT_TIMEOUT));
        drop(turn.take());
        let b = match connected {
            Ok(b) => Arc::new(b),
            Err(e) => {
                if let Some(ws) = &ws {
                    bridge::target_unreachable(ws);
                }
                // Never a clean end: a TCP client gets a reset.
                a.reset();
                return Err(e);
            }
        };
        if !register(acc, id, &b) || acc.update(id, |c| c.target = Some(b.clone())).is_none() {
            b.close();
            return Ok(());
        }
        let r = match &ws {
            Some(ws) => bridge::bridge(&a, ws, &b),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_waits_for_the_one_accepted_before_it_but_not_long() {
        let turns = Turns::default();
        // The first connection never waits.
        let t0 = Instant::now();
        turns.wait(0);
        assert!(t0.elapsed() < CONNECT_ORDER_WAIT);
        std::thread::scope(|s| {
            let second = s.spawn(|| {
                let start = Instant::now();
                turns.wait(1);
                (start, Instant::now())
            });
            let done = Instant::now();
            turns.done(0);
            // It waited for the first (unless its bound passed first, on a
            // machine too busy to run this thread for that long).
            let (start, went) = second.join().unwrap();
            assert!(went >= done || went.duration_since(start) >= CONNECT_ORDER_WAIT);
        });
        // Connection 3 waits for 2, which never connects: only the bound.
        let t0 = Instant::now();
        turns.wait(3);
        let waited = t0.elapsed();
        assert!(
            waited >= CONNECT_ORDER_WAIT && waited < Duration::from_secs(1),
            "{waited:?}"
        );
        // Turns only move forward: an older connection done late changes
        // nothing for the newer ones.
        turns.done(3);
        turns.done(1);
        let t0 = Instant::now();
        turns.wait(4);
        assert!(t0.elapsed() < CONNECT_ORDER_WAIT);
    }
}
