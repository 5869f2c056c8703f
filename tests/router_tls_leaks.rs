//! Router resource leaks over TLS: 300 sequential pairings through an embedded
//! `grpcs://` router, trusted with `?ca=` (each a small exchange both ways,
//! half-close and close; every tenth through the C API, every seventh with
//! `insecure=1`), plus failed handshakes (wrong CA, a plaintext client, a
//! silent TCP client) and a second router opened and closed, leave the
//! process with exactly the threads and file descriptors it had after a
//! warm-up round. ONE test, so that nothing else in this process changes the
//! counts.

use jumpwire::Stream;
use jumpwire::ffi::{
    jw_router_connect, jw_router_token, jw_status, jw_stream, jw_stream_close, jw_stream_receive,
    jw_stream_send, jw_stream_send_eof,
};
use jumpwire::router::{self, Router, token};
use std::ffi::{CString, c_char};
use std::ptr::null_mut;
use std::time::{Duration, Instant};

const LONG: Option<Duration> = Some(Duration::from_secs(10));

fn counts() -> (usize, usize) {
    let n = |p: &str| std::fs::read_dir(p).map_or(0, |d| d.count());
    (n("/proc/self/task"), n("/proc/self/fd"))
}

fn exchange(a: &Stream, b: &Stream, i: usize) {
    let msg = format!("ping {i}");
    a.send(msg.as_bytes(), LONG).unwrap();
    let mut buf = [0u8; 64];
    let n = b.receive(&mut buf, LONG).unwrap().unwrap();
    assert_eq!(&buf[..n], msg.as_bytes());
    b.send(b"pong", LONG).unwrap();
    let n = a.receive(&mut buf, LONG).unwrap().unwrap();
    assert_eq!(&buf[..n], b"pong");
    a.send_eof().unwrap();
    assert_eq!(b.receive(&mut buf, LONG), Ok(None));
    b.send_eof().unwrap();
    assert_eq!(a.receive(&mut buf, LONG), Ok(None));
}

fn c_pairing(url: &str, i: usize) {
    let key = CString::new("leak-key").unwrap();
    let id = CString::new(format!("c{i}")).unwrap();
    let mut tok = [0 as c_char; 1024];
    assert_eq!(
        jw_router_token(key.as_ptr(), id.as_ptr(), 60, tok.as_mut_ptr(), tok.len()),
        jw_status::JW_OK
    );
    let url = CString::new(url).unwrap();
    let (mut a, mut b): (*mut jw_stream, *mut jw_stream) = (null_mut(), null_mut());
    assert_eq!(
        jw_router_connect(url.as_ptr(), tok.as_ptr(), 10_000, &mut a),
        jw_status::JW_OK
    );
    assert_eq!(
        jw_router_connect(url.as_ptr(), tok.as_ptr(), 10_000, &mut b),
        jw_status::JW_OK
    );
    assert_eq!(
        jw_stream_send(a, b"hi".as_ptr().cast(), 2, 10_000),
        jw_status::JW_OK
    );
    let mut buf = [0u8; 8];
    let mut n = 0usize;
    assert_eq!(
        jw_stream_receive(b, buf.as_mut_ptr().cast(), buf.len(), &mut n, 10_000),
        jw_status::JW_OK
    );
    assert_eq!(&buf[..n], b"hi");
    assert_eq!(jw_stream_send_eof(a), jw_status::JW_OK);
    assert_eq!(jw_stream_send_eof(b), jw_status::JW_OK);
    assert_eq!(
        jw_stream_receive(a, buf.as_mut_ptr().cast(), buf.len(), &mut n, 10_000),
        jw_status::JW_EOF
    );
    jw_stream_close(a);
    jw_stream_close(b);
}

fn round(url: &str, insecure: &str, wrong: &str, from: usize, to: usize) {
    for i in from..to {
        if i % 10 == 9 {
            c_pairing(url, i);
            continue;
        }
        let t = token::mint("leak-key", &format!("s{i}"), Duration::from_secs(60)).unwrap();
        if i % 25 == 3 {
            // Failed handshakes: a wrong CA, a plaintext client, a silent
            // client that hangs up.
            assert!(matches!(
                router::connect(wrong, &t, LONG),
                Err(jumpwire::Error::Connection(_))
            ));
            let plain = insecure
                .replacen("grpcs://", "grpc://", 1)
                .replace("?insecure=1", "");
            if let Ok(s) = router::connect(&plain, &t, LONG) {
                assert!(s.receive(&mut [0u8; 8], LONG).is_err());
                s.close();
            }
            let addr = insecure
                .trim_start_matches("grpcs://")
                .trim_end_matches("?insecure=1");
            drop(std::net::TcpStream::connect(addr).unwrap());
            // A second router, opened and closed.
            let other = Router::serve("grpcs://127.0.0.1:0?key=leak-key").unwrap();
            assert!(other.certificate().is_some());
            other.close();
        }
        let a = router::connect(url, &t, LONG).unwrap();
        let other = if i % 7 == 0 { insecure } else { url };
        let b = router::connect(other, &t, LONG).unwrap();
        exchange(&a, &b, i);
        a.close();
        b.close();
    }
}

#[test]
fn sequential_tls_pairings_leave_no_thread_or_fd_behind() {
    let r = Router::serve("grpcs://127.0.0.1:0?key=leak-key").unwrap();
    let dir = std::env::temp_dir().join(format!("jw-rtls-leaks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, r.certificate().unwrap()).unwrap();
    let wrong_ca = dir.join("wrong.pem");
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(&wrong_ca, other.cert.pem()).unwrap();
    let url = format!("{}?ca={}", r.address(), ca.display());
    let insecure = format!("{}?insecure=1", r.address());
    let wrong = format!("{}?ca={}", r.address(), wrong_ca.display());
    round(&url, &insecure, &wrong, 0, 30);
    std::thread::sleep(Duration::from_millis(500));
    let before = counts();
    let t0 = Instant::now();
    round(&url, &insecure, &wrong, 30, 330);
    eprintln!("300 TLS pairings in {:?}", t0.elapsed());
    let until = Instant::now() + Duration::from_secs(5);
    while counts() != before && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(counts(), before, "(threads, fds) before and after");
    r.close();
    let _ = std::fs::remove_dir_all(&dir);
}
