//! A session server ([`Session`]): jumpwire networks served as upstream
//! Jumpstarter network drivers, children of a composite root, on a
//! `unix:/PATH` socket (what `JUMPSTARTER_HOST` names) or a
//! `tcp://HOST:PORT` port: `jumpstarter.v1.ExporterService` and
//! `jumpstarter.v1.RouterService/Stream` on one plaintext HTTP/2 gRPC
//! server, as upstream's `Session.serve_unix_async` serves them.
//!
//! Every connection the session serves goes through one queue
//! ([`Session::serve_connection`] takes any byte stream: an accepted socket
//! or, later, a router stream of a lease), so that the same session can be
//! served over any transport. Each session has a small runtime of its own
//! (one worker thread `jw-session`, and a blocking pool for the targets'
//! connects and the streams of targets without a socket), which
//! [`Session::close`] stops and joins.

use super::authority::FixAuthority;
use super::exported::Exported;
use super::proto::jumpstarter::v1::exporter_service_server::ExporterServiceServer;
use super::service::{Exporter, Shared, Streams};
use crate::error::{Error, Result};
use crate::router::pb::router_service_server::RouterServiceServer;
use crate::router::{CONNECTION_WINDOW, MAX_MESSAGE, STREAM_WINDOW};
use crate::socket;
use crate::url::{ListenEndpoint, UnixPath};
use crate::util::lock;
use socket2::Domain;
use std::collections::HashSet;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, watch};
use tonic::transport::server::Connected;

/// Largest HTTP/2 frame the session accepts: a 64 KiB DATA frame with its
/// gRPC framing fits in one.
const MAX_H2_FRAME: u32 = 128 << 10;
/// How long `close` waits for the connections to finish before dropping
/// them.
const CLOSE_WAIT: Duration = Duration::from_secs(3);
/// How long the accept loop waits after an accept error (never spinning).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How long an idle blocking-pool thread stays.
const IDLE_THREAD: Duration = Duration::from_millis(500);

/// Any byte stream a session can serve.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// One connection the session serves, whatever carries it.
struct Conn(Box<dyn Io>);

impl Connected for Conn {
    type ConnectInfo = ();

    fn connect_info(&self) {}
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_shutdown(cx)
    }
}

/// A connection as the server takes it: its client's `:authority` mended
/// (see `authority`).
fn conn(io: impl Io) -> Conn {
    Conn(Box::new(FixAuthority::new(io)))
}

/// The connections queued for the server.
struct Incoming(mpsc::UnboundedReceiver<Conn>);

impl tokio_stream::Stream for Incoming {
    type Item = io::Result<Conn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|c| c.map(Ok))
    }
}

/// The listening socket of a session.
enum Listening {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

/// A session server (see the [`session`](crate::session) module). Runs until
/// [`Session::close`] (or drop).
pub struct Session {
    address: String,
    stop: watch::Sender<bool>,
    conns: Mutex<Option<mpsc::UnboundedSender<Conn>>>,
    rt: Mutex<Option<Runtime>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    shared: Arc<Shared>,
    unlink: Option<PathBuf>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Checks the drivers' names: none empty, no two alike.
fn check_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let mut seen = HashSet::new();
    for (i, n) in names.into_iter().enumerate() {
        if n.is_empty() {
            return Err(Error::invalid(format!("driver {i}: the name is empty")));
        }
        if !seen.insert(n) {
            return Err(Error::invalid(format!(
                "driver {i}: the name {n:?} is given twice"
            )));
        }
    }
    Ok(())
}

impl Session {
    /// Serves `drivers` (each a name and a target) as a session on
    /// `listen_url`: `unix:/PATH` (the socket `JUMPSTARTER_HOST` then
    /// names; `unix:@NAME` for an abstract one) or `tcp://HOST:PORT` (port
    /// 0 picks a free one; plaintext HTTP/2, what upstream's client speaks
    /// to a TCP session with `JMP_GRPC_INSECURE=1`). Each driver is a
    /// child of a composite root, named by its name; its client class and
    /// calls are those of the upstream driver it stands for
    /// ([`Exported::kind`]). Each driver stream (`connect`) is a new stream
    /// of its target (connected within 30 s), relayed both ways with
    /// half-close.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a URL that is not a `unix:` or `tcp://`
    /// listen URL, an empty name or a name given twice; [`Error::Io`] when
    /// the address cannot be bound (a `unix:` path that exists).
    pub fn serve(listen_url: &str, drivers: Vec<(String, Arc<dyn Exported>)>) -> Result<Session> {
        check_names(drivers.iter().map(|(n, _)| n.as_str()))?;
        let (listening, address, unlink) = match ListenEndpoint::parse(listen_url)? {
            ListenEndpoint::Tcp { host, port, .. } => {
                let (sock, local) = socket::listen_tcp(&host, port, listen_url)?;
                (
                    Listening::Tcp(sock.into()),
                    socket::tcp_address(local),
                    None,
                )
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
                (Listening::Unix(sock.into()), address, unlink)
            }
            other => {
                return Err(Error::invalid(format!(
                    "{other}: not a session listen URL (expected unix:/PATH or tcp://HOST:PORT)"
                )));
            }
        };
        let session = Session::start(address, drivers, unlink)?;
        session.accept(listening)?;
        Ok(session)
    }

    /// The session's runtime and server, without a listener yet.
    fn start(
        address: String,
        drivers: Vec<(String, Arc<dyn Exported>)>,
        unlink: Option<PathBuf>,
    ) -> Result<Session> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1024)
            .thread_keep_alive(IDLE_THREAD)
            .thread_name("jw-session")
            .on_thread_start(crate::sys::block_sigpipe)
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the session's runtime", &e))?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared::new(address.clone(), drivers, stop_rx.clone()));
        let (conns_tx, conns_rx) = mpsc::unbounded_channel();
        let server = tonic::transport::Server::builder()
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(MAX_H2_FRAME)
            .add_service(
                ExporterServiceServer::new(Exporter(shared.clone()))
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE),
            )
            .add_service(
                RouterServiceServer::new(Streams(shared.clone()))
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE),
            );
        let name = address.clone();
        let mut halt = stop_rx;
        let task = rt.spawn(async move {
            let stop = async move {
                let _ = halt.wait_for(|s| *s).await;
            };
            let r = server
                .serve_with_incoming_shutdown(Incoming(conns_rx), stop)
                .await;
            if let Err(e) = r {
                log::warn!("session {name}: {e}");
            }
        });
        log::info!(
            "session {address}: serving {}",
            shared
                .drivers
                .iter()
                .map(|d| format!("{} ({})", d.name, d.kind.class))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(Session {
            address,
            stop: stop_tx,
            conns: Mutex::new(Some(conns_tx)),
            rt: Mutex::new(Some(rt)),
            task: Mutex::new(Some(task)),
            shared,
            unlink,
        })
    }

    /// Starts the accept loop of `listening`: each connection accepted is
    /// served ([`Session::serve_connection`]) until the session closes.
    fn accept(&self, listening: Listening) -> Result<()> {
        let rt = lock(&self.rt);
        let Some(rt) = rt.as_ref() else {
            return Err(Error::Closed(format!("session {}: closed", self.address)));
        };
        let _enter = rt.enter();
        let Some(conns) = lock(&self.conns).clone() else {
            return Err(Error::Closed(format!("session {}: closed", self.address)));
        };
        let name = self.address.clone();
        let io = |e: io::Error| Error::io(&name, &e);
        let mut stop = self.stop.subscribe();
        let address = self.address.clone();
        match listening {
            Listening::Tcp(l) => {
                let l = tokio::net::TcpListener::from_std(l).map_err(io)?;
                rt.spawn(async move {
                    loop {
                        let r = tokio::select! {
                            r = l.accept() => r,
                            _ = stop.wait_for(|s| *s) => return,
                        };
                        match r {
                            Ok((c, _)) => {
                                let _ = c.set_nodelay(true);
                                if conns.send(conn(c)).is_err() {
                                    return;
                                }
                            }
                            Err(e) => backoff(&address, &e).await,
                        }
                    }
                });
            }
            Listening::Unix(l) => {
                let l = tokio::net::UnixListener::from_std(l).map_err(io)?;
                rt.spawn(async move {
                    loop {
                        let r = tokio::select! {
                            r = l.accept() => r,
                            _ = stop.wait_for(|s| *s) => return,
                        };
                        match r {
                            Ok((c, _)) => {
                                if conns.send(conn(c)).is_err() {
                                    return;
                                }
                            }
                            Err(e) => backoff(&address, &e).await,
                        }
                    }
                });
            }
        }
        Ok(())
    }

    /// Serves the session on one more connection: any byte stream whose
    /// peer speaks HTTP/2 (a router stream of a lease, as upstream's
    /// exporter serves its session over each one). Any thread may call it;
    /// `io` must be usable on the session's runtime.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the session is closing.
    pub(crate) fn serve_connection(&self, io: impl Io) -> Result<()> {
        let conns = lock(&self.conns);
        match conns.as_ref().map(|c| c.send(conn(io))) {
            Some(Ok(())) => Ok(()),
            _ => Err(Error::Closed(format!("session {}: closed", self.address))),
        }
    }

    /// Serves the session on one end of a Unix socket pair (see
    /// [`Session::serve_connection`]): what a lease's router stream is fed
    /// through.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the session is closing; [`Error::Io`] when
    /// the socket cannot join the session's runtime.
    pub(crate) fn serve_unix(&self, s: std::os::unix::net::UnixStream) -> Result<()> {
        let closed = || Error::Closed(format!("session {}: closed", self.address));
        let io = {
            let rt = lock(&self.rt);
            let rt = rt.as_ref().ok_or_else(closed)?;
            let _enter = rt.enter();
            s.set_nonblocking(true)
                .map_err(|e| Error::io(&self.address, &e))?;
            tokio::net::UnixStream::from_std(s).map_err(|e| Error::io(&self.address, &e))?
        };
        self.serve_connection(io)
    }

    /// The reports of the session's drivers, as its `GetReport` answers
    /// them (what an exporter registers with its controller).
    pub(crate) fn reports(&self) -> Vec<super::proto::jumpstarter::v1::DriverInstanceReport> {
        self.shared.report.reports.clone()
    }

    /// The address the session listens on, with the real port:
    /// `unix:/PATH`, `unix:@NAME`, `tcp://127.0.0.1:PORT`,
    /// `tcp://[::1]:PORT`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The value for `JUMPSTARTER_HOST` (upstream's client): the socket's
    /// path, or `HOST:PORT` (`None` for an abstract Unix socket, which the
    /// variable cannot name).
    pub fn host(&self) -> Option<String> {
        if let Some(p) = &self.unlink {
            return Some(p.display().to_string());
        }
        self.address.strip_prefix("tcp://").map(str::to_string)
    }

    /// How many driver streams are open now.
    pub fn streams(&self) -> usize {
        self.shared.streams.load(Ordering::Acquire)
    }

    /// Stops the session: accepting stops, every open driver stream ends
    /// (the client's call with `UNAVAILABLE`, the target closed), the
    /// connections close (within 3 s, then they are dropped), and every
    /// thread of the session is joined (a target's connect still running
    /// is waited for, at most its 30 s). A `unix:` socket file it created
    /// is removed. Closing twice does nothing.
    pub fn close(&self) {
        let Some(rt) = lock(&self.rt).take() else {
            return;
        };
        let _ = self.stop.send(true);
        drop(lock(&self.conns).take());
        if let Some(task) = lock(&self.task).take() {
            let abort = task.abort_handle();
            let done = rt.block_on(async { tokio::time::timeout(CLOSE_WAIT, task).await });
            if done.is_err() {
                abort.abort();
            }
        }
        // Dropping the runtime drops its tasks and joins its threads.
        drop(rt);
        if let Some(p) = &self.unlink {
            let _ = std::fs::remove_file(p);
        }
        log::info!("session {}: closed", self.address);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

/// After an accept error: a pause, so that the loop never spins (out of
/// descriptors, it waits for some to be freed).
async fn backoff(address: &str, e: &io::Error) {
    if !matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        log::warn!("session {address}: accept: {e}");
        tokio::time::sleep(ACCEPT_BACKOFF).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_set_and_distinct() {
        assert!(check_names(["a", "b"]).is_ok());
        assert!(check_names([]).is_ok());
        let e = check_names(["a", ""]).unwrap_err().to_string();
        assert!(e.contains("driver 1: the name is empty"), "{e}");
        let e = check_names(["a", "b", "a"]).unwrap_err().to_string();
        assert!(e.contains("\"a\" is given twice"), "{e}");
    }
}
