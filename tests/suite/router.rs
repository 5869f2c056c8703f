//! The router: an embedded router pairs two router client streams by token
//! and relays frames both ways; tokens are checked; half-close, large data,
//! re-pairing, a waiting third caller, faults (peer never comes, peer dies,
//! router stops), the exporter side to a TCP echo with 256 MiB checksummed,
//! a local port forwarded onto router streams (`Network::router`), and the C
//! functions' argument checks.

use crate::common;

use common::routing::*;
use common::*;
use jumpwire::router::{self, Router, token};
use jumpwire::{Error, Stream};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const KEY: &str = "router-test-key";

fn router() -> Router {
    Router::serve(&format!("grpc://127.0.0.1:0?key={KEY}")).unwrap()
}

fn tok(id: &str) -> String {
    token::mint(KEY, id, Duration::from_secs(60)).unwrap()
}

fn pair(r: &Router, id: &str) -> (Stream, Stream) {
    pair_at(r.address(), KEY, id)
}

#[test]
fn two_callers_of_one_token_are_paired_both_ways_with_half_close() {
    let r = router();
    assert!(
        r.address().starts_with("grpc://127.0.0.1:"),
        "{}",
        r.address()
    );
    let (a, b) = pair(&r, "s1");
    a.send(b"hello", LONG).unwrap();
    expect(&b, b"hello");
    b.send(b"world", LONG).unwrap();
    expect(&a, b"world");
    // a half-closes: b sees EOF and can still send to a.
    a.send_eof().unwrap();
    expect_eof(&b);
    b.send(b"after", LONG).unwrap();
    expect(&a, b"after");
    b.send_eof().unwrap();
    expect_eof(&a);
    a.close();
    b.close();
    // The same stream id pairs again after a completed pair.
    let (a, b) = pair(&r, "s1");
    a.send(b"again", LONG).unwrap();
    expect(&b, b"again");
}

#[test]
fn sizes_from_one_byte_to_64_mib_pass_intact() {
    let r = router();
    let (a, b) = pair(&r, "sizes");
    let a = Arc::new(a);
    for (i, len) in [1usize, 100, 65_535, 65_536, 65_537, 1 << 20, 64 << 20]
        .into_iter()
        .enumerate()
    {
        let data = pattern(len, i as u64);
        std::thread::scope(|s| {
            let a = a.clone();
            let d = &data;
            s.spawn(move || a.send(d, LONG).unwrap());
            expect(&b, &data);
        });
    }
    // Sending nothing sends nothing.
    a.send(b"", LONG).unwrap();
    a.send(b"z", LONG).unwrap();
    expect(&b, b"z");
}

#[test]
fn a_waiting_caller_that_leaves_is_forgotten_and_a_third_waits_for_a_fourth() {
    let r = router();
    let t = tok("third");
    // A caller that leaves before its peer comes is forgotten.
    let gone = router::connect(r.address(), &t, LONG).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    gone.close();
    std::thread::sleep(Duration::from_millis(200));
    let (a, b) = pair(&r, "third");
    a.send(b"x", LONG).unwrap();
    expect(&b, b"x");
    // A third caller does not disturb the pair; a fourth pairs with it.
    let c = router::connect(r.address(), &t, LONG).unwrap();
    b.send(b"y", LONG).unwrap();
    expect(&a, b"y");
    assert_timeout(c.receive(&mut [0u8; 4], ms(300)));
    let d = router::connect(r.address(), &t, LONG).unwrap();
    d.send(b"cd", LONG).unwrap();
    expect(&c, b"cd");
    a.send(b"ab", LONG).unwrap();
    expect(&b, b"ab");
}

#[test]
fn refused_tokens_answer_unauthenticated_and_never_pair() {
    let r = router();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = |iss: &str, aud: &str, exp: i64| {
        format!(
            r#"{{"iss":"{iss}","aud":"{aud}","sub":"auth","exp":{},"iat":{now}}}"#,
            now + exp
        )
    };
    let hs = r#"{"alg":"HS256","typ":"JWT"}"#;
    let good = claims(token::ISSUER, token::AUDIENCE, 60);
    let bad = [
        token::sign_raw("wrong-key", hs, &good),
        token::sign_raw(KEY, hs, &claims(token::ISSUER, token::AUDIENCE, -10)),
        token::sign_raw(KEY, hs, &claims(token::ISSUER, "https://example.com", 60)),
        token::sign_raw(KEY, hs, &claims("https://example.com", token::AUDIENCE, 60)),
        token::sign_raw(KEY, r#"{"alg":"none","typ":"JWT"}"#, &good),
        "not-a-jwt".to_string(),
    ];
    for (i, t) in bad.iter().enumerate() {
        let s = router::connect(r.address(), t, LONG).unwrap();
        let e = s.receive(&mut [0u8; 8], LONG).unwrap_err();
        assert!(
            matches!(&e, Error::Unauthenticated(m) if m.contains("invalid jwt token")),
            "case {i}: {e:?}"
        );
        // Sending fails the same way.
        let e = s.send(b"x", LONG).unwrap_err();
        assert!(matches!(e, Error::Unauthenticated(_)), "case {i}: {e:?}");
    }
    // A good caller of the same stream is still alone: nobody paired.
    let good = token::sign_raw(KEY, hs, &good);
    let a = router::connect(r.address(), &good, LONG).unwrap();
    assert_timeout(a.receive(&mut [0u8; 4], ms(300)));
    // The token works; so does a later peer.
    let b = router::connect(r.address(), &good, LONG).unwrap();
    b.send(b"ok", LONG).unwrap();
    expect(&a, b"ok");
    // HS384 and HS512 are accepted too.
    for alg in ["HS384", "HS512"] {
        let t = token::sign_raw(
            KEY,
            &format!(r#"{{"alg":"{alg}"}}"#),
            &claims(token::ISSUER, token::AUDIENCE, 60).replace("\"auth\"", &format!("\"{alg}\"")),
        );
        let (x, y) = (
            router::connect(r.address(), &t, LONG).unwrap(),
            router::connect(r.address(), &t, LONG).unwrap(),
        );
        x.send(alg.as_bytes(), LONG).unwrap();
        expect(&y, alg.as_bytes());
    }
}

#[test]
fn a_missing_or_doubled_authorization_header_is_refused() {
    // The client refuses an empty token before dialling.
    assert!(matches!(
        router::connect("grpc://127.0.0.1:1", "", LONG),
        Err(Error::InvalidArgument(_))
    ));
    // The router's own check, through a raw gRPC call.
    use jumpwire::router::pb::{StreamRequest, router_service_client::RouterServiceClient};
    let r = router();
    let url = r.address().replace("grpc://", "http://");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let good = tok("hdr");
    for headers in [
        vec![],
        vec![good.clone(), good.clone()],
        vec!["Basic abc".to_string()],
    ] {
        let st = rt.block_on(async {
            let mut c = RouterServiceClient::connect(url.clone()).await.unwrap();
            let mut req = tonic::Request::new(tokio_stream::iter(Vec::<StreamRequest>::new()));
            for h in &headers {
                let v = if h.starts_with("Basic") {
                    h.clone()
                } else {
                    format!("bearer {h}")
                };
                req.metadata_mut()
                    .append("authorization", v.parse().unwrap());
            }
            c.stream(req).await.unwrap_err()
        });
        assert_eq!(st.code(), tonic::Code::Unauthenticated, "{headers:?}");
        let want = if headers.len() == 1 {
            "invalid jwt token"
        } else {
            "missing authorization header"
        };
        assert_eq!(st.message(), want, "{headers:?}");
    }
}

#[test]
fn the_c_functions_check_their_arguments() {
    use jumpwire::ffi::*;
    use std::ffi::CString;
    use std::ptr::{null, null_mut};
    let key = CString::new(KEY).unwrap();
    let id = CString::new("c").unwrap();
    let mut buf = [0 as std::ffi::c_char; 512];
    let bad = jw_status::JW_ERR_INVALID_ARGUMENT;
    assert_eq!(
        jw_router_token(null(), id.as_ptr(), 60, buf.as_mut_ptr(), 512),
        bad
    );
    assert_eq!(
        jw_router_token(key.as_ptr(), null(), 60, buf.as_mut_ptr(), 512),
        bad
    );
    assert_eq!(
        jw_router_token(key.as_ptr(), id.as_ptr(), 0, buf.as_mut_ptr(), 512),
        bad
    );
    assert_eq!(
        jw_router_token(key.as_ptr(), id.as_ptr(), 60, buf.as_mut_ptr(), 0),
        bad
    );
    assert_eq!(
        jw_router_token(key.as_ptr(), id.as_ptr(), 60, buf.as_mut_ptr(), 20),
        jw_status::JW_ERR_TOO_LARGE
    );
    assert_eq!(
        jw_router_token(key.as_ptr(), id.as_ptr(), 60, buf.as_mut_ptr(), 512),
        jw_status::JW_OK
    );
    let url = CString::new("grpc://127.0.0.1:0?key=k").unwrap();
    let mut r: *mut jw_router = null_mut();
    assert_eq!(jw_router_serve(null(), &mut r), bad);
    assert_eq!(jw_router_serve(url.as_ptr(), null_mut()), bad);
    let tcp = CString::new("tcp://127.0.0.1:0").unwrap();
    assert_eq!(jw_router_serve(tcp.as_ptr(), &mut r), bad);
    assert_eq!(jw_router_serve(url.as_ptr(), &mut r), jw_status::JW_OK);
    let mut addr = [0 as std::ffi::c_char; 64];
    assert_eq!(
        jw_router_address(r, addr.as_mut_ptr(), 64),
        jw_status::JW_OK
    );
    assert_eq!(
        jw_router_address(r, addr.as_mut_ptr(), 5),
        jw_status::JW_ERR_TOO_LARGE
    );
    let mut s: *mut jw_stream = null_mut();
    let empty = CString::new("").unwrap();
    let addr_c = jw_router_address_ok(r);
    assert_eq!(
        jw_router_connect(addr_c.as_ptr(), empty.as_ptr(), 1000, &mut s),
        bad
    );
    assert_eq!(
        jw_router_connect(addr_c.as_ptr(), buf.as_ptr(), -2, &mut s),
        bad
    );
    assert_eq!(
        jw_router_connect(addr_c.as_ptr(), buf.as_ptr(), 1000, null_mut()),
        bad
    );
    assert_eq!(
        jw_router_connect(tcp.as_ptr(), buf.as_ptr(), 1000, &mut s),
        bad
    );
    assert_eq!(
        jw_router_export(addr_c.as_ptr(), buf.as_ptr(), null(), 1000),
        bad
    );
    assert!(s.is_null());
    // jw_network_router: NULLs, a URL that is not a router's, bad tokens.
    let mut n: *mut jw_network = null_mut();
    assert_eq!(jw_network_router(null(), buf.as_ptr(), &mut n), bad);
    assert_eq!(jw_network_router(addr_c.as_ptr(), null(), &mut n), bad);
    assert_eq!(
        jw_network_router(addr_c.as_ptr(), buf.as_ptr(), null_mut()),
        bad
    );
    assert_eq!(jw_network_router(tcp.as_ptr(), buf.as_ptr(), &mut n), bad);
    assert_eq!(
        jw_network_router(addr_c.as_ptr(), empty.as_ptr(), &mut n),
        bad
    );
    let spaced = CString::new("a b").unwrap();
    assert_eq!(
        jw_network_router(addr_c.as_ptr(), spaced.as_ptr(), &mut n),
        bad
    );
    assert!(n.is_null());
    assert_eq!(
        jw_network_router(addr_c.as_ptr(), buf.as_ptr(), &mut n),
        jw_status::JW_OK
    );
    // A router network has no address to report; it connects through the router.
    assert_eq!(
        jw_network_address(n, addr.as_mut_ptr(), 64),
        jw_status::JW_ERR_UNSUPPORTED
    );
    jw_network_free(n);
    jw_router_close(r);
    jw_router_close(null_mut());
}

fn jw_router_address_ok(r: *const jumpwire::ffi::jw_router) -> std::ffi::CString {
    let mut addr = [0 as std::ffi::c_char; 64];
    assert_eq!(
        jumpwire::ffi::jw_router_address(r, addr.as_mut_ptr(), 64),
        jumpwire::ffi::jw_status::JW_OK
    );
    unsafe { std::ffi::CStr::from_ptr(addr.as_ptr()) }.to_owned()
}

#[test]
fn faults_end_in_eof_or_a_connection_error_within_the_timeout() {
    // No router at all.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("grpc://{}", dead.local_addr().unwrap());
    drop(dead);
    assert!(matches!(
        router::connect(&url, &tok("x"), LONG),
        Err(Error::Connection(_))
    ));
    let r = router();
    // The peer never comes: receive times out.
    let lone = router::connect(r.address(), &tok("lonely"), LONG).unwrap();
    let (res, took) = timed(|| lone.receive(&mut [0u8; 4], ms(300)));
    assert_timeout(res);
    assert_between(took, Duration::from_millis(300), SLACK);
    // The peer dies mid-stream (closes without a word): the other side ends.
    let (a, b) = pair(&r, "dies");
    a.send(b"1", LONG).unwrap();
    expect(&b, b"1");
    drop(a);
    let end = b.receive(&mut [0u8; 4], LONG);
    assert!(
        matches!(end, Ok(None) | Err(Error::Connection(_))),
        "{end:?}"
    );
    // The router stops mid-stream: both sides end, nothing hangs.
    let (a, b) = pair(&r, "stops");
    a.send(b"2", LONG).unwrap();
    expect(&b, b"2");
    let (_, took) = timed(|| r.close());
    assert!(took < SLACK, "{took:?}");
    for s in [&a, &b, &lone] {
        let end = s.receive(&mut [0u8; 4], LONG);
        assert!(
            matches!(end, Ok(None) | Err(Error::Connection(_))),
            "{end:?}"
        );
    }
}

#[test]
fn an_exporter_forwards_a_router_stream_to_tcp_256_mib_checksummed() {
    let r = router();
    let echo = tcp_echo_server("127.0.0.1:0");
    let target = jumpwire::Network::new(&format!("tcp://{echo}")).unwrap();
    let t = tok("export");
    let exporter = {
        let (url, t) = (r.address().to_string(), t.clone());
        std::thread::spawn(move || router::export(&url, &t, &target, LONG))
    };
    let c = router::connect(r.address(), &t, LONG).unwrap();
    const TOTAL: usize = 256 << 20;
    let block = pattern(1 << 20, 7);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..TOTAL / block.len() {
                c.send(&block, LONG).unwrap();
            }
            c.send_eof().unwrap();
        });
        let mut buf = vec![0u8; 256 << 10];
        let (mut got, mut sum) = (0usize, 0u64);
        while let Some(n) = c.receive(&mut buf, LONG).unwrap() {
            for (i, b) in buf[..n].iter().enumerate() {
                let want = block[(got + i) % block.len()];
                assert_eq!(*b, want, "byte {}", got + i);
            }
            sum = sum.wrapping_add(buf[..n].iter().map(|&b| u64::from(b)).sum::<u64>());
            got += n;
        }
        assert_eq!(got, TOTAL);
        let want: u64 =
            block.iter().map(|&b| u64::from(b)).sum::<u64>() * (TOTAL / block.len()) as u64;
        assert_eq!(sum, want);
    });
    eprintln!(
        "256 MiB round trip through the router in {:?}",
        t0.elapsed()
    );
    assert_eq!(join(exporter), Ok(()));
}

#[test]
fn a_router_network_checks_its_arguments_and_never_shows_its_token() {
    let t = tok("net");
    let n = jumpwire::Network::router("grpc://127.0.0.1:1", &t).unwrap();
    assert!(!format!("{n:?}").contains(&t), "{n:?}");
    for (url, token, why) in [
        ("tcp://127.0.0.1:1", t.as_str(), "not a router URL"),
        ("grpc://h", t.as_str(), "port is missing"),
        ("grpc://127.0.0.1:1", "", "the token is empty"),
        (
            "grpc://127.0.0.1:1",
            "a\nb",
            "characters a header cannot carry",
        ),
    ] {
        match jumpwire::Network::router(url, token) {
            Err(Error::InvalidArgument(m)) => assert!(m.contains(why), "{url}: {m}"),
            other => panic!("{url}: {other:?}"),
        }
    }
    // Without a token, a router URL cannot be connected to.
    let plain = jumpwire::Network::new("grpc://127.0.0.1:1").unwrap();
    match plain.connect(LONG) {
        Err(Error::Unsupported(m)) => assert!(m.contains("jw_network_router"), "{m}"),
        other => panic!("{other:?}"),
    }
    // A refused router: a connection error naming the router, not the token.
    let (_held, port) = refusing_port();
    let n = jumpwire::Network::router(&format!("grpc://127.0.0.1:{port}"), &t).unwrap();
    match n.connect(LONG) {
        Err(Error::Connection(m)) => {
            assert!(m.contains(&format!("127.0.0.1:{port}")), "{m}");
            assert!(!m.contains(&t), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_local_port_forwarded_onto_router_streams_reaches_the_exporter_each_time() {
    let r = router();
    let echo = tcp_echo_server("127.0.0.1:0");
    let t = tok("forward");
    a_forwarded_port_reaches_the_exporter(r.address(), &t, echo);
    // A wrong token: the forwarded connection ends instead of hanging.
    let wrong = token::mint("another-key", "forward", Duration::from_secs(60)).unwrap();
    let refused = jumpwire::Network::router(r.address(), &wrong).unwrap();
    a_forward_that_cannot_work_ends(&refused, Duration::from_secs(10));
}

#[test]
fn a_send_the_peer_cannot_take_yet_keeps_its_timeout_and_loses_nothing() {
    let r = router();
    let (a, b) = pair(&r, "stalled");
    // Far more than the windows and queues between a and b hold while b
    // reads nothing: the send is accepted within its timeout (part queued,
    // the rest handed to the background) instead of waiting for b.
    let big = pattern(48 << 20, 7);
    let (res, took) = timed(|| a.send(&big, ms(300)));
    assert_eq!(res, Ok(()));
    assert_between(took, Duration::from_millis(250), SLACK);
    // A later send and the half-close go after it, without waiting for b.
    let (res, took) = timed(|| a.send(b"after", ms(300)));
    assert_timeout(res);
    assert!(took < SLACK, "{took:?}");
    let (res, took) = timed(|| a.send_eof());
    assert_eq!(res, Ok(()));
    assert!(took < SLACK, "{took:?}");
    // b gets every byte in order, then EOF.
    expect(&b, &big);
    expect_eof(&b);
    // The other direction still works.
    b.send(b"back", LONG).unwrap();
    expect(&a, b"back");
    b.send_eof().unwrap();
    expect_eof(&a);
}

/// `Stream::flush` (`jw_stream_flush`) on a router stream: while the peer
/// reads nothing, the rest of an accepted send is still on its way (a
/// timeout); once the peer reads, it went; when the router goes before it
/// went, the flush reports that instead of a success.
#[test]
fn flush_tells_whether_an_accepted_send_went() {
    let r = router();
    let (a, b) = pair(&r, "flushed");
    let big = pattern(48 << 20, 8);
    assert_eq!(a.send(&big, ms(300)), Ok(()));
    assert_timeout(a.flush(ms(100)));
    let reader = std::thread::spawn(move || {
        expect(&b, &big);
        b
    });
    assert_eq!(a.flush(LONG), Ok(()));
    let b = reader.join().unwrap();
    assert_eq!(a.flush(ms(0)), Ok(()), "nothing left");

    b.close();
    a.close();

    // The router goes while the rest is on its way: the flush says so.
    let (a, b) = pair(&r, "flushed-2");
    assert_eq!(a.send(&pattern(48 << 20, 9), ms(300)), Ok(()));
    r.close();
    let e = a.flush(LONG).unwrap_err();
    assert!(
        matches!(e, jumpwire::Error::Connection(_)),
        "flush after the router went: {e:?}"
    );
    a.close();
    b.close();
}

/// `forward` between a socket stream and a router stream runs on the
/// calling thread, on the router stream's runtime (no pump threads): every
/// byte both ways, half-close each way, the streams' counts; a socket that
/// fails never reaches the router peer as a clean end, a router peer that
/// fails reaches the socket's peer as a reset; a stream closed under the
/// forward ends it with `Closed`.
#[test]
fn forward_between_a_socket_and_a_router_stream_keeps_every_rule() {
    use std::io::{Read, Write};
    let r = router();
    let run = |a: Stream, b: Arc<Stream>| {
        let b2 = b.clone();
        (
            std::thread::spawn(move || (jumpwire::forward::forward(&a, &b2), a)),
            b,
        )
    };

    // Both ways, 8 MiB each, half-closed one way after the other.
    let (a, b) = pair(&r, "fwd-ok");
    let (sock, mut client) = tcp_pair();
    let (f, a) = run(sock, Arc::new(a));
    let up = pattern(8 << 20, 1);
    let down = pattern(8 << 20, 2);
    let mut c2 = client.try_clone().unwrap();
    let d2 = down.clone();
    let reader = std::thread::spawn(move || {
        let mut got = vec![0u8; d2.len()];
        c2.read_exact(&mut got).unwrap();
        assert!(got == d2, "the socket got what the router peer sent");
        let mut rest = Vec::new();
        c2.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "then its end");
    });
    client.write_all(&up).unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    expect(&b, &up);
    expect_eof(&b);
    b.send(&down, LONG).unwrap();
    b.send_eof().unwrap();
    join(reader);
    let (res, sock) = join(f);
    assert_eq!(res, Ok(()));
    let (sa, ss) = (a.stats(), sock.stats());
    assert_eq!((sa.bytes_sent, sa.bytes_received), (8 << 20, 8 << 20));
    assert_eq!((ss.bytes_received, ss.bytes_sent), (8 << 20, 8 << 20));
    a.close();
    b.close();

    // The socket's peer resets: the router peer's receive fails.
    let (a, b) = pair(&r, "fwd-reset");
    let (sock, client) = tcp_pair();
    let (f, a) = run(sock, Arc::new(a));
    (&client).write_all(b"before the reset").unwrap();
    expect(&b, b"before the reset");
    socket2::SockRef::from(&client)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(client);
    assert!(join(f).0.is_err(), "the forward failed");
    let mut buf = [0u8; 16];
    match b.receive(&mut buf, LONG) {
        Err(Error::Connection(m)) => assert!(m.contains("failed"), "{m}"),
        other => panic!("the router peer saw {other:?}, not the failure"),
    }
    a.close();
    b.close();

    // The router peer fails (its router goes): the socket's peer is reset.
    let r2 = router();
    let (a, b) = pair(&r2, "fwd-gone");
    let (sock, mut client) = tcp_pair();
    let (f, a) = run(sock, Arc::new(a));
    b.send(b"hello", LONG).unwrap();
    let mut got = [0u8; 5];
    client.read_exact(&mut got).unwrap();
    r2.close();
    assert!(join(f).0.is_err(), "the forward failed");
    client.set_read_timeout(Some(LONG.unwrap())).unwrap();
    let e = client.read(&mut got).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    a.close();
    b.close();

    // Either stream closed under the forward: it ends with Closed, at once.
    for close_router_side in [true, false] {
        let (a, b) = pair(&r, &format!("fwd-closed-{close_router_side}"));
        let (sock, _client) = tcp_pair();
        let sock = Arc::new(sock);
        let a = Arc::new(a);
        let (s2, a2) = (sock.clone(), a.clone());
        let f = std::thread::spawn(move || jumpwire::forward::forward(&s2, &a2));
        std::thread::sleep(Duration::from_millis(100));
        let t0 = Instant::now();
        // (A router stream's close then gives its peer's call a grace.)
        let (s3, a3) = (sock.clone(), a.clone());
        let closing = std::thread::spawn(move || {
            if close_router_side {
                a3.close();
            } else {
                s3.close();
            }
        });
        let res = join(f);
        assert!(matches!(res, Err(Error::Closed(_))), "{res:?}");
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        b.close();
        join(closing);
        a.close();
    }
}
