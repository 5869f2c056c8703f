//! The Jumpstarter session protocol: reaching a device through a lab
//! (issue 13, the client side) and serving jumpwire networks as Jumpstarter
//! drivers (issue 14, the exporter side).
//!
//! A session is upstream's `jumpstarter.v1.ExporterService` (`GetReport`,
//! `DriverCall`, `GetStatus`, `LogStream`, `EndSession`) plus
//! `jumpstarter.v1.RouterService/Stream`, whose calls carry driver streams;
//! a lab's controller serves `ControllerService` and `ClientService`. The
//! files:
//! - `proto`: the generated types and stubs.
//! - `client`: the client of a session (`jumpstarter:` networks' streams and
//!   addresses), built on the router client's calls and connection
//!   (`crate::router::Connection`).
//! - `lab`: the way to a lease's session through a lab: the client
//!   configuration, the controller's `GetLease` and `Dial`, the session's
//!   connection inside a router stream.
//! - `exported`: what a session serves ([`Exported`], [`DriverKind`]; the
//!   dispatcher implements it for [`Network`](crate::network::Network)).
//! - `report`: uuids and the `GetReport` tree of a served session.
//! - `pipe`: one served driver stream, relayed to its target.
//! - `service`: the calls a served session answers, upstream's errors.
//! - `authority`: mends the `:authority` gRPC's C core sends over a Unix
//!   socket, which the HTTP/2 server refuses.
//! - `server`: the session server ([`Session`]): its runtime, listeners,
//!   connections and close.
//! - `exporter`: a session served through a lab ([`LabExporter`]):
//!   `Register`, `Status`, `Listen`, and each client's connection served
//!   over a router stream (`crate::router::export_via`).
//!
//! Crate: `error`, `router`, `socket`, `stream`, `sys`, `tls`, `url`, `util`.

mod authority;
mod client;
mod exported;
mod exporter;
mod lab;
mod pipe;
mod proto;
mod report;
mod server;
mod service;

pub(crate) use client::Sessions;
pub use exported::{DriverKind, Exported, NETWORK_CLIENT};
pub use exporter::LabExporter;
pub use server::Session;
