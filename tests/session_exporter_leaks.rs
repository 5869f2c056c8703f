//! Exporter resource leaks: jumpwire's exporter ([`LabExporter`]) serving
//! twenty leases one after another through the test controller
//! (`tests/python/controller.py`) and jumpwire's router in this process, a
//! client's streams through each, leaves the process with exactly the
//! threads and descriptors it had after the first leases; closing the
//! exporter and the session returns it to where it was before them. ONE
//! test, so that nothing else in this process changes the counts. Needs
//! `JW_PYTHON`.

mod common;

use common::lab::{Lab, RouterKind};
use common::routing::counts_back_to;
use common::{LONG, round_trip, steady, tcp_echo_server};
use jumpwire::Network;
use jumpwire::session::{Exported, LabExporter, Session};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Lease `name` of alice on the exporter `bench`: its streams, then its end.
fn one_lease(lab: &Lab, name: &str) {
    lab.ctl.send(&format!("lease {name} alice bench"));
    lab.ctl.until(&format!("LEASED {name}"));
    lab.ctl.until(&format!("LISTEN {name}"));
    {
        let net = Network::new(&lab.url("tcp", name, "alice")).unwrap();
        for i in 0..3 {
            let s = net.connect(LONG).unwrap();
            round_trip(&s, format!("{name} stream {i}").as_bytes(), 64);
            s.close();
        }
    }
    lab.ctl.send(&format!("end {name}"));
    lab.ctl.until(&format!("ENDED {name}"));
    lab.ctl.until("STATUS bench EXPORTER_STATUS_AVAILABLE");
}

#[test]
fn twenty_leases_served_one_after_another_leave_nothing_behind() {
    let lab = Lab::start_bare(RouterKind::Jumpwire);
    // The two leases the lab starts with, out of the way first.
    lab.ctl.send("end lease1");
    lab.ctl.send("end lease-bob");
    lab.ctl.until("ENDED lease1");
    lab.ctl.until("ENDED lease-bob");
    let echo = tcp_echo_server("127.0.0.1:0");
    let idle = steady(Duration::from_secs(2));

    let drivers: Vec<(String, Arc<dyn Exported>)> = vec![(
        "tcp".into(),
        Arc::new(Network::new(&format!("tcp://{echo}")).unwrap()),
    )];
    let session = Arc::new(Session::serve("tcp://127.0.0.1:0", drivers).unwrap());
    let cfg = lab.write_exporter_config("exporter-token");
    let exporter = LabExporter::start(Some(&cfg), session.clone()).unwrap();
    lab.ctl.until("REGISTERED bench");
    lab.ctl.until("STATUS bench EXPORTER_STATUS_AVAILABLE");

    // Warm-up: the router's, the session's and the driver's threads start
    // with the first leases.
    one_lease(&lab, "warm-1");
    one_lease(&lab, "warm-2");
    let before = steady(Duration::from_secs(2));
    let t0 = Instant::now();
    for i in 0..20 {
        one_lease(&lab, &format!("lease-{i}"));
    }
    eprintln!("20 leases, 3 streams each, in {:?}", t0.elapsed());
    assert_eq!(
        counts_back_to(before),
        before,
        "(threads, fds) before and after 20 leases"
    );

    exporter.close();
    lab.ctl.until("UNREGISTERED bench");
    session.close();
    drop(session);
    // What stays is the router streams' driver (a thread, its epoll and
    // the registry's duplicate of it, started once per process by the first
    // router stream); nothing of the exporter, the session or their clients.
    let (threads, fds) = counts_back_to((idle.0 + 1, idle.1 + 2));
    let open: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(
        (threads, fds),
        (idle.0 + 1, idle.1 + 2),
        "(threads, fds) after closing; {idle:?} before the session; open: {open:?}"
    );
}
