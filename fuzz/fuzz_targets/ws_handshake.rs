//! The websocket server handshake (`websocket::accept`): request bytes in,
//! over a socket pair, as a client would send them (frames may follow the
//! head). Properties: no panic, no hang; an accepted request gets a `101`
//! whose `Sec-WebSocket-Accept` is derived from the request's key, and the
//! stream reports the request's path; a refused one gets a complete
//! `400 Bad Request` (its `Content-Length` right) or, when no whole head
//! came, nothing at all; after an accept the frames that followed the head
//! are parsed without panicking.
#![no_main]

use jumpwire::fuzzing::unix_pair;
use jumpwire::websocket::{Limits, accept};
use libfuzzer_sys::fuzz_target;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

/// Inputs longer than this are skipped: the socket pair buffers this much.
const MAX_INPUT: usize = 100_000;

fn header<'a>(headers: &'a [httparse::Header<'_>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_INPUT {
        return;
    }
    let (raw, mut peer) = unix_pair().expect("a socket pair");
    peer.write_all(data).expect("feeding the request");
    peer.shutdown(Shutdown::Write).unwrap();
    let limits = Limits {
        max_message: 4096,
        max_frame: 4096,
    };
    let accepted = accept(raw, Some(Instant::now() + Duration::from_secs(10)), limits);
    let mut request_headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut request_headers);
    let parsed = request.parse(data);
    match accepted {
        Ok(ws) => {
            assert!(
                matches!(parsed, Ok(httparse::Status::Complete(_))),
                "accepted a request that is not HTTP: {parsed:?}"
            );
            assert_eq!(jumpwire::websocket::request_path(&ws), request.path);
            let key = header(request.headers, "sec-websocket-key").expect("accepted without a key");
            let mut buf = [0u8; 512];
            while let Ok(Some(_)) = ws.receive(&mut buf, Some(Duration::from_secs(10))) {}
            drop(ws);
            let out = jumpwire::fuzzing::read_to_end_or_reset(&mut peer).unwrap();
            let mut response_headers = [httparse::EMPTY_HEADER; 16];
            let mut response = httparse::Response::new(&mut response_headers);
            assert!(matches!(
                response.parse(&out),
                Ok(httparse::Status::Complete(_))
            ));
            assert_eq!(response.code, Some(101));
            let want = tungstenite::handshake::derive_accept_key(key);
            assert_eq!(
                header(response.headers, "sec-websocket-accept"),
                Some(want.as_bytes())
            );
        }
        Err(e) => {
            assert!(
                matches!(
                    e,
                    jumpwire::Error::Protocol(_) | jumpwire::Error::Connection(_)
                ),
                "{e:?}"
            );
            let out = jumpwire::fuzzing::read_to_end_or_reset(&mut peer).unwrap();
            if out.is_empty() {
                return;
            }
            let mut response_headers = [httparse::EMPTY_HEADER; 16];
            let mut response = httparse::Response::new(&mut response_headers);
            let Ok(httparse::Status::Complete(n)) = response.parse(&out) else {
                panic!(
                    "a refusal that is not HTTP: {:?}",
                    String::from_utf8_lossy(&out)
                );
            };
            assert_eq!(response.code, Some(400));
            let length = header(response.headers, "content-length")
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|v| v.parse::<usize>().ok());
            assert_eq!(length, Some(out.len() - n), "the refusal's Content-Length");
        }
    }
});
