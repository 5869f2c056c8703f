//! A network as a session's driver ([`Exported`]): the upstream network
//! driver each endpoint stands for (`TcpNetwork`, `UdpNetwork`,
//! `UnixNetwork`, `VsockNetwork`, `DbusNetwork`, `WebsocketNetwork`,
//! `EchoNetwork`; routers and sessions as plain network drivers), with
//! upstream's client class and `address` method where upstream's driver
//! has one (net/driver.py).

use super::Network;
use crate::error::Result;
use crate::session::{DriverKind, Exported, NETWORK_CLIENT};
use crate::url::{DbusBus, Endpoint};

/// `DbusNetwork`'s client class and kind label (net/driver.py:219-232).
const DBUS_CLIENT: &str = "jumpstarter_driver_network.client.DbusNetworkClient";
const DBUS_KIND_LABEL: &str = "jumpstarter.dev/dbusnetwork/kind";

impl Exported for Network {
    fn kind(&self) -> DriverKind {
        match self.endpoint() {
            Endpoint::Tcp(_) => DriverKind::network("TcpNetwork", true),
            Endpoint::Udp(_) => DriverKind::network("UdpNetwork", true),
            Endpoint::Websocket(_) => DriverKind::network("WebsocketNetwork", true),
            Endpoint::Unix(_) => DriverKind::network("UnixNetwork", false),
            Endpoint::Vsock(_) => DriverKind::network("VsockNetwork", false),
            Endpoint::Echo => DriverKind::network("EchoNetwork", false),
            Endpoint::Dbus(bus @ (DbusBus::System | DbusBus::Session)) => DriverKind {
                class: "DbusNetwork",
                client: DBUS_CLIENT,
                has_address: false,
                labels: vec![(
                    DBUS_KIND_LABEL.to_owned(),
                    if *bus == DbusBus::System {
                        "system"
                    } else {
                        "session"
                    }
                    .to_owned(),
                )],
            },
            // A bus by its address has no upstream kind: a plain network.
            Endpoint::Dbus(DbusBus::Address(_)) => DriverKind::network("DbusNetwork", false),
            Endpoint::Router(_) => DriverKind::network("RouterNetwork", false),
            // A driver of another session: its address is that driver's.
            Endpoint::Jumpstarter(_) => DriverKind {
                class: "NetworkDriver",
                client: NETWORK_CLIENT,
                has_address: true,
                labels: Vec::new(),
            },
        }
    }

    fn address(&self) -> Result<String> {
        Network::address(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_stand_for_upstreams_drivers() {
        let k = |u: &str| Network::new(u).unwrap().kind();
        assert_eq!(
            k("tcp://127.0.0.1:1"),
            DriverKind::network("TcpNetwork", true)
        );
        assert_eq!(k("udp://127.0.0.1:1").class, "UdpNetwork");
        assert!(!k("unix:/x").has_address);
        assert!(!k("echo:").has_address);
        let d = k("dbus:system");
        assert_eq!(d.client, DBUS_CLIENT);
        assert_eq!(
            d.labels,
            [(DBUS_KIND_LABEL.to_string(), "system".to_string())]
        );
        assert_eq!(k("echo:").client, NETWORK_CLIENT);
    }
}
