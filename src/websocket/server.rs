//! A websocket server: each connection on a thread of its own runs a handler
//! with a [`Stream`] for it; [`Server::broadcast`] sends one message to every
//! open connection through a bounded queue per connection, so that one slow or
//! dead client never stalls the others (a client whose queue is full is
//! dropped with a close frame, counted and logged).

use super::{Counters, Limits, Policy, RefusalStats, Ws};
use crate::acceptor::{Acceptor, Names, admit_http};
use crate::error::{Error, Result};
use crate::socket::{self, Kind, fd};
use crate::stream::Stream;
use crate::url::{ListenEndpoint, WebsocketListenOptions};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use socket2::Socket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tungstenite::protocol::frame::coding::CloseCode;

/// What runs on each connection's thread. The connection is closed (close
/// frame) when it returns.
pub type Handler = dyn Fn(&Arc<Stream>) + Send + Sync + 'static;

/// How often a broadcast writer blocked on a slow client checks whether the
/// client was dropped meanwhile.
const WRITER_CHECK: Duration = Duration::from_millis(100);
/// How long close frames to a dropped connection, or to every connection of
/// a closing server (all at once), may take.
const ABORT_WAIT: Duration = Duration::from_millis(50);

/// Server settings (the listen URL's options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Message and frame size limits of each connection.
    pub limits: Limits,
    /// Most connections served at once (handshake done); more are refused
    /// with HTTP 503.
    pub max_connections: usize,
    /// Most connections in their handshake at once, counted apart from
    /// served ones; one more ends the oldest of them.
    pub max_handshakes: usize,
    /// How long a client has to complete its handshake.
    pub handshake_timeout: Duration,
    /// Broadcast messages queued per connection before it counts as too slow.
    pub queue: usize,
    /// The subprotocols answered (the first of the client's offers in this
    /// list; none if none is).
    pub protocols: Vec<String>,
    /// The `Origin` values allowed (others are refused with HTTP 403);
    /// `None`: any.
    pub origins: Option<Vec<String>>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig::from(WebsocketListenOptions::default())
    }
}

impl From<WebsocketListenOptions> for ServerConfig {
    fn from(o: WebsocketListenOptions) -> ServerConfig {
        ServerConfig {
            limits: Limits {
                max_message: o.max_message,
                max_frame: o.max_frame,
            },
            max_connections: o.max_connections,
            max_handshakes: o.max_handshakes,
            handshake_timeout: Duration::from_millis(o.handshake_timeout_ms),
            queue: o.queue,
            protocols: o.protocols,
            origins: o.origins,
        }
    }
}

impl ServerConfig {
    /// The handshake policy of connection `id` of `acc`: subprotocols,
    /// origins, admission against `max_connections`, counters.
    pub(crate) fn accept<C: crate::acceptor::Record>(
        &self,
        raw: Arc<Stream>,
        acc: &Acceptor<C>,
        id: u64,
        counters: &Arc<Counters>,
    ) -> Result<(Stream, Arc<Ws>)> {
        let admit = || {
            if acc.establish(id, self.max_connections) {
                return true;
            }
            if acc.load().served >= self.max_connections {
                let n = acc.count_refused();
                log::warn!(
                    "{}: {} connections are served (the maximum): HTTP 503 at the end of \
                     a handshake ({n} refused so far)",
                    raw.name(),
                    self.max_connections
                );
            } else {
                // Evicted to make room (counted then), or the server closes.
                log::info!("{}: ended during its handshake", raw.name());
            }
            false
        };
        let policy = Policy {
            protocols: &self.protocols,
            origins: self.origins.as_deref(),
            admit: Some(&admit),
            counters: Some(counters),
        };
        let deadline = Some(Instant::now() + self.handshake_timeout);
        super::accept_with(raw.clone(), deadline, self.limits, &policy)
    }
}

/// A websocket server: a handler per connection on its own thread, and
/// [`Server::broadcast`] through a bounded queue per connection.
pub struct Server {
    address: String,
    acceptor: Arc<Acceptor<Conn>>,
    job: Arc<Job>,
}

/// What each connection's thread needs.
struct Job {
    name: String,
    config: ServerConfig,
    handler: Box<Handler>,
    dropped: AtomicU64,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Conn {
    raw: Option<Arc<Stream>>,
    ws: Option<Arc<Ws>>,
    tx: Option<Sender<Arc<[u8]>>>,
    slow: Arc<AtomicBool>,
    /// The handler's stream: what it sent and received.
    stream: Option<Arc<Stream>>,
    /// Broadcast payload bytes written to this client.
    broadcast: Arc<AtomicU64>,
}

impl crate::acceptor::Record for Conn {
    fn traffic(&self) -> (u64, u64) {
        let (received, sent) = self.stream.as_ref().map_or((0, 0), |s| {
            let s = s.stats();
            (s.bytes_received, s.bytes_sent)
        });
        (received, sent + self.broadcast.load(Ordering::Relaxed))
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Binds a TCP listening socket for `ws://HOST:PORT`: the socket and its
/// `ws://IP:PORT/` address.
pub(crate) fn bind(listen_url: &str, host: &str, port: u16) -> Result<(Socket, String)> {
    let (sock, local) = socket::listen_tcp(host, port, listen_url)?;
    Ok((sock, format!("ws://{local}/")))
}

impl Server {
    /// Binds `listen_url` (`ws://HOST:PORT`, port 0 for a free one) and serves
    /// every websocket client with `handler`, on the connection's own thread.
    pub fn serve(
        listen_url: &str,
        handler: impl Fn(&Arc<Stream>) + Send + Sync + 'static,
    ) -> Result<Server> {
        let (host, port, config) = match ListenEndpoint::parse(listen_url)? {
            ListenEndpoint::Websocket {
                host,
                port,
                options,
            } => (host, port, ServerConfig::from(options)),
            other => {
                return Err(Error::invalid(format!(
                    "{other}: a websocket server listens on ws://HOST:PORT"
                )));
            }
        };
        Server::serve_with(listen_url, &host, port, config, Box::new(handler))
    }

    /// [`Server::serve`] with explicit settings (instead of the URL's).
    pub fn serve_config(
        listen_url: &str,
        config: ServerConfig,
        handler: impl Fn(&Arc<Stream>) + Send + Sync + 'static,
    ) -> Result<Server> {
        match ListenEndpoint::parse(listen_url)? {
            ListenEndpoint::Websocket { host, port, .. } => {
                Server::serve_with(listen_url, &host, port, config, Box::new(handler))
            }
            other => Err(Error::invalid(format!(
                "{other}: a websocket server listens on ws://HOST:PORT"
            ))),
        }
    }

    pub(crate) fn serve_with(
        listen_url: &str,
        host: &str,
        port: u16,
        config: ServerConfig,
        handler: Box<Handler>,
    ) -> Result<Server> {
        let (sock, address) = bind(listen_url, host, port)?;
        let job = Arc::new(Job {
            name: address.clone(),
            config,
            handler,
            dropped: AtomicU64::new(0),
            counters: Arc::default(),
        });
        let names = Names {
            peer: |a| format!("ws://{a}/"),
            accept_thread: "jw-ws-accept",
            conn_thread: "jw-ws-conn",
        };
        let admit = {
            let job = job.clone();
            move |acc: &Acceptor<Conn>, load| {
                let c = &job.config;
                admit_http(
                    acc,
                    load,
                    c.max_connections,
                    c.max_handshakes,
                    |c: &Conn| {
                        if let Some(raw) = &c.raw {
                            raw.close();
                        }
                    },
                    || job.counters.count_evicted(),
                )
            }
        };
        let serve = {
            let job = job.clone();
            move |acc: &Acceptor<Conn>, id, conn, peer| serve_conn(acc, &job, id, conn, peer)
        };
        let acceptor = Acceptor::start(
            sock,
            address.clone(),
            names,
            Box::new(admit),
            Box::new(serve),
        )?;
        log::info!("{address}: websocket server listening");
        Ok(Server {
            address,
            acceptor,
            job,
        })
    }

    /// The bound address with the real port: `ws://127.0.0.1:PORT/`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// How many connections are open now (handshake done, handler running).
    pub fn connections(&self) -> usize {
        self.acceptor.count(|c| c.ws.is_some())
    }

    /// How many clients were dropped because they could not keep up with
    /// broadcasts.
    pub fn dropped(&self) -> u64 {
        self.job.dropped.load(Ordering::Relaxed)
    }

    /// Connections accepted (handshakes begun), served now (handshake
    /// done, handler running) and refused so far, and the message payload
    /// bytes received from clients and sent to them (by handlers and
    /// broadcasts), counted as they move.
    pub fn stats(&self) -> crate::stream::ServerStats {
        self.acceptor.stats(|c| c.ws.is_some())
    }

    /// How many clients were refused (HTTP 503) because `max_connections`
    /// were served, when they came or when their handshake finished.
    pub fn refused(&self) -> u64 {
        self.acceptor.refused()
    }

    /// How many connections are in their handshake now.
    pub fn handshaking(&self) -> usize {
        self.acceptor.load().handshaking
    }

    /// Every kind of handshake refusal counted so far (each is logged too).
    pub fn refusal_stats(&self) -> RefusalStats {
        self.job.counters.stats(self.acceptor.refused())
    }

    /// Queues `data` as one binary message to every open connection and
    /// returns at once with the number of connections it was queued to. A
    /// connection whose queue is full is dropped (close 1008), counted
    /// ([`Server::dropped`]) and logged.
    pub fn broadcast(&self, data: &[u8]) -> Result<usize> {
        if self.acceptor.is_closing() {
            return Err(Error::Closed(format!("{}: server is closed", self.address)));
        }
        let msg: Arc<[u8]> = data.into();
        let mut n = 0;
        self.acceptor.for_each(|id, c| {
            let Some(tx) = &c.tx else { return };
            match tx.try_send(msg.clone()) {
                Ok(()) => n += 1,
                Err(TrySendError::Full(_)) => {
                    c.tx = None;
                    c.slow.store(true, Ordering::Release);
                    let total = self.job.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    log::warn!(
                        "{}: connection {id} cannot keep up with broadcasts ({} queued): \
                         dropping it ({total} dropped so far)",
                        self.address,
                        self.job.config.queue
                    );
                }
                Err(TrySendError::Disconnected(_)) => c.tx = None,
            }
        });
        Ok(n)
    }

    /// Stops accepting, closes every connection with a close frame (1001),
    /// and joins every thread (each handler must return once its stream is
    /// closed). Closing twice does nothing.
    pub fn close(&self) {
        // One deadline for every close frame: a server with many stuck
        // clients closes as fast as one with a single stuck client.
        let until = Instant::now() + ABORT_WAIT;
        let closed = self.acceptor.close(|c| {
            if let Some(ws) = &c.ws {
                ws.abort(CloseCode::Away, "server closing", until);
            }
            if let Some(raw) = &c.raw {
                raw.close();
            }
        });
        if closed {
            log::info!("{}: websocket server closed", self.address);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close();
    }
}

/// Most bytes of queued broadcasts a writer sends with one send.
const WRITE_BATCH: usize = 64 << 10;

/// Sends the connection's queued broadcasts; what is queued together goes in
/// one send of the underlying stream (all or nothing, as a single message).
fn write_loop(ws: &Ws, rx: &Receiver<Arc<[u8]>>, slow: &AtomicBool, written: &AtomicU64) {
    let mut batch: Vec<Arc<[u8]>> = Vec::new();
    while let Ok(msg) = rx.recv() {
        batch.clear();
        let mut bytes = msg.len();
        batch.push(msg);
        while bytes < WRITE_BATCH {
            match rx.try_recv() {
                Ok(m) => {
                    bytes += m.len();
                    batch.push(m);
                }
                Err(_) => break,
            }
        }
        let payloads: Vec<&[u8]> = batch.iter().map(|m| &m[..]).collect();
        loop {
            if slow.load(Ordering::Acquire) {
                ws.abort(
                    CloseCode::Policy,
                    "too slow for the broadcast",
                    Instant::now() + ABORT_WAIT,
                );
                return;
            }
            match ws.send_messages(&payloads, Some(Instant::now() + WRITER_CHECK)) {
                Ok(()) => {
                    written.fetch_add(bytes as u64, Ordering::Relaxed);
                    break;
                }
                Err(Error::Timeout) => {}
                Err(_) => return,
            }
        }
    }
    if slow.load(Ordering::Acquire) {
        ws.abort(
            CloseCode::Policy,
            "too slow for the broadcast",
            Instant::now() + ABORT_WAIT,
        );
    }
}

fn serve_conn(acc: &Acceptor<Conn>, s: &Job, id: u64, conn: Socket, peer: String) {
    let run = || -> Result<()> {
        let raw = Arc::new(fd::stream(conn, peer.clone(), Kind::Bytes)?);
        if acc.update(id, |c| c.raw = Some(raw.clone())).is_none() {
            return Ok(());
        }
        let (stream, ws) = s.config.accept(raw, acc, id, &s.counters)?;
        let stream = Arc::new(stream);
        let (tx, rx) = crossbeam_channel::bounded(s.config.queue.max(1));
        let registered = acc.update(id, |c| {
            c.raw = None;
            c.ws = Some(ws.clone());
            c.tx = Some(tx);
            c.stream = Some(stream.clone());
            (c.slow.clone(), c.broadcast.clone())
        });
        let Some((slow, broadcast)) = registered else {
            ws.abort(
                CloseCode::Away,
                "server closing",
                Instant::now() + ABORT_WAIT,
            );
            return Ok(());
        };
        std::thread::scope(|sc| {
            let writer = crate::sys::spawn_scoped(sc, "jw-ws-writer", || {
                write_loop(&ws, &rx, &slow, &broadcast);
            });
            (s.handler)(&stream);
            // No more broadcasts to this connection; the writer finishes what
            // is queued (unless the client is too slow) and ends.
            acc.update(id, |c| c.tx = None);
            if let Ok(w) = writer {
                let _ = w.join();
            }
        });
        stream.close();
        Ok(())
    };
    match run() {
        Ok(()) => log::debug!("{}: {peer} done", s.name),
        Err(e) => log::info!("{}: {peer}: {e}", s.name),
    }
    acc.finish(id);
}
