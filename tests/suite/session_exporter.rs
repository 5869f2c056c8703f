//! jumpwire's exporter through a lab (issue 14, the controller part): a
//! jumpwire session registered with the test controller
//! (`tests/python/controller.py`) by [`LabExporter`] from an upstream
//! exporter configuration, its lease's clients served through jumpwire's
//! router. Upstream 0.9.0's own client (`tests/python/lease_client_peer.py`:
//! `ClientConfigV1Alpha1.lease(...).connect()`) and then jumpwire's
//! (`jumpstarter:lease?…`) reach the exported TCP network; the lease's end
//! moves the exporter to the next lease and then to `AVAILABLE`; `close`
//! reports `OFFLINE` and unregisters. Needs `JW_PYTHON`.

use crate::common;

use common::lab::{Lab, Proc, RouterKind};
use common::{LONG, pattern, round_trip, tcp_echo_server};
use jumpwire::Network;
use jumpwire::session::{Exported, LabExporter, Session};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A session exporting a TCP echo server as `tcp` and the echo network as
/// `echo`; returns it and the TCP network's URL.
fn session() -> (Arc<Session>, String) {
    let echo = tcp_echo_server("127.0.0.1:0");
    let tcp = format!("tcp://{echo}");
    let drivers: Vec<(String, Arc<dyn Exported>)> = vec![
        ("tcp".into(), Arc::new(Network::new(&tcp).unwrap())),
        ("echo".into(), Arc::new(Network::new("echo:").unwrap())),
    ];
    (
        Arc::new(Session::serve("tcp://127.0.0.1:0", drivers).unwrap()),
        tcp,
    )
}

#[test]
fn upstream_and_jumpwire_clients_reach_a_jumpwire_exporter_through_the_lab() {
    let lab = Lab::start_bare(RouterKind::Jumpwire);
    let (session, tcp) = session();
    let cfg = lab.write_exporter_config("exporter-token");
    let exporter = LabExporter::start(Some(&cfg), session.clone()).unwrap();
    lab.ctl.until("REGISTERED bench");
    lab.ctl.seen("STATUS bench EXPORTER_STATUS_AVAILABLE");
    lab.ctl.seen("LISTEN lease1");
    lab.ctl.seen("STATUS bench EXPORTER_STATUS_LEASE_READY");

    // Upstream's own client dials the lease and reaches the TCP network.
    let cert = lab.cert.to_str().unwrap().to_owned();
    let py = Proc::start(
        "lease_client_peer.py",
        &[
            "--endpoint",
            &lab.controller,
            "--token",
            "client-token",
            "--name",
            "alice",
            "--ca",
            &cert,
            "--lease",
            "lease1",
            "--driver",
            "tcp",
            "--bytes",
            "1048576",
        ],
        &lab.dir,
    );
    assert_eq!(py.until("ADDRESS"), format!("ADDRESS {tcp}"));
    assert!(py.until("ROUNDTRIP").starts_with("ROUNDTRIP 1048576 "));
    lab.ctl.seen("DIAL lease1");

    // Then jumpwire's client in its place: both drivers, MiBs checksummed
    // (round_trip checks every byte).
    for driver in ["tcp", "echo"] {
        let net = Network::new(&lab.url(driver, "lease1", "alice")).unwrap();
        let s = net.connect(LONG).unwrap();
        round_trip(&s, &pattern(2 << 20, 5), 64 * 1024);
        s.close();
    }
    assert_eq!(
        Network::new(&lab.url("tcp", "lease1", "alice"))
            .unwrap()
            .address()
            .unwrap(),
        tcp
    );

    // The lease ends: the exporter follows the next lease (bob's) and
    // serves it; when that ends too, it is AVAILABLE.
    lab.ctl.send("end lease1");
    lab.ctl.until("ENDED lease1");
    lab.ctl.until("STATUS bench EXPORTER_STATUS_LEASE_READY");
    lab.ctl.seen("LISTEN lease-bob");
    lab.write_config_for("bob", "bob", "bob-token", &lab.controller);
    let s = Network::new(&lab.url("tcp", "lease-bob", "bob"))
        .unwrap()
        .connect(LONG)
        .unwrap();
    round_trip(&s, b"the next lease", 14);
    s.close();
    lab.ctl.send("end lease-bob");
    lab.ctl.until("ENDED lease-bob");
    lab.ctl.until("STATUS bench EXPORTER_STATUS_AVAILABLE");

    // Close: OFFLINE, unregistered, every thread joined (close returns),
    // within the goodbye's bound.
    let t0 = Instant::now();
    exporter.close();
    assert!(t0.elapsed() < Duration::from_secs(12), "{:?}", t0.elapsed());
    lab.ctl.until("STATUS bench EXPORTER_STATUS_OFFLINE");
    lab.ctl.until("UNREGISTERED bench");
    session.close();
}

#[test]
fn a_client_connected_when_the_exporter_closes_is_cut_off() {
    let lab = Lab::start_bare(RouterKind::Jumpwire);
    let (session, _) = session();
    let cfg = lab.write_exporter_config("exporter-token");
    let exporter = LabExporter::start(Some(&cfg), session.clone()).unwrap();
    lab.ctl.seen("STATUS bench EXPORTER_STATUS_LEASE_READY");
    let s = Network::new(&lab.url("echo", "lease1", "alice"))
        .unwrap()
        .connect(LONG)
        .unwrap();
    round_trip(&s, b"before the close", 16);
    let t0 = Instant::now();
    exporter.close();
    assert!(t0.elapsed() < Duration::from_secs(12), "{:?}", t0.elapsed());
    // The client's stream ends or fails (its router stream was cut).
    let mut buf = [0u8; 16];
    let r = s
        .send(b"after", LONG)
        .and_then(|()| s.receive(&mut buf, LONG));
    assert!(!matches!(r, Ok(Some(n)) if n > 0), "{r:?}");
    lab.ctl.until("UNREGISTERED bench");
    session.close();
}

#[test]
fn a_refused_exporter_token_is_unauthenticated_at_start() {
    let lab = Lab::start_bare(RouterKind::Jumpwire);
    let (session, _) = session();
    let cfg = lab.write_exporter_config("not-a-token");
    let e = LabExporter::start(Some(&cfg), session.clone()).unwrap_err();
    assert!(matches!(e, jumpwire::Error::Unauthenticated(_)), "{e}");
    assert!(!e.to_string().contains("not-a-token"), "{e}");
    // A client configuration is not an exporter configuration.
    let client = lab.write_config("alice", "client-token");
    let e = LabExporter::start(Some(&client), session.clone()).unwrap_err();
    assert!(e.to_string().contains("not ExporterConfig"), "{e}");
    session.close();
}
