//! The client side of a session: a `jumpstarter:` network's streams.
//!
//! A [`Sessions`] (one per [`Network`](crate::network::Network), shared by
//! its clones) holds the HTTP/2 connection to the session its URL names,
//! with the session's driver tree ([`Tree`], from `GetReport`), and opens
//! each stream as its own `jumpstarter.v1.RouterService/Stream` call on that
//! one connection, with the `request` metadata upstream's
//! `DriverClient.stream_async` sends (js/client/core.py:426-435). The
//! connection is dialled at the first connect and again when it has died
//! (or when `JUMPSTARTER_HOST` names another session); the streams' frames
//! and ends are the router client's (`crate::router::Connection`).

use super::lab::Lab;
use super::proto::jumpstarter::v1::exporter_service_client::ExporterServiceClient;
use super::proto::jumpstarter::v1::{DriverCallRequest, GetReportResponse};
use crate::error::{Error, Result};
use crate::router::{Connection, MAX_MESSAGE, Target};
use crate::stream::Stream;
use crate::url::{JumpstarterConfig, RouterConfig, SessionAddress, UnixPath};
use crate::util::lock;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tonic::metadata::{MetadataMap, MetadataValue};

/// The variable that names the session inside `jmp shell`.
pub(crate) const HOST_ENV: &str = "JUMPSTARTER_HOST";
/// Plaintext HTTP/2 to a `HOST:PORT` session (either variable `=1`).
const INSECURE_ENV: [&str; 2] = ["JMP_GRPC_INSECURE", "JUMPSTARTER_GRPC_INSECURE"];
/// The session's passphrase, sent as [`PASSPHRASE_KEY`] on every call.
const PASSPHRASE_ENV: &str = "JMP_GRPC_PASSPHRASE";
const PASSPHRASE_KEY: &str = "x-jumpstarter-passphrase";

/// The label that names a driver among its siblings.
const NAME_LABEL: &str = "jumpstarter.dev/name";

/// How long [`Sessions::address`] (a `DriverCall`) may take: the network
/// API's `address` has no timeout of its own.
pub(crate) const ADDRESS_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a session is, resolved at connect time: the key of the cached
/// connection.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    Unix(UnixPath),
    Tcp(RouterConfig),
    /// A lease's session through its lab (the token is in it: never shown).
    Lease(Box<Lab>),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Unix(p) => write!(f, "{p}"),
            Place::Lease(l) => write!(f, "{l}"),
            Place::Tcp(c) => write!(
                f,
                "{}{}:{}",
                if c.tls { "grpcs://" } else { "grpc://" },
                if c.host.contains(':') {
                    format!("[{}]", c.host)
                } else {
                    c.host.clone()
                },
                c.port
            ),
        }
    }
}

/// A session to connect to: where, and the passphrase for its calls.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Resolved {
    place: Place,
    passphrase: Option<String>,
}

/// Upstream's `_is_tcp_address` (js/client/client.py:24-35): the text after
/// the last `:` is a port, 1-65535, as Python's `int(s, 10)` reads it
/// (surrounding whitespace, a sign and `_` between digits allowed; ASCII
/// digits only here). Returns the host and the port.
fn tcp_address(value: &str) -> Option<(&str, u16)> {
    let (host, port) = value.rsplit_once(':')?;
    let t = port.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    let well_formed = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if !well_formed || t.starts_with('-') {
        return None;
    }
    let n: u64 = digits.replace('_', "").parse().ok()?;
    let port = u16::try_from(n).ok().filter(|p| *p >= 1)?;
    Some((host, port))
}

/// The session `cfg` names, reading the environment through `var` for
/// `jumpstarter:?…` (`JUMPSTARTER_HOST` and upstream's variables beside it).
fn resolve(
    cfg: &JumpstarterConfig,
    name: &str,
    var: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Resolved> {
    match &cfg.session {
        SessionAddress::Unix(p) => {
            return Ok(Resolved {
                place: Place::Unix(p.clone()),
                passphrase: None,
            });
        }
        SessionAddress::Lease(l) => {
            return Ok(Resolved {
                place: Place::Lease(Box::new(super::lab::resolve(l, name, var)?)),
                passphrase: None,
            });
        }
        SessionAddress::Env => {}
    }
    // Unset, empty or not text: an argument error (retrying will not help),
    // as a `dbus:session` whose variable is malformed.
    let Some(value) = var(HOST_ENV) else {
        return Err(Error::invalid(format!(
            "{name}: {HOST_ENV} is not set (it names the session inside `jmp shell`; \
             or give the session's socket: jumpstarter:unix:/PATH?driver=…)"
        )));
    };
    let Some(value) = value.to_str() else {
        return Err(Error::invalid(format!("{name}: {HOST_ENV} is not UTF-8")));
    };
    if value.is_empty() {
        return Err(Error::invalid(format!("{name}: {HOST_ENV} is empty")));
    }
    let passphrase = var(PASSPHRASE_ENV)
        .and_then(|p| p.into_string().ok())
        .filter(|p| !p.is_empty());
    if let Some(p) = &passphrase {
        if MetadataValue::try_from(p.as_str()).is_err() {
            return Err(Error::invalid(format!(
                "{name}: {PASSPHRASE_ENV} has characters a header cannot carry"
            )));
        }
    }
    let place = match tcp_address(value) {
        Some((host, port)) => {
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            if host.is_empty() {
                return Err(Error::invalid(format!(
                    "{name}: {HOST_ENV}={value:?}: the host is empty"
                )));
            }
            let insecure = INSECURE_ENV
                .iter()
                .any(|v| var(v).is_some_and(|x| x == "1"));
            Place::Tcp(RouterConfig {
                host: host.to_owned(),
                port,
                tls: !insecure,
                ca: None,
                insecure: false,
            })
        }
        // Anything else is a socket path, as upstream's `unix://` + value
        // (a value `unix:/x` is the path "unix:/x" there too).
        None => {
            if value.len() > crate::url::UNIX_PATH_MAX || value.contains('\0') {
                return Err(Error::invalid(format!(
                    "{name}: {HOST_ENV}={value:?} is not a Unix socket path"
                )));
            }
            Place::Unix(UnixPath::Path(PathBuf::from(value)))
        }
    };
    Ok(Resolved { place, passphrase })
}

/// A session's driver tree, from its `GetReport`.
struct Tree {
    /// Each driver's uuid by its dot-joined name path, in report order.
    drivers: Vec<(String, String)>,
}

impl Tree {
    /// Builds the name paths as upstream's client does (js/client/client.py:
    /// 251-303): the root is the report without a parent, children are
    /// named by their `jumpstarter.dev/name` label.
    fn new(report: &GetReportResponse) -> Tree {
        let parent = |r: &super::proto::jumpstarter::v1::DriverInstanceReport| {
            r.parent_uuid.clone().unwrap_or_default()
        };
        let mut children: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, r) in report.reports.iter().enumerate() {
            children.entry(parent(r)).or_default().push(i);
        }
        let mut drivers = Vec::new();
        // Depth-first from the root(s), in report order.
        let mut stack: Vec<(usize, String)> = Vec::new();
        for &root in children.get("").into_iter().flatten().rev() {
            stack.push((root, String::new()));
        }
        let mut seen = 0;
        while let Some((i, path)) = stack.pop() {
            seen += 1;
            if seen > report.reports.len() {
                break; // a cycle of parents: the names so far will do
            }
            let r = &report.reports[i];
            if !path.is_empty() {
                drivers.push((path.clone(), r.uuid.clone()));
            }
            for &c in children.get(&r.uuid).into_iter().flatten().rev() {
                let Some(n) = report.reports[c].labels.get(NAME_LABEL) else {
                    continue;
                };
                let child = if path.is_empty() {
                    n.clone()
                } else {
                    format!("{path}.{n}")
                };
                stack.push((c, child));
            }
        }
        Tree { drivers }
    }

    /// The uuid of the driver `path`, or an error that lists the drivers.
    fn find(&self, path: &str, name: &str, place: &Place) -> Result<&str> {
        if let Some((_, uuid)) = self.drivers.iter().find(|(p, _)| p == path) {
            return Ok(uuid);
        }
        let names: Vec<&str> = self.drivers.iter().map(|(p, _)| p.as_str()).collect();
        // No NOT_FOUND among jumpwire's statuses: the URL names a driver the
        // session does not have, an argument to fix (retrying will not
        // help), as a bad option is.
        Err(Error::invalid(format!(
            "{name}: the session at {place} has no driver {path:?} (its drivers: {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )))
    }
}

/// One connection to a session and its driver tree.
struct Session {
    conn: Connection,
    resolved: Resolved,
    tree: Tree,
}

/// The connection of a `jumpstarter:` network (and of its clones), kept
/// between connects.
#[derive(Default)]
pub(crate) struct Sessions {
    state: Mutex<State>,
    /// Notified when a dial ends.
    dialled: Condvar,
}

#[derive(Default)]
struct State {
    session: Option<Arc<Session>>,
    /// A caller is dialling: the others wait for it (each within its own
    /// deadline) rather than dial too.
    dialling: bool,
}

/// Ends a dial (even one that panicked) and wakes the callers waiting.
struct Dialling<'a>(&'a Sessions);

impl Drop for Dialling<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).dialling = false;
        self.0.dialled.notify_all();
    }
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

/// The metadata every call of a session carries.
fn metadata(resolved: &Resolved) -> MetadataMap {
    let mut md = MetadataMap::new();
    if let Some(p) = &resolved.passphrase {
        if let Ok(v) = MetadataValue::try_from(p.as_str()) {
            md.insert(PASSPHRASE_KEY, v);
        }
    }
    md
}

/// A gRPC status of a session call as the caller's error (upstream's
/// client: js/client/core.py:381-397, the notes' §3/§4 tables).
fn status_error(name: &str, st: &tonic::Status) -> Error {
    use tonic::Code;
    let msg = format!("{name}: {}: {}", st.code().description(), st.message());
    match st.code() {
        // The driver has no such stream (or call) method (upstream:
        // DriverMethodNotImplemented).
        Code::NotFound | Code::Unimplemented => Error::Unsupported(msg),
        Code::Unauthenticated | Code::PermissionDenied => Error::Unauthenticated(msg),
        Code::InvalidArgument => Error::InvalidArgument(msg),
        Code::Internal => Error::Protocol(msg),
        // UNKNOWN (the driver failed: its target refused, an unknown uuid),
        // FAILED_PRECONDITION (exporter not ready), UNAVAILABLE, ….
        _ => Error::Connection(msg),
    }
}

/// The `request` metadata of a driver stream, as upstream's pydantic
/// `StreamRequestMetadata(...).model_dump(mode="json")` writes it: compact
/// JSON, keys in the order kind, uuid, method.
fn request_metadata(uuid: &str, method: &str) -> String {
    let s = |v: &str| serde_json::Value::from(v).to_string();
    format!(
        "{{\"kind\":\"driver\",\"uuid\":{},\"method\":{}}}",
        s(uuid),
        s(method)
    )
}

impl Sessions {
    /// The session `cfg` names: the cached one if it is that session's and
    /// alive, else a new connection (and its `GetReport`) within `deadline`.
    fn session(
        &self,
        cfg: &JumpstarterConfig,
        name: &str,
        deadline: Option<Instant>,
    ) -> Result<Arc<Session>> {
        let resolved = resolve(cfg, name, &|v| std::env::var_os(v))?;
        let mut st = lock(&self.state);
        loop {
            if let Some(s) = st.session.as_ref() {
                if s.resolved == resolved && s.conn.alive() {
                    return Ok(s.clone());
                }
            }
            if !st.dialling {
                break;
            }
            // Another caller is dialling: wait for it, within our deadline.
            st = match deadline {
                None => self
                    .dialled
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Error::Timeout);
                    }
                    self.dialled
                        .wait_timeout(st, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        // The old connection goes with its last stream (and not under the
        // lock: its end may wait for calls still ending).
        let old = st.session.take();
        st.dialling = true;
        drop(st);
        drop(old);
        let dialling = Dialling(self);
        let r = Self::dial(resolved, name, deadline).map(Arc::new);
        let mut st = lock(&self.state);
        if let Ok(s) = &r {
            st.session = Some(s.clone());
        }
        drop(st);
        drop(dialling);
        r
    }

    /// A new connection to the session `resolved`, and its driver tree.
    fn dial(resolved: Resolved, name: &str, deadline: Option<Instant>) -> Result<Session> {
        let place = &resolved.place;
        let conn = match place {
            Place::Unix(p) => Connection::dial(
                Target::Unix(p),
                &format!("{name}: session {place}"),
                deadline,
            )?,
            Place::Tcp(c) => Connection::dial(
                Target::Tcp(c),
                &format!("{name}: session {place}"),
                deadline,
            )?,
            Place::Lease(lab) => super::lab::dial(lab, name, deadline)?,
        };
        let mut client = ExporterServiceClient::new(conn.channel())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let mut request = tonic::Request::new(());
        *request.metadata_mut() = metadata(&resolved);
        let report = conn
            .run(deadline, client.get_report(request))?
            .map_err(|st| {
                // Through a router: the router's refusal (a token it does
                // not take, …) says more than the session call's failure.
                if let Some(e) = conn.tunnel_failure() {
                    return e;
                }
                let e = status_error(&format!("{name}: GetReport of the session at {place}"), &st);
                match e {
                    Error::Unsupported(m) => {
                        Error::Protocol(format!("{m} (not a Jumpstarter session?)"))
                    }
                    e => e,
                }
            })?
            .into_inner();
        let tree = Tree::new(&report);
        log::debug!(
            "{name}: session at {place}: drivers {:?}",
            tree.drivers.iter().map(|(p, _)| p).collect::<Vec<_>>()
        );
        Ok(Session {
            conn,
            resolved,
            tree,
        })
    }

    /// Opens a stream of the driver `cfg` names: its `Stream` call on the
    /// session's connection, answered within `deadline`.
    pub(crate) fn connect(
        &self,
        cfg: &JumpstarterConfig,
        name: &str,
        deadline: Option<Instant>,
    ) -> Result<Stream> {
        self.with_session(cfg, name, deadline, |s| self.open(s, cfg, name, deadline))
    }

    /// Runs `f` on the session `cfg` names; once more on a new connection
    /// if the connection died, or its channel dialled again (maybe another
    /// session, whose drivers have other uuids), after it was taken from
    /// the cache.
    fn with_session<T>(
        &self,
        cfg: &JumpstarterConfig,
        name: &str,
        deadline: Option<Instant>,
        f: impl Fn(&Session) -> Result<T>,
    ) -> Result<T> {
        let session = self.session(cfg, name, deadline)?;
        match f(&session) {
            Err(Error::Connection(_)) if !session.conn.alive() => {
                f(&*self.session(cfg, name, deadline)?)
            }
            r => r,
        }
    }

    /// Opens the stream of the driver `cfg` names on `session`.
    fn open(
        &self,
        session: &Session,
        cfg: &JumpstarterConfig,
        name: &str,
        deadline: Option<Instant>,
    ) -> Result<Stream> {
        let path = cfg.driver_name();
        let uuid = session.tree.find(&path, name, &session.resolved.place)?;
        let mut md = metadata(&session.resolved);
        let value = MetadataValue::try_from(request_metadata(uuid, &cfg.method)).map_err(|_| {
            Error::Protocol(format!("{name}: the driver's uuid {uuid:?} cannot be sent"))
        })?;
        md.insert("request", value);
        session
            .conn
            .stream(name.to_owned(), md, status_error, deadline)
    }

    /// The driver's address: upstream's `NetworkClient.address()`, a
    /// `DriverCall` of `address` (`tcp://HOST:PORT` for a TCP network, …).
    pub(crate) fn address(&self, cfg: &JumpstarterConfig, name: &str) -> Result<String> {
        let deadline = Some(Instant::now() + ADDRESS_TIMEOUT);
        self.with_session(cfg, name, deadline, |s| {
            Self::call_address(s, cfg, name, deadline)
        })
    }

    /// The `address` DriverCall of the driver `cfg` names on `session`.
    fn call_address(
        session: &Session,
        cfg: &JumpstarterConfig,
        name: &str,
        deadline: Option<Instant>,
    ) -> Result<String> {
        let path = cfg.driver_name();
        let uuid = session.tree.find(&path, name, &session.resolved.place)?;
        let mut client = ExporterServiceClient::new(session.conn.channel())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let mut request = tonic::Request::new(DriverCallRequest {
            uuid: uuid.to_owned(),
            method: "address".into(),
            args: Vec::new(),
        });
        *request.metadata_mut() = metadata(&session.resolved);
        let what = format!("{name}: address of driver {path:?}");
        let response = session
            .conn
            .run(deadline, client.driver_call(request))?
            .map_err(|st| match st.code() {
                // As Network::address of a network without one (echo).
                tonic::Code::NotFound | tonic::Code::Unimplemented => Error::Unsupported(format!(
                    "{what}: the driver has no address ({}: {})",
                    st.code().description(),
                    st.message()
                )),
                // `enable_address mode is not true…`: as enable_address=false.
                tonic::Code::InvalidArgument => {
                    Error::Disabled(format!("{what}: {}", st.message()))
                }
                _ => status_error(&what, &st),
            })?
            .into_inner();
        use prost_types::value::Kind;
        match response.result.and_then(|v| v.kind) {
            Some(Kind::StringValue(s)) => Ok(s),
            other => Err(Error::Protocol(format!(
                "{what}: the driver returned {other:?}, not a string"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::proto::jumpstarter::v1::DriverInstanceReport;

    #[test]
    fn tcp_addresses_are_told_from_paths_as_upstream_does() {
        assert_eq!(tcp_address("host:1234"), Some(("host", 1234)));
        assert_eq!(tcp_address("[::1]:8080"), Some(("[::1]", 8080)));
        assert_eq!(tcp_address("h: 80 "), Some(("h", 80)));
        assert_eq!(tcp_address("h:+80"), Some(("h", 80)));
        assert_eq!(tcp_address("h:8_0"), Some(("h", 80)));
        for path in [
            "/run/j/socket",
            "unix:/x",
            "h:0",
            "h:65536",
            "h:-1",
            "h:",
            "h:_8",
            "h:8__0",
            "h:x",
            "/a:b/socket",
        ] {
            assert_eq!(tcp_address(path), None, "{path}");
        }
    }

    fn cfg(session: SessionAddress) -> JumpstarterConfig {
        JumpstarterConfig {
            session,
            driver: vec!["tcp".into()],
            method: "connect".into(),
        }
    }

    #[test]
    fn the_environment_names_the_session() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let c = cfg(SessionAddress::Env);
        let r = resolve(&c, "n", &env(&[(HOST_ENV, "/tmp/j/socket")])).unwrap();
        assert_eq!(r.place, Place::Unix(UnixPath::Path("/tmp/j/socket".into())));
        assert_eq!(r.passphrase, None);
        let r = resolve(
            &c,
            "n",
            &env(&[(HOST_ENV, "[::1]:9"), (PASSPHRASE_ENV, "pw")]),
        )
        .unwrap();
        let Place::Tcp(t) = &r.place else { panic!() };
        assert_eq!((t.host.as_str(), t.port, t.tls), ("::1", 9, true));
        assert_eq!(r.passphrase.as_deref(), Some("pw"));
        let r = resolve(
            &c,
            "n",
            &env(&[(HOST_ENV, "h:9"), ("JUMPSTARTER_GRPC_INSECURE", "1")]),
        )
        .unwrap();
        let Place::Tcp(t) = &r.place else { panic!() };
        assert!(!t.tls);
        for bad in [&[][..], &[(HOST_ENV, "")][..]] {
            let pairs: &'static [(&str, &str)] = bad;
            let e = resolve(&c, "n", &env(pairs)).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        }
        // A session in the URL ignores the environment.
        let p = UnixPath::Path("/s".into());
        let r = resolve(&cfg(SessionAddress::Unix(p.clone())), "n", &env(&[])).unwrap();
        assert_eq!(r.place, Place::Unix(p));
    }

    fn report(uuid: &str, parent: Option<&str>, name: Option<&str>) -> DriverInstanceReport {
        DriverInstanceReport {
            uuid: uuid.into(),
            parent_uuid: parent.map(Into::into),
            labels: name
                .map(|n| (NAME_LABEL.to_string(), n.to_string()))
                .into_iter()
                .collect(),
            ..DriverInstanceReport::default()
        }
    }

    #[test]
    fn the_tree_names_drivers_by_their_paths() {
        let r = GetReportResponse {
            reports: vec![
                report("r", None, None),
                report("t", Some("r"), Some("tcp")),
                report("d", Some("r"), Some("dut")),
                report("c", Some("d"), Some("console")),
                report("e", Some("r"), Some("echo")),
            ],
            ..GetReportResponse::default()
        };
        let t = Tree::new(&r);
        let names: Vec<&str> = t.drivers.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, ["tcp", "dut", "dut.console", "echo"]);
        let place = Place::Unix(UnixPath::Path("/s".into()));
        assert_eq!(t.find("dut.console", "n", &place).unwrap(), "c");
        let e = t.find("nope", "n", &place).unwrap_err().to_string();
        assert!(
            e.contains("no driver \"nope\"") && e.contains("tcp, dut, dut.console, echo"),
            "{e}"
        );
    }

    #[test]
    fn the_request_metadata_is_upstreams_json() {
        assert_eq!(
            request_metadata("0b7e1d9c-1f0a-4c47-9c3a-6a1f0e2d3c4b", "connect"),
            r#"{"kind":"driver","uuid":"0b7e1d9c-1f0a-4c47-9c3a-6a1f0e2d3c4b","method":"connect"}"#
        );
    }
}
