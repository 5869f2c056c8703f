//! The Jumpstarter router: the protocol's generated types, the router client
//! stream ([`connect`]), the exporter side ([`export`]), the router server
//! ([`Router`]) and stream tokens ([`token`]).
//!
//! Both ends of a routed stream dial the router with the same stream token;
//! the router pairs the two callers whose tokens carry the same `sub` and
//! relays `jumpstarter.v1.RouterService/Stream` frames between them. The gRPC
//! work runs on one small tokio runtime owned by the library (two worker
//! threads, started on first use); every call of the Rust and C API stays
//! blocking, and a router stream is a [`Stream`](crate::Stream) like any other.

mod client;
mod server;
mod tls;
pub mod token;

pub use client::{connect, export};
pub use server::Router;

use std::sync::OnceLock;
use tokio::runtime::Runtime;

/// Protobuf types and gRPC stubs generated from
/// `proto/jumpstarter/v1/router.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/jumpstarter.v1.rs"));
}

/// Largest message the router and the client accept (as upstream: 64 MiB).
pub const MAX_MESSAGE: usize = 64 << 20;

/// Largest DATA frame a router client sends; larger sends are split.
pub const MAX_FRAME: usize = 64 << 10;

/// The library's runtime for the gRPC transport: started on first use, two
/// worker threads named `jw-router`, never stopped.
pub(crate) fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(2)
            .thread_name("jw-router")
            .enable_all()
            .build()
            .expect("starting the router runtime")
    })
}
