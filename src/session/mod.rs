//! The Jumpstarter session protocol: groundwork for reaching a device through
//! a lab (issue 13, the client side) and for serving jumpwire networks as
//! Jumpstarter drivers (issue 14, the exporter side).
//!
//! A session is upstream's `jumpstarter.v1.ExporterService` (`GetReport`,
//! `DriverCall`, `GetStatus`, `LogStream`, `EndSession`) plus
//! `jumpstarter.v1.RouterService/Stream`, whose calls carry driver streams;
//! a lab's controller serves `ControllerService` and `ClientService`. This
//! module holds their generated types and stubs (`proto`) and the client of
//! a session (`client`: `jumpstarter:` networks' streams and addresses),
//! built on the router client's calls and connection
//! (`crate::router::Connection`), and the way to a lease's session through
//! a lab (`lab`: the client configuration, the controller's `GetLease` and
//! `Dial`, the session's connection inside a router stream). Crate:
//! `error`, `router`, `stream`, `tls`, `url`, `util`.

mod client;
mod lab;
mod proto;

pub(crate) use client::Sessions;
