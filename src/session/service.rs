//! The calls a session answers: `jumpstarter.v1.ExporterService` and
//! `jumpstarter.v1.RouterService/Stream`, as upstream's `Session`
//! (js/exporter/session.py) and `Driver` (js/driver/base.py) answer them
//! for a `Composite` of network drivers, errors included (their statuses
//! and messages, in upstream's words where a client may show them).

use super::exported::{DriverKind, Exported};
use super::pipe::{self, End, Out, Responses};
use super::proto::jumpstarter::v1::exporter_service_server::ExporterService;
use super::proto::jumpstarter::v1::{
    DriverCallRequest, DriverCallResponse, EndSessionRequest, EndSessionResponse, ExporterStatus,
    GetReportResponse, GetStatusRequest, GetStatusResponse, LogStreamResponse, ResetRequest,
    ResetResponse, StreamingDriverCallRequest, StreamingDriverCallResponse,
};
use super::report::{self, Entry, parse_uuid, uuid_repr, uuid4};
use crate::error::Error;
use crate::router::pb::StreamRequest;
use crate::router::pb::router_service_server::RouterService;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status, Streaming};

/// How long a driver stream's target may take to connect.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Response frames queued per driver stream.
const OUT_QUEUE: usize = 16;

/// One exported driver.
pub(super) struct Driver {
    pub(super) uuid: String,
    pub(super) name: String,
    pub(super) kind: DriverKind,
    pub(super) target: Arc<dyn Exported>,
}

/// What every call of a session shares.
pub(super) struct Shared {
    /// The session's address, for logs.
    pub(super) address: String,
    pub(super) root: String,
    pub(super) drivers: Vec<Driver>,
    pub(super) report: GetReportResponse,
    pub(super) stop: watch::Receiver<bool>,
    /// Driver streams open now.
    pub(super) streams: Arc<AtomicUsize>,
    next: AtomicU64,
}

impl Shared {
    pub(super) fn new(
        address: String,
        drivers: Vec<(String, Arc<dyn Exported>)>,
        stop: watch::Receiver<bool>,
    ) -> Shared {
        let root = uuid4();
        let drivers: Vec<Driver> = drivers
            .into_iter()
            .map(|(name, target)| Driver {
                uuid: uuid4(),
                kind: target.kind(),
                name,
                target,
            })
            .collect();
        let entries: Vec<Entry<'_>> = drivers
            .iter()
            .map(|d| Entry {
                uuid: &d.uuid,
                name: &d.name,
                client: d.kind.client,
                labels: &d.kind.labels,
            })
            .collect();
        let report = report::report(&uuid4(), &root, &entries);
        Shared {
            address,
            root,
            drivers,
            report,
            stop,
            streams: Arc::default(),
            next: AtomicU64::new(0),
        }
    }

    /// The driver `uuid` names: `None` for the root (the composite), upstream's
    /// errors for a malformed or unknown uuid.
    fn lookup(&self, uuid: &str) -> Result<Option<&Driver>, Status> {
        let Some(c) = parse_uuid(uuid) else {
            return Err(Status::unknown(
                "Unexpected <class 'ValueError'>: badly formed hexadecimal UUID string",
            ));
        };
        if c == self.root {
            return Ok(None);
        }
        match self.drivers.iter().find(|d| d.uuid == c) {
            Some(d) => Ok(Some(d)),
            None => Err(Status::unknown(format!(
                "Unexpected <class 'KeyError'>: {}",
                uuid_repr(&c)
            ))),
        }
    }
}

/// The methods a driver has, by the marker upstream exports each with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Marker {
    Call,
    StreamingCall,
    Stream,
}

impl Marker {
    fn name(self) -> &'static str {
        match self {
            Marker::Call => "marker_drivercall",
            Marker::StreamingCall => "marker_streamingdrivercall",
            Marker::Stream => "marker_streamcall",
        }
    }
}

/// Upstream's `__lookup_drivercall` (base.py:359-374): whether `driver` (None:
/// the composite root, which exports nothing) has `method` exported as
/// `want`; `NOT_FOUND` in upstream's words otherwise.
fn check_method(driver: Option<&Driver>, method: &str, want: Marker) -> Result<(), Status> {
    let has = match (driver, method) {
        (Some(_), "connect") => Some(Marker::Stream),
        (Some(d), "address") if d.kind.has_address => Some(Marker::Call),
        _ => None,
    };
    match has {
        Some(m) if m == want => Ok(()),
        Some(_) => Err(Status::not_found(format!(
            "method {method} missing marker {}",
            want.name()
        ))),
        None => Err(Status::not_found(format!(
            "method {method} not found on driver"
        ))),
    }
}

/// Runs `f` on the runtime's blocking pool (a driver's blocking calls).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("the call failed: {e}")))
}

/// `ExporterService` of a session.
pub(super) struct Exporter(pub(super) Arc<Shared>);

/// A server stream that sends nothing and ends when the session closes
/// (or when the client cancels it).
pub(super) struct Idle<T> {
    stop: Pin<Box<dyn Future<Output = ()> + Send>>,
    _item: std::marker::PhantomData<fn() -> T>,
}

impl<T> Idle<T> {
    fn new(mut stop: watch::Receiver<bool>) -> Idle<T> {
        Idle {
            stop: Box::pin(async move {
                let _ = stop.wait_for(|s| *s).await;
            }),
            _item: std::marker::PhantomData,
        }
    }
}

impl<T> tokio_stream::Stream for Idle<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.stop.as_mut().poll(cx).map(|()| None)
    }
}

#[tonic::async_trait]
impl ExporterService for Exporter {
    async fn get_report(&self, _: Request<()>) -> Result<Response<GetReportResponse>, Status> {
        Ok(Response::new(self.0.report.clone()))
    }

    async fn driver_call(
        &self,
        request: Request<DriverCallRequest>,
    ) -> Result<Response<DriverCallResponse>, Status> {
        let r = request.into_inner();
        let driver = self.0.lookup(&r.uuid)?;
        check_method(driver, &r.method, Marker::Call)?;
        let Some(d) = driver else {
            return Err(Status::internal("the root has no calls"));
        };
        // `address` is the one call: `TcpNetwork.address(self)`.
        if !r.args.is_empty() {
            return Err(Status::unknown(format!(
                "{}.address() takes 1 positional argument but {} were given",
                d.kind.class,
                r.args.len() + 1
            )));
        }
        let target = d.target.clone();
        match blocking(move || target.address()).await? {
            Ok(a) => Ok(Response::new(DriverCallResponse {
                uuid: uuid4(),
                result: Some(prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue(a)),
                }),
            })),
            Err(Error::Disabled(_)) => Err(Status::invalid_argument(
                "enable_address mode is not true in the exporter configuration",
            )),
            Err(Error::Unsupported(m)) => Err(Status::unimplemented(m)),
            Err(e) => Err(Status::unknown(e.to_string())),
        }
    }

    type StreamingDriverCallStream =
        tokio_stream::Empty<Result<StreamingDriverCallResponse, Status>>;

    async fn streaming_driver_call(
        &self,
        request: Request<StreamingDriverCallRequest>,
    ) -> Result<Response<Self::StreamingDriverCallStream>, Status> {
        let r = request.into_inner();
        let driver = self.0.lookup(&r.uuid)?;
        check_method(driver, &r.method, Marker::StreamingCall)?;
        // Network drivers export no streaming call: never reached.
        Err(Status::internal("no streaming calls"))
    }

    type LogStreamStream = Idle<Result<LogStreamResponse, Status>>;

    async fn log_stream(&self, _: Request<()>) -> Result<Response<Self::LogStreamStream>, Status> {
        // Nothing is logged to clients: the call stays open (a client
        // reconnects when it ends) until the session closes.
        Ok(Response::new(Idle::new(self.0.stop.clone())))
    }

    async fn reset(&self, _: Request<ResetRequest>) -> Result<Response<ResetResponse>, Status> {
        Err(Status::unimplemented(
            "Unexpected <class 'NotImplementedError'>: Method not implemented!",
        ))
    }

    async fn get_status(
        &self,
        _: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        // As upstream's session served locally (js/config/exporter.py:309-325).
        Ok(Response::new(GetStatusResponse {
            status: ExporterStatus::LeaseReady as i32,
            message: Some(String::new()),
            status_version: 1,
            previous_status: Some(ExporterStatus::Available as i32),
        }))
    }

    async fn end_session(
        &self,
        _: Request<EndSessionRequest>,
    ) -> Result<Response<EndSessionResponse>, Status> {
        Ok(Response::new(EndSessionResponse {
            success: false,
            message: Some("No active lease context".into()),
        }))
    }
}

/// `RouterService/Stream` of a session: driver streams.
pub(super) struct Streams(pub(super) Arc<Shared>);

/// Upstream's answer to a `request` metadata pydantic cannot read.
fn invalid_request(detail: &str) -> Status {
    Status::unknown(format!(
        "Unexpected <class 'pydantic_core._pydantic_core.ValidationError'>: \
         1 validation error for StreamRequestMetadata\nrequest\n  {detail}"
    ))
}

/// The driver's uuid and the method of a `request` metadata (upstream's
/// `StreamRequestMetadata`, js/common/streams.py:14-33).
fn parse_request(md: &tonic::metadata::MetadataMap) -> Result<(String, String), Status> {
    let Some(v) = md.get("request") else {
        return Err(invalid_request("Field required [type=missing]"));
    };
    let text = v
        .to_str()
        .map_err(|_| invalid_request("Invalid JSON: not UTF-8 text [type=json_invalid]"))?;
    let json: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| invalid_request(&format!("Invalid JSON: {e} [type=json_invalid]")))?;
    let Some(obj) = json.as_object() else {
        return Err(invalid_request(
            "Input should be a valid dictionary or object to extract fields from [type=model_attributes_type]",
        ));
    };
    match obj.get("kind").and_then(|k| k.as_str()) {
        Some("driver") => {}
        Some("resource") => {
            return Err(Status::unimplemented(
                "resource streams are not served by this exporter",
            ));
        }
        Some(k) => {
            return Err(invalid_request(&format!(
                "Input tag '{k}' found using 'kind' does not match any of the expected tags: 'resource', 'driver' [type=union_tag_invalid]"
            )));
        }
        None => {
            return Err(invalid_request(
                "Unable to extract tag using discriminator 'kind' [type=union_tag_not_found]",
            ));
        }
    }
    let uuid = match obj.get("uuid").and_then(|u| u.as_str()) {
        Some(u) => parse_uuid(u).ok_or_else(|| {
            invalid_request("driver.uuid\n  Input should be a valid UUID [type=uuid_parsing]")
        })?,
        None => {
            return Err(invalid_request(
                "driver.uuid\n  Field required [type=missing]",
            ));
        }
    };
    let Some(method) = obj.get("method").and_then(|m| m.as_str()) else {
        return Err(invalid_request(
            "driver.method\n  Field required [type=missing]",
        ));
    };
    Ok((uuid, method.to_owned()))
}

/// Counts a driver stream while its relay runs.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[tonic::async_trait]
impl RouterService for Streams {
    type StreamStream = Responses;

    async fn stream(
        &self,
        request: Request<Streaming<StreamRequest>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let s = &self.0;
        let (uuid, method) = parse_request(request.metadata())?;
        let driver = s.lookup(&uuid)?;
        check_method(driver, &method, Marker::Stream)?;
        let Some(d) = driver else {
            return Err(Status::internal("the root has no streams"));
        };
        let n = s.next.fetch_add(1, Ordering::Relaxed);
        let name = format!("session {}: stream {n} of {:?}", s.address, d.name);
        let target = d.target.clone();
        let connect = blocking(move || target.connect(Some(CONNECT_TIMEOUT)));
        let mut stop = s.stop.clone();
        let target = tokio::select! {
            r = connect => r?,
            _ = stop.wait_for(|s| *s) => return Err(Status::unavailable("the session is closing")),
        };
        let target = target.map_err(|e| {
            log::info!("{name}: connect failed: {e}");
            Status::unknown(format!("Unexpected <class 'OSError'>: {e}"))
        })?;
        log::debug!("{name}: connected to {}", target.name());
        let (tx, rx): (Out, _) = mpsc::channel(OUT_QUEUE);
        let end = End::default();
        s.streams.fetch_add(1, Ordering::AcqRel);
        let open = Open(s.streams.clone());
        let incoming = request.into_inner();
        let stop = s.stop.clone();
        let ends = end.clone();
        tokio::spawn(async move {
            pipe::relay(name, target, incoming, tx, ends, stop).await;
            drop(open);
        });
        Ok(Response::new(Responses::new(rx, end)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::{MetadataMap, MetadataValue};

    fn md(v: Option<&str>) -> MetadataMap {
        let mut m = MetadataMap::new();
        if let Some(v) = v {
            m.insert("request", MetadataValue::try_from(v).unwrap());
        }
        m
    }

    #[test]
    fn request_metadata_is_read_as_upstream_reads_it() {
        let u = "0b7e1d9c-1f0a-4c47-9c3a-6a1f0e2d3c4b";
        let ok = format!(r#"{{"kind":"driver","uuid":"{u}","method":"connect","x":1}}"#);
        assert_eq!(
            parse_request(&md(Some(&ok))).unwrap(),
            (u.to_string(), "connect".to_string())
        );
        for bad in [
            None,
            Some("nope"),
            Some("[]"),
            Some(r#"{"kind":"x","uuid":"u","method":"m"}"#),
            Some(r#"{"uuid":"u","method":"m"}"#),
            Some(r#"{"kind":"driver","uuid":"zz","method":"connect"}"#),
            Some(r#"{"kind":"driver","method":"connect"}"#),
        ] {
            let e = parse_request(&md(bad)).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unknown, "{bad:?}");
            assert!(e.message().contains("ValidationError"), "{bad:?}");
        }
        let no_method = format!(r#"{{"kind":"driver","uuid":"{u}"}}"#);
        assert!(parse_request(&md(Some(&no_method))).is_err());
    }
}
