//! D-Bus addresses (`dbus:ADDRESS`, `DBUS_*_BUS_ADDRESS`): lists of
//! `TRANSPORT:KEY=VALUE,...` entries with `%XX` escaping. Properties: parsing
//! never panics; the entries written back canonically parse to the same
//! entries; `Network::new("dbus:ADDRESS")` accepts exactly the addresses the
//! parser accepts, and quotes the address when it refuses one.
#![no_main]

use jumpwire::fuzzing::dbus_address;
use jumpwire::network::Network;
use jumpwire::url::{DbusBus, Endpoint};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(address) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = dbus_address(address);
    if let Ok(entries) = &parsed {
        assert!(!entries.is_empty(), "{address:?}");
        let canonical = entries.join(";");
        let again = dbus_address(&canonical)
            .unwrap_or_else(|e| panic!("{address:?} is {canonical:?}, which does not parse: {e}"));
        assert_eq!(&again, entries, "{address:?} -> {canonical:?}");
    }
    let url = format!("dbus:{address}");
    if let Ok(Endpoint::Dbus(DbusBus::Address(a))) = Endpoint::parse(&url) {
        assert_eq!(a, address);
        match (Network::new(&url), &parsed) {
            (Ok(_), Ok(_)) => {}
            (Err(e), Err(_)) => assert!(e.to_string().contains(&url), "{url:?}: {e}"),
            (n, p) => panic!("{url:?}: the network says {n:?}, the parser {p:?}"),
        }
    }
});
