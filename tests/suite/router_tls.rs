//! The router over TLS (`grpcs://`): pairing with the router's self-signed
//! certificate trusted through `?ca=`, with a certificate given by
//! `cert`/`key_file`, with `insecure=1`, over IPv6; refused certificates
//! (wrong CA, system roots) fail with a connection error within the timeout;
//! unreadable CA and certificate files are argument errors; a plaintext
//! client of a TLS router and a TLS client of a plaintext router fail
//! cleanly; silent TCP clients do not hold up other handshakes; the exporter
//! and a router network over TLS, a local port forwarded onto TLS router
//! streams; the C functions, `jw_router_certificate` included.

use crate::common;

use common::routing::*;
use common::*;
use jumpwire::router::{self, Router, token};
use jumpwire::{Error, Stream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const KEY: &str = "router-tls-key";

fn tls_router() -> Router {
    Router::serve(&format!("grpcs://127.0.0.1:0?key={KEY}")).unwrap()
}

fn tok(id: &str) -> String {
    token::mint(KEY, id, Duration::from_secs(60)).unwrap()
}

/// Writes the router's certificate into `dir` and returns the URL that
/// trusts it.
fn trusted_url(r: &Router, dir: &Path) -> String {
    let ca = dir.join(format!("{}.pem", unique("ca")));
    std::fs::write(
        &ca,
        r.certificate().expect("a grpcs router has a certificate"),
    )
    .unwrap();
    format!("{}?ca={}", r.address(), ca.display())
}

fn pair(url: &str, id: &str) -> (Stream, Stream) {
    pair_at(url, KEY, id)
}

/// Both ways, sizes from 0 B to 4 MiB, then half-close each way.
fn exchange(a: &Stream, b: &Stream) {
    for (i, len) in [0usize, 1, 100, 65_536, 65_537, 1 << 20, 4 << 20]
        .into_iter()
        .enumerate()
    {
        let data = pattern(len, i as u64);
        std::thread::scope(|s| {
            s.spawn(|| a.send(&data, LONG).unwrap());
            expect(b, &data);
        });
        let back = pattern(len, 100 + i as u64);
        std::thread::scope(|s| {
            s.spawn(|| b.send(&back, LONG).unwrap());
            expect(a, &back);
        });
    }
    a.send_eof().unwrap();
    expect_eof(b);
    b.send(b"after", LONG).unwrap();
    expect(a, b"after");
    b.send_eof().unwrap();
    expect_eof(a);
}

/// `connect` fails with a connection error, or the stream it made does at
/// its first receive; either way within `within` of the start.
fn fails_cleanly(url: &str, t: &str, within: Duration) -> Error {
    let t0 = Instant::now();
    let e = match router::connect(url, t, Some(Duration::from_secs(5))) {
        Err(e) => e,
        Ok(s) => {
            let e = s
                .receive(&mut [0u8; 16], Some(Duration::from_secs(5)))
                .expect_err("a stream that cannot work must not deliver");
            s.close();
            e
        }
    };
    let took = t0.elapsed();
    eprintln!("{url}: failed in {took:?}: {e}");
    assert!(took < within, "{url}: took {took:?} to fail ({e:?})");
    assert!(matches!(e, Error::Connection(_)), "{url}: {e:?}");
    e
}

fn self_signed(names: &[&str], dir: &Path) -> (PathBuf, PathBuf) {
    let made =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let tag = unique("cert");
    let cert = dir.join(format!("{tag}.crt"));
    let key = dir.join(format!("{tag}.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

#[test]
fn callers_trusting_the_routers_certificate_pair_over_tls() {
    let dir = TempDir::new("rtls");
    let r = tls_router();
    assert!(
        r.address().starts_with("grpcs://127.0.0.1:"),
        "{}",
        r.address()
    );
    let pem = r.certificate().unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
    assert!(pem.ends_with("-----END CERTIFICATE-----\n"), "{pem}");
    let url = trusted_url(&r, dir.path());
    let (a, b) = pair(&url, "s1");
    exchange(&a, &b);
    a.close();
    b.close();
    // The name a stream shows is the router URL, with the ca option.
    let (a, b) = pair(&url, "s2");
    assert!(a.name().starts_with("grpcs://127.0.0.1:"), "{}", a.name());
    a.send(b"again", LONG).unwrap();
    expect(&b, b"again");
    // One caller trusting the CA, one with insecure=1: still one pair.
    let t = tok("mixed");
    let a = router::connect(&url, &t, LONG).unwrap();
    let b = router::connect(&format!("{}?insecure=1", r.address()), &t, LONG).unwrap();
    a.send(b"x", LONG).unwrap();
    expect(&b, b"x");
    // A plaintext router has no certificate.
    let plain = Router::serve(&format!("grpc://127.0.0.1:0?key={KEY}")).unwrap();
    assert_eq!(plain.certificate(), None);
}

#[test]
fn a_router_on_ipv6_and_localhost_is_verified_by_name() {
    let dir = TempDir::new("rtls6");
    if have_ipv6() {
        let r = Router::serve(&format!("grpcs://[::1]:0?key={KEY}")).unwrap();
        assert!(r.address().starts_with("grpcs://[::1]:"), "{}", r.address());
        let url = trusted_url(&r, dir.path());
        let (a, b) = pair(&url, "v6");
        a.send(b"six", LONG).unwrap();
        expect(&b, b"six");
    }
    // localhost is among the names of the self-signed certificate.
    let r = tls_router();
    let port = r.address().rsplit(':').next().unwrap().to_string();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, r.certificate().unwrap()).unwrap();
    let url = format!("grpcs://localhost:{port}?ca={}", ca.display());
    let (a, b) = pair(&url, "lh");
    b.send(b"local", LONG).unwrap();
    expect(&a, b"local");
}

#[test]
fn a_router_serves_the_certificate_and_key_it_is_given() {
    let dir = TempDir::new("rtlsc");
    let (cert, key) = self_signed(&["localhost", "127.0.0.1"], dir.path());
    let r = Router::serve(&format!(
        "grpcs://127.0.0.1:0?key={KEY}&cert={}&key_file={}",
        cert.display(),
        key.display()
    ))
    .unwrap();
    // It presents that certificate, and reports it.
    let given = std::fs::read_to_string(&cert).unwrap();
    let strip = |s: &str| s.lines().collect::<String>();
    assert_eq!(strip(r.certificate().unwrap()), strip(&given));
    let url = format!("{}?ca={}", r.address(), cert.display());
    let (a, b) = pair(&url, "given");
    exchange(&a, &b);
    // A certificate of another key, a key with no certificate, missing files:
    // argument errors, before anything is bound.
    let (cert2, key2) = self_signed(&["localhost"], dir.path());
    let serve = |c: &Path, k: &Path| {
        Router::serve(&format!(
            "grpcs://127.0.0.1:0?key={KEY}&cert={}&key_file={}",
            c.display(),
            k.display()
        ))
    };
    let missing = dir.path().join("missing.pem");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not PEM at all\n").unwrap();
    for (c, k) in [
        (&cert, &key2),
        (&missing, &key),
        (&cert, &missing),
        (&empty, &key),
        (&cert2, &empty),
        (&key, &key),
    ] {
        match serve(c, k) {
            Err(Error::InvalidArgument(m)) => assert!(!m.contains(KEY), "{m}"),
            other => panic!("cert={c:?} key_file={k:?}: {other:?}"),
        }
    }
}

#[test]
fn insecure_skips_verification_and_without_it_a_strange_certificate_is_refused() {
    let dir = TempDir::new("rtlsi");
    let r = tls_router();
    let t = tok("insecure");
    let url = format!("{}?insecure=1", r.address());
    let (a, b) = pair(&url, "insecure");
    a.send(b"trust me", LONG).unwrap();
    expect(&b, b"trust me");
    // Wrong CA: another self-signed certificate.
    let (other, _) = self_signed(&["127.0.0.1", "localhost"], dir.path());
    let e = fails_cleanly(
        &format!("{}?ca={}", r.address(), other.display()),
        &t,
        SLACK,
    );
    let text = e.to_string();
    assert!(text.contains("certificate"), "{text}");
    // The system roots do not know a self-signed certificate either (or
    // there are no system roots: then it is an I/O error).
    let t0 = Instant::now();
    match router::connect(r.address(), &t, LONG) {
        Err(Error::Connection(m)) => assert!(m.contains("certificate"), "{m}"),
        Err(Error::Io(m)) => assert!(m.contains("root"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(t0.elapsed() < SLACK);
    // Right CA, wrong name: the certificate names localhost and loopback
    // addresses only.
    let (named, key) = self_signed(&["router.example"], dir.path());
    let r2 = Router::serve(&format!(
        "grpcs://127.0.0.1:0?key={KEY}&cert={}&key_file={}",
        named.display(),
        key.display()
    ))
    .unwrap();
    fails_cleanly(
        &format!("{}?ca={}", r2.address(), named.display()),
        &t,
        SLACK,
    );
    // ... which insecure=1 accepts.
    let (a, b) = pair(&format!("{}?insecure=1", r2.address()), "named");
    a.send(b"ok", LONG).unwrap();
    expect(&b, b"ok");
}

#[test]
fn unreadable_ca_files_are_argument_errors() {
    let dir = TempDir::new("rtlsa");
    let r = tls_router();
    let t = tok("ca");
    let missing = dir.path().join("missing.pem");
    let not_pem = dir.path().join("notpem.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    for ca in [&missing, &not_pem, &dir.path().to_path_buf()] {
        let url = format!("{}?ca={}", r.address(), ca.display());
        let t0 = Instant::now();
        match router::connect(&url, &t, LONG) {
            Err(Error::InvalidArgument(m)) => {
                assert!(
                    m.contains("ca") && m.contains(&*ca.to_string_lossy()),
                    "{m}"
                )
            }
            other => panic!("{url}: {other:?}"),
        }
        assert!(t0.elapsed() < SLACK);
    }
}

#[test]
fn plaintext_and_tls_mismatches_fail_cleanly_within_the_timeout() {
    let tls = tls_router();
    let plain = Router::serve(&format!("grpc://127.0.0.1:0?key={KEY}")).unwrap();
    let t = tok("mismatch");
    // A plaintext client of a TLS router.
    let to_tls = tls.address().replacen("grpcs://", "grpc://", 1);
    fails_cleanly(&to_tls, &t, Duration::from_secs(8));
    // A TLS client of a plaintext router.
    let to_plain = format!(
        "{}?insecure=1",
        plain.address().replacen("grpc://", "grpcs://", 1)
    );
    fails_cleanly(&to_plain, &t, Duration::from_secs(8));
    // Both routers still pair their own kind afterwards.
    let (a, b) = pair(&format!("{}?insecure=1", tls.address()), "after");
    a.send(b"1", LONG).unwrap();
    expect(&b, b"1");
    let (a, b) = pair(plain.address(), "after");
    a.send(b"2", LONG).unwrap();
    expect(&b, b"2");
    // A TLS server that never answers the handshake: the timeout holds.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("grpcs://{}?insecure=1", silent.local_addr().unwrap());
    let (r, took) = timed(|| router::connect(&url, &t, ms(500)));
    assert_timeout(r);
    assert_between(took, Duration::from_millis(400), SLACK);
}

#[test]
fn silent_tcp_clients_do_not_hold_up_other_handshakes() {
    let r = tls_router();
    let addr = r.address().trim_start_matches("grpcs://").to_string();
    // Twenty connections that never say a word, and one that sends half a
    // ClientHello.
    let mut silent: Vec<_> = (0..20)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    let mut half = std::net::TcpStream::connect(&addr).unwrap();
    std::io::Write::write_all(&mut half, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    silent.push(half);
    let url = format!("{}?insecure=1", r.address());
    let (pairing, took) = timed(|| {
        let (a, b) = pair(&url, "busy");
        a.send(b"through", LONG).unwrap();
        expect(&b, b"through");
    });
    let () = pairing;
    // Well under the 10 s a handshake may take.
    assert!(took < Duration::from_secs(4), "pairing took {took:?}");
    drop(silent);
}

#[test]
fn an_exporter_and_a_router_network_work_over_tls() {
    let dir = TempDir::new("rtlse");
    let r = tls_router();
    let url = trusted_url(&r, dir.path());
    let echo = tcp_echo_server("127.0.0.1:0");
    let target = jumpwire::Network::new(&format!("tcp://{echo}")).unwrap();
    let t = tok("export");
    let exporter = {
        let (url, t) = (url.clone(), t.clone());
        std::thread::spawn(move || router::export(&url, &t, &target, LONG))
    };
    // Through a router network: each connect is a router stream.
    let net = jumpwire::Network::router(&url, &t).unwrap();
    let c = net.connect(LONG).unwrap();
    let data = pattern(8 << 20, 3);
    std::thread::scope(|s| {
        s.spawn(|| {
            for chunk in data.chunks(1 << 20) {
                c.send(chunk, LONG).unwrap();
            }
            c.send_eof().unwrap();
        });
        assert_eq!(recv_to_eof(&c, Duration::from_secs(60)), data);
    });
    assert_eq!(join(exporter), Ok(()));
}

#[test]
fn the_c_functions_serve_report_the_certificate_and_connect_over_tls() {
    use jumpwire::ffi::*;
    use std::ffi::{CStr, CString};
    use std::ptr::{null, null_mut};
    let dir = TempDir::new("rtlsffi");
    let bad = jw_status::JW_ERR_INVALID_ARGUMENT;
    // NULL router: NULL, with a message.
    assert!(jw_router_certificate(null()).is_null());
    let last = unsafe { CStr::from_ptr(jw_last_error()) }
        .to_string_lossy()
        .into_owned();
    assert!(last.contains("router"), "{last}");
    // Missing certificate files.
    let missing = CString::new(format!(
        "grpcs://127.0.0.1:0?key=k&cert={0}/c.pem&key_file={0}/k.pem",
        dir.path().display()
    ))
    .unwrap();
    let mut r: *mut jw_router = null_mut();
    assert_eq!(jw_router_serve(missing.as_ptr(), &mut r), bad);
    assert!(r.is_null());
    // A plaintext router: no certificate.
    let plain = CString::new("grpc://127.0.0.1:0?key=k").unwrap();
    assert_eq!(jw_router_serve(plain.as_ptr(), &mut r), jw_status::JW_OK);
    assert!(jw_router_certificate(r).is_null());
    jw_router_close(r);
    // A TLS router: its certificate, valid while the router lives.
    let url = CString::new("grpcs://127.0.0.1:0?key=k").unwrap();
    let mut r: *mut jw_router = null_mut();
    assert_eq!(jw_router_serve(url.as_ptr(), &mut r), jw_status::JW_OK);
    let pem = jw_router_certificate(r);
    assert!(!pem.is_null());
    assert_eq!(pem, jw_router_certificate(r));
    let pem = unsafe { CStr::from_ptr(pem) }.to_str().unwrap().to_owned();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pem).unwrap();
    let mut addr = [0 as std::ffi::c_char; 128];
    assert_eq!(
        jw_router_address(r, addr.as_mut_ptr(), addr.len()),
        jw_status::JW_OK
    );
    let addr = unsafe { CStr::from_ptr(addr.as_ptr()) }
        .to_str()
        .unwrap()
        .to_owned();
    assert!(addr.starts_with("grpcs://127.0.0.1:"), "{addr}");
    let tok = c_token("k", "c");
    let trusted = CString::new(format!("{addr}?ca={}", ca.display())).unwrap();
    let (a, b) = c_pair(trusted.to_str().unwrap(), &tok);
    jw_stream_close(a);
    jw_stream_close(b);
    // An unreadable CA is an argument error; a wrong one a connection error.
    let unreadable = CString::new(format!("{addr}?ca={}/none.pem", dir.path().display())).unwrap();
    let mut s: *mut jw_stream = null_mut();
    assert_eq!(
        jw_router_connect(unreadable.as_ptr(), tok.as_ptr(), 10_000, &mut s),
        bad
    );
    let (other, _) = self_signed(&["127.0.0.1"], dir.path());
    let wrong = CString::new(format!("{addr}?ca={}", other.display())).unwrap();
    assert_eq!(
        jw_router_connect(wrong.as_ptr(), tok.as_ptr(), 10_000, &mut s),
        jw_status::JW_ERR_CONNECTION
    );
    assert!(s.is_null());
    // NULL arguments.
    assert_eq!(jw_router_connect(null(), tok.as_ptr(), 10_000, &mut s), bad);
    assert_eq!(
        jw_router_connect(trusted.as_ptr(), null(), 10_000, &mut s),
        bad
    );
    assert_eq!(
        jw_router_connect(trusted.as_ptr(), tok.as_ptr(), 10_000, null_mut()),
        bad
    );
    jw_router_close(r);
}

#[test]
fn a_local_port_forwarded_onto_tls_router_streams_reaches_the_exporter() {
    let dir = TempDir::new("rtlsl");
    let r = tls_router();
    let url = trusted_url(&r, dir.path());
    let echo = tcp_echo_server("127.0.0.1:0");
    let t = tok("forward");
    a_forwarded_port_reaches_the_exporter(&url, &t, echo);
    // A router network that does not trust the certificate: the forwarded
    // connection ends instead of hanging.
    let untrusting = jumpwire::Network::router(r.address(), &t).unwrap();
    a_forward_that_cannot_work_ends(&untrusting, SLACK);
}
