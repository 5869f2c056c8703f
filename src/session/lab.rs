//! A lease's session, reached through a lab (`jumpstarter:lease?…`): the
//! client configuration (upstream's `ClientConfigV1Alpha1` file and `JMP_*`
//! variables, resolved as upstream's client resolves them), the
//! controller's checks of the lease (`ClientService.GetLease`, as
//! upstream's `Lease.request_async`), `ControllerService.Dial` for a router
//! endpoint and token (as `Lease.handle_async`, retrying an exporter not
//! ready yet), and the session's HTTP/2 connection inside a router stream
//! (`crate::router::Connection::tunnel`).
//!
//! The token is a secret: it is never in a message, and [`Lab`]'s `Debug`
//! and `Display` leave it out.

use super::proto::jumpstarter::client::v1::GetLeaseRequest;
use super::proto::jumpstarter::client::v1::client_service_client::ClientServiceClient;
use super::proto::jumpstarter::v1::DialRequest;
use super::proto::jumpstarter::v1::controller_service_client::ControllerServiceClient;
use crate::error::{Error, Result};
use crate::router::{Connection, MAX_MESSAGE, Target};
use crate::url::{ClientConfigSource, LeaseAddress, RouterConfig};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tonic::metadata::{MetadataMap, MetadataValue};
use yaml_rust2::{Yaml, YamlLoader};

/// The variables upstream's client configuration reads (js/config/env.py).
const ENDPOINT_ENV: &str = "JMP_ENDPOINT";
const TOKEN_ENV: &str = "JMP_TOKEN";
const NAMESPACE_ENV: &str = "JMP_NAMESPACE";
const NAME_ENV: &str = "JMP_NAME";
const TLS_ENV: &str = "JMP_TLS";
const LEASE_ENV: &str = "JMP_LEASE";
const CONFIG_ENV: &str = "JMP_CLIENT_CONFIG";
const CONFIG_HOME_ENV: &str = "JMP_CLIENT_CONFIG_HOME";
/// TLS without verification of the lab's certificate (either variable `=1`).
const INSECURE_ENV: [&str; 2] = ["JMP_GRPC_INSECURE", "JUMPSTARTER_GRPC_INSECURE"];

/// Upstream's `dial_timeout` (js/config/client.py): how long a Dial is
/// retried while the exporter is not ready, when the call has no deadline.
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a lease still pending is looked at again.
const PENDING_POLL: Duration = Duration::from_secs(1);

/// A lab and a lease in it, resolved from a client configuration.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Lab {
    /// The controller, `HOST:PORT`.
    controller: HostPort,
    namespace: String,
    /// The client's name (`metadata.name`).
    client: String,
    token: String,
    /// `tls.ca`: PEM certificates (base64-decoded).
    ca: Option<Vec<u8>>,
    /// `tls.insecure`, or `JMP_GRPC_INSECURE=1`.
    insecure: bool,
    lease: String,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("controller", &self.controller.to_string())
            .field("namespace", &self.namespace)
            .field("client", &self.client)
            .field("insecure", &self.insecure)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lease {} (controller {})", self.lease, self.controller)
    }
}

/// A gRPC target `HOST:PORT` (upstream's endpoints and router endpoints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HostPort {
    host: String,
    port: u16,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl HostPort {
    /// A gRPC target as upstream's configurations hold it: `HOST:PORT`,
    /// `[V6]:PORT`, optionally after `dns:///`; without a port, 443 (gRPC's
    /// default).
    pub(super) fn parse(text: &str) -> Option<HostPort> {
        let t = text.trim();
        let t = t.strip_prefix("dns:///").unwrap_or(t);
        if t.is_empty() || t.contains('/') || t.contains(char::is_whitespace) {
            return None;
        }
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let (h, after) = rest.split_once(']')?;
            match after {
                "" => (h, 443),
                p => (h, p.strip_prefix(':')?.parse().ok()?),
            }
        } else {
            match t.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => (t, 443), // a bare IPv6 address
                Some((h, p)) => (h, p.parse().ok()?),
                None => (t, 443),
            }
        };
        (!host.is_empty() && port != 0).then(|| HostPort {
            host: host.to_owned(),
            port,
        })
    }

    pub(super) fn router_config(&self) -> RouterConfig {
        RouterConfig {
            host: self.host.clone(),
            port: self.port,
            tls: true,
            ca: None,
            insecure: false,
        }
    }
}

/// The fields of a client configuration jumpwire uses, as a file or the
/// environment gives them.
#[derive(Default)]
pub(super) struct Fields {
    endpoint: Option<String>,
    token: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    ca: Option<String>,
    insecure: Option<bool>,
}

impl Fields {
    /// Fills what is missing from `other` (a file's values win over the
    /// environment's, as upstream's pydantic settings have it).
    pub(super) fn or(self, other: Fields) -> Fields {
        Fields {
            endpoint: self.endpoint.or(other.endpoint),
            token: self.token.or(other.token),
            namespace: self.namespace.or(other.namespace),
            name: self.name.or(other.name),
            ca: self.ca.or(other.ca),
            insecure: self.insecure.or(other.insecure),
        }
    }
}

/// A text variable, `None` when unset or not UTF-8.
fn text(var: &dyn Fn(&str) -> Option<OsString>, name: &str) -> Option<String> {
    var(name).and_then(|v| v.into_string().ok())
}

/// The fields upstream's `JMP_*` variables give (`JMP_TLS` is JSON, as
/// pydantic settings read a nested model from one variable).
pub(super) fn env_fields(var: &dyn Fn(&str) -> Option<OsString>, name: &str) -> Result<Fields> {
    let mut f = Fields {
        endpoint: text(var, ENDPOINT_ENV),
        token: text(var, TOKEN_ENV),
        namespace: text(var, NAMESPACE_ENV),
        name: text(var, NAME_ENV),
        ..Fields::default()
    };
    if let Some(tls) = text(var, TLS_ENV) {
        let v: serde_json::Value = serde_json::from_str(&tls)
            .map_err(|e| Error::invalid(format!("{name}: {TLS_ENV} is not a JSON object: {e}")))?;
        let Some(o) = v.as_object() else {
            return Err(Error::invalid(format!(
                "{name}: {TLS_ENV} is not a JSON object"
            )));
        };
        f.ca = o.get("ca").and_then(|c| c.as_str()).map(str::to_owned);
        f.insecure = match o.get("insecure") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Bool(b)) => Some(*b),
            Some(serde_json::Value::String(s)) => Some(truthy(s).ok_or_else(|| {
                Error::invalid(format!("{name}: {TLS_ENV}: insecure is not a boolean"))
            })?),
            Some(_) => {
                return Err(Error::invalid(format!(
                    "{name}: {TLS_ENV}: insecure is not a boolean"
                )));
            }
        };
    }
    Ok(f)
}

/// A boolean as pydantic reads one from text.
fn truthy(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" | "y" | "t" => Some(true),
        "0" | "false" | "no" | "off" | "n" | "f" => Some(false),
        _ => None,
    }
}

/// Reads a YAML file as one mapping (the first document).
fn read_yaml(path: &Path, name: &str) -> Result<Yaml> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::invalid(format!("{name}: the configuration {}: {e}", path.display()))
    })?;
    let docs = YamlLoader::load_from_str(&text).map_err(|e| {
        Error::invalid(format!(
            "{name}: the configuration {} is not YAML: {e}",
            path.display()
        ))
    })?;
    match docs.into_iter().next() {
        Some(y @ Yaml::Hash(_)) => Ok(y),
        _ => Err(Error::invalid(format!(
            "{name}: the configuration {} is not a YAML mapping",
            path.display()
        ))),
    }
}

/// A scalar as text (pydantic's `str` fields take YAML numbers too); `None`
/// for an absent or null value.
fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The fields of an upstream client or exporter configuration file
/// (`apiVersion: jumpstarter.dev/v1alpha1`, `kind: KIND`, `ClientConfig`
/// or `ExporterConfig`).
pub(super) fn file_fields(path: &Path, name: &str, kind: &str) -> Result<Fields> {
    let y = read_yaml(path, name)?;
    let bad = |what: &str| {
        Error::invalid(format!(
            "{name}: the configuration {}: {what}",
            path.display()
        ))
    };
    if let Some(k) = scalar(&y["kind"]) {
        if k != kind {
            return Err(bad(&format!("kind is {k:?}, not {kind}")));
        }
    }
    if let Some(v) = scalar(&y["apiVersion"]) {
        if v != "jumpstarter.dev/v1alpha1" {
            return Err(bad(&format!(
                "apiVersion is {v:?}, not jumpstarter.dev/v1alpha1"
            )));
        }
    }
    let tls = &y["tls"];
    let insecure = match &tls["insecure"] {
        Yaml::Boolean(b) => Some(*b),
        Yaml::Null | Yaml::BadValue => None,
        other => match scalar(other).as_deref().and_then(truthy) {
            Some(b) => Some(b),
            None => return Err(bad("tls.insecure is not a boolean")),
        },
    };
    Ok(Fields {
        endpoint: scalar(&y["endpoint"]),
        token: scalar(&y["token"]),
        namespace: scalar(&y["metadata"]["namespace"]),
        name: scalar(&y["metadata"]["name"]),
        ca: scalar(&tls["ca"]),
        insecure,
    })
}

/// Upstream's configuration directory: `JMP_CLIENT_CONFIG_HOME`, else
/// `$XDG_CONFIG_HOME/jumpstarter` (an absolute `XDG_CONFIG_HOME`, else
/// `~/.config`).
fn config_home(var: &dyn Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    if let Some(d) = var(CONFIG_HOME_ENV).filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    let xdg = var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(xdg.join("jumpstarter"))
}

/// Where the configuration comes from: a file, or the environment alone.
enum Source {
    File(PathBuf),
    Env,
}

/// Picks the client configuration as upstream's `jmp` does: the URL's
/// alias or file; else `JMP_CLIENT_CONFIG`; else the `JMP_*` variables when
/// they make a configuration (`JMP_NAMESPACE` and `JMP_NAME` set); else the
/// user configuration's `current-client`.
fn source(
    addr: &LeaseAddress,
    var: &dyn Fn(&str) -> Option<OsString>,
    name: &str,
) -> Result<Source> {
    let home = || {
        config_home(var).ok_or_else(|| {
            Error::invalid(format!(
                "{name}: no configuration directory ({CONFIG_HOME_ENV}, XDG_CONFIG_HOME and HOME are unset)"
            ))
        })
    };
    match &addr.client {
        ClientConfigSource::File(p) => return Ok(Source::File(p.clone())),
        ClientConfigSource::Alias(a) => {
            return Ok(Source::File(
                home()?.join("clients").join(format!("{a}.yaml")),
            ));
        }
        ClientConfigSource::Default => {}
    }
    if let Some(p) = var(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return Ok(Source::File(PathBuf::from(p)));
    }
    if var(NAMESPACE_ENV).is_some() && var(NAME_ENV).is_some() {
        return Ok(Source::Env);
    }
    let home = home()?;
    let user = home.join("config.yaml");
    let none = || {
        Error::invalid(format!(
            "{name}: no client configuration: give &client=ALIAS or &config=FILE, \
             set {CONFIG_ENV}, or {NAMESPACE_ENV}, {NAME_ENV}, {ENDPOINT_ENV} and {TOKEN_ENV}, \
             or select a client (`jmp config client use ALIAS`: current-client in {})",
            user.display()
        ))
    };
    if !user.exists() {
        return Err(none());
    }
    let y = read_yaml(&user, name)?;
    match scalar(&y["config"]["current-client"]) {
        Some(alias) if !alias.is_empty() && !alias.contains('/') => Ok(Source::File(
            home.join("clients").join(format!("{alias}.yaml")),
        )),
        _ => Err(none()),
    }
}

/// Who calls a lab's controller, and how it is reached: what a client or
/// an exporter configuration gives.
pub(super) struct Account {
    /// The controller, `HOST:PORT`.
    pub(super) controller: HostPort,
    pub(super) namespace: String,
    /// `metadata.name`.
    pub(super) name: String,
    pub(super) token: String,
    /// `tls.ca`: PEM certificates (base64-decoded).
    pub(super) ca: Option<Vec<u8>>,
    /// `tls.insecure`, or `JMP_GRPC_INSECURE=1`.
    pub(super) insecure: bool,
}

/// The account `fields` (read from `from`) give: every field set and
/// well-formed (`name` prefixes the errors).
pub(super) fn account(
    fields: Fields,
    from: &str,
    name: &str,
    var: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Account> {
    let missing = |what: &str| Error::invalid(format!("{name}: {from}: {what} is not set"));
    let endpoint = fields.endpoint.filter(|e| !e.is_empty());
    let endpoint = endpoint.ok_or_else(|| missing("endpoint"))?;
    let controller = HostPort::parse(&endpoint).ok_or_else(|| {
        Error::invalid(format!(
            "{name}: {from}: endpoint {endpoint:?} is not HOST:PORT"
        ))
    })?;
    let token = fields.token.filter(|t| !t.is_empty());
    let token = token.ok_or_else(|| missing("token"))?;
    let namespace = fields.namespace.filter(|n| !n.is_empty());
    let namespace = namespace.ok_or_else(|| missing("metadata.namespace"))?;
    let account = fields.name.filter(|n| !n.is_empty());
    let account = account.ok_or_else(|| missing("metadata.name"))?;
    for (what, v) in [
        ("token", &token),
        ("metadata.namespace", &namespace),
        ("metadata.name", &account),
    ] {
        if MetadataValue::try_from(v.as_str()).is_err() {
            return Err(Error::invalid(format!(
                "{name}: {from}: {what} has characters a header cannot carry"
            )));
        }
    }
    let ca = match fields.ca.filter(|c| !c.is_empty()) {
        None => None,
        Some(b64) => {
            use base64::Engine;
            let compact: String = b64.split_whitespace().collect();
            Some(
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map_err(|e| {
                        Error::invalid(format!("{name}: {from}: tls.ca is not base64: {e}"))
                    })?,
            )
        }
    };
    let insecure = fields.insecure.unwrap_or(false)
        || INSECURE_ENV
            .iter()
            .any(|v| var(v).is_some_and(|x| x == "1"));
    Ok(Account {
        controller,
        namespace,
        name: account,
        token,
        ca,
        insecure,
    })
}

/// The lab and lease `addr` names, read from the configuration and the
/// environment (through `var`) now.
pub(super) fn resolve(
    addr: &LeaseAddress,
    name: &str,
    var: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Lab> {
    let lease = match &addr.lease {
        Some(l) => l.clone(),
        None => text(var, LEASE_ENV)
            .filter(|l| !l.is_empty())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{name}: which lease? give &lease=NAME or set {LEASE_ENV} \
                 (jumpwire uses a lease, it does not request one)"
                ))
            })?,
    };
    let src = source(addr, var, name)?;
    let (fields, from) = match &src {
        Source::File(p) => (
            file_fields(p, name, "ClientConfig")?.or(env_fields(var, name)?),
            format!("the client configuration {}", p.display()),
        ),
        Source::Env => (
            env_fields(var, name)?,
            "the JMP_* environment variables".to_owned(),
        ),
    };
    let Account {
        controller,
        namespace,
        name: client,
        token,
        ca,
        insecure,
    } = account(fields, &from, name, var)?;
    Ok(Lab {
        controller,
        namespace,
        client,
        token,
        ca,
        insecure,
        lease,
    })
}

/// The metadata of every controller call of a client.
fn credentials(lab: &Lab) -> MetadataMap {
    call_credentials("Client", &lab.namespace, &lab.client, &lab.token)
}

/// The metadata of every controller call (js/config/grpc.py
/// `call_credentials`) of a `kind` (`Client`, `Exporter`).
pub(super) fn call_credentials(
    kind: &str,
    namespace: &str,
    name: &str,
    token: &str,
) -> MetadataMap {
    let mut md = MetadataMap::new();
    let mut put = |k: &'static str, v: &str| {
        if let Ok(v) = MetadataValue::try_from(v) {
            md.insert(k, v);
        }
    };
    put("jumpstarter-kind", kind);
    put("jumpstarter-namespace", namespace);
    put("jumpstarter-name", name);
    put("authorization", &format!("Bearer {token}"));
    md
}

/// A controller's status as the caller's error: `what` failed.
pub(super) fn controller_error(what: &str, st: &tonic::Status) -> Error {
    use tonic::Code;
    let msg = format!("{what}: {}: {}", st.code().description(), st.message());
    let details = st.message().to_ascii_lowercase();
    match st.code() {
        Code::Unauthenticated | Code::PermissionDenied => Error::Unauthenticated(msg),
        // The upstream controller's Dial answers UNKNOWN with these.
        Code::Unknown if details.contains("permission denied") => Error::Unauthenticated(msg),
        Code::NotFound => Error::invalid(msg),
        Code::Unknown if details.contains("not found") => Error::invalid(msg),
        Code::InvalidArgument => Error::invalid(msg),
        Code::Unimplemented => Error::Protocol(format!("{msg} (not a Jumpstarter controller?)")),
        // UNAVAILABLE, FAILED_PRECONDITION (exporter not ready), UNKNOWN
        // (`lease not active`), …
        _ => Error::Connection(msg),
    }
}

/// The condition `kind` of a lease: its status and reason.
fn condition<'a>(
    lease: &'a super::proto::jumpstarter::client::v1::Lease,
    kind: &str,
) -> Option<&'a super::proto::jumpstarter::v1::Condition> {
    lease
        .conditions
        .iter()
        .find(|c| c.r#type.as_deref() == Some(kind))
}

/// What the lease's conditions say, as upstream's `Lease._acquire` reads
/// them: `Ok(true)` ready, `Ok(false)` still pending, or why it cannot be
/// used.
fn lease_state(
    lease: &super::proto::jumpstarter::client::v1::Lease,
    lab: &Lab,
    name: &str,
) -> Result<bool> {
    let is = |kind: &str, status: &str| {
        condition(lease, kind).is_some_and(|c| c.status.as_deref() == Some(status))
    };
    let says = |kind: &str| {
        condition(lease, kind)
            .map(|c| {
                let reason = c.reason.as_deref().unwrap_or("");
                let message = c.message.as_deref().unwrap_or("");
                match (reason.is_empty(), message.is_empty()) {
                    (false, false) => format!("{kind}: {reason}: {message}"),
                    (false, true) => format!("{kind}: {reason}"),
                    (true, false) => format!("{kind}: {message}"),
                    (true, true) => kind.to_owned(),
                }
            })
            .unwrap_or_default()
    };
    if is("Ready", "True") {
        return Ok(true);
    }
    let l = &lab.lease;
    if is("Unsatisfiable", "True") {
        return Err(Error::Connection(format!(
            "{name}: lease {l} cannot be satisfied ({})",
            says("Unsatisfiable")
        )));
    }
    if is("Invalid", "True") {
        return Err(Error::invalid(format!(
            "{name}: lease {l} is invalid ({})",
            says("Invalid")
        )));
    }
    if is("Pending", "False") || is("Ready", "False") && says("Ready").contains("Released") {
        return Err(Error::Connection(format!(
            "{name}: lease {l} is over ({})",
            says("Ready")
        )));
    }
    Ok(false)
}

/// Sleeps `d` on the controller connection's runtime, or fails with
/// `why` when the deadline would pass first.
fn pause(ctl: &Connection, d: Duration, deadline: Option<Instant>, why: Error) -> Result<()> {
    if deadline.is_some_and(|dl| Instant::now() + d >= dl) {
        return Err(why);
    }
    ctl.run(deadline, async move { tokio::time::sleep(d).await })
}

/// The lease's session: checks the lease with the controller, dials it
/// (its router endpoint and token), and opens the session's connection
/// inside a router stream, within `deadline`.
pub(super) fn dial(lab: &Lab, name: &str, deadline: Option<Instant>) -> Result<Connection> {
    let tls = crate::tls::client_config_pem(lab.ca.as_deref(), lab.insecure, name)?;
    let ctl_cfg = lab.controller.router_config();
    let what = format!("{name}: controller {}", lab.controller);
    let ctl = Connection::dial(Target::Tls(&ctl_cfg, &tls), &what, deadline)?;
    let path = format!("namespaces/{}/leases/{}", lab.namespace, lab.lease);
    // The lease: this client's, and ready (as upstream's Lease before it
    // dials; a pending lease is looked at again until the deadline).
    loop {
        let mut client = ClientServiceClient::new(ctl.channel())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let mut req = tonic::Request::new(GetLeaseRequest { name: path.clone() });
        *req.metadata_mut() = credentials(lab);
        let lease = ctl
            .run(deadline, client.get_lease(req))?
            .map_err(|st| controller_error(&format!("{what}: lease {}", lab.lease), &st))?
            .into_inner();
        let owner = lease.client.as_deref().unwrap_or("");
        let owner = owner.rsplit('/').next().unwrap_or(owner);
        if !owner.is_empty() && owner != lab.client {
            return Err(Error::Unauthenticated(format!(
                "{what}: lease {} belongs to client {owner:?}, not {:?}",
                lab.lease, lab.client
            )));
        }
        if lease_state(&lease, lab, &what)? {
            break;
        }
        let why = Error::Timeout;
        pause(&ctl, PENDING_POLL, deadline, why)?;
    }
    // Dial: retried while the exporter is not ready yet, or the controller
    // unavailable (upstream: 0.3 s doubling to 2 s, for 30 s), within the
    // deadline.
    let until = deadline.unwrap_or_else(|| Instant::now() + DIAL_TIMEOUT);
    let mut delay = Duration::from_millis(300);
    let dialled = loop {
        let mut client = ControllerServiceClient::new(ctl.channel())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let mut req = tonic::Request::new(DialRequest {
            lease_name: lab.lease.clone(),
        });
        *req.metadata_mut() = credentials(lab);
        match ctl.run(deadline, client.dial(req))? {
            Ok(r) => break r.into_inner(),
            Err(st) => {
                let retry = (st.code() == tonic::Code::FailedPrecondition
                    && st.message().contains("not ready"))
                    || st.code() == tonic::Code::Unavailable;
                let e = controller_error(&format!("{what}: Dial of lease {}", lab.lease), &st);
                if !retry {
                    return Err(e);
                }
                pause(&ctl, delay, Some(until), e)?;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    };
    drop(ctl);
    let router = HostPort::parse(&dialled.router_endpoint).ok_or_else(|| {
        Error::Protocol(format!(
            "{what}: the router endpoint {:?} is not HOST:PORT",
            dialled.router_endpoint
        ))
    })?;
    if dialled.router_token.is_empty() {
        return Err(Error::Protocol(format!(
            "{what}: Dial gave no router token"
        )));
    }
    let router_cfg = router.router_config();
    Connection::tunnel(
        Target::Tls(&router_cfg, &tls),
        &dialled.router_token,
        &format!("{name}: {} through router {router}", lab),
        deadline,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        }
    }

    fn addr(lease: Option<&str>, client: ClientConfigSource) -> LeaseAddress {
        LeaseAddress {
            lease: lease.map(Into::into),
            client,
        }
    }

    #[test]
    fn endpoints_are_grpc_targets() {
        let hp = |s: &str| HostPort::parse(s).map(|h| (h.host, h.port));
        assert_eq!(hp("ctl.lab:1443"), Some(("ctl.lab".into(), 1443)));
        assert_eq!(hp("[::1]:8082"), Some(("::1".into(), 8082)));
        assert_eq!(hp("dns:///ctl:9"), Some(("ctl".into(), 9)));
        assert_eq!(hp("ctl"), Some(("ctl".into(), 443)));
        for bad in ["", "grpcs://h:1", "h:0", "h:x", ":80", "h: 1"] {
            assert_eq!(hp(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_environment_alone_makes_a_configuration() {
        let vars = env(&[
            (NAMESPACE_ENV, "lab"),
            (NAME_ENV, "alice"),
            (ENDPOINT_ENV, "127.0.0.1:9"),
            (TOKEN_ENV, "s3cret"),
            (LEASE_ENV, "l1"),
            (TLS_ENV, r#"{"insecure": true}"#),
        ]);
        let lab = resolve(&addr(None, ClientConfigSource::Default), "n", &vars).unwrap();
        assert_eq!(lab.lease, "l1");
        assert_eq!(
            (lab.namespace.as_str(), lab.client.as_str()),
            ("lab", "alice")
        );
        assert!(lab.insecure);
        // The token is in neither Debug nor Display.
        assert!(!format!("{lab:?} {lab}").contains("s3cret"));
        // The URL's lease wins over JMP_LEASE.
        let lab = resolve(&addr(Some("l2"), ClientConfigSource::Default), "n", &vars).unwrap();
        assert_eq!(lab.lease, "l2");
    }

    #[test]
    fn a_file_wins_and_the_environment_fills_in() {
        let dir = std::env::temp_dir().join(format!("jw-lab-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("clients")).unwrap();
        let ca = "-----BEGIN CERTIFICATE-----\n";
        let b64 = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(ca)
        };
        std::fs::write(
            dir.join("clients/alice.yaml"),
            format!(
                "apiVersion: jumpstarter.dev/v1alpha1\nkind: ClientConfig\n\
                 metadata:\n  namespace: lab\n  name: alice\n\
                 endpoint: ctl.lab:1443\ntls:\n  ca: '{b64}'\n  insecure: false\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("config.yaml"),
            "apiVersion: jumpstarter.dev/v1alpha1\nkind: UserConfig\nconfig:\n  current-client: alice\n",
        )
        .unwrap();
        let home = dir.to_str().unwrap().to_owned();
        let home: &'static str = Box::leak(home.into_boxed_str());
        let pairs: &'static [(&'static str, &'static str)] = Box::leak(Box::new([
            (CONFIG_HOME_ENV, home),
            (TOKEN_ENV, "from-env"),
            (NAME_ENV, "not-used"),
            (ENDPOINT_ENV, "other:1"),
        ]));
        // current-client (JMP_NAMESPACE unset: the environment alone is no
        // configuration).
        let lab = resolve(
            &addr(Some("l"), ClientConfigSource::Default),
            "n",
            &env(pairs),
        )
        .unwrap();
        assert_eq!(lab.controller.to_string(), "ctl.lab:1443");
        assert_eq!(lab.client, "alice");
        assert_eq!(lab.token, "from-env");
        assert_eq!(lab.ca.as_deref(), Some(ca.as_bytes()));
        // By alias, and a missing alias.
        let a = addr(Some("l"), ClientConfigSource::Alias("alice".into()));
        assert_eq!(resolve(&a, "n", &env(pairs)).unwrap().client, "alice");
        let a = addr(Some("l"), ClientConfigSource::Alias("bob".into()));
        let e = resolve(&a, "n", &env(pairs)).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("bob.yaml"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn what_is_missing_is_named_and_secrets_are_not() {
        let vars = env(&[
            (NAMESPACE_ENV, "lab"),
            (NAME_ENV, "alice"),
            (TOKEN_ENV, "s3cret"),
            (LEASE_ENV, "l1"),
        ]);
        let e = resolve(&addr(None, ClientConfigSource::Default), "n", &vars).unwrap_err();
        assert!(e.to_string().contains("endpoint is not set"), "{e}");
        let e = resolve(&addr(None, ClientConfigSource::Default), "n", &env(&[])).unwrap_err();
        assert!(e.to_string().contains("which lease?"), "{e}");
        let vars = env(&[
            (NAMESPACE_ENV, "lab"),
            (NAME_ENV, "alice"),
            (ENDPOINT_ENV, "h:1"),
            (TOKEN_ENV, "bad\ntoken"),
            (LEASE_ENV, "l1"),
        ]);
        let e = resolve(&addr(None, ClientConfigSource::Default), "n", &vars).unwrap_err();
        assert!(!e.to_string().contains("bad"), "{e}");
    }
}
