//! What a session serves: drivers ([`Exported`]) and how each shows itself
//! to upstream's client ([`DriverKind`]). The network dispatcher implements
//! [`Exported`] for [`Network`](crate::network::Network); this module does
//! not know it (the dispatcher uses the session's client, so the session
//! may not use the dispatcher).

use crate::error::Result;
use crate::stream::Connect;

/// How an exported driver appears to upstream's client: the upstream
/// driver class it stands for, the client class upstream's client loads for
/// it, whether it answers `address`, and labels of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverKind {
    /// The upstream driver class it stands for (`TcpNetwork`), as
    /// upstream's messages name it.
    pub class: &'static str,
    /// The client class (`jumpstarter.dev/client`):
    /// `jumpstarter_driver_network.client.NetworkClient` for every network
    /// but a D-Bus bus (`…DbusNetworkClient`).
    pub client: &'static str,
    /// Whether the upstream driver has an `address` method (`TcpNetwork`,
    /// `UdpNetwork`, `WebsocketNetwork`); a `DriverCall` of `address` on
    /// another driver is answered `NOT_FOUND`, as upstream's.
    pub has_address: bool,
    /// Extra labels of the driver's report (`DbusNetwork`'s
    /// `jumpstarter.dev/dbusnetwork/kind`).
    pub labels: Vec<(String, String)>,
}

/// The client class upstream's network drivers report.
pub const NETWORK_CLIENT: &str = "jumpstarter_driver_network.client.NetworkClient";

impl DriverKind {
    /// An upstream network driver `class` with `NetworkClient`.
    pub fn network(class: &'static str, has_address: bool) -> DriverKind {
        DriverKind {
            class,
            client: NETWORK_CLIENT,
            has_address,
            labels: Vec::new(),
        }
    }
}

/// A driver a session serves: its streams (`connect`, each a new stream of
/// the target), its `address` and how it shows itself.
pub trait Exported: Connect {
    /// How the driver appears in the session's report.
    fn kind(&self) -> DriverKind;

    /// Its `address()` (asked only when [`DriverKind::has_address`]).
    /// [`Error::Disabled`](crate::Error::Disabled) is answered as upstream's
    /// `enable_address: false`.
    fn address(&self) -> Result<String>;
}
