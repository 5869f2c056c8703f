//! A session served through a lab ([`LabExporter`]): what upstream's
//! `Exporter` does with a controller (exporter.py `serve`, `handle_lease`),
//! for a jumpwire [`Session`]. Configured as upstream's exporter is (the
//! `ExporterConfigV1Alpha1` file: `metadata`, `endpoint`, `token`, `tls`;
//! or the `JMP_*` variables a client configuration reads), it registers
//! the session's drivers (its `GetReport` reports) with `Register`,
//! reports `AVAILABLE`, follows `Status`, and while leased listens
//! (`Listen`) and reports `LEASE_READY`; each `ListenResponse` is one
//! client's connection: the router it names is dialled with its token and
//! the session is served over that router stream's bytes (upstream's
//! `connect_router_stream`). A lease's end stops its router streams and
//! reports `AVAILABLE` again. [`LabExporter::close`] reports `OFFLINE`,
//! unregisters (`Exporter shutdown`), within 10 s, and joins every thread.
//!
//! The configuration's `export` (upstream's driver tree) is not read: the
//! session gives the drivers. Its `grpcOptions` are not read either.

use super::lab::{self, Account, Fields, HostPort};
use super::proto::jumpstarter::v1::controller_service_client::ControllerServiceClient;
use super::proto::jumpstarter::v1::{
    ExporterStatus, ListenRequest, ListenResponse, RegisterRequest, ReportStatusRequest,
    StatusRequest, StatusResponse, UnregisterRequest,
};
use super::server::Session;
use crate::error::{Error, Result};
use crate::router::{Connection, MAX_MESSAGE, Stop, Target, export_via};
use crate::socket::{Kind, fd};
use crate::stream::{Connect, Stream};
use crate::util::lock;
use std::ffi::OsString;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tonic::Streaming;

/// How long the goodbye (`OFFLINE`, `Unregister`) may take (upstream's
/// bound on its shutdown).
const GOODBYE: Duration = Duration::from_secs(10);
/// How long reaching the controller and registering may take at start.
const START: Duration = Duration::from_secs(30);
/// The pause before a failed controller call or stream is tried again.
const RETRY: Duration = Duration::from_secs(1);
/// How long a router stream waits for its client (the client dials the
/// router right after the controller's Dial answered).
const PAIRING: Duration = Duration::from_secs(30);

/// The exporter's identity and lab, from its configuration.
struct Config {
    account: Account,
    tls: Arc<rustls::ClientConfig>,
    what: String,
}

/// Reads the exporter configuration: the file `path` (`kind:
/// ExporterConfig`; the environment fills in what it leaves out), or with
/// `None` the `JMP_*` variables alone.
fn config(path: Option<&Path>, var: &dyn Fn(&str) -> Option<OsString>) -> Result<Config> {
    let name = "exporter";
    let (fields, from): (Fields, String) = match path {
        Some(p) => (
            lab::file_fields(p, name, "ExporterConfig")?.or(lab::env_fields(var, name)?),
            format!("the exporter configuration {}", p.display()),
        ),
        None => (
            lab::env_fields(var, name)?,
            "the JMP_* environment variables".to_owned(),
        ),
    };
    let account = lab::account(fields, &from, name, var)?;
    let tls = crate::tls::client_config_pem(account.ca.as_deref(), account.insecure, name)?;
    let what = format!(
        "exporter {}/{} (controller {})",
        account.namespace, account.name, account.controller
    );
    Ok(Config {
        account,
        tls: Arc::new(tls),
        what,
    })
}

/// A session served through a lab (see the [`session`](crate::session) module).
pub struct LabExporter {
    what: String,
    stop: watch::Sender<bool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for LabExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabExporter")
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl LabExporter {
    /// Serves `session` through the lab of the exporter configuration
    /// `config` (upstream's `ExporterConfigV1Alpha1` YAML), or with `None`
    /// of the `JMP_NAMESPACE`, `JMP_NAME`, `JMP_ENDPOINT`, `JMP_TOKEN` and
    /// `JMP_TLS` variables (`JMP_GRPC_INSECURE=1`: TLS unverified).
    /// Returns once registered with the controller (within 30 s); then
    /// follows the controller on a thread of its own until
    /// [`LabExporter::close`]. The session must stay open meanwhile (a
    /// closed one fails its clients' connections).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a configuration that cannot be read
    /// or misses a field; the controller's refusal of the exporter's token
    /// ([`Error::Unauthenticated`]); [`Error::Connection`] or
    /// [`Error::Timeout`] when the controller cannot be reached.
    pub fn start(config: Option<&Path>, session: Arc<Session>) -> Result<LabExporter> {
        LabExporter::start_with(config, session, &|k| std::env::var_os(k))
    }

    fn start_with(
        path: Option<&Path>,
        session: Arc<Session>,
        var: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<LabExporter> {
        let cfg = config(path, var)?;
        let what = cfg.what.clone();
        let (stop_tx, stop_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let thread = crate::sys::spawn("jw-exporter", move || {
            let mut run = Run {
                cfg,
                session,
                stop: stop_rx,
                exports: Vec::new(),
            };
            run.main(ready_tx);
        })
        .map_err(|e| Error::io("starting the exporter's thread", &e))?;
        let e = LabExporter {
            what,
            stop: stop_tx,
            thread: Mutex::new(Some(thread)),
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(e),
            Ok(Err(err)) => {
                e.close();
                Err(err)
            }
            Err(_) => {
                e.close();
                Err(Error::Internal(format!("{}: the thread ended", e.what)))
            }
        }
    }

    /// Stops: the lease's router streams end (their clients' connections
    /// fail), the controller is told `OFFLINE` and `Unregister`ed (within
    /// 10 s), and every thread is joined. Thread-safe; closing twice does
    /// nothing.
    pub fn close(&self) {
        let _ = self.stop.send(true);
        let t = lock(&self.thread).take();
        if let Some(t) = t {
            let _ = t.join();
            log::info!("{}: closed", self.what);
        }
    }
}

impl Drop for LabExporter {
    fn drop(&mut self) {
        self.close();
    }
}

/// One router stream of a lease: its thread and the lease's stop.
struct Export {
    stop: Arc<Stop>,
    thread: JoinHandle<()>,
}

/// The exporter's thread.
struct Run {
    cfg: Config,
    session: Arc<Session>,
    stop: watch::Receiver<bool>,
    exports: Vec<Export>,
}

/// A `Listen` call not answered yet (a controller may send its response
/// headers only with the first `ListenResponse`).
type ListenCall = Pin<
    Box<
        dyn Future<
            Output = std::result::Result<tonic::Response<Streaming<ListenResponse>>, tonic::Status>,
        >,
    >,
>;

/// A lease's `Listen` call.
enum Listening {
    Calling(ListenCall),
    Open(Box<Streaming<ListenResponse>>),
}

/// The lease being served: its name, `Listen` call, and the stop of its
/// router streams.
struct Leased {
    name: String,
    listen: Option<Listening>,
    stop: Arc<Stop>,
}

/// A new connection to the session: one end of a socket pair served by the
/// session, the other end the stream returned.
struct SessionEnd(Arc<Session>);

impl Connect for SessionEnd {
    fn connect(&self, _timeout: Option<Duration>) -> Result<Stream> {
        let (ours, theirs) =
            socket2::Socket::pair(socket2::Domain::UNIX, socket2::Type::STREAM, None)
                .map_err(|e| Error::io("socketpair", &e))?;
        self.0.serve_unix(std::os::unix::net::UnixStream::from(
            std::os::fd::OwnedFd::from(theirs),
        ))?;
        fd::stream(ours, format!("session {}", self.0.address()), Kind::Bytes)
    }
}

impl Run {
    fn client(&self, ctl: &Connection) -> ControllerServiceClient<tonic::transport::Channel> {
        ControllerServiceClient::new(ctl.channel())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let a = &self.cfg.account;
        let mut req = tonic::Request::new(msg);
        *req.metadata_mut() = lab::call_credentials("Exporter", &a.namespace, &a.name, &a.token);
        req
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Reaches the controller.
    fn dial(&self, deadline: Option<Instant>) -> Result<Connection> {
        let cfg = self.cfg.account.controller.router_config();
        Connection::dial(Target::Tls(&cfg, &self.cfg.tls), &self.cfg.what, deadline)
    }

    /// Registers the session's drivers and reports `AVAILABLE`.
    fn register(&self, ctl: &Connection, deadline: Option<Instant>) -> Result<()> {
        let what = &self.cfg.what;
        let req = self.request(RegisterRequest {
            labels: Default::default(),
            reports: self.session.reports(),
        });
        let mut c = self.client(ctl);
        ctl.run(deadline, c.register(req))?
            .map_err(|st| lab::controller_error(&format!("{what}: Register"), &st))?;
        self.report(
            ctl,
            ExporterStatus::Available,
            "Exporter registered and available",
            deadline,
        )
    }

    fn report(
        &self,
        ctl: &Connection,
        status: ExporterStatus,
        message: &str,
        deadline: Option<Instant>,
    ) -> Result<()> {
        let req = self.request(ReportStatusRequest {
            status: status as i32,
            message: Some(message.to_owned()),
            release_lease: None,
        });
        let mut c = self.client(ctl);
        ctl.run(deadline, c.report_status(req))?.map_err(|st| {
            lab::controller_error(
                &format!("{}: ReportStatus({})", self.cfg.what, status.as_str_name()),
                &st,
            )
        })?;
        Ok(())
    }

    /// The thread: registers (the result goes to `ready`), then follows the
    /// controller until stopped, then says goodbye.
    fn main(&mut self, ready: std::sync::mpsc::SyncSender<Result<()>>) {
        let deadline = Some(Instant::now() + START);
        let first = self
            .dial(deadline)
            .and_then(|ctl| self.register(&ctl, deadline).map(|()| ctl));
        let mut ctl = match first {
            Ok(ctl) => {
                let _ = ready.send(Ok(()));
                ctl
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        log::info!("{}: registered", self.cfg.what);
        let mut lease: Option<Leased> = None;
        while !self.stopped() {
            if let Err(e) = self.follow(&ctl, &mut lease) {
                log::warn!("{}: {e}", self.cfg.what);
                self.reap(false);
                if self.pause(&ctl) {
                    break;
                }
                if !ctl.alive() {
                    match self.dial(Some(Instant::now() + START)) {
                        Ok(c) => ctl = c,
                        Err(e) => log::warn!("{}: {e}", self.cfg.what),
                    }
                }
            }
        }
        if let Some(l) = lease.take() {
            l.stop.stop();
        }
        // Goodbye (bounded), then every router stream is joined.
        let until = Some(Instant::now() + GOODBYE);
        let bye = self
            .report(
                &ctl,
                ExporterStatus::Offline,
                "Exporter shutting down",
                until,
            )
            .and_then(|()| {
                let req = self.request(UnregisterRequest {
                    reason: "Exporter shutdown".to_owned(),
                });
                let mut c = self.client(&ctl);
                ctl.run(until, c.unregister(req))?.map_err(|st| {
                    lab::controller_error(&format!("{}: Unregister", self.cfg.what), &st)
                })?;
                Ok(())
            });
        if let Err(e) = bye {
            log::warn!("{}: goodbye: {e}", self.cfg.what);
        }
        self.reap(true);
    }

    /// Waits [`RETRY`] or until stopped (`true`).
    fn pause(&self, ctl: &Connection) -> bool {
        let mut stop = self.stop.clone();
        ctl.run(Some(Instant::now() + RETRY), async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .is_ok()
    }

    /// Joins the router streams that have ended (all of them with `all`,
    /// stopped first).
    fn reap(&mut self, all: bool) {
        let (done, running): (Vec<Export>, Vec<Export>) = std::mem::take(&mut self.exports)
            .into_iter()
            .partition(|e| all || e.thread.is_finished());
        self.exports = running;
        for e in done {
            if all {
                e.stop.stop();
            }
            let _ = e.thread.join();
        }
    }

    /// Follows the `Status` stream (called again when it ends normally)
    /// and the lease's `Listen` stream until stopped (`Ok`) or a call fails.
    fn follow(&mut self, ctl: &Connection, lease: &mut Option<Leased>) -> Result<()> {
        let what = self.cfg.what.clone();
        let mut c = self.client(ctl);
        let req = self.request(StatusRequest {});
        let mut status = ctl
            .run(None, c.status(req))?
            .map_err(|st| lab::controller_error(&format!("{what}: Status"), &st))?
            .into_inner();
        loop {
            enum Event {
                Stopped,
                Status(std::result::Result<Option<StatusResponse>, tonic::Status>),
                Listen(std::result::Result<Option<ListenResponse>, tonic::Status>),
                Listening(std::result::Result<Streaming<ListenResponse>, tonic::Status>),
            }
            let mut stop = self.stop.clone();
            let listen = lease.as_mut().and_then(|l| l.listen.as_mut());
            let ev = ctl.run(None, async {
                let listening = async {
                    match listen {
                        Some(Listening::Open(s)) => Event::Listen(s.message().await),
                        Some(Listening::Calling(c)) => {
                            Event::Listening(c.await.map(tonic::Response::into_inner))
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => Event::Stopped,
                    m = status.message() => Event::Status(m),
                    ev = listening => ev,
                }
            })?;
            match ev {
                Event::Stopped => return Ok(()),
                Event::Status(Ok(None)) => return Ok(()),
                Event::Status(Err(st)) => {
                    return Err(lab::controller_error(&format!("{what}: Status"), &st));
                }
                Event::Status(Ok(Some(s))) => self.status(ctl, lease, &s)?,
                Event::Listen(Ok(Some(r))) => {
                    if let Some(l) = lease.as_ref() {
                        self.serve(r, l.stop.clone());
                    }
                }
                Event::Listening(Ok(s)) => {
                    if let Some(l) = lease.as_mut() {
                        l.listen = Some(Listening::Open(Box::new(s)));
                    }
                }
                Event::Listen(Ok(None) | Err(_)) | Event::Listening(Err(_)) => {
                    // The Listen call ended while leased: listen again.
                    if let Some(l) = lease.as_mut() {
                        log::info!("{what}: Listen({}) ended: listening again", l.name);
                        l.listen = None;
                        if !self.pause(ctl) {
                            l.listen = Some(self.listen(ctl, &l.name));
                        }
                    }
                }
            }
            self.reap(false);
        }
    }

    /// Starts a `Listen` call (answered in [`Run::follow`]).
    fn listen(&self, ctl: &Connection, name: &str) -> Listening {
        let mut c = self.client(ctl);
        let req = self.request(ListenRequest {
            lease_name: name.to_owned(),
        });
        Listening::Calling(Box::pin(async move { c.listen(req).await }))
    }

    /// A lease state: a new lease is listened on and `LEASE_READY`
    /// reported; the end of one stops its router streams and reports
    /// `AVAILABLE`.
    fn status(
        &mut self,
        ctl: &Connection,
        lease: &mut Option<Leased>,
        s: &StatusResponse,
    ) -> Result<()> {
        let name = s.lease_name.clone().unwrap_or_default();
        if s.leased && !name.is_empty() {
            if lease.as_ref().is_some_and(|l| l.name == name) {
                return Ok(());
            }
            if let Some(old) = lease.take() {
                old.stop.stop();
            }
            log::info!("{}: leased: {name}", self.cfg.what);
            let listen = self.listen(ctl, &name);
            *lease = Some(Leased {
                name,
                listen: Some(listen),
                stop: Arc::default(),
            });
            self.report(ctl, ExporterStatus::LeaseReady, "Ready for commands", None)
        } else if let Some(old) = lease.take() {
            log::info!("{}: lease {} ended", self.cfg.what, old.name);
            old.stop.stop();
            self.report(
                ctl,
                ExporterStatus::Available,
                "Exporter available after lease release",
                None,
            )
        } else {
            Ok(())
        }
    }

    /// One client's connection: the session served over a router stream,
    /// on a thread of its own.
    fn serve(&mut self, r: ListenResponse, stop: Arc<Stop>) {
        let what = self.cfg.what.clone();
        let Some(router) = HostPort::parse(&r.router_endpoint) else {
            log::warn!(
                "{what}: the router endpoint {:?} is not HOST:PORT",
                r.router_endpoint
            );
            return;
        };
        let tls = self.cfg.tls.clone();
        let target = SessionEnd(self.session.clone());
        let s2 = stop.clone();
        let spawned = crate::sys::spawn("jw-exporter-stream", move || {
            let cfg = router.router_config();
            let name = format!("{what}: router {router}");
            let r = export_via(
                Target::Tls(&cfg, &tls),
                &r.router_token,
                &name,
                &target,
                Some(PAIRING),
                &s2,
            );
            log::info!("{name}: the client's connection ended: {r:?}");
        });
        match spawned {
            Ok(thread) => self.exports.push(Export { stop, thread }),
            Err(e) => log::warn!("{}: starting a thread: {e}", self.cfg.what),
        }
    }
}
