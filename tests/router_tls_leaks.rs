//! Router resource leaks over TLS: 300 sequential pairings through an embedded
//! `grpcs://` router, trusted with `?ca=` (each a small exchange both ways,
//! half-close and close; every tenth through the C API, every seventh with
//! `insecure=1`), plus failed handshakes (wrong CA, a plaintext client, a
//! silent TCP client) and a second router opened and closed, leave the
//! process with exactly the threads and file descriptors it had after a
//! warm-up round. ONE test, so that nothing else in this process changes the
//! counts.

mod common;

use common::LONG;
use common::routing::{c_pairing, counts, counts_back_to, ping_pong};
use jumpwire::router::{self, Router, token};
use std::time::{Duration, Instant};

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
        ping_pong(&a, &b, i);
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
    assert_eq!(
        counts_back_to(before),
        before,
        "(threads, fds) before and after"
    );
    r.close();
    let _ = std::fs::remove_dir_all(&dir);
}
