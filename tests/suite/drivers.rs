//! Every driver of the Rust API against real local peers that the tests start:
//! TCP over IPv4, IPv6 and a host name; UDP datagrams; Unix path and abstract
//! sockets; the in-memory echo; vsock URL errors and a clean failure on the
//! local CID; and forwarding listeners (`tcp://` and `unix:`) onto a TCP echo
//! server. Each test checks exact bytes, exact `Error` variants and the
//! `address()` formats.

use crate::common;

use common::*;
use jumpwire::forward::Listener;
use jumpwire::{Error, Network, Stream};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// Round trips of 1 byte, 64 KiB and 4 MiB (each in one send), then a
/// half-close that the echo server answers with EOF.
fn round_trips_then_eof(s: &Stream) {
    for (i, len) in [1, 64 * KIB, 4 * MIB].into_iter().enumerate() {
        round_trip(s, &pattern(len, i as u64 + 1), len);
    }
    s.send_eof().unwrap();
    assert_eq!(recv_to_eof(s, Duration::from_secs(10)), b"");
}

fn port_of(address: &str, prefix: &str) -> u16 {
    let rest = address
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{address:?} does not start with {prefix:?}"));
    let port: u16 = rest
        .parse()
        .unwrap_or_else(|_| panic!("{address:?}: bad port"));
    assert_ne!(port, 0, "{address:?}");
    port
}

// ---------------------------------------------------------------- tcp

#[test]
fn tcp_ipv4_round_trips() {
    let addr = tcp_echo_server("127.0.0.1:0");
    let url = format!("tcp://127.0.0.1:{}", addr.port());
    let s = jumpwire::connect(&url, LONG).unwrap();
    assert_eq!(s.name(), url);
    round_trips_then_eof(&s);
    s.close();
}

#[test]
fn tcp_ipv6_round_trips() {
    if !have_ipv6() {
        println!("skipped: this machine cannot bind [::1]");
        return;
    }
    let addr = tcp_echo_server("[::1]:0");
    let url = format!("tcp://[::1]:{}", addr.port());
    let s = jumpwire::connect(&url, LONG).unwrap();
    round_trips_then_eof(&s);
    let net = Network::new(&url).unwrap();
    assert_eq!(net.address().unwrap(), url);
}

#[test]
fn tcp_host_name_round_trips_and_address_is_resolved() {
    // Serve on the first address `localhost` resolves to, as the driver
    // tries the resolved addresses in order.
    let first: SocketAddr = ("localhost", 0).to_socket_addrs().unwrap().next().unwrap();
    let addr = tcp_echo_server(&first.to_string());
    let url = format!("tcp://localhost:{}", addr.port());
    let s = jumpwire::connect(&url, LONG).unwrap();
    round_trips_then_eof(&s);

    let address = Network::new(&url).unwrap().address().unwrap();
    let v4 = format!("tcp://127.0.0.1:{}", addr.port());
    let v6 = format!("tcp://[::1]:{}", addr.port());
    assert!(
        address == v4 || address == v6,
        "{address:?} is not a resolved IP"
    );
}

#[test]
fn tcp_nodelay_0_is_accepted() {
    let addr = tcp_echo_server("127.0.0.1:0");
    let s = jumpwire::connect(&format!("tcp://{addr}?nodelay=0"), LONG).unwrap();
    // Small sends are where Nagle would matter: they must still all arrive.
    for i in 0..50u8 {
        s.send(&[i], LONG).unwrap();
    }
    let want: Vec<u8> = (0..50).collect();
    assert_eq!(recv_exact(&s, 50, 1024, Duration::from_secs(10)), want);
    round_trip(&s, &pattern(64 * KIB, 9), 4096);
}

#[test]
fn tcp_address_formats() {
    let addr = tcp_echo_server("127.0.0.1:0");
    let port = addr.port();
    let net = Network::new(&format!("tcp://127.0.0.1:{port}")).unwrap();
    assert_eq!(net.address().unwrap(), format!("tcp://127.0.0.1:{port}"));
    let net = Network::new("tcp://[::1]:8080").unwrap();
    assert_eq!(net.address().unwrap(), "tcp://[::1]:8080");
    let net = Network::new(&format!("tcp://[0:0:0:0:0:0:0:1]:{port}")).unwrap();
    assert_eq!(net.address().unwrap(), format!("tcp://[::1]:{port}"));

    // enable_address=false hides the address, but the network still connects.
    let hidden = Network::new(&format!("tcp://127.0.0.1:{port}?enable_address=false")).unwrap();
    assert!(
        matches!(hidden.address(), Err(Error::Disabled(_))),
        "{:?}",
        hidden.address()
    );
    let s = hidden.connect(LONG).unwrap();
    round_trip(&s, b"still works", 64);
}

// ---------------------------------------------------------------- udp

fn udp_stream() -> (Stream, SocketAddr) {
    let addr = udp_echo_server();
    let s = jumpwire::connect(&format!("udp://{addr}"), LONG).unwrap();
    (s, addr)
}

#[test]
fn udp_one_send_is_one_datagram() {
    let (s, _) = udp_stream();
    let msgs: [&[u8]; 3] = [b"one", b"two two", b"three three three"];
    for m in msgs {
        s.send(m, LONG).unwrap();
    }
    // Give all three echoes time to be queued together: they must still come
    // out one per receive.
    std::thread::sleep(Duration::from_millis(100));
    let mut buf = [0u8; 1024];
    for m in msgs {
        let n = s.receive(&mut buf, LONG).unwrap().unwrap();
        assert_eq!(&buf[..n], m);
    }
    assert_timeout(s.receive(&mut buf, Some(Duration::ZERO)));
}

#[test]
fn udp_large_datagram_comes_out_over_several_receives_without_mixing() {
    let (s, _) = udp_stream();
    let big = pattern(3000, 7);
    let next = pattern(500, 8);
    s.send(&big, LONG).unwrap();
    s.send(&next, LONG).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut buf = [0u8; 1024];
    let mut sizes = Vec::new();
    let mut got = Vec::new();
    while got.len() < big.len() {
        let n = s.receive(&mut buf, LONG).unwrap().unwrap();
        sizes.push(n);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(sizes, [1024, 1024, 952], "the first datagram's pieces");
    assert_eq!(got, big);
    let n = s.receive(&mut buf, LONG).unwrap().unwrap();
    assert_eq!(&buf[..n], &next[..]);
}

#[test]
fn udp_empty_datagram_is_received_as_zero_bytes() {
    let (s, _) = udp_stream();
    s.send(b"", LONG).unwrap();
    s.send(b"after", LONG).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(s.receive(&mut buf, LONG), Ok(Some(0)));
    let n = s.receive(&mut buf, LONG).unwrap().unwrap();
    assert_eq!(&buf[..n], b"after");
}

#[test]
fn udp_datagram_size_limit() {
    let (s, _) = udp_stream();
    let r = s.send(&vec![1u8; 65508], LONG);
    assert!(matches!(r, Err(Error::TooLarge(_))), "{r:?}");
    // The largest datagram goes through whole, and the stream still works.
    let max = pattern(65507, 3);
    s.send(&max, LONG).unwrap();
    let mut buf = vec![0u8; 70000];
    let n = s.receive(&mut buf, LONG).unwrap().unwrap();
    assert_eq!(n, max.len());
    assert!(buf[..n] == max[..]);
}

#[test]
fn udp_send_eof_is_a_no_op_on_the_wire() {
    let (s, _) = udp_stream();
    s.send(b"before", LONG).unwrap();
    s.send_eof().unwrap();
    let mut buf = [0u8; 64];
    let n = s.receive(&mut buf, LONG).unwrap().unwrap();
    assert_eq!(&buf[..n], b"before");
    // No EOF comes: UDP has none.
    assert_timeout(s.receive(&mut buf, ms(100)));
    // And sending goes on, as upstream's no-op send_eof.
    s.send(b"after", LONG).unwrap();
    let n = s.receive(&mut buf, LONG).unwrap().unwrap();
    assert_eq!(&buf[..n], b"after");
}

#[test]
fn udp_address_formats() {
    let (_, addr) = udp_stream();
    let net = Network::new(&format!("udp://{addr}")).unwrap();
    assert_eq!(net.address().unwrap(), format!("udp://{addr}"));
    let net = Network::new(&format!("udp://localhost:{}", addr.port())).unwrap();
    let a = net.address().unwrap();
    assert!(
        a == format!("udp://127.0.0.1:{}", addr.port())
            || a == format!("udp://[::1]:{}", addr.port()),
        "{a:?}"
    );
    let hidden = Network::new(&format!("udp://{addr}?enable_address=false")).unwrap();
    assert!(matches!(hidden.address(), Err(Error::Disabled(_))));
}

// ---------------------------------------------------------------- unix

#[test]
fn unix_path_socket_round_trips() {
    let dir = TempDir::new("unix");
    let path = dir.path().join("echo.sock");
    unix_echo_server(UnixListener::bind(&path).unwrap());
    let url = format!("unix:{}", path.display());
    let net = Network::new(&url).unwrap();
    assert_eq!(net.address().unwrap(), url);
    let s = net.connect(LONG).unwrap();
    round_trips_then_eof(&s);

    // The unix:///PATH spelling reaches the same socket and reports unix:/PATH.
    let net = Network::new(&format!("unix://{}", path.display())).unwrap();
    assert_eq!(net.address().unwrap(), url);
    let s = net.connect(LONG).unwrap();
    round_trip(&s, b"triple slash", 64);
}

#[test]
fn unix_abstract_socket_round_trips() {
    let name = unique("abstract");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    unix_echo_server(UnixListener::bind_addr(&addr).unwrap());
    let url = format!("unix:@{name}");
    let net = Network::new(&url).unwrap();
    assert_eq!(net.address().unwrap(), url);
    let s = net.connect(LONG).unwrap();
    round_trips_then_eof(&s);
}

// ---------------------------------------------------------------- echo

#[test]
fn echo_round_trip() {
    let s = jumpwire::connect("echo:", LONG).unwrap();
    s.send(b"hello", LONG).unwrap();
    let mut buf = [0u8; 16];
    let n = s.receive(&mut buf, LONG).unwrap().unwrap();
    assert_eq!(&buf[..n], b"hello");
    round_trip(&s, &pattern(4 * MIB, 11), 64 * KIB);
    assert!(matches!(
        Network::new("echo:").unwrap().address(),
        Err(Error::Unsupported(_))
    ));
}

#[test]
fn echo_keeps_the_order_and_boundaries_of_many_messages() {
    let s = jumpwire::connect("echo:", LONG).unwrap();
    let msgs: Vec<Vec<u8>> = (0..2000u64)
        .map(|i| pattern(1 + (i as usize * 37) % 3000, i))
        .collect();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for m in &msgs {
                s.send(m, LONG).unwrap();
            }
        });
        let mut buf = vec![0u8; 4096];
        for (i, m) in msgs.iter().enumerate() {
            let n = s.receive(&mut buf, LONG).unwrap().unwrap();
            assert!(buf[..n] == m[..], "message {i} differs");
        }
    });
}

#[test]
fn echo_send_eof_comes_back_after_all_data() {
    let s = jumpwire::connect("echo:", LONG).unwrap();
    for m in [&b"a"[..], b"bb", b"ccc"] {
        s.send(m, LONG).unwrap();
    }
    s.send_eof().unwrap();
    let mut buf = [0u8; 16];
    for m in [&b"a"[..], b"bb", b"ccc"] {
        let n = s.receive(&mut buf, LONG).unwrap().unwrap();
        assert_eq!(&buf[..n], m);
    }
    assert_eq!(s.receive(&mut buf, LONG), Ok(None));
    assert_eq!(s.receive(&mut buf, LONG), Ok(None));
}

// ---------------------------------------------------------------- vsock

#[test]
fn vsock_url_errors() {
    let cases = [
        ("vsock://x:1", "cid \"x\" is not a decimal number"),
        ("vsock://1", "port is missing"),
        (
            "vsock://1:99999999999",
            "port \"99999999999\" is out of range",
        ),
    ];
    for (url, want) in cases {
        match Network::new(url) {
            Err(Error::InvalidArgument(m)) => assert!(m.contains(want), "{url}: {m:?}"),
            other => panic!("{url}: expected InvalidArgument, got {other:?}"),
        }
        match jumpwire::connect(url, ms(100)) {
            Err(Error::InvalidArgument(_)) => {}
            other => panic!("{url}: expected InvalidArgument, got {other:?}"),
        }
    }
}

#[test]
fn vsock_connect_to_the_local_cid_fails_cleanly() {
    // CID 1 is the local loopback; nothing listens on this port. Depending on
    // the machine (vsock_loopback loaded or not, transport present or not)
    // this is refused, unreachable, unsupported, or times out.
    let url = "vsock://1:3141592653";
    let net = Network::new(url).unwrap();
    assert_eq!(net.address().unwrap(), url);
    let timeout = Duration::from_secs(2);
    let (r, took) = timed(|| net.connect(Some(timeout)));
    match r {
        Err(Error::Connection(_) | Error::Io(_) | Error::Timeout) => {}
        other => panic!("expected Connection, Io or Timeout, got {other:?}"),
    }
    assert!(took <= timeout + SLACK, "took {took:?}");
}

#[test]
fn vsock_round_trip_with_a_configured_peer() {
    let Ok(cid) = std::env::var("JW_TEST_VSOCK_CID") else {
        println!("skipped: set JW_TEST_VSOCK_CID (and JW_TEST_VSOCK_PORT) to a vsock echo peer");
        return;
    };
    let port = std::env::var("JW_TEST_VSOCK_PORT").unwrap_or_else(|_| "5201".into());
    let s = jumpwire::connect(&format!("vsock://{cid}:{port}"), LONG).unwrap();
    round_trip(&s, &pattern(64 * KIB, 5), 4096);
}

// ---------------------------------------------------------------- forwarding

/// Four clients at once through `address`, each doing round trips of
/// several sizes and then a half-close answered by EOF.
fn concurrent_clients(address: &str) {
    std::thread::scope(|scope| {
        for c in 0..4u64 {
            scope.spawn(move || {
                let s = jumpwire::connect(address, LONG).unwrap();
                for (i, len) in [1, 1000, 64 * KIB, MIB].into_iter().enumerate() {
                    round_trip(&s, &pattern(len, c * 10 + i as u64), 16 * KIB);
                }
                s.send_eof().unwrap();
                assert_eq!(recv_to_eof(&s, Duration::from_secs(10)), b"");
                s.close();
            });
        }
    });
}

fn tcp_echo_network() -> Network {
    let addr = tcp_echo_server("127.0.0.1:0");
    Network::new(&format!("tcp://{addr}")).unwrap()
}

#[test]
fn tcp_listener_forwards_concurrent_clients() {
    let listener = Listener::bind("tcp://127.0.0.1:0", &tcp_echo_network()).unwrap();
    port_of(listener.address(), "tcp://127.0.0.1:");
    concurrent_clients(listener.address());
    listener.close();
    // Closed: nobody accepts any more.
    let r = jumpwire::connect(listener.address(), LONG);
    assert!(matches!(r, Err(Error::Connection(_))), "{r:?}");
}

#[test]
fn tcp_listener_on_ipv6_reports_bracketed_address() {
    if !have_ipv6() {
        println!("skipped: this machine cannot bind [::1]");
        return;
    }
    let listener = Listener::bind("tcp://[::1]:0", &tcp_echo_network()).unwrap();
    port_of(listener.address(), "tcp://[::1]:");
    let s = jumpwire::connect(listener.address(), LONG).unwrap();
    round_trip(&s, &pattern(100 * KIB, 1), 8 * KIB);
}

#[test]
fn unix_listener_forwards_and_removes_its_socket_file() {
    let dir = TempDir::new("listen");
    let path = dir.path().join("fwd.sock");
    let url = format!("unix:{}", path.display());
    let listener = Listener::bind(&url, &tcp_echo_network()).unwrap();
    assert_eq!(listener.address(), url);
    assert!(path.exists(), "the socket file exists while listening");
    concurrent_clients(listener.address());
    listener.close();
    assert!(!path.exists(), "close removes the socket file");

    // Dropping does the same.
    let listener = Listener::bind(&url, &tcp_echo_network()).unwrap();
    assert!(path.exists());
    drop(listener);
    assert!(!path.exists(), "drop removes the socket file");
}

#[test]
fn unix_abstract_listener_forwards() {
    let url = format!("unix:@{}", unique("listen"));
    let listener = Listener::bind(&url, &tcp_echo_network()).unwrap();
    assert_eq!(listener.address(), url);
    let s = jumpwire::connect(&url, LONG).unwrap();
    round_trip(&s, &pattern(256 * KIB, 2), 32 * KIB);
}

#[test]
fn listener_connections_drop_to_zero_after_clients_leave() {
    let listener = Listener::bind("tcp://127.0.0.1:0", &tcp_echo_network()).unwrap();
    let clients: Vec<Stream> = (0..3)
        .map(|_| jumpwire::connect(listener.address(), LONG).unwrap())
        .collect();
    for s in &clients {
        round_trip(s, b"x", 1);
    }
    assert_eq!(listener.connections(), 3);
    drop(clients);
    let deadline = Instant::now() + SLACK;
    while listener.connections() != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        listener.connections(),
        0,
        "connections still counted after every client left"
    );
}

#[test]
fn listener_rejects_bad_listen_urls() {
    let target = Network::new("echo:").unwrap();
    let r = Listener::bind("udp://127.0.0.1:0", &target);
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    // A port that is taken.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let r = Listener::bind(&format!("tcp://{}", taken.local_addr().unwrap()), &target);
    assert!(matches!(r, Err(Error::Io(_))), "{r:?}");
}
